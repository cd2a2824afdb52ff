package steps

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/kubebake/kubebake/firstboot/engine"
	"github.com/kubebake/kubebake/firstboot/plan"
)

// UnitsStampPath records the sha256 of every unit file as of the last
// daemon-reload firstboot did, so a re-run reloads only when a unit file
// changed.
const UnitsStampPath = "/var/lib/kubebake/units.sha256"

// JournalLines is how many journal lines a failed unit reports.
const JournalLines = 20

// unitDirs are where systemd (219 and newer) reads unit files and drop-ins.
var unitDirs = []string{"/etc/systemd/system/", "/usr/lib/systemd/system/", "/lib/systemd/system/"}

// Units makes the service steps, in this order: one daemon-reload step
// (converged when no unit file changed since firstboot's last reload), one
// enable step for every unit of the plan, then for each unit in plan order
// with Unit.Start a start step, which also restarts a running unit whose
// watched files this bundle changed. The builder orders units containerd →
// etcd → flannel-netconf → flanneld → kube-apiserver → controller-manager →
// scheduler → kubelet → kube-proxy; Units keeps that order, so an upgrade
// restarts them in it.
//
// All units are enabled in one call because each enable costs a
// daemon-reload (systemctl does one too, and UnitFileState is stale
// without it): ~10 s each on a slow host (measured under QEMU TCG), once
// instead of nine times.
func Units(units []plan.Unit) []engine.Step {
	out := []engine.Step{reloadStep{units: units}}
	var names []string
	for _, u := range units {
		names = append(names, u.Name)
	}
	if len(names) > 0 {
		out = append(out, enableStep{units: names})
	}
	for _, u := range units {
		if u.Start {
			out = append(out, startStep{unit: u.Name, watch: u.Watch, timeout: u.StartTimeout})
		}
	}
	return out
}

// reloadStep is `systemctl daemon-reload`, converged when the stamp of the
// unit files on disk equals the one recorded after the last reload.
type reloadStep struct{ units []plan.Unit }

func (reloadStep) ID() string { return "systemd/daemon-reload" }

func (s reloadStep) Check(_ context.Context, env *engine.Env) (engine.Status, error) {
	now, err := unitStamp(env, s.units)
	if err != nil {
		return engine.Status{}, err
	}
	old, recorded, err := readStamp(env)
	if err != nil {
		return engine.Status{}, err
	}
	if !recorded {
		return engine.Status{Diff: []string{"daemon-reload: none recorded by firstboot yet"}}, nil
	}
	if bytes.Equal(now, old) {
		return engine.Status{Converged: true}, nil
	}
	changed := stampDiff(old, now)
	return engine.Status{Diff: []string{"daemon-reload: unit files changed: " + strings.Join(changed, ", ")}}, nil
}

func (s reloadStep) Apply(ctx context.Context, env *engine.Env) error {
	// Stamp what systemd is about to read: a file changed during the reload
	// then differs from the stamp and causes another reload next run.
	now, err := unitStamp(env, s.units)
	if err != nil {
		return err
	}
	if err := env.Systemd.Reload(ctx); err != nil {
		return err
	}
	p, err := env.Path(UnitsStampPath)
	if err != nil {
		return err
	}
	return putFile(p, now, 0o644)
}

func (s reloadStep) Verify(ctx context.Context, env *engine.Env) error {
	st, err := s.Check(ctx, env)
	if err != nil {
		return err
	}
	if !st.Converged {
		return fmt.Errorf("%s", strings.Join(st.Diff, "; "))
	}
	return nil
}

