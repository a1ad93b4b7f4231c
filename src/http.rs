//! The HTTP API, as the original: `GET /state.json` (the node-state map), `POST /check` (204;
//! asks for an immediate poll round; a burst of requests makes one round), and a real 404 for
//! anything else; plus ours: `GET /status` (the whole state document), `GET /decision` (the
//! latest decision and its reasons), `GET /metrics` (Prometheus) and the
//! health checks `/primary`, `/replica[?lag=]`, `/sync`, `/health`, `/liveness` (200 or 503), and
//! `GET /history` (the event history, newest first), `GET /series` (lag over time), and
//! `POST /pause` / `POST /resume`, `POST /failover?to=` and the switchover's `POST
//! /switchover[/promote|/abort]` (handed to the decision loop), `GET /switchover` (its steps). It only reads snapshots, the
//! series and the history file; it owns no state.

use crate::health;
use crate::poll::Poller;
use crate::statefile::to_pretty_json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, Method, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use openssl::ssl::SslAcceptor;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// What the HTTP server may read besides the poller's snapshot: the latest state document
/// (what the state file holds), `null` before the first check. Defined here, where it is read,
/// so that the daemon (which writes it) depends on `http` and not the other way round.
pub type StatusView = tokio::sync::watch::Receiver<std::sync::Arc<serde_json::Value>>;

/// What the decision loop says of our own node (see [`Api::own`]).
pub use crate::state::OwnStatus;

#[derive(Clone)]
pub struct Api {
    /// `POST /pause` and `POST /resume` for the decision loop (true: pause).
    pub pause: tokio::sync::mpsc::Sender<bool>,
    /// `POST /failover?to=` our node, for the decision loop.
    pub failover: tokio::sync::mpsc::Sender<()>,
    /// `POST /switchover`, `/switchover/promote` and `/switchover/abort`, for the decision
    /// loop.
    pub switchover: tokio::sync::mpsc::Sender<SwitchoverAsk>,
    /// Our latest switchover's steps (`GET /switchover`).
    pub switchover_progress: crate::act::switchover::Shared,
    pub poller: Poller,
    /// The running config (for the health checks).
    pub config: tokio::sync::watch::Receiver<std::sync::Arc<crate::config::Config>>,
    /// Monotonic start time (liveness before the first round).
    pub start: f64,
    /// When the decision loop last ran (liveness).
    pub decided: std::sync::Arc<crate::clock::Beat>,
    /// The file thread (what it last saw of the alert files, for `/metrics`).
    pub files: crate::act::files::Files,
    /// Counters for `/metrics`.
    pub counters: std::sync::Arc<crate::prometheus::Counters>,
    /// The latest state document, decision included (ours; the original serves only the nodes).
    pub status: StatusView,
    /// What the decision loop says of our own node: served in its `/state.json` entry, and
    /// whether it holds no lease (then `/primary` and `/health` answer 503).
    pub own: tokio::sync::watch::Receiver<OwnStatus>,
    /// Lag over time, fed by the decision loop.
    pub series: std::sync::Arc<std::sync::Mutex<crate::series::Series>>,
    /// The voter-set digests other node daemons sent with their fetches of `/state.json`,
    /// relayed in their nodes' entries.
    pub relays: std::sync::Arc<std::sync::Mutex<crate::decide::voters::Relays>>,
}

/// A switchover request for the decision loop, with the channel its answer comes back on.
#[derive(Debug)]
pub enum SwitchoverAsk {
    /// `POST /switchover[?to=NODE&timeout=S]` at the primary's daemon: `Ok((id, target))`.
    Start {
        to: Option<String>,
        timeout: std::time::Duration,
        reply: tokio::sync::oneshot::Sender<Result<(String, String), String>>,
    },
    /// `POST /switchover/promote?from=&lsn=&id=&window=` at the target's daemon.
    Promote {
        from: String,
        lsn: crate::lsn::Lsn,
        id: String,
        window: f64,
        reply: tokio::sync::oneshot::Sender<Result<(), String>>,
    },
    /// `POST /switchover/abort` at the target's daemon.
    Withdraw {
        reply: tokio::sync::oneshot::Sender<crate::decide::switchover::Withdrawn>,
    },
}

