#!/bin/bash
# run-vmtest.sh: what CI runs for the QEMU firstboot test. Installs the
# guest's tools from Debian apt when missing, builds (or reuses) the cached
# guest, then runs firstboot/vmtest with CI semantics (a missing tool fails,
# never skips). Needs root. Budget: ~1 min apt + ~1 min guest build the first
# time (cached in ${KUBEBAKE_TESTBED_CACHE:-$HOME/.cache/kubebake-testbed}),
# then ~2.5 min for the test (4 TCG boots).
set -euo pipefail
cd "$(dirname "$0")/../.."
[ "$(id -u)" = 0 ] || { echo "run-vmtest.sh: must run as root" >&2; exit 1; }
PKGS="qemu-system-x86 linux-image-amd64 busybox-static cpio mmdebstrap e2fsprogs kmod xz-utils"
missing=
for c in qemu-system-x86_64 mmdebstrap cpio mkfs.ext4 depmod modprobe xz; do
	command -v "$c" >/dev/null 2>&1 || missing=1
done
[ -x /bin/busybox ] || missing=1
ls /boot/vmlinuz-*-amd64 >/dev/null 2>&1 || missing=1
if [ -n "$missing" ]; then
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends $PKGS
fi
scripts/testbed/guest.sh >/dev/null
KUBEBAKE_VMTEST=1 exec go test ./firstboot/vmtest/ -run TestFirstbootInVM -count=1 -v -timeout 20m "$@"
