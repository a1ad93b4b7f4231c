//! The node map: who is the primary, who are the standbys, merged from our own polls and the
//! observers' views (upstream §4). Owns the trust rules for observer reports (fetch-time
//! comparisons, "we trust ourselves the most") and the deterministic choice of the master.
//! Pure: no I/O, no clock reads; wall-clock times come from the documents themselves.

use crate::state::{NodeState, ObserverState};
use std::collections::BTreeMap;

/// The roles of the cluster members as far as we can tell this round. The states are those
/// of the maps it was built from, not copies: it is built at every decision.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct NodeMap<'a> {
    /// The primary: the only connected master, else the "first" disconnected master (see
    /// [`NodeMap::first_disconnected_master`]); `None` when there is none or several connected.
    pub master: Option<String>,
    pub connected_masters: BTreeMap<String, &'a NodeState>,
    pub disconnected_masters: BTreeMap<String, &'a NodeState>,
    pub standbys: BTreeMap<String, &'a NodeState>,
    pub connected_observers: usize,
    pub disconnected_observers: usize,
    /// More than one connected master: the caller creates `multiple_master_warning`.
    pub multiple_masters: bool,
    /// Observer entries that were ignored and why, and masters that only an observer reaches
    /// (for the caller to log and to give as reasons).
    pub notes: Vec<String>,
}

impl NodeMap<'_> {
    /// The disconnected master that stands for "the master" when none is connected.
    ///
    /// Upstream took the first entry in dict order (config order, then observer additions),
    /// which is not something every daemon agrees on. We take the one with the newest
    /// `db_time`, i.e. the one most recently seen alive as a primary; a missing `db_time`
    /// counts as newest, because the recent-contact check treats it as "now". That is also the
    /// cautious choice: it makes the recent-contact check the hardest to pass. Ties go to the
    /// highest name, like the candidate choice.
    pub fn first_disconnected_master(&self) -> Option<(&String, &NodeState)> {
        self.disconnected_masters
            .iter()
            .map(|(n, s)| (n, *s))
            .max_by(|(an, a), (bn, b)| last_contact_key(a).cmp(&last_contact_key(b)).then_with(|| an.cmp(bn)))
    }

    /// The state of [`NodeMap::master`], from whichever map holds it.
    pub fn master_state(&self) -> Option<&NodeState> {
        let name = self.master.as_ref()?;
        self.connected_masters
            .get(name)
            .or_else(|| self.disconnected_masters.get(name))
            .copied()
    }
}

/// Orders copies of a master by when it was last seen alive (`db_time`); a missing `db_time`
/// counts as newest, as the recent-contact check treats it as "now".
fn last_contact_key(state: &NodeState) -> (bool, Option<crate::state::Timestamp>) {
    let t = state.pg.as_ref().and_then(|p| p.db_time);
    (t.is_none(), t)
}

/// Builds the node map from our own node states and the observers' reports.
///
/// `own` must hold only the nodes of our cluster: observer entries for any other node are
/// ignored (one observer may watch several clusters). `db_poll_interval` is the window within
/// which an observer's report of a primary is taken over ours.
pub fn node_map<'a>(
    own: &'a BTreeMap<String, NodeState>,
    observers: &'a BTreeMap<String, ObserverState>,
    own_db: Option<&str>,
    db_poll_interval: f64,
) -> NodeMap<'a> {
    let mut map = NodeMap::default();
    for (name, state) in own {
        match state.in_recovery() {
            Some(true) => {
                map.standbys.insert(name.clone(), state);
            }
            Some(false) if state.connection => {
                map.connected_masters.insert(name.clone(), state);
            }
            Some(false) => {
                map.disconnected_masters.insert(name.clone(), state);
            }
            // Never reached: we know nothing of its role.
            None => {}
        }
    }

    for (observer, obs) in observers {
        if obs.connection {
            map.connected_observers += 1;
        } else {
            map.disconnected_observers += 1;
        }
        for (instance, seen) in obs.nodes.iter() {
            let Some(ours) = own.get(instance) else {
                continue;
            };
            // Our own node: we always trust our own poll over anyone else's.
            let is_own = own_db == Some(instance.as_str());
            match seen.in_recovery() {
                Some(true) => {
                    // A newer report of a standby replaces ours only where ours does not
                    // already show a reachable standby.
                    let ours_is_good = map.standbys.get(instance).is_some_and(|s| s.connection);
                    if seen.fetch_time >= ours.fetch_time && !is_own && !ours_is_good {
                        map.standbys.insert(instance.clone(), seen);
                    }
                }
                Some(false) => merge_master(&mut map, observer, instance, ours, seen, is_own, db_poll_interval),
                None => map.notes.push(format!(
                    "observer {observer} does not know whether {instance} is in recovery; ignored"
                )),
            }
        }
    }

    match map.connected_masters.len() {
        0 => map.master = map.first_disconnected_master().map(|(n, _)| n.clone()),
        1 => map.master = map.connected_masters.keys().next().cloned(),
        _ => map.multiple_masters = true,
    }
    map
}

/// An observer's report of `instance` as a primary, merged into `map` (`ours`: our own copy).
fn merge_master<'a>(
    map: &mut NodeMap<'a>,
    observer: &str,
    instance: &str,
    ours: &NodeState,
    seen: &'a NodeState,
    is_own: bool,
    db_poll_interval: f64,
) {
    // The observer's report counts unless it is older than ours by a poll
    // interval or more. Upstream compared the absolute difference, although
    // the intent (PR #60) was "when it is newer": that dropped the freshest
    // reports just when our own probe of the master hangs (our fetch_time is
    // then the start of a probe that takes the whole probe timeout), so
    // standbys cut off from a live master failed over while an observer still
    // reached it. Both fetch times are wall clocks of different machines: this
    // assumes synchronized clocks, as upstream does.
    let older_by = (ours.fetch_time - seen.fetch_time).num_milliseconds() as f64 / 1e3;
    // We reach it ourselves as a standby: our own poll wins. After a real
    // promotion our next poll sees the primary one interval later; an observer
    // answering for another cluster (a wrong URL) would otherwise have us
    // follow a standby.
    let we_reach_a_standby = ours.connection && ours.in_recovery() == Some(true);
    if older_by < db_poll_interval && !is_own && !we_reach_a_standby {
        if map.connected_masters.contains_key(instance) {
            // We (or an earlier observer) reach it: it stays a connected
            // master with the copy we have. Upstream stored the observer's
            // copy here even when it said `connection: false`, which then
            // sent a reachable master down the missing-master path.
        } else if seen.connection {
            // Only the observer reaches it: take its word (upstream PR #60).
            // Dropping it from the disconnected ones changes no decision
            // (any connected master wins) but keeps the map unambiguous.
            map.notes.push(format!(
                "observer {observer} reaches {instance} as a connected master, which we do not: taking its word"
            ));
            map.disconnected_masters.remove(instance);
            map.connected_masters.insert(instance.to_string(), seen);
        } else if map
            .disconnected_masters
            .get(instance)
            .is_none_or(|kept| last_contact_key(kept) < last_contact_key(seen))
        {
            // Of two disconnected copies keep the one that saw it alive last:
            // the recent-contact check reads its db_time, and an observer that
            // lost the master before we did must not bring the failover forward.
            map.disconnected_masters.insert(instance.to_string(), seen);
        }
    }
}
