//! pglab against real PostgreSQL (needs the server binaries; see PGLAB_BIN_DIR).

use std::time::{Duration, Instant};

use pglab::{process, wait_for, Cluster, ClusterSpec, LabError, Proxy, ProxyMode};
use tokio_postgres::NoTls;

const DEADLINE: Duration = Duration::from_secs(30);

fn spec(standbys: usize) -> ClusterSpec {
    ClusterSpec {
        standbys,
        ..ClusterSpec::default()
    }
}

async fn connect(conninfo: &str) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(conninfo, NoTls).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

async fn wait_rows(cluster: &Cluster, name: &str, rows: i64) {
    wait_for(&format!("{name} to show {rows} rows"), DEADLINE, || async {
        Ok(cluster.load_count(name).await? == rows)
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn two_standbys_stream_and_replicate() {
    let cluster = Cluster::start(ClusterSpec::default()).await.unwrap();
    let names: Vec<&str> = cluster.nodes().iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["pg1", "pg2", "pg3"]);

    assert!(!cluster.in_recovery("pg1").await.unwrap());
    for standby in ["pg2", "pg3"] {
        assert!(cluster.in_recovery(standby).await.unwrap());
        let rows = cluster
            .sql(standby, "SELECT status FROM pg_stat_wal_receiver")
            .await
            .unwrap();
        assert_eq!(rows[0].get::<_, String>(0), "streaming");
    }
    let rows = cluster
        .sql(
            "pg1",
            "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'",
        )
        .await
        .unwrap();
    assert_eq!(rows[0].get::<_, i64>(0), 2);

    cluster.write_load(100).await.unwrap();
    assert_eq!(cluster.load_count("pg1").await.unwrap(), 100);
    wait_rows(&cluster, "pg2", 100).await;
    wait_rows(&cluster, "pg3", 100).await;

    // The monitoring role logs in over TCP with its password (scram), and only with it.
    for node in cluster.nodes() {
        let client = connect(&cluster.monitor_conninfo(&node.name)).await.unwrap();
        let row = client.query_one("SELECT current_user", &[]).await.unwrap();
        assert_eq!(row.get::<_, String>(0), "pglookout");
    }
    let wrong = cluster
        .monitor_conninfo("pg1")
        .replace(cluster.monitor_password(), "wrong");
    assert!(connect(&wrong).await.is_err());

    // The root dir is traversable by the postgres user.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(cluster.dir()).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o755);
}

#[tokio::test]
async fn kill9_stop_and_start_node() {
    let cluster = Cluster::start(spec(1)).await.unwrap();
    let port = cluster.port("pg2");
    let pid = cluster.node("pg2").postmaster_pid().unwrap();

    cluster.kill9("pg2").unwrap();
    assert!(!process::pid_alive(pid));
    assert!(!cluster.node("pg2").is_running());
    let refused = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
    assert!(cluster.sql("pg2", "SELECT 1").await.is_err());

    cluster.start_node("pg2").await.unwrap();
    cluster.sql("pg2", "SELECT 1").await.unwrap();
    cluster.wait_streaming("pg2").await.unwrap();
    cluster.write_load(10).await.unwrap();
    wait_rows(&cluster, "pg2", 10).await;
    assert!(cluster.start_node("pg2").await.is_err(), "already running");

    // A fast stop of the primary, then a restart: the standby reconnects.
    cluster.stop("pg1").await.unwrap();
    assert!(!cluster.node("pg1").is_running());
    assert!(cluster.sql("pg1", "SELECT 1").await.is_err());
    cluster.start_node("pg1").await.unwrap();
    cluster.write_load(5).await.unwrap();
    wait_rows(&cluster, "pg2", 15).await;
}

#[tokio::test]
async fn promote_standby() {
    let cluster = Cluster::start(spec(1)).await.unwrap();
    cluster.stop("pg1").await.unwrap();
    cluster.promote("pg2").await.unwrap();
    assert!(!cluster.in_recovery("pg2").await.unwrap());
    assert_eq!(cluster.current_primary().await.unwrap(), "pg2");
    cluster.write_load(7).await.unwrap();
    assert_eq!(cluster.load_count("pg2").await.unwrap(), 7);
}

#[tokio::test]
async fn pause_replay_and_cut_wal_stream() {
    let cluster = Cluster::start(spec(1)).await.unwrap();

    cluster.pause_replay("pg2").await.unwrap();
    let rows = cluster.sql("pg2", "SELECT pg_is_wal_replay_paused()").await.unwrap();
    assert!(rows[0].get::<_, bool>(0));
    cluster.write_load(20).await.unwrap();
    let lsn = cluster.sql("pg1", "SELECT pg_current_wal_lsn()::text").await.unwrap()[0].get::<_, String>(0);
    // WAL is still received while replay is paused, but not applied.
    // pg_stat_wal_receiver.received_lsn became flushed_lsn in 13
    let column = if cluster.env().major >= 13 {
        "flushed_lsn"
    } else {
        "received_lsn"
    };
    let received = format!("SELECT {column} >= '{lsn}'::pg_lsn FROM pg_stat_wal_receiver");
    wait_for("pg2 to receive the new WAL", DEADLINE, || async {
        Ok(cluster.sql("pg2", &received).await?[0].get::<_, bool>(0))
    })
    .await
    .unwrap();
    assert_eq!(cluster.load_count("pg2").await.unwrap(), 0);
    cluster.resume_replay("pg2").await.unwrap();
    wait_rows(&cluster, "pg2", 20).await;

    cluster.cut_wal_stream("pg2").await.unwrap();
    let rows = cluster
        .sql("pg1", "SELECT count(*) FROM pg_stat_replication")
        .await
        .unwrap();
    assert_eq!(rows[0].get::<_, i64>(0), 0);
    cluster.write_load(5).await.unwrap();
    assert_eq!(cluster.load_count("pg2").await.unwrap(), 20);
    cluster.restore_wal_stream("pg2").await.unwrap();
    cluster.wait_streaming("pg2").await.unwrap();
    wait_rows(&cluster, "pg2", 25).await;
}

#[tokio::test]
async fn proxy_pass_refuse_blackhole() {
    let cluster = Cluster::start(spec(0)).await.unwrap();
    let proxy = Proxy::start(cluster.port("pg1")).await.unwrap();
    let via = cluster.monitor_conninfo_via("pg1", proxy.port());

    // Pass forwards.
    let existing = connect(&via).await.unwrap();
    existing.simple_query("SELECT 1").await.unwrap();

    // Blackhole: a new connection hangs, an existing one stops answering.
    proxy.set_mode(ProxyMode::Blackhole);
    let attempt = tokio::time::timeout(Duration::from_secs(1), connect(&via)).await;
    assert!(attempt.is_err(), "connect through a blackhole must time out");
    let query = tokio::time::timeout(Duration::from_secs(1), existing.simple_query("SELECT 1")).await;
    assert!(query.is_err(), "a query through a blackhole must time out");

    // Refuse: existing connections are cut, new ones fail fast.
    proxy.set_mode(ProxyMode::Refuse);
    let started = Instant::now();
    let query = tokio::time::timeout(Duration::from_secs(5), existing.simple_query("SELECT 1"))
        .await
        .expect("an existing connection must fail fast when refused");
    assert!(query.is_err());
    let attempt = tokio::time::timeout(Duration::from_secs(5), connect(&via))
        .await
        .expect("connect must fail fast when refused");
    assert!(attempt.is_err());
    assert!(started.elapsed() < Duration::from_secs(2));

    // Back to Pass.
    proxy.set_mode(ProxyMode::Pass);
    let client = connect(&via).await.unwrap();
    let row = client.query_one("SELECT current_user", &[]).await.unwrap();
    assert_eq!(row.get::<_, String>(0), "pglookout");

    // Dropping the proxy closes its port.
    let port = proxy.port();
    drop(proxy);
    wait_for("the proxy port to close", DEADLINE, || async {
        Ok(tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err())
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn drop_stops_servers_and_removes_dir() {
    let cluster = Cluster::start(spec(1)).await.unwrap();
    let dir = cluster.dir().to_path_buf();
    let running = process::pids_with_cwd_under(&dir);
    // Two postmasters plus their auxiliary processes.
    assert!(running.len() > 2, "{running:?}");
    drop(cluster);
    assert!(!dir.exists());
    assert_eq!(process::pids_with_cwd_under(&dir), Vec::<i32>::new());
    for pid in running {
        assert!(!process::pid_alive(pid), "pid {pid} survived");
    }

    // Also when the owner panics.
    let (tx, rx) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(async move {
        let cluster = Cluster::start(spec(0)).await.unwrap();
        tx.send(cluster.dir().to_path_buf()).unwrap();
        panic!("test panic while owning a cluster");
    });
    assert!(task.await.unwrap_err().is_panic());
    let dir = rx.await.unwrap();
    assert!(!dir.exists());
    assert_eq!(process::pids_with_cwd_under(&dir), Vec::<i32>::new());
}

/// The servers are the major the environment asked for (`PGLAB_PG_VERSION`), so a matrix run
/// cannot silently test the machine's PostgreSQL instead.
#[tokio::test]
async fn the_servers_are_the_requested_major() {
    let cluster = Cluster::start(spec(0)).await.unwrap();
    let rows = cluster.sql("pg1", "SHOW server_version_num").await.unwrap();
    let num: u32 = rows[0].get::<_, String>(0).parse().unwrap();
    assert_eq!(num / 10000, cluster.env().major);
    if let Ok(v) = std::env::var("PGLAB_PG_VERSION") {
        if std::env::var_os("PGLAB_BIN_DIR").is_none() && !v.trim().is_empty() {
            assert_eq!(num / 10000, v.trim().parse::<u32>().unwrap(), "PGLAB_PG_VERSION={v}");
        }
    }
    eprintln!("PostgreSQL {} ({num})", cluster.env().version);
}

#[test]
fn missing_binaries_are_named() {
    let err = pglab::env::check_binaries(std::path::Path::new("/nonexistent/bin")).unwrap_err();
    assert!(matches!(err, LabError::BinariesNotFound(_)));
    assert_eq!(
        err.to_string(),
        "PostgreSQL server binaries (initdb, postgres, pg_ctl) not found in /nonexistent/bin \
         (install postgresql-15, set PGLAB_BIN_DIR, or set PGLAB_PG_VERSION to fetch a build)"
    );
}

#[tokio::test]
async fn wait_for_names_what_timed_out() {
    let err = wait_for("the impossible", Duration::from_millis(120), || async {
        anyhow::Ok(false)
    })
    .await
    .unwrap_err();
    assert!(err.to_string().contains("the impossible"), "{err}");
    let got = wait_for("a value", DEADLINE, || async { anyhow::Ok(Some(7)) })
        .await
        .unwrap();
    assert_eq!(got, 7);
}
