//! The primary's daemon keeps `synchronous_standby_names` right (`synchronous_mode` `on` or
//! `strict`, issue 21): which standbys to list, when one may be added or taken out, when `on`
//! falls back to asynchronous, and what it asks the shell to set. Pure. The shell runs `ALTER
//! SYSTEM` and `pg_reload_conf()`; whether it took is seen in the next poll of our node, the
//! same reading every other daemon and observer makes (docs/safety.md, "Synchronous
//! replication", has the argument).
//!
//! The value is always `ANY k ("a", "b", ...)`, `k` being `synchronous_node_count`, the names
//! the node names of our standbys (never those in `never_promote_these_nodes`). Two invariants make the failover rule of
//! [`super::sync::eligible`] safe with views of the primary that are not the latest:
//!
//! - every acknowledged commit is on `k` listed standbys: a standby is taken out only once it
//!   has not streamed for two polls in a row and `k` of the ones that stay have flushed past
//!   the primary's position at the first of those polls (so past anything it acknowledged);
//! - a standby is added only once a strict majority of the voters saw it streaming (or
//!   listed): a failover needs a strict majority of them too, so one view it counts has it.

use super::types::Action;
use super::types::Alert;
use super::types::Mono;
use super::types::Out;
use super::types::View;
use super::voters;
use crate::config::Config;
use crate::config::SynchronousMode;
use crate::state::NodeState;
use crate::state::SyncReplication;
use crate::state::Timestamp;
use crate::sync_names::Method;
use crate::sync_names::SyncNames;
use serde::Serialize;
use std::collections::BTreeMap;
use std::collections::BTreeSet;

/// What the manager remembers between rounds.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct SyncMemory {
    /// The value last asked for and when; `None` once it is in effect.
    pub asked: Option<(String, Mono)>,
    /// The last poll of our primary seen, and the one before it (a taking out compares two).
    pub last: Option<Probe>,
    pub previous: Option<Probe>,
    /// This daemon set the names since it started: turning the mode `off` resets them.
    pub managing: bool,
    /// `on` fell back to asynchronous (`synchronous_degraded` is up).
    pub degraded: bool,
    /// A value asked for was not in effect in time (`synchronous_setting_failed` is up).
    pub failing: bool,
}

/// One poll of our primary, as the manager needs it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Probe {
    pub fetch_time: Timestamp,
    /// The primary's position (WAL insert location) in that poll.
    pub position: u64,
    /// Our standbys streaming from it then, by node name.
    pub streaming: BTreeSet<String>,
}

/// How long a value asked for may take to show in our polls before it is asked again (and
/// `synchronous_setting_failed` raised): the statement's own deadline and two polls, and at
/// least 10 s (a loaded server can take that long on the fast profile, and the alert is not
/// a race).
pub fn retry_after(config: &Config) -> f64 {
    (3.0 * config.db_poll_timeout + 2.0 * config.db_poll_interval).max(10.0)
}

/// With `synchronous_mode` strict: the `synchronous_standby_names` our node is given before
/// its failover command promotes it, so that it acknowledges no write without a standby from
/// its first one: `ANY k` of every other node it may list (its manager trims it to the
/// streaming ones afterwards, by the rules above). `None` otherwise: `on` acknowledges
/// asynchronously whenever no standby streams from the primary, which is the case of any
/// new primary until one follows it, so setting them first would only hold its first writes
/// until its daemon falls back (measured: half a second more to the first write).
pub fn before_promotion(config: &Config) -> Option<String> {
    if config.synchronous_mode != SynchronousMode::Strict {
        return None;
    }
    let own = config.own_db.as_deref()?;
    let others: BTreeSet<String> = listable(config, own).into_iter().cloned().collect();
    Some(any(config.synchronous_node_count as usize, &others).render())
}

/// The standbys the manager may list when `own` is the primary: every other node of
/// `remote_conns` but those in `never_promote_these_nodes` (one that can never be promoted
/// must not be one whose acknowledgement a failover has to reach).
pub fn listable<'a>(config: &'a Config, own: &str) -> Vec<&'a String> {
    config
        .remote_conns
        .keys()
        .filter(|n| n.as_str() != own && !config.never_promote_these_nodes.contains(*n))
        .collect()
}

