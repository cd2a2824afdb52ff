// Package render turns a bundle spec into what each host runs: systemd
// units, component configuration files and the node plan firstboot
// converges. It renders no certificates, keys or kubeconfigs: the lead
// places those at the paths this file exports, and render only refers to
// them.
//
// # On-host layout
//
// The layout follows the seed's /opt/<component>/{bin,certs,conf} scheme.
//
//	path                                           what                                        hosts
//	/opt/kubernetes/bin/<binary>                   kube-apiserver, kube-controller-manager,    master, node
//	                                               kube-scheduler, kubelet, kube-proxy, kubectl
//	/opt/kubernetes/certs/ca.pem                   cluster CA                                  master, node
//	/opt/kubernetes/certs/ca-key.pem               CA key, only with pki.caKeyOnMasters        master
//	/opt/kubernetes/certs/apiserver{,-key}.pem     apiserver serving                           master
//	/opt/kubernetes/certs/apiserver-etcd-client{,-key}.pem    apiserver → etcd                 master
//	/opt/kubernetes/certs/apiserver-kubelet-client{,-key}.pem apiserver → kubelet              master
//	/opt/kubernetes/certs/front-proxy-ca.pem       front-proxy CA                              master
//	/opt/kubernetes/certs/front-proxy-client{,-key}.pem       aggregator client                master
//	/opt/kubernetes/certs/sa.key, sa.pub           service-account signing pair                master
//	/opt/kubernetes/certs/kubelet-server{,-key}.pem kubelet serving (state: kubelet-server-<host>) node
//	/opt/kubernetes/conf/kube-controller-manager.kubeconfig                                    master
//	/opt/kubernetes/conf/kube-scheduler.kubeconfig                                             master
//	/opt/kubernetes/conf/kubelet.kubeconfig, kube-proxy.kubeconfig                             node
//	/opt/kubernetes/conf/kubelet-config.yaml       rendered here                               node
//	/opt/kubernetes/conf/kube-proxy-config.yaml    rendered here                               node
//	/opt/kubernetes/conf/audit-policy.yaml         rendered here                               master
//	/opt/kubernetes/conf/encryption-config.yaml    secret; the lead generates and places it    master
//	/root/.kube/config                             admin kubeconfig (lead)                     master, ops
//	/data/logs/kubernetes/kube-apiserver/audit.log apiserver audit log                         master
//	/opt/etcd/bin/{etcd,etcdctl,etcdutl}                                                       etcd
//	/opt/etcd/certs/ca.pem, etcd-server{,-key}.pem, etcd-peer{,-key}.pem                       etcd
//	/data/etcd/etcd-server                         etcd data (seed)                            etcd
//	/opt/flannel/bin/flanneld                                                                  node
//	/opt/flannel/certs/ca.pem, flannel{,-key}.pem  flannel → etcd client                       node
//	/opt/flannel/subnet.env                        rendered here; flanneld rewrites it         node
//	/opt/flannel/net-conf.json, netconf.sh         rendered here; written to etcd              etcd
//	/opt/containerd/bin/{containerd,containerd-shim-runc-v2,ctr,runc}                          node
//	/etc/containerd/config.toml                    rendered here                               node
//	/etc/containerd/certs.d/<registry>/hosts.toml  rendered here                               node
//	/etc/containerd/certs.d/<registry>/ca.crt      registry CA (lead)                          node
//	/etc/containerd/certs.d/{docker.io,registry.k8s.io,ghcr.io}/hosts.toml mirrors → registry  node
//	/opt/cni/bin/<plugin>                          CNI plugins (flannel, bridge, portmap, …)   node
//	/etc/cni/net.d/10-flannel.conflist             rendered here                               node
//	/etc/nginx/nginx.conf                          rendered here (edge.go)                     lb
//	/etc/nginx/certs/<serviceDomain>{,-key}.pem    *.<serviceDomain> TLS (lead)                lb
//	/etc/keepalived/keepalived.conf, check_port.sh rendered here (edge.go)                     lb
//	/etc/named.conf, /var/named/<zone>.zone        rendered here (dns.go)                      dns
//	/etc/exports, /data/nfs-volume                 rendered here (nfs.go); the NFS export      ops
//	/opt/kubebake/examples/nfs-volume.yaml         example PV, claim and pod (nfs.go)          ops
//	/etc/systemd/system/<unit>                     rendered here                               all
//	/opt/kubebake/firstboot                        the bundle's firstboot binary               all
//
// Logs: every component logs to stderr, which systemd sends to journald
// (journalctl -u <unit>). The seed's /data/logs/kubernetes/<component>
// directories are kept only for the apiserver's audit log, which is a file
// by nature. klog's --log-dir was removed in Kubernetes 1.26.
//
// Where kubebake differs from the seed: no insecure port (127.0.0.1:8080 was
// removed in 1.20, so controller-manager and scheduler use kubeconfigs with
// client certificates instead of --master=http://127.0.0.1:8080); containerd
// instead of docker, so the CNI bridge is cni0, not docker0; etcd v3 API for
// flannel's net-conf (the seed used etcdctl v2 "set"); systemd units instead
// of supervisord.
package render

