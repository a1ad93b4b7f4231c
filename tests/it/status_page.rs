//! The status page at `GET /`, rendered by headless Chromium: against a live lab cluster with
//! daemons and an observer, and against a stand-in server that serves a Python original's
//! document (no `observer_nodes`, no `decision`) and then fails.
//!
//! The lag chart: a line per standby that rises while its replay is paused, and a failover
//! mark after a real failover.
//!
//! `PGLOOKOUT_SCREENSHOT=docs/status-page.png` also copies the screenshot of the page after
//! that failover there (the README's picture).

use super::harness::*;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMIUM_DEADLINE: Duration = Duration::from_secs(60);
const PAGE: &str = include_str!("../../src/status_page.html");

/// Runs headless Chromium on `url` with `extra` flags (a fresh profile each time, killed after
/// 60 s) and returns its stdout.
fn chromium(url: &str, extra: &[String]) -> String {
    assert!(
        Path::new(CHROMIUM).is_file(),
        "{CHROMIUM} is missing: run scripts/deps.sh (Debian package `chromium`)"
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let out_path = dir.path().join("stdout");
    let err_path = dir.path().join("stderr");
    let mut child = Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
        ])
        .arg(format!("--user-data-dir={}", dir.path().join("profile").display()))
        .args(extra)
        .arg(url)
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).expect("stdout file"))
        .stderr(std::fs::File::create(&err_path).expect("stderr file"))
        .spawn()
        .expect("start chromium");
    let end = Instant::now() + CHROMIUM_DEADLINE;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for chromium") {
            break status;
        }
        if Instant::now() >= end {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "chromium did not finish within {CHROMIUM_DEADLINE:?}; stderr:\n{}",
                tail(&std::fs::read_to_string(&err_path).unwrap_or_default(), 30)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stdout = std::fs::read_to_string(&out_path).unwrap_or_default();
    assert!(
        status.success(),
        "chromium failed ({status}); stderr:\n{}",
        tail(&std::fs::read_to_string(&err_path).unwrap_or_default(), 30)
    );
    stdout
}

/// The page's DOM after its scripts ran, without the script itself (so that only rendered
/// text can match).
async fn dump_dom(url: &str) -> String {
    let url = url.to_string();
    let flags = ["--dump-dom".to_string(), "--virtual-time-budget=5000".to_string()];
    let dom = tokio::task::spawn_blocking(move || chromium(&url, &flags))
        .await
        .expect("chromium task");
    match dom.split_once("<script>") {
        Some((rendered, _)) => rendered.to_string(),
        None => panic!("no <script> in the dumped page:\n{dom}"),
    }
}

const NO_ERROR: &str = r#"<div id="error" class="banner" hidden=""></div>"#;

async fn screenshot(url: &str, path: &Path) {
    let (url, flags) = (
        url.to_string(),
        vec![
            format!("--screenshot={}", path.display()),
            "--window-size=1200,900".to_string(),
            // one fetch and render; a longer budget only ages the "last seen" columns
            "--virtual-time-budget=1000".to_string(),
            "--hide-scrollbars".to_string(),
        ],
    );
    tokio::task::spawn_blocking(move || chromium(&url, &flags))
        .await
        .expect("chromium task");
}

/// How a text appears in serialized HTML.
fn html_escaped(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

fn assert_png(path: &Path) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(bytes.len() > 1000, "{}: only {} bytes", path.display(), bytes.len());
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "{}: not a PNG", path.display());
}

