#!/bin/bash
# guest.sh builds the QEMU (TCG) test guest firstboot/vmtest boots: a Debian
# bookworm systemd rootfs (mmdebstrap minbase) with the host's Debian kernel
# modules a node plan needs, an uncompressed vmlinux for direct boot and a
# tiny busybox initramfs that switch_roots to systemd. See
# /work/shared/TESTBED.md for the measurements behind the choices.
#
# Idempotent and cached outside the repo in
#   ${KUBEBAKE_TESTBED_CACHE:-$HOME/.cache/kubebake-testbed}/<key>/
# keyed by a hash of this script, lib.sh and the kernel version; "stamp" is written
# last, so a half-built guest is never used. The last line on stdout is
#   KUBEBAKE_TESTBED_DIR=<dir>
# holding vmlinux, initramfs.cpio.gz, base.img (ext4, 1G, never written by
# tests: boot it with -snapshot or a copy) and cmdline.
#
# Guest protocol (what the test relies on):
#   - first virtio disk, serial KBROOT: the root (a copy of base.img, or
#     base.img with -snapshot); the initramfs finds it by that serial.
#   - second virtio disk, serial KBBUNDLE (ext4, label KBBUNDLE): holds
#     bundle.tar.gz or an unpacked bundle/ directory. On the first boot
#     kubebake-testbed-install.service mounts it read-only at /mnt/bundle,
#     unpacks it into /opt/kubebake, copies the bundle's
#     rootfs/etc/systemd/system/kubebake-firstboot.service into
#     /etc/systemd/system, enables it and starts it (as kickstart %post would).
#     A testbed-pre.sh beside the bundle runs first (sh -e), to set up a
#     starting state.
#   - third virtio disk, serial KBREPORT (raw, 8 MiB, zeroed): after firstboot
#     has finished and the boot has settled, kubebake-testbed-report.service
#     writes a text report between "KBREPORT-BEGIN <boot>" and "KBREPORT-END
#     <boot>" lines at offset 0 of that disk and syncs, then writes
#     "KBREPORT-DONE <length> <sha256 of the report>" at offset 7 MiB and
#     syncs (and echoes the report to ttyS0). The test kills QEMU once the
#     trailer is there and the report's sum matches.
#   - kernel command line kubebake.stop_after=N: a generator adds
#     Environment=KUBEBAKE_FIRSTBOOT_STOP_AFTER=N to kubebake-firstboot.service
#     for that boot only.
#   - the NIC gets 10.4.7.21/24 (systemd-networkd, no gateway); hostname hdss7-21.
#   - Debian's containerd is installed but disabled, as on a fresh CentOS 7
#     host nothing runs it; /opt/containerd/bin/ctr, where a bundle installs
#     ctr, links to it. firstboot's image step starts it.
#   - iptables.service does what CentOS 7's iptables-services does at boot:
#     iptables-restore /etc/sysconfig/iptables when that file exists (a
#     testbed-pre.sh writes one with the REJECT rules of a CentOS install).
set -euo pipefail

. "$(dirname "$0")/lib.sh"
log() { tb_log guest.sh "$@"; }

tb_prereqs
KVER=$(tb_kver)

CACHE=${KUBEBAKE_TESTBED_CACHE:-$HOME/.cache/kubebake-testbed}
KEY=$(tb_key "$0" "$KVER")
OUT=$CACHE/$KEY
mkdir -p "$CACHE"

# One builder at a time (parallel test binaries share the cache).
exec 9>"$CACHE/.lock"
flock 9

if [ -f "$OUT/stamp" ]; then
	log "cached: $OUT"
	echo "KUBEBAKE_TESTBED_DIR=$OUT"
	exit 0
fi

START=$(date +%s)
W=$(mktemp -d "$CACHE/.build-$KEY-XXXXXX")
trap 'rm -rf "$W"' EXIT
R=$W/rootfs

