# lib.sh — shared by the tests/dist scripts (sourced). Sets up Open MPI for
# tests on one machine and makes small models and ids.
set -euo pipefail
PY=/usr/bin/python3   # Debian's python3 with numpy (tests/ref)
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REF="$HERE/../ref"
# as root (containers, CI), Open MPI needs both; more ranks than cores: --oversubscribe;
# containers without ptrace: no single-copy (CMA) transfers between ranks
if [[ $(id -u) -eq 0 ]]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
export OMPI_MCA_btl_vader_single_copy_mechanism=none
MPIRUN=(mpirun --oversubscribe --bind-to none)
# under the AddressSanitizer build: full stacks, so that Open MPI's own leaks can be suppressed by library
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}fast_unwind_on_malloc=0"
export LSAN_OPTIONS="${LSAN_OPTIONS:+$LSAN_OPTIONS:}suppressions=$HERE/lsan-openmpi.supp:print_suppressions=0"
W="$(mktemp -d "${TMPDIR:-/tmp}/diffu-dist.XXXXXX")"
trap 'rm -rf "$W"' EXIT

# make_model DIR [mkmodel options]: the tiny preset with a 1000-token vocabulary + overrides
make_model() { local d="$1"; shift; "$BIN" mkmodel --preset tiny --vocab 1000 --out "$d" "$@" 2>/dev/null; }

# make_ids FILE TOTAL: TOTAL random int32 ids in [0, 1000), seed 7
make_ids() {
    "$PY" -c "
import numpy as np, sys
np.random.default_rng(7).integers(0, 1000, int(sys.argv[1])).astype('<i4').tofile(sys.argv[2])" "$2" "$1"
}

total() { "$PY" -c "import sys; print(sum(int(x) for x in sys.argv[1].split(',')))" "$1"; }

# expect_in FILE TEXT: fail unless FILE contains TEXT (fixed string)
expect_in() {
    if ! grep -qF -- "$2" "$1"; then
        echo "FAIL: expected in the output: $2"; echo "--- output:"; cat "$1"; exit 1
    fi
}
