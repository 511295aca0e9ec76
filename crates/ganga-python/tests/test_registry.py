"""The `jobs` registry and the verbs, on real jobs of the Local backend: by id, iterated,
selected, sliced; kill, copy, remove, force_status, peek, and `ganga` seeing what
the module did."""

import pytest

from conftest import DEADLINE
from ganga_rs import (
    ArgSplitter,
    Executable,
    Job,
    JobStatusError,
    NoSuchJob,
    ReadOnlyError,
    WaitTimeout,
    jobs,
)


def echo(name, *words):
    return Job(name=name, application=Executable(exe="echo", args=list(words)))


def test_jobs_by_id_iteration_select_and_slices(home):
    made = []
    for name in ["alpha", "beta", "alpha"]:
        j = echo(name, name)
        j.submit()
        made.append(j)
    bad = Job(name="bad", application=Executable(exe="false", args=[]))
    bad.submit()
    for j in made + [bad]:
        j.wait(timeout=DEADLINE)

    ids = [j.id for j in made + [bad]]
    assert [j.id for j in jobs] == ids
    assert len(jobs) == 4
    assert jobs(ids[1]).name == "beta"
    assert [j.id for j in jobs.select(name="alpha")] == [ids[0], ids[2]]
    assert [j.id for j in jobs.select(status="failed")] == [ids[3]]
    assert [j.id for j in jobs.select(status=["completed", "failed"], name="bad")] == [ids[3]]
    assert len(jobs.select(status="running")) == 0
    assert [j.id for j in jobs.select(minid=ids[1], maxid=ids[2])] == ids[1:3]
    # By position, as Ganga's registry slices are.
    assert jobs[0].id == ids[0]
    assert jobs[-1].id == ids[3]
    assert [j.id for j in jobs[-2:]] == ids[2:]
    assert [j.id for j in jobs[::2]] == [ids[0], ids[2]]
    # A person reads the table: a header, a rule and one row per job.
    table = repr(jobs.select(name="alpha"))
    assert table.startswith("Registry Slice: jobs.select(name='alpha') (2 objects)")
    assert "fqid" in table and "status" in table and "backend" in table
    assert len(table.splitlines()) == 1 + 2 + 2


def test_kill_copy_remove(home, cli):
    j = Job(name="sleeper", application=Executable(exe="sleep", args=["600"]))
    j.submit()
    with pytest.raises(WaitTimeout, match=f"job {j.id}: still"):
        j.wait(timeout=0.5)
    j.kill()
    assert j.wait(timeout=DEADLINE) == "killed"
    # Killing twice is refused with the CLI's words.
    with pytest.raises(JobStatusError):
        j.kill()

    c = j.copy()
    assert c.id is None and c.status == "new"
    assert c.name == "sleeper" and c.application.args == ["600"]
    c.application.args = ["0"]
    c.submit()
    assert c.id != j.id
    assert c.wait(timeout=DEADLINE) == "completed"
    # A stored job's definition is read-only: copy it to change it.
    with pytest.raises(ReadOnlyError, match="copy"):
        c.application.args = ["1"]
    with pytest.raises(ReadOnlyError):
        c.name = "other"

    j.remove()
    with pytest.raises(NoSuchJob):
        jobs(j.id)
    listed = [row["id"] for row in cli.json("jobs")]
    assert listed == [c.id]


def test_force_status_and_subjob_verbs(home, cli):
    j = Job(application=Executable(exe="sh", args=["-c", "exit $0"]),
            splitter=ArgSplitter(args=[["0"], ["1"], ["0"]], append=True))
    j.submit()
    assert j.wait(timeout=DEADLINE) == "failed"
    sj = j.subjobs(1)
    assert sj.fqid == f"{j.id}.1" and sj.status == "failed"
    sj.force_status("completed")
    assert j.status == "completed"
    shown = cli.json("show", f"{j.id}.1")
    assert shown["run"]["status"] == "completed"
    with pytest.raises(ValueError, match="force_status"):
        j.force_status("nonsense")


def test_a_job_submitted_from_python_is_one_ganga_sees(home, cli):
    j = echo("seen", "by", "ganga")
    j.submit()
    j.wait(timeout=DEADLINE)
    shown = cli.json("show", str(j.id))
    assert shown["spec"]["name"] == "seen"
    assert shown["run"]["status"] == "completed"
    assert cli.ok("peek", str(j.id)) == "by ganga\n"


def test_wait_releases_the_gil(home):
    # Another Python thread runs while wait() blocks: it records the moments it ran, and
    # some of them fall inside the wait.
    import threading
    import time

    j = Job(application=Executable(exe="sleep", args=["1"]))
    j.submit()
    ticks = []
    done = threading.Event()

    def tick():
        while not done.is_set():
            ticks.append(time.monotonic())
            time.sleep(0.01)

    t = threading.Thread(target=tick)
    t.start()
    try:
        started = time.monotonic()
        assert j.wait(timeout=DEADLINE) == "completed"
        ended = time.monotonic()
    finally:
        done.set()
        t.join()
    inside = [x for x in ticks if started < x < ended]
    assert len(inside) >= 5, (len(ticks), started, ended)

