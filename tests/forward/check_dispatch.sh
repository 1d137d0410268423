#!/usr/bin/env bash
# check_dispatch.sh — the GEMM dispatch (model/gemm.h) and its forced fallback: with the
# CPU capped to AVX2 (DIFFU_ISA=avx2, as on an AVX2-only machine) `auto` picks fp32
# OpenBLAS, bf16 and int8 are refused naming the missing instructions; a bad value is a
# one-line error; the suite's own environment (tests/common/ctest_env.cmake) is fp32.
# Reference: the rules stated in gemm.h (no numbers: the accuracy of each path is
# checked by check_precision.py / check_forward.sh).
set -euo pipefail
BIN="$1"
d=$(mktemp -d); trap 'rm -rf "$d"' EXIT
"$BIN" mkmodel --preset tiny --vocab 1000 --out "$d/m" 2>/dev/null
/usr/bin/python3 -c "import numpy as np, sys; np.arange(1, 9, dtype='<i4').tofile(sys.argv[1])" "$d/ids.bin"
L=(logits --model "$d/m" --ids "$d/ids.bin" --out "$d/o.bin")
want() { grep -qF -- "$1" "$d/e" || { echo "FAIL: expected '$1' in:"; cat "$d/e"; exit 1; }; echo "ok: $1"; }
[[ "${DIFFU_PRECISION:-}" == fp32 ]] || { echo "FAIL: the test environment has DIFFU_PRECISION='${DIFFU_PRECISION:-}'"; exit 1; }
"$BIN" "${L[@]}" 2>"$d/e"; want "memory plan: gemm fp32 OpenBLAS sgemm"
DIFFU_ISA=avx2 "$BIN" "${L[@]}" --precision auto 2>"$d/e"; want "gemm fp32 OpenBLAS sgemm (cpu avx2, capped by DIFFU_ISA)"
! DIFFU_ISA=avx2 "$BIN" "${L[@]}" --precision bf16 2>"$d/e"; want "bf16 needs AVX512_BF16 or AMX-BF16, which this CPU lacks (cpu avx2)"
! DIFFU_ISA=avx2 "$BIN" "${L[@]}" --precision int8 2>"$d/e"; want "int8 needs AVX512_VNNI or AMX-INT8, which this CPU lacks"
! DIFFU_PRECISION=fp8 "$BIN" "${L[@]}" 2>"$d/e"; want "DIFFU_PRECISION=fp8: expected fp32, bf16, int8 or auto"
! "$BIN" "${L[@]}" --precision fp16 2>"$d/e"; want "--precision: 'fp16' is not one of fp32, bf16, int8, auto"
echo PASS
