// Command benchmirror measures builder/image and builder/fetch on the seed's
// images and on a 1 GiB artifact, between two local registries (Debian's
// docker-registry, plain HTTP on 127.0.0.1, via internal/testregistry):
//
//   - mirroring the five seed images src → dst: kubebake's image.Copy vs
//     `crane copy` (built from the module cache's go-containerregistry
//     cmd/crane) vs Debian's `skopeo copy`, same run, median of -reps, each
//     run into a fresh, empty dst registry so every tool does the same full
//     copy (and no tool can mount blobs it saw in an earlier run);
//
//   - a no-op re-mirror (everything already in dst) and its request count;
//
//   - peak RSS (Maxrss of a child process) of fetch.Pull of a 1 GiB file,
//     image.Pull and image.Copy of an image with one 1 GiB layer.
//
//     go run ./scripts/benchmirror [-reps 3] [-dir /tmp] [-big 1024]
//
// Every kubebake measurement runs in a child process (this binary re-run
// with -child), like crane and skopeo, so wall times include process start
// on every side and Maxrss is the operation's own. It exits non-zero only
// when something could not run; a missed target is printed as MISSED.
//
// Seed images (sizes of the compressed layers, which is what moves; layer
// bytes are ChaCha8 from a fixed seed per layer, so incompressible like real
// gzip layers, wrapped in a tar and a stored-block gzip, linux configs):
//
//	registry.k8s.io/pause:3.10                  index amd64+arm64, 1 layer 0.3 MiB each
//	registry.k8s.io/coredns/coredns:v1.15.0     index amd64+arm64, 3 layers 20 MiB each
//	ghcr.io/flannel-io/flannel:v0.28.10         amd64, 3 layers 35 MiB
//	ghcr.io/flannel-io/flannel-cni-plugin:v1.9.1-flannel1  amd64, 2 layers 5 MiB
//	docker.io/library/traefik:v3.6.24           amd64, 3 layers 45 MiB
//
// They are pushed to src under their upstream repository paths (pause,
// coredns/coredns, flannel-io/flannel, library/traefik, …); kubebake reaches
// them through mirrors (registry.k8s.io, ghcr.io, docker.io → src), as a
// site behind a local mirror would.
package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/kubebake/kubebake/builder/fetch"
	"github.com/kubebake/kubebake/builder/image"
	"github.com/kubebake/kubebake/internal/testregistry"
)

// seedImage is one image of the seed's set.
type seedImage struct {
	ref       string   // upstream reference
	platforms []string // more than one: pushed as an index
	layersKiB []int    // per platform
}

var seed = []seedImage{
	{"registry.k8s.io/pause:3.10", []string{"linux/amd64", "linux/arm64"}, []int{300}},
	{"registry.k8s.io/coredns/coredns:v1.15.0", []string{"linux/amd64", "linux/arm64"}, []int{100, 700, 19680}},
	{"ghcr.io/flannel-io/flannel:v0.28.10", []string{"linux/amd64"}, []int{3400, 10240, 22200}},
	{"ghcr.io/flannel-io/flannel-cni-plugin:v1.9.1-flannel1", []string{"linux/amd64"}, []int{3400, 1720}},
	{"docker.io/library/traefik:v3.6.24", []string{"linux/amd64"}, []int{3400, 600, 42080}},
}

const bigRef = "registry.k8s.io/kubebake-bench/big:1gib"

var upstreams = []string{"registry.k8s.io", "ghcr.io", "docker.io"}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "benchmirror:", err)
		os.Exit(1)
	}
}

