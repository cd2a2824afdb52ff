package render

// The DNS hosts (role dns): bind9 from CentOS 7's base repository (bind
// 9.11), authoritative for cluster.hostDomain (host.com) and
// cluster.serviceDomain (od.com), forwarding everything else to
// cluster.dnsForwarders (the seed's 10.4.7.254).
//
// Where kubebake differs from the seed:
//   - no "dnssec-enable no": bind 9.16 and later refuse the option, and in
//     9.11 it only stops named from returning DNSSEC records; with
//     "dnssec-validation no" (kept) and unsigned zones it changes nothing
//     the cluster sees. Leaving it out keeps named.conf valid for 9.11 and
//     for the bind 9.18 the tests check it with;
//   - no allow-update: the zones are rendered from the spec, so a dynamic
//     update would be lost on the next bundle (and CentOS's /var/named is
//     not writable by named anyway);
//   - files are root:root 0644 (CentOS ships named.conf root:named 0640):
//     the named group only exists once the bind package is installed, and
//     nothing here is secret.

import (
	"crypto/sha256"
	"fmt"
	"net/netip"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/kubebake/kubebake/firstboot/plan"
)

// DNS files and unit.
const (
	NamedConf = "/etc/named.conf"
	// NamedDir is named's directory option; zone files live in it.
	NamedDir  = "/var/named"
	UnitNamed = "named.service" // CentOS 7 bind
)

// ZoneFile is where the zone file of zone (host.com) is: /var/named/host.com.zone.
func ZoneFile(zone string) string { return path.Join(NamedDir, zone+".zone") }

// dnsRecord is one A record: a relative owner name and an address.
type dnsRecord struct {
	name, ip, why string
}

// zoneData is one zone's records, in the order they are written.
type zoneData struct {
	name    string
	records []dnsRecord
	notes   []string // comments for names left out
}

// dnsFiles renders named.conf and one zone file per zone.
func (r *renderer) dnsFiles() ([]File, error) {
	zones, err := r.zones()
	if err != nil {
		return nil, err
	}
	conf, err := r.namedConf(zones)
	if err != nil {
		return nil, fmt.Errorf("named.conf: %w", err)
	}
	files := []File{{Path: NamedConf, Mode: 0o644, Content: conf, Role: plan.RoleDNS}}
	for _, z := range zones {
		files = append(files, File{Path: ZoneFile(z.name), Mode: 0o644, Content: r.zoneFile(z), Role: plan.RoleDNS})
	}
	return files, nil
}

// zones lists hostDomain's and serviceDomain's records (one zone when the
// two are the same domain).
func (r *renderer) zones() ([]zoneData, error) {
	c := r.s.Cluster
	for _, d := range []struct{ field, val string }{{"cluster.hostDomain", c.HostDomain}, {"cluster.serviceDomain", c.ServiceDomain}} {
		if !isDomain(d.val) {
			return nil, fmt.Errorf("%w: %s %q: want a DNS domain", ErrHost, d.field, d.val)
		}
	}
	var ns []dnsRecord
	for _, h := range r.s.HostsWithRole(plan.RoleDNS) {
		a, err := ipv4Of(h.Name, h.IP)
		if err != nil {
			return nil, err
		}
		ns = append(ns, dnsRecord{"dns", a, "the name server (" + h.Name + ")"})
	}
	host := zoneData{name: c.HostDomain, records: append([]dnsRecord(nil), ns...)}
	for _, h := range r.s.Hosts {
		a, err := ipv4Of(h.Name, h.IP)
		if err != nil {
			return nil, err
		}
		host.records = append(host.records, dnsRecord{h.Name, a, strings.Join(h.Roles, ", ")})
	}

	svc := zoneData{name: c.ServiceDomain, records: append([]dnsRecord(nil), ns...)}
	if reg, ip, why, ok := r.registryRecord(); ok {
		svc.records = append(svc.records, dnsRecord{reg, ip, why})
	} else if why != "" {
		svc.notes = append(svc.notes, why)
	}
	if vip, err := netip.ParseAddr(c.VIP); err == nil && vip.Is4() && len(r.s.HostsWithRole(plan.RoleLB)) > 0 {
		for _, n := range []string{"traefik", "dashboard"} {
			svc.records = append(svc.records, dnsRecord{n, vip.String(), "the VIP: nginx L7 to Traefik"})
		}
	} else {
		svc.notes = append(svc.notes, "traefik and dashboard: no VIP held by lb hosts, so no L7 entry to point them at")
	}

	if host.name == svc.name {
		host.records = append(host.records, svc.records[len(ns):]...)
		host.notes = append(host.notes, svc.notes...)
		return []zoneData{host}, nil
	}
	return []zoneData{host, svc}, nil
}

