//! Real failovers on real PostgreSQL: a primary pg1 and standbys pg2 and pg3, one daemon per
//! node whose `failover_command` promotes its own node (pglab's `promote_command`), and one
//! observer `obs`. Every wait is bounded and waits for a condition; "nothing happened" is
//! checked over a number of decisions the daemons made, never over a bare sleep.

use super::harness::*;
use pglab::daemon::Daemon;
use pglab::{Cluster, Proxy, ProxyMode, Ready};
use pglookout::lsn::Lsn;
use serde_json::{json, Value};
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::path::PathBuf;

const STANDBYS: [&str; 2] = ["pg2", "pg3"];
/// `max_failover_replication_time_lag` of these tests: after the primary disappears, the
/// daemons fail over once their last contact with it is this old. A healthy cluster stays far
/// below it (every daemon commits a heartbeat on the primary every poll).
const FAILOVER_LAG: f64 = 5.0;
/// `missing_master_from_config_timeout`: the grace after start before a missing master is
/// acted on. `start` waits it out, so that the failovers take the path they take in a
/// long-running cluster (master missing, last contact older than FAILOVER_LAG) rather than the
/// replication-lag path.
const MISSING_MASTER_GRACE: f64 = 1.0;
/// How many polls of its own node a daemon must decide on while we check that nothing happens.
const QUIET_ROUNDS: usize = 8;
const FAILOVER_HAS_HAPPENED: &str = "failover_has_happened";
const REPLICATION_DELAY_WARNING: &str = "replication_delay_warning";
/// The summaries (decision.summary in the state file) the tests wait for.
const HEALTHY_STANDBY: &str = "no action: replication lag is under the warning limit";
const MAINTENANCE: &str = "no failover: we are furthest along but maintenance_mode_file exists";

/// The daemons of one cluster. Daemons are declared before the cluster, so they stop first.
struct Lab {
    obs: Daemon,
    daemons: BTreeMap<String, Daemon>,
    cluster: Cluster,
}

impl Lab {
    fn daemon(&self, name: &str) -> &Daemon {
        if name == "obs" {
            &self.obs
        } else {
            &self.daemons[name]
        }
    }

    fn has_alert(&self, daemon: &str, alert: &str) -> bool {
        self.daemon(daemon).alert_dir.join(alert).exists()
    }

    fn maintenance_file(&self, name: &str) -> PathBuf {
        maintenance_file(&self.cluster, name)
    }

    /// The standbys that are out of recovery now (a node that does not answer counts as not
    /// promoted: it is restarting, or was never promoted).
    async fn promoted(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        for s in STANDBYS {
            if let Ok(false) = self.cluster.in_recovery(s).await {
                out.push(s);
            }
        }
        out
    }

    /// Every daemon's last decision and log tail, for failure messages.
    fn dump(&self) -> String {
        let mut out = String::new();
        for d in std::iter::once(&self.obs).chain(self.daemons.values()) {
            let decision = d.state().map(|s| s["decision"].to_string()).unwrap_or_default();
            out.push_str(&format!(
                "\n===== {}: decision {decision}\n{}\n",
                d.name,
                story(&d.log(), 40)
            ));
        }
        out
    }

    /// [`pglab::wait_for`] with [`DEADLINE`], failing with every daemon's log.
    async fn wait<F, Fut, R>(&self, what: &str, f: F) -> R::Output
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = anyhow::Result<R>>,
        R: Ready,
    {
        match pglab::wait_for(what, DEADLINE, f).await {
            Ok(v) => v,
            Err(e) => panic!("{e:#}{}", self.dump()),
        }
    }

    /// Daemon `name`'s history, oldest first (empty before its first event).
    fn history(&self, name: &str) -> Vec<pglookout::events::Event> {
        let path = pglookout::events::default_path(&self.daemon(name).state_path);
        match pglookout::events::read(&path, 1000, None) {
            Ok(h) => h.events.into_iter().rev().collect(),
            Err(_) => Vec::new(),
        }
    }

    /// Waits until daemon `name`'s history has a `failover_yielded` event
    /// for `reason`: the summary says so only until the next master is seen.
    async fn wait_yield(&self, name: &str, reason: &str) {
        let what = format!("{name} to yield its turn ({reason})");
        self.wait(&what, || async {
            Ok(self
                .history(name)
                .iter()
                .any(|e| e.kind == "failover_yielded" && e.reason == reason))
        })
        .await
    }

    /// Waits until daemon `name`'s state satisfies `pred`.
    async fn wait_state(&self, name: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let d = self.daemon(name);
        self.wait(what, || async { Ok(d.state().filter(|s| pred(s))) }).await
    }

    /// Waits until daemon `name` has decided on `n` polls of its own node (distinct
    /// `fetch_time`s) with `pred(state)` true. Polls are at least `db_poll_interval` apart, so
    /// this also bounds the time that passed from below.
    async fn rounds(&self, name: &str, n: usize, what: &str, pred: impl Fn(&Value) -> bool) {
        self.count_rounds(name, n, what, false, pred).await
    }

    /// Like [`Lab::rounds`], failing at once if any standby is promoted or any daemon creates
    /// `failover_has_happened` meanwhile: "nothing happens" over [`QUIET_ROUNDS`] decisions.
    async fn stays_quiet(&self, name: &str, what: &str, pred: impl Fn(&Value) -> bool) {
        self.count_rounds(name, QUIET_ROUNDS, what, true, pred).await
    }

    async fn count_rounds(&self, name: &str, n: usize, what: &str, quiet: bool, pred: impl Fn(&Value) -> bool) {
        let d = self.daemon(name);
        let seen = RefCell::new(BTreeSet::new());
        let outcome = self
            .wait(what, || async {
                if let Some(s) = d.state().filter(|s| pred(s)) {
                    if let Some(t) = node(&s, name)["fetch_time"].as_str() {
                        seen.borrow_mut().insert(t.to_string());
                    }
                }
                if quiet {
                    let promoted = self.promoted().await;
                    if !promoted.is_empty() {
                        return Ok(Some(Err(format!("{promoted:?} promoted"))));
                    }
                    if let Some(n) = self.daemons.keys().find(|n| self.has_alert(n, FAILOVER_HAS_HAPPENED)) {
                        return Ok(Some(Err(format!("{n} created {FAILOVER_HAS_HAPPENED}"))));
                    }
                }
                Ok((seen.borrow().len() >= n).then_some(Ok(())))
            })
            .await;
        if let Err(e) = outcome {
            panic!("while waiting for {what}: {e}{}", self.dump());
        }
    }