// unitStamp is sha256sum(1)-style lines ("<hex>  <path>"), sorted by path,
// over the manifest's files below a unit directory (units and drop-ins
// firstboot installs) and each plan unit's file where it exists (units the
// distribution ships, e.g. a packaged containerd.service).
func unitStamp(env *engine.Env, units []plan.Unit) ([]byte, error) {
	paths := map[string]bool{}
	if env.Manifest != nil {
		for _, f := range env.Manifest.Files {
			for _, d := range unitDirs {
				if strings.HasPrefix(f.Path, d) {
					paths[f.Path] = true
				}
			}
		}
	}
	for _, u := range units {
		for _, d := range unitDirs {
			p, err := env.Path(d + u.Name)
			if err != nil {
				return nil, err
			}
			if _, err := os.Stat(p); err == nil {
				paths[d+u.Name] = true
			}
		}
	}
	sorted := make([]string, 0, len(paths))
	for p := range paths {
		sorted = append(sorted, p)
	}
	sort.Strings(sorted)
	var b bytes.Buffer
	for _, p := range sorted {
		full, err := env.Path(p)
		if err != nil {
			return nil, err
		}
		data, err := os.ReadFile(full)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			fmt.Fprintf(&b, "%s  %s\n", "-", p) // listed but not installed (yet)
		case err != nil:
			return nil, fmt.Errorf("unit file %s: %w", p, err)
		default:
			sum := sha256.Sum256(data)
			fmt.Fprintf(&b, "%s  %s\n", hex.EncodeToString(sum[:]), p)
		}
	}
	return b.Bytes(), nil
}

// readStamp returns the recorded stamp; recorded is false when firstboot
// never reloaded on this host (then it reloads once even with no unit files).
func readStamp(env *engine.Env) (stamp []byte, recorded bool, err error) {
	p, err := env.Path(UnitsStampPath)
	if err != nil {
		return nil, false, err
	}
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("%s: %w", UnitsStampPath, err)
	}
	return b, true, nil
}

// stampDiff names the paths whose line differs between two stamps.
func stampDiff(old, now []byte) []string {
	parse := func(b []byte) map[string]string {
		m := map[string]string{}
		for _, l := range strings.Split(string(b), "\n") {
			if sum, p, ok := strings.Cut(l, "  "); ok {
				m[p] = sum
			}
		}
		return m
	}
	o, n := parse(old), parse(now)
	var out []string
	for p, sum := range n {
		if o[p] != sum {
			out = append(out, p)
		}
	}
	for p := range o {
		if _, ok := n[p]; !ok {
			out = append(out, p+" (gone)")
		}
	}
	sort.Strings(out)
	return out
}

// enableStep is `systemctl enable <units>`: the ones not enabled yet, in
// one call.
type enableStep struct{ units []string }

func (s enableStep) ID() string { return "systemd/enable" }

func (s enableStep) disabled(ctx context.Context, env *engine.Env) ([]string, error) {
	var out []string
	for _, u := range s.units {
		ok, err := env.Systemd.Enabled(ctx, u)
		if err != nil {
			return nil, err
		}
		if !ok {
			out = append(out, u)
		}
	}
	return out, nil
}

func (s enableStep) Check(ctx context.Context, env *engine.Env) (engine.Status, error) {
	off, err := s.disabled(ctx, env)
	if err != nil {
		return engine.Status{}, err
	}
	if len(off) == 0 {
		return engine.Status{Converged: true}, nil
	}
	return engine.Status{Diff: []string{"enable " + strings.Join(off, " ")}}, nil
}

func (s enableStep) Apply(ctx context.Context, env *engine.Env) error {
	off, err := s.disabled(ctx, env)
	if err != nil {
		return err
	}
	return env.Systemd.Enable(ctx, off...)
}

func (s enableStep) Verify(ctx context.Context, env *engine.Env) error {
	off, err := s.disabled(ctx, env)
	if err != nil {
		return err
	}
	if len(off) > 0 {
		return fmt.Errorf("not enabled: %s", strings.Join(off, " "))
	}
	return nil
}

// startStep is `systemctl start <unit>`, waiting for the job's result, and
// `systemctl restart <unit>` when the unit is already running on files a
// new bundle replaced. A failure carries the unit's last journal lines.
//
// Restart rule: a running unit restarts when a file step of this bundle
// digest rewrote one of its watched files (plan.Unit.Watch) after the unit
// last became active (ActiveEnterTimestamp). Both times survive a crash:
// the file step's time is in the state file, the unit's in systemd, so a
// run that died between the files and the units restarts on the next run,
// and once restarted the unit is active since after the change and a third
// run does nothing. A first install starts units after their files are
// written, so nothing restarts then. Oneshot units with RemainAfterExit
// (flannel-netconf, kubebake-network) restart too: that re-runs them, which
// re-applies what they apply from the new files; it is idempotent.
// firstboot's own unit is not in the plan's units, so it never restarts
// the run that is converging it.
type startStep struct {
	unit  string
	watch []string
	// timeout is plan.Unit.StartTimeout: how long to wait for the job
	// ("" for the host's default).
	timeout string
}

