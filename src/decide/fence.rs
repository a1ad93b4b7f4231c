//! Fencing (docs/safety.md): the rules under which the daemon beside a primary stops that
//! primary taking writes with `fence_command`, and the lease and unreachability counts they
//! share with the fast failover trigger. Nothing here runs without `fence_command`.
//!
//! Owns: the lease (when at least half of the voters, `decide::voters`, last reported our node
//! connected), the fence rules (another connected primary on a newer timeline; the lease has
//! run out), "never twice for one event", the check that a fence held (a later poll that
//! still shows our node a connected primary without a lease fences again, `fence_failed`),
//! the retry of a failed fence, and the `fenced` alert. Must not: do I/O, read a clock, log.

use super::memory::{FenceState, Fenced, Memory, FENCE_BACKOFF};
use super::node_map::NodeMap;
use super::types::{Action, Alert, End, Mono, Out, View};
use super::voters;
use super::voters::{corroborated_primary, fresh_reports};
use crate::config::Config;
use crate::state::{NodeState, Timestamp};
use std::collections::BTreeMap;
use std::ops::ControlFlow;

/// Whether our lease holds now: fencing is on, our node is not a connected standby, and at
/// least half of the voters vouched for it within `fence_timeout`. `Err` says why not (for
/// the `/primary` and `/health` answers); `Ok(None)`: no lease applies (no fencing, a
/// standby, an observer).
pub fn lease(config: &Config, memory: &Memory, own: Option<&NodeState>, mono_now: Mono) -> Result<Option<f64>, String> {
    let (Some(_), Some(fence_timeout), Some(own)) = (&config.fence_command, config.fence_timeout, own) else {
        return Ok(None);
    };
    if let Some(f) = memory.fence.state.fenced() {
        return Err(format!(
            "our node was fenced {:.0} s ago: {}",
            mono_now - f.at,
            f.reason
        ));
    }
    if own.connection && own.in_recovery() == Some(true) {
        return Ok(None);
    }
    if config.observers.is_empty() {
        return Ok(None);
    }
    let since = mono_now - lease_start(memory);
    if since >= fence_timeout {
        return Err(format!(
            "no lease: at least half of the voters last vouched for our node {since:.1} s ago (fence_timeout {fence_timeout} s)"
        ));
    }
    Ok(Some(fence_timeout - since))
}

/// Where the lease counts from: the last renewal, else the daemon's start.
fn lease_start(memory: &Memory) -> Mono {
    memory.fence.vouched_at.unwrap_or(memory.started_at)
}

/// The last renewal of the lease on the wall clock, for the state file (`lease_renewed_at`):
/// a daemon that starts again picks its lease up from there ([`restore_lease`]).
pub fn lease_renewed_wall(memory: &Memory, wall_now: Timestamp, mono_now: Mono) -> Option<Timestamp> {
    let ago = mono_now - memory.fence.vouched_at?;
    Some(wall_now - chrono::Duration::microseconds((ago.max(0.0) * 1e6) as i64))
}

/// How long a daemon that has just started gives its voters to answer before its lease can
/// run out: two observer fetch periods, one for the first round of probes and one for the
/// first fetch of every observer (which starts with the first decision), a check each
/// (2I + 2P + 2C; docs/safety.md, "Restarts").
pub fn startup_window(config: &Config) -> f64 {
    2.0 * voters::observer_max_age(config)
}

/// A daemon that starts again, with the lease renewal its previous run wrote to the state
/// file (`renewed`, wall clock): the lease counts from there, not from this start, so that a
/// restart does not give a primary cut off from its voters a whole new `fence_timeout` while
/// its standbys' failover timeout keeps running. It still runs [`startup_window`] from the start, so that the
/// voters can answer first. A renewal in the future (the wall clock stepped back) counts as
/// now, which is the lease of a daemon with no state file.
pub fn restore_lease(memory: &mut Memory, config: &Config, renewed: Timestamp, wall_now: Timestamp, mono_now: Mono) {
    let Some(fence_timeout) = config.fence_timeout else {
        return;
    };
    let age = (wall_now - renewed)
        .num_microseconds()
        .map_or(f64::MAX, |us| us as f64 / 1e6);
    let earliest = mono_now - fence_timeout + startup_window(config);
    let at = (mono_now - age.max(0.0)).max(earliest).min(mono_now);
    memory.fence.vouched_at = Some(at);
}

