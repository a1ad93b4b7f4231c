//! Integration tests: the `pglookout` binaries against real PostgreSQL clusters started by
//! `pglab`. One test binary; each module one area.

mod config_errors;
mod ctl;
mod current_master;
mod failover;
mod faults;
mod fencing;
mod harness;
mod http_limits;
mod load_balancer;
mod logs_and_metrics;
mod monitoring;
mod secure_api;
mod status_page;
mod synchronous;
