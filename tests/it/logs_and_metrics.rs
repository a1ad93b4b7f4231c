//! Logs, syslog, systemd readiness and StatsD from a real daemon beside a real standby; no
//! password anywhere it writes; and a daemon whose stderr nobody reads keeps working.

use super::harness::*;
use pglab::daemon::Daemon;
use serde_json::json;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixDatagram;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

fn recv_text(sock: &UnixDatagram) -> Option<String> {
    let mut buf = vec![0u8; 65536];
    sock.recv(&mut buf)
        .ok()
        .map(|n| String::from_utf8_lossy(&buf[..n]).to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syslog_statsd_systemd_and_no_secrets() {
    let cluster = lab_cluster(1).await;
    let dir = cluster.dir();
    let notify_path = dir.join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).expect("notify socket");
    notify.set_read_timeout(Some(DEADLINE)).expect("timeout");
    let syslog_path = dir.join("syslog.sock");
    let syslog = UnixDatagram::bind(&syslog_path).expect("syslog socket");
    syslog.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let statsd = std::net::UdpSocket::bind("127.0.0.1:0").expect("udp");
    statsd.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let statsd_port = statsd.local_addr().expect("addr").port();

    let mut cfg = config(&cluster, "pg2", json!({}));
    cfg["syslog"] = json!(true);
    cfg["syslog_address"] = json!(syslog_path);
    cfg["syslog_facility"] = json!("local3");
    cfg["statsd"] = json!({"host": "127.0.0.1", "port": statsd_port, "tags": {"cluster": "lab"}});
    let notify_env = notify_path.display().to_string();
    let mut d = Daemon::spawn_with_env(
        &bin(),
        "pg2",
        dir,
        cfg.clone(),
        &[("NOTIFY_SOCKET", &notify_env), ("WATCHDOG_USEC", "30000000")],
    )
    .expect("spawn");

    // READY=1 once the first poll round is done: by then every node has been tried. The
    // decision loop pings the watchdog after every check, before and after that.
    let mut messages = Vec::new();
    while !messages.iter().any(|m| m == "READY=1") {
        messages.push(recv_text(&notify).expect("READY=1 within the deadline"));
    }
    while messages.iter().filter(|m| *m == "WATCHDOG=1").count() < 2 {
        messages.push(recv_text(&notify).expect("WATCHDOG=1 within the deadline"));
    }
    assert!(
        messages.iter().all(|m| m == "READY=1" || m == "WATCHDOG=1"),
        "{messages:?}"
    );
    let s = d.state().expect("state file after the first round");
    assert!(
        s["db_nodes"].get("pg1").is_some() && s["db_nodes"].get("pg2").is_some(),
        "{s}"
    );

    // syslog: facility local3 (19), our program name
    let line = recv_text(&syslog).expect("a syslog message");
    let pri: u16 = line
        .trim_start_matches('<')
        .split('>')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("PRI");
    assert_eq!(pri / 8, 19, "{line}");
    assert!(line.contains("pglookout["), "{line}");

    // StatsD: the original's gauge name with Telegraf tags, and the same figures as /metrics
    let mut buf = [0u8; 1024];
    let mut lines: Vec<String> = Vec::new();
    pglab::wait_for("pg.replication_lag and pglookout.node_up gauges", DEADLINE, || {
        if let Ok(n) = statsd.recv(&mut buf) {
            lines.push(String::from_utf8_lossy(&buf[..n]).to_string());
        }
        let done = lines.iter().any(|l| l.starts_with("pg.replication_lag,"))
            && lines.iter().any(|l| l.starts_with("pglookout.node_up,"))
            && lines
                .iter()
                .any(|l| l.starts_with("pglookout.node_replication_lag_seconds,"));
        async move { Ok(done) }
    })
    .await
    .expect("gauges");
    let gauge = lines
        .iter()
        .find(|l| l.starts_with("pg.replication_lag,"))
        .cloned()
        .unwrap_or_default();
    assert!(
        lines.contains(&"pglookout.node_up,cluster=lab,node=pg1:1|g".to_string()),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("pglookout.node_replication_lag_seconds,cluster=lab,node=pg2:")),
        "{lines:?}"
    );
    assert!(
        gauge.starts_with("pg.replication_lag,cluster=lab:") && gauge.ends_with("|g"),
        "{gauge}"
    );

    // Secrets: not in the log (at DEBUG), syslog, the state file or the HTTP answer.
    let password = cluster.monitor_password().to_string();
    let (_, body) = d.http("GET", "/state.json").await.expect("GET");
    let state_text = std::fs::read_to_string(&d.state_path).expect("state");
    let mut syslog_text = String::new();
    syslog.set_nonblocking(true).expect("nonblocking");
    while let Some(l) = recv_text(&syslog) {
        syslog_text.push_str(&l);
    }
    let log = d.log();
    assert!(log.contains("\tDEBUG\t"), "DEBUG lines are logged: {}", tail(&log, 10));
    assert!(log.contains("hidden password"), "conninfo is logged masked");
    for (what, text) in [
        ("log", &log),
        ("syslog", &syslog_text),
        ("state file", &state_text),
        ("HTTP", &body),
    ] {
        assert!(!text.contains(&password), "the password appears in the {what}");
    }

    // log_level is changed by a reload: after it, no DEBUG lines
    cfg["log_level"] = json!("WARNING");
    d.reload_with(cfg).expect("reload");
    pglab::wait_for("reload logged", DEADLINE, || async {
        Ok(d.log().contains("SIGHUP: reloading"))
    })
    .await
    .expect("reload");
    // The new level applies with the config, a little after the line above: lines of other
    // tasks in between may still be DEBUG. Once the history shows it applied, a reload of a
    // bad file logs an ERROR line, created after the new level applied: every line after it
    // in the log was too (one writer, in order).
    pglab::wait_for("the reload applied", DEADLINE, || async {
        let path = pglookout::events::default_path(&d.state_path);
        let history = pglookout::events::read(&path, 100, None).ok();
        Ok(history.is_some_and(|h| h.events.iter().any(|e| e.kind == "config_reloaded")))
    })
    .await
    .expect("the config_reloaded event");
    d.reload_with(json!(["not a config"])).expect("bad reload");
    const MARK: &str = "config reload failed, keeping the running config";
    wait_log(&d, "the bad reload refused", |log| log.contains(MARK)).await;
    let before = d.state().expect("state");
    for _ in 0..3 {
        let prev = d.state().expect("state");
        wait_state(&d, "another round", |s| {
            node(s, "pg1")["fetch_time"] != node(&prev, "pg1")["fetch_time"]
        })
        .await;
    }
    let _ = d.http("GET", "/state.json").await.expect("GET");
    assert_ne!(d.state().expect("state"), before);
    let log = d.log();
    let after = log.split(MARK).nth(1).unwrap_or_default();
    // at DEBUG, every round and the GET above would log lines
    let chatty: Vec<&str> = after
        .lines()
        .filter(|l| l.contains("\tDEBUG\t") || l.contains("\tINFO\t"))
        .collect();
    assert!(chatty.is_empty(), "logged after the new level applied: {chatty:#?}");
}

