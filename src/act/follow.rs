//! Following a new primary (autofollow): rewrite `primary_conninfo` in `postgresql.auto.conf`
//! (PostgreSQL >= 12, making sure `standby.signal` exists so this node can never come up as a
//! primary) or `recovery.conf` (< 12), atomically, then restart PostgreSQL with the configured
//! stop and start commands. Nothing is written or restarted when the conninfo already matches.
//! The text transformation itself is pure and lives in `decide::follow`.

use crate::act::command;
use crate::config::Config;
use crate::decide::follow::{new_primary_conninfo, rewrite_recovery_conf};
use crate::statefile::write_atomic;
use std::path::Path;
use std::time::Duration;

/// Returns the PostgreSQL major version from `PG_VERSION` ("15", "9.6" -> 9).
pub fn pg_major(data_dir: &Path) -> std::io::Result<u32> {
    let text = std::fs::read_to_string(data_dir.join("PG_VERSION"))?;
    text.trim()
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("PG_VERSION holds {:?}", text.trim())))
}

/// Rewrites the recovery settings for `master`; returns whether a restart is needed.
pub fn rewrite(config: &Config, master: &str, stamp: &str) -> Result<bool, String> {
    let data_dir = config
        .pg_data_directory
        .as_deref()
        .ok_or("pg_data_directory is not set")?;
    let template = config
        .primary_conninfo_template
        .as_ref()
        .ok_or("primary_conninfo_template is not set")?;
    let master_conn = config
        .remote_conns
        .get(master)
        .ok_or_else(|| format!("{master} is not in remote_conns"))?;
    if master_conn.get("host").is_none() {
        return Err(format!("remote_conns.{master} has no host to follow"));
    }
    let major = pg_major(data_dir).map_err(|e| format!("{}/PG_VERSION: {e}", data_dir.display()))?;
    let file = data_dir.join(if major >= 12 {
        "postgresql.auto.conf"
    } else {
        "recovery.conf"
    });
    let old = match std::fs::read_to_string(&file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(format!("{}: {e}", file.display())),
    };
    let conninfo = new_primary_conninfo(template, master_conn);
    if major >= 12 {
        let signal = data_dir.join("standby.signal");
        if !signal.exists() {
            std::fs::write(&signal, "").map_err(|e| format!("{}: {e}", signal.display()))?;
            tracing::warn!(target: "pglookout", "created {} so PostgreSQL starts as a standby", signal.display());
        }
    }
    match rewrite_recovery_conf(&old, &conninfo, master, stamp, major) {
        None => {
            tracing::info!(target: "pglookout", "already following {master}: {} is up to date", file.display());
            Ok(false)
        }
        Some(text) => {
            write_atomic(&file, text.as_bytes()).map_err(|e| format!("{}: {e}", file.display()))?;
            tracing::warn!(target: "pglookout", "pointed {} at {master} ({})", file.display(), conninfo.masked());
            Ok(true)
        }
    }
}

/// Rewrites and restarts; true when done (or nothing was needed).
pub async fn follow(config: &Config, master: &str) -> bool {
    let stamp = crate::state::iso(&chrono::Utc::now());
    match rewrite(config, master, &stamp) {
        Err(e) => {
            tracing::error!(target: "pglookout", "cannot follow {master}: {e}");
            false
        }
        Ok(false) => true,
        Ok(true) => {
            let timeout = Duration::from_secs_f64(config.failover_command_timeout);
            let stop = command::run("pg_stop_command", &config.pg_stop_command, timeout, &[]).await;
            let start = command::run("pg_start_command", &config.pg_start_command, timeout, &[]).await;
            if !stop.success() {
                tracing::warn!(target: "pglookout", "pg_stop_command {stop}");
            }
            start.success()
        }
    }
}
