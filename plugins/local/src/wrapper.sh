# ganga-rs Local backend: the wrapper of one job (format 1).
#
# Written into the job's control directory by ganga-backend-local and started as
#   sh wrapper.sh CONTROL_DIR WORK_DIR SLOTS_DIR MAX_PARALLEL N_ENV [NAME=VALUE]... EXE [ARG]...
# as the leader of its own session, so its pid is also its process group id.
# Everything that comes from the job arrives as positional parameters and is only ever
# expanded inside double quotes: no job text is parsed as shell code.
#
# It waits for a slot (at most MAX_PARALLEL jobs at once, 0 = no limit), records
# `started`, runs the program in WORK_DIR and records `exit` (both written to a temporary
# file and renamed, so a reader never sees half a record). Its own diagnostics go to
# stderr, which the backend points at `wrapper.log` in the control directory.

ganga_control=$1
ganga_work=$2
ganga_slots=$3
ganga_max=$4
ganga_nenv=$5
shift 5

# Prints `time_ms=...`, or `time_s=...` where `date` has no %N (BSD, old busybox).
ganga_now() {
    ganga_t=$(date +%s%N 2>/dev/null)
    case $ganga_t in
        '' | *[!0-9]*) echo "time_s=$(date +%s)" ;;
        *)
            if [ "${#ganga_t}" -gt 12 ]; then
                echo "time_ms=${ganga_t%??????}"
            else
                echo "time_s=$ganga_t"
            fi
            ;;
    esac
}

# Copies stdin into the record $1, atomically.
ganga_record() {
    cat >"$ganga_control/$1.tmp" && mv -f "$ganga_control/$1.tmp" "$ganga_control/$1"
}

# A slot is an flock(1) on one of the files slot-1..slot-MAX, held on fd 9 for as long as
# this shell lives. The lock belongs to the open file, so it is released when the wrapper
# ends, however it ends; the program runs with fd 9 closed so that a daemon it leaves
# behind does not keep the slot.

# Tries to take slot $1 with the flock options that follow; sets ganga_slot if it did.
ganga_try_slot() {
    ganga_n=$1
    shift
    ganga_f=$ganga_slots/slot-$ganga_n
    # A failed redirection of `exec` would end the shell: try it in a subshell first.
    (: >>"$ganga_f") 2>/dev/null || return 1
    ganga_opened=1
    exec 9>>"$ganga_f"
    if flock "$@" 9; then
        ganga_slot=$ganga_n
        return 0
    fi
    exec 9>&-
    return 1
}

ganga_slot=none
if [ "$ganga_max" -gt 0 ] && command -v flock >/dev/null 2>&1; then
    # Waiters line up on the `queue` lock (fd 8), so that only the first of them looks for
    # a free slot while the others sleep in the kernel, however many they are.
    if (: >>"$ganga_slots/queue") 2>/dev/null; then
        exec 8>>"$ganga_slots/queue"
        flock 8
    fi
    ganga_slot=
    ganga_round=0
    while [ -z "$ganga_slot" ]; do
        ganga_opened=0
        ganga_i=1
        while [ "$ganga_i" -le "$ganga_max" ]; do
            ganga_try_slot "$ganga_i" -n && break
            ganga_i=$((ganga_i + 1))
        done
        [ -n "$ganga_slot" ] && break
        if [ "$ganga_opened" -eq 0 ]; then
            echo "ganga: no slot file in $ganga_slots can be opened; running without a slot" >&2
            ganga_slot=none
            break
        fi
        # All taken: wait up to a second for one of them (another one each round), then
        # look at all of them again.
        ganga_try_slot $((ganga_round % ganga_max + 1)) -w 1 && break
        ganga_round=$((ganga_round + 1))
    done
    exec 8>&-
fi

{
    echo "pid=$$"
    echo "pgid=$$"
    echo "slot=$ganga_slot"
    ganga_now
} | ganga_record started

ganga_error=
if cd "$ganga_work"; then
    if [ "$ganga_nenv" -gt 0 ]; then
        (exec env "$@") </dev/null >stdout 2>stderr 8>&- 9>&-
    else
        (exec "$@") </dev/null >stdout 2>stderr 8>&- 9>&-
    fi
    ganga_rc=$?
else
    ganga_rc=126
    ganga_error="cannot enter the working directory"
fi

{
    echo "exit_code=$ganga_rc"
    # sh reports a program killed by signal n as 128+n.
    if [ "$ganga_rc" -gt 128 ] && [ "$ganga_rc" -le 192 ]; then
        echo "signal=$((ganga_rc - 128))"
    fi
    if [ -n "$ganga_error" ]; then
        echo "error=$ganga_error"
    fi
    ganga_now
} | ganga_record exit
