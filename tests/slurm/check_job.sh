#!/usr/bin/env bash
# tests/slurm/check_job.sh DIFFU_BIN — the batch job through deploy/slurm/
# submit.sh + diffu.sbatch on a real (private, single-node) Slurm:
#   A. --pp 1 --tp 2 on the tiny model: two ranks bound to one core each
#      (mpirun --map-by ppr:2:node:PE=1 --bind-to core), the job COMPLETED
#      without a restart, every (id, sample) of the input exactly once;
#   B. the time-limit warning at a moment the test chooses (USR1 to the batch
#      shell, `scancel --batch --signal=USR1`, exactly what Slurm's --signal=B:USR1
#      delivers) once the output holds a record: the script forwards it through
#      mpirun, the job stops, the script requeues the job, the rerun resumes;
#      at the end COMPLETED with Restarts >= 1, every (id, sample) exactly once.
#   C. Slurm's own timer: --time=1 with the warning 50 s before the limit, on a
#      dataset no machine finishes in one run; whenever slurmctld's 30 s cycle
#      sends USR1 (10-40 s into the run), the script requeues the job, also
#      when the run had not finished a sample yet: its samples in flight were
#      checkpointed (OUTPUT.inflight) and the rerun continues them mid-sample
#      (or, warned before the model loaded, DIFFU_MAX_IDLE_RESTARTS), and the
#      rerun resumes what the first run wrote; then the test cancels it.
# Nothing here depends on the machine's speed or on the timer's phase: B's
# signal waits for a record (any speed), C asserts only what holds at any
# phase (issue 14: on a loaded machine the first sample can outlast the time
# left before Slurm's warning).
# The job is `diffu generate` on the tiny model (lib.sh; the stand-in with
# DIFFU_SLURM_TEST_JOB=standin). Skips (77) unless root. About 4-8 minutes.
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$HERE/lib.sh"
slurm_test_setup "${1:-}"
common=(--model "$MODEL" --pp 1 --tp 2 --nodes 1 --cores-per-node 2 --mem-per-node 4 --partition debug)

# ---- A: one job, to the end ----------------------------------------------------------
make_input "$W/a.jsonl" 12
want=$(expected_samples "$W/a.jsonl")
t0=$SECONDS
ja=$(DIFFU_STANDIN_DELAY=0.2 submit "${common[@]}" --input "$W/a.jsonl" --output "$W/a.out.jsonl.gz" --time 10 \
    -- "${GEN_ARGS[@]}") || fail "submit A"
slurm_wait_job "$ja" 240 || fail "job A ($ja) did not complete"
log=$(cat "$W"/a.out.jsonl.gz.slurm/slurm-*.log)
check_exactly_once "$W/a.jsonl" "$W/a.out.jsonl.gz" || fail "A: output is not every (id, sample) exactly once"
n=$(zcat "$W/a.out.jsonl.gz" | wc -l)
[[ $n == "$want" ]] || fail "A: $n records, expected $want"
[[ "$(slurm_job_field "$ja" Restarts)" == 0 ]] || fail "A: restarted"
grep -q 'MCW rank 0 bound to [^:]*\[core 0' <<<"$log" && grep -q 'MCW rank 1 bound to [^:]*\[core 1' <<<"$log" ||
    fail "A: ranks not bound to cores 0 and 1 (--report-bindings)"
if [[ -n ${DIFFU_JOB_CMD:-} ]]; then
    grep -q 'stand-in rank 0 .*cpus \[0\], --threads 1' <<<"$log" && grep -q 'stand-in rank 1 .*cpus \[1\], --threads 1' <<<"$log" ||
        fail "A: the ranks did not run on their own core with --threads 1"
fi
grep -q 'done: .* is complete' <<<"$log" || fail "A: no completion line in the log"
echo "ok A: job $ja: $n records, each (id, sample) once; ranks bound to cores 0 and 1; $((SECONDS - t0)) s"

# ---- A2: the same through srun (--mpi=pmix, SRUN_CPUS_PER_TASK) --------------------------
t0=$SECONDS
ja2=$(DIFFU_STANDIN_DELAY=0.1 submit "${common[@]}" --launcher srun --input "$W/a.jsonl" --output "$W/a2.out.jsonl" \
    --time 10 -- "${GEN_ARGS[@]}" 2>/dev/null) || fail "submit A2"