/// Renews the lease when at least half of the voters vouch for our node now; with fencing on
/// or off (see [`FenceMemory::vouched_at`]). Returns the count and the number of voters.
fn renew_lease(
    view: &View,
    config: &Config,
    memory: &mut Memory,
    nodes: &BTreeMap<String, NodeState>,
    own: &str,
) -> (usize, usize) {
    let (votes, of) = voters::count(view, config, nodes, |v| voters::vouches(v, own));
    if voters::at_least_half(votes, of) {
        memory.fence.vouched_at = Some(view.mono_now);
    }
    (votes, of)
}

/// The fence rules for this round. `Some` ends the decision (a fence was ordered).
pub(super) fn fence(
    view: &View,
    config: &Config,
    memory: &mut Memory,
    nodes: &BTreeMap<String, NodeState>,
    map: &NodeMap,
    out: &mut Out,
) -> Option<End> {
    let own = config.own_db.as_deref()?;
    let own_state = nodes.get(own)?;
    let now = view.mono_now;
    let (votes, of) = renew_lease(view, config, memory, nodes, own);
    config.fence_command.as_ref()?;
    match own_state.in_recovery() {
        Some(true) if own_state.connection => {
            // a standby again (followed the new primary, or rebuilt): the fence is over
            if memory.fence.state.lift().is_some() {
                out.why(format!("{own} is a standby again; the fence is lifted"));
                out.act(Action::DeleteAlert(Alert::Fenced));
            }
            if std::mem::take(&mut memory.fence.not_held) > 0 {
                out.act(Action::DeleteAlert(Alert::FenceFailed));
            }
            // if it is promoted, its lease starts from the last time it was seen as a standby
            memory.fence.vouched_at = Some(now);
            return None;
        }
        // A standby we do not reach, that nothing asked to promote: it was one when last
        // seen, nothing to fence. Once our failover command has run since it was last seen
        // as a standby, the promotion it asked for may land while we cannot see it (an I/O
        // stall, a timed-out command): the lease applies.
        Some(true) if !memory.failover.since_standby => return None,
        // Never reached since this daemon started: it may be a primary (we may have restarted
        // while it was cut off or frozen), so the lease applies; not knowing is no reason to
        // let it take writes (docs/safety.md, "The rules").
        _ => {}
    }

    let own_primary = own_state.connection && own_state.in_recovery() == Some(false);
    let r = Round {
        view,
        config,
        nodes,
        map,
        own,
        votes,
        of,
    };
    if let ControlFlow::Break(end) = after_fence(&r, memory, out, own_primary) {
        return end;
    }
    if memory.fence.state.running_since().is_some() {
        out.why("the fence command is running");
        return None;
    }
    if let Some(at) = memory.fence.failures.retry_at(FENCE_BACKOFF) {
        if now < at {
            out.why(format!(
                "the fence command failed {} time(s); next try in {:.1} s",
                memory.fence.failures.consecutive,
                at - now
            ));
            return None;
        }
    }

    if let Some(end) = stale_primary(&r, memory, out, own_state, own_primary) {
        return Some(end);
    }
    lease_ran_out(&r, memory, out)
}

/// What the fence rules of one round look at.
struct Round<'a> {
    view: &'a View<'a>,
    config: &'a Config,
    nodes: &'a BTreeMap<String, NodeState>,
    map: &'a NodeMap<'a>,
    own: &'a str,
    votes: usize,
    of: usize,
}

