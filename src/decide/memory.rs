//! What the decision core remembers between rounds ([`Memory`], owned by the daemon loop), and
//! the results the shell reports back into it (`record_*_result`). One retry rule
//! ([`Backoff`] over [`Failures`]) serves the failover, fence and rejoin commands.
//! Imports only [`super::types`], [`super::voters`] and the parts' own memories.

use super::candidacy::Candidacy;
use super::receiver::ReceiverMemory;
use super::sync_manager::SyncMemory;
use super::types::Action;
use super::types::Alert;
use super::types::Mono;
use crate::config::Config;
use crate::state::Timestamp;
use serde::Serialize;

/// A command's retry rule after failures in a row: the first wait `initial` seconds, doubling
/// on each further failure up to `max`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Backoff {
    pub initial: f64,
    pub max: f64,
}

impl Backoff {
    /// The wait after `n` failures in a row (none after 0).
    pub fn wait(self, n: u32) -> f64 {
        match n {
            0 => 0.0,
            n => (self.initial * f64::from(1u32 << (n - 1).min(16))).min(self.max),
        }
    }
}

/// A command's failures in a row, and when the last one was (`mono`).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Failures {
    pub consecutive: u32,
    pub last: Option<Mono>,
}

impl Failures {
    pub fn failed(&mut self, mono_now: Mono) {
        self.consecutive = self.consecutive.saturating_add(1);
        self.last = Some(mono_now);
    }
    pub fn clear(&mut self) {
        *self = Failures::default();
    }
    /// When the command may run again (`None`: no failure to wait out).
    pub fn retry_at(&self, backoff: Backoff) -> Option<Mono> {
        Some(self.last? + backoff.wait(self.consecutive))
    }
}

/// The failover command: first retry after 5 s, doubling up to 300 s.
pub const FAILOVER_BACKOFF: Backoff = Backoff {
    initial: FAILOVER_RETRY_INITIAL_SECS,
    max: FAILOVER_RETRY_MAX_SECS,
};
/// First wait before running a failed failover command again; doubles on each failure.
pub const FAILOVER_RETRY_INITIAL_SECS: f64 = 5.0;
/// Longest wait between two attempts of a failing failover command.
pub const FAILOVER_RETRY_MAX_SECS: f64 = 300.0;
/// Wait between two attempts to follow a master after a failed one (upstream retried a
/// failed reload-triggered follow on every loop, and never retried one after a master change).
pub const FOLLOW_RETRY_SECS: f64 = 30.0;

/// First wait before running a failed fence command again; doubles up to 60 s.
pub const FENCE_RETRY_INITIAL_SECS: f64 = 1.0;
pub const FENCE_RETRY_MAX_SECS: f64 = 60.0;
/// The fence command, and a fence that did not hold: first retry after 1 s, doubling up to 60 s.
pub const FENCE_BACKOFF: Backoff = Backoff {
    initial: FENCE_RETRY_INITIAL_SECS,
    max: FENCE_RETRY_MAX_SECS,
};

/// What the fence rules remember.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct FenceMemory {
    /// `mono` of the last lease renewal (at least half of the voters reported our node
    /// connected); `None` until the first, when the daemon's start stands in. Kept while
    /// fencing is off too, so that a reload that turns it on counts from the last time the
    /// voters vouched: not from a start days ago (that lease would have run out, and fence a
    /// healthy primary at once), and not from the reload either (a standby whose daemon had
    /// fencing on all along counts from when it saw the primary gone).
    pub vouched_at: Option<Mono>,
    /// The fence command and the fence it makes (see [`FenceState`]).
    pub state: FenceState,
    /// Failures of the command in a row.
    pub failures: Failures,
    /// Fences that exited 0 and did not hold (our node answered as a primary without a lease
    /// afterwards), in a row; `fence_failed` is up while it is not 0.
    pub not_held: u32,
    /// `poll_round` of the first decision that saw our node never reached since this daemon
    /// started: rule 1b of `fence::stale_primary` waits for a later round that fails to reach
    /// it too, so one slow first probe of a healthy standby does not stop it.
    pub unreached_since_round: Option<u64>,
}

