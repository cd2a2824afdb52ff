package image

import (
	"context"
	"errors"
	"math/rand"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/kubebake/kubebake/internal/faultproxy"
	"github.com/kubebake/kubebake/internal/testregistry"
)

func byRef(ls []Locked) map[string]Locked {
	m := map[string]Locked{}
	for _, l := range ls {
		m[l.Ref] = l
	}
	return m
}

func validateLayout(t *testing.T, dir string) *v1.IndexManifest {
	t.Helper()
	p, err := layout.FromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	ii, err := p.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Index(ii); err != nil {
		t.Fatalf("layout %s does not validate: %v", dir, err)
	}
	im, err := ii.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	return im
}

// Pull with the default filter keeps only linux/amd64 of the multi-arch
// index and says so in Locked; the layout validates and every entry carries
// the source reference; a second Pull rewrites no entry twice.
func TestPullFiltersPlatform(t *testing.T) {
	f := newFixture(t)
	dir := t.TempDir()
	ctx := context.Background()
	var mu sync.Mutex
	done, blobs := map[string]bool{}, 0
	progress := WithProgress(func(p Progress) {
		mu.Lock()
		defer mu.Unlock()
		if p.Done {
			done[p.Image] = true
		} else if p.Blob != "" {
			blobs++
		}
	})
	locked, err := Pull(ctx, dir, seed, append(f.pullOpts(), progress)...)
	if err != nil {
		t.Fatal(err)
	}
	if len(done) != len(seed) || blobs == 0 {
		t.Errorf("progress: %d images done, %d blob events", len(done), blobs)
	}
	m := byRef(locked)
	pause := m[seed[0].Ref]
	idxDigest := digestOf(t, f.index)
	im, _ := f.index.IndexManifest()
	amd := im.Manifests[0].Digest.String()
	if pause.Digest != idxDigest || pause.Stored != amd || pause.Index {
		t.Errorf("pause: got digest %s stored %s index %v; want digest %s (the index) stored %s (amd64)", pause.Digest, pause.Stored, pause.Index, idxDigest, amd)
	}
	if len(pause.Platforms) != 1 || pause.Platforms["linux/amd64"] != amd {
		t.Errorf("pause platforms = %v, want only linux/amd64", pause.Platforms)
	}
	for _, img := range seed[1:] {
		want := digestOf(t, f.images[img.Ref])
		if l := m[img.Ref]; l.Digest != want || l.Stored != want || l.Platforms["linux/amd64"] != want {
			t.Errorf("%s: locked %+v, want digest %s", img.Ref, l, want)
		}
	}
	entries := validateLayout(t, dir)
	if len(entries.Manifests) != len(seed) {
		t.Fatalf("index.json has %d entries, want %d", len(entries.Manifests), len(seed))
	}
	for _, d := range entries.Manifests {
		l, ok := m[d.Annotations[AnnotationRefName]]
		if !ok || l.Stored != d.Digest.String() {
			t.Errorf("entry %s %s does not match the lock", d.Annotations[AnnotationRefName], d.Digest)
		}
	}
	// arm64 blobs must not be in the store
	if _, err := os.Stat(filepath.Join(dir, "blobs", "sha256", im.Manifests[1].Digest.Hex)); err == nil {
		t.Error("arm64 manifest stored despite the filter")
	}
	// re-pull: same answer, still one entry per ref
	again, err := Pull(ctx, dir, seed, f.pullOpts()...)
	if err != nil {
		t.Fatal(err)
	}
	for i := range again {
		if again[i].Stored != locked[i].Stored {
			t.Errorf("re-pull of %s: %s != %s", again[i].Ref, again[i].Stored, locked[i].Stored)
		}
	}
	if n := len(validateLayout(t, dir).Manifests); n != len(seed) {
		t.Errorf("after re-pull index.json has %d entries", n)
	}
}

