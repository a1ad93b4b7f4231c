//! Issue 21 on real PostgreSQL: with `synchronous_mode` on or strict the primary's daemon keeps
//! `synchronous_standby_names` (`ANY 1 (...)` of the streaming standbys) with `ALTER SYSTEM`, and
//! a failover promotes only a standby known to have every acknowledged write. A primary pg1 and
//! standbys pg2 and pg3; each test runs only the daemons it needs (an observer `obs`, which is
//! the one voter whose view gates a standby's addition, and pg1's daemon, which manages the
//! setting; the standbys' daemons only where a failover is tested). Every wait waits for a
//! condition with a deadline; "nothing changes" is checked over a number of the daemons' polls.

use super::harness::*;
use pglab::daemon::Daemon;
use pglab::{Cluster, Proxy, ProxyMode, Ready};
use serde_json::{json, Value};
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;

const DEGRADED: &str = "synchronous_degraded";
const SETTING_FAILED: &str = "synchronous_setting_failed";
const FAILOVER_BLOCKED: &str = "failover_blocked";
const BOTH: &str = r#"ANY 1 ("pg2", "pg3")"#;
const PG2: &str = r#"ANY 1 ("pg2")"#;
/// How many polls of pg1 a daemon must make while we check that something does not change.
const QUIET_POLLS: usize = 4;
/// As tests/it/failover.rs: fail over once the last contact with the master is this old, and
/// act on a missing master this long after the daemon's start.
const FAILOVER_LAG: f64 = 5.0;
const MISSING_MASTER_GRACE: f64 = 1.0;

/// The daemons of one cluster. Daemons are declared before the cluster, so they stop first.
struct Lab {
    daemons: BTreeMap<String, Daemon>,
    cluster: Cluster,
}

impl Lab {
    fn daemon(&self, name: &str) -> &Daemon {
        &self.daemons[name]
    }

    fn has_alert(&self, daemon: &str, alert: &str) -> bool {
        self.daemon(daemon).alert_dir.join(alert).exists()
    }

