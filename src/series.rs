//! Lag and position over time, in memory: per node, a ring of recent samples at the poll
//! interval (the last [`RECENT_SECONDS`], at most [`RECENT_MAX`] samples) and a ring of older
//! ones downsampled to one per [`BUCKET_SECONDS`] (the largest lags and the last position of
//! each minute, for [`OLD_BUCKETS`] minutes); and a short list of marks (failovers, new masters,
//! fences). Owns the bounds (rings allocated once per node, never grown; a node gone from the
//! poller's snapshot loses its series), the samples taken from a completed poll round, and the
//! JSON answer of `GET /series` with its query. It does no I/O.

use crate::state::{connected_primary_lsn, Snapshot};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};
use std::collections::{BTreeMap, VecDeque};

/// How far back the full-resolution ring reaches (at most [`RECENT_MAX`] samples).
pub const RECENT_SECONDS: f64 = 600.0;
/// The full-resolution ring's largest capacity: at a poll interval under
/// `RECENT_SECONDS / RECENT_MAX` (5 s, the default) it covers less than [`RECENT_SECONDS`]
/// (2 minutes at 1 s). Memory at a thousand nodes is what bounds it (docs/performance.md).
pub const RECENT_MAX: usize = 120;
/// One downsampled point per this many seconds (aligned to the wall clock).
pub const BUCKET_SECONDS: f64 = 60.0;
/// Downsampled points kept: with [`BUCKET_SECONDS`], the last hour.
pub const OLD_BUCKETS: usize = 60;
/// Marks kept (the oldest dropped first).
pub const MAX_MARKS: usize = 64;

/// One node at one poll round, as taken and folded. `None`s are kept as sentinels. Stored as a
/// [`Packed`] of 20 bytes (this one is 32): at a thousand nodes the rings are most of what the
/// series cost (docs/performance.md).
#[derive(Clone, Copy, Debug, PartialEq)]
struct Sample {
    /// Wall clock, unix seconds.
    t: f64,
    /// NaN: unknown (a primary, a node not reached).
    lag_seconds: f32,
    /// [`NONE`]: unknown.
    lag_bytes: u64,
    position: u64,
}

const NONE: u64 = u64::MAX;

fn opt(v: u64) -> Option<u64> {
    (v != NONE).then_some(v)
}

impl Sample {
    fn lag_seconds(&self) -> Option<f64> {
        (!self.lag_seconds.is_nan()).then_some(f64::from(self.lag_seconds))
    }

    /// Folds a later sample into a downsampled point: the larger lags, the later position
    /// and time.
    fn fold(&mut self, s: &Sample) {
        self.t = s.t;
        self.lag_seconds = match (self.lag_seconds(), s.lag_seconds()) {
            (Some(a), Some(b)) => a.max(b) as f32,
            (a, b) => a.or(b).map_or(f32::NAN, |x| x as f32),
        };
        self.lag_bytes = match (opt(self.lag_bytes), opt(s.lag_bytes)) {
            (Some(a), Some(b)) => a.max(b),
            (a, b) => a.or(b).unwrap_or(NONE),
        };
        if s.position != NONE {
            self.position = s.position;
        }
    }
}

/// A [`Sample`] as a ring holds it: the time in milliseconds from the ring's base, the lag in
/// bytes as an `f32` (exact up to 16 MiB, to seven significant digits above: a chart's
/// precision), the position (exact) as two halves so that the whole is 4-aligned.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Packed {
    t_ms: i32,
    lag_seconds: f32,
    /// NaN: unknown.
    lag_bytes: f32,
    position: [u32; 2],
}

/// A ring's base moves when a time would be this far from it (about 12 days).
const REBASE_MS: f64 = (1u64 << 30) as f64;

impl Packed {
    fn new(s: &Sample, base: f64) -> Packed {
        Packed {
            t_ms: ((s.t - base) * 1000.0).round() as i32,
            lag_seconds: s.lag_seconds,
            lag_bytes: opt(s.lag_bytes).map_or(f32::NAN, |b| b as f32),
            position: [(s.position >> 32) as u32, s.position as u32],
        }
    }

    fn sample(&self, base: f64) -> Sample {
        Sample {
            t: base + f64::from(self.t_ms) / 1000.0,
            lag_seconds: self.lag_seconds,
            lag_bytes: if self.lag_bytes.is_nan() {
                NONE
            } else {
                (f64::from(self.lag_bytes).round() as u64).min(NONE - 1)
            },
            position: (u64::from(self.position[0]) << 32) | u64::from(self.position[1]),
        }
    }
}

