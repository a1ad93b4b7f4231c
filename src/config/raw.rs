//! The config file's schema, read by serde: every key the daemon knows, with its JSON type and
//! the original's default ([`Raw`]), and the checks a value can be given on its own (a
//! duration's range, a port, a connection info, an IP network, the forms of an observer).
//! Owns the messages for a value of the wrong type or out of range, naming the key's path
//! (`serde_path_to_error`), and the list of unknown keys (`serde_ignored`): the known keys are
//! the fields serde's derive lists, not a list kept by hand. The rules between keys and the
//! defaults derived from other keys are the conversion's, in [`super::Config::from_value`].

use super::{AuthScope, IpNet, LogLevel, SynchronousMode, DEFAULT_FALLBACK_TIMEOUT, SYSLOG_FACILITIES};
use crate::conninfo::ConnInfo;
use serde::de::{self, value::MapAccessDeserializer, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::fmt;
use std::marker::PhantomData;
use std::path::PathBuf;
use std::sync::OnceLock;

/// The file as serde reads it. A key left out, or `null` (see [`read`]), has the original's
/// default ([`Raw::default`]); an `Option` that is `None` by default stands for a default the
/// conversion derives from other keys, or for "none".
#[derive(Deserialize)]
#[serde(default, expecting = "a JSON object")]
pub(super) struct Raw {
    #[serde(deserialize_with = "conns")]
    pub remote_conns: Vec<(String, ConnInfo)>,
    /// Empty: an observer.
    pub own_db: Option<String>,
    /// Empty: the `own_db` name.
    pub own_application_name: Option<String>,
    #[serde(deserialize_with = "observers")]
    pub observers: Vec<(String, RawObserver)>,
    pub poll_observers_on_warning_only: Flag,
    pub http_auth_token: Option<String>,
    pub http_auth_scope: AuthScope,
    #[serde(deserialize_with = "networks")]
    pub http_reserved_clients: Vec<IpNet>,
    pub http_tls_cert: Option<PathBuf>,
    pub http_tls_key: Option<PathBuf>,
    pub http_address: String,
    pub http_port: Port,
    pub db_poll_interval: Secs<PERIOD>,
    pub db_poll_timeout: Secs<PROBE>,
    pub replication_state_check_interval: Secs<PERIOD>,
    /// `None`: twice `replication_state_check_interval`; `Some(None)`: `null`, no check.
    #[serde(deserialize_with = "nullable")]
    pub cluster_monitor_health_timeout_seconds: Option<Option<Secs<SPAN_OR_ZERO>>>,
    pub warning_replication_time_lag: Secs<SPAN>,
    pub max_failover_replication_time_lag: Secs<SPAN>,
    pub replication_catchup_timeout: Secs<SPAN>,
    pub missing_master_from_config_timeout: Secs<SPAN>,
    pub failover_on_disconnect: Flag,
    #[serde(deserialize_with = "names")]
    pub known_gone_nodes: Vec<String>,
    #[serde(deserialize_with = "names")]
    pub never_promote_these_nodes: Vec<String>,
    pub max_failover_lag_bytes: Option<Bytes>,
    #[serde(deserialize_with = "priorities")]
    pub failover_priorities: Vec<(String, f64)>,
    pub failover_requires_strict_majority: Flag,
    pub synchronous_mode: SynchronousMode,
    pub synchronous_node_count: SyncCount,
    /// `None`: `null`, never.
    pub failover_fallback_timeout: Option<Secs<SPAN>>,
    pub maintenance_mode_file: PathBuf,
    pub failover_command: String,
    pub failover_command_timeout: Secs<SPAN>,
    pub failover_sleep_time: Secs<SPAN_OR_ZERO>,
    pub pause_alert_after: Secs<SPAN>,
    /// Blank: none.
    pub fence_command: Option<String>,
    pub fence_command_budget: Secs<SPAN>,
    /// `None`: five times `fence_command_budget`.
    pub fence_command_timeout: Option<Secs<SPAN>>,
    /// `None`: derived from the timings when `fence_command` is set.
    pub fence_timeout: Option<Secs<SPAN>>,
    pub allow_fragile_lease: Flag,
    pub unreachable_master_failover_timeout: Option<Secs<SPAN>>,
    /// Blank: none.
    pub over_warning_limit_command: Option<String>,
    /// Blank: none.
    pub event_command: Option<String>,
    pub event_command_timeout: Secs<SPAN>,
    /// Empty: the working directory.
    pub alert_file_dir: PathBuf,
    pub json_state_file_path: PathBuf,
    /// Empty: beside the state file.
    pub event_log_path: PathBuf,
    pub autofollow: Flag,
    #[serde(deserialize_with = "conninfo")]
    pub primary_conninfo_template: Option<ConnInfo>,
    pub pg_data_directory: Option<PathBuf>,
    pub pg_start_command: String,
    pub pg_stop_command: String,
    pub rejoin_old_master: Flag,
    #[serde(deserialize_with = "conninfo")]
    pub rejoin_source_conninfo_template: Option<ConnInfo>,
    pub pg_rewind_command: String,
    pub pg_rewind_timeout: Secs<SPAN>,
    pub pg_controldata_command: String,
    /// Blank: none.
    pub reinit_command: Option<String>,
    pub reinit_timeout: Secs<SPAN>,
    pub log_level: LogLevel,
    pub syslog: Flag,
    pub syslog_address: String,
    pub syslog_facility: Facility,
    #[serde(deserialize_with = "statsd")]
    pub statsd: Option<RawStatsd>,
}

impl Default for Raw {
    /// The original's defaults.
    fn default() -> Raw {
        Raw {
            remote_conns: Vec::new(),
            own_db: None,
            own_application_name: None,
            observers: Vec::new(),
            poll_observers_on_warning_only: Flag(false),
            http_auth_token: None,
            http_auth_scope: AuthScope::Mutating,
            http_reserved_clients: Vec::new(),
            http_tls_cert: None,
            http_tls_key: None,
            http_address: String::new(),
            http_port: Port(15000),
            db_poll_interval: Secs(5.0),
            db_poll_timeout: Secs(5.0),
            replication_state_check_interval: Secs(5.0),
            cluster_monitor_health_timeout_seconds: None,
            warning_replication_time_lag: Secs(30.0),
            max_failover_replication_time_lag: Secs(120.0),
            replication_catchup_timeout: Secs(300.0),
            missing_master_from_config_timeout: Secs(15.0),
            failover_on_disconnect: Flag(true),
            known_gone_nodes: Vec::new(),
            never_promote_these_nodes: Vec::new(),
            max_failover_lag_bytes: None,
            failover_priorities: Vec::new(),
            failover_requires_strict_majority: Flag(false),
            synchronous_mode: SynchronousMode::Off,
            synchronous_node_count: SyncCount(1),
            failover_fallback_timeout: Some(Secs(DEFAULT_FALLBACK_TIMEOUT)),
            maintenance_mode_file: PathBuf::from("/tmp/pglookout_maintenance_mode_file"),
            failover_command: String::new(),
            failover_command_timeout: Secs(120.0),
            failover_sleep_time: Secs(0.0),
            pause_alert_after: Secs(3600.0),
            fence_command: None,
            fence_command_budget: Secs(crate::timing::DEFAULT_FENCE_BUDGET_SECS),
            fence_command_timeout: None,
            fence_timeout: None,
            allow_fragile_lease: Flag(false),
            unreachable_master_failover_timeout: None,
            over_warning_limit_command: None,
            event_command: None,
            event_command_timeout: Secs(30.0),
            alert_file_dir: PathBuf::new(),
            json_state_file_path: PathBuf::from("/tmp/pglookout_state.json"),
            event_log_path: PathBuf::new(),
            autofollow: Flag(false),
            primary_conninfo_template: None,
            pg_data_directory: None,
            pg_start_command: String::new(),
            pg_stop_command: String::new(),
            rejoin_old_master: Flag(false),
            rejoin_source_conninfo_template: None,
            pg_rewind_command: "pg_rewind".to_string(),
            pg_rewind_timeout: Secs(600.0),
            pg_controldata_command: "pg_controldata".to_string(),
            reinit_command: None,
            reinit_timeout: Secs(3600.0),
            log_level: LogLevel::Debug,
            syslog: Flag(false),
            syslog_address: "/dev/log".to_string(),
            syslog_facility: Facility(18), // local2
            statsd: None,
        }
    }
}

/// An `observers` entry in its object form (the string form is the URL alone).
#[derive(Default, Deserialize)]
pub(super) struct RawObserver {
    pub url: Option<String>,
    pub token: Option<String>,
    pub ca_file: Option<PathBuf>,
}

/// `statsd`: both `host` and `port`, or neither (no statsd).
#[derive(Deserialize)]
pub(super) struct RawStatsd {
    pub host: Option<String>,
    pub port: Option<StatsdPort>,
    #[serde(default, deserialize_with = "tags")]
    pub tags: Vec<(String, String)>,
}

/// The top-level keys where `null` turns something off, unlike leaving the key out.
const NULL_TURNS_OFF: &[&str] = &["cluster_monitor_health_timeout_seconds", "failover_fallback_timeout"];

/// Reads a config document's top-level object into a [`Raw`] and the keys it does not know
/// (ignored; nested ones as `statsd.prefix`). A known key set to `null` reads as left out,
/// except the keys of [`NULL_TURNS_OFF`]. A value that does not fit is `Err((key, message))`:
/// the key's path (`remote_conns.pg2`, `statsd.port`) and what was expected and found, with
/// the item's number for an item of a list.
pub(super) fn read(obj: &Map<String, Value>) -> Result<(Raw, Vec<String>), (String, String)> {
    let known = known_keys();
    let doc: Map<String, Value> = obj
        .iter()
        .filter(|(k, v)| !v.is_null() || !known.contains(&k.as_str()) || NULL_TURNS_OFF.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let doc = Value::Object(doc);
    let mut unknown = Vec::new();
    let mut note = |path: serde_ignored::Path| unknown.push(ignored_key(&path));
    let raw = serde_path_to_error::deserialize(serde_ignored::Deserializer::new(&doc, &mut note));
    match raw {
        Ok(raw) => Ok((raw, unknown)),
        Err(e) => Err(key_and_message(&e)),
    }
}

/// The key and message of a value that did not fit: map keys joined with dots; a list's index
/// goes into the message as the item's number (from 1).
fn key_and_message(e: &serde_path_to_error::Error<serde_json::Error>) -> (String, String) {
    use serde_path_to_error::Segment;
    let mut keys = Vec::new();
    let mut item = None;
    for segment in e.path().iter() {
        match segment {
            Segment::Map { key } => keys.push(key.as_str()),
            Segment::Enum { variant } => keys.push(variant.as_str()),
            Segment::Seq { index } => item = Some(index + 1),
            Segment::Unknown => {}
        }
    }
    let key = if keys.is_empty() {
        "(top level)".to_string()
    } else {
        keys.join(".")
    };
    // serde shows a string found where a list or an object was expected in full: its middle
    // goes, what was expected (at the end) stays
    let message = clip_middle(&e.inner().to_string(), 300);
    match item {
        Some(n) => (key, format!("item {n}: {message}")),
        None => (key, message),
    }
}

/// An unknown key's path, written as the error keys are.
fn ignored_key(path: &serde_ignored::Path) -> String {
    use serde_ignored::Path as P;
    let join = |parent: &P, key: &str| match ignored_key(parent) {
        p if p.is_empty() => key.to_string(),
        p => format!("{p}.{key}"),
    };
    match path {
        P::Root => String::new(),
        P::Map { parent, key } => join(parent, key),
        P::Seq { parent, index } => join(parent, &index.to_string()),
        P::Some { parent } | P::NewtypeStruct { parent } | P::NewtypeVariant { parent } => ignored_key(parent),
    }
}

/// The top-level keys [`Raw`] reads: the field list serde's derive hands to
/// `deserialize_struct`, so it cannot drift from what is read.
pub fn known_keys() -> &'static [&'static str] {
    static KEYS: OnceLock<&'static [&'static str]> = OnceLock::new();
    KEYS.get_or_init(|| {
        let mut keys: &'static [&'static str] = &[];
        // FieldList takes the list, then stops the derive with an error
        let _ = Raw::deserialize(FieldList(&mut keys));
        keys
    })
}

