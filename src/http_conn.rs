//! The HTTP server's connections (the routes are in `http`): the accept loop, the caps on
//! connections (global, sized from the descriptor limit, and per client address), both taken
//! before any TLS handshake, with a share of the global cap kept for reserved clients
//! (loopback, `http_reserved_clients`, the observers); the handshake's deadline; each request head's absolute deadline;
//! the idle timeout for stalled bodies and answers; and graceful shutdown. It also owns the
//! logging of what the server refuses (connections over a cap, failed accepts, and the requests
//! the routes refuse for want of a token, reported through the [`Client`] each request carries):
//! throttled, with counts and client addresses.
//!
//! Why it exists: a client that trickles header bytes, or opens TLS connections and never
//! finishes the handshake, must not be able to hold the API (load balancers and peers would see
//! the node as down) or take the descriptors the state file and the pollers need; slow clients
//! from many addresses must not keep the local health checks and the peers out; and a flood of
//! refused requests must not flood the log.

use crate::config::Config;
use crate::prometheus::Counters;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use openssl::ssl::{Ssl, SslAcceptor, SslFiletype, SslMethod};
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use tokio_openssl::SslStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// A connection that neither sends nor takes anything for this long is closed: a stalled
/// request body, or a client that stops reading its answer.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// A request head (request line and headers) must be complete this long after the server starts
/// waiting for it: after the connection opens (and its TLS handshake is done), or after the
/// previous answer on a keep-alive connection. Absolute: trickling bytes do not extend it.
/// Not shorter, because the same wait bounds keep-alive connections: our observers keep theirs
/// and fetch every `db_poll_interval` (5 s by default), so a 5 s deadline would close the
/// connection just as the next request goes out.
pub const HEAD_DEADLINE: Duration = Duration::from_secs(10);
/// A TLS handshake must be done within this (on a LAN it takes milliseconds).
pub const HANDSHAKE_DEADLINE: Duration = Duration::from_secs(5);
/// The most client connections at once; fewer when the descriptor limit is low ([`Limits`]).
pub const MAX_CONNECTIONS: usize = 256;
/// The most connections at once from one client address (for IPv6, one /64).
pub const MAX_PER_CLIENT: usize = 32;
/// The largest request head, request line included (a bigger one gets 431): bounds what a
/// client can make us buffer before its request is routed.
const MAX_HEAD: usize = 64 * 1024;
/// The descriptor limit assumed when it cannot be read (Linux's usual soft limit).
const ASSUMED_DESCRIPTORS: u64 = 1024;
/// After an accept error: this pause, so the loop does not spin while descriptors are short.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// Refused connections, refused requests and accept errors are logged at most this often (per
/// kind), with counts.
const WARN_EVERY: Duration = Duration::from_secs(60);
/// How often the refusals counted since their last warning are checked for a summary that is due.
const FLUSH_TICK: Duration = Duration::from_secs(1);
/// Distinct client addresses counted for one warning; more are reported as "at least".
const MAX_COUNTED_ADDRESSES: usize = 1024;

/// The connection caps for a process that may have `descriptors` open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Client connections at once, TLS handshakes included.
    pub connections: usize,
    /// Of those, from one client address.
    pub per_client: usize,
    /// Of those, kept for reserved clients (loopback and `http_reserved_clients`): the others
    /// cannot have them, so a flood from many addresses cannot keep health checks out.
    pub reserved: usize,
}

impl Limits {
    /// HTTP clients get at most a quarter of the descriptors, so the state file, the pollers and
    /// the logs always have the rest; one client address at most an eighth of those, so one
    /// abuser cannot shut out the load balancer or the peers; an eighth of them (at least one,
    /// when there are two) kept for reserved clients, so many abusers cannot either.
    pub fn for_descriptors(descriptors: u64) -> Limits {
        let quarter = usize::try_from(descriptors / 4).unwrap_or(usize::MAX);
        let connections = quarter.clamp(1, MAX_CONNECTIONS);
        Limits {
            connections,
            per_client: (connections / 8).clamp(1, MAX_PER_CLIENT),
            reserved: if connections < 2 { 0 } else { (connections / 8).max(1) },
        }
    }

    /// The connections any client may have.
    pub fn general(&self) -> usize {
        self.connections - self.reserved
    }
}

/// Raises the soft descriptor limit to the hard one (the default soft limit, 1024, is low for
/// an observer of many nodes) and returns the limit now in force; `None` if it cannot be read.
pub fn raise_descriptor_limit() -> Option<u64> {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).ok()?;
    if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
        return Some(hard);
    }
    // an unlimited hard limit cannot be the soft one for descriptors: keep what we have
    Some(soft)
}

