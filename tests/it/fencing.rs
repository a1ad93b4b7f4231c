//! Fencing and the fast unreachable-master trigger on real PostgreSQL: a primary pg1 and
//! standbys pg2 and pg3, a daemon per node and an observer, each daemon listing the three
//! others as its observers (so that a lease needs two of three). Every daemon reaches pg1
//! through one proxy, so that the daemons' links to it can be cut while its WAL stream and its
//! clients are not. Each node's `fence_command` SIGKILLs it (pglab's `fence_command`); each
//! command first writes the time it started, so the tests can order fences and promotions.

use super::harness::*;
use pglab::daemon::{free_port, Daemon};
use pglab::{Cluster, Proxy, ProxyMode};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// In start order: the primary's daemon last, once the others can vouch for pg1 (its lease
/// runs from its start: docs/safety.md).
const NAMES: [&str; 4] = ["obs", "pg2", "pg3", "pg1"];

/// The timings of these tests (docs/safety.md, "Timing"): the overhead is
/// 2 × 0.5 + 2 × 1 + 0.5 + 1 = 4.5 s, so fence_timeout 4.5 + 4.5 = 9 s <= 9.5 s.
fn timings() -> Value {
    json!({
        "db_poll_interval": 0.5,
        "replication_state_check_interval": 0.5,
        "db_poll_timeout": 1.0,
        "fence_timeout": 4.5,
        "unreachable_master_failover_timeout": 9.5,
        "max_failover_replication_time_lag": 60.0,
        "missing_master_from_config_timeout": 1.0,
        "failover_command_timeout": 30.0,
    })
}

struct Mesh {
    daemons: BTreeMap<&'static str, Daemon>,
    proxy: Proxy,
    cluster: Cluster,
}

fn stamped(dir: &Path, name: &str, stamp: &Path, then: &str) -> String {
    let path = dir.join(name);
    std::fs::write(
        &path,
        format!("#!/bin/sh\ndate +%s.%N >> {}\nexec {then}\n", stamp.display()),
    )
    .expect("script");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path.display().to_string()
}

/// When `what` (fence or promote) first ran on `node`'s daemon, as seconds since the epoch.
fn stamp_of(cluster: &Cluster, what: &str, node: &str) -> Option<f64> {
    let text = std::fs::read_to_string(stamp_path(cluster.dir(), what, node)).ok()?;
    text.lines().next()?.trim().parse().ok()
}

fn stamp_path(dir: &Path, what: &str, node: &str) -> PathBuf {
    dir.join(format!("{what}-{node}.time"))
}

impl Mesh {
    /// `fence`: whether the daemons have a `fence_command` (off only to show what it prevents).
    async fn start(fence: bool) -> Mesh {
        let cluster = lab_cluster(2).await;
        let proxy = Proxy::start(cluster.port("pg1")).await.expect("proxy");
        let ports: BTreeMap<&str, u16> = NAMES.iter().map(|n| (*n, free_port().expect("port"))).collect();
        let mut daemons = BTreeMap::new();
        for own in NAMES {
            let observers: serde_json::Map<String, Value> = NAMES
                .iter()
                .filter(|n| **n != own)
                .map(|n| (n.to_string(), json!(format!("http://127.0.0.1:{}", ports[n]))))
                .collect();
            let own_db = if own == "obs" { "" } else { own };
            let mut c = config(&cluster, own_db, Value::Object(observers));
            for (k, v) in timings().as_object().expect("object") {
                c[k] = v.clone();
            }
            c["http_port"] = json!(ports[own]);
            c["remote_conns"]["pg1"] = json!(cluster.monitor_conninfo_via("pg1", proxy.port()));
            if own != "obs" {
                let dir = cluster.dir();
                let promote = cluster.promote_command(own).expect("promote");
                let fence_cmd = cluster.fence_command(own).expect("fence");
                c["failover_command"] = json!(stamped(
                    dir,
                    &format!("failover-{own}.sh"),
                    &stamp_path(dir, "promote", own),
                    &promote
                ));
                if fence {
                    c["fence_command"] = json!(stamped(
                        dir,
                        &format!("fence-{own}.sh"),
                        &stamp_path(dir, "fence", own),
                        &fence_cmd
                    ));
                }
            }
            let d = spawn(&cluster, own, c);
            if own != "pg1" {
                let seen = pglab::wait_for("the daemon to see pg1", DEADLINE, || async {
                    Ok(d.state().is_some_and(|s| connected(&s, "pg1")))
                })
                .await;
                if let Err(e) = seen {
                    panic!("{own}: {e:#}\n{}", tail(&d.log(), 30));
                }
            }
            daemons.insert(own, d);
        }
        let mesh = Mesh {
            daemons,
            proxy,
            cluster,
        };
        for name in NAMES {
            mesh.wait_state(name, "a healthy cluster with pg1 as the master", |s| {
                s["current_master"] == json!("pg1")
                    && ["pg1", "pg2", "pg3"].iter().all(|n| connected(s, n))
                    && s["observer_nodes"]
                        .as_object()
                        .is_some_and(|o| o.len() == 3 && o.values().all(|v| v["connection"] == json!(true)))
            })
            .await;
        }
        mesh
    }

