//! StatsD in Telegraf's tag format (`name,tag=v:value|type`), fire-and-forget over UDP, with
//! the configured global tags. Owns the client built from the `statsd` config. Sending never
//! blocks and never fails the caller; a host name is resolved in the background
//! ([`crate::resolve`]), and metrics sent before its address is known are dropped.

use crate::config::StatsdConfig;
use crate::resolve::{Destination, Lookup, Owner, Timing};
use std::sync::Arc;

struct Inner {
    dest: Destination,
    tags: Vec<(String, String)>,
}

/// A StatsD client; the disabled one (no `statsd` in the config) sends nothing.
#[derive(Clone, Default)]
pub struct Statsd(Option<Arc<Inner>>);

/// One metric line in Telegraf's format; global tags first, then the metric's own.
pub fn format_line(name: &str, value: &str, kind: &str, global: &[(String, String)], tags: &[(&str, &str)]) -> String {
    let mut line = String::from(name);
    for (k, v) in global
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .chain(tags.iter().copied())
    {
        line.push(',');
        line.push_str(k);
        line.push('=');
        line.push_str(v);
    }
    line.push(':');
    line.push_str(value);
    line.push('|');
    line.push_str(kind);
    line
}

impl Statsd {
    /// Builds a client at once, without waiting for DNS: a host name is looked up in the
    /// background (and again later if that fails), so this is safe on the async decision loop.
    pub fn new(config: Option<&StatsdConfig>) -> Statsd {
        Statsd::with_lookup(config, crate::resolve::system_lookup(), Timing::default())
    }

    /// As [`Statsd::new`], with the name lookup and its timing given (tests).
    pub fn with_lookup(config: Option<&StatsdConfig>, lookup: Lookup, timing: Timing) -> Statsd {
        let Some(c) = config else { return Statsd(None) };
        match Destination::with_lookup(Owner::Statsd, &c.host, c.port, lookup, timing) {
            Ok(dest) => Statsd(Some(Arc::new(Inner {
                dest,
                tags: c.tags.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            }))),
            Err(e) => {
                tracing::error!(target: "StatsClient", "cannot set up statsd for {:?}: {e}; metrics are not sent", c.host);
                Statsd(None)
            }
        }
    }

    fn send(&self, name: &str, value: &str, kind: &str, tags: &[(&str, &str)]) {
        if let Some(inner) = &self.0 {
            let line = format_line(name, value, kind, &inner.tags, tags);
            if let Err(e) = inner.dest.send(line.as_bytes()) {
                tracing::debug!(target: "StatsClient", "statsd send failed: {e}");
            }
        }
    }

    pub fn gauge(&self, name: &str, value: f64, tags: &[(&str, &str)]) {
        self.send(name, &value.to_string(), "g", tags);
    }

    /// Sends the same gauges `/metrics` shows (`pglookout_node_up` as `pglookout.node_up`, its
    /// labels as tags); nothing when StatsD is off.
    pub fn gauges(&self, gauges: &[crate::prometheus::Gauge]) {
        if self.0.is_none() {
            return;
        }
        for g in gauges.iter().filter(|g| g.name != "pglookout_build_info") {
            let name = g.name.replacen("pglookout_", "pglookout.", 1);
            for (labels, value) in &g.samples {
                let tags: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
                self.gauge(&name, *value, &tags);
            }
        }
    }

    /// Configured (even while its host name is still being resolved).
    pub fn is_enabled(&self) -> bool {
        self.0.is_some()
    }

