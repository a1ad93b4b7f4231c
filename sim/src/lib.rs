//! pglookout-sim: a deterministic simulation of whole pglookout clusters. One `u64` seed
//! drives simulated time, the nodes, the network and every fault; each daemon runs the real
//! `pglookout::decide::decide()` with a config built by `Config::from_value`; invariants are
//! checked after every event; a failure is shrunk and printed as a replayable trace.
//! See sim/README.md for the model, what it covers and what it does not.
//!
//! Modules, one line each, saying what they own:
//!
//! - [`rng`]: splitmix64, the only source of randomness.
//! - [`schedule`]: cluster shape, profile and faults; drawing them from a seed; their text form.
//! - [`cluster`]: the simulated PostgreSQL servers and streaming replication.
//! - [`net`]: what a connection between two hosts meets at an instant.
//! - [`shell`]: one daemon's shell around `decide()` (poller rounds, checks, running flags).
//! - [`world`]: the event loop, the commands' effects, the trace.
//! - [`wire`]: what a `/state.json` round trip does to a node map, without the bytes.
//! - [`event`]: what happened in the world, as the world tells the checker.
//! - [`check`]: the invariants, judged on a model of the run built from those events.
//! - [`shrink`]: reducing a failing schedule.

pub mod check;
pub mod cluster;
pub mod event;
pub mod net;
pub mod rng;
pub mod schedule;
pub mod shell;
pub mod shrink;
pub mod wire;
pub mod world;

use check::{Rule, Violation};
use schedule::Schedule;
use std::collections::BTreeMap;

/// Simulated time: microseconds since the start of the run.
pub type Us = u64;
pub const MS: Us = 1_000;
pub const SEC: Us = 1_000_000;

pub fn secs(t: Us) -> f64 {
    t as f64 / 1e6
}

/// Seconds to [`Us`] (negative and NaN give 0).
pub fn us(s: f64) -> Us {
    (s * 1e6).round().max(0.0) as Us
}

/// What one run did.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub violation: Option<Violation>,
    /// Why the two-writable rule did not apply, when it did not.
    pub waived: Option<String>,
    pub events: u64,
    pub failovers: usize,
    pub promotions: usize,
    pub fences: usize,
    pub yields: usize,
    /// Acknowledged writes lost at the end (split brain, asynchronous), when the run ended with
    /// a primary (counted for every run; judged with `rules=authority`).
    pub lost: Option<(u64, u64)>,
    /// With `synchronous_mode` on or strict: the client commits acknowledged (synchronously,
    /// asynchronously), those acknowledged synchronously that the final primary lacks, and
    /// whether sync-lost judged the run (fencing on, not waived), when the run ended with a
    /// primary.
    pub sync: Option<((u64, u64), u64, bool)>,
    /// The schedule ran with `synchronous_mode` on or strict.
    pub sync_mode: bool,
    /// The readable trace: `   12.345 pg1: decision: ...`.
    pub trace: Vec<String>,
}

/// Runs one schedule with the noise (latencies, command times, clock offsets) of `seed`.
pub fn run(seed: u64, sched: &Schedule) -> Result<Outcome, String> {
    let mut w = world::World::new(seed, sched)?;
    w.run();
    let lost = w
        .checker
        .lost_writes()
        .map(|(split, lost_async, _)| (split, lost_async));
    let sync = w
        .checker
        .sync_loss()
        .map(|l| (l.acked, l.synchronous.len() as u64, w.checker.sync_judged()));
    Ok(Outcome {
        lost,
        sync,
        sync_mode: sched.sync != schedule::SynchronousMode::Off,
        violation: w.violation.clone(),
        waived: w.checker.waived.clone(),
        events: w.events,
        failovers: w.checker.failovers.len(),
        promotions: w.checker.promotions.len(),
        fences: w.checker.fences.len(),
        yields: w.yields.len(),
        trace: w
            .trace
            .iter()
            .map(|(t, line)| format!("{:>9.3} {line}", secs(*t)))
            .collect(),
    })
}

