//! A schedule: the cluster's shape, the profile, and the faults with their times. Owns how
//! schedules are drawn from a seed ([`generate`]), and their one-line text form, which
//! [`Schedule::parse`] reads back so that a shrunk failure can be replayed exactly
//! (`seed` + text).
//!
//! Hosts: host `i < nodes` carries node `pg{i}` and its daemon; host `nodes + j` carries
//! observer daemon `obs{j}`. Daemon `d` lives on host `d`.

use crate::rng::Rng;
use crate::{Us, MS, SEC};
use std::fmt;

/// Which timings the daemons run with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Profile {
    /// docs/profiles/fast.json with `fence_command` set on every node's daemon.
    Fast,
    /// The config defaults (5 s intervals, 120 s lag window), no fencing: the original's rules.
    Defaults,
}

/// How a cut link fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cut {
    /// Connection refused (or reset): the probe fails at once.
    Refuse,
    /// Packets dropped: the probe runs into its deadline.
    Blackhole,
}

/// What happens on a set of links while the fault lasts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkFault {
    Cut(Cut),
    /// Every connection takes this long to answer (past the probe deadline it times out).
    Delay(Us),
    /// Cut for `period`, open for `period`, and so on, starting cut.
    Flap {
        cut: Cut,
        period: Us,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FaultKind {
    /// kill -9 of the node's PostgreSQL; it stays down (autofollow may start it as a standby).
    KillNode(usize),
    /// SIGSTOP for the fault's duration, then SIGCONT: TCP accepts, nothing answers.
    FreezeNode(usize),
    /// Directed host pairs (initiator, acceptor): probes, observer fetches and replication
    /// connections from the first host to the second.
    Links { pairs: Vec<(usize, usize)>, how: LinkFault },
    /// Every link into and out of one host (node and daemon together, or an observer).
    Isolate { host: usize, cut: Cut },
    /// The daemon stops for the fault's duration and starts again with an empty memory.
    RestartDaemon(usize),
    /// This daemon's failover command exits 1 while the fault lasts.
    FailoverFails(usize),
    /// This daemon's failover command hangs until `failover_command_timeout` kills it.
    FailoverHangs(usize),
    /// This daemon's fence command exits 1 without stopping anything while the fault lasts.
    FenceFails(usize),
    /// This daemon's fence command hangs, stopping nothing, until `failover_command_timeout`
    /// kills it.
    FenceHangs(usize),
    /// The maintenance file exists on this node's host.
    Maintenance(usize),
    /// This daemon's `/state.json` answers what it held when the fault began.
    ObserverStale(usize),
    /// This daemon's `/state.json` answers something that is not JSON.
    ObserverGarbage(usize),
    /// This standby replays this long behind its primary.
    SlowStandby { node: usize, lag: Us },
    /// This daemon's wall clock is stepped by `by` microseconds (either way) for the fault's
    /// duration, then stepped back: beyond 5 s, the others refuse its answers and it theirs.
    ClockSkew { daemon: usize, by: i64 },
    /// This daemon's `/state.json` answers another cluster's state under the same node names:
    /// `primary` is a connected primary there on a far newer timeline, the others standbys.
    ForeignObserver { daemon: usize, primary: usize },
    /// A config reload on this daemon removes `node` from `remote_conns`; a second reload at
    /// the fault's end adds it back.
    Reload { daemon: usize, node: usize },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fault {
    pub at: Us,
    pub dur: Us,
    pub kind: FaultKind,
}

impl Fault {
    pub fn end(&self) -> Us {
        self.at + self.dur
    }
    pub fn active(&self, t: Us) -> bool {
        self.at <= t && t < self.end()
    }
}

/// What the schedule was drawn to exercise; decides which invariants apply to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Intent {
    /// Anything goes; safety invariants only.
    Chaos,
    /// One loss of the primary, sometimes with the standby that would be chosen unable to
    /// promote (its maintenance file, or its failover command failing) from before it: a
    /// standby must be promoted in time (the next candidate after
    /// `failover_fallback_timeout`), and the others must follow it.
    Liveness,
    /// One short cut of the primary's host (docs/safety.md, "Blips"): no fence, no failover.
    Blip,
}

/// The failover policy keys of docs/configuration.md: one preferred standby
/// (`failover_priorities`) and a data-loss cap (`max_failover_lag_bytes`), the same in every
/// daemon's config.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    pub preferred: usize,
    pub cap: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schedule {
    pub profile: Profile,
    pub nodes: usize,
    pub observers: usize,
    pub never_promote: Option<usize>,
    pub autofollow: bool,
    pub policy: Option<Policy>,
    pub intent: Intent,
    pub end: Us,
    pub faults: Vec<Fault>,
}

impl Schedule {
    pub fn daemons(&self) -> usize {
        self.nodes + self.observers
    }

    /// How much longer everything takes in this profile than in the fast one.
    pub fn scale(&self) -> Us {
        scale(self.profile)
    }
}

fn scale(p: Profile) -> Us {
    match p {
        Profile::Fast => 1,
        Profile::Defaults => 10,
    }
}

/// When chaos faults may start: after every daemon has seen the cluster for a while.
pub fn warmup(p: Profile) -> Us {
    3 * SEC * scale(p)
}

/// When the primary may be lost in liveness and blip schedules: after the daemons' grace
/// period of `missing_master_from_config_timeout` (15 s by default) since their start, during
/// which a freshly started daemon never fails over on a missing master.
pub fn settled(p: Profile) -> Us {
    match p {
        Profile::Fast => 16 * SEC,
        Profile::Defaults => 30 * SEC,
    }
}

/// How long after losing the primary a standby must be writable, and after that how long the
/// others have to follow; mirrored by `check::liveness_deadline`.
/// `lag_window`: the fast trigger cannot apply (see `check::liveness`), the 30 s lag window must.
fn liveness_span(p: Profile, lag_window: bool) -> Us {
    match p {
        Profile::Fast if lag_window => 36 * SEC,
        Profile::Fast => 12 * SEC,
        Profile::Defaults => 200 * SEC,
    }
}

/// How much longer a liveness schedule runs when its first candidate cannot promote:
/// `failover_fallback_timeout` (5 s fast, 60 s by default) and its noticing, and after a failed
/// command the settling of its node between two attempts (which fits only in the third
/// backoff, 15 s to 35 s after the first failure, with the fast profile; in the fourth, 35 s to
/// 75 s, by default); mirrored by `check::liveness`.
fn fallback_span(p: Profile) -> Us {
    match p {
        Profile::Fast => 34 * SEC,
        Profile::Defaults => 90 * SEC,
    }
}

/// Draws a schedule from a seed.
pub fn generate(seed: u64) -> Schedule {
    let mut r = Rng::new(seed);
    let profile = if r.chance(80) { Profile::Fast } else { Profile::Defaults };
    let k = scale(profile);
    let nodes = 2 + r.index(2) + usize::from(r.chance(20));
    let observers = 1 + usize::from(r.chance(25));
    let never_promote = r.chance(15).then(|| 1 + r.index(nodes - 1));
    let autofollow = r.chance(70);
    let roll = r.below(100);
    let intent = if roll < 30 {
        Intent::Liveness
    } else if roll < 40 && profile == Profile::Fast {
        Intent::Blip
    } else {
        Intent::Chaos
    };
    let w = warmup(profile);
    let ms = |v: u64| v * MS * k;
    let mut s = Schedule {
        profile,
        nodes,
        observers,
        never_promote,
        autofollow,
        policy: None,
        intent,
        end: 0,
        faults: Vec::new(),
    };
    match intent {
        Intent::Liveness => {
            let at = settled(profile) + ms(r.range(0, 1000));
            let kind = match r.below(3) {
                0 => FaultKind::KillNode(0),
                1 => FaultKind::FreezeNode(0),
                _ => FaultKind::Isolate {
                    host: 0,
                    cut: if r.chance(50) { Cut::Refuse } else { Cut::Blackhole },
                },
            };
            // each node's daemon has the other nodes' daemons and the observers as observers
            let lag_window = matches!(kind, FaultKind::Isolate { .. }) && nodes - 1 + observers < 3;
            let span = liveness_span(profile, lag_window);
            let dur = if matches!(kind, FaultKind::KillNode(_)) {
                0
            } else {
                span
            };
            s.faults.push(Fault { at, dur, kind });
            s.end = at + span;
            // The standby that would be chosen (the highest name, when they are level) cannot
            // promote: the next one must, after failover_fallback_timeout.
            let eligible: Vec<usize> = (1..nodes).filter(|n| never_promote != Some(*n)).collect();
            if eligible.len() >= 2 && r.chance(40) {
                let cand = eligible[eligible.len() - 1];
                let kind = if r.chance(50) {
                    FaultKind::Maintenance(cand)
                } else {
                    FaultKind::FailoverFails(cand)
                };
                s.faults.push(Fault {
                    at: w,
                    dur: s.end - w,
                    kind,
                });
                s.end += fallback_span(profile);
                s.faults[1].dur = s.end - w;
                if s.faults[0].dur > 0 {
                    s.faults[0].dur = s.end - s.faults[0].at;
                }
            }
        }
        Intent::Blip => {
            let at = settled(profile) + ms(r.range(0, 1000));
            let cut = if r.chance(50) { Cut::Refuse } else { Cut::Blackhole };
            // docs/safety.md: a refused blip of 3.4 s or a blackholed one of 3.15 s fits in F
            let dur = ms(r.range(100, 3000));
            s.faults.push(Fault {
                at,
                dur,
                kind: FaultKind::Isolate { host: 0, cut },
            });
            s.end = at + dur + 8 * SEC;
        }
        Intent::Chaos => {
            let n = 1 + r.index(5);
            for _ in 0..n {
                let at = w + ms(r.range(0, 10_000));
                let dur = ms(r.range(200, 8000));
                let kind = chaos_fault(&mut r, &s, k);
                let dur = if matches!(kind, FaultKind::KillNode(_)) { 0 } else { dur };
                s.faults.push(Fault { at, dur, kind });
            }
            s.faults.sort_by_key(|f| f.at);
            s.end = w + 18 * SEC * k;
        }
    }
    // Drawn last, so that the draws above (and the schedules of earlier campaigns' seeds)
    // stay as they were. A standby streams a few KiB behind its primary here: caps of 64 KiB
    // and up never block the loss of a primary alone (liveness), 4 KiB ones may in chaos.
    if r.chance(30) {
        let caps: &[u64] = if intent == Intent::Chaos {
            &[4 << 10, 64 << 10, 1 << 20]
        } else {
            &[64 << 10, 1 << 20]
        };
        s.policy = Some(Policy {
            preferred: 1 + r.index(nodes - 1),
            cap: caps[r.index(caps.len())],
        });
    }
    s
}

fn chaos_fault(r: &mut Rng, s: &Schedule, k: Us) -> FaultKind {
    let hosts = s.daemons();
    let node = r.index(s.nodes);
    let daemon = r.index(hosts);
    let cut = if r.chance(50) { Cut::Refuse } else { Cut::Blackhole };
    match r.below(15) {
        0 => FaultKind::KillNode(node),
        1 => FaultKind::FreezeNode(node),
        2 | 3 => {
            let mut pairs = Vec::new();
            for a in 0..hosts {
                for b in 0..hosts {
                    if a != b && r.chance(30) {
                        pairs.push((a, b));
                    }
                }
            }
            if pairs.is_empty() {
                pairs.push((daemon, (daemon + 1) % hosts));
            }
            let how = match r.below(4) {
                0 => LinkFault::Delay(r.range(1, 400) * MS * k),
                1 => LinkFault::Flap {
                    cut,
                    period: r.range(50, 2000) * MS * k,
                },
                _ => LinkFault::Cut(cut),
            };
            FaultKind::Links { pairs, how }
        }
        4 | 5 => FaultKind::Isolate { host: daemon, cut },
        6 => FaultKind::RestartDaemon(daemon),
        7 => match r.below(4) {
            0 => FaultKind::FailoverFails(node),
            1 => FaultKind::FailoverHangs(node),
            2 => FaultKind::FenceFails(node),
            _ => FaultKind::FenceHangs(node),
        },
        8 => FaultKind::Maintenance(node),
        9 => {
            if r.chance(50) {
                FaultKind::ObserverStale(daemon)
            } else {
                FaultKind::ObserverGarbage(daemon)
            }
        }
        10 => FaultKind::SlowStandby {
            node,
            lag: r.range(5, 60) * SEC * k.min(2),
        },
        12 => {
            let by = r.range(1, 60) as i64 * SEC as i64;
            FaultKind::ClockSkew {
                daemon,
                by: if r.chance(50) { by } else { -by },
            }
        }
        13 => FaultKind::ForeignObserver { daemon, primary: node },
        14 if daemon != node => FaultKind::Reload { daemon, node },
        _ => FaultKind::Links {
            pairs: vec![(daemon, node), (node, daemon)],
            how: LinkFault::Cut(cut),
        },
    }
}

// ---- text form -------------------------------------------------------------------------

fn t(v: Us) -> String {
    format!("{}.{:03}", v / SEC, (v % SEC) / MS)
}

fn cut_name(c: Cut) -> &'static str {
    match c {
        Cut::Refuse => "refuse",
        Cut::Blackhole => "blackhole",
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            FaultKind::KillNode(n) => write!(f, "kill:{n}")?,
            FaultKind::FreezeNode(n) => write!(f, "freeze:{n}")?,
            FaultKind::Links { pairs, how } => {
                let p: Vec<String> = pairs.iter().map(|(a, b)| format!("{a}>{b}")).collect();
                let how = match how {
                    LinkFault::Cut(c) => cut_name(*c).to_string(),
                    LinkFault::Delay(d) => format!("delay={}", t(*d)),
                    LinkFault::Flap { cut, period } => format!("flap-{}={}", cut_name(*cut), t(*period)),
                };
                write!(f, "links:{}:{how}", p.join(","))?
            }
            FaultKind::Isolate { host, cut } => write!(f, "isolate:{host}:{}", cut_name(*cut))?,
            FaultKind::RestartDaemon(d) => write!(f, "restart:{d}")?,
            FaultKind::FailoverFails(d) => write!(f, "ffail:{d}")?,
            FaultKind::FailoverHangs(d) => write!(f, "fhang:{d}")?,
            FaultKind::FenceFails(d) => write!(f, "xfail:{d}")?,
            FaultKind::FenceHangs(d) => write!(f, "xhang:{d}")?,
            FaultKind::Maintenance(n) => write!(f, "maint:{n}")?,
            FaultKind::ObserverStale(d) => write!(f, "stale:{d}")?,
            FaultKind::ObserverGarbage(d) => write!(f, "garbage:{d}")?,
            FaultKind::SlowStandby { node, lag } => write!(f, "slow:{node}={}", t(*lag))?,
            FaultKind::ClockSkew { daemon, by } => {
                let sign = if *by < 0 { '-' } else { '+' };
                write!(f, "skew:{daemon}={sign}{}", t(by.unsigned_abs()))?
            }
            FaultKind::ForeignObserver { daemon, primary } => write!(f, "foreign:{daemon}={primary}")?,
            FaultKind::Reload { daemon, node } => write!(f, "reload:{daemon}-{node}")?,
        }
        write!(f, "@{}+{}", t(self.at), t(self.dur))
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let profile = match self.profile {
            Profile::Fast => "fast",
            Profile::Defaults => "defaults",
        };
        let intent = match self.intent {
            Intent::Chaos => "chaos",
            Intent::Liveness => "liveness",
            Intent::Blip => "blip",
        };
        let never = self.never_promote.map_or("-".to_string(), |n| n.to_string());
        write!(
            f,
            "{profile} nodes={} observers={} never={never} follow={} intent={intent} end={}",
            self.nodes,
            self.observers,
            u8::from(self.autofollow),
            t(self.end)
        )?;
        if let Some(p) = self.policy {
            write!(f, " policy={}:{}", p.preferred, p.cap)?;
        }
        write!(f, " |")?;
        for fault in &self.faults {
            write!(f, " {fault}")?;
        }
        Ok(())
    }
}

