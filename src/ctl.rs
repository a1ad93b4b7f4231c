//! `pglookout-ctl`: reading one daemon's view (from its HTTP API, its state file, or the state
//! file named by its config) and its event history, and rendering them as tables; and `rejoin`
//! and `reinit`, which bring the node beside that config back as a standby on request (by
//! `pg_rewind`, or by a rebuild). Owns saying
//! where a view came from and whether it is stale ([`ViewSource`], [`STATE_MAX_AGE`], shared
//! with `pglookout_current_master`), and what a failed request failed on
//! ([`describe_request_error`]). The rendering is a pure function of the state document (every
//! peer's text shown through [`crate::text::printable`]) so it is table-tested; the binary only
//! fetches and prints.

use crate::state::{parse_iso, Timestamp};
use serde_json::Value;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

/// How long one request to a daemon's API may take by default.
pub const API_TIMEOUT: Duration = Duration::from_secs(5);

/// How to talk to a daemon's API: its base URL, the bearer token to send (if it asks for
/// one), a CA file to trust for its HTTPS certificate and how long a request may take.
pub struct Api {
    pub url: String,
    pub token: Option<String>,
    pub ca_file: Option<std::path::PathBuf>,
    pub timeout: Duration,
}

impl Api {
    /// The API at `url`, without a token or a CA file.
    pub fn new(url: &str) -> Api {
        Api {
            url: url.to_string(),
            token: None,
            ca_file: None,
            timeout: API_TIMEOUT,
        }
    }

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
        let mut api = Api::new(&format!("{scheme}://{host}:{port}"));
        api.token = v["http_auth_token"]
            .as_str()
            .filter(|t| !t.is_empty())
            .map(str::to_string);
        Ok(api)
    }

    /// `switchover --config` on a host whose daemon is not the primary's (a standby's, an
    /// observer's): the primary's daemon, by the name this daemon knows as `current_master`
    /// and the URL the config lists for it under `observers`, asked with the same token and
    /// CA file. `None` when this daemon is the primary's, or knows no primary, or the config
    /// lists no daemon for it (the request then goes here, and is refused with the reason).
    pub async fn primary_daemon(&self, config: &Path) -> Result<Option<(String, Api)>, String> {
        let text = crate::config::read_text(config).map_err(|e| e.to_string())?;
        let v: Value = serde_json::from_str(&text).map_err(|e| format!("{}: not valid JSON: {e}", config.display()))?;
        let view = self.read_view().await?;
        let Some(master) = view["current_master"].as_str() else {
            return Ok(None);
        };
        if v["own_db"].as_str() == Some(master) {
            return Ok(None);
        }
        let Some(url) = v["observers"][master].as_str() else {
            return Ok(None);
        };
        let mut api = Api::new(url);
        api.token = self.token.clone();
        api.ca_file = self.ca_file.clone();
        api.timeout = self.timeout;
        Ok(Some((master.to_string(), api)))
    }

    /// The URL as shown in messages (without credentials).
    pub fn shown(&self) -> String {
        crate::config::display_url(&self.url)
    }

    fn client(&self) -> Result<reqwest::Client, String> {
        check_url(&self.url)?;
        let mut b = reqwest::Client::builder().timeout(self.timeout);
        if let Some(ca) = &self.ca_file {
            let pem = std::fs::read(ca).map_err(|e| format!("--ca-file {}: {e}", ca.display()))?;
            let cert = reqwest::Certificate::from_pem(&pem).map_err(|e| format!("--ca-file {}: {e}", ca.display()))?;
            b = b.add_root_certificate(cert);
        }
        b.build().map_err(|e| {
            format!(
                "cannot set up an HTTP client: {}",
                describe_request_error(e, self.timeout)
            )
        })
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
        let shown = format!("{}{path}", self.shown());
        let resp = self
            .request(client, reqwest::Method::GET, path)
            .send()
            .await
            .map_err(|e| format!("{shown}: {}", describe_request_error(e, self.timeout)))?;
        match resp.status().as_u16() {
            404 => return Ok(None),
            401 => return Err(format!("{shown}: HTTP 401: the daemon wants a bearer token (--token)")),
            403 => return Err(format!("{shown}: HTTP 403: wrong token")),
            code if !resp.status().is_success() => return Err(format!("{shown}: HTTP {code}")),
            _ => {}
        }
        let body = resp
            .bytes()
            .await
            .map_err(|e| format!("{shown}: {}", describe_request_error(e, self.timeout)))?;
        serde_json::from_slice(&body)
            .map(Some)
            .map_err(|e| format!("{shown}: the answer is not JSON: {e}"))
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
                    .ok_or_else(|| format!("{}/state.json: not found", self.shown()))?;
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
        let v = self
            .get_json(&client, &path)
            .await?
            .ok_or_else(|| format!("{}/history: not found (a daemon without a history)", self.shown()))?;
        serde_json::from_value(v).map_err(|e| format!("{}/history: not a history: {e}", self.shown()))
    }

    /// Asks the daemon for an immediate poll round.
    pub async fn request_check(&self) -> Result<(), String> {
        let client = self.client()?;
        let shown = format!("{}/check", self.shown());
        let resp = self
            .request(&client, reqwest::Method::POST, "/check")
            .send()
            .await
            .map_err(|e| format!("{shown}: {}", describe_request_error(e, self.timeout)))?;
        match resp.status().as_u16() {
            204 => Ok(()),
            401 => Err(format!("{shown}: HTTP 401: the daemon wants a bearer token (--token)")),
            403 => Err(format!("{shown}: HTTP 403: wrong token")),
            code => Err(format!("{shown}: HTTP {code}")),
        }
    }
}

