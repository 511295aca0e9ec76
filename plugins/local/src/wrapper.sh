# ganga-rs Local backend: the wrapper of one run of a unit (format 2).
#
# Started by a runner as the leader of its own session, so that its pid is also the id
# of the process group of everything the job starts:
#   sh wrapper.sh CONTROL_DIR RUN SEQ QUEUE_DIR EVENTS_DIR
# It sources CONTROL_DIR/queued-RUN (the run's record, written by ganga-backend-local,
# readable by the owner only), which sets ganga_job, ganga_work and ganga_base, defines
# ganga_env (the job's environment, as `export`s) and sets "$@" to the program and its
# arguments. Nothing
# from the job is on a command line but the program and its arguments, and no job text
# is ever parsed as shell code: everything is expanded inside double quotes.
#
# It records `started-RUN`, leaves the queue, checks that the run was not killed in the
# meantime, runs the program in the working directory and records `exit-RUN` (records
# are written to a temporary file and renamed, so a reader never sees half of one), then
# drops an event file for whoever watches. Its own diagnostics go to stderr, which the
# runner points at CONTROL_DIR/wrapper-RUN.log.

IFS=' 	
'
ganga_ctl=$1
ganga_run=$2
ganga_seq=$3
ganga_q=$4
ganga_events=$5
ganga_unit=$ganga_ctl/queued-$ganga_run

if [ ! -r "$ganga_unit" ]; then
    echo "ganga wrapper: $ganga_unit is missing: run $ganga_run was replaced or removed" >&2
    exit 0
fi
. "$ganga_unit"

# Sets ganga_time to `time_ms=...`, or `time_s=...` where `date` has no %N.
ganga_now() {
    ganga_t=$(date +%s%N 2>/dev/null)
    case $ganga_t in
        '' | *[!0-9]*) ganga_time="time_s=$(date +%s)" ;;
        *)
            if [ "${#ganga_t}" -gt 12 ]; then
                ganga_time="time_ms=${ganga_t%??????}"
            else
                ganga_time="time_s=$ganga_t"
            fi
            ;;
    esac
}

# Writes the record $1 with the text $2, atomically.
ganga_record() {
    printf '%s\n' "$2" >"$ganga_ctl/$1.tmp" && mv -f "$ganga_ctl/$1.tmp" "$ganga_ctl/$1"
}

# This process's start time in clock ticks since boot (see the runner).
ganga_ticks=0
ganga_field22() { ganga_ticks=${20:-0}; }
ganga_stat=
{ read -r ganga_stat </proc/$$/stat; } 2>/dev/null
if [ -n "$ganga_stat" ]; then
    ganga_field22 ${ganga_stat##*) }
fi

ganga_now
# Without this record the run could not be followed: then it does not run at all.
if ! ganga_record "started-$ganga_run" "run=$ganga_run
seq=$ganga_seq
pid=$$
pgid=$$
start_ticks=$ganga_ticks
$ganga_time"; then
    echo "ganga wrapper: cannot record started-$ganga_run: not running the program" >&2
    exit 1
fi
rm -f "$ganga_q/$ganga_seq" "$ganga_q/$ganga_seq.claim"
# A kill records `killed` and then looks for `started`: whichever comes second sees the
# other, so a run killed while it was starting never runs its program.
if [ -e "$ganga_ctl/killed-$ganga_run" ]; then
    exit 0
fi

# Whether the program "$1" can be started; if not, says why on fd 3 (the exit record).
# Uses no variable: it runs after the job's environment was applied.
ganga_can_run() {
    case $1 in
        */*)
            if [ -d "$1" ]; then
                printf 'error=cannot execute %s: Is a directory\n' "$1" >&3
                return 1
            elif [ ! -e "$1" ]; then
                printf 'error=cannot execute %s: No such file or directory\n' "$1" >&3
                return 1
            elif [ ! -x "$1" ]; then
                printf 'error=cannot execute %s: Permission denied\n' "$1" >&3
                return 1
            fi
            ;;
        *)
            if ! command -v "$1" >/dev/null 2>&1; then
                printf 'error=cannot execute %s: command not found\n' "$1" >&3
                return 1
            fi
            ;;
    esac
    return 0
}

# The working directory exists already when input files were copied into it.
if [ ! -d "$ganga_work" ]; then
    mkdir "$ganga_work"
fi
if cd "$ganga_work" 2>/dev/null; then
    # The environment ganga had when it submitted, then the job's, for the program only:
    # a job's PATH or IFS cannot break this wrapper.
    (
        if [ -r "$ganga_base" ]; then
            . "$ganga_base"
        fi
        ganga_env
        ganga_can_run "$1" || exit 127
        exec "$@" 3>&-
    ) </dev/null >stdout 2>stderr 3>"$ganga_ctl/exit-$ganga_run.tmp"
    ganga_rc=$?
else
    ganga_rc=126
    printf 'error=cannot enter the working directory %s\n' "$ganga_work" \
        >"$ganga_ctl/exit-$ganga_run.tmp"
fi

ganga_now
{
    echo "run=$ganga_run"
    echo "exit_code=$ganga_rc"
    # sh reports a program killed by signal n as 128+n.
    if [ "$ganga_rc" -gt 128 ] && [ "$ganga_rc" -le 192 ]; then
        echo "signal=$((ganga_rc - 128))"
    fi
    echo "$ganga_time"
} >>"$ganga_ctl/exit-$ganga_run.tmp" &&
    mv -f "$ganga_ctl/exit-$ganga_run.tmp" "$ganga_ctl/exit-$ganga_run"
{ printf '' >"$ganga_events/$ganga_job-r$ganga_run"; } 2>/dev/null