    fn dump(&self) -> String {
        let mut out = String::new();
        for (name, d) in &self.daemons {
            let decision = d.state().map(|s| s["decision"].to_string()).unwrap_or_default();
            out.push_str(&format!("\n===== {name}: {decision}\n{}\n", tail(&d.log(), 25)));
        }
        out
    }

    async fn wait_state(&self, name: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let d = &self.daemons[name];
        match pglab::wait_for(what, DEADLINE, || async { Ok(d.state().filter(|s| pred(s))) }).await {
            Ok(v) => v,
            Err(e) => panic!("{name}: {e:#}{}", self.dump()),
        }
    }

    async fn wait_promoted(&self) -> &'static str {
        let cluster = &self.cluster;
        let result = pglab::wait_for("a standby to be promoted", DEADLINE, || async {
            for s in ["pg2", "pg3"] {
                if let Ok(false) = cluster.in_recovery(s).await {
                    return Ok(Some(s));
                }
            }
            Ok(None)
        })
        .await;
        match result {
            Ok(s) => s,
            Err(e) => panic!("{e:#}{}", self.dump()),
        }
    }

    /// Waits until `name`'s daemon has decided on `n` more polls of its own node, failing at
    /// once if any daemon fences or promotes meanwhile.
    async fn stays_quiet(&self, name: &str, n: usize) {
        let d = &self.daemons[name];
        let seen = std::cell::RefCell::new(std::collections::BTreeSet::new());
        let result = pglab::wait_for("quiet decisions", DEADLINE, || async {
            for node in ["pg1", "pg2", "pg3"] {
                for what in ["fence", "promote"] {
                    if stamp_of(&self.cluster, what, node).is_some() {
                        return Ok(Some(Err(format!("{what} ran on {node}"))));
                    }
                }
            }
            if let Some(t) = d
                .state()
                .and_then(|s| node(&s, name)["fetch_time"].as_str().map(str::to_string))
            {
                seen.borrow_mut().insert(t);
            }
            Ok((seen.borrow().len() >= n).then_some(Ok(())))
        })
        .await;
        match result {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("{e}{}", self.dump()),
            Err(e) => panic!("{e:#}{}", self.dump()),
        }
    }
}

/// The primary is cut from every daemon (and the observer) while its WAL stream and its
/// clients still reach it: its own daemon fences it before any standby is promoted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_partitioned_from_every_daemon_is_fenced_before_a_standby_is_promoted() {
    let mesh = Mesh::start(true).await;
    mesh.proxy.set_mode(ProxyMode::Blackhole);
    let winner = mesh.wait_promoted().await;
    let fenced = stamp_of(&mesh.cluster, "fence", "pg1").unwrap_or_else(|| panic!("pg1 was not fenced{}", mesh.dump()));
    let promoted = stamp_of(&mesh.cluster, "promote", winner).expect("promotion time");
    assert!(
        fenced < promoted,
        "fenced at {fenced}, promoted at {promoted}{}",
        mesh.dump()
    );
    assert!(
        mesh.cluster.sql("pg1", "SELECT 1").await.is_err(),
        "pg1 still answers its clients"
    );
    assert!(mesh.daemons["pg1"].alert_dir.join("fenced").exists());
    let log = mesh.daemons["pg1"].log();
    assert!(
        log.contains("no majority of the observers has reported pg1 connected"),
        "{}",
        mesh.dump()
    );
    let state = mesh.daemons["pg1"].state().expect("state");
    assert!(state["decision"].to_string().contains("fence"), "{state}");
    let (_, metrics) = mesh.daemons["pg1"].http("GET", "/metrics").await.expect("metrics");
    assert!(metrics.contains("pglookout_fences_total 1\n"), "{metrics}");
}

