package spec

import (
	"encoding/base64"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kubebake/kubebake/firstboot/plan"
)

// Supported Kubernetes minors. Older is an error (out of upstream support and
// untested); newer is a warning (untested, may work).
const (
	MinKubernetesMinor = 33
	MaxKubernetesMinor = 37
)

// Required artifact names, by the roles that need them.
var (
	masterArtifacts = []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler"}
	nodeArtifacts   = []string{"kubelet", "kube-proxy", "containerd", "runc", "cni-plugins", "flannel", "flannel-cni-plugin"}
	etcdArtifacts   = []string{"etcd"}
	alwaysArtifacts = []string{"kubectl"}
	// nodeImages are the images every node needs preloaded.
	nodeImages = []string{"pause"}
)

var (
	// versionRE is a release tag as upstream spells it in URLs: v1.37.2,
	// v3.6.16, v1.9.1-flannel1, v2.1.0-rc.1.
	versionRE = regexp.MustCompile(`^v(0|[1-9][0-9]{0,5})\.(0|[1-9][0-9]{0,5})\.(0|[1-9][0-9]{0,5})(-[0-9A-Za-z][0-9A-Za-z.-]*)?$`)
	// pauseRE is the pause image tag: 3.10, 3.10.1.
	pauseRE   = regexp.MustCompile(`^[0-9]+\.[0-9]+(\.[0-9]+)?$`)
	labelRE   = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	sha256RE  = regexp.MustCompile(`^[0-9a-f]{64}$`)
	ifnameRE  = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,15}$`)
	countryRE = regexp.MustCompile(`^[A-Z]{2}$`)
)

var ipvsSchedulers = []string{"rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "mh"}

// Validate checks a defaulted spec and reports every mistake with its
// position and a fix. It is pure: no file system, no network. Call it after
// ApplyDefaults (Load does both).
func Validate(s *Spec) Report {
	if s == nil {
		return Report{Entries: []Entry{{Kind: Error, Pos: Pos{File: "bundle-spec.yaml"}, Msg: "no spec"}}}
	}
	v := &validator{s: s}
	v.header()
	v.cluster()
	v.hosts()
	v.target()
	v.network()
	v.pki()
	v.registry()
	v.versions()
	v.kubelet()
	v.extraArgs()
	v.artifacts()
	v.images()
	v.mirrors()
	v.platforms()
	v.credentials()
	v.pins()
	v.compat()
	v.pxe()
	for i := range v.r.Entries {
		v.r.Entries[i].Pos = s.Pos(v.r.Entries[i].Path)
	}
	v.r.Sort()
	return v.r
}

type validator struct {
	s *Spec
	r Report
	// parsed networks, valid only when the matching ok is true
	nodeNet, podNet, svcNet netip.Prefix
	nodeOK, podOK, svcOK    bool
	maxPodsReported         bool
}

func (v *validator) header() {
	s := v.s
	switch {
	case s.APIVersion == "":
		v.r.errorf("apiVersion", "add apiVersion: "+APIVersion, "missing")
	case s.APIVersion != APIVersion:
		v.r.errorf("apiVersion", "write apiVersion: "+APIVersion, "%q is not a version this kubebake reads", s.APIVersion)
	}
	switch {
	case s.Kind == "":
		v.r.errorf("kind", "add kind: "+Kind, "missing")
	case s.Kind != Kind:
		v.r.errorf("kind", "write kind: "+Kind, "%q is not %s", s.Kind, Kind)
	}
}

// network parses a CIDR field; it must be IPv4 and in canonical form.
func (v *validator) cidr(path, val, example string) (netip.Prefix, bool) {
	if val == "" {
		v.r.errorf(path, "set it, e.g. "+example, "missing")
		return netip.Prefix{}, false
	}
	p, err := netip.ParsePrefix(val)
	if err != nil {
		v.r.errorf(path, "write an address and a prefix length, e.g. "+example, "%q is not a CIDR", val)
		return netip.Prefix{}, false
	}
	if !p.Addr().Is4() {
		v.r.errorf(path, "use an IPv4 network, e.g. "+example, "%s is not IPv4 (IPv6 is not supported yet)", val)
		return netip.Prefix{}, false
	}
	if p.Masked() != p {
		v.r.errorf(path, "write "+p.Masked().String(), "%s has host bits set", val)
		return netip.Prefix{}, false
	}
	if p.Bits() > 30 {
		v.r.errorf(path, "use a /30 or larger network", "%s is too small", val)
		return netip.Prefix{}, false
	}
	return p, true
}

func parseIP4(val string) (netip.Addr, bool) {
	a, err := netip.ParseAddr(val)
	if err != nil || !a.Is4() {
		return netip.Addr{}, false
	}
	return a, true
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	n := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	n |= (1 << (32 - p.Bits())) - 1
	return netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)})
}

func overlaps(a, b netip.Prefix) bool { return a.Overlaps(b) }

// hostAddr checks that val is a usable IPv4 address inside nodeNetwork.
func (v *validator) nodeAddr(path, val, what, fixOutside string) (netip.Addr, bool) {
	if val == "" {
		v.r.errorf(path, "set it to an IPv4 address", "missing")
		return netip.Addr{}, false
	}
	a, ok := parseIP4(val)
	if !ok {
		v.r.errorf(path, "write an IPv4 address such as 10.4.7.21", "%q is not an IPv4 address", val)
		return netip.Addr{}, false
	}
	if v.nodeOK {
		n := v.s.Cluster.NodeNetwork
		if !v.nodeNet.Contains(a) {
			v.r.errorf(path, fmt.Sprintf(fixOutside, n), "%s is outside nodeNetwork %s", val, n)
			return a, true
		}
		if a == v.nodeNet.Masked().Addr() || a == lastAddr(v.nodeNet) {
			v.r.errorf(path, "pick a "+what+" address between the network and broadcast addresses", "%s is the network or broadcast address of %s", val, n)
		}
	}
	return a, true
}

func (v *validator) cluster() {
	c := v.s.Cluster
	if c.Name == "" || !labelRE.MatchString(c.Name) {
		v.r.errorf("cluster.name", "use lower-case letters, digits and '-', at most 63", "%q is not a DNS label", c.Name)
	}
	v.domain("cluster.hostDomain", c.HostDomain, "host.com")
	v.domain("cluster.serviceDomain", c.ServiceDomain, "od.com")
	v.domain("cluster.clusterDomain", c.ClusterDomain, "cluster.local")

	v.nodeNet, v.nodeOK = v.cidr("cluster.nodeNetwork", c.NodeNetwork, "10.4.7.0/24")
	v.podNet, v.podOK = v.cidr("cluster.podNetwork", c.PodNetwork, "172.7.0.0/16")
	v.svcNet, v.svcOK = v.cidr("cluster.serviceNetwork", c.ServiceNetwork, "192.168.0.0/16")
	type nw struct {
		name string
		p    netip.Prefix
		ok   bool
	}
	nws := []nw{{"nodeNetwork", v.nodeNet, v.nodeOK}, {"podNetwork", v.podNet, v.podOK}, {"serviceNetwork", v.svcNet, v.svcOK}}
	for i := range nws {
		for j := i + 1; j < len(nws); j++ {
			a, b := nws[i], nws[j]
			if a.ok && b.ok && overlaps(a.p, b.p) {
				v.r.errorf("cluster."+b.name, "pick "+b.name+" so that it shares no address with "+a.name,
					"%s overlaps %s %s", b.p, a.name, a.p)
			}
		}
	}
	if v.podOK && v.podNet.Bits() > 24 {
		v.r.errorf("cluster.podNetwork", "use a /16 (one /24 per node)", "%s is smaller than one node's /24", c.PodNetwork)
	}

	if c.Gateway != "" {
		v.nodeAddr("cluster.gateway", c.Gateway, "gateway", "give the gateway of %s")
	} else {
		v.r.errorf("cluster.gateway", "set it to the node network's router, e.g. 10.4.7.254", "missing")
	}
	if len(c.DNSServers) == 0 {
		v.r.errorf("cluster.dnsServers", "list the resolvers hosts use, e.g. [10.4.7.11] (the dns host)", "missing")
	}
	for i, d := range c.DNSServers {
		if _, ok := parseIP4(d); !ok {
			v.r.errorf(fmt.Sprintf("cluster.dnsServers[%d]", i), "write an IPv4 address", "%q is not an IPv4 address", d)
		}
	}

	if v.svcOK {
		first := v.svcNet.Masked().Addr().Next()
		kip, kok := parseIP4(c.KubernetesServiceIP)
		switch {
		case !kok:
			v.r.errorf("cluster.kubernetesServiceIP", "write "+first.String()+" or leave it out", "%q is not an IPv4 address", c.KubernetesServiceIP)
		case kip != first:
			v.r.errorf("cluster.kubernetesServiceIP", "write "+first.String()+" or leave it out",
				"%s is not the first address of serviceNetwork %s; the apiserver always gives the kubernetes service %s", kip, v.svcNet, first)
		}
		dip, dok := parseIP4(c.DNSServiceIP)
		switch {
		case !dok:
			v.r.errorf("cluster.dnsServiceIP", "write an address inside "+v.svcNet.String()+", e.g. "+first.Next().String(), "%q is not an IPv4 address", c.DNSServiceIP)
		case !v.svcNet.Contains(dip) || dip == v.svcNet.Masked().Addr() || dip == lastAddr(v.svcNet):
			v.r.errorf("cluster.dnsServiceIP", "write an address inside "+v.svcNet.String()+", e.g. "+first.Next().String(),
				"%s is not a usable address of serviceNetwork %s", dip, v.svcNet)
		case kok && dip == kip:
			v.r.errorf("cluster.dnsServiceIP", "use another address, e.g. "+first.Next().String(), "%s is also kubernetesServiceIP", dip)
		}
	}

	if c.VIP != "" {
		vip, ok := v.nodeAddr("cluster.vip", c.VIP, "free", "give the VIP a free address inside %s")
		if ok {
			for i, h := range v.s.Hosts {
				if h.IP == vip.String() {
					v.r.errorf("cluster.vip", "pick a free address in the node network for the VIP",
						"%s is already hosts[%d] (%s)'s address; keepalived needs a free one", c.VIP, i, h.Name)
				}
			}
			if c.Gateway == c.VIP {
				v.r.errorf("cluster.vip", "pick a free address in the node network for the VIP", "%s is the gateway", c.VIP)
			}
		}
	}

	v.port("cluster.apiServerPort", c.APIServerPort)
	v.port("cluster.lbPort", c.LBPort)
	v.edge()
	lo, hi, ok := v.portRange("cluster.nodePortRange", c.NodePortRange)
	for _, h := range v.s.Hosts {
		if h.HasRole(plan.RoleMaster) && h.HasRole(plan.RoleLB) && c.APIServerPort == c.LBPort {
			v.r.errorf("cluster.lbPort", "give nginx another port than the apiserver, e.g. 7443",
				"%d is also apiServerPort, and %s runs both the apiserver and the load balancer", c.LBPort, h.Name)
			break
		}
	}
	if ok && len(v.s.Nodes()) > 0 {
		// Ports nodes listen on themselves. A NodePort service given one
		// of them would capture its traffic (IPVS answers first).
		type listener struct {
			port int
			who  string
		}
		ls := []listener{{10250, "kubelet"}, {10256, "kube-proxy healthz"}}
		for _, h := range v.s.Masters() {
			if h.HasRole(plan.RoleNode) {
				ls = append(ls, listener{c.APIServerPort, "kube-apiserver"}, listener{10257, "kube-controller-manager"}, listener{10259, "kube-scheduler"})
				break
			}
		}
		var in []string
		for _, l := range ls {
			if l.port >= lo && l.port <= hi {
				in = append(in, fmt.Sprintf("%d (%s)", l.port, l.who))
			}
		}
		if len(in) > 0 {
			v.r.warnf("cluster.nodePortRange", "use 30000-32767 (Kubernetes' default), or never request these ports for a NodePort service",
				"%s contains ports nodes listen on: %s; a NodePort service given one would capture its traffic", c.NodePortRange, strings.Join(in, ", "))
		}
	}
}

// edge checks what keepalived and bind9 take from cluster: the VRRP
// interface and router id, and the DNS forwarders.
func (v *validator) edge() {
	c := v.s.Cluster
	if !ifnameRE.MatchString(c.VIPInterface) || c.VIPInterface == "." || c.VIPInterface == ".." {
		v.r.errorf("cluster.vipInterface", "write the lb hosts' NIC name as CentOS 7 names it (ip -br link), e.g. eth0 or ens33",
			"%q is not a network interface name", c.VIPInterface)
	}
	if c.VRRPRouterID < 1 || c.VRRPRouterID > 255 {
		v.r.errorf("cluster.vrrpRouterID", fmt.Sprintf("pick a number from 1 to 255 no other VRRP group on the node network uses, e.g. %d", DefaultVRRPRouterID),
			"%d is not a VRRP virtual router id", c.VRRPRouterID)
	}
	gw := c.Gateway
	if gw == "" {
		gw = "10.4.7.254"
	}
	dns := ipNames(v.s.HostsWithRole(plan.RoleDNS))
	for i, f := range c.DNSForwarders {
		p := fmt.Sprintf("cluster.dnsForwarders[%d]", i)
		a, ok := parseIP4(f)
		switch {
		case !ok:
			v.r.errorf(p, "write the IPv4 address of an upstream resolver, e.g. the gateway "+gw, "%q is not an IPv4 address", f)
		case dns[a.String()] != "":
			v.r.errorf(p, "forward to a resolver outside the cluster, e.g. the gateway "+gw,
				"%s is %s, a dns host itself: bind9 would forward to itself", f, dns[a.String()])
		}
	}
	if len(c.DNSForwarders) == 0 && len(v.s.HostsWithRole(plan.RoleDNS)) > 0 {
		v.r.warnf("cluster.dnsForwarders", "list the site's upstream resolvers, e.g. [10.4.7.254]",
			"empty: bind9 on the dns hosts answers only for %s and %s", c.HostDomain, c.ServiceDomain)
	}
}

// ipNames maps each host's IP to its name.
func ipNames(hs []Host) map[string]string {
	m := map[string]string{}
	for _, h := range hs {
		if a, ok := parseIP4(h.IP); ok {
			m[a.String()] = h.Name
		}
	}
	return m
}

func (v *validator) domain(path, val, example string) {
	if val == "" {
		v.r.errorf(path, "set it, e.g. "+example, "missing")
		return
	}
	if len(val) > 253 {
		v.r.errorf(path, "use a shorter domain", "longer than 253 characters")
		return
	}
	for _, l := range strings.Split(val, ".") {
		if !labelRE.MatchString(l) {
			v.r.errorf(path, "use dot-separated lower-case labels, e.g. "+example, "%q is not a DNS domain", val)
			return
		}
	}
}

func (v *validator) port(path string, p int) {
	if p < 1 || p > 65535 {
		v.r.errorf(path, "use a port between 1 and 65535", "%d is not a TCP port", p)
	}
}

func (v *validator) portRange(path, val string) (int, int, bool) {
	a, b, found := strings.Cut(val, "-")
	lo, err1 := strconv.Atoi(strings.TrimSpace(a))
	hi, err2 := strconv.Atoi(strings.TrimSpace(b))
	if !found || err1 != nil || err2 != nil || lo < 1 || hi > 65535 || lo >= hi {
		v.r.errorf(path, "write first-last with 1 <= first < last <= 65535, e.g. "+DefaultNodePortRange, "%q is not a port range", val)
		return 0, 0, false
	}
	return lo, hi, true
}

func (v *validator) hosts() {
	s := v.s
	if len(s.Hosts) == 0 {
		v.r.errorf("hosts", "list the machines, each with name, ip and roles", "no hosts")
		return
	}
	names := map[string]int{}
	ips := map[string]int{}
	macs := map[string]string{}
	var subnets []hostPrefix
	known := strings.Join(plan.Roles, ", ")
	for i, h := range s.Hosts {
		hp := fmt.Sprintf("hosts[%d]", i)
		switch {
		case h.Name == "":
			v.r.errorf(hp+".name", "give the host a name, e.g. hdss7-21", "missing")
		case !labelRE.MatchString(h.Name):
			v.r.errorf(hp+".name", "use lower-case letters, digits and '-' (at most 63, no leading or trailing '-')", "%q is not a DNS label", h.Name)
		default:
			if j, dup := names[h.Name]; dup {
				v.r.errorf(hp+".name", "give every host its own name", "%s is also hosts[%d].name", h.Name, j)
			} else {
				names[h.Name] = i
			}
		}
		if a, ok := v.nodeAddr(hp+".ip", h.IP, "host", "give the host an address inside %s or widen cluster.nodeNetwork"); ok {
			if j, dup := ips[a.String()]; dup {
				v.r.errorf(hp+".ip", "give every host its own address", "%s is also hosts[%d].ip", h.IP, j)
			} else {
				ips[a.String()] = i
			}
			if a.String() == s.Cluster.Gateway {
				v.r.errorf(hp+".ip", "give the host an address other than the gateway's", "%s is the gateway", h.IP)
			}
		}
		for j, m := range h.MACs {
			mp := fmt.Sprintf("%s.macs[%d]", hp, j)
			hw, err := net.ParseMAC(m)
			if err != nil || len(hw) != 6 {
				v.r.errorf(mp, "write six hex pairs separated by colons, e.g. 52:54:00:0a:07:15", "%q is not a MAC address", m)
				continue
			}
			if hw[0]&1 == 1 {
				v.r.errorf(mp, "use the NIC's unicast address", "%s is a multicast address", m)
				continue
			}
			if prev, dup := macs[hw.String()]; dup {
				v.r.errorf(mp, "give every NIC its own MAC", "%s is also %s", m, prev)
			} else {
				macs[hw.String()] = mp
			}
		}
		if len(h.Roles) == 0 {
			v.r.errorf(hp+".roles", "give the host one or more of: "+known, "no roles")
		}
		seen := map[string]bool{}
		for j, r := range h.Roles {
			rp := fmt.Sprintf("%s.roles[%d]", hp, j)
			if !isRole(r) {
				v.r.errorf(rp, "use one of: "+known, "unknown role %q", r)
				continue
			}
			if seen[r] {
				v.r.warnf(rp, "remove the repeat", "role %s listed twice", r)
			}
			seen[r] = true
		}
		v.podSubnet(i, h, &subnets)
	}

	if len(s.Masters()) == 0 {
		v.r.errorf("hosts", "give role master to one or more hosts (the seed: hdss7-21, hdss7-22)", "no host has role master")
	}
	if len(s.Nodes()) == 0 {
		v.r.errorf("hosts", "give role node to the hosts that run pods (the seed: hdss7-21, hdss7-22)", "no host has role node")
	}
	switch n := len(s.EtcdMembers()); {
	case n == 0:
		v.r.errorf("hosts", "give role etcd to an odd number of hosts (the seed: hdss7-12, hdss7-21, hdss7-22)", "no host has role etcd")
	case n%2 == 0:
		v.r.warnf("hosts", "use an odd number of etcd members (3 or 5)",
			"%d etcd members tolerate no more failures than %d; an even count only adds a vote to lose", n, n-1)
	}
	lbs := s.HostsWithRole(plan.RoleLB)
	if len(lbs) > 0 && s.Cluster.VIP == "" {
		v.r.errorf("cluster.vip", "set cluster.vip to a free address in the node network, e.g. 10.4.7.10",
			"missing; hosts with role lb (%s) hold a keepalived VIP", lbs[0].Name)
	}
	if len(lbs) == 0 && s.Cluster.VIP != "" {
		v.r.warnf("cluster.vip", "give role lb to the hosts that should hold it, or remove vip",
			"no host has role lb, so nothing will hold %s", s.Cluster.VIP)
	}
}

func isRole(r string) bool {
	for _, k := range plan.Roles {
		if k == r {
			return true
		}
	}
	return false
}

type hostPrefix struct {
	p    netip.Prefix
	host int
}

func (v *validator) podSubnet(i int, h Host, seen *[]hostPrefix) {
	path := fmt.Sprintf("hosts[%d].podSubnet", i)
	isNode := h.HasRole(plan.RoleNode)
	if h.PodSubnet == "" {
		if isNode && v.podOK {
			if _, err := netip.ParseAddr(h.IP); err == nil {
				v.r.errorf(path, "set podSubnet to a /24 inside "+v.podNet.String(),
					"missing, and cannot be named after %s inside podNetwork %s", h.IP, v.podNet)
			}
		}
		return
	}
	if !isNode {
		v.r.warnf(path, "remove it, or give the host role node", "set on a host without role node; nothing uses it")
	}
	p, err := netip.ParsePrefix(h.PodSubnet)
	if err != nil || !p.Addr().Is4() {
		v.r.errorf(path, "write an IPv4 CIDR, e.g. 172.7.21.0/24", "%q is not an IPv4 CIDR", h.PodSubnet)
		return
	}
	if p.Masked() != p {
		v.r.errorf(path, "write "+p.Masked().String(), "%s has host bits set", h.PodSubnet)
		return
	}
	if v.podOK && (!v.podNet.Contains(p.Addr()) || p.Bits() < v.podNet.Bits()) {
		v.r.errorf(path, "pick a subnet inside "+v.podNet.String()+" or leave it out to name it after the host's address",
			"%s is outside podNetwork %s", h.PodSubnet, v.podNet)
		return
	}
	for _, q := range *seen {
		if q.p.Overlaps(p) && v.s.Hosts[q.host].IP != h.IP { // same IP: reported once, at ip
			v.r.errorf(path, "give every node its own subnet", "%s overlaps hosts[%d].podSubnet %s", h.PodSubnet, q.host, q.p)
			return
		}
	}
	*seen = append(*seen, hostPrefix{p, i})
	if isNode && v.s.Kubelet.MaxPods > 0 && p.Bits() <= 30 && !v.maxPodsReported {
		usable := (1 << (32 - p.Bits())) - 3 // network, broadcast, the bridge's gateway
		if v.s.Kubelet.MaxPods > usable {
			v.r.errorf("kubelet.maxPods", fmt.Sprintf("lower maxPods to %d or widen the node subnets", usable),
				"%d pods do not fit in %s's %s (%d addresses)", v.s.Kubelet.MaxPods, h.Name, p, usable)
			v.maxPodsReported = true
		}
	}
}

func (v *validator) target() {
	t := v.s.Target
	if t.OS != "centos7" {
		v.r.errorf("target.os", "use centos7 (the only target firstboot supports)", "unsupported OS %q", t.OS)
	}
	if _, _, ok := kernelVersion(t.Kernel); !ok {
		v.r.errorf("target.kernel", "write major.minor, e.g. 3.10", "%q is not a kernel version", t.Kernel)
	}
	switch t.Cgroup {
	case "v1":
	case "v2":
		if t.OS == "centos7" {
			v.r.errorf("target.cgroup", "use v1 on centos7", "CentOS 7's kernel 3.10 has no usable cgroup v2")
		}
	default:
		v.r.errorf("target.cgroup", "write v1 or v2", "%q is not a cgroup version", t.Cgroup)
	}
	if t.Arch != "amd64" {
		v.r.errorf("target.arch", "use amd64", "unsupported architecture %q", t.Arch)
	}
}

func (v *validator) network() {
	n := v.s.Network
	switch n.Flannel.Backend {
	case "host-gw":
		// host-gw routes pod subnets via each node's address, so every node
		// must sit in one L2 segment: they all are in cluster.nodeNetwork,
		// which hosts[].ip is checked against.
		if n.Flannel.DirectRouting {
			v.r.warnf("network.flannel.directRouting", "remove it, or use backend vxlan", "only means something with backend vxlan")
		}
	case "vxlan":
	default:
		v.r.errorf("network.flannel.backend", "use host-gw (the seed's) or vxlan", "unsupported flannel backend %q", n.Flannel.Backend)
	}
	if !strings.HasPrefix(n.Flannel.EtcdPrefix, "/") {
		v.r.errorf("network.flannel.etcdPrefix", "start it with '/', e.g. "+DefaultFlannelEtcdPrefix, "%q is not an etcd key prefix", n.Flannel.EtcdPrefix)
	}
	switch n.KubeProxy.Mode {
	case "ipvs":
		ok := false
		for _, x := range ipvsSchedulers {
			ok = ok || x == n.KubeProxy.Scheduler
		}
		if !ok {
			v.r.errorf("network.kubeProxy.scheduler", "use one of: "+strings.Join(ipvsSchedulers, ", "), "unknown IPVS scheduler %q", n.KubeProxy.Scheduler)
		}
	case "iptables", "nftables":
		if n.KubeProxy.Scheduler != "" {
			v.r.warnf("network.kubeProxy.scheduler", "remove it, or use mode ipvs", "only means something in mode ipvs")
		}
	default:
		v.r.errorf("network.kubeProxy.mode", "use ipvs (the seed's), iptables or nftables", "unknown kube-proxy mode %q", n.KubeProxy.Mode)
	}
	if !ifnameRE.MatchString(n.Bridge) {
		v.r.errorf("network.bridge", "use an interface name of at most 15 letters, digits, '-', '_' or '.', e.g. cni0", "%q is not an interface name", n.Bridge)
	}
}

func (v *validator) pki() {
	p := v.s.PKI
	switch p.Algo {
	case "rsa":
		if p.Size != 2048 && p.Size != 3072 && p.Size != 4096 {
			v.r.errorf("pki.size", "use 2048, 3072 or 4096 for rsa", "%d is not an RSA key size kubebake issues", p.Size)
		}
	case "ecdsa":
		if p.Size != 256 && p.Size != 384 {
			v.r.errorf("pki.size", "use 256 or 384 for ecdsa", "%d is not an ECDSA curve size kubebake issues", p.Size)
		}
	default:
		v.r.errorf("pki.algo", "use rsa or ecdsa", "unknown key algorithm %q", p.Algo)
	}
	exp, err1 := time.ParseDuration(p.Expiry)
	if err1 != nil || exp <= 0 {
		v.r.errorf("pki.expiry", "write a duration in hours, e.g. 175200h (20 years)", "%q is not a duration", p.Expiry)
	}
	ren, err2 := time.ParseDuration(p.RenewBefore)
	if err2 != nil || ren < 0 {
		v.r.errorf("pki.renewBefore", "write a duration in hours, e.g. 720h", "%q is not a duration", p.RenewBefore)
	}
	if err1 == nil && err2 == nil && exp > 0 && ren >= exp {
		v.r.errorf("pki.renewBefore", "make it shorter than pki.expiry", "%s is not shorter than expiry %s; every build would re-issue every certificate", p.RenewBefore, p.Expiry)
	}
	if strings.TrimSpace(p.Subject.CN) == "" {
		v.r.errorf("pki.subject.CN", "name the CA, e.g. CN: zoneyet (the seed's)", "missing")
	}
	if p.Subject.C != "" && !countryRE.MatchString(p.Subject.C) {
		v.r.errorf("pki.subject.C", "use a two-letter country code, e.g. CN", "%q is not a two-letter country code", p.Subject.C)
	}
}

var envNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// mirrors checks each rewrite: a URL prefix maps to a URL, a registry host
// to a registry host; a From appears once.
func (v *validator) mirrors() {
	seen := map[string]int{}
	for i, m := range v.s.Mirrors {
		mp := fmt.Sprintf("mirrors[%d]", i)
		if j, dup := seen[m.From]; dup && m.From != "" {
			v.r.errorf(mp+".from", "keep one mirror per upstream", "%s is also mirrors[%d].from", m.From, j)
		}
		seen[m.From] = i
		switch {
		case m.From == "":
			v.r.errorf(mp+".from", "give an upstream URL prefix (https://dl.k8s.io) or registry host (registry.k8s.io)", "missing")
		case strings.Contains(m.From, "://"):
			v.url(mp+".from", m.From, true)
			if !strings.Contains(m.To, "://") {
				v.r.errorf(mp+".to", "a URL prefix maps to a URL prefix, e.g. http://127.0.0.1:8081/dl.k8s.io", "%q is not a URL", m.To)
			} else {
				v.url(mp+".to", m.To, true)
			}
		default:
			if !refDomainRE.MatchString(m.From) {
				v.r.errorf(mp+".from", "write a registry host[:port], e.g. registry.k8s.io", "%q is not a registry host", m.From)
			}
			// A registry mirror is host[:port][/path]; http:// marks one
			// that speaks plain HTTP (an offline upstream on loopback).
			to := strings.TrimPrefix(m.To, "http://")
			if host, _, _ := strings.Cut(to, "/"); to == "" || strings.Contains(to, "://") || !refDomainRE.MatchString(host) {
				v.r.errorf(mp+".to", "a registry host maps to a registry host[:port][/path], e.g. 127.0.0.1:5001 (http://127.0.0.1:5001 for plain HTTP)", "%q is not a registry host", m.To)
			}
		}
	}
}

var platformRE = regexp.MustCompile(`^[a-z0-9]+/[a-z0-9_]+(?:/v[0-9]+)?$`)

func (v *validator) platforms() {
	for i, p := range v.s.Platforms {
		if p != "all" && !platformRE.MatchString(p) {
			v.r.errorf(fmt.Sprintf("platforms[%d]", i), "write os/arch[/variant], e.g. linux/amd64, or all", "%q is not a platform", p)
		}
	}
}

func (v *validator) credentials() {
	for i, c := range v.s.Credentials {
		cp := fmt.Sprintf("credentials[%d]", i)
		if c.Registry == "" || !refDomainRE.MatchString(c.Registry) {
			v.r.errorf(cp+".registry", "write the registry host[:port], e.g. harbor.od.com", "%q is not a registry host", c.Registry)
		}
		for _, f := range []struct{ path, val string }{{cp + ".usernameEnv", c.UsernameEnv}, {cp + ".passwordEnv", c.PasswordEnv}} {
			if !envNameRE.MatchString(f.val) {
				v.r.errorf(f.path, "name an environment variable, e.g. HARBOR_PASSWORD; the secret itself never goes in the spec", "%q is not an environment variable name", f.val)
			}
		}
	}
}

func (v *validator) registry() {
	r := v.s.Registry
	if r.Endpoint != "" {
		if _, port, err := net.SplitHostPort(r.Endpoint); err != nil || port == "" {
			v.r.errorf("registry.endpoint", "write host:port, e.g. 127.0.0.1:5443", "%q is not host:port", r.Endpoint)
		}
	}
	if rb := r.Robot; rb != nil {
		if !regexp.MustCompile(`^[a-z0-9]+(?:[._-][a-z0-9]+)*$`).MatchString(rb.Name) {
			v.r.errorf("registry.robot.name", "use lower-case letters, digits, '.', '_' or '-', e.g. pusher", "%q is not a robot name", rb.Name)
		}
		if rb.Duration != nil && *rb.Duration != -1 && *rb.Duration < 1 {
			v.r.errorf("registry.robot.duration", "give days (e.g. 365) or -1 for never", "%d is not a duration in days", *rb.Duration)
		}
	}
	if r.Host == "" {
		v.r.errorf("registry.host", "set it to the site's registry, e.g. harbor.od.com", "missing")
	} else {
		host := r.Host
		if h, port, err := net.SplitHostPort(r.Host); err == nil {
			host = h
			if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
				v.r.errorf("registry.host", "write host or host:port", "%q has a bad port", r.Host)
			}
		}
		if _, ok := parseIP4(host); !ok {
			v.domain("registry.host", host, "harbor.od.com")
		}
	}
	if !regexp.MustCompile(`^[a-z0-9]+(?:[._-][a-z0-9]+)*$`).MatchString(r.Project) {
		v.r.errorf("registry.project", "use lower-case letters, digits, '.', '_' or '-', e.g. public", "%q is not a registry project name", r.Project)
	}
}

type semver struct {
	major, minor, patch int
}

func parseVersion(s string) (semver, bool) {
	m := versionRE.FindStringSubmatch(s)
	if m == nil {
		return semver{}, false
	}
	a, _ := strconv.Atoi(m[1])
	b, _ := strconv.Atoi(m[2])
	c, _ := strconv.Atoi(m[3])
	return semver{a, b, c}, true
}

// kubeAtLeast reports whether the Kubernetes version is >= major.minor;
// false if it does not parse.
func kubeAtLeast(version string, major, minor int) bool {
	sv, ok := parseVersion(version)
	return ok && (sv.major > major || (sv.major == major && sv.minor >= minor))
}

// versions checks the version pins. Every component but pause is written
// as upstream tags it (leading v: v1.37.2); pause is written as its image
// tag (3.10).
func (v *validator) versions() {
	vs := v.s.Versions
	for _, f := range []struct{ name, val, example string }{
		{"kubernetes", vs.Kubernetes, "v1.37.2"},
		{"etcd", vs.Etcd, "v3.6.16"},
		{"flannel", vs.Flannel, "v0.28.10"},
		{"coredns", vs.CoreDNS, "v1.15.0"},
		{"traefik", vs.Traefik, "v3.6.24"},
		{"containerd", vs.Containerd, "v2.1.9"},
		{"runc", vs.Runc, "v1.3.6"},
		{"cniPlugins", vs.CNIPlugins, "v1.8.0"},
	} {
		path := "versions." + f.name
		if f.val == "" {
			v.r.errorf(path, "pin it, e.g. "+f.example, "missing")
			continue
		}
		if _, ok := parseVersion(f.val); !ok {
			fix := "write it as upstream tags it, e.g. " + f.example
			if _, ok := parseVersion("v" + f.val); ok {
				fix = "write v" + f.val
			}
			v.r.errorf(path, fix, "%q is not a release tag like %s", f.val, f.example)
		}
	}
	if vs.FlannelCNIPlugin != "" {
		if _, ok := parseVersion(vs.FlannelCNIPlugin); !ok {
			v.r.errorf("versions.flannelCNIPlugin", "write it as upstream tags it, e.g. v1.9.1-flannel1", "%q is not a release tag like v1.9.1-flannel1", vs.FlannelCNIPlugin)
		}
	}
	switch {
	case vs.Pause == "":
		v.r.errorf("versions.pause", "pin it, e.g. \"3.10\" (quoted)", "missing")
	case !pauseRE.MatchString(vs.Pause):
		v.r.errorf("versions.pause", "write the image tag, e.g. \"3.10\" (quoted)", "%q is not a pause tag like 3.10", vs.Pause)
	}
	if k, ok := parseVersion(vs.Kubernetes); ok {
		switch {
		case k.major != 1 || k.minor < MinKubernetesMinor:
			v.r.errorf("versions.kubernetes", fmt.Sprintf("use v1.%d to v1.%d", MinKubernetesMinor, MaxKubernetesMinor),
				"%s is not supported (oldest: v1.%d)", vs.Kubernetes, MinKubernetesMinor)
		case k.minor > MaxKubernetesMinor:
			v.r.warnf("versions.kubernetes", fmt.Sprintf("use v1.%d to v1.%d, or check the compatibility gates yourself", MinKubernetesMinor, MaxKubernetesMinor),
				"%s is newer than kubebake has been tested with (v1.%d)", vs.Kubernetes, MaxKubernetesMinor)
		}
	}
}

func (v *validator) kubelet() {
	k := v.s.Kubelet
	switch k.CgroupDriver {
	case "cgroupfs", "systemd":
	default:
		v.r.errorf("kubelet.cgroupDriver", "use cgroupfs (CentOS 7) or systemd", "unknown cgroup driver %q", k.CgroupDriver)
	}
	if k.MaxPods < 1 {
		v.r.errorf("kubelet.maxPods", "use a positive number, e.g. 110", "%d is not a pod count", k.MaxPods)
	}
}

// flagNameRE is a command-line flag's name without its dashes:
// leader-elect-lease-duration, v, feature-gates.
var flagNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// extraArgs checks each flag's name and value. The value goes into the
// unit's ExecStart unquoted, so what systemd would split or expand is
// refused rather than quoted.
func (v *validator) extraArgs() {
	e := v.s.ExtraArgs
	for _, c := range []struct {
		key  string
		args map[string]string
	}{
		{"etcd", e.Etcd},
		{"kubeAPIServer", e.KubeAPIServer},
		{"kubeControllerManager", e.KubeControllerManager},
		{"kubeScheduler", e.KubeScheduler},
	} {
		for _, name := range slices.Sorted(maps.Keys(c.args)) {
			path := "extraArgs." + c.key + "[" + name + "]"
			switch {
			case strings.HasPrefix(name, "-"):
				v.r.errorf(path, "write the flag without its leading dashes: "+strings.TrimLeft(name, "-"), "flag %q starts with a dash", name)
			case !flagNameRE.MatchString(name):
				v.r.errorf(path, "write the flag's name as its --help spells it, e.g. leader-elect-lease-duration", "%q is not a flag name", name)
			}
			if val := c.args[name]; strings.ContainsAny(val, " \t\n$\\\"'`") {
				v.r.errorf(path, "give a value without spaces, quotes, backslashes or $ (it goes unquoted into the systemd unit); a value that needs them belongs in a file the flag can name",
					"the value %q of %s cannot be written into a unit's command line", val, name)
			}
		}
	}
}

