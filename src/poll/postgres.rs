//! Probing one PostgreSQL node: the connection (kept between probes, reopened when lost, and
//! closed with whatever holds it), a probe's deadline, the original's queries and ours (a
//! primary's timeline and synchronous replication, our own standby's wait for WAL), and turning
//! their answers into [`PgFields`]. It owns nothing but its connection; the poller decides what to do
//! with the result.

use crate::conninfo::ConnInfo;
use crate::lsn::Lsn;
use crate::state::{PgFields, ReplicationSlot, SyncReplication, Timestamp, WalSender};
use chrono::DateTime;
use postgres_openssl::MakeTlsConnector;
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, SimpleQueryMessage};
use tokio_util::task::AbortOnDropHandle;

/// How long a TLS context is reused before it is built again, re-reading the certificate, key
/// and CRL files (libpq reads them on every connection; we do at most once per this period).
const TLS_REUSE: Duration = Duration::from_secs(60);

/// The TLS connector for `conninfo`, shared by every probe with the same `ssl*` settings.
///
/// Building one is expensive: openssl's `SslConnector::builder` parses the whole system CA
/// bundle (even when nothing is verified), about 10 ms of CPU and 0.7 MB that stays allocated
/// while the connection attempt lasts. Built per connect, a thousand nodes connecting at once
/// kept both cores busy for minutes, held 700 MB and timed out every attempt
/// (docs/performance.md). A failure to build is remembered as well, so a missing certificate
/// file does not cost a CA-bundle parse per node per poll either.
fn tls_for(conninfo: &ConnInfo) -> Result<MakeTlsConnector, String> {
    type Cache = HashMap<String, (Instant, Result<MakeTlsConnector, String>)>;
    static CACHE: OnceLock<Mutex<Cache>> = OnceLock::new();
    // `ConnInfo::tls` reads only `ssl*` keys: building from those alone gives the same
    // connector, and they are the cache key.
    let mut ssl = ConnInfo::default();
    for (k, v) in conninfo.iter().filter(|(k, _)| k.starts_with("ssl")) {
        ssl.set(k, v);
    }
    let key = ssl.render();
    let now = Instant::now();
    // Held while building so that a thousand probes starting together build one context.
    let mut cache = CACHE
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    cache.retain(|_, (built, _)| now.duration_since(*built) < TLS_REUSE);
    let (_, tls) = cache
        .entry(key)
        .or_insert_with(|| (now, ssl.tls().map_err(|e| e.to_string())));
    tls.clone()
}

/// Why a probe failed.
#[derive(Debug, Clone)]
pub struct ProbeError {
    pub message: String,
    /// The server refused our credentials (for the `authentication_error` alert).
    pub auth: bool,
    /// Where it failed, for the StatsD `where` tag.
    pub site: &'static str,
}

struct Connected {
    client: Client,
    version_num: u32,
    /// The task driving the connection's socket. Dropping the client alone does not end it
    /// while a query is unanswered: a server that stopped answering mid-query kept socket and
    /// backend alive, one more per probe. Aborted with this struct, on every path that forgets
    /// the connection (deadline, error, the probe or its worker dropped).
    _task: AbortOnDropHandle<()>,
}

/// One node's connection and what we remember about it between probes.
pub struct PgProbe {
    name: String,
    conninfo: ConnInfo,
    /// Our own node (`own_db`): the only one whose startup process's wait event is read (the
    /// settle rule after a failed failover command looks at our node only; reading
    /// `pg_stat_activity` on every node took a snapshot of every backend of every server on
    /// every poll).
    own: bool,
    conn: Option<Connected>,
    /// The slot query was refused; logged once until it works again.
    slots_denied: bool,
    /// `primary_conninfo` was not readable at the last probe of this standby (logged once).
    conninfo_denied: bool,
    /// The synchronous replication query failed; logged once until it works again.
    sync_failed: bool,
}

fn is_auth_error(e: &tokio_postgres::Error) -> bool {
    matches!(
        e.code(),
        Some(c) if *c == SqlState::INVALID_PASSWORD || *c == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
    ) || e.to_string().contains("password authentication")
}

/// The error text with its causes, never containing connection parameters.
fn describe(e: &tokio_postgres::Error) -> String {
    super::error_chain(e)
}

