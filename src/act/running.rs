//! Which of the decision's commands are running, pure: at most one failover, one fence, one
//! follow and one rejoin at a time, each known by the [`CommandId`] it was started with, so that
//! an end is taken only from the command it answers; a follow asked for while another runs is
//! queued (the latest master wins) and started when the running one ends. The node keeps its
//! commands' state in this, for the daemon and the simulator alike.

use crate::decide::Mono;

/// Names one started command; its end comes back with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CommandId(pub u64);

/// The kinds of command whose end is awaited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Failover,
    Fence,
    Follow,
    Rejoin,
}

/// The running commands of one daemon.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Running {
    /// The last id given out.
    last_id: u64,
    failover: Option<CommandId>,
    /// The running fence command, and when it started.
    fence: Option<(CommandId, Mono)>,
    follow: Option<CommandId>,
    /// A follow asked for while another was running.
    follow_next: Option<String>,
    /// A rejoin (stop, pg_rewind, start of our old primary) is running.
    rejoin: Option<CommandId>,
}

impl Running {
    /// A fresh id, for a command to start (the warning command's too, which nothing awaits).
    pub fn next_id(&mut self) -> CommandId {
        self.last_id += 1;
        CommandId(self.last_id)
    }

    /// Whether the failover command is running (the decision core is told).
    pub fn failover(&self) -> bool {
        self.failover.is_some()
    }

    /// Whether a follow (a stop and a start of PostgreSQL) is running.
    pub fn follow(&self) -> bool {
        self.follow.is_some()
    }

    /// Whether any command is running.
    pub fn any(&self) -> bool {
        self.failover() || self.fence.is_some() || self.follow() || self.rejoin()
    }

    /// Whether a rejoin is running.
    pub fn rejoin(&self) -> bool {
        self.rejoin.is_some()
    }

    /// Whether `id` is the running command of `kind`: an end that answers anything else (a
    /// command of an earlier life of the node) is not taken.
    pub fn answers(&self, kind: Kind, id: CommandId) -> bool {
        let running = match kind {
            Kind::Failover => self.failover,
            Kind::Fence => self.fence.map(|(id, _)| id),
            Kind::Follow => self.follow,
            Kind::Rejoin => self.rejoin,
        };
        running == Some(id)
    }

    /// What is running, for a log line.
    pub fn what(&self) -> &'static str {
        match (self.fence.is_some(), self.failover(), self.follow()) {
            (true, _, _) => "fence_command",
            (_, true, true) => "failover_command and autofollow",
            (_, true, false) => "failover_command",
            (_, false, true) => "autofollow",
            _ if self.rejoin() => "rejoin",
            _ => "nothing",
        }
    }

    /// A failover was decided: its id when its command is to start now (none is running).
    pub fn start_failover(&mut self) -> Option<CommandId> {
        Self::start(&mut self.last_id, &mut self.failover)
    }

    /// A rejoin was decided: its id when it is to start now (none is running).
    pub fn start_rejoin(&mut self) -> Option<CommandId> {
        Self::start(&mut self.last_id, &mut self.rejoin)
    }

    /// A fence was decided: its id when its command is to start now (none is running).
    pub fn start_fence(&mut self, now: Mono) -> Option<CommandId> {
        if self.fence.is_some() {
            return None;
        }
        let id = self.next_id();
        self.fence = Some((id, now));
        Some(id)
    }

    /// A follow of `master` was decided: its id when it is to start now; otherwise it is
    /// queued behind the running one (replacing anything queued before: the master changed
    /// again).
    pub fn start_follow(&mut self, master: &str) -> Option<CommandId> {
        if self.follow.is_some() {
            self.follow_next = Some(master.to_string());
            return None;
        }
        Self::start(&mut self.last_id, &mut self.follow)
    }

    fn start(last_id: &mut u64, slot: &mut Option<CommandId>) -> Option<CommandId> {
        if slot.is_some() {
            return None;
        }
        *last_id += 1;
        *slot = Some(CommandId(*last_id));
        *slot
    }

    pub fn failover_done(&mut self) {
        self.failover = None;
    }

    pub fn rejoin_done(&mut self) {
        self.rejoin = None;
    }

    /// The fence command ended; how long it took (seconds), when one was running.
    pub fn fence_done(&mut self, now: Mono) -> Option<f64> {
        self.fence.take().map(|(_, started)| now - started)
    }

    /// The follow of `master` ended; the follow to start next, if one was queued for another
    /// master (or for the same one after a failure).
    pub fn follow_done(&mut self, master: &str, ok: bool) -> Option<String> {
        self.follow = None;
        self.follow_next.take().filter(|n| n != master || !ok)
    }

    /// Every command's end is no longer awaited (a restarted daemon starts with none); ids
    /// go on from where they were, so a late end of a command from before is not taken.
    pub fn clear(&mut self) {
        *self = Running {
            last_id: self.last_id,
            ..Running::default()
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_of_each_command_at_a_time() {
        let mut r = Running::default();
        assert!(!r.any());
        let failover = r.start_failover().expect("starts");
        assert_eq!(r.start_failover(), None);
        assert!(r.failover());
        let fence = r.start_fence(Mono(10.0)).expect("starts");
        assert_eq!(r.start_fence(Mono(10.5)), None);
        assert_ne!(fence, failover);
        assert_eq!(r.what(), "fence_command");
        assert_eq!(r.fence_done(Mono(10.75)), Some(0.75));
        assert_eq!(r.fence_done(Mono(11.0)), None);
        r.failover_done();
        assert!(!r.any());
        assert!(r.start_failover().is_some(), "a later failover starts again");
    }

    /// An end is taken only from the command it answers: not from one of another kind, nor
    /// from one started before the commands were forgotten (a restart).
    #[test]
    fn an_end_answers_only_its_own_command() {
        let mut r = Running::default();
        let old = r.start_rejoin().expect("starts");
        assert!(r.answers(Kind::Rejoin, old));
        assert!(!r.answers(Kind::Failover, old));
        r.clear();
        let new = r.start_rejoin().expect("starts");
        assert!(!r.answers(Kind::Rejoin, old), "a command from before the restart");
        assert!(r.answers(Kind::Rejoin, new));
    }

    #[test]
    fn a_follow_asked_for_meanwhile_runs_next_unless_it_is_the_one_that_worked() {
        let mut r = Running::default();
        assert!(r.start_follow("pg1").is_some());
        assert!(r.start_follow("pg2").is_none());
        assert!(r.start_follow("pg3").is_none(), "the latest master wins");
        assert_eq!(r.follow_done("pg1", true), Some("pg3".into()));
        assert!(r.start_follow("pg3").is_some());
        assert!(r.start_follow("pg3").is_none());
        assert_eq!(r.follow_done("pg3", true), None, "already following it");
        assert!(r.start_follow("pg3").is_some());
        assert!(r.start_follow("pg3").is_none());
        assert_eq!(r.follow_done("pg3", false), Some("pg3".into()), "a failure is retried");
    }
}