func (v *validator) artifacts() {
	s := v.s
	names := map[string]int{}
	for i, a := range s.Artifacts {
		ap := fmt.Sprintf("artifacts[%d]", i)
		if a.Name == "" {
			v.r.errorf(ap+".name", "name it, e.g. kubelet", "missing")
		} else if j, dup := names[a.Name]; dup {
			v.r.errorf(ap+".name", "give every artifact its own name", "%s is also artifacts[%d].name", a.Name, j)
		} else {
			names[a.Name] = i
		}
		v.url(ap+".url", a.URL, true)
		switch {
		case a.SHA256 == "" && a.SHA256URL == "":
			v.r.errorf(ap, "add sha256 (the file's digest) or sha256URL (where upstream publishes it)", "no checksum")
		case a.SHA256 != "" && a.SHA256URL != "":
			v.r.errorf(ap+".sha256URL", "keep one: sha256 pins the digest, sha256URL fetches it", "both sha256 and sha256URL are set")
		case a.SHA256 != "":
			if !sha256RE.MatchString(a.SHA256) {
				fix := "write the 64 lower-case hex digits of the SHA-256"
				if sha256RE.MatchString(strings.ToLower(a.SHA256)) {
					fix = "write it in lower case"
				}
				v.r.errorf(ap+".sha256", fix, "%q is not a SHA-256 digest", a.SHA256)
			}
		default:
			v.url(ap+".sha256URL", a.SHA256URL, false)
		}
		installed := map[string]string{}
		for _, m := range a.ExtractMembers() {
			mp := ap + ".extract[" + m + "]"
			dst := a.Extract[m]
			if m == "" || strings.HasPrefix(m, "/") || containsDotDot(m) {
				v.r.errorf(mp, "name the member as the archive lists it (tar tzf), relative", "%q is not a relative archive member", m)
			}
			if dst == "" || strings.ContainsAny(dst, "/\\") || dst == "." || dst == ".." {
				v.r.errorf(mp, "give a plain file name, e.g. etcdctl", "%q is not a file name", dst)
			} else if prev, dup := installed[dst]; dup {
				v.r.errorf(mp, "install each member under its own name", "%s is also where %s goes", dst, prev)
			} else {
				installed[dst] = m
			}
		}
	}

	need := func(list []string, why string) {
		for _, n := range list {
			if _, ok := names[n]; !ok {
				v.r.errorf("artifacts", fmt.Sprintf("add an artifact named %s with its official URL and checksum", n), "no artifact %s, needed by %s", n, why)
			}
		}
	}
	if len(s.Masters()) > 0 {
		need(masterArtifacts, "hosts with role master")
	}
	if len(s.Nodes()) > 0 {
		need(nodeArtifacts, "hosts with role node")
	}
	if len(s.EtcdMembers()) > 0 {
		need(etcdArtifacts, "hosts with role etcd")
	}
	need(alwaysArtifacts, "the admin kubeconfig")
}