/// A frozen primary (SIGSTOP of the postmaster and every child) is fenced by its own daemon
/// and failed over; when it resumes, it never takes a write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_primary_is_fenced_and_never_takes_a_write_when_it_resumes() {
    use nix::sys::signal::Signal;
    let mesh = Mesh::start(true).await;
    let pid = mesh.cluster.node("pg1").postmaster_pid().expect("pg1 runs");
    let mut frozen = pglab::process::children_and_group(pid);
    frozen.push(pid);
    for p in &frozen {
        pglab::process::signal(*p, Signal::SIGSTOP);
    }
    let winner = mesh.wait_promoted().await;
    let fenced = stamp_of(&mesh.cluster, "fence", "pg1");
    for p in &frozen {
        pglab::process::signal(*p, Signal::SIGCONT);
    }
    let fenced = fenced.unwrap_or_else(|| panic!("pg1 was not fenced before the promotion{}", mesh.dump()));
    let promoted = stamp_of(&mesh.cluster, "promote", winner).expect("promotion time");
    assert!(
        fenced < promoted,
        "fenced at {fenced}, promoted at {promoted}{}",
        mesh.dump()
    );
    mesh.cluster
        .sql(winner, "INSERT INTO pglab_load (payload) VALUES ('new primary')")
        .await
        .expect("the new primary takes writes");
    for _ in 0..10 {
        let write = mesh
            .cluster
            .sql("pg1", "INSERT INTO pglab_load (payload) VALUES ('old primary')")
            .await;
        assert!(write.is_err(), "the resumed old primary took a write{}", mesh.dump());
    }
}

/// A 3 s blip of every daemon's link to the primary (refused, then restored) neither fences
/// nor fails over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_three_second_blip_neither_fences_nor_fails_over() {
    let mesh = Mesh::start(true).await;
    mesh.proxy.set_mode(ProxyMode::Refuse);
    let blip_started = std::time::Instant::now();
    mesh.wait_state("pg2", "pg2's daemon to see pg1 unreachable", |s| !connected(s, "pg1"))
        .await;
    // hold the blip 3 s; the wait above took part of it
    tokio::time::sleep(std::time::Duration::from_secs(3).saturating_sub(blip_started.elapsed())).await;
    mesh.proxy.set_mode(ProxyMode::Pass);
    // 20 polls (10 s at 0.5 s) of quiet afterwards: past fence_timeout and the fast trigger
    mesh.stays_quiet("pg1", 20).await;
    mesh.stays_quiet("pg2", 4).await;
    assert!(mesh.cluster.in_recovery("pg1").await.map(|r| !r).unwrap_or(false));
}

/// kill -9 of the primary: a standby is promoted on the fast trigger, long before the 60 s
/// lag window; the dead primary's daemon fences it (a no-op on a dead node) first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_fails_over_on_the_fast_trigger() {
    let mesh = Mesh::start(true).await;
    mesh.cluster.kill9("pg1").expect("kill pg1");
    let winner = mesh.wait_promoted().await;
    let log = mesh.daemons[winner].log();
    assert!(log.contains("unreachable_master_failover_timeout"), "{}", mesh.dump());
    let fenced = stamp_of(&mesh.cluster, "fence", "pg1");
    let promoted = stamp_of(&mesh.cluster, "promote", winner).expect("promotion time");
    assert!(
        fenced.is_some_and(|f| f < promoted),
        "{fenced:?} {promoted}{}",
        mesh.dump()
    );
}

/// The rule broken on purpose: the same partition without `fence_command` leaves two writable
/// primaries (the split brain the fence prevents), which is what the test above would catch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_fencing_the_partition_leaves_two_writable_primaries() {
    let mesh = Mesh::start(false).await;
    mesh.proxy.set_mode(ProxyMode::Blackhole);
    let winner = mesh.wait_promoted().await;
    for node in ["pg1", winner] {
        mesh.cluster
            .sql(node, "INSERT INTO pglab_load (payload) VALUES ('split brain')")
            .await
            .unwrap_or_else(|e| panic!("{node} does not take writes: {e:#}"));
    }
    assert!(stamp_of(&mesh.cluster, "fence", "pg1").is_none());
}
