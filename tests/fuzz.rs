//! Property tests of every parser that takes outside input: libpq conninfo strings and URIs, the
//! config file, observers' `/state.json` answers, the state file as the current-master helper and
//! `pglookout-ctl` read it, WAL positions, timestamps, the `Date` header and the health-check
//! query. Generated and mutated inputs (the fixtures of the Python original as seeds); the
//! properties: no panic, a clear error for a bad input, and a round trip where a renderer exists.
//!
//! CI runs proptest's default count (256 cases per property). Longer:
//! `PROPTEST_CASES=100000 cargo test --release --test fuzz`.

use std::collections::BTreeMap;
use std::path::Path;

use pglookout::config::{known_keys, Config};
use pglookout::conninfo::ConnInfo;
use pglookout::lsn::Lsn;
use pglookout::state::{parse_iso, parse_node_map, NodeState};
use proptest::prelude::*;
use serde_json::{json, Value};

/// Any JSON value, a few levels deep, with the scalars a hostile peer would send.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        Just(json!(1e308)),
        Just(json!(-0.0)),
        "\\PC{0,16}".prop_map(Value::from),
        "[0-9A-F]{1,8}/[0-9A-F]{1,8}".prop_map(Value::from),
        "20[0-9]{2}-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-5][0-9](\\.[0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2})?"
            .prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map("\\PC{0,10}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn fixture(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name);
    let text = std::fs::read_to_string(&path).expect("fixture");
    serde_json::from_str(&text).expect("fixture JSON")
}

/// Replaces the value at a path of keys or indexes chosen by `picks` with `new` (stopping at
/// the first scalar).
fn mutate(doc: &mut Value, picks: &[usize], new: Value) {
    let Some((&p, rest)) = picks.split_first() else {
        *doc = new;
        return;
    };
    match doc {
        Value::Object(m) if !m.is_empty() => {
            let n = m.len();
            if let Some(v) = m.values_mut().nth(p % n) {
                mutate(v, rest, new);
            }
        }
        Value::Array(a) if !a.is_empty() => {
            let n = a.len();
            mutate(&mut a[p % n], rest, new);
        }
        _ => *doc = new,
    }
}

/// Accepted node states survive their own rendering: what we write, we read back the same.
fn assert_round_trip(nodes: &BTreeMap<String, NodeState>) -> Result<(), TestCaseError> {
    let rendered = serde_json::to_value(nodes).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let (again, rejected) = parse_node_map(&rendered).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert!(rejected.is_empty(), "our own rendering was rejected: {rejected:?}");
    prop_assert_eq!(&again, nodes);
    Ok(())
}

proptest! {
    #[test]
    fn conninfo_strings_parse_or_fail_cleanly_and_round_trip(s in "\\PC{0,64}") {
        if let Ok(ci) = ConnInfo::parse(&s) {
            let again = ConnInfo::parse(&ci.render());
            prop_assert_eq!(again.ok(), Some(ci));
        }
    }

    #[test]
    fn conninfo_lookalikes_and_uris(
        s in "(postgres(ql)?://)?[a-z@:/?=&%. '\\\\0-9\\[\\]]{0,48}"
    ) {
        match ConnInfo::parse(&s) {
            Ok(ci) => {
                let again = ConnInfo::parse(&ci.render());
                prop_assert_eq!(again.ok(), Some(ci));
            }
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }

    #[test]
    fn a_config_of_any_shape_loads_or_names_what_is_wrong(
        entries in proptest::collection::btree_map(
            prop_oneof![proptest::sample::select(known_keys()).prop_map(str::to_string), "[a-z_]{1,12}"],
            any_json(),
            0..10,
        )
    ) {
        let doc = Value::Object(entries.into_iter().collect());
        if let Err(e) = Config::from_value(Path::new("fuzz.json"), &doc) {
            let msg = e.to_string();
            prop_assert!(msg.contains("fuzz.json"), "the error names no file: {msg}");
        }
    }

    #[test]
    fn a_good_config_with_one_value_replaced_loads_or_names_the_key(
        key in proptest::sample::select(known_keys()),
        value in any_json(),
    ) {
        let mut doc = json!({
            "remote_conns": {"pg1": "host=127.0.0.1 port=5432", "pg2": "host=127.0.0.2"},
            "observers": {"o1": "http://127.0.0.1:15000"},
            "own_db": "pg1",
            "fence_command": "/usr/bin/true",
            "failover_command": "/usr/bin/true",
        });
        doc[key] = value;
        if let Err(e) = Config::from_value(Path::new("fuzz.json"), &doc) {
            let msg = e.to_string();
            prop_assert!(
                known_keys().iter().any(|k| msg.contains(k)),
                "the error names no key: {msg}"
            );
        }
    }

    #[test]
    fn observer_answers_of_any_shape_never_panic(doc in any_json()) {
        if let Ok((nodes, _rejected)) = parse_node_map(&doc) {
            assert_round_trip(&nodes)?;
        }
    }

    #[test]
    fn mutated_observer_answers_keep_the_good_entries(
        which in 0usize..3,
        picks in proptest::collection::vec(any::<usize>(), 1..4),
        new in any_json(),
    ) {
        let name = ["pg1-http-state.json", "pg2-http-state.json", "obs1-http-state.json"][which];
        let mut doc = fixture(name);
        mutate(&mut doc, &picks, new);
        if let Ok((nodes, _rejected)) = parse_node_map(&doc) {
            assert_round_trip(&nodes)?;
        }
    }

    /// The state file as `pglookout-ctl status --file` and `pglookout_current_master` see it.
    #[test]
    fn mutated_state_files_render_without_panic(
        which in 0usize..2,
        picks in proptest::collection::vec(any::<usize>(), 1..4),
        new in any_json(),
    ) {
        let name = ["pg2-state-file.json", "obs1-state-file.json"][which];
        let mut doc = fixture(name);
        mutate(&mut doc, &picks, new);
        let now = parse_iso("2024-01-01T00:00:00Z").expect("time");
        let text = pglookout::ctl::render(&doc, now);
        prop_assert!(!text.is_empty());
        if let Some(nodes) = doc.get("db_nodes") {
            let _ = parse_node_map(nodes);
        }
    }

    #[test]
    fn wal_positions_parse_or_fail_and_round_trip(s in "[0-9A-Fa-f/x+ -]{0,20}") {
        if let Ok(l) = s.parse::<Lsn>() {
            prop_assert_eq!(l.to_string().parse::<Lsn>().ok(), Some(l));
        }
    }

    #[test]
    fn timestamps_and_date_headers_never_panic(s in "\\PC{0,40}", d in "[A-Za-z0-9 ,:]{0,40}") {
        let _ = parse_iso(&s);
        let now = chrono::Utc::now();
        let _ = pglookout::poll::observer::check_skew(Some(&d), now, now);
    }

    #[test]
    fn health_queries_parse_or_fail_cleanly(
        path in proptest::sample::select(vec!["/primary", "/replica", "/health", "/other"]),
        query in proptest::option::of("[a-z=&%0-9.e+-]{0,32}"),
    ) {
        if let Err(e) = pglookout::health::parse_query(path, query.as_deref()) {
            prop_assert!(!e.is_empty());
        }
    }
}
