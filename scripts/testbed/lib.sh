# shellcheck shell=bash
# lib.sh: what the QEMU (TCG) guest builders share — scripts/testbed/guest.sh
# (firstboot/vmtest) and scripts/e2e/qemu-guest.sh (the end-to-end nodes).
# Source it; it defines functions and sets nothing else. Each builder keys its
# cache on its own text, this file's and the kernel version (tb_key).
# See /work/shared/TESTBED.md for the measurements behind the choices.

TB_LIB=${BASH_SOURCE[0]}

# tb_log NAME MESSAGE...: a progress line on stderr.
tb_log() { local n=$1; shift; printf '%s: %s\n' "$n" "$*" >&2; }

# tb_prereqs: root, and the Debian packages a guest build needs (installed
# when a command is missing).
tb_prereqs() {
	[ "$(id -u)" = 0 ] || { echo "must run as root (mmdebstrap, chroot, mkfs)" >&2; return 1; }
	local pkgs="qemu-system-x86 linux-image-amd64 busybox-static cpio mmdebstrap e2fsprogs kmod xz-utils" c need=
	for c in qemu-system-x86_64 mmdebstrap cpio mkfs.ext4 depmod modprobe xz; do
		command -v "$c" >/dev/null 2>&1 || need=1
	done
	[ -x /bin/busybox ] || need=1
	ls /boot/vmlinuz-*-amd64 >/dev/null 2>&1 || need=1
	if [ -n "$need" ]; then
		echo "installing $pkgs" >&2
		DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
		# shellcheck disable=SC2086 # a list of packages
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $pkgs >&2
	fi
}

# tb_kver: the newest Debian kernel installed (linux-image-amd64), unless
# KUBEBAKE_TESTBED_KVER says which; fails when its image or modules are missing.
tb_kver() {
	local k=${KUBEBAKE_TESTBED_KVER:-$(ls /boot/vmlinuz-*-amd64 | sed 's|/boot/vmlinuz-||' | sort -V | tail -1)}
	[ -f "/boot/vmlinuz-$k" ] && [ -d "/lib/modules/$k" ] || { echo "kernel $k: /boot/vmlinuz-$k or /lib/modules/$k missing" >&2; return 1; }
	echo "$k"
}

# tb_key SCRIPT KVER: the cache key, a hash of the builder, this file and the
# kernel version.
tb_key() { { cat "$1" "$TB_LIB"; echo "$2"; } | sha256sum | cut -c1-16; }

# tb_resolve KVER MODULE...: .ko paths in load order, deduplicated. kmod's
# modprobe lists each module's dependencies and its modules.softdep
# pre-dependencies (libcrc32c needs crc32c_generic first).
tb_resolve() {
	local kver=$1 m; shift
	for m in "$@"; do
		modprobe -S "$kver" --show-depends "$m" | awk '$1 == "insmod" {print $2}'
	done | awk '!seen[$0]++'
}

