//! `pglab chaos`: a seeded, randomized fault campaign that checks the daemons never leave two
//! writable primaries.
//!
//! Owns, per run, a [`ChaosLab`] (a fresh cluster pg1 + pg2 + pg3, one `pglookout` per node and
//! the dedicated observers of its [`Layout`]: one `observer` for `mesh`, `obs1`..`obs3` for
//! `dedicated3`), with every daemon→node link, every node daemon→daemon link and every
//! standby's WAL stream behind its own [`Proxy`]), the writer and monitor that record what the
//! cluster acknowledged and who was writable when, the fault injection and healing, and the
//! judgement of the run. Nothing outlives a run: the lab's `Cluster`, `Daemon`s and proxies
//! clean up on drop.
//!
//! Addressing: autofollow copies the new master's `host` and `port` from the daemon's
//! `remote_conns` into `primary_conninfo`, and the daemon's links and the WAL stream must be
//! cut separately. So each daemon→node proxy listens on the node's own port at its own loopback
//! address (127.0.1x.y), and each node's `primary_conninfo_template` carries `hostaddr` =
//! 127.0.(30+s).1, its own WAL address: libpq then dials that address on the upstream's port
//! (taken from `remote_conns`) and uses `host` only as a name, and a WAL proxy per (standby,
//! upstream) listens there and forwards to the upstream. The writer and the monitor connect to
//! the nodes directly: they are the clients that still reach an isolated primary.
//!
//! Everything random comes from one splitmix64 stream per run, keyed by (seed, run index): the
//! fault (a seeded permutation of the allowed faults per block of runs, so `--runs 3 --faults
//! a,b,c` covers all three), how long it is held, which standby it picks, whether links are
//! refused or blackholed, and which garbage the fake observer answers. Timing of the daemons
//! themselves is of course not reproducible.

use crate::cluster::REPLICATION_USER;
use crate::daemon::free_ports;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use nix::sys::signal::Signal;
use serde_json::{json, Map, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tokio_postgres::NoTls;

use crate::cluster::MONITOR_USER;
use crate::daemon::{pglookout_bin, Daemon};
use crate::fleet::{daemon_config, FleetSpec};
use crate::process;
use crate::wait::wait_for;
use crate::{Cluster, ClusterSpec, Proxy, ProxyMode};

/// The node that is primary when every run starts.
const PRIMARY: &str = "pg1";
const NODES: [&str; 3] = ["pg1", "pg2", "pg3"];
const WRITE_EVERY: Duration = Duration::from_millis(50);
const MONITOR_EVERY: Duration = Duration::from_millis(200);
/// Client-side bound of one write or probe: a SIGSTOPped server never answers.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(1);
const HEALTHY_DEADLINE: Duration = Duration::from_secs(90);
const BLIP: f64 = 3.0;
/// `failover_command_timeout` of the lab's daemons: long enough for `pg_ctl promote`, short
/// enough that a hanging failover command is given up within a run.
const FAILOVER_COMMAND_TIMEOUT: f64 = 20.0;
const LOG_TAIL: usize = 15;
/// Writes pg1 must have acknowledged before the fault.
const BASELINE_WRITES: usize = 20;
/// After convergence, how long the master has to acknowledge a write.
const RESUME_DEADLINE: Duration = Duration::from_secs(10);
/// `primary-host-isolated-supervisor`: how long after pg1 went down (its fence) the
/// supervisor starts it again, how many times at most, and how often it looks.
const SUPERVISOR_DELAY: Duration = Duration::from_secs(1);
const SUPERVISOR_RESTARTS: usize = 1;
const SUPERVISOR_POLL: Duration = Duration::from_millis(100);

/// The `default` profile's keys on top of `fleet`'s timings.
const DEFAULT_PROFILE: &str = r#"{"db_poll_timeout": 1.0, "max_failover_replication_time_lag": 20.0,
    "warning_replication_time_lag": 10.0}"#;

/// The `fast` profile: the file operators merge into their configs, compiled in.
const FAST_PROFILE: &str = include_str!("../../docs/profiles/fast.json");

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fault {
    Kill9,
    Partition,
    Blip,
    Sigstop,
    CutStandbys,
    ObserverKilled,
    StandbyIsolated,
    PrimaryDaemonKilled,
    FailoverCommandHangs,
    ObserverGarbage,
    SigstopStandby,
    SigstopObserver,
    StandbyDaemonsCut,
    PrimaryHostIsolated,
    PrimaryHostIsolatedSupervisor,
    ZoneSplit,
    /// Not a fault: a planned switchover (`POST /switchover?to=pg2` at pg1's daemon) during
    /// the write load. Judged strictly: one promotion (pg2's), no fence, no acknowledged
    /// write lost whatever `--sync`, never two writable.
    Switchover,
}

impl Fault {
    pub const ALL: [Fault; 17] = [
        Fault::Kill9,
        Fault::Partition,
        Fault::Blip,
        Fault::Sigstop,
        Fault::CutStandbys,
        Fault::ObserverKilled,
        Fault::StandbyIsolated,
        Fault::PrimaryDaemonKilled,
        Fault::FailoverCommandHangs,
        Fault::ObserverGarbage,
        Fault::SigstopStandby,
        Fault::SigstopObserver,
        Fault::StandbyDaemonsCut,
        Fault::PrimaryHostIsolated,
        Fault::PrimaryHostIsolatedSupervisor,
        Fault::ZoneSplit,
        Fault::Switchover,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Fault::Kill9 => "kill9",
            Fault::Partition => "partition",
            Fault::Blip => "blip",
            Fault::Sigstop => "sigstop",
            Fault::CutStandbys => "cut-standbys",
            Fault::ObserverKilled => "observer-killed",
            Fault::StandbyIsolated => "standby-isolated",
            Fault::PrimaryDaemonKilled => "primary-daemon-killed",
            Fault::FailoverCommandHangs => "failover-command-hangs",
            Fault::ObserverGarbage => "observer-garbage",
            Fault::SigstopStandby => "sigstop-standby",
            Fault::SigstopObserver => "sigstop-observer",
            Fault::StandbyDaemonsCut => "standby-daemons-cut",
            Fault::PrimaryHostIsolated => "primary-host-isolated",
            Fault::PrimaryHostIsolatedSupervisor => "primary-host-isolated-supervisor",
            Fault::ZoneSplit => "zone-split",
            Fault::Switchover => "switchover",
        }
    }

    /// Whether the fault can be injected on `layout` (`zone-split` needs the three dedicated
    /// observers of `dedicated3`).
    pub fn fits(self, layout: Layout) -> bool {
        self != Fault::ZoneSplit || layout == Layout::Dedicated3
    }

    /// The faults a campaign draws from when `--faults` is not given: every fault that fits,
    /// but the switchover (not a fault; asked for by name, so that the seeds of earlier
    /// campaigns draw what they drew).
    pub fn defaults(layout: Layout) -> Vec<Fault> {
        Fault::ALL
            .into_iter()
            .filter(|f| f.fits(layout) && *f != Fault::Switchover)
            .collect()
    }

    /// The faults held for a range of their own rather than the campaign's `--hold-min` /
    /// `--hold-max` (issue 18, item 7: the holds that broke the product), seconds.
    fn own_hold(self) -> Option<(f64, f64)> {
        match self {
            Fault::StandbyDaemonsCut => Some((12.0, 22.0)),
            Fault::PrimaryHostIsolated | Fault::PrimaryHostIsolatedSupervisor => Some((15.0, 25.0)),
            Fault::ZoneSplit => Some((14.0, 19.0)),
            // long enough for the switchover's steps to end before the convergence check
            Fault::Switchover => Some((8.0, 12.0)),
            _ => None,
        }
    }

    pub fn parse(s: &str) -> Result<Fault> {
        let s = s.trim();
        Fault::ALL.into_iter().find(|f| f.name() == s).ok_or_else(|| {
            let names: Vec<&str> = Fault::ALL.iter().map(|f| f.name()).collect();
            anyhow!("unknown fault {s:?} (known: {})", names.join(", "))
        })
    }

    /// A comma-separated list, e.g. `partition,sigstop,blip`.
    pub fn parse_list(s: &str) -> Result<Vec<Fault>> {
        let faults = s
            .split(',')
            .filter(|p| !p.trim().is_empty())
            .map(Fault::parse)
            .collect::<Result<Vec<_>>>()?;
        if faults.is_empty() {
            bail!("no fault given");
        }
        Ok(faults)
    }

    /// Whether the primary is really gone or cut off from every daemon, so that a failover
    /// (and the old primary's fence) is a correct reaction. For every other fault the primary
    /// stays reachable for at least one daemon or the outage is too short: no promotion, no
    /// fence.
    pub fn failover_allowed(self) -> bool {
        matches!(
            self,
            Fault::Kill9
                | Fault::Partition
                | Fault::Sigstop
                | Fault::FailoverCommandHangs
                | Fault::PrimaryHostIsolated
                | Fault::PrimaryHostIsolatedSupervisor
        )
    }
}

/// Which daemons watch the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// One daemon per node and one observer; each node's daemon lists the other nodes' daemons
    /// and the observer as its observers (four daemons).
    Mesh,
    /// The mesh with three dedicated observers `obs1`..`obs3` instead of one (six daemons, six
    /// voters: a side needs four for a strict majority).
    Dedicated3,
}

impl Layout {
    pub fn parse(s: &str) -> Result<Layout> {
        match s {
            "mesh" => Ok(Layout::Mesh),
            "dedicated3" => Ok(Layout::Dedicated3),
            other => bail!("unknown layout {other:?} (known: mesh, dedicated3)"),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Layout::Mesh => "mesh",
            Layout::Dedicated3 => "dedicated3",
        }
    }

    /// The dedicated observers' names; the faults that hit "the observer" hit the first.
    pub fn observers(self) -> &'static [&'static str] {
        match self {
            Layout::Mesh => &["observer"],
            Layout::Dedicated3 => &["obs1", "obs2", "obs3"],
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// The lab timings of `fleet` (poll 1 s) with a 1 s probe deadline and a 20 s lag window,
    /// so that the derived `fence_timeout` (20 - 6 = 14 s) rides out a 3 s blip.
    Default,
    /// `docs/profiles/fast.json` merged into every daemon's config.
    Fast,
}

impl Profile {
    pub fn parse(s: &str) -> Result<Profile> {
        match s {
            "default" => Ok(Profile::Default),
            "fast" => Ok(Profile::Fast),
            other => bail!("unknown profile {other:?} (known: default, fast)"),
        }
    }
}

/// `synchronous_mode` of every daemon (issue 21). With `on` or `strict` the judge allows no
/// asynchronous loss: every acknowledged write must be on the final primary, except, with
/// `on` only, a write acknowledged while the primary's `synchronous_standby_names` was empty
/// (fallen back to asynchronous: the writer reads the setting around every write).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SyncMode {
    /// The key left out: today's behaviour, and the judge of before.
    #[default]
    Off,
    On,
    Strict,
}

