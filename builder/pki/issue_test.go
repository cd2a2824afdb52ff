package pki

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cloudflare/cfssl/helpers"
)

// checkSet verifies every certificate in set against its request with
// crypto/x509: chain, key usage, subject, SANs, key pair.
func checkSet(t *testing.T, set *Set, reqs []Request, cfg Config) {
	t.Helper()
	reqs, err := validate(reqs)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if cfg.Now != nil {
		now = cfg.Now()
	}
	pools := map[string]*x509.CertPool{}
	for name, ca := range set.CAs {
		if !ca.Cert.IsCA || ca.Cert.KeyUsage&x509.KeyUsageCertSign == 0 {
			t.Errorf("%s: not a CA", name)
		}
		pools[name] = x509.NewCertPool()
		pools[name].AddCert(ca.Cert)
	}
	if got := set.CAs[CA].Cert.Subject; got.CommonName != cfg.Subject.CN ||
		!slices.Equal(got.Organization, []string{cfg.Subject.O}) || !slices.Equal(got.OrganizationalUnit, []string{cfg.Subject.OU}) {
		t.Errorf("ca subject = %v", got)
	}
	if got := set.CAs[FrontProxyCA].Cert.Subject.CommonName; got != FrontProxyCA {
		t.Errorf("front-proxy-ca CN = %s", got)
	}
	for _, r := range reqs {
		if r.Profile == ProfileKeyPair {
			k := set.KeyPairs[r.Name]
			if k == nil {
				t.Errorf("%s: missing", r.Name)
				continue
			}
			priv, err := helpers.ParsePrivateKeyPEM(k.PrivatePEM)
			if err != nil {
				t.Fatalf("%s: %v", r.Name, err)
			}
			blk, _ := pem.Decode(k.PublicPEM)
			pub, err := x509.ParsePKIXPublicKey(blk.Bytes)
			if err != nil || !publicKeyEqual(pub, priv) {
				t.Errorf("%s: public key does not match private key (%v)", r.Name, err)
			}
			continue
		}
		c := set.Certs[r.Name]
		if c == nil {
			t.Errorf("%s: missing", r.Name)
			continue
		}
		eku := profileEKU[r.Profile]
		if _, err := c.Cert.Verify(x509.VerifyOptions{Roots: pools[r.CA], KeyUsages: eku, CurrentTime: now}); err != nil {
			t.Errorf("%s: verify against %s: %v", r.Name, r.CA, err)
		}
		other := CA
		if r.CA == CA {
			other = FrontProxyCA
		}
		if _, err := c.Cert.Verify(x509.VerifyOptions{Roots: pools[other], KeyUsages: eku, CurrentTime: now}); err == nil {
			t.Errorf("%s: verifies against %s too", r.Name, other)
		}
		if !slices.Equal(c.Cert.ExtKeyUsage, eku) {
			t.Errorf("%s: ext key usage = %v, want %v", r.Name, c.Cert.ExtKeyUsage, eku)
		}
		if want := x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment; c.Cert.KeyUsage != want {
			t.Errorf("%s: key usage = %b, want %b", r.Name, c.Cert.KeyUsage, want)
		}
		if c.Cert.IsCA {
			t.Errorf("%s: is a CA", r.Name)
		}
		if c.Cert.Subject.CommonName != r.CN {
			t.Errorf("%s: CN = %s, want %s", r.Name, c.Cert.Subject.CommonName, r.CN)
		}
		if !slices.Equal(sortedSet(c.Cert.Subject.Organization), sortedSet(r.O)) {
			t.Errorf("%s: O = %q, want %q", r.Name, c.Cert.Subject.Organization, r.O)
		}
		wantHosts := r.Hosts
		if wantHosts == nil {
			wantHosts = []string{}
		}
		if got := certHosts(c.Cert); !slices.Equal(got, wantHosts) {
			t.Errorf("%s: SANs = %q, want %q", r.Name, got, wantHosts)
		}
		for _, h := range r.Hosts {
			if !strings.HasPrefix(h, "*") && c.Cert.VerifyHostname(h) != nil && r.Profile != ProfileClient {
				t.Errorf("%s: VerifyHostname(%s) fails", r.Name, h)
			}
		}
		if got, want := c.Cert.NotAfter.Sub(c.Cert.NotBefore), cfg.Expiry; got != want {
			t.Errorf("%s: validity = %s, want %s", r.Name, got, want)
		}
		priv, err := helpers.ParsePrivateKeyPEM(c.KeyPEM)
		if err != nil || !publicKeyEqual(c.Cert.PublicKey, priv) {
			t.Errorf("%s: key does not match (%v)", r.Name, err)
		}
		if !keyMatchesSpec(c.Cert.PublicKey, keySpec{Algo: cfg.Algo, Size: map[string]int{"rsa": 2048, "ecdsa": 256}[cfg.Algo]}) {
			t.Errorf("%s: key is not %s", r.Name, cfg.Algo)
		}
	}
}

