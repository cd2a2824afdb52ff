package steps

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kubebake/kubebake/firstboot/engine"
	"github.com/kubebake/kubebake/firstboot/plan"
)

type fakeProbe struct {
	addrs     []string
	osRel     map[string]string
	kernel    string
	selinux   string
	active    map[string]bool
	swap      bool
	synced    bool
	syncedErr error
}

func (p *fakeProbe) Addresses() ([]string, error)          { return p.addrs, nil }
func (p *fakeProbe) OSRelease() (map[string]string, error) { return p.osRel, nil }
func (p *fakeProbe) Kernel() (string, error)               { return p.kernel, nil }
func (p *fakeProbe) SELinux() (string, error)              { return p.selinux, nil }
func (p *fakeProbe) UnitActive(n string) (bool, error)     { return p.active[n], nil }
func (p *fakeProbe) SwapOn() (bool, error)                 { return p.swap, nil }
func (p *fakeProbe) TimeSynced() (bool, error)             { return p.synced, p.syncedErr }

// fakeExec records commands and applies their effect on the fake probe.
type fakeExec struct {
	p    *fakeProbe
	runs []string
}

func (e *fakeExec) Run(_ context.Context, name string, args ...string) error {
	cmd := strings.Join(append([]string{name}, args...), " ")
	e.runs = append(e.runs, cmd)
	switch cmd {
	case "setenforce 0":
		e.p.selinux = "permissive"
	case "swapoff -a":
		e.p.swap = false
	case "systemctl stop firewalld.service":
		e.p.active["firewalld.service"] = false
	default:
		return errors.New("unexpected command " + cmd)
	}
	return nil
}

type fakeSystemd struct {
	engine.Systemd // unused methods panic
	enabled        map[string]bool
	calls          []string
}

func (s *fakeSystemd) Enabled(_ context.Context, u string) (bool, error) { return s.enabled[u], nil }
func (s *fakeSystemd) Disable(_ context.Context, us ...string) error {
	for _, u := range us {
		s.calls = append(s.calls, "disable "+u)
		s.enabled[u] = false
	}
	return nil
}

func centos() *fakeProbe {
	return &fakeProbe{
		addrs:   []string{"127.0.0.1/8", "10.4.7.21/24"},
		osRel:   map[string]string{"ID": "centos", "VERSION_ID": "7"},
		kernel:  "3.10.0-1160.el7.x86_64",
		selinux: "disabled",
		active:  map[string]bool{},
		synced:  true,
	}
}

var pfHost = plan.Host{Name: "hdss7-21", IP: "10.4.7.21"}

func preEnv(t *testing.T, p *fakeProbe) (*engine.Env, *bytes.Buffer, *fakeExec, *fakeSystemd) {
	var log bytes.Buffer
	ex := &fakeExec{p: p}
	sd := &fakeSystemd{enabled: map[string]bool{}}
	return &engine.Env{Root: t.TempDir(), Probe: p, Exec: ex, Systemd: sd, Log: engine.NewLogger(&log, slog.LevelInfo)}, &log, ex, sd
}

// runPre runs the preflight steps alone, like engine.Run does.
func runPre(env *engine.Env, p plan.Preflight) (engine.Result, error) {
	return engine.Run(context.Background(), env, Preflight(p, pfHost), engine.RunOptions{Digest: "sha256:t"})
}

func TestPreflightCentOSPasses(t *testing.T) {
	env, log, ex, _ := preEnv(t, centos())
	res, err := runPre(env, plan.Preflight{OS: "centos7", MinKernel: "3.10"})
	if err != nil || res.Count(engine.OutcomeConverged) != 6 {
		t.Fatalf("%+v %v", res.Steps, err)
	}
	if log.Len() != 0 || len(ex.runs) != 0 {
		t.Errorf("log %q runs %v", log, ex.runs)
	}
}