/// The fence's life: `Idle` -> `Running` (we ordered it; the fence counts as in force from
/// the order) -> `Fenced` when the command succeeds, `Idle` when it fails. A fence is lifted
/// (`Fenced` -> `Idle`, or `Running` keeps running with no fence) when our node is seen as a
/// standby again, or as a primary vouched for again (brought back on purpose).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FenceState {
    #[default]
    Idle,
    /// The command runs since `since` (`mono`); `fence` is the fence it makes, `None` once it
    /// was lifted while the command ran.
    Running { since: Mono, fence: Option<Fenced> },
    /// The command succeeded: the fence in force.
    Fenced(Fenced),
}

impl FenceState {
    /// The fence in force (ordered or done): why, and when it was ordered.
    pub fn fenced(&self) -> Option<&Fenced> {
        match self {
            FenceState::Running { fence, .. } => fence.as_ref(),
            FenceState::Fenced(f) => Some(f),
            FenceState::Idle => None,
        }
    }

    /// When the running command started.
    pub fn running_since(&self) -> Option<Mono> {
        match self {
            FenceState::Running { since, .. } => Some(*since),
            _ => None,
        }
    }

    /// We run the command now for `fence`.
    pub(super) fn order(&mut self, now: Mono, fence: Fenced) {
        debug_assert!(self.running_since().is_none(), "one fence command at a time");
        *self = FenceState::Running {
            since: now,
            fence: Some(fence),
        };
    }

    /// The fence no longer holds; the fence it was, if there was one. A running command runs on.
    pub(super) fn lift(&mut self) -> Option<Fenced> {
        match self {
            FenceState::Running { fence, .. } => fence.take(),
            FenceState::Fenced(_) => match std::mem::take(self) {
                FenceState::Fenced(f) => Some(f),
                _ => None,
            },
            FenceState::Idle => None,
        }
    }

    /// The command ended: its fence is in force after a success, none after a failure.
    fn ended(&mut self, ok: bool) {
        *self = match std::mem::take(self) {
            _ if !ok => FenceState::Idle,
            FenceState::Running { fence: Some(f), .. } => FenceState::Fenced(f),
            FenceState::Running { fence: None, .. } => FenceState::Idle,
            done => done,
        };
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Fenced {
    pub at: Mono,
    pub reason: String,
    /// The poll round of the first decision after the command succeeded, which asked for a
    /// fresh poll: every later round began after the fence, so what it shows of our node is
    /// after the fence.
    pub verify_from_round: Option<u64>,
}

impl Memory {
    /// The fence command finished; a failure is retried after a backoff, a success is never
    /// repeated for the same event.
    pub fn record_fence_result(&mut self, ok: bool, mono_now: Mono) {
        // a failure: not fenced after all, the rules run again once the backoff has passed
        self.fence.state.ended(ok);
        if ok {
            self.fence.failures.clear();
        } else {
            self.fence.failures.failed(mono_now);
        }
    }
}

/// First wait before trying a failed rejoin again; doubles on each failure.
pub const REJOIN_RETRY_INITIAL_SECS: f64 = 30.0;
/// Longest wait between two attempts of a failing rejoin.
pub const REJOIN_RETRY_MAX_SECS: f64 = 600.0;
/// The rejoin: first retry after 30 s, doubling up to 600 s.
pub const REJOIN_BACKOFF: Backoff = Backoff {
    initial: REJOIN_RETRY_INITIAL_SECS,
    max: REJOIN_RETRY_MAX_SECS,
};
/// Extra time past the steps' own deadlines after which a rejoin we never heard back about
/// counts as failed (the shell always reports; this only keeps a lost report from blocking
/// rejoins forever).
pub const REJOIN_RESULT_GRACE_SECS: f64 = 60.0;

/// What the rejoin rule remembers.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct RejoinMemory {
    /// Our node was the master we knew (a connected primary while it was the current master);
    /// cleared when it is seen as a standby.
    pub was_master: bool,
    /// The command and what it did (see [`RejoinState`]).
    pub state: RejoinState,
    /// Failures of the command in a row.
    pub failures: Failures,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// The `rejoin_failed` alert may be up (a failure since it was last removed, or a daemon
    /// start: a file left by an earlier run is removed too).
    pub alert: bool,
}

/// The rejoin's life: `Idle` -> `Running` (we emitted [`Action::RejoinNewPrimary`]) ->
/// `Rejoined` when it made our node a standby of `master` (not run again for it), `Idle` when
/// it failed (retried after the backoff). `Rejoined` -> `Idle` when our node is the master
/// again.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RejoinState {
    #[default]
    Idle,
    Running {
        since: Mono,
    },
    Rejoined {
        master: String,
    },
}

