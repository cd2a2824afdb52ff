#!/usr/bin/env bash
# scripts/upstream/down.sh — stop the offline upstream's server and registry
# (by their PID files in <cache>/run). Idempotent; the caches stay.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
"$HERE/serve.sh" stop
"$HERE/registry.sh" stop