func run() error {
	reps := flag.Int("reps", 3, "runs of each mirror measurement (the median is reported)")
	base := flag.String("dir", os.TempDir(), "directory for registries, artifacts and stores")
	bigMiB := flag.Int64("big", 1024, "size of the large artifact and layer, MiB")
	child := flag.String("child", "", "internal: run one kubebake operation from this spec file and report")
	flag.Parse()
	if *child != "" {
		return runChild(*child)
	}
	if *reps < 1 {
		return errors.New("-reps must be at least 1")
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	for _, bin := range []string{testregistry.Binary, "/usr/bin/skopeo"} {
		if _, err := os.Stat(bin); err != nil {
			return fmt.Errorf("%s not found: apt-get install -y docker-registry skopeo", bin)
		}
	}
	dir, err := os.MkdirTemp(*base, "benchmirror-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	b := &bench{dir: dir, reps: *reps, big: *bigMiB << 20, load0: loadavg()}
	defer b.stopAll()

	// Disk: seed (~130 MiB) in src, blob files and at most two dst copies
	// at a time; the big artifact: its file, its layer file (removed after
	// the push), src's copy, and at most two more copies (store, layout,
	// dst — each removed after its measurement).
	need := 6*b.big + 2<<30
	if err := checkSpace(*base, need); err != nil {
		return err
	}

	crane := filepath.Join(dir, "crane")
	t0 := time.Now()
	build := exec.CommandContext(ctx, "go", "build", "-o", crane, "github.com/google/go-containerregistry/cmd/crane")
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("cannot build crane (go build github.com/google/go-containerregistry/cmd/crane): %v\n%s", err, out)
	}
	b.crane = crane
	fmt.Printf("benchmirror: %d CPUs, %s, %s, crane %s (built in %v), %s\n", runtime.NumCPU(), runtime.Version(),
		version(testregistry.Binary, "--version"), craneVersion(), time.Since(t0).Round(time.Millisecond), version("skopeo", "--version"))
	b.policy = filepath.Join(dir, "policy.json")
	if err := os.WriteFile(b.policy, []byte(`{"default":[{"type":"insecureAcceptAnything"}]}`), 0o644); err != nil {
		return err
	}

	if b.src, err = b.registry("src"); err != nil {
		return err
	}
	t0 = time.Now()
	if err := b.pushSeed(ctx); err != nil {
		return err
	}
	b.seedManifests, b.seedBlobs, b.seedBytes = b.manifests, b.blobs, b.pushed
	fmt.Printf("seed: %d images, %d manifests, %d blobs, %.1f MiB, generated and pushed to src %s in %v\n",
		len(seed), b.seedManifests, b.seedBlobs, mib(b.seedBytes), b.src.Addr, time.Since(t0).Round(time.Millisecond))

	if err := b.mirror(ctx); err != nil {
		return err
	}
	if err := b.noop(ctx); err != nil {
		return err
	}
	if err := b.rss(ctx); err != nil {
		return err
	}
	b.summary()
	return nil
}

type bench struct {
	dir    string
	reps   int
	big    int64
	crane  string
	policy string
	src    *reg

	mu   sync.Mutex
	regs []*reg

	noopDst                  *reg               // dst of the last kubebake run, kept for the no-op re-mirror
	roots                    map[string]v1.Hash // upstream ref → root digest
	isIndex                  map[string]bool
	manifests                int   // pushed to src so far
	blobs                    int   // pushed to src so far
	pushed                   int64 // blob bytes pushed to src so far
	seedManifests, seedBlobs int
	seedBytes                int64

	// results
	walls   map[string][]time.Duration
	noopIn  []time.Duration // Copy's own wall, in the child
	noopOut []time.Duration // child process wall
	noopReq map[string]int
	rssKiB  map[string]int64
	rssWall map[string]time.Duration
	lines   []string
	load0   string
}

type reg struct {
	*testregistry.Registry
	stop func()
	dir  string
}

func (b *bench) registry(name string) (*reg, error) {
	d, err := os.MkdirTemp(b.dir, "reg-"+name+"-")
	if err != nil {
		return nil, err
	}
	r, stop, err := testregistry.StartProcess(d, testregistry.WithoutTLS())
	if err != nil {
		os.RemoveAll(d)
		return nil, err
	}
	rr := &reg{Registry: r, stop: stop, dir: d}
	b.mu.Lock()
	b.regs = append(b.regs, rr)
	b.mu.Unlock()
	return rr, nil
}

// drop stops a registry and removes its storage.
func (b *bench) drop(r *reg) {
	r.stop()
	os.RemoveAll(r.dir)
}

func (b *bench) stopAll() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, r := range b.regs {
		r.stop()
	}
}

// ---- seed generation and push ----

func (b *bench) pushSeed(ctx context.Context) error {
	b.roots, b.isIndex = map[string]v1.Hash{}, map[string]bool{}
	blobDir := filepath.Join(b.dir, "blobs")
	if err := os.MkdirAll(blobDir, 0o755); err != nil {
		return err
	}
	defer os.RemoveAll(blobDir)
	for _, si := range seed {
		d, err := b.pushImage(ctx, blobDir, si)
		if err != nil {
			return fmt.Errorf("push %s to src: %w", si.ref, err)
		}
		b.roots[si.ref] = d
		b.isIndex[si.ref] = len(si.platforms) > 1
	}
	return nil
}

