//! The poller: one task per PostgreSQL node and per observer, each on its own schedule and with
//! its own deadline, so a node that hangs never delays another node's state. An aggregating
//! task owns every node's and observer's state, merges each probe into it (keeping the last
//! known fields after a failure, as the original does; of an observer's report, only the nodes
//! of our `remote_conns`, see [`ForeignNames`]), counts completed rounds, and publishes
//! snapshots on a `watch` channel. Nothing else mutates these states.

pub mod observer;
pub mod postgres;
pub mod rounds;

use crate::clock;
use crate::config::Config;
use crate::metrics::Statsd;
use crate::prometheus::Counters;
pub use crate::state::Snapshot;
use crate::state::{NodeState, ObserverState, PgFields, Timestamp};
use postgres::{PgProbe, ProbeError};
pub use rounds::until_next_tick;
use rounds::Rounds;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch, Notify};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How often a changed state is published at most.
pub const PUBLISH_EVERY: Duration = Duration::from_millis(100);

/// Handle to the running poller.
#[derive(Clone)]
pub struct Poller {
    pub snapshots: watch::Receiver<Arc<Snapshot>>,
    poll_now: Arc<Notify>,
    observe: Arc<watch::Sender<bool>>,
}

impl Poller {
    /// Asks for an immediate round. Any number of requests before the round starts make one.
    pub fn poll_now(&self) {
        self.poll_now.notify_one();
    }
    /// Whether observers are polled (`poll_observers_on_warning_only` is driven through this).
    pub fn set_observer_polling(&self, on: bool) {
        self.observe.send_if_modified(|v| std::mem::replace(v, on) != on);
    }
}

/// An error's text followed by each cause that adds something (client libraries' own text,
/// such as reqwest's "error sending request", often leaves out why).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        let t = inner.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        src = inner.source();
    }
    s
}

/// Merges one probe into a node's state: a failure keeps the last known fields with
/// `connection: false`; a success updates the running minimum of the lag and records when
/// replication was first seen.
pub fn merge(prev: Option<&NodeState>, fetch_time: Timestamp, mono_now: f64, result: Option<PgFields>) -> NodeState {
    let mut node = prev.cloned().unwrap_or_else(|| NodeState::new(fetch_time, false));
    node.fetch_time = fetch_time;
    node.connection = result.is_some();
    if let Some(fields) = result {
        if let Some(lag) = fields.replication_time_lag {
            node.min_replication_time_lag = Some(node.min_replication_time_lag.map_or(lag, |m| m.min(lag)));
        }
        if fields.pg_last_xlog_receive_location.is_some() && node.replication_start_time.is_none() {
            node.replication_start_time = Some(mono_now);
        }
        node.pg = Some(fields);
    }
    node
}

/// Merges one fetch of observer `name` into `observers`; false when it failed. A failed fetch
/// keeps the observer's last nodes (as the original), marked as not reached. Reachability changes
/// are logged as for nodes: the first failure at WARNING with its cause, repeats at DEBUG (a
/// WARNING every round would be 17,000 lines a day per daemon), the recovery at INFO. Public
/// for the simulator, which merges its observer fetches with this same code (and passes the
/// nodes shared: an `Arc`).
pub fn merge_observer(
    observers: &mut BTreeMap<String, ObserverState>,
    name: &str,
    fetch_time: Timestamp,
    result: Result<std::sync::Arc<BTreeMap<String, NodeState>>, observer::ObserverError>,
) -> bool {
    // Never fetched counts as reached, so that a first failure is a WARNING.
    let was_reached = observers.get(name).is_none_or(|o| o.connection);
    // the name is copied only for a new entry (this runs at every fetch)
    if !observers.contains_key(name) {
        observers.insert(
            name.to_string(),
            ObserverState {
                fetch_time,
                connection: true,
                nodes: Default::default(),
            },
        );
    }
    let Some(entry) = observers.get_mut(name) else {
        return false; // inserted just above
    };
    entry.fetch_time = fetch_time;
    match result {
        Ok(nodes) => {
            if !was_reached {
                tracing::info!(target: "ClusterMonitor", "observer {name}: answers again");
            }
            entry.connection = true;
            entry.nodes = nodes;
            true
        }
        Err(e) => {
            if was_reached {
                tracing::warn!(target: "ClusterMonitor", "observer {name}: {e}");
            } else {
                tracing::debug!(target: "ClusterMonitor", "observer {name} failed again: {e}");
            }
            entry.connection = false;
            false
        }
    }
}

