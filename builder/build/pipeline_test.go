package build

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/kubebake/kubebake/builder/lock"
	"github.com/kubebake/kubebake/builder/spec"
	"github.com/kubebake/kubebake/builder/verify"
	"github.com/kubebake/kubebake/internal/testregistry"
)

// serveUpstream lays the stand-in artifacts out as the release sites do
// (<host>/<path of the URL>) and serves them; it returns the URL mirrors.
func serveUpstream(t *testing.T, b *bed) []spec.Mirror {
	t.Helper()
	www := filepath.Join(b.root, "www")
	hosts := map[string]bool{}
	place := func(raw, from string) {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(www, u.Host, filepath.FromSlash(u.Path))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, data, 0o644); err != nil {
			t.Fatal(err)
		}
		hosts[u.Scheme+"://"+u.Host] = true
	}
	for _, a := range b.spec.Artifacts {
		place(a.URL, filepath.Join(b.artifacts, a.Name, path.Base(a.URL)))
		if a.SHA256URL != "" {
			place(a.SHA256URL, filepath.Join(b.artifacts, a.Name, path.Base(a.SHA256URL)))
		}
	}
	srv := httptest.NewServer(http.FileServer(http.Dir(www)))
	t.Cleanup(srv.Close)
	var ms []spec.Mirror
	for h := range hosts {
		ms = append(ms, spec.Mirror{From: h, To: srv.URL + "/" + strings.TrimPrefix(h, "https://")})
	}
	return ms
}

