// Package spec loads, defaults and validates bundle-spec.yaml.
//
// The types here are plain data. Load decodes with yaml.v3 nodes so every
// field keeps its line and column; ApplyDefaults fills what the file leaves
// out (in one place, defaults.go); Validate reports every mistake with its
// position and a fix. Load and Parse do all three and return one Report.
package spec

// APIVersion and Kind head every bundle-spec.yaml.
const (
	APIVersion = "kubebake.io/v1alpha1"
	Kind       = "BundleSpec"
)

// Spec is bundle-spec.yaml.
type Spec struct {
	APIVersion string   `yaml:"apiVersion"`
	Kind       string   `yaml:"kind"`
	Cluster    Cluster  `yaml:"cluster"`
	Target     Target   `yaml:"target"`
	Hosts      []Host   `yaml:"hosts"`
	Network    Network  `yaml:"network"`
	PKI        PKI      `yaml:"pki"`
	Registry   Registry `yaml:"registry"`
	Versions   Versions `yaml:"versions"`
	Kubelet    Kubelet  `yaml:"kubelet"`
	// ExtraArgs adds flags to the control plane's command lines.
	ExtraArgs ExtraArgs  `yaml:"extraArgs"`
	Artifacts []Artifact `yaml:"artifacts"`
	Images    []Image    `yaml:"images"`
	Bundle    Bundle     `yaml:"bundle"`
	// Mirrors rewrites download URL prefixes and registry hosts, for sites
	// that reach upstreams through an internal Nexus/Artifactory.
	Mirrors []Mirror `yaml:"mirrors"`
	// Platforms are the image platforms pulled and mirrored ("all" keeps
	// whole multi-arch indexes). Default: [linux/<target.arch>].
	Platforms []string `yaml:"platforms"`
	// Credentials name environment variables holding registry logins;
	// the values never live in the spec.
	Credentials []Credential `yaml:"credentials"`
	// PXE, when present, has kubebake pxe (and kubebake build) write
	// kickstarts, boot entries and initrd overlays under out/pxe.
	PXE *PXE `yaml:"pxe"`

	// File is where the spec was read from (for messages); not in YAML.
	File string `yaml:"-"`
	// pos maps logical paths (hosts[3].ip) to positions; filled by Load.
	pos positions
}

// Cluster holds the cluster-wide names and networks.
type Cluster struct {
	Name                string   `yaml:"name"`
	HostDomain          string   `yaml:"hostDomain"`    // host.com
	ServiceDomain       string   `yaml:"serviceDomain"` // od.com
	ClusterDomain       string   `yaml:"clusterDomain"` // cluster.local
	NodeNetwork         string   `yaml:"nodeNetwork"`
	Gateway             string   `yaml:"gateway"`
	DNSServers          []string `yaml:"dnsServers"`
	PodNetwork          string   `yaml:"podNetwork"`
	ServiceNetwork      string   `yaml:"serviceNetwork"`
	KubernetesServiceIP string   `yaml:"kubernetesServiceIP"`
	DNSServiceIP        string   `yaml:"dnsServiceIP"`
	VIP                 string   `yaml:"vip"`
	APIServerPort       int      `yaml:"apiServerPort"` // on each master (6443)
	LBPort              int      `yaml:"lbPort"`        // nginx L4 on the VIP (7443)
	NodePortRange       string   `yaml:"nodePortRange"`
	// VIPInterface is the NIC keepalived sends VRRP adverts on and adds
	// the VIP to, on every lb host. Default: eth0 (the seed's).
	VIPInterface string `yaml:"vipInterface"`
	// VRRPRouterID is keepalived's virtual_router_id for the VIP (1–255),
	// unique among VRRP groups on the node network. Default: 251 (the seed's).
	VRRPRouterID int `yaml:"vrrpRouterID"`
	// DNSForwarders are where the dns hosts' bind9 sends the queries it
	// is not authoritative for. Default: [gateway] (the seed's 10.4.7.254).
	DNSForwarders []string `yaml:"dnsForwarders"`
}

// Target describes the hosts' operating system.
type Target struct {
	OS     string `yaml:"os"`     // centos7
	Kernel string `yaml:"kernel"` // 3.10
	Cgroup string `yaml:"cgroup"` // v1
	Arch   string `yaml:"arch"`   // amd64
	// What firstboot may change, as the seed does by hand.
	DisableSELinux   *bool `yaml:"disableSELinux"`
	DisableFirewalld *bool `yaml:"disableFirewalld"`
	DisableSwap      *bool `yaml:"disableSwap"`
}

