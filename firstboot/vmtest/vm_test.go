// Package vmtest boots a real kernel and a real systemd (QEMU, TCG) with a
// bundle baked by kubebake on a second disk and checks what firstboot did to
// the guest: modules, sysctls, routes, iptables, units, the done marker, and
// that a second boot is a no-op.
//
// The guest comes from scripts/testbed/guest.sh (cached outside the repo);
// the guest-side protocol (bundle disk, report disk, markers) is described
// at the top of that script.
//
// It runs only as root and when KUBEBAKE_VMTEST=1 or CI is set. Under CI a
// missing tool fails the test with the install hint, never skips it.
package vmtest

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/kubebake/kubebake/builder/build"
	"github.com/kubebake/kubebake/builder/spec"
	"github.com/kubebake/kubebake/firstboot/plan"
	"github.com/kubebake/kubebake/internal/bundletest"
	"github.com/kubebake/kubebake/internal/qemutest"
	"github.com/kubebake/kubebake/internal/standin"
)

const (
	repoRoot = "../.."
	// The bundle host: its IP is configured on the guest's NIC by guest.sh.
	hostName = "hdss7-21"
	hostIP   = "10.4.7.21"
	// The small real service that stands in for the Kubernetes units, and
	// its health endpoint (busybox httpd).
	webUnit = "kubebake-vmtest-web.service"
	webDir  = "/srv/kubebake-vmtest"
	webURL  = "http://127.0.0.1:18080/healthz"
	// The unit that re-applies routes and iptables rules at every boot.
	networkUnit = "kubebake-network.service"
	// The image firstboot imports into the guest's containerd.
	imageRef    = "harbor.od.com/public/kubebake-vmtest:v1"
	installHint = "apt-get install -y --no-install-recommends qemu-system-x86 linux-image-amd64 busybox-static cpio mmdebstrap e2fsprogs kmod xz-utils"
	// defaultBootTimeout is about 3× the slowest boot-to-report measured:
	// 20–60 s on 2 idle cores, 105 s with other tests compiling beside it.
	// KUBEBAKE_VMTEST_BOOT_TIMEOUT (a Go duration) overrides it.
	defaultBootTimeout = 300 * time.Second
)

func gate(t *testing.T) {
	t.Helper()
	qemutest.Gate(t, qemutest.Requirements{
		What:    "QEMU firstboot test",
		Tools:   []string{"qemu-system-x86_64", "mmdebstrap", "mkfs.ext4", "modprobe", "depmod", "cpio", "xz", "tar", "go"},
		Files:   map[string]string{"/bin/busybox": "busybox-static"},
		Kernel:  true,
		Hint:    installHint,
		RootWhy: "mmdebstrap, mkfs.ext4 -d and modprobe -S need root",
	})
}

