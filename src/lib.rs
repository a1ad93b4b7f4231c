//! pglookout: PostgreSQL replication monitoring and failover daemon, a drop-in for Aiven's
//! Python pglookout. One line per module, saying what it owns:

/// Side effects: alert files, external commands, following a new primary.
pub mod act;
/// The monotonic clock (same base as Python's time.monotonic()).
pub mod clock;
/// Config file: keys, defaults, validation with messages that name the key.
pub mod config;
/// libpq connection strings and URIs: parse, render, mask, build client config and TLS.
pub mod conninfo;
/// pglookout-ctl: reading and rendering one daemon's view.
pub mod ctl;
/// Wiring, the decision loop, reload and shutdown.
pub mod daemon;
/// The pure decision core: node map, failover decision, autofollow text (no I/O).
pub mod decide;
/// The event history file: its event shape, appends with rotation, reading newest first.
pub mod events;
/// Health checks for load balancers (pure).
pub mod health;
/// Event hooks: `event_command` for every history event, queued and run in order off the loop.
pub mod hooks;
/// HTTP API routes.
pub mod http;
/// HTTP connections: accepting, connection caps, TLS handshakes, deadlines.
pub mod http_conn;
/// Log lines to stderr and syslog, with a level that reload can change.
pub mod logging;
/// WAL positions (`X/Y`).
pub mod lsn;
/// StatsD (Telegraf tags).
pub mod metrics;
/// One daemon's decision loop as a pure state machine: inputs in, effects out.
pub mod node;
/// Polling PostgreSQL nodes and observers; owns their states.
pub mod poll;
/// Prometheus counters and the /metrics text.
pub mod prometheus;
/// Query strings of the HTTP API: one decoder, one rule for repeated parameters.
pub mod query;
/// Host names of UDP destinations (StatsD, syslog), resolved in the background.
pub mod resolve;
/// Lag and position over time, per node, in bounded rings; the `GET /series` answer (pure).
pub mod series;
/// The JSON contract: node and observer states and the state-file document.
pub mod state;
/// Atomic write of the state file.
pub mod statefile;
/// Task supervision: crashed tasks are logged, counted, restarted or stop the daemon.
pub mod supervise;
/// `synchronous_standby_names` as a typed value, read and written (pure).
pub mod sync_names;
/// Outside text made safe for terminals and log lines (control characters escaped).
pub mod text;
/// The fencing timing argument as arithmetic (pure), run by the config validation.
pub mod timing;

/// The modules' imports form no cycle (`crate::x` references, tests excluded), so that each
/// layer can be read, tested and simulated without the ones above it.
#[cfg(test)]
mod module_graph {
    use std::collections::{BTreeMap, BTreeSet};
    use std::path::Path;

    /// Every module a source file names after one of `prefixes` (`crate::`, `super::`) outside
    /// its `#[cfg(test)]` part.
    fn references_after(text: &str, prefixes: &[&str]) -> BTreeSet<String> {
        let code = text.split("#[cfg(test)]").next().unwrap_or("");
        let mut out = BTreeSet::new();
        for prefix in prefixes {
            for (i, _) in code.match_indices(prefix) {
                let rest = &code[i + prefix.len()..];
                // grouped imports would hide their modules from this check
                assert!(
                    !rest.starts_with('{'),
                    "write `use {prefix}a::X;` one module per line, not `{prefix}{{...}}`"
                );
                let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                if !name.is_empty() {
                    out.insert(name);
                }
            }
        }
        out
    }

    /// Every `crate::<module>` a source file names outside its `#[cfg(test)]` part.
    fn references(text: &str) -> BTreeSet<String> {
        references_after(text, &["crate::"])
    }

