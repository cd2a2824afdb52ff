package image

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// router picks the TLS policy per host and refuses plain HTTP to hosts not
// listed in WithInsecure (go-containerregistry would otherwise fall back to
// http:// for loopback and private addresses).
type router struct {
	secure, insecure http.RoundTripper
	hosts            map[string]bool
}

func (r *router) RoundTrip(req *http.Request) (*http.Response, error) {
	if r.hosts[req.URL.Host] {
		return r.insecure.RoundTrip(req)
	}
	if req.URL.Scheme != "https" {
		return nil, fmt.Errorf("%s: plain HTTP to %s is not allowed (list it as an insecure registry to allow it)", req.URL.Redacted(), req.URL.Host)
	}
	return r.secure.RoundTrip(req)
}

func (o *options) roundTripper() (http.RoundTripper, error) {
	base := remote.DefaultTransport.(*http.Transport).Clone()
	base.MaxIdleConnsPerHost = 2 * o.jobs * o.jobs
	if len(o.caPEM) > 0 {
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		for _, p := range o.caPEM {
			pool.AppendCertsFromPEM(p)
		}
		base.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	if len(o.endpoints) > 0 {
		dial := base.DialContext
		base.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			if to, ok := o.endpoints[addr]; ok {
				addr = to
			}
			return dial(ctx, network, addr)
		}
	}
	insecure := base.Clone()
	insecure.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // only for hosts the user listed
	var rt http.RoundTripper = &router{secure: base, insecure: insecure, hosts: o.insecure}
	if o.wrap != nil {
		rt = o.wrap(rt)
	}
	return rt, nil
}

// remoteOptions are the go-containerregistry options shared by every call:
// one transport (retries live in its wrapper), one keychain.
func (o *options) remoteOptions(ctx context.Context) ([]remote.Option, error) {
	rt, err := o.roundTripper()
	if err != nil {
		return nil, err
	}
	return []remote.Option{
		remote.WithContext(ctx),
		remote.WithTransport(rt),
		remote.WithAuthFromKeychain(authn.NewMultiKeychain(envKeychain(o.creds), authn.DefaultKeychain)),
		remote.WithJobs(o.jobs),
		remote.WithRetryBackoff(o.backoff),
		remote.WithRetryStatusCodes(o.retryCodes...),
		remote.WithUserAgent("kubebake"),
	}, nil
}

// envKeychain resolves credentials from the environment variables WithCreds
// named; registries it does not know fall through (Anonymous).
type envKeychain []Cred

func (k envKeychain) Resolve(r authn.Resource) (authn.Authenticator, error) {
	for _, c := range k {
		if !sameRegistry(c.Registry, r.RegistryStr()) {
			continue
		}
		user, pass := os.Getenv(c.UsernameEnv), os.Getenv(c.PasswordEnv)
		if user == "" || pass == "" {
			return nil, fmt.Errorf("credentials for %s: environment variables %s and %s must both be set", c.Registry, c.UsernameEnv, c.PasswordEnv)
		}
		return &authn.Basic{Username: user, Password: pass}, nil
	}
	return authn.Anonymous, nil
}

func sameRegistry(a, b string) bool {
	norm := func(s string) string {
		if s == "docker.io" || s == "registry-1.docker.io" {
			return name.DefaultRegistry
		}
		return s
	}
	return norm(a) == norm(b)
}

// authErr turns a 401/403 from registry host into an *AuthError naming the
// registry and how to log in; other errors pass through.
func (o *options) authErr(host string, err error) error {
	var te *transport.Error
	if !errors.As(err, &te) || (te.StatusCode != http.StatusUnauthorized && te.StatusCode != http.StatusForbidden) {
		return err
	}
	ae := &AuthError{Registry: host, Status: te.StatusCode, Err: err}
	for _, c := range o.creds {
		if sameRegistry(c.Registry, host) {
			ae.UsernameEnv, ae.PasswordEnv = c.UsernameEnv, c.PasswordEnv
		}
	}
	return ae
}

// retriable says whether a failed fetch is worth another attempt: anything
// but an HTTP 4xx answer (other than 408/429), a cancelled context or a
// refused credential.
func retriable(ctx context.Context, err error) bool {
	if ctx.Err() != nil {
		return false
	}
	var te *transport.Error
	if errors.As(err, &te) && te.StatusCode >= 400 && te.StatusCode < 500 &&
		te.StatusCode != http.StatusRequestTimeout && te.StatusCode != http.StatusTooManyRequests {
		return false
	}
	var ae *AuthError
	var de *DriftError
	return !errors.As(err, &ae) && !errors.As(err, &de) && !errors.Is(err, ErrPlatform)
}
