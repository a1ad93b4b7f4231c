//! Health checks for load balancers and supervisors (`/primary`, `/replica`, `/sync`,
//! `/health`, `/liveness`): pure functions of the config and the poller's snapshot, so every rule is a
//! table test. The HTTP layer turns a [`Verdict`] into 200 or 503 with a small JSON body.

use crate::config::Config;
use crate::state::NodeState;
use crate::state::Snapshot;
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
    // Only digits and dots reach here, so the number is never negative; a long enough run of
    // digits is infinite.
    if !n.is_finite() {
        return Err(format!("lag {text:?}: the number is too large"));
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

/// The query string of a health check: only `/replica` takes a parameter (`lag`), once, with a
/// value. Anything else is an error, so that a typo in a load balancer's check line (`?LAG=`,
/// `?lag` without a value, `?max_lag=`) is seen at once instead of silently checking less.
pub fn parse_query(path: &str, query: Option<&str>) -> Result<Option<LagLimit>, String> {
    let mut lag = None;
    for (key, value) in crate::query::parse(query)? {
        if path != "/replica" || key != "lag" {
            let known = if path == "/replica" {
                "the only parameter is lag (e.g. ?lag=10s or ?lag=16MB)"
            } else {
                "it takes no parameters"
            };
            return Err(format!("unknown parameter {key:?} for {path}: {known}"));
        }
        if value.is_empty() {
            return Err("lag needs a value, e.g. ?lag=10s or ?lag=16MB".to_string());
        }
        lag = Some(parse_lag(&value)?);
    }
    Ok(lag)
}

const OBSERVER: &str = "this daemon is an observer: it has no database of its own";

/// How old (monotonic seconds) a node's latest probe, or the poller's latest progress, may be
/// before what we know counts as stale: two poll intervals, and never under one probe
/// deadline, so that a probe that takes its whole deadline is not stale by itself.
pub fn poll_limit(config: &Config) -> f64 {
    2.0 * config.db_poll_interval.max(config.db_poll_timeout / 2.0)
}

/// How long the decision loop may go without a check: two check intervals, never under one
/// probe deadline (a check also follows every completed poll round).
pub fn decision_limit(config: &Config) -> f64 {
    2.0 * config
        .replication_state_check_interval
        .max(config.db_poll_timeout / 2.0)
}

/// Our own node and its latest state, when that state is fresh: the node checks are judged on
/// the freshness of our own node only, so a load balancer never drains a healthy node because
/// another node hangs (a poll round waits for the slowest node).
fn own_node<'a>(config: &'a Config, snap: &'a Snapshot, now: f64) -> Result<(&'a str, &'a NodeState), Verdict> {
    let Some(own) = config.own_db.as_deref() else {
        return Err(no(OBSERVER));
    };
    let (Some(node), Some(at)) = (snap.nodes.get(own), snap.polled_at.get(own)) else {
        return Err(no(format!("{own} has not been polled yet")));
    };
    let age = now - at;
    let limit = poll_limit(config);
    if age > limit {
        return Err(no(format!(
            "the view of {own} is stale: its last poll ended {age:.1} s ago (limit {limit:.1} s)"
        )));
    }
    if !node.connection {
        return Err(no(format!("{own} does not answer")));
    }
    Ok((own, node))
}

/// `/health`: our own node answers (as of a fresh poll).
pub fn health(config: &Config, snap: &Snapshot, now: f64) -> Verdict {
    match own_node(config, snap, now) {
        Ok((own, _)) => yes(format!("{own} answers")),
        Err(v) => v,
    }
}

