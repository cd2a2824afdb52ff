package host

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/kubebake/kubebake/firstboot/engine"
)

// modprobeDirs are searched for modprobe after PATH: a oneshot unit at
// first boot may run with a minimal PATH, and CentOS 7 keeps it in /sbin
// (a symlink to /usr/sbin).
var modprobeDirs = []string{"/sbin", "/usr/sbin"}

// Modules loads kernel modules with kmod's modprobe, which resolves
// modules.dep and honours modules.softdep (libcrc32c needs crc32c_generic
// first; busybox's modprobe ignores softdeps). It implements engine.Modules
// and, for steps.Modules, Available.
type Modules struct {
	root         string   // "/" on a host; sysfs and /lib/modules are read below it
	modprobeDirs []string // searched after PATH
}

var _ engine.Modules = (*Modules)(nil)

// NewModules returns the module loader for the host whose filesystem is
// mounted at root ("/" on a real host). Loaded reads <root>/sys/module;
// Load runs modprobe from PATH, /sbin or /usr/sbin (modprobe itself always
// works on the running kernel, whatever root is).
func NewModules(root string) engine.Modules {
	return &Modules{root: root, modprobeDirs: modprobeDirs}
}

// moduleName is the name sysfs uses: modprobe accepts "-" and "_" alike,
// /sys/module spells them "_".
func moduleName(name string) string { return strings.ReplaceAll(name, "-", "_") }

func checkModuleName(name string) error {
	if name == "" || strings.ContainsAny(name, "/ \t\n") || name == "." || name == ".." || strings.HasPrefix(name, "-") {
		return fmt.Errorf("module %q: not a module name", name)
	}
	return nil
}

// Loaded reports whether /sys/module/<name> exists: the module is loaded or
// built into the kernel (built-ins with parameters or a version appear
// there too; br_netfilter, nf_conntrack and overlay do).
func (m *Modules) Loaded(name string) (bool, error) {
	if err := checkModuleName(name); err != nil {
		return false, err
	}
	_, err := os.Stat(filepath.Join(m.root, "sys", "module", moduleName(name)))
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	default:
		return false, fmt.Errorf("module %s: %w", name, err)
	}
}

// Load runs `modprobe -- <name>`. The error carries modprobe's output
// ("modprobe: FATAL: Module ip_vs not found in directory …").
func (m *Modules) Load(ctx context.Context, name string) error {
	if err := checkModuleName(name); err != nil {
		return err
	}
	bin, err := findModprobe(m.modprobeDirs)
	if err != nil {
		return fmt.Errorf("module %s: %w", name, err)
	}
	out, err := exec.CommandContext(ctx, bin, "--", name).CombinedOutput()
	if err != nil {
		return fmt.Errorf("module %s: %s -- %s: %w: %s", name, bin, name, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// ErrNoModprobe means no modprobe binary was found (install kmod).
var ErrNoModprobe = errors.New("modprobe not found in PATH, /sbin or /usr/sbin (install kmod)")

func findModprobe(dirs []string) (string, error) {
	if p, err := exec.LookPath("modprobe"); err == nil {
		return p, nil
	}
	for _, d := range dirs {
		p := filepath.Join(d, "modprobe")
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", ErrNoModprobe
}

// Available reports whether the running kernel could load name: it is
// listed in <root>/lib/modules/<uname -r>/modules.dep or modules.builtin.
// Read-only, so a step's Check may use it (steps.Modules does, to accept
// nf_conntrack in place of nf_conntrack_ipv4 on kernels ≥ 4.19 without
// running modprobe on every run).
func (m *Modules) Available(name string) (bool, error) {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return false, fmt.Errorf("uname: %w", err)
	}
	return m.availableIn(unix.ByteSliceToString(u.Release[:]), name)
}

func (m *Modules) availableIn(release, name string) (bool, error) {
	want := moduleName(name)
	dir := filepath.Join(m.root, "lib", "modules", release)
	for _, f := range []string{"modules.dep", "modules.builtin"} {
		found, err := listsModule(filepath.Join(dir, f), want)
		if err != nil {
			return false, err
		}
		if found {
			return true, nil
		}
	}
	return false, nil
}

// listsModule scans a modules.dep ("kernel/…/ip_vs.ko.xz: deps…") or
// modules.builtin ("kernel/…/br_netfilter.ko") file for a module. A missing
// file lists nothing (a kernel without CONFIG_MODULES has none).
func listsModule(file, want string) (bool, error) {
	f, err := os.Open(file)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		p, _, _ := strings.Cut(sc.Text(), ":")
		base := path.Base(strings.TrimSpace(p))
		i := strings.Index(base, ".ko")
		if i <= 0 {
			continue
		}
		if moduleName(base[:i]) == want {
			return true, nil
		}
	}
	if err := sc.Err(); err != nil {
		return false, fmt.Errorf("%s: %w", file, err)
	}
	return false, nil
}