func TestPreflightRefusals(t *testing.T) {
	for _, tc := range []struct {
		name  string
		probe func(*fakeProbe)
		pf    plan.Preflight
		id    string
		want  string
	}{
		{"wrong host", func(p *fakeProbe) { p.addrs = []string{"127.0.0.1/8", "10.0.2.15/24"} }, plan.Preflight{}, "preflight/host",
			"no interface holds 10.4.7.21 (this bundle is for host hdss7-21); addresses found: 127.0.0.1/8, 10.0.2.15/24; run with --force to install anyway: preflight refused"},
		{"wrong OS", func(p *fakeProbe) { p.osRel = map[string]string{"ID": "ubuntu", "VERSION_ID": "22.04"} }, plan.Preflight{OS: "centos7"}, "preflight/os",
			"unsupported OS: /etc/os-release says ID=ubuntu VERSION_ID=22.04, this bundle is for centos7 (ID=centos VERSION_ID=7): preflight refused"},
		{"centos 8", func(p *fakeProbe) { p.osRel["VERSION_ID"] = "8" }, plan.Preflight{OS: "centos7"}, "preflight/os",
			"unsupported OS: /etc/os-release says ID=centos VERSION_ID=8, this bundle is for centos7 (ID=centos VERSION_ID=7): preflight refused"},
		{"old kernel", func(p *fakeProbe) { p.kernel = "3.9.11" }, plan.Preflight{OS: "centos7", MinKernel: "3.10"}, "preflight/os",
			"unsupported kernel: 3.9.11 is older than 3.10, the oldest this bundle supports: preflight refused"},
		{"selinux enforcing", func(p *fakeProbe) { p.selinux = "enforcing" }, plan.Preflight{}, "preflight/selinux",
			"SELinux is enforcing and the plan does not let firstboot disable it (preflight.disableSELinux is false): disable it by hand or rebuild the bundle with it set: preflight refused"},
		{"firewalld running", func(p *fakeProbe) { p.active["firewalld.service"] = true }, plan.Preflight{}, "preflight/firewalld",
			"firewalld is running and the plan does not let firstboot stop it (preflight.disableFirewalld is false): stop it by hand or rebuild the bundle with it set: preflight refused"},
		{"swap on", func(p *fakeProbe) { p.swap = true }, plan.Preflight{}, "preflight/swap",
			"swap is on (/proc/swaps) and the plan does not let firstboot turn it off (preflight.disableSwap is false); the kubelet will not start with swap: preflight refused"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := centos()
			tc.probe(p)
			env, _, ex, _ := preEnv(t, p)
			_, err := runPre(env, tc.pf)
			var se *engine.StepError
			if !errors.As(err, &se) || se.ID != tc.id || se.Stage != engine.StageCheck || !errors.Is(err, ErrPreflight) {
				t.Fatalf("err %v", err)
			}
			if se.Err.Error() != tc.want {
				t.Errorf("error\n got %s\nwant %s", se.Err, tc.want)
			}
			if len(ex.runs) != 0 {
				t.Errorf("ran %v", ex.runs)
			}
		})
	}
}

func TestPreflightForceWrongHost(t *testing.T) {
	p := centos()
	p.addrs = []string{"10.0.2.15/24"}
	env, log, _, _ := preEnv(t, p)
	env.Force = true
	if _, err := runPre(env, plan.Preflight{}); err != nil {
		t.Fatal(err)
	}
	if want := "warning: --force: installing anyway: no interface holds 10.4.7.21 (this bundle is for host hdss7-21); addresses found: 10.0.2.15/24\n"; log.String() != want {
		t.Errorf("log %q, want %q", log, want)
	}
}

