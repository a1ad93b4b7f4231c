//! Shared helpers: building daemon configs for a lab cluster and waiting on daemon state.

use pglab::daemon::Daemon;
use pglab::Cluster;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::Duration;

pub const DEADLINE: Duration = Duration::from_secs(60);

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_pglookout"))
}

pub fn current_master_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_pglookout_current_master"))
}

/// A lab cluster: a primary and `standbys` streaming standbys.
pub async fn lab_cluster(standbys: usize) -> Cluster {
    Cluster::start(pglab::ClusterSpec {
        standbys,
        ..Default::default()
    })
    .await
    .expect("cluster")
}

/// `remote_conns` for every node of the cluster (monitoring role, password auth).
pub fn remote_conns(cluster: &Cluster) -> Value {
    let mut m = serde_json::Map::new();
    for n in cluster.nodes() {
        m.insert(n.name.clone(), json!(cluster.monitor_conninfo(&n.name)));
    }
    Value::Object(m)
}

/// A config for a daemon beside `own_db` ("" for an observer), polling fast.
pub fn config(cluster: &Cluster, own_db: &str, observers: Value) -> Value {
    json!({
        "remote_conns": remote_conns(cluster),
        "own_db": own_db,
        "observers": observers,
        "db_poll_interval": 0.5,
        "replication_state_check_interval": 0.5,
        "log_level": "DEBUG",
        "failover_command": "/bin/false",
        "maintenance_mode_file": cluster.dir().join("maintenance").display().to_string(),
    })
}

pub fn spawn(cluster: &Cluster, name: &str, config: Value) -> Daemon {
    Daemon::spawn(&bin(), name, cluster.dir(), config).expect("spawn daemon")
}

/// Waits until the daemon's state file satisfies `pred`; the error shows the last state and log.
pub async fn wait_state(d: &Daemon, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let result = pglab::wait_for(what, DEADLINE, || async { Ok(d.state().filter(|s| pred(s))) }).await;
    match result {
        Ok(v) => v,
        Err(e) => panic!(
            "{e:#}\nlast state: {}\nlog tail:\n{}",
            d.state().map(|s| s.to_string()).unwrap_or_default(),
            tail(&d.log(), 40)
        ),
    }
}

/// Waits until `d`'s log satisfies `pred`; the error shows the log. Log lines are written by
/// the daemon's own writer thread, after the state, answers and commands they describe may
/// already be visible: a test that checks a line waits for it.
pub async fn wait_log(d: &Daemon, what: &str, pred: impl Fn(&str) -> bool) {
    if let Err(e) = pglab::wait_for(what, DEADLINE, || async { Ok(pred(&d.log())) }).await {
        panic!("{e:#}\nlog tail:\n{}", tail(&d.log(), 40));
    }
}

pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The last `n` lines of a daemon's log above DEBUG (its decisions with their reasons, commands,
/// history), which a failure message needs more than the HTTP and poll chatter.
pub fn story(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.contains("\tDEBUG\t")).collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

pub fn node<'a>(state: &'a Value, name: &str) -> &'a Value {
    &state["db_nodes"][name]
}

pub fn connected(state: &Value, name: &str) -> bool {
    node(state, name)["connection"] == json!(true)
}

/// Waits until `d`'s API answers `GET /liveness` (any status), or fails with its log tail.
pub async fn wait_api(d: &Daemon) {
    pglab::wait_for("the API answers", DEADLINE, || async {
        Ok(pglab::daemon::http_request(d.http_port, "GET", "/liveness")
            .await
            .is_ok())
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#}\nlog tail:\n{}", tail(&d.log(), 30)));
}
