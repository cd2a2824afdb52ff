// Package nspawnhost is a bed.Host on systemd-nspawn: a real systemd
// (Debian bookworm's 252) booted from the shared root file system that
// scripts/e2e/rootfs.sh builds, at native speed. It suits the hosts whose
// roles need no kernel module this machine's kernel lacks: lb, dns, etcd,
// ops (the seed's hdss7-11, hdss7-12, hdss7-200). Nodes need ip_vs: they
// run under QEMU (e2e/qemuhost).
//
// Each host has:
//   - its own network namespace kb-<host> (bed.Network.AddPort: eth0 with
//     the spec's IP and MAC, default route via the gateway, a veth to the
//     bridge), which the container joins with --network-namespace-path;
//     the namespace outlives the container's reboots;
//   - its own overlay: the shared rootfs as the read-only lower layer and a
//     per-host upper directory kept across the host's two boots (a fresh
//     one at each Boot);
//   - its own cgroup in every hierarchy (kb-e2e-<host> under the test's
//     own cgroups): the launcher moves itself in before it execs
//     systemd-nspawn, so the hosts' systemds never share a cgroup tree, and
//     Stop kills whatever is left in it;
//   - a console log: nspawn runs under `script -qfec` (a pseudo-terminal; its
//     console shows nothing without one), one file per boot.
//
// The bundle goes in as kickstart's %post puts it: before the first boot,
// on the host's own file system (the overlay mounted by the bed), tar -xzf
// into /opt/kubebake, kubebake-firstboot.service copied into
// /etc/systemd/system and enabled (systemctl --root). firstboot does the
// rest at boot. So does the installer's part the bed plays: /etc/hostname
// (the FQDN), /etc/hosts, /etc/resolv.conf (the spec's dnsServers) and a
// machine ID.
//
// Exec enters the container's namespaces with nsenter on its PID 1 (found
// among the launcher's descendants: nspawn runs with --register=no, so
// there is no machined to ask).
package nspawnhost

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/kubebake/kubebake/e2e/bed"
)

// Config describes one host.
type Config struct {
	Name string // hdss7-11
	IP   string // 10.4.7.11
	MAC  string // the spec's first MAC, optional
	// FQDN is /etc/hostname (hdss7-11.host.com); Name when empty.
	FQDN string
	// DNS are /etc/resolv.conf's nameservers (the spec's dnsServers).
	DNS []string
	// Rootfs is the shared lower layer (scripts/e2e/rootfs.sh).
	Rootfs string
	// Dir holds the host's upper layer, overlay work dir, mount point,
	// console logs and PID file; created when missing.
	Dir string
	// Net is the bridge network the host joins.
	Net bed.Network
	// Ifname is the host's interface (the spec's cluster.vipInterface);
	// eth0 when empty.
	Ifname string
	// StopTimeout bounds a clean poweroff before SIGKILL (default 30 s).
	StopTimeout time.Duration
}

// Host is a systemd-nspawn container; see the package comment.
type Host struct {
	cfg Config

	mu      sync.Mutex
	bundle  string
	boots   int
	cmd     *exec.Cmd
	exited  chan struct{}
	leader  int // the container's PID 1, as seen from here
	cgroups []string
	mounted bool
	netUp   bool
	started time.Time
}

var _ bed.Host = (*Host)(nil)

// New returns a host; nothing runs until Boot.
func New(cfg Config) *Host {
	if cfg.Ifname == "" {
		cfg.Ifname = "eth0"
	}
	if cfg.FQDN == "" {
		cfg.FQDN = cfg.Name
	}
	if cfg.StopTimeout == 0 {
		cfg.StopTimeout = 30 * time.Second
	}
	return &Host{cfg: cfg}
}

func (h *Host) Name() string { return h.cfg.Name }
func (h *Host) IP() string   { return h.cfg.IP }

// NetNS is the host's network namespace (/run/netns/<NetNS>): the site's
// services the bed runs for this host (the ops host's Harbor) join it.
func (h *Host) NetNS() string { return "kb-" + h.cfg.Name }

// Started is when the current boot's launcher started.
func (h *Host) Started() time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.started
}

func (h *Host) upper() string  { return filepath.Join(h.cfg.Dir, "upper") }
func (h *Host) work() string   { return filepath.Join(h.cfg.Dir, "work") }
func (h *Host) merged() string { return filepath.Join(h.cfg.Dir, "merged") }
func (h *Host) pidFile() string {
	return filepath.Join(h.cfg.Dir, "launcher.pid")
}
func (h *Host) cgroupName() string { return "kb-e2e-" + h.cfg.Name }