/// What counts as one client: an IPv4 address (IPv4-mapped IPv6 included), or an IPv6 /64,
/// since one host usually holds a whole /64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct ClientKey(IpAddr);

impl ClientKey {
    fn of(ip: IpAddr) -> ClientKey {
        match ip.to_canonical() {
            IpAddr::V6(v6) => {
                let mut octets = v6.octets();
                octets[8..].fill(0);
                ClientKey(IpAddr::from(octets))
            }
            v4 => ClientKey(v4),
        }
    }
}

/// Open connections per client, with a cap.
#[derive(Clone)]
struct ClientSlots {
    open: Arc<Mutex<HashMap<ClientKey, usize>>>,
    max: usize,
}

/// One open connection of a client; dropping it frees the slot.
struct ClientSlot {
    slots: ClientSlots,
    key: ClientKey,
}

impl ClientSlots {
    fn new(max: usize) -> ClientSlots {
        ClientSlots {
            open: Arc::default(),
            max,
        }
    }

    /// A slot for a connection from `ip`, or `None` when that client has `max` open already.
    fn take(&self, ip: IpAddr) -> Option<ClientSlot> {
        let key = ClientKey::of(ip);
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let count = open.entry(key).or_insert(0);
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(ClientSlot {
            slots: self.clone(),
            key,
        })
    }

    #[cfg(test)]
    fn clients(&self) -> usize {
        self.open.lock().unwrap_or_else(PoisonError::into_inner).len()
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut open = self.slots.open.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.key) {
            *count -= 1;
            // forget clients without connections, so the map stays as small as the open set
            if *count == 0 {
                open.remove(&self.key);
            }
        }
    }
}

/// A warning that is logged at most every `every`, with a count of what it stood for and from
/// how many client addresses (a flood must not flood the log too). The first event after a quiet
/// spell is logged at once; the ones after it are summed up once the window has passed, by
/// [`Throttled::due`] on a timer, so their count is reported when the flood stops too, not only
/// when (if ever) a next event comes.
pub(crate) struct Throttled {
    every: Duration,
    last: Option<Instant>,
    count: u64,
    /// Distinct client addresses since the last warning (at most [`MAX_COUNTED_ADDRESSES`]).
    addresses: HashSet<IpAddr>,
    /// The latest event, as the warning shows it.
    latest: String,
}

/// What one throttled warning stands for.
#[derive(Debug, PartialEq)]
pub(crate) struct Burst {
    pub(crate) count: u64,
    /// Distinct client addresses (0 when the events have none).
    addresses: usize,
    pub(crate) latest: String,
}

impl Burst {
    /// How many addresses, when more than one: `"; 12 client addresses"`.
    fn sources(&self) -> String {
        match self.addresses {
            0 | 1 => String::new(),
            n if n >= MAX_COUNTED_ADDRESSES => format!("; at least {n} client addresses"),
            n => format!("; {n} client addresses"),
        }
    }
}

impl Throttled {
    pub(crate) fn new(every: Duration) -> Throttled {
        Throttled {
            every,
            last: None,
            count: 0,
            addresses: HashSet::new(),
            latest: String::new(),
        }
    }

    fn within_window(&self, now: Instant) -> bool {
        self.last.is_some_and(|last| now < last + self.every)
    }

    /// Counts one event; `Some` when it is time to warn.
    pub(crate) fn note(&mut self, now: Instant, ip: Option<IpAddr>, latest: String) -> Option<Burst> {
        self.count += 1;
        if let Some(ip) = ip {
            if self.addresses.len() < MAX_COUNTED_ADDRESSES {
                self.addresses.insert(ip.to_canonical());
            }
        }
        self.latest = latest;
        if self.within_window(now) {
            return None;
        }
        Some(self.take(now))
    }

    /// The summary of the events since the last warning, once its window has passed.
    fn due(&mut self, now: Instant) -> Option<Burst> {
        if self.count == 0 || self.within_window(now) {
            return None;
        }
        Some(self.take(now))
    }

    /// The summary of the events since the last warning, whatever the time (at shutdown).
    fn pending(&mut self, now: Instant) -> Option<Burst> {
        (self.count > 0).then(|| self.take(now))
    }