# Modules a node plan needs (ip_vs family, conntrack, br_netfilter, overlay,
# iptables legacy nat/filter and its matches), plus virtio for the guest
# itself.
NODE_MODS="ip_vs ip_vs_rr ip_vs_wrr ip_vs_sh ip_vs_nq nf_conntrack br_netfilter overlay
	ip_tables iptable_nat iptable_filter iptable_mangle xt_MASQUERADE xt_comment xt_conntrack
	xt_addrtype xt_mark ipt_REJECT nf_nat virtio_net virtio_pci virtio_blk virtio_rng ext4"

log "mmdebstrap bookworm -> $R"
mmdebstrap --variant=minbase --include=systemd,systemd-sysv,dbus,iproute2,kmod,udev,iptables,procps,busybox,containerd \
	bookworm "$R" >&2

log "modules for $KVER"
# Whole netfilter trees too, so iptables/ipvs can autoload what a rule needs.
tb_modules "$R" "$KVER" "$NODE_MODS" kernel/net/netfilter kernel/net/ipv4/netfilter kernel/net/ipv6/netfilter kernel/net/bridge

log "guest configuration"
echo hdss7-21 >"$R/etc/hostname"
printf '127.0.0.1 localhost\n10.4.7.21 hdss7-21.host.com hdss7-21\n' >"$R/etc/hosts"
# CentOS 7 runs iptables legacy; so does the guest.
chroot "$R" update-alternatives --set iptables /usr/sbin/iptables-legacy >&2
chroot "$R" update-alternatives --set ip6tables /usr/sbin/ip6tables-legacy >&2
# A readable console.
tb_quiet_console "$R"

mkdir -p "$R/etc/systemd/network"
cat >"$R/etc/systemd/network/10-kubebake.network" <<'NET'
[Match]
Name=en* eth*

[Network]
Address=10.4.7.21/24
LinkLocalAddressing=no
IPv6AcceptRA=no
NET
mkdir -p "$R/etc/systemd/system/systemd-networkd-wait-online.service.d"
cat >"$R/etc/systemd/system/systemd-networkd-wait-online.service.d/kubebake.conf" <<'NET'
[Service]
ExecStart=
ExecStart=/lib/systemd/systemd-networkd-wait-online --any --timeout=60
NET
systemctl --root="$R" enable systemd-networkd.service systemd-networkd-wait-online.service >&2

# containerd: present, not running until firstboot starts it.
systemctl --root="$R" disable containerd.service >&2
mkdir -p "$R/opt/containerd/bin"
ln -s /usr/bin/ctr "$R/opt/containerd/bin/ctr"

# CentOS 7's iptables.service (iptables-services), minus its init script:
# restore the saved rules at boot, before the network comes up.
cat >"$R/etc/systemd/system/iptables.service" <<'UNIT'
[Unit]
Description=IPv4 firewall with iptables (as CentOS 7 iptables-services)
ConditionPathExists=/etc/sysconfig/iptables
DefaultDependencies=no
After=local-fs.target
Before=network-pre.target
Wants=network-pre.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/sbin/iptables-restore /etc/sysconfig/iptables

[Install]
WantedBy=basic.target
UNIT
systemctl --root="$R" enable iptables.service >&2

# Per-boot stop hook from the kernel command line.
mkdir -p "$R/etc/systemd/system-generators"
cat >"$R/etc/systemd/system-generators/kubebake-testbed" <<'GEN'
#!/bin/sh
# kubebake.stop_after=N on the kernel command line -> this boot's firstboot
# unit stops after step N (KUBEBAKE_FIRSTBOOT_STOP_AFTER).
for a in $(cat /proc/cmdline); do
	case "$a" in
	kubebake.stop_after=*)
		mkdir -p "$1/kubebake-firstboot.service.d"
		printf '[Service]\nEnvironment=KUBEBAKE_FIRSTBOOT_STOP_AFTER=%s\n' "${a#*=}" \
			>"$1/kubebake-firstboot.service.d/50-testbed-stop.conf"
		;;
	esac
done
GEN
chmod 0755 "$R/etc/systemd/system-generators/kubebake-testbed"

