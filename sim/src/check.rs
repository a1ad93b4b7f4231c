//! The invariants, each in a precise, checkable form (sim/README.md states them in prose).
//! Owns what counts as a violation; reads the world, never changes it.
//!
//! - **two-writable** (after every event, fenced profile): at most one node takes writes. Two
//!   writable nodes are tolerated only while the one on the older timeline has a fence command
//!   in flight (started, not yet acted: at most `fence_command_budget`). docs/safety.md's bound
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

use crate::cluster::{Proc, Role};
use crate::net;
use crate::schedule::{FaultKind, Intent, Profile};
use crate::world::World;
use crate::{secs, us, Us, MS};
use pglookout::config::Config;
use pglookout::decide::failover::{FAILOVER_RETRY_INITIAL_SECS, FAILOVER_RETRY_MAX_SECS, PROMOTE_SETTLE_SECS};
use std::fmt;

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

fn v(w: &World, rule: Rule, detail: String) -> Option<Violation> {
    Some(Violation { t: w.now, rule, detail })
}

/// A node daemon's config (every node daemon has the same timings).
fn node_config<'a>(w: &'a World) -> &'a Config {
    &w.daemons[0].config
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
pub fn step(w: &World) -> Option<Violation> {
    if w.sched.profile != Profile::Fast || w.waived.is_some() {
        return None;
    }
    let writable: Vec<usize> = (0..w.cluster.nodes.len()).filter(|n| w.cluster.writable(*n)).collect();
    if writable.len() < 2 {
        return None;
    }
    let oldest = writable
        .iter()
        .copied()
        .min_by_key(|n| (w.cluster.nodes[*n].timeline, *n))?;
    if w.fence_pending[oldest].is_some() {
        return None;
    }
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
pub fn at_failover(w: &World, d: usize, old_master: Option<&str>) -> Option<Violation> {
    let c = &w.daemons[d].config;
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
            && net::clear_during(&w.sched.faults, d, i, from, t);
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

/// At the end of the run.
pub fn at_end(w: &World) -> Option<Violation> {
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

fn liveness(w: &World) -> Option<Violation> {
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
    let host_cut = matches!(lost.kind, FaultKind::Isolate { .. });
    let fast_possible = !host_cut || 2 * (observers.saturating_sub(1)) > observers;
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
/// assumption that the primary's daemon is alive to fence it: when a link fault touches its
/// host between the restart and a fence timeout plus overhead after it comes back.
pub fn restart_waiver(w: &World, d: usize, up_at: Us) -> Option<String> {
    let c = &w.daemons[d].config;
    let overhead = c.fence_timeout.unwrap_or(0.0) + 2.0 * c.db_poll_interval + 2.0 * c.db_poll_timeout + 1.0;
    let until = up_at + us(overhead);
    let hosts = w.sched.daemons();
    let cut = (0..hosts).any(|x| {
        !net::clear_during(&w.sched.faults, d, x, w.now, until)
            || !net::clear_during(&w.sched.faults, x, d, w.now, until)
    });
    // a frozen node is cut off from its own daemon just the same
    let frozen = w.cluster.nodes[d].proc == Proc::Frozen
        || w.sched
            .faults
            .iter()
            .any(|f| f.kind == FaultKind::FreezeNode(d) && f.at < until && f.end() > w.now);
    (cut || frozen).then(|| {
        format!(
            "the primary pg{d}'s daemon restarted at {:.3} s while its host's links were cut or its node frozen (docs/safety.md: not covered)",
            secs(w.now)
        )
    })
}
