//! A planned switchover's steps, run by the old primary's daemon (`POST /switchover`,
//! `pglookout-ctl switchover`, issue 22). `decide::switchover` checks the request and holds the
//! rules while it runs; here, in order, each with a deadline:
//!
//! 1. Announce it in our node's entry of `/state.json` (no daemon counts the stop as a failure).
//! 2. `CHECKPOINT` (so that the shutdown checkpoint is short).
//! 3. `pg_stop_command`; the postmaster must then be gone and the control file must say
//!    "shut down": its latest checkpoint is the final position, which the walsenders send to the
//!    connected standbys before they exit.
//! 4. Ask the target's daemon to promote (`POST /switchover/promote`): it promotes through its
//!    own `failover_command` once its node has received that position and the old primary does
//!    not answer as a primary.
//! 5. Wait until the target answers as a primary; then make our node its standby (the standby
//!    settings, checked in place, and `pg_start_command`: no `pg_rewind`, the shutdown was
//!    clean and the target has every record before the checkpoint) and wait until it streams
//!    from it and our poller sees it so.
//! 6. If the target does not take over within the timeout, withdraw the request. Only when its
//!    daemon answers that no promotion ran or will run, and every other node answers as a
//!    standby, is our node started again as the primary; otherwise it stays stopped and the
//!    failover rules take over once the announcement ends.
//!
//! Each step goes into the history and into [`Progress`] (`GET /switchover`).

use crate::act::command;
use crate::act::rejoin::{postmaster_running, standby_settings_in_place};
use crate::config::Config;
use crate::conninfo::ConnInfo;
use crate::lsn::Lsn;
use crate::state::{Snapshot, Switchover, Timestamp};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A switchover as `GET /switchover` shows it: the steps so far with their times (seconds
/// since the start) and, once over, the outcome.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Progress {
    pub id: String,
    pub from: String,
    pub to: String,
    #[serde(serialize_with = "crate::state::ser_iso")]
    pub started: Timestamp,
    pub steps: Vec<ProgressStep>,
    /// `running`, `succeeded` or `failed`.
    pub state: &'static str,
    /// Why it failed, or what it ended with.
    pub outcome: Option<String>,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct ProgressStep {
    pub at: f64,
    pub step: String,
}

/// The latest switchover of this daemon, shared with the HTTP API.
pub type Shared = Arc<Mutex<Option<Progress>>>;

/// What the steps tell the decision loop.
#[derive(Debug)]
pub enum Report {
    /// The announcement, with the step now.
    Step(Switchover),
    /// Over: what it ended with (`Ok`) or why it failed (`Err`).
    Ended(Result<String, String>),
}

/// A control file's cluster state and latest checkpoint, read from `global/pg_control`
/// (the layout of its first fields has not changed since PostgreSQL 9.3: the system
/// identifier, two version numbers, the state, the time, the checkpoint).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Control {
    /// `DBState`: 1 is "shut down", 2 "shut down in recovery".
    pub state: u32,
    pub checkpoint: Lsn,
}

impl Control {
    pub fn read(data_dir: &Path) -> Result<Control, String> {
        let path = data_dir.join("global").join("pg_control");
        let bytes = std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let u32_at = |at: usize| {
            bytes
                .get(at..at + 4)
                .and_then(|b| b.try_into().ok())
                .map(u32::from_ne_bytes)
        };
        let u64_at = |at: usize| {
            bytes
                .get(at..at + 8)
                .and_then(|b| b.try_into().ok())
                .map(u64::from_ne_bytes)
        };
        match (u32_at(16), u64_at(32)) {
            (Some(state), Some(checkpoint)) => Ok(Control {
                state,
                checkpoint: Lsn(checkpoint),
            }),
            _ => Err(format!("{} is too short for a control file", path.display())),
        }
    }

    pub fn shut_down(&self) -> bool {
        self.state == 1
    }
}

/// One query's first column of the first row, as text, within `deadline`.
pub async fn ask(conninfo: &ConnInfo, sql: &str, deadline: Duration) -> Result<Option<String>, String> {
    let run = async {
        let config = conninfo.pg_config().map_err(|e| e.to_string())?;
        let tls = conninfo.tls().map_err(|e| e.to_string())?;
        let (client, connection) = config.connect(tls).await.map_err(|e| e.to_string())?;
        let task = tokio::spawn(connection);
        let rows = client.simple_query(sql).await.map_err(|e| match e.as_db_error() {
            Some(db) => db.message().to_string(),
            None => e.to_string(),
        });
        task.abort();
        Ok(rows?
            .into_iter()
            .find_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => Some(r.get(0).map(str::to_string)),
                _ => None,
            })
            .flatten())
    };
    tokio::time::timeout(deadline, run)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {:.1} s", deadline.as_secs_f64())))
}

