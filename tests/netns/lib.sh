# lib.sh — two "hosts" on this machine for a real multi-host mpirun (sourced by
# check.sh and run.sh). Each host is a network namespace with one veth on a
# private bridge; TCP over that bridge is the only path between them. The
# recipe is the one in /work/shared/reference/parallelism-and-mpi.md ("Several
# "hosts" on one machine"); docs/distributed.md ("Several hosts on one machine").
#
#   netns_preflight    exit 77 (skip) with the reason when this cannot work here
#   netns_up           create namespaces, bridge, veths, addresses, agent, hostfile
#   netns_mpirun NP S CMD...   mpirun -np NP CMD across the two hosts (NP/2 per host),
#                      launched from inside host 1, killed after S seconds
#   netns_down         remove everything (also the EXIT trap; safe to call twice)
#
# Addresses: $NETNS_NET.1 and .2/24 (default 10.213.77, override with
# DIFFU_NETNS_NET=a.b.c); they exist only inside the namespaces, which have no
# default route, so nothing can be sent anywhere but to the other test host.
# Names carry the pid ($$): dnt-PID-h1/-h2 (namespaces and hostnames),
# dnt-PID-br (bridge), dnt-PID-v1/-v2 (host ends of the veths), dnt0 (the
# interface inside each namespace). Leftovers of a run that was SIGKILLed (pid
# gone) are swept at the next start.
#
# Environment: host 1's ranks inherit mpirun's; host 2 starts from a clean one
# (the agent, as ssh would) holding only PATH, HOME, LANG and this machine's
# OPENBLAS_* settings (both hosts "have the same profile"); more through -x
# (DIFFU_NETNS_PASSENV="NAME ..." adds `-x NAME` to every mpirun) or, per
# host, NETNS_H1_ENV / NETNS_H2_ENV (arrays of NAME=VALUE, set before netns_mpirun).
#
# Skips (exit 77, reason on stdout): not root, no ip/unshare/mpirun/timeout,
# `ip netns add` or bridge/veth creation refused (no CAP_SYS_ADMIN/CAP_NET_ADMIN,
# e.g. an unprivileged container), unshare --uts refused, or the test subnet
# overlapping an address/route of this machine. DIFFU_NETNS_REQUIRE=1 turns
# every skip into a failure (exit 1), for CI that must run it.
set -euo pipefail

NETNS_PY=/usr/bin/python3   # Debian's python3 with numpy (tests/ref)
NETNS_HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
NETNS_REF="$NETNS_HERE/../ref"
NETNS_NET="${DIFFU_NETNS_NET:-10.213.77}"
NETNS_TAG="dnt-$$"
NETNS_H1="$NETNS_TAG-h1"
NETNS_H2="$NETNS_TAG-h2"
NETNS_BR="$NETNS_TAG-br"
NETNS_IF=dnt0
NETNS_ADDR1="$NETNS_NET.1"
NETNS_ADDR2="$NETNS_NET.2"
NETNS_W=""
NETNS_CREATED=0
NETNS_RUNPID=""
NETNS_RUNDIR_NEW=0  # 1: /run/netns did not exist before this run (ip netns add makes and mounts it)
NETNS_H1_ENV=()   # NAME=VALUE: extra environment of host 1's ranks (mpirun's), per netns_mpirun
NETNS_H2_ENV=()   # NAME=VALUE (no spaces): extra environment of host 2 (its orted and ranks)

netns_log() { echo "[netns] $*"; }

netns_skip() {
    if [[ "${DIFFU_NETNS_REQUIRE:-0}" == 1 ]]; then
        echo "FAIL (DIFFU_NETNS_REQUIRE=1): cannot run: $*"
        exit 1
    fi
    echo "SKIP: $*"
    exit 77
}