/// A deserializer that only keeps the field list of the struct asked of it.
struct FieldList<'a>(&'a mut &'static [&'static str]);

impl<'de> Deserializer<'de> for FieldList<'_> {
    type Error = de::value::Error;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
        Err(de::Error::custom("not a struct"))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Self::Error> {
        *self.0 = fields;
        Err(de::Error::custom("only the field list is read"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option
        unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
    }
}

/// A value for messages: its JSON, cut at 60 characters.
fn got(v: &Value) -> String {
    clip(&v.to_string(), 60)
}

/// `s` without the middle when it is longer than `most` characters.
fn clip_middle(s: &str, most: usize) -> String {
    let n = s.chars().count();
    if n <= most {
        return s.to_string();
    }
    let head: String = s.chars().take(most / 2).collect();
    let tail: String = s.chars().skip(n - most / 2).collect();
    format!("{head}…{tail}")
}

fn clip(s: &str, most: usize) -> String {
    match s.char_indices().nth(most) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s.to_string(),
    }
}

/// Reads any value and keeps what `check` makes of it; anything else is "expected
/// {expected}, got {the value}", a wrong type or a number out of range alike.
fn checked<'de, D: Deserializer<'de>, T>(
    d: D,
    expected: &str,
    check: impl FnOnce(&Value) -> Option<T>,
) -> Result<T, D::Error> {
    let v = Value::deserialize(d)?;
    check(&v).ok_or_else(|| de::Error::custom(format!("expected {expected}, got {}", got(&v))))
}