// Boot cleans up whatever a crashed run left under the same names (its
// processes, by the host's cgroups; its mount; its namespace), makes a
// fresh upper layer and network namespace, installs the bundle as %post
// would and starts the container.
func (h *Host) Boot(ctx context.Context, bundle string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.cmd != nil {
		return fmt.Errorf("%s: already running", h.cfg.Name)
	}
	if _, err := os.Stat(filepath.Join(h.cfg.Rootfs, "sbin", "init")); err != nil {
		return fmt.Errorf("%s: rootfs %s: %w (scripts/e2e/rootfs.sh builds it)", h.cfg.Name, h.cfg.Rootfs, err)
	}
	bundle, err := filepath.Abs(bundle)
	if err != nil {
		return err
	}
	if err := h.cleanupLocked(); err != nil {
		return fmt.Errorf("%s: cleaning up a previous run: %w", h.cfg.Name, err)
	}
	for _, d := range []string{h.upper(), h.work()} {
		if err := os.RemoveAll(d); err != nil {
			return err
		}
	}
	for _, d := range []string{h.upper(), h.work(), h.merged()} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	if err := h.cfg.Net.AddPort(ctx, bed.Port{
		NetNS: h.NetNS(), Ifname: h.cfg.Ifname, Peer: vethName(h.cfg.Name), IP: h.cfg.IP, MAC: h.cfg.MAC,
	}); err != nil {
		return err
	}
	h.netUp = true
	if err := h.mountLocked(ctx); err != nil {
		return err
	}
	if err := h.install(ctx, bundle); err != nil {
		return fmt.Errorf("%s: installing the bundle as %%post would: %w", h.cfg.Name, err)
	}
	h.bundle = bundle
	return h.startLocked(ctx)
}

// vethName is the bridge-side end of a host's veth: vb-<name>, cut to 15
// bytes with a hash suffix when longer.
func vethName(name string) string {
	n := "vb-" + name
	if len(n) <= 15 {
		return n
	}
	s := sha256.Sum256([]byte(name))
	return n[:10] + hex.EncodeToString(s[:])[:5]
}

func (h *Host) mountLocked(ctx context.Context) error {
	if h.mounted {
		return nil
	}
	opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", h.cfg.Rootfs, h.upper(), h.work())
	if _, err := bed.Run(ctx, "mount", "-t", "overlay", "overlay", "-o", opts, h.merged()); err != nil {
		return err
	}
	h.mounted = true
	return nil
}

// install writes what the installer and kickstart's %post leave on a host.
func (h *Host) install(ctx context.Context, bundle string) error {
	m := h.merged()
	write := func(rel, data string, mode os.FileMode) error {
		p := filepath.Join(m, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		_ = os.Remove(p) // a symlink into the lower layer (resolv.conf) is replaced, not followed
		return os.WriteFile(p, []byte(data), mode)
	}
	short, _, _ := strings.Cut(h.cfg.FQDN, ".")
	mid := sha256.Sum256([]byte("kubebake-e2e " + h.cfg.Name))
	var resolv strings.Builder
	for _, ns := range h.cfg.DNS {
		fmt.Fprintf(&resolv, "nameserver %s\n", ns)
	}
	for _, f := range []struct {
		rel, data string
	}{
		{"etc/hostname", h.cfg.FQDN + "\n"},
		{"etc/hosts", fmt.Sprintf("127.0.0.1 localhost localhost.localdomain\n%s %s %s\n", h.cfg.IP, h.cfg.FQDN, short)},
		{"etc/resolv.conf", resolv.String()},
		{"etc/machine-id", hex.EncodeToString(mid[:16]) + "\n"},
	} {
		if err := write(f.rel, f.data, 0o644); err != nil {
			return err
		}
	}
	// %post: mkdir -p /opt/kubebake && tar xzf <bundle> -C /opt/kubebake;
	// cp …/kubebake-firstboot.service /etc/systemd/system; systemctl enable.
	dst := filepath.Join(m, "opt", "kubebake")
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	if _, err := bed.Run(ctx, "tar", "-xzf", bundle, "-C", dst); err != nil {
		return err
	}
	unit, err := os.ReadFile(filepath.Join(dst, "rootfs", "etc", "systemd", "system", "kubebake-firstboot.service"))
	if err != nil {
		return err
	}
	if err := write("etc/systemd/system/kubebake-firstboot.service", string(unit), 0o644); err != nil {
		return err
	}
	_, err = bed.Run(ctx, "systemctl", "--root="+m, "enable", "kubebake-firstboot.service")
	return err
}

// cgroupDirs returns, for every cgroup hierarchy this process is in, the
// directory of the host's own cgroup under this process's cgroup there.
func (h *Host) cgroupDirs() ([]string, error) {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return nil, err
	}
	pureV2 := false
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		pureV2 = true
	}
	var dirs []string
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.SplitN(l, ":", 3)
		if len(f) != 3 {
			continue
		}
		var mnt string
		switch {
		case f[1] == "" && pureV2:
			mnt = "/sys/fs/cgroup"
		case f[1] == "":
			mnt = "/sys/fs/cgroup/unified"
		case strings.HasPrefix(f[1], "name="):
			mnt = "/sys/fs/cgroup/" + strings.TrimPrefix(f[1], "name=")
		default:
			mnt = "/sys/fs/cgroup/" + f[1]
		}
		if _, err := os.Stat(mnt); err != nil {
			continue // a hierarchy not mounted where Debian mounts it
		}
		dirs = append(dirs, filepath.Join(mnt, f[2], h.cgroupName()))
	}
	if len(dirs) == 0 {
		return nil, errors.New("no cgroup hierarchy found in /proc/self/cgroup")
	}
	return dirs, nil
}

