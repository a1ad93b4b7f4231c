//! The failover decision (upstream §5), as one pure function: [`decide`] takes what the poller
//! saw ([`View`]), the config and what the loop remembers from earlier rounds ([`Memory`]), and
//! returns what should be done ([`Decision`]: actions plus human-readable reasons).
//!
//! Owns: when a failover is allowed (master gone, lag over the limit, recent contact, majority,
//! maintenance mode, backoff after a failed command), which node is furthest along, the
//! replication-lag warning state and its alert, the "ask for a fresh poll before acting on a
//! missing master" handshake, and when to follow a new master.
//!
//! Must not: do I/O, read a clock, log, or keep any state outside [`Memory`]. Wall-clock time
//! ([`View::wall_now`]) is used only where upstream compares it with times written in the node
//! documents (`db_time`, `fetch_time`); every duration between two of our own instants uses
//! [`View::mono_now`].

pub use super::candidacy::{Blocked, Yield};
pub use super::memory::{
    FailoverAttempts, FollowAttempts, Memory, ObserverWait, PendingPoll, FAILOVER_RETRY_INITIAL_SECS,
    FAILOVER_RETRY_MAX_SECS, FOLLOW_RETRY_SECS,
};
use super::node_map::{node_map, NodeMap};
use super::types::{done, secs_between, waiting, End, Mono, Out};
pub use super::types::{Action, Alert, Decision, View};
use super::voters::{connected_primary, failover_timeout, fresh_reports};
use crate::config::{Config, SynchronousMode};
use crate::state::{FailoverPhase, FailoverStatus, NodeState, Timestamp};
use std::collections::{BTreeMap, BTreeSet};

/// A standby whose data is older than this (by `wall_now - fetch_time`) is not a candidate.
pub const CANDIDATE_MAX_AGE_SECS: f64 = 20.0;
/// How many poll intervals we wait for fresh observer data after crossing the warning limit
/// (poll_observers_on_warning_only), as upstream.
pub const OBSERVER_WAIT_POLL_INTERVALS: f64 = 5.0;
/// Extra time past `failover_command_timeout` after which a command we started but never heard
/// back about counts as failed (the shell should always report; this only keeps a lost report
/// from blocking failovers forever).
pub const FAILOVER_RESULT_GRACE_SECS: f64 = 30.0;

/// Makes one decision. See the module doc.
pub fn decide(view: &View, config: &Config, memory: &mut Memory) -> Decision {
    let mut out = Out::default();
    out.actions.append(&mut memory.pending_actions);
    let end = run(view, config, memory, &mut out);

    // Level-triggered, so a reload that flips poll_observers_on_warning_only is picked up.
    let want = !config.poll_observers_on_warning_only || memory.replication_lag_over_warning_limit;
    if memory.observer_polling != Some(want) {
        memory.observer_polling = Some(want);
        out.act(Action::SetObserverPolling(want));
    }

    memory.debug_assert_invariants(config.own_db.as_deref());
    let changed = !end.transient && memory.last_summary.as_deref() != Some(end.summary.as_str());
    if changed {
        // (an unchanged summary is kept as it is: no copy at every decision)
        memory.last_summary = Some(end.summary.clone());
    }
    Decision {
        actions: out.actions,
        reasons: out.reasons,
        summary: end.summary,
        changed,
        master: memory.current_master.clone(),
    }
}

/// One round, from the top: what comes first, the node map, the master's tracking, the fence
/// and rejoin rules, then our own node's decision.
fn run(view: &View, config: &Config, memory: &mut Memory, out: &mut Out) -> End {
    if let Some(end) = before_round(view, config, memory, out) {
        return end;
    }
    // Nodes no longer in the config are not part of the cluster, even if the poller still
    // has them (upstream skipped the round on a count mismatch until the poller dropped them).
    // Usually there are none: then the poller's map is the cluster, uncopied.
    let configured: BTreeMap<String, NodeState>;
    let nodes: &BTreeMap<String, NodeState> = if view.nodes.keys().all(|n| config.remote_conns.contains_key(n)) {
        view.nodes
    } else {
        configured = view
            .nodes
            .iter()
            .filter(|(name, _)| config.remote_conns.contains_key(*name))
            .map(|(name, state)| (name.clone(), state.clone()))
            .collect();
        &configured
    };

    track_settle(view, config, memory, nodes);

    if config.poll_observers_on_warning_only {
        if let Err(why) = master_observer_new_enough(view, config, memory, out) {
            out.why(why);
            return waiting("waiting: observer data for the master predates the lag warning");
        }
    }

    let map = node_map(nodes, view.observers, config.own_db.as_deref(), config.db_poll_interval);
    let paused = super::pause::track(view, config, memory, out);
    // a switchover's planned stop is no failure: held like a pause (the target's promotion
    // has its own rule, below)
    let paused = super::switchover::held(view, config, memory, out) || paused;
    track_master(view, config, memory, out, nodes, &map);
    if !paused {
        if let Some(end) = super::fence::fence(view, config, memory, nodes, &map, out) {
            return end;
        }
    }
    super::sync_manager::manage(view, config, &mut memory.sync, nodes, map.master.as_deref(), out);
    let master = memory.current_master.clone();
    let gone = !paused && gone_for(view, memory, master.as_deref()).is_some();
    super::receiver::manage(view, config, &mut memory.receiver, nodes, master.as_deref(), gone, out);
    if !paused {
        if let Some(end) = super::rejoin::rejoin(view, config, memory, nodes, &map, out) {
            return end;
        }
    }

    match super::switchover::promote(view, config, memory, nodes, &map, out) {
        Some(super::switchover::Promote::End(end)) => return end,
        Some(super::switchover::Promote::Launch(why)) => {
            if let Some(own_db) = config.own_db.as_deref() {
                out.why(why.clone());
                let mut end = launch(view, config, memory, out, own_db, &why);
                end.summary = format!("switchover: promoting {own_db}");
                return end;
            }
        }
        None => {}
    }
    own_node(view, config, memory, out, nodes, &map)
}

/// What comes before looking at the cluster: a failover command that never reported, the end
/// of our promotion announcement, failover_sleep_time, a reloaded config, and a complete poll.
/// `Some` ends the decision.
fn before_round(view: &View, config: &Config, memory: &mut Memory, out: &mut Out) -> Option<End> {
    if let Some(since) = memory.failover.running_since {
        let limit = config.failover_command_timeout + FAILOVER_RESULT_GRACE_SECS;
        if !view.failover_running && view.mono_now - since > limit {
            out.why(format!(
                "no result for the failover command started {:.0} s ago; counting it as failed",
                view.mono_now - since
            ));
            memory.record_failover_result(false, view.mono_now);
        }
    }

    end_promoting(view, config, memory, out);

    if let Some(until) = memory.no_decision_before {
        if view.mono_now < until {
            out.why(format!(
                "failover_sleep_time: {:.1} s left after the failover command",
                until - view.mono_now
            ));
            return Some(done("paused: failover_sleep_time after the failover command"));
        }
        memory.no_decision_before = None;
    }

    if let Some(end) = apply_config_version(view, config, memory, out) {
        return Some(end);
    }

    if config.remote_conns.is_empty() {
        return Some(done("no action: remote_conns is empty"));
    }
    let missing = absent(config.remote_conns.keys(), view.nodes);
    if !missing.is_empty() {
        out.why(format!("not polled yet: {}", missing.join(", ")));
        return Some(done("waiting: not every configured node has been polled yet"));
    }
    None
}

/// Keeps track of the master from this round's node map: yields that end, the multiple-master
/// alert, a new master (followed with autofollow), whether our node was the master, follow
/// retries, how long the master has been gone, and the voters' digests.
fn track_master(
    view: &View,
    config: &Config,
    memory: &mut Memory,
    out: &mut Out,
    nodes: &BTreeMap<String, NodeState>,
    map: &NodeMap,
) {
    out.reasons.extend(map.notes.iter().cloned());
    if !map.connected_masters.is_empty() {
        memory.candidacy.master_connected();
        end_yield(view, config, memory, out, map);
    } else {
        expire_yield(view, config, memory, out);
    }
    if map.multiple_masters {
        let names: Vec<&str> = map.connected_masters.keys().map(String::as_str).collect();
        out.why(format!("more than one connected master: {}", names.join(", ")));
        out.act(Action::CreateAlert(Alert::MultipleMasterWarning));
    }
    let left_alone = |memory: &Memory| super::rejoin::follow_leaves_alone(memory, config, nodes);
    if let Some(master) = &map.master {
        if memory.current_master.as_ref() != Some(master) {
            out.why(format!(
                "new master detected: {} (was {})",
                master,
                memory.current_master.as_deref().unwrap_or("none")
            ));
            memory.current_master = Some(master.clone());
            match config.own_db.as_deref() {
                Some(own) if config.autofollow && own != master => {
                    if left_alone(memory) {
                        out.why(super::rejoin::follow_left_alone_why(config, own));
                    } else {
                        follow(view, memory, out, master);
                    }
                }
                _ => {}
            }
        }
    }
    standing_yield(view, config, memory, out, map);
    super::rejoin::track_was_master(config, memory, nodes);
    if !left_alone(memory) {
        retry_follow(view, config, memory, out);
    }
    track_master_gone(view, config, memory, nodes, map);
    let own_standby = config
        .own_db
        .as_ref()
        .and_then(|own| nodes.get(own))
        .is_some_and(|n| n.connection && n.in_recovery() == Some(true));
    if own_standby && memory.failover.running_since.is_none() && !view.failover_running {
        memory.failover.since_standby = false;
    }
    check_voters(view, config, memory, out);
}