# tb_modules ROOT KVER "MODULES" [TREE...]: copies MODULES (with their
# dependencies) and each whole TREE (a directory under /lib/modules/KVER,
# e.g. kernel/net/netfilter) into the usrmerged ROOT, then depmod.
tb_modules() {
	local root=$1 kver=$2 mods=$3 ko rel d; shift 3
	local md=/lib/modules/$kver gmd=$root/usr/lib/modules/$kver
	mkdir -p "$gmd"
	# shellcheck disable=SC2086 # a list of names
	for ko in $(tb_resolve "$kver" $mods); do
		rel=${ko#"$md"/}
		mkdir -p "$gmd/$(dirname "$rel")"
		cp "$ko" "$gmd/$rel"
	done
	for d in "$@"; do
		[ -d "$md/$d" ] && mkdir -p "$gmd/$d" && cp -r "$md/$d/." "$gmd/$d/"
	done
	cp "$md"/modules.order "$md"/modules.builtin "$md"/modules.builtin.modinfo "$gmd/" 2>/dev/null || true
	depmod -b "$root" "$kver"
}

# tb_vmlinux KVER OUT: the uncompressed kernel of /boot/vmlinuz-KVER, for
# QEMU's direct boot (~3 s faster than the bzImage through SeaBIOS).
tb_vmlinux() {
	local kver=$1 out=$2 off
	# The payload of a bzImage: find the xz magic and decompress from there.
	off=$(LC_ALL=C grep -abo $'\xfd7zXZ' "/boot/vmlinuz-$kver" | head -1 | cut -d: -f1)
	tail -c +$((off + 1)) "/boot/vmlinuz-$kver" | xz -dc 2>/dev/null >"$out" || true
	[ "$(head -c 4 "$out" | od -An -c | tr -d " ")" = "177ELF" ] || { echo "vmlinux extraction failed" >&2; return 1; }
}

# tb_initramfs KVER WORKDIR OUT: a busybox initramfs that loads virtio and
# ext4, mounts the virtio disk with serial KBROOT (else /dev/vda) read-write
# and switch_roots to its /sbin/init.
tb_initramfs() {
	local kver=$1 i=$2/initramfs out=$3 ko
	mkdir -p "$i/bin" "$i/dev" "$i/proc" "$i/sys" "$i/newroot" "$i/lib/modules"
	cp /bin/busybox "$i/bin/busybox"
	: >"$i/modules.list"
	for ko in $(tb_resolve "$kver" virtio_pci virtio_blk ext4); do
		cp "$ko" "$i/lib/modules/"
		basename "$ko" >>"$i/modules.list"
	done
	cat >"$i/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in $(cat /modules.list); do insmod /lib/modules/$m 2>/dev/null; done
# The root disk is the virtio disk with serial KBROOT (else /dev/vda).
root=
i=0
while [ -z "$root" ] && [ $i -lt 300 ]; do
	for s in /sys/block/vd*/serial; do
		[ -f "$s" ] && [ "$(cat "$s")" = KBROOT ] && root=/dev/$(basename $(dirname "$s"))
	done
	[ -z "$root" ] && sleep 0.1
	i=$((i+1))
done
[ -n "$root" ] || root=/dev/vda
echo "initramfs: root $root"
if ! mount -t ext4 -o rw "$root" /newroot; then
	echo "initramfs: cannot mount $root"; sleep 2; poweroff -f; exit 1
fi
umount /proc /sys
mount --move /dev /newroot/dev
exec switch_root /newroot /sbin/init
INIT
	chmod 0755 "$i/init"
	(cd "$i" && find . | cpio -o -H newc --quiet | gzip -1) >"$out"
	rm -rf "$i"
}

# tb_quiet_console ROOT: no gettys, no timers or time sync fighting the
# test, so the serial console stays readable.
tb_quiet_console() {
	local u
	for u in serial-getty@ttyS0.service getty@tty1.service systemd-timesyncd.service apt-daily.timer apt-daily-upgrade.timer; do
		ln -sf /dev/null "$1/etc/systemd/system/$u"
	done
}

# tb_publish CACHE OUT WORKDIR START FILES...: moves FILES from WORKDIR into
# OUT, removes the other cached guests under CACHE (older script versions or
# kernels) and writes OUT/stamp last, so a half-built guest is never used.
tb_publish() {
	local cache=$1 out=$2 w=$3 start=$4 old f; shift 4
	rm -rf "$out"
	for old in "$cache"/*/stamp; do
		[ -f "$old" ] && [ "$(dirname "$old")" != "$out" ] && rm -rf "$(dirname "$old")"
	done
	mkdir -p "$out"
	for f in "$@"; do mv "$w/$f" "$out/"; done
	echo "built $(date -u +%FT%TZ) in $(($(date +%s) - start))s kernel $(cat "$out/kver" 2>/dev/null)" >"$out/stamp"
}