fn bucket(t: f64) -> f64 {
    (t / BUCKET_SECONDS).floor()
}

/// One node's samples.
#[derive(Clone, Debug)]
struct Ring {
    /// What the packed times count from (unix seconds).
    base: f64,
    recent: VecDeque<Packed>,
    old: VecDeque<Packed>,
    /// The minute being downsampled, not yet in `old`.
    current: Option<Sample>,
}

fn push_bounded(ring: &mut VecDeque<Packed>, cap: usize, s: Packed) {
    while ring.len() >= cap.max(1) {
        ring.pop_front();
    }
    ring.push_back(s);
}

impl Ring {
    fn new(cap: usize, base: f64) -> Ring {
        Ring {
            base,
            recent: VecDeque::with_capacity(cap),
            old: VecDeque::with_capacity(OLD_BUCKETS),
            current: None,
        }
    }

    /// Moves the base to `base`, re-packing every sample (a time too far from the old one).
    fn rebase(&mut self, base: f64) {
        let old_base = self.base;
        for p in self.recent.iter_mut().chain(self.old.iter_mut()) {
            *p = Packed::new(&p.sample(old_base), base);
        }
        self.base = base;
    }

    fn push(&mut self, s: Sample, cap: usize) {
        if ((s.t - self.base) * 1000.0).abs() >= REBASE_MS {
            // the oldest sample kept is at most about an hour older: both fit
            self.rebase(s.t);
        }
        push_bounded(&mut self.recent, cap, Packed::new(&s, self.base));
        match &mut self.current {
            Some(c) if bucket(c.t) == bucket(s.t) => c.fold(&s),
            Some(c) => {
                let done = std::mem::replace(c, s);
                push_bounded(&mut self.old, OLD_BUCKETS, Packed::new(&done, self.base));
            }
            None => self.current = Some(s),
        }
    }

    /// Oldest first: the downsampled points older than the recent ring, then the recent ring.
    fn points(&self, since: f64) -> impl Iterator<Item = Sample> + Clone + '_ {
        let base = self.base;
        let first_recent = self.recent.front().map_or(f64::INFINITY, |p| p.sample(base).t);
        self.old
            .iter()
            .map(move |p| p.sample(base))
            .filter(move |s| s.t < first_recent)
            .chain(self.recent.iter().map(move |p| p.sample(base)))
            .filter(move |s| s.t >= since)
    }
}

/// An event drawn on the chart.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Mark {
    /// Unix seconds.
    pub t: f64,
    /// `failover` (this daemon's node promoted), `master_changed` (a new master seen) or
    /// `fence` (this daemon fenced its node).
    pub kind: &'static str,
    pub node: String,
}

/// Every node's series and the marks. Fed once per completed poll round ([`Series::record`]).
#[derive(Clone, Debug, Default)]
pub struct Series {
    nodes: BTreeMap<String, Ring>,
    marks: VecDeque<Mark>,
    recent_cap: usize,
    last_round: u64,
    /// A benchmark's knob: a node's rings are filled to capacity at its first sample (copies
    /// of it, at earlier times), so that memory can be measured with every series full.
    prefill: bool,
}

/// The full-resolution ring's capacity at a poll interval.
pub fn recent_capacity(poll_interval: f64) -> usize {
    let n = (RECENT_SECONDS / poll_interval.max(0.001)).ceil();
    (n as usize).clamp(2, RECENT_MAX)
}

impl Series {
    pub fn new(prefill: bool) -> Series {
        Series {
            prefill,
            ..Default::default()
        }
    }

