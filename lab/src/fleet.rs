//! A fleet: a lab cluster plus one `pglookout` daemon per node (each promoting its own node
//! with `failover_command`) and one observer. Owns the daemons' generated configs, the
//! rendering of the live cluster state, and the kill-the-primary timeline that the demo and
//! the failover benchmark share.

use crate::daemon::{pglookout_bin, Daemon};
use crate::wait::wait_for;
use crate::{Cluster, ClusterSpec};
use anyhow::{Context, Result};
use serde_json::{json, Value};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

/// How the fleet's daemons are configured.
#[derive(Debug, Clone)]
pub struct FleetSpec {
    pub standbys: usize,
    /// `db_poll_interval` and `replication_state_check_interval`.
    pub poll_interval: f64,
    /// `max_failover_replication_time_lag`: how long after the last contact with a vanished
    /// primary the standbys fail over.
    pub failover_after: f64,
    pub autofollow: bool,
}

impl Default for FleetSpec {
    fn default() -> Self {
        FleetSpec {
            standbys: 2,
            poll_interval: 1.0,
            failover_after: 10.0,
            autofollow: true,
        }
    }
}

pub struct Fleet {
    pub cluster: Cluster,
    pub observer: Daemon,
    /// One per node, in node order (`pg1` first).
    pub daemons: Vec<Daemon>,
}

/// The config of the daemon beside `own` ("" for the observer).
pub fn daemon_config(cluster: &Cluster, spec: &FleetSpec, own: &str, observers: &Value) -> Result<Value> {
    let remote: serde_json::Map<String, Value> = cluster
        .nodes()
        .iter()
        .map(|n| (n.name.clone(), json!(cluster.monitor_conninfo(&n.name))))
        .collect();
    let mut cfg = json!({
        "remote_conns": remote,
        "own_db": own,
        "observers": observers,
        "db_poll_interval": spec.poll_interval,
        "replication_state_check_interval": spec.poll_interval,
        "max_failover_replication_time_lag": spec.failover_after,
        "warning_replication_time_lag": (spec.failover_after / 2.0).max(spec.poll_interval),
        "missing_master_from_config_timeout": (3.0 * spec.poll_interval).max(5.0),
        "log_level": "INFO",
        "maintenance_mode_file": cluster.dir().join(format!("{}-maintenance", if own.is_empty() { "observer" } else { own })),
    });
    if !own.is_empty() {
        cfg["failover_command"] = json!(cluster.promote_command(own)?);
        if spec.autofollow {
            cfg["autofollow"] = json!(true);
            cfg["primary_conninfo_template"] = json!(cluster.replication_conninfo("pg1", own));
            cfg["pg_data_directory"] = json!(cluster.data_dir(own));
            cfg["pg_stop_command"] = json!(cluster.stop_command(own)?);
            cfg["pg_start_command"] = json!(cluster.start_command(own)?);
        }
    }
    Ok(cfg)
}

impl Fleet {
    pub async fn start(spec: &FleetSpec) -> Result<Fleet> {
        let bin = pglookout_bin()?;
        let cluster = Cluster::start(ClusterSpec {
            standbys: spec.standbys,
            ..Default::default()
        })
        .await?;
        let observer = Daemon::spawn(
            &bin,
            "observer",
            cluster.dir(),
            daemon_config(&cluster, spec, "", &json!({}))?,
        )?;
        let observers = json!({ "observer": observer.url() });
        let mut daemons = Vec::new();
        for n in cluster.nodes() {
            let cfg = daemon_config(&cluster, spec, &n.name, &observers)?;
            daemons.push(Daemon::spawn(&bin, &n.name, cluster.dir(), cfg)?);
        }
        let fleet = Fleet {
            cluster,
            observer,
            daemons,
        };
        wait_for(
            "every daemon sees pg1 as the master",
            Duration::from_secs(60),
            || async {
                Ok(fleet
                    .all_daemons()
                    .all(|d| d.state().is_some_and(|s| s["current_master"] == json!("pg1"))))
            },
        )
        .await?;
        Ok(fleet)
    }

    pub fn all_daemons(&self) -> impl Iterator<Item = &Daemon> {
        self.daemons.iter().chain(std::iter::once(&self.observer))
    }

    pub fn daemon(&self, name: &str) -> Option<&Daemon> {
        self.daemons.iter().find(|d| d.name == name)
    }

