#!/usr/bin/env bash
# train/run_evals.sh — every evaluation of the toy model, as quoted in its README.md and in
# docs/BENCHMARKS.md. Needs the data directories of train/data.py and train/encode.js (held-out
# split) and python3-torch (the masked-token evaluation); the generation runs use build/bin/diffu.
#   bash train/run_evals.sh MODEL_DIR DATA_DIR ENC_DIR RESULTS_DIR
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MODEL="$1"; DATA="$2"; ENC="$3"; OUT="$4"
DIFFU="${DIFFU_BIN:-$ROOT/build/bin/diffu}"
mkdir -p "$OUT"
t0=$(date +%s)
/usr/bin/python3 "$ROOT/train/eval_masked.py" "$MODEL" "$ENC" --rows 64 --ratios 0.1,0.5,0.9 --json "$OUT/masked.json"
t1=$(date +%s)
/usr/bin/python3 "$ROOT/train/eval_generate.py" "$MODEL" "$DATA" "$ENC" --diffu "$DIFFU" --out "$OUT/generate.json" \
    --n 32 --max-new 48 --modes default,blocks8,arness,threshold,threshold_blocks8,precision --figure "$ROOT/docs/toy_model_arness.png" --threads "${EVAL_THREADS:-2}"
t2=$(date +%s)
echo "[evals] masked-token $((t1 - t0)) s, generation $((t2 - t1)) s" >&2
