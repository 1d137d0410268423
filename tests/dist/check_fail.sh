#!/usr/bin/env bash
# check_fail.sh — the distributed job refuses or ends, non-zero, with a message
# naming the cause (and the rank).
#
# usage: check_fail.sh DIFFU_BIN CASE NP PP TP EXPECTED_TEXT [mkmodel options...]
#   CASE refuse        run as given; must exit non-zero within 30 s, output holding EXPECTED_TEXT
#        handshake=R:FIELD=VALUE   the same with DIFFU_DEBUG_HANDSHAKE=R:FIELD=VALUE (rank R lies)
#        kill=R        DIFFU_DEBUG_STALL=R:120 makes rank R stall before its first forward; the
#                      test SIGKILLs it and requires the job to end within 10 s, non-zero
#        signal=R:SIG  the same, sending SIG (e.g. SEGV, TERM) instead of SIGKILL
#        timeout=R     rank R stalls 120 s; the others must give up after --comm-timeout 2
#                      and end the job within 10 s of the stall, the rank that timed out naming
#                      rank R as whom it waited for (whichever neighbour's wait runs out first:
#                      rank R+1's for activations from R, or rank R-1's for R to take its own)
#        panel=R:N     rank R runs with DIFFU_ROW_PANEL=N (an MPMD launch: only that rank), as
#                      if its BLAS were another: the handshake must refuse it when rank R
#                      shares a stage with another rank (tensor parallelism)
#        precision=R:P rank R runs with --precision P (MPMD), the others with fp32: the handshake
#                      must refuse it when rank R shares a stage with another rank
# FAIL_CMD=generate (environment): run `diffu generate` (3 prompts, 64 new tokens) instead of
# `diffu logits`; the stalls then happen at microbatch FAIL_AT (default 0), i.e. mid-run when
# FAIL_AT > 0 (DIFFU_DEBUG_STALL=R:120@FAIL_AT), after the ranks have run FAIL_AT microbatches.
BIN="$1"; CASE="$2"; NP="$3"; PP="$4"; TP="$5"; EXPECT="$6"; shift 6
source "$(dirname "$0")/lib.sh"
make_model "$W/model" "$@"
make_ids "$W/ids.bin" 24
if [[ "${FAIL_CMD:-logits}" == generate ]]; then
    ARGS=(generate --pp "$PP" --tp "$TP" --model "$W/model" --prompt-ids 1,2,3,4,5,6,7 --prompt-ids 9,8,7
          --prompt-ids 5,17,33,65,129,257,513,4,8,16,32 --max-new-tokens 64 --emit-ids --threads 1)
else
    ARGS=(logits --pp "$PP" --tp "$TP" --model "$W/model" --ids "$W/ids.bin" --lengths 10,14 --out "$W/out.bin" --threads 1)
fi
AT=""
[[ -n "${FAIL_AT:-}" ]] && AT="@$FAIL_AT"
ENVX=()
LAUNCH=(-np "$NP" "$BIN" "${ARGS[@]}")
case "$CASE" in
handshake=*) ENVX=(-x "DIFFU_DEBUG_HANDSHAKE=${CASE#handshake=}") ;;
kill=* | signal=*) R="${CASE#*=}"; R="${R%%:*}"; ENVX=(-x "DIFFU_DEBUG_STALL=$R:120$AT") ;;
timeout=*) R="${CASE#timeout=}"; ENVX=(-x "DIFFU_DEBUG_STALL=$R:120$AT"); ARGS+=(--comm-timeout 2)
           LAUNCH=(-np "$NP" "$BIN" "${ARGS[@]}") ;;
panel=*) R="${CASE#panel=}"; N="${R#*:}"; R="${R%%:*}"; LAUNCH=()
         [[ $R -gt 0 ]] && LAUNCH+=(-np "$R" "$BIN" "${ARGS[@]}" :)
         LAUNCH+=(-np 1 env "DIFFU_ROW_PANEL=$N" "$BIN" "${ARGS[@]}")
         [[ $((NP - R - 1)) -gt 0 ]] && LAUNCH+=(: -np $((NP - R - 1)) "$BIN" "${ARGS[@]}") ;;
precision=*) R="${CASE#precision=}"; P="${R#*:}"; R="${R%%:*}"; LAUNCH=()
         [[ $R -gt 0 ]] && LAUNCH+=(-np "$R" "$BIN" "${ARGS[@]}" --precision fp32 :)
         LAUNCH+=(-np 1 "$BIN" "${ARGS[@]}" --precision "$P")
         [[ $((NP - R - 1)) -gt 0 ]] && LAUNCH+=(: -np $((NP - R - 1)) "$BIN" "${ARGS[@]}" --precision fp32) ;;
esac
LOG="$W/job.log"
start=$(date +%s.%N)
timeout 60 "${MPIRUN[@]}" "${ENVX[@]}" "${LAUNCH[@]}" >"$LOG" 2>&1 &
JOB=$!
if [[ "$CASE" == kill=* || "$CASE" == signal=* || "$CASE" == timeout=* ]]; then
    # the 10 s limit below counts from rank R's stall, not from the launch: start-up (3 ranks on 2
    # cores, the model's load) is not what these cases time
    pid=""
    for _ in $(seq 600); do
        pid=$(grep -o "debug: rank $R (pid [0-9]*" "$LOG" | grep -o '[0-9]*$' || true)
        [[ -n "$pid" ]] && break
        sleep 0.1
    done
    [[ -n "$pid" ]] || { echo "FAIL: rank $R never reported its stall"; cat "$LOG"; kill $JOB; exit 1; }
    start=$(date +%s.%N)
fi
if [[ "$CASE" == kill=* || "$CASE" == signal=* ]]; then
    SIG=KILL
    [[ "$CASE" == signal=*:* ]] && SIG="${CASE##*:}"
    sleep 0.5 # the others are now waiting on it
    start=$(date +%s.%N)
    kill -s "$SIG" "$pid"
    echo "sent SIG$SIG to rank $R (pid $pid)"
fi
set +e
wait $JOB
rc=$?
set -e
took=$("$PY" -c "import sys,time; print('%.1f' % (time.time() - float(sys.argv[1])))" "$start")
echo "job exit status $rc after $took s"
sed 's/^/  | /' "$LOG" | grep -v '^  | *$' | head -n 40
[[ $rc -ne 0 ]] || { echo "FAIL: the job exited 0"; exit 1; }
[[ $rc -ne 124 ]] || { echo "FAIL: the job hung (killed by timeout 60)"; exit 1; }
limit=30
[[ "$CASE" == kill=* || "$CASE" == signal=* || "$CASE" == timeout=* ]] && limit=10
"$PY" -c "import sys; sys.exit(0 if float(sys.argv[1]) <= float(sys.argv[2]) else 1)" "$took" "$limit" || {
    echo "FAIL: took $took s, more than $limit s"; exit 1; }
expect_in "$LOG" "$EXPECT"
if [[ "$CASE" == timeout=* ]] &&
    ! grep -qE "waited [0-9.]+ s \(the communication timeout.* rank $R \(stage" "$LOG"; then
    echo "FAIL: no rank's timeout message names rank $R as whom it waited for"; exit 1
fi
echo PASS