impl Api {
    /// `POST /pause` (`pause`) or `POST /resume`; the error has the daemon's reason.
    pub async fn request_pause(&self, pause: bool) -> Result<(), String> {
        self.operator_request(if pause { "/pause" } else { "/resume" }).await
    }

    /// `pglookout-ctl failover --to NODE`: `POST /failover?to=NODE` at NODE's daemon, then
    /// its state until NODE answers as a connected primary, for at most `timeout`. `Ok` has
    /// the lines to print (each step with its time); `Err` says what was last seen.
    pub async fn manual_failover(&self, to: &str, timeout: std::time::Duration) -> Result<Vec<String>, String> {
        let start = std::time::Instant::now();
        let stamp = |what: String| format!("{:6.1} s  {what}", start.elapsed().as_secs_f64());
        let mut lines = Vec::new();
        let query = format!("/failover?to={to}");
        self.operator_request(&query).await?;
        lines.push(stamp(format!("{to}'s daemon took the request")));
        let mut last = String::new();
        while start.elapsed() < timeout {
            if let Ok(doc) = self.read_view().await {
                let node = &doc["db_nodes"][to];
                if node["connection"] == Value::Bool(true) && node["pg_is_in_recovery"] == Value::Bool(false) {
                    lines.push(stamp(format!("{to} answers as the primary")));
                    return Ok(lines);
                }
                let summary = doc["decision"]["summary"].as_str().unwrap_or_default().to_string();
                if summary != last && !summary.is_empty() {
                    lines.push(stamp(format!("{to}'s daemon: {}", crate::text::printable(&summary))));
                    last = summary;
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        }
        Err(format!(
            "{to} was not promoted within {:.0} s; its daemon's last decision: {}\n{}",
            timeout.as_secs_f64(),
            crate::text::printable(&last),
            lines.join("\n")
        ))
    }

    /// `pglookout-ctl switchover`: `POST /switchover` at the primary's daemon, then its steps
    /// (`GET /switchover`), each handed to `print` with its time as it comes. `Ok` once the
    /// daemon says it succeeded (the new primary connected, the old one streaming from it).
    pub async fn switchover(&self, to: Option<&str>, timeout: f64, print: &mut dyn FnMut(&str)) -> Result<(), String> {
        let mut path = format!("/switchover?timeout={timeout}");
        if let Some(to) = to {
            path.push_str(&format!("&to={}", crate::query::encode(to)));
        }
        let answer = self.operator_post(&path).await?;
        let id = answer["id"].as_str().unwrap_or_default().to_string();
        print(&format!(
            "switchover {id}: {} -> {}",
            crate::text::printable(answer["from"].as_str().unwrap_or("?")),
            crate::text::printable(answer["to"].as_str().unwrap_or("?"))
        ));
        let client = self.client()?;
        // the target's window, then the stop, the start and the wait for streaming
        let limit = std::time::Duration::from_secs_f64(timeout + 600.0);
        let start = std::time::Instant::now();
        let mut shown = 0;
        loop {
            if let Ok(Some(p)) = self.get_json(&client, "/switchover").await {
                if p["id"].as_str() == Some(id.as_str()) {
                    let steps = p["steps"].as_array().cloned().unwrap_or_default();
                    for s in steps.iter().skip(shown) {
                        print(&format!(
                            "{:7.2} s  {}",
                            s["at"].as_f64().unwrap_or_default(),
                            crate::text::printable(s["step"].as_str().unwrap_or_default())
                        ));
                    }
                    shown = shown.max(steps.len());
                    let outcome = crate::text::printable(p["outcome"].as_str().unwrap_or_default()).into_owned();
                    match p["state"].as_str() {
                        Some("succeeded") => {
                            print(&format!("succeeded: {outcome}"));
                            return Ok(());
                        }
                        Some("failed") => return Err(format!("switchover failed: {outcome}")),
                        _ => {}
                    }
                }
            }
            if start.elapsed() > limit {
                return Err(format!(
                    "no end of the switchover seen within {:.0} s",
                    limit.as_secs_f64()
                ));
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }

    /// An operator's `POST` (pause, resume, failover): 202, or the daemon's reason.
    async fn operator_request(&self, path: &str) -> Result<(), String> {
        self.operator_post(path).await.map(|_| ())
    }

    /// An operator's `POST`: the 202 answer's body, or the daemon's reason.
    async fn operator_post(&self, path: &str) -> Result<Value, String> {
        let client = self.client()?;
        let shown = format!("{}{path}", self.shown());
        let resp = self
            .request(&client, reqwest::Method::POST, path)
            .send()
            .await
            .map_err(|e| format!("{shown}: {}", describe_request_error(e, self.timeout)))?;
        let code = resp.status().as_u16();
        let body = resp.json::<Value>().await.unwrap_or_default();
        let why = body.get("error").and_then(Value::as_str).map(str::to_string);
        match (code, why) {
            (202, _) => Ok(body),
            (401, _) => Err(format!("{shown}: HTTP 401: the daemon wants a bearer token (--token)")),
            (c, Some(why)) => Err(format!("{shown}: HTTP {c}: {}", crate::text::printable(&why))),
            (c, None) => Err(format!("{shown}: HTTP {c}")),
        }
    }
}

/// A daemon's base URL must be an absolute `http` or `https` URL with a host: said before any
/// request, so that a mistyped one is not reported as reqwest's "builder error".
pub fn check_url(url: &str) -> Result<(), String> {
    let bad = |why: &str| {
        Err(format!(
            "bad URL {:?}: {why} (e.g. http://127.0.0.1:15000)",
            crate::text::printable(url)
        ))
    };
    match reqwest::Url::parse(url) {
        Err(e) => bad(&e.to_string()),
        Ok(u) if u.scheme() != "http" && u.scheme() != "https" => bad(&format!(
            "the scheme is {:?}, not http or https",
            crate::text::printable(u.scheme())
        )),
        Ok(u) if u.host_str().is_none_or(str::is_empty) => bad("no host"),
        Ok(_) => Ok(()),
    }
}

/// What failed in a request to a daemon's API, in words: "timed out", "connection refused",
/// "TLS", "cannot resolve the host name", "bad URL", ... followed by the causes (the error
/// source chain), and never reqwest's own "error sending request" or "builder error", which
/// say nothing about why. Without the URL, which the caller shows without its credentials.
pub fn describe_request_error(e: reqwest::Error, timeout: Duration) -> String {
    use std::error::Error as _;
    let e = e.without_url();
    let mut causes: Vec<String> = Vec::new();
    let (mut refused, mut reset, mut tls) = (false, false, false);
    let mut src = e.source();
    while let Some(cause) = src {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            match io.kind() {
                std::io::ErrorKind::ConnectionRefused => refused = true,
                std::io::ErrorKind::ConnectionReset
                | std::io::ErrorKind::ConnectionAborted
                | std::io::ErrorKind::UnexpectedEof
                | std::io::ErrorKind::BrokenPipe => reset = true,
                _ => {}
            }
        }
        if cause.downcast_ref::<openssl::ssl::Error>().is_some()
            || cause.downcast_ref::<openssl::error::ErrorStack>().is_some()
        {
            tls = true;
        }
        let text = cause.to_string();
        if !causes.iter().any(|c| c.contains(&text)) {
            causes.push(text);
        }
        src = cause.source();
    }
    let all = causes.join(": ");
    let lower = all.to_lowercase();
    tls = tls
        || ["certificate", "ssl", "tls", "handshake"]
            .iter()
            .any(|w| lower.contains(w));
    let what = if e.is_builder() {
        "bad URL".to_string()
    } else if e.is_timeout() {
        format!("timed out (no answer within {} s)", timeout.as_secs_f64())
    } else if refused {
        "connection refused (is pglookout running there?)".to_string()
    } else if lower.contains("dns error") || lower.contains("failed to lookup address") {
        "cannot resolve the host name".to_string()
    } else if tls {
        "TLS failure (wrong CA file or certificate, or not an HTTPS server)".to_string()
    } else if reset {
        "the connection was closed (is it an HTTPS server, or HTTP on an HTTPS port?)".to_string()
    } else if e.is_connect() {
        "cannot connect".to_string()
    } else if e.is_body() || e.is_decode() {
        "the answer could not be read".to_string()
    } else {
        "the request failed".to_string()
    };
    if all.is_empty() {
        what
    } else {
        format!("{what}: {all}")
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
    let (config, own, master) = bring_back(config_path, master, "a rejoin").await?;
    crate::act::rejoin::rejoin(&config, &master)
        .await
        .map_err(|e| e.to_string())?;
    Ok(format!("{own} is started as a standby of {master}"))
}

/// `pglookout-ctl reinit`: rebuilds the node beside `config_path` from `master` with its
/// `reinit_command` (`act::reinit`), with the checks of [`rejoin`].
pub async fn reinit(config_path: &Path, master: Option<String>) -> Result<String, String> {
    let (config, own, master) = bring_back(config_path, master, "a reinit").await?;
    if config.reinit_command.is_none() {
        return Err(format!(
            "{}: reinit_command is required for a reinit",
            config_path.display()
        ));
    }
    crate::act::reinit::reinit(&config, &master, "asked by pglookout-ctl reinit")
        .await
        .map_err(|e| e.to_string())?;
    Ok(format!("{own} is rebuilt from {master} and streams from it"))
}

/// The checks `rejoin` and `reinit` share: the config, our node and the master (`what` names
/// the action in the refusals).
async fn bring_back(
    config_path: &Path,
    master: Option<String>,
    what: &str,
) -> Result<(crate::config::Config, String, String), String> {
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
            return Err(format!("{}: {key} is required for {what}", config_path.display()));
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
                "{own} answers as a primary: stop or fence it first ({what} throws away what it wrote after the failover)"
            ));
        }
    }
    Ok((config, own, master))
}

