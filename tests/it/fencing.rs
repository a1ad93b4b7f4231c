//! Fencing and the fast unreachable-master trigger on real PostgreSQL: a primary pg1 and
//! standbys pg2 and pg3, a daemon per node and an observer, each daemon listing the three
//! others as its observers (so that a lease needs two of three). Every daemon reaches pg1
//! through one proxy, so that the daemons' links to it can be cut while its WAL stream and its
//! clients are not. Each node's `fence_command` SIGKILLs it (pglab's `fence_command`); each
//! command first writes the time it started, so the tests can order fences and promotions.

use super::harness::*;
use pglab::daemon::{free_port, Daemon};
use pglab::wait_for;
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
        Mesh::start_with(fence, Vec::new(), |_, _, _| {}).await
    }

    /// [`Mesh::start`] with `extra_conf` in every node's postgresql.conf and `tweak` applied to
    /// each daemon's config (with the cluster and the daemon's name).
    async fn start_with(fence: bool, extra_conf: Vec<String>, tweak: impl Fn(&Cluster, &str, &mut Value)) -> Mesh {
        let spec = pglab::ClusterSpec {
            standbys: 2,
            extra_conf,
            ..Default::default()
        };
        Mesh::start_spec(fence, spec, tweak).await
    }

    /// [`Mesh::start_with`] with the whole cluster spec.
    async fn start_spec(fence: bool, spec: pglab::ClusterSpec, tweak: impl Fn(&Cluster, &str, &mut Value)) -> Mesh {
        let cluster = Cluster::start(spec).await.expect("cluster");
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
            tweak(&cluster, own, &mut c);
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
            out.push_str(&format!("\n===== {name}: {decision}\n{}\n", story(&d.log(), 40)));
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
        log.contains("fewer than half of the voters have reported pg1 connected"),
        "{}",
        mesh.dump()
    );
    let state = mesh.daemons["pg1"].state().expect("state");
    assert!(state["decision"].to_string().contains("fence"), "{state}");
    let (_, metrics) = mesh.daemons["pg1"].http("GET", "/metrics").await.expect("metrics");
    assert!(metrics.contains("pglookout_fences_total 1\n"), "{metrics}");
}

/// Issue 18, finding 3: the fence exits 0 and a supervisor starts the node again as a primary
/// a moment later. Its daemon (which reaches its own node directly, as beside it, while every
/// other daemon's link to it is cut) sees it answer as a primary without a lease, fences it
/// again and raises `fence_failed`; `/primary` on it answers 503 with the fence named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fence_undone_by_a_supervisor_is_seen_and_run_again() {
    let mesh = Mesh::start_with(true, Vec::new(), |cluster, own, c| {
        if own == "pg1" {
            c["remote_conns"]["pg1"] = json!(cluster.monitor_conninfo("pg1"));
        }
    })
    .await;
    mesh.proxy.set_mode(ProxyMode::Blackhole);
    let cluster = &mesh.cluster;
    let stopped = wait_for("pg1 fenced and stopped", DEADLINE, || async {
        Ok((stamp_of(cluster, "fence", "pg1").is_some() && !cluster.node("pg1").is_running()).then_some(()))
    })
    .await;
    if let Err(e) = stopped {
        panic!("{e:#}{}", mesh.dump());
    }
    let (status, body) = mesh.daemons["pg1"].http("GET", "/primary").await.expect("/primary");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("fenced"), "{body}");
    // the supervisor
    cluster.start_node("pg1").await.expect("pg1 starts again");
    let fences = || {
        std::fs::read_to_string(stamp_path(cluster.dir(), "fence", "pg1"))
            .map(|t| t.lines().count())
            .unwrap_or(0)
    };
    let again = wait_for("pg1 fenced again", DEADLINE, || async {
        Ok((fences() >= 2 && !cluster.node("pg1").is_running()).then_some(()))
    })
    .await;
    if let Err(e) = again {
        panic!("{e:#}{}", mesh.dump());
    }
    assert!(
        mesh.daemons["pg1"].alert_dir.join("fence_failed").exists(),
        "{}",
        mesh.dump()
    );
    wait_log(&mesh.daemons["pg1"], "the reason of the second fence", |log| {
        log.contains("did not hold: pg1 answers as a primary again")
    })
    .await;
    let (_, history) = mesh.daemons["pg1"].http("GET", "/history").await.expect("/history");
    assert!(
        history.contains("fence_failed") && history.contains("did not hold"),
        "{history}"
    );
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
    wait_log(
        &mesh.daemons[winner],
        "the fast trigger in the winner's decision",
        |log| log.contains("has reported master pg1 gone for") && log.contains("(failover timeout 9.5 s)"),
    )
    .await;
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

