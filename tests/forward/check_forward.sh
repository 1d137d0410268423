#!/usr/bin/env bash
# check_forward.sh — our logits against the independent NumPy reference
# (tests/ref/dream_forward_ref.py, written from the public Hugging Face Dream
# modeling code) on one tiny configuration.
#
# usage: check_forward.sh DIFFU_BIN CASE_NAME WRITER LENGTHS PAD_TO [model options...]
#   WRITER  diffu  -> the model is made by `diffu mkmodel --preset tiny [options]`
#           numpy  -> by tests/ref/make_checkpoint.py [options] (an independent writer)
#   LENGTHS comma-separated sequence lengths (a ragged batch for diffu; the
#           reference left-pads them to PAD_TO, or to the longest when PAD_TO is 0,
#           with position_ids = cumsum(mask) - 1, as Dream's generation code does)
# Tolerance: max |ours - ref| <= 1e-4 x max |ref| and identical argmax in every row
# (compare_logits.py; near-ties within 10x the tolerance are reported, not failed).
set -euo pipefail
BIN="$1"; NAME="$2"; WRITER="$3"; LENGTHS="$4"; PADTO="$5"; shift 5
HERE="$(cd "$(dirname "$0")" && pwd)"
REF="$HERE/../ref"
PY=/usr/bin/python3
W="$(mktemp -d "${TMPDIR:-/tmp}/diffu-fwd-$NAME.XXXXXX")"
trap 'rm -rf "$W"' EXIT
if [[ "$WRITER" == diffu ]]; then
    "$BIN" mkmodel --preset tiny --out "$W/model" "$@" 2>/dev/null
else
    "$PY" "$REF/make_checkpoint.py" --out "$W/model" "$@" >/dev/null
fi
VOCAB=$("$PY" -c "import json,sys; print(json.load(open(sys.argv[1]))['vocab_size'])" "$W/model/config.json")
TOTAL=$("$PY" -c "import sys; print(sum(int(x) for x in sys.argv[1].split(',')))" "$LENGTHS")
"$PY" -c "
import numpy as np, sys
rng = np.random.default_rng(7)
rng.integers(0, int(sys.argv[2]), int(sys.argv[1])).astype('<i4').tofile(sys.argv[3])" "$TOTAL" "$VOCAB" "$W/ids.bin"
# DIFFU_LOGITS_ARGS: extra options for `diffu logits` (e.g. --f32-weights, --threads 1)
"$BIN" logits --model "$W/model" --ids "$W/ids.bin" --lengths "$LENGTHS" --out "$W/ours.bin" ${DIFFU_LOGITS_ARGS:-} 2>"$W/ours.log" || {
    cat "$W/ours.log" >&2; exit 1; }
PADARG=()
[[ "$PADTO" != 0 ]] && PADARG=(--pad-to "$PADTO")
"$PY" "$REF/dream_forward_ref.py" --model "$W/model" --ids "$W/ids.bin" --lengths "$LENGTHS" "${PADARG[@]}" --out "$W/ref.bin"
echo "case $NAME: $(grep -h -o '"[a-z_]*": [0-9a-z.e+-]*' "$W/model/config.json" | grep -E 'hidden_size|num_attention_heads|num_key_value_heads|rope_theta|torch_dtype|vocab_size' | tr '\n' ' ')"
ls "$W/model" | tr '\n' ' '; echo
"$PY" "$REF/compare_logits.py" "$W/ref.bin" "$W/ours.bin" --vocab "$VOCAB" --tol 1e-4
