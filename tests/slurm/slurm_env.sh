#!/usr/bin/env bash
# tests/slurm/slurm_env.sh — a real, private Slurm for tests (one node, or two on
# network namespaces): Debian's slurmctld + slurmd + munged, started directly (no
# systemd), every file in one temporary directory, on private addresses and unusual ports.
#
# Source it, then:
#   slurm_env_require        skip (exit 77, with the reason) unless root and the
#                            packages are there or can be installed
#   slurm_env_start [2]      write munge key + slurm.conf + cgroup.conf, start
#                            munged, slurmctld, slurmd; wait (bounded) until the
#                            node is idle; export SLURM_CONF; trap EXIT -> stop.
#                            With 2: two nodes on network namespaces (below)
#   slurm_env_stop           cancel our jobs, stop exactly the daemons started
#                            here (by pid) and the job processes of this
#                            cluster (by their SLURM_CONF), remove the directory
#   slurm_wait_job ID SECS   wait until job ID (every task of an array) has ended;
#                            prints "ID STATE Restarts=N" per job; 0 when all COMPLETED
#   slurm_job_field ID FIELD a field of `scontrol show job` (e.g. Restarts, JobState)
#
# The cluster: one node named after this host (`hostname -s`) on loopback, or
# two nodes diffu-n1, diffu-n2 (slurm_env_netns_up); each CPUs=2,
# RealMemory from /proc/meminfo, partition "debug" (default, no time limit);
# proctrack/linuxproc, task/none, no cgroups, no accounting; select/cons_tres
# with CR_CPU (so two 1-CPU jobs share the node). For the requeue tests:
# JobRequeue=1, OverTimeLimit=0, KillWait=5, and cred_expire=10 s (a requeued
# job may start again cred_expire seconds after the requeue; the default 120 s
# would make the tests slow). The scheduler runs every 2 s.
#
# Measured here (Slurm 22.05.8, Debian 12, in a container): start to idle node
# ~3 s; `--time=1 --signal=B:USR1@50` delivers USR1 10-40 s after the start
# (slurmctld checks time limits every 30 s); a job that requeues itself starts
# again ~20-30 s later.
#
# Run directly for the smoke test: bash tests/slurm/slurm_env.sh smoke
# (see check_smoke.sh). Environment: DIFFU_SLURM_ENV_KEEP=1 keeps the directory
# (logs) after stop; DIFFU_SLURM_ENV_VERBOSE=1 prints the daemons' logs on failure.

SLURM_ENV_SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export PATH="/usr/sbin:/usr/bin:/sbin:/bin:$PATH"

slurm_env_log() { echo "[slurm-env] $*" >&2; }

slurm_env_skip() {
    echo "SKIP: $*" >&2
    exit 77
}

slurm_env_have_all() {
    local b
    for b in slurmctld slurmd slurmstepd sbatch scontrol squeue sinfo munged munge; do
        command -v "$b" >/dev/null 2>&1 || return 1
    done
}

