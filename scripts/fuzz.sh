#!/usr/bin/env bash
# Build the fuzz targets (fuzz/, cargo-fuzz and libFuzzer) and run each for a bounded time
# from its checked-in seeds. scripts/test.sh runs it after the cargo tests; longer runs by
# hand: fuzz/README.md.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET [TARGET...]]     (default: 7 s, every target)
#
# A crash fails the run and leaves the input under $FUZZ_ARTIFACTS/TARGET/; reproduce it with
# `scripts/fuzz.sh repro TARGET FILE`.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
ensure_cargo_fuzz

# cargo-fuzz's sanitizers are nightly-only rustc flags (-Zsanitizer=address, -Zunstable-options)
# and this project pins a stable toolchain (rust-toolchain.toml). RUSTC_BOOTSTRAP=1 makes that
# stable rustc accept them (and tells cargo-fuzz it may pass them): the same compiler, with its
# unstable switches unlocked. The bounded run below uses no sanitizer, whose flags are stable;
# it is set for every run all the same, so that the hand runs with `--sanitizer address`
# (fuzz/README.md) and this one are built by the same compiler configuration. Only here, for
# the fuzz crate in its own target directory: the workspace build never sees it.
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="$FUZZ_TARGET_DIR"
FUZZ_ARTIFACTS="${FUZZ_ARTIFACTS:-$HOME/.cache/cunneng/fuzz-artifacts}"
# No sanitizer: the project's crates forbid unsafe code, so a finding is a panic (an assert,
# an overflow, an index), which debug assertions and overflow checks catch; AddressSanitizer
# would double the run time for little. 16 codegen units: cargo-fuzz's default of 1 makes the
# cold build of the whole (instrumented) dependency graph far slower on a small machine.
BUILD_FLAGS=(--sanitizer none --codegen-units 16)

cd fuzz
if [ "${1:-}" = repro ]; then
  cargo fuzz run "${BUILD_FLAGS[@]}" "$2" "$3"
  exit
fi
secs="${1:-7}"
shift || true
targets=("$@")
[ "${#targets[@]}" -gt 0 ] || mapfile -t targets < <(cargo fuzz list)

start=$(date +%s)
cargo fuzz build "${BUILD_FLAGS[@]}"
echo "fuzz: targets built in $(( $(date +%s) - start )) s"
# Lints of the fuzz crate (outside the workspace: the workspace's clippy never sees it). A
# check build beside the fuzz build in the same target directory: cold once (20 min on the busy
# 2-core machine), then seconds.
lint_start=$(date +%s)
cargo clippy --all-targets --quiet -- -D warnings
echo "fuzz: clippy clean in $(( $(date +%s) - lint_start )) s"

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
failed=()
for t in "${targets[@]}"; do
  mkdir -p "$scratch/$t" "$FUZZ_ARTIFACTS/$t"
  # New inputs go to the scratch corpus (first directory); the checked-in seeds are only read.
  # -timeout: an input that takes 10 s is a hang; -rss_limit_mb: memory is bounded.
  if cargo fuzz run "${BUILD_FLAGS[@]}" "$t" "$scratch/$t" "corpus/$t" -- \
       -max_total_time="$secs" -timeout=10 -rss_limit_mb=1024 -print_final_stats=1 \
       -artifact_prefix="$FUZZ_ARTIFACTS/$t/" >"$scratch/$t.log" 2>&1; then
    echo "fuzz: $t ok: $(grep -m1 -o 'stat::number_of_executed_units: *[0-9]*' "$scratch/$t.log" | grep -o '[0-9]*$') runs in ${secs} s, corpus $(find "$scratch/$t" "corpus/$t" -type f | wc -l)"
  else
    tail -40 "$scratch/$t.log"
    echo "fuzz: $t FAILED; input in $FUZZ_ARTIFACTS/$t/ (scripts/fuzz.sh repro $t FILE)"
    failed+=("$t")
  fi
done
if [ "${#failed[@]}" -gt 0 ]; then
  echo "fuzz: ${#failed[@]} target(s) failed: ${failed[*]}"
  exit 1
fi
echo "fuzz: ${#targets[@]} targets ok, $(( $(date +%s) - start )) s in all"
