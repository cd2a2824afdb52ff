package spec

import (
	"bufio"
	"errors"
	"os"
	"strings"
	"testing"
)

const realSpec = "../../bundle-spec.yaml"

func TestRealBundleSpec(t *testing.T) {
	s, r, err := Load(realSpec)
	if err != nil {
		t.Fatal(err)
	}
	if r.IsFatal() {
		t.Fatalf("bundle-spec.yaml has errors:\n%s", r.String())
	}
	if s.File != realSpec {
		t.Errorf("File = %q", s.File)
	}
	var names []string
	for _, h := range s.Hosts {
		names = append(names, h.Name+"="+h.IP+":"+strings.Join(h.Roles, ","))
	}
	want := "hdss7-11=10.4.7.11:dns,lb hdss7-12=10.4.7.12:etcd,lb hdss7-21=10.4.7.21:etcd,master,node hdss7-22=10.4.7.22:etcd,master,node hdss7-200=10.4.7.200:ops"
	if got := strings.Join(names, " "); got != want {
		t.Errorf("hosts:\n got %s\nwant %s", got, want)
	}
	if got := hostNames(s.Masters()); got != "hdss7-21 hdss7-22" {
		t.Errorf("Masters = %s", got)
	}
	if got := hostNames(s.EtcdMembers()); got != "hdss7-12 hdss7-21 hdss7-22" {
		t.Errorf("EtcdMembers = %s", got)
	}
	if got := hostNames(s.Nodes()); got != "hdss7-21 hdss7-22" {
		t.Errorf("Nodes = %s", got)
	}
	if got := hostNames(s.HostsWithRole("lb")); got != "hdss7-11 hdss7-12" {
		t.Errorf("lb = %s", got)
	}
	h, _ := s.Host("hdss7-21")
	if got := s.FQDN(h); got != "hdss7-21.host.com" || h.FQDN(s) != got {
		t.Errorf("FQDN = %s", got)
	}
	if h.PodSubnet != "172.7.21.0/24" {
		t.Errorf("podSubnet = %s", h.PodSubnet)
	}
	c := s.Cluster
	if c.KubernetesServiceIP != "192.168.0.1" || c.DNSServiceIP != "192.168.0.2" || c.VIP != "10.4.7.10" {
		t.Errorf("cluster = %+v", c)
	}
	if s.Kubelet.FailCgroupV1 == nil || *s.Kubelet.FailCgroupV1 {
		t.Errorf("failCgroupV1 = %v", s.Kubelet.FailCgroupV1)
	}
	if s.PKI.Subject.CN != "zoneyet" || s.PKI.Expiry != "175200h" || s.PKI.Subject.L != "" {
		t.Errorf("pki = %+v", s.PKI)
	}
	for _, a := range s.Artifacts {
		if a.SHA256 != "" {
			t.Errorf("artifact %s pins an invented sha256; use sha256URL", a.Name)
		}
	}
	etcd, ok := s.Artifact("etcd")
	if !ok || etcd.Extract["etcd-v3.6.16-linux-amd64/etcdctl"] != "etcdctl" {
		t.Errorf("etcd artifact = %+v", etcd)
	}
	if s.Bundle.SourceDateEpoch == 0 {
		t.Error("sourceDateEpoch not set")
	}
	// The position of hosts[3].ip is the line that says "ip: 10.4.7.22".
	line, col := findInFile(t, realSpec, "ip: 10.4.7.22")
	if p := s.Pos("hosts[3].ip"); p.Line != line || p.Col != col+len("ip: ") {
		t.Errorf("Pos(hosts[3].ip) = %v, want line %d col %d", p, line, col+len("ip: "))
	}
}

func hostNames(hs []Host) string {
	var out []string
	for _, h := range hs {
		out = append(out, h.Name)
	}
	return strings.Join(out, " ")
}

func findInFile(t *testing.T, path, s string) (line, col int) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		if i := strings.Index(sc.Text(), s); i >= 0 {
			return n, i + 1
		}
	}
	t.Fatalf("%q not in %s", s, path)
	return 0, 0
}

func TestLoadMissingFile(t *testing.T) {
	_, _, err := Load("testdata/does-not-exist.yaml")
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("err = %v, want ErrNotExist", err)
	}
}

