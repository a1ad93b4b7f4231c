//! PostgreSQL connection strings, our own way.
//!
//! This module owns everything about a node's connection info: parsing libpq `key=value`
//! strings, `postgres://`/`postgresql://` URIs and the JSON object form that pglookout's config
//! allows; keeping *every* key in order (unknown ones too, such as `sslrootcert`, `passfile` or
//! `gssencmode`, so that a conninfo can be written back into `primary_conninfo` unchanged);
//! rendering, quoting and masking; and turning the keys that matter into a
//! [`tokio_postgres::Config`] plus an OpenSSL TLS connector with libpq's `sslmode` semantics.
//!
//! Why not `tokio_postgres::Config::from_str`: it is not libpq. It rejects `verify-ca` and
//! `verify-full` and every key it does not know, all of which `pg_basebackup -R` writes.
//!
//! What it must not do: let a password reach any output. [`ConnInfoError`] messages never
//! contain a password (nor any value that might be part of one), `Debug` shows the masked form,
//! and [`ConnInfo::masked`] is what logs, state files and HTTP answers should use. It does no
//! network I/O; [`ConnInfo::tls`] reads the certificate and key files it is pointed at.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::time::Duration;

use openssl::pkey::{PKey, Private};
use openssl::ssl::SslVersion;
use openssl::ssl::{SslConnector, SslConnectorBuilder, SslFiletype, SslMethod, SslVerifyMode};
use openssl::x509::store::{X509Lookup, X509Store, X509StoreBuilder};
use openssl::x509::verify::X509VerifyFlags;
use openssl::x509::X509;
use postgres_openssl::MakeTlsConnector;
use tokio_postgres::config as pg;

/// Every keyword libpq accepts in a connection string (the union of PostgreSQL 10 to 18), and
/// whether [`ConnInfo::masked`] shows its value. libpq refuses any other keyword, and matches
/// them case-sensitively: `Password=` is not `password=`. Shown: names, addresses, numbers,
/// modes and file paths, none of which can hold a secret. Hidden: `password`, `sslpassword`,
/// `options`, the OAuth and SCRAM keys (and any keyword not in this table); `dbname` is shown
/// unless it is itself a connection string (libpq expands such a `dbname`, password and all).
pub const LIBPQ_KEYWORDS: &[(&str, Masking)] = &[
    ("application_name", Show),
    ("channel_binding", Show),
    ("client_encoding", Show),
    ("connect_timeout", Show),
    ("dbname", Show),
    ("fallback_application_name", Show),
    ("gssdelegation", Show),
    ("gssencmode", Show),
    ("gsslib", Show),
    ("host", Show),
    ("hostaddr", Show),
    ("keepalives", Show),
    ("keepalives_count", Show),
    ("keepalives_idle", Show),
    ("keepalives_interval", Show),
    ("krbsrvname", Show),
    ("load_balance_hosts", Show),
    ("max_protocol_version", Show),
    ("min_protocol_version", Show),
    ("oauth_client_id", Hide),
    ("oauth_client_secret", Hide),
    ("oauth_issuer", Show),
    ("oauth_scope", Hide),
    ("options", Hide),
    ("passfile", Show),
    ("password", Hide),
    ("port", Show),
    ("replication", Show),
    ("require_auth", Show),
    ("requirepeer", Show),
    ("scram_client_key", Hide),
    ("scram_server_key", Hide),
    ("service", Show),
    ("ssl_max_protocol_version", Show),
    ("ssl_min_protocol_version", Show),
    ("sslcert", Show),
    ("sslcertmode", Show),
    ("sslcompression", Show),
    ("sslcrl", Show),
    ("sslcrldir", Show),
    ("sslkey", Show),
    ("sslkeylogfile", Hide),
    ("sslmode", Show),
    ("sslnegotiation", Show),
    ("sslpassword", Hide),
    ("sslrootcert", Show),
    ("sslsni", Show),
    ("target_session_attrs", Show),
    ("tcp_user_timeout", Show),
    ("user", Show),
];

/// Whether [`ConnInfo::masked`] shows a keyword's value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Masking {
    Show,
    Hide,
}
use Masking::{Hide, Show};

/// Whether libpq knows `key`.
pub fn libpq_keyword(key: &str) -> bool {
    LIBPQ_KEYWORDS.iter().any(|(k, _)| *k == key)
}

/// What [`ConnInfo::masked`] shows instead of a value it hides.
pub const HIDDEN: &str = "<hidden>";

/// libpq's compiled-in socket directory differs by build: Debian and Ubuntu use
/// `/var/run/postgresql`, upstream uses `/tmp`. When a conninfo names neither `host` nor
/// `hostaddr`, [`ConnInfo::pg_config`] tries both in that order rather than guess one.
pub const DEFAULT_SOCKET_DIRS: [&str; 2] = ["/var/run/postgresql", "/tmp"];

/// A parsed connection string: ordered `key -> value`, every key kept.
///
/// Setting an existing key replaces its value in place, so the order of first appearance is kept
/// and the last duplicate wins (as in libpq). Keys are expected to be non-empty and free of
/// whitespace and `=`; the parsers enforce that, [`ConnInfo::set`] trusts its caller.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct ConnInfo {
    entries: Vec<(String, String)>,
}

/// libpq's `sslmode` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum SslMode {
    Disable,
    Allow,
    /// libpq's default when `sslmode` is absent.
    #[default]
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    /// The libpq spelling, e.g. `verify-full`.
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SslMode {
    type Err = ConnInfoError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "disable" => SslMode::Disable,
            "allow" => SslMode::Allow,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => return Err(ConnInfoError::UnknownSslMode { value: s.to_owned() }),
        })
    }
}

