#!/usr/bin/env bash
# deploy/slurm/submit.sh — submit a diffu batch job to Slurm: pick or check
# the layout with `diffu plan`, write the job script (deploy/slurm/diffu.sbatch
# with the #SBATCH geometry and settings on top) and sbatch it. With
# --shards K: split the input with `diffu split`, submit a K-task job array
# (one shard each, its own output) and a merge job that runs after all of them
# (`diffu merge`: every (id, sample) exactly once).
#
#   deploy/slurm/submit.sh --model DIR --input IN.jsonl[.gz] --output OUT.jsonl[.gz] [options] [-- diffu generate options]
#
# Layout (see `diffu plan --help`):
#   --pp P --tp T            the layout; without them, the one `diffu plan` recommends
#   --nodes N                nodes for one job (default 1; with --shards: per array task)
#   --cores-per-node C       physical cores per node  } default: from `sinfo` for the partition
#   --mem-per-node G         GiB per node             } (sockets x cores per socket; memory)
#   --numa-per-node D        NUMA domains per node (default: sockets from sinfo, else 1)
#   --plan-arg ARG           pass ARG to `diffu plan` (e.g. --plan-arg --max-tokens=4096)
# Slurm:
#   --time T                 time limit per run (e.g. 24:00:00; default: the partition's)
#   --partition P --account A --qos Q --job-name NAME
#   --signal-lead S          USR1 this many seconds before the limit (default 120)
#   --mem M                  sbatch --mem per node (default: the plan's estimate + 25%; 0 = the whole node)
#   --exclusive              whole nodes
#   --sbatch-arg ARG         any other sbatch option, e.g. --sbatch-arg=--constraint=avx2 (repeatable)
#   --launcher mpirun|srun   (default mpirun)
#   --max-restarts N         stop requeueing after N reruns (default 50)
# Arrays:
#   --shards K               split the input into K shards, one array task each
#   --max-parallel M         at most M tasks at once (default: all)
#   --no-merge               do not submit the merge job
# Other:
#   --work DIR               where the job script, logs and shards go (default OUT.slurm/)
#   --dry-run                write the scripts and print them; do not split or submit
# Environment: DIFFU_BIN (the diffu binary; default build/bin/diffu of this
# checkout, else diffu on PATH), DIFFU_JOB_CMD (a command to run instead of
# `diffu generate`; tests use their stand-in), SBATCH (the sbatch command).
#
# Prints the job ids; exit 0 when submitted, 1 on an error (one line), 2 usage.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
TEMPLATE="$HERE/diffu.sbatch"
die() { echo "submit.sh: error: $*" >&2; exit 1; }
usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }

model="" input="" output="" pp="" tp="" nodes="" cores="" memg="" numa="" time_="" partition="" account="" qos=""
jobname="diffu" lead=120 mem="" exclusive=0 launcher=mpirun maxr=50 shards=0 maxpar="" merge=1 work="" dry=0
plan_args=() sbatch_args=() gen=()
need() { [[ $# -ge 2 && -n $2 ]] || { echo "submit.sh: $1 needs a value" >&2; exit 2; }; }
while [[ $# -gt 0 ]]; do
    a=$1
    if [[ $a == --*=* ]]; then set -- "${a%%=*}" "${a#*=}" "${@:2}"; a=$1; fi
    case $a in
    --model) need "$@"; model=$2; shift 2 ;;
    --input) need "$@"; input=$2; shift 2 ;;
    --output) need "$@"; output=$2; shift 2 ;;
    --pp) need "$@"; pp=$2; shift 2 ;;
    --tp) need "$@"; tp=$2; shift 2 ;;
    --nodes) need "$@"; nodes=$2; shift 2 ;;
    --cores-per-node) need "$@"; cores=$2; shift 2 ;;
    --mem-per-node) need "$@"; memg=$2; shift 2 ;;
    --numa-per-node) need "$@"; numa=$2; shift 2 ;;
    --plan-arg) need "$@"; plan_args+=("$2"); shift 2 ;;
    --time) need "$@"; time_=$2; shift 2 ;;
    --partition) need "$@"; partition=$2; shift 2 ;;
    --account) need "$@"; account=$2; shift 2 ;;
    --qos) need "$@"; qos=$2; shift 2 ;;
    --job-name) need "$@"; jobname=$2; shift 2 ;;
    --signal-lead) need "$@"; lead=$2; shift 2 ;;
    --mem) need "$@"; mem=$2; shift 2 ;;
    --exclusive) exclusive=1; shift ;;
    --sbatch-arg) need "$@"; sbatch_args+=("$2"); shift 2 ;;
    --launcher) need "$@"; launcher=$2; shift 2 ;;
    --max-restarts) need "$@"; maxr=$2; shift 2 ;;
    --shards) need "$@"; shards=$2; shift 2 ;;
    --max-parallel) need "$@"; maxpar=$2; shift 2 ;;
    --no-merge) merge=0; shift ;;
    --work) need "$@"; work=$2; shift 2 ;;
    --dry-run) dry=1; shift ;;
    -h | --help) usage ;;
    --) shift; gen=("$@"); break ;;
    *) echo "submit.sh: unknown option '$a' (diffu generate options go after --)" >&2; exit 2 ;;
    esac