impl RejoinState {
    /// When the running rejoin started.
    pub fn running_since(&self) -> Option<Mono> {
        match self {
            RejoinState::Running { since } => Some(*since),
            _ => None,
        }
    }

    /// The master our node was made a standby of.
    pub fn rejoined(&self) -> Option<&str> {
        match self {
            RejoinState::Rejoined { master } => Some(master),
            _ => None,
        }
    }

    /// We run the rejoin now.
    pub(super) fn order(&mut self, now: Mono) {
        debug_assert!(self.running_since().is_none(), "one rejoin at a time");
        *self = RejoinState::Running { since: now };
    }

    /// Our node is the master again: a rejoin done for another master no longer holds.
    pub(super) fn forget(&mut self) {
        if self.rejoined().is_some() {
            *self = RejoinState::Idle;
        }
    }

    /// The command ended (or its deadline passed): done for `master` after a success.
    fn ended(&mut self, master: &str, ok: bool) {
        *self = match ok {
            true => RejoinState::Rejoined {
                master: master.to_string(),
            },
            false => RejoinState::Idle,
        };
    }
}

impl RejoinMemory {
    /// The memory of a daemon that starts now: an alert file left by an earlier run counts as
    /// possibly up.
    pub fn new() -> Self {
        RejoinMemory {
            alert: true,
            ..Default::default()
        }
    }
}

impl Memory {
    /// The rejoin of our node to `master` finished. A failure raises `rejoin_failed` (the
    /// shell has written the reason into it) and is retried after a backoff.
    pub fn record_rejoin_result(&mut self, master: &str, result: Result<(), String>, mono_now: Mono) {
        self.rejoin.state.ended(master, result.is_ok());
        match result {
            Ok(()) => {
                self.rejoin.failures.clear();
                self.rejoin.last_error = None;
            }
            Err(e) => {
                self.rejoin.failures.failed(mono_now);
                self.rejoin.last_error = Some(e);
                self.rejoin.alert = true;
                self.push_pending(Action::CreateAlert(Alert::RejoinFailed));
            }
        }
    }

    /// When a failed rejoin may run again (`None`: no failure to wait out).
    pub fn rejoin_retry_at(&self) -> Option<Mono> {
        self.rejoin.failures.retry_at(REJOIN_BACKOFF)
    }
}

/// A poll we asked for and are waiting on.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct PendingPoll {
    /// `poll_round` when we asked: any greater round answers it.
    pub round: u64,
    /// `mono_now` when we asked.
    pub at: Mono,
}

/// When we crossed the warning limit, for the poll_observers_on_warning_only wait.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct ObserverWait {
    /// Compared with the observers' fetch times, which are our own wall clock.
    pub wall: Timestamp,
    /// For the elapsed time.
    pub mono: Mono,
}

/// Bookkeeping of the failover command.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct FailoverAttempts {
    /// Set when we emitted the command; cleared by [`Memory::record_failover_result`].
    pub running_since: Option<Mono>,
    /// `failover_sleep_time` as it was when the command was emitted.
    pub sleep_after: f64,
    /// Failures of the command in a row.
    pub failures: Failures,
    /// When the command last succeeded: a promotion may take a moment to show, and the
    /// command (which may move addresses or fence) must not run again meanwhile.
    pub last_success: Option<Mono>,
    /// When a poll first showed our node as a connected primary after the last success (see
    /// `end_promoting`).
    pub primary_seen_at: Option<Mono>,
    /// Our failover command has run since our node was last seen as a connected standby: a
    /// node we cannot see may have been promoted by it, so the lease applies to it.
    pub since_standby: bool,
}

/// Bookkeeping of autofollow.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct FollowAttempts {
    /// The master whose last follow attempt failed.
    pub failed: Option<String>,
    /// `mono` of the last [`Action::FollowMaster`] we emitted.
    pub last_attempt: Option<Mono>,
}

/// How long a manual failover request (`pglookout-ctl failover`) holds: the operator's word
/// is for now, not for the next outage.
pub const MANUAL_FAILOVER_VALID_SECS: f64 = 60.0;

