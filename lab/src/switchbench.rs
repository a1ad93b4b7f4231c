//! `pglab bench-switchover`: planned switchovers under a write load (issue 22, item 6).
//!
//! Starts a lab cluster (pg1 primary, pg2 and pg3 standbys) with one `pglookout` per node and an
//! observer, the node daemons meshed (each lists the other node daemons as observers, named after
//! their node, on fixed HTTP ports) and configured for switchovers (`primary_conninfo_template`,
//! `pg_data_directory`, `pg_stop_command`, `pg_start_command`, `autofollow`), with the timings of
//! a `pglab chaos` profile. Then, while a writer commits one counter row every 50 ms on whichever
//! node answers as the primary and a sampler asks every node `pg_is_in_recovery()` every 20 ms,
//! it runs N switchovers back and forth between pg1 and pg2 (`POST /switchover?to=` at the
//! current primary's daemon, then `GET /switchover` until it is over) and measures for each:
//! - write unavailability: the last acknowledged commit on the old primary to the first on the
//!   new one;
//! - lost writes: acknowledged counters missing on the new primary afterwards;
//! - samples in which two nodes answered as writable;
//! - the time from the request until the new primary's `pg_stat_replication` shows the old
//!   primary `streaming`.
//!
//! Every wait has a deadline; the only fixed periods are the writer's and the sampler's ticks and
//! the polling of the daemon's API. Fails (non-zero exit) when a write was lost, two nodes were
//! writable at once, or a switchover failed.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Map, Value};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_postgres::NoTls;

use crate::bench::percentile;
use crate::chaos::{profile_keys, Profile};
use crate::daemon::{free_ports, http_request, pglookout_bin, Daemon};
use crate::fleet::{daemon_config, FleetSpec};
use crate::wait::wait_for;
use crate::{Cluster, ClusterSpec};

const NODES: [&str; 3] = ["pg1", "pg2", "pg3"];
const WRITE_EVERY: Duration = Duration::from_millis(50);
const SAMPLE_EVERY: Duration = Duration::from_millis(20);
/// How often `GET /switchover` and the new primary's `pg_stat_replication` are read.
const POLL_EVERY: Duration = Duration::from_millis(50);
/// Client-side bound of one write, probe or connection attempt.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(1);
const HEALTHY_DEADLINE: Duration = Duration::from_secs(90);
/// How long a `POST /switchover` is asked again while the daemon refuses it (its node's
/// promotion still announced, its poller not yet seeing its node the primary).
const ACCEPT_DEADLINE: Duration = Duration::from_secs(60);
/// After the switchover is over: how long the old primary and the third node have to stream
/// from the new one, and the writer to commit there.
const SETTLE_DEADLINE: Duration = Duration::from_secs(60);
const TABLE: &str = "switch_writes";
const INSERT: &str = "INSERT INTO switch_writes (id, node) VALUES ($1, $2)";

/// What to run (the `pglab bench-switchover` flags).
#[derive(Debug, Clone)]
pub struct Options {
    pub runs: usize,
    pub profile: Profile,
    /// `timeout=` of each `POST /switchover`, seconds.
    pub timeout: f64,
}

/// One acknowledged commit.
#[derive(Debug, Clone, Copy)]
struct Ack {
    id: i64,
    node: usize,
    at: f64,
}

/// One round of `pg_is_in_recovery()` on every node: `Some(true)` = answered writable.
#[derive(Debug, Clone, Copy)]
struct Sample {
    at: f64,
    writable: [Option<bool>; 3],
}

