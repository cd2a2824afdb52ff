package steps

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/kubebake/kubebake/firstboot/engine"
	"github.com/kubebake/kubebake/firstboot/plan"
)

// sdFake is engine.Systemd in memory: Enable/Start flip the state that
// Enabled/Active read, every call is recorded.
type sdFake struct {
	enabled, active map[string]bool
	startErr        map[string]error // Start fails with this (and leaves the unit inactive)
	journal         string
	calls           []string
}

func newSDFake() *sdFake {
	return &sdFake{enabled: map[string]bool{}, active: map[string]bool{}, startErr: map[string]error{}}
}

func (f *sdFake) Reload(context.Context) error { f.calls = append(f.calls, "reload"); return nil }
func (f *sdFake) Enabled(_ context.Context, u string) (bool, error) {
	return f.enabled[u], nil
}

func (f *sdFake) Enable(_ context.Context, units ...string) error {
	for _, u := range units {
		f.calls = append(f.calls, "enable "+u)
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
func (f *sdFake) Start(_ context.Context, u string) error {
	f.calls = append(f.calls, "start "+u)
	if err := f.startErr[u]; err != nil {
		return err
	}
	f.active[u] = true
	return nil
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
		"systemd/daemon-reload",
		"systemd/enable/containerd.service", "systemd/start/containerd.service",
		"systemd/enable/etcd.service", "systemd/start/etcd.service",
		"systemd/enable/flannel-netconf.service",
		"systemd/enable/kubelet.service", "systemd/start/kubelet.service",
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
		"systemd/daemon-reload",
		"systemd/start/etcd.service",
		"systemd/enable/flannel-netconf.service",
		"systemd/enable/kubelet.service", "systemd/start/kubelet.service",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("applied\n%q\nwant\n%q", got, want)
	}
	wantCalls := []string{"reload", "start etcd.service", "enable flannel-netconf.service", "enable kubelet.service", "start kubelet.service"}
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