    /// Takes one sample per node from `snap` at wall time `t` (unix seconds), if `snap` is a
    /// round not recorded yet; drops the series of nodes no longer in it. True if recorded.
    pub fn record(&mut self, snap: &Snapshot, t: f64, poll_interval: f64) -> bool {
        if snap.round == self.last_round {
            return false;
        }
        self.last_round = snap.round;
        let cap = recent_capacity(poll_interval);
        if cap != self.recent_cap {
            self.recent_cap = cap;
            for ring in self.nodes.values_mut() {
                while ring.recent.len() > cap {
                    ring.recent.pop_front();
                }
                ring.recent.shrink_to(cap);
                ring.recent.reserve_exact(cap - ring.recent.len());
            }
        }
        self.nodes.retain(|name, _| snap.nodes.contains_key(name));
        let primary = connected_primary_lsn(&snap.nodes);
        for (name, n) in &snap.nodes {
            let mut s = Sample {
                t,
                lag_seconds: f32::NAN,
                lag_bytes: NONE,
                position: NONE,
            };
            if let Some(pg) = n.pg.as_ref().filter(|_| n.connection) {
                let pos = if pg.pg_is_in_recovery {
                    pg.pg_last_xlog_replay_location.or(pg.pg_last_xlog_receive_location)
                } else {
                    pg.pg_last_xlog_replay_location
                };
                s.position = pos.map_or(NONE, |p| p.0.min(NONE - 1));
                if pg.pg_is_in_recovery {
                    s.lag_seconds = pg.replication_time_lag.map_or(f32::NAN, |l| l as f32);
                    if let (Some(p), Some(own)) = (primary, pos) {
                        s.lag_bytes = p.0.saturating_sub(own.0).min(NONE - 1);
                    }
                }
            }
            match self.nodes.get_mut(name) {
                Some(ring) => ring.push(s, cap),
                None => {
                    let mut ring = Ring::new(cap, t);
                    if self.prefill {
                        prefill(&mut ring, s, cap, poll_interval);
                    }
                    ring.push(s, cap);
                    self.nodes.insert(name.clone(), ring);
                }
            }
        }
        true
    }

    /// Adds a mark (the oldest goes when [`MAX_MARKS`] are held).
    pub fn mark(&mut self, t: f64, kind: &'static str, node: &str) {
        while self.marks.len() >= MAX_MARKS {
            self.marks.pop_front();
        }
        self.marks.push_back(Mark {
            t,
            kind,
            node: node.to_string(),
        });
    }

    /// What the series hold, computed from the capacities: the rings' buffers, the per-node
    /// entries and names, and the marks (the map's own tree nodes not counted).
    pub fn bytes(&self) -> usize {
        let sample = std::mem::size_of::<Packed>();
        let rings: usize = self
            .nodes
            .iter()
            .map(|(name, r)| {
                (r.recent.capacity() + r.old.capacity()) * sample
                    + std::mem::size_of::<Ring>()
                    + std::mem::size_of::<String>()
                    + name.capacity()
            })
            .sum();
        let marks: usize = self.marks.iter().map(|m| m.node.capacity()).sum::<usize>()
            + self.marks.capacity() * std::mem::size_of::<Mark>();
        rings + marks
    }

    /// The answer of `GET /series`: the limits, the series' [`Series::bytes`], each node's columns (`t`, `lag_seconds`,
    /// `lag_bytes`, `position`; oldest first, `null` where unknown) at or after `since`, and
    /// the marks at or after `since`.
    pub fn answer<'a>(&'a self, query: &'a Query, limits: Limits) -> impl Serialize + 'a {
        Answer {
            series: self,
            query,
            limits,
        }
    }

    /// Whether a node has a series.
    pub fn has(&self, node: &str) -> bool {
        self.nodes.contains_key(node)
    }
}

fn prefill(ring: &mut Ring, s: Sample, cap: usize, poll_interval: f64) {
    let start = s.t - cap as f64 * poll_interval;
    for k in 0..OLD_BUCKETS {
        let t = start - (OLD_BUCKETS - k) as f64 * BUCKET_SECONDS;
        push_bounded(&mut ring.old, OLD_BUCKETS, Packed::new(&Sample { t, ..s }, ring.base));
    }
    for k in 0..cap {
        let t = start + k as f64 * poll_interval;
        push_bounded(&mut ring.recent, cap, Packed::new(&Sample { t, ..s }, ring.base));
    }
}

/// The limits drawn as lines, seconds.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub warning: f64,
    pub failover: f64,
    /// The answer's `now` (unix seconds), the chart's right edge.
    pub now: f64,
}

/// The query of `GET /series`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Query {
    /// Unix seconds.
    pub since: Option<f64>,
    pub node: Option<String>,
}

/// `since` (unix seconds) and `node` (a node name), decoded by `query::parse` (a repeated
/// parameter is an error); an unknown parameter or a bad value is an error that says which.
pub fn parse_query(query: Option<&str>) -> Result<Query, String> {
    let mut q = Query::default();
    for (k, v) in crate::query::parse(query)? {
        match k.as_str() {
            "since" => {
                let t = v
                    .parse::<f64>()
                    .ok()
                    .filter(|t| t.is_finite() && *t >= 0.0)
                    .ok_or_else(|| format!("since: expected unix seconds (a number), got {v:?}"))?;
                q.since = Some(t);
            }
            "node" if !v.is_empty() => q.node = Some(v),
            "node" => return Err("node: expected a node name, got nothing".into()),
            _ => return Err(format!("unknown parameter {k:?} (since, node)")),
        }
    }
    Ok(q)
}

