//! The JSON contract shared with the Python original: the per-node state (`db_nodes` entries and
//! `/state.json` answers), the observer states (`observer_nodes`) and the state-file document.
//! Owns the exact key names, value types and timestamp format, and the lenient reading of
//! documents other daemons wrote. It does no I/O.

use crate::lsn::Lsn;
use chrono::{DateTime, NaiveDateTime, Utc};
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};
use std::collections::BTreeMap;

/// Wall-clock UTC instant, as carried in the JSON documents.
pub type Timestamp = DateTime<Utc>;

/// The original's ISO form: naive UTC, microseconds, trailing `Z` (`2024-04-10T12:00:05.123456Z`).
pub fn iso(t: &Timestamp) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// Reads the ISO forms the original writes (with or without fraction, with `Z`, `+00:00` or
/// nothing after it) and any RFC 3339 time with an offset. Finer digits than microseconds are
/// dropped, as Python's datetime does: what we read, we write back the same (`tests/fuzz.rs`
/// checks the round trip).
pub fn parse_iso(s: &str) -> Option<Timestamp> {
    let t = match DateTime::parse_from_rfc3339(s) {
        Ok(t) => t.with_timezone(&Utc),
        Err(_) => {
            let naive = s.strip_suffix('Z').unwrap_or(s);
            NaiveDateTime::parse_from_str(naive, "%Y-%m-%dT%H:%M:%S%.f")
                .ok()?
                .and_utc()
        }
    };
    chrono::DurationRound::duration_trunc(t, chrono::Duration::microseconds(1)).ok()
}

/// One logical replication slot as read from a primary (all values as PostgreSQL prints them).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
pub struct ReplicationSlot {
    pub slot_name: Option<String>,
    pub plugin: Option<String>,
    pub slot_type: Option<String>,
    pub database: Option<String>,
    pub catalog_xmin: Option<String>,
    pub restart_lsn: Option<String>,
    pub confirmed_flush_lsn: Option<String>,
    /// base64 of `pg_replslot/<name>/state`
    pub state_data: Option<String>,
}

/// What the last successful poll of a node returned. Kept after later failed polls.
#[derive(Clone, Debug, PartialEq)]
pub struct PgFields {
    /// The node's own `now()`, converted to UTC. `None` only in documents from elsewhere.
    pub db_time: Option<Timestamp>,
    pub pg_is_in_recovery: bool,
    pub pg_last_xact_replay_timestamp: Option<Timestamp>,
    pub pg_last_xlog_receive_location: Option<Lsn>,
    /// On a primary: its current WAL position.
    pub pg_last_xlog_replay_location: Option<Lsn>,
    /// Seconds between the standby's `now()` and its last replayed commit; `None` on a primary.
    pub replication_time_lag: Option<f64>,
    /// Logical slots; only for a PostgreSQL >= 10 primary, and only when they could be read.
    pub replication_slots: Option<Vec<ReplicationSlot>>,
    /// A primary's timeline (ours: the fencing rules compare them); `None` on standbys and in
    /// the original's documents.
    pub timeline: Option<u32>,
    /// Ours, standbys only: whether the startup process was waiting for more WAL (its wait
    /// event), where it acts on a pending promotion. `None`: not known (PostgreSQL 9.x, or a
    /// role that may not read `pg_stat_activity` of other processes).
    pub startup_waiting_for_wal: Option<bool>,
    /// Ours, primaries only: its synchronous replication settings and WAL senders
    /// (`synchronous_standby_names`, `synchronous_commit`, `pg_stat_replication` in its entry).
    /// `None` on standbys, in the original's documents, and when the probe could not read them.
    pub sync: Option<SyncReplication>,
    /// Ours, standbys on PostgreSQL 13 and later: `primary_conninfo` is empty and no WAL
    /// receiver runs, so the node confirms no WAL to any primary and its receive position no
    /// longer moves (`decide::receiver`). `None` before 13 (a change needs a restart there).
    /// Served only when true.
    pub receiver_cut: Option<bool>,
}

/// What a primary says of its synchronous replication (ours; see [`PgFields::sync`]).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SyncReplication {
    /// `synchronous_standby_names` as the server has it (`""`: every standby is async).
    pub synchronous_standby_names: Option<String>,
    /// The `synchronous_commit` a new session of the monitoring role starts with: the server's
    /// setting unless the role or the database overrides it. Not our probe's own session
    /// value, which is `off` (a heartbeat must never wait for a standby).
    pub synchronous_commit: Option<String>,
    /// One entry per WAL sender (row of `pg_stat_replication`), in `application_name` order.
    pub pg_stat_replication: Vec<WalSender>,
}

