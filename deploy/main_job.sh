#!/usr/bin/env bash
# deploy/main_job.sh — the main job on the embedded default, run by
# `bash deploy/setup.sh main` after the build: the batch job over the bundled
# sample tasks as chat requests (deploy/prompts/sample_tasks_chat.jsonl: the 20
# HumanEval-style tasks written for this project, each task's signature +
# docstring as the user turn of DiffuCoder's chat template) on the default
# model, under `mpirun -np 2` as a 2-stage pipeline, output to a .jsonl.gz.
#
# The default model is models/diffu-toy-code: a TOY Dream-architecture model of
# 10.0 M parameters trained on this project's machine for 85 minutes on
# Debian's Python sources (models/diffu-toy-code/README.md). It writes
# Python-shaped code, mostly wrong; it is not DiffuCoder. The same command runs a
# real checkpoint directory (e.g. apple/DiffuCoder-7B-Instruct, downloaded):
#   DIFFU_MODEL=/path/to/DiffuCoder-7B-Instruct bash deploy/setup.sh main
# (DIFFU_MAX_NEW_TOKENS / DIFFU_STEPS: 256 / 256 are DiffuCoder's settings; the
# default 64 / 64 keeps the demo short). DIFFU_MODEL=random uses the old default,
# `diffu mkmodel --preset small` with random weights.
# Rerunning resumes: finished (id, sample) records are skipped. Ctrl-C stops it
# gracefully (the samples in flight are saved and continued by the rerun; see below).
# DIFFU_BIN: the diffu binary (default: DIFFU_BUILD or build/, then bin/diffu).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${DIFFU_BIN:-${DIFFU_BUILD:-$ROOT/build}/bin/diffu}"
CACHE="${DIFFU_CACHE:-$HOME/.cache/diffu}"
MODEL="${DIFFU_MODEL:-$ROOT/models/diffu-toy-code}"
# the toy model commits its trailing <|dlm_pad|> tokens first and leaves near-empty replies
# unless decoding goes block by block (semi-autoregressive, 8 tokens); a real checkpoint: none
if [[ -z "${DIFFU_MODEL:-}" ]]; then BLOCK="${DIFFU_BLOCK_LENGTH:-8}"; else BLOCK="${DIFFU_BLOCK_LENGTH:-}"; fi
BLOCK_ARGS=(); [[ -n "$BLOCK" && "$BLOCK" != 0 ]] && BLOCK_ARGS=(--block-length "$BLOCK")
INPUT="${DIFFU_INPUT:-$ROOT/deploy/prompts/sample_tasks_chat.jsonl}"
OUTPUT="${DIFFU_OUTPUT:-$CACHE/out/sample_tasks_chat.jsonl.gz}"
NP="${DIFFU_NP:-2}"
if [[ "$MODEL" == random ]]; then
    MODEL="$CACHE/models/small-bf16"
    [[ -f "$MODEL/config.json" ]] || "$BIN" mkmodel --preset small --dtype bf16 --seed 1 --out "$MODEL"
fi
mkdir -p "$(dirname "$OUTPUT")"
if [[ ! -f "$MODEL/config.json" ]]; then
    echo "main_job.sh: $MODEL/config.json is missing (DIFFU_MODEL must be a Hugging Face checkpoint directory)" >&2
    exit 1
fi
"$BIN" inspect "$MODEL" --pp "$NP" --tp 1
if [[ $(id -u) -eq 0 ]]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
# one rank per core, one thread per rank; short canvases so the demo ends in minutes.
# Ctrl-C stops the job gracefully: mpirun runs in its own session (the terminal's SIGINT and SIGHUP do not reach it)
# and the first Ctrl-C / SIGTERM / SIGHUP is passed to it as SIGUSR1, which it forwards to the ranks at once; the
# job drains, saves the samples in flight and exits 1 with the resume hint. A second one ends it (SIGTERM to
# mpirun). SIGINT/SIGTERM given to mpirun itself reach the ranks 1 s late, followed by SIGKILL (docs/jobs.md).
setsid mpirun -np "$NP" --bind-to core --map-by core "$BIN" generate --model "$MODEL" --pp "$NP" --tp 1 --threads 1 \
    --input "$INPUT" --output "$OUTPUT" \
    --max-new-tokens "${DIFFU_MAX_NEW_TOKENS:-64}" --steps "${DIFFU_STEPS:-64}" --alg entropy \
    --temperature "${DIFFU_TEMPERATURE:-0.2}" --top-p 0.95 --seed 1 "${BLOCK_ARGS[@]+"${BLOCK_ARGS[@]}"}" &
job=$! stops=0
on_stop() {
    stops=$((stops + 1))
    if ((stops == 1)); then
        echo "[main] stopping: the job finishes its steps in flight and saves its samples (again to end it now)" >&2
        kill -USR1 "$job" 2>/dev/null || true
    else
        kill -TERM "$job" 2>/dev/null || true
    fi
}
trap on_stop INT TERM HUP
rc=0
while :; do
    wait "$job" && rc=0 || rc=$? # a trapped signal interrupts wait: wait again while mpirun runs
    kill -0 "$job" 2>/dev/null || break
done
trap - INT TERM HUP
[[ $rc -eq 0 ]] || exit "$rc"
echo "[main] wrote $OUTPUT ($(zcat "$OUTPUT" | wc -l) records) with $MODEL; the default is a toy model — see deploy/main_job.sh for a real checkpoint" >&2
