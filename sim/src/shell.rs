//! One simulated daemon: the state of the real daemon's shell (src/daemon.rs and
//! src/poll/mod.rs) that surrounds `decide()`, driven over simulated time. The pure parts are
//! the daemon's own code: the round accounting and requested rounds (`poll::rounds::Rounds`),
//! the shared poll grid (`poll::until_next_tick`), the publication period
//! (`poll::PUBLISH_EVERY`), the whole decision loop (`node::Node`: the decision, its memory,
//! the running commands and the queued follow, the history), the node and observer merges,
//! and the observer answer check (`poll::observer::check_answer`). What is left here is the
//! async wiring: which event wakes what, as the tasks and channels of the daemon do.
//!
//! Owns a daemon's [`Node`] (its config built through `Config::from_value`, so validation
//! runs) and its poller state. The event loop ([`crate::world`]) drives it.

use crate::schedule::{daemon_name, lists, voters, FaultKind, Layout, Profile, Schedule};
use crate::Us;
use pglookout::act::running::Kind;
use pglookout::config::Config;
use pglookout::decide::{Memory, Mono};
use pglookout::node::{CommandId, Node};
use pglookout::poll::rounds::Rounds;
use pglookout::state::{FailoverStatus, NodeState, ObserverState, OwnStatus};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

/// The shipped fast profile, merged into every daemon's config as docs/safety.md says.
const FAST_PROFILE: &str = include_str!("../../docs/profiles/fast.json");

/// How often the aggregator publishes a changed snapshot between rounds.
pub const PUBLISH_EVERY: Us = pglookout::poll::PUBLISH_EVERY.as_micros() as Us;

/// What one worker polls.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    Node(usize),
    /// Another daemon's `/state.json`, by daemon index and the name in `observers`.
    Observer(usize, String),
}

/// A probe worker (one per node and per observer).
#[derive(Clone, Debug, Default)]
pub struct Worker {
    /// A probe is running.
    pub busy: bool,
    /// Bumped whenever its scheduled tick is replaced; stale tick events are ignored.
    pub tick_seq: u64,
    /// The poll-now generation it last saw.
    pub generation: u64,
    /// Its target is in the running config (a reload can remove it).
    pub enabled: bool,
    /// Bumped when a reload stops it: the end of a probe it had started is then dropped, as the
    /// aggregator drops reports of workers it no longer has.
    pub incarnation: u64,
}

/// The poller's published snapshot (poll::Snapshot, the parts decide() reads).
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    pub nodes: BTreeMap<String, NodeState>,
    pub observers: BTreeMap<String, ObserverState>,
    pub round: u64,
}

/// A node entry of the aggregator's working snapshot that differs from the published one.
// One slot per node, set in place and moved out at publication: boxing the entry would cost
// an allocation per probe, to save space that is never copied.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
pub enum NodeChange {
    Set(NodeState),
    /// A reload took the node out of `remote_conns`.
    Removed,
}

/// The aggregator's working snapshot. Its node entries are kept as their changes since the
/// last publication (the published ones with these applied are the aggregator's), which
/// publishing moves in: a copy of the whole working snapshot at every publication (observers'
/// node maps and all) was a sixth of the run time. Its observer entries are whole, as
/// `poll::merge_observer` keeps them: they are cheap to copy (their nodes are shared).
#[derive(Clone, Debug, Default)]
pub struct Work {
    /// By node index.
    pub nodes: Vec<Option<NodeChange>>,
    pub observers: BTreeMap<String, ObserverState>,
    pub round: u64,
}

/// A reading of a daemon's `/state.json`: (publication, config version), the failover word and
/// the relayed voter digests it was served with, and what the reading gave.
pub type AnswerCache = (
    (u64, u64),
    Option<FailoverStatus>,
    Vec<(String, String)>,
    Arc<BTreeMap<String, NodeState>>,
);

