//! The polling helper. Owns no state; it exists so that every wait in tests has a deadline and a
//! timeout error that says what was being waited for (never a bare `sleep`).

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use crate::error::LabError;

/// How often [`wait_for`] polls.
pub const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// A poll outcome: `true`/`Some(v)` means done.
pub trait Ready {
    type Output;
    fn ready(self) -> Option<Self::Output>;
}

impl Ready for bool {
    type Output = ();
    fn ready(self) -> Option<()> {
        self.then_some(())
    }
}

impl<T> Ready for Option<T> {
    type Output = T;
    fn ready(self) -> Option<T> {
        self
    }
}

/// Poll `f` every 50 ms until it yields `true` / `Some(v)`, or fail with a [`LabError::Timeout`]
/// naming `what` once `deadline` has passed.
///
/// An `Err` from `f` counts as "not yet" (a node that is restarting refuses connections for a
/// while); the last such error is included in the timeout error. Each call of `f` is itself
/// bounded by the time left, so a hanging probe cannot overrun the deadline.
pub async fn wait_for<F, Fut, R>(what: &str, deadline: Duration, mut f: F) -> anyhow::Result<R::Output>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<R>>,
    R: Ready,
{
    let end = Instant::now() + deadline;
    let mut last_error = None;
    loop {
        let left = end.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, f()).await {
            Ok(Ok(r)) => match r.ready() {
                Some(v) => return Ok(v),
                None => last_error = None,
            },
            Ok(Err(e)) => last_error = Some(format!("{e:#}")),
            Err(_) => {}
        }
        let now = Instant::now();
        if now >= end {
            return Err(LabError::Timeout {
                what: what.to_string(),
                after: deadline,
                last_error,
            }
            .into());
        }
        tokio::time::sleep(POLL_INTERVAL.min(end - now)).await;
    }
}
