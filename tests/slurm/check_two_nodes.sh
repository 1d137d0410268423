#!/usr/bin/env bash
# tests/slurm/check_two_nodes.sh DIFFU_BIN — the multi-node path on a real
# Slurm of two "nodes" (slurm_env_start 2: two network + UTS namespaces on a
# private bridge, a slurmd in each, hostnames diffu-n1 / diffu-n2):
#   1. submit.sh --pp 2 --tp 2 --nodes 2: #SBATCH --nodes=2
#      --ntasks-per-node=2 --cpus-per-task=1; mpirun (started by the batch
#      script on diffu-n1) starts its daemon on diffu-n2 through srun; the
#      ranks land stage by stage: ranks 0, 1 (stage 0, both TP ranks) on
#      diffu-n1, ranks 2, 3 (stage 1) on diffu-n2 — TP inside a node,
#      pipeline across nodes (the handshake's host map); the job (`diffu
#      generate`, or the stand-in with DIFFU_SLURM_TEST_JOB=standin)
#      completes with every (id, sample) exactly once;
#   2. the same submission with a real MPI job (logits_job.sh: the
#      distributed forward `diffu logits --pp 2 --tp 2`, TCP between the
#      nodes): its logits equal the single process's (max |d| <= 1e-4 x
#      scale, same argmax: tests/ref/compare_logits.py).
# Root with CAP_SYS_ADMIN/CAP_NET_ADMIN; skips (77) otherwise. About 30 s.
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$HERE/lib.sh"
BIN=$(readlink -f "${1:-}")
[[ -x $BIN ]] || { echo "usage: $0 path/to/diffu" >&2; exit 2; }
slurm_env_start 2
W=$SLURM_ENV_DIR/work
mkdir -p "$W"
cd "$W" || exit 1
export DIFFU_BIN=$BIN
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl_vader_single_copy_mechanism=none
# only the test bridge between the nodes (each namespace also has lo)
export OMPI_MCA_pml=ob1 OMPI_MCA_btl=self,vader,tcp OMPI_MCA_btl_tcp_if_include=dsl0 OMPI_MCA_oob_tcp_if_include=dsl0
MODEL=$W/tiny
"$BIN" mkmodel --preset tiny --seed 5 --out "$MODEL" >/dev/null 2>&1 || fail "mkmodel"   # with the tokenizer
[[ ${DIFFU_SLURM_TEST_JOB:-real} == standin ]] || slurm_need_tokenizer "$MODEL"
common=(--model "$MODEL" --pp 2 --tp 2 --nodes 2 --cores-per-node 2 --mem-per-node 4 --partition debug --time 5)

# 1. placement: the batch job over the two nodes
make_input "$W/in.jsonl" 6
gen=()
if [[ ${DIFFU_SLURM_TEST_JOB:-real} == standin ]]; then
    export DIFFU_JOB_CMD="/usr/bin/python3 $HERE/standin_job.py"
else
    unset DIFFU_JOB_CMD
    gen=(--max-new-tokens 16 --steps 16)
fi
j=$(DIFFU_STANDIN_DELAY=0.1 submit "${common[@]}" --input "$W/in.jsonl" --output "$W/out.jsonl" -- "${gen[@]}" \
    2>"$W/submit.err") || { cat "$W/submit.err"; fail "submit 1"; }
slurm_wait_job "$j" 120 || fail "job $j did not complete"
log=$(cat "$W"/out.jsonl.slurm/slurm-*.log)
grep -q '^#SBATCH --nodes=2$' "$W/out.jsonl.slurm/job.sbatch" && grep -q '^#SBATCH --ntasks-per-node=2$' "$W/out.jsonl.slurm/job.sbatch" ||
    fail "job script geometry"
if [[ -n ${DIFFU_JOB_CMD:-} ]]; then
    for r in 0 1; do grep -q "stand-in rank $r on diffu-n1 " <<<"$log" || fail "rank $r is not on diffu-n1: $(grep 'stand-in rank' <<<"$log")"; done
    for r in 2 3; do grep -q "stand-in rank $r on diffu-n2 " <<<"$log" || fail "rank $r is not on diffu-n2: $(grep 'stand-in rank' <<<"$log")"; done
    grep 'stand-in rank' <<<"$log" | sort | sed 's/^/   /'
else
    grep -q 'handshake: 4 rank(s) on 2 host(s) (diffu-n1: ranks 0 1; diffu-n2: ranks 2 3)' <<<"$log" ||
        fail "ranks not placed stage by stage: $(grep 'handshake:' <<<"$log")"
    grep -E 'handshake:|stage [01] \(ranks' <<<"$log" | sed 's/^/   /' | cut -c1-150
fi
check_exactly_once "$W/in.jsonl" "$W/out.jsonl" || fail "output not each (id, sample) exactly once"
echo "ok 1: job $j on diffu-n[1-2]: stage 0 (ranks 0, 1) on diffu-n1, stage 1 (ranks 2, 3) on diffu-n2"

# 2. real MPI across the nodes: the distributed forward through the same job script
/usr/bin/python3 -c "import struct; open('$W/ids.bin', 'wb').write(struct.pack('<12i', *[(7 * i + 3) % 900 for i in range(12)]))"
"$BIN" logits --model "$MODEL" --ids "$W/ids.bin" --out "$W/single.bin" --threads 1 2>/dev/null || fail "single-process logits"
export DIFFU_JOB_CMD="bash $HERE/logits_job.sh" LOGITS_JOB_IDS=$W/ids.bin
j=$(submit "${common[@]}" --input "$W/in.jsonl" --output "$W/mpi.jsonl" 2>"$W/submit.err") || { cat "$W/submit.err"; fail "submit 2"; }
slurm_wait_job "$j" 120 || fail "MPI job $j did not complete"
log=$(cat "$W"/mpi.jsonl.slurm/slurm-*.log)
grep -q 'handshake: 4 rank(s)' <<<"$log" || fail "no handshake of 4 ranks in the log"
grep -q 'logits-job rank 2 on diffu-n2' <<<"$log" && grep -q 'logits-job rank 0 on diffu-n1' <<<"$log" || fail "ranks not on both nodes"
VOCAB=$(/usr/bin/python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['vocab_size'])" "$MODEL/config.json")
/usr/bin/python3 "$SLURM_TEST_ROOT/tests/ref/compare_logits.py" "$W/single.bin" "$W/mpi.jsonl.logits.bin" --vocab "$VOCAB" --tol 1e-4 ||
    fail "the 2-node logits differ from the single process"
grep -E 'shard: stage' <<<"$log" | sed 's/^/   /' | cut -c1-150
echo "ok 2: job $j: diffu logits --pp 2 --tp 2 over 2 Slurm nodes (TCP) == single process"
echo PASS
