//go:build integration

package host_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kubebake/kubebake/firstboot/engine"
	"github.com/kubebake/kubebake/firstboot/host"
	"github.com/kubebake/kubebake/firstboot/plan"
	"github.com/kubebake/kubebake/firstboot/steps"
)

// The real D-Bus path against a real systemd (Debian bookworm, systemd 252)
// booted with systemd-nspawn. PID 1 of the test host need not be systemd:
// the container's /run/dbus is bound to a host directory, so its system bus
// socket appears there, and DBUS_SYSTEM_BUS_ADDRESS points host.NewSystemd
// at it. Needs root, systemd-nspawn (Debian: systemd-container), script
// (util-linux) and a rootfs: $KUBEBAKE_NSPAWN_ROOTFS, or one built once with
// mmdebstrap and cached in ${KUBEBAKE_TESTBED_CACHE:-~/.cache/kubebake-testbed}.
//
//	go test -tags integration -run NSpawn ./firstboot/host/
//
// Not covered here: JournalTail (the host's journalctl cannot read the
// container's volatile journal) and the systemd 219 specifics (the QEMU
// test and CentOS 7 hosts cover those).

const nspawnRootfsKey = "nspawn-dbus-v1" // bump when the package list changes

var testUnits = map[string]string{
	"kbtest-ok.service": `[Unit]
Description=kubebake test: succeeds
[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/true
[Install]
WantedBy=multi-user.target
`,
	"kbtest-fail.service": `[Unit]
Description=kubebake test: fails
[Service]
Type=oneshot
ExecStart=/bin/sh -c 'echo kbtest boom; exit 3'
[Install]
WantedBy=multi-user.target
`,
	"kbtest-daemon.service": `[Unit]
Description=kubebake test: keeps running
[Service]
ExecStart=/bin/sleep infinity
[Install]
WantedBy=multi-user.target
`,
	"kbtest-after.service": `[Unit]
Description=kubebake test: needs kbtest-ok
Requires=kbtest-ok.service
After=kbtest-ok.service
[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/true
[Install]
WantedBy=multi-user.target
`,
}

