//! The API under connection abuse: request heads sent a line at a time, and TLS connections that
//! never finish their handshake. The abusers connect from 127.0.0.2 (any 127/8 address is
//! loopback on Linux) and the legitimate checks from 127.0.0.1, so the daemon sees two clients:
//! the abuser gets its per-address share and no more, and the checks keep their answers. With
//! abusers at many addresses (127.0.0.2 and up), together over the global cap, the checks from
//! reserved clients (127.0.0.1, `http_reserved_clients`) keep theirs. And the answers' own
//! bounds: `/history` stays within its cap whatever the event file holds, and every query
//! string is decoded by the same rules.

use super::harness::*;
use super::secure_api::make_certs;
use pglab::daemon::{http_request, Daemon};
use serde_json::json;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_util::sync::CancellationToken;

const ABUSER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
/// The daemon's per-address cap with at least 1024 descriptors (`http_conn::MAX_PER_CLIENT`).
const PER_CLIENT: usize = 32;
/// How long the legitimate checks run under the abuse: longer than the head deadline (10 s) and
/// the handshake deadline (5 s), so slots are handed over while we check.
const UNDER_ABUSE: Duration = Duration::from_secs(15);
/// An abuser reconnects this long after the server closed it (pacing the flood, so it loads the
/// daemon, not the test's two cores).
const RECONNECT_PAUSE: Duration = Duration::from_secs(1);
/// The state file is rewritten every round (0.5 s here): it must change within this, flood or not.
const STATE_DEADLINE: Duration = Duration::from_secs(10);

/// A TCP connection to the daemon on 127.0.0.1 from `source`.
async fn connect_from(source: Ipv4Addr, port: u16) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(IpAddr::V4(source), 0))?;
    socket.connect(SocketAddr::from(([127, 0, 0, 1], port))).await
}

/// What the abusers saw.
#[derive(Default)]
struct Seen {
    /// Connections open now that the server has kept for at least two of our writes.
    held: AtomicUsize,
    /// Of those, closed by the server while we were still sending (or stalling).
    held_then_closed: AtomicUsize,
    /// Abusers whose first connection the server has closed.
    first_closed: AtomicUsize,
}

/// How an abuser behaves on one connection.
#[derive(Clone, Copy)]
enum Abuse {
    /// A request head, one header line a second, never finished.
    SlowHead,
    /// Nothing at all (a TLS client that never sends its ClientHello).
    Silent,
    /// A TLS record header announcing a 512-byte handshake message that never comes.
    StalledHello,
}

/// Keeps one abusive connection to `port` open from `source`, reconnecting when the server
/// closes it, until `stop`.
async fn abuser(source: Ipv4Addr, port: u16, abuse: Abuse, seen: Arc<Seen>, stop: CancellationToken) {
    let mut first = true;
    while !stop.is_cancelled() {
        if let Ok(conn) = connect_from(source, port).await {
            let closed = abuse_one(conn, abuse, &seen, &stop).await;
            if first && closed {
                seen.first_closed.fetch_add(1, SeqCst);
            }
            first = false;
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(RECONNECT_PAUSE) => {}
        }
    }
}

/// Abuses one connection; true when the server closed it (or answered and closed it).
async fn abuse_one(mut conn: TcpStream, abuse: Abuse, seen: &Seen, stop: &CancellationToken) -> bool {
    let opening: &[u8] = match abuse {
        Abuse::SlowHead => b"GET /state.json HTTP/1.1\r\nHost: 127.0.0.1\r\n",
        Abuse::Silent => b"",
        Abuse::StalledHello => b"\x16\x03\x01\x02\x00",
    };
    if conn.write_all(opening).await.is_err() {
        return true;
    }
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut writes = 0;
    let mut buf = [0u8; 512];
    let closed = loop {
        tokio::select! {
            _ = stop.cancelled() => break false,
            // any answer ends our trick: an EOF, a reset, or an error status before the close
            _ = conn.read(&mut buf) => break true,
            _ = tick.tick() => {
                writes += 1;
                if writes == 2 {
                    seen.held.fetch_add(1, SeqCst);
                }
                if let Abuse::SlowHead = abuse {
                    if conn.write_all(format!("X-Slow-{writes}: x\r\n").as_bytes()).await.is_err() {
                        break true;
                    }
                }
            }
        }
    };
    if writes >= 2 {
        seen.held.fetch_sub(1, SeqCst);
        if closed {
            seen.held_then_closed.fetch_add(1, SeqCst);
        }
    }
    closed
}

