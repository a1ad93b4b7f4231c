//! The event loop: one simulated run of a [`Schedule`]. Owns simulated time, the event queue,
//! the commands' effects on the nodes (promotion, fence, follow), fault edges, and the trace.
//! Every daemon runs the real `pglookout::decide::decide()`; the shell around it is
//! [`crate::shell`]. After every event the step invariants of [`crate::check`] run.
//!
//! Determinism: no real clock, no hashing with random state, ties in time broken by the order
//! events were queued; every random draw comes from the seed ([`crate::rng`]).

use crate::check::{Checker, Violation};
use crate::cluster::Cluster;
use crate::event::{Event, Fence, Proc, Role};
use crate::net::{self, Link};
use crate::rng::draw;
use crate::schedule::{FaultKind, Schedule, SynchronousMode};
use crate::shell::{command_slot, Daemon, Target};
use crate::wire;
use crate::{us, Us, MS};
use chrono::SubsecRound;
use pglookout::act::running::Kind;
use pglookout::decide::{Action, Mono};
use pglookout::node::{CommandId, Effect, Finished, Input, Poll, Start};
use pglookout::poll::observer::{self, ObserverError};
use pglookout::state::{NodeState, Timestamp};
use std::borrow::Cow;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::sync::Arc;

/// How often clients write to every writable node and standbys catch up.
const REPL_TICK: Us = 50 * MS;

#[derive(Clone, Debug, PartialEq)]
enum Cmd {
    Failover,
    Fence,
    /// Following this node.
    Follow(usize),
    /// A rejoin of our old primary to this master.
    Rejoin(String),
}

#[derive(Clone, Debug)]
enum Ev {
    Repl,
    FaultStart(usize),
    FaultEnd(usize),
    WorkerTick {
        d: usize,
        w: usize,
        epoch: u64,
        seq: u64,
    },
    ProbeEnd {
        d: usize,
        w: usize,
        epoch: u64,
        /// The worker's incarnation when the probe started.
        inc: u64,
        started: Us,
        fetch_time: Timestamp,
        ok: bool,
    },
    Publish {
        d: usize,
        epoch: u64,
    },
    Check {
        d: usize,
        epoch: u64,
        seq: u64,
    },
    /// A command finished: reported to the daemon incarnation that started it.
    Done {
        d: usize,
        epoch: u64,
        cmd: Cmd,
        ok: bool,
    },
    PromoteEnd {
        node: usize,
        d: usize,
        epoch: u64,
        /// The command still runs and reports the result (not so when it timed out before).
        report: bool,
    },
    /// A supervisor starts a fenced node again.
    Revive {
        node: usize,
    },
    /// A frozen host's PostgreSQL resumes (after its daemon's held events).
    Resume {
        host: usize,
    },
    FenceAct {
        node: usize,
        d: usize,
        epoch: u64,
    },
    FollowEnd {
        node: usize,
        master: usize,
        d: usize,
        epoch: u64,
    },
    /// The daemon's `ALTER SYSTEM SET synchronous_standby_names` and `pg_reload_conf()` on its
    /// node reach the server.
    SetSync {
        node: usize,
        value: String,
    },
    /// The daemon's `ALTER SYSTEM SET primary_conninfo` and `pg_reload_conf()` on its standby
    /// reach the server: `Some(m)`, streams from `m` again; `None`, cut off.
    SetReceiver {
        node: usize,
        upstream: Option<usize>,
    },
    /// `pg_rewind` from `master` ended; the node starts as its standby.
    RejoinEnd {
        node: usize,
        master: usize,
        d: usize,
        epoch: u64,
    },
}

/// The pending events, earliest `(t, seq)` first (`seq` is unique: ties in time go in the
/// order the events were queued). The heap holds small keys and the events wait in slots:
/// a heap of the events themselves spent a tenth of the run moving them around. A key is
/// `(t, seq, slot)` packed into one number ([`Queue::key`]), so that one integer comparison
/// orders two of them: a three-field key's comparisons and moves were most of the queue's time.
#[derive(Default)]
struct Queue {
    heap: BinaryHeap<Reverse<u128>>,
    slots: Vec<Option<Ev>>,
    free: Vec<usize>,
}

/// The bits of a key that hold the slot, below the 40 of `seq`; `t` has the upper 64.
const SLOT_BITS: u32 = 24;

impl Queue {
    /// `t`, then `seq`, then `slot`: ordered as `(t, seq)`, since `seq` is unique. A run queues
    /// a few million events at most and holds a few hundred at once, far below 2^40 and 2^24.
    fn key(t: Us, seq: u64, slot: usize) -> u128 {
        assert!(
            seq < 1 << 40 && slot < 1 << SLOT_BITS,
            "event queue key out of range: seq {seq}, slot {slot}"
        );
        (u128::from(t) << 64) | (u128::from(seq) << SLOT_BITS) | slot as u128
    }

    fn push(&mut self, t: Us, seq: u64, ev: Ev) {
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot] = Some(ev);
                slot
            }
            None => {
                self.slots.push(Some(ev));
                self.slots.len() - 1
            }
        };
        // BinaryHeap is a max-heap: the earliest event must compare greatest
        self.heap.push(Reverse(Self::key(t, seq, slot)));
    }

    fn pop(&mut self) -> Option<(Us, Ev)> {
        let Reverse(key) = self.heap.pop()?;
        let slot = (key & ((1 << SLOT_BITS) - 1)) as usize;
        let ev = self.slots.get_mut(slot)?.take()?;
        self.free.push(slot);
        Some(((key >> 64) as Us, ev))
    }
}

pub struct World<'a> {
    pub seed: u64,
    pub sched: &'a Schedule,
    pub now: Us,
    pub cluster: Cluster,
    pub daemons: Vec<Daemon>,
    queue: Queue,
    seq: u64,
    draws: u64,
    /// `(t, line)`, in order.
    pub trace: Vec<(Us, String)>,
    /// Daemons that yielded their turn to promote (failover_fallback_timeout): (t, daemon).
    pub yields: Vec<(Us, usize)>,
    /// Told what happens; judges it.
    pub checker: Checker<'a>,
    pub violation: Option<Violation>,
    pub events: u64,
    /// Per host: frozen whole (daemon and PostgreSQL), and the daemon's events held meanwhile.
    pub frozen_hosts: Vec<bool>,
    held: Vec<Vec<Ev>>,
    revive_used: Vec<bool>,
    /// Per node: until when every probe of it times out (its host is stalled while a late
    /// promotion runs, and for a while after it lands).
    late_until: Vec<Us>,
    /// `pg0`, `pg1`, ...: the node names, written once (every probe needs its node's).
    node_names: Vec<String>,
    /// Every observer answer read both ways, [`wire::read_back`] and the bytes, and compared
    /// (a panic when they differ; set by the tests only).
    pub(crate) check_wire: bool,
}

