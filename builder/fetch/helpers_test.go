package fetch

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// upstream is a real HTTP server serving generated files, recording every
// request it gets.
type upstream struct {
	srv *httptest.Server

	mu    sync.Mutex
	files map[string][]byte
	reqs  []seen
	// hook, when set, may answer a request itself (returning true).
	hook func(w http.ResponseWriter, r *http.Request, n int, body []byte) bool
}

type seen struct{ Path, Range, IfRange string }

func newUpstream(t *testing.T) *upstream {
	t.Helper()
	u := &upstream{files: map[string][]byte{}}
	u.srv = httptest.NewServer(http.HandlerFunc(u.serve))
	t.Cleanup(u.srv.Close)
	return u
}

func (u *upstream) serve(w http.ResponseWriter, r *http.Request) {
	u.mu.Lock()
	u.reqs = append(u.reqs, seen{r.URL.Path, r.Header.Get("Range"), r.Header.Get("If-Range")})
	n := 0
	for _, s := range u.reqs {
		if s.Path == r.URL.Path {
			n++
		}
	}
	body, ok := u.files[r.URL.Path]
	hook := u.hook
	u.mu.Unlock()
	if !ok {
		http.NotFound(w, r)
		return
	}
	if hook != nil && hook(w, r, n, body) {
		return
	}
	w.Header().Set("ETag", `"`+sum(body)[:16]+`"`)
	http.ServeContent(w, r, "", time.Unix(1700000000, 0), bytes.NewReader(body))
}

func (u *upstream) put(path string, body []byte) string {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.files[path] = body
	return u.srv.URL + path
}

func (u *upstream) requests() []seen {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]seen(nil), u.reqs...)
}

func (u *upstream) requestsFor(path string) []seen {
	var out []seen
	for _, s := range u.requests() {
		if s.Path == path {
			out = append(out, s)
		}
	}
	return out
}

func (u *upstream) reset() {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.reqs = nil
}

func sum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// gen returns n deterministic pseudo-random bytes.
func gen(seed uint64, n int) []byte {
	b := make([]byte, n)
	var s [32]byte
	s[0], s[1] = byte(seed), byte(seed>>8)
	rand.NewChaCha8(s).Read(b)
	return b
}

func targz(t *testing.T, members map[string][]byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, name := range []string{"./etcd-v3/", "./etcd-v3/etcd", "etcd-v3/etcdctl", "./etcd-v3/README.md"} {
		if strings.HasSuffix(name, "/") {
			if err := tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeDir, Mode: 0o755}); err != nil {
				t.Fatal(err)
			}
			continue
		}
		body := members[name]
		if err := tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o755, Size: int64(len(body))}); err != nil {
			t.Fatal(err)
		}
		tw.Write(body)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	zw.Close()
	return buf.Bytes()
}

// release is a set of artifacts in every checksum style, served by an
// upstream (under prefix), with the sources that name them at base.
type release struct {
	srcs   []Source
	want   map[string]map[string][]byte // artifact → installed name → bytes
	sumURL map[string]bool              // checksum URLs (as served)
}

