//! Log lines: to stderr as `time<TAB>component<TAB>LEVEL<TAB>message` (without the time under
//! systemd, which stamps lines itself), and optionally to syslog. The level and the syslog
//! target can be changed at runtime (SIGHUP). Other crates' events are shown from WARN up.
//! Nothing here formats secrets: callers only ever log masked connection strings.

use crate::config::{Config, LogLevel};
use std::fmt::Write as _;
use std::io::Write as _;
use std::os::unix::net::UnixDatagram;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::Layer;

enum SyslogSink {
    Unix(UnixDatagram, String),
    Udp(std::net::UdpSocket, std::net::SocketAddr),
}

struct Shared {
    level: AtomicU8,
    syslog: Mutex<Option<(SyslogSink, u8)>>,
    timestamps: bool,
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
        let component = meta.target().rsplit("::").next().unwrap_or("pglookout");
        let level = level_name(meta.level());
        let mut line = String::new();
        if self.0.timestamps {
            let _ = write!(line, "{}\t", chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ"));
        }
        let _ = writeln!(line, "{component}\t{level}\t{msg}");
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
        if let Ok(guard) = self.0.syslog.lock() {
            if let Some((sink, facility)) = guard.as_ref() {
                let pri = u16::from(*facility) * 8 + u16::from(syslog_severity(meta.level()));
                let text = format!("<{pri}>pglookout[{}]: {component} {level}: {msg}", std::process::id());
                let _ = match sink {
                    SyslogSink::Unix(s, path) => s.send_to(text.as_bytes(), path),
                    SyslogSink::Udp(s, addr) => s.send_to(text.as_bytes(), addr),
                };
            }
        }
    }
}

/// Installs the global logger at DEBUG (the original's default) until a config is applied.
pub fn init() -> LogHandle {
    let shared = Arc::new(Shared {
        level: AtomicU8::new(1),
        syslog: Mutex::new(None),
        timestamps: std::env::var_os("NOTIFY_SOCKET").is_none(),
    });
    let subscriber = tracing_subscriber::registry().with(LineLayer(shared.clone()));
    let _ = tracing::subscriber::set_global_default(subscriber);
    LogHandle(shared)
}

impl LogHandle {
    /// Applies `log_level` and the syslog settings of a (re)loaded config.
    pub fn apply(&self, config: &Config) {
        self.0.level.store(level_rank(config.log_level), Ordering::Relaxed);
        let sink = if config.syslog {
            match open_syslog(&config.syslog_address) {
                Ok(s) => Some((s, config.syslog_facility)),
                Err(e) => {
                    tracing::error!(target: "pglookout", "cannot log to syslog at {:?}: {e}", config.syslog_address);
                    None
                }
            }
        } else {
            None
        };
        if let Ok(mut guard) = self.0.syslog.lock() {
            *guard = sink;
        }
    }
}

/// A path is a unix datagram socket (as the original); `host:port` is UDP.
fn open_syslog(address: &str) -> std::io::Result<SyslogSink> {
    if address.starts_with('/') {
        let s = UnixDatagram::unbound()?;
        // never block a task on a stalled syslog daemon: a line that does not fit is dropped
        s.set_nonblocking(true)?;
        Ok(SyslogSink::Unix(s, address.to_string()))
    } else {
        use std::net::ToSocketAddrs;
        let addr = address
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| std::io::Error::other("address does not resolve"))?;
        let s = std::net::UdpSocket::bind(if addr.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" })?;
        s.set_nonblocking(true)?;
        Ok(SyslogSink::Udp(s, addr))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_targets_and_others() {
        assert!(is_ours("ClusterMonitor"));
        assert!(is_ours("pglookout::daemon"));
        assert!(!is_ours("tokio_postgres::query"));
    }
}
