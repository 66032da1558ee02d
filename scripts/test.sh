#!/usr/bin/env bash
# Set up this machine (idempotent) and run the whole test suite: unit tests, integration tests
# against the real binary, and the browser test (Debian's chromium, fake camera/microphone).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
ensure_debs "${BUILD_DEBS[@]}" "${TEST_DEBS[@]}"

# playwright-core for the browser test, from the npm registry, pinned by package-lock.json.
if [ ! -d tests/browser/node_modules/playwright-core ] \
   || [ tests/browser/package-lock.json -nt tests/browser/node_modules/.package-lock.json ]; then
  (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)
fi

# The integration tests run the real binary: build it first.
cargo build --locked --workspace --bins
cargo test --locked --workspace "$@"
