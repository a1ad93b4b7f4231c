#!/usr/bin/env bash
# The project's one test command: dependencies, a full build (the lab tests run the pglookout
# binaries), then every test in the workspace. Exits with the test status.
# Extra arguments are passed to the test binaries (e.g. a test name filter).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/deps.sh
cargo build --all-targets
export PGLAB_MAX_CLUSTERS="${PGLAB_MAX_CLUSTERS:-2}"
exec cargo test --workspace -- --test-threads=2 "$@"