impl SyncMode {
    pub fn parse(s: &str) -> Result<SyncMode> {
        match s {
            "off" => Ok(SyncMode::Off),
            "on" => Ok(SyncMode::On),
            "strict" => Ok(SyncMode::Strict),
            other => bail!("unknown synchronous mode {other:?} (known: off, on, strict)"),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            SyncMode::Off => "off",
            SyncMode::On => "on",
            SyncMode::Strict => "strict",
        }
    }
}

/// The config keys a profile adds to every daemon's config, and where they came from.
pub fn profile_keys(profile: Profile) -> Result<(Map<String, Value>, String)> {
    match profile {
        Profile::Default => Ok((
            parse_profile(DEFAULT_PROFILE)?,
            "built-in default (fleet timings, db_poll_timeout 1, max_failover_replication_time_lag 20)".into(),
        )),
        Profile::Fast => Ok((parse_profile(FAST_PROFILE)?, "docs/profiles/fast.json".into())),
    }
}

fn parse_profile(text: &str) -> Result<Map<String, Value>> {
    match serde_json::from_str::<Value>(text).context("not JSON")? {
        Value::Object(m) => Ok(m),
        _ => bail!("a profile must be a JSON object of config keys"),
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    pub runs: usize,
    pub seed: u64,
    pub profile: Profile,
    /// The faults to draw from (default: all).
    pub faults: Vec<Fault>,
    pub layout: Layout,
    /// How long a fault is held, seconds: uniformly in `[hold_min, hold_max]` (blip: 3 s; the
    /// faults with a range of their own, see `Fault::own_hold`, in theirs).
    pub hold_min: f64,
    pub hold_max: f64,
    /// After healing, how long the cluster has to converge.
    pub converge_deadline: Duration,
    /// Run only this run of the campaign (1-based, as printed), to repeat one.
    pub only: Option<usize>,
    /// `synchronous_mode` of every daemon (`off`: the key is not set at all).
    pub sync: SyncMode,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            runs: 10,
            seed: 1,
            profile: Profile::Default,
            faults: Fault::defaults(Layout::Mesh),
            layout: Layout::Mesh,
            hold_min: 5.0,
            hold_max: 25.0,
            converge_deadline: Duration::from_secs(60),
            only: None,
            sync: SyncMode::Off,
        }
    }
}

// ---- seeded randomness ----

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// splitmix64 as a stream.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The stream of `(seed, index)`: independent streams for runs and blocks of runs.
    pub fn keyed(seed: u64, key: &str, index: u64) -> Rng {
        let mut x = splitmix64(seed);
        for b in key.bytes() {
            x = splitmix64(x ^ u64::from(b));
        }
        Rng(splitmix64(x ^ splitmix64(index)))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        splitmix64(self.0)
    }

    /// Uniform in `[0, 1)`.
    pub fn f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
}

/// What run `index` (0-based) of a campaign does; a pure function of the options.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub index: usize,
    /// The run's own seed (printed, so a run can be recognised across campaigns).
    pub run_seed: u64,
    pub fault: Fault,
    pub hold: f64,
    /// For `standby-isolated` and `sigstop-standby`: which standby.
    pub standby: &'static str,
    /// For `observer-garbage`: the first garbage answer's variant.
    pub garbage_seed: u64,
    /// For `standby-daemons-cut`: refused or blackholed links.
    pub cut_mode: ProxyMode,
}

pub fn plan(opts: &Options, index: usize) -> Plan {
    let faults = if opts.faults.is_empty() {
        Fault::defaults(opts.layout)
    } else {
        opts.faults.clone()
    };
    // A seeded permutation per block of `faults.len()` runs: every block covers every fault.
    let block = index / faults.len();
    let mut order = faults.clone();
    let mut brng = Rng::keyed(opts.seed, "block", block as u64);
    for i in (1..order.len()).rev() {
        order.swap(i, brng.below(i + 1));
    }
    let fault = order[index % faults.len()];
    let run_seed = Rng::keyed(opts.seed, "run", index as u64).next_u64();
    let mut rng = Rng::new(run_seed);
    let (lo, hi) = fault
        .own_hold()
        .unwrap_or((opts.hold_min.min(opts.hold_max), opts.hold_max.max(opts.hold_min)));
    let drawn = lo + rng.f64() * (hi - lo);
    let hold = if fault == Fault::Blip {
        BLIP
    } else {
        (drawn * 10.0).round() / 10.0
    };
    let standby = if rng.below(2) == 0 { "pg2" } else { "pg3" };
    let garbage_seed = rng.next_u64();
    // Drawn last, so that the plans of the older faults stay what they were.
    let cut_mode = if rng.below(2) == 0 {
        ProxyMode::Refuse
    } else {
        ProxyMode::Blackhole
    };
    Plan {
        index,
        run_seed,
        fault,
        hold,
        standby,
        garbage_seed,
        cut_mode,
    }
}

// ---- the lab ----

/// The loopback address of daemon `d`'s proxy to node `n` (both 0-based; the node daemons
/// first, then the dedicated observers): 127.0.(10+d).(1+n), on the node's own port.
fn proxy_addr(d: usize, n: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 10 + d as u8, 1 + n as u8))
}

/// The loopback address that node `s`'s WAL receiver dials (its daemon's
/// `primary_conninfo_template` carries it as `hostaddr`): 127.0.(30+s).1. A proxy per upstream
/// node listens there on that node's own port, so the port autofollow copies from
/// `remote_conns` picks the upstream and the address picks the standby's own WAL link.
fn wal_addr(s: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 30 + s as u8, 1))
}

/// A fresh cluster with daemons whose every link goes through its own proxy. Fields drop in
/// order: the daemons stop before the proxies and the cluster go.
pub struct ChaosLab {
    /// pg1's, pg2's, pg3's daemons.
    pub daemons: Vec<Daemon>,
    /// The dedicated observers (`Layout::observers`), daemon numbers `NODES.len()..`.
    pub observers: Vec<Daemon>,
    /// `node_proxies[d][n]`: daemon `d`'s link to node `n` (node daemons first, then the
    /// observers).
    node_proxies: Vec<Vec<Proxy>>,
    /// `peer_proxies[d][e]`: node daemon `d`'s link to daemon `e`'s HTTP API (`None` for
    /// itself). The dedicated observers list no observers of their own.
    peer_proxies: Vec<Vec<Option<Proxy>>>,
    /// `wal_proxies[s][n]`: node `s`'s WAL receiver's link to node `n`.
    wal_proxies: Vec<Vec<Proxy>>,
    layout: Layout,
    sync: SyncMode,
    garbage: GarbageServer,
    bin: PathBuf,
    pub cluster: Cluster,
}

/// Starts node `d`'s daemon. Its HTTP port was free when picked, but another process may have
/// taken it since (the primary's daemon starts seconds later): then it is started again on a
/// new port, and the other daemons' proxies to it are pointed there.
async fn spawn_node_daemon(
    bin: &std::path::Path,
    cluster: &Cluster,
    d: usize,
    config: &mut Value,
    peer_proxies: &[Vec<Option<Proxy>>],
) -> Result<Daemon> {
    let mut attempt = 0;
    loop {
        let mut daemon = Daemon::spawn(bin, NODES[d], cluster.dir(), config.clone())?;
        attempt += 1;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let lost_port = daemon.try_exit().is_some() && daemon.log().contains("Address already in use");
        if !lost_port || attempt == 3 {
            return Ok(daemon);
        }
        let port = free_ports(1)?[0];
        config["http_port"] = json!(port);
        for row in peer_proxies {
            if let Some(p) = &row[d] {
                p.set_target(port);
            }
        }
    }
}

/// Daemon number of the first dedicated observer (the one `observer-*` faults hit).
const FIRST_OBSERVER: usize = NODES.len();

impl ChaosLab {
    pub async fn start(
        profile: &Map<String, Value>,
        garbage_seed: u64,
        layout: Layout,
        sync: SyncMode,
    ) -> Result<ChaosLab> {
        let bin = pglookout_bin()?;
        let cluster = Cluster::start(ClusterSpec::default()).await?;
        cluster
            .sql_batch(
                PRIMARY,
                "CREATE TABLE chaos_writes (id bigint PRIMARY KEY, node text NOT NULL, \
                 at timestamptz NOT NULL DEFAULT clock_timestamp())",
            )
            .await?;
        if sync != SyncMode::Off {
            // The primary's daemon sets `synchronous_standby_names` with ALTER SYSTEM through
            // its monitoring role (its `remote_conns` entry; src/act/sync.rs).
            cluster.grant_sync_privileges(PRIMARY).await?;
        }
        let garbage = GarbageServer::start(garbage_seed).await?;
        let total = NODES.len() + layout.observers().len();
        let mut node_proxies = Vec::new();
        for d in 0..total {
            let mut row = Vec::new();
            for (n, name) in NODES.iter().enumerate() {
                let port = cluster.port(name);
                row.push(Proxy::start_at(proxy_addr(d, n), port, port).await?);
            }
            node_proxies.push(row);
        }
        let mut wal_proxies = Vec::new();
        for s in 0..NODES.len() {
            let mut row = Vec::new();
            for name in NODES {
                let port = cluster.port(name);
                row.push(Proxy::start_at(wal_addr(s), port, port).await?);
            }
            wal_proxies.push(row);
        }
        let spec = FleetSpec::default();

        // The proxies first, the daemons' ports after: a proxy's listener takes a free port
        // too, and must not take one just handed out to a daemon that has not bound it yet.
        let mut peer_proxies = Vec::new();
        for d in 0..NODES.len() {
            let mut row = Vec::new();
            for e in 0..total {
                row.push(if e == d { None } else { Some(Proxy::start(0).await?) });
            }
            peer_proxies.push(row);
        }
        let mut observers = Vec::new();
        for (o, name) in layout.observers().iter().enumerate() {
            let cfg = chaos_config(&cluster, &spec, "", NODES.len() + o, &json!({}), profile, sync)?;
            observers.push(Daemon::spawn(&bin, name, cluster.dir(), cfg)?);
        }
        // Each node's daemon lists every dedicated observer and the other nodes' daemons as its
        // observers, each through its own proxy: the lease and the fast trigger need a majority
        // of the voters (docs/safety.md), so that losing one observer does not fence the primary.
        let ports = free_ports(NODES.len())?;
        let daemon_name = |e: usize| {
            if e < NODES.len() {
                NODES[e]
            } else {
                layout.observers()[e - NODES.len()]
            }
        };
        let daemon_port = |e: usize| {
            if e < NODES.len() {
                ports[e]
            } else {
                observers[e - NODES.len()].http_port
            }
        };
        let mut configs = Vec::new();
        for (d, name) in NODES.iter().enumerate() {
            let mut listed = Map::new();
            for (e, proxy) in peer_proxies[d].iter().enumerate() {
                if let Some(proxy) = proxy {
                    proxy.set_target(daemon_port(e));
                    listed.insert(
                        daemon_name(e).to_string(),
                        json!(format!("http://127.0.0.1:{}", proxy.port())),
                    );
                }
            }
            let mut cfg = chaos_config(&cluster, &spec, name, d, &Value::Object(listed), profile, sync)?;
            cfg["http_port"] = json!(ports[d]);
            configs.push(cfg);
        }
        // Each standby streams through its WAL proxy with the very conninfo its daemon's
        // autofollow computes (the template with the master's host and port from its
        // `remote_conns`), so that the daemon finds it up to date and restarts nothing: a
        // restart per standby per run was slow, and under I/O load a standby's shutdown
        // checkpoint could outlast the daemon's stop timeout and fail the run's setup.
        for (s, standby) in NODES.iter().enumerate().skip(1) {
            let conninfo = format!(
                "host={} port={} user={REPLICATION_USER} password={} application_name={standby} hostaddr={}",
                proxy_addr(s, 0),
                cluster.port(PRIMARY),
                cluster.replication_password(),
                wal_addr(s)
            );
            cluster.set_primary_conninfo(standby, &conninfo).await?;
        }
        // The primary's daemon last, once the others see pg1: its lease runs from its start.
        let mut daemons: Vec<Option<Daemon>> = NODES.iter().map(|_| None).collect();
        for d in (1..NODES.len()).chain([0]) {
            let daemon = spawn_node_daemon(&bin, &cluster, d, &mut configs[d], &peer_proxies).await?;
            if d != 0 {
                wait_for("a standby's daemon to see pg1", HEALTHY_DEADLINE, || async {
                    Ok(daemon
                        .state()
                        .is_some_and(|s| s["db_nodes"][PRIMARY]["connection"] == json!(true)))
                })
                .await?;
            }
            daemons[d] = Some(daemon);
        }
        let daemons: Vec<Daemon> = daemons.into_iter().flatten().collect();
        Ok(ChaosLab {
            daemons,
            observers,
            node_proxies,
            peer_proxies,
            wal_proxies,
            layout,
            sync,
            garbage,
            bin,
            cluster,
        })
    }