/// One round of the manager. `master`: the master this round's node map has.
pub(super) fn manage(
    view: &View,
    config: &Config,
    memory: &mut SyncMemory,
    nodes: &BTreeMap<String, NodeState>,
    master: Option<&str>,
    out: &mut Out,
) {
    let own = config.own_db.as_deref();
    let ours = own.filter(|o| master == Some(*o)).and_then(|o| {
        let state = nodes
            .get(o)
            .filter(|n| n.connection && n.in_recovery() == Some(false))?;
        let pg = state.pg.as_ref()?;
        Some((o, state, pg.sync.as_ref()?, pg.pg_last_xlog_replay_location?.0))
    });
    let Some((own, state, sync, position)) = ours else {
        // not the primary (or not readable now): nothing to keep, no alert of ours standing
        memory.last = None;
        memory.previous = None;
        memory.asked = None;
        set_alert(out, &mut memory.degraded, Alert::SynchronousDegraded, false);
        set_alert(out, &mut memory.failing, Alert::SynchronousSettingFailed, false);
        return;
    };
    let standbys = listable(config, own);
    let name_of = |app: &str| -> String {
        standbys
            .iter()
            .find(|s| s.eq_ignore_ascii_case(app))
            .map_or_else(|| app.to_string(), |s| s.to_string())
    };
    let streaming = streaming_of(sync, &standbys);
    if !sync.pg_stat_replication.is_empty() && sync.pg_stat_replication.iter().all(|w| w.state.is_none()) {
        out.why("the WAL senders' state is hidden from the monitoring role: it needs pg_read_all_stats to see a standby stream");
    }
    if memory.last.as_ref().is_none_or(|p| p.fetch_time != state.fetch_time) {
        let probe = Probe {
            fetch_time: state.fetch_time,
            position,
            streaming: streaming.clone(),
        };
        memory.previous = memory.last.replace(probe);
    }
    let previous = memory.previous.clone();

    if config.synchronous_mode == SynchronousMode::Off {
        if std::mem::take(&mut memory.managing) {
            out.why("synchronous_mode is off: synchronous_standby_names goes back to the server's own setting");
            out.act(Action::SetSynchronousNames {
                value: None,
                reason: "synchronous_mode off".into(),
            });
        }
        memory.asked = None;
        set_alert(out, &mut memory.degraded, Alert::SynchronousDegraded, false);
        set_alert(out, &mut memory.failing, Alert::SynchronousSettingFailed, false);
        return;
    }

    let k = config.synchronous_node_count as usize;
    let current = match sync.synchronous_standby_names.as_deref().map(crate::sync_names::parse) {
        Some(Ok(names)) => names,
        Some(Err(e)) => {
            out.why(format!(
                "synchronous_standby_names cannot be read ({e}); it is replaced"
            ));
            None
        }
        None => None,
    };
    let mut set: BTreeSet<String> = BTreeSet::new();
    for n in current.iter().flat_map(|c| c.names.iter()) {
        if n == "*" {
            set.extend(standbys.iter().map(|s| s.to_string()));
        } else {
            set.insert(name_of(n));
        }
    }
    // Add: streaming, and a strict majority of the voters saw it so.
    for x in &streaming {
        if set.contains(x) {
            continue;
        }
        if seen_by_voters(view, config, nodes, own, x) {
            out.why(format!("standby {x} streams: it becomes a synchronous standby"));
            set.insert(x.clone());
        } else {
            out.why(format!(
                "standby {x} streams, but not yet for a strict majority of the voters: not listed yet"
            ));
        }
    }
    // Take out: not streaming in two polls, and k of those that stay flushed past the first.
    if let Some(prev) = &previous {
        let gone: BTreeSet<String> = set
            .iter()
            .filter(|y| !streaming.contains(*y) && !prev.streaming.contains(*y))
            .cloned()
            .collect();
        let stay: BTreeSet<String> = set.difference(&gone).cloned().collect();
        let flushed = sync
            .pg_stat_replication
            .iter()
            .filter(|w| w.flush_lsn.is_some_and(|f| f.0 >= prev.position))
            .filter_map(|w| w.application_name.as_deref().map(name_of))
            .filter(|n| stay.contains(n))
            .collect::<BTreeSet<_>>()
            .len();
        if !gone.is_empty() {
            if flushed >= k {
                out.why(format!(
                    "{} no longer streams: taken out of the synchronous standbys",
                    join(&gone)
                ));
                set = stay;
            } else {
                out.why(format!(
                    "{} no longer streams, but fewer than {k} of the others have flushed past {}: kept listed",
                    join(&gone),
                    crate::lsn::Lsn(prev.position)
                ));
            }
        }
    }
    let (want, degraded) = match config.synchronous_mode {
        SynchronousMode::On if streaming.len() < k => {
            out.why(format!(
                "{} of our standbys stream, synchronous_node_count is {k}: asynchronous until one does (synchronous_mode on)",
                streaming.len()
            ));
            (None, true)
        }
        // the gate holds back a standby for a round or two: keep what is in effect
        _ if set.len() < k && current.is_some() && config.synchronous_mode == SynchronousMode::On => {
            (current.clone(), false)
        }
        SynchronousMode::Strict if set.len() < k => {
            out.why(format!(
                "fewer than {k} standbys to list: every standby is listed, and writes wait for {k} of them (synchronous_mode strict)"
            ));
            set = standbys.iter().map(|s| s.to_string()).collect();
            (Some(any(k, &set)), false)
        }
        _ if set.len() < k => (None, false),
        _ => (Some(any(k, &set)), false),
    };
    // once up, it stays until standbys are listed in effect, not only asked for: until then the
    // primary still acknowledges writes that no standby has (docs/operations.md)
    let degraded = degraded || (memory.degraded && current.is_none());
    set_alert(out, &mut memory.degraded, Alert::SynchronousDegraded, degraded);
    if same(want.as_ref(), current.as_ref()) {
        memory.asked = None;
        set_alert(out, &mut memory.failing, Alert::SynchronousSettingFailed, false);
        return;
    }
    let value = want.as_ref().map_or_else(String::new, SyncNames::render);
    if let Some((asked, since)) = &memory.asked {
        let waited = view.mono_now - *since;
        if *asked == value && waited < retry_after(config) {
            out.why(format!(
                "synchronous_standby_names {value:?} asked for {waited:.1} s ago, not in effect yet"
            ));
            return;
        }
        if *asked == value {
            out.why(format!(
                "synchronous_standby_names {value:?} was asked for {waited:.0} s ago and is not in effect: asking again"
            ));
            set_alert(out, &mut memory.failing, Alert::SynchronousSettingFailed, true);
        }
    }
    memory.asked = Some((value.clone(), view.mono_now));
    memory.managing = true;
    out.act(Action::SetSynchronousNames {
        value: Some(value.clone()),
        reason: format!(
            "was {:?}",
            sync.synchronous_standby_names.as_deref().unwrap_or_default()
        ),
    });
}

