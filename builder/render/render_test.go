package render

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/coreos/go-systemd/v22/unit"
	"go.yaml.in/yaml/v3"

	"github.com/kubebake/kubebake/builder/spec"
	"github.com/kubebake/kubebake/firstboot/plan"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

func seedHost(t *testing.T, s *spec.Spec, name string) spec.Host {
	t.Helper()
	for _, h := range s.Hosts {
		if h.Name == name {
			return h
		}
	}
	t.Fatalf("no host %s in the seed spec", name)
	return spec.Host{}
}

func renderFile(t *testing.T, s *spec.Spec, host, path string) []byte {
	t.Helper()
	files, err := Host(s, seedHost(t, s, host))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if f.Path == path {
			return f.Content
		}
	}
	t.Fatalf("%s: %s not rendered", host, path)
	return nil
}

// golden compares got with testdata/<name>.golden, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	p := filepath.Join("testdata", filepath.FromSlash(name)+".golden")
	if *update {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from golden (run go test -update and review the diff):\n%s", p, got)
	}
}

func TestGolden(t *testing.T) {
	s := seedSpec()
	for _, h := range s.Hosts {
		t.Run(h.Name, func(t *testing.T) {
			files, err := Host(s, h)
			if err != nil {
				t.Fatal(err)
			}
			var listing strings.Builder
			for _, f := range files {
				listing.WriteString(plan.FormatMode(f.Mode) + " " + f.Path + "\n")
				golden(t, h.Name+f.Path, f.Content)
			}
			golden(t, h.Name+"/files", []byte(listing.String()))
			p, err := Plan(s, h)
			if err != nil {
				t.Fatal(err)
			}
			b, err := json.MarshalIndent(p, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			golden(t, h.Name+"/plan.json", append(b, '\n'))
		})
	}
}

func TestFilesSortedAndAbsolute(t *testing.T) {
	s := seedSpec()
	for _, h := range s.Hosts {
		files, err := Host(s, h)
		if err != nil {
			t.Fatal(err)
		}
		for i, f := range files {
			if !strings.HasPrefix(f.Path, "/") || filepath.Clean(f.Path) != f.Path {
				t.Errorf("%s: %q is not a clean absolute path", h.Name, f.Path)
			}
			if i > 0 && files[i-1].Path >= f.Path {
				t.Errorf("%s: %s after %s: not sorted", h.Name, f.Path, files[i-1].Path)
			}
			if f.Mode == 0 || len(f.Content) == 0 {
				t.Errorf("%s: %s: mode %o, %d bytes", h.Name, f.Path, f.Mode, len(f.Content))
			}
		}
	}
}

func TestDeterministic(t *testing.T) {
	for _, h := range seedSpec().Hosts {
		a, err := Host(seedSpec(), h)
		if err != nil {
			t.Fatal(err)
		}
		b, err := Host(seedSpec(), h)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(a, b) {
			t.Errorf("%s: two renders differ", h.Name)
		}
		pa, _ := Plan(seedSpec(), h)
		pb, _ := Plan(seedSpec(), h)
		if !reflect.DeepEqual(pa, pb) {
			t.Errorf("%s: two plans differ", h.Name)
		}
	}
}

// TestUnitsSystemd219 parses every rendered unit back and checks every
// directive against the systemd 219 list.
func TestUnitsSystemd219(t *testing.T) {
	s := seedSpec()
	n := 0
	for _, h := range s.Hosts {
		files, err := Host(s, h)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			if !strings.HasPrefix(f.Path, SystemdUnitDir+"/") {
				continue
			}
			n++
			opts, err := unit.Deserialize(bytes.NewReader(f.Content))
			if err != nil {
				t.Errorf("%s %s: %v", h.Name, f.Path, err)
				continue
			}
			for _, o := range opts {
				if !Allowed219(o.Section, o.Name) {
					t.Errorf("%s %s: [%s] %s= is not in systemd 219", h.Name, f.Path, o.Section, o.Name)
				}
			}
			if err := Check219(opts); err != nil {
				t.Errorf("%s %s: %v", h.Name, f.Path, err)
			}
			var start int
			for _, o := range opts {
				if o.Section == "Service" && o.Name == "ExecStart" {
					start++
					args := strings.Fields(strings.ReplaceAll(o.Value, "\\\n", " "))
					if len(args) == 0 || !strings.HasPrefix(args[0], "/") {
						t.Errorf("%s %s: ExecStart %q: want an absolute binary", h.Name, f.Path, o.Value)
					}
				}
			}
			if start != 1 {
				t.Errorf("%s %s: %d ExecStart lines, want 1", h.Name, f.Path, start)
			}
		}
	}
	if n == 0 {
		t.Fatal("no units rendered")
	}
}

