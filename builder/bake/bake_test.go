package bake

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kubebake/kubebake/internal/bundletest"
)

const childEnv = "BAKE_TEST_CHILD"

var testMTime = time.Unix(1700000000, 0)

// TestMain lets a test re-run this binary as a child bake, in another
// environment (determinism) or to be killed mid-bake (crash safety).
func TestMain(m *testing.M) {
	switch os.Getenv(childEnv) {
	case "":
		os.Exit(m.Run())
	case "determinism":
		syscall.Umask(0o077)
		bundles, err := fixture("src", 3)
		if err == nil {
			_, err = Write(context.Background(), "out", bundles, WithMTime(testMTime), WithJobs(3))
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	case "kill":
		dir := os.Getenv("BAKE_TEST_DIR")
		bundles, err := fixture(filepath.Join(dir, "src"), 2)
		if err == nil {
			bundles[1].Entries = append(bundles[1].Entries, fifoEntry(filepath.Join(dir, "fifo")))
			_, err = Write(context.Background(), filepath.Join(dir, "out"), bundles, WithMTime(testMTime))
		}
		fmt.Fprintln(os.Stderr, "child bake returned:", err)
		os.Exit(1)
	}
}

// content returns n deterministic bytes: a mix of random and repetitive data.
func content(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 42))
	b := make([]byte, n)
	for i := 0; i < n; i += 4096 {
		blk := b[i:min(i+4096, n)]
		if r.IntN(3) == 0 {
			for j := range blk {
				blk[j] = byte(r.Uint32())
			}
		} else {
			for j := range blk {
				blk[j] = "k8s.io/kubernetes/pkg/kubelet "[j%30]
			}
		}
	}
	return b
}

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func dataEntry(name string, mode uint32, b []byte) Entry {
	return Entry{Name: name, Mode: mode, SHA256: sum(b), Size: int64(len(b)), Data: b}
}

const longName = "rootfs/etc/kubernetes/manifests/some/deeply/nested/directory/with/a/name/longer/than/one/hundred/bytes/coredns.yaml"

// fixture writes the shared payload under src and returns n host bundles.
func fixture(src string, n int) ([]Bundle, error) {
	if err := os.MkdirAll(src, 0o755); err != nil {
		return nil, err
	}
	big := map[string][]byte{
		"rootfs/opt/kubernetes/bin/kubelet": content(1, 300<<10+7),
		"rootfs/opt/etcd/etcd":              content(2, 200<<10),
		"firstboot":                         content(3, 100<<10+511),
	}
	paths := make(map[string]string)
	for name, b := range big {
		p := filepath.Join(src, strings.ReplaceAll(name, "/", "_"))
		if err := os.WriteFile(p, b, 0o600); err != nil {
			return nil, err
		}
		paths[name] = p
	}
	var bundles []Bundle
	for i := range n {
		host := fmt.Sprintf("hdss7-%d", 21+i)
		b := Bundle{Name: host, Entries: []Entry{
			dataEntry("bundle.json", 0, []byte(`{"host":"`+host+`"}`)),
			dataEntry("rootfs/etc/kubernetes/pki/"+host+"-key.pem", 0o600, []byte("key of "+host)),
			dataEntry("rootfs/etc/systemd/system/kubelet.service", 0o644, content(9, 3000)),
			dataEntry(longName, 0o644, []byte("apiVersion: v1\n")),
			dataEntry("rootfs/opt/empty", 0o644, nil),
			{Name: "rootfs/var/lib/etcd/", Mode: 0o700},
			dataEntry("rootfs/opt/sbin/helper", 0o4755, []byte("#!/bin/sh\n")),
		}}
		for name, b2 := range big {
			if name == "rootfs/opt/etcd/etcd" && i%2 == 1 {
				continue
			}
			mode := uint32(0o755)
			b.Entries = append(b.Entries, Entry{Name: name, Mode: mode, SHA256: sum(b2), Size: int64(len(b2)), Path: paths[name]})
		}
		bundles = append(bundles, b)
	}
	return bundles, nil
}

