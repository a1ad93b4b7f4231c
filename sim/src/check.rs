//! The invariants, each in a precise, checkable form (sim/README.md states them in prose).
//! Owns what counts as a violation. The [`Checker`] keeps its own model of the run (each
//! node's process, role and position, each daemon's config and what it publishes, the
//! commands started), built from the [`Event`]s the world sends it, and the schedule; it
//! imports nothing of the world.
//!
//! - **two-writable** (after every event, fenced profile): at most one node takes writes. Two
//!   writable nodes are tolerated only while all but one of them have a fence command in
//!   flight (started, not yet acted: at most `fence_command_budget`). docs/safety.md's bound
//!   F + 2I + 2P + C + B <= U says the fence acts before any standby may promote, so in the
//!   simulator any overlap outside a fence in flight is a violation. Waived for the rest of a
//!   run when the schedule breaks the documented assumption "the primary's daemon is alive":
//!   that daemon restarted while its node was writable and a link fault touched its host.
//! - **candidate** (at every failover command start): the promoted node is not behind another
//!   standby that ran, was not in `never_promote_these_nodes`, and that the promoting daemon
//!   reached without any link fault for the last 2I + 2P, by more than the WAL written in the
//!   last 2I + 2P + C (what its polls cannot have seen yet), plus `max_failover_lag_bytes`
//!   when the schedule prefers a standby (within the cap, priority comes first). With
//!   `synchronous_mode` on or strict, only against the standbys the old master last listed.
//! - **never-promote**, **maintenance**: no failover command on a node listed in
//!   `never_promote_these_nodes`, or whose maintenance file has existed since before the
//!   previous check (C + 1 ms).
//! - **majority-sees-primary** (at every failover command start): a strict majority of all
//!   daemons (node daemons and observers) do not currently see the old master connected as a
//!   primary.
//! - **liveness** (liveness schedules): the primary lost and nothing else wrong, a standby is
//!   writable within [`liveness_deadline`] of the loss, and with autofollow every other running
//!   standby follows it within [`follow_deadline`] of the promotion.
//!   Not judged when node daemons list different observers (`layout=uneven`): they refuse to
//!   promote once they see it (`voters_mismatch`).
//! - **blip** (blip schedules, fenced profile): a cut of the primary's host shorter than the
//!   blip bound of docs/safety.md runs neither the fence nor the failover command.
//!
//! With `rules=authority` (the authority draws), also:
//!
//! - **needless-fence** (at every fence command start): the fenced node is a healthy primary
//!   (running, no other primary in term or promoting, its daemon not restarted lately), and
//!   half of its daemon's voters (its observers, plus its own poll in the mesh) could vouch
//!   for it until less than `fence_timeout` - 2I - 2P ago. A voter cannot vouch from the start
//!   of a fault that blocks it and lasted until at least 2I + 2P + C ago: one touching its
//!   database link to the primary or the primary daemon's fetch of its answers, a restart,
//!   freeze, stale, garbage or foreign answers of its daemon, a skew of either clock. With
//!   2·vouch >= N no standby can gather the strict majority (2·u > N) that a promotion needs,
//!   and the lease must hold for `fence_timeout` after it lost them: such a fence (or an
//!   early one, as when a reload turns fencing on) gains nothing. Not a violation when some
//!   standby's own voters (different lists: `layout=uneven`) could give it a strict majority.
//! - **lost-writes** (at the end, fencing on): a client writes to every node every 50 ms; no
//!   write acknowledged by a node while another node was a primary in term (writable, or
//!   frozen and about to resume) is missing from the final primary (split-brain loss is 0).
//!   Writes lost to asynchronous replication (acknowledged before the new primary took
//!   writes) are allowed and counted, and so are those a node acknowledged while its own fence
//!   was in flight (the overlap two-writable tolerates: a whole-host freeze ends with the
//!   node and its daemon resuming together, and the fence takes up to its budget). A node a supervisor started again after its fence is
//!   given the time to be noticed and fenced again (2I + P + 2C + `fence_command_budget`),
//!   for this rule and for two-writable.

use crate::event::{Event, Fence, Proc, Role};
use crate::schedule::{daemon_name, Fault, FaultKind, Intent, Layout, Profile, Rules, Schedule, SynchronousMode};
use crate::{secs, us, Us, MS};
use pglookout::config::Config;
use pglookout::decide::failover::{FAILOVER_RETRY_INITIAL_SECS, FAILOVER_RETRY_MAX_SECS, PROMOTE_SETTLE_SECS};
use std::fmt;
use std::sync::Arc;

/// What the checker knows of a node.
struct Node {
    proc: Proc,
    /// When `proc` last changed.
    proc_since: Us,
    role: Role,
    /// The timeline it writes (read of primaries only).
    timeline: u32,
    /// Primary: its position. Standby: what it replayed.
    lsn: u64,
    /// Where its timeline branched off (a promoted node).
    fork: u64,
    /// Its commits in its current term as a primary, oldest first: (when, position after).
    commits: Vec<(Us, u64)>,
    /// Its commits acknowledged while another node was a primary in term too, outside its own
    /// fence in flight: (when, position after).
    overlapped: Vec<(Us, u64)>,
    /// When its fence command started, until the fence has acted.
    fence_pending: Option<Us>,
    /// When a supervisor last started it again after a fence.
    revived: Option<Us>,
    /// Until when every probe of it times out (a late promotion's stall).
    late_until: Us,
    /// The term ([`Checker::terms`]) of the WAL it writes (a primary) or last replayed.
    term: usize,
    /// The nodes its last `synchronous_standby_names` that listed any listed (bit mask).
    listed: Option<u64>,
}