/// Our node was fenced: while the command runs, wait; then verify it held (a poll after the
/// fence that still shows a connected primary without a lease, or beside another primary, means
/// it did not: fence again, with a backoff after the first time), or lift it when the node is
/// back as a primary with its lease for a whole fence_timeout (brought back on purpose).
fn after_fence(r: &Round, memory: &mut Memory, out: &mut Out, own_primary: bool) -> ControlFlow<Option<End>> {
    let (view, config, map, own, now) = (r.view, r.config, r.map, r.own, r.view.mono_now);
    let (votes, of) = (r.votes, r.of);
    let vouched = voters::at_least_half(votes, of);
    let corroborated = |name: &str| corroborated_primary(view, config, r.nodes, name);
    let f = match &mut memory.fence.state {
        FenceState::Idle | FenceState::Running { fence: None, .. } => return ControlFlow::Continue(()),
        FenceState::Running { fence: Some(_), .. } => {
            out.why("the fence command is running");
            return ControlFlow::Break(None);
        }
        FenceState::Fenced(f) => f,
    };
    // The first decision after the command succeeded asks for a poll: the round after this
    // one is made of probes that started after the request, so after the fence.
    let verify_from = match f.verify_from_round {
        Some(round) => round,
        None => {
            f.verify_from_round = Some(view.poll_round);
            out.act(Action::RequestPoll);
            view.poll_round
        }
    };
    let verified = view.poll_round > verify_from;
    let other = map
        .connected_masters
        .keys()
        .find(|n| n.as_str() != own && corroborated(n))
        .cloned();
    let back = now - f.at >= config.fence_timeout.unwrap_or(0.0);
    match (own_primary && verified, vouched && other.is_none()) {
        // Back as a primary that at least half of the voters vouch for, with no other
        // primary, for a whole fence_timeout after the fence: brought back on purpose.
        // The rules run afresh.
        (true, true) if back => {
            out.why(format!(
                "{own} answers as a primary again and at least half of the voters vouch for it: the earlier fence ({}) no longer holds",
                f.reason
            ));
            memory.fence.state.lift();
            if std::mem::take(&mut memory.fence.not_held) > 0 {
                out.act(Action::DeleteAlert(Alert::FenceFailed));
            }
            ControlFlow::Continue(())
        }
        // Answers as a primary with its lease: nobody may promote meanwhile; wait.
        (true, true) => {
            out.why(format!(
                "{own} answers as a primary again, vouched for by {votes} of {of} voters; the fence of {:.0} s ago is lifted after fence_timeout if that lasts",
                now - f.at
            ));
            ControlFlow::Break(None)
        }
        // The fence did not hold: a supervisor restarted the node, or the command missed
        // it. Fence again, at once the first time, then with a backoff.
        (true, false) => {
            let reason = format!(
                "the fence of {:.0} s ago did not hold: {own} answers as a primary again{} ({})",
                now - f.at,
                match &other {
                    Some(o) => format!(" while {o} is a connected primary"),
                    None => format!(" without a lease ({votes} of {of} voters vouch)"),
                },
                f.reason
            );
            // at once after the first fence that did not hold, then the command's backoff
            let wait = FENCE_BACKOFF.wait(memory.fence.not_held);
            if memory.fence.not_held > 0 && now - f.at < wait {
                out.why(format!("{reason}; fencing again in {:.1} s", f.at + wait - now));
                return ControlFlow::Break(None);
            }
            memory.fence.not_held = memory.fence.not_held.saturating_add(1);
            out.act(Action::CreateAlert(Alert::FenceFailed));
            ControlFlow::Break(Some(order_fence(memory, out, own, now, reason, other)))
        }
        (false, _) => {
            out.why(format!("{own} was fenced {:.0} s ago: {}", now - f.at, f.reason));
            ControlFlow::Break(None)
        }
    }
}