/// Rows as aligned columns: each column as wide as its widest cell (in characters), at least
/// its `min` width, then `sep`; `right` columns are aligned to the right. The last column is not
/// padded. Cells are shown through [`crate::text::printable`]: they come from peers' documents.
struct Table {
    /// (header, min width, right-aligned, separator after it)
    columns: Vec<(&'static str, usize, bool, &'static str)>,
    rows: Vec<Vec<String>>,
}

impl Table {
    fn new(columns: &[(&'static str, usize, bool, &'static str)]) -> Table {
        Table {
            columns: columns.to_vec(),
            rows: Vec::new(),
        }
    }

    fn row(&mut self, cells: Vec<String>) {
        self.rows
            .push(cells.iter().map(|c| crate::text::printable(c).into_owned()).collect());
    }

    fn render(&self, out: &mut String) {
        let width = |i: usize| {
            self.rows
                .iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.chars().count())
                .chain([self.columns[i].0.chars().count(), self.columns[i].1])
                .max()
                .unwrap_or(0)
        };
        let widths: Vec<usize> = (0..self.columns.len()).map(width).collect();
        let headers: Vec<String> = self.columns.iter().map(|c| c.0.to_string()).collect();
        for cells in std::iter::once(&headers).chain(&self.rows) {
            let mut line = String::new();
            for (i, (_, _, right, sep)) in self.columns.iter().enumerate() {
                let cell = cells.get(i).map_or("", String::as_str);
                let last = i + 1 == self.columns.len();
                let pad = " ".repeat(widths[i].saturating_sub(cell.chars().count()));
                if last {
                    line.push_str(cell);
                } else if *right {
                    let _ = write!(line, "{pad}{cell}{sep}");
                } else {
                    let _ = write!(line, "{cell}{pad}{sep}");
                }
            }
            let _ = writeln!(out, "{}", line.trim_end());
        }
    }
}

