// Package testregistry starts a real OCI distribution registry (Debian's
// docker-registry package, the CNCF distribution registry 2.8) as a child
// process for tests: TLS from a CA it generates, optional htpasswd auth,
// storage in t.TempDir(), stopped in t.Cleanup. StartProcess runs one outside
// a test (scripts/benchmirror).
//
// htpasswd entries are bcrypt hashes made with golang.org/x/crypto/bcrypt
// (already in go.sum through cfssl), so apache2-utils is not needed.
package testregistry

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// Binary is the registry executable the helper runs.
const Binary = "/usr/bin/docker-registry"

// Registry is a running registry process.
type Registry struct {
	// Addr is host:port, always 127.0.0.1:<port>.
	Addr string
	// CAPEM is the PEM of the CA that signed the server certificate; nil
	// when the registry serves plain HTTP (WithoutTLS).
	CAPEM []byte
	// User and Password are the htpasswd credentials; empty without WithAuth.
	User, Password string
	// Dir is the registry's storage root.
	Dir string

	tls        bool
	serverName string // TLS name to verify, when not 127.0.0.1
	cmd        *exec.Cmd
	log        *lockedBuffer
}

// Option configures Start.
type Option func(*config)

type config struct {
	user, password string
	plain          bool
	names          []string
	ca, cert, key  []byte // a given certificate instead of a generated one
	serverName     string
}

// WithAuth turns on htpasswd basic auth with one user. Default: no auth.
func WithAuth(user, password string) Option {
	return func(c *config) { c.user, c.password = user, password }
}

// WithNames adds DNS names to the server certificate, for a test that
// reaches the registry under a name that does not resolve (an endpoint).
// Default: 127.0.0.1 and localhost only.
func WithNames(names ...string) Option {
	return func(c *config) { c.names = append(c.names, names...) }
}

// WithCert serves a given certificate (e.g. the harbor.od.com one kubebake
// issued) for serverName; clients verify it against caPEM. Default: a
// generated CA and certificate for 127.0.0.1 and localhost.
func WithCert(caPEM, certPEM, keyPEM []byte, serverName string) Option {
	return func(c *config) { c.ca, c.cert, c.key, c.serverName = caPEM, certPEM, keyPEM, serverName }
}

// WithoutTLS serves plain HTTP. Default: TLS with a generated CA.
func WithoutTLS() Option {
	return func(c *config) { c.plain = true }
}

// Start runs a registry for the test and returns once /v2/ answers.
// Without the binary the test is skipped, or fails when $CI is set.
func Start(t testing.TB, opts ...Option) *Registry {
	t.Helper()
	if _, err := os.Stat(Binary); err != nil {
		msg := fmt.Sprintf("%s not found: install Debian's docker-registry package (apt-get install -y docker-registry; .ci/run installs docker-registry)", Binary)
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	r, stop, err := StartProcess(t.TempDir(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			log := r.log.String()
			if len(log) > 4000 {
				log = "…" + log[len(log)-4000:]
			}
			t.Logf("registry %s log (tail):\n%s", r.Addr, log)
		}
	})
	return r
}

