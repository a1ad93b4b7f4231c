//! A real HAProxy (Debian's package) in front of the cluster, routing its write port with
//! `option httpchk GET /primary` against each node's daemon: `psql` through it reaches the
//! primary before a failover and the new primary after it, with no manual step.

use super::harness::DEADLINE;
use pglab::daemon::free_port;
use pglab::fleet::{Fleet, FleetSpec};
use std::process::{Child, Command, Stdio};

struct Haproxy(Child);

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `psql` through the proxy as the superuser: the answer, or the error text.
fn psql(fleet: &Fleet, port: u16, sql: &str) -> Result<String, String> {
    let out = Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-q",
            "-At",
            "-c",
            sql,
        ])
        .env("PGPASSWORD", fleet.cluster.superuser_password())
        .env("PGCONNECT_TIMEOUT", "3")
        .output()
        .map_err(|e| format!("psql: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn haproxy_write_port_follows_the_primary_through_a_failover() {
    let spec = FleetSpec {
        standbys: 2,
        poll_interval: 0.5,
        failover_after: 5.0,
        autofollow: false,
    };
    let fleet = Fleet::start(&spec).await.expect("fleet");
    let write_port = free_port().expect("port");
    let mut servers = String::new();
    for d in &fleet.daemons {
        servers.push_str(&format!(
            "    server {name} 127.0.0.1:{pg} check port {http}\n",
            name = d.name,
            pg = fleet.cluster.port(&d.name),
            http = d.http_port
        ));
    }
    let cfg = format!(
        "global\n    maxconn 64\n\
         defaults\n    mode tcp\n    timeout connect 2s\n    timeout client 60s\n    timeout server 60s\n\
         listen write\n    bind 127.0.0.1:{write_port}\n    option httpchk GET /primary\n    http-check expect status 200\n\
         \x20   default-server inter 300ms fall 2 rise 1 on-marked-down shutdown-sessions\n{servers}"
    );
    let cfg_path = fleet.cluster.dir().join("haproxy.cfg");
    std::fs::write(&cfg_path, cfg).expect("haproxy.cfg");
    let check = Command::new("haproxy")
        .args(["-c", "-f"])
        .arg(&cfg_path)
        .output()
        .expect("haproxy (scripts/deps.sh installs it)");
    assert!(
        check.status.success(),
        "haproxy -c: {}",
        String::from_utf8_lossy(&check.stderr)
    );
    let _haproxy = Haproxy(
        Command::new("haproxy")
            .args(["-db", "-f"])
            .arg(&cfg_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("haproxy"),
    );

    let pg1_port = fleet.cluster.port("pg1").to_string();
    let expected = format!("{pg1_port} false");
    let query = "SELECT current_setting('port') || ' ' || pg_is_in_recovery()::text";
    // HAProxy starts every server as up until its checks fail: wait until six connections in a
    // row (round robin over three servers) all land on the primary.
    pglab::wait_for("psql through HAProxy reaches only the primary", DEADLINE, || {
        let all = (0..6).all(|_| psql(&fleet, write_port, query).is_ok_and(|a| a == expected));
        async move { Ok(all) }
    })
    .await
    .expect("primary behind the write port");
    psql(
        &fleet,
        write_port,
        "CREATE TABLE lb_test (x int); INSERT INTO lb_test VALUES (1)",
    )
    .expect("write before");
    // replication is asynchronous: a write not yet on the standbys is lost by the failover
    // (CI, PostgreSQL 11: "relation lb_test does not exist" on the new primary)
    for standby in ["pg2", "pg3"] {
        pglab::wait_for(&format!("{standby} to replay the write"), DEADLINE, || async {
            let rows = fleet.cluster.sql(standby, "SELECT count(*) FROM lb_test").await;
            Ok(rows.is_ok_and(|r| r.first().map(|r| r.get::<_, i64>(0)) == Some(1)))
        })
        .await
        .expect("the write on every standby");
    }

    fleet.cluster.kill9("pg1").expect("kill -9 pg1");
    let after = pglab::wait_for("psql through HAProxy reaches the new primary", DEADLINE, || {
        let r = psql(&fleet, write_port, query);
        let ok = r
            .ok()
            .filter(|a| a.ends_with(" false") && !a.starts_with(pg1_port.as_str()));
        async move { Ok(ok) }
    })
    .await
    .expect("new primary behind the write port");
    let new_port: u16 = after.split(' ').next().and_then(|p| p.parse().ok()).expect("port");
    assert!(
        fleet
            .cluster
            .nodes()
            .iter()
            .any(|n| n.port == new_port && n.name != "pg1"),
        "{after}"
    );
    // the write port takes writes again, and the data written before the failover is there
    assert_eq!(
        psql(
            &fleet,
            write_port,
            "INSERT INTO lb_test VALUES (2); SELECT count(*) FROM lb_test"
        )
        .expect("write after"),
        "2"
    );
}

/// A poll round waits for the slowest node, but a node check looks only at its own node: with
/// a standby that hangs (every probe of it takes the whole 5 s deadline), the healthy
/// primary's `/primary` answers 200 every time. Before, it answered 503 ("no poll round
/// completed") whenever a round took longer than two 1 s intervals.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_standby_never_drains_the_healthy_primary() {
    use super::harness::*;
    use serde_json::json;
    let cluster = lab_cluster(1).await;
    let proxy = pglab::Proxy::start(cluster.port("pg2")).await.expect("proxy");
    let mut cfg = config(&cluster, "pg1", json!({}));
    cfg["db_poll_interval"] = json!(1.0);
    cfg["replication_state_check_interval"] = json!(1.0);
    cfg["remote_conns"]["pg2"] = json!(cluster.monitor_conninfo_via("pg2", proxy.port()));
    let d = spawn(&cluster, "pg1", cfg);
    wait_state(&d, "both nodes polled", |s| connected(s, "pg1") && connected(s, "pg2")).await;
    proxy.set_mode(pglab::ProxyMode::Blackhole);
    // Sample /primary until pg2 has timed out three times (three new failed fetches).
    let failed_fetches = std::cell::RefCell::new(std::collections::BTreeSet::new());
    let samples = std::cell::Cell::new(0);
    pglab::wait_for("three timed-out probes of pg2", DEADLINE, || async {
        let state = d.state();
        let (status, body) = d.http("GET", "/primary").await?;
        samples.set(samples.get() + 1);
        assert_eq!(status, 200, "sample {}: {body}", samples.get());
        if let Some(s) = state.filter(|s| !connected(s, "pg2")) {
            failed_fetches
                .borrow_mut()
                .insert(node(&s, "pg2")["fetch_time"].to_string());
        }
        Ok(failed_fetches.borrow().len() >= 3)
    })
    .await
    .expect("pg2 timing out");
    let samples = samples.get();
    assert!(samples > 10, "{samples} samples");

    // a typo in a check line is an error, not a silently weaker check
    for bad in ["/replica?lag", "/replica?LAG=1s", "/replica?lag=", "/primary?lag=1s"] {
        let (status, body) = d.http("GET", bad).await.expect("answer");
        assert_eq!(status, 400, "{bad}: {body}");
    }
    let (status, body) = d
        .http("GET", &format!("/replica?lag={}s", "9".repeat(400)))
        .await
        .expect("answer");
    assert!(status == 400 && body.contains("too large"), "{status} {body}");
}
