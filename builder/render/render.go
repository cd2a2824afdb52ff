package render

import (
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strings"

	"github.com/kubebake/kubebake/builder/spec"
	"github.com/kubebake/kubebake/firstboot/plan"
)

// File is one rendered file for a host.
type File struct {
	Path    string // absolute on the host
	Mode    uint32 // permission bits, e.g. 0o644
	Content []byte
	Secret  bool   // private key or credential: the bundle keeps it apart, 0600
	Role    string // the role that needs it (plan.Role*), or plan.RoleCommon
}

// ErrHost means the host cannot be rendered from the spec as given.
var ErrHost = errors.New("cannot render host")

// Default values used when the spec leaves a field empty. The spec package
// applies the real defaults; these only keep render from producing nonsense
// on a partly defaulted spec.
const (
	defaultBridge        = "cni0"
	defaultEtcdPrefix    = "/coreos.com/network"
	defaultAPIServerPort = 6443
	defaultClusterDomain = "cluster.local"
	defaultMaxPods       = 110
	defaultCgroupDriver  = "cgroupfs"
	defaultProxyMode     = "ipvs"
	defaultIPVSScheduler = "rr"
	defaultNodePortRange = "30000-32767"
)

// Host renders every unit and config file host h needs, sorted by Path.
// Certificates, keys and kubeconfigs are not rendered: see the package
// comment for where the lead places them.
func Host(s *spec.Spec, h spec.Host) ([]File, error) {
	if s == nil {
		return nil, fmt.Errorf("render %s: %w: nil spec", h.Name, ErrHost)
	}
	if err := checkHost(h); err != nil {
		return nil, fmt.Errorf("render %s: %w", h.Name, err)
	}
	r := &renderer{s: s, h: h}
	var files []File
	add := func(fs ...File) { files = append(files, fs...) }

	for _, u := range r.units() {
		b, err := u.serialize()
		if err != nil {
			return nil, fmt.Errorf("render %s: unit %s: %w", h.Name, u.name, err)
		}
		add(File{Path: UnitPath(u.name), Mode: 0o644, Content: b, Role: u.role})
	}
	if h.HasRole(plan.RoleEtcd) {
		nc, err := r.flannelNetConf()
		if err != nil {
			return nil, fmt.Errorf("render %s: %w", h.Name, err)
		}
		add(File{Path: FlannelNetConf, Mode: 0o644, Content: nc, Role: plan.RoleEtcd},
			File{Path: FlannelNetConfSh, Mode: 0o755, Content: r.flannelNetConfScript(), Role: plan.RoleEtcd})
	}
	if h.HasRole(plan.RoleMaster) {
		add(File{Path: AuditPolicyFile, Mode: 0o644, Content: []byte(auditPolicy), Role: plan.RoleMaster})
	}
	if h.HasRole(plan.RoleNode) {
		kc, err := r.kubeletConfig()
		if err != nil {
			return nil, fmt.Errorf("render %s: kubelet config: %w", h.Name, err)
		}
		pc, err := r.kubeProxyConfig()
		if err != nil {
			return nil, fmt.Errorf("render %s: kube-proxy config: %w", h.Name, err)
		}
		cni, err := r.cniConflist()
		if err != nil {
			return nil, fmt.Errorf("render %s: cni: %w", h.Name, err)
		}
		add(File{Path: KubeletConfigFile, Mode: 0o644, Content: kc, Role: plan.RoleNode},
			File{Path: KubeProxyConfigFile, Mode: 0o644, Content: pc, Role: plan.RoleNode},
			File{Path: ContainerdConfig, Mode: 0o644, Content: r.containerdConfig(), Role: plan.RoleNode},
			File{Path: CNIConfFile, Mode: 0o644, Content: cni, Role: plan.RoleNode})
		if env, ok := r.subnetEnv(); ok {
			add(File{Path: FlannelSubnetEnv, Mode: 0o644, Content: env, Role: plan.RoleNode})
		}
		for _, f := range r.registryHosts() {
			f.Role = plan.RoleNode
			add(f)
		}
	}
	// nginx + keepalived (lb), bind9 (dns), the NFS export (ops).
	osFiles, err := r.osServiceFiles()
	if err != nil {
		return nil, fmt.Errorf("render %s: %w", h.Name, err)
	}
	add(osFiles...)
	if isFirstMaster(s, h) {
		fs, err := Addons(s)
		if err != nil {
			return nil, fmt.Errorf("render %s: %w", h.Name, err)
		}
		add(fs...)
	}

	sort.Slice(files, func(i, j int) bool { return files[i].Path < files[j].Path })
	for i := 1; i < len(files); i++ {
		if files[i].Path == files[i-1].Path {
			return nil, fmt.Errorf("render %s: %s rendered twice", h.Name, files[i].Path)
		}
	}
	return files, nil
}

// checkHost rejects what would make every rendered file wrong.
func checkHost(h spec.Host) error {
	if h.Name == "" {
		return fmt.Errorf("%w: host has no name", ErrHost)
	}
	if _, err := netip.ParseAddr(h.IP); err != nil {
		return fmt.Errorf("%w: ip %q: %v", ErrHost, h.IP, err)
	}
	if h.HasRole(plan.RoleNode) && h.PodSubnet != "" {
		if _, err := netip.ParsePrefix(h.PodSubnet); err != nil {
			return fmt.Errorf("%w: podSubnet %q: %v", ErrHost, h.PodSubnet, err)
		}
	}
	return nil
}

// renderer carries the spec and the host being rendered.
type renderer struct {
	s *spec.Spec
	h spec.Host
}

// etcdClientURLs lists https://<ip>:2379 for every etcd member.
func etcdClientURLs(s *spec.Spec) string {
	var urls []string
	for _, m := range s.HostsWithRole(plan.RoleEtcd) {
		urls = append(urls, "https://"+hostPort(m.IP, 2379))
	}
	return strings.Join(urls, ",")
}

// hostPort joins an address and port, bracketing IPv6.
func hostPort(ip string, port int) string {
	if strings.Contains(ip, ":") {
		return fmt.Sprintf("[%s]:%d", ip, port)
	}
	return fmt.Sprintf("%s:%d", ip, port)
}

func or(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

func orInt(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

func (r *renderer) bridge() string     { return or(r.s.Network.Bridge, defaultBridge) }
func (r *renderer) etcdPrefix() string { return or(r.s.Network.Flannel.EtcdPrefix, defaultEtcdPrefix) }
func (r *renderer) apiPort() int       { return orInt(r.s.Cluster.APIServerPort, defaultAPIServerPort) }
func (r *renderer) clusterDomain() string {
	return or(r.s.Cluster.ClusterDomain, defaultClusterDomain)
}

// cgroupDriver is the kubelet's and containerd's cgroup driver.
func (r *renderer) cgroupDriver() string { return or(r.s.Kubelet.CgroupDriver, defaultCgroupDriver) }