func TestFirstbootInVM(t *testing.T) {
	gate(t)
	guest := buildGuest(t)
	work := t.TempDir()
	// After TempDir: cleanups run last-in first-out, so the logs are copied
	// before the temporary directory goes.
	arts := qemutest.NewKeeper(t, "kubebake-vmtest")
	fbPath, fb := buildFirstboot(t, work)
	bundleDir, m := bakeBundle(t, work, fb)
	bundleImg := bundleDisk(t, work, bundleDir, m)

	timeout := qemutest.BootTimeout(t, defaultBootTimeout)

	t.Run("converge-then-noop", func(t *testing.T) {
		root := rootCopy(t, guest, work, "root-a.img")
		r1 := boot(t, guest, arts, bootOpts{name: "a1", root: root, bundle: bundleImg, timeout: timeout})
		checkConverged(t, r1, m, "boot 1")
		firstboot := firstbootDuration(t, r1)
		t.Logf("boot 1: report %.1fs after QEMU start; firstboot start→done %.1fs", r1.elapsed.Seconds(), firstboot.Seconds())
		st1 := state(t, r1)

		r2 := boot(t, guest, arts, bootOpts{name: "a2", root: root, bundle: bundleImg, timeout: timeout})
		t.Logf("boot 2: report %.1fs after QEMU start", r2.elapsed.Seconds())
		checkNoop(t, r2, st1)
		checkPersisted(t, r2, m, "boot 2")
		// The kernel forgot the route and the SNAT rule, iptables.service
		// restored the REJECT rules: kubebake-network.service put it right.
		j := r2.section("journal-network")
		for _, kind := range []string{"route", "iptables"} {
			if !regexp.MustCompile(`\] ` + kind + `/[^\n]*: finished \(changed`).MatchString(j) {
				t.Errorf("boot 2: kubebake-network.service changed no %s step; the test no longer shows a reboot losing them:\n%s", kind, j)
			}
		}
	})

	t.Run("stopped-then-converges", func(t *testing.T) {
		// Stop the first run right after a step in the middle of the plan
		// (KUBEBAKE_FIRSTBOOT_STOP_AFTER): files installed, two IPVS
		// modules loaded, modules-load.d not written yet. The unit fails,
		// nothing is done; the reboot unloads the modules; the next boot
		// runs again, finds the files converged and finishes.
		const stopStep = "module/ip_vs_rr"
		stopAfter, total := stepIndex(t, fbPath, bundleDir, work, stopStep)
		root := rootCopy(t, guest, work, "root-b.img")
		r1 := boot(t, guest, arts, bootOpts{name: "b1", root: root, bundle: bundleImg, timeout: timeout, stopAfter: stopAfter})
		unit := r1.props("firstboot-unit")
		if unit["ExecMainStatus"] != "99" {
			t.Errorf("stopped boot: firstboot ExecMainStatus = %q, want 99 (stopped by KUBEBAKE_FIRSTBOOT_STOP_AFTER=%d)\n%s", unit["ExecMainStatus"], stopAfter, r1.section("journal-firstboot"))
		}
		if strings.Contains(r1.section("done-marker"), "# rc=0") {
			t.Errorf("stopped boot: done marker written:\n%s", r1.section("done-marker"))
		}
		st := state(t, r1)
		if st.Done || len(st.Steps) != stopAfter || st.Steps[len(st.Steps)-1].ID != stopStep {
			t.Errorf("stopped boot: state done=%v with %d steps, want not done with %d ending in %s:\n%s", st.Done, len(st.Steps), stopAfter, stopStep, r1.section("firstboot-status"))
		}
		r2 := boot(t, guest, arts, bootOpts{name: "b2", root: root, bundle: bundleImg, timeout: timeout})
		t.Logf("stopped boot (after step %d of %d) %.1fs, converging boot %.1fs", stopAfter, total, r1.elapsed.Seconds(), r2.elapsed.Seconds())
		checkConverged(t, r2, m, "boot after the stop")
		st2 := state(t, r2)
		if len(st2.Steps) != total {
			t.Errorf("boot after the stop: state has %d steps, want %d", len(st2.Steps), total)
		}
		for _, s := range st2.Steps {
			if strings.HasPrefix(s.ID, "file/") && s.Result != "converged" {
				t.Errorf("boot after the stop: %s %s, want converged (installed by the stopped run)", s.ID, s.Result)
			}
		}
	})
}

// stepIndex asks the firstboot binary (firstboot status, on an empty root)
// for the plan's steps and returns the 1-based index of step id and the
// number of steps.
func stepIndex(t *testing.T, fb, bundleDir, work, id string) (int, int) {
	t.Helper()
	empty := filepath.Join(work, "empty-root")
	if err := os.MkdirAll(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(fb, "status", "--bundle", bundleDir, "--root", empty).CombinedOutput()
	if err != nil {
		t.Fatalf("firstboot status: %v\n%s", err, out)
	}
	for _, l := range strings.Split(string(out), "\n") {
		// "[80/104] module/ip_vs: pending"
		var k, n int
		var rest string
		if _, err := fmt.Sscanf(l, "[%d/%d] %s", &k, &n, &rest); err == nil && strings.TrimSuffix(rest, ":") == id {
			return k, n
		}
	}
	t.Fatalf("firstboot status lists no step %s:\n%s", id, out)
	return 0, 0
}

// buildGuest runs scripts/testbed/guest.sh (cached) and returns its dir.
func buildGuest(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	start := time.Now()
	cmd := exec.CommandContext(ctx, "bash", filepath.Join(repoRoot, "scripts/testbed/guest.sh"))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("scripts/testbed/guest.sh: %v\n%s", err, stderr.String())
	}
	var dir string
	for _, l := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(l, "KUBEBAKE_TESTBED_DIR="); ok {
			dir = v
		}
	}
	if dir == "" {
		t.Fatalf("guest.sh printed no KUBEBAKE_TESTBED_DIR:\n%s\n%s", out, stderr.String())
	}
	t.Logf("guest %s ready in %.1fs", dir, time.Since(start).Seconds())
	return dir
}