func TestPositions(t *testing.T) {
	s, _, err := Parse("b.yaml", []byte(baseSpec))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path      string
		line, col int
	}{
		{"", 1, 1},
		{"apiVersion", 1, 13},
		{"cluster", 3, 1},
		{"cluster.podNetwork", 10, 15},
		{"cluster.dnsServers[0]", 9, 16},
		{"cluster.clusterDomain", 3, 1}, // absent: its parent
		{"hosts", 18, 1},
		{"hosts[2]", 26, 5},
		{"hosts[3].ip", 30, 9},
		{"hosts[3].podSubnet", 29, 5}, // absent: the host
		{"hosts[0].macs[0]", 21, 12},
		{"hosts[0].roles[1]", 22, 18},
		{"artifacts[6].extract[etcd-v3.6.16-linux-amd64/etcd]", 67, 7},
		{"pki.subject.CN", 42, 9},
		{"no.such.path", 1, 1},
	} {
		p := s.Pos(tc.path)
		if p.File != "b.yaml" || p.Line != tc.line || p.Col != tc.col {
			t.Errorf("Pos(%q) = %v, want b.yaml:%d:%d", tc.path, p, tc.line, tc.col)
		}
	}
}

func TestDefaults(t *testing.T) {
	const minimal = `apiVersion: kubebake.io/v1alpha1
kind: BundleSpec
cluster:
  nodeNetwork: 10.4.7.0/24
  podNetwork: 172.7.0.0/16
  serviceNetwork: 192.168.0.0/16
hosts:
  - name: hdss7-21
    ip: 10.4.7.21
    macs: ["52-54-00-04-07-1A"]
    roles: [etcd, master, node]
pki:
  algo: ecdsa
network:
  kubeProxy:
    mode: iptables
versions:
  kubernetes: v1.37.2
`
	s, _, err := Parse("bundle-spec.yaml", []byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	// Parse already applied defaults; check the result.
	for _, tc := range []struct{ name, got, want string }{
		{"name", s.Cluster.Name, "kubernetes"},
		{"clusterDomain", s.Cluster.ClusterDomain, "cluster.local"},
		{"kubernetesServiceIP", s.Cluster.KubernetesServiceIP, "192.168.0.1"},
		{"dnsServiceIP", s.Cluster.DNSServiceIP, "192.168.0.2"},
		{"nodePortRange", s.Cluster.NodePortRange, "30000-32767"},
		{"os", s.Target.OS, "centos7"},
		{"kernel", s.Target.Kernel, "3.10"},
		{"cgroup", s.Target.Cgroup, "v1"},
		{"arch", s.Target.Arch, "amd64"},
		{"backend", s.Network.Flannel.Backend, "host-gw"},
		{"etcdPrefix", s.Network.Flannel.EtcdPrefix, "/coreos.com/network"},
		{"scheduler (iptables mode)", s.Network.KubeProxy.Scheduler, ""},
		{"bridge", s.Network.Bridge, "cni0"},
		{"vipInterface", s.Cluster.VIPInterface, "eth0"},
		{"expiry", s.PKI.Expiry, "175200h"},
		{"renewBefore", s.PKI.RenewBefore, "720h"},
		{"project", s.Registry.Project, "public"},
		{"cgroupDriver", s.Kubelet.CgroupDriver, "cgroupfs"},
		{"podSubnet", s.Hosts[0].PodSubnet, "172.7.21.0/24"},
		{"mac", s.Hosts[0].MACs[0], "52:54:00:04:07:1a"},
	} {
		if tc.got != tc.want {
			t.Errorf("%s = %q, want %q", tc.name, tc.got, tc.want)
		}
	}
	if s.Cluster.VRRPRouterID != 251 {
		t.Errorf("vrrpRouterID = %d, want 251", s.Cluster.VRRPRouterID)
	}
	if g := s.Cluster.Gateway; g != "" && (len(s.Cluster.DNSForwarders) != 1 || s.Cluster.DNSForwarders[0] != g) {
		t.Errorf("dnsForwarders = %v, want [gateway %s]", s.Cluster.DNSForwarders, g)
	}
	if s.Cluster.APIServerPort != 6443 || s.Cluster.LBPort != 7443 || s.PKI.Size != 256 || s.Kubelet.MaxPods != 110 {
		t.Errorf("numbers: %d %d %d %d", s.Cluster.APIServerPort, s.Cluster.LBPort, s.PKI.Size, s.Kubelet.MaxPods)
	}
	if !*s.Target.DisableSELinux || !*s.Target.DisableFirewalld || !*s.Target.DisableSwap || !*s.Network.PreseedRoutes {
		t.Error("flags not defaulted to true")
	}
	if s.Kubelet.FailCgroupV1 == nil || *s.Kubelet.FailCgroupV1 {
		t.Errorf("failCgroupV1 = %v, want false", s.Kubelet.FailCgroupV1)
	}

	// ApplyDefaults on a fresh decode: the entries themselves.
	d, _ := Decode("bundle-spec.yaml", []byte(minimal))
	var got []string
	for _, e := range ApplyDefaults(d) {
		if e.Kind != Info {
			t.Errorf("default entry is not info: %s", e)
		}
		got = append(got, e.String())
	}
	all := strings.Join(got, "\n")
	for _, w := range []string{
		"bundle-spec.yaml:1:1: info: kubelet.failCgroupV1: set to false: CentOS 7 is cgroup v1 only and Kubernetes >= 1.35 refuses cgroup v1 unless failCgroupV1 is false",
		"bundle-spec.yaml:8:5: info: hosts[0].podSubnet: defaulted to 172.7.21.0/24 (the pod network's /24 named after 10.4.7.21)",
		"bundle-spec.yaml:10:12: info: hosts[0].macs[0]: normalised 52-54-00-04-07-1A to 52:54:00:04:07:1a",
		"bundle-spec.yaml:3:1: info: cluster.kubernetesServiceIP: defaulted to 192.168.0.1",
	} {
		if !strings.Contains(all, w) {
			t.Errorf("missing default entry\n%s\nin\n%s", w, all)
		}
	}
	// Defaults never override what the file says.
	if n := len(ApplyDefaults(d)); n != 0 {
		t.Errorf("second ApplyDefaults set %d values", n)
	}
}

func TestFailCgroupV1NotDefaultedBefore135(t *testing.T) {
	y := mutate(t, baseSpec, "  kubernetes: v1.37.2", "  kubernetes: v1.34.1")
	s, r, _ := Parse("bundle-spec.yaml", []byte(y))
	if s.Kubelet.FailCgroupV1 != nil {
		t.Errorf("failCgroupV1 = %v, want unset for 1.34", *s.Kubelet.FailCgroupV1)
	}
	if r.IsFatal() {
		t.Errorf("unexpected errors:\n%s", r)
	}
}

func TestEntryString(t *testing.T) {
	for _, tc := range []struct {
		e    Entry
		want string
	}{
		{Entry{Kind: Error, Path: "hosts[3].ip", Pos: Pos{"bundle-spec.yaml", 42, 7},
			Msg: "10.4.8.22 is outside nodeNetwork 10.4.7.0/24", Fix: "give the host an address inside 10.4.7.0/24 or widen cluster.nodeNetwork"},
			"bundle-spec.yaml:42:7: hosts[3].ip: 10.4.8.22 is outside nodeNetwork 10.4.7.0/24 — give the host an address inside 10.4.7.0/24 or widen cluster.nodeNetwork"},
		{Entry{Kind: Warning, Path: "hosts", Pos: Pos{"s.yaml", 3, 1}, Msg: "even", Fix: "odd"}, "s.yaml:3:1: warning: hosts: even — odd"},
		{Entry{Kind: Info, Path: "a.b", Pos: Pos{"s.yaml", 1, 2}, Msg: "defaulted"}, "s.yaml:1:2: info: a.b: defaulted"},
		{Entry{Kind: Error, Pos: Pos{"s.yaml", 0, 0}, Msg: "empty"}, "s.yaml: empty"},
	} {
		if got := tc.e.String(); got != tc.want {
			t.Errorf("got  %s\nwant %s", got, tc.want)
		}
	}
}

func TestReport(t *testing.T) {
	r := Report{Entries: []Entry{
		{Kind: Warning, Path: "b", Pos: Pos{"f", 9, 1}, Msg: "w"},
		{Kind: Error, Path: "z", Pos: Pos{"f", 2, 5}, Msg: "e2"},
		{Kind: Error, Path: "a", Pos: Pos{"f", 2, 5}, Msg: "e1"},
	}}
	r.Sort()
	if got := r.Entries[0].Path + r.Entries[1].Path + r.Entries[2].Path; got != "azb" {
		t.Errorf("order = %s", got)
	}
	err := r.Err()
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("Err() = %v", err)
	}
	if want := "invalid bundle spec: 2 error(s)\nf:2:5: a: e1\nf:2:5: z: e2"; err.Error() != want {
		t.Errorf("Error() = %q", err.Error())
	}
	ok := Report{Entries: r.Filter(Warning)}
	if ok.IsFatal() || ok.Err() != nil {
		t.Error("a report of warnings is fatal")
	}
}