/// Why a connection string could not be parsed or turned into a client configuration.
///
/// No message ever contains a password: values are only quoted for keys that cannot hold one,
/// and syntax errors point at a position or at the previous key instead of echoing input.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnInfoError {
    /// A word without `=` where a `key=value` pair was expected.
    #[error("connection string: expected key=value {position} (is a value containing spaces missing its quotes?)")]
    MissingEquals { position: String },
    #[error("connection string: empty key before '=' at byte {offset}")]
    EmptyKey { offset: usize },
    #[error("connection string: unterminated quoted value for key {key:?}")]
    UnterminatedQuote { key: String },
    #[error("connection info: invalid key {key:?}: {reason}")]
    InvalidKey { key: String, reason: &'static str },
    /// A keyword libpq does not know (it would refuse the whole string); `hint` names the
    /// keyword probably meant, if any. The value is never shown.
    #[error("connection info: unknown keyword {key:?}{hint} (libpq refuses it)")]
    UnknownKeyword { key: String, hint: String },
    #[error("connection URI: {reason}")]
    Uri { reason: String },
    #[error("connection URI: {problem} in {part}")]
    PercentEncoding { part: String, problem: &'static str },
    #[error("connection info must be a string or a JSON object, found {found}")]
    JsonType { found: &'static str },
    #[error("connection info: value of {key:?} must be a string, number or boolean, found {found}")]
    JsonValue { key: String, found: &'static str },
    #[error("connection info: invalid {key} {value:?}: expected {expected}")]
    InvalidValue {
        key: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error("connection info: {key}={value:?} is not supported: {reason}")]
    Unsupported {
        key: &'static str,
        value: String,
        reason: &'static str,
    },
    #[error("connection info: {0}")]
    Inconsistent(String),
    #[error("connection info: unknown sslmode {value:?} (expected disable, allow, prefer, require, verify-ca or verify-full)")]
    UnknownSslMode { value: String },
    #[error("connection info: sslrootcert=system requires sslmode=verify-full, found sslmode={mode}")]
    SystemRootCertNeedsVerifyFull { mode: SslMode },
    #[error("connection info: cannot read {key} {path:?}")]
    ReadFile {
        key: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("connection info: cannot load {key} {path:?}: {reason}")]
    LoadFile {
        key: &'static str,
        path: String,
        reason: String,
    },
    #[error("TLS setup failed while {step}")]
    Tls {
        step: &'static str,
        #[source]
        source: openssl::error::ErrorStack,
    },
}

/// libpq's `isspace()` in the C locale; `char::is_ascii_whitespace` misses vertical tab.
fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0B' | '\x0C')
}

/// Keys are written unquoted, so they must survive a render/parse round trip.
fn check_key(key: &str) -> Result<(), ConnInfoError> {
    let reason = if key.is_empty() {
        "keys must not be empty"
    } else if key.chars().any(|c| c.is_whitespace() || is_space(c)) {
        "keys must not contain whitespace"
    } else if key.contains('=') {
        "keys must not contain '='"
    } else {
        return Ok(());
    };
    Err(ConnInfoError::InvalidKey {
        key: key.to_owned(),
        reason,
    })
}

/// Quote a value for a libpq `key=value` string, only when needed: empty values and values with
/// whitespace, `'` or `\` are wrapped in `'...'` with `'` and `\` backslash-escaped.
pub fn quote_value(value: &str) -> String {
    let needs_quotes = value.is_empty()
        || value
            .chars()
            .any(|c| c.is_whitespace() || is_space(c) || c == '\'' || c == '\\');
    if !needs_quotes {
        return value.to_owned();
    }
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for c in value.chars() {
        if c == '\'' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('\'');
    out
}

impl ConnInfo {
    /// Parse a libpq `key=value` string, or a `postgres://` / `postgresql://` URI.
    pub fn parse(s: &str) -> Result<ConnInfo, ConnInfoError> {
        if let Some(rest) = s
            .strip_prefix("postgresql://")
            .or_else(|| s.strip_prefix("postgres://"))
        {
            parse_uri(rest)
        } else {
            parse_keyword_value(s)
        }
    }

    /// The config file form: a string (parsed as by [`ConnInfo::parse`]) or an object whose
    /// values are strings, numbers or booleans (`"port": 5432` becomes `"5432"`).
    pub fn from_json(v: &serde_json::Value) -> Result<ConnInfo, ConnInfoError> {
        use serde_json::Value;
        match v {
            Value::String(s) => ConnInfo::parse(s),
            Value::Object(map) => {
                let mut out = ConnInfo::default();
                for (key, value) in map {
                    check_key(key)?;
                    let value = match value {
                        Value::String(s) => s.clone(),
                        Value::Number(n) => n.to_string(),
                        Value::Bool(b) => b.to_string(),
                        other => {
                            return Err(ConnInfoError::JsonValue {
                                key: key.clone(),
                                found: json_type(other),
                            })
                        }
                    };
                    out.set(key, value);
                }
                Ok(out)
            }
            other => Err(ConnInfoError::JsonType {
                found: json_type(other),
            }),
        }
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// Replace the value in place if `key` exists, else append it.
    pub fn set(&mut self, key: &str, value: impl Into<String>) {
        let value = value.into();
        match self.entries.iter_mut().find(|(k, _)| k == key) {
            Some(entry) => entry.1 = value,
            None => self.entries.push((key.to_owned(), value)),
        }
    }

    pub fn remove(&mut self, key: &str) -> Option<String> {
        let index = self.entries.iter().position(|(k, _)| k == key)?;
        Some(self.entries.remove(index).1)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        self.entries.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The libpq `key=value` form, keys in order, values quoted only where needed. Contains the
    /// password: for anything that is logged or shown, use [`ConnInfo::masked`].
    pub fn render(&self) -> String {
        let mut out = String::new();
        for (key, value) in &self.entries {
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(key);
            out.push('=');
            out.push_str(&quote_value(value));
        }
        out
    }

    /// What may be logged or shown: [`ConnInfo::render`] without `password`, every value not
    /// known to be harmless (see [`LIBPQ_KEYWORDS`]) replaced by [`HIDDEN`], followed by
    /// `"; hidden password"` or `"; no password"` as in the Python original.
    pub fn masked(&self) -> String {
        let mut shown = self.clone();
        let state = if shown.remove("password").is_some() {
            "hidden"
        } else {
            "no"
        };
        for (key, value) in &mut shown.entries {
            if !shows_value(key, value) {
                *value = HIDDEN.to_owned();
            }
        }
        format!("{}; {state} password", shown.render())
    }

    /// What libpq would refuse before connecting, checked without connecting: a keyword it
    /// does not know (named, with the one probably meant; the value is never shown), and a
    /// value the client cannot use (`port=99999`, `sslmode=bogus`, `connect_timeout=abc`,
    /// an unknown `ssl_min_protocol_version`...). Files (`sslrootcert`, ...) are not read.
    pub fn validate(&self) -> Result<(), ConnInfoError> {
        for (key, _) in &self.entries {
            if !libpq_keyword(key) {
                return Err(ConnInfoError::UnknownKeyword {
                    key: key.clone(),
                    hint: keyword_hint(key),
                });
            }
        }
        self.pg_config()?;
        for key in ["ssl_min_protocol_version", "ssl_max_protocol_version"] {
            if let Some(value) = self.get(key) {
                tls_version(key, value)?;
            }
        }
        for (key, allowed, expected) in [
            (
                "gssencmode",
                &["disable", "prefer", "require"][..],
                "disable, prefer or require",
            ),
            (
                "sslcertmode",
                &["disable", "allow", "require"][..],
                "disable, allow or require",
            ),
        ] {
            if let Some(value) = self.get(key).filter(|v| !allowed.contains(v)) {
                return Err(invalid(key, value, expected));
            }
        }
        for (key, expected) in [("sslsni", "0 or 1"), ("sslcompression", "0 or 1")] {
            self.int(key, expected)?;
        }
        Ok(())
    }

    /// The effective `sslmode`: `Prefer` when absent (libpq's default), `VerifyFull` when absent
    /// and `sslrootcert=system` (libpq 16). An unknown value, or a mode weaker than `verify-full`
    /// with `sslrootcert=system`, is an error.
    pub fn try_ssl_mode(&self) -> Result<SslMode, ConnInfoError> {
        let system_roots = self.get("sslrootcert") == Some("system");
        let mode = match self.get("sslmode") {
            None if system_roots => SslMode::VerifyFull,
            None => SslMode::Prefer,
            Some(value) => value.parse()?,
        };
        if system_roots && mode != SslMode::VerifyFull {
            return Err(ConnInfoError::SystemRootCertNeedsVerifyFull { mode });
        }
        Ok(mode)
    }

    /// [`ConnInfo::try_ssl_mode`], with an invalid setting reported as `VerifyFull`, the strictest
    /// mode, so that a question like "is TLS required?" fails safe. [`ConnInfo::pg_config`] and
    /// [`ConnInfo::tls`] reject invalid settings.
    pub fn ssl_mode(&self) -> SslMode {
        self.try_ssl_mode().unwrap_or(SslMode::VerifyFull)
    }

    /// The tokio-postgres configuration for the keys it understands; other keys are ignored
    /// (TLS files are [`ConnInfo::tls`]'s business).
    ///
    /// libpq defaults applied here: no `host`/`hostaddr` means the default Unix socket
    /// directories ([`DEFAULT_SOCKET_DIRS`], tried in order); no `user` means the effective OS
    /// user; `connect_timeout` below 2 seconds becomes 2, zero or negative means none;
    /// `fallback_application_name` applies when `application_name` is absent; `keepalives_count`
    /// is tokio-postgres' `keepalives_retries`; `tcp_user_timeout` is in milliseconds.
    pub fn pg_config(&self) -> Result<tokio_postgres::Config, ConnInfoError> {
        let mut cfg = tokio_postgres::Config::new();

        let hosts = non_empty_list(self.get("host"), "host")?;
        let hostaddrs = non_empty_list(self.get("hostaddr"), "hostaddr")?;
        let ports = self.get("port").filter(|p| !p.is_empty());
        let port_count = ports.map_or(0, |p| p.split(',').count());

        if !hosts.is_empty() && !hostaddrs.is_empty() && hosts.len() != hostaddrs.len() {
            return Err(ConnInfoError::Inconsistent(format!(
                "host lists {} entries but hostaddr lists {}",
                hosts.len(),
                hostaddrs.len()
            )));
        }
        let targets = hosts.len().max(hostaddrs.len());
        if targets == 0 {
            if port_count > 1 {
                return Err(ConnInfoError::Inconsistent(format!(
                    "port lists {port_count} entries but no host or hostaddr is given"
                )));
            }
            for dir in DEFAULT_SOCKET_DIRS {
                cfg.host(dir);
            }
        } else if port_count > 1 && port_count != targets {
            return Err(ConnInfoError::Inconsistent(format!(
                "port lists {port_count} entries but there are {targets} hosts"
            )));
        }
        for host in hosts {
            // tokio-postgres treats a host starting with '/' as a Unix socket directory.
            cfg.host(host);
        }
        for addr in hostaddrs {
            let ip = addr
                .trim()
                .parse::<IpAddr>()
                .map_err(|_| invalid("hostaddr", addr, "a comma-separated list of IP addresses"))?;
            cfg.hostaddr(ip);
        }
        if let Some(ports) = ports {
            for port in ports.split(',') {
                let port = port.trim();
                if port.is_empty() {
                    cfg.port(5432);
                } else {
                    let n = port
                        .parse::<u16>()
                        .ok()
                        .filter(|n| *n != 0)
                        .ok_or_else(|| invalid("port", ports, "a comma-separated list of port numbers"))?;
                    cfg.port(n);
                }
            }
        }

        match self.get("user") {
            Some(user) => {
                cfg.user(user);
            }
            None => {
                if let Some(user) = os_user_name() {
                    cfg.user(user);
                }
            }
        }
        if let Some(password) = self.get("password") {
            cfg.password(password);
        }
        if let Some(dbname) = self.get("dbname") {
            cfg.dbname(dbname);
        }
        if let Some(options) = self.get("options") {
            cfg.options(options);
        }
        if let Some(name) = self
            .get("application_name")
            .or_else(|| self.get("fallback_application_name"))
        {
            cfg.application_name(name);
        }

        if let Some(secs) = self.int("connect_timeout", "a number of seconds")? {
            if secs > 0 {
                // libpq: "it is not recommended to use a timeout of less than 2 seconds", and
                // it enforces that minimum.
                cfg.connect_timeout(Duration::from_secs(secs.max(2).unsigned_abs()));
            }
        }
        if let Some(ms) = self.int("tcp_user_timeout", "a number of milliseconds")? {
            if ms > 0 {
                cfg.tcp_user_timeout(Duration::from_millis(ms.unsigned_abs()));
            }
        }
        if let Some(on) = self.int("keepalives", "0 or 1")? {
            cfg.keepalives(on != 0);
        }
        if let Some(secs) = self.int("keepalives_idle", "a number of seconds")? {
            if secs > 0 {
                cfg.keepalives_idle(Duration::from_secs(secs.unsigned_abs()));
            }
        }
        if let Some(secs) = self.int("keepalives_interval", "a number of seconds")? {
            if secs > 0 {
                cfg.keepalives_interval(Duration::from_secs(secs.unsigned_abs()));
            }
        }
        if let Some(count) = self.int("keepalives_count", "a number")? {
            if count > 0 {
                cfg.keepalives_retries(u32::try_from(count).unwrap_or(u32::MAX));
            }
        }

        if let Some(value) = self.get("target_session_attrs") {
            let attrs = match value {
                "any" => pg::TargetSessionAttrs::Any,
                "read-write" => pg::TargetSessionAttrs::ReadWrite,
                "read-only" => pg::TargetSessionAttrs::ReadOnly,
                "primary" | "standby" | "prefer-standby" => {
                    return Err(ConnInfoError::Unsupported {
                        key: "target_session_attrs",
                        value: value.to_owned(),
                        reason: "the PostgreSQL client library only knows any, read-write and read-only",
                    })
                }
                _ => {
                    return Err(invalid(
                        "target_session_attrs",
                        value,
                        "any, read-write, read-only, primary, standby or prefer-standby",
                    ))
                }
            };
            cfg.target_session_attrs(attrs);
        }
        if let Some(value) = self.get("channel_binding") {
            let binding = match value {
                "disable" => pg::ChannelBinding::Disable,
                "prefer" => pg::ChannelBinding::Prefer,
                "require" => pg::ChannelBinding::Require,
                _ => return Err(invalid("channel_binding", value, "disable, prefer or require")),
            };
            cfg.channel_binding(binding);
        }
        if let Some(value) = self.get("load_balance_hosts") {
            let balance = match value {
                "disable" => pg::LoadBalanceHosts::Disable,
                "random" => pg::LoadBalanceHosts::Random,
                _ => return Err(invalid("load_balance_hosts", value, "disable or random")),
            };
            cfg.load_balance_hosts(balance);
        }
        if let Some(value) = self.get("sslnegotiation") {
            let negotiation = match value {
                "postgres" => pg::SslNegotiation::Postgres,
                "direct" => pg::SslNegotiation::Direct,
                _ => return Err(invalid("sslnegotiation", value, "postgres or direct")),
            };
            cfg.ssl_negotiation(negotiation);
        }

        // Whether to ask for TLS; what to verify is decided by `tls()`.
        cfg.ssl_mode(match self.try_ssl_mode()? {
            SslMode::Disable => pg::SslMode::Disable,
            // tokio-postgres has no "allow" (try plaintext first); "prefer" is the nearest.
            SslMode::Allow | SslMode::Prefer => pg::SslMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => pg::SslMode::Require,
        });
        Ok(cfg)
    }

    /// The TLS connector for `sslmode`, `sslrootcert`, `sslcrl`, `sslcrldir`, `sslcert`,
    /// `sslkey`, `sslpassword`, `sslsni`, `ssl_min_protocol_version`,
    /// `ssl_max_protocol_version` and `sslnegotiation`.
    ///
    /// - `disable`: a plain connector that tokio-postgres will not use.
    /// - `allow`, `prefer`: encryption without certificate checks.
    /// - `require`: the same, unless `sslrootcert` is given: then, as in libpq, like `verify-ca`.
    /// - `verify-ca`: the server's chain must lead to `sslrootcert` (or the system's trusted
    ///   roots when it is absent or `system`), no hostname check.
    /// - `verify-full`: as `verify-ca`, and the certificate must match the host name.
    ///
    /// Deviation from libpq: the default files under `~/.postgresql/` are not consulted, and a
    /// file that is named but cannot be read is an error (libpq skips a missing CRL silently).
    pub fn tls(&self) -> Result<MakeTlsConnector, ConnInfoError> {
        let mode = self.try_ssl_mode()?;
        let mut builder =
            SslConnector::builder(SslMethod::tls_client()).map_err(tls_err("creating the TLS context"))?;
        if mode == SslMode::Disable {
            return Ok(MakeTlsConnector::new(builder.build()));
        }

        let root = self.get("sslrootcert").filter(|r| !r.is_empty());
        let (verify_peer, verify_host) = match mode {
            SslMode::Disable | SslMode::Allow | SslMode::Prefer => (false, false),
            SslMode::Require => (root.is_some(), false),
            SslMode::VerifyCa => (true, false),
            SslMode::VerifyFull => (true, true),
        };
        if verify_peer {
            builder.set_verify(SslVerifyMode::PEER);
            builder.set_cert_store(self.trust_store(root)?);
        } else {
            builder.set_verify(SslVerifyMode::NONE);
        }

        // libpq 14+ defaults to TLSv1.2 as the minimum.
        let min = self.get("ssl_min_protocol_version").unwrap_or("TLSv1.2");
        builder
            .set_min_proto_version(tls_version("ssl_min_protocol_version", min)?)
            .map_err(tls_err("setting ssl_min_protocol_version"))?;
        if let Some(max) = self.get("ssl_max_protocol_version") {
            builder
                .set_max_proto_version(tls_version("ssl_max_protocol_version", max)?)
                .map_err(tls_err("setting ssl_max_protocol_version"))?;
        }

        self.client_certificate(&mut builder)?;

        if self.get("sslnegotiation") == Some("direct") {
            postgres_openssl::set_postgresql_alpn(&mut builder)
                .map_err(tls_err("setting ALPN for sslnegotiation=direct"))?;
        }

        let sni = !matches!(self.get("sslsni").map(str::trim), Some("0"));
        let mut connector = MakeTlsConnector::new(builder.build());
        connector.set_callback(move |config, _domain| {
            config.set_verify_hostname(verify_host);
            config.set_use_server_name_indication(sni);
            Ok(())
        });
        Ok(connector)
    }

    fn trust_store(&self, root: Option<&str>) -> Result<X509Store, ConnInfoError> {
        let mut store = X509StoreBuilder::new().map_err(tls_err("creating the trust store"))?;
        match root {
            None | Some("system") => store
                .set_default_paths()
                .map_err(tls_err("loading the system's trusted roots"))?,
            Some(path) => {
                let pem = read_file("sslrootcert", path)?;
                let certs = X509::stack_from_pem(&pem).map_err(|e| load_err("sslrootcert", path, e.to_string()))?;
                if certs.is_empty() {
                    return Err(load_err("sslrootcert", path, "no PEM certificate found"));
                }
                for cert in certs {
                    store
                        .add_cert(cert)
                        .map_err(|e| load_err("sslrootcert", path, e.to_string()))?;
                }
            }
        }
        let mut check_crls = false;
        if let Some(path) = self.get("sslcrl").filter(|p| !p.is_empty()) {
            check_path("sslcrl", path)?;
            std::fs::File::open(path).map_err(|source| ConnInfoError::ReadFile {
                key: "sslcrl",
                path: path.to_owned(),
                source,
            })?;
            store
                .add_lookup(X509Lookup::file())
                .and_then(|lookup| lookup.load_crl_file(path, SslFiletype::PEM))
                .map_err(|e| load_err("sslcrl", path, e.to_string()))?;
            check_crls = true;
        }
        if let Some(path) = self.get("sslcrldir").filter(|p| !p.is_empty()) {
            check_path("sslcrldir", path)?;
            std::fs::read_dir(path).map_err(|source| ConnInfoError::ReadFile {
                key: "sslcrldir",
                path: path.to_owned(),
                source,
            })?;
            store
                .add_lookup(X509Lookup::hash_dir())
                .and_then(|lookup| lookup.add_dir(path, SslFiletype::PEM))
                .map_err(|e| load_err("sslcrldir", path, e.to_string()))?;
            check_crls = true;
        }
        if check_crls {
            store
                .set_flags(X509VerifyFlags::CRL_CHECK | X509VerifyFlags::CRL_CHECK_ALL)
                .map_err(tls_err("enabling CRL checks"))?;
        }
        Ok(store.build())
    }

    fn client_certificate(&self, builder: &mut SslConnectorBuilder) -> Result<(), ConnInfoError> {
        // As in libpq, a key without a certificate is not used.
        let Some(cert_path) = self.get("sslcert").filter(|p| !p.is_empty()) else {
            return Ok(());
        };
        let Some(key_path) = self.get("sslkey").filter(|p| !p.is_empty()) else {
            return Err(ConnInfoError::Inconsistent(
                "sslcert is given without sslkey (the default ~/.postgresql/postgresql.key is not consulted)"
                    .to_owned(),
            ));
        };
        let pem = read_file("sslcert", cert_path)?;
        let mut chain = X509::stack_from_pem(&pem)
            .map_err(|e| load_err("sslcert", cert_path, e.to_string()))?
            .into_iter();
        let leaf = chain
            .next()
            .ok_or_else(|| load_err("sslcert", cert_path, "no PEM certificate found"))?;
        builder
            .set_certificate(&leaf)
            .map_err(|e| load_err("sslcert", cert_path, e.to_string()))?;
        for intermediate in chain {
            builder
                .add_extra_chain_cert(intermediate)
                .map_err(|e| load_err("sslcert", cert_path, e.to_string()))?;
        }

        let key_bytes = read_file("sslkey", key_path)?;
        let key = self.private_key(&key_bytes, key_path)?;
        builder
            .set_private_key(&key)
            .map_err(|e| load_err("sslkey", key_path, e.to_string()))?;
        builder
            .check_private_key()
            .map_err(|_| load_err("sslkey", key_path, "the key does not match the sslcert certificate"))?;
        Ok(())
    }

    fn private_key(&self, bytes: &[u8], path: &str) -> Result<PKey<Private>, ConnInfoError> {
        let pem = match self.get("sslpassword").filter(|p| !p.is_empty()) {
            Some(passphrase) => PKey::private_key_from_pem_passphrase(bytes, passphrase.as_bytes()),
            // An explicit callback that supplies no passphrase, so that OpenSSL never prompts
            // on a terminal for an encrypted key.
            None => PKey::private_key_from_pem_callback(bytes, |_| Ok(0)),
        };
        pem.or_else(|_| PKey::private_key_from_der(bytes)).map_err(|_| {
            load_err(
                "sslkey",
                path,
                "not a PEM or DER private key, or encrypted and sslpassword is missing or wrong",
            )
        })
    }

    /// An integer-valued key, parsed like libpq (surrounding whitespace allowed).
    fn int(&self, key: &'static str, expected: &'static str) -> Result<Option<i64>, ConnInfoError> {
        match self.get(key) {
            None => Ok(None),
            Some(value) => value
                .trim()
                .parse::<i64>()
                .map(Some)
                .map_err(|_| invalid(key, value, expected)),
        }
    }
}

impl FromStr for ConnInfo {
    type Err = ConnInfoError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ConnInfo::parse(s)
    }
}

/// Shows the masked form: a `{:?}` of a config must not leak a password.
impl fmt::Debug for ConnInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ConnInfo({:?})", self.masked())
    }
}

/// Whether [`ConnInfo::masked`] may show this value.
fn shows_value(key: &str, value: &str) -> bool {
    if !LIBPQ_KEYWORDS.contains(&(key, Show)) {
        return false;
    }
    // libpq expands a dbname that looks like a connection string or URI
    !(key == "dbname"
        && (value.contains('=') || value.starts_with("postgres://") || value.starts_with("postgresql://")))
}

/// For an unknown keyword: the keyword meant, when it differs only in case or by at most two
/// edits (`Password`, `pasword`, `passwd`), as `: did you mean "password"?`; else nothing.
fn keyword_hint(key: &str) -> String {
    let lower = key.to_ascii_lowercase();
    let best = LIBPQ_KEYWORDS
        .iter()
        .map(|(k, _)| (edit_distance(&lower, k), *k))
        .filter(|(d, _)| *d <= 2)
        .min();
    match best {
        Some((0, k)) => format!(": libpq keywords are lowercase, did you mean {k:?}?"),
        Some((_, k)) => format!(": did you mean {k:?}?"),
        None => String::new(),
    }
}

/// Levenshtein distance, for [`keyword_hint`] (keys are short).
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = if ca == *cb {
                diagonal
            } else {
                1 + diagonal.min(above).min(row[j])
            };
            diagonal = above;
        }
    }
    row[b.len()]
}