    fn graph() -> BTreeMap<String, BTreeSet<String>> {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let mut add = |module: String, path: &Path| {
            let text = std::fs::read_to_string(path).expect("read source");
            let refs = references(&text);
            graph
                .entry(module.clone())
                .or_default()
                .extend(refs.into_iter().filter(|r| *r != module));
        };
        for entry in std::fs::read_dir(&src).expect("src") {
            let path = entry.expect("entry").path();
            let Some(stem) = path.file_stem().and_then(|s| s.to_str()).map(str::to_string) else {
                continue;
            };
            if path.is_dir() {
                for f in std::fs::read_dir(&path).expect("dir") {
                    let f = f.expect("entry").path();
                    // a module's `tests.rs` is test code (included under `#[cfg(test)]`)
                    if f.extension().is_some_and(|e| e == "rs") && f.file_stem().is_some_and(|n| n != "tests") {
                        add(stem.clone(), &f);
                    }
                }
            } else if path.extension().is_some_and(|e| e == "rs") && stem != "lib" {
                add(stem, &path);
            }
        }
        graph
    }

    /// A cycle through `start`, as `a -> b -> a`, if there is one.
    fn cycle(graph: &BTreeMap<String, BTreeSet<String>>, start: &str) -> Option<Vec<String>> {
        let mut stack = vec![(start.to_string(), vec![start.to_string()])];
        let mut seen = BTreeSet::new();
        while let Some((node, path)) = stack.pop() {
            for next in graph.get(&node).into_iter().flatten() {
                if next == start {
                    let mut p = path.clone();
                    p.push(start.to_string());
                    return Some(p);
                }
                if graph.contains_key(next) && seen.insert(next.clone()) {
                    let mut p = path.clone();
                    p.push(next.clone());
                    stack.push((next.clone(), p));
                }
            }
        }
        None
    }

    #[test]
    fn the_modules_import_no_cycle() {
        let g = graph();
        assert!(g.contains_key("daemon") && g.contains_key("poll"), "{g:?}");
        let cycles: Vec<String> = g.keys().filter_map(|m| cycle(&g, m)).map(|c| c.join(" -> ")).collect();
        assert!(cycles.is_empty(), "import cycles: {cycles:#?}");
    }

    /// The decision core's own modules import only downwards: the shared types are a leaf,
    /// the memory and the voter counting sit above them, the rules above those, and nothing
    /// imports the round (`failover`).
    #[test]
    fn the_decision_modules_import_no_cycle() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/decide");
        let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for entry in std::fs::read_dir(&dir).expect("src/decide") {
            let path = entry.expect("entry").path();
            let Some(stem) = path.file_stem().and_then(|s| s.to_str()).map(str::to_string) else {
                continue;
            };
            if stem == "mod" || stem == "tests" || path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("read source");
            let refs = references_after(&text, &["super::", "crate::decide::"])
                .into_iter()
                .filter(|r| *r != stem)
                .collect();
            g.insert(stem, refs);
        }
        assert!(g.contains_key("failover") && g.contains_key("types"), "{g:?}");
        let cycles: Vec<String> = g.keys().filter_map(|m| cycle(&g, m)).map(|c| c.join(" -> ")).collect();
        assert!(cycles.is_empty(), "import cycles in decide/: {cycles:#?}");
        let known: BTreeSet<&String> = g.keys().collect();
        assert!(
            g["types"].iter().all(|r| !known.contains(r)),
            "types must be a leaf: {:?}",
            g["types"]
        );
        let importers: Vec<&String> = g
            .iter()
            .filter(|(_, r)| r.contains("failover"))
            .map(|(m, _)| m)
            .collect();
        assert!(importers.is_empty(), "nothing imports the round: {importers:?}");
    }

    #[test]
    fn a_cycle_is_found() {
        let g: BTreeMap<String, BTreeSet<String>> = [
            ("a".to_string(), BTreeSet::from(["b".to_string()])),
            ("b".to_string(), BTreeSet::from(["a".to_string()])),
        ]
        .into();
        assert_eq!(cycle(&g, "a"), Some(vec!["a".into(), "b".into(), "a".into()]));
        assert_eq!(
            references("use crate::x::Y; crate::z::f(); #[cfg(test)] crate::w"),
            BTreeSet::from(["x".into(), "z".into()])
        );
    }
}
