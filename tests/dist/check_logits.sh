#!/usr/bin/env bash
# check_logits.sh — the distributed forward against the single process.
#
# usage: check_logits.sh DIFFU_BIN PP TP MICROBATCHES LENGTHS [mkmodel options...]
# Makes a random model (tiny preset, vocab 1000, + options), runs the
# single-process `diffu logits` (the reference: itself checked against the
# NumPy reference by tests/forward) and `mpirun -np PP*TP diffu logits --pp PP
# --tp TP` on the same ids, and compares: max |dist - single| <= 1e-4 x max
# |single| and identical argmax in every row (compare_logits.py). Also checks
# each rank logged its shard line (bytes mapped/owned, VmRSS) and the handshake.
BIN="$1"; PP="$2"; TP="$3"; MB="$4"; LENGTHS="$5"; shift 5
source "$(dirname "$0")/lib.sh"
make_model "$W/model" "$@"
make_ids "$W/ids.bin" "$(total "$LENGTHS")"
"$BIN" logits --model "$W/model" --ids "$W/ids.bin" --lengths "$LENGTHS" --out "$W/single.bin" --threads 1 2>"$W/single.log" || {
    cat "$W/single.log"; exit 1; }
NP=$((PP * TP))
"${MPIRUN[@]}" -np "$NP" "$BIN" logits --pp "$PP" --tp "$TP" --microbatches "$MB" --model "$W/model" \
    --ids "$W/ids.bin" --lengths "$LENGTHS" --out "$W/dist.bin" --threads 1 --comm-timeout 60 >"$W/dist.log" 2>&1 || {
    echo "FAIL: mpirun exited $?"; cat "$W/dist.log"; exit 1; }
grep -E 'handshake|forward:' "$W/dist.log"
grep 'shard:' "$W/dist.log" | sort | head -n 4
[[ $(grep -c 'shard: stage' "$W/dist.log") -eq $NP ]] || { echo "FAIL: not every rank logged its shard"; cat "$W/dist.log"; exit 1; }
expect_in "$W/dist.log" "handshake: $NP rank(s)"
VOCAB=$("$PY" -c "import json,sys; print(json.load(open(sys.argv[1]))['vocab_size'])" "$W/model/config.json")
"$PY" "$REF/compare_logits.py" "$W/single.bin" "$W/dist.bin" --vocab "$VOCAB" --tol 1e-4
