//! The simulated PostgreSQL servers: process state (running, killed, frozen, fenced,
//! restarting), role (primary, standby, promoting), timeline, WAL position, and streaming
//! replication that follows the primary with a lag. Owns what a probe of a node answers
//! ([`Cluster::fields`]) and which nodes take writes ([`Cluster::writable`]). Knows nothing of
//! the daemons.

pub use crate::event::{Proc, Role};
use crate::{secs, Us};
use pglookout::lsn::Lsn;
use pglookout::state::{PgFields, SyncReplication, Timestamp, WalSender};
use pglookout::sync_names::SyncNames;

/// One WAL record that committed: (when, position after it).
#[derive(Clone, Copy, Debug)]
struct Commit {
    at: Us,
    lsn: u64,
}

#[derive(Clone, Debug)]
pub struct Node {
    pub name: String,
    pub proc: Proc,
    pub role: Role,
    /// The timeline it writes (a primary) or replays (a standby).
    pub timeline: u32,
    /// Primary: current position. Standby: received (= replayed) position.
    pub lsn: u64,
    /// When the last commit at or before `lsn` was made (the replay timestamp).
    pub commit_at: Us,
    /// Where its timeline branched off (a promoted node), for following it.
    pub fork: u64,
    /// A standby ahead of its new primary's fork point cannot stream from it (needs pg_rewind).
    pub diverged: bool,
    /// How far behind its primary a standby replays.
    pub lag: Us,
    /// A primary's commits on its timeline, oldest first.
    history: Vec<Commit>,
    /// Its `synchronous_standby_names` (`postgresql.auto.conf`: kept across restarts, fences,
    /// rejoins and promotions; `""`: asynchronous), and that value parsed.
    pub sync_names: String,
    sync_parsed: Option<SyncNames>,
    /// A primary's client commits (their positions) in the WAL and not acknowledged yet: they
    /// wait for the synchronous standbys. Dropped when the process stops.
    pub waiting: Vec<u64>,
}

#[derive(Clone, Debug)]
pub struct Cluster {
    pub nodes: Vec<Node>,
    /// The last timeline handed out.
    pub max_timeline: u32,
    /// Wall clock at simulated time 0.
    pub epoch: Timestamp,
    /// A promotion goes from the node's timeline n to n + 1 (PostgreSQL's rule), instead of
    /// past every timeline handed out so far.
    pub equal_timelines: bool,
    /// Per node: how far its clock (`now()`) is off from the daemons' (microseconds).
    pub skew: Vec<i64>,
}

/// A standby's base replication delay.
pub const BASE_LAG: Us = 20_000;

impl Cluster {
    /// Node 0 is the primary on timeline 1, the others stream from it and are caught up.
    pub fn new(nodes: usize, epoch: Timestamp) -> Self {
        let nodes: Vec<Node> = (0..nodes)
            .map(|i| Node {
                name: format!("pg{i}"),
                proc: Proc::Running,
                role: if i == 0 {
                    Role::Primary
                } else {
                    Role::Standby { upstream: Some(0) }
                },
                timeline: 1,
                lsn: 0x100_0000,
                commit_at: 0,
                fork: 0,
                diverged: false,
                lag: BASE_LAG,
                history: if i == 0 {
                    vec![Commit { at: 0, lsn: 0x100_0000 }]
                } else {
                    Vec::new()
                },
                sync_names: String::new(),
                sync_parsed: None,
                waiting: Vec::new(),
            })
            .collect();
        let n = nodes.len();
        Cluster {
            nodes,
            max_timeline: 1,
            epoch,
            equal_timelines: false,
            skew: vec![0; n],
        }
    }

    pub fn wall(&self, t: Us, offset_us: i64) -> Timestamp {
        self.epoch + chrono::Duration::microseconds(t as i64 + offset_us)
    }

    /// Takes writes: a finished primary whose process runs.
    pub fn writable(&self, n: usize) -> bool {
        let node = &self.nodes[n];
        node.role == Role::Primary && node.proc == Proc::Running
    }

    /// Answers connections and queries.
    pub fn answers(&self, n: usize) -> bool {
        self.nodes[n].proc == Proc::Running
    }

