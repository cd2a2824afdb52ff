package pxe

import (
	"regexp"
	"strings"
	"testing"

	"github.com/kubebake/kubebake/builder/spec"
)

func testSecrets(s *spec.Spec) Secrets {
	return Secrets{RootHash: testHash, AuthorizedKeys: s.PXE.SSHAuthorizedKeys}
}

// TestKickstartGolden: the seed's five hosts over HTTP, and hdss7-21 with
// the bundle in the initrd overlay.
func TestKickstartGolden(t *testing.T) {
	s := seedWithPXE(t, t.TempDir())
	header := regexp.MustCompile(`^# kubebake: host=([a-z0-9-]+) ip=([0-9.]+) bundle-sha256=([0-9a-f]{64})\n`)
	for _, h := range s.Hosts {
		ks, err := Kickstart(s, h, testSecrets(s), fixedSHA)
		if err != nil {
			t.Fatal(err)
		}
		m := header.FindSubmatch(ks)
		if m == nil || string(m[1]) != h.Name || string(m[2]) != h.IP || string(m[3]) != fixedSHA {
			t.Errorf("%s: header line is %q", h.Name, strings.SplitN(string(ks), "\n", 2)[0])
		}
		golden(t, "ks-"+h.Name+".cfg", ks)
	}
	si := seedWithPXE(t, t.TempDir(), "\n  bundleDelivery: http", "\n  bundleDelivery: initrd")
	h, _ := si.Host("hdss7-21")
	ks, err := Kickstart(si, h, testSecrets(si), fixedSHA)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "ks-initrd-hdss7-21.cfg", ks)
}

func TestPackages(t *testing.T) {
	for _, tc := range []struct {
		roles []string
		want  string
	}{
		{[]string{"etcd", "master", "node"}, "chrony conntrack-tools curl ipset iptables-services ipvsadm nfs-utils socat tar"},
		{[]string{"dns", "lb"}, "bind bind-utils chrony curl keepalived nginx nginx-mod-stream tar"},
		{[]string{"ops"}, "chrony curl nfs-utils tar"},
		{[]string{"etcd"}, "chrony curl tar"},
	} {
		if got := strings.Join(Packages(spec.Host{Roles: tc.roles}), " "); got != tc.want {
			t.Errorf("%v: %s, want %s", tc.roles, got, tc.want)
		}
	}
}

func TestCheckKickstart(t *testing.T) {
	ok := "text\n# comment\nrootpw --iscrypted $6$x$y\npart / --fstype=xfs --grow\n%packages --nobase\n@core\n%end\n%post --erroronfail --log=/root/x.log\nanything goes here\n%end\n"
	if err := CheckKickstart([]byte(ok)); err != nil {
		t.Fatalf("valid kickstart refused: %v", err)
	}
	for _, tc := range []struct{ name, ks, want string }{
		{"sshkey is not RHEL 7.0", "sshkey --username=root \"ssh-ed25519 AAAA\"\n", `line 1: command "sshkey" is not in the RHEL 7 allow-list`},
		{"autopart", "text\nautopart\n", `line 2: command "autopart" is not in the RHEL 7 allow-list`},
		{"unknown option", "network --device=eth0 --bondslaves=eth1\n", "line 1: network option --bondslaves is not in the RHEL 7 allow-list"},
		{"argument to a flag command", "zerombr yes\n", `line 1: zerombr takes no argument "yes"`},
		{"pre option", "%pre --nochroot\necho\n%end\n", "line 1: %pre option --nochroot is not in the RHEL 7 allow-list"},
		{"traceback section", "%traceback\necho\n%end\n", "line 1: section %traceback is not in the RHEL 7 allow-list"},
		{"post option", "%post --interpreter=/bin/bash --nochroot --something\n%end\n", "line 1: %post option --something is not in the RHEL 7 allow-list"},
		{"unclosed section", "%packages --nobase\n@core\n", "section %packages has no %end"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckKickstart([]byte(tc.ks))
			if err == nil || err.Error() != tc.want {
				t.Errorf("err = %v, want %s", err, tc.want)
			}
		})
	}
}

func TestBootEntriesGolden(t *testing.T) {
	s := seedWithPXE(t, t.TempDir())
	for _, name := range []string{"hdss7-21", "hdss7-200"} {
		h, _ := s.Host(name)
		pl, err := PXELinux(s, h, h.MACs[0])
		if err != nil {
			t.Fatal(err)
		}
		golden(t, "pxelinux-"+name, pl)
		gr, err := Grub(s, h, h.MACs[0])
		if err != nil {
			t.Fatal(err)
		}
		golden(t, "grub-"+name, gr)
		ip, err := IPXE(s, h)
		if err != nil {
			t.Fatal(err)
		}
		golden(t, "ipxe-"+name, ip)
	}
	si := seedWithPXE(t, t.TempDir(), "\n  bundleDelivery: http", "\n  bundleDelivery: initrd")
	h, _ := si.Host("hdss7-21")
	ip, err := IPXE(si, h)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "ipxe-initrd-hdss7-21", ip)
	dm, err := Dnsmasq(s, s.PXE.TFTPRoot)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "dnsmasq.conf", dm)
	if got := PXELinuxName("52:54:00:04:07:15"); got != "01-52-54-00-04-07-15" {
		t.Errorf("PXELinuxName = %s", got)
	}
	if got := GrubName("52:54:00:04:07:15"); got != "grub.cfg-01-52:54:00:04:07:15" {
		t.Errorf("GrubName = %s", got)
	}
}