    pub fn count(&self, name: &str, tags: &[(&str, &str)]) {
        self.send(name, "1", "c", tags);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::net::UdpSocket;

    #[test]
    fn lines_use_telegraf_tags() {
        let global = vec![("site".to_string(), "a".to_string())];
        assert_eq!(
            format_line("pg.replication_lag", "1.5", "g", &global, &[]),
            "pg.replication_lag,site=a:1.5|g"
        );
        assert_eq!(
            format_line(
                "exception",
                "1",
                "c",
                &[],
                &[("exception", "PollError"), ("where", "_connect_to_db")]
            ),
            "exception,exception=PollError,where=_connect_to_db:1|c"
        );
    }

    #[test]
    fn metrics_reach_a_udp_listener() {
        let listener = UdpSocket::bind("127.0.0.1:0").expect("bind");
        listener
            .set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .expect("timeout");
        let port = listener.local_addr().expect("addr").port();
        let mut tags = BTreeMap::new();
        tags.insert("cluster".to_string(), "c1".to_string());
        let s = Statsd::new(Some(&StatsdConfig {
            host: "127.0.0.1".into(),
            port,
            tags,
        }));
        s.gauge("pg.replication_lag", 2.25, &[]);
        let mut buf = [0u8; 256];
        let n = listener.recv(&mut buf).expect("recv");
        assert_eq!(&buf[..n], b"pg.replication_lag,cluster=c1:2.25|g");
    }
}

/// The client with a host name: its lookup never runs on the caller's thread.
#[cfg(test)]
mod dns_tests {
    use super::*;
    use crate::resolve::Lookup;
    use std::net::{SocketAddr, UdpSocket};
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::mpsc;
    use std::sync::Mutex;
    use std::time::{Duration, Instant};

    const DEADLINE: Duration = Duration::from_secs(20);

    fn config(port: u16) -> StatsdConfig {
        StatsdConfig {
            host: "statsd.example".into(),
            port,
            tags: Default::default(),
        }
    }

    fn timing() -> Timing {
        Timing {
            retry: Duration::from_millis(20),
            refresh: Duration::from_secs(300),
            slow: Duration::from_millis(50),
        }
    }

    /// Counts until the listener receives a metric; each round waits at most 20 ms for it.
    fn count_until_received(s: &Statsd, l: &UdpSocket) -> String {
        l.set_read_timeout(Some(Duration::from_millis(20))).expect("timeout");
        let end = Instant::now() + DEADLINE;
        let mut buf = [0u8; 256];
        loop {
            s.count("exception", &[("where", "test")]);
            if let Ok(n) = l.recv(&mut buf) {
                return String::from_utf8_lossy(&buf[..n]).to_string();
            }
            assert!(Instant::now() < end, "no metric arrived within {DEADLINE:?}");
        }
    }

    #[test]
    fn a_hanging_lookup_does_not_delay_the_client() {
        let listener = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let release_rx = Mutex::new(release_rx);
        let lookup: Lookup = Arc::new(move |_, port| {
            // hangs until released; bounded beyond the deadline below, so a constructor that waits
            // for it fails the test, and nothing hangs forever
            let _ = release_rx.lock().expect("lock").recv_timeout(DEADLINE * 3);
            Ok(vec![SocketAddr::from(([127, 0, 0, 1], port))])
        });
        let (made_tx, made_rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = made_tx.send(Statsd::with_lookup(Some(&config(port)), lookup, timing()));
        });
        let s = made_rx
            .recv_timeout(DEADLINE)
            .expect("Statsd::new returned while the lookup was hanging");
        assert!(s.is_enabled());
        s.gauge("pg.replication_lag", 1.0, &[]); // dropped: no address yet, and no waiting
        release_tx.send(()).expect("release");
        assert_eq!(count_until_received(&s, &listener), "exception,where=test:1|c");
    }

    #[test]
    fn a_lookup_that_fails_first_is_retried() {
        let listener = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let calls = Arc::new(AtomicU64::new(0));
        let counted = calls.clone();
        let lookup: Lookup = Arc::new(move |_, port| {
            if counted.fetch_add(1, Ordering::SeqCst) == 0 {
                Err(std::io::Error::other("Name or service not known"))
            } else {
                Ok(vec![SocketAddr::from(([127, 0, 0, 1], port))])
            }
        });
        let s = Statsd::with_lookup(Some(&config(port)), lookup, timing());
        assert_eq!(count_until_received(&s, &listener), "exception,where=test:1|c");
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }
}
