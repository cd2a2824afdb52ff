package pxe

import (
	"bytes"
	"fmt"
	"net/netip"
	"strings"

	"github.com/kubebake/kubebake/builder/spec"
)

// MACDashes is a MAC as pxelinux names its per-MAC file: 52-54-00-04-07-15.
func MACDashes(mac string) string { return strings.ReplaceAll(strings.ToLower(mac), ":", "-") }

// PXELinuxName is tftp/pxelinux.cfg/<this>: 01-52-54-00-04-07-15 (ARP type 1).
func PXELinuxName(mac string) string { return "01-" + MACDashes(mac) }

// GrubName is tftp/<this>: grub.cfg-01-52:54:00:04:07:15, the per-MAC file
// RHEL 7's grubx64.efi looks for (net_default_mac).
func GrubName(mac string) string { return "grub.cfg-01-" + strings.ToLower(mac) }

// pxelinuxLocal is pxelinux.cfg/default and grubLocal the top-level
// grub.cfg: what a machine without a per-MAC entry gets. pxelinux falls
// back to default after 01-<mac> and the IP-derived names; GRUB to grub.cfg
// after grub.cfg-01-<mac>. LOCALBOOT -1 and exit hand the machine back to
// the firmware's next boot device.
const (
	pxelinuxLocal = `# kubebake: no entry for this machine's MAC; boot the local disk.
DEFAULT local
PROMPT 0
TIMEOUT 1
LABEL local
  LOCALBOOT -1
`
	grubLocal = `# kubebake: no entry for this machine's MAC; back to the firmware's next boot device.
set default=0
set timeout=1
menuentry 'Local disk (no kubebake entry for this machine)' {
  exit
}
`
)

// kernelArgs are the installer's arguments, shared by every boot entry.
//
// ip=<client>::<gateway>:<netmask>:<hostname>::none is dracut's static form
// with the interface left empty; BOOTIF=01-<mac> (pxelinux's IPAPPEND 2
// format, written out because the entry is per MAC anyway and GRUB and iPXE
// have no IPAPPEND) tells dracut which NIC that is: with a single ip= no
// bootdev is needed, and BOOTIF's interface is put first in the list
// dracut brings up (dracut modules.d/40network/parse-ip-opts.sh).
// nameserver= is dracut's; inst.repo= is where stage 2 (LiveOS) and the
// packages come from.
func kernelArgs(s *spec.Spec, h spec.Host, mac string) (string, error) {
	nodeNet, err := netip.ParsePrefix(s.Cluster.NodeNetwork)
	if err != nil {
		return "", fmt.Errorf("cluster.nodeNetwork: %w", err)
	}
	args := []string{
		"inst.repo=" + s.PXE.Repo,
		fmt.Sprintf("ip=%s::%s:%s:%s::none", h.IP, s.Cluster.Gateway, netmask(nodeNet.Bits()), s.FQDN(h)),
	}
	for _, d := range s.PXE.DNSServers {
		args = append(args, "nameserver="+d)
	}
	args = append(args, "BOOTIF="+PXELinuxName(mac), "inst.text")
	return strings.Join(args, " "), nil
}

func entryHeader(b *bytes.Buffer, h spec.Host, mac string) {
	fmt.Fprintf(b, "# kubebake: host=%s ip=%s mac=%s\n", h.Name, h.IP, mac)
}

// PXELinux renders tftp/pxelinux.cfg/01-<mac> (BIOS): the installer with the
// host's overlay as a second initrd and the kickstart from inside it.
func PXELinux(s *spec.Spec, h spec.Host, mac string) ([]byte, error) {
	args, err := kernelArgs(s, h, mac)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	entryHeader(&b, h, mac)
	fmt.Fprintf(&b, "DEFAULT kubebake\nPROMPT 0\nTIMEOUT 1\nLABEL kubebake\n")
	fmt.Fprintf(&b, "  MENU LABEL Install CentOS 7 as %s (kubebake)\n", s.FQDN(h))
	fmt.Fprintf(&b, "  KERNEL %s\n", s.PXE.Kernel)
	fmt.Fprintf(&b, "  APPEND initrd=%s,%s inst.ks=file:/ks.cfg %s\n", s.PXE.Initrd, overlayRel(h.Name), args)
	return b.Bytes(), nil
}

// Grub renders tftp/grub.cfg-01-<mac> (UEFI, RHEL 7's grub2: linuxefi and
// initrdefi; several initrds on one initrdefi line are concatenated).
func Grub(s *spec.Spec, h spec.Host, mac string) ([]byte, error) {
	args, err := kernelArgs(s, h, mac)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	entryHeader(&b, h, mac)
	fmt.Fprintf(&b, "set default=0\nset timeout=1\n")
	fmt.Fprintf(&b, "menuentry 'Install CentOS 7 as %s (kubebake)' {\n", s.FQDN(h))
	fmt.Fprintf(&b, "  linuxefi %s inst.ks=file:/ks.cfg %s\n", s.PXE.Kernel, args)
	fmt.Fprintf(&b, "  initrdefi %s %s\n", s.PXE.Initrd, overlayRel(h.Name))
	fmt.Fprintf(&b, "}\n")
	return b.Bytes(), nil
}