func containsDotDot(p string) bool {
	for _, el := range strings.Split(p, "/") {
		if el == ".." {
			return true
		}
	}
	return false
}

func (v *validator) url(path, raw string, required bool) {
	if raw == "" {
		if required {
			v.r.errorf(path, "give the official download URL", "missing")
		}
		return
	}
	u, err := url.Parse(raw)
	if err != nil {
		v.r.errorf(path, "write an https:// URL", "%q is not a URL", raw)
		return
	}
	switch u.Scheme {
	case "https", "http":
		if u.Host == "" {
			v.r.errorf(path, "write scheme://host/path", "%q has no host", raw)
		}
	case "file":
		if u.Path == "" {
			v.r.errorf(path, "write file:///absolute/path", "%q has no path", raw)
		}
	default:
		v.r.errorf(path, "use https://, http:// or file://", "unsupported URL scheme in %q", raw)
	}
}

func (v *validator) images() {
	names := map[string]int{}
	for i, im := range v.s.Images {
		ip := fmt.Sprintf("images[%d]", i)
		if im.Name == "" {
			v.r.errorf(ip+".name", "name it, e.g. pause", "missing")
		} else if j, dup := names[im.Name]; dup {
			v.r.errorf(ip+".name", "give every image its own name", "%s is also images[%d].name", im.Name, j)
		} else {
			names[im.Name] = i
		}
		if im.Ref == "" {
			v.r.errorf(ip+".ref", "give the upstream reference, e.g. registry.k8s.io/pause:3.10", "missing")
		} else if err := checkRef(im.Ref); err != "" {
			v.r.errorf(ip+".ref", "write [registry/]repository[:tag][@sha256:digest], e.g. registry.k8s.io/pause:3.10", "%q is not an image reference: %s", im.Ref, err)
		}
	}
	if len(v.s.Nodes()) > 0 {
		for _, n := range nodeImages {
			if _, ok := names[n]; !ok {
				v.r.errorf("images", "add an image named "+n+", e.g. registry.k8s.io/pause:3.10", "no image %s, needed by hosts with role node", n)
			}
		}
	}
}

