//! Bringing the old primary back as a standby of the new one (`rejoin_old_master`, the
//! decision's [`crate::decide::Action::RejoinNewPrimary`], and `pglookout-ctl rejoin`):
//!
//! 1. `pg_stop_command` (the node may already be stopped or fenced); it must then be down.
//! 2. `pg_controldata`: the cluster state, the timeline, `wal_log_hints` and checksums.
//! 3. A `CHECKPOINT` on the new primary (so that its control file shows its new timeline to
//!    `pg_rewind`) and its timeline.
//! 4. Always (equal timeline numbers do not show equal histories): `pg_rewind --target-pgdata --source-server` (the password goes
//!    in `PGPASSWORD`, never on the command line). It needs `wal_log_hints` or data checksums;
//!    a node that did not shut down cleanly is crash-recovered first: by `pg_rewind` itself
//!    from PostgreSQL 13, by a start and stop as a standby before. `pg_rewind` copies the new
//!    primary's configuration files: the node's own are put back afterwards.
//! 5. The standby settings of that major, as autofollow writes them (`standby.signal` and
//!    `postgresql.auto.conf` from 12, `recovery.conf` with `standby_mode = 'on'` before), and
//!    a check that they are in place: the node is never started without them.
//! 6. `pg_start_command`.
//!
//! The whole rejoin holds the lock `act::reinit` takes (`<pg_data_directory>.reinit-lock`), so
//! it never overlaps a reinit or another rejoin (`pglookout-ctl`'s and the daemon's). With
//! `reinit_command` set, a rejoin that cannot rewind (no `wal_log_hints` or checksums,
//! `pg_controldata`, the crash recovery or `pg_rewind` failing) rebuilds the stopped node
//! instead (`act::reinit`).
//!
//! Every step has a deadline. On any failure the node is stopped (again) and left stopped, and
//! `<alert_file_dir>/rejoin_failed` holds the reason: an [`ActError`] naming the [`Step`] and
//! the failed command's output. Passwords never reach a log line.

use crate::act::command;
use crate::act::{ActError, Step};
use crate::config::Config;
use crate::conninfo::ConnInfo;
use crate::decide::follow::new_primary_conninfo;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The configuration files `pg_rewind` overwrites with the new primary's, which the node keeps.
pub const OWN_CONFIG_FILES: [&str; 4] = [
    "postgresql.conf",
    "postgresql.auto.conf",
    "pg_hba.conf",
    "pg_ident.conf",
];

/// What `pg_controldata` tells about a data directory.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ControlData {
    /// "Database cluster state", e.g. `shut down`, `in production`.
    pub state: String,
    /// "Latest checkpoint's TimeLineID".
    pub timeline: Option<u32>,
    /// "wal_log_hints setting" is `on`.
    pub wal_log_hints: bool,
    /// "Data page checksum version" is not 0.
    pub checksums: bool,
}

impl ControlData {
    /// Reads `pg_controldata` output (in the C locale).
    pub fn parse(text: &str) -> ControlData {
        let mut out = ControlData::default();
        for line in text.lines() {
            let Some((key, value)) = line.split_once(':') else {
                continue;
            };
            let value = value.trim();
            match key.trim() {
                "Database cluster state" => out.state = value.to_string(),
                "Latest checkpoint's TimeLineID" => out.timeline = value.parse().ok(),
                "wal_log_hints setting" => out.wal_log_hints = value == "on",
                "Data page checksum version" => out.checksums = value.parse::<u32>().is_ok_and(|v| v != 0),
                _ => {}
            }
        }
        out
    }

    /// Shut down cleanly, as `pg_rewind` wants its target.
    pub fn clean(&self) -> bool {
        self.state == "shut down" || self.state == "shut down in recovery"
    }
}

