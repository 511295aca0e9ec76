"""Type stubs of ganga_rs (the native part; `import ganga_rs` re-exports every name)."""

import os
import pathlib
from typing import Any, Iterator, Literal, Optional, Sequence, Union, overload

Status = Literal[
    "new",
    "submitting",
    "submitted",
    "running",
    "completing",
    "completed",
    "failed",
    "killed",
    "removed",
    "unknown",
    "incomplete",
    "completed_frozen",
    "failed_frozen",
    "template",
]
Word = Union[str, int, float, bool]
Value = Union[str, int, float, bool, Sequence["Value"], dict[str, "Value"]]
PathLike = Union[str, os.PathLike[str]]

class GangaError(Exception):
    """Every error ganga_rs raises of its own."""

class JobStatusError(GangaError):
    """The job's status does not allow this (kill a completed job, resubmit a running one...)."""

class SubmitError(GangaError):
    """The backend refused some of the units handed to it; the job is stored (`job_id`)."""

    job_id: int

class NoSuchJob(GangaError, LookupError):
    """No job (or subjob) of that id: `jobs(999)`."""

class InvalidJob(GangaError, ValueError):
    """A job that cannot run as described: an unknown backend or option, an argument no
    process can be given, a splitter that makes no subjobs, a job file with a mistake."""

class ReadOnlyError(GangaError, AttributeError):
    """The definition of a stored job cannot change: copy() it."""

class WaitTimeout(GangaError, TimeoutError):
    """wait(timeout=...) gave up before the job ended."""

class Executable:
    """Ganga's `Executable`: a program, its arguments and extra environment (default:
    `echo 'Hello World'`)."""

    exe: str
    args: list[str]
    env: dict[str, str]
    def __init__(
        self,
        exe: Union[str, File, LocalFile, None] = None,
        args: Optional[Sequence[Word]] = None,
        env: Optional[dict[str, Word]] = None,
    ) -> None: ...

class ArgSplitter:
    """One subjob per argument list, replacing the application's arguments (or added
    after them with `append=True`)."""

    args: list[list[str]]
    append: bool
    def __init__(
        self, args: Optional[Sequence[Union[Sequence[Word], Word]]] = None, append: bool = False
    ) -> None: ...

class GenericSplitter:
    """One subjob per value of `attribute`, or of several attributes at once
    (`multi_attrs`). Attributes: `name`, `comment`, `application.exe`,
    `application.args`, `application.env`, `application.env.VAR`, `backend.OPTION`."""

    attribute: Optional[str]
    values: Optional[list[Any]]
    multi_attrs: Optional[dict[str, list[Any]]]
    def __init__(
        self,
        attribute: Optional[str] = None,
        values: Optional[Sequence[Value]] = None,
        multi_attrs: Optional[dict[str, Sequence[Value]]] = None,
    ) -> None: ...

class LocalFile:
    """A file on this machine: an input file, or a pattern of output files to collect."""

    namePattern: str
    localDir: str
    def __init__(self, namePattern: str = "", localDir: str = "") -> None: ...

class File:
    """A file named by path (made absolute), e.g. a script as an `Executable`'s `exe`."""

    @property
    def name(self) -> str: ...
    def __init__(self, name: str) -> None: ...

class Backend:
    """Where a job runs: the backend plugin `name`, with options as attributes. For a
    stored job it also tells what the backend said."""

    def __init__(self, name: str, **options: Value) -> None: ...
    @property
    def name(self) -> str: ...
    @property
    def options(self) -> dict[str, Any]: ...
    @property
    def id(self) -> Optional[str]: ...
    @property
    def exitcode(self) -> Optional[int]: ...
    @property
    def actualCE(self) -> Optional[str]: ...
    @property
    def status(self) -> Optional[str]: ...
    @property
    def reason(self) -> Optional[str]: ...
    def __getattr__(self, name: str) -> Any: ...
    def __setattr__(self, name: str, value: Any) -> None: ...

class Local(Backend):
    """Processes on this machine (the `local` plugin)."""

    def __init__(self) -> None: ...

class Batch(Backend):
    """A batch system (the `batch` plugin)."""

    system: Optional[str]
    queue: Optional[str]
    extra_options: Optional[Union[str, list[str]]]
    def __init__(
        self,
        system: Optional[Literal["slurm", "sge", "pbs", "lsf", "condor"]] = None,
        queue: Optional[str] = None,
        extra_options: Optional[Union[str, Sequence[str]]] = None,
    ) -> None: ...

class _BatchSystem(Batch):
    def __init__(
        self, queue: Optional[str] = None, extra_options: Optional[Union[str, Sequence[str]]] = None
    ) -> None: ...

class Slurm(_BatchSystem): ...
class SGE(_BatchSystem): ...
class PBS(_BatchSystem): ...
class LSF(_BatchSystem): ...
class Condor(_BatchSystem): ...

