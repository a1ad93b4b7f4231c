//! The planned switchover (`pglookout-ctl switchover`, issue 22), the part the decision loop
//! owns. Pure. The old primary's daemon runs the steps (`act::switchover`): it announces the
//! switchover in its node's entry, stops its node cleanly, reads the final position from the
//! control file, and asks the target's daemon to promote. Here:
//!
//! - [`held`]: while a switchover runs (ours, or announced by the current master's daemon in a
//!   fresh report), the planned stop is no failure: no failover command, no fence, no rejoin,
//!   no cut of our standby's WAL receiver. The announcing daemon's own node also does not
//!   follow (its steps bring it back). An announcement is honoured for at most
//!   [`MAX_SWITCHOVER_SECS`] past its start, however long it says.
//! - [`promote`]: at the target's daemon, the request to promote. It promotes only when a
//!   poll made after the request shows our node a standby that has received the old primary's
//!   final position and the old primary not answering as a primary, with no other connected
//!   primary, within the request's window; never twice for one request, never after the old
//!   primary's daemon withdrew it ([`SwitchoverMemory::withdraw`]).

use super::memory::Memory;
use super::node_map::NodeMap;
use super::types::{done, End, Out, View};
use super::voters::fresh_reports;
use crate::config::Config;
use crate::lsn::Lsn;
use crate::state::{iso, NodeState};
use std::collections::BTreeMap;

/// The longest a switchover may hold the cluster, whatever its announcement says.
pub const MAX_SWITCHOVER_SECS: f64 = 900.0;

pub use super::memory::{PromoteRequest, RequestState, SwitchoverMemory, Withdrawn};

/// Whether a switchover holds our rules this round (see the module doc), with the reason.
pub(super) fn held(view: &View, config: &Config, memory: &mut Memory, out: &mut Out) -> bool {
    memory.switchover.held = holds(view, config, memory, out);
    memory.switchover.held
}

fn holds(view: &View, config: &Config, memory: &mut Memory, out: &mut Out) -> bool {
    let seconds = |from: &crate::state::Timestamp, to: &crate::state::Timestamp| {
        to.signed_duration_since(*from).num_milliseconds() as f64 / 1000.0
    };
    if let Some(own) = &memory.switchover.own {
        // the steps end it; a crashed task must not hold us for ever
        if seconds(&own.since, &view.wall_now) < MAX_SWITCHOVER_SECS {
            out.why(format!(
                "our switchover to {} runs ({}): no failover, fence, follow or rejoin meanwhile",
                own.to, own.step
            ));
            return true;
        }
        out.why(format!(
            "our switchover to {} outlived {MAX_SWITCHOVER_SECS} s: dropped",
            own.to
        ));
        memory.switchover.own = None;
    }
    let Some(master) = memory.current_master.as_deref() else {
        return false;
    };
    let announced = fresh_reports(view.observers, config, view.wall_now)
        .filter(|(name, _)| name.as_str() == master)
        .find_map(|(_, o)| o.nodes.get(master)?.switchover.as_ref());
    match announced {
        Some(s)
            if s.from == master
                && view.wall_now < s.until
                && seconds(&s.since, &view.wall_now) < MAX_SWITCHOVER_SECS =>
        {
            out.why(format!(
                "{master}'s daemon announces a switchover to {} (since {}, {}): its stop is planned, no failover meanwhile",
                s.to,
                iso(&s.since),
                s.step
            ));
            true
        }
        _ => false,
    }
}

/// What [`promote`] says to do this round.
pub(super) enum Promote {
    /// End the round so.
    End(End),
    /// Every condition held: run the failover command for this reason.
    Launch(String),
}

