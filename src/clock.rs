//! The monotonic clock the whole daemon uses: `CLOCK_MONOTONIC` in seconds, the same base as
//! Python's `time.monotonic()`, so `replication_start_time` in the state file means the same
//! thing as the original's. Durations between two of our own instants are always taken here.

/// Seconds on the system monotonic clock.
pub fn monotonic() -> f64 {
    match nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC) {
        Ok(ts) => ts.tv_sec() as f64 + ts.tv_nsec() as f64 / 1e9,
        Err(_) => 0.0,
    }
}
