//! Health checks for load balancers and supervisors (`/primary`, `/replica`, `/health`,
//! `/liveness`): pure functions of the config and the poller's snapshot, so every rule is a
//! table test. The HTTP layer turns a [`Verdict`] into 200 or 503 with a small JSON body.

use crate::config::Config;
use crate::poll::Snapshot;
use serde::Serialize;

/// The answer to one health question.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    pub ok: bool,
    pub reason: String,
}

fn yes(reason: impl Into<String>) -> Verdict {
    Verdict {
        ok: true,
        reason: reason.into(),
    }
}
fn no(reason: impl Into<String>) -> Verdict {
    Verdict {
        ok: false,
        reason: reason.into(),
    }
}

/// A lag limit from `?lag=`: seconds (`10s`, `500ms`, `2min`, `1h`) or bytes (`16MB`, `1GB`,
/// `4096`, `8kB`; a bare number is bytes, as in Patroni; units are powers of 1024 as in
/// PostgreSQL).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LagLimit {
    Seconds(f64),
    Bytes(u64),
}

pub fn parse_lag(text: &str) -> Result<LagLimit, String> {
    let t = text.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("lag {text:?}: expected a number with a unit such as 10s or 16MB"))?;
    if !n.is_finite() || n < 0.0 {
        return Err(format!("lag {text:?}: must not be negative"));
    }
    let bytes = |mult: f64| LagLimit::Bytes((n * mult) as u64);
    Ok(match unit.trim() {
        "" | "B" => bytes(1.0),
        "kB" | "KB" | "k" => bytes(1024.0),
        "MB" | "M" => bytes(1024.0 * 1024.0),
        "GB" | "G" => bytes(1024.0 * 1024.0 * 1024.0),
        "TB" => bytes(1024.0 * 1024.0 * 1024.0 * 1024.0),
        "ms" => LagLimit::Seconds(n / 1000.0),
        "s" => LagLimit::Seconds(n),
        "min" | "m" => LagLimit::Seconds(n * 60.0),
        "h" => LagLimit::Seconds(n * 3600.0),
        other => {
            return Err(format!(
                "lag {text:?}: unknown unit {other:?} (use ms, s, min, h, B, kB, MB, GB)"
            ))
        }
    })
}

const OBSERVER: &str = "this daemon is an observer: it has no database of its own";

/// `/health`: our own node answers.
pub fn health(config: &Config, snap: &Snapshot) -> Verdict {
    let Some(own) = config.own_db.as_deref() else {
        return no(OBSERVER);
    };
    match snap.nodes.get(own) {
        Some(n) if n.connection => yes(format!("{own} answers")),
        Some(_) => no(format!("{own} does not answer")),
        None => no(format!("{own} has not been polled yet")),
    }
}

/// `/primary`: our own node is a connected primary and no other node is seen as one.
pub fn primary(config: &Config, snap: &Snapshot) -> Verdict {
    let Some(own) = config.own_db.as_deref() else {
        return no(OBSERVER);
    };
    let Some(node) = snap.nodes.get(own) else {
        return no(format!("{own} has not been polled yet"));
    };
    if !node.connection {
        return no(format!("{own} does not answer"));
    }
    if node.in_recovery() != Some(false) {
        return no(format!("{own} is a standby"));
    }
    let others: Vec<&str> = snap
        .nodes
        .iter()
        .filter(|(name, n)| name.as_str() != own && n.connection && n.in_recovery() == Some(false))
        .map(|(name, _)| name.as_str())
        .collect();
    if !others.is_empty() {
        return no(format!("other primaries are seen too: {}", others.join(", ")));
    }
    yes(format!("{own} is the primary"))
}

/// `/replica`: our own node is a connected standby, within `lag` if given. Byte lag is the
/// primary's current position minus our replay position, both from our own latest polls.
pub fn replica(config: &Config, snap: &Snapshot, lag: Option<LagLimit>) -> Verdict {
    let Some(own) = config.own_db.as_deref() else {
        return no(OBSERVER);
    };
    let Some(node) = snap.nodes.get(own) else {
        return no(format!("{own} has not been polled yet"));
    };
    let Some(pg) = node.pg.as_ref().filter(|_| node.connection) else {
        return no(format!("{own} does not answer"));
    };
    if !pg.pg_is_in_recovery {
        return no(format!("{own} is a primary"));
    }
    match lag {
        None => yes(format!("{own} is a standby")),
        Some(LagLimit::Seconds(limit)) => match pg.replication_time_lag {
            Some(l) if l <= limit => yes(format!("{own} is a standby {l:.1} s behind (limit {limit} s)")),
            Some(l) => no(format!("{own} is {l:.1} s behind (limit {limit} s)")),
            None => no(format!("{own} has replayed nothing yet: its lag is unknown")),
        },
        Some(LagLimit::Bytes(limit)) => {
            let primary_lsn = crate::state::connected_primary_lsn(&snap.nodes);
            let own_lsn = pg.pg_last_xlog_replay_location.or(pg.pg_last_xlog_receive_location);
            match (primary_lsn, own_lsn) {
                (Some(p), Some(o)) => {
                    let behind = p.0.saturating_sub(o.0);
                    if behind <= limit {
                        yes(format!("{own} is a standby {behind} bytes behind (limit {limit})"))
                    } else {
                        no(format!("{own} is {behind} bytes behind (limit {limit})"))
                    }
                }
                (None, _) => no("no connected primary is seen: byte lag is unknown".to_string()),
                (_, None) => no(format!("{own} has no WAL position yet")),
            }
        }
    }
}

