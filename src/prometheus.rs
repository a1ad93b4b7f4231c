//! Prometheus `/metrics`: the counters the daemon keeps (a small registry of atomics shared by
//! the poller, the decision loop and the HTTP server) and the rendering of those counters plus
//! the latest snapshot in the OpenMetrics text format (or the classic 0.0.4 text format for
//! scrapers that do not ask for OpenMetrics). Names use the `pglookout_` prefix and base units.

use crate::state::Snapshot;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Upper bounds (seconds) of the poll-duration histogram buckets.
pub const POLL_BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];

pub const OPENMETRICS_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
pub const TEXT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Counters that are not derived from the snapshot.
#[derive(Default)]
pub struct Counters {
    poll_buckets: [AtomicU64; POLL_BUCKETS.len()],
    poll_count: AtomicU64,
    poll_sum_micros: AtomicU64,
    poll_failures: AtomicU64,
    decisions: AtomicU64,
    failovers: AtomicU64,
    fences: AtomicU64,
    state_write_failures: AtomicU64,
    /// HTTP requests refused for want of a valid bearer token: [none, wrong].
    http_auth_failures: [AtomicU64; 2],
    /// HTTP connections closed at once: [the client had its share, only reserved slots were free].
    http_refused: [AtomicU64; 2],
    /// command name -> (runs, failures)
    commands: Mutex<BTreeMap<String, (u64, u64)>>,
    /// task -> panics (see `supervise`)
    task_crashes: Mutex<BTreeMap<String, u64>>,
}

impl Counters {
    pub fn observe_poll(&self, seconds: f64, ok: bool) {
        for (i, le) in POLL_BUCKETS.iter().enumerate() {
            if seconds <= *le {
                self.poll_buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.poll_count.fetch_add(1, Ordering::Relaxed);
        self.poll_sum_micros
            .fetch_add((seconds * 1e6) as u64, Ordering::Relaxed);
        if !ok {
            self.poll_failures.fetch_add(1, Ordering::Relaxed);
        }
    }
    pub fn decision(&self) {
        self.decisions.fetch_add(1, Ordering::Relaxed);
    }
    pub fn failover(&self) {
        self.failovers.fetch_add(1, Ordering::Relaxed);
    }
    pub fn fence(&self) {
        self.fences.fetch_add(1, Ordering::Relaxed);
    }
    pub fn state_write_failed(&self) {
        self.state_write_failures.fetch_add(1, Ordering::Relaxed);
    }
    /// A request refused for want of a valid bearer token (`wrong`: it had one, not ours).
    pub fn http_auth_failed(&self, wrong: bool) {
        self.http_auth_failures[usize::from(wrong)].fetch_add(1, Ordering::Relaxed);
    }
    /// A connection closed at once because its client already had its share of connections.
    pub fn http_refused_client_cap(&self) {
        self.http_refused[0].fetch_add(1, Ordering::Relaxed);
    }
    /// A connection closed at once because only the slots kept for reserved clients were free.
    pub fn http_refused_server_full(&self) {
        self.http_refused[1].fetch_add(1, Ordering::Relaxed);
    }
    pub fn task_crashed(&self, task: &str) {
        if let Ok(mut m) = self.task_crashes.lock() {
            *m.entry(task.to_string()).or_default() += 1;
        }
    }
    /// How many runs of the command `name` were counted, and how many of them failed.
    pub fn command_counts(&self, name: &str) -> (u64, u64) {
        self.commands
            .lock()
            .map(|m| m.get(name).copied().unwrap_or_default())
            .unwrap_or_default()
    }
    pub fn command(&self, name: &str, ok: bool) {
        if let Ok(mut m) = self.commands.lock() {
            let e = m.entry(name.to_string()).or_default();
            e.0 += 1;
            if !ok {
                e.1 += 1;
            }
        }
    }
}

/// Everything a scrape shows besides the snapshot.
pub struct Extra<'a> {
    pub own_db: Option<&'a str>,
    pub current_master: Option<&'a str>,
    /// alert file name -> present
    pub alerts: Vec<(&'static str, bool)>,
    /// Whether alert files can be created in `alert_file_dir` (`None`: not looked at yet).
    /// When they cannot, `pglookout_alert_file_present` is left out: its 0 would claim "no
    /// alert" where the truth is "cannot write one".
    pub alert_dir_writable: Option<bool>,
    pub version: &'static str,
    /// When the state file was last written successfully (`/metrics` only, not StatsD).
    pub state_written_at: Option<crate::state::Timestamp>,
}

impl<'a> Extra<'a> {
    /// From the running config and the file thread's latest look at the alert files (no file
    /// I/O here: this runs on the decision loop and in HTTP handlers).
    pub fn new(
        config: &'a crate::config::Config,
        current_master: Option<&'a str>,
        alerts: Vec<(&'static str, bool)>,
    ) -> Extra<'a> {
        Extra {
            own_db: config.own_db.as_deref(),
            current_master,
            alerts,
            alert_dir_writable: None,
            version: env!("CARGO_PKG_VERSION"),
            state_written_at: None,
        }
    }
}

fn esc(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

struct Out {
    text: String,
    openmetrics: bool,
}

impl Out {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        // OpenMetrics names a counter family without `_total`; the classic format with it.
        let family = if kind == "counter" && self.openmetrics {
            name.trim_end_matches("_total")
        } else {
            name
        };
        let _ = writeln!(self.text, "# HELP {family} {help}");
        let _ = writeln!(self.text, "# TYPE {family} {kind}");
    }
    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                let _ = write!(self.text, "{k}=\"{}\"", esc(v));
            }
            self.text.push('}');
        }
        if value.is_finite() && value.fract() == 0.0 && value.abs() < 1e15 {
            let _ = writeln!(self.text, " {}", value as i64);
        } else {
            let _ = writeln!(self.text, " {value}");
        }
    }
}

