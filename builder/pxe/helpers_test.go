package pxe

import (
	"bytes"
	"context"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kubebake/kubebake/builder/build"
	"github.com/kubebake/kubebake/builder/spec"
	"github.com/kubebake/kubebake/internal/standin"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

const (
	seedSpec = "../../bundle-spec.yaml"
	// testHash is `openssl passwd -6 -salt kubebakesalt kubebake-test`.
	testHash = "$6$kubebakesalt$Izo0ffEgmR.6n5cep4905uv3rBYYNkt9g9XxVfJbvTqhhK8vCbJaB15mXhfPi1qf6s6Ux3xHQf6FngX83NFbs1"
	// fixedSHA stands for a bundle digest in golden files.
	fixedSHA = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
)

func testEnv(k string) (string, bool) {
	if k == "KUBEBAKE_ROOT_HASH" {
		return testHash, true
	}
	return "", false
}

// seedWithPXE writes the seed's spec plus testdata/pxe-section.yaml (with
// hdss7-200 installed by UEFI on sdb, and the edits given as old, new
// pairs) into dir and loads it.
func seedWithPXE(t *testing.T, dir string, edits ...string) *spec.Spec {
	t.Helper()
	seed, err := os.ReadFile(seedSpec)
	if err != nil {
		t.Fatal(err)
	}
	section, err := os.ReadFile("testdata/pxe-section.yaml")
	if err != nil {
		t.Fatal(err)
	}
	y := string(seed) + string(section)
	edits = append([]string{"    roles: [ops]", "    roles: [ops]\n    pxe: {bootMode: uefi, disk: sdb}"}, edits...)
	for i := 0; i+1 < len(edits); i += 2 {
		if strings.Count(y, edits[i]) != 1 {
			t.Fatalf("edit %q matches %d times", edits[i], strings.Count(y, edits[i]))
		}
		y = strings.Replace(y, edits[i], edits[i+1], 1)
	}
	p := filepath.Join(dir, "bundle-spec.yaml")
	if err := os.WriteFile(p, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	s, rep, err := spec.Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if rep.IsFatal() || rep.Count(spec.Warning) > 0 {
		t.Fatalf("spec with pxe has problems:\n%s", rep)
	}
	return s
}

// bakeSeed bakes the seed's bundles (stand-in artifacts, a stand-in
// firstboot) into dir/out, as builder/build's tests do, and returns the
// spec and the output directory.
func bakeSeed(t *testing.T, edits ...string) (*spec.Spec, string) {
	t.Helper()
	dir := t.TempDir()
	s := seedWithPXE(t, dir, edits...)
	arts := filepath.Join(dir, "artifacts")
	if err := standin.Generate(s, arts, 0); err != nil {
		t.Fatal(err)
	}
	state, out := filepath.Join(dir, "state"), filepath.Join(dir, "out")
	fb := []byte("#!/bin/sh\necho 'firstboot stand-in (builder/pxe tests)'\n")
	if _, err := build.Bake(context.Background(), s, build.WithArtifactsDir(arts), build.WithStateDir(state),
		build.WithStoreDir(filepath.Join(state, "store")), build.WithOutDir(out), build.WithFirstboot(fb)); err != nil {
		t.Fatal(err)
	}
	return s, out
}

// golden compares got with testdata/<name>.golden, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	p := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(p, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from golden (run go test -update and review the diff):\n%s", p, got)
	}
}

// needTool skips when a tool is missing, unless CI is set (then it fails:
// .ci/run installs what the tests need).
func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s not installed (CI must install it)", name)
		}
		t.Skipf("%s not installed", name)
	}
	return p
}
