"""A job defined in Python and the same job in a TOML file are the same job: `ganga show`
says the same of both (all but their ids, workspaces and times)."""

from conftest import DEADLINE
from ganga_rs import ArgSplitter, Executable, GenericSplitter, Job, Local, LocalFile, jobs, load

JOB_FILE = """\
name = "analysis"
comment = "the same in both"
input_files = ["data.txt"]
output_files = ["result-*.txt", "summary.log"]

[application]
exe = "/bin/sh"
args = ["-c", 'wc -c < data.txt > "result-$1.txt"; echo "$GREETING $1" > summary.log', "run"]
env = { GREETING = "hello" }

[backend]
type = "local"

[splitter]
type = "args"
append = true
args = [["a"], ["b"], ["c"]]
"""


def python_job(tmp_path):
    j = Job(name="analysis", comment="the same in both")
    j.application = Executable(
        exe="/bin/sh",
        args=["-c", 'wc -c < data.txt > "result-$1.txt"; echo "$GREETING $1" > summary.log', "run"],
        env={"GREETING": "hello"},
    )
    j.backend = Local()
    j.splitter = ArgSplitter(args=[["a"], ["b"], ["c"]], append=True)
    j.inputfiles = [LocalFile("data.txt")]
    j.outputfiles = ["result-*.txt", LocalFile("summary.log")]
    return j


def test_python_and_toml_make_the_same_job(home, cli, tmp_path):
    (tmp_path / "data.txt").write_text("twelve bytes")
    (tmp_path / "job.toml").write_text(JOB_FILE)

    from_python = python_job(tmp_path)
    from_python.submit()
    cli.ok("submit", str(tmp_path / "job.toml"))
    from_file = [j for j in cli.json("jobs") if j["id"] != from_python.id]
    assert len(from_file) == 1
    file_id = from_file[0]["id"]

    a = cli.json("show", str(from_python.id))
    b = cli.json("show", str(file_id))
    assert a["spec"] == b["spec"]
    for i in range(3):
        sa = cli.json("show", f"{from_python.id}.{i}")
        sb = cli.json("show", f"{file_id}.{i}")
        assert sa["spec"] == sb["spec"]
        assert sa["overrides"] == sb["overrides"]

    # Both run to the same results.
    from_python.wait(timeout=DEADLINE)
    other = jobs(file_id)
    other.wait(timeout=DEADLINE)
    for x, y in zip(from_python.subjobs, other.subjobs):
        assert x.status == y.status == "completed"
        assert sorted(p.name for p in x.outputs) == sorted(p.name for p in y.outputs)
        for name in ["summary.log", f"result-{'abc'[x.id]}.txt"]:
            assert (x.outputdir / name).read_text() == (y.outputdir / name).read_text()


def test_load_reads_a_job_file_into_the_same_definition(home, tmp_path):
    (tmp_path / "data.txt").write_text("twelve bytes")
    (tmp_path / "job.toml").write_text(JOB_FILE)
    loaded = load(tmp_path / "job.toml")
    built = python_job(tmp_path)
    assert loaded.id is None and loaded.status == "new"
    for attr in ["name", "comment", "outputfiles"]:
        assert getattr(loaded, attr) == getattr(built, attr)
    assert repr(loaded.application) == repr(built.application)
    assert repr(loaded.splitter) == repr(built.splitter)
    assert [p.resolve() for p in loaded.inputfiles] == [p.resolve() for p in built.inputfiles]


def test_a_generic_splitter_is_the_same_too(home, cli, tmp_path):
    (tmp_path / "generic.toml").write_text(
        """\
name = "seeds"
[application]
exe = "echo"
args = ["seed"]
[splitter]
type = "generic"
[splitter.attributes]
"application.env.SEED" = ["11", "22"]
"name" = ["seed-11", "seed-22"]
"""
    )
    j = Job(name="seeds", application=Executable(exe="echo", args=["seed"]))
    j.splitter = GenericSplitter(
        multi_attrs={"application.env.SEED": ["11", "22"], "name": ["seed-11", "seed-22"]}
    )
    j.submit()
    cli.ok("submit", str(tmp_path / "generic.toml"))
    ids = [row["id"] for row in cli.json("jobs")]
    assert len(ids) == 2
    a, b = (cli.json("show", str(i)) for i in ids)
    assert a["spec"] == b["spec"]
    for i in range(2):
        assert cli.json("show", f"{ids[0]}.{i}")["spec"] == cli.json("show", f"{ids[1]}.{i}")["spec"]
    for i in ids:
        jobs(i).wait(timeout=DEADLINE)