/// The decision of a node daemon (an observer only tracks the master): the lag gauge, our
/// node as the master, and otherwise the failover rules.
fn own_node(
    view: &View,
    config: &Config,
    memory: &mut Memory,
    out: &mut Out,
    nodes: &BTreeMap<String, NodeState>,
    map: &NodeMap,
) -> End {
    let Some(own_db) = config.own_db.as_deref() else {
        // An observer only keeps track of the master.
        return done(match (&memory.current_master, map.multiple_masters) {
            (_, true) => "observer: more than one connected master".to_string(),
            (Some(m), false) => format!("observer: master is {m}"),
            (None, false) => "observer: no master known".to_string(),
        });
    };
    let Some(own) = nodes.get(own_db) else {
        // Cannot happen: own_db is in remote_conns (config validation) and all of those are in.
        return done("waiting: our own node has not been polled yet");
    };

    if !catching_up(own, config, view.mono_now) {
        if let Some(lag) = current_lag(own) {
            out.act(Action::StatsdGauge {
                name: "pg.replication_lag".into(),
                value: lag,
            });
        }
    }

    if memory.current_master.as_deref() == Some(own_db) {
        if !own.connection {
            // Not "we are the master" while our node does not answer: that would hide the outage.
            return done("no action: our node was the master and does not answer; the standbys decide");
        }
        if own.in_recovery() != Some(true) {
            return done("no action: we are the master");
        }
        // Back in recovery (a fence that leaves `standby.signal`, restarted by its supervisor):
        // read-only, a standby like the others for the failover rules, and likely the
        // furthest along.
        out.why(format!("{own_db}, the master we knew, answers in recovery"));
    }
    if map.standbys.is_empty() {
        return done("no action: no standby nodes");
    }
    consider_failover(view, config, memory, out, map, own_db, own)
}

/// Ends our "promoting" announcement after a successful failover command: once our own poll
/// has shown our node as a connected primary for a poll period and a probe timeout, by when
/// every other daemon's own poll shows it too (their poll of a standby wins over our report),
/// so that a daemon sees the promotion or its result, never neither. A command that reported
/// success but did not promote keeps it for `failover_command_timeout` at most.
fn end_promoting(view: &View, config: &Config, memory: &mut Memory, out: &mut Out) {
    let (Some(done_at), None, true) = (
        memory.failover.last_success,
        memory.failover.running_since,
        memory.announces_promotion(),
    ) else {
        return;
    };
    let own_primary = config
        .own_db
        .as_ref()
        .and_then(|own| view.nodes.get(own))
        .is_some_and(|n| n.connection && n.in_recovery() == Some(false));
    if own_primary {
        memory.failover.primary_seen_at.get_or_insert(view.mono_now);
    }
    match memory.failover.primary_seen_at {
        Some(seen) => {
            if view.mono_now - seen >= config.db_poll_interval + config.db_poll_timeout {
                memory.candidacy.stop_announcing();
            }
        }
        None => {
            if view.mono_now - done_at > config.failover_command_timeout {
                out.why(format!(
                    "the failover command succeeded {:.0} s ago but our node is not seen as a primary: no longer announcing the promotion",
                    view.mono_now - done_at
                ));
                memory.candidacy.stop_announcing();
            }
        }
    }
}

/// Takes back our yield once a master is connected again: another one (the failover it made
/// way for happened), or the one we yielded against, once any promotion started on our yield
/// has had its `failover_command_timeout` and we our `failover_fallback_timeout` on top.
fn end_yield(view: &View, config: &Config, memory: &mut Memory, out: &mut Out, map: &NodeMap) {
    // a standing yield lasts as long as our maintenance file (`standing_yield`)
    if memory.candidacy.standing() {
        return;
    }
    let Some(at) = memory.candidacy.turn().since() else {
        return;
    };
    // the master we yielded against is still the one we knew (a round without one keeps it)
    let other = map
        .connected_masters
        .keys()
        .any(|m| Some(m) != memory.current_master.as_ref());
    let waited = match memory.candidacy.turn() {
        Yield::Withdrawn { withdrawn, .. } => view.mono_now - withdrawn >= yield_quiet_secs(config),
        _ => view.mono_now - at >= config.failover_command_timeout + config.failover_fallback_timeout.unwrap_or(0.0),
    };
    if other || waited {
        let names: Vec<&str> = map.connected_masters.keys().map(String::as_str).collect();
        out.why(format!(
            "master {} is connected: our yield of {:.0} s ago ends",
            names.join(", "),
            view.mono_now - at
        ));
        memory.candidacy.end_yield();
    }
}

/// Our maintenance file means now (docs/safety.md, "Standing yield"): from the first decision
/// that sees it, our node is no candidate, and we say so in our `/state.json` entry (a
/// standing `yielded`), so that the next candidate's daemon promotes its node within the usual
/// window, not after `failover_fallback_timeout`. It only removes a candidate: we run no
/// failover command while it stands, and once the file goes we withdraw it like any yield
/// nobody acted on (no failover command for [`yield_quiet_secs`] more), or, if a promotion was
/// announced on it meanwhile, keep it as an ordinary yield until a master is connected.
/// Not while our failover command runs or its promotion is announced (we may be promoting),
/// nor after a failed failover command (the command may have left a promotion pending: the
/// file is then a block as before, and the yield after `failover_fallback_timeout` waits for
/// the settle rule); not with `failover_fallback_timeout` null (the original's behaviour),
/// nor when our node is the master we know. And, as for any yield, only with another
/// candidate in sight when it starts ([`another_candidate`]): without one it would stop no
/// failover but our own, and cost a quiet period when the file goes.
fn standing_yield(view: &View, config: &Config, memory: &mut Memory, out: &mut Out, map: &NodeMap) {
    let Some(own_db) = config.own_db.as_deref() else {
        return;
    };
    let want = view.maintenance_seen
        && config.failover_fallback_timeout.is_some()
        && memory.current_master.as_deref() != Some(own_db);
    let reason = "maintenance_mode_file exists";
    match memory.candidacy.turn() {
        Yield::Ours if want => {
            if view.failover_running || memory.failover.running_since.is_some() || memory.announces_promotion() {
                out.why("maintenance_mode_file exists, but our failover command runs or its promotion is announced: no standing yield while it is");
                return;
            }
            if memory.failover.failures.last.is_some() {
                out.why("maintenance_mode_file exists, but our failover command failed since it last succeeded: no standing yield (the fallback's yield waits for a pending promotion to show)");
                return;
            }
            if !another_candidate(view, config, memory, map, own_db) {
                out.why(
                    "maintenance_mode_file exists; no other standby could take over from our node: no standing yield",
                );
                return;
            }
            out.why("maintenance_mode_file exists: our node is no candidate, and we publish a standing yield until the file is removed");
            memory.candidacy.stand_aside(
                FailoverStatus {
                    phase: FailoverPhase::Yielded,
                    master: memory.current_master.clone(),
                    reason: reason.to_string(),
                    since: view.wall_now,
                    standing: true,
                },
                view.mono_now,
            );
        }
        Yield::Standing { .. } if want => {
            let master = memory.current_master.clone();
            memory.candidacy.confirm_standing(master.as_deref(), view.wall_now);
        }
        Yield::Standing { taken_up: true, .. } => {
            out.why("maintenance_mode_file is gone, but a promotion was announced during our standing yield: it holds until a master is connected");
            memory.candidacy.standing_taken_up_ends(
                FailoverStatus {
                    phase: FailoverPhase::Yielded,
                    master: memory.current_master.clone(),
                    reason: "maintenance_mode_file was removed; a promotion was announced on our standing yield"
                        .to_string(),
                    since: view.wall_now,
                    standing: false,
                },
                view.mono_now,
            );
        }
        Yield::Standing { .. } => {
            out.why(format!(
                "maintenance_mode_file is gone: we withdraw our standing yield, and take our turn back after {:.0} s",
                yield_quiet_secs(config)
            ));
            memory.candidacy.withdraw_yield(view.mono_now);
        }
        _ => {}
    }
}

/// Whether a standby other than ours could take over from it now, by our own polls: connected,
/// fresh, not in `never_promote_these_nodes`, and within [`FALLBACK_TOLERANCE_BYTES`] of the
/// furthest standby, or, with `max_failover_lag_bytes`, within the cap of the master's last
/// known position (none while that is unknown). The same test as the fallback's "another
/// candidate in sight", taken before any loss.
fn another_candidate(view: &View, config: &Config, memory: &Memory, map: &NodeMap, own_db: &str) -> bool {
    let positions = replication_positions(&map.standbys, view.wall_now, &config.never_promote_these_nodes);
    let floor = match config.max_failover_lag_bytes {
        None => fallback_floor(config, &positions),
        Some(cap) => memory
            .current_master
            .as_deref()
            .and_then(|m| master_last_position(view, config, map, m))
            .map_or(u64::MAX, |last| last.saturating_sub(cap)),
    };
    positions
        .range(floor..)
        .flat_map(|(_, names)| names)
        .any(|n| n != own_db)
}

/// How long after we stop serving a yield we still do not promote: a daemon that read it in
/// its last fresh report of us (an observer fetch and a check old) may have started its
/// failover command, which runs at most `failover_command_timeout`, and its node must then be
/// polled as a primary.
pub fn yield_quiet_secs(config: &Config) -> f64 {
    config.failover_command_timeout
        + 2.0 * super::voters::observer_max_age(config)
        + config.db_poll_interval
        + config.db_poll_timeout
}

