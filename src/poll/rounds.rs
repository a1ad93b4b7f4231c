//! The poller's round accounting, pure (times are monotonic seconds, handed in): when a round
//! is complete, when a requested round ("poll now") may start, and which probes count for the
//! round under way. The aggregator task (`super`) and the simulator (`sim/`) both run this.

use std::collections::BTreeSet;

/// The rounds of one poller. `K` names a worker (one per node and per observer).
#[derive(Clone, Debug)]
pub struct Rounds<K: Ord + Clone> {
    /// When the round under way started: only probes started since count for it.
    round_start: f64,
    /// Workers that have reported in this round. Only ever holds keys of live workers (callers
    /// [`Rounds::forget`] a stopped one), so equal sizes mean equal sets.
    reported: BTreeSet<K>,
    last_request: Option<f64>,
    /// A request came in while a requested round was running or too soon after the last one.
    deferred_request: bool,
    /// A requested round has started and not completed yet.
    requested_running: bool,
    /// Bumped whenever a requested round starts: workers that see it change probe at once.
    generation: u64,
}

impl<K: Ord + Clone> Rounds<K> {
    pub fn new(now: f64) -> Self {
        Rounds {
            round_start: now,
            reported: BTreeSet::new(),
            last_request: None,
            deferred_request: false,
            requested_running: false,
            generation: 0,
        }
    }

    /// The poll-now generation: workers probe at once when it changes.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Whether a request is waiting for its turn.
    pub fn deferred(&self) -> bool {
        self.deferred_request
    }

    /// Requested rounds are at least `min(1 s, db_poll_interval)` apart, so a flood of
    /// `POST /check` cannot multiply polling; a request inside that window is deferred, not lost.
    fn spacing_passed(&self, now: f64, poll_interval: f64) -> bool {
        let spacing = poll_interval.clamp(0.0, 1.0);
        self.last_request.is_none_or(|t| now - t >= spacing)
    }

    /// A poll-now request. True when a new round starts now (the generation changed); otherwise
    /// the request is deferred until [`Rounds::tick`] or the end of the running round lets it
    /// start. A requested round that is still running is never restarted: with a node that takes
    /// its whole deadline, restarting on every request would keep any round from completing.
    pub fn request(&mut self, now: f64, poll_interval: f64) -> bool {
        if self.requested_running || !self.spacing_passed(now, poll_interval) {
            self.deferred_request = true;
            return false;
        }
        self.deferred_request = false;
        self.requested_running = true;
        self.last_request = Some(now);
        self.round_start = now;
        self.reported.clear();
        self.generation += 1;
        true
    }

    /// The periodic tick (the aggregator's publish tick): starts a deferred request whose
    /// spacing has passed. True when a round started.
    pub fn tick(&mut self, now: f64, poll_interval: f64) -> bool {
        self.deferred_request && self.spacing_passed(now, poll_interval) && self.request(now, poll_interval)
    }

    /// A worker's report of a probe started at `started`; `workers` is how many there are.
    /// True when it completed the round (which is then finished: see [`Rounds::finish`]).
    pub fn report(&mut self, key: &K, started: f64, workers: usize, now: f64, poll_interval: f64) -> bool {
        if started >= self.round_start {
            self.reported.insert(key.clone());
        }
        debug_assert!(self.reported.len() <= workers);
        if workers > 0 && self.reported.len() == workers {
            self.finish(now, poll_interval);
            return true;
        }
        false
    }

    /// Ends the round under way and starts the next one (a deferred request with it, when its
    /// spacing has passed). With no workers, a round is just the passing of the interval: the
    /// caller finishes one when [`Rounds::idle_round_due`].
    pub fn finish(&mut self, now: f64, poll_interval: f64) {
        self.round_start = now;
        self.reported.clear();
        self.requested_running = false;
        self.tick(now, poll_interval);
    }

    /// With no workers: whether a poll interval has passed since the round started.
    pub fn idle_round_due(&self, now: f64, poll_interval: f64) -> bool {
        now - self.round_start >= poll_interval
    }

    /// A worker stopped (removed by a reload): it no longer counts.
    pub fn forget(&mut self, key: &K) {
        self.reported.remove(key);
    }

    /// Starts afresh (a restarted daemon).
    pub fn reset(&mut self, now: f64) {
        *self = Rounds::new(now);
    }
}

/// Seconds from `now` to the first multiple of `interval` strictly after it: the shared poll
/// grid every worker waits for, so that a round's probes start together.
pub fn until_next_tick(now: f64, interval: f64) -> f64 {
    let next = ((now / interval).floor() + 1.0) * interval;
    (next - now).clamp(0.0, interval)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_round_completes_when_every_worker_reported_a_probe_started_in_it() {
        let mut r: Rounds<&str> = Rounds::new(10.0);
        // a probe started before the round counts for nothing
        assert!(!r.report(&"a", 9.5, 2, 10.1, 1.0));
        assert!(!r.report(&"a", 10.0, 2, 10.2, 1.0));
        assert!(!r.report(&"a", 10.3, 2, 10.4, 1.0), "a second report of one worker");
        assert!(r.report(&"b", 10.0, 2, 10.5, 1.0));
        // the next round starts at the completion
        assert!(!r.report(&"a", 10.2, 2, 10.6, 1.0));
    }

    #[test]
    fn requests_are_spaced_deferred_and_never_restart_a_running_round() {
        let mut r: Rounds<&str> = Rounds::new(0.0);
        assert!(r.request(5.0, 2.0));
        assert_eq!(r.generation(), 1);
        // while it runs, a request waits
        assert!(!r.request(5.1, 2.0));
        assert!(r.deferred());
        assert!(!r.tick(5.2, 2.0));
        // the round completes 0.5 s after the request: the deferred one waits for the 1 s spacing
        assert!(!r.report(&"a", 5.0, 2, 5.4, 2.0));
        assert!(r.report(&"b", 5.0, 2, 5.5, 2.0));
        assert_eq!(r.generation(), 1);
        assert!(!r.tick(5.9, 2.0));
        assert!(r.tick(6.0, 2.0));
        assert_eq!(r.generation(), 2);
        assert!(!r.deferred());
        // a short poll interval spaces requests by that interval
        let mut r: Rounds<&str> = Rounds::new(0.0);
        assert!(r.request(1.0, 0.1));
        r.finish(1.05, 0.1);
        assert!(!r.request(1.08, 0.1));
        assert!(r.tick(1.1, 0.1));
    }

    #[test]
    fn a_forgotten_worker_no_longer_counts() {
        let mut r: Rounds<&str> = Rounds::new(0.0);
        assert!(!r.report(&"a", 0.0, 2, 0.1, 1.0));
        r.forget(&"a");
        assert!(r.report(&"b", 0.0, 1, 0.2, 1.0));
    }

    #[test]
    fn probes_are_scheduled_on_a_shared_grid() {
        let close = |a: f64, b: f64| (a - b).abs() < 1e-9;
        // wherever a worker finished its probe, it waits for the same next tick
        assert!(close(until_next_tick(100.0, 1.0), 1.0));
        assert!(close(until_next_tick(100.25, 1.0), 0.75));
        assert!(close(until_next_tick(100.999, 1.0), 0.001));
        assert!(close(until_next_tick(12.5, 5.0), 2.5));
        // a probe that overran several ticks waits for the next one, not for a burst of them
        assert!(close(until_next_tick(107.4, 2.0), 0.6));
    }
}