func TestIssueSeed(t *testing.T) {
	for _, algo := range []string{"rsa", "ecdsa"} {
		t.Run(algo, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "state")
			cfg := seedConfig(algo)
			reqs := Matrix(seedCluster())
			var calls, last, lastTotal int
			set := mustIssue(t, dir, cfg, reqs, WithJobs(4), WithProgress(func(done, total int) {
				calls++
				if done != last+1 {
					t.Errorf("progress done = %d after %d", done, last)
				}
				last, lastTotal = done, total
			}))
			if want := 2 + len(reqs); calls != want || last != want || lastTotal != want {
				t.Errorf("progress: %d calls, last %d/%d, want %d", calls, last, lastTotal, want)
			}
			checkSet(t, set, reqs, cfg)
			if got := len(set.Issued()); got != 2+len(reqs) {
				t.Errorf("issued %d, want %d", got, 2+len(reqs))
			}
			if set.ServiceAccount == nil || set.ServiceAccount != set.KeyPairs["sa"] {
				t.Error("ServiceAccount not set")
			}
			checkModes(t, dir)
			opensslVerify(t, dir, reqs)
		})
	}
}

func checkModes(t *testing.T, dir string) {
	t.Helper()
	st, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o700 {
		t.Errorf("state dir mode %o", st.Mode().Perm())
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		info, _ := e.Info()
		want := os.FileMode(0o644)
		if strings.HasSuffix(e.Name(), "-key.pem") || strings.HasSuffix(e.Name(), ".key") {
			want = 0o600
		}
		if strings.HasPrefix(e.Name(), ".") {
			t.Errorf("leftover temp file %s", e.Name())
		}
		if info.Mode().Perm() != want {
			t.Errorf("%s: mode %o, want %o", e.Name(), info.Mode().Perm(), want)
		}
	}
}

func opensslVerify(t *testing.T, dir string, reqs []Request) {
	t.Helper()
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		t.Skipf("openssl verify skipped: openssl not on PATH: %v", err)
	}
	for _, r := range reqs {
		if r.Profile == ProfileKeyPair {
			continue
		}
		purpose := map[string]string{ProfileServer: "sslserver", ProfileClient: "sslclient", ProfilePeer: "sslserver"}[r.Profile]
		out, err := exec.Command(openssl, "verify", "-purpose", purpose,
			"-CAfile", filepath.Join(dir, r.CA+".pem"), filepath.Join(dir, r.Name+".pem")).CombinedOutput()
		if err != nil {
			t.Errorf("openssl verify %s: %v\n%s", r.Name, err, out)
		}
	}
	for _, r := range reqs {
		if r.Profile == ProfilePeer {
			out, err := exec.Command(openssl, "verify", "-purpose", "sslclient",
				"-CAfile", filepath.Join(dir, r.CA+".pem"), filepath.Join(dir, r.Name+".pem")).CombinedOutput()
			if err != nil {
				t.Errorf("openssl verify (client) %s: %v\n%s", r.Name, err, out)
			}
		}
	}
}

