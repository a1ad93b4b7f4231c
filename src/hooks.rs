//! Event hooks: the operator's `event_command`, run once for every event the daemon records in
//! its history (`History`, `daemon_start`, `config_reload_failed`, ...). Owns the command's
//! environment (the pure [`env`] and [`history_env`]), the bounded queue the decision loop hands
//! events to ([`Hooks::submit`] never waits: a full queue drops the event, logs it and counts
//! it as a failed run) and the one worker task that runs the queued commands one at a time, in
//! the order they were recorded, each through `act::command` (split on whitespace, no shell,
//! its own process group, killed as a group after `event_command_timeout`). Every run is
//! counted under `pglookout_commands_total{command="event_command"}`, every failure (non-zero
//! exit, timeout, spawn error, drop) under `pglookout_command_failures_total`. It must not
//! decide anything: what an event is, and when it happens, is `node`'s and `daemon`'s.

use crate::act::command;
use crate::config::Config;
use crate::node::History;
use crate::prometheus::Counters;
use crate::supervise;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// How many events may wait for the command; past this, new events are dropped (a command
/// slower than the events come must not hold the daemon's memory or its loop).
pub const QUEUE: usize = 64;
/// The most bytes of an event's reason handed to the command (an environment string has a
/// size limit; the history file has the whole reason).
pub const MAX_REASON_BYTES: usize = 4096;
/// The name the command is logged and counted under.
const WHAT: &str = "event_command";

/// The environment of `event_command` for one event: `PGLOOKOUT_EVENT` (its kind),
/// `PGLOOKOUT_NODE` (our `own_db`, empty for an observer), `PGLOOKOUT_OLD_MASTER` and
/// `PGLOOKOUT_NEW_MASTER` (empty when the event names none) and `PGLOOKOUT_REASON` (at most
/// [`MAX_REASON_BYTES`]). NUL bytes, which no environment string can hold, are dropped.
pub fn env(
    own: Option<&str>,
    kind: &str,
    reason: &str,
    old_master: Option<&str>,
    new_master: Option<&str>,
) -> Vec<(&'static str, String)> {
    let clean = |s: &str| s.replace('\0', "");
    let mut reason = clean(reason);
    if reason.len() > MAX_REASON_BYTES {
        let mut cut = MAX_REASON_BYTES;
        while !reason.is_char_boundary(cut) {
            cut -= 1;
        }
        reason.truncate(cut);
    }
    vec![
        ("PGLOOKOUT_EVENT", clean(kind)),
        ("PGLOOKOUT_NODE", clean(own.unwrap_or_default())),
        ("PGLOOKOUT_OLD_MASTER", clean(old_master.unwrap_or_default())),
        ("PGLOOKOUT_NEW_MASTER", clean(new_master.unwrap_or_default())),
        ("PGLOOKOUT_REASON", reason),
    ]
}

/// [`env`] of a history event of the decision loop, for the daemon whose node is `own`.
pub fn history_env(h: &History, own: Option<&str>) -> Vec<(&'static str, String)> {
    let (old, new) = h.masters();
    env(own, h.kind(), &h.reason(), old, new)
}

/// One queued run: the command and its timeout as the config said when the event happened (a
/// reload applies to the events after it).
#[derive(Debug)]
struct Job {
    command: String,
    timeout: Duration,
    env: Vec<(&'static str, String)>,
}

/// The decision loop's handle on the worker.
pub struct Hooks {
    tx: Option<mpsc::Sender<Job>>,
    worker: Option<tokio::task::JoinHandle<()>>,
    counters: Arc<Counters>,
}

impl Hooks {
    /// Starts the worker (on the current tokio runtime).
    pub fn start(counters: Arc<Counters>) -> Hooks {
        let (tx, mut rx) = mpsc::channel::<Job>(QUEUE);
        let c = counters.clone();
        let worker = tokio::spawn(async move {
            while let Some(job) = rx.recv().await {
                let event = job.env.first().map(|(_, kind)| kind.clone()).unwrap_or_default();
                let run = async move { command::run(WHAT, &job.command, job.timeout, &job.env).await };
                // a panic is one failed run; the worker goes on with the next event
                let outcome = supervise::run(WHAT, &c, run).await.unwrap_or(command::Outcome::Crashed);
                if !outcome.success() {
                    tracing::error!(target: "pglookout", "{WHAT} for the event {event} {outcome}");
                }
                c.command(WHAT, outcome.success());
            }
        });
        Hooks {
            tx: Some(tx),
            worker: Some(worker),
            counters,
        }
    }

