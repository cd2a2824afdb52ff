#!/usr/bin/env bash
# make demo-standins: the quick demo (seconds, no upstream): bake the seed's
# cluster from stand-in artifacts (shell scripts that say what they are).
# Everything else is real: the cfssl PKI, the kubeconfigs, units, bundles,
# verification and the byte-identical rebuild. `make demo` runs the whole
# flow with real binaries built from the Go module proxy.
set -euo pipefail
cd "$(dirname "$0")/.."
kb=bin/kubebake
d=demo-standins
step() { printf '\n== %s\n' "$*"; }

step "validate bundle-spec.yaml"
$kb validate -f bundle-spec.yaml

step "stand-in artifacts (as DIR/<name>/<file> + published checksum file)"
go run ./scripts/standins -f bundle-spec.yaml -o $d/artifacts

step "bake the five hosts"
$kb bake -f bundle-spec.yaml --artifacts $d/artifacts --state $d/state --store $d/store --out $d/out

step "verify every bundle against the PKI in state/"
$kb verify $d/out/*.tar.gz --ca $d/state/pki/ca.pem --ca $d/state/pki/front-proxy-ca.pem

step "openssl verify every certificate"
n=0
for c in $d/state/pki/*.pem; do
  case $c in *-key.pem|*/ca.pem|*/front-proxy-ca.pem) continue ;; esac
  ca=$d/state/pki/ca.pem
  case $c in */front-proxy-client.pem) ca=$d/state/pki/front-proxy-ca.pem ;; esac
  openssl verify -CAfile "$ca" "$c" >/dev/null
  n=$((n + 1))
done
echo "openssl verify: $n certificates OK"

step "the certificate ledger"
$kb certs -f bundle-spec.yaml --state $d/state

step "what hdss7-21 gets"
$kb inspect $d/out/hdss7-21.tar.gz --plan
echo
tar tzf $d/out/hdss7-21.tar.gz > $d/hdss7-21.list
head -n 12 $d/hdss7-21.list
echo "... ($(wc -l < $d/hdss7-21.list) entries, listed by tar tzf)"

step "rebuild under another TZ, umask and locale: byte-identical?"
rm -rf $d/out2
( umask 077; cd /tmp && TZ=Asia/Shanghai LC_ALL=C.UTF-8 "$OLDPWD/$kb" bake -f "$OLDPWD/bundle-spec.yaml" \
    --artifacts "$OLDPWD/$d/artifacts" --state "$OLDPWD/$d/state" --store "$OLDPWD/$d/store" --out "$OLDPWD/$d/out2" >/dev/null )
if cmp -s $d/out/SHA256SUMS $d/out2/SHA256SUMS && for f in $d/out/*.tar.gz; do cmp -s "$f" "$d/out2/$(basename "$f")" || exit 1; done; then
  echo "identical:"; cat $d/out/SHA256SUMS
else
  echo "DIFFERENT bundles on rebuild" >&2; exit 1
fi