# Install slurmctld, slurmd, slurm-client and munge when missing (root only).
# The packages' maintainer scripts would start the system's daemons; a
# temporary policy-rc.d stops them from doing so (removed afterwards).
slurm_env_require() {
    [[ "$(id -u)" == 0 ]] || slurm_env_skip "the Slurm tests start slurmctld, slurmd and munged and need root (run them as root, e.g. in a container)"
    slurm_env_have_all && return 0
    command -v apt-get >/dev/null 2>&1 || slurm_env_skip "slurmctld/slurmd/munge are missing and there is no apt-get to install them"
    slurm_env_log "installing slurmctld slurmd slurm-client munge (Debian packages)"
    local prc=/usr/sbin/policy-rc.d made=0
    if [[ ! -e $prc ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$prc" && chmod 755 "$prc" && made=1
    fi
    local pk="slurmctld slurmd slurm-client munge" ok=0
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $pk >/tmp/slurm-env-apt.$$.log 2>&1 && ok=1
    if [[ $ok == 0 ]]; then
        apt-get update >>/tmp/slurm-env-apt.$$.log 2>&1 &&
            DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $pk >>/tmp/slurm-env-apt.$$.log 2>&1 && ok=1
    fi
    [[ $made == 1 ]] && rm -f "$prc"
    if [[ $ok == 0 ]] || ! slurm_env_have_all; then
        tail -n 5 /tmp/slurm-env-apt.$$.log >&2
        rm -f /tmp/slurm-env-apt.$$.log
        slurm_env_skip "could not install $pk (apt-get failed; see above)"
    fi
    rm -f /tmp/slurm-env-apt.$$.log
}

# 0 if TCP port $1 has no listener (IPv4 or IPv6), from /proc/net/tcp*.
slurm_env_port_free() {
    local hex
    hex=$(printf '%04X' "$1")
    ! awk -v p=":$hex" '$4 == "0A" && substr($2, length($2) - 4) == p { found = 1 } END { exit !found }' \
        /proc/net/tcp /proc/net/tcp6 2>/dev/null
}

slurm_env_pick_ports() {
    local base=$((20000 + ($$ * 7) % 30000)) i p
    for ((i = 0; i < 200; i += 2)); do
        p=$((base + i))
        if slurm_env_port_free "$p" && slurm_env_port_free $((p + 1)); then
            SLURM_ENV_CTLD_PORT=$p
            SLURM_ENV_SLURMD_PORT=$((p + 1))
            return 0
        fi
    done
    return 1
}

slurm_env_dump_logs() {
    local f
    for f in "$SLURM_ENV_DIR"/log/*; do
        [[ -f $f ]] || continue
        echo "---- $f (last 30 lines)" >&2
        tail -n 30 "$f" >&2
    done
}

slurm_env_fail() {
    slurm_env_log "error: $*"
    slurm_env_dump_logs
    exit 1
}

# Two "nodes" on this machine (slurm_env_start 2): network namespaces
# dsl-PID-n1/-n2 on a private bridge (10.214.77.0/24 by default,
# DIFFU_SLURM_NET=a.b.c to change it), each with its own slurmd in its own UTS
# namespace (hostname diffu-n1 / diffu-n2), slurmctld in n1's; munged stays in
# this namespace (a path socket, shared through the filesystem). The client
# commands (sbatch, squeue, ...) are wrappers in $SLURM_ENV_DIR/bin (first on
# PATH) that enter n1's namespace from this one. Needs CAP_SYS_ADMIN and
# CAP_NET_ADMIN; skips (77) otherwise.
slurm_env_netns_up() {
    local D=$1 n=$2 i ns
    command -v ip >/dev/null && command -v unshare >/dev/null && command -v nsenter >/dev/null ||
        slurm_env_skip "two-node mode needs ip, unshare and nsenter"
    SLURM_ENV_NET=${DIFFU_SLURM_NET:-10.214.77}
    if ip -o -4 addr show 2>/dev/null | grep -q " $SLURM_ENV_NET\."; then
        slurm_env_skip "subnet $SLURM_ENV_NET.0/24 is in use here (set DIFFU_SLURM_NET)"
    fi
    SLURM_ENV_TAG="dsl-$$"
    echo "$SLURM_ENV_TAG" >"$D/run/netns.tag"
    ip link add "$SLURM_ENV_TAG-br" type bridge 2>"$D/log/netns.err" ||
        slurm_env_skip "cannot create a bridge: $(cat "$D/log/netns.err") (needs CAP_NET_ADMIN)"
    { echo 1 >"/proc/sys/net/ipv6/conf/$SLURM_ENV_TAG-br/disable_ipv6"; } 2>/dev/null
    ip link set "$SLURM_ENV_TAG-br" up
    for ((i = 1; i <= n; i++)); do
        ns="$SLURM_ENV_TAG-n$i"
        ip netns add "$ns" 2>"$D/log/netns.err" || slurm_env_skip "ip netns add: $(cat "$D/log/netns.err") (needs CAP_SYS_ADMIN)"
        ip netns exec "$ns" sh -c 'echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6; echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6' 2>/dev/null
        ip link add "$SLURM_ENV_TAG-v$i" type veth peer name dsl0 netns "$ns" || slurm_env_fail "veth"
        ip link set "$SLURM_ENV_TAG-v$i" master "$SLURM_ENV_TAG-br" up
        ip -n "$ns" addr add "$SLURM_ENV_NET.$i/24" dev dsl0
        ip -n "$ns" link set dsl0 up
        ip -n "$ns" link set lo up
    done
    ip netns exec "$SLURM_ENV_TAG-n1" unshare --uts true 2>/dev/null || slurm_env_skip "unshare --uts refused"
    # client wrappers: from this namespace enter n1's; inside a node already, run directly
    mkdir -p "$D/bin"
    local root_ino c
    root_ino=$(stat -L -c %i /proc/self/ns/net)
    for c in sbatch squeue scontrol sinfo scancel srun salloc sacct sattach; do
        cat >"$D/bin/$c" <<EOF
#!/bin/sh
if [ "\$(stat -L -c %i /proc/self/ns/net)" = "$root_ino" ]; then
    exec nsenter --net=/run/netns/$SLURM_ENV_TAG-n1 /usr/bin/$c "\$@"
fi
exec /usr/bin/$c "\$@"
EOF
        chmod 755 "$D/bin/$c"
    done
    export PATH="$D/bin:$PATH"
}

# Run "$@" as node i: in its network and UTS namespaces with its hostname
# (two-node mode), exec'ing all the way so that the caller's $! is the daemon.
slurm_env_on_node() {
    local i=$1
    shift
    if [[ $SLURM_ENV_N == 1 ]]; then
        exec "$@"
    fi
    # nsenter, not `ip netns exec`: that remounts /sys, without /sys/fs/cgroup, and slurmd 22.05 needs it
    exec nsenter --net="/run/netns/$SLURM_ENV_TAG-n$i" unshare --uts sh -c 'hostname "$0"; exec "$@"' "diffu-n$i" "$@"
}

slurm_env_netns_down() {
    local D=$1 tag ns p i
    [[ -f $D/run/netns.tag ]] || return 0
    tag=$(<"$D/run/netns.tag")
    for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^$tag-n[0-9]+$"); do
        for i in 1 2 3; do
            p=$(ip netns pids "$ns" 2>/dev/null)
            [[ -z $p ]] && break
            kill -KILL $p 2>/dev/null
            sleep 0.2
        done
        ip netns del "$ns" 2>/dev/null
    done
    for i in $(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | sed 's/@.*//' | grep -E "^$tag-(br|v[0-9]+)$"); do
        ip link del "$i" 2>/dev/null
    done
    rm -f "$D/run/netns.tag"
}

slurm_env_start() {
    SLURM_ENV_N=${1:-1}
    [[ $SLURM_ENV_N == 1 || $SLURM_ENV_N == 2 ]] || { echo "slurm_env_start: 1 or 2 nodes" >&2; exit 2; }
    slurm_env_require
    # this cluster only: no job or client settings inherited from an outer Slurm
    local v
    for v in $(compgen -e | grep "^SLURM_"); do unset "$v"; done
    unset SBATCH_PARTITION SBATCH_ACCOUNT SBATCH_QOS SBATCH_TIMELIMIT SQUEUE_FORMAT

    SLURM_ENV_DIR=$(mktemp -d /tmp/diffu-slurm.XXXXXX) || slurm_env_fail "mktemp"
    chmod 755 "$SLURM_ENV_DIR"
    local D=$SLURM_ENV_DIR
    mkdir -p "$D/munge" "$D/state" "$D/spool" "$D/log" "$D/run"
    chmod 700 "$D/state"
    chmod 755 "$D/munge" # munged wants the socket's directory searchable by all
    trap slurm_env_stop EXIT
    trap 'exit 143' TERM
    trap 'exit 130' INT

    slurm_env_pick_ports || slurm_env_fail "no two free TCP ports found"
    local mem i n nodes_line ctld_host
    mem=$(awk -v n="$SLURM_ENV_N" '/^MemTotal:/ { printf "%d", $2 / 1024 * 0.9 / n }' /proc/meminfo)
    if [[ $SLURM_ENV_N == 1 ]]; then
        SLURM_ENV_NODE=$(hostname -s)
        SLURM_ENV_NODES=$SLURM_ENV_NODE
        ctld_host="$SLURM_ENV_NODE(127.0.0.1)"
        nodes_line="NodeName=$SLURM_ENV_NODE NodeAddr=127.0.0.1 CPUs=2 RealMemory=$mem State=UNKNOWN"
    else
        slurm_env_netns_up "$D" "$SLURM_ENV_N"
        SLURM_ENV_NODE=diffu-n1
        SLURM_ENV_NODES="diffu-n[1-$SLURM_ENV_N]"
        ctld_host="diffu-n1($SLURM_ENV_NET.1)"
        nodes_line=""
        for ((i = 1; i <= SLURM_ENV_N; i++)); do
            nodes_line+="NodeName=diffu-n$i NodeAddr=$SLURM_ENV_NET.$i CPUs=2 RealMemory=$mem State=UNKNOWN"$'\n'
        done
    fi

    # munge: a fresh key and a private socket
    dd if=/dev/urandom of="$D/munge/munge.key" bs=1024 count=1 status=none
    chmod 600 "$D/munge/munge.key"
    SLURM_ENV_MUNGE_SOCKET="$D/munge/munge.socket"
    munged -F --force --key-file="$D/munge/munge.key" --socket="$SLURM_ENV_MUNGE_SOCKET" \
        --pid-file="$D/run/munged.pid" --log-file="$D/log/munged.log" --seed-file="$D/munge/munged.seed" \
        >"$D/log/munged.out" 2>&1 &
    SLURM_ENV_MUNGED_PID=$!
    echo "$SLURM_ENV_MUNGED_PID" >"$D/run/munged.ownpid"
    for ((i = 0; i < 100; i++)); do
        [[ -S $SLURM_ENV_MUNGE_SOCKET ]] && break
        kill -0 "$SLURM_ENV_MUNGED_PID" 2>/dev/null || slurm_env_fail "munged exited"
        sleep 0.1
    done
    munge -n -S "$SLURM_ENV_MUNGE_SOCKET" | unmunge -S "$SLURM_ENV_MUNGE_SOCKET" >/dev/null 2>&1 ||
        slurm_env_fail "munge credential round trip failed"

    export SLURM_CONF="$D/slurm.conf"
    cat >"$SLURM_CONF" <<EOF
# generated by tests/slurm/slurm_env.sh: a private test cluster of $SLURM_ENV_N node(s)
ClusterName=diffutest
SlurmctldHost=$ctld_host
SlurmctldPort=$SLURM_ENV_CTLD_PORT
SlurmdPort=$SLURM_ENV_SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$SLURM_ENV_MUNGE_SOCKET,cred_expire=10
StateSaveLocation=$D/state
SlurmdSpoolDir=$D/spool/%n
SlurmctldPidFile=$D/run/slurmctld.pid
SlurmdPidFile=$D/run/slurmd-%n.pid
SlurmctldLogFile=$D/log/slurmctld.log
SlurmdLogFile=$D/log/slurmd-%n.log
SlurmctldDebug=info
SlurmdDebug=info
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2,bf_interval=2
MpiDefault=none
SlurmdParameters=config_overrides
ReturnToService=2
JobRequeue=1
MinJobAge=600
KillWait=5
OverTimeLimit=0
InactiveLimit=0
MessageTimeout=10
SlurmctldTimeout=30
SlurmdTimeout=60
$nodes_line
PartitionName=debug Nodes=$SLURM_ENV_NODES Default=YES MaxTime=INFINITE State=UP
EOF
    # not read with task/none and proctrack/linuxproc; present so nothing looks for /etc/slurm/cgroup.conf
    printf 'CgroupPlugin=autodetect\nConstrainCores=no\nConstrainRAMSpace=no\n' >"$D/cgroup.conf"

    (slurm_env_on_node 1 slurmctld -D -c -f "$SLURM_CONF") >"$D/log/slurmctld.out" 2>&1 &
    SLURM_ENV_CTLD_PID=$!
    echo "$SLURM_ENV_CTLD_PID" >"$D/run/slurmctld.ownpid"
    for ((i = 0; i < 150; i++)); do
        scontrol ping 2>/dev/null | grep -q 'is UP' && break
        kill -0 "$SLURM_ENV_CTLD_PID" 2>/dev/null || slurm_env_fail "slurmctld exited"
        sleep 0.2
    done
    scontrol ping 2>/dev/null | grep -q 'is UP' || slurm_env_fail "slurmctld did not answer within 30 s"

    local pids="" name
    for ((n = 1; n <= SLURM_ENV_N; n++)); do
        name=$SLURM_ENV_NODE
        ((SLURM_ENV_N > 1)) && name=diffu-n$n
        mkdir -p "$D/spool/$name"
        (slurm_env_on_node "$n" slurmd -D -f "$SLURM_CONF" -N "$name") >"$D/log/slurmd-$name.out" 2>&1 &
        pids+=" $!"
        echo "$!" >"$D/run/slurmd$n.ownpid"
    done
    SLURM_ENV_SLURMD_PID=${pids# }
    local st="" want p
    want=$(for ((n = 0; n < SLURM_ENV_N; n++)); do echo idle; done)
    for ((i = 0; i < 300; i++)); do
        st=$(sinfo -h -N -o %t 2>/dev/null)
        [[ $st == "$want" ]] && break
        for p in $SLURM_ENV_SLURMD_PID; do kill -0 "$p" 2>/dev/null || slurm_env_fail "slurmd exited"; done
        if [[ $st == *drain* || $st == *down* ]] && ((i > 25)); then
            scontrol update nodename="$SLURM_ENV_NODES" state=resume >/dev/null 2>&1
        fi
        sleep 0.2
    done
    [[ $st == "$want" ]] || slurm_env_fail "node(s) $SLURM_ENV_NODES not idle within 60 s (state '$(echo $st)')"

    slurm_env_start_watchdog
    slurm_env_log "up: $SLURM_ENV_DIR, node(s) $SLURM_ENV_NODES (2 CPUs, ${mem} MB each), ports $SLURM_ENV_CTLD_PORT/$SLURM_ENV_SLURMD_PORT," \
        "pids munged $SLURM_ENV_MUNGED_PID slurmctld $SLURM_ENV_CTLD_PID slurmd $SLURM_ENV_SLURMD_PID"
}

# Processes of this cluster's jobs: whatever carries our SLURM_CONF in its
# environment (the batch scripts and everything they start, and slurmstepd)
# apart from this shell and the daemons.
slurm_env_job_pids() {
    local conf=$1 p
    for p in /proc/[0-9]*; do
        p=${p#/proc/}
        [[ $p == "$$" || $p == "$BASHPID" || $p == "${SLURM_ENV_WATCHDOG_PID:-}" ]] && continue
        tr '\0' '\n' 2>/dev/null <"/proc/$p/environ" | grep -qxF "SLURM_CONF=$conf" && echo "$p"
    done
}

# Kill the daemons started here (pids from our pid files), wait, then KILL.
slurm_env_kill_daemons() {
    local D=$1 f pid pids="" i
    for f in slurmd slurmd1 slurmd2 slurmctld munged; do
        [[ -f $D/run/$f.ownpid ]] || continue
        pid=$(<"$D/run/$f.ownpid")
        kill -0 "$pid" 2>/dev/null && kill -TERM "$pid" 2>/dev/null && pids+=" $pid"
    done
    for ((i = 0; i < 50; i++)); do
        local alive=""
        for pid in $pids; do kill -0 "$pid" 2>/dev/null && alive+=" $pid"; done
        [[ -z $alive ]] && break
        sleep 0.2
    done
    for pid in $pids; do kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null; done
    for pid in $pids; do wait "$pid" 2>/dev/null; done
    return 0
}

# If this test's shell dies without running its EXIT trap (SIGKILL from a
# timeout), a watchdog stops the daemons and removes the directory.
slurm_env_start_watchdog() {
    local parent=$$ D=$SLURM_ENV_DIR conf=$SLURM_CONF
    (
        trap '' HUP INT TERM
        exec </dev/null >/dev/null 2>&1
        unset SLURM_CONF # so its own children (sleep) are not taken for job processes
        while kill -0 "$parent" 2>/dev/null && [[ ! -e $D/run/stopping ]]; do sleep 2; done
        [[ -e $D/run/stopping ]] && exit 0
        slurm_env_kill_daemons "$D"
        for p in $(slurm_env_job_pids "$conf"); do kill -KILL "$p" 2>/dev/null; done
        slurm_env_netns_down "$D"
        rm -rf "$D"
    ) &
    SLURM_ENV_WATCHDOG_PID=$!
    disown "$SLURM_ENV_WATCHDOG_PID" 2>/dev/null
}

slurm_env_stop() {
    local rc=$?
    [[ -n ${SLURM_ENV_DIR:-} && -d $SLURM_ENV_DIR ]] || return $rc
    local D=$SLURM_ENV_DIR i
    trap - EXIT
    : >"$D/run/stopping"
    [[ -n ${SLURM_ENV_WATCHDOG_PID:-} ]] && kill "$SLURM_ENV_WATCHDOG_PID" 2>/dev/null
    if [[ $rc != 0 && $rc != 77 && ${DIFFU_SLURM_ENV_VERBOSE:-0} == 1 ]]; then slurm_env_dump_logs; fi
    # our jobs first, so no step outlives slurmd
    if scontrol ping 2>/dev/null | grep -q 'is UP'; then
        scancel --quiet $(squeue -h -o %A 2>/dev/null) 2>/dev/null
        for ((i = 0; i < 50; i++)); do
            [[ -z $(squeue -h -o %A 2>/dev/null) ]] && break
            sleep 0.2
        done
    fi
    slurm_env_kill_daemons "$D"
    local p left
    left=$(slurm_env_job_pids "$SLURM_CONF")
    for p in $left; do kill -KILL "$p" 2>/dev/null; done
    [[ -n $left ]] && slurm_env_log "killed leftover job processes:$(for p in $left; do printf ' %s' "$p"; done)"
    slurm_env_netns_down "$D"
    if [[ ${DIFFU_SLURM_ENV_KEEP:-0} == 1 ]]; then
        slurm_env_log "stopped; kept $D (DIFFU_SLURM_ENV_KEEP=1)"
    else
        rm -rf "$D"
        slurm_env_log "stopped; removed $D"
    fi
    SLURM_ENV_DIR=""
    return $rc
}

slurm_job_field() {
    scontrol show job -o "$1" 2>/dev/null | head -n 1 | tr ' ' '\n' | sed -n "s/^$2=//p"
}

# Wait until job $1 (all of its array tasks) has ended, at most $2 seconds.
slurm_wait_job() {
    local id=$1 limit=$2 t0=$SECONDS lines states
    while :; do
        lines=$(scontrol show job -o "$id" 2>/dev/null)
        states=$(sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p' <<<"$lines")
        if [[ -n $states ]] && ! grep -qE '^(PENDING|RUNNING|REQUEUED|REQUEUE_FED|REQUEUE_HOLD|COMPLETING|CONFIGURING|SUSPENDED|RESIZING|SIGNALING|STAGE_OUT|RESV_DEL_HOLD|SPECIAL_EXIT|STOPPED)$' <<<"$states"; then
            break
        fi
        if ((SECONDS - t0 > limit)); then
            slurm_env_log "job $id still not finished after ${limit} s: $(tr '\n' ' ' <<<"$states")"
            sed -n 's/^JobId=\([0-9]*\) .*JobState=\([A-Z_]*\).* Restarts=\([0-9]*\).*/\1 \2 Restarts=\3/p' <<<"$lines"
            return 2
        fi
        sleep 1
    done
    sed -n 's/^JobId=\([0-9]*\) .*JobState=\([A-Z_]*\).* Restarts=\([0-9]*\).*/\1 \2 Restarts=\3/p' <<<"$lines"
    ! grep -qv '^COMPLETED$' <<<"$states"
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    case "${1:-}" in
    smoke) exec bash "$SLURM_ENV_SRC/check_smoke.sh" ;;
    *) echo "usage: bash $0 smoke   (or source it: slurm_env_start / slurm_env_stop)" >&2; exit 2 ;;
    esac
fi