var (
	refComponentRE = regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*$`)
	refTagRE       = regexp.MustCompile(`^[\w][\w.-]{0,127}$`)
	refDomainRE    = regexp.MustCompile(`^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?))*(?::[0-9]+)?$`)
)

// checkRef parses a distribution reference; "" means fine.
func checkRef(ref string) string {
	if len(ref) > 255 {
		return "longer than 255 characters"
	}
	name := ref
	if i := strings.Index(name, "@"); i >= 0 {
		d := name[i+1:]
		name = name[:i]
		if !strings.HasPrefix(d, "sha256:") || !sha256RE.MatchString(strings.TrimPrefix(d, "sha256:")) {
			return "bad digest"
		}
	}
	if i := strings.LastIndex(name, ":"); i >= 0 && !strings.Contains(name[i:], "/") {
		if !refTagRE.MatchString(name[i+1:]) {
			return "bad tag"
		}
		name = name[:i]
	}
	parts := strings.Split(name, "/")
	if len(parts) > 1 && (strings.ContainsAny(parts[0], ".:") || parts[0] == "localhost") {
		if !refDomainRE.MatchString(parts[0]) {
			return "bad registry host"
		}
		parts = parts[1:]
	}
	for _, p := range parts {
		if !refComponentRE.MatchString(p) {
			return "bad repository name (lower case only)"
		}
	}
	return ""
}

// pins warns, once per component, when artifact URLs or image tags do not
// mention the version pinned for it: a bumped pin with stale URLs.
func (v *validator) pins() {
	vs := v.s.Versions
	type pin struct{ field, version string }
	k8s := pin{"kubernetes", vs.Kubernetes}
	byArtifact := map[string]pin{
		"kube-apiserver": k8s, "kube-controller-manager": k8s, "kube-scheduler": k8s,
		"kubelet": k8s, "kube-proxy": k8s, "kubectl": k8s,
		"etcd": {"etcd", vs.Etcd}, "flannel": {"flannel", vs.Flannel}, "flannel-cni-plugin": {"flannelCNIPlugin", vs.FlannelCNIPlugin},
		"containerd": {"containerd", vs.Containerd}, "runc": {"runc", vs.Runc}, "cni-plugins": {"cniPlugins", vs.CNIPlugins},
	}
	byImage := map[string]pin{
		"pause": {"pause", vs.Pause}, "coredns": {"coredns", vs.CoreDNS}, "flannel": {"flannel", vs.Flannel},
		"flannel-cni-plugin": {"flannelCNIPlugin", vs.FlannelCNIPlugin}, "traefik": {"traefik", vs.Traefik},
	}
	type staleList struct{ artifacts, images []string }
	stale := map[pin]*staleList{}
	var order []pin
	get := func(p pin) *staleList {
		if l, ok := stale[p]; ok {
			return l
		}
		order = append(order, p)
		stale[p] = &staleList{}
		return stale[p]
	}
	for _, a := range v.s.Artifacts {
		p, ok := byArtifact[a.Name]
		if !ok || p.version == "" || !(strings.HasPrefix(a.URL, "https://") || strings.HasPrefix(a.URL, "http://")) {
			continue
		}
		if !strings.Contains(a.URL, p.version) {
			l := get(p)
			l.artifacts = append(l.artifacts, a.Name)
		}
	}
	for _, im := range v.s.Images {
		p, ok := byImage[im.Name]
		if !ok || p.version == "" || checkRef(im.Ref) != "" {
			continue
		}
		ref := im.Ref
		if j := strings.Index(ref, "@"); j >= 0 {
			ref = ref[:j]
		}
		tag := ""
		if j := strings.LastIndex(ref, ":"); j >= 0 && !strings.Contains(ref[j:], "/") {
			tag = ref[j+1:]
		}
		if tag != "" && tag != p.version && "v"+tag != p.version {
			l := get(p)
			l.images = append(l.images, im.Name+" ("+tag+")")
		}
	}
	for _, p := range order {
		l := stale[p]
		var where []string
		if len(l.artifacts) == 1 {
			where = append(where, "the URL of artifact "+l.artifacts[0])
		} else if len(l.artifacts) > 1 {
			where = append(where, "the URLs of artifacts "+strings.Join(l.artifacts, ", "))
		}
		if len(l.images) == 1 {
			where = append(where, "the tag of image "+l.images[0])
		} else if len(l.images) > 1 {
			where = append(where, "the tags of images "+strings.Join(l.images, ", "))
		}
		v.r.warnf("versions."+p.field, "make the URLs and tags match the pin",
			"%s does not match %s", p.version, strings.Join(where, " or "))
	}
}

// compat checks the target OS against the chosen components.
func (v *validator) compat() {
	s := v.s
	t := s.Target
	k8s := s.Versions.Kubernetes
	if t.Cgroup == "v1" && kubeAtLeast(k8s, 1, 35) && s.Kubelet.FailCgroupV1 != nil && *s.Kubelet.FailCgroupV1 {
		v.r.errorf("kubelet.failCgroupV1", "set it to false (or leave it out)",
			"true with target.cgroup v1 and Kubernetes %s: the kubelet would refuse to start", k8s)
	}
	if s.Network.KubeProxy.Mode == "nftables" && !kernelAtLeast(t.Kernel, 5, 13) {
		v.r.errorf("network.kubeProxy.mode", "use ipvs or iptables on this kernel",
			"nftables needs kernel 5.13 or later; target.kernel is %s", t.Kernel)
	}
	if s.Network.KubeProxy.Mode == "ipvs" && kubeAtLeast(k8s, 1, 43) {
		v.r.errorf("network.kubeProxy.mode", "use iptables, or pin Kubernetes below v1.43",
			"ipvs mode was removed in Kubernetes v1.43; versions.kubernetes is %s", k8s)
	}
	if t.OS == "centos7" && t.Cgroup == "v1" && s.Kubelet.CgroupDriver == "systemd" {
		v.r.warnf("kubelet.cgroupDriver", "use cgroupfs on CentOS 7, with containerd's SystemdCgroup = false",
			"systemd with cgroup v1 on CentOS 7 (systemd 219) is known to leak scopes and mis-account pods")
	}
}

var (
	// pxePathRE is a path under the TFTP root: no spaces or commas (pxelinux
	// separates initrds with commas), no leading slash.
	pxePathRE   = regexp.MustCompile(`^[A-Za-z0-9._+-]+(/[A-Za-z0-9._+-]+)*$`)
	timezoneRE  = regexp.MustCompile(`^(UTC|[A-Z][A-Za-z_-]+(/[A-Za-z0-9][A-Za-z0-9_+-]*){1,2})$`)
	langRE      = regexp.MustCompile(`^[a-z]{2,3}(_[A-Z]{2})?(\.(UTF-8|utf8))?$`)
	keyboardRE  = regexp.MustCompile(`^[a-z][a-z0-9_-]*$`)
	diskRE      = regexp.MustCompile(`^[a-z][a-z0-9]*$`)
	repoNameRE  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
	hostnameRE  = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$`)
	absPathRE   = regexp.MustCompile(`^/[A-Za-z0-9._/+-]*$`)
	sshKeyTypes = []string{"ssh-rsa", "ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521"}
)