/// `true` or `false`.
#[derive(Clone, Copy, Debug)]
pub(super) struct Flag(pub bool);

impl<'de> Deserialize<'de> for Flag {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        checked(d, "true or false", Value::as_bool).map(Flag)
    }
}

/// The kinds of duration of [`Secs`]: the loop's own periods (`db_poll_interval`,
/// `replication_state_check_interval`) and the probe deadline (`db_poll_timeout`) drive the CPU
/// and the network: below 50 ms they would spin, above a day (an hour for a probe) nothing is
/// watched any more. Every other duration is a threshold or a timeout (a span), from 10 ms to
/// ten years (larger values overflow durations), some of them 0 too.
pub(super) const PERIOD: u8 = 0;
pub(super) const PROBE: u8 = 1;
pub(super) const SPAN: u8 = 2;
pub(super) const SPAN_OR_ZERO: u8 = 3;

/// The largest number of seconds any duration key may hold.
const MAX_SECONDS: f64 = 10.0 * 365.0 * 86400.0;

/// A duration in seconds, within the range of its kind `K` ([`PERIOD`], ...).
#[derive(Clone, Copy, Debug)]
pub(super) struct Secs<const K: u8>(pub f64);

impl<'de, const K: u8> Deserialize<'de> for Secs<K> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (least, most, most_reads) = match K {
            PERIOD => (0.05, 86400.0, "1 day"),
            PROBE => (0.05, 3600.0, "1 hour"),
            _ => (0.01, MAX_SECONDS, "10 years"),
        };
        let zero = K == SPAN_OR_ZERO;
        let expected = format!(
            "a {} number of seconds, {}from {least} to {most} ({most_reads})",
            if zero { "non-negative" } else { "positive" },
            if zero { "0 or " } else { "" },
        );
        let fits = |n: &f64| (least..=most).contains(n) || (zero && *n == 0.0);
        checked(d, &expected, |v| v.as_f64().filter(fits)).map(Secs)
    }
}

