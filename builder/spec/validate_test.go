package spec

import (
	"strings"
	"testing"
)

type mutation struct{ old, new string }

// TestBrokenSpecs: each case mutates the valid baseSpec and expects exactly
// these rendered errors and warnings (infos about defaults are ignored).
func TestBrokenSpecs(t *testing.T) {
	cases := []struct {
		name string
		muts []mutation
		want []string
	}{
		{"mirror kinds mixed and duplicated", []mutation{{"registry:\n  host: harbor.od.com\n", "registry:\n  host: harbor.od.com\nmirrors:\n  - from: https://dl.k8s.io\n    to: 127.0.0.1:8081\n  - from: registry.k8s.io\n    to: https://127.0.0.1:5001\n  - from: https://dl.k8s.io\n    to: http://127.0.0.1:8081/dl.k8s.io\n"}}, []string{
			"bundle-spec.yaml:48:9: mirrors[0].to: \"127.0.0.1:8081\" is not a URL — a URL prefix maps to a URL prefix, e.g. http://127.0.0.1:8081/dl.k8s.io",
			"bundle-spec.yaml:50:9: mirrors[1].to: \"https://127.0.0.1:5001\" is not a registry host — a registry host maps to a registry host[:port][/path], e.g. 127.0.0.1:5001 (http://127.0.0.1:5001 for plain HTTP)",
			"bundle-spec.yaml:51:11: mirrors[2].from: https://dl.k8s.io is also mirrors[0].from — keep one mirror per upstream",
		}},
		{"bad platform", []mutation{{"registry:\n  host: harbor.od.com\n", "registry:\n  host: harbor.od.com\nplatforms: [linux/amd64, amd64]\n"}}, []string{
			"bundle-spec.yaml:46:26: platforms[1]: \"amd64\" is not a platform — write os/arch[/variant], e.g. linux/amd64, or all",
		}},
		{"password in the spec", []mutation{{"registry:\n  host: harbor.od.com\n", "registry:\n  host: harbor.od.com\ncredentials:\n  - registry: harbor.od.com\n    usernameEnv: HARBOR_USER\n    passwordEnv: Harbor12345!\n"}}, []string{
			"bundle-spec.yaml:49:18: credentials[0].passwordEnv: \"Harbor12345!\" is not an environment variable name — name an environment variable, e.g. HARBOR_PASSWORD; the secret itself never goes in the spec",
		}},
		{"bad robot", []mutation{{"registry:\n  host: harbor.od.com\n", "registry:\n  host: harbor.od.com\n  robot:\n    name: Pusher\n    duration: 0\n"}}, []string{
			"bundle-spec.yaml:47:11: registry.robot.name: \"Pusher\" is not a robot name — use lower-case letters, digits, '.', '_' or '-', e.g. pusher",
			"bundle-spec.yaml:48:15: registry.robot.duration: 0 is not a duration in days — give days (e.g. 365) or -1 for never",
		}},
		{"bad extraArgs", []mutation{{"registry:\n  host: harbor.od.com\n", "registry:\n  host: harbor.od.com\nextraArgs:\n  kubeControllerManager:\n    --leader-elect: \"true\"\n    v: 2\n    bind-address: 127.0.0.1 --profiling\n  kubeSchedular:\n    v: 2\n"}}, []string{
			"bundle-spec.yaml:48:5: extraArgs.kubeControllerManager[--leader-elect]: flag \"--leader-elect\" starts with a dash — write the flag without its leading dashes: leader-elect",
			"bundle-spec.yaml:50:5: extraArgs.kubeControllerManager[bind-address]: the value \"127.0.0.1 --profiling\" of bind-address cannot be written into a unit's command line — give a value without spaces, quotes, backslashes or $ (it goes unquoted into the systemd unit); a value that needs them belongs in a file the flag can name",
			"bundle-spec.yaml:51:3: extraArgs.kubeSchedular: unknown field \"kubeSchedular\" — did you mean \"kubeScheduler\"?",
		}},
		{"extraArgs as a list", []mutation{{"registry:\n  host: harbor.od.com\n", "registry:\n  host: harbor.od.com\nextraArgs:\n  kubeAPIServer: [--v=2]\n"}}, []string{
			"bundle-spec.yaml:47:18: extraArgs.kubeAPIServer: expected a mapping, got a list — write it as a mapping of \"flag-name: value\" lines, e.g. leader-elect-lease-duration: 60s",
		}},
		{"bad apiVersion", []mutation{{"apiVersion: kubebake.io/v1alpha1", "apiVersion: kubebake.io/v1"}}, []string{
			"bundle-spec.yaml:1:13: apiVersion: \"kubebake.io/v1\" is not a version this kubebake reads — write apiVersion: kubebake.io/v1alpha1",
		}},
		{"missing kind", []mutation{{"kind: BundleSpec\n", ""}}, []string{
			"bundle-spec.yaml:1:1: kind: missing — add kind: BundleSpec",
		}},
		{"unknown top-level field", []mutation{{"kind: BundleSpec\n", "kind: BundleSpec\nmetadata: {}\n"}}, []string{
			"bundle-spec.yaml:3:1: metadata: unknown field \"metadata\" — remove it; known fields here: apiVersion, artifacts, bundle, cluster, credentials, extraArgs, hosts, images, kind, kubelet, mirrors, network, pki, platforms, pxe, registry, target, versions",
		}},
		{"misspelt field", []mutation{{"  hostDomain: host.com", "  hostDomian: host.com"}}, []string{
			"bundle-spec.yaml:5:3: cluster.hostDomian: unknown field \"hostDomian\" — did you mean \"hostDomain\"?",
		}},
		{"duplicate key", []mutation{{"  name: myk8s\n", "  name: myk8s\n  name: other\n"}}, []string{
			"bundle-spec.yaml:5:3: cluster.name: duplicate key \"name\" (first at line 4) — remove one of them",
		}},
		{"string for int", []mutation{{"  nodePortRange: 30000-32767", "  nodePortRange: 30000-32767\n  apiServerPort: six"}}, []string{
			"bundle-spec.yaml:14:18: cluster.apiServerPort: expected a whole number, got \"six\" — write a whole number",
		}},
		{"bad keepalived settings", []mutation{{"  nodePortRange: 30000-32767", "  nodePortRange: 30000-32767\n  vipInterface: eth0:1\n  vrrpRouterID: 256"}}, []string{
			"bundle-spec.yaml:14:17: cluster.vipInterface: \"eth0:1\" is not a network interface name — write the lb hosts' NIC name as CentOS 7 names it (ip -br link), e.g. eth0 or ens33",
			"bundle-spec.yaml:15:17: cluster.vrrpRouterID: 256 is not a VRRP virtual router id — pick a number from 1 to 255 no other VRRP group on the node network uses, e.g. 251",
		}},
		{"bind9 forwarding to itself", []mutation{{"  nodePortRange: 30000-32767", "  nodePortRange: 30000-32767\n  dnsForwarders: [10.4.7.11, 8.8.8.8.8]"}}, []string{
			"bundle-spec.yaml:14:19: cluster.dnsForwarders[0]: 10.4.7.11 is hdss7-11, a dns host itself: bind9 would forward to itself — forward to a resolver outside the cluster, e.g. the gateway 10.4.7.254",
			"bundle-spec.yaml:14:30: cluster.dnsForwarders[1]: \"8.8.8.8.8\" is not an IPv4 address — write the IPv4 address of an upstream resolver, e.g. the gateway 10.4.7.254",
		}},
		{"quoted int", []mutation{{"  nodePortRange: 30000-32767", "  nodePortRange: 30000-32767\n  lbPort: \"7443\""}}, []string{
			"bundle-spec.yaml:14:11: cluster.lbPort: expected a whole number, got \"7443\" — remove the quotes",
		}},
		{"scalar for list", []mutation{{"  dnsServers: [10.4.7.11]", "  dnsServers: 10.4.7.11"}}, []string{
			"bundle-spec.yaml:9:15: cluster.dnsServers: expected a list, got \"10.4.7.11\" — write it as a YAML list, one \"- item\" per line",
		}},
		{"mapping for string", []mutation{{"  name: myk8s", "  name: {first: my}"}}, []string{
			"bundle-spec.yaml:4:9: cluster.name: expected a string, got a mapping — write a single value",
		}},
		{"string for bool", []mutation{{"  cgroup: v1", "  cgroup: v1\n  disableSwap: yes"}}, []string{
			"bundle-spec.yaml:18:16: target.disableSwap: expected true or false, got \"yes\" — write true or false",
		}},
		{"yaml syntax error", []mutation{{"  gateway: 10.4.7.254", "  gateway: 10.4.7.254: x"}}, []string{
			"bundle-spec.yaml:8:3: YAML syntax: mapping values are not allowed in this context — fix the YAML syntax (indent with spaces, not tabs; quote values that contain ': ' or start with special characters)",
		}},
		{"yaml bad token", []mutation{{"  name: myk8s", "  name: @myk8s"}}, []string{
			"bundle-spec.yaml:4:3: YAML syntax: found character that cannot start any token — fix the YAML syntax (indent with spaces, not tabs; quote values that contain ': ' or start with special characters)",
		}},
		{"tab indentation", []mutation{{"  gateway: 10.4.7.254", "\tgateway: 10.4.7.254"}}, []string{
			"bundle-spec.yaml:8:1: YAML syntax: found a tab character that violates indentation — fix the YAML syntax (indent with spaces, not tabs; quote values that contain ': ' or start with special characters)",
		}},
		{"yaml alias", []mutation{{"  name: myk8s", "  name: &n myk8s"}, {"  hostDomain: host.com", "  hostDomain: *n"}}, []string{
			"bundle-spec.yaml:5:15: cluster.hostDomain: YAML aliases are not supported in a bundle spec — write the value out instead of *n",
		}},
		{"bad node network", []mutation{{"  nodeNetwork: 10.4.7.0/24", "  nodeNetwork: 10.4.7.0/33"}}, []string{
			"bundle-spec.yaml:7:16: cluster.nodeNetwork: \"10.4.7.0/33\" is not a CIDR — write an address and a prefix length, e.g. 10.4.7.0/24",
		}},
		{"host bits in pod network", []mutation{{"  podNetwork: 172.7.0.0/16", "  podNetwork: 172.7.1.0/16"}}, []string{
			"bundle-spec.yaml:10:15: cluster.podNetwork: 172.7.1.0/16 has host bits set — write 172.7.0.0/16",
		}},
		{"pod network overlaps service network", []mutation{{"  serviceNetwork: 192.168.0.0/16", "  serviceNetwork: 172.7.128.0/17"}}, []string{
			"bundle-spec.yaml:11:19: cluster.serviceNetwork: 172.7.128.0/17 overlaps podNetwork 172.7.0.0/16 — pick serviceNetwork so that it shares no address with podNetwork",
		}},
		{"bad gateway", []mutation{{"  gateway: 10.4.7.254", "  gateway: 10.4.8.254"}}, []string{
			"bundle-spec.yaml:8:12: cluster.gateway: 10.4.8.254 is outside nodeNetwork 10.4.7.0/24 — give the gateway of 10.4.7.0/24",
		}},
		{"bad dns server", []mutation{{"  dnsServers: [10.4.7.11]", "  dnsServers: [10.4.7.11, dns.od.com]"}}, []string{
			"bundle-spec.yaml:9:27: cluster.dnsServers[1]: \"dns.od.com\" is not an IPv4 address — write an IPv4 address",
		}},
		{"host name not a DNS label", []mutation{{"  - name: hdss7-12", "  - name: HDSS7_12"}}, []string{
			"bundle-spec.yaml:23:11: hosts[1].name: \"HDSS7_12\" is not a DNS label — use lower-case letters, digits and '-' (at most 63, no leading or trailing '-')",
		}},
		{"host ip outside node network", []mutation{{"    ip: 10.4.7.22", "    ip: 10.4.8.22"}}, []string{
			"bundle-spec.yaml:30:9: hosts[3].ip: 10.4.8.22 is outside nodeNetwork 10.4.7.0/24 — give the host an address inside 10.4.7.0/24 or widen cluster.nodeNetwork",
		}},
		{"host ip syntax", []mutation{{"    ip: 10.4.7.21", "    ip: 10.4.7.321"}}, []string{
			"bundle-spec.yaml:27:9: hosts[2].ip: \"10.4.7.321\" is not an IPv4 address — write an IPv4 address such as 10.4.7.21",
		}},
		{"duplicate host name", []mutation{{"  - name: hdss7-22", "  - name: hdss7-21"}}, []string{
			"bundle-spec.yaml:29:11: hosts[3].name: hdss7-21 is also hosts[2].name — give every host its own name",
		}},
		{"duplicate host ip", []mutation{{"    ip: 10.4.7.22", "    ip: 10.4.7.21"}}, []string{
			"bundle-spec.yaml:30:9: hosts[3].ip: 10.4.7.21 is also hosts[2].ip — give every host its own address",
		}},
		{"bad mac", []mutation{{"    macs: [\"52:54:00:04:07:0b\"]", "    macs: [\"52:54:00:04:07\"]"}}, []string{
			"bundle-spec.yaml:21:12: hosts[0].macs[0]: \"52:54:00:04:07\" is not a MAC address — write six hex pairs separated by colons, e.g. 52:54:00:0a:07:15",
		}},
		{"duplicate mac after normalising", []mutation{{"    roles: [etcd, lb]", "    roles: [etcd, lb]\n    macs: [\"52:54:00:04:07:0B\"]"}}, []string{
			"bundle-spec.yaml:26:12: hosts[1].macs[0]: 52:54:00:04:07:0b is also hosts[0].macs[0] — give every NIC its own MAC",
		}},
		{"multicast mac", []mutation{{"    macs: [\"52:54:00:04:07:0b\"]", "    macs: [\"01:00:5e:00:00:01\"]"}}, []string{
			"bundle-spec.yaml:21:12: hosts[0].macs[0]: 01:00:5e:00:00:01 is a multicast address — use the NIC's unicast address",
		}},
		{"unknown role", []mutation{{"    roles: [dns, lb]", "    roles: [dns, lb, harbor]"}}, []string{
			"bundle-spec.yaml:22:22: hosts[0].roles[2]: unknown role \"harbor\" — use one of: dns, lb, etcd, master, node, ops",
		}},
		{"no master", []mutation{{"    roles: [etcd, master, node]\n  - name: hdss7-22\n    ip: 10.4.7.22\n    roles: [etcd, master, node]", "    roles: [etcd, node]\n  - name: hdss7-22\n    ip: 10.4.7.22\n    roles: [etcd, node]"}}, []string{
			"bundle-spec.yaml:18:1: hosts: no host has role master — give role master to one or more hosts (the seed: hdss7-21, hdss7-22)",
		}},
		{"no etcd", []mutation{{"    roles: [etcd, lb]", "    roles: [lb]"}, {"    roles: [etcd, master, node]\n  - name: hdss7-22\n    ip: 10.4.7.22\n    roles: [etcd, master, node]", "    roles: [master, node]\n  - name: hdss7-22\n    ip: 10.4.7.22\n    roles: [master, node]"}}, []string{
			"bundle-spec.yaml:18:1: hosts: no host has role etcd — give role etcd to an odd number of hosts (the seed: hdss7-12, hdss7-21, hdss7-22)",
		}},
		{"even etcd count", []mutation{{"    roles: [etcd, lb]", "    roles: [lb]"}}, []string{
			"bundle-spec.yaml:18:1: warning: hosts: 2 etcd members tolerate no more failures than 1; an even count only adds a vote to lose — use an odd number of etcd members (3 or 5)",
		}},
		{"lb without vip", []mutation{{"  vip: 10.4.7.10\n", ""}}, []string{
			"bundle-spec.yaml:3:1: cluster.vip: missing; hosts with role lb (hdss7-11) hold a keepalived VIP — set cluster.vip to a free address in the node network, e.g. 10.4.7.10",
		}},
		{"vip is a host address", []mutation{{"  vip: 10.4.7.10", "  vip: 10.4.7.12"}}, []string{
			"bundle-spec.yaml:12:8: cluster.vip: 10.4.7.12 is already hosts[1] (hdss7-12)'s address; keepalived needs a free one — pick a free address in the node network for the VIP",
		}},
		{"vip outside node network", []mutation{{"  vip: 10.4.7.10", "  vip: 10.4.9.10"}}, []string{
			"bundle-spec.yaml:12:8: cluster.vip: 10.4.9.10 is outside nodeNetwork 10.4.7.0/24 — give the VIP a free address inside 10.4.7.0/24",
		}},
		{"pod subnet outside pod network", []mutation{{"    ip: 10.4.7.22\n", "    ip: 10.4.7.22\n    podSubnet: 172.8.22.0/24\n"}}, []string{
			"bundle-spec.yaml:31:16: hosts[3].podSubnet: 172.8.22.0/24 is outside podNetwork 172.7.0.0/16 — pick a subnet inside 172.7.0.0/16 or leave it out to name it after the host's address",
		}},
		{"pod subnet used twice", []mutation{{"    ip: 10.4.7.22\n", "    ip: 10.4.7.22\n    podSubnet: 172.7.21.0/24\n"}}, []string{
			"bundle-spec.yaml:31:16: hosts[3].podSubnet: 172.7.21.0/24 overlaps hosts[2].podSubnet 172.7.21.0/24 — give every node its own subnet",
		}},
		{"pod subnet on a host without node", []mutation{{"    ip: 10.4.7.12\n", "    ip: 10.4.7.12\n    podSubnet: 172.7.12.0/24\n"}}, []string{
			"bundle-spec.yaml:25:16: warning: hosts[1].podSubnet: set on a host without role node; nothing uses it — remove it, or give the host role node",
		}},
		{"kubernetes service ip not first", []mutation{{"  vip: 10.4.7.10", "  vip: 10.4.7.10\n  kubernetesServiceIP: 192.168.0.10"}}, []string{
			"bundle-spec.yaml:13:24: cluster.kubernetesServiceIP: 192.168.0.10 is not the first address of serviceNetwork 192.168.0.0/16; the apiserver always gives the kubernetes service 192.168.0.1 — write 192.168.0.1 or leave it out",
		}},
		{"dns service ip outside", []mutation{{"  vip: 10.4.7.10", "  vip: 10.4.7.10\n  dnsServiceIP: 10.96.0.10"}}, []string{
			"bundle-spec.yaml:13:17: cluster.dnsServiceIP: 10.96.0.10 is not a usable address of serviceNetwork 192.168.0.0/16 — write an address inside 192.168.0.0/16, e.g. 192.168.0.2",
		}},
		{"dns service ip equals kubernetes", []mutation{{"  vip: 10.4.7.10", "  vip: 10.4.7.10\n  dnsServiceIP: 192.168.0.1"}}, []string{
			"bundle-spec.yaml:13:17: cluster.dnsServiceIP: 192.168.0.1 is also kubernetesServiceIP — use another address, e.g. 192.168.0.2",
		}},
		{"port out of range", []mutation{{"  vip: 10.4.7.10", "  vip: 10.4.7.10\n  apiServerPort: 70000"}}, []string{
			"bundle-spec.yaml:13:18: cluster.apiServerPort: 70000 is not a TCP port — use a port between 1 and 65535",
		}},
		{"node port range reversed", []mutation{{"  nodePortRange: 30000-32767", "  nodePortRange: 32767-30000"}}, []string{
			"bundle-spec.yaml:13:18: cluster.nodePortRange: \"32767-30000\" is not a port range — write first-last with 1 <= first < last <= 65535, e.g. 30000-32767",
		}},
		{"node port range holds node ports", []mutation{{"  nodePortRange: 30000-32767", "  nodePortRange: 3000-29999"}}, []string{
			"bundle-spec.yaml:13:18: warning: cluster.nodePortRange: 3000-29999 contains ports nodes listen on: 10250 (kubelet), 10256 (kube-proxy healthz), 6443 (kube-apiserver), 10257 (kube-controller-manager), 10259 (kube-scheduler); a NodePort service given one would capture its traffic — use 30000-32767 (Kubernetes' default), or never request these ports for a NodePort service",
		}},
		{"version without v", []mutation{{"  etcd: v3.6.16", "  etcd: 3.6.16"}}, []string{
			"bundle-spec.yaml:48:9: versions.etcd: \"3.6.16\" is not a release tag like v3.6.16 — write v3.6.16",
		}},
		{"kubernetes too old", []mutation{{"  kubernetes: v1.37.2", "  kubernetes: v1.28.3"}}, []string{
			"bundle-spec.yaml:47:15: versions.kubernetes: v1.28.3 is not supported (oldest: v1.33) — use v1.33 to v1.37",
			"bundle-spec.yaml:47:15: warning: versions.kubernetes: v1.28.3 does not match the URLs of artifacts kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kube-proxy, kubectl — make the URLs and tags match the pin",
		}},
		{"kubernetes newer than tested", []mutation{{"  kubernetes: v1.37.2", "  kubernetes: v1.38.0"}}, []string{
			"bundle-spec.yaml:47:15: warning: versions.kubernetes: v1.38.0 does not match the URLs of artifacts kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kube-proxy, kubectl — make the URLs and tags match the pin",
			"bundle-spec.yaml:47:15: warning: versions.kubernetes: v1.38.0 is newer than kubebake has been tested with (v1.37) — use v1.33 to v1.37, or check the compatibility gates yourself",
		}},
		{"bad pause tag", []mutation{{"  pause: \"3.10\"", "  pause: v3.10"}}, []string{
			"bundle-spec.yaml:51:10: versions.pause: \"v3.10\" is not a pause tag like 3.10 — write the image tag, e.g. \"3.10\" (quoted)",
		}},
		{"duplicate artifact", []mutation{{"  - {name: kubectl,", "  - {name: kubelet,"}}, []string{
			"bundle-spec.yaml:56:1: artifacts: no artifact kubectl, needed by the admin kubeconfig — add an artifact named kubectl with its official URL and checksum",
			"bundle-spec.yaml:62:12: artifacts[5].name: kubelet is also artifacts[3].name — give every artifact its own name",
		}},
		{"artifact url scheme", []mutation{{"url: \"https://dl.k8s.io/v1.37.2/a\"", "url: \"ftp://dl.k8s.io/a\""}}, []string{
			"bundle-spec.yaml:57:33: artifacts[0].url: unsupported URL scheme in \"ftp://dl.k8s.io/a\" — use https://, http:// or file://",
		}},
		{"artifact with two checksums", []mutation{{"    sha256: 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n", "    sha256: 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n    sha256URL: https://example.org/SHA256SUMS\n"}}, []string{
			"bundle-spec.yaml:66:16: artifacts[6].sha256URL: both sha256 and sha256URL are set — keep one: sha256 pins the digest, sha256URL fetches it",
		}},
		{"artifact without checksum", []mutation{{"url: \"https://example.org/v1.3.6/j\", sha256URL: \"https://example.org/v1.3.6/j.sha256\"}", "url: \"https://example.org/v1.3.6/j\"}"}}, []string{
			"bundle-spec.yaml:71:5: artifacts[10]: no checksum — add sha256 (the file's digest) or sha256URL (where upstream publishes it)",
		}},
		{"upper-case sha256", []mutation{{"    sha256: 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "    sha256: 0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef"}}, []string{
			"bundle-spec.yaml:65:13: artifacts[6].sha256: \"0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef\" is not a SHA-256 digest — write it in lower case",
		}},
		{"extract escapes", []mutation{{"      etcd-v3.6.16-linux-amd64/etcd: etcd", "      ../etcd: etcd"}}, []string{
			"bundle-spec.yaml:67:7: artifacts[6].extract[../etcd]: \"../etcd\" is not a relative archive member — name the member as the archive lists it (tar tzf), relative",
		}},
		{"required artifact missing", []mutation{{"  - {name: kube-proxy, url: \"https://dl.k8s.io/v1.37.2/e\", sha256URL: \"https://dl.k8s.io/v1.37.2/e.sha256\"}\n", ""}}, []string{
			"bundle-spec.yaml:56:1: artifacts: no artifact kube-proxy, needed by hosts with role node — add an artifact named kube-proxy with its official URL and checksum",
		}},
		{"bad image ref", []mutation{{"    ref: registry.k8s.io/coredns/coredns:v1.15.0", "    ref: registry.k8s.io/CoreDNS/coredns:v1.15.0"}}, []string{
			"bundle-spec.yaml:77:10: images[1].ref: \"registry.k8s.io/CoreDNS/coredns:v1.15.0\" is not an image reference: bad repository name (lower case only) — write [registry/]repository[:tag][@sha256:digest], e.g. registry.k8s.io/pause:3.10",
		}},
		{"duplicate image name", []mutation{{"  - name: coredns", "  - name: pause"}}, []string{
			"bundle-spec.yaml:51:10: warning: versions.pause: 3.10 does not match the tag of image pause (v1.15.0) — make the URLs and tags match the pin",
			"bundle-spec.yaml:76:11: images[1].name: pause is also images[0].name — give every image its own name",
		}},
		{"pause image missing", []mutation{{"  - name: pause\n    ref: registry.k8s.io/pause:3.10\n", ""}}, []string{
			"bundle-spec.yaml:73:1: images: no image pause, needed by hosts with role node — add an image named pause, e.g. registry.k8s.io/pause:3.10",
		}},
		{"rsa key size", []mutation{{"  size: 2048", "  size: 1024"}}, []string{
			"bundle-spec.yaml:39:9: pki.size: 1024 is not an RSA key size kubebake issues — use 2048, 3072 or 4096 for rsa",
		}},
		{"ecdsa key size", []mutation{{"  algo: rsa\n  size: 2048", "  algo: ecdsa\n  size: 521"}}, []string{
			"bundle-spec.yaml:39:9: pki.size: 521 is not an ECDSA curve size kubebake issues — use 256 or 384 for ecdsa",
		}},
		{"unknown key algorithm", []mutation{{"  algo: rsa\n  size: 2048", "  algo: ed25519"}}, []string{
			"bundle-spec.yaml:38:9: pki.algo: unknown key algorithm \"ed25519\" — use rsa or ecdsa",
		}},
		{"expiry not a duration", []mutation{{"  expiry: 175200h", "  expiry: 20y"}}, []string{
			"bundle-spec.yaml:40:11: pki.expiry: \"20y\" is not a duration — write a duration in hours, e.g. 175200h (20 years)",
		}},
		{"renew before not shorter than expiry", []mutation{{"  expiry: 175200h", "  expiry: 175200h\n  renewBefore: 175200h"}}, []string{
			"bundle-spec.yaml:41:16: pki.renewBefore: 175200h is not shorter than expiry 175200h; every build would re-issue every certificate — make it shorter than pki.expiry",
		}},
		{"ca cn missing", []mutation{{"    CN: zoneyet\n", ""}}, []string{
			"bundle-spec.yaml:41:3: pki.subject.CN: missing — name the CA, e.g. CN: zoneyet (the seed's)",
		}},
		{"bad country", []mutation{{"    C: CN", "    C: China"}}, []string{
			"bundle-spec.yaml:43:8: pki.subject.C: \"China\" is not a two-letter country code — use a two-letter country code, e.g. CN",
		}},
		{"fail cgroup v1 true", []mutation{{"  cniPlugins: v1.8.0\n", "  cniPlugins: v1.8.0\nkubelet:\n  failCgroupV1: true\n"}}, []string{
			"bundle-spec.yaml:57:17: kubelet.failCgroupV1: true with target.cgroup v1 and Kubernetes v1.37.2: the kubelet would refuse to start — set it to false (or leave it out)",
		}},
		{"nftables on kernel 3.10", []mutation{{"    mode: ipvs", "    mode: nftables"}}, []string{
			"bundle-spec.yaml:36:11: network.kubeProxy.mode: nftables needs kernel 5.13 or later; target.kernel is 3.10 — use ipvs or iptables on this kernel",
		}},
		{"ipvs removed in 1.43", []mutation{{"  kubernetes: v1.37.2", "  kubernetes: v1.43.0"}}, []string{
			"bundle-spec.yaml:36:11: network.kubeProxy.mode: ipvs mode was removed in Kubernetes v1.43; versions.kubernetes is v1.43.0 — use iptables, or pin Kubernetes below v1.43",
			"bundle-spec.yaml:47:15: warning: versions.kubernetes: v1.43.0 does not match the URLs of artifacts kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kube-proxy, kubectl — make the URLs and tags match the pin",
			"bundle-spec.yaml:47:15: warning: versions.kubernetes: v1.43.0 is newer than kubebake has been tested with (v1.37) — use v1.33 to v1.37, or check the compatibility gates yourself",
		}},
		{"cgroup v2 on centos7", []mutation{{"  cgroup: v1", "  cgroup: v2"}}, []string{
			"bundle-spec.yaml:17:11: target.cgroup: CentOS 7's kernel 3.10 has no usable cgroup v2 — use v1 on centos7",
		}},
		{"systemd cgroup driver on centos7", []mutation{{"  cniPlugins: v1.8.0\n", "  cniPlugins: v1.8.0\nkubelet:\n  cgroupDriver: systemd\n"}}, []string{
			"bundle-spec.yaml:57:17: warning: kubelet.cgroupDriver: systemd with cgroup v1 on CentOS 7 (systemd 219) is known to leak scopes and mis-account pods — use cgroupfs on CentOS 7, with containerd's SystemdCgroup = false",
		}},
		{"unknown flannel backend", []mutation{{"    backend: host-gw", "    backend: udp"}}, []string{
			"bundle-spec.yaml:34:14: network.flannel.backend: unsupported flannel backend \"udp\" — use host-gw (the seed's) or vxlan",
		}},
		{"unsupported os", []mutation{{"  os: centos7", "  os: ubuntu24.04"}}, []string{
			"bundle-spec.yaml:15:7: target.os: unsupported OS \"ubuntu24.04\" — use centos7 (the only target firstboot supports)",
		}},
		{"missing registry host", []mutation{{"registry:\n  host: harbor.od.com\n", ""}}, []string{
			"bundle-spec.yaml:1:1: registry.host: missing — set it to the site's registry, e.g. harbor.od.com",
		}},
		{"maxPods too many for a /24", []mutation{{"  cniPlugins: v1.8.0\n", "  cniPlugins: v1.8.0\nkubelet:\n  maxPods: 300\n"}}, []string{
			"bundle-spec.yaml:57:12: kubelet.maxPods: 300 pods do not fit in hdss7-21's 172.7.21.0/24 (253 addresses) — lower maxPods to 253 or widen the node subnets",
		}},
		{"second document", []mutation{{"  - name: coredns\n    ref: registry.k8s.io/coredns/coredns:v1.15.0\n", "  - name: coredns\n    ref: registry.k8s.io/coredns/coredns:v1.15.0\n---\nkind: Other\n"}}, []string{
			"bundle-spec.yaml:78:1: a second YAML document follows the first — keep one spec per file and remove the second document (after ---)",
		}},
		{"stale artifact url", []mutation{{"  - {name: kubectl, url: \"https://dl.k8s.io/v1.37.2/f\"", "  - {name: kubectl, url: \"https://dl.k8s.io/v1.36.0/f\""}}, []string{
			"bundle-spec.yaml:47:15: warning: versions.kubernetes: v1.37.2 does not match the URL of artifact kubectl — make the URLs and tags match the pin",
		}},
		{"image tag not the pin", []mutation{{"    ref: registry.k8s.io/pause:3.10", "    ref: registry.k8s.io/pause:3.9"}}, []string{
			"bundle-spec.yaml:51:10: warning: versions.pause: 3.10 does not match the tag of image pause (3.9) — make the URLs and tags match the pin",
		}},
	}
	if len(cases) < 35 {
		t.Fatalf("only %d broken specs", len(cases))
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			y := baseSpec
			for _, m := range tc.muts {
				y = mutate(t, y, m.old, m.new)
			}
			_, r, err := Parse("bundle-spec.yaml", []byte(y))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			got := problems(r)
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
			wantFatal := false
			for _, w := range tc.want {
				wantFatal = wantFatal || !strings.Contains(w, ": warning: ")
			}
			if r.IsFatal() != wantFatal {
				t.Errorf("IsFatal() = %t, want %t", r.IsFatal(), wantFatal)
			}
		})
	}
}

func TestBaseSpecIsClean(t *testing.T) {
	_, r, err := Parse("bundle-spec.yaml", []byte(baseSpec))
	if err != nil {
		t.Fatal(err)
	}
	if got := problems(r); len(got) != 0 {
		t.Fatalf("base spec has problems:\n%s", strings.Join(got, "\n"))
	}
}