    /// After pg1 was killed (or cut off): waits until the standbys' WAL receivers are gone and
    /// returns their receive positions, which no longer move.
    async fn frozen_positions(&self) -> BTreeMap<&'static str, Lsn> {
        let cluster = &self.cluster;
        self.wait("the standbys' WAL receivers to stop", || async {
            let mut positions = BTreeMap::new();
            for s in STANDBYS {
                let rows = cluster
                    .sql(
                        s,
                        "SELECT count(*) FROM pg_stat_wal_receiver WHERE status = 'streaming'",
                    )
                    .await?;
                if rows[0].get::<_, i64>(0) > 0 {
                    return Ok(None);
                }
                // Before 13 a cut WAL stream is a restart, after which nothing has been
                // received yet (NULL): the position is then what was replayed.
                let rows = cluster
                    .sql(
                        s,
                        "SELECT coalesce(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())::text",
                    )
                    .await?;
                let lsn: String = rows[0].get(0);
                positions.insert(s, lsn.parse::<Lsn>()?);
            }
            Ok(Some(positions))
        })
        .await
    }

    /// Waits until a standby is promoted; fails if both are.
    async fn wait_promoted(&self) -> &'static str {
        let promoted = self
            .wait("a standby to be promoted", || async {
                let p = self.promoted().await;
                Ok((!p.is_empty()).then_some(p))
            })
            .await;
        assert_eq!(promoted.len(), 1, "both standbys promoted{}", self.dump());
        promoted[0]
    }

    /// The rest of a successful failover to `winner`: it takes writes, only its daemon ran
    /// the failover command (once) and has the alert, and the other standby's daemon follows
    /// the new master for several decisions without promoting its own node.
    async fn check_failover_to(&self, winner: &str) {
        let loser = other(winner);
        self.cluster
            .sql(winner, "INSERT INTO pglab_load (payload) VALUES ('after failover')")
            .await
            .unwrap_or_else(|e| panic!("{winner} does not take writes: {e:#}"));
        self.wait_state(loser, &format!("{loser}'s daemon to see {winner} as the master"), |s| {
            s["current_master"] == json!(winner)
        })
        .await;
        self.rounds(
            loser,
            QUIET_ROUNDS,
            &format!("{loser} to stay a standby for a while"),
            |s| s["current_master"] == json!(winner),
        )
        .await;
        assert_eq!(self.promoted().await, vec![winner], "{}", self.dump());
        assert!(self.has_alert(winner, FAILOVER_HAS_HAPPENED), "{}", self.dump());
        for other in ["pg1", loser] {
            assert!(!self.has_alert(other, FAILOVER_HAS_HAPPENED), "{other}{}", self.dump());
        }
        assert!(!self.obs.alert_dir.join(FAILOVER_HAS_HAPPENED).exists());
        let log = self.daemon(winner).log();
        // The path a long-running cluster takes (not the replication-lag one).
        assert!(
            log.contains(&format!(
                "decision: failover: promoting {winner}, the node furthest along (master pg1 is missing;"
            )),
            "{}",
            self.dump()
        );
        assert_eq!(
            log.matches("running failover_command").count(),
            1,
            "the failover command ran once{}",
            self.dump()
        );
        for other in ["pg1", loser] {
            assert!(
                !self.daemon(other).log().contains("running failover_command"),
                "{other}"
            );
        }
        self.check_history(winner).await;
    }

    /// The event history of a failover to `winner`: on its daemon, the decision's command
    /// started, then both its good end and the new master (in either order); on the other
    /// standby's, the master changed from pg1 to `winner`. Served at `GET /history` and by
    /// `pglookout-ctl history`.
    async fn check_history(&self, winner: &str) {
        let loser = other(winner);
        let kinds = |name: &str| -> Vec<pglookout::events::Event> {
            let path = pglookout::events::default_path(&self.daemon(name).state_path);
            let mut h = pglookout::events::read(&path, 1000, None).expect("history").events;
            h.reverse();
            h
        };
        let won = self
            .wait("the winner's history to show the failover", || async {
                let h = kinds(winner);
                let at = |kind: &str| h.iter().position(|e| e.kind == kind);
                let changed = h
                    .iter()
                    .rposition(|e| e.kind == "master_changed" && e.new_master.as_deref() == Some(winner));
                // the command's end and the daemon's first poll of its promoted node race
                Ok(match (at("failover_started"), at("failover_finished"), changed) {
                    (Some(a), Some(b), Some(c)) if a < b && a < c => Some(h),
                    _ => None,
                })
            })
            .await;
        let started = won.iter().find(|e| e.kind == "failover_started").expect("started");
        assert_eq!(started.old_master.as_deref(), Some("pg1"), "{started:?}");
        assert_eq!(started.new_master.as_deref(), Some(winner), "{started:?}");
        assert!(started.reason.contains("master pg1 is missing"), "{started:?}");
        assert!(
            won.iter()
                .any(|e| e.kind == "failover_finished" && e.reason == "succeeded"),
            "{won:?}"
        );
        assert_eq!(won.first().map(|e| e.kind.as_str()), Some("daemon_start"), "{won:?}");
        self.wait("the other standby's history to show the new master", || async {
            Ok(kinds(loser).iter().any(|e| {
                e.kind == "master_changed"
                    && e.old_master.as_deref() == Some("pg1")
                    && e.new_master.as_deref() == Some(winner)
            }))
        })
        .await;

        let d = self.daemon(winner);
        let (code, body) = d.http("GET", "/history?limit=2").await.expect("GET /history");
        assert_eq!(code, 200, "{body}");
        let served: Vec<pglookout::events::Event> = serde_json::from_str(&body).expect("events");
        assert_eq!(served.len(), 2, "{body}");
        assert!(served[0].time >= served[1].time, "newest first: {body}");
        let (code, _) = d.http("GET", "/history?limit=nope").await.expect("GET /history");
        assert_eq!(code, 400);
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_pglookout-ctl"))
            .args(["history", "--url", &d.url(), "--limit", "1000"])
            .output()
            .expect("pglookout-ctl");
        let table = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{table}{}", String::from_utf8_lossy(&out.stderr));
        assert!(
            table.contains("failover_started") && table.contains(&format!("pg1 -> {winner}")),
            "{table}"
        );
    }
}

fn other(standby: &str) -> &'static str {
    if standby == "pg2" {
        "pg3"
    } else {
        "pg2"
    }
}

fn maintenance_file(cluster: &Cluster, name: &str) -> PathBuf {
    cluster.dir().join(format!("{name}-maintenance"))
}