/// `/liveness`: a poll round completed within two poll intervals (of `now`, monotonic).
pub fn liveness(config: &Config, snap: &Snapshot, start: f64, now: f64) -> Verdict {
    let limit = 2.0
        * config
            .db_poll_interval
            .max(crate::poll::PROBE_TIMEOUT.as_secs_f64() / 2.0);
    let since = now - snap.last_round_at.unwrap_or(start);
    if since <= limit {
        yes(format!("last poll round {since:.1} s ago"))
    } else {
        no(format!("no poll round completed for {since:.1} s (limit {limit:.1} s)"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lsn::Lsn;
    use crate::state::{parse_iso, NodeState, PgFields};
    use std::path::Path;

    fn cfg(own: Option<&str>) -> Config {
        let v = serde_json::json!({
            "remote_conns": {"pg1": "host=a", "pg2": "host=b", "pg3": "host=c"},
            "own_db": own.unwrap_or(""),
        });
        Config::from_value(Path::new("t.json"), &v).expect("config").0
    }

    fn node(connection: bool, recovery: bool, lsn: u64, lag: Option<f64>) -> NodeState {
        let t = parse_iso("2024-01-01T00:00:00Z").expect("t");
        let mut n = NodeState::new(t, connection);
        n.pg = Some(PgFields {
            db_time: Some(t),
            pg_is_in_recovery: recovery,
            pg_last_xact_replay_timestamp: None,
            pg_last_xlog_receive_location: recovery.then_some(Lsn(lsn)),
            pg_last_xlog_replay_location: Some(Lsn(lsn)),
            replication_time_lag: lag,
            replication_slots: None,
        });
        n
    }

    fn snap(nodes: &[(&str, NodeState)]) -> Snapshot {
        Snapshot {
            nodes: nodes.iter().map(|(k, v)| (k.to_string(), v.clone())).collect(),
            last_round_at: Some(100.0),
            ..Default::default()
        }
    }

    #[test]
    fn lag_units() {
        assert_eq!(parse_lag("10s"), Ok(LagLimit::Seconds(10.0)));
        assert_eq!(parse_lag("500ms"), Ok(LagLimit::Seconds(0.5)));
        assert_eq!(parse_lag("2min"), Ok(LagLimit::Seconds(120.0)));
        assert_eq!(parse_lag("16MB"), Ok(LagLimit::Bytes(16 << 20)));
        assert_eq!(parse_lag("4096"), Ok(LagLimit::Bytes(4096)));
        assert_eq!(parse_lag("8kB"), Ok(LagLimit::Bytes(8192)));
        assert!(parse_lag("fast").is_err());
        assert!(parse_lag("10 parsecs").is_err());
    }

    #[test]
    fn primary_rules() {
        let healthy = snap(&[
            ("pg1", node(true, false, 100, None)),
            ("pg2", node(true, true, 90, Some(1.0))),
        ]);
        assert!(primary(&cfg(Some("pg1")), &healthy).ok);
        assert!(!primary(&cfg(Some("pg2")), &healthy).ok, "a standby");
        assert!(!primary(&cfg(None), &healthy).ok, "an observer");
        let split = snap(&[
            ("pg1", node(true, false, 100, None)),
            ("pg2", node(true, false, 90, None)),
        ]);
        let v = primary(&cfg(Some("pg1")), &split);
        assert!(!v.ok && v.reason.contains("pg2"), "{v:?}");
        let down = snap(&[("pg1", node(false, false, 100, None))]);
        assert!(!primary(&cfg(Some("pg1")), &down).ok, "a primary we cannot reach");
        assert!(!primary(&cfg(Some("pg1")), &snap(&[])).ok, "not polled yet");
    }

    #[test]
    fn replica_rules() {
        let s = snap(&[
            ("pg1", node(true, false, 5000, None)),
            ("pg2", node(true, true, 1000, Some(3.0))),
        ]);
        let c = cfg(Some("pg2"));
        assert!(replica(&c, &s, None).ok);
        assert!(replica(&c, &s, Some(LagLimit::Seconds(5.0))).ok);
        assert!(!replica(&c, &s, Some(LagLimit::Seconds(2.0))).ok);
        assert!(replica(&c, &s, Some(LagLimit::Bytes(4000))).ok);
        assert!(!replica(&c, &s, Some(LagLimit::Bytes(3999))).ok);
        assert!(!replica(&cfg(Some("pg1")), &s, None).ok, "the primary is no replica");
        let no_primary = snap(&[("pg2", node(true, true, 1000, Some(3.0)))]);
        assert!(
            !replica(&c, &no_primary, Some(LagLimit::Bytes(1 << 30))).ok,
            "byte lag unknown"
        );
        assert!(!replica(&cfg(None), &s, None).ok, "an observer");
    }

    #[test]
    fn health_and_liveness() {
        let s = snap(&[("pg1", node(true, false, 1, None)), ("pg2", node(false, true, 1, None))]);
        assert!(health(&cfg(Some("pg1")), &s).ok);
        assert!(!health(&cfg(Some("pg2")), &s).ok);
        assert!(!health(&cfg(None), &s).ok);
        let c = cfg(None);
        assert!(liveness(&c, &s, 0.0, 105.0).ok, "observers answer liveness");
        assert!(!liveness(&c, &s, 0.0, 111.0).ok, "no round for 11 s at a 5 s interval");
        assert!(!liveness(&c, &Snapshot::default(), 0.0, 11.0).ok, "never a round");
        assert!(liveness(&c, &Snapshot::default(), 0.0, 1.0).ok, "just started");
    }
}