pub struct Daemon {
    pub name: String,
    /// The daemon's decision loop: config, memory, running commands.
    pub node: Node,
    /// The node a reload has taken out of `remote_conns`, while one has.
    pub removed: Option<usize>,
    /// Its config has `fence_command`.
    pub fence_on: bool,
    pub up: bool,
    /// Bumped at every (re)start: events of an earlier incarnation are ignored.
    pub epoch: u64,
    /// This daemon's monotonic clock reads `t * mono_rate + mono_offset` (seconds).
    pub mono_offset: f64,
    /// How fast its monotonic clock runs (1 ± 200 ppm: a quartz crystal's tolerance).
    pub mono_rate: f64,
    /// This daemon's wall clock is off by this much (microseconds).
    pub wall_offset: i64,
    pub targets: Vec<Target>,
    /// `pg0`, `pg1`, ...: the keys of the node entries, written once.
    node_names: Vec<String>,
    pub workers: Vec<Worker>,
    /// The aggregator's working state (its changes since the last publication), and what it
    /// last published.
    pub work: Work,
    pub published: Snapshot,
    pub dirty: bool,
    pub publish_scheduled: bool,
    /// When the aggregator started (its publish ticks are every 100 ms from there).
    pub started: Us,
    /// The aggregator's round accounting (by worker index).
    pub rounds: Rounds<usize>,
    // the decision loop (daemon::Loop)
    pub check_seq: u64,
    pub last_round_seen: u64,
    pub maintenance_answer: bool,
    /// Bumped at every publication.
    pub publish_seq: u64,
    /// The reading of the `/state.json` bytes of publication `.0.0` under config version `.0.1`
    /// (see `World::observer_answer`).
    pub answer_cache: Option<AnswerCache>,
    /// What `/state.json` answers while an `ObserverStale` fault holds it.
    pub stale_copy: Option<BTreeMap<String, NodeState>>,
    /// The voter digests other node daemons sent with their fetches of our `/state.json`
    /// (`http::relay` in the daemon), lost at a restart.
    pub relays: pglookout::decide::voters::Relays,
    /// `lease_renewed_at` of the state file the daemon wrote at its last check; it survives a
    /// restart, as the file does.
    pub state_file_lease: Option<pglookout::state::Timestamp>,
    /// The ids the node started its running failover, fence, follow and rejoin with (see
    /// [`command_slot`]), handed back with their ends.
    pub command_ids: [Option<CommandId>; 4],
    /// What the node last published of its own node ([`pglookout::node::Effect::Publish`]).
    pub own: OwnStatus,
}

/// Where a command's id is kept in [`Daemon::command_ids`].
pub fn command_slot(kind: Kind) -> usize {
    match kind {
        Kind::Failover => 0,
        Kind::Fence => 1,
        Kind::Follow => 2,
        Kind::Rejoin => 3,
    }
}

/// Whether node daemon `d` starts with `fence_command` (a `fenceon` fault turns it on later).
pub fn fences_from_start(s: &Schedule, d: usize) -> bool {
    d < s.nodes && s.fencing() && !s.faults.iter().any(|f| f.kind == FaultKind::FenceOn(d))
}

/// The config document of daemon `d`: its observers as the layout says (the mesh of
/// docs/safety.md: every node's daemon lists the other nodes' daemons and the observers), the
/// profile's timings, our command names; without node `removed` in `remote_conns` when a reload
/// took it out; `fence_command` when `fence` (node daemons only).
pub fn config_json(s: &Schedule, d: usize, removed: Option<usize>, fence: bool) -> Value {
    let mut conf = serde_json::Map::new();
    if s.profile == Profile::Fast {
        if let Ok(Value::Object(fast)) = serde_json::from_str::<Value>(FAST_PROFILE) {
            conf.extend(fast);
        }
    }
    let remote: serde_json::Map<String, Value> = (0..s.nodes)
        .filter(|i| Some(*i) != removed)
        .map(|i| {
            (
                format!("pg{i}"),
                json!(format!("host=pg{i} port=5432 user=pglookout dbname=postgres")),
            )
        })
        .collect();
    conf.insert("remote_conns".into(), Value::Object(remote));
    let is_node = d < s.nodes;
    if is_node {
        conf.insert("own_db".into(), json!(format!("pg{d}")));
        let observers: serde_json::Map<String, Value> = (0..s.daemons())
            .filter(|o| lists(s, d, *o))
            .map(|o| {
                let name = daemon_name(s, o);
                let url = json!(format!("http://{name}:15000"));
                (name, url)
            })
            .collect();
        conf.insert("observers".into(), Value::Object(observers));
        if fence {
            conf.insert("fence_command".into(), json!("sim-fence"));
            // a fragile lease (no daemon for some other node, or fewer than 3 voters) is
            // refused at load unless allowed
            if s.layout != Layout::Mesh || voters(s, d).len() < 3 {
                conf.insert("allow_fragile_lease".into(), json!(true));
            }
        }
    } else {
        conf.insert("own_db".into(), json!(""));
    }
    conf.insert("failover_command".into(), json!("sim-promote"));
    if let Some(t) = s.failover_timeout {
        conf.insert("failover_command_timeout".into(), json!(crate::secs(t)));
    }
    conf.insert("alert_file_dir".into(), json!("/sim/alerts"));
    conf.insert("json_state_file_path".into(), json!("/sim/state.json"));
    conf.insert("maintenance_mode_file".into(), json!("/sim/maintenance"));
    if let Some(n) = s.never_promote {
        conf.insert("never_promote_these_nodes".into(), json!([format!("pg{n}")]));
    }
    if let Some(p) = s.policy {
        conf.insert("max_failover_lag_bytes".into(), json!(p.cap));
        conf.insert(
            "failover_priorities".into(),
            json!({ format!("pg{}", p.preferred): 100 }),
        );
    }
    if (s.autofollow || s.rejoin) && is_node {
        conf.insert("autofollow".into(), json!(s.autofollow));
        conf.insert(
            "primary_conninfo_template".into(),
            json!("user=replication sslmode=prefer"),
        );
        conf.insert("pg_data_directory".into(), json!("/sim/data"));
        conf.insert("pg_start_command".into(), json!("sim-start"));
        conf.insert("pg_stop_command".into(), json!("sim-stop"));
    }
    if s.sync != pglookout::config::SynchronousMode::Off {
        let mode = match s.sync {
            pglookout::config::SynchronousMode::Strict => "strict",
            _ => "on",
        };
        conf.insert("synchronous_mode".into(), json!(mode));
        conf.insert("synchronous_node_count".into(), json!(s.sync_k));
    }
    if s.rejoin && is_node {
        conf.insert("rejoin_old_master".into(), json!(true));
        conf.insert("pg_rewind_command".into(), json!("sim-rewind"));
        conf.insert("pg_controldata_command".into(), json!("sim-controldata"));
    }
    Value::Object(conf)
}