netns_preflight() {
    [[ $(id -u) -eq 0 ]] || netns_skip "needs root (network namespaces, bridge, veth); running as uid $(id -u)"
    local c
    for c in ip unshare mpirun timeout "$NETNS_PY"; do
        command -v "$c" >/dev/null 2>&1 || netns_skip "'$c' not found"
    done
    ip netns list >/dev/null 2>&1 || netns_skip "'ip netns' unavailable: $(ip netns list 2>&1 | head -n 1)"
    [[ "$NETNS_NET" =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || netns_skip "DIFFU_NETNS_NET '$NETNS_NET' is not a.b.c"
    # the test subnet must not overlap anything configured on this machine
    # (an address of any interface, any route but the default one)
    local clash
    clash=$({ ip -o -4 addr show; ip -4 route show table all; } 2>/dev/null | "$NETNS_PY" -c "
import ipaddress, re, sys
test = ipaddress.ip_network(sys.argv[1] + '.0/24')
seen = set()
for w in sys.stdin.read().split():
    if w in seen or not re.fullmatch(r'\d+\.\d+\.\d+\.\d+(/\d+)?', w): continue
    seen.add(w)
    try: n = ipaddress.ip_network(w, strict=False)
    except ValueError: continue
    if n.prefixlen > 0 and n.overlaps(test): print(w)" "$NETNS_NET")
    [[ -z "$clash" ]] || netns_skip "test subnet $NETNS_NET.0/24 overlaps this machine's $(echo $clash) (set DIFFU_NETNS_NET to another private a.b.c)"
}

# remove leftovers of earlier runs whose script is gone (dnt-PID-*, PID dead)
netns_sweep_stale() {
    local n pid swept=0
    for n in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E '^dnt-[0-9]+-h[12]$' || true); do
        pid=${n#dnt-}; pid=${pid%%-*}
        if ! kill -0 "$pid" 2>/dev/null; then
            netns_log "removing stale namespace $n (pid $pid is gone)"
            netns_kill_ns "$n"
            ip netns del "$n" 2>/dev/null || true
            swept=1
        fi
    done
    local d
    for d in "${TMPDIR:-/tmp}"/diffu-netns-*.*; do
        [[ -d "$d" ]] || continue
        pid=${d##*/diffu-netns-}; pid=${pid%%.*}
        [[ "$pid" =~ ^[0-9]+$ ]] && ! kill -0 "$pid" 2>/dev/null && rm -rf "$d"
    done
    # /run/netns left empty by that run: ours to remove at the end, as if new
    if [[ $swept -eq 1 && -z "$(ls -A /run/netns 2>/dev/null)" ]]; then NETNS_RUNDIR_NEW=1; fi
    for n in $(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | sed 's/@.*//' | grep -E '^dnt-[0-9]+-(br|v[12])$' || true); do
        pid=${n#dnt-}; pid=${pid%%-*}
        if ! kill -0 "$pid" 2>/dev/null; then
            netns_log "removing stale link $n (pid $pid is gone)"
            ip link del "$n" 2>/dev/null || true
        fi
    done
}

# end whatever still runs inside namespace $1 (processes this run started there):
# SIGTERM, then SIGKILL after 2 s
netns_kill_ns() {
    local ns="$1" pids i sig=TERM
    for i in $(seq 40); do
        pids=$(ip netns pids "$ns" 2>/dev/null || true)
        [[ -n "$pids" ]] || return 0
        [[ $i -eq 1 ]] && netns_log "ending leftover processes in $ns: $(echo $pids)"
        [[ $i -eq 1 || $i -ge 20 ]] && kill -$sig $pids 2>/dev/null
        [[ $i -eq 19 ]] && sig=KILL
        sleep 0.1
    done
    netns_log "processes still in $ns after SIGKILL: $(ip netns pids "$ns" 2>/dev/null | tr '\n' ' ')"
}

netns_down() {
    local rc=$?
    trap - EXIT INT TERM HUP
    set +e
    if [[ -n "$NETNS_RUNPID" ]]; then
        # interrupted during a run: timeout passes SIGTERM on to mpirun, which ends its job
        kill -TERM "$NETNS_RUNPID" 2>/dev/null
        local i
        for i in $(seq 50); do kill -0 "$NETNS_RUNPID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$NETNS_RUNPID" 2>/dev/null
        NETNS_RUNPID=""
    fi
    if [[ $NETNS_CREATED -eq 1 ]]; then
        netns_kill_ns "$NETNS_H1"
        netns_kill_ns "$NETNS_H2"
        ip netns del "$NETNS_H1" 2>/dev/null
        ip netns del "$NETNS_H2" 2>/dev/null
        ip link del "$NETNS_TAG-v1" 2>/dev/null
        ip link del "$NETNS_TAG-v2" 2>/dev/null
        ip link del "$NETNS_BR" 2>/dev/null
        # the /run/netns mount that `ip netns add` made, if it was not there before and no
        # other namespace uses it now (umount without -l fails while one is mounted inside)
        if [[ $NETNS_RUNDIR_NEW -eq 1 && -d /run/netns && -z "$(ls -A /run/netns 2>/dev/null)" ]]; then
            if grep -q ' /run/netns /run/netns ' /proc/self/mountinfo; then umount /run/netns 2>/dev/null; fi
            rmdir /run/netns 2>/dev/null
        fi
        local left
        left=$( { ip netns list | grep -F "$NETNS_TAG-"; ip -o link show | grep -F "$NETNS_TAG-"; } 2>/dev/null)
        if [[ -n "$left" ]]; then
            echo "FAIL: left behind after cleanup:"; echo "$left"
            [[ $rc -eq 0 || $rc -eq 77 ]] && rc=1
        else
            netns_log "cleaned up: namespaces $NETNS_H1 $NETNS_H2, bridge $NETNS_BR, veths removed"
        fi
        NETNS_CREATED=0
    fi
    [[ -n "$NETNS_W" ]] && rm -rf "$NETNS_W"
    NETNS_W=""
    exit $rc
}

# step DESCRIPTION CMD...: a setup step; on failure skip with the reason
netns_step() {
    local what="$1" out; shift
    if ! out=$("$@" 2>&1); then
        netns_skip "$what failed: $* -> ${out:-exit status $?} (needs CAP_SYS_ADMIN and CAP_NET_ADMIN)"
    fi
}

netns_up() {
    NETNS_CREATED=1
    trap netns_down EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    trap 'exit 129' HUP
    [[ -e /run/netns ]] || NETNS_RUNDIR_NEW=1
    netns_sweep_stale
    NETNS_W="$(mktemp -d "${TMPDIR:-/tmp}/diffu-netns-$$.XXXXXX")"
    chmod 755 "$NETNS_W"
    netns_step "creating bridge" ip link add "$NETNS_BR" type bridge
    # no IPv6 on the test links (no router solicitations, no link-local candidates for Open MPI)
    { echo 1 >"/proc/sys/net/ipv6/conf/$NETNS_BR/disable_ipv6"; } 2>/dev/null || true
    netns_step "bringing the bridge up" ip link set "$NETNS_BR" up
    local i ns addr
    for i in 1 2; do
        ns="$NETNS_TAG-h$i"; addr="$NETNS_NET.$i"
        netns_step "ip netns add" ip netns add "$ns"
        ip netns exec "$ns" sh -c 'for f in /proc/sys/net/ipv6/conf/all/disable_ipv6 /proc/sys/net/ipv6/conf/default/disable_ipv6; do [ -e $f ] && echo 1 > $f; done; true' 2>/dev/null || true
        netns_step "creating veth" ip link add "$NETNS_TAG-v$i" type veth peer name "$NETNS_IF" netns "$ns"
        { echo 1 >"/proc/sys/net/ipv6/conf/$NETNS_TAG-v$i/disable_ipv6"; } 2>/dev/null || true
        netns_step "attaching veth to the bridge" ip link set "$NETNS_TAG-v$i" master "$NETNS_BR" up
        netns_step "addressing $ns" ip -n "$ns" addr add "$addr/24" dev "$NETNS_IF"
        netns_step "bringing $ns up" ip -n "$ns" link set "$NETNS_IF" up
        netns_step "bringing lo up in $ns" ip -n "$ns" link set lo up
    done
    netns_step "unshare --uts in a namespace" ip netns exec "$NETNS_H1" unshare --uts sh -c "hostname $NETNS_H1"
    # rsh agent: Open MPI calls it as `AGENT HOST WORD...` where the words form a
    # shell command line (values quoted for a shell, `;` inside quotes), exactly
    # what ssh would join with spaces and hand to the remote shell: so `sh -c "$*"`.
    # Like ssh it starts from a clean environment: what the remote ranks need must
    # come through mpirun (-x, --mca), not by inheritance.
    cat >"$NETNS_W/agent" <<EOF
#!/bin/sh
# rsh agent for the netns test hosts: \$1 = host address, the rest = command line
case "\$1" in
  $NETNS_ADDR1) ns=$NETNS_H1 ;;
  $NETNS_ADDR2) ns=$NETNS_H2 ;;
  *) echo "netns agent: unknown host '\$1' (only $NETNS_ADDR1 and $NETNS_ADDR2)" >&2; exit 255 ;;
esac
shift
# the host's own environment, as a login would give it (NAME=VALUE words, one per line)
exec ip netns exec "\$ns" unshare --uts env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME="$HOME" LANG=C.UTF-8 \\
    \$(cat "$NETNS_W/\$ns.env") sh -c "hostname \$ns; \$*"
EOF
    chmod 755 "$NETNS_W/agent"
    netns_log "hosts: $NETNS_H1 ($NETNS_ADDR1) and $NETNS_H2 ($NETNS_ADDR2) on bridge $NETNS_BR, interface $NETNS_IF"
}

# netns_mpirun NP SECONDS CMD...: mpirun -np NP CMD from inside host 1, NP/2 ranks
# per host (ranks 0..NP/2-1 on h1), TCP only, over the test interface only.
# Output on stdout/stderr; returns mpirun's status (124/137 = killed by the timeout).
netns_mpirun() {
    local np="$1" secs="$2"; shift 2
    (( np % 2 == 0 )) || { echo "netns_mpirun: NP must be even (NP/2 ranks per host)"; return 2; }
    local per=$((np / 2))
    printf '%s slots=%d\n%s slots=%d\n' "$NETNS_ADDR1" "$per" "$NETNS_ADDR2" "$per" >"$NETNS_W/hosts"
    # host 2's own environment (the agent starts it from a clean one, as ssh would):
    # the OPENBLAS_* settings and DIFFU_PRECISION of this machine, as if both hosts had the
    # same profile (OPENBLAS_CORETYPE changes the BLAS kernels, hence diffu's row panel; the
    # suite pins DIFFU_PRECISION=fp32, tests/common/ctest_env.cmake), plus
    # NETNS_H2_ENV; host 1's ranks inherit mpirun's environment, plus NETNS_H1_ENV
    { env | grep -E '^(OPENBLAS_[A-Z0-9_]*|DIFFU_PRECISION)=[^ ]*$' || true; printf '%s\n' ${NETNS_H2_ENV[@]+"${NETNS_H2_ENV[@]}"}; } >"$NETNS_W/$NETNS_H2.env"
    : >"$NETNS_W/$NETNS_H1.env"
    local pass=() v
    for v in ${DIFFU_NETNS_PASSENV:-}; do pass+=(-x "$v"); done
    local cmd=(mpirun --hostfile "$NETNS_W/hosts" --mca plm_rsh_agent "$NETNS_W/agent" ${pass[@]+"${pass[@]}"}
        --mca pml ob1 --mca btl self,tcp
        --mca btl_tcp_if_include "$NETNS_IF" --mca oob_tcp_if_include "$NETNS_IF"
        --map-by "ppr:$per:node" --bind-to none -np "$np" "$@")
    # mpirun checks for root itself (the remote orted does not); the agent clears
    # the rest of the environment for the remote host
    local q; printf -v q '%q ' "${cmd[@]}"
    # in the background + wait, so that a signal to this script runs its trap (and
    # netns_down) at once instead of after mpirun
    timeout --kill-after=10 "$secs" \
        env OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 ${NETNS_H1_ENV[@]+"${NETNS_H1_ENV[@]}"} \
        ip netns exec "$NETNS_H1" unshare --uts bash -c "hostname $NETNS_H1; exec $q" </dev/null &
    NETNS_RUNPID=$!
    local rc=0
    wait "$NETNS_RUNPID" || rc=$?
    NETNS_RUNPID=""
    return $rc
}
