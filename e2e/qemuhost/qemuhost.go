// Package qemuhost is a bed.Host that is a QEMU (TCG) guest: Debian's
// kernel with its real modules and a real systemd, for the hosts whose roles
// load modules this machine's kernel lacks (ip_vs & friends: the etcd +
// master + node hosts hdss7-21 and hdss7-22).
//
// The guest image comes from scripts/e2e/qemu-guest.sh (BuildGuest; cached
// outside the repo; its guest protocol is at the top of that script). Each
// host boots a copy of its root disk (kept across its boots), a second disk
// holding only its own <host>.tar.gz, which the guest unpacks into
// /opt/kubebake and whose kubebake-firstboot.service it enables and starts
// on the first boot, as kickstart's %post would, and one NIC on a tap device
// of the bed's bridge (with the spec's MAC). Its address, gateway, resolver
// and host name come from the kernel command line, where a CentOS 7 host has
// them from kickstart.
//
// The test reaches into the guest only through the QEMU guest agent
// (guest-exec over virtio-serial): Exec, WaitFirstboot and Logs read the
// host; nothing changes it by hand.
//
// The driver, per QEMU host (both booted together, beside the nspawn hosts):
//
//	guest, err := qemuhost.BuildGuest(ctx, repoRoot) // once; cached
//	err = nw.AddTap(ctx, "kbtap21")                  // nw: the bed.Network
//	c, err := qemuhost.FromSpec(s, "hdss7-21", nw, "kbtap21", guest, dir)
//	c.Logf = t.Logf
//	h, err := qemuhost.New(c) // a bed.Host
//	err = h.Boot(ctx, "e2e/out/hdss7-21.tar.gz")
//	err = h.WaitFirstboot(ctx, timeout)
package qemuhost

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/kubebake/kubebake/builder/spec"
	"github.com/kubebake/kubebake/e2e/bed"
)

// Defaults, measured on 2 cores under TCG (see the package's test).
const (
	// DefaultMemoryMB holds etcd, kube-apiserver, controller-manager,
	// scheduler, containerd, kubelet, kube-proxy and flanneld, and the page
	// cache of their ~800 MB of binaries.
	DefaultMemoryMB = 2048
	DefaultCPUs     = 2
	// DefaultCPUModel is qemu64, not max: TCG emulates AVX2 slower than
	// the scalar code Go falls back to. Measured with qemu-x86_64 on this
	// machine: sha256 22.5 vs 16.3 MB/s, gunzip 165 vs 110 MB/s, P-256
	// sign 1.1 vs 1.4 ms (qemu64 vs max).
	DefaultCPUModel = "qemu64"
	// DefaultBootTimeout bounds QEMU start → the guest agent answering.
	DefaultBootTimeout = 5 * time.Minute
)

// Config describes one guest.
type Config struct {
	// Name, IP and MAC are the spec's (hosts[].name, .ip, .macs[0]); FQDN
	// is the host name kickstart gives it (<name>.<hostDomain>).
	Name, IP, MAC, FQDN string
	// DNS is the resolvers (cluster.dnsServers).
	DNS []string
	// Network is the bed's network: the gateway and prefix come from it,
	// QEMU runs in its namespace.
	Network bed.Network
	// Tap is a tap device in Network.NS, a port of Network.Bridge and up:
	// the guest's NIC.
	Tap string
	// Guest is BuildGuest's directory.
	Guest string
	// Dir is the host's own directory: root disk, bundle disk, serial
	// logs, the guest agent's socket. Keep its path short (the socket's
	// path must fit in 107 bytes).
	Dir string
	// MemoryMB and CPUs default to DefaultMemoryMB and DefaultCPUs.
	MemoryMB, CPUs int
	// CPUModel is QEMU's -cpu; default DefaultCPUModel.
	CPUModel string
	// BootTimeout defaults to DefaultBootTimeout.
	BootTimeout time.Duration
	// InstallOnHost does kickstart's %post on this machine, before the
	// first boot, as the installer does: the bundle is unpacked into the
	// root disk's /opt/kubebake (loop mount in a private mount namespace)
	// and kubebake-firstboot.service enabled there; the guest's install
	// unit then has nothing to do and no bundle disk is attached. Under TCG
	// it saves the ~2 min the guest takes to gunzip ~800 MB. Default: the
	// guest's kubebake-e2e-install.service unpacks the bundle disk on its
	// first boot.
	InstallOnHost bool
	// Logf, when set, receives progress lines (t.Logf).
	Logf func(format string, args ...any)
}

