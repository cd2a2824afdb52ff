package serve

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kubebake/kubebake/builder/spec"
)

// The hosts of the test spec: the seed's, moved from 10.4.7.0/24 to
// 127.0.0.0/24 so real clients can bind their addresses on loopback.
const (
	ipA     = "127.0.0.21" // hdss7-21
	ipB     = "127.0.0.22" // hdss7-22
	ipNone  = "127.0.0.99" // no host
	bundleA = "bundles/hdss7-21.tar.gz"
)

// loopbackSpec loads the seed spec with every 10.4.7.x address moved to
// 127.0.0.x.
func loopbackSpec(t *testing.T) *spec.Spec {
	t.Helper()
	seed, err := os.ReadFile("../../bundle-spec.yaml")
	if err != nil {
		t.Fatal(err)
	}
	moved := strings.ReplaceAll(string(seed), "10.4.7.", "127.0.0.")
	if !strings.Contains(moved, "ip: "+ipA) {
		t.Fatal("seed spec no longer has hdss7-21 at 10.4.7.21")
	}
	s, rep, err := spec.Parse("bundle-spec.yaml", []byte(moved))
	if err != nil || rep.IsFatal() {
		t.Fatalf("loopback spec: %v\n%v", err, rep)
	}
	return s
}

type tree struct {
	dir     string
	outside string
	files   map[string][]byte
}

func sum(b []byte) string { h := sha256.Sum256(b); return hex.EncodeToString(h[:]) }

// makeTree writes the PXE HTTP layout, a secret outside it, and the links
// that try to reach it.
func makeTree(t *testing.T) *tree {
	t.Helper()
	base := t.TempDir()
	tr := &tree{dir: filepath.Join(base, "http"), outside: filepath.Join(base, "outside"), files: map[string][]byte{}}
	rnd := rand.New(rand.NewPCG(1, 2))
	blob := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rnd.UintN(256))
		}
		return b
	}
	tr.files = map[string][]byte{
		bundleA:                          blob(3<<20 + 17),
		"bundles/hdss7-22.tar.gz":        blob(1<<20 + 3),
		"ks/hdss7-21.cfg":                []byte("rootpw --iscrypted $6$salt$hash\n"),
		"ks/hdss7-22.cfg":                []byte("rootpw --iscrypted $6$other$hash\n"),
		"ipxe/hdss7-21.ipxe":             []byte("#!ipxe\n"),
		"centos7/images/pxeboot/vmlinuz": blob(4096),
		".hdss7-21.tar.gz12345":          blob(100), // a temporary file, as renameio names them
	}
	var sums strings.Builder
	for name, b := range tr.files {
		write(t, filepath.Join(tr.dir, name), b)
		if !strings.HasPrefix(name, ".") {
			fmt.Fprintf(&sums, "%s  %s\n", sum(b), name)
		}
	}
	tr.files["SHA256SUMS"] = []byte(sums.String())
	write(t, filepath.Join(tr.dir, "SHA256SUMS"), tr.files["SHA256SUMS"])
	write(t, filepath.Join(tr.outside, "secret"), []byte("outside the served tree\n"))
	symlink(t, "../outside/secret", filepath.Join(tr.dir, "escape"))
	symlink(t, "../../outside", filepath.Join(tr.dir, "centos7", "up"))
	symlink(t, "/etc/passwd", filepath.Join(tr.dir, "passwd"))
	symlink(t, bundleA, filepath.Join(tr.dir, "latest.tar.gz")) // public name, hdss7-21's file
	return tr
}

func write(t *testing.T, p string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func symlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

// syncBuffer is the access log, written by the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type server struct {
	url  string
	log  *syncBuffer
	stop func() error
}

