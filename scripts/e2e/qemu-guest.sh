#!/bin/bash
# qemu-guest.sh builds the QEMU (TCG) guest the end-to-end test boots for the
# hosts whose roles load kernel modules this machine's kernel lacks (ip_vs &
# friends): hdss7-21 and hdss7-22 (etcd, master, node). e2e/qemuhost boots it.
#
# A Debian bookworm systemd rootfs (mmdebstrap minbase) standing in for a
# freshly kickstarted CentOS 7 host: iptables (legacy, as CentOS 7), ipset,
# ipvsadm, conntrack, curl, the QEMU guest agent (the test's only way in), and
# Debian's kernel modules a node needs, depmod'ed. No containerd, runc or CNI
# plugins: the bundle brings them. The pieces shared with
# scripts/testbed/guest.sh (kernel, modules, vmlinux, initramfs) are in
# scripts/testbed/lib.sh.
#
# Idempotent and cached outside the repo in
#   ${KUBEBAKE_E2E_CACHE:-$HOME/.cache/kubebake-e2e}/qemu-guest/<key>/
# keyed by a hash of this script, lib.sh and the kernel version; "stamp" is
# written last. The last line on stdout is
#   KUBEBAKE_E2E_GUEST_DIR=<dir>
# holding vmlinux, initramfs.cpio.gz, base.img (ext4, 8G sparse, never
# written by tests: boot a copy), cmdline and kver.
#
# Guest protocol (what e2e/qemuhost relies on):
#   - first virtio disk, serial KBROOT: the root (a per-host copy of base.img).
#   - second virtio disk, serial KBBUNDLE (ext4): holds the host's one
#     <host>.tar.gz. On the first boot kubebake-e2e-install.service unpacks
#     it into /opt/kubebake, copies rootfs/etc/systemd/system/
#     kubebake-firstboot.service into /etc/systemd/system, enables and starts
#     it (as kickstart's %post would; the next boots skip it).
#   - kernel command line kubebake.ip=<ip>/<len> kubebake.gw=<gateway>
#     kubebake.dns=<ip>[,<ip>…] kubebake.hostname=<fqdn>: at every boot,
#     before the network, kubebake-e2e-identity.service writes them where
#     kickstart's `network` line leaves them on CentOS 7 (/etc/hostname,
#     /etc/resolv.conf) and the NIC's static config for systemd-networkd.
#     The NIC is eth0 (net.ifnames=0), as the seed's CentOS hosts name it.
#   - cgroup v1 only (systemd.unified_cgroup_hierarchy=0), as CentOS 7.
#   - the QEMU guest agent on the virtio-serial port org.qemu.guest_agent.0
#     (guest-exec allowed) answers as soon as udev has seen the port.
#   - the journal is persistent (/var/log/journal): a second boot's Logs
#     still show the first boot.
set -euo pipefail

. "$(dirname "$0")/../testbed/lib.sh"
log() { tb_log qemu-guest.sh "$@"; }

tb_prereqs
KVER=$(tb_kver)

CACHE=${KUBEBAKE_E2E_CACHE:-$HOME/.cache/kubebake-e2e}/qemu-guest
KEY=$(tb_key "$0" "$KVER")
OUT=$CACHE/$KEY
mkdir -p "$CACHE"

# One builder at a time (parallel test binaries share the cache).
exec 9>"$CACHE/.lock"
flock 9

if [ -f "$OUT/stamp" ]; then
	log "cached: $OUT"
	echo "KUBEBAKE_E2E_GUEST_DIR=$OUT"
	exit 0
fi

START=$(date +%s)
W=$(mktemp -d "$CACHE/.build-$KEY-XXXXXX")
trap 'rm -rf "$W"' EXIT
R=$W/rootfs