func makeRelease(t *testing.T, u *upstream, prefix, base string) release {
	t.Helper()
	rel := release{want: map[string]map[string][]byte{}, sumURL: map[string]bool{}}

	kubelet := gen(1, 300<<10)
	u.put(prefix+"/release/v1.33.0/bin/linux/amd64/kubelet", kubelet)
	u.put(prefix+"/release/v1.33.0/bin/linux/amd64/kubelet.sha256", []byte(sum(kubelet)+"\n"))
	rel.srcs = append(rel.srcs, Source{Name: "kubelet",
		URL:       base + "/release/v1.33.0/bin/linux/amd64/kubelet",
		SHA256URL: base + "/release/v1.33.0/bin/linux/amd64/kubelet.sha256"})
	rel.want["kubelet"] = map[string][]byte{"kubelet": kubelet}

	etcd, etcdctl := gen(2, 200<<10), gen(3, 100<<10)
	tgz := targz(t, map[string][]byte{"./etcd-v3/etcd": etcd, "etcd-v3/etcdctl": etcdctl, "./etcd-v3/README.md": []byte("hi")})
	u.put(prefix+"/etcd/v3/etcd-v3-linux-amd64.tar.gz", tgz)
	u.put(prefix+"/etcd/v3/SHA256SUMS", []byte(fmt.Sprintf("%s  etcd-v3-darwin.zip\n%s  etcd-v3-linux-amd64.tar.gz\n", sum([]byte("x")), sum(tgz))))
	rel.srcs = append(rel.srcs, Source{Name: "etcd",
		URL:       base + "/etcd/v3/etcd-v3-linux-amd64.tar.gz",
		SHA256URL: base + "/etcd/v3/SHA256SUMS",
		Extract:   map[string]string{"etcd-v3/etcd": "etcd", "./etcd-v3/etcdctl": "etcdctl"}})
	rel.want["etcd"] = map[string][]byte{"etcd": etcd, "etcdctl": etcdctl}

	flannel := gen(4, 150<<10)
	u.put(prefix+"/flannel/download/v0.26/flanneld-amd64", flannel)
	u.put(prefix+"/flannel/releases/v0.26.json", []byte(fmt.Sprintf(`{"tag_name":"v0.26","assets":[{"name":"flanneld-arm64","digest":"sha256:%s"},{"name":"flanneld-amd64","digest":"sha256:%s"}]}`, sum([]byte("y")), sum(flannel))))
	rel.srcs = append(rel.srcs, Source{Name: "flanneld",
		URL:       base + "/flannel/download/v0.26/flanneld-amd64",
		SHA256URL: base + "/flannel/releases/v0.26.json"})
	rel.want["flanneld"] = map[string][]byte{"flanneld": flannel}

	cni := gen(5, 50<<10)
	u.put(prefix+"/cni/cni-plugin", cni)
	rel.srcs = append(rel.srcs, Source{Name: "cni", URL: base + "/cni/cni-plugin", SHA256: strings.ToUpper(sum(cni))})
	rel.want["cni"] = map[string][]byte{"cni": cni}

	local := gen(6, 20<<10)
	p := filepath.Join(t.TempDir(), "pause.bin")
	if err := os.WriteFile(p, local, 0o644); err != nil {
		t.Fatal(err)
	}
	rel.srcs = append(rel.srcs, Source{Name: "pause", URL: "file://" + p, SHA256: sum(local)})
	rel.want["pause"] = map[string][]byte{"pause": local}

	for _, s := range rel.srcs {
		if s.SHA256URL != "" {
			rel.sumURL[s.SHA256URL] = true
		}
	}
	return rel
}

// checkResults asserts every result file holds the bytes the release made.
func checkResults(t *testing.T, rel release, res []Result) {
	t.Helper()
	if len(res) != len(rel.srcs) {
		t.Fatalf("got %d results, want %d", len(res), len(rel.srcs))
	}
	for i, r := range res {
		if r.Name != rel.srcs[i].Name || r.URL != rel.srcs[i].URL {
			t.Errorf("result %d is %s %s, want %s %s", i, r.Name, r.URL, rel.srcs[i].Name, rel.srcs[i].URL)
		}
		want := rel.want[r.Name]
		if len(r.Files) != len(want) {
			t.Errorf("%s: %d files, want %d", r.Name, len(r.Files), len(want))
		}
		for _, f := range r.Files {
			got, err := os.ReadFile(f.Path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want[f.Name]) || f.SHA256 != sum(got) || f.Size != int64(len(got)) || f.Artifact != r.Name {
				t.Errorf("%s/%s: wrong bytes or fields (%+v)", r.Name, f.Name, f)
			}
		}
	}
}

// checkStore asserts that every file under sha256/ is named by its own
// digest and that no download is left in partial/.
func checkStore(t *testing.T, dir string) int {
	t.Helper()
	n := 0
	err := filepath.WalkDir(filepath.Join(dir, "sha256"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if sum(data) != d.Name() {
			t.Errorf("store file %s holds bytes of sha256 %s", p, sum(data))
		}
		n++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	left, _ := os.ReadDir(filepath.Join(dir, "partial"))
	for _, e := range left {
		t.Errorf("left in partial/: %s", e.Name())
	}
	return n
}

func locks(res []Result) []Locked {
	var l []Locked
	for _, r := range res {
		l = append(l, r.Locked)
	}
	return l
}

// fast retries keep tests quick.
var fast = WithRetry(3, time.Millisecond)

// lockedBuffer collects a child's output.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (u *upstream) setHook(h func(w http.ResponseWriter, r *http.Request, n int, body []byte) bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.hook = h
}

func (u *upstream) get(path string) []byte {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.files[path]
}