    fn all_daemons(&self) -> impl Iterator<Item = &Daemon> {
        self.daemons.iter().chain(self.observers.iter())
    }

    fn daemon_mut(&mut self, name: &str) -> Result<&mut Daemon> {
        self.daemons
            .iter_mut()
            .chain(self.observers.iter_mut())
            .find(|d| d.name == name)
            .ok_or_else(|| anyhow!("no daemon {name}"))
    }

    /// The daemon the `observer-*` faults hit: the first dedicated observer.
    fn observer(&mut self) -> &mut Daemon {
        &mut self.observers[0]
    }

    /// The observer sees pg1 as the master, so does every daemon, and every standby streams
    /// from pg1 through its WAL proxy after its daemon's first follow (which rewrites
    /// `primary_conninfo` with our `hostaddr` and restarts the standby). With `--sync on` or
    /// `strict`, also: pg1's `synchronous_standby_names` lists both standbys and both stream as
    /// synchronous (`sync_state` quorum or sync), so that the fault meets synchronous
    /// replication in effect, not its start-up.
    pub async fn wait_healthy(&self) -> Result<()> {
        wait_for(
            "a healthy lab (pg1 master, standbys streaming)",
            HEALTHY_DEADLINE,
            || async {
                let masters_ok = self
                    .all_daemons()
                    .all(|d| d.state().is_some_and(|s| s["current_master"] == json!(PRIMARY)));
                if !masters_ok {
                    return Ok(false);
                }
                for (s, standby) in NODES.iter().enumerate().skip(1) {
                    let conninfo = self.cluster.primary_conninfo(standby).await?;
                    if !conninfo.contains(&format!("hostaddr={}", wal_addr(s))) {
                        return Ok(false);
                    }
                }
                let rows = self
                    .cluster
                    .sql(
                        PRIMARY,
                        "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'",
                    )
                    .await?;
                let streaming: i64 = rows.first().context("no row")?.try_get(0)?;
                if streaming != (NODES.len() - 1) as i64 {
                    return Ok(false);
                }
                if self.sync == SyncMode::Off {
                    return Ok(true);
                }
                let rows = self
                    .cluster
                    .sql(
                        PRIMARY,
                        "SELECT pg_catalog.current_setting('synchronous_standby_names'), \
                         (SELECT count(*) FROM pg_stat_replication \
                          WHERE state = 'streaming' AND sync_state IN ('sync', 'quorum'))",
                    )
                    .await?;
                let row = rows.first().context("no row")?;
                let names: String = row.try_get(0)?;
                let synchronous: i64 = row.try_get(1)?;
                let names = names.to_ascii_lowercase();
                let listed = NODES[1..].iter().all(|s| names.contains(&format!("\"{s}\"")));
                Ok(listed && synchronous == (NODES.len() - 1) as i64)
            },
        )
        .await
    }

    /// pg1's `synchronous_standby_names` as a fresh session reads it.
    async fn primary_sync_names(&self) -> String {
        let read = self.cluster.sql(
            PRIMARY,
            "SELECT pg_catalog.current_setting('synchronous_standby_names')",
        );
        match tokio::time::timeout(CLIENT_TIMEOUT, read).await {
            Ok(Ok(rows)) => rows
                .first()
                .and_then(|r| r.try_get::<_, String>(0).ok())
                .unwrap_or_default(),
            _ => "(unreadable)".into(),
        }
    }

    /// Every daemon's link to node `node` (not the WAL stream).
    fn set_links_to(&self, node: usize, mode: ProxyMode) {
        for row in &self.node_proxies {
            row[node].set_mode(mode);
        }
    }

    /// Cuts every link between the hosts in `side` and the others: a daemon and its node share
    /// a host (number `n` < `NODES.len()`), each dedicated observer has its own (its daemon
    /// number). Cut: daemon→node links, node daemon→daemon links and WAL links that cross.
    /// The writer and the monitor are clients that still reach every node.
    fn split(&self, side: &[usize], mode: ProxyMode) {
        let crosses = |a: usize, b: usize| side.contains(&a) != side.contains(&b);
        for (d, row) in self.node_proxies.iter().enumerate() {
            for (n, p) in row.iter().enumerate() {
                if crosses(d, n) {
                    p.set_mode(mode);
                }
            }
        }
        for (d, row) in self.peer_proxies.iter().enumerate() {
            for (e, p) in row.iter().enumerate() {
                if let Some(p) = p.as_ref().filter(|_| crosses(d, e)) {
                    p.set_mode(mode);
                }
            }
        }
        for (s, row) in self.wal_proxies.iter().enumerate() {
            for (n, p) in row.iter().enumerate() {
                if crosses(s, n) {
                    p.set_mode(mode);
                }
            }
        }
    }

    /// Every proxy back to `Pass`.
    fn heal_links(&self) {
        let all = self
            .node_proxies
            .iter()
            .chain(self.wal_proxies.iter())
            .flatten()
            .chain(self.peer_proxies.iter().flatten().flatten());
        for p in all {
            p.set_mode(ProxyMode::Pass);
        }
    }

    /// The daemons that raised the `fence_failed` alert (a fence that did not hold).
    fn fence_failed(&self) -> Vec<String> {
        self.all_daemons()
            .filter(|d| d.alert_dir.join("fence_failed").exists() || d.log().contains("fence_failed"))
            .map(|d| d.name.clone())
            .collect()
    }

    /// The daemons that raised alert `alert` during the run (its file now, or its creation in
    /// the log: most alerts are taken down again once their cause is gone).
    fn raised(&self, alert: &str) -> Vec<String> {
        let suffix = format!("/{alert}");
        self.all_daemons()
            .filter(|d| {
                d.alert_dir.join(alert).exists()
                    || d.log()
                        .lines()
                        .any(|l| l.contains("creating alert file") && l.trim_end().ends_with(&suffix))
            })
            .map(|d| d.name.clone())
            .collect()
    }

    /// Daemon events counted from their logs and alert files: (failover commands started,
    /// fence commands started), per daemon name.
    fn events(&self) -> (Vec<String>, Vec<String>) {
        let mut failovers = Vec::new();
        let mut fences = Vec::new();
        for d in self.all_daemons() {
            let log = d.log();
            let f = log.matches("running failover_command").count();
            let f = if f == 0 && d.alert_dir.join("failover_has_happened").exists() {
                1
            } else {
                f
            };
            failovers.extend(std::iter::repeat_n(d.name.clone(), f));
            let k = log.matches("running fence_command").count();
            let k = if k == 0 && d.alert_dir.join("fenced").exists() {
                1
            } else {
                k
            };
            fences.extend(std::iter::repeat_n(d.name.clone(), k));
        }
        (failovers, fences)
    }

    /// Each daemon's master, latest decision and log tail, and each server's log tail.
    fn diagnostics(&self) -> String {
        let mut out = String::new();
        for d in self.all_daemons() {
            let s = d.state().unwrap_or(Value::Null);
            let _ = writeln!(
                out,
                "  --- {}: master={} decision: {}",
                d.name,
                s["current_master"].as_str().unwrap_or("none"),
                s["decision"]["summary"].as_str().unwrap_or("-")
            );
            let log = d.log();
            let lines: Vec<&str> = log.lines().collect();
            for line in &lines[lines.len().saturating_sub(LOG_TAIL)..] {
                let _ = writeln!(out, "      {line}");
            }
        }
        for name in NODES {
            let _ = writeln!(out, "  --- server {name}:");
            for line in self.cluster.node(name).log_tail(LOG_TAIL).lines() {
                let _ = writeln!(out, "      {line}");
            }
        }
        out
    }

    /// With `PGLAB_CHAOS_LOGS=<dir>`: copies every daemon's whole log and state file there
    /// (`run<N>-<daemon>.log`, `.json`), every server's log (`run<N>-server-<node>.log`) and
    /// the run's record with its lost writes (`run<N>-record.txt`), for a failed run's
    /// post-mortem (the run's own directory is removed with its cluster).
    fn keep_logs(&self, index: usize, rec: &RunRecord) {
        let Some(dir) = std::env::var_os("PGLAB_CHAOS_LOGS").filter(|d| !d.is_empty()) else {
            return;
        };
        let dir = PathBuf::from(dir);
        if let Err(e) = std::fs::create_dir_all(&dir) {
            eprintln!("chaos: cannot create {}: {e}", dir.display());
            return;
        }
        for d in self.all_daemons() {
            let base = dir.join(format!("run{}-{}", index + 1, d.name));
            let _ = std::fs::write(base.with_extension("log"), d.log());
            let state = d.state().map(|s| s.to_string()).unwrap_or_default();
            let _ = std::fs::write(base.with_extension("json"), state);
        }
        // The servers' logs too (the cluster's directory goes with the run), and the record.
        for node in self.cluster.nodes() {
            let to = dir.join(format!("run{}-server-{}.log", index + 1, node.name));
            let _ = std::fs::copy(&node.log_file, to);
        }
        let mut text = rec.line();
        text.push('\n');
        for l in &rec.lost_detail {
            let _ = writeln!(text, "lost: {l}");
        }
        let _ = std::fs::write(dir.join(format!("run{}-record.txt", index + 1)), text);
    }

