//! Following a new primary (autofollow): rewrite `primary_conninfo` in `postgresql.auto.conf`
//! (PostgreSQL >= 12, making sure `standby.signal` exists so this node can never come up as a
//! primary) or `recovery.conf` (< 12), atomically, then restart PostgreSQL with the configured
//! stop and start commands. Nothing is written or restarted when the conninfo already matches,
//! and nothing at all when the data directory was last a primary's (no `standby.signal`, or no
//! `recovery.conf` before 12): that node may have diverged, and only `pg_rewind` (the rejoin) or
//! a rebuild may bring it back.
//! The text transformation itself is pure and lives in `decide::follow`. Failures are
//! [`ActError`]s of [`Step::StandbySettings`] (the rejoin writes the settings through here too).

use crate::act::command;
use crate::act::{ActError, Step};
use crate::config::Config;
use crate::decide::follow::{new_primary_conninfo, rewrite_recovery_conf};
use crate::statefile::write_atomic_mode;
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

/// [`pg_major`], failing as `step` does.
pub fn major(data_dir: &Path, step: Step) -> Result<u32, ActError> {
    pg_major(data_dir).map_err(|source| ActError::Io {
        step,
        op: "read",
        path: data_dir.join("PG_VERSION"),
        source,
    })
}

/// `pg_data_directory`, which autofollow and the rejoin need.
pub fn data_dir(config: &Config) -> Result<&Path, ActError> {
    config.pg_data_directory.as_deref().ok_or(ActError::NotConfigured {
        keys: &["pg_data_directory"],
    })
}

/// Rewrites the recovery settings for `master`; returns whether a restart is needed.
pub fn rewrite(config: &Config, master: &str, stamp: &str) -> Result<bool, ActError> {
    const STEP: Step = Step::StandbySettings;
    let data_dir = data_dir(config)?;
    let template = config
        .primary_conninfo_template
        .as_ref()
        .ok_or(ActError::NotConfigured {
            keys: &["primary_conninfo_template"],
        })?;
    let master_conn = master_conn(config, master, "follow")?;
    let major = major(data_dir, STEP)?;
    let file = data_dir.join(if major >= 12 {
        "postgresql.auto.conf"
    } else {
        "recovery.conf"
    });
    let old = match std::fs::read_to_string(&file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(source) => {
            return Err(ActError::Io {
                step: STEP,
                op: "read",
                path: file,
                source,
            })
        }
    };
    let conninfo = new_primary_conninfo(template, master_conn);
    if major >= 12 {
        let signal = data_dir.join("standby.signal");
        if !signal.exists() {
            if let Err(source) = std::fs::write(&signal, "") {
                return Err(ActError::Io {
                    step: STEP,
                    op: "create",
                    path: signal,
                    source,
                });
            }
            owned_like(&signal, data_dir);
            tracing::warn!(target: "pglookout", "created {} so PostgreSQL starts as a standby", signal.display());
        }
    }
    match rewrite_recovery_conf(&old, &conninfo, master, stamp, major) {
        None => {
            tracing::info!(target: "pglookout", "already following {master}: {} is up to date", file.display());
            Ok(false)
        }
        Some(text) => {
            let created = old.is_empty() && !file.exists();
            if let Err(source) = write_atomic_mode(&file, text.as_bytes(), 0o600) {
                return Err(ActError::Io {
                    step: STEP,
                    op: "write",
                    path: file,
                    source,
                });
            }
            if created {
                owned_like(&file, data_dir);
            }
            tracing::warn!(target: "pglookout", "pointed {} at {master} ({})", file.display(), conninfo.masked());
            Ok(true)
        }
    }
}

/// Gives a file we created in the data directory to the directory's owner (the server's
/// user, which must read it: a daemon running as root would otherwise leave it root's). Only
/// root can; for anyone else it is ours, the server's user, already.
fn owned_like(path: &Path, data_dir: &Path) {
    use std::os::unix::fs::MetadataExt;
    if let Ok(dir) = std::fs::metadata(data_dir) {
        let _ = std::os::unix::fs::chown(path, Some(dir.uid()), Some(dir.gid()));
    }
}

