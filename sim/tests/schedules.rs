//! The simulator's campaign and its self-checks. Everything here is simulated: no PostgreSQL,
//! no network, no real clock.

use pglookout_sim::cluster::Proc;
use pglookout_sim::schedule::{self, Schedule};
use pglookout_sim::world::World;
use pglookout_sim::{replay, run, run_many, schedule_seed};

/// Ten thousand seeded schedules of the fast (fenced) and default profiles; every invariant
/// after every event. A failure prints the shrunk schedule, how to replay it, and its trace.
#[test]
fn ten_thousand_schedules_keep_every_invariant() {
    let report = run_many(20_240_601, 10_000);
    eprintln!(
        "{:.0} schedules/s ({:.1} s), {} events, {} failovers, {} promotions, {} fences, {} runs with the two-writable rule waived",
        report.schedules_per_sec,
        report.seconds,
        report.events,
        report.failovers,
        report.promotions,
        report.fences,
        report.waived
    );
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    if let Some(f) = &report.shortest_failing {
        panic!("{}\n{:?}\n{}", f.render(), report.by_rule, report.summary());
    }
    assert_eq!(report.violations, 0, "{}", report.summary());
    // the campaign exercises the rules, not only quiet clusters
    assert!(report.promotions > 1000 && report.fences > 1000, "{report:?}");
}

#[test]
fn the_same_seed_gives_the_same_run_byte_for_byte() {
    for i in 0..20 {
        let seed = schedule_seed(7, i);
        let sched = schedule::generate(seed);
        let a = run(seed, &sched).expect("configured");
        let b = run(seed, &sched).expect("configured");
        assert_eq!(a.trace, b.trace);
        assert_eq!((a.events, a.violation), (b.events, b.violation));
        let again = replay(seed, &sched.to_string()).expect("parses");
        assert_eq!(again.trace, a.trace);
    }
}

/// The checker catches what it should: without fence_command (the default profile), a primary
/// cut off from everyone stays writable while a standby is promoted, as docs/safety.md says.
#[test]
fn without_fencing_a_partitioned_primary_stays_writable_beside_the_new_one() {
    let sched = Schedule::parse(
        "defaults nodes=3 observers=1 never=- follow=1 intent=liveness end=230.000 | isolate:0:refuse@30.000+200.000",
    )
    .expect("schedule");
    let mut w = World::new(1, &sched).expect("configured");
    w.run();
    assert_eq!(w.violation, None);
    assert!(w.cluster.writable(0), "the old primary was never fenced");
    let promoted = w.promotions.first().map(|p| p.1).expect("a standby was promoted");
    assert!(w.cluster.writable(promoted));
    // the same partition with the fast profile's fence: the old primary is stopped first
    let fenced = Schedule::parse(
        "fast nodes=3 observers=1 never=- follow=1 intent=liveness end=30.000 | isolate:0:refuse@16.000+14.000",
    )
    .expect("schedule");
    let mut w = World::new(1, &fenced).expect("configured");
    w.run();
    assert_eq!(w.violation, None, "{:#?}", w.trace);
    assert_eq!(w.cluster.nodes[0].proc, Proc::Fenced);
    let (fenced_at, promoted_at) = (w.fences[0].0, w.promotions[0].0);
    assert!(fenced_at < promoted_at, "fence {fenced_at} before promotion {promoted_at}");
}

/// A kill -9 of the primary on the fast profile: promoted within the documented time (about
/// 5.1 s to the first write, docs/safety.md), and the other standby follows.
#[test]
fn kill_of_the_primary_fails_over_in_about_five_seconds() {
    let sched = Schedule::parse(
        "fast nodes=3 observers=1 never=- follow=1 intent=liveness end=28.000 | kill:0@16.000+0.000",
    )
    .expect("schedule");
    let mut w = World::new(3, &sched).expect("configured");
    w.run();
    assert_eq!(w.violation, None);
    let (t, node) = w.promotions[0];
    let took = pglookout_sim::secs(t) - 16.0;
    assert!((4.8..6.5).contains(&took), "promoted {node} after {took:.2} s");
    let other = if node == 1 { 2 } else { 1 };
    assert!(w.follows.iter().any(|(_, n, m)| *n == other && *m == node));
}
