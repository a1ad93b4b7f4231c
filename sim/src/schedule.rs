//! A schedule: the cluster's shape, the profile, and the faults with their times. Owns how
//! schedules are drawn from a seed ([`generate`]), and their one-line text form, which
//! [`Schedule::parse`] reads back so that a shrunk failure can be replayed exactly
//! (`seed` + text).
//!
//! Hosts: host `i < nodes` carries node `pg{i}` and its daemon; host `nodes + j` carries
//! observer daemon `obs{j}`. Daemon `d` lives on host `d`.

use crate::rng::Rng;
use crate::{Us, MS, SEC};
pub use pglookout::config::SynchronousMode;
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
    /// A zone split: every link between a host in `side` and a host outside it fails both ways
    /// (probes, observer fetches and the WAL stream).
    Zone { side: Vec<usize>, cut: Cut },
    /// Directed (daemon host, node) pairs: the daemon's connections to that node's PostgreSQL
    /// fail, while the WAL stream and the observer fetches between the hosts still flow.
    DbLinks { pairs: Vec<(usize, usize)>, cut: Cut },
    /// This daemon's fence command exits 0 and stops nothing while the fault lasts.
    FenceNoop(usize),
    /// A supervisor restarts this node, as what it was (a primary stays one), about 1 s after
    /// the first fence that stops it while the fault lasts.
    Revive(usize),
    /// The whole host stops (SIGSTOP of its daemon and of its PostgreSQL, a paused VM) for the
    /// fault's duration, then resumes.
    HostFreeze(usize),
    /// This node's clock (its `now()`, so `db_time` and its commit timestamps) is off by `by`
    /// microseconds from the daemons' clocks while the fault lasts.
    DbSkew { node: usize, by: i64 },
    /// This node daemon starts without `fence_command`; a reload at the fault's start turns it
    /// on (and it stays on).
    FenceOn(usize),
    /// A failover command this daemon starts while the fault lasts times out
    /// (`failover_command_timeout`, reported failed) while the promotion it began lands
    /// 0.2-10 s after that; until it lands, the daemon's probes of its own node time out too
    /// (an overloaded host).
    FailoverLate(usize),
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

    /// Whether it was on at some time in `[t0, t1]` (an instant fault at `t0` or after counts).
    pub fn during(&self, t0: Us, t1: Us) -> bool {
        self.at <= t1 && (self.end() > t0 || self.dur == 0 && self.at >= t0)
    }

    /// Whether it touches the link `from -> to` at all (at any time).
    pub fn touches(&self, from: usize, to: usize) -> bool {
        match &self.kind {
            FaultKind::Links { pairs, .. } => pairs.contains(&(from, to)),
            FaultKind::Isolate { host, .. } => (from == *host) != (to == *host),
            FaultKind::Zone { side, .. } => side.contains(&from) != side.contains(&to),
            _ => false,
        }
    }

    /// Whether it touches daemon host `from`'s connections to node `to`'s PostgreSQL (the host
    /// links, and the cuts of the daemons' database links alone).
    pub fn touches_db(&self, from: usize, to: usize) -> bool {
        self.touches(from, to) || matches!(&self.kind, FaultKind::DbLinks { pairs, .. } if pairs.contains(&(from, to)))
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

/// Whom the node daemons list as their observers (`layout=` in the text form).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Layout {
    /// docs/safety.md's mesh: every node's daemon lists the other nodes' daemons and every
    /// dedicated observer (`observers=` of them; 0 is the bare mesh).
    Mesh,
    /// Node daemons list the dedicated observers only (`allow_fragile_lease` set).
    Dedicated,
    /// Dedicated observers only, and each node daemon `i` leaves out observer `i % observers`
    /// (with 3 or more observers): different voter lists on purpose (`allow_fragile_lease`).
    Uneven,
}

