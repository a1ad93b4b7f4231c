//! Log lines: to stderr as `time<TAB>component<TAB>LEVEL<TAB>message` (without the time under
//! systemd, which stamps lines itself), and optionally to syslog. The level and the syslog
//! target can be changed at runtime (SIGHUP). Other crates' events are shown from WARN up.
//! Nothing here formats secrets: callers only ever log masked connection strings. Control
//! characters in a message (a peer's node name with a newline or an escape sequence) are
//! written as escapes ([`crate::text::printable`]): one event is one line.
//!
//! Owns the global subscriber, the stderr writer thread and the syslog socket. Logging never
//! blocks the thread that logs: a line is queued for the writer thread (at most
//! [`QUEUE_LINES`]), and when stderr's reader stalls (a stuck journald, a full pipe) and the
//! queue is full, lines are dropped and counted; once writing resumes, one line says how many
//! were lost. Syslog datagrams are sent without blocking (a message that does not fit is
//! dropped), and a syslog host name is resolved in the background ([`crate::resolve`]). When
//! syslog cannot be reached (a socket that does not exist, a full queue), stderr says so once,
//! then at most once per [`SYSLOG_REPORT_EVERY`] with the count of lines not sent, and once
//! more when sending works again.

use crate::config::{Config, LogLevel};
use crate::resolve::{Destination, Owner};
use std::fmt::Write as _;
use std::os::fd::AsFd;
use std::os::unix::net::UnixDatagram;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, TrySendError};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::Layer;

/// How many formatted lines may wait for stderr: enough for a burst (a reload at DEBUG, a
/// thousand-node round) while the reader is briefly slow, and at most about a megabyte.
pub const QUEUE_LINES: usize = 4096;

/// How often, at most, stderr repeats that syslog cannot be reached.
pub const SYSLOG_REPORT_EVERY: Duration = Duration::from_secs(60);

enum SyslogSink {
    Unix(UnixDatagram, String),
    Udp(Destination),
}

/// The syslog target of the running config.
struct Syslog {
    sink: SyslogSink,
    facility: u8,
    /// `syslog_address`, for messages.
    address: String,
    trouble: SyslogTrouble,
}

/// Failed syslog sends, reported on stderr without flooding it: the first failure at once,
/// then one line per [`SYSLOG_REPORT_EVERY`] at most, with the count, and one line when a send
/// works again.
#[derive(Default)]
struct SyslogTrouble {
    /// Failed sends since the last report line.
    unreported: u64,
    /// When the last report line was written; `None` while sending works.
    reported_at: Option<Instant>,
}

impl SyslogTrouble {
    /// A send failed at `now`: the line to write on stderr, if one is due.
    fn failed(&mut self, now: Instant, address: &str, error: &std::io::Error) -> Option<String> {
        self.unreported += 1;
        match self.reported_at {
            Some(at) if now.saturating_duration_since(at) < SYSLOG_REPORT_EVERY => None,
            previous => {
                let n = std::mem::take(&mut self.unreported);
                self.reported_at = Some(now);
                Some(match previous {
                    None => format!(
                        "cannot log to syslog at {address:?}: {error}; lines go to stderr only (repeated at most every {} s)",
                        SYSLOG_REPORT_EVERY.as_secs()
                    ),
                    Some(_) => format!("cannot log to syslog at {address:?}: {error}; {n} lines not sent since the last report"),
                })
            }
        }
    }

    /// A send worked: the line that says so, if sends had failed.
    fn sent(&mut self, address: &str) -> Option<String> {
        self.reported_at.take()?;
        let n = std::mem::take(&mut self.unreported);
        Some(format!(
            "syslog at {address:?} works again ({n} more lines were not sent)"
        ))
    }
}

struct Shared {
    level: AtomicU8,
    syslog: Mutex<Option<Syslog>>,
    timestamps: bool,
    stderr: Queue,
}

/// The logger `init` installed, for [`flush`] and [`dropped_lines`].
static INSTALLED: OnceLock<Arc<Shared>> = OnceLock::new();

/// Writes one whole line somewhere (stderr, or a test's sink); may block.
type Sink = Box<dyn FnMut(&[u8]) -> std::io::Result<()> + Send>;

/// Lines lost because the queue was full (or stderr failed).
#[derive(Default)]
struct Drops {
    /// Since the last report line.
    unreported: AtomicU64,
    /// Since the start.
    total: AtomicU64,
}

