#!/usr/bin/env bash
# tests/slurm/check_plan.sh DIFFU_BIN — `diffu plan` on the DiffuCoder-7B
# shape (`diffu mkmodel --preset 7b --config-only`: config.json only) and on
# the tiny preset. References: `diffu layout` for the memory of the same
# layout (the plan must agree with it to the MiB), the closed form for the
# ranks per node (R = stages per node x tp, threads = cores / R), the
# recommendation rules of cli/cmd_plan.c worked out by hand for these shapes,
# and the refusals' reasons.
set -uo pipefail
BIN=$(readlink -f "${1:?usage: $0 path/to/diffu}")
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
n_ok=0
fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { n_ok=$((n_ok + 1)); }
"$BIN" mkmodel --preset 7b --config-only --out "$T/7b" >/dev/null 2>&1 || fail "mkmodel 7b --config-only"
M=(--model "$T/7b" --config-only)
shellvars() { "$BIN" plan "${M[@]}" "$@" --shell; }

# 1. 4 nodes x 64 cores x 256 GiB, 2 NUMA domains: the model (15 GB BF16) fits in one node, so
#    4 one-node jobs; one rank per NUMA domain = 2 ranks per node, tensor-parallel (tp 2 divides 28
#    heads), 32 threads each
v=$(shellvars --nodes 4 --cores-per-node 64 --mem-per-node 256 --numa-per-node 2) || fail "plan 1"
[[ "$(echo $v)" == "DIFFU_PP=1 DIFFU_TP=2 DIFFU_NODES=1 DIFFU_TASKS_PER_NODE=2 DIFFU_NTASKS=2 DIFFU_CPUS_PER_TASK=32 DIFFU_JOBS=4 "* ]] ||
    fail "plan 1: $(echo $v)"
ok
out=$("$BIN" plan "${M[@]}" --nodes 4 --cores-per-node 64 --mem-per-node 256 --numa-per-node 2) || fail "plan 1 text"
grep -q '^recommended: --pp 1 --tp 2: 4 job(s) of 1 node(s) each, 2 rank(s) per node x 32 thread(s) (sbatch --nodes=1 --ntasks-per-node=2 --cpus-per-task=32)$' <<<"$out" ||
    fail "plan 1 recommendation line: $(grep recommended <<<"$out")"
grep -q 'the model fits in one node' <<<"$out" && grep -q 'one rank per domain' <<<"$out" &&
    grep -q 'diffu split --shards 4' <<<"$out" && grep -q 'mpirun --map-by ppr:2:node:PE=32 --bind-to core' <<<"$out" ||
    fail "plan 1 reasons: $out"
grep -Eq '^\* +1 +4 +1 +2 +2 +32 +64 +100.0%' <<<"$out" || fail "plan 1: the starred row"
ok
# with one NUMA domain: one rank of 64 threads
v=$(shellvars --nodes 4 --cores-per-node 64 --mem-per-node 256) || fail "plan 1b"
[[ "$(echo $v)" == "DIFFU_PP=1 DIFFU_TP=1 DIFFU_NODES=1 DIFFU_TASKS_PER_NODE=1 DIFFU_NTASKS=1 DIFFU_CPUS_PER_TASK=64 DIFFU_JOBS=4 "* ]] ||
    fail "plan 1b: $(echo $v)"
ok

# 2. memory agrees with `diffu layout` for the same layout and threads
eval "$(shellvars --nodes 1 --cores-per-node 64 --mem-per-node 256 --pp 1 --tp 1)"
lay=$("$BIN" layout "${M[@]}" --np 1 --threads 64 | sed -n 's/^memory: largest rank \([0-9.]*\) MiB.*/\1/p')
[[ $DIFFU_RANK_MEM_MIB == "$(awk -v x="$lay" 'BEGIN { printf "%d", x == int(x) ? x : int(x) + 1 }')" ]] ||
    fail "plan says $DIFFU_RANK_MEM_MIB MiB for pp 1 tp 1 x 64 threads, layout $lay"
((DIFFU_RANK_MEM_MIB > 14500 && DIFFU_RANK_MEM_MIB < 20000)) || fail "7B BF16 on one rank: $DIFFU_RANK_MEM_MIB MiB (weights alone are ~14.5 GiB)"
eval "$(shellvars --nodes 2 --cores-per-node 32 --mem-per-node 64 --pp 4 --tp 2)"
lay=$("$BIN" layout "${M[@]}" --np 8 --pp 4 --tp 2 --threads 8 | awk '$1 ~ /^[0-9]+$/ && NF == 12 { if ($12 > m) m = $12 } END { print m }')
[[ $DIFFU_RANK_MEM_MIB == "$(awk -v x="$lay" 'BEGIN { printf "%d", x == int(x) ? x : int(x) + 1 }')" ]] ||
    fail "pp 4 tp 2: plan $DIFFU_RANK_MEM_MIB MiB, layout $lay"
# placement: 4 stages on 2 nodes -> 2 stages x 2 tp = 4 ranks per node, 32 / 4 = 8 threads
[[ "$DIFFU_NODES $DIFFU_TASKS_PER_NODE $DIFFU_CPUS_PER_TASK" == "2 4 8" ]] || fail "pp 4 tp 2 on 2 nodes: $DIFFU_NODES $DIFFU_TASKS_PER_NODE $DIFFU_CPUS_PER_TASK"
ok