/// The measurements of one switchover.
#[derive(Debug, Clone, Default)]
struct RunResult {
    from: String,
    to: String,
    state: String,
    outcome: String,
    /// Request to `succeeded`/`failed`, seconds.
    took: Option<f64>,
    unavailable: Option<f64>,
    lost: usize,
    two_writable: usize,
    /// Samples in which no node answered as writable (the switchover's gap, as sampled).
    none_writable: usize,
    samples: usize,
    /// Request to settled (old primary and third node streaming, a commit on the new primary):
    /// the window the samples cover, seconds.
    window: f64,
    /// Request to the old primary streaming from the new one, seconds.
    old_streaming: Option<f64>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Runs the benchmark and prints its report; errors on a setup failure or a failed judgement.
pub async fn run(opts: Options) -> Result<()> {
    if opts.runs == 0 {
        bail!("--runs must be at least 1");
    }
    if !(opts.timeout.is_finite() && opts.timeout > 0.0) {
        bail!("--timeout must be a positive number of seconds");
    }
    let (profile, source) = profile_keys(opts.profile)?;
    println!(
        "pglab bench-switchover: {} switchovers between pg1 and pg2 under a commit every {} ms; daemon timings: {source}",
        opts.runs,
        WRITE_EVERY.as_millis()
    );
    let lab = Lab::start(&profile).await.context("starting the lab")?;
    println!("cluster: {} ({})", lab.cluster.ports(), lab.cluster.dir().display());
    for d in lab.all_daemons() {
        println!("  {:<9} {}  log {}", d.name, d.url(), d.log_path.display());
    }

    let recorder = Recorder::start(&lab.cluster);
    let outcome = tokio::select! {
        r = campaign(&lab, &recorder, &opts) => r,
        r = crate::bench::shutdown_signal() => r.and_then(|()| Err(anyhow!("interrupted"))),
    };
    recorder.stop().await;
    let results = match outcome {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{}", lab.diagnostics());
            return Err(e);
        }
    };
    let (report, ok) = summary(&results);
    print!("{report}");
    if !ok {
        eprintln!("{}", lab.diagnostics());
        bail!("a switchover failed, lost an acknowledged write or left two nodes writable");
    }
    Ok(())
}

async fn campaign(lab: &Lab, recorder: &Recorder, opts: &Options) -> Result<Vec<RunResult>> {
    // the writer has committed on pg1 before the first switchover
    let t = Instant::now();
    wait_for("the writer's first commit on pg1", SETTLE_DEADLINE, || async {
        Ok(recorder.acks().iter().any(|a| a.node == 0))
    })
    .await?;
    println!(
        "writer: first commit {:.2} s after it started\n",
        t.elapsed().as_secs_f64()
    );
    println!("{}", header());
    let mut results = Vec::new();
    let mut reported_missing = BTreeSet::new();
    for i in 0..opts.runs {
        let from = lab.cluster.current_primary().await.context("finding the primary")?;
        let to = if from == "pg1" { "pg2" } else { "pg1" }.to_string();
        let r = one(lab, recorder, &from, &to, opts.timeout, &mut reported_missing).await?;
        println!("{}", row(i + 1, &r));
        let failed = r.state != "succeeded";
        if failed {
            println!("    outcome: {}", r.outcome);
        }
        results.push(r);
        if failed {
            println!("    stopping the campaign: the cluster is not where the next run expects it");
            break;
        }
    }
    Ok(results)
}