/// The promotion request at the target's daemon (see the module doc). `None`: no request to
/// act on.
pub(super) fn promote(
    view: &View,
    config: &Config,
    memory: &mut Memory,
    nodes: &BTreeMap<String, NodeState>,
    map: &NodeMap,
    out: &mut Out,
) -> Option<Promote> {
    let own_db = config.own_db.clone()?;
    let r = memory.switchover.request.clone()?;
    if r.state != RequestState::Asked {
        return None;
    }
    let end = |memory: &mut Memory, out: &mut Out, why: String| {
        if let Some(r) = memory.switchover.request.as_mut() {
            r.state = RequestState::Ended { ok: false };
        }
        out.why(why.clone());
        Some(Promote::End(done(format!("switchover: not promoting {own_db}: {why}"))))
    };
    if view.mono_now - r.asked > r.window {
        return end(memory, out, format!("the request from {}'s daemon lapsed", r.from));
    }
    if config.never_promote_these_nodes.contains(&own_db) {
        return end(memory, out, "never_promote_these_nodes lists our node".into());
    }
    if memory.paused() {
        return end(memory, out, "the cluster is paused".into());
    }
    let wait = |out: &mut Out, why: String| {
        out.why(why);
        Some(Promote::End(done(format!("switchover: waiting to promote {own_db}"))))
    };
    if view.poll_round <= r.round {
        return wait(out, "waiting for a poll round after the request".into());
    }
    if view.failover_running {
        return wait(out, "a failover command runs".into());
    }
    let own = nodes.get(&own_db).filter(|n| n.connection).and_then(|n| n.pg.as_ref());
    let Some(own) = own.filter(|p| p.pg_is_in_recovery) else {
        return wait(out, "our node is not a connected standby".into());
    };
    let received = own.pg_last_xlog_receive_location.max(own.pg_last_xlog_replay_location);
    if received.is_none_or(|l| l < r.lsn) {
        return wait(
            out,
            format!(
                "our node has received up to {}, not yet {}'s final position {}",
                received.map(|l| l.to_string()).unwrap_or_else(|| "nothing".into()),
                r.from,
                r.lsn
            ),
        );
    }
    if let Some(primary) = map.connected_masters.keys().next() {
        return wait(out, format!("{primary} answers as a connected primary"));
    }
    let why = format!(
        "switchover from {}: it stopped cleanly at {}, our node has received up to {}",
        r.from,
        r.lsn,
        received.map(|l| l.to_string()).unwrap_or_default()
    );
    if let Some(req) = memory.switchover.request.as_mut() {
        req.state = RequestState::Running;
    }
    Some(Promote::Launch(why))
}

/// The default lag limit of a switchover's target without `max_failover_lag_bytes`: 16 MiB,
/// one WAL segment.
pub const DEFAULT_SWITCHOVER_LAG_BYTES: u64 = 16 * 1024 * 1024;

