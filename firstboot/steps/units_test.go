package steps

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kubebake/kubebake/firstboot/engine"
	"github.com/kubebake/kubebake/firstboot/plan"
)

// sdFake is engine.Systemd in memory: Enable/Start flip the state that
// Enabled/Active read, every call is recorded.
type sdFake struct {
	enabled, active map[string]bool
	startErr        map[string]error     // Start or Restart fails with this (and leaves the unit inactive)
	since           map[string]time.Time // ActiveEnterTimestamp
	now             time.Time            // the fake's clock: Start and Restart set since to it
	journal         string
	calls           []string
	deadline        map[string]time.Duration // time left on Start's context, when it had a deadline
}

func newSDFake() *sdFake {
	return &sdFake{enabled: map[string]bool{}, active: map[string]bool{}, startErr: map[string]error{},
		since: map[string]time.Time{}, now: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)}
}

func (f *sdFake) Reload(context.Context) error { f.calls = append(f.calls, "reload"); return nil }
func (f *sdFake) Enabled(_ context.Context, u string) (bool, error) {
	return f.enabled[u], nil
}

func (f *sdFake) Enable(_ context.Context, units ...string) error {
	f.calls = append(f.calls, "enable "+strings.Join(units, " "))
	for _, u := range units {
		f.enabled[u] = true
	}
	return nil
}

func (f *sdFake) Disable(_ context.Context, units ...string) error {
	for _, u := range units {
		f.calls = append(f.calls, "disable "+u)
		f.enabled[u] = false
	}
	return nil
}

func (f *sdFake) Active(_ context.Context, u string) (bool, error) { return f.active[u], nil }
func (f *sdFake) Start(ctx context.Context, u string) error {
	f.calls = append(f.calls, "start "+u)
	if d, ok := ctx.Deadline(); ok {
		if f.deadline == nil {
			f.deadline = map[string]time.Duration{}
		}
		f.deadline[u] = time.Until(d)
	}
	if err := f.startErr[u]; err != nil {
		return err
	}
	f.active[u], f.since[u] = true, f.now
	return nil
}

func (f *sdFake) Restart(_ context.Context, u string) error {
	f.calls = append(f.calls, "restart "+u)
	f.active[u] = false
	if err := f.startErr[u]; err != nil {
		return err
	}
	f.active[u], f.since[u] = true, f.now
	return nil
}

func (f *sdFake) ActiveSince(_ context.Context, u string) (time.Time, error) {
	f.calls = append(f.calls, "since "+u)
	return f.since[u], nil
}

func (f *sdFake) JournalTail(_ context.Context, u string, n int) (string, error) {
	f.calls = append(f.calls, "journal "+u)
	return f.journal, nil
}

