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
#                      and end the job within 10 s, naming rank R
BIN="$1"; CASE="$2"; NP="$3"; PP="$4"; TP="$5"; EXPECT="$6"; shift 6
source "$(dirname "$0")/lib.sh"
make_model "$W/model" "$@"
make_ids "$W/ids.bin" 24
ARGS=(logits --pp "$PP" --tp "$TP" --model "$W/model" --ids "$W/ids.bin" --lengths 10,14 --out "$W/out.bin" --threads 1)
ENVX=()
case "$CASE" in
handshake=*) ENVX=(-x "DIFFU_DEBUG_HANDSHAKE=${CASE#handshake=}") ;;
kill=* | signal=*) R="${CASE#*=}"; R="${R%%:*}"; ENVX=(-x "DIFFU_DEBUG_STALL=$R:120") ;;
timeout=*) R="${CASE#timeout=}"; ENVX=(-x "DIFFU_DEBUG_STALL=$R:120"); ARGS+=(--comm-timeout 2) ;;
esac
LOG="$W/job.log"
start=$(date +%s.%N)
timeout 60 "${MPIRUN[@]}" "${ENVX[@]}" -np "$NP" "$BIN" "${ARGS[@]}" >"$LOG" 2>&1 &
JOB=$!
if [[ "$CASE" == kill=* || "$CASE" == signal=* ]]; then
    SIG=KILL
    [[ "$CASE" == signal=*:* ]] && SIG="${CASE##*:}"
    pid=""
    for _ in $(seq 300); do
        pid=$(grep -o "debug: rank $R (pid [0-9]*" "$LOG" | grep -o '[0-9]*$' || true)
        [[ -n "$pid" ]] && break
        sleep 0.1
    done
    [[ -n "$pid" ]] || { echo "FAIL: rank $R never reported its stall"; cat "$LOG"; kill $JOB; exit 1; }
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
echo PASS
