package build

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
)

// Option configures Bake and Certs.
type Option func(*options) error

type options struct {
	stateDir     string
	outDir       string
	artifactsDir string
	firstboot    []byte
	jobs         int
	logger       *slog.Logger
	progress     func(Event)
	version      string
	epoch        int64
	storeDir     string
	lockFile     string
	locked       bool
	fromUpstream bool
	lookupEnv    func(string) (string, bool)
	set          map[string]bool
}

// Event reports progress: a phase starting or finishing, or a step of one.
type Event struct {
	Phase string // pki, artifacts, render, bundle
	Done  int
	Total int
	Msg   string
}

func makeOptions(opts ...Option) (*options, error) {
	o := &options{
		stateDir:  "state",
		outDir:    "out",
		jobs:      runtime.NumCPU(),
		logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
		progress:  func(Event) {},
		version:   "devel",
		storeDir:  "store",
		lookupEnv: os.LookupEnv,
		set:       map[string]bool{},
	}
	for _, opt := range opts {
		if err := opt(o); err != nil {
			return nil, err
		}
	}
	return o, nil
}

func (o *options) once(name string) error {
	if o.set[name] {
		return fmt.Errorf("option %s given twice", name)
	}
	o.set[name] = true
	return nil
}

// WithStateDir is where the PKI and caches are kept between builds.
// Default "state".
func WithStateDir(dir string) Option {
	return func(o *options) error {
		if dir == "" {
			return errors.New("state directory is empty")
		}
		o.stateDir = dir
		return o.once("state")
	}
}

// WithOutDir is where bundles are written. Default "out".
func WithOutDir(dir string) Option {
	return func(o *options) error {
		if dir == "" {
			return errors.New("output directory is empty")
		}
		o.outDir = dir
		return o.once("out")
	}
}

// WithArtifactsDir is the directory holding downloaded artifacts as
// DIR/<artifact name>/<file>. Default none: only file:// URLs resolve.
func WithArtifactsDir(dir string) Option {
	return func(o *options) error { o.artifactsDir = dir; return o.once("artifacts") }
}

// WithFirstboot sets the firstboot binary copied into every bundle.
// Default: the one embedded in kubebake by `make build`.
func WithFirstboot(b []byte) Option {
	return func(o *options) error {
		if len(b) == 0 {
			return errors.New("firstboot binary is empty")
		}
		o.firstboot = b
		return o.once("firstboot")
	}
}

// WithJobs bounds parallel work. Default runtime.NumCPU().
func WithJobs(n int) Option {
	return func(o *options) error {
		if n < 1 {
			return fmt.Errorf("jobs %d: want at least 1", n)
		}
		o.jobs = n
		return o.once("jobs")
	}
}

// WithLogger receives step logs. Default: discarded.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) error {
		if l == nil {
			return errors.New("logger is nil")
		}
		o.logger = l
		return o.once("logger")
	}
}

// WithProgress is called as phases advance. Default: nothing.
func WithProgress(f func(Event)) Option {
	return func(o *options) error {
		if f == nil {
			return errors.New("progress func is nil")
		}
		o.progress = f
		return o.once("progress")
	}
}

// WithBuilderVersion is recorded in bundle.json. Default "devel".
func WithBuilderVersion(v string) Option {
	return func(o *options) error { o.version = v; return o.once("version") }
}

// WithSourceDateEpoch overrides the spec's bundle.sourceDateEpoch (the CLI
// passes SOURCE_DATE_EPOCH). Default: the spec's.
func WithSourceDateEpoch(sec int64) Option {
	return func(o *options) error {
		if sec <= 0 {
			return fmt.Errorf("source date epoch %d: want seconds since 1970, > 0", sec)
		}
		o.epoch = sec
		return o.once("epoch")
	}
}

// WithStoreDir is the content-addressed store pull fills and bake reads.
// Default "store".
func WithStoreDir(dir string) Option {
	return func(o *options) error {
		if dir == "" {
			return errors.New("store directory is empty")
		}
		o.storeDir = dir
		return o.once("store")
	}
}

// WithLockFile is the lock to read and write. Default: bundle-spec.lock
// beside the spec file.
func WithLockFile(path string) Option {
	return func(o *options) error { o.lockFile = path; return o.once("lock") }
}

// WithLocked makes pull refuse anything that drifts from the lock, and any
// change to it. Default false.
func WithLocked(locked bool) Option {
	return func(o *options) error { o.locked = locked; return o.once("locked") }
}

// WithMirrorFromUpstream has mirror copy images straight from their
// upstream registries instead of from the store. Default false: the store,
// which works inside the gap with no upstream reachable.
func WithMirrorFromUpstream(b bool) Option {
	return func(o *options) error { o.fromUpstream = b; return o.once("from") }
}

// WithLookupEnv reads the environment variables the spec's credentials
// name (the registry login for the add-ons' image pull secret). Default
// os.LookupEnv.
func WithLookupEnv(f func(string) (string, bool)) Option {
	return func(o *options) error {
		if f == nil {
			return errors.New("lookupEnv is nil")
		}
		o.lookupEnv = f
		return o.once("lookupEnv")
	}
}