// pxe checks the pxe: section and what it needs of the hosts. The root
// password hash itself is read (and checked) by kubebake pxe, not here:
// validation touches no file and no environment.
func (v *validator) pxe() {
	s := v.s
	x := s.PXE
	if x == nil {
		for i, h := range s.Hosts {
			if h.PXE != nil {
				v.r.warnf(fmt.Sprintf("hosts[%d].pxe", i), "add a pxe: section, or remove hosts[].pxe", "there is no pxe: section, so nothing uses it")
			}
		}
		return
	}
	for i, h := range s.Hosts {
		hp := fmt.Sprintf("hosts[%d]", i)
		if len(h.MACs) == 0 {
			v.r.errorf(hp+".macs", "list the MAC of the NIC "+h.Name+" boots from, e.g. macs: [\"52:54:00:04:07:15\"]", "missing; pxe recognises hosts by MAC")
		}
		if h.PXE != nil {
			v.pxeDisk(hp+".pxe.disk", h.PXE.Disk, true)
			v.pxeBootMode(hp+".pxe.bootMode", h.PXE.BootMode, true)
		}
	}
	for _, f := range []struct{ path, val, example string }{
		{"pxe.kernel", x.Kernel, "centos7/vmlinuz"},
		{"pxe.initrd", x.Initrd, "centos7/initrd.img"},
	} {
		switch {
		case f.val == "":
			v.r.errorf(f.path, "give the path under the TFTP root where the site put CentOS 7's images/pxeboot file, e.g. "+f.example, "missing")
		case strings.HasPrefix(f.val, "/"):
			v.r.errorf(f.path, "write it relative to the TFTP root, e.g. "+f.example, "%q is absolute", f.val)
		case containsDotDot(f.val) || !pxePathRE.MatchString(f.val):
			v.r.errorf(f.path, "use letters, digits, '.', '_', '+', '-' and '/', e.g. "+f.example, "%q is not a plain relative path", f.val)
		}
	}
	v.httpURL("pxe.repo", x.Repo, "http://10.4.7.200/centos/7/os/x86_64", true)
	v.httpURL("pxe.httpBase", x.HTTPBase, "http://10.4.7.200:8080", true)
	names := map[string]int{}
	for i, r := range x.Repos {
		rp := fmt.Sprintf("pxe.repos[%d]", i)
		switch {
		case !repoNameRE.MatchString(r.Name):
			v.r.errorf(rp+".name", "use letters, digits, '.', '_' or '-', e.g. epel", "%q is not a repository name", r.Name)
		default:
			if j, dup := names[r.Name]; dup {
				v.r.errorf(rp+".name", "give every repository its own name", "%s is also pxe.repos[%d].name", r.Name, j)
			} else {
				names[r.Name] = i
			}
		}
		v.httpURL(rp+".baseurl", r.BaseURL, "http://10.4.7.200/epel/7/x86_64", true)
	}
	if lbs := s.HostsWithRole(plan.RoleLB); len(lbs) > 0 && len(x.Repos) == 0 {
		v.r.warnf("pxe.repos", "add the site's EPEL mirror, e.g. {name: epel, baseurl: http://10.4.7.200/epel/7/x86_64}",
			"hosts with role lb (%s) install nginx, which CentOS 7 has only in EPEL", lbs[0].Name)
	}
	if x.TFTPRoot != "" && !absPathRE.MatchString(x.TFTPRoot) {
		v.r.errorf("pxe.tftpRoot", "write an absolute path without spaces, e.g. /srv/tftp", "%q is not an absolute path", x.TFTPRoot)
	}
	if !timezoneRE.MatchString(x.Timezone) {
		v.r.errorf("pxe.timezone", "write an Area/City zone, e.g. "+DefaultPXETimezone, "%q is not a time zone", x.Timezone)
	}
	for i, n := range x.NTPServers {
		if len(n) > 253 || !hostnameRE.MatchString(n) {
			v.r.errorf(fmt.Sprintf("pxe.ntpServers[%d]", i), "write a host name or an IPv4 address", "%q is not an NTP server", n)
		}
	}
	if !langRE.MatchString(x.Lang) {
		v.r.errorf("pxe.lang", "write a locale, e.g. "+DefaultPXELang, "%q is not a locale", x.Lang)
	}
	if !keyboardRE.MatchString(x.Keyboard) {
		v.r.errorf("pxe.keyboard", "write a console keymap, e.g. us", "%q is not a keymap", x.Keyboard)
	}
	if len(x.DNSServers) == 0 {
		v.r.errorf("pxe.dnsServers", "list the resolvers installed hosts use, e.g. [10.4.7.11]", "missing")
	}
	for i, d := range x.DNSServers {
		if _, ok := parseIP4(d); !ok {
			v.r.errorf(fmt.Sprintf("pxe.dnsServers[%d]", i), "write an IPv4 address", "%q is not an IPv4 address", d)
		}
	}
	switch {
	case x.RootPasswordHashFile == "" && x.RootPasswordHashEnv == "":
		v.r.errorf("pxe", "set rootPasswordHashFile to a file holding a crypt hash (openssl passwd -6), or rootPasswordHashEnv to the variable holding one",
			"no root password hash")
	case x.RootPasswordHashFile != "" && x.RootPasswordHashEnv != "":
		v.r.errorf("pxe.rootPasswordHashEnv", "keep one of rootPasswordHashFile and rootPasswordHashEnv", "both rootPasswordHashFile and rootPasswordHashEnv are set")
	case x.RootPasswordHashEnv != "" && !envNameRE.MatchString(x.RootPasswordHashEnv):
		v.r.errorf("pxe.rootPasswordHashEnv", "name an environment variable, e.g. KUBEBAKE_ROOT_HASH; the hash itself never goes in the spec", "%q is not an environment variable name", x.RootPasswordHashEnv)
	case strings.HasPrefix(x.RootPasswordHashFile, "$"):
		v.r.errorf("pxe.rootPasswordHashFile", "put the hash in a file and name the file here", "looks like a hash, not a file name")
	}
	for i, k := range x.SSHAuthorizedKeys {
		if msg := CheckSSHPublicKey(k); msg != "" {
			v.r.errorf(fmt.Sprintf("pxe.sshAuthorizedKeys[%d]", i), "paste one public key line (ssh-ed25519 AAAA… comment) from a .pub file", "%s", msg)
		}
	}
	v.pxeDisk("pxe.disk", x.Disk, false)
	v.pxeBootMode("pxe.bootMode", x.BootMode, false)
	switch x.BundleDelivery {
	case "http", "initrd":
	default:
		v.r.errorf("pxe.bundleDelivery", "use http (the kickstart fetches it from httpBase) or initrd (it rides in the initrd overlay)", "unknown bundle delivery %q", x.BundleDelivery)
	}
}

