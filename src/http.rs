//! The HTTP API, as the original: `GET /state.json` (the node-state map), `POST /check` (204;
//! asks for an immediate poll round; a burst of requests makes one round), and a real 404 for
//! anything else; plus ours: `GET /status` (the whole state document), `GET /decision` (the
//! latest decision and its reasons), `GET /metrics` (Prometheus) and the
//! health checks `/primary`, `/replica[?lag=]`, `/health`, `/liveness` (200 or 503). It only
//! reads snapshots; it owns no state.

use crate::health;
use crate::poll::Poller;
use crate::statefile::to_pretty_json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, Method, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use std::net::SocketAddr;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

#[derive(Clone)]
pub struct Api {
    pub poller: Poller,
    /// The running config (for the health checks).
    pub config: tokio::sync::watch::Receiver<std::sync::Arc<crate::config::Config>>,
    /// Monotonic start time (liveness before the first round).
    pub start: f64,
    /// Counters for `/metrics`.
    pub counters: std::sync::Arc<crate::prometheus::Counters>,
    /// The latest state document, decision included (ours; the original serves only the nodes).
    pub status: crate::daemon::StatusView,
}

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

fn json_response(status: StatusCode, bytes: Vec<u8>) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], bytes).into_response()
}

async fn dispatch(State(api): State<Api>, req: Request<Body>) -> Response {
    let path = req.uri().path();
    // The original matches by prefix (`/state.json?x` and `/state.jsonfoo` both answer).
    match *req.method() {
        Method::GET | Method::HEAD if path.starts_with("/state.json") => {
            tracing::debug!(target: "WebServer", "GET {path}");
            let snapshot = api.poller.snapshots.borrow().clone();
            match to_pretty_json(&snapshot.nodes) {
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
        Method::GET | Method::HEAD if matches!(path, "/primary" | "/replica" | "/health" | "/liveness") => {
            health_response(&api, path, req.uri().query())
        }
        Method::GET | Method::HEAD if path == "/metrics" => {
            let openmetrics = req
                .headers()
                .get(header::ACCEPT)
                .and_then(|a| a.to_str().ok())
                .is_some_and(|a| a.contains("application/openmetrics-text"));
            metrics_response(&api, openmetrics)
        }
        Method::POST if path.starts_with("/check") => {
            tracing::debug!(target: "WebServer", "POST {path}: immediate poll requested");
            api.poller.poll_now();
            StatusCode::NO_CONTENT.into_response()
        }
        _ => json_response(StatusCode::NOT_FOUND, br#"{"error": "not found"}"#.to_vec()),
    }
}

fn metrics_response(api: &Api, openmetrics: bool) -> Response {
    let config = api.config.borrow().clone();
    let snap = api.poller.snapshots.borrow().clone();
    let status = api.status.borrow().clone();
    let master = status["current_master"].as_str();
    let alerts = crate::decide::Alert::ALL
        .iter()
        .map(|a| (a.file_name(), config.alert_file_dir.join(a.file_name()).exists()))
        .collect();
    let extra = crate::prometheus::Extra {
        own_db: config.own_db.as_deref(),
        current_master: master,
        alerts,
        version: env!("CARGO_PKG_VERSION"),
    };
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
    let lag = query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == "lag")
        .map(|(_, v)| health::parse_lag(v));
    let verdict = match (path, lag) {
        (_, Some(Err(e))) => {
            return json_response(
                StatusCode::BAD_REQUEST,
                serde_json::json!({"error": e}).to_string().into_bytes(),
            )
        }
        ("/primary", _) => health::primary(&config, &snap),
        ("/replica", lag) => health::replica(&config, &snap, lag.and_then(Result::ok)),
        ("/health", _) => health::health(&config, &snap),
        _ => health::liveness(&config, &snap, api.start, crate::clock::monotonic()),
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

/// Serves until `cancel` fires.
pub async fn serve(listener: TcpListener, api: Api, cancel: CancellationToken) {
    let addr: Option<SocketAddr> = listener.local_addr().ok();
    tracing::info!(target: "WebServer", "listening on {}", addr.map_or_else(|| "?".into(), |a| a.to_string()));
    let app = router(api);
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(cancel.cancelled_owned())
        .await
    {
        tracing::error!(target: "WebServer", "HTTP server failed: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_address_binds_all_ipv4_interfaces() {
        assert_eq!(bind_address("", 15000), "0.0.0.0:15000");
        assert_eq!(bind_address("127.0.0.1", 1), "127.0.0.1:1");
        assert_eq!(bind_address("::1", 2), "[::1]:2");
    }
}