func TestIssueReuse(t *testing.T) {
	dir := t.TempDir()
	cfg := seedConfig("ecdsa")
	reqs := Matrix(seedCluster())
	mustIssue(t, dir, cfg, reqs)
	before := snapshot(t, dir)
	set := mustIssue(t, dir, cfg, reqs)
	if got := set.Issued(); len(got) != 0 {
		t.Errorf("second Issue issued %q", got)
	}
	if diff := changed(before, snapshot(t, dir)); len(diff) != 0 {
		t.Errorf("files changed: %q", diff)
	}
	checkSet(t, set, reqs, cfg)
}

func TestIssueChanges(t *testing.T) {
	tests := []struct {
		name   string
		cfg    func(*Config)
		reqs   func([]Request) []Request
		issued []string // nil: everything
	}{
		{
			name: "one SAN",
			reqs: func(r []Request) []Request {
				a := findReq(t, r, "apiserver")
				a.Hosts = append(slices.Clone(a.Hosts), "10.4.7.23")
				return r
			},
			issued: []string{"apiserver"},
		},
		{
			name: "one O",
			reqs: func(r []Request) []Request {
				findReq(t, r, "admin").O = []string{"system:masters", "ops"}
				return r
			},
			issued: []string{"admin"},
		},
		{
			name: "profile",
			reqs: func(r []Request) []Request {
				findReq(t, r, "etcd-server-hdss7-12").Profile = ProfileServer
				return r
			},
			issued: []string{"etcd-server-hdss7-12"},
		},
		{
			name: "receivers and purpose only",
			reqs: func(r []Request) []Request {
				for i := range r {
					r[i].Receivers = append(r[i].Receivers, "hdss7-99")
					r[i].Purpose += " (moved)"
				}
				return r
			},
			issued: []string{},
		},
		{
			name:   "CA subject",
			cfg:    func(c *Config) { c.Subject.OU = "ops" },
			issued: nil,
		},
		{
			name:   "expiry",
			cfg:    func(c *Config) { c.Expiry = 87600 * time.Hour },
			issued: nil,
		},
		{
			name:   "algorithm",
			cfg:    func(c *Config) { c.Algo = "rsa" },
			issued: nil,
		},
		{
			name: "near expiry",
			cfg: func(c *Config) {
				c.Now = func() time.Time { return time.Now().Add(c.Expiry - 10*24*time.Hour) }
			},
			issued: nil,
		},
		{
			name:   "renew-before not reached",
			cfg:    func(c *Config) { c.RenewBefore = c.Expiry - 24*time.Hour },
			issued: []string{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := seedConfig("ecdsa")
			reqs := Matrix(seedCluster())
			mustIssue(t, dir, cfg, reqs)
			before := snapshot(t, dir)
			if tt.cfg != nil {
				tt.cfg(&cfg)
			}
			if tt.reqs != nil {
				reqs = tt.reqs(Matrix(seedCluster()))
			}
			set := mustIssue(t, dir, cfg, reqs)
			want := tt.issued
			if want == nil {
				want = []string{CA, FrontProxyCA}
				for _, r := range reqs {
					if r.Profile != ProfileKeyPair || tt.name == "algorithm" {
						want = append(want, r.Name)
					}
				}
				want = sortedSet(want)
			}
			if got := set.Issued(); !slices.Equal(got, want) && !(len(got) == 0 && len(want) == 0) {
				t.Errorf("issued %q, want %q", got, want)
			}
			checkSet(t, set, reqs, cfg)
			if tt.name == "near expiry" {
				// Checked at the fake time: x509 would otherwise reject a
				// certificate not yet valid.
				return
			}
			// Only the issued ones' files changed (plus records).
			for _, f := range changed(before, snapshot(t, dir)) {
				base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(f, ".json"), ".pem"), "-key")
				base = strings.TrimSuffix(strings.TrimSuffix(base, ".key"), ".pub")
				if !slices.Contains(want, base) && !strings.HasSuffix(f, ".json") {
					t.Errorf("%s changed but %s was not issued", f, base)
				}
			}
		})
	}
}

