package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/kubebake/kubebake/internal/testregistry"
)

// The process tests run the test binary as the command itself.
func TestMain(m *testing.M) {
	if os.Getenv("HARBOR_STANDIN_TEST_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

const testUser = "admin"

// standin is one running stand-in in a temp directory.
type standin struct {
	dir, addr, pw string
	host          string // harbor.od.com:PORT
	pool          *x509.CertPool
	tr            *http.Transport
}

func needRegistry(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("docker-registry"); err != nil {
		t.Skip("docker-registry not on PATH (apt-get install -y docker-registry)")
	}
}

// newSetup makes <tmp>/state/pki (a throwaway CA, harbor.od.com's
// certificate), a password file and a free loopback port.
func newSetup(t *testing.T) *standin {
	t.Helper()
	dir := t.TempDir()
	pki := filepath.Join(dir, "state", "pki")
	if err := os.MkdirAll(pki, 0o700); err != nil {
		t.Fatal(err)
	}
	caPEM, certPEM, keyPEM, err := testregistry.GenerateCerts([]string{"harbor.od.com"})
	if err != nil {
		t.Fatal(err)
	}
	for f, b := range map[string][]byte{"ca.pem": caPEM, "harbor.pem": certPEM, "harbor-key.pem": keyPEM} {
		if err := os.WriteFile(filepath.Join(pki, f), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s := &standin{dir: dir, pw: rand.Text(), pool: x509.NewCertPool()}
	if !s.pool.AppendCertsFromPEM(caPEM) {
		t.Fatal("test CA: no certificate")
	}
	if err := os.WriteFile(filepath.Join(dir, "password"), []byte(s.pw+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.addr = l.Addr().String()
	l.Close()
	_, port, _ := net.SplitHostPort(s.addr)
	s.host = "harbor.od.com:" + port
	// harbor.od.com:PORT dials the stand-in; TLS checks the name.
	s.tr = &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: s.pool},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, s.addr)
		},
	}
	return s
}

func (s *standin) args(public string) []string {
	return []string{"-state", filepath.Join(s.dir, "state"), "-dir", filepath.Join(s.dir, "harbor"),
		"-addr", s.addr, "-user", testUser, "-password-file", filepath.Join(s.dir, "password"),
		"-public-projects", public}
}

// waitUp polls until the stand-in answers /v2/ over TLS (any status).
func (s *standin) waitUp(t *testing.T, exited <-chan struct{}) {
	t.Helper()
	c := &http.Client{Transport: s.tr, Timeout: time.Second}
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := c.Get("https://" + s.host + "/v2/")
		if err == nil {
			resp.Body.Close()
			return
		}
		select {
		case <-exited:
			t.Fatalf("the stand-in exited before it answered (%v)", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the stand-in did not answer within 15 s: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuf) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuf) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// startInProcess runs run() in a goroutine; the cleanup cancels it and
// expects nil.
func startInProcess(t *testing.T, public string) *standin {
	t.Helper()
	needRegistry(t)
	s := newSetup(t)
	logs := &syncBuf{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("stand-in output:\n%s", logs)
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	var runErr error
	go func() {
		defer close(done)
		runErr = run(ctx, options{
			state: filepath.Join(s.dir, "state"), dir: filepath.Join(s.dir, "harbor"), addr: s.addr,
			user: testUser, pwFile: filepath.Join(s.dir, "password"), public: public, log: logs,
		})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			t.Error("run did not return within 15 s of the cancel")
			return
		}
		if runErr != nil {
			t.Errorf("run: %v", runErr)
		}
	})
	s.waitUp(t, done)
	return s
}

func (s *standin) ref(t *testing.T, r string) name.Reference {
	t.Helper()
	ref, err := name.ParseReference(s.host + "/" + r)
	if err != nil {
		t.Fatal(err)
	}
	return ref
}

func (s *standin) login() authn.Authenticator {
	return &authn.Basic{Username: testUser, Password: s.pw}
}

func (s *standin) push(t *testing.T, r string) v1.Image {
	t.Helper()
	img, err := random.Image(1024, 2)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(s.ref(t, r), img, remote.WithTransport(s.tr), remote.WithAuth(s.login())); err != nil {
		t.Fatalf("push %s with the login: %v", r, err)
	}
	return img
}

// pull fetches the manifest and every layer; it returns the digest.
func (s *standin) pull(t *testing.T, r string, auth authn.Authenticator) (v1.Hash, error) {
	t.Helper()
	img, err := remote.Image(s.ref(t, r), remote.WithTransport(s.tr), remote.WithAuth(auth))
	if err != nil {
		return v1.Hash{}, err
	}
	layers, err := img.Layers()
	if err != nil {
		return v1.Hash{}, err
	}
	for _, l := range layers {
		rc, err := l.Compressed()
		if err != nil {
			return v1.Hash{}, err
		}
		_, err = io.Copy(io.Discard, rc)
		rc.Close()
		if err != nil {
			return v1.Hash{}, err
		}
	}
	return img.Digest()
}

// do sends method to requestURI (sent as is, not cleaned or re-encoded).
func (s *standin) do(t *testing.T, method, requestURI string, user, pw string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, "https://"+s.host+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.URL = &url.URL{Scheme: "https", Host: s.host, Opaque: requestURI}
	req.Header.Set("Accept", "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json")
	if user != "" {
		req.SetBasicAuth(user, pw)
	}
	resp, err := (&http.Client{Transport: s.tr, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, requestURI, err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

func wantStatus(err error, code int) bool {
	var te *transport.Error
	return errors.As(err, &te) && te.StatusCode == code
}

func want401(t *testing.T, what string, resp *http.Response, body string) {
	t.Helper()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("%s: %s, want 401 (body %q)", what, resp.Status, body)
		return
	}
	if got := resp.Header.Get("WWW-Authenticate"); got != `Basic realm="harbor.od.com"` {
		t.Errorf("%s: WWW-Authenticate %q", what, got)
	}
	if resp.Request.Method != http.MethodHead && !strings.Contains(body, `"code":"UNAUTHORIZED"`) {
		t.Errorf("%s: body %q, want distribution's UNAUTHORIZED error", what, body)
	}
}

func TestPublicProject(t *testing.T) {
	s := startInProcess(t, "public")
	pubImg := s.push(t, "public/x:1")
	privImg := s.push(t, "private/y:1")
	pubDig, _ := pubImg.Digest()
	privDig, _ := privImg.Digest()

	// Anonymous: pulls from public/ only.
	if d, err := s.pull(t, "public/x:1", authn.Anonymous); err != nil || d != pubDig {
		t.Errorf("anonymous pull of public/x:1: %v %v, want %v", d, err, pubDig)
	}
	if resp, body := s.do(t, http.MethodHead, "/v2/public/x/manifests/1", "", ""); resp.StatusCode != http.StatusOK {
		t.Errorf("anonymous HEAD public/x manifest: %s %q", resp.Status, body)
	}
	if resp, body := s.do(t, http.MethodGet, "/v2/public/x/tags/list", "", ""); resp.StatusCode != http.StatusOK || !strings.Contains(body, `"1"`) {
		t.Errorf("anonymous tags/list of public/x: %s %q", resp.Status, body)
	}
	resp, body := s.do(t, http.MethodGet, "/v2/private/y/manifests/1", "", "")
	want401(t, "anonymous GET of private/y:1's manifest", resp, body)
	if _, err := s.pull(t, "private/y:1", authn.Anonymous); !wantStatus(err, http.StatusUnauthorized) {
		t.Errorf("anonymous pull of private/y:1: %v, want 401", err)
	}
	resp, body = s.do(t, http.MethodGet, "/v2/", "", "")
	want401(t, "anonymous GET /v2/", resp, body)
	resp, body = s.do(t, http.MethodGet, "/v2/_catalog", "", "")
	want401(t, "anonymous GET /v2/_catalog", resp, body)
	resp, body = s.do(t, http.MethodDelete, "/v2/public/x/manifests/"+pubDig.String(), "", "")
	want401(t, "anonymous DELETE in public/", resp, body)
	resp, body = s.do(t, http.MethodPost, "/v2/public/z/blobs/uploads/", "", "")
	want401(t, "anonymous POST of an upload to public/z", resp, body)
	img, _ := random.Image(256, 1)
	if err := remote.Write(s.ref(t, "public/z:1"), img, remote.WithTransport(s.tr)); !wantStatus(err, http.StatusUnauthorized) {
		t.Errorf("anonymous push to public/z:1: %v, want 401", err)
	}

	// With the login: both.
	if d, err := s.pull(t, "public/x:1", s.login()); err != nil || d != pubDig {
		t.Errorf("pull of public/x:1 with the login: %v %v", d, err)
	}
	if d, err := s.pull(t, "private/y:1", s.login()); err != nil || d != privDig {
		t.Errorf("pull of private/y:1 with the login: %v %v", d, err)
	}
	if resp, body := s.do(t, http.MethodGet, "/v2/", testUser, s.pw); resp.StatusCode != http.StatusOK {
		t.Errorf("GET /v2/ with the login: %s %q", resp.Status, body)
	}

	// Wrong credentials: 401, also where anonymous reads pass.
	bad := &authn.Basic{Username: testUser, Password: s.pw + "x"}
	if _, err := s.pull(t, "private/y:1", bad); !wantStatus(err, http.StatusUnauthorized) {
		t.Errorf("pull of private/y:1 with a wrong password: %v, want 401", err)
	}
	resp, body = s.do(t, http.MethodGet, "/v2/public/x/manifests/1", testUser, s.pw+"x")
	want401(t, "GET public/x manifest with a wrong password", resp, body)
	resp, body = s.do(t, http.MethodGet, "/v2/", "nobody", s.pw)
	want401(t, "GET /v2/ with a wrong user", resp, body)

	// Path tricks into private/ from public/.
	for _, p := range []string{
		"/v2/public/../private/y/manifests/1",
		"/v2/public/x/../../private/y/manifests/1",
		"/v2/public/./../private/y/manifests/1",
		"/v2/public//../private/y/manifests/1",
		"/v2/public/%2E%2E/private/y/manifests/1",
		"/v2/public/%2e%2e/private/y/manifests/1",
		"/v2/public%2F..%2Fprivate/y/manifests/1",
		"/v2/public/..%2Fprivate/y/manifests/1",
		"/v2/public/x/..%5C..%5Cprivate/y/manifests/1",
	} {
		resp, body := s.do(t, http.MethodGet, p, "", "")
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("anonymous GET %s: %s %q, want 401", p, resp.Status, body)
		}
	}

	// The registry's Location for an upload works through the proxy:
	// relative, or absolute on the name the client used.
	resp, body = s.do(t, http.MethodPost, "/v2/private/y/blobs/uploads/", testUser, s.pw)
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusAccepted ||
		!(strings.HasPrefix(loc, "/v2/private/y/blobs/uploads/") || strings.HasPrefix(loc, "https://"+s.host+"/v2/private/y/blobs/uploads/")) {
		t.Fatalf("POST of an upload with the login: %s Location %q %q", resp.Status, loc, body)
	}
	u, err := url.Parse(loc)
	if err != nil {
		t.Fatal(err)
	}
	if resp, body := s.do(t, http.MethodGet, u.RequestURI(), testUser, s.pw); resp.StatusCode != http.StatusNoContent {
		t.Errorf("GET of the upload's Location %s: %s %q", loc, resp.Status, body)
	}
}

func TestNoPublicProjects(t *testing.T) {
	s := startInProcess(t, "")
	img := s.push(t, "public/x:1")
	dig, _ := img.Digest()
	resp, body := s.do(t, http.MethodGet, "/v2/public/x/manifests/1", "", "")
	want401(t, "anonymous GET of public/x:1's manifest without -public-projects", resp, body)
	if _, err := s.pull(t, "public/x:1", authn.Anonymous); !wantStatus(err, http.StatusUnauthorized) {
		t.Errorf("anonymous pull of public/x:1: %v, want 401", err)
	}
	if d, err := s.pull(t, "public/x:1", s.login()); err != nil || d != dig {
		t.Errorf("pull of public/x:1 with the login: %v %v", d, err)
	}
}

func TestParseProjects(t *testing.T) {
	if ps, err := parseProjects(" public, ,library "); err != nil || strings.Join(ps, "|") != "public|library" {
		t.Errorf("parseProjects: %q %v", ps, err)
	}
	for _, bad := range []string{"a/b", "..", "a%2F"} {
		if _, err := parseProjects(bad); err == nil {
			t.Errorf("parseProjects(%q): no error", bad)
		}
	}
}

// TestProcess runs the command (this test binary as main) and checks the
// child docker-registry's life: SIGTERM stops both with exit 0, SIGKILL of
// the stand-in (a script's kill of a PID file) takes the child along, and a
// registry that dies takes the stand-in down non-zero with its output.
func TestProcess(t *testing.T) {
	needRegistry(t)
	start := func(t *testing.T) (s *standin, cmd *exec.Cmd, out *syncBuf, exited chan struct{}, child int) {
		s = newSetup(t)
		cmd = exec.Command(os.Args[0], s.args("public")...)
		cmd.Env = append(os.Environ(), "HARBOR_STANDIN_TEST_MAIN=1")
		out = &syncBuf{}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited = make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }()
		t.Cleanup(func() {
			_ = cmd.Process.Kill()
			<-exited
			if t.Failed() {
				t.Logf("stand-in output:\n%s", out)
			}
		})
		s.waitUp(t, exited)
		child = findRegistry(t, filepath.Join(s.dir, "harbor", "config.yml"))
		if child == 0 {
			t.Fatal("no docker-registry process with the stand-in's config")
		}
		return
	}
	waitExit := func(t *testing.T, exited <-chan struct{}) {
		t.Helper()
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			t.Fatal("the stand-in did not exit within 15 s")
		}
	}
	waitGone := func(t *testing.T, pid int) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); alive(pid); time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("docker-registry (pid %d) still runs", pid)
			}
		}
	}

	t.Run("SIGTERM", func(t *testing.T) {
		_, cmd, _, exited, child := start(t)
		_ = cmd.Process.Signal(syscall.SIGTERM)
		waitExit(t, exited)
		if code := cmd.ProcessState.ExitCode(); code != 0 {
			t.Errorf("exit code %d after SIGTERM, want 0", code)
		}
		waitGone(t, child)
	})
	t.Run("SIGKILL", func(t *testing.T) {
		_, cmd, _, exited, child := start(t)
		_ = cmd.Process.Kill()
		waitExit(t, exited)
		waitGone(t, child)
	})
	t.Run("registry dies", func(t *testing.T) {
		_, cmd, out, exited, child := start(t)
		_ = syscall.Kill(child, syscall.SIGKILL)
		waitExit(t, exited)
		if code := cmd.ProcessState.ExitCode(); code == 0 {
			t.Error("exit code 0 after the registry died")
		}
		if !strings.Contains(out.String(), "docker-registry exited") {
			t.Errorf("output does not say the registry exited:\n%s", out)
		}
	})
}

// findRegistry is the PID of the docker-registry serving cfg, or 0.
func findRegistry(t *testing.T, cfg string) int {
	t.Helper()
	want := "docker-registry\x00serve\x00" + cfg + "\x00"
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		var pid int
		if _, err := fmt.Sscan(e.Name(), &pid); err != nil {
			continue
		}
		cl, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && strings.Contains(string(cl), want) && alive(pid) {
			return pid
		}
	}
	return 0
}

// alive: the process exists and is not a zombie (an orphan whose reaper
// has not reaped it yet has exited all the same).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && s[i+2] != 'Z' && s[i+2] != 'X'
}