fn json_type(v: &serde_json::Value) -> &'static str {
    use serde_json::Value;
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Only for keys that cannot hold a password: the value is quoted in the message.
fn invalid(key: &'static str, value: &str, expected: &'static str) -> ConnInfoError {
    ConnInfoError::InvalidValue {
        key,
        value: value.to_owned(),
        expected,
    }
}

fn tls_err(step: &'static str) -> impl FnOnce(openssl::error::ErrorStack) -> ConnInfoError {
    move |source| ConnInfoError::Tls { step, source }
}

fn load_err(key: &'static str, path: &str, reason: impl Into<String>) -> ConnInfoError {
    ConnInfoError::LoadFile {
        key,
        path: path.to_owned(),
        reason: reason.into(),
    }
}

/// OpenSSL's file APIs take C strings (and the openssl crate panics on an interior NUL).
fn check_path(key: &'static str, path: &str) -> Result<(), ConnInfoError> {
    if path.contains('\0') {
        return Err(load_err(key, path, "the path contains a NUL byte"));
    }
    Ok(())
}

fn read_file(key: &'static str, path: &str) -> Result<Vec<u8>, ConnInfoError> {
    std::fs::read(path).map_err(|source| ConnInfoError::ReadFile {
        key,
        path: path.to_owned(),
        source,
    })
}