/// The event history as a table, newest first.
pub fn render_history(events: &[crate::events::Event]) -> String {
    let mut table = Table::new(&[
        ("TIME (UTC)", 0, false, " "),
        ("NODE", 10, false, " "),
        ("EVENT", 20, false, " "),
        ("MASTER", 20, false, " "),
        ("REASON", 0, false, ""),
    ]);
    for e in events {
        let masters = match (&e.old_master, &e.new_master) {
            (None, None) => "-".to_string(),
            (o, n) => format!("{} -> {}", o.as_deref().unwrap_or("-"), n.as_deref().unwrap_or("-")),
        };
        let node = if e.node.is_empty() { "(observer)" } else { &e.node };
        table.row(vec![
            crate::state::iso(&e.time),
            node.to_string(),
            e.kind.clone(),
            masters,
            e.reason.clone(),
        ]);
    }
    let mut out = String::new();
    table.render(&mut out);
    out
}

/// Reads a state document from a state file.
pub fn read_file(path: &Path) -> Result<Value, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: not valid JSON: {e}", path.display()))
}

/// A state file last written longer ago than this is stale: its daemon is probably not running
/// (`pglookout_current_master` exits 255 then, and `pglookout-ctl status` exits 1).
pub const STATE_MAX_AGE: Duration = Duration::from_secs(60);

/// How old a state file is, by its modification time against the wall clock (file times are
/// wall-clock times: this is the only meaningful comparison).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum FileAge {
    /// Written this long ago (or up to [`STATE_MAX_AGE`] in the future: a small clock step).
    Fresh(Duration),
    /// Written longer than [`STATE_MAX_AGE`] ago.
    Stale(Duration),
    /// Dated this far in the future, more than [`STATE_MAX_AGE`]: the clock was set back, or the
    /// time was set by hand; it proves nothing about now.
    Future(Duration),
}

impl FileAge {
    pub fn is_fresh(&self) -> bool {
        matches!(self, FileAge::Fresh(_))
    }

    /// "written 4 s ago", "dated 3600 s in the future".
    pub fn when(&self) -> String {
        match self {
            FileAge::Fresh(age) | FileAge::Stale(age) => format!("written {} s ago", age.as_secs()),
            FileAge::Future(ahead) => format!("dated {} s in the future", ahead.as_secs()),
        }
    }

    /// Why it is not taken as the present, when it is not.
    pub fn stale_reason(&self) -> Option<String> {
        let limit = STATE_MAX_AGE.as_secs();
        match self {
            FileAge::Fresh(_) => None,
            FileAge::Stale(_) => Some(format!("more than {limit} s ago: is pglookout running?")),
            FileAge::Future(_) => Some(format!(
                "more than {limit} s ahead: was the clock set back? is pglookout running?"
            )),
        }
    }
}

