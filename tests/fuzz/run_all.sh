#!/usr/bin/env bash
# tests/fuzz/run_all.sh SECONDS [TARGET...] — tests/fuzz/run.sh for every target
# (or those named), one after the other (each uses one core), SECONDS each.
# Keeps going after a target that crashed; prints the summary lines at the end
# and exits non-zero if any target crashed.
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SECS="${1:?usage: run_all.sh SECONDS [TARGET...]}"
shift
TARGETS=("$@")
((${#TARGETS[@]})) || TARGETS=(json safetensors ckpt config tokenizer_load tokenizer_codec jobin jobresume proto args manifest inflight)
rc=0
summary=()
for t in "${TARGETS[@]}"; do
    line=$(bash "$HERE/run.sh" "$t" "$SECS" | tail -1) || rc=1
    echo "$line"
    summary+=("$line")
done
printf '%s\n' "${summary[@]}"
exit $rc
