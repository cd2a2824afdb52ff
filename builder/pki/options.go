package pki

import (
	"fmt"
	"io"
	"log/slog"
	"runtime"
)

// Option changes how Issue works. Options are behaviour; the certificates to
// issue are data (Config, Request). An invalid value, or the same option
// given twice, makes Issue fail with ErrInvalidOption before anything is
// written.
type Option func(*options) error

type options struct {
	jobs     int
	logger   *slog.Logger
	progress func(done, total int)

	set map[string]bool // options given, to reject conflicting repeats
}

func makeOptions(opts ...Option) (*options, error) {
	o := &options{
		jobs:     runtime.NumCPU(),
		logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
		progress: func(int, int) {},
		set:      map[string]bool{},
	}
	for _, opt := range opts {
		if opt == nil {
			return nil, fmt.Errorf("nil option: %w", ErrInvalidOption)
		}
		if err := opt(o); err != nil {
			return nil, err
		}
	}
	return o, nil
}

func (o *options) once(name string) error {
	if o.set[name] {
		return fmt.Errorf("%s given more than once: %w", name, ErrInvalidOption)
	}
	o.set[name] = true
	return nil
}

// WithJobs bounds how many keys are generated and signed at once.
// n must be at least 1. Default: runtime.NumCPU().
func WithJobs(n int) Option {
	return func(o *options) error {
		if err := o.once("WithJobs"); err != nil {
			return err
		}
		if n < 1 {
			return fmt.Errorf("WithJobs(%d): must be at least 1: %w", n, ErrInvalidOption)
		}
		o.jobs = n
		return nil
	}
}

// WithLogger sets the logger that records what is issued, reused and why
// something is re-issued. Keys are never logged. Default: a logger that
// discards everything.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) error {
		if err := o.once("WithLogger"); err != nil {
			return err
		}
		if l == nil {
			return fmt.Errorf("WithLogger(nil): %w", ErrInvalidOption)
		}
		o.logger = l
		return nil
	}
}

// WithProgress registers a callback called after each CA, certificate and
// key pair is settled (issued or reused), with the number settled so far and
// the total. Calls are serialised and done only grows. Default: no callback.
func WithProgress(f func(done, total int)) Option {
	return func(o *options) error {
		if err := o.once("WithProgress"); err != nil {
			return err
		}
		if f == nil {
			return fmt.Errorf("WithProgress(nil): %w", ErrInvalidOption)
		}
		o.progress = f
		return nil
	}
}