/// How often the nodes an observer reports outside our config are logged at most, per observer.
pub const FOREIGN_NAMES_LOG_EVERY: f64 = 600.0;

/// Keeps, of what each observer reports, only the nodes of our `remote_conns`. The others are
/// not ours to serve: re-serving them in `observer_nodes` (the state file, `/status`, metrics)
/// passed whatever names a peer sent on to every reader, forged log lines and terminal escapes
/// included. The decisions never looked at them (one observer may watch several clusters).
/// Logged at INFO when an observer first reports such names, and again only when the set
/// changes, at most once per [`FOREIGN_NAMES_LOG_EVERY`] per observer: a shared observer
/// costs one line, a hostile one that invents names each poll one line per ten minutes.
#[derive(Debug, Default)]
pub struct ForeignNames {
    /// Per observer: a digest of the names last logged and when (monotonic seconds).
    logged: BTreeMap<String, (u64, f64)>,
}

impl ForeignNames {
    /// `nodes` without the names for which `ours` is false; logs what it dropped (see above).
    pub fn keep_ours(
        &mut self,
        observer: &str,
        mut nodes: BTreeMap<String, NodeState>,
        ours: impl Fn(&str) -> bool,
        mono_now: f64,
    ) -> BTreeMap<String, NodeState> {
        let mut dropped: Vec<String> = Vec::new();
        nodes.retain(|name, _| {
            let keep = ours(name);
            if !keep {
                dropped.push(name.clone());
            }
            keep
        });
        if dropped.is_empty() {
            return nodes;
        }
        let digest = {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            dropped.hash(&mut h);
            h.finish()
        };
        let due = match self.logged.get(observer) {
            None => true,
            Some(&(last, at)) => last != digest && mono_now - at >= FOREIGN_NAMES_LOG_EVERY,
        };
        if due {
            self.logged.insert(observer.to_string(), (digest, mono_now));
            const SHOWN: usize = 5;
            let mut names: Vec<String> = dropped.iter().take(SHOWN).map(|n| format!("{n:?}")).collect();
            if dropped.len() > SHOWN {
                names.push(format!("and {} more", dropped.len() - SHOWN));
            }
            tracing::info!(
                target: "ClusterMonitor",
                "observer {observer}: ignoring {} node(s) not in our remote_conns: {} (not used, not served; said again only when they change, at most every {} s)",
                dropped.len(),
                names.join(", "),
                FOREIGN_NAMES_LOG_EVERY
            );
        }
        nodes
    }

    /// Forgets observers that are no longer configured.
    fn retain(&mut self, configured: impl Fn(&str) -> bool) {
        self.logged.retain(|name, _| configured(name));
    }
}

enum Outcome {
    Node(Result<PgFields, ProbeError>),
    Observer(Result<BTreeMap<String, NodeState>, observer::ObserverError>),
}

