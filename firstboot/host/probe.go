package host

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/kubebake/kubebake/firstboot/engine"
)

// Probe reads host facts for preflight. Files are read below root ("/" on
// a host); unit state comes from sd when set, else from `systemctl
// is-active`.
type Probe struct {
	root string
	sd   engine.Systemd
}

var _ engine.Probe = (*Probe)(nil)

// NewProbe returns the real probe. sd may be nil.
func NewProbe(root string, sd engine.Systemd) *Probe { return &Probe{root: root, sd: sd} }

// Addresses lists every interface address in CIDR form ("10.4.7.21/24").
func (p *Probe) Addresses() ([]string, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(addrs))
	for _, a := range addrs {
		out = append(out, a.String())
	}
	return out, nil
}

// OSRelease parses /etc/os-release (falling back to /usr/lib/os-release).
func (p *Probe) OSRelease() (map[string]string, error) {
	b, err := os.ReadFile(filepath.Join(p.root, "etc/os-release"))
	if errors.Is(err, fs.ErrNotExist) {
		b, err = os.ReadFile(filepath.Join(p.root, "usr/lib/os-release"))
	}
	if err != nil {
		return nil, err
	}
	return parseOSRelease(b), nil
}

func parseOSRelease(b []byte) map[string]string {
	out := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		k, v, ok := strings.Cut(l, "=")
		if !ok {
			continue
		}
		out[k] = strings.Trim(v, `"'`)
	}
	return out
}

// Kernel is uname -r.
func (p *Probe) Kernel() (string, error) {
	var u syscall.Utsname
	if err := syscall.Uname(&u); err != nil {
		return "", err
	}
	var b strings.Builder
	for _, c := range u.Release {
		if c == 0 {
			break
		}
		b.WriteByte(byte(c))
	}
	return b.String(), nil
}

// SELinux is "enforcing", "permissive" or "disabled" (no selinuxfs).
func (p *Probe) SELinux() (string, error) {
	b, err := os.ReadFile(filepath.Join(p.root, "sys/fs/selinux/enforce"))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "disabled", nil
	case err != nil:
		return "", err
	case strings.TrimSpace(string(b)) == "1":
		return "enforcing", nil
	default:
		return "permissive", nil
	}
}

// UnitActive asks systemd (D-Bus when available, else systemctl). A host
// without systemctl has no active units.
func (p *Probe) UnitActive(name string) (bool, error) {
	if p.sd != nil {
		return p.sd.Active(context.Background(), name)
	}
	if _, err := exec.LookPath("systemctl"); err != nil {
		return false, nil
	}
	err := exec.Command("systemctl", "is-active", "--quiet", name).Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return false, nil
	}
	return err == nil, err
}

// SwapOn reports whether /proc/swaps lists any swap area.
func (p *Probe) SwapOn() (bool, error) {
	b, err := os.ReadFile(filepath.Join(p.root, "proc/swaps"))
	if err != nil {
		return false, err
	}
	return swapsActive(b), nil
}

func swapsActive(b []byte) bool {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return len(lines) > 1 // the first line is the header
}

// staTimeError flags STA_UNSYNC-style "clock not synchronised" in adjtimex's
// return value (TIME_ERROR).
const timeError = 5

// TimeSynced asks the kernel (adjtimex with no modes, read-only) whether
// an NTP daemon keeps the clock synchronised; no timedatectl needed.
func (p *Probe) TimeSynced() (bool, error) {
	var tx syscall.Timex
	state, err := syscall.Adjtimex(&tx)
	if err != nil {
		return false, fmt.Errorf("adjtimex: %w", err)
	}
	return state != timeError, nil
}

// Exec runs host commands for preflight.
type Exec struct{}

var _ engine.Exec = Exec{}

// NewExec returns the real command runner.
func NewExec() Exec { return Exec{} }

// Run runs name with args; a failure carries the combined output.
func (Exec) Run(ctx context.Context, name string, args ...string) error {
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}