/// A client commit acknowledged (`synchronous_mode` on or strict).
#[derive(Clone, Copy, Debug)]
struct Ack {
    t: Us,
    node: usize,
    /// The term it was written in, and its position there.
    term: usize,
    lsn: u64,
    synchronous: bool,
    /// Acknowledged while another node was a primary in term too, outside its own fence in
    /// flight (as [`Node::overlapped`]).
    overlapped: bool,
}

/// What a run lost of its acknowledged client commits (`synchronous_mode` on or strict),
/// judged against the final primary's WAL.
#[derive(Clone, Debug, Default)]
pub struct SyncLoss {
    /// The final primary.
    pub fin: usize,
    /// Acknowledged synchronously, not on the final primary: each one a violation.
    pub synchronous: Vec<(Us, usize, u64)>,
    /// Acknowledged asynchronously (an empty `synchronous_standby_names`) and lost, outside a
    /// split brain; and those acknowledged while another node was a primary in term.
    pub asynchronous: u64,
    pub split: u64,
    /// How many were acknowledged, synchronously and not.
    pub acked: (u64, u64),
}

/// What the checker knows of a daemon and its host.
struct Daemon {
    config: Arc<Config>,
    up: bool,
    /// Its host is frozen whole.
    frozen: bool,
    /// Bit `n`: its last publication sees node `n` connected as a primary (at most 9 nodes,
    /// `Schedule::parse`).
    sees_primary: u64,
}

/// The invariants and what they read: the schedule, and what the world told of the run.
pub struct Checker<'a> {
    sched: &'a Schedule,
    now: Us,
    nodes: Vec<Node>,
    daemons: Vec<Daemon>,
    /// Why two-writable does not apply to this run (the schedule broke an assumption of
    /// docs/safety.md), if it does not.
    pub waived: Option<String>,
    /// Failover commands started: (t, daemon).
    pub failovers: Vec<(Us, usize)>,
    /// Fence commands started: (t, daemon).
    pub fences: Vec<(Us, usize)>,
    /// Completed promotions: (t, node).
    pub promotions: Vec<(Us, usize)>,
    /// Completed follows: (t, node, master).
    pub follows: Vec<(Us, usize, usize)>,
    /// The WAL histories: a term begins at a promotion, from its node's term then (`None`
    /// for the first) at its position then.
    terms: Vec<(Option<usize>, u64)>,
    /// Client commits acknowledged (sent with `synchronous_mode` on or strict only).
    acks: Vec<Ack>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Rule {
    TwoWritable,
    Candidate,
    NeverPromote,
    Maintenance,
    MajoritySeesPrimary,
    NoPromotion,
    NoFollow,
    Blip,
    NeedlessFence,
    LostWrites,
    SyncLost,
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Rule::TwoWritable => "two-writable",
            Rule::Candidate => "candidate",
            Rule::NeverPromote => "never-promote",
            Rule::Maintenance => "maintenance",
            Rule::MajoritySeesPrimary => "majority-sees-primary",
            Rule::NoPromotion => "liveness",
            Rule::NoFollow => "follow",
            Rule::Blip => "blip",
            Rule::NeedlessFence => "needless-fence",
            Rule::LostWrites => "lost-writes",
            Rule::SyncLost => "sync-lost",
        })
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Violation {
    pub t: Us,
    pub rule: Rule,
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.3} s: {} violated: {}", secs(self.t), self.rule, self.detail)
    }
}

impl<'a> Checker<'a> {
    /// The run of `sched` as it starts (see [`Event`]): every position at `lsn`, the daemons
    /// running `configs`.
    pub fn new(sched: &'a Schedule, configs: Vec<Arc<Config>>, lsn: u64) -> Self {
        let nodes = (0..sched.nodes)
            .map(|i| Node {
                proc: Proc::Running,
                proc_since: 0,
                role: if i == 0 {
                    Role::Primary
                } else {
                    Role::Standby { upstream: Some(0) }
                },
                timeline: 1,
                lsn,
                fork: 0,
                commits: if i == 0 { vec![(0, lsn)] } else { Vec::new() },
                overlapped: Vec::new(),
                fence_pending: None,
                revived: None,
                late_until: 0,
                term: 0,
                listed: None,
            })
            .collect();
        let daemons = configs
            .into_iter()
            .map(|config| Daemon {
                config,
                up: true,
                frozen: false,
                sees_primary: 0,
            })
            .collect();
        Checker {
            sched,
            now: 0,
            nodes,
            daemons,
            waived: None,
            failovers: Vec::new(),
            fences: Vec::new(),
            promotions: Vec::new(),
            follows: Vec::new(),
            terms: vec![(None, 0)],
            acks: Vec::new(),
        }
    }