func TestIssueReceiversUpdateRecord(t *testing.T) {
	dir := t.TempDir()
	cfg := seedConfig("ecdsa")
	reqs := Matrix(seedCluster())
	mustIssue(t, dir, cfg, reqs)
	findReq(t, reqs, "harbor").Receivers = []string{"hdss7-201"}
	mustIssue(t, dir, cfg, reqs)
	l, err := Ledger(dir, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range l {
		if e.Name == "harbor" && !slices.Equal(e.Receivers, []string{"hdss7-201"}) {
			t.Errorf("harbor receivers = %q", e.Receivers)
		}
	}
}

func TestIssueBrokenFiles(t *testing.T) {
	tests := []struct {
		name   string
		damage func(t *testing.T, dir string)
		issued []string
	}{
		{"corrupt key", func(t *testing.T, dir string) {
			write(t, filepath.Join(dir, "admin-key.pem"), "garbage")
		}, []string{"admin"}},
		{"key of another cert", func(t *testing.T, dir string) {
			b, _ := os.ReadFile(filepath.Join(dir, "flannel-key.pem"))
			write(t, filepath.Join(dir, "admin-key.pem"), string(b))
		}, []string{"admin"}},
		{"missing cert", func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, "harbor.pem"))
		}, []string{"harbor"}},
		{"missing record", func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, "kube-proxy.json"))
		}, []string{"kube-proxy"}},
		{"truncated cert", func(t *testing.T, dir string) {
			b, _ := os.ReadFile(filepath.Join(dir, "kube-scheduler.pem"))
			write(t, filepath.Join(dir, "kube-scheduler.pem"), string(b[:len(b)/2]))
		}, []string{"kube-scheduler"}},
		{"cert signed by another CA", func(t *testing.T, dir string) {
			other := t.TempDir()
			cfg := seedConfig("ecdsa")
			mustIssue(t, other, cfg, Matrix(seedCluster()))
			for _, f := range []string{"admin.pem", "admin-key.pem"} {
				b, _ := os.ReadFile(filepath.Join(other, f))
				write(t, filepath.Join(dir, f), string(b))
			}
		}, []string{"admin"}},
		{"CA key replaced", func(t *testing.T, dir string) {
			b, _ := os.ReadFile(filepath.Join(dir, "front-proxy-ca-key.pem"))
			write(t, filepath.Join(dir, "ca-key.pem"), string(b))
		}, nil},
		{"sa.pub lost", func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, "sa.pub"))
		}, []string{}},
		{"sa.key corrupt", func(t *testing.T, dir string) {
			write(t, filepath.Join(dir, "sa.key"), "garbage")
		}, []string{"sa"}},
		{"leftover temp file", func(t *testing.T, dir string) {
			write(t, filepath.Join(dir, ".admin.pem.tmp-123"), "half")
		}, []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := seedConfig("ecdsa")
			reqs := Matrix(seedCluster())
			mustIssue(t, dir, cfg, reqs)
			tt.damage(t, dir)
			set := mustIssue(t, dir, cfg, reqs)
			want := tt.issued
			if want == nil {
				want = []string{CA}
				for _, r := range reqs {
					if r.CA == CA {
						want = append(want, r.Name)
					}
				}
				want = sortedSet(want)
			}
			if got := set.Issued(); !slices.Equal(got, want) && !(len(got) == 0 && len(want) == 0) {
				t.Errorf("issued %q, want %q", got, want)
			}
			checkSet(t, set, reqs, cfg)
			checkModes(t, dir)
			// And the state is settled again.
			if got := mustIssue(t, dir, cfg, reqs).Issued(); len(got) != 0 {
				t.Errorf("third Issue issued %q", got)
			}
		})
	}
}