    /// Every daemon's last decision and log, pg1's server log, for failure messages.
    fn dump(&self) -> String {
        let mut out = String::new();
        for d in self.daemons.values() {
            let decision = d.state().map(|s| s["decision"].to_string()).unwrap_or_default();
            out.push_str(&format!(
                "\n===== {}: decision {decision}\n{}\n",
                d.name,
                story(&d.log(), 40)
            ));
        }
        out.push_str(&format!(
            "\n===== pg1's server log\n{}\n",
            self.cluster.node("pg1").log_tail(20)
        ));
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

    async fn wait_state(&self, name: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let d = self.daemon(name);
        self.wait(what, || async { Ok(d.state().filter(|s| pred(s))) }).await
    }

    /// Waits until daemon `name` has made `n` polls of node `of` (distinct `fetch_time`s) with
    /// `pred(state)` true; fails at once when `never()` (checked each time) says so.
    async fn polls<F, Fut>(&self, name: &str, of: &str, n: usize, what: &str, pred: impl Fn(&Value) -> bool, never: F)
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Option<String>>,
    {
        let d = self.daemon(name);
        let seen = RefCell::new(BTreeSet::new());
        let outcome = self
            .wait(what, || async {
                if let Some(broken) = never().await {
                    return Ok(Some(Err(broken)));
                }
                if let Some(s) = d.state().filter(|s| pred(s)) {
                    if let Some(t) = node(&s, of)["fetch_time"].as_str() {
                        seen.borrow_mut().insert(t.to_string());
                    }
                }
                Ok((seen.borrow().len() >= n).then_some(Ok(())))
            })
            .await;
        if let Err(e) = outcome {
            panic!("while waiting for {what}: {e}{}", self.dump());
        }
    }

    /// pg1's `synchronous_standby_names` as `SHOW` gives it.
    async fn names(&self) -> anyhow::Result<String> {
        Ok(self.cluster.sql("pg1", "SHOW synchronous_standby_names").await?[0].get(0))
    }

    /// Waits until pg1 has `want` in effect and pg1's daemon's last poll shows it.
    async fn wait_names(&self, want: &str) {
        let d = self.daemon("pg1");
        self.wait(
            &format!("pg1's synchronous_standby_names to be {want:?} (SHOW and its daemon's poll)"),
            || async {
                Ok(self.names().await? == want
                    && d.state()
                        .is_some_and(|s| node(&s, "pg1")["synchronous_standby_names"] == json!(want)))
            },
        )
        .await
    }

    /// pg1's `pg_stat_replication`: application_name -> sync_state.
    async fn sync_states(&self) -> anyhow::Result<BTreeMap<String, String>> {
        let rows = self
            .cluster
            .sql("pg1", "SELECT application_name, sync_state FROM pg_stat_replication")
            .await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    /// The standbys that are out of recovery now (one that does not answer is not promoted).
    async fn promoted(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        for s in ["pg2", "pg3"] {
            if let Ok(false) = self.cluster.in_recovery(s).await {
                out.push(s);
            }
        }
        out
    }

    /// Daemon `name`'s history as (kind, reason), oldest first.
    fn history(&self, name: &str) -> Vec<(String, String)> {
        let path = pglookout::events::default_path(&self.daemon(name).state_path);
        let mut events = match pglookout::events::read(&path, 1000, None) {
            Ok(h) => h.events,
            Err(_) => Vec::new(),
        };
        events.reverse();
        events.into_iter().map(|e| (e.kind, e.reason)).collect()
    }

    /// Waits until daemon `name`'s history has the event `kind` with `reason`.
    async fn wait_event(&self, name: &str, kind: &str, reason: &str) {
        let what = format!("{name}'s history to show {kind} {reason:?}");
        self.wait(&what, || async {
            Ok(self.history(name).iter().any(|(k, r)| k == kind && r == reason))
        })
        .await
    }

    async fn count(&self, node: &str, query: &str) -> i64 {
        match self.cluster.sql(node, query).await {
            Ok(rows) => rows[0].get(0),
            Err(e) => panic!("{node}: {e:#}{}", self.dump()),
        }
    }
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
}

/// A daemon's config with `synchronous_mode` `mode`; a node's daemon promotes its own node and
/// fails over on the path a long-running cluster takes (tests/it/failover.rs).
fn sync_config(cluster: &Cluster, own_db: &str, observers: Value, mode: &str) -> Value {
    let mut c = config(cluster, own_db, observers);
    c["synchronous_mode"] = json!(mode);
    if !own_db.is_empty() {
        c["max_failover_replication_time_lag"] = json!(FAILOVER_LAG);
        c["missing_master_from_config_timeout"] = json!(MISSING_MASTER_GRACE);
        c["failover_command"] = json!(cluster.promote_command(own_db).expect("promote command"));
        c["maintenance_mode_file"] = json!(cluster.dir().join(format!("{own_db}-maintenance")));
    }
    c
}

/// What the monitoring role needs to set `synchronous_standby_names` (docs/operations.md).
async fn grant_sync_privileges(cluster: &Cluster) {
    cluster.grant_sync_privileges("pg1").await.expect("grant");
}

/// Starts the observer `obs` (first) and the daemons of `nodes` with `synchronous_mode` `mode`,
/// each with `obs` as its observer (`tweak` changes each config, `obs`'s too), and waits until
/// pg1's daemon knows it is the master.
async fn start(cluster: Cluster, mode: &str, nodes: &[&str], tweak: impl Fn(&str, &mut Value)) -> Lab {
    let mut daemons = BTreeMap::new();
    let mut obs_config = sync_config(&cluster, "", json!({}), mode);
    tweak("obs", &mut obs_config);
    let obs = spawn(&cluster, "obs", obs_config);
    let observers = json!({ "obs": obs.url() });
    daemons.insert("obs".to_string(), obs);
    for &name in nodes {
        let mut c = sync_config(&cluster, name, observers.clone(), mode);
        tweak(name, &mut c);
        daemons.insert(name.to_string(), spawn(&cluster, name, c));
    }
    let lab = Lab { daemons, cluster };
    lab.wait_state("pg1", "pg1's daemon to know it is the master", |s| {
        s["decision"]["summary"] == json!("no action: we are the master")
    })
    .await;
    lab
}

/// `on`: the names follow the standbys that stream; with none, asynchronous and the alert.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_names_follow_a_standby_that_dies_and_comes_back() {
    let cluster = lab_cluster(2).await;
    grant_sync_privileges(&cluster).await;
    let lab = start(cluster, "on", &["pg1"], |_, _| {}).await;
    let c = &lab.cluster;

    lab.wait_names(BOTH).await;
    lab.wait("both standbys to be quorum standbys", || async {
        Ok(lab.sync_states().await? == map(&[("pg2", "quorum"), ("pg3", "quorum")]))
    })
    .await;
    assert!(!lab.has_alert("pg1", DEGRADED), "{}", lab.dump());
    assert!(!lab.has_alert("pg1", SETTING_FAILED), "{}", lab.dump());
    wait_log(lab.daemon("pg1"), "pg1's daemon to log what it asked for", |l| {
        l.contains(&format!("synchronous_standby_names: asked for {BOTH:?}"))
    })
    .await;

    // pg3 dies: taken out; writes commit on pg2's acknowledgement
    c.stop("pg3").await.expect("stop pg3");
    lab.wait_names(PG2).await;
    c.write_load(10).await.expect("a write with pg3 down");
    lab.wait("pg2 to be the one quorum standby", || async {
        Ok(lab.sync_states().await? == map(&[("pg2", "quorum")]))
    })
    .await;
    assert!(!lab.has_alert("pg1", DEGRADED), "{}", lab.dump());

    // pg3 comes back: listed again
    c.start_node("pg3").await.expect("start pg3");
    c.wait_streaming("pg3").await.expect("pg3 streams");
    lab.wait_names(BOTH).await;

    // both die: asynchronous (`on`), with the alert
    c.stop("pg2").await.expect("stop pg2");
    c.stop("pg3").await.expect("stop pg3");
    lab.wait_names("").await;
    lab.wait("synchronous_degraded on pg1's daemon", || async {
        Ok(lab.has_alert("pg1", DEGRADED))
    })
    .await;
    c.write_load(10).await.expect("an asynchronous write with no standby");
    assert!(!lab.has_alert("pg1", SETTING_FAILED), "{}", lab.dump());

    // one comes back: the alert goes, the names come back
    c.start_node("pg2").await.expect("start pg2");
    c.wait_streaming("pg2").await.expect("pg2 streams");
    lab.wait("synchronous_degraded to go", || async {
        Ok(!lab.has_alert("pg1", DEGRADED))
    })
    .await;
    // cleared once pg2 is listed, not when it is only asked for (docs/operations.md)
    assert_eq!(lab.names().await.expect("SHOW"), PG2, "{}", lab.dump());
    lab.wait_names(PG2).await;
    lab.wait("pg2 to be a quorum standby", || async {
        Ok(lab.sync_states().await? == map(&[("pg2", "quorum")]))
    })
    .await;
    c.write_load(10).await.expect("a write acknowledged by pg2");
    assert!(!lab.has_alert("pg1", SETTING_FAILED), "{}", lab.dump());

    // the history (docs/operations.md): each value asked for, the alert raised and cleared
    for (kind, reason) in [
        ("synchronous_standby_names", format!("set to {BOTH:?} (was \"\")")),
        ("synchronous_standby_names", format!("set to {PG2:?} (was {BOTH:?})")),
        ("synchronous_standby_names", format!("set to \"\" (was {BOTH:?})")),
        ("alert_raised", DEGRADED.to_string()),
        ("synchronous_standby_names", format!("set to {PG2:?} (was \"\")")),
        ("alert_cleared", DEGRADED.to_string()),
    ] {
        lab.wait_event("pg1", kind, &reason).await;
    }
}

/// `strict`: with no standby, the setting stays and a commit waits for one; it completes when
/// a standby streams again, and the row is there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_makes_writes_wait_with_no_standby_and_resumes() {
    let cluster = lab_cluster(2).await;
    grant_sync_privileges(&cluster).await;
    let lab = start(cluster, "strict", &["pg1"], |_, _| {}).await;
    let c = &lab.cluster;
    lab.wait_names(BOTH).await;

