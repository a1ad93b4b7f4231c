//! The configuration file: every key the Python original reads, with the original code's
//! defaults, read from JSON into a typed, validated [`Config`]. The file's schema (each key's
//! JSON type, default and the checks of one value alone) is the `raw` submodule's, read by
//! serde. This module owns the public types, the bounded read of the file, the conversion that
//! applies the rules between keys and derives the defaults that depend on other keys, the
//! checks of the machine a valid config runs on, and the error messages, which name the file,
//! the key and what was expected. It does not log; warnings are returned.

mod raw;

pub use raw::known_keys;

use crate::conninfo::ConnInfo;
use serde_json::Value;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// The priority of a node `failover_priorities` does not list (as in the Python versions
/// that have the key).
pub const DEFAULT_PRIORITY: f64 = 0.0;
/// `failover_fallback_timeout` when the file does not set it: six default check intervals, half
/// of `max_failover_replication_time_lag`'s default.
pub const DEFAULT_FALLBACK_TIMEOUT: f64 = 60.0;

/// The largest config file read, in bytes (16 MiB; a real one is a few kilobytes). A bigger
/// file, or anything that is not a regular file (`/dev/zero`, a FIFO), is refused before it is
/// read: either would otherwise exhaust memory or block the read for ever.
pub const MAX_CONFIG_BYTES: u64 = 16 << 20;

/// Syslog facilities by name, with their numeric codes (RFC 5424).
pub const SYSLOG_FACILITIES: &[(&str, u8)] = &[
    ("kern", 0),
    ("user", 1),
    ("mail", 2),
    ("daemon", 3),
    ("auth", 4),
    ("syslog", 5),
    ("lpr", 6),
    ("news", 7),
    ("uucp", 8),
    ("cron", 9),
    ("authpriv", 10),
    ("ftp", 11),
    ("local0", 16),
    ("local1", 17),
    ("local2", 18),
    ("local3", 19),
    ("local4", 20),
    ("local5", 21),
    ("local6", 22),
    ("local7", 23),
];

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read the config file: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a regular file but {kind}: refusing to read it as the config")]
    NotRegular { path: String, kind: &'static str },
    #[error("{path}: larger than {limit} bytes (16 MiB): refusing to read it as the config")]
    TooLarge { path: String, limit: u64 },
    #[error("{path}: not valid JSON: {source}")]
    Json {
        path: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{path}: key {key:?}: {expected}")]
    Key {
        path: String,
        key: String,
        expected: String,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Debug,
    Info,
    Warning,
    Error,
    Critical,
}

/// Which HTTP requests need the bearer token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthScope {
    /// Only requests that change something (`POST /check`).
    Mutating,
    /// Every request, reads included.
    All,
}

/// `synchronous_mode` (ours, issue 21): whether a failover may promote only a standby that
/// has every acknowledged write. Read and validated; the rules that act on it are to come.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SynchronousMode {
    /// Asynchronous replication, as the original: a failover loses what was not shipped.
    #[default]
    Off,
    /// Only a synchronous standby is a candidate; with none connected, the primary falls back
    /// to asynchronous (`synchronous_degraded`).
    On,
    /// As `on`, and never asynchronous: with no synchronous standby, writes wait.
    Strict,
}

/// How to reach one observer: its base URL and, for a secured one, the bearer token to send
/// and a CA file to trust for its HTTPS certificate.
#[derive(Clone, PartialEq)]
pub struct ObserverTarget {
    pub url: String,
    pub token: Option<String>,
    pub ca_file: Option<PathBuf>,
}

impl std::fmt::Debug for ObserverTarget {
    // never print the token
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObserverTarget")
            .field("url", &self.url)
            .field("token", &self.token.as_ref().map(|_| "<hidden>"))
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

/// An IP network of `http_reserved_clients`: `10.0.0.7` (one address) or `10.0.1.0/24`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    /// One address.
    pub fn host(addr: IpAddr) -> IpNet {
        let addr = addr.to_canonical();
        let prefix = if addr.is_ipv4() { 32 } else { 128 };
        IpNet { addr, prefix }
    }

    /// `ADDRESS` or `ADDRESS/PREFIX`; the address bits past the prefix must be zero (a
    /// `10.0.0.7/24` is a typo of either `10.0.0.7` or `10.0.0.0/24`).
    pub fn parse(text: &str) -> Result<IpNet, String> {
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let addr: IpAddr = addr.trim().parse().map_err(|_| {
            format!("{text:?} is not an IP address or network such as \"10.0.0.7\" or \"10.0.1.0/24\" (host names are not resolved)")
        })?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{text:?}: the prefix length must be a number from 0 to {max}"))?,
        };
        let net = IpNet { addr, prefix };
        if net.masked(addr) != addr {
            return Err(format!(
                "{text:?} has bits set past its /{prefix}: write {}/{prefix} for the network, or the address alone",
                net.masked(addr)
            ));
        }
        Ok(net)
    }

    /// `ip` with the bits past this network's prefix cleared.
    fn masked(&self, ip: IpAddr) -> IpAddr {
        match ip {
            IpAddr::V4(v4) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                IpAddr::from(std::net::Ipv4Addr::from(u32::from(v4) & mask))
            }
            IpAddr::V6(v6) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                IpAddr::from(std::net::Ipv6Addr::from(u128::from(v6) & mask))
            }
        }
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        ip.is_ipv4() == self.addr.is_ipv4() && self.masked(ip) == self.addr
    }
}

impl std::fmt::Display for IpNet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct StatsdConfig {
    pub host: String,
    pub port: u16,
    pub tags: BTreeMap<String, String>,
}