/// Replays a schedule from its text form (as printed in a report).
pub fn replay(seed: u64, text: &str) -> Result<Outcome, String> {
    run(seed, &Schedule::parse(text)?)
}

/// The seed of schedule `i` of a campaign.
pub fn schedule_seed(seed: u64, i: u64) -> u64 {
    rng::mix(seed, i)
}

/// A failing schedule, shrunk.
#[derive(Clone, Debug)]
pub struct Failure {
    /// Replay with `replay(seed, &schedule)`.
    pub seed: u64,
    pub original: String,
    pub schedule: String,
    pub violation: Violation,
    pub trace: Vec<String>,
}

impl Failure {
    /// The failure as the lab prints it: what broke, how to replay, and the trace.
    pub fn render(&self) -> String {
        let mut s = format!(
            "violation: {}\nreplay: pglab sim --seed {} --replay '{}'\n(drawn as: {})\ntrace:\n",
            self.violation, self.seed, self.schedule, self.original
        );
        for line in &self.trace {
            s.push_str(line);
            s.push('\n');
        }
        s
    }
}

/// What a campaign found.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub schedules: u64,
    pub violations: u64,
    pub by_rule: BTreeMap<String, u64>,
    /// Runs where the two-writable rule was waived (a documented assumption broken).
    pub waived: u64,
    pub events: u64,
    pub failovers: u64,
    pub promotions: u64,
    pub fences: u64,
    /// Daemons that yielded their turn to the next candidate.
    pub yields: u64,
    pub seconds: f64,
    pub schedules_per_sec: f64,
    /// The failure with the fewest faults (then the shortest trace), shrunk.
    pub shortest_failing: Option<Failure>,
    /// Every failing schedule: its seed and the violation, in schedule order.
    pub failures: Vec<(u64, Violation)>,
    /// Config errors: a schedule whose daemons could not be configured.
    pub errors: Vec<String>,
    /// Writes lost to asynchronous replication, over every run (allowed, counted).
    pub lost_async: u64,
    /// Per rule, the failure with the fewest faults, shrunk (filled by [`shrink_each_rule`]).
    pub shortest_by_rule: BTreeMap<String, Failure>,
    draws: Option<schedule::Draws>,
    /// How `synchronous_mode` was set.
    pub sync: schedule::SyncDraw,
    /// `synchronous_mode` on or strict: client commits acknowledged synchronously and
    /// asynchronously, over the runs that ended with a primary, and the synchronous ones lost.
    pub acked_sync: u64,
    pub acked_async: u64,
    pub lost_sync: u64,
    /// Those lost in runs sync-lost does not judge (no fencing, or two-writable waived).
    pub lost_sync_unjudged: u64,
    /// Runs with `synchronous_mode` on or strict, and those of them that ended without a
    /// primary (nothing judged).
    pub sync_runs: u64,
    pub sync_no_primary: u64,
}

impl Report {
    /// The last line of `pglab sim`.
    pub fn summary(&self) -> String {
        format!("{} schedules, {} violations", self.schedules, self.violations)
    }

    /// What `synchronous_mode` did, for a campaign with it (`None` with `--sync off`).
    pub fn sync_summary(&self) -> Option<String> {
        (self.sync != schedule::SyncDraw::Off).then(|| {
            format!(
                "synchronous_mode {:?}: {} runs on or strict ({} ended without a primary), {} writes acknowledged synchronously ({} lost in judged runs, {} in runs without fencing or waived), {} asynchronously ({} lost)",
                self.sync,
                self.sync_runs,
                self.sync_no_primary,
                self.acked_sync,
                self.lost_sync,
                self.lost_sync_unjudged,
                self.acked_async,
                self.lost_async
            )
        })
    }

    /// The schedule of seed `s` in this campaign.
    pub fn generate(&self, s: u64) -> Schedule {
        let draws = self.draws.unwrap_or(schedule::Draws::Classic);
        self.sync.apply(s, draws.generate(s))
    }
}

/// The message of a caught panic.
fn panic_text(p: &Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "no message".into())
}

