#!/usr/bin/env bash
# tests/slurm/check_smoke.sh — the private Slurm of slurm_env.sh does what the
# diffu tests rely on:
#   1. `sbatch --wrap hostname` runs and writes its output file;
#   2. an array of 3 tasks runs each task with its SLURM_ARRAY_TASK_ID;
#   3. a job with --time=1 --signal=B:USR1@50 gets USR1 before its time limit
#      (measured and printed), requeues itself from the trap with
#      `scontrol requeue $SLURM_JOB_ID`, and its rerun sees SLURM_RESTART_COUNT=1
#      and completes (Restarts=1, COMPLETED).
# Skips (77) unless root; about 1.5 minutes.
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$HERE/slurm_env.sh"
slurm_env_start
W=$SLURM_ENV_DIR/work
mkdir -p "$W"
cd "$W" || exit 1
fail() { echo "FAIL: $*" >&2; slurm_env_dump_logs; exit 1; }

# 1. one job
j=$(sbatch --parsable -o "$W/host.out" --wrap hostname) || fail "sbatch --wrap hostname"
slurm_wait_job "$j" 60 || fail "job $j did not complete"
[[ "$(cat "$W/host.out")" == "$(hostname)" ]] || fail "host.out holds '$(cat "$W/host.out")', expected '$(hostname)'"
echo "ok 1: sbatch --wrap hostname -> $(cat "$W/host.out")"

# 2. an array of 3
a=$(sbatch --parsable -a 0-2 -o "$W/arr_%a.out" --wrap 'echo "task $SLURM_ARRAY_TASK_ID of $SLURM_ARRAY_JOB_ID"') || fail "sbatch -a 0-2"
slurm_wait_job "$a" 90 || fail "array $a did not complete"
for i in 0 1 2; do
    grep -qx "task $i of $a" "$W/arr_$i.out" || fail "arr_$i.out: '$(cat "$W/arr_$i.out" 2>/dev/null)'"
done
echo "ok 2: array of 3 tasks"

# 3. time limit -> USR1 -> self-requeue -> rerun with SLURM_RESTART_COUNT=1
cat >"$W/requeue.sbatch" <<'EOF'
#!/bin/bash
#SBATCH --time=00:01:00
#SBATCH --signal=B:USR1@50
#SBATCH --requeue
#SBATCH --open-mode=append
t0=$(date +%s.%N)
echo "start restart=${SLURM_RESTART_COUNT:-0}"
if [[ ${SLURM_RESTART_COUNT:-0} -ge 1 ]]; then echo "rerun done"; exit 0; fi
got=0
trap 'got=1' USR1
sleep 100 & p=$!
while kill -0 $p 2>/dev/null; do
    wait $p
    if [[ $got == 1 ]]; then
        echo "usr1 after $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s"
        kill $p
        # printed before: a successful requeue kills this shell at once (under load, before an echo after it)
        echo "requeueing"
        scontrol requeue "$SLURM_JOB_ID" || echo "requeue failed"
        exit 0
    fi
done
echo "no signal"
exit 1
EOF
r=$(sbatch --parsable -o "$W/requeue.out" "$W/requeue.sbatch") || fail "sbatch requeue.sbatch"
t0=$SECONDS
slurm_wait_job "$r" 150 || { cat "$W/requeue.out" >&2; fail "requeue job $r did not complete"; }
cat "$W/requeue.out"
grep -q '^usr1 after' "$W/requeue.out" || fail "no USR1 before the time limit"
grep -q '^requeueing' "$W/requeue.out" && ! grep -q '^requeue failed' "$W/requeue.out" || fail "scontrol requeue from the job failed"
grep -q '^start restart=1' "$W/requeue.out" || fail "the rerun did not see SLURM_RESTART_COUNT=1"
[[ "$(slurm_job_field "$r" Restarts)" == 1 ]] || fail "Restarts=$(slurm_job_field "$r" Restarts), expected 1"
echo "ok 3: USR1 $(sed -n 's/^usr1 after //p' "$W/requeue.out") into a 60 s limit; requeued; rerun completed $((SECONDS - t0)) s after submission"
echo PASS