    /// Queues `event_command` for one event, if the config has one; never waits. `env` is what
    /// [`env`] built for it.
    pub fn submit(&self, config: &Config, env: Vec<(&'static str, String)>) {
        let Some(command) = config.event_command.clone() else {
            return;
        };
        let event = env.first().map(|(_, k)| k.clone()).unwrap_or_default();
        let job = Job {
            command,
            timeout: Duration::from_secs_f64(config.event_command_timeout),
            env,
        };
        let refused = match &self.tx {
            None => Some("the daemon is stopping".to_string()),
            Some(tx) => match tx.try_send(job) {
                Ok(()) => None,
                Err(mpsc::error::TrySendError::Full(_)) => Some(format!("{QUEUE} events are already waiting")),
                Err(mpsc::error::TrySendError::Closed(_)) => Some("its worker has stopped".to_string()),
            },
        };
        if let Some(why) = refused {
            tracing::error!(target: "pglookout", "{WHAT} not run for the event {event}: {why}");
            self.counters.command(WHAT, false);
        }
    }

    /// On stop: no more events are taken, and the ones queued are given up to `timeout` to
    /// run (a command still running then is left to finish on its own). Whether all ran.
    pub async fn finish(&mut self, timeout: Duration) -> bool {
        self.tx = None;
        match self.worker.take() {
            Some(worker) => tokio::time::timeout(timeout, worker).await.is_ok(),
            None => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(env: &[(&'static str, String)], key: &str) -> String {
        env.iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("{key} missing from {env:?}"))
    }

    /// (event, own node) -> (PGLOOKOUT_EVENT, NODE, OLD_MASTER, NEW_MASTER, REASON)
    #[test]
    fn the_environment_names_the_event_the_node_and_the_masters() {
        let cases: Vec<(History, Option<&str>, [&str; 5])> = vec![
            (
                History::FailoverStarted {
                    reason: "master pg1 is missing".into(),
                    old_master: Some("pg1".into()),
                    own: Some("pg3".into()),
                },
                Some("pg3"),
                ["failover_started", "pg3", "pg1", "pg3", "master pg1 is missing"],
            ),
            (
                History::FailoverFinished { ok: true },
                Some("pg3"),
                ["failover_finished", "pg3", "", "", "succeeded"],
            ),
            (
                History::FailoverFinished { ok: false },
                Some("pg3"),
                ["failover_finished", "pg3", "", "", "failed"],
            ),
            (
                History::MasterChanged {
                    summary: "following pg3".into(),
                    old: Some("pg1".into()),
                    new: Some("pg3".into()),
                },
                // an observer: no node of its own
                None,
                ["master_changed", "", "pg1", "pg3", "decision: following pg3"],
            ),
            (
                History::FenceStarted {
                    reason: "lease lost".into(),
                    new_master: None,
                },
                Some("pg1"),
                ["fence_started", "pg1", "", "", "lease lost"],
            ),
            (
                History::FollowStarted { master: "pg2".into() },
                Some("pg3"),
                [
                    "follow_started",
                    "pg3",
                    "",
                    "pg2",
                    "autofollow: making our node a standby of pg2",
                ],
            ),
            (
                History::AlertRaised("failover_has_happened"),
                Some("pg2"),
                ["alert_raised", "pg2", "", "", "failover_has_happened"],
            ),
            (
                History::ObserverLost("obs".into()),
                Some("pg2"),
                ["observer_lost", "pg2", "", "", "obs"],
            ),
        ];
        for (h, own, want) in cases {
            let e = history_env(&h, own);
            let keys: Vec<&str> = e.iter().map(|(k, _)| *k).collect();
            assert_eq!(
                keys,
                [
                    "PGLOOKOUT_EVENT",
                    "PGLOOKOUT_NODE",
                    "PGLOOKOUT_OLD_MASTER",
                    "PGLOOKOUT_NEW_MASTER",
                    "PGLOOKOUT_REASON"
                ]
            );
            let got = [
                get(&e, "PGLOOKOUT_EVENT"),
                get(&e, "PGLOOKOUT_NODE"),
                get(&e, "PGLOOKOUT_OLD_MASTER"),
                get(&e, "PGLOOKOUT_NEW_MASTER"),
                get(&e, "PGLOOKOUT_REASON"),
            ];
            assert_eq!(got, want.map(String::from), "{h:?}");
        }
    }

    /// What no environment string can hold is dropped, and a long reason is cut on a character
    /// boundary.
    #[test]
    fn the_environment_holds_no_nul_and_a_bounded_reason() {
        let long = format!("a{}", "é".repeat(MAX_REASON_BYTES));
        let e = env(Some("pg\0 2"), "config_reload_failed", &long, None, Some("x\0"));
        assert_eq!(get(&e, "PGLOOKOUT_NODE"), "pg 2");
        assert_eq!(get(&e, "PGLOOKOUT_NEW_MASTER"), "x");
        let reason = get(&e, "PGLOOKOUT_REASON");
        assert!(
            reason.len() <= MAX_REASON_BYTES && reason.len() > MAX_REASON_BYTES - 2,
            "{}",
            reason.len()
        );
        assert!(reason.starts_with("aé"));
        assert!(e.iter().all(|(_, v)| !v.contains('\0')));
    }

    fn config(extra: serde_json::Value) -> Config {
        let mut v = serde_json::json!({"remote_conns": {}});
        if let (Some(m), Some(x)) = (v.as_object_mut(), extra.as_object()) {
            m.extend(x.clone());
        }
        Config::from_value(std::path::Path::new("test.json"), &v)
            .expect("config")
            .0
    }

    /// Events run one at a time in the order they were submitted, each with its own
    /// environment; failures and drops are counted as failed runs.
    #[tokio::test]
    async fn events_run_in_order_and_failures_are_counted() {
        let dir = tempfile::tempdir().expect("dir");
        let out = dir.path().join("out");
        let script = command::test_script(
            dir.path(),
            "hook.sh",
            &format!(
                "echo \"$PGLOOKOUT_EVENT $PGLOOKOUT_NODE $PGLOOKOUT_OLD_MASTER $PGLOOKOUT_NEW_MASTER\" >> {}\n[ \"$PGLOOKOUT_EVENT\" != fail ]",
                out.display()
            ),
        );
        let counters = Arc::new(Counters::default());
        let mut hooks = Hooks::start(counters.clone());
        let hooked = config(serde_json::json!({"event_command": format!("{script} arg")}));
        let kinds = ["e0", "e1", "fail", "e3", "e4", "e5"];
        for kind in kinds {
            hooks.submit(&hooked, env(Some("pg2"), kind, "r", Some("pg1"), None));
        }
        // no event_command: nothing queued, nothing counted
        hooks.submit(&config(serde_json::json!({})), env(None, "skipped", "r", None, None));
        assert!(hooks.finish(Duration::from_secs(30)).await, "the queue did not drain");
        let lines = std::fs::read_to_string(&out).expect("out");
        let want: Vec<String> = kinds.iter().map(|k| format!("{k} pg2 pg1 ")).collect();
        assert_eq!(lines.lines().collect::<Vec<_>>(), want);
        assert_eq!(counters.command_counts(WHAT), (6, 1));
        // after finish, an event is refused, logged and counted as failed
        hooks.submit(&hooked, env(None, "late", "r", None, None));
        assert_eq!(counters.command_counts(WHAT), (7, 2));
    }

    /// A full queue drops the event at once instead of waiting, and counts it as failed; a
    /// command past `event_command_timeout` is killed and counted as failed.
    #[tokio::test]
    async fn a_full_queue_drops_and_a_slow_command_times_out() {
        let counters = Arc::new(Counters::default());
        let mut hooks = Hooks::start(counters.clone());
        let slow = config(serde_json::json!({"event_command": "sleep 30", "event_command_timeout": 0.2}));
        let fast = config(serde_json::json!({"event_command": "true"}));
        let started = std::time::Instant::now();
        hooks.submit(&slow, env(None, "slow", "r", None, None));
        for i in 0..QUEUE + 4 {
            hooks.submit(&fast, env(None, &format!("e{i}"), "r", None, None));
        }
        assert!(started.elapsed() < Duration::from_secs(5), "submit waited");
        // the worker may have taken the slow one off the queue already
        let dropped = counters.command_counts(WHAT);
        assert!(matches!(dropped, (4, 4) | (5, 5)), "{dropped:?}");
        assert!(hooks.finish(Duration::from_secs(30)).await, "the queue did not drain");
        assert_eq!(counters.command_counts(WHAT), (QUEUE as u64 + 5, dropped.1 + 1));
        assert!(started.elapsed() < Duration::from_secs(15), "the timeout did not hold");
    }
}