func (v *validator) pxeDisk(path, val string, optional bool) {
	switch {
	case val == "" && optional:
	case strings.HasPrefix(val, "/dev/") && diskRE.MatchString(strings.TrimPrefix(val, "/dev/")):
		v.r.errorf(path, "write "+strings.TrimPrefix(val, "/dev/"), "%q: give the kernel name without /dev/", val)
	case !diskRE.MatchString(val):
		v.r.errorf(path, "write the disk's kernel name, e.g. sda, vda or nvme0n1", "%q is not a disk name", val)
	}
}

func (v *validator) pxeBootMode(path, val string, optional bool) {
	switch {
	case val == "" && optional:
	case val != "bios" && val != "uefi":
		v.r.errorf(path, "use bios or uefi", "unknown boot mode %q", val)
	}
}

// httpURL checks an http:// or https:// URL without query or fragment.
func (v *validator) httpURL(path, raw, example string, required bool) {
	if raw == "" {
		if required {
			v.r.errorf(path, "set it, e.g. "+example, "missing")
		}
		return
	}
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		v.r.errorf(path, "write an http:// URL, e.g. "+example, "%q is not a URL", raw)
	case u.Scheme != "http" && u.Scheme != "https":
		v.r.errorf(path, "use http:// or https://, e.g. "+example, "unsupported URL scheme in %q", raw)
	case u.Host == "":
		v.r.errorf(path, "write scheme://host/path, e.g. "+example, "%q has no host", raw)
	case u.RawQuery != "" || u.Fragment != "" || strings.ContainsAny(raw, " \t\"'"):
		v.r.errorf(path, "write a plain URL without query, fragment, spaces or quotes, e.g. "+example, "%q is not a plain URL", raw)
	}
}

