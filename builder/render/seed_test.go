package render

import (
	"github.com/kubebake/kubebake/builder/spec"
)

func ptr[T any](v T) *T { return &v }

// seedSpec is the seed's cluster (DESIGN.md, "The default topology") with
// defaults applied, as a Go literal so these tests do not depend on the
// spec loader.
func seedSpec() *spec.Spec {
	return &spec.Spec{
		APIVersion: spec.APIVersion,
		Cluster: spec.Cluster{
			Name:                "kubernetes",
			HostDomain:          "host.com",
			ServiceDomain:       "od.com",
			ClusterDomain:       "cluster.local",
			NodeNetwork:         "10.4.7.0/24",
			Gateway:             "10.4.7.254",
			DNSServers:          []string{"10.4.7.11"},
			PodNetwork:          "172.7.0.0/16",
			ServiceNetwork:      "192.168.0.0/16",
			KubernetesServiceIP: "192.168.0.1",
			DNSServiceIP:        "192.168.0.2",
			VIP:                 "10.4.7.10",
			APIServerPort:       6443,
			LBPort:              7443,
			NodePortRange:       "30000-32767",
			VIPInterface:        "eth0",
			VRRPRouterID:        251,
			DNSForwarders:       []string{"10.4.7.254"},
		},
		Target: spec.Target{
			OS: "centos7", Kernel: "3.10", Cgroup: "v1", Arch: "amd64",
			DisableSELinux: ptr(true), DisableFirewalld: ptr(true), DisableSwap: ptr(true),
		},
		Hosts: []spec.Host{
			{Name: "hdss7-11", IP: "10.4.7.11", Roles: []string{"dns", "lb"}},
			{Name: "hdss7-12", IP: "10.4.7.12", Roles: []string{"etcd", "lb"}},
			{Name: "hdss7-21", IP: "10.4.7.21", Roles: []string{"etcd", "master", "node"}, PodSubnet: "172.7.21.0/24"},
			{Name: "hdss7-22", IP: "10.4.7.22", Roles: []string{"etcd", "master", "node"}, PodSubnet: "172.7.22.0/24"},
			{Name: "hdss7-200", IP: "10.4.7.200", Roles: []string{"ops"}},
		},
		Network: spec.Network{
			Flannel:       spec.Flannel{Backend: "host-gw", EtcdPrefix: "/coreos.com/network"},
			KubeProxy:     spec.KubeProxy{Mode: "ipvs", Scheduler: "rr"},
			PreseedRoutes: ptr(true),
			Bridge:        "cni0",
		},
		PKI:      spec.PKI{Algo: "rsa", Size: 2048, Expiry: "175200h", RenewBefore: "720h"},
		Registry: spec.Registry{Host: "harbor.od.com", Project: "public"},
		Versions: spec.Versions{
			Kubernetes: "v1.37.2", Etcd: "v3.6.16", Flannel: "v0.28.10", CoreDNS: "v1.15.0",
			Pause: "3.10", Traefik: "v3.6.24", Containerd: "2.1.5", Runc: "1.3.3", CNIPlugins: "v1.8.0",
		},
		Kubelet: spec.Kubelet{CgroupDriver: "cgroupfs", FailCgroupV1: ptr(false), MaxPods: 110},
		Bundle:  spec.Bundle{SourceDateEpoch: 1764374400}, // bundle-spec.yaml's
		Images: []spec.Image{
			{Name: "pause", Ref: "registry.k8s.io/pause:3.10"},
			{Name: "coredns", Ref: "registry.k8s.io/coredns/coredns:v1.15.0"},
			{Name: "traefik", Ref: "docker.io/library/traefik:v3.6.24", Optional: true},
			{Name: "dashboard", Ref: "docker.io/kubernetesui/dashboard:v2.7.0", Optional: true},
			{Name: "dashboard-metrics-scraper", Ref: "docker.io/kubernetesui/metrics-scraper:v1.0.8", Optional: true},
		},
	}
}
