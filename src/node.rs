//! One daemon's decision loop as a pure state machine. Owns the running config, the decision
//! memory, which commands are running ([`Running`]) and what the event history was last told.
//! Inputs go in through [`Node::handle`] (a decision round with the poller's snapshot, a
//! command's end, a reloaded config, stop); what to do comes out as [`Effect`]s, in order. No
//! clock, no I/O: the daemon (src/daemon.rs) and the simulator (sim/) both drive this type and
//! carry out its effects, so the simulator checks the loop the daemon runs, not a copy of it.

pub use crate::act::running::CommandId;
use crate::act::running::{Kind, Running};
use crate::config::Config;
use crate::decide;
use crate::decide::Action;
use crate::decide::Decision;
use crate::decide::Memory;
use crate::decide::Mono;
use crate::decide::View;
use crate::state::NodeState;
use crate::state::ObserverState;
use crate::state::OwnStatus;
use crate::state::Timestamp;
use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::sync::Arc;

/// What the poller saw, as one decision round reads it.
#[derive(Clone, Copy, Debug)]
pub struct Poll<'a> {
    pub nodes: &'a BTreeMap<String, NodeState>,
    pub observers: &'a BTreeMap<String, ObserverState>,
    /// Completed poll rounds so far.
    pub round: u64,
    /// The wall clock (only compared with times in the documents).
    pub wall_now: Timestamp,
    /// Whether the maintenance file exists, as the file thread last answered (or counts as
    /// present: no answer in time).
    pub maintenance_mode: bool,
    /// Whether the file thread answered in time that the maintenance file exists.
    pub maintenance_seen: bool,
}

/// A command's end, as its executor reports it.
#[derive(Clone, Debug, PartialEq)]
pub enum Finished {
    Failover { ok: bool },
    Fence { ok: bool },
    Follow { master: String, ok: bool },
    Rejoin { master: String, result: Result<(), String> },
}

/// What goes into the node.
#[derive(Debug)]
pub enum Input<'a> {
    /// A decision round.
    Check(Poll<'a>),
    /// A command started by an [`Effect::Start`] ended; the id it was started with.
    Finished(CommandId, Finished),
    /// A reloaded config that passed validation; `source` names where it came from (the
    /// history's reason).
    Reloaded { config: Arc<Config>, source: String },
    /// `pglookout-ctl pause` (true) or `resume` (false) reached this daemon at `at`.
    Pause { paused: bool, at: crate::state::Timestamp },
    /// `pglookout-ctl failover --to` our node reached this daemon.
    ManualFailover,
    /// Our switchover's steps (`act::switchover`): the announcement with its step now.
    SwitchoverStep(crate::state::Switchover),
    /// Our switchover ended: how (`Ok`) or why it failed (`Err`).
    SwitchoverEnded(Result<String, String>),
    /// The daemon is stopping: no new decision, and a queued follow is not started.
    Stop,
}

/// A command to start. The node has counted it running; its end comes back as
/// [`Input::Finished`] (except the warning command, which nothing waits for).
#[derive(Clone, Debug, PartialEq)]
pub enum Start {
    Failover {
        reason: String,
        old_master: Option<String>,
    },
    Fence {
        reason: String,
        new_master: Option<String>,
    },
    /// Point our standby at `master`; `restart_anyway` when the last attempt at the same
    /// master failed (restart even if the conninfo already matches).
    Follow {
        master: String,
        restart_anyway: bool,
    },
    /// Make our old primary a standby of `master` (`rejoin_old_master`).
    Rejoin {
        master: String,
    },
    /// `over_warning_limit_command`, with the current master.
    Warning {
        master: Option<String>,
    },
}