/// A validated configuration. Durations are seconds, as in the file.
#[derive(Clone, Debug)]
pub struct Config {
    /// Where it was read from (for messages).
    pub path: PathBuf,
    pub remote_conns: BTreeMap<String, ConnInfo>,
    /// `None` for an observer.
    pub own_db: Option<String>,
    /// The `application_name` our node's WAL receiver shows in the primary's
    /// `pg_stat_replication` (ours; `None`: the `own_db` name). See
    /// [`Config::own_application_name`].
    pub own_application_name: Option<String>,
    pub observers: BTreeMap<String, ObserverTarget>,
    /// Bearer token that HTTP clients must send (ours; none by default, as the original).
    pub http_auth_token: Option<String>,
    pub http_auth_scope: AuthScope,
    /// The clients that may use the HTTP connection slots kept in reserve (ours): the
    /// `http_reserved_clients` networks, then the observers whose URL has an IP address for
    /// host. Loopback (127.0.0.1, ::1) always may; see [`Config::http_client_reserved`].
    pub http_reserved_clients: Vec<IpNet>,
    /// Serve HTTPS with this certificate chain and key (PEM); both or neither.
    pub http_tls_cert: Option<PathBuf>,
    pub http_tls_key: Option<PathBuf>,
    pub poll_observers_on_warning_only: bool,
    pub db_poll_interval: f64,
    pub replication_state_check_interval: f64,
    /// `None` disables the poller health warning.
    pub cluster_monitor_health_timeout_seconds: Option<f64>,
    pub warning_replication_time_lag: f64,
    pub max_failover_replication_time_lag: f64,
    pub replication_catchup_timeout: f64,
    pub missing_master_from_config_timeout: f64,
    pub failover_on_disconnect: bool,
    pub known_gone_nodes: Vec<String>,
    pub never_promote_these_nodes: Vec<String>,
    /// A standby more than this many bytes of WAL behind the old primary's last known position
    /// is never promoted (ours; `None`: no cap, as the original).
    pub max_failover_lag_bytes: Option<u64>,
    /// Node name -> priority, as in the Python versions that have the key: among standbys at
    /// the same position the highest wins; with `max_failover_lag_bytes` set (ours), among
    /// all within the cap. Nodes not listed have [`DEFAULT_PRIORITY`]; empty: the original's
    /// choice.
    pub failover_priorities: BTreeMap<String, f64>,
    /// A failover needs more than half of the cluster known, not half (ours; off: the original).
    pub failover_requires_strict_majority: bool,
    /// Whether a failover may promote only a standby with every acknowledged write (ours).
    pub synchronous_mode: SynchronousMode,
    /// With `synchronous_mode` on or strict: how many standbys acknowledge each commit (`ANY
    /// k` of the managed `synchronous_standby_names`); 1 by default.
    pub synchronous_node_count: u32,
    /// Seconds the chosen candidate may stay unable to promote (maintenance file, failed
    /// failover command, unseen by most observers) before its daemon yields to the next
    /// candidate (ours; `None`: never, as the original). See docs/safety.md.
    pub failover_fallback_timeout: Option<f64>,
    pub maintenance_mode_file: PathBuf,
    pub failover_command: String,
    pub failover_command_timeout: f64,
    pub failover_sleep_time: f64,
    /// Seconds a cluster-wide pause may last before the `cluster_paused` alert (ours, issue 22).
    pub pause_alert_after: f64,
    /// The deadline of one probe of one node and of one fetch from an observer (ours; the
    /// original waited 5 s per step).
    pub db_poll_timeout: f64,
    /// Stops our own node taking writes (ours; see docs/safety.md). `None`: no fencing.
    pub fence_command: Option<String>,
    /// Seconds the fence command is assumed to need to stop writes (ours; part of the timing
    /// argument of docs/safety.md; the daemon warns when a fence takes longer).
    pub fence_command_budget: f64,
    /// Seconds the fence command may run before it is killed (ours; by default five times
    /// `fence_command_budget`).
    pub fence_command_timeout: f64,
    /// Seconds without at least half of the voters vouching for our primary before it is
    /// fenced; resolved (given or derived) whenever `fence_command` is set.
    pub fence_timeout: Option<f64>,
    /// Accept, with `fence_command`, a layout in which the lease is fragile: a node daemon
    /// whose observers lack the daemon of another node, or fewer than three voters (ours;
    /// default false: such a config is refused).
    pub allow_fragile_lease: bool,
    /// Seconds the master must be unreachable (to us and a majority of the observers) before a
    /// standby may fail over without waiting for `max_failover_replication_time_lag`.
    pub unreachable_master_failover_timeout: Option<f64>,
    pub over_warning_limit_command: Option<String>,
    /// Run for every event of the history (ours; `None`: no hook). See `hooks`.
    pub event_command: Option<String>,
    /// Seconds one run of `event_command` may take before its process group is killed (ours).
    pub event_command_timeout: f64,
    pub alert_file_dir: PathBuf,
    pub json_state_file_path: PathBuf,
    /// Where the event history goes (ours; default beside the state file, see `events`).
    pub event_log_path: PathBuf,
    pub autofollow: bool,
    pub primary_conninfo_template: Option<ConnInfo>,
    pub pg_data_directory: Option<PathBuf>,
    pub pg_start_command: String,
    pub pg_stop_command: String,
    /// Make our node a standby of the new primary once it was replaced (ours; see
    /// `decide::rejoin` and `act::rejoin`). Off: the original's behaviour.
    pub rejoin_old_master: bool,
    /// Whom `pg_rewind` connects to (host and port from the new master's `remote_conns`
    /// entry); `None`: `primary_conninfo_template`.
    pub rejoin_source_conninfo_template: Option<ConnInfo>,
    /// The program (and leading arguments) run as `pg_rewind`.
    pub pg_rewind_command: String,
    /// Seconds `pg_rewind` may take before it is killed.
    pub pg_rewind_timeout: f64,
    /// The program (and leading arguments) run as `pg_controldata`.
    pub pg_controldata_command: String,
    /// The operator's rebuild of our node from the primary into a side directory (ours; see
    /// `act::reinit`), run when a rejoin cannot rewind and by `pglookout-ctl reinit`; `None`:
    /// no rebuild.
    pub reinit_command: Option<String>,
    /// Seconds `reinit_command` may take before it is killed.
    pub reinit_timeout: f64,
    pub http_address: String,
    pub http_port: u16,
    pub log_level: LogLevel,
    pub syslog: bool,
    pub syslog_address: String,
    pub syslog_facility: u8,
    pub statsd: Option<StatsdConfig>,
}

/// Why a node daemon's voters (docs/safety.md, "One authority") cannot hold the argument of
/// the lease: another node's daemon is not among its observers (the daemons would count
/// different sets), or fewer than three voters (one failure would fence the primary).
fn fragile_lease(
    own: &str,
    remote_conns: &BTreeMap<String, ConnInfo>,
    observers: &BTreeMap<String, ObserverTarget>,
) -> Option<String> {
    let missing: Vec<&str> = remote_conns
        .keys()
        .map(String::as_str)
        .filter(|n| *n != own && !observers.contains_key(*n))
        .collect();
    let dedicated: Vec<&str> = observers
        .keys()
        .map(String::as_str)
        .filter(|n| !remote_conns.contains_key(*n))
        .collect();
    if !missing.is_empty() {
        let mesh: Vec<String> = remote_conns
            .keys()
            .filter(|n| n.as_str() != own)
            .map(|n| format!("\"{n}\": <{n}'s daemon URL>"))
            .chain(dedicated.iter().map(|n| format!("\"{n}\": <URL>")))
            .collect();
        return Some(format!(
            "with fence_command, every node daemon counts the same voters, so each lists the daemon of every other node under that node's name: {} missing (the mesh: \"observers\": {{{}}} on {own}'s daemon, and the same shape on every other node's)",
            missing.join(", "),
            mesh.join(", ")
        ));
    }
    let voters = observers.len() + 1;
    if voters < 3 {
        return Some(format!(
            "with fence_command, {voters} voters (this node's daemon and {}) are too few: losing one fences the primary; add a dedicated observer so there are at least three",
            if observers.is_empty() { "no observer".to_string() } else { observers.keys().cloned().collect::<Vec<_>>().join(", ") }
        ));
    }
    None
}

/// Checks an observer base URL: http or https with a host.
pub fn check_observer_url(url: &str) -> Result<(), String> {
    // the URL itself is not repeated: it may carry a user and password
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("not a URL: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(format!(
            "{}: expected an http:// or https:// URL with a host",
            display_url(url)
        ));
    }
    Ok(())
}

/// A URL for messages: without any user name and password in it.
pub fn display_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.to_string().trim_end_matches('/').to_string()
        }
        Err(_) => "(not a URL)".to_string(),
    }
}

impl Config {
    /// Reads and validates a config file. Returns the config and warnings for the caller to log.
    pub fn load(path: &Path) -> Result<(Config, Vec<String>), ConfigError> {
        let value = read_json(path)?;
        Self::from_value(path, &value)
    }

    /// Validates an already-parsed JSON document (`path` is only used in messages): serde
    /// reads it into the file's schema ([`raw::Raw`], with the defaults and the checks of each
    /// value alone), then [`Checks::convert`] applies the rules between keys.
    pub fn from_value(path: &Path, value: &Value) -> Result<(Config, Vec<String>), ConfigError> {
        let shown = path.display().to_string();
        let key_error = |key: String, expected: String| ConfigError::Key {
            path: shown.clone(),
            key,
            expected,
        };
        let obj = value
            .as_object()
            .ok_or_else(|| key_error("(top level)".into(), "expected a JSON object".into()))?;
        let (raw, unknown) = raw::read(obj).map_err(|(key, expected)| key_error(key, expected))?;
        let warnings = unknown
            .iter()
            .map(|key| format!("{shown}: unknown key {key:?} ignored"))
            .collect();
        Checks { shown, warnings }.convert(raw, path)
    }

    /// A node's `failover_priorities` entry, [`DEFAULT_PRIORITY`] when it has none.
    pub fn priority(&self, node: &str) -> f64 {
        self.failover_priorities.get(node).copied().unwrap_or(DEFAULT_PRIORITY)
    }

    /// Whether connections from `ip` may use the HTTP connection slots kept in reserve:
    /// loopback (127.0.0.1 and ::1, so local health checks and `pglookout-ctl` keep answering),
    /// the `http_reserved_clients` networks and the observers given by IP address.
    pub fn http_client_reserved(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        ip == IpAddr::from([127, 0, 0, 1])
            || ip == IpAddr::from(std::net::Ipv6Addr::LOCALHOST)
            || self.http_reserved_clients.iter().any(|n| n.contains(ip))
    }

    /// The `application_name` under which our own node streams from the primary, for `/sync`:
    /// `own_application_name`, else the node's name (a standby whose `primary_conninfo` names
    /// no `application_name` shows its `cluster_name`, which is the usual place for it).
    /// `None` on an observer.
    pub fn own_application_name(&self) -> Option<&str> {
        let own = self.own_db.as_deref()?;
        Some(self.own_application_name.as_deref().unwrap_or(own))
    }