fn parse_t(s: &str) -> Result<Us, String> {
    let (whole, frac) = s.split_once('.').unwrap_or((s, "0"));
    let whole: u64 = whole.parse().map_err(|_| format!("bad time {s:?}"))?;
    let frac = format!("{frac:0<3}");
    let ms: u64 = frac
        .get(..3)
        .unwrap_or("0")
        .parse()
        .map_err(|_| format!("bad time {s:?}"))?;
    Ok(whole * SEC + ms * MS)
}

fn parse_n(s: &str) -> Result<usize, String> {
    s.parse().map_err(|_| format!("bad number {s:?}"))
}

fn parse_cut(s: &str) -> Result<Cut, String> {
    match s {
        "refuse" => Ok(Cut::Refuse),
        "blackhole" => Ok(Cut::Blackhole),
        _ => Err(format!("bad cut {s:?} (refuse or blackhole)")),
    }
}

fn parse_fault(s: &str) -> Result<Fault, String> {
    let (what, when) = s
        .split_once('@')
        .ok_or_else(|| format!("{s:?}: missing @time+duration"))?;
    let (at, dur) = when
        .split_once('+')
        .ok_or_else(|| format!("{s:?}: missing +duration"))?;
    let (name, args) = what
        .split_once(':')
        .ok_or_else(|| format!("{s:?}: missing kind:args"))?;
    let kind = match name {
        "kill" => FaultKind::KillNode(parse_n(args)?),
        "freeze" => FaultKind::FreezeNode(parse_n(args)?),
        "restart" => FaultKind::RestartDaemon(parse_n(args)?),
        "ffail" => FaultKind::FailoverFails(parse_n(args)?),
        "fhang" => FaultKind::FailoverHangs(parse_n(args)?),
        "xfail" => FaultKind::FenceFails(parse_n(args)?),
        "xhang" => FaultKind::FenceHangs(parse_n(args)?),
        "maint" => FaultKind::Maintenance(parse_n(args)?),
        "stale" => FaultKind::ObserverStale(parse_n(args)?),
        "garbage" => FaultKind::ObserverGarbage(parse_n(args)?),
        "slow" => {
            let (n, lag) = args.split_once('=').ok_or("slow:NODE=LAG")?;
            FaultKind::SlowStandby {
                node: parse_n(n)?,
                lag: parse_t(lag)?,
            }
        }
        "skew" => {
            let (d, by) = args.split_once('=').ok_or("skew:DAEMON=+SECS or -SECS")?;
            let (sign, by) = match by.split_at_checked(1) {
                Some(("+", rest)) => (1, rest),
                Some(("-", rest)) => (-1, rest),
                _ => return Err(format!("skew {by:?}: +SECS or -SECS")),
            };
            FaultKind::ClockSkew {
                daemon: parse_n(d)?,
                by: sign * i64::try_from(parse_t(by)?).map_err(|_| "skew too large")?,
            }
        }
        "foreign" => {
            let (d, p) = args.split_once('=').ok_or("foreign:DAEMON=PRIMARY")?;
            FaultKind::ForeignObserver {
                daemon: parse_n(d)?,
                primary: parse_n(p)?,
            }
        }
        "reload" => {
            let (d, n) = args.split_once('-').ok_or("reload:DAEMON-NODE")?;
            FaultKind::Reload {
                daemon: parse_n(d)?,
                node: parse_n(n)?,
            }
        }
        "isolate" => {
            let (h, c) = args.split_once(':').ok_or("isolate:HOST:CUT")?;
            FaultKind::Isolate {
                host: parse_n(h)?,
                cut: parse_cut(c)?,
            }
        }
        "links" => {
            let (p, how) = args.split_once(':').ok_or("links:A>B,...:HOW")?;
            let mut pairs = Vec::new();
            for pair in p.split(',') {
                let (a, b) = pair.split_once('>').ok_or_else(|| format!("bad pair {pair:?}"))?;
                pairs.push((parse_n(a)?, parse_n(b)?));
            }
            let how = if let Some(d) = how.strip_prefix("delay=") {
                LinkFault::Delay(parse_t(d)?)
            } else if let Some(rest) = how.strip_prefix("flap-") {
                let (c, period) = rest.split_once('=').ok_or("flap-CUT=PERIOD")?;
                LinkFault::Flap {
                    cut: parse_cut(c)?,
                    period: parse_t(period)?,
                }
            } else {
                LinkFault::Cut(parse_cut(how)?)
            };
            FaultKind::Links { pairs, how }
        }
        _ => return Err(format!("unknown fault {name:?}")),
    };
    Ok(Fault {
        at: parse_t(at)?,
        dur: parse_t(dur)?,
        kind,
    })
}