class Dirac(Backend):
    """The grid through a DiracX server (the `dirac` plugin)."""

    site: Optional[Union[str, list[str]]]
    banned_sites: Optional[list[str]]
    platform: Optional[str]
    cpu_time: Optional[int]
    tags: Optional[list[str]]
    priority: Optional[int]
    processors: Optional[int]
    job_group: Optional[str]
    input_data: Optional[list[str]]
    def __init__(
        self,
        site: Optional[Union[str, Sequence[str]]] = None,
        banned_sites: Optional[Sequence[str]] = None,
        platform: Optional[str] = None,
        cpu_time: Optional[int] = None,
        tags: Optional[Sequence[str]] = None,
        priority: Optional[int] = None,
        processors: Optional[int] = None,
        job_group: Optional[str] = None,
        input_data: Optional[Sequence[str]] = None,
    ) -> None: ...

class Job:
    """Ganga's `Job`: define it, then `submit()` it. Also a stored job (`jobs(3)`) and a
    subjob (`jobs(3).subjobs[1]`)."""

    name: str
    comment: str
    application: Executable
    backend: Backend
    splitter: Union[ArgSplitter, GenericSplitter, None]
    inputfiles: list[pathlib.Path]
    outputfiles: list[str]
    do_auto_resubmit: Optional[bool]
    def __init__(
        self,
        name: Optional[str] = None,
        comment: Optional[str] = None,
        application: Optional[Executable] = None,
        backend: Union[Backend, str, None] = None,
        splitter: Union[ArgSplitter, GenericSplitter, None] = None,
        inputfiles: Optional[Sequence[Union[PathLike, LocalFile, File]]] = None,
        outputfiles: Optional[Sequence[Union[str, LocalFile]]] = None,
        do_auto_resubmit: Optional[bool] = None,
    ) -> None: ...
    @property
    def id(self) -> Optional[int]: ...
    @property
    def fqid(self) -> Optional[str]: ...
    @property
    def status(self) -> Status: ...
    @property
    def subjobs(self) -> SubjobRegistry: ...
    @property
    def master(self) -> Optional[Job]: ...
    @property
    def outputdir(self) -> Optional[pathlib.Path]: ...
    @property
    def workspace(self) -> Optional[pathlib.Path]: ...
    @property
    def outputs(self) -> list[pathlib.Path]: ...
    def submit(self) -> None: ...
    def resubmit(self) -> None: ...
    def kill(self) -> None: ...
    def remove(self, force: bool = False) -> None: ...
    def copy(self) -> Job: ...
    def peek(self, filename: str = "stdout", bytes: int = ...) -> str: ...
    def force_status(self, status: Literal["completed", "failed"]) -> None: ...
    def wait(self, timeout: Optional[float] = None) -> Status: ...
    def __hash__(self) -> int: ...

class JobRegistry:
    """Ganga's `jobs`, or a slice of it."""

    @overload
    def __call__(self, id: int) -> Job: ...
    @overload
    def __call__(self, id: str) -> Job: ...
    def __len__(self) -> int: ...
    def __iter__(self) -> Iterator[Job]: ...
    @overload
    def __getitem__(self, key: int) -> Job: ...
    @overload
    def __getitem__(self, key: slice) -> JobRegistry: ...
    def __contains__(self, item: Union[Job, int]) -> bool: ...
    def select(
        self,
        minid: Optional[int] = None,
        maxid: Optional[int] = None,
        status: Union[Status, Sequence[Status], None] = None,
        name: Optional[str] = None,
        backend: Optional[str] = None,
        application: Optional[str] = None,
    ) -> JobRegistry: ...
    def ids(self) -> list[int]: ...
    def kill(self) -> None: ...
    def resubmit(self) -> None: ...
    def remove(self, force: bool = False) -> None: ...

class SubjobRegistry:
    """A job's subjobs, read from the store a page at a time as they are iterated."""

    def __call__(self, index: int) -> Job: ...
    def __len__(self) -> int: ...
    def __iter__(self) -> Iterator[Job]: ...
    @overload
    def __getitem__(self, key: int) -> Job: ...
    @overload
    def __getitem__(self, key: slice) -> list[Job]: ...
    def select(
        self,
        minid: Optional[int] = None,
        maxid: Optional[int] = None,
        status: Union[Status, Sequence[Status], None] = None,
    ) -> SubjobRegistry: ...
    def resubmit(self) -> None: ...
    def kill(self) -> None: ...
    def force_status(self, status: Literal["completed", "failed"]) -> None: ...

jobs: JobRegistry

def configure(
    home: Optional[PathLike] = None,
    config: Optional[PathLike] = None,
    plugin_dirs: Optional[Sequence[PathLike]] = None,
    plugins: Optional[Sequence[PathLike]] = None,
    cache_mib: Optional[int] = None,
) -> None:
    """Opens the session later calls work in (home, config file, plugins), instead of
    the one from the environment (`GANGA_HOME`, `GANGA_CONFIG`, `GANGA_PLUGIN_PATH`)."""

def session_info() -> dict[str, Any]:
    """Where the current session is and what it loaded."""

def load(path: PathLike) -> Job:
    """Reads a TOML job file as a job to submit."""
