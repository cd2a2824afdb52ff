// Command benchbake measures builder/bake on a realistic workload: 100 host
// bundles sharing ~320 MiB of Go-binary-like payload. It prints wall times,
// ratios against compressing the payload once, and the bake's peak RSS.
//
//	go run ./scripts/benchbake [-hosts 100] [-naive 3] [-dir /tmp]
//
// BENCHBAKE_CPUPROFILE=/tmp/bb.prof writes each bake's CPU profile to
// /tmp/bb.prof.<pid> (the cold bake first). -dir /dev/shm takes the disk out
// of the measurement: 100 bundles are ~11.5 GiB, so on a ~300 MB/s disk the
// bake is bound by writing them, not by compression.
//
// Payload: six files (kube-apiserver, kube-controller-manager, kubelet,
// kube-proxy, etcd, firstboot) filled in 64 KiB blocks, a fifth of them
// pseudo-random bytes and the rest runs of Go symbol-like words and small
// integers, all from a fixed seed, which gzip -6 compresses about 2.5-2.8x, like
// real Go binaries. Each host adds ~40 small files (json, certs, units).
package main

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/kubebake/kubebake/builder/bake"
)

var payloadFiles = []struct {
	name string
	mib  int
}{
	{"rootfs/opt/kubernetes/server/bin/kube-apiserver", 90},
	{"rootfs/opt/kubernetes/server/bin/kube-controller-manager", 80},
	{"rootfs/opt/kubernetes/server/bin/kubelet", 75},
	{"rootfs/opt/kubernetes/server/bin/kube-proxy", 40},
	{"rootfs/opt/etcd/etcd", 27},
	{"firstboot", 8},
}

const level = gzip.DefaultCompression

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "benchbake:", err)
		os.Exit(1)
	}
}

func run() error {
	hosts := flag.Int("hosts", 100, "number of host bundles")
	naive := flag.Int("naive", 3, "hosts to bake the naive way (tar|gzip each); extrapolated to -hosts")
	base := flag.String("dir", os.TempDir(), "directory for the payload and the bundles")
	child := flag.String("child", "", "internal: run one bake from this manifest and report")
	out := flag.String("out", "", "internal: output dir of -child")
	flag.Parse()
	if *child != "" {
		return runChild(*child, *out)
	}

	dir, err := os.MkdirTemp(*base, "benchbake-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if err := checkSpace(dir, 2*payloadBytes(), "the payload"); err != nil {
		return err
	}

	fmt.Printf("benchbake: %d CPUs, %s, gzip level %d (default)\n", runtime.NumCPU(), runtime.Version(), level)
	t0 := time.Now()
	bundles, shared, err := generate(filepath.Join(dir, "src"), *hosts)
	if err != nil {
		return err
	}
	fmt.Printf("payload: %d files, %.0f MiB shared, generated in %v (page cache warm for all runs)\n",
		len(shared), mib(payloadBytes()), time.Since(t0).Round(time.Millisecond))

	// (a) compress the shared payload once: tar | gzip into a sink, one goroutine.
	t0, c0 := time.Now(), cpuSelf()
	gzBytes, err := tarGzip(io.Discard, shared)
	if err != nil {
		return err
	}
	once, onceCPU := time.Since(t0), cpuSelf()-c0
	fmt.Printf("(a) compress payload once:             wall %8v cpu %8v  (%.0f MiB -> %.0f MiB, ratio %.2fx)\n",
		once.Round(time.Millisecond), onceCPU.Round(time.Millisecond), mib(payloadBytes()), mib(gzBytes), float64(payloadBytes())/float64(gzBytes))

	need := int64(*hosts)*gzBytes + 2*gzBytes + int64(*naive)*gzBytes
	if err := checkSpace(dir, need*3/2, fmt.Sprintf("%d bundles (~%.1f GiB)", *hosts, float64(need)/(1<<30))); err != nil {
		return err
	}

	// (b) naive: a full tar | gzip per host, to disk, for a few hosts.
	t0, c0 = time.Now(), cpuSelf()
	for i := range min(*naive, *hosts) {
		p := filepath.Join(dir, "naive.tar.gz")
		f, err := os.Create(p)
		if err != nil {
			return err
		}
		var entries []bake.Entry
		entries = append(entries, bundles[i].Entries...)
		if _, err := tarGzip(f, entries); err != nil {
			return err
		}
		if err := f.Sync(); err != nil {
			return err
		}
		f.Close()
		os.Remove(p)
	}
	naiveK, naiveKCPU := time.Since(t0), cpuSelf()-c0
	naiveN := naiveK / time.Duration(*naive) * time.Duration(*hosts)
	naiveNCPU := naiveKCPU / time.Duration(*naive) * time.Duration(*hosts)
	fmt.Printf("(b) naive tar|gzip, %d hosts measured: wall %8v cpu %8v  -> %d hosts, extrapolated linearly: wall %v cpu %v\n",
		*naive, naiveK.Round(time.Millisecond), naiveKCPU.Round(time.Millisecond), *hosts, naiveN.Round(time.Second), naiveNCPU.Round(time.Second))

	manifest := filepath.Join(dir, "bundles.json")
	b, err := json.Marshal(bundles)
	if err != nil {
		return err
	}
	if err := os.WriteFile(manifest, b, 0o644); err != nil {
		return err
	}
	outDir := filepath.Join(dir, "out")
	cold, err := bakeChild(manifest, outDir)
	if err != nil {
		return err
	}
	fmt.Printf("(c) bake.Write %d bundles, cold cache: wall %8v cpu %8v  peak RSS %d MiB, %d members compressed, %.1f GiB written\n",
		*hosts, cold.wall.Round(time.Millisecond), cold.cpu.Round(time.Millisecond), cold.rssKiB/1024, cold.Compressed, float64(cold.BytesOut)/(1<<30))
	warm, err := bakeChild(manifest, outDir)
	if err != nil {
		return err
	}
	fmt.Printf("(d) bake.Write %d bundles, warm cache: wall %8v cpu %8v  peak RSS %d MiB, %d members reused\n",
		*hosts, warm.wall.Round(time.Millisecond), warm.cpu.Round(time.Millisecond), warm.rssKiB/1024, warm.Reused)

	fmt.Printf("load average now: %s", loadavg())
	fmt.Printf("ratio bake%d(cold)/compress-once: wall %.2fx cpu %.2fx (target <= 2x)\n", *hosts, cold.wall.Seconds()/once.Seconds(), cold.cpu.Seconds()/onceCPU.Seconds())
	fmt.Printf("ratio bake%d(warm)/compress-once: wall %.2fx cpu %.2fx\n", *hosts, warm.wall.Seconds()/once.Seconds(), warm.cpu.Seconds()/onceCPU.Seconds())
	fmt.Printf("ratio naive%d/bake%d(cold):        wall %.1fx cpu %.1fx\n", *hosts, *hosts, naiveN.Seconds()/cold.wall.Seconds(), naiveNCPU.Seconds()/cold.cpu.Seconds())
	fmt.Printf("peak RSS of the cold bake: %d MiB (target <= 256 MiB)\n", cold.rssKiB/1024)
	return nil
}