    c.stop("pg2").await.expect("stop pg2");
    c.stop("pg3").await.expect("stop pg3");
    lab.wait_state("pg1", "pg1's daemon to see no standby streaming", |s| {
        node(s, "pg1")["pg_stat_replication"]
            .as_array()
            .is_some_and(|senders| senders.iter().all(|w| w["state"] != json!("streaming")))
    })
    .await;

    // A commit on its own connection: it must wait for a standby (the task is dropped, and the
    // connection closed with the cluster, if the test fails).
    let (client, connection) = tokio_postgres::connect(&c.superuser_conninfo("pg1"), tokio_postgres::NoTls)
        .await
        .expect("connect to pg1");
    tokio::spawn(connection);
    let commit = tokio::spawn(async move {
        client
            .simple_query("INSERT INTO pglab_load (payload) VALUES ('strict')")
            .await
            .map(|_| ())
    });
    let waiting = "SELECT count(*) FROM pg_stat_activity \
                   WHERE wait_event = 'SyncRep' AND query LIKE '%VALUES (''strict'')%'";
    lab.wait("the commit to wait for a synchronous standby", || async {
        Ok(c.sql("pg1", waiting).await?[0].get::<_, i64>(0) == 1)
    })
    .await;
    // Over several more polls of the primary: still listed, no fallback, the commit still waits.
    lab.polls(
        "pg1",
        "pg1",
        QUIET_POLLS,
        "pg1's daemon to keep every standby listed (strict)",
        |s| node(s, "pg1")["synchronous_standby_names"] == json!(BOTH),
        || async {
            if commit.is_finished() {
                return Some("the commit completed with no standby".to_string());
            }
            lab.has_alert("pg1", DEGRADED)
                .then(|| format!("{DEGRADED} raised in strict mode"))
        },
    )
    .await;
    assert_eq!(lab.names().await.expect("SHOW"), BOTH);
    assert_eq!(lab.count("pg1", waiting).await, 1, "{}", lab.dump());
    assert!(!commit.is_finished(), "{}", lab.dump());

