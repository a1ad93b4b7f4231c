//! The pure decision core. Given what the poller saw, the config and what the decision loop
//! remembers, it says what to do and why; the daemon loop carries it out. No I/O, no clock
//! reads, no globals, no logging: time comes in as arguments, reasons go out as strings.
//!
//! (Links use full paths: lib.rs also documents this module, and rustdoc then resolves
//! this text from the crate root.)
//!
//! From the leaves up (each imports only the ones above it in this list; a test in lib.rs
//! keeps it so):
//!
//! - [`crate::decide::types`]: the shared vocabulary ([`crate::decide::View`],
//!   [`crate::decide::Action`], [`crate::decide::Decision`], how a rule adds reasons).
//! - [`node_map`](mod@crate::decide::node_map): roles of the nodes, merged from our polls and the
//!   observers' (upstream §4).
//! - [`crate::decide::follow`]: the text transformation of autofollow (which conninfo,
//!   which file contents).
//! - [`crate::decide::voters`]: the observer counting in one place: fresh reports, the one
//!   voter set the lease and every promotion path count, majorities, corroboration.
//! - [`crate::decide::memory`]: what the loop remembers ([`crate::decide::Memory`]), the
//!   results reported into it, and the one retry rule of the failover, fence and rejoin commands.
//! - [`crate::decide::fence`]: the lease and the fence rules.
//! - [`crate::decide::rejoin`]: when the daemon beside a replaced primary makes it a standby
//!   of the new one (`rejoin_old_master`).
//! - [`crate::decide::switchover`]: a planned switchover's hold on the rules, and the
//!   target's promotion.
//! - [`crate::decide::failover`]: [`crate::decide::decide`], the per-round decision
//!   (upstream §5), which runs the rules above.
//! - [`crate::decide::monitor_unhealthy`]: the poller health rule.

pub mod candidacy;
pub mod failover;
pub mod fence;
pub mod follow;
pub mod memory;
pub mod node_map;
pub mod pause;
pub mod receiver;
pub mod rejoin;
pub mod switchover;
pub mod sync;
pub mod sync_manager;
pub mod types;
pub mod voters;

pub use failover::{decide, furthest_along, replication_positions, Action, Alert, Decision, Memory, View};
pub use node_map::{node_map, NodeMap};
pub use types::Mono;

/// Whether the poller looks stuck: no completed round (or, before the first one, no start)
/// within `timeout` seconds. `timeout` is `cluster_monitor_health_timeout_seconds` as
/// [`crate::config::Config`] resolves it (`None`: check disabled; absent key: twice
/// `replication_state_check_interval`). All times are monotonic seconds.
pub fn monitor_unhealthy(timeout: Option<f64>, start: Option<f64>, last_run: Option<f64>, now: f64) -> bool {
    let Some(timeout) = timeout.filter(|t| *t > 0.0) else {
        return false;
    };
    match last_run.or(start) {
        Some(reference) => now - reference >= timeout,
        None => false,
    }
}

#[cfg(test)]
mod tests;
