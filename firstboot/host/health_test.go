package host

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kubebake/kubebake/firstboot/plan"
)

// testPKI is a CA with a server certificate for 127.0.0.1 and a client
// certificate, the shape of etcd's peer/client PKI.
type testPKI struct {
	caPEM             []byte
	pool              *x509.CertPool
	server            tls.Certificate
	clientPEM, keyPEM []byte
	otherCAPEM        []byte // an unrelated CA
	otherClientPEM    []byte // a client cert the server does not trust
	otherClientKeyPEM []byte
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	serial := int64(0)
	newKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	sign := func(tmpl, parent *x509.Certificate, pub any, signer *ecdsa.PrivateKey) (*x509.Certificate, []byte) {
		serial++
		tmpl.SerialNumber = big.NewInt(serial)
		tmpl.NotBefore = time.Now().Add(-time.Hour)
		tmpl.NotAfter = time.Now().Add(time.Hour)
		der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
		if err != nil {
			t.Fatal(err)
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		return c, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	}
	keyPEM := func(k *ecdsa.PrivateKey) []byte {
		der, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
	}
	newCA := func(cn string) (*x509.Certificate, *ecdsa.PrivateKey, []byte) {
		k := newKey()
		tmpl := &x509.Certificate{Subject: pkix.Name{CommonName: cn}, IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
		c, p := sign(tmpl, tmpl, &k.PublicKey, k)
		return c, k, p
	}

	ca, caKey, caPEM := newCA("kubebake test CA")
	other, otherKey, otherPEM := newCA("someone else")
	p := &testPKI{caPEM: caPEM, otherCAPEM: otherPEM, pool: x509.NewCertPool()}
	p.pool.AddCert(ca)

	sk := newKey()
	_, spem := sign(&x509.Certificate{Subject: pkix.Name{CommonName: "etcd"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}, ca, &sk.PublicKey, caKey)
	srv, err := tls.X509KeyPair(spem, keyPEM(sk))
	if err != nil {
		t.Fatal(err)
	}
	p.server = srv

	ck := newKey()
	_, p.clientPEM = sign(&x509.Certificate{Subject: pkix.Name{CommonName: "firstboot"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}, ca, &ck.PublicKey, caKey)
	p.keyPEM = keyPEM(ck)

	ok := newKey()
	_, p.otherClientPEM = sign(&x509.Certificate{Subject: pkix.Name{CommonName: "intruder"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}, other, &ok.PublicKey, otherKey)
	p.otherClientKeyPEM = keyPEM(ok)
	return p
}

// mtlsServer serves h over TLS 1.2+, requiring a client certificate signed
// by the test CA (as etcd does with --client-cert-auth).
func mtlsServer(t *testing.T, p *testPKI, h http.Handler) *httptest.Server {
	t.Helper()
	s := httptest.NewUnstartedServer(h)
	s.TLS = &tls.Config{
		Certificates: []tls.Certificate{p.server},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    p.pool,
		MinVersion:   tls.VersionTLS12,
	}
	s.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are the point
	s.StartTLS()
	t.Cleanup(s.Close)
	return s
}

// writeFiles writes name → content below root.
func writeFiles(t *testing.T, root string, files map[string][]byte) {
	t.Helper()
	for name, b := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func TestHealthProbe(t *testing.T) {
	p := newTestPKI(t)
	root := t.TempDir()
	writeFiles(t, root, map[string][]byte{
		"/etc/etcd/ca.pem":           p.caPEM,
		"/etc/etcd/client.pem":       p.clientPEM,
		"/etc/etcd/client-key.pem":   p.keyPEM,
		"/etc/etcd/other-ca.pem":     p.otherCAPEM,
		"/etc/etcd/intruder.pem":     p.otherClientPEM,
		"/etc/etcd/intruder-key.pem": p.otherClientKeyPEM,
	})
	srv := mtlsServer(t, p, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/health":
			w.Write([]byte(`{"health":"true","reason":""}`))
		case "/readyz":
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte("[-]etcd failed: reason withheld\nreadyz check failed"))
		default:
			http.NotFound(w, r)
		}
	}))
	good := plan.HealthCheck{Name: "etcd", URL: srv.URL + "/health", CA: "/etc/etcd/ca.pem",
		Cert: "/etc/etcd/client.pem", Key: "/etc/etcd/client-key.pem", Expect: `"health":"true"`, Attempts: 1, Interval: "1s"}
	with := func(f func(*plan.HealthCheck)) plan.HealthCheck { c := good; f(&c); return c }

	for _, tc := range []struct {
		name      string
		check     plan.HealthCheck
		unhealthy bool     // errors.Is(err, ErrUnhealthy)
		want      []string // substrings of the error; nil means success
	}{
		{"client cert, CA, expected body", good, false, nil},
		{"no expect", with(func(c *plan.HealthCheck) { c.Expect = "" }), false, nil},
		{"body lacks expect", with(func(c *plan.HealthCheck) { c.Expect = `"health":"false"` }), true, []string{"health etcd", srv.URL + "/health", "lacks"}},
		{"503 with reason", with(func(c *plan.HealthCheck) { c.URL = srv.URL + "/readyz" }), true, []string{"503", "readyz check failed"}},
		{"404", with(func(c *plan.HealthCheck) { c.URL = srv.URL + "/nope" }), true, []string{"404"}},
		{"no client cert", with(func(c *plan.HealthCheck) { c.Cert, c.Key = "", "" }), false, []string{"health etcd"}},
		{"client cert from another CA", with(func(c *plan.HealthCheck) {
			c.Cert, c.Key = "/etc/etcd/intruder.pem", "/etc/etcd/intruder-key.pem"
		}), false, []string{"health etcd"}},
		{"server not signed by CA", with(func(c *plan.HealthCheck) { c.CA = "/etc/etcd/other-ca.pem" }), false, []string{"certificate"}},
		{"cert without key", with(func(c *plan.HealthCheck) { c.Key = "" }), false, []string{"set both or neither"}},
		{"missing CA file", with(func(c *plan.HealthCheck) { c.CA = "/etc/etcd/nope.pem" }), false, []string{"ca:"}},
		{"path escaping root", with(func(c *plan.HealthCheck) { c.CA = "/etc/../../x.pem" }), false, []string{"not a clean path"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := NewHealth(root).Probe(context.Background(), tc.check)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("Probe: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Probe succeeded, want an error")
			}
			if errors.Is(err, ErrUnhealthy) != tc.unhealthy {
				t.Errorf("errors.Is(%v, ErrUnhealthy) = %v, want %v", err, !tc.unhealthy, tc.unhealthy)
			}
			for _, s := range tc.want {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q lacks %q", err, s)
				}
			}
			if strings.Contains(err.Error(), "PRIVATE KEY") {
				t.Errorf("error leaks key material: %q", err)
			}
		})
	}
}

