package steps

import (
	"strings"
	"testing"

	"github.com/kubebake/kubebake/firstboot/plan"
)

func testManifest() *plan.Manifest {
	return &plan.Manifest{
		Format: plan.Format,
		Host:   plan.Host{Name: "n1", IP: "10.4.7.21"},
		Files:  []plan.File{{Path: "/etc/a", Source: "rootfs/etc/a", Mode: "0644", Owner: "root:root", SHA256: strings.Repeat("0", 64)}},
		Plan: plan.Plan{
			Modules: []string{"br_netfilter"},
			Sysctls: []plan.Sysctl{{Key: "net.ipv4.ip_forward", Value: "1"}},
			Routes:  []plan.Route{{Dst: "172.7.22.0/24", Via: "10.4.7.22"}},
			IPTables: []plan.IPTablesOp{{Table: "nat", Chain: "POSTROUTING",
				Rule: []string{"-s", "172.7.21.0/24", "!", "-d", "172.7.0.0/16", "!", "-o", "cni0", "-j", "MASQUERADE"}}},
			Units:  []plan.Unit{{Name: "containerd.service", Start: true}},
			Health: []plan.HealthCheck{{Name: "kubelet", URL: "http://127.0.0.1:10248/healthz", Attempts: 1, Interval: "1s"}},
		},
	}
}

func TestFromManifestOrder(t *testing.T) {
	steps, err := FromManifest(testManifest())
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, s := range steps {
		ids = append(ids, strings.SplitN(s.ID(), "/", 2)[0])
	}
	// Each kind appears in plan order; collapse runs of the same kind.
	var kinds []string
	for _, k := range ids {
		if len(kinds) == 0 || kinds[len(kinds)-1] != k {
			kinds = append(kinds, k)
		}
	}
	t.Logf("steps: %v", ids)
	if steps[0].ID() != "bundle/integrity" || steps[1].ID() != "preflight/host" || steps[7].ID() != "file//etc/a" {
		t.Errorf("head of plan: %v", ids[:8])
	}
	seen := map[string]bool{}
	for _, k := range kinds {
		if seen[k] {
			t.Errorf("kind %s appears in two places: %v", k, kinds)
		}
		seen[k] = true
	}
	if len(kinds) < 8 {
		t.Errorf("kinds %v", kinds)
	}
}

func TestFromManifestRejectsBadFile(t *testing.T) {
	m := &plan.Manifest{Files: []plan.File{{Path: "/etc/a", Mode: "0644", Owner: "etcd"}}}
	if _, err := FromManifest(m); err == nil || !strings.HasPrefix(err.Error(), "plan: files[0] /etc/a: owner") {
		t.Errorf("err %v", err)
	}
}

// The per-boot plan holds exactly the routes and iptables ops, in order.
func TestNetworkPlan(t *testing.T) {
	steps, err := Network(testManifest())
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, s := range steps {
		ids = append(ids, s.ID())
	}
	if len(ids) != 2 || !strings.HasPrefix(ids[0], "route/") || !strings.HasPrefix(ids[1], "iptables/") {
		t.Errorf("network plan: %v, want one route step then one iptables step", ids)
	}
}

// A health gate follows the start of the unit it checks, so nothing that
// talks to the apiserver starts before it is ready; checks without a
// started unit of their name come after all the units.
func TestFromManifestGatesUnitsOnHealth(t *testing.T) {
	m := testManifest()
	m.Plan.Units = []plan.Unit{
		{Name: "etcd.service", Start: true},
		{Name: "kube-apiserver.service", Start: true},
		{Name: "kube-scheduler.service", Start: true},
		{Name: "kubelet.service", Start: true},
		{Name: "flannel-netconf.service"},
	}
	m.Plan.Health = []plan.HealthCheck{
		{Name: "etcd", URL: "https://10.4.7.21:2379/health"},
		{Name: "kube-apiserver", URL: "https://127.0.0.1:6443/readyz"},
		{Name: "kubelet", URL: "http://127.0.0.1:10248/healthz"},
		{Name: "flannel-netconf", URL: "http://127.0.0.1:1/never"}, // its unit does not start
		{Name: "nginx", URL: "http://127.0.0.1:2/healthz"},         // no unit of this name
	}
	steps, err := FromManifest(m)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range steps {
		if id := s.ID(); strings.HasPrefix(id, "systemd/") || strings.HasPrefix(id, "health/") {
			got = append(got, id)
		}
	}
	want := []string{
		"systemd/daemon-reload", "systemd/enable",
		"systemd/start/etcd.service", "health/etcd",
		"systemd/start/kube-apiserver.service", "health/kube-apiserver",
		"systemd/start/kube-scheduler.service",
		"systemd/start/kubelet.service", "health/kubelet",
		"health/flannel-netconf", "health/nginx",
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("order\n%q\nwant\n%q", got, want)
	}
}