// buildFirstboot builds the static node-side binary the bundle ships.
func buildFirstboot(t *testing.T, work string) (string, []byte) {
	t.Helper()
	out := filepath.Join(work, "firstboot")
	cmd := exec.Command("go", "build", "-trimpath", "-o", out, "./firstboot")
	cmd.Dir = repoRoot
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build firstboot: %v\n%s", err, b)
	}
	f, err := elf.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Fatal("firstboot is dynamically linked (has PT_INTERP); the bundle needs a static binary")
		}
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("firstboot: static, %d bytes", len(b))
	return out, b
}

// bakeBundle bakes the seed spec with stand-in artifacts, as
// builder/build's tests do, unpacks hdss7-21's bundle and rewrites its plan
// for a guest without Kubernetes: the same modules (conntrack named for
// kernel 6.1), sysctls, routes and iptables ops; one small real unit
// instead of the Kubernetes units; one health check against it; one real
// image for Debian's containerd; no add-ons.
func bakeBundle(t *testing.T, work string, fb []byte) (string, *plan.Manifest) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot, "bundle-spec.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	specPath := filepath.Join(work, "bundle-spec.yaml")
	if err := os.WriteFile(specPath, data, 0o644); err != nil {
		t.Fatal(err)
	}
	s, rep, err := spec.Load(specPath)
	if err != nil {
		t.Fatal(err)
	}
	if rep.IsFatal() {
		t.Fatalf("seed spec invalid:\n%s", rep)
	}
	arts := filepath.Join(work, "artifacts")
	if err := standin.Generate(s, arts, 0); err != nil {
		t.Fatal(err)
	}
	state, out := filepath.Join(work, "state"), filepath.Join(work, "out")
	if _, err := build.Bake(context.Background(), s, build.WithArtifactsDir(arts), build.WithStateDir(state),
		build.WithStoreDir(filepath.Join(state, "store")), build.WithOutDir(out), build.WithFirstboot(fb)); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(work, "bundle")
	bundletest.Untar(t, filepath.Join(out, hostName+".tar.gz"), dir)

	mf, err := os.Open(filepath.Join(dir, plan.ManifestName))
	if err != nil {
		t.Fatal(err)
	}
	m, err := plan.Decode(mf)
	mf.Close()
	if err != nil {
		t.Fatal(err)
	}
	if m.Host.IP != hostIP {
		t.Fatalf("bundle %s is for %s, the guest has %s", hostName, m.Host.IP, hostIP)
	}

	p := &m.Plan
	for i, mod := range p.Modules {
		if mod == "nf_conntrack_ipv4" { // merged into nf_conntrack in 4.19; the guest runs 6.1
			p.Modules[i] = "nf_conntrack"
		}
	}
	// A peer node's pod subnet via its IP on the guest's own /24.
	if !hasRoute(p.Routes, "172.7.22.0/24", "10.4.7.22") {
		p.Routes = append(p.Routes, plan.Route{Dst: "172.7.22.0/24", Via: "10.4.7.22"})
	}
	if len(p.Modules) == 0 || len(p.Sysctls) == 0 || len(p.IPTables) == 0 {
		t.Fatalf("baked plan for %s lacks modules, sysctls or iptables ops: %+v", hostName, p)
	}
	// containerd: Debian's, in the guest (guest.sh). The bundle's
	// stand-in containerd binaries, config and unit cannot run; drop them so
	// Debian's containerd.service is the one started. One real image, in
	// the bundle's images/ layout as the builder writes it, for firstboot to
	// import.
	kept := m.Files[:0]
	for _, f := range m.Files {
		if strings.HasPrefix(f.Path, "/opt/containerd/") || strings.HasPrefix(f.Path, "/etc/containerd/") ||
			f.Path == "/etc/systemd/system/containerd.service" {
			if err := os.Remove(filepath.Join(dir, filepath.FromSlash(f.Source))); err != nil {
				t.Fatal(err)
			}
			continue
		}
		kept = append(kept, f)
	}
	m.Files = kept
	m.Images = []plan.Image{imageLayout(t, filepath.Join(dir, plan.ImagesDir))}
	p.Units = []plan.Unit{{Name: "containerd.service", Start: true}, {Name: networkUnit, Start: true}, {Name: webUnit, Start: true}}
	p.Health = []plan.HealthCheck{{Name: "vmtest-web", URL: webURL, Attempts: 30, Interval: "1s", Expect: "ok"}}
	// No apiserver runs in the guest to apply the first master's add-ons to
	// (builder/addonstest applies them to a real one).
	p.Addons = nil

	unit := "[Unit]\nDescription=kubebake vmtest: a small real service standing in for the Kubernetes units\n\n" +
		"[Service]\nExecStart=/bin/busybox httpd -f -p 127.0.0.1:18080 -h " + webDir + "\nRestart=always\n\n" +
		"[Install]\nWantedBy=multi-user.target\n"
	addFile(t, dir, m, "/etc/systemd/system/"+webUnit, []byte(unit))
	addFile(t, dir, m, webDir+"/healthz", []byte("ok\n"))
	sort.Slice(m.Files, func(i, j int) bool { return m.Files[i].Path < m.Files[j].Path })
	if err := m.Validate(); err != nil {
		t.Fatalf("rewritten manifest: %v", err)
	}
	mj, err := plan.Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, plan.ManifestName), mj, 0o644); err != nil {
		t.Fatal(err)
	}
	writeSums(t, dir)
	return dir, m
}