    fn take(&mut self, now: Instant) -> Burst {
        self.last = Some(now);
        let addresses = self.addresses.len();
        self.addresses.clear();
        Burst {
            count: std::mem::take(&mut self.count),
            addresses,
            latest: std::mem::take(&mut self.latest),
        }
    }
}

/// What the server refuses and logs, throttled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    /// A connection from a client that already had its share open.
    ClientCap,
    /// A connection from an unreserved client while only the reserved slots were free.
    ServerFull,
    /// An accept that failed.
    AcceptError,
    /// A request without a valid bearer token.
    Auth,
}

const REFUSALS: [Refusal; 4] = [
    Refusal::ClientCap,
    Refusal::ServerFull,
    Refusal::AcceptError,
    Refusal::Auth,
];

/// The server's refusals and accept errors: a WARNING at most every [`WARN_EVERY`] per kind,
/// with how many it stands for, from how many addresses, and the latest one; what is pending is
/// logged by a timer once the window has passed, and at shutdown.
pub struct Refusals {
    limits: Limits,
    throttles: [Mutex<Throttled>; REFUSALS.len()],
}

impl Refusals {
    fn new(limits: Limits, every: Duration) -> Refusals {
        Refusals {
            limits,
            throttles: std::array::from_fn(|_| Mutex::new(Throttled::new(every))),
        }
    }

    fn throttle(&self, kind: Refusal) -> std::sync::MutexGuard<'_, Throttled> {
        self.throttles[kind as usize]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Notes one refusal (`latest` describes it); logs a warning when one is due.
    fn note(&self, kind: Refusal, ip: Option<IpAddr>, latest: String) {
        let burst = self.throttle(kind).note(Instant::now(), ip, latest);
        if let Some(b) = burst {
            tracing::warn!(target: "WebServer", "{}", self.line(kind, &b));
        }
    }

    /// Logs (and returns) the summaries due at `now`; every pending one with `all`.
    fn flush(&self, now: Instant, all: bool) -> Vec<String> {
        let mut lines = Vec::new();
        for kind in REFUSALS {
            let mut t = self.throttle(kind);
            let burst = if all { t.pending(now) } else { t.due(now) };
            drop(t);
            if let Some(b) = burst {
                let line = self.line(kind, &b);
                tracing::warn!(target: "WebServer", "{line}");
                lines.push(line);
            }
        }
        lines
    }

    fn line(&self, kind: Refusal, b: &Burst) -> String {
        let (n, latest, sources) = (b.count, &b.latest, b.sources());
        match kind {
            Refusal::ClientCap => format!(
                "refused {n} connection(s) from clients that already had {} open, the latest from {latest}{sources}",
                self.limits.per_client
            ),
            Refusal::ServerFull => format!(
                "refused {n} connection(s) while the {} general connection slots were all taken (the other {} are kept for loopback and http_reserved_clients), the latest from {latest}{sources}",
                self.limits.general(),
                self.limits.reserved
            ),
            Refusal::AcceptError => format!("accept failed ({n} times since the last warning): {latest}"),
            Refusal::Auth => {
                format!("refused {n} request(s) without a valid bearer token, the latest {latest}{sources}")
            }
        }
    }
}

/// Who sent a request: the connection puts it into every request's extensions, so that the
/// routes can name the client and report refusals (see `http::refuse`).
#[derive(Clone)]
pub struct Client {
    pub addr: SocketAddr,
    refusals: Arc<Refusals>,
}

impl Client {
    /// Logs (throttled, with the address) a request refused for want of a valid bearer token;
    /// `why` says what was wrong with it. Never the token itself.
    pub fn auth_refused(&self, method: &axum::http::Method, path: &str, why: &str) {
        let ip = self.addr.ip().to_canonical();
        self.refusals.note(
            Refusal::Auth,
            Some(ip),
            format!("{method} {path:.200} from {ip}: {why}"),
        );
    }
}

/// The routes, with the [`Client`] put into each request.
#[derive(Clone)]
struct WithClient {
    service: Service,
    client: Client,
}

impl<B> hyper::service::Service<axum::http::Request<B>> for WithClient
where
    Service: hyper::service::Service<axum::http::Request<B>>,
{
    type Response = <Service as hyper::service::Service<axum::http::Request<B>>>::Response;
    type Error = <Service as hyper::service::Service<axum::http::Request<B>>>::Error;
    type Future = <Service as hyper::service::Service<axum::http::Request<B>>>::Future;

    fn call(&self, mut req: axum::http::Request<B>) -> Self::Future {
        req.extensions_mut().insert(self.client.clone());
        self.service.call(req)
    }
}

