#!/usr/bin/env bash
# scripts/upstream/check.sh — smoke-test a running offline upstream (up.sh)
# from the outside, through HTTP and the registry API only: download every
# artifact of bundle-spec.yaml's URLs through the mirror, verify each against
# the checksum file served next to it (sha256sum -c, bare .sha256, GitHub's
# release JSON), make a Range request, and inspect every image with skopeo.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/common.sh"
B=http://$UPSTREAM_ADDR
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
ok() { log "ok   $*"; }
bad() { log "FAIL $*"; fail=1; }
get() { curl -fsS -o "$tmp/$(basename "$1")" "$B/$1"; }

K=dl.k8s.io/release/v1.37.2/bin/linux/amd64
for b in kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl; do
	get "$K/$b" && get "$K/$b.sha256"
	if [[ $(sha256sum <"$tmp/$b" | cut -d' ' -f1) == $(cat "$tmp/$b.sha256") ]]; then ok "$K/$b (bare .sha256)"; else bad "$K/$b"; fi
	rm -f "$tmp/$b"
done
G=github.com
sumcheck() { # sumcheck <dir url> <file> <checksum file>
	get "$1/$2" && get "$1/$3"
	if (cd "$tmp" && grep " \*\?$2\$" "$3" | sha256sum -c --quiet -); then ok "$1/$2 (sha256sum -c $3)"; else bad "$1/$2"; fi
	rm -f "$tmp/$2"
}
sumcheck $G/etcd-io/etcd/releases/download/v3.6.16 etcd-v3.6.16-linux-amd64.tar.gz SHA256SUMS
sumcheck $G/containerd/containerd/releases/download/v2.1.9 containerd-2.1.9-linux-amd64.tar.gz containerd-2.1.9-linux-amd64.tar.gz.sha256sum
sumcheck $G/opencontainers/runc/releases/download/v1.3.6 runc.amd64 runc.sha256sum
sumcheck $G/containernetworking/plugins/releases/download/v1.8.0 cni-plugins-linux-amd64-v1.8.0.tgz cni-plugins-linux-amd64-v1.8.0.tgz.sha256
sumcheck $G/flannel-io/cni-plugin/releases/download/v1.9.1-flannel1 cni-plugin-flannel-linux-amd64-v1.9.1.tgz cni-plugin-flannel-linux-amd64-v1.9.1.tgz.sha256
get $G/flannel-io/flannel/releases/download/v0.28.10/flanneld-amd64
ct=$(curl -fsS -o "$tmp/release.json" -w '%{content_type}' "$B/api.github.com/repos/flannel-io/flannel/releases/tags/v0.28.10")
want=$(python3 -c 'import json,sys; print([a["digest"] for a in json.load(open(sys.argv[1]))["assets"] if a["name"]=="flanneld-amd64"][0])' "$tmp/release.json")
if [[ $want == "sha256:$(sha256sum <"$tmp/flanneld-amd64" | cut -d' ' -f1)" ]]; then ok "flanneld-amd64 (releases API digest, $ct)"; else bad "flanneld-amd64"; fi

# Range: bytes 100-199 of kubectl → 206 and exactly those bytes.
code=$(curl -sS -o "$tmp/part" -w '%{http_code}' -r 100-199 "$B/$K/kubectl")
curl -fsS -o "$tmp/kubectl" "$B/$K/kubectl"
full=$(dd if="$tmp/kubectl" bs=100 skip=1 count=1 2>/dev/null | sha256sum)
if [[ $code == 206 && $(stat -c %s "$tmp/part") == 100 && $(sha256sum <"$tmp/part") == "$full" ]]; then ok "Range 100-199 → 206, 100 bytes, same bytes"; else bad "Range ($code)"; fi
code=$(curl -sS -o /dev/null -w '%{http_code}' "$B/$K/no-such-binary")
[[ $code == 404 ]] && ok "missing file → 404" || bad "missing file → $code"

for ref in pause:3.10 coredns/coredns:v1.15.0 flannel-io/flannel:v0.28.10 flannel-io/flannel-cni-plugin:v1.9.1-flannel1; do
	if out=$(skopeo inspect --tls-verify=false "docker://$REGISTRY_ADDR/$ref" 2>&1); then
		ok "$REGISTRY_ADDR/$ref $(python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["Digest"], d["Os"]+"/"+d["Architecture"], d["Created"])' <<<"$out")"
	else
		bad "$REGISTRY_ADDR/$ref: $out"
	fi
done
if skopeo inspect --tls-verify=false "docker://$REGISTRY_ADDR/library/traefik:v3.6.24" >/dev/null 2>&1; then
	bad "traefik is in the registry (it must not be)"
else
	ok "library/traefik:v3.6.24 absent (unavailable, as it must be)"
fi
[[ $fail == 0 ]] && log "check: all good" || die "check: failures above"
