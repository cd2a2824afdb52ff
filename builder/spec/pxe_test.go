package spec

import (
	"strings"
	"testing"
)

// pxeSection is a valid pxe: section appended to baseSpec.
const pxeSection = `pxe:
  kernel: centos7/vmlinuz
  initrd: centos7/initrd.img
  repo: http://10.4.7.200/centos/7/os/x86_64
  repos:
    - {name: epel, baseurl: "http://10.4.7.200/epel/7/x86_64"}
  httpBase: http://10.4.7.200:8080
  rootPasswordHashEnv: KUBEBAKE_ROOT_HASH
`

const testEd25519 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl ops@example"

// withPXE gives every host of baseSpec a MAC and appends pxeSection.
func withPXE() []mutation {
	return []mutation{
		{"    roles: [etcd, lb]", "    macs: [\"52:54:00:04:07:0c\"]\n    roles: [etcd, lb]"},
		{"    ip: 10.4.7.21\n", "    ip: 10.4.7.21\n    macs: [\"52:54:00:04:07:15\"]\n"},
		{"    ip: 10.4.7.22\n", "    ip: 10.4.7.22\n    macs: [\"52:54:00:04:07:16\"]\n"},
		{"    ref: registry.k8s.io/coredns/coredns:v1.15.0\n", "    ref: registry.k8s.io/coredns/coredns:v1.15.0\n" + pxeSection},
	}
}

func parseMutated(t *testing.T, muts []mutation) (*Spec, Report) {
	t.Helper()
	y := baseSpec
	for _, m := range muts {
		y = mutate(t, y, m.old, m.new)
	}
	s, r, err := Parse("bundle-spec.yaml", []byte(y))
	if err != nil {
		t.Fatal(err)
	}
	return s, r
}

func TestPXEDefaults(t *testing.T) {
	s, r := parseMutated(t, append(withPXE(), mutation{"    roles: [dns, lb]", "    roles: [dns, lb]\n    pxe: {bootMode: uefi, disk: vda}"}))
	if got := problems(r); len(got) != 0 {
		t.Fatalf("problems:\n%s", strings.Join(got, "\n"))
	}
	x := s.PXE
	if x.Timezone != "Asia/Shanghai" || x.Lang != "en_US.UTF-8" || x.Keyboard != "us" || x.Disk != "sda" ||
		x.BootMode != "bios" || x.BundleDelivery != "http" || strings.Join(x.DNSServers, ",") != "10.4.7.11" {
		t.Errorf("defaults: %+v", x)
	}
	h0, h1 := s.Hosts[0], s.Hosts[1]
	if s.PXEDisk(h0) != "vda" || s.PXEBootMode(h0) != "uefi" || s.PXEDisk(h1) != "sda" || s.PXEBootMode(h1) != "bios" {
		t.Errorf("per-host overrides: %s %s %s %s", s.PXEDisk(h0), s.PXEBootMode(h0), s.PXEDisk(h1), s.PXEBootMode(h1))
	}
}