// childReport is what a -child bake prints on stdout.
type childReport struct {
	WallNS     int64
	Compressed int
	Reused     int
	BytesOut   int64
}

type childResult struct {
	childReport
	wall   time.Duration
	cpu    time.Duration // user + system of the child process
	rssKiB int64
}

func bakeChild(manifest, outDir string) (*childResult, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, "-child", manifest, "-out", outDir)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("child bake: %w", err)
	}
	var r childResult
	if err := json.Unmarshal(stdout, &r.childReport); err != nil {
		return nil, fmt.Errorf("child bake report %q: %w", stdout, err)
	}
	r.wall = time.Duration(r.WallNS)
	r.cpu = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		r.rssKiB = ru.Maxrss
	}
	return &r, nil
}

func runChild(manifest, outDir string) error {
	b, err := os.ReadFile(manifest)
	if err != nil {
		return err
	}
	var bundles []bake.Bundle
	if err := json.Unmarshal(b, &bundles); err != nil {
		return err
	}
	b = nil
	if p := os.Getenv("BENCHBAKE_CPUPROFILE"); p != "" {
		f, err := os.Create(fmt.Sprintf("%s.%d", p, os.Getpid()))
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	var last bake.Progress
	t0 := time.Now()
	res, err := bake.Write(context.Background(), outDir, bundles,
		bake.WithMTime(time.Unix(1700000000, 0)), bake.WithLevel(level),
		bake.WithProgress(func(p bake.Progress) { last = p }))
	if err != nil {
		return err
	}
	rep := childReport{WallNS: int64(time.Since(t0)), Compressed: last.Compressed, Reused: last.Reused}
	for _, r := range res {
		rep.BytesOut += r.Size
	}
	return json.NewEncoder(os.Stdout).Encode(rep)
}

// tarGzip writes entries as one tar.gz stream and returns the compressed size.
func tarGzip(w io.Writer, entries []bake.Entry) (int64, error) {
	cw := &countWriter{w: w}
	zw, err := gzip.NewWriterLevel(cw, level)
	if err != nil {
		return 0, err
	}
	tw := tar.NewWriter(zw)
	for _, e := range entries {
		if err := tw.WriteHeader(&tar.Header{Name: e.Name, Mode: 0o755, Size: e.Size, Format: tar.FormatGNU}); err != nil {
			return 0, err
		}
		if e.Path == "" {
			if _, err := tw.Write(e.Data); err != nil {
				return 0, err
			}
			continue
		}
		f, err := os.Open(e.Path)
		if err != nil {
			return 0, err
		}
		_, err = io.Copy(tw, f)
		f.Close()
		if err != nil {
			return 0, err
		}
	}
	if err := tw.Close(); err != nil {
		return 0, err
	}
	if err := zw.Close(); err != nil {
		return 0, err
	}
	return cw.n, nil
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

func payloadBytes() int64 {
	var n int64
	for _, f := range payloadFiles {
		n += int64(f.mib) << 20
	}
	return n
}

// cpuSelf returns the user + system CPU time of this process so far.
func cpuSelf() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	return string(b)
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }

func checkSpace(dir string, need int64, what string) error {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return err
	}
	if avail := int64(st.Bavail) * int64(st.Bsize); avail < need {
		return fmt.Errorf("%s needs %.1f GiB free in %s (1.5x margin), only %.1f GiB available; use -dir or fewer -hosts",
			what, float64(need)/(1<<30), dir, float64(avail)/(1<<30))
	}
	return nil
}