// TestPullMirrorBake is the artifacts flow against real parts: an HTTP
// upstream, a real registry as the image upstream (plain HTTP, reached
// through mirrors), and a real registry standing in for Harbor with TLS
// from kubebake's own harbor.od.com certificate and htpasswd auth.
func TestPullMirrorBake(t *testing.T) {
	ctx := context.Background()
	b := newBed(t, 0)
	s := b.spec
	state, store, out := filepath.Join(b.root, "state"), filepath.Join(b.root, "store"), filepath.Join(b.root, "out")

	// The image upstream: every image of the spec but traefik, which is
	// optional and so must be reported unavailable, not fail the pull.
	up := testregistry.Start(t, testregistry.WithoutTLS())
	for _, im := range s.Images {
		if im.Name == "traefik" {
			continue
		}
		ref, err := name.ParseReference(im.Ref)
		if err != nil {
			t.Fatal(err)
		}
		img := platformImage(t, "amd64")
		dst, err := name.ParseReference(up.Addr+"/"+ref.Context().RepositoryStr()+":"+ref.Identifier(), name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.Write(dst, img); err != nil {
			t.Fatal(err)
		}
	}
	s.Mirrors = serveUpstream(t, b)
	for _, reg := range []string{"registry.k8s.io", "ghcr.io", "docker.io"} {
		s.Mirrors = append(s.Mirrors, spec.Mirror{From: reg, To: "http://" + up.Addr})
	}

	// The PKI first: the registry serves kubebake's harbor.od.com cert.
	if _, err := Certs(ctx, s, WithStateDir(state)); err != nil {
		t.Fatal(err)
	}
	read := func(n string) []byte {
		b, err := os.ReadFile(filepath.Join(PKIDir(state), n))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	harbor := testregistry.Start(t, testregistry.WithCert(read("ca.pem"), read("harbor.pem"), read("harbor-key.pem"), "harbor.od.com"),
		testregistry.WithAuth("admin", "s3cret-for-test"))
	s.Registry.Endpoint = harbor.Addr
	s.Credentials = []spec.Credential{{Registry: "harbor.od.com", UsernameEnv: "KB_TEST_HARBOR_USER", PasswordEnv: "KB_TEST_HARBOR_PASS"}}
	t.Setenv("KB_TEST_HARBOR_USER", "admin")
	t.Setenv("KB_TEST_HARBOR_PASS", "s3cret-for-test")

	opts := []Option{WithStateDir(state), WithStoreDir(store), WithOutDir(out)}
	pulled, err := Pull(ctx, s, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if len(pulled.Artifacts) != len(s.Artifacts) || len(pulled.Images) != len(s.Images)-1 || !pulled.LockChanged {
		t.Fatalf("pulled %d artifacts, %d images, lock changed %v", len(pulled.Artifacts), len(pulled.Images), pulled.LockChanged)
	}
	if len(pulled.Unavailable) != 1 || pulled.Unavailable[0].Name != "traefik" {
		t.Fatalf("unavailable = %+v, want traefik", pulled.Unavailable)
	}
	l, err := lock.Read(lock.PathFor(b.specPath))
	if err != nil || l == nil || len(l.Artifacts) != len(s.Artifacts) || l.Images[0].Platforms["linux/amd64"] == "" {
		t.Fatalf("lock: %v %+v", err, l)
	}
	for _, a := range l.Artifacts {
		if strings.Contains(a.URL, "127.0.0.1") {
			t.Errorf("lock holds the mirror's URL %s; it must keep the upstream's", a.URL)
		}
	}
	// Again, pinned: nothing changes; --locked agrees.
	if again, err := Pull(ctx, s, append(opts, WithLocked(true))...); err != nil || again.LockChanged {
		t.Fatalf("locked re-pull: %v, changed %v", err, again != nil && again.LockChanged)
	}

	mirrored, err := Mirror(ctx, s, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if mirrored.Harbor != "" || len(mirrored.Pushed) != len(pulled.Images) {
		t.Fatalf("mirror: %+v", mirrored)
	}
	for _, p := range mirrored.Pushed {
		if p.Skipped || !strings.HasPrefix(p.Dst, "harbor.od.com/public/") {
			t.Errorf("pushed %+v", p)
		}
	}
	if again, err := Mirror(ctx, s, opts...); err != nil {
		t.Fatal(err)
	} else {
		for _, p := range again.Pushed {
			if !p.Skipped {
				t.Errorf("re-mirror pushed %s again", p.Dst)
			}
		}
	}

	fb, err := os.ReadFile(firstbootBin)
	if err != nil {
		t.Fatal(err)
	}
	res, err := Bake(ctx, s, append(opts, WithFirstboot(fb))...)
	if err != nil {
		t.Fatal(err)
	}
	ca := stateCAs(t, state)
	for _, r := range res.Bundles {
		rep, err := verify.Verify(r.Path, verify.Options{CA: ca})
		if err != nil || !rep.OK() {
			t.Fatalf("%s: %v %v", r.Path, err, rep.Problems)
		}
	}
	m, _, err := verify.Inspect(filepath.Join(out, "hdss7-21.tar.gz"))
	if err != nil {
		t.Fatal(err)
	}
	var refs []string
	for _, im := range m.Images {
		refs = append(refs, im.Ref)
	}
	if strings.Join(refs, " ") != "harbor.od.com/public/coredns/coredns:v1.15.0 harbor.od.com/public/pause:3.10" {
		t.Fatalf("hdss7-21 images = %v", refs)
	}
	if m.Build.LockDigest == "" {
		t.Error("bundle.json does not record the lock digest")
	}
	if m2, _, _ := verify.Inspect(filepath.Join(out, "hdss7-11.tar.gz")); len(m2.Images) != 0 {
		t.Errorf("hdss7-11 (dns, lb) runs no containers but carries %v", m2.Images)
	}
	dir := t.TempDir()
	if o, err := exec.Command("tar", "xzf", filepath.Join(out, "hdss7-21.tar.gz"), "-C", dir, "images").CombinedOutput(); err != nil {
		t.Fatalf("tar: %v %s", err, o)
	}
	idx, err := layout.ImageIndexFromPath(filepath.Join(dir, "images"))
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Index(idx); err != nil {
		t.Fatalf("images/ does not validate: %v", err)
	}
	// What nodes pull from Harbor is what the bundle preloads.
	pushed := map[string]string{}
	for _, p := range mirrored.Pushed {
		pushed[p.Dst] = p.Digest
	}
	for _, im := range m.Images {
		if pushed[im.Ref] != im.Digest {
			t.Errorf("%s: bundle has %s, Harbor has %s", im.Ref, im.Digest, pushed[im.Ref])
		}
		if _, err := v1.NewHash(im.Digest); err != nil {
			t.Error(err)
		}
	}
}