// registryRecord is the registry's A record in serviceDomain: registry.host
// (harbor.od.com) → the ops host, which runs Harbor and holds its
// certificate, as the seed's harbor.od.com → 10.4.7.200. Without an ops
// host, a registry.endpoint given as an IP is used. A registry outside
// serviceDomain gets no record here.
func (r *renderer) registryRecord() (name, ip, why string, ok bool) {
	c := r.s.Cluster
	host := r.s.Registry.Host
	if i := strings.LastIndex(host, ":"); i >= 0 {
		host = host[:i]
	}
	suffix := "." + c.ServiceDomain
	if host == "" || !strings.HasSuffix(host, suffix) {
		return "", "", "", false
	}
	name = strings.TrimSuffix(host, suffix)
	if ops := r.s.HostsWithRole(plan.RoleOps); len(ops) > 0 {
		a, err := ipv4Of(ops[0].Name, ops[0].IP)
		if err == nil {
			return name, a, "registry.host on the ops host " + ops[0].Name, true
		}
	}
	ep := r.s.Registry.Endpoint
	if i := strings.LastIndex(ep, ":"); i >= 0 {
		ep = ep[:i]
	}
	if a, err := netip.ParseAddr(ep); err == nil && a.Is4() {
		return name, a.String(), "registry.host at registry.endpoint", true
	}
	return "", "", name + ": registry.host has no ops host and no IP endpoint; add its A record by hand", false
}

// zoneSerial is YYYYMMDDnn: the UTC date of bundle.sourceDateEpoch, then
// two digits of the records' SHA-256. The same spec gives the same serial;
// changed records change it (99 times in 100 on the same date), and a newer
// sourceDateEpoch makes it larger. Every dns host loads its zones from
// these files (no zone transfers), so a serial only needs to differ when
// the data does.
func (r *renderer) zoneSerial(body string) uint32 {
	day := time.Unix(r.s.Bundle.SourceDateEpoch, 0).UTC()
	sum := sha256.Sum256([]byte(body))
	date := uint32(day.Year()*10000 + int(day.Month())*100 + day.Day())
	return date*100 + uint32(sum[0])%100
}

// zoneFile renders a zone in the seed's layout: $TTL 600 for the SOA and
// NS, 60 for the A records.
func (r *renderer) zoneFile(z zoneData) []byte {
	var rec strings.Builder
	for _, n := range z.notes {
		fmt.Fprintf(&rec, "; not here: %s\n", n)
	}
	for _, a := range z.records {
		fmt.Fprintf(&rec, "%-16s A    %-15s ; %s\n", a.name, a.ip, a.why)
	}
	body := rec.String()
	var b strings.Builder
	fmt.Fprintf(&b, "; %s for zone %s. Rendered by kubebake from bundle-spec.yaml.\n", ZoneFile(z.name), z.name)
	b.WriteString("; Do not edit: rebuild the bundle.\n")
	fmt.Fprintf(&b, "$ORIGIN %s.\n", z.name)
	b.WriteString("$TTL 600 ; 10 minutes\n")
	fmt.Fprintf(&b, "@ IN SOA dns.%s. dnsadmin.%s. (\n", z.name, z.name)
	fmt.Fprintf(&b, "        %-10d ; serial (YYYYMMDD of bundle.sourceDateEpoch, then 2 digits of the records' hash)\n", r.zoneSerial(body))
	b.WriteString("        10800      ; refresh (3 hours)\n")
	b.WriteString("        900        ; retry (15 minutes)\n")
	b.WriteString("        604800     ; expire (1 week)\n")
	b.WriteString("        86400      ; minimum (1 day)\n")
	b.WriteString("        )\n")
	fmt.Fprintf(&b, "        NS   dns.%s.\n", z.name)
	b.WriteString("$TTL 60 ; 1 minute\n")
	b.WriteString(body)
	return []byte(b.String())
}

