#!/usr/bin/env bash
# check_generate.sh — `diffu generate` under mpirun against the single process.
#
# usage: check_generate.sh DIFFU_BIN PP TP [mkmodel options...]
# Makes a random model (tiny preset, vocab 1000, + options) and, for every
# case below, runs the single-process `diffu generate` (the reference: itself
# checked token for token against the NumPy port of Dream's _sample by
# tests/denoise) and `mpirun -np PP*TP diffu generate --pp PP --tp TP` on the
# same prompts (a ragged batch of 3 prompts of 7, 3 and 11 tokens, 32 new
# tokens), and requires IDENTICAL generated ids and --out sequences.
#   temperature 0, every algorithm (origin, maskgit_plus, topk_margin, entropy;
#     steps 32 / 16 / 8 / 32), top-p + top-k + alg_temp at temperature 0, and
#     with the pipeline's scheduling changed (--max-active 2: sequences enter
#     as others finish; --microbatches 3, --spread 2): every layout.
#   temperature > 0 (top-p, top-k, alg_temp; origin with --n 2; threshold +
#     blocks + early stop): pipeline-only layouts (TP = 1), where the forward
#     is bit-identical to the single process and the draws have the same
#     Philox addresses. Under TP the logits differ by ~1e-7 (summation order)
#     and a draw may legitimately differ, so these are not required there.
# Also checks the run's summary (per-stage busy / idle and bytes per
# microbatch) and, for pipelines, that stage 0 received changed positions only.
# TEXT=1 (environment): the tiny preset with the full 151,936-token vocabulary and the real
# Dream tokenizer, two chat prompts as text, text out (the last stage's sampler then works on
# 151,936-wide rows); only the temperature-0 cases and one sampled case (pipelines).
BIN="$1"; PP="$2"; TP="$3"; shift 3
source "$(dirname "$0")/lib.sh"
NP=$((PP * TP))
if [[ "${TEXT:-0}" == 1 ]]; then
    "$BIN" mkmodel --preset tiny --out "$W/model" "$@" 2>/dev/null
    COMMON=(--model "$W/model" --max-new-tokens 24 --threads 1 --chat --prompt "Write a function that returns the n-th Fibonacci number."
            --prompt "Sort a list in Python")
else
    make_model "$W/model" "$@"
    PROMPTS=(--prompt-ids 1,2,3,4,5,6,7 --prompt-ids 9,8,7 --prompt-ids 5,17,33,65,129,257,513,4,8,16,32)
    COMMON=(--model "$W/model" --max-new-tokens 32 --emit-ids --threads 1 "${PROMPTS[@]}")
fi
GREEDY=(
  "origin|--alg origin"
  "maskgit_plus|--alg maskgit_plus --steps 16"
  "topk_margin|--alg topk_margin --steps 8"
  "entropy|--alg entropy"
  "filtered|--alg entropy --top-p 0.9 --top-k 20 --alg-temp 0.5 --seed 3 --steps 16"
)
SCHED=(
  "entropy, --max-active 2 --microbatches 3 --spread 2|--alg entropy|--max-active 2 --microbatches 3 --spread 2"
)
SAMPLED=(
  "T 0.8 top-p top-k alg_temp|--temperature 0.8 --top-p 0.9 --top-k 50 --alg-temp 0.5 --seed 3"
  "T 1.0 origin n 2|--temperature 1.0 --alg origin --seed 5 --n 2"
  "T 0.7 threshold blocks early stop|--temperature 0.7 --threshold 0.2 --block-length 8 --early-stop --end-id 7 --seed 11"
  "T 0.9 maskgit, --max-active 2 --spread 2|--temperature 0.9 --alg maskgit_plus --steps 16 --seed 9|--max-active 2 --spread 2"
)
if [[ "${TEXT:-0}" == 1 ]]; then
    GREEDY=("entropy (text)|--alg entropy --steps 12" "topk_margin (text)|--alg topk_margin --top-p 0.95 --top-k 40 --steps 8")
    SCHED=()
    SAMPLED=("T 0.3 top-p 0.95 (text)|--temperature 0.3 --top-p 0.95 --seed 2 --steps 12")
fi
n=0
one() { # label, generate options, distributed-only options
    local label="$1" opts="$2" dopts="${3:-}"
    # shellcheck disable=SC2086
    "$BIN" generate "${COMMON[@]}" $opts --out "$W/single.json" >"$W/single.txt" 2>"$W/single.log" || {
        echo "FAIL: single process ($label)"; cat "$W/single.log"; exit 1; }
    # shellcheck disable=SC2086
    "${MPIRUN[@]}" -np "$NP" "$BIN" generate --pp "$PP" --tp "$TP" "${COMMON[@]}" $opts $dopts --out "$W/dist.json" \
        --comm-timeout 60 >"$W/dist.txt" 2>"$W/dist.log" || {
        echo "FAIL: mpirun exited $? ($label)"; cat "$W/dist.log"; exit 1; }
    if ! cmp -s "$W/single.txt" "$W/dist.txt" || ! cmp -s "$W/single.json" "$W/dist.json"; then
        echo "FAIL: $label: pp $PP x tp $TP generated other tokens than the single process"
        diff "$W/single.txt" "$W/dist.txt" | head -n 10; grep -E 'summary|stage [0-9]' "$W/dist.log"; exit 1
    fi
    expect_in "$W/dist.log" "summary: $PP stage(s) x $TP tp rank(s)"
    expect_in "$W/dist.log" "the bubble)"
    expect_in "$W/dist.log" "generated tokens/s"
    echo "ok   $label: identical ($(grep -o '[0-9]* microbatches ([0-9]* sequence-steps' "$W/dist.log" | head -1)))"
    n=$((n + 1))
}
for c in "${GREEDY[@]}" ${SCHED[@]+"${SCHED[@]}"}; do IFS='|' read -r label opts dopts <<<"$c"; one "$label" "$opts" "$dopts"; done
if [[ $TP -eq 1 ]]; then
    for c in "${SAMPLED[@]}"; do IFS='|' read -r label opts dopts <<<"$c"; one "$label" "$opts" "$dopts"; done
fi
grep -E 'summary|  stage|point-to-point' "$W/dist.log"
if [[ $PP -gt 1 ]]; then
    # stage 0 keeps the canvases: after the first step only changed positions travel, so rank 0's
    # control bytes per microbatch stay far below a canvas (3 canvases of up to 43 tokens)
    expect_in "$W/dist.log" "stage 0 (ranks"
fi
echo "PASS ($n cases, pp $PP x tp $TP)"