// start serves tr on a real loopback listener until the test ends.
func start(t *testing.T, tr *tree, opts ...Option) *server {
	t.Helper()
	hosts, err := SpecHosts(loopbackSpec(t))
	if err != nil {
		t.Fatal(err)
	}
	log := &syncBuffer{}
	h, err := New(tr.dir, hosts, append([]Option{WithAccessLog(log)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Serve(ctx, ln) }()
	var once sync.Once
	var serr error
	stop := func() error {
		once.Do(func() { cancel(); serr = <-done })
		return serr
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return &server{url: "http://" + ln.Addr().String(), log: log, stop: stop}
}

// client connects from ip, as the host with that address would.
func client(ip string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	return &http.Client{Transport: &http.Transport{DialContext: d.DialContext, DisableCompression: true}}
}

type reply struct {
	status int
	header http.Header
	body   []byte
}

func do(t *testing.T, from, method, url string, hdr ...string) reply {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := client(from).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s from %s: body: %v", method, url, from, err)
	}
	return reply{resp.StatusCode, resp.Header, b}
}

// raw sends a request line as written, for paths no client would send.
func raw(t *testing.T, from, addr, target string) int {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	c, err := d.Dial("tcp", strings.TrimPrefix(addr, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", target)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("GET %s: %v", target, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestOwnerGetsItsFiles(t *testing.T) {
	tr := makeTree(t)
	s := start(t, tr)
	for _, name := range []string{bundleA, "ks/hdss7-21.cfg", "ipxe/hdss7-21.ipxe", "latest.tar.gz"} {
		t.Run(name, func(t *testing.T) {
			r := do(t, ipA, "GET", s.url+"/"+name)
			want := tr.files[name]
			if name == "latest.tar.gz" {
				want = tr.files[bundleA]
			}
			if r.status != 200 || sum(r.body) != sum(want) {
				t.Fatalf("status %d, %d bytes, sha256 %s; want 200, %d bytes, %s", r.status, len(r.body), sum(r.body), len(want), sum(want))
			}
			if got := r.header.Get("Content-Length"); got != fmt.Sprint(len(want)) {
				t.Errorf("Content-Length %s, want %d", got, len(want))
			}
			if r.header.Get("Cache-Control") != "no-store" {
				t.Errorf("Cache-Control %q, want no-store", r.header.Get("Cache-Control"))
			}
		})
	}
	r := do(t, ipA, "HEAD", s.url+"/"+bundleA)
	if ct, etag := r.header.Get("Content-Type"), r.header.Get("ETag"); ct != "application/gzip" || etag != `"sha256:`+sum(tr.files[bundleA])+`"` {
		t.Errorf("Content-Type %q, ETag %q", ct, etag)
	}
	if ct := do(t, ipA, "HEAD", s.url+"/ks/hdss7-21.cfg").header.Get("Content-Type"); ct != "text/plain; charset=utf-8" {
		t.Errorf("kickstart Content-Type %q", ct)
	}
	if !strings.Contains(s.log.String(), " "+ipA+" GET /"+bundleA+" 200 3145745B ") ||
		!strings.Contains(s.log.String(), "host=hdss7-21") {
		t.Errorf("access log:\n%s", s.log)
	}
}

func TestOthersGet403(t *testing.T) {
	tr := makeTree(t)
	s := start(t, tr)
	for _, tc := range []struct{ from, path string }{
		{ipB, bundleA},
		{ipB, "ks/hdss7-21.cfg"},
		{ipB, "ipxe/hdss7-21.ipxe"},
		{ipB, "latest.tar.gz"},           // a public name linked to hdss7-21's bundle
		{ipB, "bundles/HDSS7-21.tar.gz"}, // case does not make it public
		{ipB, "bundles/hdss7-21.tar.gz.part"},
		{ipNone, bundleA},
		{ipNone, "ks/hdss7-22.cfg"},
		{ipA, "ks/hdss7-22.cfg"},
		{ipA, "bundles/hdss7-22.tar.gz"},
	} {
		t.Run(tc.from+tc.path, func(t *testing.T) {
			if r := do(t, tc.from, "GET", s.url+"/"+tc.path); r.status != 403 || bytes.Contains(r.body, []byte("rootpw")) {
				t.Fatalf("status %d, body %q", r.status, r.body)
			}
		})
	}
	log := s.log.String()
	t.Logf("access log:\n%s", log)
	for _, want := range []string{
		" " + ipB + ` GET /bundles/hdss7-21.tar.gz 403 `,
		`host=hdss7-21 "refused: bundles/hdss7-21.tar.gz is hdss7-21's, served only to 127.0.0.21; asked by 127.0.0.22 (hdss7-22)"`,
		`"refused: ks/hdss7-22.cfg is hdss7-22's, served only to 127.0.0.22; asked by 127.0.0.99 (no host)"`,
		`"refused: bundles/hdss7-21.tar.gz is hdss7-21's, served only to 127.0.0.21; asked by 127.0.0.22 (hdss7-22) (through a symlink to bundles/hdss7-21.tar.gz)"`,
	} {
		if !strings.Contains(log, want) {
			t.Errorf("access log lacks %s:\n%s", want, log)
		}
	}
}

func TestPublicFilesForEveryone(t *testing.T) {
	tr := makeTree(t)
	s := start(t, tr)
	for _, from := range []string{ipA, ipB, ipNone, "127.0.0.1"} {
		for _, name := range []string{"SHA256SUMS", "centos7/images/pxeboot/vmlinuz"} {
			if r := do(t, from, "GET", s.url+"/"+name); r.status != 200 || !bytes.Equal(r.body, tr.files[name]) {
				t.Errorf("%s from %s: status %d", name, from, r.status)
			}
		}
	}
}

// HEAD costs nothing, but once the budget is spent it answers 410 like
// GET: the kickstart's %pre asks with HEAD before erasing the disk.
func TestMaxFetches(t *testing.T) {
	tr := makeTree(t)
	s := start(t, tr, WithMaxFetches(2))
	url := s.url + "/" + bundleA
	for i, want := range []struct {
		method string
		status int
	}{{"GET", 200}, {"HEAD", 200}, {"HEAD", 200}, {"GET", 200}, {"GET", 410}, {"HEAD", 410}} {
		r := do(t, ipA, want.method, url)
		if r.status != want.status {
			t.Fatalf("request %d (%s): status %d, want %d", i+1, want.method, r.status, want.status)
		}
		if r.status == 200 && want.method == "GET" && sum(r.body) != sum(tr.files[bundleA]) {
			t.Fatalf("request %d: sha256 mismatch", i+1)
		}
	}
	// Range requests are charged too: bytes=0- is a whole copy by another name.
	if r := do(t, ipA, "GET", url, "Range", "bytes=0-"); r.status != 410 {
		t.Fatalf("Range bytes=0- after the budget: status %d", r.status)
	}
	// Another host's bundle has its own budget; files outside bundles/ none.
	if r := do(t, ipB, "GET", s.url+"/bundles/hdss7-22.tar.gz"); r.status != 200 {
		t.Fatalf("hdss7-22's first fetch: %d", r.status)
	}
	for range 3 {
		if r := do(t, ipA, "GET", s.url+"/ks/hdss7-21.cfg"); r.status != 200 {
			t.Fatalf("kickstart: %d", r.status)
		}
	}
	log := s.log.String()
	t.Logf("access log:\n%s", log)
	for _, want := range []string{"host=hdss7-21 fetches=1/2\n", "host=hdss7-21 fetches=2/2\n",
		` 410 `, `"bundles/hdss7-21.tar.gz: fetch budget spent: 2 of 2 fetches delivered; restart kubebake serve to allow a reinstall"`} {
		if !strings.Contains(log, want) {
			t.Errorf("access log lacks %q:\n%s", want, log)
		}
	}
}

// TestRangeResume: a download in two Range requests (as curl -C - resumes
// one) is served, adds up to the bundle, and spends one fetch together.
func TestRangeResume(t *testing.T) {
	tr := makeTree(t)
	s := start(t, tr, WithMaxFetches(1))
	url := s.url + "/" + bundleA
	want := tr.files[bundleA]
	cut := 1<<20 + 5
	first := do(t, ipA, "GET", url, "Range", fmt.Sprintf("bytes=0-%d", cut-1))
	if first.status != 206 || len(first.body) != cut {
		t.Fatalf("first range: status %d, %d bytes", first.status, len(first.body))
	}
	// A whole copy now would exceed the budget: refused, not cut off midway.
	if r := do(t, ipA, "GET", url); r.status != 410 {
		t.Fatalf("full GET after a partial one: %d", r.status)
	}
	rest := do(t, ipA, "GET", url, "Range", fmt.Sprintf("bytes=%d-", cut), "If-Range", first.header.Get("ETag"))
	if rest.status != 206 || rest.header.Get("Content-Range") != fmt.Sprintf("bytes %d-%d/%d", cut, len(want)-1, len(want)) {
		t.Fatalf("resume: status %d, Content-Range %q", rest.status, rest.header.Get("Content-Range"))
	}
	if got := append(first.body, rest.body...); sum(got) != sum(want) {
		t.Fatal("first range + resume != bundle")
	}
	if r := do(t, ipA, "GET", url, "Range", "bytes=0-0"); r.status != 410 {
		t.Fatalf("after a full copy in two parts: %d", r.status)
	}
	if !strings.Contains(s.log.String(), "fetches=0.33/1") || !strings.Contains(s.log.String(), "fetches=1/1") {
		t.Errorf("access log:\n%s", s.log)
	}
}

// TestInFlight: while one download holds the budget, a second one is told
// to come back (503, which curl --retry retries), not served.
func TestInFlight(t *testing.T) {
	tr := makeTree(t)
	tr.files[bundleA] = make([]byte, 64<<20) // more than loopback buffers hold
	write(t, filepath.Join(tr.dir, bundleA), tr.files[bundleA])
	s := start(t, tr, WithMaxFetches(1))
	resp, err := client(ipA).Get(s.url + "/" + bundleA)
	if err != nil {
		t.Fatal(err)
	}
	if r := do(t, ipA, "GET", s.url+"/"+bundleA); r.status != 503 || r.header.Get("Retry-After") == "" {
		t.Fatalf("second download while the first runs: %d", r.status)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || sum(b) != sum(tr.files[bundleA]) {
		t.Fatalf("first download: %v, %d bytes", err, len(b))
	}
	if !strings.Contains(s.log.String(), `"bundles/hdss7-21.tar.gz: another download of this file is in flight`) {
		t.Errorf("access log:\n%s", s.log)
	}
}

func TestCountsFileSurvivesRestart(t *testing.T) {
	tr := makeTree(t)
	counts := filepath.Join(t.TempDir(), "fetches.json")
	s := start(t, tr, WithMaxFetches(1), WithCountsFile(counts))
	if r := do(t, ipA, "GET", s.url+"/"+bundleA); r.status != 200 {
		t.Fatalf("first fetch: %d", r.status)
	}
	if err := s.stop(); err != nil {
		t.Fatal(err)
	}
	s = start(t, tr, WithMaxFetches(1), WithCountsFile(counts))
	if r := do(t, ipA, "GET", s.url+"/"+bundleA); r.status != 410 {
		t.Fatalf("after a restart: %d", r.status)
	}
	if !strings.Contains(s.log.String(), "after removing it from "+counts) {
		t.Errorf("access log:\n%s", s.log)
	}
	if _, err := New(tr.dir, nil, WithMaxFetches(1), WithCountsFile(filepath.Join(tr.dir, "counts.json"))); !errors.Is(err, ErrInvalidOption) {
		t.Errorf("counts file inside the served directory: %v", err)
	}
	if _, err := New(tr.dir, nil, WithCountsFile(counts)); !errors.Is(err, ErrInvalidOption) {
		t.Errorf("counts file without a limit: %v", err)
	}
}

func TestRefusedPaths(t *testing.T) {
	tr := makeTree(t)
	s := start(t, tr)
	for _, tc := range []struct {
		name, target string
		status       int
	}{
		{"dotdot", "/../outside/secret", 400},
		{"dotdot inside", "/bundles/../../outside/secret", 400},
		{"encoded dotdot", "/%2e%2e/outside/secret", 400},
		{"encoded slash", "/bundles%2f..%2f..%2foutside%2fsecret", 400},
		{"dot", "/./SHA256SUMS", 400},
		{"double slash", "//etc/passwd", 400},
		{"backslash", "/bundles\\..\\SHA256SUMS", 400},
		{"nul", "/SHA256SUMS%00", 400},
		{"dot file", "/.hdss7-21.tar.gz12345", 400},
		{"symlink out", "/escape", 403},
		{"symlinked dir out", "/centos7/up/secret", 403},
		{"absolute symlink", "/passwd", 403},
		{"root", "/", 403},
		{"directory", "/bundles", 403},
		{"directory slash", "/bundles/", 403},
		{"missing", "/nope", 404},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := raw(t, ipA, s.url, tc.target); got != tc.status {
				t.Fatalf("GET %s: %d, want %d", tc.target, got, tc.status)
			}
		})
	}
	if !strings.Contains(s.log.String(), "refused: the path leads outside the served directory") {
		t.Errorf("access log:\n%s", s.log)
	}
}

func TestReadOnly(t *testing.T) {
	tr := makeTree(t)
	s := start(t, tr)
	for _, m := range []string{"POST", "PUT", "DELETE", "PATCH", "OPTIONS"} {
		r := do(t, ipA, m, s.url+"/SHA256SUMS")
		if r.status != 405 || r.header.Get("Allow") != "GET, HEAD" {
			t.Errorf("%s: %d, Allow %q", m, r.status, r.header.Get("Allow"))
		}
	}
	if b, _ := os.ReadFile(filepath.Join(tr.dir, "SHA256SUMS")); !bytes.Equal(b, tr.files["SHA256SUMS"]) {
		t.Error("SHA256SUMS changed")
	}
}

func TestStaleSumsGiveNoETag(t *testing.T) {
	tr := makeTree(t)
	s := start(t, tr)
	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(filepath.Join(tr.dir, bundleA), later, later); err != nil {
		t.Fatal(err)
	}
	if etag := do(t, ipA, "HEAD", s.url+"/"+bundleA).header.Get("ETag"); etag != "" {
		t.Errorf("ETag %q from a SHA256SUMS older than the file", etag)
	}
}

// TestShutdownLetsDownloadsFinish: a download running when shutdown starts
// completes; a new connection is refused.
func TestShutdownLetsDownloadsFinish(t *testing.T) {
	tr := makeTree(t)
	s := start(t, tr)
	resp, err := client(ipA).Get(s.url + "/" + bundleA)
	if err != nil {
		t.Fatal(err)
	}
	head := make([]byte, 1024)
	if _, err := io.ReadFull(resp.Body, head); err != nil {
		t.Fatal(err)
	}
	stopped := make(chan error, 1)
	go func() { stopped <- s.stop() }()
	time.Sleep(100 * time.Millisecond)
	rest, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || sum(append(head, rest...)) != sum(tr.files[bundleA]) {
		t.Fatalf("download across shutdown: %v", err)
	}
	if err := <-stopped; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if _, err := client(ipA).Get(s.url + "/SHA256SUMS"); err == nil {
		t.Error("served after shutdown")
	}
}

func TestShutdownCutsAfterGrace(t *testing.T) {
	tr := makeTree(t)
	// Larger than what loopback's socket buffers hold, so the handler is
	// still writing when the grace runs out.
	write(t, filepath.Join(tr.dir, "centos7/big.img"), make([]byte, 64<<20))
	s := start(t, tr, WithShutdownGrace(200*time.Millisecond))
	resp, err := client(ipA).Get(s.url + "/centos7/big.img")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	t0 := time.Now()
	if err := s.stop(); err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if d := time.Since(t0); d > 5*time.Second {
		t.Fatalf("shutdown took %v", d)
	}
	if _, err := io.ReadAll(resp.Body); err == nil {
		t.Error("a stalled download survived the grace period")
	}
}

func TestNewRejectsBadHosts(t *testing.T) {
	dir := t.TempDir()
	a := SpecHostsMust(t, "a", "10.0.0.1")
	for name, hosts := range map[string][]Host{
		"same address": append(a, SpecHostsMust(t, "b", "10.0.0.1")...),
		"same name":    append(a, SpecHostsMust(t, "A", "10.0.0.2")...),
		"no address":   {{Name: "c"}},
		"dotted name":  SpecHostsMust(t, "c.d", "10.0.0.3"),
	} {
		if _, err := New(dir, hosts); !errors.Is(err, ErrHosts) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := New(dir, nil, WithMaxFetches(-1)); !errors.Is(err, ErrInvalidOption) {
		t.Errorf("negative max fetches: %v", err)
	}
}

func SpecHostsMust(t *testing.T, name, ip string) []Host {
	t.Helper()
	s := &spec.Spec{Hosts: []spec.Host{{Name: name, IP: ip}}}
	h, err := SpecHosts(s)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestWantBytes(t *testing.T) {
	mtime := time.Date(2026, 5, 14, 10, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		rng, ifRange string
		want         int64
	}{
		{"", "", 100}, {"bytes=0-", "", 100}, {"bytes=10-19", "", 10}, {"bytes=90-", "", 10},
		{"bytes=-5", "", 5}, {"bytes=-500", "", 100}, {"bytes=0-0,5-6", "", 100}, {"bytes=5-", `"x"`, 100}, {"bytes=5-", `"y"`, 95},
		{"bytes=5-", mtime.UTC().Format(http.TimeFormat), 95}, {"bytes=5-", mtime.Add(time.Hour).UTC().Format(http.TimeFormat), 100},
		{"bytes=200-", "", 100}, {"bytes=9-1", "", 100}, {"items=0-1", "", 100}, {"bytes=95-500", "", 5},
	} {
		r, _ := http.NewRequest("GET", "/", nil)
		r.Header.Set("Range", tc.rng)
		r.Header.Set("If-Range", tc.ifRange)
		if got := wantBytes(r, 100, `"y"`, mtime); got != tc.want {
			t.Errorf("Range %q If-Range %q: %d, want %d", tc.rng, tc.ifRange, got, tc.want)
		}
	}
}
