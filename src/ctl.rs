//! `pglookout-ctl`: reading one daemon's view (from its HTTP API, its state file, or the state
//! file named by its config) and its event history, and rendering them as tables; and `rejoin`,
//! which brings the old primary beside that config back as a standby on request. The rendering is a pure function of
//! the state document so it is table-tested; the binary only fetches and prints.

use crate::state::{parse_iso, Timestamp};
use serde_json::Value;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

/// How to talk to a daemon's API: its base URL, the bearer token to send (if it asks for
/// one) and a CA file to trust for its HTTPS certificate.
pub struct Api {
    pub url: String,
    pub token: Option<String>,
    pub ca_file: Option<std::path::PathBuf>,
}

impl Api {
    /// The daemon's API from its config: `http_address` (all interfaces means loopback here),
    /// `http_port`, `https` when it serves TLS, and its `http_auth_token`.
    pub fn from_config(path: &Path) -> Result<Api, String> {
        let text = crate::config::read_text(path).map_err(|e| e.to_string())?;
        let v: Value = serde_json::from_str(&text).map_err(|e| format!("{}: not valid JSON: {e}", path.display()))?;
        let port = v["http_port"].as_u64().unwrap_or(15000);
        let scheme = if v["http_tls_cert"].is_string() {
            "https"
        } else {
            "http"
        };
        let host = match v["http_address"].as_str() {
            None | Some("") | Some("0.0.0.0") => "127.0.0.1".to_string(),
            Some("::") => "[::1]".to_string(),
            Some(h) if h.contains(':') => format!("[{h}]"),
            Some(h) => h.to_string(),
        };
        Ok(Api {
            url: format!("{scheme}://{host}:{port}"),
            token: v["http_auth_token"]
                .as_str()
                .filter(|t| !t.is_empty())
                .map(str::to_string),
            ca_file: None,
        })
    }

    fn client(&self) -> Result<reqwest::Client, String> {
        let mut b = reqwest::Client::builder().timeout(Duration::from_secs(5));
        if let Some(ca) = &self.ca_file {
            let pem = std::fs::read(ca).map_err(|e| format!("{}: {e}", ca.display()))?;
            let cert = reqwest::Certificate::from_pem(&pem).map_err(|e| format!("{}: {e}", ca.display()))?;
            b = b.add_root_certificate(cert);
        }
        b.build().map_err(|e| e.to_string())
    }