fn micros_to_ts(s: Option<&str>) -> Option<Timestamp> {
    let us: i64 = s?.parse().ok()?;
    DateTime::from_timestamp_micros(us)
}

fn lsn(s: Option<&str>) -> Option<Lsn> {
    s.and_then(|s| s.parse().ok())
}

fn rows(msgs: Vec<SimpleQueryMessage>) -> Vec<tokio_postgres::SimpleQueryRow> {
    msgs.into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some(r),
            _ => None,
        })
        .collect()
}

/// `(receive, replay)` function names by server version (the state keys keep the 9.x names).
/// From 10 on, and on our own node only (`waits`), also whether the startup process waits for
/// more WAL: the wait events of that loop are `RecoveryWalAll` and `RecoveryWalStream` up to
/// 12, `RecoveryWalStream` and `RecoveryRetrieveRetryInterval` from 13 (NULL for a role without
/// `pg_read_all_stats`).
fn status_query(version_num: u32, waits: bool) -> &'static str {
    // Times are read as microseconds since the epoch so that they are UTC whatever the
    // session's TimeZone is (the original mis-converts offsets west of UTC by a day).
    if version_num >= 100_000 && !waits {
        "SELECT (extract(epoch FROM now()) * 1000000)::int8 AS db_time, pg_is_in_recovery(), \
         (extract(epoch FROM pg_last_xact_replay_timestamp()) * 1000000)::int8 AS pg_last_xact_replay_timestamp, \
         pg_last_wal_receive_lsn()::text AS pg_last_xlog_receive_location, \
         pg_last_wal_replay_lsn()::text AS pg_last_xlog_replay_location"
    } else if version_num >= 100_000 {
        "SELECT (extract(epoch FROM now()) * 1000000)::int8 AS db_time, pg_is_in_recovery(), \
         (extract(epoch FROM pg_last_xact_replay_timestamp()) * 1000000)::int8 AS pg_last_xact_replay_timestamp, \
         pg_last_wal_receive_lsn()::text AS pg_last_xlog_receive_location, \
         pg_last_wal_replay_lsn()::text AS pg_last_xlog_replay_location, \
         (SELECT wait_event IN ('RecoveryWalAll', 'RecoveryWalStream', 'RecoveryRetrieveRetryInterval') \
          FROM pg_stat_activity WHERE backend_type = 'startup' LIMIT 1) AS startup_waiting_for_wal"
    } else {
        "SELECT (extract(epoch FROM now()) * 1000000)::int8 AS db_time, pg_is_in_recovery(), \
         (extract(epoch FROM pg_last_xact_replay_timestamp()) * 1000000)::int8 AS pg_last_xact_replay_timestamp, \
         pg_last_xlog_receive_location()::text, pg_last_xlog_replay_location()::text"
    }
}

/// From PostgreSQL 13 (`decide::receiver`): whether the node confirms WAL to no primary:
/// `primary_conninfo` is empty and no WAL receiver runs. Not true for a role that may not read
/// `primary_conninfo` (it needs `pg_read_all_settings`).
const RECEIVER_CUT_QUERY: &str =
    "SELECT (SELECT setting FROM pg_catalog.pg_settings WHERE name = 'primary_conninfo') = '' \
     AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_stat_wal_receiver)";

/// A primary's position and its timeline (the first 8 hex digits of the name of the WAL
/// file it writes, which changes at once on promotion, unlike the checkpoint's).
fn current_lsn_query(version_num: u32) -> &'static str {
    if version_num >= 100_000 {
        "SELECT pg_current_wal_lsn()::text AS pg_last_xlog_replay_location, \
         substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8) AS timeline"
    } else {
        "SELECT pg_current_xlog_location()::text AS pg_last_xlog_replay_location, \
         substr(pg_xlogfile_name(pg_current_xlog_location()), 1, 8) AS timeline"
    }
}

fn timeline(hex: Option<&str>) -> Option<u32> {
    u32::from_str_radix(hex?, 16).ok().filter(|t| *t > 0)
}

fn heartbeat_query(version_num: u32) -> &'static str {
    if version_num >= 100_000 {
        "SELECT txid_current(), pg_current_wal_lsn()::text AS pg_last_xlog_replay_location"
    } else {
        "SELECT txid_current(), pg_current_xlog_location()::text AS pg_last_xlog_replay_location"
    }
}