func write(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestIssueInvalid(t *testing.T) {
	ok := Request{Name: "x", CA: CA, Profile: ProfileClient, CN: "x"}
	tests := []struct {
		name string
		cfg  func(*Config)
		reqs []Request
		opts []Option
		want error
	}{
		{"jobs 0", nil, nil, []Option{WithJobs(0)}, ErrInvalidOption},
		{"jobs twice", nil, nil, []Option{WithJobs(1), WithJobs(2)}, ErrInvalidOption},
		{"nil logger", nil, nil, []Option{WithLogger(nil)}, ErrInvalidOption},
		{"nil progress", nil, nil, []Option{WithProgress(nil)}, ErrInvalidOption},
		{"nil option", nil, nil, []Option{nil}, ErrInvalidOption},
		{"bad algo", func(c *Config) { c.Algo = "dsa" }, nil, nil, ErrInvalidConfig},
		{"small rsa", func(c *Config) { c.Size = 1024 }, nil, nil, ErrInvalidConfig},
		{"bad curve", func(c *Config) { c.Algo, c.Size = "ecdsa", 2048 }, nil, nil, ErrInvalidConfig},
		{"no CA CN", func(c *Config) { c.Subject.CN = "" }, nil, nil, ErrInvalidConfig},
		{"renew-before too long", func(c *Config) { c.RenewBefore = c.Expiry }, nil, nil, ErrInvalidConfig},
		{"duplicate", nil, []Request{ok, ok}, nil, ErrInvalidRequest},
		{"reserved name", nil, []Request{{Name: "ca", CA: CA, Profile: ProfileClient, CN: "x"}}, nil, ErrInvalidRequest},
		{"path in name", nil, []Request{{Name: "../x", CA: CA, Profile: ProfileClient, CN: "x"}}, nil, ErrInvalidRequest},
		{"unknown CA", nil, []Request{{Name: "x", CA: "other", Profile: ProfileClient, CN: "x"}}, nil, ErrInvalidRequest},
		{"unknown profile", nil, []Request{{Name: "x", CA: CA, Profile: "www", CN: "x"}}, nil, ErrInvalidRequest},
		{"no CN", nil, []Request{{Name: "x", CA: CA, Profile: ProfileClient}}, nil, ErrInvalidRequest},
		{"bad host", nil, []Request{{Name: "x", CA: CA, Profile: ProfileServer, CN: "x", Hosts: []string{"a b"}}}, nil, ErrInvalidRequest},
		{"key pair with CA", nil, []Request{{Name: "x", CA: CA, Profile: ProfileKeyPair}}, nil, ErrInvalidRequest},
		{"key file collision", nil, []Request{ok, {Name: "x-key", CA: CA, Profile: ProfileClient, CN: "x"}}, nil, ErrInvalidRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := seedConfig("ecdsa")
			if tt.cfg != nil {
				tt.cfg(&cfg)
			}
			dir := filepath.Join(t.TempDir(), "state")
			_, err := Issue(context.Background(), dir, cfg, tt.reqs, tt.opts...)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if _, err := os.Stat(dir); err == nil {
				t.Error("state dir created for invalid input")
			}
		})
	}
}

func TestIssueCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Issue(ctx, t.TempDir(), seedConfig("ecdsa"), Matrix(seedCluster()))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

func TestIssueLogsWithoutKeys(t *testing.T) {
	var buf bytes.Buffer
	dir := t.TempDir()
	cfg := seedConfig("ecdsa")
	reqs := Matrix(seedCluster())
	mustIssue(t, dir, cfg, reqs, WithLogger(newTextLogger(&buf)))
	write(t, filepath.Join(dir, "admin-key.pem"), "garbage")
	mustIssue(t, dir, cfg, reqs, WithLogger(newTextLogger(&buf)))
	out := buf.String()
	if !strings.Contains(out, "name=admin reason=\"key unreadable\"") {
		t.Errorf("no re-issue reason in log:\n%s", out)
	}
	if strings.Contains(out, "PRIVATE KEY") {
		t.Error("log contains a key")
	}
}
