// Command harbor-standin is the demo's stand-in for Harbor: Debian's
// docker-registry (the CNCF distribution registry) behind a small reverse
// proxy that serves TLS with the harbor.od.com certificate kubebake issued
// into the state directory and checks one user's login. Harbor's own server
// cannot run here; kubebake's Harbor API calls are tested against a handler
// that follows Harbor's swagger, and against this registry kubebake sees
// "not Harbor" and pushes as to any registry.
//
//	harbor-standin -state demo/state -dir demo/harbor -addr 127.0.0.1:5443 -user admin -password-file F [-public-projects public]
//
// Like Harbor, it lets anyone pull (GET/HEAD of manifests, blobs and tag
// lists) from the projects named in -public-projects — containerd on the
// cluster's nodes pulls harbor.od.com/public/... with no credentials — and
// asks for the login for everything else: pushes, deletes, private
// projects, the catalog and the /v2/ ping (Harbor answers an anonymous
// GET /v2/ with 401). Wrong credentials get 401 everywhere. Without
// -public-projects every request needs the login.
//
// Why a proxy: distribution's htpasswd auth is all or nothing (every request
// needs a login; it has no per-repository anonymous read), and its token auth
// would need a token server. So the registry runs as a child without auth,
// plain HTTP on a free 127.0.0.1 port, on the same storage (<dir>/data, its
// config in <dir>/config.yml), and this process is the only way in.
//
// The stand-in's PID is not the registry's: the child dies with it
// (PDEATHSIG), SIGTERM/SIGINT stop both (exit 0), and when the registry exits
// on its own the stand-in exits non-zero with the registry's last output.
package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"
)

const realm = "harbor.od.com"

type options struct {
	state, dir, addr, user, pwFile string
	public                         string // -public-projects, comma-separated
	log                            io.Writer
}

func main() {
	var o options
	flag.StringVar(&o.state, "state", "state", "kubebake state directory (pki/harbor.pem, pki/harbor-key.pem)")
	flag.StringVar(&o.dir, "dir", "harbor", "directory for the registry's config and storage")
	flag.StringVar(&o.addr, "addr", "127.0.0.1:5443", "listen address (TLS)")
	flag.StringVar(&o.user, "user", "admin", "the one user")
	flag.StringVar(&o.pwFile, "password-file", "", "file holding the user's password")
	flag.StringVar(&o.public, "public-projects", "", "comma-separated projects anyone may pull from without a login (empty: every request needs the login)")
	flag.Parse()
	o.log = os.Stderr
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintf(os.Stderr, "harbor-standin: %v\n", err)
		os.Exit(1)
	}
}

// run serves until ctx is done (nil) or the registry or the server fails.
func run(ctx context.Context, o options) error {
	if o.log == nil {
		o.log = os.Stderr
	}
	bin, err := exec.LookPath("docker-registry")
	if err != nil {
		return fmt.Errorf("docker-registry not found: apt-get install -y docker-registry")
	}
	pw, err := os.ReadFile(o.pwFile)
	if err != nil {
		return fmt.Errorf("-password-file: %w", err)
	}
	public, err := parseProjects(o.public)
	if err != nil {
		return err
	}
	abs := func(p string) string { a, _ := filepath.Abs(p); return a }
	cert, key := abs(filepath.Join(o.state, "pki", "harbor.pem")), abs(filepath.Join(o.state, "pki", "harbor-key.pem"))
	for _, p := range []string{cert, key} {
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("%w (run kubebake certs first: it issues harbor.od.com's certificate)", err)
		}
	}
	kp, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(o.dir, "data"), 0o700); err != nil {
		return err
	}

	// PDEATHSIG fires when the thread that started the child exits, not the
	// process: keep this goroutine on its thread while the child runs.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	reg, err := startRegistry(ctx, bin, abs(o.dir), o.log)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	defer reg.stop()

	ln, err := net.Listen("tcp", o.addr)
	if err != nil {
		return err
	}
	target := &url.URL{Scheme: "http", Host: reg.addr}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = pr.In.Host
			pr.SetXForwarded()
		},
		ErrorLog: log.New(o.log, "harbor-standin: proxy: ", 0),
	}
	srv := &http.Server{
		Handler:           newGate(o.user, strings.TrimSpace(string(pw)), public, proxy),
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{kp}, MinVersion: tls.VersionTLS12},
		ReadHeaderTimeout: 30 * time.Second,
		ErrorLog:          log.New(o.log, "harbor-standin: http: ", 0),
	}
	served := make(chan error, 1)
	go func() { served <- srv.ServeTLS(ln, "", "") }()
	pub := strings.Join(public, ",")
	if pub == "" {
		pub = "none"
	}
	fmt.Fprintf(o.log, "harbor-standin: https://%s → docker-registry (pid %d) on http://%s; public projects: %s\n",
		ln.Addr(), reg.cmd.Process.Pid, reg.addr, pub)

	select {
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		return nil
	case err := <-served:
		return fmt.Errorf("serve %s: %w", o.addr, err)
	case <-reg.done:
		_ = srv.Close()
		return fmt.Errorf("docker-registry exited (%v); its last output:\n%s", reg.err, reg.out.String())
	}
}

