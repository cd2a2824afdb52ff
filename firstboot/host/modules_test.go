package host

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeModprobe puts a modprobe script first in PATH. It appends its
// arguments to <dir>/args and "loads" a module by creating
// <root>/sys/module/<name>; the name "missing" fails like kmod does.
func fakeModprobe(t *testing.T, root string) (argsFile string) {
	t.Helper()
	dir := t.TempDir()
	argsFile = filepath.Join(dir, "args")
	script := `#!/bin/sh
echo "$*" >> '` + argsFile + `'
[ "$1" = "--" ] || { echo "modprobe: want -- first" >&2; exit 2; }
name=$2
if [ "$name" = missing ]; then
	echo "modprobe: FATAL: Module missing not found in directory /lib/modules/$(uname -r)" >&2
	exit 1
fi
mkdir -p '` + root + `'/sys/module/"$name"
`
	if err := os.WriteFile(filepath.Join(dir, "modprobe"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	return argsFile
}

func TestModulesLoadedAndLoad(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "sys/module/br_netfilter"), 0o755); err != nil {
		t.Fatal(err)
	}
	args := fakeModprobe(t, root)
	m := NewModules(root)
	ctx := context.Background()

	for _, tc := range []struct {
		name string
		want bool
	}{{"br_netfilter", true}, {"br-netfilter", true}, {"ip_vs", false}} {
		if ok, err := m.Loaded(tc.name); err != nil || ok != tc.want {
			t.Errorf("Loaded(%s) = %v, %v; want %v", tc.name, ok, err, tc.want)
		}
	}
	if err := m.Load(ctx, "ip_vs"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := m.Loaded("ip_vs"); !ok {
		t.Error("ip_vs not loaded after Load")
	}
	err := m.Load(ctx, "missing")
	if err == nil || !strings.Contains(err.Error(), "FATAL: Module missing not found") {
		t.Errorf("Load(missing) = %v, want modprobe's output in the error", err)
	}
	b, err := os.ReadFile(args)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(b); got != "-- ip_vs\n-- missing\n" {
		t.Errorf("modprobe ran with %q", got)
	}
	for _, bad := range []string{"", "../etc", "-v", "a b"} {
		if _, err := m.Loaded(bad); err == nil {
			t.Errorf("Loaded(%q) accepted", bad)
		}
		if err := m.Load(ctx, bad); err == nil {
			t.Errorf("Load(%q) accepted", bad)
		}
	}
}

func TestModulesNoModprobe(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	m := &Modules{root: t.TempDir(), modprobeDirs: []string{t.TempDir()}}
	err := m.Load(context.Background(), "ip_vs")
	if !errors.Is(err, ErrNoModprobe) {
		t.Errorf("Load without modprobe = %v, want ErrNoModprobe", err)
	}
}

func TestModulesAvailable(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "lib/modules/6.1.0-test")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	dep := "kernel/net/netfilter/ipvs/ip_vs.ko.xz: kernel/net/netfilter/nf_conntrack.ko.xz kernel/lib/libcrc32c.ko.xz\n" +
		"kernel/net/netfilter/nf_conntrack.ko.xz: kernel/lib/libcrc32c.ko.xz\n" +
		"kernel/drivers/net/veth.ko:\n"
	if err := os.WriteFile(filepath.Join(dir, "modules.dep"), []byte(dep), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "modules.builtin"), []byte("kernel/net/bridge/br_netfilter.ko\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	m := &Modules{root: root}
	for name, want := range map[string]bool{
		"ip_vs": true, "nf_conntrack": true, "veth": true, "br_netfilter": true, "br-netfilter": true,
		"libcrc32c":         false, // only a dependency here: not listed as a module line
		"nf_conntrack_ipv4": false, "ip_vs_rr": false,
	} {
		if got, err := m.availableIn("6.1.0-test", name); err != nil || got != want {
			t.Errorf("available(%s) = %v, %v; want %v", name, got, err, want)
		}
	}
	if got, err := m.availableIn("3.10.0-other", "ip_vs"); err != nil || got {
		t.Errorf("available on a kernel without modules.dep = %v, %v", got, err)
	}
}