    fn request(&self, client: &reqwest::Client, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let r = client.request(method, format!("{}{path}", self.url.trim_end_matches('/')));
        match &self.token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    /// `Ok(None)` for a 404.
    async fn get_json(&self, client: &reqwest::Client, path: &str) -> Result<Option<Value>, String> {
        let shown = format!("{}{path}", crate::config::display_url(&self.url));
        let resp = self
            .request(client, reqwest::Method::GET, path)
            .send()
            .await
            .map_err(|e| format!("{shown}: {}", e.without_url()))?;
        if resp.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !resp.status().is_success() {
            return Err(format!("{shown}: HTTP {}", resp.status().as_u16()));
        }
        resp.json()
            .await
            .map(Some)
            .map_err(|e| format!("{shown}: not JSON: {}", e.without_url()))
    }

    /// The state document. A daemon that has no `/status` (the Python original) is read
    /// through `/state.json`, which holds only the nodes.
    pub async fn read_view(&self) -> Result<Value, String> {
        let client = self.client()?;
        match self.get_json(&client, "/status").await? {
            Some(v) if v.is_object() => Ok(v),
            _ => {
                let nodes = self
                    .get_json(&client, "/state.json")
                    .await?
                    .ok_or_else(|| format!("{}/state.json: not found", crate::config::display_url(&self.url)))?;
                Ok(serde_json::json!({ "db_nodes": nodes }))
            }
        }
    }

    /// The event history (`GET /history`), newest first.
    pub async fn read_history(&self, limit: usize, since: Option<&str>) -> Result<Vec<crate::events::Event>, String> {
        let client = self.client()?;
        let mut path = format!("/history?limit={limit}");
        if let Some(s) = since {
            path.push_str(&format!("&since={}", s.replace(':', "%3A").replace('+', "%2B")));
        }
        let v = self.get_json(&client, &path).await?.ok_or_else(|| {
            format!(
                "{}/history: not found (a daemon without a history)",
                crate::config::display_url(&self.url)
            )
        })?;
        serde_json::from_value(v)
            .map_err(|e| format!("{}/history: not a history: {e}", crate::config::display_url(&self.url)))
    }

    /// Asks the daemon for an immediate poll round.
    pub async fn request_check(&self) -> Result<(), String> {
        let client = self.client()?;
        let shown = format!("{}/check", crate::config::display_url(&self.url));
        let resp = self
            .request(&client, reqwest::Method::POST, "/check")
            .send()
            .await
            .map_err(|e| format!("{shown}: {}", e.without_url()))?;
        match resp.status().as_u16() {
            204 => Ok(()),
            401 => Err(format!("{shown}: HTTP 401: the daemon wants a bearer token (--token)")),
            403 => Err(format!("{shown}: HTTP 403: wrong token")),
            code => Err(format!("{shown}: HTTP {code}")),
        }
    }
}

/// Whether the node behind `conninfo` answers, and then whether it is in recovery (5 s).
async fn in_recovery(conninfo: &crate::conninfo::ConnInfo) -> Result<bool, String> {
    let ask = async {
        let config = conninfo.pg_config().map_err(|e| e.to_string())?;
        let tls = conninfo.tls().map_err(|e| e.to_string())?;
        let (client, connection) = config.connect(tls).await.map_err(|e| e.to_string())?;
        let task = tokio::spawn(connection);
        let row = client
            .query_one("SELECT pg_is_in_recovery()", &[])
            .await
            .map_err(|e| e.to_string());
        task.abort();
        row?.try_get::<_, bool>(0).map_err(|e| e.to_string())
    };
    tokio::time::timeout(Duration::from_secs(5), ask)
        .await
        .unwrap_or_else(|_| Err("no answer within 5 s".into()))
}

/// `pglookout-ctl rejoin`: makes the node beside `config_path` (its `own_db`) a standby of
/// `master` (default: the `current_master` of its daemon's state file), as the daemon does with
/// `rejoin_old_master`. Refuses while our node answers as a primary (stop or fence it first:
/// demoting a primary that takes writes loses them) and unless `master` answers as one.
pub async fn rejoin(config_path: &Path, master: Option<String>) -> Result<String, String> {
    let (config, _) = crate::config::Config::load(config_path).map_err(|e| e.to_string())?;
    let own = config
        .own_db
        .clone()
        .ok_or_else(|| format!("{}: own_db is not set (an observer has no node)", config_path.display()))?;
    for (key, missing) in [
        ("primary_conninfo_template", config.primary_conninfo_template.is_none()),
        ("pg_data_directory", config.pg_data_directory.is_none()),
        ("pg_start_command", config.pg_start_command.trim().is_empty()),
        ("pg_stop_command", config.pg_stop_command.trim().is_empty()),
    ] {
        if missing {
            return Err(format!("{}: {key} is required for a rejoin", config_path.display()));
        }
    }
    let master = match master {
        Some(m) => m,
        None => {
            let doc = read_file(&config.json_state_file_path)?;
            doc["current_master"].as_str().map(str::to_string).ok_or_else(|| {
                format!(
                    "{}: no current_master; name one with --master",
                    config.json_state_file_path.display()
                )
            })?
        }
    };
    if master == own {
        return Err(format!(
            "{master} is our own node ({own}): name the new primary with --master"
        ));
    }
    let master_conn = config
        .remote_conns
        .get(&master)
        .ok_or_else(|| format!("{master} is not in remote_conns"))?;
    match in_recovery(master_conn).await {
        Ok(false) => {}
        Ok(true) => return Err(format!("{master} is in recovery, not a primary")),
        Err(e) => return Err(format!("{master} does not answer ({}): {e}", master_conn.masked())),
    }
    if let Some(own_conn) = config.remote_conns.get(&own) {
        if let Ok(false) = in_recovery(own_conn).await {
            return Err(format!(
                "{own} answers as a primary: stop or fence it first (a rejoin throws away what it wrote after the failover)"
            ));
        }
    }
    crate::act::rejoin::rejoin(&config, &master).await?;
    Ok(format!("{own} is started as a standby of {master}"))
}

/// The event history as a table, newest first.
pub fn render_history(events: &[crate::events::Event]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<24} {:<10} {:<20} {:<20} REASON",
        "TIME (UTC)", "NODE", "EVENT", "MASTER"
    );
    for e in events {
        let masters = match (&e.old_master, &e.new_master) {
            (None, None) => "-".to_string(),
            (o, n) => format!("{} -> {}", o.as_deref().unwrap_or("-"), n.as_deref().unwrap_or("-")),
        };
        let node = if e.node.is_empty() { "(observer)" } else { &e.node };
        let _ = writeln!(
            out,
            "{:<27} {:<10} {:<20} {:<20} {}",
            crate::state::iso(&e.time),
            node,
            e.kind,
            masters,
            e.reason
        );
    }
    out
}

/// Reads a state document from a state file.
pub fn read_file(path: &Path) -> Result<Value, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: not valid JSON: {e}", path.display()))
}

fn role(n: &Value) -> &'static str {
    match n["pg_is_in_recovery"].as_bool() {
        Some(true) => "standby",
        Some(false) => "primary",
        None => "unknown",
    }
}

fn age(t: &Value, now: Timestamp) -> String {
    t.as_str().and_then(parse_iso).map_or("-".into(), |t| {
        format!("{:.1}s ago", (now - t).num_milliseconds() as f64 / 1000.0)
    })
}

