//! Issue 18's regressions: schedules of the new draws (`rules=authority`) that break an
//! invariant with the decision core before the one-authority rules (voters: the observers,
//! plus the daemon's own poll in the mesh; the lease kept while 2·vouch >= N; every promotion
//! path needing 2·u > N on the monotonic clock; verified fences). Each says what it gives on
//! that core; they pass once the one-authority core lands. Replay any of them with
//! `pglab sim --seed SEED --replay 'SCHEDULE'`, or for the whole trace from this crate
//! `cargo run --release -p pglookout-sim --example authority -- replay SEED 'SCHEDULE'`.

use pglookout_sim::replay;

fn passes(seed: u64, text: &str) -> pglookout_sim::Outcome {
    let o = replay(seed, text).expect("replays");
    assert_eq!(o.violation, None, "{text}\n{}", o.trace.join("\n"));
    assert!(o.waived.is_none(), "{:?}", o.waived);
    o
}

/// Finding 1: a healthy primary fenced when only the standby daemons lose it. The mesh with
/// fencing on; the standby daemons' connections to pg0's PostgreSQL are cut for 15 s while the
/// WAL stream and every observer fetch flow. pg0's own poll and obs0 vouch for it (2 of 4
/// voters: the lease holds), the standbys gather 2 of 4 (no strict majority): nothing may
/// happen.
/// `pglab sim --seed 11 --replay 'fast nodes=3 observers=1 never=- follow=1 intent=chaos end=30.000 rules=authority | dblinks:1>0,2>0:refuse@5.000+15.000'`
/// Current core: needless-fence at 8.913 s (pg0 fenced while obs0 and its own poll, half of
/// its 4 voters, could vouch for it right up to the fence). Blackholed instead of refused:
/// needless-fence at 9.113 s.
#[test]
fn regression_standby_daemons_lose_the_primary_while_wal_flows() {
    for text in [
        "fast nodes=3 observers=1 never=- follow=1 intent=chaos end=30.000 rules=authority | dblinks:1>0,2>0:refuse@5.000+15.000",
        "fast nodes=3 observers=1 never=- follow=1 intent=chaos end=30.000 rules=authority | dblinks:1>0,2>0:blackhole@5.000+15.000",
    ] {
        let o = passes(11, text);
        assert_eq!((o.fences, o.failovers), (0, 0), "{}", o.trace.join("\n"));
    }
}

/// Finding 2: a zone split with half the voters on each side, three dedicated observers plus
/// the mesh: {pg0, obs0, obs1} | {pg1, pg2, obs2} (hosts 0, 3, 4 | 1, 2, 5). pg0 keeps 3 of
/// its 6 voters (its own poll, obs0, obs1), the other side has 3 of 6: no promotion, and the
/// lease holds.
/// `pglab sim --seed 11 --replay 'fast nodes=3 observers=3 never=- follow=1 intent=chaos end=30.000 rules=authority | zone:0,3,4:refuse@5.000+15.000'`
/// Current core: needless-fence at 8.812 s (obs0, obs1 and its own poll, half of its 6
/// voters, could vouch right up to the fence): no primary at all.
#[test]
fn regression_zone_split_half_the_daemons_each_side_mesh() {
    let o = passes(
        11,
        "fast nodes=3 observers=3 never=- follow=1 intent=chaos end=30.000 rules=authority | zone:0,3,4:refuse@5.000+15.000",
    );
    assert_eq!((o.fences, o.failovers), (0, 0), "{}", o.trace.join("\n"));
}

