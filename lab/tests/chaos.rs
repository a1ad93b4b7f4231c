//! A short seeded `pglab chaos` campaign against real PostgreSQL and the `pglookout` binary
//! (build it first: `cargo build`; or set PGLOOKOUT_BIN). Checks that the judgement machinery
//! produces its records and numbers, and that the daemons pass: never two writable primaries,
//! no acknowledged write lost to a split brain, the partitioned and the frozen primary fenced
//! and failed over, the blip ridden out. A correctness test, not a timed one.

use std::collections::BTreeSet;
use std::time::Duration;

use pglab::chaos::{self, Fault, Layout, Options, Profile, SyncMode};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_campaign_partition_sigstop_blip() {
    let opts = Options {
        runs: 3,
        seed: 1,
        profile: Profile::Fast,
        faults: vec![Fault::Partition, Fault::Sigstop, Fault::Blip],
        // Long enough for a failover under the fast profile's 4.8 s trigger (so partition and
        // sigstop are fenced and failed over), short enough to keep the test around a minute.
        layout: Layout::Mesh,
        hold_min: 16.0,
        hold_max: 16.0,
        converge_deadline: Duration::from_secs(20),
        only: None,
        sync: SyncMode::Off,
    };
    let mut seen = Vec::new();
    let records = chaos::campaign(&opts, |r| {
        eprintln!("{}", r.line());
        seen.push(r.line());
    })
    .await
    .expect("campaign");
    assert_eq!(records.len(), 3);
    assert_eq!(seen.len(), 3, "one callback per run");
    let faults: BTreeSet<&str> = records.iter().map(|r| r.fault.as_str()).collect();
    assert_eq!(faults, BTreeSet::from(["blip", "partition", "sigstop"]));

    for r in &records {
        let line = r.line();
        assert!(r.error.is_none(), "the run itself failed: {line}\n{}", r.diagnostics);
        assert!(r.acked > 0, "the writer acknowledged nothing: {line}");
        assert!(r.max_writable >= 1, "the monitor never saw a primary: {line}");
        assert!(r.duration > r.hold, "{line}");
        if r.final_primary.is_some() {
            let (missing, split, lost_async) = (r.missing, r.missing_split_brain, r.missing_async);
            assert!(missing.is_some(), "missing writes not computed: {line}");
            assert_eq!(
                missing,
                split.zip(lost_async).map(|(a, b)| a + b),
                "the missing writes are split into split-brain and async: {line}"
            );
        }
        if r.new_primary.is_some() {
            assert!(r.new_primary_write.is_some_and(|t| t >= 0.0), "{line}");
        }
        // The verdict agrees with the failures it lists.
        assert_eq!(r.passed, r.failures.is_empty(), "{line}");
        let j = r.to_json();
        for key in [
            "run_seed",
            "fault",
            "passed",
            "max_writable",
            "missing",
            "failovers",
            "converged",
        ] {
            assert!(j.get(key).is_some(), "JSON record lacks {key}: {j}");
        }
        if r.fault == "blip" {
            // A 3 s refusal must not promote or fence anything, today already.
            assert!(r.failovers.is_empty(), "blip caused a failover: {line}");
            assert!(r.fences.is_empty(), "blip caused a fence: {line}");
            assert_eq!(r.max_writable, 1, "{line}");
            assert!(r.passed, "{line}\n{}", r.diagnostics);
        }
        // Fencing keeps the two apart: the old primary is fenced before a standby promotes.
        assert!(r.passed, "{line}\n{}", r.diagnostics);
        assert_eq!(r.max_writable, 1, "{line}");
        assert_eq!(r.missing_split_brain, Some(0), "{line}");
        if r.fault != "blip" {
            assert_eq!(r.fences.len(), 1, "the old primary fenced once: {line}");
            assert_eq!(r.failovers.len(), 1, "one failover: {line}");
        }
    }
    let summary = chaos::summary(&records);
    assert!(summary.contains("passed") && summary.contains("failed"), "{summary}");
}

/// Issue 8, item 4: a frozen standby (its server and its daemon, as a paused VM) and a frozen
/// observer never cause a failover or a fence, held for longer than the fast profile's fence
/// timeout and fast trigger together.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_standby_or_observer_never_fails_over() {
    let opts = Options {
        runs: 2,
        seed: 1,
        profile: Profile::Fast,
        faults: vec![Fault::SigstopStandby, Fault::SigstopObserver],
        layout: Layout::Mesh,
        hold_min: 10.0,
        hold_max: 10.0,
        converge_deadline: Duration::from_secs(20),
        only: None,
        sync: SyncMode::Off,
    };
    let records = chaos::campaign(&opts, |r| eprintln!("{}", r.line()))
        .await
        .expect("campaign");
    let faults: BTreeSet<&str> = records.iter().map(|r| r.fault.as_str()).collect();
    assert_eq!(faults, BTreeSet::from(["sigstop-observer", "sigstop-standby"]));
    for r in &records {
        let line = r.line();
        assert!(r.error.is_none(), "the run itself failed: {line}\n{}", r.diagnostics);
        assert!(r.failovers.is_empty(), "a freeze caused a failover: {line}");
        assert!(r.fences.is_empty(), "a freeze caused a fence: {line}");
        assert_eq!(r.max_writable, 1, "{line}");
        assert_eq!(r.final_primary.as_deref(), Some("pg1"), "{line}");
        assert!(r.passed, "{line}\n{}", r.diagnostics);
    }
}

/// Issue 18, findings 1 and 2: the standby daemons' links to a healthy primary cut (its WAL
/// stream, its own daemon and the observer still reach it), and a zone split with half of the
/// six voters on each side ({pg1, obs1, obs2} | {pg2, pg3, obs3}). Neither may fence the
/// primary or fail over: no strict majority of the voters reports it gone, at least half vouch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_authority_neither_fences_nor_fails_over_without_a_majority() {
    for (fault, layout) in [
        (Fault::StandbyDaemonsCut, Layout::Mesh),
        (Fault::ZoneSplit, Layout::Dedicated3),
    ] {
        let opts = Options {
            runs: 1,
            seed: 3,
            profile: Profile::Fast,
            faults: vec![fault],
            layout,
            hold_min: 12.0,
            hold_max: 12.0,
            converge_deadline: Duration::from_secs(20),
            only: None,
            sync: SyncMode::Off,
        };
        let records = chaos::campaign(&opts, |r| eprintln!("{}", r.line()))
            .await
            .expect("campaign");
        for r in &records {
            let line = r.line();
            assert!(r.error.is_none(), "the run itself failed: {line}\n{}", r.diagnostics);
            assert!(r.fences.is_empty(), "a needless fence: {line}\n{}", r.diagnostics);
            assert!(r.failovers.is_empty(), "a needless failover: {line}\n{}", r.diagnostics);
            assert_eq!(r.max_writable, 1, "{line}");
            assert_eq!(r.final_primary.as_deref(), Some("pg1"), "{line}");
            assert!(r.passed, "{line}\n{}", r.diagnostics);
        }
    }
}
