#!/usr/bin/env bash
# The Python module ganga_rs: builds it into a virtual environment with maturin, as the
# README's one line does, and runs its pytest files against the `ganga` binary and the
# plugins built beside it in target/debug. `.ci/run` calls it; by hand:
# `bash .ci/python.sh [PYTEST ARGS...]`.
#
# After `cargo xtask test` (which builds the workspace as this does) it takes about three
# minutes on the 2-core machine: a virtual environment, one debug build of the module, and
# the tests (about 35 s). Any failure ends it with a non-zero status.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
target=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
venv="$target/python-venv"

echo "== python: the binary and plugins the tests use"
# As `cargo xtask test` builds them (the same features), so that after it in `.ci/run`
# this builds nothing.
cargo build --workspace --all-targets

echo "== python: a virtual environment with maturin and pytest ($venv)"
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check "maturin>=1.9,<2" "pytest>=8"

echo "== python: build and install ganga_rs (maturin develop)"
# VIRTUAL_ENV tells maturin where to install; the build goes to the workspace's target.
VIRTUAL_ENV="$venv" "$venv/bin/maturin" develop --quiet \
    --manifest-path crates/ganga-python/Cargo.toml

echo "== python: pytest"
# The module finds the plugins beside the `ganga` it finds on PATH, as a user's does.
PATH="$target/debug:$PATH" GANGA_TEST_BIN="$target/debug/ganga" \
    "$venv/bin/python" -m pytest crates/ganga-python/tests "$@"
