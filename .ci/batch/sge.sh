#!/usr/bin/env bash
# Single-node Son of Grid Engine for the Batch backend's tests (Debian 12 gridengine-*
# packages, run as root, no systemd). Idempotent: `start` on a running cell re-applies the
# configuration and checks that the queue is ready.
#
#   sge.sh start            install if missing, configure, start sge_qmaster and sge_execd, wait
#   sge.sh stop [--purge]   delete every job, stop the daemons (--purge: accounting and spool too)
#   sge.sh status           exit 0 when the queue takes jobs, 1 otherwise (prints why)
#
# Knobs (environment): SGE_SLOTS (default 16: oversubscribed, so tiny test jobs do not
# queue behind each other on a 2-core machine), SGE_READY_TIMEOUT (default 90 s).
# Facts behind the choices: /work/shared/docs/reference/batch-systems.md (host_aliases,
# min_uid 0, a 1 s scheduler, accounting flushed at once, shebangs honoured).
set -euo pipefail

HOST=$(hostname)
SLOTS=${SGE_SLOTS:-16}
TIMEOUT=${SGE_READY_TIMEOUT:-90}
export SGE_ROOT=/var/lib/gridengine SGE_CELL=default
COMMON=$SGE_ROOT/$SGE_CELL/common
QMASTER_PID=/var/spool/gridengine/qmaster/qmaster.pid

say() { printf 'sge.sh: %s\n' "$*" >&2; }
die() {
    say "$*"
    for f in /var/spool/gridengine/qmaster/messages /var/spool/gridengine/execd/*/messages; do
        [ -f "$f" ] && { echo "---- last lines of $f" >&2; tail -n 25 "$f" >&2; }
    done
    exit 1
}
alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
execd_alive() {
    local f
    for f in /var/spool/gridengine/execd/*/execd.pid; do alive "$f" && return 0; done
    return 1
}
ms_since() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }

install_packages() {
    if command -v sge_qmaster >/dev/null && command -v sge_execd >/dev/null \
        && command -v qsub >/dev/null && [ -d "$COMMON" ]; then
        return 0
    fi
    say "installing gridengine-master gridengine-exec gridengine-client"
    # The answers make the postinst initialise cell `default` with this host as master.
    debconf-set-selections <<SEL
gridengine-common shared/gridengineconfig boolean true
gridengine-common shared/gridenginecell string default
gridengine-common shared/gridenginemaster string $HOST
gridengine-master shared/gridenginemaster string $HOST
gridengine-client shared/gridenginemaster string $HOST
gridengine-exec shared/gridenginemaster string $HOST
SEL
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq || die "apt-get update failed"
    apt-get install -y -qq --no-install-recommends gridengine-master gridengine-exec gridengine-client \
        >/dev/null || die "apt-get install of Grid Engine failed"
    [ -d "$COMMON" ] || die "the packages did not initialise the cell in $COMMON"
}

# Every name of this host's address must count as the host, or clients are refused
# ("access denied (client IP resolved to host name "localhost" ...)").
write_host_aliases() {
    local ip aliases
    getent hosts "$HOST" >/dev/null || echo "127.0.0.1 $HOST" >>/etc/hosts
    ip=$(getent hosts "$HOST" | awk '{print $1; exit}')
    aliases=$({
        echo localhost
        awk -v ip="$ip" '$1 == ip { for (i = 2; i <= NF; i++) print $i }' /etc/hosts
        getent hosts "$ip" | awk '{ for (i = 2; i <= NF; i++) print $i }'
    } | grep -vx "$HOST" | sort -u | tr '\n' ' ')
    echo "$HOST $aliases" >"$COMMON/host_aliases"
    echo "$HOST" >"$COMMON/act_qmaster"
}

wait_for() { # $1: what, then a command that succeeds when ready
    local what=$1 deadline=$(( $(date +%s) + TIMEOUT ))
    shift
    until "$@" >/dev/null 2>&1; do
        [ "$(date +%s)" -ge "$deadline" ] && die "$what not ready after ${TIMEOUT}s"
        sleep 0.2
    done
}