    /// Whether this daemon only watches (no database of its own).
    pub fn is_observer(&self) -> bool {
        self.own_db.is_none()
    }

    /// Everything that can be shown: the config with passwords masked, for the DEBUG log.
    pub fn masked_summary(&self) -> String {
        let conns: Vec<String> = self
            .remote_conns
            .iter()
            .map(|(k, v)| format!("{k}: {}", v.masked()))
            .collect();
        format!(
            "own_db={:?} remote_conns=[{}] observers={:?} db_poll_interval={} replication_state_check_interval={} warning_replication_time_lag={} max_failover_replication_time_lag={}",
            self.own_db,
            conns.join(", "),
            self.observers.iter().map(|(k, o)| (k.as_str(), display_url(&o.url))).collect::<BTreeMap<_, _>>(),
            self.db_poll_interval,
            self.replication_state_check_interval,
            self.warning_replication_time_lag,
            self.max_failover_replication_time_lag
        )
    }
}

/// The conversion of the file's schema into a [`Config`]: the rules between keys, the defaults
/// derived from other keys, and the warnings (each prefixed with the file).
struct Checks {
    shown: String,
    warnings: Vec<String>,
}

impl Checks {
    fn err(&self, key: &str, expected: impl Into<String>) -> ConfigError {
        ConfigError::Key {
            path: self.shown.clone(),
            key: key.to_string(),
            expected: expected.into(),
        }
    }

    fn warn(&mut self, text: String) {
        self.warnings.push(format!("{}: {text}", self.shown));
    }

    /// The one conversion: the values as read, then each rule between keys in turn (the first
    /// broken one is the error).
    fn convert(mut self, mut raw: raw::Raw, path: &Path) -> Result<(Config, Vec<String>), ConfigError> {
        let observers = std::mem::take(&mut raw.observers);
        let statsd = raw.statsd.take();
        let mut c = assemble(raw, path);
        if let Some(own) = c.own_db.as_ref().filter(|own| !c.remote_conns.contains_key(*own)) {
            return Err(self.err(
                "own_db",
                format!("{own:?} is not a key of remote_conns (use \"\" for an observer)"),
            ));
        }
        c.observers = self.observers(observers)?;
        self.http(&mut c)?;
        if c.warning_replication_time_lag >= c.max_failover_replication_time_lag {
            let (warning, max) = (c.warning_replication_time_lag, c.max_failover_replication_time_lag);
            self.warn(format!(
                "warning_replication_time_lag ({warning}) is not below max_failover_replication_time_lag ({max}); using {max}"
            ));
            c.warning_replication_time_lag = max;
        }
        c.statsd = self.statsd(statsd)?;
        self.follow(&c)?;
        let strangers: Vec<String> = c
            .failover_priorities
            .keys()
            .filter(|name| !c.remote_conns.contains_key(*name))
            .map(|name| format!("failover_priorities names {name:?}, which is not in remote_conns; ignored"))
            .collect();
        strangers.into_iter().for_each(|w| self.warn(w));
        self.fencing(&mut c)?;
        self.synchronous(&c)?;
        Ok((c, self.warnings))
    }

    /// Each observer has a URL (http or https, with a host; kept without a trailing `/`) and
    /// a readable `ca_file`, if any.
    fn observers(
        &self,
        observers: Vec<(String, raw::RawObserver)>,
    ) -> Result<BTreeMap<String, ObserverTarget>, ConfigError> {
        let mut out = BTreeMap::new();
        for (name, o) in observers {
            let key = format!("observers.{name}");
            let url = o
                .url
                .ok_or_else(|| self.err(&format!("{key}.url"), "expected the observer's URL"))?;
            if let Some(ca) = &o.ca_file {
                std::fs::metadata(ca)
                    .map_err(|e| self.err(&format!("{key}.ca_file"), format!("cannot read {}: {e}", ca.display())))?;
            }
            check_observer_url(&url).map_err(|e| self.err(&key, e))?;
            let target = ObserverTarget {
                url: url.trim_end_matches('/').to_string(),
                token: o.token,
                ca_file: o.ca_file,
            };
            out.insert(name, target);
        }
        Ok(out)
    }

    /// The token is not blank, the TLS files come as a pair and can be read, and the observers
    /// given by IP address may use the reserved connection slots.
    fn http(&self, c: &mut Config) -> Result<(), ConfigError> {
        // An empty token is refused, not taken as "no token": with scope "all" that would
        // silently turn authentication off. No token is written as null or by leaving the key
        // out.
        if c.http_auth_token.as_ref().is_some_and(|t| t.trim().is_empty()) {
            return Err(self.err(
                "http_auth_token",
                "an empty token would turn authentication off: set a token, or remove the key (or write null) for none",
            ));
        }
        // the observers are our peers: their daemons read ours too (an IP address only; a host
        // name is not resolved here, its addresses go into http_reserved_clients)
        let peers: Vec<IpNet> = c
            .observers
            .values()
            .filter_map(|o| reqwest::Url::parse(&o.url).ok())
            .filter_map(|u| {
                u.host_str()
                    .map(|h| h.trim_start_matches('[').trim_end_matches(']').to_string())
            })
            .filter_map(|h| h.parse::<IpAddr>().ok())
            .map(IpNet::host)
            .collect();
        c.http_reserved_clients.extend(peers);
        match (&c.http_tls_cert, &c.http_tls_key) {
            (Some(_), None) => return Err(self.err("http_tls_key", "required with http_tls_cert")),
            (None, Some(_)) => return Err(self.err("http_tls_cert", "required with http_tls_key")),
            _ => {}
        }
        for (key, file) in [("http_tls_cert", &c.http_tls_cert), ("http_tls_key", &c.http_tls_key)] {
            if let Some(f) = file {
                std::fs::metadata(f).map_err(|e| self.err(key, format!("cannot read {}: {e}", f.display())))?;
            }
        }
        Ok(())
    }

    /// statsd needs both a host and a port, or neither (then there is none).
    fn statsd(&self, statsd: Option<raw::RawStatsd>) -> Result<Option<StatsdConfig>, ConfigError> {
        let Some(s) = statsd else { return Ok(None) };
        match (s.host, s.port) {
            (None, None) => Ok(None),
            (Some(host), Some(port)) => Ok(Some(StatsdConfig {
                host,
                port: port.0,
                tags: s.tags.into_iter().collect(),
            })),
            (None, _) => Err(self.err(
                "statsd.host",
                "expected a host name string (statsd needs both host and port)",
            )),
            (_, None) => Err(self.err(
                "statsd.port",
                "expected a port number (statsd needs both host and port)",
            )),
        }
    }

    /// `autofollow` and `rejoin_old_master` need what they run.
    fn follow(&self, c: &Config) -> Result<(), ConfigError> {
        if c.autofollow {
            if c.primary_conninfo_template.is_none() {
                return Err(self.err("primary_conninfo_template", "required when autofollow is true"));
            }
            if c.pg_data_directory.is_none() {
                return Err(self.err("pg_data_directory", "required when autofollow is true"));
            }
            for (key, command) in [
                ("pg_start_command", &c.pg_start_command),
                ("pg_stop_command", &c.pg_stop_command),
            ] {
                if command.trim().is_empty() {
                    return Err(self.err(key, "a command is required when autofollow is true"));
                }
            }
        }
        if c.rejoin_old_master {
            for (key, missing) in [
                ("primary_conninfo_template", c.primary_conninfo_template.is_none()),
                ("pg_data_directory", c.pg_data_directory.is_none()),
                ("pg_start_command", c.pg_start_command.trim().is_empty()),
                ("pg_stop_command", c.pg_stop_command.trim().is_empty()),
                ("pg_rewind_command", c.pg_rewind_command.trim().is_empty()),
                ("pg_controldata_command", c.pg_controldata_command.trim().is_empty()),
            ] {
                if missing {
                    return Err(self.err(key, "required when rejoin_old_master is true"));
                }
            }
        }
        Ok(())
    }

