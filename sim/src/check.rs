//! The invariants, each in a precise, checkable form (sim/README.md states them in prose).
//! Owns what counts as a violation. Reads what the world shows it ([`Facts`]: the model
//! cluster, the schedule, the daemons and the record of what they did), never changes it, and
//! does not import the world.
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
//!   when the schedule prefers a standby (within the cap, priority comes first).
//! - **never-promote**, **maintenance**: no failover command on a node listed in
//!   `never_promote_these_nodes`, or whose maintenance file has existed since before the
//!   previous check (C + 1 ms).
//! - **majority-sees-primary** (at every failover command start): a strict majority of all
//!   daemons (node daemons and observers) do not currently see the old master connected as a
//!   primary.
//! - **liveness** (liveness schedules): the primary lost and nothing else wrong, a standby is
//!   writable within [`liveness_deadline`] of the loss, and with autofollow every other running
//!   standby follows it within [`follow_deadline`] of the promotion.
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

use crate::cluster::Cluster;
use crate::cluster::{Proc, Role};
use crate::schedule::Schedule;
use crate::schedule::{Fault, FaultKind, Intent, Layout, Profile, Rules};
use crate::shell::Daemon;
use crate::{secs, us, Us, MS};
use pglookout::config::Config;
use pglookout::decide::failover::{FAILOVER_RETRY_INITIAL_SECS, FAILOVER_RETRY_MAX_SECS, PROMOTE_SETTLE_SECS};
use std::fmt;

/// A failover command started: when, on which node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FailoverStart {
    pub t: Us,
    pub node: usize,
}

/// What the checker reads: the world's state and record, as of `now`.
pub struct Facts<'a> {
    pub now: Us,
    pub sched: &'a Schedule,
    pub cluster: &'a Cluster,
    pub daemons: &'a [Daemon],
    /// Why two-writable does not apply to this run, if it does not.
    pub waived: Option<&'a str>,
    /// Per node: when its fence command started, until the fence has acted.
    pub fence_pending: &'a [Option<Us>],
    /// Per node: when a supervisor last started it again after a fence.
    pub revived: &'a [Option<Us>],
    /// Per node: until when every probe of it times out (a late promotion's stall).
    pub late_until: &'a [Us],
    /// Per host: frozen whole.
    pub frozen_hosts: &'a [bool],
    pub failovers: &'a [FailoverStart],
    /// Fence commands started: (t, daemon).
    pub fences: &'a [(Us, usize)],
    /// Completed promotions: (t, node).
    pub promotions: &'a [(Us, usize)],
    /// Completed follows: (t, node, master).
    pub follows: &'a [(Us, usize, usize)],
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

fn v(w: &Facts, rule: Rule, detail: String) -> Option<Violation> {
    Some(Violation { t: w.now, rule, detail })
}

