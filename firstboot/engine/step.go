// Package engine walks a bundle's plan as an ordered list of steps, each
// Check → Apply (only when needed) → Verify, and records progress in a state
// file so a re-run continues where a crash stopped and a converged host is a
// no-op.
package engine

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"time"

	"github.com/kubebake/kubebake/firstboot/plan"
)

// Status is what Check found.
type Status struct {
	Converged bool
	// Diff says, for humans, what Apply would change ("load ip_vs",
	// "net.ipv4.ip_forward: 0 → 1"). Empty when converged.
	Diff []string
}

// Step is one idempotent unit of work.
type Step interface {
	// ID is stable across runs: "sysctl/net.ipv4.ip_forward",
	// "file//opt/kubernetes/bin/kubelet", "route/172.7.22.0/24".
	ID() string
	// Check is read-only.
	Check(ctx context.Context, env *Env) (Status, error)
	// Apply converges; safe to repeat.
	Apply(ctx context.Context, env *Env) error
	// Verify is the read-only postcondition.
	Verify(ctx context.Context, env *Env) error
}

// Env is everything a step may touch. Steps use no globals: every host
// effect goes through Root (files) or one of the small interfaces in
// firstboot/host, so tests run steps against a temp dir and fakes, and the
// integration tests against a network namespace or a VM.
type Env struct {
	Root     string         // "/" on a host; a temp dir in tests
	Bundle   string         // the unpacked bundle's directory
	Manifest *plan.Manifest // bundle.json
	Log      *slog.Logger
	Now      func() time.Time
	Force    bool // --force: skip the host-identity check

	// ChangedAt reports when the step with this ID last changed the host
	// for the bundle being run (Apply ran and Verify passed), from the state
	// file's records of this bundle digest: a record of another bundle never
	// counts, and a re-run that finds the step converged keeps the time (so
	// a crash between a file step and the units step still restarts the
	// unit next run). In a dry run a step that would change counts as
	// changed at its check. Run sets it; nil means nothing is known to have
	// changed. The units step asks it for "file/<path>" to decide whether a
	// running unit must restart.
	ChangedAt func(stepID string) (at time.Time, ok bool)

	// Host effects, set by main (real) or by tests.
	Modules  Modules
	Sysctl   Sysctl
	Routes   Routes
	IPTables IPTables
	Systemd  Systemd
	Images   Images
	Health   Health
	Probe    Probe
	Exec     Exec // commands preflight runs (setenforce, swapoff, systemctl stop)
}

// Path maps an absolute host path into Root and refuses anything that
// would leave it.
func (e *Env) Path(p string) (string, error) {
	if !filepath.IsAbs(p) {
		return "", fmt.Errorf("%q: not an absolute path", p)
	}
	clean := filepath.Clean(p)
	if clean != p && clean+"/" != p {
		return "", fmt.Errorf("%q: not a clean path", p)
	}
	full := filepath.Join(e.Root, clean)
	if rel, err := filepath.Rel(e.Root, full); err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return "", fmt.Errorf("%q escapes %s", p, e.Root)
	}
	return full, nil
}

// Modules loads kernel modules (kmod's modprobe honours softdeps).
type Modules interface {
	Loaded(name string) (bool, error) // /sys/module/<name> exists (loaded or built in)
	Load(ctx context.Context, name string) error
}

// Sysctl reads and writes /proc/sys.
type Sysctl interface {
	Get(key string) (string, error)
	Set(key, value string) error
}

// Route is a static route.
type Route struct{ Dst, Via string }

// Routes manages static routes through netlink.
type Routes interface {
	List() ([]Route, error)
	Replace(r Route) error
}

// IPTables checks and changes one rule at a time.
type IPTables interface {
	Exists(table, chain string, rule ...string) (bool, error)
	Insert(table, chain string, pos int, rule ...string) error
	Delete(table, chain string, rule ...string) error
}

// Systemd is the D-Bus manager API (calls that exist in systemd 219).
type Systemd interface {
	Reload(ctx context.Context) error
	Enabled(ctx context.Context, unit string) (bool, error)
	Enable(ctx context.Context, units ...string) error
	Disable(ctx context.Context, units ...string) error
	Active(ctx context.Context, unit string) (bool, error)
	Start(ctx context.Context, unit string) error   // waits for the job's result
	Restart(ctx context.Context, unit string) error // waits for the job's result
	// ActiveSince is the unit's ActiveEnterTimestamp: when it last entered
	// the active state; the zero time when it never did.
	ActiveSince(ctx context.Context, unit string) (time.Time, error)
	JournalTail(ctx context.Context, unit string, lines int) (string, error)
}

// Images imports an OCI layout into containerd's k8s.io namespace.
type Images interface {
	Present(ctx context.Context, ref, digest string) (bool, error)
	Import(ctx context.Context, layoutDir string) error
}

// Health runs one readiness probe once.
type Health interface {
	Probe(ctx context.Context, c plan.HealthCheck) error
}

// Probe reads facts about the host for preflight.
type Probe interface {
	Addresses() ([]string, error)          // IPs on any interface
	OSRelease() (map[string]string, error) // /etc/os-release
	Kernel() (string, error)               // uname -r
	SELinux() (string, error)              // enforcing | permissive | disabled
	UnitActive(name string) (bool, error)
	SwapOn() (bool, error)
	TimeSynced() (bool, error)
}

// Exec runs a host command and waits for it. Preflight's few effects that
// have no API (setenforce 0, swapoff -a, systemctl stop) go through it, so
// unit tests record them instead of running them. The error carries the
// command's combined output.
type Exec interface {
	Run(ctx context.Context, name string, args ...string) error
}