fn tls_version(key: &'static str, value: &str) -> Result<Option<SslVersion>, ConnInfoError> {
    Ok(Some(match value {
        "" => return Ok(None),
        "TLSv1" => SslVersion::TLS1,
        "TLSv1.1" => SslVersion::TLS1_1,
        "TLSv1.2" => SslVersion::TLS1_2,
        "TLSv1.3" => SslVersion::TLS1_3,
        _ => return Err(invalid(key, value, "TLSv1, TLSv1.1, TLSv1.2 or TLSv1.3")),
    }))
}

/// A comma-separated list (`host`, `hostaddr`); absent or empty means no entries.
fn non_empty_list<'a>(value: Option<&'a str>, key: &'static str) -> Result<Vec<&'a str>, ConnInfoError> {
    let Some(value) = value.filter(|v| !v.is_empty()) else {
        return Ok(Vec::new());
    };
    let list: Vec<&str> = value.split(',').collect();
    if list.iter().any(|entry| entry.trim().is_empty()) {
        return Err(invalid(key, value, "a comma-separated list without empty entries"));
    }
    Ok(list)
}

/// libpq's default user is the effective OS user.
fn os_user_name() -> Option<String> {
    let uid = nix::unistd::Uid::effective();
    nix::unistd::User::from_uid(uid).ok().flatten().map(|user| user.name)
}

/// libpq's `key = value` syntax: whitespace around `=` allowed, values optionally single-quoted,
/// a backslash escapes the next character in quoted and unquoted values alike.
fn parse_keyword_value(s: &str) -> Result<ConnInfo, ConnInfoError> {
    let mut out = ConnInfo::default();
    let mut chars = s.char_indices().peekable();
    let mut previous_key: Option<String> = None;
    let skip_spaces = |chars: &mut std::iter::Peekable<std::str::CharIndices<'_>>| {
        while chars.next_if(|&(_, c)| is_space(c)).is_some() {}
    };
    loop {
        skip_spaces(&mut chars);
        let Some(&(key_start, _)) = chars.peek() else {
            break;
        };
        let mut key = String::new();
        while let Some((_, c)) = chars.next_if(|&(_, c)| c != '=' && !is_space(c)) {
            key.push(c);
        }
        skip_spaces(&mut chars);
        if chars.next_if(|&(_, c)| c == '=').is_none() {
            // Never echo the word itself: it may be the tail of an unquoted password.
            let position = match &previous_key {
                Some(prev) => format!("after the value of {prev:?}"),
                None => "at the start".to_owned(),
            };
            return Err(ConnInfoError::MissingEquals { position });
        }
        if key.is_empty() {
            return Err(ConnInfoError::EmptyKey { offset: key_start });
        }
        skip_spaces(&mut chars);
        let mut value = String::new();
        if chars.next_if(|&(_, c)| c == '\'').is_some() {
            loop {
                match chars.next() {
                    None => return Err(ConnInfoError::UnterminatedQuote { key }),
                    Some((_, '\'')) => break,
                    Some((_, '\\')) => match chars.next() {
                        Some((_, c)) => value.push(c),
                        None => return Err(ConnInfoError::UnterminatedQuote { key }),
                    },
                    Some((_, c)) => value.push(c),
                }
            }
        } else {
            while let Some((_, c)) = chars.next_if(|&(_, c)| !is_space(c)) {
                if c == '\\' {
                    // libpq drops a trailing lone backslash.
                    if let Some((_, escaped)) = chars.next() {
                        value.push(escaped);
                    }
                } else {
                    value.push(c);
                }
            }
        }
        out.set(&key, value);
        previous_key = Some(key);
    }
    Ok(out)
}

/// `postgres[ql]://[user[:password]@][host[:port][,host[:port]...]][/dbname][?key=value&...]`,
/// `rest` being what follows the scheme. As libpq: every part optional and percent-decoded,
/// `[...]` for IPv6 hosts, empty user, password and dbname are not stored, `ssl=true` means
/// `sslmode=require`, query parameters are applied in order (the last duplicate wins).
/// Unlike libpq, the authority ends at the first `/` or `?` (RFC 3986), so a `@` in the query is
/// not mistaken for the end of a user name.
fn parse_uri(rest: &str) -> Result<ConnInfo, ConnInfoError> {
    let mut out = ConnInfo::default();
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);

    let hostspec = match authority.split_once('@') {
        Some((userinfo, hostspec)) => {
            let (user, password) = match userinfo.split_once(':') {
                Some((user, password)) => (user, Some(password)),
                None => (userinfo, None),
            };
            if !user.is_empty() {
                out.set("user", percent_decode(user, "the user name")?);
            }
            if let Some(password) = password.filter(|p| !p.is_empty()) {
                out.set("password", percent_decode(password, "the password")?);
            }
            hostspec
        }
        None => authority,
    };

    let mut hosts = Vec::new();
    let mut ports = Vec::new();
    for (index, entry) in hostspec.split(',').enumerate() {
        let (host, port) = if let Some(bracketed) = entry.strip_prefix('[') {
            let Some((host, after)) = bracketed.split_once(']') else {
                return Err(uri_err(format!(
                    "missing ']' after the IPv6 address of host #{}",
                    index + 1
                )));
            };
            if host.is_empty() {
                return Err(uri_err(format!("empty IPv6 address in host #{}", index + 1)));
            }
            let port = match after {
                "" => None,
                _ => Some(after.strip_prefix(':').ok_or_else(|| {
                    uri_err(format!(
                        "unexpected text after ']' in host #{} (expected ':port')",
                        index + 1
                    ))
                })?),
            };
            (host, port)
        } else {
            match entry.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (entry, None),
            }
        };
        hosts.push(percent_decode(host, "a host")?);
        ports.push(percent_decode(port.unwrap_or(""), "a port")?);
    }
    if hosts.iter().any(|h| !h.is_empty()) {
        out.set("host", hosts.join(","));
    }
    if ports.iter().any(|p| !p.is_empty()) {
        out.set("port", ports.join(","));
    }

    let (path, query) = match tail.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (tail, None),
    };
    if let Some(dbname) = path.strip_prefix('/').filter(|d| !d.is_empty()) {
        out.set("dbname", percent_decode(dbname, "the database name")?);
    }

    for (index, param) in query.unwrap_or("").split('&').filter(|p| !p.is_empty()).enumerate() {
        let Some((key, value)) = param.split_once('=') else {
            return Err(uri_err(format!(
                "query parameter #{} has no '=' (expected key=value)",
                index + 1
            )));
        };
        let key = percent_decode(key, "a query parameter name")?;
        check_key(&key)?;
        let value = percent_decode(value, &format!("the value of query parameter {key:?}"))?;
        // libpq accepts JDBC's ssl=true.
        if key == "ssl" && value == "true" {
            out.set("sslmode", "require");
        } else {
            out.set(&key, value);
        }
    }
    Ok(out)
}