/// One row of a primary's `pg_stat_replication`. The LSN keys use PostgreSQL 10's column
/// names whatever the server's version. Every value is `None` (JSON `null`) when the server
/// does not show it: all but `application_name` need `pg_read_all_stats` (or superuser).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WalSender {
    pub application_name: Option<String>,
    /// `startup`, `catchup`, `streaming`, `backup`, `stopping`.
    pub state: Option<String>,
    /// `async`, `potential`, `sync` or `quorum` (PostgreSQL 10 and later).
    pub sync_state: Option<String>,
    pub sync_priority: Option<i64>,
    pub sent_lsn: Option<Lsn>,
    pub write_lsn: Option<Lsn>,
    pub flush_lsn: Option<Lsn>,
    pub replay_lsn: Option<Lsn>,
}

impl WalSender {
    /// A synchronous standby: commits wait for it (`sync`), or for a quorum it is part of
    /// (`quorum`, `synchronous_standby_names = 'ANY n (...)'`).
    pub fn is_synchronous(&self) -> bool {
        matches!(self.sync_state.as_deref(), Some("sync" | "quorum"))
    }
}

/// Where a daemon stands in the failover of its own node (ours, `failover` in its own node's
/// entry of `/state.json`; the original neither writes nor reads it). The fallback rules
/// (docs/safety.md, "Fallback candidates") act on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailoverPhase {
    /// Its failover command is running: the node may become a primary any moment.
    Promoting,
    /// It will not promote its node until another master is seen: the next candidate may.
    Yielded,
}

/// A daemon's word on its own node's failover (see [`FailoverPhase`]).
#[derive(Clone, Debug, PartialEq)]
pub struct FailoverStatus {
    pub phase: FailoverPhase,
    /// The master being replaced (`None`: no master seen since the daemon started).
    pub master: Option<String>,
    pub reason: String,
    /// The daemon's wall clock when it took this phase; for a standing yield, at the latest
    /// decision that found the maintenance file still there (so that a reader that counts a
    /// yield only when given after the lost master's last contact, an earlier version of
    /// ours, takes it up too).
    pub since: Timestamp,
    /// A standing yield (ours, `"standing": true`, only written when true): the daemon's
    /// maintenance file is there and it stands aside for as long as it is, whatever the
    /// master's state; readers that do not know the key see an ordinary yield.
    pub standing: bool,
}

impl Serialize for FailoverStatus {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(4 + usize::from(self.standing)))?;
        m.serialize_entry("phase", &self.phase)?;
        m.serialize_entry("master", &self.master)?;
        m.serialize_entry("reason", &self.reason)?;
        m.serialize_entry("since", &iso(&self.since))?;
        if self.standing {
            m.serialize_entry("standing", &true)?;
        }
        m.end()
    }
}

impl FailoverStatus {
    fn from_json(v: &serde_json::Value) -> Option<FailoverStatus> {
        let o = v.as_object()?;
        let master = match o.get("master")? {
            serde_json::Value::Null => None,
            serde_json::Value::String(m) => Some(m.clone()),
            _ => return None,
        };
        Some(FailoverStatus {
            phase: serde_json::from_value(o.get("phase")?.clone()).ok()?,
            master,
            reason: o.get("reason")?.as_str()?.to_string(),
            since: o.get("since").and_then(ts)?,
            // anything but `true` is an ordinary yield: the reader then waits as before
            standing: o.get("standing").and_then(serde_json::Value::as_bool) == Some(true),
        })
    }
}

/// A cluster-wide pause of ours (`pglookout-ctl pause` / `resume`, `decide::pause`): whether
/// failovers, fences, follows and rejoins are paused, and when that was set (the daemon's wall
/// clock). Each node daemon publishes its own in its node's entry (`pause`) and keeps it in its
/// state file; the latest one set among the daemons it hears wins.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Pause {
    pub paused: bool,
    #[serde(serialize_with = "ser_iso")]
    pub since: Timestamp,
}

pub fn ser_iso<S: Serializer>(t: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&iso(t))
}

impl Pause {
    pub fn from_json(v: &serde_json::Value) -> Option<Pause> {
        let o = v.as_object()?;
        Some(Pause {
            paused: o.get("paused")?.as_bool()?,
            since: o.get("since").and_then(ts)?,
        })
    }

    /// Whether `self` was set after `other` (none counts as never).
    pub fn newer_than(&self, other: Option<&Pause>) -> bool {
        other.is_none_or(|o| self.since > o.since)
    }
}