/// Kills the daemon if the test fails before it stopped it.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Requests `GET /state.json` (each logged at DEBUG) `n` times, 8 at a time; every one must be
/// answered (within the 5 s of `http_request`).
async fn state_requests(port: u16, n: usize) {
    let mut left = n;
    while left > 0 {
        let batch = left.min(8);
        let tasks: Vec<_> = (0..batch)
            .map(|_| tokio::spawn(pglab::daemon::http_request(port, "GET", "/state.json")))
            .collect();
        for t in tasks {
            let (status, _) = t
                .await
                .expect("task")
                .expect("the daemon answers while its stderr is blocked");
            assert_eq!(status, 200);
        }
        left -= batch;
    }
}

/// Finding 6: with a stalled stderr reader (a stuck journald, a full pipe) the daemon kept
/// blocking in write(2), and its HTTP API, state file and SIGTERM handling all stopped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_stderr_does_not_stop_the_daemon() {
    let cluster = lab_cluster(0).await;
    let dir = cluster.dir();
    let state_path = dir.join("stalled-state.json");
    let alert_dir = dir.join("stalled-alerts");
    std::fs::create_dir_all(&alert_dir).expect("alert dir");
    let port = pglab::daemon::free_port().expect("port");
    let mut cfg = config(&cluster, "pg1", json!({}));
    cfg["json_state_file_path"] = json!(state_path);
    cfg["alert_file_dir"] = json!(alert_dir);
    cfg["http_address"] = json!("127.0.0.1");
    cfg["http_port"] = json!(port);
    let config_path = dir.join("stalled.json");
    std::fs::write(&config_path, cfg.to_string()).expect("config");

    // stderr is a pipe that this test does not read until it says so
    let mut child = Command::new(bin())
        .arg(&config_path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stderr = child.stderr.take().expect("stderr pipe");
    let mut daemon = KillOnDrop(child);
    let fd = stderr.as_raw_fd();
    let pipe_bytes = nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_GETPIPE_SZ).expect("pipe size");
    // enough DEBUG lines (each at least 20 bytes) to fill the pipe and then the daemon's queue
    let flood = usize::try_from(pipe_bytes).expect("size") / 20 + pglookout::logging::QUEUE_LINES + 500;

    let read_state = || std::fs::read_to_string(&state_path).ok();
    pglab::wait_for("the first state file", DEADLINE, || async { Ok(read_state()) })
        .await
        .expect("state file");

    state_requests(port, flood).await;

    // stderr is stalled now; the daemon still polls, writes its state file and answers
    for round in 0..2 {
        let before = read_state();
        pglab::wait_for(
            &format!("state file rewrite {round} with stderr blocked"),
            DEADLINE,
            || async { Ok(read_state().is_some_and(|s| Some(&s) != before.as_ref())) },
        )
        .await
        .expect("the state file is rewritten while stderr is blocked");
    }
    let (status, _) = pglab::daemon::http_request(port, "GET", "/health")
        .await
        .expect("/health answers while stderr is blocked");
    assert!(status == 200 || status == 503, "{status}");

    // reading again: the backlog comes out, with a line saying how many lines were lost
    let flags = nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_GETFL).expect("flags");
    let flags = nix::fcntl::OFlag::from_bits_truncate(flags) | nix::fcntl::OFlag::O_NONBLOCK;
    nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_SETFL(flags)).expect("nonblocking");
    let mut text = String::new();
    let marker = " log lines were dropped while stderr was blocked";
    pglab::wait_for("the report of dropped lines", DEADLINE, || {
        let mut buf = vec![0u8; 65536];
        while let Ok(n @ 1..) = stderr.read(&mut buf) {
            text.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
        let found = text.contains(marker);
        async move { Ok(found) }
    })
    .await
    .expect("a report of the dropped lines");
    let report = text.lines().find(|l| l.ends_with(marker)).unwrap_or_default();
    let dropped: u64 = report
        .trim_end_matches(marker)
        .rsplit('\t')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_default();
    assert!(report.contains("\tpglookout\tWARNING\t"), "{report}");
    assert!(dropped > 0, "{report}");

    // stalled again, SIGTERM still stops the daemon (it gives up on the queued lines)
    state_requests(port, flood).await;
    let pid = nix::unistd::Pid::from_raw(i32::try_from(daemon.0.id()).expect("pid"));
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
    let status = pglab::wait_for("exit after SIGTERM with stderr blocked", DEADLINE, || {
        let exited = daemon.0.try_wait().ok().flatten();
        async move { Ok(exited) }
    })
    .await
    .expect("the daemon exits on SIGTERM while stderr is blocked");
    assert!(status.success(), "{status}");
}

