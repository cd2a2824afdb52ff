// Package steps turns a bundle's manifest into firstboot's ordered plan of
// engine.Steps.
package steps

import (
	"fmt"

	"github.com/kubebake/kubebake/firstboot/engine"
	"github.com/kubebake/kubebake/firstboot/plan"
)

// FromManifest is the ordered plan, an explicit list: bundle integrity →
// preflight → files → modules → sysctls → routes → iptables → images →
// units, each health gate right after the start of the unit it checks →
// the other health gates → addons (first master only) → finish. Step IDs
// are unique (engine.Run checks).
func FromManifest(m *plan.Manifest) ([]engine.Step, error) {
	if m == nil {
		return nil, fmt.Errorf("plan: no manifest")
	}
	files, err := Files(m.Files)
	if err != nil {
		return nil, fmt.Errorf("plan: %w", err)
	}
	p := m.Plan
	var out []engine.Step
	out = append(out, Integrity())
	out = append(out, Preflight(p.Preflight, m.Host)...)
	out = append(out, files...)
	out = append(out, Modules(p.Modules)...)
	out = append(out, Sysctls(p.Sysctls)...)
	out = append(out, Routes(p.Routes)...)
	out = append(out, IPTables(p.IPTables)...)
	out = append(out, Images(m.Images)...)
	out = append(out, gated(Units(p.Units), p.Health)...)
	out = append(out, Addons(p.Addons)...)
	out = append(out, Finish())
	return out, nil
}

// Network is the plan firstboot re-applies at every boot (firstboot
// network, run by kubebake-network.service): the routes and iptables rules,
// which live only in the kernel and are gone after a reboot — and on CentOS
// 7 iptables-services restores /etc/sysconfig/iptables' REJECT rules before
// it. Modules and sysctls persist through /etc/modules-load.d and
// /etc/sysctl.d, files and enabled units on disk, so they are not here.
func Network(m *plan.Manifest) ([]engine.Step, error) {
	if m == nil {
		return nil, fmt.Errorf("plan: no manifest")
	}
	var out []engine.Step
	out = append(out, Routes(m.Plan.Routes)...)
	out = append(out, IPTables(m.Plan.IPTables)...)
	return out, nil
}

// gated puts each health check named after a unit ("kube-apiserver" for
// kube-apiserver.service) right after that unit's start step, and the
// checks no started unit matches after all the units. So nothing starts
// before what it talks to answers, as kubeadm waits for the control plane:
// the controller-manager, scheduler, kubelet and kube-proxy do not start
// until the apiserver is ready, instead of all retrying TLS handshakes
// against an apiserver still starting. On a slow host (a TCG guest, see
// e2e/) that storm starved the apiserver's own start.
func gated(units []engine.Step, checks []plan.HealthCheck) []engine.Step {
	health := Health(checks)
	byUnit := map[string]engine.Step{}
	for i, c := range checks {
		byUnit["systemd/start/"+c.Name+".service"] = health[i]
	}
	used := map[string]bool{}
	var out []engine.Step
	for _, s := range units {
		out = append(out, s)
		if h, ok := byUnit[s.ID()]; ok {
			out = append(out, h)
			used[h.ID()] = true
		}
	}
	for _, h := range health {
		if !used[h.ID()] {
			out = append(out, h)
		}
	}
	return out
}