    /// The cluster as the observer sees it, and each daemon's master and latest decision.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let Some(state) = self.observer.state() else {
            return "observer: no state yet\n".into();
        };
        let _ = writeln!(
            out,
            "{:<6} {:<8} {:<10} {:<12} {:<12} {:>9}",
            "node", "role", "connected", "receive", "replay", "lag (s)"
        );
        if let Some(nodes) = state["db_nodes"].as_object() {
            for (name, n) in nodes {
                let role = match n["pg_is_in_recovery"].as_bool() {
                    Some(true) => "standby",
                    Some(false) => "primary",
                    None => "?",
                };
                let lag = n["replication_time_lag"]
                    .as_f64()
                    .map_or("-".to_string(), |l| format!("{l:.2}"));
                let _ = writeln!(
                    out,
                    "{:<6} {:<8} {:<10} {:<12} {:<12} {:>9}",
                    name,
                    role,
                    n["connection"].as_bool().unwrap_or(false),
                    n["pg_last_xlog_receive_location"].as_str().unwrap_or("-"),
                    n["pg_last_xlog_replay_location"].as_str().unwrap_or("-"),
                    lag
                );
            }
        }
        for d in self.all_daemons() {
            let s = d.state().unwrap_or(Value::Null);
            let _ = writeln!(
                out,
                "  {:<9} master={:<5} {}",
                d.name,
                s["current_master"].as_str().unwrap_or("none"),
                s["decision"]["summary"].as_str().unwrap_or("")
            );
        }
        out
    }
}

/// When each step of a failover happened, in seconds after the `kill -9`.
#[derive(Debug, Clone, Default)]
pub struct Timeline {
    pub new_primary: Option<String>,
    pub detected: Option<f64>,
    pub decided: Option<f64>,
    pub promoted: Option<f64>,
    pub first_write: Option<f64>,
    pub followed: Option<f64>,
}

impl Timeline {
    pub fn lines(&self) -> Vec<String> {
        let f = |v: Option<f64>| v.map_or("never".to_string(), |s| format!("+{s:6.2} s"));
        vec![
            format!("{:>9}  kill -9 of the primary pg1", "+  0.00 s"),
            format!("{:>9}  a standby's daemon sees pg1 down", f(self.detected)),
            format!("{:>9}  failover decision: failover_command started", f(self.decided)),
            format!(
                "{:>9}  {} is out of recovery",
                f(self.promoted),
                self.new_primary.as_deref().unwrap_or("a standby")
            ),
            format!("{:>9}  first write committed on the new primary", f(self.first_write)),
            format!(
                "{:>9}  the other standby streams from the new primary",
                f(self.followed)
            ),
        ]
    }
}

/// Kills the primary and watches the failover, calling `on_change` with the rendered state
/// whenever it changes. Bounded by `deadline`; returns what was reached.
pub async fn kill_primary_and_watch(
    fleet: &Fleet,
    deadline: Duration,
    mut on_change: impl FnMut(&str),
) -> Result<Timeline> {
    fleet.cluster.write_load(100).await.context("write before the kill")?;
    let t0 = Instant::now();
    fleet.cluster.kill9("pg1")?;
    let mut tl = Timeline::default();
    let mut last = String::new();
    let standbys: Vec<&str> = fleet.daemons.iter().skip(1).map(|d| d.name.as_str()).collect();
    while t0.elapsed() < deadline {
        let now = t0.elapsed().as_secs_f64();
        let view = fleet.render();
        if view != last {
            on_change(&view);
            last = view;
        }
        if tl.detected.is_none()
            && standbys.iter().filter_map(|n| fleet.daemon(n)).any(|d| {
                d.state()
                    .is_some_and(|s| s["db_nodes"]["pg1"]["connection"] == json!(false))
            })
        {
            tl.detected = Some(now);
        }
        if tl.decided.is_none()
            && standbys
                .iter()
                .filter_map(|n| fleet.daemon(n))
                .any(|d| d.alert_dir.join("failover_has_happened").exists())
        {
            tl.decided = Some(now);
        }
        if tl.promoted.is_none() {
            for n in &standbys {
                if matches!(fleet.cluster.in_recovery(n).await, Ok(false)) {
                    tl.promoted = Some(now);
                    tl.new_primary = Some(n.to_string());
                }
            }
        }
        if let (Some(p), None) = (&tl.new_primary, tl.first_write) {
            let ok = fleet
                .cluster
                .sql(p, "INSERT INTO pglab_load (payload) VALUES ('after failover')")
                .await
                .is_ok();
            if ok {
                tl.first_write = Some(t0.elapsed().as_secs_f64());
            }
        }
        if let (Some(p), None) = (&tl.new_primary, tl.followed) {
            let others: Vec<&&str> = standbys.iter().filter(|n| **n != p.as_str()).collect();
            if let Ok(rows) = fleet
                .cluster
                .sql(
                    p,
                    "SELECT application_name FROM pg_stat_replication WHERE state = 'streaming'",
                )
                .await
            {
                let names: Vec<String> = rows.iter().filter_map(|r| r.try_get::<_, String>(0).ok()).collect();
                if !others.is_empty() && others.iter().all(|o| names.iter().any(|n| n == **o)) {
                    tl.followed = Some(t0.elapsed().as_secs_f64());
                }
            }
        }
        let follow_done = tl.followed.is_some() || standbys.len() < 2 || !fleet_autofollow(fleet);
        if tl.first_write.is_some() && follow_done {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let view = fleet.render();
    if view != last {
        on_change(&view);
    }
    Ok(tl)
}

fn fleet_autofollow(fleet: &Fleet) -> bool {
    fleet
        .daemons
        .first()
        .is_some_and(|d| d.config()["autofollow"] == json!(true))
}