/// With no master connected, a yield nobody acted on ends in two steps, so that a cluster
/// whose other daemons cannot hear us (not in the mesh, the Python original) is not left
/// without a failover for good once our node could promote again: after
/// `failover_fallback_timeout` with no promotion reported anywhere we stop serving it, and
/// after [`yield_quiet_secs`] more (any promotion started on it has then ended and shows as a
/// primary) our turn comes back.
fn expire_yield(view: &View, config: &Config, memory: &mut Memory, out: &mut Out) {
    let quiet = yield_quiet_secs(config);
    match memory.candidacy.turn() {
        Yield::Ours => {}
        // never withdrawn on time: it lasts as long as our maintenance file (`standing_yield`)
        Yield::Standing { taken_up, .. } => {
            let own = config.own_db.as_deref().unwrap_or_default();
            if !taken_up && promoting_elsewhere(view, config, own).is_some() {
                memory.candidacy.yield_taken_up();
                out.why("another daemon announced a promotion during our standing yield: it holds until a master is connected");
            }
        }
        Yield::Served { at, taken_up } => {
            // the others had as long to act on it as we waited before giving it
            let hold = config.failover_fallback_timeout.unwrap_or(0.0);
            let own = config.own_db.as_deref().unwrap_or_default();
            if taken_up || promoting_elsewhere(view, config, own).is_some() {
                memory.candidacy.yield_taken_up();
                out.why("another daemon announced a promotion after our yield: it holds until a master is connected");
                return;
            }
            if view.mono_now - at < hold {
                return;
            }
            out.why(format!(
                "no promotion followed our yield of {:.0} s ago: we stop serving it, and take our turn back after {quiet:.0} s",
                view.mono_now - at
            ));
            memory.candidacy.withdraw_yield(view.mono_now);
        }
        Yield::Withdrawn { withdrawn, .. } if view.mono_now - withdrawn >= quiet => {
            out.why("no promotion followed our yield: our turn is back");
            // we deferred to the next candidate only because we had yielded; a promotion of
            // it started on our yield would have shown by now
            memory.candidacy.turn_back();
        }
        Yield::Withdrawn { withdrawn, .. } => out.why(format!(
            "our yield was withdrawn {:.0} s ago: our turn comes back after {quiet:.0} s",
            view.mono_now - withdrawn
        )),
    }
}

/// A node's replication lag as of its latest poll: unknown when that poll failed (its last
/// known lag is kept in the state, as upstream, but it says nothing about now).
fn current_lag(node: &NodeState) -> Option<f64> {
    node.pg
        .as_ref()
        .filter(|_| node.connection)
        .and_then(|p| p.replication_time_lag)
}

/// Keeps [`Memory::master_gone_since`]: a strict majority of the voters (`decide::voters`)
/// freshly reports the master we would replace gone (or, with none seen since start, no
/// connected primary), and no view we trust has a connected master; since the first decision
/// that saw it, on our monotonic clock.
fn track_master_gone(
    view: &View,
    config: &Config,
    memory: &mut Memory,
    nodes: &BTreeMap<String, NodeState>,
    map: &NodeMap,
) {
    let master = memory.current_master.clone();
    let gone = map.connected_masters.is_empty() && {
        let (votes, of) = super::voters::count(view, config, nodes, |v| {
            super::voters::reports_master_gone(v, master.as_deref())
        });
        super::voters::strict_majority(votes, of)
    };
    match &memory.master_gone_since {
        Some((m, _)) if gone && *m == master => {}
        _ if gone => memory.master_gone_since = Some((master, view.mono_now)),
        _ => memory.master_gone_since = None,
    }
}

/// How long the voters' majority has reported `master` gone, by our monotonic clock.
fn gone_for(view: &View, memory: &Memory, master: Option<&str>) -> Option<f64> {
    match &memory.master_gone_since {
        Some((m, t0)) if m.as_deref() == master => Some(view.mono_now - *t0),
        _ => None,
    }
}

/// Compares the voter-set digests in the voters' fresh reports with ours: each node daemon's
/// own, in its node's entry of its own report, and those relayed by the daemons it fetches
/// from (in its node's entry of theirs: node daemons that list only dedicated observers never
/// read each other). Daemons that count different sets can hold a lease and promote at once,
/// so while one differs we raise `voters_mismatch` and do not promote (see
/// `do_failover_decision`). A daemon seen to differ stays so until a fresh report shows it
/// counting ours, not merely until it is out of sight (a split that cuts us from the one
/// observer that relayed it is when it matters), or until our config is reloaded. Daemons
/// that publish none (dedicated observers, the Python original) are not compared.
fn check_voters(view: &View, config: &Config, memory: &mut Memory, out: &mut Out) {
    let clear = |memory: &mut Memory, out: &mut Out| {
        if !std::mem::take(&mut memory.voters_mismatch).is_empty() {
            out.act(Action::DeleteAlert(Alert::VotersMismatch));
        }
    };
    if config.fence_command.is_none() || config.own_db.is_none() {
        clear(memory, out);
        return;
    }
    if memory.voters_checked_config != Some(view.config_version) {
        // a reload: what differed from our old set says nothing of the new one
        memory.voters_checked_config = Some(view.config_version);
        clear(memory, out);
    }
    let ours = super::voters::digest(config);
    let own = config.own_db.as_deref();
    let mut differ = std::collections::BTreeSet::new();
    let mut agree = std::collections::BTreeSet::new();
    for (_, o) in fresh_reports(view.observers, config, view.wall_now) {
        for (node, n) in o.nodes.iter() {
            match n.voters.as_deref() {
                Some(_) if Some(node.as_str()) == own => {}
                Some(d) if d == ours => {
                    agree.insert(node.clone());
                }
                Some(_) => {
                    differ.insert(node.clone());
                }
                None => {}
            }
        }
    }
    let was = std::mem::take(&mut memory.voters_mismatch);
    let mut now: Vec<String> = was
        .iter()
        .filter(|n| !agree.contains(*n) || differ.contains(*n))
        .cloned()
        .collect();
    now.extend(differ.iter().filter(|n| !was.contains(n)).cloned());
    now.sort();
    if now.is_empty() {
        if !was.is_empty() {
            out.why("every node daemon that publishes its voter set counts the same set as we do again");
            out.act(Action::DeleteAlert(Alert::VotersMismatch));
        }
        return;
    }
    let names: Vec<String> = super::voters::names(config).into_iter().collect();
    out.why(format!(
        "the daemons of {} count a different voter set than ours ({}, digest {ours}): no promotion until they agree",
        now.join(", "),
        names.join(", ")
    ));
    if was.is_empty() {
        out.act(Action::CreateAlert(Alert::VotersMismatch));
    }
    memory.voters_mismatch = now;
}

fn follow(view: &View, memory: &mut Memory, out: &mut Out, master: &str) {
    if memory.switchover.own.is_some() {
        // our switchover's own steps make our node a standby of the new primary
        out.why(format!(
            "our switchover makes our node a standby of {master}: no autofollow"
        ));
        return;
    }
    if memory.paused() {
        // due again at once after the resume (retry_follow)
        out.why(format!("paused: not following {master} yet"));
        memory.follow.failed = Some(master.to_string());
        memory.follow.last_attempt = None;
        return;
    }
    memory.follow.last_attempt = Some(view.mono_now);
    out.act(Action::FollowMaster {
        master: master.to_string(),
    });
}

/// Tries again to follow the current master after a failed attempt.
fn retry_follow(view: &View, config: &Config, memory: &mut Memory, out: &mut Out) {
    let Some(failed) = memory.follow.failed.clone() else {
        return;
    };
    let still_wanted = config.autofollow
        && memory.current_master.as_ref() == Some(&failed)
        && config.own_db.as_ref().is_some_and(|own| *own != failed);
    if !still_wanted {
        memory.follow.failed = None;
        return;
    }
    let due = memory
        .follow
        .last_attempt
        .is_none_or(|t| view.mono_now - t >= FOLLOW_RETRY_SECS);
    if due {
        out.why(format!("following {failed} failed last time; trying again"));
        follow(view, memory, out, &failed);
    }
}

/// Acts on a new config version (the first one seen included). `Some` ends this decision.
fn apply_config_version(view: &View, config: &Config, memory: &mut Memory, out: &mut Out) -> Option<End> {
    if memory.applied_config_version != Some(view.config_version) {
        let first = memory.applied_config_version.is_none();
        memory.applied_config_version = Some(view.config_version);
        // Re-point at the master we know, so that a changed template (e.g. a rotated
        // password) takes effect. Upstream did this whatever `autofollow` said, and failed
        // on every loop without a template; we only do it when autofollow is on.
        if let (Some(own), Some(master)) = (config.own_db.as_ref(), memory.current_master.as_ref()) {
            if own != master {
                if config.autofollow && super::rejoin::follow_leaves_alone(memory, config, view.nodes) {
                    out.why(format!(
                        "config version {}: {}",
                        view.config_version,
                        super::rejoin::follow_left_alone_why(config, own)
                    ));
                } else if config.autofollow {
                    out.why(format!(
                        "config version {}: following {master} again",
                        view.config_version
                    ));
                    let master = master.clone();
                    follow(view, memory, out, &master);
                } else if !first {
                    out.why("config reloaded; autofollow is off, primary_conninfo left alone");
                }
            }
        }
        if !first {
            // Never decide on data polled under the old config.
            out.act(Action::RequestPoll);
            memory.reload_poll = Some(PendingPoll {
                round: view.poll_round,
                at: view.mono_now,
            });
            return Some(waiting("waiting: config reloaded, asked for a fresh poll"));
        }
    }
    if let Some(p) = memory.reload_poll {
        // Like upstream, waiting is bounded by one check interval: the checks below still
        // hold (every node polled, fresh poll before acting on a missing master).
        if view.poll_round > p.round || view.mono_now - p.at >= config.replication_state_check_interval {
            memory.reload_poll = None;
        } else {
            return Some(waiting("waiting: config reloaded, asked for a fresh poll"));
        }
    }
    None
}

/// poll_observers_on_warning_only: after crossing the warning limit we start polling the
/// observers; before deciding, wait (at most 5 poll intervals) until the observer named like
/// the current master has been fetched since then. Upstream had the time test inverted.
fn master_observer_new_enough(view: &View, config: &Config, memory: &Memory, out: &mut Out) -> Result<(), String> {
    if !memory.replication_lag_over_warning_limit {
        return Ok(());
    }
    let Some(master) = memory.current_master.as_ref() else {
        return Ok(());
    };
    if !config.observers.contains_key(master) {
        out.why(format!(
            "replication lag over the warning limit; the master {master} is not polled as an observer"
        ));
        return Ok(());
    }
    let Some(since) = memory.observer_state_newer_than else {
        return Ok(());
    };
    let waited = view.mono_now - since.mono;
    if waited >= OBSERVER_WAIT_POLL_INTERVALS * config.db_poll_interval {
        out.why(format!(
            "stopped waiting for fresh data from observer {master} after {waited:.1} s"
        ));
        return Ok(());
    }
    match view.observers.get(master) {
        None => Err(format!("observer {master} has not been polled yet")),
        Some(o) if o.fetch_time < since.wall => Err(format!(
            "observer {master} was last polled before the lag warning ({waited:.1} s ago)"
        )),
        Some(_) => Ok(()),
    }
}

