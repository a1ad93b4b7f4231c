//! The daemon never runs half-alive: crashed tasks (injected with the debug builds'
//! `PGLOOKOUT_TEST_PANIC` fault points) are restarted or stop the daemon; a config read that
//! never answers does not stop decisions; a stop lets a running failover finish.

use super::harness::*;
use pglab::daemon::Daemon;
use pglab::Cluster;
use serde_json::{json, Value};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

fn spawn_env(cluster: &Cluster, name: &str, config: Value, panic_at: &str) -> Daemon {
    Daemon::spawn_with_env(
        &bin(),
        name,
        cluster.dir(),
        config,
        &[("PGLOOKOUT_TEST_PANIC", panic_at)],
    )
    .expect("spawn daemon")
}

async fn wait_exit(d: &mut Daemon, what: &str) -> std::process::ExitStatus {
    let cell = std::cell::RefCell::new(d);
    let result = pglab::wait_for(what, DEADLINE, || async { Ok(cell.borrow_mut().try_exit()) }).await;
    let d = cell.into_inner();
    match result {
        Ok(status) => status,
        Err(e) => panic!("{e:#}\nlog tail:\n{}", tail(&d.log(), 40)),
    }
}

async fn metrics(d: &Daemon) -> String {
    d.http("GET", "/metrics")
        .await
        .map(|(_, body)| body)
        .unwrap_or_default()
}

fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("script");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_poll_worker_is_restarted_and_counted() {
    let cluster = lab_cluster(1).await;
    let d = spawn_env(&cluster, "pg2", config(&cluster, "pg2", json!({})), "poll-worker:pg1");
    wait_log(&d, "the injected panic and the restart", |log| {
        log.contains("injected panic at poll-worker:pg1") && log.contains("task poll worker for node pg1 crashed")
    })
    .await;
    // pg1 is polled again after the restart: a fetch newer than the restart, connected
    let restarted_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    wait_state(&d, "pg1 polled again after the restart", |s| {
        connected(s, "pg1")
            && node(s, "pg1")["fetch_time"]
                .as_str()
                .is_some_and(|t| t > restarted_at.as_str())
    })
    .await;
    let m = metrics(&d).await;
    assert!(
        m.contains("pglookout_task_crashes_total{task=\"poll worker for node pg1\"} 1\n"),
        "{m}"
    );
    assert_eq!(d.http("GET", "/health").await.expect("health").0, 200);
}

/// The poller's aggregator and the decision loop are not restarted in place: the daemon exits
/// non-zero and systemd (`Restart=always`) starts it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_poller_or_decision_loop_stops_the_daemon() {
    let cluster = lab_cluster(0).await;
    for (site, says) in [
        ("poll-aggregator", "the poller stopped unexpectedly"),
        ("decision-loop", "injected panic at decision-loop"),
    ] {
        let mut d = spawn_env(&cluster, site, config(&cluster, "pg1", json!({})), site);
        let status = wait_exit(&mut d, &format!("the daemon to exit after a panic at {site}")).await;
        assert!(!status.success(), "{site}: {status:?}");
        let log = d.log();
        assert!(log.contains(says), "{site}: {}", tail(&log, 20));
    }
}