    fn failover_marker(&self, node: &str) -> PathBuf {
        self.cluster.dir().join(node).join("failover-hangs")
    }
}

/// `fleet::daemon_config` for daemon number `d` (`own` "" for an observer), with its links
/// through its proxies (its WAL stream through its WAL proxies), the fence command, the
/// hang-switchable failover command and the profile's keys.
fn chaos_config(
    cluster: &Cluster,
    spec: &FleetSpec,
    own: &str,
    d: usize,
    observers: &Value,
    profile: &Map<String, Value>,
    sync: SyncMode,
) -> Result<Value> {
    let mut cfg = daemon_config(cluster, spec, own, observers)?;
    let remote: Map<String, Value> = NODES
        .iter()
        .enumerate()
        .map(|(n, name)| {
            (
                name.to_string(),
                json!(format!(
                    "host={} port={} user={MONITOR_USER} password={} dbname=postgres",
                    proxy_addr(d, n),
                    cluster.port(name),
                    cluster.monitor_password()
                )),
            )
        })
        .collect();
    cfg["remote_conns"] = Value::Object(remote);
    cfg["failover_command_timeout"] = json!(FAILOVER_COMMAND_TIMEOUT);
    if !own.is_empty() {
        // `d` is the node's number too: its WAL receiver dials its own WAL proxies.
        cfg["primary_conninfo_template"] = json!(format!(
            "{} hostaddr={}",
            cluster.replication_conninfo(PRIMARY, own),
            wal_addr(d)
        ));
        cfg["failover_command"] = json!(failover_wrapper(cluster, own)?);
        // The shipped example: a restart by a supervisor (`primary-host-isolated-supervisor`)
        // brings the fenced node back read-only.
        cfg["fence_command"] = json!(cluster.sample_fence_command(own)?);
    }
    if let Some(obj) = cfg.as_object_mut() {
        for (k, v) in profile {
            obj.insert(k.clone(), v.clone());
        }
    }
    if sync != SyncMode::Off {
        // `synchronous_node_count` left at its default, 1: `ANY 1 ("pg2", "pg3")`.
        cfg["synchronous_mode"] = json!(sync.name());
    }
    Ok(cfg)
}

/// `<root>/<node>/failover.sh`: promotes the node, or hangs while `<root>/<node>/failover-hangs`
/// exists (the `failover-command-hangs` fault switches the behaviour without a config reload).
fn failover_wrapper(cluster: &Cluster, node: &str) -> Result<String> {
    use std::os::unix::fs::PermissionsExt;
    let promote = cluster.promote_command(node)?;
    let dir = cluster.dir().join(node);
    let marker = dir.join("failover-hangs");
    let path = dir.join("failover.sh");
    let script = format!(
        "#!/bin/sh\n\
         # pglab chaos: promote {node}, unless the marker says to hang.\n\
         if [ -e '{marker}' ]; then echo 'failover.sh: hanging (marker present)'; exec sleep 3600; fi\n\
         exec '{promote}'\n",
        marker = marker.display(),
    );
    std::fs::write(&path, script).with_context(|| format!("writing {}", path.display()))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
    Ok(path.display().to_string())
}

// ---- the fake observer ----

/// A tiny HTTP server on 127.0.0.1 that answers every request with seeded garbage (broken or
/// wrongly typed JSON, or no JSON at all). Aborted on drop.
struct GarbageServer {
    port: u16,
    task: JoinHandle<()>,
}

const GARBAGE: [&str; 6] = [
    r#"{"pg1": {"connection": tru"#,
    "[1, 2, 3]",
    r#"{"pg1": "garbage", "pg2": 42, "pg3": null}"#,
    "\u{0}\u{7f} this is not json }}}",
    r#"{"pg1": {"connection": "yes", "pg_is_in_recovery": 7, "replication_time_lag": "soon"}}"#,
    "",
];

impl GarbageServer {
    async fn start(seed: u64) -> Result<GarbageServer> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let port = listener.local_addr()?.port();
        let task = tokio::spawn(async move {
            let mut rng = Rng::new(seed);
            let mut conns = JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((mut s, _)) = accepted else { continue };
                        let body = GARBAGE[rng.below(GARBAGE.len())];
                        conns.spawn(async move {
                            // Read (some of) the request head first, like a real server.
                            let mut buf = [0u8; 4096];
                            let _ = tokio::time::timeout(Duration::from_secs(1), s.read(&mut buf)).await;
                            let resp = format!(
                                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                                body.len()
                            );
                            let _ = s.write_all(resp.as_bytes()).await;
                            let _ = s.shutdown().await;
                        });
                    }
                    Some(_) = conns.join_next(), if !conns.is_empty() => {}
                }
            }
        });
        Ok(GarbageServer { port, task })
    }
}

impl Drop for GarbageServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

// ---- writer and monitor ----

#[derive(Debug, Clone)]
struct Ack {
    id: i64,
    node: usize,
    at: f64,
    /// With `--sync on` or `strict`: whether the node's `synchronous_standby_names` was set
    /// around the commit (`Some(false)`: the writer's session read it empty in the INSERT
    /// itself or right after the acknowledgement, so the commit may not have waited for a
    /// standby). `None` with `--sync off`.
    sync: Option<bool>,
}

#[derive(Debug, Clone)]
struct Sample {
    at: f64,
    node: usize,
    /// `Some(true)`: out of recovery; `None`: no answer within the client timeout.
    writable: Option<bool>,
}

/// The writer (one task per node, an insert every 50 ms) and the monitor (one task per node,
/// `NOT pg_is_in_recovery()` every 200 ms), both straight to the nodes, never through proxies.
struct Recorder {
    t0: Instant,
    acks: Arc<Mutex<Vec<Ack>>>,
    samples: Arc<Mutex<Vec<Sample>>>,
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

async fn connect(conninfo: &str) -> Result<tokio_postgres::Client> {
    let mut cfg: tokio_postgres::Config = conninfo.parse()?;
    cfg.connect_timeout(CLIENT_TIMEOUT)
        .application_name("pglab-chaos")
        .options("-c statement_timeout=1000");
    let (client, conn) = tokio::time::timeout(CLIENT_TIMEOUT, cfg.connect(NoTls))
        .await
        .map_err(|_| anyhow!("connect timed out"))??;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(client)
}

impl Recorder {
    /// `read_sync`: the writer reads `synchronous_standby_names` around every write
    /// (`Ack::sync`).
    fn start(cluster: &Cluster, read_sync: bool) -> Recorder {
        let t0 = Instant::now();
        let acks = Arc::new(Mutex::new(Vec::new()));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let (stop, _) = watch::channel(false);
        let next_id = Arc::new(AtomicI64::new(1));
        let mut tasks = JoinSet::new();
        for (n, name) in NODES.iter().enumerate() {
            let conninfo = cluster.superuser_conninfo(name);
            tasks.spawn(writer(
                n,
                read_sync,
                conninfo.clone(),
                next_id.clone(),
                acks.clone(),
                t0,
                stop.subscribe(),
            ));
            tasks.spawn(monitor(n, conninfo, samples.clone(), t0, stop.subscribe()));
        }
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

    async fn stop(mut self) -> (Vec<Ack>, Vec<Sample>) {
        self.stop.send_replace(true);
        // Every task returns within a client timeout or two; past that, abort.
        let drained = tokio::time::timeout(Duration::from_secs(5), async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            self.tasks.abort_all();
        }
        let acks = lock(&self.acks).clone();
        let samples = lock(&self.samples).clone();
        (acks, samples)
    }
}

/// A fixed-rate loop that ends when `stop` turns true (or its sender is gone); a late tick is
/// delayed, never bunched.
struct Ticks(tokio::time::Interval);

impl Ticks {
    fn new(every: Duration) -> Ticks {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Ticks(tick)
    }

