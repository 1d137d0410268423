#!/usr/bin/env bash
# check_logits.sh DIFFU MODEL_DIR GOLDEN_DIR WORK PY — diffu logits vs the torch golden logits
set -euo pipefail
DIFFU="$1"; MODEL="$2"; G="$3"; W="$4"; PY="$5"
V=$("$PY" -c "import json,sys; print(json.load(open(sys.argv[1]))['vocab_size'])" "$MODEL/config.json")
mkdir -p "$W"
"$DIFFU" logits --model "$MODEL" --ids "$G/ids.bin" --lengths "$(cat "$G/lengths.txt")" --out "$W/toy_logits.bin" --threads 2
"$PY" "$(dirname "$0")/../ref/compare_logits.py" "$G/logits.bin" "$W/toy_logits.bin" --vocab "$V" --tol 1e-4