    /// `synchronous_mode` `on` or `strict` names each standby by its node name (the
    /// `application_name` it must connect with), and asks for no more synchronous standbys
    /// than there can be.
    fn synchronous(&self, c: &Config) -> Result<(), ConfigError> {
        if c.synchronous_mode == SynchronousMode::Off {
            return Ok(());
        }
        if let (Some(own), Some(app)) = (c.own_db.as_deref(), c.own_application_name.as_deref()) {
            if !own.eq_ignore_ascii_case(app) {
                return Err(self.err(
                    "own_application_name",
                    format!("must be the node's name ({own:?}) or unset with synchronous_mode on or strict: the synchronous standbys are listed by node name"),
                ));
            }
        }
        let promotable = c
            .remote_conns
            .keys()
            .filter(|n| !c.never_promote_these_nodes.contains(*n))
            .count();
        // the primary is one of them when it may be promoted itself
        let standbys = promotable.saturating_sub(1);
        if c.synchronous_node_count as usize > standbys {
            return Err(self.err(
                "synchronous_node_count",
                format!(
                    "at most the number of standbys that may be promoted ({standbys}: remote_conns less the primary and never_promote_these_nodes) with synchronous_mode on or strict"
                ),
            ));
        }
        Ok(())
    }

    /// The fast failover trigger needs observers; with `fence_command`, the lease needs the
    /// observers' reports every round, `fence_timeout` (given, or derived here) must let the
    /// primary be fenced before a standby may promote, and a node daemon's voters must be able
    /// to hold the lease (docs/safety.md).
    fn fencing(&mut self, c: &mut Config) -> Result<(), ConfigError> {
        // an observer never fails over: the same profile can be merged into its config too
        if c.unreachable_master_failover_timeout.is_some() && c.observers.is_empty() && c.own_db.is_some() {
            return Err(self.err(
                "unreachable_master_failover_timeout",
                "needs observers: the master must be unreachable to a majority of them too (docs/safety.md)",
            ));
        }
        if c.fence_command.is_none() {
            return Ok(());
        }
        if c.poll_observers_on_warning_only && !c.observers.is_empty() {
            return Err(self.err(
                "poll_observers_on_warning_only",
                "must be false with fence_command: the lease needs the observers' reports every round",
            ));
        }
        let timing = crate::timing::Timing {
            poll_interval: c.db_poll_interval,
            poll_timeout: c.db_poll_timeout,
            check_interval: c.replication_state_check_interval,
            fence_budget: c.fence_command_budget,
        };
        let max_failover = c.max_failover_replication_time_lag;
        let failover_after = c
            .unreachable_master_failover_timeout
            .unwrap_or(max_failover)
            .min(max_failover);
        let fence_timeout = match c.fence_timeout {
            Some(t) => timing.check_fence_timeout(t, failover_after).map(|()| t),
            None => timing.derive_fence_timeout(failover_after),
        }
        .map_err(|e| self.err("fence_timeout", e))?;
        c.fence_timeout = Some(fence_timeout);
        if let Some(own) = &c.own_db {
            if let Some(why) = fragile_lease(own, &c.remote_conns, &c.observers) {
                if !c.allow_fragile_lease {
                    return Err(self.err(
                        "observers",
                        format!("{why}; or set allow_fragile_lease: true to accept it"),
                    ));
                }
                self.warn(format!("allow_fragile_lease: {why}"));
            }
            let (f, contact) = (fence_timeout, 2.0 * c.db_poll_interval + 2.0 * c.db_poll_timeout);
            if f < contact {
                self.warn(format!(
                    "fence_timeout {f:.2} s is shorter than 2 × db_poll_interval + 2 × db_poll_timeout ({contact:.2} s): a loss of contact longer than {f:.2} s fences the primary"
                ));
            }
        }
        Ok(())
    }
}

/// The values as read, with the defaults derived from other keys; the observers and statsd
/// are the conversion's.
fn assemble(raw: raw::Raw, path: &Path) -> Config {
    let blank_is_none = |s: Option<String>| s.filter(|s| !s.trim().is_empty());
    let check_interval = raw.replication_state_check_interval.0;
    let fence_command_budget = raw.fence_command_budget.0;
    let event_log_path = match raw.event_log_path {
        p if p.as_os_str().is_empty() => crate::events::default_path(&raw.json_state_file_path),
        p => p,
    };
    let alert_file_dir = match raw.alert_file_dir {
        d if d.as_os_str().is_empty() => std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")),
        d => d,
    };
    Config {
        path: path.to_path_buf(),
        remote_conns: raw.remote_conns.into_iter().collect(),
        own_db: raw.own_db.filter(|s| !s.is_empty()),
        own_application_name: raw.own_application_name.filter(|s| !s.is_empty()),
        observers: BTreeMap::new(),
        http_auth_token: raw.http_auth_token,
        http_auth_scope: raw.http_auth_scope,
        http_reserved_clients: raw.http_reserved_clients,
        http_tls_cert: raw.http_tls_cert,
        http_tls_key: raw.http_tls_key,
        poll_observers_on_warning_only: raw.poll_observers_on_warning_only.0,
        db_poll_interval: raw.db_poll_interval.0,
        replication_state_check_interval: check_interval,
        cluster_monitor_health_timeout_seconds: match raw.cluster_monitor_health_timeout_seconds {
            None => Some(2.0 * check_interval),
            Some(given) => given.map(|s| s.0),
        },
        warning_replication_time_lag: raw.warning_replication_time_lag.0,
        max_failover_replication_time_lag: raw.max_failover_replication_time_lag.0,
        replication_catchup_timeout: raw.replication_catchup_timeout.0,
        missing_master_from_config_timeout: raw.missing_master_from_config_timeout.0,
        failover_on_disconnect: raw.failover_on_disconnect.0,
        known_gone_nodes: raw.known_gone_nodes,
        never_promote_these_nodes: raw.never_promote_these_nodes,
        max_failover_lag_bytes: raw.max_failover_lag_bytes.map(|b| b.0),
        failover_priorities: raw.failover_priorities.into_iter().collect(),
        failover_requires_strict_majority: raw.failover_requires_strict_majority.0,
        synchronous_mode: raw.synchronous_mode,
        synchronous_node_count: raw.synchronous_node_count.0,
        failover_fallback_timeout: raw.failover_fallback_timeout.map(|s| s.0),
        maintenance_mode_file: raw.maintenance_mode_file,
        failover_command: raw.failover_command,
        failover_command_timeout: raw.failover_command_timeout.0,
        failover_sleep_time: raw.failover_sleep_time.0,
        pause_alert_after: raw.pause_alert_after.0,
        db_poll_timeout: raw.db_poll_timeout.0,
        fence_command: blank_is_none(raw.fence_command),
        fence_command_budget,
        fence_command_timeout: raw.fence_command_timeout.map_or(5.0 * fence_command_budget, |s| s.0),
        fence_timeout: raw.fence_timeout.map(|s| s.0),
        allow_fragile_lease: raw.allow_fragile_lease.0,
        unreachable_master_failover_timeout: raw.unreachable_master_failover_timeout.map(|s| s.0),
        over_warning_limit_command: blank_is_none(raw.over_warning_limit_command),
        event_command: blank_is_none(raw.event_command),
        event_command_timeout: raw.event_command_timeout.0,
        alert_file_dir,
        json_state_file_path: raw.json_state_file_path,
        event_log_path,
        autofollow: raw.autofollow.0,
        primary_conninfo_template: raw.primary_conninfo_template,
        pg_data_directory: raw.pg_data_directory,
        pg_start_command: raw.pg_start_command,
        pg_stop_command: raw.pg_stop_command,
        rejoin_old_master: raw.rejoin_old_master.0,
        rejoin_source_conninfo_template: raw.rejoin_source_conninfo_template,
        pg_rewind_command: raw.pg_rewind_command,
        pg_rewind_timeout: raw.pg_rewind_timeout.0,
        pg_controldata_command: raw.pg_controldata_command,
        reinit_command: blank_is_none(raw.reinit_command),
        reinit_timeout: raw.reinit_timeout.0,
        http_address: raw.http_address,
        http_port: raw.http_port.0,
        log_level: raw.log_level,
        syslog: raw.syslog.0,
        syslog_address: raw.syslog_address,
        syslog_facility: raw.syslog_facility.0,
        statsd: None,
    }
}

