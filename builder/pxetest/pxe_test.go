// Package pxetest boots kubebake's PXE output the way a bare machine does.
// The seed's bundles are baked (stand-in artifacts and firstboot, ~45 KB a
// bundle) and `kubebake pxe` (built from this tree) writes out/pxe for a
// pxe: section with bundleDelivery: initrd. QEMU (TCG) with SeaBIOS and the
// iPXE option ROM of Debian's ipxe-qemu then asks QEMU's built-in
// DHCP/TFTP (-netdev user,restrict=on,tftp=DIR: nothing leaves the
// process) for Debian's pxelinux.0, which picks pxelinux.cfg/01-<mac> by
// the NIC's MAC and loads the entry's kernel (Debian's, put at pxe.kernel)
// and both initrds: a small test initrd (busybox and an /init, put at
// pxe.initrd) and kubebake's overlay/<host>.cpio.gz. The kernel unpacks
// the concatenation; /init reads /ks.cfg and /kubebake/bundle.tar.gz, which
// only the overlay has, and prints on the serial console:
//
//	KUBEBAKE-PXE ks-host=<host> ks-hostname=<fqdn> ks-device=<mac> ks-sha256=<hex> bundle-sha256=<hex> bundle-size=<n> sum-ok=yes
//	KUBEBAKE-PXE-CMDLINE <the kernel command line>
//	KUBEBAKE-PXE-FILES <the initramfs's files>
//	KUBEBAKE-PXE-END
//
// The test checks that against the MAC it gave the NIC, out/SHA256SUMS and
// the generated kickstart, for two hosts (so the MAC, not luck, picks the
// entry). A third boot with a MAC that has no entry must install nothing
// and boot its local disk through kubebake's LOCALBOOT default. (Without
// a default pxelinux says "Unable to locate configuration file", "Boot
// failed: press a key to retry, or wait for reset..." and resets the
// machine ~300 s later (measured: 308 s).)
//
// The CentOS 7 installer itself cannot run here; the test initrd stands in
// for it, which is all the PXE path needs: the entry chosen by MAC, both
// initrds fetched over TFTP, the overlay unpacked by a real kernel.
//
// Cost on 2 cores (other tests running beside it): setup ~11 s (bake ~6 s,
// go build kubebake ~5 s), a host's boot 16–28 s (iPXE's DHCP ~5 s, TFTP
// ~3 s, the kernel's self-decompression and boot 7–14 s), the unknown MAC
// ~8 s; the whole test 45–60 s. TFTP over QEMU's slirp ran at 1.6–3.6 MB/s
// (the 8 MB kernel; a 32 MB overlay 2.4 MB/s, 128 MB 2.6 MB/s), so every
// MB of bundle costs ~0.3–0.6 s a boot: keep test bundles small.
//
// It runs only as root and when KUBEBAKE_VMTEST=1 or CI is set. Under CI a
// missing tool fails the test with the install hint, never skips it. On
// failure the serial logs, kickstarts and boot entries are copied to
// $TMPDIR/kubebake-pxetest-<timestamp>/ (always with KUBEBAKE_VMTEST_KEEP=1).
package pxetest

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kubebake/kubebake/builder/build"
	"github.com/kubebake/kubebake/builder/spec"
	"github.com/kubebake/kubebake/firstboot/plan"
	"github.com/kubebake/kubebake/internal/qemutest"
	"github.com/kubebake/kubebake/internal/standin"
)

const (
	repoRoot = "../.."

	pxelinux0   = "/usr/lib/PXELINUX/pxelinux.0"
	ldlinuxC32  = "/usr/lib/syslinux/modules/bios/ldlinux.c32"
	ipxeROM     = "/usr/lib/ipxe/qemu/efi-virtio.rom" // QEMU's default romfile for virtio-net-pci
	busybox     = "/bin/busybox"
	installHint = "apt-get install -y --no-install-recommends qemu-system-x86 ipxe-qemu pxelinux syslinux-common linux-image-amd64 busybox-static cpio"

	// defaultBootTimeout is about 3× the slowest boot measured from QEMU's
	// start to the guest's report line (16–28 s on 2 cores with other
	// tests running beside it).
	// KUBEBAKE_VMTEST_BOOT_TIMEOUT (a Go duration) overrides it.
	defaultBootTimeout = 90 * time.Second
)

// The hosts booted: two, so that the MAC (not luck) picks the entry.
var bootHosts = []string{"hdss7-21", "hdss7-22"}