impl Drops {
    fn add(&self, n: u64) {
        self.unreported.fetch_add(n, Ordering::AcqRel);
        self.total.fetch_add(n, Ordering::Relaxed);
    }
}

/// Counts the writer has reached, for [`Queue::flush`].
#[derive(Default)]
struct Progress {
    written: u64,
}

/// Lines on their way to a sink that may block, through a bounded queue and one writer thread.
struct Queue {
    /// `None` if the writer thread could not be started: then lines are written directly.
    tx: Option<SyncSender<String>>,
    drops: Arc<Drops>,
    /// Lines queued since the start (report lines included).
    queued: AtomicU64,
    progress: Arc<(Mutex<Progress>, Condvar)>,
    timestamps: bool,
}

/// The line that tells how many lines were lost, in the format of the others.
fn drop_report(n: u64, timestamps: bool) -> String {
    let mut line = String::new();
    if timestamps {
        let _ = write!(line, "{}\t", chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ"));
    }
    let _ = writeln!(
        line,
        "pglookout\tWARNING\t{n} log lines were dropped while stderr was blocked"
    );
    line
}

impl Queue {
    fn start(capacity: usize, timestamps: bool, mut sink: Sink) -> Queue {
        let (tx, rx) = std::sync::mpsc::sync_channel::<String>(capacity);
        let drops: Arc<Drops> = Arc::default();
        let progress: Arc<(Mutex<Progress>, Condvar)> = Arc::default();
        let writer = {
            let drops = drops.clone();
            let progress = progress.clone();
            move || writer(&rx, &drops, &progress, timestamps, &mut *sink)
        };
        // a std thread does not keep the process alive: exit works even while it is stuck in write(2)
        let tx = match std::thread::Builder::new().name("log-writer".into()).spawn(writer) {
            Ok(_) => Some(tx),
            Err(_) => None,
        };
        Queue {
            tx,
            drops,
            queued: AtomicU64::new(0),
            progress,
            timestamps,
        }
    }

    /// Queues `line`, or drops and counts it if the queue is full. Never blocks.
    fn push(&self, line: String) {
        let Some(tx) = &self.tx else {
            let _ = write_stderr(line.as_bytes());
            return;
        };
        // lines were lost and there is room again: say so where the gap is
        let n = self.drops.unreported.swap(0, Ordering::AcqRel);
        if n > 0 {
            match tx.try_send(drop_report(n, self.timestamps)) {
                Ok(()) => {
                    self.queued.fetch_add(1, Ordering::AcqRel);
                }
                Err(_) => {
                    self.drops.unreported.fetch_add(n, Ordering::AcqRel);
                }
            }
        }
        match tx.try_send(line) {
            Ok(()) => {
                self.queued.fetch_add(1, Ordering::AcqRel);
            }
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => self.drops.add(1),
        }
    }

    /// Waits until the lines queued so far are written, at most `timeout`; whether they were.
    fn flush(&self, timeout: Duration) -> bool {
        let target = self.queued.load(Ordering::Acquire);
        let end = Instant::now() + timeout;
        let (lock, cv) = &*self.progress;
        let mut p = lock.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        while p.written < target {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() || self.tx.is_none() {
                return false;
            }
            p = cv
                .wait_timeout(p, left)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
        true
    }
}

/// The writer thread: writes queued lines in order; when the queue runs dry, reports lines that
/// were dropped and not yet reported (no later line came to carry the report).
fn writer(
    rx: &Receiver<String>,
    drops: &Drops,
    progress: &(Mutex<Progress>, Condvar),
    timestamps: bool,
    sink: &mut (dyn FnMut(&[u8]) -> std::io::Result<()> + Send),
) {
    loop {
        let line = match rx.try_recv() {
            Ok(line) => line,
            Err(TryRecvError::Empty) => {
                let n = drops.unreported.swap(0, Ordering::AcqRel);
                if n > 0 {
                    let _ = sink(drop_report(n, timestamps).as_bytes());
                }
                match rx.recv() {
                    Ok(line) => line,
                    Err(_) => return,
                }
            }
            Err(TryRecvError::Disconnected) => return,
        };
        if sink(line.as_bytes()).is_err() {
            // stderr is closed or non-blocking and full: the line is lost, and reported later
            drops.add(1);
        }
        let (lock, cv) = progress;
        lock.lock().unwrap_or_else(std::sync::PoisonError::into_inner).written += 1;
        cv.notify_all();
    }
}

/// Writes all of `buf` to file descriptor 2, blocking as long as the reader does. Bypasses
/// `std::io::Stderr`'s lock, so that `eprintln!` elsewhere never waits behind a stuck writer.
fn write_stderr(mut buf: &[u8]) -> std::io::Result<()> {
    let stderr = std::io::stderr();
    while !buf.is_empty() {
        match nix::unistd::write(stderr.as_fd(), buf) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => buf = &buf[n..],
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Changes the running logger's settings.
#[derive(Clone)]
pub struct LogHandle(Arc<Shared>);

fn rank(l: &Level) -> u8 {
    match *l {
        Level::TRACE => 0,
        Level::DEBUG => 1,
        Level::INFO => 2,
        Level::WARN => 3,
        Level::ERROR => 4,
    }
}

fn level_rank(l: LogLevel) -> u8 {
    match l {
        LogLevel::Debug => 1,
        LogLevel::Info => 2,
        LogLevel::Warning => 3,
        LogLevel::Error | LogLevel::Critical => 4,
    }
}

fn level_name(l: &Level) -> &'static str {
    match *l {
        Level::TRACE | Level::DEBUG => "DEBUG",
        Level::INFO => "INFO",
        Level::WARN => "WARNING",
        Level::ERROR => "ERROR",
    }
}

fn syslog_severity(l: &Level) -> u8 {
    match *l {
        Level::TRACE | Level::DEBUG => 7,
        Level::INFO => 6,
        Level::WARN => 4,
        Level::ERROR => 3,
    }
}

/// Our components log under short targets (`pglookout`, `ClusterMonitor`, `WebServer`, ...).
fn is_ours(target: &str) -> bool {
    !target.contains("::") || target.starts_with("pglookout")
}

struct Line<'a>(&'a mut String);

impl Visit for Line<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0.push_str(value);
        } else {
            let _ = write!(self.0, " {}={}", field.name(), value);
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?}");
        } else {
            let _ = write!(self.0, " {}={:?}", field.name(), value);
        }
    }
}