/// Checks a switchover request at the old primary's daemon: our node is the connected primary
/// we know, nothing else runs, the keys the steps need are set, and the target (`to`, or the
/// best standby: furthest along, then `failover_priorities`, then name) is a connected standby
/// within the lag limit, with its daemon among our observers and in no maintenance. `Ok`: the
/// target. `Err`: why not; nothing was changed.
pub fn check_request(
    config: &Config,
    memory: &Memory,
    nodes: &BTreeMap<String, NodeState>,
    observers: &BTreeMap<String, crate::state::ObserverState>,
    wall_now: crate::state::Timestamp,
    failover_running: bool,
    to: Option<&str>,
) -> Result<String, String> {
    let Some(own) = config.own_db.as_deref() else {
        return Err("an observer runs no switchover: ask the primary's daemon".into());
    };
    let primary_lsn = nodes
        .get(own)
        .filter(|n| n.connection)
        .and_then(|n| n.pg.as_ref())
        .filter(|p| !p.pg_is_in_recovery)
        .and_then(|p| p.pg_last_xlog_replay_location);
    let Some(primary_lsn) = primary_lsn.filter(|_| memory.current_master.as_deref() == Some(own)) else {
        let master = memory.current_master.as_deref().unwrap_or("not known");
        return Err(format!(
            "our node {own} is not the connected primary (the primary: {master}): ask the primary's daemon"
        ));
    };
    if memory.paused() {
        return Err("the cluster is paused: resume it first".into());
    }
    if let Some(s) = &memory.switchover.own {
        return Err(format!("a switchover to {} already runs", s.to));
    }
    if failover_running {
        return Err("a failover runs".into());
    }
    if memory.announces_promotion() {
        return Err(
            "our node's promotion is still announced (not yet seen by every daemon): try again in a few seconds".into(),
        );
    }
    let mut missing = Vec::new();
    if config.pg_data_directory.is_none() {
        missing.push("pg_data_directory");
    }
    if config.pg_stop_command.trim().is_empty() {
        missing.push("pg_stop_command");
    }
    if config.pg_start_command.trim().is_empty() {
        missing.push("pg_start_command");
    }
    if config.primary_conninfo_template.is_none() {
        missing.push("primary_conninfo_template");
    }
    if !missing.is_empty() {
        return Err(format!(
            "a switchover needs {} set on the primary's daemon",
            missing.join(", ")
        ));
    }
    // every node daemon must read our announcement: one that misses it may count the planned
    // stop as an outage and promote another node
    let max_age = super::voters::observer_max_age(config);
    for name in nodes.keys().filter(|n| n.as_str() != own) {
        let fresh = observers
            .get(name)
            .is_some_and(|o| super::voters::fresh_report(o, wall_now, max_age));
        if !config.observers.contains_key(name) || !fresh {
            return Err(format!(
                "{name}'s daemon is not among our observers or does not answer: every node daemon must read the switchover's announcement (the mesh)"
            ));
        }
    }
    let limit = config.max_failover_lag_bytes.unwrap_or(DEFAULT_SWITCHOVER_LAG_BYTES);
    // why each standby cannot be the target, or its position
    let judge = |name: &str| -> Result<Lsn, String> {
        if name == own {
            return Err(format!("{name} is our own node"));
        }
        let Some(n) = nodes.get(name) else {
            return Err(format!("{name} is not in remote_conns"));
        };
        let Some(p) = n.pg.as_ref().filter(|_| n.connection) else {
            return Err(format!("{name} does not answer"));
        };
        if !p.pg_is_in_recovery {
            return Err(format!("{name} answers as a primary"));
        }
        let Some(received) = p.pg_last_xlog_receive_location else {
            return Err(format!("{name} receives no WAL from the primary"));
        };
        if config.never_promote_these_nodes.iter().any(|x| x == name) {
            return Err(format!("never_promote_these_nodes lists {name}"));
        }
        // its daemon is a fresh observer of ours (the mesh check above)
        if observers
            .get(name)
            .and_then(|o| o.nodes.get(name))
            .and_then(|n| n.failover.as_ref())
            .is_some_and(|f| f.standing)
        {
            return Err(format!("{name} is in maintenance (its daemon yields)"));
        }
        let behind = primary_lsn.0.saturating_sub(received.0);
        if behind > limit {
            return Err(format!(
                "{name} is {behind} bytes behind (limit {limit}, max_failover_lag_bytes)"
            ));
        }
        Ok(received)
    };
    match to {
        Some(to) => judge(to).map(|_| to.to_string()),
        None => {
            let mut why = Vec::new();
            let mut best: Option<(Lsn, f64, String)> = None;
            for name in nodes.keys().filter(|n| n.as_str() != own) {
                match judge(name) {
                    Ok(lsn) => {
                        let key = (lsn, config.priority(name), name.clone());
                        if best.as_ref().is_none_or(|b| (key.0, key.1) > (b.0, b.1)) {
                            best = Some(key);
                        }
                    }
                    Err(e) => why.push(e),
                }
            }
            best.map(|(_, _, name)| name)
                .ok_or_else(|| format!("no standby can take over: {}", why.join("; ")))
        }
    }
}