// CheckSSHPublicKey returns "" for one OpenSSH public key line that CentOS
// 7's OpenSSH 7.4 accepts (rsa, ed25519, ecdsa), else what is wrong. It
// never echoes the input: a pasted private key must not reach a log.
func CheckSSHPublicKey(line string) string {
	if strings.Contains(line, "PRIVATE KEY") {
		return "this is a private key; give the public one (.pub)"
	}
	if strings.ContainsAny(line, "\r\n") {
		return "more than one line; give one key per list item"
	}
	f := strings.Fields(line)
	if len(f) < 2 {
		return "not an OpenSSH public key line"
	}
	known := false
	for _, t := range sshKeyTypes {
		known = known || f[0] == t
	}
	if !known {
		return fmt.Sprintf("key type %q is not one of %s", f[0], strings.Join(sshKeyTypes, ", "))
	}
	blob, err := base64.StdEncoding.DecodeString(f[1])
	if err != nil || len(blob) < 4 {
		return "the key data is not base64"
	}
	n := int(blob[0])<<24 | int(blob[1])<<16 | int(blob[2])<<8 | int(blob[3])
	if n != len(f[0]) || len(blob) < 4+n || string(blob[4:4+n]) != f[0] {
		return "the key data does not match its type " + f[0]
	}
	return ""
}