impl Schedule {
    /// Reads the text form written by `Display`. Checks that every index fits the cluster.
    pub fn parse(s: &str) -> Result<Schedule, String> {
        let (head, faults) = s.split_once('|').ok_or("missing '|' between header and faults")?;
        let mut words = head.split_whitespace();
        let profile = match words.next() {
            Some("fast") => Profile::Fast,
            Some("defaults") => Profile::Defaults,
            other => return Err(format!("bad profile {other:?} (fast or defaults)")),
        };
        let mut sched = Schedule {
            profile,
            nodes: 3,
            observers: 1,
            never_promote: None,
            autofollow: true,
            policy: None,
            intent: Intent::Chaos,
            end: 0,
            faults: Vec::new(),
        };
        for w in words {
            let (k, v) = w.split_once('=').ok_or_else(|| format!("bad header word {w:?}"))?;
            match k {
                "nodes" => sched.nodes = parse_n(v)?,
                "observers" => sched.observers = parse_n(v)?,
                "never" => sched.never_promote = if v == "-" { None } else { Some(parse_n(v)?) },
                "follow" => sched.autofollow = v == "1",
                "policy" => {
                    let (p, cap) = v
                        .split_once(':')
                        .ok_or_else(|| format!("bad policy {v:?} (node:cap)"))?;
                    let cap = cap.parse().map_err(|_| format!("bad cap {cap:?}"))?;
                    sched.policy = Some(Policy {
                        preferred: parse_n(p)?,
                        cap,
                    });
                }
                "intent" => {
                    sched.intent = match v {
                        "chaos" => Intent::Chaos,
                        "liveness" => Intent::Liveness,
                        "blip" => Intent::Blip,
                        _ => return Err(format!("bad intent {v:?}")),
                    }
                }
                "end" => sched.end = parse_t(v)?,
                _ => return Err(format!("unknown header key {k:?}")),
            }
        }
        for f in faults.split_whitespace() {
            sched.faults.push(parse_fault(f)?);
        }
        sched.validate()?;
        Ok(sched)
    }