const SLOTS_QUERY: &str = "SELECT slot_name, plugin, slot_type, database, catalog_xmin::text, \
    restart_lsn::text, confirmed_flush_lsn::text, \
    pg_catalog.encode(pg_catalog.pg_read_binary_file('pg_replslot/' || slot_name || '/state'), 'base64') AS state_data \
    FROM pg_catalog.pg_replication_slots WHERE slot_type = 'logical' AND NOT temporary";

/// A primary's synchronous replication settings and its WAL senders, in one round trip: one
/// row per WAL sender, the settings repeated in each, and a single row without a sender
/// (`pid` NULL) when there is none. `synchronous_commit` is read as a new session would get it
/// (`reset_val`): our own session set it to `off`. The LSN columns were `*_location` before 10.
fn sync_query(version_num: u32) -> &'static str {
    if version_num >= 100_000 {
        "SELECT pg_catalog.current_setting('synchronous_standby_names'), \
         (SELECT reset_val FROM pg_catalog.pg_settings WHERE name = 'synchronous_commit'), \
         r.pid IS NOT NULL, r.application_name, r.state, r.sync_state, r.sync_priority, \
         r.sent_lsn::text, r.write_lsn::text, r.flush_lsn::text, r.replay_lsn::text \
         FROM (SELECT 1) AS one LEFT JOIN pg_catalog.pg_stat_replication AS r ON true \
         ORDER BY r.application_name, r.pid"
    } else {
        "SELECT pg_catalog.current_setting('synchronous_standby_names'), \
         (SELECT reset_val FROM pg_catalog.pg_settings WHERE name = 'synchronous_commit'), \
         r.pid IS NOT NULL, r.application_name, r.state, r.sync_state, r.sync_priority, \
         r.sent_location::text, r.write_location::text, r.flush_location::text, r.replay_location::text \
         FROM (SELECT 1) AS one LEFT JOIN pg_catalog.pg_stat_replication AS r ON true \
         ORDER BY r.application_name, r.pid"
    }
}

/// The answer of [`sync_query`]. A value the server shows that does not parse (an LSN, a
/// priority) is left out of its row, never trusted.
fn parse_sync(rows: &[tokio_postgres::SimpleQueryRow]) -> Option<SyncReplication> {
    let first = rows.first()?;
    let text = |r: &tokio_postgres::SimpleQueryRow, i: usize| r.try_get(i).ok().flatten().map(str::to_string);
    let lsn_at = |r: &tokio_postgres::SimpleQueryRow, i: usize| lsn(r.try_get(i).ok().flatten());
    Some(SyncReplication {
        synchronous_standby_names: text(first, 0),
        synchronous_commit: text(first, 1),
        pg_stat_replication: rows
            .iter()
            .filter(|r| r.try_get(2).ok().flatten() == Some("t"))
            .map(|r| WalSender {
                application_name: text(r, 3),
                state: text(r, 4),
                sync_state: text(r, 5),
                sync_priority: r.try_get(6).ok().flatten().and_then(|p| p.parse().ok()),
                sent_lsn: lsn_at(r, 7),
                write_lsn: lsn_at(r, 8),
                flush_lsn: lsn_at(r, 9),
                replay_lsn: lsn_at(r, 10),
            })
            .collect(),
    })
}

/// Standby replay staleness: the standby's `now()` minus its last replayed commit time.
pub fn replication_time_lag(db_time: Timestamp, replay: Timestamp) -> f64 {
    let d = db_time - replay;
    (d.num_microseconds().unwrap_or(i64::MAX) as f64 / 1e6).abs()
}

impl PgProbe {
    pub fn new(name: &str, conninfo: ConnInfo, own: bool) -> Self {
        PgProbe {
            name: name.to_string(),
            conninfo,
            own,
            conn: None,
            slots_denied: false,
            conninfo_denied: false,
            sync_failed: false,
        }
    }

    pub fn conninfo(&self) -> &ConnInfo {
        &self.conninfo
    }

    /// Forgets the connection (after a timeout the protocol state is unknown).
    pub fn disconnect(&mut self) {
        self.conn = None;
    }