/// A planned switchover (`pglookout-ctl switchover`, `act::switchover`), as the old primary's
/// daemon announces it in its node's entry (`switchover`) while it runs: `from` is stopped on
/// purpose and `to` is promoted, so no daemon counts the stop as a failure until `until` (the
/// announcing daemon's wall clock). `step`: what it is doing now, for people.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Switchover {
    pub from: String,
    pub to: String,
    #[serde(serialize_with = "ser_iso")]
    pub since: Timestamp,
    #[serde(serialize_with = "ser_iso")]
    pub until: Timestamp,
    pub step: String,
}

impl Switchover {
    pub fn from_json(v: &serde_json::Value) -> Option<Switchover> {
        let o = v.as_object()?;
        let text = |k: &str| o.get(k)?.as_str().map(str::to_string);
        Some(Switchover {
            from: text("from")?,
            to: text("to")?,
            since: o.get("since").and_then(ts)?,
            until: o.get("until").and_then(ts)?,
            step: text("step").unwrap_or_default(),
        })
    }
}

/// One node as one daemon sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeState {
    /// When this view was taken (wall clock of the daemon that polled).
    pub fetch_time: Timestamp,
    /// Whether the latest poll succeeded.
    pub connection: bool,
    /// The fields of the last successful poll, if there ever was one.
    pub pg: Option<PgFields>,
    pub min_replication_time_lag: Option<f64>,
    /// Monotonic seconds (of the polling daemon) when a receive location was first seen.
    pub replication_start_time: Option<f64>,
    /// Only in the entry of a daemon's own node, in what it serves: its [`FailoverStatus`].
    pub failover: Option<FailoverStatus>,
    /// Only in the entry of a daemon's own node, in what it serves, with `fence_command`: the
    /// digest of the voter set it counts (`decide::voters`).
    pub voters: Option<String>,
    /// Only in the entry of a daemon's own node, in what it serves: its [`Pause`].
    pub pause: Option<Pause>,
    /// Only in the entry of a daemon's own node, in what it serves, while it moves the
    /// primary away from that node: its [`Switchover`].
    pub switchover: Option<Switchover>,
}

impl NodeState {
    pub fn new(fetch_time: Timestamp, connection: bool) -> Self {
        NodeState {
            fetch_time,
            connection,
            pg: None,
            min_replication_time_lag: None,
            replication_start_time: None,
            failover: None,
            voters: None,
            pause: None,
            switchover: None,
        }
    }
    /// `Some(true)` for a standby, `Some(false)` for a primary, `None` if never reached.
    pub fn in_recovery(&self) -> Option<bool> {
        self.pg.as_ref().map(|p| p.pg_is_in_recovery)
    }
}

impl Serialize for NodeState {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("fetch_time", &iso(&self.fetch_time))?;
        m.serialize_entry("connection", &self.connection)?;
        if let Some(pg) = &self.pg {
            m.serialize_entry("db_time", &pg.db_time.as_ref().map(iso))?;
            m.serialize_entry("pg_is_in_recovery", &pg.pg_is_in_recovery)?;
            m.serialize_entry(
                "pg_last_xact_replay_timestamp",
                &pg.pg_last_xact_replay_timestamp.as_ref().map(iso),
            )?;
            m.serialize_entry("pg_last_xlog_receive_location", &pg.pg_last_xlog_receive_location)?;
            m.serialize_entry("pg_last_xlog_replay_location", &pg.pg_last_xlog_replay_location)?;
            if let Some(slots) = &pg.replication_slots {
                m.serialize_entry("replication_slots", slots)?;
            }
            m.serialize_entry("replication_time_lag", &pg.replication_time_lag)?;
            if let Some(t) = pg.timeline {
                m.serialize_entry("timeline", &t)?;
            }
            if let Some(w) = pg.startup_waiting_for_wal {
                m.serialize_entry("startup_waiting_for_wal", &w)?;
            }
            if pg.receiver_cut == Some(true) {
                m.serialize_entry("receiver_cut", &true)?;
            }
            if let Some(sync) = &pg.sync {
                m.serialize_entry("synchronous_standby_names", &sync.synchronous_standby_names)?;
                m.serialize_entry("synchronous_commit", &sync.synchronous_commit)?;
                m.serialize_entry("pg_stat_replication", &sync.pg_stat_replication)?;
            }
        }
        if let Some(t) = self.replication_start_time {
            m.serialize_entry("replication_start_time", &t)?;
        }
        if let Some(l) = self.min_replication_time_lag {
            m.serialize_entry("min_replication_time_lag", &l)?;
        }
        if let Some(f) = &self.failover {
            m.serialize_entry("failover", f)?;
        }
        if let Some(v) = &self.voters {
            m.serialize_entry("voters", v)?;
        }
        if let Some(p) = &self.pause {
            m.serialize_entry("pause", p)?;
        }
        if let Some(w) = &self.switchover {
            m.serialize_entry("switchover", w)?;
        }
        m.end()
    }
}

