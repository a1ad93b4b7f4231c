#!/usr/bin/env bash
# Wall time of each test of one test target, run one at a time (cargo test on stable has no
# per-test timing): builds the target, lists its tests (those matching the filters, as libtest
# matches them), runs each alone with --exact --test-threads=1 and prints one line per test,
# slowest first, then the sum. Environment as for scripts/test.sh (PGLAB_PG_VERSION picks the
# major, PGLAB_MAX_CLUSTERS the cap).
#
#   scripts/test-times.sh it monitoring:: failover::      # some modules of tests/it
#   PGLAB_PG_VERSION=16 scripts/test-times.sh lab         # the lab's tests on 16
#
# Output (stdout): "<seconds> <ok|FAILED> <test name>" per test, then "total <seconds>".
# A test's output goes to $TEST_TIMES_LOG_DIR/<test name>.log (default: a temp dir, kept only
# for failed tests).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [ $# -lt 1 ]; then
    echo "usage: scripts/test-times.sh TEST_TARGET [FILTER...]" >&2
    exit 2
fi
target=$1
shift
# the package root is the test binary's working directory under cargo test
case $target in
    lab | chaos) pkg_dir=lab ;;
    *) pkg_dir=. ;;
esac
bin=$(cargo test --workspace --test "$target" --no-run 2>&1 |
    sed -n 's/.*Executable .* (\(.*\))$/\1/p' | tail -1)
if [ -z "$bin" ] || [ ! -x "$bin" ]; then
    echo "test-times.sh: no test binary for --test $target" >&2
    exit 1
fi
case $bin in /*) ;; *) bin=$PWD/$bin ;; esac
logs=${TEST_TIMES_LOG_DIR:-$(mktemp -d)}
mkdir -p "$logs"
mapfile -t tests < <(cd "$pkg_dir" && "$bin" --list --format terse "$@" | sed -n 's/: test$//p')
results=()
total=0
failed=0
for t in "${tests[@]}"; do
    start=$(date +%s.%N)
    if (cd "$pkg_dir" && "$bin" --exact --test-threads=1 "$t") >"$logs/$t.log" 2>&1; then
        status=ok
        [ -n "${TEST_TIMES_LOG_DIR:-}" ] || rm -f "$logs/$t.log"
    else
        status=FAILED
        failed=$((failed + 1))
    fi
    secs=$(echo "$(date +%s.%N) - $start" | bc)
    total=$(echo "$total + $secs" | bc)
    printf '%6.1f %s %s\n' "$secs" "$status" "$t" >&2
    results+=("$(printf '%6.1f %s %s' "$secs" "$status" "$t")")
done
printf '%s\n' "${results[@]}" | sort -rn
printf 'total %.1f s, %d tests, %d failed\n' "$total" "${#tests[@]}" "$failed"
if [ "$failed" -gt 0 ]; then
    echo "test-times.sh: logs of the failed tests in $logs" >&2
    exit 1
fi
[ -n "${TEST_TIMES_LOG_DIR:-}" ] || rmdir "$logs" 2>/dev/null || true