/// The conninfo `pg_rewind` connects with to `master`: `rejoin_source_conninfo_template` (else
/// `primary_conninfo_template`) with the master's host and port, `dbname=postgres` when it
/// names none; and the password, apart (it goes in `PGPASSWORD`).
pub fn source_conninfo(config: &Config, master: &str) -> Result<(ConnInfo, Option<String>), ActError> {
    let (key, template) = match (
        &config.rejoin_source_conninfo_template,
        &config.primary_conninfo_template,
    ) {
        (Some(t), _) => ("rejoin_source_conninfo_template", t),
        (None, Some(t)) => ("primary_conninfo_template", t),
        (None, None) => {
            return Err(ActError::NotConfigured {
                keys: &["rejoin_source_conninfo_template", "primary_conninfo_template"],
            })
        }
    };
    let master_conn = super::follow::master_conn(config, master, "rewind from")?;
    let mut conninfo = new_primary_conninfo(template, master_conn);
    if conninfo.get("sslpassword").is_some() {
        return Err(ActError::SslPassword { key });
    }
    // a replication connection cannot run pg_rewind's queries
    conninfo.remove("replication");
    if conninfo.get("dbname").is_none() {
        conninfo.set("dbname", "postgres");
    }
    let password = conninfo.remove("password");
    Ok((conninfo, password))
}

/// Whether the postmaster named in `<data_dir>/postmaster.pid` is alive (a zombie is not).
pub fn postmaster_running(data_dir: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(data_dir.join("postmaster.pid")) else {
        return false;
    };
    let Some(pid) = text.lines().next().and_then(|l| l.trim().parse::<i32>().ok()) else {
        return false;
    };
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // the state follows the last ')' (the command name may hold any byte)
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok(),
    }
}

/// Checks that the node cannot start as a primary: `standby.signal` (12 on) or a
/// `recovery.conf` whose last `standby_mode` says on (before 12).
pub fn standby_settings_in_place(data_dir: &Path, major: u32) -> Result<(), ActError> {
    if major >= 12 {
        let signal = data_dir.join("standby.signal");
        return if signal.exists() {
            Ok(())
        } else {
            Err(ActError::NoStandbySignal { path: signal })
        };
    }
    let file = data_dir.join("recovery.conf");
    let text = match std::fs::read_to_string(&file) {
        Ok(text) => text,
        Err(source) => {
            return Err(ActError::Io {
                step: Step::StandbySettings,
                op: "read",
                path: file,
                source,
            })
        }
    };
    let last = text
        .lines()
        .map(str::trim)
        .rfind(|l| l.starts_with("standby_mode"))
        .and_then(|l| l.split_once('='))
        .map(|(_, v)| v.trim().trim_matches('\'').to_ascii_lowercase());
    match last.as_deref() {
        Some("on" | "true" | "yes" | "1") => Ok(()),
        other => Err(ActError::StandbyModeOff {
            path: file,
            value: other.map(String::from),
        }),
    }
}

/// The steps, in order; see the module doc.
struct Rejoin<'a> {
    config: &'a Config,
    master: &'a str,
    data_dir: PathBuf,
    step: Duration,
}