/// What the withdrawal of a promotion request found.
#[derive(Debug, PartialEq, Eq)]
enum Withdrawal {
    NotStarted,
    Promoting,
    Promoted,
    Unknown(String),
}

/// Everything the steps need.
pub struct Steps {
    pub config: Arc<Config>,
    pub id: String,
    pub from: String,
    pub to: String,
    pub timeout: Duration,
    pub progress: Shared,
    pub report: tokio::sync::mpsc::Sender<Report>,
    pub snapshots: tokio::sync::watch::Receiver<Arc<Snapshot>>,
    pub started: Instant,
    pub since: Timestamp,
}

impl Steps {
    /// How long the announcement may hold the cluster: the timeout, then the stop, the start
    /// and the wait for streaming, each within `failover_command_timeout`.
    fn until(&self) -> Timestamp {
        let secs = self.timeout.as_secs_f64() + 3.0 * self.config.failover_command_timeout;
        let secs = secs.min(crate::decide::switchover::MAX_SWITCHOVER_SECS - 1.0);
        self.since + chrono::Duration::milliseconds((secs * 1000.0) as i64)
    }

    /// Records a step (log, [`Progress`]) and returns the announcement that says it.
    pub fn record(&self, text: String) -> Switchover {
        tracing::warn!(target: "pglookout", "switchover to {}: {text}", self.to);
        if let Ok(mut p) = self.progress.lock() {
            match p.as_mut() {
                Some(p) if p.id == self.id => p.steps.push(ProgressStep {
                    at: (self.started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0,
                    step: text.clone(),
                }),
                _ => {
                    *p = Some(Progress {
                        id: self.id.clone(),
                        from: self.from.clone(),
                        to: self.to.clone(),
                        started: self.since,
                        steps: vec![ProgressStep {
                            at: 0.0,
                            step: text.clone(),
                        }],
                        state: "running",
                        outcome: None,
                    })
                }
            }
        }
        Switchover {
            from: self.from.clone(),
            to: self.to.clone(),
            since: self.since,
            until: self.until(),
            step: text,
        }
    }

    /// The first step, said by the decision loop itself when it takes the request.
    pub fn announcement(&self) -> Switchover {
        self.record(format!(
            "announced: {} is stopped on purpose and {} promoted",
            self.from, self.to
        ))
    }

    async fn step(&self, text: String) {
        let word = self.record(text);
        let _ = self.report.send(Report::Step(word)).await;
    }

    /// The outcome, in [`Progress`].
    pub fn ended(progress: &Shared, result: &Result<String, String>) {
        if let Ok(mut p) = progress.lock() {
            if let Some(p) = p.as_mut() {
                p.state = if result.is_ok() { "succeeded" } else { "failed" };
                p.outcome = Some(match result {
                    Ok(s) | Err(s) => s.clone(),
                });
            }
        }
    }

    fn own_conninfo(&self) -> Result<&ConnInfo, String> {
        self.config
            .remote_conns
            .get(&self.from)
            .ok_or_else(|| format!("remote_conns has no {}", self.from))
    }

    /// `pg_start_command` or `pg_stop_command`, within `failover_command_timeout`.
    async fn pg_ctl(&self, what: &str, cmd: &str) -> command::Ran {
        command::execute(what, cmd, &[], self.command_timeout(), &[]).await
    }

    fn command_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.config.failover_command_timeout)
    }

    /// The steps; `Ok` says how it ended, `Err` why it failed (and what state it left).
    pub async fn run(&self) -> Result<String, String> {
        let data_dir = crate::act::follow::data_dir(&self.config)
            .map_err(|e| e.to_string())?
            .to_path_buf();
        let own = self.own_conninfo()?.clone();
        // only shortens the shutdown checkpoint: the role may lack the right (superuser, or
        // pg_checkpoint from PostgreSQL 15), and the stop checkpoints anyway
        match ask(&own, "CHECKPOINT", self.command_timeout()).await {
            Ok(_) => {
                self.step("checkpoint done; stopping our node (pg_stop_command)".into())
                    .await
            }
            Err(e) => {
                self.step(format!(
                    "no CHECKPOINT first ({e}); stopping our node (pg_stop_command)"
                ))
                .await
            }
        }
        let stop = self.pg_ctl("pg_stop_command", &self.config.pg_stop_command).await;
        if postmaster_running(&data_dir) {
            return Err(format!("our node still runs after {stop}: it stays the primary"));
        }
        let control = match Control::read(&data_dir) {
            Ok(c) if c.shut_down() => c,
            Ok(c) => {
                return self
                    .back_as_primary(format!(
                        "the control file says state {} after the stop, not a clean shutdown",
                        c.state
                    ))
                    .await
            }
            Err(e) => return self.back_as_primary(e).await,
        };
        self.step(format!(
            "stopped cleanly at {}; asking {}'s daemon to promote it",
            control.checkpoint, self.to
        ))
        .await;
        let deadline = self.started + self.timeout;
        if let Err(e) = self.ask_promotion(control.checkpoint, deadline).await {
            return self
                .withdraw_or_stay(format!("{}'s daemon did not take the request: {e}", self.to))
                .await;
        }
        self.step(format!(
            "{}'s daemon took the request; waiting for it to answer as the primary",
            self.to
        ))
        .await;
        if !self.wait_primary(deadline).await {
            return self
                .withdraw_or_stay(format!(
                    "{} did not answer as the primary within {:.0} s",
                    self.to,
                    self.timeout.as_secs_f64()
                ))
                .await;
        }
        self.rejoin(&data_dir).await
    }

    /// `POST /switchover/promote` at the target's daemon (its observer entry).
    async fn ask_promotion(&self, lsn: Lsn, deadline: Instant) -> Result<(), String> {
        let window = deadline
            .saturating_duration_since(Instant::now())
            .as_secs_f64()
            .max(1.0);
        let path = format!(
            "/switchover/promote?from={}&lsn={}&id={}&window={window:.1}",
            crate::query::encode(&self.from),
            crate::query::encode(&lsn.to_string()),
            crate::query::encode(&self.id)
        );
        let answer = self.post(&path).await?;
        match answer {
            (202, _) => Ok(()),
            (code, why) => Err(format!("HTTP {code}: {why}")),
        }
    }

    async fn post(&self, path: &str) -> Result<(u16, String), String> {
        let target = self
            .config
            .observers
            .get(&self.to)
            .ok_or_else(|| format!("no observer named {} (its daemon)", self.to))?;
        let client = crate::poll::observer::client(target.ca_file.as_deref())?;
        let url = format!("{}{path}", target.url.trim_end_matches('/'));
        let mut req = client.post(url);
        if let Some(token) = target.token.as_deref().or(self.config.http_auth_token.as_deref()) {
            req = req.bearer_auth(token);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| crate::poll::error_chain(&e.without_url()))?;
        let code = resp.status().as_u16();
        let body: serde_json::Value = resp.json().await.unwrap_or_default();
        let why = body
            .get("error")
            .or_else(|| body.get("withdrawn"))
            .and_then(|v| v.as_str())
            .unwrap_or_default();
        Ok((code, crate::text::printable(why).into_owned()))
    }

    /// Whether the target answered as a primary before `deadline`.
    async fn wait_primary(&self, deadline: Instant) -> bool {
        let Some(target) = self.config.remote_conns.get(&self.to) else {
            return false;
        };
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            let each = left.min(Duration::from_secs(2));
            if let Ok(Some(r)) = ask(target, "SELECT pg_is_in_recovery()", each).await {
                if r == "f" {
                    return true;
                }
            }
            tokio::time::sleep(Duration::from_millis(50).min(left)).await;
        }
    }

    async fn withdraw(&self) -> Withdrawal {
        let mut last = String::new();
        for _ in 0..3 {
            match self.post("/switchover/abort").await {
                Ok((200, w)) if w == "not_started" => return Withdrawal::NotStarted,
                Ok((200, w)) if w == "promoting" => return Withdrawal::Promoting,
                Ok((200, w)) if w == "promoted" => return Withdrawal::Promoted,
                Ok((code, w)) => last = format!("HTTP {code}: {w}"),
                Err(e) => last = e,
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Withdrawal::Unknown(last)
    }

    /// The target did not take over: withdraw the request, then start our node again as the
    /// primary if that is safe, or wait for a promotion already under way.
    async fn withdraw_or_stay(&self, why: String) -> Result<String, String> {
        self.step(format!("{why}; withdrawing the request")).await;
        match self.withdraw().await {
            Withdrawal::NotStarted => self.back_as_primary(why).await,
            Withdrawal::Promoting | Withdrawal::Promoted => {
                self.step(format!("{}'s promotion is under way: waiting for it", self.to))
                    .await;
                let deadline = Instant::now() + self.command_timeout();
                if self.wait_primary(deadline).await {
                    let data_dir = crate::act::follow::data_dir(&self.config)
                        .map_err(|e| e.to_string())?
                        .to_path_buf();
                    self.rejoin(&data_dir).await
                } else {
                    Err(format!(
                        "{why}; {}'s promotion did not end: {} stays stopped, the failover rules take over",
                        self.to, self.from
                    ))
                }
            }
            Withdrawal::Unknown(e) => Err(format!(
                "{why}; whether {} promotes is not known ({e}): {} stays stopped, the failover rules take over",
                self.to, self.from
            )),
        }
    }

    /// Starts our node again as the primary, only when every other node answers as a standby.
    async fn back_as_primary(&self, why: String) -> Result<String, String> {
        let each = Duration::from_secs_f64(self.config.db_poll_timeout.max(1.0));
        for (name, conninfo) in &self.config.remote_conns {
            if *name == self.from {
                continue;
            }
            match ask(conninfo, "SELECT pg_is_in_recovery()", each).await {
                Ok(Some(r)) if r == "t" => {}
                Ok(_) => {
                    return Err(format!(
                        "{why}; {name} answers as a primary: {} stays stopped",
                        self.from
                    ))
                }
                Err(e) => {
                    return Err(format!(
                        "{why}; {name} does not answer ({e}), so it may have been promoted: {} stays stopped, the failover rules take over",
                        self.from
                    ))
                }
            }
        }
        self.step(format!("{why}; starting {} again as the primary", self.from))
            .await;
        let ran = self.pg_ctl("pg_start_command", &self.config.pg_start_command).await;
        if ran.success() {
            Err(format!("{why}: {} was started again as the primary", self.from))
        } else {
            Err(format!("{why}; starting {} again failed: {ran}", self.from))
        }
    }

    /// Makes our cleanly stopped node a standby of the target and waits until it streams.
    async fn rejoin(&self, data_dir: &Path) -> Result<String, String> {
        self.step(format!(
            "{} answers as the primary; making {} its standby",
            self.to, self.from
        ))
        .await;
        let (config, to, dir) = (self.config.clone(), self.to.clone(), data_dir.to_path_buf());
        let stamp = crate::state::iso(&chrono::Utc::now());
        let write = tokio::task::spawn_blocking(move || {
            crate::act::follow::rewrite(&config, &to, &stamp)?;
            let major = crate::act::follow::major(&dir, crate::act::Step::StandbySettings)?;
            standby_settings_in_place(&dir, major)
        });
        match tokio::time::timeout(self.command_timeout(), write).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => {
                return Err(format!(
                    "writing the standby settings failed ({e}): {} stays stopped",
                    self.from
                ))
            }
            _ => {
                return Err(format!(
                    "writing the standby settings did not end: {} stays stopped",
                    self.from
                ))
            }
        }
        let ran = self.pg_ctl("pg_start_command", &self.config.pg_start_command).await;
        if !ran.success() {
            return Err(format!("{ran}: {} is not streaming", self.from));
        }
        self.step(format!("{} started as a standby; waiting for it to stream", self.from))
            .await;
        let own = self.own_conninfo()?.clone();
        let deadline = Instant::now() + self.command_timeout();
        loop {
            let streaming = ask(
                &own,
                "SELECT status FROM pg_catalog.pg_stat_wal_receiver",
                Duration::from_secs(2),
            )
            .await;
            let seen = self
                .snapshots
                .borrow()
                .nodes
                .get(&self.from)
                .is_some_and(crate::decide::rejoin::receiving_standby);
            if matches!(streaming, Ok(Some(ref s)) if s == "streaming") && seen {
                return Ok(format!("{} is the primary and {} streams from it", self.to, self.from));
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "{} is the primary, but {} does not stream from it within {:.0} s",
                    self.to,
                    self.from,
                    self.command_timeout().as_secs_f64()
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_control_file_gives_the_state_and_the_checkpoint() {
        let dir = tempfile::tempdir().expect("dir");
        std::fs::create_dir(dir.path().join("global")).expect("mkdir");
        let mut bytes = vec![0u8; 64];
        bytes[16..20].copy_from_slice(&1u32.to_ne_bytes());
        bytes[32..40].copy_from_slice(&0x0300_0028u64.to_ne_bytes());
        std::fs::write(dir.path().join("global/pg_control"), &bytes).expect("write");
        let c = Control::read(dir.path()).expect("read");
        assert!(c.shut_down());
        assert_eq!(c.checkpoint.to_string(), "0/3000028");
        std::fs::write(dir.path().join("global/pg_control"), &bytes[..20]).expect("write");
        assert!(Control::read(dir.path()).expect_err("short").contains("too short"));
    }
}