/// Still restoring or catching up after replication started: no lag alerts, metrics or
/// lag-based failover yet. True unless replication started more than
/// `replication_catchup_timeout` ago, or the node has been within the warning limit once.
fn catching_up(state: &NodeState, config: &Config, mono_now: Mono) -> bool {
    let warning = config.warning_replication_time_lag;
    if let Some(start) = state.replication_start_time {
        if start != 0.0 && mono_now - Mono(start) > config.replication_catchup_timeout {
            return false;
        }
    }
    let received = state
        .pg
        .as_ref()
        .is_some_and(|p| p.pg_last_xlog_receive_location.is_some());
    if !received {
        return true;
    }
    state.min_replication_time_lag.unwrap_or(warning) >= warning
}

/// The names in `wanted` that `have` has no entry for (never polled or fetched).
fn absent<'a, V>(wanted: impl Iterator<Item = &'a String>, have: &BTreeMap<String, V>) -> Vec<&'a str> {
    wanted.filter(|n| !have.contains_key(*n)).map(String::as_str).collect()
}

fn consider_failover(
    view: &View,
    config: &Config,
    memory: &mut Memory,
    out: &mut Out,
    map: &NodeMap,
    own_db: &str,
    own: &NodeState,
) -> End {
    let master = map.master_state();
    let master_missing = master.is_none_or(|m| !m.connection);
    if !master_missing {
        memory.missing_master_poll = None;
        if memory.failover_blocked.take().is_some() {
            out.act(Action::DeleteAlert(Alert::FailoverBlocked));
        }
        return check_replication_lag(view, config, memory, out, map, own_db, own);
    }
    if !map.connected_masters.is_empty() {
        // Several connected masters: upstream asked for a fresh poll and then returned since
        // a connected master existed; we skip the poll, the outcome is the same.
        memory.missing_master_poll = None;
        return done("no failover: more than one connected master");
    }

    if !config.failover_on_disconnect && master.is_some() {
        memory.missing_master_poll = None;
        out.why("master is disconnected; failover_on_disconnect is off, only the lag counts");
        out.act(Action::StatsdCount {
            name: "failover_decision_on_disconnect_not_taken".into(),
        });
        return check_replication_lag(view, config, memory, out, map, own_db, own);
    }

    let Some(current) = memory.current_master.clone() else {
        return no_master_since_start(view, config, memory, out, map, own_db);
    };
    if let Some(end) = fresh_poll_first(view, config, memory, out, &current) {
        return end;
    }

    let gone = config.known_gone_nodes.contains(&current);
    let since_change = view.mono_now - memory.cluster_nodes_change_time;
    if gone || since_change >= config.missing_master_from_config_timeout {
        let why = if gone {
            format!("master {current} is missing and listed in known_gone_nodes")
        } else {
            format!("master {current} is missing")
        };
        out.why(why.clone());
        return do_failover_decision(view, config, memory, out, map, own_db, &why);
    }
    let what = if memory.cluster_nodes_reloaded {
        "remote_conns changed"
    } else {
        "the daemon started"
    };
    out.why(format!(
        "master {current} is missing, but {what} {since_change:.1} s ago (grace {} s)",
        config.missing_master_from_config_timeout
    ));
    check_replication_lag(view, config, memory, out, map, own_db, own)
}
/// No master has been seen since the start: decide as upstream (scenario 12) only once no
/// configured node can be a primary we never reached, every observer has answered, and none
/// reaches a primary.
fn no_master_since_start(
    view: &View,
    config: &Config,
    memory: &mut Memory,
    out: &mut Out,
    map: &NodeMap,
    own_db: &str,
) -> End {
    // Upstream decides at once when no master was seen since start (scenario 12: every
    // node was reached and none is a primary). But a node we have never reached may be
    // the primary, alive behind a network blip while we (re)started: not knowing is no
    // reason to promote, so then we wait as long as for a master that vanished.
    let unreached: Vec<&str> = config
        .remote_conns
        .keys()
        .map(String::as_str)
        .filter(|n| Some(*n) != Some(own_db) && view.nodes.get(*n).and_then(NodeState::in_recovery).is_none())
        .collect();
    let waited = view.mono_now - memory.cluster_nodes_change_time;
    if !unreached.is_empty() && waited < config.max_failover_replication_time_lag {
        out.why(format!(
            "never reached {}, which may be a live primary; deciding only after {} s without a master ({waited:.0} s so far)",
            unreached.join(", "),
            config.max_failover_replication_time_lag
        ));
        return done("no failover: no master seen since start, and some nodes never reached");
    }
    // The observers may know a primary we do not: a daemon restarted after a reload took
    // the primary out of its config would otherwise find every configured node a standby
    // and promote at once. Wait for every observer's first answer, and take a connected
    // primary in a fresh report as one, in our config or not.
    let observers_polled = !config.poll_observers_on_warning_only || memory.replication_lag_over_warning_limit;
    if observers_polled {
        // heard: one parsed answer at least (an entry made by a failed first fetch is no
        // answer)
        let unheard: Vec<&str> = config
            .observers
            .keys()
            .filter(|n| {
                !view
                    .observers
                    .get(*n)
                    .is_some_and(|o| o.connection || !o.nodes.is_empty())
            })
            .map(String::as_str)
            .collect();
        if !unheard.is_empty() {
            out.why(format!("not heard from yet: observers {}", unheard.join(", ")));
            return done("no failover: no master seen since start, and some observers not heard from yet");
        }
    }
    if let Some((node, observer)) = observed_primaries(view, config).next() {
        return done(format!(
            "no failover: no master seen since start, but observer {observer} reaches {node} as a connected primary"
        ));
    }
    out.why("no master has been seen since start");
    do_failover_decision(
        view,
        config,
        memory,
        out,
        map,
        own_db,
        "no master has been seen since start",
    )
}

/// Before acting on a missing master, look again: ask for a poll and decide on the first round
/// that completes after the request. Upstream blocked here; we come back instead. `Some` ends
/// the decision (waiting for the poll, or it never came).
fn fresh_poll_first(view: &View, config: &Config, memory: &mut Memory, out: &mut Out, current: &str) -> Option<End> {
    match memory.missing_master_poll {
        None => {
            out.why(format!(
                "master {current} is missing or disconnected; asking for a fresh poll"
            ));
            out.act(Action::RequestPoll);
            memory.missing_master_poll = Some(PendingPoll {
                round: view.poll_round,
                at: view.mono_now,
            });
            return Some(waiting(format!(
                "waiting: master {current} is missing, asked for a fresh poll"
            )));
        }
        Some(p) if view.poll_round > p.round => {
            memory.missing_master_poll = None;
        }
        Some(p) if view.mono_now - p.at >= config.missing_master_from_config_timeout => {
            memory.missing_master_poll = None;
            out.why(format!(
                "no poll completed within missing_master_from_config_timeout ({} s) of asking",
                config.missing_master_from_config_timeout
            ));
            return Some(done(format!(
                "no failover: master {current} is missing but no fresh poll came in time"
            )));
        }
        Some(_) => {
            return Some(waiting(format!(
                "waiting: master {current} is missing, asked for a fresh poll"
            )));
        }
    }
    None
}

fn check_replication_lag(
    view: &View,
    config: &Config,
    memory: &mut Memory,
    out: &mut Out,
    map: &NodeMap,
    own_db: &str,
    own: &NodeState,
) -> End {
    if catching_up(own, config, view.mono_now) {
        return done("no action: still catching up with the master");
    }
    if !own.connection {
        return done("no action: own replication lag is unknown (our node does not answer)");
    }
    // 0.0 is a real lag (upstream took it for "unknown"): only a missing value is unknown.
    let Some(lag) = current_lag(own) else {
        return done("no action: own replication lag is unknown");
    };
    let warning = config.warning_replication_time_lag;
    let limit = config.max_failover_replication_time_lag;
    if lag >= warning {
        out.why(format!(
            "replication lag {lag:.1} s is over the warning limit {warning} s"
        ));
        if !memory.replication_lag_over_warning_limit {
            memory.replication_lag_over_warning_limit = true;
            if config.poll_observers_on_warning_only {
                memory.observer_state_newer_than = Some(ObserverWait {
                    wall: view.wall_now,
                    mono: view.mono_now,
                });
            }
            out.act(Action::CreateAlert(Alert::ReplicationDelayWarning));
            if config.over_warning_limit_command.is_some() {
                out.act(Action::RunWarningCommand);
            }
            // Always one more round between the warning and a failover.
            return done("warning: replication lag went over the warning limit");
        }
    } else if memory.replication_lag_over_warning_limit {
        out.why(format!(
            "replication lag {lag:.1} s is back under the warning limit {warning} s"
        ));
        memory.replication_lag_over_warning_limit = false;
        memory.observer_state_newer_than = None;
        out.act(Action::DeleteAlert(Alert::ReplicationDelayWarning));
    }
    if lag >= limit {
        let why = format!("replication lag {lag:.1} s is over max_failover_replication_time_lag {limit} s");
        out.why(why.clone());
        return do_failover_decision(view, config, memory, out, map, own_db, &why);
    }
    if lag >= warning {
        done("no action: replication lag is over the warning limit, under the failover limit")
    } else {
        done("no action: replication lag is under the warning limit")
    }
}

/// The standbys' replication positions: names by position.
type Positions = BTreeMap<u64, BTreeSet<String>>;

/// Standbys that may be promoted, by WAL position: reachable, polled within the last
/// [`CANDIDATE_MAX_AGE_SECS`], not in `never_promote`. The position is the receive LSN, else
/// the replay LSN, else 0.
pub fn replication_positions<S: std::borrow::Borrow<NodeState>>(
    standbys: &BTreeMap<String, S>,
    wall_now: Timestamp,
    never_promote: &[String],
) -> BTreeMap<u64, BTreeSet<String>> {
    let mut positions: BTreeMap<u64, BTreeSet<String>> = BTreeMap::new();
    for (name, state) in standbys {
        let state: &NodeState = state.borrow();
        let fresh = secs_between(wall_now, state.fetch_time) < CANDIDATE_MAX_AGE_SECS;
        if !state.connection || !fresh || never_promote.contains(name) {
            continue;
        }
        let pos = state
            .pg
            .as_ref()
            .and_then(|p| p.pg_last_xlog_receive_location.or(p.pg_last_xlog_replay_location))
            .map_or(0, |lsn| lsn.0);
        positions.entry(pos).or_default().insert(name.clone());
    }
    positions
}