func TestCheck219Rejects(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []*unit.UnitOption
	}{
		{"StartLimitIntervalSec", []*unit.UnitOption{unit.NewUnitOption("Service", "StartLimitIntervalSec", "0")}},
		{"StartLimitIntervalSec in Unit", []*unit.UnitOption{unit.NewUnitOption("Unit", "StartLimitIntervalSec", "0")}},
		{"StartLimitBurst in Unit", []*unit.UnitOption{unit.NewUnitOption("Unit", "StartLimitBurst", "3")}},
		{"TasksMax", []*unit.UnitOption{unit.NewUnitOption("Service", "TasksMax", "infinity")}},
		{"AmbientCapabilities", []*unit.UnitOption{unit.NewUnitOption("Service", "AmbientCapabilities", "CAP_NET_ADMIN")}},
		{"DynamicUser", []*unit.UnitOption{unit.NewUnitOption("Service", "DynamicUser", "yes")}},
		{"ExecCondition", []*unit.UnitOption{unit.NewUnitOption("Service", "ExecCondition", "/bin/true")}},
		{"ProtectSystem=strict", []*unit.UnitOption{unit.NewUnitOption("Service", "ProtectSystem", "strict")}},
		{"MemoryMax", []*unit.UnitOption{unit.NewUnitOption("Service", "MemoryMax", "1G")}},
		{"Type=exec", []*unit.UnitOption{unit.NewUnitOption("Service", "Type", "exec")}},
		{"oneshot with Restart", []*unit.UnitOption{
			unit.NewUnitOption("Service", "Type", "oneshot"),
			unit.NewUnitOption("Service", "Restart", "on-failure"),
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := Check219(tc.opts); !errors.Is(err, ErrSystemd219) {
				t.Errorf("Check219 = %v, want ErrSystemd219", err)
			}
		})
	}
	ok := []*unit.UnitOption{
		unit.NewUnitOption("Unit", "ConditionPathExists", "!/var/lib/kubebake/done"),
		unit.NewUnitOption("Service", "StartLimitInterval", "0"),
		unit.NewUnitOption("Service", "Delegate", "yes"),
		unit.NewUnitOption("Service", "KillMode", "process"),
		unit.NewUnitOption("Install", "WantedBy", "multi-user.target"),
	}
	if err := Check219(ok); err != nil {
		t.Errorf("Check219(valid) = %v", err)
	}
}

func TestKubeletConfig(t *testing.T) {
	s := seedSpec()
	b := renderFile(t, s, "hdss7-21", KubeletConfigFile)
	var m map[string]any
	if err := yaml.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]any{
		"kind":                     "KubeletConfiguration",
		"apiVersion":               "kubelet.config.k8s.io/v1beta1",
		"failCgroupV1":             false,
		"cgroupDriver":             "cgroupfs",
		"address":                  "10.4.7.21",
		"podCIDR":                  "172.7.21.0/24",
		"clusterDomain":            "cluster.local",
		"rotateCertificates":       false,
		"serverTLSBootstrap":       false,
		"containerRuntimeEndpoint": "unix:///run/containerd/containerd.sock",
	} {
		got, ok := m[k]
		if !ok {
			t.Errorf("%s missing (a false must be written, not omitted)", k)
			continue
		}
		if got != want {
			t.Errorf("%s = %v, want %v", k, got, want)
		}
	}
	if dns, _ := m["clusterDNS"].([]any); len(dns) != 1 || dns[0] != "192.168.0.2" {
		t.Errorf("clusterDNS = %v, want [192.168.0.2]", m["clusterDNS"])
	}
}