struct Report {
    key: Key,
    /// When the probe started (monotonic seconds).
    started: f64,
    fetch_time: Timestamp,
    mono: f64,
    outcome: Outcome,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Key {
    Node(String),
    Observer(String),
}

struct Worker {
    cancel: CancellationToken,
    /// What the worker was started with; a change restarts it.
    target: String,
    /// Its task: one that ends while the worker is still wanted has crashed.
    task: tokio::task::JoinHandle<()>,
}

/// What a node daemon sends with its fetches of other daemons' `/state.json`, from its
/// config: its node and its voter-set digest (`decide::voters::sent_with_fetches`).
pub type Sent = Arc<dyn Fn(&Config) -> Option<(String, String)> + Send + Sync>;

/// Starts the poller. `config` carries reloads; `on_auth_error` is told about refused logins;
/// `sent` says what to send with each observer fetch.
pub fn start(
    config: watch::Receiver<Arc<Config>>,
    statsd: watch::Receiver<Statsd>,
    alerts: Arc<dyn Fn(&str) + Send + Sync>,
    sent: Sent,
    counters: Arc<Counters>,
    cancel: CancellationToken,
) -> Poller {
    let (snap_tx, snap_rx) = watch::channel(Arc::new(Snapshot::default()));
    let poll_now = Arc::new(Notify::new());
    let (observe_tx, observe_rx) = watch::channel(!config.borrow().poll_observers_on_warning_only);
    let poller = Poller {
        snapshots: snap_rx,
        poll_now: poll_now.clone(),
        observe: Arc::new(observe_tx),
    };
    let agg = Aggregator {
        counters,
        config,
        statsd,
        alerts,
        sent,
        cancel,
        snap_tx,
        poll_now,
        observe: observe_rx,
        generation: watch::channel(0u64).0,
        workers: BTreeMap::new(),
        snapshot: Snapshot::default(),
        rounds: Rounds::new(clock::monotonic()),
        foreign: ForeignNames::default(),
    };
    tokio::spawn(agg.run());
    poller
}

struct Aggregator {
    counters: Arc<Counters>,
    config: watch::Receiver<Arc<Config>>,
    statsd: watch::Receiver<Statsd>,
    alerts: Arc<dyn Fn(&str) + Send + Sync>,
    sent: Sent,
    cancel: CancellationToken,
    snap_tx: watch::Sender<Arc<Snapshot>>,
    poll_now: Arc<Notify>,
    observe: watch::Receiver<bool>,
    /// Bumped on every poll-now request; workers probe at once when it changes.
    generation: watch::Sender<u64>,
    workers: BTreeMap<Key, Worker>,
    snapshot: Snapshot,
    rounds: Rounds<Key>,
    foreign: ForeignNames,
}

impl Aggregator {
    async fn run(mut self) {
        let (tx, mut rx) = mpsc::channel::<Report>(1024);
        self.sync_workers(&tx);
        let mut publish = tokio::time::interval(PUBLISH_EVERY);
        publish.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut dirty = false;
        loop {
            tokio::select! {
                _ = self.cancel.cancelled() => break,
                Some(report) = rx.recv() => {
                    if self.apply(report) {
                        self.finish_round();
                        self.publish();
                        dirty = false;
                    } else {
                        dirty = true;
                    }
                }
                changed = self.config.changed() => {
                    if changed.is_err() { break; }
                    self.sync_workers(&tx);
                    dirty = true;
                }
                changed = self.observe.changed() => {
                    if changed.is_err() { break; }
                    self.sync_workers(&tx);
                }
                _ = self.poll_now.notified() => {
                    let interval = self.poll_interval();
                    self.rounds.request(clock::monotonic(), interval);
                    self.sync_generation();
                }
                _ = publish.tick() => {
                    self.restart_crashed_workers(&tx);
                    let (now, interval) = (clock::monotonic(), self.poll_interval());
                    self.rounds.tick(now, interval);
                    self.sync_generation();
                    if self.workers.is_empty() && self.rounds.idle_round_due(now, interval) {
                        // nothing to poll: a round is just the passing of the interval
                        self.rounds.finish(now, interval);
                        self.finish_round();
                        dirty = true;
                    }
                    if dirty {
                        self.publish();
                        dirty = false;
                    }
                }
            }
        }
        for w in self.workers.values() {
            w.cancel.cancel();
        }
    }

    fn poll_interval(&self) -> f64 {
        self.config.borrow().db_poll_interval
    }

    /// Tells the workers when a requested round started (they probe at once).
    fn sync_generation(&mut self) {
        let g = self.rounds.generation();
        self.generation.send_if_modified(|v| std::mem::replace(v, g) != g);
    }