/// Which invariants apply (`rules=` in the text form).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Rules {
    /// The rules of the classic draws.
    Classic,
    /// Also the one-authority invariants: no needless fence, and no acknowledged write lost to
    /// a split brain.
    Authority,
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
    pub layout: Layout,
    pub rules: Rules,
    /// Every promotion goes from the node's timeline n to n + 1 (`tl=equal`), as PostgreSQL
    /// does, instead of a globally unique timeline: two promotions from the same timeline give
    /// equal timelines.
    pub equal_timelines: bool,
    /// Promotions take 4.5-5.5 s (`promote=slow`: a trigger file polled every 5 s), not
    /// 0.1-1 s.
    pub slow_promote: bool,
    /// The default profile with `fence_command` on every node daemon and `fence_timeout`
    /// derived (`fence=1`); the fast profile always fences.
    pub fence_defaults: bool,
    /// `failover_command_timeout` in seconds, when set (`fct=`); else the default (120 s).
    pub failover_timeout: Option<Us>,
    /// Node daemons run with `rejoin_old_master` (`rejoin=1`): a replaced primary is rewound
    /// and started as a standby of the new one.
    pub rejoin: bool,
    /// `synchronous_mode` of every daemon (`sync=on:K`, `sync=strict:K`; off when absent), and
    /// `synchronous_node_count` K.
    pub sync: SynchronousMode,
    pub sync_k: u32,
}

/// How a campaign sets `synchronous_mode` (`--sync`): the same for every schedule, or drawn per
/// schedule (`Mixed`). Drawn from a stream of its own, after the schedule's draws: with `Off`
/// every schedule is what it was before the mode was modelled.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SyncDraw {
    #[default]
    Off,
    On,
    Strict,
    /// Per schedule: off (20 %), on (40 %) or strict (40 %).
    Mixed,
}

impl SyncDraw {
    pub fn parse(s: &str) -> Result<SyncDraw, String> {
        match s {
            "off" => Ok(SyncDraw::Off),
            "on" => Ok(SyncDraw::On),
            "strict" => Ok(SyncDraw::Strict),
            "mixed" => Ok(SyncDraw::Mixed),
            _ => Err(format!("bad sync mode {s:?} (off, on, strict or mixed)")),
        }
    }

    /// Sets schedule `s` (drawn from `seed`) to this mode; K is 1 (60 %) or any of 1 to the
    /// number of standbys. Nothing drawn with `Off`.
    pub fn apply(self, seed: u64, mut s: Schedule) -> Schedule {
        if self == SyncDraw::Off {
            return s;
        }
        // a stream of its own: the schedule's draws above are untouched
        let mut r = Rng::new(crate::rng::mix(seed, 0x5_1c_21));
        s.sync = match self {
            SyncDraw::On => SynchronousMode::On,
            SyncDraw::Strict => SynchronousMode::Strict,
            _ => match r.below(5) {
                0 => SynchronousMode::Off,
                1 | 2 => SynchronousMode::On,
                _ => SynchronousMode::Strict,
            },
        };
        // the standbys that may be listed: not the primary, not one never promoted
        let standbys = (s.nodes - 1 - usize::from(s.never_promote.is_some())) as u64;
        s.sync_k = if r.chance(60) || standbys == 0 {
            1
        } else {
            r.range(1, standbys + 1) as u32
        };
        if s.sync == SynchronousMode::Off || standbys == 0 {
            s.sync = SynchronousMode::Off;
            s.sync_k = 1;
        }
        s
    }
}

impl Schedule {
    pub fn daemons(&self) -> usize {
        self.nodes + self.observers
    }

    /// The node daemons run a fence command (from the start, or after a `fenceon` reload).
    pub fn fencing(&self) -> bool {
        self.profile == Profile::Fast || self.fence_defaults
    }