/// Connected primaries in the fresh reports of configured observers, as (node, observer),
/// in our config or not.
fn observed_primaries<'a>(view: &'a View, config: &'a Config) -> impl Iterator<Item = (&'a String, &'a String)> + 'a {
    fresh_reports(view.observers, config, view.wall_now).flat_map(|(observer, o)| {
        o.nodes
            .iter()
            .filter(|(_, n)| connected_primary(n))
            .map(move |(node, _)| (node, observer))
    })
}

/// A node of our config, other than ours and the master we are replacing, that a fresh
/// observer report has as a connected primary, with that observer's name.
fn observed_new_primary(view: &View, config: &Config, memory: &Memory, own_db: &str) -> Option<(String, String)> {
    observed_primaries(view, config)
        .find(|(n, _)| {
            n.as_str() != own_db && Some(*n) != memory.current_master.as_ref() && config.remote_conns.contains_key(*n)
        })
        .map(|(n, o)| (n.clone(), o.clone()))
}

/// Standbys we do not reach ourselves (so `replication_positions` left them out) that a fresh
/// report of a configured observer has connected and in recovery, with the furthest position
/// any such report gives. Without them, two standbys that cannot reach each other would each be
/// "furthest along" in its own view and both promote.
fn observed_candidates(
    view: &View,
    config: &Config,
    positions: &BTreeMap<u64, BTreeSet<String>>,
    own_db: &str,
) -> BTreeMap<String, u64> {
    let listed: BTreeSet<&String> = positions.values().flatten().collect();
    let mut found: BTreeMap<String, u64> = BTreeMap::new();
    for name in config.remote_conns.keys() {
        if name == own_db || listed.contains(name) || config.never_promote_these_nodes.contains(name) {
            continue;
        }
        for (_, o) in fresh_reports(view.observers, config, view.wall_now) {
            let Some(n) = o.nodes.get(name) else { continue };
            let Some(pg) = n.pg.as_ref().filter(|p| p.pg_is_in_recovery) else {
                continue;
            };
            if !n.connection || secs_between(view.wall_now, n.fetch_time) >= CANDIDATE_MAX_AGE_SECS {
                continue;
            }
            let pos = pg
                .pg_last_xlog_receive_location
                .or(pg.pg_last_xlog_replay_location)
                .map_or(0, |l| l.0);
            let best = found.entry(name.clone()).or_insert(pos);
            *best = (*best).max(pos);
        }
    }
    found
}

/// `Some((seen, of))` when fewer than half of the fresh reports of configured observers that
/// list our node have it connected. A standby the rest of the cluster cannot see must not
/// promote itself: the others would take it for gone, and one on their side could promote too
/// (an asymmetric partition). Ties pass, as in the majority above; observers that do not list
/// our node, or answer no fresh report, have no say here.
fn unseen_by_most_observers(view: &View, config: &Config, own_db: &str) -> Option<(usize, usize)> {
    let (seen, of) = fresh_reports(view.observers, config, view.wall_now)
        .filter_map(|(_, o)| o.nodes.get(own_db))
        .fold((0, 0), |(seen, of), n| (seen + usize::from(n.connection), of + 1));
    (seen * 2 < of).then_some((seen, of))
}

/// How far behind the furthest of the standbys that yielded their turn, in bytes, another
/// standby may be and still take over when `max_failover_lag_bytes` is unset (1 MiB: what a
/// standby streaming normally trails by; more would throw away acknowledged writes the
/// operator did not agree to lose).
pub const FALLBACK_TOLERANCE_BYTES: u64 = 1 << 20;

/// The lowest position a fallback candidate may have: any with a data-loss cap
/// (`max_failover_lag_bytes`, which [`lag_cap`] checks on whichever is chosen), else within
/// [`FALLBACK_TOLERANCE_BYTES`] of the furthest.
fn fallback_floor(config: &Config, positions: &BTreeMap<u64, BTreeSet<String>>) -> u64 {
    match (config.max_failover_lag_bytes, positions.keys().next_back()) {
        (None, Some(furthest)) => furthest.saturating_sub(FALLBACK_TOLERANCE_BYTES),
        _ => 0,
    }
}

/// The candidate to promote, from the standbys' positions alone (so that daemons that see the
/// same standbys agree on it). Without `max_failover_lag_bytes`, the furthest along, ties to
/// the highest `failover_priorities` entry, then to the highest name: the original's choice,
/// and that of the Python versions that have priorities. With the cap (ours), the highest
/// priority among the standbys within the cap of the furthest one, then the furthest along,
/// then the highest name: an operator who set a cap agreed to lose up to that much for a
/// preferred standby. Whether the old master got further than that is checked on the chosen
/// one afterwards ([`lag_cap`]).
pub fn choose_candidate<'a>(config: &Config, positions: &'a BTreeMap<u64, BTreeSet<String>>) -> Option<&'a String> {
    let window = match (config.max_failover_lag_bytes, positions.keys().next_back()) {
        (Some(cap), Some(furthest)) => furthest.saturating_sub(cap),
        _ => 0,
    };
    let priority_first = config.max_failover_lag_bytes.is_some();
    positions
        .range(window..)
        .flat_map(|(pos, names)| names.iter().map(move |n| (pos, n)))
        .max_by(|(ap, an), (bp, bn)| {
            let by_priority = config.priority(an).total_cmp(&config.priority(bn));
            let by_position = ap.cmp(bp);
            let first = if priority_first {
                by_priority.then(by_position)
            } else {
                by_position.then(by_priority)
            };
            first.then(an.as_str().cmp(bn.as_str()))
        })
        .map(|(_, n)| n)
}

/// The old primary's last known position: the furthest any view we trust (ours, the fresh
/// reports of configured observers) saw it at as a primary.
fn master_last_position(view: &View, config: &Config, map: &NodeMap, master: &str) -> Option<u64> {
    let position = |n: &NodeState| {
        n.pg.as_ref()
            .filter(|p| !p.pg_is_in_recovery)
            .and_then(|p| p.pg_last_xlog_replay_location)
            .map(|l| l.0)
    };
    let ours = map
        .connected_masters
        .get(master)
        .or_else(|| map.disconnected_masters.get(master))
        .and_then(|n| position(n));
    // what a strict majority of the voters saw it at, at least: one wrong observer must not
    // block every capped failover
    let theirs = super::voters::majority_floor(view, config, view.nodes, |v| v.get(master).and_then(position));
    ours.max(theirs)
}

/// What `max_failover_lag_bytes` says of the chosen candidate.
struct Cap {
    /// `Some(every)`: the candidate may not be promoted; `every`: no standby is within the
    /// cap either (or the old master's position is unknown, or no master was seen since
    /// start). `None`: no cap, or within it.
    beyond: Option<bool>,
    /// The lowest position within the cap (0 where it does not apply): only a standby at or
    /// past it could take over from the candidate.
    floor: u64,
}

impl Cap {
    const NONE: Cap = Cap { beyond: None, floor: 0 };
}

/// `max_failover_lag_bytes`, checked on the chosen candidate only, never used to pick another:
/// how far each daemon believes the old master got differs with what it and its observers
/// saw, while the candidate is chosen from the standbys' positions alone, so that daemons that
/// see the same standbys agree on it. A daemon that finds it beyond the cap blocks, which never
/// makes a second primary; dropping the candidate and promoting the next one could.
fn lag_cap(
    view: &View,
    config: &Config,
    memory: &Memory,
    out: &mut Out,
    map: &NodeMap,
    positions: &BTreeMap<u64, BTreeSet<String>>,
    candidate: &str,
) -> Cap {
    let Some(cap) = config.max_failover_lag_bytes else {
        return Cap::NONE;
    };
    // With no master seen since start we cannot tell how much the candidate would lose: the
    // cap is a promise the operator asked for, so block. Taking it as "no cap" would let a
    // failover the cap blocked go ahead after a restart.
    let Some(master) = memory.current_master.as_deref() else {
        out.why(format!(
            "max_failover_lag_bytes {cap}: no master has been seen since start, so no candidate can be shown to be within it"
        ));
        return Cap {
            beyond: Some(true),
            floor: u64::MAX,
        };
    };
    let Some(last) = master_last_position(view, config, map, master) else {
        out.why(format!(
            "max_failover_lag_bytes {cap}: the last position of master {master} is unknown, so no candidate can be shown to be within it"
        ));
        return Cap {
            beyond: Some(true),
            floor: u64::MAX,
        };
    };
    let floor = last.saturating_sub(cap);
    let behind: Vec<(&String, u64)> = positions
        .iter()
        .map(|(pos, names)| (names, last.saturating_sub(*pos)))
        .filter(|(_, lag)| *lag > cap)
        .flat_map(|(names, lag)| names.iter().map(move |n| (n, lag)))
        .collect();
    if !behind.iter().any(|(n, _)| n.as_str() == candidate) {
        return Cap { beyond: None, floor };
    }
    let every = behind.len() == positions.values().map(BTreeSet::len).sum::<usize>();
    let list: Vec<String> = behind
        .iter()
        .map(|(n, lag)| format!("{n} is {lag} bytes behind"))
        .collect();
    out.why(format!(
        "max_failover_lag_bytes {cap} (master {master} last seen at {}): {}",
        crate::lsn::Lsn(last),
        list.join(", ")
    ));
    Cap {
        beyond: Some(every),
        floor,
    }
}

/// Raises the `failover_blocked` alert (once) and ends the decision.
fn cap_blocked(memory: &mut Memory, out: &mut Out, every: bool, candidate: &str) -> End {
    let summary = if every {
        "no failover: every candidate is beyond max_failover_lag_bytes".to_string()
    } else {
        format!("no failover: the candidate {candidate} is beyond max_failover_lag_bytes")
    };
    raise_failover_blocked(memory, out, &summary);
    done(summary)
}

