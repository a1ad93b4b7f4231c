//! Shrinking: a failing schedule is reduced, fault by fault, while it still breaks the same
//! rule: drop faults, shorten them, then end the run soon after the violation. Each candidate
//! is a full deterministic run, so the result replays exactly from `(seed, text)`.

use crate::check::Rule;
use crate::schedule::{Intent, Schedule};
use crate::{run, Failure, MS, SEC};

/// At most this many runs while shrinking.
const BUDGET: usize = 200;

/// The rule `sched` breaks with `seed`, if it does.
fn fails(seed: u64, sched: &Schedule) -> Option<(Rule, crate::Us)> {
    let o = run(seed, sched).ok()?;
    o.violation.map(|v| (v.rule, v.t))
}

/// Shrinks a failing schedule; `None` if it does not fail.
pub fn shrink(seed: u64, original: &Schedule) -> Option<Failure> {
    let (rule, mut at) = fails(seed, original)?;
    let mut best = original.clone();
    let mut runs = 0;
    let try_it = |cand: &Schedule, runs: &mut usize| -> Option<crate::Us> {
        if *runs >= BUDGET {
            return None;
        }
        *runs += 1;
        fails(seed, cand).filter(|(r, _)| *r == rule).map(|(_, t)| t)
    };
    // liveness and blip schedules have one fault, their premise: only chaos ones shrink
    let fixed = if best.intent == Intent::Chaos {
        0
    } else {
        best.faults.len()
    };
    let mut i = fixed;
    while i < best.faults.len() {
        let mut cand = best.clone();
        cand.faults.remove(i);
        if let Some(t) = try_it(&cand, &mut runs) {
            best = cand;
            at = t;
        } else {
            i += 1;
        }
    }
    // halve durations while it still fails
    for i in fixed..best.faults.len() {
        loop {
            let mut cand = best.clone();
            let dur = cand.faults[i].dur;
            if dur < 200 * MS {
                break;
            }
            cand.faults[i].dur = (dur / 2 / MS) * MS;
            match try_it(&cand, &mut runs) {
                Some(t) => {
                    best = cand;
                    at = t;
                }
                None => break,
            }
        }
    }
    // end soon after the violation (an end-of-run rule keeps its end)
    let end = ((at + SEC) / MS) * MS;
    if end < best.end && !matches!(rule, Rule::NoPromotion | Rule::NoFollow | Rule::Blip) {
        let mut cand = best.clone();
        cand.end = end;
        if try_it(&cand, &mut runs).is_some() {
            best = cand;
        }
    }
    let o = run(seed, &best).ok()?;
    Some(Failure {
        seed,
        original: original.to_string(),
        schedule: best.to_string(),
        violation: o.violation?,
        trace: o.trace,
    })
}