// Host is a QEMU guest; it implements bed.Host.
type Host struct {
	c Config

	mu      sync.Mutex // guards the fields below
	boots   int
	cmd     *exec.Cmd
	exited  chan struct{} // closed when the current QEMU exits
	waitErr error
	started time.Time
	stopped bool

	agent sync.Mutex // one guest-agent session at a time
}

var _ bed.Host = (*Host)(nil)

// New checks c and returns the host, not started.
func New(c Config) (*Host, error) {
	if c.Name == "" || c.IP == "" || c.MAC == "" || c.Tap == "" || c.Guest == "" || c.Dir == "" || c.Network.NS == "" {
		return nil, fmt.Errorf("qemuhost: Name, IP, MAC, Tap, Guest, Dir and Network.NS are required: %+v", c)
	}
	if c.FQDN == "" {
		c.FQDN = c.Name
	}
	if c.MemoryMB == 0 {
		c.MemoryMB = DefaultMemoryMB
	}
	if c.CPUs == 0 {
		c.CPUs = DefaultCPUs
	}
	if c.CPUModel == "" {
		c.CPUModel = DefaultCPUModel
	}
	if c.BootTimeout == 0 {
		c.BootTimeout = DefaultBootTimeout
	}
	if c.Logf == nil {
		c.Logf = func(string, ...any) {}
	}
	if n := len(filepath.Join(c.Dir, "qga.sock")); n > 107 {
		return nil, fmt.Errorf("qemuhost: %s: Dir too long for a unix socket path (%d bytes)", c.Name, n)
	}
	return &Host{c: c}, nil
}

func (h *Host) Name() string { return h.c.Name }
func (h *Host) IP() string   { return h.c.IP }

// Config is the host's configuration, defaults filled in.
func (h *Host) Config() Config { return h.c }

func (h *Host) sock() string { return filepath.Join(h.c.Dir, "qga.sock") }
func (h *Host) root() string { return filepath.Join(h.c.Dir, "root.img") }

// Boot makes the host's disks (a copy of the guest's base image; an ext4
// disk holding only bundle) and starts QEMU; it returns once the guest
// agent answers, i.e. systemd runs and Exec works. Firstboot runs on: see
// WaitFirstboot.
func (h *Host) Boot(ctx context.Context, bundle string) error {
	h.mu.Lock()
	booted := h.boots > 0
	h.mu.Unlock()
	if booted {
		return fmt.Errorf("qemuhost: %s: already booted (Reboot for a second boot)", h.c.Name)
	}
	if err := os.MkdirAll(h.c.Dir, 0o755); err != nil {
		return err
	}
	t0 := time.Now()
	if out, err := exec.CommandContext(ctx, "cp", "--sparse=always", filepath.Join(h.c.Guest, "base.img"), h.root()).CombinedOutput(); err != nil {
		return fmt.Errorf("qemuhost: %s: root disk: %v\n%s", h.c.Name, err, out)
	}
	if h.c.InstallOnHost {
		if err := h.installOnHost(ctx, bundle); err != nil {
			return err
		}
	} else if err := h.bundleDisk(ctx, bundle); err != nil {
		return err
	}
	h.c.Logf("%s: disks ready in %.1fs (bundle installed on the host: %v)", h.c.Name, time.Since(t0).Seconds(), h.c.InstallOnHost)
	return h.start(ctx)
}

// installScript is what kubebake-e2e-install does in the guest
// (scripts/e2e/qemu-guest.sh), done on the root disk from this machine:
// $1 the root disk, $2 the bundle.
const installScript = `set -eu
m=$(mktemp -d)
mount -o loop "$1" "$m"
trap 'umount "$m"; rmdir "$m"' EXIT
mkdir -p "$m/opt/kubebake"
tar xzf "$2" -C "$m/opt/kubebake"
cp "$m/opt/kubebake/rootfs/etc/systemd/system/kubebake-firstboot.service" "$m/etc/systemd/system/"
mkdir -p "$m/etc/systemd/system/multi-user.target.wants" "$m/var/lib/kubebake-e2e"
ln -sf /etc/systemd/system/kubebake-firstboot.service "$m/etc/systemd/system/multi-user.target.wants/"
date -u +%FT%T.%NZ >"$m/var/lib/kubebake-e2e/installed"
sync`