/// A TCP port, 1-65535.
#[derive(Clone, Copy, Debug)]
pub(super) struct Port(pub u16);

fn port(n: Option<u64>) -> Option<u16> {
    n.and_then(|p| u16::try_from(p).ok()).filter(|p| *p > 0)
}

impl<'de> Deserialize<'de> for Port {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        checked(d, "a port number 1-65535", |v| port(v.as_u64())).map(Port)
    }
}

/// `statsd.port`: a port, also written as a string of digits (the original sends nothing
/// then; we accept it).
#[derive(Clone, Copy, Debug)]
pub(super) struct StatsdPort(pub u16);

impl<'de> Deserialize<'de> for StatsdPort {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        checked(d, "a port number 1-65535", |v| match v {
            Value::String(s) => port(s.parse().ok()),
            v => port(v.as_u64()),
        })
        .map(StatsdPort)
    }
}

/// A number of bytes: a whole number that fits an `i64` (as PostgreSQL's WAL positions do).
#[derive(Clone, Copy, Debug)]
pub(super) struct Bytes(pub u64);

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        checked(d, "a whole number of bytes", |v| {
            v.as_u64().filter(|n| *n <= i64::MAX as u64)
        })
        .map(Bytes)
    }
}

/// `synchronous_node_count`: how many standbys acknowledge each commit, 1 to 64.
#[derive(Clone, Copy, Debug)]
pub(super) struct SyncCount(pub u32);

