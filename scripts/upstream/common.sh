# shellcheck shell=bash disable=SC2034
# scripts/upstream/common.sh — shared settings of the offline upstream scripts
# (sourced, not run).
CACHE=${KUBEBAKE_UPSTREAM_CACHE:-$HOME/.cache/kubebake-upstream}
mkdir -p "$CACHE/run"
CACHE=$(cd "$CACHE" && pwd)
RUN=$CACHE/run
UPSTREAM_ADDR=${KUBEBAKE_UPSTREAM_ADDR:-127.0.0.1:8081}
REGISTRY_ADDR=${KUBEBAKE_UPSTREAM_REGISTRY:-127.0.0.1:5001}

log() { printf '[upstream %s] %s\n' "$(date +%H:%M:%S)" "$*"; }
die() { printf '[upstream] ERROR: %s\n' "$*" >&2; exit 1; }

# alive <pidfile> <cmdline word>: the PID in the file runs and is ours (its
# command line contains the word), so a recycled PID is never signalled.
alive() {
	local pid
	pid=$(cat "$1" 2>/dev/null) || return 1 # the server removes its own on exit
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	[[ -r /proc/$pid/cmdline ]] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$2"
}

# stop_pid <pidfile> <cmdline word> <what>: SIGTERM, wait up to 10 s, SIGKILL.
stop_pid() {
	local pid i
	if ! alive "$1" "$2"; then
		rm -f "$1"
		log "$3: not running"
		return 0
	fi
	pid=$(cat "$1" 2>/dev/null) || return 0
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < 100; i++)); do
		alive "$1" "$2" || break
		sleep 0.1
	done
	if alive "$1" "$2"; then
		log "$3: still running after 10 s, SIGKILL"
		kill -KILL "$pid" 2>/dev/null || true
	fi
	rm -f "$1"
	log "$3: stopped (pid $pid)"
}

# wait_http <url> <seconds>: poll until the URL answers.
wait_http() {
	local i
	for ((i = 0; i < $2 * 10; i++)); do
		curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}

# fingerprint: a digest of what the upstream serves (every published checksum
# file under www/, flannel's releases-API JSON, each image's index.json). It
# changes whenever a rebuild changes a served file's bytes (a new build
# recipe, a newer Debian package), which a real upstream never does under the
# same tag; a bundle-spec.lock pinned against the old bytes then has to go.
fingerprint() {
	{
		(cd "$CACHE/www" 2>/dev/null && find . -type f \( -name '*.sha256*' -o -name SHA256SUMS -o -path './api.github.com/*' \) -print0 |
			sort -z | xargs -0 -r sha256sum)
		(cd "$CACHE/images" 2>/dev/null && find . -path '*/out/layout/index.json' -print0 | sort -z | xargs -0 -r sha256sum)
	} | sha256sum | cut -d' ' -f1
}

# site_spec HARBOR_ADDR < bundle-spec.yaml: the spec a build on this machine
# uses: mirrors: to the offline upstream, credentials: for harbor.od.com from
# HARBOR_USERNAME/HARBOR_PASSWORD, and registry.endpoint HARBOR_ADDR (where
# the build machine dials harbor.od.com; TLS still checks the name, and no
# bundle carries it). Shared by make demo and the e2e build.
site_spec() {
	awk -v up="$UPSTREAM_ADDR" -v reg="$REGISTRY_ADDR" -v harbor="$1" '
	  /^mirrors: \[\]$/ {
	    print "mirrors:"
	    print "  - {from: https://dl.k8s.io, to: http://" up "/dl.k8s.io}"
	    print "  - {from: https://github.com, to: http://" up "/github.com}"
	    print "  - {from: https://api.github.com, to: http://" up "/api.github.com}"
	    print "  - {from: registry.k8s.io, to: http://" reg "}"
	    print "  - {from: ghcr.io, to: http://" reg "}"
	    print "  - {from: docker.io, to: http://" reg "}"
	    next
	  }
	  /^credentials: \[\]$/ {
	    print "credentials:"
	    print "  - {registry: harbor.od.com, usernameEnv: HARBOR_USERNAME, passwordEnv: HARBOR_PASSWORD}"
	    next
	  }
	  { print }
	  /^  host: harbor.od.com$/ { print "  endpoint: " harbor }
	'
}
