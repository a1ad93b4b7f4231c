//! Which standbys a failover may promote without losing an acknowledged write
//! (`synchronous_mode` `on` or `strict`, issue 21): the rule alone, pure; `failover::candidate`
//! is to apply it. Imports nothing of `decide/` but the parsed names.
//!
//! The argument: under `ANY k (n names)` a commit is acknowledged once k of the n listed
//! standbys have flushed it; under `FIRST k (...)` once the k highest-priority connected ones
//! have, which are listed too, so it is on at least k listed standbys as well (which ones may
//! have changed between two commits: the rule must not depend on the last `sync_state` seen).
//! So any n-k+1 of the listed standbys hold at least one copy of every acknowledged commit,
//! and since WAL is one sequence, the furthest along of them holds them all, provided their
//! positions are final: a standby still streaming from an old primary that resumes (a frozen
//! host) keeps confirming commits that the candidate lacks. So the n-k+1 must have stopped
//! confirming WAL to it (`decide::receiver` cuts them; PostgreSQL 13 and later), and then no
//! commit can gather k confirmations any more: at most k-1 listed standbys still stream.
//! Fewer than n-k+1 cut off: no standby is known to have them all, and the failover waits.

use crate::state::SyncReplication;
use crate::sync_names::SyncNames;
use std::collections::BTreeSet;