/// One line of the event history (`event_log_path`, `GET /history`).
#[derive(Clone, Debug, PartialEq)]
pub enum History {
    FailoverStarted {
        reason: String,
        old_master: Option<String>,
        own: Option<String>,
    },
    FailoverFinished {
        ok: bool,
    },
    FenceStarted {
        reason: String,
        new_master: Option<String>,
    },
    FenceFinished {
        ok: bool,
    },
    FollowStarted {
        master: String,
    },
    FollowFinished {
        master: String,
        ok: bool,
    },
    RejoinStarted {
        master: String,
        own: Option<String>,
    },
    RejoinFinished {
        master: String,
        result: Result<(), String>,
    },
    FailoverYielded {
        summary: String,
        old_master: Option<String>,
    },
    FailoverYieldEnded {
        master: Option<String>,
    },
    MasterChanged {
        summary: String,
        old: Option<String>,
        new: Option<String>,
    },
    ObserverLost(String),
    ObserverRegained(String),
    TimelineSwitch {
        node: String,
        timeline: u32,
        before: u32,
    },
    AlertRaised(&'static str),
    AlertCleared(&'static str),
    ConfigReloaded {
        source: String,
    },
    /// Our primary's daemon asked for a new `synchronous_standby_names` (`None`: the server's
    /// own setting again).
    SynchronousNamesAsked {
        value: Option<String>,
        reason: String,
    },
    /// The operator asked for a failover to our node (`pglookout-ctl failover`).
    FailoverRequested,
    /// The cluster was paused (or resumed) by `source`.
    Pause {
        paused: bool,
        source: String,
    },
    /// Our standby's daemon cut its WAL receiver from `master` (`cut`) or gave it back.
    WalReceiver {
        cut: bool,
        master: String,
    },
    /// Our switchover from our node `from` to `to` started or took a step.
    SwitchoverStep {
        from: String,
        to: String,
        step: String,
        first: bool,
    },
    /// Our switchover ended.
    SwitchoverEnded {
        from: String,
        to: String,
        result: Result<String, String>,
    },
    /// The old primary's daemon asked ours to promote our node (`from`'s switchover), or
    /// withdrew the request.
    PromotionAsked {
        from: String,
        withdrawn: bool,
    },
}

fn outcome(ok: bool) -> String {
    if ok { "succeeded" } else { "failed" }.to_string()
}

impl History {
    /// The event's `kind`, a stable snake_case word.
    pub fn kind(&self) -> &'static str {
        match self {
            History::FailoverStarted { .. } => "failover_started",
            History::FailoverFinished { .. } => "failover_finished",
            History::FenceStarted { .. } => "fence_started",
            History::FenceFinished { .. } => "fence_finished",
            History::FollowStarted { .. } => "follow_started",
            History::FollowFinished { .. } => "follow_finished",
            History::RejoinStarted { .. } => "rejoin_started",
            History::RejoinFinished { .. } => "rejoin_finished",
            History::FailoverYielded { .. } => "failover_yielded",
            History::FailoverYieldEnded { .. } => "failover_yield_ended",
            History::MasterChanged { .. } => "master_changed",
            History::ObserverLost(_) => "observer_lost",
            History::ObserverRegained(_) => "observer_regained",
            History::TimelineSwitch { .. } => "timeline_switch",
            History::AlertRaised(_) => "alert_raised",
            History::AlertCleared(_) => "alert_cleared",
            History::ConfigReloaded { .. } => "config_reloaded",
            History::SynchronousNamesAsked { .. } => "synchronous_standby_names",
            History::WalReceiver { .. } => "wal_receiver",
            History::FailoverRequested => "failover_requested",
            History::Pause { paused: true, .. } => "cluster_paused",
            History::Pause { paused: false, .. } => "cluster_resumed",
            History::SwitchoverStep { first: true, .. } => "switchover_started",
            History::SwitchoverStep { first: false, .. } => "switchover_step",
            History::SwitchoverEnded { .. } => "switchover_finished",
            History::PromotionAsked { withdrawn: false, .. } => "switchover_promotion_asked",
            History::PromotionAsked { withdrawn: true, .. } => "switchover_promotion_withdrawn",
        }
    }

    /// The event's human-readable reason.
    pub fn reason(&self) -> String {
        match self {
            History::FailoverStarted { reason, .. } | History::FenceStarted { reason, .. } => reason.clone(),
            History::FailoverFinished { ok } | History::FenceFinished { ok } | History::FollowFinished { ok, .. } => {
                outcome(*ok)
            }
            History::FollowStarted { master } => format!("autofollow: making our node a standby of {master}"),
            History::RejoinStarted { master, .. } => {
                format!("rejoin_old_master: making our old primary a standby of {master}")
            }
            History::RejoinFinished { result, .. } => match result {
                Ok(()) => "succeeded".to_string(),
                Err(e) => format!("failed: {e}"),
            },
            History::FailoverYielded { summary, .. } => summary.clone(),
            History::FailoverYieldEnded { .. } => "a master is connected again".to_string(),
            History::MasterChanged { summary, .. } => format!("decision: {summary}"),
            History::ObserverLost(name) | History::ObserverRegained(name) => name.clone(),
            History::TimelineSwitch { node, timeline, before } => {
                format!("{node} is a primary on timeline {timeline} (was {before})")
            }
            History::AlertRaised(name) | History::AlertCleared(name) => (*name).to_string(),
            History::ConfigReloaded { source } => source.clone(),
            History::SynchronousNamesAsked { value, reason } => match value {
                Some(v) => format!("set to {v:?} ({reason})"),
                None => format!("reset to the server's setting ({reason})"),
            },
            History::WalReceiver { cut: true, master } => {
                format!("primary_conninfo emptied: a strict majority of the voters reports {master} gone (synchronous_mode)")
            }
            History::WalReceiver { cut: false, master } => format!("primary_conninfo given back: {master} is back"),
            History::Pause { source, .. } => format!("by {source}"),
            History::SwitchoverStep { step, .. } => step.clone(),
            History::SwitchoverEnded { result, .. } => match result {
                Ok(how) => format!("succeeded: {how}"),
                Err(why) => format!("failed: {why}"),
            },
            History::PromotionAsked { from, withdrawn: false } => {
                format!("{from}'s daemon asks for our node's promotion (switchover)")
            }
            History::PromotionAsked { from, withdrawn: true } => {
                format!("{from}'s daemon withdrew its switchover request")
            }
            History::FailoverRequested => {
                "the operator asked for a failover to our node (pglookout-ctl failover): the rest of the lag window is skipped for 60 s".to_string()
            }
        }
    }

    /// The event's old and new master, where it names them.
    pub fn masters(&self) -> (Option<&str>, Option<&str>) {
        match self {
            History::FailoverStarted { old_master, own, .. } => (old_master.as_deref(), own.as_deref()),
            History::FenceStarted { new_master, .. } => (None, new_master.as_deref()),
            History::FollowStarted { master }
            | History::FollowFinished { master, .. }
            | History::RejoinFinished { master, .. } => (None, Some(master)),
            History::RejoinStarted { master, own } => (own.as_deref(), Some(master)),
            History::FailoverYielded { old_master, .. } => (old_master.as_deref(), None),
            History::FailoverYieldEnded { master } => (None, master.as_deref()),
            History::MasterChanged { old, new, .. } => (old.as_deref(), new.as_deref()),
            History::TimelineSwitch { node, .. } => (None, Some(node)),
            History::WalReceiver { master, .. } => (Some(master), None),
            History::SwitchoverStep { from, to, .. } | History::SwitchoverEnded { from, to, .. } => {
                (Some(from), Some(to))
            }
            History::PromotionAsked { from, .. } => (Some(from), None),
            _ => (None, None),
        }
    }
}

/// Something the executor does, in the order given.
#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    /// One of the decision's actions that starts no command: a poll, an alert file, a StatsD
    /// metric, observer polling on or off.
    Do(Action),
    /// Start a command; its end comes back with this id.
    Start(CommandId, Start),
    /// Append to the event history.
    History(History),
    /// A command ended (for the counters): its name as the metrics call it, and whether it
    /// succeeded.
    Ended { command: &'static str, ok: bool },
    /// The fence command took `took` seconds, more than `fence_command_budget`: the timing
    /// argument (docs/safety.md) assumed it would not.
    FenceOverBudget { took: f64 },
    /// What to publish of our own node (`/state.json`'s own entry, `/primary`, `/health`):
    /// first in every round's effects, so that the others see "promoting" before our failover
    /// command starts, and after any other input that changed it.
    Publish(OwnStatus),
    /// An end that answers no running command (one from an earlier life of the node): not
    /// taken.
    StaleEnd { command: &'static str, id: CommandId },
}

/// What one input gave: the decision (for a round) and the effects.
#[derive(Debug, Default)]
pub struct Step {
    pub decision: Option<Decision>,
    pub effects: Vec<Effect>,
}

/// What the event history was last told, so that only changes are written.
#[derive(Clone, Debug, Default)]
struct Told {
    /// What we last published of our own node.
    own: OwnStatus,
    alerts: BTreeSet<&'static str>,
    observers: BTreeMap<String, bool>,
    timelines: BTreeMap<String, u32>,
}

/// One daemon's decision loop (see the module docs).
#[derive(Clone, Debug)]
pub struct Node {
    // crate-visible for the decision table tests (src/decide/tests.rs), which set up a
    // scenario's memory and config directly; everything else goes through `handle`
    pub(crate) config: Arc<Config>,
    pub(crate) memory: Memory,
    running: Running,
    /// Starts at 0 and grows by one per reload that took (the decision waits for a poll round
    /// started after it).
    pub(crate) config_version: u64,
    told: Told,
    stopping: bool,
}

impl Node {
    /// A node starting with `memory` (empty, or with the lease the previous run left).
    pub fn new(config: Arc<Config>, memory: Memory) -> Node {
        Node {
            config,
            memory,
            running: Running::default(),
            config_version: 0,
            told: Told::default(),
            stopping: false,
        }
    }

    pub fn config(&self) -> &Arc<Config> {
        &self.config
    }

    pub fn memory(&self) -> &Memory {
        &self.memory
    }

    pub fn running(&self) -> &Running {
        &self.running
    }

    pub fn config_version(&self) -> u64 {
        self.config_version
    }

    /// What we say of our own node in its entry of `/state.json`: our failover announcement
    /// and, with fencing, the digest of our voter set.
    pub fn own_word(&self) -> crate::state::OwnWord {
        let c = &self.config;
        crate::state::OwnWord {
            failover: self.memory.candidacy.published().cloned(),
            voters: (c.fence_command.is_some() && c.own_db.is_some()).then(|| decide::voters::digest(c)),
            pause: c.own_db.is_some().then(|| self.memory.pause.clone()).flatten(),
            switchover: self.memory.switchover.own.clone(),
        }
    }

    /// Takes one input at monotonic time `now` (seconds) and says what to do.
    pub fn handle(&mut self, input: Input<'_>, now: Mono) -> Step {
        let mut step = Step::default();
        match input {
            Input::Check(poll) if !self.stopping => {
                step.decision = Some(self.check(poll, now, &mut step.effects));
            }
            Input::Check(_) => {}
            Input::Finished(id, f) => {
                self.finished(id, f, now, &mut step.effects);
                self.publish_changed_word(&mut step.effects);
            }
            Input::Reloaded { config, source } => {
                self.memory.config_reloaded(&self.config, &config, now);
                self.config = config;
                self.config_version += 1;
                step.effects.push(Effect::Do(Action::RequestPoll));
                step.effects.push(Effect::History(History::ConfigReloaded { source }));
                self.publish_changed_word(&mut step.effects);
            }
            Input::Pause { paused, at } => {
                self.memory.pause = Some(crate::state::Pause { paused, since: at });
                step.effects.push(Effect::History(History::Pause {
                    paused,
                    source: "the API (pglookout-ctl)".into(),
                }));
                step.effects.push(Effect::Do(Action::RequestPoll));
                self.publish_changed_word(&mut step.effects);
            }
            Input::ManualFailover => {
                self.memory.manual_failover = Some(now);
                step.effects.push(Effect::History(History::FailoverRequested));
                step.effects.push(Effect::Do(Action::RequestPoll));
            }
            Input::SwitchoverStep(word) => {
                let first = self.memory.switchover.own.is_none();
                step.effects.push(Effect::History(History::SwitchoverStep {
                    from: word.from.clone(),
                    to: word.to.clone(),
                    step: word.step.clone(),
                    first,
                }));
                self.memory.switchover.own = Some(word);
                self.publish_changed_word(&mut step.effects);
            }
            Input::SwitchoverEnded(result) => {
                if let Some(word) = self.memory.switchover.own.take() {
                    step.effects.push(Effect::History(History::SwitchoverEnded {
                        from: word.from,
                        to: word.to,
                        result,
                    }));
                }
                step.effects.push(Effect::Do(Action::RequestPoll));
                self.publish_changed_word(&mut step.effects);
            }
            Input::Stop => self.stopping = true,
        }
        step
    }

    /// The old primary's daemon asks ours to promote our node (`POST /switchover/promote`):
    /// taken unless a promotion runs (`Err`: why). Polls at once.
    pub fn ask_promotion(&mut self, request: decide::switchover::PromoteRequest) -> (Result<(), String>, Step) {
        let mut step = Step::default();
        let from = request.from.clone();
        let taken = self.memory.switchover.ask(request);
        if taken.is_ok() {
            step.effects
                .push(Effect::History(History::PromotionAsked { from, withdrawn: false }));
            step.effects.push(Effect::Do(Action::RequestPoll));
        }
        (taken, step)
    }

    /// The old primary's daemon withdraws its request (`POST /switchover/abort`).
    pub fn withdraw_promotion(&mut self) -> (decide::switchover::Withdrawn, Step) {
        let mut step = Step::default();
        let from = self.memory.switchover.request.as_ref().map(|r| r.from.clone());
        let answer = self.memory.switchover.withdraw();
        if let Some(from) = from {
            step.effects
                .push(Effect::History(History::PromotionAsked { from, withdrawn: true }));
        }
        (answer, step)
    }

    /// After a round: our word and lease, first of the round's effects.
    fn publish(&mut self, poll: Poll<'_>, now: Mono, out: &mut Vec<Effect>) {
        let own_state = self.config.own_db.as_ref().and_then(|o| poll.nodes.get(o));
        self.told.own = OwnStatus {
            word: self.own_word(),
            no_lease: decide::fence::lease(&self.config, &self.memory, own_state, now).err(),
        };
        out.insert(0, Effect::Publish(self.told.own.clone()));
    }

    /// After a command's end or a reload: our word when it changed (the lease is taken up
    /// again with the next round, which has a poll of our node).
    fn publish_changed_word(&mut self, out: &mut Vec<Effect>) {
        let word = self.own_word();
        if word != self.told.own.word {
            self.told.own.word = word;
            out.push(Effect::Publish(self.told.own.clone()));
        }
    }

    fn check(&mut self, poll: Poll<'_>, now: Mono, out: &mut Vec<Effect>) -> Decision {
        let view = View {
            nodes: poll.nodes,
            observers: poll.observers,
            poll_round: poll.round,
            wall_now: poll.wall_now,
            mono_now: now,
            maintenance_mode: poll.maintenance_mode,
            maintenance_seen: poll.maintenance_seen,
            failover_running: self.running.failover(),
            config_version: self.config_version,
        };
        let master_before = self.memory.current_master.clone();
        let yielded_before = self.memory.yielded();
        let paused_before = self.memory.paused();
        let decision = decide::decide(&view, &self.config, &mut self.memory);
        if self.memory.paused() != paused_before {
            out.push(Effect::History(History::Pause {
                paused: !paused_before,
                source: "another daemon of the cluster".into(),
            }));
        }
        match (yielded_before, self.memory.yielded()) {
            (false, true) => out.push(Effect::History(History::FailoverYielded {
                // a standing yield starts whatever the decision's summary (the master may
                // well be connected): its own reason says why
                summary: match self.memory.candidacy.published().filter(|f| f.standing) {
                    Some(f) => format!("standing yield: {}", f.reason),
                    None => decision.summary.clone(),
                },
                old_master: master_before.clone(),
            })),
            (true, false) => out.push(Effect::History(History::FailoverYieldEnded {
                master: self.memory.current_master.clone(),
            })),
            _ => {}
        }
        if self.memory.current_master != master_before {
            out.push(Effect::History(History::MasterChanged {
                summary: decision.summary.clone(),
                old: master_before,
                new: self.memory.current_master.clone(),
            }));
        }
        self.tell_changes(poll, out);
        for action in &decision.actions {
            self.act(action, now, out);
        }
        self.publish(poll, now, out);
        decision
    }

    /// Observers lost and regained, and timeline switches read from the servers (changes
    /// only).
    fn tell_changes(&mut self, poll: Poll<'_>, out: &mut Vec<Effect>) {
        for (name, o) in poll.observers {
            let before = self.told.observers.insert(name.clone(), o.connection);
            if before.is_some_and(|b| b != o.connection) || (before.is_none() && !o.connection) {
                out.push(Effect::History(if o.connection {
                    History::ObserverRegained(name.clone())
                } else {
                    History::ObserverLost(name.clone())
                }));
            }
        }
        for (name, n) in poll.nodes {
            let Some(t) = n.pg.as_ref().filter(|_| n.connection).and_then(|p| p.timeline) else {
                continue;
            };
            if let Some(before) = self.told.timelines.insert(name.clone(), t).filter(|b| *b != t) {
                out.push(Effect::History(History::TimelineSwitch {
                    node: name.clone(),
                    timeline: t,
                    before,
                }));
            }
        }
    }

    /// One of the decision's actions: a command starts only when none of its kind runs.
    fn act(&mut self, action: &Action, now: Mono, out: &mut Vec<Effect>) {
        let own = self.config.own_db.clone();
        match action {
            Action::RunFailoverCommand { reason, old_master } => {
                if let Some(id) = self.running.start_failover() {
                    out.push(Effect::History(History::FailoverStarted {
                        reason: reason.clone(),
                        old_master: old_master.clone(),
                        own,
                    }));
                    out.push(Effect::Start(
                        id,
                        Start::Failover {
                            reason: reason.clone(),
                            old_master: old_master.clone(),
                        },
                    ));
                }
            }
            Action::RunFenceCommand { reason, new_master } => {
                if let Some(id) = self
                    .config
                    .fence_command
                    .as_ref()
                    .and_then(|_| self.running.start_fence(now))
                {
                    out.push(Effect::History(History::FenceStarted {
                        reason: reason.clone(),
                        new_master: new_master.clone(),
                    }));
                    out.push(Effect::Start(
                        id,
                        Start::Fence {
                            reason: reason.clone(),
                            new_master: new_master.clone(),
                        },
                    ));
                }
            }
            Action::RejoinNewPrimary { master } => {
                if let Some(id) = self.running.start_rejoin() {
                    out.push(Effect::History(History::RejoinStarted {
                        master: master.clone(),
                        own,
                    }));
                    out.push(Effect::Start(id, Start::Rejoin { master: master.clone() }));
                }
            }
            Action::FollowMaster { master } => self.follow(master, out),
            Action::SetSynchronousNames { value, reason } => {
                out.push(Effect::Do(action.clone()));
                out.push(Effect::History(History::SynchronousNamesAsked {
                    value: value.clone(),
                    reason: reason.clone(),
                }));
            }
            Action::SetWalReceiver { cut, master } => {
                out.push(Effect::Do(action.clone()));
                out.push(Effect::History(History::WalReceiver {
                    cut: *cut,
                    master: master.clone(),
                }));
            }
            Action::RunWarningCommand => {
                if self.config.over_warning_limit_command.is_some() {
                    let id = self.running.next_id();
                    out.push(Effect::Start(
                        id,
                        Start::Warning {
                            master: self.memory.current_master.clone(),
                        },
                    ));
                }
            }
            Action::CreateAlert(a) | Action::WriteAlert(a, _) | Action::DeleteAlert(a) => {
                let create = !matches!(action, Action::DeleteAlert(_));
                let name = a.file_name();
                out.push(Effect::Do(action.clone()));
                let changed = if create {
                    self.told.alerts.insert(name)
                } else {
                    self.told.alerts.remove(name)
                };
                if changed {
                    out.push(Effect::History(if create {
                        History::AlertRaised(name)
                    } else {
                        History::AlertCleared(name)
                    }));
                }
            }
            Action::RequestPoll
            | Action::SetObserverPolling(_)
            | Action::StatsdGauge { .. }
            | Action::StatsdCount { .. } => out.push(Effect::Do(action.clone())),
        }
    }

    /// A follow of `master`, or queued behind the running one (the master changed meanwhile).
    fn follow(&mut self, master: &str, out: &mut Vec<Effect>) {
        let Some(id) = self.running.start_follow(master) else {
            return;
        };
        out.push(Effect::History(History::FollowStarted {
            master: master.to_string(),
        }));
        out.push(Effect::Start(
            id,
            Start::Follow {
                master: master.to_string(),
                restart_anyway: self.memory.follow.failed.as_deref() == Some(master),
            },
        ));
    }

    fn finished(&mut self, id: CommandId, f: Finished, now: Mono, out: &mut Vec<Effect>) {
        let (kind, command) = match &f {
            Finished::Failover { .. } => (Kind::Failover, "failover_command"),
            Finished::Fence { .. } => (Kind::Fence, "fence_command"),
            Finished::Follow { .. } => (Kind::Follow, "autofollow"),
            Finished::Rejoin { .. } => (Kind::Rejoin, "rejoin"),
        };
        if !self.running.answers(kind, id) {
            out.push(Effect::StaleEnd { command, id });
            return;
        }
        match f {
            Finished::Failover { ok } => {
                self.running.failover_done();
                out.push(Effect::History(History::FailoverFinished { ok }));
                out.push(Effect::Ended {
                    command: "failover_command",
                    ok,
                });
                self.memory.record_failover_result(ok, now);
            }
            Finished::Fence { ok } => {
                let took = self.running.fence_done(now).unwrap_or_default();
                if took > self.config.fence_command_budget {
                    out.push(Effect::FenceOverBudget { took });
                }
                out.push(Effect::Ended {
                    command: "fence_command",
                    ok,
                });
                out.push(Effect::History(History::FenceFinished { ok }));
                self.memory.record_fence_result(ok, now);
            }
            Finished::Follow { master, ok } => {
                let next = self.running.follow_done(&master, ok);
                out.push(Effect::Ended {
                    command: "autofollow",
                    ok,
                });
                out.push(Effect::History(History::FollowFinished {
                    master: master.clone(),
                    ok,
                }));
                self.memory.record_follow_result(&master, ok);
                if let Some(next) = next.filter(|_| !self.stopping) {
                    self.follow(&next, out);
                }
            }
            Finished::Rejoin { master, result } => {
                self.running.rejoin_done();
                out.push(Effect::Ended {
                    command: "rejoin",
                    ok: result.is_ok(),
                });
                out.push(Effect::History(History::RejoinFinished {
                    master: master.clone(),
                    result: result.clone(),
                }));
                self.memory.record_rejoin_result(&master, result, now);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: serde_json::Value) -> Arc<Config> {
        let mut v = serde_json::json!({
            "own_db": "pg1",
            "remote_conns": {"pg0": "host=127.0.0.1 port=1", "pg1": "host=127.0.0.1 port=2"},
            "failover_command": "true",
        });
        if let (Some(m), Some(e)) = (v.as_object_mut(), extra.as_object()) {
            m.extend(e.clone());
        }
        Arc::new(
            Config::from_value(std::path::Path::new("test.json"), &v)
                .expect("a valid config")
                .0,
        )
    }

    fn starts(step: &Step) -> Vec<&Start> {
        step.effects
            .iter()
            .filter_map(|e| match e {
                Effect::Start(_, s) => Some(s),
                _ => None,
            })
            .collect()
    }

    /// The id of the first command started in `out`.
    fn started_id(out: &[Effect]) -> CommandId {
        out.iter()
            .find_map(|e| match e {
                Effect::Start(id, _) => Some(*id),
                _ => None,
            })
            .expect("a command started")
    }

    #[test]
    fn a_follow_asked_for_while_one_runs_starts_when_it_ends() {
        let mut node = Node::new(config(serde_json::json!({})), Memory::new(Mono(0.0)));
        let mut out = Vec::new();
        node.follow("pg0", &mut out);
        assert_eq!(out.len(), 2, "{out:?}");
        let id = started_id(&out);
        out.clear();
        node.follow("pg2", &mut out);
        assert!(out.is_empty(), "queued, not started: {out:?}");
        let step = node.handle(
            Input::Finished(
                id,
                Finished::Follow {
                    master: "pg0".into(),
                    ok: true,
                },
            ),
            Mono(1.0),
        );
        assert_eq!(
            starts(&step),
            [&Start::Follow {
                master: "pg2".into(),
                restart_anyway: false
            }]
        );
    }

    #[test]
    fn a_stopping_node_starts_no_queued_follow_and_decides_nothing() {
        let mut node = Node::new(config(serde_json::json!({})), Memory::new(Mono(0.0)));
        let mut out = Vec::new();
        node.follow("pg0", &mut out);
        let id = started_id(&out);
        node.follow("pg2", &mut out);
        node.handle(Input::Stop, Mono(1.0));
        let step = node.handle(
            Input::Finished(
                id,
                Finished::Follow {
                    master: "pg0".into(),
                    ok: true,
                },
            ),
            Mono(2.0),
        );
        assert!(starts(&step).is_empty(), "{step:?}");
        assert!(!node.running().any());
        let (nodes, observers) = (BTreeMap::new(), BTreeMap::new());
        let poll = Poll {
            nodes: &nodes,
            observers: &observers,
            round: 1,
            wall_now: chrono::Utc::now(),
            maintenance_mode: false,
            maintenance_seen: false,
        };
        let step = node.handle(Input::Check(poll), Mono(3.0));
        assert!(step.decision.is_none() && step.effects.is_empty(), "{step:?}");
    }

    #[test]
    fn a_fence_over_its_budget_is_said() {
        let mut node = Node::new(
            config(
                serde_json::json!({"fence_command": "true", "fence_command_budget": 2, "allow_fragile_lease": true}),
            ),
            Memory::new(Mono(0.0)),
        );
        let mut out = Vec::new();
        let fence = Action::RunFenceCommand {
            reason: "test".into(),
            new_master: None,
        };
        node.act(&fence, Mono(10.0), &mut out);
        assert!(
            out.iter().any(|e| matches!(e, Effect::Start(_, Start::Fence { .. }))),
            "{out:?}"
        );
        let id = started_id(&out);
        out.clear();
        node.act(&fence, Mono(11.0), &mut out);
        assert!(out.is_empty(), "one fence at a time: {out:?}");
        // an end that answers another command is not taken
        let stale = node.handle(
            Input::Finished(CommandId(id.0 + 1), Finished::Fence { ok: true }),
            Mono(12.0),
        );
        let stale: Vec<_> = stale
            .effects
            .into_iter()
            .filter(|e| !matches!(e, Effect::Publish(_)))
            .collect();
        assert_eq!(
            stale,
            [Effect::StaleEnd {
                command: "fence_command",
                id: CommandId(id.0 + 1)
            }]
        );
        assert!(node.running().any(), "the fence still runs");
        let step = node.handle(Input::Finished(id, Finished::Fence { ok: true }), Mono(13.5));
        assert!(
            step.effects.contains(&Effect::FenceOverBudget { took: 3.5 }),
            "{step:?}"
        );
    }

    #[test]
    fn an_alert_is_told_to_the_history_once() {
        let mut node = Node::new(config(serde_json::json!({})), Memory::new(Mono(0.0)));
        let mut out = Vec::new();
        let raise = Action::CreateAlert(decide::Alert::FailoverHasHappened);
        node.act(&raise, Mono(1.0), &mut out);
        node.act(&raise, Mono(2.0), &mut out);
        let told: Vec<_> = out.iter().filter(|e| matches!(e, Effect::History(_))).collect();
        assert_eq!(told, [&Effect::History(History::AlertRaised("failover_has_happened"))]);
        assert_eq!(
            out.iter().filter(|e| matches!(e, Effect::Do(_))).count(),
            2,
            "the file is written each time"
        );
    }
}