cat >"$R/usr/local/sbin/kubebake-testbed-install" <<'INST'
#!/bin/sh
# First boot only: what kickstart %post does with a bundle.
set -eu
dev=/dev/disk/by-id/virtio-KBBUNDLE
i=0
while [ ! -b "$dev" ] && [ $i -lt 60 ]; do sleep 1; i=$((i+1)); done
[ -b "$dev" ] || { echo "testbed: no bundle disk ($dev)"; exit 1; }
mkdir -p /mnt/bundle /opt/kubebake
mount -o ro "$dev" /mnt/bundle
# A test may bring the host into a starting state first (e.g. the REJECT
# rules a CentOS 7 install has, which firstboot removes).
if [ -f /mnt/bundle/testbed-pre.sh ]; then
	echo "testbed: running testbed-pre.sh"
	sh -ex /mnt/bundle/testbed-pre.sh
fi
if [ -f /mnt/bundle/bundle.tar.gz ]; then
	tar xzf /mnt/bundle/bundle.tar.gz -C /opt/kubebake
else
	cp -a /mnt/bundle/bundle/. /opt/kubebake/
fi
umount /mnt/bundle
cp /opt/kubebake/rootfs/etc/systemd/system/kubebake-firstboot.service /etc/systemd/system/
systemctl enable kubebake-firstboot.service
mkdir -p /var/lib/kubebake-testbed
date -u +%FT%T.%NZ >/var/lib/kubebake-testbed/installed
sync
echo "testbed: bundle installed in /opt/kubebake; starting kubebake-firstboot.service"
systemctl start --no-block kubebake-firstboot.service
INST

cat >"$R/usr/local/sbin/kubebake-testbed-report" <<'REP'
#!/bin/bash
# Every boot: wait for firstboot and the boot to settle, then write the report.
set -u
boot=$(cat /proc/sys/kernel/random/boot_id)
n=0
quiet=0
while [ $n -lt 1200 ]; do
	st=$(systemctl show -P ActiveState kubebake-firstboot.service 2>/dev/null)
	# Jobs running now, except this one: waiting jobs may be waiting for
	# this one (targets, systemd-update-utmp-runlevel), running ones are not.
	others=$(systemctl list-jobs --no-legend 2>/dev/null | awk '$4 == "running" && $2 != "kubebake-testbed-report.service"' | grep -c .)
	if [ "$st" != activating ] && [ "$others" = 0 ] && ! systemctl list-jobs --no-legend | grep -q kubebake-firstboot; then
		quiet=$((quiet+1)); [ $quiet -ge 3 ] && break
	else
		quiet=0
	fi
	sleep 0.5; n=$((n+1))