    /// Waits for the next tick; false once stopped.
    async fn next(&mut self, stop: &mut watch::Receiver<bool>) -> bool {
        tokio::select! {
            _ = self.0.tick() => {}
            changed = stop.changed() => {
                if changed.is_err() {
                    return false;
                }
            }
        }
        !*stop.borrow()
    }
}

/// The setting as the writer's session sees it (the backend reloads its configuration before it
/// runs each statement it reads).
const SYNC_NAMES: &str = "pg_catalog.current_setting('synchronous_standby_names')";

async fn writer(
    node: usize,
    read_sync: bool,
    conninfo: String,
    next_id: Arc<AtomicI64>,
    acks: Arc<Mutex<Vec<Ack>>>,
    t0: Instant,
    mut stop: watch::Receiver<bool>,
) {
    let mut client: Option<tokio_postgres::Client> = None;
    let mut tick = Ticks::new(WRITE_EVERY);
    let name = NODES[node];
    while tick.next(&mut stop).await {
        let c = match client.take() {
            Some(c) => c,
            None => match connect(&conninfo).await {
                Ok(c) => c,
                Err(_) => continue,
            },
        };
        let id = next_id.fetch_add(1, Ordering::SeqCst);
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&id, &name];
        let insert = async {
            if read_sync {
                // The setting in the very statement: one round trip, as without --sync.
                let query = format!("INSERT INTO chaos_writes (id, node) VALUES ($1, $2) RETURNING {SYNC_NAMES}");
                let row = c.query_one(query.as_str(), &params).await?;
                Ok::<_, tokio_postgres::Error>(Some(row.try_get::<_, String>(0)?))
            } else {
                c.execute("INSERT INTO chaos_writes (id, node) VALUES ($1, $2)", &params)
                    .await
                    .map(|_| None)
            }
        };
        match tokio::time::timeout(CLIENT_TIMEOUT, insert).await {
            Ok(Ok(before)) => {
                let at = t0.elapsed().as_secs_f64();
                let mut keep = true;
                let sync = match before {
                    None => None,
                    Some(before) => {
                        // And right after the acknowledgement: a commit that waited for a
                        // standby and was let go because the setting was emptied meanwhile
                        // (`on` falling back) read it set in the INSERT.
                        let after =
                            tokio::time::timeout(CLIENT_TIMEOUT, c.query_one(&format!("SELECT {SYNC_NAMES}"), &[]))
                                .await
                                .ok()
                                .and_then(|r| r.ok())
                                .and_then(|r| r.try_get::<_, String>(0).ok());
                        keep = after.is_some();
                        Some(!before.trim().is_empty() && after.is_none_or(|a| !a.trim().is_empty()))
                    }
                };
                lock(&acks).push(Ack { id, node, at, sync });
                if keep {
                    client = Some(c);
                }
            }
            // A server error (read-only standby): the connection is fine.
            Ok(Err(e)) if e.as_db_error().is_some() && !c.is_closed() => client = Some(c),
            // Broken connection or no answer: reconnect next time.
            _ => {}
        }
    }
}

async fn monitor(
    node: usize,
    conninfo: String,
    samples: Arc<Mutex<Vec<Sample>>>,
    t0: Instant,
    mut stop: watch::Receiver<bool>,
) {
    let mut client: Option<tokio_postgres::Client> = None;
    let mut tick = Ticks::new(MONITOR_EVERY);
    while tick.next(&mut stop).await {
        let probe = async {
            let c = match client.take() {
                Some(c) => c,
                None => connect(&conninfo).await?,
            };
            let row = tokio::time::timeout(CLIENT_TIMEOUT, c.query_one("SELECT NOT pg_is_in_recovery()", &[]))
                .await
                .map_err(|_| anyhow!("probe timed out"))??;
            let w: bool = row.try_get(0)?;
            anyhow::Ok((c, w))
        };
        let writable = match probe.await {
            Ok((c, w)) => {
                client = Some(c);
                Some(w)
            }
            Err(_) => None,
        };
        lock(&samples).push(Sample {
            at: t0.elapsed().as_secs_f64(),
            node,
            writable,
        });
    }
}

// ---- one run ----

/// The outcome of one run.
#[derive(Debug, Clone, Default)]
pub struct RunRecord {
    pub index: usize,
    pub run_seed: u64,
    pub fault: String,
    pub layout: String,
    /// `--sync`: the daemons' `synchronous_mode` (`off`: the key not set).
    pub sync: String,
    pub hold: f64,
    /// Which standby (standby-isolated, sigstop-standby), or how the links were cut
    /// (standby-daemons-cut: refuse or blackhole).
    pub target: Option<String>,
    pub passed: bool,
    /// Why the run failed (empty when it passed).
    pub failures: Vec<String>,
    /// Notes that are no failure (e.g. writes lost to async replication on a kill -9).
    pub notes: Vec<String>,
    /// The run could not be carried out (setup failed...): no judgement possible.
    pub error: Option<String>,
    /// The most nodes writable at once, per the monitor's latest samples.
    pub max_writable: usize,
    /// How long two or more nodes were writable at once, seconds.
    pub split_brain_secs: f64,
    pub acked: usize,
    /// Acknowledged writes missing on the final primary (None: no final primary).
    pub missing: Option<usize>,
    /// ... of which acknowledged by a node after another node had become writable.
    pub missing_split_brain: Option<usize>,
    /// ... of which acknowledged while no other node was writable (async replication loss).
    pub missing_async: Option<usize>,
    /// `--sync on`/`strict`: writes acknowledged while the node's `synchronous_standby_names`
    /// was empty (see `Ack::sync`), and how many of the asynchronous loss were such writes
    /// (the only loss `--sync on` allows).
    pub acked_degraded: usize,
    pub missing_degraded: Option<usize>,
    /// Who acknowledged those writes and when: one line per node (a new primary before its
    /// daemon set the names, `on` falling back).
    pub degraded_detail: Vec<String>,
    /// The lost writes, one line per node and kind (ids, times after the fault, setting), on
    /// a run that lost any.
    pub lost_detail: Vec<String>,
    /// Daemons that raised the alerts of synchronous replication: `synchronous_degraded`
    /// (`on` fell back to asynchronous), `failover_blocked` (no standby known to have every
    /// acknowledged write), `synchronous_setting_failed`.
    pub sync_degraded: Vec<String>,
    pub failover_blocked: Vec<String>,
    pub sync_setting_failed: Vec<String>,
    /// Writes acknowledged by a node after another had become writable (lost or not).
    pub acked_during_split: usize,
    /// Daemons that started a failover_command / fence_command (one entry per start).
    pub failovers: Vec<String>,
    pub fences: Vec<String>,
    /// A fence in a run whose fault must not lead to a failover (a failure).
    pub needless_fence: bool,
    /// Daemons that raised `fence_failed` (a fence that did not hold and was repeated).
    pub fence_failed: Vec<String>,
    /// `primary-host-isolated-supervisor`: when the supervisor started pg1 again, seconds
    /// after the fault.
    pub supervisor_restarts: Vec<f64>,
    /// Daemons that yielded their turn to promote (`failover_fallback_timeout`): a promise to
    /// run no failover command until another master is seen.
    pub yielded: BTreeSet<String>,
    /// Seconds from the fault to the first acknowledged write on another node than pg1.
    pub new_primary_write: Option<f64>,
    pub new_primary: Option<String>,
    pub converged: bool,
    /// Seconds from the heal to convergence.
    pub converge_secs: Option<f64>,
    /// The converged master acknowledged a write after convergence.
    pub writes_resumed: bool,
    pub final_primary: Option<String>,
    /// The nodes writable when the run ended (more than one: the split brain persists).
    pub writable_at_end: Vec<String>,
    pub duration: f64,
    /// The daemons' last decisions and log tails, on a failed run.
    pub diagnostics: String,
}

impl RunRecord {
    pub fn to_json(&self) -> Value {
        json!({
            "run": self.index + 1,
            "run_seed": format!("{:016x}", self.run_seed),
            "fault": self.fault,
            "layout": self.layout,
            "sync": self.sync,
            "hold_s": self.hold,
            "target": self.target,
            "passed": self.passed,
            "failures": self.failures,
            "notes": self.notes,
            "error": self.error,
            "max_writable": self.max_writable,
            "split_brain_s": round3(self.split_brain_secs),
            "acked": self.acked,
            "missing": self.missing,
            "missing_split_brain": self.missing_split_brain,
            "missing_async": self.missing_async,
            "acked_degraded": self.acked_degraded,
            "missing_degraded": self.missing_degraded,
            "degraded_detail": self.degraded_detail,
            "lost_detail": self.lost_detail,
            "synchronous_degraded": self.sync_degraded,
            "failover_blocked": self.failover_blocked,
            "synchronous_setting_failed": self.sync_setting_failed,
            "acked_during_split": self.acked_during_split,
            "failovers": self.failovers,
            "fences": self.fences,
            "needless_fence": self.needless_fence,
            "fence_failed": self.fence_failed,
            "supervisor_restarts_s": self.supervisor_restarts.iter().map(|t| round3(*t)).collect::<Vec<_>>(),
            "new_primary": self.new_primary,
            "new_primary_write_s": self.new_primary_write.map(round3),
            "converged": self.converged,
            "converge_s": self.converge_secs.map(round3),
            "writes_resumed": self.writes_resumed,
            "final_primary": self.final_primary,
            "writable_at_end": self.writable_at_end,
            "duration_s": round3(self.duration),
        })
    }

