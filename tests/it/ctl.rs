//! `pglookout-ctl` (and `pglookout_current_master`'s usage) against daemons that need no
//! PostgreSQL: where a `status` came from and how old it is, what a failed request failed on,
//! a missing event file, and names from a hostile observer (not re-served, never printed raw).

use super::harness::*;
use super::secure_api::make_certs;
use pglab::daemon::Daemon;
use serde_json::{json, Value};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

fn ctl(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_pglookout-ctl"))
        .args(args)
        .output()
        .expect("pglookout-ctl");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// A daemon with one node that never answers (port 1): it polls, serves and writes its state.
fn lone_daemon(dir: &std::path::Path, name: &str, extra: Value) -> Daemon {
    let mut config = json!({
        "remote_conns": {"gone": "host=127.0.0.1 port=1 user=x connect_timeout=2"},
        "db_poll_interval": 0.5,
        "replication_state_check_interval": 0.5,
    });
    if let (Some(c), Some(e)) = (config.as_object_mut(), extra.as_object()) {
        c.extend(e.clone());
    }
    Daemon::spawn(&bin(), name, dir, config).expect("spawn")
}

fn set_mtime(path: &std::path::Path, t: SystemTime) {
    std::fs::File::options()
        .write(true)
        .open(path)
        .expect("open")
        .set_modified(t)
        .expect("mtime");
}

/// Item 4 of issue 19: with the daemon stopped, `status --config` read its state file silently
/// and showed an 8-minute-old state as "CONNECTED yes" with exit 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_of_a_dead_daemon_says_where_the_state_came_from_and_fails_when_it_is_stale() {
    let dir = tempfile::tempdir().expect("dir");
    let mut d = lone_daemon(dir.path(), "dead", json!({}));
    wait_state(&d, "a state file", |s| s["db_nodes"]["gone"].is_object()).await;
    let config = d.config_path.display().to_string();
    let state = d.state_path.display().to_string();
    let (code, out, err) = ctl(&["status", "--config", &config]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.starts_with(&format!("SOURCE          {}", d.url())), "{out}");
    d.stop(Duration::from_secs(10)).expect("stop");

    // just written: shown, with where it came from and why the API was not used
    let (code, out, err) = ctl(&["status", "--config", &config]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(
        err.contains("the API did not answer")
            && err.contains("connection refused")
            && err.contains(&format!("showing the state file {state}")),
        "{err}"
    );
    assert!(
        out.starts_with(&format!("SOURCE          state file {state}, written")),
        "{out}"
    );
    assert!(!out.contains("STALE"), "{out}");

    // eight minutes old: marked before and after the table, and exit 1
    set_mtime(&d.state_path, SystemTime::now() - Duration::from_secs(480));
    let (code, out, err) = ctl(&["status", "--config", &config]);
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(out.lines().nth(1).is_some_and(|l| l.starts_with("STALE")), "{out}");
    assert!(
        out.trim_end().lines().last().is_some_and(|l| l.starts_with("STALE")),
        "{out}"
    );
    assert!(
        err.contains("is STALE: written") && err.contains("more than 60 s ago"),
        "{err}"
    );
    // the same file named directly, and as JSON
    let (code, out, _) = ctl(&["status", "--state-file", &state]);
    assert_eq!(code, Some(1));
    assert!(out.contains("STALE"), "{out}");
    let (code, out, _) = ctl(&["status", "--state-file", &state, "--json"]);
    assert_eq!(code, Some(1));
    assert!(serde_json::from_str::<Value>(&out).is_ok(), "{out}");
}

/// Item 4: a TLS verification failure was hidden by the same fallback, and errors said "error
/// sending request" or "builder error" instead of what failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_errors_say_what_failed_and_a_tls_failure_is_not_hidden() {
    let dir = tempfile::tempdir().expect("dir");
    make_certs(dir.path());
    let d = lone_daemon(
        dir.path(),
        "tls",
        json!({
            "http_tls_cert": dir.path().join("server.pem"),
            "http_tls_key": dir.path().join("server.key"),
        }),
    );
    wait_state(&d, "a state file", |s| s["db_nodes"]["gone"].is_object()).await;
    let config = d.config_path.display().to_string();
    let ca = dir.path().join("ca.pem").display().to_string();
    pglab::wait_for("the HTTPS API answers", DEADLINE, || async {
        Ok(ctl(&["check", "--config", &config, "--ca-file", &ca]).0 == Some(0))
    })
    .await
    .expect("up");

    // without the CA: the API is not trusted; the state file is shown, and why
    let (code, out, err) = ctl(&["status", "--config", &config]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(
        err.contains("the API did not answer") && err.contains("TLS failure"),
        "{err}"
    );
    assert!(err.contains("certificate verify failed"), "{err}");
    assert!(out.starts_with("SOURCE          state file"), "{out}");
    let (code, _, err) = ctl(&["check", "--config", &config]);
    assert_eq!(code, Some(1));
    assert!(err.contains("/check: TLS failure"), "{err}");
    // with it: the live answer
    let (code, out, err) = ctl(&["status", "--config", &config, "--ca-file", &ca]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.starts_with(&format!("SOURCE          https://127.0.0.1:{}", d.http_port)),
        "{out}"
    );
    assert!(err.is_empty(), "{err}");

    for (args, what) in [
        (
            vec!["check", "--url", "http://127.0.0.1:1"],
            "/check: connection refused",
        ),
        (
            vec!["status", "--url", "http://127.0.0.1:1"],
            "/status: connection refused",
        ),
        (
            vec!["status", "--url", "localhost:15000"],
            "bad URL \"localhost:15000\"",
        ),
        (vec!["check", "--url", "http//127.0.0.1:15000"], "bad URL"),
        (
            vec!["status", "--url", "http://no-such-host.invalid:15000"],
            "cannot resolve the host name",
        ),
    ] {
        let (code, _, err) = ctl(&args);
        assert_eq!(code, Some(1), "{args:?}: {err}");
        assert!(err.contains(what), "{args:?}: {err}");
        assert!(
            !err.contains("error sending request") && !err.contains("builder error"),
            "{args:?}: {err}"
        );
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
    }
}

/// Item 12: a mistyped event file printed an empty table and exited 0.
#[test]
fn history_of_a_missing_event_file_is_an_error_naming_it() {
    let (code, out, err) = ctl(&["history", "--events-file", "/nonexistent"]);
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(out.is_empty(), "{out}");
    assert!(err.contains("/nonexistent") && err.contains("No such file"), "{err}");

    // an existing file (or only its rotated predecessor) is read
    let dir = tempfile::tempdir().expect("dir");
    let events = dir.path().join("events.jsonl");
    let line = r#"{"time":"2024-01-01T00:00:00.000000Z","node":"pg1","kind":"daemon_start"}"#;
    std::fs::write(dir.path().join("events.jsonl.1"), format!("{line}\n")).expect("w");
    let (code, out, err) = ctl(&["history", "--events-file", &events.display().to_string()]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("daemon_start"), "{out}");
}

/// A fake observer: answers every request with `body` as `/state.json` and counts them.
async fn fake_observer(body: String) -> (String, Arc<AtomicUsize>, tokio::task::JoinHandle<()>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let served = Arc::new(AtomicUsize::new(0));
    let count = served.clone();
    let task = tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let body = body.clone();
            let count = count.clone();
            tokio::spawn(async move {
                let mut req = Vec::new();
                let mut buf = [0u8; 1024];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = conn.write_all(head.as_bytes()).await;
                let _ = conn.write_all(body.as_bytes()).await;
                count.fetch_add(1, Ordering::SeqCst);
            });
        }
    });
    (url, served, task)
}

