//! UDP destinations named by host and port (StatsD, syslog over UDP), resolved off the caller's
//! thread. Owns each destination's socket, its current address and the threads that look it up.
//!
//! A name lookup (`getaddrinfo`) can block for many seconds and cannot be cancelled, so it never
//! runs on the thread that creates or uses a destination (that may be the async decision loop,
//! during a reload). An IP literal needs no lookup and is usable at once. A host name gets a
//! manager thread: it runs each lookup on a thread of its own, says in the log when one has not
//! answered within [`Timing::slow`], retries a failed one every [`Timing::retry`], and looks the
//! name up again every [`Timing::refresh`] so that a changed DNS record is followed (a failed
//! refresh keeps the last address). Until the first answer, sends are dropped and counted; the
//! count is logged when the address becomes known. Dropping the [`Destination`] (a reload replaced
//! it) ends its manager at once; a lookup still in `getaddrinfo` then ends when that call returns,
//! so at most one lookup per destination is ever running.

use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

/// Resolves `host` and `port` to addresses; the system's resolver unless a test injects another.
pub type Lookup = Arc<dyn Fn(&str, u16) -> io::Result<Vec<SocketAddr>> + Send + Sync>;

/// The system resolver (`getaddrinfo`, through `ToSocketAddrs`).
pub fn system_lookup() -> Lookup {
    Arc::new(|host, port| (host, port).to_socket_addrs().map(Iterator::collect))
}

/// How often a host name is looked up.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    /// After a failed lookup, the next one starts this much later.
    pub retry: Duration,
    /// After a successful lookup, the name is looked up again this much later.
    pub refresh: Duration,
    /// A lookup that has not answered within this is reported (once) as still pending.
    pub slow: Duration,
}

impl Default for Timing {
    fn default() -> Timing {
        Timing {
            retry: Duration::from_secs(30),
            refresh: Duration::from_secs(300),
            slow: Duration::from_secs(5),
        }
    }
}

/// Who the destination belongs to: decides the log component and the words in log lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owner {
    Statsd,
    Syslog,
}

impl Owner {
    fn host_noun(self) -> &'static str {
        match self {
            Owner::Statsd => "statsd host",
            Owner::Syslog => "syslog host",
        }
    }

    fn items(self) -> &'static str {
        match self {
            Owner::Statsd => "metrics",
            Owner::Syslog => "syslog messages",
        }
    }
}

/// Logs under the owner's component (`StatsClient` or `pglookout`); tracing wants constant targets.
macro_rules! say {
    ($owner:expr, $level:ident, $($arg:tt)*) => {
        match $owner {
            Owner::Statsd => tracing::$level!(target: "StatsClient", $($arg)*),
            Owner::Syslog => tracing::$level!(target: "pglookout", $($arg)*),
        }
    };
}

struct Resolved {
    socket: UdpSocket,
    addr: SocketAddr,
}

/// What the manager thread waits for: a lookup's answer, or its destination being dropped.
#[derive(Default)]
struct Control {
    abandoned: bool,
    /// (attempt number, answer) from a lookup thread.
    answer: Option<(u64, io::Result<Vec<SocketAddr>>)>,
}

#[derive(Default)]
struct Shared {
    current: RwLock<Option<Arc<Resolved>>>,
    /// Sends dropped because no address was known yet, since the last report.
    dropped: AtomicU64,
    control: Mutex<Control>,
    wake: Condvar,
}

impl Shared {
    fn control(&self) -> MutexGuard<'_, Control> {
        // a panic elsewhere while holding the lock leaves plain data behind; keep going
        self.control.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn current(&self) -> Option<Arc<Resolved>> {
        self.current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn set_current(&self, r: Arc<Resolved>) {
        *self.current.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(r);
    }
}

/// A UDP destination; sending never blocks and never waits for a lookup.
pub struct Destination {
    shared: Arc<Shared>,
}

impl Destination {
    /// A destination resolved by the system resolver with the default [`Timing`]. Fails only if
    /// no UDP socket can be opened for an IP literal; a host name's lookup problems are logged.
    pub fn new(owner: Owner, host: &str, port: u16) -> io::Result<Destination> {
        Destination::with_lookup(owner, host, port, system_lookup(), Timing::default())
    }