    /// One line: seed, fault, hold, verdict, numbers.
    pub fn line(&self) -> String {
        let opt = |v: Option<usize>| v.map_or("-".to_string(), |n| n.to_string());
        let secs = |v: Option<f64>| v.map_or("-".to_string(), |s| format!("{s:.1}s"));
        let verdict = if self.passed { "PASS" } else { "FAIL" };
        let mut line = format!(
            "run {:>2} seed {:016x} {:<22} hold {:>4.1}s {verdict}",
            self.index + 1,
            self.run_seed,
            match &self.target {
                Some(t) => format!("{}({t})", self.fault),
                None => self.fault.clone(),
            },
            self.hold
        );
        if let Some(e) = &self.error {
            let _ = write!(line, " error: {e}");
            return line;
        }
        let _ = write!(
            line,
            " | max writable {} ({:.1}s) | acked {} missing {} (split-brain {}, async {}) | failovers {} fences {} | new-primary write {} ({}) | converged {} | final {} (writable: {})",
            self.max_writable,
            self.split_brain_secs,
            self.acked,
            opt(self.missing),
            opt(self.missing_split_brain),
            opt(self.missing_async),
            self.failovers.len(),
            self.fences.len(),
            secs(self.new_primary_write),
            self.new_primary.as_deref().unwrap_or("-"),
            if self.converged { secs(self.converge_secs) } else { "no".into() },
            self.final_primary.as_deref().unwrap_or("-"),
            if self.writable_at_end.is_empty() { "none".to_string() } else { self.writable_at_end.join(",") },
        );
        if self.sync != "off" && !self.sync.is_empty() {
            let _ = write!(
                line,
                " | sync {}: acked while degraded {}, lost of those {}",
                self.sync,
                self.acked_degraded,
                opt(self.missing_degraded)
            );
            if !self.degraded_detail.is_empty() {
                let _ = write!(line, " ({})", self.degraded_detail.join("; "));
            }
            for (alert, who) in [
                ("synchronous_degraded", &self.sync_degraded),
                ("failover_blocked", &self.failover_blocked),
                ("synchronous_setting_failed", &self.sync_setting_failed),
            ] {
                if !who.is_empty() {
                    let _ = write!(line, ", {alert}: {}", who.join(","));
                }
            }
        }
        if !self.supervisor_restarts.is_empty() {
            let at: Vec<String> = self.supervisor_restarts.iter().map(|t| format!("+{t:.1}s")).collect();
            let _ = write!(line, " | supervisor restarted pg1 at {}", at.join(","));
        }
        if !self.fence_failed.is_empty() {
            let _ = write!(line, " | fence_failed: {}", self.fence_failed.join(","));
        }
        if !self.failures.is_empty() {
            let _ = write!(line, " | {}", self.failures.join("; "));
        }
        if !self.notes.is_empty() {
            let _ = write!(line, " | note: {}", self.notes.join("; "));
        }
        line
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// What the heal needs to know about the injection.
#[derive(Default)]
struct Injected {
    stopped_pids: Vec<i32>,
}

async fn inject(lab: &mut ChaosLab, plan: &Plan) -> Result<Injected> {
    let mut injected = Injected::default();
    let primary = 0;
    match plan.fault {
        Fault::Kill9 => lab.cluster.kill9(PRIMARY)?,
        Fault::Partition => lab.set_links_to(primary, ProxyMode::Blackhole),
        Fault::Blip => lab.set_links_to(primary, ProxyMode::Refuse),
        Fault::Sigstop => injected.stopped_pids = freeze_postgres(&lab.cluster, PRIMARY)?,
        Fault::SigstopStandby => {
            // The whole machine paused, as a hypervisor does: the server and its daemon.
            injected.stopped_pids = freeze_postgres(&lab.cluster, plan.standby)?;
            let pid = lab.daemons[node_index(plan.standby)?]
                .pid()
                .context("the standby's daemon is not running")?;
            injected.stopped_pids.push(freeze_pid(pid)?);
        }
        Fault::SigstopObserver => {
            let pid = lab.observer().pid().context("the observer is not running")?;
            injected.stopped_pids.push(freeze_pid(pid)?);
        }
        Fault::CutStandbys => {
            for s in &NODES[1..] {
                lab.cluster.cut_wal_stream(s).await?;
            }
        }
        Fault::ObserverKilled => {
            lab.observer().stop(Duration::from_secs(2))?;
        }
        Fault::StandbyIsolated => {
            let s = node_index(plan.standby)?;
            for p in &lab.node_proxies[s] {
                p.set_mode(ProxyMode::Blackhole);
            }
            for p in lab.peer_proxies[s][FIRST_OBSERVER..].iter().flatten() {
                p.set_mode(ProxyMode::Blackhole);
            }
            lab.set_links_to(s, ProxyMode::Blackhole);
            lab.cluster.cut_wal_stream(plan.standby).await?;
        }
        Fault::PrimaryDaemonKilled => {
            lab.daemon_mut(PRIMARY)?.stop(Duration::from_secs(2))?;
        }
        Fault::FailoverCommandHangs => {
            for s in &NODES[1..] {
                std::fs::write(lab.failover_marker(s), "")?;
            }
            lab.cluster.kill9(PRIMARY)?;
        }
        Fault::ObserverGarbage => {
            for row in &lab.peer_proxies {
                if let Some(p) = &row[FIRST_OBSERVER] {
                    p.set_target(lab.garbage.port);
                }
            }
        }
        Fault::StandbyDaemonsCut => {
            // Only the standby daemons' links to pg1's PostgreSQL: the WAL stream, pg1's own
            // daemon, the observers and every daemon-to-daemon link keep working.
            for s in 1..NODES.len() {
                lab.node_proxies[s][primary].set_mode(plan.cut_mode);
            }
        }
        Fault::PrimaryHostIsolated | Fault::PrimaryHostIsolatedSupervisor => {
            lab.split(&[primary], ProxyMode::Blackhole);
        }
        Fault::ZoneSplit => {
            if lab.layout != Layout::Dedicated3 {
                bail!("zone-split needs --layout dedicated3");
            }
            // {pg1, obs1, obs2} | {pg2, pg3, obs3}: three voters a side, no strict majority.
            lab.split(&[primary, FIRST_OBSERVER, FIRST_OBSERVER + 1], ProxyMode::Blackhole);
        }
        Fault::Switchover => {
            let port = lab.daemons[primary].http_port;
            let (status, body) = crate::daemon::http_request(port, "POST", "/switchover?to=pg2&timeout=20").await?;
            if status != 202 {
                bail!("POST /switchover at pg1's daemon answered {status}: {body}");
            }
        }
    }
    Ok(injected)
}

async fn heal(lab: &mut ChaosLab, plan: &Plan, injected: &Injected) -> Result<()> {
    let primary = 0;
    match plan.fault {
        Fault::Kill9 | Fault::FailoverCommandHangs => {
            if plan.fault == Fault::FailoverCommandHangs {
                for s in &NODES[1..] {
                    let _ = std::fs::remove_file(lab.failover_marker(s));
                }
            }
            // A crashed primary comes back only if nobody started taking over meanwhile:
            // restarting it beside a promoted standby would be the operator's split brain, not
            // the daemons'.
            let (failovers, _) = lab.events();
            let mut promoted = false;
            for s in &NODES[1..] {
                promoted |= matches!(
                    tokio::time::timeout(CLIENT_TIMEOUT, lab.cluster.in_recovery(s)).await,
                    Ok(Ok(false))
                );
            }
            if failovers.is_empty() && !promoted {
                lab.cluster.start_node(PRIMARY).await?;
            }
        }
        Fault::Partition | Fault::Blip => lab.set_links_to(primary, ProxyMode::Pass),
        Fault::Sigstop | Fault::SigstopStandby | Fault::SigstopObserver => {
            for &pid in &injected.stopped_pids {
                process::signal(pid, Signal::SIGCONT);
            }
        }
        Fault::CutStandbys => {
            for s in &NODES[1..] {
                lab.cluster.restore_wal_stream(s).await?;
            }
        }
        Fault::ObserverKilled => {
            let bin = lab.bin.clone();
            lab.observer().restart(&bin)?;
        }
        Fault::StandbyIsolated => {
            lab.heal_links();
            lab.cluster.restore_wal_stream(plan.standby).await?;
        }
        Fault::PrimaryDaemonKilled => {
            let bin = lab.bin.clone();
            lab.daemon_mut(PRIMARY)?.restart(&bin)?;
        }
        Fault::ObserverGarbage => {
            let port = lab.observers[0].http_port;
            for row in &lab.peer_proxies {
                if let Some(p) = &row[FIRST_OBSERVER] {
                    p.set_target(port);
                }
            }
        }
        // A fenced pg1 stays down (no supervisor after the hold): the daemons bring it back
        // as a standby or the operator does.
        Fault::StandbyDaemonsCut
        | Fault::PrimaryHostIsolated
        | Fault::PrimaryHostIsolatedSupervisor
        | Fault::ZoneSplit => lab.heal_links(),
        // the switchover's own steps bring pg1 back, as pg2's standby
        Fault::Switchover => {}
    }
    Ok(())
}

/// While the fault is held: for `primary-host-isolated-supervisor`, the supervisor of pg1's
/// host (systemd's `Restart=`, a container runtime) starts pg1 again, as a primary,
/// `SUPERVISOR_DELAY` after it went down (its fence), at most `SUPERVISOR_RESTARTS` times.
/// Returns the restarts' times on the recorder's clock.
async fn hold(lab: &ChaosLab, plan: &Plan, recorder: &Recorder) -> Result<Vec<f64>> {
    let until = Instant::now() + Duration::from_secs_f64(plan.hold);
    let mut restarts = Vec::new();
    if plan.fault != Fault::PrimaryHostIsolatedSupervisor {
        // Holding the fault for its seeded duration is the point, not a synchronisation.
        tokio::time::sleep_until(until.into()).await;
        return Ok(restarts);
    }
    let mut down_since: Option<Instant> = None;
    while Instant::now() < until {
        if restarts.len() < SUPERVISOR_RESTARTS {
            if lab.cluster.node(PRIMARY).is_running() {
                down_since = None;
            } else {
                let since = *down_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= SUPERVISOR_DELAY {
                    // The earliest pg1 can take writes again: the judge counts from here.
                    let at = recorder.now();
                    lab.cluster
                        .start_node(PRIMARY)
                        .await
                        .context("the supervisor starting pg1 again")?;
                    restarts.push(at);
                    down_since = None;
                }
            }
        }
        tokio::time::sleep(SUPERVISOR_POLL.min(until.saturating_duration_since(Instant::now()))).await;
    }
    Ok(restarts)
}

/// SIGSTOP a node's postmaster (first, so that it cannot start new children meanwhile) and
/// its children; returns every stopped pid.
fn freeze_postgres(cluster: &Cluster, name: &str) -> Result<Vec<i32>> {
    let pid = cluster
        .node(name)
        .postmaster_pid()
        .with_context(|| format!("{name} is not running"))?;
    process::signal(pid, Signal::SIGSTOP);
    let mut stopped = vec![pid];
    let children = process::children_and_group(pid);
    for &c in &children {
        process::signal(c, Signal::SIGSTOP);
    }
    stopped.extend(children);
    Ok(stopped)
}

fn freeze_pid(pid: u32) -> Result<i32> {
    let pid = i32::try_from(pid)?;
    process::signal(pid, Signal::SIGSTOP);
    Ok(pid)
}

fn node_index(name: &str) -> Result<usize> {
    NODES
        .iter()
        .position(|n| *n == name)
        .ok_or_else(|| anyhow!("no node {name}"))
}

/// The one writable node, once every running daemon names it as `current_master`.
async fn converged(lab: &ChaosLab) -> Result<Option<String>> {
    let writable = writable_nodes(lab).await;
    let [master] = writable.as_slice() else {
        return Ok(None);
    };
    let agree = lab
        .all_daemons()
        .filter(|d| d.pid().is_some())
        .all(|d| d.state().is_some_and(|s| s["current_master"].as_str() == Some(master)));
    Ok(agree.then(|| master.clone()))
}

/// The most nodes writable at once and for how long 2+ were, from the samples in time order:
/// a node counts as writable from a sample saying so until its next sample.
fn writable_overlap(samples: &[Sample]) -> (usize, f64) {
    let mut sorted: Vec<&Sample> = samples.iter().collect();
    sorted.sort_by(|a, b| a.at.total_cmp(&b.at));
    let mut latest = [false; NODES.len()];
    let mut max = 0;
    let mut split = 0.0;
    let mut since: Option<f64> = None;
    let end = sorted.last().map_or(0.0, |s| s.at);
    for s in sorted {
        latest[s.node] = s.writable == Some(true);
        let count = latest.iter().filter(|w| **w).count();
        max = max.max(count);
        match (count >= 2, since) {
            (true, None) => since = Some(s.at),
            (false, Some(t)) => {
                split += s.at - t;
                since = None;
            }
            _ => {}
        }
    }
    // Still split when the monitor stopped.
    if let Some(t) = since {
        split += end - t;
    }
    (max, split)
}

/// When each node may have been promoted, if ever: the time of its last sample in recovery
/// before its first writable one. The promotion happened in between; taking the start of that
/// window (at most a monitor interval early) counts the old primary's acknowledgements that
/// raced the promotion as split-brain writes rather than as async replication loss.
fn promotions(samples: &[Sample]) -> [Option<f64>; NODES.len()] {
    let mut sorted: Vec<&Sample> = samples.iter().collect();
    sorted.sort_by(|a, b| a.at.total_cmp(&b.at));
    let mut last_standby: [Option<f64>; NODES.len()] = [None; NODES.len()];
    let mut promoted = [None; NODES.len()];
    for s in sorted {
        match s.writable {
            Some(false) if promoted[s.node].is_none() => last_standby[s.node] = Some(s.at),
            Some(true) if promoted[s.node].is_none() => promoted[s.node] = last_standby[s.node],
            _ => {}
        }
    }
    promoted
}

/// When each node became writable after having been a standby (see [`promotions`]), or
/// earlier if it acknowledged a write before the monitor saw it writable; the primary the run
/// started with counts only from a restart (`restarts`, recorder clock), not from the start.
fn became_writable(samples: &[Sample], acks: &[Ack], restarts: &[f64]) -> [Option<f64>; NODES.len()] {
    let mut at = promotions(samples);
    for a in acks.iter().filter(|a| a.node != 0) {
        at[a.node] = Some(at[a.node].map_or(a.at, |t| t.min(a.at)));
    }
    if let Some(r) = restarts.iter().copied().reduce(f64::min) {
        at[0] = Some(at[0].map_or(r, |t| t.min(r)));
    }
    at
}

/// Runs one planned run on a fresh lab.
pub async fn run_one(
    plan: &Plan,
    layout: Layout,
    profile: &Map<String, Value>,
    converge_deadline: Duration,
    sync: SyncMode,
) -> RunRecord {
    let started = Instant::now();
    let mut rec = RunRecord {
        index: plan.index,
        run_seed: plan.run_seed,
        fault: plan.fault.name().to_string(),
        hold: plan.hold,
        target: match plan.fault {
            Fault::StandbyIsolated | Fault::SigstopStandby => Some(plan.standby.to_string()),
            Fault::StandbyDaemonsCut => Some(format!("{:?}", plan.cut_mode).to_lowercase()),
            _ => None,
        },
        layout: layout.name().to_string(),
        sync: sync.name().to_string(),
        ..RunRecord::default()
    };
    if let Err(e) = run_inner(plan, layout, profile, converge_deadline, sync, &mut rec).await {
        rec.error = Some(format!("{e:#}"));
        rec.passed = false;
    }
    rec.duration = started.elapsed().as_secs_f64();
    rec
}

async fn run_inner(
    plan: &Plan,
    layout: Layout,
    profile: &Map<String, Value>,
    converge_deadline: Duration,
    sync: SyncMode,
    rec: &mut RunRecord,
) -> Result<()> {
    let mut lab = ChaosLab::start(profile, plan.garbage_seed, layout, sync).await?;
    if let Err(e) = lab.wait_healthy().await {
        rec.diagnostics = lab.diagnostics();
        // A lab that never became healthy is kept too: its daemons' whole logs say why.
        rec.error = Some(format!("{e:#}"));
        lab.keep_logs(plan.index, rec);
        return Err(e);
    }
    let recorder = Recorder::start(&lab.cluster, sync != SyncMode::Off);
    // A baseline of acknowledged writes (about a second's worth) before the fault, so that
    // writes in flight at the fault have predecessors to be checked against.
    wait_for(
        "a baseline of writes acknowledged by pg1",
        Duration::from_secs(15),
        || async { Ok(recorder.acks().iter().filter(|a| a.node == 0).count() >= BASELINE_WRITES) },
    )
    .await?;

    let fault_at = recorder.now();
    let injected = match inject(&mut lab, plan).await {
        Ok(i) => i,
        Err(e) => {
            recorder.stop().await;
            return Err(e.context(format!("injecting {}", plan.fault.name())));
        }
    };
    match hold(&lab, plan, &recorder).await {
        Ok(restarts) => rec.supervisor_restarts = restarts.iter().map(|t| t - fault_at).collect(),
        Err(e) => {
            recorder.stop().await;
            return Err(e.context(format!("holding {}", plan.fault.name())));
        }
    }
    if let Err(e) = heal(&mut lab, plan, &injected).await {
        recorder.stop().await;
        return Err(e.context(format!("healing {}", plan.fault.name())));
    }
    let healed_at = Instant::now();
    // Converged: one writable node that every daemon names, that acknowledges a write, and that
    // every daemon still names after it. A moment of agreement that does not last (a primary restarted at the heal after its lease
    // ran out, fenced by its daemon a poll later, then replaced) is waited past, within the
    // convergence deadline.
    let master = loop {
        let left = converge_deadline.saturating_sub(healed_at.elapsed());
        let master = wait_for("convergence", left, || converged(&lab)).await;
        let Ok(m) = &master else { break master };
        rec.converge_secs = Some(healed_at.elapsed().as_secs_f64());
        let n = node_index(m)?;
        let since = recorder.now();
        rec.writes_resumed = wait_for(
            "a write acknowledged by the converged master",
            RESUME_DEADLINE,
            || async { Ok(recorder.acks().iter().any(|a| a.node == n && a.at >= since)) },
        )
        .await
        .is_ok();
        // still the one master after its write (not fenced meanwhile)
        let lasted = rec.writes_resumed && converged(&lab).await?.as_deref() == Some(m.as_str());
        if lasted || healed_at.elapsed() >= converge_deadline {
            break master;
        }
    };
    rec.converged = master.is_ok();
    let (acks, samples) = recorder.stop().await;
    judge(&lab, plan, fault_at, master.ok(), &acks, &samples, rec).await;
    if !rec.passed {
        rec.diagnostics = lab.diagnostics();
        if sync != SyncMode::Off {
            let _ = writeln!(
                rec.diagnostics,
                "  pg1's synchronous_standby_names now: {:?}",
                lab.primary_sync_names().await
            );
        }
        lab.keep_logs(plan.index, rec);
    }
    Ok(())
}

async fn judge(
    lab: &ChaosLab,
    plan: &Plan,
    fault_at: f64,
    master: Option<String>,
    acks: &[Ack],
    samples: &[Sample],
    rec: &mut RunRecord,
) {
    rec.acked = acks.len();
    let (max, split) = writable_overlap(samples);
    rec.max_writable = max;
    rec.split_brain_secs = split;
    let (failovers, fences) = lab.events();
    rec.failovers = failovers;
    rec.fences = fences;
    rec.fence_failed = lab.fence_failed();
    rec.yielded = lab
        .all_daemons()
        .filter(|d| d.log().contains("yielded to the next candidate"))
        .map(|d| d.name.clone())
        .collect();
    if lab.sync != SyncMode::Off {
        let degraded: Vec<&Ack> = acks.iter().filter(|a| a.sync == Some(false)).collect();
        rec.acked_degraded = degraded.len();
        rec.degraded_detail = by_node(&degraded, fault_at);
        rec.sync_degraded = lab.raised("synchronous_degraded");
        rec.failover_blocked = lab.raised("failover_blocked");
        rec.sync_setting_failed = lab.raised("synchronous_setting_failed");
    }
    if let Some(first) = acks
        .iter()
        .filter(|a| a.node != 0 && a.at >= fault_at)
        .min_by(|a, b| a.at.total_cmp(&b.at))
    {
        rec.new_primary_write = Some(first.at - fault_at);
        rec.new_primary = Some(NODES[first.node].to_string());
    }

    // Which acknowledged writes a node made after another one had become writable: a standby
    // from its promotion (its last sample in recovery before its first writable one) or its
    // first acknowledged write, whichever is earlier; pg1 again from a supervisor's restart.
    let promoted = became_writable(
        samples,
        acks,
        &rec.supervisor_restarts.iter().map(|t| t + fault_at).collect::<Vec<_>>(),
    );
    let during_split = |a: &Ack| {
        promoted
            .iter()
            .enumerate()
            .any(|(n, p)| n != a.node && p.is_some_and(|t| t <= a.at))
    };
    rec.acked_during_split = acks.iter().filter(|a| during_split(a)).count();

    // The final primary: the converged master, else the only writable node if there is one.
    rec.writable_at_end = writable_nodes(lab).await;
    let final_primary = match master {
        Some(m) => Some(m),
        None if rec.writable_at_end.len() == 1 => rec.writable_at_end.first().cloned(),
        None => None,
    };
    if let Some(fp) = &final_primary {
        match final_ids(lab, fp).await {
            Ok(present) => {
                let missing: Vec<&Ack> = acks.iter().filter(|a| !present.contains(&a.id)).collect();
                let split_lost = missing.iter().filter(|a| during_split(a)).count();
                if lab.sync != SyncMode::Off {
                    rec.missing_degraded = Some(
                        missing
                            .iter()
                            .filter(|a| !during_split(a) && a.sync == Some(false))
                            .count(),
                    );
                }
                rec.lost_detail = lost_detail(&missing, fault_at, &during_split);
                rec.missing = Some(missing.len());
                rec.missing_split_brain = Some(split_lost);
                rec.missing_async = Some(missing.len() - split_lost);
            }
            Err(e) => rec.notes.push(format!("reading the writes on {fp}: {e:#}")),
        }
    }
    rec.final_primary = final_primary;

    let mut failures = Vec::new();
    if rec.max_writable >= 2 {
        failures.push(format!(
            "split brain: {} nodes writable at once for {:.1}s",
            rec.max_writable, rec.split_brain_secs
        ));
    }
    if let Some(n) = rec.missing_split_brain.filter(|n| *n > 0) {
        failures.push(format!(
            "{n} writes acknowledged after another node became writable are lost"
        ));
    }
    if let Some(n) = rec.missing_async.filter(|n| *n > 0) {
        // Writes acknowledged while the setting was empty (`on` fell back to asynchronous).
        let degraded = rec.missing_degraded.unwrap_or(0);
        match lab.sync {
            _ if !plan.fault.failover_allowed() || plan.fault == Fault::Switchover => {
                failures.push(format!("{n} acknowledged writes lost"))
            }
            SyncMode::Off => rec.notes.push(format!(
                "{n} writes acknowledged by the old primary before a new primary was writable were lost (asynchronous replication)"
            )),
            SyncMode::On => {
                if degraded > 0 {
                    rec.notes.push(format!(
                        "{degraded} writes acknowledged while synchronous_standby_names was empty (synchronous_mode on fell back to asynchronous) were lost"
                    ));
                }
                if n > degraded {
                    failures.push(format!(
                        "{} writes acknowledged with synchronous replication in effect were lost (synchronous_mode on)",
                        n - degraded
                    ));
                }
            }
            SyncMode::Strict => failures.push(format!(
                "{n} acknowledged writes lost (synchronous_mode strict: none may be)"
            )),
        }
    }
    // One fault, one promotion: a second node promoted means the first one's writes since
    // are thrown away (or two primaries), whatever the monitor happened to sample. A node whose
    // command failed and whose daemon then yielded to the next candidate (docs/safety.md,
    // "Fallback candidates") did not promote: the monitor's samples and the final state check
    // that.
    let promoted_nodes: BTreeSet<&String> = rec.failovers.iter().filter(|n| !rec.yielded.contains(*n)).collect();
    if promoted_nodes.len() > 1 {
        failures.push(format!(
            "more than one node ran its failover command: {}",
            rec.failovers.join(",")
        ));
    }
    if plan.fault == Fault::Switchover {
        if rec.failovers.iter().any(|n| n != "pg2") {
            failures.push(format!("a switchover to pg2 promoted {}", rec.failovers.join(",")));
        }
        if !rec.fences.is_empty() {
            rec.needless_fence = true;
            failures.push(format!("needless fence (a switchover): {}", rec.fences.join(",")));
        }
        // the old primary is back, as a standby
        match tokio::time::timeout(CLIENT_TIMEOUT, lab.cluster.in_recovery(PRIMARY)).await {
            Ok(Ok(true)) => {}
            other => failures.push(format!("pg1 is not a standby after the switchover: {other:?}")),
        }
    } else if !plan.fault.failover_allowed() {
        if !rec.failovers.is_empty() {
            failures.push(format!("failover where none may happen: {}", rec.failovers.join(",")));
        }
        if !rec.fences.is_empty() {
            rec.needless_fence = true;
            failures.push(format!(
                "needless fence ({} must not lead to a failover): {}",
                plan.fault.name(),
                rec.fences.join(",")
            ));
        }
    }
    if matches!(
        plan.fault,
        Fault::PrimaryHostIsolated | Fault::PrimaryHostIsolatedSupervisor
    ) && rec.new_primary.is_some()
        && !rec.fences.iter().any(|f| f == PRIMARY)
    {
        failures.push(format!(
            "{} took writes but pg1's daemon never fenced pg1",
            rec.new_primary.as_deref().unwrap_or("a standby")
        ));
    }
    if !rec.converged {
        failures.push("no convergence".into());
    } else if !rec.writes_resumed {
        failures.push("the converged master took no write".into());
    }
    if rec.final_primary.is_some() && rec.missing.is_none() {
        failures.push("the final primary's writes could not be read".into());
    }
    rec.passed = failures.is_empty();
    rec.failures = failures;
}

/// The lost writes grouped by the node that acknowledged them, whether that was after another
/// node had become writable, and the setting around the commit: one line per group, with the
/// ids and the times after the fault.
fn lost_detail(missing: &[&Ack], fault_at: f64, during_split: &dyn Fn(&Ack) -> bool) -> Vec<String> {
    let mut groups: BTreeMap<(usize, bool, Option<bool>), Vec<&Ack>> = BTreeMap::new();
    for a in missing {
        groups.entry((a.node, during_split(a), a.sync)).or_default().push(a);
    }
    groups
        .into_iter()
        .map(|((node, split, sync), acks)| {
            let ids = |f: fn(&&Ack) -> i64| acks.iter().map(f);
            let (lo, hi) = (ids(|a| a.id).min().unwrap_or(0), ids(|a| a.id).max().unwrap_or(0));
            let first = acks.iter().map(|a| a.at).fold(f64::INFINITY, f64::min) - fault_at;
            let last = acks.iter().map(|a| a.at).fold(f64::NEG_INFINITY, f64::max) - fault_at;
            format!(
                "{} writes acknowledged by {} ({}), ids {lo}..{hi}, {first:+.2}..{last:+.2} s after the fault, synchronous_standby_names {}",
                acks.len(),
                NODES[node],
                if split { "after another node became writable" } else { "no other node writable" },
                match sync {
                    None => "not read",
                    Some(true) => "set before and after",
                    Some(false) => "empty before or after",
                }
            )
        })
        .collect()
}

/// Writes per node that acknowledged them: count, ids and times after the fault.
fn by_node(acks: &[&Ack], fault_at: f64) -> Vec<String> {
    let mut groups: BTreeMap<usize, Vec<&Ack>> = BTreeMap::new();
    for a in acks {
        groups.entry(a.node).or_default().push(a);
    }
    groups
        .into_iter()
        .map(|(node, acks)| {
            let first = acks.iter().map(|a| a.at).fold(f64::INFINITY, f64::min) - fault_at;
            let last = acks.iter().map(|a| a.at).fold(f64::NEG_INFINITY, f64::max) - fault_at;
            format!("{} by {} at {first:+.2}..{last:+.2} s", acks.len(), NODES[node])
        })
        .collect()
}

/// The running nodes that are out of recovery.
async fn writable_nodes(lab: &ChaosLab) -> Vec<String> {
    let mut writable = Vec::new();
    for node in lab.cluster.nodes().iter().filter(|n| n.is_running()) {
        if let Ok(Ok(false)) = tokio::time::timeout(CLIENT_TIMEOUT, lab.cluster.in_recovery(&node.name)).await {
            writable.push(node.name.clone());
        }
    }
    writable
}

async fn final_ids(lab: &ChaosLab, node: &str) -> Result<BTreeSet<i64>> {
    let rows = tokio::time::timeout(
        Duration::from_secs(10),
        lab.cluster.sql(node, "SELECT id FROM chaos_writes"),
    )
    .await
    .map_err(|_| anyhow!("timed out"))??;
    rows.iter()
        .map(|r| r.try_get::<_, i64>(0).map_err(Into::into))
        .collect()
}

/// Runs the campaign, calling `on_run` after each run; returns every run's record.
pub async fn campaign(opts: &Options, mut on_run: impl FnMut(&RunRecord)) -> Result<Vec<RunRecord>> {
    let (profile, _) = profile_keys(opts.profile)?;
    if let Some(f) = opts.faults.iter().find(|f| !f.fits(opts.layout)) {
        bail!("{} needs --layout dedicated3", f.name());
    }
    let mut records = Vec::new();
    for index in (0..opts.runs).filter(|i| opts.only.is_none_or(|k| k == i + 1)) {
        let p = plan(opts, index);
        let rec = run_one(&p, opts.layout, &profile, opts.converge_deadline, opts.sync).await;
        on_run(&rec);
        records.push(rec);
    }
    Ok(records)
}

/// `N passed, M failed`, with the failed runs' faults.
pub fn summary(records: &[RunRecord]) -> String {
    let passed = records.iter().filter(|r| r.passed).count();
    let mut by_fault: BTreeMap<&str, usize> = BTreeMap::new();
    for r in records.iter().filter(|r| !r.passed) {
        *by_fault.entry(r.fault.as_str()).or_default() += 1;
    }
    let mut s = format!("{passed} passed, {} failed", records.len() - passed);
    if !by_fault.is_empty() {
        let parts: Vec<String> = by_fault.iter().map(|(f, n)| format!("{f} x{n}")).collect();
        let _ = write!(s, " ({})", parts.join(", "));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_are_deterministic_and_cover_the_faults_per_block() {
        let opts = Options {
            runs: 6,
            seed: 7,
            faults: vec![Fault::Partition, Fault::Sigstop, Fault::Blip],
            ..Options::default()
        };
        let a: Vec<Plan> = (0..6).map(|i| plan(&opts, i)).collect();
        let b: Vec<Plan> = (0..6).map(|i| plan(&opts, i)).collect();
        assert_eq!(a, b);
        for block in a.chunks(3) {
            let faults: BTreeSet<Fault> = block.iter().map(|p| p.fault).collect();
            assert_eq!(faults.len(), 3);
        }
        for p in &a {
            if p.fault == Fault::Blip {
                assert_eq!(p.hold, 3.0);
            } else {
                assert!((5.0..=25.0).contains(&p.hold), "{}", p.hold);
            }
        }
        let other = Options { seed: 8, ..opts };
        assert_ne!(plan(&other, 0).run_seed, a[0].run_seed);
    }

    #[test]
    fn overlap_counts_latest_samples() {
        let s = |at, node, w| Sample { at, node, writable: w };
        let samples = vec![
            s(0.0, 0, Some(true)),
            s(0.1, 1, Some(false)),
            s(1.0, 1, Some(true)),
            s(1.5, 0, None),
            s(2.0, 0, Some(true)),
            s(2.5, 0, Some(false)),
        ];
        let (max, split) = writable_overlap(&samples);
        assert_eq!(max, 2);
        assert!((split - 1.0).abs() < 1e-9, "{split}");
        // A split that lasts until the end counts up to the last sample.
        let open = [s(0.0, 0, Some(true)), s(1.0, 1, Some(true)), s(3.0, 0, Some(true))];
        let (max, split) = writable_overlap(&open);
        assert_eq!(max, 2);
        assert!((split - 2.0).abs() < 1e-9, "{split}");
        let p = promotions(&samples);
        assert_eq!(p, [None, Some(0.1), None]);
    }

    #[test]
    fn fault_names_round_trip() {
        for f in Fault::ALL {
            assert_eq!(Fault::parse(f.name()).ok(), Some(f));
        }
        assert!(Fault::parse_list("partition,nope").is_err());
        assert_eq!(
            Fault::parse_list("partition,sigstop,blip").ok(),
            Some(vec![Fault::Partition, Fault::Sigstop, Fault::Blip])
        );
    }

    #[test]
    fn new_faults_hold_for_their_own_ranges_and_fit_their_layout() {
        let opts = Options {
            runs: 8,
            seed: 3,
            faults: vec![
                Fault::StandbyDaemonsCut,
                Fault::PrimaryHostIsolated,
                Fault::PrimaryHostIsolatedSupervisor,
                Fault::ZoneSplit,
            ],
            layout: Layout::Dedicated3,
            ..Options::default()
        };
        let plans: Vec<Plan> = (0..8).map(|i| plan(&opts, i)).collect();
        let mut modes = BTreeSet::new();
        for p in &plans {
            let (lo, hi) = p.fault.own_hold().expect("a range of its own");
            assert!((lo..=hi).contains(&p.hold), "{:?} held {}", p.fault, p.hold);
            if p.fault == Fault::StandbyDaemonsCut {
                modes.insert(format!("{:?}", p.cut_mode));
            }
        }
        assert_eq!(plans, (0..8).map(|i| plan(&opts, i)).collect::<Vec<_>>());
        assert!(!modes.is_empty());
        assert!(!Fault::ZoneSplit.fits(Layout::Mesh));
        assert!(Fault::ZoneSplit.fits(Layout::Dedicated3));
        assert!(!Fault::defaults(Layout::Mesh).contains(&Fault::ZoneSplit));
        assert_eq!(Fault::defaults(Layout::Dedicated3).len(), Fault::ALL.len() - 1);
        assert!(!Fault::defaults(Layout::Dedicated3).contains(&Fault::Switchover));
        assert_eq!(Fault::parse("switchover").ok(), Some(Fault::Switchover));
        assert_eq!(Layout::parse("dedicated3").ok(), Some(Layout::Dedicated3));
        assert!(Layout::parse("ring").is_err());
        assert!(Fault::PrimaryHostIsolatedSupervisor.failover_allowed());
        assert!(!Fault::StandbyDaemonsCut.failover_allowed() && !Fault::ZoneSplit.failover_allowed());
    }

    #[test]
    fn a_restarted_primary_and_a_first_write_count_as_writable() {
        let s = |at, node, w| Sample { at, node, writable: w };
        let samples = vec![s(0.0, 0, Some(true)), s(0.0, 1, Some(false)), s(5.0, 1, Some(false))];
        let acks = vec![
            Ack {
                id: 1,
                node: 0,
                at: 1.0,
                sync: None,
            },
            Ack {
                id: 2,
                node: 1,
                at: 5.5,
                sync: None,
            },
        ];
        // pg2's monitor never saw it writable, its write did; pg1 counts from its restart.
        assert_eq!(became_writable(&samples, &acks, &[]), [None, Some(5.5), None]);
        assert_eq!(became_writable(&samples, &acks, &[7.0]), [Some(7.0), Some(5.5), None]);
    }

    #[test]
    fn sync_modes_parse_and_lost_writes_are_grouped_by_setting() {
        for m in [SyncMode::Off, SyncMode::On, SyncMode::Strict] {
            assert_eq!(SyncMode::parse(m.name()).ok(), Some(m));
        }
        assert!(SyncMode::parse("remote_apply").is_err());
        assert_eq!(Options::default().sync, SyncMode::Off);
        let ack = |id, at, sync| Ack { id, node: 0, at, sync };
        let acks = [
            ack(7, 10.5, Some(true)),
            ack(8, 10.6, Some(false)),
            ack(9, 10.7, Some(false)),
        ];
        let missing: Vec<&Ack> = acks.iter().collect();
        let lines = lost_detail(&missing, 10.0, &|_| false);
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(lines[1].starts_with("1 writes acknowledged by pg1") && lines[1].contains("set before and after"));
        assert!(lines[0].contains("ids 8..9") && lines[0].contains("+0.60..+0.70 s") && lines[0].contains("empty"));
        assert_eq!(by_node(&missing[1..], 10.0), ["2 by pg1 at +0.60..+0.70 s"]);
    }

    #[test]
    fn the_fast_profile_is_the_shipped_file() {
        let (keys, source) = profile_keys(Profile::Fast).expect("fast profile");
        assert_eq!(source, "docs/profiles/fast.json");
        assert!(keys["fence_timeout"].is_number() && keys["unreachable_master_failover_timeout"].is_number());
    }
}