const fifoSize = 1 << 20

func fifoEntry(path string) Entry {
	b := content(7, fifoSize)
	return Entry{Name: "rootfs/opt/cni/bin/flannel", Mode: 0o755, SHA256: sum(b), Size: fifoSize, Path: path}
}

func countMembers(t *testing.T, path string) int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	br := bufio.NewReader(f) // a ByteReader: gzip reads no further than each member
	zr, err := gzip.NewReader(br)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for {
		zr.Multistream(false)
		if _, err := io.Copy(io.Discard, zr); err != nil {
			t.Fatal(err)
		}
		if zr.Header.Name != "" || !zr.Header.ModTime.IsZero() || zr.Header.OS != 255 {
			t.Errorf("member %d has header %+v", n, zr.Header)
		}
		n++
		if err := zr.Reset(br); err == io.EOF {
			return n
		} else if err != nil {
			t.Fatal(err)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	dir := t.TempDir()
	bundles, err := fixture(filepath.Join(dir, "src"), 2)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	res, err := Write(t.Context(), out, bundles, WithMTime(testMTime))
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 2 {
		t.Fatalf("got %d results", len(res))
	}
	for i, r := range res {
		if r.Name != bundles[i].Name || r.Path != filepath.Join(out, r.Name+".tar.gz") {
			t.Errorf("result %d = %+v", i, r)
		}
		b, err := os.ReadFile(r.Path)
		if err != nil {
			t.Fatal(err)
		}
		if sum(b) != r.SHA256 || int64(len(b)) != r.Size {
			t.Errorf("%s: result %+v does not match the file", r.Name, r)
		}
		want := make(map[string]Entry)
		for _, e := range bundles[i].Entries {
			want[e.Name] = e
		}
		files := bundletest.Entries(t, r.Path)
		var names []string
		for _, f := range files {
			h := f.Header
			names = append(names, strings.TrimSuffix(h.Name, "/"))
			if h.Uid != 0 || h.Gid != 0 || h.Uname != "root" || h.Gname != "root" {
				t.Errorf("%s: owner %d/%d %s/%s", h.Name, h.Uid, h.Gid, h.Uname, h.Gname)
			}
			if !h.ModTime.Equal(testMTime) || !h.AccessTime.IsZero() || !h.ChangeTime.IsZero() {
				t.Errorf("%s: times %v %v %v", h.Name, h.ModTime, h.AccessTime, h.ChangeTime)
			}
			if len(h.PAXRecords) != 0 {
				t.Errorf("%s: PAX records %v", h.Name, h.PAXRecords)
			}
			e, listed := want[h.Name]
			switch {
			case h.Typeflag == tar.TypeDir && !listed:
				if h.Mode != 0o755 {
					t.Errorf("%s: implied directory mode %#o", h.Name, h.Mode)
				}
			case h.Typeflag == tar.TypeDir:
				if h.Mode != int64(e.Mode) {
					t.Errorf("%s: mode %#o, want %#o", h.Name, h.Mode, e.Mode)
				}
				delete(want, h.Name)
			case h.Typeflag == tar.TypeReg && listed:
				wantMode := int64(e.Mode)
				if wantMode == 0 {
					wantMode = 0o644
				}
				if h.Mode != wantMode {
					t.Errorf("%s: mode %#o, want %#o", h.Name, h.Mode, wantMode)
				}
				if sum(f.Data) != e.SHA256 {
					t.Errorf("%s: content differs", h.Name)
				}
				delete(want, h.Name)
			default:
				t.Errorf("unexpected entry %s type %c", h.Name, h.Typeflag)
			}
		}
		if len(want) != 0 {
			t.Errorf("%s: missing entries %v", r.Name, want)
		}
		if !slices.IsSorted(names) {
			t.Errorf("%s: entries not sorted: %v", r.Name, names)
		}
		seen := map[string]bool{".": true}
		for _, n := range names {
			if !seen[filepath.Dir(n)] {
				t.Errorf("%s: %s comes before its directory", r.Name, n)
			}
			seen[n] = true
		}
		// [bundle.json] firstboot [rootfs/ … rootfs/opt/etcd/] etcd
		// [rootfs/opt/kubernetes/ …] kubelet [rootfs/opt/sbin/ … + end]
		wantMembers := 7
		if i%2 == 1 {
			wantMembers = 5 // no etcd
		}
		if got := countMembers(t, r.Path); got != wantMembers {
			t.Errorf("%s: %d gzip members, want %d", r.Name, got, wantMembers)
		}
	}
	sums, err := os.ReadFile(filepath.Join(out, "SHA256SUMS"))
	if err != nil {
		t.Fatal(err)
	}
	wantSums := fmt.Sprintf("%s  %s.tar.gz\n%s  %s.tar.gz\n", res[0].SHA256, res[0].Name, res[1].SHA256, res[1].Name)
	if string(sums) != wantSums {
		t.Errorf("SHA256SUMS = %q, want %q", sums, wantSums)
	}
	if _, err := exec.LookPath("sha256sum"); err == nil {
		cmd := exec.Command("sha256sum", "-c", "--strict", "SHA256SUMS")
		cmd.Dir = out
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("sha256sum -c: %v\n%s", err, b)
		}
	}
}