/// Starts `count` abusers from `source`.
fn start_abusers(
    count: usize,
    source: Ipv4Addr,
    port: u16,
    kinds: &[Abuse],
    seen: &Arc<Seen>,
    stop: &CancellationToken,
) {
    for i in 0..count {
        tokio::spawn(abuser(source, port, kinds[i % kinds.len()], seen.clone(), stop.clone()));
    }
}

async fn wait_seen(what: &str, seen: &Seen, d: &Daemon, pred: impl Fn(&Seen) -> bool) {
    if let Err(e) = pglab::wait_for(what, DEADLINE, || async { Ok(pred(seen)) }).await {
        panic!(
            "{e:#}\nheld {} held_then_closed {} first_closed {}\nlog tail:\n{}",
            seen.held.load(SeqCst),
            seen.held_then_closed.load(SeqCst),
            seen.first_closed.load(SeqCst),
            tail(&d.log(), 30)
        );
    }
}

/// The status the daemon answers to a request whose head is 70 000 bytes.
async fn huge_head_status(port: u16) -> String {
    let exchange = async {
        let mut conn = TcpStream::connect(("127.0.0.1", port)).await?;
        let head = format!(
            "GET /state.json HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: {}\r\n\r\n",
            "x".repeat(70_000)
        );
        // the server may answer and close before it has read everything
        let _ = conn.write_all(head.as_bytes()).await;
        let mut answer = Vec::new();
        let _ = conn.read_to_end(&mut answer).await;
        std::io::Result::Ok(answer)
    };
    let answer = tokio::time::timeout(Duration::from_secs(5), exchange)
        .await
        .expect("an answer within 5 s")
        .expect("connect");
    let text = String::from_utf8_lossy(&answer);
    text.split_whitespace().nth(1).unwrap_or_default().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_request_heads_cannot_hold_the_api() {
    let cluster = lab_cluster(1).await;
    let d = spawn(&cluster, "pg1", config(&cluster, "pg1", json!({})));
    wait_state(&d, "pg1 connected", |s| connected(s, "pg1")).await;
    let port = d.http_port;
    assert_eq!(huge_head_status(port).await, "431", "a request head over 64 KiB");

    let seen = Arc::new(Seen::default());
    let stop = CancellationToken::new();
    let _stop_on_exit = stop.clone().drop_guard();
    const SLOW: usize = 300;
    start_abusers(SLOW, ABUSER, port, &[Abuse::SlowHead], &seen, &stop);
    wait_seen("the abuser holds its share of connections", &seen, &d, |s| {
        s.held.load(SeqCst) >= PER_CLIENT
    })
    .await;

    // every path load balancers and peers use answers (whatever its status) while the abuse
    // goes on; http_request gives each request 5 s
    let started = Instant::now();
    let mut rounds = 0;
    while started.elapsed() < UNDER_ABUSE {
        for path in ["/state.json", "/health", "/primary", "/replica"] {
            match http_request(port, "GET", path).await {
                Ok((status, _)) if path == "/state.json" => assert_eq!(status, 200),
                Ok(_) => {}
                Err(e) => panic!(
                    "GET {path} under abuse (round {rounds}, held {}): {e:#}\nlog tail:\n{}",
                    seen.held.load(SeqCst),
                    tail(&d.log(), 30)
                ),
            }
        }
        rounds += 1;
    }

    // the head deadline closed the connections the server had kept; the others were closed at
    // once (the abuser already had its share)
    wait_seen("the server closes the slow connections it kept", &seen, &d, |s| {
        s.held_then_closed.load(SeqCst) >= PER_CLIENT
    })
    .await;
    wait_seen("the server closes every first slow connection", &seen, &d, |s| {
        s.first_closed.load(SeqCst) == SLOW
    })
    .await;
    assert!(
        d.log().contains(&format!(
            "from clients that already had {PER_CLIENT} open, the latest from {ABUSER}"
        )),
        "the refusals are logged:\n{}",
        tail(&d.log(), 30)
    );
}

/// A shell wrapper that starts the daemon with a hard descriptor limit of `hard` and a soft one
/// of `soft` (the daemon raises the soft one to the hard one).
fn low_fd_wrapper(dir: &Path, hard: u32, soft: u32) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("pglookout-low-fd.sh");
    let script = format!(
        "#!/bin/sh\nulimit -S -n {soft} && ulimit -H -n {hard} && exec '{}' \"$@\"\n",
        bin().display()
    );
    std::fs::write(&path, script).expect("wrapper");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path
}