struct LineLayer(Arc<Shared>);

impl<S: Subscriber> Layer<S> for LineLayer {
    /// The level changes at runtime, so no callsite's answer may be cached.
    fn register_callsite(&self, _: &'static tracing::Metadata<'static>) -> tracing::subscriber::Interest {
        tracing::subscriber::Interest::sometimes()
    }

    fn enabled(&self, meta: &tracing::Metadata<'_>, _: Context<'_, S>) -> bool {
        let min = if is_ours(meta.target()) {
            self.0.level.load(Ordering::Relaxed)
        } else {
            3
        };
        rank(meta.level()) >= min
    }

    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let meta = event.metadata();
        let mut msg = String::new();
        event.record(&mut Line(&mut msg));
        // one event, one line: names and answers from peers may hold newlines or escapes
        let msg = crate::text::printable(&msg);
        let component = meta.target().rsplit("::").next().unwrap_or("pglookout");
        let level = level_name(meta.level());
        let mut line = String::new();
        if self.0.timestamps {
            let _ = write!(line, "{}\t", chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ"));
        }
        let _ = writeln!(line, "{component}\t{level}\t{msg}");
        self.0.stderr.push(line);
        send_syslog(&self.0, Instant::now(), meta.level(), component, &msg);
    }
}

/// One line of ours on stderr, in the format of the others.
fn stderr_line(timestamps: bool, level: &Level, msg: &str) -> String {
    let mut line = String::new();
    if timestamps {
        let _ = write!(line, "{}\t", chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ"));
    }
    let _ = writeln!(line, "pglookout\t{}\t{msg}", level_name(level));
    line
}

/// Sends one line to syslog, if configured; a failure (or the recovery after failures) is
/// written to stderr directly, rate-limited by [`SyslogTrouble`] (never through `tracing`: this
/// runs inside the subscriber).
fn send_syslog(shared: &Shared, now: Instant, severity: &Level, component: &str, msg: &str) {
    let Ok(mut guard) = shared.syslog.lock() else {
        return;
    };
    let Some(syslog) = guard.as_mut() else {
        return;
    };
    let pri = u16::from(syslog.facility) * 8 + u16::from(syslog_severity(severity));
    let text = format!(
        "<{pri}>pglookout[{}]: {component} {}: {msg}",
        std::process::id(),
        level_name(severity)
    );
    let result = match &syslog.sink {
        SyslogSink::Unix(s, path) => s.send_to(text.as_bytes(), path).map(drop),
        SyslogSink::Udp(dest) => dest.send(text.as_bytes()).map(drop),
    };
    let report = match result {
        Ok(()) => syslog
            .trouble
            .sent(&syslog.address)
            .map(|m| stderr_line(shared.timestamps, &Level::INFO, &m)),
        Err(e) => syslog
            .trouble
            .failed(now, &syslog.address, &e)
            .map(|m| stderr_line(shared.timestamps, &Level::ERROR, &m)),
    };
    drop(guard);
    if let Some(line) = report {
        shared.stderr.push(line);
    }
}

/// Installs the global logger at DEBUG (the original's default) until a config is applied, and
/// starts its stderr writer thread. Needs no async runtime.
pub fn init() -> LogHandle {
    let timestamps = std::env::var_os("NOTIFY_SOCKET").is_none();
    let shared = Arc::new(Shared {
        level: AtomicU8::new(1),
        syslog: Mutex::new(None),
        timestamps,
        stderr: Queue::start(QUEUE_LINES, timestamps, Box::new(write_stderr)),
    });
    let subscriber = tracing_subscriber::registry().with(LineLayer(shared.clone()));
    if tracing::subscriber::set_global_default(subscriber).is_ok() {
        let _ = INSTALLED.set(shared.clone());
    }
    LogHandle(shared)
}

/// Waits (at most `timeout`) until the lines logged so far are on stderr; for a normal exit.
/// Returns whether they all were: a stalled stderr reader makes this give up, not hang.
pub fn flush(timeout: Duration) -> bool {
    INSTALLED.get().is_none_or(|s| s.stderr.flush(timeout))
}

/// How many log lines were dropped because stderr was blocked, since the start.
pub fn dropped_lines() -> u64 {
    INSTALLED
        .get()
        .map_or(0, |s| s.stderr.drops.total.load(Ordering::Relaxed))
}

impl LogHandle {
    /// Applies `log_level` and the syslog settings of a (re)loaded config.
    pub fn apply(&self, config: &Config) {
        self.0.level.store(level_rank(config.log_level), Ordering::Relaxed);
        let sink = if config.syslog {
            match open_syslog(&config.syslog_address) {
                Ok(sink) => Some(Syslog {
                    sink,
                    facility: config.syslog_facility,
                    address: config.syslog_address.clone(),
                    trouble: SyslogTrouble::default(),
                }),
                Err(e) => {
                    tracing::error!(target: "pglookout", "cannot log to syslog at {:?}: {e}", config.syslog_address);
                    None
                }
            }
        } else {
            None
        };
        let mut sink = sink;
        // a socket that is not there is reported now, once; later failed sends are rate-limited
        let report = sink.as_mut().and_then(|s| match &s.sink {
            SyslogSink::Unix(_, path) => {
                unix_socket_problem(path).and_then(|e| s.trouble.failed(Instant::now(), &s.address, &e))
            }
            SyslogSink::Udp(_) => None,
        });
        if let Ok(mut guard) = self.0.syslog.lock() {
            *guard = sink;
        }
        if let Some(m) = report {
            self.0.stderr.push(stderr_line(self.0.timestamps, &Level::ERROR, &m));
        }
    }
}

/// Why `path` cannot be a syslog socket, if it cannot.
fn unix_socket_problem(path: &str) -> Option<std::io::Error> {
    use std::os::unix::fs::FileTypeExt;
    match std::fs::metadata(path) {
        Err(e) => Some(e),
        Ok(m) if !m.file_type().is_socket() => Some(std::io::Error::other("not a socket")),
        Ok(_) => None,
    }
}

/// A path is a unix datagram socket (as the original); `host:port` is UDP. Never waits for DNS:
/// a host name is resolved in the background, and messages before it resolves are dropped.
fn open_syslog(address: &str) -> std::io::Result<SyslogSink> {
    if address.starts_with('/') {
        let s = UnixDatagram::unbound()?;
        // never block a task on a stalled syslog daemon: a line that does not fit is dropped
        s.set_nonblocking(true)?;
        Ok(SyslogSink::Unix(s, address.to_string()))
    } else {
        let (host, port) = split_host_port(address)?;
        Ok(SyslogSink::Udp(Destination::new(Owner::Syslog, host, port)?))
    }
}

/// `host:port`, `1.2.3.4:port` or `[v6]:port`.
fn split_host_port(address: &str) -> std::io::Result<(&str, u16)> {
    let invalid = || std::io::Error::new(std::io::ErrorKind::InvalidInput, "expected host:port");
    let (host, port) = address.rsplit_once(':').ok_or_else(invalid)?;
    let port = port.parse().map_err(|_| invalid())?;
    if host.is_empty() || (host.contains(':') && !host.starts_with('[')) {
        return Err(invalid());
    }
    Ok((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    const DEADLINE: Duration = Duration::from_secs(20);

    /// A sink that blocks on every line until the test drops `gate`, and records what it wrote.
    struct StalledSink {
        gate: mpsc::Sender<()>,
        entered: mpsc::Receiver<()>,
        written: Arc<Mutex<Vec<String>>>,
    }

    fn stalled_sink() -> (StalledSink, Sink) {
        let (gate, gate_rx) = mpsc::channel::<()>();
        let (entered_tx, entered) = mpsc::channel();
        let written: Arc<Mutex<Vec<String>>> = Arc::default();
        let record = written.clone();
        let sink: Sink = Box::new(move |line: &[u8]| {
            let _ = entered_tx.send(());
            // returns at once once the gate is dropped; bounded so a broken test cannot hang
            let _ = gate_rx.recv_timeout(DEADLINE);
            record
                .lock()
                .expect("lock")
                .push(String::from_utf8_lossy(line).to_string());
            Ok(())
        });
        (StalledSink { gate, entered, written }, sink)
    }

    #[test]
    fn a_stalled_stderr_drops_lines_without_blocking_and_reports_them() {
        let (stall, sink) = stalled_sink();
        let q = Arc::new(Queue::start(4, false, sink));
        q.push("first\n".into());
        stall
            .entered
            .recv_timeout(DEADLINE)
            .expect("the writer took the first line");
        // the writer is stuck in the sink: 4 lines fill the queue, 3 more are dropped; pushing
        // runs on another thread so that a push that blocks fails the test instead of hanging it
        let (done_tx, done_rx) = mpsc::channel();
        let pusher = q.clone();
        std::thread::spawn(move || {
            for i in 0..7 {
                pusher.push(format!("line {i}\n"));
            }
            let _ = done_tx.send(());
        });
        done_rx.recv_timeout(DEADLINE).expect("pushing never blocks");
        assert_eq!(q.drops.total.load(Ordering::Relaxed), 3);
        drop(stall.gate);
        assert!(q.flush(DEADLINE), "the queued lines are written once the sink moves");
        // the report comes before the next line, whichever of the writer and `push` writes it
        q.push("after\n".into());
        assert!(q.flush(DEADLINE), "everything queued was written");
        let written = stall.written.lock().expect("lock").clone();
        assert_eq!(
            written,
            [
                "first\n",
                "line 0\n",
                "line 1\n",
                "line 2\n",
                "line 3\n",
                "pglookout\tWARNING\t3 log lines were dropped while stderr was blocked\n",
                "after\n"
            ]
        );
    }

    #[test]
    fn flush_gives_up_on_a_stalled_stderr() {
        let (stall, sink) = stalled_sink();
        let q = Queue::start(4, false, sink);
        q.push("stuck\n".into());
        stall.entered.recv_timeout(DEADLINE).expect("the writer took the line");
        q.push("queued\n".into());
        assert!(
            !q.flush(Duration::from_millis(50)),
            "the line behind the stuck one is not written"
        );
        drop(stall.gate);
        assert!(q.flush(DEADLINE));
    }

    /// A logger writing stderr lines to a recording sink, with `syslog` as its syslog target.
    fn recording(syslog: Option<Syslog>) -> (Arc<Shared>, Arc<Mutex<Vec<String>>>) {
        let written: Arc<Mutex<Vec<String>>> = Arc::default();
        let record = written.clone();
        let sink: Sink = Box::new(move |line: &[u8]| {
            record
                .lock()
                .expect("lock")
                .push(String::from_utf8_lossy(line).to_string());
            Ok(())
        });
        let shared = Arc::new(Shared {
            level: AtomicU8::new(1),
            syslog: Mutex::new(syslog),
            timestamps: false,
            stderr: Queue::start(QUEUE_LINES, false, sink),
        });
        (shared, written)
    }

    /// A syslog socket that does not exist is an error on stderr once, then at most once per
    /// SYSLOG_REPORT_EVERY with the count; a recovery is said once.
    #[test]
    fn a_missing_syslog_socket_is_reported_once_then_rate_limited() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("log.sock").display().to_string();
        let Ok(sink) = open_syslog(&path) else {
            panic!("an unbound socket");
        };
        let syslog = Syslog {
            sink,
            facility: 18,
            address: path.clone(),
            trouble: SyslogTrouble::default(),
        };
        let (shared, written) = recording(Some(syslog));
        let t0 = Instant::now();
        for _ in 0..1000 {
            send_syslog(&shared, t0, &Level::INFO, "pglookout", "hello");
        }
        // within the period: nothing more; after it: one line with the count
        send_syslog(
            &shared,
            t0 + SYSLOG_REPORT_EVERY / 2,
            &Level::INFO,
            "pglookout",
            "hello",
        );
        send_syslog(&shared, t0 + SYSLOG_REPORT_EVERY, &Level::INFO, "pglookout", "hello");
        // the socket appears: one line says so
        let server = UnixDatagram::bind(&path).expect("bind");
        send_syslog(&shared, t0 + SYSLOG_REPORT_EVERY, &Level::INFO, "pglookout", "back");
        send_syslog(&shared, t0 + SYSLOG_REPORT_EVERY, &Level::INFO, "pglookout", "again");
        assert!(shared.stderr.flush(DEADLINE));
        let lines = written.lock().expect("lock").clone();
        assert_eq!(lines.len(), 3, "{lines:#?}");
        assert!(
            lines[0].starts_with("pglookout\tERROR\tcannot log to syslog at ")
                && lines[0].contains("No such file or directory")
                && lines[0].contains("repeated at most every 60 s"),
            "{lines:#?}"
        );
        assert!(
            lines[1].contains("1001 lines not sent since the last report"),
            "{lines:#?}"
        );
        assert!(
            lines[2].contains("works again (0 more lines were not sent)"),
            "{lines:#?}"
        );
        let mut buf = [0u8; 256];
        let n = server.recv(&mut buf).expect("the line after the recovery");
        assert!(String::from_utf8_lossy(&buf[..n]).ends_with("pglookout INFO: back"));
    }

    #[test]
    fn syslog_addresses() {
        assert_eq!(
            split_host_port("logs.example:514").expect("name"),
            ("logs.example", 514)
        );
        assert_eq!(split_host_port("10.0.0.1:514").expect("v4"), ("10.0.0.1", 514));
        assert_eq!(split_host_port("[::1]:514").expect("v6"), ("[::1]", 514));
        for bad in ["logs.example", "::1:514", ":514", "host:port"] {
            assert!(split_host_port(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_syslog_host_name_is_resolved_in_the_background() {
        let listener = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        listener.set_read_timeout(Some(DEADLINE)).expect("timeout");
        let port = listener.local_addr().expect("addr").port();
        let Ok(SyslogSink::Udp(dest)) = open_syslog(&format!("localhost:{port}")) else {
            panic!("a UDP sink");
        };
        let end = Instant::now() + DEADLINE;
        let addr = loop {
            if let Some(a) = dest.addr() {
                break a;
            }
            assert!(Instant::now() < end, "localhost did not resolve within {DEADLINE:?}");
            std::thread::yield_now();
        };
        assert!(addr.ip().is_loopback() && addr.port() == port, "{addr}");
        // localhost may resolve to ::1 first, which this IPv4 listener does not hear
        if addr.is_ipv4() {
            assert!(dest.send(b"<19>hello").expect("send"));
            let mut buf = [0u8; 64];
            let n = listener.recv(&mut buf).expect("the message arrives");
            assert_eq!(&buf[..n], b"<19>hello");
        }
    }

    #[test]
    fn our_targets_and_others() {
        assert!(is_ours("ClusterMonitor"));
        assert!(is_ours("pglookout::daemon"));
        assert!(!is_ours("tokio_postgres::query"));
    }

    #[test]
    fn a_name_with_a_newline_or_an_escape_cannot_forge_a_line() {
        let (tx, rx) = mpsc::channel::<String>();
        let sink: Sink = Box::new(move |line: &[u8]| {
            let _ = tx.send(String::from_utf8_lossy(line).to_string());
            Ok(())
        });
        let shared = Arc::new(Shared {
            level: AtomicU8::new(1),
            syslog: Mutex::new(None),
            timestamps: false,
            stderr: Queue::start(16, false, sink),
        });
        let subscriber = tracing_subscriber::registry().with(LineLayer(shared));
        let name = "pg9\npglookout\tERROR\tforged\x1b[31m";
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(target: "ClusterMonitor", "observer obs: ignoring node {name}");
        });
        let line = rx.recv_timeout(DEADLINE).expect("the line is written");
        assert_eq!(
            line,
            "ClusterMonitor\tWARNING\tobserver obs: ignoring node pg9\\npglookout\\tERROR\\tforged\\u{1b}[31m\n"
        );
    }
}