// sdEnv is an Env over a temp Root, a temp bundle with a bundle.json, and
// sd.
func sdEnv(t *testing.T, sd *sdFake, files ...plan.File) *engine.Env {
	t.Helper()
	bundle := t.TempDir()
	if err := os.WriteFile(filepath.Join(bundle, plan.ManifestName), []byte(`{"format":"test"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	return &engine.Env{Root: t.TempDir(), Bundle: bundle, Manifest: &plan.Manifest{Files: files}, Systemd: sd}
}

// sdRun walks steps as the runner does (Check, Apply when needed, Verify)
// and returns the IDs it applied.
func sdRun(t *testing.T, env *engine.Env, steps []engine.Step) []string {
	t.Helper()
	ctx := context.Background()
	var applied []string
	for _, s := range steps {
		st, err := s.Check(ctx, env)
		if err != nil {
			t.Fatalf("%s: check: %v", s.ID(), err)
		}
		if !st.Converged {
			if len(st.Diff) == 0 {
				t.Errorf("%s: needs change with no diff", s.ID())
			}
			if err := s.Apply(ctx, env); err != nil {
				t.Fatalf("%s: apply: %v", s.ID(), err)
			}
			applied = append(applied, s.ID())
		}
		if err := s.Verify(ctx, env); err != nil {
			t.Fatalf("%s: verify: %v", s.ID(), err)
		}
	}
	return applied
}

func sdWrite(t *testing.T, env *engine.Env, p, content string) {
	t.Helper()
	full, err := env.Path(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestUnitsOrder(t *testing.T) {
	units := []plan.Unit{
		{Name: "containerd.service", Start: true},
		{Name: "etcd.service", Start: true},
		{Name: "flannel-netconf.service", Start: false},
		{Name: "kubelet.service", Start: true},
	}
	var ids []string
	for _, s := range Units(units) {
		ids = append(ids, s.ID())
	}
	want := []string{
		"systemd/daemon-reload", "systemd/enable",
		"systemd/start/containerd.service", "systemd/start/etcd.service", "systemd/start/kubelet.service",
	}
	if !reflect.DeepEqual(ids, want) {
		t.Errorf("step IDs\n%q\nwant\n%q", ids, want)
	}
}

func TestUnitsReloadConvergesOnStamp(t *testing.T) {
	sd := newSDFake()
	env := sdEnv(t, sd,
		plan.File{Path: "/etc/systemd/system/etcd.service"},
		plan.File{Path: "/etc/systemd/system/kubelet.service.d/10-kubebake.conf"},
		plan.File{Path: "/etc/kubernetes/kubelet.yaml"}, // not a unit file
	)
	sdWrite(t, env, "/etc/systemd/system/etcd.service", "[Service]\nExecStart=/opt/etcd/etcd\n")
	sdWrite(t, env, "/etc/systemd/system/kubelet.service.d/10-kubebake.conf", "[Service]\n")
	sdWrite(t, env, "/usr/lib/systemd/system/containerd.service", "[Service]\n") // packaged, not in the manifest
	reload := Units([]plan.Unit{{Name: "containerd.service"}, {Name: "etcd.service"}})[0]
	ctx := context.Background()

	// First run: no stamp, reload.
	if got := sdRun(t, env, []engine.Step{reload}); !reflect.DeepEqual(got, []string{"systemd/daemon-reload"}) {
		t.Fatalf("first run applied %q", got)
	}
	stamp, err := os.ReadFile(filepath.Join(env.Root, UnitsStampPath))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/etc/systemd/system/etcd.service", "/etc/systemd/system/kubelet.service.d/10-kubebake.conf", "/usr/lib/systemd/system/containerd.service"} {
		if !strings.Contains(string(stamp), "  "+p+"\n") {
			t.Errorf("stamp lacks %s:\n%s", p, stamp)
		}
	}
	if strings.Contains(string(stamp), "kubelet.yaml") {
		t.Errorf("stamp covers a non-unit file:\n%s", stamp)
	}

	// Nothing changed: converged, no reload.
	if got := sdRun(t, env, []engine.Step{reload}); len(got) != 0 {
		t.Fatalf("second run applied %q", got)
	}
	if n := strings.Count(strings.Join(sd.calls, ","), "reload"); n != 1 {
		t.Fatalf("%d reloads, want 1: %q", n, sd.calls)
	}

	// A changed unit file: needs a reload, and the diff names the file.
	sdWrite(t, env, "/etc/systemd/system/etcd.service", "[Service]\nExecStart=/opt/etcd/etcd --debug\n")
	st, err := reload.Check(ctx, env)
	if err != nil || st.Converged || !strings.Contains(strings.Join(st.Diff, " "), "/etc/systemd/system/etcd.service") {
		t.Fatalf("after a change: %+v, %v", st, err)
	}
	if err := reload.Verify(ctx, env); err == nil {
		t.Error("Verify passed with a stale stamp")
	}
	if got := sdRun(t, env, []engine.Step{reload}); len(got) != 1 {
		t.Fatalf("run after a change applied %q", got)
	}
	if got := sdRun(t, env, []engine.Step{reload}); len(got) != 0 {
		t.Fatalf("run after the reload applied %q", got)
	}
}

func TestUnitsEnableStartOnlyWhenNeeded(t *testing.T) {
	sd := newSDFake()
	sd.enabled["containerd.service"], sd.active["containerd.service"] = true, true // already up (the images step started it)
	sd.enabled["etcd.service"] = true                                              // enabled, not running
	env := sdEnv(t, sd)
	steps := Units([]plan.Unit{
		{Name: "containerd.service", Start: true},
		{Name: "etcd.service", Start: true},
		{Name: "flannel-netconf.service"},
		{Name: "kubelet.service", Start: true},
	})
	got := sdRun(t, env, steps)
	want := []string{
		"systemd/daemon-reload", "systemd/enable",
		"systemd/start/etcd.service", "systemd/start/kubelet.service",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("applied\n%q\nwant\n%q", got, want)
	}
	wantCalls := []string{"reload", "enable flannel-netconf.service kubelet.service", "start etcd.service", "start kubelet.service"}
	if !reflect.DeepEqual(sd.calls, wantCalls) {
		t.Errorf("systemd calls\n%q\nwant\n%q", sd.calls, wantCalls)
	}
	if sd.active["flannel-netconf.service"] {
		t.Error("flannel-netconf started though Start is false")
	}

	// Second run: nothing to do.
	sd.calls = nil
	if got := sdRun(t, env, steps); len(got) != 0 || len(sd.calls) != 0 {
		t.Errorf("second run applied %q, calls %q", got, sd.calls)
	}
}

func TestUnitsStartFailureCarriesJournal(t *testing.T) {
	sd := newSDFake()
	jobErr := errors.New(`start etcd.service: job result "failed"`)
	sd.startErr["etcd.service"] = jobErr
	sd.journal = "etcd[812]: listen tcp 10.4.7.12:2379: bind: cannot assign requested address\nsystemd[1]: etcd.service: main process exited\n"
	env := sdEnv(t, sd)
	start := Units([]plan.Unit{{Name: "etcd.service", Start: true}})[2]

	err := start.Apply(context.Background(), env)
	if !errors.Is(err, jobErr) {
		t.Fatalf("Apply: %v, want it to wrap the job error", err)
	}
	for _, s := range []string{"cannot assign requested address", "main process exited", "journal lines of etcd.service"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error lacks %q:\n%s", s, err)
		}
	}
	// A unit that dies after its job is done: Verify reports the journal too.
	sd.active["etcd.service"] = false
	if err := start.Verify(context.Background(), env); err == nil || !strings.Contains(err.Error(), "bind") {
		t.Errorf("Verify: %v", err)
	}
}

// changedAt stands in for the runner's Env.ChangedAt: file step ID → when
// it changed the host for this bundle.
func changedAt(m map[string]time.Time) func(string) (time.Time, bool) {
	return func(id string) (time.Time, bool) {
		t, ok := m[id]
		return t, ok
	}
}

func TestUnitsRestartOnChangedWatchedFiles(t *testing.T) {
	const (
		kubelet = "kubelet.service"
		conf    = "/opt/kubernetes/conf/kubelet-config.yaml"
		cert    = "/opt/kubernetes/certs/kubelet-server.pem"
		bin     = "/opt/kubernetes/bin/kubelet"
		other   = "/opt/kubernetes/conf/kube-proxy-config.yaml"
	)
	watch := []string{bin, cert, conf, "/etc/systemd/system/kubelet.service"}
	up := time.Date(2025, 6, 1, 10, 0, 0, 0, time.UTC) // kubelet active since
	before, after := up.Add(-time.Hour), up.Add(time.Hour)
	for _, tc := range []struct {
		name    string
		active  bool
		changed map[string]time.Time // file steps of this bundle that changed the host
		want    []string             // diff; nil: converged
		calls   []string             // systemd calls of Check and Apply
	}{
		{
			name: "active, a watched file changed after it became active", active: true,
			changed: map[string]time.Time{"file/" + conf: after, "file/" + other: after},
			want:    []string{"restart kubelet.service: " + conf + " changed"},
			calls:   []string{"since kubelet.service", "restart kubelet.service"},
		},
		{
			name: "active, two watched files changed, one before", active: true,
			changed: map[string]time.Time{"file/" + conf: after, "file/" + bin: after, "file/" + cert: before},
			want:    []string{"restart kubelet.service: " + bin + ", " + conf + " changed"},
			calls:   []string{"since kubelet.service", "restart kubelet.service"},
		},
		{
			name: "active, changed before it became active (first install)", active: true,
			changed: map[string]time.Time{"file/" + conf: before, "file/" + cert: before},
			calls:   []string{"since kubelet.service"},
		},
		{
			name: "active, only an unwatched file changed", active: true,
			changed: map[string]time.Time{"file/" + other: after},
		},
		{
			name: "active, nothing changed", active: true,
		},
		{
			name: "inactive: started as before, not restarted", active: false,
			changed: map[string]time.Time{"file/" + conf: after},
			want:    []string{"start kubelet.service"},
			calls:   []string{"start kubelet.service"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sd := newSDFake()
			sd.enabled[kubelet], sd.active[kubelet] = true, tc.active
			if tc.active {
				sd.since[kubelet] = up
			}
			sd.now = after.Add(time.Minute)
			env := sdEnv(t, sd)
			env.ChangedAt = changedAt(tc.changed)
			start := Units([]plan.Unit{{Name: kubelet, Start: true, Watch: watch}})[2]
			ctx := context.Background()

			st, err := start.Check(ctx, env)
			if err != nil {
				t.Fatal(err)
			}
			if st.Converged != (tc.want == nil) || !reflect.DeepEqual(st.Diff, tc.want) {
				t.Fatalf("Check = %+v, want diff %q", st, tc.want)
			}
			if !st.Converged {
				if err := start.Apply(ctx, env); err != nil {
					t.Fatal(err)
				}
				if err := start.Verify(ctx, env); err != nil {
					t.Fatal(err)
				}
			}
			if !reflect.DeepEqual(sd.calls, tc.calls) { // the fake records no Active calls
				t.Errorf("systemd calls %q, want %q", sd.calls, tc.calls)
			}
			// The next run (the same records, the unit now active since
			// after them) has nothing to do.
			st, err = start.Check(ctx, env)
			if err != nil || !st.Converged {
				t.Errorf("Check after: %+v, %v; want converged", st, err)
			}
		})
	}
}

func TestUnitsNoChangeHookNoRestart(t *testing.T) {
	sd := newSDFake()
	sd.active["kubelet.service"] = true
	env := sdEnv(t, sd) // ChangedAt nil: steps run outside the runner
	start := Units([]plan.Unit{{Name: "kubelet.service", Start: true, Watch: []string{"/etc/x"}}})[2]
	if st, err := start.Check(context.Background(), env); err != nil || !st.Converged || len(sd.calls) != 0 {
		t.Errorf("Check = %+v, %v, calls %q; want converged, no calls", st, err, sd.calls)
	}
}

func TestUnitsRestartFailureCarriesJournal(t *testing.T) {
	sd := newSDFake()
	sd.active["kubelet.service"] = true
	jobErr := errors.New(`restart kubelet.service: job result "failed"`)
	sd.startErr["kubelet.service"] = jobErr
	sd.journal = "kubelet[901]: failed to load kubelet config file: invalid configuration\n"
	env := sdEnv(t, sd)
	env.ChangedAt = changedAt(map[string]time.Time{"file//opt/kubernetes/conf/kubelet-config.yaml": sd.now})
	start := Units([]plan.Unit{{Name: "kubelet.service", Start: true, Watch: []string{"/opt/kubernetes/conf/kubelet-config.yaml"}}})[2]
	ctx := context.Background()
	if st, err := start.Check(ctx, env); err != nil || st.Converged {
		t.Fatalf("Check = %+v, %v; want a restart", st, err)
	}
	err := start.Apply(ctx, env)
	if !errors.Is(err, jobErr) {
		t.Fatalf("Apply: %v, want it to wrap the job error", err)
	}
	for _, s := range []string{"invalid configuration", "journal lines of kubelet.service"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error lacks %q:\n%s", s, err)
		}
	}
	if err := start.Verify(ctx, env); err == nil || !strings.Contains(err.Error(), "invalid configuration") {
		t.Errorf("Verify after a failed restart: %v", err)
	}
}

// TestUpgradeRestartsThroughRunner walks a new bundle's files and units
// with the real runner: the dry run shows the restart, a run that stops
// after the files restarts on the next run, and the run after that does
// nothing. Only the file whose bytes change counts.
func TestUpgradeRestartsThroughRunner(t *testing.T) {
	needRoot(t)
	const (
		unit = "kubelet.service"
		conf = "/opt/kubernetes/conf/kubelet-config.yaml"
		same = "/opt/kubernetes/certs/ca.pem"
	)
	env := fileEnv(t, []testFile{{dest: conf, content: "new config\n", mode: "0644"}, {dest: same, content: "ca\n", mode: "0644"}})
	sdWrite(t, env, conf, "old config\n")
	sdWrite(t, env, same, "ca\n")
	sd := newSDFake()
	env.Systemd = sd
	clock := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	env.Now = func() time.Time { clock = clock.Add(time.Second); return clock }
	sd.enabled[unit], sd.active[unit], sd.since[unit] = true, true, clock.Add(-time.Hour) // running the old bundle
	sd.now = clock.Add(time.Hour)                                                         // when a restart happens
	fs, err := Files(env.Manifest.Files)
	if err != nil {
		t.Fatal(err)
	}
	steps := append(fs, Units([]plan.Unit{{Name: unit, Start: true, Watch: []string{same, conf}}})...)
	ctx := context.Background()
	restart := "restart kubelet.service: " + conf + " changed"
	outcome := func(res engine.Result) (string, []string) {
		for _, s := range res.Steps {
			if s.ID == "systemd/start/"+unit {
				return s.Outcome, s.Diff
			}
		}
		t.Fatalf("no start step in %+v", res)
		return "", nil
	}

	var log strings.Builder
	res, err := engine.Run(ctx, env, steps, engine.RunOptions{Digest: "sha256:new", DryRun: true, Log: &log})
	if err != nil {
		t.Fatal(err)
	}
	if o, d := outcome(res); o != engine.OutcomeWouldChange || !reflect.DeepEqual(d, []string{restart}) {
		t.Fatalf("dry run: %s %q, want %q", o, d, restart)
	}
	if !strings.Contains(log.String(), "        "+restart+"\n") {
		t.Errorf("dry run log lacks the restart:\n%s", log.String())
	}

	if slices.Contains(sd.calls, "restart "+unit) {
		t.Fatalf("the dry run restarted: %q", sd.calls)
	}
	sd.calls = nil

	// Dies after the files: the unit still runs the old config.
	if _, err := engine.Run(ctx, env, steps, engine.RunOptions{Digest: "sha256:new", StopAfter: len(fs)}); !errors.Is(err, engine.ErrStoppedForTest) {
		t.Fatal(err)
	}
	if len(sd.calls) != 0 {
		t.Fatalf("systemd calls before the units: %q", sd.calls)
	}
	res, err = engine.Run(ctx, env, steps, engine.RunOptions{Digest: "sha256:new"})
	if err != nil {
		t.Fatal(err)
	}
	if o, d := outcome(res); o != engine.OutcomeChanged || !reflect.DeepEqual(d, []string{restart}) {
		t.Fatalf("run after the crash: %s %q, want changed %q", o, d, restart)
	}
	if !slices.Contains(sd.calls, "restart "+unit) {
		t.Fatalf("no restart: %q", sd.calls)
	}
	sd.calls = nil
	res, err = engine.Run(ctx, env, steps, engine.RunOptions{Digest: "sha256:new"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Count(engine.OutcomeChanged) != 0 || slices.Contains(sd.calls, "restart "+unit) {
		t.Fatalf("third run changed %d steps, calls %q", res.Count(engine.OutcomeChanged), sd.calls)
	}
}

// A unit's StartTimeout becomes the start job's deadline (etcd waits for
// peers booting elsewhere); without one the host's default applies.
func TestUnitsStartTimeout(t *testing.T) {
	f := newSDFake()
	env := &engine.Env{Systemd: f}
	steps := Units([]plan.Unit{{Name: "etcd.service", Start: true, StartTimeout: "1h"}, {Name: "kubelet.service", Start: true}})
	for _, s := range steps[1:] {
		if err := s.Apply(context.Background(), env); err != nil {
			t.Fatal(err)
		}
	}
	if d, ok := f.deadline["etcd.service"]; !ok || d < 59*time.Minute || d > time.Hour {
		t.Errorf("etcd.service start deadline %v (set %v), want ~1h", d, ok)
	}
	if d, ok := f.deadline["kubelet.service"]; ok {
		t.Errorf("kubelet.service start has a deadline %v; want none from the step (the host's default applies)", d)
	}
}