    /// A round completed (the accounting already moved on): counted in the snapshot.
    fn finish_round(&mut self) {
        self.snapshot.round += 1;
        self.snapshot.last_round_at = Some(clock::monotonic());
        self.sync_generation();
    }

    fn publish(&mut self) {
        self.snap_tx.send_replace(Arc::new(self.snapshot.clone()));
    }

    /// Merges one report; true when it completed a round. Counting it runs once per report, so
    /// it must not be O(N) (building the set of required keys instead cost O(N²) per round,
    /// half of the daemon's CPU at a thousand nodes; docs/performance.md).
    fn apply(&mut self, r: Report) -> bool {
        crate::supervise::fault_point("poll-aggregator");
        if !self.workers.contains_key(&r.key) {
            return false; // removed by a reload while probing
        }
        let now = clock::monotonic();
        let complete = self
            .rounds
            .report(&r.key, r.started, self.workers.len(), now, self.poll_interval());
        self.snapshot.last_report_at = Some(r.mono);
        if let Key::Node(name) = &r.key {
            self.snapshot.polled_at.insert(name.clone(), r.mono);
        }
        let statsd = self.statsd.borrow().clone();
        match (r.key, r.outcome) {
            (Key::Node(name), Outcome::Node(result)) => {
                let fields = match result {
                    Ok(f) => Some(f),
                    Err(e) => {
                        let prev_connected = self.snapshot.nodes.get(&name).is_none_or(|n| n.connection);
                        if prev_connected {
                            tracing::warn!(target: "ClusterMonitor", "{name}: poll failed: {}", e.message);
                        } else {
                            tracing::debug!(target: "ClusterMonitor", "{name}: poll failed again: {}", e.message);
                        }
                        statsd.count("exception", &[("exception", "PollError"), ("where", e.site)]);
                        if e.auth {
                            (self.alerts)("authentication_error");
                        }
                        None
                    }
                };
                let node = merge(self.snapshot.nodes.get(&name), r.fetch_time, r.mono, fields);
                self.snapshot.nodes.insert(name, node);
            }
            (Key::Observer(name), Outcome::Observer(result)) => {
                let result = result.map(|nodes| {
                    let config = self.config.borrow();
                    let ours = self
                        .foreign
                        .keep_ours(&name, nodes, |n| config.remote_conns.contains_key(n), now);
                    std::sync::Arc::new(ours)
                });
                let reached = merge_observer(&mut self.snapshot.observers, &name, r.fetch_time, result);
                if !reached {
                    statsd.count(
                        "exception",
                        &[("exception", "ObserverError"), ("where", "_fetch_observer_state")],
                    );
                }
            }
            _ => {}
        }
        complete
    }

    /// A worker task that ended on its own panicked (its own loop only ends when cancelled):
    /// it is logged and counted, and started again. The new one waits for the next poll tick,
    /// so a probe that panics every time costs one restart per interval, not a busy loop.
    fn restart_crashed_workers(&mut self, tx: &mpsc::Sender<Report>) {
        let crashed: Vec<Key> = self
            .workers
            .iter()
            .filter(|(_, w)| w.task.is_finished() && !w.cancel.is_cancelled())
            .map(|(k, _)| k.clone())
            .collect();
        if crashed.is_empty() {
            return;
        }
        for key in &crashed {
            self.workers.remove(key);
            let what = match key {
                Key::Node(n) => format!("poll worker for node {n}"),
                Key::Observer(o) => format!("poll worker for observer {o}"),
            };
            crate::supervise::crashed(
                &what,
                "it ended unexpectedly (see the panic above); restarting it",
                &self.counters,
            );
        }
        self.start_workers(tx, false);
    }