done
sec() { printf '\n### %s\n' "$1"; }
run() { sec "$1"; shift; "$@" 2>&1; echo "# rc=$?"; }
f=/run/kubebake-report.txt
{
	echo "KBREPORT-BEGIN $boot"
	sec meta
	echo "boot_id=$boot"
	echo "uptime=$(cut -d' ' -f1 /proc/uptime)"
	echo "settle_polls=$n"
	echo "date=$(date -u +%FT%T.%NZ)"
	echo "kernel=$(uname -r)"
	echo "cmdline=$(cat /proc/cmdline)"
	echo "installed=$(cat /var/lib/kubebake-testbed/installed 2>/dev/null)"
	run firstboot-status /opt/kubebake/firstboot status --bundle /opt/kubebake
	run firstboot-unit systemctl show kubebake-firstboot.service -p UnitFileState -p ActiveState -p SubState \
		-p Result -p ConditionResult -p ExecMainStatus -p ExecMainStartTimestampMonotonic \
		-p ExecMainExitTimestampMonotonic -p InactiveExitTimestampMonotonic -p ActiveEnterTimestampMonotonic
	sec units
	for u in /opt/kubebake/rootfs/etc/systemd/system/*.service kubebake-firstboot.service; do
		u=$(basename "$u")
		echo "$u enabled=$(systemctl is-enabled "$u" 2>/dev/null) active=$(systemctl is-active "$u" 2>/dev/null)"
	done
	run done-marker sh -c 'ls -l --full-time /var/lib/kubebake/done && cat /var/lib/kubebake/done'
	run state cat /var/lib/kubebake/state.json
	run lsmod lsmod
	sec sys-module
	ls /sys/module
	run sysctl sysctl -a
	run routes ip -4 route show table main
	run addrs ip -4 -o addr
	run nat-postrouting iptables -t nat -S POSTROUTING
	run iptables-save iptables-save
	run modules-load.d sh -c 'grep -H . /etc/modules-load.d/* /etc/sysctl.d/* 2>/dev/null'
	run network-unit systemctl show kubebake-network.service -p UnitFileState -p ActiveState -p Result \
		-p ExecMainStatus -p ExecMainStartTimestampMonotonic
	run ctr-images ctr -n k8s.io images ls
	run journal-network journalctl -u kubebake-network -b --no-pager -o short-monotonic
	run journal-firstboot journalctl -u kubebake-firstboot -b --no-pager -o short-monotonic
	run journal-install journalctl -u kubebake-testbed-install -b --no-pager -o short-monotonic
	run failed systemctl --failed --no-legend
	echo "KBREPORT-END $boot"
} >"$f" 2>&1
# The body at offset 0, synced; then a trailer at 7 MiB naming its length and
# sha256, synced: the test reads the body only once the trailer is there
# and the sum matches, so a half-visible write is never parsed.
disk=/dev/disk/by-id/virtio-KBREPORT
if dd if="$f" of=$disk bs=1M conv=fsync,notrunc status=none; then
	printf 'KBREPORT-DONE %s %s\n' "$(stat -c %s "$f")" "$(sha256sum <"$f" | cut -d' ' -f1)" >/run/kubebake-report.done
	dd if=/run/kubebake-report.done of=$disk bs=1M seek=7 conv=fsync,notrunc status=none
else
	echo "testbed: no report disk"
fi
sync
cat "$f" >/dev/ttyS0 2>/dev/null || true
REP
chmod 0755 "$R/usr/local/sbin/kubebake-testbed-install" "$R/usr/local/sbin/kubebake-testbed-report"

cat >"$R/etc/systemd/system/kubebake-testbed-install.service" <<'UNIT'
[Unit]
Description=kubebake testbed: install the bundle from the KBBUNDLE disk, as kickstart post-install does
ConditionPathExists=!/var/lib/kubebake-testbed/installed
After=local-fs.target systemd-udev-settle.service systemd-udevd.service
Before=kubebake-firstboot.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/sbin/kubebake-testbed-install
StandardOutput=journal+console

[Install]
WantedBy=multi-user.target
UNIT
cat >"$R/etc/systemd/system/kubebake-testbed-report.service" <<'UNIT'
[Unit]
Description=kubebake testbed: report to the KBREPORT disk after firstboot
After=kubebake-testbed-install.service kubebake-firstboot.service kubebake-network.service network-online.target

[Service]
Type=oneshot
RemainAfterExit=yes
TimeoutStartSec=0
ExecStart=/usr/local/sbin/kubebake-testbed-report

[Install]
WantedBy=multi-user.target
UNIT
systemctl --root="$R" enable kubebake-testbed-install.service kubebake-testbed-report.service >&2
rm -f "$R/etc/machine-id" && touch "$R/etc/machine-id"   # regenerated per boot (transient)

log "base.img"
mkfs.ext4 -q -F -L kbroot -d "$R" "$W/base.img" 1G

log "vmlinux"
tb_vmlinux "$KVER" "$W/vmlinux"

log "initramfs"
tb_initramfs "$KVER" "$W" "$W/initramfs.cpio.gz"

echo "console=ttyS0 rw panic=-1 loglevel=4 net.ifnames=1 systemd.show_status=auto" >"$W/cmdline"
echo "$KVER" >"$W/kver"

rm -rf "$R"
tb_publish "$CACHE" "$OUT" "$W" "$START" vmlinux initramfs.cpio.gz base.img cmdline kver
log "built $OUT in $(( $(date +%s) - START ))s"
echo "KUBEBAKE_TESTBED_DIR=$OUT"
