package host

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestProbeFiles(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	os.MkdirAll(filepath.Join(root, "proc"), 0o755)
	os.WriteFile(filepath.Join(root, "etc/os-release"), []byte("NAME=\"CentOS Linux\"\nID=\"centos\"\n# c\nVERSION_ID=\"7\"\n"), 0o644)
	os.WriteFile(filepath.Join(root, "proc/swaps"), []byte("Filename\tType\tSize\tUsed\tPriority\n/dev/sda2 partition 1 0 -2\n"), 0o644)
	p := NewProbe(root, nil)
	rel, err := p.OSRelease()
	if err != nil || rel["ID"] != "centos" || rel["VERSION_ID"] != "7" || rel["NAME"] != "CentOS Linux" {
		t.Errorf("os-release %v %v", rel, err)
	}
	if on, err := p.SwapOn(); !on || err != nil {
		t.Errorf("swap %v %v", on, err)
	}
	os.WriteFile(filepath.Join(root, "proc/swaps"), []byte("Filename\tType\tSize\tUsed\tPriority\n"), 0o644)
	if on, _ := p.SwapOn(); on {
		t.Error("swap on with header only")
	}
	if m, err := p.SELinux(); m != "disabled" || err != nil {
		t.Errorf("selinux %s %v", m, err)
	}
	os.MkdirAll(filepath.Join(root, "sys/fs/selinux"), 0o755)
	os.WriteFile(filepath.Join(root, "sys/fs/selinux/enforce"), []byte("1"), 0o644)
	if m, _ := p.SELinux(); m != "enforcing" {
		t.Errorf("selinux %s", m)
	}
}

func TestProbeLiveHost(t *testing.T) {
	p := NewProbe("/", nil)
	k, err := p.Kernel()
	if err != nil || !strings.Contains(k, ".") {
		t.Errorf("kernel %q %v", k, err)
	}
	addrs, err := p.Addresses()
	if err != nil || len(addrs) == 0 {
		t.Errorf("addresses %v %v", addrs, err)
	}
	if _, err := p.TimeSynced(); err != nil {
		t.Logf("adjtimex: %v", err)
	}
	if active, err := p.UnitActive("kubebake-no-such.service"); active || err != nil {
		t.Errorf("no-such unit active=%v %v", active, err)
	}
}

func TestExecCarriesOutput(t *testing.T) {
	err := NewExec().Run(context.Background(), "sh", "-c", "echo nope >&2; exit 3")
	if err == nil || !strings.Contains(err.Error(), "exit status 3: nope") {
		t.Errorf("err %v", err)
	}
}