impl<'de> Deserialize<'de> for SyncCount {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        checked(d, "a whole number of standbys, 1 to 64", |v| {
            v.as_u64().filter(|n| (1..=64).contains(n)).map(|n| n as u32)
        })
        .map(SyncCount)
    }
}

/// A syslog facility by name (any case), as its numeric code.
#[derive(Clone, Copy, Debug)]
pub(super) struct Facility(pub u8);

impl<'de> Deserialize<'de> for Facility {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let code = |name: &str| {
            SYSLOG_FACILITIES
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, code)| *code)
        };
        checked(d, "a syslog facility such as local2 or daemon", |v| {
            v.as_str().and_then(code)
        })
        .map(Facility)
    }
}

impl<'de> Deserialize<'de> for LogLevel {
    /// Python's level names, in any case, with their aliases.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        checked(d, "one of DEBUG, INFO, WARNING, ERROR, CRITICAL", |v| {
            match v.as_str()?.to_ascii_uppercase().as_str() {
                "DEBUG" | "NOTSET" => Some(LogLevel::Debug),
                "INFO" => Some(LogLevel::Info),
                "WARNING" | "WARN" => Some(LogLevel::Warning),
                "ERROR" => Some(LogLevel::Error),
                "CRITICAL" | "FATAL" => Some(LogLevel::Critical),
                _ => None,
            }
        })
    }
}

impl<'de> Deserialize<'de> for SynchronousMode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        checked(d, "\"off\", \"on\" or \"strict\"", |v| match v.as_str()? {
            "off" => Some(SynchronousMode::Off),
            "on" => Some(SynchronousMode::On),
            "strict" => Some(SynchronousMode::Strict),
            _ => None,
        })
    }
}

impl<'de> Deserialize<'de> for AuthScope {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        checked(d, "\"mutating\" or \"all\"", |v| match v.as_str()? {
            "mutating" => Some(AuthScope::Mutating),
            "all" => Some(AuthScope::All),
            _ => None,
        })
    }
}

/// A connection info in any of its forms, checked as libpq would before connecting (unknown
/// keywords, unusable values); errors name the keyword, never a value that could be a secret.
struct Conn(ConnInfo);

impl<'de> Deserialize<'de> for Conn {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        let ci = ConnInfo::from_json(&v).map_err(|e| {
            de::Error::custom(format!(
                "expected a libpq connection string, a postgres:// URI or an object: {e}"
            ))
        })?;
        ci.validate().map_err(de::Error::custom)?;
        Ok(Conn(ci))
    }
}

fn conninfo<'de, D: Deserializer<'de>>(d: D) -> Result<Option<ConnInfo>, D::Error> {
    Conn::deserialize(d).map(|c| Some(c.0))
}

fn conns<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(String, ConnInfo)>, D::Error> {
    let conns: Vec<(String, Conn)> = entries(d, "an object of node names to connection infos")?;
    Ok(conns.into_iter().map(|(name, c)| (name, c.0)).collect())
}

