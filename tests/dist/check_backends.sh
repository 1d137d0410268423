#!/usr/bin/env bash
# check_backends.sh — the engine's two backends (coordinator/engine.h) on the same requests:
# the local one (`diffu generate` in one process: forward + sampler in-process) and the pipeline
# (`mpirun -np 2 diffu generate --pp 2`: node/pipeline.h, the MPI stages). Both are the one loop
# of coordinator/engine.c over the scheduler; the forward is batch-invariant and the draws are
# Philox-addressed, so the tokens must be IDENTICAL (tolerance: none), however each backend packs
# its microbatches:
#   1. prompts on the command line (ragged: 7, 3, 11, 1 and 5 tokens), --n 2, on the tiny random
#      model (vocab 1000): greedy entropy, sampled (temperature 0.7 + top-p 0.9 + alg_temp) and
#      threshold + blocks + early stop; the pipeline with its scheduling changed too
#      (--max-active 3 --microbatches 3 --spread 2): --out sequences and --emit-ids equal;
#   2. a batch job (--input / --output; the tiny model with the real Dream tokenizer): 4 raw and
#      2 chat requests with per-request overrides (sampled, origin, threshold, blocks), one process
#      with --max-active 3 (samples enter as others finish) against the pipeline: the records,
#      sorted by (id, sample) without the wall-clock `seconds` and the run identity, equal — the
#      completion text and the generated ids.
# usage: check_backends.sh DIFFU_BIN
BIN="$1"
source "$(dirname "$0")/lib.sh"
make_model "$W/m"
PROMPTS=(--prompt-ids 1,2,3,4,5,6,7 --prompt-ids 9,8,7 --prompt-ids 5,17,33,65,129,257,513,4,8,16,32
         --prompt-ids 42 --prompt-ids 100,200,300,400,500)
COMMON=(--model "$W/m" --max-new-tokens 24 --n 2 --emit-ids --threads 1 "${PROMPTS[@]}")
CASES=(
  "greedy|--alg entropy --steps 12"
  "sampled|--alg entropy --steps 12 --temperature 0.7 --top-p 0.9 --alg-temp 0.2 --seed 11"
  "threshold|--threshold 0.3 --block-length 8 --early-stop --temperature 0.5 --seed 3"
)
PACKINGS=("|" "repacked|--max-active 3 --microbatches 3 --spread 2")
n=0
for c in "${CASES[@]}"; do
  IFS='|' read -r name opts <<<"$c"
  # shellcheck disable=SC2086
  "$BIN" generate "${COMMON[@]}" $opts --out "$W/$name.local.json" >"$W/$name.local.ids" 2>"$W/$name.local.log" ||
    { echo "FAIL $name: the local backend exited $?"; cat "$W/$name.local.log"; exit 1; }
  expect_in "$W/$name.local.log" "sampler"   # the local backend's [timing] (forward + sampler in this process)
  for pk in "${PACKINGS[@]}"; do
    IFS='|' read -r pname popts <<<"$pk"
    tag="$name${pname:+-$pname}"
    # shellcheck disable=SC2086
    "${MPIRUN[@]}" -np 2 "$BIN" generate --pp 2 "${COMMON[@]}" $opts $popts --out "$W/$tag.pipe.json" \
        >"$W/$tag.pipe.ids" 2>"$W/$tag.pipe.log" ||
      { echo "FAIL $tag: the pipeline exited $?"; cat "$W/$tag.pipe.log"; exit 1; }
    expect_in "$W/$tag.pipe.log" "summary"  # the pipeline's per-stage summary: it did run on 2 stages
    if ! cmp -s "$W/$name.local.json" "$W/$tag.pipe.json" || ! cmp -s "$W/$name.local.ids" "$W/$tag.pipe.ids"; then
      echo "FAIL $tag: the pipeline's tokens differ from the local backend's"
      diff "$W/$name.local.ids" "$W/$tag.pipe.ids" | head -20; exit 1
    fi
    echo "ok   $tag: 10 sequences identical (local backend == pipeline --pp 2)"
    n=$((n + 1))
  done
done

# 2. the batch job
"$BIN" mkmodel --preset tiny --out "$W/text" 2>/dev/null
head -n 4 "$HERE/../../deploy/prompts/sample_tasks.jsonl" >"$W/in.jsonl"
cat >>"$W/in.jsonl" <<'JSONL'
{"id": "c1", "messages": [{"role": "user", "content": "Write a function that returns the n-th Fibonacci number."}], "n": 3, "temperature": 0.6, "seed": 21, "alg": "origin", "steps": 8}
{"id": 7, "messages": [{"role": "user", "content": "Sort a list in Python"}], "max_new_tokens": 12, "threshold": 0.4, "block_length": 4, "top_k": 30}
JSONL
JOB=(--model "$W/text" --threads 1 --input "$W/in.jsonl" --emit-ids --max-new-tokens 16 --steps 8 --temperature 0.5 --seed 4 --n 2)
"$BIN" generate "${JOB[@]}" --max-active 3 --output "$W/local.jsonl" 2>"$W/job.local.log" ||
  { echo "FAIL job: the local backend exited $?"; cat "$W/job.local.log"; exit 1; }
"${MPIRUN[@]}" -np 2 "$BIN" generate --pp 2 "${JOB[@]}" --output "$W/pipe.jsonl" 2>"$W/job.pipe.log" ||
  { echo "FAIL job: the pipeline exited $?"; cat "$W/job.pipe.log"; exit 1; }
"$PY" - "$W/local.jsonl" "$W/pipe.jsonl" <<'PYEOF' || exit 1
import json, sys
def recs(p):
    out = []
    for line in open(p, encoding="utf-8"):
        r = json.loads(line)
        r.pop("seconds", None)
        r.pop("run", None)
        out.append(r)
    return sorted(out, key=lambda r: (str(r["id"]), r["sample"]))
a, b = recs(sys.argv[1]), recs(sys.argv[2])
if len(a) != 13 or a != b:
    print("FAIL job: %d local records, %d pipeline records, equal: %s" % (len(a), len(b), a == b))
    for x, y in zip(a, b):
        if x != y:
            print("  local    %s\n  pipeline %s" % (x, y))
            break
    sys.exit(1)
print("ok   job: 13 records identical (local backend --max-active 3 == pipeline --pp 2)")
PYEOF
echo "PASS: $n prompt cases and the batch job: the local backend and the pipeline give the same tokens"