// pushImage generates si's layers and config, pushes them with its
// manifest(s) to src under the upstream path, and returns the root digest.
func (b *bench) pushImage(ctx context.Context, blobDir string, si seedImage) (v1.Hash, error) {
	ref, err := name.ParseReference(b.srcRef(si.ref), name.Insecure)
	if err != nil {
		return v1.Hash{}, err
	}
	repo := ref.Context()
	ropts := []remote.Option{remote.WithContext(ctx)}
	var children []v1.Descriptor
	for _, plat := range si.platforms {
		os_, arch, _ := strings.Cut(plat, "/")
		var layers []v1.Descriptor
		var diffIDs []v1.Hash
		for i, kib := range si.layersKiB {
			path := filepath.Join(blobDir, fmt.Sprintf("layer-%d", b.blobs))
			l, err := writeLayer(path, si.ref+"|"+plat+"|"+fmt.Sprint(i), int64(kib)<<10)
			if err != nil {
				return v1.Hash{}, err
			}
			if err := remote.WriteLayer(repo, l, ropts...); err != nil {
				return v1.Hash{}, err
			}
			os.Remove(path)
			layers = append(layers, v1.Descriptor{MediaType: types.OCILayer, Size: l.size, Digest: l.digest})
			diffIDs = append(diffIDs, l.diffID)
			b.blobs++
			b.pushed += l.size
		}
		cfg, err := json.Marshal(v1.ConfigFile{
			Architecture: arch, OS: os_,
			Created: v1.Time{Time: time.Unix(1764374400, 0).UTC()},
			Config:  v1.Config{Entrypoint: []string{"/" + strings.Split(filepath.Base(repo.RepositoryStr()), ":")[0]}},
			RootFS:  v1.RootFS{Type: "layers", DiffIDs: diffIDs},
		})
		if err != nil {
			return v1.Hash{}, err
		}
		cb := newBytesBlob(cfg, types.OCIConfigJSON)
		if err := remote.WriteLayer(repo, cb, ropts...); err != nil {
			return v1.Hash{}, err
		}
		b.blobs++
		b.pushed += int64(len(cfg))
		mf, err := json.Marshal(v1.Manifest{
			SchemaVersion: 2, MediaType: types.OCIManifestSchema1,
			Config: v1.Descriptor{MediaType: types.OCIConfigJSON, Size: int64(len(cfg)), Digest: cb.digest},
			Layers: layers,
		})
		if err != nil {
			return v1.Hash{}, err
		}
		md := sha(mf)
		b.manifests++
		if len(si.platforms) == 1 {
			if err := remote.Put(ref, raw{mf, types.OCIManifestSchema1}, ropts...); err != nil {
				return v1.Hash{}, err
			}
			return md, nil
		}
		if err := remote.Put(repo.Digest(md.String()), raw{mf, types.OCIManifestSchema1}, ropts...); err != nil {
			return v1.Hash{}, err
		}
		children = append(children, v1.Descriptor{MediaType: types.OCIManifestSchema1, Size: int64(len(mf)), Digest: md,
			Platform: &v1.Platform{OS: os_, Architecture: arch}})
	}
	idx, err := json.Marshal(v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: children})
	if err != nil {
		return v1.Hash{}, err
	}
	b.manifests++
	if err := remote.Put(ref, raw{idx, types.OCIImageIndex}, ropts...); err != nil {
		return v1.Hash{}, err
	}
	return sha(idx), nil
}

// srcRef is where upstream ref lives on src: the upstream repository path
// (docker.io's implicit library/ included) on src's host.
func (b *bench) srcRef(ref string) string {
	s, err := image.TargetRef(ref, image.Target{Registry: b.src.Addr})
	if err != nil {
		panic(err) // the seed's refs are constants
	}
	return s
}

func dstRef(ref, dst string) string {
	s, err := image.TargetRef(ref, image.Target{Registry: dst, Project: "mirror"})
	if err != nil {
		panic(err)
	}
	return s
}

// fileLayer is a generated layer on disk: tar of one file of ChaCha8 bytes,
// gzip with stored blocks.
type fileLayer struct {
	path           string
	digest, diffID v1.Hash
	size           int64
}

