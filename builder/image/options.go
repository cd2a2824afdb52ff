package image

import (
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Option configures Pull, Push, Copy and Layout.
type Option func(*options) error

type options struct {
	mirrors     []Mirror
	platforms   []string // nil = all
	lock        map[string]Locked
	strict      bool
	creds       []Cred
	insecure    map[string]bool
	endpoints   map[string]string // registry host:port → address dialled instead
	caPEM       [][]byte
	jobs        int
	backoff     remote.Backoff
	retryCodes  []int
	attempts    int
	progress    func(Progress)
	log         *slog.Logger
	wrap        func(http.RoundTripper) http.RoundTripper // tests count requests
	target      *Target
	platformsOn bool
}

// makeOptions applies opts over the defaults:
//   - mirrors: none
//   - platforms: linux/amd64
//   - lock: none
//   - creds: none (authn.DefaultKeychain, i.e. the docker config, is always
//     consulted after them)
//   - insecure: none (TLS verified against the system roots plus WithCA)
//   - jobs: 4 images at a time, 4 blobs per image
//   - retry: 5 attempts per request in the transport, backoff 200ms×3 with
//     10% jitter, on 408/429/500/502/503/504 and transient network errors;
//     a blob or manifest whose body fails verification (truncated, wrong
//     digest) is fetched again, up to 5 times
//   - progress: none; logger: discards
func makeOptions(opts ...Option) (*options, error) {
	o := &options{
		platforms: []string{"linux/amd64"},
		insecure:  map[string]bool{},
		jobs:      4,
		backoff: remote.Backoff{
			Duration: 200 * time.Millisecond,
			Factor:   3,
			Jitter:   0.1,
			Steps:    5,
		},
		retryCodes: []int{408, 429, 500, 502, 503, 504},
		attempts:   5,
		log:        slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	for _, opt := range opts {
		if err := opt(o); err != nil {
			return nil, err
		}
	}
	return o, nil
}

// WithMirrors rewrites source registry hosts when fetching. Default: none.
// Two mirrors for the same host are an error.
func WithMirrors(m ...Mirror) Option {
	return func(o *options) error {
		seen := map[string]bool{}
		for _, mm := range o.mirrors {
			seen[mm.From] = true
		}
		for _, mm := range m {
			if mm.From == "" || mm.To == "" || strings.Contains(mm.From, "/") || strings.Contains(mm.To, "/") {
				return fmt.Errorf("mirror %q → %q: both sides must be registry hosts (host[:port])", mm.From, mm.To)
			}
			if seen[mm.From] {
				return fmt.Errorf("mirror %q: given twice", mm.From)
			}
			seen[mm.From] = true
			o.mirrors = append(o.mirrors, mm)
		}
		return nil
	}
}

// WithPlatforms selects the platforms ("os/arch[/variant]") kept from
// multi-arch indexes. Default: linux/amd64. "all" keeps the index whole.
func WithPlatforms(p []string) Option {
	return func(o *options) error {
		if o.platformsOn {
			return errors.New("WithPlatforms given twice")
		}
		o.platformsOn = true
		if len(p) == 0 {
			return errors.New("WithPlatforms: empty list (use \"all\" to keep indexes whole)")
		}
		var out []string
		for _, s := range p {
			if s == "all" {
				if len(p) != 1 {
					return errors.New("WithPlatforms: \"all\" cannot be combined with other platforms")
				}
				o.platforms = nil
				return nil
			}
			if _, err := parsePlatform(s); err != nil {
				return err
			}
			out = append(out, s)
		}
		o.platforms = out
		return nil
	}
}

// WithLock pins images to a lock. Pull fetches the locked digest; when the
// tag now resolves elsewhere, strict makes that an error (*DriftError naming
// both digests) and non-strict logs a warning and still fetches the locked
// digest; with strict, an image missing from the lock is an error too.
// Default: no lock (tags are resolved afresh).
func WithLock(l []Locked, strict bool) Option {
	return func(o *options) error {
		if o.lock != nil {
			return errors.New("WithLock given twice")
		}
		o.lock = map[string]Locked{}
		for _, x := range l {
			if x.Ref == "" || x.Digest == "" {
				return fmt.Errorf("lock entry %q: ref and digest are required", x.Name)
			}
			o.lock[x.Ref] = x
		}
		o.strict = strict
		return nil
	}
}

// WithCreds names environment variables holding registry credentials.
// Default: none; the docker config (authn.DefaultKeychain) is the fallback.
func WithCreds(c []Cred) Option {
	return func(o *options) error {
		for _, x := range c {
			if x.Registry == "" || x.UsernameEnv == "" || x.PasswordEnv == "" {
				return fmt.Errorf("credentials for %q: registry, username and password variable names are required", x.Registry)
			}
			for _, y := range o.creds {
				if y.Registry == x.Registry {
					return fmt.Errorf("credentials for %q: given twice", x.Registry)
				}
			}
			o.creds = append(o.creds, x)
		}
		return nil
	}
}

// WithInsecure allows plain HTTP and unverified TLS for the listed hosts
// (host[:port]) only. Default: none — every other host must speak verified
// TLS (kubebake refuses go-containerregistry's plain-HTTP fallback for
// loopback and private addresses).
func WithInsecure(hosts ...string) Option {
	return func(o *options) error {
		for _, h := range hosts {
			if h == "" || strings.Contains(h, "/") {
				return fmt.Errorf("insecure registry %q: want host[:port]", h)
			}
			o.insecure[h] = true
		}
		return nil
	}
}

// WithEndpoint dials addr (host:port) whenever a request goes to registry
// (host[:port], port 443 when omitted), for a registry whose name does not
// resolve on this machine. TLS still verifies the registry's name.
// Default: none.
func WithEndpoint(registry, addr string) Option {
	return func(o *options) error {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return fmt.Errorf("endpoint %q for %s: want host:port", addr, registry)
		}
		if _, _, err := net.SplitHostPort(registry); err != nil {
			registry = net.JoinHostPort(registry, "443")
		}
		if o.endpoints == nil {
			o.endpoints = map[string]string{}
		}
		o.endpoints[registry] = addr
		return nil
	}
}

// WithCA trusts a private CA (PEM) in addition to the system roots, e.g.
// kubebake's own CA for harbor.od.com. Default: system roots only.
func WithCA(pem []byte) Option {
	return func(o *options) error {
		if !x509.NewCertPool().AppendCertsFromPEM(pem) {
			return errors.New("WithCA: no PEM certificate found")
		}
		o.caPEM = append(o.caPEM, pem)
		return nil
	}
}

// WithJobs bounds parallel images (and parallel blobs per image). Default 4.
func WithJobs(n int) Option {
	return func(o *options) error {
		if n < 1 {
			return fmt.Errorf("WithJobs(%d): must be at least 1", n)
		}
		o.jobs = n
		return nil
	}
}

// WithRetry sets the transport's retry backoff (Steps = attempts per
// request, also used for body-verification re-fetches) and the HTTP status
// codes retried. Default: 5 attempts, 200ms×3, codes 408 429 500 502 503 504.
func WithRetry(b remote.Backoff, codes ...int) Option {
	return func(o *options) error {
		if b.Steps < 1 || b.Duration < 0 || b.Factor < 0 {
			return fmt.Errorf("WithRetry: steps must be >= 1 and durations non-negative")
		}
		o.backoff = b
		o.attempts = b.Steps
		if len(codes) > 0 {
			o.retryCodes = codes
		}
		return nil
	}
}

// WithProgress reports per-blob and per-image progress. The callback may be
// called from several goroutines at once. Default: none.
func WithProgress(f func(Progress)) Option {
	return func(o *options) error {
		if f == nil {
			return errors.New("WithProgress: nil callback")
		}
		o.progress = f
		return nil
	}
}

// WithLogger logs retries, skips and drift warnings. Default: discard.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) error {
		if l == nil {
			return errors.New("WithLogger: nil logger")
		}
		o.log = l
		return nil
	}
}

// WithTarget makes Layout name each image as it will be pulled from t
// (io.containerd.image.name = TargetRef(ref, t)); without it the annotation
// holds the source reference. Only Layout reads it.
func WithTarget(t Target) Option {
	return func(o *options) error {
		if t.Registry == "" {
			return errors.New("WithTarget: registry is required")
		}
		o.target = &t
		return nil
	}
}

// withWrap wraps the base round tripper (tests count requests).
func withWrap(f func(http.RoundTripper) http.RoundTripper) Option {
	return func(o *options) error { o.wrap = f; return nil }
}

func (o *options) report(p Progress) {
	if o.progress != nil {
		o.progress(p)
	}
}
