#!/usr/bin/env bash
# Set up this machine (idempotent) and run the whole test suite: unit tests, integration tests
# against the real binary and a real S3 server (Garage), and the browser test (Debian's
# chromium, fake camera/microphone).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
ensure_debs "${BUILD_DEBS[@]}" "${TEST_DEBS[@]}"
# A real S3 server for the storage tests (Garage; exports GARAGE_BIN).
ensure_garage

# playwright-core for the browser test and TypeScript for the pages' type check, from the npm
# registry, pinned by package-lock.json.
if [ ! -d tests/browser/node_modules/playwright-core ] || [ ! -d tests/browser/node_modules/typescript ] \
   || [ tests/browser/package-lock.json -nt tests/browser/node_modules/.package-lock.json ]; then
  (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)
fi

# The integration tests run the real binary: build it first (the same build as scripts/demo.sh),
# with the browser libraries it embeds.
ensure_web_deps
build_binaries
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# --no-fail-fast: one run reports every failing test, not only the first failing binary.
cargo test --locked --workspace --no-fail-fast "$@" 2>&1 | tee "$log"
# One closing line for the whole run (cargo prints one per test binary).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i) ~ /^passed/) p += $(i-1); if ($(i) ~ /^failed/) f += $(i-1) } }
     END { printf "\ntotal: %d passed, %d failed\n", p, f }' "$log"

# The fuzz targets (fuzz/README.md), each for a few seconds from its checked-in seeds; a crash
# fails the run. FUZZ_SECS sets the seconds per target (0 skips them).
if [ "${FUZZ_SECS:-7}" != 0 ]; then
  scripts/fuzz.sh "${FUZZ_SECS:-7}"
fi
