#!/usr/bin/env bash
# deploy/setup.sh — one command from a fresh Debian 12 machine to a result.
#
#   bash deploy/setup.sh main    install what is missing, build, run the main job on the embedded default
#   bash deploy/setup.sh test    install what is missing (with python3-torch, the tests' PyTorch reference),
#                                build (Release + AddressSanitizer), run every test
#   bash deploy/setup.sh build   install what is missing and build only
#   bash deploy/setup.sh train   also install the optional training tools (python3-torch,
#                                python3-matplotlib; train/README.md), build; never needed to run diffu
#   bash deploy/setup.sh fuzz [S] install clang + libFuzzer, run every fuzz target S seconds (tests/fuzz)
#
# As root it installs missing Debian packages itself; otherwise it prints the
# exact apt-get line (for clusters that use environment modules instead).
# Environment: DIFFU_BUILD (build dir, default ./build), DIFFU_CACHE (models and
# vocabulary cache, default ~/.cache/diffu), DIFFU_JOBS (build jobs, default nproc).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${DIFFU_BUILD:-$ROOT/build}"
ASAN_BUILD="${DIFFU_ASAN_BUILD:-$ROOT/build-asan}"
CACHE="${DIFFU_CACHE:-$HOME/.cache/diffu}"
JOBS="${DIFFU_JOBS:-$(nproc)}"
export DIFFU_CACHE="$CACHE"

say() { echo "[setup] $*" >&2; }

PKGS=(build-essential cmake pkg-config libopenmpi-dev openmpi-bin libopenblas-dev libprotobuf-c-dev
      protobuf-c-compiler zlib1g-dev libpcre2-dev libutf8proc-dev libdnnl-dev python3 python3-numpy nodejs npm)

install_deps() {
    local missing=()
    if [[ "${1:-}" == train ]]; then PKGS+=(python3-torch python3-matplotlib); fi
    # the suite's PyTorch reference (tests/forward/check_precision.py: the bf16 / int8 forwards against torch)
    if [[ "${1:-}" == test ]]; then PKGS+=(python3-torch); fi
    for p in "${PKGS[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    # node/npm may come from elsewhere than Debian's packages: accept working binaries
    if command -v node >/dev/null && command -v npm >/dev/null; then
        local keep=()
        for p in "${missing[@]}"; do [[ "$p" == nodejs || "$p" == npm ]] || keep+=("$p"); done
        missing=("${keep[@]+"${keep[@]}"}")
    fi
    if ((${#missing[@]} == 0)); then return 0; fi
    if [[ $(id -u) -eq 0 ]]; then
        say "installing: ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    else
        echo "diffu setup: missing Debian packages; install them with:" >&2
        echo "  sudo apt-get install -y ${missing[*]}" >&2
        exit 1
    fi
}

build() {
    say "building $BUILD"
    cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
    cmake --build "$BUILD" -j "$JOBS"
}

build_asan() {
    say "building $ASAN_BUILD (AddressSanitizer + UBSan)"
    cmake -S "$ROOT" -B "$ASAN_BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDIFFU_SANITIZE=ON >/dev/null
    cmake --build "$ASAN_BUILD" -j "$JOBS"
}

fetch_vocab() {
    if [[ -x "$ROOT/deploy/fetch_vocab.sh" || -f "$ROOT/deploy/fetch_vocab.sh" ]]; then
        bash "$ROOT/deploy/fetch_vocab.sh" >/dev/null
    fi
}

cmd="${1:-}"
case "$cmd" in
build)
    install_deps; fetch_vocab; build ;;
test)
    install_deps test; fetch_vocab; build; build_asan
    say "running the test suite (ctest, Release build)"
    rc=0
    ctest --test-dir "$BUILD" --output-on-failure -LE asan-only || rc=1
    say "running the sanitizer suite (ctest -L asan, ASan build)"
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 ctest --test-dir "$ASAN_BUILD" --output-on-failure -L asan || rc=1
    exit $rc ;;
train)
    install_deps train; fetch_vocab; build
    /usr/bin/python3 -c "import torch, matplotlib; print('[setup] training tools: torch', torch.__version__, '/ matplotlib', matplotlib.__version__)" >&2 ;;
fuzz)
    PKGS+=(clang libclang-rt-14-dev); install_deps; fetch_vocab
    exec bash "$ROOT/tests/fuzz/run_all.sh" "${2:-60}" ;;
main)
    install_deps; fetch_vocab; build
    exec bash "$ROOT/deploy/main_job.sh" ;;
*)
    sed -n '2,14p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    exit 2 ;;
esac