    // a standby streams again: the commit completes, and the row is on it
    c.start_node("pg3").await.expect("start pg3");
    let done = tokio::time::timeout(DEADLINE, commit)
        .await
        .unwrap_or_else(|_| panic!("the commit still waits with pg3 back{}", lab.dump()));
    done.expect("commit task").expect("the commit");
    let on_pg3 = "SELECT count(*) FROM pglab_load WHERE payload = 'strict'";
    lab.wait("the row to be on pg3", || async {
        Ok(c.sql("pg3", on_pg3).await?[0].get::<_, i64>(0) == 1)
    })
    .await;
    assert!(!lab.has_alert("pg1", DEGRADED), "{}", lab.dump());
}

/// `on`, and pg3 streams under another application_name, so it is never synchronous: pg1's
/// daemon lists `ANY 1 ("pg2")` only. pg2 streams through a proxy that is then blackholed (pg1
/// still shows it streaming, so it stays listed), and commits with `synchronous_commit =
/// local` take pg3 past pg2 in every daemon's view. Killed, pg1 is replaced by pg2, which has
/// every acknowledged write, not by pg3, which is further along.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failover_promotes_only_a_synchronous_standby() {
    let cluster = lab_cluster(2).await;
    grant_sync_privileges(&cluster).await;
    let proxy = Proxy::start(cluster.port("pg1")).await.expect("proxy");
    let through_proxy = format!(
        "host=127.0.0.1 port={} user={} password={} application_name=pg2",
        proxy.port(),
        pglab::cluster::REPLICATION_USER,
        cluster.replication_password()
    );
    cluster
        .set_primary_conninfo("pg2", &through_proxy)
        .await
        .expect("pg2 via the proxy");
    cluster
        .set_primary_conninfo("pg3", &cluster.replication_conninfo("pg1", "pg3_async"))
        .await
        .expect("pg3 renamed");
    // (from 13 a reload restarts the WAL receivers: wait for the new connections)
    let senders = "SELECT string_agg(application_name, ',' ORDER BY application_name) \
                   FROM pg_stat_replication WHERE state = 'streaming'";
    pglab::wait_for("pg2 through the proxy and pg3 as pg3_async", DEADLINE, || async {
        let names: Option<String> = cluster.sql("pg1", senders).await?[0].get(0);
        Ok(names.as_deref() == Some("pg2,pg3_async") && proxy.open_client_sockets()? == 1)
    })
    .await
    .expect("the standbys stream again");
    let lab = start(cluster, "on", &["pg1", "pg2", "pg3"], |_, _| {}).await;
    let c = &lab.cluster;
    lab.wait_names(PG2).await;
    lab.wait("pg2 quorum and pg3_async asynchronous on pg1", || async {
        Ok(lab.sync_states().await? == map(&[("pg2", "quorum"), ("pg3_async", "async")]))
    })
    .await;
    for name in ["obs", "pg2", "pg3"] {
        lab.wait_state(name, &format!("{name}'s daemon to see {PG2} on pg1"), |s| {
            node(s, "pg1")["synchronous_standby_names"] == json!(PG2)
        })
        .await;
    }
    // Past the grace after start (three polls are a second apart), healthy.
    for name in ["pg2", "pg3"] {
        lab.polls(
            name,
            name,
            3,
            &format!("{name}'s daemon to see a healthy cluster"),
            |s| {
                s["current_master"] == json!("pg1")
                    && s["decision"]["summary"] == json!("no action: replication lag is under the warning limit")
            },
            || async { None },
        )
        .await;
    }

    // acknowledged under ANY 1 ("pg2"): each of these commits waited for pg2's flush
    c.write_load(200).await.expect("synchronous writes");
    let acknowledged = lab.count("pg1", "SELECT count(*) FROM pglab_load").await;

    // pg2 falls behind (its connection hangs), pg3 goes on
    proxy.set_mode(ProxyMode::Blackhole);
    c.sql_batch(
        "pg1",
        "BEGIN; SET LOCAL synchronous_commit = local; \
         INSERT INTO pglab_load (payload) SELECT 'local' FROM generate_series(1, 500); COMMIT",
    )
    .await
    .expect("local writes");
    let receive = |s: &Value, n: &str| {
        node(s, n)["pg_last_xlog_receive_location"]
            .as_str()
            .and_then(|l| l.parse::<pglookout::lsn::Lsn>().ok())
    };
    for name in ["obs", "pg2", "pg3"] {
        lab.wait_state(
            name,
            &format!("{name}'s daemon to see pg3 ahead of pg2, pg2 still listed"),
            |s| {
                matches!((receive(s, "pg3"), receive(s, "pg2")), (Some(a), Some(b)) if a > b)
                    && node(s, "pg1")["synchronous_standby_names"] == json!(PG2)
            },
        )
        .await;
    }
    assert_eq!(
        lab.count("pg3", "SELECT count(*) FROM pglab_load WHERE payload = 'local'")
            .await,
        500
    );

    c.kill9("pg1").expect("kill pg1");
    proxy.set_mode(ProxyMode::Refuse);
    let promoted = lab
        .wait("a standby to be promoted", || async {
            let p = lab.promoted().await;
            Ok((!p.is_empty()).then_some(p))
        })
        .await;
    assert_eq!(promoted, vec!["pg2"], "{}", lab.dump());
    // from 13 the failover counted pg2 only once its daemon had cut its WAL receiver from pg1
    // (decide::receiver): its position was final
    if c.env().major >= 13 {
        let log = lab.daemon("pg2").log();
        let cut = log.find("our standby stops confirming WAL to pg1");
        let promoting = log.find("running failover_command");
        assert!(
            matches!((cut, promoting), (Some(a), Some(b)) if a < b),
            "{}",
            lab.dump()
        );
    }
    // every acknowledged row is on the new primary; pg3's extra ones never were acknowledged
    // under the synchronous setting
    let synchronous_rows = "SELECT count(*) FROM pglab_load WHERE payload <> 'local'";
    assert_eq!(lab.count("pg2", synchronous_rows).await, acknowledged, "{}", lab.dump());
    assert!(
        lab.count("pg2", "SELECT count(*) FROM pglab_load WHERE payload = 'local'")
            .await
            < 500
    );
    c.sql("pg2", "INSERT INTO pglab_load (payload) VALUES ('after failover')")
        .await
        .expect("pg2 takes writes");
    // pg3's daemon follows pg2 for several polls of its node and never promotes it
    lab.polls(
        "pg3",
        "pg3",
        QUIET_POLLS,
        "pg3's daemon to follow pg2",
        |s| s["current_master"] == json!("pg2"),
        || async {
            let p = lab.promoted().await;
            (p != ["pg2"]).then(|| format!("promoted: {p:?}"))
        },
    )
    .await;
    assert!(lab.has_alert("pg2", "failover_has_happened"), "{}", lab.dump());
    for name in ["obs", "pg2", "pg3"] {
        assert!(!lab.has_alert(name, FAILOVER_BLOCKED), "{name}{}", lab.dump());
    }
    assert!(
        !lab.daemon("pg3").log().contains("running failover_command"),
        "{}",
        lab.dump()
    );
}

