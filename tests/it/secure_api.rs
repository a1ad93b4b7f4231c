//! The secured API: bearer tokens (401 without, 403 wrong), HTTPS with our own certificate, an
//! observer fetched over HTTPS with a token and a CA file, and a flood of `POST /check` that
//! cannot multiply polling.

use super::harness::*;
use pglab::daemon::Daemon;
use serde_json::json;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// A CA and a server certificate for 127.0.0.1, made with the openssl command.
pub(super) fn make_certs(dir: &Path) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=pglookout test CA",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    std::fs::write(dir.join("ext.cnf"), "subjectAltName=IP:127.0.0.1\n").expect("ext");
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
}

fn client(ca: &Path) -> reqwest::Client {
    let pem = std::fs::read(ca).expect("ca");
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).expect("pem"))
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client")
}

async fn status(req: reqwest::RequestBuilder) -> u16 {
    req.send().await.expect("request").status().as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_tls_and_secured_observers() {
    let dir = tempfile::tempdir().expect("dir");
    make_certs(dir.path());
    let ca = dir.path().join("ca.pem");
    // no database needed: one unreachable node keeps the rounds going
    let secured = Daemon::spawn(
        &bin(),
        "secured",
        dir.path(),
        json!({
            "remote_conns": {"gone": "host=127.0.0.1 port=1 user=x connect_timeout=2"},
            "db_poll_interval": 0.5,
            "http_auth_token": "s3cret-token",
            "http_auth_scope": "all",
            "http_tls_cert": dir.path().join("server.pem"),
            "http_tls_key": dir.path().join("server.key"),
        }),
    )
    .expect("spawn");
    let url = format!("https://127.0.0.1:{}", secured.http_port);
    let c = client(&ca);
    pglab::wait_for("the HTTPS server answers", DEADLINE, || {
        let req = c.get(format!("{url}/liveness"));
        async move { Ok(req.send().await.is_ok()) }
    })
    .await
    .expect("up");
    assert_eq!(status(c.get(format!("{url}/state.json"))).await, 401, "no token");
    assert_eq!(
        status(c.get(format!("{url}/state.json")).bearer_auth("wrong-token!")).await,
        403,
        "wrong token"
    );
    assert_eq!(
        status(c.get(format!("{url}/state.json")).bearer_auth("s3cret-token")).await,
        200
    );
    assert_eq!(
        status(c.post(format!("{url}/check")).bearer_auth("s3cret-token")).await,
        204
    );
    // plain HTTP on the HTTPS port gets no answer
    assert!(pglab::daemon::http_request(secured.http_port, "GET", "/state.json")
        .await
        .is_err());
    assert!(!secured.log().contains("s3cret-token"), "the token is never logged");

    // pglookout-ctl speaks HTTPS with a CA file and sends the token (given, or from the config)
    let ctl = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_pglookout-ctl"))
            .args(args)
            .output()
            .expect("ctl");
        (out.status.code(), String::from_utf8_lossy(&out.stderr).to_string())
    };
    let ca_arg = ca.display().to_string();
    let (code, err) = ctl(&["status", "--url", &url, "--ca-file", &ca_arg]);
    assert_eq!(code, Some(1));
    assert!(err.contains("401"), "{err}");
    assert_eq!(
        ctl(&["status", "--url", &url, "--ca-file", &ca_arg, "--token", "s3cret-token"]).0,
        Some(0)
    );
    let config_arg = secured.config_path.display().to_string();
    assert_eq!(
        ctl(&["check", "--config", &config_arg, "--ca-file", &ca_arg]),
        (Some(0), String::new())
    );

    // An observer behind HTTPS and a token: fetched with both; without the token it is refused.
    let watcher = Daemon::spawn(
        &bin(),
        "watcher",
        dir.path(),
        json!({
            // the observed daemon's node: an observer's report of nodes outside our config is
            // not kept
            "remote_conns": {"gone": "host=127.0.0.1 port=1 user=x connect_timeout=2"},
            "db_poll_interval": 0.5,
            "observers": {
                "with_token": {"url": url, "token": "s3cret-token", "ca_file": ca},
                "without_token": {"url": url, "ca_file": ca},
            },
        }),
    )
    .expect("spawn");
    let s = wait_state(&watcher, "observers fetched", |s| {
        s["observer_nodes"]["with_token"]["connection"] == json!(true)
            && s["observer_nodes"]["without_token"]["connection"] == json!(false)
    })
    .await;
    assert!(s["observer_nodes"]["with_token"]["gone"].is_object(), "{s}");
    wait_log(&watcher, "the refused answer logged", |log| log.contains("HTTP 401")).await;
    assert!(!watcher.log().contains("s3cret-token"), "the token is never logged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutating_requests_need_the_token_and_a_flood_cannot_multiply_polling() {
    let dir = tempfile::tempdir().expect("dir");
    // a node whose probes hang until their 5 s deadline, so every round takes that long
    let hung = pglab::Proxy::start(1).await.expect("proxy");
    hung.set_mode(pglab::ProxyMode::Blackhole);
    let d = Daemon::spawn(
        &bin(),
        "d",
        dir.path(),
        json!({
            "remote_conns": {
                "gone": "host=127.0.0.1 port=1 user=x",
                "hung": format!("host=127.0.0.1 port={} user=x", hung.port()),
            },
            "db_poll_interval": 3600,
            "http_auth_token": "tok",
        }),
    )
    .expect("spawn");
    wait_state(&d, "first round", |s| s["db_nodes"]["hung"].is_object()).await;
    let base = d.url();
    let c = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    assert_eq!(
        status(c.get(format!("{base}/state.json"))).await,
        200,
        "reads are open by default"
    );
    // a voter digest sent with a fetch is relayed only from one that carries the token: an
    // open read must not plant one (it would hold other daemons' promotions)
    let relayed = |token: Option<&'static str>| {
        let mut r = c
            .get(format!("{base}/state.json"))
            .header("x-pglookout-node", "hung")
            .header("x-pglookout-voters", "0123456789ab");
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        async move {
            let v: serde_json::Value = r.send().await.expect("get").json().await.expect("json");
            v["hung"]["voters"].clone()
        }
    };
    assert_eq!(
        relayed(None).await,
        serde_json::Value::Null,
        "an open read plants no digest"
    );
    assert_eq!(relayed(Some("tok")).await, json!("0123456789ab"));
    assert_eq!(status(c.post(format!("{base}/check"))).await, 401);
    assert_eq!(status(c.post(format!("{base}/check")).bearer_auth("nope")).await, 403);

    let rounds = || async {
        let text = c
            .get(format!("{base}/metrics"))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text");
        text.lines()
            .find_map(|l| l.strip_prefix("pglookout_poll_rounds_total "))
            .and_then(|v| v.parse::<u64>().ok())
            .expect("rounds counter")
    };
    let before = rounds().await;
    let start = Instant::now();
    let mut sent = 0;
    while start.elapsed() < Duration::from_secs(12) {
        let batch: Vec<_> = (0..20)
            .map(|_| c.post(format!("{base}/check")).bearer_auth("tok").send())
            .collect();
        for r in batch {
            assert_eq!(r.await.expect("post").status().as_u16(), 204);
            sent += 1;
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    // the flood did not keep rounds from completing (each takes the hung node's 5 s): with
    // the last deferred request's round, at least two
    let after = pglab::wait_for("two rounds of the flood", DEADLINE, || async {
        let r = rounds().await;
        Ok((r >= before + 2).then_some(r))
    })
    .await
    .expect("rounds");
    let made = after - before;
    // requested rounds are at least 1 s apart: at most one per second of flood, plus the
    // deferred one at the end and one that may straddle the measurement
    assert!(
        made as f64 <= elapsed + 2.0,
        "{sent} requests in {elapsed:.1} s made {made} rounds"
    );
    assert!(sent > 100, "the flood was a flood: {sent}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_client_connection_is_closed() {
    use tokio::io::AsyncReadExt;
    let dir = tempfile::tempdir().expect("dir");
    let d = Daemon::spawn(&bin(), "d", dir.path(), json!({"remote_conns": {}})).expect("spawn");
    wait_api(&d).await;
    // connect and send nothing (a slowloris, or a forgotten keep-alive connection)
    let mut idle = tokio::net::TcpStream::connect(("127.0.0.1", d.http_port))
        .await
        .expect("connect");
    let mut buf = [0u8; 64];
    let closed = tokio::time::timeout(DEADLINE, idle.read(&mut buf)).await;
    assert!(
        matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
        "the server closes an idle connection: {closed:?}"
    );
    // and keeps serving others
    assert_eq!(d.http("GET", "/liveness").await.expect("GET").0, 200);
}

/// A daemon with `http_auth_token: "tok"` and scope `all` that polls nothing reachable.
fn token_daemon(dir: &Path) -> Daemon {
    Daemon::spawn(
        &bin(),
        "d",
        dir,
        json!({
            "remote_conns": {"gone": "host=127.0.0.1 port=1 user=x connect_timeout=2"},
            "db_poll_interval": 0.5,
            "http_auth_token": "tok",
            "http_auth_scope": "all",
        }),
    )
    .expect("spawn")
}

async fn wait_answers(c: &reqwest::Client, d: &Daemon) {
    let url = format!("{}/liveness", d.url());
    pglab::wait_for("the API answers", DEADLINE, || {
        let req = c.get(&url);
        async move { Ok(req.send().await.is_ok()) }
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#}\nlog tail:\n{}", tail(&d.log(), 30)));
}

/// RFC 7235: the auth scheme is case-insensitive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bearer_scheme_is_case_insensitive() {
    let dir = tempfile::tempdir().expect("dir");
    let d = token_daemon(dir.path());
    let c = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    wait_answers(&c, &d).await;
    let url = format!("{}/state.json", d.url());
    for value in ["Bearer tok", "bearer tok", "BEARER tok"] {
        assert_eq!(status(c.get(&url).header("Authorization", value)).await, 200, "{value}");
    }
    assert_eq!(status(c.get(&url).header("Authorization", "bearer nope")).await, 403);
    assert_eq!(status(c.get(&url).header("Authorization", "Basic tok")).await, 401);
}

/// A flood of refused requests on one keep-alive connection (issue 19: 27,918 WARNINGs in 5 s,
/// without the client's address): one WARNING at once, with the address; the rest counted in
/// `/metrics` at once, and summed up in the log when the window has passed (here: at the stop).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_tokens_are_counted_and_logged_throttled_with_the_address() {
    let dir = tempfile::tempdir().expect("dir");
    let mut d = token_daemon(dir.path());
    let c = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    wait_answers(&c, &d).await;
    let url = format!("{}/state.json", d.url());
    const WRONG: usize = 400;
    const MISSING: usize = 50;
    for _ in 0..WRONG {
        assert_eq!(status(c.get(&url).bearer_auth("n0pe-x1")).await, 403);
    }
    for _ in 0..MISSING {
        assert_eq!(status(c.get(&url)).await, 401);
    }
    let metrics = c
        .get(format!("{}/metrics", d.url()))
        .bearer_auth("tok")
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    // the liveness probes before the first answer count too (without a token)
    let counted = |reason: &str| {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&format!("pglookout_http_auth_failures_total{{reason=\"{reason}\"}} ")))
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or_else(|| panic!("{reason} counted:\n{metrics}"))
    };
    assert_eq!(counted("wrong_token"), WRONG, "{metrics}");
    let missing = counted("missing_token");
    assert!(missing >= MISSING, "{missing}\n{metrics}");

    let refusal_lines = |log: &str| {
        log.lines()
            .filter(|l| l.contains("without a valid bearer token"))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    wait_log(&d, "the first refusal logged at once", |log| {
        !refusal_lines(log).is_empty()
    })
    .await;
    let lines = refusal_lines(&d.log());
    // one at once; a second only if this test outlived the one-minute window
    assert!(
        lines.len() <= 2,
        "throttled: {} lines:\n{}",
        lines.len(),
        lines.join("\n")
    );
    assert!(
        lines[0].contains("from 127.0.0.1"),
        "the client's address: {}",
        lines[0]
    );
    assert!(lines[0].contains("WARN"), "{}", lines[0]);

    // what the window counted is reported when the flood stops, here at the stop
    d.stop(Duration::from_secs(10)).expect("stop");
    let lines = refusal_lines(&d.log());
    let summed: usize = lines
        .iter()
        .filter_map(|l| l.split("refused ").nth(1)?.split(' ').next()?.parse::<usize>().ok())
        .sum();
    assert_eq!(
        summed,
        WRONG + missing,
        "every refusal is in a count:\n{}",
        lines.join("\n")
    );
    let log = d.log();
    assert!(!log.contains("n0pe-x1"), "the token sent is never logged");
}