/// Refuses ([`ActError::FormerPrimary`]) a data directory that must not be made a standby by a
/// plain rewrite and restart: one last a primary's (a promotion removes `standby.signal`, and
/// renames `recovery.conf` to `recovery.done` before 12; a node initialised as a primary never
/// had them). Such a node may hold writes the new primary never received; started as a standby
/// it would serve them as reads, or stop streaming at the fork. The rejoin (`pg_rewind` first)
/// writes the standby settings itself and does not come through here.
pub fn check_last_a_standby(data_dir: &Path) -> Result<(), ActError> {
    let major = major(data_dir, Step::StandbySettings)?;
    let marker = data_dir.join(if major >= 12 { "standby.signal" } else { "recovery.conf" });
    if marker.exists() {
        Ok(())
    } else {
        Err(ActError::FormerPrimary { marker })
    }
}

/// Rewrites and restarts; true when done (or nothing was needed). `restart_anyway` restarts
/// even when the file already points at `master`: a previous attempt rewrote it but its restart
/// failed (the original never retried that restart, because the file then matched).
pub async fn follow(config: &Config, master: &str, restart_anyway: bool) -> bool {
    let stamp = crate::state::iso(&chrono::Utc::now());
    let timeout = Duration::from_secs_f64(config.failover_command_timeout);
    // File I/O in the data directory: off the async threads, with the commands' deadline (a
    // hung mount must not take a runtime thread or hold the follow forever).
    let (owned, target) = (config.clone(), master.to_string());
    let rewritten = tokio::task::spawn_blocking(move || {
        check_last_a_standby(data_dir(&owned)?)?;
        rewrite(&owned, &target, &stamp)
    });
    let rewritten = match tokio::time::timeout(timeout, rewritten).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => Err(ActError::Crashed {
            step: Step::StandbySettings,
            reason: e.to_string(),
        }),
        Err(_) => Err(ActError::Timeout {
            step: Step::StandbySettings,
            after: timeout,
        }),
    };
    match rewritten {
        Err(e) => {
            tracing::error!(target: "pglookout", "cannot follow {master}: {e}");
            false
        }
        Ok(false) if !restart_anyway => true,
        Ok(_) => {
            let stop = command::run("pg_stop_command", &config.pg_stop_command, timeout, &[]).await;
            if !stop.success() {
                tracing::warn!(target: "pglookout", "pg_stop_command {stop}; starting anyway");
            }
            command::run("pg_start_command", &config.pg_start_command, timeout, &[])
                .await
                .success()
        }
    }
}

