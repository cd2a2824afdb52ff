package spec

import (
	"strings"
	"testing"
)

// baseSpec is a small valid spec: no errors, no warnings. Cases mutate it.
const baseSpec = `apiVersion: kubebake.io/v1alpha1
kind: BundleSpec
cluster:
  name: myk8s
  hostDomain: host.com
  serviceDomain: od.com
  nodeNetwork: 10.4.7.0/24
  gateway: 10.4.7.254
  dnsServers: [10.4.7.11]
  podNetwork: 172.7.0.0/16
  serviceNetwork: 192.168.0.0/16
  vip: 10.4.7.10
  nodePortRange: 30000-32767
target:
  os: centos7
  kernel: "3.10"
  cgroup: v1
hosts:
  - name: hdss7-11
    ip: 10.4.7.11
    macs: ["52:54:00:04:07:0b"]
    roles: [dns, lb]
  - name: hdss7-12
    ip: 10.4.7.12
    roles: [etcd, lb]
  - name: hdss7-21
    ip: 10.4.7.21
    roles: [etcd, master, node]
  - name: hdss7-22
    ip: 10.4.7.22
    roles: [etcd, master, node]
network:
  flannel:
    backend: host-gw
  kubeProxy:
    mode: ipvs
pki:
  algo: rsa
  size: 2048
  expiry: 175200h
  subject:
    CN: zoneyet
    C: CN
registry:
  host: harbor.od.com
versions:
  kubernetes: v1.37.2
  etcd: v3.6.16
  flannel: v0.28.10
  coredns: v1.15.0
  pause: "3.10"
  traefik: v3.6.24
  containerd: v2.1.9
  runc: v1.3.6
  cniPlugins: v1.8.0
artifacts:
  - {name: kube-apiserver, url: "https://dl.k8s.io/v1.37.2/a", sha256URL: "https://dl.k8s.io/v1.37.2/a.sha256"}
  - {name: kube-controller-manager, url: "https://dl.k8s.io/v1.37.2/b", sha256URL: "https://dl.k8s.io/v1.37.2/b.sha256"}
  - {name: kube-scheduler, url: "https://dl.k8s.io/v1.37.2/c", sha256URL: "https://dl.k8s.io/v1.37.2/c.sha256"}
  - {name: kubelet, url: "https://dl.k8s.io/v1.37.2/d", sha256URL: "https://dl.k8s.io/v1.37.2/d.sha256"}
  - {name: kube-proxy, url: "https://dl.k8s.io/v1.37.2/e", sha256URL: "https://dl.k8s.io/v1.37.2/e.sha256"}
  - {name: kubectl, url: "https://dl.k8s.io/v1.37.2/f", sha256URL: "https://dl.k8s.io/v1.37.2/f.sha256"}
  - name: etcd
    url: https://github.com/etcd-io/etcd/releases/download/v3.6.16/etcd-v3.6.16-linux-amd64.tar.gz
    sha256: 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
    extract:
      etcd-v3.6.16-linux-amd64/etcd: etcd
  - {name: flannel, url: "https://example.org/v0.28.10/g", sha256URL: "https://example.org/v0.28.10/g.sha256"}
  - {name: flannel-cni-plugin, url: "https://example.org/h", sha256URL: "https://example.org/h.sha256"}
  - {name: containerd, url: "https://example.org/v2.1.9/i", sha256URL: "https://example.org/v2.1.9/i.sha256"}
  - {name: runc, url: "https://example.org/v1.3.6/j", sha256URL: "https://example.org/v1.3.6/j.sha256"}
  - {name: cni-plugins, url: "file:///srv/cni.tgz", sha256URL: "file:///srv/cni.tgz.sha256"}
images:
  - name: pause
    ref: registry.k8s.io/pause:3.10
  - name: coredns
    ref: registry.k8s.io/coredns/coredns:v1.15.0
`

// mutate replaces old with new in base; old must occur exactly once.
func mutate(t *testing.T, base, old, new string) string {
	t.Helper()
	if n := strings.Count(base, old); n != 1 {
		t.Fatalf("mutation %q matches %d times in the base spec, want 1", old, n)
	}
	return strings.Replace(base, old, new, 1)
}

// problems renders the error and warning entries of r.
func problems(r Report) []string {
	var out []string
	for _, e := range r.Entries {
		if e.Kind != Info {
			out = append(out, e.String())
		}
	}
	return out
}