// "all" keeps the index whole; two platforms keep a filtered index built
// from the source's own descriptors.
func TestPullKeepsIndex(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	im, _ := f.index.IndexManifest()
	idxDigest := digestOf(t, f.index)

	dir := t.TempDir()
	locked, err := Pull(ctx, dir, seed[:1], append(f.pullOpts(), WithPlatforms([]string{"all"}))...)
	if err != nil {
		t.Fatal(err)
	}
	l := locked[0]
	if l.Stored != idxDigest || !l.Index || len(l.Platforms) != 3 || l.Platforms["linux/arm/v7"] != im.Manifests[2].Digest.String() {
		t.Errorf("all: got %+v, want the whole index %s with 3 platforms", l, idxDigest)
	}
	entries := validateLayout(t, dir)
	if entries.Manifests[0].Digest.String() != idxDigest {
		t.Errorf("layout entry %s, want index %s", entries.Manifests[0].Digest, idxDigest)
	}

	dir2 := t.TempDir()
	locked, err = Pull(ctx, dir2, seed[:1], append(f.pullOpts(), WithPlatforms([]string{"linux/arm64", "linux/amd64"}))...)
	if err != nil {
		t.Fatal(err)
	}
	l = locked[0]
	if !l.Index || l.Stored == idxDigest || l.Digest != idxDigest || len(l.Platforms) != 2 || l.Platforms["linux/arm/v7"] != "" {
		t.Errorf("two platforms: got %+v, want a filtered index of amd64+arm64 (source %s)", l, idxDigest)
	}
	validateLayout(t, dir2)

	_, err = Pull(ctx, t.TempDir(), seed[:1], append(f.pullOpts(), WithPlatforms([]string{"linux/s390x"}))...)
	if !errors.Is(err, ErrPlatform) || !strings.Contains(err.Error(), "linux/arm/v7") {
		t.Errorf("missing platform: got %v, want ErrPlatform listing what the index has", err)
	}
}

// Push from the store into a TLS+htpasswd registry with credentials from
// environment variables: every digest is read back, shared blobs are mounted
// across repositories, a second Push skips everything and sends no write,
// and the password never reaches the log.
func TestPushSkipMountVerify(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	store := t.TempDir()
	locked, err := Pull(ctx, store, seed, append(f.pullOpts(), WithPlatforms([]string{"all"}))...)
	if err != nil {
		t.Fatal(err)
	}
	dst := testregistry.Start(t, testregistry.WithAuth("pusher", "Pa55-word-xyz"))
	t.Setenv("KB_TEST_USER", dst.User)
	t.Setenv("KB_TEST_PASSWORD", dst.Password)
	target := Target{Registry: dst.Addr, Project: "public"}
	var logs logBuffer
	cnt := &counter{}
	opts := []Option{
		WithCA(dst.CAPEM),
		WithCreds([]Cred{{Registry: dst.Addr, UsernameEnv: "KB_TEST_USER", PasswordEnv: "KB_TEST_PASSWORD"}}),
		WithLogger(logs.logger()), withWrap(cnt.wrap), fastRetry,
	}
	pushed, err := Push(ctx, store, locked, target, opts...)
	if err != nil {
		t.Fatal(err)
	}
	check := remote.WithTransport(dst.Transport())
	auth := remote.WithAuth(&authn.Basic{Username: dst.User, Password: dst.Password})
	for i, p := range pushed {
		want, _ := TargetRef(locked[i].Ref, target)
		if p.Dst != want || p.Digest != locked[i].Stored || p.Skipped {
			t.Errorf("pushed %+v, want dst %s digest %s", p, want, locked[i].Stored)
		}
		d, err := remote.Head(mustRef(t, p.Dst), check, auth)
		if err != nil || d.Digest.String() != p.Digest {
			t.Errorf("%s: registry has %v (%v), want %s", p.Dst, d, err, p.Digest)
		}
	}
	// the pause index came across whole: every child is there too
	idx, err := remote.Index(mustRef(t, pushed[0].Dst), check, auth)
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Index(idx); err != nil {
		t.Errorf("pushed index: %v", err)
	}
	t.Logf("first push: %d uploads, %d mount attempts (%d mounted), %d requests", cnt.uploads.Load(), cnt.mounts.Load(), cnt.mountOK.Load(), cnt.requests.Load())
	if cnt.mountOK.Load() == 0 {
		t.Error("no blob was mounted across repositories although four images share a base layer")
	}

	cnt2 := &counter{}
	opts[len(opts)-2] = withWrap(cnt2.wrap)
	start := time.Now()
	again, err := Push(ctx, store, locked, target, opts...)
	elapsed := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range again {
		if !p.Skipped {
			t.Errorf("second push did not skip %s", p.Dst)
		}
	}
	t.Logf("no-op re-push of %d images: %v, %d requests, %d writes", len(again), elapsed, cnt2.requests.Load(), cnt2.writes.Load())
	if cnt2.writes.Load() != 0 {
		t.Errorf("no-op re-push sent %d write requests", cnt2.writes.Load())
	}
	if strings.Contains(logs.String(), dst.Password) {
		t.Error("the password reached the log")
	}
}