/// What the decision loop remembers between rounds. Owned by the daemon loop.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Memory {
    /// The master we last knew; a round with no master does not clear it.
    pub current_master: Option<String>,
    pub replication_lag_over_warning_limit: bool,
    /// `mono` of start, or of the last reload that changed `remote_conns`.
    pub cluster_nodes_change_time: Mono,
    /// A reload changed `remote_conns` since the start (what the grace period's reason says).
    pub cluster_nodes_reloaded: bool,
    /// The master is missing and we asked for a fresh poll before acting.
    pub missing_master_poll: Option<PendingPoll>,
    /// The config was reloaded and we asked for a fresh poll before deciding again.
    pub reload_poll: Option<PendingPoll>,
    /// Set on crossing the warning limit when poll_observers_on_warning_only is on.
    pub observer_state_newer_than: Option<ObserverWait>,
    /// The config version we have acted on (`None`: no decision yet).
    pub applied_config_version: Option<u64>,
    pub follow: FollowAttempts,
    pub failover: FailoverAttempts,
    /// failover_sleep_time: no new decision before this `mono`.
    pub no_decision_before: Option<Mono>,
    /// The last observer-polling state we asked for.
    pub observer_polling: Option<bool>,
    /// The last non-transient summary.
    pub last_summary: Option<String>,
    /// `mono` when this memory began (the daemon started).
    pub started_at: Mono,
    /// Fencing of our own node (see `fence`).
    pub fence: FenceMemory,
    /// The master we would replace (`None`: none seen since start), and since when (`mono`,
    /// the first decision that saw it) a strict majority of the voters has reported it gone
    /// with no connected master anywhere (`decide::voters`): the failover timeout of every
    /// promotion path with `fence_command`, and of `unreachable_master_failover_timeout`.
    pub master_gone_since: Option<(Option<String>, Mono)>,
    /// The node daemons seen to count another voter set (their digest, their own or relayed,
    /// differs from ours), until a fresh report shows them counting ours or a reload
    /// (`voters_mismatch` is up while this is not empty).
    pub voters_mismatch: Vec<String>,
    /// The config version the mismatch above was found under (a reload starts it afresh).
    pub voters_checked_config: Option<u64>,
    /// The `failover_blocked` alert file is up, with this reason: the candidate is beyond the
    /// data-loss cap, or no standby is known to have every acknowledged write, so we do not
    /// fail over.
    pub failover_blocked: Option<String>,
    /// Our node as a failover candidate: whom we defer to, what blocks us, the promotion we
    /// announce, our yield (see [`Candidacy`]).
    pub candidacy: Candidacy,
    /// Bringing our old primary back (see `rejoin`).
    pub rejoin: RejoinMemory,
    /// Keeping our primary's synchronous_standby_names (see `sync_manager`).
    pub sync: SyncMemory,
    /// Our standby's WAL receiver, cut from a primary the voters report gone (see `receiver`).
    pub receiver: ReceiverMemory,
    /// When the operator asked for a failover to our node (`pglookout-ctl failover`): for
    /// [`MANUAL_FAILOVER_VALID_SECS`] it skips the rest of the lag window (never the failover
    /// timeout of `fence_command`, the lease, the synchronous or any candidate rule).
    pub manual_failover: Option<Mono>,
    /// The cluster-wide pause we hold (see `pause`): ours, or the newest a voter published.
    pub pause: Option<crate::state::Pause>,
    /// `cluster_paused` is up.
    pub pause_alerted: bool,
    /// A switchover we run, or a promotion one asks of our node (see `switchover`).
    pub switchover: SwitchoverMemory,
    /// Actions that came out of a reported result, emitted with the next decision.
    #[serde(skip)]
    pub(super) pending_actions: Vec<Action>,
}

impl Memory {
    /// The memory of a daemon that starts now: no master known, the grace period after a
    /// change of `remote_conns` starting now.
    pub fn new(mono_now: Mono) -> Self {
        Memory {
            current_master: None,
            replication_lag_over_warning_limit: false,
            cluster_nodes_change_time: mono_now,
            cluster_nodes_reloaded: false,
            missing_master_poll: None,
            reload_poll: None,
            observer_state_newer_than: None,
            applied_config_version: None,
            follow: FollowAttempts::default(),
            failover: FailoverAttempts::default(),
            no_decision_before: None,
            observer_polling: None,
            last_summary: None,
            started_at: mono_now,
            fence: Default::default(),
            master_gone_since: None,
            voters_mismatch: Vec::new(),
            voters_checked_config: None,
            failover_blocked: None,
            candidacy: Candidacy::default(),
            rejoin: RejoinMemory::new(),
            sync: SyncMemory::default(),
            receiver: ReceiverMemory::default(),
            manual_failover: None,
            pause: None,
            pause_alerted: false,
            switchover: Default::default(),
            pending_actions: Vec::new(),
        }
    }