/// pg1's daemon config for `rejoin_old_master`: the lab's start and stop commands, `pg_rewind`
/// run as the server user (it refuses root) and the superuser as its source.
fn rejoin_config(cluster: &Cluster, c: &mut Value) {
    let bin = cluster.bin_dir();
    let wrapper = cluster.dir().join("pg_rewind.sh");
    let run_as = match cluster.env().run_as {
        Some((uid, gid)) => format!("setpriv --reuid={uid} --regid={gid} --clear-groups "),
        None => String::new(),
    };
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\ncd /\nexec {run_as}{} \"$@\"\n",
            bin.join("pg_rewind").display()
        ),
    )
    .expect("pg_rewind wrapper");
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    c["rejoin_old_master"] = json!(true);
    c["primary_conninfo_template"] = json!(cluster.replication_conninfo("pg1", "pg1"));
    c["rejoin_source_conninfo_template"] = json!(cluster.superuser_conninfo("pg1"));
    c["pg_data_directory"] = json!(cluster.data_dir("pg1"));
    c["pg_start_command"] = json!(cluster.start_command("pg1").expect("start"));
    c["pg_stop_command"] = json!(cluster.stop_command("pg1").expect("stop"));
    c["pg_rewind_command"] = json!(wrapper);
    c["pg_controldata_command"] = json!(bin.join("pg_controldata"));
}

/// A `reinit_command` for `node`: the shipped `packaging/reinit.sh` with the lab's
/// `pg_basebackup`, run as the server user. With `gate`, its first run fails (leaving half a
/// copy in the side directory) and creates that file, so the next run copies.
fn reinit_command(cluster: &Cluster, node: &str, gate: Option<&Path>) -> PathBuf {
    let bin = cluster.bin_dir();
    let wrapper = cluster.dir().join(format!("reinit-{node}.sh"));
    let run_as = match cluster.env().run_as {
        Some((uid, gid)) => format!("setpriv --reuid={uid} --regid={gid} --clear-groups "),
        None => String::new(),
    };
    let gate = match gate {
        Some(g) => format!(
            "if [ ! -e {g} ]; then touch {g}; echo half > \"$PGLOOKOUT_DATA_DIRECTORY/half-a-copy\"; echo 'the test refuses this reinit' >&2; exit 3; fi\n",
            g = g.display()
        ),
        None => String::new(),
    };
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/reinit.sh");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\ncd /\n{gate}PG_BASEBACKUP={} exec {run_as}{}\n",
            bin.join("pg_basebackup").display(),
            script.display()
        ),
    )
    .expect("reinit wrapper");
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    wrapper
}