configure() {
    local tmp
    tmp=$(mktemp -d)
    # shellcheck disable=SC2064
    trap "rm -rf '$tmp'" RETURN
    # global: root may run jobs (min_uid/min_gid 1000 by default), quick load reports,
    # accounting written at once
    qconf -sconf global | sed -e '/^#/d' \
        -e 's/^min_uid .*/min_uid 0/' -e 's/^min_gid .*/min_gid 0/' \
        -e 's/^load_report_time .*/load_report_time 00:00:05/' \
        -e 's/flush_time=00:00:15/flush_time=00:00:01 accounting_flush_time=00:00:00/' \
        -e 's/^finished_jobs .*/finished_jobs 1000/' >"$tmp/global"
    qconf -Mconf "$tmp/global" >/dev/null 2>&1 || die "qconf -Mconf failed"
    # scheduler: every second and right after a submit or an end (default: every 15 s)
    qconf -ssconf | sed \
        -e 's/^schedule_interval .*/schedule_interval 0:0:1/' \
        -e 's/^flush_submit_sec .*/flush_submit_sec 1/' \
        -e 's/^flush_finish_sec .*/flush_finish_sec 1/' \
        -e 's/^job_load_adjustments .*/job_load_adjustments NONE/' \
        -e 's/^load_adjustment_decay_time .*/load_adjustment_decay_time 0:0:0/' \
        -e 's/^schedd_job_info .*/schedd_job_info false/' >"$tmp/sched"
    qconf -Msconf "$tmp/sched" >/dev/null 2>&1 || die "qconf -Msconf failed"
    qconf -sh 2>/dev/null | grep -qx "$HOST" || qconf -ah "$HOST" >/dev/null 2>&1
    qconf -ss 2>/dev/null | grep -qx "$HOST" || qconf -as "$HOST" >/dev/null 2>&1
    if ! qconf -se "$HOST" >/dev/null 2>&1; then
        printf '%s\n' "hostname $HOST" "load_scaling NONE" "complex_values NONE" \
            "user_lists NONE" "xuser_lists NONE" "projects NONE" "xprojects NONE" \
            "usage_scaling NONE" "report_variables NONE" >"$tmp/exec"
        qconf -Ae "$tmp/exec" >/dev/null 2>&1 || die "qconf -Ae failed"
    fi
    if ! qconf -shgrp @allhosts >/dev/null 2>&1; then
        printf 'group_name @allhosts\nhostlist %s\n' "$HOST" >"$tmp/hgrp"
        qconf -Ahgrp "$tmp/hgrp" >/dev/null 2>&1 || die "qconf -Ahgrp failed"
    fi
    # all.q: many slots, no load thresholds, and shebangs honoured (unix_behavior) as in Slurm
    {
        printf '%s\n' "qname all.q" "hostlist @allhosts" "seq_no 0" "load_thresholds NONE" \
            "suspend_thresholds NONE" "nsuspend 1" "suspend_interval 00:05:00" "priority 0" \
            "min_cpu_interval 00:05:00" "processors UNDEFINED" "qtype BATCH INTERACTIVE" \
            "ckpt_list NONE" "pe_list NONE" "rerun FALSE" "slots $SLOTS" "tmpdir /tmp" \
            "shell /bin/sh" "prolog NONE" "epilog NONE" "shell_start_mode unix_behavior" \
            "starter_method NONE" "suspend_method NONE" "resume_method NONE" \
            "terminate_method NONE" "notify 00:00:60" "owner_list NONE" "user_lists NONE" \
            "xuser_lists NONE" "subordinate_list NONE" "complex_values NONE" "projects NONE" \
            "xprojects NONE" "calendar NONE" "initial_state default"
        for l in s_rt h_rt s_cpu h_cpu s_fsize h_fsize s_data h_data s_stack h_stack s_core \
            h_core s_rss h_rss s_vmem h_vmem; do
            echo "$l INFINITY"
        done
    } >"$tmp/all.q"
    if qconf -sq all.q >/dev/null 2>&1; then
        qconf -Mq "$tmp/all.q" >/dev/null 2>&1 || die "qconf -Mq all.q failed"
    else
        qconf -Aq "$tmp/all.q" >/dev/null 2>&1 || die "qconf -Aq all.q failed"
    fi
}

# The queue instance takes jobs: listed, with no state flags (unknown, alarm, error, disabled).
queue_ready() {
    [ "$(qstat -f -q "all.q@$HOST" 2>/dev/null \
        | awk -v q="all.q@$HOST" '$1 == q { print ($6 == "" ? "ok" : $6) }')" = ok ]
}

cmd_start() {
    local t0
    t0=$(date +%s%N)
    [ "$(id -u)" = 0 ] || die "must run as root"
    install_packages
    write_host_aliases
    install -d -o sgeadmin -g sgeadmin /var/spool/gridengine/execd /var/run/gridengine
    alive "$QMASTER_PID" || /usr/sbin/sge_qmaster || die "sge_qmaster did not start"
    wait_for "sge_qmaster" timeout 10 qstat
    configure
    execd_alive || /usr/sbin/sge_execd || die "sge_execd did not start"
    wait_for "queue all.q@$HOST" queue_ready
    say "ready: all.q@$HOST with $SLOTS slots after $(ms_since "$t0") ms"
}

cmd_stop() {
    local pids=() f pid
    for f in /var/spool/gridengine/execd/*/execd.pid "$QMASTER_PID"; do
        alive "$f" && pids+=("$(cat "$f")")
    done
    if alive "$QMASTER_PID"; then
        timeout 10 qdel -f -u '*' >/dev/null 2>&1 || true          # rc 1 when there are no jobs
        timeout 10 qconf -kej "$HOST" >/dev/null 2>&1 || true     # execd and its jobs
        timeout 10 qconf -km >/dev/null 2>&1 || true              # qmaster
    fi
    # qmaster takes ~9 s to exit; killing it early risks its BerkeleyDB spool
    for pid in "${pids[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
    done
    if [ "${1:-}" = --purge ]; then
        rm -rf /var/spool/gridengine/execd/* "$COMMON/accounting"
    fi
    say "stopped"
}

cmd_status() {
    alive "$QMASTER_PID" || { say "sge_qmaster is not running"; return 1; }
    execd_alive || { say "sge_execd is not running"; return 1; }
    queue_ready || { say "queue all.q@$HOST does not take jobs"; return 1; }
    echo "ready: all.q@$HOST"
}

case "${1:-start}" in
    start) cmd_start ;;
    stop) shift; cmd_stop "$@" ;;
    status) cmd_status ;;
    *) echo "usage: $0 start | stop [--purge] | status" >&2; exit 2 ;;
esac
