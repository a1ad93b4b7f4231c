//! The decision core's vocabulary, shared by every rule module: what the poller saw
//! ([`View`]), what the shell is asked to do ([`Action`], [`Alert`]), what one decision says
//! ([`Decision`]), and how a rule module adds reasons and actions and ends a round (`Out`,
//! `End`). A leaf: it imports no other module of `decide`.

use crate::state::NodeState;
use crate::state::ObserverState;
use crate::state::Timestamp;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;
use std::ops::{Add, AddAssign, Sub};

/// An instant on this daemon's monotonic clock (`clock::monotonic()`, seconds from an arbitrary
/// start). Its own type so that it is never mixed up with a wall-clock [`Timestamp`] (the other
/// daemons' clocks, the state file) nor with another daemon's monotonic clock. Durations stay
/// plain `f64` seconds: they come from the config in seconds, and a difference may be negative
/// (a wall-clock step), which `std::time::Duration` cannot hold.
#[derive(Clone, Copy, Debug, Default, PartialEq, PartialOrd, Serialize)]
#[serde(transparent)]
pub struct Mono(pub f64);

impl Mono {
    pub fn max(self, other: Mono) -> Mono {
        Mono(self.0.max(other.0))
    }
    pub fn min(self, other: Mono) -> Mono {
        Mono(self.0.min(other.0))
    }
}

impl Sub for Mono {
    /// The seconds from `rhs` to `self`.
    type Output = f64;
    fn sub(self, rhs: Mono) -> f64 {
        self.0 - rhs.0
    }
}

impl Add<f64> for Mono {
    type Output = Mono;
    fn add(self, secs: f64) -> Mono {
        Mono(self.0 + secs)
    }
}

impl AddAssign<f64> for Mono {
    fn add_assign(&mut self, secs: f64) {
        self.0 += secs;
    }
}

impl Sub<f64> for Mono {
    type Output = Mono;
    fn sub(self, secs: f64) -> Mono {
        Mono(self.0 - secs)
    }
}

impl fmt::Display for Mono {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// What the poller saw, as of one decision.
#[derive(Clone, Copy, Debug)]
pub struct View<'a> {
    /// Our own polls of every node (kept across failed polls, as upstream).
    pub nodes: &'a BTreeMap<String, NodeState>,
    /// The observers' reports.
    pub observers: &'a BTreeMap<String, ObserverState>,
    /// Completed poll rounds so far. Grows by one per round.
    pub poll_round: u64,
    /// Wall clock, only to compare with `db_time`/`fetch_time` from the documents, as upstream.
    pub wall_now: Timestamp,
    /// `clock::monotonic()` seconds; `replication_start_time` uses the same base.
    pub mono_now: Mono,
    /// Whether `maintenance_mode_file` exists (the shell looked), or counts as present
    /// because the look did not answer in time.
    pub maintenance_mode: bool,
    /// Whether the look answered in time that `maintenance_mode_file` exists: only then does
    /// our daemon publish a standing yield (`failover::standing_yield`). An unanswered look
    /// blocks a failover as before, but does not yield (its end would cost a quiet period).
    pub maintenance_seen: bool,
    /// Whether a failover command is running right now.
    pub failover_running: bool,
    /// Starts at 1 with the first config and grows by one per successful reload.
    pub config_version: u64,
}

/// The alert files, by the original's names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Alert {
    AuthenticationError,
    MultipleMasterWarning,
    ReplicationDelayWarning,
    FailoverHasHappened,
    /// Ours: this daemon fenced its node; removed when the node is a standby again.
    Fenced,
    /// Ours: a fence command exited 0 but a later poll showed our node a connected primary
    /// without a lease (a supervisor restarted it, the command missed it); the daemon fences
    /// again. Removed when the node is a standby again or its fence is lifted.
    FenceFailed,
    /// Ours: a voter publishes a voter-set digest other than ours (the daemons count different
    /// sets, so the lease and the promotion rules are not complements); this daemon does not
    /// promote while it is up.
    VotersMismatch,
    /// Ours: a failover is due but every candidate is beyond `max_failover_lag_bytes`;
    /// removed when a master is connected again.
    FailoverBlocked,
    /// Ours: bringing our old primary back as a standby failed (the file holds the reason);
    /// removed when our node is a standby receiving WAL from the new master.
    RejoinFailed,
    /// Ours: rebuilding our node with `reinit_command` failed (the file holds the reason); the
    /// old data directory is back in place and the node stopped. Removed by a reinit that
    /// succeeds.
    ReinitFailed,
    /// Ours: `synchronous_mode` on, and too few standbys stream: the primary acknowledges
    /// writes with no standby (synchronous_standby_names is empty); removed when they stream.
    SynchronousDegraded,
    /// Ours: a `synchronous_standby_names` the primary's daemon asked for was not in effect in
    /// time (privileges? the log says); removed when the wanted value is in effect.
    SynchronousSettingFailed,
    /// Ours: the cluster has been paused (`pglookout-ctl pause`) for `pause_alert_after`:
    /// nothing fails over; removed on resume.
    ClusterPaused,
}