impl Daemon {
    /// A daemon as configured for schedule `s`; `Err` carries the config validation message.
    pub fn new(s: &Schedule, d: usize, mono_offset: f64, wall_offset: i64) -> Result<Daemon, String> {
        let name = daemon_name(s, d);
        let path = format!("/sim/{name}.json");
        let fence_on = fences_from_start(s, d);
        let (config, _warnings) =
            Config::from_value(Path::new(&path), &config_json(s, d, None, fence_on)).map_err(|e| e.to_string())?;
        let mut targets: Vec<Target> = (0..s.nodes).map(Target::Node).collect();
        let config = std::sync::Arc::new(config);
        for o in 0..s.daemons() {
            let oname = daemon_name(s, o);
            if config.observers.contains_key(&oname) {
                targets.push(Target::Observer(o, oname));
            }
        }
        let workers = vec![
            Worker {
                enabled: true,
                ..Worker::default()
            };
            targets.len()
        ];
        Ok(Daemon {
            name,
            node: Node::new(config, Memory::new(Mono(mono_offset))),
            removed: None,
            fence_on,
            up: true,
            epoch: 0,
            mono_offset,
            mono_rate: 1.0,
            wall_offset,
            targets,
            node_names: (0..s.nodes).map(|n| format!("pg{n}")).collect(),
            workers,
            work: Work::default(),
            published: Snapshot::default(),
            dirty: false,
            publish_scheduled: false,
            started: 0,
            rounds: Rounds::new(mono_offset),
            check_seq: 0,
            last_round_seen: 0,
            maintenance_answer: false,
            publish_seq: 0,
            answer_cache: None,
            command_ids: [None; 4],
            own: OwnStatus::default(),
            stale_copy: None,
            relays: Default::default(),
            state_file_lease: None,
        })
    }

    /// Starts (again) at `t` with an empty memory and poller, as a restarted process does;
    /// the lease comes back from the state file (`daemon::run`), read on the wall clock `wall`.
    pub fn restart(&mut self, t: Us, wall: pglookout::state::Timestamp, maintenance: bool) {
        self.up = true;
        self.epoch += 1;
        let mut memory = Memory::new(Mono(self.mono(t)));
        if let Some(renewed) = self.state_file_lease {
            let mono = self.mono(t);
            pglookout::decide::fence::restore_lease(&mut memory, self.config(), renewed, wall, Mono(mono));
        }
        // a new process: no command of the old one is awaited, the history is told afresh
        self.node = Node::new(self.config().clone(), memory);
        let enabled: Vec<bool> = self.workers.iter().map(|w| w.enabled).collect();
        self.workers = enabled
            .into_iter()
            .map(|enabled| Worker {
                enabled,
                ..Worker::default()
            })
            .collect();
        self.work = Work::default();
        self.published = Snapshot::default();
        self.own = OwnStatus::default();
        // a new process serves nothing of the old one's publications
        self.answer_cache = None;
        self.publish_seq += 1;
        self.dirty = false;
        self.publish_scheduled = false;
        self.started = t;
        self.rounds.reset(self.mono(t));
        self.check_seq += 1;
        self.last_round_seen = 0;
        // the first decision waits for the first look at the file (daemon::run)
        self.maintenance_answer = maintenance;
    }