// TestGNUTar checks that the real gzip and GNU tar accept a bundle.
func TestGNUTar(t *testing.T) {
	for _, tool := range []string{"tar", "gzip"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	dir := t.TempDir()
	bundles, err := fixture(filepath.Join(dir, "src"), 1)
	if err != nil {
		t.Fatal(err)
	}
	res, err := Write(t.Context(), filepath.Join(dir, "out"), bundles, WithMTime(testMTime))
	if err != nil {
		t.Fatal(err)
	}
	bundle := res[0].Path
	run := func(name string, args ...string) string {
		t.Helper()
		cmd := exec.Command(name, args...)
		cmd.Env = append(os.Environ(), "LC_ALL=C")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		b, err := cmd.Output()
		if err != nil || stderr.Len() > 0 {
			t.Fatalf("%s %v: %v\n%s", name, args, err, stderr.Bytes())
		}
		return string(b)
	}
	run("gzip", "-t", bundle)
	list := strings.Fields(run("tar", "tzf", bundle))
	if !slices.Contains(list, longName) || !slices.Contains(list, "rootfs/opt/kubernetes/bin/kubelet") {
		t.Errorf("tar tzf lists %v", list)
	}
	x := filepath.Join(dir, "x")
	if err := os.Mkdir(x, 0o755); err != nil {
		t.Fatal(err)
	}
	run("tar", "xzf", bundle, "-C", x)
	for _, e := range bundles[0].Entries {
		p := filepath.Join(x, filepath.FromSlash(strings.TrimSuffix(e.Name, "/")))
		fi, err := os.Stat(p)
		if err != nil {
			t.Error(err)
			continue
		}
		if fi.IsDir() {
			continue
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if sum(b) != e.SHA256 {
			t.Errorf("%s: extracted content differs", e.Name)
		}
		if !fi.ModTime().Equal(testMTime) {
			t.Errorf("%s: extracted mtime %v", e.Name, fi.ModTime())
		}
	}
}

// TestCacheReuse checks that shared members are compressed once per Write,
// and not at all by a later Write using the same cache, with identical output.
func TestCacheReuse(t *testing.T) {
	dir := t.TempDir()
	bundles, err := fixture(filepath.Join(dir, "src"), 3)
	if err != nil {
		t.Fatal(err)
	}
	cache := filepath.Join(dir, "cache")
	bake := func(out string) (Progress, []Result) {
		var last Progress
		res, err := Write(t.Context(), filepath.Join(dir, out), bundles, WithMTime(testMTime), WithCacheDir(cache),
			WithProgress(func(p Progress) { last = p }))
		if err != nil {
			t.Fatal(err)
		}
		return last, res
	}
	cold, res1 := bake("out1")
	if cold.Members != 3 || cold.Compressed != 3 || cold.Reused != 0 || cold.BundlesDone != 3 || cold.BytesDone != cold.Bytes {
		t.Errorf("cold bake progress %+v, want 3 members compressed", cold)
	}
	warm, res2 := bake("out2")
	if warm.Members != 3 || warm.Compressed != 0 || warm.Reused != 3 || warm.BytesDone != warm.Bytes {
		t.Errorf("warm bake progress %+v, want 3 members reused", warm)
	}
	for i := range res1 {
		if res1[i].SHA256 != res2[i].SHA256 {
			t.Errorf("%s: warm bake differs from cold", res1[i].Name)
		}
	}
	// A damaged cache member is not trusted: it is rebuilt.
	gzs, _ := filepath.Glob(filepath.Join(cache, "*.gz"))
	if len(gzs) != 3 {
		t.Fatalf("cache holds %v", gzs)
	}
	if err := os.Truncate(gzs[0], 100); err != nil {
		t.Fatal(err)
	}
	again, res3 := bake("out3")
	if again.Compressed != 1 || again.Reused != 2 {
		t.Errorf("after truncating a member: progress %+v, want 1 compressed", again)
	}
	for i := range res1 {
		if res1[i].SHA256 != res3[i].SHA256 {
			t.Errorf("%s: bake after cache repair differs", res1[i].Name)
		}
	}
}

// TestConcurrent bakes 20 bundles sharing members with many jobs.
func TestConcurrent(t *testing.T) {
	dir := t.TempDir()
	bundles, err := fixture(filepath.Join(dir, "src"), 20)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var last Progress
	res, err := Write(t.Context(), filepath.Join(dir, "out"), bundles, WithJobs(8), WithMTime(testMTime),
		WithProgress(func(p Progress) { mu.Lock(); last = p; mu.Unlock() }))
	if err != nil {
		t.Fatal(err)
	}
	if last.Compressed != 3 || last.BundlesDone != 20 {
		t.Errorf("progress %+v, want 3 members compressed once each, 20 bundles", last)
	}
	for _, r := range res {
		if got := len(bundletest.Entries(t, r.Path)); got < 10 {
			t.Errorf("%s: %d entries", r.Name, got)
		}
	}
}

// TestDeterminism bakes in this process and in a child with another TZ,
// umask, locale and working directory, and compares bytes.
func TestDeterminism(t *testing.T) {
	dir := t.TempDir()
	bundles, err := fixture(filepath.Join(dir, "parent-src"), 3)
	if err != nil {
		t.Fatal(err)
	}
	parentOut := filepath.Join(dir, "parent-out")
	if _, err := Write(t.Context(), parentOut, bundles, WithMTime(testMTime), WithJobs(1)); err != nil {
		t.Fatal(err)
	}
	childDir := filepath.Join(dir, "child-cwd")
	if err := os.Mkdir(childDir, 0o755); err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe)
	cmd.Dir = childDir
	cmd.Env = append(os.Environ(), childEnv+"=determinism", "TZ=Pacific/Chatham", "LC_ALL=tr_TR.UTF-8", "LANG=tr_TR.UTF-8")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("child bake: %v\n%s", err, b)
	}
	for _, name := range []string{"hdss7-21.tar.gz", "hdss7-22.tar.gz", "hdss7-23.tar.gz", "SHA256SUMS"} {
		a, err := os.ReadFile(filepath.Join(parentOut, name))
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(childDir, "out", name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a, b) {
			t.Errorf("%s differs between the two bakes", name)
		}
		fi, err := os.Stat(filepath.Join(childDir, "out", name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o644 {
			t.Errorf("%s: mode %v under umask 077, want 0644", name, fi.Mode())
		}
	}
}

// assertClean checks that no final bundle and no cache member exist.
func assertNoOutput(t *testing.T, out string, bundle string) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(out, bundle+".tar.gz")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("final bundle %s exists after a failed bake (%v)", bundle, err)
	}
	if _, err := os.Stat(filepath.Join(out, "SHA256SUMS")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("SHA256SUMS exists after a failed bake (%v)", err)
	}
}