    /// Takes in what happened at `t`; the violation it shows, if any. The rules that apply at
    /// a command's start or after every world event run here.
    pub fn on(&mut self, t: Us, ev: Event) -> Option<Violation> {
        self.now = t;
        match ev {
            Event::Proc { node, proc } => {
                let n = &mut self.nodes[node];
                if n.proc != proc {
                    n.proc = proc;
                    n.proc_since = t;
                }
            }
            Event::Role { node, role } => self.nodes[node].role = role,
            Event::Wrote { node, lsn } => {
                // with synchronous_mode on or strict a commit is acknowledged later, if ever:
                // Acked tells
                let overlap = self.sched.sync == SynchronousMode::Off
                    && (0..self.nodes.len()).any(|o| o != node && self.in_term(o));
                let n = &mut self.nodes[node];
                // a commit while the node's own fence is in flight is the overlap docs/safety.md
                // accepts (as two-writable does)
                if overlap && n.fence_pending.is_none() {
                    n.overlapped.push((t, lsn));
                }
                n.lsn = lsn;
                n.commits.push((t, lsn));
            }
            Event::Acked { node, lsn, synchronous } => {
                let overlap = (0..self.nodes.len()).any(|o| o != node && self.in_term(o));
                let overlapped = overlap && self.nodes[node].fence_pending.is_none();
                let term = self.nodes[node].term;
                self.acks.push(Ack {
                    t,
                    node,
                    term,
                    lsn,
                    synchronous,
                    overlapped,
                });
            }
            Event::Listed { node, listed } => self.nodes[node].listed = Some(listed),
            Event::Replayed { node, lsn } => {
                // it streams from its upstream, a primary: it is on that primary's WAL now
                if let Role::Standby { upstream: Some(p) } = self.nodes[node].role {
                    if self.nodes[p].role == Role::Primary {
                        self.nodes[node].term = self.nodes[p].term;
                    }
                }
                self.nodes[node].lsn = lsn;
            }
            Event::Rewound { node, master, lsn } => {
                let term = self.nodes[master].term;
                let n = &mut self.nodes[node];
                n.role = Role::Standby { upstream: Some(master) };
                n.lsn = lsn;
                n.commits.clear();
                n.term = term;
            }
            Event::Promoted { node, timeline } => {
                self.terms.push((Some(self.nodes[node].term), self.nodes[node].lsn));
                let n = &mut self.nodes[node];
                n.role = Role::Primary;
                n.timeline = timeline;
                n.fork = n.lsn;
                n.commits = vec![(t, n.lsn)];
                n.term = self.terms.len() - 1;
                self.promotions.push((t, node));
            }
            Event::Followed { node, master } => {
                self.nodes[node].role = Role::Standby { upstream: Some(master) };
                self.follows.push((t, node, master));
            }
            Event::Revived { node } => self.nodes[node].revived = Some(t),
            Event::Late { node, until } => self.nodes[node].late_until = until,
            Event::HostFrozen { host, frozen } => self.daemons[host].frozen = frozen,
            Event::DaemonDown { daemon, until } => {
                self.daemons[daemon].up = false;
                if daemon < self.nodes.len() && self.in_term(daemon) && self.waived.is_none() {
                    self.waived = self.restart_waiver(daemon, until);
                }
            }
            Event::DaemonUp { daemon } => {
                self.daemons[daemon].up = true;
                self.daemons[daemon].sees_primary = 0;
            }
            Event::Config { daemon, config } => self.daemons[daemon].config = config,
            Event::Published { daemon, primaries } => self.daemons[daemon].sees_primary = primaries,
            Event::FailoverStarted { daemon, old_master } => {
                self.failovers.push((t, daemon));
                return self.at_failover(daemon, old_master.as_deref());
            }
            Event::FenceStarted { daemon, what } => {
                self.fences.push((t, daemon));
                let v = self.at_fence(daemon);
                if v.is_none() {
                    self.fence_started(daemon, what);
                }
                return v;
            }
            Event::FenceActed { node } => self.nodes[node].fence_pending = None,
            Event::Settled => return self.step(),
            Event::End => return self.at_end(),
        }
        None
    }

    /// Node `d`'s fence command started (and was not needless): in flight until it acts, or,
    /// when it cannot stop its primary, two-writable waived (docs/safety.md assumes a working
    /// fence; a frozen primary counts: it takes writes again when it resumes).
    fn fence_started(&mut self, d: usize, what: Fence) {
        let node = &mut self.nodes[d];
        if what == Fence::Stops {
            node.fence_pending = Some(self.now);
            return;
        }
        let may_write = node.role == Role::Primary && !matches!(node.proc, Proc::Dead | Proc::Fenced);
        if may_write && self.waived.is_none() {
            let how = if what == Fence::DoesNothing {
                "exited 0 and stopped nothing"
            } else {
                "failed"
            };
            self.waived = Some(format!(
                "pg{d}'s fence command {how} at {:.3} s while pg{d} was a primary (docs/safety.md assumes the fence works)",
                secs(self.now)
            ));
        }
    }

    /// Takes writes: a finished primary whose process runs.
    fn writable(&self, n: usize) -> bool {
        let node = &self.nodes[n];
        node.role == Role::Primary && node.proc == Proc::Running
    }

    /// A primary in term: writable, or frozen (it takes writes again when it resumes).
    fn in_term(&self, n: usize) -> bool {
        let node = &self.nodes[n];
        node.role == Role::Primary && matches!(node.proc, Proc::Running | Proc::Frozen)
    }