func hasRoute(rs []plan.Route, dst, via string) bool {
	for _, r := range rs {
		if r.Dst == dst && r.Via == via {
			return true
		}
	}
	return false
}

func addFile(t *testing.T, dir string, m *plan.Manifest, dest string, b []byte) {
	t.Helper()
	src := plan.SourceFor(dest)
	p := filepath.Join(dir, filepath.FromSlash(src))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	m.Files = append(m.Files, plan.File{Path: dest, Source: src, Mode: "0644", Owner: "root:root",
		Size: int64(len(b)), SHA256: hex.EncodeToString(sum[:]), Role: plan.RoleCommon})
}

// writeSums rewrites SHA256SUMS over every other regular file of dir.
func writeSums(t *testing.T, dir string) {
	t.Helper()
	var lines []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		if rel == plan.SumsName {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		lines = append(lines, hex.EncodeToString(sum[:])+"  "+rel)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Slice(lines, func(i, j int) bool { return lines[i][66:] < lines[j][66:] })
	if err := os.WriteFile(filepath.Join(dir, plan.SumsName), []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// bundleDisk packs the bundle as kickstart would receive it (bundle.tar.gz),
// with a testbed-pre.sh that gives the guest the REJECT rules a CentOS 7
// host starts with, saved where iptables.service restores them at every
// boot, on an ext4 disk labelled KBBUNDLE.
func bundleDisk(t *testing.T, work, bundleDir string, m *plan.Manifest) string {
	t.Helper()
	disk := filepath.Join(work, "bundledisk")
	if err := os.MkdirAll(disk, 0o755); err != nil {
		t.Fatal(err)
	}
	if b, err := exec.Command("tar", "-C", bundleDir, "-czf", filepath.Join(disk, "bundle.tar.gz"), ".").CombinedOutput(); err != nil {
		t.Fatalf("tar: %v\n%s", err, b)
	}
	// The rules a CentOS 7 install saves in /etc/sysconfig/iptables, which
	// the guest's iptables.service restores at every boot.
	tables := map[string][]string{}
	var order []string
	for _, op := range m.Plan.IPTables {
		if op.Delete {
			if _, ok := tables[op.Table]; !ok {
				order = append(order, op.Table)
			}
			tables[op.Table] = append(tables[op.Table], "-A "+op.Chain+" "+strings.Join(op.Rule, " "))
		}
	}
	var saved strings.Builder
	for _, tb := range order {
		fmt.Fprintf(&saved, "*%s\n", tb)
		for _, r := range tables[tb] {
			fmt.Fprintln(&saved, r)
		}
		fmt.Fprintln(&saved, "COMMIT")
	}
	var pre strings.Builder
	fmt.Fprintf(&pre, "mkdir -p /etc/sysconfig\ncat >/etc/sysconfig/iptables <<'EOF'\n%sEOF\niptables-restore /etc/sysconfig/iptables\n", saved.String())
	if err := os.WriteFile(filepath.Join(disk, "testbed-pre.sh"), []byte(pre.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(disk, "bundle.tar.gz"))
	if err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(work, "bundle.img")
	size := fi.Size()/(1<<20) + 16
	if b, err := exec.Command("mkfs.ext4", "-q", "-F", "-L", "KBBUNDLE", "-d", disk, img, fmt.Sprintf("%dM", size)).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4 bundle: %v\n%s", err, b)
	}
	return img
}

// rootCopy is a sparse, writable copy of the cached base image, so two
// boots share state while the cache stays clean.
func rootCopy(t *testing.T, guest, work, name string) string {
	t.Helper()
	dst := filepath.Join(work, name)
	if b, err := exec.Command("cp", "--sparse=always", filepath.Join(guest, "base.img"), dst).CombinedOutput(); err != nil {
		t.Fatalf("copy base.img: %v\n%s", err, b)
	}
	return dst
}

type bootOpts struct {
	name         string
	root, bundle string
	timeout      time.Duration
	stopAfter    int
}

type report struct {
	raw      string
	sections map[string]string
	elapsed  time.Duration
}

func (r *report) section(name string) string { return r.sections[name] }

// props parses "Key=Value" lines of a section.
func (r *report) props(name string) map[string]string {
	m := map[string]string{}
	for _, l := range strings.Split(r.section(name), "\n") {
		if k, v, ok := strings.Cut(l, "="); ok {
			m[k] = v
		}
	}
	return m
}

// boot starts QEMU on root (written in place), waits for the guest's report
// on the KBREPORT disk and kills QEMU.
func boot(t *testing.T, guest string, arts *qemutest.Keeper, o bootOpts) *report {
	t.Helper()
	dir := filepath.Join(filepath.Dir(o.root), "boot-"+o.name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	serial, reportImg := filepath.Join(dir, "serial.log"), filepath.Join(dir, "report.img")
	arts.Add("boot-"+o.name+"-serial.log", serial)
	arts.Add("boot-"+o.name+"-report.img", reportImg)
	if err := os.WriteFile(reportImg, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(reportImg, 8<<20); err != nil {
		t.Fatal(err)
	}
	cmdline, err := os.ReadFile(filepath.Join(guest, "cmdline"))
	if err != nil {
		t.Fatal(err)
	}
	append_ := strings.TrimSpace(string(cmdline))
	if extra := os.Getenv("KUBEBAKE_VMTEST_APPEND"); extra != "" { // e.g. systemd.journald.forward_to_console=1 when debugging
		append_ += " " + extra
	}
	if o.stopAfter > 0 {
		append_ += " kubebake.stop_after=" + strconv.Itoa(o.stopAfter)
	}
	args := []string{
		"-accel", "tcg,tb-size=256", "-m", "1024", "-smp", "2",
		"-display", "none", "-monitor", "none", "-no-reboot",
		"-serial", "file:" + serial,
		"-kernel", filepath.Join(guest, "vmlinux"), "-initrd", filepath.Join(guest, "initramfs.cpio.gz"),
		"-append", append_,
		"-drive", "file=" + o.root + ",format=raw,if=none,id=root", "-device", "virtio-blk-pci,drive=root,serial=KBROOT",
		"-drive", "file=" + o.bundle + ",format=raw,if=none,id=bundle,readonly=on", "-device", "virtio-blk-pci,drive=bundle,serial=KBBUNDLE",
		"-drive", "file=" + reportImg + ",format=raw,if=none,id=report", "-device", "virtio-blk-pci,drive=report,serial=KBREPORT",
		"-netdev", "user,id=n0,restrict=on,net=10.4.7.0/24", "-device", "virtio-net-pci,netdev=n0",
	}
	cmd := exec.Command("qemu-system-x86_64", args...)
	var qout bytes.Buffer
	cmd.Stdout, cmd.Stderr = &qout, &qout
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatalf("qemu: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	var once sync.Once
	kill := func() {
		once.Do(func() {
			_ = cmd.Process.Kill() // by PID; -snapshot is not used, the guest synced its writes
			select {
			case <-exited:
			case <-time.After(10 * time.Second):
				t.Logf("qemu pid %d did not exit 10s after SIGKILL", cmd.Process.Pid)
			}
		})
	}
	t.Cleanup(kill)

	deadline := time.After(o.timeout)
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("%s: qemu exited before the report (%v) after %.0fs:\n%s\nserial log tail:\n%s", o.name, err, time.Since(start).Seconds(), qout.String(), serialTail(serial, 40))
		case <-deadline:
			t.Fatalf("%s: no report after %s (KUBEBAKE_VMTEST_BOOT_TIMEOUT); serial log tail:\n%s", o.name, o.timeout, serialTail(serial, 60))
		case <-tick.C:
		}
		b, err := os.ReadFile(reportImg)
		if err != nil {
			t.Fatal(err)
		}
		if body, ok := reportBody(b); ok {
			elapsed := time.Since(start)
			kill()
			r := parseReport(body)
			r.elapsed = elapsed
			if err := os.WriteFile(filepath.Join(dir, "report.txt"), []byte(r.raw), 0o644); err == nil {
				arts.Add("boot-"+o.name+"-report.txt", filepath.Join(dir, "report.txt"))
			}
			return r
		}
	}
}

// reportTrailer is where the guest writes "KBREPORT-DONE <len> <sha256>"
// after the report body at offset 0 is synced.
const reportTrailer = 7 << 20

// reportBody returns the report once the guest's trailer is there and the
// body's sha256 matches it; a write still under way is not a report yet.
func reportBody(disk []byte) (string, bool) {
	if len(disk) <= reportTrailer {
		return "", false
	}
	tr := disk[reportTrailer:]
	nl := bytes.IndexByte(tr, '\n')
	if nl < 0 {
		return "", false
	}
	var n int
	var sum string
	if _, err := fmt.Sscanf(string(tr[:nl]), "KBREPORT-DONE %d %s", &n, &sum); err != nil || n <= 0 || n > reportTrailer {
		return "", false
	}
	got := sha256.Sum256(disk[:n])
	if hex.EncodeToString(got[:]) != sum {
		return "", false
	}
	return string(disk[:n]), true
}

func parseReport(s string) *report {
	r := &report{raw: s, sections: map[string]string{}}
	var name string
	var buf strings.Builder
	flush := func() {
		if name != "" {
			r.sections[name] = buf.String()
		}
		buf.Reset()
	}
	sc := bufio.NewScanner(strings.NewReader(s))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if n, ok := strings.CutPrefix(l, "### "); ok {
			flush()
			name = n
			continue
		}
		if strings.HasPrefix(l, "KBREPORT-END ") {
			break
		}
		buf.WriteString(l + "\n")
	}
	flush()
	return r
}

// fbState is the part of firstboot's state file the test reads.
type fbState struct {
	BundleDigest string    `json:"bundleDigest"`
	Started      time.Time `json:"started"`
	Done         bool      `json:"done"`
	Steps        []struct {
		ID     string `json:"id"`
		Result string `json:"result"`
	} `json:"steps"`
}

func state(t *testing.T, r *report) fbState {
	t.Helper()
	s := r.section("state")
	if i := strings.LastIndex(s, "# rc="); i >= 0 {
		s = s[:i]
	}
	var st fbState
	if err := json.Unmarshal([]byte(s), &st); err != nil {
		t.Fatalf("state file: %v\n%s", err, r.section("state"))
	}
	return st
}

// checkConverged asserts what a finished firstboot leaves on the guest.
func checkConverged(t *testing.T, r *report, m *plan.Manifest, what string) {
	t.Helper()
	unit := r.props("firstboot-unit")
	if unit["Result"] != "success" || unit["ExecMainStatus"] != "0" {
		t.Errorf("%s: kubebake-firstboot.service Result=%s ExecMainStatus=%s, want success/0\n%s", what, unit["Result"], unit["ExecMainStatus"], r.section("journal-firstboot"))
	}
	if !strings.Contains(r.section("done-marker"), "# rc=0") {
		t.Errorf("%s: done marker missing:\n%s", what, r.section("done-marker"))
	}
	if st := state(t, r); !st.Done {
		t.Errorf("%s: state file not done:\n%s", what, r.section("state"))
	}
	checkModulesSysctls(t, r, m, what)
	checkNetwork(t, r, m, what)
	checkImage(t, r, m, what)
	checkUnitUp(t, r, what)
}

// checkNetwork asserts the plan's routes and iptables rules are in the
// kernel and kubebake-network.service ran without error.
func checkNetwork(t *testing.T, r *report, m *plan.Manifest, what string) {
	t.Helper()
	routes := r.section("routes")
	for _, rt := range m.Plan.Routes {
		if !strings.Contains(routes, rt.Dst+" via "+rt.Via+" ") {
			t.Errorf("%s: route %s via %s missing:\n%s", what, rt.Dst, rt.Via, routes)
		}
	}
	rules := iptablesRules(r.section("iptables-save"))
	for _, op := range m.Plan.IPTables {
		key := op.Table + " -A " + op.Chain + " " + strings.Join(op.Rule, " ")
		if rules[key] == op.Delete {
			state := "missing"
			if op.Delete {
				state = "still present"
			}
			t.Errorf("%s: iptables rule %s (%s):\n%s", what, state, key, r.section("iptables-save"))
		}
	}
	unit := r.props("network-unit")
	if unit["UnitFileState"] != "enabled" || unit["ActiveState"] != "active" || unit["Result"] != "success" || unit["ExecMainStatus"] != "0" {
		t.Errorf("%s: %s %v, want enabled, active, success, status 0\n%s", what, networkUnit, unit, r.section("journal-network"))
	}
}

// checkImage asserts containerd's k8s.io namespace holds the bundle's
// image with its digest.
func checkImage(t *testing.T, r *report, m *plan.Manifest, what string) {
	t.Helper()
	for _, im := range m.Images {
		found := false
		for _, l := range strings.Split(r.section("ctr-images"), "\n") {
			f := strings.Fields(l)
			if len(f) >= 3 && f[0] == im.Ref && f[2] == im.Digest {
				found = true
			}
		}
		if !found {
			t.Errorf("%s: ctr -n k8s.io images ls lacks %s@%s:\n%s", what, im.Ref, im.Digest, r.section("ctr-images"))
		}
	}
}

// checkPersisted asserts what must survive a reboot without firstboot
// running: modules from /etc/modules-load.d, sysctls from /etc/sysctl.d,
// routes and iptables rules re-applied by kubebake-network.service after
// iptables.service restored CentOS's REJECT rules, the image in
// containerd's store and the enabled units.
func checkPersisted(t *testing.T, r *report, m *plan.Manifest, what string) {
	t.Helper()
	checkModulesSysctls(t, r, m, what)
	checkNetwork(t, r, m, what)
	checkImage(t, r, m, what)
	checkUnitUp(t, r, what)
}

func checkModulesSysctls(t *testing.T, r *report, m *plan.Manifest, what string) {
	t.Helper()
	loaded := map[string]bool{}
	for _, l := range strings.Split(r.section("sys-module"), "\n") {
		loaded[strings.TrimSpace(l)] = true
	}
	for _, mod := range m.Plan.Modules {
		if !loaded[strings.ReplaceAll(mod, "-", "_")] {
			t.Errorf("%s: module %s not loaded (/sys/module)\nlsmod:\n%s", what, mod, r.section("lsmod"))
		}
	}
	sysctls := map[string]string{}
	for _, l := range strings.Split(r.section("sysctl"), "\n") {
		if k, v, ok := strings.Cut(l, " = "); ok {
			sysctls[k] = v
		}
	}
	for _, s := range m.Plan.Sysctls {
		if got, ok := sysctls[s.Key]; !ok || got != s.Value {
			t.Errorf("%s: sysctl %s = %q, want %q", what, s.Key, got, s.Value)
		}
	}
}

func checkUnitUp(t *testing.T, r *report, what string) {
	t.Helper()
	want := webUnit + " enabled=enabled active=active"
	if !strings.Contains(r.section("units"), want) {
		t.Errorf("%s: want %q in:\n%s", what, want, r.section("units"))
	}
}

// iptablesRules maps "table -A CHAIN args…" of iptables-save output to true.
func iptablesRules(save string) map[string]bool {
	rules := map[string]bool{}
	table := ""
	for _, l := range strings.Split(save, "\n") {
		switch {
		case strings.HasPrefix(l, "*"):
			table = l[1:]
		case strings.HasPrefix(l, "-A "):
			rules[table+" "+l] = true
		}
	}
	return rules
}

// checkNoop asserts the second boot did not run firstboot: its unit was
// skipped (disabled by finish, or its ConditionPathExists on the done
// marker false) and the state file is the first boot's.
func checkNoop(t *testing.T, r *report, before fbState) {
	t.Helper()
	unit := r.props("firstboot-unit")
	ran := unit["ExecMainStartTimestampMonotonic"] != "" && unit["ExecMainStartTimestampMonotonic"] != "0"
	if ran {
		t.Errorf("boot 2: firstboot ran again (ExecMainStartTimestampMonotonic=%s)\n%s", unit["ExecMainStartTimestampMonotonic"], r.section("journal-firstboot"))
	}
	if unit["UnitFileState"] == "enabled" && unit["ConditionResult"] != "no" {
		t.Errorf("boot 2: kubebake-firstboot.service enabled and its condition not false: %v", unit)
	}
	after := state(t, r)
	if !after.Started.Equal(before.Started) || !after.Done {
		t.Errorf("boot 2: state file changed: started %s → %s, done %v", before.Started, after.Started, after.Done)
	}
	if !strings.Contains(r.section("done-marker"), "# rc=0") {
		t.Errorf("boot 2: done marker gone:\n%s", r.section("done-marker"))
	}
}

// firstbootDuration is the firstboot unit's start→exit in the guest.
func firstbootDuration(t *testing.T, r *report) time.Duration {
	t.Helper()
	p := r.props("firstboot-unit")
	a, err1 := strconv.ParseInt(p["ExecMainStartTimestampMonotonic"], 10, 64)
	b, err2 := strconv.ParseInt(p["ExecMainExitTimestampMonotonic"], 10, 64)
	if err1 != nil || err2 != nil || b < a {
		t.Errorf("firstboot timestamps: %v", p)
		return 0
	}
	return time.Duration(b-a) * time.Microsecond
}

// imageLayout writes one small real image (busybox, linux/amd64) as an OCI
// image layout at dir, named with both annotations the builder sets, and
// returns its plan entry.
func imageLayout(t *testing.T, dir string) plan.Image {
	t.Helper()
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range []*tar.Header{
		{Name: "bin/", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: "bin/busybox", Typeflag: tar.TypeReg, Mode: 0o755, Size: int64(len(bb))},
	} {
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := tw.Write(bb); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(buf.Bytes())), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(mutate.MediaType(empty.Image, types.OCIManifestSchema1), layer)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Config.Entrypoint = []string{"/bin/busybox"}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	lp, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := lp.AppendImage(img, layout.WithAnnotations(map[string]string{
		"org.opencontainers.image.ref.name": imageRef, "io.containerd.image.name": imageRef,
	})); err != nil {
		t.Fatal(err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return plan.Image{Ref: imageRef, Source: "vmtest:/bin/busybox", Digest: d.String()}
}

func serialTail(path string, n int) string {
	b, _ := os.ReadFile(path)
	return qemutest.Tail(string(b), n)
}
