package steps

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/kubebake/kubebake/firstboot/engine"
	"github.com/kubebake/kubebake/firstboot/plan"
)

// ErrPreflight marks a host firstboot refuses to install on.
var ErrPreflight = errors.New("preflight refused")

// Preflight returns the preflight steps, in order: host identity, OS and
// kernel, SELinux, firewalld, swap, time. Each refuses (Check error) or,
// where the plan allows it, converges the host the way the seed does:
//
//   - preflight/host: some interface must hold host.ip, unless env.Force.
//   - preflight/os: /etc/os-release must match p.OS ("centos7" → ID=centos,
//     VERSION_ID=7 or 7.x) and uname -r must be >= p.MinKernel. ID=debian
//     is accepted with a "test bed" warning: the VM tests run on Debian.
//   - preflight/selinux: enforcing is refused unless p.DisableSELinux, which
//     runs setenforce 0 and writes SELINUX=disabled to /etc/selinux/config.
//   - preflight/firewalld: active is refused unless p.DisableFirewalld,
//     which stops and disables firewalld.service.
//   - preflight/swap: swap on is refused unless p.DisableSwap, which runs
//     swapoff -a and comments the swap lines of /etc/fstab.
//   - preflight/time: an unsynchronised clock is only a warning.
func Preflight(p plan.Preflight, h plan.Host) []engine.Step {
	mk := func(id string, check func(context.Context, *engine.Env) (engine.Status, error), apply func(context.Context, *engine.Env) error) engine.Step {
		return &preStep{id: "preflight/" + id, check: check, apply: apply}
	}
	return []engine.Step{
		mk("host", func(_ context.Context, env *engine.Env) (engine.Status, error) { return checkHost(env, h) }, nil),
		mk("os", func(_ context.Context, env *engine.Env) (engine.Status, error) { return checkOS(env, p) }, nil),
		mk("selinux", func(_ context.Context, env *engine.Env) (engine.Status, error) { return checkSELinux(env, p) },
			func(ctx context.Context, env *engine.Env) error { return applySELinux(ctx, env) }),
		mk("firewalld", func(ctx context.Context, env *engine.Env) (engine.Status, error) { return checkFirewalld(ctx, env, p) },
			func(ctx context.Context, env *engine.Env) error { return applyFirewalld(ctx, env) }),
		mk("swap", func(_ context.Context, env *engine.Env) (engine.Status, error) { return checkSwap(env, p) },
			func(ctx context.Context, env *engine.Env) error { return applySwap(ctx, env) }),
		mk("time", func(_ context.Context, env *engine.Env) (engine.Status, error) { return checkTime(env) }, nil),
	}
}

type preStep struct {
	id    string
	check func(context.Context, *engine.Env) (engine.Status, error)
	apply func(context.Context, *engine.Env) error
}

func (s *preStep) ID() string { return s.id }

func (s *preStep) Check(ctx context.Context, env *engine.Env) (engine.Status, error) {
	if env.Probe == nil {
		return engine.Status{}, errors.New("no host probe configured")
	}
	return s.check(ctx, env)
}

func (s *preStep) Apply(ctx context.Context, env *engine.Env) error {
	if s.apply == nil {
		return nil
	}
	return s.apply(ctx, env)
}

func (s *preStep) Verify(ctx context.Context, env *engine.Env) error {
	st, err := s.Check(ctx, env)
	if err != nil {
		return err
	}
	if !st.Converged {
		return fmt.Errorf("still needs: %s", strings.Join(st.Diff, "; "))
	}
	return nil
}

func refuse(format string, a ...any) error {
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, a...), ErrPreflight)
}

func checkHost(env *engine.Env, h plan.Host) (engine.Status, error) {
	want, err := netip.ParseAddr(h.IP)
	if err != nil {
		return engine.Status{}, fmt.Errorf("host.ip %q: %w", h.IP, err)
	}
	addrs, err := env.Probe.Addresses()
	if err != nil {
		return engine.Status{}, fmt.Errorf("interface addresses: %w", err)
	}
	for _, a := range addrs {
		a, _, _ = strings.Cut(a, "/")
		if got, err := netip.ParseAddr(a); err == nil && got.Unmap() == want.Unmap() {
			return engine.Status{Converged: true}, nil
		}
	}
	msg := fmt.Sprintf("no interface holds %s (this bundle is for host %s); addresses found: %s", h.IP, h.Name, strings.Join(addrs, ", "))
	if env.Force {
		env.Log.Warn("--force: installing anyway: " + msg)
		return engine.Status{Converged: true}, nil
	}
	return engine.Status{}, refuse("%s; run with --force to install anyway", msg)
}

