#!/usr/bin/env bash
# CI: the plugin authors' kit as an author outside this repository meets it. Makes a
# backend from the template into a temporary directory outside the workspace, builds it
# against this checkout's crates (pinned by the workspace's Cargo.lock, copied in), runs
# its own tests (the conformance suite, linked in and loaded), then checks its built
# library with `ganga plugins check`, which must pass.
#
# The plugin builds in target/plugin-kit (CARGO_TARGET_DIR), kept between runs so that its
# dependencies compile once, and away from target/debug, where ganga would find its
# library beside itself.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}

echo "== plugin kit: build ganga"
cargo build --quiet -p ganga-cli
ganga=$root/target/debug/ganga
"$ganga" --version

work=$(mktemp -d "${TMPDIR:-/tmp}/ganga-plugin-kit.XXXXXX")
trap 'rm -rf "$work"' EXIT
plugin=$work/ganga-backend-kitcheck

echo "== plugin kit: generate into $plugin"
cargo xtask new-plugin kitcheck --dir "$plugin"

echo "== plugin kit: build and test it there"
export CARGO_TARGET_DIR=$root/target/plugin-kit
(cd "$plugin" && cargo build && cargo test)

echo "== plugin kit: ganga plugins check"
"$ganga" plugins check --timeout 30 "$CARGO_TARGET_DIR/debug/libganga_backend_kitcheck.so"
