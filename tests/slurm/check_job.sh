#!/usr/bin/env bash
# tests/slurm/check_job.sh DIFFU_BIN — the batch job through deploy/slurm/
# submit.sh + diffu.sbatch on a real (private, single-node) Slurm:
#   A. --pp 1 --tp 2 on the tiny model: two ranks bound to one core each
#      (mpirun --map-by ppr:2:node:PE=1 --bind-to core), the job COMPLETED
#      without a restart, every (id, sample) of the input exactly once;
#   B. the same with --time=1 and the warning 50 s before the limit, on a
#      dataset that takes longer than one run: Slurm sends USR1, the script
#      forwards it through mpirun, the job stops, the script requeues the job,
#      the rerun resumes; at the end COMPLETED with Restarts >= 1, records from
#      the first run and from a rerun, every (id, sample) exactly once.
# The job is `diffu generate` on the tiny model (lib.sh; the stand-in with
# DIFFU_SLURM_TEST_JOB=standin). Skips (77) unless root. About 4 minutes.
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

# ---- B: a time limit hit mid-run, requeue, resume ---------------------------------------
# the dataset must outlast the first warning (USR1 10-40 s into a 60 s limit), so that at least one
# requeue is needed: the real job generates 64 tokens in 64 steps per sample (GEN_SLOW: about 2 minutes
# in all at --tp 2 here); the stand-in writes one record per DIFFU_STANDIN_DELAY s (48 x 1 s)
make_input "$W/b.jsonl" "${DIFFU_SLURM_TEST_B_REQUESTS:-40}"
want=$(expected_samples "$W/b.jsonl")
t0=$SECONDS
jb=$(DIFFU_STANDIN_DELAY=${DIFFU_STANDIN_DELAY_B:-1.0} submit "${common[@]}" --input "$W/b.jsonl" --output "$W/b.out.jsonl" \
    --time 1 --signal-lead 50 -- "${GEN_SLOW[@]}") || fail "submit B"
slurm_wait_job "$jb" 420 || fail "job B ($jb) did not complete"
log=$(cat "$W"/b.out.jsonl.slurm/slurm-*.log)
restarts=$(slurm_job_field "$jb" Restarts)
((restarts >= 1)) || fail "B: Restarts=$restarts: the time limit was not hit mid-run (the dataset is too small?)"
check_exactly_once "$W/b.jsonl" "$W/b.out.jsonl" || fail "B: output is not every (id, sample) exactly once"
n=$(wc -l <"$W/b.out.jsonl")
[[ $n == "$want" ]] || fail "B: $n records, expected $want"
grep -q 'USR1: the time limit is near' <<<"$log" || fail "B: no USR1 in the log"
grep -q "requeued job $jb" <<<"$log" || fail "B: the job did not requeue itself"
grep -q 'done: .* is complete' <<<"$log" || fail "B: the last run did not complete"
if [[ -n ${DIFFU_JOB_CMD:-} ]]; then
    grep -q 'stand-in: SIGUSR1: stopped after' <<<"$log" || fail "B: SIGUSR1 did not reach the job through mpirun"
    r0=$(grep -c '"restart": 0' "$W/b.out.jsonl")
    r1=$(grep -vc '"restart": 0' "$W/b.out.jsonl")
    ((r0 > 0 && r1 > 0)) || fail "B: records of the first run ($r0) and of reruns ($r1) expected"
    echo "   records by run: $(grep -o '"restart": [0-9]*' "$W/b.out.jsonl" | sort | uniq -c | tr -s ' ' | tr '\n' ';')"
else
    # the rerun resumed: it found records of the first run and did not redo them
    grep -q 'interrupted: .* rerun the same command to resume' <<<"$log" || fail "B: the job did not stop on SIGUSR1 with the resume hint"
    grep -Eq 'resuming: [1-9][0-9]* of [0-9]+ samples already done' <<<"$log" || fail "B: no rerun resumed a partial output"
    grep -E 'interrupted:|resuming:' <<<"$log" | sed 's/^/   /'
fi
grep '\[diffu-sbatch' <<<"$log" | grep -E 'USR1|requeued|exited|done' | sed 's/^/   /'
echo "ok B: job $jb: time limit 60 s, $restarts restart(s), $n records each (id, sample) once; $((SECONDS - t0)) s"
echo PASS