func (h *Host) makeCgroups() ([]string, error) {
	dirs, err := h.cgroupDirs()
	if err != nil {
		return nil, err
	}
	var procs []string
	for _, d := range dirs {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
		// A new v1 cpuset cgroup has no CPUs or memory nodes: no task
		// could join it. Take the parent's.
		for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
			if _, err := os.Stat(filepath.Join(d, f)); err != nil {
				continue
			}
			if cur, _ := os.ReadFile(filepath.Join(d, f)); len(bytes.TrimSpace(cur)) > 0 {
				continue
			}
			v, err := os.ReadFile(filepath.Join(filepath.Dir(d), f))
			if err != nil {
				return nil, err
			}
			if err := os.WriteFile(filepath.Join(d, f), v, 0o644); err != nil {
				return nil, fmt.Errorf("%s: %w", filepath.Join(d, f), err)
			}
		}
		procs = append(procs, filepath.Join(d, "cgroup.procs"))
	}
	h.cgroups = dirs
	return procs, nil
}

// nspawnArgs is the container's command line. Only what the roles need:
// CAP_NET_ADMIN (keepalived adds the VIP; firstboot's iptables step),
// the host's own network namespace, and no host files copied in (the bed
// wrote resolv.conf and the time zone stays the rootfs's UTC).
func (h *Host) nspawnArgs() []string {
	return []string{
		"systemd-nspawn", "--boot", "--quiet",
		"--directory=" + h.merged(),
		"--machine=" + h.cfg.Name,
		"--register=no", "--keep-unit",
		"--network-namespace-path=/run/netns/" + h.NetNS(),
		"--capability=CAP_NET_ADMIN",
		"--resolv-conf=off", "--timezone=off", "--link-journal=no",
		"--setenv=KUBEBAKE_E2E_HOST=" + h.cfg.Name,
	}
}

// launcher is the shell that moves itself into the host's cgroups and then
// execs script(1), which runs nspawn on a pseudo-terminal and writes the
// console to the log. "kubebake-e2e-nspawn" in its command line marks it.
const launcher = `for f; do echo $$ >"$f" || exit 97; done; exec script -qfec "$KB_NSPAWN" "$KB_CONSOLE"`