    /// A commit on a writable node (a client write or a daemon's `txid_current()` heartbeat):
    /// the position after it, or `None` when the node takes no writes.
    pub fn write(&mut self, n: usize, t: Us, bytes: u64) -> Option<u64> {
        if !self.writable(n) {
            return None;
        }
        let node = &mut self.nodes[n];
        node.lsn += bytes;
        node.commit_at = t;
        node.history.push(Commit { at: t, lsn: node.lsn });
        Some(node.lsn)
    }

    /// Moves every streaming standby up to what its primary had committed `lag` ago.
    /// `connected(standby, primary)` says whether the replication connection gets through.
    pub fn replicate(&mut self, t: Us, connected: impl Fn(usize, usize) -> bool) {
        for s in 0..self.nodes.len() {
            let Role::Standby { upstream: Some(p) } = self.nodes[s].role else {
                continue;
            };
            if p == s || !self.answers(s) || !self.writable(p) || !connected(s, p) || self.nodes[s].diverged {
                continue;
            }
            let (p_tl, p_fork) = (self.nodes[p].timeline, self.nodes[p].fork);
            let standby = &self.nodes[s];
            if p_tl < standby.timeline {
                continue;
            }
            if p_tl > standby.timeline {
                // recovery_target_timeline = 'latest': it switches if it has not gone past the fork
                if standby.lsn > p_fork {
                    self.nodes[s].diverged = true;
                    continue;
                }
                self.nodes[s].timeline = p_tl;
            }
            let horizon = t.saturating_sub(self.nodes[s].lag);
            let target = self.nodes[p].history.iter().rev().find(|c| c.at <= horizon).copied();
            if let Some(c) = target {
                let standby = &mut self.nodes[s];
                if c.lsn > standby.lsn {
                    standby.lsn = c.lsn;
                    standby.commit_at = c.at;
                }
            }
        }
    }

    /// `pg_rewind` of node `n` from primary `m`: what `n` wrote past `m`'s fork point is gone,
    /// and it is a standby of `m` on `m`'s timeline.
    pub fn rewind(&mut self, n: usize, m: usize) {
        let (timeline, fork) = (self.nodes[m].timeline, self.nodes[m].fork);
        let node = &mut self.nodes[n];
        node.role = Role::Standby { upstream: Some(m) };
        node.timeline = timeline;
        node.lsn = node.lsn.min(fork);
        node.diverged = false;
        node.history.clear();
        node.waiting.clear();
    }

    /// `pg_ctl promote` finished: a new timeline begins at the node's position.
    pub fn finish_promotion(&mut self, n: usize, t: Us) -> bool {
        if self.nodes[n].role != Role::Promoting || !self.answers(n) {
            if self.nodes[n].role == Role::Promoting {
                self.nodes[n].role = Role::Standby { upstream: None };
            }
            return false;
        }
        self.max_timeline += 1;
        let tl = if self.equal_timelines {
            self.nodes[n].timeline + 1
        } else {
            self.max_timeline
        };
        let node = &mut self.nodes[n];
        node.role = Role::Primary;
        node.timeline = tl;
        node.fork = node.lsn;
        node.diverged = false;
        node.history = vec![Commit { at: t, lsn: node.lsn }];
        node.waiting.clear();
        true
    }

    /// `ALTER SYSTEM SET synchronous_standby_names` and a reload on node `n` (`""`: asynchronous,
    /// which releases every commit waiting).
    pub fn set_sync_names(&mut self, n: usize, value: &str) {
        let node = &mut self.nodes[n];
        node.sync_names = value.to_string();
        node.sync_parsed = pglookout::sync_names::parse(value).ok().flatten();
    }

    /// The nodes node `n`'s `synchronous_standby_names` lists (bit mask), if it lists any.
    pub fn listed(&self, n: usize) -> Option<u64> {
        let names = self.nodes[n].sync_parsed.as_ref()?;
        Some(
            (0..self.nodes.len())
                .filter(|s| names.lists(&self.nodes[*s].name))
                .fold(0u64, |m, s| m | 1 << s),
        )
    }

    /// Whether node `n` acknowledges commits only once standbys flushed them.
    pub fn synchronous(&self, n: usize) -> bool {
        self.nodes[n].sync_parsed.is_some()
    }

    /// Whether standby `s` streams from primary `p` now (`connected`: its replication
    /// connection gets through): running, following `p` on `p`'s timeline, not diverged.
    pub fn streams(&self, s: usize, p: usize, connected: impl Fn(usize, usize) -> bool) -> bool {
        let node = &self.nodes[s];
        s != p
            && node.role == (Role::Standby { upstream: Some(p) })
            && self.answers(s)
            && !node.diverged
            && self.writable(p)
            && node.timeline == self.nodes[p].timeline
            && connected(s, p)
    }