    /// The WAL node `n` wrote as a primary in `[from, to]` (0 when it wrote none).
    fn written_between(&self, n: usize, from: Us, to: Us) -> u64 {
        let commits = &self.nodes[n].commits;
        let at = |t: Us| commits.iter().rev().find(|c| c.0 <= t).map_or(0, |c| c.1);
        let first = commits.first().map_or(0, |c| c.1);
        at(to).saturating_sub(at(from).max(first))
    }

    fn v(&self, rule: Rule, detail: String) -> Option<Violation> {
        Some(Violation {
            t: self.now,
            rule,
            detail,
        })
    }

    /// A node daemon's config (every node daemon has the same timings).
    fn node_config(&self) -> &Config {
        &self.daemons[0].config
    }

    /// After every event.
    fn step(&self) -> Option<Violation> {
        if !self.sched.fencing() || self.waived.is_some() {
            return None;
        }
        // runs after every event: nothing allocated until two nodes take writes
        (0..self.nodes.len()).filter(|n| self.writable(*n)).nth(1)?;
        let writable: Vec<usize> = (0..self.nodes.len()).filter(|n| self.writable(*n)).collect();
        if writable.iter().any(|n| self.in_revive_grace(*n, self.now)) {
            return None;
        }
        // at most one writable node without its fence in flight (with equal timelines the one
        // being fenced need not be the one on the older timeline)
        let unfenced: Vec<usize> = writable
            .iter()
            .copied()
            .filter(|n| self.nodes[*n].fence_pending.is_none())
            .collect();
        if unfenced.len() < 2 {
            return None;
        }
        let oldest = unfenced.iter().copied().min_by_key(|n| (self.nodes[*n].timeline, *n))?;
        let names: Vec<String> = writable
            .iter()
            .map(|n| format!("pg{n} (timeline {})", self.nodes[*n].timeline))
            .collect();
        self.v(
            Rule::TwoWritable,
            format!(
                "{} take writes at once, and pg{oldest}'s daemon has no fence in flight",
                names.join(" and ")
            ),
        )
    }

    /// When daemon `d` starts its failover command (`old_master` as decide() gave it).
    fn at_failover(&self, d: usize, old_master: Option<&str>) -> Option<Violation> {
        let c = &self.daemons[d].config;
        let t = self.now;
        if self.sched.never_promote == Some(d) {
            return self.v(Rule::NeverPromote, format!("pg{d} is in never_promote_these_nodes"));
        }
        let maint_since = t.saturating_sub(us(c.replication_state_check_interval) + MS);
        let maint = self
            .sched
            .faults
            .iter()
            .any(|f| f.kind == FaultKind::Maintenance(d) && f.at <= maint_since && f.end() > t);
        if maint {
            return self.v(
                Rule::Maintenance,
                format!("pg{d}'s maintenance file exists since before the previous check"),
            );
        }

        let window = us(2.0 * c.db_poll_interval + 2.0 * c.db_poll_timeout);
        let from = t.saturating_sub(window);
        let slack_from = from.saturating_sub(us(c.replication_state_check_interval));
        let slack: u64 = (0..self.nodes.len())
            .map(|p| self.written_between(p, slack_from, t))
            .sum();
        let own = self.nodes[d].lsn;
        let allowance = slack + self.sched.policy.map_or(0, |p| p.cap);
        // with synchronous_mode on or strict only the standbys the old master last listed may
        // be promoted (decide::sync): one it did not list may be further along
        let listed = match (self.sched.sync, old_master) {
            (SynchronousMode::Off, _) | (_, None) => None,
            (_, Some(old)) => (0..self.nodes.len())
                .find(|n| format!("pg{n}") == old)
                .and_then(|o| self.nodes[o].listed),
        };
        // reachable: no link fault touched d -> i in the window, read off the schedule (a pure
        // function of its faults, as the world's net computes links; no event needed)
        for (i, other) in self.nodes.iter().enumerate() {
            let eligible = i != d
                && listed.is_none_or(|m| m >> i & 1 == 1)
                && matches!(other.role, Role::Standby { .. })
                && other.proc == Proc::Running
                && other.proc_since <= from
                && self.sched.never_promote != Some(i)
                && !self.sched.faults.iter().any(|f| f.touches(d, i) && f.during(from, t));
            if eligible && other.lsn > own + allowance {
                return self.v(
                    Rule::Candidate,
                    format!(
                        "pg{d} promoted at {own:#x} while pg{i}, reachable, was at {:#x} ({} bytes ahead, {slack} written meanwhile)",
                        other.lsn,
                        other.lsn - own
                    ),
                );
            }
        }

        let old = old_master?;
        let bit = (0..self.nodes.len()).find(|n| format!("pg{n}") == old);
        let seeing: Vec<String> = (0..self.daemons.len())
            .filter(|e| {
                let dm = &self.daemons[*e];
                dm.up && bit.is_some_and(|b| dm.sees_primary >> b & 1 == 1)
            })
            .map(|e| daemon_name(self.sched, e))
            .collect();
        if seeing.len() * 2 > self.daemons.len() {
            return self.v(
                Rule::MajoritySeesPrimary,
                format!(
                    "pg{d} fails over while {} of {} daemons ({}) see {old} connected",
                    seeing.len(),
                    self.daemons.len(),
                    seeing.join(", ")
                ),
            );
        }
        None
    }