    /// Starts, restarts and stops workers to match the config (and the observer switch).
    fn sync_workers(&mut self, tx: &mpsc::Sender<Report>) {
        let config = self.config.borrow().clone();
        let wanted = self.wanted();
        let stale: Vec<Key> = self
            .workers
            .iter()
            .filter(|(k, w)| wanted.get(*k) != Some(&w.target))
            .map(|(k, _)| k.clone())
            .collect();
        for key in stale {
            if let Some(w) = self.workers.remove(&key) {
                w.cancel.cancel();
            }
            self.rounds.forget(&key);
            let still_wanted = wanted.contains_key(&key);
            match &key {
                Key::Node(n) if !still_wanted => {
                    tracing::info!(target: "ClusterMonitor", "node {n} removed from the config");
                    self.snapshot.nodes.remove(n);
                    self.snapshot.polled_at.remove(n);
                }
                Key::Observer(o) if !config.observers.contains_key(o) => {
                    self.snapshot.observers.remove(o);
                }
                _ => {}
            }
        }
        // observers' reports of nodes that left our config are not served either
        for o in self.snapshot.observers.values_mut() {
            std::sync::Arc::make_mut(&mut o.nodes).retain(|n, _| config.remote_conns.contains_key(n));
        }
        self.foreign.retain(|o| config.observers.contains_key(o));
        self.start_workers(tx, true);
    }

    /// The config's wanted workers, each with its identity (a change restarts the worker).
    fn wanted(&self) -> BTreeMap<Key, String> {
        let config = self.config.borrow().clone();
        let mut wanted: BTreeMap<Key, String> = config
            .remote_conns
            .iter()
            .map(|(name, ci)| {
                let own = config.own_db.as_ref() == Some(name);
                (Key::Node(name.clone()), format!("{} own={own}", ci.render()))
            })
            .collect();
        if *self.observe.borrow() {
            for (name, target) in &config.observers {
                let id = format!("{} {:?} {:?}", target.url, target.token, target.ca_file);
                wanted.insert(Key::Observer(name.clone()), id);
            }
        }
        wanted
    }

    /// Starts every wanted worker that is not running; `at_once`: probe at once rather than
    /// at the next poll tick.
    fn start_workers(&mut self, tx: &mpsc::Sender<Report>, at_once: bool) {
        let config = self.config.borrow().clone();
        for (key, target) in self.wanted() {
            if self.workers.contains_key(&key) {
                continue;
            }
            let cancel = self.cancel.child_token();
            let ctx = WorkerCtx {
                counters: self.counters.clone(),
                key: key.clone(),
                config: self.config.clone(),
                generation: self.generation.subscribe(),
                tx: tx.clone(),
                cancel: cancel.clone(),
            };
            let task = match &key {
                Key::Node(name) => match config.remote_conns.get(name) {
                    Some(ci) => {
                        let own = config.own_db.as_ref() == Some(name);
                        tokio::spawn(ctx.run(PgProbe::new(name, ci.clone(), own), at_once))
                    }
                    None => continue,
                },
                Key::Observer(name) => {
                    let Some(t) = config.observers.get(name) else {
                        continue;
                    };
                    let shown = crate::config::display_url(&t.url);
                    match observer::client(t.ca_file.as_deref()) {
                        Ok(client) => tokio::spawn(ctx.run(
                            ObserverProbe {
                                target: t.clone(),
                                client,
                                shown,
                                told: Told::default(),
                                config: self.config.clone(),
                                sent: self.sent.clone(),
                            },
                            at_once,
                        )),
                        Err(e) => {
                            // not a worker: a round must not wait for it
                            tracing::error!(target: "ClusterMonitor", "observer {shown}: {e}; not polled");
                            continue;
                        }
                    }
                }
            };
            self.workers.insert(key, Worker { cancel, target, task });
        }
    }
}

struct WorkerCtx {
    counters: Arc<Counters>,
    key: Key,
    config: watch::Receiver<Arc<Config>>,
    generation: watch::Receiver<u64>,
    tx: mpsc::Sender<Report>,
    cancel: CancellationToken,
}

impl WorkerCtx {
    fn probe_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.config.borrow().db_poll_timeout)
    }

    fn interval(&self) -> Duration {
        Duration::from_secs_f64(self.config.borrow().db_poll_interval.max(0.01))
    }

    /// When to probe next: the next tick of the poll grid (multiples of `db_poll_interval` on
    /// the monotonic clock), which every worker shares, so that a round's probes start together
    /// as the original's rounds did. Scheduled `interval` after each one's own previous probe
    /// instead, the workers drifted apart by every wake-up delay until their phases covered the
    /// whole interval; the state file, written once per `replication_state_check_interval`,
    /// then held fetch times up to both intervals plus a probe old (docs/performance.md).
    fn next_tick(&self) -> Instant {
        let wait = until_next_tick(clock::monotonic(), self.interval().as_secs_f64());
        Instant::now() + Duration::from_secs_f64(wait)
    }

    /// Waits for the next probe time or a poll-now request. False when cancelled.
    async fn wait(&mut self, next: Instant) -> bool {
        tokio::select! {
            _ = self.cancel.cancelled() => false,
            _ = tokio::time::sleep_until(next) => true,
            r = self.generation.changed() => r.is_ok(),
        }
    }

    async fn send(&self, started: f64, fetch_time: Timestamp, mono: f64, outcome: Outcome) -> bool {
        let report = Report {
            key: self.key.clone(),
            started,
            fetch_time,
            mono,
            outcome,
        };
        self.tx.send(report).await.is_ok()
    }

    /// Probes on the shared grid (or at once on a poll-now request) until cancelled, sending
    /// every outcome to the aggregator.
    async fn run<P: Probe>(mut self, mut probe: P, at_once: bool) {
        let mut next = if at_once { Instant::now() } else { self.next_tick() };
        while self.wait(next).await {
            self.generation.borrow_and_update();
            if let Key::Node(name) = &self.key {
                crate::supervise::fault_point(&format!("poll-worker:{name}"));
            }
            let started = Instant::now();
            let started_mono = clock::monotonic();
            let fetch_time = chrono::Utc::now();
            let outcome = tokio::select! {
                _ = self.cancel.cancelled() => return,
                o = probe.probe(self.probe_timeout()) => o,
            };
            if let Outcome::Node(result) = &outcome {
                self.counters
                    .observe_poll(started.elapsed().as_secs_f64(), result.is_ok());
            }
            if !self.send(started_mono, fetch_time, clock::monotonic(), outcome).await {
                return;
            }
            next = self.next_tick();
        }
    }
}