func (l *fileLayer) Digest() (v1.Hash, error)            { return l.digest, nil }
func (l *fileLayer) DiffID() (v1.Hash, error)            { return l.diffID, nil }
func (l *fileLayer) Size() (int64, error)                { return l.size, nil }
func (l *fileLayer) MediaType() (types.MediaType, error) { return types.OCILayer, nil }
func (l *fileLayer) Compressed() (io.ReadCloser, error)  { return os.Open(l.path) }
func (l *fileLayer) Uncompressed() (io.ReadCloser, error) {
	f, err := os.Open(l.path)
	if err != nil {
		return nil, err
	}
	zr, err := gzip.NewReader(f)
	if err != nil {
		f.Close()
		return nil, err
	}
	return struct {
		io.Reader
		io.Closer
	}{zr, f}, nil
}

// writeLayer streams a layer of about n bytes to path; memory stays at a
// 1 MiB buffer whatever n is.
func writeLayer(path, seedStr string, n int64) (*fileLayer, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	dh, uh := sha256.New(), sha256.New()
	cw := &countWriter{w: io.MultiWriter(f, dh)}
	zw, err := gzip.NewWriterLevel(cw, gzip.NoCompression)
	if err != nil {
		return nil, err
	}
	tw := tar.NewWriter(io.MultiWriter(zw, uh))
	hdr := &tar.Header{Name: "payload.bin", Mode: 0o644, Size: n, ModTime: time.Unix(1764374400, 0), Format: tar.FormatUSTAR}
	if err := tw.WriteHeader(hdr); err != nil {
		return nil, err
	}
	if err := stream(tw, seedStr, n); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	return &fileLayer{path: path, size: cw.n,
		digest: v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(dh.Sum(nil))},
		diffID: v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(uh.Sum(nil))}}, nil
}

// stream writes n deterministic pseudo-random bytes seeded by seedStr.
func stream(w io.Writer, seedStr string, n int64) error {
	cc := rand.NewChaCha8(sha256.Sum256([]byte(seedStr)))
	buf := make([]byte, 1<<20)
	for n > 0 {
		k := min(int64(len(buf)), n)
		_, _ = cc.Read(buf[:k])
		if _, err := w.Write(buf[:k]); err != nil {
			return err
		}
		n -= k
	}
	return nil
}

type bytesBlob struct {
	b      []byte
	mt     types.MediaType
	digest v1.Hash
}

func newBytesBlob(b []byte, mt types.MediaType) *bytesBlob {
	return &bytesBlob{b: b, mt: mt, digest: sha(b)}
}

func (x *bytesBlob) Digest() (v1.Hash, error)            { return x.digest, nil }
func (x *bytesBlob) DiffID() (v1.Hash, error)            { return x.digest, nil }
func (x *bytesBlob) Size() (int64, error)                { return int64(len(x.b)), nil }
func (x *bytesBlob) MediaType() (types.MediaType, error) { return x.mt, nil }
func (x *bytesBlob) Compressed() (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(x.b)), nil
}
func (x *bytesBlob) Uncompressed() (io.ReadCloser, error) { return x.Compressed() }

type raw struct {
	b  []byte
	mt types.MediaType
}

func (r raw) RawManifest() ([]byte, error)        { return r.b, nil }
func (r raw) MediaType() (types.MediaType, error) { return r.mt, nil }

func sha(b []byte) v1.Hash {
	s := sha256.Sum256(b)
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(s[:])}
}

// ---- mirror: kubebake vs crane vs skopeo ----

// tools in measurement order; the order rotates each rep so no tool always
// runs first (cold) or last.
var tools = []string{"kubebake", "crane", "crane-parallel", "skopeo"}

var toolDesc = map[string]string{
	"kubebake":       "kubebake image.Copy, 5 images (default jobs: 4 images x 4 blobs)",
	"crane":          "crane copy, one image after another (crane's default --jobs=GOMAXPROCS)",
	"crane-parallel": "crane copy, 5 processes at once (informational)",
	"skopeo":         "skopeo copy, one image after another (--all for indexes)",
}