// Copy goes upstream → registry directly, with the same digests Pull saw.
func TestCopyDirect(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	dst := testregistry.Start(t)
	target := Target{Registry: dst.Addr, Project: "direct", Flatten: true}
	opts := append(f.pullOpts(), WithCA(dst.CAPEM))
	pushed, err := Copy(ctx, seed, target, opts...)
	if err != nil {
		t.Fatal(err)
	}
	im, _ := f.index.IndexManifest()
	for i, p := range pushed {
		want := ""
		if i == 0 {
			want = im.Manifests[0].Digest.String() // default filter: amd64 only
		} else {
			want = digestOf(t, f.images[seed[i].Ref])
		}
		if p.Digest != want || p.Skipped {
			t.Errorf("%s: %+v, want digest %s", seed[i].Ref, p, want)
		}
		img, err := remote.Image(mustRef(t, p.Dst), remote.WithTransport(dst.Transport()))
		if err != nil {
			t.Fatal(err)
		}
		if err := validate.Image(img); err != nil {
			t.Errorf("%s: %v", p.Dst, err)
		}
	}
	if pushed[1].Dst != dst.Addr+"/direct/coredns:v1.12.0" {
		t.Errorf("flattened name %s", pushed[1].Dst)
	}
	again, err := Copy(ctx, seed, target, opts...)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range again {
		if !p.Skipped {
			t.Errorf("second copy did not skip %s", p.Dst)
		}
	}
}

// Layout for one host keeps only that host's images, for one platform,
// hardlinked from the store, named as nodes will pull them.
func TestLayoutForHost(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	store := t.TempDir()
	locked, err := Pull(ctx, store, seed, append(f.pullOpts(), WithPlatforms([]string{"all"}))...)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "images")
	keep := []Locked{locked[1], locked[0]} // coredns, pause
	target := Target{Registry: "harbor.od.com", Project: "public"}
	if err := Layout(ctx, store, out, keep, "linux/amd64", WithTarget(target)); err != nil {
		t.Fatal(err)
	}
	im := validateLayout(t, out)
	if len(im.Manifests) != 2 {
		t.Fatalf("layout has %d entries, want 2", len(im.Manifests))
	}
	idx, _ := f.index.IndexManifest()
	want := map[string]string{
		seed[0].Ref: idx.Manifests[0].Digest.String(),
		seed[1].Ref: locked[1].Stored,
	}
	refs := 0
	for _, d := range im.Manifests {
		ref := d.Annotations[AnnotationRefName]
		if want[ref] != d.Digest.String() || !d.MediaType.IsImage() || platformString(d.Platform) != "linux/amd64" {
			t.Errorf("entry %s: %s %s %v", ref, d.Digest, d.MediaType, d.Platform)
		}
		tr, _ := TargetRef(ref, target)
		if d.Annotations[AnnotationContainerdName] != tr {
			t.Errorf("entry %s named %q, want %q", ref, d.Annotations[AnnotationContainerdName], tr)
		}
		refs++
	}
	ents, _ := os.ReadDir(filepath.Join(out, "blobs", "sha256"))
	// pause amd64: manifest+config+2 layers; coredns: manifest+config+3 layers
	if len(ents) != 9 {
		t.Errorf("layout holds %d blobs, want 9 (only the kept images)", len(ents))
	}
	for _, e := range ents {
		a, _ := os.Stat(filepath.Join(out, "blobs", "sha256", e.Name()))
		b, _ := os.Stat(filepath.Join(store, "blobs", "sha256", e.Name()))
		if !os.SameFile(a, b) {
			t.Errorf("blob %s copied, not hardlinked", e.Name())
		}
	}
	// re-run with one image fewer drops the other's blobs, same bytes otherwise
	if err := Layout(ctx, store, out, keep[1:], "linux/amd64", WithTarget(target)); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(filepath.Join(out, "blobs", "sha256")); len(ents) != 4 {
		t.Errorf("after shrinking, %d blobs, want 4", len(ents))
	}
	if err := Layout(ctx, store, out, keep, "linux/s390x"); !errors.Is(err, ErrPlatform) {
		t.Errorf("unknown platform: %v, want ErrPlatform", err)
	}
}

