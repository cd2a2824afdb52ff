package host

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/kubebake/kubebake/firstboot/engine"
	"github.com/kubebake/kubebake/firstboot/plan"
)

// DefaultProbeTimeout bounds one health request (connect, TLS, headers,
// body) when the caller's context has no earlier deadline.
const DefaultProbeTimeout = 5 * time.Second

// maxProbeBody is how much of a response body a probe reads.
const maxProbeBody = 64 << 10

// ErrUnhealthy means the endpoint answered, but not with 2xx and the
// expected body.
var ErrUnhealthy = errors.New("unhealthy")

// Health probes HTTP(S) readiness endpoints. It implements engine.Health.
type Health struct {
	root    string
	timeout time.Duration
}

var _ engine.Health = (*Health)(nil)

// NewHealth returns an engine.Health that reads a check's CA, client
// certificate and key from below root ("/" on a host, a temp dir in tests).
func NewHealth(root string) engine.Health {
	return &Health{root: root, timeout: DefaultProbeTimeout}
}

// Probe sends one GET to c.URL with TLS 1.2 or later, trusting c.CA when set
// (the system pool otherwise) and presenting c.Cert/c.Key when set. It
// succeeds on a 2xx status whose body contains c.Expect (when set).
func (h *Health) Probe(ctx context.Context, c plan.HealthCheck) error {
	tc, err := h.tlsConfig(c)
	if err != nil {
		return fmt.Errorf("health %s: %w", c.Name, err)
	}
	ctx, cancel := context.WithTimeout(ctx, h.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.URL, nil)
	if err != nil {
		return fmt.Errorf("health %s: %w", c.Name, err)
	}
	// No proxy (Proxy is nil): health endpoints are the node's own.
	tr := &http.Transport{TLSClientConfig: tc, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return fmt.Errorf("health %s: %w", c.Name, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxProbeBody))
	if err != nil {
		return fmt.Errorf("health %s: GET %s: reading body: %w", c.Name, c.URL, err)
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("health %s: GET %s: %w: %s: %s", c.Name, c.URL, ErrUnhealthy, resp.Status, snippet(body))
	}
	if c.Expect != "" && !strings.Contains(string(body), c.Expect) {
		return fmt.Errorf("health %s: GET %s: %w: body %q lacks %q", c.Name, c.URL, ErrUnhealthy, snippet(body), c.Expect)
	}
	return nil
}

func (h *Health) tlsConfig(c plan.HealthCheck) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.CA != "" {
		p, err := h.path(c.CA)
		if err != nil {
			return nil, err
		}
		pem, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ca %s: no PEM certificate", c.CA)
		}
		tc.RootCAs = pool
	}
	if (c.Cert == "") != (c.Key == "") {
		return nil, fmt.Errorf("client cert and key: set both or neither (cert %q, key %q)", c.Cert, c.Key)
	}
	if c.Cert != "" {
		cp, err := h.path(c.Cert)
		if err != nil {
			return nil, err
		}
		kp, err := h.path(c.Key)
		if err != nil {
			return nil, err
		}
		// The error names the files, never their content.
		pair, err := tls.LoadX509KeyPair(cp, kp)
		if err != nil {
			return nil, fmt.Errorf("client cert %s / key %s: %w", c.Cert, c.Key, err)
		}
		tc.Certificates = []tls.Certificate{pair}
	}
	return tc, nil
}

// path maps a host path below root, like engine.Env.Path.
func (h *Health) path(p string) (string, error) {
	return (&engine.Env{Root: h.root}).Path(p)
}

// snippet keeps error messages short and on one line.
func snippet(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return strings.ReplaceAll(s, "\n", " ")
}