impl Alert {
    pub const ALL: [Alert; 13] = [
        Alert::AuthenticationError,
        Alert::MultipleMasterWarning,
        Alert::ReplicationDelayWarning,
        Alert::FailoverHasHappened,
        Alert::Fenced,
        Alert::FenceFailed,
        Alert::FailoverBlocked,
        Alert::RejoinFailed,
        Alert::ReinitFailed,
        Alert::VotersMismatch,
        Alert::SynchronousDegraded,
        Alert::SynchronousSettingFailed,
        Alert::ClusterPaused,
    ];

    /// The file name inside `alert_file_dir`.
    pub fn file_name(self) -> &'static str {
        match self {
            Alert::AuthenticationError => "authentication_error",
            Alert::MultipleMasterWarning => "multiple_master_warning",
            Alert::ReplicationDelayWarning => "replication_delay_warning",
            Alert::FailoverHasHappened => "failover_has_happened",
            Alert::Fenced => "fenced",
            Alert::FenceFailed => "fence_failed",
            Alert::VotersMismatch => "voters_mismatch",
            Alert::FailoverBlocked => "failover_blocked",
            Alert::RejoinFailed => "rejoin_failed",
            Alert::ReinitFailed => "reinit_failed",
            Alert::SynchronousDegraded => "synchronous_degraded",
            Alert::SynchronousSettingFailed => "synchronous_setting_failed",
            Alert::ClusterPaused => "cluster_paused",
        }
    }
}

/// Something the shell should do. The shell carries them out in order.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Poll every node (and observer, if observers are being polled) now.
    RequestPoll,
    /// Run `failover_command`, then report with [`crate::decide::Memory::record_failover_result`].
    RunFailoverCommand {
        reason: String,
        old_master: Option<String>,
    },
    /// Run `over_warning_limit_command`.
    RunWarningCommand,
    /// Run `fence_command` (our node must stop taking writes), then report with
    /// [`crate::decide::Memory::record_fence_result`].
    RunFenceCommand {
        reason: String,
        new_master: Option<String>,
    },
    CreateAlert(Alert),
    /// Create the alert file, or write it again, holding this text (ours: the reason).
    WriteAlert(Alert, String),
    DeleteAlert(Alert),
    /// Point our standby at `master` (rewrite `primary_conninfo`, restart if it changed).
    FollowMaster {
        master: String,
    },
    /// Make our node, the old primary, a standby of `master` (`rejoin_old_master`: stop it,
    /// `pg_rewind`, standby settings, start), then report with
    /// [`crate::decide::Memory::record_rejoin_result`].
    RejoinNewPrimary {
        master: String,
    },
    /// A StatsD gauge (`pg.replication_lag`); the shell adds the configured tags.
    StatsdGauge {
        name: String,
        value: f64,
    },
    /// A StatsD counter increment (`failover_decision_on_disconnect_not_taken`); the shell
    /// adds the configured tags.
    StatsdCount {
        name: String,
    },
    /// Set our primary's `synchronous_standby_names` (`ALTER SYSTEM`, then `pg_reload_conf()`);
    /// `None`: `ALTER SYSTEM RESET` (the server's own setting again). Not waited for: the next
    /// poll shows whether it took. `reason`: for the log and the history.
    SetSynchronousNames {
        value: Option<String>,
        reason: String,
    },
    /// Our standby stops confirming WAL to `master` (`cut`: `ALTER SYSTEM SET primary_conninfo
    /// = ''`, the value replaced kept by the shell) or streams from it again (`ALTER SYSTEM SET
    /// primary_conninfo` to that value, or from `primary_conninfo_template`); then
    /// `pg_reload_conf()`. Not waited for: the next poll shows whether it took.
    SetWalReceiver {
        cut: bool,
        master: String,
    },
    /// Whether the poller should poll the observers (poll_observers_on_warning_only). Sent
    /// when the wanted state changes, and once at the start.
    SetObserverPolling(bool),
}

/// The outcome of one [`crate::decide::decide`] call.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Decision {
    pub actions: Vec<Action>,
    /// Why, step by step, for the log.
    pub reasons: Vec<String>,
    /// One stable line, e.g. `no action: node pg3 is furthest along`. Holds no numbers that
    /// change every round, so that it only changes when the situation does.
    pub summary: String,
    /// `summary` differs from the last one that was not a transient wait (log on change).
    pub changed: bool,
    /// The current master after this decision.
    pub master: Option<String>,
}

/// Reasons and actions gathered while deciding.
#[derive(Default)]
pub(super) struct Out {
    pub(super) actions: Vec<Action>,
    pub(super) reasons: Vec<String>,
}

impl Out {
    pub(super) fn act(&mut self, a: Action) {
        self.actions.push(a);
    }
    pub(super) fn why(&mut self, r: impl Into<String>) {
        self.reasons.push(r.into());
    }
}

/// How one decision ended.
pub(super) struct End {
    pub(super) summary: String,
    /// A short wait (for a poll we asked for): not worth a log line of its own.
    pub(super) transient: bool,
}

pub(super) fn done(summary: impl Into<String>) -> End {
    End {
        summary: summary.into(),
        transient: false,
    }
}

pub(super) fn waiting(summary: impl Into<String>) -> End {
    End {
        summary: summary.into(),
        transient: true,
    }
}

/// Seconds from `earlier` to `later` (negative if `later` is before).
pub(super) fn secs_between(later: Timestamp, earlier: Timestamp) -> f64 {
    let d = later.signed_duration_since(earlier);
    d.num_seconds() as f64 + f64::from(d.subsec_nanos()) / 1e9
}
