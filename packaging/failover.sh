#!/bin/sh
# Example failover_command for pglookout: fence the old primary, promote the local standby,
# then send clients to it. Edit the settings and the two marked functions for your setup.
#
# Install:  install -m 0755 /usr/share/doc/pglookout/examples/failover.sh /usr/local/bin/pglookout-failover
# Config:   "failover_command": "/usr/local/bin/pglookout-failover"
# Try it:   sudo -u postgres PGLOOKOUT_OLD_MASTER=pg1 /usr/local/bin/pglookout-failover --dry-run
#
# How pglookout runs it: on the standby that decided to become the new primary, as the service's
# user (postgres with the packaged unit), without a shell (the command line is split on
# whitespace), with these variables set:
#   PGLOOKOUT_OWN_NODE    this node's name (own_db)
#   PGLOOKOUT_OLD_MASTER  the name of the primary that was lost (may be empty)
#   PGLOOKOUT_REASON      why it decided to fail over
# Names are the keys of remote_conns, not necessarily host names.
# Its output is logged line by line. Exit 0 = done. Any other exit status is logged as a failure
# and the command is run again later (after 5 s, doubling up to 300 s), so every step must be safe
# to repeat: a node that is already a primary is not promoted again. pglookout kills the script's
# whole process group after failover_command_timeout (default 120 s).

set -eu

# ---- settings (a drop-in's Environment= can override them) ------------------------------------
PGDATA=${PGDATA:-/var/lib/postgresql/15/main}
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
# How to promote: "pg_ctl" (pg_ctl promote) or "sql" (SELECT pg_promote(), PostgreSQL 12+; the
# connecting role must be a superuser or have EXECUTE on pg_promote).
PROMOTE_WITH=${PROMOTE_WITH:-pg_ctl}
# The local server, for the checks and for PROMOTE_WITH=sql: the Unix socket, as postgres.
PGCONN=${PGCONN:-host=/var/run/postgresql port=5432 dbname=postgres}
# Seconds to wait for the promotion to finish.
PROMOTE_WAIT=${PROMOTE_WAIT:-60}
# Fencing: a command that makes sure the old primary cannot accept writes any more (see
# fence_old_primary below). Without one the script refuses to promote, unless
# ALLOW_NO_FENCE=yes says that the old primary is known to be gone.
FENCE_COMMAND=${FENCE_COMMAND:-}
ALLOW_NO_FENCE=${ALLOW_NO_FENCE:-no}
LOCK=${LOCK:-/var/lib/pglookout/failover.lock}

DRY_RUN=no
[ "${1:-}" = "--dry-run" ] && DRY_RUN=yes

log() { echo "failover: $*"; }
fail() { echo "failover: ERROR: $*" >&2; exit 1; }
run() {
    log "+ $*"
    [ "$DRY_RUN" = yes ] || "$@"
}

# pg_ctl must run as the owner of the data directory.
as_postgres() {
    if [ "$(id -un)" = postgres ]; then "$@"; else sudo -n -u postgres "$@"; fi
}

sql() {
    as_postgres "$PGBIN/psql" -X -A -t -q -v ON_ERROR_STOP=1 -d "$PGCONN" -c "$1"
}

# ---- 1. Fence the old primary --------------------------------------------------------------
# The old primary may only be cut off from this node, not dead. If clients can still reach it
# and it still accepts writes after this node is promoted, the cluster has two primaries and
# their data diverge (split brain). pglookout does not fence for you: do it here, BEFORE the
# promotion, and fail (exit non-zero) if you cannot be sure it worked. Common ways:
#   - power it off through its BMC/IPMI or your cloud provider's API (STONITH);
#   - stop PostgreSQL there:  ssh -o BatchMode=yes -o ConnectTimeout=5 HOST sudo -n systemctl stop postgresql@15-main
#   - take the service address away from it (keepalived, `ip addr del`, cloud API);
#   - block it at the connection pooler or the firewall.
# A command that only works when the old primary's host is up (like the ssh one) can't fence a
# host that is unreachable: combine it with a method that works when it is down, or accept that
# risk knowingly.
old_primary_host() {
    # Map pglookout node names to hosts, if they differ.
    case "$1" in
        # pg1) echo 10.0.0.11 ;;
        *) echo "$1" ;;
    esac
}

fence_old_primary() {
    old=${PGLOOKOUT_OLD_MASTER:-}
    if [ -z "$old" ]; then
        log "no old primary was named: nothing to fence"
        return 0
    fi
    if [ -z "$FENCE_COMMAND" ]; then
        [ "$ALLOW_NO_FENCE" = yes ] || fail "no FENCE_COMMAND set: refusing to promote while $old may still accept writes (set ALLOW_NO_FENCE=yes if it is surely gone)"
        log "WARNING: not fencing $old (ALLOW_NO_FENCE=yes)"
        return 0
    fi
    OLD_PRIMARY_HOST=$(old_primary_host "$old")
    export OLD_PRIMARY_HOST
    log "fencing $old ($OLD_PRIMARY_HOST)"
    # FENCE_COMMAND is a shell command line; it sees $OLD_PRIMARY_HOST and $PGLOOKOUT_OLD_MASTER.
    run timeout 30 sh -c "$FENCE_COMMAND" || fail "fencing $old failed: not promoting"
}

# ---- 3. Send the clients here ---------------------------------------------------------------
# After the promotion: move the service IP to this host, repoint pgbouncer or DNS, tell your
# application. Leave it empty if clients find the primary themselves (for example through an
# HAProxy health check on pglookout's GET /primary).
redirect_clients() {
    : # e.g. run sudo -n /usr/local/sbin/move-db-vip-here
}

# ---- main ------------------------------------------------------------------------------------
log "node ${PGLOOKOUT_OWN_NODE:-?} taking over from ${PGLOOKOUT_OLD_MASTER:-?}: ${PGLOOKOUT_REASON:-no reason given}"

# One run at a time (pglookout never overlaps two runs, but a restarted daemon or a person might).
if [ "$DRY_RUN" = no ]; then
    exec 9>>"$LOCK" || fail "cannot open the lock file $LOCK"
    flock -n 9 || fail "another failover run holds $LOCK"
fi

in_recovery=$(sql "SELECT pg_is_in_recovery()") || fail "cannot query the local PostgreSQL ($PGCONN)"
if [ "$in_recovery" = f ]; then
    log "the local server is already a primary: nothing to promote"
    redirect_clients
    exit 0
fi

fence_old_primary

# ---- 2. Promote ------------------------------------------------------------------------------
case "$PROMOTE_WITH" in
    pg_ctl)
        run as_postgres "$PGBIN/pg_ctl" promote -D "$PGDATA" -w -t "$PROMOTE_WAIT" ||
            fail "pg_ctl promote failed"
        ;;
    sql)
        log "+ SELECT pg_promote(true, $PROMOTE_WAIT)"
        if [ "$DRY_RUN" = no ]; then
            promoted=$(sql "SELECT pg_promote(true, $PROMOTE_WAIT)") || fail "pg_promote() failed"
            [ "$promoted" = t ] || fail "pg_promote() did not finish within $PROMOTE_WAIT s"
        fi
        ;;
    *)
        fail "PROMOTE_WITH must be pg_ctl or sql, not '$PROMOTE_WITH'"
        ;;
esac

if [ "$DRY_RUN" = no ]; then
    [ "$(sql "SELECT pg_is_in_recovery()")" = f ] || fail "the server is still in recovery after the promotion"
fi
log "promoted"

redirect_clients
log "done"
