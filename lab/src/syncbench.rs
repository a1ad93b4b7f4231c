//! `pglab bench-sync`: what synchronous replication costs the primary's commits (issue 21,
//! item 6). A benchmark, not a test: it prints numbers, and fails only when the setup fails (the
//! cluster, a setting that does not take effect within its deadline, a commit that does not
//! return, a standby no longer streaming after a measurement).
//!
//! Each run starts a fresh lab cluster: a primary `pg1` and two streaming standbys whose
//! `application_name` is their node name (as [`Cluster::replication_conninfo`] sets it in their
//! `primary_conninfo`). It then measures every [`Setting`] in turn, the order rotated from run to
//! run so that drift within a run favours no setting:
//! - `off`: `synchronous_standby_names = ''`, `synchronous_commit = on` (asynchronous);
//! - `on`: `synchronous_standby_names = 'ANY 1 ("pg2", "pg3")'`, `synchronous_commit = on`: a
//!   commit returns once one of the two standbys has flushed its WAL. pglookout's
//!   `synchronous_mode` `strict` sets the same names; it differs from `on` only when no standby
//!   is connected, so with both streaming its cost is this one;
//! - `remote_apply`: the same names with `synchronous_commit = remote_apply`: a commit returns
//!   once one standby has replayed it.
//!
//! A setting is applied with `ALTER SYSTEM` and `pg_reload_conf()` on the primary, then waited
//! for (30 s at most) until a new session shows both values and `pg_stat_replication` lists
//! every standby streaming with the expected `sync_state` (`quorum` under `ANY`, `async`
//! without names). Then `clients` new TCP connections to the primary each commit single-row
//! `INSERT`s (autocommit, a prepared statement) in a loop; after `warmup` seconds, for
//! `seconds`, every commit that returns inside that window counts, with its latency (from
//! sending the statement to its `ReadyForQuery`, which comes after the commit). Afterwards the
//! standbys' states are checked once more.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};
use tokio_postgres::NoTls;

use crate::bench::{cpu_model, cpu_ticks, percentile, shutdown_signal};
use crate::cluster::{Cluster, ClusterSpec, LOAD_TABLE};
use crate::process::pids_with_cwd_under;
use crate::wait::wait_for;

const PRIMARY: &str = "pg1";
const STANDBYS: usize = 2;
/// How long a new setting may take to show in a new session and in `pg_stat_replication`.
const SETTING_DEADLINE: Duration = Duration::from_secs(30);
/// A commit that takes longer is a setup failure (a synchronous commit with no standby left).
const COMMIT_DEADLINE: Duration = Duration::from_secs(30);
const CONNECT_DEADLINE: Duration = Duration::from_secs(10);
/// The lab's `max_connections` is 100; leave room for its own sessions and the reserved slots.
const MAX_CLIENTS: usize = 80;
/// With `max_others`: give up after this many discarded runs.
const MAX_DISCARDED: usize = 20;
/// With `max_others`: a run starts once the machine was that quiet for this long...
const QUIET_SPAN: Duration = Duration::from_secs(10);
/// ... within this deadline.
const QUIET_DEADLINE: Duration = Duration::from_secs(3600);

/// What to run (the `pglab bench-sync` flags).
#[derive(Debug, Clone)]
pub struct Options {
    /// Concurrent client connections, each committing one row at a time.
    pub clients: usize,
    /// Length of each measurement window, seconds.
    pub seconds: f64,
    /// Load before each window that is not counted, seconds.
    pub warmup: f64,
    /// Repetitions, each on a fresh cluster.
    pub runs: usize,
    /// Extra postgresql.conf lines for every node (e.g. `fsync = on`).
    pub extra_conf: Vec<String>,
    /// For a shared machine: start each run only once the machine has been less busy than this
    /// (percent of all CPUs) for 10 s, and repeat a run in which processes other than `pglab`
    /// and the servers used more than this during a window.
    pub max_others: Option<f64>,
    /// Print the results as one JSON document on stdout (the human lines go to stderr).
    pub json: bool,
}

/// One configuration of the primary whose commits are measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setting {
    Off,
    On,
    RemoteApply,
}

impl Setting {
    /// In the report's order.
    pub const ALL: [Setting; 3] = [Setting::Off, Setting::On, Setting::RemoteApply];