# 3. small nodes (12 GiB): no single node holds the model; 5 nodes: one 5-stage job, tp 2 per node
v=$(shellvars --nodes 5 --cores-per-node 32 --mem-per-node 12 --numa-per-node 2) || fail "plan 3"
[[ "$(echo $v)" == "DIFFU_PP=5 DIFFU_TP=2 DIFFU_NODES=5 DIFFU_TASKS_PER_NODE=2 DIFFU_NTASKS=10 DIFFU_CPUS_PER_TASK=16 DIFFU_JOBS=1 "* ]] ||
    fail "plan 3: $(echo $v)"
out=$("$BIN" plan "${M[@]}" --nodes 5 --cores-per-node 32 --mem-per-node 12 --numa-per-node 2)
grep -q 'the model needs 5 nodes' <<<"$out" && grep -q 'do not fit in memory' <<<"$out" || fail "plan 3 text: $out"
# 4 nodes of 12 GiB: two 2-node jobs (4 stages x tp 1 per node... whichever the rules pick, 2 nodes per job, 2 jobs)
eval "$(shellvars --nodes 4 --cores-per-node 32 --mem-per-node 12 --numa-per-node 2)"
[[ "$DIFFU_NODES $DIFFU_JOBS" == "2 2" ]] || fail "4 x 12 GiB: $DIFFU_NODES node(s) per job, $DIFFU_JOBS job(s)"
((DIFFU_NODE_MEM_MIB <= 12 * 1024 * 9 / 10)) || fail "4 x 12 GiB: $DIFFU_NODE_MEM_MIB MiB per node exceeds 90% of 12 GiB"
ok

# 4. a given layout is placed over as many of the nodes as split it evenly
eval "$(shellvars --nodes 4 --cores-per-node 32 --mem-per-node 12 --pp 4 --tp 2)"
[[ "$DIFFU_NODES $DIFFU_TASKS_PER_NODE $DIFFU_CPUS_PER_TASK" == "4 2 16" ]] || fail "pp 4 tp 2 on 4 nodes: $DIFFU_NODES $DIFFU_TASKS_PER_NODE $DIFFU_CPUS_PER_TASK"
eval "$(shellvars --nodes 3 --cores-per-node 32 --mem-per-node 12 --pp 4 --tp 2)"
[[ "$DIFFU_NODES $DIFFU_TASKS_PER_NODE" == "2 4" ]] || fail "pp 4 on 3 nodes: 2 nodes of 2 stages expected, got $DIFFU_NODES x $DIFFU_TASKS_PER_NODE"
ok

# 5. refusals, one line with the reason, exit 1; usage errors exit 2
"$BIN" plan "${M[@]}" --nodes 1 --cores-per-node 32 --mem-per-node 12 >/dev/null 2>"$T/err" && fail "fits nowhere accepted"
grep -q '^diffu plan: error: no layout fits: the least memory per node is 1[0-9.]* GiB (pp 1 x tp 1 on 1 node(s)), usable 10.80 GiB' "$T/err" ||
    fail "no-fit reason: $(cat "$T/err")"
"$BIN" plan "${M[@]}" --nodes 2 --cores-per-node 32 --mem-per-node 64 --pp 2 --tp 8 >/dev/null 2>"$T/err"
[[ $? == 1 ]] && grep -q 'tp 8 does not divide num_attention_heads 28 (tp must be one of 1, 2, 4, 7, 14, 28)' "$T/err" || fail "tp 8: $(cat "$T/err")"
"$BIN" plan "${M[@]}" --nodes 2 --cores-per-node 4 --mem-per-node 64 --pp 2 --tp 7 >/dev/null 2>"$T/err"
[[ $? == 1 ]] && grep -q 'tp 7 exceeds --cores-per-node 4' "$T/err" || fail "tp 7 on 4 cores: $(cat "$T/err")"
"$BIN" plan "${M[@]}" --nodes 2 --cores-per-node 32 --mem-per-node 64 --pp 29 --tp 1 >/dev/null 2>"$T/err"
[[ $? == 1 ]] && grep -q 'pp 29 exceeds num_hidden_layers 28' "$T/err" || fail "pp 29: $(cat "$T/err")"
"$BIN" plan "${M[@]}" --nodes 2 --cores-per-node 32 >/dev/null 2>&1
[[ $? == 2 ]] || fail "missing --mem-per-node is a usage error"
"$BIN" plan "${M[@]}" --nodes 2 --cores-per-node 32 --mem-per-node 64 --pp 2 >/dev/null 2>&1
[[ $? == 2 ]] || fail "--pp without --tp is a usage error"
ok

# 6. the tiny model on the 2-CPU test node (what tests/slurm/check_job.sh submits)
"$BIN" mkmodel --preset tiny --out "$T/tiny" >/dev/null 2>&1 || fail "mkmodel tiny"
v=$("$BIN" plan --model "$T/tiny" --nodes 1 --cores-per-node 2 --mem-per-node 4 --pp 1 --tp 2 --shell) || fail "plan tiny"
[[ "$(echo $v)" == "DIFFU_PP=1 DIFFU_TP=2 DIFFU_NODES=1 DIFFU_TASKS_PER_NODE=2 DIFFU_NTASKS=2 DIFFU_CPUS_PER_TASK=1 DIFFU_JOBS=1 "* ]] ||
    fail "plan tiny: $(echo $v)"
ok
echo "PASS ($n_ok checks)"
