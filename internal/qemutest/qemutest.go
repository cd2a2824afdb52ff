// Package qemutest holds what kubebake's QEMU tests share (firstboot/vmtest,
// builder/pxetest): when they run, how long a boot may take, and keeping a
// failed run's serial logs for a human.
package qemutest

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// CI reports whether the CI variable is set: then a QEMU test runs, and a
// missing tool fails it instead of skipping it.
func CI() bool { return os.Getenv("CI") != "" }

// Requirements are what a QEMU test needs on the machine.
type Requirements struct {
	What  string            // "QEMU PXE test", for messages
	Tools []string          // commands looked up in PATH
	Files map[string]string // path → the Debian package that has it
	// Kernel requires a Debian kernel in /boot (linux-image-amd64).
	Kernel bool
	// Hint is the apt-get line that installs everything.
	Hint string
	// RootWhy says why the test needs root.
	RootWhy string
}

// Gate skips the test unless KUBEBAKE_VMTEST=1 or CI is set, and then
// requires root and every tool and file: under CI their absence fails the
// test with the install hint, never skips it.
func Gate(t *testing.T, r Requirements) {
	t.Helper()
	if os.Getenv("KUBEBAKE_VMTEST") != "1" && !CI() {
		t.Skipf("%s: set KUBEBAKE_VMTEST=1 (or CI) to run it; it needs root, %s", r.What, r.Hint)
	}
	if os.Geteuid() != 0 {
		if CI() {
			t.Fatalf("%s: CI is set but not running as root (%s)", r.What, r.RootWhy)
		}
		t.Skipf("%s: needs root", r.What)
	}
	var missing []string
	for _, c := range r.Tools {
		if _, err := exec.LookPath(c); err != nil {
			missing = append(missing, c)
		}
	}
	var paths []string
	for p := range r.Files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		if _, err := os.Stat(p); err != nil {
			missing = append(missing, p+" ("+r.Files[p]+")")
		}
	}
	if r.Kernel && Kernel() == "" {
		missing = append(missing, "/boot/vmlinuz-*-amd64 (linux-image-amd64)")
	}
	if len(missing) > 0 {
		t.Fatalf("%s: missing %s; install with:\n  %s", r.What, strings.Join(missing, ", "), r.Hint)
	}
}

// Kernel is the newest Debian kernel in /boot, "" when there is none.
func Kernel() string {
	m, _ := filepath.Glob("/boot/vmlinuz-*-amd64")
	if len(m) == 0 {
		return ""
	}
	sort.Strings(m)
	return m[len(m)-1]
}

// BootTimeout is def, or KUBEBAKE_VMTEST_BOOT_TIMEOUT (a Go duration) when
// set: TCG's speed varies with the machine and what runs beside it.
func BootTimeout(t *testing.T, def time.Duration) time.Duration {
	t.Helper()
	if v := os.Getenv("KUBEBAKE_VMTEST_BOOT_TIMEOUT"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("KUBEBAKE_VMTEST_BOOT_TIMEOUT=%q: %v", v, err)
		}
		return d
	}
	return def
}

// Keeper collects what a failing run leaves for a human (serial logs,
// reports, generated files) and copies them to
// $TMPDIR/<prefix>-<timestamp>/ when the test fails, or always with
// KUBEBAKE_VMTEST_KEEP=1.
type Keeper struct {
	mu    sync.Mutex
	files map[string]string // kept name → path
}

// NewKeeper registers the copy as a cleanup of t. Call it after
// t.TempDir() so the copy runs before the temporary directory goes
// (cleanups run last-in first-out).
func NewKeeper(t *testing.T, prefix string) *Keeper {
	k := &Keeper{files: map[string]string{}}
	t.Cleanup(func() {
		if !t.Failed() && os.Getenv("KUBEBAKE_VMTEST_KEEP") != "1" {
			return
		}
		dir := filepath.Join(os.TempDir(), prefix+"-"+time.Now().UTC().Format("20060102T150405Z"))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Logf("keeping logs: %v", err)
			return
		}
		k.mu.Lock()
		defer k.mu.Unlock()
		for name, p := range k.files {
			b, err := os.ReadFile(p)
			if err != nil {
				continue
			}
			b = bytes.TrimRight(b, "\x00") // report disks are zero-padded
			_ = os.WriteFile(filepath.Join(dir, strings.ReplaceAll(name, "/", "-")), b, 0o644)
		}
		t.Logf("serial logs, reports and generated files kept in %s", dir)
	})
	return k
}

// Add keeps the file at path under name (its contents when the test ends).
func (k *Keeper) Add(name, path string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.files[name] = path
}

// Tail is the last n lines of s.
func Tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
