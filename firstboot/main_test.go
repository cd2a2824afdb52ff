package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kubebake/kubebake/firstboot/engine"
	"github.com/kubebake/kubebake/firstboot/plan"
)

type probe struct{}

func (probe) Addresses() ([]string, error) { return []string{"10.4.7.21/24"}, nil }
func (probe) OSRelease() (map[string]string, error) {
	return map[string]string{"ID": "centos", "VERSION_ID": "7"}, nil
}
func (probe) Kernel() (string, error)         { return "3.10.0", nil }
func (probe) SELinux() (string, error)        { return "disabled", nil }
func (probe) UnitActive(string) (bool, error) { return false, nil }
func (probe) SwapOn() (bool, error)           { return false, nil }
func (probe) TimeSynced() (bool, error)       { return true, nil }

type systemd struct{ engine.Systemd }

func (systemd) Enabled(context.Context, string) (bool, error) { return false, nil }
func (systemd) Disable(context.Context, ...string) error      { return nil }
func (systemd) Reload(context.Context) error                  { return nil }

func fakeEffects(_ context.Context, env *engine.Env, _ bool) (func(), error) {
	env.Probe, env.Systemd = probe{}, systemd{}
	return func() {}, nil
}

func bundle(t *testing.T) string {
	dir := t.TempDir()
	content := []byte("hello\n")
	sum := sha256.Sum256(content)
	m := &plan.Manifest{Format: plan.Format, Host: plan.Host{Name: "n1", IP: "10.4.7.21"},
		Files: []plan.File{{Path: "/etc/hello", Source: "rootfs/etc/hello", Mode: "0644", Owner: "root:root", Size: 6, SHA256: hex.EncodeToString(sum[:])}}}
	mj, _ := plan.Encode(m)
	os.MkdirAll(filepath.Join(dir, "rootfs/etc"), 0o755)
	os.WriteFile(filepath.Join(dir, "rootfs/etc/hello"), content, 0o644)
	os.WriteFile(filepath.Join(dir, "bundle.json"), mj, 0o644)
	ms := sha256.Sum256(mj)
	os.WriteFile(filepath.Join(dir, "SHA256SUMS"), fmt.Appendf(nil, "%x  bundle.json\n%x  rootfs/etc/hello\n", ms, sum), 0o644)
	return dir
}

func runMain(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &out, &errb, func(k string) string { return env[k] }, fakeEffects)
	return code, out.String(), errb.String()
}

func TestHelpDocumentsExitCodes(t *testing.T) {
	code, _, stderr := runMain(t, nil, "--help")
	if code != 0 || !strings.Contains(stderr, "10+N    step [N/M] failed") || !strings.Contains(stderr, "-dry-run") {
		t.Errorf("code %d help:\n%s", code, stderr)
	}
	if code, _, _ := runMain(t, nil, "frobnicate"); code != 2 {
		t.Errorf("unknown command exit %d", code)
	}
}

func TestRunDryRunStatus(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to chown")
	}
	b, root := bundle(t), t.TempDir()
	code, _, stderr := runMain(t, nil, "--bundle", b, "--root", root, "--dry-run")
	if code != 0 || !strings.Contains(stderr, "file//etc/hello: would change\n        create /etc/hello (0644 root, 6 bytes)") {
		t.Fatalf("dry run %d:\n%s", code, stderr)
	}
	if ents, _ := os.ReadDir(root); len(ents) != 0 {
		t.Fatalf("dry run wrote %v", ents)
	}
	code, _, stderr = runMain(t, map[string]string{engine.StopAfterEnv: "3"}, "run", "--bundle", b, "--root", root)
	if code != 99 {
		t.Fatalf("stop hook exit %d:\n%s", code, stderr)
	}
	code, stdout, _ := runMain(t, nil, "status", "--bundle", b, "--root", root)
	if code != 0 || !strings.Contains(stdout, "3 of ") || !strings.Contains(stdout, "file//etc/hello: pending") {
		t.Errorf("status after stop:\n%s", stdout)
	}
	code, _, stderr = runMain(t, nil, "run", "--bundle", b, "--root", root)
	if code != 0 || !strings.Contains(stderr, "file//etc/hello: finished (changed: create /etc/hello") {
		t.Fatalf("run %d:\n%s", code, stderr)
	}
	if got, _ := os.ReadFile(filepath.Join(root, "etc/hello")); string(got) != "hello\n" {
		t.Errorf("installed %q", got)
	}

	// Tamper: the first step fails, exit 11, the last line names it.
	os.WriteFile(filepath.Join(b, "rootfs/etc/hello"), []byte("hellO\n"), 0o644)
	code, _, stderr = runMain(t, nil, "run", "--bundle", b, "--root", root)
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	if last := lines[len(lines)-1]; code != 11 || !strings.HasPrefix(last, "firstboot: step [1/") || !strings.Contains(last, "bundle/integrity: check: bundle integrity: rootfs/etc/hello: sha256 mismatch") || !strings.HasSuffix(last, "(exit 11)") {
		t.Errorf("tampered: exit %d, last line %q", code, last)
	}
}

// firstboot network runs only the routes and iptables steps and never
// touches the state file; with neither in the plan it has nothing to do.
func TestNetworkCommand(t *testing.T) {
	b, root := bundle(t), t.TempDir()
	code, _, stderr := runMain(t, nil, "network", "--bundle", b, "--root", root)
	if code != 0 || !strings.Contains(stderr, "run of 0 steps") {
		t.Errorf("network: exit %d:\n%s", code, stderr)
	}
	if ents, _ := os.ReadDir(root); len(ents) != 0 {
		t.Errorf("network wrote %v under the root", ents)
	}
}
