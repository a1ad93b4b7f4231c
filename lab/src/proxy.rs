//! `Proxy`: a TCP forwarder on a free 127.0.0.1 port for injecting network faults between a
//! client (the daemon) and a node.
//!
//! Owns its listener and every connection it accepted (a `JoinSet` inside one task); dropping the
//! `Proxy` aborts that task, which closes everything. Modes:
//! - `Pass`: forward both ways (half-closes are forwarded).
//! - `Refuse`: new connections are accepted and reset at once; existing ones are reset.
//! - `Blackhole`: new connections are accepted and never answered (not even dialled upstream;
//!   one whose client closes meanwhile is dropped); existing ones stop being forwarded, so both
//!   ends hang. Back to `Pass`, forwarding resumes.
//!
//! [`Proxy::set_target`] points new connections elsewhere and resets the existing ones (e.g. to
//! swap a service for a misbehaving stand-in).
//!
//! [`Proxy::open_client_sockets`] counts the clients' sockets connected to it that are still
//! open, which the proxy itself cannot see while blackholed (it does not read then).

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

const UPSTREAM_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const BUFFER: usize = 16 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyMode {
    Pass,
    Refuse,
    Blackhole,
}

#[derive(Debug)]
pub struct Proxy {
    port: u16,
    target: watch::Sender<u16>,
    mode: watch::Sender<ProxyMode>,
    task: JoinHandle<()>,
}

impl Proxy {
    /// Listen on a free 127.0.0.1 port and forward to 127.0.0.1:`target_port` (mode `Pass`).
    /// Must be called within a tokio runtime; the proxy runs as a task of it.
    pub async fn start(target_port: u16) -> Result<Proxy> {
        Self::start_at(IpAddr::V4(Ipv4Addr::LOCALHOST), 0, target_port).await
    }

    /// Like [`Proxy::start`], listening on `addr`:`port` (0: a free port). Any 127.x.y.z address
    /// works on Linux's loopback, so a proxy can take a node's own port on another address
    /// (which lets a client's conninfo carry the node's port while its host picks the proxy).
    pub async fn start_at(addr: IpAddr, port: u16, target_port: u16) -> Result<Proxy> {
        let listener = TcpListener::bind((addr, port))
            .await
            .with_context(|| format!("binding the proxy listener on {addr}:{port}"))?;
        let port = listener.local_addr()?.port();
        let (mode, rx) = watch::channel(ProxyMode::Pass);
        let (target, target_rx) = watch::channel(target_port);
        let task = tokio::spawn(accept_loop(listener, target_rx, rx));
        Ok(Proxy {
            port,
            target,
            mode,
            task,
        })
    }

    /// The port clients connect to.
    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn target_port(&self) -> u16 {
        *self.target.borrow()
    }

    /// Forward new connections to 127.0.0.1:`port` from now on; connections to the old target
    /// are reset, so clients reconnect to the new one.
    pub fn set_target(&self, port: u16) {
        self.target.send_if_modified(|t| {
            let changed = *t != port;
            *t = port;
            changed
        });
    }

    pub fn mode(&self) -> ProxyMode {
        *self.mode.borrow()
    }

    /// Takes effect at once for new and existing connections.
    pub fn set_mode(&self, mode: ProxyMode) {
        self.mode.send_replace(mode);
    }

    /// How many sockets connected to the proxy are held open by some process of this network
    /// namespace, i.e. the clients' ends, whatever the proxy did with them. Read from
    /// `/proc/net/tcp{,6}`: a socket that its owner closed has no inode there any more (it may
    /// linger in FIN_WAIT until the peer, which may be blackholed, closes its end).
    pub fn open_client_sockets(&self) -> Result<usize> {
        let mut n = 0;
        for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
            let text = match std::fs::read_to_string(table) {
                Ok(t) => t,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e).with_context(|| format!("reading {table}")),
            };
            n += count_open_to_port(&text, self.port);
        }
        Ok(n)
    }
}

