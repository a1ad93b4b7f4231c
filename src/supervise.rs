//! Task supervision: a daemon must never run half-alive. Every background task runs through
//! here, and a task that panics is logged (with the panic message) and counted; its owner then
//! either restarts it (a poller worker), turns the crash into a failed outcome (a command, a
//! follow, a reload: the loop's "running" flag is always cleared), or stops the daemon with a
//! non-zero exit so that systemd restarts it (the poller's aggregator, the HTTP server, the
//! decision loop itself).
//!
//! Debug builds also carry fault points for the tests: `PGLOOKOUT_TEST_PANIC=site[,site...]`
//! makes each named site panic once. Release builds compile them out.

use crate::prometheus::Counters;
use std::future::Future;
use std::sync::Arc;

/// The text of a panic payload.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(no message)".to_string()
    }
}

/// Runs `fut` as a task of its own and waits for it: `None` when it panicked (logged and
/// counted as a crash of `what`) or was cancelled.
pub async fn run<F>(what: &'static str, counters: &Counters, fut: F) -> Option<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    match tokio::spawn(fut).await {
        Ok(v) => Some(v),
        Err(e) if e.is_panic() => {
            let message = panic_message(&*e.into_panic());
            crashed(what, &message, counters);
            None
        }
        Err(_) => None,
    }
}

/// Spawns `fut` under [`run`] (fire and forget: its crash is logged and counted).
pub fn spawn<F>(what: &'static str, counters: Arc<Counters>, fut: F)
where
    F: Future<Output = ()> + Send + 'static,
{
    tokio::spawn(async move {
        run(what, &counters, fut).await;
    });
}

/// Logs and counts the crash of a task.
pub fn crashed(what: &str, message: &str, counters: &Counters) {
    counters.task_crashed(what);
    tracing::error!(target: "pglookout", "task {what} crashed: {message}");
}

/// Routes panic reports to the log (whose writes never block) instead of straight to stderr,
/// with the thread and the place.
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let thread = std::thread::current();
        let place = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        tracing::error!(target: "pglookout", "panic in thread {}{place}: {}",
            thread.name().unwrap_or("?"), panic_message(info.payload()));
        // the process may be about to exit (a panic of the decision loop): let the line out
        crate::logging::flush(std::time::Duration::from_millis(500));
    }));
}

/// A test fault point: panics once when `site` is listed in `PGLOOKOUT_TEST_PANIC` (debug
/// builds only; a no-op in release builds).
#[cfg(debug_assertions)]
pub fn fault_point(site: &str) {
    use std::sync::{Mutex, OnceLock};
    static SITES: OnceLock<Mutex<Vec<String>>> = OnceLock::new();
    let sites = SITES.get_or_init(|| {
        let list = std::env::var("PGLOOKOUT_TEST_PANIC").unwrap_or_default();
        Mutex::new(list.split(',').filter(|s| !s.is_empty()).map(str::to_string).collect())
    });
    let hit = {
        let mut sites = sites.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let found = sites.iter().position(|s| s == site);
        found.map(|i| sites.remove(i)).is_some()
    };
    if hit {
        panic!("injected panic at {site} (PGLOOKOUT_TEST_PANIC)");
    }
}

#[cfg(not(debug_assertions))]
#[inline(always)]
pub fn fault_point(_site: &str) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_task_is_reported_and_counted() {
        let counters = Counters::default();
        let ok = run("test task", &counters, async { 7 }).await;
        assert_eq!(ok, Some(7));
        let crashed = run("test task", &counters, async {
            if counters_are_checked() {
                panic!("boom");
            }
            7
        })
        .await;
        assert_eq!(crashed, None);
        let text = crate::prometheus::render(
            &crate::state::Snapshot::default(),
            &counters,
            &crate::prometheus::Extra {
                own_db: None,
                current_master: None,
                alerts: vec![],
                alert_dir_writable: None,
                version: "0",
                state_written_at: None,
            },
            chrono::Utc::now(),
            false,
        );
        assert!(
            text.contains("pglookout_task_crashes_total{task=\"test task\"} 1\n"),
            "{text}"
        );
    }

    fn counters_are_checked() -> bool {
        true
    }
}