/// An `observers` entry: a URL string, or an object with `url` and optional `token` and
/// `ca_file`.
struct ObserverEntry(RawObserver);

impl<'de> Deserialize<'de> for ObserverEntry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ObserverEntry;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a URL string, or an object with \"url\" and optional \"token\" and \"ca_file\"")
            }
            fn visit_str<E: de::Error>(self, url: &str) -> Result<ObserverEntry, E> {
                Ok(ObserverEntry(RawObserver {
                    url: Some(url.to_string()),
                    ..RawObserver::default()
                }))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<ObserverEntry, A::Error> {
                RawObserver::deserialize(MapAccessDeserializer::new(map)).map(ObserverEntry)
            }
        }
        d.deserialize_any(V)
    }
}

fn observers<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(String, RawObserver)>, D::Error> {
    let observers: Vec<(String, ObserverEntry)> = entries(d, "an object of observer names to URLs")?;
    Ok(observers.into_iter().map(|(name, o)| (name, o.0)).collect())
}

/// An item of `http_reserved_clients`.
struct Net(IpNet);

impl<'de> Deserialize<'de> for Net {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        IpNet::parse(&text).map(Net).map_err(de::Error::custom)
    }
}

fn networks<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<IpNet>, D::Error> {
    let nets: Vec<Net> = list(
        d,
        "a list of IP addresses or networks such as [\"10.0.0.7\", \"10.0.1.0/24\"]",
    )?;
    Ok(nets.into_iter().map(|n| n.0).collect())
}

fn names<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    list(d, "a list of node names")
}

/// `failover_priorities`: any finite number per node, as the Python versions that have the key
/// read it.
fn priorities<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(String, f64)>, D::Error> {
    let entries: Vec<(String, Value)> = entries(d, "an object of node names to numbers")?;
    entries
        .into_iter()
        .map(|(name, v)| match v.as_f64().filter(|p| p.is_finite()) {
            // + 0.0 makes -0 a 0, equal to an unlisted node's, as Python compares them
            Some(p) => Ok((name, p + 0.0)),
            None => Err(de::Error::custom(format!(
                "expected a number for {name:?}, got {}",
                got(&v)
            ))),
        })
        .collect()
}

fn statsd<'de, D: Deserializer<'de>>(d: D) -> Result<Option<RawStatsd>, D::Error> {
    d.deserialize_map(ObjectOf("an object with \"host\" and \"port\"", PhantomData))
        .map(Some)
}

/// `statsd.tags`: string values as they are, any other value as its JSON.
fn tags<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(String, String)>, D::Error> {
    let entries: Vec<(String, Value)> = entries(d, "an object of tag names to values")?;
    Ok(entries
        .into_iter()
        .map(|(k, v)| match v {
            Value::String(s) => (k, s),
            other => (k, other.to_string()),
        })
        .collect())
}

/// A key whose `null` is not the key left out: `Some(None)`.
fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// A JSON object, entry by entry in the file's order, each value as `T`.
fn entries<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
    expected: &'static str,
) -> Result<Vec<(String, T)>, D::Error> {
    struct V<T>(&'static str, PhantomData<T>);
    impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
        type Value = Vec<(String, T)>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str(self.0)
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some(entry) = map.next_entry()? {
                out.push(entry);
            }
            Ok(out)
        }
    }
    d.deserialize_map(V(expected, PhantomData))
}

/// A JSON array, each item as `T`.
fn list<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D, expected: &'static str) -> Result<Vec<T>, D::Error> {
    struct V<T>(&'static str, PhantomData<T>);
    impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
        type Value = Vec<T>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str(self.0)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some(item) = seq.next_element()? {
                out.push(item);
            }
            Ok(out)
        }
    }
    d.deserialize_seq(V(expected, PhantomData))
}

/// A struct read from a JSON object only (serde's derive takes an array of its fields too).
struct ObjectOf<T>(&'static str, PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for ObjectOf<T> {
    type Value = T;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.0)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
        T::deserialize(MapAccessDeserializer::new(map))
    }
}