func (b *bench) mirror(ctx context.Context) error {
	b.walls = map[string][]time.Duration{}
	fmt.Printf("mirror %d images (%.1f MiB) src → a fresh dst registry per run, %d runs each:\n", len(seed), mib(b.seedBytes), b.reps)
	var keep *reg
	for rep := range b.reps {
		for i := range tools {
			tool := tools[(i+rep)%len(tools)]
			dst, err := b.registry("dst")
			if err != nil {
				return err
			}
			t0 := time.Now()
			switch tool {
			case "kubebake":
				_, err = b.kubebakeCopy(ctx, seedImages(), dst.Addr)
			case "crane", "crane-parallel":
				err = b.each(ctx, tool == "crane-parallel", func(si seedImage) *exec.Cmd {
					return exec.CommandContext(ctx, b.crane, "copy", "--insecure", b.srcRef(si.ref), dstRef(si.ref, dst.Addr))
				})
			case "skopeo":
				err = b.each(ctx, false, func(si seedImage) *exec.Cmd {
					args := []string{"--policy", b.policy, "copy", "-q", "--src-tls-verify=false", "--dest-tls-verify=false"}
					if len(si.platforms) > 1 {
						args = append(args, "--all")
					}
					args = append(args, "docker://"+b.srcRef(si.ref), "docker://"+dstRef(si.ref, dst.Addr))
					return exec.CommandContext(ctx, "skopeo", args...)
				})
			}
			wall := time.Since(t0)
			if err != nil {
				return fmt.Errorf("%s, run %d: %w", tool, rep+1, err)
			}
			if err := b.verify(ctx, dst.Addr); err != nil {
				return fmt.Errorf("%s, run %d: dst does not hold the images: %w", tool, rep+1, err)
			}
			b.walls[tool] = append(b.walls[tool], wall)
			if tool == "kubebake" && rep == b.reps-1 {
				if keep != nil {
					b.drop(keep)
				}
				keep = dst // for the no-op re-mirror
			} else {
				b.drop(dst)
			}
		}
	}
	b.noopDst = keep
	for _, tool := range tools {
		fmt.Printf("  %-72s runs %s  median %v\n", toolDesc[tool]+":", fmtRuns(b.walls[tool]), median(b.walls[tool]).Round(time.Millisecond))
	}
	kb := median(b.walls["kubebake"]).Seconds()
	for _, tool := range tools[1:] {
		r := median(b.walls[tool]).Seconds() / kb
		target := ""
		if tool == "crane" {
			target = " (target >= 1.0x)" + missed(r >= 1.0)
		}
		line := fmt.Sprintf("ratio %s/kubebake: %.2fx%s", tool, r, target)
		fmt.Println(line)
		b.lines = append(b.lines, line)
	}
	return nil
}

func seedImages() []image.Image {
	var out []image.Image
	for _, si := range seed {
		n := strings.Split(si.ref, ":")[0]
		out = append(out, image.Image{Name: n[strings.LastIndex(n, "/")+1:], Ref: si.ref})
	}
	return out
}

// each runs one command per seed image, one after another or all at once.
func (b *bench) each(ctx context.Context, parallel bool, mk func(seedImage) *exec.Cmd) error {
	runOne := func(si seedImage) error {
		cmd := mk(si)
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, out)
		}
		return nil
	}
	if !parallel {
		for _, si := range seed {
			if err := runOne(si); err != nil {
				return err
			}
		}
		return nil
	}
	errs := make([]error, len(seed))
	var wg sync.WaitGroup
	for i, si := range seed {
		wg.Go(func() { errs[i] = runOne(si) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// verify checks that dst holds every seed image under its mirrored tag with
// the source's root digest (the whole index for multi-arch images).
func (b *bench) verify(ctx context.Context, dst string) error {
	for _, si := range seed {
		if err := b.check(ctx, dstRef(si.ref, dst), b.roots[si.ref]); err != nil {
			return err
		}
	}
	return nil
}

// ---- no-op re-mirror ----

func (b *bench) noop(ctx context.Context) error {
	dst := b.noopDst
	defer b.drop(dst)
	for range b.reps {
		t0 := time.Now()
		rep, err := b.kubebakeCopy(ctx, seedImages(), dst.Addr)
		if err != nil {
			return fmt.Errorf("no-op re-mirror: %w", err)
		}
		b.noopOut = append(b.noopOut, time.Since(t0))
		b.noopIn = append(b.noopIn, time.Duration(rep.WallNS))
		if rep.Skipped != len(seed) {
			return fmt.Errorf("no-op re-mirror skipped %d of %d images", rep.Skipped, len(seed))
		}
	}
	// Once more through counting proxies in front of src and dst.
	srcP, srcN, err := countingProxy(b.src.Addr)
	if err != nil {
		return err
	}
	defer srcP.Close()
	dstP, dstN, err := countingProxy(dst.Addr)
	if err != nil {
		return err
	}
	defer dstP.Close()
	if _, err := b.kubebakeCopyVia(ctx, seedImages(), srcP.Addr().String(), dstP.Addr().String()); err != nil {
		return fmt.Errorf("no-op re-mirror through proxies: %w", err)
	}
	b.noopReq = map[string]int{}
	for k, v := range srcN.snapshot() {
		b.noopReq["src "+k] = v
	}
	for k, v := range dstN.snapshot() {
		b.noopReq["dst "+k] = v
	}
	in := median(b.noopIn)
	line := fmt.Sprintf("no-op re-mirror (5 images, all present): Copy %v median (runs %s), child process %v; %s (target < 1s)%s",
		in.Round(time.Millisecond), fmtRuns(b.noopIn), median(b.noopOut).Round(time.Millisecond), fmtReq(b.noopReq), missed(in < time.Second))
	fmt.Println(line)
	b.lines = append(b.lines, line)
	return nil
}

type counter struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *counter) snapshot() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.n)
}