/// The longest `POST /switchover` may ask for (`timeout=`), and its default.
pub const SWITCHOVER_TIMEOUT_MAX: f64 = 600.0;
pub const SWITCHOVER_TIMEOUT_DEFAULT: f64 = 30.0;

/// The address the original binds: `""` means every IPv4 interface.
pub fn bind_address(http_address: &str, http_port: u16) -> String {
    let host = if http_address.is_empty() {
        "0.0.0.0"
    } else {
        http_address
    };
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{http_port}")
    } else {
        format!("{host}:{http_port}")
    }
}

#[derive(Debug, thiserror::Error)]
#[error("cannot listen for HTTP on {address}: {source}")]
pub struct BindError {
    pub address: String,
    #[source]
    pub source: std::io::Error,
}

pub async fn bind(http_address: &str, http_port: u16) -> Result<TcpListener, BindError> {
    let address = bind_address(http_address, http_port);
    TcpListener::bind(&address)
        .await
        .map_err(|source| BindError { address, source })
}

/// The header of a `/history` answer cut short by its size cap.
pub const TRUNCATED: header::HeaderName = header::HeaderName::from_static("x-pglookout-truncated");

fn json_response(status: StatusCode, bytes: Vec<u8>) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], bytes).into_response()
}

/// Whether a given bearer token is ours: equal lengths first, since `memcmp::eq` compares in
/// constant time but needs them.
fn token_matches(given: &str, token: &str) -> bool {
    given.len() == token.len() && openssl::memcmp::eq(given.as_bytes(), token.as_bytes())
}

/// The token of an `Authorization: Bearer <token>` value. The scheme is case-insensitive
/// (RFC 7235, section 2.1: `bearer` and `BEARER` are `Bearer`); one or more spaces follow it.
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("Bearer")
        .then(|| token.trim_start_matches(' '))
}

/// The bearer-token check: `None` lets the request through, otherwise the refusal (401 without
/// a token, 403 with a wrong one). Reads need the token only with `http_auth_scope: "all"`.
/// Refusals are counted for `/metrics` and logged throttled, with the client's address (a
/// client can send thousands a second on one connection).
fn refuse(api: &Api, req: &Request<Body>) -> Option<Response> {
    let config = api.config.borrow().clone();
    let token = config.http_auth_token.as_deref()?;
    let read = matches!(*req.method(), Method::GET | Method::HEAD);
    if read && config.http_auth_scope == crate::config::AuthScope::Mutating {
        return None;
    }
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_token);
    let error = |status: StatusCode, text: &str| {
        let body = serde_json::json!({ "error": text }).to_string();
        Some(
            (
                status,
                [
                    (header::CONTENT_TYPE, "application/json"),
                    (header::WWW_AUTHENTICATE, "Bearer"),
                ],
                body,
            )
                .into_response(),
        )
    };
    let refused = |wrong: bool, why: &str| {
        api.counters.http_auth_failed(wrong);
        if let Some(client) = req.extensions().get::<crate::http_conn::Client>() {
            client.auth_refused(req.method(), req.uri().path(), why);
        }
    };
    match given {
        None => {
            refused(false, "no bearer token");
            error(StatusCode::UNAUTHORIZED, "a bearer token is required")
        }
        Some(g) if token_matches(g, token) => None,
        Some(_) => {
            refused(true, "wrong bearer token");
            error(StatusCode::FORBIDDEN, "wrong bearer token")
        }
    }
}

