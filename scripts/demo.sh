#!/usr/bin/env bash
# make demo: the whole flow for the seed's cluster on this machine, which
# reaches no release site. It starts the offline upstream (scripts/upstream:
# real binaries built from the Go module proxy, served as the release sites
# lay them out, images in a local registry) and a stand-in for Harbor
# (Debian's docker-registry with TLS from kubebake's own harbor.od.com
# certificate, a login for pushes, the public project readable anonymously as on Harbor), runs `kubebake build` (pull → mirror →
# bake) with mirrors: pointing at the upstream, verifies the bundles, and
# prints the bundle table and the certificate ledger. Everything it started
# is stopped on exit. Output lands under demo/.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
kb=$root/bin/kubebake
d=$root/demo
harbor_addr=${KUBEBAKE_DEMO_HARBOR:-127.0.0.1:5443}
step() { printf '\n== %s\n' "$*"; }

cat <<'NOTE'
kubebake demo. The first run compiles Kubernetes v1.37.2, etcd, CoreDNS and
flannel from the Go module proxy: about 15-20 minutes on 2 cores, ~5 GB of
cache in ~/.cache/kubebake-upstream. Later runs reuse it and take a minute.
(`make demo-standins` is the seconds-long demo with stand-in binaries.)
NOTE

need=()
command -v docker-registry >/dev/null 2>&1 || need+=(docker-registry)
command -v curl >/dev/null 2>&1 || need+=(curl)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]} (Debian packages)"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

mkdir -p "$d/bin" "$d/harbor"
stop() {
  set +e
  if [ -f "$d/harbor/pid" ]; then kill "$(cat "$d/harbor/pid")" 2>/dev/null; rm -f "$d/harbor/pid"; fi
  "$root/scripts/upstream/down.sh" >/dev/null 2>&1
  echo "demo: stopped the offline upstream and the Harbor stand-in"
}
trap stop EXIT

step "offline upstream (build if not cached, serve, registry)"
"$root/scripts/upstream/up.sh" > "$d/upstream.log" 2>&1 || { tail -40 "$d/upstream.log"; exit 1; }
grep -E '^\[upstream' "$d/upstream.log" | tail -8
. "$root/scripts/upstream/common.sh"

step "the demo's spec: bundle-spec.yaml + mirrors to the offline upstream + Harbor's endpoint"
# harbor.od.com does not resolve here: registry.endpoint says where kubebake
# reaches it; TLS still checks the name, and the bundles still say harbor.od.com.
site_spec "$harbor_addr" < bundle-spec.yaml > "$d/bundle-spec.yaml.tmp"
mv "$d/bundle-spec.yaml.tmp" "$d/bundle-spec.yaml"
grep -A7 '^mirrors:' "$d/bundle-spec.yaml"
$kb validate -f "$d/bundle-spec.yaml"

step "PKI (issued once into demo/state; it includes Harbor's certificate)"
$kb certs -f "$d/bundle-spec.yaml" --state "$d/state" > /dev/null

step "Harbor stand-in on $harbor_addr (TLS: harbor.od.com, login; public project readable anonymously)"
[ -s "$d/harbor/password" ] || (umask 077; head -c 18 /dev/urandom | base64 > "$d/harbor/password")
go build -o "$d/bin/harbor-standin" ./scripts/harbor-standin
"$d/bin/harbor-standin" -state "$d/state" -dir "$d/harbor" -addr "$harbor_addr" -user admin \
  -password-file "$d/harbor/password" -public-projects public > "$d/harbor/log" 2>&1 &
echo $! > "$d/harbor/pid"
for _ in $(seq 1 100); do
  curl -s -o /dev/null --cacert "$d/state/pki/ca.pem" --resolve "harbor.od.com:${harbor_addr##*:}:${harbor_addr%:*}" \
    "https://harbor.od.com:${harbor_addr##*:}/v2/" && break
  sleep 0.1
done
echo "listening (pid $(cat "$d/harbor/pid"))"
export HARBOR_USERNAME=admin HARBOR_PASSWORD
HARBOR_PASSWORD=$(cat "$d/harbor/password")

step "kubebake build: pull → mirror → bake"
# demo/bundle-spec.lock pins each artifact's and image's digest as the upstream
# served it when the lock was written, and pull (without --locked) keeps a
# locked digest rather than asking the checksum URL again. The offline
# upstream is rebuilt in place under the same tags (e.g. containerd: Debian's
# 1.6 repackaged, then built from source), so when what it serves changed, the
# old lock would bake the old bytes from the store: drop it and let pull pin
# afresh.
fp=$(fingerprint)
if [ -f "$d/bundle-spec.lock" ] && [ "$(cat "$d/upstream.fingerprint" 2>/dev/null)" != "$fp" ]; then
  echo "the offline upstream changed since demo/bundle-spec.lock was written: dropping it, pull pins the new files"
  rm -f "$d/bundle-spec.lock"
fi
$kb build -f "$d/bundle-spec.yaml" --state "$d/state" --store "$d/store" --out "$d/out"
echo "$fp" > "$d/upstream.fingerprint"

step "verify every bundle against the PKI"
$kb verify "$d"/out/*.tar.gz --ca "$d/state/pki/ca.pem" --ca "$d/state/pki/front-proxy-ca.pem"

step "the bundles"
printf '%-18s %12s  %s\n' BUNDLE BYTES SHA256
while read -r sum file; do
  printf '%-18s %12s  %s\n' "$file" "$(stat -c %s "$d/out/$file")" "$sum"
done < "$d/out/SHA256SUMS"

step "what hdss7-21 preloads (images/, as nodes pull them from Harbor)"
$kb inspect "$d/out/hdss7-21.tar.gz" | grep -E '^images|^host' || true

step "the certificate ledger"
$kb certs -f "$d/bundle-spec.yaml" --state "$d/state"