func TestContainerdMatchesKubeletCgroupDriver(t *testing.T) {
	for _, tc := range []struct{ driver, want string }{
		{"cgroupfs", "SystemdCgroup = false"},
		{"systemd", "SystemdCgroup = true"},
	} {
		t.Run(tc.driver, func(t *testing.T) {
			s := seedSpec()
			s.Kubelet.CgroupDriver = tc.driver
			b := renderFile(t, s, "hdss7-22", ContainerdConfig)
			if !bytes.Contains(b, []byte(tc.want)) {
				t.Errorf("config.toml lacks %q:\n%s", tc.want, b)
			}
			if !bytes.Contains(b, []byte(`sandbox = "harbor.od.com/public/pause:3.10"`)) {
				t.Errorf("config.toml lacks the Harbor pause image:\n%s", b)
			}
		})
	}
}

func TestKubeProxyConfig(t *testing.T) {
	b := renderFile(t, seedSpec(), "hdss7-22", KubeProxyConfigFile)
	var c KubeProxyConfiguration
	if err := yaml.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	if c.Mode != "ipvs" || c.IPVS == nil || c.IPVS.Scheduler != "rr" {
		t.Errorf("mode %q ipvs %+v, want ipvs rr", c.Mode, c.IPVS)
	}
	if c.ClusterCIDR != "172.7.0.0/16" || c.HostnameOverride != "hdss7-22.host.com" || c.BindAddress != "10.4.7.22" {
		t.Errorf("got %+v", c)
	}
}

func TestRoutes(t *testing.T) {
	s := seedSpec()
	for _, tc := range []struct {
		host string
		want []plan.Route
	}{
		{"hdss7-21", []plan.Route{{Dst: "172.7.22.0/24", Via: "10.4.7.22"}}},
		{"hdss7-22", []plan.Route{{Dst: "172.7.21.0/24", Via: "10.4.7.21"}}},
		{"hdss7-12", nil},
	} {
		t.Run(tc.host, func(t *testing.T) {
			p, err := Plan(s, seedHost(t, s, tc.host))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(p.Routes, tc.want) {
				t.Errorf("routes = %v, want %v", p.Routes, tc.want)
			}
		})
	}
	t.Run("vxlan", func(t *testing.T) {
		s := seedSpec()
		s.Network.Flannel.Backend = "vxlan"
		p, err := Plan(s, seedHost(t, s, "hdss7-21"))
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Routes) != 0 {
			t.Errorf("vxlan routes = %v, want none", p.Routes)
		}
	})
}

func TestPlanUnits(t *testing.T) {
	s := seedSpec()
	for _, tc := range []struct {
		host string
		want []string
	}{
		{"hdss7-11", []string{"named.service", "nginx.service", "keepalived.service"}},
		{"hdss7-12", []string{"kubebake-network.service", "nginx.service", "keepalived.service", "etcd.service", "flannel-netconf.service"}},
		{"hdss7-21", []string{"kubebake-network.service", "containerd.service", "etcd.service", "flannel-netconf.service", "flanneld.service",
			"kube-apiserver.service", "kube-controller-manager.service", "kube-scheduler.service",
			"kubelet.service", "kube-proxy.service"}},
		{"hdss7-200", []string{"nfs-server.service"}},
	} {
		t.Run(tc.host, func(t *testing.T) {
			p, err := Plan(s, seedHost(t, s, tc.host))
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, u := range p.Units {
				got = append(got, u.Name)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("units = %v, want %v", got, tc.want)
			}
			// Every planned unit is rendered for the host, except those
			// CentOS 7's packages install (osUnits).
			files, _ := Host(s, seedHost(t, s, tc.host))
			have := map[string]bool{}
			for _, f := range files {
				have[f.Path] = true
			}
			for _, u := range got {
				if _, pkg := osUnits[u]; !have[UnitPath(u)] && !pkg {
					t.Errorf("%s planned but not rendered", u)
				}
			}
		})
	}
}

func TestPlanValidatesAsManifest(t *testing.T) {
	s := seedSpec()
	for _, h := range s.Hosts {
		p, err := Plan(s, h)
		if err != nil {
			t.Fatal(err)
		}
		m := plan.Manifest{Format: plan.Format, Host: plan.Host{Name: h.Name, IP: h.IP, Roles: h.Roles}, Plan: p}
		if err := m.Validate(); err != nil {
			t.Errorf("%s: %v", h.Name, err)
		}
	}
}