async fn dispatch(State(api): State<Api>, req: Request<Body>) -> Response {
    if let Some(refusal) = refuse(&api, &req) {
        return refusal;
    }
    let path = req.uri().path();
    // The original matches by prefix (`/state.json?x` and `/state.jsonfoo` both answer).
    match *req.method() {
        Method::GET | Method::HEAD if path == "/" => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            include_str!("status_page.html"),
        )
            .into_response(),
        Method::GET | Method::HEAD if path.starts_with("/state.json") => {
            tracing::debug!(target: "WebServer", "GET {path}");
            let snapshot = api.poller.snapshots.borrow().clone();
            let config = api.config.borrow().clone();
            let word = api.own.borrow().word.clone();
            let relayed = relay(&api, &config, req.headers());
            let relayed = relayed.iter().map(|(n, d)| (n.as_str(), d.as_str()));
            let nodes = crate::state::served_nodes(&snapshot.nodes, config.own_db.as_deref(), &word, relayed);
            match to_pretty_json(&*nodes) {
                Ok(bytes) => json_response(StatusCode::OK, bytes),
                Err(e) => {
                    tracing::error!(target: "WebServer", "cannot serialize the state: {e}");
                    StatusCode::INTERNAL_SERVER_ERROR.into_response()
                }
            }
        }
        Method::GET | Method::HEAD if path == "/decision" || path == "/status" => {
            let status = api.status.borrow().clone();
            let body = if path == "/status" {
                &*status
            } else {
                &status["decision"]
            };
            match to_pretty_json(body) {
                Ok(bytes) => json_response(StatusCode::OK, bytes),
                Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
            }
        }
        Method::GET | Method::HEAD if matches!(path, "/primary" | "/replica" | "/sync" | "/health" | "/liveness") => {
            health_response(&api, path, req.uri().query())
        }
        Method::GET | Method::HEAD if path == "/history" => history_response(&api, req.uri().query()).await,
        Method::GET | Method::HEAD if path == "/series" => series_response(&api, req.uri().query()).await,
        Method::GET | Method::HEAD if path == "/metrics" => {
            let openmetrics = req
                .headers()
                .get(header::ACCEPT)
                .and_then(|a| a.to_str().ok())
                .is_some_and(|a| a.contains("application/openmetrics-text"));
            metrics_response(&api, openmetrics)
        }
        Method::POST if path == "/pause" || path == "/resume" => pause_response(&api, path == "/pause").await,
        Method::POST if path == "/failover" => failover_response(&api, req.uri().query()).await,
        Method::POST if path.starts_with("/switchover") => switchover_response(&api, path, req.uri().query()).await,
        Method::GET | Method::HEAD if path == "/switchover" => {
            let progress = api.switchover_progress.lock().ok().and_then(|p| p.clone());
            match progress {
                Some(p) => json_response(StatusCode::OK, serde_json::to_vec(&p).unwrap_or_default()),
                None => json_response(
                    StatusCode::NOT_FOUND,
                    br#"{"error": "no switchover since this daemon started"}"#.to_vec(),
                ),
            }
        }
        Method::POST if path.starts_with("/check") => {
            tracing::debug!(target: "WebServer", "POST {path}: immediate poll requested");
            api.poller.poll_now();
            StatusCode::NO_CONTENT.into_response()
        }
        _ => json_response(StatusCode::NOT_FOUND, br#"{"error": "not found"}"#.to_vec()),
    }
}

/// Keeps the voter-set digest a node daemon sent with its fetch (its node and digest headers;
/// one that is not taken is ignored: an answer is never refused for it), and returns the
/// digests to relay now. With `http_auth_token`, only a fetch that carries the token is kept,
/// whatever `http_auth_scope` says of reads: a relayed digest can hold other daemons'
/// promotions, so an open read must not plant one (our daemons send the token to observers
/// that have one).
fn relay(api: &Api, config: &crate::config::Config, headers: &axum::http::HeaderMap) -> Vec<(String, String)> {
    use crate::poll::observer::{NODE_HEADER, VOTERS_HEADER};
    let now = crate::clock::monotonic();
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let trusted = match config.http_auth_token.as_deref() {
        None => true,
        Some(token) => header(header::AUTHORIZATION.as_str())
            .and_then(bearer_token)
            .is_some_and(|g| token_matches(g, token)),
    };
    let Ok(mut relays) = api.relays.lock() else {
        return Vec::new();
    };
    if let (true, Some(node), Some(digest)) = (trusted, header(NODE_HEADER), header(VOTERS_HEADER)) {
        if !relays.record(config, node, digest, now) {
            tracing::debug!(target: "WebServer", "a voter digest sent for {:?} is not taken", crate::text::printable(node));
        }
    }
    relays.relayed(config, now)
}

