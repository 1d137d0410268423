#!/usr/bin/env bash
# deploy/main_job.sh — the main job on the embedded default, run by
# `bash deploy/setup.sh main` after the build: the batch job over the bundled
# sample prompts (deploy/prompts/sample_tasks.jsonl, 20 HumanEval-style tasks
# written for this project) on the default model, under `mpirun -np 2` as a
# 2-stage pipeline, output to a .jsonl.gz.
#
# The default model is `diffu mkmodel --preset small` (the Qwen2.5-0.5B shape
# with the real Dream tokenizer) with RANDOM weights: the job does the real
# work, but the completions are noise. To generate real code, download a
# DiffuCoder checkpoint directory (e.g. apple/DiffuCoder-7B-Instruct) and run
#   DIFFU_MODEL=/path/to/DiffuCoder-7B-Instruct bash deploy/setup.sh main
# Rerunning resumes: finished (id, sample) records are skipped.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${DIFFU_BUILD:-$ROOT/build}/bin/diffu"
CACHE="${DIFFU_CACHE:-$HOME/.cache/diffu}"
MODEL="${DIFFU_MODEL:-$CACHE/models/small-bf16}"
INPUT="${DIFFU_INPUT:-$ROOT/deploy/prompts/sample_tasks.jsonl}"
OUTPUT="${DIFFU_OUTPUT:-$CACHE/out/sample_tasks.jsonl.gz}"
NP="${DIFFU_NP:-2}"
mkdir -p "$(dirname "$OUTPUT")" "$(dirname "$MODEL")"
if [[ ! -f "$MODEL/config.json" ]]; then
    "$BIN" mkmodel --preset small --dtype bf16 --seed 1 --out "$MODEL"
fi
"$BIN" inspect "$MODEL" --pp "$NP" --tp 1
if [[ $(id -u) -eq 0 ]]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
# one rank per core, one thread per rank; short canvases so the demo ends in minutes
mpirun -np "$NP" --bind-to core --map-by core "$BIN" generate --model "$MODEL" --pp "$NP" --tp 1 --threads 1 \
    --input "$INPUT" --output "$OUTPUT" \
    --max-new-tokens "${DIFFU_MAX_NEW_TOKENS:-64}" --steps "${DIFFU_STEPS:-32}" --alg entropy \
    --temperature 0.3 --top-p 0.95 --seed 1
echo "[main] wrote $OUTPUT ($(zcat "$OUTPUT" | wc -l) records); a random-weight model writes noise — see deploy/main_job.sh for a real checkpoint" >&2
