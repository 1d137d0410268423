#!/usr/bin/env bash
# check_mixed_panel.sh — stages whose forwards pad to different row panels (another BLAS
# on that host, another precision) still line up: activations travel between stages one
# row per token (model/forward.h, "Row layout"), and each stage lays them out on its own
# panel. Rank R runs with DIFFU_ROW_PANEL=N (an MPMD launch, as if its BLAS were another),
# the other ranks with this machine's panel P. Reference: the single process (itself
# checked against the NumPy reference by tests/forward). Tolerance: bit for bit when N is a
# multiple of P (rows then sit on P's panels everywhere and get the same sgemm bits), else
# 1e-4 x max |logit| with the same argmax (compare_logits.py, as dist_logits_*).
# usage: check_mixed_panel.sh DIFFU_BIN PP R N [mkmodel options...]
BIN="$1"; PP="$2"; R="$3"; N="$4"; shift 4
source "$(dirname "$0")/lib.sh"
make_model "$W/model" "$@"
LENGTHS=10,14,7,30
make_ids "$W/ids.bin" "$(total "$LENGTHS")"
ARGS=(logits --model "$W/model" --ids "$W/ids.bin" --lengths "$LENGTHS" --threads 1 --precision fp32)
"$BIN" "${ARGS[@]}" --out "$W/single.bin" 2>"$W/single.log" || { cat "$W/single.log"; exit 1; }
P=$(grep -o 'padded to the row panel [0-9]*' "$W/single.log" | grep -o '[0-9]*$')
[[ -n "$P" ]] || { echo "FAIL: the single process did not log its row panel"; cat "$W/single.log"; exit 1; }
LAUNCH=()
[[ $R -gt 0 ]] && LAUNCH+=(-np "$R" "$BIN" "${ARGS[@]}" --pp "$PP" --out "$W/dist.bin" :)
LAUNCH+=(-np 1 env "DIFFU_ROW_PANEL=$N" "$BIN" "${ARGS[@]}" --pp "$PP" --out "$W/dist.bin")
[[ $((PP - R - 1)) -gt 0 ]] && LAUNCH+=(: -np $((PP - R - 1)) "$BIN" "${ARGS[@]}" --pp "$PP" --out "$W/dist.bin")
"${MPIRUN[@]}" "${LAUNCH[@]}" --comm-timeout 60 >"$W/dist.log" 2>&1 || { echo "FAIL: mpirun exited $?"; cat "$W/dist.log"; exit 1; }
grep 'row panel by rank' "$W/dist.log"
PANELS=""
for ((i = 0; i < PP; i++)); do
    if [[ $i -eq $R ]]; then PANELS+="$N "; else PANELS+="$P "; fi
done
expect_in "$W/dist.log" "row panel by rank: $PANELS"
VOCAB=$("$PY" -c "import json,sys; print(json.load(open(sys.argv[1]))['vocab_size'])" "$W/model/config.json")
if (( N % P == 0 )); then
    cmp "$W/single.bin" "$W/dist.bin" || { echo "FAIL: rank $R on panel $N (a multiple of $P): logits not bit-identical"; exit 1; }
    echo "rank $R on row panel $N, the others on $P: logits bit-identical to the single process"
else
    "$PY" "$REF/compare_logits.py" "$W/single.bin" "$W/dist.bin" --vocab "$VOCAB" --tol 1e-4
    echo "rank $R on row panel $N, the others on $P: within 1e-4 x scale of the single process"
fi
echo PASS