    /// A SIGHUP: the config of schedule `s` without node `removed`, checked as the daemon
    /// checks it (a config that does not load keeps the running one). Workers of targets the new
    /// config lacks stop, their nodes leave the snapshot; returns the workers to start at once.
    pub fn reload(
        &mut self,
        s: &Schedule,
        d: usize,
        t: Us,
        removed: Option<usize>,
    ) -> Result<(Vec<usize>, Vec<pglookout::node::Effect>), String> {
        let path = format!("/sim/{}.json", self.name);
        let (new, _warnings) = Config::from_value(Path::new(&path), &config_json(s, d, removed, self.fence_on))
            .map_err(|e| e.to_string())?;
        let now = self.mono(t);
        let source = path.clone();
        let step = self.node.handle(
            pglookout::node::Input::Reloaded {
                config: std::sync::Arc::new(new),
                source,
            },
            Mono(now),
        );
        self.removed = removed;
        let mut start = Vec::new();
        for (w, target) in self.targets.iter().enumerate() {
            let wanted = match target {
                Target::Node(n) => self.config().remote_conns.contains_key(&format!("pg{n}")),
                Target::Observer(_, name) => self.config().observers.contains_key(name),
            };
            let worker = &mut self.workers[w];
            if worker.enabled && !wanted {
                worker.enabled = false;
                worker.busy = false;
                worker.incarnation += 1;
                worker.tick_seq += 1;
                self.rounds.forget(&w);
                if let Target::Node(n) = *target {
                    Self::change_node(&mut self.work, n, NodeChange::Removed);
                }
                self.dirty = true;
            } else if !worker.enabled && wanted {
                worker.enabled = true;
                start.push(w);
            }
        }
        Ok((start, step.effects))
    }

    /// How many workers the running config has.
    /// The running config.
    pub fn config(&self) -> &std::sync::Arc<Config> {
        self.node.config()
    }

    pub fn live_workers(&self) -> usize {
        self.workers.iter().filter(|w| w.enabled).count()
    }

    pub fn mono(&self, t: Us) -> f64 {
        crate::secs(t) * self.mono_rate + self.mono_offset
    }

    /// Simulated time after `secs` seconds of this daemon's monotonic clock.
    pub fn after(&self, t: Us, secs: f64) -> Us {
        t + crate::us(secs / self.mono_rate)
    }

    /// The next tick of the shared poll grid strictly after `t` (on this daemon's monotonic
    /// clock).
    pub fn next_grid_tick(&self, t: Us) -> Us {
        let wait = pglookout::poll::until_next_tick(self.mono(t), self.config().db_poll_interval.max(0.01));
        self.after(t, wait).max(t + 1)
    }

    /// The next publish tick strictly after `t`.
    pub fn next_publish_tick(&self, t: Us) -> Us {
        let since = t.saturating_sub(self.started);
        self.started + (since / PUBLISH_EVERY + 1) * PUBLISH_EVERY
    }

    /// A poll-now request: true when a new round starts now (workers then probe at once).
    pub fn request_round(&mut self, t: Us) -> bool {
        let (now, interval) = (self.mono(t), self.config().db_poll_interval);
        self.rounds.request(now, interval)
    }

    /// The publish tick: starts a deferred request whose spacing has passed.
    pub fn tick(&mut self, t: Us) -> bool {
        let (now, interval) = (self.mono(t), self.config().db_poll_interval);
        self.rounds.tick(now, interval)
    }

    /// Counts a report; true when it completed a round (then the snapshot is published at once).
    pub fn report(&mut self, w: usize, started: Us, t: Us) -> bool {
        let (started, now, interval) = (self.mono(started), self.mono(t), self.config().db_poll_interval);
        let complete = self.rounds.report(&w, started, self.live_workers(), now, interval);
        if complete {
            self.work.round += 1;
        }
        complete
    }