/// Why a node entry from another daemon was not accepted.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ShapeError {
    #[error("expected a JSON object, got {0}")]
    NotAnObject(&'static str),
    #[error("key {key:?}: {problem}")]
    Field { key: &'static str, problem: String },
}

fn kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

type Obj = serde_json::Map<String, serde_json::Value>;

fn field<T>(
    o: &Obj,
    key: &'static str,
    conv: impl Fn(&serde_json::Value) -> Option<T>,
    expected: &str,
) -> Result<Option<T>, ShapeError> {
    match o.get(key) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(v) => conv(v).map(Some).ok_or_else(|| ShapeError::Field {
            key,
            problem: format!("expected {expected}, got {}", kind(v)),
        }),
    }
}

fn ts(v: &serde_json::Value) -> Option<Timestamp> {
    v.as_str().and_then(parse_iso)
}
fn lsn(v: &serde_json::Value) -> Option<Lsn> {
    v.as_str().and_then(|s| s.parse().ok())
}

/// The synchronous replication keys of a primary's entry: `None` when none of them is there
/// (the original's documents, standbys).
fn sync_replication(o: &Obj) -> Result<Option<SyncReplication>, ShapeError> {
    let string = |v: &serde_json::Value| v.as_str().map(str::to_string);
    let names = field(o, "synchronous_standby_names", string, "a string")?;
    let commit = field(o, "synchronous_commit", string, "a string")?;
    let senders = field(
        o,
        "pg_stat_replication",
        |v| serde_json::from_value::<Vec<WalSender>>(v.clone()).ok(),
        "a list of WAL sender objects",
    )?;
    if names.is_none() && commit.is_none() && senders.is_none() {
        return Ok(None);
    }
    Ok(Some(SyncReplication {
        synchronous_standby_names: names,
        synchronous_commit: commit,
        pg_stat_replication: senders.unwrap_or_default(),
    }))
}

impl NodeState {
    /// Reads one node entry written by another daemon (ours or the Python original). Unknown
    /// keys are ignored; a known key with a wrong type rejects the entry.
    pub fn from_json(v: &serde_json::Value) -> Result<NodeState, ShapeError> {
        let o = v.as_object().ok_or(ShapeError::NotAnObject(kind(v)))?;
        let fetch_time = field(o, "fetch_time", ts, "an ISO timestamp")?.ok_or(ShapeError::Field {
            key: "fetch_time",
            problem: "missing".into(),
        })?;
        let connection = field(o, "connection", |v| v.as_bool(), "a boolean")?.unwrap_or(false);
        let in_recovery = field(o, "pg_is_in_recovery", |v| v.as_bool(), "a boolean")?;
        let pg = match in_recovery {
            None => None,
            Some(pg_is_in_recovery) => Some(PgFields {
                db_time: field(o, "db_time", ts, "an ISO timestamp")?,
                pg_is_in_recovery,
                pg_last_xact_replay_timestamp: field(o, "pg_last_xact_replay_timestamp", ts, "an ISO timestamp")?,
                pg_last_xlog_receive_location: field(o, "pg_last_xlog_receive_location", lsn, "an LSN string")?,
                pg_last_xlog_replay_location: field(o, "pg_last_xlog_replay_location", lsn, "an LSN string")?,
                replication_time_lag: field(o, "replication_time_lag", |v| v.as_f64(), "a number")?,
                replication_slots: field(
                    o,
                    "replication_slots",
                    |v| serde_json::from_value(v.clone()).ok(),
                    "a list of slot objects",
                )?,
                timeline: field(
                    o,
                    "timeline",
                    |v| v.as_u64().and_then(|t| u32::try_from(t).ok()),
                    "a timeline number",
                )?,
                startup_waiting_for_wal: field(o, "startup_waiting_for_wal", |v| v.as_bool(), "a boolean")?,
                sync: sync_replication(o)?,
                receiver_cut: field(o, "receiver_cut", |v| v.as_bool(), "a boolean")?,
            }),
        };
        Ok(NodeState {
            fetch_time,
            connection,
            pg,
            min_replication_time_lag: field(o, "min_replication_time_lag", |v| v.as_f64(), "a number")?,
            replication_start_time: field(o, "replication_start_time", |v| v.as_f64(), "a number")?,
            failover: field(
                o,
                "failover",
                FailoverStatus::from_json,
                "an object with phase, master, reason and since",
            )?,
            voters: field(o, "voters", |v| v.as_str().map(str::to_string), "a string")?,
            pause: field(o, "pause", Pause::from_json, "an object with paused and since")?,
            switchover: field(
                o,
                "switchover",
                Switchover::from_json,
                "an object with from, to, since and until",
            )?,
        })
    }
}

