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
// units → health → addons (first master only) → finish. Step IDs are
// unique (engine.Run checks).
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
	out = append(out, Units(p.Units)...)
	out = append(out, Health(p.Health)...)
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