/// One kind of thing a worker polls.
trait Probe: Send {
    /// One probe, given up after `deadline` (`db_poll_timeout`).
    fn probe(&mut self, deadline: Duration) -> impl std::future::Future<Output = Outcome> + Send;
}

impl Probe for PgProbe {
    async fn probe(&mut self, deadline: Duration) -> Outcome {
        Outcome::Node(self.probe_within(deadline).await)
    }
}

/// An observer's address, its HTTP client and what to show of it in messages.
struct ObserverProbe {
    target: crate::config::ObserverTarget,
    client: reqwest::Client,
    shown: String,
    told: Told,
    /// The running config: what we send with each fetch follows its reloads.
    config: watch::Receiver<Arc<crate::config::Config>>,
    sent: Sent,
}

/// What the log was last told about one observer's answers: each is said when it changes,
/// not on every poll (a schema-mismatched observer logged four warnings a second).
#[derive(Default)]
struct Told {
    /// The entries last ignored.
    bad: Vec<String>,
    /// Whether the last answer lacked a `Date` header.
    undated: bool,
}

impl Told {
    /// Logs what changed since the last answer; returns the lines, for the tests.
    fn answer(&mut self, shown: &str, bad: Vec<String>, dated: bool) -> Vec<String> {
        let mut lines = Vec::new();
        if bad != self.bad {
            if bad.is_empty() {
                lines.push(format!("observer {shown}: every entry of its answer is read again"));
            }
            for b in bad.iter().filter(|b| !self.bad.contains(b)) {
                lines.push(format!("observer {shown}: ignoring {b} (said once while it lasts)"));
            }
            self.bad = bad;
        }
        if !dated && !self.undated {
            lines.push(format!(
                "observer {shown}: its answers have no Date header, so its clock cannot be checked against ours (accepted, as the original does)"
            ));
        }
        self.undated = !dated;
        for l in &lines {
            tracing::warn!(target: "ClusterMonitor", "{l}");
        }
        lines
    }
}