/// One gauge family and its samples (labels, value).
pub struct Gauge {
    pub name: &'static str,
    pub help: &'static str,
    pub samples: Vec<(Vec<(&'static str, String)>, f64)>,
}

impl Gauge {
    fn new(name: &'static str, help: &'static str) -> Gauge {
        Gauge {
            name,
            help,
            samples: Vec::new(),
        }
    }
    fn add(&mut self, labels: &[(&'static str, &str)], value: f64) {
        self.samples
            .push((labels.iter().map(|(k, v)| (*k, v.to_string())).collect(), value));
    }
}

/// The gauges of one moment: what `/metrics` shows and what StatsD is sent.
pub fn gauges(snap: &Snapshot, extra: &Extra<'_>, wall_now: crate::state::Timestamp) -> Vec<Gauge> {
    let b = |x: bool| if x { 1.0 } else { 0.0 };
    let mut build = Gauge::new("pglookout_build_info", "Build information.");
    build.add(
        &[("version", extra.version), ("own_db", extra.own_db.unwrap_or(""))],
        1.0,
    );
    let mut up = Gauge::new("pglookout_node_up", "Whether the latest poll of the node succeeded.");
    let mut primary = Gauge::new(
        "pglookout_node_primary",
        "1 if the node was last seen as a primary, 0 as a standby.",
    );
    let mut wal = Gauge::new(
        "pglookout_node_wal_position_bytes",
        "WAL positions of the node (a primary's current position is its replay position).",
    );
    let mut lag_s = Gauge::new(
        "pglookout_node_replication_lag_seconds",
        "Standby replay lag: its now() minus its last replayed commit time.",
    );
    let mut lag_b = Gauge::new(
        "pglookout_node_replication_lag_bytes",
        "The primary's current position minus the standby's replay position.",
    );
    let mut age = Gauge::new(
        "pglookout_node_last_poll_age_seconds",
        "Seconds since the node was last polled (wall clock).",
    );
    let primary_lsn = crate::state::connected_primary_lsn(&snap.nodes);
    for (name, n) in &snap.nodes {
        let node = [("node", name.as_str())];
        up.add(&node, b(n.connection));
        age.add(
            &node,
            ((wall_now - n.fetch_time).num_milliseconds() as f64 / 1000.0).max(0.0),
        );
        let Some(pg) = &n.pg else { continue };
        primary.add(&node, b(!pg.pg_is_in_recovery));
        if let Some(l) = pg.pg_last_xlog_receive_location {
            wal.add(&[("node", name), ("kind", "receive")], l.0 as f64);
        }
        if let Some(l) = pg.pg_last_xlog_replay_location {
            wal.add(&[("node", name), ("kind", "replay")], l.0 as f64);
        }
        // A lag is a measurement of now: a node we cannot reach has none (its last one stays
        // in the state file, as upstream, but is not reported as current).
        if !n.connection {
            continue;
        }
        if let Some(l) = pg.replication_time_lag {
            lag_s.add(&node, l);
        }
        if let (Some(p), Some(r), true) = (primary_lsn, pg.pg_last_xlog_replay_location, pg.pg_is_in_recovery) {
            lag_b.add(&node, p.0.saturating_sub(r.0) as f64);
        }
    }
    let mut master = Gauge::new(
        "pglookout_current_master",
        "1 for the node this daemon takes as the current master.",
    );
    if let Some(m) = extra.current_master {
        master.add(&[("node", m)], 1.0);
    }
    let mut observer_up = Gauge::new(
        "pglookout_observer_up",
        "Whether the latest fetch from the observer succeeded.",
    );
    for (name, obs) in &snap.observers {
        observer_up.add(&[("observer", name)], b(obs.connection));
    }
    let mut alerts = Gauge::new("pglookout_alert_file_present", "Whether the alert file exists.");
    let mut alert_dir = Gauge::new(
        "pglookout_alert_file_dir_writable",
        "Whether alert files can be created in alert_file_dir (0: no alert can be raised).",
    );
    if let Some(writable) = extra.alert_dir_writable {
        alert_dir.add(&[], b(writable));
    }
    if extra.alert_dir_writable != Some(false) {
        for (name, present) in &extra.alerts {
            alerts.add(&[("alert", name)], b(*present));
        }
    }
    vec![
        build,
        up,
        primary,
        wal,
        lag_s,
        lag_b,
        age,
        master,
        observer_up,
        alerts,
        alert_dir,
    ]
}

/// The synchronous replication of every connected primary, as our latest poll of it read
/// `pg_stat_replication` (`/metrics` only: the label values are free text that Telegraf's tag
/// format cannot carry). A label the server did not show (no `pg_read_all_stats`) is empty.
/// Several WAL senders with one `application_name` would make duplicate series: the first in
/// the primary's order (`application_name`, then `pid`) is shown.
pub fn replication_gauges(snap: &Snapshot) -> Vec<Gauge> {
    let mut settings = Gauge::new(
        "pglookout_node_sync_settings_info",
        "A connected primary's synchronous_standby_names and synchronous_commit (as a new session of the monitoring role gets it); always 1.",
    );
    let mut info = Gauge::new(
        "pglookout_replication_info",
        "One WAL sender of a connected primary (a row of its pg_stat_replication) with its state and sync_state; always 1.",
    );
    let mut priority = Gauge::new(
        "pglookout_replication_sync_priority",
        "The WAL sender's sync_priority in the primary's pg_stat_replication (0: never synchronous).",
    );
    let mut positions = Gauge::new(
        "pglookout_replication_wal_position_bytes",
        "WAL positions the primary's WAL sender reports for its standby: sent by the primary, written, flushed and replayed by the standby.",
    );
    for (name, n) in &snap.nodes {
        let Some(sync) =
            n.pg.as_ref()
                .filter(|p| n.connection && !p.pg_is_in_recovery)
                .and_then(|p| p.sync.as_ref())
        else {
            continue;
        };
        let text = |v: &Option<String>| v.clone().unwrap_or_default();
        settings.add(
            &[
                ("node", name),
                ("synchronous_standby_names", &text(&sync.synchronous_standby_names)),
                ("synchronous_commit", &text(&sync.synchronous_commit)),
            ],
            1.0,
        );
        let mut seen = std::collections::BTreeSet::new();
        for w in &sync.pg_stat_replication {
            let app = text(&w.application_name);
            if !seen.insert(app.clone()) {
                continue;
            }
            let labels = [("node", name.as_str()), ("application_name", app.as_str())];
            info.add(
                &[
                    labels[0],
                    labels[1],
                    ("state", &text(&w.state)),
                    ("sync_state", &text(&w.sync_state)),
                ],
                1.0,
            );
            if let Some(p) = w.sync_priority {
                priority.add(&labels, p as f64);
            }
            for (kind, l) in [
                ("sent", w.sent_lsn),
                ("write", w.write_lsn),
                ("flush", w.flush_lsn),
                ("replay", w.replay_lsn),
            ] {
                if let Some(l) = l {
                    positions.add(&[labels[0], labels[1], ("kind", kind)], l.0 as f64);
                }
            }
        }
    }
    vec![settings, info, priority, positions]
}

/// Renders one scrape.
pub fn render(
    snap: &Snapshot,
    counters: &Counters,
    extra: &Extra<'_>,
    wall_now: crate::state::Timestamp,
    openmetrics: bool,
) -> String {
    let mut o = Out {
        text: String::new(),
        openmetrics,
    };
    for g in gauges(snap, extra, wall_now)
        .into_iter()
        .chain(replication_gauges(snap))
    {
        o.family(g.name, "gauge", g.help);
        for (labels, value) in &g.samples {
            let labels: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
            o.sample(g.name, &labels, *value);
        }
    }

    // A timestamp, not an age: it stops moving when the file thread hangs, and a rule compares
    // it with Prometheus' own time().
    o.family(
        "pglookout_state_file_last_write_timestamp_seconds",
        "gauge",
        "Unix time of the last successful write of the state file (0: none yet).",
    );
    o.sample(
        "pglookout_state_file_last_write_timestamp_seconds",
        &[],
        extra
            .state_written_at
            .map_or(0.0, |t| t.timestamp_millis() as f64 / 1000.0),
    );

    o.family(
        "pglookout_poll_duration_seconds",
        "histogram",
        "Duration of one probe of one node.",
    );
    let mut cumulative = Vec::new();
    for (i, le) in POLL_BUCKETS.iter().enumerate() {
        cumulative.push((le.to_string(), counters.poll_buckets[i].load(Ordering::Relaxed)));
    }
    let count = counters.poll_count.load(Ordering::Relaxed);
    for (le, c) in &cumulative {
        o.sample("pglookout_poll_duration_seconds_bucket", &[("le", le)], *c as f64);
    }
    o.sample(
        "pglookout_poll_duration_seconds_bucket",
        &[("le", "+Inf")],
        count as f64,
    );
    o.sample(
        "pglookout_poll_duration_seconds_sum",
        &[],
        counters.poll_sum_micros.load(Ordering::Relaxed) as f64 / 1e6,
    );
    o.sample("pglookout_poll_duration_seconds_count", &[], count as f64);

    let counter = |o: &mut Out, name: &str, help: &str, v: u64| {
        o.family(name, "counter", help);
        o.sample(name, &[], v as f64);
    };
    counter(
        &mut o,
        "pglookout_poll_failures_total",
        "Probes of nodes that failed.",
        counters.poll_failures.load(Ordering::Relaxed),
    );
    counter(
        &mut o,
        "pglookout_poll_rounds_total",
        "Completed poll rounds.",
        snap.round,
    );
    counter(
        &mut o,
        "pglookout_decisions_total",
        "Decisions taken by the decision loop.",
        counters.decisions.load(Ordering::Relaxed),
    );
    counter(
        &mut o,
        "pglookout_failovers_total",
        "Failover commands started by this daemon.",
        counters.failovers.load(Ordering::Relaxed),
    );
    counter(
        &mut o,
        "pglookout_fences_total",
        "Fence commands started by this daemon (its node had to stop taking writes).",
        counters.fences.load(Ordering::Relaxed),
    );
    counter(
        &mut o,
        "pglookout_state_file_write_failures_total",
        "Failed writes of the state file.",
        counters.state_write_failures.load(Ordering::Relaxed),
    );
    counter(
        &mut o,
        "pglookout_log_lines_dropped_total",
        "Log lines dropped because stderr was not being read.",
        crate::logging::dropped_lines(),
    );
    o.family(
        "pglookout_http_auth_failures_total",
        "counter",
        "HTTP requests refused for want of a valid bearer token (401 none, 403 wrong), by reason.",
    );
    for (i, reason) in ["missing_token", "wrong_token"].iter().enumerate() {
        o.sample(
            "pglookout_http_auth_failures_total",
            &[("reason", reason)],
            counters.http_auth_failures[i].load(Ordering::Relaxed) as f64,
        );
    }
    o.family(
        "pglookout_http_connections_refused_total",
        "counter",
        "HTTP connections closed at once, by reason: the client address had its share open (client_cap), or only the slots kept for reserved clients were free (server_full).",
    );
    for (i, reason) in ["client_cap", "server_full"].iter().enumerate() {
        o.sample(
            "pglookout_http_connections_refused_total",
            &[("reason", reason)],
            counters.http_refused[i].load(Ordering::Relaxed) as f64,
        );
    }
    let commands = counters.commands.lock().map(|m| m.clone()).unwrap_or_default();
    o.family(
        "pglookout_commands_total",
        "counter",
        "External commands run, by config key.",
    );
    for (name, (runs, _)) in &commands {
        o.sample("pglookout_commands_total", &[("command", name)], *runs as f64);
    }
    o.family(
        "pglookout_command_failures_total",
        "counter",
        "External commands that failed or timed out, by config key.",
    );
    for (name, (_, failures)) in &commands {
        o.sample(
            "pglookout_command_failures_total",
            &[("command", name)],
            *failures as f64,
        );
    }
    let crashes = counters.task_crashes.lock().map(|m| m.clone()).unwrap_or_default();
    o.family(
        "pglookout_task_crashes_total",
        "counter",
        "Background tasks that panicked (restarted, or failed as an outcome), by task.",
    );
    for (task, n) in &crashes {
        o.sample("pglookout_task_crashes_total", &[("task", task)], *n as f64);
    }
    if openmetrics {
        o.text.push_str("# EOF\n");
    }
    o.text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lsn::Lsn;
    use crate::state::{parse_iso, NodeState, PgFields};

    #[test]
    fn a_scrape_has_every_family_and_valid_lines() {
        let t = parse_iso("2024-01-01T00:00:00Z").expect("t");
        let mut snap = Snapshot::default();
        let mut primary = NodeState::new(t, true);
        primary.pg = Some(PgFields {
            db_time: Some(t),
            pg_is_in_recovery: false,
            pg_last_xact_replay_timestamp: None,
            pg_last_xlog_receive_location: None,
            pg_last_xlog_replay_location: Some(Lsn(5000)),
            replication_time_lag: None,
            replication_slots: None,
            timeline: None,
            startup_waiting_for_wal: None,
            sync: Some(crate::state::SyncReplication {
                synchronous_standby_names: Some("FIRST 1 (\"pg\"\"2\")".into()),
                synchronous_commit: Some("on".into()),
                pg_stat_replication: vec![
                    crate::state::WalSender {
                        application_name: Some("pg\"2".into()),
                        state: Some("streaming".into()),
                        sync_state: Some("sync".into()),
                        sync_priority: Some(1),
                        sent_lsn: Some(Lsn(5000)),
                        write_lsn: Some(Lsn(4500)),
                        flush_lsn: Some(Lsn(4200)),
                        replay_lsn: Some(Lsn(4000)),
                    },
                    // a second sender under the same name: one series, the first's
                    crate::state::WalSender {
                        application_name: Some("pg\"2".into()),
                        sync_state: Some("async".into()),
                        ..Default::default()
                    },
                    // what a role without pg_read_all_stats sees
                    crate::state::WalSender {
                        application_name: Some("pg3".into()),
                        ..Default::default()
                    },
                ],
            }),
            receiver_cut: None,
        });
        let mut standby = primary.clone();
        if let Some(pg) = standby.pg.as_mut() {
            pg.pg_is_in_recovery = true;
            pg.pg_last_xlog_replay_location = Some(Lsn(4000));
            pg.replication_time_lag = Some(1.5);
        }
        snap.nodes.insert("pg1".into(), primary);
        snap.nodes.insert("pg\"2".into(), standby);
        let c = Counters::default();
        c.observe_poll(0.003, true);
        c.observe_poll(0.3, false);
        c.command("failover_command", false);
        c.http_auth_failed(true);
        c.http_auth_failed(true);
        c.http_refused_server_full();
        let extra = Extra {
            own_db: Some("pg1"),
            current_master: Some("pg1"),
            alerts: vec![("failover_has_happened", false)],
            alert_dir_writable: Some(true),
            version: "0.1.0",
            state_written_at: Some(parse_iso("2024-01-01T00:00:01.5Z").expect("t")),
        };
        let om = render(&snap, &c, &extra, t, true);
        assert!(om.ends_with("# EOF\n"));
        assert!(
            om.contains("# TYPE pglookout_failovers counter\npglookout_failovers_total 0\n"),
            "{om}"
        );
        assert!(
            om.contains("pglookout_node_replication_lag_bytes{node=\"pg\\\"2\"} 1000\n"),
            "{om}"
        );
        assert!(om.contains("pglookout_poll_duration_seconds_bucket{le=\"0.005\"} 1\n"));
        assert!(om.contains("pglookout_poll_duration_seconds_bucket{le=\"+Inf\"} 2\n"));
        assert!(om.contains("pglookout_command_failures_total{command=\"failover_command\"} 1\n"));
        for line in [
            "pglookout_http_auth_failures_total{reason=\"missing_token\"} 0\n",
            "pglookout_http_auth_failures_total{reason=\"wrong_token\"} 2\n",
            "pglookout_http_connections_refused_total{reason=\"client_cap\"} 0\n",
            "pglookout_http_connections_refused_total{reason=\"server_full\"} 1\n",
        ] {
            assert!(om.contains(line), "{line}{om}");
        }
        assert!(
            om.contains("pglookout_state_file_last_write_timestamp_seconds 1704067201.5\n"),
            "{om}"
        );
        for line in [
            "pglookout_node_sync_settings_info{node=\"pg1\",synchronous_standby_names=\"FIRST 1 (\\\"pg\\\"\\\"2\\\")\",synchronous_commit=\"on\"} 1\n",
            "pglookout_replication_info{node=\"pg1\",application_name=\"pg\\\"2\",state=\"streaming\",sync_state=\"sync\"} 1\n",
            "pglookout_replication_info{node=\"pg1\",application_name=\"pg3\",state=\"\",sync_state=\"\"} 1\n",
            "pglookout_replication_sync_priority{node=\"pg1\",application_name=\"pg\\\"2\"} 1\n",
            "pglookout_replication_wal_position_bytes{node=\"pg1\",application_name=\"pg\\\"2\",kind=\"flush\"} 4200\n",
            "pglookout_replication_wal_position_bytes{node=\"pg1\",application_name=\"pg\\\"2\",kind=\"replay\"} 4000\n",
        ] {
            assert!(om.contains(line), "{line}{om}");
        }
        assert_eq!(om.matches("pglookout_replication_info{").count(), 2, "{om}");
        assert!(
            !om.contains("pglookout_replication_info{node=\"pg\\\"2\""),
            "a standby's copy: {om}"
        );
        assert!(!om.contains("pglookout_replication_sync_priority{node=\"pg1\",application_name=\"pg3\"}"));
        let classic = render(&snap, &c, &extra, t, false);
        assert!(classic.contains("# TYPE pglookout_failovers_total counter\n"));
        assert!(!classic.contains("# EOF"));
        for line in om.lines().filter(|l| !l.starts_with('#')) {
            let (name, value) = line.rsplit_once(' ').expect("name value");
            assert!(name.starts_with("pglookout_"), "{line}");
            assert!(value.parse::<f64>().is_ok(), "{line}");
        }
    }

    #[test]
    fn a_node_that_does_not_answer_has_no_lag() {
        let t = parse_iso("2024-01-01T00:00:00Z").expect("t");
        let mut snap = Snapshot::default();
        let mut standby = NodeState::new(t, false);
        standby.pg = Some(PgFields {
            db_time: Some(t),
            pg_is_in_recovery: true,
            pg_last_xact_replay_timestamp: None,
            pg_last_xlog_receive_location: Some(Lsn(10)),
            pg_last_xlog_replay_location: Some(Lsn(10)),
            replication_time_lag: Some(42.0),
            replication_slots: None,
            timeline: None,
            startup_waiting_for_wal: None,
            sync: None,
            receiver_cut: None,
        });
        snap.nodes.insert("pg2".into(), standby);
        let extra = Extra {
            own_db: Some("pg2"),
            current_master: None,
            alerts: vec![],
            alert_dir_writable: None,
            version: "0.1.0",
            state_written_at: None,
        };
        let text = render(&snap, &Counters::default(), &extra, t, false);
        assert!(text.contains("pglookout_node_up{node=\"pg2\"} 0\n"), "{text}");
        // never written: 0, so that "time() - x > 60" holds
        assert!(
            text.contains("pglookout_state_file_last_write_timestamp_seconds 0\n"),
            "{text}"
        );
        assert!(!text.contains("pglookout_node_replication_lag_seconds{"), "{text}");
    }

    /// An alert directory we cannot write is reported as such, and the alert files are not
    /// reported absent (0) when none could be created.
    #[test]
    fn an_unwritable_alert_directory_says_so_instead_of_no_alert() {
        let t = parse_iso("2024-01-01T00:00:00Z").expect("t");
        let mut extra = Extra {
            own_db: Some("pg1"),
            current_master: None,
            alerts: vec![("failover_has_happened", false)],
            alert_dir_writable: Some(false),
            version: "0.1.0",
            state_written_at: None,
        };
        let text = render(&Snapshot::default(), &Counters::default(), &extra, t, false);
        assert!(text.contains("pglookout_alert_file_dir_writable 0\n"), "{text}");
        assert!(!text.contains("pglookout_alert_file_present{"), "{text}");
        extra.alert_dir_writable = Some(true);
        let text = render(&Snapshot::default(), &Counters::default(), &extra, t, false);
        assert!(text.contains("pglookout_alert_file_dir_writable 1\n"), "{text}");
        assert!(
            text.contains("pglookout_alert_file_present{alert=\"failover_has_happened\"} 0\n"),
            "{text}"
        );
    }
}
