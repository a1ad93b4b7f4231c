//! The HTTP server's connections (the routes are in `http`): the accept loop, the caps on
//! connections (global, sized from the descriptor limit, and per client address), both taken
//! before any TLS handshake; the handshake's deadline; each request head's absolute deadline;
//! the idle timeout for stalled bodies and answers; and graceful shutdown.
//!
//! Why it exists: a client that trickles header bytes, or opens TLS connections and never
//! finishes the handshake, must not be able to hold the API (load balancers and peers would see
//! the node as down) or take the descriptors the state file and the pollers need.

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use openssl::ssl::{Ssl, SslAcceptor, SslFiletype, SslMethod};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
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
/// Refused connections and accept errors are logged at most this often.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// The connection caps for a process that may have `descriptors` open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Client connections at once, TLS handshakes included.
    pub connections: usize,
    /// Of those, from one client address.
    pub per_client: usize,
}

impl Limits {
    /// HTTP clients get at most a quarter of the descriptors, so the state file, the pollers and
    /// the logs always have the rest; one client address at most an eighth of those, so one
    /// abuser cannot shut out the load balancer or the peers.
    pub fn for_descriptors(descriptors: u64) -> Limits {
        let quarter = usize::try_from(descriptors / 4).unwrap_or(usize::MAX);
        let connections = quarter.clamp(1, MAX_CONNECTIONS);
        Limits {
            connections,
            per_client: (connections / 8).clamp(1, MAX_PER_CLIENT),
        }
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

/// A warning that is logged at most every [`WARN_EVERY`], with a count of what it stood for
/// (a flood must not flood the log too).
struct Throttled {
    last: Option<Instant>,
    count: u64,
}

impl Throttled {
    fn new() -> Throttled {
        Throttled { last: None, count: 0 }
    }

    /// Counts one event; `Some(events since the last warning)` when it is time to warn.
    fn note(&mut self) -> Option<u64> {
        self.count += 1;
        let now = Instant::now();
        if self.last.is_some_and(|last| now < last + WARN_EVERY) {
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.count))
    }
}

type Service = TowerToHyperService<Router>;

/// Serves `app` on `listener` (over TLS with `tls`) until `cancel` fires, then lets the answers
/// in progress finish.
pub async fn serve(listener: TcpListener, tls: Option<SslAcceptor>, app: Router, cancel: CancellationToken) {
    let descriptors = raise_descriptor_limit().unwrap_or(ASSUMED_DESCRIPTORS);
    let limits = Limits::for_descriptors(descriptors);
    let shown = listener
        .local_addr()
        .map_or_else(|_| "?".to_string(), |a| a.to_string());
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(
        target: "WebServer",
        "listening on {scheme}://{shown}: at most {} client connections, {} from one address (descriptor limit {descriptors})",
        limits.connections,
        limits.per_client
    );
    let permits = Arc::new(Semaphore::new(limits.connections));
    let clients = ClientSlots::new(limits.per_client);
    let service = TowerToHyperService::new(app);
    let connections = TaskTracker::new();
    let mut refused = Throttled::new();
    let mut accept_errors = Throttled::new();
    loop {
        // The permit comes before the accept: at the cap, new connections wait in the kernel's
        // backlog, where they take no descriptor of ours.
        let permit = tokio::select! {
            _ = cancel.cancelled() => break,
            permit = permits.clone().acquire_owned() => match permit {
                Ok(p) => p,
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
                if let Some(n) = accept_errors.note() {
                    tracing::warn!(target: "WebServer", "accept failed ({n} times since the last warning): {e}");
                }
                if is_resource_shortage(&e) {
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
                continue;
            }
        };
        let Some(slot) = clients.take(peer.ip()) else {
            // closed at once, before any TLS work: the client already has its share
            drop(tcp);
            if let Some(n) = refused.note() {
                tracing::warn!(
                    target: "WebServer",
                    "refused {n} connection(s) from clients that already had {} open, the latest from {}",
                    limits.per_client,
                    peer.ip()
                );
            }
            continue;
        };
        connections.spawn(connection(
            tcp,
            peer,
            tls.clone(),
            service.clone(),
            cancel.clone(),
            permit,
            slot,
        ));
    }
    connections.close();
    connections.wait().await;
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
    service: Service,
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
async fn serve_connection<T>(io: T, peer: SocketAddr, service: Service, cancel: &CancellationToken)
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
        assert_eq!(
            Limits::for_descriptors(1024),
            Limits {
                connections: 256,
                per_client: 32
            }
        );
        assert_eq!(
            Limits::for_descriptors(u64::MAX),
            Limits {
                connections: 256,
                per_client: 32
            }
        );
        assert_eq!(
            Limits::for_descriptors(256),
            Limits {
                connections: 64,
                per_client: 8
            }
        );
        assert_eq!(
            Limits::for_descriptors(3),
            Limits {
                connections: 1,
                per_client: 1
            }
        );
        for n in [8, 100, 256, 1000, 1024, 4096] {
            let l = Limits::for_descriptors(n);
            assert!(l.connections as u64 <= n / 4, "{n}: {l:?}");
            assert!(l.per_client <= (l.connections / 8).max(1), "{n}: {l:?}");
        }
    }

    #[test]
    fn warnings_are_throttled_and_count_what_they_stand_for() {
        let mut t = Throttled::new();
        assert_eq!(t.note(), Some(1), "the first event is logged");
        assert_eq!(t.note(), None);
        assert_eq!(t.note(), None);
        t.last = t.last.and_then(|l| l.checked_sub(WARN_EVERY));
        assert_eq!(t.note(), Some(3), "the next warning counts the events in between");
    }
}