/// Finding 2 without the mesh: dedicated observers only (`allow_fragile_lease`), four of them,
/// split {pg0, obs0, obs1} | {pg1, pg2, obs2, obs3}: 2 of 4 vouch for pg0, 2 of 4 report it
/// unreachable. (With three dedicated observers, {pg0, obs0, obs1} | {pg1, pg2, obs2} keeps
/// 2 of 3 on pg0's side, and the current core passes it.)
/// `pglab sim --seed 11 --replay 'fast nodes=3 observers=4 never=- follow=1 intent=chaos end=30.000 layout=dedicated rules=authority | zone:0,3,4:refuse@5.000+15.000'`
/// Current core: needless-fence at 8.813 s (obs0 and obs1, half of its 4 voters, could vouch
/// right up to the fence).
#[test]
fn regression_zone_split_half_the_daemons_each_side_dedicated() {
    let o = passes(
        11,
        "fast nodes=3 observers=4 never=- follow=1 intent=chaos end=30.000 layout=dedicated rules=authority | zone:0,3,4:refuse@5.000+15.000",
    );
    assert_eq!((o.fences, o.failovers), (0, 0), "{}", o.trace.join("\n"));
}

/// Finding 3: the fence exits 0 and a supervisor starts the node again as a primary about 1 s
/// later. pg0's host is cut off (refused) for 20 s: its lease runs out, the fence stops it,
/// the supervisor restarts it, and the standbys promote pg2. A verified fence sees pg0 a
/// connected primary again and fences it again (alert `fence_failed`) within the grace the
/// invariants give (2I + P + 2C + budget).
/// `pglab sim --seed 11 --replay 'fast nodes=3 observers=1 never=- follow=1 intent=chaos end=30.000 rules=authority | isolate:0:refuse@5.000+20.000 revive:0@4.000+20.000'`
/// Current core: two-writable at 15.983 s (pg0 on timeline 1 and pg2 on timeline 2; pg0 is
/// never fenced again).
#[test]
fn regression_fence_exits_0_and_a_supervisor_restarts_the_primary() {
    let o = passes(
        11,
        "fast nodes=3 observers=1 never=- follow=1 intent=chaos end=30.000 rules=authority | isolate:0:refuse@5.000+20.000 revive:0@4.000+20.000",
    );
    assert!(o.fences >= 2, "fenced again: {}", o.trace.join("\n"));
}

/// Finding 4: clocks off by 4.5 s (inside the 5 s the observer answers tolerate). The standby
/// that would be chosen (pg2) has its wall clock 4.5 s ahead while the primary is killed: on
/// the monotonic clock the failover timeout runs as for the others.
/// `pglab sim --seed 11 --replay 'fast nodes=3 observers=1 never=- follow=1 intent=liveness end=29.000 rules=authority | kill:0@16.500+0.000 skew:2=+4.500@3.000+40.000'`
/// Current core: liveness at 23.800 s (no standby promoted within 7.30 s).
/// The primary's daemon 4.5 s ahead while its host is cut off:
/// `pglab sim --seed 11 --replay 'fast nodes=3 observers=1 never=- follow=1 intent=liveness end=29.000 rules=authority | isolate:0:refuse@16.500+13.000 skew:0=+4.500@3.000+40.000'`
/// Current core: liveness at 26.598 s (pg2 promoted 10.098 s after the loss, bound 7.30 s).
/// (A node's db_time off by ±5 s, `dbskew:0=±5.000`, with the same losses passes today.)
/// With the one-authority core the window is monotonic, so no skew shortens it (table test
/// `regression_a_skewed_master_clock_does_not_shorten_the_failover_timeout`), but these two
/// still fail on liveness: a daemon 4.5 s off has every other answer of its observers refused
/// by the 5 s clock-skew check (`poll::observer`), so the strict majority it needs never holds
/// continuously for the failover timeout and no standby is promoted. Safe (not knowing is no
/// reason to promote), not live: left open.
/// Finding 4's two schedules judged on safety only (`intent=chaos`): never two writable, no
/// needless fence, no acknowledged write lost to a split brain, while the liveness side above
/// stays open. The isolated primary is fenced before pg2 is promoted.
#[test]
fn regression_clock_skewed_by_4_5_s_stays_safe() {
    for text in [
        "fast nodes=3 observers=1 never=- follow=1 intent=chaos end=29.000 rules=authority | kill:0@16.500+0.000 skew:2=+4.500@3.000+40.000",
        "fast nodes=3 observers=1 never=- follow=1 intent=chaos end=29.000 rules=authority | isolate:0:refuse@16.500+13.000 skew:0=+4.500@3.000+40.000",
    ] {
        let o = passes(11, text);
        assert!(o.fences >= 1, "{}", o.trace.join("\n"));
    }
}

