//! The voters (docs/safety.md, "One authority"): the one set of daemons whose views the lease
//! and every promotion path count, and the two complementary rules over it.
//!
//! A node daemon's voters are its configured observers, plus its own view (its own poll,
//! counted once) when those observers include a daemon named after every other node of
//! `remote_conns` (the mesh: then every node daemon counts the same set, the node daemons and
//! the dedicated observers). Otherwise its own view is not a vote, so that node daemons that
//! list the same dedicated observers count the same set too.
//!
//! With N voters, a standby may promote only while a strict majority (2u > N) freshly reports
//! the master unreachable and no connected primary; the primary keeps its lease while at least
//! half (2v >= N) freshly vouch for it. A voter's single view cannot do both, so u + v <= N,
//! and the two never hold together; and the lease is lost (2v < N) whenever a promotion could
//! happen. Owns: the set, its digest, the counts. Must not: do I/O, read a clock, log.

use super::types::View;
use crate::config::Config;
use crate::state::NodeState;
use crate::state::ObserverState;
use crate::state::Timestamp;
use std::collections::{BTreeMap, BTreeSet};

/// Whether an observer's report counts now: we reached it at our last fetch, and that fetch
/// is at most `max_age` seconds old (our own wall clock on both sides).
pub fn fresh_report(o: &ObserverState, wall_now: Timestamp, max_age: f64) -> bool {
    let age = wall_now.signed_duration_since(o.fetch_time).num_milliseconds() as f64 / 1000.0;
    o.connection && age <= max_age
}

/// How old an observer fetch may be and still count: one fetch period (a poll interval and a
/// fetch deadline) and one check interval.
pub fn observer_max_age(config: &Config) -> f64 {
    config.db_poll_interval + config.db_poll_timeout + config.replication_state_check_interval
}

/// The fresh reports of the configured observers, by name: the only observer views any rule
/// counts.
pub fn fresh_reports<'a>(
    observers: &'a BTreeMap<String, ObserverState>,
    config: &'a Config,
    wall_now: Timestamp,
) -> impl Iterator<Item = (&'a String, &'a ObserverState)> + 'a {
    let max_age = observer_max_age(config);
    observers
        .iter()
        .filter(move |(name, o)| config.observers.contains_key(*name) && fresh_report(o, wall_now, max_age))
}

/// Whether a node state shows a connected primary.
pub fn connected_primary(n: &NodeState) -> bool {
    n.connection && n.in_recovery() == Some(false)
}

/// Whether `name` is a connected primary in our own poll, or in the fresh views of a strict
/// majority of the voters.
pub fn corroborated_primary(view: &View, config: &Config, nodes: &BTreeMap<String, NodeState>, name: &str) -> bool {
    if nodes.get(name).is_some_and(connected_primary) {
        return true;
    }
    let (votes, of) = count(view, config, nodes, |v| v.get(name).is_some_and(connected_primary));
    strict_majority(votes, of)
}

/// How long a strict majority of the voters must have reported the master gone before a
/// standby may promote: the smaller of `unreachable_master_failover_timeout` and
/// `max_failover_replication_time_lag` (docs/safety.md, U).
pub fn failover_timeout(config: &Config) -> f64 {
    config
        .unreachable_master_failover_timeout
        .unwrap_or(config.max_failover_replication_time_lag)
        .min(config.max_failover_replication_time_lag)
}

/// Whether our own view is one of our voters: we run beside a node, and every other node of
/// `remote_conns` has its daemon among our observers (the mesh).
pub fn own_votes(config: &Config) -> bool {
    let Some(own) = config.own_db.as_deref().filter(|o| !o.is_empty()) else {
        return false;
    };
    config
        .remote_conns
        .keys()
        .filter(|n| n.as_str() != own)
        .all(|n| config.observers.contains_key(n))
}

/// The names of our voters, sorted.
pub fn names(config: &Config) -> BTreeSet<String> {
    let mut set = BTreeSet::new();
    each_name(config, |n| {
        set.insert(n.to_string());
    });
    set
}

