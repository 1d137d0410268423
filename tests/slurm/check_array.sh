#!/usr/bin/env bash
# tests/slurm/check_array.sh DIFFU_BIN — the job-array path on a real
# (private, single-node) Slurm: submit.sh --shards 3 splits a gzip input with
# `diffu split` (round-robin, byte for byte), submits a 3-task array (each
# task its own shard and output) and a merge job depending on it (afterok);
# the merge writes one output in which every (id, sample) of the input
# appears exactly once. Then: resubmitting the same command reuses the shards,
# each task finds its output complete (nothing rewritten), the merge rebuilds
# the same records; a deliberately duplicated shard output makes
# `diffu merge` fail with the reason. Last, a 2-task array whose tasks get
# the time-limit warning mid-run (USR1 to each task's batch shell once its
# output holds a record: what --signal=B:USR1 delivers, at a moment that does
# not depend on the machine's speed or Slurm's timer phase; Slurm's own timer
# is check_job.sh's case C): each task requeues itself alone (ARRAYID_TASKID),
# resumes, and the merge holds every (id, sample) exactly once.
# The job is `diffu generate` on the tiny model (lib.sh; the stand-in with
# DIFFU_SLURM_TEST_JOB=standin). Skips (77) unless root. About 4 minutes.
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$HERE/lib.sh"
slurm_test_setup "${1:-}"

make_input "$W/in.jsonl.gz" 30
want=$(expected_samples "$W/in.jsonl.gz")
t0=$SECONDS
ids=$(DIFFU_STANDIN_DELAY=0.1 submit --model "$MODEL" --pp 1 --tp 1 --nodes 1 --cores-per-node 2 --mem-per-node 4 \
    --partition debug --time 10 --shards 3 --input "$W/in.jsonl.gz" --output "$W/out.jsonl.gz" -- "${GEN_ARGS[@]}") ||
    fail "submit --shards 3"
read -r -d '' arr merge <<<"$ids"
[[ -n $arr && -n $merge ]] || fail "expected two job ids (array, merge), got '$ids'"
slurm_wait_job "$arr" 300 || fail "array $arr did not complete"
slurm_wait_job "$merge" 120 || fail "merge job $merge did not complete"
S=$W/out.jsonl.gz.slurm
ls "$S"
# the shards: gzip, round-robin, together exactly the input's lines
for i in 0 1 2; do
    f=$S/in-0000$i-of-00003.jsonl.gz
    [[ -f $f ]] || fail "no shard $f"
    [[ "$(zcat "$W/in.jsonl.gz" | awk -v k="$i" '(NR - 1) % 3 == k')" == "$(zcat "$f")" ]] || fail "shard $i is not lines $i mod 3"
    [[ -f $S/out-0000$i-of-00003.jsonl.gz ]] || fail "no output of task $i"
done
# each task ran its own shard
for i in 0 1 2; do
    grep -q "array task $i of 3" "$S"/slurm-"$arr"_"$i".log || fail "task $i log"
done
check_exactly_once "$W/in.jsonl.gz" "$W/out.jsonl.gz" || fail "merged output is not every (id, sample) exactly once"
n=$(zcat "$W/out.jsonl.gz" | wc -l)
[[ $n == "$want" ]] || fail "merged: $n records, expected $want"
cat "$S"/slurm-merge-*.log
echo "ok 1: array $arr (3 tasks) + merge $merge: $n records, each (id, sample) once; $((SECONDS - t0)) s"

# resubmit: shards reused, tasks resume with nothing left, the merge rebuilds the same records
sum1=$(zcat "$W/out.jsonl.gz" | sort | md5sum)
ids=$(DIFFU_STANDIN_DELAY=0.1 submit --model "$MODEL" --pp 1 --tp 1 --nodes 1 --cores-per-node 2 --mem-per-node 4 \
    --partition debug --time 10 --shards 3 --input "$W/in.jsonl.gz" --output "$W/out.jsonl.gz" -- "${GEN_ARGS[@]}" 2>"$W/sub2.err") ||
    fail "resubmit"
grep -q 'reusing the 3 input shards' "$W/sub2.err" || fail "the resubmission split again"
read -r -d '' arr2 merge2 <<<"$ids"
slurm_wait_job "$arr2" 300 || fail "array $arr2 did not complete"
slurm_wait_job "$merge2" 120 || fail "merge job $merge2 did not complete"
[[ "$(zcat "$W/out.jsonl.gz" | sort | md5sum)" == "$sum1" ]] || fail "the second merge differs"
if [[ -n ${DIFFU_JOB_CMD:-} ]]; then
    [[ $(cat "$S"/slurm-"$arr2"_*.log | grep -c 'wrote 0 record(s) this run') == 3 ]] || fail "a resumed task wrote records again"
else
    [[ $(cat "$S"/slurm-"$arr2"_*.log | grep -Ec 'all [0-9]+ samples of [0-9]+ requests are done') == 3 ]] ||
        fail "a resumed task did not find its output complete"
fi
echo "ok 2: resubmitted ($arr2, $merge2): shards reused, nothing regenerated, same merged records"

# a shard output given twice: duplicates refused, with the reason on the last line
if "$BIN" merge --input "$W/in.jsonl.gz" --output "$W/dup.jsonl" "$S"/out-*.jsonl.gz "$S/out-00001-of-00003.jsonl.gz" 2>"$W/dup.err"; then
    fail "merge accepted duplicates"