slurm_wait_job "$ja2" 240 || fail "job A2 ($ja2) did not complete"
check_exactly_once "$W/a.jsonl" "$W/a2.out.jsonl" || fail "A2: output is not every (id, sample) exactly once"
grep -q 'launch: srun --mpi=pmix .*--ntasks=2 --ntasks-per-node=2 --cpus-per-task=1' "$W"/a2.out.jsonl.slurm/slurm-*.log ||
    fail "A2: not launched with srun"
echo "ok A2: job $ja2 (srun --mpi=pmix): each (id, sample) once; $((SECONDS - t0)) s"

# ---- B: the warning mid-run at a moment the test picks, requeue, resume ------------------
# records_in FILE: complete records in a (gzip or plain) output so far
records_in() { zcat -f "$1" 2>/dev/null | grep -c '^{' || true; }
# wait_running_records ID FILE N SECS: job ID is RUNNING and FILE holds >= N records
wait_running_records() {
    local t=$SECONDS
    while ((SECONDS - t < $4)); do
        [[ "$(slurm_job_field "$1" JobState)" == RUNNING ]] && (($(records_in "$2") >= $3)) && return 0
        sleep 0.5
    done
    return 1
}
make_input "$W/b.jsonl" "${DIFFU_SLURM_TEST_B_REQUESTS:-40}"
want=$(expected_samples "$W/b.jsonl")
t0=$SECONDS
# two samples in flight at a time, so records come one by one, not all together at the end
b_gen=("${GEN_ARGS[@]}")
[[ -z ${DIFFU_JOB_CMD:-} ]] && b_gen+=(--max-active 2)
jb=$(DIFFU_STANDIN_DELAY=${DIFFU_STANDIN_DELAY_B:-0.5} submit "${common[@]}" --input "$W/b.jsonl" --output "$W/b.out.jsonl" \
    --time 10 -- "${b_gen[@]}") || fail "submit B"
wait_running_records "$jb" "$W/b.out.jsonl" 1 300 || fail "B: job $jb wrote no record within 300 s"
at=$(records_in "$W/b.out.jsonl")
((at < want)) || fail "B: the job finished ($at records) before the test could signal it"
scancel --batch --signal=USR1 "$jb" || fail "B: scancel --signal=USR1"
echo "   B: USR1 to the batch shell of job $jb after $((SECONDS - t0)) s, with $at of $want records written"
slurm_wait_job "$jb" 600 || fail "job B ($jb) did not complete"
log=$(cat "$W"/b.out.jsonl.slurm/slurm-*.log)
restarts=$(slurm_job_field "$jb" Restarts)
((restarts >= 1)) || fail "B: Restarts=$restarts after a USR1 mid-run"
check_exactly_once "$W/b.jsonl" "$W/b.out.jsonl" || fail "B: output is not every (id, sample) exactly once"
n=$(wc -l <"$W/b.out.jsonl")
[[ $n == "$want" ]] || fail "B: $n records, expected $want"
grep -q 'USR1: the time limit is near' <<<"$log" || fail "B: no USR1 in the log"
grep -q "requeueing job $jb" <<<"$log" || fail "B: the job did not requeue itself"
grep -q 'done: .* is complete' <<<"$log" || fail "B: the last run did not complete"
if [[ -n ${DIFFU_JOB_CMD:-} ]]; then
    grep -q 'stand-in: SIGUSR1: stopped after' <<<"$log" || fail "B: SIGUSR1 did not reach the job through mpirun"
else
    # the rerun resumed: it found records of the first run and did not redo them
    grep -q 'interrupted: .* rerun the same command to resume' <<<"$log" || fail "B: the job did not stop on SIGUSR1 with the resume hint"
    grep -Eq 'resuming: [1-9][0-9]* of [0-9]+ samples already done' <<<"$log" || fail "B: no rerun resumed a partial output"
    grep -E 'interrupted:|resuming:' <<<"$log" | sed 's/^/   /'
fi
grep '\[diffu-sbatch' <<<"$log" | grep -E 'USR1|requeued|exited|done' | sed 's/^/   /'
echo "ok B: job $jb: USR1 mid-run, $restarts restart(s), $n records each (id, sample) once; $((SECONDS - t0)) s"

# ---- C: Slurm's own time-limit timer, whatever its phase ----------------------------------
if [[ -n ${DIFFU_JOB_CMD:-} ]]; then
    echo "skip C: the stand-in does not resume (real job only)"
    echo PASS
    exit 0