func tempFiles(t *testing.T, dirs ...string) []string {
	t.Helper()
	var tmps []string
	for _, d := range dirs {
		des, _ := os.ReadDir(d)
		for _, de := range des {
			if strings.Contains(de.Name(), "tmp-") {
				tmps = append(tmps, de.Name())
			}
		}
	}
	return tmps
}

func TestChecksumMismatch(t *testing.T) {
	for _, big := range []bool{false, true} {
		t.Run(fmt.Sprintf("member=%v", big), func(t *testing.T) {
			dir := t.TempDir()
			bundles, err := fixture(filepath.Join(dir, "src"), 1)
			if err != nil {
				t.Fatal(err)
			}
			b := content(5, 1000)
			if big {
				b = content(5, 100<<10)
			}
			p := filepath.Join(dir, "bad")
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
			bad := Entry{Name: "rootfs/opt/bad", SHA256: sum([]byte("other")), Size: int64(len(b)), Path: p}
			bundles[0].Entries = append(bundles[0].Entries, bad)
			out := filepath.Join(dir, "out")
			_, err = Write(t.Context(), out, bundles)
			if !errors.Is(err, ErrChecksum) || !strings.Contains(err.Error(), "rootfs/opt/bad") || !strings.Contains(err.Error(), "hdss7-21") {
				t.Fatalf("err = %v, want ErrChecksum naming the bundle and entry", err)
			}
			assertNoOutput(t, out, "hdss7-21")
			if tmps := tempFiles(t, out, filepath.Join(out, ".cache")); len(tmps) != 0 {
				t.Errorf("temporary files left: %v", tmps)
			}
			gzs, _ := filepath.Glob(filepath.Join(out, ".cache", "*.gz"))
			for _, g := range gzs {
				if strings.Contains(filepath.Base(g), "tmp") {
					t.Errorf("torn member %s", g)
				}
			}
		})
	}
}

