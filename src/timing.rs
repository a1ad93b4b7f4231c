//! The timing argument behind fencing (docs/safety.md, "Timing"), as arithmetic the config
//! validation runs: a primary that has lost its lease must be fenced before any standby may
//! promote. Pure: no I/O.
//!
//! A standby promotes on a missing master only after `failover_after` seconds (the lag window,
//! or `unreachable_master_failover_timeout`) counted from when it first saw the master gone.
//! The primary's daemon counts `fence_timeout` from the last time a majority vouched for its
//! node, as it learnt it. What it learns lags reality by at most one observer fetch (a poll
//! interval plus a fetch deadline) of a report that is itself at most one probe old (a poll
//! interval plus a probe deadline); it notices the expiry at its next check (one check
//! interval) and the fence command then stops writes within `fence_command_budget`. So the fence has
//! taken effect at most `fence_timeout + overhead` after the standbys' clock started, and
//! `fence_timeout + overhead <= failover_after` keeps the two apart.

/// The default `fence_command_budget`: the time the fence command is assumed to need to stop
/// writes (`pg_ctl stop -m immediate`, a kill, a firewall rule). A slower command breaks the
/// argument: the daemon warns when one takes longer, and docs/safety.md says so.
pub const DEFAULT_FENCE_BUDGET_SECS: f64 = 1.0;

/// The intervals and deadlines the argument depends on (seconds).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timing {
    /// `db_poll_interval` (also how often observers are fetched).
    pub poll_interval: f64,
    /// `db_poll_timeout` (a probe's and an observer fetch's deadline).
    pub poll_timeout: f64,
    /// `replication_state_check_interval`.
    pub check_interval: f64,
    /// `fence_command_budget`.
    pub fence_budget: f64,
}

impl Timing {
    /// How long after `fence_timeout` has run out the fence has surely taken effect.
    pub fn fence_overhead(&self) -> f64 {
        2.0 * self.poll_interval + 2.0 * self.poll_timeout + self.check_interval + self.fence_budget
    }

    fn sum(&self, fence_timeout: f64) -> String {
        format!(
            "fence_timeout {fence_timeout} + 2 × db_poll_interval {} + 2 × db_poll_timeout {} + replication_state_check_interval {} + fence_command_budget {} = {:.2} s",
            self.poll_interval,
            self.poll_timeout,
            self.check_interval,
            self.fence_budget,
            fence_timeout + self.fence_overhead()
        )
    }

    /// Whether a given `fence_timeout` lets the primary be fenced before a standby may
    /// promote after `failover_after` seconds.
    pub fn check_fence_timeout(&self, fence_timeout: f64, failover_after: f64) -> Result<(), String> {
        if fence_timeout + self.fence_overhead() <= failover_after {
            Ok(())
        } else {
            Err(format!(
                "{} must not exceed the failover timeout ({failover_after} s: the smaller of max_failover_replication_time_lag and unreachable_master_failover_timeout), or a standby could promote before the primary is fenced; lower fence_timeout, db_poll_interval, db_poll_timeout, replication_state_check_interval or fence_command_budget, or raise the failover timeout",
                self.sum(fence_timeout)
            ))
        }
    }

    /// The default `fence_timeout`: as long as the argument allows.
    pub fn derive_fence_timeout(&self, failover_after: f64) -> Result<f64, String> {
        let t = failover_after - self.fence_overhead();
        if t > 0.0 {
            Ok(t)
        } else {
            Err(format!(
                "cannot be derived: the failover timeout ({failover_after} s) leaves no time to fence after 2 × db_poll_interval {} + 2 × db_poll_timeout {} + replication_state_check_interval {} + fence_command_budget {}; set a longer failover timeout or shorter intervals",
                self.poll_interval, self.poll_timeout, self.check_interval, self.fence_budget
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fence_must_fit_before_the_failover() {
        let t = Timing {
            poll_interval: 0.5,
            poll_timeout: 1.0,
            check_interval: 0.5,
            fence_budget: DEFAULT_FENCE_BUDGET_SECS,
        };
        assert_eq!(t.fence_overhead(), 4.5);
        assert!(t.check_fence_timeout(4.0, 8.5).is_ok());
        let e = t.check_fence_timeout(4.5, 8.5).expect_err("too long");
        assert!(e.contains("= 9.00 s") && e.contains("8.5 s"), "{e}");
        assert_eq!(t.derive_fence_timeout(10.0), Ok(5.5));
        assert!(t.derive_fence_timeout(4.0).is_err());
        // the original's defaults: 120 s window, 5 s everything
        let d = Timing {
            poll_interval: 5.0,
            poll_timeout: 5.0,
            check_interval: 5.0,
            fence_budget: DEFAULT_FENCE_BUDGET_SECS,
        };
        assert_eq!(d.derive_fence_timeout(120.0), Ok(94.0));
        // a fence that acts in a quarter of a second leaves more room
        let quick = Timing {
            fence_budget: 0.25,
            ..t
        };
        assert_eq!(quick.fence_overhead(), 3.75);
        assert!(quick.check_fence_timeout(4.5, 8.5).is_ok());
    }
}