    pub fn name(self) -> &'static str {
        match self {
            Setting::Off => "off",
            Setting::On => "on",
            Setting::RemoteApply => "remote_apply",
        }
    }

    /// `synchronous_standby_names` for this setting, given the standbys' names.
    pub fn standby_names(self, standbys: &[String]) -> String {
        match self {
            Setting::Off => String::new(),
            Setting::On | Setting::RemoteApply => any_one_of(standbys),
        }
    }

    pub fn synchronous_commit(self) -> &'static str {
        match self {
            Setting::Off | Setting::On => "on",
            Setting::RemoteApply => "remote_apply",
        }
    }

    /// The `sync_state` every standby must show in `pg_stat_replication`.
    fn sync_state(self) -> &'static str {
        match self {
            Setting::Off => "async",
            Setting::On | Setting::RemoteApply => "quorum",
        }
    }

    fn index(self) -> usize {
        Setting::ALL.iter().position(|&s| s == self).unwrap_or(0)
    }
}

/// `ANY 1 ("pg2", "pg3")`: a commit waits for any one of the standbys.
pub fn any_one_of(standbys: &[String]) -> String {
    let quoted: Vec<String> = standbys
        .iter()
        .map(|s| format!("\"{}\"", s.replace('"', "\"\"")))
        .collect();
    format!("ANY 1 ({})", quoted.join(", "))
}

/// One setting measured once.
#[derive(Debug, Clone)]
pub struct Measurement {
    pub setting: Setting,
    pub commits: usize,
    pub per_sec: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Share of all CPUs busy during the window (everything on the machine, interrupts
    /// included), 0 to 1.
    pub machine_busy: Option<f64>,
    /// The part of that used by processes other than `pglab` and the cluster's servers (their
    /// user and system time; interrupt time, most of it our own loopback traffic, is left out).
    pub others_busy: Option<f64>,
}

impl Measurement {
    fn from_latencies(setting: Setting, mut ms: Vec<f64>, seconds: f64, cpu: Option<(f64, f64)>) -> Measurement {
        ms.sort_by(f64::total_cmp);
        let pct = |p| if ms.is_empty() { f64::NAN } else { percentile(&ms, p) };
        Measurement {
            setting,
            commits: ms.len(),
            per_sec: ms.len() as f64 / seconds,
            p50_ms: pct(0.50),
            p95_ms: pct(0.95),
            p99_ms: pct(0.99),
            max_ms: ms.last().copied().unwrap_or(f64::NAN),
            machine_busy: cpu.map(|c| c.0),
            others_busy: cpu.map(|c| c.1),
        }
    }

    fn line(&self) -> String {
        format!(
            "  {:<12} {:>7} commits, {:>8.1} commits/s, latency p50 {:.3} ms, p95 {:.3} ms, p99 {:.3} ms, max {:.3} ms; CPU busy {} (others {})",
            self.setting.name(),
            self.commits,
            self.per_sec,
            self.p50_ms,
            self.p95_ms,
            self.p99_ms,
            self.max_ms,
            percent(self.machine_busy),
            percent(self.others_busy),
        )
    }

