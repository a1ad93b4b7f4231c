#!/bin/sh
# Example fence_command for pglookout: stop the local primary taking writes, in a way that a
# restart does not undo.
#
# Install:  install -m 0755 /usr/share/doc/pglookout/examples/fence.sh /usr/local/bin/pglookout-fence
# Config:   "fence_command": "/usr/local/bin/pglookout-fence",
#           "pg_data_directory": "/var/lib/postgresql/15/main"
#
# How pglookout runs it: on the primary's own host, when that primary lost its lease or another
# node was promoted (docs/safety.md), as the service's user, without a shell, with these
# variables set:
#   PGLOOKOUT_OWN_NODE        this node's name (own_db)
#   PGLOOKOUT_NEW_MASTER      the node that replaced it, when known (may be empty)
#   PGLOOKOUT_REASON          why it fences
#   PGLOOKOUT_DATA_DIRECTORY  pg_data_directory (empty when not set); the first argument wins
# It must stop writes within fence_command_budget (1 s by default) and is killed after
# fence_command_timeout. Exit 0 = fenced; pglookout checks it: a later poll that still finds a
# primary here runs the fence again and raises the fence_failed alert.
#
# Why the marker first: a supervisor (systemd Restart=, a container restart policy) may start
# PostgreSQL again a second after the kill. With standby.signal (12+) or a recovery.conf with
# standby_mode (before 12) in the data directory it comes back in recovery, read-only, instead
# of as a second writable primary. pglookout then treats it as the old primary still: with
# rejoin_old_master it runs pg_rewind and makes it a standby of the new primary; without,
# autofollow leaves it alone until `pglookout-ctl rejoin` or a rebuild. To bring the same node
# back as the primary on purpose, remove the marker before starting it.

set -eu

PGDATA=${1:-${PGLOOKOUT_DATA_DIRECTORY:-}}

log() { echo "fence: $*"; }
fail() { echo "fence: ERROR: $*" >&2; exit 1; }

[ -n "$PGDATA" ] || fail "no data directory: set pg_data_directory or pass it as the argument"
[ -f "$PGDATA/PG_VERSION" ] || fail "$PGDATA is not a PostgreSQL data directory"

# 1. The marker, written before anything is stopped, and synced: a restart reads it.
major=$(cut -d . -f 1 "$PGDATA/PG_VERSION")
if [ "$major" -ge 12 ]; then
    marker="$PGDATA/standby.signal"
    : >"$marker"
else
    marker="$PGDATA/recovery.conf"
    if ! grep -Eq "^[[:space:]]*standby_mode[[:space:]]*=[[:space:]]*'?on" "$marker" 2>/dev/null; then
        printf "standby_mode = 'on'\n" >>"$marker"
    fi
fi
sync "$marker" 2>/dev/null || sync
log "wrote $marker: a restart brings this node back read-only"

# 2. Stop writes now: freeze the postmaster (no new backends), then kill it and every child.
pid=$(head -n 1 "$PGDATA/postmaster.pid" 2>/dev/null || true)
if [ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null; then
    log "PostgreSQL is not running in $PGDATA"
    exit 0
fi
# After a kill -9 the file stays, and its pid may have been reused by another process: the
# postmaster's working directory is its data directory. (Unreadable, e.g. another user's: kill.)
cwd=$(readlink -f "/proc/$pid/cwd" 2>/dev/null || true)
if [ -n "$cwd" ] && [ "$cwd" != "$(readlink -f "$PGDATA")" ]; then
    log "postmaster.pid names $pid, which runs in $cwd, not $PGDATA (a stale file): PostgreSQL is not running"
    exit 0
fi
kill -STOP "$pid" 2>/dev/null || true
children=$(pgrep -P "$pid" || true)
# shellcheck disable=SC2086
kill -KILL $children "$pid" 2>/dev/null || true
log "killed the postmaster ($pid) and its children"
exit 0
