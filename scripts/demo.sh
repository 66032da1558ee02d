#!/usr/bin/env bash
# Set up this machine (idempotent) and run the server on its embedded defaults:
# SQLite + local directory storage under ./data, with the demo county loaded.
# Extra arguments are passed to `cunneng serve`, e.g. --addr 0.0.0.0:8080.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
ensure_debs "${BUILD_DEBS[@]}"
ensure_web_deps
build_binaries
exec "$CARGO_TARGET_DIR/debug/cunneng" serve --demo --data-dir ./data "$@"
