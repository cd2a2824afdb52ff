package pxe

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
)

// Option configures Generate.
type Option func(*options) error

type options struct {
	outDir   string
	epoch    int64
	logger   *slog.Logger
	progress func(Progress)
	lookup   func(string) (string, bool)
	set      map[string]bool
}

// Progress reports a host done.
type Progress struct {
	Done, Total int
	Host        string
}

func makeOptions(opts ...Option) (*options, error) {
	o := &options{
		outDir:   "out",
		logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
		progress: func(Progress) {},
		lookup:   os.LookupEnv,
		set:      map[string]bool{},
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

// WithOutDir is where the bundles are (out/<host>.tar.gz, out/SHA256SUMS)
// and where out/pxe is written. Default "out".
func WithOutDir(dir string) Option {
	return func(o *options) error {
		if dir == "" {
			return errors.New("output directory is empty")
		}
		o.outDir = dir
		return o.once("out")
	}
}

// WithSourceDateEpoch is the mtime of every overlay entry. Default: the
// spec's bundle.sourceDateEpoch (the CLI passes SOURCE_DATE_EPOCH, as bake).
func WithSourceDateEpoch(sec int64) Option {
	return func(o *options) error {
		if sec <= 0 {
			return fmt.Errorf("source date epoch %d: want seconds since 1970, > 0", sec)
		}
		o.epoch = sec
		return o.once("epoch")
	}
}

// WithLogger receives a line per host and file. Default: discarded.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) error {
		if l == nil {
			return errors.New("logger is nil")
		}
		o.logger = l
		return o.once("logger")
	}
}

// WithProgress is called after each host. Default: nothing.
func WithProgress(f func(Progress)) Option {
	return func(o *options) error {
		if f == nil {
			return errors.New("progress func is nil")
		}
		o.progress = f
		return o.once("progress")
	}
}

// WithLookupEnv reads pxe.rootPasswordHashEnv. Default os.LookupEnv.
func WithLookupEnv(f func(string) (string, bool)) Option {
	return func(o *options) error {
		if f == nil {
			return errors.New("lookup func is nil")
		}
		o.lookup = f
		return o.once("lookup")
	}
}
