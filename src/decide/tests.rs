//! Table tests of the decision core: every upstream scenario of `test/test_lookout.py` (4-29,
//! named after the original test functions, same inputs, same expected outcome), the
//! regression tests of the upstream bugs we fixed, and the fail-safe rules. Each scenario
//! drives the daemon's own loop (`node::Node`) through a recording executor (`Sim`): the
//! node's effects are recorded, and its commands reported back at once unless held.
//!
//! "exec" counts external commands the way the original's mocked `execute_external_command`
//! did: failover commands plus `over_warning_limit_command` runs (and, in scenario 29, the
//! stop and start commands of a restart).

use super::failover::{FAILOVER_RETRY_MAX_SECS, FOLLOW_RETRY_SECS};
use super::follow::{new_primary_conninfo, rewrite_recovery_conf};
use super::*;
use crate::config::Config;
use crate::lsn::Lsn;
use crate::node::{CommandId, Effect, Finished, Input, Node, Poll, Start};
use crate::state::{parse_iso, FailoverPhase, FailoverStatus, NodeState, ObserverState, PgFields, Timestamp};
use chrono::{Duration, TimeZone, Utc};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

const MONO0: Mono = Mono(10_000.0);

fn now() -> Timestamp {
    Utc.with_ymd_and_hms(2024, 4, 10, 12, 0, 0).single().expect("time")
}

fn ago(secs: i64) -> Timestamp {
    now() - Duration::seconds(secs)
}

fn year_2014() -> Timestamp {
    Utc.with_ymd_and_hms(2014, 1, 1, 0, 0, 0).single().expect("time")
}

/// Python's `datetime.min`.
fn the_beginning() -> Timestamp {
    Utc.with_ymd_and_hms(1, 1, 1, 0, 0, 0).single().expect("time")
}

fn ts(s: &str) -> Timestamp {
    parse_iso(s).expect("timestamp")
}

/// A node state as upstream's test helper builds it: `min_replication_time_lag` 0 ("has been
/// in sync once"), no replay location, fetched and db_time now unless set.
#[derive(Clone)]
struct N(NodeState);

impl N {
    fn standby(receive: &str, lag: f64) -> N {
        N::new(true).receive(Some(receive)).lag(Some(lag))
    }
    fn primary() -> N {
        N::new(false)
    }
    fn new(in_recovery: bool) -> N {
        N(NodeState {
            fetch_time: now(),
            connection: true,
            pg: Some(PgFields {
                db_time: Some(now()),
                pg_is_in_recovery: in_recovery,
                pg_last_xact_replay_timestamp: None,
                pg_last_xlog_receive_location: None,
                pg_last_xlog_replay_location: None,
                replication_time_lag: None,
                replication_slots: None,
                timeline: None,
                startup_waiting_for_wal: None,
                sync: None,
                receiver_cut: None,
            }),
            min_replication_time_lag: Some(0.0),
            replication_start_time: None,
            failover: None,
            voters: None,
            pause: None,
            switchover: None,
        })
    }
    fn pg(&mut self) -> &mut PgFields {
        self.0.pg.as_mut().expect("pg fields")
    }
    fn receive(mut self, lsn: Option<&str>) -> N {
        self.pg().pg_last_xlog_receive_location = lsn.map(|l| l.parse::<Lsn>().expect("lsn"));
        self
    }
    /// A primary's `synchronous_standby_names`, as its probe read it.
    fn sync_names(mut self, value: &str) -> N {
        self.pg().sync = Some(crate::state::SyncReplication {
            synchronous_standby_names: Some(value.to_string()),
            ..Default::default()
        });
        self
    }
    /// A primary's WAL senders, as its probe read them: `(name, state, flush)`.
    fn senders(mut self, value: &str, senders: &[(&str, &str, &str)]) -> N {
        self.pg().sync = Some(crate::state::SyncReplication {
            synchronous_standby_names: Some(value.to_string()),
            synchronous_commit: Some("on".into()),
            pg_stat_replication: senders
                .iter()
                .map(|(name, state, flush)| crate::state::WalSender {
                    application_name: Some(name.to_string()),
                    state: Some(state.to_string()),
                    flush_lsn: Some(flush.parse::<Lsn>().expect("lsn")),
                    ..Default::default()
                })
                .collect(),
        });
        self
    }
    fn replay(mut self, lsn: &str) -> N {
        self.pg().pg_last_xlog_replay_location = Some(lsn.parse::<Lsn>().expect("lsn"));
        self
    }
    fn lag(mut self, lag: Option<f64>) -> N {
        self.pg().replication_time_lag = lag;
        self
    }
    fn conn(mut self, connection: bool) -> N {
        self.0.connection = connection;
        self
    }
    fn db_time(mut self, t: Timestamp) -> N {
        self.pg().db_time = Some(t);
        self
    }
    fn fetched(mut self, t: Timestamp) -> N {
        self.0.fetch_time = t;
        self
    }
}

/// An observer map with one observer that saw `nodes`.
fn one_observer(
    name: &str,
    fetch_time: Timestamp,
    connection: bool,
    nodes: BTreeMap<String, NodeState>,
) -> BTreeMap<String, ObserverState> {
    BTreeMap::from([(
        name.to_string(),
        ObserverState {
            fetch_time,
            connection,
            nodes: nodes.into(),
        },
    )])
}

/// One daemon, its config document, what its poller sees, and what its effects did.
struct Sim {
    json: Value,
    nodes: BTreeMap<String, NodeState>,
    observers: BTreeMap<String, ObserverState>,
    /// The daemon's decision loop; its memory and config version are set directly by the
    /// scenarios.
    node: Node,
    now: Timestamp,
    mono: Mono,
    round: u64,
    maintenance: bool,
    /// The maintenance file check does not answer in time: it counts as present, but is not
    /// seen (no standing yield).
    maintenance_unanswered: bool,
    /// The shell reports the failover command's outcome right away, with this status.
    failover_ok: bool,
    /// The next failover command keeps running (not reported: [`Sim::finish_failover`])
    /// instead of finishing at once.
    hold_failover: bool,
    /// The id of the failover command held running.
    held_failover: Option<CommandId>,
    failovers: usize,
    fences: usize,
    fence_ok: bool,
    /// A fence command that exits 0 stops our node (its next poll fails); false: it leaves
    /// it running (a supervisor restarted it, the command missed it).
    fence_holds: bool,
    warning_commands: usize,
    restarts: usize,
    alerts: BTreeSet<Alert>,
    alerts_created: Vec<Alert>,
    follows: Vec<String>,
    counts: Vec<String>,
    gauges: Vec<(String, f64)>,
    polls_requested: usize,
    observer_polling: Option<bool>,
    /// The standby's recovery settings file and PostgreSQL major, for autofollow.
    recovery: Option<(String, u32)>,
    decisions: Vec<Decision>,
    /// The masters a rejoin was ordered for.
    rejoins: Vec<String>,
    /// How the shell reports a rejoin right away (`None`: it keeps running).
    rejoin_result: Option<Result<(), String>>,
    /// The synchronous_standby_names asked for, in order (`None`: reset).
    sync_asked: Vec<Option<String>>,
}

impl Sim {
    /// Like upstream's fixture: the example config with `remote_conns` emptied.
    fn new() -> Sim {
        let mut s = Sim {
            json: json!({
                "failover_command": "/usr/bin/failover_command",
                "warning_replication_time_lag": 30.0,
                "max_failover_replication_time_lag": 120.0,
                "alert_file_dir": "/tmp",
                "remote_conns": {},
            }),
            nodes: BTreeMap::new(),
            observers: BTreeMap::new(),
            node: Node::new(Arc::new(Sim::fixture_config()), Memory::new(MONO0)),
            now: now(),
            mono: MONO0,
            round: 1,
            maintenance: false,
            maintenance_unanswered: false,
            failover_ok: true,
            hold_failover: false,
            held_failover: None,
            failovers: 0,
            fences: 0,
            fence_ok: true,
            fence_holds: true,
            warning_commands: 0,
            restarts: 0,
            alerts: BTreeSet::new(),
            alerts_created: Vec::new(),
            follows: Vec::new(),
            counts: Vec::new(),
            gauges: Vec::new(),
            polls_requested: 0,
            observer_polling: None,
            recovery: None,
            decisions: Vec::new(),
            rejoins: Vec::new(),
            rejoin_result: Some(Ok(())),
            sync_asked: Vec::new(),
        };
        // as upstream's fixture: the first config counts as version 1
        s.node.config_version = 1;
        s
    }

    /// A placeholder until the first decision builds the scenario's config.
    fn fixture_config() -> Config {
        let json = json!({"failover_command": "/usr/bin/failover_command", "remote_conns": {}});
        Config::from_value(Path::new("test.json"), &json)
            .expect("valid test config")
            .0
    }

    fn conf(&mut self, key: &str, value: Value) -> &mut Sim {
        self.json[key] = value;
        self
    }

    fn own(&mut self, name: &str) -> &mut Sim {
        self.conf("own_db", json!(name))
    }

    fn set(&mut self, name: &str, node: N) -> &mut Sim {
        self.nodes.insert(name.to_string(), node.0);
        if self.json["remote_conns"].get(name).is_none() {
            self.json["remote_conns"][name] = json!({ "host": name });
        }
        self
    }

    fn remove(&mut self, name: &str) {
        self.nodes.remove(name);
        if let Some(conns) = self.json["remote_conns"].as_object_mut() {
            conns.remove(name);
        }
    }

    fn observe(&mut self, observer: &str, name: &str, node: N) -> &mut Sim {
        let now = self.now;
        let obs = self
            .observers
            .entry(observer.to_string())
            .or_insert_with(|| ObserverState {
                fetch_time: now,
                connection: true,
                nodes: Default::default(),
            });
        obs.fetch_time = now;
        obs.connection = true;
        Arc::make_mut(&mut obs.nodes).insert(name.to_string(), node.0);
        self
    }

    fn config(&self) -> Config {
        Config::from_value(Path::new("test.json"), &self.json)
            .expect("valid test config")
            .0
    }

    fn flag(&self) -> bool {
        self.node.memory.replication_lag_over_warning_limit
    }

    /// External commands, counted as upstream's mock counted them.
    fn exec(&self) -> usize {
        self.failovers + self.warning_commands + self.restarts
    }

    /// One decision round of the node, its effects carried out (recorded, and commands
    /// reported back at once unless held).
    fn decide_once(&mut self) -> Decision {
        let config = Arc::new(self.config());
        // the scenario's config as it stands, without a reload's bookkeeping
        self.node.config = config.clone();
        let poll = Poll {
            nodes: &self.nodes,
            observers: &self.observers,
            round: self.round,
            wall_now: self.now,
            maintenance_mode: self.maintenance || self.maintenance_unanswered,
            maintenance_seen: self.maintenance && !self.maintenance_unanswered,
        };
        let step = self.node.handle(Input::Check(poll), self.mono);
        let d = step.decision.expect("a running node decides");
        let mut effects: std::collections::VecDeque<Effect> = step.effects.into();
        while let Some(effect) = effects.pop_front() {
            let finished = match effect {
                Effect::Do(a) => {
                    self.record(a);
                    None
                }
                Effect::Start(id, start) => self.start(&config, id, start).map(|f| (id, f)),
                Effect::Publish(_) | Effect::History(_) | Effect::Ended { .. } | Effect::FenceOverBudget { .. } => None,
                Effect::StaleEnd { command, .. } => panic!("the recording executor hands back every end: {command}"),
            };
            if let Some((id, f)) = finished {
                effects.extend(self.node.handle(Input::Finished(id, f), self.mono).effects);
            }
        }
        self.decisions.push(d.clone());
        d
    }

    fn record(&mut self, action: Action) {
        match action {
            Action::RequestPoll => self.polls_requested += 1,
            Action::CreateAlert(x) => {
                self.alerts.insert(x);
                self.alerts_created.push(x);
            }
            // written again when its reason changes: counted as created once per raise
            Action::WriteAlert(x, _) => {
                if self.alerts.insert(x) {
                    self.alerts_created.push(x);
                }
            }
            Action::DeleteAlert(x) => {
                self.alerts.remove(&x);
            }
            Action::StatsdGauge { name, value } => self.gauges.push((name, value)),
            Action::StatsdCount { name } => self.counts.push(name),
            Action::SetObserverPolling(on) => self.observer_polling = Some(on),
            Action::SetSynchronousNames { value, .. } => self.sync_asked.push(value),
            Action::SetWalReceiver { .. } => {}
            other => panic!("the node hands commands over as Effect::Start: {other:?}"),
        }
    }

    /// A command the node started; its end when the shell reports it at once.
    fn start(&mut self, config: &Config, id: CommandId, start: Start) -> Option<Finished> {
        match start {
            Start::Failover { .. } => {
                self.failovers += 1;
                if self.hold_failover {
                    self.held_failover = Some(id);
                }
                (!self.hold_failover).then_some(Finished::Failover { ok: self.failover_ok })
            }
            Start::Warning { .. } => {
                self.warning_commands += 1;
                None
            }
            Start::Fence { .. } => {
                self.fences += 1;
                if self.fence_ok && self.fence_holds {
                    let own = config.own_db.clone().unwrap_or_default();
                    if let Some(n) = self.nodes.get_mut(&own) {
                        n.connection = false;
                    }
                }
                Some(Finished::Fence { ok: self.fence_ok })
            }
            Start::Follow { master, .. } => {
                self.follows.push(master.clone());
                self.follow_file(config, &master);
                Some(Finished::Follow { master, ok: true })
            }
            Start::Rejoin { master } => {
                self.rejoins.push(master.clone());
                let result = self.rejoin_result.clone()?;
                Some(Finished::Rejoin { master, result })
            }
        }
    }

    /// The held failover command ends now.
    fn finish_failover(&mut self, ok: bool) {
        let id = self.held_failover.take().expect("a held failover command");
        let step = self
            .node
            .handle(Input::Finished(id, Finished::Failover { ok }), self.mono);
        assert!(step.decision.is_none());
    }

    /// What `act::follow` does with the file, using the pure functions.
    fn follow_file(&mut self, config: &Config, master: &str) {
        if let Some((text, major)) = self.recovery.clone() {
            let template = config.primary_conninfo_template.as_ref().expect("template");
            let conn = config.remote_conns.get(master).expect("master in remote_conns");
            let new = new_primary_conninfo(template, conn);
            let stamp = "2024-04-10T12:00:00.000000Z";
            if let Some(updated) = rewrite_recovery_conf(&text, &new, master, stamp, major) {
                self.recovery = Some((updated, major));
                self.restarts += 2; // pg_stop_command + pg_start_command
            }
        }
    }

    /// One upstream `check_cluster_state()`: decide, and when the decision asks for a fresh
    /// poll, complete one round (with the same data, as upstream's mocked queue did) and
    /// decide again.
    fn check(&mut self) -> Decision {
        let mut d = self.decide_once();
        for _ in 0..3 {
            if !d.actions.contains(&Action::RequestPoll) {
                break;
            }
            self.round += 1;
            d = self.decide_once();
        }
        d
    }