# What an etcd + master + node host loads: the ip_vs schedulers, conntrack,
# br_netfilter, overlay, veth/bridge for the CNI bridge, ip_set + xt_set for
# kube-proxy ipvs, the iptables tables and matches kube-proxy, flannel and
# firstboot use; vxlan and tun in case a backend wants them; virtio for the
# guest itself (virtio_console carries the guest agent). The whole
# kernel/net tree is copied too, so a rule or a qdisc can autoload what it
# needs.
NODE_MODS="ip_vs ip_vs_rr ip_vs_wrr ip_vs_sh ip_vs_nq ip_vs_lc ip_vs_wlc ip_vs_sed ip_vs_dh ip_vs_mh
	nf_conntrack nf_conntrack_netlink nf_nat br_netfilter bridge overlay veth vxlan tun
	ip_set ip_set_hash_ip ip_set_hash_ipport ip_set_hash_ipportip ip_set_hash_ipportnet ip_set_hash_net
	ip_set_bitmap_port xt_set
	ip_tables ip6_tables iptable_nat iptable_filter iptable_mangle iptable_raw
	ip6table_nat ip6table_filter ip6table_mangle ip6table_raw
	xt_MASQUERADE xt_comment xt_mark xt_addrtype xt_conntrack xt_multiport xt_physdev xt_statistic
	xt_nat xt_tcpudp xt_REDIRECT ipt_REJECT ip6t_REJECT nf_reject_ipv4
	virtio_net virtio_pci virtio_blk virtio_rng virtio_console ext4"

log "mmdebstrap bookworm -> $R"
mmdebstrap --variant=minbase \
	--include=systemd,systemd-sysv,dbus,udev,kmod,iproute2,iptables,ipset,ipvsadm,conntrack,procps,curl,ca-certificates,qemu-guest-agent,iputils-ping \
	bookworm "$R" >&2

log "modules for $KVER"
tb_modules "$R" "$KVER" "$NODE_MODS" kernel/net
# Not radios: systemd-networkd's nl80211 query would autoload cfg80211.
rm -rf "$R/usr/lib/modules/$KVER/kernel/net/"{wireless,mac80211,bluetooth}
depmod -b "$R" "$KVER"

log "guest configuration"
echo localhost >"$R/etc/hostname" # kubebake-e2e-identity.service names the host
printf '127.0.0.1 localhost localhost.localdomain\n::1 localhost localhost.localdomain\n' >"$R/etc/hosts"
# CentOS 7 runs iptables legacy; so does the guest.
chroot "$R" update-alternatives --set iptables /usr/sbin/iptables-legacy >&2
chroot "$R" update-alternatives --set ip6tables /usr/sbin/ip6tables-legacy >&2
tb_quiet_console "$R"
mkdir -p "$R/var/log/journal"

