package cmd

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kubebake/kubebake/builder/spec"
	"github.com/kubebake/kubebake/internal/standin"
)

func run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Main(args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestHelpHasExamples(t *testing.T) {
	for _, c := range []string{"validate", "pull", "mirror", "bake", "build", "pxe", "serve", "certs", "verify", "inspect"} {
		t.Run(c, func(t *testing.T) {
			code, out, _ := run(t, c, "--help")
			if code != 0 || !strings.Contains(out, "Examples:") || !strings.Contains(out, "kubebake "+c) {
				t.Fatalf("exit %d, help:\n%s", code, out)
			}
		})
	}
}

func TestUsageErrorsExit2(t *testing.T) {
	code, _, errs := run(t, "bake", "--no-such-flag")
	if code != 2 || !strings.Contains(errs, "unknown flag: --no-such-flag") {
		t.Fatalf("exit %d: %s", code, errs)
	}
}

func TestValidateReportsPositions(t *testing.T) {
	seed, err := os.ReadFile("../../bundle-spec.yaml")
	if err != nil {
		t.Fatal(err)
	}
	bad := strings.Replace(string(seed), "  - name: hdss7-22\n    ip: 10.4.7.22", "  - name: hdss7-22\n    ip: 10.4.8.22", 1)
	if bad == string(seed) {
		t.Fatal("mutation did not apply")
	}
	p := filepath.Join(t.TempDir(), "bundle-spec.yaml")
	if err := os.WriteFile(p, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errs := run(t, "validate", "-f", p)
	if code != 1 || !strings.Contains(errs, p+":") || !strings.Contains(errs, "hosts[3].ip: 10.4.8.22 is outside nodeNetwork 10.4.7.0/24 — ") ||
		!strings.Contains(errs, "nothing was written") {
		t.Fatalf("exit %d:\n%s", code, errs)
	}
	code, out, _ := run(t, "validate", "-f", "../../bundle-spec.yaml")
	if code != 0 || !strings.Contains(out, "ok: cluster myk8s, 5 hosts") {
		t.Fatalf("seed: exit %d: %s", code, out)
	}
}

// TestCLIFlow drives the commands a user runs, in order, in-process.
func TestCLIFlow(t *testing.T) {
	dir := t.TempDir()
	seed, err := os.ReadFile("../../bundle-spec.yaml")
	if err != nil {
		t.Fatal(err)
	}
	specFile := filepath.Join(dir, "bundle-spec.yaml")
	if err := os.WriteFile(specFile, seed, 0o644); err != nil {
		t.Fatal(err)
	}
	s, rep, err := spec.Load(specFile)
	if err != nil || rep.IsFatal() {
		t.Fatal(err, rep)
	}
	art := filepath.Join(dir, "artifacts")
	if err := standin.Generate(s, art, 0); err != nil {
		t.Fatal(err)
	}
	fb := filepath.Join(dir, "firstboot")
	build := exec.Command("go", "build", "-o", fb, "../../firstboot")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if o, err := build.CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, o)
	}
	state, out := filepath.Join(dir, "state"), filepath.Join(dir, "out")
	t.Setenv("SOURCE_DATE_EPOCH", "1700000000")

	code, stdout, stderr := run(t, "bake", "-f", specFile, "--artifacts", art, "--state", state, "--store", filepath.Join(state, "store"), "--out", out, "--firstboot", fb)
	if code != 0 || !strings.Contains(stdout, "wrote 5 bundles") || !strings.Contains(stderr, "bundle    done") {
		t.Fatalf("bake: exit %d\n%s\n%s", code, stdout, stderr)
	}
	bundles, _ := filepath.Glob(filepath.Join(out, "*.tar.gz"))
	args := append([]string{"verify", "--ca", filepath.Join(state, "pki", "ca.pem")}, bundles...)
	if code, stdout, stderr = run(t, args...); code != 0 || strings.Count(stdout, ": OK") != 6 {
		t.Fatalf("verify: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if code, stdout, _ = run(t, "inspect", filepath.Join(out, "hdss7-21.tar.gz"), "--plan"); code != 0 || !strings.Contains(stdout, "/opt/kubernetes/certs/sa.key") || !strings.Contains(stdout, "7 units") {
		t.Fatalf("inspect: exit %d\n%s", code, stdout)
	}
	if code, stdout, _ = run(t, "certs", "-f", specFile, "--state", state); code != 0 || !strings.Contains(stdout, "system:node:hdss7-21.host.com") {
		t.Fatalf("certs: exit %d\n%s", code, stdout)
	}
	if code, _, stderr = run(t, "certs", "-f", specFile, "--state", state, "--warn-within", "200000h"); code != 1 || !strings.Contains(stderr, "expire within") {
		t.Fatalf("certs --warn-within: exit %d\n%s", code, stderr)
	}

	// A tampered bundle fails verify with exit 1 and says why.
	b, _ := os.ReadFile(filepath.Join(out, "hdss7-11.tar.gz"))
	b[len(b)/2] ^= 0xff
	os.WriteFile(filepath.Join(out, "hdss7-11.tar.gz"), b, 0o644)
	if code, stdout, stderr = run(t, "verify", filepath.Join(out, "hdss7-11.tar.gz")); code != 1 {
		t.Fatalf("tampered verify: exit %d\n%s\n%s", code, stdout, stderr)
	}

	// SOURCE_DATE_EPOCH must be a number.
	t.Setenv("SOURCE_DATE_EPOCH", "yesterday")
	if code, _, stderr = run(t, "bake", "-f", specFile, "--artifacts", art, "--state", state, "--store", filepath.Join(state, "store"), "--out", out, "--firstboot", fb); code != 2 || !strings.Contains(stderr, "SOURCE_DATE_EPOCH") {
		t.Fatalf("bad epoch: exit %d\n%s", code, stderr)
	}
}
