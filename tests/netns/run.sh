#!/usr/bin/env bash
# run.sh — run any MPI command across two "hosts" (network namespaces on this
# machine, TCP only between them; tests/netns/lib.sh), then remove them.
#
# usage: run.sh [--np N] [--timeout S] -- COMMAND [ARGS...]
#   mpirun -np N COMMAND ARGS... with ranks 0..N/2-1 on host 1 and the rest on
#   host 2 (default N 2, S 120 s: then mpirun is killed). Both hosts see this
#   machine's filesystem, so paths work unchanged. Environment variables reach
#   the host-2 ranks only through -x (put `-x NAME` before COMMAND, as with any
#   mpirun: the arguments after -- are appended to mpirun's own).
# Prints the command's output; exit status: mpirun's (124/137: timed out),
# 77 when this machine cannot make the hosts (the reason printed).
# e.g.  tests/netns/run.sh --np 2 -- hostname
#       tests/netns/run.sh --np 4 -- build/bin/diffu logits --pp 2 --tp 2 --model M --ids I --out O
source "$(dirname "$0")/lib.sh"
NP=2; SECS=120
while [[ $# -gt 0 ]]; do
    case "$1" in
    --np) NP="$2"; shift 2 ;;
    --timeout) SECS="$2"; shift 2 ;;
    --) shift; break ;;
    -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "run.sh: unknown option '$1' (usage: run.sh [--np N] [--timeout S] -- COMMAND [ARGS...])" >&2; exit 2 ;;
    esac
done
[[ $# -gt 0 ]] || { echo "run.sh: no command (usage: run.sh [--np N] [--timeout S] -- COMMAND [ARGS...])" >&2; exit 2; }
netns_preflight
netns_up
rc=0
netns_mpirun "$NP" "$SECS" "$@" || rc=$?
[[ $rc -eq 124 || $rc -eq 137 ]] && echo "[netns] mpirun did not finish within $SECS s: killed"
netns_log "mpirun exited $rc"
exit $rc
