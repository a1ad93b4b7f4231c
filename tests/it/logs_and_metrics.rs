//! Logs, syslog, systemd readiness and StatsD from a real daemon beside a real standby; and no
//! password anywhere it writes.

use super::harness::*;
use pglab::daemon::Daemon;
use serde_json::json;
use std::os::unix::net::UnixDatagram;
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
    let mut d =
        Daemon::spawn_with_env(&bin(), "pg2", dir, cfg.clone(), &[("NOTIFY_SOCKET", &notify_env)]).expect("spawn");

    // READY=1 once the first poll round is done: by then every node has been tried.
    let ready = recv_text(&notify).expect("READY=1 within the deadline");
    assert_eq!(ready, "READY=1");
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
    let after_reload = log.split("SIGHUP: reloading").nth(1).unwrap_or_default();
    // the reload line itself is INFO, logged before the new level applies; nothing after it
    let after_reload = after_reload.split_once('\n').map(|(_, rest)| rest).unwrap_or_default();
    assert!(
        !after_reload.contains("\tDEBUG\t") && !after_reload.contains("\tINFO\t"),
        "{after_reload}"
    );
}
