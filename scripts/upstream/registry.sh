#!/usr/bin/env bash
# scripts/upstream/registry.sh start|stop|status|push — the offline upstream's
# image registry: Debian's docker-registry (the CNCF distribution registry) on
# $KUBEBAKE_UPSTREAM_REGISTRY (127.0.0.1:5001), plain HTTP, storage in
# <cache>/registry/data, PID file <cache>/run/registry.pid.
# One registry holds every upstream host's images under their repository
# paths (registry.k8s.io/pause → 127.0.0.1:5001/pause, ghcr.io/flannel-io/
# flannel → 127.0.0.1:5001/flannel-io/flannel). `push` copies the OCI layouts
# that build.sh made (skips what is already there, verifies every digest).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/common.sh"
PIDFILE=$RUN/registry.pid
CONF=$RUN/registry.yml

case ${1:-} in
start)
	if alive "$PIDFILE" docker-registry; then
		log "registry: already running (pid $(cat "$PIDFILE")) on http://$REGISTRY_ADDR"
		exit 0
	fi
	command -v docker-registry >/dev/null || die "docker-registry missing: apt-get install -y docker-registry"
	mkdir -p "$CACHE/registry/data"
	cat >"$CONF" <<YML
version: 0.1
log:
  level: info
  formatter: text
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: $CACHE/registry/data
  delete:
    enabled: true
http:
  addr: $REGISTRY_ADDR
  headers:
    X-Content-Type-Options: [nosniff]
YML
	nohup docker-registry serve "$CONF" >>"$RUN/registry.log" 2>&1 &
	echo $! >"$PIDFILE"
	if ! wait_http "http://$REGISTRY_ADDR/v2/" 15; then
		tail -5 "$RUN/registry.log" >&2
		die "registry: did not answer on http://$REGISTRY_ADDR/v2/ within 15 s (log: $RUN/registry.log)"
	fi
	log "registry: http://$REGISTRY_ADDR (pid $(cat "$PIDFILE"), storage $CACHE/registry/data, log $RUN/registry.log)"
	;;
stop) stop_pid "$PIDFILE" docker-registry registry ;;
status)
	if alive "$PIDFILE" docker-registry; then
		log "registry: running (pid $(cat "$PIDFILE")) on http://$REGISTRY_ADDR"
	else
		log "registry: not running"
		exit 1
	fi
	;;
push)
	alive "$PIDFILE" docker-registry || die "registry: not running (scripts/upstream/registry.sh start)"
	tool=$CACHE/bin/upstream-images
	[[ -x $tool ]] || die "no image tool: run scripts/upstream/build.sh images"
	n=0
	while IFS= read -r stamp; do
		dir=$(dirname "$stamp")
		up=$(cat "$dir/out/UPSTREAM_REF")   # e.g. registry.k8s.io/pause:3.10
		path=${up#*/}                       # pause:3.10 (the host is mirrored away)
		"$tool" push -layout "$dir/out/layout" -ref "$REGISTRY_ADDR/$path" | sed "s|^|[upstream] $up → |"
		n=$((n + 1))
	done < <(find "$CACHE/images" -name .complete | sort)
	log "registry: $n image(s) in http://$REGISTRY_ADDR"
	;;
*) die "usage: $0 start|stop|status|push" ;;
esac