/// The current WAL position of the connected primary (the highest, should there be several).
pub fn connected_primary_lsn(nodes: &BTreeMap<String, NodeState>) -> Option<Lsn> {
    nodes
        .values()
        .filter(|n| n.connection)
        .filter_map(|n| n.pg.as_ref())
        .filter(|p| !p.pg_is_in_recovery)
        .filter_map(|p| p.pg_last_xlog_replay_location)
        .max()
}

/// Entries of an answer that were not accepted, with the reason.
pub type RejectedEntries = Vec<(String, ShapeError)>;

/// A `/state.json` answer: node name -> node state. Entries that do not have the right shape
/// are returned apart, with the reason, so the caller can log them; they are never trusted.
pub fn parse_node_map(v: &serde_json::Value) -> Result<(BTreeMap<String, NodeState>, RejectedEntries), ShapeError> {
    let o = v.as_object().ok_or(ShapeError::NotAnObject(kind(v)))?;
    let mut good = BTreeMap::new();
    let mut bad = Vec::new();
    for (name, entry) in o {
        match NodeState::from_json(entry) {
            Ok(n) => {
                good.insert(name.clone(), n);
            }
            Err(e) => bad.push((name.clone(), e)),
        }
    }
    Ok((good, bad))
}

/// One observer as we see it: whether we reached it, when, and the nodes it reported.
#[derive(Clone, Debug, PartialEq)]
pub struct ObserverState {
    pub fetch_time: Timestamp,
    pub connection: bool,
    /// Shared, not copied, by every snapshot that holds this reading (the simulator hands one
    /// reading of a daemon's answer to all that fetch it before it changes).
    pub nodes: std::sync::Arc<BTreeMap<String, NodeState>>,
}

impl Serialize for ObserverState {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("fetch_time", &iso(&self.fetch_time))?;
        m.serialize_entry("connection", &self.connection)?;
        for (name, node) in self.nodes.iter() {
            if name != "fetch_time" && name != "connection" {
                m.serialize_entry(name, node)?;
            }
        }
        m.end()
    }
}

/// What a daemon says of its own node, in that node's entry of what it serves.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OwnWord {
    pub failover: Option<FailoverStatus>,
    /// The digest of the voter set it counts (with `fence_command`).
    pub voters: Option<String>,
    /// Its cluster-wide pause (node daemons).
    pub pause: Option<Pause>,
    /// The switchover it runs away from its node.
    pub switchover: Option<Switchover>,
}

/// What a daemon publishes of its own node: its word for the others, and why its node must
/// not take writes now (fenced, or its lease ran out; `None` when it holds its lease or none
/// applies), for `/primary` and `/health`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OwnStatus {
    pub word: OwnWord,
    pub no_lease: Option<String>,
}

/// What a daemon serves at `/state.json`: its polls of every node, with its [`OwnWord`] in
/// its own node's entry, and in other nodes' entries the voter-set digests their daemons sent
/// with their fetches (`relayed`: `decide::voters::Relays::fresh`). The daemon's HTTP
/// answer and the simulator's both come from here.
pub fn served_nodes<'a, 'r>(
    nodes: &'a BTreeMap<String, NodeState>,
    own_db: Option<&str>,
    word: &OwnWord,
    relayed: impl IntoIterator<Item = (&'r str, &'r str)>,
) -> std::borrow::Cow<'a, BTreeMap<String, NodeState>> {
    let mut served = std::borrow::Cow::Borrowed(nodes);
    if let Some(own) = own_db.filter(|o| nodes.contains_key(*o) && *word != OwnWord::default()) {
        if let Some(n) = served.to_mut().get_mut(own) {
            n.failover.clone_from(&word.failover);
            n.voters.clone_from(&word.voters);
            n.pause.clone_from(&word.pause);
            n.switchover.clone_from(&word.switchover);
        }
    }
    // the digests other node daemons sent with their fetches, in their nodes' entries
    for (node, digest) in relayed {
        if own_db != Some(node) && nodes.contains_key(node) {
            if let Some(n) = served.to_mut().get_mut(node) {
                n.voters = Some(digest.to_string());
            }
        }
    }
    served
}