func (h *Host) installOnHost(ctx context.Context, bundle string) error {
	// A private mount namespace: the mount goes with the process even when
	// the test is killed.
	cmd := exec.CommandContext(ctx, "unshare", "-m", "--propagation", "private", "sh", "-c", installScript, "sh", h.root(), bundle)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("qemuhost: %s: install the bundle on the root disk: %v\n%s", h.c.Name, err, out)
	}
	return nil
}

// bundleDisk writes bundle.img: ext4 holding only the host's bundle, under
// its own name.
func (h *Host) bundleDisk(ctx context.Context, bundle string) error {
	fi, err := os.Stat(bundle)
	if err != nil {
		return fmt.Errorf("qemuhost: %s: bundle: %w", h.c.Name, err)
	}
	src := filepath.Join(h.c.Dir, "bundle")
	if err := os.RemoveAll(src); err != nil {
		return err
	}
	if err := os.MkdirAll(src, 0o755); err != nil {
		return err
	}
	defer os.RemoveAll(src)
	dst := filepath.Join(src, filepath.Base(bundle))
	if err := os.Link(bundle, dst); err != nil { // another filesystem: copy
		if out, err := exec.CommandContext(ctx, "cp", bundle, dst).CombinedOutput(); err != nil {
			return fmt.Errorf("qemuhost: %s: copy bundle: %v\n%s", h.c.Name, err, out)
		}
	}
	size := fi.Size()/(1<<20) + 32
	img := filepath.Join(h.c.Dir, "bundle.img")
	if out, err := exec.CommandContext(ctx, "mkfs.ext4", "-q", "-F", "-L", "KBBUNDLE", "-d", src, img, fmt.Sprintf("%dM", size)).CombinedOutput(); err != nil {
		return fmt.Errorf("qemuhost: %s: mkfs.ext4 bundle disk: %v\n%s", h.c.Name, err, out)
	}
	return nil
}

// cmdline is the guest's kernel command line: the image's, then the
// host's identity (scripts/e2e/qemu-guest.sh, kubebake-e2e-identity).
func (h *Host) cmdline() (string, error) {
	b, err := os.ReadFile(filepath.Join(h.c.Guest, "cmdline"))
	if err != nil {
		return "", err
	}
	pfx, err := netip.ParsePrefix(h.c.Network.CIDR)
	if err != nil {
		return "", fmt.Errorf("qemuhost: network CIDR %q: %w", h.c.Network.CIDR, err)
	}
	s := strings.TrimSpace(string(b)) +
		fmt.Sprintf(" kubebake.ip=%s/%d kubebake.hostname=%s", h.c.IP, pfx.Bits(), h.c.FQDN)
	if h.c.Network.Gateway != "" {
		s += " kubebake.gw=" + h.c.Network.Gateway
	}
	if len(h.c.DNS) > 0 {
		s += " kubebake.dns=" + strings.Join(h.c.DNS, ",")
	}
	if extra := os.Getenv("KUBEBAKE_E2E_QEMU_APPEND"); extra != "" { // e.g. systemd.journald.forward_to_console=1
		s += " " + extra
	}
	return s, nil
}