// Host is one machine.
type Host struct {
	Name      string   `yaml:"name"`
	IP        string   `yaml:"ip"`
	MACs      []string `yaml:"macs"`
	Roles     []string `yaml:"roles"`
	PodSubnet string   `yaml:"podSubnet"` // nodes: default from the IP's last octet
	// PXE overrides the site's pxe.disk and pxe.bootMode for this host.
	PXE *HostPXE `yaml:"pxe"`
}

// HostPXE is a host's own install settings; empty fields take pxe's.
type HostPXE struct {
	Disk     string `yaml:"disk"`
	BootMode string `yaml:"bootMode"`
}

// Network chooses the CNI and service proxy.
type Network struct {
	Flannel   Flannel   `yaml:"flannel"`
	KubeProxy KubeProxy `yaml:"kubeProxy"`
	// PreseedRoutes has firstboot add host-gw routes before flannel runs.
	PreseedRoutes *bool `yaml:"preseedRoutes"`
	// Bridge is the CNI bridge name the SNAT rule excludes (seed: docker0).
	Bridge string `yaml:"bridge"`
}

// Flannel is flannel's net-conf.
type Flannel struct {
	Backend       string `yaml:"backend"` // host-gw | vxlan
	DirectRouting bool   `yaml:"directRouting"`
	EtcdPrefix    string `yaml:"etcdPrefix"`
}

// KubeProxy is kube-proxy's mode.
type KubeProxy struct {
	Mode      string `yaml:"mode"`      // ipvs | iptables
	Scheduler string `yaml:"scheduler"` // rr
}

// PKI is the CA's subject and the key algorithm.
type PKI struct {
	Algo    string  `yaml:"algo"` // rsa | ecdsa
	Size    int     `yaml:"size"` // 2048 | 256
	Expiry  string  `yaml:"expiry"`
	Subject Subject `yaml:"subject"`
	// CAKeyOnMasters ships ca-key.pem to masters for the controller-manager's
	// CSR signer. Off by default: the CA key then never leaves state/.
	CAKeyOnMasters bool `yaml:"caKeyOnMasters"`
	// RenewBefore re-issues a certificate this close to expiry.
	RenewBefore string `yaml:"renewBefore"`
}

// Subject is an X.509 name; CN is the CA's.
type Subject struct {
	CN string `yaml:"CN"`
	C  string `yaml:"C"`
	ST string `yaml:"ST"`
	L  string `yaml:"L"`
	O  string `yaml:"O"`
	OU string `yaml:"OU"`
}

// Registry is the site's Harbor.
type Registry struct {
	Host    string `yaml:"host"`    // harbor.od.com
	Project string `yaml:"project"` // public
	Private bool   `yaml:"private"`
	// Endpoint is the host:port kubebake dials to reach Host from the build
	// machine when Host does not resolve there (TLS still checks Host's
	// name). Default: Host.
	Endpoint string `yaml:"endpoint"`
	// Robot, when set, has kubebake mirror create a robot account with
	// push and pull on the project.
	Robot *Robot `yaml:"robot"`
}

// Robot is a Harbor robot account to create.
type Robot struct {
	Name string `yaml:"name"`
	// Duration in days; -1 never expires. Harbor's own default is 30 days,
	// so kubebake always sends it. Default: -1.
	Duration *int `yaml:"duration"`
	// SecretFile receives the robot's secret (0600). Default:
	// <state>/secrets/robot-<name>.json.
	SecretFile string `yaml:"secretFile"`
}

// Mirror maps an upstream URL prefix (https://dl.k8s.io) or registry host
// (registry.k8s.io) to where this site reaches it.
type Mirror struct {
	From string `yaml:"from"`
	To   string `yaml:"to"`
}

// Credential names the environment variables that hold a registry login.
type Credential struct {
	Registry    string `yaml:"registry"`    // host[:port], e.g. harbor.od.com
	UsernameEnv string `yaml:"usernameEnv"` // e.g. HARBOR_USERNAME
	PasswordEnv string `yaml:"passwordEnv"` // e.g. HARBOR_PASSWORD
}

// Versions pins each component.
type Versions struct {
	Kubernetes string `yaml:"kubernetes"`
	Etcd       string `yaml:"etcd"`
	Flannel    string `yaml:"flannel"`
	// FlannelCNIPlugin is flannel-io/cni-plugin's tag (v1.9.1-flannel1).
	FlannelCNIPlugin string `yaml:"flannelCNIPlugin"`
	CoreDNS          string `yaml:"coredns"`
	Pause            string `yaml:"pause"`
	Traefik          string `yaml:"traefik"`
	Containerd       string `yaml:"containerd"`
	Runc             string `yaml:"runc"`
	CNIPlugins       string `yaml:"cniPlugins"`
}

// Kubelet holds what the target OS forces on the kubelet.
type Kubelet struct {
	CgroupDriver string `yaml:"cgroupDriver"` // cgroupfs | systemd
	FailCgroupV1 *bool  `yaml:"failCgroupV1"`
	MaxPods      int    `yaml:"maxPods"`
}