/// Warnings about files the daemon trusts that other local users could plant or change: the
/// config itself, the state file (`pglookout_current_master` believes it), the maintenance
/// file (it stops promotion), the alert directory and the failover command's program. Each is
/// flagged when its directory is world-writable (the original's defaults put the state and
/// maintenance files in `/tmp`, where anyone can create them first), when it is
/// world-writable itself, or when it is owned by a user other than us or root. The defaults
/// are kept for compatibility; these are warnings. Reads file metadata: call it off the
/// decision loop.
pub fn trust_warnings(config: &Config) -> Vec<String> {
    use std::os::unix::fs::MetadataExt;
    let me = nix::unistd::geteuid().as_raw();
    let mut out = Vec::new();
    let mut check = |what: &str, path: &Path, is_dir: bool| {
        let owner = |uid: u32| uid != me && uid != 0;
        let parent = if is_dir {
            None
        } else {
            path.parent().filter(|p| !p.as_os_str().is_empty())
        };
        if let Some(dir) = parent {
            if let Ok(m) = std::fs::metadata(dir) {
                if m.mode() & 0o002 != 0 {
                    out.push(format!(
                        "{what} {} is in the world-writable directory {}: any local user can create or replace it; move it to a directory only pglookout can write",
                        path.display(),
                        dir.display()
                    ));
                } else if owner(m.uid()) {
                    out.push(format!(
                        "{what} {} is in the directory {} owned by uid {}, neither pglookout's user (uid {me}) nor root",
                        path.display(),
                        dir.display(),
                        m.uid()
                    ));
                }
            }
        }
        if let Ok(m) = std::fs::symlink_metadata(path) {
            if m.mode() & 0o002 != 0 && !m.file_type().is_symlink() {
                out.push(format!("{what} {} is world-writable", path.display()));
            }
            if owner(m.uid()) {
                out.push(format!(
                    "{what} {} is owned by uid {}, neither pglookout's user (uid {me}) nor root",
                    path.display(),
                    m.uid()
                ));
            }
        }
    };
    check("the config file", &config.path, false);
    check("json_state_file_path", &config.json_state_file_path, false);
    check("maintenance_mode_file", &config.maintenance_mode_file, false);
    check("alert_file_dir", &config.alert_file_dir, true);
    if let Some(program) = config
        .failover_command
        .split_whitespace()
        .next()
        .filter(|p| p.starts_with('/'))
    {
        check("the failover_command program", Path::new(program), false);
    }
    out
}

/// What stops the config from working on this machine, although the file is valid: checked at
/// start and on every reload, and logged as errors (the daemon still runs: monitoring, votes
/// and the HTTP API matter even when a file cannot be written, and a directory or program may
/// appear later, as a write that fails later is logged, counted and never fatal):
///
/// - the directory of `json_state_file_path` or `event_log_path` does not exist, or
///   `alert_file_dir` is not a directory we can create files in;
/// - the program of `event_command` (on every daemon, observers too) or, on a node daemon, of
///   another command the config will run (`failover_command`,
///   `fence_command`, `over_warning_limit_command`, `pg_start_command` and `pg_stop_command`
///   with `autofollow` or `rejoin_old_master`, `pg_rewind_command` and `pg_controldata_command`
///   with `rejoin_old_master`) does not exist or is not executable: better known at start
///   than when the failover is due.
///
/// Reads file metadata: call it off the decision loop.
pub fn environment_problems(config: &Config) -> Vec<String> {
    let mut out = Vec::new();
    for (key, file) in [
        ("json_state_file_path", &config.json_state_file_path),
        ("event_log_path", &config.event_log_path),
    ] {
        let dir = match file.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        if !dir.is_dir() {
            out.push(format!(
                "{key} {}: the directory {} does not exist: nothing can be written there until it is created",
                file.display(),
                dir.display()
            ));
        }
    }
    if !dir_writable(&config.alert_file_dir) {
        let why = if config.alert_file_dir.is_dir() {
            "is not writable by pglookout's user"
        } else {
            "is not an existing directory"
        };
        out.push(format!(
            "alert_file_dir {} {why}: no alert file can be created (the alert metrics say so)",
            config.alert_file_dir.display()
        ));
    }
    if config.own_db.is_some() {
        let follows = config.autofollow || config.rejoin_old_master;
        let commands = [
            ("failover_command", Some(config.failover_command.as_str())),
            ("fence_command", config.fence_command.as_deref()),
            (
                "over_warning_limit_command",
                config.over_warning_limit_command.as_deref(),
            ),
            ("pg_start_command", follows.then_some(config.pg_start_command.as_str())),
            ("pg_stop_command", follows.then_some(config.pg_stop_command.as_str())),
            (
                "pg_rewind_command",
                config.rejoin_old_master.then_some(config.pg_rewind_command.as_str()),
            ),
            (
                "pg_controldata_command",
                config
                    .rejoin_old_master
                    .then_some(config.pg_controldata_command.as_str()),
            ),
            ("reinit_command", config.reinit_command.as_deref()),
        ];
        for (key, command) in commands {
            check_command(key, command, &mut out);
        }
    }
    check_command("event_command", config.event_command.as_deref(), &mut out);
    out
}

/// Adds to `out` why the command of `key`, if any, cannot run.
fn check_command(key: &str, command: Option<&str>, out: &mut Vec<String>) {
    let Some(program) = command.and_then(|c| c.split_whitespace().next()) else {
        return;
    };
    if let Err(why) = check_program(program, std::env::var_os("PATH").as_deref()) {
        out.push(format!("{key}: {why}: it cannot run when it is needed"));
    }
}

/// Whether `program` can be run as a command is (`execvp`: a name without `/` is looked up in
/// `path`): an existing regular file with an execute permission we hold.
fn check_program(program: &str, path: Option<&std::ffi::OsStr>) -> Result<(), String> {
    use nix::unistd::AccessFlags;
    let runnable = |p: &Path| p.is_file() && nix::unistd::access(p, AccessFlags::X_OK).is_ok();
    if program.contains('/') {
        let p = Path::new(program);
        return match std::fs::metadata(p) {
            Err(e) => Err(format!("the program {program} cannot be found: {e}")),
            Ok(m) if !m.is_file() => Err(format!("the program {program} is not a regular file")),
            Ok(_) if !runnable(p) => Err(format!("the program {program} is not executable")),
            Ok(_) => Ok(()),
        };
    }
    let dirs: Vec<PathBuf> = path.map(|p| std::env::split_paths(p).collect()).unwrap_or_default();
    if dirs.iter().any(|d| runnable(&d.join(program))) {
        Ok(())
    } else {
        Err(format!("the program {program:?} is not an executable file in PATH"))
    }
}

/// Reads a config file's text, bounded: it must be a regular file (after following symlinks)
/// of at most [`MAX_CONFIG_BYTES`]. The file is opened without blocking (a FIFO would block the
/// open itself until a writer comes) and checked on the open descriptor, so a file swapped
/// between a check and the read cannot slip through.
pub fn read_text(path: &Path) -> Result<String, ConfigError> {
    use std::io::Read;
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    let shown = || path.display().to_string();
    let read_err = |source| ConfigError::Read { path: shown(), source };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::fcntl::OFlag::O_NONBLOCK.bits())
        .open(path)
        .map_err(read_err)?;
    let meta = file.metadata().map_err(read_err)?;
    let kind = meta.file_type();
    if !kind.is_file() {
        let kind = if kind.is_dir() {
            "a directory"
        } else if kind.is_fifo() {
            "a FIFO"
        } else if kind.is_char_device() {
            "a character device"
        } else if kind.is_block_device() {
            "a block device"
        } else if kind.is_socket() {
            "a socket"
        } else {
            "a special file"
        };
        return Err(ConfigError::NotRegular { path: shown(), kind });
    }
    let too_large = || ConfigError::TooLarge {
        path: shown(),
        limit: MAX_CONFIG_BYTES,
    };
    if meta.len() > MAX_CONFIG_BYTES {
        return Err(too_large());
    }
    // the file may grow between the fstat and the read: read one byte past the limit at most
    let mut bytes = Vec::new();
    file.take(MAX_CONFIG_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(read_err)?;
    if bytes.len() as u64 > MAX_CONFIG_BYTES {
        return Err(too_large());
    }
    String::from_utf8(bytes).map_err(|_| {
        read_err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "stream did not contain valid UTF-8",
        ))
    })
}

