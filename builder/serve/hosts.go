package serve

import (
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"

	"github.com/kubebake/kubebake/builder/spec"
)

// Host is a machine whose files are served only to its addresses.
type Host struct {
	Name string
	IPs  []netip.Addr
}

// SpecHosts returns the spec's hosts with their addresses (hosts[].ip).
func SpecHosts(s *spec.Spec) ([]Host, error) {
	out := make([]Host, 0, len(s.Hosts))
	for i, h := range s.Hosts {
		ip, err := netip.ParseAddr(h.IP)
		if err != nil {
			return nil, fmt.Errorf("%w: hosts[%d] %s: ip %q: %w", ErrHosts, i, h.Name, h.IP, err)
		}
		out = append(out, Host{Name: h.Name, IPs: []netip.Addr{ip}})
	}
	return out, nil
}

// hostTable answers "whose is this path" and "who is this address".
type hostTable struct {
	byName map[string]Host       // lower-case name → host
	byIP   map[netip.Addr]string // address → name
}

func newHostTable(hosts []Host) (*hostTable, error) {
	t := &hostTable{byName: map[string]Host{}, byIP: map[netip.Addr]string{}}
	for _, h := range hosts {
		name := strings.ToLower(h.Name)
		if name == "" || strings.ContainsAny(name, "./\\ \t\n") {
			return nil, fmt.Errorf("%w: host name %q", ErrHosts, h.Name)
		}
		if _, dup := t.byName[name]; dup {
			return nil, fmt.Errorf("%w: host %s listed twice", ErrHosts, h.Name)
		}
		if len(h.IPs) == 0 {
			return nil, fmt.Errorf("%w: host %s has no address", ErrHosts, h.Name)
		}
		for _, ip := range h.IPs {
			ip = ip.Unmap()
			if other, dup := t.byIP[ip]; dup {
				return nil, fmt.Errorf("%w: %s is the address of both %s and %s", ErrHosts, ip, other, h.Name)
			}
			t.byIP[ip] = h.Name
		}
		t.byName[name] = h
	}
	return t, nil
}

// owners returns the hosts a slash-separated relative path belongs to: each
// host whose name is a path component's stem (the part before its first
// dot), compared without case. Sorted, without duplicates.
func (t *hostTable) owners(rel string) []string {
	var out []string
	for _, comp := range strings.Split(rel, "/") {
		stem, _, _ := strings.Cut(comp, ".")
		if h, ok := t.byName[strings.ToLower(stem)]; ok && !slices.Contains(out, h.Name) {
			out = append(out, h.Name)
		}
	}
	sort.Strings(out)
	return out
}

func (t *hostTable) addrs(name string) string {
	h := t.byName[strings.ToLower(name)]
	s := make([]string, len(h.IPs))
	for i, ip := range h.IPs {
		s[i] = ip.String()
	}
	return strings.Join(s, ",")
}