func (s startStep) ID() string { return "systemd/start/" + s.unit }

func (s startStep) Check(ctx context.Context, env *engine.Env) (engine.Status, error) {
	ok, err := env.Systemd.Active(ctx, s.unit)
	if err != nil {
		return engine.Status{}, err
	}
	if !ok {
		return engine.Status{Diff: []string{"start " + s.unit}}, nil
	}
	changed, err := s.changedSince(ctx, env)
	if err != nil {
		return engine.Status{}, err
	}
	if len(changed) > 0 {
		return engine.Status{Diff: []string{fmt.Sprintf("restart %s: %s changed", s.unit, strings.Join(changed, ", "))}}, nil
	}
	return engine.Status{Converged: true}, nil
}

// changedSince lists the watched files a file step of this bundle changed
// at or after the moment the unit last became active, in watch order. Both
// times are wall-clock (the state file's and systemd's CLOCK_REALTIME), so
// a clock stepped between them by more than the seconds that separate them
// can order them wrong: a missed restart, or restarts on each run until the
// clock passes the file's time. Preflight warns when the clock is not
// synced.
func (s startStep) changedSince(ctx context.Context, env *engine.Env) ([]string, error) {
	if len(s.watch) == 0 || env.ChangedAt == nil {
		return nil, nil
	}
	var changed []string
	var since time.Time
	asked := false
	for _, p := range s.watch {
		at, ok := env.ChangedAt("file/" + p)
		if !ok {
			continue
		}
		if !asked { // one D-Bus call, and only when some file changed
			t, err := env.Systemd.ActiveSince(ctx, s.unit)
			if err != nil {
				return nil, err
			}
			since, asked = t, true
		}
		if !at.Before(since) {
			changed = append(changed, p)
		}
	}
	return changed, nil
}

// Apply starts an inactive unit and restarts an active one (Check said it
// runs on replaced files).
func (s startStep) Apply(ctx context.Context, env *engine.Env) error {
	active, err := env.Systemd.Active(ctx, s.unit)
	if err != nil {
		return err
	}
	jctx := ctx
	if s.timeout != "" {
		d, err := time.ParseDuration(s.timeout)
		if err != nil {
			return fmt.Errorf("%s: start timeout %q: %w", s.unit, s.timeout, err)
		}
		var cancel context.CancelFunc
		jctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
		if env.Log != nil {
			env.Log.Info("waiting up to " + s.timeout + " for " + s.unit + " to start")
		}
	}
	if active {
		err = env.Systemd.Restart(jctx, s.unit)
	} else {
		err = env.Systemd.Start(jctx, s.unit)
	}
	if err != nil {
		return withJournal(ctx, env, s.unit, err)
	}
	return nil
}

// Verify checks the unit is active, whether it was started or restarted.
// The job's "done" already says a restart happened; the timestamps are not
// compared again, so a clock stepped back at boot cannot fail the run.
func (s startStep) Verify(ctx context.Context, env *engine.Env) error {
	ok, err := env.Systemd.Active(ctx, s.unit)
	if err != nil {
		return err
	}
	if !ok {
		return withJournal(ctx, env, s.unit, fmt.Errorf("%s is not active", s.unit))
	}
	return nil
}

// withJournal appends the unit's journal tail to err (still wrapping it).
func withJournal(ctx context.Context, env *engine.Env, unit string, err error) error {
	tail, jerr := env.Systemd.JournalTail(ctx, unit, JournalLines)
	if jerr != nil {
		tail = strings.TrimSpace(tail + "\n(journal: " + jerr.Error() + ")")
	}
	return fmt.Errorf("%w\n--- last %d journal lines of %s ---\n%s", err, JournalLines, unit, strings.TrimRight(tail, "\n"))
}

// putFile writes data to p atomically: a temp file in the same directory,
// fsync, rename, fsync of the directory.
func putFile(p string, data []byte, mode os.FileMode) (err error) {
	dir := filepath.Dir(p)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(p)+".*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			os.Remove(f.Name())
		}
	}()
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), p); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