/// Issue 19: each `GET /history` (open to anyone with the default auth scope) logged one WARNING
/// per damaged line of the event file. Now one per request, with the count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_history_is_one_warning_a_minute() {
    let dir = tempfile::tempdir().expect("dir");
    let events_path = dir.path().join("d.events.jsonl");
    std::fs::write(&events_path, "not an event\n".repeat(500)).expect("write");
    let d = Daemon::spawn(
        &bin(),
        "d",
        dir.path(),
        json!({
            "remote_conns": {"gone": "host=127.0.0.1 port=1 user=x connect_timeout=2"},
            "event_log_path": events_path,
        }),
    )
    .expect("spawn");
    wait_api(&d).await;
    for _ in 0..3 {
        let (status, _) = d.http("GET", "/history?limit=10000").await.expect("GET /history");
        assert_eq!(status, 200);
    }
    let warnings = |log: &str| log.lines().filter(|l| l.contains("event history:")).count();
    wait_log(&d, "the damaged lines reported", |log| warnings(log) >= 1).await;
    let (status, _) = d.http("GET", "/liveness").await.expect("GET /liveness");
    assert_eq!(status, 200);
    let log = d.log();
    assert_eq!(warnings(&log), 1, "one a minute:\n{}", tail(&log, 20));
    assert!(
        log.contains("event history: 500 damaged line(s) skipped, the newest: "),
        "{}",
        tail(&log, 20)
    );
}