    /// As [`Destination::new`], with the lookup function and timing given (tests).
    pub fn with_lookup(owner: Owner, host: &str, port: u16, lookup: Lookup, timing: Timing) -> io::Result<Destination> {
        let shared = Arc::new(Shared::default());
        let literal = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
        if let Ok(ip) = literal.parse::<IpAddr>() {
            let addr = SocketAddr::new(ip, port);
            shared.set_current(Arc::new(Resolved {
                socket: bind_for(&addr)?,
                addr,
            }));
            return Ok(Destination { shared });
        }
        let manager = Manager {
            shared: shared.clone(),
            owner,
            host: host.to_string(),
            port,
            lookup,
            timing,
        };
        std::thread::Builder::new()
            .name("dns".into())
            .spawn(move || manager.run())?;
        Ok(Destination { shared })
    }

    /// Sends one datagram. `Ok(false)`: no address is known yet, and the datagram was dropped.
    pub fn send(&self, data: &[u8]) -> io::Result<bool> {
        match self.shared.current() {
            Some(r) => r.socket.send_to(data, r.addr).map(|_| true),
            None => {
                self.shared.dropped.fetch_add(1, Ordering::Relaxed);
                Ok(false)
            }
        }
    }

    /// The address datagrams go to, once known.
    pub fn addr(&self) -> Option<SocketAddr> {
        self.shared.current().map(|r| r.addr)
    }
}

impl Drop for Destination {
    fn drop(&mut self) {
        // never blocks: the manager notices and ends; a lookup in progress ends when it returns
        self.shared.control().abandoned = true;
        self.shared.wake.notify_all();
    }
}

/// A non-blocking UDP socket of the address's family.
fn bind_for(addr: &SocketAddr) -> io::Result<UdpSocket> {
    let socket = UdpSocket::bind(if addr.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" })?;
    socket.set_nonblocking(true)?;
    Ok(socket)
}

/// The thread that keeps one host name resolved.
struct Manager {
    shared: Arc<Shared>,
    owner: Owner,
    host: String,
    port: u16,
    lookup: Lookup,
    timing: Timing,
}

impl Manager {
    fn run(self) {
        let owner = self.owner;
        let host = self.host.as_str();
        let mut attempt = 0u64;
        // whether the current run of failures has been logged (one line per run, not per retry)
        let mut failing = false;
        loop {
            attempt += 1;
            let Some(answer) = self.look_up(attempt) else { return };
            let outcome = answer.and_then(|addrs| {
                let addr = addrs
                    .into_iter()
                    .next()
                    .ok_or_else(|| io::Error::other("no addresses"))?;
                match self.shared.current() {
                    Some(old) if old.addr == addr => Ok((addr, None)),
                    // a new socket only if the address family changed
                    Some(old) if old.addr.is_ipv4() == addr.is_ipv4() => Ok((addr, Some(old.socket.try_clone()?))),
                    _ => Ok((addr, Some(bind_for(&addr)?))),
                }
            });
            let pause = match outcome {
                Ok((addr, socket)) => {
                    let old = self.shared.current().map(|r| r.addr);
                    if let Some(socket) = socket {
                        self.shared.set_current(Arc::new(Resolved { socket, addr }));
                    }
                    let dropped = self.shared.dropped.swap(0, Ordering::Relaxed);
                    match old {
                        None if failing || dropped > 0 => say!(
                            owner,
                            info,
                            "{} {host:?} resolves to {addr} now; {dropped} {} were dropped until then",
                            owner.host_noun(),
                            owner.items()
                        ),
                        None => say!(owner, debug, "{} {host:?} resolves to {addr}", owner.host_noun()),
                        Some(old) if old != addr => {
                            say!(
                                owner,
                                info,
                                "{} {host:?} resolves to {addr} now (was {old})",
                                owner.host_noun()
                            )
                        }
                        Some(_) if failing => say!(owner, info, "{} {host:?} resolves again", owner.host_noun()),
                        Some(_) => {}
                    }
                    failing = false;
                    self.timing.refresh
                }
                Err(e) => {
                    if !failing {
                        let retry = self.timing.retry.as_secs_f64();
                        match self.shared.current() {
                            Some(r) => say!(
                                owner,
                                warn,
                                "{} {host:?} does not resolve ({e}); still sending to {}, trying again every {retry} s",
                                owner.host_noun(),
                                r.addr
                            ),
                            None => say!(
                                owner,
                                error,
                                "{} {host:?} does not resolve ({e}); {} are not sent until it does, trying again every {retry} s",
                                owner.host_noun(),
                                owner.items()
                            ),
                        }
                    } else {
                        say!(
                            owner,
                            debug,
                            "{} {host:?} still does not resolve: {e}",
                            owner.host_noun()
                        );
                    }
                    failing = true;
                    self.timing.retry
                }
            };
            let control = self.shared.control();
            let (control, _) = self
                .shared
                .wake
                .wait_timeout_while(control, pause, |c| !c.abandoned)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if control.abandoned {
                return;
            }
        }
    }

    /// Runs one lookup on its own thread and waits for it; `None` once the destination is dropped.
    fn look_up(&self, attempt: u64) -> Option<io::Result<Vec<SocketAddr>>> {
        let shared = self.shared.clone();
        let lookup = self.lookup.clone();
        let (host, port) = (self.host.clone(), self.port);
        let spawned = std::thread::Builder::new().name("dns-lookup".into()).spawn(move || {
            let answer = lookup(&host, port);
            shared.control().answer = Some((attempt, answer));
            shared.wake.notify_all();
        });
        if let Err(e) = spawned {
            return Some(Err(e));
        }
        let started = Instant::now();
        let mut reported_slow = false;
        let mut control = self.shared.control();
        loop {
            if control.abandoned {
                return None;
            }
            if let Some((n, answer)) = control.answer.take() {
                if n == attempt {
                    return Some(answer);
                }
                continue;
            }
            let left = self.timing.slow.saturating_sub(started.elapsed());
            if reported_slow {
                control = self
                    .shared
                    .wake
                    .wait(control)
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
            } else if left.is_zero() {
                reported_slow = true;
                drop(control);
                let owner = self.owner;
                let host = &self.host;
                let slow = self.timing.slow.as_secs_f64();
                if self.shared.current().is_none() {
                    say!(
                        owner,
                        warn,
                        "{} {host:?}: the lookup has not answered within {slow} s; {} are not sent until it does",
                        owner.host_noun(),
                        owner.items()
                    );
                } else {
                    say!(
                        owner,
                        warn,
                        "{} {host:?}: the lookup has not answered within {slow} s; still sending to the last address",
                        owner.host_noun()
                    );
                }
                control = self.shared.control();
            } else {
                control = self
                    .shared
                    .wake
                    .wait_timeout(control, left)
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    const DEADLINE: Duration = Duration::from_secs(20);

    fn listener() -> (UdpSocket, u16) {
        let l = UdpSocket::bind("127.0.0.1:0").expect("bind");
        l.set_read_timeout(Some(DEADLINE)).expect("timeout");
        let port = l.local_addr().expect("addr").port();
        (l, port)
    }

    fn fast() -> Timing {
        Timing {
            retry: Duration::from_millis(20),
            refresh: Duration::from_secs(300),
            slow: Duration::from_millis(50),
        }
    }

    /// Sends until the listener gets one datagram (sends before the address is known are dropped).
    fn send_until_received(d: &Destination, l: &UdpSocket, data: &[u8]) -> Vec<u8> {
        // each round waits up to 20 ms for the datagram: a bounded wait, not a blind sleep
        l.set_read_timeout(Some(Duration::from_millis(20))).expect("timeout");
        let end = Instant::now() + DEADLINE;
        let mut buf = [0u8; 256];
        loop {
            d.send(data).expect("send");
            if let Ok(n) = l.recv(&mut buf) {
                return buf[..n].to_vec();
            }
            assert!(Instant::now() < end, "nothing arrived within {DEADLINE:?}");
        }
    }

    #[test]
    fn an_ip_literal_is_usable_at_once() {
        let (l, port) = listener();
        let lookup: Lookup = Arc::new(|_, _| panic!("an IP literal is never looked up"));
        let d = Destination::with_lookup(Owner::Statsd, "127.0.0.1", port, lookup, fast()).expect("dest");
        assert!(d.send(b"x").expect("send"), "sent, not dropped");
        let mut buf = [0u8; 8];
        assert_eq!(l.recv(&mut buf).expect("recv"), 1);
    }

    #[test]
    fn a_hanging_lookup_does_not_block_the_caller_and_its_answer_is_used() {
        let (l, port) = listener();
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let release_rx = Arc::new(Mutex::new(release_rx));
        let (entered_tx, entered_rx) = mpsc::channel::<()>();
        let lookup: Lookup = Arc::new(move |host, port| {
            let _ = entered_tx.send(());
            // hangs until the test releases it; bounded (beyond the test's own deadline, so a
            // constructor that waits for it still fails the test) so nothing hangs forever
            let _ = release_rx.lock().expect("lock").recv_timeout(DEADLINE * 3);
            assert_eq!(host, "metrics.example");
            Ok(vec![SocketAddr::from(([127, 0, 0, 1], port))])
        });
        // the constructor runs on another thread, so a constructor that waits for the lookup
        // makes this test fail at the deadline instead of hanging
        let (made_tx, made_rx) = mpsc::channel();
        std::thread::spawn(move || {
            let d = Destination::with_lookup(Owner::Statsd, "metrics.example", port, lookup, fast());
            let _ = made_tx.send(d);
        });
        let d = made_rx
            .recv_timeout(DEADLINE)
            .expect("the constructor returns while the lookup hangs")
            .expect("dest");
        entered_rx.recv_timeout(DEADLINE).expect("the lookup started");
        assert!(!d.send(b"early").expect("send"), "no address yet: dropped");
        assert_eq!(d.addr(), None);
        release_tx.send(()).expect("release");
        assert_eq!(send_until_received(&d, &l, b"late"), b"late");
    }

    #[test]
    fn a_failed_lookup_is_retried_until_it_works() {
        let (l, port) = listener();
        let calls = Arc::new(AtomicU64::new(0));
        let counted = calls.clone();
        let lookup: Lookup = Arc::new(move |_, port| {
            if counted.fetch_add(1, Ordering::SeqCst) < 2 {
                Err(io::Error::other("temporary failure in name resolution"))
            } else {
                Ok(vec![SocketAddr::from(([127, 0, 0, 1], port))])
            }
        });
        let d = Destination::with_lookup(Owner::Syslog, "logs.example", port, lookup, fast()).expect("dest");
        assert_eq!(send_until_received(&d, &l, b"hello"), b"hello");
        assert_eq!(calls.load(Ordering::SeqCst), 3, "two failures, then the answer");
    }

    #[test]
    fn a_changed_record_is_followed() {
        let (old, old_port) = listener();
        let (new, new_port) = listener();
        // the record changes when the test says so
        let moved = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let record = moved.clone();
        let lookup: Lookup = Arc::new(move |_, _| {
            let port = if record.load(Ordering::SeqCst) {
                new_port
            } else {
                old_port
            };
            Ok(vec![SocketAddr::from(([127, 0, 0, 1], port))])
        });
        let timing = Timing {
            refresh: Duration::from_millis(20),
            ..fast()
        };
        let d = Destination::with_lookup(Owner::Statsd, "moving.example", 0, lookup, timing).expect("dest");
        assert_eq!(send_until_received(&d, &old, b"one"), b"one");
        moved.store(true, Ordering::SeqCst);
        assert_eq!(send_until_received(&d, &new, b"two"), b"two");
    }

    #[test]
    fn dropping_a_destination_ends_its_lookups() {
        let calls = Arc::new(AtomicU64::new(0));
        let counted = calls.clone();
        let (first_tx, first_rx) = mpsc::channel::<()>();
        let lookup: Lookup = Arc::new(move |_, _| {
            counted.fetch_add(1, Ordering::SeqCst);
            let _ = first_tx.send(());
            Err(io::Error::other("no such host"))
        });
        let timing = Timing {
            retry: DEADLINE * 10,
            ..fast()
        };
        let d = Destination::with_lookup(Owner::Statsd, "gone.example", 9, lookup, timing).expect("dest");
        first_rx.recv_timeout(DEADLINE).expect("the first lookup ran");
        let shared = Arc::downgrade(&d.shared);
        drop(d);
        // the manager (holding the last strong reference) ends instead of waiting for its retry
        let end = Instant::now() + DEADLINE;
        while shared.upgrade().is_some() {
            assert!(Instant::now() < end, "the manager thread outlived its destination");
            std::thread::yield_now();
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }
}
