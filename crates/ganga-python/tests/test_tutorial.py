"""Ganga's tutorial, as a Ganga user writes it, with only the import changed where the
names match (and `j.wait()` where the tutorial waits at the prompt for the monitoring
loop). Every job runs on the Local backend to completion: real processes, the real
store, a monitor in this process.
"""

import os
import pathlib
import stat

from conftest import DEADLINE
from ganga_rs import ArgSplitter, Executable, GenericSplitter, Job, Local, LocalFile, jobs


def test_first_job(home):
    # Ganga's "first job": echo 'Hello World' on this machine.
    j = Job()
    j.submit()
    assert j.id is not None
    assert j.wait(timeout=DEADLINE) == "completed"
    assert j.status == "completed"
    assert j.backend.exitcode == 0
    assert "Hello World" in j.peek("stdout")
    # The output directory is a path, with the job's stdout in it.
    stdout = j.outputdir / "stdout"
    assert stdout.read_text() == "Hello World\n"
    assert stdout in j.outputs
    # The same job, found by id in the registry as Ganga finds it.
    assert jobs(j.id).status == "completed"
    assert j in jobs
    assert "completed" in repr(jobs)


def test_first_job_with_its_parts_named(home):
    j = Job(name="my first job")
    j.application = Executable(exe="echo", args=["Hello", "from", "ganga-rs"])
    j.backend = Local()
    j.submit()
    j.wait(timeout=DEADLINE)
    assert j.status == "completed"
    assert j.name == "my first job"
    assert j.application.args == ["Hello", "from", "ganga-rs"]
    assert (j.outputdir / "stdout").read_text() == "Hello from ganga-rs\n"
    # Ganga's jobs table: the row names the job, its status and backend.
    row = repr(jobs(j.id)).splitlines()[-1]
    assert "my first job" in row and "completed" in row and "Local" in row


def test_split_job_with_an_arg_splitter(home):
    j = Job(name="split")
    j.application = Executable(exe="echo")
    j.splitter = ArgSplitter(args=[["Hello 1"], ["Hello 2"], ["Hello 3"]])
    j.submit()
    assert j.wait(timeout=DEADLINE) == "completed"
    assert len(j.subjobs) == 3
    seen = []
    for sj in j.subjobs:
        assert sj.status == "completed"
        assert sj.master == j
        seen.append((sj.outputdir / "stdout").read_text())
    assert seen == ["Hello 1\n", "Hello 2\n", "Hello 3\n"]
    assert j.subjobs(1).application.args == ["Hello 2"]
    assert jobs(f"{j.id}.2").peek() == "Hello 3\n"
    # Ganga's table: 3 subjobs, running/failed/completing/completed counts.
    row = repr(jobs(j.id)).splitlines()[-1]
    assert [cell.strip() for cell in row.split("|")][:4] == [str(j.id), "completed", "split", "3"]
    assert row.rstrip(" |").endswith("0/0/0/3")


def test_split_job_with_a_generic_splitter(home):
    j = Job()
    j.application = Executable(exe="echo")
    j.splitter = GenericSplitter()
    j.splitter.attribute = "application.args"
    j.splitter.values = [["hello", 1], ["world", 2], ["again", 3]]
    j.submit()
    assert j.wait(timeout=DEADLINE) == "completed"
    outputs = [(sj.outputdir / "stdout").read_text() for sj in j.subjobs]
    assert outputs == ["hello 1\n", "world 2\n", "again 3\n"]


def test_resubmitting_failed_subjobs(home, tmp_path):
    # A program that fails for its argument 2 until a file exists, as a job fails on a
    # node that lacks something until it is fixed.
    fixed = tmp_path / "fixed"
    script = tmp_path / "work.sh"
    script.write_text(
        '#!/bin/sh\n[ "$1" != 2 ] || [ -e "$FIXED" ] || { echo broken >&2; exit 7; }\n'
        'echo "done $1"\n'
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    j = Job(name="flaky")
    j.application = Executable(exe=str(script), env={"FIXED": str(fixed)})
    j.splitter = ArgSplitter(args=[[1], [2], [3]])
    j.submit()
    assert j.wait(timeout=DEADLINE) == "failed"
    failed = j.subjobs.select(status="failed")
    assert len(failed) == 1
    assert [sj.fqid for sj in failed] == [f"{j.id}.1"]
    assert failed[0].backend.exitcode == 7
    assert "broken" in failed[0].peek("stderr")
    assert len(j.subjobs.select(status="completed")) == 2

    fixed.touch()
    # Ganga's way, one subjob at a time.
    for sj in j.subjobs:
        if sj.status == "failed":
            sj.resubmit()
    assert j.wait(timeout=DEADLINE) == "completed"
    assert (j.subjobs[1].outputdir / "stdout").read_text() == "done 2\n"
    assert len(j.subjobs.select(status="failed")) == 0


def test_resubmitting_a_selection_at_once(home, tmp_path):
    fixed = tmp_path / "fixed"
    j = Job(
        application=Executable(exe="/bin/sh", args=["-c", '[ -e "$0" ] || exit 3; echo ok']),
        splitter=ArgSplitter(args=[[str(fixed)]] * 4, append=True),
    )
    j.submit()
    assert j.wait(timeout=DEADLINE) == "failed"
    assert len(j.subjobs.select(status="failed")) == 4
    fixed.touch()
    j.subjobs.select(status="failed").resubmit()
    assert j.wait(timeout=DEADLINE) == "completed"
    assert all(sj.status == "completed" for sj in j.subjobs)


def test_reading_outputs(home, tmp_path):
    j = Job(name="outputs")
    j.application = Executable(
        exe="/bin/sh", args=["-c", 'echo "result $0" > result.txt; echo log > run.log', "42"]
    )
    j.outputfiles = [LocalFile("result.txt"), "*.log"]
    j.submit()
    assert j.wait(timeout=DEADLINE) == "completed"
    names = sorted(p.name for p in j.outputs)
    assert names == ["result.txt", "run.log", "stderr", "stdout"]
    for p in j.outputs:
        assert isinstance(p, pathlib.Path) and p.is_file()
    assert (j.outputdir / "result.txt").read_text() == "result 42\n"
    # Ganga's idiom: the output directory is a path name too.
    with open(os.path.join(j.outputdir, "run.log")) as f:
        assert f.read() == "log\n"


def test_a_missing_output_fails_the_job_as_in_ganga(home):
    j = Job(application=Executable(exe="true", args=[]), outputfiles=["never-written.txt"])
    j.submit()
    assert j.wait(timeout=DEADLINE) == "failed"