fi
# 300 requests of the slow size (tens of minutes even on a fast machine): the first run is always cut
make_input "$W/c.jsonl" "${DIFFU_SLURM_TEST_C_REQUESTS:-300}"
t0=$SECONDS
jc=$(DIFFU_STANDIN_DELAY=${DIFFU_STANDIN_DELAY_C:-1.0} submit "${common[@]}" --input "$W/c.jsonl" --output "$W/c.out.jsonl" \
    --time 1 --signal-lead 50 -- "${GEN_SLOW[@]}") || fail "submit C"
clog() { cat "$W"/c.out.jsonl.slurm/slurm-*.log 2>/dev/null; }
# the first run is cut by Slurm's warning and requeued (also with nothing written), the rerun starts
# and reads the output: at most 40 s to the warning + 50 s to the limit + the requeue (~30 s) + start
until grep -q 'run 2 (restart 1)' <<<"$(clog)" && grep -Eq 'resuming: [0-9]+ of|generate: [0-9]+ sequence|an in-flight checkpoint of' <<<"$(clog | sed -n '/run 2 (restart 1)/,$p')"; do
    ((SECONDS - t0 < 400)) || fail "C: no rerun of job $jc started and read its output within 400 s"
    st=$(slurm_job_field "$jc" JobState)
    [[ $st == FAILED || $st == COMPLETED || $st == CANCELLED ]] && fail "C: job $jc ended ($st) without a rerun"
    sleep 1
done
log=$(clog)
first=$(sed -n '1,/run 2 (restart 1)/p' <<<"$log")
grep -q 'USR1: the time limit is near' <<<"$first" || fail "C: the first run was not warned by Slurm (USR1)"
grep -Eq "requeueing job $jc " <<<"$first" || fail "C: the first run did not requeue the job"
at=$(sed -n 's/.*the job exited with status [0-9]*; output [0-9]* bytes (+\([0-9]*\) this run).*/\1/p' <<<"$first" | tail -n 1)
[[ -n $at ]] || fail "C: the first run's exit line is missing"
n1=$(records_in "$W/c.out.jsonl")
second=$(sed -n '/run 2 (restart 1)/,$p' <<<"$log")
if ((at > 0)); then
    # the rerun found what the first run wrote (it may have written more since)
    k=$(sed -n 's/.*resuming: \([0-9]*\) of [0-9]* samples already done.*/\1/p' <<<"$second" | head -n 1)
    [[ -n $k ]] && ((k >= 1)) || fail "C: the first run wrote $at bytes, the rerun did not resume them"
    echo "   C: the first run wrote $k record(s) before Slurm's warning; the rerun resumed them"
elif ! grep -q 'sample(s) in flight saved' <<<"$first"; then
    grep -q 'added nothing to the output .* requeueing anyway' <<<"$first" || fail "C: an idle first run was not requeued"
    echo "   C: Slurm's warning came before the model had loaded; requeued anyway (DIFFU_MAX_IDLE_RESTARTS)"
fi
# in-flight checkpoints (issue 14): the samples the first run had in flight at the warning were saved, and the
# rerun continues them mid-sample (so a run shorter than one sample still makes progress)
if grep -q 'sample(s) in flight saved' <<<"$first"; then
    grep -q 'an in-flight checkpoint of [0-9]* sample' <<<"$second" ||
        fail "C: the first run saved its samples in flight, the rerun did not continue them"
    echo "   C: the first run's samples in flight were checkpointed at the warning; the rerun continues them mid-sample:"
    grep -E 'in flight saved|an in-flight checkpoint of' <<<"$log" | head -n 2 | sed 's/^/     /'
fi
grep '\[diffu-sbatch' <<<"$first" | grep -E 'USR1|requeue|exited|added' | sed 's/^/   /'
scancel "$jc"
slurm_wait_job "$jc" 120 >/dev/null
# what the runs wrote: every record a known (id, sample), none twice
"$BIN" merge --missing-ok --input "$W/c.jsonl" "$W/c.out.jsonl" 2>"$W/merge.err" || { cat "$W/merge.err" >&2; fail "C: merge"; }
grep -q ', 0 duplicate(s), 0 unexpected' "$W/merge.err" || { cat "$W/merge.err" >&2; fail "C: duplicate or unexpected records"; }
echo "ok C: job $jc: Slurm's timer warned the first run, the job requeued and the rerun resumed; $(records_in "$W/c.out.jsonl") record(s), none twice; $((SECONDS - t0)) s"
echo PASS