/// `POST /pause` or `POST /resume` (issue 22): only a node daemon holds a pause (an observer
/// runs no failover), and without `http_auth_token` only an API that listens on loopback
/// accepts it. 202: the decision loop has it; the other node daemons of the mesh take it from
/// our `/state.json` within a poll.
async fn pause_response(api: &Api, pause: bool) -> Response {
    let config = api.config.borrow().clone();
    let refuse = |status: StatusCode, why: &str| {
        json_response(status, serde_json::json!({ "error": why }).to_string().into_bytes())
    };
    if config.own_db.is_none() {
        return refuse(
            StatusCode::CONFLICT,
            "an observer holds no pause: ask a node daemon (it runs the failovers)",
        );
    }
    if let Some(refused) = operator_only(&config, "pausing") {
        return refused;
    }
    match tokio::time::timeout(std::time::Duration::from_secs(5), api.pause.send(pause)).await {
        Ok(Ok(())) => json_response(
            StatusCode::ACCEPTED,
            serde_json::json!({ "paused": pause }).to_string().into_bytes(),
        ),
        _ => refuse(StatusCode::SERVICE_UNAVAILABLE, "the decision loop did not take it"),
    }
}

/// The refusal of an operator's request (`what`) by an API with no `http_auth_token` that
/// listens beyond loopback: anyone who reaches it could send it.
fn operator_only(config: &crate::config::Config, what: &str) -> Option<Response> {
    (config.http_auth_token.is_none() && !loopback_only(&config.http_address)).then(|| {
        let why = format!("{what} needs http_auth_token, or an API that listens on loopback only");
        json_response(
            StatusCode::FORBIDDEN,
            serde_json::json!({ "error": why }).to_string().into_bytes(),
        )
    })
}

/// `POST /failover?to=NODE` (issue 22): at NODE's own daemon only, the operator's word that the
/// primary is gone: its next decisions skip the rest of the lag window (never the failover
/// timeout of `fence_command`, the lease, the synchronous or any candidate rule). 202: the
/// decision loop has it (`pglookout-ctl failover` then watches for the promotion).
async fn failover_response(api: &Api, query: Option<&str>) -> Response {
    let config = api.config.borrow().clone();
    let refuse = |status: StatusCode, why: String| {
        json_response(status, serde_json::json!({ "error": why }).to_string().into_bytes())
    };
    let to = query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .find_map(|kv| kv.strip_prefix("to="));
    let Some(to) = to.filter(|t| !t.is_empty()) else {
        return refuse(StatusCode::BAD_REQUEST, "name the node: POST /failover?to=NODE".into());
    };
    if config.own_db.as_deref() != Some(to) {
        let ours = config.own_db.as_deref().unwrap_or("none: an observer");
        return refuse(
            StatusCode::CONFLICT,
            format!(
                "this daemon runs beside {}, not {}: ask {}'s daemon",
                crate::text::printable(ours),
                crate::text::printable(to),
                crate::text::printable(to)
            ),
        );
    }
    if let Some(refused) = operator_only(&config, "a manual failover") {
        return refused;
    }
    match tokio::time::timeout(std::time::Duration::from_secs(5), api.failover.send(())).await {
        Ok(Ok(())) => json_response(
            StatusCode::ACCEPTED,
            serde_json::json!({ "failover_to": to }).to_string().into_bytes(),
        ),
        _ => refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "the decision loop did not take it".into(),
        ),
    }
}

