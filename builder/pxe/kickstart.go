package pxe

import (
	"bytes"
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"text/template"

	"github.com/kubebake/kubebake/builder/spec"
	"github.com/kubebake/kubebake/firstboot/plan"
)

// Paths on the installed host and in the installer. The chroot %post
// downloads (http) or finds (initrd) the bundle at StagedBundle, checks it,
// unpacks it into InstallDir and removes it.
const (
	InstallDir   = "/opt/kubebake"
	StagedDir    = "/var/tmp/kubebake"
	FirstbootSvc = "kubebake-firstboot.service"
	// RunBundle is where the overlay's dracut pre-pivot hook leaves the
	// bundle: dracut's /run is moved into the installer's root at
	// switch-root, so stage 2 (anaconda) sees it there.
	RunBundle = "/run/install/kubebake/bundle.tar.gz"
	// PostLog and NochrootLog are the %post logs on the installed host.
	PostLog     = "/root/kubebake-ks-post.log"
	NochrootLog = "/mnt/sysimage/root/kubebake-ks-post-nochroot.log"
)

// rolePackages are the CentOS 7 packages each role needs at first boot,
// beyond @core. Names are CentOS 7's (base and updates repositories),
// except nginx and nginx-mod-stream, which CentOS 7 has only in EPEL 7
// (nginx 1.20; the L4 proxy for the apiservers needs the stream module).
var rolePackages = map[string][]string{
	"":              {"chrony", "curl", "tar"}, // every host
	plan.RoleNode:   {"conntrack-tools", "ipset", "iptables-services", "ipvsadm", "nfs-utils", "socat"},
	plan.RoleLB:     {"keepalived", "nginx", "nginx-mod-stream"},
	plan.RoleDNS:    {"bind", "bind-utils"},
	plan.RoleOps:    {"nfs-utils"},
	plan.RoleMaster: {},
	plan.RoleEtcd:   {},
}