/// `master`'s entry in `remote_conns`, which must name a host to `purpose` (follow, rewind from).
pub fn master_conn<'a>(
    config: &'a Config,
    master: &str,
    purpose: &'static str,
) -> Result<&'a crate::conninfo::ConnInfo, ActError> {
    let conn = config
        .remote_conns
        .get(master)
        .ok_or_else(|| ActError::UnknownNode { node: master.into() })?;
    if conn.get("host").is_none() {
        return Err(ActError::NoHost {
            node: master.into(),
            purpose,
        });
    }
    Ok(conn)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;

    use crate::act::command::test_script as script;

    fn config(dir: &Path, start_ok: bool) -> Config {
        let log = dir.join("commands.log");
        let stop = script(dir, "stop.sh", &format!("echo stop >> {}", log.display()));
        let start = script(
            dir,
            "start.sh",
            &format!("echo start >> {}\nexit {}", log.display(), if start_ok { 0 } else { 1 }),
        );
        let v = serde_json::json!({
            "remote_conns": {"pg1": "host=old port=5432", "pg2": "host=new.example port=6543", "pg3": "host=me"},
            "own_db": "pg3",
            "autofollow": true,
            "primary_conninfo_template": "user=replicator password=secret host=placeholder sslmode=prefer",
            "pg_data_directory": dir,
            "pg_stop_command": stop,
            "pg_start_command": start,
        });
        Config::from_value(Path::new("t.json"), &v).expect("config").0
    }

    fn commands(dir: &Path) -> String {
        std::fs::read_to_string(dir.join("commands.log")).unwrap_or_default()
    }

    #[tokio::test]
    async fn follow_rewrites_restarts_and_retries_a_failed_restart() {
        let dir = tempfile::tempdir().expect("dir");
        let d = dir.path();
        std::fs::write(d.join("PG_VERSION"), "15\n").expect("version");
        std::fs::write(
            d.join("postgresql.auto.conf"),
            "primary_conninfo = 'host=old port=5432 user=replicator'\n",
        )
        .expect("conf");

        std::fs::set_permissions(d.join("postgresql.auto.conf"), std::fs::Permissions::from_mode(0o600))
            .expect("chmod");
        std::fs::write(d.join("standby.signal"), "").expect("signal");
        // a failing start: rewritten, reported as failed
        assert!(!follow(&config(d, false), "pg2", false).await);
        let conf = std::fs::read_to_string(d.join("postgresql.auto.conf")).expect("conf");
        assert!(
            conf.starts_with("# pglookout updated primary_conninfo for instance pg2"),
            "{conf}"
        );
        assert!(
            conf.contains("host=new.example") && conf.contains("port=6543"),
            "{conf}"
        );
        assert!(conf.contains("recovery_target_timeline = 'latest'"), "{conf}");
        assert!(d.join("standby.signal").exists());
        let mode = std::fs::metadata(d.join("postgresql.auto.conf"))
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(
            mode & 0o777,
            0o600,
            "the file holding the password keeps its private mode"
        );
        assert_eq!(commands(d), "stop\nstart\n");

        // the file now matches: without restart_anyway nothing runs...
        assert!(follow(&config(d, true), "pg2", false).await);
        assert_eq!(commands(d), "stop\nstart\n");
        // ...and the retry after a failed restart restarts anyway
        assert!(follow(&config(d, true), "pg2", true).await);
        assert_eq!(commands(d), "stop\nstart\nstop\nstart\n");
    }

    /// A data directory last a primary's (killed, fenced, or promoted) is never made a
    /// standby by autofollow: nothing written, nothing started.
    #[tokio::test]
    async fn follow_leaves_a_former_primary_alone() {
        for (major, marker) in [("15", "standby.signal"), ("11", "recovery.conf")] {
            let dir = tempfile::tempdir().expect("dir");
            let d = dir.path();
            std::fs::write(d.join("PG_VERSION"), format!("{major}\n")).expect("version");
            let conf = if major == "15" {
                "postgresql.auto.conf"
            } else {
                "recovery.done"
            };
            std::fs::write(d.join(conf), "primary_conninfo = 'host=old port=5432'\n").expect("conf");
            assert!(!follow(&config(d, true), "pg2", false).await, "PG {major}");
            assert!(!follow(&config(d, true), "pg2", true).await, "PG {major}");
            assert!(!d.join(marker).exists(), "PG {major}: {marker} made");
            assert!(!d.join("standby.signal").exists(), "PG {major}");
            assert_eq!(
                std::fs::read_to_string(d.join(conf)).expect("conf"),
                "primary_conninfo = 'host=old port=5432'\n"
            );
            assert_eq!(commands(d), "", "PG {major}: stop or start ran");
            let refused = check_last_a_standby(d).expect_err("a former primary");
            assert!(
                matches!(&refused, ActError::FormerPrimary { marker: m } if m.ends_with(marker)),
                "{refused}"
            );
            assert!(refused.to_string().contains("was last a primary's"), "{refused}");
            std::fs::write(d.join(marker), "").expect("marker");
            check_last_a_standby(d).expect("a standby's");
        }
    }

    /// What failed and where, with the file.
    #[test]
    fn a_failed_rewrite_says_which_file_and_setting() {
        let dir = tempfile::tempdir().expect("dir");
        let d = dir.path();
        let c = config(d, true);
        let e = rewrite(&c, "pg2", "now").expect_err("no PG_VERSION");
        assert!(
            matches!(&e, ActError::Io { step: Step::StandbySettings, op: "read", path, .. } if path.ends_with("PG_VERSION")),
            "{e:?}"
        );
        assert!(
            e.to_string().starts_with(&format!(
                "writing the standby settings: cannot read {}/PG_VERSION: ",
                d.display()
            )),
            "{e}"
        );
        assert_eq!(
            rewrite(&c, "pg9", "now").expect_err("unknown").to_string(),
            "pg9 is not in remote_conns"
        );
        let mut unset = c.clone();
        unset.primary_conninfo_template = None;
        assert_eq!(
            rewrite(&unset, "pg2", "now").expect_err("unset").to_string(),
            "primary_conninfo_template is not set"
        );
        unset.pg_data_directory = None;
        assert_eq!(
            rewrite(&unset, "pg2", "now").expect_err("unset").to_string(),
            "pg_data_directory is not set"
        );
    }

    #[test]
    fn pg_major_reads_pg_version() {
        let dir = tempfile::tempdir().expect("dir");
        std::fs::write(dir.path().join("PG_VERSION"), "9.6\n").expect("w");
        assert_eq!(pg_major(dir.path()).ok(), Some(9));
        std::fs::write(dir.path().join("PG_VERSION"), "junk").expect("w");
        assert!(pg_major(dir.path()).is_err());
    }
}