/// One switchover from `from` to `to`, measured.
async fn one(
    lab: &Lab,
    recorder: &Recorder,
    from: &str,
    to: &str,
    timeout: f64,
    reported_missing: &mut BTreeSet<i64>,
) -> Result<RunResult> {
    let daemon = lab.daemon(from)?;
    let path = format!("/switchover?to={to}&timeout={timeout}");
    // asked again while refused (409): a promotion still announced, a poller a round behind
    let accept_end = Instant::now() + ACCEPT_DEADLINE;
    let (id, started) = loop {
        let at = recorder.now();
        let last_refusal = match http_request(daemon.http_port, "POST", &path).await {
            Ok((202, body)) => {
                let v: Value = serde_json::from_str(&body).with_context(|| format!("202 body {body:?}"))?;
                let id = v["id"].as_str().map(str::to_string).unwrap_or_default();
                break (id, at);
            }
            Ok((status, body)) => format!("{status} {body}"),
            Err(e) => format!("{e:#}"),
        };
        if Instant::now() > accept_end {
            bail!("POST {path} at {from}'s daemon was refused for {ACCEPT_DEADLINE:?}: {last_refusal}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };

    let mut res = RunResult {
        from: from.to_string(),
        to: to.to_string(),
        ..Default::default()
    };
    // until over: the daemon's progress, and the old primary streaming from the new one
    let over_end = Instant::now() + Duration::from_secs_f64(timeout) + SETTLE_DEADLINE;
    let mut new_client: Option<tokio_postgres::Client> = None;
    let conninfo_to = lab.cluster.superuser_conninfo(to);
    loop {
        if res.took.is_none() {
            if let Ok((200, body)) = http_request(daemon.http_port, "GET", "/switchover").await {
                let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
                let state = v["state"].as_str().unwrap_or("");
                if v["id"].as_str() == Some(id.as_str()) && (state == "succeeded" || state == "failed") {
                    res.took = Some(recorder.now() - started);
                    res.state = state.to_string();
                    res.outcome = v["outcome"].as_str().unwrap_or("").to_string();
                }
            }
        }
        if res.old_streaming.is_none() && streams_from(&mut new_client, &conninfo_to, from).await {
            res.old_streaming = Some(recorder.now() - started);
        }
        let done = res.took.is_some() && (res.old_streaming.is_some() || res.state == "failed");
        if done {
            break;
        }
        if Instant::now() > over_end {
            if res.took.is_none() {
                res.state = "failed".into();
                res.outcome = format!("GET /switchover at {from}'s daemon did not show it over in time");
            }
            break;
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
    if res.state != "succeeded" {
        // still judged: the samples so far, and the acknowledged writes on whichever node is
        // the primary now (if one is)
        let ended = recorder.now();
        if let Ok(primary) = lab.cluster.current_primary().await {
            judge(lab, recorder, &primary, started, ended, reported_missing, &mut res).await?;
        } else {
            count_samples(recorder, started, ended, &mut res);
        }
        return Ok(res);
    }

    // settle: every standby streams from the new primary and the writer commits there
    let cluster = &lab.cluster;
    let others: Vec<&str> = NODES.iter().copied().filter(|n| *n != to).collect();
    wait_for(&format!("{others:?} to stream from {to}"), SETTLE_DEADLINE, || async {
        let rows = cluster
            .sql(
                to,
                "SELECT application_name FROM pg_stat_replication WHERE state = 'streaming'",
            )
            .await?;
        let names: Vec<String> = rows.iter().filter_map(|r| r.try_get::<_, String>(0).ok()).collect();
        Ok(others.iter().all(|o| names.iter().any(|n| n == o)))
    })
    .await?;
    let to_index = node_index(to)?;
    wait_for(
        &format!("the writer's first commit on {to}"),
        SETTLE_DEADLINE,
        || async { Ok(recorder.acks().iter().any(|a| a.node == to_index && a.at > started)) },
    )
    .await?;
    let ended = recorder.now();

    res.unavailable = unavailability(&recorder.acks(), node_index(from)?, to_index, started);
    judge(lab, recorder, to, started, ended, reported_missing, &mut res).await?;
    Ok(res)
}

/// Fills in the lost writes (every counter acknowledged so far must be on `primary`; each one
/// missing is counted once over the campaign) and the samples of `started..ended`.
async fn judge(
    lab: &Lab,
    recorder: &Recorder,
    primary: &str,
    started: f64,
    ended: f64,
    reported_missing: &mut BTreeSet<i64>,
    res: &mut RunResult,
) -> Result<()> {
    let acks = recorder.acks();
    let present: BTreeSet<i64> = lab
        .cluster
        .sql(primary, &format!("SELECT id FROM {TABLE}"))
        .await?
        .iter()
        .filter_map(|r| r.try_get::<_, i64>(0).ok())
        .collect();
    let missing: Vec<i64> = acks
        .iter()
        .map(|a| a.id)
        .filter(|id| !present.contains(id) && !reported_missing.contains(id))
        .collect();
    res.lost = missing.len();
    reported_missing.extend(missing);
    count_samples(recorder, started, ended, res);
    Ok(())
}

fn count_samples(recorder: &Recorder, started: f64, ended: f64, res: &mut RunResult) {
    res.window = ended - started;
    let samples = recorder.samples_between(started, ended);
    res.samples = samples.len();
    res.two_writable = samples.iter().filter(|s| writable_count(s) >= 2).count();
    res.none_writable = samples.iter().filter(|s| writable_count(s) == 0).count();
}

/// The last acknowledged commit on `from` before the first on `to` after `started`, to that
/// first commit, seconds.
fn unavailability(acks: &[Ack], from: usize, to: usize, started: f64) -> Option<f64> {
    let first_new = acks
        .iter()
        .filter(|a| a.node == to && a.at > started)
        .map(|a| a.at)
        .min_by(f64::total_cmp)?;
    let last_old = acks
        .iter()
        .filter(|a| a.node == from && a.at < first_new)
        .map(|a| a.at)
        .max_by(f64::total_cmp)?;
    Some(first_new - last_old)
}

/// Whether `pg_stat_replication` on the node of `conninfo` shows `name` streaming; keeps the
/// connection in `client` between calls.
async fn streams_from(client: &mut Option<tokio_postgres::Client>, conninfo: &str, name: &str) -> bool {
    let c = match client.take() {
        Some(c) if !c.is_closed() => c,
        _ => match connect(conninfo).await {
            Ok(c) => c,
            Err(_) => return false,
        },
    };
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&name];
    let q = c.query(
        "SELECT 1 FROM pg_stat_replication WHERE application_name = $1 AND state = 'streaming'",
        &params,
    );
    let found = match tokio::time::timeout(CLIENT_TIMEOUT, q).await {
        Ok(Ok(rows)) => !rows.is_empty(),
        _ => false,
    };
    *client = Some(c);
    found
}

fn writable_count(s: &Sample) -> usize {
    s.writable.iter().filter(|w| **w == Some(true)).count()
}

fn node_index(name: &str) -> Result<usize> {
    NODES
        .iter()
        .position(|n| *n == name)
        .ok_or_else(|| anyhow!("unknown node {name}"))
}

fn secs(v: Option<f64>) -> String {
    v.map_or("-".into(), |s| format!("{s:.3}"))
}

fn header() -> String {
    format!(
        "{:>3}  {:<10} {:<9} {:>9} {:>13} {:>5} {:>12} {:>8} {:>14}",
        "run", "switch", "state", "took s", "unavailable s", "lost", "two writable", "samples", "old streams s"
    )
}

fn row(i: usize, r: &RunResult) -> String {
    format!(
        "{:>3}  {:<10} {:<9} {:>9} {:>13} {:>5} {:>12} {:>8} {:>14}",
        i,
        format!("{}->{}", r.from, r.to),
        r.state,
        secs(r.took),
        secs(r.unavailable),
        r.lost,
        r.two_writable,
        r.samples,
        secs(r.old_streaming)
    )
}

/// The summary lines, and whether the campaign passed.
fn summary(results: &[RunResult]) -> (String, bool) {
    let mut out = String::new();
    let mut unavailable: Vec<f64> = results.iter().filter_map(|r| r.unavailable).collect();
    unavailable.sort_by(f64::total_cmp);
    let mut streaming: Vec<f64> = results.iter().filter_map(|r| r.old_streaming).collect();
    streaming.sort_by(f64::total_cmp);
    let mut took: Vec<f64> = results.iter().filter_map(|r| r.took).collect();
    took.sort_by(f64::total_cmp);
    let failed = results.iter().filter(|r| r.state != "succeeded").count();
    let lost: usize = results.iter().map(|r| r.lost).sum();
    let two: usize = results.iter().map(|r| r.two_writable).sum();
    let samples: usize = results.iter().map(|r| r.samples).sum();
    let none: usize = results.iter().map(|r| r.none_writable).sum();
    let window: f64 = results.iter().map(|r| r.window).sum();
    let stat = |v: &[f64], p: f64| {
        if v.is_empty() {
            "-".to_string()
        } else {
            format!("{:.3}", percentile(v, p))
        }
    };
    let _ = writeln!(out, "\n== summary: {} switchovers, {failed} failed ==", results.len());
    let _ = writeln!(
        out,
        "write unavailability: median {} s, p90 {} s, max {} s ({} measured)",
        stat(&unavailable, 0.5),
        stat(&unavailable, 0.9),
        unavailable.last().map_or("-".into(), |m| format!("{m:.3}")),
        unavailable.len()
    );
    let _ = writeln!(
        out,
        "switchover (request to succeeded): median {} s, max {} s",
        stat(&took, 0.5),
        took.last().map_or("-".into(), |m| format!("{m:.3}"))
    );
    let _ = writeln!(
        out,
        "old primary streaming from the new one: median {} s after the request",
        stat(&streaming, 0.5)
    );
    let _ = writeln!(out, "acknowledged writes lost: {lost}");
    let _ = writeln!(
        out,
        "samples with two writable nodes: {two} of {samples} (with none: {none}); one every {:.0} ms on average \
         over {window:.1} s of switchovers (ticks every {} ms, later when a round takes longer)",
        if samples > 0 {
            1000.0 * window / samples as f64
        } else {
            0.0
        },
        SAMPLE_EVERY.as_millis()
    );
    let ok = failed == 0 && lost == 0 && two == 0;
    let _ = writeln!(out, "verdict: {}", if ok { "pass" } else { "FAIL" });
    (out, ok)
}

// ---- the lab ----

/// The cluster and its daemons; fields drop in order: the daemons stop before the cluster goes.
struct Lab {
    /// pg1's, pg2's, pg3's daemons.
    daemons: Vec<Daemon>,
    observer: Daemon,
    cluster: Cluster,
}

impl Lab {
    async fn start(profile: &Map<String, Value>) -> Result<Lab> {
        let bin = pglookout_bin()?;
        let cluster = Cluster::start(ClusterSpec::default()).await?;
        cluster
            .sql_batch(
                "pg1",
                &format!(
                    "CREATE TABLE {TABLE} (id bigint PRIMARY KEY, node text NOT NULL, \
                     at timestamptz NOT NULL DEFAULT clock_timestamp())"
                ),
            )
            .await?;
        let spec = FleetSpec::default();
        let with_profile = |mut cfg: Value| {
            if let Some(obj) = cfg.as_object_mut() {
                for (k, v) in profile {
                    obj.insert(k.clone(), v.clone());
                }
            }
            cfg
        };
        let observer = Daemon::spawn(
            &bin,
            "observer",
            cluster.dir(),
            with_profile(daemon_config(&cluster, &spec, "", &json!({}))?),
        )?;
        // what the standbys stream with, so that autofollow finds them up to date
        let streamed = cluster.primary_conninfo("pg2").await?;
        let ports = free_ports(NODES.len())?;
        let mut configs = Vec::new();
        for (d, name) in NODES.iter().enumerate() {
            let mut observers = Map::new();
            observers.insert("observer".into(), json!(observer.url()));
            for (e, peer) in NODES.iter().enumerate().filter(|(e, _)| *e != d) {
                observers.insert(peer.to_string(), json!(format!("http://127.0.0.1:{}", ports[e])));
            }
            let mut cfg = with_profile(daemon_config(&cluster, &spec, name, &Value::Object(observers))?);
            cfg["http_port"] = json!(ports[d]);
            cfg["autofollow"] = json!(true);
            cfg["primary_conninfo_template"] =
                json!(streamed.replace("application_name=pg2", &format!("application_name={name}")));
            cfg["pg_data_directory"] = json!(cluster.data_dir(name));
            cfg["pg_stop_command"] = json!(cluster.stop_command(name)?);
            cfg["pg_start_command"] = json!(cluster.start_command(name)?);
            configs.push(cfg);
        }
        // the standbys' daemons first, each once it sees pg1; the primary's last
        let mut daemons: Vec<Option<Daemon>> = NODES.iter().map(|_| None).collect();
        for d in (1..NODES.len()).chain([0]) {
            let daemon = Daemon::spawn(&bin, NODES[d], cluster.dir(), configs[d].clone())?;
            if d != 0 {
                wait_for(
                    &format!("{}'s daemon to see pg1", NODES[d]),
                    HEALTHY_DEADLINE,
                    || async {
                        Ok(daemon
                            .state()
                            .is_some_and(|s| s["db_nodes"]["pg1"]["connection"] == json!(true)))
                    },
                )
                .await?;
            }
            daemons[d] = Some(daemon);
        }
        let daemons: Vec<Daemon> = daemons.into_iter().flatten().collect();
        let lab = Lab {
            daemons,
            observer,
            cluster,
        };
        wait_for("every daemon to see pg1 as the master", HEALTHY_DEADLINE, || async {
            Ok(lab
                .all_daemons()
                .all(|d| d.state().is_some_and(|s| s["current_master"] == json!("pg1"))))
        })
        .await?;
        Ok(lab)
    }

    fn all_daemons(&self) -> impl Iterator<Item = &Daemon> {
        self.daemons.iter().chain(std::iter::once(&self.observer))
    }

    fn daemon(&self, name: &str) -> Result<&Daemon> {
        self.daemons
            .iter()
            .find(|d| d.name == name)
            .ok_or_else(|| anyhow!("no daemon {name}"))
    }

    /// The tails of the daemons' logs, for a failure.
    fn diagnostics(&self) -> String {
        let mut out = String::new();
        for d in self.all_daemons() {
            let log = d.log();
            let lines: Vec<&str> = log.lines().collect();
            let _ = writeln!(out, "--- {} ({})", d.name, d.log_path.display());
            for l in &lines[lines.len().saturating_sub(15)..] {
                let _ = writeln!(out, "{l}");
            }
        }
        out
    }
}

// ---- the writer and the sampler ----

async fn connect(conninfo: &str) -> Result<tokio_postgres::Client> {
    let mut cfg: tokio_postgres::Config = conninfo.parse()?;
    cfg.connect_timeout(CLIENT_TIMEOUT)
        .application_name("pglab-switchbench")
        .options("-c statement_timeout=1000");
    let (client, conn) = tokio::time::timeout(CLIENT_TIMEOUT, cfg.connect(NoTls))
        .await
        .map_err(|_| anyhow!("connect timed out"))??;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(client)
}

/// A fixed-rate tick that ends when `stop` turns true; a late tick is delayed, never bunched.
async fn tick(interval: &mut tokio::time::Interval, stop: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = interval.tick() => {}
        changed = stop.changed() => {
            if changed.is_err() {
                return false;
            }
        }
    }
    !*stop.borrow()
}

fn every(period: Duration) -> tokio::time::Interval {
    let mut i = tokio::time::interval(period);
    i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    i
}

/// The writer and the sampler, recording from a common start.
struct Recorder {
    t0: Instant,
    acks: Arc<Mutex<Vec<Ack>>>,
    samples: Arc<Mutex<Vec<Sample>>>,
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

impl Recorder {
    fn start(cluster: &Cluster) -> Recorder {
        let t0 = Instant::now();
        let acks = Arc::new(Mutex::new(Vec::new()));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let (stop, _) = watch::channel(false);
        let conninfos: Vec<String> = NODES.iter().map(|n| cluster.superuser_conninfo(n)).collect();
        let mut tasks = JoinSet::new();
        tasks.spawn(writer(conninfos.clone(), acks.clone(), t0, stop.subscribe()));
        tasks.spawn(sampler(conninfos, samples.clone(), t0, stop.subscribe()));
        Recorder {
            t0,
            acks,
            samples,
            stop,
            tasks,
        }
    }

    fn now(&self) -> f64 {
        self.t0.elapsed().as_secs_f64()
    }

    fn acks(&self) -> Vec<Ack> {
        lock(&self.acks).clone()
    }

    fn samples_between(&self, from: f64, to: f64) -> Vec<Sample> {
        lock(&self.samples)
            .iter()
            .filter(|s| s.at >= from && s.at <= to)
            .copied()
            .collect()
    }

    async fn stop(mut self) {
        self.stop.send_replace(true);
        let drained = tokio::time::timeout(Duration::from_secs(5), async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            self.tasks.abort_all();
        }
    }
}

/// Whether the node answers as writable; the connection is kept in `slot` while it works.
async fn probe(slot: &mut Option<tokio_postgres::Client>, conninfo: &str) -> Option<bool> {
    let c = match slot.take() {
        Some(c) if !c.is_closed() => c,
        _ => connect(conninfo).await.ok()?,
    };
    let row = tokio::time::timeout(CLIENT_TIMEOUT, c.query_one("SELECT NOT pg_is_in_recovery()", &[]))
        .await
        .ok()?
        .ok()?;
    let w: bool = row.try_get(0).ok()?;
    *slot = Some(c);
    Some(w)
}

/// One INSERT of the next counter every tick on the node that answers as the primary (looked
/// for again, in node order, after any failed write).
async fn writer(conninfos: Vec<String>, acks: Arc<Mutex<Vec<Ack>>>, t0: Instant, mut stop: watch::Receiver<bool>) {
    let next_id = AtomicI64::new(1);
    let mut clients: Vec<Option<tokio_postgres::Client>> = conninfos.iter().map(|_| None).collect();
    let mut current: Option<usize> = None;
    let mut interval = every(WRITE_EVERY);
    while tick(&mut interval, &mut stop).await {
        if current.is_none() {
            for (n, conninfo) in conninfos.iter().enumerate() {
                if probe(&mut clients[n], conninfo).await == Some(true) {
                    current = Some(n);
                    break;
                }
            }
        }
        let Some(n) = current else { continue };
        let Some(c) = clients[n].take() else {
            current = None;
            continue;
        };
        let id = next_id.fetch_add(1, Ordering::SeqCst);
        let name = NODES[n];
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&id, &name];
        let insert = c.execute(INSERT, &params);
        match tokio::time::timeout(CLIENT_TIMEOUT, insert).await {
            Ok(Ok(_)) => {
                let at = t0.elapsed().as_secs_f64();
                lock(&acks).push(Ack { id, node: n, at });
                clients[n] = Some(c);
            }
            // a server error (read-only now): the connection is fine, the primary is elsewhere
            Ok(Err(e)) if e.as_db_error().is_some() && !c.is_closed() => {
                clients[n] = Some(c);
                current = None;
            }
            _ => current = None,
        }
    }
}

/// Every tick, `pg_is_in_recovery()` on every node at once.
async fn sampler(
    conninfos: Vec<String>,
    samples: Arc<Mutex<Vec<Sample>>>,
    t0: Instant,
    mut stop: watch::Receiver<bool>,
) {
    let mut clients: Vec<Option<tokio_postgres::Client>> = conninfos.iter().map(|_| None).collect();
    let mut interval = every(SAMPLE_EVERY);
    while tick(&mut interval, &mut stop).await {
        let at = t0.elapsed().as_secs_f64();
        let [a, b, c] = &mut clients[..] else { return };
        let (wa, wb, wc) = tokio::join!(
            probe(a, &conninfos[0]),
            probe(b, &conninfos[1]),
            probe(c, &conninfos[2])
        );
        lock(&samples).push(Sample {
            at,
            writable: [wa, wb, wc],
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ack(id: i64, node: usize, at: f64) -> Ack {
        Ack { id, node, at }
    }

    #[test]
    fn unavailability_runs_from_the_last_old_commit_to_the_first_new_one() {
        let acks = [
            ack(1, 0, 1.0),
            ack(2, 0, 1.05),
            ack(3, 0, 1.10),
            ack(4, 1, 2.40),
            ack(5, 1, 2.45),
        ];
        let u = unavailability(&acks, 0, 1, 1.02).expect("measured");
        assert!((u - 1.30).abs() < 1e-9, "{u}");
        // no commit on the new primary yet: nothing to measure
        assert_eq!(unavailability(&acks[..3], 0, 1, 1.02), None);
    }

    #[test]
    fn the_summary_fails_on_a_lost_write_or_two_writables() {
        let good = RunResult {
            state: "succeeded".into(),
            unavailable: Some(0.5),
            took: Some(1.0),
            old_streaming: Some(2.0),
            ..Default::default()
        };
        assert!(summary(std::slice::from_ref(&good)).1);
        let lost = RunResult {
            lost: 1,
            ..good.clone()
        };
        assert!(!summary(&[good.clone(), lost]).1);
        let two = RunResult {
            two_writable: 1,
            ..good.clone()
        };
        assert!(!summary(&[two]).1);
        let failed = RunResult {
            state: "failed".into(),
            ..good
        };
        assert!(!summary(&[failed]).1);
    }
}