    /// A schedule with the classic defaults of the new header keys.
    pub fn classic(profile: Profile, nodes: usize, observers: usize) -> Schedule {
        Schedule {
            profile,
            nodes,
            observers,
            never_promote: None,
            autofollow: true,
            policy: None,
            intent: Intent::Chaos,
            end: 0,
            faults: Vec::new(),
            layout: Layout::Mesh,
            rules: Rules::Classic,
            equal_timelines: false,
            slow_promote: false,
            rejoin: false,
            fence_defaults: false,
            failover_timeout: None,
            sync: SynchronousMode::Off,
            sync_k: 1,
        }
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
        never_promote,
        autofollow,
        intent,
        ..Schedule::classic(profile, nodes, observers)
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

/// Which generator a campaign draws its schedules from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Draws {
    /// [`generate`]: the draws CI's campaign has always run (their seeds keep their schedules).
    Classic,
    /// [`generate_authority`]: the authority draws, checked with [`Rules::Authority`].
    Authority,
}

impl Draws {
    pub fn generate(self, seed: u64) -> Schedule {
        match self {
            Draws::Classic => generate(seed),
            Draws::Authority => generate_authority(seed),
        }
    }
}

/// The name of daemon `d` (node daemons carry their node's name).
pub fn daemon_name(s: &Schedule, d: usize) -> String {
    if d < s.nodes {
        format!("pg{d}")
    } else {
        format!("obs{}", d - s.nodes)
    }
}

/// The node daemons' voters for the fence and the promotion (one authority, docs/safety.md):
/// every observer of its config, plus itself when it lists a daemon for every other node.
pub fn voters(s: &Schedule, d: usize) -> Vec<usize> {
    let mut v: Vec<usize> = (0..s.daemons()).filter(|o| *o != d && lists(s, d, *o)).collect();
    if (0..s.nodes).all(|o| o == d || v.contains(&o)) {
        v.push(d);
        v.sort_unstable();
    }
    v
}

/// Whether node daemon `d`'s config lists daemon `o` as an observer.
pub fn lists(s: &Schedule, d: usize, o: usize) -> bool {
    if o == d || d >= s.nodes {
        return false;
    }
    match s.layout {
        Layout::Mesh => true,
        Layout::Dedicated => o >= s.nodes,
        Layout::Uneven => o >= s.nodes && (s.observers < 3 || o - s.nodes != d % s.observers),
    }
}

/// The authority draws: dedicated-observer layouts (up to 5 nodes and 5 observers, uneven voter
/// lists), the mesh with 0-5 extra observers, zone splits, cuts of the daemons' links to a
/// PostgreSQL while the WAL stream flows, fences that exit 0 and do nothing, a supervisor that
/// restarts a fenced node, equal timelines, whole-host freezes, 5 s promotions, db_time skew,
/// reloads that turn fencing on, the default profile with a fence command, and
/// `failover_command_timeout` short enough to matter.
pub fn generate_authority(seed: u64) -> Schedule {
    let mut r = Rng::new(seed);
    let profile = if r.chance(75) { Profile::Fast } else { Profile::Defaults };
    let k = scale(profile);
    let layout = match r.below(3) {
        0 => Layout::Mesh,
        1 => Layout::Dedicated,
        _ => Layout::Uneven,
    };
    let nodes = 2 + r.index(4);
    let observers = match layout {
        Layout::Mesh => r.index(6),
        _ => 1 + r.index(5),
    };
    let mut s = Schedule {
        layout,
        rules: Rules::Authority,
        never_promote: r.chance(10).then(|| 1 + r.index(nodes - 1)),
        autofollow: r.chance(70),
        equal_timelines: r.chance(40),
        slow_promote: r.chance(30),
        fence_defaults: profile == Profile::Defaults && r.chance(70),
        failover_timeout: r.chance(30).then(|| r.range(2, 10) * SEC * k),
        ..Schedule::classic(profile, nodes, observers)
    };
    let w = warmup(profile);
    let ms = |v: u64| v * MS * k;
    let roll = r.below(100);
    s.intent = if roll < 20 {
        Intent::Liveness
    } else if roll < 30 && profile == Profile::Fast {
        Intent::Blip
    } else {
        Intent::Chaos
    };
    match s.intent {
        Intent::Liveness => {
            let at = settled(profile) + ms(r.range(0, 1000));
            let cut = if r.chance(50) { Cut::Refuse } else { Cut::Blackhole };
            let kind = match r.below(4) {
                0 => FaultKind::KillNode(0),
                1 => FaultKind::FreezeNode(0),
                2 => FaultKind::HostFreeze(0),
                _ => FaultKind::Isolate { host: 0, cut },
            };
            let host_cut = matches!(kind, FaultKind::Isolate { .. } | FaultKind::HostFreeze(_));
            let lag_window = host_cut && layout == Layout::Mesh && nodes - 1 + observers < 3;
            let span = liveness_span(profile, lag_window) + if s.slow_promote { 5 * SEC } else { 0 };
            // past the end: the lost primary does not come back within the run
            let dur = if matches!(kind, FaultKind::KillNode(_)) {
                0
            } else {
                span + SEC
            };
            s.faults.push(Fault { at, dur, kind });
            s.end = at + span;
        }
        Intent::Blip => {
            let at = settled(profile) + ms(r.range(0, 1000));
            let cut = if r.chance(50) { Cut::Refuse } else { Cut::Blackhole };
            let dur = ms(r.range(100, 3000));
            s.faults.push(Fault {
                at,
                dur,
                kind: FaultKind::Isolate { host: 0, cut },
            });
            s.end = at + dur + 8 * SEC;
        }
        Intent::Chaos => {
            let n = 1 + r.index(4);
            let mut last = w + 18 * SEC * k;
            for _ in 0..n {
                let at = w + ms(r.range(0, 10_000));
                let mut dur = ms(r.range(200, 8000));
                let kind = if r.chance(70) {
                    authority_fault(&mut r, &s, k, &mut dur)
                } else {
                    chaos_fault(&mut r, &s, k)
                };
                let dur = if matches!(kind, FaultKind::KillNode(_) | FaultKind::FenceOn(_)) {
                    0
                } else {
                    dur
                };
                last = last.max(at + dur + 6 * SEC * k);
                s.faults.push(Fault { at, dur, kind });
            }
            s.faults.sort_by_key(|f| f.at);
            if s.faults.iter().any(|f| matches!(f.kind, FaultKind::FailoverLate(_))) {
                // a command timeout the run outlasts, then 10 s for the late promotion and 10 s
                // for the stall after it (world.rs)
                let fct = *s.failover_timeout.get_or_insert(r.range(2, 10) * SEC * k);
                last += fct + 20 * SEC;
            }
            s.end = last;
        }
    }
    if r.chance(30) {
        let caps: &[u64] = if s.intent == Intent::Chaos {
            &[4 << 10, 64 << 10, 1 << 20]
        } else {
            &[64 << 10, 1 << 20]
        };
        s.policy = Some(Policy {
            preferred: 1 + r.index(nodes - 1),
            cap: caps[r.index(caps.len())],
        });
    }
    // drawn last, so that every earlier draw stays what it was before rejoin was modelled
    s.rejoin = r.chance(30);
    s
}

/// One fault of the authority draws' kinds; may lengthen `dur` (a cut of 12-22 s).
fn authority_fault(r: &mut Rng, s: &Schedule, k: Us, dur: &mut Us) -> FaultKind {
    let hosts = s.daemons();
    // the primary is the usual target: pg0 until something promoted
    let node = if r.chance(60) { 0 } else { r.index(s.nodes) };
    let daemon = r.index(hosts);
    let cut = if r.chance(50) { Cut::Refuse } else { Cut::Blackhole };
    let signed = |r: &mut Rng, lo: u64, hi: u64| {
        let by = (r.range(lo, hi) * MS) as i64;
        if r.chance(50) {
            by
        } else {
            -by
        }
    };
    match r.below(12) {
        0 | 1 => {
            let mut side: Vec<usize> = (0..hosts).filter(|_| r.chance(50)).collect();
            if side.is_empty() || side.len() == hosts {
                side = vec![daemon];
            }
            FaultKind::Zone { side, cut }
        }
        2 | 3 => {
            // the other daemons' links to this node's PostgreSQL (all of them, or some), while
            // its WAL stream flows
            let mut pairs: Vec<(usize, usize)> = (0..hosts).filter(|h| *h != node).map(|h| (h, node)).collect();
            if r.chance(50) {
                let keep: Vec<(usize, usize)> = pairs.iter().copied().filter(|_| r.chance(50)).collect();
                if !keep.is_empty() {
                    pairs = keep;
                }
            }
            if r.chance(40) {
                *dur = r.range(12_000, 22_000) * MS * k;
            }
            FaultKind::DbLinks { pairs, cut }
        }
        4 => FaultKind::FenceNoop(node),
        5 => FaultKind::Revive(node),
        6 => FaultKind::HostFreeze(daemon),
        7 => FaultKind::DbSkew {
            node,
            by: signed(r, 1000, 10_000),
        },
        8 if s.fencing() => FaultKind::FenceOn(r.index(s.nodes)),
        9 => {
            // long enough for a failover to start inside it (the end of the run makes room for
            // the command timeout and the late promotion after it)
            *dur = r.range(5_000, 20_000) * MS * k;
            FaultKind::FailoverLate(r.index(s.nodes))
        }
        10 => FaultKind::ClockSkew {
            daemon,
            by: signed(r, 4000, 6000),
        },
        _ => FaultKind::RestartDaemon(daemon),
    }
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
            FaultKind::Zone { side, cut } => {
                let side: Vec<String> = side.iter().map(|h| h.to_string()).collect();
                write!(f, "zone:{}:{}", side.join(","), cut_name(*cut))?
            }
            FaultKind::DbLinks { pairs, cut } => {
                let p: Vec<String> = pairs.iter().map(|(a, b)| format!("{a}>{b}")).collect();
                write!(f, "dblinks:{}:{}", p.join(","), cut_name(*cut))?
            }
            FaultKind::FenceNoop(d) => write!(f, "xnoop:{d}")?,
            FaultKind::Revive(n) => write!(f, "revive:{n}")?,
            FaultKind::HostFreeze(h) => write!(f, "hfreeze:{h}")?,
            FaultKind::DbSkew { node, by } => {
                let sign = if *by < 0 { '-' } else { '+' };
                write!(f, "dbskew:{node}={sign}{}", t(by.unsigned_abs()))?
            }
            FaultKind::FenceOn(d) => write!(f, "fenceon:{d}")?,
            FaultKind::FailoverLate(d) => write!(f, "flate:{d}")?,
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
        // the keys of the authority draws, written only when they differ from the classic defaults
        // (so classic schedules keep their text)
        match self.layout {
            Layout::Mesh => {}
            Layout::Dedicated => write!(f, " layout=dedicated")?,
            Layout::Uneven => write!(f, " layout=uneven")?,
        }
        if self.rules == Rules::Authority {
            write!(f, " rules=authority")?;
        }
        if self.equal_timelines {
            write!(f, " tl=equal")?;
        }
        if self.slow_promote {
            write!(f, " promote=slow")?;
        }
        if self.fence_defaults {
            write!(f, " fence=1")?;
        }
        if let Some(x) = self.failover_timeout {
            write!(f, " fct={}", t(x))?;
        }
        if self.rejoin {
            write!(f, " rejoin=1")?;
        }
        match self.sync {
            SynchronousMode::Off => {}
            SynchronousMode::On => write!(f, " sync=on:{}", self.sync_k)?,
            SynchronousMode::Strict => write!(f, " sync=strict:{}", self.sync_k)?,
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

fn parse_signed(by: &str) -> Result<i64, String> {
    let (sign, rest) = match by.split_at_checked(1) {
        Some(("+", rest)) => (1, rest),
        Some(("-", rest)) => (-1, rest),
        _ => return Err(format!("skew {by:?}: +SECS or -SECS")),
    };
    Ok(sign * i64::try_from(parse_t(rest)?).map_err(|_| "skew too large")?)
}

fn parse_pairs(p: &str) -> Result<Vec<(usize, usize)>, String> {
    let mut pairs = Vec::new();
    for pair in p.split(',') {
        let (a, b) = pair.split_once('>').ok_or_else(|| format!("bad pair {pair:?}"))?;
        pairs.push((parse_n(a)?, parse_n(b)?));
    }
    Ok(pairs)
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
            FaultKind::ClockSkew {
                daemon: parse_n(d)?,
                by: parse_signed(by)?,
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
        "xnoop" => FaultKind::FenceNoop(parse_n(args)?),
        "revive" => FaultKind::Revive(parse_n(args)?),
        "hfreeze" => FaultKind::HostFreeze(parse_n(args)?),
        "fenceon" => FaultKind::FenceOn(parse_n(args)?),
        "flate" => FaultKind::FailoverLate(parse_n(args)?),
        "dbskew" => {
            let (n, by) = args.split_once('=').ok_or("dbskew:NODE=+SECS or -SECS")?;
            FaultKind::DbSkew {
                node: parse_n(n)?,
                by: parse_signed(by)?,
            }
        }
        "zone" => {
            let (side, c) = args.split_once(':').ok_or("zone:H,H,...:CUT")?;
            FaultKind::Zone {
                side: side.split(',').map(parse_n).collect::<Result<_, _>>()?,
                cut: parse_cut(c)?,
            }
        }
        "dblinks" => {
            let (p, c) = args.split_once(':').ok_or("dblinks:A>B,...:CUT")?;
            FaultKind::DbLinks {
                pairs: parse_pairs(p)?,
                cut: parse_cut(c)?,
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
            let pairs = parse_pairs(p)?;
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
        let mut sched = Schedule::classic(profile, 3, 1);
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
                "layout" => {
                    sched.layout = match v {
                        "mesh" => Layout::Mesh,
                        "dedicated" => Layout::Dedicated,
                        "uneven" => Layout::Uneven,
                        _ => return Err(format!("bad layout {v:?} (mesh, dedicated or uneven)")),
                    }
                }
                "rules" => {
                    sched.rules = match v {
                        "classic" => Rules::Classic,
                        "authority" => Rules::Authority,
                        _ => return Err(format!("bad rules {v:?} (classic or authority)")),
                    }
                }
                "tl" => {
                    sched.equal_timelines = match v {
                        "equal" => true,
                        "unique" => false,
                        _ => return Err(format!("bad tl {v:?} (equal or unique)")),
                    }
                }
                "promote" => {
                    sched.slow_promote = match v {
                        "slow" => true,
                        "fast" => false,
                        _ => return Err(format!("bad promote {v:?} (slow or fast)")),
                    }
                }
                "fence" => sched.fence_defaults = v == "1",
                "fct" => sched.failover_timeout = Some(parse_t(v)?),
                "rejoin" => sched.rejoin = v == "1",
                "sync" => {
                    let (mode, k) = v.split_once(':').unwrap_or((v, "1"));
                    sched.sync = match mode {
                        "off" => SynchronousMode::Off,
                        "on" => SynchronousMode::On,
                        "strict" => SynchronousMode::Strict,
                        _ => return Err(format!("bad sync {v:?} (off, on:K or strict:K)")),
                    };
                    sched.sync_k = k.parse().map_err(|_| format!("bad sync count {k:?}"))?;
                }
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
                FaultKind::Zone { side, .. } => !side.is_empty() && side.iter().all(|h| host_ok(*h)),
                FaultKind::DbLinks { pairs, .. } => pairs.iter().all(|(a, b)| host_ok(*a) && node_ok(*b)),
                FaultKind::FenceNoop(d)
                | FaultKind::Revive(d)
                | FaultKind::FenceOn(d)
                | FaultKind::FailoverLate(d)
                | FaultKind::DbSkew { node: d, .. } => node_ok(*d),
                FaultKind::HostFreeze(h) => host_ok(*h),
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
        let listable = self.nodes - 1 - usize::from(self.never_promote.is_some());
        if self.sync_k == 0 || (self.sync != SynchronousMode::Off && self.sync_k as usize > listable) {
            return Err("sync=MODE:K needs K from 1 to the number of standbys that may be promoted".into());
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
    fn authority_text_form_round_trips_and_old_strings_still_parse() {
        for seed in 0..500 {
            let s = generate_authority(seed);
            let text = s.to_string();
            assert_eq!(Schedule::parse(&text), Ok(s), "{text}");
        }
        let old = "fast nodes=3 observers=1 never=- follow=1 intent=chaos end=14.686 | restart:2@5.430+7.497 isolate:0:refuse@10.411+4.205 reload:2-0@12.681+1.629";
        let s = Schedule::parse(old).expect("parses");
        assert_eq!(
            (s.layout, s.rules, s.equal_timelines),
            (Layout::Mesh, Rules::Classic, false)
        );
        assert_eq!(s.to_string(), old);
    }

    #[test]
    fn sync_modes_round_trip_and_off_draws_nothing() {
        for seed in 0..300 {
            let plain = generate_authority(seed);
            assert_eq!(SyncDraw::Off.apply(seed, plain.clone()), plain);
            for draw in [SyncDraw::On, SyncDraw::Strict, SyncDraw::Mixed] {
                let s = draw.apply(seed, plain.clone());
                assert!(s.sync_k >= 1 && (s.sync_k as usize) < s.nodes);
                let text = s.to_string();
                assert_eq!(Schedule::parse(&text), Ok(s), "{text}");
            }
        }
    }

    #[test]
    fn voters_follow_the_layout() {
        let mut s = Schedule::classic(Profile::Fast, 3, 1);
        assert_eq!(voters(&s, 0), vec![0, 1, 2, 3]);
        s.layout = Layout::Dedicated;
        s.observers = 3;
        assert_eq!(voters(&s, 1), vec![3, 4, 5]);
        s.layout = Layout::Uneven;
        assert_eq!(voters(&s, 1), vec![3, 5]);
    }

    #[test]
    fn bad_text_says_what() {
        assert!(Schedule::parse("fast nodes=3 |  kill:7@1.0+0.0")
            .unwrap_err()
            .contains("kill:7"));
        assert!(Schedule::parse("slow |").unwrap_err().contains("profile"));
    }
}
