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
use openssl::ssl::{SslAcceptor, SslFiletype, SslMethod};
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
    /// When the decision loop last ran (liveness).
    pub decided: std::sync::Arc<crate::clock::Beat>,
    /// The file thread (what it last saw of the alert files, for `/metrics`).
    pub files: crate::act::files::Files,
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

/// The bearer-token check: `None` lets the request through, otherwise the refusal (401 without
/// a token, 403 with a wrong one). Reads need the token only with `http_auth_scope: "all"`.
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
        .and_then(|v| v.strip_prefix("Bearer "));
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
    match given {
        None => error(StatusCode::UNAUTHORIZED, "a bearer token is required"),
        // equal lengths first: memcmp::eq compares in constant time but needs them
        Some(g) if g.len() == token.len() && openssl::memcmp::eq(g.as_bytes(), token.as_bytes()) => None,
        Some(_) => {
            tracing::warn!(target: "WebServer", "refused {} {}: wrong bearer token", req.method(), req.uri().path());
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
    let alerts = api.files.looked().map(|l| l.alerts).unwrap_or_default();
    let extra = crate::prometheus::Extra::new(&config, status["current_master"].as_str(), alerts);
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
        "/primary" => health::primary(&config, &snap, now),
        "/replica" => health::replica(&config, &snap, lag, now),
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

/// A client connection that neither sends nor takes anything for this long is closed, so idle
/// or stalled clients cannot pile up and use the descriptors the poller needs.
pub const IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// At most this many client connections at once; further ones wait to be accepted.
pub const MAX_CONNECTIONS: usize = 256;

/// A listener whose connections hold a permit (the connection cap) and close when idle.
struct Guarded<L> {
    inner: L,
    permits: std::sync::Arc<tokio::sync::Semaphore>,
}

impl<L> Guarded<L> {
    fn new(inner: L) -> Self {
        Guarded {
            inner,
            permits: std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS)),
        }
    }
}

impl<L: axum::serve::Listener> axum::serve::Listener for Guarded<L> {
    type Io = GuardedIo<L::Io>;
    type Addr = L::Addr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let Ok(permit) = self.permits.clone().acquire_owned().await else {
            // the semaphore is never closed
            return std::future::pending().await;
        };
        let (io, addr) = self.inner.accept().await;
        let idle = Box::pin(tokio::time::sleep(IDLE_TIMEOUT));
        (
            GuardedIo {
                io,
                _permit: permit,
                idle,
            },
            addr,
        )
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

struct GuardedIo<T> {
    io: T,
    _permit: tokio::sync::OwnedSemaphorePermit,
    idle: std::pin::Pin<Box<tokio::time::Sleep>>,
}

impl<T> GuardedIo<T> {
    fn progress(&mut self) {
        self.idle.as_mut().reset(tokio::time::Instant::now() + IDLE_TIMEOUT);
    }
    /// While the peer makes no progress: an error once it has been idle too long.
    fn idle_check(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<std::io::Error> {
        std::future::Future::poll(self.idle.as_mut(), cx)
            .map(|()| std::io::Error::new(std::io::ErrorKind::TimedOut, "idle HTTP client"))
    }
}

impl<T: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for GuardedIo<T> {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match std::pin::Pin::new(&mut this.io).poll_read(cx, buf) {
            std::task::Poll::Ready(r) => {
                if buf.filled().len() > before {
                    this.progress();
                }
                std::task::Poll::Ready(r)
            }
            std::task::Poll::Pending => this.idle_check(cx).map(Err),
        }
    }
}

impl<T: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for GuardedIo<T> {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        data: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        match std::pin::Pin::new(&mut this.io).poll_write(cx, data) {
            std::task::Poll::Ready(r) => {
                this.progress();
                std::task::Poll::Ready(r)
            }
            std::task::Poll::Pending => this.idle_check(cx).map(Err),
        }
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// Serves until `cancel` fires.
pub async fn serve(listener: TcpListener, tls: Option<SslAcceptor>, api: Api, cancel: CancellationToken) {
    let addr: Option<SocketAddr> = listener.local_addr().ok();
    let shown = addr.map_or_else(|| "?".into(), |a| a.to_string());
    let app = router(api);
    let result = match tls {
        None => {
            tracing::info!(target: "WebServer", "listening on http://{shown}");
            axum::serve(Guarded::new(listener), app)
                .with_graceful_shutdown(cancel.cancelled_owned())
                .await
        }
        Some(acceptor) => {
            tracing::info!(target: "WebServer", "listening on https://{shown}");
            let tls = TlsListener::start(listener, acceptor, cancel.clone());
            axum::serve(Guarded::new(tls), app)
                .with_graceful_shutdown(cancel.cancelled_owned())
                .await
        }
    };
    if let Err(e) = result {
        tracing::error!(target: "WebServer", "HTTP server failed: {e}");
    }
}

#[derive(Debug, thiserror::Error)]
#[error("HTTPS certificate {cert} / key {key}: {source}")]
pub struct TlsError {
    cert: String,
    key: String,
    #[source]
    source: openssl::error::ErrorStack,
}

/// The TLS acceptor for `http_tls_cert`/`http_tls_key`, built before anything starts.
pub fn tls_acceptor(config: &crate::config::Config) -> Result<Option<SslAcceptor>, TlsError> {
    let (Some(cert), Some(key)) = (&config.http_tls_cert, &config.http_tls_key) else {
        return Ok(None);
    };
    let err = |source| TlsError {
        cert: cert.display().to_string(),
        key: key.display().to_string(),
        source,
    };
    let mut b = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server()).map_err(err)?;
    b.set_certificate_chain_file(cert).map_err(err)?;
    b.set_private_key_file(key, SslFiletype::PEM).map_err(err)?;
    b.check_private_key().map_err(err)?;
    Ok(Some(b.build()))
}

/// Accepts TCP connections and completes TLS handshakes in their own tasks (with a deadline),
/// so a slow or silent client never holds up the next connection.
struct TlsListener {
    ready: tokio::sync::mpsc::Receiver<(tokio_openssl::SslStream<tokio::net::TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    fn start(listener: TcpListener, acceptor: SslAcceptor, cancel: CancellationToken) -> TlsListener {
        let local = listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        let (tx, ready) = tokio::sync::mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    _ = cancel.cancelled() => return,
                    a = listener.accept() => a,
                };
                let (tcp, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(target: "WebServer", "accept failed: {e}");
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    let Ok(ssl) = openssl::ssl::Ssl::new(acceptor.context()) else {
                        return;
                    };
                    let Ok(mut stream) = tokio_openssl::SslStream::new(ssl, tcp) else {
                        return;
                    };
                    let handshake = std::pin::Pin::new(&mut stream).accept();
                    match tokio::time::timeout(std::time::Duration::from_secs(10), handshake).await {
                        Ok(Ok(())) => {
                            let _ = tx.send((stream, peer)).await;
                        }
                        Ok(Err(e)) => tracing::debug!(target: "WebServer", "TLS handshake with {peer} failed: {e}"),
                        Err(_) => tracing::debug!(target: "WebServer", "TLS handshake with {peer} timed out"),
                    }
                });
            }
        });
        TlsListener { ready, local }
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_openssl::SslStream<tokio::net::TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(conn) => conn,
            // the acceptor task ended (shutdown): never yield another connection
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.local)
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