type Service = TowerToHyperService<Router>;

/// Serves `app` on `listener` (over TLS with `tls`) until `cancel` fires, then lets the answers
/// in progress finish. `config` says which clients are reserved (read at each connection, so a
/// reload applies to the next one); refused connections are counted in `counters`.
pub async fn serve(
    listener: TcpListener,
    tls: Option<SslAcceptor>,
    app: Router,
    counters: Arc<Counters>,
    config: watch::Receiver<Arc<Config>>,
    cancel: CancellationToken,
) {
    let descriptors = raise_descriptor_limit().unwrap_or(ASSUMED_DESCRIPTORS);
    let limits = Limits::for_descriptors(descriptors);
    let shown = listener
        .local_addr()
        .map_or_else(|_| "?".to_string(), |a| a.to_string());
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(
        target: "WebServer",
        "listening on {scheme}://{shown}: at most {} client connections, {} from one address (descriptor limit {descriptors}); {} of them kept for loopback and http_reserved_clients",
        limits.connections,
        limits.per_client,
        limits.reserved
    );
    let general = Arc::new(Semaphore::new(limits.general()));
    let reserve = Arc::new(Semaphore::new(limits.reserved));
    let clients = ClientSlots::new(limits.per_client);
    let service = TowerToHyperService::new(app);
    let connections = TaskTracker::new();
    let refusals = Arc::new(Refusals::new(limits, WARN_EVERY));
    connections.spawn(flush_refusals(refusals.clone(), cancel.clone()));
    loop {
        // A slot comes before the accept: with every slot taken, new connections wait in the
        // kernel's backlog, where they take no descriptor of ours. A reserved slot is taken
        // only when no general one is free; then connections are accepted to see who they are
        // from, and those from unreserved clients closed at once (waiting in the backlog, a
        // health check would queue behind the flood).
        let (permit, reserved_slot) = tokio::select! {
            biased;
            _ = cancel.cancelled() => break,
            permit = general.clone().acquire_owned() => match permit {
                Ok(p) => (p, false),
                Err(_) => break, // never closed
            },
            permit = reserve.clone().acquire_owned() => match permit {
                Ok(p) => (p, true),
                Err(_) => break, // never closed
            },
        };
        let accepted = tokio::select! {
            _ = cancel.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (tcp, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                refusals.note(Refusal::AcceptError, None, e.to_string());
                if is_resource_shortage(&e) {
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
                continue;
            }
        };
        let ip = peer.ip().to_canonical();
        let permit = if !reserved_slot {
            permit
        } else if let Ok(freed) = general.clone().try_acquire_owned() {
            // a general slot was freed meanwhile: the reserved one goes back
            freed
        } else if config.borrow().http_client_reserved(ip) {
            permit
        } else {
            drop(tcp);
            counters.http_refused_server_full();
            refusals.note(Refusal::ServerFull, Some(ip), ip.to_string());
            continue;
        };
        let Some(slot) = clients.take(ip) else {
            // closed at once, before any TLS work: the client already has its share
            drop(tcp);
            counters.http_refused_client_cap();
            refusals.note(Refusal::ClientCap, Some(ip), ip.to_string());
            continue;
        };
        let service = WithClient {
            service: service.clone(),
            client: Client {
                addr: peer,
                refusals: refusals.clone(),
            },
        };
        connections.spawn(connection(
            tcp,
            peer,
            tls.clone(),
            service,
            cancel.clone(),
            permit,
            slot,
        ));
    }
    connections.close();
    connections.wait().await;
    // what the last window counted, so that a flood that ended is reported in full
    refusals.flush(Instant::now(), true);
}

/// Logs the refusal summaries that are due, every [`FLUSH_TICK`], until `cancel`.
async fn flush_refusals(refusals: Arc<Refusals>, cancel: CancellationToken) {
    let mut tick = tokio::time::interval(FLUSH_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {
                refusals.flush(Instant::now(), false);
            }
        }
    }
}

/// Whether an accept error means descriptors or memory are short (worth a pause), rather than
/// one connection's trouble (such as a client that reset before it was accepted).
fn is_resource_shortage(e: &std::io::Error) -> bool {
    use nix::errno::Errno;
    e.raw_os_error()
        .map(Errno::from_raw)
        .is_some_and(|errno| matches!(errno, Errno::EMFILE | Errno::ENFILE | Errno::ENOBUFS | Errno::ENOMEM))
}

