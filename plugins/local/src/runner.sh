# ganga-rs Local backend: a runner (format 1).
#
# Started detached (its own session, re-parented to init) by ganga-backend-local as
#   sh runner.sh LOCAL_DIR SLOT
# with umask 077, PATH as its only environment variable, and as its stdin an open file
# that holds the flock(2) of LOCAL_DIR/slots/slot-SLOT: while this runner lives, slot
# SLOT is taken. It takes queued units one after the other, runs each under its wrapper
# and waits for it, and exits once the queue is empty. The queue's files are described
# in the crate documentation (plugins/local/src/lib.rs). Everything it reads from a queue
# entry is only ever expanded inside double quotes.

# The slot's lock moves to fd 9, which no wrapper inherits.
exec 9<&0 </dev/null

IFS=' 	
'
ganga_local=$1
ganga_slot=$2
ganga_q=$ganga_local/queue
ganga_events=$ganga_local/events
ganga_hint=$ganga_local/cursors/$ganga_slot

# This process's start time (clock ticks since boot, field 22 of /proc/PID/stat; 0 where
# there is no /proc), so that a claim can tell this runner from a later process that got
# its pid. After the command name the fields are split by IFS: field 3 is $1.
ganga_ticks=0
ganga_field22() { ganga_ticks=${20:-0}; }
ganga_stat=
{ read -r ganga_stat </proc/$$/stat; } 2>/dev/null
if [ -n "$ganga_stat" ]; then
    ganga_field22 ${ganga_stat##*) }
fi

# Where to start: every entry below a runner's cursor has been taken, so the highest
# cursor any runner of this home has left is a safe start.
ganga_cursor=0
for ganga_f in "$ganga_local"/cursors/*; do
    ganga_v=
    { read -r ganga_v <"$ganga_f"; } 2>/dev/null
    case $ganga_v in
        '' | *[!0-9]*) continue ;;
    esac
    if [ "$ganga_v" -gt "$ganga_cursor" ]; then
        ganga_cursor=$ganga_v
    fi
done

ganga_read_head() {
    ganga_head=
    { read -r ganga_head <"$ganga_q/head"; } 2>/dev/null
    case $ganga_head in
        '' | *[!0-9]*) ganga_head=0 ;;
    esac
}

# Takes entry $1 if it is still there and no one else took it, and runs it.
ganga_take() {
    ganga_seq=$1
    ganga_entry=$ganga_q/$ganga_seq
    ganga_claim=$ganga_entry.claim
    [ -f "$ganga_entry" ] || return 1
    # The claim: creating a file that must not exist yet (O_EXCL), which one runner (or
    # one `kill`) wins.
    set -C
    { printf '%s %s\n' "$$" "$ganga_ticks" >"$ganga_claim"; } 2>/dev/null
    ganga_rc=$?
    set +C
    [ "$ganga_rc" -eq 0 ] || return 1
    # The entry is the run's `queued` record: its first lines, each after a `#`, say
    # where the run is and which wrapper runs it.
    ganga_format= ganga_ctl= ganga_run= ganga_job= ganga_wrapper=
    {
        read -r ganga_format && read -r ganga_ctl && read -r ganga_run &&
            read -r ganga_job && read -r ganga_wrapper
    } <"$ganga_entry" 2>/dev/null
    ganga_ctl=${ganga_ctl#\#}
    ganga_run=${ganga_run#\#}
    ganga_job=${ganga_job#\#}
    ganga_wrapper=${ganga_wrapper#\#}
    if [ "$ganga_format" != "#ganga-local-queue 1" ] || [ -z "$ganga_wrapper" ]; then
        # Taken away (killed, resubmitted) between our look and our claim; or written by
        # another version of ganga, whose runners will take it.
        if [ -f "$ganga_entry" ]; then
            echo "ganga runner: leaving $ganga_entry, which this runner cannot read" >&2
        fi
        rm -f "$ganga_claim"
        return 1
    fi
    { printf '%s\n' "$((ganga_seq + 1))" >"$ganga_hint"; } 2>/dev/null
    if [ -e "$ganga_ctl/killed-$ganga_run" ]; then
        rm -f "$ganga_entry" "$ganga_claim"
        return 0
    fi
    # The wrapper leads a session of its own (its pid is the unit's process group), does
    # not inherit the slot's lock, and removes the entry and the claim once it started.
    # It runs in the foreground: sh would start a background command with SIGINT and
    # SIGQUIT ignored, and the job would inherit that. (This shell's child is not a group
    # leader, so setsid(1) makes it one without forking, and this shell waits for it.)
    setsid /bin/sh "$ganga_wrapper" "$ganga_ctl" "$ganga_run" "$ganga_seq" "$ganga_q" \
        "$ganga_events" </dev/null >>"$ganga_ctl/wrapper-$ganga_run.log" 2>&1 9<&-
    if [ -e "$ganga_entry" ] || {
        [ ! -e "$ganga_ctl/exit-$ganga_run" ] && [ ! -e "$ganga_ctl/killed-$ganga_run" ]
    }; then
        # It ended without saying how (it could not start, or it was killed with
        # SIGKILL): out of the queue with it, and tell whoever watches, so that a poll
        # soon finds it gone.
        rm -f "$ganga_entry" "$ganga_claim"
        { printf '' >"$ganga_events/$ganga_job-r$ganga_run"; } 2>/dev/null
    fi
    return 0
}

ganga_read_head
while :; do
    while [ "$ganga_cursor" -lt "$ganga_head" ]; do
        ganga_take "$ganga_cursor"
        ganga_cursor=$((ganga_cursor + 1))
        if [ "$ganga_cursor" -ge "$ganga_head" ]; then
            ganga_read_head
        fi
    done
    # Nothing left that we can see. Give the slot up first, then look once more: a
    # submitter publishes its units before it looks for free slots, so either it found
    # ours free (and started a runner) or we see its units now.
    exec 9<&-
    ganga_read_head
    if [ "$ganga_cursor" -ge "$ganga_head" ]; then
        exit 0
    fi
    exec 9>>"$ganga_local/slots/slot-$ganga_slot"
    if command -v flock >/dev/null 2>&1; then
        # Another runner has the slot now: it takes the new units.
        flock -n 9 || exit 0
    fi
done