// unknownMAC is on the seed's QEMU prefix but belongs to no host (10.4.7.99).
const unknownMAC = "52:54:00:04:07:63"

func gate(t *testing.T) {
	t.Helper()
	qemutest.Gate(t, qemutest.Requirements{
		What:    "QEMU PXE test",
		Tools:   []string{"qemu-system-x86_64", "cpio", "gzip", "go"},
		Files:   map[string]string{pxelinux0: "pxelinux", ldlinuxC32: "syslinux-common", ipxeROM: "ipxe-qemu", busybox: "busybox-static"},
		Kernel:  true,
		Hint:    installHint,
		RootWhy: "as firstboot/vmtest, it runs as root on the test bed",
	})
}

func TestPXEBootInQEMU(t *testing.T) {
	gate(t)
	start := time.Now()
	work := t.TempDir()
	arts := qemutest.NewKeeper(t, "kubebake-pxetest")

	px := generate(t, work)
	initrd := testInitrd(t, work)
	root := tftpRoot(t, work, px, initrd)
	timeout := qemutest.BootTimeout(t, defaultBootTimeout)
	t.Logf("bundles, PXE tree, test initrd and TFTP root ready in %.1fs", time.Since(start).Seconds())

	for _, host := range bootHosts {
		t.Run(host, func(t *testing.T) {
			h := px.host(t, host)
			arts.Add(host+".cfg", h.ks)
			arts.Add(host+".pxelinux", h.entry)
			files := []string{h.kernel, h.initrd, h.overlay}
			r := boot(t, arts, bootOpts{name: host, mac: h.mac, root: root, timeout: timeout, wantReport: true, files: files})
			checkReport(t, px, h, r)
			r.logTimes(t, root, files)
		})
	}

	t.Run("unknown-mac", func(t *testing.T) {
		r := boot(t, arts, bootOpts{name: "unknown", mac: unknownMAC, root: root, timeout: timeout, disk: localDisk(t, work)})
		checkNothingInstalled(t, px, r)
	})
	t.Logf("whole test %.1fs", time.Since(start).Seconds())
}

// pxeOut is what `kubebake pxe` wrote, as far as this test relies on it.
type pxeOut struct {
	out  string // OUT: <host>.tar.gz, SHA256SUMS
	tftp string // OUT/pxe/tftp
	spec *spec.Spec
}

// pxeHost is one host's part of it.
type pxeHost struct {
	name, ip, mac string
	entry         string // OUT/pxe/tftp/pxelinux.cfg/01-<mac>
	ks            string // OUT/pxe/ks/<host>.cfg
	overlay       string // path relative to the TFTP root, from the entry
	kernel        string // the installer kernel, relative to the TFTP root, from the entry
	initrd        string // the installer initrd (first of initrd=), idem
}

func (p *pxeOut) host(t *testing.T, name string) pxeHost {
	t.Helper()
	var h pxeHost
	for _, sh := range p.spec.Hosts {
		if sh.Name == name {
			h.name, h.ip = sh.Name, sh.IP
			if len(sh.MACs) > 0 {
				h.mac = sh.MACs[0]
			}
		}
	}
	if h.name == "" || h.mac == "" {
		t.Fatalf("spec has no host %s with a MAC", name)
	}
	h.entry = filepath.Join(p.tftp, "pxelinux.cfg", pxelinuxName(h.mac))
	h.ks = filepath.Join(filepath.Dir(p.tftp), "ks", name+".cfg")
	e := parseEntry(t, h.entry)
	h.kernel = e.kernel
	if len(e.initrds) != 2 {
		t.Fatalf("%s: initrds %q, want the installer's initrd then the overlay", h.entry, e.initrds)
	}
	h.initrd, h.overlay = e.initrds[0], e.initrds[1]
	return h
}

// pxelinuxName is pxelinux's per-MAC config name: ARP type 01, then the
// MAC in lower-case hex with dashes.
func pxelinuxName(mac string) string {
	return "01-" + strings.ReplaceAll(strings.ToLower(mac), ":", "-")
}

// entry is the part of a pxelinux config the test needs: the default
// label's kernel and initrds, and its APPEND.
type entry struct {
	kernel  string
	initrds []string
	append  string
}

