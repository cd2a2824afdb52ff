package spec

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/kubebake/kubebake/firstboot/plan"
)

// Defaults. Every default of bundle-spec.yaml is here and nowhere else.
const (
	DefaultClusterName   = "kubernetes"
	DefaultClusterDomain = "cluster.local"
	DefaultAPIServerPort = 6443
	DefaultLBPort        = 7443
	// DefaultNodePortRange is the seed's: it exposes services on low ports
	// through the L7 proxy. Kubernetes' own default is 30000-32767.
	DefaultNodePortRange = "30000-32767"
	// DefaultVIPInterface and DefaultVRRPRouterID are the seed's keepalived
	// settings (interface eth0, virtual_router_id 251).
	DefaultVIPInterface = "eth0"
	DefaultVRRPRouterID = 251

	DefaultOS     = "centos7"
	DefaultKernel = "3.10"
	DefaultCgroup = "v1"
	DefaultArch   = "amd64"
	// DefaultRobotDuration is "never expires", in Harbor's days.
	DefaultRobotDuration = -1

	DefaultFlannelBackend    = "host-gw"
	DefaultFlannelEtcdPrefix = "/coreos.com/network"
	DefaultKubeProxyMode     = "ipvs"
	DefaultIPVSScheduler     = "rr"
	DefaultBridge            = "cni0"

	DefaultPKIAlgo      = "rsa"
	DefaultRSASize      = 2048
	DefaultECDSASize    = 256
	DefaultExpiry       = "175200h" // 20 years, the seed's
	DefaultRenewBefore  = "720h"    // 30 days
	DefaultRegistryProj = "public"

	// DefaultCgroupDriver is cgroupfs: on CentOS 7 (cgroup v1) it matches
	// containerd's runc option SystemdCgroup = false, which the render
	// package writes. kubelet and containerd must agree.
	DefaultCgroupDriver = "cgroupfs"
	DefaultMaxPods      = 110

	// PXE defaults (pxe: section).
	DefaultPXETimezone = "Asia/Shanghai" // the seed's
	DefaultPXELang     = "en_US.UTF-8"
	DefaultPXEKeyboard = "us"
	DefaultPXEDisk     = "sda"
	DefaultPXEBootMode = "bios"
	// DefaultPXEBundleDelivery is http: the installer's initrd stays small
	// (TFTP is slow and the initrd is held in RAM twice), and kubebake serve
	// can hand each bundle to its host's IP only.
	DefaultPXEBundleDelivery = "http"
)