    fn to_json(&self) -> Value {
        json!({
            "setting": self.setting.name(),
            "commits": self.commits,
            "commits_per_sec": self.per_sec,
            "p50_ms": self.p50_ms,
            "p95_ms": self.p95_ms,
            "p99_ms": self.p99_ms,
            "max_ms": self.max_ms,
            "machine_busy": self.machine_busy,
            "others_busy": self.others_busy,
        })
    }
}

/// Runs the benchmark and prints its report. Errors are setup failures only.
pub async fn run(opts: Options) -> Result<()> {
    validate(&opts)?;
    let log = |line: String| {
        if opts.json {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    };
    log(format!(
        "pglab bench-sync: {} clients committing single-row INSERTs on the primary, {} s warm-up + {} s \
         per setting, {} runs (a fresh primary and {STANDBYS} standbys each); {} cores ({})",
        opts.clients,
        opts.warmup,
        opts.seconds,
        opts.runs,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        cpu_model().unwrap_or_else(|| "unknown CPU".into()),
    ));
    let mut runs = Vec::with_capacity(opts.runs);
    let mut discarded = 0;
    while runs.len() < opts.runs {
        let run = runs.len();
        let measured = tokio::select! {
            r = async {
                if let Some(limit) = opts.max_others {
                    wait_quiet(limit, &log).await?;
                }
                one_run(&opts, run, &log).await
            } => r.with_context(|| format!("run {}", run + 1))?,
            r = shutdown_signal() => {
                r?;
                bail!("interrupted");
            }
        };
        if let Some(limit) = opts.max_others {
            let worst = measured.iter().filter_map(|m| m.others_busy).fold(0.0, f64::max);
            if worst * 100.0 > limit {
                discarded += 1;
                log(format!(
                    "run {} discarded: other processes used {:.0} % of the CPU in a window (limit {limit} %)",
                    run + 1,
                    worst * 100.0
                ));
                if discarded >= MAX_DISCARDED {
                    bail!("{discarded} runs discarded: the machine is not quiet enough for --max-others {limit}");
                }
                continue;
            }
        }
        runs.push(measured);
    }
    let mut table = summary_table(&runs);
    if let Some(limit) = opts.max_others {
        table.push_str(&format!(
            "\n{discarded} runs discarded and repeated (other processes above {limit} % of the CPU)\n"
        ));
    }
    if opts.json {
        eprint!("{table}");
        let doc = json!({
            "clients": opts.clients,
            "seconds": opts.seconds,
            "warmup": opts.warmup,
            "extra_conf": opts.extra_conf,
            "max_others_percent": opts.max_others,
            "discarded_runs": discarded,
            "runs": runs
                .iter()
                .map(|r| r.iter().map(Measurement::to_json).collect::<Vec<_>>())
                .collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        print!("{table}");
    }
    Ok(())
}

fn percent(share: Option<f64>) -> String {
    share.map_or("?".to_string(), |b| format!("{:.0} %", b * 100.0))
}

fn validate(opts: &Options) -> Result<()> {
    if opts.clients == 0 || opts.clients > MAX_CLIENTS {
        bail!("--clients must be between 1 and {MAX_CLIENTS} (the lab's max_connections is 100)");
    }
    if !(opts.seconds.is_finite() && opts.seconds > 0.0) {
        bail!("--seconds must be a positive number of seconds");
    }
    if !(opts.warmup.is_finite() && opts.warmup >= 0.0) {
        bail!("--warmup must be a non-negative number of seconds");
    }
    if opts.max_others.is_some_and(|p| !(p.is_finite() && p >= 0.0)) {
        bail!("--max-others must be a non-negative percentage");
    }
    if opts.runs == 0 {
        bail!("--runs must be at least 1");
    }
    Ok(())
}

/// Waits (an hour at most) until the whole machine has been less than `limit` % busy over
/// [`QUIET_SPAN`]: on a shared machine, a run starts only when the machine is ours.
async fn wait_quiet(limit: f64, log: &impl Fn(String)) -> Result<()> {
    let t = Instant::now();
    let last = std::cell::Cell::new(f64::NAN);
    wait_for(
        &format!("the machine to be under {limit} % busy for {QUIET_SPAN:?}"),
        QUIET_DEADLINE,
        || async {
            let a = CpuStat::read().context("reading /proc/stat")?;
            tokio::time::sleep(QUIET_SPAN).await;
            let b = CpuStat::read().context("reading /proc/stat")?;
            let busy = 100.0 * (b.busy - a.busy) as f64 / (b.total - a.total).max(1) as f64;
            last.set(busy);
            Ok(busy < limit)
        },
    )
    .await
    .with_context(|| format!("last seen {:.0} % busy", last.get()))?;
    if t.elapsed() > QUIET_SPAN + Duration::from_secs(1) {
        log(format!(
            "waited {:.0} s for the machine to be quiet",
            t.elapsed().as_secs_f64()
        ));
    }
    Ok(())
}

/// One run: a fresh cluster, every setting measured once. The result is in [`Setting::ALL`]'s
/// order, whatever order they were measured in.
async fn one_run(opts: &Options, run: usize, log: &impl Fn(String)) -> Result<Vec<Measurement>> {
    let t = Instant::now();
    let cluster = Cluster::start(ClusterSpec {
        standbys: STANDBYS,
        wal_level_logical: false,
        extra_conf: opts.extra_conf.clone(),
        ..Default::default()
    })
    .await
    .context("starting the lab cluster")?;
    let standbys: Vec<String> = cluster.nodes()[1..].iter().map(|n| n.name.clone()).collect();
    let fsync: String = cluster.sql(PRIMARY, "SHOW fsync").await?[0].get(0);
    log(format!(
        "run {}/{}: cluster {} started in {:.1} s (PostgreSQL {}, fsync = {fsync}, {})",
        run + 1,
        opts.runs,
        cluster.ports(),
        t.elapsed().as_secs_f64(),
        cluster.env().version,
        cluster.dir().display(),
    ));
    let conninfo = cluster.superuser_conninfo(PRIMARY);
    let mut results = Vec::with_capacity(Setting::ALL.len());
    for i in 0..Setting::ALL.len() {
        let setting = Setting::ALL[(i + run) % Setting::ALL.len()];
        apply(&cluster, setting, &standbys)
            .await
            .with_context(|| format!("applying setting {}", setting.name()))?;
        let m = load(&conninfo, cluster.dir(), setting, opts)
            .await
            .with_context(|| format!("measuring setting {}", setting.name()))?;
        // still the setting measured: both standbys stream, in the expected state, at the end
        // (checked once after the window, not throughout)
        let seen = replication_view(&cluster).await?;
        if let Err(e) = expect(setting, &standbys, &seen) {
            bail!("after measuring setting {}: {e}", setting.name());
        }
        log(m.line());
        results.push(m);
    }
    results.sort_by_key(|m| m.setting.index());
    Ok(results)
}

/// `ALTER SYSTEM` both settings on the primary, reload, and wait until they show.
async fn apply(cluster: &Cluster, setting: Setting, standbys: &[String]) -> Result<()> {
    cluster
        .sql(
            PRIMARY,
            &format!(
                "ALTER SYSTEM SET synchronous_standby_names = {}",
                quote_literal(&setting.standby_names(standbys))
            ),
        )
        .await?;
    cluster
        .sql(
            PRIMARY,
            &format!(
                "ALTER SYSTEM SET synchronous_commit = {}",
                quote_literal(setting.synchronous_commit())
            ),
        )
        .await?;
    cluster.sql(PRIMARY, "SELECT pg_reload_conf()").await?;
    wait_for(
        &format!(
            "{PRIMARY} to show synchronous_standby_names = '{}', synchronous_commit = {} and every \
             standby streaming with sync_state {}",
            setting.standby_names(standbys),
            setting.synchronous_commit(),
            setting.sync_state()
        ),
        SETTING_DEADLINE,
        || async {
            let seen = replication_view(cluster).await?;
            // a mismatch is an error so that the timeout says what was seen last
            expect(setting, standbys, &seen).map(|()| true).map_err(|e| anyhow!(e))
        },
    )
    .await
}

/// What a new session on the primary sees: its two settings and `pg_stat_replication`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ReplicationView {
    standby_names: String,
    synchronous_commit: String,
    /// `application_name state sync_state` per row, sorted.
    senders: Vec<String>,
}

async fn replication_view(cluster: &Cluster) -> Result<ReplicationView> {
    let rows = cluster
        .sql(
            PRIMARY,
            "SELECT current_setting('synchronous_standby_names'), current_setting('synchronous_commit'), \
             ARRAY(SELECT application_name || ' ' || state || ' ' || sync_state \
                   FROM pg_stat_replication ORDER BY 1)",
        )
        .await?;
    let row = rows.first().context("no row")?;
    Ok(ReplicationView {
        standby_names: row.get(0),
        synchronous_commit: row.get(1),
        senders: row.get(2),
    })
}

/// `Ok` when `seen` is what `setting` must look like, else what differs.
fn expect(setting: Setting, standbys: &[String], seen: &ReplicationView) -> Result<(), String> {
    let names = setting.standby_names(standbys);
    let senders: Vec<String> = standbys
        .iter()
        .map(|s| format!("{s} streaming {}", setting.sync_state()))
        .collect();
    if seen.standby_names == names && seen.synchronous_commit == setting.synchronous_commit() && seen.senders == senders
    {
        Ok(())
    } else {
        Err(format!(
            "seen synchronous_standby_names = '{}', synchronous_commit = {}, pg_stat_replication [{}]; \
             expected '{names}', {}, [{}]",
            seen.standby_names,
            seen.synchronous_commit,
            seen.senders.join(", "),
            setting.synchronous_commit(),
            senders.join(", ")
        ))
    }
}

/// Connects the clients, runs the load through the warm-up and the window, and returns the
/// commits that returned inside the window.
async fn load(conninfo: &str, root: &Path, setting: Setting, opts: &Options) -> Result<Measurement> {
    let mut clients = Vec::with_capacity(opts.clients);
    for i in 0..opts.clients {
        clients.push(
            connect(conninfo, setting)
                .await
                .with_context(|| format!("client {}", i + 1))?,
        );
    }
    let start = Instant::now();
    let window_start = start + Duration::from_secs_f64(opts.warmup);
    let window_end = window_start + Duration::from_secs_f64(opts.seconds);
    let mut tasks = tokio::task::JoinSet::new();
    for (i, (client, insert)) in clients.into_iter().enumerate() {
        tasks.spawn(async move {
            let payload = format!("bench-sync client {}", i + 1);
            let mut latencies_ms = Vec::new();
            loop {
                let sent = Instant::now();
                if sent >= window_end {
                    break;
                }
                tokio::time::timeout(COMMIT_DEADLINE, client.execute(&insert, &[&payload]))
                    .await
                    .map_err(|_| anyhow!("a commit did not return within {COMMIT_DEADLINE:?}"))?
                    .context("INSERT")?;
                let done = Instant::now();
                if done >= window_start && done <= window_end {
                    latencies_ms.push((done - sent).as_secs_f64() * 1e3);
                }
            }
            anyhow::Ok(latencies_ms)
        });
    }
    tokio::time::sleep_until(window_start.into()).await;
    let before = (CpuStat::read(), own_ticks(root));
    tokio::time::sleep_until(window_end.into()).await;
    let after = (CpuStat::read(), own_ticks(root));
    let cpu = match (before, after) {
        ((Some(a), own0), (Some(b), own1)) if b.total > a.total => {
            let total = (b.total - a.total) as f64;
            let others = (b.processes - a.processes).saturating_sub(own1.saturating_sub(own0));
            Some(((b.busy - a.busy) as f64 / total, others as f64 / total))
        }
        _ => None,
    };
    let mut all = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        all.extend(joined.context("a client task panicked")??);
    }
    Ok(Measurement::from_latencies(setting, all, opts.seconds, cpu))
}

/// All CPUs' ticks from the `cpu` line of `/proc/stat`.
#[derive(Debug, Clone, Copy)]
struct CpuStat {
    /// user + nice + system: time spent in processes.
    processes: u64,
    /// Everything but idle and iowait (interrupts and steal too).
    busy: u64,
    total: u64,
}

impl CpuStat {
    fn read() -> Option<CpuStat> {
        CpuStat::parse(&std::fs::read_to_string("/proc/stat").ok()?)
    }

    fn parse(text: &str) -> Option<CpuStat> {
        let line = text.lines().find(|l| l.starts_with("cpu "))?;
        // user nice system idle iowait irq softirq steal (guest time is within user)
        let v: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .take(8)
            .map(|x| x.parse().ok())
            .collect::<Option<_>>()?;
        if v.len() < 5 {
            return None;
        }
        let total: u64 = v.iter().sum();
        Some(CpuStat {
            processes: v[0] + v[1] + v[2],
            busy: total - v[3] - v[4],
            total,
        })
    }
}

/// CPU ticks used so far by `pglab` and every process running under the cluster's directory
/// (the servers and their backends).
fn own_ticks(root: &Path) -> u64 {
    std::iter::once(std::process::id())
        .chain(pids_with_cwd_under(root).into_iter().map(|p| p as u32))
        .filter_map(cpu_ticks)
        .sum()
}

/// A new session on the primary with the INSERT prepared; checks that it runs under the
/// setting's `synchronous_commit`.
async fn connect(conninfo: &str, setting: Setting) -> Result<(tokio_postgres::Client, tokio_postgres::Statement)> {
    let (client, connection) = tokio::time::timeout(CONNECT_DEADLINE, tokio_postgres::connect(conninfo, NoTls))
        .await
        .map_err(|_| anyhow!("connecting to {PRIMARY} timed out"))?
        .with_context(|| format!("connecting to {PRIMARY}"))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let rows = client.query("SHOW synchronous_commit", &[]).await?;
    let seen: String = rows.first().context("SHOW returned no row")?.get(0);
    if seen != setting.synchronous_commit() {
        bail!(
            "the session runs with synchronous_commit = {seen}, not {}",
            setting.synchronous_commit()
        );
    }
    let insert = client
        .prepare(&format!("INSERT INTO {LOAD_TABLE} (payload) VALUES ($1)"))
        .await?;
    Ok((client, insert))
}

/// Median, min and max of one metric over the runs.
fn spread(values: &[f64]) -> (f64, f64, f64) {
    let mut v: Vec<f64> = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    (median, v[0], v[n - 1])
}

/// The report: per setting, the median over the runs of each number and its range, as a
/// Markdown table.
fn summary_table(runs: &[Vec<Measurement>]) -> String {
    let mut out = format!(
        "\nmedian of {} runs (min-max):\n\n\
         | setting | commits/s | vs off | latency p50 ms | p95 ms | p99 ms | max ms | CPU of others, max |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|\n",
        runs.len()
    );
    let of = |s: Setting, f: fn(&Measurement) -> f64| -> Vec<f64> {
        runs.iter()
            .flat_map(|r| r.iter().filter(|m| m.setting == s).map(f))
            .collect()
    };
    let off_rate = spread(&of(Setting::Off, |m| m.per_sec)).0;
    for s in Setting::ALL {
        let cell = |f: fn(&Measurement) -> f64, decimals: usize| {
            let (med, min, max) = spread(&of(s, f));
            format!("{med:.decimals$} ({min:.decimals$}-{max:.decimals$})")
        };
        let rate = spread(&of(s, |m| m.per_sec)).0;
        let others = of(s, |m| m.others_busy.unwrap_or(f64::NAN));
        out.push_str(&format!(
            "| {} | {} | {:.2} | {} | {} | {} | {} | {} |\n",
            s.name(),
            cell(|m| m.per_sec, 0),
            rate / off_rate,
            cell(|m| m.p50_ms, 2),
            cell(|m| m.p95_ms, 2),
            cell(|m| m.p99_ms, 2),
            cell(|m| m.max_ms, 1),
            percent(Some(spread(&others).2)),
        ));
    }
    out
}

/// A single-quoted SQL literal.
fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_quote_every_standby() {
        let names = vec!["pg2".to_string(), "pg3".to_string()];
        assert_eq!(any_one_of(&names), r#"ANY 1 ("pg2", "pg3")"#);
        assert_eq!(Setting::Off.standby_names(&names), "");
        assert_eq!(
            quote_literal(&Setting::RemoteApply.standby_names(&names)),
            r#"'ANY 1 ("pg2", "pg3")'"#
        );
    }

    #[test]
    fn cpu_stat_splits_process_time_from_interrupts() {
        let stat = "cpu  100 2 30 500 7 1 9 0 0 0\ncpu0 50 1 15 250 3 0 4 0 0 0\n";
        let c = CpuStat::parse(stat).expect("parses");
        assert_eq!((c.processes, c.busy, c.total), (132, 142, 649));
    }

    #[test]
    fn spread_is_median_min_max() {
        assert_eq!(spread(&[3.0, 1.0, 2.0]), (2.0, 1.0, 3.0));
        assert_eq!(spread(&[4.0, 1.0]), (2.5, 1.0, 4.0));
    }

    #[test]
    fn expect_wants_every_standby_in_the_state() {
        let standbys = vec!["pg2".to_string(), "pg3".to_string()];
        let mut seen = ReplicationView {
            standby_names: r#"ANY 1 ("pg2", "pg3")"#.into(),
            synchronous_commit: "on".into(),
            senders: vec!["pg2 streaming quorum".into(), "pg3 streaming quorum".into()],
        };
        assert!(expect(Setting::On, &standbys, &seen).is_ok());
        assert!(expect(Setting::RemoteApply, &standbys, &seen).is_err());
        seen.senders.pop();
        assert!(expect(Setting::On, &standbys, &seen).is_err());
    }
}