// parseEntry reads a pxelinux config with one or more labels and returns
// the DEFAULT label's (or the only label's) kernel, initrds (from INITRD
// or initrd= in APPEND) and APPEND.
func parseEntry(t *testing.T, path string) entry {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("boot entry: %v", err)
	}
	labels := map[string]*entry{}
	var order []string
	var cur *entry
	def := ""
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		kw, rest := strings.ToUpper(f[0]), strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(l), f[0]))
		switch kw {
		case "DEFAULT":
			def = rest
		case "LABEL":
			cur = &entry{}
			labels[rest] = cur
			order = append(order, rest)
		case "KERNEL", "LINUX":
			if cur != nil {
				cur.kernel = rest
			}
		case "INITRD":
			if cur != nil {
				cur.initrds = append(cur.initrds, strings.Split(rest, ",")...)
			}
		case "APPEND":
			if cur != nil {
				cur.append = rest
				for _, a := range strings.Fields(rest) {
					if v, ok := strings.CutPrefix(a, "initrd="); ok {
						cur.initrds = append(cur.initrds, strings.Split(v, ",")...)
					}
				}
			}
		}
	}
	name := def
	if _, ok := labels[name]; !ok && len(order) == 1 {
		name = order[0]
	}
	e, ok := labels[name]
	if !ok || e.kernel == "" {
		t.Fatalf("%s: no kernel for the default label %q:\n%s", path, def, b)
	}
	return *e
}

// pxeSection is appended to the seed spec: the installer at the paths the
// test puts Debian's kernel and the test initrd, the bundle in the overlay
// (bundleDelivery: initrd, the path this test proves), BIOS boot.
const pxeSection = `
pxe:
  kernel: centos7/vmlinuz
  initrd: centos7/initrd.img
  repo: http://10.4.7.200/centos/7/os/x86_64
  httpBase: http://10.4.7.200:8080
  rootPasswordHashFile: root.hash
  bootMode: bios
  bundleDelivery: initrd
`

// testHash is `openssl passwd -6 -salt kubebakesalt kubebake-test`: root's hash, from
// pxe.rootPasswordHashFile (the password is never in the spec).
const testHash = "$6$kubebakesalt$Izo0ffEgmR.6n5cep4905uv3rBYYNkt9g9XxVfJbvTqhhK8vCbJaB15mXhfPi1qf6s6Ux3xHQf6FngX83NFbs1"

// generate bakes the seed's bundles and runs the real `kubebake pxe` on
// them: the seed spec plus pxeSection, stand-in artifacts and a stand-in
// firstboot (so a bundle is ~45 KB and TFTP stays quick), baked in process
// as firstboot/vmtest does, then kubebake built from this tree (plain go
// build: pxe needs no embedded firstboot), run as a site would run it.
func generate(t *testing.T, work string) *pxeOut {
	t.Helper()
	start := time.Now()
	data, err := os.ReadFile(filepath.Join(repoRoot, "bundle-spec.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	specPath := filepath.Join(work, "bundle-spec.yaml")
	mustWrite(t, specPath, append(data, pxeSection...))
	mustWrite(t, filepath.Join(work, "root.hash"), []byte(testHash+"\n"))
	s, rep, err := spec.Load(specPath)
	if err != nil {
		t.Fatal(err)
	}
	if rep.IsFatal() {
		t.Fatalf("seed spec with the test's pxe section invalid:\n%s", rep)
	}
	arts := filepath.Join(work, "artifacts")
	if err := standin.Generate(s, arts, 0); err != nil {
		t.Fatal(err)
	}
	fb := []byte("#!/bin/sh\necho 'firstboot: kubebake PXE test stand-in' >&2\nexit 1\n")
	state, out := filepath.Join(work, "state"), filepath.Join(work, "out")
	if _, err := build.Bake(context.Background(), s, build.WithArtifactsDir(arts), build.WithStateDir(state),
		build.WithStoreDir(filepath.Join(state, "store")), build.WithOutDir(out), build.WithFirstboot(fb)); err != nil {
		t.Fatal(err)
	}
	baked := time.Since(start)

	kb := filepath.Join(work, "kubebake")
	cmd := exec.Command("go", "build", "-o", kb, "./builder")
	cmd.Dir = repoRoot
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./builder: %v\n%s", err, b)
	}
	built := time.Since(start) - baked
	cmd = exec.Command(kb, "pxe", "-f", specPath, "--out", out)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("kubebake pxe: %v\n%s%s", err, stdout.String(), stderr.String())
	}
	t.Logf("bake %.1fs, go build kubebake %.1fs, kubebake pxe %.1fs:\n%s", baked.Seconds(), built.Seconds(),
		(time.Since(start) - baked - built).Seconds(), strings.TrimSpace(stdout.String()))
	return &pxeOut{out: out, tftp: filepath.Join(out, "pxe", "tftp"), spec: s}
}