func TestNodeNetworking(t *testing.T) {
	s := seedSpec()
	p, err := Plan(s, seedHost(t, s, "hdss7-21"))
	if err != nil {
		t.Fatal(err)
	}
	wantMods := []string{"ip_vs", "ip_vs_rr", "ip_vs_wrr", "ip_vs_sh", "ip_vs_nq", "nf_conntrack_ipv4", "br_netfilter", "overlay"}
	if !reflect.DeepEqual(p.Modules, wantMods) {
		t.Errorf("modules = %v, want %v", p.Modules, wantMods)
	}
	snat := strings.Join([]string{"-s", "172.7.21.0/24", "!", "-d", "172.7.0.0/16", "!", "-o", "cni0", "-j", "MASQUERADE"}, " ")
	var found bool
	for _, op := range p.IPTables {
		if op.Why == "" {
			t.Errorf("iptables %v has no Why", op.Rule)
		}
		if op.Table == "nat" && strings.Join(op.Rule, " ") == snat && !op.Delete {
			found = true
		}
	}
	if !found {
		t.Errorf("no SNAT rule %q in %+v", snat, p.IPTables)
	}
	env := renderFile(t, s, "hdss7-21", FlannelSubnetEnv)
	if !bytes.Contains(env, []byte("FLANNEL_SUBNET=172.7.21.1/24\n")) {
		t.Errorf("subnet.env:\n%s", env)
	}
}

func TestConntrackModule(t *testing.T) {
	for _, tc := range []struct{ kernel, want string }{
		{"", "nf_conntrack_ipv4"},
		{"3.10", "nf_conntrack_ipv4"},
		{"3.10.0-1160.el7.x86_64", "nf_conntrack_ipv4"},
		{"4.18", "nf_conntrack_ipv4"},
		{"4.19", "nf_conntrack"},
		{"5.14.0-427.el9", "nf_conntrack"},
		{"6.1", "nf_conntrack"},
	} {
		t.Run(tc.kernel, func(t *testing.T) {
			got, err := ConntrackModule(tc.kernel)
			if err != nil || got != tc.want {
				t.Errorf("ConntrackModule(%q) = %q, %v; want %q", tc.kernel, got, err, tc.want)
			}
		})
	}
	if _, err := ConntrackModule("three"); err == nil {
		t.Error("ConntrackModule(three): want an error")
	}
}

func TestCAKeyOnMasters(t *testing.T) {
	s := seedSpec()
	b := renderFile(t, s, "hdss7-21", UnitPath(UnitControllerManager))
	if bytes.Contains(b, []byte("cluster-signing")) {
		t.Error("cluster-signing flags without pki.caKeyOnMasters")
	}
	s.PKI.CAKeyOnMasters = true
	b = renderFile(t, s, "hdss7-21", UnitPath(UnitControllerManager))
	if !bytes.Contains(b, []byte("--cluster-signing-key-file="+CAKey)) {
		t.Error("no cluster-signing-key-file with pki.caKeyOnMasters")
	}
}

// extraArgs replace a flag kubebake sets in place and append the others in
// name order; a component without extraArgs renders as before.
func TestExtraArgs(t *testing.T) {
	s := seedSpec()
	before := renderFile(t, s, "hdss7-21", UnitPath(UnitScheduler))
	s.ExtraArgs.KubeControllerManager = map[string]string{
		"v":                           "2",
		"leader-elect-lease-duration": "60s",
		"leader-elect":                "false",
	}
	cm := string(renderFile(t, s, "hdss7-21", UnitPath(UnitControllerManager)))
	if strings.Count(cm, "--leader-elect=") != 1 || !strings.Contains(cm, "--leader-elect=false \\\n") {
		t.Errorf("--leader-elect not replaced in place:\n%s", cm)
	}
	lease, v := strings.Index(cm, "--leader-elect-lease-duration=60s"), strings.Index(cm, "--v=2")
	if lease < 0 || v < 0 || lease > v || lease < strings.Index(cm, "--leader-elect=false") {
		t.Errorf("appended flags missing or not after kubebake's, in name order:\n%s", cm)
	}
	if after := renderFile(t, s, "hdss7-21", UnitPath(UnitScheduler)); !bytes.Equal(before, after) {
		t.Errorf("the scheduler's unit changed with only the controller-manager's extraArgs set")
	}
	s.ExtraArgs.Etcd = map[string]string{"heartbeat-interval": "500"}
	if b := renderFile(t, s, "hdss7-12", UnitPath(UnitEtcd)); !bytes.Contains(b, []byte("--heartbeat-interval=500")) {
		t.Errorf("etcd's extraArgs not in its unit:\n%s", b)
	}
}