/// The standby every daemon should pick: highest receive position, ties to the highest name.
fn furthest(positions: &BTreeMap<&'static str, Lsn>) -> &'static str {
    positions
        .iter()
        .max_by_key(|(name, lsn)| (**lsn, **name))
        .map(|(name, _)| *name)
        .expect("positions")
}

fn summary(s: &Value) -> &str {
    s["decision"]["summary"].as_str().unwrap_or_default()
}

fn reasons(s: &Value) -> String {
    s["decision"]["reasons"].to_string()
}

async fn cluster() -> Cluster {
    lab_cluster(2).await
}

/// Starts the observer and a daemon per node (each node's `failover_command` promotes it; its
/// maintenance file is `<dir>/<node>-maintenance`), with `tweak` applied to each node's
/// config, and waits until every daemon sees a healthy cluster with pg1 as the master.
async fn start(cluster: Cluster, tweak: impl Fn(&str, &mut Value)) -> Lab {
    let obs = spawn(&cluster, "obs", config(&cluster, "", json!({})));
    let observers = json!({ "obs": obs.url() });
    let mut daemons = BTreeMap::new();
    for name in ["pg1", "pg2", "pg3"] {
        let mut c = config(&cluster, name, observers.clone());
        c["max_failover_replication_time_lag"] = json!(FAILOVER_LAG);
        c["missing_master_from_config_timeout"] = json!(MISSING_MASTER_GRACE);
        c["maintenance_mode_file"] = json!(maintenance_file(&cluster, name));
        c["failover_command"] = json!(cluster.promote_command(name).expect("promote command"));
        tweak(name, &mut c);
        daemons.insert(name.to_string(), spawn(&cluster, name, c));
    }
    let lab = Lab { obs, daemons, cluster };
    lab.wait_state("obs", "the observer to see pg1 as the master", |s| {
        s["current_master"] == json!("pg1") && ["pg1", "pg2", "pg3"].iter().all(|n| connected(s, n))
    })
    .await;
    for name in STANDBYS {
        // Three polls are a second apart: past MISSING_MASTER_GRACE since the daemon started.
        lab.rounds(name, 3, &format!("{name}'s daemon to see a healthy cluster"), |s| {
            s["current_master"] == json!("pg1")
                && ["pg1", "pg2", "pg3"].iter().all(|n| connected(s, n))
                && s["observer_nodes"]["obs"]["connection"] == json!(true)
                && summary(s) == HEALTHY_STANDBY
        })
        .await;
    }
    lab.wait_state("pg1", "pg1's daemon to know it is the master", |s| {
        summary(s) == "no action: we are the master"
    })
    .await;
    lab
}

/// Cuts `name` from the WAL stream and writes on pg1 until the other standby has replayed
/// writes that `name` will never see.
async fn leave_behind(lab: &Lab, name: &str) {
    let cluster = &lab.cluster;
    cluster.cut_wal_stream(name).await.expect("cut");
    cluster.write_load(500).await.expect("write");
    let written = cluster.load_count("pg1").await.expect("count");
    let ahead = other(name);
    lab.wait(&format!("{ahead} to replay the writes"), || async {
        Ok(cluster.load_count(ahead).await? >= written)
    })
    .await;
    assert!(cluster.load_count(name).await.expect("count") < written);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_of_the_primary_promotes_the_standby_furthest_along() {
    let lab = start(cluster().await, |_, _| {}).await;
    lab.cluster.kill9("pg1").expect("kill pg1");
    let positions = lab.frozen_positions().await;
    let expected = furthest(&positions);
    let winner = lab.wait_promoted().await;
    assert_eq!(winner, expected, "positions {positions:?}{}", lab.dump());
    lab.check_failover_to(winner).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_cut_from_the_wal_stream_is_not_promoted() {
    let lab = start(cluster().await, |_, _| {}).await;
    // pg3 would win a tie by name: leave it behind.
    leave_behind(&lab, "pg3").await;
    lab.cluster.kill9("pg1").expect("kill pg1");
    let positions = lab.frozen_positions().await;
    assert!(positions["pg3"] < positions["pg2"], "{positions:?}");
    let winner = lab.wait_promoted().await;
    assert_eq!(winner, "pg2", "positions {positions:?}{}", lab.dump());
    lab.check_failover_to(winner).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn never_promote_these_nodes_makes_the_other_standby_win() {
    let lab = start(cluster().await, |_, c| {
        c["never_promote_these_nodes"] = json!(["pg3"]);
    })
    .await;
    // pg3 is ahead, so it would win if it were allowed to.
    leave_behind(&lab, "pg2").await;
    lab.cluster.kill9("pg1").expect("kill pg1");
    let positions = lab.frozen_positions().await;
    assert!(positions["pg2"] < positions["pg3"], "{positions:?}");
    let winner = lab.wait_promoted().await;
    assert_eq!(winner, "pg2", "positions {positions:?}{}", lab.dump());
    lab.check_failover_to(winner).await;
    let s = lab.daemon("pg3").state().expect("state");
    assert_eq!(s["current_master"], json!("pg2"));
}

/// Waits until every standby's daemon has seen pg1 at or past its current WAL position.
async fn daemons_see_primary_position(lab: &Lab) -> Lsn {
    let rows = lab
        .cluster
        .sql("pg1", "SELECT pg_current_wal_lsn()::text")
        .await
        .expect("position");
    let at: Lsn = rows[0].get::<_, String>(0).parse().expect("lsn");
    for s in STANDBYS {
        lab.wait_state(s, &format!("{s}'s daemon to see pg1 at {at}"), |st| {
            node(st, "pg1")["pg_last_xlog_replay_location"]
                .as_str()
                .and_then(|l| l.parse::<Lsn>().ok())
                .is_some_and(|l| l >= at)
        })
        .await;
    }
    at
}

const BLOCKED: &str = "no failover: every candidate is beyond max_failover_lag_bytes";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_failover_lag_bytes_blocks_a_failover_that_would_lose_more() {
    let lab = start(cluster().await, |_, c| {
        c["max_failover_lag_bytes"] = json!(4096);
    })
    .await;
    // Both standbys cut off while pg1 writes on: each falls more than 4 kB behind.
    for s in STANDBYS {
        lab.cluster.cut_wal_stream(s).await.expect("cut");
    }
    lab.cluster.write_load(500).await.expect("write");
    let at = daemons_see_primary_position(&lab).await;
    lab.cluster.kill9("pg1").expect("kill pg1");
    let positions = lab.frozen_positions().await;
    for (s, p) in &positions {
        assert!(at.0 - p.0 > 4096, "{s} at {p}, pg1 at {at}");
    }
    for s in STANDBYS {
        let st = lab
            .wait_state(s, &format!("{s}'s daemon to block the failover"), |st| {
                summary(st) == BLOCKED
            })
            .await;
        assert!(reasons(&st).contains("bytes behind"), "{}", reasons(&st));
        assert!(lab.has_alert(s, "failover_blocked"), "{}", lab.dump());
    }
    lab.stays_quiet(furthest(&positions), "the cap to keep blocking", |st| {
        summary(st) == BLOCKED
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_priorities_pick_a_standby_behind_within_the_cap() {
    let lab = start(cluster().await, |_, c| {
        c["max_failover_lag_bytes"] = json!(64 << 20);
        c["failover_priorities"] = json!({"pg2": 200});
    })
    .await;
    // pg3 is ahead (and would win a tie by name), but pg2 has the higher priority and is
    // within the cap.
    leave_behind(&lab, "pg2").await;
    daemons_see_primary_position(&lab).await;
    lab.cluster.kill9("pg1").expect("kill pg1");
    let positions = lab.frozen_positions().await;
    assert!(positions["pg2"] < positions["pg3"], "{positions:?}");
    let winner = lab.wait_promoted().await;
    assert_eq!(winner, "pg2", "positions {positions:?}{}", lab.dump());
    lab.check_failover_to(winner).await;
    assert!(
        lab.daemon("pg2")
            .log()
            .contains("failover_priorities: pg2 (priority 200) is preferred over pg3 (priority 0), which is further along, within max_failover_lag_bytes"),
        "{}",
        lab.dump()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_maintenance_file_on_the_furthest_node_blocks_the_failover_until_removed() {
    // the original's behaviour (no fallback, so no yield of any kind): the file blocks the
    // failover until it is removed, and its removal lets the furthest node promote at once
    let lab = start(cluster().await, |_, c| {
        c["failover_fallback_timeout"] = json!(null);
    })
    .await;
    // Both in maintenance until we know which one is furthest along.
    for s in STANDBYS {
        std::fs::write(lab.maintenance_file(s), "").expect("maintenance file");
    }
    lab.cluster.kill9("pg1").expect("kill pg1");
    let positions = lab.frozen_positions().await;
    let furthest = furthest(&positions);
    let behind = other(furthest);
    std::fs::remove_file(lab.maintenance_file(behind)).expect("rm");

    lab.wait_state(
        furthest,
        "the furthest node to be blocked by its maintenance file",
        |s| summary(s) == MAINTENANCE,
    )
    .await;
    let waits_for_furthest = format!("no action: node {furthest} is furthest along");
    lab.wait_state(behind, "the other node to leave it to the furthest", |s| {
        summary(s) == waits_for_furthest
    })
    .await;
    lab.stays_quiet(furthest, "the maintenance file to keep blocking", |s| {
        summary(s) == MAINTENANCE
    })
    .await;
    lab.stays_quiet(behind, "the other node to keep waiting", |s| {
        summary(s) == waits_for_furthest
    })
    .await;

    std::fs::remove_file(lab.maintenance_file(furthest)).expect("rm");
    let winner = lab.wait_promoted().await;
    assert_eq!(winner, furthest, "positions {positions:?}{}", lab.dump());
    lab.check_failover_to(winner).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standbys_cut_off_from_the_primary_do_not_fail_over_while_the_observer_sees_it() {
    let cluster = cluster().await;
    let proxy = Proxy::start(cluster.port("pg1")).await.expect("proxy");
    let via_proxy = cluster.monitor_conninfo_via("pg1", proxy.port());
    let lab = start(cluster, |name, c| {
        if name != "pg1" {
            c["remote_conns"]["pg1"] = json!(via_proxy);
        }
    })
    .await;
    proxy.set_mode(ProxyMode::Blackhole);
    for s in STANDBYS {
        lab.wait_state(s, &format!("{s}'s daemon to lose pg1 and lean on the observer"), |st| {
            !connected(st, "pg1")
                && reasons(st).contains("observer obs reaches pg1 as a connected master")
                && st["current_master"] == json!("pg1")
        })
        .await;
    }
    // Long enough that the last contact with pg1 is older than FAILOVER_LAG: without the
    // observer, the standbys would fail over now.
    for s in STANDBYS {
        lab.stays_quiet(s, &format!("{s} not to fail over"), |st| {
            let last_contact = node(st, "pg1")["db_time"].as_str().and_then(parse_time);
            let now = node(st, s)["fetch_time"].as_str().and_then(parse_time);
            let long_ago =
                matches!((last_contact, now), (Some(a), Some(b)) if (b - a).as_seconds_f64() > 2.0 * FAILOVER_LAG);
            long_ago && !connected(st, "pg1") && !summary(st).starts_with("failover")
        })
        .await;
    }
    for s in STANDBYS {
        assert!(lab.cluster.in_recovery(s).await.expect("in recovery"), "{s}");
    }
}

fn parse_time(s: &str) -> Option<chrono::DateTime<chrono::FixedOffset>> {
    chrono::DateTime::parse_from_rfc3339(s).ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_replay_raises_the_lag_warning_and_runs_the_warning_command() {
    let cluster = cluster().await;
    let script = cluster.dir().join("warning-command.sh");
    let dir = cluster.dir().to_path_buf();
    let marker = |node: &str| dir.join(format!("warning-command-ran-{node}"));
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\ntouch {}-\"$PGLOOKOUT_OWN_NODE\"\n",
            cluster.dir().join("warning-command-ran").display()
        ),
    )
    .expect("script");
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
    let script_cmd = script.display().to_string();
    let lab = start(cluster, |_, c| {
        c["warning_replication_time_lag"] = json!(2.0);
        c["max_failover_replication_time_lag"] = json!(600.0);
        c["over_warning_limit_command"] = json!(script_cmd);
    })
    .await;
    let cluster = &lab.cluster;
    assert!(!lab.has_alert("pg2", REPLICATION_DELAY_WARNING));
    assert!(!marker("pg2").exists());

    cluster.pause_replay("pg2").await.expect("pause");
    lab.wait("the lag warning on pg2 under write load", || async {
        cluster.write_load(10).await?;
        let lagging = lab
            .daemon("pg2")
            .state()
            .and_then(|s| node(&s, "pg2")["replication_time_lag"].as_f64())
            .is_some_and(|l| l >= 2.0);
        Ok(lagging && lab.has_alert("pg2", REPLICATION_DELAY_WARNING) && marker("pg2").exists())
    })
    .await;
    wait_log(lab.daemon("pg2"), "the warning command logged", |log| {
        log.contains("running over_warning_limit_command")
    })
    .await;

    cluster.resume_replay("pg2").await.expect("resume");
    lab.wait("the lag warning on pg2 to go away", || async {
        cluster.write_load(10).await?;
        Ok(!lab.has_alert("pg2", REPLICATION_DELAY_WARNING))
    })
    .await;
    assert!(lab.promoted().await.is_empty(), "{}", lab.dump());
    assert!(!lab.has_alert("pg2", FAILOVER_HAS_HAPPENED));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_autofollow_the_other_standby_streams_from_the_new_primary() {
    let cluster = cluster().await;
    // The template is what pg_basebackup wrote, so following pg1 at start changes nothing;
    // after the failover only host and port change.
    let mut templates = BTreeMap::new();
    for s in STANDBYS {
        let conninfo = cluster.primary_conninfo(s).await.expect("primary_conninfo");
        assert!(conninfo.contains(&format!("application_name={s}")), "{conninfo}");
        templates.insert(s, conninfo);
    }
    // pg1 (the primary, to be killed) has autofollow too: it must stay stopped (issue 19,
    // item 5: a replaced primary may have diverged; no restart as a standby without pg_rewind).
    templates.insert(
        "pg1",
        templates["pg2"].replace("application_name=pg2", "application_name=pg1"),
    );
    let mut commands = BTreeMap::new();
    for s in ["pg1", "pg2", "pg3"] {
        commands.insert(
            s,
            (
                cluster.stop_command(s).expect("stop command"),
                cluster.start_command(s).expect("start command"),
                cluster.data_dir(s),
            ),
        );
    }
    let lab = start(cluster, |name, c| {
        if let Some((stop, start, data)) = commands.get(name) {
            c["autofollow"] = json!(true);
            c["primary_conninfo_template"] = json!(templates[name]);
            c["pg_data_directory"] = json!(data);
            c["pg_stop_command"] = json!(stop);
            c["pg_start_command"] = json!(start);
        }
    })
    .await;
    let cluster = &lab.cluster;
    for s in STANDBYS {
        assert!(
            !lab.daemon(s).log().contains("running pg_stop_command"),
            "{s} restarted"
        );
    }

    cluster.kill9("pg1").expect("kill pg1");
    let winner = lab.wait_promoted().await;
    let follower = other(winner);
    let streaming = format!(
        "SELECT count(*) FROM pg_stat_replication WHERE application_name = '{follower}' AND state = 'streaming'"
    );
    lab.wait(
        &format!("{winner} to list {follower} in pg_stat_replication"),
        || async {
            let rows = cluster.sql(winner, &streaming).await?;
            Ok(rows[0].get::<_, i64>(0) == 1)
        },
    )
    .await;
    // where that major keeps primary_conninfo: postgresql.auto.conf from 12, recovery.conf before
    let major = cluster.env().major;
    let conf_file = if major >= 12 {
        "postgresql.auto.conf"
    } else {
        "recovery.conf"
    };
    let auto_conf = std::fs::read_to_string(cluster.data_dir(follower).join(conf_file)).expect("read");
    assert!(
        auto_conf.starts_with(&format!(
            "# pglookout updated primary_conninfo for instance {winner} at "
        )),
        "{auto_conf}"
    );
    assert!(
        auto_conf.contains(&format!("port={}", cluster.port(winner))),
        "{auto_conf}"
    );
    if major >= 12 {
        assert!(cluster.data_dir(follower).join("standby.signal").exists());
    } else {
        assert!(auto_conf.contains("standby_mode = 'on'"), "{auto_conf}");
        assert!(auto_conf.contains("recovery_target_timeline = 'latest'"), "{auto_conf}");
    }

    // New writes on the new primary reach the follower.
    cluster
        .sql(winner, "INSERT INTO pglab_load (payload) VALUES ('after failover')")
        .await
        .expect("write on the new primary");
    let written = cluster.load_count(winner).await.expect("count");
    lab.wait(&format!("{follower} to replay writes made on {winner}"), || async {
        Ok(cluster.load_count(follower).await? >= written)
    })
    .await;
    lab.check_failover_to(winner).await;

    // The old primary's daemon leaves it stopped: no standby.signal, no restart.
    lab.wait("pg1's daemon to leave pg1 stopped", || async {
        Ok(lab.daemon("pg1").log().contains("autofollow leaves it stopped"))
    })
    .await;
    assert!(!cluster.node("pg1").is_running(), "pg1 was started again");
    let pg1_data = cluster.data_dir("pg1");
    let marker = if major >= 12 { "standby.signal" } else { "recovery.conf" };
    assert!(
        !pg1_data.join(marker).exists(),
        "{marker} written in pg1's data directory"
    );
    assert!(
        !lab.daemon("pg1").log().contains("running pg_start_command"),
        "{}",
        lab.daemon("pg1").log()
    );

    // The follower runs a server that the start command started (not pglab's child): pglab
    // still finds it and stops, kills and drops it like one it spawned.
    let start_command = cluster.start_command(follower).expect("start command");
    let pid = cluster.node(follower).postmaster_pid().expect("follower runs");
    cluster.stop(follower).await.expect("stop");
    assert!(!cluster.node(follower).is_running() && !pglab::process::pid_alive(pid));
    run_command(cluster, follower, &start_command).await;
    let pid = cluster.node(follower).postmaster_pid().expect("started again");
    cluster.kill9(follower).expect("kill9");
    assert!(!cluster.node(follower).is_running() && !pglab::process::pid_alive(pid));
    run_command(cluster, follower, &start_command).await;
    let pid = cluster.node(follower).postmaster_pid().expect("started again");
    let root = cluster.dir().to_path_buf();
    drop(lab);
    assert!(
        !pglab::process::pid_alive(pid),
        "the follower's postmaster {pid} survived the cluster"
    );
    let left = pglab::process::pids_with_cwd_under(&root);
    assert!(left.is_empty(), "processes left under {}: {left:?}", root.display());
}

/// Runs one of pglab's command scripts for `node` as the daemon would (no shell), within
/// [`DEADLINE`].
async fn run_command(cluster: &Cluster, node: &str, command: &str) {
    let out = tokio::time::timeout(DEADLINE, tokio::process::Command::new(command).output())
        .await
        .unwrap_or_else(|_| panic!("{command} did not finish within {DEADLINE:?}"))
        .unwrap_or_else(|e| panic!("{command}: {e}"));
    assert!(
        out.status.success(),
        "{command}: {}\n{}{}\n{node}'s log:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        cluster.node(node).log_tail(20)
    );
}

/// `start`, with every node's daemon also listing the other nodes' daemons as observers (the
/// mesh docs/safety.md recommends): the daemons read each other's failover status.
async fn start_meshed(cluster: Cluster, tweak: impl Fn(&str, &mut Value)) -> Lab {
    let ports = pglab::daemon::free_ports(3).expect("ports");
    let port = |n: &str| ports[["pg1", "pg2", "pg3"].iter().position(|x| *x == n).unwrap_or(0)];
    start(cluster, |name, c| {
        c["http_port"] = json!(port(name));
        for peer in ["pg1", "pg2", "pg3"].into_iter().filter(|p| *p != name) {
            c["observers"][peer] = json!(format!("http://127.0.0.1:{}", port(peer)));
        }
        tweak(name, c);
    })
    .await
}

const FALLBACK_TIMEOUT: f64 = 3.0;

/// Maintenance means now: pg3, the candidate every daemon picks (its priority, within the cap),
/// has its maintenance file before the loss. Its daemon publishes a standing yield at once;
/// after `kill -9` of pg1, pg2's daemon promotes its node on that word within the usual window.
/// `failover_fallback_timeout` is set far beyond the test's deadline, so the fallback cannot
/// be what promoted it; the decisions say so too (pg3 never yielded on the fallback's clock,
/// pg2 skipped pg3 on its standing word).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_next_candidate_promotes_within_the_window_when_the_chosen_one_is_in_maintenance() {
    let fallback = 3600.0;
    assert!(FAILOVER_LAG + fallback > DEADLINE.as_secs_f64() * 10.0);
    let lab = start_meshed(cluster().await, |_, c| {
        c["failover_fallback_timeout"] = json!(fallback);
        // pg3 is the candidate, even if pg2 received a little more before the kill: within
        // the cap, the priority comes first
        c["failover_priorities"] = json!({"pg3": 200});
        c["max_failover_lag_bytes"] = json!(64 << 20);
    })
    .await;
    std::fs::write(lab.maintenance_file("pg3"), "").expect("maintenance file");
    // the standing yield comes before any loss
    lab.wait_yield("pg3", "standing yield: maintenance_mode_file exists")
        .await;
    assert!(connected(&lab.daemon("pg3").state().unwrap_or_default(), "pg1"));
    lab.cluster.kill9("pg1").expect("kill pg1");
    let winner = lab.wait_promoted().await;
    assert_eq!(winner, "pg2", "{}", lab.dump());
    lab.check_failover_to(winner).await;
    let pg2 = lab.daemon("pg2").log();
    assert!(
        pg2.contains("pg3 yielded (maintenance_mode_file exists, standing, observer pg3)"),
        "{}",
        lab.dump()
    );
    let pg3 = lab.daemon("pg3").log();
    for fallback_word in [
        "yielding to the next candidate",
        "no failover: yielded to the next candidate",
        MAINTENANCE,
    ] {
        assert!(
            !pg3.contains(fallback_word),
            "pg3 logged {fallback_word:?}{}",
            lab.dump()
        );
    }
    // pg3's word holds after its file goes: it follows pg2, it does not promote
    std::fs::remove_file(lab.maintenance_file("pg3")).expect("rm");
    lab.wait("pg3's standing yield to be withdrawn", || async {
        Ok(lab.history("pg3").iter().any(|e| e.kind == "failover_yield_ended"))
    })
    .await;
    lab.rounds("pg3", QUIET_ROUNDS, "pg3 to stay a standby of pg2", |s| {
        s["current_master"] == json!("pg2")
    })
    .await;
    assert_eq!(lab.promoted().await, vec!["pg2"], "{}", lab.dump());
    let kinds: Vec<String> = lab
        .history("pg3")
        .into_iter()
        .map(|e| e.kind)
        .filter(|k| k.starts_with("failover_yield"))
        .collect();
    assert_eq!(kinds, ["failover_yielded", "failover_yield_ended"], "{}", lab.dump());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_next_candidate_promotes_when_the_chosen_ones_failover_command_fails() {
    let lab = start_meshed(cluster().await, |name, c| {
        c["failover_fallback_timeout"] = json!(FALLBACK_TIMEOUT);
        c["failover_priorities"] = json!({"pg3": 200});
        c["max_failover_lag_bytes"] = json!(64 << 20);
        if name == "pg3" {
            c["failover_command"] = json!("exit 3");
        }
    })
    .await;
    lab.cluster.kill9("pg1").expect("kill pg1");
    // what lets the yield come when a record was cut off mid-way (the settle rule)
    lab.wait_state("pg3", "pg3's startup process to wait for WAL", |s| {
        node(s, "pg3")["startup_waiting_for_wal"] == json!(true)
    })
    .await;
    lab.wait_yield(
        "pg3",
        "no failover: yielded to the next candidate (the failover command failed)",
    )
    .await;
    let winner = lab.wait_promoted().await;
    assert_eq!(winner, "pg2", "{}", lab.dump());
    lab.wait_state("pg3", "pg3's daemon to see pg2 as the master", |s| {
        s["current_master"] == json!("pg2")
    })
    .await;
    lab.cluster
        .sql("pg2", "INSERT INTO pglab_load (payload) VALUES ('after failover')")
        .await
        .expect("pg2 takes writes");
    let log = lab.daemon("pg3").log();
    // it ran, failed (and was retried after its backoff until polls spanning
    // PROMOTE_SETTLE_SECS between two attempts showed its node quiet), and never ran after
    // its yield
    let yielded_at = log
        .find("decision: no failover: yielded to the next candidate")
        .unwrap_or_else(|| panic!("no yield in pg3's log{}", lab.dump()));
    assert!(log[..yielded_at].contains("running failover_command"), "{}", lab.dump());
    assert!(
        !log[yielded_at..].contains("running failover_command"),
        "{}",
        lab.dump()
    );
    assert_eq!(
        lab.daemon("pg2").log().matches("running failover_command").count(),
        1,
        "{}",
        lab.dump()
    );
    assert_eq!(lab.promoted().await, vec!["pg2"], "{}", lab.dump());
}

/// `pglookout-ctl pause` at one node daemon pauses the mesh: with pg1 killed, neither standby
/// fails over, for as many rounds as we watch, and both say why; `resume` at the other daemon
/// ends it everywhere and the failover goes ahead. The history has both (issue 22).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pause_stops_a_failover_and_resume_lets_it_go_on() {
    let lab = start_meshed(cluster().await, |_, c| {
        // pausing needs a token or an API on loopback only
        c["http_address"] = json!("127.0.0.1");
    })
    .await;
    let ctl = |what: &str, name: &str| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_pglookout-ctl"))
            .args([what, "--url", &lab.daemon(name).url()])
            .output()
            .expect("pglookout-ctl");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{what} at {name}: {text}");
        text
    };
    assert!(ctl("pause", "pg2").contains("cluster paused"));
    let paused = |s: &Value| s["pause"]["paused"] == json!(true);
    for name in ["pg1", "pg2", "pg3"] {
        lab.wait_state(name, &format!("{name}'s daemon to hold the pause"), paused)
            .await;
    }
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_pglookout-ctl"))
        .args(["status", "--url", &lab.daemon("pg3").url()])
        .output()
        .expect("pglookout-ctl status");
    assert!(String::from_utf8_lossy(&status.stdout).contains("PAUSED"));

    lab.cluster.kill9("pg1").expect("kill pg1");
    for name in STANDBYS {
        lab.stays_quiet(name, &format!("{name}'s daemon to stay paused"), |s| {
            paused(s) && reasons(s).contains("the cluster is paused")
        })
        .await;
    }
    assert!(lab.promoted().await.is_empty(), "{}", lab.dump());

    assert!(ctl("resume", "pg3").contains("cluster resumed"));
    let winner = lab.wait_promoted().await;
    lab.check_failover_to(winner).await;
    for name in STANDBYS {
        let path = pglookout::events::default_path(&lab.daemon(name).state_path);
        let kinds: Vec<String> = pglookout::events::read(&path, 1000, None)
            .expect("history")
            .events
            .into_iter()
            .rev()
            .map(|e| e.kind)
            .filter(|k| k.starts_with("cluster_"))
            .collect();
        assert_eq!(kinds, ["cluster_paused", "cluster_resumed"], "{name}");
    }
}

/// The value of the sample `name{labels}` in a /metrics text (0 when absent).
fn sample(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.trim().parse().ok()))
        .unwrap_or(0.0)
}

/// `event_command` (issue 22): the promoted standby's hook sees the failover's events in the
/// order they were recorded, with the old and the new master; the other standby's hook fails
/// every time (`/bin/false`), which is counted in `/metrics` while its daemon keeps deciding
/// and follows the new master.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_command_sees_the_failover_in_order_and_its_failures_are_counted() {
    let cluster = cluster().await;
    let events = cluster.dir().join("events-pg3");
    let hook = cluster.dir().join("event-hook.sh");
    std::fs::write(
        &hook,
        format!(
            "#!/bin/sh\necho \"$PGLOOKOUT_EVENT $PGLOOKOUT_OLD_MASTER $PGLOOKOUT_NEW_MASTER\" >> {}\n",
            events.display()
        ),
    )
    .expect("script");
    std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
    let hook = hook.display().to_string();
    let lab = start(cluster, |name, c| {
        // pg3 is the one to promote, whatever the positions
        c["never_promote_these_nodes"] = json!(["pg2"]);
        match name {
            "pg3" => c["event_command"] = json!(hook),
            "pg2" => c["event_command"] = json!("/bin/false"),
            _ => {}
        }
    })
    .await;
    let lines = || -> Vec<String> {
        std::fs::read_to_string(&events)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    };
    lab.wait("pg3's hook to see the daemon start", || async {
        Ok(lines().first().is_some_and(|l| l == "daemon_start  "))
    })
    .await;

    lab.cluster.kill9("pg1").expect("kill pg1");
    let winner = lab.wait_promoted().await;
    assert_eq!(winner, "pg3", "{}", lab.dump());
    let seen = lab
        .wait("pg3's hook to see the failover start and finish", || async {
            let l = lines();
            let started = l.iter().position(|l| l.starts_with("failover_started "));
            let finished = l.iter().position(|l| l.starts_with("failover_finished "));
            Ok(started.zip(finished).map(|_| l))
        })
        .await;
    let at = |line: &str| seen.iter().position(|l| l == line);
    let started = at("failover_started pg1 pg3").unwrap_or_else(|| panic!("{seen:#?}"));
    let finished = at("failover_finished  ").unwrap_or_else(|| panic!("{seen:#?}"));
    assert!(started < finished, "{seen:#?}");
    // the hook ran once for every event of the history, in the history's order (the file
    // thread may write the history a moment after the hook ran)
    let hooked: Vec<String> = seen
        .iter()
        .filter_map(|l| l.split(' ').next())
        .map(String::from)
        .collect();
    let history = lab
        .wait("pg3's history to hold what its hook saw", || async {
            let h: Vec<String> = lab.history("pg3").into_iter().map(|e| e.kind).collect();
            Ok((h.len() >= hooked.len()).then_some(h))
        })
        .await;
    assert!(history.starts_with(&hooked), "history {history:?}, hook {hooked:?}");

    // pg2's hook fails on every event: daemon_start, then the new master at least
    let failures = "pglookout_command_failures_total{command=\"event_command\"}";
    let runs = "pglookout_commands_total{command=\"event_command\"}";
    let d = lab.daemon("pg2");
    lab.wait_state("pg2", "pg2's daemon to see pg3 as the master", |s| {
        s["current_master"] == json!("pg3")
    })
    .await;
    lab.wait("pg2's failed event_command runs in /metrics", || async {
        let (_, m) = d.http("GET", "/metrics").await?;
        Ok(sample(&m, failures) >= 2.0)
    })
    .await;
    lab.rounds("pg2", QUIET_ROUNDS, "pg2's daemon to keep deciding", |s| {
        s["current_master"] == json!("pg3")
    })
    .await;
    let (_, m) = d.http("GET", "/metrics").await.expect("metrics");
    assert!(
        sample(&m, failures) >= 2.0 && sample(&m, failures) == sample(&m, runs),
        "{m}"
    );
    assert!(
        d.log()
            .contains("event_command for the event daemon_start exited with status 1"),
        "{}",
        lab.dump()
    );
    let (_, m) = lab.daemon("pg3").http("GET", "/metrics").await.expect("metrics");
    assert_eq!(sample(&m, failures), 0.0, "{m}");
    assert!(sample(&m, runs) >= 3.0, "{m}");
}

/// `pglookout-ctl failover --to` (issue 22 item 2): with pg1 killed and a lag window far longer
/// than the test, the furthest standby is promoted on the operator's word; asked at the other
/// daemon, the request is refused and names the daemon to ask.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manual_failover_promotes_without_waiting_out_the_window() {
    let lab = start(cluster().await, |_, c| {
        c["max_failover_replication_time_lag"] = json!(3600.0);
    })
    .await;
    lab.cluster.kill9("pg1").expect("kill pg1");
    let positions = lab.frozen_positions().await;
    let winner = furthest(&positions);
    let ctl = |to: &str, at: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_pglookout-ctl"))
            .args([
                "failover",
                "--to",
                to,
                "--url",
                &lab.daemon(at).url(),
                "--timeout",
                "50",
            ])
            .output()
            .expect("pglookout-ctl")
    };
    let wrong = ctl(winner, other(winner));
    let said = String::from_utf8_lossy(&wrong.stderr);
    assert_eq!(wrong.status.code(), Some(1), "{said}");
    assert!(said.contains(&format!("ask {winner}'s daemon")), "{said}");
    lab.wait_state(winner, "the window to be what holds the failover", |s| {
        summary(s) == "no failover: master pg1 was reached too recently"
    })
    .await;

    let out = ctl(winner, winner);
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{printed}{}{}",
        String::from_utf8_lossy(&out.stderr),
        lab.dump()
    );
    assert!(
        printed.contains(&format!("{winner} answers as the primary")),
        "{printed}"
    );
    assert_eq!(lab.wait_promoted().await, winner);
    assert!(
        lab.daemon(winner)
            .log()
            .contains("the operator asked for this failover"),
        "{}",
        lab.dump()
    );
    lab.check_failover_to(winner).await;
}

/// A meshed lab whose daemons can run a switchover: every node's standby template (what
/// pg_basebackup wrote, pg1's made from pg2's), data directory and start and stop commands, and
/// autofollow (the third node follows the new primary).
async fn start_switchable(tweak: impl Fn(&str, &mut Value)) -> Lab {
    let cluster = cluster().await;
    let mut setup = BTreeMap::new();
    let pg2 = cluster.primary_conninfo("pg2").await.expect("primary_conninfo");
    for s in ["pg1", "pg2", "pg3"] {
        let template = pg2.replace("application_name=pg2", &format!("application_name={s}"));
        setup.insert(
            s,
            (
                template,
                cluster.stop_command(s).expect("stop command"),
                cluster.start_command(s).expect("start command"),
                cluster.data_dir(s),
            ),
        );
    }
    start_meshed(cluster, |name, c| {
        if let Some((template, stop, start, data)) = setup.get(name) {
            c["autofollow"] = json!(true);
            c["primary_conninfo_template"] = json!(template);
            c["pg_data_directory"] = json!(data);
            c["pg_stop_command"] = json!(stop);
            c["pg_start_command"] = json!(start);
        }
        tweak(name, c);
    })
    .await
}

/// `pglookout-ctl switchover` at `at`'s daemon: its exit status, stdout and stderr. Asked
/// again while a promotion's announcement holds (until every daemon saw it), as an operator
/// would.
async fn switchover(lab: &Lab, at: &str, args: &[&str]) -> (bool, String, String) {
    switchover_via(&["--url", &lab.daemon(at).url()], args).await
}

/// `pglookout-ctl switchover` with `via` naming the daemon (`--url U` or `--config F`).
async fn switchover_via(via: &[&str], args: &[&str]) -> (bool, String, String) {
    let deadline = std::time::Instant::now() + DEADLINE;
    loop {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_pglookout-ctl"))
            .arg("switchover")
            .args(via)
            .args(args)
            .output()
            .expect("pglookout-ctl");
        let result = (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        );
        if !result.2.contains("promotion is still announced") || std::time::Instant::now() > deadline {
            return result;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// Issue 22, item 1: a switchover to a named standby and back to the best one, on every major.
/// Each moves the primary with no acknowledged write lost: the old primary stops cleanly, the
/// target is promoted by its own daemon once it has the final position, and the old primary
/// streams from it without pg_rewind; the third node follows. Refusals change nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_switchover_moves_the_primary_and_back_with_no_write_lost() {
    // The way back goes to the best standby, which must be pg1: pg3 may be as far along (or
    // further, right after the writes), so pg2's daemon never picks it.
    let lab = start_switchable(|name, c| {
        if name == "pg2" {
            c["never_promote_these_nodes"] = json!(["pg3"]);
        }
    })
    .await;
    let cluster = &lab.cluster;

    // refused, nothing changed: not the primary's daemon, our own node, a node not configured
    let (ok, _, err) = switchover(&lab, "pg2", &["--to", "pg3"]).await;
    assert!(!ok && err.contains("ask the primary's daemon"), "{err}");
    let (ok, _, err) = switchover(&lab, "pg1", &["--to", "pg1"]).await;
    assert!(!ok && err.contains("pg1 is our own node"), "{err}");
    let (ok, _, err) = switchover(&lab, "pg1", &["--to", "pg9"]).await;
    assert!(!ok && err.contains("pg9 is not in remote_conns"), "{err}");
    assert!(lab.promoted().await.is_empty());

    // the way back is asked with the config of pg1, a standby then: pglookout-ctl finds the
    // primary's daemon through pg1's daemon and its config's observers
    for (from, to, args) in [("pg1", "pg2", vec!["--to", "pg2"]), ("pg2", "pg1", vec![])] {
        cluster.write_load(200).await.expect("writes");
        let written = cluster.load_count(from).await.expect("count");
        let (ok, out, err) = if from == "pg1" {
            switchover(&lab, from, &args).await
        } else {
            lab.wait_state("pg1", "pg1's daemon to know pg2 as the primary", |s| {
                s["current_master"] == "pg2"
            })
            .await;
            let config = lab.daemon("pg1").config_path.display().to_string();
            let asked = switchover_via(&["--config", &config], &args).await;
            let hop = format!(
                "knows pg2 as the primary: asking its daemon at {}",
                lab.daemon("pg2").url()
            );
            assert!(asked.1.contains(&hop), "{}{}", asked.1, asked.2);
            asked
        };
        assert!(
            ok,
            "{out}{err}\n{from}'s server log:\n{}{}",
            cluster.node(from).log_tail(30),
            lab.dump()
        );
        assert!(out.contains(&format!("{from} -> {to}")), "{out}");
        assert!(out.contains("stopped cleanly at"), "{out}");
        assert!(
            out.contains(&format!("succeeded: {to} is the primary and {from} streams from it")),
            "{out}"
        );
        assert!(!cluster.in_recovery(to).await.expect("new primary"));
        assert!(cluster.in_recovery(from).await.expect("old primary"));
        // every write acknowledged before is on the new primary, which takes new ones
        assert!(cluster.load_count(to).await.expect("count") >= written);
        cluster
            .sql(to, "INSERT INTO pglab_load (payload) VALUES ('after switchover')")
            .await
            .expect("the new primary takes writes");
        // the old primary and the third node stream from the new one
        let streaming = "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'";
        lab.wait(&format!("both standbys to stream from {to}"), || async {
            Ok(cluster.sql(to, streaming).await?[0].get::<_, i64>(0) == 2)
        })
        .await;
        let kinds: Vec<String> = lab.history(from).into_iter().map(|e| e.kind).collect();
        assert!(kinds.iter().any(|k| k == "switchover_started"), "{kinds:?}");
        assert!(kinds.iter().any(|k| k == "switchover_finished"), "{kinds:?}");
        let target: Vec<String> = lab.history(to).into_iter().map(|e| e.kind).collect();
        assert!(target.iter().any(|k| k == "switchover_promotion_asked"), "{target:?}");
    }
    // nobody else promoted anything, and no rejoin (pg_rewind) ran
    assert!(!lab.history("pg3").iter().any(|e| e.kind == "failover_started"));
    for d in ["pg1", "pg2", "pg3"] {
        assert!(!lab.daemon(d).log().contains("rejoin: rewinding"), "{d}{}", lab.dump());
    }

    // a target that is gone: refused, pg1 stays the primary
    cluster.kill9("pg3").expect("kill pg3");
    lab.wait_state("pg1", "pg1's daemon to lose pg3", |s| !connected(s, "pg3"))
        .await;
    let (ok, _, err) = switchover(&lab, "pg1", &["--to", "pg3"]).await;
    assert!(!ok && err.contains("pg3 does not answer"), "{err}");
    assert!(!cluster.in_recovery("pg1").await.expect("pg1"));
}

/// Issue 22, item 1: a target whose failover command fails does not take over; once the
/// timeout passes its daemon says no promotion ran, and the old primary is started again as
/// the primary, with the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_switchover_whose_target_fails_to_promote_brings_the_old_primary_back() {
    let lab = start_switchable(|name, c| {
        if name == "pg2" {
            c["failover_command"] = json!("/bin/false");
        }
    })
    .await;
    let cluster = &lab.cluster;
    cluster.write_load(50).await.expect("writes");
    let written = cluster.load_count("pg1").await.expect("count");
    let (ok, out, err) = switchover(&lab, "pg1", &["--to", "pg2", "--timeout", "5"]).await;
    assert!(!ok, "{out}{err}");
    assert!(
        err.contains("pg1 was started again as the primary"),
        "{out}{err}{}",
        lab.dump()
    );
    assert!(!cluster.in_recovery("pg1").await.expect("pg1"));
    assert!(cluster.in_recovery("pg2").await.expect("pg2"));
    assert!(cluster.load_count("pg1").await.expect("count") >= written);
    cluster
        .sql(
            "pg1",
            "INSERT INTO pglab_load (payload) VALUES ('after the failed switchover')",
        )
        .await
        .expect("pg1 takes writes again");
    lab.wait_state("pg2", "pg2's daemon to see pg1 as the master again", |s| {
        s["current_master"] == json!("pg1") && connected(s, "pg1")
    })
    .await;
    assert!(lab.promoted().await.is_empty(), "{}", lab.dump());
}
