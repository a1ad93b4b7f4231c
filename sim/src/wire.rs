//! What a `/state.json` round trip does to a node map, without the bytes. Owns the shortcut
//! for `observer::parse_answer(&statefile::to_pretty_json(nodes))` on a map a simulated daemon
//! serves: the fetching daemon reads back every entry, with its times cut to microseconds and
//! its numbers as the JSON text gives them back.
//!
//! Writing and reading that JSON was two thirds of the simulator's run time, for a result
//! that is, field by field, a copy. [`read_back`] builds the same map directly and answers
//! `None` for whatever it cannot vouch for (a time outside years 1-9999, a replication slot),
//! so that the caller takes the bytes' way then. The test at the end of `world.rs` compares
//! both ways on every fetch of hundreds of schedules.

use pglookout::state::{NodeState, Timestamp};
use std::collections::BTreeMap;

/// The map a daemon reads from the JSON we serialize for `nodes`, or `None` when the shortcut
/// cannot be sure (the caller then serializes and parses).
pub fn read_back(nodes: &BTreeMap<String, NodeState>) -> Option<BTreeMap<String, NodeState>> {
    read_back_owned(nodes.clone())
}

/// [`read_back`] of a map the caller owns, changed in place (a served map with the daemon's
/// own word in it is a copy already: no second one).
pub fn read_back_owned(mut nodes: BTreeMap<String, NodeState>) -> Option<BTreeMap<String, NodeState>> {
    for n in nodes.values_mut() {
        entry(n)?;
    }
    Some(nodes)
}

/// One entry, changed in place into what `NodeState::from_json` reads of what its
/// `Serialize` wrote.
fn entry(n: &mut NodeState) -> Option<()> {
    if let Some(p) = &mut n.pg {
        // slots go through serde's derive both ways: only the empty list (every simulated
        // primary's) is taken here, any other is left to the bytes
        if p.replication_slots.as_ref().is_some_and(|s| !s.is_empty()) {
            return None;
        }
        p.db_time = opt_time(p.db_time)?;
        p.pg_last_xact_replay_timestamp = opt_time(p.pg_last_xact_replay_timestamp)?;
        p.replication_time_lag = number(p.replication_time_lag)?;
        // served only when true
        p.receiver_cut = p.receiver_cut.filter(|c| *c);
    }
    if let Some(f) = &mut n.failover {
        f.since = time(f.since)?;
    }
    n.fetch_time = time(n.fetch_time)?;
    n.min_replication_time_lag = number(n.min_replication_time_lag)?;
    n.replication_start_time = number(n.replication_start_time)?;
    Some(())
}

/// `parse_iso(&iso(t))`: `iso` writes six fraction digits (cut, not rounded) and `parse_iso`
/// reads them back exactly, for four-digit years and no leap second.
fn time(t: Timestamp) -> Option<Timestamp> {
    use chrono::{Datelike, Timelike};
    // the UTC fields directly: `Timestamp`'s own accessors convert to its (zero) offset first
    let naive = t.naive_utc();
    let nanos = naive.nanosecond();
    if !(1..=9999).contains(&naive.year()) || nanos >= 1_000_000_000 {
        return None;
    }
    if nanos % 1000 == 0 {
        // whole microseconds already (every simulated time): nothing to cut
        return Some(t);
    }
    t.with_nanosecond(nanos / 1000 * 1000)
}

fn opt_time(t: Option<Timestamp>) -> Option<Option<Timestamp>> {
    match t {
        None => Some(None),
        Some(t) => time(t).map(Some),
    }
}