func (h *Host) startLocked(ctx context.Context) error {
	procs, err := h.makeCgroups()
	if err != nil {
		return fmt.Errorf("%s: cgroups: %w", h.cfg.Name, err)
	}
	h.boots++
	console := filepath.Join(h.cfg.Dir, fmt.Sprintf("console-%d.log", h.boots))
	var q []string
	for _, a := range h.nspawnArgs() {
		q = append(q, shellQuote(a))
	}
	cmd := exec.Command("sh", append([]string{"-c", launcher, "kubebake-e2e-nspawn"}, procs...)...)
	cmd.Env = append(os.Environ(), "KB_NSPAWN="+strings.Join(q, " "), "KB_CONSOLE="+console, "SYSTEMD_LOG_LEVEL=info")
	cmd.Dir = h.cfg.Dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// script(1) copies its stdin to the console: an open pipe nobody
	// writes keeps it from seeing EOF (which it would pass on as ^D).
	pr, pw, err := os.Pipe()
	if err != nil {
		return err
	}
	cmd.Stdin = pr
	if err := cmd.Start(); err != nil {
		pr.Close()
		pw.Close()
		return fmt.Errorf("%s: starting the launcher: %w", h.cfg.Name, err)
	}
	pr.Close()
	h.started = time.Now()
	_ = os.WriteFile(h.pidFile(), []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o644)
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		pw.Close()
		close(exited)
	}()
	h.cmd, h.exited = cmd, exited

	// The container's PID 1: a descendant of the launcher whose PID is 1 in
	// its own PID namespace.
	deadline := time.Now().Add(30 * time.Second)
	for {
		if pid := containerInit(cmd.Process.Pid); pid > 0 {
			h.leader = pid
			return nil
		}
		select {
		case <-exited:
			h.cmd = nil
			return fmt.Errorf("%s: systemd-nspawn exited at once (%v); console %s:\n%s", h.cfg.Name, cmd.ProcessState, console, tail(console, 30))
		case <-ctx.Done():
			_ = h.stopLocked()
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = h.stopLocked()
			return fmt.Errorf("%s: no container init 30 s after start; console %s:\n%s", h.cfg.Name, console, tail(console, 30))
		}
	}
}

// containerInit finds, among root's descendants, a process that is PID 1 of
// its own PID namespace (NSpid: <pid> … 1); 0 when there is none yet.
func containerInit(root int) int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	parent := map[int]int{}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid …; comm may hold spaces and parentheses.
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) < 2 {
			continue
		}
		pp, _ := strconv.Atoi(f[1])
		parent[pid] = pp
	}
	for pid := range parent {
		anc, ok := pid, false
		for i := 0; i < 64 && anc > 1; i++ {
			anc = parent[anc]
			if anc == root {
				ok = true
				break
			}
		}
		if !ok {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "NSpid:"); ok {
				f := strings.Fields(v)
				if len(f) >= 2 && f[len(f)-1] == "1" {
					return pid
				}
			}
		}
	}
	return 0
}

// Exec runs argv in the container: every namespace of its PID 1 (mount,
// UTS, IPC, network, PID, cgroup; root and working directory), a clean
// environment. Its combined output is returned.
func (h *Host) Exec(ctx context.Context, argv ...string) ([]byte, error) {
	h.mu.Lock()
	leader := h.leader
	running := h.cmd != nil
	h.mu.Unlock()
	if !running || leader == 0 {
		return nil, fmt.Errorf("%s: not running", h.cfg.Name)
	}
	full := append([]string{
		"nsenter", "--target", strconv.Itoa(leader), "--mount", "--uts", "--ipc", "--net", "--pid", "--cgroup",
		"--root", "--wd", "--",
		"/usr/bin/env", "-i", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8",
		"SYSTEMD_PAGER=", "SYSTEMD_COLORS=0", "HOME=/root",
	}, argv...)
	cmd := exec.CommandContext(ctx, full[0], full[1:]...)
	var b bytes.Buffer
	cmd.Stdout, cmd.Stderr = &b, &b
	err := cmd.Run()
	if err != nil {
		return b.Bytes(), fmt.Errorf("%s: %s: %w", h.cfg.Name, strings.Join(argv, " "), err)
	}
	return b.Bytes(), nil
}

// Unit is what systemctl show says about a unit.
type Unit map[string]string

// ShowUnit reads a unit's properties (systemctl show).
func (h *Host) ShowUnit(ctx context.Context, unit string, props ...string) (Unit, error) {
	return bed.ShowUnit(ctx, h, unit, props...)
}

// ErrFirstbootFailed is returned by WaitFirstboot when the unit failed.
var ErrFirstbootFailed = errors.New("kubebake-firstboot.service failed")