    fn validate(&self) -> Result<(), String> {
        if !(2..=9).contains(&self.nodes) || self.observers > 9 {
            return Err("2 to 9 nodes and at most 9 observers".into());
        }
        let hosts = self.daemons();
        let node_ok = |n: usize| n < self.nodes;
        let host_ok = |h: usize| h < hosts;
        for f in &self.faults {
            let ok = match &f.kind {
                FaultKind::KillNode(n)
                | FaultKind::FreezeNode(n)
                | FaultKind::Maintenance(n)
                | FaultKind::SlowStandby { node: n, .. } => node_ok(*n),
                FaultKind::FailoverFails(d)
                | FaultKind::FailoverHangs(d)
                | FaultKind::FenceFails(d)
                | FaultKind::FenceHangs(d) => node_ok(*d),
                FaultKind::RestartDaemon(d)
                | FaultKind::ObserverStale(d)
                | FaultKind::ObserverGarbage(d)
                | FaultKind::Isolate { host: d, .. } => host_ok(*d),
                FaultKind::Links { pairs, .. } => pairs.iter().all(|(a, b)| host_ok(*a) && host_ok(*b)),
                FaultKind::ClockSkew { daemon, .. } => host_ok(*daemon),
                FaultKind::ForeignObserver { daemon, primary } => host_ok(*daemon) && node_ok(*primary),
                // a daemon's own node stays in its config (the config check requires it)
                FaultKind::Reload { daemon, node } => host_ok(*daemon) && node_ok(*node) && daemon != node,
            };
            if !ok {
                return Err(format!("fault {f} names a node or host the cluster does not have"));
            }
        }
        if self.never_promote.is_some_and(|n| !node_ok(n)) {
            return Err("never= names a node the cluster does not have".into());
        }
        if self.policy.is_some_and(|p| !node_ok(p.preferred)) {
            return Err("policy= names a node the cluster does not have".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_form_round_trips() {
        for seed in 0..300 {
            let s = generate(seed);
            let text = s.to_string();
            assert_eq!(Schedule::parse(&text), Ok(s), "{text}");
        }
    }

    #[test]
    fn bad_text_says_what() {
        assert!(Schedule::parse("fast nodes=3 |  kill:7@1.0+0.0")
            .unwrap_err()
            .contains("kill:7"));
        assert!(Schedule::parse("slow |").unwrap_err().contains("profile"));
    }
}