/// From 13: every daemon loses pg1 (they reach it through a proxy that refuses), while the
/// standbys' replication, direct, goes on. Each standby's daemon empties its node's
/// `primary_conninfo` (no WAL receiver: the node confirms nothing to pg1), and once pg1 has been
/// back for a failover timeout it sets the value it had back, and the standby streams again. No
/// promotion; the history has both steps.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_standbys_stop_confirming_wal_while_the_voters_lose_the_primary() {
    let cluster = lab_cluster(2).await;
    if cluster.env().major < 13 {
        eprintln!(
            "not applicable on PostgreSQL {}: primary_conninfo needs a restart before 13, and the daemon does not cut it there (docs/safety.md)",
            cluster.env().major
        );
        return;
    }
    grant_sync_privileges(&cluster).await;
    let proxy = Proxy::start(cluster.port("pg1")).await.expect("proxy");
    let via_proxy = cluster.monitor_conninfo_via("pg1", proxy.port());
    let conninfo = "SELECT setting FROM pg_catalog.pg_settings WHERE name = 'primary_conninfo'";
    let mut before = BTreeMap::new();
    for n in ["pg2", "pg3"] {
        let rows = cluster.sql(n, conninfo).await.expect("primary_conninfo");
        before.insert(n, rows[0].get::<_, String>(0));
    }
    let lab = start(cluster, "on", &["pg1", "pg2", "pg3"], |_, c| {
        c["remote_conns"]["pg1"] = json!(via_proxy);
        // the window before a failover, and so the hold before the give-back
        c["max_failover_replication_time_lag"] = json!(20.0);
    })
    .await;
    let c = &lab.cluster;
    lab.wait_names(BOTH).await;
    let receiving = |n: &'static str| async move {
        let rows = c.sql(n, "SELECT count(*) FROM pg_stat_wal_receiver").await?;
        let setting: String = c.sql(n, conninfo).await?[0].get(0);
        anyhow::Ok((rows[0].get::<_, i64>(0) == 1, setting))
    };

    proxy.set_mode(ProxyMode::Refuse);
    for n in ["pg2", "pg3"] {
        lab.wait(&format!("{n} to confirm WAL to no primary"), || async {
            Ok(receiving(n).await? == (false, String::new()))
        })
        .await;
        lab.wait_state(n, &format!("{n}'s daemon to see its node cut off"), |s| {
            node(s, n)["receiver_cut"] == json!(true)
        })
        .await;
    }
    proxy.set_mode(ProxyMode::Pass);
    for n in ["pg2", "pg3"] {
        lab.wait(
            &format!("{n} to stream from pg1 again, with its old primary_conninfo"),
            || async { Ok(receiving(n).await? == (true, before[n].clone())) },
        )
        .await;
        let kinds: Vec<String> = lab
            .history(n)
            .into_iter()
            .filter(|(k, _)| k == "wal_receiver")
            .map(|(_, r)| r)
            .collect();
        assert_eq!(kinds.len(), 2, "{n}: {kinds:?}{}", lab.dump());
        assert!(kinds[0].starts_with("primary_conninfo emptied"), "{kinds:?}");
        assert!(kinds[1].starts_with("primary_conninfo given back"), "{kinds:?}");
    }
    assert!(lab.promoted().await.is_empty(), "{}", lab.dump());
    c.write_load(20).await.expect("pg1 takes writes");
}