// StartProcess runs a registry outside a test (benchmarks, scripts), with
// its configuration, certificates and storage under dir, and returns once
// /v2/ answers. stop kills the process and waits for it; it is safe to
// call more than once. dir is left for the caller to remove.
func StartProcess(dir string, opts ...Option) (r *Registry, stop func(), err error) {
	if _, err := os.Stat(Binary); err != nil {
		return nil, nil, fmt.Errorf("testregistry: %s not found: install Debian's docker-registry package (apt-get install -y docker-registry)", Binary)
	}
	var c config
	for _, o := range opts {
		o(&c)
	}
	r = &Registry{Dir: filepath.Join(dir, "storage"), User: c.user, Password: c.password, tls: !c.plain}

	var tlsBlock string
	if !c.plain {
		caPEM, certPEM, keyPEM, err := c.ca, c.cert, c.key, error(nil)
		if caPEM == nil {
			caPEM, certPEM, keyPEM, err = GenerateCerts(append([]string{"127.0.0.1", "localhost"}, c.names...))
		}
		if err != nil {
			return nil, nil, fmt.Errorf("testregistry: certs: %w", err)
		}
		r.serverName = c.serverName
		r.CAPEM = caPEM
		if err := writeFile(filepath.Join(dir, "server.crt"), certPEM); err != nil {
			return nil, nil, err
		}
		if err := writeFile(filepath.Join(dir, "server.key"), keyPEM); err != nil {
			return nil, nil, err
		}
		tlsBlock = fmt.Sprintf("  tls:\n    certificate: %s\n    key: %s\n", filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key"))
	}
	var authBlock string
	if c.user != "" {
		hash, err := bcrypt.GenerateFromPassword([]byte(c.password), bcrypt.MinCost)
		if err != nil {
			return nil, nil, fmt.Errorf("testregistry: bcrypt: %w", err)
		}
		if err := writeFile(filepath.Join(dir, "htpasswd"), []byte(c.user+":"+string(hash)+"\n")); err != nil {
			return nil, nil, err
		}
		authBlock = fmt.Sprintf("auth:\n  htpasswd:\n    realm: kubebake-test\n    path: %s\n", filepath.Join(dir, "htpasswd"))
	}

	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		addr, err := freeAddr()
		if err != nil {
			return nil, nil, fmt.Errorf("testregistry: free port: %w", err)
		}
		cfg := fmt.Sprintf(`version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: %s
  secret: kubebake-testregistry
%s%s`, r.Dir, addr, tlsBlock, authBlock)
		cfgPath := filepath.Join(dir, "config.yml")
		if err := writeFile(cfgPath, []byte(cfg)); err != nil {
			return nil, nil, err
		}
		r.Addr = addr
		r.log = &lockedBuffer{}
		cmd := exec.Command(Binary, "serve", cfgPath)
		cmd.Stdout, cmd.Stderr = r.log, r.log
		if err := cmd.Start(); err != nil {
			return nil, nil, fmt.Errorf("testregistry: start %s: %w", Binary, err)
		}
		r.cmd = cmd
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }()
		if lastErr = r.wait(exited); lastErr == nil {
			var once sync.Once
			return r, func() {
				once.Do(func() {
					_ = cmd.Process.Kill()
					<-exited
				})
			}, nil
		}
		_ = cmd.Process.Kill()
		<-exited
	}
	return nil, nil, fmt.Errorf("testregistry: registry did not start: %v\n%s", lastErr, r.log.String())
}

func (r *Registry) wait(exited <-chan struct{}) error {
	client := &http.Client{Transport: r.Transport(), Timeout: 2 * time.Second}
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return fmt.Errorf("registry exited")
		default:
		}
		resp, err := client.Get(r.URL() + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusUnauthorized {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("/v2/ did not answer within 15s")
}

// URL is the base URL (https://127.0.0.1:port, or http:// with WithoutTLS).
func (r *Registry) URL() string {
	if r.tls {
		return "https://" + r.Addr
	}
	return "http://" + r.Addr
}

// Transport returns a fresh http.Transport that trusts the registry's CA.
func (r *Registry) Transport() *http.Transport {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if r.CAPEM != nil {
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(r.CAPEM)
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12, ServerName: r.serverName}
	}
	return tr
}

// Log returns what the registry process printed so far.
func (r *Registry) Log() string { return r.log.String() }

// GenerateCerts makes a CA and a server certificate for hosts (IP addresses
// or DNS names), returning PEMs of the CA certificate, the server
// certificate and the server's private key.
func GenerateCerts(hosts []string) (caPEM, certPEM, keyPEM []byte, err error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "kubebake test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, nil, nil, err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, nil, nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: hosts[0]},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, nil, nil, err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, nil, err
	}
	caPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM = pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
	return caPEM, certPEM, keyPEM, nil
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func writeFile(path string, b []byte) error {
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return fmt.Errorf("testregistry: %w", err)
	}
	return nil
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.b.Len() > 1<<20 { // keep memory bounded on chatty runs
		return len(p), nil
	}
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.TrimSpace(l.b.String())
}
