#!/usr/bin/env bash
# shellcheck disable=SC2016 # a literal $ in a grep pattern is intended
# Builds the Debian package with cargo-deb (a release build) and checks it: the files in it, its
# control data and maintainer scripts, then the binaries and the example config from a throwaway
# root made with `dpkg -x`, and the systemd unit with `systemd-analyze verify` when that exists.
# scripts/test.sh runs it when given no test filter; it needs a release build and cargo-deb
# (installed here if missing).
#
#   tests/packaging.sh            build the .deb, then check it
#   tests/packaging.sh FILE.deb   check an existing .deb
#
# Ends with "N passed, N failed" and exits non-zero if any check failed.
set -euo pipefail

cd "$(dirname "$0")/.."

passed=0
failed=0
pass() { passed=$((passed + 1)); echo "ok: $*"; }
fail() { failed=$((failed + 1)); echo "FAILED: $*"; }
check() { # check DESCRIPTION COMMAND...
    local what=$1
    shift
    if "$@"; then pass "$what"; else fail "$what"; fi
}

for tool in dpkg-deb dpkg; do
    command -v "$tool" >/dev/null || { echo "packaging.sh: $tool is needed (Debian or Ubuntu)" >&2; exit 1; }
done

work=$(mktemp -d /tmp/pglookout-packaging.XXXXXX)
daemon_pid=
cleanup() {
    if [ -n "$daemon_pid" ]; then kill "$daemon_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

# ---- build -------------------------------------------------------------------------------
if [ $# -ge 1 ]; then
    deb=$1
else
    if ! command -v cargo-deb >/dev/null; then
        echo "packaging.sh: installing cargo-deb (cargo install cargo-deb --locked; a few minutes)"
        cargo install cargo-deb --locked
    fi
    echo "packaging.sh: cargo deb -p pglookout"
    if ! cargo deb -p pglookout >"$work/build.out" 2>"$work/build.err"; then
        cat "$work/build.err" >&2
        echo "packaging.sh: cargo deb failed" >&2
        exit 1
    fi
    grep -i warning "$work/build.err" || true
    # cargo-deb prints the path of each package it made: the .deb and the -dbgsym .ddeb.
    deb=$(grep '\.deb$' "$work/build.out" | tail -n 1)
fi
[ -f "$deb" ] || { echo "packaging.sh: no package at '$deb'" >&2; exit 1; }
echo "package: $deb ($(du -h "$deb" | cut -f1))"

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)

# ---- contents ----------------------------------------------------------------------------
dpkg-deb -c "$deb" >"$work/contents"
# "-rwxr-xr-x root/root 123 2024-01-01 00:00 ./usr/bin/pglookout" -> "-rwxr-xr-x ./usr/bin/pglookout"
awk '{print $1, $6}' "$work/contents" >"$work/files"

has() { # has MODE PATH
    grep -qxF -- "$1 ./$2" "$work/files"
}
for bin in pglookout pglookout_current_master pglookout-ctl; do
    check "binary /usr/bin/$bin (0755)" has -rwxr-xr-x "usr/bin/$bin"
done
# cargo-deb installs units under /usr/lib; on merged-/usr systems that is /lib/systemd/system.
if has -rw-r--r-- lib/systemd/system/pglookout.service; then
    unit_path=lib/systemd/system/pglookout.service
else
    unit_path=usr/lib/systemd/system/pglookout.service
fi
check "systemd unit /$unit_path" has -rw-r--r-- "$unit_path"
check "example config /etc/pglookout/pglookout.json.example" has -rw-r--r-- etc/pglookout/pglookout.json.example
check "no real config in the package" \
    bash -c "! grep -qE '\./(etc/pglookout|var/lib/pglookout)/pglookout\.json$' '$work/files'"
check "example failover script" has -rw-r--r-- usr/share/doc/pglookout/examples/failover.sh
check "example fence script" has -rw-r--r-- usr/share/doc/pglookout/examples/fence.sh
check "example reinit script" has -rw-r--r-- usr/share/doc/pglookout/examples/reinit.sh
for doc in README.md docs/configuration.md docs/compatibility.md docs/operations.md copyright; do
    check "doc /usr/share/doc/pglookout/$doc" has -rw-r--r-- "usr/share/doc/pglookout/$doc"
done
for rules in pglookout-alerts.yml pglookout-alerts.test.yml; do
    check "alerting rules /usr/share/pglookout/prometheus/$rules" has -rw-r--r-- "usr/share/pglookout/prometheus/$rules"
done

# ---- control data and maintainer scripts -------------------------------------------------
dpkg-deb -I "$deb" >"$work/info"
field() { dpkg-deb -f "$deb" "$1"; }
check "Package: pglookout" test "$(field Package)" = pglookout
check "Version: $version-*" bash -c "[[ '$(field Version)' == '$version'* ]]"
check "Depends found by \$auto (libc6, libssl3)" \
    bash -c "grep -q libc6 <<<'$(field Depends)' && grep -q libssl <<<'$(field Depends)'"
check "the example config is a conffile" \
    bash -c "dpkg-deb -I '$deb' conffiles | grep -qx /etc/pglookout/pglookout.json.example"
dpkg-deb -e "$deb" "$work/control"
for script in postinst prerm postrm; do
    check "maintainer script $script" test -x "$work/control/$script"
done
check "postinst creates /var/lib/pglookout for postgres" \
    grep -q 'chown postgres:postgres "$dir"' "$work/control/postinst"
check "postinst has the systemd snippet (keeps an enabled unit enabled)" \
    grep -q 'deb-systemd-helper --quiet was-enabled pglookout.service' "$work/control/postinst"
check "postinst never starts or restarts the service" \
    bash -c "! grep -q 'deb-systemd-invoke' '$work/control/postinst'"
check "postinst enables the unit only if it was enabled before" \
    bash -c "grep -B2 'deb-systemd-helper enable' '$work/control/postinst' | grep -q was-enabled"
check "prerm stops the service only on remove" \
    grep -q '\[ "\$1" = remove \]' "$work/control/prerm"
for script in postinst prerm postrm; do
    check "$script is valid sh" sh -n "$work/control/$script"
done

# ---- the binaries, from a throwaway root -------------------------------------------------
root="$work/root"
dpkg -x "$deb" "$root"
check "pglookout --version" bash -c "'$root/usr/bin/pglookout' --version | grep -qx 'pglookout $version'"
check "pglookout-ctl --version" bash -c "'$root/usr/bin/pglookout-ctl' --version | grep -qx 'pglookout-ctl $version'"
set +e
"$root/usr/bin/pglookout_current_master" "$work/no-such-config.json" >/dev/null 2>&1
rc=$?
set -e
check "pglookout_current_master: exit 1 for a missing config" test "$rc" = 1

# The example config loads and runs: the same file with every address on loopback (closed
# ports, so nothing answers and nothing fails over), the paths in a temporary directory, and
# failover_command /bin/false.
port=
for candidate in $(shuf -i 20000-40000 -n 20); do
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$candidate") 2>/dev/null; then port=$candidate; break; fi
done
state="$work/state"
mkdir -p "$state"
sed -e 's/10\.0\.0\.[0-9]*/127.0.0.1/g' \
    -e 's/port=5432/port=1/g' \
    -e 's#"http://127\.0\.0\.1:15000"#"http://127.0.0.1:1"#' \
    -e "s#\"http_port\": 15000#\"http_port\": $port#" \
    -e "s#/var/lib/pglookout#$state#g" \
    -e 's#/usr/local/bin/pglookout-failover#/bin/false#' \
    "$root/etc/pglookout/pglookout.json.example" >"$work/pglookout.json"
check "the test config has no outside address left" bash -c "! grep -q '10\.0\.0\.' '$work/pglookout.json'"
(cd "$state" && exec "$root/usr/bin/pglookout" "$work/pglookout.json" >"$work/daemon.log" 2>&1) &
daemon_pid=$!
up=no
for _ in $(seq 1 60); do
    if "$root/usr/bin/pglookout-ctl" status --url "http://127.0.0.1:$port" >"$work/status.txt" 2>&1; then
        up=yes
        break
    fi
    kill -0 "$daemon_pid" 2>/dev/null || break
    sleep 0.5
done
check "the daemon runs with the example config and answers pglookout-ctl status" test "$up" = yes
check "the state file is written where the config says" bash -c "sleep 1; test -s '$state/state.json'"
kill -HUP "$daemon_pid" 2>/dev/null || true
sleep 1
check "the daemon survives SIGHUP (reload)" kill -0 "$daemon_pid" 2>/dev/null
kill -TERM "$daemon_pid" 2>/dev/null || true
set +e
wait "$daemon_pid"
rc=$?
set -e
daemon_pid=
check "the daemon exits 0 on SIGTERM" test "$rc" = 0
if [ "$up" != yes ] || [ "$rc" != 0 ]; then
    echo "--- daemon log"
    tail -n 30 "$work/daemon.log"
fi

# The installed rules are the ones tested, and their tests run where they are installed.
if command -v promtool >/dev/null; then
    check "the installed alerting rules pass promtool test rules" \
        bash -c "cd '$root/usr/share/pglookout/prometheus' && promtool test rules pglookout-alerts.test.yml >/dev/null"
else
    echo "skipped: promtool test rules on the installed rules (promtool is not installed)"
fi

# ---- the systemd unit --------------------------------------------------------------------
unit="$root/$unit_path"
check "unit: Type=notify" grep -qx 'Type=notify' "$unit"
check "unit: ExecStart" grep -qx 'ExecStart=/usr/bin/pglookout /var/lib/pglookout/pglookout.json' "$unit"
check "unit: ExecReload" grep -qxF 'ExecReload=/bin/kill -HUP $MAINPID' "$unit"
check "unit: User=postgres, Group=postgres" bash -c "grep -qx User=postgres '$unit' && grep -qx Group=postgres '$unit'"
check "unit: Restart=always" grep -qx 'Restart=always' "$unit"
check "unit: WorkingDirectory=/var/lib/pglookout" grep -qx 'WorkingDirectory=/var/lib/pglookout' "$unit"
check "unit: no NoNewPrivileges= or PrivateTmp= (they break sudo and the /tmp defaults)" \
    bash -c "! grep -qE '^(NoNewPrivileges|PrivateTmp|PrivateDevices|CapabilityBoundingSet|SystemCallFilter)=' '$unit'"
if command -v systemd-analyze >/dev/null; then
    # Verify a copy whose ExecStart points into the throwaway root (verify checks that the
    # program exists). verify exits 0 even for unknown keys, so any output is a failure.
    mkdir -p "$work/unit"
    sed "s#^ExecStart=/usr/bin/pglookout#ExecStart=$root/usr/bin/pglookout#" "$unit" >"$work/unit/pglookout.service"
    set +e
    (cd "$work/unit" && systemd-analyze verify "$work/unit/pglookout.service") >"$work/verify.out" 2>&1
    rc=$?
    set -e
    if [ "$rc" = 0 ] && [ ! -s "$work/verify.out" ]; then
        pass "systemd-analyze verify"
    else
        cat "$work/verify.out"
        fail "systemd-analyze verify (exit $rc)"
    fi
else
    echo "skipped: systemd-analyze verify (systemd-analyze is not installed)"
fi

echo
echo "packaging: $passed passed, $failed failed"
[ "$failed" = 0 ]