impl Rejoin<'_> {
    /// Runs `pg_stop_command`; PostgreSQL must be down afterwards (else fails as `step`).
    async fn stop(&self, step: Step) -> Result<(), ActError> {
        let stop = command::execute("pg_stop_command", &self.config.pg_stop_command, &[], self.step, &[]).await;
        if postmaster_running(&self.data_dir) {
            return Err(ActError::StillRunning {
                step,
                data_dir: self.data_dir.clone(),
                stop: Box::new(stop),
            });
        }
        Ok(())
    }

    async fn controldata(&self) -> Result<ControlData, ActError> {
        let dir = self.data_dir.to_string_lossy().into_owned();
        let text = command::output(
            "pg_controldata_command",
            &self.config.pg_controldata_command,
            &["-D", &dir],
            self.step,
            &[("LC_ALL", "C"), ("LANG", "C")],
        )
        .await
        .map_err(|ran| ActError::Command {
            step: Step::ControlData,
            ran: Box::new(ran),
        })?;
        let data = ControlData::parse(&text);
        if data.state.is_empty() {
            return Err(ActError::NoClusterState {
                data_dir: self.data_dir.clone(),
            });
        }
        Ok(data)
    }

    /// A `CHECKPOINT` on the new primary (a promotion's checkpoint may still be running, and
    /// until it ends the control file `pg_rewind` reads names the old timeline, which makes it
    /// find "no rewind required"), then the new primary's timeline. Failures here are not fatal
    /// (the rewind then runs and `pg_rewind` decides).
    async fn source_timeline(&self, source: &ConnInfo, password: Option<&str>) -> Option<u32> {
        let mut conninfo = source.clone();
        if let Some(p) = password {
            conninfo.set("password", p);
        }
        // only logged: a plain boxed error is enough
        let ask = async {
            let config = conninfo.pg_config()?;
            let tls = conninfo.tls()?;
            let (client, connection) = config.connect(tls).await?;
            let task = tokio::spawn(connection);
            if let Err(e) = client.simple_query("CHECKPOINT").await {
                tracing::warn!(target: "pglookout", "rejoin: CHECKPOINT on {} failed: {e}", self.master);
            }
            let rows = client
                .query_one("SELECT timeline_id FROM pg_control_checkpoint()", &[])
                .await;
            task.abort();
            let t: i32 = rows?.try_get(0)?;
            Ok::<u32, Box<dyn std::error::Error + Send + Sync>>(u32::try_from(t)?)
        };
        match tokio::time::timeout(self.step, ask).await {
            Ok(Ok(t)) => Some(t),
            Ok(Err(e)) => {
                tracing::warn!(target: "pglookout", "rejoin: cannot read the timeline of {} ({}): {e}", self.master, source.masked());
                None
            }
            Err(_) => {
                tracing::warn!(target: "pglookout", "rejoin: {} did not answer within {} s", self.master, self.step.as_secs());
                None
            }
        }
    }

    /// Off the async threads, with the step's deadline (a hung mount must not hold a runtime
    /// thread), as autofollow does.
    async fn write_standby_settings(&self) -> Result<(), ActError> {
        const STEP: Step = Step::StandbySettings;
        let stamp = crate::state::iso(&chrono::Utc::now());
        let (config, master, data_dir) = (self.config.clone(), self.master.to_string(), self.data_dir.clone());
        let write = tokio::task::spawn_blocking(move || {
            crate::act::follow::rewrite(&config, &master, &stamp)?;
            let major = crate::act::follow::major(&data_dir, STEP)?;
            standby_settings_in_place(&data_dir, major)
        });
        match tokio::time::timeout(self.step, write).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => Err(ActError::Crashed {
                step: STEP,
                reason: e.to_string(),
            }),
            Err(_) => Err(ActError::Timeout {
                step: STEP,
                after: self.step,
            }),
        }
    }

    /// Runs `pg_start_command`, failing as `step`.
    async fn start(&self, step: Step) -> Result<(), ActError> {
        let ran = command::execute("pg_start_command", &self.config.pg_start_command, &[], self.step, &[]).await;
        if ran.success() {
            Ok(())
        } else {
            Err(ActError::Command {
                step,
                ran: Box::new(ran),
            })
        }
    }

    /// Before PostgreSQL 13 `pg_rewind` refuses a target that did not shut down cleanly:
    /// start it as a standby (never a primary: the settings are checked first) to run crash
    /// recovery, and stop it again.
    async fn crash_recovery_as_standby(&self) -> Result<ControlData, ActError> {
        tracing::warn!(target: "pglookout", "rejoin: {} did not shut down cleanly; starting it as a standby for crash recovery before pg_rewind", self.data_dir.display());
        self.write_standby_settings().await?;
        self.start(Step::CrashRecovery).await?;
        self.stop(Step::CrashRecovery).await?;
        let data = self.controldata().await?;
        if !data.clean() {
            return Err(ActError::NotShutDown { state: data.state });
        }
        Ok(data)
    }

    async fn rewind(&self, source: &ConnInfo, password: Option<String>) -> Result<(), ActError> {
        const STEP: Step = Step::Rewind;
        let mut saved = Vec::new();
        for name in OWN_CONFIG_FILES {
            let path = self.data_dir.join(name);
            match std::fs::read(&path) {
                Ok(bytes) => saved.push((path, bytes)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(ActError::Io {
                        step: STEP,
                        op: "read",
                        path,
                        source,
                    })
                }
            }
        }
        let args = vec![
            format!("--target-pgdata={}", self.data_dir.display()),
            format!("--source-server={}", source.render()),
        ];
        let env: Vec<(&str, String)> = password.into_iter().map(|p| ("PGPASSWORD", p)).collect();
        let timeout = Duration::from_secs_f64(self.config.pg_rewind_timeout);
        let ran = command::execute(
            "pg_rewind_command",
            &self.config.pg_rewind_command,
            &args,
            timeout,
            &env,
        )
        .await;
        // whatever happened, the node keeps its own configuration
        for (path, bytes) in saved {
            if let Err(source) = crate::statefile::write_atomic_mode(&path, &bytes, 0o600) {
                return Err(ActError::Io {
                    step: STEP,
                    op: "restore",
                    path,
                    source,
                });
            }
        }
        if ran.success() {
            Ok(())
        } else {
            Err(ActError::Command {
                step: STEP,
                ran: Box::new(ran),
            })
        }
    }

    async fn run(&self) -> Result<(), ActError> {
        if postmaster_running(&self.data_dir) {
            self.stop(Step::Stop).await?;
        }
        let mut data = self.controldata().await?;
        let (source, password) = source_conninfo(self.config, self.master)?;
        let source_timeline = self.source_timeline(&source, password.as_deref()).await;
        // Only a node already behind on an older timeline of the same history could skip the
        // rewind, and the timeline numbers cannot show that: two promotions from timeline n
        // both end on n + 1 with different histories. So pg_rewind always runs; it reads the
        // timeline histories, finds the fork point, and changes nothing when there is nothing
        // to rewind.
        if data.timeline.is_some() && data.timeline == source_timeline {
            tracing::warn!(target: "pglookout", "rejoin: {} and {} are both on timeline {:?}: their histories may still differ (two promotions from one timeline); pg_rewind decides from the fork point",
                self.data_dir.display(), self.master, data.timeline);
        }
        if !data.wal_log_hints && !data.checksums {
            return Err(ActError::NoRewindSupport {
                data_dir: self.data_dir.clone(),
                master: self.master.to_string(),
            });
        }
        let major = crate::act::follow::major(&self.data_dir, Step::Rewind)?;
        if !data.clean() && major < 13 {
            data = self.crash_recovery_as_standby().await?;
        }
        tracing::warn!(target: "pglookout", "rejoin: rewinding {} (timeline {:?}, {}) from {} (timeline {source_timeline:?}, {})",
            self.data_dir.display(), data.timeline, data.state, self.master, source.masked());
        self.rewind(&source, password).await?;
        self.write_standby_settings().await?;
        self.start(Step::Start).await
    }
}

