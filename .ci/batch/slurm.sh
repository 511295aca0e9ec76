#!/usr/bin/env bash
# Single-node Slurm for the Batch backend's tests (Debian 12 packages, run as root, no
# systemd). Idempotent: `start` on a running node only checks that it is ready.
#
#   slurm.sh start              install if missing, configure, start munged/slurmctld/slurmd, wait
#   slurm.sh stop [--purge]     cancel every job, stop the daemons (--purge: job state and logs too)
#   slurm.sh stop-controller    stop slurmctld only (jobs keep running under slurmd)
#   slurm.sh start-controller   start slurmctld again and wait until it answers
#   slurm.sh status             exit 0 when the node is ready, 1 otherwise (prints why)
#
# Knobs (environment): SLURM_CPUS (default 16: oversubscribed, so tiny test jobs do not
# queue behind each other on a 2-core machine), SLURM_MEMORY_MB (default: the machine's
# memory less 512 MB), SLURM_MINJOBAGE (default 30 s: how long an ended job stays in
# squeue), SLURM_READY_TIMEOUT (default 90 s).
# Facts behind the choices: /work/shared/docs/reference/batch-systems.md (no slurmdbd, so
# no sacct; batch_sched_delay=0; linuxproc without cgroups for containers).
set -euo pipefail

NODE=$(hostname -s)
CPUS=${SLURM_CPUS:-16}
# The node's memory as Slurm sees it (MB), so that jobs asking for memory (--mem) fit.
MEMORY=${SLURM_MEMORY_MB:-$(awk '/^MemTotal:/ { m = int($2 / 1024) - 512; print (m > 512 ? m : 512) }' /proc/meminfo)}
MINJOBAGE=${SLURM_MINJOBAGE:-30}
TIMEOUT=${SLURM_READY_TIMEOUT:-90}
CONF=/etc/slurm/slurm.conf
STATE=/var/lib/slurm/slurmctld
SPOOL=/var/lib/slurm/slurmd
LOGS=/var/log/slurm
CTLD_PID=/run/slurmctld.pid
SLURMD_PID=/run/slurmd.pid
MUNGE_PID=/run/munge/munged.pid

say() { printf 'slurm.sh: %s\n' "$*" >&2; }
die() {
    say "$*"
    for f in "$LOGS/slurmctld.log" "$LOGS/slurmd.log" /var/log/munge/munged.log; do
        [ -f "$f" ] && { echo "---- last lines of $f" >&2; tail -n 25 "$f" >&2; }
    done
    exit 1
}
alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
ms_since() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }

# Waits until the pid in file $1 has exited (up to $2 tenths of a second), then KILLs it.
stop_pidfile() {
    local pf=$1 tenths=${2:-100} pid
    alive "$pf" || { rm -f "$pf"; return 0; }
    pid=$(cat "$pf")
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq "$tenths"); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; sleep 0.2; fi
    rm -f "$pf"
}

install_packages() {
    if command -v slurmctld >/dev/null && command -v slurmd >/dev/null \
        && command -v sbatch >/dev/null && command -v munged >/dev/null; then
        return 0
    fi
    say "installing slurmctld slurmd slurm-client munge"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq || die "apt-get update failed"
    apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge >/dev/null \
        || die "apt-get install of Slurm failed"
}

start_munge() {
    install -d -o munge -g munge -m 0700 /etc/munge /var/lib/munge /var/log/munge
    install -d -o munge -g munge -m 0755 /run/munge
    [ -s /etc/munge/munge.key ] || mungekey --create --keyfile=/etc/munge/munge.key
    chown munge:munge /etc/munge/munge.key
    chmod 0400 /etc/munge/munge.key
    alive "$MUNGE_PID" || runuser -u munge -- /usr/sbin/munged || die "munged did not start"
    for _ in $(seq 50); do
        munge -n </dev/null | unmunge >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    die "munge does not work (munge -n | unmunge fails)"
}

# Writes slurm.conf; prints 1 when it changed, 0 otherwise.
write_config() {
    install -d -m 0755 /etc/slurm "$LOGS" "$SPOOL"
    install -d -m 0700 "$STATE"
    cat >"$CONF.new" <<CONF
# Written by ganga-rs .ci/batch/slurm.sh: a single-node test cluster.
ClusterName=gangaci
SlurmctldHost=$NODE
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$STATE
SlurmdSpoolDir=$SPOOL
SlurmctldPidFile=$CTLD_PID
SlurmdPidFile=$SLURMD_PID
SlurmctldLogFile=$LOGS/slurmctld.log
SlurmdLogFile=$LOGS/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# containers (gVisor, no systemd): no cgroup plugins
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
# no slurmdbd (so no sacct); ended jobs are also written to a text file
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$LOGS/jobcomp.log
MinJobAge=$MINJOBAGE
MaxJobCount=100000
MaxArraySize=10001
SchedulerType=sched/backfill
# the default batch_sched_delay=3 starts one wave of jobs every 3 s
SchedulerParameters=batch_sched_delay=0
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
SlurmdParameters=config_overrides
SlurmdTimeout=300
InactiveLimit=0
KillWait=5
NodeName=$NODE CPUs=$CPUS RealMemory=$MEMORY State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
CONF
    if cmp -s "$CONF.new" "$CONF" 2>/dev/null; then
        rm -f "$CONF.new"
        echo 0
    else
        mv "$CONF.new" "$CONF"
        echo 1
    fi
}