/// Waits until the state file's content differs from `before`; its new content.
async fn state_rewritten(d: &Daemon, before: &str, seen: &Seen) -> String {
    let result = pglab::wait_for("the state file is rewritten", STATE_DEADLINE, || async {
        let now = std::fs::read_to_string(&d.state_path).unwrap_or_default();
        Ok((!now.is_empty() && now != before).then_some(now))
    })
    .await;
    match result {
        Ok(text) => text,
        Err(e) => panic!(
            "{e:#}\nheld {}\nlog tail:\n{}",
            seen.held.load(SeqCst),
            tail(&d.log(), 30)
        ),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_flood_cannot_take_the_descriptors() {
    let cluster = lab_cluster(0).await;
    let dir = cluster.dir();
    make_certs(dir);
    let mut cfg = config(&cluster, "pg1", json!({}));
    cfg["http_tls_cert"] = json!(dir.join("server.pem"));
    cfg["http_tls_key"] = json!(dir.join("server.key"));
    // 256 descriptors: HTTP gets 64 of them, 8 per address, 8 kept for reserved clients
    let (limit, connections, per_client, reserved) = (256, 64, 8, 8);
    let wrapper = low_fd_wrapper(dir, limit, 64);
    let d = Daemon::spawn(&wrapper, "tls", dir, cfg).expect("spawn");
    let port = d.http_port;
    let pem = std::fs::read(dir.join("ca.pem")).expect("ca");
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).expect("pem"))
        .timeout(Duration::from_secs(5))
        // a new connection (and handshake) for every check
        .pool_max_idle_per_host(0)
        .build()
        .expect("client");
    let health = || client.get(format!("https://127.0.0.1:{port}/health")).send();
    pglab::wait_for("the HTTPS server answers", DEADLINE, || async {
        Ok(health().await.is_ok())
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#}\nlog tail:\n{}", tail(&d.log(), 30)));
    wait_state(&d, "pg1 connected", |s| connected(s, "pg1")).await;
    // One abuser address with far more connections than the daemon has descriptors.
    let seen = Arc::new(Seen::default());
    let stop = CancellationToken::new();
    let _stop_on_exit = stop.clone().drop_guard();
    const FLOOD: usize = 600;
    start_abusers(FLOOD, ABUSER, port, &[Abuse::Silent, Abuse::StalledHello], &seen, &stop);
    wait_seen("the abuser holds its share of connections", &seen, &d, |s| {
        s.held.load(SeqCst) >= per_client
    })
    .await;
    let mut state = std::fs::read_to_string(&d.state_path).unwrap_or_default();
    let started = Instant::now();
    let mut rounds = 0;
    while started.elapsed() < UNDER_ABUSE {
        if let Err(e) = health().await {
            panic!(
                "GET /health over TLS under the flood (round {rounds}): {e:#}\nlog tail:\n{}",
                tail(&d.log(), 30)
            );
        }
        state = state_rewritten(&d, &state, &seen).await;
        rounds += 1;
    }
    wait_seen("the server closes the stalled handshakes it kept", &seen, &d, |s| {
        s.held_then_closed.load(SeqCst) >= per_client
    })
    .await;
    // The first connections are closed, most of them at once: on a loaded machine (CI runs two
    // tests at a time on two cores) the 600 clients reconnecting every second overflow the
    // kernel's accept queue, and a silent client whose handshake the kernel then dropped still
    // thinks it is connected and never hears a close (seen: 594 and 550 of 600, also before the
    // reserve existed). What the daemon must do under the flood (answer /health, keep writing
    // the state file, hold no more than its share) is checked above and below.
    wait_seen("the server closes most first flood connections", &seen, &d, |s| {
        s.first_closed.load(SeqCst) >= FLOOD * 3 / 4
    })
    .await;

    // Then many addresses, together over the global cap: HTTP still takes no more than its
    // quarter of the descriptors, so the state file keeps being written.
    for last in 3..=12 {
        start_abusers(40, Ipv4Addr::new(127, 0, 0, last), port, &[Abuse::Silent], &seen, &stop);
    }
    wait_seen("the abusers hold every slot they can have", &seen, &d, |s| {
        s.held.load(SeqCst) >= connections - reserved
    })
    .await;
    let started = Instant::now();
    while started.elapsed() < UNDER_ABUSE {
        state = state_rewritten(&d, &state, &seen).await;
    }
    stop.cancel();
    pglab::wait_for("/health over TLS after the flood", DEADLINE, || async {
        Ok(health().await.is_ok())
    })
    .await
    .expect("answers after the flood");
    let log = d.log();
    for failure in ["cannot write the state file", "Too many open files", "accept failed"] {
        assert!(!log.contains(failure), "{failure}:\n{}", tail(&log, 30));
    }
    // checked last, so that the old code fails on the flood, not on a log line
    assert!(
        d.log().contains(&format!(
            "at most {connections} client connections, {per_client} from one address (descriptor limit {limit})"
        )),
        "the caps come from the raised limit:\n{}",
        tail(&d.log(), 30)
    );
}

/// The event history over HTTP (issue 19, items 1 and 9): a fragment torn off the file's last
/// line costs only itself, a line over the event cap is skipped, no answer passes the answer cap
/// whatever `limit` asks, and every query string is decoded alike, a repeated parameter refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_answers_are_bounded_and_queries_decoded_alike() {
    use pglookout::events::{Event, MAX_ANSWER_BYTES, MAX_EVENT_BYTES};
    let dir = tempfile::tempdir().expect("dir");
    let events_path = dir.path().join("hist.events.jsonl");
    let at = pglookout::state::parse_iso("2026-01-01T00:00:00Z").expect("time");
    let medium = "m".repeat(60 << 10);
    let mut text = String::new();
    for i in 0..90 {
        text += &Event::new(at, "pg1", "test", format!("{i} {medium}")).to_line();
        text.push('\n');
    }
    // a valid event far over the cap (to_line would have shortened it)
    let huge = serde_json::to_string(&Event::new(at, "pg1", "huge", "h".repeat(2 << 20))).expect("json");
    text += &huge;
    text.push('\n');
    // and a write torn by a full disk: half a line, no newline
    let torn = Event::new(at, "pg1", "torn", "t").to_line();
    text += &torn[..torn.len() / 2];
    std::fs::write(&events_path, text).expect("write");

    let d = Daemon::spawn(&bin(), "hist", dir.path(), json!({ "event_log_path": events_path })).expect("spawn");
    pglab::wait_for("the daemon appends daemon_start", DEADLINE, || async {
        Ok(std::fs::read(&events_path).is_ok_and(|b| {
            b.ends_with(b"\n") && String::from_utf8_lossy(&b[b.len().saturating_sub(4096)..]).contains("daemon_start")
        }))
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#}\nlog tail:\n{}", tail(&d.log(), 30)));

    let events = |body: &str| -> Vec<Event> {
        serde_json::from_str(body).unwrap_or_else(|e| panic!("not a history ({e}): {:.200}", body))
    };
    // the torn fragment did not take the next event with it; `%31` is `1`
    for query in ["limit=1", "limit=%31", "%6Cimit=1"] {
        let (code, body) = d.http("GET", &format!("/history?{query}")).await.expect("GET /history");
        assert_eq!(code, 200, "{query}: {body:.300}");
        let got = events(&body);
        assert_eq!(got.len(), 1, "{query}");
        assert_eq!(got[0].kind, "daemon_start", "{query}");
    }
    // the huge event is skipped as damaged, not served
    let (code, body) = d.http("GET", "/history?limit=5").await.expect("GET /history");
    assert_eq!(code, 200);
    assert!(body.len() < 5 * (MAX_EVENT_BYTES + 1024), "{} bytes", body.len());
    let got = events(&body);
    assert_eq!(got.len(), 5);
    assert!(
        got.iter().all(|e| e.kind != "huge"),
        "{:?}",
        got.iter().map(|e| &e.kind).collect::<Vec<_>>()
    );
    // however many events are asked for, the answer stays within its cap, and says it was cut
    let resp = reqwest::get(format!("http://127.0.0.1:{}/history?limit=10000", d.http_port))
        .await
        .expect("GET /history?limit=10000");
    assert_eq!(resp.status(), 200);
    let truncated = resp.headers().get("x-pglookout-truncated").cloned();
    let body = resp.text().await.expect("body");
    assert!(body.len() <= MAX_ANSWER_BYTES, "{} bytes", body.len());
    let got = events(&body);
    assert!(got.len() < 90, "{}", got.len());
    assert!(truncated.is_some(), "no truncation header with {} events", got.len());

    // one rule for repeated parameters, everywhere; names decoded as values
    for (path, name) in [
        ("/history?limit=1&limit=2", "limit"),
        (
            "/history?since=2026-01-01T00:00:00Z&%73ince=2026-01-01T00:00:00Z",
            "since",
        ),
        ("/series?node=pg1&node=pg2", "node"),
        ("/replica?lag=1s&lag=2s", "lag"),
    ] {
        let (code, body) = d.http("GET", path).await.expect("GET");
        assert_eq!(code, 400, "{path}: {body}");
        assert!(
            body.contains(&format!("{name}: given more than once")),
            "{path}: {body}"
        );
    }
    for path in [
        "/replica?%6Cag=%31s",
        "/series?%73ince=0",
        "/history?since=2026-01-01T01%3A00%3A00%2B01%3A00",
    ] {
        let (code, body) = d.http("GET", path).await.expect("GET");
        assert_ne!(code, 400, "{path}: {body:.300}");
    }
}

/// The general slots with 1024 descriptors or more: 256 connections less the 32 kept for
/// reserved clients (`http_conn::Limits`).
const GENERAL: usize = 224;
/// Generous: a reserved client is answered in milliseconds; before the reserve, it queued behind
/// the flood for 5 to 15 s and more.
const ANSWER_DEADLINE: Duration = Duration::from_secs(10);

/// `GET path` from `source` with [`ANSWER_DEADLINE`]: the whole answer.
async fn get_from(source: Ipv4Addr, port: u16, path: &str) -> Result<String, String> {
    let exchange = async {
        let mut conn = connect_from(source, port).await.map_err(|e| format!("connect: {e}"))?;
        let head = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
        conn.write_all(head.as_bytes())
            .await
            .map_err(|e| format!("write: {e}"))?;
        let mut answer = Vec::new();
        conn.read_to_end(&mut answer).await.map_err(|e| format!("read: {e}"))?;
        let text = String::from_utf8_lossy(&answer).to_string();
        match text.split_whitespace().nth(1).and_then(|s| s.parse::<u16>().ok()) {
            Some(_) => Ok(text),
            None => Err(format!(
                "no HTTP status in {:?}",
                text.chars().take(80).collect::<String>()
            )),
        }
    };
    tokio::time::timeout(ANSWER_DEADLINE, exchange)
        .await
        .map_err(|_| format!("no answer within {ANSWER_DEADLINE:?}"))?
}

/// Issue 19, item 11: 1,000 slow connections from 100 addresses filled the 256-connection cap,
/// and `/health` from a fresh address took 5 to 15 s, with nothing logged. Now the general slots
/// fill, the reserved clients (loopback 127.0.0.1 always, and `http_reserved_clients`) still
/// get their answers, and the connections refused meanwhile are logged and counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_from_many_addresses_cannot_keep_reserved_clients_out() {
    // this test holds over a thousand sockets itself
    let _ = pglookout::http_conn::raise_descriptor_limit();
    let dir = tempfile::tempdir().expect("dir");
    let reserved_lb = Ipv4Addr::new(127, 0, 0, 201);
    // no database needed: one unreachable node keeps the rounds going (/health answers 503)
    let d = Daemon::spawn(
        &bin(),
        "d",
        dir.path(),
        json!({
            "remote_conns": {"gone": "host=127.0.0.1 port=1 user=x connect_timeout=2"},
            "db_poll_interval": 0.5,
            "http_reserved_clients": ["127.0.0.200/30"],
        }),
    )
    .expect("spawn");
    let port = d.http_port;
    pglab::wait_for("the API answers", DEADLINE, || async {
        Ok(get_from(Ipv4Addr::LOCALHOST, port, "/liveness").await.is_ok())
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#}\nlog tail:\n{}", tail(&d.log(), 30)));

    let seen = Arc::new(Seen::default());
    let stop = CancellationToken::new();
    let _stop_on_exit = stop.clone().drop_guard();
    for last in 2..=101 {
        start_abusers(
            10,
            Ipv4Addr::new(127, 0, 0, last),
            port,
            &[Abuse::SlowHead],
            &seen,
            &stop,
        );
    }
    wait_seen("the abusers hold every general slot", &seen, &d, |s| {
        s.held.load(SeqCst) >= GENERAL
    })
    .await;

    for round in 0..5 {
        for source in [Ipv4Addr::LOCALHOST, reserved_lb] {
            if let Err(e) = get_from(source, port, "/health").await {
                panic!(
                    "GET /health from {source} under the flood (round {round}, held {}): {e}\nlog tail:\n{}",
                    seen.held.load(SeqCst),
                    tail(&d.log(), 30)
                );
            }
        }
    }
    // the flood goes on, so the refusals too: the first is logged at once
    wait_log(&d, "the refusals logged", |log| {
        log.contains(&format!(
            "while the {GENERAL} general connection slots were all taken (the other 32 are kept for loopback and http_reserved_clients), the latest from 127.0.0."
        ))
    })
    .await;
    let metrics = match get_from(Ipv4Addr::LOCALHOST, port, "/metrics").await {
        Ok(m) => m,
        Err(e) => panic!("GET /metrics under the flood: {e}"),
    };
    let refused = metrics
        .lines()
        .find_map(|l| l.strip_prefix("pglookout_http_connections_refused_total{reason=\"server_full\"} "))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("server_full counted:\n{metrics}"));
    assert!(refused > 0, "{metrics}");
    stop.cancel();
}
