#!/bin/bash
# scripts/e2e/rootfs.sh builds the root file system the end-to-end test's
# systemd-nspawn hosts share (e2e/nspawnhost: hdss7-11 dns+lb, hdss7-12
# etcd+lb, hdss7-200 ops): Debian bookworm (mmdebstrap minbase) with a real
# systemd and the packages CentOS 7's kickstart %packages would give those
# roles (nginx + the stream module, keepalived, bind, nfs-utils), plus the
# tools the test reads hosts with (dig, curl, ss, iptables).
#
# Each host boots it read-only as the lower layer of its own overlay (a
# per-host upper directory that persists across the host's two boots), so
# this tree is never written after it is built.
#
# Idempotent and cached outside the repo in
#   ${KUBEBAKE_E2E_CACHE:-$HOME/.cache/kubebake-e2e}/rootfs/<key>/root
# keyed by a hash of this script; "stamp" is written last, so a half-built
# tree is never used. The last line on stdout is
#   KUBEBAKE_E2E_ROOTFS=<dir>/root
#
# ---------------------------------------------------------------------------
# The test bed's CentOS-7-layout shims: every difference between this Debian
# tree and a CentOS 7 host that kubebake's bundles rely on, in one place.
# kubebake renders for CentOS 7 and none of this is kubebake's code.
#
#  1. nginx: kubebake's nginx.conf has `include /usr/share/nginx/modules/*.conf`
#     (EPEL's nginx-mod-stream puts mod-stream.conf there). Debian's
#     libnginx-mod-stream keeps its snippet in modules-available/: the shim
#     /usr/share/nginx/modules/mod-stream.conf loads Debian's
#     /usr/lib/nginx/modules/ngx_stream_module.so.
#  2. nginx: `user nginx;` — CentOS's package creates the nginx user, Debian's
#     runs www-data: a system user and group `nginx` are created.
#  3. bind: CentOS's named reads /etc/named.conf with `directory /var/named`
#     owned by group named; Debian's reads /etc/bind/named.conf as user bind.
#     /etc/default/named (Debian's unit reads OPTIONS there) says
#     `-u bind -c /etc/named.conf`; /var/named and /var/named/data belong to
#     root:bind 0770; /run/named is made by tmpfiles. The unit name is the same
#     on both: named.service (Debian's bind9.service is an alias of it).
#  4. nfs-server.service: NOT a shim but a substitute, because this machine's
#     kernel has no nfsd (not in /proc/filesystems, and CONFIG_MODULES is
#     unset, so it cannot be loaded): Debian's nfs-server.service cannot start
#     in any container here. /etc/systemd/system/nfs-server.service (which
#     overrides Debian's) checks /etc/exports with `exportfs -ra` and serves
#     nothing. The e2e log says so; NFS itself is not covered here.
#  5. iptables: the legacy backend, as CentOS 7's iptables 1.4.21
#     (update-alternatives).
#  6. Services come disabled, as CentOS's packages install them: firstboot
#     enables and starts nginx, keepalived, named and nfs-server itself.
#  7. No network configuration inside: the bed gives each host its own
#     network namespace with eth0 (the spec's IP, MAC and default route via
#     the gateway) before it boots, as the kickstart's `network` line would,
#     and writes /etc/hostname, /etc/hosts, /etc/resolv.conf (the spec's
#     dnsServers) and /etc/machine-id into the host's upper layer.
# ---------------------------------------------------------------------------
set -euo pipefail

log() { printf 'rootfs.sh: %s\n' "$*" >&2; }

[ "$(id -u)" = 0 ] || { log "must run as root (mmdebstrap)"; exit 1; }
if ! command -v mmdebstrap >/dev/null 2>&1 || ! command -v systemd-nspawn >/dev/null 2>&1; then
	log "installing mmdebstrap systemd-container"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >&2
	apt-get install -y -qq --no-install-recommends mmdebstrap systemd-container >&2
fi

CACHE=${KUBEBAKE_E2E_CACHE:-$HOME/.cache/kubebake-e2e}/rootfs
KEY=$(sha256sum <"$0" | cut -c1-16)
OUT=$CACHE/$KEY
mkdir -p "$CACHE"

exec 9>"$CACHE/.lock"
flock 9

if [ -f "$OUT/stamp" ]; then
	log "cached: $OUT ($(cat "$OUT/stamp"))"
	echo "KUBEBAKE_E2E_ROOTFS=$OUT/root"
	exit 0
fi

START=$(date +%s)
W=$(mktemp -d "$CACHE/.build-$KEY-XXXXXX")
trap 'rm -rf "$W"' EXIT
R=$W/root