impl<'a> World<'a> {
    pub fn new(seed: u64, sched: &'a Schedule) -> Result<World<'a>, String> {
        let epoch = pglookout::state::parse_iso("2024-01-01T00:00:00Z").ok_or("epoch")?;
        let mut daemons = Vec::new();
        for d in 0..sched.daemons() {
            // monotonic clocks start anywhere; wall clocks are within ±200 ms of each other
            let mono = 1000.0 + draw(seed, &[1, d as u64], 0, 100_000) as f64 / 1000.0;
            let wall = draw(seed, &[2, d as u64], 0, 400_001) as i64 - 200_000;
            let mut daemon = Daemon::new(sched, d, mono, wall).map_err(|e| format!("daemon {d}: {e}"))?;
            daemon.mono_rate = 1.0 + (draw(seed, &[4, d as u64], 0, 401) as f64 - 200.0) * 1e-6;
            daemons.push(daemon);
        }
        let cluster = Cluster {
            equal_timelines: sched.equal_timelines,
            ..Cluster::new(sched.nodes, epoch)
        };
        let mut cluster = cluster;
        if sched.sync != SynchronousMode::Off {
            // the run starts settled: the primary's setting is what its daemon keeps (every
            // standby streams); the standbys' own settings are empty
            let names = pglookout::sync_names::SyncNames {
                method: pglookout::sync_names::Method::Any,
                num_sync: sched.sync_k,
                names: (1..sched.nodes).map(|n| format!("pg{n}")).collect(),
            };
            cluster.set_sync_names(0, &names.render());
        }
        let configs = daemons.iter().map(|d| d.config().clone()).collect();
        let lsn = cluster.nodes.first().map_or(0, |n| n.lsn);
        Ok(World {
            seed,
            sched,
            now: 0,
            checker: Checker::new(sched, configs, lsn),
            cluster,
            daemons,
            queue: Queue::default(),
            seq: 0,
            draws: 0,
            trace: Vec::new(),
            yields: Vec::new(),
            violation: None,
            events: 0,
            frozen_hosts: vec![false; sched.daemons()],
            held: vec![Vec::new(); sched.daemons()],
            revive_used: vec![false; sched.nodes],
            late_until: vec![0; sched.daemons()],
            node_names: (0..sched.nodes).map(|n| format!("pg{n}")).collect(),
            check_wire: false,
        })
    }

    fn at(&mut self, t: Us, ev: Ev) {
        self.seq += 1;
        self.queue.push(t, self.seq, ev);
    }

    /// A fresh random number in `lo..hi`.
    fn rand(&mut self, lo: Us, hi: Us) -> Us {
        self.draws += 1;
        draw(self.seed, &[3, self.draws], lo, hi)
    }

    pub fn note(&mut self, line: String) {
        self.trace.push((self.now, line));
    }

    /// Tells the checker what happened now; the violation that shows, if any.
    fn emit(&mut self, ev: Event) -> Option<Violation> {
        self.checker.on(self.now, ev)
    }

    fn set_proc(&mut self, node: usize, proc: Proc) {
        self.cluster.nodes[node].proc = proc;
        if !matches!(proc, Proc::Running | Proc::Frozen) {
            // the waiting clients' connections are gone: never acknowledged
            self.cluster.nodes[node].waiting.clear();
        }
        self.emit(Event::Proc { node, proc });
    }

    /// The client commits of primary `p` that its setting lets through now, acknowledged.
    fn release(&mut self, p: usize) {
        if self.sched.sync == SynchronousMode::Off || self.cluster.nodes[p].waiting.is_empty() {
            return;
        }
        let (faults, now) = (&self.sched.faults, self.now);
        let synchronous = self.cluster.synchronous(p);
        let acked = self.cluster.release(p, |s, p| {
            !matches!(net::link(faults, s, p, now), Link::Refuse | Link::Blackhole)
        });
        for lsn in acked {
            self.emit(Event::Acked {
                node: p,
                lsn,
                synchronous,
            });
        }
    }

    /// Runs to the schedule's end or the first violation.
    pub fn run(&mut self) {
        for d in 0..self.daemons.len() {
            self.start_daemon(d);
        }
        self.at(0, Ev::Repl);
        for (i, f) in self.sched.faults.iter().enumerate() {
            self.seq += 1;
            self.queue.push(f.at, self.seq, Ev::FaultStart(i));
            if f.dur > 0 {
                self.seq += 1;
                self.queue.push(f.end(), self.seq, Ev::FaultEnd(i));
            }
        }
        while let Some((t, ev)) = self.queue.pop() {
            if t > self.sched.end {
                break;
            }
            self.now = t;
            self.events += 1;
            self.handle(ev);
            if self.violation.is_none() {
                self.violation = self.emit(Event::Settled);
            }
            if self.violation.is_some() {
                return;
            }
        }
        self.now = self.sched.end;
        self.violation = self.emit(Event::End);
    }

    /// The host whose (frozen) processes an event belongs to.
    fn host_of(ev: &Ev) -> Option<usize> {
        match ev {
            Ev::WorkerTick { d, .. }
            | Ev::ProbeEnd { d, .. }
            | Ev::Publish { d, .. }
            | Ev::Check { d, .. }
            | Ev::Done { d, .. } => Some(*d),
            Ev::PromoteEnd { node, .. }
            | Ev::FenceAct { node, .. }
            | Ev::FollowEnd { node, .. }
            | Ev::RejoinEnd { node, .. }
            | Ev::SetSync { node, .. }
            | Ev::SetReceiver { node, .. } => Some(*node),
            _ => None,
        }
    }

    fn handle(&mut self, ev: Ev) {
        if let Some(h) = Self::host_of(&ev).filter(|h| self.frozen_hosts[*h]) {
            self.held[h].push(ev);
            return;
        }
        match ev {
            Ev::Revive { node } => {
                if self.cluster.nodes[node].proc == Proc::Fenced {
                    self.set_proc(node, Proc::Running);
                    self.emit(Event::Revived { node });
                    let role = if self.cluster.nodes[node].role == Role::Primary {
                        "a primary"
                    } else {
                        "a standby"
                    };
                    self.note(format!("pg{node} started again by its supervisor, as {role}"));
                }
            }
            Ev::SetSync { node, value } => {
                if self.cluster.nodes[node].proc == Proc::Running {
                    self.cluster.set_sync_names(node, &value);
                    self.note(format!("pg{node}: synchronous_standby_names = {value:?}"));
                    if let Some(listed) = self.cluster.listed(node) {
                        self.violation = self.emit(Event::Listed { node, listed });
                        if self.violation.is_some() {
                            return;
                        }
                    }
                    self.release(node);
                } else {
                    self.note(format!("pg{node}: ALTER SYSTEM failed (the node is down)"));
                }
            }
            Ev::SetReceiver { node, upstream } => {
                let n = &mut self.cluster.nodes[node];
                if n.proc == Proc::Running && matches!(n.role, Role::Standby { .. }) {
                    n.role = Role::Standby { upstream };
                    self.note(format!(
                        "pg{node}: primary_conninfo {}",
                        match upstream {
                            Some(m) => format!("given back: streams from pg{m}"),
                            None => "emptied: confirms WAL to no primary".to_string(),
                        }
                    ));
                } else {
                    self.note(format!(
                        "pg{node}: ALTER SYSTEM SET primary_conninfo failed (not a running standby)"
                    ));
                }
            }
            Ev::Resume { host } => {
                if host < self.cluster.nodes.len() && self.cluster.nodes[host].proc == Proc::Frozen {
                    self.set_proc(host, Proc::Running);
                }
            }
            Ev::Repl => {
                let sync = self.sched.sync != SynchronousMode::Off;
                for node in 0..self.cluster.nodes.len() {
                    let bytes = self.rand(100, 2000);
                    if let Some(lsn) = self.cluster.write(node, self.now, bytes) {
                        self.emit(Event::Wrote { node, lsn });
                        if sync {
                            self.cluster.nodes[node].waiting.push(lsn);
                        }
                    }
                }
                let (faults, now) = (&self.sched.faults, self.now);
                let before: Vec<u64> = self.cluster.nodes.iter().map(|n| n.lsn).collect();
                self.cluster.replicate(now, |s, p| {
                    !matches!(net::link(faults, s, p, now), Link::Refuse | Link::Blackhole)
                });
                for (node, was) in before.into_iter().enumerate() {
                    let lsn = self.cluster.nodes[node].lsn;
                    if lsn != was {
                        self.emit(Event::Replayed { node, lsn });
                    }
                }
                for node in 0..self.cluster.nodes.len() {
                    self.release(node);
                }
                self.at(now + REPL_TICK, Ev::Repl);
            }
            Ev::FaultStart(i) => self.fault_edge(i, true),
            Ev::FaultEnd(i) => self.fault_edge(i, false),
            Ev::WorkerTick { d, w, epoch, seq } => {
                let dm = &self.daemons[d];
                let worker = &dm.workers[w];
                if dm.up && dm.epoch == epoch && worker.enabled && worker.tick_seq == seq && !worker.busy {
                    self.start_probe(d, w);
                }
            }
            Ev::ProbeEnd {
                d,
                w,
                epoch,
                inc,
                started,
                fetch_time,
                ok,
            } => {
                let dm = &self.daemons[d];
                if dm.up && dm.epoch == epoch && dm.workers[w].enabled && dm.workers[w].incarnation == inc {
                    self.probe_end(d, w, started, fetch_time, ok);
                }
            }
            Ev::Publish { d, epoch } => {
                if self.daemons[d].up && self.daemons[d].epoch == epoch {
                    self.daemons[d].publish_scheduled = false;
                    if self.daemons[d].tick(self.now) {
                        self.wake(d);
                    }
                    if self.daemons[d].dirty {
                        self.publish(d);
                    }
                    if self.daemons[d].rounds.deferred() || self.daemons[d].dirty {
                        self.schedule_publish(d);
                    }
                }
            }
            Ev::Check { d, epoch, seq } => {
                let dm = &self.daemons[d];
                if dm.up && dm.epoch == epoch && dm.check_seq == seq {
                    self.check(d);
                }
            }
            Ev::Done { d, epoch, cmd, ok } => {
                if self.daemons[d].up && self.daemons[d].epoch == epoch {
                    self.command_done(d, cmd, ok);
                }
            }
            Ev::PromoteEnd { node, d, epoch, report } => {
                let ok = self.cluster.finish_promotion(node, self.now);
                if ok {
                    let timeline = self.cluster.nodes[node].timeline;
                    self.emit(Event::Promoted { node, timeline });
                    self.note(format!("pg{node} promoted: primary on timeline {timeline}"));
                } else {
                    let role = self.cluster.nodes[node].role;
                    self.emit(Event::Role { node, role });
                    self.note(format!("pg{node}: promotion failed (the node is down)"));
                }
                if !report {
                    return;
                }
                let t = self.now + 10 * MS;
                self.at(
                    t,
                    Ev::Done {
                        d,
                        epoch,
                        cmd: Cmd::Failover,
                        ok,
                    },
                );
            }
            Ev::FenceAct { node, d, epoch } => {
                if self.cluster.nodes[node].proc != Proc::Dead {
                    self.set_proc(node, Proc::Fenced);
                }
                self.emit(Event::FenceActed { node });
                self.note(format!("pg{node} fenced (stopped)"));
                if !self.revive_used[node] && self.fault_active(|k| *k == FaultKind::Revive(node)) {
                    self.revive_used[node] = true;
                    let t = self.now + self.rand(800 * MS, 1200 * MS);
                    self.at(t, Ev::Revive { node });
                }
                let t = self.now;
                self.at(
                    t,
                    Ev::Done {
                        d,
                        epoch,
                        cmd: Cmd::Fence,
                        ok: true,
                    },
                );
            }
            Ev::RejoinEnd { node, master, d, epoch } => self.rejoin_end(node, master, d, epoch),
            Ev::FollowEnd { node, master, d, epoch } => {
                let n = &mut self.cluster.nodes[node];
                n.role = Role::Standby { upstream: Some(master) };
                n.diverged = false;
                self.emit(Event::Followed { node, master });
                if self.cluster.nodes[node].proc == Proc::Restarting {
                    self.set_proc(node, Proc::Running);
                }
                self.note(format!("pg{node} restarted as a standby of pg{master}"));
                let t = self.now;
                self.at(
                    t,
                    Ev::Done {
                        d,
                        epoch,
                        cmd: Cmd::Follow(master),
                        ok: true,
                    },
                );
            }
        }
    }

    fn fault_active(&self, pred: impl Fn(&FaultKind) -> bool) -> bool {
        self.sched.faults.iter().any(|f| f.active(self.now) && pred(&f.kind))
    }

    fn fault_edge(&mut self, i: usize, start: bool) {
        let f = self.sched.faults[i].clone();
        self.note(format!("fault {}: {f}", if start { "starts" } else { "ends" }));
        let now = self.now;
        match (&f.kind, start) {
            (FaultKind::KillNode(n), true) => self.set_proc(*n, Proc::Dead),
            (FaultKind::FreezeNode(n), true) if self.cluster.nodes[*n].proc == Proc::Running => {
                self.set_proc(*n, Proc::Frozen);
            }
            (FaultKind::FreezeNode(n), false) if self.cluster.nodes[*n].proc == Proc::Frozen => {
                self.set_proc(*n, Proc::Running);
            }
            (FaultKind::RestartDaemon(d), true) => {
                let daemon = *d;
                self.daemons[daemon].up = false;
                self.daemons[daemon].epoch += 1;
                self.emit(Event::DaemonDown { daemon, until: f.end() });
            }
            (FaultKind::RestartDaemon(d), false) => self.start_daemon(*d),
            (FaultKind::ObserverStale(d), true) => {
                let copy = self.daemons[*d].served(&[]).into_owned();
                self.daemons[*d].stale_copy = Some(copy);
            }
            (FaultKind::ObserverStale(d), false) => self.daemons[*d].stale_copy = None,
            (FaultKind::ClockSkew { daemon, by }, start) => {
                self.daemons[*daemon].wall_offset += if start { *by } else { -by };
            }
            (FaultKind::Reload { daemon, node }, start) => self.reload(*daemon, start.then_some(*node)),
            (FaultKind::FenceOn(d), true) => {
                self.daemons[*d].fence_on = true;
                let removed = self.daemons[*d].removed;
                self.reload(*d, removed);
            }
            (FaultKind::DbSkew { node, by }, start) => {
                self.cluster.skew[*node] += if start { *by } else { -by };
            }
            (FaultKind::HostFreeze(h), true) => {
                self.frozen_hosts[*h] = true;
                self.emit(Event::HostFrozen { host: *h, frozen: true });
                if *h < self.sched.nodes && self.cluster.nodes[*h].proc == Proc::Running {
                    self.set_proc(*h, Proc::Frozen);
                }
            }
            (FaultKind::HostFreeze(h), false) => {
                // the daemon's held events first (at the same instant), then its PostgreSQL
                let h = *h;
                self.frozen_hosts[h] = false;
                self.emit(Event::HostFrozen { host: h, frozen: false });
                for ev in std::mem::take(&mut self.held[h]) {
                    self.at(now, ev);
                }
                self.at(now, Ev::Resume { host: h });
            }
            (FaultKind::SlowStandby { node, lag }, true) => self.cluster.nodes[*node].lag = *lag,
            (FaultKind::SlowStandby { node, .. }, false) => {
                self.cluster.nodes[*node].lag = crate::cluster::BASE_LAG;
            }
            _ => {}
        }
    }

    /// daemon::Loop::apply_reload: the new config, a poll at once (stopped workers gone, new
    /// ones probing), and a decision. A daemon that is down finds the file changed at its start.
    fn reload(&mut self, d: usize, removed: Option<usize>) {
        let now = self.now;
        let sched = self.sched;
        let fenced_before = self.daemons[d].config().fence_command.is_some();
        match self.daemons[d].reload(sched, d, now, removed) {
            Ok((start, effects)) => {
                let config = self.daemons[d].config().clone();
                self.emit(Event::Config { daemon: d, config });
                let who = self.daemons[d].name.clone();
                let mut what = removed.map_or("back to every node".to_string(), |n| format!("without pg{n}"));
                if !fenced_before && self.daemons[d].config().fence_command.is_some() {
                    what.push_str(", fencing on");
                }
                self.note(format!("{who}: config reloaded, {what}"));
                if !self.daemons[d].up {
                    return;
                }
                for w in start {
                    self.start_probe(d, w);
                }
                // a poll round at once
                self.execute(d, effects);
                self.schedule_publish(d);
                self.check(d);
            }
            Err(e) => {
                let who = self.daemons[d].name.clone();
                self.note(format!("{who}: config reload failed, keeping the running config: {e}"));
            }
        }
    }

    fn maintenance(&self, d: usize) -> bool {
        self.fault_active(|k| *k == FaultKind::Maintenance(d))
    }

    fn start_daemon(&mut self, d: usize) {
        let maint = self.maintenance(d);
        let now = self.now;
        let wall = self.cluster.wall(now, self.daemons[d].wall_offset);
        self.daemons[d].restart(now, wall, maint);
        self.emit(Event::DaemonUp { daemon: d });
        if now > 0 {
            let name = self.daemons[d].name.clone();
            self.note(format!("{name}: daemon starts with an empty memory"));
        }
        for w in 0..self.daemons[d].workers.len() {
            if self.daemons[d].workers[w].enabled {
                self.start_probe(d, w);
            }
        }
        self.check(d);
    }

    /// poll worker: one probe, given up after db_poll_timeout.
    fn start_probe(&mut self, d: usize, w: usize) {
        let now = self.now;
        let latency = self.rand(300, 3000);
        let (observer_up, observer_frozen) = match &self.daemons[d].targets[w] {
            Target::Observer(o, _) => (self.daemons[*o].up, self.frozen_hosts[*o]),
            Target::Node(_) => (false, false),
        };
        let dm = &mut self.daemons[d];
        let worker = &mut dm.workers[w];
        worker.busy = true;
        worker.tick_seq += 1;
        worker.generation = dm.rounds.generation();
        let inc = worker.incarnation;
        let fetch_time = self.cluster.wall(now, dm.wall_offset);
        let deadline = us(dm.config().db_poll_timeout);
        let epoch = dm.epoch;
        let (to, answers, hangs, db) = match &dm.targets[w] {
            Target::Node(n) => {
                let p = self.cluster.nodes[*n].proc;
                // a stalled host (flate): every probe of its node times out
                let late = self.late_until[*n] > now;
                (*n, p == Proc::Running, p == Proc::Frozen || late, true)
            }
            Target::Observer(o, _) => (*o, observer_up, observer_frozen, false),
        };
        let link = if db {
            net::db_link(&self.sched.faults, d, to, now)
        } else {
            net::link(&self.sched.faults, d, to, now)
        };
        let (after, ok) = match link {
            Link::Refuse => (latency, false),
            Link::Blackhole => (deadline, false),
            Link::Delay(x) if x + latency >= deadline => (deadline, false),
            _ if hangs => (deadline, false),
            _ if !answers => (latency, false),
            Link::Delay(x) => (x + latency, true),
            Link::Pass => (latency, true),
        };
        self.at(
            now + after,
            Ev::ProbeEnd {
                d,
                w,
                epoch,
                inc,
                started: now,
                fetch_time,
                ok,
            },
        );
    }

    fn probe_end(&mut self, d: usize, w: usize, started: Us, fetch_time: Timestamp, ok: bool) {
        let now = self.now;
        self.daemons[d].workers[w].busy = false;
        // the target's index only: an observer's name is read where it is needed, not copied
        let target = match &self.daemons[d].targets[w] {
            Target::Node(n) => Ok(*n),
            Target::Observer(o, _) => Err(*o),
        };
        match target {
            Ok(n) => {
                let result = if ok && self.cluster.answers(n) {
                    let mut fields = self.cluster.fields(n, now);
                    if self.sched.sync != SynchronousMode::Off && !fields.pg_is_in_recovery {
                        let faults = &self.sched.faults;
                        fields.sync = Some(self.cluster.sync_fields(n, |s, p| {
                            !matches!(net::link(faults, s, p, now), Link::Refuse | Link::Blackhole)
                        }));
                    }
                    // the poller's txid_current() heartbeat on a primary is a commit
                    if !fields.pg_is_in_recovery {
                        if let Some(lsn) = self.cluster.write(n, now, 100) {
                            self.emit(Event::Wrote { node: n, lsn });
                        }
                    }
                    Some(fields)
                } else {
                    None
                };
                let name = &self.node_names[n];
                let dm = &mut self.daemons[d];
                let mono = dm.mono(now);
                let prev = dm.node_entry(n, name);
                let was = prev.map(|p| p.connection);
                let merged = pglookout::poll::merge(prev, fetch_time, mono, result);
                let flipped = was != Some(merged.connection);
                let up = merged.connection;
                dm.set_node(n, merged);
                if flipped {
                    let line = format!("{} sees {name} {}", dm.name, if up { "up" } else { "down" });
                    self.note(line);
                }
            }
            Err(o) => {
                let result = if ok && self.daemons[o].up && !self.frozen_hosts[o] {
                    self.observer_answer(d, o, fetch_time)
                } else {
                    Err(ObserverError::Request("no answer".into()))
                };
                let reached = result.is_ok();
                let dm = &mut self.daemons[d];
                let was = dm.merge_observer(w, fetch_time, result);
                let Target::Observer(_, name) = &dm.targets[w] else {
                    return; // it was one above: targets change only at a restart
                };
                if was.is_some_and(|w| w != reached) || (was.is_none() && !reached) {
                    let what = if reached { "answers again" } else { "does not answer" };
                    let line = format!("{}: observer {name} {what}", dm.name);
                    self.note(line);
                }
            }
        }
        let completed = self.daemons[d].report(w, started, now);
        if completed {
            // a deferred request may have started with the next round
            self.wake(d);
            self.publish(d);
        } else {
            self.daemons[d].dirty = true;
            self.schedule_publish(d);
        }
        // the worker's next probe: at once when a poll-now came in meanwhile, else on the grid
        let dm = &mut self.daemons[d];
        if !dm.up || dm.workers[w].busy {
            return;
        }
        if dm.workers[w].generation != dm.rounds.generation() {
            self.start_probe(d, w);
        } else {
            let t = dm.next_grid_tick(now);
            let worker = &mut dm.workers[w];
            worker.tick_seq += 1;
            let (seq, epoch) = (worker.tick_seq, dm.epoch);
            self.at(t, Ev::WorkerTick { d, w, epoch, seq });
        }
    }

    /// Daemon `d`'s fetch of daemon `o`'s `/state.json`, started at `before` (d's wall clock):
    /// the bytes `o` serves (its published nodes, what a stale or foreign fault makes it
    /// serve, or garbage), read by the daemon's own answer check: the clock-skew check against
    /// the `Date` header (whole seconds of o's clock), the JSON and the shape checks.
    fn observer_answer(
        &mut self,
        d: usize,
        o: usize,
        before: Timestamp,
    ) -> Result<Arc<BTreeMap<String, NodeState>>, ObserverError> {
        let now = self.now;
        let date = self.cluster.wall(now, self.daemons[o].wall_offset).trunc_subsecs(0);
        let after = self.cluster.wall(now, self.daemons[d].wall_offset);
        observer::check_clock(Some(date), before, after)?;
        if self.fault_active(|k| *k == FaultKind::ObserverGarbage(o)) {
            let body = self.garbage(o);
            return observer::parse_answer(&body).map(|(nodes, _bad)| Arc::new(nodes));
        }
        let foreign = self.sched.faults.iter().find_map(|f| match f.kind {
            FaultKind::ForeignObserver { daemon, primary } if daemon == o && f.active(now) => Some(primary),
            _ => None,
        });
        let from = self.daemons[d].config().clone();
        let relayed = self.daemons[o].relay(&from, now);
        let od = &self.daemons[o];
        let plain = foreign.is_none() && od.stale_copy.is_none();
        // The same published snapshot and own word give the same bytes and the same reading:
        // served and read once per publication (once per fetch would take a third of the run
        // time), and shared by every daemon that fetches it (a copy per fetch was a tenth of
        // the run time, with the copies' drops). The own word is the failover status and, with fencing, the voter digest,
        // which a reload changes (the config version) without a new publication.
        let failover = &od.own.word.failover;
        let key = (od.publish_seq, od.node.config_version());
        if plain {
            if let Some((k, f, r, nodes)) = &od.answer_cache {
                if *k == key && f == failover && *r == relayed {
                    return Ok(nodes.clone());
                }
            }
        }
        let check = self.check_wire;
        let wall = self.cluster.wall(now, od.wall_offset);
        let read = match (&od.stale_copy, foreign) {
            (Some(stale), None) => read_answer(|| Cow::Borrowed(stale), check),
            (Some(stale), Some(p)) => read_answer(|| Cow::Owned(foreign_cluster(stale, p, wall)), check),
            (None, Some(p)) => read_answer(|| Cow::Owned(foreign_cluster(&od.served(&relayed), p, wall)), check),
            (None, None) => read_answer(|| od.served(&relayed), check),
        }?;
        let read = Arc::new(read);
        if plain {
            let failover = failover.clone();
            let od = &mut self.daemons[o];
            od.answer_cache = Some((key, failover, relayed, read.clone()));
        }
        Ok(read)
    }

    /// What an observer answering garbage serves: one of a proxy's error page, JSON of the wrong
    /// shape, entries of the wrong shape, or its real answer cut in half.
    fn garbage(&mut self, o: usize) -> Vec<u8> {
        match self.rand(0, 4) {
            0 => b"<html><body>502 Bad Gateway</body></html>".to_vec(),
            1 => b"[1, 2, 3]".to_vec(),
            2 => br#"{"pg0": 5, "pg1": {"connection": "yes"}, "pg2": null}"#.to_vec(),
            _ => {
                let full = pglookout::statefile::to_pretty_json(&self.daemons[o].published.nodes).unwrap_or_default();
                full[..full.len() / 2].to_vec()
            }
        }
    }

    fn schedule_publish(&mut self, d: usize) {
        let dm = &mut self.daemons[d];
        if !dm.publish_scheduled {
            dm.publish_scheduled = true;
            let t = dm.next_publish_tick(self.now);
            let epoch = dm.epoch;
            self.at(t, Ev::Publish { d, epoch });
        }
    }

    /// Publishes the working snapshot; a new round wakes the decision loop.
    fn publish(&mut self, d: usize) {
        let dm = &mut self.daemons[d];
        dm.publish();
        let mut primaries = 0;
        for (n, name) in self.node_names.iter().enumerate() {
            if dm
                .published
                .nodes
                .get(name)
                .is_some_and(|s| s.connection && s.in_recovery() == Some(false))
            {
                primaries |= 1 << n;
            }
        }
        self.emit(Event::Published { daemon: d, primaries });
        let dm = &mut self.daemons[d];
        if dm.published.round != dm.last_round_seen {
            dm.last_round_seen = dm.published.round;
            self.check(d);
        }
    }

    fn request_round(&mut self, d: usize) {
        let now = self.now;
        if !self.daemons[d].request_round(now) {
            self.schedule_publish(d);
            return;
        }
        self.wake(d);
    }

    /// A requested round started: every idle worker probes at once (a busy one does when its
    /// probe ends, as the daemon's workers watch the generation).
    fn wake(&mut self, d: usize) {
        for w in 0..self.daemons[d].workers.len() {
            let dm = &self.daemons[d];
            let worker = &dm.workers[w];
            if dm.up && worker.enabled && !worker.busy && worker.generation != dm.rounds.generation() {
                self.start_probe(d, w);
            }
        }
    }

    /// daemon::Loop::check: build the view, decide, act; the next check one interval later.
    fn check(&mut self, d: usize) {
        let now = self.now;
        let maintenance_now = self.maintenance(d);
        let wall_now = {
            let dm = &self.daemons[d];
            self.cluster.wall(now, dm.wall_offset)
        };
        let dm = &mut self.daemons[d];
        if !dm.up {
            return;
        }
        let poll = Poll {
            nodes: &dm.published.nodes,
            observers: &dm.published.observers,
            round: dm.published.round,
            wall_now,
            maintenance_mode: dm.maintenance_answer,
            maintenance_seen: dm.maintenance_answer,
        };
        let mono = dm.mono(now);
        let yielded = dm.node.memory().yielded();
        let step = dm.node.handle(Input::Check(poll), Mono(mono));
        let Some(decision) = step.decision else {
            return;
        };
        dm.state_file_lease = pglookout::decide::fence::lease_renewed_wall(dm.node.memory(), wall_now, Mono(mono));
        if dm.node.memory().yielded() && !yielded {
            self.yields.push((now, d));
        }
        let dm = &mut self.daemons[d];
        // the file thread's look after this check answers the next one
        dm.maintenance_answer = maintenance_now;
        dm.check_seq += 1;
        let (seq, epoch) = (dm.check_seq, dm.epoch);
        let next = dm.after(now, dm.config().replication_state_check_interval);
        if decision.changed {
            let line = format!("{}: decision: {}", dm.name, decision.summary);
            self.note(line);
        }
        self.at(next, Ev::Check { d, epoch, seq });
        self.execute(d, step.effects);
    }

    /// Carries out the node's effects, as `daemon::Loop::execute` does, on the simulated
    /// cluster: polls, commands; alert files, metrics and the history have nothing to act on.
    fn execute(&mut self, d: usize, effects: Vec<Effect>) {
        for effect in effects {
            match effect {
                Effect::Do(Action::RequestPoll) => self.request_round(d),
                Effect::Publish(status) => self.daemons[d].own = status,
                Effect::Start(id, start) => self.start(d, id, start),
                Effect::Do(Action::SetSynchronousNames { value, .. }) if d < self.cluster.nodes.len() => {
                    // act::sync: ALTER SYSTEM and pg_reload_conf() on our node, in the background
                    let t = self.now + self.rand(5 * MS, 100 * MS);
                    let value = value.unwrap_or_default();
                    self.at(t, Ev::SetSync { node: d, value });
                }
                Effect::Do(Action::SetWalReceiver { cut, master }) if d < self.cluster.nodes.len() => {
                    // act::sync on our standby, in the background; the give-back points it at
                    // the master (from primary_conninfo_template, or the value it had)
                    let upstream = match other_node(self.cluster.nodes.len(), d, &master) {
                        Some(m) if !cut => Some(m),
                        _ if !cut => continue,
                        _ => None,
                    };
                    let t = self.now + self.rand(5 * MS, 100 * MS);
                    self.at(t, Ev::SetReceiver { node: d, upstream });
                }
                Effect::Do(_)
                | Effect::History(_)
                | Effect::Ended { .. }
                | Effect::FenceOverBudget { .. }
                | Effect::StaleEnd { .. } => {}
            }
            if self.violation.is_some() {
                return;
            }
        }
    }

    fn start(&mut self, d: usize, id: CommandId, start: Start) {
        let who = self.daemons[d].name.clone();
        let kind = match start {
            Start::Failover { .. } => Some(Kind::Failover),
            Start::Fence { .. } => Some(Kind::Fence),
            Start::Follow { .. } => Some(Kind::Follow),
            Start::Rejoin { .. } => Some(Kind::Rejoin),
            Start::Warning { .. } => None,
        };
        if let Some(kind) = kind {
            self.daemons[d].command_ids[command_slot(kind)] = Some(id);
        }
        match start {
            Start::Failover { old_master, .. } => {
                self.note(format!(
                    "{who}: runs failover_command (old master {})",
                    old_master.as_deref().unwrap_or("none")
                ));
                self.start_failover(d, old_master.as_deref());
            }
            Start::Fence { reason, .. } => self.start_fence(d, &reason),
            Start::Follow { master, .. } => self.start_follow(d, &master),
            Start::Rejoin { master } => self.start_rejoin(d, &master),
            Start::Warning { .. } => {}
        }
    }

    fn start_fence(&mut self, d: usize, reason: &str) {
        let who = self.daemons[d].name.clone();
        let dm = &self.daemons[d];
        let budget = us(dm.config().fence_command_budget);
        let epoch = dm.epoch;
        self.note(format!("{who}: runs fence_command: {reason}"));
        let fails = self.fault_active(|k| *k == FaultKind::FenceFails(d));
        let hangs = self.fault_active(|k| *k == FaultKind::FenceHangs(d));
        let noop = self.fault_active(|k| *k == FaultKind::FenceNoop(d));
        let what = if noop {
            Fence::DoesNothing
        } else if fails || hangs {
            Fence::Fails
        } else {
            Fence::Stops
        };
        if let Some(v) = self.emit(Event::FenceStarted { daemon: d, what }) {
            self.violation = Some(v);
            return;
        }
        if fails || hangs || noop {
            // stops nothing (exits 1, or hangs until killed)
            let t = if hangs {
                self.now + us(self.daemons[d].config().failover_command_timeout)
            } else {
                self.now + self.rand(5 * MS, 50 * MS)
            };
            self.at(
                t,
                Ev::Done {
                    d,
                    epoch,
                    cmd: Cmd::Fence,
                    ok: noop,
                },
            );
            return;
        }
        let t = self.now + self.rand(5 * MS, budget.max(5 * MS + 1));
        self.at(t, Ev::FenceAct { node: d, d, epoch });
    }

    fn start_failover(&mut self, d: usize, old_master: Option<&str>) {
        let now = self.now;
        let old_master = old_master.map(str::to_string);
        if let Some(v) = self.emit(Event::FailoverStarted { daemon: d, old_master }) {
            self.violation = Some(v);
            return;
        }
        let epoch = self.daemons[d].epoch;
        let done = |ok| Ev::Done {
            d,
            epoch,
            cmd: Cmd::Failover,
            ok,
        };
        if self.fault_active(|k| *k == FaultKind::FailoverFails(d)) {
            let t = now + self.rand(50 * MS, 200 * MS);
            self.at(t, done(false));
            return;
        }
        if self.fault_active(|k| *k == FaultKind::FailoverHangs(d)) {
            let t = now + us(self.daemons[d].config().failover_command_timeout);
            self.at(t, done(false));
            return;
        }
        // act::sync::BeforePromotion (strict): the standby gets its synchronous_standby_names
        // first, and is not promoted if they cannot be set
        let config = self.daemons[d].config().clone();
        if let Some(value) = pglookout::decide::sync_manager::before_promotion(&config) {
            if self.cluster.nodes[d].proc == Proc::Running {
                self.cluster.set_sync_names(d, &value);
                self.note(format!(
                    "pg{d}: synchronous_standby_names = {value:?} before its promotion"
                ));
            } else {
                self.at(now + 50 * MS, done(false));
                return;
            }
        }
        let node = &self.cluster.nodes[d];
        if !matches!(node.role, Role::Standby { .. }) || node.proc != Proc::Running {
            let t = now + 50 * MS;
            self.at(t, done(false));
            return;
        }
        self.cluster.nodes[d].role = Role::Promoting;
        self.emit(Event::Role {
            node: d,
            role: Role::Promoting,
        });
        self.note(format!("pg{d} promoting"));
        let took = if self.sched.slow_promote {
            self.rand(4500 * MS, 5500 * MS)
        } else {
            self.rand(100 * MS, 1000 * MS)
        };
        if self.fault_active(|k| *k == FaultKind::FailoverLate(d)) {
            // the host stalls: the command is killed at its timeout and reported failed, the
            // promotion it began lands at any time until 10 s after that, and no probe of the
            // node gets an answer until up to 10 s after it lands (the case for rule 2 of
            // docs/safety.md: the lease applies once our failover command has run)
            let timeout = us(self.daemons[d].config().failover_command_timeout);
            self.at(now + timeout, done(false));
            let t = now + self.rand(took, timeout.max(took) + 10_000 * MS);
            let until = t + self.rand(0, 10_000 * MS);
            self.late_until[d] = until;
            self.emit(Event::Late { node: d, until });
            self.at(
                t,
                Ev::PromoteEnd {
                    node: d,
                    d,
                    epoch,
                    report: false,
                },
            );
            return;
        }
        self.at(
            now + took,
            Ev::PromoteEnd {
                node: d,
                d,
                epoch,
                report: true,
            },
        );
    }

    fn start_follow(&mut self, d: usize, master: &str) {
        let dm = &mut self.daemons[d];
        let epoch = dm.epoch;
        let now = self.now;
        let Some(m) = other_node(self.cluster.nodes.len(), d, master) else {
            // not a node of ours: decide() only names nodes of remote_conns, so this never runs
            let mono = dm.mono(now);
            let done = Finished::Follow {
                master: master.to_string(),
                ok: false,
            };
            let id = dm.command_ids[command_slot(Kind::Follow)]
                .take()
                .unwrap_or(CommandId(0));
            drop(dm.node.handle(Input::Finished(id, done), Mono(mono)));
            return;
        };
        let node = &self.cluster.nodes[d];
        let cmd = Cmd::Follow(m);
        if node.role == (Role::Standby { upstream: Some(m) }) {
            // the conninfo already matches: nothing written, nothing restarted
            self.at(
                now + MS,
                Ev::Done {
                    d,
                    epoch,
                    cmd,
                    ok: true,
                },
            );
            return;
        }
        if node.proc == Proc::Frozen {
            // pg_stop_command cannot stop a stopped process in time
            let t = now + us(self.daemons[d].config().failover_command_timeout.min(60.0));
            self.at(
                t,
                Ev::Done {
                    d,
                    epoch,
                    cmd,
                    ok: false,
                },
            );
            return;
        }
        self.note(format!("pg{d} restarting to follow {master}"));
        self.set_proc(d, Proc::Restarting);
        let t = now + self.rand(300 * MS, 1500 * MS);
        self.at(
            t,
            Ev::FollowEnd {
                node: d,
                master: m,
                d,
                epoch,
            },
        );
    }

    /// `act::rejoin`: stop our old primary, `pg_rewind` it from `master`, start it as its
    /// standby. Fails (the node left stopped) when the source is not a running primary.
    fn start_rejoin(&mut self, d: usize, master: &str) {
        let (now, epoch) = (self.now, self.daemons[d].epoch);
        let fail = Ev::Done {
            d,
            epoch,
            cmd: Cmd::Rejoin(master.to_string()),
            ok: false,
        };
        let Some(m) = other_node(self.cluster.nodes.len(), d, master) else {
            self.at(now + 50 * MS, fail);
            return;
        };
        if self.cluster.nodes[d].proc == Proc::Frozen {
            // pg_stop_command cannot stop a stopped process in time
            let t = now + us(self.daemons[d].config().failover_command_timeout.min(60.0));
            self.at(t, fail);
            return;
        }
        if !self.cluster.writable(m) {
            let t = now + self.rand(100 * MS, 1000 * MS);
            self.at(t, fail);
            return;
        }
        self.note(format!("pg{d} stopped for pg_rewind from pg{m}"));
        self.set_proc(d, Proc::Restarting);
        let t = now + self.rand(1000 * MS, 4000 * MS);
        self.at(
            t,
            Ev::RejoinEnd {
                node: d,
                master: m,
                d,
                epoch,
            },
        );
    }

    fn rejoin_end(&mut self, node: usize, master: usize, d: usize, epoch: u64) {
        let now = self.now;
        let ok = self.cluster.nodes[node].proc == Proc::Restarting && self.cluster.writable(master);
        if ok {
            self.cluster.rewind(node, master);
            let lsn = self.cluster.nodes[node].lsn;
            self.emit(Event::Rewound { node, master, lsn });
            self.set_proc(node, Proc::Running);
            self.note(format!("pg{node} rewound and started as a standby of pg{master}"));
        } else if self.cluster.nodes[node].proc == Proc::Restarting {
            // pg_rewind failed: the node stays stopped
            self.set_proc(node, Proc::Fenced);
            self.note(format!("pg{node}: pg_rewind from pg{master} failed; left stopped"));
        }
        self.at(
            now,
            Ev::Done {
                d,
                epoch,
                cmd: Cmd::Rejoin(format!("pg{master}")),
                ok,
            },
        );
    }

    fn command_done(&mut self, d: usize, cmd: Cmd, ok: bool) {
        let mono = self.daemons[d].mono(self.now);
        let who = self.daemons[d].name.clone();
        let kind = match cmd {
            Cmd::Failover => Kind::Failover,
            Cmd::Fence => Kind::Fence,
            Cmd::Follow(_) => Kind::Follow,
            Cmd::Rejoin(_) => Kind::Rejoin,
        };
        // the sim drops the ends of an earlier life by its epoch: an id is always there
        let id = self.daemons[d].command_ids[command_slot(kind)]
            .take()
            .unwrap_or(CommandId(0));
        let finished = match cmd {
            Cmd::Failover => {
                let result = if ok { "succeeded" } else { "failed" };
                self.note(format!("{who}: failover_command {result}"));
                Finished::Failover { ok }
            }
            Cmd::Fence => Finished::Fence { ok },
            Cmd::Follow(m) => Finished::Follow {
                master: format!("pg{m}"),
                ok,
            },
            Cmd::Rejoin(master) => Finished::Rejoin {
                master,
                result: if ok { Ok(()) } else { Err("pg_rewind failed".into()) },
            },
        };
        let step = self.daemons[d].node.handle(Input::Finished(id, finished), Mono(mono));
        self.execute(d, step.effects);
        if self.violation.is_some() {
            return;
        }
        self.check(d);
    }
}

/// How a daemon reads the `/state.json` answer serving the nodes `serve` gives: the bytes
/// written and checked as a daemon does, or [`wire::read_back`]'s same result without them.
/// With `check`, both, and a panic when they differ (tests only). `serve` runs again for the
/// bytes: the shortcut reads its first map in place, without copying it once more.
fn read_answer<'n>(
    serve: impl Fn() -> Cow<'n, BTreeMap<String, NodeState>>,
    check: bool,
) -> Result<BTreeMap<String, NodeState>, ObserverError> {
    let bytes = || {
        let body = pglookout::statefile::to_pretty_json(&*serve()).unwrap_or_default();
        observer::parse_answer(&body).map(|(nodes, _bad)| nodes)
    };
    let Some(read) = wire::read_back_owned(serve().into_owned()) else {
        return bytes();
    };
    if check {
        match bytes() {
            Ok(slow) if slow == read => {}
            other => panic!("wire::read_back differs from the bytes: {other:?} != {read:?}"),
        }
    }
    Ok(read)
}

