//! Our standby's WAL receiver with `synchronous_mode` `on` or `strict` (issue 21): cut it off
//! from a primary that a strict majority of the voters reports gone, and give it back when that
//! primary is clearly back. Pure: the shell runs `ALTER SYSTEM SET primary_conninfo` and
//! `pg_reload_conf()` (PostgreSQL 13 and later reload it without a restart); every daemon sees
//! the effect in its next poll of the node ([`crate::state::PgFields::receiver_cut`]).
//!
//! Why (docs/safety.md, "Synchronous replication"): the failover rule
//! ([`super::sync::eligible`]) needs `n - k + 1` of the `n` listed standbys to have stopped
//! confirming flushes to the old primary, with their final positions, before it may promote
//! the furthest of them. A primary whose host froze (a VM pause) and resumes after the
//! promotion acknowledges commits through every standby still streaming from it, before its
//! own fence can act; with `n - k + 1` of them cut off it cannot gather `k` acknowledgements,
//! and every commit it acknowledged before has one copy on a cut standby, whose position no
//! longer moves.

use super::types::{Action, Mono, Out, View};
use crate::config::{Config, SynchronousMode};
use crate::state::NodeState;
use serde::Serialize;
use std::collections::BTreeMap;

/// What the rule remembers between rounds.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ReceiverMemory {
    /// The primary we cut our receiver from (or found it cut from at our start).
    pub cut_from: Option<String>,
    /// When we last asked for a cut or a restore (asked again after [`retry_after`]).
    pub asked_at: Option<Mono>,
    /// Since when that primary has been back: a connected primary in our poll, and no strict
    /// majority of the voters reporting it gone.
    pub back_since: Option<Mono>,
}

/// How long a request may take to show in our poll before it is asked again.
pub fn retry_after(config: &Config) -> f64 {
    (2.0 * config.db_poll_interval + config.db_poll_timeout).max(2.0)
}

/// How long the primary must have been back before our receiver streams from it again: one
/// failover timeout, so that no standby that counted our cut can still be promoting on it
/// (a promotion needs a strict majority reporting the primary gone for that long; we saw none
/// for that long).
pub fn hold(config: &Config) -> f64 {
    super::voters::failover_timeout(config)
}

/// One round. `master`: the primary we know; `gone`: a strict majority of the voters reports
/// it gone now; `connected`: it is a connected primary in our own poll.
pub(super) fn manage(
    view: &View,
    config: &Config,
    memory: &mut ReceiverMemory,
    nodes: &BTreeMap<String, NodeState>,
    master: Option<&str>,
    gone: bool,
    out: &mut Out,
) {
    let Some(own) = config.own_db.as_deref() else {
        return;
    };
    let Some(pg) = nodes.get(own).filter(|n| n.connection).and_then(|n| n.pg.as_ref()) else {
        return;
    };
    if !pg.pg_is_in_recovery {
        *memory = ReceiverMemory::default();
        return;
    }
    // `None`: before PostgreSQL 13, where primary_conninfo needs a restart (the failover rule
    // then counts the node as it did before)
    let Some(cut) = pg.receiver_cut else {
        return;
    };
    let Some(master) = master.filter(|m| *m != own) else {
        return;
    };
    if memory.cut_from.as_deref().is_some_and(|from| from != master) {
        // a new primary: following it (autofollow) rewrites primary_conninfo; nothing to give back
        *memory = ReceiverMemory::default();
    }
    let due = |memory: &ReceiverMemory| memory.asked_at.is_none_or(|t| view.mono_now - t >= retry_after(config));
    let synchronous = config.synchronous_mode != SynchronousMode::Off;
    if gone {
        memory.back_since = None;
        if synchronous && !cut && due(memory) {
            out.why(format!(
                "a strict majority of the voters reports master {master} gone: our standby stops confirming WAL to it (synchronous_mode)"
            ));
            out.act(Action::SetWalReceiver {
                cut: true,
                master: master.to_string(),
            });
            memory.cut_from = Some(master.to_string());
            memory.asked_at = Some(view.mono_now);
        }
        return;
    }
    if !cut {
        if memory.cut_from.is_some() && memory.back_since.is_some() {
            // given back (or someone else did): done
            *memory = ReceiverMemory::default();
        }
        return;
    }
    // cut, and the majority does not report the master gone
    if memory.cut_from.is_none() {
        // cut at our start (this daemon restarted while cut): ours to give back, with
        // primary_conninfo_template (the value we replaced went with the old process); without
        // it, and for a standby set up with no primary_conninfo, we leave it as it is
        if config.primary_conninfo_template.is_none() {
            return;
        }
        memory.cut_from = Some(master.to_string());
    }
    let back = nodes.get(master).is_some_and(super::voters::connected_primary);
    if !back {
        memory.back_since = None;
        return;
    }
    let since = *memory.back_since.get_or_insert(view.mono_now);
    let hold = hold(config);
    if view.mono_now - since < hold {
        out.why(format!(
            "master {master} is back for {:.1} s: our standby streams from it again after {hold} s",
            view.mono_now - since
        ));
        return;
    }
    if due(memory) {
        out.why(format!(
            "master {master} has been back for {:.1} s: our standby streams from it again",
            view.mono_now - since
        ));
        out.act(Action::SetWalReceiver {
            cut: false,
            master: master.to_string(),
        });
        memory.asked_at = Some(view.mono_now);
    }
}