// outSums reads OUT/SHA256SUMS: bundle file name → sha256.
func outSums(t *testing.T, out string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(out, plan.SumsName))
	if err != nil {
		t.Fatal(err)
	}
	sums, probs, err := plan.ParseSums(b)
	if err != nil || len(probs) > 0 {
		t.Fatalf("%s: %v %v", plan.SumsName, err, probs)
	}
	m := map[string]string{}
	for _, s := range sums {
		m[s.Path] = s.SHA256
	}
	return m
}

func mustWrite(t *testing.T, p string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// cpioGz packs dir with GNU cpio (newc, owned by root) and gzip.
func cpioGz(t *testing.T, dir, dst string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sh", "-c", `find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet | gzip -n -6 >"$0"`, dst)
	cmd.Dir = dir
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cpio %s: %v\n%s", dir, err, b)
	}
}

// initScript is the test initrd's /init: busybox only, no network, no
// modules. It reads what the overlay put into the initramfs and prints the
// report on ttyS0 (the entry need not say console=ttyS0), then powers off.
const initScript = `#!/bin/busybox sh
/bin/busybox mkdir -p /proc /sys /dev
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sys /sys
/bin/busybox mount -t devtmpfs dev /dev
/bin/busybox --install -s /bin
exec >/dev/ttyS0 2>&1
echo "KUBEBAKE-PXE-INIT uptime=$(cut -d' ' -f1 /proc/uptime)"
ks_host=none ks_sum=none ks_fqdn=none ks_dev=none
if [ -f /ks.cfg ]; then
	for kv in $(grep -m1 '^# kubebake:' /ks.cfg); do
		case "$kv" in
		host=*) ks_host=${kv#host=} ;;
		bundle-sha256=*) ks_sum=${kv#bundle-sha256=} ;;
		esac
	done
	for kv in $(grep -m1 '^network ' /ks.cfg); do
		case "$kv" in
		--hostname=*) ks_fqdn=${kv#--hostname=} ;;
		--device=*) ks_dev=${kv#--device=} ;;
		esac
	done
fi
sum=none size=0
if [ -f /kubebake/bundle.tar.gz ]; then
	sum=$(sha256sum /kubebake/bundle.tar.gz | cut -d' ' -f1)
	size=$(stat -c %s /kubebake/bundle.tar.gz)
fi
ok=no
[ "$ks_sum" != none ] && [ "$sum" = "$ks_sum" ] && ok=yes
echo "KUBEBAKE-PXE ks-host=$ks_host ks-hostname=$ks_fqdn ks-device=$ks_dev ks-sha256=$ks_sum bundle-sha256=$sum bundle-size=$size sum-ok=$ok uptime=$(cut -d' ' -f1 /proc/uptime)"
echo "KUBEBAKE-PXE-CMDLINE $(cat /proc/cmdline)"
echo "KUBEBAKE-PXE-FILES $(find / -xdev -type f ! -path '/proc/*' ! -path '/sys/*' ! -path '/bin/*' | sort | tr '\n' ' ')"
echo "KUBEBAKE-PXE-END"
sync
poweroff -f
`