// start starts QEMU on the host's disks (boot number h.boots+1) and waits
// for the guest agent.
func (h *Host) start(ctx context.Context) error {
	appendLine, err := h.cmdline()
	if err != nil {
		return err
	}
	h.mu.Lock()
	if h.stopped {
		h.mu.Unlock()
		return fmt.Errorf("qemuhost: %s: stopped", h.c.Name)
	}
	h.boots++
	n := h.boots
	h.mu.Unlock()

	_ = os.Remove(h.sock())
	serial := filepath.Join(h.c.Dir, fmt.Sprintf("serial-%d.log", n))
	args := []string{"netns", "exec", h.c.Network.NS, "qemu-system-x86_64",
		"-name", h.c.Name,
		"-accel", "tcg,tb-size=256", "-cpu", h.c.CPUModel, "-m", strconv.Itoa(h.c.MemoryMB), "-smp", strconv.Itoa(h.c.CPUs),
		"-display", "none", "-monitor", "none", "-no-reboot",
		"-serial", "file:" + serial,
		"-kernel", filepath.Join(h.c.Guest, "vmlinux"), "-initrd", filepath.Join(h.c.Guest, "initramfs.cpio.gz"),
		"-append", appendLine,
		// cache=unsafe: the guest's flushes are not passed on to this
		// machine's disk. A raw image is written with plain pwrite, so all
		// the guest wrote is in the host's page cache and survives a kill
		// of QEMU (Reboot, Stop); only a crash of this machine would lose
		// it, and the bed does not outlive that anyway.
		"-drive", "file=" + h.root() + ",format=raw,if=none,id=root,cache=unsafe", "-device", "virtio-blk-pci,drive=root,serial=KBROOT",
		"-netdev", "tap,id=n0,ifname=" + h.c.Tap + ",script=no,downscript=no",
		"-device", "virtio-net-pci,netdev=n0,mac=" + h.c.MAC,
		"-chardev", "socket,path=" + h.sock() + ",server=on,wait=off,id=qga0",
		"-device", "virtio-serial", "-device", "virtserialport,chardev=qga0,name=org.qemu.guest_agent.0",
		"-device", "virtio-rng-pci",
	}
	if !h.c.InstallOnHost {
		args = append(args,
			"-drive", "file="+filepath.Join(h.c.Dir, "bundle.img")+",format=raw,if=none,id=bundle,readonly=on",
			"-device", "virtio-blk-pci,drive=bundle,serial=KBBUNDLE")
	}
	qlog, err := os.Create(filepath.Join(h.c.Dir, fmt.Sprintf("qemu-%d.log", n)))
	if err != nil {
		return err
	}
	cmd := exec.Command("ip", args...) // ip netns exec execs qemu: cmd's PID is QEMU's
	cmd.Stdout, cmd.Stderr = qlog, qlog
	// QEMU dies with the test binary even when Stop is never reached.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		qlog.Close()
		return fmt.Errorf("qemuhost: %s: start qemu: %w", h.c.Name, err)
	}
	exited := make(chan struct{})
	h.mu.Lock()
	h.cmd, h.exited, h.waitErr, h.started = cmd, exited, nil, time.Now()
	h.mu.Unlock()
	go func() {
		err := cmd.Wait()
		qlog.Close()
		h.mu.Lock()
		h.waitErr = err
		h.mu.Unlock()
		close(exited)
	}()
	h.c.Logf("%s: boot %d: qemu pid %d (TCG, -cpu %s -m %d -smp %d), serial log %s", h.c.Name, n, cmd.Process.Pid, h.c.CPUModel, h.c.MemoryMB, h.c.CPUs, serial)

	ctx, cancel := context.WithTimeout(ctx, h.c.BootTimeout)
	defer cancel()
	for {
		if err := h.alive(); err != nil {
			return err
		}
		h.agent.Lock()
		q, err := dialQGA(ctx, h.sock(), 3*time.Second)
		h.agent.Unlock()
		if err == nil {
			q.Close()
			h.c.Logf("%s: boot %d: guest agent answers %.1fs after qemu started", h.c.Name, n, time.Since(h.started).Seconds())
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("qemuhost: %s: boot %d: guest agent silent after %s (%v); serial log tail:\n%s",
				h.c.Name, n, h.c.BootTimeout, err, tail(serial, 30))
		case <-exited:
		case <-time.After(time.Second):
		}
	}
}

// alive is nil while the current QEMU runs.
func (h *Host) alive() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.exited == nil {
		return fmt.Errorf("qemuhost: %s: not booted", h.c.Name)
	}
	select {
	case <-h.exited:
		return fmt.Errorf("qemuhost: %s: qemu exited (%v); %s", h.c.Name, h.waitErr,
			tail(filepath.Join(h.c.Dir, fmt.Sprintf("qemu-%d.log", h.boots)), 10))
	default:
		return nil
	}
}

// PID is the current QEMU's process id, 0 when none runs.
func (h *Host) PID() int {
	if h.alive() != nil {
		return 0
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.cmd.Process.Pid
}

// Started is when the current QEMU was started.
func (h *Host) Started() time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.started
}