done
[[ -n $model && -n $input && -n $output ]] || { echo "submit.sh: --model, --input and --output are required" >&2; exit 2; }
[[ -z $pp && -z $tp || -n $pp && -n $tp ]] || { echo "submit.sh: give both --pp and --tp, or neither" >&2; exit 2; }
[[ $launcher == mpirun || $launcher == srun ]] || { echo "submit.sh: --launcher is mpirun or srun" >&2; exit 2; }
for v in "$shards" "$lead" "$maxr" ${nodes:+"$nodes"} ${maxpar:+"$maxpar"}; do
    [[ $v =~ ^[0-9]+$ ]] || { echo "submit.sh: '$v' is not a number" >&2; exit 2; }
done

# ---- the binary, absolute paths ----------------------------------------------
if [[ -n ${DIFFU_BIN:-} ]]; then bin=$DIFFU_BIN
elif [[ -x $ROOT/build/bin/diffu ]]; then bin=$ROOT/build/bin/diffu
else bin=$(command -v diffu) || die "no diffu binary (build it, or set DIFFU_BIN)"; fi
bin=$(readlink -f "$bin")
[[ -x $bin ]] || die "$bin is not executable"
[[ -f $model/config.json ]] || die "$model/config.json not found (--model is a checkpoint directory)"
[[ -f $input ]] || die "$input not found"
model=$(readlink -f "$model")
input=$(readlink -f "$input")
output=$(readlink -m "$output")
[[ -d $(dirname "$output") ]] || die "the directory of $output does not exist"
work=$(readlink -m "${work:-$output.slurm}")
SBATCH=${SBATCH:-sbatch}

# ---- the cluster's shape -------------------------------------------------------
if [[ -z $cores || -z $memg ]]; then
    command -v sinfo >/dev/null || die "give --cores-per-node and --mem-per-node (no sinfo here)"
    # CPUs, memory (MB), sockets, cores per socket, threads per core of the partition's smallest node
    line=$(sinfo -h ${partition:+-p "$partition"} -o '%c %m %X %Y %Z' 2>/dev/null | sort -n -k1,1 -k2,2 | head -n 1)
    [[ -n $line ]] || die "sinfo shows no nodes${partition:+ in partition $partition}; give --cores-per-node and --mem-per-node"
    read -r s_cpus s_mem s_sock s_cps s_tpc <<<"$line"
    s_mem=${s_mem%%+*}
    s_cpus=${s_cpus%%+*}
    if [[ -z $cores ]]; then
        if [[ $s_sock =~ ^[0-9]+$ && $s_cps =~ ^[0-9]+$ ]] && ((s_sock * s_cps > 0 && s_sock * s_cps <= s_cpus)); then
            cores=$((s_sock * s_cps))
        else cores=$s_cpus; fi
    fi
    [[ -n $memg ]] || memg=$(awk -v m="$s_mem" 'BEGIN { printf "%.1f", m / 1024 }')
    [[ -n $numa || ! $s_sock =~ ^[0-9]+$ ]] || numa=$s_sock
    echo "submit.sh: from sinfo${partition:+ -p $partition}: $cores cores, ${memg} GiB per node${numa:+, $numa socket(s)}" >&2
fi

# ---- the layout ------------------------------------------------------------------
plan=("$bin" plan --model "$model" --nodes "${nodes:-1}" --cores-per-node "$cores" --mem-per-node "$memg"
    ${numa:+--numa-per-node "$numa"} ${pp:+--pp "$pp" --tp "$tp"} "${plan_args[@]}")