start_controller() {
    alive "$CTLD_PID" || slurmctld || die "slurmctld did not start"
}

# Waits until the controller answers and the node takes jobs.
wait_ready() {
    local deadline=$(( $(date +%s) + TIMEOUT )) state=
    while :; do
        state=$(timeout 20 sinfo -h -n "$NODE" -o '%T' 2>/dev/null || true)
        # `+`: in more than one state (allocated+completing); `*` would mean not responding.
        # `planned`: idle, but the backfill scheduler has it in mind for a pending job.
        case "$state" in idle | mixed | allocated | completing | planned | idle+ | mixed+ | allocated+ | completing+ | planned+) return 0 ;; esac
        # A node left drained/down by an earlier run: give it back.
        case "$state" in drain* | down* | *fail*)
            timeout 20 scontrol update NodeName="$NODE" State=RESUME >/dev/null 2>&1 || true ;;
        esac
        [ "$(date +%s)" -ge "$deadline" ] && die "not ready after ${TIMEOUT}s (node state: '${state}')"
        sleep 0.2
    done
}

cmd_start() {
    local t0 changed
    t0=$(date +%s%N)
    [ "$(id -u)" = 0 ] || die "must run as root"
    install_packages
    getent hosts "$NODE" >/dev/null || echo "127.0.0.1 $NODE" >>/etc/hosts
    start_munge
    changed=$(write_config)
    if [ "$changed" = 1 ]; then
        # Node changes need a restart (reconfigure does not apply them); jobs survive in
        # StateSaveLocation.
        stop_pidfile "$SLURMD_PID"
        stop_pidfile "$CTLD_PID"
    fi
    start_controller
    alive "$SLURMD_PID" || slurmd || die "slurmd did not start"
    wait_ready
    say "ready: node $NODE, $CPUS CPUs, MinJobAge ${MINJOBAGE}s, after $(ms_since "$t0") ms"
}

cmd_stop() {
    if alive "$CTLD_PID"; then
        # Job processes outlive a stopped slurmd: cancel them first.
        local ids
        ids=$(timeout 20 squeue -h -o '%A' 2>/dev/null | sort -u | tr '\n' ' ' || true)
        if [ -n "${ids// /}" ]; then
            # shellcheck disable=SC2086
            timeout 20 scancel --full $ids 2>/dev/null || true
            for _ in $(seq 50); do
                [ -z "$(timeout 5 squeue -h -o %A 2>/dev/null)" ] && break
                sleep 0.2
            done
        fi
    fi
    stop_pidfile "$SLURMD_PID"
    stop_pidfile "$CTLD_PID"
    stop_pidfile "$MUNGE_PID"
    if [ "${1:-}" = --purge ]; then
        rm -rf "${STATE:?}"/* "${SPOOL:?}"/* "${LOGS:?}"/* "$CONF"
    fi
    say "stopped"
}

cmd_status() {
    local state
    alive "$CTLD_PID" || { say "slurmctld is not running"; return 1; }
    alive "$SLURMD_PID" || { say "slurmd is not running"; return 1; }
    state=$(timeout 20 sinfo -h -n "$NODE" -o '%T' 2>/dev/null || true)
    case "$state" in
        idle | mixed | allocated | completing | planned | idle+ | mixed+ | allocated+ | completing+ | planned+)
            echo "ready: node $NODE is $state" ;;
        *) say "node $NODE is '${state}'"; return 1 ;;
    esac
}

case "${1:-start}" in
    start) cmd_start ;;
    stop) shift; cmd_stop "$@" ;;
    stop-controller) stop_pidfile "$CTLD_PID"; say "slurmctld stopped" ;;
    start-controller) t0=$(date +%s%N); start_controller; wait_ready; say "slurmctld answers after $(ms_since "$t0") ms" ;;
    status) cmd_status ;;
    *) echo "usage: $0 start | stop [--purge] | stop-controller | start-controller | status" >&2; exit 2 ;;
esac