    /// Whether a manual failover to our node was asked for within [`MANUAL_FAILOVER_VALID_SECS`].
    pub fn manual_failover_asked(&self, mono_now: Mono) -> bool {
        self.manual_failover
            .is_some_and(|at| mono_now - at < MANUAL_FAILOVER_VALID_SECS)
    }

    /// Whether the cluster is paused (`pglookout-ctl pause`).
    pub fn paused(&self) -> bool {
        self.pause.as_ref().is_some_and(|p| p.paused)
    }

    /// An action to emit with the next decision (it came out of a reported result).
    pub(super) fn push_pending(&mut self, a: Action) {
        self.pending_actions.push(a);
    }

    /// A config was reloaded: a change of `remote_conns` restarts the missing-master grace
    /// period. (The new config's version, in the next [`super::types::View`], makes the decision wait for a
    /// fresh poll.)
    pub fn config_reloaded(&mut self, old: &Config, new: &Config, mono_now: Mono) {
        if new.remote_conns != old.remote_conns {
            self.nodes_changed(mono_now);
            self.cluster_nodes_reloaded = true;
        }
        // A standby's failover timeout counts over one voter set: a reload that turns fencing
        // on or changes the voters starts it afresh (only later, never earlier, so safe). The
        // lease is not restarted: it counts from the last time the voters vouched, which is
        // kept while fencing is off (restarting it would let a primary whose daemon turns
        // fencing on late outlive the lease its standbys count on), or from the reload if
        // they never did since the start.
        let fencing_on = new.fence_command.is_some() && old.fence_command.is_none();
        if fencing_on || super::voters::names(new) != super::voters::names(old) {
            self.master_gone_since = None;
            // never vouched for since the start (no voters before, say): the new voters get a
            // fence_timeout to answer
            self.fence.vouched_at.get_or_insert(mono_now);
        }
    }

    /// `remote_conns` changed (or, in tests, changed `mono_now` ago): the grace period restarts.
    pub fn nodes_changed(&mut self, mono_now: Mono) {
        self.cluster_nodes_change_time = mono_now;
    }

    /// Following `master` (a [`Action::FollowMaster`]) finished; a failure is retried every
    /// [`FOLLOW_RETRY_SECS`] while `master` stays the master and autofollow stays on.
    pub fn record_follow_result(&mut self, master: &str, ok: bool) {
        if ok {
            if self.follow.failed.as_deref() == Some(master) {
                self.follow.failed = None;
            }
        } else {
            self.follow.failed = Some(master.to_string());
        }
    }

    /// The failover command finished (`ok`: exit status 0), failed, timed out or could not be
    /// started (`ok` false for all three). Success clears the lag warning (its alert is deleted
    /// with the next decision); failure starts or extends the retry backoff. Either way
    /// `failover_sleep_time` starts now.
    ///
    /// After a success our "promoting" stays announced until our own poll shows our node as a
    /// connected primary (see `failover::end_promoting`); a failure ends it at once (the fallback's
    /// settle rule covers a promotion the command left pending).
    pub fn record_failover_result(&mut self, ok: bool, mono_now: Mono) {
        self.failover.running_since = None;
        self.switchover.failover_ended(ok);
        if !ok {
            self.candidacy.stop_announcing();
        }
        if self.failover.sleep_after > 0.0 {
            self.no_decision_before = Some(mono_now + self.failover.sleep_after);
        }
        if ok {
            self.failover.failures.clear();
            self.failover.last_success = Some(mono_now);
            self.failover.primary_seen_at = None;
            // a block after this starts afresh
            self.candidacy.promotion_succeeded();
            self.replication_lag_over_warning_limit = false;
            self.observer_state_newer_than = None;
            self.pending_actions
                .push(Action::DeleteAlert(Alert::ReplicationDelayWarning));
        } else {
            self.failover.failures.failed(mono_now);
        }
    }

    /// Whether we announce our failover command running, or its promotion not yet seen
    /// everywhere (see [`Candidacy`]).
    pub fn announces_promotion(&self) -> bool {
        self.candidacy.announces_promotion()
    }

    /// Whether we serve a yield of our turn to promote.
    pub fn yielded(&self) -> bool {
        self.candidacy.yielded()
    }

