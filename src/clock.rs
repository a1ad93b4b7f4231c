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

/// A monotonic instant that one task sets and others read without a lock (for example when
/// the decision loop last ran, read by the health checks). `None` until first set.
#[derive(Debug, Default)]
pub struct Beat(std::sync::atomic::AtomicU64);

impl Beat {
    pub fn set(&self, mono: f64) {
        self.0.store(mono.to_bits(), std::sync::atomic::Ordering::Relaxed);
    }
    pub fn get(&self) -> Option<f64> {
        match self.0.load(std::sync::atomic::Ordering::Relaxed) {
            0 => None,
            bits => Some(f64::from_bits(bits)),
        }
    }
}