/// The age of the state file at `path` (see [`FileAge`]).
pub fn state_file_age(path: &Path) -> std::io::Result<FileAge> {
    let modified = std::fs::metadata(path)?.modified()?;
    Ok(match std::time::SystemTime::now().duration_since(modified) {
        Ok(age) if age > STATE_MAX_AGE => FileAge::Stale(age),
        Ok(age) => FileAge::Fresh(age),
        Err(e) if e.duration() > STATE_MAX_AGE => FileAge::Future(e.duration()),
        Err(_) => FileAge::Fresh(Duration::ZERO),
    })
}

/// Where a state document shown by `pglookout-ctl status` came from.
#[derive(Clone, Debug, PartialEq)]
pub enum ViewSource {
    /// A daemon's API answered.
    Api { url: String },
    /// A state file: named on the command line (`api` is `None`), or the one of a config whose
    /// daemon's API (its URL) did not answer, for the reason given (the whole error).
    StateFile {
        path: std::path::PathBuf,
        age: FileAge,
        api: Option<(String, String)>,
    },
}

impl ViewSource {
    /// Whether the document is too old to be taken as the present.
    pub fn is_stale(&self) -> bool {
        matches!(self, ViewSource::StateFile { age, .. } if !age.is_fresh())
    }

    /// One line for stderr when the document is not the daemon's live answer although one was
    /// asked for, else `None`.
    pub fn notice(&self) -> Option<String> {
        match self {
            ViewSource::StateFile {
                path,
                age,
                api: Some((_, why)),
            } => Some(format!(
                "the API did not answer: {why}; showing the state file {}, {}",
                path.display(),
                age.when()
            )),
            _ => None,
        }
    }

    /// The error for a stale document (shown all the same), else `None`.
    pub fn stale_error(&self) -> Option<String> {
        match self {
            ViewSource::StateFile { path, age, .. } => age
                .stale_reason()
                .map(|why| format!("the state file {} is STALE: {}, {why}", path.display(), age.when())),
            ViewSource::Api { .. } => None,
        }
    }
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

/// `pglookout-ctl status`: the view as a table, headed by where it came from; a view from a
/// stale state file says so before and after the table.
pub fn render_from(doc: &Value, now: Timestamp, source: &ViewSource) -> String {
    let mut out = String::new();
    let mut stale = None;
    match source {
        ViewSource::Api { url } => {
            let _ = writeln!(out, "SOURCE          {}", crate::text::printable(url));
        }
        ViewSource::StateFile { path, age, api } => {
            let why = api
                .as_ref()
                .map(|(url, _)| format!(" (the API at {} did not answer)", crate::text::printable(url)))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "SOURCE          state file {}, {}{why}",
                crate::text::printable(&path.display().to_string()),
                age.when()
            );
            stale = age.stale_reason();
        }
    }
    if let Some(s) = &stale {
        let _ = writeln!(out, "STALE           {s} What follows is what it saw then, not now.");
    }
    out.push('\n');
    out.push_str(&render(doc, now));
    if stale.is_some() {
        let _ = writeln!(out, "STALE           the state above is old: see SOURCE");
    }
    out
}

/// Each primary's synchronous replication (ours; the original's documents have none): its
/// settings and one line per WAL sender of its `pg_stat_replication`, which says which standby
/// is synchronous.
fn render_sync(nodes: &serde_json::Map<String, Value>, out: &mut String) {
    use crate::text::printable;
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => "-".to_string(),
    };
    for (name, n) in nodes {
        let keys = ["synchronous_standby_names", "synchronous_commit", "pg_stat_replication"];
        if n["pg_is_in_recovery"].as_bool() != Some(false) || keys.iter().all(|k| n.get(*k).is_none()) {
            continue;
        }
        let names = match &n["synchronous_standby_names"] {
            Value::String(s) if s.is_empty() => "'' (all asynchronous)".to_string(),
            Value::String(s) => format!("'{s}'"),
            _ => "unknown".to_string(),
        };
        let _ = writeln!(
            out,
            "\nSYNC REPLICATION on {}: synchronous_standby_names {}, synchronous_commit {}",
            printable(name),
            printable(&names),
            printable(&text(&n["synchronous_commit"]))
        );
        let senders = n["pg_stat_replication"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        if senders.is_empty() {
            let _ = writeln!(out, "  no WAL senders");
            continue;
        }
        let mut table = Table::new(&[
            ("  APPLICATION NAME", 18, false, " "),
            ("STATE", 9, false, " "),
            ("SYNC STATE", 10, false, " "),
            ("PRIORITY", 8, true, "  "),
            ("SENT LSN", 10, false, " "),
            ("WRITE LSN", 10, false, " "),
            ("FLUSH LSN", 10, false, " "),
            ("REPLAY LSN", 0, false, ""),
        ]);
        for w in senders {
            table.row(vec![
                format!("  {}", text(&w["application_name"])),
                text(&w["state"]),
                text(&w["sync_state"]),
                text(&w["sync_priority"]),
                text(&w["sent_lsn"]),
                text(&w["write_lsn"]),
                text(&w["flush_lsn"]),
                text(&w["replay_lsn"]),
            ]);
        }
        table.render(out);
    }
}

