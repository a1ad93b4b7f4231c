//! Which standbys a failover may promote without losing an acknowledged write
//! (`synchronous_mode` `on` or `strict`, issue 21): the rule alone, pure; `failover::candidate`
//! is to apply it. Imports nothing of `decide/` but the parsed names.
//!
//! The argument: under `ANY k (n names)` a commit is acknowledged once k of the n listed
//! standbys have flushed it; under `FIRST k (...)` once the k highest-priority connected ones
//! have, which are listed too, so it is on at least k listed standbys as well (which ones may
//! have changed between two commits: the rule must not depend on the last `sync_state` seen).
//! So any n-k+1 of the listed standbys hold at least one copy of every acknowledged commit,
//! and since WAL is one sequence, the furthest along of them holds them all. Fewer than n-k+1
//! reachable: no standby is known to have them all, and the failover waits.

use crate::sync_names::SyncNames;
use std::collections::BTreeSet;

/// The standbys a failover may choose among (the furthest along of them has every
/// acknowledged write), or why none can be chosen.
///
/// `names`: the old primary's `synchronous_standby_names` as last seen (`None`: empty, every
/// standby asynchronous). `standbys`: the cluster's standbys by the name they connect with
/// (`application_name`), whether reachable or not: a `*` lists them all. `reachable`: those
/// whose position is known now.
pub fn eligible(
    names: Option<&SyncNames>,
    standbys: &BTreeSet<String>,
    reachable: &BTreeSet<String>,
) -> Result<BTreeSet<String>, String> {
    let Some(names) = names else {
        return Err(
            "the old primary had no synchronous standby (synchronous_standby_names was empty): any standby may lack acknowledged writes".into(),
        );
    };
    // Every listed name counts, ours or not: a standby we do not know may have acknowledged
    // commits alone. `*` lists whoever connects: we count our own standbys (a standby outside
    // `remote_conns` streaming from the primary is outside what this rule can see).
    let mut listed: BTreeSet<String> = names
        .names
        .iter()
        .filter(|n| *n != "*")
        .map(|n| n.to_ascii_lowercase())
        .collect();
    if names.names.iter().any(|n| n == "*") {
        listed.extend(standbys.iter().map(|s| s.to_ascii_lowercase()));
    }
    let (n, k) = (listed.len(), names.num_sync as usize);
    if k > n {
        return Err(format!(
            "synchronous_standby_names asks for {k} synchronous standbys and lists {n} of ours: no commit could be acknowledged, and none is known to have them"
        ));
    }
    let found: BTreeSet<String> = standbys
        .iter()
        .filter(|s| listed.contains(&s.to_ascii_lowercase()) && reachable.contains(*s))
        .cloned()
        .collect();
    let needed = n - k + 1;
    if found.len() < needed {
        return Err(format!(
            "{} of the {n} synchronous standbys are reachable ({}); with {k} acknowledging each commit, {needed} are needed for one of them to have every acknowledged write",
            found.len(),
            found.iter().cloned().collect::<Vec<_>>().join(", ")
        ));
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync_names::parse;

    fn set(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|n| n.to_string()).collect()
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
            let names = parse(value).ok().flatten();
            let got = eligible(names.as_ref(), &all, &set(reachable));
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
        let e = eligible(None, &all, &all).expect_err("async");
        assert!(e.contains("no synchronous standby"), "{e}");
        let names = parse("ANY 3 (pg2, other)").ok().flatten();
        let e = eligible(names.as_ref(), &all, &all).expect_err("k > n");
        assert!(e.contains("asks for 3"), "{e}");
    }
}
