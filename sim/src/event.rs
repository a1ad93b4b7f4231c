//! What happened in the world, as the world tells the checker ([`crate::check::Checker`]):
//! the only channel between them. Each event is what the checker's rules need and no more;
//! the world sends it at the simulated time it happened.

use crate::Us;
use pglookout::config::Config;
use std::sync::Arc;

/// A node's PostgreSQL process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proc {
    Running,
    /// kill -9: refuses connections.
    Dead,
    /// SIGSTOP: accepts connections, answers nothing.
    Frozen,
    /// Stopped by the fence command: refuses connections.
    Fenced,
    /// Being restarted by autofollow: refuses connections.
    Restarting,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Primary,
    /// Streams from `upstream` (`None`: from nobody).
    Standby {
        upstream: Option<usize>,
    },
    /// `pg_ctl promote` running: still in recovery, no longer streaming.
    Promoting,
}

/// What a fence command does once started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fence {
    /// Stops its node within the budget.
    Stops,
    /// Exits 1 or hangs until killed: stops nothing.
    Fails,
    /// Exits 0 and stops nothing.
    DoesNothing,
}

/// The run starts as `Cluster::new` builds it: node 0 the primary on timeline 1, the others
/// its caught-up standbys, every process running, every daemon up with its first config.
#[derive(Clone, Debug)]
pub enum Event {
    /// Node `node`'s process is now `proc`.
    Proc { node: usize, proc: Proc },
    /// Node `node`'s role is now `role` (a promotion began, or failed).
    Role { node: usize, role: Role },
    /// Node `node` (a writable primary) committed, up to `lsn`: a client's write or a daemon's
    /// heartbeat. Acknowledged at once with `synchronous_mode` off (the schedule's mode);
    /// otherwise a client's write is acknowledged by [`Event::Acked`].
    Wrote { node: usize, lsn: u64 },
    /// With `synchronous_mode` on or strict (only then sent): node `node` acknowledged to its
    /// client the commit ending at `lsn` (sent as [`Event::Wrote`] when it went into the WAL),
    /// `synchronous`ly (its `synchronous_standby_names` asked for standbys, which flushed it) or
    /// not (an empty setting). The daemons' heartbeats are not client commits: never sent.
    Acked { node: usize, lsn: u64, synchronous: bool },
    /// Node `node`'s `synchronous_standby_names` now lists the nodes of bit mask `listed`
    /// (sent for a setting that lists some).
    Listed { node: usize, listed: u64 },
    /// Standby `node` received and replayed up to `lsn`.
    Replayed { node: usize, lsn: u64 },
    /// `pg_rewind` made `node` a standby of `master` at `lsn`: its own commits are gone.
    Rewound { node: usize, master: usize, lsn: u64 },
    /// A promotion landed: `node` is a primary on `timeline`, forked at its position.
    Promoted { node: usize, timeline: u32 },
    /// Autofollow made `node` a standby of `master`.
    Followed { node: usize, master: usize },
    /// A supervisor started fenced `node` again.
    Revived { node: usize },
    /// Every probe of `node` times out until `until` (its host stalls: a late promotion).
    Late { node: usize, until: Us },
    /// Host `host` (its daemon and its PostgreSQL) froze whole, or resumed.
    HostFrozen { host: usize, frozen: bool },
    /// Daemon `daemon` stopped; it starts again at `until`.
    DaemonDown { daemon: usize, until: Us },
    /// Daemon `daemon` started, with an empty memory and nothing published.
    DaemonUp { daemon: usize },
    /// Daemon `daemon` runs `config` (a reload).
    Config { daemon: usize, config: Arc<Config> },
    /// Daemon `daemon` published its polls: bit `n` of `primaries` set when it sees node `n`
    /// connected as a primary.
    Published { daemon: usize, primaries: u64 },
    /// Daemon `daemon` starts its failover command (`old_master` as decide() gave it).
    FailoverStarted { daemon: usize, old_master: Option<String> },
    /// Daemon `daemon` starts its fence command, which will do `what`.
    FenceStarted { daemon: usize, what: Fence },
    /// The fence command of `node` acted (the node is stopped, unless it was dead).
    FenceActed { node: usize },
    /// The world handled one of its events: the state is whole again.
    Settled,
    /// The schedule's end.
    End,
}