/// The standbys a failover may choose among (the furthest along of them has every
/// acknowledged write), or why none can be chosen.
///
/// `seen`: the old primary's synchronous replication as each view that read it last saw it
/// (our own poll and the voters' reports). `standbys`: the cluster's standbys, by node name,
/// which is the `application_name` they connect with; reachable or not (`*` lists them all).
/// `settled`: those whose position is known and final: cut off from every primary
/// (`PgFields::receiver_cut`) in our latest poll, or, before PostgreSQL 13, reachable.
///
/// One view may be older than the primary's last change (docs/safety.md, "Synchronous
/// replication"): so the rule takes the union `U` of every view's listed names and of the
/// standbys it saw streaming (the primary's daemon adds only a standby a majority of the voters
/// saw streaming, so one of the views counted has it), and the smallest `k`; it needs
/// `|U| - k + 1` of `U` reachable.
pub fn eligible(
    seen: &[&SyncReplication],
    standbys: &BTreeSet<String>,
    settled: &BTreeSet<String>,
) -> Result<BTreeSet<String>, String> {
    if seen.is_empty() {
        return Err("the old primary's synchronous_standby_names was never read".into());
    }
    let ours = |name: &str| standbys.iter().find(|s| s.eq_ignore_ascii_case(name));
    // Every listed name counts, ours or not: a standby we do not know may have acknowledged
    // commits alone. `*` lists whoever connects: we count our own standbys (a standby outside
    // `remote_conns` streaming from the primary is outside what this rule can see).
    let mut union: BTreeSet<String> = BTreeSet::new();
    let mut k = u32::MAX;
    for sync in seen {
        let value = sync
            .synchronous_standby_names
            .as_deref()
            .ok_or("the old primary's synchronous_standby_names was never read")?;
        let names: Option<SyncNames> =
            crate::sync_names::parse(value).map_err(|e| format!("synchronous_standby_names {value:?}: {e}"))?;
        let Some(names) = names else {
            return Err(
                "the old primary had no synchronous standby (synchronous_standby_names was empty in a view of it): any standby may lack acknowledged writes".into(),
            );
        };
        k = k.min(names.num_sync);
        for n in &names.names {
            if n == "*" {
                union.extend(standbys.iter().map(|s| s.to_ascii_lowercase()));
            } else {
                union.insert(n.to_ascii_lowercase());
            }
        }
        let streaming = sync
            .pg_stat_replication
            .iter()
            .filter(|w| w.state.as_deref() == Some("streaming"))
            .filter_map(|w| w.application_name.as_deref().and_then(ours));
        union.extend(streaming.map(|s| s.to_ascii_lowercase()));
    }
    let (n, k) = (union.len(), k as usize);
    if k > n {
        return Err(format!(
            "synchronous_standby_names asks for {k} synchronous standbys and lists {n}: no commit could be acknowledged, and none is known to have them"
        ));
    }
    let found: BTreeSet<String> = standbys
        .iter()
        .filter(|s| union.contains(&s.to_ascii_lowercase()) && settled.contains(*s))
        .cloned()
        .collect();
    let needed = n - k + 1;
    if found.len() < needed {
        return Err(format!(
            "{} of the {n} synchronous standbys are reachable and confirm no WAL to the old primary any more ({}); with {k} acknowledging each commit, {needed} are needed for one of them to have every acknowledged write",
            found.len(),
            found.iter().cloned().collect::<Vec<_>>().join(", ")
        ));
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::WalSender;

    fn set(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    /// A view of the primary: its setting and the standbys it streams to.
    pub(crate) fn seen(value: &str, streaming: &[&str]) -> SyncReplication {
        SyncReplication {
            synchronous_standby_names: Some(value.to_string()),
            synchronous_commit: Some("on".into()),
            pg_stat_replication: streaming
                .iter()
                .map(|n| WalSender {
                    application_name: Some(n.to_string()),
                    state: Some("streaming".into()),
                    ..WalSender::default()
                })
                .collect(),
        }
    }

    /// n listed, k acknowledging: any n-k+1 reachable will do, fewer will not.
    #[test]
    fn enough_of_the_listed_standbys_must_be_reachable() {
        let all = set(&["pg2", "pg3", "pg4"]);
        // (synchronous_standby_names, reachable, the eligible ones or what the error says)
        type Row<'a> = (&'a str, &'a [&'a str], Result<&'a [&'a str], &'a str>);
        let table: [Row; 10] = [
            // one of three acknowledges: all three needed
            (
                "ANY 1 (pg2, pg3, pg4)",
                &["pg2", "pg3", "pg4"],
                Ok(&["pg2", "pg3", "pg4"]),
            ),
            ("ANY 1 (pg2, pg3, pg4)", &["pg2", "pg3"], Err("2 of the 3")),
            // two of three: any two
            ("ANY 2 (pg2, pg3, pg4)", &["pg3", "pg4"], Ok(&["pg3", "pg4"])),
            ("ANY 2 (pg2, pg3, pg4)", &["pg4"], Err("1 of the 3")),
            // FIRST k counts as k of the listed: the sync one may have changed meanwhile
            ("FIRST 1 (pg2, pg3)", &["pg2"], Err("1 of the 2")),
            ("pg2", &["pg2", "pg3"], Ok(&["pg2"])),
            ("FIRST 2 (pg2, pg3)", &["pg3"], Ok(&["pg3"])),
            // `*` lists every standby of ours
            ("ANY 3 (*)", &["pg2"], Ok(&["pg2"])),
            // a listed standby not of ours counts (it may have acknowledged alone), one listed
            // twice or in another case is one
            ("ANY 1 (pg2, other, PG2)", &["pg2", "pg3", "pg4"], Err("1 of the 2")),
            ("ANY 2 (pg2, other)", &["pg2"], Ok(&["pg2"])),
        ];
        for (value, reachable, want) in table {
            let got = eligible(&[&seen(value, &[])], &all, &set(reachable));
            match (got, want) {
                (Ok(got), Ok(want)) => assert_eq!(got, set(want), "{value} {reachable:?}"),
                (Err(e), Err(says)) => assert!(e.contains(says), "{value} {reachable:?}: {e}"),
                (got, want) => panic!("{value} {reachable:?}: {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn an_asynchronous_primary_or_an_impossible_setting_gives_no_candidate() {
        let all = set(&["pg2", "pg3"]);
        let e = eligible(&[&seen("", &["pg2"])], &all, &all).expect_err("async");
        assert!(e.contains("no synchronous standby"), "{e}");
        let e = eligible(&[&seen("ANY 3 (pg2, other)", &[])], &all, &all).expect_err("k > n");
        assert!(e.contains("asks for 3"), "{e}");
        let e = eligible(&[], &all, &all).expect_err("never read");
        assert!(e.contains("never read"), "{e}");
    }

    /// A view older than the primary's last change: the standby it saw streaming may have
    /// been added since (and acknowledged commits alone), so it counts as listed; a view with
    /// the older, larger k does not hide a smaller one; one asynchronous view is enough to
    /// know nothing.
    #[test]
    fn every_view_of_the_primary_counts() {
        let all = set(&["pg2", "pg3", "pg4"]);
        // pg3 streams and is not listed yet: with k = 1 both must be reachable
        let stale = seen("ANY 1 (pg2)", &["pg2", "pg3"]);
        let e = eligible(&[&stale], &all, &set(&["pg2"])).expect_err("pg3 may have them");
        assert!(e.contains("1 of the 2"), "{e}");
        assert_eq!(
            eligible(&[&stale], &all, &set(&["pg2", "pg3"])),
            Ok(set(&["pg2", "pg3"]))
        );
        // another view has pg4 listed: the union is three, with the smaller k of the two
        let newer = seen("ANY 1 (pg2, pg4)", &["pg2", "pg4"]);
        let e = eligible(&[&stale, &newer], &all, &set(&["pg2", "pg3"])).expect_err("pg4 may have them");
        assert!(e.contains("2 of the 3"), "{e}");
        let two = seen("ANY 2 (pg2, pg3, pg4)", &[]);
        let one = seen("ANY 1 (pg2, pg3)", &[]);
        let e = eligible(&[&two, &one], &all, &set(&["pg2", "pg3"])).expect_err("k is the smaller");
        assert!(e.contains("with 1 acknowledging"), "{e}");
        // a streaming standby not of ours is not counted (it cannot be listed by the daemon)
        let stranger = seen("ANY 1 (pg2)", &["pg2", "pg_receivewal"]);
        assert_eq!(eligible(&[&stranger], &all, &set(&["pg2"])), Ok(set(&["pg2"])));
        let e = eligible(&[&stale, &seen("", &[])], &all, &all).expect_err("async view");
        assert!(e.contains("no synchronous standby"), "{e}");
    }
}