func parseProjects(s string) ([]string, error) {
	var ps []string
	for p := range strings.SplitSeq(s, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		if p == "." || p == ".." || strings.ContainsAny(p, "/\\?#%") {
			return nil, fmt.Errorf("-public-projects: %q is not a project name", p)
		}
		ps = append(ps, p)
	}
	return ps, nil
}

// gate passes a request with the valid login, and anonymous reads under
// /v2/<public project>/; everything else gets distribution's 401.
type gate struct {
	user, pw [sha256.Size]byte
	public   []string
	next     http.Handler
}

func newGate(user, pw string, public []string, next http.Handler) *gate {
	return &gate{user: sha256.Sum256([]byte(user)), pw: sha256.Sum256([]byte(pw)), public: public, next: next}
}

func (g *gate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "" {
		if u, p, ok := r.BasicAuth(); ok && g.valid(u, p) {
			g.next.ServeHTTP(w, r)
			return
		}
		unauthorized(w)
		return
	}
	if (r.Method == http.MethodGet || r.Method == http.MethodHead) && g.publicPath(r.URL) {
		g.next.ServeHTTP(w, r)
		return
	}
	unauthorized(w)
}

func (g *gate) valid(user, pw string) bool {
	u, p := sha256.Sum256([]byte(user)), sha256.Sum256([]byte(pw))
	// Both compared, always: no early exit on a wrong user name.
	return subtle.ConstantTimeCompare(u[:], g.user[:])&subtle.ConstantTimeCompare(p[:], g.pw[:]) == 1
}

// publicPath: the path is /v2/<project>/<something> for a public project,
// and it is clean — no "." or ".." segments, no empty segments, nothing
// percent-encoded differently from the default (public/%2E%2E/private) —
// so the registry sees the same repository the check saw.
func (g *gate) publicPath(u *url.URL) bool {
	p := u.Path
	if u.RawPath != "" || path.Clean(p) != p || strings.Contains(p, "\\") {
		return false
	}
	for seg := range strings.SplitSeq(p, "/") {
		if seg == "." || seg == ".." {
			return false
		}
	}
	for _, proj := range g.public {
		prefix := "/v2/" + proj + "/"
		if strings.HasPrefix(p, prefix) && len(p) > len(prefix) {
			return true
		}
	}
	return false
}

func unauthorized(w http.ResponseWriter) {
	h := w.Header()
	h.Set("WWW-Authenticate", `Basic realm="`+realm+`"`)
	h.Set("Docker-Distribution-Api-Version", "registry/2.0")
	h.Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(http.StatusUnauthorized)
	_, _ = io.WriteString(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`+"\n")
}

// registry is the docker-registry child.
type registry struct {
	cmd  *exec.Cmd
	addr string
	out  *tail
	done chan struct{} // closed when it exited; err is then its Wait error
	err  error
}

// startRegistry writes <dir>/config.yml for a registry on a free loopback
// port, starts it and waits until it answers GET /v2/. A port taken between
// picking and binding is retried with another.
func startRegistry(ctx context.Context, bin, dir string, logw io.Writer) (*registry, error) {
	var last error
	for range 3 {
		addr, err := freePort()
		if err != nil {
			return nil, err
		}
		cfg := fmt.Sprintf(`version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
http:
  addr: %s
  secret: kubebake-demo
  relativeurls: true
`, filepath.Join(dir, "data"), addr)
		cfgPath := filepath.Join(dir, "config.yml")
		if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
			return nil, err
		}
		r := &registry{addr: addr, out: &tail{max: 8 << 10}, done: make(chan struct{})}
		w := io.MultiWriter(logw, r.out)
		r.cmd = exec.Command(bin, "serve", cfgPath)
		r.cmd.Stdout, r.cmd.Stderr = w, w
		// Its own process group: a terminal's ^C or a kill of the caller's
		// group reaches the stand-in, which stops the child in order.
		r.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
		if err := r.cmd.Start(); err != nil {
			return nil, err
		}
		go func() { r.err = r.cmd.Wait(); close(r.done) }()
		err = r.waitReady(ctx)
		if err == nil {
			return r, nil
		}
		r.stop()
		last = err
		if ctx.Err() != nil || !strings.Contains(r.out.String(), "address already in use") {
			return nil, err
		}
	}
	return nil, last
}

func (r *registry) waitReady(ctx context.Context) error {
	c := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := c.Get("http://" + r.addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("GET /v2/: %s", resp.Status)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("docker-registry did not answer on %s within 30 s (%v); its output:\n%s", r.addr, err, r.out.String())
		}
		select {
		case <-r.done:
			return fmt.Errorf("docker-registry exited (%v); its output:\n%s", r.err, r.out.String())
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// stop sends SIGTERM, then SIGKILL after 5 s, and waits for the exit.
func (r *registry) stop() {
	select {
	case <-r.done:
		return
	default:
	}
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.done:
	case <-time.After(5 * time.Second):
		_ = r.cmd.Process.Kill()
		<-r.done
	}
}

func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// tail keeps the last max bytes written to it.
type tail struct {
	mu  sync.Mutex
	b   []byte
	max int
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append([]byte(nil), t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(bytes.TrimSpace(t.b))
}
