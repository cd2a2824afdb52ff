package render

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/kubebake/kubebake/builder/spec"
	"github.com/kubebake/kubebake/firstboot/plan"
)

// Plan returns the node plan for h: preflight, kernel modules, sysctls,
// routes, iptables rules, units in start order and health checks.
//
// Kubernetes roles get modules, sysctls, routes and iptables rules; lb,
// dns and ops get the units of their CentOS 7 packages (osUnits), which
// firstboot enables and starts but does not install. Units' Watch is left
// empty: it needs the host's whole file list, see WatchUnits.
func Plan(s *spec.Spec, h spec.Host) (plan.Plan, error) {
	if s == nil {
		return plan.Plan{}, fmt.Errorf("plan %s: %w: nil spec", h.Name, ErrHost)
	}
	if err := checkHost(h); err != nil {
		return plan.Plan{}, fmt.Errorf("plan %s: %w", h.Name, err)
	}
	r := &renderer{s: s, h: h}
	p := plan.Plan{
		Preflight: r.preflight(),
		Modules:   []string{},
		Sysctls:   []plan.Sysctl{},
		Units:     []plan.Unit{},
	}
	if h.HasRole(plan.RoleNode) {
		ct, err := ConntrackModule(s.Target.Kernel)
		if err != nil {
			return plan.Plan{}, fmt.Errorf("plan %s: target.kernel: %w", h.Name, err)
		}
		p.Modules = nodeModules(ct, or(s.Network.KubeProxy.Mode, defaultProxyMode) == "ipvs")
		p.Sysctls = nodeSysctls()
		routes, err := r.routes()
		if err != nil {
			return plan.Plan{}, fmt.Errorf("plan %s: %w", h.Name, err)
		}
		p.Routes = routes
		p.IPTables = append(p.IPTables, r.snatRules()...)
	}
	if h.HasRole(plan.RoleNode) || h.HasRole(plan.RoleMaster) || h.HasRole(plan.RoleEtcd) {
		p.IPTables = append(p.IPTables, rejectRemoval()...)
	}
	for _, name := range startOrder {
		if r.runs(name) {
			u := plan.Unit{Name: name, Start: true}
			if name == UnitEtcd {
				u.StartTimeout = EtcdStartTimeout
			}
			p.Units = append(p.Units, u)
		}
	}
	p.Health = r.health()
	p.Addons = r.addonsPlan()
	return p, nil
}

func (r *renderer) preflight() plan.Preflight {
	t := r.s.Target
	return plan.Preflight{
		OS:        t.OS,
		MinKernel: t.Kernel,
		Cgroup:    t.Cgroup,
		// The seed turns all three off by hand; a nil (not defaulted)
		// setting follows the seed.
		DisableSELinux:   derefBool(t.DisableSELinux, true),
		DisableFirewalld: derefBool(t.DisableFirewalld, true),
		DisableSwap:      derefBool(t.DisableSwap, true),
	}
}

// ConntrackModule names the IPv4 conntrack module for a kernel version
// ("3.10", "3.10.0-1160.el7.x86_64", "5.4"): nf_conntrack_ipv4 before 4.19,
// where it was merged into nf_conntrack. An empty version means the
// default target, CentOS 7's 3.10.
func ConntrackModule(kernel string) (string, error) {
	if kernel == "" {
		return "nf_conntrack_ipv4", nil
	}
	major, minor, err := kernelVersion(kernel)
	if err != nil {
		return "", err
	}
	if major > 4 || (major == 4 && minor >= 19) {
		return "nf_conntrack", nil
	}
	return "nf_conntrack_ipv4", nil
}

func kernelVersion(v string) (major, minor int, err error) {
	parts := strings.SplitN(v, ".", 3)
	if len(parts) < 2 {
		return 0, 0, fmt.Errorf("kernel %q: want major.minor, e.g. 3.10", v)
	}
	major, err = strconv.Atoi(parts[0])
	if err != nil {
		return 0, 0, fmt.Errorf("kernel %q: want major.minor, e.g. 3.10", v)
	}
	m := parts[1]
	if i := strings.IndexFunc(m, func(c rune) bool { return c < '0' || c > '9' }); i >= 0 {
		m = m[:i]
	}
	minor, err = strconv.Atoi(m)
	if err != nil {
		return 0, 0, fmt.Errorf("kernel %q: want major.minor, e.g. 3.10", v)
	}
	return major, minor, nil
}

