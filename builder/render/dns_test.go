package render

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// namedChroot lays out a dns host's rendered files in a directory as they
// land on the host: /etc/named.conf and /var/named/<zone>.zone.
func namedChroot(t *testing.T, host string) string {
	t.Helper()
	s := seedSpec()
	files, err := Host(s, seedHost(t, s, host))
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	n := 0
	for _, f := range files {
		if f.Path != NamedConf && !strings.HasPrefix(f.Path, NamedDir+"/") {
			continue
		}
		n++
		p := filepath.Join(root, filepath.FromSlash(f.Path))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, f.Content, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if n != 3 {
		t.Fatalf("%s: %d bind files, want named.conf and two zones", host, n)
	}
	return root
}

// TestNamedConfReal: Debian's named-checkconf (bind 9.18) reads named.conf
// chrooted (-t) where the host has it and loads every zone (-z) from the
// directory named.conf names. No substitution: the file avoids what 9.18
// refuses (dnssec-enable, see dns.go).
func TestNamedConfReal(t *testing.T) {
	checkconf := needValidator(t, "named-checkconf", "bind9-utils")
	root := namedChroot(t, "hdss7-11")
	out, err := run(t, checkconf, "-t", root, "-z", NamedConf)
	t.Logf("named-checkconf -t %s -z %s:\n%s", root, NamedConf, out)
	if err != nil {
		t.Fatalf("named-checkconf: %v", err)
	}
	for _, z := range []string{"host.com", "od.com"} {
		if !regexp.MustCompile(`zone ` + regexp.QuoteMeta(z) + `/IN: loaded serial \d{10}`).MatchString(out) {
			t.Errorf("zone %s not loaded", z)
		}
	}
}

// TestNamedZonesReal checks each zone file with named-checkzone.
func TestNamedZonesReal(t *testing.T) {
	checkzone := needValidator(t, "named-checkzone", "bind9-utils")
	root := namedChroot(t, "hdss7-11")
	for _, z := range []string{"host.com", "od.com"} {
		p := filepath.Join(root, filepath.FromSlash(ZoneFile(z)))
		out, err := run(t, checkzone, "-k", "fail", "-n", "fail", "-m", "fail", "-M", "fail", "-S", "fail", z, p)
		t.Logf("named-checkzone %s %s:\n%s", z, ZoneFile(z), out)
		if err != nil || !strings.HasSuffix(strings.TrimSpace(out), "OK") {
			t.Errorf("named-checkzone %s: %v", z, err)
		}
	}
}

// TestNamedCheckCatches: the harness fails on a directive 9.18 refuses.
func TestNamedCheckCatches(t *testing.T) {
	checkconf := needValidator(t, "named-checkconf", "bind9-utils")
	root := namedChroot(t, "hdss7-11")
	p := filepath.Join(root, "etc", "named.conf")
	b, _ := os.ReadFile(p)
	b = []byte(strings.Replace(string(b), "    dnssec-validation no;\n", "    dnssec-validation no;\n    dnssec-enable no;\n", 1))
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := run(t, checkconf, "-t", root, "-z", NamedConf); err == nil {
		t.Errorf("named-checkconf accepted dnssec-enable:\n%s", out)
	}
}

// bind911Options are the options named.conf may use: every one is in bind
// 9.11's ARM (CentOS 7's bind-9.11.4) and in 9.18's.
var bind911Options = map[string]bool{
	"listen-on": true, "listen-on-v6": true, "directory": true, "dump-file": true,
	"statistics-file": true, "memstatistics-file": true, "pid-file": true,
	"session-keyfile": true, "allow-query": true, "forwarders": true,
	"recursion": true, "dnssec-validation": true,
}

func TestNamedConfOptions911(t *testing.T) {
	conf := string(renderFile(t, seedSpec(), "hdss7-11", NamedConf))
	body := conf[strings.Index(conf, "options {"):strings.Index(conf, "\n};\n")]
	for _, l := range strings.Split(body, "\n")[1:] {
		opt := strings.Fields(l)[0]
		if !bind911Options[opt] {
			t.Errorf("option %s is not on the bind 9.11 list", opt)
		}
	}
	for _, want := range []string{"listen-on port 53 { 10.4.7.11; };", "forwarders { 10.4.7.254; };", "allow-query { any; };", "recursion yes;", "dnssec-validation no;"} {
		if !strings.Contains(conf, want) {
			t.Errorf("named.conf lacks %q", want)
		}
	}
}

// zoneA reads a zone file's A records: name → addresses.
func zoneA(b []byte) map[string][]string {
	m := map[string][]string{}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) >= 3 && f[1] == "A" {
			m[f[0]] = append(m[f[0]], f[2])
		}
	}
	return m
}