/// SIGHUP both ways: `off` leaves the setting alone, `on` sets it, `off` again resets it (no
/// `ALTER SYSTEM` value left); PostgreSQL is never restarted and every write is kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mode_switches_at_runtime() {
    let cluster = lab_cluster(2).await;
    grant_sync_privileges(&cluster).await;
    let mut lab = start(cluster, "off", &["pg1"], |_, _| {}).await;
    let started = "SELECT pg_postmaster_start_time()::text";
    let boot: String = lab.cluster.sql("pg1", started).await.expect("start time")[0].get(0);
    let altered = "SELECT count(*) FROM pg_file_settings WHERE name = 'synchronous_standby_names'";
    let mut written = lab.count("pg1", "SELECT count(*) FROM pglab_load").await;

    lab.polls(
        "pg1",
        "pg1",
        QUIET_POLLS,
        "pg1's daemon to leave the setting alone (off)",
        |s| node(s, "pg1")["synchronous_standby_names"] == json!(""),
        || async { None },
    )
    .await;
    lab.cluster.write_load(50).await.expect("write");
    written += 50;

    let reload = |lab: &mut Lab, mode: &str| {
        for d in lab.daemons.values_mut() {
            let mut c = d.config().clone();
            c["synchronous_mode"] = json!(mode);
            d.reload_with(c).expect("reload");
        }
    };
    reload(&mut lab, "on");
    lab.wait_names(BOTH).await;
    assert_eq!(lab.count("pg1", altered).await, 1, "set with ALTER SYSTEM");
    lab.cluster.write_load(50).await.expect("write");
    written += 50;

    reload(&mut lab, "off");
    lab.wait_names("").await;
    lab.wait("the ALTER SYSTEM value to be reset", || async {
        Ok(lab.cluster.sql("pg1", altered).await?[0].get::<_, i64>(0) == 0)
    })
    .await;
    wait_log(lab.daemon("pg1"), "pg1's daemon to log the reset", |l| {
        l.contains("synchronous_standby_names: asked for \"(the server's own setting)\"")
    })
    .await;
    lab.wait_event(
        "pg1",
        "synchronous_standby_names",
        "reset to the server's setting (synchronous_mode off)",
    )
    .await;
    lab.cluster.write_load(50).await.expect("write");
    written += 50;

    let now: String = lab.cluster.sql("pg1", started).await.expect("start time")[0].get(0);
    assert_eq!(now, boot, "pg1 was restarted");
    assert_eq!(lab.count("pg1", "SELECT count(*) FROM pglab_load").await, written);
    for s in ["pg2", "pg3"] {
        lab.wait(&format!("{s} to have every write"), || async {
            Ok(lab.cluster.load_count(s).await? == written)
        })
        .await;
    }
    for alert in [DEGRADED, SETTING_FAILED] {
        assert!(!lab.has_alert("pg1", alert), "{alert}{}", lab.dump());
    }
}