/// Rows of a `/proc/net/tcp` table whose remote port is `port` and that still have an inode.
fn count_open_to_port(table: &str, port: u16) -> usize {
    table
        .lines()
        .skip(1)
        .filter(|row| {
            let f: Vec<&str> = row.split_whitespace().collect();
            let remote_port = f
                .get(2)
                .and_then(|a| a.rsplit(':').next())
                .and_then(|p| u16::from_str_radix(p, 16).ok());
            remote_port == Some(port) && f.get(9).is_some_and(|inode| *inode != "0")
        })
        .count()
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept_loop(listener: TcpListener, target: watch::Receiver<u16>, mode: watch::Receiver<ProxyMode>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((client, _)) => {
                    connections.spawn(handle(client, target.clone(), mode.clone()));
                }
                // e.g. out of file descriptors: back off instead of spinning.
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Close with RST rather than FIN, like a refusing firewall or a crashed peer.
fn reset(stream: TcpStream) {
    let _ = stream.set_zero_linger();
    drop(stream);
}

async fn handle(mut client: TcpStream, mut target: watch::Receiver<u16>, mut mode: watch::Receiver<ProxyMode>) {
    let _ = client.set_nodelay(true);
    // Do not dial upstream while blackholed: the client must see no answer at all. What it
    // sends meanwhile is kept for the upstream; a client that gives up (closes) is dropped, as
    // a connection attempt into a real blackhole never completes: the heal must not dial a
    // burst of dead connections (which a daemon's per-address connection limit would count).
    let mut pending = Vec::new();
    loop {
        let current = *mode.borrow_and_update();
        match current {
            ProxyMode::Pass => break,
            ProxyMode::Refuse => return reset(client),
            ProxyMode::Blackhole => {
                let mut buf = [0u8; 4096];
                tokio::select! {
                    changed = mode.changed() => {
                        if changed.is_err() {
                            return;
                        }
                    }
                    read = client.read(&mut buf), if pending.len() < BUFFER => match read {
                        Ok(0) | Err(_) => return,
                        Ok(n) => pending.extend_from_slice(&buf[..n]),
                    },
                }
            }
        }
    }
    let target_port = *target.borrow_and_update();
    let server =
        match tokio::time::timeout(UPSTREAM_CONNECT_TIMEOUT, TcpStream::connect(("127.0.0.1", target_port))).await {
            Ok(Ok(s)) => s,
            _ => return reset(client),
        };
    let _ = server.set_nodelay(true);
    let mut server = server;
    if !pending.is_empty() && server.write_all(&pending).await.is_err() {
        reset(client);
        return reset(server);
    }
    let refused = tokio::select! {
        _ = pump(&mut client, &mut server, mode.clone()) => false,
        _ = until_refused(mode) => true,
        _ = target.changed() => true,
    };
    if refused {
        reset(client);
        reset(server);
    }
}

async fn until_refused(mut mode: watch::Receiver<ProxyMode>) {
    loop {
        if *mode.borrow_and_update() == ProxyMode::Refuse {
            return;
        }
        if mode.changed().await.is_err() {
            // The proxy is gone; its task aborts us.
            std::future::pending::<()>().await;
        }
    }
}

/// Forward both ways while the mode is `Pass`; stop reading (both ways) while it is `Blackhole`.
async fn pump(a: &mut TcpStream, b: &mut TcpStream, mut mode: watch::Receiver<ProxyMode>) {
    let (mut a_read, mut a_write) = a.split();
    let (mut b_read, mut b_write) = b.split();
    let mut a_buf = vec![0u8; BUFFER];
    let mut b_buf = vec![0u8; BUFFER];
    let (mut a_open, mut b_open) = (true, true);
    while a_open || b_open {
        if *mode.borrow_and_update() != ProxyMode::Pass {
            if mode.changed().await.is_err() {
                return;
            }
            continue;
        }
        tokio::select! {
            read = a_read.read(&mut a_buf), if a_open => match read {
                Ok(0) => {
                    a_open = false;
                    let _ = b_write.shutdown().await;
                }
                Ok(n) => {
                    if b_write.write_all(&a_buf[..n]).await.is_err() {
                        return;
                    }
                }
                Err(_) => return,
            },
            read = b_read.read(&mut b_buf), if b_open => match read {
                Ok(0) => {
                    b_open = false;
                    let _ = a_write.shutdown().await;
                }
                Ok(n) => {
                    if a_write.write_all(&b_buf[..n]).await.is_err() {
                        return;
                    }
                }
                Err(_) => return,
            },
            changed = mode.changed() => {
                if changed.is_err() {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_sockets_are_counted_by_remote_port_and_inode() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 0100007F:D431 01 00000000:00000000 00:00000000 00000000     0        0 1001 1 0 20 4 30 10 -1
   1: 0100007F:D431 0100007F:1F90 01 00000000:00000000 00:00000000 00000000     0        0 1002 1 0 20 4 30 10 -1
   2: 0100007F:D432 0100007F:1F90 05 00000000:00000000 00:00000000 00000000     0        0 0 1 0 20 4 30 10 -1
   3: 0100007F:D433 0100007F:1F91 01 00000000:00000000 00:00000000 00000000     0        0 1003 1 0 20 4 30 10 -1
";
        assert_eq!(count_open_to_port(table, 0x1F90), 1);
        assert_eq!(count_open_to_port(table, 0x1F91), 1);
        assert_eq!(count_open_to_port(table, 0xD431), 1);
        assert_eq!(count_open_to_port(table, 1), 0);
    }

    #[tokio::test]
    async fn closed_clients_are_not_counted_even_while_blackholed() {
        let target = TcpListener::bind(("127.0.0.1", 0)).await.expect("bind");
        let proxy = Proxy::start(target.local_addr().expect("addr").port())
            .await
            .expect("proxy");
        proxy.set_mode(ProxyMode::Blackhole);
        // Counted relative to what the table held before: the count is by remote port, and
        // a socket of an unrelated connection can carry the same port number (seen in CI).
        let count = || proxy.open_client_sockets().expect("count");
        let base = count();
        let settles = |want: usize| async move {
            crate::wait_for("the socket count", Duration::from_secs(10), || async {
                Ok(count() == want)
            })
            .await
            .is_ok()
        };
        let client = TcpStream::connect(("127.0.0.1", proxy.port())).await.expect("connect");
        assert!(
            settles(base + 1).await,
            "the open client is counted ({} for base {base})",
            count()
        );
        drop(client);
        assert!(
            settles(base).await,
            "the closed client is not counted ({} for base {base})",
            count()
        );
    }

    #[tokio::test]
    async fn what_a_client_sent_into_the_blackhole_reaches_the_target_after_the_heal() {
        let target = TcpListener::bind(("127.0.0.1", 0)).await.expect("bind");
        let proxy = Proxy::start(target.local_addr().expect("addr").port())
            .await
            .expect("proxy");
        proxy.set_mode(ProxyMode::Blackhole);
        let mut client = TcpStream::connect(("127.0.0.1", proxy.port())).await.expect("connect");
        client.write_all(b"hello").await.expect("write");
        // Not dialled while blackholed.
        let early = tokio::time::timeout(Duration::from_millis(300), target.accept()).await;
        assert!(early.is_err(), "dialled upstream while blackholed");
        proxy.set_mode(ProxyMode::Pass);
        let (mut server, _) = tokio::time::timeout(Duration::from_secs(5), target.accept())
            .await
            .expect("dialled after the heal")
            .expect("accept");
        let mut buf = [0u8; 5];
        tokio::time::timeout(Duration::from_secs(5), server.read_exact(&mut buf))
            .await
            .expect("in time")
            .expect("read");
        assert_eq!(&buf, b"hello");
        // A client that gave up inside the blackhole is never dialled for.
        proxy.set_mode(ProxyMode::Blackhole);
        drop(TcpStream::connect(("127.0.0.1", proxy.port())).await.expect("connect"));
        tokio::time::sleep(Duration::from_millis(200)).await;
        proxy.set_mode(ProxyMode::Pass);
        let late = tokio::time::timeout(Duration::from_millis(500), target.accept()).await;
        assert!(late.is_err(), "a dead connection was dialled at the heal");
    }

    #[tokio::test]
    async fn set_target_resets_old_connections_and_redirects_new_ones() {
        let a = TcpListener::bind(("127.0.0.1", 0)).await.expect("bind a");
        let b = TcpListener::bind(("127.0.0.1", 0)).await.expect("bind b");
        let b_port = b.local_addr().expect("addr").port();
        let proxy = Proxy::start(a.local_addr().expect("addr").port()).await.expect("proxy");
        let mut old = TcpStream::connect(("127.0.0.1", proxy.port())).await.expect("connect");
        let (_a_side, _) = a.accept().await.expect("a accepts");
        proxy.set_target(b_port);
        assert_eq!(proxy.target_port(), b_port);
        let mut buf = [0u8; 1];
        let read = tokio::time::timeout(Duration::from_secs(5), old.read(&mut buf))
            .await
            .expect("reset in time");
        assert!(matches!(read, Ok(0) | Err(_)), "the old connection is closed: {read:?}");
        let _new = TcpStream::connect(("127.0.0.1", proxy.port())).await.expect("connect");
        tokio::time::timeout(Duration::from_secs(5), b.accept())
            .await
            .expect("b accepts in time")
            .expect("b accepts");
    }
}