// generate writes the shared payload under src and returns the bundles and
// the shared entries.
func generate(src string, hosts int) ([]bake.Bundle, []bake.Entry, error) {
	if err := os.MkdirAll(src, 0o755); err != nil {
		return nil, nil, err
	}
	var shared []bake.Entry
	for i, pf := range payloadFiles {
		p := filepath.Join(src, filepath.Base(pf.name))
		sum, err := writeBinary(p, uint64(i+1), int64(pf.mib)<<20)
		if err != nil {
			return nil, nil, err
		}
		shared = append(shared, bake.Entry{Name: pf.name, Mode: 0o755, SHA256: sum, Size: int64(pf.mib) << 20, Path: p})
	}
	r := rand.New(rand.NewPCG(99, 1))
	var bundles []bake.Bundle
	for h := range hosts {
		name := fmt.Sprintf("node-%03d", h)
		entries := append([]bake.Entry(nil), shared...)
		small := func(path string, mode uint32, n int) {
			line := fmt.Sprintf("%s %s %d\n", name, path, r.IntN(1e6))
			b := []byte(strings.Repeat(line, n/len(line)+1))[:n]
			s := sha256.Sum256(b)
			entries = append(entries, bake.Entry{Name: path, Mode: mode, SHA256: hex.EncodeToString(s[:]), Size: int64(n), Data: b})
		}
		small("bundle.json", 0o644, 6000)
		for _, c := range []string{"ca", "etcd", "apiserver", "kubelet", "kube-proxy", "flannel", "client"} {
			small("rootfs/opt/kubernetes/certs/"+c+".pem", 0o644, 1400)
			small("rootfs/opt/kubernetes/certs/"+c+"-key.pem", 0o600, 1700)
		}
		for _, u := range []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy", "flanneld", "firstboot"} {
			small("rootfs/etc/systemd/system/"+u+".service", 0o644, 900)
			small("rootfs/opt/kubernetes/conf/"+u+".conf", 0o644, 2500)
		}
		for _, k := range []string{"kubelet", "kube-proxy", "admin"} {
			small("rootfs/opt/kubernetes/conf/"+k+".kubeconfig", 0o600, 6000)
		}
		bundles = append(bundles, bake.Bundle{Name: name, Entries: entries})
	}
	return bundles, shared, nil
}

var words = strings.Fields(`runtime. k8s.io/kubernetes/pkg/kubelet k8s.io/apimachinery/pkg/apis/meta/v1
	github.com/gogo/protobuf/proto (*Pod).Unmarshal .func1 .String sync.(*Mutex).Lock
	go.etcd.io/etcd/server/v3 reflect.Value type:.eq. google.golang.org/grpc
	encoding/json.(*decodeState).object net/http.(*conn).serve %s: %w Status
	metadata.name spec.containers apiVersion kind error panic: invalid memory address`)

// writeBinary writes n bytes of Go-binary-like content and returns its sha256.
func writeBinary(path string, seed uint64, n int64) (string, error) {
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	w := io.MultiWriter(f, h)
	r := rand.New(rand.NewPCG(seed, 7))
	cc := rand.NewChaCha8([32]byte{byte(seed)})
	blk := make([]byte, 64<<10)
	for done := int64(0); done < n; done += int64(len(blk)) {
		if r.IntN(5) == 0 {
			cc.Read(blk)
		} else {
			b := blk[:0]
			for len(b) < len(blk) {
				b = append(b, words[r.IntN(len(words))]...)
				b = append(b, byte(r.IntN(8)), 0, 0, byte(r.IntN(256)))
			}
			blk = b[:len(blk)]
		}
		if _, err := w.Write(blk[:min(int64(len(blk)), n-done)]); err != nil {
			return "", err
		}
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