/// Calls `f` with the name of each voter, in [`names`]' order: the digest and the counts run
/// at every decision, and need no set of copied names.
fn each_name(config: &Config, mut f: impl FnMut(&str)) {
    // the observers' names come sorted; our own goes where it sorts, unless one has it
    let mut own = own_votes(config)
        .then_some(config.own_db.as_deref())
        .flatten()
        .filter(|o| !config.observers.contains_key(*o));
    for name in config.observers.keys() {
        if let Some(o) = own.filter(|o| *o < name.as_str()) {
            f(o);
            own = None;
        }
        f(name);
    }
    if let Some(o) = own {
        f(o);
    }
}

/// How many voters we have: `names(config).len()`.
fn number(config: &Config) -> usize {
    let mut n = 0;
    each_name(config, |_| n += 1);
    n
}

/// A short, stable digest of a voter set (FNV-1a over the sorted names), published in our own
/// node's `/state.json` entry so that daemons can tell when they count different sets.
pub fn digest_of(names: &BTreeSet<String>) -> String {
    let mut h = Fnv::default();
    for name in names {
        h.add(name);
    }
    h.digest()
}

/// FNV-1a over names, each followed by a zero byte.
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    fn add(&mut self, name: &str) {
        for b in name.bytes().chain(std::iter::once(0u8)) {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
    fn digest(&self) -> String {
        format!("{:012x}", self.0 & 0xffff_ffff_ffff)
    }
}

/// Our voter set's digest.
pub fn digest(config: &Config) -> String {
    let mut h = Fnv::default();
    each_name(config, |n| h.add(n));
    h.digest()
}

/// What our daemon sends with its fetches of other daemons' `/state.json` (the headers of
/// `poll::observer`), for them to relay ([`Relays`]): our node and our digest, when we publish
/// one (a node daemon with `fence_command`, as its own `/state.json` entry does).
pub fn sent_with_fetches(config: &Config) -> Option<(&str, String)> {
    let own = config.own_db.as_deref().filter(|o| !o.is_empty())?;
    config.fence_command.as_ref()?;
    Some((own, digest(config)))
}

/// The voter-set digests that other node daemons sent with their fetches of our
/// `/state.json` (docs/safety.md, "One authority"), relayed in their nodes' entries while
/// they keep fetching: node daemons that list only dedicated observers never read each
/// other, so an observer both fetch from is where a mismatch shows. Only nodes of our
/// `remote_conns` other than ours, with a well-formed digest, are kept.
#[derive(Clone, Debug, Default)]
pub struct Relays(BTreeMap<String, (String, f64)>);

impl Relays {
    /// Keeps what a fetch sent (`mono_now`: our monotonic clock); false when it was not
    /// taken (a node we do not poll, our own, a malformed digest).
    pub fn record(&mut self, config: &Config, node: &str, digest: &str, mono_now: f64) -> bool {
        let well_formed =
            digest.len() == 12 && digest.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        let ours = config.own_db.as_deref() == Some(node);
        if !well_formed || ours || !config.remote_conns.contains_key(node) {
            return false;
        }
        match self.0.get_mut(node) {
            Some(e) => {
                if e.0 != digest {
                    e.0 = digest.to_string();
                }
                e.1 = mono_now;
            }
            None => {
                self.0.insert(node.to_string(), (digest.to_string(), mono_now));
            }
        }
        true
    }

    /// The digests sent within `max_age` seconds, by node.
    pub fn fresh(&self, mono_now: f64, max_age: f64) -> impl Iterator<Item = (&str, &str)> + '_ {
        self.0
            .iter()
            .filter(move |(_, (_, at))| mono_now - at <= max_age)
            .map(|(n, (d, _))| (n.as_str(), d.as_str()))
    }

    /// What to relay now: the digests sent within one observer fetch period
    /// ([`observer_max_age`]: a node daemon fetches every poll). The daemon's `/state.json`
    /// answer and the simulator's both take it from here.
    pub fn relayed(&self, config: &Config, mono_now: f64) -> Vec<(String, String)> {
        self.fresh(mono_now, observer_max_age(config))
            .map(|(n, d)| (n.to_string(), d.to_string()))
            .collect()
    }
}