    async fn connect(&mut self) -> Result<&Connected, ProbeError> {
        if self.conn.as_ref().is_some_and(|c| c.client.is_closed()) {
            self.conn = None;
        }
        if self.conn.is_none() {
            let fail = |message: String, auth: bool| ProbeError {
                message,
                auth,
                site: "_connect_to_db",
            };
            let config = self.conninfo.pg_config().map_err(|e| fail(e.to_string(), false))?;
            let tls = tls_for(&self.conninfo).map_err(|e| fail(e, false))?;
            let (client, connection) = config
                .connect(tls)
                .await
                .map_err(|e| fail(describe(&e), is_auth_error(&e)))?;
            let name = self.name.clone();
            // Held from here on, so that a probe dropped during the set-up queries closes the
            // connection too.
            let mut conn = Connected {
                client,
                version_num: 0,
                _task: AbortOnDropHandle::new(tokio::spawn(async move {
                    if let Err(e) = connection.await {
                        tracing::debug!(target: "ClusterMonitor", "connection to {name} ended: {e}");
                    }
                })),
            };
            // A heartbeat must never wait for a synchronous standby.
            conn.client
                .simple_query("SET synchronous_commit = off")
                .await
                .map_err(|e| fail(describe(&e), false))?;
            let version = rows(
                conn.client
                    .simple_query("SHOW server_version_num")
                    .await
                    .map_err(|e| fail(describe(&e), false))?,
            );
            conn.version_num = version
                .first()
                .and_then(|r| r.get(0))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            tracing::info!(target: "ClusterMonitor", "connected to {} ({})", self.name, self.conninfo.masked());
            self.conn = Some(conn);
        }
        self.conn.as_ref().ok_or_else(|| ProbeError {
            message: "no connection".into(),
            auth: false,
            site: "_connect_to_db",
        })
    }

    /// [`PgProbe::probe`] bounded by `deadline`. Past it the connection is closed: the protocol
    /// state of a connection cut off mid-query is unknown, and a server that stopped answering
    /// must cost one connection, not one per probe.
    pub async fn probe_within(&mut self, deadline: Duration) -> Result<PgFields, ProbeError> {
        match tokio::time::timeout(deadline, self.probe()).await {
            Ok(r) => r,
            Err(_) => {
                self.disconnect();
                Err(ProbeError {
                    message: format!("no answer within {} s", deadline.as_secs_f64()),
                    auth: false,
                    site: "_query_cluster_member_state",
                })
            }
        }
    }

    /// One probe: connect if needed, run the queries, parse. On error the connection is
    /// dropped so the next probe reconnects.
    pub async fn probe(&mut self) -> Result<PgFields, ProbeError> {
        let result = self.probe_inner().await;
        if result.is_err() {
            self.conn = None;
        }
        result
    }

