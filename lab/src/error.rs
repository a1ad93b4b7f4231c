//! Typed errors of the lab. The public API returns `anyhow::Result` (it is test tooling), but the
//! conditions a caller may want to recognise (missing binaries, missing `postgres` user, a deadline)
//! are `LabError` values that can be recovered with `anyhow::Error::downcast_ref`.

use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error(
        "PostgreSQL server binaries (initdb, postgres, pg_ctl) not found in {} (install postgresql-15, set PGLAB_BIN_DIR, or set PGLAB_PG_VERSION to fetch a build)",
        .0.display()
    )]
    BinariesNotFound(PathBuf),

    #[error(
        "running as root but the `postgres` OS user does not exist: PostgreSQL refuses to run as \
         root, so pglab runs the servers as `postgres` (create that user or run as a non-root user)"
    )]
    NoPostgresUser,

    #[error("timed out after {after:?} waiting for {what}{}", last_error_suffix(.last_error))]
    Timeout {
        what: String,
        after: Duration,
        last_error: Option<String>,
    },
}

fn last_error_suffix(last: &Option<String>) -> String {
    match last {
        Some(e) => format!(" (last error: {e})"),
        None => String::new(),
    }
}