// A wrong password names the registry and how to log in, never the secret.
func TestWrongPassword(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	store := t.TempDir()
	locked, err := Pull(ctx, store, seed[:2], f.pullOpts()...)
	if err != nil {
		t.Fatal(err)
	}
	dst := testregistry.Start(t, testregistry.WithAuth("pusher", "right-one"))
	const wrong = "Wr0ng-Secret-Value"
	t.Setenv("KB_USER", "pusher")
	t.Setenv("KB_PASS", wrong)
	var logs logBuffer
	_, err = Push(ctx, store, locked, Target{Registry: dst.Addr, Project: "public"},
		WithCA(dst.CAPEM), WithLogger(logs.logger()), fastRetry,
		WithCreds([]Cred{{Registry: dst.Addr, UsernameEnv: "KB_USER", PasswordEnv: "KB_PASS"}}))
	var ae *AuthError
	if !errors.As(err, &ae) || !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("got %v, want *AuthError", err)
	}
	msg := err.Error()
	t.Log(msg)
	for _, s := range []string{dst.Addr, "docker login " + dst.Addr, "KB_USER", "KB_PASS"} {
		if !strings.Contains(msg, s) {
			t.Errorf("error %q does not mention %q", msg, s)
		}
	}
	if strings.Contains(msg, wrong) || strings.Contains(logs.String(), wrong) {
		t.Error("the password leaked into the error or the log")
	}

	// unset variables are named, not silently anonymous
	t.Setenv("KB_PASS", "")
	_, err = Push(ctx, store, locked, Target{Registry: dst.Addr}, WithCA(dst.CAPEM), fastRetry,
		WithCreds([]Cred{{Registry: dst.Addr, UsernameEnv: "KB_USER", PasswordEnv: "KB_PASS"}}))
	if err == nil || !strings.Contains(err.Error(), "KB_PASS") {
		t.Errorf("unset variable: got %v", err)
	}

	// no credentials at all: the message points at docker login
	_, err = Push(ctx, store, locked, Target{Registry: dst.Addr}, WithCA(dst.CAPEM), fastRetry)
	if !errors.As(err, &ae) || !strings.Contains(err.Error(), "docker login "+dst.Addr) {
		t.Errorf("anonymous: got %v", err)
	}
}