func TestSyntaxAndEmpty(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"empty", "", "x.yaml:1:1: the file is empty — start from the documented bundle-spec.yaml in the kubebake repository"},
		{"comment only", "# nothing\n", "x.yaml:1:1: the file is empty — start from the documented bundle-spec.yaml in the kubebake repository"},
		{"not a mapping", "- a\n- b\n", "x.yaml:1:1: expected a mapping, got a list — write it as a mapping of \"key: value\" lines"},
		{"unclosed quote", "apiVersion: \"x\nkind: y\n", "x.yaml:3:1: YAML syntax: found unexpected end of stream — fix the YAML syntax (indent with spaces, not tabs; quote values that contain ': ' or start with special characters)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, r, err := Parse("x.yaml", []byte(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if len(r.Entries) == 0 || r.Entries[0].String() != tc.want {
				t.Errorf("got\n%s\nwant\n%s", r, tc.want)
			}
		})
	}
}

func TestConntrackModule(t *testing.T) {
	for in, want := range map[string]string{
		"3.10": "nf_conntrack_ipv4", "3.10.0-1160.el7.x86_64": "nf_conntrack_ipv4", "4.18": "nf_conntrack_ipv4",
		"4.19": "nf_conntrack", "5.14.0-427.el9": "nf_conntrack", "6.1": "nf_conntrack", "junk": "nf_conntrack_ipv4",
	} {
		if got := ConntrackModule(in); got != want {
			t.Errorf("ConntrackModule(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestCheckRef(t *testing.T) {
	for ref, ok := range map[string]bool{
		"registry.k8s.io/pause:3.10":                              true,
		"docker.io/library/traefik:v3.6.24":                       true,
		"traefik":                                                 true,
		"localhost:5000/a/b:c":                                    true,
		"ghcr.io/flannel-io/flannel:v0.28.10":                     true,
		"registry.k8s.io/pause@sha256:" + strings.Repeat("a", 64): true,
		"Registry.K8s.io/pause:3.10":                              true, // domain may have capitals
		"registry.k8s.io/Pause:3.10":                              false,
		"registry.k8s.io/pause:":                                  false,
		"registry.k8s.io/pause@sha256:abc":                        false,
		"a//b":                                                    false,
	} {
		if got := checkRef(ref) == ""; got != ok {
			t.Errorf("checkRef(%q) ok = %t, want %t (%s)", ref, got, ok, checkRef(ref))
		}
	}
}

func TestDefaultsForPulling(t *testing.T) {
	data := strings.Replace(baseSpec, "registry:\n  host: harbor.od.com\n", "registry:\n  host: harbor.od.com\n  robot:\n    name: pusher\n", 1)
	s, r, err := Parse("bundle-spec.yaml", []byte(data))
	if err != nil || r.IsFatal() {
		t.Fatal(err, r)
	}
	if len(s.Platforms) != 1 || s.Platforms[0] != "linux/amd64" {
		t.Errorf("platforms = %v", s.Platforms)
	}
	if d := s.Registry.Robot.Duration; d == nil || *d != -1 {
		t.Errorf("robot duration = %v, want -1 (never), not Harbor's 30 days", d)
	}
}

func TestDNSForwardersDefaultToGateway(t *testing.T) {
	s, r, _ := Parse("bundle-spec.yaml", []byte(baseSpec))
	if r.IsFatal() {
		t.Fatalf("baseSpec:\n%s", r)
	}
	if len(s.Cluster.DNSForwarders) != 1 || s.Cluster.DNSForwarders[0] != "10.4.7.254" {
		t.Errorf("dnsForwarders = %v, want [10.4.7.254] (the gateway)", s.Cluster.DNSForwarders)
	}
	if !strings.Contains(r.String(), "cluster.dnsForwarders: defaulted to [10.4.7.254]") {
		t.Errorf("no info entry for the default:\n%s", r)
	}
}
