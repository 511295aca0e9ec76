#!/usr/bin/env bash
# PBS/Torque-style commands for the Batch backend's PBS flavour tests: Debian's
# `slurm-wlm-torque` (qsub/qstat/qdel as Perl wrappers around Slurm), on top of the
# single-node Slurm of slurm.sh.
#
# The package Conflicts with gridengine-client (both own /usr/bin/qsub ...), so it is not
# installed: its .deb is extracted into a private prefix (PBS_PREFIX, default
# /opt/ganga-ci/torque) and only its Perl dependencies are installed. The wrappers call
# sbatch/scancel "from their own directory", so links to the real Slurm commands are put
# beside them. Point the PBS flavour there: [plugin.batch.commands] qsub = "$PBS_PREFIX/bin/qsub" ...
#
#   pbs.sh start    start Slurm (slurm.sh start), install the wrappers, check that qstat answers
#   pbs.sh stop     stop Slurm (slurm.sh stop); the wrappers stay
#   pbs.sh status   exit 0 when Slurm is ready and the wrappers answer
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
PREFIX=${PBS_PREFIX:-/opt/ganga-ci/torque}

say() { printf 'pbs.sh: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

install_wrappers() {
    if [ -x "$PREFIX/bin/qsub" ] && [ -x "$PREFIX/bin/qstat" ] && [ -x "$PREFIX/bin/qdel" ] \
        && perl -MSlurm -MSlurmdb -MSwitch -e 1 2>/dev/null; then
        return 0
    fi
    export DEBIAN_FRONTEND=noninteractive
    if ! perl -MSlurm -MSlurmdb -MSwitch -e 1 2>/dev/null; then
        say "installing the wrappers' Perl dependencies"
        apt-get install -y -qq --no-install-recommends libslurm-perl libslurmdb-perl libswitch-perl \
            >/dev/null 2>&1 \
            || { apt-get update -qq && apt-get install -y -qq --no-install-recommends \
                libslurm-perl libslurmdb-perl libswitch-perl >/dev/null; } \
            || die "apt-get install of libslurm-perl libslurmdb-perl libswitch-perl failed"
    fi
    local tmp
    tmp=$(mktemp -d)
    # shellcheck disable=SC2064
    trap "rm -rf '$tmp'" RETURN
    say "extracting slurm-wlm-torque into $PREFIX"
    (cd "$tmp" && apt-get download slurm-wlm-torque >/dev/null 2>&1) \
        || { apt-get update -qq && (cd "$tmp" && apt-get download slurm-wlm-torque >/dev/null); } \
        || die "apt-get download slurm-wlm-torque failed"
    dpkg-deb -x "$tmp"/slurm-wlm-torque_*.deb "$tmp/x" || die "dpkg-deb -x failed"
    install -d "$PREFIX/bin"
    local c
    for c in qsub qstat qdel qhold qrls qalter; do
        install -m 0755 "$tmp/x/usr/bin/$c" "$PREFIX/bin/$c"
    done
    # The wrappers run "${FindBin::Bin}/sbatch" and friends.
    for c in sbatch salloc srun scancel squeue scontrol; do
        ln -sf "$(command -v "$c")" "$PREFIX/bin/$c"
    done
}

cmd_status() {
    "$HERE/slurm.sh" status >/dev/null || return 1
    [ -x "$PREFIX/bin/qstat" ] || { say "no wrappers in $PREFIX/bin"; return 1; }
    local rc=0
    timeout 30 "$PREFIX/bin/qstat" >/dev/null 2>&1 || rc=$?
    case $rc in 0 | 153) ;; *) say "$PREFIX/bin/qstat fails (exit code $rc)"; return 1 ;; esac
    echo "ready: PBS wrappers in $PREFIX/bin"
}

case "${1:-start}" in
    start)
        "$HERE/slurm.sh" start
        install_wrappers
        # qstat exits 153 when it found no job to show, 0 otherwise.
        rc=0
        timeout 30 "$PREFIX/bin/qstat" >/dev/null 2>&1 || rc=$?
        case $rc in 0 | 153) ;; *) die "$PREFIX/bin/qstat fails (exit code $rc)" ;; esac
        say "ready: qsub, qstat, qdel in $PREFIX/bin"
        ;;
    stop) "$HERE/slurm.sh" stop ;;
    status) cmd_status ;;
    *) echo "usage: $0 start | stop | status" >&2; exit 2 ;;
esac
