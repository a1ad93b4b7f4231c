//! pglookout: PostgreSQL replication monitoring and failover daemon, a drop-in for Aiven's
//! Python pglookout. One line per module, saying what it owns:

/// Side effects: alert files, external commands, following a new primary.
pub mod act;
/// The monotonic clock (same base as Python's time.monotonic()).
pub mod clock;
/// Config file: keys, defaults, validation with messages that name the key.
pub mod config;
/// libpq connection strings and URIs: parse, render, mask, build client config and TLS.
pub mod conninfo;
/// pglookout-ctl: reading and rendering one daemon's view.
pub mod ctl;
/// Wiring, the decision loop, reload and shutdown.
pub mod daemon;
/// The pure decision core: node map, failover decision, autofollow text (no I/O).
pub mod decide;
/// Health checks for load balancers (pure).
pub mod health;
/// HTTP API routes.
pub mod http;
/// HTTP connections: accepting, connection caps, TLS handshakes, deadlines.
pub mod http_conn;
/// Log lines to stderr and syslog, with a level that reload can change.
pub mod logging;
/// WAL positions (`X/Y`).
pub mod lsn;
/// StatsD (Telegraf tags).
pub mod metrics;
/// Polling PostgreSQL nodes and observers; owns their states.
pub mod poll;
/// Prometheus counters and the /metrics text.
pub mod prometheus;
/// Host names of UDP destinations (StatsD, syslog), resolved in the background.
pub mod resolve;
/// The JSON contract: node and observer states and the state-file document.
pub mod state;
/// Atomic write of the state file.
pub mod statefile;
/// Task supervision: crashed tasks are logged, counted, restarted or stop the daemon.
pub mod supervise;