/// A number as serde_json writes and reads it back: `null` (so `None`) when not finite, else
/// its text read by serde_json's own parser (which, without the `float_roundtrip` feature,
/// need not give back the very same bits; the same code gives the same answer).
fn number(x: Option<f64>) -> Option<Option<f64>> {
    let Some(x) = x else {
        return Some(None);
    };
    if !x.is_finite() {
        return Some(None);
    }
    // The same numbers come back again and again (a standby's replication_start_time in
    // every answer that lists it): the last reading of each is remembered, per thread. A slot
    // holds a number and its reading; the zeroed table is right from the start, as 0.0 reads
    // back as 0.0.
    const SLOTS: usize = 1024;
    thread_local! {
        static READ: std::cell::RefCell<Vec<(u64, u64)>> = std::cell::RefCell::new(vec![(0, 0); SLOTS]);
    }
    let bits = x.to_bits();
    let slot = (bits.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 54) as usize % SLOTS;
    if let Some(read) = READ.with_borrow(|t| t.get(slot).filter(|(b, _)| *b == bits).map(|(_, r)| *r)) {
        return Some(Some(f64::from_bits(read)));
    }
    let read = number_text(x)?;
    READ.with_borrow_mut(|t| {
        if let Some(s) = t.get_mut(slot) {
            *s = (bits, read.to_bits());
        }
    });
    Some(Some(read))
}

/// A finite number through serde_json's text: written, then read back by its parser.
fn number_text(x: f64) -> Option<f64> {
    let mut buf = [0u8; 64];
    let len = {
        let mut w = &mut buf[..];
        serde_json::to_writer(&mut w, &x).ok()?;
        64 - w.len()
    };
    let v: serde_json::Value = serde_json::from_slice(&buf[..len]).ok()?;
    v.as_f64()
}

#[cfg(test)]
mod tests {
    use super::read_back;
    use pglookout::state::{FailoverPhase, FailoverStatus, NodeState, PgFields, ReplicationSlot};
    use std::collections::BTreeMap;

    fn bytes(nodes: &BTreeMap<String, NodeState>) -> BTreeMap<String, NodeState> {
        let body = pglookout::statefile::to_pretty_json(nodes).expect("json");
        pglookout::poll::observer::parse_answer(&body).expect("answer").0
    }

    /// What the simulated runs never produce: times finer than a microsecond, numbers that are
    /// not finite or have seventeen digits.
    #[test]
    fn the_shortcut_reads_what_the_bytes_read() {
        let t = chrono::DateTime::from_timestamp(1_704_067_200, 123_456_789).expect("t");
        let pg = |recovery: bool, lag: f64| PgFields {
            db_time: Some(t),
            pg_is_in_recovery: recovery,
            pg_last_xact_replay_timestamp: recovery.then_some(t),
            pg_last_xlog_receive_location: Some(pglookout::lsn::Lsn(0x1_0000_2488)),
            pg_last_xlog_replay_location: Some(pglookout::lsn::Lsn(u64::MAX)),
            replication_time_lag: Some(lag),
            replication_slots: (!recovery).then(Vec::new),
            timeline: (!recovery).then_some(7),
            startup_waiting_for_wal: recovery.then_some(true),
            sync: None,
            receiver_cut: Some(recovery && lag > 1.0),
        };
        let mut nodes = BTreeMap::new();
        for (i, x) in [
            0.1 + 0.2,
            f64::NAN,
            f64::INFINITY,
            -0.0,
            1e300,
            5e-324,
            0.30000000000000004,
        ]
        .into_iter()
        .enumerate()
        {
            let mut n = NodeState::new(t, i % 2 == 0);
            n.pg = Some(pg(i % 3 != 0, x));
            n.min_replication_time_lag = Some(x / 3.0);
            n.replication_start_time = Some(1_234.567_890_123_456 * x);
            n.failover = (i == 1).then(|| FailoverStatus {
                phase: FailoverPhase::Promoting,
                master: None,
                reason: "a \"quoted\"\nreason ✓".into(),
                since: t,
                standing: false,
            });
            n.voters = (i == 2).then(|| "0123456789ab".into());
            nodes.insert(format!("pg{i}"), n);
        }
        nodes.insert("never".into(), NodeState::new(t, false));
        assert_eq!(read_back(&nodes), Some(bytes(&nodes)));
        // a slot is left to the bytes
        if let Some(pg) = nodes.get_mut("pg1").and_then(|n| n.pg.as_mut()) {
            pg.replication_slots = Some(vec![ReplicationSlot::default()]);
        }
        assert_eq!(read_back(&nodes), None);
    }
}