/// One client connection, holding its share of the caps until it ends.
async fn connection(
    tcp: TcpStream,
    peer: SocketAddr,
    tls: Option<SslAcceptor>,
    service: WithClient,
    cancel: CancellationToken,
    _permit: OwnedSemaphorePermit,
    _slot: ClientSlot,
) {
    let Some(acceptor) = tls else {
        return serve_connection(tcp, peer, service, &cancel).await;
    };
    let handshake = tokio::select! {
        _ = cancel.cancelled() => return,
        done = tokio::time::timeout(HANDSHAKE_DEADLINE, tls_handshake(&acceptor, tcp)) => done,
    };
    match handshake {
        Ok(Ok(stream)) => serve_connection(stream, peer, service, &cancel).await,
        Ok(Err(e)) => tracing::debug!(target: "WebServer", "TLS handshake with {peer} failed: {e}"),
        Err(_) => tracing::debug!(target: "WebServer", "TLS handshake with {peer} timed out"),
    }
}

async fn tls_handshake(acceptor: &SslAcceptor, tcp: TcpStream) -> Result<SslStream<TcpStream>, String> {
    let ssl = Ssl::new(acceptor.context()).map_err(|e| e.to_string())?;
    let mut stream = SslStream::new(ssl, tcp).map_err(|e| e.to_string())?;
    Pin::new(&mut stream).accept().await.map_err(|e| e.to_string())?;
    Ok(stream)
}

/// HTTP/1.1 on one connection, with the head deadline; on `cancel`, the answer in progress is
/// finished and the connection closed.
async fn serve_connection<T>(io: T, peer: SocketAddr, service: WithClient, cancel: &CancellationToken)
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEAD_DEADLINE)
        .max_header_size(MAX_HEAD);
    let conn = builder.serve_connection(TokioIo::new(IdleIo::new(io)), service);
    let mut conn = std::pin::pin!(conn);
    let result = tokio::select! {
        result = conn.as_mut() => result,
        _ = cancel.cancelled() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(target: "WebServer", "connection from {peer}: {e}");
    }
}

/// A stream that fails once its peer has neither sent nor taken anything for [`IDLE_TIMEOUT`].
struct IdleIo<T> {
    io: T,
    idle: Pin<Box<Sleep>>,
}

impl<T> IdleIo<T> {
    fn new(io: T) -> IdleIo<T> {
        IdleIo {
            io,
            idle: Box::pin(tokio::time::sleep(IDLE_TIMEOUT)),
        }
    }

    fn progress(&mut self) {
        self.idle.as_mut().reset(Instant::now() + IDLE_TIMEOUT);
    }