/// `/primary`: our own node is a connected primary and no other node is seen as one.
pub fn primary(config: &Config, snap: &Snapshot, now: f64) -> Verdict {
    let (own, node) = match own_node(config, snap, now) {
        Ok(n) => n,
        Err(v) => return v,
    };
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
pub fn replica(config: &Config, snap: &Snapshot, lag: Option<LagLimit>, now: f64) -> Verdict {
    let (own, node) = match own_node(config, snap, now) {
        Ok(n) => n,
        Err(v) => return v,
    };
    let Some(pg) = node.pg.as_ref() else {
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

/// `/sync`: our own node is a connected standby that the primary lists as synchronous
/// (`sync_state` `sync`, or `quorum` under `ANY n (...)`). A standby's daemon knows it from its
/// own poll of the primary: the WAL sender whose `application_name` is
/// [`Config::own_application_name`]. That poll must be fresh too, and the primary the only one
/// seen: what the primary said of us is only as good as our last look at it.
pub fn sync(config: &Config, snap: &Snapshot, now: f64) -> Verdict {
    let (own, node) = match own_node(config, snap, now) {
        Ok(n) => n,
        Err(v) => return v,
    };
    if node.in_recovery() != Some(true) {
        return no(format!("{own} is not a standby"));
    }
    let primaries: Vec<(&String, &NodeState)> = snap
        .nodes
        .iter()
        .filter(|(_, n)| n.connection && n.in_recovery() == Some(false))
        .collect();
    let (primary, p) = match primaries.as_slice() {
        [] => return no("no connected primary is seen: whether this standby is synchronous is unknown"),
        [one] => *one,
        _ => {
            let names: Vec<&str> = primaries.iter().map(|(n, _)| n.as_str()).collect();
            return no(format!("several primaries are seen: {}", names.join(", ")));
        }
    };
    let limit = poll_limit(config);
    match snap.polled_at.get(primary.as_str()) {
        Some(at) if now - at <= limit => {}
        Some(at) => {
            return no(format!(
                "the view of {primary} is stale: its last poll ended {:.1} s ago (limit {limit:.1} s)",
                now - at
            ))
        }
        None => return no(format!("{primary} has not been polled yet")),
    }
    let Some(sync) = p.pg.as_ref().and_then(|pg| pg.sync.as_ref()) else {
        return no(format!("{primary}'s synchronous replication state could not be read"));
    };
    let app = config.own_application_name().unwrap_or(own);
    let senders: Vec<&crate::state::WalSender> = sync
        .pg_stat_replication
        .iter()
        .filter(|w| w.application_name.as_deref() == Some(app))
        .collect();
    let commit = sync.synchronous_commit.as_deref().unwrap_or("unknown");
    if let Some(w) = senders.iter().find(|w| w.is_synchronous()) {
        return yes(format!(
            "{own} is a {} standby of {primary} (application_name {app:?}, synchronous_commit {commit})",
            w.sync_state.as_deref().unwrap_or_default()
        ));
    }
    match senders.first() {
        None => no(format!(
            "{primary} has no WAL sender with application_name {app:?} (set own_application_name if {own} streams under another name)"
        )),
        Some(w) => match w.sync_state.as_deref() {
            None => no(format!(
                "{primary} does not show the sync_state of {app:?}: the monitoring role needs pg_read_all_stats"
            )),
            Some(state) => no(format!(
                "{own} is a standby of {primary} with sync_state {state}, not sync or quorum"
            )),
        },
    }
}

/// `/liveness`: the daemon makes progress: some probe ended within [`poll_limit`] (a node
/// that hangs delays only its own probes) and the decision loop ran within [`decision_limit`]
/// (`decided_at`; a loop stuck on a hung file system must not look alive). Times are
/// monotonic; `start` stands in for both before the first probe and the first check.
pub fn liveness(config: &Config, snap: &Snapshot, decided_at: Option<f64>, start: f64, now: f64) -> Verdict {
    let limit = poll_limit(config);
    let polled = snap.last_report_at.or(snap.last_round_at).unwrap_or(start);
    let since = now - polled;
    if since > limit {
        return no(format!("no poll has ended for {since:.1} s (limit {limit:.1} s)"));
    }
    let decision_limit = decision_limit(config);
    let decided = now - decided_at.unwrap_or(start);
    if decided > decision_limit {
        return no(format!(
            "the decision loop has not run for {decided:.1} s (limit {decision_limit:.1} s)"
        ));
    }
    yes(format!("last poll {since:.1} s ago, last decision {decided:.1} s ago"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lsn::Lsn;
    use crate::state::{parse_iso, NodeState, PgFields};
    use std::path::Path;

    const NOW: f64 = 100.0;

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
            timeline: None,
            startup_waiting_for_wal: None,
            sync: None,
            receiver_cut: None,
        });
        n
    }

    fn snap(nodes: &[(&str, NodeState)]) -> Snapshot {
        Snapshot {
            nodes: nodes.iter().map(|(k, v)| (k.to_string(), v.clone())).collect(),
            polled_at: nodes.iter().map(|(k, _)| (k.to_string(), NOW)).collect(),
            last_round_at: Some(NOW),
            last_report_at: Some(NOW),
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
        let huge = format!("{}s", "9".repeat(400));
        assert_eq!(parse_lag(&huge), Err(format!("lag {huge:?}: the number is too large")));
    }

    #[test]
    fn health_check_parameters() {
        assert_eq!(parse_query("/replica", None), Ok(None));
        assert_eq!(parse_query("/replica", Some("")), Ok(None));
        assert_eq!(
            parse_query("/replica", Some("lag=10s")),
            Ok(Some(LagLimit::Seconds(10.0)))
        );
        for bad in ["lag", "lag=", "LAG=10s", "lag=10s&lag=20s", "max_lag=1s", "lag=1s&x=1"] {
            assert!(parse_query("/replica", Some(bad)).is_err(), "{bad}");
        }
        // decoded as every other query
        assert_eq!(
            parse_query("/replica", Some("%6Cag=%31%30s")),
            Ok(Some(LagLimit::Seconds(10.0)))
        );
        assert_eq!(
            parse_query("/replica", Some("lag=1s&lag=2s")),
            Err("lag: given more than once".to_string())
        );
        assert_eq!(parse_query("/primary", Some("")), Ok(None));
        assert!(parse_query("/primary", Some("lag=1s")).is_err());
        assert!(parse_query("/health", Some("verbose")).is_err());
    }

    #[test]
    fn primary_rules() {
        let healthy = snap(&[
            ("pg1", node(true, false, 100, None)),
            ("pg2", node(true, true, 90, Some(1.0))),
        ]);
        assert!(primary(&cfg(Some("pg1")), &healthy, NOW).ok);
        assert!(!primary(&cfg(Some("pg2")), &healthy, NOW).ok, "a standby");
        assert!(!primary(&cfg(None), &healthy, NOW).ok, "an observer");
        let split = snap(&[
            ("pg1", node(true, false, 100, None)),
            ("pg2", node(true, false, 90, None)),
        ]);
        let v = primary(&cfg(Some("pg1")), &split, NOW);
        assert!(!v.ok && v.reason.contains("pg2"), "{v:?}");
        let down = snap(&[("pg1", node(false, false, 100, None))]);
        assert!(!primary(&cfg(Some("pg1")), &down, NOW).ok, "a primary we cannot reach");
        assert!(!primary(&cfg(Some("pg1")), &snap(&[]), NOW).ok, "not polled yet");
    }

    #[test]
    fn replica_rules() {
        let s = snap(&[
            ("pg1", node(true, false, 5000, None)),
            ("pg2", node(true, true, 1000, Some(3.0))),
        ]);
        let c = cfg(Some("pg2"));
        assert!(replica(&c, &s, None, NOW).ok);
        assert!(replica(&c, &s, Some(LagLimit::Seconds(5.0)), NOW).ok);
        assert!(!replica(&c, &s, Some(LagLimit::Seconds(2.0)), NOW).ok);
        assert!(replica(&c, &s, Some(LagLimit::Bytes(4000)), NOW).ok);
        assert!(!replica(&c, &s, Some(LagLimit::Bytes(3999)), NOW).ok);
        assert!(
            !replica(&cfg(Some("pg1")), &s, None, NOW).ok,
            "the primary is no replica"
        );
        let no_primary = snap(&[("pg2", node(true, true, 1000, Some(3.0)))]);
        assert!(
            !replica(&c, &no_primary, Some(LagLimit::Bytes(1 << 30)), NOW).ok,
            "byte lag unknown"
        );
        assert!(!replica(&cfg(None), &s, None, NOW).ok, "an observer");
    }

    #[test]
    fn health_and_liveness() {
        let s = snap(&[("pg1", node(true, false, 1, None)), ("pg2", node(false, true, 1, None))]);
        assert!(health(&cfg(Some("pg1")), &s, NOW).ok);
        assert!(!health(&cfg(Some("pg2")), &s, NOW).ok);
        assert!(!health(&cfg(None), &s, NOW).ok);
        let c = cfg(None);
        let decided = Some(NOW);
        assert!(liveness(&c, &s, decided, 0.0, 105.0).ok, "observers answer liveness");
        assert!(
            !liveness(&c, &s, decided, 0.0, 111.0).ok,
            "no poll for 11 s at a 5 s limit"
        );
        assert!(!liveness(&c, &Snapshot::default(), None, 0.0, 11.0).ok, "never a round");
        assert!(liveness(&c, &Snapshot::default(), None, 0.0, 1.0).ok, "just started");
        // the poller runs but the decision loop is stuck (e.g. on a hung file system)
        let mut polling = s.clone();
        polling.last_report_at = Some(120.0);
        let v = liveness(&c, &polling, Some(105.0), 0.0, 121.0);
        assert!(!v.ok && v.reason.contains("decision loop"), "{v:?}");
        assert!(liveness(&c, &polling, Some(119.0), 0.0, 121.0).ok);
    }

    fn sender(app: &str, sync_state: Option<&str>) -> crate::state::WalSender {
        crate::state::WalSender {
            application_name: Some(app.to_string()),
            state: Some("streaming".into()),
            sync_state: sync_state.map(str::to_string),
            sync_priority: Some(1),
            ..Default::default()
        }
    }

    fn with_senders(mut n: NodeState, senders: Vec<crate::state::WalSender>) -> NodeState {
        if let Some(pg) = n.pg.as_mut() {
            pg.sync = Some(crate::state::SyncReplication {
                synchronous_standby_names: Some("ANY 1 (pg2, pg3)".into()),
                synchronous_commit: Some("remote_apply".into()),
                pg_stat_replication: senders,
            });
        }
        n
    }

    #[test]
    fn sync_rules() {
        let primary = with_senders(
            node(true, false, 100, None),
            vec![sender("pg2", Some("quorum")), sender("pg3", Some("async"))],
        );
        let s = snap(&[
            ("pg1", primary.clone()),
            ("pg2", node(true, true, 90, Some(1.0))),
            ("pg3", node(true, true, 90, Some(1.0))),
        ]);
        let v = sync(&cfg(Some("pg2")), &s, NOW);
        assert!(
            v.ok && v.reason.contains("quorum") && v.reason.contains("remote_apply"),
            "{v:?}"
        );
        let v = sync(&cfg(Some("pg3")), &s, NOW);
        assert!(!v.ok && v.reason.contains("async"), "{v:?}");
        assert!(!sync(&cfg(Some("pg1")), &s, NOW).ok, "the primary");
        assert!(!sync(&cfg(None), &s, NOW).ok, "an observer");
        // the node streams under another name: found with own_application_name only
        let mut renamed = s.clone();
        renamed.nodes.insert(
            "pg1".into(),
            with_senders(node(true, false, 100, None), vec![sender("b", Some("sync"))]),
        );
        let v = sync(&cfg(Some("pg2")), &renamed, NOW);
        assert!(!v.ok && v.reason.contains("own_application_name"), "{v:?}");
        let mut c = cfg(Some("pg2"));
        c.own_application_name = Some("b".into());
        assert!(sync(&c, &renamed, NOW).ok);
        // no pg_read_all_stats: the state is hidden, never guessed
        let mut hidden = s.clone();
        hidden.nodes.insert(
            "pg1".into(),
            with_senders(node(true, false, 100, None), vec![sender("pg2", None)]),
        );
        let v = sync(&cfg(Some("pg2")), &hidden, NOW);
        assert!(!v.ok && v.reason.contains("pg_read_all_stats"), "{v:?}");
        // what the primary said is as old as our last poll of it
        let mut stale = s.clone();
        stale.polled_at.insert("pg1".into(), NOW - 30.0);
        let v = sync(&cfg(Some("pg2")), &stale, NOW);
        assert!(!v.ok && v.reason.contains("stale"), "{v:?}");
        // the primary unreachable, unread, or not alone
        let mut down = s.clone();
        if let Some(p) = down.nodes.get_mut("pg1") {
            p.connection = false;
        }
        assert!(!sync(&cfg(Some("pg2")), &down, NOW).ok);
        let mut unread = s.clone();
        unread.nodes.insert("pg1".into(), node(true, false, 100, None));
        assert!(!sync(&cfg(Some("pg2")), &unread, NOW).ok);
        let mut split = s;
        split.nodes.insert("pg3".into(), primary);
        let v = sync(&cfg(Some("pg2")), &split, NOW);
        assert!(!v.ok && v.reason.contains("several primaries"), "{v:?}");
    }

    /// A round waits for the slowest node; the node checks look only at our own node's poll.
    #[test]
    fn node_checks_judge_only_our_own_node_freshness() {
        let c = cfg(Some("pg1"));
        let mut s = snap(&[
            ("pg1", node(true, false, 100, None)),
            ("pg2", node(true, true, 90, Some(1.0))),
        ]);
        // pg2 hangs: its last probe ended long ago, and no round has completed since
        s.polled_at.insert("pg2".into(), NOW - 30.0);
        s.last_round_at = Some(NOW - 30.0);
        let later = NOW + 1.0;
        assert!(primary(&c, &s, later).ok, "{:?}", primary(&c, &s, later));
        assert!(health(&c, &s, later).ok);
        assert!(replica(&cfg(Some("pg2")), &s, None, later).reason.contains("stale"));
        // our own node's view going stale is what fails the checks
        let v = primary(&c, &s, NOW + 11.0);
        assert!(!v.ok && v.reason.contains("stale"), "{v:?}");
    }
}
