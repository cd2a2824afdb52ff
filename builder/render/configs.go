package render

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"text/template"

	"go.yaml.in/yaml/v3"
)

// encodeYAML renders v (structs only, so field order is fixed) with a
// two-space indent.
func encodeYAML(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// encodeJSON renders v indented with a trailing newline; encoding/json
// sorts map keys.
func encodeJSON(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// KubeletConfiguration is the subset of kubelet.config.k8s.io/v1beta1
// kubebake sets.
type KubeletConfiguration struct {
	APIVersion               string       `yaml:"apiVersion"`
	Kind                     string       `yaml:"kind"`
	Address                  string       `yaml:"address"`
	Port                     int          `yaml:"port"`
	ReadOnlyPort             int          `yaml:"readOnlyPort"`
	HealthzBindAddress       string       `yaml:"healthzBindAddress"`
	HealthzPort              int          `yaml:"healthzPort"`
	Authentication           KubeletAuthn `yaml:"authentication"`
	Authorization            KubeletAuthz `yaml:"authorization"`
	TLSCertFile              string       `yaml:"tlsCertFile"`
	TLSPrivateKeyFile        string       `yaml:"tlsPrivateKeyFile"`
	RotateCertificates       bool         `yaml:"rotateCertificates"`
	ServerTLSBootstrap       bool         `yaml:"serverTLSBootstrap"`
	CgroupDriver             string       `yaml:"cgroupDriver"`
	FailCgroupV1             bool         `yaml:"failCgroupV1"`
	FailSwapOn               bool         `yaml:"failSwapOn"`
	ClusterDNS               []string     `yaml:"clusterDNS"`
	ClusterDomain            string       `yaml:"clusterDomain"`
	ContainerRuntimeEndpoint string       `yaml:"containerRuntimeEndpoint"`
	MaxPods                  int          `yaml:"maxPods"`
	PodCIDR                  string       `yaml:"podCIDR,omitempty"`
	ResolvConf               string       `yaml:"resolvConf"`
}

// KubeletAuthn is the kubelet's authentication block.
type KubeletAuthn struct {
	Anonymous struct {
		Enabled bool `yaml:"enabled"`
	} `yaml:"anonymous"`
	Webhook struct {
		Enabled  bool   `yaml:"enabled"`
		CacheTTL string `yaml:"cacheTTL"`
	} `yaml:"webhook"`
	X509 struct {
		ClientCAFile string `yaml:"clientCAFile"`
	} `yaml:"x509"`
}

// KubeletAuthz is the kubelet's authorization block.
type KubeletAuthz struct {
	Mode string `yaml:"mode"`
}

func (r *renderer) kubeletConfig() ([]byte, error) {
	s, h := r.s, r.h
	c := KubeletConfiguration{
		APIVersion:         "kubelet.config.k8s.io/v1beta1",
		Kind:               "KubeletConfiguration",
		Address:            h.IP,
		Port:               10250,
		ReadOnlyPort:       0,
		HealthzBindAddress: "127.0.0.1",
		HealthzPort:        10248,
		Authorization:      KubeletAuthz{Mode: "Webhook"},
		TLSCertFile:        KubeletServerCert,
		TLSPrivateKeyFile:  KubeletServerKey,
		// Certificates come from state/ in the bundle; no CSR round-trips.
		RotateCertificates: false,
		ServerTLSBootstrap: false,
		CgroupDriver:       r.cgroupDriver(),
		// Kubernetes ≥ 1.35 refuses cgroup v1 unless told otherwise; CentOS 7
		// has nothing else. The spec defaults it from target.cgroup.
		FailCgroupV1:             derefBool(s.Kubelet.FailCgroupV1, s.Target.Cgroup != "v1"),
		FailSwapOn:               derefBool(s.Target.DisableSwap, true),
		ClusterDomain:            r.clusterDomain(),
		ContainerRuntimeEndpoint: "unix://" + ContainerdSocket,
		MaxPods:                  orInt(s.Kubelet.MaxPods, defaultMaxPods),
		PodCIDR:                  h.PodSubnet,
		ResolvConf:               "/etc/resolv.conf",
	}
	if s.Cluster.DNSServiceIP != "" {
		c.ClusterDNS = []string{s.Cluster.DNSServiceIP}
	}
	c.Authentication.Anonymous.Enabled = false
	c.Authentication.Webhook.Enabled = true
	c.Authentication.Webhook.CacheTTL = "2m0s"
	c.Authentication.X509.ClientCAFile = CACert
	return encodeYAML(c)
}

func derefBool(p *bool, def bool) bool {
	if p == nil {
		return def
	}
	return *p
}

// KubeProxyConfiguration is the subset of kubeproxy.config.k8s.io/v1alpha1
// kubebake sets.
type KubeProxyConfiguration struct {
	APIVersion         string `yaml:"apiVersion"`
	Kind               string `yaml:"kind"`
	BindAddress        string `yaml:"bindAddress"`
	HealthzBindAddress string `yaml:"healthzBindAddress"`
	MetricsBindAddress string `yaml:"metricsBindAddress"`
	ClientConnection   struct {
		Kubeconfig string `yaml:"kubeconfig"`
	} `yaml:"clientConnection"`
	ClusterCIDR      string `yaml:"clusterCIDR"`
	HostnameOverride string `yaml:"hostnameOverride"`
	Mode             string `yaml:"mode"`
	IPVS             *struct {
		Scheduler string `yaml:"scheduler"`
		StrictARP bool   `yaml:"strictARP"`
	} `yaml:"ipvs,omitempty"`
}

func (r *renderer) kubeProxyConfig() ([]byte, error) {
	s, h := r.s, r.h
	c := KubeProxyConfiguration{
		APIVersion:         "kubeproxy.config.k8s.io/v1alpha1",
		Kind:               "KubeProxyConfiguration",
		BindAddress:        h.IP,
		HealthzBindAddress: "0.0.0.0:10256",
		MetricsBindAddress: "127.0.0.1:10249",
		ClusterCIDR:        s.Cluster.PodNetwork,
		HostnameOverride:   s.FQDN(h),
		Mode:               or(s.Network.KubeProxy.Mode, defaultProxyMode),
	}
	c.ClientConnection.Kubeconfig = KubeProxyKubeconfig
	if c.Mode == "ipvs" {
		c.IPVS = &struct {
			Scheduler string `yaml:"scheduler"`
			StrictARP bool   `yaml:"strictARP"`
		}{Scheduler: or(s.Network.KubeProxy.Scheduler, defaultIPVSScheduler)}
	}
	return encodeYAML(c)
}

// flannelNetConf is the net-conf flanneld reads from <etcdPrefix>/config.
type flannelNetConfig struct {
	Network string         `json:"Network"`
	Backend flannelBackend `json:"Backend"`
}

type flannelBackend struct {
	Type          string `json:"Type"`
	DirectRouting bool   `json:"DirectRouting,omitempty"`
}

func (r *renderer) flannelNetConf() ([]byte, error) {
	f := r.s.Network.Flannel
	nc := flannelNetConfig{Network: r.s.Cluster.PodNetwork, Backend: flannelBackend{Type: or(f.Backend, "host-gw")}}
	if nc.Backend.Type == "vxlan" {
		nc.Backend.DirectRouting = f.DirectRouting
	}
	b, err := encodeJSON(nc)
	if err != nil {
		return nil, fmt.Errorf("flannel net-conf: %w", err)
	}
	return b, nil
}

var netConfScript = template.Must(template.New("netconf").Parse(`#!/bin/sh
# Rendered by kubebake. Writes flannel's net-conf to etcd (v3 API), as the
# seed did by hand with "etcdctl set". Idempotent: the value is the same on
# every etcd member; retries until the cluster has quorum.
set -u
key='{{.Key}}'
for i in $(seq 1 120); do
  if {{.Etcdctl}} \
    --endpoints='{{.Endpoints}}' \
    --cacert='{{.CA}}' \
    --cert='{{.Cert}}' \
    --key='{{.KeyFile}}' \
    put "$key" < '{{.NetConf}}'; then
    exit 0
  fi
  sleep 5
done
echo "flannel-netconf: could not write $key to etcd" >&2
exit 1
`))

// flannelNetConfScript renders the script flannel-netconf.service runs. It
// authenticates with the member's peer certificate, which carries client
// auth (seed profile "peer").
func (r *renderer) flannelNetConfScript() []byte {
	var b bytes.Buffer
	_ = netConfScript.Execute(&b, map[string]string{
		"Key":       strings.TrimSuffix(r.etcdPrefix(), "/") + "/config",
		"Etcdctl":   EtcdctlBin,
		"Endpoints": etcdClientURLs(r.s),
		"CA":        EtcdCACert,
		"Cert":      EtcdPeerCert,
		"KeyFile":   EtcdPeerKey,
		"NetConf":   FlannelNetConf,
	})
	return b.Bytes()
}

// subnetEnv is the seed's hand-written /run/flannel/subnet.env, placed at
// flanneld's --subnet-file. flanneld's etcd subnet manager re-acquires the
// lease named in FLANNEL_SUBNET, which keeps the seed's 172.7.<octet>.0/24
// naming; flanneld rewrites the file once it holds the lease.
func (r *renderer) subnetEnv() ([]byte, bool) {
	p, err := netip.ParsePrefix(r.h.PodSubnet)
	if err != nil {
		return nil, false
	}
	p = p.Masked()
	gw := p.Addr().Next()
	var b bytes.Buffer
	fmt.Fprintf(&b, "FLANNEL_NETWORK=%s\n", r.s.Cluster.PodNetwork)
	fmt.Fprintf(&b, "FLANNEL_SUBNET=%s/%d\n", gw, p.Bits())
	fmt.Fprintf(&b, "FLANNEL_MTU=%d\n", 1500)
	fmt.Fprintf(&b, "FLANNEL_IPMASQ=false\n")
	return b.Bytes(), true
}

// cniConflist is flannel's CNI config: the flannel plugin delegating to the
// bridge plugin, then portmap. cniVersion is 0.3.1, as in flannel's own
// kube-flannel.yml: every flannel CNI plugin since 2018 speaks it, where
// 1.0.0 fails sandbox creation ("incompatible CNI versions") on a node
// whose flannel plugin predates it; the plugins do the same work at either.
func (r *renderer) cniConflist() ([]byte, error) {
	type plugin = map[string]any
	conf := map[string]any{
		"cniVersion": "0.3.1",
		"name":       "cbr0",
		"plugins": []plugin{
			{
				"type":       "flannel",
				"subnetFile": FlannelSubnetEnv,
				"dataDir":    "/var/lib/cni/flannel",
				"delegate": plugin{
					"bridge": r.bridge(),
					// A pod must reach itself through its own Service.
					"hairpinMode":      true,
					"isDefaultGateway": true,
					// Without this the flannel plugin turns on the bridge's
					// ipMasq (FLANNEL_IPMASQ=false) and every pod→pod packet
					// across nodes is SNATed; firstboot's rule does it only
					// for traffic leaving the pod network.
					"ipMasq": false,
				},
			},
			{
				"type":         "portmap",
				"capabilities": plugin{"portMappings": true},
			},
		},
	}
	return encodeJSON(conf)
}

var containerdTemplate = template.Must(template.New("containerd").Parse(`# Rendered by kubebake from bundle-spec.yaml. Do not edit: rebuild the bundle.
# containerd 2.x, config version 3.
version = 3
root = "/var/lib/containerd"
state = "/run/containerd"

[grpc]
  address = "{{.Socket}}"

[plugins]
  [plugins.'io.containerd.cri.v1.images']
    snapshotter = "overlayfs"

    [plugins.'io.containerd.cri.v1.images'.pinned_images]
      sandbox = "{{.Sandbox}}"

    [plugins.'io.containerd.cri.v1.images'.registry]
      config_path = "{{.CertsDir}}"

  [plugins.'io.containerd.cri.v1.runtime']
    # true only where root lacks CAP_SYS_RESOURCE (e.g. systemd-nspawn test beds).
    restrict_oom_score_adj = false

    [plugins.'io.containerd.cri.v1.runtime'.containerd]
      default_runtime_name = "runc"

      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
        runtime_type = "io.containerd.runc.v2"

        [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
          BinaryName = "{{.Runc}}"
          SystemdCgroup = {{.SystemdCgroup}}

    # CNI: the defaults, bin /opt/cni/bin and conf /etc/cni/net.d.
`))

func (r *renderer) containerdConfig() []byte {
	var b bytes.Buffer
	_ = containerdTemplate.Execute(&b, map[string]any{
		"Socket":        ContainerdSocket,
		"Sandbox":       r.pauseImage(),
		"CertsDir":      ContainerdCertsDir,
		"Runc":          RuncBin,
		"SystemdCgroup": r.cgroupDriver() == "systemd",
	})
	return b.Bytes()
}

// pauseImage is the sandbox image nodes pull from the site registry.
func (r *renderer) pauseImage() string {
	reg := r.s.Registry
	img := "pause:" + or(r.s.Versions.Pause, "latest")
	if reg.Project != "" {
		img = reg.Project + "/" + img
	}
	if reg.Host != "" {
		img = reg.Host + "/" + img
	}
	return img
}

// mirroredRegistries are the upstream namespaces nodes pull from the site
// registry under their upstream names.
var mirroredRegistries = []string{"docker.io", "ghcr.io", "registry.k8s.io"}

var hostsTemplate = template.Must(template.New("hosts").Parse(`# Rendered by kubebake from bundle-spec.yaml. Do not edit: rebuild the bundle.
{{- if .Server}}
server = "{{.Server}}"
{{- end}}

[host."{{.URL}}"]
  capabilities = ["pull", "resolve"]
  ca = "{{.CA}}"
{{- if .Override}}
  override_path = true
{{- end}}
`))

// registryHosts renders containerd's hosts.toml for the site registry and
// for each upstream namespace mirrored into it.
func (r *renderer) registryHosts() []File {
	reg := r.s.Registry
	if reg.Host == "" {
		return nil
	}
	render := func(ns string, data map[string]any) File {
		var b bytes.Buffer
		_ = hostsTemplate.Execute(&b, data)
		return File{Path: RegistryHostsFile(ns), Mode: 0o644, Content: b.Bytes()}
	}
	site := "https://" + reg.Host
	files := []File{render(reg.Host, map[string]any{
		"Server": site, "URL": site, "CA": RegistryCA(reg.Host),
	})}
	mirror := site + "/v2"
	if reg.Project != "" {
		mirror += "/" + reg.Project
	}
	for _, ns := range mirroredRegistries {
		// No server line: upstream stays the (unreachable) fallback.
		files = append(files, render(ns, map[string]any{
			"URL": mirror, "CA": RegistryCA(reg.Host), "Override": true,
		}))
	}
	return files
}