    /// The commits of primary `p` that may be acknowledged now: every waiting one when its
    /// setting is asynchronous, else those that `num_sync` of the listed standbys streaming
    /// from it have flushed (`FIRST` counted as `ANY`: the daemon only sets `ANY`).
    pub fn release(&mut self, p: usize, connected: impl Fn(usize, usize) -> bool) -> Vec<u64> {
        if self.nodes[p].waiting.is_empty() || !self.writable(p) {
            return Vec::new();
        }
        let upto = match &self.nodes[p].sync_parsed {
            None => u64::MAX,
            Some(names) => {
                let mut flushed: Vec<u64> = (0..self.nodes.len())
                    .filter(|s| names.lists(&self.nodes[*s].name) && self.streams(*s, p, &connected))
                    .map(|s| self.nodes[s].lsn)
                    .collect();
                flushed.sort_unstable_by(|a, b| b.cmp(a));
                match (names.num_sync as usize).checked_sub(1).and_then(|i| flushed.get(i)) {
                    Some(lsn) => *lsn,
                    None => return Vec::new(),
                }
            }
        };
        let waiting = &mut self.nodes[p].waiting;
        let n = waiting.partition_point(|lsn| *lsn <= upto);
        waiting.drain(..n).collect()
    }

    /// What primary `p`'s `pg_stat_replication` and settings read now.
    pub fn sync_fields(&self, p: usize, connected: impl Fn(usize, usize) -> bool) -> SyncReplication {
        let names = &self.nodes[p].sync_parsed;
        let senders = (0..self.nodes.len())
            .filter(|s| self.streams(*s, p, &connected))
            .map(|s| {
                let lsn = Some(Lsn(self.nodes[s].lsn));
                let listed = names.as_ref().is_some_and(|n| n.lists(&self.nodes[s].name));
                WalSender {
                    application_name: Some(self.nodes[s].name.clone()),
                    state: Some("streaming".into()),
                    sync_state: Some(if listed { "quorum" } else { "async" }.into()),
                    sync_priority: Some(i64::from(listed)),
                    sent_lsn: lsn,
                    write_lsn: lsn,
                    flush_lsn: lsn,
                    replay_lsn: lsn,
                }
            })
            .collect();
        SyncReplication {
            synchronous_standby_names: Some(self.nodes[p].sync_names.clone()),
            synchronous_commit: Some("on".into()),
            pg_stat_replication: senders,
        }
    }

    /// What a successful probe at `t` reads, as the daemon's poller builds it.
    pub fn fields(&self, n: usize, t: Us) -> PgFields {
        let node = &self.nodes[n];
        let db_time = self.wall(t, self.skew[n]);
        let in_recovery = node.role != Role::Primary;
        if in_recovery {
            // the commit timestamp is the writing primary's clock
            let writer = match node.role {
                Role::Standby { upstream: Some(p) } => p,
                _ => n,
            };
            let replay = self.wall(node.commit_at, self.skew[writer]);
            PgFields {
                db_time: Some(db_time),
                pg_is_in_recovery: true,
                pg_last_xact_replay_timestamp: Some(replay),
                pg_last_xlog_receive_location: Some(Lsn(node.lsn)),
                pg_last_xlog_replay_location: Some(Lsn(node.lsn)),
                replication_time_lag: Some(secs(t.saturating_sub(node.commit_at))),
                replication_slots: None,
                timeline: None,
                // a standby waits for WAL between records; a promotion under way does not
                startup_waiting_for_wal: Some(matches!(node.role, Role::Standby { .. })),
                sync: None,
                // PostgreSQL 13 and later: no primary_conninfo, no WAL receiver
                receiver_cut: Some(!matches!(node.role, Role::Standby { upstream: Some(_) })),
            }
        } else {
            PgFields {
                db_time: Some(db_time),
                pg_is_in_recovery: false,
                pg_last_xact_replay_timestamp: None,
                pg_last_xlog_receive_location: None,
                pg_last_xlog_replay_location: Some(Lsn(node.lsn)),
                replication_time_lag: None,
                replication_slots: Some(Vec::new()),
                timeline: Some(node.timeline),
                startup_waiting_for_wal: None,
                sync: None,
                receiver_cut: None,
            }
        }
    }
}
