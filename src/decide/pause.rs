//! The cluster-wide pause (`pglookout-ctl pause` / `resume`, issue 22): which setting holds,
//! ours or a newer one a voter's daemon publishes (the latest set wins, so one command reaches
//! every node daemon of the mesh, and a daemon that was down meanwhile catches up), and the
//! `cluster_paused` alert once a pause has lasted `pause_alert_after`. Pure.
//!
//! While paused the rules that act do nothing: no failover command, no fence, no autofollow,
//! no rejoin, no cut of our standby's WAL receiver. Polling, the API, the history, the alerts
//! and the primary's `synchronous_standby_names` go on, and the decision says why it waits.

use super::memory::Memory;
use super::types::{Action, Alert, Out, View};
use super::voters::fresh_reports;
use crate::config::Config;
use crate::state::{iso, Pause};

/// Takes a newer pause from a fresh report of a node daemon among our observers, and raises or
/// clears the alert. Returns whether we are paused.
pub(super) fn track(view: &View, config: &Config, memory: &mut Memory, out: &mut Out) -> bool {
    let newest = fresh_reports(view.observers, config, view.wall_now)
        .filter_map(|(name, o)| Some((name, o.nodes.get(name.as_str())?.pause.as_ref()?)))
        .filter(|(_, p)| p.since <= view.wall_now)
        .max_by_key(|(_, p)| p.since);
    if let Some((name, p)) = newest {
        if p.newer_than(memory.pause.as_ref()) {
            out.why(format!(
                "{name}'s daemon {} the cluster at {}: so do we",
                if p.paused { "paused" } else { "resumed" },
                iso(&p.since)
            ));
            memory.pause = Some(p.clone());
        }
    }
    let paused = memory.paused();
    let long = match &memory.pause {
        Some(Pause { paused: true, since }) => {
            let secs = view.wall_now.signed_duration_since(*since).num_milliseconds() as f64 / 1000.0;
            secs >= config.pause_alert_after
        }
        _ => false,
    };
    if long != memory.pause_alerted {
        memory.pause_alerted = long;
        out.act(if long {
            Action::CreateAlert(Alert::ClusterPaused)
        } else {
            Action::DeleteAlert(Alert::ClusterPaused)
        });
    }
    if paused {
        out.why(format!(
            "the cluster is paused (since {}): no failover, fence, follow or rejoin until `pglookout-ctl resume`",
            memory.pause.as_ref().map(|p| iso(&p.since)).unwrap_or_default()
        ));
    }
    paused
}
