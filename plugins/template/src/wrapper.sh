# The wrapper of one run: sh -c WRAPPER wrapper.sh CONTROL_DIR RUN NICENESS PROGRAM [ARGS...],
# started in the working directory as the leader of a new session, so that its pid names
# the process group of everything the job starts. It runs the program under nice, then
# records the exit code as CONTROL_DIR/exit-RUN: written to a temporary name and renamed,
# so that a reader never sees half of it. (The job's environment is this shell's too:
# `command -p` finds nice and mv even when a job sets its own PATH.)
ctl=$1 run=$2 niceness=$3
shift 3
command -p nice -n "$niceness" -- "$@" </dev/null >stdout 2>stderr
code=$?
printf '%s\n' "$code" >"$ctl/exit-$run.tmp" && command -p mv -f "$ctl/exit-$run.tmp" "$ctl/exit-$run"
