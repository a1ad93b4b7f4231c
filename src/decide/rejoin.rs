//! Bringing the old primary back (`rejoin_old_master`, docs/safety.md): the rule under which the
//! daemon beside a primary that was replaced makes its node a standby of the new primary
//! (`act::rejoin` stops it, runs `pg_rewind`, writes the standby settings, starts it).
//!
//! Owns: whether our node was the master ("was master"), when a rejoin is due (our node was the
//! master or is fenced by us, it is not a connected unfenced primary, another node is a connected
//! primary that our own poll or a strict majority of the observers corroborates), one rejoin
//! per new master, the retry of a failed rejoin after a backoff, the `rejoin_failed` alert's
//! removal, and keeping autofollow's plain restart away from a node that needs a rejoin.
//! Must not: do I/O, read a clock, log.

use super::memory::{Memory, REJOIN_RESULT_GRACE_SECS};
use super::node_map::NodeMap;
use super::types::{done, Action, Alert, End, Mono, Out, View};
use super::voters::corroborated_primary;
use crate::config::Config;
use crate::state::NodeState;
use std::collections::BTreeMap;

/// The longest a rejoin can take in the shell: stop, start and stop (the crash-recovery start
/// before PostgreSQL 13), `pg_controldata` twice and the final start, each bounded by
/// `failover_command_timeout`, plus `pg_rewind_timeout`; with `reinit_command`, the rebuild
/// tried when the rewind fails (`act::reinit`): its checks, stops, start and streaming wait,
/// each bounded by `failover_command_timeout` (the wait by at least a minute), plus
/// `reinit_timeout`.
pub fn rejoin_deadline(config: &Config) -> f64 {
    let rejoin = 6.0 * config.failover_command_timeout + config.pg_rewind_timeout;
    match config.reinit_command {
        Some(_) => rejoin + 6.0 * config.failover_command_timeout + 60.0 + config.reinit_timeout,
        None => rejoin,
    }
}

/// Whether a node answers as a standby that has received WAL from an upstream since it
/// started. A replaced primary that comes back in recovery (a fence that leaves
/// `standby.signal` behind, `packaging/fence.sh`, restarted by its supervisor) answers as a
/// standby too, but receives nothing: it may hold writes the new primary never had, so it is
/// still the old primary to rejoin, not a standby to follow or to forget.
pub fn receiving_standby(n: &NodeState) -> bool {
    n.connection
        && n.pg
            .as_ref()
            .is_some_and(|p| p.pg_is_in_recovery && p.pg_last_xlog_receive_location.is_some())
}

/// Keeps [`RejoinMemory::was_master`] (whatever `rejoin_old_master` says: autofollow needs it
/// too): set while our node is a connected primary and the master we know, cleared once it is
/// seen as a standby that receives WAL ([`receiving_standby`]).
pub(super) fn track_was_master(config: &Config, memory: &mut Memory, nodes: &BTreeMap<String, NodeState>) {
    let Some(own) = config.own_db.as_deref() else {
        return;
    };
    let Some(n) = nodes.get(own).filter(|n| n.connection) else {
        return;
    };
    if n.in_recovery() == Some(false) && memory.current_master.as_deref() == Some(own) {
        memory.rejoin.was_master = true;
        memory.rejoin.state.forget();
    } else if receiving_standby(n) {
        memory.rejoin.was_master = false;
    }
}

/// Whether autofollow's plain rewrite and restart must leave our node alone: a node that was
/// the master (or that we fenced) and is not seen as a standby receiving WAL may have diverged, and a
/// restart as a standby without `pg_rewind` would serve its lost writes as reads or stop
/// streaming at the fork. With `rejoin_old_master` the rejoin brings it back; without, it stays
/// stopped until an operator runs `pglookout-ctl rejoin` or rebuilds it. (`act::follow` checks
/// the data directory too, for the daemon that restarted and forgot.)
pub(super) fn follow_leaves_alone(memory: &Memory, config: &Config, nodes: &BTreeMap<String, NodeState>) -> bool {
    let Some(own) = config.own_db.as_deref() else {
        return false;
    };
    nodes.get(own).is_none_or(|n| !receiving_standby(n))
        && (memory.rejoin.was_master || memory.fence.state.fenced().is_some())
}

/// Why autofollow leaves our node alone (see [`follow_leaves_alone`]).
pub(super) fn follow_left_alone_why(config: &Config, own: &str) -> String {
    if config.rejoin_old_master {
        format!("{own} was the primary; rejoin_old_master brings it back (pg_rewind first), not autofollow")
    } else {
        format!(
            "{own} was the primary and may have diverged: autofollow leaves it stopped \
             (pglookout-ctl rejoin runs pg_rewind, or rebuild it)"
        )
    }
}

