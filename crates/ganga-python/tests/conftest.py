"""What the tests of ganga_rs share: a fresh ganga home per test, opened with the
plugins beside the `ganga` binary the tests run (`GANGA_TEST_BIN`, which `.ci/python.sh`
sets to the one it built), and that binary, to check what the module did the way a user
of the command would.

Jobs really run: the Local backend starts processes, the LMDB store keeps them, and a
monitor in the test's own process drives them to the end. Nothing is mocked.
"""

import json
import os
import pathlib
import subprocess

import pytest

import ganga_rs

# How long a test waits for a job of a few short processes to end. Generous: the CI
# machine has two cores shared with other builds. Only a limit, never waited out.
DEADLINE = 120


def ganga_binary() -> pathlib.Path:
    """The `ganga` the tests compare with; a missing one fails, never skips."""
    value = os.environ.get("GANGA_TEST_BIN")
    if not value:
        raise RuntimeError(
            "GANGA_TEST_BIN is not set: run the tests with .ci/python.sh, which builds "
            "`ganga` and its plugins and names the binary"
        )
    path = pathlib.Path(value)
    if not os.access(path, os.X_OK):
        raise RuntimeError(f"GANGA_TEST_BIN={value} is not an executable file")
    return path


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A fresh ganga home that the module works in, with no user config leaking in."""
    home = tmp_path / "gangadir"
    xdg = tmp_path / "xdg-config"
    xdg.mkdir()
    monkeypatch.setenv("XDG_CONFIG_HOME", str(xdg))
    monkeypatch.setenv("GANGA_HOME", str(home))
    for var in ("GANGA_CONFIG", "GANGA_PLUGIN_PATH"):
        monkeypatch.delenv(var, raising=False)
    # Input files are taken relative to the working directory, as in Ganga.
    monkeypatch.chdir(tmp_path)
    ganga_rs.configure(home=home, plugin_dirs=[ganga_binary().parent])
    return home


class Cli:
    """The `ganga` command, run against the same home as the module."""

    def __init__(self, home: pathlib.Path):
        self.home = home

    def run(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(ganga_binary()), "--home", str(self.home), *args],
            capture_output=True,
            text=True,
            timeout=DEADLINE,
        )

    def ok(self, *args: str) -> str:
        done = self.run(*args)
        assert done.returncode == 0, (
            f"ganga {' '.join(args)} exited {done.returncode}:\n{done.stderr}"
        )
        return done.stdout

    def json(self, *args: str):
        return json.loads(self.ok(*args, "--json"))


@pytest.fixture
def cli(home):
    return Cli(home)