# Identity from the kernel command line, every boot, before the network.
cat >"$R/usr/local/sbin/kubebake-e2e-identity" <<'ID'
#!/bin/sh
# kubebake.ip= kubebake.gw= kubebake.dns= kubebake.hostname= (kernel command
# line) -> what kickstart's network line leaves on a CentOS 7 host.
set -eu
ip= gw= dns= name=
for a in $(cat /proc/cmdline); do
	case "$a" in
	kubebake.ip=*) ip=${a#*=} ;;
	kubebake.gw=*) gw=${a#*=} ;;
	kubebake.dns=*) dns=${a#*=} ;;
	kubebake.hostname=*) name=${a#*=} ;;
	esac
done
[ -n "$ip" ] || { echo "kubebake-e2e-identity: no kubebake.ip= on the kernel command line"; exit 1; }
if [ -n "$name" ]; then
	echo "$name" >/etc/hostname
	echo "$name" >/proc/sys/kernel/hostname
fi
: >/etc/resolv.conf.new
for d in $(echo "$dns" | tr , ' '); do echo "nameserver $d" >>/etc/resolv.conf.new; done
mv /etc/resolv.conf.new /etc/resolv.conf
mkdir -p /etc/systemd/network
{
	printf '[Match]\nName=eth0\n\n[Network]\nAddress=%s\n' "$ip"
	[ -z "$gw" ] || printf 'Gateway=%s\n' "$gw"
	printf 'LinkLocalAddressing=no\nIPv6AcceptRA=no\n'
} >/etc/systemd/network/10-kubebake.network
echo "kubebake-e2e-identity: $name $ip gw ${gw:-none} dns ${dns:-none}"
ID
cat >"$R/etc/systemd/system/kubebake-e2e-identity.service" <<'UNIT'
[Unit]
Description=kubebake e2e: host name, address and resolver from the kernel command line (as kickstart leaves them)
DefaultDependencies=no
After=local-fs.target
Before=systemd-networkd.service network-pre.target
Wants=network-pre.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/sbin/kubebake-e2e-identity
StandardOutput=journal+console

[Install]
WantedBy=sysinit.target
UNIT
mkdir -p "$R/etc/systemd/system/systemd-networkd-wait-online.service.d"
cat >"$R/etc/systemd/system/systemd-networkd-wait-online.service.d/kubebake.conf" <<'NET'
[Service]
ExecStart=
ExecStart=/lib/systemd/systemd-networkd-wait-online --any --timeout=60
NET
systemctl --root="$R" enable systemd-networkd.service systemd-networkd-wait-online.service kubebake-e2e-identity.service >&2

# What kickstart's %post does with the bundle, on the first boot.
cat >"$R/usr/local/sbin/kubebake-e2e-install" <<'INST'
#!/bin/sh
set -eu
dev=/dev/disk/by-id/virtio-KBBUNDLE
i=0
while [ ! -b "$dev" ] && [ $i -lt 60 ]; do sleep 1; i=$((i+1)); done
[ -b "$dev" ] || { echo "kubebake-e2e-install: no bundle disk ($dev)"; exit 1; }
mkdir -p /mnt/bundle /opt/kubebake
mount -o ro "$dev" /mnt/bundle
set -- /mnt/bundle/*.tar.gz
[ $# = 1 ] && [ -f "$1" ] || { echo "kubebake-e2e-install: want one <host>.tar.gz on the bundle disk, found: $*"; exit 1; }
echo "kubebake-e2e-install: unpacking $(basename "$1") into /opt/kubebake"
tar xzf "$1" -C /opt/kubebake
umount /mnt/bundle
cp /opt/kubebake/rootfs/etc/systemd/system/kubebake-firstboot.service /etc/systemd/system/
systemctl enable kubebake-firstboot.service
mkdir -p /var/lib/kubebake-e2e
date -u +%FT%T.%NZ >/var/lib/kubebake-e2e/installed
sync
echo "kubebake-e2e-install: bundle installed; starting kubebake-firstboot.service"
systemctl start --no-block kubebake-firstboot.service
INST
chmod 0755 "$R/usr/local/sbin/kubebake-e2e-identity" "$R/usr/local/sbin/kubebake-e2e-install"
cat >"$R/etc/systemd/system/kubebake-e2e-install.service" <<'UNIT'
[Unit]
Description=kubebake e2e: install the bundle from the KBBUNDLE disk, as kickstart's %%post does
ConditionPathExists=!/var/lib/kubebake-e2e/installed
After=local-fs.target systemd-udevd.service
Before=kubebake-firstboot.service

[Service]
Type=oneshot
RemainAfterExit=yes
TimeoutStartSec=30min
ExecStart=/usr/local/sbin/kubebake-e2e-install
StandardOutput=journal+console

[Install]
WantedBy=multi-user.target
UNIT
systemctl --root="$R" enable kubebake-e2e-install.service >&2
rm -f "$R/etc/machine-id" && touch "$R/etc/machine-id" # committed on the first boot

log "base.img"
mkfs.ext4 -q -F -L kbroot -d "$R" "$W/base.img" 8G

log "vmlinux"
tb_vmlinux "$KVER" "$W/vmlinux"

log "initramfs"
tb_initramfs "$KVER" "$W" "$W/initramfs.cpio.gz"

echo "console=ttyS0 rw panic=-1 loglevel=4 net.ifnames=0 systemd.show_status=auto systemd.unified_cgroup_hierarchy=0" >"$W/cmdline"
echo "$KVER" >"$W/kver"

rm -rf "$R"
tb_publish "$CACHE" "$OUT" "$W" "$START" vmlinux initramfs.cpio.gz base.img cmdline kver
log "built $OUT in $(($(date +%s) - START))s"
echo "KUBEBAKE_E2E_GUEST_DIR=$OUT"