// nodeModules is what a node loads: IPVS and its schedulers for kube-proxy
// (the seed's rr plus the ones kube-proxy checks for), conntrack,
// br_netfilter for the bridge sysctls, overlay for containerd.
func nodeModules(conntrack string, ipvs bool) []string {
	var m []string
	if ipvs {
		m = append(m, "ip_vs", "ip_vs_rr", "ip_vs_wrr", "ip_vs_sh", "ip_vs_nq")
	}
	return append(m, conntrack, "br_netfilter", "overlay")
}

// nodeSysctls are set on nodes, after the modules that own them load.
func nodeSysctls() []plan.Sysctl {
	return []plan.Sysctl{
		// Pods and Services are routed through the host.
		{Key: "net.ipv4.ip_forward", Value: "1"},
		// Bridged pod traffic must pass iptables/IPVS for Services.
		{Key: "net.bridge.bridge-nf-call-iptables", Value: "1"},
		{Key: "net.bridge.bridge-nf-call-ip6tables", Value: "1"},
		// A 2 GB CentOS 7 host defaults to 65536 entries; IPVS and NodePort
		// traffic exhaust that ("nf_conntrack: table full, dropping packet").
		// kube-proxy raises it too, but only once it runs and only if
		// /proc/sys is writable; set it before anything starts.
		{Key: "net.netfilter.nf_conntrack_max", Value: "1048576"},
		// The kubelet runs with swap off; avoid swapping if some is left.
		{Key: "vm.swappiness", Value: "0"},
	}
}

// routes preseeds host-gw routes: every other node's pod subnet via that
// node's IP, so pods talk before flanneld has synced (flanneld installs the
// same routes, replace semantics keep it idempotent).
func (r *renderer) routes() ([]plan.Route, error) {
	if !derefBool(r.s.Network.PreseedRoutes, true) || or(r.s.Network.Flannel.Backend, "host-gw") != "host-gw" {
		return nil, nil
	}
	var routes []plan.Route
	for _, n := range r.s.HostsWithRole(plan.RoleNode) {
		if n.Name == r.h.Name || n.PodSubnet == "" {
			continue
		}
		p, err := netip.ParsePrefix(n.PodSubnet)
		if err != nil {
			return nil, fmt.Errorf("host %s: podSubnet %q: %v", n.Name, n.PodSubnet, err)
		}
		if _, err := netip.ParseAddr(n.IP); err != nil {
			return nil, fmt.Errorf("host %s: ip %q: %v", n.Name, n.IP, err)
		}
		routes = append(routes, plan.Route{Dst: p.Masked().String(), Via: n.IP})
	}
	return routes, nil
}

// snatRules is the seed's SNAT optimisation: masquerade only what leaves
// the pod network, so a pod on another node sees the caller's pod IP.
func (r *renderer) snatRules() []plan.IPTablesOp {
	sub, podNet, br := r.h.PodSubnet, r.s.Cluster.PodNetwork, r.bridge()
	if sub == "" || podNet == "" {
		return nil
	}
	return []plan.IPTablesOp{
		{
			Table: "nat", Chain: "POSTROUTING",
			Rule: []string{"-s", sub, "!", "-d", podNet, "!", "-o", br, "-j", "MASQUERADE"},
			Why:  "SNAT pod traffic only when it leaves the pod network, so pods on other nodes see the real pod IP (seed's optimisation)",
		},
		{
			Table: "nat", Chain: "POSTROUTING",
			Rule:   []string{"-s", sub, "!", "-o", br, "-j", "MASQUERADE"},
			Delete: true,
			Why:    "the broad rule the seed replaces: it would SNAT pod-to-pod traffic between nodes",
		},
	}
}

