package host

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/kubebake/kubebake/firstboot/engine"
)

// Sysctl reads and writes kernel parameters as files under
// <root>/proc/sys, like sysctl(8). It implements engine.Sysctl.
type Sysctl struct {
	root string
}

var _ engine.Sysctl = (*Sysctl)(nil)

// NewSysctl returns the sysctl accessor for <root>/proc/sys ("/" on a real
// host; a temp dir holding a fake proc/sys tree in tests).
func NewSysctl(root string) engine.Sysctl { return &Sysctl{root: root} }

// SysctlPath maps a key to its file below root: "net.ipv4.ip_forward" →
// <root>/proc/sys/net/ipv4/ip_forward. A key that already uses slashes
// ("net/ipv4/conf/eth0.100/rp_filter", for names holding dots) is taken as
// is, as sysctl(8) does.
func (s *Sysctl) SysctlPath(key string) (string, error) {
	rel := key
	if !strings.Contains(key, "/") {
		rel = strings.ReplaceAll(key, ".", "/")
	}
	if key == "" || strings.HasPrefix(rel, "/") {
		return "", fmt.Errorf("sysctl %q: not a key", key)
	}
	for _, part := range strings.Split(rel, "/") {
		if part == "" || part == "." || part == ".." {
			return "", fmt.Errorf("sysctl %q: not a key", key)
		}
	}
	return filepath.Join(s.root, "proc", "sys", filepath.FromSlash(rel)), nil
}

// Get returns the value with surrounding whitespace trimmed (multi-value
// keys such as net.ipv4.ip_local_port_range keep their inner tabs). A key
// the kernel does not have returns an error wrapping fs.ErrNotExist.
func (s *Sysctl) Get(key string) (string, error) {
	p, err := s.SysctlPath(key)
	if err != nil {
		return "", err
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return "", fmt.Errorf("sysctl %s: %w", key, err)
	}
	return strings.TrimSpace(string(b)), nil
}

// Set writes value in one write(2), as `sysctl -w` does. It never creates
// the file: a missing key returns an error wrapping fs.ErrNotExist.
func (s *Sysctl) Set(key, value string) error {
	p, err := s.SysctlPath(key)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return fmt.Errorf("sysctl %s: %w", key, err)
	}
	_, werr := f.Write([]byte(value + "\n"))
	cerr := f.Close()
	if werr != nil {
		return fmt.Errorf("sysctl %s = %q: %w", key, value, werr)
	}
	if cerr != nil {
		return fmt.Errorf("sysctl %s = %q: %w", key, value, cerr)
	}
	return nil
}
