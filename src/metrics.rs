//! StatsD in Telegraf's tag format (`name,tag=v:value|type`), fire-and-forget over UDP, with
//! the configured global tags. Sending never blocks and never fails the caller.

use crate::config::StatsdConfig;
use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::sync::Arc;

struct Inner {
    socket: UdpSocket,
    addr: SocketAddr,
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
    /// Builds a client; a host that does not resolve is logged and disables sending.
    pub fn new(config: Option<&StatsdConfig>) -> Statsd {
        let Some(c) = config else { return Statsd(None) };
        let addr = match (c.host.as_str(), c.port).to_socket_addrs().map(|mut a| a.next()) {
            Ok(Some(a)) => a,
            _ => {
                tracing::error!(target: "StatsClient", "statsd host {:?} does not resolve; metrics are not sent", c.host);
                return Statsd(None);
            }
        };
        let bind = if addr.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" };
        match UdpSocket::bind(bind).and_then(|s| s.set_nonblocking(true).map(|_| s)) {
            Ok(socket) => Statsd(Some(Arc::new(Inner {
                socket,
                addr,
                tags: c.tags.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            }))),
            Err(e) => {
                tracing::error!(target: "StatsClient", "cannot open a UDP socket for statsd: {e}");
                Statsd(None)
            }
        }
    }

    fn send(&self, name: &str, value: &str, kind: &str, tags: &[(&str, &str)]) {
        if let Some(inner) = &self.0 {
            let line = format_line(name, value, kind, &inner.tags, tags);
            if let Err(e) = inner.socket.send_to(line.as_bytes(), inner.addr) {
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