/// Whether a failed rejoin leaves a rebuild (`reinit_command`) as the way back: the node was
/// stopped, and the rewind could not run or failed (not a setting or a node that is missing,
/// which a rebuild would trip on as well).
fn rebuild_instead(e: &ActError) -> bool {
    match e {
        ActError::NoRewindSupport { .. } | ActError::NoClusterState { .. } | ActError::NotShutDown { .. } => true,
        ActError::Command { step, .. } => matches!(step, Step::ControlData | Step::CrashRecovery | Step::Rewind),
        _ => false,
    }
}

/// Makes our node a standby of `master` (see the module doc). On failure the node is left
/// stopped and `<alert_file_dir>/rejoin_failed` holds the reason, which is also returned.
pub async fn rejoin(config: &Config, master: &str) -> Result<(), ActError> {
    let result = match crate::act::follow::data_dir(config) {
        Err(e) => Err(e),
        Ok(_) if config.own_db.as_deref() == Some(master) => Err(ActError::OwnNode { node: master.into() }),
        Ok(data_dir) => match crate::act::reinit::lock(data_dir) {
            // another rejoin or reinit runs: change nothing (not even a stop)
            Err(e @ ActError::Reinit { .. }) => Err(e),
            held => {
                if let Err(e) = &held {
                    // a parent directory we may not write: the rejoin needs none (a reinit does)
                    tracing::warn!(target: "pglookout", "rejoin: going on without the lock: {e}");
                }
                let r = Rejoin {
                    config,
                    master,
                    data_dir: data_dir.to_path_buf(),
                    step: Duration::from_secs_f64(config.failover_command_timeout),
                };
                tracing::warn!(target: "pglookout", "rejoin: making our node a standby of {master}");
                let result = r.run().await;
                if result.is_err() && postmaster_running(&r.data_dir) {
                    // never left running after a failure: it may be a diverged old primary
                    let stop = command::run("pg_stop_command", &config.pg_stop_command, r.step, &[]).await;
                    tracing::warn!(target: "pglookout", "rejoin: stopped the node again after the failure: pg_stop_command {stop}");
                }
                match result {
                    Err(e)
                        if config.reinit_command.is_some()
                            && rebuild_instead(&e)
                            && !postmaster_running(&r.data_dir) =>
                    {
                        tracing::warn!(target: "pglookout", "rejoin: the rewind cannot bring our node back ({e}); rebuilding it with reinit_command");
                        crate::act::reinit::rebuild(config, master, &format!("the rewind failed: {e}"))
                            .await
                            .map_err(|r| ActError::RewindThenReinit {
                                rewind: Box::new(e),
                                reinit: Box::new(r),
                            })
                    }
                    other => other,
                }
            }
        },
    };
    let alert = config
        .alert_file_dir
        .join(crate::decide::Alert::RejoinFailed.file_name());
    match &result {
        Ok(()) => tracing::warn!(target: "pglookout", "rejoin: our node is started as a standby of {master}"),
        Err(e) => {
            tracing::error!(target: "pglookout", "rejoin: making our node a standby of {master} failed, it is left stopped: {e}");
            // whole or not at all: a monitor reading it never sees an empty reason
            if let Err(w) = crate::statefile::write_atomic(&alert, format!("{e}\n").as_bytes()) {
                tracing::error!(target: "pglookout", "cannot write the alert file {}: {w}", alert.display());
            }
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONTROLDATA_15: &str = "pg_control version number:            1300
Catalog version number:               202209061
Database system identifier:           7301234567890123456
Database cluster state:               in production
pg_control last modified:             Mon 01 Jan 2024 00:00:00 UTC
Latest checkpoint location:           0/3000060
Latest checkpoint's REDO location:    0/3000028
Latest checkpoint's TimeLineID:       1
Latest checkpoint's PrevTimeLineID:   1
wal_level setting:                    replica
wal_log_hints setting:                on
max_connections setting:              100
Data page checksum version:           0
";

    #[test]
    fn pg_controldata_is_read() {
        let d = ControlData::parse(CONTROLDATA_15);
        assert_eq!(d.state, "in production");
        assert_eq!(d.timeline, Some(1));
        assert!(d.wal_log_hints && !d.checksums && !d.clean());
        let d = ControlData::parse(
            "Database cluster state:               shut down in recovery\nData page checksum version:           1\nwal_log_hints setting:                off\n",
        );
        assert!(d.clean() && d.checksums && !d.wal_log_hints);
        assert_eq!(d.timeline, None);
    }

    fn config(extra: serde_json::Value) -> Config {
        let mut v = serde_json::json!({
            "remote_conns": {"pg1": "host=old port=5432", "pg2": "host=new.example port=6543", "pg3": "dbname=x"},
            "own_db": "pg1",
            "rejoin_old_master": true,
            "primary_conninfo_template": "user=replicator password=repsecret sslmode=prefer replication=true",
            "pg_data_directory": "/nonexistent",
            "pg_stop_command": "stop",
            "pg_start_command": "start",
        });
        for (k, val) in extra.as_object().expect("object") {
            v[k] = val.clone();
        }
        Config::from_value(Path::new("t.json"), &v).expect("config").0
    }

    #[test]
    fn the_source_conninfo_keeps_the_password_apart() {
        let (c, p) = source_conninfo(&config(serde_json::json!({})), "pg2").expect("conninfo");
        assert_eq!(
            c.render(),
            "user=replicator sslmode=prefer host=new.example port=6543 dbname=postgres"
        );
        assert_eq!(p.as_deref(), Some("repsecret"));
        let with_template = config(serde_json::json!({
            "rejoin_source_conninfo_template": "user=postgres dbname=template1 host=ignored"
        }));
        let (c, p) = source_conninfo(&with_template, "pg2").expect("conninfo");
        assert_eq!(c.render(), "user=postgres dbname=template1 host=new.example port=6543");
        assert_eq!(p, None);
        let e = source_conninfo(&with_template, "pg3").expect_err("no host");
        assert_eq!(e.to_string(), "remote_conns.pg3 has no host to rewind from");
        let e = source_conninfo(&with_template, "pg9").expect_err("not in remote_conns");
        assert!(matches!(&e, ActError::UnknownNode { node } if node == "pg9"), "{e}");
        let ssl = config(serde_json::json!({"rejoin_source_conninfo_template": "user=u sslpassword=k"}));
        let e = source_conninfo(&ssl, "pg2").expect_err("sslpassword");
        assert!(
            e.to_string()
                .starts_with("rejoin_source_conninfo_template: sslpassword"),
            "{e}"
        );
        assert!(!e.to_string().contains("=k"), "{e}");
        // the key named is the template used
        let ssl = config(serde_json::json!({"primary_conninfo_template": "user=u sslpassword=k"}));
        let e = source_conninfo(&ssl, "pg2").expect_err("sslpassword");
        assert!(
            matches!(
                e,
                ActError::SslPassword {
                    key: "primary_conninfo_template"
                }
            ),
            "{e}"
        );
    }

    #[test]
    fn the_standby_settings_are_checked_before_a_start() {
        let dir = tempfile::tempdir().expect("dir");
        let d = dir.path();
        let e = standby_settings_in_place(d, 15).expect_err("no standby.signal");
        assert_eq!(
            e.to_string(),
            format!(
                "writing the standby settings: {}/standby.signal is missing",
                d.display()
            )
        );
        std::fs::write(d.join("standby.signal"), "").expect("signal");
        assert!(standby_settings_in_place(d, 15).is_ok());
        let e = standby_settings_in_place(d, 11).expect_err("no recovery.conf");
        assert!(
            matches!(&e, ActError::Io { step: Step::StandbySettings, op: "read", path, .. } if path.ends_with("recovery.conf")),
            "{e}"
        );
        std::fs::write(d.join("recovery.conf"), "standby_mode = 'on'\nstandby_mode = off\n").expect("w");
        let e = standby_settings_in_place(d, 11).expect_err("the last one wins");
        assert!(
            e.to_string()
                .ends_with("recovery.conf: standby_mode is \"off\", not on"),
            "{e}"
        );
        std::fs::write(d.join("recovery.conf"), "primary_conninfo = ''\n").expect("w");
        let e = standby_settings_in_place(d, 11).expect_err("none");
        assert!(e.to_string().ends_with("standby_mode is unset, not on"), "{e}");
        std::fs::write(d.join("recovery.conf"), "standby_mode = off\nstandby_mode = 'on'\n").expect("w");
        assert!(standby_settings_in_place(d, 10).is_ok());
    }

    #[test]
    fn a_missing_or_dead_postmaster_is_not_running() {
        let dir = tempfile::tempdir().expect("dir");
        assert!(!postmaster_running(dir.path()));
        std::fs::write(dir.path().join("postmaster.pid"), "999999999\n/data\n").expect("w");
        assert!(!postmaster_running(dir.path()));
        std::fs::write(dir.path().join("postmaster.pid"), format!("{}\n", std::process::id())).expect("w");
        assert!(postmaster_running(dir.path()));
    }

    #[tokio::test]
    async fn a_failure_leaves_the_reason_in_the_alert_file() {
        let dir = tempfile::tempdir().expect("dir");
        let alerts = dir.path().join("alerts");
        std::fs::create_dir(&alerts).expect("mkdir");
        let c = config(serde_json::json!({
            "alert_file_dir": alerts,
            "pg_data_directory": dir.path(),
            "pg_controldata_command": "/nonexistent/pg_controldata",
        }));
        let e = rejoin(&c, "pg2").await.expect_err("no pg_controldata");
        assert!(
            matches!(&e, ActError::Command { step: Step::ControlData, ran } if matches!(ran.outcome, command::Outcome::NotStarted(_))),
            "{e:?}"
        );
        let text = std::fs::read_to_string(alerts.join("rejoin_failed")).expect("alert");
        assert_eq!(text, format!("{e}\n"));
        assert!(
            text.starts_with(
                "reading the control file: pg_controldata_command (/nonexistent/pg_controldata) could not be started: "
            ),
            "{text}"
        );
        assert!(!text.contains("repsecret"));
        let e = rejoin(&c, "pg1")
            .await
            .expect_err("our own node is no master to follow");
        assert_eq!(e.to_string(), "pg1 is our own node");
    }

    /// A failed step's command is named with its output, and a node that cannot be rewound
    /// says why, in the alert file too.
    #[tokio::test]
    async fn a_failed_step_names_the_command_and_its_output() {
        let dir = tempfile::tempdir().expect("dir");
        let d = dir.path();
        let alerts = d.join("alerts");
        std::fs::create_dir(&alerts).expect("mkdir");
        let data = d.join("data");
        std::fs::create_dir(&data).expect("mkdir");
        std::fs::write(data.join("PG_VERSION"), "15\n").expect("version");
        let failing = command::test_script(
            d,
            "pg_controldata",
            "echo 'pg_controldata: fatal: no pg_control' >&2\nexit 1",
        );
        let c = config(serde_json::json!({
            "alert_file_dir": alerts,
            "pg_data_directory": data,
            "pg_controldata_command": failing,
        }));
        let e = rejoin(&c, "pg2").await.expect_err("pg_controldata fails");
        assert_eq!(
            e.to_string(),
            format!("reading the control file: pg_controldata_command ({failing}) exited with status 1: pg_controldata: fatal: no pg_control")
        );
        let no_hints = command::test_script(
            d,
            "pg_controldata2",
            "echo 'Database cluster state: shut down'\necho 'wal_log_hints setting: off'\necho 'Data page checksum version: 0'",
        );
        let c = config(serde_json::json!({
            "alert_file_dir": alerts,
            "pg_data_directory": data,
            "pg_controldata_command": no_hints,
            // the new primary's timeline is asked for first: refused at once here
            "remote_conns": {"pg1": "host=old", "pg2": "host=127.0.0.1 port=1"},
            "failover_command_timeout": 5,
        }));
        let e = rejoin(&c, "pg2").await.expect_err("no wal_log_hints");
        assert!(
            matches!(&e, ActError::NoRewindSupport { master, .. } if master == "pg2"),
            "{e:?}"
        );
        let text = std::fs::read_to_string(alerts.join("rejoin_failed")).expect("alert");
        assert!(
            text.starts_with("pg_rewind needs wal_log_hints = on or data checksums"),
            "{text}"
        );
        let mut unset = config(serde_json::json!({"alert_file_dir": alerts}));
        unset.pg_data_directory = None;
        let e = rejoin(&unset, "pg2").await.expect_err("no data directory");
        assert_eq!(e.to_string(), "pg_data_directory is not set");
    }
}