func TestHealthProbeRefusesOldTLS(t *testing.T) {
	p := newTestPKI(t)
	root := t.TempDir()
	writeFiles(t, root, map[string][]byte{"/ca.pem": p.caPEM})
	s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok")) }))
	s.TLS = &tls.Config{Certificates: []tls.Certificate{p.server}, MaxVersion: tls.VersionTLS11, MinVersion: tls.VersionTLS10}
	s.Config.ErrorLog = log.New(io.Discard, "", 0)
	s.StartTLS()
	defer s.Close()
	err := NewHealth(root).Probe(context.Background(), plan.HealthCheck{Name: "old", URL: s.URL, CA: "/ca.pem", Attempts: 1})
	if err == nil || !strings.Contains(err.Error(), "protocol version") {
		t.Fatalf("Probe against a TLS 1.1 server: %v, want a protocol version error", err)
	}
}

func TestHealthProbePlainHTTP(t *testing.T) {
	// kubelet's :10248/healthz and kube-proxy's :10256/healthz are plain HTTP.
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok")) }))
	defer s.Close()
	if err := NewHealth(t.TempDir()).Probe(context.Background(), plan.HealthCheck{Name: "kubelet", URL: s.URL + "/healthz", Expect: "ok", Attempts: 1}); err != nil {
		t.Fatal(err)
	}
}