fn uri_err(reason: String) -> ConnInfoError {
    ConnInfoError::Uri { reason }
}

fn percent_decode(s: &str, part: &str) -> Result<String, ConnInfoError> {
    if !s.contains('%') {
        return Ok(s.to_owned());
    }
    let fail = |problem| ConnInfoError::PercentEncoding {
        part: part.to_owned(),
        problem,
    };
    let hex = |b: Option<&u8>| b.and_then(|b| (*b as char).to_digit(16));
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let (Some(hi), Some(lo)) = (hex(bytes.get(i + 1)), hex(bytes.get(i + 2))) else {
                return Err(fail("invalid percent-encoding"));
            };
            let decoded = (hi * 16 + lo) as u8;
            if decoded == 0 {
                return Err(fail("forbidden %00"));
            }
            out.push(decoded);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| fail("percent-decoded bytes that are not UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn map(ci: &ConnInfo) -> BTreeMap<String, String> {
        ci.iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect()
    }

    fn pairs(list: &[(&str, &str)]) -> BTreeMap<String, String> {
        list.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn err(s: &str) -> String {
        ConnInfo::parse(s).unwrap_err().to_string()
    }

    /// The Python original's test_connection_info: three spellings of the same connection.
    #[test]
    fn python_original_url_libpq_and_dict_agree() {
        let url = ConnInfo::parse(
            "postgres://hannu:secret@dbhost.local:5555/abc?replication=true&sslmode=foobar&sslmode=require",
        )
        .unwrap();
        let libpq = ConnInfo::parse(
            "dbname='abc' user=hannu password='secret' host='dbhost.local' port=5555 replication=true sslmode=require",
        )
        .unwrap();
        let libpq_newlines = ConnInfo::parse(
            "dbname='abc'\nuser=hannu\npassword='secret'\nhost='dbhost.local'\nport=5555\nreplication=true\nsslmode=require\n",
        )
        .unwrap();
        let json = ConnInfo::from_json(&serde_json::json!({
            "user": "hannu", "password": "secret", "host": "dbhost.local", "port": 5555,
            "dbname": "abc", "replication": "true", "sslmode": "require",
        }))
        .unwrap();
        let expected = pairs(&[
            ("user", "hannu"),
            ("password", "secret"),
            ("host", "dbhost.local"),
            ("port", "5555"),
            ("dbname", "abc"),
            ("replication", "true"),
            ("sslmode", "require"),
        ]);
        assert_eq!(map(&url), expected);
        assert_eq!(map(&libpq), expected);
        assert_eq!(map(&libpq_newlines), expected);
        assert_eq!(map(&json), expected);
        // A JSON string is parsed like any other connection string.
        let json_string = ConnInfo::from_json(&serde_json::json!(libpq.render())).unwrap();
        assert_eq!(json_string, libpq);
    }

    #[test]
    fn render_round_trip_with_quote_and_equals() {
        let ci = ConnInfo::parse(r"user='marcel o\'bri=an'").unwrap();
        assert_eq!(ci.get("user"), Some("marcel o'bri=an"));
        assert_eq!(ci.render(), r"user='marcel o\'bri=an'");
        assert_eq!(ConnInfo::parse(&ci.render()).unwrap(), ci);
    }

    #[test]
    fn keyword_value_parsing_table() {
        let cases: &[(&str, &[(&str, &str)])] = &[
            ("", &[]),
            ("   \n\t ", &[]),
            ("a=b", &[("a", "b")]),
            ("a = b  c =d", &[("a", "b"), ("c", "d")]),
            ("foo=bar bar='\\'x'", &[("foo", "bar"), ("bar", "'x")]),
            ("a=x\\ y", &[("a", "x y")]),
            ("a='x\\\\y'", &[("a", "x\\y")]),
            ("a=b=c", &[("a", "b=c")]),
            ("a=it's", &[("a", "it's")]),
            ("a=''", &[("a", "")]),
            ("a=", &[("a", "")]),
            ("a='two words'", &[("a", "two words")]),
            ("a='multi\nline'", &[("a", "multi\nline")]),
            ("a=1 a=2 b=3", &[("a", "2"), ("b", "3")]),
            ("a=1\x0Bb=2", &[("a", "1"), ("b", "2")]),
            ("a=trailing\\", &[("a", "trailing")]),
            ("a='x'b=y", &[("a", "x"), ("b", "y")]),
            (
                "sslrootcert=/r.crt passfile=/p gssencmode=prefer target_session_attrs=any",
                &[
                    ("sslrootcert", "/r.crt"),
                    ("passfile", "/p"),
                    ("gssencmode", "prefer"),
                    ("target_session_attrs", "any"),
                ],
            ),
        ];
        for (input, expected) in cases {
            let parsed = ConnInfo::parse(input).unwrap_or_else(|e| panic!("{input:?}: {e}"));
            let got: Vec<(&str, &str)> = parsed.iter().collect();
            assert_eq!(&got, expected, "input {input:?}");
        }
    }

    #[test]
    fn keyword_value_errors() {
        assert!(matches!(
            ConnInfo::parse("foo=bar x"),
            Err(ConnInfoError::MissingEquals { .. })
        ));
        assert!(matches!(
            ConnInfo::parse("foo"),
            Err(ConnInfoError::MissingEquals { .. })
        ));
        assert!(matches!(
            ConnInfo::parse("a=b =c"),
            Err(ConnInfoError::EmptyKey { offset: 4 })
        ));
        assert!(matches!(
            ConnInfo::parse("a='unterminated"),
            Err(ConnInfoError::UnterminatedQuote { ref key }) if key == "a"
        ));
        assert!(matches!(
            ConnInfo::parse("a='ends in escape\\"),
            Err(ConnInfoError::UnterminatedQuote { .. })
        ));
        assert_eq!(
            err("foo=bar x"),
            "connection string: expected key=value after the value of \"foo\" (is a value containing spaces missing its quotes?)"
        );
    }

    #[test]
    fn errors_never_contain_the_password() {
        for input in [
            "user=u password=hunter2 wrong",
            "password=hunter2 secret-tail",
            "password='hunter2",
            "postgres://u:hun%zzter2@h/db",
            "postgres://u:hun%00ter2@h/db",
            "postgres://u:hunter2@[::1/db",
            "postgres://u:hunter2@h/db?hunter2",
            "postgres://u:hunter2@h/db?password=hun%zzter2",
        ] {
            let message = err(input);
            assert!(
                !message.contains("hunter2") && !message.contains("hun") && !message.contains("tail"),
                "{input:?} gave {message:?}"
            );
        }
        let ci = ConnInfo::parse("password=hunter2 port=notaport").unwrap();
        let message = ci.pg_config().unwrap_err().to_string();
        assert!(
            message.contains("notaport") && !message.contains("hunter2"),
            "{message}"
        );
        let ci = ConnInfo::parse("password=hunter2 sslpassword=hunter2 sslmode=bogus").unwrap();
        let message = ci.tls().err().map(|e| e.to_string()).unwrap_or_default();
        assert!(message.contains("bogus") && !message.contains("hunter2"), "{message}");
        assert!(!format!("{ci:?}").contains("hunter2"));
    }

    #[test]
    fn masked_format() {
        let ci = ConnInfo::parse("host=db user=u password='s3cr3t pw' dbname=x").unwrap();
        let masked = ci.masked();
        assert_eq!(masked, "host=db user=u dbname=x; hidden password");
        assert!(!masked.contains("s3cr3t"));
        let ci = ConnInfo::parse("host=db user=u").unwrap();
        assert_eq!(ci.masked(), "host=db user=u; no password");
        let ci = ConnInfo::parse("password=''").unwrap();
        assert_eq!(ci.masked(), "; hidden password");
        let ci = ConnInfo::parse("sslkey=/k sslpassword=keypass password=p").unwrap();
        assert_eq!(ci.masked(), "sslkey=/k sslpassword=<hidden>; hidden password");
        assert_eq!(
            format!("{ci:?}"),
            "ConnInfo(\"sslkey=/k sslpassword=<hidden>; hidden password\")"
        );
        let url = ConnInfo::parse("postgresql://u:p%40ss@h/d").unwrap();
        assert_eq!(url.masked(), "user=u host=h dbname=d; hidden password");
    }

    /// Every value not known to be harmless is hidden, not only `password`: a mistyped
    /// password keyword, `options`, a `dbname` that is a connection string, the OAuth secret
    /// and any keyword we do not know.
    #[test]
    fn masked_hides_every_value_not_known_to_be_harmless() {
        for input in [
            "host=h Password=hunter2",
            "host=h PASSWORD=hunter2",
            "postgres://u@h/d?PASSWORD=hunter2",
            "postgres://u@h/d?pasword=hunter2",
            "host=h passwd=hunter2",
            "host=h options='-c app.key=hunter2'",
            "host=h dbname='host=x password=hunter2'",
            "host=h dbname=postgres://u:hunter2@x/d",
            "host=h oauth_client_secret=hunter2 scram_client_key=hunter2 sslpassword=hunter2",
            "host=h something_new=hunter2",
        ] {
            let ci = ConnInfo::parse(input).unwrap();
            let masked = ci.masked();
            assert!(!masked.contains("hunter2"), "{input:?} gave {masked:?}");
            assert!(
                masked.starts_with("host=h ") || masked.starts_with("user=u "),
                "{masked}"
            );
            assert!(masked.contains(HIDDEN), "{input:?} gave {masked:?}");
            assert!(!format!("{ci:?}").contains("hunter2"));
        }
        let ci = ConnInfo::from_json(&serde_json::json!({"host": "h", "passwd": "hunter2"})).unwrap();
        assert_eq!(ci.masked(), "host=h passwd=<hidden>; no password");
        // the harmless keys stay readable
        let ci = ConnInfo::parse(
            "host=h hostaddr=10.0.0.1 port=5433 dbname=db user=u application_name=a sslmode=verify-full \
             sslrootcert=/ca.pem connect_timeout=5 target_session_attrs=read-write",
        )
        .unwrap();
        assert_eq!(ci.masked(), format!("{}; no password", ci.render()));
    }

    /// What libpq would refuse is refused by `validate`, naming the keyword (and the one
    /// meant) but never the value.
    #[test]
    fn validate_refuses_unknown_keywords_and_bad_values_without_the_value() {
        for (input, needles) in [
            (
                "host=h Password=hunter2",
                &["\"Password\"", "lowercase", "\"password\""][..],
            ),
            ("host=h PASSWORD=hunter2", &["\"PASSWORD\"", "\"password\""][..]),
            ("postgres://u@h/d?PASSWORD=hunter2", &["\"PASSWORD\""][..]),
            (
                "postgres://u@h/d?pasword=hunter2",
                &["\"pasword\"", "did you mean \"password\""][..],
            ),
            (
                "host=h passwd=hunter2",
                &["\"passwd\"", "did you mean \"password\""][..],
            ),
            (
                "host=h xyzzy_plugh=hunter2",
                &["unknown keyword \"xyzzy_plugh\" (libpq refuses it)"][..],
            ),
            ("host=h port=99999 password=hunter2", &["port", "99999"][..]),
            ("host=h sslmode=bogus password=hunter2", &["sslmode", "bogus"][..]),
            (
                "host=h connect_timeout=abc password=hunter2",
                &["connect_timeout", "abc"][..],
            ),
            (
                "host=h ssl_min_protocol_version=SSLv3",
                &["ssl_min_protocol_version"][..],
            ),
            ("host=h gssencmode=sometimes", &["gssencmode"][..]),
            ("host=h sslsni=yes", &["sslsni"][..]),
        ] {
            let ci = ConnInfo::parse(input).unwrap();
            let message = ci.validate().err().map(|e| e.to_string()).unwrap_or_default();
            for n in needles {
                assert!(message.contains(n), "{input:?} gave {message:?}, expected {n:?}");
            }
            assert!(!message.contains("hunter2"), "{input:?} gave {message:?}");
        }
        let ci = ConnInfo::from_json(&serde_json::json!({"host": "h", "passwd": "hunter2"})).unwrap();
        let message = ci.validate().unwrap_err().to_string();
        assert!(
            message.contains("\"passwd\"") && !message.contains("hunter2"),
            "{message}"
        );
        for ok in [
            "",
            "host=h port=5432 user=u password=p dbname=d sslmode=verify-full sslrootcert=/nonexistent",
            "postgres://u:p@h:5433/d?sslmode=require&application_name=x&connect_timeout=3",
            "host=h passfile=/p gssencmode=disable replication=true keepalives=1 sslsni=1",
        ] {
            assert!(ConnInfo::parse(ok).unwrap().validate().is_ok(), "{ok:?}");
        }
    }

    #[test]
    fn uri_parsing_table() {
        let cases: &[(&str, &[(&str, &str)])] = &[
            ("postgresql://", &[]),
            ("postgres://", &[]),
            ("postgresql://localhost", &[("host", "localhost")]),
            (
                "postgresql://localhost:5433",
                &[("host", "localhost"), ("port", "5433")],
            ),
            (
                "postgresql://localhost/mydb",
                &[("host", "localhost"), ("dbname", "mydb")],
            ),
            ("postgresql://localhost/", &[("host", "localhost")]),
            (
                "postgresql://user@localhost",
                &[("user", "user"), ("host", "localhost")],
            ),
            (
                "postgresql://user:@localhost",
                &[("user", "user"), ("host", "localhost")],
            ),
            (
                "postgresql://:pw@localhost",
                &[("password", "pw"), ("host", "localhost")],
            ),
            (
                "postgresql://user:secret@localhost",
                &[("user", "user"), ("password", "secret"), ("host", "localhost")],
            ),
            (
                "postgresql://other@localhost/otherdb?connect_timeout=10&application_name=myapp",
                &[
                    ("user", "other"),
                    ("host", "localhost"),
                    ("dbname", "otherdb"),
                    ("connect_timeout", "10"),
                    ("application_name", "myapp"),
                ],
            ),
            (
                "postgresql://host1:123,host2:456/somedb?target_session_attrs=any",
                &[
                    ("host", "host1,host2"),
                    ("port", "123,456"),
                    ("dbname", "somedb"),
                    ("target_session_attrs", "any"),
                ],
            ),
            ("postgres://h1,h2:5433/", &[("host", "h1,h2"), ("port", ",5433")]),
            ("postgresql://[::1]", &[("host", "::1")]),
            (
                "postgresql://[2001:db8::1234]:5433/database",
                &[("host", "2001:db8::1234"), ("port", "5433"), ("dbname", "database")],
            ),
            (
                "postgresql://[::1]:1,[fe80::1%25eth0]:2",
                &[("host", "::1,fe80::1%eth0"), ("port", "1,2")],
            ),
            (
                "postgresql://%2Fvar%2Flib%2Fpostgresql/dbname",
                &[("host", "/var/lib/postgresql"), ("dbname", "dbname")],
            ),
            (
                "postgresql:///dbname?host=/var/lib/postgresql",
                &[("dbname", "dbname"), ("host", "/var/lib/postgresql")],
            ),
            ("postgresql://:5433", &[("port", "5433")]),
            (
                "postgres://us%65r:p%40ss%3Aw%2Fd@h/d%C3%A9b?appl%69cation_name=a%26b%3Dc",
                &[
                    ("user", "user"),
                    ("password", "p@ss:w/d"),
                    ("host", "h"),
                    ("dbname", "déb"),
                    ("application_name", "a&b=c"),
                ],
            ),
            ("postgres://h?ssl=true", &[("host", "h"), ("sslmode", "require")]),
            ("postgres://h?a=1&&b=2&", &[("host", "h"), ("a", "1"), ("b", "2")]),
            ("postgres://h?a=x=y", &[("host", "h"), ("a", "x=y")]),
            ("postgres://h?a=", &[("host", "h"), ("a", "")]),
            ("postgres://h/db?dbname=other", &[("host", "h"), ("dbname", "other")]),
            (
                "postgres://h?application_name=a@b",
                &[("host", "h"), ("application_name", "a@b")],
            ),
        ];
        for (input, expected) in cases {
            let parsed = ConnInfo::parse(input).unwrap_or_else(|e| panic!("{input:?}: {e}"));
            let got: Vec<(&str, &str)> = parsed.iter().collect();
            assert_eq!(&got, expected, "input {input:?}");
        }
    }

    #[test]
    fn uri_errors() {
        for input in [
            "postgres://[::1",
            "postgres://[]:5432",
            "postgres://[::1]x",
            "postgres://h/%zz",
            "postgres://h/%4",
            "postgres://h/%00",
            "postgres://h/%ff",
            "postgres://h?novalue",
            "postgres://h?=x",
            "postgres://h?a%20b=x",
        ] {
            assert!(ConnInfo::parse(input).is_err(), "{input:?} should fail");
        }
        assert_eq!(
            err("postgres://h/%zz"),
            "connection URI: invalid percent-encoding in the database name"
        );
    }

    #[test]
    fn json_forms() {
        let ci = ConnInfo::from_json(&serde_json::json!({
            "host": "h", "port": 5432, "keepalives": true, "connect_timeout": 2.5,
            "sslrootcert": "/r", "passfile": "/p",
        }))
        .unwrap();
        let got: Vec<(&str, &str)> = ci.iter().collect();
        assert_eq!(
            got,
            [
                ("host", "h"),
                ("port", "5432"),
                ("keepalives", "true"),
                ("connect_timeout", "2.5"),
                ("sslrootcert", "/r"),
                ("passfile", "/p"),
            ]
        );
        assert!(matches!(
            ConnInfo::from_json(&serde_json::json!({"host": null})),
            Err(ConnInfoError::JsonValue { ref key, found: "null" }) if key == "host"
        ));
        assert!(matches!(
            ConnInfo::from_json(&serde_json::json!({"a b": "x"})),
            Err(ConnInfoError::InvalidKey { .. })
        ));
        assert!(matches!(
            ConnInfo::from_json(&serde_json::json!(5)),
            Err(ConnInfoError::JsonType { found: "a number" })
        ));
    }

    #[test]
    fn set_get_remove_keep_order() {
        let mut ci = ConnInfo::parse("a=1 b=2 c=3").unwrap();
        ci.set("b", "two");
        ci.set("d", "4");
        assert_eq!(ci.render(), "a=1 b=two c=3 d=4");
        assert_eq!(ci.remove("a"), Some("1".to_owned()));
        assert_eq!(ci.remove("a"), None);
        assert_eq!(ci.get("c"), Some("3"));
        assert_eq!(ci.get("a"), None);
        assert_eq!(ci.len(), 3);
        assert!(!ci.is_empty());
        assert_eq!(ci.render(), "b=two c=3 d=4");
    }

    #[test]
    fn quoting_table() {
        let cases = [
            ("plain", "plain"),
            ("", "''"),
            ("a b", "'a b'"),
            ("tab\there", "'tab\there'"),
            ("new\nline", "'new\nline'"),
            ("o'brian", r"'o\'brian'"),
            (r"back\slash", r"'back\\slash'"),
            (r"\'", r"'\\\''"),
            ("a=b", "a=b"),
            ("/var/run/postgresql", "/var/run/postgresql"),
            ("non\u{a0}breaking", "'non\u{a0}breaking'"),
            ("ünïcödé", "ünïcödé"),
        ];
        for (value, quoted) in cases {
            assert_eq!(quote_value(value), quoted, "value {value:?}");
            let rendered = format!("k={quoted}");
            let parsed = ConnInfo::parse(&rendered).unwrap();
            assert_eq!(parsed.get("k"), Some(value), "rendered {rendered:?}");
        }
    }

    #[test]
    fn ssl_mode_defaults_and_errors() {
        let mode = |s: &str| ConnInfo::parse(s).unwrap().try_ssl_mode();
        assert_eq!(mode("").unwrap(), SslMode::Prefer);
        assert_eq!(ConnInfo::default().ssl_mode(), SslMode::Prefer);
        for m in [
            SslMode::Disable,
            SslMode::Allow,
            SslMode::Prefer,
            SslMode::Require,
            SslMode::VerifyCa,
            SslMode::VerifyFull,
        ] {
            assert_eq!(mode(&format!("sslmode={m}")).unwrap(), m);
        }
        assert_eq!(mode("sslrootcert=system").unwrap(), SslMode::VerifyFull);
        assert!(matches!(
            mode("sslrootcert=system sslmode=require"),
            Err(ConnInfoError::SystemRootCertNeedsVerifyFull { mode: SslMode::Require })
        ));
        assert!(matches!(
            mode("sslmode=bogus"),
            Err(ConnInfoError::UnknownSslMode { ref value }) if value == "bogus"
        ));
        assert_eq!(
            ConnInfo::parse("sslmode=bogus").unwrap().ssl_mode(),
            SslMode::VerifyFull
        );
    }

    #[test]
    fn pg_config_maps_known_keys_and_ignores_others() {
        use tokio_postgres::config::Host;
        let ci = ConnInfo::parse(
            "host=db1,/run/pg port=5432,5433 user=hannu password=secret dbname=abc \
             options='-c x=y' application_name=look connect_timeout=1 keepalives=1 \
             keepalives_idle=30 target_session_attrs=read-write sslmode=verify-full \
             sslrootcert=/nonexistent passfile=/p gssencmode=prefer replication=true",
        )
        .unwrap();
        let cfg = ci.pg_config().unwrap();
        assert_eq!(cfg.get_hosts(), [Host::Tcp("db1".into()), Host::Unix("/run/pg".into())]);
        assert_eq!(cfg.get_ports(), [5432, 5433]);
        assert_eq!(cfg.get_user(), Some("hannu"));
        assert_eq!(cfg.get_password(), Some(&b"secret"[..]));
        assert_eq!(cfg.get_dbname(), Some("abc"));
        assert_eq!(cfg.get_options(), Some("-c x=y"));
        assert_eq!(cfg.get_application_name(), Some("look"));
        assert_eq!(cfg.get_connect_timeout(), Some(&Duration::from_secs(2)));
        assert!(cfg.get_keepalives());
        assert_eq!(cfg.get_keepalives_idle(), Duration::from_secs(30));
        assert_eq!(cfg.get_target_session_attrs(), pg::TargetSessionAttrs::ReadWrite);
        assert_eq!(cfg.get_ssl_mode(), pg::SslMode::Require);

        let cfg = ConnInfo::parse("hostaddr=127.0.0.1 port=6543 connect_timeout=0 sslmode=allow")
            .unwrap()
            .pg_config()
            .unwrap();
        assert!(cfg.get_hosts().is_empty());
        assert_eq!(cfg.get_hostaddrs(), ["127.0.0.1".parse::<IpAddr>().unwrap()]);
        assert_eq!(cfg.get_ports(), [6543]);
        assert_eq!(cfg.get_connect_timeout(), None);
        assert_eq!(cfg.get_ssl_mode(), pg::SslMode::Prefer);

        let cfg = ConnInfo::parse("user=u sslmode=disable connect_timeout=10")
            .unwrap()
            .pg_config()
            .unwrap();
        let defaults: Vec<Host> = DEFAULT_SOCKET_DIRS.iter().map(|d| Host::Unix(d.into())).collect();
        assert_eq!(cfg.get_hosts(), defaults);
        assert_eq!(cfg.get_connect_timeout(), Some(&Duration::from_secs(10)));
        assert_eq!(cfg.get_ssl_mode(), pg::SslMode::Disable);

        let cfg = ConnInfo::parse("postgres://[::1]:7000/db")
            .unwrap()
            .pg_config()
            .unwrap();
        assert_eq!(cfg.get_hosts(), [Host::Tcp("::1".into())]);
        assert_eq!(cfg.get_ports(), [7000]);
    }

    #[test]
    fn pg_config_errors() {
        for (input, needle) in [
            ("host=a port=x", "port"),
            ("host=a port=70000", "port"),
            ("host=a,b hostaddr=127.0.0.1", "hostaddr lists 1"),
            ("host=a,b,c port=1,2", "port lists 2"),
            ("host=a,,b", "host"),
            ("hostaddr=nope", "hostaddr"),
            ("host=a connect_timeout=soon", "connect_timeout"),
            ("host=a target_session_attrs=standby", "not supported"),
            ("host=a target_session_attrs=whatever", "target_session_attrs"),
            ("host=a sslmode=bogus", "bogus"),
            ("host=a channel_binding=maybe", "channel_binding"),
        ] {
            let message = ConnInfo::parse(input)
                .unwrap()
                .pg_config()
                .map(|_| String::new())
                .unwrap_or_else(|e| e.to_string());
            assert!(message.contains(needle), "{input:?} gave {message:?}");
        }
    }

    #[test]
    fn tls_errors_name_key_and_path() {
        let missing = "/nonexistent/pglookout-test/root.crt";
        for mode in ["require", "verify-ca", "verify-full"] {
            let ci = ConnInfo::parse(&format!("sslmode={mode} sslrootcert={missing}")).unwrap();
            let e = ci.tls().err().expect("missing sslrootcert must fail");
            assert!(matches!(e, ConnInfoError::ReadFile { key: "sslrootcert", .. }));
            let message = e.to_string();
            assert!(
                message.contains("sslrootcert") && message.contains(missing),
                "{message}"
            );
        }
        let ci = ConnInfo::parse("sslmode=bogus").unwrap();
        let message = ci.tls().err().expect("bogus sslmode must fail").to_string();
        assert!(message.contains("bogus"), "{message}");

        let ci = ConnInfo::parse("sslmode=require sslcert=/nonexistent/c.crt sslkey=/nonexistent/c.key").unwrap();
        assert!(matches!(ci.tls(), Err(ConnInfoError::ReadFile { key: "sslcert", .. })));
        let ci = ConnInfo::parse("sslmode=verify-ca sslcrl=/nonexistent/crl.pem").unwrap();
        assert!(matches!(ci.tls(), Err(ConnInfoError::ReadFile { key: "sslcrl", .. })));
        let ci = ConnInfo::parse("ssl_min_protocol_version=SSLv3").unwrap();
        assert!(ci.tls().is_err());
        // Modes that do not verify, and disable, need no files.
        for s in [
            "",
            "sslmode=disable",
            "sslmode=allow",
            "sslmode=prefer",
            "sslmode=require",
            "sslmode=verify-full",
            "sslrootcert=system",
            "sslmode=prefer sslrootcert=/nonexistent",
        ] {
            assert!(ConnInfo::parse(s).unwrap().tls().is_ok(), "{s:?}");
        }
    }

    /// A self-signed certificate written to a temporary directory, for the happy paths.
    fn self_signed(dir: &std::path::Path, name: &str) -> (String, String) {
        use openssl::asn1::Asn1Time;
        use openssl::hash::MessageDigest;
        use openssl::rsa::Rsa;
        use openssl::x509::X509NameBuilder;
        let key = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
        let mut subject = X509NameBuilder::new().unwrap();
        subject.append_entry_by_text("CN", name).unwrap();
        let subject = subject.build();
        let mut cert = X509::builder().unwrap();
        cert.set_version(2).unwrap();
        cert.set_subject_name(&subject).unwrap();
        cert.set_issuer_name(&subject).unwrap();
        cert.set_pubkey(&key).unwrap();
        cert.set_not_before(&Asn1Time::days_from_now(0).unwrap()).unwrap();
        cert.set_not_after(&Asn1Time::days_from_now(1).unwrap()).unwrap();
        cert.sign(&key, MessageDigest::sha256()).unwrap();
        let cert_path = dir.join(format!("{name}.crt"));
        let key_path = dir.join(format!("{name}.key"));
        std::fs::write(&cert_path, cert.build().to_pem().unwrap()).unwrap();
        std::fs::write(&key_path, key.private_key_to_pem_pkcs8().unwrap()).unwrap();
        (
            cert_path.to_str().unwrap().to_owned(),
            key_path.to_str().unwrap().to_owned(),
        )
    }

    #[test]
    fn tls_loads_root_and_client_certificates() {
        let dir = tempfile::tempdir().unwrap();
        let (ca, _) = self_signed(dir.path(), "ca");
        let (cert, key) = self_signed(dir.path(), "client");
        let (_, other_key) = self_signed(dir.path(), "other");
        for mode in ["require", "verify-ca", "verify-full"] {
            let ci = ConnInfo::parse(&format!("sslmode={mode} sslrootcert={ca} sslcert={cert} sslkey={key}")).unwrap();
            assert!(ci.tls().is_ok(), "{mode}: {:?}", ci.tls().err());
        }
        let mismatched = ConnInfo::parse(&format!("sslmode=require sslcert={cert} sslkey={other_key}")).unwrap();
        assert!(matches!(
            mismatched.tls(),
            Err(ConnInfoError::LoadFile { key: "sslkey", .. })
        ));
        let no_key = ConnInfo::parse(&format!("sslmode=require sslcert={cert}")).unwrap();
        assert!(no_key.tls().is_err());
        let not_a_cert = ConnInfo::parse(&format!("sslmode=verify-ca sslrootcert={key}")).unwrap();
        assert!(matches!(
            not_a_cert.tls(),
            Err(ConnInfoError::LoadFile { key: "sslrootcert", .. })
        ));
    }

    struct Pki {
        dir: tempfile::TempDir,
        ca: String,
        other_ca: String,
        server: (X509, PKey<Private>),
    }

    fn rsa_key() -> PKey<Private> {
        PKey::from_rsa(openssl::rsa::Rsa::generate(2048).unwrap()).unwrap()
    }

    fn certificate(cn: &str, key: &PKey<Private>, issuer: Option<(&X509, &PKey<Private>)>, san: Option<&str>) -> X509 {
        use openssl::asn1::Asn1Time;
        use openssl::bn::BigNum;
        use openssl::hash::MessageDigest;
        use openssl::x509::extension::{BasicConstraints, SubjectAlternativeName};
        use openssl::x509::X509NameBuilder;
        let mut name = X509NameBuilder::new().unwrap();
        name.append_entry_by_text("CN", cn).unwrap();
        let name = name.build();
        let mut b = X509::builder().unwrap();
        b.set_version(2).unwrap();
        let serial = BigNum::from_u32(rand_serial()).unwrap().to_asn1_integer().unwrap();
        b.set_serial_number(&serial).unwrap();
        b.set_subject_name(&name).unwrap();
        b.set_pubkey(key).unwrap();
        b.set_not_before(&Asn1Time::days_from_now(0).unwrap()).unwrap();
        b.set_not_after(&Asn1Time::days_from_now(1).unwrap()).unwrap();
        match issuer {
            None => {
                b.set_issuer_name(&name).unwrap();
                b.append_extension(BasicConstraints::new().critical().ca().build().unwrap())
                    .unwrap();
            }
            Some((ca, _)) => b.set_issuer_name(ca.subject_name()).unwrap(),
        }
        if let Some(dns) = san {
            let ext = SubjectAlternativeName::new()
                .dns(dns)
                .build(&b.x509v3_context(issuer.map(|(ca, _)| &**ca), None))
                .unwrap();
            b.append_extension(ext).unwrap();
        }
        let signer = issuer.map_or(key, |(_, k)| k);
        b.sign(signer, MessageDigest::sha256()).unwrap();
        b.build()
    }

    fn rand_serial() -> u32 {
        use std::sync::atomic::{AtomicU32, Ordering};
        static NEXT: AtomicU32 = AtomicU32::new(1);
        NEXT.fetch_add(1, Ordering::Relaxed)
    }

    /// A CA, a server certificate for `localhost` signed by it, and an unrelated CA.
    fn pki() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let ca_key = rsa_key();
        let ca = certificate("test ca", &ca_key, None, None);
        let other_key = rsa_key();
        let other = certificate("other ca", &other_key, None, None);
        let server_key = rsa_key();
        let server = certificate("localhost", &server_key, Some((&ca, &ca_key)), Some("localhost"));
        let write = |name: &str, pem: Vec<u8>| {
            let path = dir.path().join(name);
            std::fs::write(&path, pem).unwrap();
            path.to_str().unwrap().to_owned()
        };
        let ca_path = write("ca.crt", ca.to_pem().unwrap());
        let other_path = write("other.crt", other.to_pem().unwrap());
        Pki {
            ca: ca_path,
            other_ca: other_path,
            server: (server, server_key),
            dir,
        }
    }

    /// A real TLS handshake against a local server, through the connector `tls()` built,
    /// connecting to 127.0.0.1 while presenting `domain` as tokio-postgres does with `host`.
    fn handshake(ci: &str, domain: &str, pki: &Pki) -> Result<(), String> {
        use openssl::ssl::SslAcceptor;
        use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};
        let mut make = ConnInfo::parse(ci).unwrap().tls().map_err(|e| e.to_string())?;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let mut acceptor = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server()).unwrap();
        acceptor.set_certificate(&pki.server.0).unwrap();
        acceptor.set_private_key(&pki.server.1).unwrap();
        let acceptor = acceptor.build();
        let server = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let _ = acceptor.accept(stream);
        });
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let result = runtime.block_on(async {
            let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            let connect = MakeTlsConnect::<tokio::net::TcpStream>::make_tls_connect(&mut make, domain)
                .map_err(|e| e.to_string())?;
            connect.connect(stream).await.map(drop).map_err(|e| e.to_string())
        });
        server.join().unwrap();
        result
    }

    #[test]
    fn tls_handshakes_follow_sslmode() {
        let pki = pki();
        let (ca, other) = (&pki.ca, &pki.other_ca);
        let cases = [
            // No verification: any certificate is accepted.
            (String::from("sslmode=prefer"), "localhost", true),
            (String::from("sslmode=require"), "wrong.example", true),
            (format!("sslmode=allow sslrootcert={other}"), "localhost", true),
            // require with a root certificate behaves like verify-ca.
            (format!("sslmode=require sslrootcert={ca}"), "wrong.example", true),
            (format!("sslmode=require sslrootcert={other}"), "localhost", false),
            // verify-ca checks the chain but not the name.
            (format!("sslmode=verify-ca sslrootcert={ca}"), "wrong.example", true),
            (format!("sslmode=verify-ca sslrootcert={other}"), "localhost", false),
            // verify-full checks both.
            (format!("sslmode=verify-full sslrootcert={ca}"), "localhost", true),
            (format!("sslmode=verify-full sslrootcert={ca}"), "wrong.example", false),
            (format!("sslmode=verify-full sslrootcert={other}"), "localhost", false),
            // Our test CA is not among the system's roots.
            (String::from("sslmode=verify-full"), "localhost", false),
        ];
        for (ci, domain, ok) in cases {
            let result = handshake(&ci, domain, &pki);
            assert_eq!(result.is_ok(), ok, "{ci:?} as {domain}: {result:?}");
            if let Err(e) = result {
                assert!(e.contains("certificate verify failed"), "{ci:?}: {e}");
            }
        }
        drop(pki.dir);
    }

    fn value_strategy() -> impl Strategy<Value = String> {
        prop_oneof![Just(String::new()), "[ -~]{0,24}", "[ '\\\\=a\t\n]{0,12}", "\\PC{0,12}",]
    }

    proptest! {
        #[test]
        fn render_then_parse_round_trips(
            entries in proptest::collection::btree_map("[a-z_]{1,12}", value_strategy(), 0..8)
        ) {
            let mut ci = ConnInfo::default();
            for (k, v) in &entries {
                ci.set(k, v.clone());
            }
            let parsed = ConnInfo::parse(&ci.render());
            prop_assert!(parsed.is_ok(), "{:?}", parsed.err());
            let parsed = parsed.unwrap_or_default();
            prop_assert_eq!(map(&parsed), entries);
            prop_assert_eq!(parsed, ci);
        }
    }
}