#[test]
#[ignore = "liveness under a 4.5 s daemon clock skew: the observer skew check refuses every other answer (left open, see above)"]
fn regression_clock_skewed_by_4_5_s() {
    for text in [
        "fast nodes=3 observers=1 never=- follow=1 intent=liveness end=29.000 rules=authority | kill:0@16.500+0.000 skew:2=+4.500@3.000+40.000",
        "fast nodes=3 observers=1 never=- follow=1 intent=liveness end=29.000 rules=authority | isolate:0:refuse@16.500+13.000 skew:0=+4.500@3.000+40.000",
    ] {
        passes(11, text);
    }
}

/// Finding 6: a reload turns fencing on while the observers have not answered. pg0's daemon
/// runs without `fence_command`; its fetches of every observer are blackholed from 5 s to 8 s,
/// and at 7.5 s a reload turns fencing on. The lease must run `fence_timeout` (3.75 s) from
/// when the vouches stopped, and they are back at 8 s: no fence.
/// `pglab sim --seed 11 --replay 'fast nodes=3 observers=1 never=- follow=1 intent=chaos end=30.000 rules=authority | links:0>1,0>2,0>3:blackhole@5.000+3.000 fenceon:0@7.500+0.000'`
/// Current core: needless-fence at 7.700 s, 0.2 s after the reload ("no majority of the
/// observers has reported pg0 connected for 7.7 s": the lease counts from the daemon's start,
/// as nothing renewed it while fencing was off), after only 2.7 s without the observers.
#[test]
fn regression_reload_turns_fencing_on_before_the_observers_answer() {
    let o = passes(
        11,
        "fast nodes=3 observers=1 never=- follow=1 intent=chaos end=30.000 rules=authority | links:0>1,0>2,0>3:blackhole@5.000+3.000 fenceon:0@7.500+0.000",
    );
    assert_eq!((o.fences, o.failovers), (0, 0), "{}", o.trace.join("\n"));
}

/// Finding 8: two promotions from the same timeline give equal timelines (`tl=equal`, as
/// PostgreSQL numbers them). pg0 is killed and pg2 promoted to timeline 2; pg1 (no autofollow)
/// stays on timeline 1. pg2's host is then cut off, its lease fences it and a supervisor
/// starts it again as a primary; pg1 is promoted, to timeline 2 as well. Both are primaries on
/// timeline 2: no newer timeline tells which one must go; a verified fence stops pg2 again.
/// `pglab sim --seed 11 --replay 'fast nodes=3 observers=1 never=- follow=0 intent=chaos end=60.000 rules=authority tl=equal | kill:0@16.000+0.000 isolate:2:refuse@25.000+12.000 revive:2@24.000+20.000'`
/// Current core: two-writable at 30.831 s (pg1 and pg2 both on timeline 2). The same schedule
/// with unique timelines fails the same way at the same time (the restart, not the timeline
/// number, is what the current core misses); no equal-timeline failure without a supervisor
/// restart was found.
#[test]
fn regression_equal_timelines_after_two_promotions() {
    passes(
        11,
        "fast nodes=3 observers=1 never=- follow=0 intent=chaos end=60.000 rules=authority tl=equal | kill:0@16.000+0.000 isolate:2:refuse@25.000+12.000 revive:2@24.000+20.000",
    );
}