    /// Whether node `n` was started again by a supervisor after its fence so recently, at `t`,
    /// that its daemon cannot have fenced it again yet.
    fn in_revive_grace(&self, n: usize, t: Us) -> bool {
        let c = &self.daemons[n].config;
        let grace = us(2.0 * c.db_poll_interval
            + c.db_poll_timeout
            + 2.0 * c.replication_state_check_interval
            + c.fence_command_budget);
        self.nodes[n].revived.is_some_and(|r| r <= t && t < r + grace)
    }

    /// The daemon index of an observer name of schedule `self.sched`.
    fn daemon_index(&self, name: &str) -> Option<usize> {
        if let Some(n) = name.strip_prefix("pg") {
            n.parse().ok().filter(|n| *n < self.sched.nodes)
        } else {
            name.strip_prefix("obs")
                .and_then(|j| j.parse::<usize>().ok())
                .filter(|j| *j < self.sched.observers)
                .map(|j| self.sched.nodes + j)
        }
    }

    /// Node daemon `d`'s voters in its running config: its observers, plus itself when they
    /// include a daemon for every other node of its `remote_conns`.
    fn voters_of(&self, d: usize) -> Vec<usize> {
        let c = &self.daemons[d].config;
        let mut v: Vec<usize> = c.observers.keys().filter_map(|n| self.daemon_index(n)).collect();
        let mesh = c
            .remote_conns
            .keys()
            .all(|n| Some(n.as_str()) == c.own_db.as_deref() || c.observers.contains_key(n));
        if mesh {
            v.push(d);
        }
        v
    }

    /// When daemon `d` starts its fence command (rules=authority): needless-fence.
    fn at_fence(&self, d: usize) -> Option<Violation> {
        if self.sched.rules != Rules::Authority || self.waived.is_some() {
            return None;
        }
        let node = &self.nodes[d];
        if node.role != Role::Primary || node.proc != Proc::Running {
            return None;
        }
        let other = self.nodes.iter().enumerate().any(|(i, n)| {
            i != d
                && (n.role == Role::Promoting
                    || n.role == Role::Primary && matches!(n.proc, Proc::Running | Proc::Frozen | Proc::Restarting))
        });
        if other {
            return None;
        }
        let c = &self.daemons[d].config;
        let f_timeout = c.fence_timeout.unwrap_or(0.0);
        // how stale the last vouch the daemon counted may be when its cause ended: a probe and an
        // observer fetch (each an interval and a deadline)
        let lag = 2.0 * c.db_poll_interval + 2.0 * c.db_poll_timeout;
        let t1 = self.now;
        let t0 = t1.saturating_sub(us(f_timeout + lag + c.replication_state_check_interval + 1.0));
        let recent = t1.saturating_sub(us(lag + c.replication_state_check_interval));
        let faults = &self.sched.faults;
        // the primary itself stopped, its own polls failed, or its daemon restarted (its lease
        // starts afresh): its daemon may well fence
        let node_hit = faults.iter().any(|f| {
            f.during(t0, t1)
                && matches!(f.kind, FaultKind::KillNode(n) | FaultKind::FreezeNode(n) | FaultKind::HostFreeze(n)
                | FaultKind::FailoverLate(n) | FaultKind::RestartDaemon(n) if n == d)
        });
        // a late promotion's stall outlasts its fault (world.rs): no probe of d answered
        if node_hit || self.nodes[d].late_until > t0 {
            return None;
        }
        // Whether fault `f` keeps voter `v` from vouching for `d`: its database link to d, d's
        // fetch of its answers, its daemon, its answers, either clock.
        let blocks = |f: &Fault, v: usize| match &f.kind {
            FaultKind::RestartDaemon(x)
            | FaultKind::HostFreeze(x)
            | FaultKind::ObserverStale(x)
            | FaultKind::ObserverGarbage(x) => *x == v,
            FaultKind::ForeignObserver { daemon, .. } => *daemon == v,
            FaultKind::ClockSkew { daemon, .. } => *daemon == v || *daemon == d,
            FaultKind::Reload { daemon, node } => *daemon == v && *node == d,
            _ => f.touches(d, v) || f.touches_db(v, d),
        };
        // Per voter: since when it could not vouch (the earliest start of the faults blocking it
        // that still lasted a moment ago), or now.
        let voters = self.voters_of(d);
        let mut since: Vec<(Us, usize)> = voters
            .iter()
            .map(|&v| {
                // back through a chain of blocking faults, each lasting (nearly) until the next
                let mut from = t1;
                if v != d {
                    let margin = t1 - recent;
                    while let Some(at) = faults
                        .iter()
                        .filter(|f| f.at < from && f.at <= t1 && f.end() + margin >= from && blocks(f, v))
                        .map(|f| f.at)
                        .min()
                    {
                        from = at;
                    }
                }
                let from = (from < t1).then_some(from);
                let down = v != d && (!self.daemons[v].up || self.daemons[v].frozen);
                (if down { t0 } else { from.unwrap_or(t1) }, v)
            })
            .collect();
        since.sort_unstable_by(|a, b| b.cmp(a));
        // the lease holds while half of the voters vouch: from when fewer than half could
        let half = voters.len().div_ceil(2);
        let &(lost_at, _) = since.get(half.saturating_sub(1))?;
        let silent = secs(t1.saturating_sub(lost_at));
        if silent + lag >= f_timeout {
            return None;
        }
        // With different voter lists (layout=uneven) a standby may gather a strict majority of its
        // own voters while half of the primary's vouch: then the fence is all that stands between
        // the two, not needless. A voter could report d unreachable when a fault touched its
        // database link to d in the window (a standby's own poll counts in the mesh).
        let promotable = (0..self.sched.nodes).filter(|s| *s != d).any(|s| {
            let vs = self.voters_of(s);
            let u = vs
                .iter()
                .filter(|&&x| {
                    x != d
                        && faults.iter().any(|f| {
                            f.during(t0, t1)
                                && (f.touches_db(x, d) || matches!(f.kind, FaultKind::HostFreeze(h) if h == x))
                        })
                })
                .count();
            2 * u > vs.len()
        });
        if promotable {
            return None;
        }
        let able: Vec<String> = since
            .iter()
            .filter(|(at, _)| *at == t1)
            .map(|(_, v)| daemon_name(self.sched, *v))
            .collect();
        self.v(
            Rule::NeedlessFence,
            format!(
                "pg{d}, a healthy primary, fenced while half of its {} voters could vouch for it {} (fence_timeout {f_timeout} s; vouching now: {})",
                voters.len(),
                if silent > 0.0 {
                    format!("until {silent:.2} s ago")
                } else {
                    "right up to the fence".to_string()
                },
                able.join(", ")
            ),
        )
    }