/// Raises the `failover_blocked` alert with `reason` in the file (written again when the
/// reason changes).
fn raise_failover_blocked(memory: &mut Memory, out: &mut Out, reason: &str) {
    if memory.failover_blocked.as_deref() != Some(reason) {
        memory.failover_blocked = Some(reason.to_string());
        out.act(Action::WriteAlert(Alert::FailoverBlocked, reason.to_string()));
    }
}

/// `synchronous_mode` `on` or `strict`: only the standbys known to have every acknowledged
/// write stay candidates ([`super::sync::eligible`], over the old master's synchronous
/// replication as our own poll and each fresh voter's report last saw it), and of those only
/// the furthest along: the rule says the furthest of them has every write, not the others.
/// `Ok` has how many standbys it took out (they still count as known nodes); `Err` says why
/// none is (the failover waits). A standby is named by its node name.
fn synchronous_only(view: &View, config: &Config, map: &NodeMap, positions: &mut Positions) -> Result<usize, String> {
    if config.synchronous_mode == SynchronousMode::Off {
        return Ok(0);
    }
    let master = map.master.as_deref().ok_or("no master is known")?;
    let mut seen: Vec<&crate::state::SyncReplication> = sync_of(view.nodes, master).into_iter().collect();
    for (name, nodes) in super::voters::views(view, config, view.nodes) {
        if Some(name) != config.own_db.as_deref() {
            seen.extend(sync_of(nodes, master));
        }
    }
    let standbys: BTreeSet<String> = super::sync_manager::listable(config, master)
        .into_iter()
        .cloned()
        .collect();
    let reachable: BTreeSet<String> = positions.values().flatten().cloned().collect();
    // a position counts once final (docs/safety.md): the node is cut off from every primary in
    // our latest poll, read before the position; before PostgreSQL 13, where that needs a
    // restart, once reachable
    let settled: BTreeSet<String> = reachable
        .iter()
        .filter(|n| {
            let pg = view
                .nodes
                .get(*n)
                .and_then(|s| s.pg.as_ref().map(|pg| (s.connection, pg.receiver_cut)));
            matches!(pg, Some((true, Some(true)) | (_, None)))
        })
        .cloned()
        .collect();
    let eligible = super::sync::eligible(&seen, &standbys, &settled)?;
    let before = reachable.len();
    positions.retain(|_, at| {
        at.retain(|n| eligible.contains(n));
        !at.is_empty()
    });
    // only the furthest along is known to have them all
    if let Some((&top, _)) = positions.iter().next_back() {
        positions.retain(|at, _| *at == top);
    }
    Ok(before - positions.values().map(BTreeSet::len).sum::<usize>())
}

/// A node's synchronous replication in one view of the cluster, if that view read it.
fn sync_of<'a>(nodes: &'a BTreeMap<String, NodeState>, node: &str) -> Option<&'a crate::state::SyncReplication> {
    nodes.get(node)?.pg.as_ref()?.sync.as_ref()
}

/// The furthest-along candidate: highest position, ties to the highest name (byte order of
/// the UTF-8 names, which is the code-point order upstream's Python comparison uses), so every
/// daemon picks the same node.
pub fn furthest_along(positions: &BTreeMap<u64, BTreeSet<String>>) -> Option<&String> {
    positions
        .values()
        .next_back()
        .and_then(|names| names.iter().next_back())
}

/// The master we would replace and how long ago it was last seen alive, for the lag window
/// without fencing: `db_time`, the master's own clock at our (or an observer's) last
/// successful poll, where a missing one counts as now, as upstream. A master of our config we
/// know of (from an earlier observer report) but have not reached since this daemon started,
/// with no report of it in the map, was seen at the latest just before our start: without a
/// last contact there would be no window at all, and a daemon restarted while its primary was
/// frozen would promote the moment the round completes, while the daemons that kept the
/// contact wait. A master taken out of `remote_conns` or listed in `known_gone_nodes` is the
/// operator's word that it is gone, as upstream.
fn last_contact<'m>(view: &View, config: &Config, memory: &'m Memory, map: &'m NodeMap) -> Option<(&'m String, f64)> {
    if let Some((name, state)) = map.first_disconnected_master() {
        let since = state
            .pg
            .as_ref()
            .and_then(|p| p.db_time)
            .map_or(0.0, |t| secs_between(view.wall_now, t));
        return Some((name, since));
    }
    let name = memory.current_master.as_ref()?;
    let never_reached = view.nodes.get(name).is_some_and(|n| n.in_recovery().is_none());
    let seen = map.standbys.contains_key(name) || map.connected_masters.contains_key(name);
    let gone = config.known_gone_nodes.contains(name);
    (never_reached && !seen && !gone).then_some((name, view.mono_now - memory.started_at))
}

/// The failover window: with `fence_command`, a strict majority of the voters must have
/// reported the master gone for the failover timeout; without, the original's lag window (or
/// `unreachable_master_failover_timeout`). `Some` ends the decision: not yet.
fn failover_window(view: &View, config: &Config, memory: &Memory, out: &mut Out, map: &NodeMap) -> Option<End> {
    if config.fence_command.is_some() {
        // One authority (docs/safety.md): with fencing, every path that promotes (the fast
        // trigger, the lag window with a missing master, no master seen since start, the
        // fallback) waits until a strict majority of the voters has reported the master gone
        // for the failover timeout, on our monotonic clock from the first decision that saw
        // it: the complement of the lease, which the primary keeps while at least half of the
        // same voters vouch for it. Neither another host's clock (db_time) nor the time of our
        // last contact counts: neither tells whether the primary still holds its lease.
        let master = memory.current_master.as_deref();
        let shown = master.unwrap_or("(none seen since start)");
        let limit = failover_timeout(config);
        if memory.manual_failover_asked(view.mono_now) {
            out.why("the operator asked for this failover (pglookout-ctl failover), which never shortens the failover timeout of fence_command: it is the lease's complement");
        }
        match gone_for(view, memory, master) {
            Some(t) if t >= limit => out.why(format!(
                "a strict majority of the voters has reported master {shown} gone for {t:.1} s (failover timeout {limit} s)"
            )),
            Some(t) => {
                out.why(format!(
                    "a strict majority of the voters has reported master {shown} gone for {t:.1} s, under the failover timeout {limit} s"
                ));
                return Some(done(format!("no failover: master {shown} has not been gone long enough")));
            }
            None => {
                let (votes, of) = super::voters::count(view, config, view.nodes, |v| {
                    super::voters::reports_master_gone(v, master)
                });
                out.why(format!(
                    "{votes} of {of} voters report master {shown} gone: a failover needs a strict majority"
                ));
                return Some(done(format!("no failover: no strict majority of the voters reports master {shown} gone")));
            }
        }
    } else if let Some((name, since)) = last_contact(view, config, memory, map) {
        let limit = config.max_failover_replication_time_lag;
        let fast = match (
            gone_for(view, memory, Some(name)),
            config.unreachable_master_failover_timeout,
        ) {
            (Some(gone), Some(t)) if gone >= t => Some((gone, t)),
            _ => None,
        };
        if let Some((unreachable, t)) = fast {
            out.why(format!(
                "master {name} has been reported gone by a strict majority of the voters for {unreachable:.1} s (unreachable_master_failover_timeout {t} s)"
            ));
        } else if since < limit && memory.manual_failover_asked(view.mono_now) {
            out.why(format!(
                "last contact with master {name} was {since:.1} s ago, under max_failover_replication_time_lag {limit} s, but the operator asked for this failover (pglookout-ctl failover): not waiting it out"
            ));
        } else if since < limit {
            out.why(format!(
                "last contact with master {name} was {since:.1} s ago, under max_failover_replication_time_lag {limit} s"
            ));
            return Some(done(format!("no failover: master {name} was reached too recently")));
        }
    }
    None
}

/// A fresh observer report shows the master we would replace, or another node, as a connected
/// primary: no failover (`Some` ends the decision).
fn replaced_already(view: &View, config: &Config, memory: &Memory, own_db: &str) -> Option<End> {
    // The master we would replace is a connected primary in a fresh observer report. The node
    // map already counts that for nodes of our config; this also holds when a reload took the
    // master out of `remote_conns`: leaving our config does not stop a primary.
    if let Some(current) = memory.current_master.as_deref() {
        if let Some((_, observer)) = observed_primaries(view, config).find(|(n, _)| n.as_str() == current) {
            return Some(done(format!(
                "no failover: observer {observer} reaches {current} as a connected primary"
            )));
        }
    }
    // A fresh observer report of another node as a connected primary: a failover already
    // happened (our own probe of that node may have failed after the report, so the node map
    // kept our "not reached"). Promoting now would make two.
    if let Some((name, observer)) = observed_new_primary(view, config, memory, own_db) {
        return Some(done(format!(
            "no failover: observer {observer} reports {name} as a connected primary"
        )));
    }
    None
}

/// Every condition held: run the failover command, announce it, and remember it.
fn launch_failover(view: &View, config: &Config, memory: &mut Memory, out: &mut Out, own_db: &str, why: &str) -> End {
    if memory.paused() {
        out.why(format!("a failover is due ({why}), but the cluster is paused"));
        return done(format!("paused: no failover of {own_db}"));
    }
    if memory.switchover.held {
        out.why(format!("a failover is due ({why}), but a switchover runs"));
        return done(format!("switchover: no failover of {own_db}"));
    }
    launch(view, config, memory, out, own_db, why)
}