/// Milliseconds are enough on the wire.
fn ms(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

struct Answer<'a> {
    series: &'a Series,
    query: &'a Query,
    limits: Limits,
}

impl Serialize for Answer<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let since = self.query.since.unwrap_or(f64::NEG_INFINITY);
        let mut m = s.serialize_map(Some(6))?;
        m.serialize_entry("now", &ms(self.limits.now))?;
        m.serialize_entry("memory_bytes", &self.series.bytes())?;
        m.serialize_entry("warning_limit", &self.limits.warning)?;
        m.serialize_entry("failover_limit", &self.limits.failover)?;
        let nodes: BTreeMap<&str, Columns> = self
            .series
            .nodes
            .iter()
            .filter(|(name, _)| self.query.node.as_deref().is_none_or(|n| n == name.as_str()))
            .map(|(name, ring)| (name.as_str(), Columns { ring, since }))
            .collect();
        m.serialize_entry("nodes", &nodes)?;
        let marks: Vec<&Mark> = self.series.marks.iter().filter(|k| k.t >= since).collect();
        m.serialize_entry("marks", &marks)?;
        m.end()
    }
}

struct Columns<'a> {
    ring: &'a Ring,
    since: f64,
}

#[derive(Clone, Copy)]
enum Field {
    T,
    LagSeconds,
    LagBytes,
    Position,
}

struct Column<'a>(&'a Columns<'a>, Field);

impl Serialize for Columns<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(4))?;
        m.serialize_entry("t", &Column(self, Field::T))?;
        m.serialize_entry("lag_seconds", &Column(self, Field::LagSeconds))?;
        m.serialize_entry("lag_bytes", &Column(self, Field::LagBytes))?;
        m.serialize_entry("position", &Column(self, Field::Position))?;
        m.end()
    }
}