    /// What every round leaves true (checked in debug builds, the simulator's campaigns with
    /// `debug-assertions` included).
    pub(super) fn debug_assert_invariants(&self, own_db: Option<&str>) {
        self.candidacy.debug_assert_invariants(own_db);
    }

    /// When a failed failover command may run again (`None`: no failure to wait out).
    pub fn failover_retry_at(&self) -> Option<Mono> {
        self.failover.failures.retry_at(FAILOVER_BACKOFF)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_backoff_serves_every_command() {
        // none after no failure, then initial, doubling, capped
        let waits: Vec<f64> = (0..7).map(|n| FENCE_BACKOFF.wait(n)).collect();
        assert_eq!(waits, [0.0, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0]);
        assert_eq!(FENCE_BACKOFF.wait(40), FENCE_RETRY_MAX_SECS);
        assert_eq!(FAILOVER_BACKOFF.wait(1), FAILOVER_RETRY_INITIAL_SECS);
        assert_eq!(REJOIN_BACKOFF.wait(u32::MAX), REJOIN_RETRY_MAX_SECS);
        let mut f = Failures::default();
        assert_eq!(f.retry_at(REJOIN_BACKOFF), None);
        f.failed(Mono(100.0));
        f.failed(Mono(110.0));
        assert_eq!(
            f.retry_at(REJOIN_BACKOFF),
            Some(Mono(110.0) + 2.0 * REJOIN_RETRY_INITIAL_SECS)
        );
        f.clear();
        assert_eq!(f.retry_at(REJOIN_BACKOFF), None);
    }
}

// The planned switchover's memory (the rules: `switchover`).

/// Where a promotion request stands at the target's daemon.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestState {
    /// Taken, not started: it may still be withdrawn.
    Asked,
    /// The failover command runs.
    Running,
    /// The failover command ended (`ok`), or the request lapsed or was withdrawn (`false`).
    Ended { ok: bool },
}

/// The old primary's daemon asks ours to promote our node.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct PromoteRequest {
    pub id: String,
    /// The old primary.
    pub from: String,
    /// Its final position: the shutdown checkpoint in its control file.
    pub lsn: crate::lsn::Lsn,
    /// When we took it, and the poll round then (a later round is needed).
    pub asked: Mono,
    pub round: u64,
    /// How long it may wait to start.
    pub window: f64,
    pub state: RequestState,
}

/// What a withdrawal found (the old primary's daemon restarts its node as the primary only
/// after [`Withdrawn::NotStarted`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Withdrawn {
    /// No promotion ran or will run for it.
    NotStarted,
    /// The failover command runs.
    Promoting,
    /// It ran and succeeded.
    Promoted,
}

/// What the decision loop remembers of switchovers.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct SwitchoverMemory {
    /// The switchover our daemon runs away from our node (announced in our word).
    pub own: Option<crate::state::Switchover>,
    /// A promotion request to our node.
    pub request: Option<PromoteRequest>,
    /// Whether a switchover held our rules in the latest round (`switchover::held`).
    pub held: bool,
}

impl SwitchoverMemory {
    /// Takes a request, unless one runs (then it is refused: `Err` says why).
    pub fn ask(&mut self, request: PromoteRequest) -> Result<(), String> {
        if let Some(r) = self.request.as_ref().filter(|r| r.state == RequestState::Running) {
            return Err(format!("a promotion for {}'s switchover already runs", r.from));
        }
        self.request = Some(request);
        Ok(())
    }

    /// The old primary's daemon withdraws its request: one not started never will be.
    pub fn withdraw(&mut self) -> Withdrawn {
        match self.request.as_mut() {
            None => Withdrawn::NotStarted,
            Some(r) => match r.state {
                RequestState::Asked => {
                    r.state = RequestState::Ended { ok: false };
                    Withdrawn::NotStarted
                }
                RequestState::Running => Withdrawn::Promoting,
                RequestState::Ended { ok: true } => Withdrawn::Promoted,
                RequestState::Ended { ok: false } => Withdrawn::NotStarted,
            },
        }
    }

    /// The failover command ended: a running request ends with it.
    pub fn failover_ended(&mut self, ok: bool) {
        if let Some(r) = self.request.as_mut().filter(|r| r.state == RequestState::Running) {
            r.state = RequestState::Ended { ok };
        }
    }
}