/// Runs the failover command (a failover whose every condition held, or a switchover's
/// promotion), announces it, and remembers it.
fn launch(view: &View, config: &Config, memory: &mut Memory, out: &mut Out, own_db: &str, why: &str) -> End {
    out.act(Action::RunFailoverCommand {
        reason: why.to_string(),
        old_master: memory.current_master.clone(),
    });
    // A retry keeps the failure's block and its start; our node must be polled after this
    // attempt ends before we yield.
    memory.candidacy.start_promoting(FailoverStatus {
        phase: FailoverPhase::Promoting,
        master: memory.current_master.clone(),
        reason: why.to_string(),
        since: view.wall_now,
        standing: false,
    });
    // Created when the command is launched, whatever its outcome (as upstream, which wrote it
    // after the command whatever its exit status).
    out.act(Action::CreateAlert(Alert::FailoverHasHappened));
    memory.failover.running_since = Some(view.mono_now);
    memory.failover.since_standby = true;
    memory.manual_failover = None;
    memory.failover.sleep_after = config.failover_sleep_time;
    done(format!("failover: promoting {own_db}, the node furthest along"))
}

/// The standbys' known positions and the candidate among them: the furthest along (by
/// priority within the cap), skipping those that yielded, and keeping the one we deferred to
/// while it may be promoting. `Err` ends the decision.
fn candidate(
    view: &View,
    config: &Config,
    memory: &mut Memory,
    out: &mut Out,
    map: &NodeMap,
    own_db: &str,
) -> Result<Candidate, End> {
    let never = &config.never_promote_these_nodes;
    let mut positions = replication_positions(&map.standbys, view.wall_now, never);
    for (name, pos) in observed_candidates(view, config, &positions, own_db) {
        out.why(format!(
            "we do not reach standby {name}, but a fresh observer report has it connected at {}",
            crate::lsn::Lsn(pos)
        ));
        positions.entry(pos).or_default().insert(name);
    }
    if positions.is_empty() {
        return Err(done("no failover: no standby has a fresh known replication position"));
    }
    let not_synchronous = match synchronous_only(view, config, map, &mut positions) {
        Ok(n) => n,
        Err(why) => {
            let summary = format!("no failover: synchronous_mode: {why}");
            raise_failover_blocked(memory, out, &summary);
            return Err(done(summary));
        }
    };
    if let Some(end) = skip_yielded(view, config, memory, out, &mut positions, own_db) {
        return Err(end);
    }
    let Some(mut furthest) = choose_candidate(config, &positions).cloned() else {
        return Err(done("no failover: no standby has a fresh known replication position"));
    };
    if let Some(ahead) = furthest_along(&positions).filter(|f| **f != furthest) {
        let level = positions
            .values()
            .next_back()
            .is_some_and(|names| names.contains(&furthest));
        out.why(format!(
            "failover_priorities: {furthest} (priority {}) is preferred over {ahead} (priority {}), {}",
            config.priority(&furthest),
            config.priority(ahead),
            if level {
                "at the same position"
            } else {
                "which is further along, within max_failover_lag_bytes"
            }
        ));
    }
    if let Some((earlier, since)) = memory.candidacy.deferred_to().map(|(n, at)| (n.to_string(), at)) {
        let still = positions.values().any(|names| names.contains(&earlier));
        // Out of sight, it may still be promoting: its command runs at most
        // failover_command_timeout (its daemon decided about when we deferred).
        let waited = view.mono_now - since;
        let unseen_limit = config.failover_command_timeout + config.replication_state_check_interval;
        if still && earlier != furthest {
            out.why(format!(
                "{earlier} was furthest along when the failover became due and its daemon may be promoting it: it stays the candidate (not {furthest})"
            ));
            furthest = earlier;
        } else if !still && earlier != own_db && waited < unseen_limit {
            out.why(format!(
                "{earlier} was furthest along {waited:.1} s ago and is out of sight: its daemon may be promoting it; we may take over after {unseen_limit} s"
            ));
            return Err(done(format!("no failover: {earlier} may be promoting")));
        }
    }
    let known = positions.values().map(BTreeSet::len).sum::<usize>() + not_synchronous;
    Ok(Candidate {
        positions,
        furthest,
        known,
    })
}

/// What [`candidate`] found: the positions of the standbys that may still be chosen, the
/// one chosen, and how many standbys' positions are known (those `synchronous_mode` took out
/// included: they are known, only not candidates).
struct Candidate {
    positions: Positions,
    furthest: String,
    known: usize,
}

fn do_failover_decision(
    view: &View,
    config: &Config,
    memory: &mut Memory,
    out: &mut Out,
    map: &NodeMap,
    own_db: &str,
    why: &str,
) -> End {
    if !map.connected_masters.is_empty() {
        let names: Vec<&str> = map.connected_masters.keys().map(String::as_str).collect();
        return done(format!("no failover: master {} is still connected", names.join(", ")));
    }
    if let Some(end) = failover_window(view, config, memory, out, map) {
        return end;
    }
    if let Some(end) = replaced_already(view, config, memory, own_db) {
        return end;
    }
    let never = &config.never_promote_these_nodes;
    let Candidate {
        positions,
        furthest,
        known: known_positions,
    } = match candidate(view, config, memory, out, map, own_db) {
        Ok(c) => c,
        Err(end) => return end,
    };
    let cap = lag_cap(view, config, memory, out, map, &positions, &furthest);
    let observers = map.connected_observers + map.disconnected_observers;
    // The +1 stands for the master. Same arithmetic as upstream, ties pass.
    let total = map.standbys.len() as f64 + 1.0 - never.len() as f64 + observers as f64;
    let needed = total * 0.5;
    let known = (known_positions + map.connected_observers) as f64;
    out.why(format!(
        "furthest along: {furthest}; known state {known} of {total}, majority needs {needed}"
    ));

    if furthest != own_db {
        memory.candidacy.defer_to(&furthest, view.mono_now);
        if let Some(every) = cap.beyond {
            return cap_blocked(memory, out, every, &furthest);
        }
        return done(format!("no action: node {furthest} is furthest along"));
    }
    // another candidate that could take over from us: not too far behind the furthest
    // (skip_yielded drops those) and within the cap (lag_cap would block it)
    let others = positions
        .range(fallback_floor(config, &positions).max(cap.floor)..)
        .flat_map(|(_, names)| names)
        .any(|n| n != own_db);
    let turn = Turn {
        own_db,
        others,
        beyond: cap.beyond,
        known,
        total,
        needed,
    };
    if let Some(end) = our_turn(view, config, memory, out, map, &turn) {
        return end;
    }
    launch_failover(view, config, memory, out, own_db, why)
}

/// Whether our node, the candidate, may be promoted now. `Some` ends the decision: our command
/// runs, the cap or a block (maintenance, most observers out of sight, a failed command with
/// another candidate in sight) holds us, the voters differ, or the original's conditions
/// (never_promote, enough of the cluster known) do not hold.
fn our_turn(view: &View, config: &Config, memory: &mut Memory, out: &mut Out, map: &NodeMap, t: &Turn) -> Option<End> {
    let own_db = t.own_db;
    let block = |memory: &mut Memory, out: &mut Out, reason: &str| {
        Some(blocked(view, config, memory, out, map, own_db, t.others, reason))
    };
    // Before any block: our command may still promote our node, so no yield while it runs (an
    // attempt clears the block's poll mark, so a yield also needs a poll after it ended).
    if view.failover_running || memory.failover.running_since.is_some() {
        return Some(done("no failover: the failover command is already running"));
    }
    match t.beyond {
        Some(true) => return Some(cap_blocked(memory, out, true, own_db)),
        // another standby is within the cap: ours may yield its turn to it
        Some(false) => {
            raise_failover_blocked(memory, out, "no failover: our node is beyond max_failover_lag_bytes");
            return block(memory, out, "our node is beyond max_failover_lag_bytes");
        }
        None => {}
    }
    if !memory.voters_mismatch.is_empty() {
        return Some(done(format!(
            "no failover: the daemons of {} count a different voter set (voters_mismatch)",
            memory.voters_mismatch.join(", ")
        )));
    }
    if view.maintenance_mode {
        return block(memory, out, "maintenance_mode_file exists");
    }
    if config.never_promote_these_nodes.iter().any(|n| n == own_db) {
        return Some(done(
            "no failover: we are furthest along but in never_promote_these_nodes",
        ));
    }
    if t.known < t.needed {
        return Some(done(
            "no failover: we are furthest along but do not know enough of the other nodes",
        ));
    }
    if config.failover_requires_strict_majority && t.known * 2.0 <= t.total {
        out.why("failover_requires_strict_majority: more than half must be known");
        return Some(done(
            "no failover: we are furthest along but do not know more than half of the cluster",
        ));
    }
    if let Some((seen, of)) = unseen_by_most_observers(view, config, own_db) {
        out.why(format!(
            "only {seen} of {of} fresh observer reports that list {own_db} have it connected: the others could not learn of this promotion and may pick a node of their own"
        ));
        return block(memory, out, "most observers do not reach our node");
    }
    if let Some((name, observer)) = promoting_elsewhere(view, config, own_db) {
        return Some(done(format!(
            "no failover: observer {observer} reports the failover command of {name} running"
        )));
    }
    if let Some(at) = memory.failover_retry_at() {
        // Retried after the backoff, as without fallback; while waiting for it, with another
        // candidate in sight, the time since the first failure counts towards the yield.
        if view.mono_now < at && t.others && config.failover_fallback_timeout.is_some() {
            return block(memory, out, "the failover command failed");
        }
        if view.mono_now < at {
            out.why(format!(
                "the failover command failed {} time(s); next try in {:.1} s",
                memory.failover.failures.consecutive,
                at - view.mono_now
            ));
            return Some(done("no failover: waiting before retrying the failed failover command"));
        }
    }
    if let Some(last) = memory.failover.last_success {
        if view.mono_now - last < config.max_failover_replication_time_lag {
            out.why(format!(
                "the failover command succeeded {:.0} s ago; waiting for {own_db} to leave recovery",
                view.mono_now - last
            ));
            return Some(done("no failover: the failover command already succeeded"));
        }
    }
    if config.failover_command.trim().is_empty() {
        return Some(done("cannot fail over: failover_command is empty"));
    }
    None
}

/// What [`our_turn`] weighs besides the round: our node, whether another candidate could take
/// over, the data-loss cap's verdict, and the original's count of what we know.
struct Turn<'a> {
    own_db: &'a str,
    others: bool,
    beyond: Option<bool>,
    known: f64,
    total: f64,
    needed: f64,
}

