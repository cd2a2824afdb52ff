package image

import (
	"bytes"
	"log/slog"
	"math/rand"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/kubebake/kubebake/internal/testregistry"
)

// seed is the seed's five images, as they are named upstream; the fixture
// serves them from a local registry through mirrors.
var seed = []Image{
	{"pause", "registry.k8s.io/pause:3.10"},
	{"coredns", "registry.k8s.io/coredns/coredns:v1.12.0"},
	{"flannel", "docker.io/flannel/flannel:v0.26.1"},
	{"flannel-cni-plugin", "docker.io/flannel/flannel-cni-plugin:v1.6.0"},
	{"traefik", "traefik:v3.2"},
}

// fixture is an upstream registry holding the seed images.
type fixture struct {
	up      *testregistry.Registry
	mirrors []Mirror
	// index is pause's multi-arch index (linux/amd64, linux/arm64, linux/arm/v7).
	index v1.ImageIndex
	// images by ref: the single-platform ones.
	images map[string]v1.Image
}

var fastRetry = WithRetry(remote.Backoff{Duration: 5 * time.Millisecond, Factor: 2, Jitter: 0.1, Steps: 6})

func platformImage(t testing.TB, rnd *rand.Rand, base v1.Image, p v1.Platform, extra int) v1.Image {
	t.Helper()
	img := base
	if img == nil {
		var err error
		if img, err = random.Image(2048, 1, random.WithSource(rnd)); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < extra; i++ {
		l, err := random.Layer(3000+int64(i)*100, types.DockerLayer, random.WithSource(rnd))
		if err != nil {
			t.Fatal(err)
		}
		if img, err = mutate.AppendLayers(img, l); err != nil {
			t.Fatal(err)
		}
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Variant = p.OS, p.Architecture, p.Variant
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// newFixture starts an upstream registry (opts: testregistry options) and
// pushes the seed: pause as a 3-platform index, the others single-platform
// linux/amd64 images sharing a base layer (so mounts have something to do).
func newFixture(t testing.TB, opts ...testregistry.Option) *fixture {
	t.Helper()
	up := testregistry.Start(t, opts...)
	f := &fixture{
		up:      up,
		mirrors: []Mirror{{"registry.k8s.io", up.Addr}, {"docker.io", up.Addr}},
		images:  map[string]v1.Image{},
	}
	rnd := rand.New(rand.NewSource(42))
	amd := v1.Platform{OS: "linux", Architecture: "amd64"}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, p := range []v1.Platform{amd, {OS: "linux", Architecture: "arm64"}, {OS: "linux", Architecture: "arm", Variant: "v7"}} {
		img := platformImage(t, rnd, nil, p, 1)
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &p}})
	}
	f.index = idx
	base := platformImage(t, rnd, nil, amd, 1)
	for i, img := range seed[1:] {
		f.images[img.Ref] = platformImage(t, rnd, base, amd, i+1)
	}
	f.push(t, seed[0].Ref, idx)
	for ref, img := range f.images {
		f.push(t, ref, img)
	}
	return f
}

// upRef is where ref lives in the fixture's registry.
func (f *fixture) upRef(t testing.TB, ref string) name.Reference {
	t.Helper()
	o, _ := makeOptions(WithMirrors(f.mirrors...))
	s, err := parseSrc(ref, o)
	if err != nil {
		t.Fatal(err)
	}
	return s.fetchRef()
}

func (f *fixture) push(t testing.TB, ref string, x remote.Taggable) {
	t.Helper()
	r := f.upRef(t, ref)
	opts := []remote.Option{remote.WithTransport(f.up.Transport())}
	var err error
	switch v := x.(type) {
	case v1.ImageIndex:
		err = remote.WriteIndex(r, v, opts...)
	case v1.Image:
		err = remote.Write(r, v, opts...)
	}
	if err != nil {
		t.Fatalf("seed %s: %v", ref, err)
	}
}

// pullOpts are the options to read from the fixture.
func (f *fixture) pullOpts() []Option {
	o := []Option{WithMirrors(f.mirrors...), fastRetry}
	if f.up.CAPEM != nil {
		o = append(o, WithCA(f.up.CAPEM))
	} else {
		o = append(o, WithInsecure(f.up.Addr))
	}
	return o
}

func digestOf(t testing.TB, x interface{ Digest() (v1.Hash, error) }) string {
	t.Helper()
	h, err := x.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return h.String()
}

// counter counts registry requests by kind through the transport.
type counter struct {
	next                    http.RoundTripper
	mounts, uploads, writes atomic.Int64 // POST ?from= ; POST without ; any PUT/PATCH/POST
	mountOK                 atomic.Int64 // 201 answers to a mount
	requests                atomic.Int64
}

func (c *counter) RoundTrip(req *http.Request) (*http.Response, error) {
	c.requests.Add(1)
	isMount := req.Method == http.MethodPost && req.URL.Query().Get("from") != ""
	if req.Method == http.MethodPost && strings.HasSuffix(req.URL.Path, "/blobs/uploads/") {
		if isMount {
			c.mounts.Add(1)
		} else {
			c.uploads.Add(1)
		}
	}
	if req.Method == http.MethodPost || req.Method == http.MethodPut || req.Method == http.MethodPatch {
		c.writes.Add(1)
	}
	resp, err := c.next.RoundTrip(req)
	if err == nil && isMount && resp.StatusCode == http.StatusCreated {
		c.mountOK.Add(1)
	}
	return resp, err
}

func (c *counter) wrap(rt http.RoundTripper) http.RoundTripper { c.next = rt; return c }

// logBuffer collects slog output so tests can check what was logged.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func hostOf(t testing.TB, u string) string {
	t.Helper()
	p, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	return p.Host
}

func mustURL(t testing.TB, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func mustRef(t testing.TB, s string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