/// The state file document. The first three keys are the original's; the rest are ours and
/// are only ever added, never replacing one of the original's.
#[derive(Clone, Debug, Serialize)]
pub struct StateDocument<'a> {
    pub db_nodes: &'a BTreeMap<String, NodeState>,
    pub observer_nodes: &'a BTreeMap<String, ObserverState>,
    pub current_master: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decision: Option<&'a serde_json::Value>,
    /// When at least half of the voters last vouched for our node (wall clock): the daemon
    /// picks its lease up from here when it starts again (`decide::fence::restore_lease`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease_renewed_at: Option<Timestamp>,
    /// Our cluster-wide pause, kept across restarts (`pause_of`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pause: Option<&'a Pause>,
    /// The switchover our daemon runs away from our node, while it runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub switchover: Option<&'a Switchover>,
}

/// `pause` of a state file a previous run wrote; `None` when the file is missing, unreadable,
/// not ours, or the key is not a pause.
pub fn pause_of(path: &std::path::Path) -> Option<Pause> {
    let text = std::fs::read(path).ok()?;
    let doc: serde_json::Value = serde_json::from_slice(&text).ok()?;
    Pause::from_json(doc.get("pause")?)
}

/// `lease_renewed_at` of a state file a previous run wrote; `None` when the file is missing,
/// unreadable, not ours (the original writes no such key) or the key is not a time.
pub fn lease_renewed_at(path: &std::path::Path) -> Option<Timestamp> {
    let text = std::fs::read(path).ok()?;
    let doc: serde_json::Value = serde_json::from_slice(&text).ok()?;
    let at = doc.get("lease_renewed_at")?.as_str()?;
    DateTime::parse_from_rfc3339(at).ok().map(|t| t.with_timezone(&Utc))
}