impl Probe for ObserverProbe {
    async fn probe(&mut self, deadline: Duration) -> Outcome {
        let sent = {
            let config = self.config.borrow();
            (self.sent)(&config)
        };
        let sent = sent.as_ref().map(|(n, d)| (n.as_str(), d.as_str()));
        let fetch = observer::fetch(&self.client, &self.target.url, self.target.token.as_deref(), sent);
        let result = match tokio::time::timeout(deadline, fetch).await {
            Ok(r) => r,
            Err(_) => Err(observer::ObserverError::Request(format!(
                "no answer within {} s",
                deadline.as_secs_f64()
            ))),
        };
        Outcome::Observer(result.map(|a| {
            self.told.answer(&self.shown, a.bad, a.dated);
            a.nodes
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::parse_iso;

    fn standby(lag: f64, receive: bool) -> PgFields {
        PgFields {
            db_time: parse_iso("2024-01-01T00:00:00Z"),
            pg_is_in_recovery: true,
            pg_last_xact_replay_timestamp: None,
            pg_last_xlog_receive_location: receive.then_some(crate::lsn::Lsn(1)),
            pg_last_xlog_replay_location: None,
            replication_time_lag: Some(lag),
            replication_slots: None,
            timeline: None,
            startup_waiting_for_wal: None,
            sync: None,
            receiver_cut: None,
        }
    }

    /// A bad entry, or a missing `Date` header, is said once while it lasts, not at every
    /// poll.
    #[test]
    fn an_observers_bad_entries_are_said_once_while_they_last() {
        let mut told = Told::default();
        let bad = || vec!["node \"pg9\": missing field".to_string()];
        assert_eq!(told.answer("o", bad(), true).len(), 1);
        for _ in 0..10 {
            assert!(told.answer("o", bad(), true).is_empty());
        }
        let clean = told.answer("o", Vec::new(), true);
        assert!(clean[0].contains("read again"), "{clean:?}");
        let undated = told.answer("o", Vec::new(), false);
        assert!(undated[0].contains("no Date header"), "{undated:?}");
        assert!(told.answer("o", Vec::new(), false).is_empty());
    }

    #[test]
    fn a_failed_poll_keeps_the_last_fields_with_connection_false() {
        let t0 = parse_iso("2024-01-01T00:00:00Z").expect("t");
        let t1 = parse_iso("2024-01-01T00:00:05Z").expect("t");
        let ok = merge(None, t0, 10.0, Some(standby(3.0, true)));
        assert!(ok.connection);
        let failed = merge(Some(&ok), t1, 15.0, None);
        assert!(!failed.connection);
        assert_eq!(failed.fetch_time, t1);
        assert_eq!(failed.pg, ok.pg);
    }

    #[test]
    fn min_lag_and_replication_start_are_kept_across_polls() {
        let t = parse_iso("2024-01-01T00:00:00Z").expect("t");
        // first poll without a receive location: the start time is recorded later (the
        // original only ever recorded it when the very first poll had one)
        let a = merge(None, t, 1.0, Some(standby(5.0, false)));
        assert_eq!(a.replication_start_time, None);
        let b = merge(Some(&a), t, 2.0, Some(standby(2.0, true)));
        assert_eq!(b.replication_start_time, Some(2.0));
        let c = merge(Some(&b), t, 3.0, Some(standby(4.0, true)));
        assert_eq!(c.replication_start_time, Some(2.0));
        assert_eq!(c.min_replication_time_lag, Some(2.0));
    }

    #[test]
    fn a_never_reached_node_has_no_fields() {
        let t = parse_iso("2024-01-01T00:00:00Z").expect("t");
        let n = merge(None, t, 1.0, None);
        assert_eq!(n, NodeState::new(t, false));
    }

    /// Runs `f` with a subscriber that writes every event from DEBUG up into the returned text.
    fn logged(f: impl FnOnce()) -> String {
        #[derive(Clone, Default)]
        struct Buf(Arc<std::sync::Mutex<Vec<u8>>>);
        impl std::io::Write for Buf {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buf = Buf::default();
        let writer = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .without_time()
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, f);
        let bytes = buf.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    #[test]
    fn an_unreachable_observer_is_logged_once_until_it_answers_again() {
        let t = parse_iso("2024-01-01T00:00:00Z").expect("t");
        let mut observers = BTreeMap::new();
        let refused = || {
            Err(observer::ObserverError::Request(
                "tcp connect error: Connection refused".into(),
            ))
        };
        let log = logged(|| {
            assert!(merge_observer(&mut observers, "obs", t, Ok(Default::default())));
            for _ in 0..5 {
                assert!(!merge_observer(&mut observers, "obs", t, refused()));
                assert!(!observers["obs"].connection);
            }
            assert!(merge_observer(&mut observers, "obs", t, Ok(Default::default())));
            assert!(observers["obs"].connection);
            assert!(!merge_observer(&mut observers, "obs", t, refused()));
            // never reached from the start: a WARNING too
            assert!(!merge_observer(&mut observers, "other", t, refused()));
            assert!(!merge_observer(&mut observers, "other", t, refused()));
        });
        let lines = |level: &str, what: &str| {
            log.lines()
                .filter(|l| l.contains(level) && l.contains(what))
                .collect::<Vec<_>>()
        };
        let warnings = lines("WARN", "observer obs:");
        assert_eq!(warnings.len(), 2, "one per outage:\n{log}");
        assert!(warnings.iter().all(|l| l.contains("Connection refused")), "{log}");
        assert_eq!(lines("DEBUG", "observer obs").len(), 4, "{log}");
        assert_eq!(lines("INFO", "observer obs: answers again").len(), 1, "{log}");
        assert_eq!(lines("WARN", "observer other").len(), 1, "{log}");
        assert_eq!(log.lines().count(), 2 + 4 + 1 + 2, "{log}");
    }

    #[test]
    fn names_outside_our_config_are_dropped_and_logged_once_per_change_at_most_every_ten_minutes() {
        let t = parse_iso("2024-01-01T00:00:00Z").expect("t");
        let report = |names: &[&str]| -> BTreeMap<String, NodeState> {
            names.iter().map(|n| (n.to_string(), NodeState::new(t, true))).collect()
        };
        let ours = |n: &str| n == "pg1" || n == "pg2";
        let forged = "pg9\n2026-01-01T00:00:00Z\tpglookout\tERROR\tforged \x1b[31m";
        let mut foreign = ForeignNames::default();
        let mut kept = Vec::new();
        let log = logged(|| {
            for round in 0..100 {
                let k = foreign.keep_ours("obs", report(&["pg1", "pg2", forged]), ours, f64::from(round));
                kept.push(k.keys().cloned().collect::<Vec<_>>());
            }
            // another set, within ten minutes of the first line: not logged
            foreign.keep_ours("obs", report(&["pg1", "evil"]), ours, 200.0);
            // ten minutes later: logged again, once
            foreign.keep_ours("obs", report(&["pg1", "evil"]), ours, 700.0);
            foreign.keep_ours("obs", report(&["pg1", "evil"]), ours, 2000.0);
            // nothing foreign: nothing logged
            foreign.keep_ours("other", report(&["pg1"]), ours, 0.0);
        });
        assert!(kept.iter().all(|k| k == &["pg1", "pg2"]), "{kept:?}");
        let lines: Vec<&str> = log.lines().collect();
        assert_eq!(lines.len(), 2, "{log}");
        assert!(
            lines[0].contains("observer obs: ignoring 1 node(s) not in our remote_conns"),
            "{log}"
        );
        assert!(
            lines[0].contains("\\n") && !lines[0].contains('\x1b'),
            "the name is shown escaped: {log}"
        );
        assert!(lines[1].contains("\"evil\""), "{log}");
    }
}