func TestPreflightDebianTestBed(t *testing.T) {
	p := centos()
	p.osRel = map[string]string{"ID": "debian", "VERSION_ID": "12"}
	p.kernel = "6.1.0-18-amd64"
	env, log, _, _ := preEnv(t, p)
	if _, err := runPre(env, plan.Preflight{OS: "centos7", MinKernel: "3.10"}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(log.String(), "warning: test bed: /etc/os-release says ID=debian VERSION_ID=12, this bundle is for centos7 (ID=centos VERSION_ID=7); continuing\n") {
		t.Errorf("log %q", log)
	}
}

func TestPreflightFixes(t *testing.T) {
	p := centos()
	p.selinux, p.swap = "enforcing", true
	p.active["firewalld.service"] = true
	env, _, ex, sd := preEnv(t, p)
	sd.enabled["firewalld.service"] = true
	os.MkdirAll(filepath.Join(env.Root, "etc/selinux"), 0o755)
	os.WriteFile(filepath.Join(env.Root, "etc/selinux/config"), []byte("# comment\nSELINUX=enforcing\nSELINUXTYPE=targeted\n"), 0o644)
	os.WriteFile(filepath.Join(env.Root, "etc/fstab"), []byte("/dev/sda1 / xfs defaults 0 0\n/dev/sda2 swap swap defaults 0 0\n"), 0o644)
	pf := plan.Preflight{DisableSELinux: true, DisableFirewalld: true, DisableSwap: true}

	var dry bytes.Buffer
	if _, err := engine.Run(context.Background(), env, Preflight(pf, pfHost), engine.RunOptions{Digest: "x", DryRun: true, Log: &dry}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"[3/6] preflight/selinux: would change\n        SELinux enforcing → permissive (setenforce 0)\n        /etc/selinux/config: SELINUX=enforcing → disabled\n",
		"[4/6] preflight/firewalld: would change\n        stop firewalld.service\n        disable firewalld.service\n",
		"[5/6] preflight/swap: would change\n        swap on → off (swapoff -a)\n        /etc/fstab: comment out \"/dev/sda2 swap swap defaults 0 0\"\n",
	} {
		if !strings.Contains(dry.String(), want) {
			t.Errorf("dry run lacks %q:\n%s", want, dry.String())
		}
	}
	if len(ex.runs) != 0 || len(sd.calls) != 0 {
		t.Fatalf("dry run ran %v %v", ex.runs, sd.calls)
	}

	res, err := runPre(env, pf)
	if err != nil {
		t.Fatal(err)
	}
	if res.Count(engine.OutcomeChanged) != 3 {
		t.Errorf("%+v", res.Steps)
	}
	if got := strings.Join(ex.runs, ","); got != "setenforce 0,systemctl stop firewalld.service,swapoff -a" {
		t.Errorf("runs %s", got)
	}
	if got := strings.Join(sd.calls, ","); got != "disable firewalld.service" {
		t.Errorf("systemd %s", got)
	}
	b, _ := os.ReadFile(filepath.Join(env.Root, "etc/selinux/config"))
	if string(b) != "# comment\nSELINUX=disabled\nSELINUXTYPE=targeted\n" {
		t.Errorf("selinux config %q", b)
	}
	b, _ = os.ReadFile(filepath.Join(env.Root, "etc/fstab"))
	if string(b) != "/dev/sda1 / xfs defaults 0 0\n#/dev/sda2 swap swap defaults 0 0\n" {
		t.Errorf("fstab %q", b)
	}
	ex.runs = nil
	if res, err := runPre(env, pf); err != nil || res.Count(engine.OutcomeConverged) != 6 || len(ex.runs) != 0 {
		t.Errorf("re-run %+v %v %v", res.Steps, err, ex.runs)
	}
}

func TestPreflightTimeWarnsOnly(t *testing.T) {
	for _, tc := range []struct {
		name string
		p    func(*fakeProbe)
		want string
	}{
		{"unsynced", func(p *fakeProbe) { p.synced = false }, "warning: the clock is not synchronised (NTP): certificates may look not yet valid or expired to this host's peers\n"},
		{"unknown", func(p *fakeProbe) { p.syncedErr = errors.New("adjtimex: not permitted") }, "warning: clock synchronisation unknown: adjtimex: not permitted\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := centos()
			tc.p(p)
			env, log, _, _ := preEnv(t, p)
			if _, err := runPre(env, plan.Preflight{}); err != nil {
				t.Fatal(err)
			}
			if log.String() != tc.want {
				t.Errorf("log %q", log)
			}
		})
	}
}

func TestKernelLess(t *testing.T) {
	for _, tc := range []struct {
		got, min string
		less     bool
	}{
		{"3.10.0-1160.el7.x86_64", "3.10", false},
		{"3.9.11", "3.10", true},
		{"6.1.0-18-amd64", "3.10", false},
		{"3.10", "3.10.1", true},
		{"4.19.0", "4.19", false},
	} {
		t.Run(tc.got+"<"+tc.min, func(t *testing.T) {
			if kernelLess(tc.got, tc.min) != tc.less {
				t.Errorf("kernelLess(%s, %s) != %v", tc.got, tc.min, tc.less)
			}
		})
	}
}