/// Runs schedules `0..n` of campaign `seed` on every core, then shrinks the shortest failure.
/// The report (apart from the timings) is the same for the same `(seed, n)`.
pub fn run_many(seed: u64, n: u64) -> Report {
    run_many_draws(seed, n, schedule::Draws::Classic)
}

/// Shrinks, for every rule broken in `report`, its failure with the fewest faults.
pub fn shrink_each_rule(report: &mut Report) {
    let mut best: BTreeMap<String, (usize, u64)> = BTreeMap::new();
    for (s, v) in &report.failures {
        let len = report.generate(*s).faults.len();
        let e = best.entry(v.rule.to_string()).or_insert((len, *s));
        if len < e.0 {
            *e = (len, *s);
        }
    }
    for (rule, (_, s)) in best {
        if let Some(f) = shrink::shrink(s, &report.generate(s)) {
            report.shortest_by_rule.insert(rule, f);
        }
    }
}

/// [`run_many`] with the schedules of generator `draws`.
pub fn run_many_draws(seed: u64, n: u64, draws: schedule::Draws) -> Report {
    run_many_sync(seed, n, draws, schedule::SyncDraw::Off)
}

/// [`run_many_draws`] with `synchronous_mode` set as `sync` says.
pub fn run_many_sync(seed: u64, n: u64, draws: schedule::Draws, sync: schedule::SyncDraw) -> Report {
    let generate = move |s: u64| sync.apply(s, draws.generate(s));
    let started = std::time::Instant::now();
    let threads = std::thread::available_parallelism().map_or(1, |p| p.get()).min(8) as u64;
    let results: Vec<(u64, Result<Outcome, String>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|k| {
                scope.spawn(move || {
                    (k..n)
                        .step_by(threads as usize)
                        .map(|i| {
                            let s = schedule_seed(seed, i);
                            // a panic (a debug assertion of the decision core, say) is that
                            // schedule's error, not a thread whose results vanish
                            let ran = std::panic::catch_unwind(|| run(s, &generate(s)));
                            (
                                i,
                                ran.unwrap_or_else(|p| Err(format!("seed {s} panicked: {}", panic_text(&p)))),
                            )
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut all: Vec<_> = handles.into_iter().flat_map(|h| h.join().unwrap_or_default()).collect();
        all.sort_by_key(|(i, _)| *i);
        all
    });
    let mut report = Report {
        schedules: n,
        draws: Some(draws),
        sync,
        ..Report::default()
    };
    let mut failing: Vec<(usize, u64, Rule)> = Vec::new();
    for (i, r) in results {
        match r {
            Err(e) => report.errors.push(format!("schedule {i}: {e}")),
            Ok(o) => {
                report.events += o.events;
                report.failovers += o.failovers as u64;
                report.promotions += o.promotions as u64;
                report.fences += o.fences as u64;
                report.yields += o.yields as u64;
                report.waived += u64::from(o.waived.is_some());
                report.lost_async += o.lost.map_or(0, |l| l.1);
                report.sync_runs += u64::from(o.sync_mode);
                report.sync_no_primary += u64::from(o.sync_mode && o.sync.is_none());
                if let Some(((acked_sync, acked_async), lost_sync, judged)) = o.sync {
                    report.acked_sync += acked_sync;
                    report.acked_async += acked_async;
                    if judged {
                        report.lost_sync += lost_sync;
                    } else {
                        report.lost_sync_unjudged += lost_sync;
                    }
                }
                if let Some(v) = o.violation {
                    report.violations += 1;
                    *report.by_rule.entry(v.rule.to_string()).or_default() += 1;
                    let s = schedule_seed(seed, i);
                    failing.push((generate(s).faults.len(), s, v.rule));
                    report.failures.push((s, v));
                }
            }
        }
    }
    report.seconds = started.elapsed().as_secs_f64();
    report.schedules_per_sec = n as f64 / report.seconds.max(1e-9);
    failing.sort();
    if let Some(&(_, s, _)) = failing.first() {
        report.shortest_failing = shrink::shrink(s, &generate(s));
    }
    report
}
