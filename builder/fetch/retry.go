package fetch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"syscall"
	"time"
)

var (
	// errShortBody: the body ended before its Content-Length.
	errShortBody = errors.New("body shorter than its Content-Length")
	// errStalled: no byte arrived for idleTimeout.
	errStalled = errors.New("no data received for 60s")
	// errRestart: the partial download was dropped; start again from zero.
	errRestart = errors.New("restarting the download from zero")
)

// idleTimeout ends an attempt whose body stops arriving.
const idleTimeout = 60 * time.Second

// permanentError is an attempt failure no retry can fix.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

func permanent(err error) error { return &permanentError{err} }

// retrier runs attempts with exponential backoff and jitter. It is the one
// place that decides what is retried.
type retrier struct {
	attempts int
	base     time.Duration
	log      *slog.Logger
}

func (r retrier) do(ctx context.Context, what string, fn func(context.Context) error) error {
	var err error
	for i := range r.attempts {
		if i > 0 {
			d := r.backoff(i, err)
			r.log.Warn("retrying", "what", what, "attempt", i+1, "of", r.attempts, "in", d, "err", err)
			t := time.NewTimer(d)
			select {
			case <-ctx.Done():
				t.Stop()
				return context.Cause(ctx)
			case <-t.C:
			}
		}
		if err = fn(ctx); err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		if !retryable(err) {
			return err
		}
	}
	if r.attempts == 1 {
		return err
	}
	return fmt.Errorf("%w (gave up after %d attempts)", err, r.attempts)
}

// backoff is base·2^(i-1), capped at 30s, drawn from [d/2, d); a server's
// Retry-After up to a minute wins.
func (r retrier) backoff(i int, err error) time.Duration {
	var se *StatusError
	if errors.As(err, &se) && se.retryAfter > 0 && se.retryAfter <= time.Minute {
		return se.retryAfter
	}
	d := r.base << min(i-1, 20)
	if d > 30*time.Second || d <= 0 {
		d = 30 * time.Second
	}
	return d/2 + rand.N(d/2+1)
}

// retryable: connection errors, timeouts, 5xx/408/429, truncated bodies,
// restarts; not: other statuses, local errors, permanentError.
func retryable(err error) bool {
	var pe *permanentError
	if errors.As(err, &pe) {
		return false
	}
	var se *StatusError
	if errors.As(err, &se) {
		return se.Temporary()
	}
	var me *mismatchError
	if errors.As(err, &me) {
		return true // the caller makes the second one permanent
	}
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF),
		errors.Is(err, errShortBody), errors.Is(err, errStalled), errors.Is(err, errRestart),
		errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.ECONNREFUSED),
		errors.Is(err, syscall.ECONNABORTED), errors.Is(err, syscall.EPIPE):
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	var oe *net.OpError
	return errors.As(err, &oe)
}