func checkOS(env *engine.Env, p plan.Preflight) (engine.Status, error) {
	if p.OS != "" {
		rel, err := env.Probe.OSRelease()
		if err != nil {
			return engine.Status{}, fmt.Errorf("/etc/os-release: %w", err)
		}
		id := strings.TrimRight(p.OS, "0123456789.")
		ver := p.OS[len(id):]
		gotID, gotVer := rel["ID"], rel["VERSION_ID"]
		switch {
		case gotID == id && (ver == "" || gotVer == ver || strings.HasPrefix(gotVer, ver+".")):
		case gotID == "debian":
			env.Log.Warn(fmt.Sprintf("test bed: /etc/os-release says ID=debian VERSION_ID=%s, this bundle is for %s (ID=%s VERSION_ID=%s); continuing", gotVer, p.OS, id, ver))
		default:
			return engine.Status{}, refuse("unsupported OS: /etc/os-release says ID=%s VERSION_ID=%s, this bundle is for %s (ID=%s VERSION_ID=%s)", gotID, gotVer, p.OS, id, ver)
		}
	}
	if p.MinKernel != "" {
		k, err := env.Probe.Kernel()
		if err != nil {
			return engine.Status{}, fmt.Errorf("kernel release: %w", err)
		}
		if kernelLess(k, p.MinKernel) {
			return engine.Status{}, refuse("unsupported kernel: %s is older than %s, the oldest this bundle supports", k, p.MinKernel)
		}
	}
	return engine.Status{Converged: true}, nil
}

// kernelLess compares the leading numeric fields of two kernel releases
// ("3.10.0-1160.el7.x86_64" < "4.19").
func kernelLess(got, min string) bool {
	g, m := kernelNums(got), kernelNums(min)
	for i := range m {
		x := 0
		if i < len(g) {
			x = g[i]
		}
		if x != m[i] {
			return x < m[i]
		}
	}
	return false
}

func kernelNums(s string) []int {
	var out []int
	for _, f := range strings.Split(s, ".") {
		end := 0
		for end < len(f) && f[end] >= '0' && f[end] <= '9' {
			end++
		}
		if end == 0 {
			break
		}
		n, _ := strconv.Atoi(f[:end])
		out = append(out, n)
		if end < len(f) {
			break
		}
	}
	return out
}

const selinuxConfig = "/etc/selinux/config"

// selinuxConfigMode returns the SELINUX= value of /etc/selinux/config
// under Root, "" when the file does not exist.
func selinuxConfigMode(env *engine.Env) (string, []byte, error) {
	p, err := env.Path(selinuxConfig)
	if err != nil {
		return "", nil, err
	}
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil, nil
	}
	if err != nil {
		return "", nil, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "SELINUX="); ok {
			return strings.Trim(v, `"' `), b, nil
		}
	}
	return "", b, nil
}

func checkSELinux(env *engine.Env, p plan.Preflight) (engine.Status, error) {
	mode, err := env.Probe.SELinux()
	if err != nil {
		return engine.Status{}, fmt.Errorf("SELinux mode: %w", err)
	}
	cfg, _, err := selinuxConfigMode(env)
	if err != nil {
		return engine.Status{}, fmt.Errorf("%s: %w", selinuxConfig, err)
	}
	cfgWants := cfg != "" && cfg != "disabled"
	if !p.DisableSELinux {
		if mode == "enforcing" {
			return engine.Status{}, refuse("SELinux is enforcing and the plan does not let firstboot disable it (preflight.disableSELinux is false): disable it by hand or rebuild the bundle with it set")
		}
		if cfgWants {
			env.Log.Warn(fmt.Sprintf("%s says SELINUX=%s: SELinux comes back at the next boot", selinuxConfig, cfg))
		}
		return engine.Status{Converged: true}, nil
	}
	var diff []string
	if mode == "enforcing" {
		diff = append(diff, "SELinux enforcing → permissive (setenforce 0)")
	}
	if cfgWants {
		diff = append(diff, fmt.Sprintf("%s: SELINUX=%s → disabled", selinuxConfig, cfg))
	}
	return engine.Status{Converged: len(diff) == 0, Diff: diff}, nil
}

func applySELinux(ctx context.Context, env *engine.Env) error {
	mode, err := env.Probe.SELinux()
	if err != nil {
		return fmt.Errorf("SELinux mode: %w", err)
	}
	if mode == "enforcing" {
		if env.Exec == nil {
			return errors.New("setenforce 0: no command runner configured")
		}
		if err := env.Exec.Run(ctx, "setenforce", "0"); err != nil {
			return fmt.Errorf("setenforce 0: %w", err)
		}
	}
	cfg, b, err := selinuxConfigMode(env)
	if err != nil || cfg == "" || cfg == "disabled" {
		return err
	}
	lines := strings.Split(string(b), "\n")
	for i, l := range lines {
		if strings.HasPrefix(strings.TrimSpace(l), "SELINUX=") {
			lines[i] = "SELINUX=disabled"
		}
	}
	path, _ := env.Path(selinuxConfig)
	return writeFileAtomic(path, []byte(strings.Join(lines, "\n")))
}

const firewalld = "firewalld.service"

// unitStopper is implemented by a Systemd that can stop units; otherwise
// firstboot runs `systemctl stop`.
type unitStopper interface {
	Stop(ctx context.Context, unit string) error
}

func firewalldEnabled(ctx context.Context, env *engine.Env) bool {
	if env.Systemd == nil {
		return false
	}
	en, err := env.Systemd.Enabled(ctx, firewalld)
	return err == nil && en // an error means the unit is not installed
}