func TestZoneRecords(t *testing.T) {
	s := seedSpec()
	host := zoneA(renderFile(t, s, "hdss7-11", ZoneFile("host.com")))
	for _, h := range s.Hosts {
		if got := host[h.Name]; len(got) != 1 || got[0] != h.IP {
			t.Errorf("host.com %s = %v, want %s", h.Name, got, h.IP)
		}
	}
	svc := zoneA(renderFile(t, s, "hdss7-11", ZoneFile("od.com")))
	for name, ip := range map[string]string{"dns": "10.4.7.11", "harbor": "10.4.7.200", "traefik": "10.4.7.10", "dashboard": "10.4.7.10"} {
		if got := svc[name]; len(got) != 1 || got[0] != ip {
			t.Errorf("od.com %s = %v, want %s", name, got, ip)
		}
	}

	// A registry outside serviceDomain gets no record; one inside it
	// without an ops host follows registry.endpoint.
	s.Registry.Host = "registry.example.org"
	if svc := zoneA(renderFile(t, s, "hdss7-11", ZoneFile("od.com"))); len(svc["harbor"]) != 0 || len(svc["registry"]) != 0 {
		t.Errorf("od.com has a record for a registry outside it: %v", svc)
	}
	s = seedSpec()
	s.Hosts = s.Hosts[:4]
	s.Registry.Host, s.Registry.Endpoint = "harbor.od.com:8443", "10.4.7.250:8443"
	if got := zoneA(renderFile(t, s, "hdss7-11", ZoneFile("od.com")))["harbor"]; len(got) != 1 || got[0] != "10.4.7.250" {
		t.Errorf("harbor without ops host = %v, want registry.endpoint's 10.4.7.250", got)
	}
}

var serialRE = regexp.MustCompile(`(\d{10}) ; serial`)

func serialOf(t *testing.T, b []byte) string {
	t.Helper()
	m := serialRE.FindSubmatch(b)
	if m == nil {
		t.Fatalf("no serial in\n%s", b)
	}
	return string(m[1])
}

// TestZoneSerial: the same spec gives the same serial, starting with the
// date of bundle.sourceDateEpoch; changed records change it.
func TestZoneSerial(t *testing.T) {
	a := serialOf(t, renderFile(t, seedSpec(), "hdss7-11", ZoneFile("host.com")))
	b := serialOf(t, renderFile(t, seedSpec(), "hdss7-11", ZoneFile("host.com")))
	if a != b || !strings.HasPrefix(a, "20251129") {
		t.Errorf("serials %s, %s: want equal, dated 20251129 (bundle.sourceDateEpoch 1764374400)", a, b)
	}
	s := seedSpec()
	s.Hosts[4].IP = "10.4.7.201"
	if c := serialOf(t, renderFile(t, s, "hdss7-11", ZoneFile("host.com"))); c == a {
		t.Errorf("serial %s unchanged after hdss7-200 moved", c)
	}
	// od.com does not hold hdss7-200's host record, only harbor's.
	od := serialOf(t, renderFile(t, seedSpec(), "hdss7-11", ZoneFile("od.com")))
	if c := serialOf(t, renderFile(t, s, "hdss7-11", ZoneFile("od.com"))); c == od {
		t.Errorf("od.com serial %s unchanged after harbor moved", c)
	}
}