/// The view as a table.
pub fn render(doc: &Value, now: Timestamp) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<16} {:<8} {:<9} {:<14} {:<14} {:>9}  LAST SEEN",
        "NODE", "ROLE", "CONNECTED", "RECEIVE LSN", "REPLAY LSN", "LAG (s)"
    );
    let empty = serde_json::Map::new();
    let nodes = doc["db_nodes"].as_object().unwrap_or(&empty);
    for (name, n) in nodes {
        let lag = n["replication_time_lag"]
            .as_f64()
            .map_or("-".into(), |l| format!("{l:.2}"));
        let _ = writeln!(
            out,
            "{:<16} {:<8} {:<9} {:<14} {:<14} {:>9}  {}",
            name,
            role(n),
            if n["connection"].as_bool() == Some(true) {
                "yes"
            } else {
                "no"
            },
            n["pg_last_xlog_receive_location"].as_str().unwrap_or("-"),
            n["pg_last_xlog_replay_location"].as_str().unwrap_or("-"),
            lag,
            age(&n["fetch_time"], now),
        );
    }
    if let Some(observers) = doc["observer_nodes"].as_object().filter(|o| !o.is_empty()) {
        let _ = writeln!(out, "\nOBSERVER VIEWS");
        for (obs, view) in observers {
            let reached = view["connection"].as_bool() == Some(true);
            let seen: Vec<String> = view
                .as_object()
                .map(|o| {
                    o.iter()
                        .filter(|(k, v)| *k != "fetch_time" && *k != "connection" && v.is_object())
                        .map(|(k, v)| {
                            let up = if v["connection"].as_bool() == Some(true) {
                                "up"
                            } else {
                                "down"
                            };
                            format!("{k}={}/{up}", role(v))
                        })
                        .collect()
                })
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "  {obs:<14} {} fetched {}: {}",
                if reached { "reached," } else { "NOT reached, last" },
                age(&view["fetch_time"], now),
                if seen.is_empty() {
                    "-".to_string()
                } else {
                    seen.join(" ")
                }
            );
        }
    }
    let master = doc["current_master"].as_str().unwrap_or("none known");
    let _ = writeln!(out, "\nCURRENT MASTER  {master}");
    if let Some(summary) = doc["decision"]["summary"].as_str() {
        let _ = writeln!(out, "LAST DECISION   {summary}");
        for r in doc["decision"]["reasons"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            let _ = writeln!(out, "  - {r}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_originals_state_file() {
        let text = include_str!("../tests/fixtures/pg2-state-file.json");
        let doc: Value = serde_json::from_str(text).expect("fixture");
        let now = parse_iso("2026-11-25T19:45:50Z").expect("t");
        let out = render(&doc, now);
        assert!(out.contains("pg1              primary  yes"), "{out}");
        assert!(out.contains("pg2              standby  yes       0/40023C8"), "{out}");
        assert!(out.contains("CURRENT MASTER  pg1"), "{out}");
        assert!(out.contains("5.2s ago"), "{out}");
    }

    #[test]
    fn renders_observer_views_and_the_decision() {
        let doc = serde_json::json!({
            "db_nodes": {"a": {"fetch_time": "2024-01-01T00:00:00Z", "connection": false}},
            "observer_nodes": {"obs": {"fetch_time": "2024-01-01T00:00:00Z", "connection": true,
                "a": {"fetch_time": "2024-01-01T00:00:00Z", "connection": true, "pg_is_in_recovery": false}}},
            "current_master": null,
            "decision": {"summary": "no failover: master a was reached too recently", "reasons": ["r1"]}
        });
        let out = render(&doc, parse_iso("2024-01-01T00:00:01Z").expect("t"));
        assert!(out.contains("a                unknown  no"), "{out}");
        assert!(
            out.contains("obs            reached, fetched 1.0s ago: a=primary/up"),
            "{out}"
        );
        assert!(out.contains("CURRENT MASTER  none known"), "{out}");
        assert!(
            out.contains("LAST DECISION   no failover") && out.contains("  - r1"),
            "{out}"
        );
    }

    #[test]
    fn apis_from_configs() {
        let dir = tempfile::tempdir().expect("dir");
        let p = dir.path().join("c.json");
        let api = |text: &str| {
            std::fs::write(&p, text).expect("w");
            Api::from_config(&p).map(|a| (a.url, a.token))
        };
        assert_eq!(
            api(r#"{"http_port": 15001}"#),
            Ok(("http://127.0.0.1:15001".into(), None))
        );
        assert_eq!(
            api(r#"{"http_address": "10.0.0.1"}"#),
            Ok(("http://10.0.0.1:15000".into(), None))
        );
        assert_eq!(
            api(r#"{"http_address": "::1", "http_tls_cert": "c.pem", "http_auth_token": "t"}"#),
            Ok(("https://[::1]:15000".into(), Some("t".into())))
        );
    }
}