func checkFirewalld(ctx context.Context, env *engine.Env, p plan.Preflight) (engine.Status, error) {
	active, err := env.Probe.UnitActive(firewalld)
	if err != nil {
		return engine.Status{}, fmt.Errorf("%s: %w", firewalld, err)
	}
	if !p.DisableFirewalld {
		if active {
			return engine.Status{}, refuse("firewalld is running and the plan does not let firstboot stop it (preflight.disableFirewalld is false): stop it by hand or rebuild the bundle with it set")
		}
		return engine.Status{Converged: true}, nil
	}
	var diff []string
	if active {
		diff = append(diff, "stop "+firewalld)
	}
	if firewalldEnabled(ctx, env) {
		diff = append(diff, "disable "+firewalld)
	}
	return engine.Status{Converged: len(diff) == 0, Diff: diff}, nil
}

func applyFirewalld(ctx context.Context, env *engine.Env) error {
	active, err := env.Probe.UnitActive(firewalld)
	if err != nil {
		return err
	}
	if active {
		if s, ok := env.Systemd.(unitStopper); ok {
			err = s.Stop(ctx, firewalld)
		} else if env.Exec != nil {
			err = env.Exec.Run(ctx, "systemctl", "stop", firewalld)
		} else {
			err = errors.New("no systemd or command runner configured")
		}
		if err != nil {
			return fmt.Errorf("stop %s: %w", firewalld, err)
		}
	}
	if firewalldEnabled(ctx, env) {
		if err := env.Systemd.Disable(ctx, firewalld); err != nil {
			return fmt.Errorf("disable %s: %w", firewalld, err)
		}
	}
	return nil
}

const fstab = "/etc/fstab"

// fstabSwap returns /etc/fstab under Root and the indexes of its active
// swap lines.
func fstabSwap(env *engine.Env) ([]string, []int, error) {
	p, err := env.Path(fstab)
	if err != nil {
		return nil, nil, err
	}
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	var lines []string
	var swap []int
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		l := sc.Text()
		f := strings.Fields(l)
		if len(f) >= 3 && !strings.HasPrefix(f[0], "#") && f[2] == "swap" {
			swap = append(swap, len(lines))
		}
		lines = append(lines, l)
	}
	return lines, swap, sc.Err()
}

func checkSwap(env *engine.Env, p plan.Preflight) (engine.Status, error) {
	on, err := env.Probe.SwapOn()
	if err != nil {
		return engine.Status{}, fmt.Errorf("swap: %w", err)
	}
	lines, swap, err := fstabSwap(env)
	if err != nil {
		return engine.Status{}, fmt.Errorf("%s: %w", fstab, err)
	}
	if !p.DisableSwap {
		if on {
			return engine.Status{}, refuse("swap is on (/proc/swaps) and the plan does not let firstboot turn it off (preflight.disableSwap is false); the kubelet will not start with swap")
		}
		if len(swap) > 0 {
			env.Log.Warn(fmt.Sprintf("%s has swap lines: swap comes back at the next boot", fstab))
		}
		return engine.Status{Converged: true}, nil
	}
	var diff []string
	if on {
		diff = append(diff, "swap on → off (swapoff -a)")
	}
	for _, i := range swap {
		diff = append(diff, fmt.Sprintf("%s: comment out %q", fstab, lines[i]))
	}
	return engine.Status{Converged: len(diff) == 0, Diff: diff}, nil
}

func applySwap(ctx context.Context, env *engine.Env) error {
	on, err := env.Probe.SwapOn()
	if err != nil {
		return err
	}
	if on {
		if env.Exec == nil {
			return errors.New("swapoff -a: no command runner configured")
		}
		if err := env.Exec.Run(ctx, "swapoff", "-a"); err != nil {
			return fmt.Errorf("swapoff -a: %w", err)
		}
	}
	lines, swap, err := fstabSwap(env)
	if err != nil || len(swap) == 0 {
		return err
	}
	for _, i := range swap {
		lines[i] = "#" + lines[i]
	}
	p, _ := env.Path(fstab)
	return writeFileAtomic(p, []byte(strings.Join(lines, "\n")+"\n"))
}

func checkTime(env *engine.Env) (engine.Status, error) {
	synced, err := env.Probe.TimeSynced()
	switch {
	case err != nil:
		env.Log.Warn("clock synchronisation unknown: " + err.Error())
	case !synced:
		env.Log.Warn("the clock is not synchronised (NTP): certificates may look not yet valid or expired to this host's peers")
	}
	return engine.Status{Converged: true}, nil
}

// writeFileAtomic replaces an existing file, keeping its mode.
func writeFileAtomic(path string, b []byte) (err error) {
	mode := fs.FileMode(0o644)
	if fi, err := os.Stat(path); err == nil {
		mode = fi.Mode().Perm()
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".firstboot-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err = tmp.Write(b); err != nil {
		return err
	}
	if err = tmp.Chmod(mode); err != nil {
		return err
	}
	if err = tmp.Sync(); err != nil {
		return err
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}