/// A node daemon's config (every node daemon has the same timings).
fn node_config<'a>(w: &'a Facts<'_>) -> &'a Config {
    w.daemons[0].config()
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

/// After every event.
pub fn step(w: &Facts) -> Option<Violation> {
    if !w.sched.fencing() || w.waived.is_some() {
        return None;
    }
    // runs after every event: nothing allocated until two nodes take writes
    (0..w.cluster.nodes.len()).filter(|n| w.cluster.writable(*n)).nth(1)?;
    let writable: Vec<usize> = (0..w.cluster.nodes.len()).filter(|n| w.cluster.writable(*n)).collect();
    if writable.iter().any(|n| in_revive_grace(w, *n, w.now)) {
        return None;
    }
    // at most one writable node without its fence in flight (with equal timelines the one
    // being fenced need not be the one on the older timeline)
    let unfenced: Vec<usize> = writable
        .iter()
        .copied()
        .filter(|n| w.fence_pending[*n].is_none())
        .collect();
    if unfenced.len() < 2 {
        return None;
    }
    let oldest = unfenced
        .iter()
        .copied()
        .min_by_key(|n| (w.cluster.nodes[*n].timeline, *n))?;
    let names: Vec<String> = writable
        .iter()
        .map(|n| format!("pg{n} (timeline {})", w.cluster.nodes[*n].timeline))
        .collect();
    v(
        w,
        Rule::TwoWritable,
        format!(
            "{} take writes at once, and pg{oldest}'s daemon has no fence in flight",
            names.join(" and ")
        ),
    )
}

/// When daemon `d` starts its failover command (`old_master` as decide() gave it).
pub fn at_failover(w: &Facts, d: usize, old_master: Option<&str>) -> Option<Violation> {
    let c = w.daemons[d].config();
    let t = w.now;
    if w.sched.never_promote == Some(d) {
        return v(w, Rule::NeverPromote, format!("pg{d} is in never_promote_these_nodes"));
    }
    let maint_since = t.saturating_sub(us(c.replication_state_check_interval) + MS);
    let maint = w
        .sched
        .faults
        .iter()
        .any(|f| f.kind == FaultKind::Maintenance(d) && f.at <= maint_since && f.end() > t);
    if maint {
        return v(
            w,
            Rule::Maintenance,
            format!("pg{d}'s maintenance file exists since before the previous check"),
        );
    }

    let window = us(2.0 * c.db_poll_interval + 2.0 * c.db_poll_timeout);
    let from = t.saturating_sub(window);
    let slack_from = from.saturating_sub(us(c.replication_state_check_interval));
    let slack: u64 = (0..w.cluster.nodes.len())
        .map(|p| w.cluster.written_between(p, slack_from, t))
        .sum();
    let own = w.cluster.nodes[d].lsn;
    let allowance = slack + w.sched.policy.map_or(0, |p| p.cap);
    for (i, other) in w.cluster.nodes.iter().enumerate() {
        let eligible = i != d
            && matches!(other.role, Role::Standby { .. })
            && other.proc == Proc::Running
            && other.proc_since <= from
            && w.sched.never_promote != Some(i)
            && !w.sched.faults.iter().any(|f| f.touches(d, i) && f.during(from, t));
        if eligible && other.lsn > own + allowance {
            return v(
                w,
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
    let seeing: Vec<&str> = w
        .daemons
        .iter()
        .filter(|e| {
            e.up && e
                .published
                .nodes
                .get(old)
                .is_some_and(|n| n.connection && n.in_recovery() == Some(false))
        })
        .map(|e| e.name.as_str())
        .collect();
    if seeing.len() * 2 > w.daemons.len() {
        return v(
            w,
            Rule::MajoritySeesPrimary,
            format!(
                "pg{d} fails over while {} of {} daemons ({}) see {old} connected",
                seeing.len(),
                w.daemons.len(),
                seeing.join(", ")
            ),
        );
    }
    None
}

/// Whether node `n` was started again by a supervisor after its fence so recently, at `t`,
/// that its daemon cannot have fenced it again yet.
fn in_revive_grace(w: &Facts, n: usize, t: Us) -> bool {
    let c = w.daemons[n].config();
    let grace = us(2.0 * c.db_poll_interval
        + c.db_poll_timeout
        + 2.0 * c.replication_state_check_interval
        + c.fence_command_budget);
    w.revived[n].is_some_and(|r| r <= t && t < r + grace)
}

/// The daemon index of an observer name of schedule `w.sched`.
fn daemon_index(w: &Facts, name: &str) -> Option<usize> {
    if let Some(n) = name.strip_prefix("pg") {
        n.parse().ok().filter(|n| *n < w.sched.nodes)
    } else {
        name.strip_prefix("obs")
            .and_then(|j| j.parse::<usize>().ok())
            .filter(|j| *j < w.sched.observers)
            .map(|j| w.sched.nodes + j)
    }
}

/// Node daemon `d`'s voters in its running config: its observers, plus itself when they
/// include a daemon for every other node of its `remote_conns`.
pub fn voters_of(w: &Facts, d: usize) -> Vec<usize> {
    let c = w.daemons[d].config();
    let mut v: Vec<usize> = c.observers.keys().filter_map(|n| daemon_index(w, n)).collect();
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
pub fn at_fence(w: &Facts, d: usize) -> Option<Violation> {
    if w.sched.rules != Rules::Authority || w.waived.is_some() {
        return None;
    }
    let node = &w.cluster.nodes[d];
    if node.role != Role::Primary || node.proc != Proc::Running {
        return None;
    }
    let other = w.cluster.nodes.iter().enumerate().any(|(i, n)| {
        i != d
            && (n.role == Role::Promoting
                || n.role == Role::Primary && matches!(n.proc, Proc::Running | Proc::Frozen | Proc::Restarting))
    });
    if other {
        return None;
    }
    let c = w.daemons[d].config();
    let f_timeout = c.fence_timeout.unwrap_or(0.0);
    // how stale the last vouch the daemon counted may be when its cause ended: a probe and an
    // observer fetch (each an interval and a deadline)
    let lag = 2.0 * c.db_poll_interval + 2.0 * c.db_poll_timeout;
    let t1 = w.now;
    let t0 = t1.saturating_sub(us(f_timeout + lag + c.replication_state_check_interval + 1.0));
    let recent = t1.saturating_sub(us(lag + c.replication_state_check_interval));
    let faults = &w.sched.faults;
    // the primary itself stopped, its own polls failed, or its daemon restarted (its lease
    // starts afresh): its daemon may well fence
    let node_hit = faults.iter().any(|f| {
        f.during(t0, t1)
            && matches!(f.kind, FaultKind::KillNode(n) | FaultKind::FreezeNode(n) | FaultKind::HostFreeze(n)
                | FaultKind::FailoverLate(n) | FaultKind::RestartDaemon(n) if n == d)
    });
    // a late promotion's stall outlasts its fault (world.rs): no probe of d answered
    if node_hit || w.late_until[d] > t0 {
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
    let voters = voters_of(w, d);
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
            let down = v != d && (!w.daemons[v].up || w.frozen_hosts[v]);
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
    let promotable = (0..w.sched.nodes).filter(|s| *s != d).any(|s| {
        let vs = voters_of(w, s);
        let u = vs
            .iter()
            .filter(|&&x| {
                x != d
                    && faults.iter().any(|f| {
                        f.during(t0, t1) && (f.touches_db(x, d) || matches!(f.kind, FaultKind::HostFreeze(h) if h == x))
                    })
            })
            .count();
        2 * u > vs.len()
    });
    if promotable {
        return None;
    }
    let able: Vec<&str> = since
        .iter()
        .filter(|(at, _)| *at == t1)
        .map(|(_, v)| w.daemons[*v].name.as_str())
        .collect();
    v(
        w,
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

/// Acknowledged writes missing from the final primary: (split brain, asynchronous), or `None`
/// when no node ends as a primary.
pub fn lost_writes(w: &Facts) -> Option<(u64, u64, usize)> {
    let cl = &w.cluster;
    let fin = (0..cl.nodes.len())
        .filter(|n| cl.nodes[*n].role == Role::Primary && cl.nodes[*n].proc != Proc::Dead)
        .max_by_key(|n| {
            let taking = cl.writable(*n) && w.fence_pending[*n].is_none();
            (taking, cl.nodes[*n].timeline, cl.nodes[*n].lsn)
        })?;
    let mut split = 0;
    let mut lost_async = 0;
    for x in (0..cl.nodes.len()).filter(|x| *x != fin) {
        let over: Vec<&(Us, u64)> = cl.overlapped[x]
            .iter()
            .filter(|(t, _)| !in_revive_grace(w, x, *t))
            .collect();
        split += over.len() as u64;
        let fork = cl.nodes[fin].fork;
        if fork > 0 && cl.nodes[x].role == Role::Primary {
            let after = cl.commits_after(x, fork);
            lost_async += after.saturating_sub(cl.overlapped[x].len() as u64);
        }
    }
    Some((split, lost_async, fin))
}

/// At the end of the run.
pub fn at_end(w: &Facts) -> Option<Violation> {
    if w.sched.rules == Rules::Authority && w.sched.fencing() && w.waived.is_none() {
        if let Some((split, lost_async, fin)) = lost_writes(w) {
            if split > 0 {
                let who: Vec<String> = (0..w.cluster.nodes.len())
                    .filter(|x| *x != fin && !w.cluster.overlapped[*x].is_empty())
                    .map(|x| format!("pg{x} from {:.3} s", secs(w.cluster.overlapped[x][0].0)))
                    .collect();
                return v(
                    w,
                    Rule::LostWrites,
                    format!(
                        "{split} writes acknowledged while another node was a primary are not on the final primary pg{fin} ({}); {lost_async} more lost asynchronously",
                        who.join(", ")
                    ),
                );
            }
        }
    }
    match w.sched.intent {
        Intent::Chaos => None,
        Intent::Blip => {
            if w.sched.profile != Profile::Fast {
                return None;
            }
            if let Some((t, n)) = w.fences.first() {
                return Some(Violation {
                    t: *t,
                    rule: Rule::Blip,
                    detail: format!("pg{n} was fenced in a blip"),
                });
            }
            w.failovers.first().map(|f| Violation {
                t: f.t,
                rule: Rule::Blip,
                detail: format!("pg{} ran its failover command in a blip", f.node),
            })
        }
        Intent::Liveness => liveness(w),
    }
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

fn liveness(w: &Facts) -> Option<Violation> {
    let lost = w.sched.faults.first()?;
    let c = node_config(w);
    let candidates = (1..w.sched.nodes).filter(|n| w.sched.never_promote != Some(*n)).count();
    if candidates == 0 {
        return None;
    }
    // The fast trigger needs a strict majority of a standby's observers to report the master
    // unreachable. When the primary's whole host is cut off, its daemon (one of them) cannot
    // report: with two observers the rest is no majority, and only the lag window is left
    // (docs/safety.md: list at least three).
    let observers = c.observers.len();
    let host_cut = matches!(lost.kind, FaultKind::Isolate { .. } | FaultKind::HostFreeze(_));
    let lost_vote = usize::from(host_cut && w.sched.layout == Layout::Mesh);
    let fast_possible = if w.sched.rules == Rules::Authority {
        // one authority: every promotion path needs a strict majority of the voters (the
        // standby's own poll counts in the mesh); the lost host's daemon is one of them in the
        // mesh. Without such a majority no standby may ever promote.
        let n = (1..w.sched.nodes).map(|s| voters_of(w, s).len()).max().unwrap_or(0);
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
    let blocked_for = |t: f64| match w.sched.faults.get(1).map(|f| &f.kind) {
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
    let bound = if w.sched.slow_promote { bound + 4.5 } else { bound };
    let deadline = lost.at + us(bound);
    let Some(&(tp, p)) = w.promotions.iter().find(|(_, n)| *n != 0) else {
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
    if !w.sched.autofollow {
        return None;
    }
    let by = tp + us(follow_deadline(c));
    if by > w.sched.end {
        return None;
    }
    for s in (1..w.sched.nodes).filter(|s| *s != p) {
        let followed = w.follows.iter().any(|(t, n, m)| *n == s && *m == p && *t <= by);
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
pub fn restart_waiver(w: &Facts, d: usize, up_at: Us) -> Option<String> {
    let c = w.daemons[d].config();
    let covered = pglookout::decide::voters::failover_timeout(c)
        - pglookout::decide::fence::startup_window(c)
        - c.replication_state_check_interval
        - c.fence_command_budget;
    let hosts = w.sched.daemons();
    let cuts_host =
        |f: &Fault| f.kind == FaultKind::FreezeNode(d) || (0..hosts).any(|x| f.touches(d, x) || f.touches_db(x, d));
    let cut_at = w
        .sched
        .faults
        .iter()
        .filter(|f| cuts_host(f) && f.at < up_at && (f.end() > w.now || w.cluster.nodes[d].proc == Proc::Frozen))
        .map(|f| f.at)
        .min()?;
    (up_at > cut_at + us(covered.max(0.0))).then(|| {
        format!(
            "the primary pg{d}'s daemon was down from {:.3} s to {:.3} s, its host cut off or its node frozen since {:.3} s: longer than a restored lease covers (docs/safety.md: not covered)",
            secs(w.now),
            secs(up_at),
            secs(cut_at)
        )
    })
}