import "path"

// Directories of the on-host layout.
const (
	KubeBinDir   = "/opt/kubernetes/bin"
	KubeCertDir  = "/opt/kubernetes/certs"
	KubeConfDir  = "/opt/kubernetes/conf"
	EtcdBinDir   = "/opt/etcd/bin"
	EtcdCertDir  = "/opt/etcd/certs"
	EtcdDataDir  = "/data/etcd/etcd-server"
	FlannelDir   = "/opt/flannel"
	FlannelBin   = FlannelDir + "/bin"
	FlannelCerts = FlannelDir + "/certs"
	// ContainerdBinDir holds containerd, its runc shim, ctr and runc.
	ContainerdBinDir = "/opt/containerd/bin"
	ContainerdConfig = "/etc/containerd/config.toml"
	// ContainerdCertsDir is containerd's registry hosts directory (config_path).
	ContainerdCertsDir = "/etc/containerd/certs.d"
	ContainerdSocket   = "/run/containerd/containerd.sock"
	CNIBinDir          = "/opt/cni/bin"
	CNIConfDir         = "/etc/cni/net.d"
	SystemdUnitDir     = "/etc/systemd/system"
	KubeLogDir         = "/data/logs/kubernetes"
	// KubebakeDir is where the bundle is unpacked and firstboot lives.
	KubebakeDir     = "/opt/kubebake"
	FirstbootBin    = KubebakeDir + "/firstboot"
	FirstbootDone   = "/var/lib/kubebake/done"
	AdminKubeconfig = "/root/.kube/config"
)

// Kubernetes binaries, certificates and configuration files.
var (
	KubeAPIServerBin         = path.Join(KubeBinDir, "kube-apiserver")
	KubeControllerManagerBin = path.Join(KubeBinDir, "kube-controller-manager")
	KubeSchedulerBin         = path.Join(KubeBinDir, "kube-scheduler")
	KubeletBin               = path.Join(KubeBinDir, "kubelet")
	KubeProxyBin             = path.Join(KubeBinDir, "kube-proxy")
	KubectlBin               = path.Join(KubeBinDir, "kubectl")

	CACert                     = path.Join(KubeCertDir, "ca.pem")
	CAKey                      = path.Join(KubeCertDir, "ca-key.pem") // only with pki.caKeyOnMasters
	APIServerCert              = path.Join(KubeCertDir, "apiserver.pem")
	APIServerKey               = path.Join(KubeCertDir, "apiserver-key.pem")
	APIServerEtcdClientCert    = path.Join(KubeCertDir, "apiserver-etcd-client.pem")
	APIServerEtcdClientKey     = path.Join(KubeCertDir, "apiserver-etcd-client-key.pem")
	APIServerKubeletClientCert = path.Join(KubeCertDir, "apiserver-kubelet-client.pem")
	APIServerKubeletClientKey  = path.Join(KubeCertDir, "apiserver-kubelet-client-key.pem")
	FrontProxyCACert           = path.Join(KubeCertDir, "front-proxy-ca.pem")
	FrontProxyClientCert       = path.Join(KubeCertDir, "front-proxy-client.pem")
	FrontProxyClientKey        = path.Join(KubeCertDir, "front-proxy-client-key.pem")
	ServiceAccountKey          = path.Join(KubeCertDir, "sa.key")
	ServiceAccountPub          = path.Join(KubeCertDir, "sa.pub")
	// KubeletServerCert is the host's kubelet serving certificate; the state
	// directory names it kubelet-server-<host>.pem, the host kubelet-server.pem.
	KubeletServerCert = path.Join(KubeCertDir, "kubelet-server.pem")
	KubeletServerKey  = path.Join(KubeCertDir, "kubelet-server-key.pem")

	ControllerManagerKubeconfig = path.Join(KubeConfDir, "kube-controller-manager.kubeconfig")
	SchedulerKubeconfig         = path.Join(KubeConfDir, "kube-scheduler.kubeconfig")
	KubeletKubeconfig           = path.Join(KubeConfDir, "kubelet.kubeconfig")
	KubeProxyKubeconfig         = path.Join(KubeConfDir, "kube-proxy.kubeconfig")
	KubeletConfigFile           = path.Join(KubeConfDir, "kubelet-config.yaml")
	KubeProxyConfigFile         = path.Join(KubeConfDir, "kube-proxy-config.yaml")
	AuditPolicyFile             = path.Join(KubeConfDir, "audit-policy.yaml")
	// EncryptionConfigFile is secret: the lead generates its key and places it.
	EncryptionConfigFile = path.Join(KubeConfDir, "encryption-config.yaml")
	AuditLogFile         = path.Join(KubeLogDir, "kube-apiserver", "audit.log")
)