// countingProxy serves a reverse proxy to addr on a new port, counting
// requests by method.
func countingProxy(addr string) (net.Listener, *counter, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, err
	}
	c := &counter{n: map[string]int{}}
	p := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: addr})
	go func() {
		_ = http.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			kind := "other"
			switch p := r.URL.Path; {
			case p == "/v2/" || p == "/v2":
				kind = "ping"
			case strings.Contains(p, "/manifests/"):
				kind = "manifest"
			case strings.Contains(p, "/blobs/uploads"):
				kind = "upload"
			case strings.Contains(p, "/blobs/"):
				kind = "blob"
			}
			c.mu.Lock()
			c.n[r.Method+" "+kind]++
			c.mu.Unlock()
			p.ServeHTTP(w, r)
		}))
	}()
	return l, c, nil
}

func fmtReq(m map[string]int) string {
	var keys []string
	total := 0
	for k, v := range m {
		keys = append(keys, k)
		total += v
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return fmt.Sprintf("%d requests (%s)", total, strings.Join(parts, ", "))
}

// ---- peak RSS with a 1 GiB artifact ----

func (b *bench) rss(ctx context.Context) error {
	b.rssKiB, b.rssWall = map[string]int64{}, map[string]time.Duration{}
	fmt.Printf("peak RSS with a %.0f MiB artifact (Maxrss of a child process; target <= 256 MiB for kubebake):\n", mib(b.big))

	// (a) fetch.Pull of a file over HTTP, with its .sha256.
	files := filepath.Join(b.dir, "files")
	if err := os.MkdirAll(files, 0o755); err != nil {
		return err
	}
	t0 := time.Now()
	f, err := os.Create(filepath.Join(files, "big.bin"))
	if err != nil {
		return err
	}
	h := sha256.New()
	err = stream(io.MultiWriter(f, h), "big.bin", b.big)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if err := os.WriteFile(filepath.Join(files, "big.bin.sha256"), []byte(sum+"  big.bin\n"), 0o644); err != nil {
		return err
	}
	fmt.Printf("  generated big.bin (%.0f MiB, sha256 %s…) in %v\n", mib(b.big), sum[:12], time.Since(t0).Round(time.Millisecond))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: http.FileServer(http.Dir(files))}
	go func() { _ = srv.Serve(l) }()
	defer srv.Close()
	u := "http://" + l.Addr().String() + "/big.bin"
	store := filepath.Join(b.dir, "fetch-store")
	if err := b.measure(ctx, "fetch.Pull", childSpec{Mode: "fetch", Store: store,
		Source: fetch.Source{Name: "big", URL: u, SHA256URL: u + ".sha256"}}, true); err != nil {
		return err
	}
	os.RemoveAll(store)
	srv.Close()
	os.RemoveAll(files)

	// The image: one layer of the same size, pushed to src.
	t0 = time.Now()
	blobDir := filepath.Join(b.dir, "bigblob")
	if err := os.MkdirAll(blobDir, 0o755); err != nil {
		return err
	}
	bigImg := seedImage{bigRef, []string{"linux/amd64"}, []int{int(b.big >> 10)}}
	d, err := b.pushImage(ctx, blobDir, bigImg)
	os.RemoveAll(blobDir)
	if err != nil {
		return fmt.Errorf("push %s to src: %w", bigRef, err)
	}
	fmt.Printf("  pushed %s (one %.0f MiB layer, %s…) to src in %v\n", bigRef, mib(b.big), d.Hex[:12], time.Since(t0).Round(time.Millisecond))

	// (b) image.Pull into a layout.
	layout := filepath.Join(b.dir, "layout")
	if err := b.measure(ctx, "image.Pull", childSpec{Mode: "pull", Layout: layout, Images: []image.Image{{Name: "big", Ref: bigRef}},
		Mirrors: b.mirrors(b.src.Addr), Insecure: []string{b.src.Addr}}, true); err != nil {
		return err
	}
	os.RemoveAll(layout)

	// (c) image.Copy src → a fresh dst.
	for _, tool := range []string{"image.Copy", "crane copy", "skopeo copy"} {
		dst, err := b.registry("dst-big")
		if err != nil {
			return err
		}
		switch tool {
		case "image.Copy":
			err = b.measure(ctx, tool, childSpec{Mode: "copy", Images: []image.Image{{Name: "big", Ref: bigRef}},
				Mirrors: b.mirrors(b.src.Addr), Insecure: []string{b.src.Addr, dst.Addr}, Target: image.Target{Registry: dst.Addr, Project: "mirror"}}, true)
		case "crane copy":
			err = b.measureCmd(exec.CommandContext(ctx, b.crane, "copy", "--insecure", b.srcRef(bigRef), dstRef(bigRef, dst.Addr)), tool)
		case "skopeo copy":
			err = b.measureCmd(exec.CommandContext(ctx, "skopeo", "--policy", b.policy, "copy", "-q", "--src-tls-verify=false", "--dest-tls-verify=false",
				"docker://"+b.srcRef(bigRef), "docker://"+dstRef(bigRef, dst.Addr)), tool)
		}
		if err == nil {
			err = b.check(ctx, dstRef(bigRef, dst.Addr), d)
		}
		b.drop(dst)
		if err != nil {
			return fmt.Errorf("%s: %w", tool, err)
		}
	}
	return nil
}