/// Runs `pglookout-ctl <what> --config <config> --master <master>`: its exit code and output.
fn ctl_bring_back(what: &str, config: &Path, master: &str) -> (Option<i32>, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pglookout-ctl"))
        .args([what, "--config"])
        .arg(config)
        .args(["--master", master])
        .output()
        .expect("pglookout-ctl");
    (
        out.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// Waits until `node` has replayed every row `primary` has, then checks that none of the rows
/// it wrote after the fork (`diverged`) are left; the error says which failed.
async fn caught_up_without_divergence(cluster: &Cluster, primary: &str, node: &str) -> Result<(), String> {
    let want = count(cluster, primary, "SELECT count(*) FROM pglab_load").await;
    wait_for(
        &format!("{node} to replay every acknowledged write"),
        DEADLINE,
        || async { Ok(count(cluster, node, "SELECT count(*) FROM pglab_load").await == want) },
    )
    .await
    .map_err(|e| format!("{e:#}"))?;
    match count(
        cluster,
        node,
        "SELECT count(*) FROM pglab_load WHERE payload = 'diverged'",
    )
    .await
    {
        0 => Ok(()),
        n => Err(format!("{node} still has {n} rows it wrote after the fork")),
    }
}

async fn count(cluster: &Cluster, node: &str, query: &str) -> i64 {
    match cluster.sql(node, query).await {
        Ok(rows) => rows[0].get(0),
        Err(e) => panic!("{node}: {e:#}"),
    }
}

/// Whether the lab's PostgreSQL has `pg_rewind` and `pg_controldata`. Only the builds pglab
/// fetches for 10 and 12 lack them (no registry carries a whole build of those majors; the
/// README's matrix says so): there the rejoin tests say they are skipped. Anywhere else a
/// build without them fails the test: it would hide the rejoin from the test run.
fn rejoin_tools_present() -> bool {
    let bin = pglab::env::bin_dir_from_env().expect("bin dir");
    let missing: Vec<&str> = ["pg_rewind", "pg_controldata"]
        .into_iter()
        .filter(|t| !bin.join(t).is_file())
        .collect();
    if missing.is_empty() {
        return true;
    }
    let own_bin_dir = std::env::var_os("PGLAB_BIN_DIR").is_some_and(|d| !d.is_empty());
    let build = match std::env::var("PGLAB_PG_VERSION") {
        Ok(v) if !own_bin_dir && !v.trim().is_empty() => pglab::pgdist::parse_major(&v)
            .ok()
            .and_then(|m| pglab::pgdist::pinned(m).ok()),
        _ => None,
    };
    match build {
        Some(b) if !b.has_client_tools() => {
            eprintln!(
                "SKIPPED: no registry build of PostgreSQL {} carries pg_rewind (README, PostgreSQL versions): {} ({}) has no {}",
                b.major,
                bin.display(),
                b.spec(),
                missing.join(", ")
            );
            false
        }
        Some(b) => panic!(
            "{} has no {}, which pglab's build of PostgreSQL {} ({}) carries: the rejoin tests cannot run (a stale or damaged cache? remove that directory)",
            bin.display(),
            missing.join(", "),
            b.major,
            b.spec()
        ),
        None => panic!(
            "{} has no {}: the rejoin tests need them (install the PostgreSQL client tools of the server's major, or point PGLAB_BIN_DIR at a directory that has them)",
            bin.display(),
            missing.join(", ")
        ),
    }
}

impl Mesh {
    /// pg1's daemon with `rejoin_old_master`; `wal_log_hints` on every node when `hints`, else
    /// neither it nor data checksums (initdb's default from 18), so that pg_rewind cannot run.
    /// With `reinit`, pg1's daemon has a `reinit_command` whose first run fails
    /// ([`reinit_command`] with a gate).
    async fn start_rejoin(hints: bool, reinit: bool) -> Mesh {
        let spec = pglab::ClusterSpec {
            standbys: 2,
            extra_conf: if hints {
                vec!["wal_log_hints = on".to_string()]
            } else {
                Vec::new()
            },
            data_checksums: if hints { None } else { Some(false) },
            ..Default::default()
        };
        Mesh::start_spec(true, spec, |cluster, own, c| {
            if own == "pg1" {
                rejoin_config(cluster, c);
                if reinit {
                    let gate = cluster.dir().join("reinit-gate");
                    c["reinit_command"] = json!(reinit_command(cluster, "pg1", Some(&gate)));
                }
            }
        })
        .await
    }

    /// pg1 takes `rows` writes that no standby receives, then is cut from every daemon: it is
    /// fenced (SIGKILL) and a standby promoted. Returns the new primary. The dead pg1 is reaped
    /// meanwhile (it is the lab's child: a zombie would keep its lock file looking alive).
    async fn diverge_and_fail_over(&self, rows: usize) -> &'static str {
        let cluster = &self.cluster;
        for s in ["pg2", "pg3"] {
            cluster.cut_wal_stream(s).await.expect("cut the WAL stream");
        }
        cluster
            .sql(
                "pg1",
                &format!("INSERT INTO pglab_load (payload) SELECT 'diverged' FROM generate_series(1, {rows})"),
            )
            .await
            .expect("pg1 takes the writes");
        self.proxy.set_mode(ProxyMode::Blackhole);
        let result = wait_for("a standby to be promoted", DEADLINE, || async {
            let _ = cluster.node("pg1").is_running();
            for s in ["pg2", "pg3"] {
                if let Ok(false) = cluster.in_recovery(s).await {
                    return Ok(Some(s));
                }
            }
            Ok(None)
        })
        .await;
        let winner = result.unwrap_or_else(|e| panic!("{e:#}{}", self.dump()));
        assert!(
            stamp_of(cluster, "fence", "pg1").is_some(),
            "pg1 was not fenced{}",
            self.dump()
        );
        // the daemons reach pg1 again (it is dead): its daemon sees its own node as it is
        self.proxy.set_mode(ProxyMode::Pass);
        winner
    }
}

/// `rejoin_old_master`: the fenced old primary, which took writes the standbys never got, is
/// rewound from the new primary and streams from it; its writes after the fork are gone and
/// every write the new primary acknowledged is there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fenced_old_primary_rejoins_with_pg_rewind_and_streams_from_the_new_primary() {
    if !rejoin_tools_present() {
        return;
    }
    let mesh = Mesh::start_rejoin(true, false).await;
    let cluster = &mesh.cluster;
    cluster.write_load(20).await.expect("load");
    let winner = mesh.diverge_and_fail_over(5).await;
    cluster
        .sql(
            winner,
            "INSERT INTO pglab_load (payload) SELECT 'acknowledged' FROM generate_series(1, 7)",
        )
        .await
        .expect("the new primary takes writes");
    let rejoined = wait_for("pg1 to stream from the new primary", DEADLINE, || async {
        let _ = cluster.node("pg1").is_running();
        let streaming = cluster
            .sql(
                winner,
                "SELECT count(*) FROM pg_stat_replication WHERE application_name = 'pg1' AND state = 'streaming'",
            )
            .await
            .map(|r| r[0].get::<_, i64>(0) > 0)
            .unwrap_or(false);
        Ok(streaming)
    })
    .await;
    if let Err(e) = rejoined {
        panic!("{e:#}\npg1's log:\n{}{}", cluster.node("pg1").log_tail(30), mesh.dump());
    }
    let d = &mesh.daemons["pg1"];
    // pg1 streams before its start command returns, and may still refuse connections ("the
    // database system is starting up") until it is consistent: wait for the rejoin's end
    wait_for("the rejoin's success in pg1's log", DEADLINE, || async {
        Ok(d.log().contains("rejoin: our node is started as a standby of"))
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#}{}", mesh.dump()));
    assert!(
        cluster.in_recovery("pg1").await.expect("pg1 answers"),
        "pg1 is a standby"
    );
    cluster
        .sql(
            winner,
            "INSERT INTO pglab_load (payload) SELECT 'acknowledged' FROM generate_series(1, 3)",
        )
        .await
        .expect("more writes");
    if let Err(e) = caught_up_without_divergence(cluster, winner, "pg1").await {
        panic!("{e}{}", mesh.dump());
    }
    assert_eq!(
        count(
            cluster,
            "pg1",
            "SELECT count(*) FROM pglab_load WHERE payload = 'acknowledged'"
        )
        .await,
        10
    );
    assert!(!d.alert_dir.join("rejoin_failed").exists(), "{}", mesh.dump());
    let log = d.log();
    assert!(log.contains("pg_rewind_command"), "{}", mesh.dump());
    assert!(!log.contains(cluster.superuser_password()), "a password in the log");
    // its daemon sees it as a standby again: the fence is lifted
    mesh.wait_state("pg1", "pg1 seen as a standby by its daemon", |s| {
        connected(s, "pg1") && node(s, "pg1")["pg_is_in_recovery"] == json!(true)
    })
    .await;
    wait_for("the fenced alert to be removed", DEADLINE, || async {
        Ok(!d.alert_dir.join("fenced").exists())
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#}{}", mesh.dump()));
}

/// The shipped fence (`packaging/fence.sh`) and a supervisor that restarts the fenced primary
/// at once: pg1 comes back in recovery, read-only, while a standby is promoted, so there is
/// never a second writable node, and its daemon neither counts the fence as failed nor takes
/// it for a standby. With `pg_rewind` at hand, `rejoin_old_master` then rewinds it from the new
/// primary (its post-fork rows gone) and it streams.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shipped_fence_brings_a_restarted_old_primary_back_read_only() {
    let tools = rejoin_tools_present();
    let extra = vec!["wal_log_hints = on".to_string()];
    let mesh = Mesh::start_with(true, extra, |cluster, own, c| {
        if own == "pg1" {
            if tools {
                rejoin_config(cluster, c);
            }
            let sample = cluster.sample_fence_command("pg1").expect("sample fence");
            let dir = cluster.dir();
            c["fence_command"] = json!(stamped(dir, "fence-pg1.sh", &stamp_path(dir, "fence", "pg1"), &sample));
        }
    })
    .await;
    let cluster = &mesh.cluster;
    cluster.write_load(20).await.expect("load");
    for s in ["pg2", "pg3"] {
        cluster.cut_wal_stream(s).await.expect("cut the WAL stream");
    }
    cluster
        .sql(
            "pg1",
            "INSERT INTO pglab_load (payload) SELECT 'diverged' FROM generate_series(1, 4)",
        )
        .await
        .expect("pg1 takes the writes");
    mesh.proxy.set_mode(ProxyMode::Blackhole);
    let stopped = wait_for("pg1 fenced and stopped", DEADLINE, || async {
        Ok((stamp_of(cluster, "fence", "pg1").is_some() && !cluster.node("pg1").is_running()).then_some(()))
    })
    .await;
    if let Err(e) = stopped {
        panic!("{e:#}{}", mesh.dump());
    }
    // the supervisor
    cluster.start_node("pg1").await.expect("pg1 starts again");
    assert!(
        cluster.in_recovery("pg1").await.expect("pg1 answers"),
        "pg1 came back as a primary{}",
        mesh.dump()
    );
    let refused = cluster
        .sql("pg1", "INSERT INTO pglab_load (payload) VALUES ('after the fence')")
        .await;
    assert!(refused.is_err(), "pg1 took a write after its fence");
    let winner = mesh.wait_promoted().await;
    assert!(
        cluster.in_recovery("pg1").await.unwrap_or(true),
        "pg1 is writable beside {winner}{}",
        mesh.dump()
    );
    mesh.proxy.set_mode(ProxyMode::Pass);
    let d = &mesh.daemons["pg1"];
    if tools {
        let streaming = wait_for("pg1 to stream from the new primary", DEADLINE, || async {
            let _ = cluster.node("pg1").is_running();
            Ok(cluster
                .sql(
                    winner,
                    "SELECT count(*) FROM pg_stat_replication WHERE application_name = 'pg1' AND state = 'streaming'",
                )
                .await
                .map(|r| r[0].get::<_, i64>(0) > 0)
                .unwrap_or(false))
        })
        .await;
        if let Err(e) = streaming {
            panic!("{e:#}\npg1's log:\n{}{}", cluster.node("pg1").log_tail(30), mesh.dump());
        }
        // the rejoin may be decided while pg1 is still cut off (reason "fenced") or after the
        // heal ("back in recovery but receives nothing"); either way it ran
        wait_log(d, "the rejoin's success", |log| {
            log.contains("rejoin: our node is started as a standby of")
        })
        .await;
        let diverged = count(
            cluster,
            "pg1",
            "SELECT count(*) FROM pglab_load WHERE payload = 'diverged'",
        )
        .await;
        assert_eq!(diverged, 0, "pg1's writes after the fork are gone");
    } else {
        // its daemon sees it back in recovery and leaves it so
        mesh.wait_state("pg1", "pg1 seen back in recovery by its daemon", |s| {
            connected(s, "pg1") && node(s, "pg1")["pg_is_in_recovery"] == json!(true)
        })
        .await;
        assert!(cluster.in_recovery("pg1").await.expect("pg1 answers"));
    }
    assert!(!d.alert_dir.join("fence_failed").exists(), "{}", mesh.dump());
}

/// Without `wal_log_hints` (or checksums) `pg_rewind` cannot run: the rejoin rebuilds the old
/// primary with `reinit_command` instead. Its first run fails (half a copy, exit 3): the old
/// primary stays stopped with its own data directory, both alerts say why, and nothing is left
/// beside it. The daemon's retry (30 s later) rebuilds it with the shipped
/// `packaging/reinit.sh`: it streams from the new primary, its writes after the fork are gone,
/// every acknowledged write is there, and the history has the reinit's steps.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejoin_that_cannot_rewind_stays_stopped_until_reinit_rebuilds_it() {
    if !rejoin_tools_present() {
        return;
    }
    let mesh = Mesh::start_rejoin(false, true).await;
    let cluster = &mesh.cluster;
    let data_dir = cluster.data_dir("pg1");
    let marker = data_dir.join("pglab-old-directory");
    std::fs::write(&marker, "the directory before the reinit").expect("marker");
    cluster.write_load(10).await.expect("load");
    let winner = mesh.diverge_and_fail_over(3).await;
    let d = &mesh.daemons["pg1"];
    let alert = d.alert_dir.join("rejoin_failed");
    let failed = wait_for("the rejoin_failed alert", DEADLINE, || async {
        let _ = cluster.node("pg1").is_running();
        Ok(std::fs::read_to_string(&alert).ok())
    })
    .await;
    let text = failed.unwrap_or_else(|e| panic!("{e:#}{}", mesh.dump()));
    assert!(text.contains("wal_log_hints"), "{text}");
    assert!(text.contains("reinit_command"), "{text}");
    let reinit_failed = std::fs::read_to_string(d.alert_dir.join("reinit_failed")).expect("reinit_failed");
    assert!(
        reinit_failed.contains("the test refuses this reinit"),
        "{reinit_failed}"
    );
    // a few more rounds of its daemon: still stopped, waiting to retry, nothing moved
    mesh.wait_state("pg1", "the retry backoff", |s| {
        s["decision"]["summary"] == json!("rejoin: waiting before retrying the failed rejoin")
    })
    .await;
    assert!(!cluster.node("pg1").is_running(), "pg1 was started{}", mesh.dump());
    assert!(cluster.sql("pg1", "SELECT 1").await.is_err());
    assert!(marker.is_file(), "the old data directory is not in place");
    for leftover in [".reinit-new", ".reinit-old"] {
        let p = PathBuf::from(format!("{}{leftover}", data_dir.display()));
        assert!(!p.exists(), "{} is left", p.display());
    }

    // the retry, 30 s after the failure (the copy's own WAL stream does not pass for pg1's)
    wait_for("the rejoin's success in pg1's log", DEADLINE, || async {
        let _ = cluster.node("pg1").is_running();
        Ok(d.log().contains("rejoin: our node is started as a standby of"))
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#}\npg1's log:\n{}{}", cluster.node("pg1").log_tail(30), mesh.dump()));
    match cluster.in_recovery("pg1").await {
        Ok(true) => {}
        other => panic!(
            "pg1 is not a standby: {other:?}\npg1's log:\n{}{}",
            cluster.node("pg1").log_tail(40),
            mesh.dump()
        ),
    }
    cluster.wait_streaming("pg1").await.expect("pg1 streams");
    cluster
        .sql(
            winner,
            "INSERT INTO pglab_load (payload) SELECT 'acknowledged' FROM generate_series(1, 4)",
        )
        .await
        .expect("the new primary takes writes");
    if let Err(e) = caught_up_without_divergence(cluster, winner, "pg1").await {
        panic!("{e}{}", mesh.dump());
    }
    assert!(!marker.exists(), "the data directory was not replaced");
    assert!(!PathBuf::from(format!("{}.reinit-old", data_dir.display())).exists());
    assert!(!d.alert_dir.join("reinit_failed").exists());
    let history = std::fs::read_to_string(pglookout::events::default_path(&d.state_path)).expect("history");
    for kind in ["reinit_started", "reinit_step", "reinit_finished"] {
        assert!(
            history.contains(&format!("\"kind\":\"{kind}\"")),
            "no {kind}:\n{history}"
        );
    }
    assert!(
        !history.contains(cluster.superuser_password()),
        "a password in the history"
    );
    assert!(!d.log().contains(cluster.superuser_password()), "a password in the log");
    // its daemon sees it as a standby that receives: the rejoin alert goes
    wait_for("the rejoin_failed alert to be removed", DEADLINE, || async {
        Ok(!alert.exists())
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#}{}", mesh.dump()));
}

/// `pglookout-ctl rejoin` and `reinit`: refused while pg1 answers as a primary; once pg1 is
/// stopped (cleanly, after taking writes pg2 never got) and pg2 promoted, the rejoin rewinds
/// pg1 from pg2 and starts it as a standby that streams from pg2. Then `reinit` rebuilds that
/// healthy standby from pg2 (a new data directory, same rows) and it streams again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pglookout_ctl_rejoin_and_reinit_refuse_a_running_primary_and_bring_it_back() {
    if !rejoin_tools_present() {
        return;
    }
    let cluster = Cluster::start(pglab::ClusterSpec {
        standbys: 1,
        extra_conf: vec!["wal_log_hints = on".to_string()],
        ..Default::default()
    })
    .await
    .expect("cluster");
    let mut c = config(&cluster, "pg1", json!({}));
    rejoin_config(&cluster, &mut c);
    c["reinit_command"] = json!(reinit_command(&cluster, "pg1", None));
    c["alert_file_dir"] = json!(cluster.dir());
    let path = cluster.dir().join("ctl-rejoin.json");
    std::fs::write(&path, c.to_string()).expect("config");
    let ctl = |what: &str, master: &str| ctl_bring_back(what, &path, master);
    // pg2 is no primary, and pg1 still is one
    let (code, text) = tokio::task::block_in_place(|| ctl("rejoin", "pg2"));
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("pg2 is in recovery"), "{text}");
    cluster.write_load(10).await.expect("load");
    cluster.wait_streaming("pg2").await.expect("streaming");
    cluster.cut_wal_stream("pg2").await.expect("cut");
    cluster
        .sql(
            "pg1",
            "INSERT INTO pglab_load (payload) SELECT 'diverged' FROM generate_series(1, 4)",
        )
        .await
        .expect("diverged writes");
    cluster.promote("pg2").await.expect("promote pg2");
    for what in ["rejoin", "reinit"] {
        let (code, text) = tokio::task::block_in_place(|| ctl(what, "pg2"));
        assert_eq!(code, Some(1), "{what}: {text}");
        assert!(text.contains("pg1 answers as a primary"), "{what}: {text}");
    }
    assert!(
        cluster.in_recovery("pg1").await.is_ok_and(|r| !r),
        "pg1 is still the primary it was"
    );
    cluster.stop("pg1").await.expect("stop pg1");
    cluster
        .sql(
            "pg2",
            "INSERT INTO pglab_load (payload) SELECT 'acknowledged' FROM generate_series(1, 5)",
        )
        .await
        .expect("pg2 takes writes");
    let (code, text) = tokio::task::block_in_place(|| ctl("rejoin", "pg2"));
    assert_eq!(
        code,
        Some(0),
        "{text}\npg1's log:\n{}",
        cluster.node("pg1").log_tail(30)
    );
    assert!(text.contains("pg1 is started as a standby of pg2"), "{text}");
    assert!(!text.contains(cluster.superuser_password()), "{text}");
    assert!(cluster.in_recovery("pg1").await.expect("pg1 answers"));
    cluster.wait_streaming("pg1").await.expect("pg1 streams from pg2");
    let caught_up = || async {
        if let Err(e) = caught_up_without_divergence(&cluster, "pg2", "pg1").await {
            panic!("{e}\npg1's log:\n{}", cluster.node("pg1").log_tail(30));
        }
    };
    caught_up().await;
    assert!(!cluster.dir().join("rejoin_failed").exists());

    // a healthy standby, rebuilt on request
    let marker = cluster.data_dir("pg1").join("pglab-old-directory");
    std::fs::write(&marker, "the directory before the reinit").expect("marker");
    let (code, text) = tokio::task::block_in_place(|| ctl("reinit", "pg2"));
    assert_eq!(
        code,
        Some(0),
        "{text}\npg1's log:\n{}",
        cluster.node("pg1").log_tail(30)
    );
    assert!(text.contains("pg1 is rebuilt from pg2 and streams from it"), "{text}");
    assert!(!marker.exists(), "the data directory was not replaced");
    assert!(cluster.in_recovery("pg1").await.expect("pg1 answers"));
    cluster.wait_streaming("pg1").await.expect("pg1 streams from pg2 again");
    cluster
        .sql(
            "pg2",
            "INSERT INTO pglab_load (payload) SELECT 'acknowledged' FROM generate_series(1, 2)",
        )
        .await
        .expect("pg2 takes writes");
    caught_up().await;
    assert!(!cluster.dir().join("reinit_failed").exists());
}

/// The simulator's `layout=uneven` (seed 9819274036271292158): pg1's daemon lists the dedicated
/// observers obs1 and obs2, pg2's obs2 and obs3 (`allow_fragile_lease`), so they count
/// different voter sets, whose majorities need not overlap, and never read each other. obs2,
/// which both fetch from, relays the voter digest each sends with its fetches: both daemons
/// raise `voters_mismatch`, and when pg1 is killed pg2 is not promoted although obs2 and obs3,
/// all of its voters, report pg1 gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_daemons_listing_different_observers_see_it_through_a_shared_one_and_never_promote() {
    let cluster = lab_cluster(1).await;
    let obs: BTreeMap<&str, Daemon> = ["obs1", "obs2", "obs3"]
        .into_iter()
        .map(|o| (o, spawn(&cluster, o, config(&cluster, "", json!({})))))
        .collect();
    let dir = cluster.dir();
    let node = |own: &str, listed: [&str; 2]| {
        let mut c = config(
            &cluster,
            own,
            json!({listed[0]: obs[listed[0]].url(), listed[1]: obs[listed[1]].url()}),
        );
        for (k, v) in timings().as_object().expect("object") {
            c[k] = v.clone();
        }
        let alerts = dir.join(format!("alerts-{own}"));
        std::fs::create_dir_all(&alerts).expect("alert dir");
        c["alert_file_dir"] = json!(alerts);
        c["allow_fragile_lease"] = json!(true);
        c["fence_command"] = json!(stamped(
            dir,
            &format!("fence-{own}.sh"),
            &stamp_path(dir, "fence", own),
            &cluster.fence_command(own).expect("fence")
        ));
        c["failover_command"] = json!(stamped(
            dir,
            &format!("failover-{own}.sh"),
            &stamp_path(dir, "promote", own),
            &cluster.promote_command(own).expect("promote")
        ));
        c
    };
    let pg2 = spawn(&cluster, "pg2", node("pg2", ["obs2", "obs3"]));
    let pg1 = spawn(&cluster, "pg1", node("pg1", ["obs1", "obs2"]));
    for (d, own, other) in [(&pg1, "pg1", "pg2"), (&pg2, "pg2", "pg1")] {
        let raised = wait_for("voters_mismatch", DEADLINE, || async {
            Ok(dir.join(format!("alerts-{own}/voters_mismatch")).exists().then_some(()))
        })
        .await;
        assert!(raised.is_ok(), "{own}: {}", tail(&d.log(), 40));
        let said = format!("the daemons of {other} count a different voter set than ours");
        wait_state(d, "the reason in the decision", |s| {
            s["decision"]["reasons"].to_string().contains(&said)
        })
        .await;
    }
    cluster.kill9("pg1").expect("kill pg1");
    // its turn comes after the failover timeout (9.5 s), and the mismatch holds it
    wait_state(&pg2, "pg2's turn held by the mismatch", |s| {
        s["decision"]["summary"].as_str().is_some_and(|m| {
            m.contains("no failover: the daemons of pg1 count a different voter set (voters_mismatch)")
        }) && s["decision"]["reasons"].to_string().contains("furthest along: pg2")
    })
    .await;
    assert_eq!(stamp_of(&cluster, "promote", "pg2"), None, "{}", tail(&pg2.log(), 40));
    assert!(cluster.in_recovery("pg2").await.expect("pg2"));
}

/// Issue 18 (found by the simulator): a restarted daemon keeps the lease it had. pg1 alone with
/// its daemon and one real observer, plus two configured observers that never answer (voters
/// obs, o2, o3 and pg1's own view: the lease needs two). The daemon writes the lease's last
/// renewal to its state file; it is stopped with the observer, as if down for an hour while its
/// node was cut off (the renewal moved an hour back), and started again alone: it fences pg1
/// once its voters have had the startup window to answer (2 × (0.5 + 1 + 0.5) = 4 s), not a
/// whole `fence_timeout` (20 s) after its start, as it did when its lease began at its start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_daemon_counts_its_lease_from_the_state_file() {
    let cluster = lab_cluster(0).await;
    let dead = |_| format!("http://127.0.0.1:{}", free_port().expect("port"));
    let obs = spawn(&cluster, "obs", config(&cluster, "", json!({})));
    let mut c = config(&cluster, "pg1", json!({"obs": obs.url(), "o2": dead(2), "o3": dead(3)}));
    c["db_poll_timeout"] = json!(1.0);
    c["fence_timeout"] = json!(20.0);
    c["max_failover_replication_time_lag"] = json!(60.0);
    c["allow_fragile_lease"] = json!(true);
    let dir = cluster.dir();
    c["fence_command"] = json!(stamped(
        dir,
        "fence-pg1.sh",
        &stamp_path(dir, "fence", "pg1"),
        &cluster.fence_command("pg1").expect("fence")
    ));
    let mut pg1 = spawn(&cluster, "pg1", c);
    let renewed = |s: &Value| s["lease_renewed_at"].as_str().and_then(pglookout::state::parse_iso);
    let written = wait_for("the lease renewal in pg1's state file", DEADLINE, || async {
        Ok(pg1.state().as_ref().and_then(renewed))
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}", tail(&pg1.log(), 30)));
    let age = (chrono::Utc::now() - written).num_seconds();
    assert!((0..60).contains(&age), "renewed {age} s ago");
    let mut obs = obs;
    obs.stop(std::time::Duration::from_secs(10)).expect("stop obs");
    pg1.stop(std::time::Duration::from_secs(10)).expect("stop pg1's daemon");
    let mut state = pg1.state().expect("state file");
    let last = renewed(&state).expect("renewal");
    state["lease_renewed_at"] = json!((last - chrono::Duration::hours(1)).to_rfc3339());
    std::fs::write(&pg1.state_path, state.to_string()).expect("state file");
    pg1.restart(&bin()).expect("restart pg1's daemon");
    let fenced = wait_for("pg1 fenced", std::time::Duration::from_secs(15), || async {
        Ok(stamp_of(&cluster, "fence", "pg1"))
    })
    .await;
    assert!(
        fenced.is_ok(),
        "not fenced within 15 s of the restart\n{}",
        tail(&pg1.log(), 40)
    );
    assert!(
        pg1.log()
            .contains("the previous run last saw at least half of the voters vouch at"),
        "{}",
        tail(&pg1.log(), 40)
    );
    let stopped = wait_for("pg1 to stop answering", DEADLINE, || async {
        Ok(cluster.sql("pg1", "SELECT 1").await.is_err().then_some(()))
    })
    .await;
    assert!(
        stopped.is_ok(),
        "pg1 still answers its clients\n{}",
        tail(&pg1.log(), 40)
    );
}
