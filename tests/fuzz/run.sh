#!/usr/bin/env bash
# tests/fuzz/run.sh TARGET SECONDS — run one libFuzzer target for SECONDS and
# merge the inputs that add coverage into its committed corpus.
#
#   TARGET   json safetensors ckpt config tokenizer_load tokenizer_codec jobin jobresume proto args manifest inflight
#   SECONDS  wall time of the run (libFuzzer -max_total_time)
#
# Builds build-fuzz/ (clang, -DDIFFU_FUZZ=ON: ASan + UBSan + coverage), incrementally
# before every run. The run explores in build-fuzz/fuzz/work/TARGET (seeded
# from tests/fuzz/corpus/TARGET); then `-set_cover_merge=1` adds to the committed corpus
# only the inputs that reach new coverage (a greedy minimum set). A crash or an
# oracle failure stops the run: the input is in build-fuzz/fuzz/crashes/TARGET/
# (fix the parser, then copy it into the corpus as crash-NAME: the replay test
# keeps it fixed). The last line is a summary:
#   fuzz TARGET: RAN s (of SECONDS), EXECS execs, cov COV, ft FT, corpus N files / BYTES bytes, crashes K, slow units S
# Environment: DIFFU_FUZZ_BUILD (default ./build-fuzz), DIFFU_FUZZ_NICE (15),
# DIFFU_FUZZ_ARGS (extra libFuzzer flags, e.g. -jobs=1). One target at a time:
# it uses one core.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HERE="$ROOT/tests/fuzz"
T="${1:?usage: run.sh TARGET SECONDS}"
SECS="${2:?usage: run.sh TARGET SECONDS}"
B="${DIFFU_FUZZ_BUILD:-$ROOT/build-fuzz}"
NICE="${DIFFU_FUZZ_NICE:-15}"
BIN="$B/fuzz/fuzz_$T"
# configure once, build every time (incremental: a fuzzer binary older than a fix would replay the
# fixed crash from the corpus and stop at once)
[[ -f "$B/CMakeCache.txt" ]] ||
    cmake -S "$ROOT" -B "$B" -DCMAKE_C_COMPILER=clang -DDIFFU_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
nice -n "$NICE" cmake --build "$B" --target "fuzz_$T" -j "${DIFFU_JOBS:-2}" >/dev/null
CORPUS="$HERE/corpus/$T"
WORK="$B/fuzz/work/$T"
CRASH="$B/fuzz/crashes/$T"
LOG="$B/fuzz/logs/$T.log"
mkdir -p "$CORPUS" "$WORK" "$CRASH" "$(dirname "$LOG")"
DICT=()
[[ -f "$HERE/dict/$T.dict" ]] && DICT=(-dict="$HERE/dict/$T.dict")
# crashes: crash-*, leak-*, timeout-*, oom-* (libFuzzer's artifacts); slow-unit-* are inputs that took
# over 10 s once (-report_slow_units) — counted apart, replay them to see whether they are slow at all
count() { find "$CRASH" -maxdepth 1 -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' \) | wc -l; }
slow() { find "$CRASH" -maxdepth 1 -type f -name 'slow-unit-*' | wc -l; }
before=$(count)
slow_before=$(slow)
export DIFFU_FUZZ_DATA="$HERE/data"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:allocator_may_return_null=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
set +e
t0=$(date +%s)
nice -n "$NICE" "$BIN" "${DICT[@]}" -max_total_time="$SECS" -print_final_stats=1 -timeout=20 -rss_limit_mb=2560 \
    -max_len=65536 -artifact_prefix="$CRASH/" -close_fd_mask=1 ${DIFFU_FUZZ_ARGS:-} "$WORK" "$CORPUS" >"$LOG" 2>&1
rc=$?
ran=$(($(date +%s) - t0))
set -e
after=$(count)
slow_after=$(slow)
# merge what adds coverage into the committed corpus (minimized: -set_cover_merge=1, a greedy minimum set of the inputs with new features)
nice -n "$NICE" "$BIN" -set_cover_merge=1 -timeout=20 -rss_limit_mb=2560 -max_len=65536 -close_fd_mask=1 "$CORPUS" "$WORK" \
    >"$LOG.merge" 2>&1 || echo "fuzz $T: merge failed (see $LOG.merge)" >&2
execs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$LOG" | tail -1 | awk '{print $2}')
covline=$(grep -E '^#[0-9]+.*cov: [0-9]+' "$LOG" | tail -1)
cov=$(sed -n 's/.*cov: \([0-9]*\).*/\1/p' <<<"$covline")
ft=$(sed -n 's/.*ft: \([0-9]*\).*/\1/p' <<<"$covline")
nfiles=$(ls "$CORPUS" | wc -l)
bytes=$(du -sb "$CORPUS" | awk '{print $1}')
if ((rc != 0)); then
    echo "fuzz $T: libFuzzer exited $rc; the report:" >&2
    grep -E 'ERROR|SUMMARY|fuzz oracle|Test unit written|DIFFU|assert' "$LOG" | head -20 >&2 || true
fi
echo "fuzz $T: $ran s (of $SECS), ${execs:-?} execs, cov ${cov:-?}, ft ${ft:-?}, corpus $nfiles files / $bytes bytes, crashes $((after - before)), slow units $((slow_after - slow_before))"
exit $rc