/// Rules 1, 1c and 1b: another connected primary shows ours is the stale one.
fn stale_primary(
    r: &Round,
    memory: &mut Memory,
    out: &mut Out,
    own_state: &NodeState,
    own_primary: bool,
) -> Option<End> {
    let (view, config, map, own, now) = (r.view, r.config, r.map, r.own, r.view.mono_now);
    let corroborated = |name: &str| corroborated_primary(view, config, r.nodes, name);
    // Rule 1: another node is a connected primary on a newer timeline: a standby was promoted
    // and ours is the stale one. Equal or unknown timelines never fence (two primaries must
    // never fence each other). Only on the word of our own poll or of a strict majority of
    // the voters: one observer answering for another cluster (a wrong URL) must not stop a
    // healthy primary.
    let own_timeline = own_state.pg.as_ref().and_then(|p| p.timeline);
    let newer = map
        .connected_masters
        .iter()
        .filter(|(name, _)| name.as_str() != own && corroborated(name))
        .filter_map(|(name, s)| Some((name, s.pg.as_ref()?.timeline?)))
        .filter(|(_, t)| own_timeline.is_some_and(|own_t| *t > own_t))
        .max_by_key(|(name, t)| (*t, (*name).clone()));
    if let (Some((name, t)), Some(own_t)) = (newer, own_timeline) {
        let reason = format!("{name} is a connected primary on timeline {t}, newer than {own}'s timeline {own_t}");
        return Some(order_fence(memory, out, own, now, reason, Some(name.clone())));
    }

    // Rule 1c: another node is a corroborated connected primary on the same timeline (or an
    // unknown one) and its own daemon announces that it promoted it: two promotions from one
    // timeline both end on the next number, so the numbers cannot tell the stale one; the
    // announcement can. Never while we announce a promotion of our own (then two promotions
    // happened, and two primaries must not fence each other).
    if own_primary && !memory.announces_promotion() {
        if let Some(name) = map
            .connected_masters
            .keys()
            .find(|n| n.as_str() != own && corroborated(n) && announces_promotion(view, config, n))
        {
            let reason = format!(
                "{name} is a connected primary that its daemon announces it promoted: {own} is the primary it replaces"
            );
            return Some(order_fence(memory, out, own, now, reason, Some(name.clone())));
        }
    }

    // Rule 1b: our node has not been reached since this daemon started (its role unknown), in
    // two poll rounds, and another node is a connected primary: ours can only be a stale
    // primary or a standby, and stopping it loses nothing. Otherwise a daemon restarted while
    // its primary is frozen would let it take writes on resume, before the lease runs out.
    // The second round: a healthy standby whose first probe is slow (a loaded host, a server
    // still starting) must not be stopped for it (chaos seed 414 run 9).
    if own_state.in_recovery().is_none() && !own_state.connection {
        let first = *memory.fence.unreached_since_round.get_or_insert(view.poll_round);
        if let Some(name) = map
            .connected_masters
            .keys()
            .find(|n| n.as_str() != own && corroborated(n))
        {
            if view.poll_round == first {
                out.why(format!(
                    "{own} has not been reached since this daemon started and {name} is a connected primary: fenced if the next poll round does not reach it either"
                ));
                return None;
            }
            let reason = format!(
                "{own} has not been reached in two poll rounds since this daemon started and {name} is a connected primary: ours may be a stale primary"
            );
            return Some(order_fence(memory, out, own, now, reason, Some(name.clone())));
        }
    }
    None
}

/// Rule 2: the lease ran out.
fn lease_ran_out(r: &Round, memory: &mut Memory, out: &mut Out) -> Option<End> {
    let (config, map, own, now) = (r.config, r.map, r.own, r.view.mono_now);
    let (votes, of) = (r.votes, r.of);
    // Without observers there is nobody to vouch: the lease rule is
    // off (docs/safety.md).
    if config.observers.is_empty() {
        return None;
    }
    let fence_timeout = config.fence_timeout?;
    let since = now - lease_start(memory);
    out.why(format!(
        "{votes} of {of} voters vouch for {own}; last time at least half did {since:.1} s ago (fence_timeout {fence_timeout} s)"
    ));
    if since >= fence_timeout {
        let other = map.connected_masters.keys().find(|n| n.as_str() != own).cloned();
        let reason = format!(
            "fewer than half of the voters have reported {own} connected for {since:.1} s (fence_timeout {fence_timeout} s)"
        );
        return Some(order_fence(memory, out, own, now, reason, other));
    }
    None
}

/// Whether `name`'s own daemon (the observer configured under its name) announces, in a fresh
/// report, that it is promoting `name`.
fn announces_promotion(view: &View, config: &Config, name: &str) -> bool {
    fresh_reports(view.observers, config, view.wall_now)
        .filter(|(observer, _)| observer.as_str() == name)
        .any(|(_, o)| {
            o.nodes
                .get(name)
                .and_then(|n| n.failover.as_ref())
                .is_some_and(|f| f.phase == crate::state::FailoverPhase::Promoting)
        })
}

fn order_fence(
    memory: &mut Memory,
    out: &mut Out,
    own: &str,
    now: Mono,
    reason: String,
    new_master: Option<String>,
) -> End {
    out.why(reason.clone());
    out.act(Action::RunFenceCommand {
        reason: reason.clone(),
        new_master,
    });
    out.act(Action::CreateAlert(Alert::Fenced));
    memory.fence.state.order(
        now,
        Fenced {
            at: now,
            reason,
            verify_from_round: None,
        },
    );
    super::types::done(format!("fence: stopping {own}, which must not take writes"))
}