/// Every voter's view that counts now: our own poll (when our view is a vote), and the fresh
/// reports of the configured observers. A voter with no fresh view has no say either way.
pub fn views<'a>(
    view: &'a View,
    config: &'a Config,
    own_nodes: &'a BTreeMap<String, NodeState>,
) -> impl Iterator<Item = (&'a str, &'a BTreeMap<String, NodeState>)> + 'a {
    let own = own_votes(config)
        .then_some(config.own_db.as_deref())
        .flatten()
        .map(|o| (o, own_nodes));
    own.into_iter()
        .chain(fresh_reports(view.observers, config, view.wall_now).map(|(name, o)| (name.as_str(), &*o.nodes)))
}

/// How many voters' views satisfy `pred`, and how many voters there are.
pub fn count(
    view: &View,
    config: &Config,
    own_nodes: &BTreeMap<String, NodeState>,
    pred: impl Fn(&BTreeMap<String, NodeState>) -> bool,
) -> (usize, usize) {
    let votes = views(view, config, own_nodes).filter(|(_, v)| pred(v)).count();
    (votes, number(config))
}

/// A strict majority: two of them always share a member.
pub fn strict_majority(votes: usize, of: usize) -> bool {
    of > 0 && votes * 2 > of
}

/// At least half: the lease's rule, the complement of a strict majority against.
pub fn at_least_half(votes: usize, of: usize) -> bool {
    of > 0 && votes * 2 >= of
}

/// A voter's view vouches for `node`: it reaches it, and not in recovery.
pub fn vouches(v: &BTreeMap<String, NodeState>, node: &str) -> bool {
    v.get(node).is_some_and(up)
}

/// A node as one view saw it counts as up (for the lease) exactly when it does not count as
/// gone (for a promotion): reached, and not seen in recovery. A master seen in recovery (a
/// fence that leaves `standby.signal`, restarted by its supervisor) takes no writes: it is
/// gone for the promotion rule, and no view vouches for it.
fn up(n: &NodeState) -> bool {
    n.connection && n.in_recovery() != Some(true)
}

/// A voter's view reports the master gone: no connected primary anywhere in it, and, when we
/// know which master we would replace, that master listed and not up (unreached, or in
/// recovery). A view that does not list the master (a reload took it out there) says nothing
/// about it.
pub fn reports_master_gone(v: &BTreeMap<String, NodeState>, master: Option<&str>) -> bool {
    let none_primary = !v.values().any(connected_primary);
    none_primary && master.is_none_or(|m| v.get(m).is_some_and(|n| !up(n)))
}

/// The highest value of `of(view)` that a strict majority of the voters reported at least:
/// what no single wrong observer can push up (positions and times reported about another
/// node). `None` when fewer than a strict majority reported one.
pub fn majority_floor<T: Ord + Copy>(
    view: &View,
    config: &Config,
    own_nodes: &BTreeMap<String, NodeState>,
    of: impl Fn(&BTreeMap<String, NodeState>) -> Option<T>,
) -> Option<T> {
    let mut values: Vec<T> = views(view, config, own_nodes).filter_map(|(_, v)| of(v)).collect();
    let n = number(config);
    let need = n / 2 + 1;
    if n == 0 || values.len() < need {
        return None;
    }
    values.sort_unstable_by(|a, b| b.cmp(a));
    values.get(need - 1).copied()
}

