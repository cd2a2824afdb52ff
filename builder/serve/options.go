package serve

import (
	"fmt"
	"io"
	"log/slog"
	"time"
)

// Option configures New.
type Option func(*options) error

type options struct {
	logger     *slog.Logger
	access     io.Writer
	maxFetches int
	countsFile string
	stall      time.Duration
	grace      time.Duration
}

// makeOptions holds every default in one place.
func makeOptions(opts ...Option) (*options, error) {
	o := &options{
		logger: slog.New(slog.DiscardHandler),
		access: io.Discard,
		stall:  30 * time.Second,
		grace:  30 * time.Second,
	}
	for _, opt := range opts {
		if err := opt(o); err != nil {
			return nil, fmt.Errorf("serve: %w", err)
		}
	}
	if o.countsFile != "" && o.maxFetches == 0 {
		return nil, fmt.Errorf("serve: %w: a counts file needs a fetch limit (WithMaxFetches)", ErrInvalidOption)
	}
	return o, nil
}

// WithLogger sets the logger for what is not a request: start, shutdown,
// a counts file that cannot be written. Default: discard.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) error {
		if l == nil {
			return fmt.Errorf("%w: nil logger", ErrInvalidOption)
		}
		o.logger = l
		return nil
	}
}

// WithAccessLog sets where the one line per request goes (time, client IP,
// method, path, status, bytes, duration, the owning host, and why a request
// was refused). Default: discard.
func WithAccessLog(w io.Writer) Option {
	return func(o *options) error {
		if w == nil {
			return fmt.Errorf("%w: nil access log", ErrInvalidOption)
		}
		o.access = w
		return nil
	}
}

// WithMaxFetches limits each host's bundle (bundles/<host>…) to n copies'
// worth of bytes: a full download spends one, a download cut short and
// resumed with Range spends one in total, HEAD spends nothing, and a request
// that would take more than is left gets 410 Gone. n must be ≥ 0.
// Default: 0, unlimited.
func WithMaxFetches(n int) Option {
	return func(o *options) error {
		if n < 0 {
			return fmt.Errorf("%w: max fetches %d < 0", ErrInvalidOption, n)
		}
		o.maxFetches = n
		return nil
	}
}

// WithCountsFile keeps the bytes delivered per bundle in path (JSON, written
// atomically after each counted response) and starts from it, so that a
// restart does not hand out a fresh budget. It needs WithMaxFetches.
// Default: "", counts live in memory only.
func WithCountsFile(path string) Option {
	return func(o *options) error {
		if path == "" {
			return fmt.Errorf("%w: empty counts file", ErrInvalidOption)
		}
		o.countsFile = path
		return nil
	}
}

// WithStallTimeout aborts a response when the client accepts no data for d,
// so a dead connection does not hold its share of a fetch budget until TCP
// gives up. d must be > 0. Default: 30s.
func WithStallTimeout(d time.Duration) Option {
	return func(o *options) error {
		if d <= 0 {
			return fmt.Errorf("%w: stall timeout %v ≤ 0", ErrInvalidOption, d)
		}
		o.stall = d
		return nil
	}
}

// WithShutdownGrace sets how long Serve lets in-flight requests finish after
// its context is done before closing their connections. d must be ≥ 0.
// Default: 30s.
func WithShutdownGrace(d time.Duration) Option {
	return func(o *options) error {
		if d < 0 {
			return fmt.Errorf("%w: shutdown grace %v < 0", ErrInvalidOption, d)
		}
		o.grace = d
		return nil
	}
}
