#!/usr/bin/env bash
# scripts/upstream/up.sh — start the offline upstream: build whatever is not
# cached (the first run compiles Kubernetes: ~15–20 min on 2 cores; later runs
# take seconds), serve <cache>/www on 127.0.0.1:8081, start the image registry
# on 127.0.0.1:5001, push the images, and print the mirrors: block for
# bundle-spec.yaml. Idempotent: what runs already is left running.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/common.sh"
t0=$SECONDS
if [[ ! -f $CACHE/kubernetes/${K8S_VERSION:-v1.37.2}/.complete ]]; then
	log "first run: this compiles Kubernetes' six binaries from source (about 15–25 min on 2 cores,"
	log "~9 GB of Go caches in $CACHE); later runs reuse the cache and take seconds"
fi
KUBEBAKE_UPSTREAM_NO_SUMMARY=1 "$HERE/build.sh"
"$HERE/serve.sh" start
"$HERE/registry.sh" start
"$HERE/registry.sh" push
log "up in $((SECONDS - t0))s; stop with scripts/upstream/down.sh"
cat <<MIRRORS

# The offline upstream ($CACHE). Add to bundle-spec.yaml:
mirrors:
  - {from: https://dl.k8s.io, to: http://$UPSTREAM_ADDR/dl.k8s.io}
  - {from: https://github.com, to: http://$UPSTREAM_ADDR/github.com}
  - {from: https://api.github.com, to: http://$UPSTREAM_ADDR/api.github.com}
  - {from: registry.k8s.io, to: $REGISTRY_ADDR}
  - {from: ghcr.io, to: $REGISTRY_ADDR}
  # docker.io/library/traefik is NOT in the offline upstream (see below): this
  # line makes its pull fail fast here instead of reaching for the internet.
  - {from: docker.io, to: $REGISTRY_ADDR}
MIRRORS
echo
cat "$CACHE/PROVENANCE.txt"