// rejectRemoval deletes the catch-all REJECT rules iptables-services
// installs; they drop etcd, apiserver, kubelet and forwarded pod traffic.
func rejectRemoval() []plan.IPTablesOp {
	reject := []string{"-j", "REJECT", "--reject-with", "icmp-host-prohibited"}
	return []plan.IPTablesOp{
		{Table: "filter", Chain: "INPUT", Rule: reject, Delete: true,
			Why: "iptables-services' default REJECT blocks etcd, apiserver and kubelet ports (seed removes it)"},
		{Table: "filter", Chain: "FORWARD", Rule: reject, Delete: true,
			Why: "iptables-services' default REJECT drops forwarded pod traffic between nodes (seed removes it)"},
	}
}

// EtcdStartTimeout is how long firstboot waits for etcd's start job.
// etcd (Type=notify) reports ready only once a quorum of members has
// formed, and its peers are other hosts, installed and booted at their own
// pace; firstboot's 5-minute default would fail the first of them to boot.
// Past this, firstboot fails and the next boot tries again.
const EtcdStartTimeout = "1h"

// startOrder is the order units start in; a host runs a subset.
var startOrder = []string{
	UnitNetwork,
	UnitNamed, UnitNginx, UnitKeepalived, UnitNFSServer,
	UnitContainerd, UnitEtcd, UnitFlannelNetConf, UnitFlanneld,
	UnitAPIServer, UnitControllerManager, UnitScheduler,
	UnitKubelet, UnitKubeProxy,
}

// runs reports whether the host runs unit name.
func (r *renderer) runs(name string) bool {
	h := r.h
	switch name {
	case UnitNetwork:
		return r.networkRole() != ""
	case UnitEtcd, UnitFlannelNetConf:
		return h.HasRole(plan.RoleEtcd)
	case UnitAPIServer, UnitControllerManager, UnitScheduler:
		return h.HasRole(plan.RoleMaster)
	case UnitContainerd, UnitFlanneld, UnitKubelet, UnitKubeProxy:
		return h.HasRole(plan.RoleNode)
	}
	if role, ok := osUnits[name]; ok {
		return h.HasRole(role)
	}
	return false
}

// osUnits are the units CentOS 7's packages install (the kickstart's
// %packages: bind, nginx + nginx-mod-stream, keepalived, nfs-utils), by
// the role that runs them. kubebake renders their configuration, not the
// units themselves.
var osUnits = map[string]string{
	UnitNamed:      plan.RoleDNS,
	UnitNginx:      plan.RoleLB,
	UnitKeepalived: plan.RoleLB,
	UnitNFSServer:  plan.RoleOps,
}

// health lists the readiness probes for the host's components. Etcd waits
// for quorum, which needs the other members booted: it gets the longest
// budget (10 minutes).
func (r *renderer) health() []plan.HealthCheck {
	h := r.h
	var hc []plan.HealthCheck
	if h.HasRole(plan.RoleEtcd) {
		hc = append(hc, plan.HealthCheck{
			Name: "etcd", URL: "https://" + hostPort(h.IP, 2379) + "/health",
			CA: EtcdCACert, Cert: EtcdPeerCert, Key: EtcdPeerKey,
			Attempts: 120, Interval: "5s", Expect: "true",
		})
	}
	if h.HasRole(plan.RoleMaster) {
		// /readyz is open to anonymous users (system:public-info-viewer).
		hc = append(hc, plan.HealthCheck{
			Name: "kube-apiserver", URL: "https://" + hostPort("127.0.0.1", r.apiPort()) + "/readyz",
			CA: CACert, Attempts: 60, Interval: "5s", Expect: "ok",
		})
	}
	if h.HasRole(plan.RoleLB) {
		// nginx's loopback /healthz: up, with the whole nginx.conf (the
		// stream block and the certificates) loaded.
		hc = append(hc, plan.HealthCheck{Name: "nginx", URL: "http://" + hostPort("127.0.0.1", NginxHealthPort) + "/healthz",
			Attempts: 12, Interval: "5s", Expect: "ok"})
	}
	if h.HasRole(plan.RoleNode) {
		hc = append(hc,
			plan.HealthCheck{Name: "kubelet", URL: "http://127.0.0.1:10248/healthz", Attempts: 60, Interval: "5s", Expect: "ok"},
			// kube-proxy answers 200 once it has synced its rules.
			plan.HealthCheck{Name: "kube-proxy", URL: "http://127.0.0.1:10256/healthz", Attempts: 60, Interval: "5s"},
		)
	}
	return hc
}