    fn all_reasons(&self) -> String {
        self.decisions
            .iter()
            .flat_map(|d| d.reasons.iter().map(String::as_str).chain([d.summary.as_str()]))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

// ---------------------------------------------------------------------------------------
// Upstream scenarios (test/test_lookout.py)
// ---------------------------------------------------------------------------------------

#[test]
fn test_check_cluster_state_warning() {
    let mut s = Sim::new();
    s.set("kuu", N::standby("1/aaaaaaaa", 40.0))
        .set("old_master", N::primary())
        .own("kuu")
        .conf("over_warning_limit_command", json!("fake_command"));
    s.node.memory.current_master = Some("old_master".into());
    s.check();
    assert_eq!(s.exec(), 1);
    assert_eq!(s.alerts_created, [Alert::ReplicationDelayWarning]);
    s.check();
    // One warning per crossing.
    assert_eq!(s.exec(), 1);
    assert!(s.flag());
    assert_eq!(s.alerts_created.len(), 1);
    // The replication catches up.
    s.set("kuu", N::standby("1/aaaaaaaa", 5.0));
    s.check();
    assert!(!s.alerts.contains(&Alert::ReplicationDelayWarning));
    assert!(!s.flag());
}

#[test]
fn test_check_cluster_do_failover_one_standby() {
    let mut s = Sim::new();
    s.set("old_master", N::primary().conn(false).db_time(year_2014()))
        .set("own_db", N::standby("1/aaaaaaaa", 130.0))
        .own("own_db");
    s.check();
    assert_eq!(s.exec(), 0);
    assert!(s.flag());
    s.check();
    assert_eq!(s.exec(), 1);
    assert!(!s.flag());
    assert!(s.all_reasons().contains("known state 1 of 2, majority needs 1"));
}

#[test]
fn test_check_cluster_master_gone_one_standby_one_observer() {
    let mut s = Sim::new();
    s.set("old_master", N::primary().conn(false).db_time(year_2014()))
        .set("own_db", N::standby("1/aaaaaaaa", 0.0))
        .own("own_db")
        .observe("observer", "old_master", N::primary().conn(false).db_time(year_2014()))
        .observe("observer", "own_db", N::standby("2/aaaaaaaa", 0.0));
    s.node.memory.current_master = Some("old_master".into());
    // Removed from the config, and the poller drops it.
    s.remove("old_master");
    s.node.memory.nodes_changed(s.mono);
    // The grace period after a change of remote_conns is running.
    s.check();
    assert_eq!(s.exec(), 0);
    assert!(!s.flag());
    // issue 19, item 12: a fresh daemon's grace is its start, not a change of remote_conns
    assert!(
        s.all_reasons().contains("but the daemon started 0.0 s ago"),
        "{}",
        s.all_reasons()
    );
    s.node.memory.cluster_nodes_reloaded = true;
    s.check();
    assert!(
        s.all_reasons().contains("but remote_conns changed 0.0 s ago"),
        "{}",
        s.all_reasons()
    );
    // Known to be gone: no grace period.
    s.conf("known_gone_nodes", json!(["old_master"]));
    s.check();
    assert_eq!(s.exec(), 1);
    assert!(!s.flag());
    assert!(s.all_reasons().contains("known state 2 of 3, majority needs 1.5"));
}

#[test]
fn test_check_cluster_do_failover_one_standby_one_observer() {
    let mut s = Sim::new();
    s.set("old_master", N::primary().conn(false).db_time(year_2014()))
        .set("own_db", N::standby("1/aaaaaaaa", 130.0))
        .own("own_db")
        .observe("observer", "old_master", N::primary().conn(false).db_time(year_2014()))
        .observe("observer", "own_db", N::standby("2/aaaaaaaa", 130.0));
    s.check();
    assert_eq!(s.exec(), 0);
    assert!(s.flag());
    s.check();
    assert_eq!(s.exec(), 1);
    assert!(!s.flag());
}

#[test]
fn test_check_cluster_do_failover_with_a_node_which_is_is_maintenance() {
    let mut s = Sim::new();
    s.set("old_master", N::primary().conn(false).db_time(year_2014()))
        .set("kuu", N::standby("1/aaaaaaaa", 130.0))
        .own("kuu")
        .conf("never_promote_these_nodes", json!([]));
    s.node.memory.replication_lag_over_warning_limit = true;
    s.maintenance = true;
    let d = s.check();
    assert_eq!(s.exec(), 0);
    assert!(s.flag());
    assert!(d.summary.contains("maintenance_mode_file"), "{}", d.summary);
}

#[test]
fn test_check_cluster_do_failover_with_a_node_which_should_never_be_promoted() {
    let mut s = Sim::new();
    s.set("old_master", N::primary().conn(false))
        .set("kuu", N::standby("1/aaaaaaaa", 130.0))
        .own("kuu")
        .conf("never_promote_these_nodes", json!(["kuu"]));
    s.node.memory.replication_lag_over_warning_limit = true;
    s.check();
    assert_eq!(s.exec(), 0);
    assert!(s.flag());
}

#[test]
fn test_check_cluster_do_failover_two_standbys() {
    let mut s = Sim::new();
    s.set("old_master", N::primary().conn(false))
        .set("kuu", N::standby("1/aaaaaaaa", 130.0))
        .own("kuu")
        .set("puu", N::standby("2/aaaaaaaa", 130.0));
    s.node.memory.replication_lag_over_warning_limit = true;
    s.check();
    assert_eq!(s.exec(), 0);
    assert!(s.flag());
}

#[test]
fn test_check_cluster_do_failover_two_standbys_when_the_one_ahead_can_never_be_promoted() {
    let mut s = Sim::new();
    s.set("old_master", N::primary().conn(false).db_time(year_2014()))
        .set("kuu", N::standby("1/aaaaaaaa", 130.0))
        .own("kuu")
        .set("puu", N::standby("2/aaaaaaaa", 130.0))
        .conf("never_promote_these_nodes", json!(["puu"]));
    s.node.memory.replication_lag_over_warning_limit = true;
    s.check();
    assert_eq!(s.exec(), 1);
    assert!(!s.flag());
    assert!(s.all_reasons().contains("known state 1 of 2, majority needs 1"));
}

#[test]
fn test_failover_with_no_master_anymore() {
    let mut s = Sim::new();
    s.own("kuu")
        .set("kuu", N::standby("F/aaaaaaaa", 0.0))
        .set("puu", N::standby("2/aaaaaaaa", 1.0));
    s.check();
    assert_eq!(s.exec(), 1);
    assert!(s.all_reasons().contains("known state 2 of 3, majority needs 1.5"));
}

#[test]
fn test_failover_over_replication_lag_when_still_connected_to_master() {
    let mut s = Sim::new();
    s.set("old_master", N::primary().conn(false))
        .set("kuu", N::standby("2/aaaaaaaa", 130.0))
        .own("kuu");
    s.check();
    assert_eq!(s.exec(), 0);
    assert!(s.flag());
}

#[test]
fn test_failover_over_replication_lag_with_one_observer_one_standby_no_connections() {
    let mut s = Sim::new();
    s.set("old_master", N::primary().conn(false))
        .set("own_db", N::standby("2/aaaaaaaa", 130.0))
        .own("own_db")
        .observe("observer", "old_master", N::primary().conn(false).db_time(year_2014()))
        .observe("observer", "own_db", N::standby("2/aaaaaaaa", 130.0).conn(false));
    if let Some(o) = s.observers.get_mut("observer") {
        o.connection = false;
    }
    s.check();
    assert_eq!(s.exec(), 0);
    assert!(s.flag());
}

#[test]
fn test_cluster_state_when_observer_has_also_non_members_of_our_current_cluster() {
    let mut s = Sim::new();
    s.set("old_master", N::primary())
        .set("own_db", N::standby("2/aaaaaaaa", 130.0))
        .own("own_db")
        .observe("observer", "old_master", N::primary().conn(false).db_time(year_2014()))
        .observe("observer", "own_db", N::standby("2/aaaaaaaa", 130.0).conn(false))
        .observe(
            "observer",
            "some_other_cluster",
            N::primary().receive(Some("3/aaaaaaaa")).lag(Some(0.0)),
        );
    let map = node_map(&s.nodes, &s.observers, Some("own_db"), 5.0);
    assert_eq!(map.connected_masters.keys().collect::<Vec<_>>(), ["old_master"]);
    let d = s.check();
    assert_eq!(d.master.as_deref(), Some("old_master"));
    assert_eq!(s.failovers, 0);
}

#[test]
fn test_failover_no_connections() {
    let mut s = Sim::new();
    s.set("old_master", N::primary().conn(false))
        .set("kuu", N::standby("2/aaaaaaaa", 130.0))
        .own("kuu")
        .set("puu", N::standby("1/aaaaaaaa", 130.0).conn(false));
    s.check();
    assert_eq!(s.exec(), 0);
    assert!(s.flag());
}

#[test]
fn test_failover_master_two_standbys_one_observer_no_connection_between_standbys() {
    let mut s = Sim::new();
    s.set("old_master", N::primary().conn(false).db_time(year_2014()))
        .set("own", N::standby("2/aaaaaaaa", 130.0))
        .own("own")
        .set("other", N::standby("1/aaaaaaaa", 130.0).conn(false))
        .observe("observer", "old_master", N::primary().conn(false).db_time(year_2014()))
        .observe("observer", "other", N::standby("1/aaaaaaaa", 130.0))
        .observe("observer", "own", N::standby("2/aaaaaaaa", 130.0));
    s.check();
    assert_eq!(s.exec(), 0);
    assert!(s.flag());
    s.check();
    assert_eq!(s.exec(), 1);
    assert!(!s.flag());
    assert!(s.all_reasons().contains("known state 3 of 4, majority needs 2"));
}

#[test]
fn test_failover_master_one_standby_one_observer_no_connections() {
    let mut s = Sim::new();
    s.own("own")
        .observe("observer", "old_master", N::primary())
        .set("old_master", N::primary())
        .set("own", N::standby("2/aaaaaaaa", 40.0));
    s.check();
    assert!(s.flag());
    assert_eq!(s.exec(), 0);

    s.observe("observer", "old_master", N::primary())
        .observe("observer", "own", N::standby("2/aaaaaaaa", 9.0))
        .set("own", N::standby("2/aaaaaaaa", 140.0));
    s.check();
    // The master is still connected.
    assert_eq!(s.exec(), 0);
    assert!(s.flag());

    s.observe("observer", "old_master", N::primary().conn(false).db_time(year_2014()))
        .observe("observer", "own", N::standby("2/aaaaaaaa", 140.0).conn(false))
        .set("old_master", N::primary().conn(false).db_time(year_2014()));
    s.check();
    assert_eq!(s.exec(), 1);
}

fn one_standby_no_observer_no_connections(failover_on_disconnect: bool) {
    let mut s = Sim::new();
    s.own("this_host")
        .conf("failover_on_disconnect", json!(failover_on_disconnect))
        .set("primary", N::primary().conn(false))
        .set("this_host", N::standby("2/aaaaaaaa", 1.0));
    s.node.memory.current_master = Some("primary".into());
    // The primary is still part of the cluster although we are disconnected.
    s.check();
    assert_eq!(s.exec(), 0);
    // Age the config change: still fine, we saw the primary just now.
    s.node.memory.cluster_nodes_change_time = s.mono - 15.0 - 1.0;
    s.set("primary", N::primary().conn(false).db_time(s.now));
    s.check();
    assert_eq!(s.exec(), 0);
    // Last contact 121 s ago.
    s.set("primary", N::primary().conn(false).db_time(ago(121)));
    s.check();
    assert_eq!(s.exec(), usize::from(failover_on_disconnect));
    let not_taken = s
        .counts
        .iter()
        .filter(|c| *c == "failover_decision_on_disconnect_not_taken")
        .count();
    if failover_on_disconnect {
        assert_eq!(not_taken, 0);
    } else {
        assert_eq!(not_taken, 3);
    }
}

#[test]
fn test_failover_master_one_standby_no_observer_no_connections_failover_on_disconnect_true() {
    one_standby_no_observer_no_connections(true);
}

#[test]
fn test_failover_master_one_standby_no_observer_no_connections_failover_on_disconnect_false() {
    one_standby_no_observer_no_connections(false);
}

#[test]
fn test_find_current_master() {
    let mut s = Sim::new();
    s.set("master", N::primary())
        .set("own", N::standby("2/aaaaaaaa", 0.1))
        .own("master");
    let d = s.check();
    assert_eq!(s.node.memory.current_master.as_deref(), Some("master"));
    assert_eq!(d.summary, "no action: we are the master");
    // issue 19, item 12: once our node stops answering, the decision does not say so any more
    s.set("master", N::primary().conn(false));
    let d = s.check();
    assert_eq!(s.node.memory.current_master.as_deref(), Some("master"));
    assert_eq!(
        d.summary,
        "no action: our node was the master and does not answer; the standbys decide"
    );
}

#[test]
fn test_two_standby_failover_and_autofollow() {
    let mut s = Sim::new();
    s.set("old_master", N::primary().conn(false).fetched(year_2014()))
        .set("own", N::standby("1/aaaaaaaa", 130.0).conn(false))
        .own("own")
        .set("other", N::standby("2/aaaaaaaa", 130.0).conn(false));
    s.check();
    // Upstream raised the lag warning here from the last lag of our own node, which does not
    // answer; that lag says nothing about now, so we don't (docs/compatibility.md).
    assert!(!s.flag());
    assert_eq!(s.exec(), 0);
    assert_eq!(s.node.memory.current_master.as_deref(), Some("old_master"));

    s.json["remote_conns"]["other"] = json!({"host": "otherhost.example.com", "port": 11111});
    s.set("other", N::primary().receive(Some("2/aaaaaaaa")).lag(Some(0.0)));
    let primary_conninfo = "user=replication password=vjsh8l7sv4a902y1tsdz host=old_master port=5432 sslmode=prefer sslcompression=1 krbsrvname=postgres";
    s.recovery = Some((
        format!("standby_mode = 'on'\nprimary_conninfo = '{primary_conninfo}'\n"),
        11,
    ));
    s.conf("autofollow", json!(true))
        .conf("primary_conninfo_template", json!(primary_conninfo))
        .conf("pg_data_directory", json!("/var/lib/postgresql/data"))
        .conf("pg_start_command", json!("/usr/bin/pg_start"))
        .conf("pg_stop_command", json!("/usr/bin/pg_stop"));
    s.check();
    assert_eq!(s.node.memory.current_master.as_deref(), Some("other"));
    assert_eq!(s.follows, ["other"]);

    let (text, _) = s.recovery.clone().expect("file");
    let mut lines: Vec<&str> = text.lines().collect();
    assert!(lines.remove(0).starts_with("# pglookout updated primary_conninfo"));
    assert_eq!(lines.remove(0), "standby_mode = 'on'");
    let conninfo_line = lines.remove(0);
    assert_eq!(lines.remove(0), "recovery_target_timeline = 'latest'");
    assert!(lines.is_empty());
    let value = conninfo_line
        .strip_prefix("primary_conninfo = '")
        .and_then(|v| v.strip_suffix('\''))
        .expect("quoted conninfo");
    let new = crate::conninfo::ConnInfo::parse(value).expect("conninfo");
    let mut expected = crate::conninfo::ConnInfo::parse(primary_conninfo).expect("conninfo");
    expected.set("host", "otherhost.example.com");
    expected.set("port", "11111");
    assert_eq!(new, expected);
}

#[test]
fn test_replication_positions() {
    let wall = now();
    let mut standbys = BTreeMap::new();
    let base = N::standby("0/9000090", 254.341944)
        .replay("0/9000090")
        .fetched(ts("2014-08-28T14:09:57.918753Z"));
    standbys.insert("10.255.255.10".to_string(), base.0.clone());
    // Fetched (way) more than 20 s ago: not a candidate.
    assert!(replication_positions(&standbys, wall, &[]).is_empty());

    let fresh = base.fetched(wall);
    standbys.insert("10.255.255.10".to_string(), fresh.0.clone());
    let mut expected: BTreeMap<u64, BTreeSet<String>> = BTreeMap::new();
    expected.insert(0x9000090, ["10.255.255.10".to_string()].into());
    assert_eq!(replication_positions(&standbys, wall, &[]), expected);

    // Another standby, further ahead.
    standbys.insert("10.255.255.11".to_string(), fresh.clone().receive(Some("1/0000AAAA")).0);
    expected.insert((1 << 32) | 0xAAAA, ["10.255.255.11".to_string()].into());
    assert_eq!(replication_positions(&standbys, wall, &[]), expected);

    // One that has not received anything falls back to its replay location.
    standbys.insert("10.255.255.12".to_string(), fresh.receive(None).0);
    if let Some(set) = expected.get_mut(&0x9000090) {
        set.insert("10.255.255.12".to_string());
    }
    assert_eq!(replication_positions(&standbys, wall, &[]), expected);
}

#[test]
fn test_node_map() {
    let mut own = BTreeMap::new();
    own.insert(
        "10.255.255.10".to_string(),
        N::primary()
            .receive(Some("0/9000090"))
            .replay("0/9000090")
            .lag(Some(1267.489727))
            .db_time(ts("2014-08-28T14:26:51.067084Z"))
            .fetched(ts("2014-08-28T14:26:51.066368Z"))
            .0,
    );
    own.insert(
        "10.255.255.9".to_string(),
        NodeState::new(ts("2014-08-28T14:26:51.068151Z"), false),
    );
    let mut seen = BTreeMap::new();
    seen.insert(
        "10.255.255.10".to_string(),
        N::primary()
            .receive(Some("0/9000090"))
            .replay("0/9000090")
            .db_time(ts("2014-08-28T14:26:47.105901Z"))
            .fetched(ts("2014-08-28T14:26:47.104849Z"))
            .0,
    );
    seen.insert(
        "10.255.255.9".to_string(),
        N::primary()
            .conn(false)
            .db_time(ts("2014-08-28T14:06:15.172820Z"))
            .fetched(ts("2014-08-28T14:26:47.107115Z"))
            .0,
    );
    let observers = one_observer("10.255.255.11", ts("2014-08-28T14:26:51.069891Z"), true, seen);
    let map = node_map(&own, &observers, Some("1.2.3.4"), 5.0);
    assert_eq!(map.master.as_deref(), Some("10.255.255.10"));
    assert!(map.standbys.is_empty());
    assert!(map.disconnected_masters.contains_key("10.255.255.9"));
    assert_eq!(map.connected_observers, 1);
}

#[test]
fn test_node_map_disconnected_current_master() {
    let mut own = BTreeMap::new();
    own.insert(
        "10.255.255.7".to_string(),
        N::primary()
            .conn(false)
            .db_time(ts("2014-09-07T15:26:23.957151Z"))
            .fetched(ts("2014-09-07T15:26:34.736495Z"))
            .0,
    );
    own.insert(
        "10.255.255.8".to_string(),
        N::standby("0/74713D8", 43.586525)
            .replay("0/74713D8")
            .db_time(ts("2014-09-07T15:26:23.959461Z"))
            .fetched(ts("2014-09-07T15:26:23.919281Z"))
            .0,
    );
    let no_observers = BTreeMap::new();
    let map = node_map(&own, &no_observers, Some("1.2.3.4"), 5.0);
    assert_eq!(map.master.as_deref(), Some("10.255.255.7"));
    assert_eq!(map.standbys.keys().collect::<Vec<_>>(), ["10.255.255.8"]);
}

#[test]
fn test_standbys_failover_equal_replication_positions() {
    let mut s = Sim::new();
    s.set("192.168.54.183", N::standby("0/70004D8", 400.435871))
        .set(
            "192.168.57.180",
            N::primary()
                .conn(false)
                .lag(Some(0.0))
                .fetched(ago(3600))
                .db_time(ago(3600)),
        )
        .set("192.168.63.4", N::standby("0/70004D8", 401.104655));
    s.node.memory.current_master = Some("192.168.57.180".into());
    // Not the highest name: no promotion (this first check is also the warning round).
    s.own("192.168.54.183");
    s.check();
    assert_eq!(s.exec(), 0);
    // The highest name ("6" > "5") promotes.
    s.own("192.168.63.4");
    s.check();
    assert_eq!(s.exec(), 1);
}

#[test]
fn test_node_map_when_only_observer_sees_master() {
    let mut own = BTreeMap::new();
    own.insert(
        "10.255.255.10".to_string(),
        N::primary()
            .conn(false)
            .db_time(ts("2014-08-28T14:26:51.067084Z"))
            .fetched(ts("2014-08-28T14:26:51.066368Z"))
            .0,
    );
    let mut seen = BTreeMap::new();
    seen.insert(
        "10.255.255.10".to_string(),
        N::primary()
            .db_time(ts("2014-08-28T14:26:47.105901Z"))
            .fetched(ts("2014-08-28T14:26:50.104849Z"))
            .0,
    );
    let observers = one_observer("10.255.255.11", ts("2014-08-28T14:26:51.069891Z"), true, seen);
    let map = node_map(&own, &observers, Some("1.2.3.4"), 5.0);
    assert_eq!(map.master.as_deref(), Some("10.255.255.10"));
    assert!(map.connected_masters.contains_key("10.255.255.10"));
}

#[test]
fn test_poll_observers_on_warning_only() {
    let mut s = Sim::new();
    s.conf("poll_observers_on_warning_only", json!(true))
        .conf("observers", json!({"local": "http://127.0.0.1:15000"}))
        .own("kuu")
        .set("master", N::primary().db_time(the_beginning()))
        .set("kuu", N::standby("1/aaaaaaaa", 40.0));
    let d = s.check();
    assert_eq!(d.master.as_deref(), Some("master"));
    assert_eq!(s.exec(), 0);
    assert!(s.flag());
    assert!(s.node.memory.observer_state_newer_than.is_some());
    assert_eq!(s.observer_polling, Some(true));

    s.set("master", N::primary().conn(false).db_time(the_beginning()))
        .set("kuu", N::standby("1/aaaaaaaa", 140.0))
        .observe("observer", "master", N::primary().conn(false).db_time(the_beginning()));
    s.check();
    let map = node_map(&s.nodes, &s.observers, Some("kuu"), 5.0);
    assert!(map.disconnected_masters.contains_key("master"));
    assert_eq!(s.exec(), 1);
}

#[test]
fn test_check_cluster_monitor_health() {
    // (start offset, last run offset, timeout, signalled); offsets are seconds before now.
    // The "no key" rows use 10 s, which is what Config makes of a missing key (2 x 5 s).
    let null = None;
    let dflt = Some(10.0);
    let sixty = Some(60.0);
    type Row = (Option<f64>, Option<f64>, Option<f64>, bool);
    let table: [Row; 28] = [
        (None, None, null, false),
        (Some(0.0), None, null, false),
        (Some(0.0), Some(0.0), null, false),
        (Some(60.0), Some(0.0), null, false),
        (Some(60.0), Some(60.0), null, false),
        (Some(0.0), Some(60.0), null, false),
        (Some(60.0), None, null, false),
        (None, Some(60.0), null, false),
        (None, None, dflt, false),
        (Some(0.0), None, dflt, false),
        (Some(0.0), Some(0.0), dflt, false),
        (Some(10.0), Some(0.0), dflt, false),
        (Some(10.0), Some(10.0), dflt, true),
        (Some(0.0), Some(10.0), dflt, true),
        (Some(9.9), None, dflt, false),
        (Some(10.0), None, dflt, true),
        (None, Some(9.9), dflt, false),
        (None, Some(10.0), dflt, true),
        (None, None, sixty, false),
        (Some(0.0), None, sixty, false),
        (Some(0.0), Some(0.0), sixty, false),
        (Some(60.0), Some(0.0), sixty, false),
        (Some(60.0), Some(60.0), sixty, true),
        (Some(0.0), Some(60.0), sixty, true),
        (Some(60.0), None, sixty, true),
        (None, Some(60.0), sixty, true),
        (Some(59.9), None, sixty, false),
        (None, Some(59.9), sixty, false),
    ];
    let now = MONO0.0;
    for (start, last, timeout, signalled) in table {
        let got = monitor_unhealthy(timeout, start.map(|o| now - o), last.map(|o| now - o), now);
        assert_eq!(got, signalled, "start {start:?} last {last:?} timeout {timeout:?}");
    }
    // The default really is 2 x replication_state_check_interval, and null disables it.
    let c = Config::from_value(Path::new("t.json"), &json!({})).expect("config").0;
    assert_eq!(c.cluster_monitor_health_timeout_seconds, Some(10.0));
    let c = Config::from_value(
        Path::new("t.json"),
        &json!({"cluster_monitor_health_timeout_seconds": null}),
    )
    .expect("config")
    .0;
    assert_eq!(c.cluster_monitor_health_timeout_seconds, None);
}

#[test]
fn test_apply_stale_config_restarts() {
    let mut s = Sim::new();
    s.conf("autofollow", json!(true))
        .conf(
            "primary_conninfo_template",
            json!("user=replicator password=fake_pass sslmode=require"),
        )
        .conf("pg_data_directory", json!("/var/lib/postgresql/15/main"))
        .conf("pg_start_command", json!("/usr/bin/pg_start"))
        .conf("pg_stop_command", json!("/usr/bin/pg_stop"))
        .set("primary", N::primary())
        .set("secondary", N::standby("1/aaaaaaaa", 0.5))
        .own("secondary");
    s.node.memory.current_master = Some("primary".into());
    s.recovery = Some((
        "primary_conninfo = 'user=replicator password=fake_pass sslmode=require host=primary'\n".into(),
        15,
    ));
    assert_eq!(s.node.memory.applied_config_version, None);
    // The version is applied: the conninfo already matches, nothing is rewritten.
    s.check();
    assert_eq!(s.follows, ["primary"]);
    assert_eq!(s.exec(), 0);
    assert_eq!(s.node.memory.applied_config_version, Some(1));
    // A changed template without a new config version changes nothing.
    s.conf(
        "primary_conninfo_template",
        json!("user=replication password=foo sslmode=require"),
    );
    s.check();
    assert_eq!(s.follows.len(), 1);
    assert_eq!(s.exec(), 0);
    // A new version rewrites the file and restarts PostgreSQL (stop + start).
    s.node.config_version = 2;
    s.check();
    assert_eq!(s.follows, ["primary", "primary"]);
    assert_eq!(s.exec(), 2);
    let (text, _) = s.recovery.clone().expect("file");
    assert!(
        text.contains("primary_conninfo = 'user=replication password=foo sslmode=require"),
        "{text}"
    );
}

// ---------------------------------------------------------------------------------------
// Regression tests: upstream bugs we fixed (one line each in docs/compatibility.md)
// ---------------------------------------------------------------------------------------

/// Upstream skipped the lag check when the lag was exactly 0.0 ("no replication lag set"), so
/// a warning raised earlier never cleared while the lag stayed at 0.0.
#[test]
fn regression_replication_lag_zero_is_a_real_value_and_clears_the_warning() {
    let mut s = Sim::new();
    s.set("pg1", N::primary())
        .set("pg2", N::standby("1/0", 45.0))
        .own("pg2");
    s.check();
    assert!(s.flag());
    assert!(s.alerts.contains(&Alert::ReplicationDelayWarning));
    s.set("pg2", N::standby("1/0", 0.0));
    s.check();
    assert!(!s.flag());
    assert!(!s.alerts.contains(&Alert::ReplicationDelayWarning));
    assert!(s.gauges.contains(&("pg.replication_lag".to_string(), 0.0)));
    // A missing lag is still "unknown": nothing changes.
    s.set("pg2", N::standby("1/0", 45.0));
    s.check();
    assert!(s.flag());
    s.set("pg2", N::standby("1/0", 0.0).lag(None));
    let d = s.check();
    assert!(s.flag());
    assert_eq!(d.summary, "no action: own replication lag is unknown");
}

/// Upstream's `is_master_observer_new_enough` stopped waiting *within* 5 poll intervals of the
/// warning and waited (possibly forever) after them. Fixed: wait at most 5 intervals for data
/// fetched after the warning, then go ahead.
#[test]
fn regression_master_observer_wait_is_not_inverted() {
    let setup = || {
        let mut s = Sim::new();
        // The master's own pglookout is polled as an observer named like the master.
        s.conf("poll_observers_on_warning_only", json!(true))
            .conf("observers", json!({"pg1": "http://pg1:15000"}))
            .own("pg2")
            .set("pg1", N::primary())
            .set("pg2", N::standby("1/0", 45.0))
            .observe("pg1", "pg1", N::primary());
        if let Some(o) = s.observers.get_mut("pg1") {
            o.fetch_time = ago(60);
        }
        s.check(); // crosses the warning limit
        assert!(s.flag());
        assert_eq!(s.observer_polling, Some(true));
        s
    };

    // Right after the warning, stale observer data holds the decision back...
    let mut s = setup();
    s.mono += 1.0;
    let d = s.check();
    assert!(d.summary.starts_with("waiting: observer data"), "{}", d.summary);
    // ...until the observer has been fetched since the warning.
    s.now += Duration::seconds(2);
    s.mono += 1.0;
    s.observe("pg1", "pg1", N::primary().fetched(s.now));
    let d = s.check();
    assert!(d.summary.starts_with("no action"), "{}", d.summary);

    // If the observer never answers, we stop waiting after 5 poll intervals.
    let mut s = setup();
    s.mono += 5.0 * 5.0;
    let d = s.check();
    assert!(d.summary.starts_with("no action"), "{}", d.summary);
}

/// Upstream re-ran a failing failover_command on every loop. Now: 5 s after the first
/// failure, doubling up to 300 s.
#[test]
fn regression_failed_failover_command_is_retried_only_after_backoff() {
    let mut s = Sim::new();
    s.set("pg1", N::primary().conn(false).db_time(year_2014()))
        .set("pg2", N::standby("1/0", 130.0))
        .own("pg2");
    s.node.memory.replication_lag_over_warning_limit = true;
    s.node.memory.nodes_changed(s.mono - 100.0);
    s.failover_ok = false;
    s.check();
    assert_eq!(s.failovers, 1);
    let d = s.check();
    assert_eq!(s.failovers, 1);
    assert_eq!(
        d.summary,
        "no failover: waiting before retrying the failed failover command"
    );
    for (wait, total) in [(5.0, 2), (10.0, 3), (20.0, 4)] {
        s.mono += wait - 0.5;
        s.check();
        assert_eq!(s.failovers, total - 1, "too early after {wait} s");
        s.mono += 0.5;
        s.check();
        assert_eq!(s.failovers, total, "due after {wait} s");
    }
    assert!(s.flag(), "a failed command does not clear the warning");
    s.node.memory.failover.failures.consecutive = 20;
    assert_eq!(
        s.node.memory.failover_retry_at(),
        s.node
            .memory
            .failover
            .failures
            .last
            .map(|t| t + FAILOVER_RETRY_MAX_SECS)
    );
    // A success resets the backoff and clears the warning.
    s.node.memory.record_failover_result(true, s.mono);
    assert_eq!(s.node.memory.failover_retry_at(), None);
    assert!(!s.flag());
    let d = s.decide_once();
    assert!(d.actions.contains(&Action::DeleteAlert(Alert::ReplicationDelayWarning)));
}

/// Upstream wrote `failover_has_happened` after the command whatever its exit status, but not
/// when the command could not be started at all (it raised). We create it with the command
/// action, and never when no command is launched (refused, or failover_command empty).
#[test]
fn regression_failover_has_happened_only_with_a_launched_command() {
    let setup = || {
        let mut s = Sim::new();
        s.set("pg1", N::primary().conn(false).db_time(year_2014()))
            .set("pg2", N::standby("1/0", 130.0))
            .own("pg2");
        s.node.memory.replication_lag_over_warning_limit = true;
        s
    };
    let mut s = setup();
    let d = s.check();
    let run = d
        .actions
        .iter()
        .position(|a| matches!(a, Action::RunFailoverCommand { .. }))
        .expect("command");
    assert_eq!(
        d.actions.get(run + 1),
        Some(&Action::CreateAlert(Alert::FailoverHasHappened))
    );
    assert_eq!(
        d.actions[run],
        Action::RunFailoverCommand {
            reason: "replication lag 130.0 s is over max_failover_replication_time_lag 120 s".into(),
            old_master: Some("pg1".into()),
        }
    );

    let mut s = setup();
    s.conf("failover_command", json!(""));
    let d = s.check();
    assert_eq!(d.summary, "cannot fail over: failover_command is empty");
    assert!(!s.alerts.contains(&Alert::FailoverHasHappened));

    let mut s = setup();
    s.maintenance = true;
    s.check();
    assert!(s.alerts_created.is_empty());
}

/// Upstream re-pointed primary_conninfo on every config reload even with autofollow off (and,
/// having no template then, raised on every loop). Only with autofollow on, once per reload.
#[test]
fn regression_config_reload_with_autofollow_off_does_not_follow() {
    let mut s = Sim::new();
    s.set("pg1", N::primary()).set("pg2", N::standby("1/0", 1.0)).own("pg2");
    s.check();
    assert_eq!(s.node.memory.current_master.as_deref(), Some("pg1"));
    s.node.config_version += 1;
    let d = s.decide_once();
    assert!(s.follows.is_empty());
    assert!(d.reasons.iter().any(|r| r.contains("autofollow is off")));
    assert_eq!(s.node.memory.applied_config_version, Some(2));
    s.round += 1;
    s.check();
    s.check();
    assert!(s.follows.is_empty());

    // With autofollow on: exactly once per new version.
    s.conf("autofollow", json!(true))
        .conf("primary_conninfo_template", json!("user=rep"))
        .conf("pg_data_directory", json!("/data"))
        .conf("pg_start_command", json!("start"))
        .conf("pg_stop_command", json!("stop"));
    s.node.config_version += 1;
    s.check();
    s.check();
    assert_eq!(s.follows, ["pg1"]);
}

/// Kept on purpose (scenario 12 requires it), documented as a hazard: with no master seen
/// since start, a standby promotes itself on the first complete round, bounded only by the
/// majority rule. One primary that cannot be reached at start + one standby: it promotes.
#[test]
fn regression_a_restart_while_the_primary_is_unreachable_does_not_promote_at_once() {
    // upstream promoted on the first round: the never-reached pg1 may be a live primary
    let mut s = Sim::new();
    s.set("pg1", N(NodeState::new(now(), false)))
        .set("pg2", N::standby("1/0", 0.5))
        .own("pg2");
    let d = s.check();
    assert_eq!(s.failovers, 0, "{d:?}");
    assert!(d.reasons.iter().any(|r| r.starts_with("never reached pg1")), "{d:?}");
    // still unknown after as long as a vanished master would be given: then it decides
    s.mono += 121.0;
    let d = s.check();
    assert_eq!(s.failovers, 1, "{d:?}");
    assert!(d.reasons.iter().any(|r| r == "no master has been seen since start"));
}

// ---------------------------------------------------------------------------------------
// Fail-safe rules and the rest of the contract
// ---------------------------------------------------------------------------------------

#[test]
fn never_decides_while_a_configured_node_is_missing_from_the_view() {
    let mut s = Sim::new();
    s.set("pg1", N::primary().conn(false).db_time(year_2014()))
        .set("pg2", N::standby("2/0", 130.0))
        .set("pg3", N::standby("1/0", 130.0))
        .own("pg2");
    s.node.memory.replication_lag_over_warning_limit = true;
    s.nodes.remove("pg3"); // configured, but not polled yet
    for _ in 0..3 {
        let d = s.check();
        assert_eq!(d.summary, "waiting: not every configured node has been polled yet");
        assert!(d.reasons.iter().any(|r| r == "not polled yet: pg3"));
        assert!(d.actions.is_empty() || d.actions.iter().all(|a| matches!(a, Action::SetObserverPolling(_))));
    }
    assert_eq!(s.failovers, 0);
    s.set("pg3", N::standby("1/0", 130.0));
    s.check();
    assert_eq!(s.failovers, 1);
}

#[test]
fn fresh_poll_request_without_an_answer_fails_safe() {
    let mut s = Sim::new();
    s.set("pg1", N::primary()).set("pg2", N::standby("1/0", 1.0)).own("pg2");
    s.check();
    s.node.memory.nodes_changed(s.mono - 100.0);
    // The master disappears for good.
    s.set("pg1", N::primary().conn(false).db_time(year_2014()));
    let d = s.decide_once();
    assert!(d.actions.contains(&Action::RequestPoll));
    assert!(!d.changed, "a short wait is not worth a log line");
    // No poll round completes.
    s.mono += 10.0;
    let d = s.decide_once();
    assert!(!d.actions.contains(&Action::RequestPoll), "asked only once");
    assert!(d.summary.starts_with("waiting: master pg1 is missing"));
    s.mono += 5.0;
    let d = s.decide_once();
    assert_eq!(
        d.summary,
        "no failover: master pg1 is missing but no fresh poll came in time"
    );
    assert!(d.changed);
    assert_eq!(s.failovers, 0);
    // It starts over: asks again, and acts once a round answers.
    let d = s.decide_once();
    assert!(d.actions.contains(&Action::RequestPoll));
    s.round += 1;
    s.decide_once();
    assert_eq!(s.failovers, 1);
}

#[test]
fn a_fresh_poll_that_shows_the_master_back_cancels_the_failover() {
    let mut s = Sim::new();
    s.set("pg1", N::primary()).set("pg2", N::standby("1/0", 1.0)).own("pg2");
    s.check();
    s.node.memory.nodes_changed(s.mono - 100.0);
    s.set("pg1", N::primary().conn(false).db_time(year_2014()));
    s.decide_once();
    s.set("pg1", N::primary());
    s.round += 1;
    let d = s.decide_once();
    assert_eq!(s.failovers, 0);
    assert_eq!(s.node.memory.missing_master_poll, None);
    assert_eq!(d.summary, "no action: replication lag is under the warning limit");
}

#[test]
fn no_second_failover_while_one_is_running() {
    let mut s = Sim::new();
    s.set("pg1", N::primary().conn(false).db_time(year_2014()))
        .set("pg2", N::standby("1/0", 130.0))
        .own("pg2");
    s.node.memory.replication_lag_over_warning_limit = true;
    s.hold_failover = true; // the shell does not report yet
    s.check();
    assert_eq!(s.failovers, 1);
    for _ in 0..3 {
        s.mono += 10.0;
        let d = s.check();
        assert_eq!(d.summary, "no failover: the failover command is already running");
    }
    assert_eq!(s.failovers, 1);
    // Reported: a success clears the warning.
    s.finish_failover(true);
    assert!(!s.flag());
}

#[test]
fn failover_sleep_time_pauses_decisions_after_the_command() {
    let mut s = Sim::new();
    s.conf("failover_sleep_time", json!(30.0))
        .set("pg1", N::primary().conn(false).db_time(year_2014()))
        .set("pg2", N::standby("1/0", 130.0))
        .own("pg2");
    s.node.memory.replication_lag_over_warning_limit = true;
    s.failover_ok = false;
    s.check();
    assert_eq!(s.failovers, 1);
    s.mono += 29.0;
    let d = s.check();
    assert_eq!(d.summary, "paused: failover_sleep_time after the failover command");
    s.mono += 1.0;
    let d = s.check();
    assert_ne!(d.summary, "paused: failover_sleep_time after the failover command");
}

#[test]
fn an_observer_only_tracks_the_master_and_the_multiple_master_alert() {
    let mut s = Sim::new();
    s.set("pg1", N::primary().conn(false).db_time(year_2014()))
        .set("pg2", N::standby("1/0", 500.0))
        .set("pg3", N::standby("2/0", 500.0));
    let d = s.check();
    assert_eq!(d.summary, "observer: master is pg1");
    assert_eq!(s.failovers, 0);
    assert!(s.gauges.is_empty());
    assert!(!s.flag());
    s.set("pg1", N::primary()).set("pg2", N::primary());
    let d = s.check();
    assert_eq!(d.summary, "observer: more than one connected master");
    assert!(s.alerts.contains(&Alert::MultipleMasterWarning));
    assert_eq!(
        d.master.as_deref(),
        Some("pg1"),
        "a round without a master keeps the last one"
    );
}

#[test]
fn multiple_connected_masters_raise_the_alert_and_never_fail_over() {
    let mut s = Sim::new();
    s.set("pg1", N::primary())
        .set("pg2", N::standby("1/0", 130.0))
        .set("pg3", N::primary())
        .own("pg2");
    s.node.memory.current_master = Some("pg1".into());
    s.node.memory.replication_lag_over_warning_limit = true;
    let d = s.check();
    assert!(s.alerts.contains(&Alert::MultipleMasterWarning));
    assert_eq!(d.summary, "no failover: more than one connected master");
    assert_eq!(d.master.as_deref(), Some("pg1"));
    assert_eq!(s.polls_requested, 0);
    assert_eq!(s.failovers, 0);
}

#[test]
fn a_config_reload_waits_for_a_fresh_poll() {
    let mut s = Sim::new();
    s.set("pg1", N::primary()).set("pg2", N::standby("1/0", 1.0)).own("pg2");
    s.check();
    s.node.config_version = 2;
    let d = s.decide_once();
    assert_eq!(d.actions, [Action::RequestPoll]);
    let d = s.decide_once();
    assert_eq!(d.summary, "waiting: config reloaded, asked for a fresh poll");
    s.round += 1;
    let d = s.decide_once();
    assert_eq!(d.summary, "no action: replication lag is under the warning limit");
    // Bounded: without a round, one check interval later we decide anyway.
    s.node.config_version = 3;
    s.decide_once();
    s.mono += 5.0;
    let d = s.decide_once();
    assert_eq!(d.summary, "no action: replication lag is under the warning limit");
}

#[test]
fn a_failed_follow_is_retried_while_the_master_stays() {
    let mut s = Sim::new();
    s.conf("autofollow", json!(true))
        .conf("primary_conninfo_template", json!("user=rep"))
        .conf("pg_data_directory", json!("/data"))
        .conf("pg_start_command", json!("start"))
        .conf("pg_stop_command", json!("stop"))
        .set("pg1", N::primary())
        .set("pg2", N::standby("1/0", 1.0))
        .own("pg2");
    s.check();
    assert_eq!(s.follows, ["pg1"]);
    s.node.memory.record_follow_result("pg1", false);
    s.mono += 10.0;
    s.check();
    assert_eq!(s.follows.len(), 1);
    s.mono += FOLLOW_RETRY_SECS;
    s.check(); // the harness reports success this time
    assert_eq!(s.follows, ["pg1", "pg1"]);
    s.mono += FOLLOW_RETRY_SECS;
    s.check();
    assert_eq!(s.follows.len(), 2);
}

#[test]
fn catching_up_suppresses_lag_alerts_metrics_and_failover() {
    let mut s = Sim::new();
    s.set("pg1", N::primary().conn(false).db_time(year_2014()))
        .set("pg2", N::standby("1/0", 500.0))
        .own("pg2");
    s.node.memory.current_master = Some("pg1".into());
    // Has never been within the warning limit, replication started 100 s ago.
    let mut n = N::standby("1/0", 500.0);
    n.0.min_replication_time_lag = Some(400.0);
    n.0.replication_start_time = Some((s.mono - 100.0).0);
    s.set("pg2", n.clone());
    let d = s.check();
    assert_eq!(d.summary, "no action: still catching up with the master");
    assert!(s.gauges.is_empty());
    assert!(!s.flag());
    // Past replication_catchup_timeout (300 s) it counts.
    n.0.replication_start_time = Some((s.mono - 301.0).0);
    s.set("pg2", n);
    s.check();
    assert!(s.flag());
    assert!(!s.gauges.is_empty());
}

#[test]
fn ties_go_to_the_highest_name_in_code_point_order() {
    let mut positions: BTreeMap<u64, BTreeSet<String>> = BTreeMap::new();
    positions.insert(
        5,
        ["192.168.100.1".into(), "192.168.63.4".into(), "192.168.54.183".into()].into(),
    );
    positions.insert(4, ["zzz".into()].into());
    assert_eq!(furthest_along(&positions).map(String::as_str), Some("192.168.63.4"));
    assert_eq!(furthest_along(&BTreeMap::new()), None);
}

#[test]
fn an_observer_cannot_downgrade_a_master_we_reach() {
    let mut own = BTreeMap::new();
    own.insert("pg1".to_string(), N::primary().0);
    own.insert("pg2".to_string(), N::standby("1/0", 1.0).0);
    let mut seen = BTreeMap::new();
    seen.insert("pg1".to_string(), N::primary().conn(false).0);
    let observers = one_observer("obs", now(), true, seen);
    let map = node_map(&own, &observers, Some("pg2"), 5.0);
    assert_eq!(map.master.as_deref(), Some("pg1"));
    assert!(map.master_state().is_some_and(|m| m.connection));
    assert!(map.disconnected_masters.is_empty());
}

#[test]
fn the_newest_disconnected_master_stands_for_the_master() {
    let mut own = BTreeMap::new();
    own.insert("a".to_string(), N::primary().conn(false).db_time(ago(600)).0);
    own.insert("b".to_string(), N::primary().conn(false).db_time(ago(60)).0);
    own.insert("c".to_string(), N::primary().conn(false).db_time(ago(300)).0);
    let no_observers = BTreeMap::new();
    let map = node_map(&own, &no_observers, None, 5.0);
    assert_eq!(map.master.as_deref(), Some("b"));
}

#[test]
fn observer_reports_without_a_role_are_noted_and_ignored() {
    let mut own = BTreeMap::new();
    own.insert("pg1".to_string(), N::primary().0);
    let mut seen = BTreeMap::new();
    seen.insert("pg1".to_string(), NodeState::new(now(), false));
    let observers = one_observer("obs", now(), false, seen);
    let map = node_map(&own, &observers, None, 5.0);
    assert_eq!(map.disconnected_observers, 1);
    assert_eq!(
        map.notes,
        ["observer obs does not know whether pg1 is in recovery; ignored"]
    );
}

#[test]
fn summaries_change_only_when_the_situation_does_and_serialize_to_json() {
    let mut s = Sim::new();
    s.set("pg1", N::primary()).set("pg2", N::standby("1/0", 1.0)).own("pg2");
    let first = s.check();
    assert!(first.changed);
    s.set("pg2", N::standby("1/0", 2.5));
    let second = s.check();
    assert!(!second.changed);
    let v = serde_json::to_value(&first).expect("json");
    assert_eq!(v["master"], json!("pg1"));
    assert_eq!(
        v["summary"],
        json!("no action: replication lag is under the warning limit")
    );
    let actions = serde_json::to_value([
        Action::RequestPoll,
        Action::CreateAlert(Alert::FailoverHasHappened),
        Action::FollowMaster { master: "pg1".into() },
    ])
    .expect("json");
    assert_eq!(
        actions,
        json!(["request_poll", {"create_alert": "failover_has_happened"}, {"follow_master": {"master": "pg1"}}])
    );
    let names: Vec<&str> = Alert::ALL.iter().map(|a| a.file_name()).collect();
    assert_eq!(
        names,
        [
            "authentication_error",
            "multiple_master_warning",
            "replication_delay_warning",
            "failover_has_happened",
            "fenced",
            "fence_failed",
            "failover_blocked",
            "rejoin_failed",
            "reinit_failed",
            "voters_mismatch",
            "synchronous_degraded",
            "synchronous_setting_failed",
            "cluster_paused"
        ]
    );
}

/// Regression (found by the failover integration tests): standbys whose own probe of a live
/// primary hangs (our fetch_time is then the start of a probe that takes the whole probe
/// timeout) ignored the observer's fresher report that the primary is connected, because
/// upstream's window was symmetric, and failed over while the observer still reached it.
#[test]
fn an_observer_report_newer_than_ours_by_more_than_a_poll_interval_still_counts() {
    let mut s = Sim::new();
    s.conf("db_poll_interval", json!(0.5))
        .conf("max_failover_replication_time_lag", json!(5.0))
        .conf("warning_replication_time_lag", json!(2.0))
        .set("pg1", N::primary().conn(false).db_time(ago(60)).fetched(ago(5)))
        .set("pg2", N::standby("1/10", 0.1))
        .set("pg3", N::standby("1/10", 0.1))
        .own("pg3")
        .observe("obs", "pg1", N::primary())
        .observe("obs", "pg2", N::standby("1/10", 0.1))
        .observe("obs", "pg3", N::standby("1/10", 0.1));
    s.node.memory.current_master = Some("pg1".into());
    s.mono = MONO0 + 60.0;
    for _ in 0..3 {
        let d = s.check();
        assert_eq!(d.master.as_deref(), Some("pg1"));
    }
    assert_eq!(s.failovers, 0, "{}", s.all_reasons());
    assert!(
        s.all_reasons()
            .contains("observer obs reaches pg1 as a connected master, which we do not"),
        "{}",
        s.all_reasons()
    );

    // A report older than ours by a poll interval or more still does not count.
    s.observe("obs", "pg1", N::primary().fetched(ago(6)));
    s.check();
    assert_eq!(s.failovers, 1, "{}", s.all_reasons());
}

/// Two disconnected copies of the master (ours and an observer's): the one that saw it alive
/// last stands, so an observer that lost the master long before we did cannot make the
/// recent-contact check pass early (upstream took the observer's copy whatever it said).
#[test]
fn of_two_disconnected_copies_of_the_master_the_later_contact_stands() {
    let pair = |ours: i64, theirs: i64| {
        let mut own = BTreeMap::new();
        own.insert("pg1".to_string(), N::primary().conn(false).db_time(ago(ours)).0);
        let mut seen = BTreeMap::new();
        seen.insert("pg1".to_string(), N::primary().conn(false).db_time(ago(theirs)).0);
        let observers = one_observer("obs", now(), true, seen);
        let map = node_map(&own, &observers, Some("pg2"), 5.0);
        map.disconnected_masters["pg1"].pg.as_ref().and_then(|p| p.db_time)
    };
    assert_eq!(pair(2, 60), Some(ago(2)));
    assert_eq!(pair(60, 2), Some(ago(2)));

    let mut s = Sim::new();
    s.conf("max_failover_replication_time_lag", json!(5.0))
        .set("pg1", N::primary().conn(false).db_time(ago(2)))
        .set("pg2", N::standby("1/10", 0.1))
        .own("pg2")
        .observe("obs", "pg1", N::primary().conn(false).db_time(ago(60)))
        .observe("obs", "pg2", N::standby("1/10", 0.1));
    s.node.memory.current_master = Some("pg1".into());
    s.mono = MONO0 + 60.0;
    let d = s.check();
    assert_eq!(s.failovers, 0, "{}", s.all_reasons());
    assert_eq!(d.summary, "no failover: master pg1 was reached too recently");
}

#[test]
fn regression_a_successful_failover_command_is_not_run_again_while_promotion_shows() {
    // upstream ran it again on the next loop if the node still looked like a standby
    let mut s = Sim::new();
    s.set("pg1", N::primary().conn(false).db_time(year_2014()))
        .set("pg2", N::standby("2/0", 130.0))
        .own("pg2");
    s.node.memory.replication_lag_over_warning_limit = true;
    s.check();
    assert_eq!(s.failovers, 1);
    // the promotion has not shown yet: our node still answers as a standby
    for _ in 0..3 {
        s.mono += 5.0;
        s.round += 1;
        let d = s.check();
        assert_eq!(s.failovers, 1, "{d:?}");
    }
    // long after, still a standby: the command may run again
    s.mono += 200.0;
    s.round += 1;
    s.check();
    assert_eq!(s.failovers, 2);
}

/// A standby whose own PostgreSQL stopped answering has no current replication lag: its last
/// polled lag (kept in the state, as upstream) is neither reported as a gauge nor acted on.
#[test]
fn regression_a_dead_own_node_reports_no_lag() {
    let mut s = Sim::new();
    s.set("pg1", N::primary())
        .set("pg2", N::standby("1/10", 45.0))
        .own("pg2");
    s.node.memory.current_master = Some("pg1".into());
    s.node.memory.replication_lag_over_warning_limit = true;
    s.mono = MONO0 + 1000.0; // long past catching up
    s.check();
    assert!(s.gauges.iter().any(|(n, v)| n == "pg.replication_lag" && *v == 45.0));
    s.gauges.clear();
    s.set("pg2", N::standby("1/10", 45.0).conn(false));
    let d = s.check();
    assert!(s.gauges.is_empty(), "{:?}", s.gauges);
    assert!(d.summary.contains("own replication lag is unknown"), "{}", d.summary);
    assert!(!d.reasons.iter().any(|r| r.contains("45.0")), "{:?}", d.reasons);
}

// ---------------------------------------------------------------------------------------
// Fencing and the fast unreachable-master trigger (docs/safety.md)
// ---------------------------------------------------------------------------------------

const OBSERVERS: [&str; 3] = ["o1", "o2", "o3"];

/// pg1 is our node, the primary (timeline 1); pg2 a standby; three dedicated observers see
/// both. pg2's daemon is not among pg1's observers, so the voters are the three observers
/// (our own view is not a vote): a layout the config accepts only with
/// `allow_fragile_lease` (see `mesh` below for the one it accepts as it is).
fn fenced_primary() -> Sim {
    let mut s = Sim::new();
    s.conf("fence_command", json!("/usr/bin/fence"))
        .conf("allow_fragile_lease", json!(true))
        .conf("db_poll_interval", json!(1.0))
        .conf("db_poll_timeout", json!(1.0))
        .conf("replication_state_check_interval", json!(1.0))
        .conf("max_failover_replication_time_lag", json!(20.0))
        .conf("fence_timeout", json!(5.0))
        .conf(
            "observers",
            json!({"o1": "http://o1:15000", "o2": "http://o2:15000", "o3": "http://o3:15000"}),
        )
        .set("pg1", timeline(N::primary(), 1))
        .set("pg2", N::standby("1/10", 0.5))
        .own("pg1");
    for o in OBSERVERS {
        s.observe(o, "pg1", N::primary())
            .observe(o, "pg2", N::standby("1/10", 0.5));
    }
    s
}

fn timeline(mut n: N, t: u32) -> N {
    n.pg().timeline = Some(t);
    n
}

/// Observer `o` now reports pg1 with `connected` (or is unreachable itself when `None`).
fn report(s: &mut Sim, o: &str, connected: Option<bool>) {
    let entry = s.observers.get_mut(o).expect("observer");
    match connected {
        None => entry.connection = false,
        Some(c) => {
            entry.connection = true;
            if let Some(n) = Arc::make_mut(&mut entry.nodes).get_mut("pg1") {
                n.connection = c;
            }
        }
    }
}

/// Runs checks one second apart for `secs` seconds; returns the fences ordered meanwhile.
fn run_for(s: &mut Sim, secs: usize) -> usize {
    let before = s.fences;
    for _ in 0..secs {
        s.mono += 1.0;
        s.round += 1;
        s.check();
    }
    s.fences - before
}

#[test]
fn without_fence_command_nothing_is_ever_fenced() {
    let mut s = fenced_primary();
    s.json.as_object_mut().expect("obj").remove("fence_command");
    for o in OBSERVERS {
        report(&mut s, o, None);
    }
    assert_eq!(run_for(&mut s, 60), 0);
    assert!(!s.alerts.contains(&Alert::Fenced));
}

/// A primary whose daemon restarts (the intervals shortened so that the startup window,
/// 2I + 2P + 2C = 3 s, is under fence_timeout, 5 s), its voters silent: the checks, one
/// second apart, until the first fence.
fn restarted_primary_fences_after(renewed: Option<Timestamp>) -> usize {
    let mut s = fenced_primary();
    s.conf("db_poll_interval", json!(0.5))
        .conf("db_poll_timeout", json!(0.5))
        .conf("replication_state_check_interval", json!(0.5));
    for o in OBSERVERS {
        report(&mut s, o, None);
    }
    s.node.memory = Memory::new(s.mono);
    if let Some(renewed) = renewed {
        let config = s.config();
        fence::restore_lease(&mut s.node.memory, &config, renewed, s.now, s.mono);
    }
    (1..=10).find(|_| run_for(&mut s, 1) > 0).unwrap_or(usize::MAX)
}

#[test]
fn regression_a_restarted_daemon_counts_its_lease_from_the_state_file() {
    // The previous run last saw the voters vouch 30 s ago (its node has been cut off since):
    // the lease has run out, and it is fenced once the voters have had the startup window to
    // answer, not a whole fence_timeout after the restart (found by the simulator).
    assert_eq!(restarted_primary_fences_after(Some(ago(30))), 3);
    // Renewed 1 s before the restart: the 4 s left of it.
    assert_eq!(restarted_primary_fences_after(Some(ago(1))), 4);
    // No state file (the first start, or the original's file): the lease counts from the start.
    assert_eq!(restarted_primary_fences_after(None), 5);
    // A renewal in the future (the wall clock stepped back): counts as now.
    assert_eq!(restarted_primary_fences_after(Some(s_later(60))), 5);
}

/// Rule 1b: a daemon restarted with its lease still held (renewed 1 s before) cannot reach its
/// node while another node is a connected primary on a newer timeline: ours may be the stale
/// primary, frozen, and take writes on resume, so it is fenced once a second poll round fails
/// to reach it too, well before the lease (4 s left) would. One failed round is not enough: a
/// healthy standby whose first probe is slow is not stopped (chaos seed 414 run 9).
#[test]
fn a_node_not_reached_in_two_rounds_since_start_is_fenced_when_another_is_primary() {
    let restarted = |second_round: Option<N>| {
        let mut s = fenced_primary();
        let mut never = N::primary().conn(false);
        never.0.pg = None;
        s.set("pg1", never).set("pg2", timeline(N::primary(), 2));
        for o in OBSERVERS {
            report(&mut s, o, Some(false));
        }
        s.node.memory = Memory::new(s.mono);
        let config = s.config();
        fence::restore_lease(&mut s.node.memory, &config, ago(1), s.now, s.mono);
        let first = run_for(&mut s, 1);
        assert!(
            s.all_reasons()
                .contains("fenced if the next poll round does not reach it either"),
            "{}",
            s.all_reasons()
        );
        if let Some(n) = second_round {
            s.set("pg1", n);
        }
        (first, run_for(&mut s, 1), s)
    };
    let (first, second, s) = restarted(None);
    assert_eq!((first, second), (0, 1), "{}", s.all_reasons());
    assert!(
        s.all_reasons().contains(
            "pg1 has not been reached in two poll rounds since this daemon started and pg2 is a connected primary"
        ),
        "{}",
        s.all_reasons()
    );
    // The second round reaches it as a standby: it is not fenced, then or later.
    let (first, second, mut s) = restarted(Some(N::standby("1/10", 0.5)));
    assert_eq!((first, second), (0, 0), "{}", s.all_reasons());
    assert_eq!(run_for(&mut s, 10), 0, "{}", s.all_reasons());
}

fn s_later(secs: i64) -> Timestamp {
    now() + Duration::seconds(secs)
}

#[test]
fn the_lease_written_to_the_state_file_is_the_last_renewal() {
    let mut s = fenced_primary();
    assert_eq!(fence::lease_renewed_wall(&s.node.memory, s.now, s.mono), None);
    run_for(&mut s, 3);
    let renewed = fence::lease_renewed_wall(&s.node.memory, s.now, s.mono);
    assert_eq!(renewed, Some(s.now));
    for o in OBSERVERS {
        report(&mut s, o, None);
    }
    run_for(&mut s, 2);
    // wall_now stands still in this test while mono runs: the renewal is 2 s before it
    assert_eq!(fence::lease_renewed_wall(&s.node.memory, s.now, s.mono), Some(ago(2)));
}

#[test]
fn regression_a_restarted_standby_counts_the_lag_window_from_its_start() {
    // Without fencing. pg2's daemon restarted while pg1 was frozen: pg1 was never reached
    // since, and the observer's copy of it is too old to count, so there is no last contact.
    // The lag window counts from our start (found by the simulator: pg2 promoted at once
    // as pg1 resumed, while pg3's daemon, knowing the last contact, waited).
    let mut s = Sim::new();
    s.set("pg1", N(NodeState::new(now(), false)))
        .set("pg2", N::standby("1/10", 30.0))
        .own("pg2");
    s.node.memory.current_master = Some("pg1".into());
    s.mono += 20.0; // past the grace after the start
    let d = s.check();
    assert_eq!(s.failovers, 0, "{d:?}");
    assert!(
        s.all_reasons()
            .contains("last contact with master pg1 was 20.0 s ago, under max_failover_replication_time_lag 120 s"),
        "{}",
        s.all_reasons()
    );
    s.mono += 101.0;
    s.check();
    assert_eq!(s.failovers, 1, "{}", s.all_reasons());
    // The operator's word that it is gone still counts at once, as upstream.
    let mut s = Sim::new();
    s.set("pg1", N(NodeState::new(now(), false)))
        .set("pg2", N::standby("1/10", 30.0))
        .own("pg2")
        .conf("known_gone_nodes", json!(["pg1"]));
    s.node.memory.current_master = Some("pg1".into());
    s.check();
    assert_eq!(s.failovers, 1, "{}", s.all_reasons());
}

#[test]
fn a_lease_kept_by_a_majority_never_fences_even_with_a_dead_observer() {
    let mut s = fenced_primary();
    report(&mut s, "o3", None); // a dead observer
    assert_eq!(run_for(&mut s, 60), 0, "{}", s.all_reasons());
    // and one that cannot reach us, on top: still 2 of 3 would be needed, 1 is not enough
    report(&mut s, "o2", Some(false));
    assert_eq!(run_for(&mut s, 4), 0, "fence_timeout 5 s has not run out");
    assert_eq!(run_for(&mut s, 2), 1, "{}", s.all_reasons());
}

#[test]
fn a_lost_lease_fences_once_and_the_fence_lasts_until_the_node_is_a_standby() {
    let mut s = fenced_primary();
    run_for(&mut s, 3);
    for o in OBSERVERS {
        report(&mut s, o, Some(false));
    }
    assert_eq!(run_for(&mut s, 4), 0);
    assert_eq!(run_for(&mut s, 2), 1, "{}", s.all_reasons());
    assert!(s.alerts.contains(&Alert::Fenced));
    let d = s
        .decisions
        .iter()
        .rev()
        .find(|d| d.summary.starts_with("fence:"))
        .expect("fence decision");
    assert!(
        d.reasons
            .iter()
            .any(|r| r.contains("fewer than half of the voters have reported pg1 connected")),
        "{:?}",
        d.reasons
    );
    // the fence stopped pg1; never twice for one event
    s.set("pg1", timeline(N::primary(), 1).conn(false));
    assert_eq!(run_for(&mut s, 30), 0);
    assert!(!s.alerts.contains(&Alert::FenceFailed));
    // our node comes back as a standby (followed the new primary): the fence is lifted
    s.set("pg1", N::standby("1/10", 0.5));
    run_for(&mut s, 1);
    assert!(!s.alerts.contains(&Alert::Fenced));
}

#[test]
fn a_blip_shorter_than_fence_timeout_does_not_fence() {
    let mut s = fenced_primary();
    for _ in 0..5 {
        for o in OBSERVERS {
            report(&mut s, o, Some(false));
        }
        assert_eq!(run_for(&mut s, 3), 0, "{}", s.all_reasons());
        for o in OBSERVERS {
            report(&mut s, o, Some(true));
        }
        assert_eq!(run_for(&mut s, 1), 0);
    }
}

#[test]
fn unreachable_observers_are_no_news_and_no_news_fences() {
    let mut s = fenced_primary();
    for o in OBSERVERS {
        report(&mut s, o, None);
    }
    assert_eq!(run_for(&mut s, 6), 1, "{}", s.all_reasons());
}

#[test]
fn without_observers_the_lease_rule_is_off() {
    let mut s = fenced_primary();
    s.json.as_object_mut().expect("obj").remove("observers");
    s.observers.clear();
    assert_eq!(run_for(&mut s, 60), 0, "{}", s.all_reasons());
}

#[test]
fn a_connected_primary_on_a_newer_timeline_fences_at_once_and_equal_ones_never() {
    let mut s = fenced_primary();
    // equal timelines: two primaries must never fence each other
    s.set("pg2", timeline(N::primary(), 1));
    assert_eq!(run_for(&mut s, 3), 0);
    assert!(s.alerts.contains(&Alert::MultipleMasterWarning));
    // unknown timeline: no fence either
    s.set("pg2", N::primary());
    assert_eq!(run_for(&mut s, 3), 0);
    // pg2 was promoted: timeline 2
    s.set("pg2", timeline(N::primary(), 2));
    assert_eq!(run_for(&mut s, 1), 1, "{}", s.all_reasons());
    let d = s.decisions.last().expect("decision");
    assert!(
        d.reasons
            .iter()
            .any(|r| r.contains("pg2 is a connected primary on timeline 2")),
        "{:?}",
        d.reasons
    );
    // only the stale side fences: pg2's daemon sees pg1 on the older timeline
    let mut other = fenced_primary();
    other
        .set("pg1", timeline(N::primary(), 1))
        .set("pg2", timeline(N::primary(), 2))
        .own("pg2");
    assert_eq!(run_for(&mut other, 3), 0, "{}", other.all_reasons());
}

#[test]
fn a_failed_fence_is_retried() {
    let mut s = fenced_primary();
    s.fence_ok = false;
    s.set("pg2", timeline(N::primary(), 2));
    assert_eq!(run_for(&mut s, 1), 1);
    s.fence_ok = true;
    assert_eq!(run_for(&mut s, 3), 1, "{}", s.all_reasons());
    // the fence stopped pg1: no more fences
    s.set("pg1", timeline(N::primary(), 1).conn(false));
    assert_eq!(run_for(&mut s, 10), 0, "{}", s.all_reasons());
}

/// Issue 18, finding 3: a fence command that exits 0 and leaves the node a primary (a
/// supervisor restarted it, the command missed it) is seen by the polls after it, run again at
/// once and then with a backoff, and reported (`fence_failed`, the decision's reasons).
#[test]
fn a_fence_that_did_not_hold_is_run_again_and_raises_fence_failed() {
    let mut s = fenced_primary();
    s.fence_holds = false;
    s.set("pg2", timeline(N::primary(), 2));
    assert_eq!(run_for(&mut s, 1), 1);
    // the command "worked" but pg1 still answers as a primary: the next decision asks for a
    // poll, and the round after it (probes that began after the fence) fences it again at once
    let polls = s.polls_requested;
    assert_eq!(run_for(&mut s, 1), 1, "{}", s.all_reasons());
    assert_eq!(s.polls_requested, polls + 1);
    assert!(s.alerts.contains(&Alert::FenceFailed));
    assert!(s.all_reasons().contains("did not hold"), "{}", s.all_reasons());
    // still up: again, with a growing wait between the attempts
    let fences = run_for(&mut s, 30);
    assert!(
        (3..=8).contains(&fences),
        "{fences} fences in 30 s: {}",
        s.all_reasons()
    );
    // the fence holds at last: nothing more
    s.set("pg1", timeline(N::primary(), 1).conn(false));
    assert_eq!(run_for(&mut s, 30), 0, "{}", s.all_reasons());
    // it comes back as a standby of pg2: both alerts go
    s.set("pg1", N::standby("1/10", 0.5));
    run_for(&mut s, 1);
    assert!(!s.alerts.contains(&Alert::Fenced) && !s.alerts.contains(&Alert::FenceFailed));
}

/// The lease ran out in a blip of the links and the fence "worked", but the node answers again
/// as a primary that the voters vouch for, with no other primary: nobody could promote
/// meanwhile, so it is not fenced again; after a whole fence_timeout the fence is lifted
/// (brought back on purpose) and the rules run afresh.
#[test]
fn a_fenced_node_back_with_its_lease_is_not_fenced_again() {
    let mut s = fenced_primary();
    s.fence_holds = false;
    for o in OBSERVERS {
        report(&mut s, o, Some(false));
    }
    let mut waited = 0;
    while s.fences == 0 && waited < 10 {
        run_for(&mut s, 1);
        waited += 1;
    }
    assert_eq!(s.fences, 1, "{}", s.all_reasons());
    // the blip ends as the fence runs: the voters vouch for pg1 again
    for o in OBSERVERS {
        report(&mut s, o, Some(true));
    }
    assert_eq!(run_for(&mut s, 30), 0, "{}", s.all_reasons());
    assert!(s.all_reasons().contains("no longer holds"), "{}", s.all_reasons());
    assert!(!s.alerts.contains(&Alert::FenceFailed));
    // lifted: a lost lease is a new event (this fence holds)
    s.fence_holds = true;
    for o in OBSERVERS {
        report(&mut s, o, Some(false));
    }
    assert_eq!(run_for(&mut s, 6), 1, "{}", s.all_reasons());
}

/// pg2 is our standby; the master pg1 dies; three observers.
fn fast_standby(unreachable_to: &[&str]) -> Sim {
    let mut s = Sim::new();
    s.conf("unreachable_master_failover_timeout", json!(6.0))
        .conf("max_failover_replication_time_lag", json!(60.0))
        .conf("db_poll_interval", json!(1.0))
        .conf(
            "observers",
            json!({"o1": "http://o1:15000", "o2": "http://o2:15000", "o3": "http://o3:15000"}),
        )
        .set("pg1", N::primary().conn(false))
        .set("pg2", N::standby("1/10", 0.5))
        .own("pg2");
    // the observers that do not report the master unreachable are down (one that reached the
    // master would make it connected for everyone: the node map takes its word)
    for o in OBSERVERS {
        s.observe(o, "pg1", N::primary().conn(false).db_time(now()))
            .observe(o, "pg2", N::standby("1/10", 0.5));
        if !unreachable_to.contains(&o) {
            s.observers.get_mut(o).expect("observer").connection = false;
        }
    }
    s.node.memory.current_master = Some("pg1".into());
    s.mono = MONO0 + 100.0; // long after start
    s
}

#[test]
fn the_fast_trigger_fails_over_once_the_master_is_unreachable_to_a_majority() {
    let mut s = fast_standby(&["o1", "o2"]);
    let mut seconds = 0;
    while s.failovers == 0 && seconds < 30 {
        s.mono += 1.0;
        s.round += 1;
        s.check();
        seconds += 1;
    }
    assert_eq!(s.failovers, 1, "{}", s.all_reasons());
    assert!((6..=8).contains(&seconds), "failed over after {seconds} s");
    assert!(s
        .all_reasons()
        .contains("reported gone by a strict majority of the voters"));
}

#[test]
fn the_fast_trigger_needs_a_majority_of_the_observers() {
    // one of three observers cannot reach the master: not enough
    let mut s = fast_standby(&["o1"]);
    run_for(&mut s, 30);
    assert_eq!(s.failovers, 0, "{}", s.all_reasons());
}

#[test]
fn the_fast_trigger_does_not_count_observers_we_cannot_reach() {
    let mut s = fast_standby(&["o1", "o2"]);
    s.observers.get_mut("o2").expect("o2").connection = false;
    run_for(&mut s, 30);
    assert_eq!(s.failovers, 0, "{}", s.all_reasons());
}

/// Found by the simulator (`restarted_daemon_never_fences_a_node_it_never_reached`): a daemon
/// that has never reached its node since it started cannot know it is a standby; the lease
/// applies, and fences it when the observers do not vouch for it either.
#[test]
fn a_node_never_reached_since_start_is_under_the_lease() {
    let mut s = fenced_primary();
    let mut never = N::primary().conn(false);
    never.0.pg = None;
    s.set("pg1", never);
    for o in OBSERVERS {
        report(&mut s, o, Some(false));
    }
    assert_eq!(run_for(&mut s, 4), 0, "fence_timeout 5 s has not run out");
    assert_eq!(run_for(&mut s, 2), 1, "{}", s.all_reasons());
}

/// Found by the simulator (`two_standbys_promote_when_they_cannot_reach_each_other`): our own
/// probe of "zed" failed after the observer's last report of it (so the node map keeps ours),
/// but the observer has it connected at the same position; "zed" wins the tie (higher name),
/// so we ("own") do not promote. Before the fix both promoted.
#[test]
fn a_standby_we_do_not_reach_but_an_observer_does_is_still_a_candidate() {
    let mut s = Sim::new();
    s.conf("observers", json!({"observer": "http://observer:15000"}))
        .set("old_master", N::primary().conn(false).db_time(year_2014()))
        .set("own", N::standby("1/aaaaaaaa", 130.0))
        .own("own")
        .set("zed", N::standby("1/aaaaaaaa", 130.0).conn(false))
        .observe("observer", "old_master", N::primary().conn(false).db_time(year_2014()))
        .observe("observer", "zed", N::standby("1/aaaaaaaa", 130.0).fetched(ago(1)))
        .observe("observer", "own", N::standby("1/aaaaaaaa", 130.0));
    s.check();
    s.check();
    assert_eq!(s.exec(), 0, "{}", s.all_reasons());
    let reasons = s.all_reasons();
    assert!(
        reasons.contains("a fresh observer report has it connected"),
        "{reasons}"
    );
    assert!(reasons.contains("node zed is furthest along"), "{reasons}");
}

/// Found by the simulator (`asymmetric_partition_hides_a_promoting_standby`): we reach the
/// observers, but they do not reach our node; they take it for gone, so a standby on their side
/// may promote too. We promote only once at least half of the fresh reports that list our node
/// have it connected.
#[test]
fn a_standby_most_observers_cannot_see_does_not_promote() {
    let mut s = Sim::new();
    s.conf(
        "observers",
        json!({"o1": "http://o1:15000", "o2": "http://o2:15000", "o3": "http://o3:15000"}),
    )
    .set("old_master", N::primary().conn(false).db_time(year_2014()))
    .set("own", N::standby("1/aaaaaaaa", 130.0))
    .own("own");
    for o in ["o1", "o2", "o3"] {
        s.observe(o, "old_master", N::primary().conn(false).db_time(year_2014()));
    }
    s.observe("o1", "own", N::standby("1/aaaaaaaa", 130.0))
        .observe("o2", "own", N::standby("1/aaaaaaaa", 130.0).conn(false))
        .observe("o3", "own", N::standby("1/aaaaaaaa", 130.0).conn(false));
    s.check();
    s.check();
    assert_eq!(s.exec(), 0, "{}", s.all_reasons());
    assert!(
        s.all_reasons()
            .contains("only 1 of 3 fresh observer reports that list own have it connected"),
        "{}",
        s.all_reasons()
    );
    // one more observer reaches us: two of three, the failover goes ahead
    s.observe("o2", "own", N::standby("1/aaaaaaaa", 130.0));
    s.check();
    s.check();
    assert_eq!(s.exec(), 1, "{}", s.all_reasons());
}

/// Found by the simulator (`a_foreign_observer_does_not_fence_a_healthy_primary`): one observer
/// (a wrong URL, another cluster's daemon) calls pg2, which we reach as a standby, a connected
/// primary on a newer timeline. Neither the newer-timeline fence nor the node map takes one
/// observer's word over our own poll; a majority of the observers is believed (our probe of the
/// new primary may be the one failing).
#[test]
fn one_observer_calling_a_standby_a_newer_primary_fences_nothing() {
    let mut s = fenced_primary();
    s.observe("o1", "pg2", timeline(N::primary(), 42));
    assert_eq!(run_for(&mut s, 3), 0, "{}", s.all_reasons());
    assert!(!s.alerts.contains(&Alert::MultipleMasterWarning), "{}", s.all_reasons());
    // we do not reach pg2 any more, and a majority of the observers has it as a primary
    s.set("pg2", N::standby("1/10", 0.5).conn(false));
    s.observe("o2", "pg2", timeline(N::primary(), 42));
    assert_eq!(run_for(&mut s, 1), 1, "{}", s.all_reasons());
}

/// Found by the simulator (`a_restart_without_the_primary_in_the_config_does_not_promote`):
/// with no master seen since start, a standby waits for every observer's first answer, and a
/// connected primary in a fresh report stops it, even one our config does not list.
#[test]
fn with_no_master_since_start_the_observers_are_heard_first() {
    let mut s = Sim::new();
    s.conf("observers", json!({"o1": "http://o1:15000"}))
        .set("pg1", N::standby("1/0", 0.5))
        .set("pg2", N::standby("1/0", 0.5))
        .own("pg2");
    let d = s.check();
    assert_eq!(s.failovers, 0, "{d:?}");
    assert!(d.summary.contains("some observers not heard from yet"), "{d:?}");
    // the observer reaches a primary our config lacks (a reload took it out)
    s.observe("o1", "pg0", N::primary());
    let d = s.check();
    assert_eq!(s.failovers, 0, "{d:?}");
    assert!(
        d.summary.contains("observer o1 reaches pg0 as a connected primary"),
        "{d:?}"
    );
    // it is gone there too: scenario 12 as upstream, pg2 (highest name) promotes
    s.observe("o1", "pg0", N::primary().conn(false));
    s.check();
    s.check();
    assert_eq!(s.failovers, 1, "{}", s.all_reasons());
}

// ---------------------------------------------------------------------------------------
// Failover policy: data-loss cap, priorities, strict majority
// ---------------------------------------------------------------------------------------

/// A master gone since 2014, last seen at `at` (its current WAL position).
fn gone_master(at: &str) -> N {
    N::primary().replay(at).conn(false).db_time(year_2014())
}

#[test]
fn the_lag_cap_skips_a_preferred_standby_too_far_behind_and_blocks_when_none_qualifies() {
    let mut s = Sim::new();
    s.conf("max_failover_lag_bytes", json!(1_048_576))
        .conf("failover_priorities", json!({"own": 500}))
        .set("old_master", gone_master("1/3000000"))
        // 32 MiB behind the master and 31 MiB behind other: outside the cap's window of the
        // furthest standby, whatever its priority
        .set("own", N::standby("1/1000000", 130.0))
        // exactly 1 MiB behind: within it
        .set("other", N::standby("1/2F00000", 130.0))
        .own("own");
    s.check();
    s.check();
    assert_eq!(s.exec(), 0, "{}", s.all_reasons());
    let reasons = s.all_reasons();
    assert!(reasons.contains("node other is furthest along"), "{reasons}");
    assert!(!s.alerts.contains(&Alert::FailoverBlocked));

    // the only standby within the cap is gone: it may be promoting for a while, then nobody
    // qualifies
    s.set("other", N::standby("1/2F00000", 130.0).conn(false));
    s.check();
    let d = s.check();
    assert_eq!(d.summary, "no failover: other may be promoting");
    later(&mut s, 130);
    s.check();
    assert_eq!(s.exec(), 0, "{}", s.all_reasons());
    assert!(s.alerts.contains(&Alert::FailoverBlocked), "{}", s.all_reasons());
    let last = s.decisions.last().expect("decision");
    assert_eq!(
        last.summary,
        "no failover: every candidate is beyond max_failover_lag_bytes"
    );

    // the master is back: the alert goes
    s.set("old_master", N::primary().replay("1/3000000"));
    s.check();
    assert!(!s.alerts.contains(&Alert::FailoverBlocked), "{}", s.all_reasons());
}

/// `synchronous_mode` on: only a standby known to have every acknowledged write is a
/// candidate, even when an asynchronous one is further along; with too few of the listed ones
/// reachable, or a primary that was asynchronous, the failover waits with `failover_blocked`.
#[test]
fn synchronous_mode_promotes_only_a_standby_with_every_acknowledged_write() {
    let setup = |names: &str| {
        let mut s = Sim::new();
        s.conf("synchronous_mode", json!("on"))
            .set("old_master", gone_master("1/3000000").sync_names(names))
            // own is further along, but asynchronous in the first case
            .set("own", N::standby("1/3000000", 130.0))
            .set("other", N::standby("1/2F00000", 130.0))
            .own("own");
        // long past the start's grace period
        s.node.memory.nodes_changed(s.mono - 100.0);
        s
    };
    // only other is listed: it is the candidate, not us (further along, asynchronous)
    let mut s = setup("FIRST 1 (other)");
    s.check();
    s.check();
    assert_eq!(s.exec(), 0, "{}", s.all_reasons());
    assert!(
        s.all_reasons().contains("node other is furthest along"),
        "{}",
        s.all_reasons()
    );
    // ANY 1 of the two: both are reachable, the furthest (us) has every acknowledged write
    let mut s = setup("ANY 1 (own, other)");
    s.check();
    s.check();
    assert_eq!(s.failovers, 1, "{}", s.all_reasons());
    // ANY 1 of three, one of them not reachable: nobody is known to have them all
    let mut s = setup("ANY 1 (own, other, pg9)");
    s.check();
    let d = s.check();
    assert_eq!(s.exec(), 0, "{}", s.all_reasons());
    assert!(
        d.summary.contains("2 of the 3 synchronous standbys are reachable"),
        "{}",
        d.summary
    );
    assert!(s.alerts.contains(&Alert::FailoverBlocked));
    let written = s.decisions.iter().flat_map(|d| &d.actions).find_map(|a| match a {
        Action::WriteAlert(Alert::FailoverBlocked, text) => Some(text.clone()),
        _ => None,
    });
    assert_eq!(
        written.as_deref(),
        Some(d.summary.as_str()),
        "the file holds the reason"
    );
    // an asynchronous primary: no standby may be promoted
    let mut s = setup("");
    s.check();
    let d = s.check();
    assert_eq!(s.exec(), 0, "{}", s.all_reasons());
    assert!(d.summary.contains("no synchronous standby"), "{}", d.summary);
    // off, as the original: the furthest along
    let mut s = setup("FIRST 1 (other)");
    s.conf("synchronous_mode", json!("off"));
    s.check();
    s.check();
    assert_eq!(s.failovers, 1, "{}", s.all_reasons());
    // a priority within the lag cap does not pick one that is behind: only the furthest of
    // the synchronous ones is known to have every write (off would promote other here)
    for (mode, promoted_here) in [("on", 1), ("off", 0)] {
        let mut s = setup("ANY 1 (own, other)");
        s.conf("synchronous_mode", json!(mode))
            .conf("failover_priorities", json!({"other": 200}))
            .conf("max_failover_lag_bytes", json!(64 << 20));
        s.check();
        s.check();
        assert_eq!(s.failovers, promoted_here, "{mode}: {}", s.all_reasons());
    }
    // a voter's view of the old primary counts too: its setting listed a third standby
    let mut s = setup("ANY 1 (own, other)");
    s.conf("observers", json!({"obs": "http://obs:15000"}))
        .observe(
            "obs",
            "old_master",
            gone_master("1/3000000").sync_names("ANY 1 (own, other, pg9)"),
        )
        .observe("obs", "own", N::standby("1/3000000", 130.0))
        .observe("obs", "other", N::standby("1/2F00000", 130.0));
    s.check();
    let d = s.check();
    assert_eq!(s.exec(), 0, "{}", s.all_reasons());
    assert!(
        d.summary.contains("2 of the 3 synchronous standbys are reachable"),
        "{}",
        d.summary
    );
}

#[test]
fn the_lag_cap_counts_the_furthest_position_an_observer_saw_the_master_at() {
    let mut s = Sim::new();
    s.conf("max_failover_lag_bytes", json!(1_048_576))
        .conf("observers", json!({"obs": "http://obs:15000"}))
        .set("old_master", gone_master("1/1000000"))
        .set("own", N::standby("1/1000000", 130.0))
        .own("own")
        // the observer reached the master later than we did, 16 MiB further
        .observe("obs", "old_master", gone_master("1/2000000"))
        .observe("obs", "own", N::standby("1/1000000", 130.0));
    s.check();
    s.check();
    assert_eq!(s.exec(), 0, "{}", s.all_reasons());
    assert!(s.alerts.contains(&Alert::FailoverBlocked));
    assert!(
        s.all_reasons().contains("own is 16777216 bytes behind"),
        "{}",
        s.all_reasons()
    );
}

/// With the cap, the candidate is chosen from the standbys' positions alone and the cap is
/// checked on it: two daemons that measure the old master differently never pick two
/// candidates (found by a review: dropping the preferred one and promoting the next could).
#[test]
fn daemons_that_saw_the_master_at_different_positions_agree_on_the_candidate() {
    // pg1 is preferred and 60 MiB behind pg2, within the 64 MiB cap of pg2
    let decide = |own: &str, master_at: &str| {
        let mut s = Sim::new();
        s.conf("max_failover_lag_bytes", json!(64 << 20))
            .conf("failover_priorities", json!({"pg1": 200}))
            .set("old_master", gone_master(master_at))
            .set("pg1", N::standby("1/0", 130.0))
            .set("pg2", N::standby("1/3C00000", 130.0))
            .own(own);
        s.check();
        let d = s.check();
        (s.exec(), d.summary, s.alerts.contains(&Alert::FailoverBlocked))
    };
    // pg1's daemon saw the master at pg2's position: pg1 is within, it promotes
    let (n, summary, _) = decide("pg1", "1/3C00000");
    assert_eq!(n, 1, "{summary}");
    // pg2's daemon saw it 5 MiB further: pg1 is beyond for it, and it blocks instead of
    // promoting pg2, the next standby
    let (n, summary, blocked) = decide("pg2", "1/4100000");
    assert_eq!(
        (n, summary.as_str(), blocked),
        (
            0,
            "no failover: the candidate pg1 is beyond max_failover_lag_bytes",
            true
        )
    );
    // at pg2's position, pg2's daemon defers to pg1 as pg1's does
    let (n, summary, blocked) = decide("pg2", "1/3C00000");
    assert_eq!(
        (n, summary.as_str(), blocked),
        (0, "no action: node pg1 is furthest along", false)
    );
}

/// Our node is the candidate but beyond the cap while another standby is within it: we block
/// (the alert) and, with fallback, yield our turn to it once the timeout has passed.
#[test]
fn a_candidate_beyond_the_cap_yields_to_one_within_it() {
    let mut s = level_standbys("pg2");
    s.conf("max_failover_lag_bytes", json!(64 << 20))
        .conf("failover_priorities", json!({"pg2": 200}))
        .set("old_master", gone_master("1/4100000"))
        .set("pg1", N::standby("1/3C00000", 130.0))
        .set("pg2", N::standby("1/0", 130.0));
    let d = s.check();
    assert_eq!(s.failovers, 0, "{}", s.all_reasons());
    assert_eq!(
        d.summary,
        "no failover: we are furthest along but our node is beyond max_failover_lag_bytes"
    );
    assert!(s.alerts.contains(&Alert::FailoverBlocked));
    assert!(
        s.all_reasons().contains("pg2 is 68157440 bytes behind"),
        "{}",
        s.all_reasons()
    );
    later(&mut s, 61);
    let d = s.check();
    assert_eq!(
        d.summary,
        "no failover: yielded to the next candidate (our node is beyond max_failover_lag_bytes)",
        "{}",
        s.all_reasons()
    );
    assert_eq!(s.failovers, 0);

    // pg1's daemon, with the same view: pg2 is the candidate and beyond the cap, so it
    // blocks; once pg2's own daemon has yielded, pg1 (within the cap) promotes
    let mut s = level_standbys("pg1");
    s.conf("max_failover_lag_bytes", json!(64 << 20))
        .conf("failover_priorities", json!({"pg2": 200}))
        .conf("observers", json!({"pg2": "http://pg2:15000"}))
        .set("old_master", gone_master("1/4100000"))
        .set("pg1", N::standby("1/3C00000", 130.0))
        .set("pg2", N::standby("1/0", 130.0))
        .observe("pg2", "pg2", N::standby("1/0", 130.0));
    let d = s.check();
    assert_eq!(s.failovers, 0, "{}", s.all_reasons());
    assert_eq!(
        d.summary,
        "no failover: the candidate pg2 is beyond max_failover_lag_bytes"
    );
    s.observe(
        "pg2",
        "pg2",
        with_failover(N::standby("1/0", 130.0), FailoverPhase::Yielded, "old_master"),
    );
    later(&mut s, 1);
    s.check();
    assert_eq!(s.failovers, 1, "{}", s.all_reasons());
}

/// With a cap, a candidate never yields to a standby beyond it: that one could not take over
/// (its daemon would block), and the yield would only hold our node back.
#[test]
fn a_candidate_never_yields_to_a_standby_beyond_the_cap() {
    let mut s = level_standbys("pg2");
    s.conf("max_failover_lag_bytes", json!(64 << 10))
        .set("old_master", gone_master("1/200000"))
        .set("pg2", N::standby("1/200000", 130.0))
        // 1 MiB behind: beyond the 64 KiB cap
        .set("pg1", N::standby("1/100000", 130.0));
    // (an unanswered maintenance file check: the fallback's block, not a standing yield)
    s.maintenance_unanswered = true;
    let d = s.check();
    assert_eq!(
        d.summary,
        "no failover: we are furthest along but maintenance_mode_file exists"
    );
    assert!(d.reasons.iter().any(|r| r == "no other candidate to yield to"), "{d:?}");
    later(&mut s, 61);
    s.check();
    assert!(!s.node.memory.yielded(), "{}", s.all_reasons());
    // within a larger cap, the same standby is one to yield to (the 61 s have passed)
    s.conf("max_failover_lag_bytes", json!(2 << 20));
    later(&mut s, 1);
    let d = s.check();
    assert_eq!(
        d.summary,
        "no failover: yielded to the next candidate (maintenance_mode_file exists)"
    );
}

/// `failover_priorities` as the Python versions that have it: the furthest along wins, and a
/// priority only breaks a tie of positions (before the name). With `max_failover_lag_bytes`
/// (ours) the priority comes first among the standbys within the cap.
#[test]
fn priorities_break_ties_of_position_and_come_first_within_the_cap() {
    let promoted = |own_pos: &str, zed_pos: &str, priorities: Value, cap: Option<u64>| {
        let mut s = Sim::new();
        s.conf("failover_priorities", priorities)
            .set("old_master", gone_master("1/ab000000"))
            .set("own", N::standby(own_pos, 130.0))
            .set("zed", N::standby(zed_pos, 130.0))
            .own("own");
        if let Some(cap) = cap {
            s.conf("max_failover_lag_bytes", json!(cap));
        }
        s.check();
        s.check();
        (s.exec(), s.all_reasons())
    };
    // a tie of positions: own's higher priority wins over zed's higher name
    let (n, reasons) = promoted("1/aa000000", "1/aa000000", json!({"own": 200}), None);
    assert_eq!(n, 1, "{reasons}");
    assert!(
        reasons.contains(
            "failover_priorities: own (priority 200) is preferred over zed (priority 0), at the same position"
        ),
        "{reasons}"
    );
    // zed is 1 byte further: without a cap the furthest wins, whatever the priorities
    let (n, reasons) = promoted("1/aa000000", "1/aa000001", json!({"own": 200}), None);
    assert_eq!(n, 0, "{reasons}");
    assert!(reasons.contains("node zed is furthest along"), "{reasons}");
    // with a cap both are within (16 MiB and 14 MiB behind the old master): own's priority
    let (n, reasons) = promoted("1/aa000000", "1/aa200000", json!({"own": 200}), Some(32 << 20));
    assert_eq!(n, 1, "{reasons}");
    assert!(
        reasons.contains("own (priority 200) is preferred over zed (priority 0), which is further along, within max_failover_lag_bytes"),
        "{reasons}"
    );
    // no priorities: the original's choice, a tie goes to the higher name
    let (n, reasons) = promoted("1/aa000000", "1/aa000000", json!({}), None);
    assert_eq!(n, 0, "{reasons}");
    // 0 is only the lowest priority, as in the Python versions (never_promote_these_nodes
    // is the key for never): the further zed wins
    let (n, reasons) = promoted("1/aa000000", "1/aa200000", json!({"zed": 0}), None);
    assert_eq!(n, 0, "{reasons}");
    // a negative priority is below an unlisted node's 0
    let (n, reasons) = promoted("1/aa000000", "1/aa000000", json!({"zed": -1}), None);
    assert_eq!(n, 1, "{reasons}");
}

#[test]
fn a_strict_majority_needs_more_than_half() {
    for (strict, expected) in [(false, 1), (true, 0)] {
        let mut s = Sim::new();
        s.conf("failover_requires_strict_majority", json!(strict))
            .set("old_master", N::primary().conn(false).db_time(year_2014()))
            .set("own_db", N::standby("1/aaaaaaaa", 130.0))
            .own("own_db");
        s.check();
        s.check();
        // known state 1 of 2: half, which the original counts as a majority
        assert_eq!(s.exec(), expected, "strict {strict}: {}", s.all_reasons());
    }
}

// ---------------------------------------------------------------------------------------
// rejoin_old_master: bringing the old primary back as a standby
// ---------------------------------------------------------------------------------------

/// `fenced_primary` with `rejoin_old_master` on (and what it needs), pg1 the master we know.
fn rejoining_primary() -> Sim {
    let mut s = fenced_primary();
    s.conf("rejoin_old_master", json!(true))
        .conf("primary_conninfo_template", json!("user=replicator"))
        .conf("pg_data_directory", json!("/data"))
        .conf("pg_start_command", json!("start"))
        .conf("pg_stop_command", json!("stop"));
    run_for(&mut s, 2);
    assert_eq!(s.node.memory.current_master.as_deref(), Some("pg1"));
    s
}

/// pg2 was promoted (timeline 2), in our own poll and in every observer's report.
fn promote_pg2(s: &mut Sim) {
    s.set("pg2", timeline(N::primary(), 2));
    for o in OBSERVERS {
        s.observe(o, "pg2", timeline(N::primary(), 2));
    }
}

/// pg1 is down (stopped, fenced): in our own poll and for every observer.
fn pg1_down(s: &mut Sim) {
    s.set("pg1", timeline(N::primary(), 1).conn(false));
    for o in OBSERVERS {
        report(s, o, Some(false));
    }
}

#[test]
fn rejoin_is_off_by_default() {
    let mut s = fenced_primary();
    run_for(&mut s, 2);
    promote_pg2(&mut s);
    assert_eq!(run_for(&mut s, 1), 1, "fenced: {}", s.all_reasons());
    pg1_down(&mut s);
    run_for(&mut s, 120);
    assert!(s.rejoins.is_empty(), "{}", s.all_reasons());
}

#[test]
fn the_fenced_old_primary_rejoins_the_new_primary_once() {
    let mut s = rejoining_primary();
    promote_pg2(&mut s);
    assert_eq!(run_for(&mut s, 1), 1, "the fence comes first: {}", s.all_reasons());
    assert!(s.rejoins.is_empty(), "not in the fence's round");
    // the fence killed pg1
    pg1_down(&mut s);
    run_for(&mut s, 1);
    assert_eq!(s.rejoins, ["pg2"], "{}", s.all_reasons());
    let d = s
        .decisions
        .iter()
        .rev()
        .find(|d| d.summary.starts_with("rejoin:"))
        .expect("a rejoin decision");
    assert_eq!(d.summary, "rejoin: making pg1 a standby of pg2");
    assert!(
        d.reasons
            .iter()
            .any(|r| r.contains("pg1 was the primary and is fenced")),
        "{:?}",
        d.reasons
    );
    // succeeded: not again for the same master while pg1 is not seen yet
    run_for(&mut s, 120);
    assert_eq!(s.rejoins.len(), 1, "{}", s.all_reasons());
    // pg1 streams from pg2: the fence is lifted, an old rejoin_failed alert removed
    s.alerts.insert(Alert::RejoinFailed);
    s.set("pg1", N::standby("1/20", 0.1));
    run_for(&mut s, 1);
    assert!(!s.alerts.contains(&Alert::RejoinFailed), "{}", s.all_reasons());
    assert!(!s.alerts.contains(&Alert::Fenced));
    assert!(!s.node.memory.rejoin.was_master);
    run_for(&mut s, 30);
    assert_eq!(s.rejoins.len(), 1);
}

#[test]
fn a_stopped_old_primary_rejoins_without_fencing() {
    let mut s = rejoining_primary();
    s.json.as_object_mut().expect("obj").remove("fence_command");
    pg1_down(&mut s);
    run_for(&mut s, 3);
    assert!(s.rejoins.is_empty(), "no other primary yet: {}", s.all_reasons());
    promote_pg2(&mut s);
    run_for(&mut s, 1);
    assert_eq!(s.rejoins, ["pg2"], "{}", s.all_reasons());
    assert!(s.all_reasons().contains("pg1 was the primary and is not reachable"));
}

#[test]
fn never_while_our_node_is_a_connected_unfenced_primary() {
    let mut s = rejoining_primary();
    s.json.as_object_mut().expect("obj").remove("fence_command");
    promote_pg2(&mut s);
    run_for(&mut s, 60);
    assert!(s.rejoins.is_empty(), "{}", s.all_reasons());
    assert!(s.alerts.contains(&Alert::MultipleMasterWarning));
}

#[test]
fn a_standby_that_was_never_the_master_is_not_rejoined() {
    let mut s = rejoining_primary();
    // pg2's daemon: its node was a standby all along
    s.own("pg2");
    s.node.memory = Memory::new(s.mono);
    run_for(&mut s, 2);
    s.set("pg2", N::standby("1/10", 0.5).conn(false));
    s.set("pg3", timeline(N::primary(), 2));
    pg1_down(&mut s);
    run_for(&mut s, 30);
    assert!(s.rejoins.is_empty(), "{}", s.all_reasons());
}

#[test]
fn a_new_primary_only_a_minority_of_observers_reports_is_not_rejoined() {
    let mut s = rejoining_primary();
    s.json.as_object_mut().expect("obj").remove("fence_command");
    pg1_down(&mut s);
    // we do not reach pg2; one observer of three says it is a primary
    s.set("pg2", N::standby("1/10", 0.5).conn(false));
    s.observe("o1", "pg2", timeline(N::primary(), 2));
    run_for(&mut s, 30);
    assert!(s.rejoins.is_empty(), "{}", s.all_reasons());
}

#[test]
fn a_failed_rejoin_raises_the_alert_and_is_retried_only_after_a_backoff() {
    let mut s = rejoining_primary();
    s.json.as_object_mut().expect("obj").remove("fence_command");
    pg1_down(&mut s);
    s.rejoin_result = Some(Err("pg_rewind_command exited with status 1".into()));
    promote_pg2(&mut s);
    run_for(&mut s, 1);
    assert_eq!(s.rejoins.len(), 1);
    run_for(&mut s, 1);
    assert!(s.alerts.contains(&Alert::RejoinFailed), "{}", s.all_reasons());
    let d = s.decisions.last().expect("decision");
    assert!(
        d.reasons
            .iter()
            .any(|r| r.contains("pg_rewind_command exited with status 1")),
        "{:?}",
        d.reasons
    );
    run_for(&mut s, 27);
    assert_eq!(s.rejoins.len(), 1, "30 s backoff: {}", s.all_reasons());
    run_for(&mut s, 2);
    assert_eq!(s.rejoins.len(), 2, "retried after 30 s");
    run_for(&mut s, 58);
    assert_eq!(s.rejoins.len(), 2, "then 60 s");
    run_for(&mut s, 2);
    assert_eq!(s.rejoins.len(), 3);
    // a rejoin that never reports counts as failed after its deadline
    s.rejoin_result = None;
    run_for(&mut s, 130);
    assert_eq!(s.rejoins.len(), 4);
    let deadline = super::rejoin::rejoin_deadline(&s.config()) + super::memory::REJOIN_RESULT_GRACE_SECS;
    run_for(&mut s, deadline as usize);
    assert!(
        s.all_reasons().contains("no result for the rejoin"),
        "{}",
        s.all_reasons()
    );
}

/// Issue 19, item 5: with `rejoin_old_master` off the replaced primary is left stopped (the
/// original, and this core until then, rewrote and restarted it as a standby without
/// `pg_rewind`); with it on, the rejoin brings it back.
#[test]
fn autofollow_leaves_the_old_primary_to_the_rejoin() {
    for rejoin in [false, true] {
        let mut s = rejoining_primary();
        s.json.as_object_mut().expect("obj").remove("fence_command");
        s.conf("rejoin_old_master", json!(rejoin))
            .conf("autofollow", json!(true));
        pg1_down(&mut s);
        promote_pg2(&mut s);
        run_for(&mut s, 40);
        if rejoin {
            assert!(s.follows.is_empty(), "{}", s.all_reasons());
            assert_eq!(s.rejoins, ["pg2"]);
        } else {
            assert!(s.follows.is_empty(), "{}", s.all_reasons());
            assert!(s.rejoins.is_empty());
            assert!(
                s.all_reasons().contains("autofollow leaves it stopped"),
                "{}",
                s.all_reasons()
            );
        }
        // a reload does not restart it either
        s.conf("primary_conninfo_template", json!("host=x user=y"));
        s.node.config_version += 1;
        run_for(&mut s, 10);
        assert!(s.follows.is_empty(), "{}", s.all_reasons());
        assert!(s.all_reasons().contains("config version 2"), "{}", s.all_reasons());
    }
}

/// A fence that leaves `standby.signal` behind (`packaging/fence.sh`) and a supervisor that
/// restarts the node: the replaced primary comes back in recovery, read-only, receiving
/// nothing. It may hold writes the new primary never had: with `rejoin_old_master` it is
/// rejoined (`pg_rewind`), and autofollow never takes it for a standby to restart; once it
/// receives WAL it is a standby like any other.
#[test]
fn a_fenced_primary_restarted_in_recovery_is_still_the_old_primary() {
    for rejoin in [false, true] {
        let mut s = rejoining_primary();
        s.conf("rejoin_old_master", json!(rejoin))
            .conf("autofollow", json!(true));
        promote_pg2(&mut s);
        assert_eq!(run_for(&mut s, 1), 1, "the fence comes first: {}", s.all_reasons());
        // the supervisor started pg1 again: in recovery (standby.signal), nothing received
        s.set("pg1", timeline(N::new(true), 1));
        run_for(&mut s, 40);
        assert!(s.follows.is_empty(), "rejoin {rejoin}: {}", s.all_reasons());
        assert!(s.node.memory.rejoin.was_master, "rejoin {rejoin}");
        if rejoin {
            assert_eq!(s.rejoins, ["pg2"], "{}", s.all_reasons());
            assert!(
                s.all_reasons()
                    .contains("pg1 was the primary and is back in recovery but receives nothing"),
                "{}",
                s.all_reasons()
            );
        } else {
            assert!(s.rejoins.is_empty());
            assert!(
                s.all_reasons().contains("autofollow leaves it stopped"),
                "{}",
                s.all_reasons()
            );
        }
        // streaming from pg2 (rejoined, or rebuilt by the operator): a standby like any other
        s.set("pg1", N::standby("1/20", 0.1));
        run_for(&mut s, 1);
        assert!(!s.node.memory.rejoin.was_master, "rejoin {rejoin}");
    }
}

// ---------------------------------------------------------------------------------------
// Fallback candidates (failover_fallback_timeout)
// ---------------------------------------------------------------------------------------

/// `secs` pass: every node and observer report is polled again, unchanged.
fn later(s: &mut Sim, secs: i64) {
    s.now += Duration::seconds(secs);
    s.mono += secs as f64;
    s.round += 1;
    let t = s.now;
    for n in s.nodes.values_mut() {
        n.fetch_time = t;
    }
    for o in s.observers.values_mut() {
        o.fetch_time = t;
        for n in Arc::make_mut(&mut o.nodes).values_mut() {
            n.fetch_time = t;
        }
    }
}

fn with_failover(mut n: N, phase: FailoverPhase, master: &str) -> N {
    n.0.failover = Some(FailoverStatus {
        phase,
        master: Some(master.to_string()),
        reason: "maintenance_mode_file exists".into(),
        since: now(),
        standing: false,
    });
    n
}

/// The master gone since 2014, pg1 and pg2 level (pg2, the higher name, is chosen), and `own`.
fn level_standbys(own: &str) -> Sim {
    let mut s = Sim::new();
    s.set("old_master", gone_master("1/100"))
        .set("pg1", N::standby("1/100", 130.0))
        .set("pg2", N::standby("1/100", 130.0))
        .own(own);
    s.node.memory.current_master = Some("old_master".into());
    // the grace period after start is over
    s.node.memory.nodes_changed(s.mono - 100.0);
    s
}

#[test]
fn a_candidate_in_maintenance_yields_after_the_fallback_timeout_and_keeps_its_word() {
    let mut s = level_standbys("pg2");
    // the file check does not answer: it counts as present (a block), but is not seen, so
    // there is no standing yield; the fallback's yield comes after failover_fallback_timeout
    s.maintenance_unanswered = true;
    let d = s.check();
    assert_eq!(s.failovers, 0);
    assert_eq!(
        d.summary,
        "no failover: we are furthest along but maintenance_mode_file exists"
    );
    assert!(
        d.reasons
            .iter()
            .any(|r| r.contains("yielding to the next candidate after failover_fallback_timeout 60 s")),
        "{d:?}"
    );
    later(&mut s, 30);
    s.check();
    assert!(!s.node.memory.yielded());
    later(&mut s, 31);
    let d = s.check();
    assert_eq!(
        d.summary,
        "no failover: yielded to the next candidate (maintenance_mode_file exists)"
    );
    let f = s.node.memory.candidacy.published().cloned().expect("published");
    assert_eq!(
        (f.phase, f.master.as_deref()),
        (FailoverPhase::Yielded, Some("old_master"))
    );
    // the maintenance file check answers, no file: a yield is a promise, pg1 is the candidate
    s.maintenance_unanswered = false;
    later(&mut s, 10);
    let d = s.check();
    assert_eq!(s.failovers, 0, "{}", s.all_reasons());
    assert_eq!(d.summary, "no action: node pg1 is furthest along");
    // pg1 became the master: the yield ends
    s.set("pg1", N::primary());
    later(&mut s, 1);
    s.check();
    assert_eq!(s.node.memory.candidacy.published(), None, "{}", s.all_reasons());
}

#[test]
fn the_next_candidate_takes_over_once_the_first_yields_and_only_then() {
    let mut s = level_standbys("pg1");
    s.conf("observers", json!({"pg2": "http://pg2:15000"}))
        .observe("pg2", "pg2", N::standby("1/100", 130.0));
    s.check();
    let d = s.check();
    assert_eq!(s.failovers, 0);
    assert_eq!(d.summary, "no action: node pg2 is furthest along");
    // a yield against another master says nothing about this failover
    s.observe(
        "pg2",
        "pg2",
        with_failover(N::standby("1/100", 130.0), FailoverPhase::Yielded, "pg0"),
    );
    later(&mut s, 1);
    s.check();
    assert_eq!(s.failovers, 0, "{}", s.all_reasons());
    // pg2's daemon yielded: pg1 is next
    s.observe(
        "pg2",
        "pg2",
        with_failover(N::standby("1/100", 130.0), FailoverPhase::Yielded, "old_master"),
    );
    later(&mut s, 1);
    let d = s.check();
    assert_eq!(s.failovers, 1, "{}", s.all_reasons());
    assert!(
        d.reasons
            .iter()
            .any(|r| r.contains("pg2 yielded (maintenance_mode_file exists, observer pg2)")),
        "{d:?}"
    );
}

/// A yield counts only from the node's own daemon (the observer configured under its name):
/// the same word in another observer's answer (one that answers for another cluster with the
/// same node names, say) never makes us skip a candidate whose daemon may still promote.
#[test]
fn a_yield_counts_only_from_the_nodes_own_daemon() {
    let mut s = level_standbys("pg1");
    s.conf(
        "observers",
        json!({"pg2": "http://pg2:15000", "other": "http://other:15000"}),
    )
    .observe("pg2", "pg2", N::standby("1/100", 130.0))
    .observe(
        "other",
        "pg2",
        with_failover(N::standby("1/100", 130.0), FailoverPhase::Yielded, "old_master"),
    );
    s.check();
    later(&mut s, 1);
    let d = s.check();
    assert_eq!(s.failovers, 0, "{}", s.all_reasons());
    assert_eq!(d.summary, "no action: node pg2 is furthest along");
    // the same word from pg2's own daemon
    s.observe(
        "pg2",
        "pg2",
        with_failover(N::standby("1/100", 130.0), FailoverPhase::Yielded, "old_master"),
    );
    later(&mut s, 1);
    s.check();
    assert_eq!(s.failovers, 1, "{}", s.all_reasons());
}

#[test]
fn a_yield_is_ignored_without_fallback_and_never_hands_over_data_the_original_kept() {
    let yielded = |own_pos: &str, conf: &[(&str, Value)]| {
        let mut s = level_standbys("pg1");
        s.set("pg1", N::standby(own_pos, 130.0));
        s.conf("observers", json!({"pg2": "http://pg2:15000"})).observe(
            "pg2",
            "pg2",
            with_failover(N::standby("1/100", 130.0), FailoverPhase::Yielded, "old_master"),
        );
        for (k, v) in conf {
            s.conf(k, v.clone());
        }
        s.check();
        let d = s.check();
        (s.failovers, d.summary)
    };
    assert_eq!(yielded("1/100", &[]).0, 1);
    let (n, summary) = yielded("1/100", &[("failover_fallback_timeout", Value::Null)]);
    assert_eq!((n, summary.as_str()), (0, "no action: node pg2 is furthest along"));
    // 2 MiB behind the one that yielded: the original would have kept those writes
    let (n, summary) = yielded("0/FFE00100", &[]);
    assert_eq!(
        (n, summary.as_str()),
        (
            0,
            "no failover: every candidate yielded or is too far behind one that did"
        )
    );
    // unless the operator set a data-loss cap (the old master was last seen at 1/100)
    assert_eq!(
        yielded("0/FFE00100", &[("max_failover_lag_bytes", json!(4 << 20))]).0,
        1
    );
}

#[test]
fn a_failed_failover_command_is_retried_then_yields_to_another_candidate() {
    let mut s = level_standbys("pg2");
    // our node has replayed all it received
    s.set("pg2", N::standby("1/100", 130.0).replay("1/100"));
    s.failover_ok = false;
    s.check();
    s.check();
    assert_eq!(s.failovers, 1, "{}", s.all_reasons());
    // waiting for the backoff counts towards the yield
    later(&mut s, 1);
    let d = s.check();
    assert_eq!(s.failovers, 1, "{}", s.all_reasons());
    assert_eq!(
        d.summary,
        "no failover: we are furthest along but the failover command failed"
    );
    // retried after the backoff, as without fallback (a transient failure needs no fallback)
    later(&mut s, 5);
    s.check();
    assert_eq!(s.failovers, 2, "{}", s.all_reasons());
    // past failover_fallback_timeout since the first failure: the retry that is due runs...
    later(&mut s, 60);
    s.check();
    assert_eq!(s.failovers, 3, "{}", s.all_reasons());
    // ...and once it failed, we yield only after a poll of our node since it ended, and once
    // polls spanning PROMOTE_SETTLE_SECS have shown it in recovery, caught up (a promotion the
    // command left pending would have happened by then)
    let d = s.check();
    assert!(!s.node.memory.yielded(), "{d:?}");
    later(&mut s, 1);
    let d = s.check();
    assert!(!s.node.memory.yielded(), "{d:?}");
    assert!(
        d.reasons
            .iter()
            .any(|r| r.contains("(or with replay caught up) for 12 s")),
        "{d:?}"
    );
    later(&mut s, 5);
    let d = s.check();
    assert!(!s.node.memory.yielded(), "{d:?}");
    later(&mut s, 7);
    let d = s.check();
    assert_eq!(
        d.summary,
        "no failover: yielded to the next candidate (the failover command failed)"
    );
    later(&mut s, 60);
    s.check();
    assert_eq!(s.failovers, 3, "a yield is a promise: {}", s.all_reasons());

    // alone (pg1 may never be promoted), it retries as before
    let mut s = level_standbys("pg2");
    s.conf("never_promote_these_nodes", json!(["pg1"]));
    s.failover_ok = false;
    s.check();
    s.check();
    later(&mut s, 6);
    s.check();
    assert_eq!(s.failovers, 2, "{}", s.all_reasons());
}

#[test]
fn regression_no_yield_while_a_failed_command_may_still_promote_our_node() {
    // Replay behind what our node received: a `pg_ctl promote` that gave up may still promote it
    // once replay catches up, so we never yield, however long it fails (we retry instead).
    let mut s = level_standbys("pg2");
    s.set("pg2", N::standby("1/200", 130.0).replay("1/100"));
    s.set("pg1", N::standby("1/200", 130.0).replay("1/200"));
    s.failover_ok = false;
    s.check();
    for _ in 0..40 {
        later(&mut s, 5);
        let d = s.check();
        assert!(!s.node.memory.yielded(), "{d:?}");
    }
    assert!(s.failovers > 3, "still retried: {}", s.all_reasons());
    // caught up, and still in recovery PROMOTE_SETTLE_SECS later: then we yield
    s.set("pg2", N::standby("1/200", 130.0).replay("1/200"));
    let mut yielded = false;
    for _ in 0..60 {
        later(&mut s, 1);
        s.check();
        yielded |= s.node.memory.yielded();
    }
    assert!(yielded, "{}", s.all_reasons());
}

#[test]
fn regression_a_partial_record_left_by_a_killed_primary_does_not_hold_the_yield_forever() {
    // CI, PostgreSQL 10-18, pg1 killed with SIGKILL mid-write: pg3 had received the first part
    // of a record that replay can never reach, so replay stayed behind what it received, and
    // the yield after its failed command never came. Its startup process waits for more WAL
    // there, where PostgreSQL acts on a pending promotion: that wait counts as settled.
    let stuck = |waiting: Option<bool>| {
        let mut s = level_standbys("pg2");
        let mut n = N::standby("1/200", 130.0).replay("1/1F0");
        n.pg().startup_waiting_for_wal = waiting;
        s.set("pg2", n);
        s.set("pg1", N::standby("1/200", 130.0).replay("1/200"));
        s.failover_ok = false;
        s.check();
        let mut yielded_after = None;
        for i in 0..60 {
            later(&mut s, 5);
            s.check();
            if s.node.memory.yielded() {
                yielded_after = Some(i * 5);
                break;
            }
        }
        (yielded_after, s)
    };
    let (yielded, s) = stuck(Some(true));
    assert!(yielded.is_some(), "{}", s.all_reasons());
    // replay held back by something else (a recovery conflict, a pause), or not known: retry
    for waiting in [Some(false), None] {
        let (yielded, s) = stuck(waiting);
        assert_eq!(yielded, None, "{waiting:?}: {}", s.all_reasons());
        assert!(s.failovers > 3, "still retried: {}", s.all_reasons());
    }
}

/// pg2, the candidate, yielded after its maintenance file blocked it past the fallback timeout
/// (its check unanswered: the fallback's yield, not a standing one).
fn yielded_in_maintenance() -> Sim {
    let mut s = level_standbys("pg2");
    s.maintenance_unanswered = true;
    s.check();
    later(&mut s, 61);
    s.check();
    later(&mut s, 1);
    s.check();
    assert!(s.node.memory.yielded(), "{}", s.all_reasons());
    s
}

#[test]
fn regression_a_yield_nobody_acts_on_ends_and_our_turn_comes_back() {
    // The other daemons do not hear us (no observers: not a mesh, or the Python original): our
    // yield would otherwise stop the failover for good once the maintenance file is gone.
    let mut s = yielded_in_maintenance();
    s.maintenance_unanswered = false;
    let config = s.config();
    let hold = config.failover_fallback_timeout.unwrap_or_default();
    let quiet = super::failover::yield_quiet_secs(&config);
    let yielded_at = s.node.memory.candidacy.turn().since().unwrap_or_default();
    let mut withdrawn = None;
    for _ in 0..1000 {
        later(&mut s, 1);
        s.check();
        if withdrawn.is_none() && matches!(s.node.memory.candidacy.turn(), candidacy::Yield::Withdrawn { .. }) {
            // no longer served, still no failover of ours
            assert!(!s.node.memory.yielded(), "{}", s.all_reasons());
            withdrawn = Some(s.mono);
        }
        if s.failovers > 0 {
            break;
        }
    }
    let withdrawn = withdrawn.unwrap_or_else(|| panic!("never withdrawn: {}", s.all_reasons()));
    assert!(withdrawn - yielded_at >= hold, "{}", s.all_reasons());
    assert_eq!(s.failovers, 1, "{}", s.all_reasons());
    assert!(s.mono - withdrawn >= quiet, "{}", s.all_reasons());
}

#[test]
fn regression_another_daemon_promoting_keeps_our_yield_served() {
    let mut s = yielded_in_maintenance();
    s.conf("observers", json!({"pg1": "http://pg1:15000"})).observe(
        "pg1",
        "pg1",
        with_failover(N::standby("1/100", 130.0), FailoverPhase::Promoting, "old_master"),
    );
    for _ in 0..10 {
        later(&mut s, 5);
        s.check();
        assert!(s.node.memory.yielded(), "{}", s.all_reasons());
    }
    // its command ended without a master showing (it failed, and may still promote its node
    // later): our yield holds
    s.observe("pg1", "pg1", N::standby("1/100", 130.0));
    for _ in 0..200 {
        later(&mut s, 5);
        s.check();
        assert!(s.node.memory.yielded(), "{}", s.all_reasons());
    }
    assert_eq!(s.failovers, 0);
}

#[test]
fn regression_no_yield_to_a_standby_too_far_behind_to_take_over() {
    // pg1 is 2 MiB behind and no max_failover_lag_bytes is set: it could never take over, so
    // pg2 does not yield to it, and promotes once its maintenance file is gone.
    let mut s = level_standbys("pg2");
    s.set("pg2", N::standby("1/300000", 130.0));
    s.set("pg1", N::standby("1/100000", 130.0));
    s.maintenance = true;
    for _ in 0..30 {
        later(&mut s, 5);
        let d = s.check();
        assert!(!s.node.memory.yielded(), "{d:?}");
    }
    assert!(
        s.all_reasons().contains("no other candidate to yield to"),
        "{}",
        s.all_reasons()
    );
    s.maintenance = false;
    later(&mut s, 1);
    s.check();
    assert_eq!(s.failovers, 1, "{}", s.all_reasons());
}

#[test]
fn regression_no_yield_while_our_failover_command_runs() {
    // The maintenance file appears while our failover command runs (and hangs): we keep
    // announcing that we promote and never yield until it has ended.
    let mut s = level_standbys("pg2");
    s.hold_failover = true;
    s.check();
    s.check();
    assert_eq!(s.failovers, 1, "{}", s.all_reasons());
    s.maintenance = true;
    for _ in 0..20 {
        later(&mut s, 5);
        let d = s.check();
        assert!(!s.node.memory.yielded(), "{d:?}");
        assert_eq!(d.summary, "no failover: the failover command is already running");
        assert_eq!(
            s.node.memory.candidacy.published().map(|f| f.phase),
            Some(FailoverPhase::Promoting)
        );
    }
}

#[test]
fn another_daemon_promoting_stops_ours() {
    let mut s = level_standbys("pg2");
    s.conf("observers", json!({"pg1": "http://pg1:15000"})).observe(
        "pg1",
        "pg1",
        with_failover(N::standby("1/100", 130.0), FailoverPhase::Promoting, "old_master"),
    );
    s.check();
    let d = s.check();
    assert_eq!(s.failovers, 0, "{}", s.all_reasons());
    assert_eq!(
        d.summary,
        "no failover: observer pg1 reports the failover command of pg1 running"
    );
    // our own command, while it runs, is announced
    s.observe("pg1", "pg1", N::standby("1/100", 130.0));
    s.hold_failover = true;
    later(&mut s, 1);
    s.check();
    assert_eq!(s.failovers, 1, "{}", s.all_reasons());
    let f = s.node.memory.candidacy.published().cloned().expect("announced");
    assert_eq!(f.phase, FailoverPhase::Promoting);
    s.finish_failover(true);
    // it succeeded: still announced until our own poll has shown our node a primary for a
    // poll period and a probe timeout (by when every daemon's own poll shows it), so that a
    // daemon reading our state always sees the promotion or its result
    let announced = |s: &Sim| s.node.memory.candidacy.published().map(|f| f.phase) == Some(FailoverPhase::Promoting);
    later(&mut s, 1);
    s.check();
    assert!(announced(&s), "{}", s.all_reasons());
    s.set("pg2", N::primary());
    let config = s.config();
    let window = config.db_poll_interval + config.db_poll_timeout;
    let mut held = 0.0;
    while announced(&s) && held < 100.0 {
        later(&mut s, 1);
        s.check();
        held += 1.0;
    }
    assert!(!announced(&s), "{}", s.all_reasons());
    assert!(held >= window && held <= window + 1.0, "{held} {window}");
    // and a maintenance file now does not turn it into a yield
    assert!(!s.node.memory.yielded(), "{}", s.all_reasons());
}

/// pg2's failover command ran and exited 0; no poll shows pg2 a primary (and no second attempt
/// comes within the windows of these tests: it would announce anew).
fn succeeded_without_a_primary() -> Sim {
    let mut s = level_standbys("pg2");
    s.conf("max_failover_replication_time_lag", json!(1000));
    s.hold_failover = true;
    s.check();
    s.check();
    assert_eq!(s.failovers, 1, "{}", s.all_reasons());
    s.finish_failover(true);
    s
}

#[test]
fn regression_a_succeeded_command_is_never_followed_by_a_yield_while_announced() {
    // Review: a block after a success (here a maintenance file) could yield while the
    // promotion the command reported was still under way (a block from before the command
    // even kept its old start, so the yield came at once).
    let mut s = succeeded_without_a_primary();
    s.maintenance = true;
    // the announcement lasts failover_command_timeout (no primary shows), longer than
    // failover_fallback_timeout: no yield before it ends
    let config = s.config();
    assert!(config.failover_command_timeout > config.failover_fallback_timeout.unwrap_or_default() + 10.0);
    let succeeded = s.mono;
    let mut yielded_after = None;
    for _ in 0..200 {
        later(&mut s, 1);
        s.check();
        if s.node.memory.yielded() && yielded_after.is_none() {
            yielded_after = Some(s.mono - succeeded);
        }
    }
    let after = yielded_after.unwrap_or_else(|| panic!("a yield once it ended: {}", s.all_reasons()));
    assert!(after > config.failover_command_timeout, "{after}: {}", s.all_reasons());
    assert_eq!(s.failovers, 1, "{}", s.all_reasons());
}

#[test]
fn a_command_that_succeeded_without_a_promotion_stops_being_announced() {
    let mut s = succeeded_without_a_primary();
    let timeout = s.config().failover_command_timeout;
    let mut ended = None;
    for i in 0..200 {
        later(&mut s, 1);
        s.check();
        if s.node.memory.candidacy.published().is_none() {
            ended = Some(f64::from(i + 1));
            break;
        }
    }
    let ended = ended.unwrap_or_else(|| panic!("still announced: {}", s.all_reasons()));
    assert!(
        ended > timeout && ended <= timeout + 2.0,
        "{ended}: {}",
        s.all_reasons()
    );
}

// ---------------------------------------------------------------------------------------
// One authority (issue 18): one voter set, complementary rules
// ---------------------------------------------------------------------------------------

const MESH_NODES: [&str; 3] = ["pg1", "pg2", "pg3"];

/// The mesh of docs/safety.md from `own`'s daemon: pg1 the primary (timeline 1), pg2 and pg3
/// standbys, `dedicated` observers; each node's daemon lists the two other nodes' daemons and
/// the dedicated observers, so every node daemon counts the voters pg1, pg2, pg3 and the
/// dedicated ones. Every voter freshly reports every node as it is. F = 5 s, U = 12 s.
fn mesh(own: &str, dedicated: &[&str]) -> Sim {
    let mut s = Sim::new();
    let mut observers = serde_json::Map::new();
    for o in MESH_NODES.iter().chain(dedicated).filter(|o| **o != own) {
        observers.insert(o.to_string(), json!(format!("http://{o}:15000")));
    }
    s.conf("fence_command", json!("/usr/bin/fence"))
        .conf("db_poll_interval", json!(1.0))
        .conf("db_poll_timeout", json!(1.0))
        .conf("replication_state_check_interval", json!(1.0))
        .conf("max_failover_replication_time_lag", json!(20.0))
        .conf("unreachable_master_failover_timeout", json!(12.0))
        .conf("fence_timeout", json!(5.0))
        .conf("observers", Value::Object(observers.clone()))
        .set("pg1", timeline(N::primary(), 1))
        .set("pg2", N::standby("1/10", 0.5))
        .set("pg3", N::standby("1/8", 0.5))
        .own(own);
    for o in observers.keys() {
        s.observe(o, "pg1", timeline(N::primary(), 1))
            .observe(o, "pg2", N::standby("1/10", 0.5))
            .observe(o, "pg3", N::standby("1/8", 0.5));
    }
    s.node.memory.current_master = Some("pg1".into());
    s.mono = MONO0 + 100.0;
    s
}

/// Voter `o` (an observer of this daemon) now reports pg1 `connected` or not.
fn sees_pg1(s: &mut Sim, o: &str, connected: bool) {
    let entry = s.observers.get_mut(o).expect("observer");
    entry.connection = true;
    if let Some(n) = Arc::make_mut(&mut entry.nodes).get_mut("pg1") {
        n.connection = connected;
    }
}

/// Voter `o` answers nothing any more (cut off from this daemon): what we last had of it is
/// a minute old.
fn silent(s: &mut Sim, o: &str) {
    let old = s.now - chrono::Duration::seconds(60);
    let entry = s.observers.get_mut(o).expect("observer");
    entry.connection = false;
    entry.fetch_time = old;
    for n in Arc::make_mut(&mut entry.nodes).values_mut() {
        n.fetch_time = old;
    }
}

/// Checks one second apart for `secs` seconds, as `run_for`, counting failovers.
fn failovers_in(s: &mut Sim, secs: usize) -> usize {
    let before = s.failovers;
    run_for(s, secs);
    s.failovers - before
}

#[test]
fn the_voters_are_the_same_set_on_every_node_daemon_of_the_mesh() {
    let digests: BTreeSet<String> = MESH_NODES
        .iter()
        .map(|own| crate::decide::voters::digest(&mesh(own, &["obs1"]).config()))
        .collect();
    assert_eq!(digests.len(), 1, "{digests:?}");
    let c = mesh("pg2", &["obs1"]).config();
    assert_eq!(
        crate::decide::voters::names(&c).into_iter().collect::<Vec<_>>(),
        ["obs1", "pg1", "pg2", "pg3"]
    );
    // dedicated observers only: our own view is no vote, so every node daemon counts the same
    let f = fenced_primary().config();
    assert_eq!(
        crate::decide::voters::names(&f).into_iter().collect::<Vec<_>>(),
        ["o1", "o2", "o3"]
    );
}

/// Finding 1: the standbys' daemons lose the primary (a firewall rule on the monitoring path),
/// the observer and the primary's own daemon still reach it. 2 of 4 voters vouch: the lease
/// holds; 2 of 4 report it gone: no promotion. The old rules fenced it (1 of 3 observers).
#[test]
fn regression_a_primary_only_the_standby_daemons_lose_is_neither_fenced_nor_replaced() {
    let mut primary = mesh("pg1", &["obs1"]);
    sees_pg1(&mut primary, "pg2", false);
    sees_pg1(&mut primary, "pg3", false);
    assert_eq!(run_for(&mut primary, 60), 0, "{}", primary.all_reasons());
    assert!(primary.all_reasons().contains("2 of 4 voters vouch for pg1"));
    for own in ["pg2", "pg3"] {
        let mut standby = mesh(own, &["obs1"]);
        standby.set("pg1", timeline(N::primary(), 1).conn(false));
        let other = if own == "pg2" { "pg3" } else { "pg2" };
        sees_pg1(&mut standby, other, false);
        assert_eq!(failovers_in(&mut standby, 60), 0, "{own}: {}", standby.all_reasons());
    }
}

/// Found by `pglab chaos --profile default` with the shipped sticky fence: pg1 was fenced, its
/// supervisor started it again in recovery (`standby.signal`), and the isolation healed just
/// before the standbys' failover timeout. Every voter then reached pg1, in recovery: "reached"
/// counted as "not gone", so no promotion ever came, and with pg1 read-only the cluster had no
/// primary for good. A master seen in recovery is gone for the promotion rule and vouched for
/// by nobody (the two stay complements); the furthest node, pg1 itself, is promoted again.
#[test]
fn regression_a_fenced_master_back_in_recovery_counts_as_gone() {
    let in_recovery = || timeline(N::new(true), 1).replay("1/20");
    let mut old = mesh("pg1", &["obs1"]);
    old.set("pg1", in_recovery());
    for o in ["pg2", "pg3", "obs1"] {
        old.observe(o, "pg1", in_recovery());
    }
    let promoted = failovers_in(&mut old, 30);
    assert_eq!(promoted, 1, "{}", old.all_reasons());
    assert!(
        old.all_reasons()
            .contains("a strict majority of the voters has reported master pg1 gone"),
        "{}",
        old.all_reasons()
    );
    assert_eq!(old.fences, 0, "{}", old.all_reasons());
    for own in ["pg2", "pg3"] {
        let mut standby = mesh(own, &["obs1"]);
        standby.set("pg1", in_recovery());
        for o in ["pg1", "pg2", "pg3", "obs1"] {
            if o != own {
                standby.observe(o, "pg1", in_recovery());
            }
        }
        assert_eq!(failovers_in(&mut standby, 30), 0, "{own}: {}", standby.all_reasons());
        assert!(
            standby.all_reasons().contains("pg1 is furthest along"),
            "{own}: {}",
            standby.all_reasons()
        );
    }
}

/// Finding 2: a zone split with half of the six voters on each side ({pg1, obs1, obs2} |
/// {pg2, pg3, obs3}): neither side has a strict majority, so nothing happens. The old rules
/// fenced pg1 (2 of its 5 observers) and promoted pg3.
#[test]
fn regression_a_zone_split_in_half_neither_fences_nor_promotes() {
    let dedicated = ["obs1", "obs2", "obs3"];
    let mut primary = mesh("pg1", &dedicated);
    for o in ["pg2", "pg3", "obs3"] {
        silent(&mut primary, o);
    }
    assert_eq!(run_for(&mut primary, 60), 0, "{}", primary.all_reasons());
    for own in ["pg2", "pg3"] {
        let mut standby = mesh(own, &dedicated);
        standby.set("pg1", timeline(N::primary(), 1).conn(false));
        for o in ["pg1", "obs1", "obs2"] {
            silent(&mut standby, o);
        }
        let other = if own == "pg2" { "pg3" } else { "pg2" };
        sees_pg1(&mut standby, other, false);
        sees_pg1(&mut standby, "obs3", false);
        assert_eq!(failovers_in(&mut standby, 60), 0, "{own}: {}", standby.all_reasons());
        assert!(standby.all_reasons().contains("3 of 6 voters report master pg1 gone"));
    }
}

/// Finding 2, without the mesh (dedicated observers only, accepted with
/// `allow_fragile_lease`): the primary keeps its lease with 2 of 3 observers, so the lag
/// window must not promote a standby on 1 of 3 either (it counted members the original's way
/// and never asked for the majority).
#[test]
fn regression_the_lag_window_needs_the_majority_the_lease_assumes() {
    let mut primary = fenced_primary();
    report(&mut primary, "o3", None);
    assert_eq!(run_for(&mut primary, 60), 0, "{}", primary.all_reasons());
    let mut standby = fenced_primary();
    standby.own("pg2").set("pg1", timeline(N::primary(), 1).conn(false));
    standby.node.memory.current_master = Some("pg1".into());
    silent(&mut standby, "o1");
    silent(&mut standby, "o2");
    report(&mut standby, "o3", Some(false));
    // far past max_failover_replication_time_lag (20 s) since the last contact
    assert_eq!(failovers_in(&mut standby, 60), 0, "{}", standby.all_reasons());
    // a real loss: a strict majority of the same voters reports the master gone
    standby.observe("o2", "pg1", timeline(N::primary(), 1).conn(false));
    standby.observe("o2", "pg2", N::standby("1/10", 0.5));
    assert_eq!(failovers_in(&mut standby, 30), 1, "{}", standby.all_reasons());
}

/// A real isolation of the primary's host in the mesh: the primary's daemon loses every other
/// voter (1 of 4 vouch: fenced after F), and the standbys see 3 of 4 report it gone and promote
/// only after U > F + the fence overhead.
#[test]
fn an_isolated_primary_is_fenced_before_the_failover_timeout_ends() {
    let mut primary = mesh("pg1", &["obs1"]);
    for o in ["pg2", "pg3", "obs1"] {
        silent(&mut primary, o);
    }
    let mut fenced_after = 0;
    while primary.fences == 0 && fenced_after < 30 {
        run_for(&mut primary, 1);
        fenced_after += 1;
    }
    let mut standby = mesh("pg3", &["obs1"]);
    standby.set("pg3", N::standby("1/10", 0.5));
    standby.set("pg1", timeline(N::primary(), 1).conn(false));
    silent(&mut standby, "pg1");
    sees_pg1(&mut standby, "pg2", false);
    sees_pg1(&mut standby, "obs1", false);
    let mut promoted_after = 0;
    while standby.failovers == 0 && promoted_after < 60 {
        run_for(&mut standby, 1);
        promoted_after += 1;
    }
    assert_eq!((primary.fences, standby.failovers), (1, 1), "{}", standby.all_reasons());
    // the fence overhead of docs/safety.md: 2I + 2P + C + B = 6 s
    let overhead = 6;
    assert!(
        fenced_after + overhead <= promoted_after,
        "fenced after {fenced_after} s, promoted after {promoted_after} s"
    );
}

/// Finding 4: with fencing the failover timeout runs on our monotonic clock from the first
/// decision that saw the master gone; a master's clock (db_time) far behind ours does not
/// shorten it.
#[test]
fn regression_a_skewed_master_clock_does_not_shorten_the_failover_timeout() {
    let mut s = mesh("pg2", &["obs1"]);
    let stale = ts("2000-01-01T00:00:00Z");
    s.set("pg1", timeline(N::primary(), 1).conn(false).db_time(stale));
    for o in ["pg1", "pg3", "obs1"] {
        let n = Arc::make_mut(&mut s.observers.get_mut(o).expect("o").nodes)
            .get_mut("pg1")
            .expect("pg1");
        n.connection = false;
        if let Some(pg) = n.pg.as_mut() {
            pg.db_time = Some(stale);
        }
    }
    assert_eq!(failovers_in(&mut s, 10), 0, "{}", s.all_reasons());
    assert_eq!(failovers_in(&mut s, 5), 1, "{}", s.all_reasons());
}

/// Finding 5: our failover command ran while our own probes of our node time out; the
/// promotion it asked for may land unseen, so the lease applies to our node as to a primary.
#[test]
fn regression_a_node_our_failover_command_may_have_promoted_is_under_the_lease() {
    let mut s = fenced_primary();
    s.own("pg2");
    s.node.memory.current_master = Some("pg1".into());
    run_for(&mut s, 1); // pg2 seen as a connected standby
    s.set("pg2", N::standby("1/10", 0.5).conn(false));
    for o in OBSERVERS {
        Arc::make_mut(&mut s.observers.get_mut(o).expect("o").nodes)
            .get_mut("pg2")
            .expect("pg2")
            .connection = false;
    }
    // nothing asked it to promote: a standby we cannot reach is not fenced
    assert_eq!(run_for(&mut s, 30), 0, "{}", s.all_reasons());
    s.node.memory.failover.since_standby = true;
    assert_eq!(run_for(&mut s, 1), 1, "{}", s.all_reasons());
}

/// Finding 6: a reload that turns fencing on counts the lease from the last time the voters
/// vouched (kept while fencing is off), or from the reload when they never did since the
/// start; the daemon's start, long ago, does not count (it fenced a healthy primary at once
/// when the observers had not answered yet).
#[test]
fn regression_a_reload_that_turns_fencing_on_counts_the_lease_from_the_last_vouch() {
    let mut s = fenced_primary();
    s.json.as_object_mut().expect("obj").remove("fence_command");
    for o in OBSERVERS {
        report(&mut s, o, None);
    }
    let old = s.config();
    assert_eq!(run_for(&mut s, 100), 0);
    s.conf("fence_command", json!("/usr/bin/fence"));
    let new = s.config();
    s.node.memory.config_reloaded(&old, &new, s.mono);
    s.node.config_version += 1;
    assert_eq!(run_for(&mut s, 4), 0, "{}", s.all_reasons());
    // and the lease still runs out if nobody vouches within fence_timeout
    assert_eq!(run_for(&mut s, 3), 1, "{}", s.all_reasons());

    // Vouched for while fencing was off, then cut off: the lease counts from the last vouch,
    // not from the reload, or a standby whose daemon had fencing on all along (and counts
    // from when it saw the master gone) could promote before the fence (the simulator).
    let mut s = fenced_primary();
    s.json.as_object_mut().expect("obj").remove("fence_command");
    let old = s.config();
    assert_eq!(run_for(&mut s, 10), 0);
    for o in OBSERVERS {
        report(&mut s, o, Some(false));
    }
    assert_eq!(run_for(&mut s, 3), 0);
    s.conf("fence_command", json!("/usr/bin/fence"));
    let new = s.config();
    s.node.memory.config_reloaded(&old, &new, s.mono);
    s.node.config_version += 1;
    // fence_timeout (5 s) from the last vouch, 3 s before the reload
    assert_eq!(run_for(&mut s, 1), 0, "{}", s.all_reasons());
    assert_eq!(run_for(&mut s, 2), 1, "{}", s.all_reasons());
}

/// A voter that counts another set (a node daemon whose config lists other observers) is
/// seen from its digest: `voters_mismatch`, and no promotion while it lasts.
#[test]
fn a_voter_counting_another_set_raises_voters_mismatch_and_blocks_the_failover() {
    let mut s = mesh("pg2", &["obs1"]);
    s.set("pg1", timeline(N::primary(), 1).conn(false));
    for o in ["pg1", "pg3", "obs1"] {
        sees_pg1(&mut s, o, false);
    }
    let theirs = crate::decide::voters::digest_of(&["pg1", "pg2", "pg3"].iter().map(|n| n.to_string()).collect());
    Arc::make_mut(&mut s.observers.get_mut("pg3").expect("pg3").nodes)
        .get_mut("pg3")
        .expect("pg3")
        .voters = Some(theirs);
    assert_eq!(failovers_in(&mut s, 30), 0, "{}", s.all_reasons());
    assert!(s.alerts.contains(&Alert::VotersMismatch));
    // pg3's daemon is fixed: same digest, the alert goes and the failover proceeds
    let ours = crate::decide::voters::digest(&s.config());
    Arc::make_mut(&mut s.observers.get_mut("pg3").expect("pg3").nodes)
        .get_mut("pg3")
        .expect("pg3")
        .voters = Some(ours);
    assert_eq!(failovers_in(&mut s, 5), 1, "{}", s.all_reasons());
    assert!(!s.alerts.contains(&Alert::VotersMismatch));
}

/// `layout=uneven` of the simulator (seed 9819274036271292158): node daemons that list only
/// dedicated observers (`allow_fragile_lease`) never read each other, so a node daemon that
/// lists other observers than ours is seen only through an observer both fetch from, which
/// relays the digest it sent. Here pg1's daemon lists obs2 and obs3, ours obs1 and obs2: obs2
/// relays pg1's digest, and no failover happens while it differs; it stays so when obs2 stops
/// relaying it (a split that cuts obs2 from pg1's daemon is when it matters) until a relay
/// shows pg1's daemon counting our set, or our config is reloaded.
#[test]
fn a_node_daemon_counting_other_dedicated_observers_is_seen_through_a_relay() {
    let mut s = mesh("pg2", &["obs1", "obs2"]);
    let dedicated = json!({"obs1": "http://obs1:15000", "obs2": "http://obs2:15000"});
    s.conf("observers", dedicated).conf("allow_fragile_lease", json!(true));
    s.observers.retain(|name, _| name.starts_with("obs"));
    s.set("pg1", timeline(N::primary(), 1).conn(false));
    for o in ["obs1", "obs2"] {
        sees_pg1(&mut s, o, false);
    }
    let relay = |s: &mut Sim, digest: Option<String>| {
        Arc::make_mut(&mut s.observers.get_mut("obs2").expect("obs2").nodes)
            .get_mut("pg1")
            .expect("pg1")
            .voters = digest;
    };
    let theirs = crate::decide::voters::digest_of(&["obs2", "obs3"].iter().map(|n| n.to_string()).collect());
    relay(&mut s, Some(theirs));
    assert_eq!(failovers_in(&mut s, 30), 0, "{}", s.all_reasons());
    assert!(s.alerts.contains(&Alert::VotersMismatch));
    assert!(
        s.all_reasons()
            .contains("the daemons of pg1 count a different voter set than ours (obs1, obs2"),
        "{}",
        s.all_reasons()
    );
    // obs2 no longer relays it: still no failover
    relay(&mut s, None);
    assert_eq!(failovers_in(&mut s, 30), 0, "{}", s.all_reasons());
    assert!(s.alerts.contains(&Alert::VotersMismatch));
    // pg1's daemon is fixed and obs2 relays our digest: the alert goes, the failover proceeds
    let ours = crate::decide::voters::digest(&s.config());
    relay(&mut s, Some(ours));
    assert_eq!(failovers_in(&mut s, 5), 1, "{}", s.all_reasons());
    assert!(!s.alerts.contains(&Alert::VotersMismatch));
}

/// A reload starts the comparison afresh: what differed from our old voter set says nothing
/// of the new one.
#[test]
fn a_reload_clears_a_voters_mismatch_no_fresh_report_still_shows() {
    let mut s = mesh("pg2", &["obs1"]);
    let theirs = crate::decide::voters::digest_of(&["pg1", "pg3"].iter().map(|n| n.to_string()).collect());
    Arc::make_mut(&mut s.observers.get_mut("obs1").expect("obs1").nodes)
        .get_mut("pg3")
        .expect("pg3")
        .voters = Some(theirs);
    run_for(&mut s, 2);
    assert!(s.alerts.contains(&Alert::VotersMismatch), "{}", s.all_reasons());
    Arc::make_mut(&mut s.observers.get_mut("obs1").expect("obs1").nodes)
        .get_mut("pg3")
        .expect("pg3")
        .voters = None;
    run_for(&mut s, 2);
    assert!(s.alerts.contains(&Alert::VotersMismatch), "sticky: {}", s.all_reasons());
    s.node.config_version += 1;
    run_for(&mut s, 2);
    assert!(!s.alerts.contains(&Alert::VotersMismatch), "{}", s.all_reasons());
}

/// Finding 7: the old master's last position counts ours, or what a strict majority of the
/// voters saw at least; one observer reporting it far further (wrong, or another cluster's)
/// no longer blocks every capped failover.
#[test]
fn regression_one_wrong_observer_does_not_block_capped_failovers() {
    let run = |wrong: &[&str]| {
        let mut s = Sim::new();
        s.conf("max_failover_lag_bytes", json!(1_048_576))
            .conf(
                "observers",
                json!({"o1": "http://o1:15000", "o2": "http://o2:15000", "o3": "http://o3:15000"}),
            )
            .set("old_master", gone_master("1/1000000"))
            .set("own", N::standby("1/1000000", 130.0))
            .own("own");
        for o in OBSERVERS {
            let at = if wrong.contains(&o) { "9/0" } else { "1/1000000" };
            s.observe(o, "old_master", gone_master(at))
                .observe(o, "own", N::standby("1/1000000", 130.0));
        }
        s.node.memory.current_master = Some("old_master".into());
        s.check();
        s.check();
        s
    };
    let s = run(&["o1"]);
    assert_eq!(s.failovers, 1, "{}", s.all_reasons());
    // two of three saw it further: believed, and the cap blocks
    let s = run(&["o1", "o2"]);
    assert_eq!(s.failovers, 0, "{}", s.all_reasons());
    assert!(s.alerts.contains(&Alert::FailoverBlocked));
}

/// Item 5: with a cap and no master seen since start, nothing shows the candidate within it:
/// block (it used to mean "no cap", so a blocked failover went ahead after a restart).
#[test]
fn with_a_cap_and_no_master_seen_since_start_the_failover_is_blocked() {
    let mut s = Sim::new();
    s.conf("max_failover_lag_bytes", json!(1_048_576))
        .set("pg1", N::standby("1/0", 0.5))
        .set("pg2", N::standby("1/0", 0.5))
        .own("pg2");
    s.check();
    s.check();
    assert_eq!(s.failovers, 0, "{}", s.all_reasons());
    assert!(s.alerts.contains(&Alert::FailoverBlocked));
    assert!(s.all_reasons().contains("no master has been seen since start"));
}

/// Finding 9: an observer whose first fetch failed has not been heard: the poller keeps an
/// entry for it (not reached, no nodes), which used to count as heard.
#[test]
fn regression_a_failed_first_fetch_is_not_heard() {
    let mut s = Sim::new();
    s.conf("observers", json!({"o1": "http://o1:15000"}))
        .set("pg1", N::standby("1/0", 0.5))
        .set("pg2", N::standby("1/0", 0.5))
        .own("pg2");
    s.observers.insert(
        "o1".into(),
        ObserverState {
            fetch_time: s.now,
            connection: false,
            nodes: Default::default(),
        },
    );
    let d = s.check();
    assert_eq!(s.failovers, 0, "{d:?}");
    assert!(d.summary.contains("some observers not heard from yet"), "{d:?}");
}

/// Finding 10: a remote time at the end of chrono's range (`+262143-12-31T23:59:59Z` in an
/// observer's report of the master) made `t + skew` overflow and panic the decision loop.
#[test]
fn regression_a_remote_time_at_the_end_of_the_range_does_not_panic() {
    let mut s = level_standbys("pg1");
    let far = chrono::DateTime::<chrono::Utc>::MAX_UTC;
    s.conf("observers", json!({"pg2": "http://pg2:15000"}))
        .observe(
            "pg2",
            "pg2",
            with_failover(N::standby("1/100", 130.0), FailoverPhase::Yielded, "old_master"),
        )
        .observe("pg2", "old_master", N::primary().conn(false).db_time(far));
    s.check();
    later(&mut s, 1);
    s.check();
    // no panic; the yield cannot be shown to be later than that contact, so it does not count
    assert_eq!(s.failovers, 0, "{}", s.all_reasons());
}

/// Finding 8: two promotions from one timeline end on equal numbers, so the newer-timeline
/// rule cannot tell the stale primary. A corroborated primary whose own daemon announces that
/// it promoted it does: ours is fenced. Without the announcement (two primaries nobody
/// promoted) equal timelines still never fence each other.
#[test]
fn regression_a_primary_replaced_on_an_equal_timeline_is_fenced_on_the_promoters_word() {
    let mut s = mesh("pg1", &["obs1"]);
    s.set("pg2", timeline(N::primary(), 2));
    s.set("pg1", timeline(N::primary(), 2));
    for o in ["pg2", "pg3", "obs1"] {
        s.observe(o, "pg2", timeline(N::primary(), 2));
    }
    assert_eq!(run_for(&mut s, 3), 0, "{}", s.all_reasons());
    s.observe(
        "pg2",
        "pg2",
        timeline(with_failover(N::primary(), FailoverPhase::Promoting, "pg1"), 2),
    );
    assert_eq!(run_for(&mut s, 1), 1, "{}", s.all_reasons());
    assert!(s
        .all_reasons()
        .contains("announces it promoted: pg1 is the primary it replaces"));
    // pg2's daemon never fences on pg1's word: it announces the promotion itself
    let mut other = mesh("pg2", &["obs1"]);
    other.set("pg2", timeline(N::primary(), 2));
    other.node.memory.candidacy.set_published(Some(FailoverStatus {
        phase: FailoverPhase::Promoting,
        master: Some("pg1".into()),
        reason: "test".into(),
        since: other.now,
        standing: false,
    }));
    other.set("pg1", timeline(N::primary(), 2));
    // every voter sees pg2 as the primary it now is (a view that still showed it in recovery
    // would not vouch for it)
    for o in ["pg1", "pg3", "obs1"] {
        other.observe(o, "pg2", timeline(N::primary(), 2));
    }
    assert_eq!(run_for(&mut other, 3), 0, "{}", other.all_reasons());
}

// ---------------------------------------------------------------------------------------
// The primary's daemon keeps synchronous_standby_names (issue 21, item 3)
// ---------------------------------------------------------------------------------------

/// The primary's daemon lists the streaming standbys with `ANY k`, takes one out only after
/// two polls without it and once another has flushed past it, falls back to asynchronous in
/// `on` (with the alert) and lists every standby in `strict`, waits for a majority of the
/// voters to have seen a standby stream before listing it, asks again (with the alert) when
/// a value does not take, and gives the setting back when turned off.
#[test]
fn the_primarys_daemon_keeps_synchronous_standby_names() {
    const BOTH: &str = "ANY 1 (\"pg2\", \"pg3\")";
    let setup = |mode: &str, value: &str, senders: &[(&str, &str, &str)]| {
        let mut s = Sim::new();
        s.conf("synchronous_mode", json!(mode))
            .set("pg1", N::primary().replay("1/5000000").senders(value, senders))
            .set("pg2", N::standby("1/5000000", 0.0))
            .set("pg3", N::standby("1/5000000", 0.0))
            .own("pg1");
        s
    };
    let both = [("pg2", "streaming", "1/5000000"), ("pg3", "streaming", "1/5000000")];
    // from asynchronous: both stream, both are listed
    let mut s = setup("on", "", &both);
    s.check();
    assert_eq!(s.sync_asked, [Some(BOTH.to_string())], "{}", s.all_reasons());
    // not asked again while it may still take; nothing once it is in effect
    s.check();
    assert_eq!(s.sync_asked.len(), 1, "{}", s.all_reasons());
    s.set("pg1", N::primary().replay("1/5000000").senders(BOTH, &both));
    s.check();
    assert_eq!(s.sync_asked.len(), 1);
    assert_eq!(s.node.memory.sync.asked, None);

    // pg3 stops streaming: kept for one poll, then taken out (pg2 flushed past that poll)
    let next_poll = |s: &mut Sim, senders: &[(&str, &str, &str)], at: &str| {
        s.now += chrono::Duration::seconds(1);
        s.mono += 1.0;
        let value = s.nodes["pg1"]
            .pg
            .as_ref()
            .and_then(|p| p.sync.as_ref())
            .and_then(|x| x.synchronous_standby_names.clone())
            .unwrap_or_default();
        s.set("pg1", N::primary().replay(at).senders(&value, senders).fetched(s.now));
        s.check();
    };
    let pg2_at = |flush: &'static str| [("pg2", "streaming", flush)];
    next_poll(&mut s, &pg2_at("1/5000000"), "1/6000000");
    assert_eq!(
        s.sync_asked.len(),
        1,
        "one poll without it is not enough: {}",
        s.all_reasons()
    );
    // pg2 has not flushed past the first poll without pg3 (1/6000000): kept
    next_poll(&mut s, &pg2_at("1/5800000"), "1/7000000");
    assert_eq!(s.sync_asked.len(), 1, "{}", s.all_reasons());
    assert!(
        s.all_reasons()
            .contains("fewer than 1 of the others have flushed past 1/6000000"),
        "{}",
        s.all_reasons()
    );
    next_poll(&mut s, &pg2_at("1/7000000"), "1/8000000");
    assert_eq!(
        s.sync_asked.last(),
        Some(&Some("ANY 1 (\"pg2\")".to_string())),
        "{}",
        s.all_reasons()
    );

    // on: nobody streams, asynchronous with the alert; strict: every standby listed
    let mut s = setup("on", BOTH, &[]);
    s.check();
    assert_eq!(s.sync_asked, [Some(String::new())], "{}", s.all_reasons());
    assert!(s.alerts.contains(&Alert::SynchronousDegraded));
    s.set("pg1", N::primary().replay("1/5000000").senders("", &both));
    s.check();
    assert_eq!(s.sync_asked.last(), Some(&Some(BOTH.to_string())));
    // asked for, not yet in effect: still asynchronous
    assert!(s.alerts.contains(&Alert::SynchronousDegraded));
    s.set("pg1", N::primary().replay("1/5000000").senders(BOTH, &both));
    s.check();
    assert!(!s.alerts.contains(&Alert::SynchronousDegraded));
    let mut s = setup("strict", "", &[]);
    s.check();
    assert_eq!(s.sync_asked, [Some(BOTH.to_string())], "{}", s.all_reasons());
    assert!(!s.alerts.contains(&Alert::SynchronousDegraded));
    // strict keeps a standby that stopped streaming when it is the only one
    let mut s = setup("strict", "ANY 1 (\"pg2\")", &[]);
    for _ in 0..3 {
        next_poll(&mut s, &[], "1/5000000");
    }
    assert!(s.sync_asked.is_empty(), "{:?}: {}", s.sync_asked, s.all_reasons());

    // a voter that has not seen pg3 stream holds it back
    let mut s = setup("on", "ANY 1 (\"pg2\")", &both);
    s.conf("observers", json!({"obs": "http://obs:15000"})).observe(
        "obs",
        "pg1",
        N::primary()
            .replay("1/5000000")
            .senders("ANY 1 (\"pg2\")", &pg2_at("1/5000000")),
    );
    s.check();
    assert!(s.sync_asked.is_empty(), "{:?}", s.sync_asked);
    assert!(s.all_reasons().contains("not yet for a strict majority of the voters"));
    s.observe(
        "obs",
        "pg1",
        N::primary().replay("1/5000000").senders("ANY 1 (\"pg2\")", &both),
    );
    s.check();
    assert_eq!(s.sync_asked, [Some(BOTH.to_string())], "{}", s.all_reasons());

    // a value that does not take is asked again after a while, with the alert
    let mut s = setup("on", "", &both);
    s.check();
    s.mono = s.mono + crate::decide::sync_manager::retry_after(&s.config()) + 0.1;
    s.check();
    assert_eq!(s.sync_asked.len(), 2, "{}", s.all_reasons());
    assert!(s.alerts.contains(&Alert::SynchronousSettingFailed));
    s.set("pg1", N::primary().replay("1/5000000").senders(BOTH, &both));
    s.check();
    assert!(!s.alerts.contains(&Alert::SynchronousSettingFailed));

    // turned off: the setting goes back to the server's, once
    s.conf("synchronous_mode", json!("off"));
    s.check();
    s.check();
    assert_eq!(s.sync_asked.last(), Some(&None));
    assert_eq!(s.sync_asked.len(), 3);
    // a standby that can never be promoted is never listed
    let mut s = setup("on", "", &both);
    s.conf("never_promote_these_nodes", json!(["pg3"]));
    s.check();
    assert_eq!(
        s.sync_asked,
        [Some("ANY 1 (\"pg2\")".to_string())],
        "{}",
        s.all_reasons()
    );
    // a standby's daemon never sets anything
    let mut s = setup("on", "", &both);
    s.own("pg2");
    s.check();
    assert!(s.sync_asked.is_empty());
}

/// Before its promotion a standby gets `ANY k` of every other node, so that it acknowledges
/// no write without a standby from its first one (strict); nothing with `off` or `on`.
#[test]
fn a_standby_is_made_synchronous_before_its_promotion() {
    let mut s = Sim::new();
    s.set("pg1", N::primary())
        .set("pg2", N::standby("1/0", 0.0))
        .set("pg3", N::standby("1/0", 0.0))
        .own("pg2");
    assert_eq!(crate::decide::sync_manager::before_promotion(&s.config()), None);
    s.conf("synchronous_mode", json!("on"));
    assert_eq!(crate::decide::sync_manager::before_promotion(&s.config()), None);
    s.conf("synchronous_mode", json!("strict"))
        .conf("synchronous_node_count", json!(2));
    assert_eq!(
        crate::decide::sync_manager::before_promotion(&s.config()).as_deref(),
        Some("ANY 2 (\"pg1\", \"pg3\")")
    );
}

/// The hfreeze schedule of `authority 19 --sync on` (sim/tests/sync.rs keeps it whole): a
/// primary whose host froze resumes after the promotion and acknowledges commits through the
/// standbys still streaming from it. With synchronous_mode, each standby's daemon cuts its WAL
/// receiver once a strict majority of the voters reports the primary gone, and the failover
/// counts a listed standby only once our poll shows it cut (its position final); the receiver
/// is given back once the primary has been back for a failover timeout.
#[test]
fn standbys_stop_confirming_wal_to_a_primary_the_voters_report_gone() {
    let cut = |mut n: N, c: bool| {
        n.pg().receiver_cut = Some(c);
        n
    };
    let setup = |pg3_cut: bool| {
        let mut s = mesh("pg2", &["obs1"]);
        s.conf("synchronous_mode", json!("on"))
            .conf("own_application_name", json!("pg2"))
            .set(
                "pg1",
                timeline(N::primary(), 1).sync_names("ANY 1 (pg2, pg3)").conn(false),
            )
            .set("pg2", cut(N::standby("1/10", 0.5), false))
            .set("pg3", cut(N::standby("1/8", 0.5), pg3_cut));
        for o in ["pg1", "pg3", "obs1"] {
            sees_pg1(&mut s, o, false);
        }
        s
    };
    let asked = |s: &Sim, want: bool| {
        s.decisions
            .iter()
            .flat_map(|d| &d.actions)
            .any(|a| matches!(a, Action::SetWalReceiver { cut, master } if *cut == want && master == "pg1"))
    };
    // the voters report pg1 gone: our daemon cuts our receiver at once
    let mut s = setup(false);
    s.check();
    assert!(asked(&s, true), "{}", s.all_reasons());
    // pg3 still confirms WAL to pg1: no failover, however long
    assert_eq!(failovers_in(&mut s, 30), 0, "{}", s.all_reasons());
    assert!(
        s.all_reasons()
            .contains("0 of the 2 synchronous standbys are reachable and confirm no WAL"),
        "{}",
        s.all_reasons()
    );
    // both cut: the furthest of them (us) is promoted
    let mut s = setup(true);
    s.set("pg2", cut(N::standby("1/10", 0.5), true));
    assert_eq!(failovers_in(&mut s, 30), 1, "{}", s.all_reasons());
    // off: nothing is cut
    let mut s = setup(false);
    s.conf("synchronous_mode", json!("off"));
    run_for(&mut s, 5);
    assert!(!asked(&s, true), "{}", s.all_reasons());
    // before PostgreSQL 13 (no receiver_cut read), the rule is the one before: reachable
    let mut s = setup(false);
    for n in ["pg2", "pg3"] {
        s.set(n, N::standby(if n == "pg2" { "1/10" } else { "1/8" }, 0.5));
    }
    assert_eq!(failovers_in(&mut s, 30), 1, "{}", s.all_reasons());
    assert!(!asked(&s, true), "{}", s.all_reasons());

    // pg1 comes back before any promotion: our receiver streams from it again, only after a
    // failover timeout (12 s here) of it being back
    let mut s = setup(false);
    s.check();
    s.set("pg2", cut(N::standby("1/10", 0.5), true))
        .set("pg1", timeline(N::primary(), 1).sync_names("ANY 1 (pg2, pg3)"));
    for o in ["pg1", "pg3", "obs1"] {
        sees_pg1(&mut s, o, true);
    }
    run_for(&mut s, 10);
    assert!(!asked(&s, false), "{}", s.all_reasons());
    run_for(&mut s, 5);
    assert!(asked(&s, false), "{}", s.all_reasons());
}

/// `pglookout-ctl pause` (issue 22): while paused, a lost primary is not replaced and a primary
/// without its lease is not fenced; the pause a voter's daemon publishes later than ours is
/// taken up (one command pauses the mesh) and so is its resume; `cluster_paused` after
/// `pause_alert_after`.
#[test]
fn a_paused_cluster_neither_fails_over_nor_fences_and_resumes() {
    let pause = |paused: bool, ago_s: i64| crate::state::Pause {
        paused,
        since: ago(ago_s),
    };
    let lose_pg1 = |s: &mut Sim| {
        s.set("pg1", timeline(N::primary(), 1).conn(false));
        for o in ["pg1", "pg3", "obs1"] {
            sees_pg1(s, o, false);
        }
    };
    // our own pause: no failover however long; resumed: the failover goes ahead
    let mut s = mesh("pg2", &["obs1"]);
    s.node.memory.pause = Some(pause(true, 10));
    lose_pg1(&mut s);
    assert_eq!(failovers_in(&mut s, 40), 0, "{}", s.all_reasons());
    assert!(
        s.all_reasons().contains("paused: no failover of pg2"),
        "{}",
        s.all_reasons()
    );
    s.node.memory.pause = Some(pause(false, 0));
    assert_eq!(failovers_in(&mut s, 5), 1, "{}", s.all_reasons());

    // pg3's daemon paused after our last word: we are paused too; its later resume ends it
    let mut s = mesh("pg2", &["obs1"]);
    s.node.memory.pause = Some(pause(false, 100));
    let mut word = N::standby("1/8", 0.5);
    word.0.pause = Some(pause(true, 5));
    s.observe("pg3", "pg3", word);
    lose_pg1(&mut s);
    assert_eq!(failovers_in(&mut s, 40), 0, "{}", s.all_reasons());
    assert!(s.node.memory.paused());
    assert!(
        s.all_reasons().contains("pg3's daemon paused the cluster"),
        "{}",
        s.all_reasons()
    );
    // an older word does not undo a newer one; a newer resume does
    let mut old = N::standby("1/8", 0.5);
    old.0.pause = Some(pause(false, 60));
    s.observe("pg3", "pg3", old);
    assert_eq!(failovers_in(&mut s, 3), 0, "{}", s.all_reasons());
    let mut resumed = N::standby("1/8", 0.5);
    resumed.0.pause = Some(pause(false, 0));
    s.observe("pg3", "pg3", resumed);
    lose_pg1(&mut s);
    assert_eq!(failovers_in(&mut s, 5), 1, "{}", s.all_reasons());
    assert!(!s.node.memory.paused());

    // the primary's daemon: no fence while paused, though its lease ran out
    let mut s = mesh("pg1", &["obs1"]);
    s.node.memory.pause = Some(pause(true, 10));
    for o in ["pg2", "pg3", "obs1"] {
        sees_pg1(&mut s, o, false);
    }
    assert_eq!(run_for(&mut s, 30), 0, "{}", s.all_reasons());

    // the alert once the pause is older than pause_alert_after, gone on resume
    let mut s = mesh("pg2", &["obs1"]);
    s.conf("pause_alert_after", json!(60.0));
    s.node.memory.pause = Some(pause(true, 30));
    s.check();
    assert!(!s.alerts.contains(&Alert::ClusterPaused));
    s.node.memory.pause = Some(pause(true, 61));
    s.check();
    assert!(s.alerts.contains(&Alert::ClusterPaused));
    s.node.memory.pause = Some(pause(false, 0));
    s.check();
    assert!(!s.alerts.contains(&Alert::ClusterPaused));
}

// ---------------------------------------------------------------------------------------
// Maintenance means now: the standing yield
// ---------------------------------------------------------------------------------------

/// A healthy cluster: `old_master` connected at 1/100, pg1 and pg2 level with it (pg2, the
/// higher name, is the tie-break winner), our daemon beside `own`, long past its start.
fn healthy_level(own: &str) -> Sim {
    let mut s = Sim::new();
    s.set("old_master", N::primary().replay("1/100"))
        .set("pg1", N::standby("1/100", 0.5))
        .set("pg2", N::standby("1/100", 0.5))
        .own(own);
    s.node.memory.nodes_changed(s.mono - 1000.0);
    s
}

/// The master is lost now: our poll fails, its last contact (`db_time`) is now.
fn lose_old_master(s: &mut Sim) {
    let t = s.now;
    s.set(
        "old_master",
        N::primary().replay("1/100").conn(false).db_time(t).fetched(t),
    );
}

/// pg2's daemon publishes a yield (standing or not), given `since`, against `old_master`.
fn pg2_yields(standing: bool, since: Timestamp) -> N {
    let mut n = N::standby("1/100", 0.5);
    n.0.failover = Some(FailoverStatus {
        phase: FailoverPhase::Yielded,
        master: Some("old_master".into()),
        reason: "maintenance_mode_file exists".into(),
        since,
        standing,
    });
    n
}

/// The tie-break winner's daemon sees its maintenance file: it publishes a standing yield at
/// once, with the master still connected, and runs no failover command after the loss (for
/// far longer than the window plus failover_fallback_timeout). File removed: the yield is
/// withdrawn at once, and after the quiet period its node is a candidate again.
#[test]
fn the_maintenance_file_publishes_a_standing_yield_at_once_and_its_removal_withdraws_it() {
    let mut s = healthy_level("pg2");
    s.maintenance = true;
    let d = s.check();
    assert_eq!(s.node.memory.current_master.as_deref(), Some("old_master"));
    let f = s.node.memory.candidacy.published().cloned().expect("published at once");
    assert_eq!(
        (f.phase, f.master.as_deref(), f.standing),
        (FailoverPhase::Yielded, Some("old_master"), true),
        "{d:?}"
    );
    assert!(s.node.memory.yielded());
    assert!(
        d.reasons.iter().any(|r| r.contains("we publish a standing yield")),
        "{d:?}"
    );
    // it is confirmed at each decision: `since` follows our clock
    later(&mut s, 5);
    s.check();
    let g = s.node.memory.candidacy.published().cloned().expect("still published");
    assert!(g.standing && g.since > f.since, "{g:?}");

    lose_old_master(&mut s);
    for _ in 0..400 {
        later(&mut s, 1);
        s.check();
        assert!(s.node.memory.yielded(), "{}", s.all_reasons());
    }
    assert_eq!(s.failovers, 0, "{}", s.all_reasons());
    assert!(
        s.all_reasons().contains("node pg1 is furthest along"),
        "{}",
        s.all_reasons()
    );

    // the file goes: the yield is withdrawn (no longer published), and our node promotes
    // nothing for the quiet period, then is a candidate again (pg1 did not promote here)
    s.maintenance = false;
    later(&mut s, 1);
    s.check();
    assert_eq!(s.node.memory.candidacy.published(), None, "{}", s.all_reasons());
    assert!(matches!(
        s.node.memory.candidacy.turn(),
        candidacy::Yield::Withdrawn { .. }
    ));
    let withdrawn = s.mono;
    let quiet = super::failover::yield_quiet_secs(&s.config());
    while s.failovers == 0 && s.mono - withdrawn < 1000.0 {
        later(&mut s, 1);
        s.check();
    }
    assert_eq!(s.failovers, 1, "{}", s.all_reasons());
    assert!(s.mono - withdrawn >= quiet, "{}", s.all_reasons());
}

/// With a master connected all along, the file's removal gives our turn back after the quiet
/// period.
#[test]
fn a_standing_yield_withdrawn_with_the_master_connected_gives_the_turn_back() {
    let mut s = healthy_level("pg2");
    s.maintenance = true;
    s.check();
    assert!(s.node.memory.candidacy.standing());
    s.maintenance = false;
    later(&mut s, 1);
    s.check();
    assert!(!s.node.memory.yielded());
    let quiet = super::failover::yield_quiet_secs(&s.config());
    for _ in 0..(quiet as usize + 2) {
        later(&mut s, 1);
        s.check();
    }
    assert_eq!(
        s.node.memory.candidacy.turn(),
        candidacy::Yield::Ours,
        "{}",
        s.all_reasons()
    );
    assert_eq!(s.node.memory.candidacy.phase(), candidacy::Phase::Idle);
}

/// The other standby's daemon, reading the standing yield in a fresh report of pg2's own
/// daemon, promotes its node as soon as the usual window (max_failover_replication_time_lag
/// after the last contact) has passed, not failover_fallback_timeout later. The same yield
/// without `standing`, given before the loss, counts for nothing (an earlier loss's word).
#[test]
fn the_next_candidate_promotes_within_the_window_on_a_standing_yield() {
    let run = |standing: bool| {
        let mut s = healthy_level("pg1");
        let given = s.now - Duration::seconds(3600);
        s.conf("observers", json!({"pg2": "http://pg2:15000"}))
            .observe("pg2", "old_master", N::primary().replay("1/100"))
            .observe("pg2", "pg1", N::standby("1/100", 0.5))
            .observe("pg2", "pg2", pg2_yields(standing, given));
        s.check();
        later(&mut s, 1);
        s.check();
        assert_eq!(s.failovers, 0);
        lose_old_master(&mut s);
        let lost = s.mono;
        let t = s.now;
        s.observe(
            "pg2",
            "old_master",
            N::primary().replay("1/100").conn(false).db_time(t).fetched(t),
        );
        while s.failovers == 0 && s.mono - lost < 400.0 {
            later(&mut s, 1);
            s.check();
        }
        (s.failovers, s.mono - lost, s.all_reasons())
    };
    let config = healthy_level("pg1").config();
    let window = config.max_failover_replication_time_lag;
    let fallback = config.failover_fallback_timeout.unwrap_or_default();
    let (n, after, reasons) = run(true);
    assert_eq!(n, 1, "{reasons}");
    assert!(
        after >= window && after < window + 5.0,
        "{after} s after the loss\n{reasons}"
    );
    assert!(after < window + fallback);
    assert!(
        reasons.contains("pg2 yielded (maintenance_mode_file exists, standing, observer pg2)"),
        "{reasons}"
    );
    let (n, _, reasons) = run(false);
    assert_eq!(n, 0, "{reasons}");
    assert!(reasons.contains("no action: node pg2 is furthest along"), "{reasons}");
}

/// `synchronous_mode`: the node in maintenance is the only standby known to have every
/// acknowledged write. Its standing yield takes it out, and nobody else may be promoted: the
/// yield never lets a standby in that the synchronous rule left out.
#[test]
fn a_standing_yield_of_the_only_synchronous_standby_blocks_the_failover() {
    let mut s = Sim::new();
    s.conf("synchronous_mode", json!("on"))
        .conf("observers", json!({"pg2": "http://pg2:15000"}))
        .set("old_master", gone_master("1/100").sync_names("FIRST 1 (pg2)"))
        .set("pg1", N::standby("1/100", 130.0))
        .set("pg2", N::standby("1/100", 130.0))
        .own("pg1");
    s.node.memory.nodes_changed(s.mono - 1000.0);
    s.node.memory.current_master = Some("old_master".into());
    let since = s.now;
    s.observe("pg2", "old_master", gone_master("1/100").sync_names("FIRST 1 (pg2)"))
        .observe("pg2", "pg2", pg2_yields(true, since));
    for _ in 0..100 {
        later(&mut s, 1);
        s.check();
    }
    assert_eq!(s.exec(), 0, "{}", s.all_reasons());
    assert!(
        s.all_reasons()
            .contains("no failover: every candidate yielded or is too far behind one that did"),
        "{}",
        s.all_reasons()
    );
}

/// After a failed failover command the maintenance file is a block as before (the command may
/// have left a promotion pending: the fallback's yield waits for it to show), and the existing
/// yield after a failed command is untouched.
#[test]
fn no_standing_yield_after_a_failed_failover_command() {
    let mut s = level_standbys("pg2");
    s.failover_ok = false;
    s.check();
    s.check();
    assert_eq!(s.failovers, 1, "{}", s.all_reasons());
    s.maintenance = true;
    later(&mut s, 1);
    s.check();
    assert!(!s.node.memory.candidacy.standing(), "{}", s.all_reasons());
    assert!(
        s.all_reasons()
            .contains("no standing yield (the fallback's yield waits"),
        "{}",
        s.all_reasons()
    );
}

/// Without another standby that could take over, no standing yield (it would block nothing
/// but our own failover, and cost a quiet period when the file goes); `null`
/// failover_fallback_timeout is the original's behaviour: no yield of any kind.
#[test]
fn no_standing_yield_without_another_candidate_or_without_the_fallback() {
    let mut s = healthy_level("pg2");
    s.set("pg1", N::standby("0/FFE00100", 0.5));
    s.maintenance = true;
    s.check();
    assert!(!s.node.memory.yielded(), "{}", s.all_reasons());
    let mut s = healthy_level("pg2");
    s.conf("failover_fallback_timeout", Value::Null);
    s.maintenance = true;
    s.check();
    assert!(!s.node.memory.yielded(), "{}", s.all_reasons());
}

/// `pglookout-ctl failover --to` (issue 22 item 2): the operator's word skips the rest of the
/// lag window on the named node's daemon, for a minute; with `fence_command` it never
/// shortens the failover timeout (the lease's complement), and it picks no other candidate.
#[test]
fn a_manual_failover_skips_the_rest_of_the_lag_window_and_nothing_else() {
    let setup = |own: &str| {
        let mut s = Sim::new();
        s.conf("max_failover_replication_time_lag", json!(60.0))
            .set(
                "old_master",
                N::primary().replay("1/3000000").conn(false).db_time(ago(2)),
            )
            .set("own", N::standby("1/3000000", 1.0))
            .set("other", N::standby("1/2F00000", 1.0))
            .own(own);
        s.node.memory.nodes_changed(s.mono - 100.0);
        s
    };
    let mut s = setup("own");
    run_for(&mut s, 5);
    assert_eq!(s.failovers, 0, "{}", s.all_reasons());
    assert!(s.all_reasons().contains("was reached too recently"));
    s.node.memory.manual_failover = Some(s.mono);
    run_for(&mut s, 3);
    assert_eq!(s.failovers, 1, "{}", s.all_reasons());
    assert!(s.all_reasons().contains("the operator asked for this failover"));
    // a minute later the word no longer holds
    let mut s = setup("own");
    s.node.memory.manual_failover = Some(s.mono - 61.0);
    run_for(&mut s, 5);
    assert_eq!(s.failovers, 0, "{}", s.all_reasons());
    // asked of a node that is not the candidate: the furthest one stays the candidate
    let mut s = setup("other");
    s.node.memory.manual_failover = Some(s.mono);
    run_for(&mut s, 5);
    assert_eq!(s.failovers, 0, "{}", s.all_reasons());
    assert!(
        s.all_reasons().contains("node own is furthest along"),
        "{}",
        s.all_reasons()
    );

    // with fencing: the failover timeout (12 s here) is waited out all the same
    let mut s = mesh("pg2", &["obs1"]);
    s.set("pg1", timeline(N::primary(), 1).conn(false));
    for o in ["pg1", "pg3", "obs1"] {
        sees_pg1(&mut s, o, false);
    }
    s.node.memory.manual_failover = Some(s.mono);
    assert_eq!(failovers_in(&mut s, 10), 0, "{}", s.all_reasons());
    assert!(
        s.all_reasons().contains("never shortens the failover timeout"),
        "{}",
        s.all_reasons()
    );
    s.node.memory.manual_failover = Some(s.mono);
    assert_eq!(failovers_in(&mut s, 5), 1, "{}", s.all_reasons());
}

// ---------------------------------------------------------------------------------------
// The planned switchover (issue 22 item 1, decide::switchover)
// ---------------------------------------------------------------------------------------

/// `voter`'s daemon (the old primary's, pg1 here) announces a switchover to `to` in its
/// node's entry, for `secs` more seconds.
fn announce(s: &mut Sim, voter: &str, to: &str, secs: i64) {
    let word = crate::state::Switchover {
        from: voter.into(),
        to: to.into(),
        since: s.now - chrono::Duration::seconds(1),
        until: s.now + chrono::Duration::seconds(secs),
        step: "stopped cleanly".into(),
    };
    let entry = s.observers.get_mut(voter).expect("voter");
    if let Some(n) = Arc::make_mut(&mut entry.nodes).get_mut(voter) {
        n.switchover = Some(word);
    }
}

/// pg1 is stopped: no poll reaches it, no voter sees it.
fn pg1_stopped(s: &mut Sim) {
    s.set("pg1", timeline(N::primary(), 1).conn(false));
    for o in ["pg1", "pg3", "obs1"] {
        sees_pg1(s, o, false);
    }
}

fn promotion_request(s: &Sim, lsn: &str, window: f64) -> crate::decide::switchover::PromoteRequest {
    crate::decide::switchover::PromoteRequest {
        id: "pg1-1".into(),
        from: "pg1".into(),
        lsn: lsn.parse().expect("lsn"),
        asked: s.mono,
        round: s.round,
        window,
        state: crate::decide::switchover::RequestState::Asked,
    }
}

/// While the old primary's daemon announces the switchover, its planned stop starts no
/// failover anywhere; the target promotes on the request only once a poll after it shows the
/// final position received, exactly once; a request withdrawn or lapsed never promotes.
#[test]
fn a_switchover_holds_failovers_and_promotes_its_target_on_the_final_position_only() {
    use crate::decide::switchover::Withdrawn;
    let start = || {
        let mut s = mesh("pg2", &["obs1"]);
        run_for(&mut s, 2);
        announce(&mut s, "pg1", "pg2", 120);
        pg1_stopped(&mut s);
        s
    };
    let mut s = start();
    assert_eq!(failovers_in(&mut s, 40), 0, "{}", s.all_reasons());
    assert!(s.all_reasons().contains("pg1's daemon announces a switchover to pg2"));
    // the request: pg2 has received 1/10, the final position is 1/20
    let (taken, _) = s.node.ask_promotion(promotion_request(&s, "1/20", 10.0));
    assert!(taken.is_ok());
    assert_eq!(failovers_in(&mut s, 3), 0, "{}", s.all_reasons());
    assert!(
        s.all_reasons().contains("not yet pg1's final position 1/20"),
        "{}",
        s.all_reasons()
    );
    s.set("pg2", N::standby("1/28", 0.5));
    assert_eq!(failovers_in(&mut s, 3), 1, "{}", s.all_reasons());
    assert!(s
        .all_reasons()
        .contains("switchover from pg1: it stopped cleanly at 1/20"));
    assert_eq!(failovers_in(&mut s, 10), 0, "once");
    assert_eq!(s.node.withdraw_promotion().0, Withdrawn::Promoted);

    // withdrawn before it started: never
    let mut s = start();
    let _ = s.node.ask_promotion(promotion_request(&s, "1/20", 10.0));
    run_for(&mut s, 2);
    assert_eq!(s.node.withdraw_promotion().0, Withdrawn::NotStarted);
    s.set("pg2", N::standby("1/28", 0.5));
    assert_eq!(failovers_in(&mut s, 5), 0, "{}", s.all_reasons());

    // lapsed: never
    let mut s = start();
    let _ = s.node.ask_promotion(promotion_request(&s, "1/20", 3.0));
    run_for(&mut s, 5);
    s.set("pg2", N::standby("1/28", 0.5));
    assert_eq!(failovers_in(&mut s, 5), 0, "{}", s.all_reasons());
    assert!(s.all_reasons().contains("the request from pg1's daemon lapsed"));
    assert_eq!(s.node.withdraw_promotion().0, Withdrawn::NotStarted);

    // the old primary still answers as a primary in our poll: wait
    let mut s = start();
    s.set("pg1", timeline(N::primary(), 1));
    s.set("pg2", N::standby("1/28", 0.5));
    let _ = s.node.ask_promotion(promotion_request(&s, "1/20", 10.0));
    assert_eq!(failovers_in(&mut s, 5), 0, "{}", s.all_reasons());
    assert!(s.all_reasons().contains("pg1 answers as a connected primary"));

    // a failover command that fails ends the request: withdrawn, nothing will run
    let mut s = start();
    s.failover_ok = false;
    s.set("pg2", N::standby("1/28", 0.5));
    let _ = s.node.ask_promotion(promotion_request(&s, "1/20", 10.0));
    assert_eq!(failovers_in(&mut s, 3), 1, "{}", s.all_reasons());
    assert_eq!(s.node.withdraw_promotion().0, Withdrawn::NotStarted);
}

/// Only the current master's daemon's fresh, unexpired announcement holds: another daemon's,
/// or one past its `until`, does not, and the failover goes on as before.
#[test]
fn only_the_masters_daemons_live_announcement_holds_a_failover() {
    let mut s = mesh("pg2", &["obs1"]);
    run_for(&mut s, 2);
    announce(&mut s, "pg3", "pg2", 120);
    pg1_stopped(&mut s);
    assert_eq!(failovers_in(&mut s, 15), 1, "{}", s.all_reasons());
    let mut s = mesh("pg2", &["obs1"]);
    run_for(&mut s, 2);
    announce(&mut s, "pg1", "pg2", -1);
    pg1_stopped(&mut s);
    assert_eq!(failovers_in(&mut s, 15), 1, "{}", s.all_reasons());
}

/// The primary's daemon checks a switchover request before anything changes.
#[test]
fn a_switchover_request_is_checked_before_anything_changes() {
    use crate::decide::switchover::check_request;
    let mut s = mesh("pg1", &["obs1"]);
    s.set("pg1", timeline(N::primary(), 1).replay("1/10"));
    run_for(&mut s, 2);
    let check = |s: &Sim, to: Option<&str>| {
        check_request(&s.config(), &s.node.memory, &s.nodes, &s.observers, s.now, false, to)
    };
    let e = check(&s, None).expect_err("keys");
    assert_eq!(
        e,
        "a switchover needs pg_data_directory, pg_stop_command, pg_start_command, primary_conninfo_template set on the primary's daemon"
    );
    s.conf("pg_data_directory", json!("/data"))
        .conf("pg_stop_command", json!("stop"))
        .conf("pg_start_command", json!("start"))
        .conf("primary_conninfo_template", json!("user=r"));
    assert_eq!(check(&s, None).as_deref(), Ok("pg2"), "the furthest along");
    assert_eq!(check(&s, Some("pg3")).as_deref(), Ok("pg3"));
    assert_eq!(check(&s, Some("pg1")).expect_err("own"), "pg1 is our own node");
    assert_eq!(
        check(&s, Some("pg9")).expect_err("unknown"),
        "pg9 is not in remote_conns"
    );
    s.conf("failover_priorities", json!({"pg3": 2000}));
    assert_eq!(check(&s, None).as_deref(), Ok("pg2"), "the position first");
    s.conf("never_promote_these_nodes", json!(["pg2"]));
    assert_eq!(check(&s, None).as_deref(), Ok("pg3"));
    s.conf("never_promote_these_nodes", json!([]));
    // behind the lag limit
    s.set("pg1", timeline(N::primary(), 1).replay("1/1000"));
    s.conf("max_failover_lag_bytes", json!(4000));
    let e = check(&s, None).expect_err("behind");
    assert_eq!(
        e,
        "no standby can take over: pg2 is 4080 bytes behind (limit 4000, max_failover_lag_bytes); pg3 is 4088 bytes behind (limit 4000, max_failover_lag_bytes)"
    );
    s.conf("max_failover_lag_bytes", Value::Null);
    // a standby whose daemon yields for maintenance
    let mut yielding = N::standby("1/10", 0.5);
    yielding.0.failover = Some(crate::state::FailoverStatus {
        phase: crate::state::FailoverPhase::Yielded,
        master: Some("pg1".into()),
        reason: "maintenance_mode_file exists".into(),
        since: s.now,
        standing: true,
    });
    s.observe("pg2", "pg2", yielding);
    assert_eq!(
        check(&s, Some("pg2")).expect_err("maintenance"),
        "pg2 is in maintenance (its daemon yields)"
    );
    assert_eq!(check(&s, None).as_deref(), Ok("pg3"));
    // every node daemon must read the announcement
    let mut cut = mesh("pg1", &["obs1"]);
    cut.json = s.json.clone();
    cut.nodes = s.nodes.clone();
    run_for(&mut cut, 2);
    silent(&mut cut, "pg3");
    let e = check(&cut, None).expect_err("a silent daemon");
    assert!(
        e.starts_with("pg3's daemon is not among our observers or does not answer"),
        "{e}"
    );
    // not from a standby's daemon, nor while paused
    s.node.memory.pause = Some(crate::state::Pause {
        paused: true,
        since: s.now,
    });
    assert_eq!(
        check(&s, None).expect_err("paused"),
        "the cluster is paused: resume it first"
    );
    let mut s2 = mesh("pg2", &["obs1"]);
    run_for(&mut s2, 2);
    let e = check_request(
        &s2.config(),
        &s2.node.memory,
        &s2.nodes,
        &s2.observers,
        s2.now,
        false,
        None,
    )
    .expect_err("standby");
    assert!(e.contains("ask the primary's daemon"), "{e}");
}
