"""Bad input from Python is a Python exception that names the problem, with the CLI's
words where the CLI has them, and never a crash of the interpreter."""

import subprocess
import sys
import textwrap

import pytest

from conftest import ganga_binary
from ganga_rs import (
    ArgSplitter,
    Backend,
    Dirac,
    Executable,
    GangaError,
    GenericSplitter,
    InvalidJob,
    Job,
    Local,
    NoSuchJob,
    Slurm,
    jobs,
)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: Executable(exe=3), "Executable.exe: expected a string or a File, not int"),
        (lambda: Executable(args="echo hi"), "Executable.args: expected a list of strings, not str"),
        (lambda: Executable(args=["a", ["b"]]), r"Executable.args\[1\]: expected a string or a number, not list"),
        (lambda: Executable(env=["A=1"]), "Executable.env: expected a dict of strings, not list"),
        (lambda: ArgSplitter(args="abc"), "ArgSplitter.args: expected a list of argument lists, not str"),
        (lambda: ArgSplitter(args=[[object()]]), r"ArgSplitter.args\[0\]\[0\]: expected a string or a number"),
        (lambda: GenericSplitter(values=3), "GenericSplitter.values: expected a list of values, not int"),
        (lambda: Job(application="echo"), "Job.application: expected an Executable, not str"),
        (lambda: Job(backend=3), "Job.backend: expected a backend"),
        (lambda: Job(splitter=[1, 2]), "Job.splitter: expected an ArgSplitter or a GenericSplitter, not list"),
        (lambda: Job(name=5), "Job.name: expected a string, not int"),
        (lambda: Job(outputfiles="*.txt"), "Job.outputfiles: expected a list of patterns or LocalFiles, not str"),
        (lambda: Slurm(queue=object()), "Slurm.queue: expected a string, number, boolean, list or dict"),
    ],
)
def test_wrong_types_are_type_errors_naming_the_attribute(home, make, message):
    with pytest.raises(TypeError, match=message):
        make()


def test_an_unknown_backend_names_it_and_the_loaded_ones(home):
    j = Job(backend=Backend("nosuch"))
    with pytest.raises(InvalidJob, match="Job.backend: unknown backend `nosuch`") as e:
        j.submit()
    assert "local" in str(e.value)
    assert isinstance(e.value, ValueError) and isinstance(e.value, GangaError)
    # Nothing was stored.
    assert len(jobs) == 0
    # A backend named by a string is the same.
    with pytest.raises(InvalidJob, match="unknown backend `condorr`"):
        Job(backend="condorr").submit()


def test_an_option_the_backend_does_not_know_is_refused(home):
    b = Local()
    b.queue = "long"
    with pytest.raises(InvalidJob, match=r"Job.backend.queue: unknown option of backend `local` \(it knows none\)"):
        Job(backend=b).submit()


def test_values_no_process_can_be_given_are_refused_before_storing(home):
    with pytest.raises(InvalidJob, match=r"Job.application.args\[0\]: contains a NUL character"):
        Job(application=Executable(exe="echo", args=["a\0b"])).submit()
    with pytest.raises(InvalidJob, match="Job.application.exe: `-rf` starts with `-`"):
        Job(application=Executable(exe="-rf", args=[])).submit()
    with pytest.raises(InvalidJob, match=r"Job.inputfiles\[0\]: `missing.txt` is not a file"):
        Job(inputfiles=["missing.txt"]).submit()
    with pytest.raises(InvalidJob, match=r"Job.outputfiles\[0\]"):
        Job(outputfiles=["../escape"]).submit()
    with pytest.raises(InvalidJob, match="Job.splitter: GenericSplitter: set either attribute and values, or multi_attrs"):
        Job(splitter=GenericSplitter()).submit()
    assert len(jobs) == 0


def test_a_job_id_that_does_not_exist(home):
    with pytest.raises(NoSuchJob, match="job 999 does not exist"):
        jobs(999)
    with pytest.raises(LookupError):
        jobs(-1)
    with pytest.raises(TypeError, match=r"jobs\(id\): expected a job id"):
        jobs(1.5)
    j = Job()
    j.submit()
    with pytest.raises(NoSuchJob, match=f"job {j.id}.0 does not exist"):
        jobs(f"{j.id}.0")
    with pytest.raises(IndexError, match="it holds 1 jobs"):
        jobs[5]
    with pytest.raises(ValueError, match="wait: timeout must be a number of seconds"):
        j.wait(timeout=float("nan"))
    j.wait(timeout=60)


def test_bad_statuses_and_verbs_before_submit(home):
    with pytest.raises(ValueError, match="select"):
        jobs.select(status="finished-ish")
    j = Job()
    with pytest.raises(GangaError, match="never submitted"):
        j.kill()
    with pytest.raises(GangaError, match="never submitted"):
        j.peek()


def test_a_home_that_cannot_be_made_is_an_exception(tmp_path):
    import ganga_rs

    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    ganga_rs.configure(home=blocker / "home", plugin_dirs=[ganga_binary().parent])
    with pytest.raises(GangaError, match="cannot create the ganga home"):
        len(ganga_rs.jobs)


def test_the_interpreter_survives_every_bad_input(tmp_path):
    # Each mistake in a fresh interpreter: it must end by itself with exit code 0, never
    # by a signal (a Rust panic across the boundary would abort it).
    script = textwrap.dedent(
        f"""
        import ganga_rs
        from ganga_rs import *
        ganga_rs.configure(home={str(tmp_path / 'home')!r}, plugin_dirs=[{str(ganga_binary().parent)!r}])
        attempts = [
            lambda: Executable(exe=None, args=[None]),
            lambda: Job(backend=Backend("")).submit(),
            lambda: Job(backend=Dirac(site=[object()])),
            lambda: jobs(2**70),
            lambda: jobs("1.2.3"),
            lambda: jobs["x"],
            lambda: Job().subjobs[10],
            lambda: ArgSplitter(args=[[b"bytes"]]),
            lambda: Job(splitter=GenericSplitter(attribute="application.args", values=[{{"a": 1}}])).submit(),
            lambda: Job(splitter=GenericSplitter(attribute="nosuch", values=[1])).submit(),
            lambda: jobs(1).subjobs(2**70),
            lambda: Job(splitter=ArgSplitter(args=[])).submit(),
            lambda: Job().wait(timeout=1),
            lambda: Job(application=Executable(env={{"A=B": "1"}})).submit(),
            lambda: jobs.remove(),
        ]
        for i, attempt in enumerate(attempts):
            try:
                attempt()
            except Exception as e:
                print(i, type(e).__name__, str(e).replace("\\n", " "))
            else:
                print(i, "nothing raised")
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    answers = done.stdout.splitlines()
    assert len(answers) == 15, done.stdout
    for line in answers:
        index, kind, message = line.split(" ", 2)
        assert kind.endswith("Error") or kind in ("InvalidJob", "NoSuchJob"), line
        assert message.strip(), line