// testInitrd builds the stand-in for the installer's initrd: a gzip'd newc
// cpio with busybox and /init (~1 MB; built per run, it takes well under a
// second).
func testInitrd(t *testing.T, work string) string {
	t.Helper()
	dir := filepath.Join(work, "test-initrd")
	b, err := os.ReadFile(busybox)
	if err != nil {
		t.Fatal(err)
	}
	mustWrite(t, filepath.Join(dir, "bin", "busybox"), b)
	mustWrite(t, filepath.Join(dir, "init"), []byte(initScript))
	for _, p := range []string{"bin/busybox", "init"} {
		if err := os.Chmod(filepath.Join(dir, p), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	dst := filepath.Join(work, "test-initrd.cpio.gz")
	cpioGz(t, dir, dst)
	return dst
}

// tftpRoot is the TFTP root QEMU serves: OUT/pxe/tftp linked file by file,
// Debian's pxelinux.0 and ldlinux.c32, Debian's kernel at the entry's
// installer kernel path and the test initrd at its installer initrd path.
func tftpRoot(t *testing.T, work string, px *pxeOut, initrd string) string {
	t.Helper()
	root := filepath.Join(work, "tftproot")
	link := func(src, rel string) {
		dst := filepath.Join(root, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		_ = os.Remove(dst)
		if err := os.Symlink(src, dst); err != nil {
			t.Fatal(err)
		}
	}
	err := filepath.WalkDir(px.tftp, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(px.tftp, p)
		if err != nil {
			return err
		}
		link(p, filepath.ToSlash(rel))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	link(pxelinux0, "pxelinux.0")
	link(ldlinuxC32, "ldlinux.c32")
	placed := map[string]bool{}
	for _, name := range bootHosts {
		h := px.host(t, name)
		for rel, src := range map[string]string{h.kernel: qemutest.Kernel(), h.initrd: initrd} {
			rel = strings.TrimPrefix(rel, "/")
			if strings.Contains(rel, "://") || strings.Contains(rel, "..") {
				t.Fatalf("%s: installer file %q is not a path below the TFTP root", h.entry, rel)
			}
			if !placed[rel] {
				link(src, rel)
				placed[rel] = true
			}
		}
	}
	return root
}

type bootOpts struct {
	name       string
	mac        string
	root       string
	timeout    time.Duration
	wantReport bool     // a host's boot: wait for KUBEBAKE-PXE-END
	files      []string // what pxelinux should load, timed by their "Loading" lines
	disk       string   // a local disk, booted after the network (-boot order=nc)
}

// result is one boot's serial log and when each milestone first showed up.
type result struct {
	serial  string
	lines   []string
	marks   map[string]time.Duration // milestone → time since QEMU start
	elapsed time.Duration
}

// milestones are serial-log substrings whose first appearance is timed;
// boot adds "load:<file>" for each file pxelinux loads ("Loading <file>").
var milestones = []struct{ key, substr string }{
	{"ipxe", "iPXE initialising devices"},
	{"dhcp", "Next server:"},
	{"pxelinux", "PXELINUX "},
	{"loaded", "Probing EDD"}, // pxelinux has loaded every file, boots the kernel
	{"init", "KUBEBAKE-PXE-INIT"},
	{"report", "KUBEBAKE-PXE-END"},
	{"no-config", "Unable to locate configuration file"},
	{"boot-failed", "Boot failed"},
}

func (r *result) line(prefix string) string {
	for _, l := range r.lines {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	return ""
}

func (r *result) has(substr string) bool { return strings.Contains(r.serial, substr) }

// logTimes reports where the boot's time went and the TFTP rate seen for
// each file pxelinux loaded, in order (a file's time runs from its
// "Loading" line to the next file's, or to "Probing EDD" for the last; the
// log is polled every 100 ms).
func (r *result) logTimes(t *testing.T, root string, files []string) {
	t.Helper()
	m := r.marks
	var b strings.Builder
	fmt.Fprintf(&b, "boot %.1fs:", r.elapsed.Seconds())
	for _, ms := range milestones {
		if d, ok := m[ms.key]; ok {
			fmt.Fprintf(&b, " %s@%.1fs", ms.key, d.Seconds())
		}
	}
	var total int64
	var totalD time.Duration
	for i, f := range files {
		from, ok1 := m["load:"+f]
		next := "loaded"
		if i+1 < len(files) {
			next = "load:" + files[i+1]
		}
		to, ok2 := m[next]
		fi, err := os.Stat(filepath.Join(root, filepath.FromSlash(f)))
		if !ok1 || !ok2 || err != nil {
			continue
		}
		d := to - from
		total, totalD = total+fi.Size(), totalD+d
		fmt.Fprintf(&b, "\n  TFTP %s: %d KB in %.1fs", f, fi.Size()/1024, d.Seconds())
		if d >= 500*time.Millisecond { // the log is polled every 100 ms
			fmt.Fprintf(&b, " (%.0f KB/s)", float64(fi.Size())/1024/d.Seconds())
		}
	}
	if totalD > 0 {
		fmt.Fprintf(&b, "\n  TFTP total: %d KB in %.1fs (%.0f KB/s)", total/1024, totalD.Seconds(), float64(total)/1024/totalD.Seconds())
	}
	t.Log(b.String())
}

// boot runs QEMU's PXE boot with mac on the NIC and root as the TFTP root,
// until the guest's report (wantReport), pxelinux giving up, QEMU exiting
// or the timeout.
func boot(t *testing.T, arts *qemutest.Keeper, o bootOpts) *result {
	t.Helper()
	dir := filepath.Join(filepath.Dir(o.root), "boot-"+o.name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	serial := filepath.Join(dir, "serial.log")
	arts.Add(o.name+"-serial.log", serial)
	args := []string{
		"-accel", "tcg", "-m", "512", "-smp", "1",
		// -nographic with no VGA: SeaBIOS, iPXE and pxelinux write to the
		// serial port too, so the log shows which file was fetched.
		"-nographic", "-vga", "none", "-monitor", "none", "-no-reboot",
		"-serial", "file:" + serial,
		"-netdev", "user,id=n0,restrict=on,tftp=" + o.root + ",bootfile=pxelinux.0",
		"-device", "virtio-net-pci,netdev=n0,mac=" + o.mac,
	}
	if o.disk != "" {
		args = append(args, "-drive", "file="+o.disk+",format=raw,if=none,id=d0,snapshot=on",
			"-device", "virtio-blk-pci,drive=d0", "-boot", "order=nc")
	} else {
		args = append(args, "-boot", "n")
	}
	cmd := exec.Command("qemu-system-x86_64", args...)
	var qout bytes.Buffer
	cmd.Stdout, cmd.Stderr = &qout, &qout
	cmd.Stdin = nil
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatalf("qemu: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			_ = cmd.Process.Kill() // by PID
			select {
			case <-exited:
			case <-time.After(10 * time.Second):
				t.Logf("qemu pid %d did not exit 10s after SIGKILL", cmd.Process.Pid)
			}
		})
	}
	t.Cleanup(stop)

	r := &result{marks: map[string]time.Duration{}}
	read := func() {
		b, _ := os.ReadFile(serial)
		r.serial = cleanSerial(b)
		now := time.Since(start)
		for _, ms := range milestones {
			if _, ok := r.marks[ms.key]; !ok && strings.Contains(r.serial, ms.substr) {
				r.marks[ms.key] = now
			}
		}
		for _, f := range o.files {
			if _, ok := r.marks["load:"+f]; !ok && strings.Contains(r.serial, "Loading "+f) {
				r.marks["load:"+f] = now
			}
		}
	}
	done := func() bool {
		if o.wantReport {
			return r.has("KUBEBAKE-PXE-END")
		}
		// No entry: pxelinux gives up ("Boot failed: press a key to retry,
		// or wait for reset"); a default that boots locally reaches the
		// disk; one that boots a kernel reaches /init.
		for _, s := range []string{"Boot failed", localDiskMsg, "No bootable device", "KUBEBAKE-PXE-END"} {
			if r.has(s) {
				return true
			}
		}
		return false
	}
	deadline := time.After(o.timeout)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	exitedEarly := false
loop:
	for {
		select {
		case err := <-exited:
			exited <- err
			read()
			if !done() {
				exitedEarly = true
				if o.wantReport {
					t.Fatalf("%s: qemu exited before the report (%v) after %.1fs:\n%s\nserial log tail:\n%s", o.name, err, time.Since(start).Seconds(), qout.String(), qemutest.Tail(r.serial, 40))
				}
			}
			break loop
		case <-deadline:
			read()
			if o.wantReport {
				t.Fatalf("%s: no report after %s (KUBEBAKE_VMTEST_BOOT_TIMEOUT); serial log tail:\n%s", o.name, o.timeout, qemutest.Tail(r.serial, 40))
			}
			t.Logf("%s: timeout %s reached", o.name, o.timeout)
			break loop
		case <-tick.C:
			read()
			if done() {
				break loop
			}
		}
	}
	r.elapsed = time.Since(start)
	if !exitedEarly {
		// The guest powers off by itself after the report; give it a
		// moment, then kill by PID.
		select {
		case err := <-exited:
			exited <- err
		case <-time.After(2 * time.Second):
		}
		stop()
	}
	read()
	sc := bufio.NewScanner(strings.NewReader(r.serial))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		r.lines = append(r.lines, strings.TrimSpace(sc.Text()))
	}
	return r
}

// ansi matches the terminal control sequences SeaBIOS's serial console
// and pxelinux emit (cursor positioning lands in the middle of words when
// the 80×25 screen they think they draw on scrolls).
var ansi = regexp.MustCompile(`\x1b(\[[0-9;?]*[A-Za-z]|[c()][0-9A-Za-z]?)`)

// cleanSerial is the serial log as text: control sequences and carriage
// returns dropped.
func cleanSerial(b []byte) string {
	return strings.ReplaceAll(ansi.ReplaceAllString(string(b), ""), "\r", "")
}

// fields parses "k=v k=v …" after a prefix.
func fields(l string) map[string]string {
	m := map[string]string{}
	for _, f := range strings.Fields(l) {
		if k, v, ok := strings.Cut(f, "="); ok {
			m[k] = v
		}
	}
	return m
}

// checkReport asserts the booted guest got host h's kickstart and bundle,
// through h's entry.
func checkReport(t *testing.T, px *pxeOut, h pxeHost, r *result) {
	t.Helper()
	l := r.line("KUBEBAKE-PXE ")
	if l == "" {
		t.Fatalf("%s: no KUBEBAKE-PXE line; serial log tail:\n%s", h.name, qemutest.Tail(r.serial, 40))
	}
	t.Log(l)
	f := fields(l)
	want := outSums(t, px.out)[h.name+".tar.gz"]
	if want == "" {
		t.Fatalf("out/SHA256SUMS has no %s.tar.gz", h.name)
	}
	ksHeader := kickstartHeader(t, h.ks)
	checks := []struct{ what, got, want string }{
		{"kickstart's host (the NIC had " + h.mac + ")", f["ks-host"], h.name},
		{"kickstart's hostname", strings.SplitN(f["ks-hostname"], ".", 2)[0], h.name},
		{"kickstart's network --device", strings.ToLower(f["ks-device"]), strings.ToLower(h.mac)},
		{"bundle sha256 vs out/SHA256SUMS", f["bundle-sha256"], want},
		{"kickstart's bundle-sha256 vs out/SHA256SUMS", f["ks-sha256"], want},
		{"generated kickstart's bundle-sha256", ksHeader["bundle-sha256"], want},
		{"generated kickstart's host", ksHeader["host"], h.name},
		{"generated kickstart's ip", ksHeader["ip"], h.ip},
		{"guest's sum-ok", f["sum-ok"], "yes"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: %s = %q, want %q", h.name, c.what, c.got, c.want)
		}
	}
	// The entry names the site's installer by the spec's paths and this
	// host's overlay.
	for _, c := range []struct{ what, got, want string }{
		{"entry's kernel vs pxe.kernel", h.kernel, px.spec.PXE.Kernel},
		{"entry's first initrd vs pxe.initrd", h.initrd, px.spec.PXE.Initrd},
		{"entry's second initrd", h.overlay, "overlay/" + h.name + ".cpio.gz"},
	} {
		if c.got != c.want {
			t.Errorf("%s: %s = %q, want %q", h.name, c.what, c.got, c.want)
		}
	}
	cmdline := strings.TrimPrefix(r.line("KUBEBAKE-PXE-CMDLINE "), "KUBEBAKE-PXE-CMDLINE ")
	t.Logf("cmdline: %s", cmdline)
	args := strings.Fields(cmdline)
	if !contains(args, "BOOT_IMAGE="+h.kernel) {
		t.Errorf("%s: pxelinux booted another kernel than %s: %s", h.name, h.kernel, cmdline)
	}
	// BOOTIF (pxelinux's IPAPPEND 2 form, written by kubebake into each
	// per-MAC entry) names the NIC the guest had.
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, "BOOTIF="); ok && v != pxelinuxName(h.mac) {
			t.Errorf("%s: BOOTIF=%s, the NIC's MAC is %s", h.name, v, h.mac)
		}
	}
	if !contains(args, "inst.ks=file:/ks.cfg") {
		t.Errorf("%s: kernel command line lacks inst.ks=file:/ks.cfg: %s", h.name, cmdline)
	}
	if !contains(args, "initrd="+h.initrd+","+h.overlay) {
		t.Errorf("%s: kernel command line lacks initrd=%s,%s: %s", h.name, h.initrd, h.overlay, cmdline)
	}
	// pxelinux fetched exactly this host's overlay, and no other.
	for _, other := range px.spec.Hosts {
		loaded := r.has("Loading overlay/" + other.Name + ".cpio.gz")
		if loaded != (other.Name == h.name) {
			t.Errorf("%s: pxelinux loading overlay/%s.cpio.gz = %v", h.name, other.Name, loaded)
		}
	}
	files := strings.Fields(r.line("KUBEBAKE-PXE-FILES "))
	for _, f := range []string{"/init", "/ks.cfg", "/kubebake/bundle.tar.gz"} {
		if !contains(files, f) {
			t.Errorf("%s: the unpacked initramfs lacks %s (from the test initrd and the overlay): %s", h.name, f, files)
		}
	}
}

// kickstartHeader parses the generated kickstart's "# kubebake:" line.
func kickstartHeader(t *testing.T, ks string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(ks)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(l, "# kubebake:"); ok {
			return fields(rest)
		}
	}
	t.Fatalf("%s has no \"# kubebake:\" line", ks)
	return nil
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// checkNothingInstalled asserts a MAC without an entry gets no kickstart
// and no bundle and boots its local disk through the pxelinux.cfg/default
// kubebake writes (without one, pxelinux gives up and resets the machine
// ~300 s later, and a BIOS that boots the network first loops).
func checkNothingInstalled(t *testing.T, px *pxeOut, r *result) {
	t.Helper()
	_, statErr := os.Stat(filepath.Join(px.tftp, "pxelinux.cfg", "default"))
	hasDefault := statErr == nil
	outcome := "no outcome within the timeout"
	switch {
	case r.has(localDiskMsg):
		outcome = "handed back to the BIOS, which booted the local disk"
	case r.has("Boot failed"):
		outcome = "pxelinux gave up (it resets the machine ~300 s later; a BIOS that boots the network first then PXE-boots again)"
	case r.has("No bootable device"):
		outcome = "no bootable device"
	}
	t.Logf("unknown MAC %s: pxelinux.cfg/default written: %v; %s after %.1fs; the serial log ends:\n%s",
		unknownMAC, hasDefault, outcome, r.elapsed.Seconds(), qemutest.Tail(strings.TrimSpace(r.serial), 4))
	if _, ok := r.marks["pxelinux"]; !ok {
		t.Fatalf("unknown MAC: pxelinux never started; serial log tail:\n%s", qemutest.Tail(r.serial, 40))
	}
	if r.has("Loading overlay/") || r.has("KUBEBAKE-PXE ") || r.has("inst.ks=") {
		t.Errorf("unknown MAC %s was handed an installer entry:\n%s", unknownMAC, qemutest.Tail(r.serial, 40))
	}
	// kubebake pxe writes a LOCALBOOT default: the machine goes back to
	// the BIOS, which boots its own disk.
	if !hasDefault {
		t.Errorf("kubebake pxe wrote no pxelinux.cfg/default")
	}
	if !r.has(localDiskMsg) {
		t.Errorf("unknown MAC %s did not boot its local disk (%s):\n%s", unknownMAC, outcome, qemutest.Tail(r.serial, 40))
	}
}

// localDiskMsg is what localDisk's boot sector prints (SeaBIOS's serial
// console may hold back the last characters, so the test matches a prefix).
const localDiskMsg = "KUBEBAKE-LOCAL-DISK"

// localDisk is a 1 MiB raw disk whose MBR prints localDiskMsg through the
// BIOS (int 10h teletype) and halts: the machine's own disk, reached when
// the PXE path hands control back to the BIOS.
func localDisk(t *testing.T, work string) string {
	t.Helper()
	// 16-bit code at 0:7c00: print the NUL-terminated string at 7c16, halt.
	code := []byte{
		0x31, 0xc0, // xor ax, ax
		0x8e, 0xd8, // mov ds, ax
		0xbe, 0x16, 0x7c, // mov si, 0x7c16
		0xac,       // loop: lodsb
		0x08, 0xc0, // or al, al
		0x74, 0x06, // jz halt
		0xb4, 0x0e, // mov ah, 0x0e
		0xcd, 0x10, // int 0x10
		0xeb, 0xf5, // jmp loop
		0xfa,       // halt: cli
		0xf4,       // hlt
		0xeb, 0xfd, // jmp hlt
	}
	mbr := make([]byte, 1<<20)
	copy(mbr, code)
	copy(mbr[len(code):], localDiskMsg+" booted: the local disk, no installer\r\n\r\n\x00")
	mbr[510], mbr[511] = 0x55, 0xaa
	p := filepath.Join(work, "local-disk.img")
	mustWrite(t, p, mbr)
	return p
}