/// `POST /switchover[?to=NODE&timeout=S]` at the primary's daemon (202 with the id and the
/// target once the steps started, `GET /switchover` shows them), and at the target's daemon
/// `POST /switchover/promote` (the old primary's daemon asks it to promote) and
/// `POST /switchover/abort` (it withdraws that). Operators' requests: a token, or an API on
/// loopback only.
async fn switchover_response(api: &Api, path: &str, query: Option<&str>) -> Response {
    let config = api.config.borrow().clone();
    let refuse = |status: StatusCode, why: String| {
        json_response(status, serde_json::json!({ "error": why }).to_string().into_bytes())
    };
    if config.own_db.is_none() {
        return refuse(
            StatusCode::CONFLICT,
            "an observer runs no switchover: ask the primary's daemon".into(),
        );
    }
    if let Some(refused) = operator_only(&config, "a switchover") {
        return refused;
    }
    let params = match crate::query::parse(query) {
        Ok(p) => p,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, e),
    };
    let get = |name: &str| params.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
    let send = |ask: SwitchoverAsk| async move {
        tokio::time::timeout(std::time::Duration::from_secs(5), api.switchover.send(ask))
            .await
            .is_ok_and(|r| r.is_ok())
    };
    let unavailable = || {
        refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "the decision loop did not take it".into(),
        )
    };
    match path {
        "/switchover" => {
            let timeout = match get("timeout").map(|t| t.parse::<f64>()) {
                None => SWITCHOVER_TIMEOUT_DEFAULT,
                Some(Ok(t)) if t > 0.0 && t <= SWITCHOVER_TIMEOUT_MAX => t,
                Some(_) => {
                    return refuse(
                        StatusCode::BAD_REQUEST,
                        format!("timeout: seconds, more than 0 and at most {SWITCHOVER_TIMEOUT_MAX}"),
                    )
                }
            };
            let (reply, answer) = tokio::sync::oneshot::channel();
            let ask = SwitchoverAsk::Start {
                to: get("to").filter(|t| !t.is_empty()),
                timeout: std::time::Duration::from_secs_f64(timeout),
                reply,
            };
            if !send(ask).await {
                return unavailable();
            }
            match tokio::time::timeout(std::time::Duration::from_secs(5), answer).await {
                Ok(Ok(Ok((id, to)))) => json_response(
                    StatusCode::ACCEPTED,
                    serde_json::json!({ "id": id, "from": config.own_db, "to": to })
                        .to_string()
                        .into_bytes(),
                ),
                Ok(Ok(Err(why))) => refuse(StatusCode::CONFLICT, why),
                _ => unavailable(),
            }
        }
        "/switchover/promote" => {
            let lsn = get("lsn").and_then(|l| l.parse::<crate::lsn::Lsn>().ok());
            let window = get("window").and_then(|w| w.parse::<f64>().ok()).filter(|w| *w > 0.0);
            let (Some(from), Some(lsn), Some(id), Some(window)) = (get("from"), lsn, get("id"), window) else {
                return refuse(
                    StatusCode::BAD_REQUEST,
                    "from, lsn, id and window (seconds) are needed".into(),
                );
            };
            if !config.remote_conns.contains_key(&from) || config.own_db.as_deref() == Some(from.as_str()) {
                return refuse(
                    StatusCode::BAD_REQUEST,
                    format!(
                        "from: {} is not another node of remote_conns",
                        crate::text::printable(&from)
                    ),
                );
            }
            let (reply, answer) = tokio::sync::oneshot::channel();
            let window = window.min(SWITCHOVER_TIMEOUT_MAX);
            if !send(SwitchoverAsk::Promote {
                from,
                lsn,
                id,
                window,
                reply,
            })
            .await
            {
                return unavailable();
            }
            match tokio::time::timeout(std::time::Duration::from_secs(5), answer).await {
                Ok(Ok(Ok(()))) => json_response(StatusCode::ACCEPTED, br#"{"taken": true}"#.to_vec()),
                Ok(Ok(Err(why))) => refuse(StatusCode::CONFLICT, why),
                _ => unavailable(),
            }
        }
        "/switchover/abort" => {
            let (reply, answer) = tokio::sync::oneshot::channel();
            if !send(SwitchoverAsk::Withdraw { reply }).await {
                return unavailable();
            }
            use crate::decide::switchover::Withdrawn;
            match tokio::time::timeout(std::time::Duration::from_secs(5), answer).await {
                Ok(Ok(w)) => {
                    let word = match w {
                        Withdrawn::NotStarted => "not_started",
                        Withdrawn::Promoting => "promoting",
                        Withdrawn::Promoted => "promoted",
                    };
                    json_response(
                        StatusCode::OK,
                        serde_json::json!({ "withdrawn": word }).to_string().into_bytes(),
                    )
                }
                _ => unavailable(),
            }
        }
        _ => json_response(StatusCode::NOT_FOUND, br#"{"error": "not found"}"#.to_vec()),
    }
}

/// Whether `http_address` accepts loopback connections only.
fn loopback_only(http_address: &str) -> bool {
    let host = http_address.trim_start_matches('[').trim_end_matches(']');
    host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The history's damaged lines, logged at most once a minute with how many reads met them.
static DAMAGE_TOLD: std::sync::LazyLock<std::sync::Mutex<crate::http_conn::Throttled>> =
    std::sync::LazyLock::new(|| {
        std::sync::Mutex::new(crate::http_conn::Throttled::new(std::time::Duration::from_secs(60)))
    });

/// `GET /history[?limit=N&since=TIME]`: the event history, newest first, read off the
/// runtime with a deadline (a hung file system answers 503, never a hung request). The answer
/// is at most `events::MAX_ANSWER_BYTES`: when that cuts it short of `limit` events, the
/// [`TRUNCATED`] header says so.
async fn history_response(api: &Api, query: Option<&str>) -> Response {
    let (limit, since) = match crate::events::parse_query(query) {
        Ok(q) => q,
        Err(e) => {
            let body = serde_json::json!({ "error": e }).to_string().into_bytes();
            return json_response(StatusCode::BAD_REQUEST, body);
        }
    };
    let path = api.config.borrow().event_log_path.clone();
    let read = tokio::task::spawn_blocking(move || crate::events::read(&path, limit, since));
    match tokio::time::timeout(std::time::Duration::from_secs(5), read).await {
        Ok(Ok(Ok(history))) => {
            // at most one line a minute, however many requests and damaged lines: GET /history
            // is open to anyone with the default auth scope, and a line per damaged line and
            // request would let anyone flood the log
            if let Some(newest) = history.warnings.first() {
                let what = format!("{} damaged line(s) skipped, the newest: {newest}", history.damaged);
                let told = DAMAGE_TOLD
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .note(tokio::time::Instant::now(), None, what);
                if let Some(burst) = told {
                    tracing::warn!(
                        target: "WebServer",
                        "event history: {} ({} request(s) met damaged lines since the last such line; said at most once a minute)",
                        burst.latest,
                        burst.count
                    );
                }
            }
            match to_pretty_json(&history.events) {
                Ok(bytes) if history.truncated => {
                    let why = format!(
                        "{} events, the most that fit in {} bytes",
                        history.events.len(),
                        crate::events::MAX_ANSWER_BYTES
                    );
                    let mut response = json_response(StatusCode::OK, bytes);
                    if let Ok(value) = header::HeaderValue::from_str(&why) {
                        response.headers_mut().insert(TRUNCATED, value);
                    }
                    response
                }
                Ok(bytes) => json_response(StatusCode::OK, bytes),
                Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
            }
        }
        Ok(Ok(Err(e))) => {
            tracing::error!(target: "WebServer", "cannot read the event history: {e}");
            let body = serde_json::json!({ "error": format!("cannot read the event history: {e}") });
            json_response(StatusCode::SERVICE_UNAVAILABLE, body.to_string().into_bytes())
        }
        _ => json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            br#"{"error": "reading the event history did not finish within 5 s"}"#.to_vec(),
        ),
    }
}

/// `GET /series[?since=UNIX_SECONDS&node=NAME]`: lag over time, serialized off the runtime
/// (at a thousand nodes the whole answer is megabytes).
async fn series_response(api: &Api, query: Option<&str>) -> Response {
    let bad = |status: StatusCode, e: String| {
        json_response(status, serde_json::json!({ "error": e }).to_string().into_bytes())
    };
    let query = match crate::series::parse_query(query) {
        Ok(q) => q,
        Err(e) => return bad(StatusCode::BAD_REQUEST, e),
    };
    let config = api.config.borrow().clone();
    let limits = crate::series::Limits {
        warning: config.warning_replication_time_lag,
        failover: config.max_failover_replication_time_lag,
        now: chrono::Utc::now().timestamp_micros() as f64 / 1e6,
    };
    let series = api.series.clone();
    let body = tokio::task::spawn_blocking(move || {
        // a copy (a few milliseconds at most): the decision loop records into the series after
        // every check and must not wait for megabytes of JSON
        let series = series.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        match &query.node {
            Some(n) if !series.has(n) => Err(format!("node: no series for {n:?}")),
            _ => serde_json::to_vec(&series.answer(&query, limits)).map_err(|e| e.to_string()),
        }
    })
    .await;
    match body {
        Ok(Ok(bytes)) => json_response(StatusCode::OK, bytes),
        Ok(Err(e)) if e.starts_with("node:") => bad(StatusCode::NOT_FOUND, e),
        _ => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

fn metrics_response(api: &Api, openmetrics: bool) -> Response {
    let config = api.config.borrow().clone();
    let snap = api.poller.snapshots.borrow().clone();
    let status = api.status.borrow().clone();
    let looked = api.files.looked();
    let alerts = looked.as_ref().map(|l| l.alerts.clone()).unwrap_or_default();
    let mut extra = crate::prometheus::Extra::new(&config, status["current_master"].as_str(), alerts);
    extra.alert_dir_writable = looked.map(|l| l.alert_dir_writable);
    extra.state_written_at = api.files.state_written_at();
    let body = crate::prometheus::render(&snap, &api.counters, &extra, chrono::Utc::now(), openmetrics);
    let content_type = if openmetrics {
        crate::prometheus::OPENMETRICS_TYPE
    } else {
        crate::prometheus::TEXT_TYPE
    };
    (StatusCode::OK, [(header::CONTENT_TYPE, content_type)], body).into_response()
}

/// A health check: 200 when true, 503 otherwise, with `{"ok": .., "reason": ..}`.
fn health_response(api: &Api, path: &str, query: Option<&str>) -> Response {
    let config = api.config.borrow().clone();
    let snap = api.poller.snapshots.borrow().clone();
    let lag = match health::parse_query(path, query) {
        Ok(lag) => lag,
        Err(e) => {
            return json_response(
                StatusCode::BAD_REQUEST,
                serde_json::json!({ "error": e }).to_string().into_bytes(),
            );
        }
    };
    let now = crate::clock::monotonic();
    let live = health::liveness(&config, &snap, api.decided.get(), api.start, now);
    let verdict = match path {
        "/liveness" => live,
        // a stalled daemon's last view says nothing about now: never route to it
        _ if !live.ok => health::Verdict {
            ok: false,
            reason: format!("the view is stale: {}", live.reason),
        },
        "/primary" | "/health" if api.own.borrow().no_lease.is_some() => health::Verdict {
            ok: false,
            reason: api.own.borrow().no_lease.clone().unwrap_or_default(),
        },
        "/primary" => health::primary(&config, &snap, now),
        "/replica" => health::replica(&config, &snap, lag, now),
        "/sync" => health::sync(&config, &snap, now),
        _ => health::health(&config, &snap, now),
    };
    tracing::debug!(target: "WebServer", "GET {path}: {}", verdict.reason);
    let status = if verdict.ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    json_response(status, serde_json::to_vec(&verdict).unwrap_or_default())
}

pub fn router(api: Api) -> Router {
    Router::new().fallback(dispatch).with_state(api)
}

/// Serves the routes until `cancel` fires; the connections (caps, reserved slots, deadlines,
/// TLS) are `http_conn`'s.
pub async fn serve(listener: TcpListener, tls: Option<SslAcceptor>, api: Api, cancel: CancellationToken) {
    let (counters, config) = (api.counters.clone(), api.config.clone());
    crate::http_conn::serve(listener, tls, router(api), counters, config, cancel).await;
}

pub use crate::http_conn::{tls_acceptor, TlsError};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_address_binds_all_ipv4_interfaces() {
        assert_eq!(bind_address("", 15000), "0.0.0.0:15000");
        assert_eq!(bind_address("127.0.0.1", 1), "127.0.0.1:1");
        assert_eq!(bind_address("::1", 2), "[::1]:2");
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        for value in ["Bearer tok", "bearer tok", "BEARER tok", "bEaReR  tok"] {
            assert_eq!(bearer_token(value), Some("tok"), "{value}");
        }
        for value in ["Basic tok", "Bearertok", "tok", "Bearer", "", "Bear tok"] {
            assert_eq!(bearer_token(value), None, "{value}");
        }
    }
}
