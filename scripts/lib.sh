# Shared by scripts/demo.sh and scripts/test.sh: idempotent machine setup.
# Sourced, not run.

# Build output lives outside the clone so that every clone (and CI) reuses one build.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/cunneng/target}"

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# ensure_debs PKG...: apt-get install only the packages that are missing.
ensure_debs() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    echo "setup: installing ${missing[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
}

# Packages needed to build the workspace (ffmpeg-next links Debian's FFmpeg; its bindgen
# needs libclang).
BUILD_DEBS=(pkg-config gcc libc6-dev libclang-dev
            libavcodec-dev libavformat-dev libavutil-dev libswscale-dev libswresample-dev)
# Packages needed only by the tests: the browser, CJK fonts for readable failure
# screenshots, ffprobe/ffmpeg to check recordings.
TEST_DEBS=(chromium fonts-noto-cjk ffmpeg)

# Garage, the S3-compatible server the storage tests run against (tests/src/garage.rs). Built
# from crates.io once into a cache outside the clone (about 12 min cold on 2 cores, 56 MB),
# with its own target directory so that it never mixes with the workspace build.
GARAGE_VERSION=2.5.0
GARAGE_ROOT="${GARAGE_ROOT:-$HOME/.cache/cunneng/garage}"

# ensure_garage: install Garage $GARAGE_VERSION into $GARAGE_ROOT unless it is there; export
# GARAGE_BIN for the tests.
ensure_garage() {
  local bin="$GARAGE_ROOT/bin/garage"
  if ! { [ -x "$bin" ] && "$bin" --version 2>/dev/null | grep -q "cargo:$GARAGE_VERSION\b"; }; then
    echo "setup: building garage $GARAGE_VERSION into $GARAGE_ROOT (once; about 12 min)"
    CARGO_TARGET_DIR="$HOME/.cache/cunneng/garage-build" \
      cargo install "garage@$GARAGE_VERSION" --locked --root "$GARAGE_ROOT"
  fi
  export GARAGE_BIN="$bin"
}

# ensure_web_deps: the third-party browser code the binary embeds (Apache ECharts), from the
# npm registry, pinned by web/package-lock.json; `npm ci` only when it is missing or the lock
# is newer than what is installed (web/build.rs refuses to build without it).
ensure_web_deps() {
  command -v npm >/dev/null || ensure_debs nodejs npm
  if [ ! -f web/node_modules/echarts/dist/echarts.min.js ] \
     || [ web/package-lock.json -nt web/node_modules/.package-lock.json ]; then
    echo "setup: npm ci in web/ (pinned browser libraries)"
    (cd web && npm ci --no-audit --no-fund --loglevel=error)
  fi
}

# build_binaries: the one build both README commands use. The same package selection for the
# demo and the tests (`--workspace`), so that cargo unifies features the same way and running
# one after the other recompiles nothing.
build_binaries() {
  cargo build --locked --workspace --bins
}

# cargo-fuzz, which builds and runs the fuzz targets (fuzz/README.md), installed from crates.io
# once into a cache outside the clone (about 1 min cold).
CARGO_FUZZ_VERSION=0.13.2
CARGO_FUZZ_ROOT="${CARGO_FUZZ_ROOT:-$HOME/.cache/cunneng/cargo-fuzz}"
# The fuzz crate's own target directory: its build has other flags than the workspace's, and
# a directory of its own lets CI keep it warm between runs.
FUZZ_TARGET_DIR="${FUZZ_TARGET_DIR:-$HOME/.cache/cunneng/fuzz-target}"

# ensure_cargo_fuzz: install cargo-fuzz $CARGO_FUZZ_VERSION into $CARGO_FUZZ_ROOT unless it is
# there; put it on PATH.
ensure_cargo_fuzz() {
  local bin="$CARGO_FUZZ_ROOT/bin/cargo-fuzz"
  if ! { [ -x "$bin" ] && "$bin" fuzz --version 2>/dev/null | grep -q " $CARGO_FUZZ_VERSION\$"; }; then
    echo "setup: building cargo-fuzz $CARGO_FUZZ_VERSION into $CARGO_FUZZ_ROOT (once; about 1 min)"
    CARGO_TARGET_DIR="$HOME/.cache/cunneng/cargo-fuzz-build" \
      cargo install "cargo-fuzz@$CARGO_FUZZ_VERSION" --locked --root "$CARGO_FUZZ_ROOT"
  fi
  export PATH="$CARGO_FUZZ_ROOT/bin:$PATH"
}