/// Finding 5: a promotion our failover command began lands unseen. pg0 is killed; pg2 (the
/// furthest along) runs its failover command while its host stalls (`flate:2`): the command is
/// killed at `failover_command_timeout` (8 s) and reported failed, the promotion it began lands
/// 24 ms later, and no probe of pg2 answers until well after. pg1, which deferred to pg2 while
/// it might be promoting, promotes itself once pg2's command has failed. pg2's daemon last saw
/// its node as a standby; it must hold it to the lease (the one it renewed as a standby has
/// long run out) and fence it, not take "a standby we cannot reach" for harmless.
/// `pglab sim --seed 4 --replay 'fast nodes=3 observers=1 never=- follow=1 intent=chaos end=24.929 rules=authority fct=8.000 | kill:0@10.000+0.000 flate:2@5.000+20.000'`
/// Core without the fix (`Some(true) => return None` in `decide::fence::fence`): two-writable
/// at 23.929 s (pg1 on timeline 3 and pg2 on timeline 2, pg2's daemon with no fence in flight):
/// pg2's command fails at 23.103 s, its promotion lands at 23.127 s, pg1 promotes at 23.692 s.
#[test]
fn regression_a_promotion_our_failover_command_began_lands_unseen() {
    let o = passes(
        4,
        "fast nodes=3 observers=1 never=- follow=1 intent=chaos end=24.929 rules=authority fct=8.000 | kill:0@10.000+0.000 flate:2@5.000+20.000",
    );
    assert!(
        o.trace.iter().any(|l| l.contains("pg2 fenced")),
        "{}",
        o.trace.join("\n")
    );
}

/// `layout=uneven`: node daemons that list different dedicated observers (pg0's daemon obs1
/// and obs2, pg1's obs0 and obs2) count different voter sets, whose majorities need not
/// overlap. pg1's daemon and obs0 and obs2 lose their database links to pg0: pg1 has a strict
/// majority of its voters reporting pg0 gone, while pg0 keeps its lease with obs1. Before the
/// relay, pg1 was promoted at about 15 s while pg0 still took writes (two-writable, no fence in
/// flight; `authority 19 2000 --sync on`, seed 9819274036271292158, shrunk). Now obs2, which
/// both node daemons fetch from, relays each one's voter digest to the other: `voters_mismatch`
/// and no promotion.
#[test]
fn regression_node_daemons_counting_different_dedicated_observers_see_it_through_a_shared_one() {
    let o = passes(
        9819274036271292158,
        "fast nodes=2 observers=3 never=- follow=1 intent=chaos end=16.115 layout=uneven rules=authority fct=8.000 rejoin=1 sync=on:1 | dblinks:1>0,2>0,4>0:refuse@9.936+5.125",
    );
    assert!(
        !o.trace.iter().any(|l| l.contains("pg1 promoted")),
        "{}",
        o.trace.join("\n")
    );
}

/// `rejoin_old_master` in the simulator (`rejoin=1`): pg0's host is cut off for 15 s, its lease
/// fences it, pg2 is promoted; once the cut heals pg0's daemon sees pg2 corroborated as the
/// primary, stops pg0, rewinds it from pg2 and starts it as pg2's standby, through the same
/// `Node` and effects the daemon runs.
#[test]
fn a_fenced_old_primary_rejoins_as_a_standby_of_the_new_one() {
    let o = passes(
        3,
        "fast nodes=3 observers=1 never=- follow=1 intent=chaos end=60.000 rules=authority rejoin=1 | isolate:0:refuse@10.000+15.000",
    );
    let at = |needle: &str| o.trace.iter().position(|l| l.contains(needle));
    let fenced = at("pg0 fenced");
    let rewound = at("pg0 rewound and started as a standby of pg2");
    assert!(fenced.is_some() && rewound > fenced, "{}", o.trace.join("\n"));
    assert_eq!(o.lost, Some((0, 0)), "{}", o.trace.join("\n"));
}

/// Known from the classic draws (fails at 50,000 schedules today): pg2's daemon restarts, pg0's
/// host is cut off, and a reload takes pg0 out of pg2's config.
/// `pglab sim --seed 11177387889725892509 --replay 'fast nodes=3 observers=1 never=- follow=1 intent=chaos end=14.686 | restart:2@5.430+7.497 isolate:0:refuse@10.411+4.205 reload:2-0@12.681+1.629'`
/// Current core: two-writable at 13.687 s (pg0 on timeline 1 and pg2 on timeline 2): pg2's
/// daemon starts again at 12.927 s with pg0 out of its config and promotes pg2 3 ms later ("no
/// master seen since start", old master none), 2.5 s into pg0's cut, before pg0's lease ran
/// out and without a majority of voters reporting pg0 unreachable.
#[test]
fn regression_restart_isolate_and_reload_promote_before_the_lease_ends() {
    passes(
        11_177_387_889_725_892_509,
        "fast nodes=3 observers=1 never=- follow=1 intent=chaos end=14.686 | restart:2@5.430+7.497 isolate:0:refuse@10.411+4.205 reload:2-0@12.681+1.629",
    );
}