// namedConf is /etc/named.conf for bind 9.11: the seed's options, and the
// zones.
func (r *renderer) namedConf(zones []zoneData) ([]byte, error) {
	self, err := ipv4Of(r.h.Name, r.h.IP)
	if err != nil {
		return nil, err
	}
	var fwd []string
	for _, f := range r.s.Cluster.DNSForwarders {
		a, err := netip.ParseAddr(f)
		if err != nil || !a.Is4() {
			return nil, fmt.Errorf("%w: cluster.dnsForwarders: %q is not an IPv4 address", ErrHost, f)
		}
		fwd = append(fwd, a.String()+";")
	}
	if len(fwd) == 0 && r.s.Cluster.Gateway != "" {
		fwd = []string{r.s.Cluster.Gateway + ";"}
	}
	w := &confWriter{}
	w.line("// /etc/named.conf for %s (role dns). Rendered by kubebake from", r.h.Name)
	w.line("// bundle-spec.yaml. Do not edit: rebuild the bundle. Target: bind 9.11 (CentOS 7).")
	w.line("options {")
	w.line("listen-on port 53 { %s; };", self)
	w.line("listen-on-v6 port 53 { none; };")
	w.line("directory \"%s\";", NamedDir)
	w.line("dump-file \"%s/data/cache_dump.db\";", NamedDir)
	w.line("statistics-file \"%s/data/named_stats.txt\";", NamedDir)
	w.line("memstatistics-file \"%s/data/named_mem_stats.txt\";", NamedDir)
	w.line("pid-file \"/run/named/named.pid\";")
	w.line("session-keyfile \"/run/named/session.key\";")
	w.line("allow-query { any; };")
	if len(fwd) > 0 {
		w.line("forwarders { %s };", strings.Join(fwd, " "))
	}
	w.line("recursion yes;")
	w.line("dnssec-validation no;")
	w.line("};")
	w.line("")
	w.line("logging {")
	w.line("channel default_debug {")
	w.line("file \"data/named.run\";")
	w.line("severity dynamic;")
	w.line("};")
	w.line("};")
	names := make([]string, 0, len(zones))
	for _, z := range zones {
		names = append(names, z.name)
	}
	sort.Strings(names)
	for _, z := range names {
		w.line("")
		w.line("zone \"%s\" IN {", z)
		w.line("type master;")
		w.line("file \"%s\";", path.Base(ZoneFile(z)))
		w.line("};")
	}
	return []byte(w.b.String()), nil
}

// ipv4Of parses a host's IPv4 address.
func ipv4Of(name, ip string) (string, error) {
	a, err := netip.ParseAddr(ip)
	if err != nil || !a.Is4() {
		return "", fmt.Errorf("%w: host %s: ip %q: want IPv4 for an A record", ErrHost, name, ip)
	}
	return a.String(), nil
}

// isDomain accepts dot-separated DNS labels.
func isDomain(d string) bool {
	if d == "" || len(d) > 253 {
		return false
	}
	for _, l := range strings.Split(d, ".") {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for _, c := range l {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}