// ApplyDefaults fills what the file leaves out and normalises MACs to
// lower-case colon form. It returns an Info entry for every value it sets,
// positioned at the field's parent when the field is absent. It never fails:
// values it cannot derive (a pod subnet from a bad IP) are left for Validate.
func ApplyDefaults(s *Spec) []Entry {
	if s == nil {
		return nil
	}
	var r Report
	str := func(p *string, path, v string) {
		if *p == "" {
			*p = v
			r.infof(path, "", "defaulted to %s", v)
		}
	}
	num := func(p *int, path string, v int) {
		if *p == 0 {
			*p = v
			r.infof(path, "", "defaulted to %d", v)
		}
	}
	flag := func(p **bool, path string, v bool) {
		if *p == nil {
			*p = &v
			r.infof(path, "", "defaulted to %t", v)
		}
	}

	c := &s.Cluster
	str(&c.Name, "cluster.name", DefaultClusterName)
	str(&c.ClusterDomain, "cluster.clusterDomain", DefaultClusterDomain)
	num(&c.APIServerPort, "cluster.apiServerPort", DefaultAPIServerPort)
	num(&c.LBPort, "cluster.lbPort", DefaultLBPort)
	str(&c.NodePortRange, "cluster.nodePortRange", DefaultNodePortRange)
	str(&c.VIPInterface, "cluster.vipInterface", DefaultVIPInterface)
	num(&c.VRRPRouterID, "cluster.vrrpRouterID", DefaultVRRPRouterID)
	if len(c.DNSForwarders) == 0 && c.Gateway != "" {
		c.DNSForwarders = []string{c.Gateway}
		r.infof("cluster.dnsForwarders", "", "defaulted to [%s] (cluster.gateway, as the seed's bind9 forwards)", c.Gateway)
	}
	if svc, err := netip.ParsePrefix(c.ServiceNetwork); err == nil && svc.Addr().Is4() && svc.Bits() <= 30 {
		base := svc.Masked().Addr()
		first := base.Next()
		str(&c.KubernetesServiceIP, "cluster.kubernetesServiceIP", first.String())
		str(&c.DNSServiceIP, "cluster.dnsServiceIP", first.Next().String())
	}

	t := &s.Target
	str(&t.OS, "target.os", DefaultOS)
	str(&t.Kernel, "target.kernel", DefaultKernel)
	str(&t.Cgroup, "target.cgroup", DefaultCgroup)
	str(&t.Arch, "target.arch", DefaultArch)
	flag(&t.DisableSELinux, "target.disableSELinux", true)
	flag(&t.DisableFirewalld, "target.disableFirewalld", true)
	flag(&t.DisableSwap, "target.disableSwap", true)

	n := &s.Network
	str(&n.Flannel.Backend, "network.flannel.backend", DefaultFlannelBackend)
	str(&n.Flannel.EtcdPrefix, "network.flannel.etcdPrefix", DefaultFlannelEtcdPrefix)
	str(&n.KubeProxy.Mode, "network.kubeProxy.mode", DefaultKubeProxyMode)
	if n.KubeProxy.Mode == "ipvs" {
		str(&n.KubeProxy.Scheduler, "network.kubeProxy.scheduler", DefaultIPVSScheduler)
	}
	flag(&n.PreseedRoutes, "network.preseedRoutes", true)
	str(&n.Bridge, "network.bridge", DefaultBridge)

	p := &s.PKI
	str(&p.Algo, "pki.algo", DefaultPKIAlgo)
	switch p.Algo {
	case "rsa":
		num(&p.Size, "pki.size", DefaultRSASize)
	case "ecdsa":
		num(&p.Size, "pki.size", DefaultECDSASize)
	}
	str(&p.Expiry, "pki.expiry", DefaultExpiry)
	str(&p.RenewBefore, "pki.renewBefore", DefaultRenewBefore)

	str(&s.Registry.Project, "registry.project", DefaultRegistryProj)

	k := &s.Kubelet
	str(&k.CgroupDriver, "kubelet.cgroupDriver", DefaultCgroupDriver)
	num(&k.MaxPods, "kubelet.maxPods", DefaultMaxPods)
	if k.FailCgroupV1 == nil && t.Cgroup == "v1" && kubeAtLeast(s.Versions.Kubernetes, 1, 35) {
		f := false
		k.FailCgroupV1 = &f
		why := "target.cgroup is v1"
		if t.OS == "centos7" {
			why = "CentOS 7 is cgroup v1 only"
		}
		r.infof("kubelet.failCgroupV1", "", "set to false: %s and Kubernetes >= 1.35 refuses cgroup v1 unless failCgroupV1 is false", why)
	}

	pods, podErr := netip.ParsePrefix(c.PodNetwork)
	for i := range s.Hosts {
		h := &s.Hosts[i]
		for j, m := range h.MACs {
			if hw, err := net.ParseMAC(m); err == nil && len(hw) == 6 && hw.String() != m {
				h.MACs[j] = hw.String()
				r.infof(fmt.Sprintf("hosts[%d].macs[%d]", i, j), "", "normalised %s to %s", m, hw.String())
			}
		}
		if h.PodSubnet != "" || !h.HasRole(plan.RoleNode) || podErr != nil {
			continue
		}
		if sub, ok := derivePodSubnet(pods, h.IP); ok {
			h.PodSubnet = sub
			r.infof(fmt.Sprintf("hosts[%d].podSubnet", i), "", "defaulted to %s (the pod network's /24 named after %s)", sub, h.IP)
		}
	}

	if len(s.Platforms) == 0 {
		s.Platforms = []string{"linux/" + s.Target.Arch}
		r.infof("platforms", "", "defaulted to [%s]", s.Platforms[0])
	}
	if rb := s.Registry.Robot; rb != nil && rb.Duration == nil {
		never := DefaultRobotDuration
		rb.Duration = &never
		r.infof("registry.robot.duration", "", "defaulted to %d (never expires; Harbor's own default is 30 days)", never)
	}

	if x := s.PXE; x != nil {
		str(&x.Timezone, "pxe.timezone", DefaultPXETimezone)
		str(&x.Lang, "pxe.lang", DefaultPXELang)
		str(&x.Keyboard, "pxe.keyboard", DefaultPXEKeyboard)
		str(&x.Disk, "pxe.disk", DefaultPXEDisk)
		str(&x.BootMode, "pxe.bootMode", DefaultPXEBootMode)
		str(&x.BundleDelivery, "pxe.bundleDelivery", DefaultPXEBundleDelivery)
		if len(x.DNSServers) == 0 && len(c.DNSServers) > 0 {
			x.DNSServers = append([]string(nil), c.DNSServers...)
			r.infof("pxe.dnsServers", "", "defaulted to cluster.dnsServers %v", x.DNSServers)
		}
	}

	for i := range r.Entries {
		r.Entries[i].Pos = s.Pos(r.Entries[i].Path)
	}
	return r.Entries
}

// derivePodSubnet names a node's /24 after its address, as the seed does:
// pod network 172.7.0.0/16 and node 10.4.7.21 give 172.7.21.0/24 (the
// third octet is the node's last). It fails when that /24 would fall
// outside the pod network (a pod network smaller than /16 whose fixed bits
// disagree, or one that is smaller than a /24).
func derivePodSubnet(pods netip.Prefix, hostIP string) (string, bool) {
	ip, err := netip.ParseAddr(hostIP)
	if err != nil || !ip.Is4() || !pods.Addr().Is4() || pods.Bits() > 24 {
		return "", false
	}
	b := pods.Masked().Addr().As4()
	h := ip.As4()
	sub := netip.PrefixFrom(netip.AddrFrom4([4]byte{b[0], b[1], h[3], 0}), 24)
	if !pods.Contains(sub.Addr()) {
		return "", false
	}
	return sub.String(), true
}