/// The lab's monitoring role (no superuser, no grant) cannot set the names: the alert, a log
/// line that names the privilege, a daemon that goes on; once granted, the value is set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_privilege_raises_the_alert_and_is_logged() {
    let cluster = lab_cluster(2).await;
    let mut lab = start(cluster, "on", &["pg1"], |_, c| {
        // asked again after 3 × db_poll_timeout + 2 × db_poll_interval
        c["db_poll_timeout"] = json!(1.0);
    })
    .await;
    lab.wait("synchronous_setting_failed on pg1's daemon", || async {
        Ok(lab.has_alert("pg1", SETTING_FAILED))
    })
    .await;
    let d = lab.daemon("pg1");
    wait_log(d, "pg1's daemon to log why it cannot set the names", |l| {
        l.lines().any(|l| {
            l.contains(&format!("synchronous_standby_names: cannot set {BOTH:?} on our node"))
                && l.contains("the role needs superuser, or from PostgreSQL 15 on `GRANT ALTER SYSTEM ON PARAMETER synchronous_standby_names, primary_conninfo`")
        })
    })
    .await;
    assert_eq!(lab.names().await.expect("SHOW"), "");
    lab.wait_event("pg1", "alert_raised", SETTING_FAILED).await;
    assert!(
        lab.daemons.get_mut("pg1").and_then(Daemon::try_exit).is_none(),
        "{}",
        lab.dump()
    );
    wait_api(lab.daemon("pg1")).await;

    grant_sync_privileges(&lab.cluster).await;
    lab.wait_names(BOTH).await;
    lab.wait("synchronous_setting_failed to go", || async {
        Ok(!lab.has_alert("pg1", SETTING_FAILED))
    })
    .await;
}
