package fetch

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Option configures Pull.
type Option func(*options) error

type options struct {
	mirrors  []Mirror
	lock     []Locked
	locked   bool // lock given
	strict   bool
	jobs     int
	attempts int
	base     time.Duration
	client   *http.Client
	progress func(Progress)
	logger   *slog.Logger
}

// makeOptions holds every default in one place.
func makeOptions(opts ...Option) (*options, error) {
	o := &options{
		jobs:     4,
		attempts: 5,
		base:     500 * time.Millisecond,
		client:   defaultClient(),
		progress: func(Progress) {},
		logger:   slog.New(slog.DiscardHandler),
	}
	for _, opt := range opts {
		if err := opt(o); err != nil {
			return nil, fmt.Errorf("fetch: %w", err)
		}
	}
	return o, nil
}

// defaultClient has no overall timeout (artifacts may be large); a stalled
// body is caught by the idle timeout of each attempt instead.
func defaultClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.ResponseHeaderTimeout = 60 * time.Second
	return &http.Client{Transport: t}
}

// WithMirrors rewrites URL prefixes: a URL (and a checksum URL) starting with
// a mirror's From is fetched from To plus the rest. The longest matching From
// wins; From matches only whole path segments ("https://dl.k8s.io" does not
// match "https://dl.k8s.io.example"). Mirrors do not change what is locked:
// Locked.URL is always the source's own URL, so a lock made behind one mirror
// serves at another site. Two mirrors with the same From are an error.
// Default: none.
func WithMirrors(m []Mirror) Option {
	return func(o *options) error {
		seen := map[string]bool{}
		for i, mi := range m {
			if mi.From == "" || mi.To == "" {
				return fmt.Errorf("%w: mirrors[%d]: both from and to are required", ErrInvalidOption, i)
			}
			for _, u := range []string{mi.From, mi.To} {
				if p, err := url.Parse(u); err != nil || p.Scheme == "" {
					return fmt.Errorf("%w: mirrors[%d]: %q is not an absolute URL", ErrInvalidOption, i, u)
				}
			}
			if seen[mi.From] {
				return fmt.Errorf("%w: mirrors[%d]: from %s given twice", ErrInvalidOption, i, mi.From)
			}
			seen[mi.From] = true
		}
		o.mirrors = append([]Mirror(nil), m...)
		return nil
	}
}

// WithLock gives the entries of bundle-spec.lock. With strict false, an
// artifact whose lock entry has the same URL takes its sha256 from the lock
// rather than from its checksum URL, so a second pull fetches no checksum
// files. With strict true (pull --locked), an artifact the lock lacks, or
// whose URL or pinned sha256 differs from its entry, is refused, and the
// lock's sha256 is the one its bytes must have. Given twice is an error.
// Default: no lock.
func WithLock(lock []Locked, strict bool) Option {
	return func(o *options) error {
		if o.locked {
			return fmt.Errorf("%w: lock given twice", ErrInvalidOption)
		}
		seen := map[string]bool{}
		for i, l := range lock {
			if l.Name == "" || l.URL == "" {
				return fmt.Errorf("%w: lock entry %d: name and url are required", ErrInvalidOption, i)
			}
			if !isHex64(l.SHA256) {
				return fmt.Errorf("%w: lock entry %s: sha256 %q is not 64 hex digits", ErrInvalidOption, l.Name, l.SHA256)
			}
			if seen[l.Name] {
				return fmt.Errorf("%w: lock entry %s given twice", ErrInvalidOption, l.Name)
			}
			seen[l.Name] = true
		}
		o.lock = append([]Locked(nil), lock...)
		o.locked, o.strict = true, strict
		return nil
	}
}

// WithJobs bounds the number of artifacts pulled at once. It must be at
// least 1. Default: 4.
func WithJobs(n int) Option {
	return func(o *options) error {
		if n < 1 {
			return fmt.Errorf("%w: jobs %d, want at least 1", ErrInvalidOption, n)
		}
		o.jobs = n
		return nil
	}
}

// WithRetry sets how many attempts each request gets (at least 1) and the
// first backoff (positive), which doubles after each failure, with jitter
// (a delay d is drawn from [d/2, d)), capped at 30s; a Retry-After header up
// to a minute is honoured. Retried: connection errors, timeouts, 5xx, 408,
// 429, truncated bodies, and one sha256 mismatch of a download.
// Default: 5 attempts, 500ms.
func WithRetry(attempts int, base time.Duration) Option {
	return func(o *options) error {
		if attempts < 1 {
			return fmt.Errorf("%w: retry attempts %d, want at least 1", ErrInvalidOption, attempts)
		}
		if base <= 0 {
			return fmt.Errorf("%w: retry backoff %v, want more than 0", ErrInvalidOption, base)
		}
		o.attempts, o.base = attempts, base
		return nil
	}
}

// WithHTTPClient sets the client for http:// and https:// URLs. Its Timeout,
// if any, bounds each whole download. Default: a clone of
// http.DefaultTransport with a 60s response-header timeout.
func WithHTTPClient(c *http.Client) Option {
	return func(o *options) error {
		if c == nil {
			return fmt.Errorf("%w: nil http client", ErrInvalidOption)
		}
		o.client = c
		return nil
	}
}

// WithProgress sets a callback receiving a snapshot as bytes arrive (every
// 256 KiB or so) and when an artifact is done. Calls are serialised; the
// callback must return quickly. Default: none.
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

// rewrite applies the longest matching mirror to raw.
func rewrite(mirrors []Mirror, raw string) string {
	best := -1
	for i, m := range mirrors {
		rest, ok := strings.CutPrefix(raw, m.From)
		if !ok {
			continue
		}
		if !strings.HasSuffix(m.From, "/") && rest != "" && !strings.HasPrefix(rest, "/") && !strings.HasPrefix(rest, "?") {
			continue
		}
		if best < 0 || len(m.From) > len(mirrors[best].From) {
			best = i
		}
	}
	if best < 0 {
		return raw
	}
	m := mirrors[best]
	rest := strings.TrimPrefix(raw, m.From)
	if strings.HasSuffix(m.To, "/") && strings.HasPrefix(rest, "/") {
		rest = rest[1:]
	}
	return m.To + rest
}
