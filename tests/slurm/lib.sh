#!/usr/bin/env bash
# tests/slurm/lib.sh — shared by check_job.sh and check_array.sh: start the
# private Slurm (slurm_env.sh), make the tiny model and a request file, and
# check outputs with `diffu merge` (every (id, sample) exactly once).
#
# Which job runs: DIFFU_SLURM_TEST_JOB=real (default: `diffu generate` on the
# tiny model) or standin (tests/slurm/standin_job.py through DIFFU_JOB_CMD:
# the harness alone, paced by DIFFU_STANDIN_DELAY). The real job's pace is
# its size: GEN_ARGS (DIFFU_SLURM_TEST_GEN_ARGS, default "--max-new-tokens 16
# --steps 16") for the runs that should finish, GEN_SLOW
# (DIFFU_SLURM_TEST_GEN_SLOW, default "--max-new-tokens 64 --steps 64
# --max-active 4") for the datasets that must outlast a 60 s time limit.
#
# Usage: source lib.sh DIFFU_BIN   (then slurm_test_setup)

SLURM_TEST_HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SLURM_TEST_ROOT="$(cd "$SLURM_TEST_HERE/../.." && pwd)"
source "$SLURM_TEST_HERE/slurm_env.sh"

fail() {
    echo "FAIL: $*" >&2
    local f
    for f in "${W:-/nonexistent}"/*.slurm/slurm-*.log; do
        [[ -f $f ]] || continue
        echo "---- $f (last 40 lines)" >&2
        tail -n 40 "$f" >&2
    done
    slurm_env_dump_logs
    exit 1
}

# slurm_test_setup BIN: cluster up, W = work dir, MODEL = tiny model, env for the job
slurm_test_setup() {
    BIN=$(readlink -f "$1")
    [[ -x $BIN ]] || { echo "usage: $0 path/to/diffu" >&2; exit 2; }
    slurm_env_start
    W=$SLURM_ENV_DIR/work
    mkdir -p "$W"
    cd "$W" || exit 1
    export DIFFU_BIN=$BIN
    # Open MPI as root in a container (see docs/distributed.md); reaches the job through sbatch's --export=ALL
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl_vader_single_copy_mechanism=none
    case ${DIFFU_SLURM_TEST_JOB:-real} in
    standin)
        export DIFFU_JOB_CMD="/usr/bin/python3 $SLURM_TEST_HERE/standin_job.py"
        echo "job: the STAND-IN (tests/slurm/standin_job.py), not diffu generate" ;;
    real)
        unset DIFFU_JOB_CMD
        echo "job: $BIN generate" ;;
    *) echo "DIFFU_SLURM_TEST_JOB is standin or real" >&2; exit 2 ;;
    esac
    MODEL=$W/tiny
    "$BIN" mkmodel --preset tiny --seed 3 --out "$MODEL" >/dev/null 2>&1 || fail "mkmodel --preset tiny"
    slurm_need_tokenizer "$MODEL"
    GEN_ARGS=() GEN_SLOW=()
    if [[ -z ${DIFFU_JOB_CMD:-} ]]; then
        eval "GEN_ARGS=(${DIFFU_SLURM_TEST_GEN_ARGS:---max-new-tokens 16 --steps 16})"
        # 4 at a time, so samples finish (and are written) all along, not 30 together at the end
        eval "GEN_SLOW=(${DIFFU_SLURM_TEST_GEN_SLOW:---max-new-tokens 64 --steps 64 --max-active 4})"
    fi
    return 0
}

# slurm_need_tokenizer MODEL: the real job reads text prompts, so the model needs the tokenizer that
# mkmodel copies from the cached vocabulary (deploy/fetch_vocab.sh, run by setup.sh); skip without it
slurm_need_tokenizer() {
    [[ -n ${DIFFU_JOB_CMD:-} || -f $1/tokenizer.json ]] && return 0
    echo "SKIP: $1 has no tokenizer.json: the vocabulary is not cached (run deploy/fetch_vocab.sh)"
    exit 77
}

# make_input FILE N: N requests: string ids, a few integer ids, every 5th with
# "n": 2, every 7th with "task_id" instead of "id" (HumanEval style)
make_input() {
    local f=$1 n=$2 i
    : >"$f.tmp"
    for ((i = 0; i < n; i++)); do
        if ((i % 7 == 3)); then
            printf '{"task_id": "Task/%d", "prompt": "def f%d(x):\\n    "}\n' "$i" "$i"
        elif ((i % 11 == 4)); then
            printf '{"id": %d, "prompt": "def g%d():\\n    "}\n' "$((1000 + i))" "$i"
        elif ((i % 5 == 0)); then
            printf '{"id": "req-%03d", "prompt": "def h%d(a, b):\\n    ", "n": 2}\n' "$i" "$i"
        else
            printf '{"id": "req-%03d", "prompt": "def h%d(a, b):\\n    "}\n' "$i" "$i"
        fi
    done >>"$f.tmp"
    case $f in *.gz) gzip -c "$f.tmp" >"$f" && rm -f "$f.tmp" ;; *) mv "$f.tmp" "$f" ;; esac
}

# expected_samples FILE: the (id, sample) pairs make_input's file asks for
expected_samples() {
    zcat -f "$1" | awk '/"n": 2/ { s += 2; next } NF { s += 1 } END { print s }'
}

# check_exactly_once INPUT OUTPUT...: every (id, sample) of INPUT exactly once
check_exactly_once() {
    local in=$1
    shift
    "$BIN" merge --input "$in" "$@" 2>"$W/merge.err" || { cat "$W/merge.err" >&2; return 1; }
    grep -q ', 0 duplicate(s), 0 unexpected, 0 missing' "$W/merge.err" || { cat "$W/merge.err" >&2; return 1; }
}

# submit ARGS...: deploy/slurm/submit.sh; prints the job id(s)
submit() {
    bash "$SLURM_TEST_ROOT/deploy/slurm/submit.sh" "$@"
}