// RSS is the current QEMU's resident memory in bytes (VmRSS), 0 when none
// runs.
func (h *Host) RSS() int64 {
	pid := h.PID()
	if pid == 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			f := strings.Fields(v)
			if len(f) == 2 && f[1] == "kB" {
				kb, _ := strconv.ParseInt(f[0], 10, 64)
				return kb << 10
			}
		}
	}
	return 0
}

// Exec runs argv in the guest as root through the guest agent, stdout and
// stderr merged in order (sh -c 'exec "$@" 2>&1'). A command that does not
// exit 0 returns its output and an *ExitError. When ctx has a deadline the
// command runs under timeout(1) so it does not outlive it.
func (h *Host) Exec(ctx context.Context, argv ...string) ([]byte, error) {
	if len(argv) == 0 {
		return nil, errors.New("qemuhost: Exec: no command")
	}
	if err := h.alive(); err != nil {
		return nil, err
	}
	full := append([]string{"/bin/sh", "-c", `exec "$@" 2>&1`, "sh"}, argv...)
	if dl, ok := ctx.Deadline(); ok {
		secs := int(time.Until(dl).Seconds())
		if secs < 1 {
			return nil, fmt.Errorf("qemuhost: %s: %q: %w", h.c.Name, argv, context.DeadlineExceeded)
		}
		full = append([]string{"/usr/bin/timeout", "-k", "5", strconv.Itoa(secs)}, full...)
	}
	h.agent.Lock()
	defer h.agent.Unlock()
	// 45 s, not less: a TCG guest running a control plane has taken more
	// than 10 s to answer guest-sync, and a failed Exec there loses the
	// logs gathered after a failure.
	q, err := dialQGA(ctx, h.sock(), 45*time.Second)
	if err != nil {
		return nil, fmt.Errorf("qemuhost: %s: %w", h.c.Name, err)
	}
	defer q.Close()
	out, _, err := q.exec(ctx, full)
	var ee *ExitError
	if errors.As(err, &ee) {
		ee.Argv = argv
	}
	if err != nil {
		return out, fmt.Errorf("qemuhost: %s: %w", h.c.Name, err)
	}
	return out, nil
}

// FirstbootState is what WaitFirstboot reads from the guest.
type FirstbootState struct {
	ActiveState, SubState, Result, ExecMainStatus string
	Install                                       string // kubebake-e2e-install.service's ActiveState
	Done                                          bool   // /var/lib/kubebake/done exists
	Last                                          string // firstboot's last journal line
}

const stateScript = `systemctl show kubebake-firstboot.service -p ActiveState,SubState,Result,ExecMainStatus
echo "Install=$(systemctl show -P ActiveState kubebake-e2e-install.service)"
if test -e /var/lib/kubebake/done; then echo Done=yes; else echo Done=no; fi
echo "Last=$(journalctl -u kubebake-firstboot.service -b -n 1 -o cat --no-pager 2>/dev/null | tail -n 1)"`

// FirstbootState reads the firstboot unit's state, the done marker and the
// unit's last journal line.
func (h *Host) FirstbootState(ctx context.Context) (FirstbootState, error) {
	out, err := h.Exec(ctx, "/bin/sh", "-c", stateScript)
	if err != nil {
		return FirstbootState{}, fmt.Errorf("%w\n%s", err, out)
	}
	var s FirstbootState
	for _, l := range strings.Split(string(out), "\n") {
		k, v, _ := strings.Cut(l, "=")
		switch k {
		case "ActiveState":
			s.ActiveState = v
		case "SubState":
			s.SubState = v
		case "Result":
			s.Result = v
		case "ExecMainStatus":
			s.ExecMainStatus = v
		case "Install":
			s.Install = v
		case "Done":
			s.Done = v == "yes"
		case "Last":
			s.Last = v
		}
	}
	return s, nil
}

