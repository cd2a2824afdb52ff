#!/usr/bin/env bash
# scripts/upstream/serve.sh start|stop|status — the offline upstream's download
# site: <cache>/www over HTTP on $KUBEBAKE_UPSTREAM_ADDR (127.0.0.1:8081), with
# Range requests, one log line per request (<cache>/run/serve.log) and a PID
# file (<cache>/run/serve.pid). The server is scripts/upstream/serve/main.go
# (standard library only), built once into <cache>/bin in a throwaway module.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/common.sh"
PIDFILE=$RUN/serve.pid
BIN=$CACHE/bin/upstream-serve

build_server() {
	local key; key=$(sha256sum <"$HERE/serve/main.go" | cut -c1-12)
	[[ -x $BIN && -f $BIN.key && $(cat "$BIN.key") == "$key" ]] && return 0
	local work=$CACHE/serve-tool
	mkdir -p "$work" "$CACHE/bin"
	printf 'module kubebake.local/upstream/serve\n\ngo 1.26\n' >"$work/go.mod"
	cp "$HERE/serve/main.go" "$work/main.go"
	log "serve: building the server"
	(cd "$work" && GOWORK=off GOFLAGS=-trimpath CGO_ENABLED=0 go build -o "$BIN.tmp" .)
	mv "$BIN.tmp" "$BIN"
	echo "$key" >"$BIN.key"
}

case ${1:-} in
start)
	if alive "$PIDFILE" upstream-serve; then
		log "serve: already running (pid $(cat "$PIDFILE")) on http://$UPSTREAM_ADDR"
		exit 0
	fi
	[[ -d $CACHE/www ]] || die "no $CACHE/www: run scripts/upstream/build.sh first"
	build_server
	nohup "$BIN" -root "$CACHE/www" -addr "$UPSTREAM_ADDR" -pidfile "$PIDFILE" >>"$RUN/serve.log" 2>&1 &
	if ! wait_http "http://$UPSTREAM_ADDR/" 10; then
		tail -5 "$RUN/serve.log" >&2
		die "serve: did not answer on http://$UPSTREAM_ADDR within 10 s (log: $RUN/serve.log)"
	fi
	log "serve: http://$UPSTREAM_ADDR → $CACHE/www (pid $(cat "$PIDFILE"), log $RUN/serve.log)"
	;;
stop) stop_pid "$PIDFILE" upstream-serve serve ;;
status)
	if alive "$PIDFILE" upstream-serve; then
		log "serve: running (pid $(cat "$PIDFILE")) on http://$UPSTREAM_ADDR"
	else
		log "serve: not running"
		exit 1
	fi
	;;
*) die "usage: $0 start|stop|status" ;;
esac