    /// The node the run ends with as its primary, if any.
    fn final_primary(&self) -> Option<usize> {
        let nodes = &self.nodes;
        (0..nodes.len())
            .filter(|n| nodes[*n].role == Role::Primary && nodes[*n].proc != Proc::Dead)
            .max_by_key(|n| {
                let taking = self.writable(*n) && nodes[*n].fence_pending.is_none();
                (taking, nodes[*n].timeline, nodes[*n].lsn)
            })
    }

    /// Whether position `lsn` of term `term` is in the WAL of a node at `at` of term `on`: `term`
    /// is `on` or one it descends from, and `lsn` is before every fork on the way.
    fn holds(&self, on: usize, at: u64, term: usize, lsn: u64) -> bool {
        let (mut t, mut upto) = (on, at);
        loop {
            if t == term {
                return lsn <= upto;
            }
            let (parent, fork) = self.terms[t];
            upto = upto.min(fork);
            match parent {
                Some(p) => t = p,
                None => return false,
            }
        }
    }

    /// `synchronous_mode` on or strict: the acknowledged client commits that are not in the
    /// final primary's WAL, or `None` when no node ends as a primary.
    pub fn sync_loss(&self) -> Option<SyncLoss> {
        if self.sched.sync == SynchronousMode::Off {
            return None;
        }
        let fin = self.final_primary()?;
        let (on, at) = (self.nodes[fin].term, self.nodes[fin].lsn);
        let mut loss = SyncLoss {
            fin,
            ..SyncLoss::default()
        };
        for a in &self.acks {
            if a.synchronous {
                loss.acked.0 += 1;
            } else {
                loss.acked.1 += 1;
            }
            if self.holds(on, at, a.term, a.lsn) {
                continue;
            }
            if a.synchronous {
                loss.synchronous.push((a.t, a.node, a.lsn));
            } else if a.overlapped && !self.in_revive_grace(a.node, a.t) {
                loss.split += 1;
            } else {
                loss.asynchronous += 1;
            }
        }
        Some(loss)
    }

    /// Acknowledged writes missing from the final primary: (split brain, asynchronous), or `None`
    /// when no node ends as a primary.
    pub fn lost_writes(&self) -> Option<(u64, u64, usize)> {
        if let Some(loss) = self.sync_loss() {
            return Some((loss.split, loss.asynchronous, loss.fin));
        }
        let nodes = &self.nodes;
        let fin = self.final_primary()?;
        let mut split = 0;
        let mut lost_async = 0;
        for x in (0..nodes.len()).filter(|x| *x != fin) {
            let over = &nodes[x].overlapped;
            split += over.iter().filter(|(t, _)| !self.in_revive_grace(x, *t)).count() as u64;
            // how many commits of x's current term went past the final primary's fork
            let fork = nodes[fin].fork;
            if fork > 0 && nodes[x].role == Role::Primary {
                let after = nodes[x].commits.iter().filter(|(_, lsn)| *lsn > fork).count() as u64;
                lost_async += after.saturating_sub(over.len() as u64);
            }
        }
        Some((split, lost_async, fin))
    }

    /// At the end of the run.
    fn at_end(&self) -> Option<Violation> {
        if let Some(v) = self.sync_at_end() {
            return Some(v);
        }
        if self.sched.rules == Rules::Authority && self.sched.fencing() && self.waived.is_none() {
            if let Some((split, lost_async, fin)) = self.lost_writes() {
                if split > 0 {
                    let who: Vec<String> = (0..self.nodes.len())
                        .filter_map(|x| Some((x, self.nodes[x].overlapped.first()?)))
                        .filter(|(x, _)| *x != fin)
                        .map(|(x, (t, _))| format!("pg{x} from {:.3} s", secs(*t)))
                        .collect();
                    return self.v(
                        Rule::LostWrites,
                        format!(
                            "{split} writes acknowledged while another node was a primary are not on the final primary pg{fin} ({}); {lost_async} more lost asynchronously",
                            who.join(", ")
                        ),
                    );
                }
            }
        }
        match self.sched.intent {
            Intent::Chaos => None,
            Intent::Blip => {
                if self.sched.profile != Profile::Fast {
                    return None;
                }
                if let Some((t, n)) = self.fences.first() {
                    return Some(Violation {
                        t: *t,
                        rule: Rule::Blip,
                        detail: format!("pg{n} was fenced in a blip"),
                    });
                }
                self.failovers.first().map(|(t, d)| Violation {
                    t: *t,
                    rule: Rule::Blip,
                    detail: format!("pg{d} ran its failover command in a blip"),
                })
            }
            Intent::Liveness => self.liveness(),
        }
    }

