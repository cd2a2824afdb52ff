#!/usr/bin/env bash
# scripts/e2e/build.sh — the end-to-end test's build phase, as a site would
# run it on its build machine (scripts/demo.sh is the same flow for a human):
#
#   1. the offline upstream (scripts/upstream/up.sh: real binaries built from
#      the Go module proxy, cached in ~/.cache/kubebake-upstream; the first
#      run compiles Kubernetes, ~15–20 min on 2 cores);
#   2. the e2e spec: bundle-spec.yaml plus, exactly as demo.sh makes it,
#      `mirrors:` to the offline upstream, `credentials:` for harbor.od.com
#      and `registry.endpoint`. The endpoint is a build-machine-only setting:
#      it tells kubebake where to dial harbor.od.com on this machine (the name
#      does not resolve here) and appears in no bundle; the hosts reach
#      harbor.od.com through the bind9 kubebake configures on hdss7-11;
#   3. the PKI (kubebake certs; it includes harbor.od.com's certificate);
#   4. the Harbor stand-in (scripts/harbor-standin: Debian's docker-registry,
#      TLS from that certificate, a login; the public project readable anonymously, as Harbor serves it) on 127.0.0.1:$KUBEBAKE_E2E_HARBOR_PORT
#      (5444) for the build's mirror step;
#   5. kubebake build (pull → mirror → bake) into e2e/out, then verify;
#   6. the test pods' image, as the site would put it into its Harbor:
#      a busybox image (Debian's busybox-static, built by the offline
#      upstream's image tool) pushed to harbor.od.com/public/busybox:<tag>
#      by scripts/e2e/pushimage (go-containerregistry; no docker).
#
# Everything it starts (upstream server and registry, the stand-in) is
# stopped on exit: the test starts the site's Harbor itself, inside the ops
# host's network namespace, from the same storage directory.
#
# Caches (outside the repo, so `git clean`, `make clean` and fresh worktrees
# keep them; one machine's runs share them):
#   ${KUBEBAKE_E2E_CACHE:-~/.cache/kubebake-e2e}/
#     state/   the PKI and secrets: kept, so bundles are byte-identical across
#              runs and the bake cache stays warm
#     store/   pulled artifacts and images (content-addressed, ~1 GB)
#     harbor/  the stand-in's storage, password, config.yml
#     bundle-spec.yaml, bundle-spec.lock, upstream.fingerprint
#     images/busybox/  the test image's OCI layout; bin/ the helper binaries
# Bundles go to e2e/out (gitignored): what the test boots.
#
# The last lines on stdout are KEY=VALUE lines the test reads
# (KUBEBAKE_E2E_OUT=…, KUBEBAKE_E2E_STATE=…, …).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
C=${KUBEBAKE_E2E_CACHE:-$HOME/.cache/kubebake-e2e}
mkdir -p "$C/bin" "$C/harbor" "$C/images"
C=$(cd "$C" && pwd)
out=$root/e2e/out
harbor_addr=127.0.0.1:${KUBEBAKE_E2E_HARBOR_PORT:-5444}
kb=$root/bin/kubebake
t0=$SECONDS
step() { printf '\n== [e2e build %4ds] %s\n' $((SECONDS - t0)) "$*"; }

exec 8>"$C/.build.lock"
flock 8