#[cfg(test)]
mod tests {
    use super::super::Config;
    use super::*;
    use std::path::Path;

    fn load(v: Value) -> Result<(Config, Vec<String>), String> {
        Config::from_value(Path::new("c.json"), &v).map_err(|e| e.to_string())
    }

    /// The known keys are the fields read: each loads without a warning (even as `null`),
    /// anything else is warned about by its path, nested keys included.
    #[test]
    fn known_keys_are_the_fields_read_and_the_rest_are_warned_about() {
        let keys = known_keys();
        assert!(keys.contains(&"remote_conns") && keys.contains(&"statsd"), "{keys:?}");
        assert!(NULL_TURNS_OFF.iter().all(|k| keys.contains(k)));
        for key in keys {
            let (_, warnings) = load(serde_json::json!({ *key: null })).expect("null loads");
            assert!(warnings.is_empty(), "{key}: {warnings:?}");
        }
        let (_, warnings) = load(serde_json::json!({
            "db_pol_interval": 1,
            "observers": {"o1": {"url": "http://o1:15000", "tokn": "t"}},
            "statsd": {"host": "h", "port": 8125, "prefix": "p"},
        }))
        .expect("loads");
        assert_eq!(
            warnings,
            [
                "c.json: unknown key \"db_pol_interval\" ignored",
                "c.json: unknown key \"observers.o1.tokn\" ignored",
                "c.json: unknown key \"statsd.prefix\" ignored",
            ]
        );
    }

    /// `null` is the default, except where it turns something off.
    #[test]
    fn null_is_the_default_except_where_it_turns_something_off() {
        let (c, _) = load(serde_json::json!({
            "db_poll_interval": null,
            "replication_state_check_interval": 3,
            "failover_on_disconnect": null,
            "json_state_file_path": null,
        }))
        .expect("loads");
        assert_eq!(c.db_poll_interval, 5.0);
        assert!(c.failover_on_disconnect);
        assert_eq!(c.json_state_file_path, Path::new("/tmp/pglookout_state.json"));
        assert_eq!(c.cluster_monitor_health_timeout_seconds, Some(6.0));
        assert_eq!(c.failover_fallback_timeout, Some(60.0));
        let (local2, _) = load(serde_json::json!({"syslog_facility": "LOCAL2"})).expect("loads");
        assert_eq!(c.syslog_facility, local2.syslog_facility);
        let (c, _) = load(serde_json::json!({
            "cluster_monitor_health_timeout_seconds": null,
            "failover_fallback_timeout": null,
        }))
        .expect("loads");
        assert_eq!(c.cluster_monitor_health_timeout_seconds, None);
        assert_eq!(c.failover_fallback_timeout, None);
    }

    /// Errors name the key's path, an item of a list by its number, and what was found.
    #[test]
    fn errors_name_the_path_the_item_and_what_was_found() {
        let e = load(serde_json::json!({"known_gone_nodes": ["pg1", 5]})).expect_err("refused");
        assert_eq!(
            e,
            "c.json: key \"known_gone_nodes\": item 2: invalid type: integer `5`, expected a string"
        );
        let e =
            load(serde_json::json!({"observers": {"o1": {"url": "http://o1", "ca_file": 7}}})).expect_err("refused");
        assert!(
            e.contains("key \"observers.o1.ca_file\": invalid type: integer `7`"),
            "{e}"
        );
        let e = load(serde_json::json!({"statsd": ["127.0.0.1", 8125]})).expect_err("refused");
        assert!(
            e.contains("key \"statsd\": invalid type: sequence, expected an object"),
            "{e}"
        );
        let e = load(serde_json::json!({"http_port": "x".repeat(100)})).expect_err("refused");
        assert!(
            e.ends_with(&format!("expected a port number 1-65535, got \"{}…", "x".repeat(59))),
            "{e}"
        );
        let e = load(serde_json::json!({"remote_conns": "x".repeat(1000)})).expect_err("refused");
        assert!(
            e.len() < 400 && e.contains("xx…xx") && e.ends_with("expected an object of node names to connection infos"),
            "{e}"
        );
    }
}
