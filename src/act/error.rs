//! Why an action on our own node failed (autofollow's rewrite, the rejoin): [`ActError`], one
//! type for the whole of `act/`, saying what failed, at which [`Step`], and a command's output
//! where there is one ([`super::command::Ran`]). Its text is what operators read: the log line,
//! the `rejoin_failed` alert file, the `rejoin_finished` history event and `pglookout-ctl
//! rejoin`'s answer; one line, and never a password (commands are shown by their config key
//! and program, never their arguments; conninfo strings never appear).

use super::command::Ran;
use std::path::PathBuf;
use std::time::Duration;

/// The step of an action where it failed, as the operator knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Pointing the node at the new primary: `primary_conninfo` in `postgresql.auto.conf` and
    /// `standby.signal` (12 on), or `recovery.conf` (before), then checking them (autofollow
    /// and the rejoin's step 5).
    StandbySettings,
    /// Stopping PostgreSQL before the rewind (the rejoin's step 1).
    Stop,
    /// Reading `pg_controldata` (step 2).
    ControlData,
    /// Crash recovery as a standby of a node that did not shut down cleanly, before
    /// PostgreSQL 13 (part of step 4).
    CrashRecovery,
    /// `pg_rewind`, with saving and restoring the node's own configuration files (step 4).
    Rewind,
    /// Starting PostgreSQL as a standby (step 6).
    Start,
    /// The reinit's checks before anything changes (`act::reinit`).
    ReinitCheck,
    /// `reinit_command` building the side directory, and the checks of what it built.
    ReinitBuild,
    /// Swapping the rebuilt directory in for the old one, or back after a failure.
    ReinitSwap,
    /// Waiting for the rebuilt node to stream from the primary.
    Stream,
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Step::StandbySettings => "writing the standby settings",
            Step::Stop => "stopping PostgreSQL",
            Step::ControlData => "reading the control file",
            Step::CrashRecovery => "crash recovery as a standby",
            Step::Rewind => "rewinding the data directory",
            Step::Start => "starting PostgreSQL as a standby",
            Step::ReinitCheck => "checking before the reinit",
            Step::ReinitBuild => "rebuilding the data directory with reinit_command",
            Step::ReinitSwap => "swapping the rebuilt data directory in",
            Step::Stream => "waiting for the rebuilt node to stream",
        })
    }
}

/// Why an action failed; see the module doc.
#[derive(Debug, thiserror::Error)]
pub enum ActError {
    /// A setting the action needs is not set; with two keys, neither is.
    #[error("{}", not_set(.keys))]
    NotConfigured { keys: &'static [&'static str] },
    /// The node to follow or rewind from has no entry in `remote_conns`.
    #[error("{node} is not in remote_conns")]
    UnknownNode { node: String },
    /// The node's entry in `remote_conns` names no host to `purpose` (follow, rewind from).
    #[error("remote_conns.{node} has no host to {purpose}")]
    NoHost { node: String, purpose: &'static str },
    /// The node to follow is our own.
    #[error("{node} is our own node")]
    OwnNode { node: String },
    /// The conninfo template `key` holds an `sslpassword`, which would show on `pg_rewind`'s
    /// command line.
    #[error("{key}: sslpassword would show on pg_rewind's command line; use a key without a passphrase")]
    SslPassword { key: &'static str },
    /// A file in the data directory could not be read or written; `op` is the verb ("read",
    /// "write", "create", "restore").
    #[error("{step}: cannot {op} {}: {source}", .path.display())]
    Io {
        step: Step,
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// File work in the data directory did not answer within the step's deadline (a hung mount).
    #[error("{step} did not finish within {} s", .after.as_secs_f64())]
    Timeout { step: Step, after: Duration },
    /// The task doing the step's file work crashed.
    #[error("{step}: the task doing it crashed: {reason}")]
    Crashed { step: Step, reason: String },
    /// A command failed (or, for `pg_controldata`, could not be read).
    #[error("{step}: {ran}")]
    Command { step: Step, ran: Box<Ran> },
    /// PostgreSQL still runs after `pg_stop_command`.
    #[error("{step}: PostgreSQL still runs in {} after {stop}", .data_dir.display())]
    StillRunning {
        step: Step,
        data_dir: PathBuf,
        stop: Box<Ran>,
    },
    /// `pg_controldata` printed no "Database cluster state" line.
    #[error("{}: no \"Database cluster state\" line for {}", Step::ControlData, .data_dir.display())]
    NoClusterState { data_dir: PathBuf },
    /// After crash recovery as a standby, the node did not shut down cleanly.
    #[error("{}: after it, the cluster state is {state:?}, not shut down", Step::CrashRecovery)]
    NotShutDown { state: String },
    /// Neither `wal_log_hints` nor data checksums: `pg_rewind` cannot run.
    #[error(
        "pg_rewind needs wal_log_hints = on or data checksums, and {} has neither (wal_log_hints setting: off, data page checksum version: 0); rebuild this node from {master} instead",
        .data_dir.display()
    )]
    NoRewindSupport { data_dir: PathBuf, master: String },
    /// After writing the standby settings (12 on), `standby.signal` is missing.
    #[error("{}: {} is missing", Step::StandbySettings, .path.display())]
    NoStandbySignal { path: PathBuf },
    /// After writing the standby settings (before 12), the last `standby_mode` in
    /// `recovery.conf` (`None`: there is none) is not on.
    #[error("{}: {}: standby_mode is {}, not on", Step::StandbySettings, .path.display(), .value.as_deref().map_or("unset".into(), |v| format!("{v:?}")))]
    StandbyModeOff { path: PathBuf, value: Option<String> },
    /// A reinit step failed for a reason that is not a command's or a file's (our node answers
    /// as a primary, what `reinit_command` built is not a data directory...).
    #[error("{step}: {why}")]
    Reinit { step: Step, why: String },
    /// A rejoin's rewind failed, and so did the rebuild (`reinit_command`) tried instead.
    #[error("the rewind failed ({rewind}); the reinit tried instead failed too: {reinit}")]
    RewindThenReinit {
        rewind: Box<ActError>,
        reinit: Box<ActError>,
    },
    /// Autofollow refuses a data directory last a primary's (`marker`, `standby.signal` or
    /// `recovery.conf`, does not exist): it may have diverged.
    #[error(
        "{} does not exist: this data directory was last a primary's and may have diverged; \
         autofollow leaves it stopped (bring it back with pg_rewind: rejoin_old_master or \
         pglookout-ctl rejoin, or rebuild it)",
        .marker.display()
    )]
    FormerPrimary { marker: PathBuf },
}

/// [`ActError::NotConfigured`]'s text.
fn not_set(keys: &[&str]) -> String {
    match keys {
        [one] => format!("{one} is not set"),
        keys => format!("neither {} is set", keys.join(" nor ")),
    }
}