func nspawnRootfs(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("KUBEBAKE_NSPAWN_ROOTFS"); p != "" {
		return p
	}
	cache := os.Getenv("KUBEBAKE_TESTBED_CACHE")
	if cache == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			t.Skip("no rootfs: set KUBEBAKE_NSPAWN_ROOTFS")
		}
		cache = filepath.Join(home, ".cache", "kubebake-testbed")
	}
	dir := filepath.Join(cache, nspawnRootfsKey)
	if _, err := os.Stat(filepath.Join(dir, "sbin", "init")); err == nil {
		return dir
	}
	if _, err := exec.LookPath("mmdebstrap"); err != nil {
		t.Skip("no cached rootfs and no mmdebstrap to build one")
	}
	tmp := dir + ".tmp"
	os.RemoveAll(tmp)
	if err := os.MkdirAll(cache, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("building %s with mmdebstrap (~35 s, once)", dir)
	out, err := exec.Command("mmdebstrap", "--variant=minbase", "--include=systemd,systemd-sysv,dbus", "bookworm", tmp).CombinedOutput()
	if err != nil {
		t.Fatalf("mmdebstrap: %v\n%s", err, out)
	}
	if err := os.Rename(tmp, dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

// bootNSpawn boots rootfs (volatile: the base stays clean) with the test
// units bound in, and returns the host path of its system bus socket.
func bootNSpawn(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	for _, c := range []string{"systemd-nspawn", "script"} {
		if _, err := exec.LookPath(c); err != nil {
			t.Skipf("no %s (Debian: systemd-container, util-linux)", c)
		}
	}
	rootfs := nspawnRootfs(t)
	dir := t.TempDir()
	bus := filepath.Join(dir, "bus")
	if err := os.Mkdir(bus, 0o755); err != nil {
		t.Fatal(err)
	}
	args := []string{"systemd-nspawn", "--boot", "-D", rootfs, "--volatile=overlay", "--register=no", "--keep-unit",
		"--private-network", "--machine=kbtest" + strconv.Itoa(os.Getpid()), "--bind=" + bus + ":/run/dbus"}
	for name, content := range testUnits {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		args = append(args, "--bind-ro="+p+":/etc/systemd/system/"+name)
	}
	console, err := os.Create(filepath.Join(dir, "console.log"))
	if err != nil {
		t.Fatal(err)
	}
	// nspawn's console needs a pseudo-terminal (TESTBED.md).
	cmd := exec.Command("script", "-qfec", strings.Join(args, " "), "/dev/null")
	cmd.Stdout, cmd.Stderr = console, console
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	sock := filepath.Join(bus, "system_bus_socket")
	// godbus reads the system bus address from the environment.
	t.Setenv("DBUS_SYSTEM_BUS_ADDRESS", "unix:path="+sock)
	t.Cleanup(func() {
		// Power off through the container's own systemd; kill the group
		// we started if it does not go.
		if s, err := connect(sock); err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_ = s.Start(ctx, "poweroff.target") // the bus goes away before the result
			cancel()
		}
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		if t.Failed() {
			b, _ := os.ReadFile(console.Name())
			t.Logf("container console:\n%s", b)
		}
	})
	// Poll until dbus answers and reports itself active (boot takes ~1 s).
	deadline := time.Now().Add(90 * time.Second)
	for {
		if s, err := connect(sock); err == nil {
			ok, err := s.Active(context.Background(), "dbus.service")
			s.(interface{ Close() error }).Close()
			if err == nil && ok {
				return sock
			}
		}
		select {
		case err := <-done:
			b, _ := os.ReadFile(console.Name())
			t.Fatalf("systemd-nspawn exited: %v\n%s", err, b)
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("container's system bus not up after 90 s")
		}
	}
}

func connect(sock string) (engine.Systemd, error) {
	if _, err := os.Stat(sock); err != nil {
		return nil, err
	}
	// The connection lives as long as this context.
	return host.NewSystemd(context.Background())
}

func TestNSpawnSystemd(t *testing.T) {
	sock := bootNSpawn(t)
	s, err := connect(sock)
	if err != nil {
		t.Fatal(err)
	}
	defer s.(interface{ Close() error }).Close()
	ctx := context.Background()

	t.Run("host calls", func(t *testing.T) {
		if err := s.Reload(ctx); err != nil {
			t.Fatal(err)
		}
		if ok, err := s.Enabled(ctx, "kbtest-ok.service"); err != nil || ok {
			t.Fatalf("Enabled before enable: %v, %v", ok, err)
		}
		if err := s.Enable(ctx, "kbtest-ok.service"); err != nil {
			t.Fatal(err)
		}
		if ok, err := s.Enabled(ctx, "kbtest-ok.service"); err != nil || !ok {
			t.Fatalf("Enabled after enable: %v, %v", ok, err)
		}
		if err := s.Start(ctx, "kbtest-ok.service"); err != nil {
			t.Fatal(err)
		}
		if ok, err := s.Active(ctx, "kbtest-ok.service"); err != nil || !ok {
			t.Fatalf("Active after start: %v, %v", ok, err)
		}
		if err := s.Disable(ctx, "kbtest-ok.service"); err != nil {
			t.Fatal(err)
		}
		if ok, err := s.Enabled(ctx, "kbtest-ok.service"); err != nil || ok {
			t.Fatalf("Enabled after disable: %v, %v", ok, err)
		}
		err := s.Start(ctx, "kbtest-fail.service")
		if !errors.Is(err, host.ErrJob) || !strings.Contains(err.Error(), `"failed"`) {
			t.Fatalf("Start of a failing unit: %v, want ErrJob with result failed", err)
		}
		if err := s.Start(ctx, "kbtest-missing.service"); err == nil {
			t.Fatal("Start of a missing unit succeeded")
		}
	})

	t.Run("unit steps twice", func(t *testing.T) {
		env := &engine.Env{Root: t.TempDir(), Manifest: &plan.Manifest{}, Systemd: s}
		units := steps.Units([]plan.Unit{{Name: "kbtest-ok.service", Start: true}, {Name: "kbtest-after.service", Start: true}})
		if got := runSteps(t, ctx, env, units); len(got) == 0 {
			t.Fatal("first run applied nothing")
		}
		if got := runSteps(t, ctx, env, units); len(got) != 0 {
			t.Fatalf("second run applied %q", got)
		}
		for _, u := range []string{"kbtest-ok.service", "kbtest-after.service"} {
			if ok, err := s.Active(ctx, u); err != nil || !ok {
				t.Errorf("%s active: %v, %v", u, ok, err)
			}
		}
	})
}

// TestNSpawnRestart: RestartUnit and ActiveEnterTimestamp, the two calls an
// upgrade uses, against a real systemd, and the units step restarting a
// running unit once for a changed watched file.
func TestNSpawnRestart(t *testing.T) {
	sock := bootNSpawn(t)
	s, err := connect(sock)
	if err != nil {
		t.Fatal(err)
	}
	defer s.(interface{ Close() error }).Close()
	ctx := context.Background()
	const unit = "kbtest-daemon.service"

	t.Run("host calls", func(t *testing.T) {
		if since, err := s.ActiveSince(ctx, unit); err != nil || !since.IsZero() {
			t.Fatalf("ActiveSince before start = %v, %v; want the zero time", since, err)
		}
		before := time.Now()
		if err := s.Start(ctx, unit); err != nil {
			t.Fatal(err)
		}
		started, err := s.ActiveSince(ctx, unit)
		if err != nil {
			t.Fatal(err)
		}
		// The container shares the host's clock (CLOCK_REALTIME, µs).
		if started.Before(before.Add(-time.Second)) || started.After(time.Now().Add(time.Second)) {
			t.Fatalf("ActiveSince after start = %v, want about %v", started, before)
		}
		if err := s.Restart(ctx, unit); err != nil {
			t.Fatal(err)
		}
		restarted, err := s.ActiveSince(ctx, unit)
		if err != nil || !restarted.After(started) {
			t.Fatalf("ActiveSince after restart = %v, %v; want after %v", restarted, err, started)
		}
		if ok, err := s.Active(ctx, unit); err != nil || !ok {
			t.Fatalf("Active after restart: %v, %v", ok, err)
		}
		if err := s.Restart(ctx, "kbtest-fail.service"); !errors.Is(err, host.ErrJob) || !strings.Contains(err.Error(), `"failed"`) {
			t.Fatalf("Restart of a failing unit: %v, want ErrJob with result failed", err)
		}
	})

	t.Run("unit steps restart once", func(t *testing.T) {
		const watched = "/etc/kbtest/daemon.conf"
		if err := s.Start(ctx, unit); err != nil { // running on the old file
			t.Fatal(err)
		}
		changed := time.Now() // then a file step of this bundle rewrote it
		env := &engine.Env{Root: t.TempDir(), Manifest: &plan.Manifest{}, Systemd: s,
			ChangedAt: func(id string) (time.Time, bool) { return changed, id == "file/"+watched }}
		units := steps.Units([]plan.Unit{{Name: unit, Start: true, Watch: []string{watched}}})
		start := units[len(units)-1]
		st, err := start.Check(ctx, env)
		if err != nil || st.Converged || len(st.Diff) != 1 || st.Diff[0] != "restart "+unit+": "+watched+" changed" {
			t.Fatalf("Check = %+v, %v; want a restart", st, err)
		}
		runSteps(t, ctx, env, units)
		since, err := s.ActiveSince(ctx, unit)
		if err != nil || since.Before(changed) {
			t.Fatalf("ActiveSince after the run = %v, %v; want after %v", since, err, changed)
		}
		if got := runSteps(t, ctx, env, units); len(got) != 0 {
			t.Fatalf("second run applied %q", got)
		}
	})
}

func runSteps(t *testing.T, ctx context.Context, env *engine.Env, ss []engine.Step) []string {
	t.Helper()
	var applied []string
	for _, s := range ss {
		st, err := s.Check(ctx, env)
		if err != nil {
			t.Fatalf("%s: check: %v", s.ID(), err)
		}
		if !st.Converged {
			if err := s.Apply(ctx, env); err != nil {
				t.Fatalf("%s: apply: %v", s.ID(), err)
			}
			applied = append(applied, s.ID())
		}
		if err := s.Verify(ctx, env); err != nil {
			t.Fatalf("%s: verify: %v", s.ID(), err)
		}
	}
	t.Logf("applied: %q", applied)
	return applied
}