/// The rejoin rule for this round. `Some` ends the decision (a rejoin is running, waiting for
/// its retry, or was ordered).
pub(super) fn rejoin(
    view: &View,
    config: &Config,
    memory: &mut Memory,
    nodes: &BTreeMap<String, NodeState>,
    map: &NodeMap,
    out: &mut Out,
) -> Option<End> {
    if !config.rejoin_old_master {
        return None;
    }
    let own = config.own_db.as_deref()?;
    let own_state = nodes.get(own)?;
    let now = view.mono_now;
    if let Some(end) = still_running(config, memory, own, now, out) {
        return Some(end);
    }
    if !to_bring_back(memory, own, own_state, out) {
        return None;
    }
    let master = memory.current_master.clone().filter(|m| m != own)?;
    if !map.connected_masters.contains_key(&master) || !corroborated_primary(view, config, nodes, &master) {
        out.why(format!(
            "{own} was the primary; {master} is not a connected primary in our own poll or for a majority of the observers: no rejoin yet"
        ));
        return None;
    }
    if memory.rejoin.state.rejoined() == Some(master.as_str()) {
        out.why(format!(
            "{own} was made a standby of {master}; waiting to see it as one"
        ));
        return None;
    }
    if let Some(at) = memory.rejoin_retry_at().filter(|at| now < *at) {
        out.why(format!(
            "the rejoin failed {} time(s) ({}); next try in {:.1} s",
            memory.rejoin.failures.consecutive,
            memory.rejoin.last_error.as_deref().unwrap_or("no reason"),
            at - now
        ));
        return Some(done("rejoin: waiting before retrying the failed rejoin"));
    }
    let how = if memory.fence.state.fenced().is_some() {
        "fenced"
    } else if own_state.connection && own_state.in_recovery() == Some(true) {
        "back in recovery but receives nothing"
    } else if own_state.connection {
        "not a primary"
    } else {
        "not reachable"
    };
    out.why(format!(
        "{own} was the primary and is {how}; {master} is the connected primary: making {own} its standby (rejoin_old_master)"
    ));
    out.act(Action::RejoinNewPrimary { master: master.clone() });
    memory.rejoin.state.order(now);
    Some(done(format!("rejoin: making {own} a standby of {master}")))
}

/// A rejoin is running: `Some` while it may still report; past its deadline it counts as
/// failed and the rules run again.
fn still_running(config: &Config, memory: &mut Memory, own: &str, now: Mono, out: &mut Out) -> Option<End> {
    let since = memory.rejoin.state.running_since()?;
    let limit = rejoin_deadline(config) + REJOIN_RESULT_GRACE_SECS;
    if now - since <= limit {
        out.why(format!("the rejoin of {own} has been running for {:.0} s", now - since));
        return Some(done(format!("rejoin: making {own} a standby")));
    }
    out.why(format!(
        "no result for the rejoin started {:.0} s ago; counting it as failed",
        now - since
    ));
    let master = memory.current_master.clone().unwrap_or_default();
    memory.record_rejoin_result(&master, Err("no result within the rejoin's deadline".into()), now);
    None
}

/// Whether our node is an old primary to bring back as a standby; a standby that receives
/// from the new master clears `rejoin_failed`.
fn to_bring_back(memory: &mut Memory, own: &str, own_state: &NodeState, out: &mut Out) -> bool {
    let receiving = receiving_standby(own_state);
    if receiving || (own_state.connection && own_state.in_recovery() == Some(true) && !memory.rejoin.was_master) {
        // A standby (rejoined, followed or rebuilt): nothing to bring back (`track_was_master`
        // cleared `was_master`). A replaced primary back in recovery that receives nothing
        // (a sticky fence undone by its supervisor) goes on to the rejoin.
        let of_new_master = memory.current_master.as_deref().is_some_and(|m| m != own);
        if memory.rejoin.alert && receiving && of_new_master {
            memory.rejoin.alert = false;
            memory.rejoin.failures.clear();
            memory.rejoin.last_error = None;
            out.act(Action::DeleteAlert(Alert::RejoinFailed));
        }
        return false;
    }
    if !(memory.rejoin.was_master || memory.fence.state.fenced().is_some()) {
        return false;
    }
    // Never stop a primary that takes writes: the fence rules decide about it.
    let connected_primary = own_state.connection && own_state.in_recovery() == Some(false);
    !(connected_primary && memory.fence.state.fenced().is_none())
}
