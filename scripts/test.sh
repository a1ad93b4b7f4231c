#!/usr/bin/env bash
# The project's one test command: dependencies, a full build (the lab tests run the pglookout
# binaries), every test in the workspace, then the Debian package check (not when a test
# filter is given). Exits non-zero when anything fails.
# Extra arguments are passed to the test binaries (e.g. a test name filter).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/deps.sh
cargo build --all-targets
export PGLAB_MAX_CLUSTERS="${PGLAB_MAX_CLUSTERS:-2}"
cargo test --workspace -- --test-threads=2 "$@"
# The Debian package: built with cargo-deb (installed when missing) and checked.
if [ $# -eq 0 ]; then
    tests/packaging.sh
fi