impl Serialize for Column<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let points = self.0.ring.points(self.0.since);
        let mut seq = s.serialize_seq(Some(points.clone().count()))?;
        for p in points {
            match self.1 {
                Field::T => seq.serialize_element(&ms(p.t))?,
                Field::LagSeconds => seq.serialize_element(&p.lag_seconds().map(ms))?,
                Field::LagBytes => seq.serialize_element(&opt(p.lag_bytes))?,
                Field::Position => seq.serialize_element(&opt(p.position))?,
            }
        }
        seq.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lsn::Lsn;
    use crate::state::{NodeState, PgFields, Timestamp};
    use serde_json::{json, Value};

    fn at() -> Timestamp {
        crate::state::parse_iso("2026-01-01T00:00:00Z").expect("t")
    }

    fn pg(recovery: bool, replay: u64, lag: Option<f64>) -> NodeState {
        let mut n = NodeState::new(at(), true);
        n.pg = Some(PgFields {
            db_time: Some(at()),
            pg_is_in_recovery: recovery,
            pg_last_xact_replay_timestamp: None,
            pg_last_xlog_receive_location: Some(Lsn(replay)),
            pg_last_xlog_replay_location: Some(Lsn(replay)),
            replication_time_lag: lag,
            replication_slots: None,
            timeline: None,
            startup_waiting_for_wal: None,
            sync: None,
            receiver_cut: None,
        });
        n
    }

    /// A round: pg1 primary at `primary`, pg2 a standby at `replay` with `lag` seconds.
    fn round(n: u64, primary: u64, replay: u64, lag: f64) -> Snapshot {
        let mut s = Snapshot {
            round: n,
            ..Default::default()
        };
        s.nodes.insert("pg1".into(), pg(false, primary, None));
        s.nodes.insert("pg2".into(), pg(true, replay, Some(lag)));
        s
    }

    fn answer(series: &Series, q: &Query) -> Value {
        let limits = Limits {
            warning: 30.0,
            failover: 120.0,
            now: 0.0,
        };
        serde_json::to_value(series.answer(q, limits)).expect("json")
    }

    #[test]
    fn a_round_gives_lag_in_seconds_and_bytes_and_positions() {
        let mut series = Series::default();
        assert!(series.record(&round(1, 1000, 400, 1.5), 100.0, 1.0));
        // the same round again is not a new sample
        assert!(!series.record(&round(1, 2000, 400, 9.0), 101.0, 1.0));
        let mut down = round(2, 1500, 400, 0.0);
        down.nodes.get_mut("pg2").expect("pg2").connection = false;
        assert!(series.record(&down, 101.0, 1.0));
        series.mark(100.5, "failover", "pg2");
        let v = answer(&series, &Query::default());
        assert_eq!(
            v["nodes"]["pg2"],
            json!({"t": [100.0, 101.0], "lag_seconds": [1.5, null], "lag_bytes": [600, null],
                   "position": [400, null]})
        );
        assert_eq!(
            v["nodes"]["pg1"],
            json!({"t": [100.0, 101.0], "lag_seconds": [null, null], "lag_bytes": [null, null],
                   "position": [1000, 1500]})
        );
        assert_eq!(v["marks"], json!([{"t": 100.5, "kind": "failover", "node": "pg2"}]));
        assert_eq!(
            (v["warning_limit"].clone(), v["failover_limit"].clone()),
            (json!(30.0), json!(120.0))
        );
        // since and node filter
        let q = Query {
            since: Some(100.7),
            node: Some("pg2".into()),
        };
        let v = answer(&series, &q);
        assert_eq!(
            v["nodes"],
            json!({"pg2": {"t": [101.0], "lag_seconds": [null], "lag_bytes": [null], "position": [null]}})
        );
        assert_eq!(v["marks"], json!([]));
    }

    #[test]
    fn memory_stays_bounded_and_old_samples_are_downsampled_per_minute() {
        assert_eq!(std::mem::size_of::<Packed>(), 20);
        let mut series = Series::default();
        let interval = 1.0;
        let cap = recent_capacity(interval);
        assert_eq!(cap, RECENT_MAX);
        // three hours of rounds, a lag of 50 s once a minute, 1 s otherwise
        let mut bytes = None;
        for i in 0..3 * 3600u64 {
            let t = 1_000_020.0 + i as f64;
            let lag = if i % 60 == 30 { 50.0 } else { 1.0 };
            series.record(&round(i + 1, 10_000 + i, 10_000, lag), t, interval);
            if i == 2 * 3600 {
                bytes = Some(series.bytes());
            }
            let ring = &series.nodes["pg2"];
            assert!(ring.recent.len() <= cap && ring.old.len() <= OLD_BUCKETS);
            assert!(ring.recent.capacity() < 2 * cap && ring.old.capacity() < 2 * OLD_BUCKETS);
        }
        assert_eq!(Some(series.bytes()), bytes, "no growth once full");
        let per_node = (cap + OLD_BUCKETS) * 20;
        assert!(
            (2 * per_node..2 * per_node + 512).contains(&series.bytes()),
            "{}",
            series.bytes()
        );
        let v = answer(&series, &Query::default());
        let ts: Vec<f64> = v["nodes"]["pg2"]["t"]
            .as_array()
            .expect("t")
            .iter()
            .filter_map(Value::as_f64)
            .collect();
        // the downsampled minutes older than the recent ring, then the recent ring
        let n_old = ts.len() - cap;
        assert!((OLD_BUCKETS - 5..OLD_BUCKETS).contains(&n_old), "{n_old}");
        assert!(ts.windows(2).all(|w| w[0] < w[1]), "oldest first, no overlap");
        assert!(ts[n_old..].windows(2).all(|w| w[1] - w[0] == interval));
        // the downsampled points are a minute apart and keep each minute's largest lag
        let old = &v["nodes"]["pg2"]["lag_seconds"].as_array().expect("lag")[..n_old];
        assert!(old.iter().all(|l| l == &json!(50.0)), "{old:?}");
        assert!(ts[..n_old].windows(2).all(|w| w[1] - w[0] == 60.0), "{ts:?}");
        // an hour back from the last sample
        let span = ts[ts.len() - 1] - ts[0];
        assert!((3540.0..=3600.0).contains(&span), "{span}");
        // a faster interval at a reload shrinks the recent ring to its new capacity
        series.record(&round(1_000_000, 1, 1, 0.0), 2e6, 10.0);
        assert_eq!(series.nodes["pg2"].recent.len(), recent_capacity(10.0));
        assert!(series.nodes["pg2"].recent.capacity() < 2 * recent_capacity(10.0));
    }

    /// A sample is stored in 20 bytes; positions stay exact, times exact to the millisecond
    /// (across a move of the base), lags in bytes exact to 16 MiB.
    #[test]
    fn packed_samples_keep_what_the_chart_shows() {
        let s = Sample {
            t: 1_700_000_000.123,
            lag_seconds: 1.5,
            lag_bytes: 600,
            position: 0x0000_0123_89AB_CDEF,
        };
        let base = 1_700_000_000.0;
        let back = Packed::new(&s, base).sample(base);
        assert_eq!((ms(back.t), back.lag_bytes, back.position), (ms(s.t), 600, s.position));
        let unknown = Sample {
            lag_seconds: f32::NAN,
            lag_bytes: NONE,
            position: NONE,
            ..s
        };
        let back = Packed::new(&unknown, base).sample(base);
        assert_eq!((back.lag_seconds(), back.lag_bytes, back.position), (None, NONE, NONE));
        for b in [(1u64 << 24) - 1, 5_000_000_000] {
            let back = Packed::new(&Sample { lag_bytes: b, ..s }, base).sample(base);
            assert!(back.lag_bytes.abs_diff(b) <= b / 8_000_000, "{b}: {}", back.lag_bytes);
        }
        // thirteen days of rounds a minute apart: the base moves, the times stay right
        let mut ring = Ring::new(RECENT_MAX, base);
        for i in 0..13 * 24 * 60 {
            ring.push(
                Sample {
                    t: base + 60.0 * f64::from(i),
                    ..s
                },
                RECENT_MAX,
            );
        }
        assert!(ring.base > base);
        let last = ring.points(0.0).last().expect("points");
        assert_eq!(ms(last.t), ms(base + 60.0 * f64::from(13 * 24 * 60 - 1)));
        let ts: Vec<f64> = ring.points(0.0).map(|p| p.t).collect();
        assert!(ts.windows(2).all(|w| ms(w[1] - w[0]) == 60.0), "{ts:?}");
    }

    #[test]
    fn a_node_removed_from_the_config_loses_its_series() {
        let mut series = Series::default();
        series.record(&round(1, 10, 10, 0.0), 1.0, 1.0);
        let mut only_pg1 = round(2, 10, 10, 0.0);
        only_pg1.nodes.remove("pg2");
        series.record(&only_pg1, 2.0, 1.0);
        assert!(series.has("pg1") && !series.has("pg2"));
        let v = answer(&series, &Query::default());
        assert_eq!(v["nodes"].as_object().map(|o| o.len()), Some(1));
    }

    #[test]
    fn marks_are_bounded() {
        let mut series = Series::default();
        for i in 0..3 * MAX_MARKS {
            series.mark(i as f64, "fence", "pg1");
        }
        assert_eq!(series.marks.len(), MAX_MARKS);
        assert_eq!(series.marks.front().map(|m| m.t), Some((2 * MAX_MARKS) as f64));
    }

    #[test]
    fn prefill_fills_every_ring_at_the_first_sample() {
        let mut series = Series::new(true);
        series.record(&round(1, 10, 10, 0.5), 1e6, 1.0);
        let ring = &series.nodes["pg2"];
        assert_eq!((ring.recent.len(), ring.old.len()), (RECENT_MAX, OLD_BUCKETS));
        let v = answer(&series, &Query::default());
        assert_eq!(
            v["nodes"]["pg2"]["t"].as_array().map(Vec::len),
            Some(RECENT_MAX + OLD_BUCKETS)
        );
        assert_eq!(v["nodes"]["pg2"]["t"][RECENT_MAX + OLD_BUCKETS - 1], json!(1e6));
    }

    #[test]
    fn the_series_query_is_checked() {
        assert_eq!(parse_query(None), Ok(Query::default()));
        assert_eq!(
            parse_query(Some("since=1700000000.5&node=pg%202")),
            Ok(Query {
                since: Some(1_700_000_000.5),
                node: Some("pg 2".into())
            })
        );
        assert_eq!(
            parse_query(Some("%73ince=1&node=pg+2")),
            Ok(Query {
                since: Some(1.0),
                node: Some("pg 2".into())
            })
        );
        assert_eq!(
            parse_query(Some("node=pg1&node=pg2")),
            Err("node: given more than once".to_string())
        );
        for bad in ["since=yesterday", "since=-1", "since=inf", "node=", "node=%zz", "lag=3"] {
            assert!(parse_query(Some(bad)).is_err(), "{bad}");
        }
    }
}
