//! Which of the decision's commands are running, pure: at most one failover, one fence, one
//! follow and one rejoin at a time; a follow asked for while another runs is queued (the latest master
//! wins) and started when the running one ends. The daemon's decision loop and the simulator
//! both keep their commands' state in this.

use crate::decide::Mono;

/// The running commands of one daemon (times are monotonic seconds).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Running {
    failover: bool,
    /// When the running fence command started.
    fence: Option<Mono>,
    follow: bool,
    /// A follow asked for while another was running.
    follow_next: Option<String>,
    /// A rejoin (stop, pg_rewind, start of our old primary) is running.
    rejoin: bool,
}

impl Running {
    /// Whether the failover command is running (the decision core is told).
    pub fn failover(&self) -> bool {
        self.failover
    }

    /// Whether a follow (a stop and a start of PostgreSQL) is running.
    pub fn follow(&self) -> bool {
        self.follow
    }

    /// Whether any command is running.
    pub fn any(&self) -> bool {
        self.failover || self.fence.is_some() || self.follow || self.rejoin
    }

    /// Whether a rejoin is running.
    pub fn rejoin(&self) -> bool {
        self.rejoin
    }

    /// A rejoin was decided: true when it is to start now (none is running).
    pub fn start_rejoin(&mut self) -> bool {
        !std::mem::replace(&mut self.rejoin, true)
    }

    pub fn rejoin_done(&mut self) {
        self.rejoin = false;
    }

    /// What is running, for a log line.
    pub fn what(&self) -> &'static str {
        match (self.fence.is_some(), self.failover, self.follow) {
            (true, _, _) => "fence_command",
            (_, true, true) => "failover_command and autofollow",
            (_, true, false) => "failover_command",
            (_, false, true) => "autofollow",
            _ if self.rejoin => "rejoin",
            _ => "nothing",
        }
    }

    /// A failover was decided: true when its command is to start now (none is running).
    pub fn start_failover(&mut self) -> bool {
        !std::mem::replace(&mut self.failover, true)
    }

    /// A fence was decided: true when its command is to start now (none is running).
    pub fn start_fence(&mut self, now: Mono) -> bool {
        if self.fence.is_some() {
            return false;
        }
        self.fence = Some(now);
        true
    }

    /// A follow of `master` was decided: true when it is to start now; otherwise it is queued
    /// behind the running one (replacing anything queued before: the master changed again).
    pub fn start_follow(&mut self, master: &str) -> bool {
        if self.follow {
            self.follow_next = Some(master.to_string());
            return false;
        }
        self.follow = true;
        true
    }

    pub fn failover_done(&mut self) {
        self.failover = false;
    }

    /// The fence command ended; how long it took (seconds), when one was running.
    pub fn fence_done(&mut self, now: Mono) -> Option<f64> {
        self.fence.take().map(|started| now - started)
    }

    /// The follow of `master` ended; the follow to start next, if one was queued for another
    /// master (or for the same one after a failure).
    pub fn follow_done(&mut self, master: &str, ok: bool) -> Option<String> {
        self.follow = false;
        self.follow_next.take().filter(|n| n != master || !ok)
    }

    /// Every command's end is no longer awaited (a restarted daemon starts with none).
    pub fn clear(&mut self) {
        *self = Running::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_of_each_command_at_a_time() {
        let mut r = Running::default();
        assert!(!r.any());
        assert!(r.start_failover());
        assert!(!r.start_failover());
        assert!(r.failover());
        assert!(r.start_fence(Mono(10.0)));
        assert!(!r.start_fence(Mono(10.5)));
        assert_eq!(r.what(), "fence_command");
        assert_eq!(r.fence_done(Mono(10.75)), Some(0.75));
        assert_eq!(r.fence_done(Mono(11.0)), None);
        r.failover_done();
        assert!(!r.any());
        assert!(r.start_failover(), "a later failover starts again");
    }

    #[test]
    fn a_follow_asked_for_meanwhile_runs_next_unless_it_is_the_one_that_worked() {
        let mut r = Running::default();
        assert!(r.start_follow("pg1"));
        assert!(!r.start_follow("pg2"));
        assert!(!r.start_follow("pg3"), "the latest master wins");
        assert_eq!(r.follow_done("pg1", true), Some("pg3".into()));
        assert!(r.start_follow("pg3"));
        assert!(!r.start_follow("pg3"));
        assert_eq!(r.follow_done("pg3", true), None, "already following it");
        assert!(r.start_follow("pg3"));
        assert!(!r.start_follow("pg3"));
        assert_eq!(r.follow_done("pg3", false), Some("pg3".into()), "a failure is retried");
    }
}