fi
tail -n 1 "$W/dup.err" | grep -q '^diffu merge: error: [0-9]* duplicate (id, sample) record(s)' || fail "merge's reason: $(tail -n 1 "$W/dup.err")"
[[ ! -e $W/dup.jsonl ]] || fail "merge wrote an output although it failed"
# a missing shard: missing pairs refused
if "$BIN" merge --input "$W/in.jsonl.gz" "$S/out-00000-of-00003.jsonl.gz" "$S/out-00002-of-00003.jsonl.gz" 2>"$W/miss.err"; then
    fail "merge accepted a missing shard"
fi
tail -n 1 "$W/miss.err" | grep -q 'pair(s) missing' || fail "merge's reason: $(tail -n 1 "$W/miss.err")"
echo "ok 3: diffu merge refuses duplicates and missing shards: $(tail -n 1 "$W/dup.err" | cut -c1-70)..."

# 4. array tasks warned mid-run: each requeues itself alone (scontrol requeue ARRAYID_TASKID; one
#    task's SLURM_JOB_ID is the array's id, and requeueing that id would rerun every task), resumes,
#    and the merge still holds every (id, sample) exactly once. --cores-per-node 1: one CPU per task,
#    so both run at once on the 2-CPU node. The test sends each task USR1 (scancel --batch
#    --signal=USR1 ARRAY_TASK) once its output holds a record and it has more to do.
# Real job: 25 requests (~30 samples) per shard, one sample at a time (records one by one). (This
# test Slurm has no task affinity plugin, so both tasks' mpirun bind their rank to core 0 and share
# it; on a cluster with task/affinity or task/cgroup each gets its own CPU.) Stand-in: 1 s a record.
rq_gen=("${GEN_ARGS[@]}")
[[ -z ${DIFFU_JOB_CMD:-} ]] && rq_gen+=(--max-active 1)
make_input "$W/rq.jsonl" 50
t0=$SECONDS
ids=$(DIFFU_STANDIN_DELAY=1.0 submit --model "$MODEL" --pp 1 --tp 1 --nodes 1 --cores-per-node 1 --mem-per-node 4 \
    --partition debug --time 10 --shards 2 --input "$W/rq.jsonl" --output "$W/rq.out.jsonl" \
    -- "${rq_gen[@]}" 2>/dev/null) || fail "submit 4"
read -r -d '' arr4 merge4 <<<"$ids"
S=$W/rq.out.jsonl.slurm
records_in() { zcat -f "$1" 2>/dev/null | grep -c '^{' || true; }
declare -A warned=()
while ((${#warned[@]} < 2)); do
    ((SECONDS - t0 < 400)) || fail "4: the tasks did not both write a record within 400 s (warned: ${!warned[*]})"
    for i in 0 1; do
        [[ -n ${warned[$i]:-} ]] && continue
        id=$(scontrol show job -o "$arr4" 2>/dev/null | grep "ArrayTaskId=$i " | sed 's/^JobId=\([0-9]*\) .*/\1/')
        [[ -n $id && "$(slurm_job_field "$id" JobState)" == RUNNING ]] || continue
        n=$(records_in "$S/out-0000$i-of-00002.jsonl")
        ((n >= 1)) || continue
        [[ "$(slurm_job_field "$id" JobState)" == RUNNING ]] || fail "4: task $i finished ($n records) before the test could warn it"
        scancel --batch --signal=USR1 "${arr4}_$i" || fail "4: scancel --signal=USR1 ${arr4}_$i"
        warned[$i]=$n
        echo "   task $i: USR1 after $((SECONDS - t0)) s with $n record(s) in its output"
    done
    sleep 0.5
done
slurm_wait_job "$arr4" 600 || fail "array $arr4 did not complete"
slurm_wait_job "$merge4" 120 || fail "merge job $merge4 did not complete"
check_exactly_once "$W/rq.jsonl" "$W/rq.out.jsonl" || fail "4: merged output is not every (id, sample) exactly once"
total=0
for i in 0 1; do
    id=$(scontrol show job -o "$arr4" | grep "ArrayTaskId=$i " | sed 's/^JobId=\([0-9]*\) .*/\1/')
    r=$(slurm_job_field "$id" Restarts)
    lg=$S/slurm-"$arr4"_"$i".log
    nreq=$(grep -c "requeueing job ${arr4}_$i " "$lg")
    ndone=$(grep -c 'done: .* is complete' "$lg")
    [[ $r == "$nreq" && $ndone == 1 ]] || fail "task $i: Restarts=$r, $nreq requeue(s) by itself, $ndone completion(s) in its log (a task rerun by another's requeue?)"
    ((r >= 1)) || fail "task $i: warned mid-run but not requeued"
    if [[ -z ${DIFFU_JOB_CMD:-} ]]; then
        grep -Eq 'resuming: [1-9][0-9]* of [0-9]+ samples already done' "$lg" || fail "task $i: the rerun did not resume its output"
    fi
    total=$((total + r))
    echo "   task $i (job $id): $r restart(s)"
done
echo "ok 4: array tasks warned mid-run requeued themselves alone ($total restart(s)), merged output exactly once; $((SECONDS - t0)) s"
echo PASS