// A tag that moved since the lock: strict names both digests; non-strict
// keeps the locked bytes.
func TestLockDrift(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	locked, err := Pull(ctx, t.TempDir(), seed[1:2], f.pullOpts()...)
	if err != nil {
		t.Fatal(err)
	}
	old := locked[0].Digest
	moved := platformImage(t, rand.New(rand.NewSource(7)), nil, v1.Platform{OS: "linux", Architecture: "amd64"}, 1)
	f.push(t, seed[1].Ref, moved)
	newDigest := digestOf(t, moved)

	_, err = Pull(ctx, t.TempDir(), seed[1:2], append(f.pullOpts(), WithLock(locked, true))...)
	var de *DriftError
	if !errors.As(err, &de) || !errors.Is(err, ErrDrift) {
		t.Fatalf("strict: got %v, want *DriftError", err)
	}
	if !strings.Contains(err.Error(), old) || !strings.Contains(err.Error(), newDigest) {
		t.Errorf("drift error %q should name %s and %s", err, old, newDigest)
	}

	if _, err := Pull(ctx, t.TempDir(), seed[:1], append(f.pullOpts(), WithLock(locked, true))...); !errors.Is(err, ErrDrift) || !strings.Contains(err.Error(), "not in the lock") {
		t.Errorf("strict with an unlocked image: got %v", err)
	}

	var logs logBuffer
	got, err := Pull(ctx, t.TempDir(), seed[1:2], append(f.pullOpts(), WithLock(locked, false), WithLogger(logs.logger()))...)
	if err != nil {
		t.Fatal(err)
	}
	if got[0].Digest != old || got[0].Stored != old {
		t.Errorf("non-strict: pulled %s, want the locked %s", got[0].Stored, old)
	}
	if !strings.Contains(logs.String(), "tag moved") {
		t.Error("non-strict drift not logged")
	}
}

// A fault proxy in front of the upstream fails ~10% of requests (5xx,
// resets, truncated and corrupted bodies): Pull still completes and every
// digest matches a clean pull.
func TestPullThroughFaults(t *testing.T) {
	f := newFixture(t, testregistry.WithoutTLS())
	ctx := context.Background()
	clean, err := Pull(ctx, t.TempDir(), seed, append(f.pullOpts(), WithPlatforms([]string{"all"}))...)
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	var counts map[faultproxy.Kind]int
	runs := []faultproxy.Faults{
		{Rate: 0.1, Seed: 1}, {Rate: 0.1, Seed: 2}, {Rate: 0.1, Seed: 3},
		// bodies only, more often: corrupted and truncated bodies must be
		// caught before a blob gets its final name
		{Rate: 0.3, Seed: 4, Kinds: []faultproxy.Kind{faultproxy.Corrupt, faultproxy.Truncate}},
	}
	for i, faults := range runs {
		seedN := int64(i + 1)
		p := faultproxy.New(mustURL(t, f.up.URL()), faults)
		host := hostOf(t, p.URL())
		dir := t.TempDir()
		var logs logBuffer
		got, err := Pull(ctx, dir, seed,
			WithMirrors(Mirror{"registry.k8s.io", host}, Mirror{"docker.io", host}),
			WithInsecure(host), WithPlatforms([]string{"all"}), WithJobs(2), fastRetry, WithLogger(logs.logger()))
		counts = p.Counts()
		reqs := p.Requests()
		p.Close()
		if err != nil {
			t.Fatalf("seed %d: pull through faults (%v): %v\n%s", seedN, counts, err, logs.String())
		}
		for i := range got {
			if got[i].Stored != clean[i].Stored || got[i].Digest != clean[i].Digest {
				t.Errorf("seed %d: %s: %s, clean pull got %s", seedN, got[i].Ref, got[i].Stored, clean[i].Stored)
			}
		}
		validateLayout(t, dir)
		if left, _ := filepath.Glob(filepath.Join(dir, "blobs", "sha256", ".*")); len(left) > 0 {
			t.Errorf("seed %d: temp files left behind: %v", seedN, left)
		}
		if i == len(runs)-1 && counts[faultproxy.Corrupt] == 0 {
			t.Errorf("no corrupted body injected (%v)", counts)
		}
		n := 0
		for _, c := range counts {
			n += c
		}
		total += n
		t.Logf("seed %d: %d requests, faults %v", seedN, reqs, counts)
	}
	if total == 0 {
		t.Error("the proxy injected no fault: the test proved nothing")
	}
}

