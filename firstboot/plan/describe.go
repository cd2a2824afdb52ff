package plan

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// Describe writes the plan as firstboot will walk it, step by step, in plain
// lines. Secrets are listed by path only.
func (m *Manifest) Describe(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	p := func(format string, a ...any) { fmt.Fprintf(tw, format, a...) }
	h := m.Host
	p("bundle\t%s (%s) roles %s\n", h.FQDN, h.IP, strings.Join(h.Roles, ","))
	p("format\t%s, builder %s, spec %s\n", m.Format, m.Build.BuilderVersion, m.Build.SpecDigest)
	pf := m.Plan.Preflight
	var changes []string
	for _, c := range []struct {
		on   bool
		what string
	}{{pf.DisableSELinux, "SELinux"}, {pf.DisableFirewalld, "firewalld"}, {pf.DisableSwap, "swap"}} {
		if c.on {
			changes = append(changes, c.what)
		}
	}
	p("1 preflight\tos %s, kernel >= %s, cgroup %s; may disable: %s\n", pf.OS, pf.MinKernel, pf.Cgroup, orNone(changes))
	var size int64
	secrets := 0
	for _, f := range m.Files {
		size += f.Size
		if f.Secret {
			secrets++
		}
	}
	p("2 files\t%d files (%d secret), %d bytes\n", len(m.Files), secrets, size)
	for _, f := range m.Files {
		tag := ""
		if f.Secret {
			tag = " secret"
		}
		p("\t  %s %s %s%s\n", f.Mode, f.Owner, f.Path, tag)
	}
	p("3 modules\t%s\n", orNone(m.Plan.Modules))
	var sys []string
	for _, s := range m.Plan.Sysctls {
		sys = append(sys, s.Key+"="+s.Value)
	}
	p("4 sysctls\t%s\n", orNone(sys))
	p("5 routes\t%d\n", len(m.Plan.Routes))
	for _, r := range m.Plan.Routes {
		p("\t  %s via %s\n", r.Dst, r.Via)
	}
	p("6 iptables\t%d\n", len(m.Plan.IPTables))
	for _, r := range m.Plan.IPTables {
		verb := "ensure"
		if r.Delete {
			verb = "delete"
		}
		p("\t  %s -t %s %s %s\n", verb, r.Table, r.Chain, strings.Join(r.Rule, " "))
	}
	var units []string
	for _, u := range m.Plan.Units {
		units = append(units, u.Name)
	}
	p("7 units\t%s\n", orNone(units))
	p("8 health\t%d\n", len(m.Plan.Health))
	for _, c := range m.Plan.Health {
		p("\t  %s %s\n", c.Name, c.URL)
	}
	if a := m.Plan.Addons; a != nil {
		var files []string
		for _, f := range m.Files {
			if strings.HasPrefix(f.Path, a.Dir+"/") {
				files = append(files, f.Path[len(a.Dir)+1:])
			}
		}
		p("9 addons\tkubectl apply --server-side -f %s (%s) as %s\n", a.Dir, orNone(files), a.Kubeconfig)
	}
	return tw.Flush()
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, " ")
}