[[ -f $model/model.safetensors || -f $model/model.safetensors.index.json ]] || plan+=(--config-only)
vars=$("${plan[@]}" --shell) || die "diffu plan refused the layout (above); see: ${plan[*]}"
eval "$vars"
if [[ -n $nodes && $DIFFU_NODES != "$nodes" ]]; then
    echo "submit.sh: note: the plan uses $DIFFU_NODES of the $nodes node(s) per job (${plan[*]} shows why)" >&2
fi
if [[ $shards == 0 && $DIFFU_JOBS -gt 1 && -z $pp ]]; then
    echo "submit.sh: note: $DIFFU_JOBS jobs of this size fit on the nodes: --shards $DIFFU_JOBS (or a multiple) runs them as an array" >&2
fi
if [[ -z $mem ]]; then mem="$(((DIFFU_NODE_MEM_MIB * 5 + 3) / 4))M"; fi

# ---- the job script --------------------------------------------------------------
mkdir -p "$work"
gz_in=0
[[ "$(head -c 2 "$input" | od -An -tx1 | tr -d ' \n')" == 1f8b ]] && gz_in=1
outext=.jsonl
[[ $output == *.gz ]] && outext=.jsonl.gz
if ((shards > 0)); then
    K=$(printf '%05d' "$shards")
    inext=.jsonl
    ((gz_in)) && inext=.jsonl.gz
    job_in="$work/in-{shard}-of-{shards}$inext"
    job_out="$work/out-{shard}-of-{shards}$outext"
    logpat="$work/slurm-%A_%a.log"
else
    job_in=$input
    job_out=$output
    logpat="$work/slurm-%j.log"
fi
q() { # single-quoted for the job script: readable, and safe for any value
    if [[ $1 =~ ^[A-Za-z0-9_./:=+@%,-]+$ ]]; then printf '%s' "$1"; else printf "'%s'" "${1//\'/\'\\\'\'}"; fi
}
script="$work/job.sbatch"
{
    echo '#!/bin/bash'
    echo "# written by deploy/slurm/submit.sh on $(date '+%F %T') from $TEMPLATE"
    echo "# layout: $("${plan[@]}" --shell | tr '\n' ' ')"
    echo "#SBATCH --job-name=$jobname"
    echo "#SBATCH --nodes=$DIFFU_NODES"
    echo "#SBATCH --ntasks-per-node=$DIFFU_TASKS_PER_NODE"
    echo "#SBATCH --cpus-per-task=$DIFFU_CPUS_PER_TASK"
    echo "#SBATCH --mem=$mem"
    echo "#SBATCH --requeue"
    echo "#SBATCH --signal=B:USR1@$lead"
    echo "#SBATCH --open-mode=append"
    echo "#SBATCH --output=$logpat"
    [[ -n $time_ ]] && echo "#SBATCH --time=$time_"
    [[ -n $partition ]] && echo "#SBATCH --partition=$partition"
    [[ -n $account ]] && echo "#SBATCH --account=$account"
    [[ -n $qos ]] && echo "#SBATCH --qos=$qos"
    ((exclusive)) && echo "#SBATCH --exclusive"
    ((shards > 0)) && echo "#SBATCH --array=0-$((shards - 1))${maxpar:+%$maxpar}"
    for a in "${sbatch_args[@]}"; do echo "#SBATCH $a"; done
    echo
    echo "# ---- settings (submit.sh) ----"
    echo "DIFFU_BIN=$(q "$bin")"
    echo "DIFFU_MODEL=$(q "$model")"
    echo "DIFFU_INPUT=$(q "$job_in")"
    echo "DIFFU_OUTPUT=$(q "$job_out")"
    echo "DIFFU_PP=$DIFFU_PP"
    echo "DIFFU_TP=$DIFFU_TP"
    echo "DIFFU_THREADS=$DIFFU_CPUS_PER_TASK"
    echo "DIFFU_LAUNCHER=$launcher"
    ((shards > 0)) && echo "DIFFU_SHARDS=$shards"
    echo "DIFFU_MAX_RESTARTS=$maxr"
    echo "DIFFU_STOP_GRACE=\${DIFFU_STOP_GRACE:-$((lead > 40 ? lead - 30 : lead * 3 / 4))}"
    printf 'DIFFU_EXTRA=('
    for a in "${gen[@]}"; do printf ' %q' "$a"; done
    printf ' )\n'
    [[ -n ${DIFFU_JOB_CMD:-} ]] && echo "DIFFU_JOB_CMD=$(q "$DIFFU_JOB_CMD")"
    sed -n '/^# ---- settings ----/,$p' "$TEMPLATE" | sed '1,/^# (submit.sh inserts its block here)/d'
} >"$script"
chmod +x "$script"