    /// Whether sync-lost judges this run: fencing on, two-writable not waived.
    pub fn sync_judged(&self) -> bool {
        self.sched.fencing() && self.waived.is_none()
    }

    /// sync-lost: with `synchronous_mode` on or strict, no client commit acknowledged
    /// synchronously is missing from the final primary, nor (strict) one acknowledged at all.
    /// Judged where two-writable is (fencing on, not waived): a split brain loses writes
    /// whatever the mode.
    fn sync_at_end(&self) -> Option<Violation> {
        if !self.sync_judged() {
            return None;
        }
        let loss = self.sync_loss()?;
        let strict = self.sched.sync == SynchronousMode::Strict;
        if loss.synchronous.is_empty() && !(strict && loss.asynchronous + loss.split > 0) {
            return None;
        }
        let first = loss
            .synchronous
            .first()
            .map(|(t, n, lsn)| {
                format!(
                    "the first acknowledged by pg{n} at {:.3} s, ending at {lsn:#x}",
                    secs(*t)
                )
            })
            .unwrap_or_default();
        let fin = loss.fin;
        let (on, at) = (self.nodes[fin].term, self.nodes[fin].lsn);
        let first_async = self
            .acks
            .iter()
            .find(|a| !a.synchronous && !self.holds(on, at, a.term, a.lsn))
            .map(|a| {
                format!(
                    "the first acknowledged by pg{} at {:.3} s, ending at {:#x}",
                    a.node,
                    secs(a.t),
                    a.lsn
                )
            })
            .unwrap_or_default();
        self.v(
            Rule::SyncLost,
            format!(
                "{} writes acknowledged synchronously are not on the final primary pg{fin} ({first}); {} acknowledged asynchronously lost ({} while another node was a primary){}",
                loss.synchronous.len(),
                loss.asynchronous + loss.split,
                loss.split,
                if strict && loss.asynchronous + loss.split > 0 {
                    format!(", with synchronous_mode strict: {first_async}")
                } else {
                    String::new()
                }
            ),
        )
    }

    fn liveness(&self) -> Option<Violation> {
        let lost = self.sched.faults.first()?;
        // Node daemons that list different observers (`layout=uneven` with three or more) count
        // different voter sets: each sees it through an observer both fetch from (its relayed
        // digest) and none promotes while it lasts (`voters_mismatch`), on purpose.
        let s = self.sched;
        let observers = s.nodes..s.nodes + s.observers;
        if (1..s.nodes).any(|d| {
            observers
                .clone()
                .any(|o| crate::schedule::lists(s, d, o) != crate::schedule::lists(s, 0, o))
        }) {
            return None;
        }
        let c = self.node_config();
        let candidates = (1..self.sched.nodes)
            .filter(|n| self.sched.never_promote != Some(*n))
            .count();
        if candidates == 0 {
            return None;
        }
        // The fast trigger needs a strict majority of a standby's observers to report the master
        // unreachable. When the primary's whole host is cut off, its daemon (one of them) cannot
        // report: with two observers the rest is no majority, and only the lag window is left
        // (docs/safety.md: list at least three).
        let observers = c.observers.len();
        let host_cut = matches!(lost.kind, FaultKind::Isolate { .. } | FaultKind::HostFreeze(_));
        let lost_vote = usize::from(host_cut && self.sched.layout == Layout::Mesh);
        let fast_possible = if self.sched.rules == Rules::Authority {
            // one authority: every promotion path needs a strict majority of the voters (the
            // standby's own poll counts in the mesh); the lost host's daemon is one of them in the
            // mesh. Without such a majority no standby may ever promote.
            let n = (1..self.sched.nodes)
                .map(|s| self.voters_of(s).len())
                .max()
                .unwrap_or(0);
            if 2 * n.saturating_sub(lost_vote) <= n {
                return None;
            }
            true
        } else {
            2 * (observers.saturating_sub(lost_vote)) > observers
        };
        let bound = if fast_possible {
            liveness_deadline(c)
        } else {
            liveness_deadline(&Config {
                unreachable_master_failover_timeout: None,
                ..c.clone()
            })
        };
        // The first candidate cannot promote: the next one yields after failover_fallback_timeout
        // and its yield is seen (an observer fetch and a check), then detection as above. After a
        // failed command the yield also waits for polls of our node spanning PROMOTE_SETTLE_SECS
        // between two attempts, which the first backoffs are too short for.
        let slack = 2.0 * c.db_poll_interval + 2.0 * c.db_poll_timeout + 2.0 * c.replication_state_check_interval + 1.5;
        let blocked_for = |t: f64| match self.sched.faults.get(1).map(|f| &f.kind) {
            Some(FaultKind::Maintenance(_)) => Some(t),
            // a poll after the attempt ended, polls spanning the settle time, a decision
            Some(FaultKind::FailoverFails(_)) => Some(yield_after_failures(
                t,
                PROMOTE_SETTLE_SECS + c.db_poll_interval + c.db_poll_timeout + c.replication_state_check_interval + 1.0,
            )),
            _ => None,
        };
        let bound = match c.failover_fallback_timeout.and_then(blocked_for) {
            Some(yield_at) => bound + yield_at + slack,
            None => bound,
        };
        // a trigger-file promotion takes up to 5.5 s, not 1 s
        let bound = if self.sched.slow_promote { bound + 4.5 } else { bound };
        let deadline = lost.at + us(bound);
        let Some(&(tp, p)) = self.promotions.iter().find(|(_, n)| *n != 0) else {
            return Some(Violation {
                t: deadline,
                rule: Rule::NoPromotion,
                detail: format!(
                    "the primary was lost at {:.3} s and no standby was promoted within {bound:.2} s",
                    secs(lost.at),
                ),
            });
        };
        if tp > deadline {
            return Some(Violation {
                t: tp,
                rule: Rule::NoPromotion,
                detail: format!(
                    "pg{p} was promoted {:.3} s after the primary was lost (bound {bound:.2} s)",
                    secs(tp - lost.at),
                ),
            });
        }
        if !self.sched.autofollow {
            return None;
        }
        let by = tp + us(follow_deadline(c));
        if by > self.sched.end {
            return None;
        }
        for s in (1..self.sched.nodes).filter(|s| *s != p) {
            let followed = self.follows.iter().any(|(t, n, m)| *n == s && *m == p && *t <= by);
            if !followed {
                return Some(Violation {
                    t: by,
                    rule: Rule::NoFollow,
                    detail: format!(
                        "pg{s} did not follow the new primary pg{p} within {:.2} s of its promotion",
                        follow_deadline(c)
                    ),
                });
            }
        }
        None
    }

