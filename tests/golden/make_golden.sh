#!/usr/bin/env bash
# make_golden.sh — the records `diffu generate` writes, for the golden test (tests/golden).
#
# usage: make_golden.sh DIFFU_BIN OUTDIR
# Writes one file per case into OUTDIR: the generated ids (--emit-ids stdout) and the --out JSON of
# `diffu generate --prompt-ids`, and the batch job's records (--input/--output, sorted by (id,
# sample), the wall-clock "seconds" field and the run identity "run" (added later by issue #14;
# it names the diffu build) dropped), for
#   models:  tiny (2 layers, vocab 1000) and a 4-layer one (ids cases); tiny with the real Dream
#            tokenizer and the full vocabulary (batch-job cases)
#   layouts: one process, mpirun -np 2 --pp 2, mpirun -np 2 --tp 2
#   cases:   greedy (origin, maskgit_plus, topk_margin, entropy, filtered) and sampled (temperature
#            with top-p/top-k/alg_temp, origin --n 2, threshold + blocks + early stop), and a
#            scheduler-packing variant under mpirun
# The committed golden (tests/golden/data) was made by this script from the code BEFORE the engine
# refactor (issue #11, commit 42ddde3): `tests/golden/make_golden.sh build/bin/diffu tests/golden/data`.
# The golden test runs it again into a scratch folder and requires `diff -r` to find nothing.
set -euo pipefail
BIN="$1"; OUT="$2"
PY=/usr/bin/python3
if [[ $(id -u) -eq 0 ]]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
export OMPI_MCA_btl_vader_single_copy_mechanism=none
MPIRUN=(mpirun --oversubscribe --bind-to none)
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
W="$(mktemp -d "${TMPDIR:-/tmp}/diffu-golden.XXXXXX")"
trap 'rm -rf "$W"' EXIT
mkdir -p "$OUT"

"$BIN" mkmodel --preset tiny --vocab 1000 --out "$W/tiny" 2>/dev/null
"$BIN" mkmodel --preset tiny --vocab 1000 --layers 4 --out "$W/l4" 2>/dev/null
"$BIN" mkmodel --preset tiny --out "$W/text" 2>/dev/null

PROMPTS=(--prompt-ids 1,2,3,4,5,6,7 --prompt-ids 9,8,7 --prompt-ids 5,17,33,65,129,257,513,4,8,16,32)
CASES=(
  "origin|--alg origin"
  "maskgit|--alg maskgit_plus --steps 16"
  "topk_margin|--alg topk_margin --steps 8"
  "entropy|--alg entropy"
  "filtered|--alg entropy --top-p 0.9 --top-k 20 --alg-temp 0.5 --seed 3 --steps 16"
  "t08|--temperature 0.8 --top-p 0.9 --top-k 50 --alg-temp 0.5 --seed 3"
  "t10_n2|--temperature 1.0 --alg origin --seed 5 --n 2"
  "t07_blocks|--temperature 0.7 --threshold 0.2 --block-length 8 --early-stop --end-id 7 --seed 11"
)
# layout name | launcher prefix | generate options
LAYOUTS=("np1||" "pp2|mpi2|--pp 2" "tp2|mpi2|--tp 2")

run() { # launcher, args...
    local l="$1"; shift
    if [[ "$l" == mpi2 ]]; then "${MPIRUN[@]}" -np 2 "$BIN" "$@" --comm-timeout 60; else "$BIN" "$@"; fi
}

for model in tiny l4; do
  for lay in "${LAYOUTS[@]}"; do
    IFS='|' read -r lname launch lopts <<<"$lay"
    for c in "${CASES[@]}"; do
      IFS='|' read -r cname copts <<<"$c"
      f="$OUT/ids_${model}_${lname}_${cname}"
      # shellcheck disable=SC2086
      run "$launch" generate $lopts --model "$W/$model" --max-new-tokens 32 --emit-ids --threads 1 "${PROMPTS[@]}" \
          $copts --out "$f.json" >"$f.txt" 2>"$W/log" || { echo "FAIL: $f"; cat "$W/log"; exit 1; }
    done
    if [[ -n "$launch" ]]; then # the scheduler's packing / admission changed: same records
      f="$OUT/ids_${model}_${lname}_sched"
      # shellcheck disable=SC2086
      run "$launch" generate $lopts --model "$W/$model" --max-new-tokens 32 --emit-ids --threads 1 "${PROMPTS[@]}" \
          --temperature 0.9 --alg maskgit_plus --steps 16 --seed 9 --max-active 2 --microbatches 3 --spread 2 \
          --out "$f.json" >"$f.txt" 2>"$W/log" || { echo "FAIL: $f"; cat "$W/log"; exit 1; }
    fi
  done
done

# the batch job on text: 4 bundled tasks (raw prompts) + 2 chat requests with overrides
head -n 4 "$HERE/../../deploy/prompts/sample_tasks.jsonl" >"$W/in.jsonl"
cat >>"$W/in.jsonl" <<'JSONL'
{"id": "chat1", "messages": [{"role": "user", "content": "Write a function that returns the n-th Fibonacci number."}], "n": 3, "temperature": 0.6, "seed": 21, "alg": "maskgit_plus"}
{"id": 7, "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Sort a list in Python"}], "max_new_tokens": 12, "prefill": true, "top_k": 30, "top_p": 0.9}
JSONL
JOBS=(
  "greedy|--alg entropy --max-new-tokens 16"
  "sampled|--n 2 --max-new-tokens 16 --temperature 0.5 --seed 4 --alg topk_margin --steps 8"
)
for lay in "${LAYOUTS[@]}"; do
  IFS='|' read -r lname launch lopts <<<"$lay"
  for c in "${JOBS[@]}"; do
    IFS='|' read -r cname copts <<<"$c"
    f="$OUT/job_${lname}_${cname}.jsonl"
    rm -f "$W/out.jsonl" "$W/out.jsonl.manifest.json"
    # shellcheck disable=SC2086
    run "$launch" generate $lopts --model "$W/text" --threads 1 --input "$W/in.jsonl" --output "$W/out.jsonl" \
        --emit-ids $copts >/dev/null 2>"$W/log" || { echo "FAIL: $f"; cat "$W/log"; exit 1; }
    "$PY" - "$W/out.jsonl" "$f" <<'PYEOF'
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1], encoding="utf-8")]
for r in recs:
    r.pop("seconds", None)
    r.pop("run", None)  # the run identity (issue #14, after the golden was made): carries the build id
recs.sort(key=lambda r: (str(r["id"]), r["sample"]))
with open(sys.argv[2], "w", encoding="utf-8") as f:
    for r in recs:
        f.write(json.dumps(r, ensure_ascii=False, sort_keys=False) + "\n")
PYEOF
  done
done
echo "golden: $(ls "$OUT" | wc -l) files in $OUT"