/// The index of node `name` (`pgN`) among `nodes`, when it is one and not `d` itself.
fn other_node(nodes: usize, d: usize, name: &str) -> Option<usize> {
    let m = name.strip_prefix("pg")?.parse::<usize>().ok()?;
    (m < nodes && m != d).then_some(m)
}

/// Another cluster's view under our node names, as a misconfigured observer URL would serve:
/// every node fresh and connected, `primary` a primary on a far newer timeline, the others its
/// standbys further along than anything of ours.
fn foreign_cluster(
    ours: &std::collections::BTreeMap<String, NodeState>,
    primary: usize,
    wall: Timestamp,
) -> std::collections::BTreeMap<String, NodeState> {
    let far = pglookout::lsn::Lsn(0x7_0000_0000);
    ours.iter()
        .map(|(name, n)| {
            let mut n = n.clone();
            n.fetch_time = wall;
            n.connection = true;
            let is_primary = *name == format!("pg{primary}");
            let mut pg = n.pg.unwrap_or(pglookout::state::PgFields {
                db_time: None,
                pg_is_in_recovery: true,
                pg_last_xact_replay_timestamp: None,
                pg_last_xlog_receive_location: None,
                pg_last_xlog_replay_location: None,
                replication_time_lag: None,
                replication_slots: None,
                timeline: None,
                startup_waiting_for_wal: None,
                sync: None,
                receiver_cut: None,
            });
            pg.db_time = Some(wall);
            pg.pg_is_in_recovery = !is_primary;
            pg.timeline = is_primary.then_some(42);
            pg.pg_last_xlog_receive_location = (!is_primary).then_some(far);
            pg.pg_last_xlog_replay_location = Some(far);
            pg.replication_time_lag = (!is_primary).then_some(0.1);
            n.pg = Some(pg);
            (name.clone(), n)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::World;
    use crate::schedule::Draws;

    /// `wire::read_back` stands in for writing and parsing every observer answer: on every
    /// fetch of these schedules (both generators, with their stale, foreign and restarted
    /// observers, some with `synchronous_mode`), it must give what the bytes give.
    #[test]
    fn every_observer_answer_reads_the_same_without_the_bytes() {
        for draws in [Draws::Classic, Draws::Authority] {
            // and 60 with synchronous_mode (the primaries' entries carry `sync`)
            for i in 0..210 {
                let seed = crate::schedule_seed(7, i);
                let sched = draws.generate(seed);
                let sched = if i >= 150 {
                    crate::schedule::SyncDraw::Strict.apply(seed, sched)
                } else {
                    sched
                };
                let Ok(mut w) = World::new(seed, &sched) else {
                    continue;
                };
                w.check_wire = true;
                w.run();
            }
        }
    }
}