// TestPXEBrokenSpecs: like TestBrokenSpecs, on baseSpec with withPXE.
func TestPXEBrokenSpecs(t *testing.T) {
	cases := []struct {
		name string
		muts []mutation
		want []string
	}{
		{"host without mac", []mutation{{"    macs: [\"52:54:00:04:07:16\"]\n", ""}}, []string{
			"bundle-spec.yaml:31:5: hosts[3].macs: missing; pxe recognises hosts by MAC — list the MAC of the NIC hdss7-22 boots from, e.g. macs: [\"52:54:00:04:07:15\"]",
		}},
		{"mac shared by two hosts", []mutation{{"    macs: [\"52:54:00:04:07:16\"]", "    macs: [\"52:54:00:04:07:15\"]"}}, []string{
			"bundle-spec.yaml:33:12: hosts[3].macs[0]: 52:54:00:04:07:15 is also hosts[2].macs[0] — give every NIC its own MAC",
		}},
		{"missing kernel and absolute initrd", []mutation{{"  kernel: centos7/vmlinuz\n", ""}, {"  initrd: centos7/initrd.img", "  initrd: /srv/tftp/centos7/initrd.img"}}, []string{
			"bundle-spec.yaml:81:1: pxe.kernel: missing — give the path under the TFTP root where the site put CentOS 7's images/pxeboot file, e.g. centos7/vmlinuz",
			"bundle-spec.yaml:82:11: pxe.initrd: \"/srv/tftp/centos7/initrd.img\" is absolute — write it relative to the TFTP root, e.g. centos7/initrd.img",
		}},
		{"kernel path with comma", []mutation{{"  kernel: centos7/vmlinuz", "  kernel: centos7/vmlinuz,x"}}, []string{
			"bundle-spec.yaml:82:11: pxe.kernel: \"centos7/vmlinuz,x\" is not a plain relative path — use letters, digits, '.', '_', '+', '-' and '/', e.g. centos7/vmlinuz",
		}},
		{"repo not http", []mutation{{"  repo: http://10.4.7.200/centos/7/os/x86_64", "  repo: nfs://10.4.7.200/centos"}}, []string{
			"bundle-spec.yaml:84:9: pxe.repo: unsupported URL scheme in \"nfs://10.4.7.200/centos\" — use http:// or https://, e.g. http://10.4.7.200/centos/7/os/x86_64",
		}},
		{"httpBase missing", []mutation{{"  httpBase: http://10.4.7.200:8080\n", ""}}, []string{
			"bundle-spec.yaml:81:1: pxe.httpBase: missing — set it, e.g. http://10.4.7.200:8080",
		}},
		{"duplicate repo and bad baseurl", []mutation{{"    - {name: epel, baseurl: \"http://10.4.7.200/epel/7/x86_64\"}", "    - {name: epel, baseurl: \"http://10.4.7.200/epel/7/x86_64\"}\n    - {name: epel, baseurl: \"http:///x\"}"}}, []string{
			"bundle-spec.yaml:87:14: pxe.repos[1].name: epel is also pxe.repos[0].name — give every repository its own name",
			"bundle-spec.yaml:87:29: pxe.repos[1].baseurl: \"http:///x\" has no host — write scheme://host/path, e.g. http://10.4.7.200/epel/7/x86_64",
		}},
		{"lb hosts and no epel", []mutation{{"  repos:\n    - {name: epel, baseurl: \"http://10.4.7.200/epel/7/x86_64\"}\n", ""}}, []string{
			"bundle-spec.yaml:81:1: warning: pxe.repos: hosts with role lb (hdss7-11) install nginx, which CentOS 7 has only in EPEL — add the site's EPEL mirror, e.g. {name: epel, baseurl: http://10.4.7.200/epel/7/x86_64}",
		}},
		{"no root password", []mutation{{"  rootPasswordHashEnv: KUBEBAKE_ROOT_HASH\n", ""}}, []string{
			"bundle-spec.yaml:81:1: pxe: no root password hash — set rootPasswordHashFile to a file holding a crypt hash (openssl passwd -6), or rootPasswordHashEnv to the variable holding one",
		}},
		{"both root password sources", []mutation{{"  rootPasswordHashEnv: KUBEBAKE_ROOT_HASH", "  rootPasswordHashEnv: KUBEBAKE_ROOT_HASH\n  rootPasswordHashFile: root.hash"}}, []string{
			"bundle-spec.yaml:88:24: pxe.rootPasswordHashEnv: both rootPasswordHashFile and rootPasswordHashEnv are set — keep one of rootPasswordHashFile and rootPasswordHashEnv",
		}},
		{"hash in the spec", []mutation{{"  rootPasswordHashEnv: KUBEBAKE_ROOT_HASH", "  rootPasswordHashEnv: $6$salt$abc"}}, []string{
			"bundle-spec.yaml:88:24: pxe.rootPasswordHashEnv: \"$6$salt$abc\" is not an environment variable name — name an environment variable, e.g. KUBEBAKE_ROOT_HASH; the hash itself never goes in the spec",
		}},
		{"hash in place of a file", []mutation{{"  rootPasswordHashEnv: KUBEBAKE_ROOT_HASH", "  rootPasswordHashFile: $6$salt$abc"}}, []string{
			"bundle-spec.yaml:88:25: pxe.rootPasswordHashFile: looks like a hash, not a file name — put the hash in a file and name the file here",
		}},
		{"bad timezone, lang, keyboard", []mutation{{"  httpBase: http://10.4.7.200:8080", "  httpBase: http://10.4.7.200:8080\n  timezone: CST\n  lang: English\n  keyboard: \"US Intl\""}}, []string{
			"bundle-spec.yaml:88:13: pxe.timezone: \"CST\" is not a time zone — write an Area/City zone, e.g. Asia/Shanghai",
			"bundle-spec.yaml:89:9: pxe.lang: \"English\" is not a locale — write a locale, e.g. en_US.UTF-8",
			"bundle-spec.yaml:90:13: pxe.keyboard: \"US Intl\" is not a keymap — write a console keymap, e.g. us",
		}},
		{"bad dns and ntp", []mutation{{"  httpBase: http://10.4.7.200:8080", "  httpBase: http://10.4.7.200:8080\n  dnsServers: [ns1]\n  ntpServers: [\"ntp .od.com\"]"}}, []string{
			"bundle-spec.yaml:88:16: pxe.dnsServers[0]: \"ns1\" is not an IPv4 address — write an IPv4 address",
			"bundle-spec.yaml:89:16: pxe.ntpServers[0]: \"ntp .od.com\" is not an NTP server — write a host name or an IPv4 address",
		}},
		{"bad ssh keys", []mutation{{"  httpBase: http://10.4.7.200:8080", "  httpBase: http://10.4.7.200:8080\n  sshAuthorizedKeys:\n    - \"" + testEd25519 + "\"\n    - \"-----BEGIN OPENSSH PRIVATE KEY----- b3BlbnNzaC1rZXktdjEAAAAA\"\n    - ssh-dss AAAAB3NzaC1kc3MAAACBAP\n    - ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"}}, []string{
			"bundle-spec.yaml:90:7: pxe.sshAuthorizedKeys[1]: this is a private key; give the public one (.pub) — paste one public key line (ssh-ed25519 AAAA… comment) from a .pub file",
			"bundle-spec.yaml:91:7: pxe.sshAuthorizedKeys[2]: key type \"ssh-dss\" is not one of ssh-rsa, ssh-ed25519, ecdsa-sha2-nistp256, ecdsa-sha2-nistp384, ecdsa-sha2-nistp521 — paste one public key line (ssh-ed25519 AAAA… comment) from a .pub file",
			"bundle-spec.yaml:92:7: pxe.sshAuthorizedKeys[3]: the key data does not match its type ssh-rsa — paste one public key line (ssh-ed25519 AAAA… comment) from a .pub file",
		}},
		{"disk, boot mode, delivery", []mutation{{"  httpBase: http://10.4.7.200:8080", "  httpBase: http://10.4.7.200:8080\n  disk: /dev/sda\n  bootMode: efi\n  bundleDelivery: usb\n  tftpRoot: srv/tftp"}}, []string{
			"bundle-spec.yaml:88:9: pxe.disk: \"/dev/sda\": give the kernel name without /dev/ — write sda",
			"bundle-spec.yaml:89:13: pxe.bootMode: unknown boot mode \"efi\" — use bios or uefi",
			"bundle-spec.yaml:90:19: pxe.bundleDelivery: unknown bundle delivery \"usb\" — use http (the kickstart fetches it from httpBase) or initrd (it rides in the initrd overlay)",
			"bundle-spec.yaml:91:13: pxe.tftpRoot: \"srv/tftp\" is not an absolute path — write an absolute path without spaces, e.g. /srv/tftp",
		}},
		{"host overrides", []mutation{{"    roles: [dns, lb]", "    roles: [dns, lb]\n    pxe: {disk: \"sd a\", bootMode: UEFI}"}}, []string{
			"bundle-spec.yaml:23:17: hosts[0].pxe.disk: \"sd a\" is not a disk name — write the disk's kernel name, e.g. sda, vda or nvme0n1",
			"bundle-spec.yaml:23:35: hosts[0].pxe.bootMode: unknown boot mode \"UEFI\" — use bios or uefi",
		}},
		{"misspelt pxe field", []mutation{{"  httpBase: http://10.4.7.200:8080", "  httpbase: http://10.4.7.200:8080"}}, []string{
			"bundle-spec.yaml:87:3: pxe.httpbase: unknown field \"httpbase\" — did you mean \"httpBase\"?",
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, r := parseMutated(t, append(withPXE(), tc.muts...))
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

func TestHostPXEWithoutSection(t *testing.T) {
	_, r := parseMutated(t, []mutation{{"    roles: [dns, lb]", "    roles: [dns, lb]\n    pxe: {disk: vda}"}})
	want := "bundle-spec.yaml:23:5: warning: hosts[0].pxe: there is no pxe: section, so nothing uses it — add a pxe: section, or remove hosts[].pxe"
	if got := strings.Join(problems(r), "\n"); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}

func TestCheckSSHPublicKey(t *testing.T) {
	if msg := CheckSSHPublicKey(testEd25519); msg != "" {
		t.Errorf("valid key refused: %s", msg)
	}
	secret := "-----BEGIN OPENSSH PRIVATE KEY-----SECRETBYTES"
	if msg := CheckSSHPublicKey(secret); strings.Contains(msg, "SECRETBYTES") || msg == "" {
		t.Errorf("private key: %q", msg)
	}
}