/// The view as a table. Every name and text from the document is shown with its control
/// characters escaped ([`crate::text::printable`]): they come from peers.
pub fn render(doc: &Value, now: Timestamp) -> String {
    use crate::text::printable;
    let mut out = String::new();
    let mut table = Table::new(&[
        ("NODE", 16, false, " "),
        ("ROLE", 8, false, " "),
        ("CONNECTED", 9, false, " "),
        ("RECEIVE LSN", 14, false, " "),
        ("REPLAY LSN", 14, false, " "),
        ("LAG (s)", 9, true, "  "),
        ("LAST SEEN", 0, false, ""),
    ]);
    let empty = serde_json::Map::new();
    let nodes = doc["db_nodes"].as_object().unwrap_or(&empty);
    for (name, n) in nodes {
        let lag = n["replication_time_lag"]
            .as_f64()
            .map_or("-".into(), |l| format!("{l:.2}"));
        let connected = if n["connection"].as_bool() == Some(true) {
            "yes"
        } else {
            "no"
        };
        table.row(vec![
            name.clone(),
            role(n).to_string(),
            connected.to_string(),
            n["pg_last_xlog_receive_location"].as_str().unwrap_or("-").to_string(),
            n["pg_last_xlog_replay_location"].as_str().unwrap_or("-").to_string(),
            lag,
            age(&n["fetch_time"], now),
        ]);
    }
    table.render(&mut out);
    render_sync(nodes, &mut out);
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
                            format!("{}={}/{up}", printable(k), role(v))
                        })
                        .collect()
                })
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "  {:<14} {} fetched {}: {}",
                printable(obs),
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
    let _ = writeln!(out, "\nCURRENT MASTER  {}", printable(master));
    if doc["pause"]["paused"] == Value::Bool(true) {
        let since = doc["pause"]["since"].as_str().unwrap_or("?");
        let _ = writeln!(
            out,
            "PAUSED          since {} (no failover, fence, follow or rejoin; `pglookout-ctl resume`)",
            printable(since)
        );
    }
    // ours, or one the old primary's daemon announces in an observer view
    let announced = doc["observer_nodes"]
        .as_object()
        .into_iter()
        .flat_map(|o| o.values())
        .filter_map(Value::as_object)
        .flat_map(|view| view.values())
        .map(|n| &n["switchover"]);
    let live = std::iter::once(&doc["switchover"]).chain(announced).find(|w| {
        w["from"].is_string()
            && w["to"].is_string()
            && w["until"]
                .as_str()
                .and_then(crate::state::parse_iso)
                .is_none_or(|until| until > now)
    });
    if let Some(w) = live {
        let _ = writeln!(
            out,
            "SWITCHOVER      {} -> {}: {}",
            printable(w["from"].as_str().unwrap_or("?")),
            printable(w["to"].as_str().unwrap_or("?")),
            printable(w["step"].as_str().unwrap_or(""))
        );
    }
    if let Some(summary) = doc["decision"]["summary"].as_str() {
        let _ = writeln!(out, "LAST DECISION   {}", printable(summary));
        for r in doc["decision"]["reasons"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            let _ = writeln!(out, "  - {}", printable(r));
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

    /// A switchover in progress, announced in an observer view, until its end.
    #[test]
    fn renders_a_switchover_in_progress() {
        let mut doc = serde_json::json!({
            "db_nodes": {},
            "observer_nodes": {"pg1": {"fetch_time": "2024-01-01T00:00:00Z", "connection": true,
                "pg1": {"fetch_time": "2024-01-01T00:00:00Z", "connection": false,
                        "switchover": {"from": "pg1", "to": "pg2\u{1b}", "since": "2024-01-01T00:00:00Z",
                                       "until": "2024-01-01T00:01:00Z", "step": "stopped cleanly at 0/3000028"}}}},
            "current_master": "pg1",
        });
        let out = render(&doc, parse_iso("2024-01-01T00:00:01Z").expect("t"));
        assert!(
            out.contains("SWITCHOVER      pg1 -> pg2\\u{1b}: stopped cleanly at 0/3000028"),
            "{out}"
        );
        let out = render(&doc, parse_iso("2024-01-01T00:02:00Z").expect("t"));
        assert!(!out.contains("SWITCHOVER"), "past its end:\n{out}");
        doc["observer_nodes"] = serde_json::json!({});
        doc["switchover"] = serde_json::json!({"from": "pg1", "to": "pg3", "step": "announced"});
        let out = render(&doc, parse_iso("2024-01-01T00:02:00Z").expect("t"));
        assert!(out.contains("SWITCHOVER      pg1 -> pg3: announced"), "{out}");
    }

    #[test]
    fn renders_which_standby_is_synchronous() {
        let doc = serde_json::json!({
            "db_nodes": {
                "pg1": {"fetch_time": "2024-01-01T00:00:00Z", "connection": true, "pg_is_in_recovery": false,
                        "synchronous_standby_names": "FIRST 1 (pg2)", "synchronous_commit": "remote_apply",
                        "pg_stat_replication": [
                            {"application_name": "pg2", "state": "streaming", "sync_state": "sync", "sync_priority": 1,
                             "sent_lsn": "0/3000148", "write_lsn": "0/3000148", "flush_lsn": "0/3000148", "replay_lsn": "0/3000148"},
                            {"application_name": "pg3\u{1b}", "state": null, "sync_state": null, "sync_priority": null,
                             "sent_lsn": null, "write_lsn": null, "flush_lsn": null, "replay_lsn": null}]},
                "pg2": {"fetch_time": "2024-01-01T00:00:00Z", "connection": true, "pg_is_in_recovery": true}
            },
            "current_master": "pg1"
        });
        let out = render(&doc, parse_iso("2024-01-01T00:00:01Z").expect("t"));
        assert!(
            out.contains(
                "SYNC REPLICATION on pg1: synchronous_standby_names 'FIRST 1 (pg2)', synchronous_commit remote_apply"
            ),
            "{out}"
        );
        assert!(
            out.lines().any(|l| l.split_whitespace().collect::<Vec<_>>()
                == [
                    "pg2",
                    "streaming",
                    "sync",
                    "1",
                    "0/3000148",
                    "0/3000148",
                    "0/3000148",
                    "0/3000148"
                ]),
            "{out}"
        );
        assert!(out.contains("  pg3\\u{1b}"), "{out}");
        // the original's documents have no such section
        let original: Value =
            serde_json::from_str(include_str!("../tests/fixtures/pg2-state-file.json")).expect("fixture");
        assert!(!render(&original, parse_iso("2024-01-01T00:00:01Z").expect("t")).contains("SYNC REPLICATION"));
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

    #[test]
    fn names_and_texts_from_peers_are_shown_with_their_control_characters_escaped() {
        let forged = "pg9\n2026-01-01T00:00:00.000Z\tpglookout\tERROR\tforged \x1b[31mred\x1b]0;title\x07";
        let doc = serde_json::json!({
            "db_nodes": {forged: {"fetch_time": "2024-01-01T00:00:00Z", "connection": true,
                "pg_is_in_recovery": true, "pg_last_xlog_receive_location": "0/1\x1b[2J"}},
            "observer_nodes": {forged: {"fetch_time": "2024-01-01T00:00:00Z", "connection": true,
                forged: {"fetch_time": "2024-01-01T00:00:00Z", "connection": true, "pg_is_in_recovery": false}}},
            "current_master": forged,
            "decision": {"summary": forged, "reasons": [forged]}
        });
        let out = render(&doc, parse_iso("2024-01-01T00:00:01Z").expect("t"));
        assert!(
            !out.contains('\x1b') && !out.contains('\x07') && !out.contains('\t'),
            "{out:?}"
        );
        assert!(
            out.lines().all(|l| !l.starts_with("2026-01-01")),
            "no line of the peer's making: {out}"
        );
        assert!(out.contains("pg9\\n2026-01-01T00:00:00.000Z\\tpglookout"), "{out}");
        assert!(out.contains("0/1\\u{1b}[2J"), "{out}");

        let mut event = crate::events::Event::new(
            parse_iso("2024-01-01T00:00:00Z").expect("t"),
            forged,
            "master_changed\x1b[0m",
            forged,
        );
        event.old_master = Some(forged.into());
        let out = render_history(&[event]);
        assert!(!out.contains('\x1b') && !out.contains('\t'), "{out:?}");
        assert_eq!(out.lines().count(), 2, "{out}");
    }

    #[test]
    fn history_columns_line_up_whatever_the_widths() {
        let event = |time: &str, node: &str, kind: &str, new: &str| -> crate::events::Event {
            serde_json::from_value(serde_json::json!({
                "time": time, "node": node, "kind": kind, "reason": "why", "new_master": new
            }))
            .expect("event")
        };
        let out = render_history(&[
            event("2024-01-01T00:00:00.123456Z", "pg1", "master_changed", "pg2"),
            event(
                "2024-01-01T00:00:01Z",
                "a-much-longer-node-name",
                "failover_started_long_kind_name",
                "pg3",
            ),
        ]);
        let lines: Vec<&str> = out.lines().collect();
        let starts = |l: &str| -> Vec<usize> {
            // a column starts after a space that follows a non-space (one space separates them)
            let b = l.as_bytes();
            (1..b.len()).filter(|&i| b[i] != b' ' && b[i - 1] == b' ').collect()
        };
        let header = starts(lines[0]);
        let header: Vec<usize> = header.into_iter().filter(|&i| lines[0].as_bytes()[i] != b'(').collect();
        for l in &lines[1..] {
            let s = starts(l);
            for col in &header {
                assert!(s.contains(col), "column at {col} of the header:\n{out}");
            }
        }
        assert!(lines[0].starts_with("TIME (UTC)                  NODE"), "{out}");
    }

    #[test]
    fn a_state_file_older_than_the_limit_is_marked_stale() {
        let dir = tempfile::tempdir().expect("dir");
        let p = dir.path().join("state.json");
        std::fs::write(&p, "{}").expect("w");
        assert!(matches!(state_file_age(&p), Ok(FileAge::Fresh(_))));
        let set = |t: std::time::SystemTime| {
            std::fs::File::options()
                .write(true)
                .open(&p)
                .expect("open")
                .set_modified(t)
                .expect("mtime")
        };
        set(std::time::SystemTime::now() - Duration::from_secs(480));
        let age = state_file_age(&p).expect("age");
        assert!(matches!(age, FileAge::Stale(a) if a.as_secs() >= 480), "{age:?}");
        set(std::time::SystemTime::now() + Duration::from_secs(3600));
        assert!(matches!(state_file_age(&p), Ok(FileAge::Future(_))));
        set(std::time::SystemTime::now() + Duration::from_secs(5));
        assert!(matches!(state_file_age(&p), Ok(FileAge::Fresh(_))));

        let doc = serde_json::json!({
            "db_nodes": {"pg1": {"fetch_time": "2024-01-01T00:00:00Z", "connection": true, "pg_is_in_recovery": false}},
            "current_master": "pg1"
        });
        let now = parse_iso("2024-01-01T00:08:00Z").expect("t");
        let source = ViewSource::StateFile {
            path: p.clone(),
            age: FileAge::Stale(Duration::from_secs(482)),
            api: Some((
                "http://127.0.0.1:15000".into(),
                "http://127.0.0.1:15000/status: connection refused".into(),
            )),
        };
        assert!(source.is_stale());
        let out = render_from(&doc, now, &source);
        assert!(
            out.starts_with(&format!(
                "SOURCE          state file {}, written 482 s ago (the API at http://127.0.0.1:15000 did not answer)\nSTALE           more than 60 s ago",
                p.display()
            )),
            "{out}"
        );
        assert!(out.lines().nth(1).is_some_and(|l| l.starts_with("STALE")), "{out}");
        assert!(
            out.trim_end().lines().last().is_some_and(|l| l.starts_with("STALE")),
            "{out}"
        );
        let notice = source.notice().expect("a notice");
        assert_eq!(
            notice,
            format!(
                "the API did not answer: http://127.0.0.1:15000/status: connection refused; showing the state file {}, written 482 s ago",
                p.display()
            )
        );
        let error = source.stale_error().expect("stale");
        assert!(
            error.contains("is STALE: written 482 s ago, more than 60 s ago"),
            "{error}"
        );
        // fresh, from the command line: no notice, not stale
        let fresh = ViewSource::StateFile {
            path: p.clone(),
            age: FileAge::Fresh(Duration::from_secs(1)),
            api: None,
        };
        assert!(!fresh.is_stale() && fresh.notice().is_none() && fresh.stale_error().is_none());
        let live = ViewSource::Api {
            url: "http://127.0.0.1:15000".into(),
        };
        assert!(render_from(&doc, now, &live).starts_with("SOURCE          http://127.0.0.1:15000\n\nNODE"));
    }

    #[test]
    fn bad_urls_are_named_before_any_request() {
        for (url, why) in [
            ("127.0.0.1:15000", "relative URL without a base"),
            ("localhost:15000", "the scheme is \"localhost\""),
            ("ftp://127.0.0.1:15000", "not http or https"),
            ("http://", "empty host"),
        ] {
            let e = check_url(url).expect_err(url);
            assert!(e.starts_with("bad URL") && e.contains(why), "{url}: {e}");
        }
        assert!(check_url("https://[::1]:15000").is_ok());
    }

    #[tokio::test]
    async fn request_errors_say_what_failed() {
        // refused: a port nobody listens on
        let port = std::net::TcpListener::bind(("127.0.0.1", 0))
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let e = Api::new(&format!("http://127.0.0.1:{port}"))
            .read_view()
            .await
            .expect_err("refused");
        assert!(e.contains("/status: connection refused"), "{e}");
        assert!(!e.contains("error sending request"), "{e}");

        // timed out: a listener that takes the connection (the kernel's backlog) and never answers
        let silent = std::net::TcpListener::bind(("127.0.0.1", 0)).expect("bind");
        let mut api = Api::new(&format!("http://{}", silent.local_addr().expect("addr")));
        api.timeout = Duration::from_millis(200);
        let e = api.request_check().await.expect_err("timeout");
        assert!(e.contains("/check: timed out (no answer within 0.2 s)"), "{e}");
        assert!(!e.contains("error sending request"), "{e}");

        // TLS: HTTPS to a server that answers in plain HTTP
        let plain = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await.expect("bind");
        let addr = plain.local_addr().expect("addr");
        let server = tokio::spawn(async move {
            while let Ok((mut conn, _)) = plain.accept().await {
                use tokio::io::AsyncWriteExt;
                let _ = conn
                    .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                    .await;
            }
        });
        let e = Api::new(&format!("https://{addr}")).read_view().await.expect_err("TLS");
        server.abort();
        assert!(e.contains("/status: TLS failure"), "{e}");

        // a bad URL: said as such, not as reqwest's "builder error"
        let e = Api::new("localhost:15000").read_view().await.expect_err("bad URL");
        assert!(e.starts_with("bad URL \"localhost:15000\""), "{e}");
        assert!(!e.contains("builder error"), "{e}");
    }
}