// WaitFirstboot polls kubebake-firstboot.service (systemctl show, through
// Exec) until it has finished: nil when it succeeded and the done marker
// exists, or when its condition skipped it on a host already done (a
// second boot); an error with the unit's last journal lines when it
// failed; ctx's or the timeout's error otherwise.
func (h *Host) WaitFirstboot(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last Unit
	var lastErr error
	for {
		u, err := h.ShowUnit(ctx, "kubebake-firstboot.service",
			"ActiveState", "SubState", "Result", "ExecMainStatus", "ConditionResult", "ConditionTimestampMonotonic",
			"UnitFileState", "ExecMainStartTimestampMonotonic")
		switch {
		case err != nil:
			lastErr = err // systemd not up yet
		case u["ActiveState"] == "failed":
			j, _ := h.Exec(context.Background(), "journalctl", "-u", "kubebake-firstboot.service", "-b", "--no-pager", "-n", "40", "-o", "short-monotonic")
			return fmt.Errorf("%s: %w (status %s):\n%s", h.cfg.Name, ErrFirstbootFailed, u["ExecMainStatus"], j)
		case u["ActiveState"] == "active" && u["Result"] == "success",
			u["ActiveState"] == "inactive" && u["ConditionResult"] == "no" && u["ConditionTimestampMonotonic"] != "0":
			if _, err := h.Exec(ctx, "test", "-f", "/var/lib/kubebake/done"); err != nil {
				return fmt.Errorf("%s: kubebake-firstboot.service %s/%s but no done marker", h.cfg.Name, u["ActiveState"], u["SubState"])
			}
			return nil
		case u["ActiveState"] == "inactive" && u["UnitFileState"] != "enabled" && u["ExecMainStartTimestampMonotonic"] == "0" && h.booted(ctx):
			// firstboot's finish step disabled its own unit: on a later
			// boot nothing starts it. Done when the marker is there.
			if _, err := h.Exec(ctx, "test", "-f", "/var/lib/kubebake/done"); err != nil {
				return fmt.Errorf("%s: kubebake-firstboot.service %s and never started this boot, but no done marker", h.cfg.Name, u["UnitFileState"])
			}
			return nil
		default:
			last = u
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: firstboot not finished after %s (last seen %v, %v): %w", h.cfg.Name, timeout, last, lastErr, ctx.Err())
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// booted reports whether the container's systemd finished booting (no
// start-up jobs left: running or degraded).
func (h *Host) booted(ctx context.Context) bool {
	out, _ := h.Exec(ctx, "systemctl", "is-system-running")
	s := strings.TrimSpace(string(out))
	return s == "running" || s == "degraded"
}

// Reboot powers the container off cleanly and boots it again on the same
// upper layer and network namespace: a second boot.
func (h *Host) Reboot(ctx context.Context) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.bundle == "" {
		return fmt.Errorf("%s: never booted", h.cfg.Name)
	}
	if err := h.haltLocked(); err != nil {
		return err
	}
	return h.startLocked(ctx)
}

// Logs copies the console logs, firstboot's journal of every boot, the
// failed units and their journals, firstboot status and the whole journal
// into dir. A stopped host's journal is read from its upper layer.
func (h *Host) Logs(ctx context.Context, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var errs []error
	consoles, _ := filepath.Glob(filepath.Join(h.cfg.Dir, "console-*.log"))
	for _, c := range consoles {
		b, err := os.ReadFile(c)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		errs = append(errs, os.WriteFile(filepath.Join(dir, filepath.Base(c)), b, 0o644))
	}
	h.mu.Lock()
	running := h.cmd != nil
	h.mu.Unlock()
	save := func(name string, argv ...string) {
		var out []byte
		var err error
		if running {
			out, err = h.Exec(ctx, argv...)
		} else {
			jd := filepath.Join(h.upper(), "var", "log", "journal")
			if argv[0] != "journalctl" {
				return
			}
			out, err = bed.Run(ctx, append([]string{"journalctl", "--directory=" + jd}, argv[1:]...)...)
		}
		if err != nil {
			out = append(out, []byte("\n# "+err.Error()+"\n")...)
		}
		errs = append(errs, os.WriteFile(filepath.Join(dir, name), out, 0o644))
	}
	save("firstboot.journal", "journalctl", "-u", "kubebake-firstboot.service", "--no-pager", "-o", "short-monotonic")
	save("network-unit.journal", "journalctl", "-u", "kubebake-network.service", "--no-pager", "-o", "short-monotonic")
	save("journal.txt", "journalctl", "--no-pager", "-o", "short-monotonic")
	save("firstboot-status.txt", "/opt/kubebake/firstboot", "status", "--bundle", "/opt/kubebake")
	save("failed-units.txt", "systemctl", "--failed", "--no-legend", "--no-pager")
	if running {
		out, _ := h.Exec(ctx, "systemctl", "--failed", "--no-legend", "--plain", "--no-pager")
		for _, l := range strings.Split(string(out), "\n") {
			f := strings.Fields(l)
			if len(f) == 0 {
				continue
			}
			save("failed-"+f[0]+".journal", "journalctl", "-u", f[0], "--no-pager", "-o", "short-monotonic")
		}
	}
	return errors.Join(errs...)
}

// Stop powers the container off (SIGTERM to nspawn: a clean poweroff of the
// container's systemd, SIGKILL after StopTimeout), kills whatever is left
// in the host's cgroups, unmounts its overlay and deletes its network
// namespace. The upper layer stays for a human. Safe to call twice.
func (h *Host) Stop() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.stopLocked()
}

func (h *Host) stopLocked() error {
	var errs []error
	errs = append(errs, h.haltLocked())
	errs = append(errs, h.cleanupLocked())
	return errors.Join(errs...)
}

// haltLocked stops the container and everything in its cgroups.
func (h *Host) haltLocked() error {
	if h.cmd != nil {
		pgid := h.cmd.Process.Pid
		// nspawn turns SIGTERM into a poweroff request to the container's
		// systemd; the launcher shell exec'd script, which forwards it.
		nspawn := 0
		if h.leader > 0 {
			nspawn = ppid(h.leader)
		}
		if nspawn > 0 {
			_ = syscall.Kill(nspawn, syscall.SIGTERM)
		} else {
			_ = syscall.Kill(-pgid, syscall.SIGTERM)
		}
		select {
		case <-h.exited:
		case <-time.After(h.cfg.StopTimeout):
			if h.leader > 0 {
				_ = syscall.Kill(h.leader, syscall.SIGKILL) // the whole PID namespace goes with it
			}
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			select {
			case <-h.exited:
			case <-time.After(10 * time.Second):
			}
		}
		h.cmd, h.leader = nil, 0
	}
	return h.killCgroups()
}

// cleanupLocked removes what a run leaves behind: processes in the host's
// cgroups (a crashed run's container), the cgroups, the overlay mount and
// the network namespace.
func (h *Host) cleanupLocked() error {
	var errs []error
	errs = append(errs, h.killCgroups())
	_ = os.Remove(h.pidFile())
	if isMountpoint(h.merged()) {
		if _, err := bed.Run(context.Background(), "umount", h.merged()); err != nil {
			if _, err2 := bed.Run(context.Background(), "umount", "-l", h.merged()); err2 != nil {
				errs = append(errs, err)
			}
		}
	}
	h.mounted = false
	if err := bed.DeleteNetNS(context.Background(), h.NetNS()); err != nil {
		errs = append(errs, err)
	}
	h.netUp = false
	return errors.Join(errs...)
}

// killCgroups SIGKILLs every process in the host's cgroups (all
// hierarchies, sub-cgroups included) until none is left, then removes the
// cgroups, deepest first.
func (h *Host) killCgroups() error {
	dirs, err := h.cgroupDirs()
	if err != nil {
		return err
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		n := 0
		for _, d := range dirs {
			_ = filepath.WalkDir(d, func(p string, e os.DirEntry, err error) error {
				if err != nil || !e.IsDir() {
					return nil
				}
				b, _ := os.ReadFile(filepath.Join(p, "cgroup.procs"))
				for _, f := range strings.Fields(string(b)) {
					if pid, err := strconv.Atoi(f); err == nil && pid != os.Getpid() {
						_ = syscall.Kill(pid, syscall.SIGKILL)
						n++
					}
				}
				return nil
			})
		}
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: processes left in %v after SIGKILL", h.cfg.Name, dirs)
		}
		time.Sleep(100 * time.Millisecond)
	}
	var errs []error
	for _, d := range dirs {
		var sub []string
		_ = filepath.WalkDir(d, func(p string, e os.DirEntry, err error) error {
			if err == nil && e.IsDir() {
				sub = append(sub, p)
			}
			return nil
		})
		for i := len(sub) - 1; i >= 0; i-- {
			if err := os.Remove(sub[i]); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
		}
	}
	h.cgroups = nil
	return errors.Join(errs...)
}

func ppid(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 2 {
		return 0
	}
	p, _ := strconv.Atoi(f[1])
	return p
}

func isMountpoint(p string) bool {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) > 4 && f[4] == p {
			return true
		}
	}
	return false
}

func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r == '-' || r == '_' || r == '=' || r == '/' || r == '.' || r == ':' || r == ',' || r == '+' ||
			(r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9'))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