/// [`read_text`], parsed as JSON.
fn read_json(path: &Path) -> Result<Value, ConfigError> {
    let text = read_text(path)?;
    serde_json::from_str(&text).map_err(|source| ConfigError::Json {
        path: path.display().to_string(),
        source,
    })
}

/// Reads just `json_state_file_path` (for `pglookout_current_master`, which must not fail on
/// keys it does not use).
pub fn state_file_path_of(path: &Path) -> Result<PathBuf, ConfigError> {
    let shown = path.display().to_string();
    let value = read_json(path)?;
    match value.get("json_state_file_path") {
        None | Some(Value::Null) => Ok(PathBuf::from("/tmp/pglookout_state.json")),
        Some(Value::String(s)) => Ok(PathBuf::from(s)),
        Some(_) => Err(ConfigError::Key {
            path: shown,
            key: "json_state_file_path".into(),
            expected: "expected a file path string".into(),
        }),
    }
}

/// The event history file a config names (`event_log_path`, else beside its state file),
/// read without the rest of the validation, as [`state_file_path_of`].
pub fn event_log_path_of(path: &Path) -> Result<PathBuf, ConfigError> {
    let state = state_file_path_of(path)?;
    let value = read_json(path)?;
    match value.get("event_log_path") {
        Some(Value::String(s)) if !s.is_empty() => Ok(PathBuf::from(s)),
        None | Some(Value::Null) | Some(Value::String(_)) => Ok(crate::events::default_path(&state)),
        Some(_) => Err(ConfigError::Key {
            path: path.display().to_string(),
            key: "event_log_path".into(),
            expected: "expected a file path string".into(),
        }),
    }
}