need=()
command -v docker-registry >/dev/null 2>&1 || need+=(docker-registry)
command -v curl >/dev/null 2>&1 || need+=(curl)
if [ ${#need[@]} -gt 0 ]; then
	echo "installing ${need[*]} (Debian packages)"
	DEBIAN_FRONTEND=noninteractive apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

stop() {
	set +e
	if [ -f "$C/harbor/build.pid" ]; then
		kill "$(cat "$C/harbor/build.pid")" 2>/dev/null
		rm -f "$C/harbor/build.pid"
	fi
	"$root/scripts/upstream/down.sh" >/dev/null 2>&1
}
trap stop EXIT
# A stand-in a killed run left behind holds the port: stop it (only if the
# PID is still that registry).
if [ -f "$C/harbor/build.pid" ]; then
	pid=$(cat "$C/harbor/build.pid")
	if [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q "harbor-standin.*$C/harbor"; then
		echo "stopping the Harbor stand-in a previous run left (pid $pid)"
		kill "$pid" 2>/dev/null || true
		sleep 1
	fi
	rm -f "$C/harbor/build.pid"
fi

step "kubebake (make build)"
make -s build

step "offline upstream (build if not cached, serve, registry)"
"$root/scripts/upstream/up.sh" >"$C/upstream.log" 2>&1 || { tail -40 "$C/upstream.log"; exit 1; }
grep -E '^\[upstream' "$C/upstream.log" | tail -3
# shellcheck source=scripts/upstream/common.sh
. "$root/scripts/upstream/common.sh"
UPCACHE=$CACHE

step "the e2e spec: bundle-spec.yaml + mirrors + credentials + registry.endpoint (build machine only) + extraArgs for TCG"
# extraArgs: the QEMU node runs the control plane under TCG, ~45x slower
# than a real core (kube-apiserver /readyz 150 s after its start here, 3.5 s
# natively). With the default 10 s renew deadline the controller-manager and
# scheduler lost their leases and restarted in a loop (3 restarts each in
# 10 min, no pod ever created), and the node controller marked the node
# NotReady between two status updates. These flags are what a site with
# slow hosts would set; nothing else differs from the seed's spec.
site_spec "$harbor_addr" < bundle-spec.yaml | awk '
  /^extraArgs: \{\}$/ {
    print "extraArgs:"
    print "  kubeControllerManager:"
    print "    leader-elect-lease-duration: 60s"
    print "    leader-elect-renew-deadline: 45s"
    print "    leader-elect-retry-period: 5s"
    print "    node-monitor-grace-period: 120s"
    print "  kubeScheduler:"
    print "    leader-elect-lease-duration: 60s"
    print "    leader-elect-renew-deadline: 45s"
    print "    leader-elect-retry-period: 5s"
    found = 1
    next
  }
  { print }
  END { if (!found) { print "build.sh: no \"extraArgs: {}\" line in bundle-spec.yaml to put the TCG settings in" > "/dev/stderr"; exit 1 } }
' >"$C/bundle-spec.yaml.tmp"
mv "$C/bundle-spec.yaml.tmp" "$C/bundle-spec.yaml"
# The spec differs from bundle-spec.yaml only in those settings.
diff bundle-spec.yaml "$C/bundle-spec.yaml" | grep '^[<>]' || true
$kb validate -f "$C/bundle-spec.yaml"

step "PKI (issued once into $C/state; it includes Harbor's certificate)"
$kb certs -f "$C/bundle-spec.yaml" --state "$C/state" >/dev/null

step "Harbor stand-in on $harbor_addr for the build (TLS: harbor.od.com, login; public project readable anonymously)"
[ -s "$C/harbor/password" ] || (umask 077; head -c 18 /dev/urandom | base64 >"$C/harbor/password")
go build -o "$C/bin/harbor-standin" ./scripts/harbor-standin
go build -o "$C/bin/pushimage" ./scripts/e2e/pushimage
"$C/bin/harbor-standin" -state "$C/state" -dir "$C/harbor" -addr "$harbor_addr" -user admin \
	-password-file "$C/harbor/password" >"$C/harbor/build.log" 2>&1 &
echo $! >"$C/harbor/build.pid"
ok=
for _ in $(seq 1 100); do
	if curl -s -o /dev/null --cacert "$C/state/pki/ca.pem" --resolve "harbor.od.com:${harbor_addr##*:}:${harbor_addr%:*}" \
		"https://harbor.od.com:${harbor_addr##*:}/v2/"; then ok=1; break; fi
	sleep 0.1
done
[ -n "$ok" ] || { cat "$C/harbor/build.log"; echo "the Harbor stand-in did not answer"; exit 1; }
export HARBOR_USERNAME=admin HARBOR_PASSWORD
HARBOR_PASSWORD=$(cat "$C/harbor/password")

step "kubebake build: pull → mirror → bake into e2e/out"
# As demo.sh: a lock pinned against another build of the offline upstream
# would bake the old bytes; drop it when the upstream changed.
fp=$(fingerprint)
if [ -f "$C/bundle-spec.lock" ] && [ "$(cat "$C/upstream.fingerprint" 2>/dev/null)" != "$fp" ]; then
	echo "the offline upstream changed since the lock was written: dropping it"
	rm -f "$C/bundle-spec.lock"
fi
$kb build -f "$C/bundle-spec.yaml" --state "$C/state" --store "$C/store" --out "$out"
echo "$fp" >"$C/upstream.fingerprint"
$kb verify "$out"/*.tar.gz --ca "$C/state/pki/ca.pem" --ca "$C/state/pki/front-proxy-ca.pem"

step "the test pods' image: busybox → harbor.od.com/public/busybox (as the site pushes it)"
bb=$UPCACHE/busybox/debian/out/busybox
[ -x "$bb" ] || { echo "no $bb: scripts/upstream/build.sh busybox"; exit 1; }
bbver=$(sed -n 's/^Debian busybox-static \(.*:\)\{0,1\}\([0-9.]*\).*/\2/p' "$UPCACHE/busybox/debian/out/PROVENANCE")
[ -n "$bbver" ] || bbver=debian
layout=$C/images/busybox/$bbver
if [ ! -f "$layout/.complete" ]; then
	rm -rf "$layout"
	"$UPCACHE/bin/upstream-images" build -out "$layout/layout" -name busybox -version "$bbver" \
		-created "${SOURCE_DATE:-2025-11-29T00:00:00Z}" -busybox "$bb" -entrypoint /bin/sh \
		-label "org.kubebake.e2e=the end-to-end test's pod image: Debian's busybox-static $(cat "$UPCACHE/busybox/debian/out/PROVENANCE")"
	touch "$layout/.complete"
fi
test_image=harbor.od.com/public/busybox:$bbver
"$C/bin/pushimage" -layout "$layout/layout" -ref "$test_image" -endpoint "$harbor_addr" \
	-ca "$C/state/pki/ca.pem" -user admin -password-file "$C/harbor/password"

step "done in $((SECONDS - t0))s"
cat <<EOF
KUBEBAKE_E2E_OUT=$out
KUBEBAKE_E2E_STATE=$C/state
KUBEBAKE_E2E_SPEC=$C/bundle-spec.yaml
KUBEBAKE_E2E_HARBOR_DIR=$C/harbor
KUBEBAKE_E2E_HARBOR_PASSWORD_FILE=$C/harbor/password
KUBEBAKE_E2E_HARBOR_STANDIN=$C/bin/harbor-standin
KUBEBAKE_E2E_TEST_IMAGE=$test_image
EOF
