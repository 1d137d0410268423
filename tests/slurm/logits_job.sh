#!/usr/bin/env bash
# tests/slurm/logits_job.sh — a STAND-IN job for check_two_nodes.sh that is
# real MPI: takes the `diffu generate` options the job script passes
# (--model --output --pp --tp --threads; the rest ignored) and runs the
# distributed forward `diffu logits --pp P --tp T` on every rank instead,
# writing the logits of $LOGITS_JOB_IDS to OUTPUT.logits.bin, and logging
# each rank's host. So a job submitted through deploy/slurm/submit.sh and
# diffu.sbatch runs real MPI traffic across the (namespace) nodes, and the
# result can be compared with the single process.
set -euo pipefail
model="" output="" pp=1 tp=1 threads=1
while [[ $# -gt 0 ]]; do
    case $1 in
    --model) model=$2; shift 2 ;;
    --output) output=$2; shift 2 ;;
    --pp) pp=$2; shift 2 ;;
    --tp) tp=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --*) if [[ $# -ge 2 && $2 != --* ]]; then shift 2; else shift; fi ;;
    *) shift ;;
    esac
done
echo "logits-job rank ${OMPI_COMM_WORLD_RANK:-?} on $(hostname) pid $$: cpus $(taskset -pc $$ | sed 's/.*: //')" >&2
exec "${DIFFU_BIN:?}" logits --model "$model" --pp "$pp" --tp "$tp" --threads "$threads" --ids "${LOGITS_JOB_IDS:?}" \
    --out "$output.logits.bin" --comm-timeout 60