/// A standby daemon (no observer) set to fail over five seconds after the primary is gone.
fn failover_config(cluster: &Cluster, command: &Path) -> Value {
    let mut c = config(cluster, "pg2", json!({}));
    c["max_failover_replication_time_lag"] = json!(5.0);
    c["missing_master_from_config_timeout"] = json!(1.0);
    c["failover_command"] = json!(command);
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_failover_task_is_a_failed_attempt_and_is_retried() {
    let cluster = lab_cluster(1).await;
    let runs = cluster.dir().join("failover-runs");
    let promote = cluster.promote_command("pg2").expect("promote command");
    let cmd = script(
        cluster.dir(),
        "failover.sh",
        &format!("echo run >> {}\nexec {promote}", runs.display()),
    );
    let d = spawn_env(&cluster, "pg2", failover_config(&cluster, &cmd), "failover-task");
    wait_state(&d, "pg2's daemon to see pg1 as the master", |s| {
        s["current_master"] == json!("pg1") && connected(s, "pg2")
    })
    .await;
    cluster.kill9("pg1").expect("kill pg1");
    wait_log(&d, "the failover task to crash", |log| {
        log.contains("task failover_command crashed")
    })
    .await;
    // "running" was cleared: after the backoff the command runs, and promotes pg2
    pglab::wait_for("pg2 to be promoted by the retry", DEADLINE, || async {
        Ok(!cluster.in_recovery("pg2").await?)
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}", tail(&d.log(), 40)));
    let ran = std::fs::read_to_string(&runs).unwrap_or_default();
    assert_eq!(ran.lines().count(), 1, "the crashed attempt never ran the command");
    let m = metrics(&d).await;
    assert!(
        m.contains("pglookout_task_crashes_total{task=\"failover_command\"} 1\n"),
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_lets_a_running_failover_finish() {
    let cluster = lab_cluster(1).await;
    let dir = cluster.dir();
    let (started, go, done) = (dir.join("started"), dir.join("go"), dir.join("done"));
    let promote = cluster.promote_command("pg2").expect("promote command");
    let cmd = script(
        dir,
        "slow-failover.sh",
        &format!(
            "touch {s}\nn=0\nwhile [ ! -e {g} ] && [ $n -lt 600 ]; do sleep 0.1; n=$((n+1)); done\n{promote} && touch {d}",
            s = started.display(),
            g = go.display(),
            d = done.display()
        ),
    );
    let mut d = spawn(&cluster, "pg2", failover_config(&cluster, &cmd));
    wait_state(&d, "pg2's daemon to see pg1 as the master", |s| {
        s["current_master"] == json!("pg1") && connected(s, "pg2")
    })
    .await;
    cluster.kill9("pg1").expect("kill pg1");
    pglab::wait_for("the failover command to start", DEADLINE, || async {
        Ok(started.exists())
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}", tail(&d.log(), 40)));
    d.signal(nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
    wait_log(&d, "the daemon to wait for the failover", |log| {
        log.contains("waiting up to 125 s for the running failover_command to finish")
    })
    .await;
    // the daemon waits for the command, which waits for us: it has not exited
    assert!(d.try_exit().is_none(), "{}", tail(&d.log(), 20));
    assert_eq!(d.http("GET", "/liveness").await.map(|r| r.0).ok(), Some(200));
    std::fs::write(&go, "").expect("go");
    let status = wait_exit(&mut d, "the daemon to stop once the failover finished").await;
    assert!(status.success(), "{status:?}");
    assert!(done.exists(), "the failover command finished");
    assert!(!cluster.in_recovery("pg2").await.expect("pg2"), "pg2 was promoted");
    let log = d.log();
    let finished = log
        .find("failover_command exited with status 0")
        .expect("command result logged");
    let waited = log.find("waiting up to").expect("wait logged");
    assert!(waited < finished, "{}", tail(&log, 20));
}

/// A config path that never answers (a FIFO nobody writes) used to freeze the decision loop
/// on SIGHUP: no decisions, no state file, SIGTERM ignored, while `/liveness` said 200. Then the
/// read ran off the loop and timed out after 10 s, one stuck reader thread per SIGHUP. Now a
/// config that is not a regular file is refused at once (issue 19, item 7; a read that hangs on
/// a regular file, a hung mount, still times out: `daemon::tests::a_reload_that_times_out_is_a_failure_with_a_reason`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_that_never_answers_does_not_stop_the_daemon() {
    let cluster = lab_cluster(1).await;
    let mut d = spawn(&cluster, "pg2", config(&cluster, "pg2", json!({})));
    wait_state(&d, "a first decision", |s| s["decision"]["summary"].is_string()).await;
    std::fs::remove_file(&d.config_path).expect("rm config");
    nix::unistd::mkfifo(&d.config_path, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("mkfifo");
    let refusals = |log: &str| log.matches("not a regular file but a FIFO").count();
    for n in 1..=2 {
        d.signal(nix::sys::signal::Signal::SIGHUP).expect("SIGHUP");
        wait_log(&d, "the reload to be refused, keeping the running config", |log| {
            refusals(log) >= n && log.contains("config reload failed, keeping the running config")
        })
        .await;
    }
    // decisions go on: fresh polls of pg1 keep reaching the state file
    let after = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    wait_state(&d, "the state file to move on after the refused reloads", |s| {
        node(s, "pg1")["fetch_time"]
            .as_str()
            .is_some_and(|t| t > after.as_str())
    })
    .await;
    assert_eq!(d.http("GET", "/liveness").await.map(|r| r.0).ok(), Some(200));
    d.signal(nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
    let status = wait_exit(&mut d, "SIGTERM to stop the daemon").await;
    assert!(status.success(), "{status:?}");
}
