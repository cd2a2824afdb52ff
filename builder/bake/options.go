package bake

import (
	"compress/gzip"
	"fmt"
	"log/slog"
	"path/filepath"
	"runtime"
	"time"
)

// Option configures Write.
type Option func(*options) error

type options struct {
	mtime    time.Time
	cacheDir string
	jobs     int
	level    int
	progress func(Progress)
	logger   *slog.Logger
}

// makeOptions holds every default in one place.
func makeOptions(outDir string, opts ...Option) (*options, error) {
	o := &options{
		mtime:    time.Unix(0, 0),
		cacheDir: filepath.Join(outDir, ".cache"),
		jobs:     runtime.NumCPU(),
		level:    gzip.DefaultCompression,
		progress: func(Progress) {},
		logger:   slog.New(slog.DiscardHandler),
	}
	for _, opt := range opts {
		if err := opt(o); err != nil {
			return nil, fmt.Errorf("bake: %w", err)
		}
	}
	return o, nil
}

// WithMTime sets the modification time of every tar entry. It is truncated
// to whole seconds and must not be before the Unix epoch. Reading
// SOURCE_DATE_EPOCH (or the spec's time) is the caller's job.
// Default: the Unix epoch, time.Unix(0, 0).
func WithMTime(t time.Time) Option {
	return func(o *options) error {
		if t.IsZero() || t.Unix() < 0 {
			return fmt.Errorf("%w: mtime %v is before the Unix epoch", ErrInvalidOption, t)
		}
		o.mtime = time.Unix(t.Unix(), 0)
		return nil
	}
}

// WithCacheDir sets the directory holding compressed shared members, keyed by
// content. It may be shared by successive bakes, not by concurrent ones.
// Default: <outDir>/.cache.
func WithCacheDir(dir string) Option {
	return func(o *options) error {
		if dir == "" {
			return fmt.Errorf("%w: empty cache dir", ErrInvalidOption)
		}
		o.cacheDir = dir
		return nil
	}
}

// WithJobs bounds the number of members compressed at once, and separately
// the number of bundles assembled at once. It must be at least 1.
// Default: runtime.NumCPU().
func WithJobs(n int) Option {
	return func(o *options) error {
		if n < 1 {
			return fmt.Errorf("%w: jobs %d, want at least 1", ErrInvalidOption, n)
		}
		o.jobs = n
		return nil
	}
}

// WithLevel sets the gzip level, gzip.HuffmanOnly (-2) to gzip.BestCompression (9).
// Default: gzip.DefaultCompression.
func WithLevel(level int) Option {
	return func(o *options) error {
		if level < gzip.HuffmanOnly || level > gzip.BestCompression {
			return fmt.Errorf("%w: gzip level %d, want %d..%d", ErrInvalidOption, level, gzip.HuffmanOnly, gzip.BestCompression)
		}
		o.level = level
		return nil
	}
}

// WithProgress sets a callback receiving a snapshot after each step (a member
// compressed or reused, a few MiB compressed, a bundle written). Calls are
// serialised; the callback must return quickly. Default: none.
func WithProgress(fn func(Progress)) Option {
	return func(o *options) error {
		if fn == nil {
			return fmt.Errorf("%w: nil progress callback", ErrInvalidOption)
		}
		o.progress = fn
		return nil
	}
}

// WithLogger sets the logger. Default: a logger that discards everything.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) error {
		if l == nil {
			return fmt.Errorf("%w: nil logger", ErrInvalidOption)
		}
		o.logger = l
		return nil
	}
}