/// What the poller publishes: every node's and observer's latest state and how fresh it is.
/// Here, below `poll`, so that what reads it (health, metrics) need not import the poller.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    pub nodes: BTreeMap<String, NodeState>,
    pub observers: BTreeMap<String, ObserverState>,
    /// Completed rounds: every configured node (and observer, while observers are polled) has
    /// finished a probe that started after the previous round completed or after a poll-now
    /// request, whichever came last.
    pub round: u64,
    /// Monotonic time of the last completed round.
    pub last_round_at: Option<f64>,
    /// Monotonic time each node's latest probe ended (success or failure): how fresh what we
    /// know of that node is, whatever the other nodes do.
    pub polled_at: BTreeMap<String, f64>,
    /// Monotonic time any probe last ended: the poller is making progress.
    pub last_report_at: Option<f64>,
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_timestamp_finer_than_a_microsecond_round_trips() {
        let t = super::parse_iso("2000-01-01T00:00:00.0000001").expect("parsed");
        assert_eq!(super::iso(&t), "2000-01-01T00:00:00.000000Z");
        assert_eq!(super::parse_iso(&super::iso(&t)), Some(t));
        let t = super::parse_iso("2024-01-01T00:00:00.123456789+00:00").expect("parsed");
        assert_eq!(super::iso(&t), "2024-01-01T00:00:00.123456Z");
        assert_eq!(super::parse_iso(&super::iso(&t)), Some(t));
    }

    use super::*;

    #[test]
    fn iso_round_trips_and_reads_the_originals_forms() {
        let t = parse_iso("2026-11-25T19:45:45.775546Z").expect("parse");
        assert_eq!(iso(&t), "2026-11-25T19:45:45.775546Z");
        let whole = parse_iso("2014-01-01T00:00:00Z").expect("parse");
        assert_eq!(iso(&whole), "2014-01-01T00:00:00.000000Z");
        assert_eq!(parse_iso("2014-01-01T00:00:00"), Some(whole));
        assert_eq!(parse_iso("2014-01-01T02:00:00+02:00"), Some(whole));
        assert_eq!(parse_iso("foobar"), None);
    }

    #[test]
    fn the_failover_status_is_served_in_our_own_entry_only_and_read_back() {
        let t = parse_iso("2024-01-01T00:00:00Z").expect("t");
        let nodes = BTreeMap::from([
            ("pg1".to_string(), NodeState::new(t, true)),
            ("pg2".to_string(), NodeState::new(t, true)),
        ]);
        let f = FailoverStatus {
            phase: FailoverPhase::Yielded,
            master: Some("pg0".into()),
            reason: "maintenance_mode_file exists".into(),
            since: t,
            standing: false,
        };
        assert!(matches!(
            served_nodes(&nodes, Some("pg2"), &OwnWord::default(), []),
            std::borrow::Cow::Borrowed(_)
        ));
        let word = OwnWord {
            failover: Some(f.clone()),
            voters: Some("0123456789ab".into()),
            pause: Some(Pause {
                paused: true,
                since: f.since,
            }),
            switchover: None,
        };
        let served = served_nodes(&nodes, Some("pg2"), &word, []);
        let v = serde_json::to_value(&*served).expect("json");
        assert_eq!(
            v["pg2"]["failover"],
            serde_json::json!({"phase": "yielded", "master": "pg0", "reason": "maintenance_mode_file exists", "since": "2024-01-01T00:00:00.000000Z"})
        );
        assert_eq!(
            v["pg2"]["pause"],
            serde_json::json!({"paused": true, "since": "2024-01-01T00:00:00.000000Z"})
        );
        assert_eq!(v["pg2"]["voters"], "0123456789ab");
        assert!(v["pg1"].get("failover").is_none() && v["pg1"].get("voters").is_none());
        let (read, bad) = parse_node_map(&v).expect("map");
        assert!(bad.is_empty());
        assert_eq!(read["pg2"].failover.as_ref(), Some(&f));
        assert_eq!(read["pg2"].voters.as_deref(), Some("0123456789ab"));
        // relayed digests go into other nodes' entries: never ours, never a node we do not poll
        let relayed = [
            ("pg1", "ba9876543210"),
            ("pg2", "ffffffffffff"),
            ("pg9", "ba9876543210"),
        ];
        let v = serde_json::to_value(&*served_nodes(&nodes, Some("pg2"), &word, relayed)).expect("json");
        assert_eq!(v["pg1"]["voters"], "ba9876543210");
        assert_eq!(v["pg2"]["voters"], "0123456789ab");
        assert!(v.get("pg9").is_none());
        // a wrong shape rejects the entry, as any known key of the wrong type
        let mut broken = v.clone();
        broken["pg2"]["failover"] = serde_json::json!({"phase": "elected"});
        let (read, bad) = parse_node_map(&broken).expect("map");
        assert!(!read.contains_key("pg2") && bad.len() == 1, "{bad:?}");
        // a standing yield carries `standing: true`, read back; any other value of the key is
        // an ordinary yield (the entry is kept: the reader only waits as before)
        let standing = OwnWord {
            failover: Some(FailoverStatus {
                standing: true,
                ..f.clone()
            }),
            voters: None,
            pause: None,
            switchover: None,
        };
        let v = serde_json::to_value(&*served_nodes(&nodes, Some("pg2"), &standing, [])).expect("json");
        assert_eq!(v["pg2"]["failover"]["standing"], true);
        let (read, _) = parse_node_map(&v).expect("map");
        assert!(read["pg2"].failover.as_ref().is_some_and(|g| g.standing));
        let mut odd = v.clone();
        odd["pg2"]["failover"]["standing"] = serde_json::json!("yes");
        let (read, bad) = parse_node_map(&odd).expect("map");
        assert!(bad.is_empty() && read["pg2"].failover.as_ref().is_some_and(|g| !g.standing));
    }

    #[test]
    fn a_never_reached_node_has_only_fetch_time_and_connection() {
        let n = NodeState::new(parse_iso("2024-01-01T00:00:00Z").expect("t"), false);
        let v = serde_json::to_value(&n).expect("json");
        assert_eq!(
            v,
            serde_json::json!({"fetch_time": "2024-01-01T00:00:00.000000Z", "connection": false})
        );
        assert_eq!(NodeState::from_json(&v), Ok(n));
    }

    #[test]
    fn a_standbys_wait_for_wal_is_written_only_when_known_and_read_back() {
        let v = serde_json::json!({"fetch_time": "2024-01-01T00:00:00.000000Z", "connection": true,
                                   "pg_is_in_recovery": true, "startup_waiting_for_wal": true});
        let n = NodeState::from_json(&v).expect("read");
        assert_eq!(n.pg.as_ref().and_then(|p| p.startup_waiting_for_wal), Some(true));
        let again = serde_json::to_value(&n).expect("json");
        assert_eq!(again["startup_waiting_for_wal"], serde_json::json!(true));
        assert_eq!(NodeState::from_json(&again), Ok(n.clone()));
        let mut unknown = n;
        if let Some(p) = unknown.pg.as_mut() {
            p.startup_waiting_for_wal = None;
        }
        let v = serde_json::to_value(&unknown).expect("json");
        assert!(v.get("startup_waiting_for_wal").is_none(), "{v}");
    }

    /// A primary's synchronous replication keys (ours) are written only when read, read back
    /// the same, and absent from the original's documents, which still parse.
    #[test]
    fn a_primarys_synchronous_replication_round_trips_and_the_originals_documents_still_parse() {
        let v = serde_json::json!({"fetch_time": "2024-01-01T00:00:00.000000Z", "connection": true,
            "db_time": "2024-01-01T00:00:00.000000Z", "pg_is_in_recovery": false,
            "pg_last_xact_replay_timestamp": null, "pg_last_xlog_receive_location": null,
            "pg_last_xlog_replay_location": "0/3000148", "replication_time_lag": null,
            "synchronous_standby_names": "FIRST 1 (pg2, pg3)", "synchronous_commit": "on",
            "pg_stat_replication": [
                {"application_name": "pg2", "state": "streaming", "sync_state": "sync", "sync_priority": 1,
                 "sent_lsn": "0/3000148", "write_lsn": "0/3000148", "flush_lsn": "0/3000148", "replay_lsn": "0/3000110",
                 "a_later_key": "ignored"},
                {"application_name": "pg3", "state": "streaming", "sync_state": "potential", "sync_priority": 2,
                 "sent_lsn": "0/3000148", "write_lsn": null, "flush_lsn": null, "replay_lsn": null}]});
        let n = NodeState::from_json(&v).expect("read");
        let sync = n.pg.as_ref().and_then(|p| p.sync.clone()).expect("sync read");
        assert_eq!(sync.synchronous_standby_names.as_deref(), Some("FIRST 1 (pg2, pg3)"));
        assert_eq!(sync.synchronous_commit.as_deref(), Some("on"));
        assert_eq!(sync.pg_stat_replication.len(), 2);
        let pg2 = &sync.pg_stat_replication[0];
        assert!(pg2.is_synchronous() && !sync.pg_stat_replication[1].is_synchronous());
        assert_eq!(pg2.sync_priority, Some(1));
        assert_eq!(pg2.replay_lsn, Some(Lsn(0x3000110)));
        assert_eq!(sync.pg_stat_replication[1].write_lsn, None);
        let again = serde_json::to_value(&n).expect("json");
        let mut expected = v.clone();
        if let Some(r) = expected["pg_stat_replication"][0].as_object_mut() {
            r.remove("a_later_key");
        }
        assert_eq!(again, expected, "written as read");
        assert_eq!(NodeState::from_json(&again), Ok(n.clone()));

        // none of the keys: no sync, and none written
        let mut plain = n;
        if let Some(p) = plain.pg.as_mut() {
            p.sync = None;
        }
        let v = serde_json::to_value(&plain).expect("json");
        for key in ["synchronous_standby_names", "synchronous_commit", "pg_stat_replication"] {
            assert!(v.get(key).is_none(), "{key} in {v}");
        }
        assert_eq!(NodeState::from_json(&v), Ok(plain));

        // the original's documents: every entry parses, without the keys
        for text in [
            include_str!("../tests/fixtures/pg1-http-state.json"),
            include_str!("../tests/fixtures/pg2-http-state.json"),
        ] {
            let doc: serde_json::Value = serde_json::from_str(text).expect("fixture");
            let (nodes, bad) = parse_node_map(&doc).expect("map");
            assert!(bad.is_empty() && nodes.len() == 3, "{bad:?}");
            assert!(nodes.values().all(|n| n.pg.as_ref().is_some_and(|p| p.sync.is_none())));
        }

        // a known key of the wrong type rejects the entry, as every other
        for (key, bad) in [
            ("synchronous_standby_names", serde_json::json!(1)),
            ("pg_stat_replication", serde_json::json!({"pg2": "sync"})),
            ("pg_stat_replication", serde_json::json!([{"sent_lsn": "nowhere"}])),
            ("pg_stat_replication", serde_json::json!([{"sync_priority": "first"}])),
        ] {
            let mut broken = expected.clone();
            broken[key] = bad;
            assert!(
                matches!(NodeState::from_json(&broken), Err(ShapeError::Field { key: k, .. }) if k == key),
                "{key}"
            );
        }
    }

    #[test]
    fn wrong_types_are_rejected_with_the_key() {
        let v = serde_json::json!({"fetch_time": "2024-01-01T00:00:00Z", "connection": true,
                                   "pg_is_in_recovery": "yes"});
        assert_eq!(
            NodeState::from_json(&v),
            Err(ShapeError::Field {
                key: "pg_is_in_recovery",
                problem: "expected a boolean, got a string".into()
            })
        );
        assert!(NodeState::from_json(&serde_json::json!([])).is_err());
        assert!(NodeState::from_json(&serde_json::json!({"connection": true})).is_err());
    }
}