/// What `pglookout --check-config` prints of a valid config: the voters, the effective
/// timings and the derived `fence_timeout`, and what they mean for an operator.
pub fn effective_settings(config: &Config) -> Vec<String> {
    let mut out = Vec::new();
    match config.own_db.as_deref() {
        Some(own) => out.push(format!("own_db: {own} (this daemon runs beside a node)")),
        None => out.push("own_db: none (an observer: it never fences or promotes)".to_string()),
    }
    let nodes: Vec<&str> = config.remote_conns.keys().map(String::as_str).collect();
    out.push(format!("remote_conns: {}", nodes.join(", ")));
    let set = names(config);
    let n = set.len();
    let shown: Vec<String> = set
        .iter()
        .map(|v| match config.own_db.as_deref() {
            Some(own) if own == v => format!("{v} (our own poll)"),
            _ => v.clone(),
        })
        .collect();
    out.push(format!(
        "voters ({n}): {}; digest {}",
        if shown.is_empty() {
            "none".to_string()
        } else {
            shown.join(", ")
        },
        digest(config)
    ));
    if config.own_db.is_some() && n > 0 {
        out.push(format!(
            "  the primary keeps its lease while at least {} of {n} vouch for it; a standby may promote only while at least {} of {n} report the master gone",
            n.div_ceil(2),
            n / 2 + 1
        ));
    }
    let (i, p, c, b) = (
        config.db_poll_interval,
        config.db_poll_timeout,
        config.replication_state_check_interval,
        config.fence_command_budget,
    );
    out.push(format!(
        "db_poll_interval {i} s, db_poll_timeout {p} s, replication_state_check_interval {c} s"
    ));
    let u = failover_timeout(config);
    out.push(format!(
        "failover timeout {u} s (the smaller of max_failover_replication_time_lag {} s and unreachable_master_failover_timeout {})",
        config.max_failover_replication_time_lag,
        config
            .unreachable_master_failover_timeout
            .map_or("(unset)".to_string(), |t| format!("{t} s"))
    ));
    match (&config.fence_command, config.fence_timeout) {
        (Some(_), Some(f)) => {
            let overhead = 2.0 * i + 2.0 * p + c + b;
            out.push(format!(
                "fencing on: fence_timeout {f:.2} s, fence_command_budget {b} s, fence_command_timeout {} s",
                config.fence_command_timeout
            ));
            out.push(format!(
                "  fence_timeout + 2 × db_poll_interval + 2 × db_poll_timeout + replication_state_check_interval + fence_command_budget = {:.2} s <= failover timeout {u} s",
                f + overhead
            ));
            out.push(format!(
                "  a loss of contact with at least half of the voters longer than {f:.2} s fences the primary; a refused blip shorter than {:.2} s never does",
                (f - 3.0 * i - c).max(0.0)
            ));
            if config.allow_fragile_lease {
                out.push("  allow_fragile_lease: a fragile layout is accepted".to_string());
            }
        }
        _ => out.push("fencing off (no fence_command): the original's failover rules".to_string()),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    /// What a fetch sends is kept only for another node of ours with a well-formed digest,
    /// relayed while it is fresh, and replaced by the next one; a node daemon sends only with
    /// fencing.
    #[test]
    fn relays_keep_well_formed_digests_of_our_other_nodes_while_fresh() {
        let doc = serde_json::json!({
            "remote_conns": {"pg1": "host=pg1", "pg2": "host=pg2"},
            "own_db": "pg2",
            "observers": {"obs1": "http://obs1:15000"},
            "fence_command": "/bin/true",
            "allow_fragile_lease": true,
        });
        let config = match Config::from_value(std::path::Path::new("t.json"), &doc) {
            Ok((c, _)) => c,
            Err(e) => panic!("{doc}: {e}"),
        };
        assert_eq!(sent_with_fetches(&config), Some(("pg2", digest(&config))));
        let mut r = Relays::default();
        assert!(!r.record(&config, "pg2", "0123456789ab", 0.0), "our own node");
        assert!(!r.record(&config, "pg9", "0123456789ab", 0.0), "not ours");
        assert!(!r.record(&config, "pg1", "0123456789AB", 0.0), "not lowercase hex");
        assert!(!r.record(&config, "pg1", "0123", 0.0), "too short");
        assert!(r.record(&config, "pg1", "0123456789ab", 0.0));
        assert_eq!(r.fresh(2.0, 3.0).collect::<Vec<_>>(), vec![("pg1", "0123456789ab")]);
        assert_eq!(r.fresh(3.5, 3.0).count(), 0, "stale");
        assert!(r.record(&config, "pg1", "ba9876543210", 4.0));
        assert_eq!(r.fresh(5.0, 3.0).collect::<Vec<_>>(), vec![("pg1", "ba9876543210")]);
        let mut unfenced = doc.clone();
        unfenced.as_object_mut().expect("object").remove("fence_command");
        let config = match Config::from_value(std::path::Path::new("t.json"), &unfenced) {
            Ok((c, _)) => c,
            Err(e) => panic!("{unfenced}: {e}"),
        };
        assert_eq!(sent_with_fetches(&config), None);
    }

    #[test]
    fn the_digest_depends_on_the_set_only() {
        assert_eq!(
            digest_of(&set(&["pg1", "pg2", "obs1"])),
            digest_of(&set(&["obs1", "pg2", "pg1"]))
        );
        assert_ne!(
            digest_of(&set(&["pg1", "pg2", "obs1"])),
            digest_of(&set(&["pg1", "pg2"]))
        );
        // names are separated: ["ab", "c"] is not ["a", "bc"]
        assert_ne!(digest_of(&set(&["ab", "c"])), digest_of(&set(&["a", "bc"])));
        assert_eq!(digest_of(&set(&["pg1"])).len(), 12);
    }

    /// `each_name` merges our own name into the sorted observers: the set, its size and its
    /// digest are those of the plain sorted set, wherever our name sorts.
    #[test]
    fn the_voters_are_the_sorted_set_wherever_our_name_sorts() {
        let nodes = ["a", "m", "pg1", "pg2", "z"];
        for (own, missing) in nodes.iter().flat_map(|o| nodes.iter().map(move |m| (*o, *m))) {
            for with_own_daemon in [false, true] {
                for dedicated in [&[][..], &["b", "obs1"][..], &["zz"][..]] {
                    // `missing`, when not our own node, has no daemon among the observers
                    let observers: serde_json::Map<String, serde_json::Value> = nodes
                        .iter()
                        .filter(|n| (**n != own || with_own_daemon) && (**n != missing || missing == own))
                        .chain(dedicated)
                        .map(|o| (o.to_string(), serde_json::json!(format!("http://{o}:15000"))))
                        .collect();
                    let remote: serde_json::Map<String, serde_json::Value> = nodes
                        .iter()
                        .map(|n| (n.to_string(), serde_json::json!(format!("host={n}"))))
                        .collect();
                    let doc = serde_json::json!({"remote_conns": remote, "observers": observers, "own_db": own});
                    let config = match Config::from_value(std::path::Path::new("t.json"), &doc) {
                        Ok((c, _)) => c,
                        Err(e) => panic!("{doc}: {e}"),
                    };
                    let mesh = nodes
                        .iter()
                        .filter(|n| **n != own)
                        .all(|n| config.observers.contains_key(*n));
                    assert_eq!(own_votes(&config), mesh, "{doc}");
                    assert_eq!(mesh, missing == own, "{doc}");
                    let mut plain: BTreeSet<String> = config.observers.keys().cloned().collect();
                    if own_votes(&config) {
                        plain.extend(config.own_db.clone());
                    }
                    assert_eq!(names(&config), plain, "{doc}");
                    assert_eq!(number(&config), plain.len(), "{doc}");
                    assert_eq!(digest(&config), digest_of(&plain), "{doc}");
                }
            }
        }
    }

    #[test]
    fn the_two_rules_are_complements() {
        // every split of N voters into vouching, reporting gone and silent
        for n in 1..=9usize {
            for v in 0..=n {
                for u in 0..=(n - v) {
                    assert!(
                        !(strict_majority(u, n) && at_least_half(v, n)),
                        "n {n}: {u} gone and {v} vouching both hold"
                    );
                    if u + v == n {
                        // nobody silent: exactly one of the two holds
                        assert!(strict_majority(u, n) != at_least_half(v, n), "n {n} u {u} v {v}");
                    }
                }
            }
        }
    }
}