/// Our standbys that stream from the primary now (by node name).
fn streaming_of(sync: &SyncReplication, standbys: &[&String]) -> BTreeSet<String> {
    sync.pg_stat_replication
        .iter()
        .filter(|w| w.state.as_deref() == Some("streaming"))
        .filter_map(|w| {
            let app = w.application_name.as_deref()?;
            standbys
                .iter()
                .find(|s| s.eq_ignore_ascii_case(app))
                .map(|s| s.to_string())
        })
        .collect()
}

/// Whether a strict majority of the voters' fresh views of our primary show `x` streaming
/// from it or listed (with no voters, our own poll decides).
fn seen_by_voters(view: &View, config: &Config, own_nodes: &BTreeMap<String, NodeState>, own: &str, x: &str) -> bool {
    let shows = |v: &BTreeMap<String, NodeState>| {
        let Some(sync) = v.get(own).and_then(|n| n.pg.as_ref()).and_then(|p| p.sync.as_ref()) else {
            return false;
        };
        let streams = sync.pg_stat_replication.iter().any(|w| {
            w.state.as_deref() == Some("streaming")
                && w.application_name.as_deref().is_some_and(|a| a.eq_ignore_ascii_case(x))
        });
        let listed = sync
            .synchronous_standby_names
            .as_deref()
            .and_then(|s| crate::sync_names::parse(s).ok().flatten())
            .is_some_and(|n| n.lists(x));
        streams || listed
    };
    let (votes, of) = voters::count(view, config, own_nodes, shows);
    of == 0 || voters::strict_majority(votes, of)
}

/// `ANY k (names)`.
fn any(k: usize, names: &BTreeSet<String>) -> SyncNames {
    SyncNames {
        method: Method::Any,
        num_sync: k as u32,
        names: names.iter().cloned().collect(),
    }
}

/// Whether two settings are the same: both asynchronous, or the same method, count and names
/// (in any order and case).
fn same(a: Option<&SyncNames>, b: Option<&SyncNames>) -> bool {
    let key = |n: &SyncNames| {
        let names: BTreeSet<String> = n.names.iter().map(|s| s.to_ascii_lowercase()).collect();
        (n.method, n.num_sync, names)
    };
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => key(a) == key(b),
        _ => false,
    }
}

fn join(names: &BTreeSet<String>) -> String {
    names.iter().cloned().collect::<Vec<_>>().join(", ")
}

/// Raises or clears one of the manager's alerts when its state changes.
fn set_alert(out: &mut Out, up: &mut bool, alert: Alert, want: bool) {
    if std::mem::replace(up, want) != want {
        out.act(if want {
            Action::CreateAlert(alert)
        } else {
            Action::DeleteAlert(alert)
        });
    }
}