// ExtraArgs are flags for a component's command line, by component, as
// kubeadm's ClusterConfiguration extraArgs: flag name (no leading "--") →
// value. A flag kubebake sets is replaced; others are appended in name
// order, so the rendered unit does not depend on map order.
type ExtraArgs struct {
	Etcd                  map[string]string `yaml:"etcd"`
	KubeAPIServer         map[string]string `yaml:"kubeAPIServer"`
	KubeControllerManager map[string]string `yaml:"kubeControllerManager"`
	KubeScheduler         map[string]string `yaml:"kubeScheduler"`
}

// Artifact is one upstream file. Archives name the members to install.
type Artifact struct {
	Name      string `yaml:"name"`
	URL       string `yaml:"url"`
	SHA256    string `yaml:"sha256"`
	SHA256URL string `yaml:"sha256URL"`
	// Extract maps archive member paths to installed names, for archives.
	Extract map[string]string `yaml:"extract"`
}

// Image is one container image.
type Image struct {
	Name string `yaml:"name"`
	Ref  string `yaml:"ref"`
	// Optional marks an add-on the cluster can come up without: when it
	// cannot be pulled, kubebake says which and why and goes on without it.
	Optional bool `yaml:"optional"`
}

// Bundle controls the output.
type Bundle struct {
	// SourceDateEpoch is the mtime of every entry; SOURCE_DATE_EPOCH wins.
	SourceDateEpoch int64 `yaml:"sourceDateEpoch"`
}

// PXE is the site's network install of CentOS 7: where the installer and
// the package repository are, how hosts are set up, and how each host's
// bundle reaches it. kubebake never ships CentOS itself.
type PXE struct {
	// Kernel and Initrd are the CentOS 7 installer's images/pxeboot/vmlinuz
	// and initrd.img, as paths relative to the TFTP root (and to HTTPBase
	// for iPXE). Required.
	Kernel string `yaml:"kernel"`
	Initrd string `yaml:"initrd"`
	// Repo is the site's CentOS 7 tree (os/x86_64 with images/ and
	// LiveOS/): the installer's inst.repo and the kickstart's url. Required.
	Repo string `yaml:"repo"`
	// Repos are further yum repositories (the site's updates, extras or
	// EPEL mirror), in the kickstart as repo lines. Default: none.
	Repos []PXERepo `yaml:"repos"`
	// HTTPBase is the URL out/pxe/http is served at. Required.
	HTTPBase string `yaml:"httpBase"`
	// TFTPRoot is out/pxe/tftp's path on the machine running dnsmasq.
	// Default: the absolute path of out/pxe/tftp where kubebake writes it.
	TFTPRoot string `yaml:"tftpRoot"`
	// Timezone is an Area/City zone. Default: Asia/Shanghai (the seed's).
	Timezone string `yaml:"timezone"`
	// NTPServers go to the kickstart's timezone --ntpservers. Default: none.
	NTPServers []string `yaml:"ntpServers"`
	// Lang and Keyboard: Default en_US.UTF-8 and us.
	Lang     string `yaml:"lang"`
	Keyboard string `yaml:"keyboard"`
	// DNSServers the installed hosts resolve with. Default: cluster.dnsServers.
	DNSServers []string `yaml:"dnsServers"`
	// RootPasswordHashFile or RootPasswordHashEnv (exactly one) holds root's
	// crypt(3) hash ($6$…, $5$… or $1$…); the password itself never goes in
	// the spec. A relative file is relative to the spec's directory.
	RootPasswordHashFile string `yaml:"rootPasswordHashFile"`
	RootPasswordHashEnv  string `yaml:"rootPasswordHashEnv"`
	// SSHAuthorizedKeys and SSHAuthorizedKeysFile are root's authorized
	// public keys (both may be given). Default: none.
	SSHAuthorizedKeys     []string `yaml:"sshAuthorizedKeys"`
	SSHAuthorizedKeysFile string   `yaml:"sshAuthorizedKeysFile"`
	// Disk is the install disk's kernel name (sda, vda, nvme0n1). Default: sda.
	Disk string `yaml:"disk"`
	// BootMode is bios or uefi. Default: bios.
	BootMode string `yaml:"bootMode"`
	// BundleDelivery is http (the kickstart fetches the bundle from
	// HTTPBase) or initrd (the bundle rides in the host's initrd overlay).
	// Default: http.
	BundleDelivery string `yaml:"bundleDelivery"`
}

// PXERepo is a yum repository the installer may install packages from.
type PXERepo struct {
	Name    string `yaml:"name"`
	BaseURL string `yaml:"baseurl"`
}