// check verifies that ref names digest want.
func (b *bench) check(ctx context.Context, ref string, want v1.Hash) error {
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		return err
	}
	d, err := remote.Head(r, remote.WithContext(ctx))
	if err != nil {
		return fmt.Errorf("%s: %w", ref, err)
	}
	if d.Digest != want {
		return fmt.Errorf("%s is %s, src has %s", ref, d.Digest, want)
	}
	return nil
}

func (b *bench) measure(ctx context.Context, what string, spec childSpec, target bool) error {
	_, wall, rss, err := b.child(ctx, spec)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	b.record(what, wall, rss, target)
	return nil
}

func (b *bench) measureCmd(cmd *exec.Cmd, what string) error {
	t0 := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, out)
	}
	b.record(what, time.Since(t0), maxrss(cmd), false)
	return nil
}

func (b *bench) record(what string, wall time.Duration, rssKiB int64, target bool) {
	b.rssKiB[what], b.rssWall[what] = rssKiB, wall
	t := " (reference)"
	if target {
		t = " (target <= 256 MiB)" + missed(rssKiB <= 256<<10)
	}
	line := fmt.Sprintf("peak RSS %-12s %4d MiB, wall %v%s", what+":", rssKiB>>10, wall.Round(time.Millisecond), t)
	fmt.Println("  " + line)
	b.lines = append(b.lines, line)
}

// ---- kubebake in a child process ----

type childSpec struct {
	Mode      string // copy, pull, fetch
	Images    []image.Image
	Mirrors   []image.Mirror
	Insecure  []string
	Target    image.Target
	Layout    string
	Store     string
	Source    fetch.Source
	Platforms []string
}

type childReport struct {
	WallNS  int64
	Skipped int
}

func (b *bench) mirrors(to string) []image.Mirror {
	var m []image.Mirror
	for _, u := range upstreams {
		m = append(m, image.Mirror{From: u, To: to})
	}
	return m
}

func (b *bench) kubebakeCopy(ctx context.Context, imgs []image.Image, dst string) (*childReport, error) {
	return b.kubebakeCopyVia(ctx, imgs, b.src.Addr, dst)
}

// kubebakeCopyVia copies with src reached at srcAddr and the target at dst;
// indexes are kept whole, as crane and skopeo --all copy them.
func (b *bench) kubebakeCopyVia(ctx context.Context, imgs []image.Image, srcAddr, dst string) (*childReport, error) {
	rep, _, _, err := b.child(ctx, childSpec{Mode: "copy", Images: imgs, Mirrors: b.mirrors(srcAddr),
		Insecure: []string{srcAddr, dst}, Target: image.Target{Registry: dst, Project: "mirror"}, Platforms: []string{"all"}})
	return rep, err
}