# the samples each request asks for by default (for the merge's expectations)
defn=1
for ((i = 0; i < ${#gen[@]}; i++)); do
    case ${gen[i]} in --n) defn=${gen[i + 1]:-1} ;; --n=*) defn=${gen[i]#--n=} ;; esac
done
if ((shards > 0)); then
    shard_outs=()
    for ((i = 0; i < shards; i++)); do shard_outs+=("$work/out-$(printf '%05d' "$i")-of-$K$outext"); done
    mscript="$work/merge.sbatch"
    {
        echo '#!/bin/bash'
        echo "# written by deploy/slurm/submit.sh: merge the $shards shard outputs once every array task has completed"
        echo "#SBATCH --job-name=$jobname-merge"
        echo "#SBATCH --nodes=1"
        echo "#SBATCH --ntasks=1"
        echo "#SBATCH --cpus-per-task=1"
        echo "#SBATCH --output=$work/slurm-merge-%j.log"
        [[ -n $time_ ]] && echo "#SBATCH --time=$time_"
        [[ -n $partition ]] && echo "#SBATCH --partition=$partition"
        [[ -n $account ]] && echo "#SBATCH --account=$account"
        [[ -n $qos ]] && echo "#SBATCH --qos=$qos"
        printf 'exec %q merge --input %q --n %q --output %q' "$bin" "$input" "$defn" "$output"
        for f in "${shard_outs[@]}"; do printf ' %q' "$f"; done
        echo
    } >"$mscript"
    chmod +x "$mscript"
fi

if ((dry)); then
    echo "submit.sh: dry run: $script$( ((shards > 0)) && echo " and $mscript")" >&2
    cat "$script"
    ((shards > 0)) && { echo; cat "$mscript"; echo "# and first: $bin split --input $input --shards $shards --out-prefix $work/in"; }
    exit 0
fi

# ---- a dry run of the job itself, when it has one: model + input + layout checked before queueing
jobcmd=("$bin" generate)
[[ -n ${DIFFU_JOB_CMD:-} ]] && eval "jobcmd=($DIFFU_JOB_CMD)"
if grep -q -- "--dry-run" <<<"$("${jobcmd[@]}" --help 2>&1)"; then
    echo "submit.sh: checking with ${jobcmd[*]} --dry-run" >&2
    "${jobcmd[@]}" --dry-run --model "$model" --input "$input" --output "$output" --pp "$DIFFU_PP" --tp "$DIFFU_TP" \
        --threads "$DIFFU_CPUS_PER_TASK" "${gen[@]}" >&2 || die "the job's --dry-run failed (above)"
fi

# ---- split, submit ---------------------------------------------------------------------
if ((shards > 0)); then
    have=1
    for ((i = 0; i < shards; i++)); do
        [[ -f $work/in-$(printf '%05d' "$i")-of-$K$inext ]] || have=0
    done
    if ((have)); then
        echo "submit.sh: reusing the $shards input shards in $work (delete them to split again)" >&2
    else
        "$bin" split --input "$input" --shards "$shards" --out-prefix "$work/in" --force >/dev/null || die "diffu split failed"
    fi
fi
jid=$("$SBATCH" --parsable "$script") || die "sbatch $script failed"
jid=${jid%%;*}
echo "submit.sh: submitted job $jid: $script ($([[ $shards -gt 0 ]] && echo "array of $shards, ")$DIFFU_NODES node(s) x" \
    "$DIFFU_TASKS_PER_NODE rank(s) x $DIFFU_CPUS_PER_TASK thread(s), pp $DIFFU_PP x tp $DIFFU_TP); logs: $work/slurm-*.log" >&2
echo "$jid"
if ((shards > 0 && merge)); then
    mid=$("$SBATCH" --parsable --dependency="afterok:$jid" --kill-on-invalid-dep=yes "$mscript") || die "sbatch $mscript failed"
    mid=${mid%%;*}
    echo "submit.sh: submitted merge job $mid (after every task of $jid completes) -> $output" >&2
    echo "$mid"
fi