// IPXE renders http/ipxe/<host>.ipxe: kernel, initrd and kickstart over
// HTTP from httpBase (the kernel and initrd at httpBase/<pxe.kernel>, so
// the site serves them beside out/pxe/http). The bundle then comes as
// pxe.bundleDelivery says: over HTTP, or in the overlay, which iPXE then
// fetches over TFTP from the DHCP server (${next-server}).
func IPXE(s *spec.Spec, h spec.Host) ([]byte, error) {
	mac := h.MACs[0]
	args, err := kernelArgs(s, h, mac)
	if err != nil {
		return nil, err
	}
	base := strings.TrimRight(s.PXE.HTTPBase, "/")
	initrds := "initrd=initrd.img"
	if s.PXE.BundleDelivery == "initrd" {
		initrds += " initrd=overlay.cpio.gz" // the bundle and the hook that hands it on
	}
	var b bytes.Buffer
	b.WriteString("#!ipxe\n")
	entryHeader(&b, h, mac)
	fmt.Fprintf(&b, "kernel %s/%s %s inst.ks=%s/ks/%s.cfg %s\n", base, s.PXE.Kernel, initrds, base, h.Name, args)
	fmt.Fprintf(&b, "initrd --name initrd.img %s/%s\n", base, s.PXE.Initrd)
	if s.PXE.BundleDelivery == "initrd" {
		// The overlay is in the TFTP tree only (out/pxe/http holds no
		// overlays), so it comes from the DHCP server's TFTP.
		fmt.Fprintf(&b, "initrd --name overlay.cpio.gz tftp://${next-server}/%s\n", overlayRel(h.Name))
	}
	b.WriteString("boot\n")
	return b.Bytes(), nil
}

func overlayRel(host string) string { return "overlay/" + host + ".cpio.gz" }

// Dnsmasq renders dnsmasq.conf: a snippet a site can drop into
// /etc/dnsmasq.d/ (or run with dnsmasq -C): one dhcp-host per MAC, DHCP
// only for those (static range), TFTP from tftpRoot, pxelinux.0 for BIOS
// and grubx64.efi for x86-64 UEFI (client architecture 7, RFC 4578).
func Dnsmasq(s *spec.Spec, tftpRoot string) ([]byte, error) {
	nodeNet, err := netip.ParsePrefix(s.Cluster.NodeNetwork)
	if err != nil {
		return nil, fmt.Errorf("cluster.nodeNetwork: %w", err)
	}
	var b bytes.Buffer
	b.WriteString("# dnsmasq snippet written by kubebake pxe: PXE for the hosts of bundle-spec.yaml.\n")
	b.WriteString("# Copy the CentOS 7 installer (images/pxeboot/vmlinuz, initrd.img) to the paths\n")
	fmt.Fprintf(&b, "# pxe.kernel (%s) and pxe.initrd (%s) under tftp-root, with pxelinux.0\n", s.PXE.Kernel, s.PXE.Initrd)
	b.WriteString("# (syslinux) and grubx64.efi (RHEL 7's shim/grub2) beside them.\n")
	b.WriteString("enable-tftp\n")
	fmt.Fprintf(&b, "tftp-root=%s\n", tftpRoot)
	fmt.Fprintf(&b, "dhcp-range=%s,static,%s\n", nodeNet.Masked().Addr(), netmask(nodeNet.Bits()))
	fmt.Fprintf(&b, "dhcp-option=option:router,%s\n", s.Cluster.Gateway)
	if len(s.PXE.DNSServers) > 0 {
		fmt.Fprintf(&b, "dhcp-option=option:dns-server,%s\n", strings.Join(s.PXE.DNSServers, ","))
	}
	fmt.Fprintf(&b, "domain=%s\n", s.Cluster.HostDomain)
	for _, h := range s.Hosts {
		for _, m := range h.MACs {
			fmt.Fprintf(&b, "dhcp-host=%s,%s,%s\n", m, h.IP, h.Name)
		}
	}
	b.WriteString("dhcp-match=set:efi-x86_64,option:client-arch,7\n")
	b.WriteString("dhcp-boot=tag:efi-x86_64,grubx64.efi\n")
	b.WriteString("dhcp-boot=tag:!efi-x86_64,pxelinux.0\n")
	if len(s.Hosts) > 0 {
		h := s.Hosts[0]
		b.WriteString("# iPXE instead: tag each dhcp-host and hand clients already running iPXE their\n")
		b.WriteString("# script from http/ipxe/<host>.ipxe, e.g. for " + h.Name + ":\n")
		b.WriteString("#   dhcp-userclass=set:ipxe,iPXE\n")
		if len(h.MACs) > 0 {
			fmt.Fprintf(&b, "#   dhcp-host=%s,set:%s,%s,%s\n", h.MACs[0], h.Name, h.IP, h.Name)
		}
		fmt.Fprintf(&b, "#   dhcp-boot=tag:ipxe,tag:%s,%s/ipxe/%s.ipxe\n", h.Name, strings.TrimRight(s.PXE.HTTPBase, "/"), h.Name)
	}
	return b.Bytes(), nil
}