// A pull cancelled mid-way leaves no partial blob under a final name and no
// index entry for unfinished images; re-running completes it.
func TestPullInterruptedThenResumed(t *testing.T) {
	f := newFixture(t)
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var once sync.Once
	_, err := Pull(ctx, dir, seed, append(f.pullOpts(), WithJobs(1), WithProgress(func(p Progress) {
		if p.Blob != "" && !p.Skipped {
			once.Do(cancel)
		}
	}))...)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	locked, err := Pull(context.Background(), dir, seed, f.pullOpts()...)
	if err != nil {
		t.Fatal(err)
	}
	im := validateLayout(t, dir)
	if len(im.Manifests) != len(seed) || len(locked) != len(seed) {
		t.Errorf("after resume: %d entries", len(im.Manifests))
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "blobs", "sha256", ".*")); len(left) > 0 {
		t.Errorf("temp files left: %v", left)
	}
}

// TestEndpoint pushes to a registry under a name that does not resolve here
// (as harbor.od.com does not on a build machine outside the site's DNS):
// WithEndpoint dials the real address, and TLS still checks the name.
func TestEndpoint(t *testing.T) {
	f := newFixture(t)
	dst := testregistry.Start(t, testregistry.WithNames("harbor.kubebake.invalid"))
	_, port, _ := net.SplitHostPort(dst.Addr)
	name := "harbor.kubebake.invalid:" + port
	target := Target{Registry: name, Project: "public"}
	pushed, err := Copy(context.Background(), seed[:1], target, append(f.pullOpts(), WithCA(dst.CAPEM), WithEndpoint(name, dst.Addr))...)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(pushed[0].Dst, name+"/public/") {
		t.Fatalf("pushed to %s", pushed[0].Dst)
	}
	// Without the endpoint the name does not resolve: the option is what worked.
	if _, err := Copy(context.Background(), seed[:1], target, append(f.pullOpts(), WithCA(dst.CAPEM), WithRetry(remote.Backoff{Steps: 1}))...); err == nil {
		t.Fatal("pushing to an unresolvable name without an endpoint succeeded")
	}
}

// TestPushThroughFaults mirrors from the store into a registry behind the
// fault proxy (5xx and connection resets on ~10 % of requests, uploads
// included): the push must finish and every digest read back must match.
func TestPushThroughFaults(t *testing.T) {
	f := newFixture(t, testregistry.WithoutTLS())
	ctx := context.Background()
	store := t.TempDir()
	locked, err := Pull(ctx, store, seed, append(f.pullOpts(), WithPlatforms([]string{"all"}))...)
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for seedN := int64(1); seedN <= 3; seedN++ {
		dst := testregistry.Start(t, testregistry.WithoutTLS())
		p := faultproxy.New(mustURL(t, dst.URL()), faultproxy.Faults{Rate: 0.1, Seed: seedN, Kinds: []faultproxy.Kind{faultproxy.Status5xx, faultproxy.Reset}})
		host := hostOf(t, p.URL())
		pushed, err := Push(ctx, store, locked, Target{Registry: host, Project: "public"}, WithInsecure(host), WithJobs(2), fastRetry)
		counts := p.Counts()
		p.Close()
		if err != nil {
			t.Fatalf("seed %d: push through faults (%v): %v", seedN, counts, err)
		}
		for i, ps := range pushed {
			if ps.Digest != locked[i].Stored {
				t.Errorf("seed %d: %s: pushed %s, want %s", seedN, ps.Dst, ps.Digest, locked[i].Stored)
			}
			// Read back straight from the registry, past the proxy.
			ref := mustRef(t, strings.Replace(ps.Dst, host, dst.Addr, 1))
			d, err := remote.Head(ref, remote.WithTransport(dst.Transport()))
			if err != nil || d.Digest.String() != ps.Digest {
				t.Errorf("seed %d: %s: registry has %v (%v)", seedN, ref, d, err)
			}
		}
		for _, c := range counts {
			total += c
		}
		t.Logf("seed %d: faults %v", seedN, counts)
	}
	if total == 0 {
		t.Error("the proxy injected no fault: the test proved nothing")
	}
}
