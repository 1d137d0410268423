#!/usr/bin/env bash
# check_export_tiny.sh DIFFU MODEL_DIR WORK PY — export a tiny random torch Dream model with
# train/export.py (the toy model's tokenizer) and compare `diffu logits` with torch's fp32 logits
set -euo pipefail
DIFFU="$1"; MODEL="$2"; W="$3"; PY="$4"
if ! "$PY" -c "import torch" 2>/dev/null; then
    echo "SKIP: python3-torch is not installed (bash train/setup.sh installs it)"; exit 77
fi
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
rm -rf "$W/tiny"
"$PY" "$ROOT/train/export.py" --random-tiny "$W/tiny" --tokenizer "$MODEL" --golden "$W/tiny/golden"
"$DIFFU" inspect "$W/tiny" >/dev/null
bash "$ROOT/tests/toy_model/check_logits.sh" "$DIFFU" "$W/tiny" "$W/tiny/golden" "$W/tiny" "$PY"