/// A raw HTTP/1.0 request: (status line and headers, body).
fn raw_http(port: u16, method: &str, path: &str) -> (String, String) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    write!(s, "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").expect("write");
    let mut buf = String::new();
    s.read_to_string(&mut buf).expect("read");
    let (head, body) = buf.split_once("\r\n\r\n").unwrap_or((&buf, ""));
    (head.to_ascii_lowercase(), body.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_renders_the_status_page_of_a_lab_cluster() {
    let cluster = lab_cluster(2).await;
    let obs = spawn(&cluster, "obs", config(&cluster, "", json!({})));
    let observers = json!({ "obs": obs.url() });
    let _d1 = spawn(&cluster, "pg1", config(&cluster, "pg1", observers.clone()));
    let d2 = spawn(&cluster, "pg2", config(&cluster, "pg2", observers.clone()));
    let _d3 = spawn(&cluster, "pg3", config(&cluster, "pg3", observers.clone()));

    let settled = |s: &Value| {
        s["current_master"] == json!("pg1")
            && ["pg1", "pg2", "pg3"].iter().all(|n| connected(s, n))
            && ["pg2", "pg3"]
                .iter()
                .all(|n| node(s, n)["replication_time_lag"].is_number())
            && s["observer_nodes"]["obs"]["connection"] == json!(true)
            && ["pg1", "pg2", "pg3"]
                .iter()
                .all(|n| s["observer_nodes"]["obs"][n]["connection"] == json!(true))
            && s["decision"]["summary"].is_string()
    };
    let before = wait_state(&d2, "pg2 sees the cluster, the observer and a decision", settled).await;

    // The route itself: the page, as HTML, for GET and HEAD.
    let port = d2.http_port;
    let (head, body) = tokio::task::spawn_blocking(move || raw_http(port, "GET", "/"))
        .await
        .expect("GET /");
    assert!(
        head.starts_with("http/1.0 200") || head.starts_with("http/1.1 200"),
        "{head}"
    );
    assert!(head.contains("content-type: text/html; charset=utf-8"), "{head}");
    assert_eq!(body, PAGE);
    let (head, body) = tokio::task::spawn_blocking(move || raw_http(port, "HEAD", "/"))
        .await
        .expect("HEAD /");
    assert!(head.contains(" 200"), "{head}");
    assert!(body.is_empty(), "HEAD has no body");

    let url = format!("http://127.0.0.1:{port}/");
    let dom = dump_dom(&url).await;
    let after = d2.state().unwrap_or_default();
    for text in [
        "pg1",
        "pg2",
        "pg3",
        ">primary<",
        ">standby<",
        r#"id="current-master" class="">pg1<"#,
        ">obs<",
        "● reached",
    ] {
        assert!(dom.contains(text), "{text:?} not in the rendered page:\n{dom}");
    }
    // Both standbys and the primary, in the nodes table and in the observer's view.
    assert_eq!(dom.matches(">standby<").count(), 4, "{dom}");
    assert_eq!(dom.matches(">primary<").count(), 2, "{dom}");
    assert!(dom.contains(NO_ERROR), "an error banner:\n{dom}");
    let summaries: Vec<String> = [&before, &after]
        .iter()
        .filter_map(|s| s["decision"]["summary"].as_str())
        .map(html_escaped)
        .collect();
    assert!(
        summaries.iter().any(|s| dom.contains(s.as_str())),
        "none of the decision summaries {summaries:?} in the rendered page:\n{dom}"
    );

    let dir = tempfile::tempdir().expect("temp dir");
    let png = dir.path().join("status-page.png");
    screenshot(&url, &png).await;
    assert_png(&png);
}

/// The page's last plotted value of `node`'s line in the chart `chart` (`lag-seconds`,
/// `lag-bytes`), from its `data-last` attribute.
fn plotted(dom: &str, chart: &str, node: &str) -> Option<f64> {
    let svg = &dom[dom.find(&format!(r#"id="{chart}""#))?..];
    let svg = &svg[..svg.find("</svg>")?];
    let line = &svg[svg.find(&format!(r#"class="line" data-node="{node}" data-last=""#))?..];
    line.split("data-last=\"").nth(1)?.split('"').next()?.parse().ok()
}

/// Renders the page until `pred` holds for its DOM (each render is a fresh Chromium run), or
/// fails after [`DEADLINE`] with the last DOM.
/// How many points the page's last incremental fetch of the series (`?since=`) added; `None`
/// while it has not made one. (Often 0: under Chromium's virtual clock, two ticks of the page
/// can be milliseconds of real time apart. That the endpoint hands out the later points is
/// checked over HTTP.)
fn added_points(dom: &str) -> Option<u64> {
    let rest = dom
        .split_once(r#"<section id="series" data-fetch="since" data-added=""#)?
        .1;
    rest.split_once('"')?.0.parse().ok()
}

async fn wait_dom(url: &str, what: &str, pred: impl Fn(&str) -> bool) -> String {
    let end = Instant::now() + DEADLINE;
    loop {
        let dom = dump_dom(url).await;
        if pred(&dom) {
            return dom;
        }
        assert!(
            Instant::now() < end,
            "{what}: not within {DEADLINE:?}; last page:\n{dom}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lag_chart_rises_for_a_standby_whose_replay_is_paused_and_marks_a_failover() {
    let cluster = lab_cluster(2).await;
    let mut daemons = std::collections::BTreeMap::new();
    for name in ["pg1", "pg2", "pg3"] {
        let mut c = config(&cluster, name, json!({}));
        c["warning_replication_time_lag"] = json!(3.0);
        c["max_failover_replication_time_lag"] = json!(10.0);
        c["missing_master_from_config_timeout"] = json!(1.0);
        c["failover_command"] = json!(cluster.promote_command(name).expect("promote command"));
        daemons.insert(name, spawn(&cluster, name, c));
    }
    let d1 = &daemons["pg1"];
    wait_state(d1, "pg1's daemon to see both standbys' lag", |s| {
        s["current_master"] == json!("pg1")
            && ["pg2", "pg3"]
                .iter()
                .all(|n| node(s, n)["replication_time_lag"].is_number())
    })
    .await;

    // The route: every node, columns of equal length; a bad query is a 400, an unknown node a 404.
    let (code, body) = d1.http("GET", "/series").await.expect("GET /series");
    assert_eq!(code, 200, "{body}");
    let series: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(
        (series["warning_limit"].clone(), series["failover_limit"].clone()),
        (json!(3.0), json!(10.0))
    );
    for n in ["pg1", "pg2", "pg3"] {
        let columns = &series["nodes"][n];
        let len = columns["t"].as_array().map(Vec::len).unwrap_or_default();
        assert!(len > 0, "{n}: {series}");
        for c in ["lag_seconds", "lag_bytes", "position"] {
            assert_eq!(columns[c].as_array().map(Vec::len), Some(len), "{n} {c}: {series}");
        }
    }
    assert!(series["nodes"]["pg2"]["lag_bytes"]
        .as_array()
        .is_some_and(|v| v.iter().any(Value::is_u64)));
    // `?since=` its `now`: the points recorded at or after that answer, and only those.
    let now = series["now"].as_f64().expect("now");
    let later = pglab::wait_for("points after the first answer", DEADLINE, || async {
        let (code, body) = d1.http("GET", &format!("/series?since={now}")).await?;
        anyhow::ensure!(code == 200, "{code} {body}");
        let v: Value = serde_json::from_str(&body)?;
        let t = v["nodes"]["pg2"]["t"].as_array().cloned().unwrap_or_default();
        Ok((!t.is_empty()).then_some(t))
    })
    .await
    .expect("GET /series?since=");
    assert!(
        later.iter().all(|t| t.as_f64().is_some_and(|t| t >= now)),
        "{later:?} before {now}"
    );
    let (code, body) = d1.http("GET", "/series?since=yesterday").await.expect("GET");
    assert!(code == 400 && body.contains("since"), "{code} {body}");
    let (code, body) = d1.http("GET", "/series?node=pg9").await.expect("GET");
    assert!(code == 404 && body.contains("pg9"), "{code} {body}");

    // The page: a line per standby, none for the primary, still there once the page asks only
    // for the points after its last answer (a dump lets it tick for 5 s of virtual time).
    let url = format!("http://127.0.0.1:{}/", d1.http_port);
    let dom = wait_dom(&url, "a lag line for pg2 and pg3 after an incremental fetch", |dom| {
        added_points(dom).is_some()
            && ["pg2", "pg3"]
                .iter()
                .all(|n| plotted(dom, "lag-seconds", n).is_some() && plotted(dom, "lag-bytes", n).is_some())
    })
    .await;
    assert!(
        plotted(&dom, "lag-seconds", "pg1").is_none(),
        "the primary has no lag line:\n{dom}"
    );

    // Replay paused on pg3 while pg1 takes writes: pg3's line rises, pg2's stays low.
    cluster.pause_replay("pg3").await.expect("pause");
    cluster.write_load(2000).await.expect("write");
    let dom = wait_dom(&url, "pg3's plotted lag to rise while pg2's stays low", |dom| {
        let lag = |n| plotted(dom, "lag-seconds", n).unwrap_or(f64::NAN);
        let bytes = |n| plotted(dom, "lag-bytes", n).unwrap_or(f64::NAN);
        lag("pg3") >= 4.0 && lag("pg2") < 2.0 && bytes("pg3") > bytes("pg2")
    })
    .await;
    // the warning limit (3 s) is now within the chart, a line
    assert!(dom.contains(r#"class="limit" data-limit="warning""#), "{dom}");
    cluster.resume_replay("pg3").await.expect("resume");

    // A real failover: the new master's page shows the failover as a mark.
    cluster.kill9("pg1").expect("kill pg1");
    let after = wait_state(&daemons["pg2"], "a standby promoted", |s| {
        s["current_master"] == json!("pg2") || s["current_master"] == json!("pg3")
    })
    .await;
    let winner = after["current_master"].as_str().unwrap_or_default().to_string();
    let d = &daemons[winner.as_str()];
    let url = format!("http://127.0.0.1:{}/", d.http_port);
    let mark = format!(r#"class="mark" data-kind="failover" data-node="{winner}""#);
    wait_dom(&url, "the failover mark on the new master's page", |dom| {
        dom.contains(&mark)
    })
    .await;

    let dir = tempfile::tempdir().expect("temp dir");
    let png = dir.path().join("status-page.png");
    screenshot(&url, &png).await;
    assert_png(&png);
    if let Some(target) = std::env::var_os("PGLOOKOUT_SCREENSHOT") {
        let target = PathBuf::from(target);
        let target = if target.is_relative() {
            Path::new(env!("CARGO_MANIFEST_DIR")).join(target)
        } else {
            target
        };
        std::fs::copy(&png, &target).unwrap_or_else(|e| panic!("copy to {}: {e}", target.display()));
    }
}

/// A stand-in daemon on a thread: `/` is the page, `/status` is `status` (or HTTP 500 once
/// `failing` is set).
struct StandIn {
    port: u16,
    failing: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
}

impl StandIn {
    fn start(status: Value) -> StandIn {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("addr").port();
        let failing = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let (f, s) = (failing.clone(), stop.clone());
        std::thread::spawn(move || {
            let body = serde_json::to_string(&status).expect("json");
            while !s.load(Ordering::Relaxed) {
                let Ok((mut conn, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                };
                let _ = conn.set_nonblocking(false);
                let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
                let mut req = Vec::new();
                let mut buf = [0u8; 4096];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                let req = String::from_utf8_lossy(&req).to_string();
                let path = req.split_whitespace().nth(1).unwrap_or("");
                let (code, ctype, text) = match path {
                    "/" => ("200 OK", "text/html; charset=utf-8", PAGE.to_string()),
                    "/status" if f.load(Ordering::Relaxed) => {
                        ("500 Internal Server Error", "text/plain", "boom".to_string())
                    }
                    "/status" => ("200 OK", "application/json", body.clone()),
                    _ => ("404 Not Found", "text/plain", "not found".to_string()),
                };
                let _ = write!(
                    conn,
                    "HTTP/1.1 {code}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
                    text.len()
                );
            }
        });
        StandIn { port, failing, stop }
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_renders_an_original_document_and_shows_fetch_errors() {
    // The Python original's state file: nodes and the master only. Node names with markup
    // must come out as text.
    let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
    let doc = json!({
        "db_nodes": {
            "pg1": {"connection": true, "fetch_time": now, "pg_is_in_recovery": false,
                    "pg_last_xlog_receive_location": null, "pg_last_xlog_replay_location": "0/3000060",
                    "replication_time_lag": null},
            "<b>pg2</b>": {"connection": false, "fetch_time": now, "pg_is_in_recovery": true,
                    "pg_last_xlog_receive_location": "0/3000060", "pg_last_xlog_replay_location": "0/3000060",
                    "replication_time_lag": 1.5},
        },
        "current_master": "pg1",
    });
    let server = StandIn::start(doc);
    let url = format!("http://127.0.0.1:{}/", server.port);
    let dom = dump_dom(&url).await;
    for text in [
        ">pg1<",
        "&lt;b&gt;pg2&lt;/b&gt;",
        ">primary<",
        ">standby<",
        ">down<",
        r#"id="current-master" class="">pg1<"#,
        "1/2 nodes connected",
        "no observer views in this document",
        "no decision in this document",
        // no GET /series there: the charts stay hidden
        r#"<section id="series" hidden="">"#,
        // nor synchronous replication keys: that section too
        r#"<section id="sync" hidden="">"#,
    ] {
        assert!(dom.contains(text), "{text:?} not in the rendered page:\n{dom}");
    }
    assert!(!dom.contains("<b>pg2"), "markup from the document was parsed:\n{dom}");
    assert!(dom.contains(NO_ERROR), "an error banner:\n{dom}");

    server.failing.store(true, Ordering::Relaxed);
    let dom = dump_dom(&url).await;
    assert!(
        dom.contains("cannot fetch the state: GET status: HTTP 500"),
        "no error banner:\n{dom}"
    );
    assert!(!dom.contains(NO_ERROR), "{dom}");
    assert!(dom.contains(r#"<main id="main" class="stale">"#), "{dom}");
}

/// Issue 21: a primary's synchronous replication (ours) is shown, the synchronous standby
/// marked; names and settings from the document come out as text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_shows_which_standby_is_synchronous() {
    let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
    let sender = |app: &str, sync_state: &str, priority: u32| {
        json!({"application_name": app, "state": "streaming", "sync_state": sync_state,
               "sync_priority": priority, "sent_lsn": "0/3000148", "write_lsn": "0/3000148",
               "flush_lsn": "0/3000140", "replay_lsn": "0/3000110"})
    };
    let doc = json!({
        "db_nodes": {
            "pg1": {"connection": true, "fetch_time": now, "pg_is_in_recovery": false,
                    "pg_last_xlog_replay_location": "0/3000148",
                    "synchronous_standby_names": "FIRST 1 (pg2, <i>x</i>)", "synchronous_commit": "remote_apply",
                    "pg_stat_replication": [sender("pg2", "sync", 1), sender("pg3", "async", 0)]},
            "pg2": {"connection": true, "fetch_time": now, "pg_is_in_recovery": true,
                    "pg_last_xlog_replay_location": "0/3000110", "replication_time_lag": 0.1},
        },
        "current_master": "pg1",
    });
    let server = StandIn::start(doc);
    let dom = dump_dom(&format!("http://127.0.0.1:{}/", server.port)).await;
    let (_, section) = dom
        .split_once(r#"<section id="sync">"#)
        .unwrap_or_else(|| panic!("the section is hidden or missing:\n{dom}"));
    let section = section.split("</section>").next().unwrap_or_default();
    for text in [
        ">pg1<",
        "FIRST 1 (pg2, &lt;i&gt;x&lt;/i&gt;)",
        ">remote_apply<",
        r#"<td>pg2<span class="tag">★ synchronous</span></td>"#,
        r#"<td class="yes">sync</td>"#,
        r#"<td>pg3</td>"#,
        r#"<td class="dim">async</td>"#,
        ">0/3000140<",
    ] {
        assert!(section.contains(text), "{text:?} not in the section:\n{section}");
    }
    assert!(!section.contains("pg3<span"), "pg3 is not synchronous:\n{section}");
    assert!(dom.contains(NO_ERROR), "an error banner:\n{dom}");
}

/// Issue 22: a paused cluster (`pglookout-ctl pause`, the state document's `pause`) shows a
/// banner with the time it was paused, as text; none while not paused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_shows_a_paused_cluster() {
    let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
    let doc = |paused: bool, since: &str| {
        json!({
            "db_nodes": {
                "pg1": {"connection": true, "fetch_time": now, "pg_is_in_recovery": false,
                        "pg_last_xlog_replay_location": "0/3000148"},
            },
            "current_master": "pg1",
            "pause": {"paused": paused, "since": since},
        })
    };
    let server = StandIn::start(doc(true, "2026-12-06T12:00:00.000000Z<b>"));
    let dom = dump_dom(&format!("http://127.0.0.1:{}/", server.port)).await;
    assert!(
        dom.contains(
            r#"<div id="paused" class="banner">paused since 2026-12-06T12:00:00.000000Z&lt;b&gt;: no failover"#
        ),
        "no pause banner:\n{dom}"
    );
    let server = StandIn::start(doc(false, "2026-12-06T12:05:00.000000Z"));
    let dom = dump_dom(&format!("http://127.0.0.1:{}/", server.port)).await;
    assert!(dom.contains(r#"<div id="paused" class="banner" hidden="">"#), "{dom}");
}

/// Issue 22: a switchover in progress, ours (the state document's `switchover`) or one the old
/// primary's daemon announces in an observer view, shows a banner with its step, as text; an
/// announcement past its end does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_shows_a_switchover_in_progress() {
    let now = chrono::Utc::now();
    let iso = |t: chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
    let word = |until: chrono::DateTime<chrono::Utc>| {
        json!({"from": "pg1", "to": "pg2<i>", "since": iso(now), "until": iso(until),
               "step": "stopped cleanly at 0/3000148"})
    };
    let doc = |own: Option<Value>, announced: Option<Value>| {
        let mut d = json!({
            "db_nodes": {
                "pg2": {"connection": true, "fetch_time": iso(now), "pg_is_in_recovery": true,
                        "pg_last_xlog_receive_location": "0/3000148"},
            },
            "observer_nodes": {"pg1": {"fetch_time": iso(now), "connection": true,
                "pg1": {"connection": false, "fetch_time": iso(now)}}},
            "current_master": "pg1",
        });
        if let Some(w) = own {
            d["switchover"] = w;
        }
        if let Some(w) = announced {
            d["observer_nodes"]["pg1"]["pg1"]["switchover"] = w;
        }
        d
    };
    let banner = r#"<div id="switchover" class="banner">switchover in progress: pg1 → pg2&lt;i&gt;: stopped cleanly at 0/3000148</div>"#;
    let later = now + chrono::Duration::seconds(600);
    for d in [doc(Some(word(later)), None), doc(None, Some(word(later)))] {
        let server = StandIn::start(d);
        let dom = dump_dom(&format!("http://127.0.0.1:{}/", server.port)).await;
        assert!(dom.contains(banner), "no switchover banner:\n{dom}");
    }
    let server = StandIn::start(doc(None, Some(word(now - chrono::Duration::seconds(5)))));
    let dom = dump_dom(&format!("http://127.0.0.1:{}/", server.port)).await;
    assert!(
        dom.contains(r#"<div id="switchover" class="banner" hidden="">"#),
        "{dom}"
    );
}