func (b *bench) child(ctx context.Context, spec childSpec) (*childReport, time.Duration, int64, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, 0, 0, err
	}
	sb, err := json.Marshal(spec)
	if err != nil {
		return nil, 0, 0, err
	}
	p := filepath.Join(b.dir, "child.json")
	if err := os.WriteFile(p, sb, 0o644); err != nil {
		return nil, 0, 0, err
	}
	cmd := exec.CommandContext(ctx, exe, "-child", p)
	cmd.Stderr = os.Stderr
	t0 := time.Now()
	out, err := cmd.Output()
	wall := time.Since(t0)
	if err != nil {
		return nil, 0, 0, fmt.Errorf("child %s: %w", spec.Mode, err)
	}
	var rep childReport
	if err := json.Unmarshal(out, &rep); err != nil {
		return nil, 0, 0, fmt.Errorf("child %s report %q: %w", spec.Mode, out, err)
	}
	return &rep, wall, maxrss(cmd), nil
}

func runChild(specPath string) error {
	sb, err := os.ReadFile(specPath)
	if err != nil {
		return err
	}
	var spec childSpec
	if err := json.Unmarshal(sb, &spec); err != nil {
		return err
	}
	ctx := context.Background()
	opts := []image.Option{image.WithMirrors(spec.Mirrors...), image.WithInsecure(spec.Insecure...)}
	if spec.Platforms != nil {
		opts = append(opts, image.WithPlatforms(spec.Platforms))
	}
	var rep childReport
	t0 := time.Now()
	switch spec.Mode {
	case "copy":
		res, err := image.Copy(ctx, spec.Images, spec.Target, opts...)
		if err != nil {
			return err
		}
		for _, r := range res {
			if r.Skipped {
				rep.Skipped++
			}
		}
	case "pull":
		if _, err := image.Pull(ctx, spec.Layout, spec.Images, opts...); err != nil {
			return err
		}
	case "fetch":
		if _, err := fetch.Pull(ctx, spec.Store, []fetch.Source{spec.Source}); err != nil {
			return err
		}
	default:
		return fmt.Errorf("child: unknown mode %q", spec.Mode)
	}
	rep.WallNS = int64(time.Since(t0))
	return json.NewEncoder(os.Stdout).Encode(rep)
}

// ---- summary and helpers ----

func (b *bench) summary() {
	fmt.Println()
	fmt.Println("=== benchmirror summary ===")
	fmt.Printf("seed: %d images (2 multi-arch), %.1f MiB of blobs; medians of %d runs, each into a fresh dst registry\n", len(seed), mib(b.seedBytes), b.reps)
	for _, tool := range tools {
		fmt.Printf("mirror wall %-15s %v\n", tool+":", median(b.walls[tool]).Round(time.Millisecond))
	}
	for _, l := range b.lines {
		fmt.Println(l)
	}
	fmt.Printf("load average at start: %sload average now:      %s", b.load0, loadavg())
}

func maxrss(cmd *exec.Cmd) int64 {
	if cmd.ProcessState == nil {
		return 0
	}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		return ru.Maxrss
	}
	return 0
}

func median(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

func fmtRuns(d []time.Duration) string {
	var parts []string
	for _, x := range d {
		parts = append(parts, x.Round(time.Millisecond).String())
	}
	return "[" + strings.Join(parts, " ") + "]"
}

func missed(ok bool) string {
	if ok {
		return ""
	}
	return " MISSED"
}

func version(bin string, args ...string) string {
	out, err := exec.Command(bin, args...).Output()
	if err != nil {
		return bin + " (version unknown)"
	}
	return strings.TrimSpace(string(out))
}

func craneVersion() string {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Version}}", "github.com/google/go-containerregistry").Output()
	if err != nil {
		return "(go-containerregistry version unknown)"
	}
	return "from go-containerregistry " + strings.TrimSpace(string(out))
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	return string(b)
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }

func checkSpace(dir string, need int64) error {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return err
	}
	if avail := int64(st.Bavail) * int64(st.Bsize); avail < need {
		return fmt.Errorf("needs %.1f GiB free in %s, only %.1f GiB available; use -dir elsewhere or a smaller -big",
			float64(need)/(1<<30), dir, float64(avail)/(1<<30))
	}
	return nil
}