    async fn probe_inner(&mut self) -> Result<PgFields, ProbeError> {
        let name = self.name.clone();
        let query_err = |e: tokio_postgres::Error| ProbeError {
            message: describe(&e),
            auth: false,
            site: "_query_cluster_member_state",
        };
        let own = self.own;
        let conn = self.connect().await?;
        let version_num = conn.version_num;
        // Read before the position, so that a cut seen means the position read next is final.
        let mut denied = false;
        let cut = if version_num >= 130_000 {
            let r = rows(conn.client.simple_query(RECEIVER_CUT_QUERY).await.map_err(query_err)?);
            let value = r.first().and_then(|r| r.get(0));
            // NULL: primary_conninfo is not readable, and a cut can never be seen
            denied = value.is_none();
            Some(value == Some("t"))
        } else {
            None
        };
        let status = rows(
            conn.client
                .simple_query(status_query(version_num, own))
                .await
                .map_err(query_err)?,
        );
        let row = status.first().ok_or_else(|| ProbeError {
            message: "status query returned no row".into(),
            auth: false,
            site: "_query_cluster_member_state",
        })?;
        let db_time = micros_to_ts(row.get(0));
        let in_recovery = row.get(1) == Some("t");
        let replay_ts = micros_to_ts(row.get(2));
        let mut fields = PgFields {
            db_time,
            pg_is_in_recovery: in_recovery,
            pg_last_xact_replay_timestamp: replay_ts,
            pg_last_xlog_receive_location: lsn(row.get(3)),
            pg_last_xlog_replay_location: lsn(row.get(4)),
            replication_time_lag: match (db_time, replay_ts) {
                (Some(now), Some(replay)) => Some(replication_time_lag(now, replay)),
                _ => None,
            },
            replication_slots: None,
            timeline: None,
            startup_waiting_for_wal: match row.try_get(5).ok().flatten() {
                Some("t") => Some(true),
                Some("f") => Some(false),
                _ => None,
            },
            sync: None,
            receiver_cut: cut,
        };
        if in_recovery {
            if denied && !self.conninfo_denied {
                tracing::info!(target: "ClusterMonitor",
                    "{name}: primary_conninfo is not readable: with synchronous_mode on or strict no failover can count this standby (the role needs pg_read_all_settings)");
            }
            self.conninfo_denied = denied;
            return Ok(fields);
        }
        // A primary: its own position is read apart from the heartbeat, so that a failing
        // heartbeat does not turn a live primary into a dead one.
        fields.pg_last_xact_replay_timestamp = None;
        fields.pg_last_xlog_receive_location = None;
        fields.replication_time_lag = None;
        fields.startup_waiting_for_wal = None;
        fields.receiver_cut = None;
        let current = rows(
            conn.client
                .simple_query(current_lsn_query(version_num))
                .await
                .map_err(query_err)?,
        );
        fields.pg_last_xlog_replay_location = lsn(current.first().and_then(|r| r.get(0)));
        fields.timeline = timeline(current.first().and_then(|r| r.get(1)));

        if version_num >= 100_000 {
            match conn.client.simple_query(SLOTS_QUERY).await {
                Ok(msgs) => {
                    let slots = rows(msgs)
                        .iter()
                        .map(|r| ReplicationSlot {
                            slot_name: r.get(0).map(str::to_string),
                            plugin: r.get(1).map(str::to_string),
                            slot_type: r.get(2).map(str::to_string),
                            database: r.get(3).map(str::to_string),
                            catalog_xmin: r.get(4).map(str::to_string),
                            restart_lsn: r.get(5).map(str::to_string),
                            confirmed_flush_lsn: r.get(6).map(str::to_string),
                            state_data: r.get(7).map(str::to_string),
                        })
                        .collect();
                    fields.replication_slots = Some(slots);
                    if self.slots_denied {
                        tracing::info!(target: "ClusterMonitor", "{name}: replication slot definitions are readable again");
                        self.slots_denied = false;
                    }
                }
                Err(e) if conn.client.is_closed() => return Err(query_err(e)),
                Err(e) => {
                    if !self.slots_denied {
                        let needs = if version_num >= 110_000 {
                            "the pg_read_server_files role and EXECUTE on pg_read_binary_file(text), or superuser"
                        } else {
                            "superuser (before PostgreSQL 11 only a superuser can read server files)"
                        };
                        tracing::warn!(target: "ClusterMonitor",
                            "{name}: cannot read logical replication slot definitions ({}); the monitoring role needs {needs}. Slots are left out of the state until it can; this is logged once",
                            describe(&e));
                        self.slots_denied = true;
                    }
                }
            }
        }
        let Some(conn) = self.conn.as_ref() else {
            return Ok(fields);
        };
        // Only watched, never acted on: a failure leaves the keys out and the primary connected.
        match conn.client.simple_query(sync_query(version_num)).await {
            Ok(msgs) => {
                fields.sync = parse_sync(&rows(msgs));
                if self.sync_failed {
                    tracing::info!(target: "ClusterMonitor", "{name}: synchronous replication state is readable again");
                    self.sync_failed = false;
                }
            }
            Err(e) if conn.client.is_closed() => return Err(query_err(e)),
            Err(e) => {
                if !self.sync_failed {
                    tracing::warn!(target: "ClusterMonitor",
                        "{name}: cannot read the synchronous replication state ({}); it is left out of the state until it can; this is logged once",
                        describe(&e));
                    self.sync_failed = true;
                }
            }
        }
        match conn.client.simple_query(heartbeat_query(version_num)).await {
            Ok(msgs) => {
                if let Some(l) = lsn(rows(msgs).first().and_then(|r| r.get(1))) {
                    fields.pg_last_xlog_replay_location = Some(l);
                }
            }
            Err(e) if conn.client.is_closed() => return Err(query_err(e)),
            Err(e) => {
                tracing::warn!(target: "ClusterMonitor", "{name}: heartbeat txid_current() failed: {}", describe(&e));
            }
        }
        Ok(fields)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::parse_iso;

    #[test]
    fn test_replication_lag() {
        let t = parse_iso("2024-01-01T00:00:00Z").expect("t");
        assert_eq!(replication_time_lag(t, t), 0.0);
        let later = t + chrono::Duration::microseconds(50_000_042);
        assert_eq!(replication_time_lag(later, t), 50.000042);
        assert_eq!(replication_time_lag(t + chrono::Duration::hours(42), t), 151200.0);
        // a replay time ahead of the standby's clock (skew) is still a positive lag
        assert_eq!(replication_time_lag(t, later), 50.000042);
    }

    #[test]
    fn tls_contexts_are_shared_and_so_are_their_errors() {
        let ci = |s: &str| s.parse::<ConnInfo>().expect("conninfo");
        assert!(tls_for(&ci("host=a sslmode=disable")).is_ok());
        assert!(tls_for(&ci("host=b port=2 sslmode=disable")).is_ok());
        let e1 = tls_for(&ci("host=a sslmode=sometimes")).err();
        let e2 = tls_for(&ci("host=b sslmode=sometimes")).err();
        assert!(e1.is_some());
        assert_eq!(e1, e2);
    }

    #[test]
    fn timestamps_come_as_utc_microseconds() {
        assert_eq!(
            micros_to_ts(Some("1704067200000001")).map(|t| crate::state::iso(&t)),
            Some("2024-01-01T00:00:00.000001Z".to_string())
        );
        assert_eq!(micros_to_ts(None), None);
        assert_eq!(micros_to_ts(Some("garbage")), None);
    }

    /// Against real PostgreSQL behind a fault-injecting proxy: a node that stops answering
    /// mid-query, then takes connections and never answers them.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_probe_past_its_deadline_closes_its_connection() {
        let cluster = pglab::Cluster::start(pglab::ClusterSpec {
            standbys: 0,
            ..Default::default()
        })
        .await
        .expect("cluster");
        let name = cluster.nodes()[0].name.clone();
        let proxy = pglab::Proxy::start(cluster.port(&name)).await.expect("proxy");
        let conninfo: ConnInfo = cluster
            .monitor_conninfo_via(&name, proxy.port())
            .parse()
            .expect("conninfo");
        let mut probe = PgProbe::new(&name, conninfo, false);
        // Counted by the proxy's port number, relative to the sockets that carried that number
        // before we connected (an unrelated socket can, rarely).
        let base = proxy.open_client_sockets().expect("count sockets");
        let open = || proxy.open_client_sockets().expect("count sockets").saturating_sub(base);
        let all_closed = || async { Ok(open() == 0) };
        let wait = Duration::from_secs(30);

        probe.probe_within(wait).await.expect("a first probe through the proxy");
        assert_eq!(open(), 1, "one connection, kept between probes");
        probe.probe_within(wait).await.expect("a second probe");
        assert_eq!(open(), 1, "one connection, kept between probes");

        proxy.set_mode(pglab::ProxyMode::Blackhole);
        // The first probe times out mid-query on the connection it had, the next ones while
        // connecting: each must leave nothing open behind it.
        for i in 0..3 {
            let e = probe
                .probe_within(Duration::from_millis(300))
                .await
                .expect_err("a blackholed node answered");
            assert!(e.message.contains("no answer within 0.3 s"), "{}", e.message);
            assert!(open() <= 1, "probe {i}: {} connections open", open());
            pglab::wait_for(&format!("probe {i}'s connection to be closed"), wait, all_closed)
                .await
                .expect("a timed-out probe left its connection open");
        }

        proxy.set_mode(pglab::ProxyMode::Pass);
        probe
            .probe_within(wait)
            .await
            .expect("a probe after the node came back");
        assert_eq!(open(), 1);
        drop(probe);
        pglab::wait_for("a dropped probe's connection to be closed", wait, all_closed)
            .await
            .expect("a dropped probe left its connection open");
    }
}