// WaitFirstboot polls the firstboot unit and the done marker until
// firstboot converged (done marker, unit not running: nil), failed (unit or
// the bundle's install failed: an error with the journal's tail) or timeout
// passed. Each new last journal line of firstboot is logged (Logf), so a
// wait shows where firstboot is.
func (h *Host) WaitFirstboot(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last FirstbootState
	for {
		if err := h.alive(); err != nil {
			return err
		}
		pctx, pcancel := context.WithTimeout(ctx, 30*time.Second)
		s, err := h.FirstbootState(pctx)
		pcancel()
		switch {
		case err != nil:
			h.c.Logf("%s: firstboot state: %v", h.c.Name, err)
		case s.Done && s.ActiveState != "activating":
			h.c.Logf("%s: firstboot done (%s/%s, %.0fs after qemu started)", h.c.Name, s.ActiveState, s.Result, time.Since(h.Started()).Seconds())
			return nil
		case s.ActiveState == "failed" || s.Install == "failed":
			j, _ := h.Exec(ctx, "journalctl", "-u", "kubebake-e2e-install.service", "-u", "kubebake-firstboot.service", "-b", "-n", "60", "--no-pager", "-o", "short-monotonic")
			return fmt.Errorf("qemuhost: %s: firstboot failed (unit %s/%s, status %s; install %s):\n%s",
				h.c.Name, s.ActiveState, s.Result, s.ExecMainStatus, s.Install, j)
		default:
			if s != last {
				h.c.Logf("%s: firstboot %s/%s (install %s) +%.0fs: %s", h.c.Name, s.ActiveState, s.SubState, s.Install,
					time.Since(h.Started()).Seconds(), s.Last)
				last = s
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("qemuhost: %s: firstboot not done after %s: unit %s/%s, install %s, last line: %s",
				h.c.Name, timeout, last.ActiveState, last.SubState, last.Install, last.Last)
		case <-time.After(3 * time.Second):
		}
	}
}

// WaitUnit waits until unit's ActiveState is one of states (e.g.
// "activating", "active") and returns it. The driver uses it to order
// hosts across the bed: etcd's start job (Type=notify) waits for quorum for
// at most firstboot's start timeout (5 min), so the etcd members that boot
// fast (nspawn) start once the QEMU members' firstboot reached etcd.
func (h *Host) WaitUnit(ctx context.Context, unit string, timeout time.Duration, states ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last string
	for {
		if err := h.alive(); err != nil {
			return "", err
		}
		pctx, pcancel := context.WithTimeout(ctx, 30*time.Second)
		out, err := h.Exec(pctx, "systemctl", "show", "-P", "ActiveState", unit)
		pcancel()
		if err == nil {
			last = strings.TrimSpace(string(out))
			for _, s := range states {
				if last == s {
					return last, nil
				}
			}
		}
		select {
		case <-ctx.Done():
			return last, fmt.Errorf("qemuhost: %s: %s is %q after %s, want one of %q", h.c.Name, unit, last, timeout, states)
		case <-time.After(3 * time.Second):
		}
	}
}

// Reboot syncs the guest's disks (journal and filesystems), kills QEMU by
// PID — a guest poweroff takes ~95 s under TCG — and boots the same root
// disk again; like Boot it returns once the guest agent answers.
func (h *Host) Reboot(ctx context.Context) error {
	sctx, cancel := context.WithTimeout(ctx, time.Minute)
	out, err := h.Exec(sctx, "/bin/sh", "-c", "journalctl --sync; sync")
	cancel()
	if err != nil {
		h.c.Logf("%s: sync before the reboot: %v\n%s", h.c.Name, err, out)
	}
	if err := h.kill(); err != nil {
		return err
	}
	return h.start(ctx)
}

// kill kills the current QEMU by PID and waits for it.
func (h *Host) kill() error {
	h.mu.Lock()
	cmd, exited := h.cmd, h.exited
	h.mu.Unlock()
	if cmd == nil {
		return nil
	}
	select {
	case <-exited:
		return nil
	default:
	}
	_ = cmd.Process.Kill()
	select {
	case <-exited:
		return nil
	case <-time.After(15 * time.Second):
		return fmt.Errorf("qemuhost: %s: qemu pid %d still running 15s after SIGKILL", h.c.Name, cmd.Process.Pid)
	}
}

// Stop kills QEMU by PID; safe to call twice. The host's directory (disks,
// logs) stays.
func (h *Host) Stop() error {
	h.mu.Lock()
	h.stopped = true
	h.mu.Unlock()
	return h.kill()
}

// Logs copies into dir (one host's directory) the serial console and QEMU's
// output of every boot and, while the guest runs, through the guest agent:
// firstboot.log (the journal of the install, identity and firstboot units,
// all boots), firstboot-status.txt, units.txt (the bundle's units, failed
// units) and journal-<unit>.log for every failed unit and every bundle unit
// not active.
func (h *Host) Logs(ctx context.Context, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var errs []error
	files, _ := filepath.Glob(filepath.Join(h.c.Dir, "serial-*.log"))
	more, _ := filepath.Glob(filepath.Join(h.c.Dir, "qemu-*.log"))
	for _, f := range append(files, more...) {
		if err := copyFile(f, filepath.Join(dir, filepath.Base(f))); err != nil {
			errs = append(errs, err)
		}
	}
	if err := h.alive(); err != nil {
		errs = append(errs, fmt.Errorf("%s: no guest logs: %w", h.c.Name, err))
		return errors.Join(errs...)
	}
	save := func(name string, argv ...string) []byte {
		c, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		out, err := h.Exec(c, argv...)
		if err != nil {
			out = append(out, fmt.Sprintf("\n# %v\n", err)...)
		}
		if werr := os.WriteFile(filepath.Join(dir, name), out, 0o644); werr != nil {
			errs = append(errs, werr)
		}
		return out
	}
	save("firstboot.log", "journalctl", "-u", "kubebake-e2e-identity.service", "-u", "kubebake-e2e-install.service",
		"-u", "kubebake-firstboot.service", "--no-pager", "-o", "short-monotonic")
	save("firstboot-status.txt", "/opt/kubebake/firstboot", "status", "--bundle", "/opt/kubebake")
	save("units.txt", "/bin/sh", "-c", `systemctl list-units --all --no-pager 'kube*' 'etcd*' 'flannel*' 'containerd*'; echo; systemctl --failed --no-pager`)
	list := save("units-to-log.txt", "/bin/sh", "-c", `{ systemctl --failed --no-legend --plain | awk '{print $1}'
for f in /opt/kubebake/rootfs/etc/systemd/system/*.service; do
	[ -e "$f" ] || continue
	u=$(basename "$f"); [ "$(systemctl is-active "$u")" = active ] || echo "$u"
done; } | sort -u`)
	for _, u := range strings.Fields(string(list)) {
		if !strings.HasSuffix(u, ".service") || strings.ContainsAny(u, "/ ") {
			continue
		}
		save("journal-"+u+".log", "journalctl", "-u", u, "-b", "-n", "300", "--no-pager", "-o", "short-monotonic")
	}
	return errors.Join(errs...)
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// tail is the last n lines of the file at path.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// BuildGuest runs scripts/e2e/qemu-guest.sh (cached; the first build takes
// ~1–2 min and needs deb.debian.org) from the repository at repoRoot and
// returns the guest's directory.
func BuildGuest(ctx context.Context, repoRoot string) (string, error) {
	cmd := exec.CommandContext(ctx, "bash", filepath.Join(repoRoot, "scripts/e2e/qemu-guest.sh"))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("scripts/e2e/qemu-guest.sh: %v\n%s", err, stderr.String())
	}
	for _, l := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(l, "KUBEBAKE_E2E_GUEST_DIR="); ok {
			return v, nil
		}
	}
	return "", fmt.Errorf("scripts/e2e/qemu-guest.sh printed no KUBEBAKE_E2E_GUEST_DIR:\n%s\n%s", out, stderr.String())
}

// FromSpec is the Config of the spec's host name: its IP, first MAC, FQDN
// (kickstart's --hostname) and the resolvers kickstart writes (pxe.dnsServers,
// else cluster.dnsServers); the rest as given.
func FromSpec(s *spec.Spec, name string, network bed.Network, tap, guest, dir string) (Config, error) {
	for _, hs := range s.Hosts {
		if hs.Name != name {
			continue
		}
		if len(hs.MACs) == 0 {
			return Config{}, fmt.Errorf("qemuhost: spec host %s has no MAC", name)
		}
		dns := s.Cluster.DNSServers
		if s.PXE != nil && len(s.PXE.DNSServers) > 0 {
			dns = s.PXE.DNSServers
		}
		return Config{
			Name: hs.Name, IP: hs.IP, MAC: hs.MACs[0], FQDN: s.FQDN(hs),
			DNS: dns, Network: network, Tap: tap, Guest: guest, Dir: dir,
		}, nil
	}
	return Config{}, fmt.Errorf("qemuhost: no host %s in the spec", name)
}
