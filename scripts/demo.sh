#!/usr/bin/env bash
# The demo: a local primary and two standbys with one pglookout each and an observer; kill -9 of
# the primary; the failover and the follow as they happen; the timeline; then everything is
# removed. Extra arguments go to `pglab demo` (e.g. --poll-interval 1 --failover-after 10).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/deps.sh --demo
cargo build --bins --workspace
exec target/debug/pglab demo --poll-interval 0.5 --failover-after 5 "$@"