/// Whether `dir` is a directory this process may create files in (`access(2)`, so a read-only
/// mount counts as not writable). The start checks and the file thread both ask it.
pub fn dir_writable(dir: &Path) -> bool {
    use nix::unistd::AccessFlags;
    dir.is_dir() && nix::unistd::access(dir, AccessFlags::W_OK | AccessFlags::X_OK).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// A connection info libpq would refuse is refused, naming the entry and the keyword but
    /// not the value; the DEBUG `config:` line hides every value that could be a secret.
    #[test]
    fn conninfos_are_checked_and_their_secrets_never_summarised() {
        let load = |conns: serde_json::Value| {
            Config::from_value(Path::new("c.json"), &serde_json::json!({"remote_conns": conns})).map(|(c, _)| c)
        };
        let e = load(serde_json::json!({"pg1": "host=a", "pg2": "host=b Password=hunter2"}))
            .expect_err("an unknown keyword")
            .to_string();
        assert!(
            e.contains("\"remote_conns.pg2\"") && e.contains("unknown keyword \"Password\"") && !e.contains("hunter2"),
            "{e}"
        );
        let e = load(serde_json::json!({"pg1": "host=a port=99999"}))
            .expect_err("a port out of range")
            .to_string();
        assert!(e.contains("\"remote_conns.pg1\"") && e.contains("port"), "{e}");
        let c = load(serde_json::json!({
            "pg1": "host=a user=u password=hunter2 options='-c x.key=hunter2'",
            "pg2": {"host": "b", "sslpassword": "hunter2", "dbname": "host=x password=hunter2"},
        }))
        .expect("valid");
        let summary = c.masked_summary();
        assert!(!summary.contains("hunter2"), "{summary}");
        assert!(
            summary.contains("pg1: host=a user=u options=<hidden>; hidden password"),
            "{summary}"
        );
    }

    /// `/sync` looks for our node under `own_application_name`, by default its name; an
    /// observer has none, and a value of the wrong type names the key.
    #[test]
    fn own_application_name_defaults_to_the_node_name() {
        let load = |v: serde_json::Value| Config::from_value(Path::new("c.json"), &v).map(|(c, _)| c);
        let base = serde_json::json!({"remote_conns": {"pg1": "host=a", "pg2": "host=b"}, "own_db": "pg2"});
        let c = load(base.clone()).expect("valid");
        assert_eq!(c.own_application_name(), Some("pg2"));
        let mut named = base.clone();
        named["own_application_name"] = serde_json::json!("walreceiver_b");
        assert_eq!(
            load(named).expect("valid").own_application_name(),
            Some("walreceiver_b")
        );
        let mut blank = base.clone();
        blank["own_application_name"] = serde_json::json!("");
        assert_eq!(load(blank).expect("valid").own_application_name(), Some("pg2"));
        let mut observer = base.clone();
        observer["own_db"] = serde_json::json!("");
        observer["own_application_name"] = serde_json::json!("x");
        assert_eq!(load(observer).expect("valid").own_application_name(), None);
        let mut wrong = base;
        wrong["own_application_name"] = serde_json::json!(5);
        let e = load(wrong).expect_err("a number").to_string();
        assert!(e.contains("own_application_name"), "{e}");
    }

    /// `synchronous_mode` is off by default (the original's behaviour), takes its three
    /// values, and anything else names the key and the values it takes.
    #[test]
    fn synchronous_mode_reads_its_three_values() {
        let load = |v: serde_json::Value| Config::from_value(Path::new("c.json"), &v).map(|(c, _)| c);
        let base = serde_json::json!({"remote_conns": {"pg1": "host=a", "pg2": "host=b"}, "own_db": "pg2"});
        assert_eq!(
            load(base.clone()).expect("valid").synchronous_mode,
            SynchronousMode::Off
        );
        for (value, mode) in [
            ("off", SynchronousMode::Off),
            ("on", SynchronousMode::On),
            ("strict", SynchronousMode::Strict),
        ] {
            let mut c = base.clone();
            c["synchronous_mode"] = serde_json::json!(value);
            assert_eq!(load(c).expect("valid").synchronous_mode, mode, "{value}");
        }
        for bad in [
            serde_json::json!("ON"),
            serde_json::json!(true),
            serde_json::json!("quorum"),
        ] {
            let mut c = base.clone();
            c["synchronous_mode"] = bad.clone();
            let e = load(c).expect_err("refused").to_string();
            assert!(e.contains("synchronous_mode") && e.contains("\"strict\""), "{bad}: {e}");
        }
    }

    /// Absurd timings are refused with the sane range in the message; the ends of each range
    /// load.
    #[test]
    fn timings_outside_their_sane_range_are_refused_with_the_range() {
        let load = |key: &str, v: serde_json::Value| {
            Config::from_value(Path::new("c.json"), &serde_json::json!({ key: v })).map(|(c, _)| c)
        };
        for (key, bad, needle) in [
            (
                "db_poll_interval",
                serde_json::json!(1e-300),
                "from 0.05 to 86400 (1 day), got 1e-300",
            ),
            ("db_poll_interval", serde_json::json!(0.01), "from 0.05 to 86400"),
            ("db_poll_interval", serde_json::json!(86401), "from 0.05 to 86400"),
            (
                "replication_state_check_interval",
                serde_json::json!(1e-9),
                "from 0.05 to 86400",
            ),
            ("db_poll_timeout", serde_json::json!(7200), "from 0.05 to 3600 (1 hour)"),
            (
                "max_failover_replication_time_lag",
                serde_json::json!(1e-300),
                "from 0.01 to 315360000 (10 years)",
            ),
            (
                "failover_command_timeout",
                serde_json::json!(1e300),
                "from 0.01 to 315360000",
            ),
            ("event_command_timeout", serde_json::json!(0), "from 0.01 to 315360000"),
            (
                "failover_sleep_time",
                serde_json::json!(1e-300),
                "0 or from 0.01 to 315360000",
            ),
            (
                "cluster_monitor_health_timeout_seconds",
                serde_json::json!(-1),
                "0 or from 0.01",
            ),
        ] {
            let e = load(key, bad.clone()).expect_err("refused").to_string();
            assert!(
                e.contains(&format!("\"{key}\"")) && e.contains(needle),
                "{key}={bad}: {e}"
            );
        }
        for (key, ok) in [
            ("db_poll_interval", 0.05),
            ("db_poll_interval", 86400.0),
            ("db_poll_timeout", 3600.0),
            ("failover_sleep_time", 0.0),
            ("replication_catchup_timeout", 0.01),
        ] {
            assert!(load(key, serde_json::json!(ok)).is_ok(), "{key}={ok}");
        }
    }

    /// Missing directories and commands that cannot run are reported, on a node daemon (an
    /// observer runs no command).
    #[test]
    fn missing_directories_and_programs_are_reported() {
        let dir = tempfile::tempdir().expect("dir");
        let d = dir.path();
        let script = d.join("promote");
        std::fs::write(&script, "#!/bin/sh\n").expect("write");
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let load = |extra: serde_json::Value| {
            let mut v = serde_json::json!({
                "remote_conns": {"pg1": "host=a"},
                "own_db": "pg1",
                "json_state_file_path": d.join("state.json"),
                "alert_file_dir": d,
                "failover_command": "/bin/true --flag",
            });
            for (k, x) in extra.as_object().expect("object") {
                v[k] = x.clone();
            }
            Config::from_value(&d.join("c.json"), &v).expect("valid").0
        };
        assert_eq!(environment_problems(&load(serde_json::json!({}))), Vec::<String>::new());
        // a bare name is looked up in PATH, as the command is run
        assert_eq!(
            environment_problems(&load(serde_json::json!({"failover_command": "true"}))),
            Vec::<String>::new()
        );
        let p = environment_problems(&load(serde_json::json!({
            "json_state_file_path": d.join("missing/state.json"),
            "alert_file_dir": d.join("no-alerts"),
            "failover_command": format!("{} now", script.display()),
            "over_warning_limit_command": "/nonexistent/warn",
            "autofollow": true,
            "primary_conninfo_template": "user=rep",
            "pg_data_directory": "/d",
            "pg_start_command": "no-such-program-pglookout start",
            "pg_stop_command": "/bin/true",
        })));
        assert_eq!(p.len(), 6, "{p:#?}");
        assert!(
            p[0].starts_with("json_state_file_path ") && p[0].contains("does not exist"),
            "{p:#?}"
        );
        assert!(
            p[1].starts_with("event_log_path ") && p[1].contains("does not exist"),
            "{p:#?}"
        );
        assert!(
            p[2].starts_with("alert_file_dir ") && p[2].contains("not an existing directory"),
            "{p:#?}"
        );
        assert!(
            p[3].starts_with("failover_command: ") && p[3].contains("is not executable"),
            "{p:#?}"
        );
        assert!(
            p[4].starts_with("over_warning_limit_command: ") && p[4].contains("cannot be found"),
            "{p:#?}"
        );
        assert!(
            p[5].starts_with("pg_start_command: ")
                && p[5].contains("\"no-such-program-pglookout\" is not an executable file in PATH"),
            "{p:#?}"
        );
        // an observer runs none of them, but for event_command
        let mut observer = load(serde_json::json!({"failover_command": "/nonexistent/promote"}));
        observer.own_db = None;
        assert_eq!(environment_problems(&observer), Vec::<String>::new());
        observer.event_command = Some("/nonexistent/hook --flag".into());
        let p = environment_problems(&observer);
        assert!(
            p.len() == 1 && p[0].starts_with("event_command: ") && p[0].contains("cannot be found"),
            "{p:#?}"
        );
    }

    #[test]
    fn files_other_users_could_plant_are_warned_about() {
        let dir = tempfile::tempdir().expect("dir");
        let private = dir.path().join("private");
        let public = dir.path().join("public");
        std::fs::create_dir(&private).expect("mkdir");
        std::fs::create_dir(&public).expect("mkdir");
        std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        // like /tmp: world-writable with the sticky bit
        std::fs::set_permissions(&public, std::fs::Permissions::from_mode(0o1777)).expect("chmod");
        let config_value = |state: &Path, maintenance: &Path| {
            serde_json::json!({
                "remote_conns": {"pg1": "host=a"},
                "json_state_file_path": state,
                "maintenance_mode_file": maintenance,
                "alert_file_dir": private,
            })
        };
        let (safe, _) = Config::from_value(
            &private.join("pglookout.json"),
            &config_value(&private.join("state.json"), &private.join("maint")),
        )
        .expect("config");
        assert_eq!(trust_warnings(&safe), Vec::<String>::new());

        let (unsafe_config, _) = Config::from_value(
            &private.join("pglookout.json"),
            &config_value(&public.join("state.json"), &public.join("maint")),
        )
        .expect("config");
        let w = trust_warnings(&unsafe_config);
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w[0].starts_with("json_state_file_path ") && w[0].contains("world-writable directory"));
        assert!(w[1].starts_with("maintenance_mode_file "));

        // a maintenance file another user planted (we run the tests as root in CI; as another
        // user, any file of root's is not "another user" and the chown needs root anyway)
        if nix::unistd::geteuid().is_root() {
            let planted = private.join("maint");
            std::fs::write(&planted, "").expect("write");
            nix::unistd::chown(&planted, Some(nix::unistd::Uid::from_raw(65534)), None).expect("chown");
            let w = trust_warnings(&safe);
            assert!(w.len() == 1 && w[0].contains("owned by uid 65534"), "{w:?}");
        }
    }

    /// docs/profiles/fast.json, merged into a node daemon's config, passes the fence-before-promote
    /// check, and its lease rides out a 3 s blip (docs/safety.md, "The fast profile").
    #[test]
    fn the_fast_profile_loads_and_rides_out_a_three_second_blip() {
        let profile: serde_json::Value =
            serde_json::from_str(include_str!("../docs/profiles/fast.json")).expect("fast.json is JSON");
        let mut v = serde_json::json!({
            "remote_conns": {"pg1": "host=a", "pg2": "host=b", "pg3": "host=c"},
            "observers": {"pg2": "http://b:15000", "pg3": "http://c:15000", "o1": "http://o1:15000"},
            "own_db": "pg1",
            "fence_command": "/usr/bin/fence",
        });
        for (k, x) in profile.as_object().expect("a JSON object") {
            v[k] = x.clone();
        }
        let (c, _) = Config::from_value(Path::new("fast.json"), &v).expect("the fast profile loads");
        let f = c.fence_timeout.expect("fence_timeout");
        let (i, ch, p) = (
            c.db_poll_interval,
            c.replication_state_check_interval,
            c.db_poll_timeout,
        );
        // refused blip: renewals stop for at most b + 3I + C; blackholed: + P
        assert!(
            f > 3.0 + 3.0 * i + ch + p,
            "fence_timeout {f} does not ride out a 3 s blip"
        );
        assert!(c.unreachable_master_failover_timeout.is_some_and(|u| u < 5.0));
    }

    /// `failover_priorities` as the Python versions that have it read it: any number (a
    /// fraction, a negative), a node it does not list at 0; anything else names the key.
    #[test]
    fn failover_priorities_take_any_number_and_default_to_zero() {
        let load = |p: serde_json::Value| {
            let v = serde_json::json!({"remote_conns": {"pg1": "host=a", "pg2": "host=b"}, "failover_priorities": p});
            Config::from_value(Path::new("c.json"), &v).map(|(c, _)| c)
        };
        let c = load(serde_json::json!({"pg1": -2, "pg2": 1.5})).expect("numbers");
        let zero = load(serde_json::json!({"pg1": -0.0})).expect("-0");
        assert!(zero.priority("pg1").is_sign_positive(), "-0 ranks with an unlisted 0");
        assert_eq!(
            (c.priority("pg1"), c.priority("pg2"), c.priority("pg3")),
            (-2.0, 1.5, 0.0)
        );
        let e = load(serde_json::json!({"pg1": "high"}))
            .expect_err("a string")
            .to_string();
        assert!(e.contains("failover_priorities") && e.contains("\"pg1\""), "{e}");
        let e = load(serde_json::json!([1])).expect_err("a list").to_string();
        assert!(e.contains("failover_priorities"), "{e}");
    }

    #[test]
    fn fencing_timers_that_cannot_hold_are_refused_with_the_keys_and_numbers() {
        let base = serde_json::json!({
            "remote_conns": {"pg1": "host=a", "pg2": "host=b"},
            "observers": {"o1": "http://o1:15000"},
            "fence_command": "/usr/bin/fence",
            "db_poll_interval": 0.5,
            "db_poll_timeout": 1.0,
            "replication_state_check_interval": 0.5,
            "unreachable_master_failover_timeout": 8.5,
        });
        let load = |extra: serde_json::Value| {
            let mut v = base.clone();
            for (k, x) in extra.as_object().expect("object") {
                v[k] = x.clone();
            }
            Config::from_value(Path::new("c.json"), &v).map(|(c, _)| c)
        };
        assert_eq!(
            load(serde_json::json!({"fence_timeout": 4.0}))
                .expect("fits")
                .fence_timeout,
            Some(4.0)
        );
        let e = load(serde_json::json!({"fence_timeout": 4.5}))
            .expect_err("too long")
            .to_string();
        assert!(
            e.contains("fence_timeout") && e.contains("= 9.00 s") && e.contains("8.5 s"),
            "{e}"
        );
        // derived when not given: as long as the argument allows
        assert_eq!(load(serde_json::json!({})).expect("derived").fence_timeout, Some(4.0));
        let e = load(serde_json::json!({"unreachable_master_failover_timeout": 3.0}))
            .expect_err("no room")
            .to_string();
        assert!(e.contains("fence_timeout") && e.contains("cannot be derived"), "{e}");
        // a faster fence command leaves room for a longer fence_timeout
        assert_eq!(
            load(serde_json::json!({"fence_command_budget": 0.25, "fence_timeout": 4.75}))
                .expect("fits with a quick fence")
                .fence_timeout,
            Some(4.75)
        );
        let e = load(serde_json::json!({"fence_command_budget": 0}))
            .expect_err("zero budget")
            .to_string();
        assert!(e.contains("fence_command_budget"), "{e}");
        let e = load(serde_json::json!({"observers": {}, "own_db": "pg1"}))
            .expect_err("no observers")
            .to_string();
        assert!(
            e.contains("unreachable_master_failover_timeout") && e.contains("observers"),
            "{e}"
        );
        let e = load(serde_json::json!({"poll_observers_on_warning_only": true}))
            .expect_err("observers not polled")
            .to_string();
        assert!(e.contains("poll_observers_on_warning_only"), "{e}");
        // without fence_command, fence_timeout is not checked against anything
        let mut v = base.clone();
        v.as_object_mut().expect("object").remove("fence_command");
        v["fence_timeout"] = serde_json::json!(100.0);
        assert!(Config::from_value(Path::new("c.json"), &v).is_ok());
    }

    #[test]
    fn event_command_is_off_by_default_and_a_blank_one_is_none() {
        let base = serde_json::json!({"remote_conns": {"pg1": "host=a"}});
        let (c, _) = Config::from_value(Path::new("t.json"), &base).expect("config");
        assert_eq!(c.event_command, None);
        assert_eq!(c.event_command_timeout, 30.0);
        let mut v = base.clone();
        v["event_command"] = serde_json::json!("  ");
        let (c, _) = Config::from_value(Path::new("t.json"), &v).expect("config");
        assert_eq!(c.event_command, None);
        v["event_command"] = serde_json::json!("/usr/local/bin/hook --vip");
        v["event_command_timeout"] = serde_json::json!(2.5);
        let (c, w) = Config::from_value(Path::new("t.json"), &v).expect("config");
        assert_eq!(c.event_command.as_deref(), Some("/usr/local/bin/hook --vip"));
        assert_eq!(c.event_command_timeout, 2.5);
        assert!(w.is_empty(), "{w:?}");
    }

    #[test]
    fn rejoin_old_master_is_off_by_default_and_needs_what_it_runs() {
        let base = serde_json::json!({"remote_conns": {"pg1": "host=a", "pg2": "host=b"}, "own_db": "pg1"});
        let (c, _) = Config::from_value(Path::new("t.json"), &base).expect("config");
        assert!(!c.rejoin_old_master);
        assert_eq!(c.pg_rewind_command, "pg_rewind");
        assert_eq!(c.pg_controldata_command, "pg_controldata");
        assert_eq!(c.pg_rewind_timeout, 600.0);
        assert!(c.reinit_command.is_none());
        assert_eq!(c.reinit_timeout, 3600.0);
        assert!(c.rejoin_source_conninfo_template.is_none());

        let mut v = base.clone();
        v["rejoin_old_master"] = serde_json::json!(true);
        let e = Config::from_value(Path::new("t.json"), &v)
            .expect_err("incomplete")
            .to_string();
        assert!(
            e.contains("primary_conninfo_template") && e.contains("rejoin_old_master"),
            "{e}"
        );
        v["primary_conninfo_template"] = serde_json::json!("user=rep");
        v["pg_data_directory"] = serde_json::json!("/d");
        v["pg_start_command"] = serde_json::json!("start");
        let e = Config::from_value(Path::new("t.json"), &v)
            .expect_err("no stop")
            .to_string();
        assert!(e.contains("pg_stop_command"), "{e}");
        v["pg_stop_command"] = serde_json::json!("stop");
        v["rejoin_source_conninfo_template"] = serde_json::json!("user=postgres password=s dbname=postgres");
        v["pg_rewind_command"] = serde_json::json!("/usr/lib/postgresql/15/bin/pg_rewind");
        let (c, warnings) = Config::from_value(Path::new("t.json"), &v).expect("complete");
        assert!(warnings.is_empty(), "{warnings:?}");
        assert!(c.rejoin_old_master);
        assert_eq!(
            c.rejoin_source_conninfo_template.as_ref().and_then(|t| t.get("user")),
            Some("postgres")
        );
        v["pg_rewind_command"] = serde_json::json!(" ");
        let e = Config::from_value(Path::new("t.json"), &v)
            .expect_err("empty")
            .to_string();
        assert!(e.contains("pg_rewind_command"), "{e}");
        v["pg_rewind_command"] = serde_json::json!("pg_rewind");
        v["rejoin_source_conninfo_template"] = serde_json::json!(12);
        let e = Config::from_value(Path::new("t.json"), &v)
            .expect_err("not a conninfo")
            .to_string();
        assert!(e.contains("rejoin_source_conninfo_template"), "{e}");
    }

    #[test]
    fn reserved_http_clients_are_loopback_the_listed_networks_and_the_observers_by_address() {
        let load = |extra: serde_json::Value| {
            let mut v = serde_json::json!({
                "observers": {"o1": "http://10.9.0.1:15000", "o2": "http://[2001:db8::9]:15000", "o3": "http://obs.example:15000"},
            });
            for (k, x) in extra.as_object().expect("object") {
                v[k] = x.clone();
            }
            Config::from_value(Path::new("c.json"), &v).map(|(c, _)| c)
        };
        let c = load(serde_json::json!({"http_reserved_clients": ["10.0.1.0/24", "192.0.2.7", "2001:db8:1::/48"]}))
            .expect("config");
        let reserved = |ip: &str| c.http_client_reserved(ip.parse().expect("ip"));
        for ip in [
            "127.0.0.1",
            "::1",
            "::ffff:127.0.0.1",
            "10.0.1.0",
            "10.0.1.255",
            "192.0.2.7",
            "::ffff:192.0.2.7",
            "2001:db8:1:ffff::1",
            "10.9.0.1",
            "2001:db8::9",
        ] {
            assert!(reserved(ip), "{ip}");
        }
        for ip in [
            "127.0.0.2",
            "10.0.2.1",
            "192.0.2.8",
            "2001:db8:2::1",
            "10.9.0.2",
            "0.0.0.0",
        ] {
            assert!(!reserved(ip), "{ip}");
        }
        let none = load(serde_json::json!({})).expect("default");
        assert!(none.http_client_reserved("127.0.0.1".parse().expect("ip")));
        assert!(!none.http_client_reserved("10.0.1.1".parse().expect("ip")));
        assert!(IpNet::parse("0.0.0.0/0")
            .expect("all")
            .contains("198.51.100.1".parse().expect("ip")));

        for (bad, needle) in [
            (serde_json::json!("10.0.0.1"), "expected a list"),
            (serde_json::json!(["lb.example"]), "host names are not resolved"),
            (serde_json::json!(["10.0.0.7/24"]), "10.0.0.0/24"),
            (serde_json::json!(["10.0.0.0/33"]), "from 0 to 32"),
            (serde_json::json!(["::/129"]), "from 0 to 128"),
            (serde_json::json!([7]), "expected a string"),
        ] {
            let e = load(serde_json::json!({"http_reserved_clients": bad.clone()}))
                .expect_err("refused")
                .to_string();
            assert!(
                e.contains("\"http_reserved_clients\"") && e.contains(needle),
                "{bad}: {e}"
            );
        }
    }
}