    /// While the peer makes no progress: an error once it has been idle too long.
    fn idle_check(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Error> {
        std::future::Future::poll(self.idle.as_mut(), cx)
            .map(|()| std::io::Error::new(std::io::ErrorKind::TimedOut, "idle HTTP client"))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for IdleIo<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(r) => {
                if buf.filled().len() > before {
                    this.progress();
                }
                Poll::Ready(r)
            }
            Poll::Pending => this.idle_check(cx).map(Err),
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for IdleIo<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.io).poll_write(cx, data) {
            Poll::Ready(r) => {
                this.progress();
                Poll::Ready(r)
            }
            Poll::Pending => this.idle_check(cx).map(Err),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address")
    }

    #[test]
    fn one_client_gets_at_most_its_share_and_others_are_not_affected() {
        let slots = ClientSlots::new(2);
        let a1 = slots.take(ip("10.0.0.1")).expect("first");
        let _a2 = slots.take(ip("10.0.0.1")).expect("second");
        assert!(slots.take(ip("10.0.0.1")).is_none(), "a third from the same address");
        let _b = slots.take(ip("10.0.0.2")).expect("another address is not affected");
        drop(a1);
        assert!(
            slots.take(ip("10.0.0.1")).is_some(),
            "a closed connection frees its slot"
        );
    }

    #[test]
    fn clients_without_connections_are_forgotten() {
        let slots = ClientSlots::new(4);
        let conns: Vec<_> = (1..=50)
            .filter_map(|i| slots.take(ip(&format!("10.0.1.{i}"))))
            .collect();
        assert_eq!(slots.clients(), 50);
        drop(conns);
        assert_eq!(slots.clients(), 0);
    }

    #[test]
    fn an_ipv6_client_is_its_slash_64_and_mapped_ipv4_is_ipv4() {
        let slots = ClientSlots::new(1);
        let _a = slots.take(ip("2001:db8:1:2::1")).expect("first");
        assert!(
            slots.take(ip("2001:db8:1:2:ffff::9")).is_none(),
            "another address in the same /64 is the same client"
        );
        assert!(slots.take(ip("2001:db8:1:3::1")).is_some(), "another /64");
        let _v4 = slots.take(ip("192.0.2.7")).expect("IPv4");
        assert!(
            slots.take(ip("::ffff:192.0.2.7")).is_none(),
            "the IPv4-mapped form is the same client"
        );
    }

    #[test]
    fn limits_leave_most_descriptors_to_the_rest_of_the_daemon() {
        let limits = |connections, per_client, reserved| Limits {
            connections,
            per_client,
            reserved,
        };
        assert_eq!(Limits::for_descriptors(1024), limits(256, 32, 32));
        assert_eq!(Limits::for_descriptors(u64::MAX), limits(256, 32, 32));
        assert_eq!(Limits::for_descriptors(256), limits(64, 8, 8));
        assert_eq!(Limits::for_descriptors(8), limits(2, 1, 1));
        assert_eq!(Limits::for_descriptors(3), limits(1, 1, 0));
        for n in [8, 100, 256, 1000, 1024, 4096] {
            let l = Limits::for_descriptors(n);
            assert!(l.connections as u64 <= n / 4, "{n}: {l:?}");
            assert!(l.per_client <= (l.connections / 8).max(1), "{n}: {l:?}");
            assert!(l.general() >= 1 && l.reserved <= l.connections / 8 + 1, "{n}: {l:?}");
        }
    }

    #[test]
    fn warnings_are_throttled_and_count_what_they_stand_for() {
        let every = Duration::from_secs(60);
        let mut t = Throttled::new(every);
        let t0 = Instant::now();
        let ip = |i: u8| Some(IpAddr::from([127, 0, 0, i]));
        let burst = |count, addresses, latest: &str| {
            Some(Burst {
                count,
                addresses,
                latest: latest.to_string(),
            })
        };
        assert_eq!(
            t.note(t0, ip(2), "a".into()),
            burst(1, 1, "a"),
            "the first event is logged"
        );
        assert_eq!(t.note(t0, ip(2), "b".into()), None);
        assert_eq!(t.note(t0 + every / 2, ip(3), "c".into()), None);
        assert_eq!(t.due(t0 + every / 2), None, "not before the window has passed");
        assert_eq!(
            t.note(t0 + every, ip(4), "d".into()),
            burst(3, 3, "d"),
            "the next warning counts the events in between"
        );
        assert_eq!(t.due(t0 + every * 3), None, "nothing pending: nothing to say");
        assert_eq!(t.note(t0 + every * 3, None, "e".into()), burst(1, 0, "e"));
        assert_eq!(t.note(t0 + every * 3, None, "f".into()), None);
        assert_eq!(
            t.pending(t0 + every * 3),
            burst(1, 0, "f"),
            "at shutdown, whatever the time"
        );
    }

    /// The flood stops: its count is reported when the window has passed, without a next event.
    #[test]
    fn a_flood_that_stops_is_reported_in_full_by_the_timer() {
        let every = Duration::from_secs(60);
        let r = Refusals::new(Limits::for_descriptors(1024), every);
        let t0 = Instant::now();
        for i in 0..1000u32 {
            let ip = IpAddr::from([127, 0, 0, (2 + i % 100) as u8]);
            let burst = r.throttle(Refusal::ServerFull).note(t0, Some(ip), ip.to_string());
            assert_eq!(burst.is_some(), i == 0, "{i}");
        }
        let wrong = "GET /state.json from 127.0.0.1: wrong bearer token";
        for _ in 0..500 {
            let _ = r
                .throttle(Refusal::Auth)
                .note(t0, Some(IpAddr::from([127, 0, 0, 1])), wrong.into());
        }
        assert!(r.flush(t0 + every / 2, false).is_empty(), "not within the window");
        let lines = r.flush(t0 + every, false);
        assert_eq!(
            lines,
            [
                "refused 999 connection(s) while the 224 general connection slots were all taken (the other 32 are kept for loopback and http_reserved_clients), the latest from 127.0.0.101; 100 client addresses",
                "refused 499 request(s) without a valid bearer token, the latest GET /state.json from 127.0.0.1: wrong bearer token",
            ]
        );
        assert!(r.flush(t0 + every * 5, false).is_empty(), "reported once");
    }
}