PKGS=systemd,systemd-sysv,dbus,iproute2,iptables,procps,kmod,conntrack,curl,ca-certificates
PKGS=$PKGS,nginx,libnginx-mod-stream,keepalived,bind9,bind9-dnsutils,nfs-common,nfs-kernel-server
PKGS=$PKGS,iputils-ping,less
log "mmdebstrap bookworm -> $R"
mmdebstrap --variant=minbase --include="$PKGS" bookworm "$R" >&2

log "CentOS 7 layout shims (see the top of this script)"
# 1. nginx-mod-stream's include path.
mkdir -p "$R/usr/share/nginx/modules"
so=/usr/lib/nginx/modules/ngx_stream_module.so
[ -f "$R$so" ] || { log "libnginx-mod-stream has no $so"; exit 1; }
cat >"$R/usr/share/nginx/modules/mod-stream.conf" <<EOF
# kubebake e2e test bed shim: CentOS's nginx-mod-stream puts this file here;
# this loads Debian's stream module (libnginx-mod-stream).
load_module $so;
EOF
# 2. the nginx user.
chroot "$R" groupadd --system nginx
chroot "$R" useradd --system --gid nginx --home-dir /var/lib/nginx --shell /usr/sbin/nologin --no-create-home nginx
# 3. bind with CentOS's paths.
[ -f "$R/lib/systemd/system/named.service" ] || { log "bind9 has no named.service"; exit 1; }
cat >"$R/etc/default/named" <<'EOF'
# kubebake e2e test bed shim: CentOS 7's named reads /etc/named.conf.
RESOLVCONF=no
OPTIONS="-u bind -c /etc/named.conf"
EOF
install -d -o root -g "$(chroot "$R" getent group bind | cut -d: -f3)" -m 0770 "$R/var/named" "$R/var/named/data"
echo 'd /run/named 0775 root bind -' >"$R/usr/lib/tmpfiles.d/kubebake-named.conf"
# 4. nfs-server.service: a substitute (no nfsd in this kernel).
cat >"$R/etc/systemd/system/nfs-server.service" <<'EOF'
# kubebake e2e TEST BED SUBSTITUTE, not an NFS server: this machine's kernel
# has no nfsd (and cannot load modules), so Debian's nfs-server.service cannot
# start in a container here. This unit only checks /etc/exports.
[Unit]
Description=NFS server (kubebake e2e test-bed substitute: exportfs -ra only, no nfsd in this kernel)
After=network.target local-fs.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/sbin/exportfs -ra
ExecStart=/bin/echo "kubebake e2e: no nfsd in this kernel; /etc/exports checked with exportfs, nothing is served"

[Install]
WantedBy=multi-user.target
EOF
# 5. iptables legacy.
chroot "$R" update-alternatives --set iptables /usr/sbin/iptables-legacy >&2
chroot "$R" update-alternatives --set ip6tables /usr/sbin/ip6tables-legacy >&2
# 6. services disabled, as CentOS installs them.
for u in nginx.service keepalived.service named.service nfs-server.service nfs-kernel-server.service \
	rpcbind.service rpcbind.socket nfs-client.target; do
	systemctl --root="$R" disable "$u" >/dev/null 2>&1 || true
done
# Quiet, quick boots: no gettys on the console, no timers, no time sync.
for u in console-getty.service container-getty@.service getty@tty1.service systemd-timesyncd.service \
	apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer man-db.timer; do
	ln -sf /dev/null "$R/etc/systemd/system/$u"
done
systemctl --root="$R" set-default multi-user.target >&2
# 7. per-host identity comes from the bed.
rm -f "$R/etc/hostname" "$R/etc/resolv.conf"
: >"$R/etc/machine-id"
# A persistent journal: firstboot's log of both boots stays readable.
mkdir -p "$R/var/log/journal"
rm -rf "$R/var/cache/apt/archives/"*.deb "$R/var/lib/apt/lists/"* 2>/dev/null || true

rm -rf "$OUT"
# Trees of older script versions are not used again.
for old in "$CACHE"/*/stamp; do
	[ -f "$old" ] && [ "$(dirname "$old")" != "$OUT" ] && rm -rf "$(dirname "$old")"
done
mkdir -p "$OUT"
mv "$R" "$OUT/root"
echo "built $(date -u +%FT%TZ) in $(($(date +%s) - START))s, $(du -sm "$OUT/root" | cut -f1) MB" >"$OUT/stamp"
log "built $OUT in $(($(date +%s) - START))s"
echo "KUBEBAKE_E2E_ROOTFS=$OUT/root"