/// The daemons that have yielded their turn (a fresh report of the observer configured under
/// that node's name, its own daemon, carries its `failover` entry, yielded against the master
/// we replace), and us if we did:
/// they come out of `positions`, and so do the standbys that are too far behind the furthest
/// of them to take over without losing data the original would have kept (beyond
/// [`FALLBACK_TOLERANCE_BYTES`] when `max_failover_lag_bytes` is unset; otherwise [`lag_cap`]
/// checks whichever is chosen). `Some` ends the decision: no candidate is left.
fn skip_yielded(
    view: &View,
    config: &Config,
    memory: &mut Memory,
    out: &mut Out,
    positions: &mut BTreeMap<u64, BTreeSet<String>>,
    own_db: &str,
) -> Option<End> {
    let mut yielded: BTreeMap<String, String> = BTreeMap::new();
    if memory.candidacy.standing() {
        yielded.insert(
            own_db.to_string(),
            "we stand aside (maintenance_mode_file exists)".to_string(),
        );
    } else if memory.candidacy.turn().since().is_some() {
        yielded.insert(own_db.to_string(), "we yielded".to_string());
    }
    if config.failover_fallback_timeout.is_some() {
        // A yield from before the master's last known contact belongs to an earlier loss of
        // it (an answer served late, a stale copy): only a later one counts, by more than the
        // clock skew the observer check lets through.
        // Ours, or what a strict majority of the voters saw at least: one wrong observer
        // (a far future db_time) must not void every yield.
        let last_contact = memory.current_master.as_ref().and_then(|m| {
            let db_time = |v: &BTreeMap<String, NodeState>| v.get(m).and_then(|n| n.pg.as_ref()?.db_time);
            let theirs = super::voters::majority_floor(view, config, view.nodes, db_time);
            db_time(view.nodes).max(theirs)
        });
        let skew = chrono::Duration::milliseconds((crate::poll::observer::MAX_CLOCK_SKEW_SECONDS * 1000.0) as i64);
        for name in positions.values().flatten().filter(|n| n.as_str() != own_db) {
            // Only the node's own daemon may give up its turn: the observer configured under
            // the node's name (the mesh of docs/safety.md). Another observer's copy of a yield
            // (one answering for another cluster with the same node names, say) counts for
            // nothing: skipping a candidate whose daemon did not yield could make two.
            let mut own_daemon =
                fresh_reports(view.observers, config, view.wall_now).filter(|(observer, _)| *observer == name);
            let word = own_daemon.find_map(|(observer, o)| {
                let entry = o.nodes.get(name)?;
                let f = entry.failover.as_ref()?;
                // a standing yield holds whatever the master did: it is current while served
                // (the fresh report says so), and its daemon promotes nothing for
                // yield_quiet_secs after it stops serving it
                let current = f.phase == FailoverPhase::Yielded
                    && f.master == memory.current_master
                    && secs_between(view.wall_now, entry.fetch_time) < CANDIDATE_MAX_AGE_SECS
                    && (f.standing
                        || last_contact
                            .is_none_or(|t| t.checked_add_signed(skew).is_some_and(|limit| f.since > limit)));
                current.then(|| {
                    let standing = if f.standing { ", standing" } else { "" };
                    format!("{name} yielded ({}{standing}, observer {observer})", f.reason)
                })
            });
            if let Some(word) = word {
                yielded.insert(name.clone(), word);
            }
        }
    }
    if yielded.is_empty() {
        return None;
    }
    let floor = fallback_floor(config, positions);
    let mut too_far: Vec<String> = Vec::new();
    positions.retain(|pos, names| {
        names.retain(|n| !yielded.contains_key(n));
        if *pos < floor {
            too_far.extend(names.iter().cloned());
            names.clear();
        }
        !names.is_empty()
    });
    out.why(format!(
        "skipping candidates that yielded their turn: {}",
        yielded.values().cloned().collect::<Vec<_>>().join("; ")
    ));
    if !too_far.is_empty() {
        out.why(format!(
            "more than {FALLBACK_TOLERANCE_BYTES} bytes behind the furthest, not a fallback without max_failover_lag_bytes: {}",
            too_far.join(", ")
        ));
    }
    if memory
        .candidacy
        .deferred_to()
        .is_some_and(|(n, _)| yielded.contains_key(n))
    {
        memory.candidacy.forget_deferral();
    }
    positions
        .is_empty()
        .then(|| done("no failover: every candidate yielded or is too far behind one that did"))
}

/// A node other than ours whose daemon reports (in a fresh report of a configured observer) its
/// failover command running, with that observer. Never two failover commands at once, even
/// after our daemon restarted and forgot what it deferred to.
fn promoting_elsewhere(view: &View, config: &Config, own_db: &str) -> Option<(String, String)> {
    fresh_reports(view.observers, config, view.wall_now).find_map(|(observer, o)| {
        o.nodes
            .iter()
            .find(|(n, s)| {
                n.as_str() != own_db && s.failover.as_ref().is_some_and(|f| f.phase == FailoverPhase::Promoting)
            })
            .map(|(n, _)| (n.clone(), observer.clone()))
    })
}

/// After a failed failover command, how long our node must stay in recovery, with nothing
/// left that could hold a pending promotion back, before we yield. A command that failed may
/// have left a promotion pending (`pg_ctl promote` gives up after its wait and leaves
/// `promote.signal`): PostgreSQL acts on it when its startup process looks for more WAL. A
/// trigger file (up to 15) is looked for every 5 s, and once the request is picked up the
/// startup process may still sleep out `wal_retrieve_retry_interval` (5 s by default) before
/// it leaves recovery; 2 s more of margin. Assumes `wal_retrieve_retry_interval` at most 5 s.
pub const PROMOTE_SETTLE_SECS: f64 = 12.0;

/// Whether our node (`own`, polled after the latest attempt ended) has been seen in recovery,
/// quiet, by polls spanning [`PROMOTE_SETTLE_SECS`] (by their fetch times, and as long on our
/// monotonic clock). Quiet: its startup process waiting for more WAL, where a pending
/// promotion is acted on; when the wait event cannot be read, replay caught up with what it
/// received. (After a primary killed mid-write, what a standby received can end in a partial
/// record that replay never reaches: only the wait event shows it stopped there.) Notes when
/// it was first seen so.
fn settled(view: &View, memory: &mut Memory, own: Option<&NodeState>) -> bool {
    let quiet = own.and_then(|n| n.pg.as_ref()).is_some_and(|pg| {
        pg.pg_is_in_recovery
            && match pg.startup_waiting_for_wal {
                Some(waiting) => waiting,
                None => match (pg.pg_last_xlog_replay_location, pg.pg_last_xlog_receive_location) {
                    (Some(replay), Some(received)) => replay >= received,
                    (Some(_), None) => true,
                    _ => false,
                },
            }
    });
    let (Some(mark), Some(own)) = (memory.candidacy.settle_mark(), own) else {
        return false;
    };
    if !quiet {
        *mark = None;
        return false;
    }
    let (first_poll, first_mono) = *mark.get_or_insert((own.fetch_time, view.mono_now));
    secs_between(own.fetch_time, first_poll) >= PROMOTE_SETTLE_SECS && view.mono_now - first_mono >= PROMOTE_SETTLE_SECS
}

/// Follows [`settled`] at every decision, not only those that reach the block (with the fresh
/// poll handshake, one in three): every poll of our node counts.
fn track_settle(view: &View, config: &Config, memory: &mut Memory, nodes: &BTreeMap<String, NodeState>) {
    let (Some(own_db), Some(since_wall)) = (
        config.own_db.as_deref(),
        memory.candidacy.blocked().and_then(|b| b.since_wall),
    ) else {
        return;
    };
    if memory.failover.failures.last.is_none() || memory.failover.running_since.is_some() {
        return;
    }
    let own = nodes.get(own_db).filter(|n| n.connection && n.fetch_time > since_wall);
    settled(view, memory, own);
}

/// We are the chosen candidate and `reason` keeps us from promoting. With
/// `failover_fallback_timeout` and another candidate in sight, after that long (and a poll of
/// our own node since, still a connected standby) we yield: we publish it and never run the
/// failover command until another master is seen, so the next candidate may.
#[allow(clippy::too_many_arguments)]
fn blocked(
    view: &View,
    config: &Config,
    memory: &mut Memory,
    out: &mut Out,
    map: &NodeMap,
    own_db: &str,
    others: bool,
    reason: &str,
) -> End {
    let summary = format!("no failover: we are furthest along but {reason}");
    let since = memory.candidacy.block(reason, view.mono_now, view.wall_now);
    let Some(timeout) = config.failover_fallback_timeout else {
        return done(summary);
    };
    if !others {
        out.why("no other candidate to yield to");
        return done(summary);
    }
    let waited = view.mono_now - since.since_mono;
    let own = map
        .standbys
        .get(own_db)
        .copied()
        .filter(|n| n.connection && since.since_wall.is_some_and(|t| n.fetch_time > t));
    if waited < timeout || own.is_none() {
        out.why(format!(
            "{reason}: yielding to the next candidate after failover_fallback_timeout {timeout} s ({waited:.0} s so far)"
        ));
        return done(summary);
    }
    if memory.announces_promotion() {
        out.why("our failover command succeeded and its promotion is still announced: no yield");
        return done(summary);
    }
    if memory.failover.failures.last.is_some() && !settled(view, memory, own) {
        out.why(format!(
            "our failover command failed: yielding once {own_db} is seen in recovery waiting for WAL (or with replay caught up) for {PROMOTE_SETTLE_SECS} s (a promotion it left pending would have happened)"
        ));
        return done(summary);
    }
    out.why(format!(
        "{reason} for {waited:.0} s (failover_fallback_timeout {timeout} s): yielding to the next candidate"
    ));
    let status = FailoverStatus {
        phase: FailoverPhase::Yielded,
        master: memory.current_master.clone(),
        reason: reason.to_string(),
        since: view.wall_now,
        standing: false,
    };
    memory.candidacy.give_way(status, view.mono_now);
    done(format!("no failover: yielded to the next candidate ({reason})"))
}