// Packages returns the packages h's kickstart installs besides @core,
// sorted and without repeats.
func Packages(h spec.Host) []string {
	set := map[string]bool{}
	for _, p := range rolePackages[""] {
		set[p] = true
	}
	for _, r := range h.Roles {
		for _, p := range rolePackages[r] {
			set[p] = true
		}
	}
	out := make([]string, 0, len(set))
	for p := range set {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// ksData is what the kickstart template sees.
type ksData struct {
	Host, IP, FQDN, Roles    string
	MAC, Netmask, Gateway    string
	Nameservers              string
	Repo                     string
	Repos                    []spec.PXERepo
	Lang, Keyboard, Timezone string
	NTPServers               string
	RootHash                 string
	Keys                     []string
	DisableSELinux           bool
	DisableFirewalld         bool
	DisableSwap              bool
	Disk, BootMode           string
	Delivery                 string
	SHA256, BundleURL        string
	Staged                   string
	Packages                 []string
	Consts                   map[string]string
}

// Kickstart renders h's kickstart for CentOS 7's anaconda. bundleSHA256 is
// the hex digest of out/<host>.tar.gz, baked in so %post refuses any other
// bundle. Every directive it writes is checked against the RHEL 7
// allow-list (CheckKickstart) before it is returned.
func Kickstart(s *spec.Spec, h spec.Host, sec Secrets, bundleSHA256 string) ([]byte, error) {
	x := s.PXE
	if x == nil {
		return nil, ErrNoPXE
	}
	if len(h.MACs) == 0 {
		return nil, fmt.Errorf("host %s: no MAC", h.Name)
	}
	nodeNet, err := netip.ParsePrefix(s.Cluster.NodeNetwork)
	if err != nil || !nodeNet.Addr().Is4() {
		return nil, fmt.Errorf("cluster.nodeNetwork %q: not an IPv4 CIDR", s.Cluster.NodeNetwork)
	}
	d := ksData{
		Host: h.Name, IP: h.IP, FQDN: s.FQDN(h), Roles: strings.Join(h.Roles, ", "),
		MAC: h.MACs[0], Netmask: netmask(nodeNet.Bits()), Gateway: s.Cluster.Gateway,
		Nameservers: strings.Join(x.DNSServers, ","),
		Repo:        x.Repo, Repos: x.Repos,
		Lang: x.Lang, Keyboard: x.Keyboard, Timezone: x.Timezone, NTPServers: strings.Join(x.NTPServers, ","),
		RootHash: sec.RootHash, Keys: sec.AuthorizedKeys,
		DisableSELinux:   s.Target.DisableSELinux == nil || *s.Target.DisableSELinux,
		DisableFirewalld: s.Target.DisableFirewalld == nil || *s.Target.DisableFirewalld,
		DisableSwap:      s.Target.DisableSwap == nil || *s.Target.DisableSwap,
		Disk:             s.PXEDisk(h), BootMode: s.PXEBootMode(h),
		Delivery: x.BundleDelivery, SHA256: bundleSHA256,
		BundleURL: strings.TrimRight(x.HTTPBase, "/") + "/bundles/" + h.Name + ".tar.gz",
		Staged:    StagedDir + "/" + h.Name + ".tar.gz",
		Packages:  Packages(h),
		Consts: map[string]string{"InstallDir": InstallDir, "StagedDir": StagedDir, "Unit": FirstbootSvc,
			"RunBundle": RunBundle, "PostLog": PostLog, "NochrootLog": NochrootLog},
	}
	var b bytes.Buffer
	if err := ksTemplate.Execute(&b, d); err != nil {
		return nil, fmt.Errorf("kickstart %s: %w", h.Name, err)
	}
	if err := CheckKickstart(b.Bytes()); err != nil {
		return nil, fmt.Errorf("kickstart %s: %w", h.Name, err)
	}
	return b.Bytes(), nil
}

func netmask(bits int) string {
	m := uint32(0xffffffff) << (32 - bits)
	return netip.AddrFrom4([4]byte{byte(m >> 24), byte(m >> 16), byte(m >> 8), byte(m)}).String()
}

// HeaderLine is the machine-readable first line of every kickstart.
func HeaderLine(host, ip, sha string) string {
	return fmt.Sprintf("# kubebake: host=%s ip=%s bundle-sha256=%s", host, ip, sha)
}

var ksTemplate = template.Must(template.New("ks").Funcs(template.FuncMap{"header": HeaderLine}).Parse(ksText))

// ksText is the kickstart. Directives and options: RHEL 7's (pykickstart's
// RHEL7Handler; see allowed in directives.go). Not used on purpose:
// sshkey (not in RHEL 7.0's handler; %post writes authorized_keys instead),
// autopart (it would create swap), reqpart (7.2+).
const ksText = `{{header .Host .IP .SHA256}}
# Kickstart for {{.FQDN}} (roles: {{.Roles}}), CentOS 7. Written by kubebake
# pxe from bundle-spec.yaml; regenerate it rather than editing it.
# Holds root's password hash: serve it to this host only.
text
skipx
firstboot --disable
lang {{.Lang}}
keyboard --vckeymap={{.Keyboard}} --xlayouts={{.Keyboard}}
timezone {{.Timezone}} --utc{{if .NTPServers}} --ntpservers={{.NTPServers}}{{end}}
# CentOS packages come from the site's mirror only.
url --url={{.Repo}}
{{- range .Repos}}
repo --name={{.Name}} --baseurl={{.BaseURL}}
{{- end}}
network --device={{.MAC}} --bootproto=static --ip={{.IP}} --netmask={{.Netmask}} --gateway={{.Gateway}} --nameserver={{.Nameservers}} --hostname={{.FQDN}} --onboot=yes --activate --noipv6
rootpw --iscrypted {{.RootHash}}
{{if .DisableSELinux}}selinux --disabled{{else}}selinux --enforcing{{end}}
{{if .DisableFirewalld}}firewall --disabled{{else}}firewall --enabled --ssh{{end}}
services --enabled=chronyd
# Disk {{.Disk}}, {{.BootMode}} boot; everything on it is erased.
ignoredisk --only-use={{.Disk}}
zerombr
clearpart --all --initlabel --drives={{.Disk}}
bootloader --location=mbr --boot-drive={{.Disk}}
{{- if eq .BootMode "uefi"}}
part /boot/efi --fstype=efi --size=200 --ondisk={{.Disk}}
{{- end}}
part /boot --fstype=xfs --size=1024 --ondisk={{.Disk}}
# No swap: {{if .DisableSwap}}target.disableSwap is set (the kubelet refuses swap).{{else}}kubebake never creates swap; add a part line if the site wants one.{{end}}
part / --fstype=xfs --size=4096 --grow --ondisk={{.Disk}}
reboot

{{- if eq .Delivery "http"}}
# Before anything touches the disk: is this host's bundle there for it? A
# machine that boots the network before its disk comes back here after the
# install; with kubebake serve --max-fetches its bundle then answers 410,
# and the install stops here instead of erasing a working host.
%pre --erroronfail --interpreter=/bin/bash --log=/tmp/kubebake-ks-pre.log
code=000
for try in 1 2 3 4 5 6; do
	code=$(curl -sS -I -o /dev/null --connect-timeout 10 -w '%{http_code}' {{.BundleURL}}) || true
	case "$code" in
	200) exit 0 ;;
	403 | 404 | 410) break ;;
	esac
	sleep 3
done
echo "kubebake: {{.BundleURL}} answers HTTP $code: not installing, the disk is left as it is (the server's log says why; 410 means this host was already installed)" >&2
exit 1
%end
{{end}}
%packages --nobase
@core
{{- range .Packages}}
{{.}}
{{- end}}
%end
{{if eq .Delivery "initrd"}}
# The bundle rode in this host's initrd overlay; dracut's pre-pivot hook
# moved it to {{.Consts.RunBundle}}. Copy it into the new system.
%post --nochroot --erroronfail --interpreter=/bin/bash --log={{.Consts.NochrootLog}}
set -euo pipefail
src={{.Consts.RunBundle}}
if [ ! -s "$src" ]; then
	echo "kubebake: $src is missing: the initrd overlay was not loaded or its hook did not run" >&2
	exit 1
fi
mkdir -p /mnt/sysimage{{.Consts.StagedDir}}
cp "$src" /mnt/sysimage{{.Staged}}
%end
{{end}}
%post --erroronfail --interpreter=/bin/bash --log={{.Consts.PostLog}}
set -euo pipefail
bundle={{.Staged}}
want={{.SHA256}}
mkdir -p {{.Consts.StagedDir}}
{{- if eq .Delivery "http"}}
# Each try resumes where the last one stopped (-C -): kubebake serve
# --max-fetches counts bytes sent, so a restart from zero could be refused.
# 403, 404 and 410 are final: another host's address, a missing bundle,
# the fetch budget spent.
ok=
for try in 1 2 3 4 5 6; do
	code=$(curl -fsS -C - --connect-timeout 10 -w '%{http_code}' -o "$bundle.part" {{.BundleURL}}) && { ok=1; break; }
	case "${code:-000}" in
	403 | 404 | 410)
		echo "kubebake: {{.BundleURL}}: HTTP $code (the server's log says why)" >&2
		exit 1
		;;
	esac
	echo "kubebake: bundle download try $try failed (HTTP ${code:-000}); resuming in 3s" >&2
	sleep 3
done
[ -n "$ok" ] || { echo "kubebake: cannot download {{.BundleURL}}" >&2; exit 1; }
mv -f "$bundle.part" "$bundle"
{{- else}}
if [ ! -s "$bundle" ]; then
	echo "kubebake: $bundle is missing: the nochroot %post did not copy it" >&2
	exit 1
fi
{{- end}}
echo "$want  $bundle" | sha256sum -c -
mkdir -p {{.Consts.InstallDir}}
tar -xzf "$bundle" -C {{.Consts.InstallDir}}
rm -f "$bundle"
cp {{.Consts.InstallDir}}/rootfs/etc/systemd/system/{{.Consts.Unit}} /etc/systemd/system/{{.Consts.Unit}}
systemctl enable {{.Consts.Unit}}
{{- if .Keys}}
mkdir -p /root/.ssh
chmod 0700 /root/.ssh
cat >/root/.ssh/authorized_keys <<'KUBEBAKE_AUTHORIZED_KEYS'
{{- range .Keys}}
{{.}}
{{- end}}
KUBEBAKE_AUTHORIZED_KEYS
chmod 0600 /root/.ssh/authorized_keys
if command -v restorecon >/dev/null 2>&1; then restorecon -R /root/.ssh; fi
{{- end}}
echo "kubebake: bundle {{.Host}} ($want) installed in {{.Consts.InstallDir}}; {{.Consts.Unit}} enabled"
%end
`
