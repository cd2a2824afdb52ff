package host

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// procSys makes a fake <root>/proc/sys tree with real files.
func procSys(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for rel, v := range files {
		p := filepath.Join(root, "proc", "sys", rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestSysctlGetSet(t *testing.T) {
	root := procSys(t, map[string]string{
		"net/ipv4/ip_forward":                 "0\n",
		"net/ipv4/ip_local_port_range":        "32768\t60999\n",
		"net/ipv4/conf/eth0.100/rp_filter":    "1\n",
		"net/bridge/bridge-nf-call-iptables":  "0\n",
		"net/netfilter/nf_conntrack_max":      "262144\n",
		"net/bridge/bridge-nf-call-ip6tables": "0\n",
	})
	s := NewSysctl(root)
	for _, tc := range []struct{ name, key, before, set string }{
		{"dots", "net.ipv4.ip_forward", "0", "1"},
		{"dash in key", "net.bridge.bridge-nf-call-iptables", "0", "1"},
		{"multi value", "net.ipv4.ip_local_port_range", "32768\t60999", "1024 65000"},
		{"slashes for a dotted name", "net/ipv4/conf/eth0.100/rp_filter", "1", "2"},
		{"shorter value truncates", "net.netfilter.nf_conntrack_max", "262144", "7"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if v, err := s.Get(tc.key); err != nil || v != tc.before {
				t.Fatalf("Get = %q, %v; want %q", v, err, tc.before)
			}
			if err := s.Set(tc.key, tc.set); err != nil {
				t.Fatal(err)
			}
			if v, err := s.Get(tc.key); err != nil || v != tc.set {
				t.Fatalf("Get after Set = %q, %v; want %q", v, err, tc.set)
			}
		})
	}
	if b, _ := os.ReadFile(filepath.Join(root, "proc/sys/net/ipv4/ip_forward")); string(b) != "1\n" {
		t.Errorf("file holds %q", b)
	}
}

func TestSysctlMissingKey(t *testing.T) {
	root := procSys(t, map[string]string{"net/ipv4/ip_forward": "1\n"})
	s := NewSysctl(root)
	if _, err := s.Get("net.bridge.bridge-nf-call-iptables"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Get missing = %v, want fs.ErrNotExist", err)
	}
	if err := s.Set("net.bridge.bridge-nf-call-iptables", "1"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Set missing = %v, want fs.ErrNotExist", err)
	}
	if _, err := os.Stat(filepath.Join(root, "proc/sys/net/bridge")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Set created files: %v", err)
	}
}

func TestSysctlRefusesBadKeys(t *testing.T) {
	s := NewSysctl(t.TempDir())
	for _, key := range []string{"", "net..ipv4", "../../etc/passwd", "/etc/passwd", "net/../../x", "net.ipv4."} {
		if _, err := s.Get(key); err == nil || errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Get(%q) = %v, want a bad-key error", key, err)
		}
		if err := s.Set(key, "1"); err == nil || errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Set(%q) = %v, want a bad-key error", key, err)
		}
	}
}

// TestSysctlRealProc reads the running kernel's /proc/sys read-only.
func TestSysctlRealProc(t *testing.T) {
	if _, err := os.Stat("/proc/sys/kernel/ostype"); err != nil {
		t.Skip("no /proc/sys")
	}
	if v, err := NewSysctl("/").Get("kernel.ostype"); err != nil || v != "Linux" {
		t.Errorf("kernel.ostype = %q, %v", v, err)
	}
}