func TestBadInput(t *testing.T) {
	s := seedSpec()
	for _, tc := range []struct {
		name string
		h    spec.Host
	}{
		{"no name", spec.Host{IP: "10.4.7.9"}},
		{"bad ip", spec.Host{Name: "x", IP: "10.4.7"}},
		{"bad podSubnet", spec.Host{Name: "x", IP: "10.4.7.9", Roles: []string{"node"}, PodSubnet: "172.7.9/24"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Host(s, tc.h); !errors.Is(err, ErrHost) {
				t.Errorf("Host: %v, want ErrHost", err)
			}
			if _, err := Plan(s, tc.h); !errors.Is(err, ErrHost) {
				t.Errorf("Plan: %v, want ErrHost", err)
			}
		})
	}
	// An empty but otherwise sane spec does not crash.
	empty := &spec.Spec{Hosts: []spec.Host{{Name: "n", IP: "10.0.0.1", Roles: plan.Roles}}}
	if _, err := Host(empty, empty.Hosts[0]); err != nil {
		t.Logf("Host(empty spec): %v", err)
	}
	if _, err := Plan(empty, empty.Hosts[0]); err != nil {
		t.Errorf("Plan(empty spec): %v", err)
	}
}

// TestSeedLiteralMatchesSpecDefaults strips from the seed literal what
// spec.ApplyDefaults fills, defaults it again, and checks the hosts render
// the same: the literal stays an honest stand-in for a loaded spec.
func TestSeedLiteralMatchesSpecDefaults(t *testing.T) {
	s := seedSpec()
	s.Cluster.Name, s.Cluster.ClusterDomain, s.Cluster.NodePortRange = "", "", ""
	s.Cluster.APIServerPort, s.Cluster.LBPort = 0, 0
	s.Cluster.KubernetesServiceIP, s.Cluster.DNSServiceIP = "", ""
	s.Cluster.VIPInterface, s.Cluster.VRRPRouterID, s.Cluster.DNSForwarders = "", 0, nil
	s.Target = spec.Target{}
	s.Network = spec.Network{}
	s.Kubelet = spec.Kubelet{}
	for i := range s.Hosts {
		s.Hosts[i].PodSubnet = ""
	}
	spec.ApplyDefaults(s)
	want := seedSpec()
	for i, h := range want.Hosts {
		a, err := Host(want, h)
		if err != nil {
			t.Fatal(err)
		}
		b, err := Host(s, s.Hosts[i])
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(a, b) {
			t.Errorf("%s: the literal and spec.ApplyDefaults render differently", h.Name)
		}
		pa, _ := Plan(want, h)
		pb, _ := Plan(s, s.Hosts[i])
		if !reflect.DeepEqual(pa, pb) {
			t.Errorf("%s: plans differ:\nliteral %+v\ndefaults %+v", h.Name, pa, pb)
		}
	}
}

func TestFlannelVXLAN(t *testing.T) {
	s := seedSpec()
	s.Network.Flannel.Backend = "vxlan"
	s.Network.Flannel.DirectRouting = true
	b := renderFile(t, s, "hdss7-12", FlannelNetConf)
	var nc flannelNetConfig
	if err := json.Unmarshal(b, &nc); err != nil {
		t.Fatal(err)
	}
	if nc.Network != "172.7.0.0/16" || nc.Backend.Type != "vxlan" || !nc.Backend.DirectRouting {
		t.Errorf("net-conf = %+v", nc)
	}
}