    /// Whether restarting daemon `d` (whose node is writable) until `up_at` breaks the documented
    /// assumption that the primary's daemon is alive to fence it (docs/safety.md, "Restarts").
    /// The restarted daemon takes its lease from the state file, so the restart is covered unless
    /// a cut of its host (or a freeze of its node) that lasts into the downtime began more than
    /// U - W - C - B before the daemon is back (U the failover timeout, W the startup window):
    /// then the standbys may promote before the daemon can have fenced, which no daemon can do
    /// while it is down.
    fn restart_waiver(&self, d: usize, up_at: Us) -> Option<String> {
        let c = &self.daemons[d].config;
        let covered = pglookout::decide::voters::failover_timeout(c)
            - pglookout::decide::fence::startup_window(c)
            - c.replication_state_check_interval
            - c.fence_command_budget;
        let hosts = self.sched.daemons();
        let cuts_host =
            |f: &Fault| f.kind == FaultKind::FreezeNode(d) || (0..hosts).any(|x| f.touches(d, x) || f.touches_db(x, d));
        let cut_at = self
            .sched
            .faults
            .iter()
            .filter(|f| cuts_host(f) && f.at < up_at && (f.end() > self.now || self.nodes[d].proc == Proc::Frozen))
            .map(|f| f.at)
            .min()?;
        (up_at > cut_at + us(covered.max(0.0))).then(|| {
            format!(
                "the primary pg{d}'s daemon was down from {:.3} s to {:.3} s, its host cut off or its node frozen since {:.3} s: longer than a restored lease covers (docs/safety.md: not covered)",
                secs(self.now),
                secs(up_at),
                secs(cut_at)
            )
        })
    }
}

/// How long after losing the primary a standby must be writable: the failover timeout U,
/// then detection (a probe deadline and an interval), the fresh poll (an interval and a
/// deadline), a check, the command and the promotion (at most 0.2 s + 1 s here), and slack.
pub fn liveness_deadline(c: &Config) -> f64 {
    let u = c
        .unreachable_master_failover_timeout
        .unwrap_or(c.max_failover_replication_time_lag)
        .min(c.max_failover_replication_time_lag);
    u + 3.0 * c.db_poll_interval + 2.0 * c.db_poll_timeout + 2.0 * c.replication_state_check_interval + 1.5
}

/// How long after a promotion the other standbys must follow: seeing it (a probe and an
/// observer fetch), a check, and the restart (at most 1.5 s here).
pub fn follow_deadline(c: &Config) -> f64 {
    2.0 * c.db_poll_interval + 2.0 * c.db_poll_timeout + 2.0 * c.replication_state_check_interval + 2.0
}

/// Seconds from a candidate's first failed failover command to its yield, at the earliest
/// time past `fallback` at which a settle `window` fits between two retries (their backoff
/// doubles from [`FAILOVER_RETRY_INITIAL_SECS`] up to [`FAILOVER_RETRY_MAX_SECS`]).
fn yield_after_failures(fallback: f64, window: f64) -> f64 {
    let mut attempt = 0.0;
    let mut gap = FAILOVER_RETRY_INITIAL_SECS;
    loop {
        let at = fallback.max(attempt + window);
        if at < attempt + gap || gap >= FAILOVER_RETRY_MAX_SECS {
            return at;
        }
        attempt += gap;
        gap = (gap * 2.0).min(FAILOVER_RETRY_MAX_SECS);
    }
}
