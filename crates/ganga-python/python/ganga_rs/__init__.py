"""ganga-rs from Python, with Ganga's names.

A Ganga script runs with its import changed::

    from ganga_rs import *

    j = Job(name="hello")
    j.application = Executable(exe="echo", args=["Hello World"])
    j.backend = Local()
    j.submit()
    j.wait()
    print(jobs)

The jobs are those of ``ganga`` (the same home, config and plugins): see
docs/python.md in ganga-rs.
"""

from ._native import (
    ArgSplitter,
    Backend,
    Batch,
    Condor,
    Dirac,
    Executable,
    File,
    GangaError,
    GenericSplitter,
    InvalidJob,
    Job,
    JobRegistry,
    JobStatusError,
    LSF,
    Local,
    LocalFile,
    NoSuchJob,
    PBS,
    ReadOnlyError,
    SGE,
    Slurm,
    SubjobRegistry,
    SubmitError,
    WaitTimeout,
    configure,
    jobs,
    load,
    session_info,
)

__all__ = [
    "ArgSplitter",
    "Backend",
    "Batch",
    "Condor",
    "Dirac",
    "Executable",
    "File",
    "GangaError",
    "GenericSplitter",
    "InvalidJob",
    "Job",
    "JobRegistry",
    "JobStatusError",
    "LSF",
    "Local",
    "LocalFile",
    "NoSuchJob",
    "PBS",
    "ReadOnlyError",
    "SGE",
    "Slurm",
    "SubjobRegistry",
    "SubmitError",
    "WaitTimeout",
    "configure",
    "jobs",
    "load",
    "session_info",
]