    /// What this daemon's `/state.json` serves now: its published polls, with its own node's
    /// failover status and voter-set digest, and the digests `relayed` in the other nodes'
    /// entries (the daemon's HTTP answer does the same).
    pub fn served(&self, relayed: &[(String, String)]) -> std::borrow::Cow<'_, BTreeMap<String, NodeState>> {
        let relayed = relayed.iter().map(|(n, d)| (n.as_str(), d.as_str()));
        pglookout::state::served_nodes(
            &self.published.nodes,
            self.config().own_db.as_deref(),
            &self.own.word,
            relayed,
        )
    }

    /// Keeps what daemon `from` sends with its fetch of our `/state.json` at `t`, and returns
    /// the digests to relay now (`http::relay` in the daemon).
    pub fn relay(&mut self, from: &Config, t: Us) -> Vec<(String, String)> {
        let now = self.mono(t);
        if let Some((node, digest)) = pglookout::decide::voters::sent_with_fetches(from) {
            let config = self.config().clone();
            self.relays.record(&config, node, &digest, now);
        }
        self.relays.relayed(self.config(), now)
    }

    /// The aggregator's entry for node `n` (named `name`): its change since the last
    /// publication, else the published one.
    pub fn node_entry(&self, n: usize, name: &str) -> Option<&NodeState> {
        match self.work.nodes.get(n) {
            Some(Some(NodeChange::Set(state))) => Some(state),
            Some(Some(NodeChange::Removed)) => None,
            _ => self.published.nodes.get(name),
        }
    }

    /// Sets the aggregator's entry for node `n`.
    pub fn set_node(&mut self, n: usize, state: NodeState) {
        Self::change_node(&mut self.work, n, NodeChange::Set(state));
    }

    fn change_node(work: &mut Work, n: usize, change: NodeChange) {
        if work.nodes.len() <= n {
            work.nodes.resize_with(n + 1, || None);
        }
        work.nodes[n] = Some(change);
    }

    /// Merges a fetch by worker `w` (of an observer) into the aggregator's working snapshot
    /// with the daemon's `poll::merge_observer`; returns whether the observer was reached
    /// before (`None`: never fetched, or `w` polls no observer).
    pub fn merge_observer(
        &mut self,
        w: usize,
        fetch_time: pglookout::state::Timestamp,
        result: Result<Arc<BTreeMap<String, NodeState>>, pglookout::poll::observer::ObserverError>,
    ) -> Option<bool> {
        let Some(Target::Observer(_, name)) = self.targets.get(w) else {
            return None;
        };
        let was = self.work.observers.get(name).map(|o| o.connection);
        pglookout::poll::merge_observer(&mut self.work.observers, name, fetch_time, result);
        was
    }

    /// Publishes the working snapshot: its changes move into the published one.
    pub fn publish(&mut self) {
        self.publish_seq += 1;
        for (change, name) in self.work.nodes.iter_mut().zip(&self.node_names) {
            match change.take() {
                None => {}
                Some(NodeChange::Removed) => {
                    self.published.nodes.remove(name);
                }
                Some(NodeChange::Set(state)) => match self.published.nodes.get_mut(name) {
                    Some(slot) => *slot = state,
                    None => {
                        self.published.nodes.insert(name.clone(), state);
                    }
                },
            }
        }
        for (name, state) in &self.work.observers {
            match self.published.observers.get_mut(name) {
                Some(slot) => slot.clone_from(state),
                None => {
                    self.published.observers.insert(name.clone(), state.clone());
                }
            }
        }
        self.published.round = self.work.round;
        self.dirty = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::generate;

    #[test]
    fn every_generated_config_passes_validation() {
        let classic = (0..200).map(generate);
        let authority = (0..400).map(crate::schedule::generate_authority);
        for (seed, s) in classic.chain(authority).enumerate() {
            for d in 0..s.daemons() {
                let mut dm = match Daemon::new(&s, d, 1000.0, 0) {
                    Ok(dm) => dm,
                    Err(e) => panic!("seed {seed} daemon {d}: {e}"),
                };
                // every reload the schedules can draw loads too
                for n in (0..s.nodes).filter(|n| *n != d) {
                    if let Err(e) = dm.reload(&s, d, 0, Some(n)) {
                        panic!("seed {seed} daemon {d} without pg{n}: {e}");
                    }
                }
                // and every reload that turns fencing on
                if d < s.nodes && !dm.fence_on {
                    dm.fence_on = true;
                    if let Err(e) = dm.reload(&s, d, 0, None) {
                        panic!("seed {seed} daemon {d} with fencing turned on: {e}");
                    }
                }
            }
        }
    }
}
