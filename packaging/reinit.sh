#!/bin/sh
# Example reinit_command for pglookout: rebuild this node from the primary with pg_basebackup.
#
# Install:  install -m 0755 /usr/share/doc/pglookout/examples/reinit.sh /usr/local/bin/pglookout-reinit
# Config:   "reinit_command": "/usr/local/bin/pglookout-reinit",
#           "reinit_timeout": 3600,
#           "pg_data_directory": "/var/lib/postgresql/15/main",
#           "primary_conninfo_template": "user=replicator password=... sslmode=require"
#
# How pglookout runs it: on the node's own host, with the node stopped, when rejoin_old_master
# cannot rewind it (pg_rewind failed or cannot run) or on `pglookout-ctl reinit`; as the
# service's user, without a shell, with these variables set:
#   PGLOOKOUT_DATA_DIRECTORY   an empty side directory (<pg_data_directory>.reinit-new, mode
#                              0700, owned like the data directory) to build into: never the
#                              data directory itself
#   PGLOOKOUT_SOURCE_CONNINFO  primary_conninfo_template with the primary's host and port,
#                              without the password and application_name
#   PGPASSWORD                 the template's password, when it has one (libpq reads it)
#   PGLOOKOUT_MASTER           the primary's node name
# Exit 0 = a complete copy is in PGLOOKOUT_DATA_DIRECTORY. pglookout then checks it (a data
# directory of the same major, owned like the old one), copies the node's own postgresql.conf,
# postgresql.auto.conf, pg_hba.conf and pg_ident.conf over the primary's, swaps it in (the old
# directory waits in <pg_data_directory>.reinit-old), writes the standby settings, starts the
# node and removes the old directory only once the node streams. It is killed after
# reinit_timeout; on any failure the old directory is put back, the node stays stopped and the
# reinit_failed alert file holds the reason.
#
# The copy must belong to the server's user: run this as that user, or as root through
# runuser/setpriv as below. pgBackRest users: `pgbackrest --stanza=... --delta restore
# --pg1-path="$PGLOOKOUT_DATA_DIRECTORY" --type=standby` does the same job.

set -eu

: "${PGLOOKOUT_DATA_DIRECTORY:?not run by pglookout: PGLOOKOUT_DATA_DIRECTORY is not set}"
: "${PGLOOKOUT_SOURCE_CONNINFO:?not run by pglookout: PGLOOKOUT_SOURCE_CONNINFO is not set}"

PG_BASEBACKUP=${PG_BASEBACKUP:-pg_basebackup}
RUN_AS=${PGLOOKOUT_REINIT_USER:-postgres}

# --checkpoint=fast: do not wait for the primary's next timed checkpoint;
# --wal-method=stream: the copy holds every WAL segment it needs to start.
set -- "$PG_BASEBACKUP" --pgdata="$PGLOOKOUT_DATA_DIRECTORY" --dbname="$PGLOOKOUT_SOURCE_CONNINFO" \
    --checkpoint=fast --wal-method=stream --no-password
if [ "$(id -u)" -eq 0 ]; then
    exec runuser -u "$RUN_AS" -- "$@"
fi
exec "$@"
