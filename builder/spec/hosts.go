package spec

import (
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/kubebake/kubebake/firstboot/plan"
)

// HasRole reports whether the host holds role r.
func (h Host) HasRole(r string) bool { return slices.Contains(h.Roles, r) }

// FQDN is the host's name in the host domain: hdss7-21.host.com.
func (h Host) FQDN(s *Spec) string { return s.FQDN(h) }

// FQDN is h's name in the cluster's host domain (name alone if there is none).
func (s *Spec) FQDN(h Host) string {
	if s == nil || s.Cluster.HostDomain == "" {
		return h.Name
	}
	return h.Name + "." + s.Cluster.HostDomain
}

// PXEDisk is the disk h is installed on: hosts[].pxe.disk, else pxe.disk.
func (s *Spec) PXEDisk(h Host) string {
	if h.PXE != nil && h.PXE.Disk != "" {
		return h.PXE.Disk
	}
	if s.PXE == nil {
		return ""
	}
	return s.PXE.Disk
}

// PXEBootMode is how h boots (bios or uefi): hosts[].pxe.bootMode, else
// pxe.bootMode.
func (s *Spec) PXEBootMode(h Host) string {
	if h.PXE != nil && h.PXE.BootMode != "" {
		return h.PXE.BootMode
	}
	if s.PXE == nil {
		return ""
	}
	return s.PXE.BootMode
}

// HostsWithRole returns the hosts holding role, in file order.
func (s *Spec) HostsWithRole(role string) []Host {
	var out []Host
	for _, h := range s.Hosts {
		if h.HasRole(role) {
			out = append(out, h)
		}
	}
	return out
}

// Masters returns the hosts with role master, in file order.
func (s *Spec) Masters() []Host { return s.HostsWithRole(plan.RoleMaster) }

// EtcdMembers returns the hosts with role etcd, in file order.
func (s *Spec) EtcdMembers() []Host { return s.HostsWithRole(plan.RoleEtcd) }

// Nodes returns the hosts with role node (those running a kubelet), in file order.
func (s *Spec) Nodes() []Host { return s.HostsWithRole(plan.RoleNode) }

// Host returns the host named name.
func (s *Spec) Host(name string) (Host, bool) {
	for _, h := range s.Hosts {
		if h.Name == name {
			return h, true
		}
	}
	return Host{}, false
}

// Artifact returns the artifact named name.
func (s *Spec) Artifact(name string) (Artifact, bool) {
	for _, a := range s.Artifacts {
		if a.Name == name {
			return a, true
		}
	}
	return Artifact{}, false
}

// Image returns the image named name.
func (s *Spec) Image(name string) (Image, bool) {
	for _, im := range s.Images {
		if im.Name == name {
			return im, true
		}
	}
	return Image{}, false
}

// ExtractMembers returns a's archive members in sorted order (maps have none).
func (a Artifact) ExtractMembers() []string {
	out := make([]string, 0, len(a.Extract))
	for k := range a.Extract {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// ConntrackModule names the connection-tracking kernel module kube-proxy
// needs. Kernels before 4.19 (CentOS 7's 3.10 among them) split it per
// family and call the IPv4 one nf_conntrack_ipv4; 4.19 merged it into
// nf_conntrack. An unparsable kernel is taken as old.
func ConntrackModule(kernel string) string {
	maj, min, ok := kernelVersion(kernel)
	if !ok || maj < 4 || (maj == 4 && min < 19) {
		return "nf_conntrack_ipv4"
	}
	return "nf_conntrack"
}

// kernelVersion parses "3.10", "3.10.0-1160.el7.x86_64", "5.14".
func kernelVersion(s string) (major, minor int, ok bool) {
	s = strings.TrimSpace(s)
	parts := strings.SplitN(s, ".", 3)
	if len(parts) < 2 {
		return 0, 0, false
	}
	maj, err1 := strconv.Atoi(parts[0])
	mi := parts[1]
	if i := strings.IndexFunc(mi, func(r rune) bool { return r < '0' || r > '9' }); i >= 0 {
		mi = mi[:i]
	}
	mn, err2 := strconv.Atoi(mi)
	if err1 != nil || err2 != nil || maj < 0 || mn < 0 || len(parts[0]) > 4 || len(mi) > 4 {
		return 0, 0, false
	}
	return maj, mn, true
}

// kernelAtLeast reports whether kernel is >= maj.min; false if unparsable.
func kernelAtLeast(kernel string, maj, min int) bool {
	a, b, ok := kernelVersion(kernel)
	return ok && (a > maj || (a == maj && b >= min))
}

func sortStrings(s []string) { sort.Strings(s) }