// etcd binaries and certificates.
var (
	EtcdBin        = path.Join(EtcdBinDir, "etcd")
	EtcdctlBin     = path.Join(EtcdBinDir, "etcdctl")
	EtcdutlBin     = path.Join(EtcdBinDir, "etcdutl")
	EtcdCACert     = path.Join(EtcdCertDir, "ca.pem")
	EtcdServerCert = path.Join(EtcdCertDir, "etcd-server.pem")
	EtcdServerKey  = path.Join(EtcdCertDir, "etcd-server-key.pem")
	EtcdPeerCert   = path.Join(EtcdCertDir, "etcd-peer.pem")
	EtcdPeerKey    = path.Join(EtcdCertDir, "etcd-peer-key.pem")
)

// flannel binaries, certificates and files.
var (
	FlanneldBin      = path.Join(FlannelBin, "flanneld")
	FlannelCACert    = path.Join(FlannelCerts, "ca.pem")
	FlannelCert      = path.Join(FlannelCerts, "flannel.pem")
	FlannelKey       = path.Join(FlannelCerts, "flannel-key.pem")
	FlannelSubnetEnv = path.Join(FlannelDir, "subnet.env")
	FlannelNetConf   = path.Join(FlannelDir, "net-conf.json")
	FlannelNetConfSh = path.Join(FlannelDir, "netconf.sh")
)

// containerd binaries.
var (
	ContainerdBin = path.Join(ContainerdBinDir, "containerd")
	RuncBin       = path.Join(ContainerdBinDir, "runc")
	CtrBin        = path.Join(ContainerdBinDir, "ctr")
	ShimBin       = path.Join(ContainerdBinDir, "containerd-shim-runc-v2")
	CNIConfFile   = path.Join(CNIConfDir, "10-flannel.conflist")
)

// RegistryCA is where the lead places the registry's CA for containerd.
func RegistryCA(registryHost string) string {
	return path.Join(ContainerdCertsDir, registryHost, "ca.crt")
}

// RegistryHostsFile is containerd's hosts.toml for a registry namespace.
func RegistryHostsFile(namespace string) string {
	return path.Join(ContainerdCertsDir, namespace, "hosts.toml")
}

// UnitPath is where a systemd unit is installed.
func UnitPath(name string) string { return path.Join(SystemdUnitDir, name) }

// Unit names.
const (
	UnitContainerd        = "containerd.service"
	UnitEtcd              = "etcd.service"
	UnitFlannelNetConf    = "flannel-netconf.service"
	UnitFlanneld          = "flanneld.service"
	UnitAPIServer         = "kube-apiserver.service"
	UnitControllerManager = "kube-controller-manager.service"
	UnitScheduler         = "kube-scheduler.service"
	UnitKubelet           = "kubelet.service"
	UnitKubeProxy         = "kube-proxy.service"
	UnitFirstboot         = "kubebake-firstboot.service"
	UnitNetwork           = "kubebake-network.service"
)