/// Issue 18's draws (`schedule::generate_authority`), every invariant including needless-fence
/// and lost-writes. Ignored until the one-authority core lands; then it joins CI (2,000
/// schedules: about a tenth of the classic campaign's time).
#[test]
fn authority_draws_keep_every_invariant() {
    let report = pglookout_sim::run_many_draws(18, 2_000, pglookout_sim::schedule::Draws::Authority);
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    if let Some(f) = &report.shortest_failing {
        panic!("{}\n{:?}\n{}", f.render(), report.by_rule, report.summary());
    }
    assert_eq!(report.violations, 0, "{}", report.summary());
}

/// Found by the classic draws (`pglab sim --schedules 20000 --seed 319`): the fast profile,
/// two nodes and one observer, pg0's host isolated (refused, then blackholed) while its daemon
/// is down for 6 s. The restarted daemon counted its lease from its own start, a whole new
/// fence_timeout, while the standby's failover timeout had been running since the isolation
/// began: pg1 promoted 0.1 s after the isolation ended, pg0 still unfenced (majority-sees-primary).
/// Fixed: the lease is written to the state file (`lease_renewed_at`) and a restarted daemon
/// counts from there (`decide::fence::restore_lease`): pg0 is fenced 1 s after its daemon is
/// back, before pg1 promotes. (The daemon was down past the point where it had to fence, which
/// no rule can cover: the two-writable check is waived, and none of the others fires.) The
/// second schedule is the covered case, a short restart 2 s into an isolation: without the
/// restored lease pg0 and pg1 both took writes (two-writable, not waived).
#[test]
fn regression_a_restarted_daemon_keeps_the_lease_it_had() {
    let o = replay(
        3147191195595494959,
        "fast nodes=2 observers=1 never=- follow=0 intent=chaos end=16.571 policy=1:1048576 | isolate:0:refuse@4.410+6.044 restart:0@6.034+6.156 isolate:0:blackhole@8.793+6.677",
    )
    .expect("replays");
    assert_eq!(o.violation, None, "{}", o.trace.join("\n"));
    let at = |what: &str| o.trace.iter().position(|l| l.contains(what));
    let fenced = at("pg0 fenced").expect("pg0 is fenced");
    assert!(
        at("pg1: runs failover_command").is_none_or(|p| p > fenced),
        "{}",
        o.trace.join("\n")
    );
    passes(
        7,
        "fast nodes=2 observers=1 never=- follow=0 intent=chaos end=40.000 | isolate:0:refuse@20.000+10.000 restart:0@22.000+0.500",
    );
}

/// Found by the classic draws (`pglab sim --schedules 20000 --seed 320`): the default profile,
/// no fencing, pg0 frozen 37.75 s while pg2's daemon restarts. pg2's daemon knew of pg0 only
/// from an observer report and had never reached it, so the lag window (`max_failover_replication_time_lag`,
/// 120 s) had no last contact to count from and was skipped: pg2 promoted as pg0 resumed, while
/// pg1 correctly waited ("last contact 40 s ago"). Fixed: such a master was last seen at the
/// latest just before the daemon started (`decide::failover::last_contact`).
#[test]
fn regression_a_restarted_daemon_counts_the_lag_window_from_its_start() {
    passes(
        3312135274892509831,
        "defaults nodes=3 observers=2 never=- follow=0 intent=chaos end=169.670 | restart:2@108.480+36.430 freeze:0@126.770+37.750",
    );
}