// TestSourceFailsMidStream feeds an entry from a FIFO that ends early: the
// bake fails, leaves no bundle and no cache member, and a rerun completes.
func TestSourceFailsMidStream(t *testing.T) {
	dir := t.TempDir()
	bundles, err := fixture(filepath.Join(dir, "src"), 2)
	if err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	e := fifoEntry(fifo)
	bundles[1].Entries = append(bundles[1].Entries, e)
	go func() {
		f, err := os.OpenFile(fifo, os.O_WRONLY, 0)
		if err != nil {
			return
		}
		f.Write(content(7, fifoSize)[:fifoSize/2])
		f.Close()
	}()
	out := filepath.Join(dir, "out")
	cache := filepath.Join(out, ".cache")
	var last Progress
	_, err = Write(t.Context(), out, bundles, WithJobs(1), WithProgress(func(p Progress) { last = p }))
	if !errors.Is(err, ErrSize) || !strings.Contains(err.Error(), e.Name) {
		t.Fatalf("err = %v, want ErrSize naming %s", err, e.Name)
	}
	assertNoOutput(t, out, "hdss7-22")
	if tmps := tempFiles(t, out, cache); len(tmps) != 0 {
		t.Errorf("temporary files left: %v", tmps)
	}
	gzs, _ := filepath.Glob(filepath.Join(cache, "*.gz"))
	if len(gzs) != last.Compressed {
		t.Errorf("cache holds %d members, %d were completed", len(gzs), last.Compressed)
	}

	// Rerun with the content in a regular file.
	if err := os.Remove(fifo); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(fifo, content(7, fifoSize), 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := Write(t.Context(), out, bundles)
	if err != nil {
		t.Fatal(err)
	}
	files := bundletest.Entries(t, res[1].Path)
	if !slices.ContainsFunc(files, func(f bundletest.Entry) bool { return f.Header.Name == e.Name && sum(f.Data) == e.SHA256 }) {
		t.Errorf("rerun bundle lacks %s", e.Name)
	}
}

// TestKilled kills a child bake while it streams an entry from a FIFO: no
// final file may exist; a rerun removes the temporaries and completes.
func TestKilled(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	// O_RDWR does not block on Linux, and keeps the FIFO open for the child.
	w, err := os.OpenFile(fifo, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), childEnv+"=kill", "BAKE_TEST_DIR="+dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	wrote := make(chan error, 1)
	go func() {
		// The pipe holds 64 KiB, so once this returns the child has read
		// most of it and is in the middle of the entry.
		_, err := w.Write(content(7, fifoSize)[:fifoSize/2])
		wrote <- err
	}()
	select {
	case err := <-wrote:
		if err != nil {
			t.Fatal(err)
		}
	case err := <-exited:
		t.Fatalf("child bake ended early: %v\n%s", err, stderr.Bytes())
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-exited

	out := filepath.Join(dir, "out")
	cache := filepath.Join(out, ".cache")
	for _, b := range []string{"hdss7-21", "hdss7-22"} {
		if _, err := os.Stat(filepath.Join(out, b+".tar.gz")); err == nil {
			// hdss7-21 does not need the FIFO and may be complete; it must then be whole.
			if b == "hdss7-22" {
				t.Errorf("%s.tar.gz exists after the kill", b)
			} else {
				bundletest.Entries(t, filepath.Join(out, b+".tar.gz"))
			}
		}
	}
	if _, err := os.Stat(filepath.Join(out, "SHA256SUMS")); err == nil {
		t.Error("SHA256SUMS exists after the kill")
	}
	tmps := tempFiles(t, out, cache)
	if len(tmps) == 0 {
		t.Error("the killed bake left no temporary files; the test did not kill it mid-write")
	}
	gzs, _ := filepath.Glob(filepath.Join(cache, "*.gz"))
	for _, g := range gzs {
		if !cached(g, 1) && !strings.HasPrefix(filepath.Base(g), ".") {
			// Each member must be a complete gzip file.
			f, _ := os.Open(g)
			zr, err := gzip.NewReader(f)
			if err == nil {
				_, err = io.Copy(io.Discard, zr)
			}
			f.Close()
			if err != nil {
				t.Errorf("torn cache member %s: %v", g, err)
			}
		}
	}

	// Rerun with the content in a regular file.
	w.Close()
	if err := os.Remove(fifo); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(fifo, content(7, fifoSize), 0o644); err != nil {
		t.Fatal(err)
	}
	bundles, err := fixture(filepath.Join(dir, "src"), 2)
	if err != nil {
		t.Fatal(err)
	}
	bundles[1].Entries = append(bundles[1].Entries, fifoEntry(fifo))
	if _, err := Write(t.Context(), out, bundles, WithMTime(testMTime)); err != nil {
		t.Fatal(err)
	}
	if tmps := tempFiles(t, out, cache); len(tmps) != 0 {
		t.Errorf("stale temporaries not removed: %v", tmps)
	}
	bundletest.Entries(t, filepath.Join(out, "hdss7-22.tar.gz"))
}

func TestInvalid(t *testing.T) {
	ok := dataEntry("a", 0, []byte("x"))
	tests := []struct {
		name    string
		bundles []Bundle
		opts    []Option
		want    error
	}{
		{"jobs zero", []Bundle{{Name: "h", Entries: []Entry{ok}}}, []Option{WithJobs(0)}, ErrInvalidOption},
		{"level", []Bundle{{Name: "h"}}, []Option{WithLevel(10)}, ErrInvalidOption},
		{"mtime before epoch", []Bundle{{Name: "h"}}, []Option{WithMTime(time.Unix(-1, 0))}, ErrInvalidOption},
		{"nil progress", []Bundle{{Name: "h"}}, []Option{WithProgress(nil)}, ErrInvalidOption},
		{"nil logger", []Bundle{{Name: "h"}}, []Option{WithLogger(nil)}, ErrInvalidOption},
		{"empty cache dir", []Bundle{{Name: "h"}}, []Option{WithCacheDir("")}, ErrInvalidOption},
		{"bundle name with slash", []Bundle{{Name: "a/b"}}, nil, ErrInvalidBundle},
		{"hidden bundle name", []Bundle{{Name: ".h"}}, nil, ErrInvalidBundle},
		{"duplicate bundle", []Bundle{{Name: "h"}, {Name: "h"}}, nil, ErrInvalidBundle},
		{"absolute entry", []Bundle{{Name: "h", Entries: []Entry{dataEntry("/etc/x", 0, nil)}}}, nil, ErrInvalidBundle},
		{"dotdot entry", []Bundle{{Name: "h", Entries: []Entry{dataEntry("a/../../x", 0, nil)}}}, nil, ErrInvalidBundle},
		{"unclean entry", []Bundle{{Name: "h", Entries: []Entry{dataEntry("a//x", 0, nil)}}}, nil, ErrInvalidBundle},
		{"duplicate entry", []Bundle{{Name: "h", Entries: []Entry{ok, ok}}}, nil, ErrInvalidBundle},
		{"file as directory", []Bundle{{Name: "h", Entries: []Entry{ok, dataEntry("a/b", 0, nil)}}}, nil, ErrInvalidBundle},
		{"mode type bits", []Bundle{{Name: "h", Entries: []Entry{dataEntry("x", 0o100644, nil)}}}, nil, ErrInvalidBundle},
		{"bad sha", []Bundle{{Name: "h", Entries: []Entry{{Name: "x", SHA256: "abc"}}}}, nil, ErrInvalidBundle},
		{"data size", []Bundle{{Name: "h", Entries: []Entry{{Name: "x", SHA256: sum(nil), Size: 3, Data: []byte("ab")}}}}, nil, ErrSize},
		{"data and path", []Bundle{{Name: "h", Entries: []Entry{{Name: "x", SHA256: sum(nil), Data: []byte{}, Path: "/x"}}}}, nil, ErrInvalidBundle},
		{"directory with content", []Bundle{{Name: "h", Entries: []Entry{{Name: "d/", Size: 1}}}}, nil, ErrInvalidBundle},
		{"data checksum", []Bundle{{Name: "h", Entries: []Entry{{Name: "x", SHA256: sum([]byte("y")), Size: 1, Data: []byte("x")}}}}, nil, ErrChecksum},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out")
			_, err := Write(t.Context(), out, tt.bundles, tt.opts...)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestBusy(t *testing.T) {
	out := t.TempDir()
	unlock, err := lockFile(filepath.Join(out, ".bake.lock"))
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	if _, err := Write(t.Context(), out, nil); !errors.Is(err, ErrBusy) {
		t.Fatalf("err = %v, want ErrBusy", err)
	}
}

func BenchmarkWrite(b *testing.B) {
	dir := b.TempDir()
	bundles, err := fixture(filepath.Join(dir, "src"), 10)
	if err != nil {
		b.Fatal(err)
	}
	cache := filepath.Join(dir, "cache")
	for _, warm := range []bool{false, true} {
		b.Run(fmt.Sprintf("warm=%v", warm), func(b *testing.B) {
			for b.Loop() {
				if !warm {
					os.RemoveAll(cache)
				}
				if _, err := Write(b.Context(), filepath.Join(dir, "out"), bundles, WithCacheDir(cache)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
