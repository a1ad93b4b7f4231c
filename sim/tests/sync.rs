//! `synchronous_mode` in the simulator (issue 21): the simulated PostgreSQL acknowledges a
//! client commit once K listed streaming standbys flushed it, the primary's daemon keeps the
//! setting, and the checker's sync-lost rule judges the end.

use pglookout_sim::replay;

/// A primary killed with every standby reachable: the failover goes ahead, the new primary
/// has its names before it is promoted with strict (with on and K = 2, one standby left, its
/// daemon empties them: degraded), and nothing acknowledged synchronously is lost.
#[test]
fn a_killed_primary_loses_no_synchronously_acknowledged_write() {
    for mode in ["on:1", "on:2", "strict:1", "strict:2"] {
        let text = format!(
            "fast nodes=3 observers=1 never=- follow=1 intent=liveness end=40.000 sync={mode} | kill:0@16.500+0.000"
        );
        let o = replay(3, &text).expect("schedule");
        assert_eq!(o.violation, None, "{text}\n{}", o.trace.join("\n"));
        assert_eq!(o.promotions, 1, "{text}");
        let ((acked_sync, _), lost_sync, judged) = o.sync.expect("ends with a primary");
        assert!(judged && acked_sync > 100 && lost_sync == 0, "{text}: {:?}", o.sync);
        // strict gives the new primary its names before the promotion, never empties them,
        // and with K = 2 and one standby left keeps them; on starts it asynchronous, and with
        // K = 2 and one standby left it stays so (degraded)
        let before = o.trace.iter().any(|l| l.contains("before its promotion"));
        let emptied = o.trace.iter().any(|l| l.contains("synchronous_standby_names = \"\""));
        let set_after = o
            .trace
            .iter()
            .any(|l| l.contains("synchronous_standby_names = \"ANY") && !l.contains("before its promotion"));
        assert_eq!(before, mode.starts_with("strict"), "{text}");
        assert!(
            !(mode.starts_with("strict") && emptied),
            "strict never empties them: {text}"
        );
        assert_eq!(set_after, mode.ends_with(":1"), "{text}");
    }
}

/// With strict and no standby streaming, commits wait: none is acknowledged while both
/// standbys are cut off from the primary, and they go through once the cut heals.
#[test]
fn strict_writes_wait_without_a_standby() {
    let text = "fast nodes=3 observers=1 never=- follow=1 intent=chaos end=14.000 sync=strict:1 | links:1>0,2>0:refuse@5.000+1.000";
    let o = replay(5, text).expect("schedule");
    assert_eq!(o.violation, None, "{}", o.trace.join("\n"));
    let ((acked_sync, acked_async), lost, _) = o.sync.expect("ends with a primary");
    assert_eq!((acked_async, lost), (0, 0), "{:?}", o.sync);
    assert!(acked_sync > 100);
}

/// The checker catches a synchronously acknowledged write missing from the final primary:
/// this zone split leaves the old primary pg0 streaming to pg2 (ANY 1 of pg1, pg2) while pg1,
/// cut off with the observers, is promoted. With the rule of `decide::sync` the failover waits
/// (pg2 is not reachable); `synchronous_only` made to keep every standby (the experiment of
/// docs/safety.md, "What the simulator checks of it") promoted pg1 and lost 83 writes.
#[test]
fn a_zone_split_without_the_sync_rule_would_lose_writes_and_with_it_does_not() {
    let text = "fast nodes=3 observers=2 never=- follow=0 intent=chaos end=25.470 layout=uneven rules=authority fct=2.000 sync=on:1 | zone:1,3,4:blackhole@12.576+6.894";
    let o = replay(2_033_312_968_803_293_909, text).expect("schedule");
    assert_eq!(o.violation, None, "{}", o.trace.join("\n"));
    let (_, lost_sync, _) = o.sync.expect("ends with a primary");
    assert_eq!(lost_sync, 0);
}

/// Found by `authority 19 2000 --sync on` (shrunk): pg0's host freezes, pg4 is promoted, and
/// when pg0 resumes 50 ms later pg1-pg3 (autofollow off) still streamed from it, so it
/// acknowledged 4 commits through them before its fence acted. Now each standby's daemon cuts
/// its WAL receiver once a strict majority of the voters reports pg0 gone, and the failover
/// counts only standbys cut off (`decide::receiver`): pg0 resumes with no standby to confirm
/// anything, and nothing acknowledged is lost.
#[test]
fn regression_a_frozen_primary_that_resumes_gets_no_confirmation_from_its_standbys() {
    let text = "fast nodes=5 observers=2 never=- follow=0 intent=chaos end=56.576 policy=4:65536 layout=uneven rules=authority fct=6.000 sync=on:1 | hfreeze:0@11.813+5.756";
    let o = replay(10_295_150_411_362_597_249, text).expect("schedule");
    assert_eq!(o.violation, None, "{}", o.trace.join("\n"));
    assert_eq!(o.promotions, 1, "{}", o.trace.join("\n"));
    let (_, lost_sync, judged) = o.sync.expect("ends with a primary");
    assert!(judged);
    assert_eq!(lost_sync, 0);
    // every standby cut its receiver before the promotion
    let promoted = o.trace.iter().position(|l| l.contains("runs failover_command"));
    let cuts = o
        .trace
        .iter()
        .take(promoted.unwrap_or(0))
        .filter(|l| l.contains("primary_conninfo emptied"))
        .count();
    assert_eq!(cuts, 4, "{}", o.trace.join("\n"));
}