/// Item 8 of issue 19: names with a newline and escape sequences from an observer were
/// re-served in `observer_nodes` and printed raw by `pglookout-ctl status`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_from_an_observer_outside_our_config_are_not_served_or_printed_raw() {
    let forged = "pg9\n2026-01-01T00:00:00.000Z\tpglookout\tERROR\tforged \u{1b}[31mred\u{1b}]0;owned\u{7}";
    let now = pglookout::state::iso(&chrono::Utc::now());
    let entry = json!({"fetch_time": now, "connection": true, "pg_is_in_recovery": false, "db_time": now});
    let body = json!({"gone": entry, forged: entry, "other-cluster-node": entry}).to_string();
    let (url, served, server) = fake_observer(body).await;
    let dir = tempfile::tempdir().expect("dir");
    let d = lone_daemon(dir.path(), "watched", json!({"observers": {"obs": url}}));
    // five fetches at least: what is served and logged is not per poll
    pglab::wait_for("five observer fetches", DEADLINE, || async {
        Ok(served.load(Ordering::SeqCst) >= 5)
    })
    .await
    .expect("fetched");
    let state = wait_state(&d, "the observer's report", |s| {
        s["observer_nodes"]["obs"]["gone"].is_object()
    })
    .await;
    let obs = state["observer_nodes"]["obs"].as_object().expect("obs");
    let mut keys: Vec<&str> = obs.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["connection", "fetch_time", "gone"], "{state}");
    let (code, body) = d.http("GET", "/status").await.expect("GET /status");
    assert_eq!(code, 200);
    assert!(!body.contains("pg9") && !body.contains("other-cluster-node"), "{body}");

    wait_log(&d, "the ignored names logged", |l| l.contains("ignoring 2 node(s)")).await;
    let log = d.log();
    assert_eq!(
        log.matches("ignoring 2 node(s)").count(),
        1,
        "once, not per poll:\n{log}"
    );
    assert!(!log.contains('\u{1b}') && !log.contains("\nforged"), "{log}");
    assert!(log.lines().all(|l| !l.starts_with("2026-01-01T00:00:00.000Z")), "{log}");

    // a state file written by a daemon that served them (ours before the fix, or another):
    // printed with the control characters escaped
    let mut doc = state.clone();
    doc["observer_nodes"]["obs"][forged] = entry.clone();
    doc["db_nodes"][forged] = entry.clone();
    doc["current_master"] = json!(forged);
    let file = dir.path().join("forged-state.json");
    std::fs::write(&file, doc.to_string()).expect("w");
    let (code, out, err) = ctl(&["status", "--state-file", &file.display().to_string()]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        !out.contains('\u{1b}') && !out.contains('\u{7}') && !out.contains('\t'),
        "{out:?}"
    );
    assert!(out.lines().all(|l| !l.starts_with("2026-01-01")), "{out}");
    assert!(out.contains("pg9\\n2026-01-01T00:00:00.000Z\\tpglookout"), "{out}");
    server.abort();
}
