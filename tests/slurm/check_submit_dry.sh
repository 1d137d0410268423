#!/usr/bin/env bash
# tests/slurm/check_submit_dry.sh DIFFU_BIN — deploy/slurm/submit.sh --dry-run
# without Slurm: the job script it writes carries the geometry `diffu plan`
# gives for the layout (nodes, ranks per node, cores per rank), the
# time-limit signal and requeue, the array and the merge job for --shards,
# the settings block and the template body; the scripts parse (bash -n);
# usage errors exit 2, refusals exit 1 with the reason.
set -uo pipefail
BIN=$(readlink -f "${1:?usage: $0 path/to/diffu}")
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
SUBMIT=$ROOT/deploy/slurm/submit.sh
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
export DIFFU_BIN=$BIN
unset DIFFU_JOB_CMD
fail() { echo "FAIL: $*" >&2; exit 1; }
"$BIN" mkmodel --preset 7b --config-only --out "$T/7b" >/dev/null 2>&1 || fail "mkmodel"
printf '{"id": "a", "prompt": "x"}\n{"id": "b", "prompt": "y"}\n{"id": "c", "prompt": "z"}\n' | gzip >"$T/in.jsonl.gz"

bash -n "$ROOT/deploy/slurm/diffu.sbatch" || fail "diffu.sbatch does not parse"
bash -n "$SUBMIT" || fail "submit.sh does not parse"

# a given layout over 4 nodes of 32 cores: 1 stage per node, 2 ranks x 16 threads
bash "$SUBMIT" --dry-run --model "$T/7b" --input "$T/in.jsonl.gz" --output "$T/out.jsonl.gz" --pp 4 --tp 2 --nodes 4 \
    --cores-per-node 32 --mem-per-node 64 --time 12:00:00 --partition cpu --account proj -- --n 4 --max-new-tokens 512 \
    >"$T/job" 2>"$T/err" || { cat "$T/err"; fail "dry run 1"; }
for want in '#SBATCH --nodes=4' '#SBATCH --ntasks-per-node=2' '#SBATCH --cpus-per-task=16' '#SBATCH --requeue' \
    '#SBATCH --signal=B:USR1@120' '#SBATCH --open-mode=append' '#SBATCH --time=12:00:00' '#SBATCH --partition=cpu' \
    '#SBATCH --account=proj' 'DIFFU_PP=4' 'DIFFU_TP=2' 'DIFFU_THREADS=16' 'DIFFU_LAUNCHER=mpirun' \
    "DIFFU_MODEL=$T/7b" "DIFFU_OUTPUT=$T/out.jsonl.gz" 'DIFFU_EXTRA=( --n 4 --max-new-tokens 512 )' \
    'export SRUN_CPUS_PER_TASK=$threads' 'scontrol requeue "$target"' 'target=${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}' 'env -u SRUN_CPUS_PER_TASK'; do
    grep -qxF -- "$want" "$T/job" || grep -qF -- "$want" "$T/job" || fail "job script lacks: $want"
done
grep -q '^#SBATCH --mem=[0-9]*M$' "$T/job" || fail "no --mem"
# #SBATCH lines must all come before the first command (sbatch stops reading at it)
awk '/^#SBATCH/ { if (cmd) bad = 1 } /^[^#]/ && NF { cmd = 1 } END { exit bad }' "$T/job" || fail "an #SBATCH line after a command"
[[ -f $T/out.jsonl.gz.slurm/job.sbatch ]] || fail "job.sbatch not written to OUT.slurm/"
bash -n "$T/out.jsonl.gz.slurm/job.sbatch" || fail "the written job script does not parse"
echo "ok 1: --pp 4 --tp 2 on 4 x 32 cores"

# the recommended layout, as an array of 3 with a merge job
bash "$SUBMIT" --dry-run --model "$T/7b" --input "$T/in.jsonl.gz" --output "$T/o2.jsonl" --nodes 2 --cores-per-node 64 \
    --mem-per-node 256 --numa-per-node 2 --shards 3 --max-parallel 2 -- --n 2 >"$T/job2" 2>"$T/err" || { cat "$T/err"; fail "dry run 2"; }
for want in '#SBATCH --nodes=1' '#SBATCH --ntasks-per-node=2' '#SBATCH --cpus-per-task=32' '#SBATCH --array=0-2%2' \
    "DIFFU_INPUT='$T/o2.jsonl.slurm/in-{shard}-of-{shards}.jsonl.gz'" "DIFFU_OUTPUT='$T/o2.jsonl.slurm/out-{shard}-of-{shards}.jsonl'" \
    'DIFFU_SHARDS=3' "#SBATCH --output=$T/o2.jsonl.slurm/slurm-%A_%a.log" \
    "exec $BIN merge --input $T/in.jsonl.gz --n 2 --output $T/o2.jsonl $T/o2.jsonl.slurm/out-00000-of-00003.jsonl $T/o2.jsonl.slurm/out-00001-of-00003.jsonl $T/o2.jsonl.slurm/out-00002-of-00003.jsonl" \
    "# and first: $BIN split --input $T/in.jsonl.gz --shards 3 --out-prefix $T/o2.jsonl.slurm/in"; do
    grep -qF -- "$want" "$T/job2" || fail "array dry run lacks: $want"
done
ls "$T"/o2.jsonl.slurm/in-* >/dev/null 2>&1 && fail "a dry run split the input"
echo "ok 2: recommended layout (pp 1 x tp 2, 32 threads) as an array of 3 + merge"

# the {shard} substitution of the template, as the array task sees it
body=$(sed -n '/^shard=""/,/^output=/p' "$ROOT/deploy/slurm/diffu.sbatch")
got=$(SLURM_ARRAY_TASK_ID=1 DIFFU_SHARDS=3 DIFFU_MODEL=m DIFFU_INPUT='/w/in-{shard}-of-{shards}.jsonl.gz' \
    DIFFU_OUTPUT='/w/out-{shard}-of-{shards}.jsonl' bash -c "$body"'; echo "$input $output"')
[[ $got == "/w/in-00001-of-00003.jsonl.gz /w/out-00001-of-00003.jsonl" ]] || fail "shard substitution: $got"
echo "ok 3: {shard}/{shards} -> $got"

# refusals and usage
bash "$SUBMIT" --dry-run --model "$T/7b" --input "$T/in.jsonl.gz" --output "$T/o3.jsonl" --pp 2 --tp 8 --cores-per-node 32 \
    --mem-per-node 64 >/dev/null 2>"$T/err"
[[ $? == 1 ]] && grep -q 'tp 8 does not divide' "$T/err" || fail "tp 8: $(cat "$T/err")"
bash "$SUBMIT" --model "$T/7b" --input "$T/in.jsonl.gz" >/dev/null 2>&1
[[ $? == 2 ]] || fail "missing --output is a usage error"
bash "$SUBMIT" --model "$T/7b" --input "$T/in.jsonl.gz" --output x --pp 2 >/dev/null 2>&1
[[ $? == 2 ]] || fail "--pp without --tp is a usage error"
bash "$SUBMIT" --model "$T/7b" --input "$T/nope.jsonl" --output x --cores-per-node 2 --mem-per-node 4 >/dev/null 2>"$T/err"
[[ $? == 1 ]] && grep -q 'nope.jsonl not found' "$T/err" || fail "missing input: $(cat "$T/err")"
echo "ok 4: refusals"
echo PASS
