#!/usr/bin/env bash
# deploy/main_job.sh — the main job on the embedded default, run by
# `bash deploy/setup.sh main` after the build. Until the batch job lands it
# makes the default model (random weights in the DiffuCoder format, the
# Qwen2.5-0.5B shape) and runs `diffu inspect` and a forward benchmark on it.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${DIFFU_BUILD:-$ROOT/build}/bin/diffu"
CACHE="${DIFFU_CACHE:-$HOME/.cache/diffu}"
MODEL="$CACHE/models/small-bf16"
if [[ ! -f "$MODEL/config.json" ]]; then
    "$BIN" mkmodel --preset small --dtype bf16 --seed 1 --out "$MODEL"
fi
"$BIN" inspect "$MODEL" --pp 2 --tp 1
"$BIN" bench forward --model "$MODEL" --tokens 256 --reps 3
