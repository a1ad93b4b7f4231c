//! The daemon's own files, written and looked at on one dedicated thread: the state file, the
//! alert files and the maintenance-file check. A hung file system (a stuck NFS mount, a full
//! or frozen disk) then stops only this thread, never the decision loop, the HTTP API or
//! SIGTERM. Callers hand work over without waiting: the state file is latest-wins (a write that
//! could not keep up is replaced by the newer document), alert operations keep their order,
//! and the look at the maintenance and alert files carries the monotonic time it was taken, so
//! the loop can tell "no maintenance file" from "no answer" (which must never count as
//! permission to promote), and `/metrics` shows alert files without a stat of its own.

use crate::clock;
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, PoisonError};

/// What to do with an alert file.
#[derive(Clone, Debug, PartialEq)]
pub enum AlertOp {
    /// Create it holding `alert`, as the original (an existing one is left as it is).
    Create,
    /// Create it holding this text (ours: a reason), or write it again if it holds another.
    Write(String),
    Delete,
}

/// Which operation failed, for the caller's log line and counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Site {
    StateFile,
    CreateAlert,
    DeleteAlert,
    EventLog,
}

/// A failed file operation, handed to the `on_error` callback on the file thread.
#[derive(Debug)]
pub struct Failure {
    pub site: Site,
    pub path: PathBuf,
    pub error: std::io::Error,
}

/// What the file thread last saw of the files the daemon reports on.
#[derive(Debug, Clone, PartialEq)]
pub struct Looked {
    /// Whether the maintenance file exists.
    pub maintenance: bool,
    /// Every alert file by name, and whether it exists.
    pub alerts: Vec<(&'static str, bool)>,
    /// Whether the alert directory is a directory we may create files in: when it is not, no
    /// alert file can be raised, and "absent" above says nothing.
    pub alert_dir_writable: bool,
    /// When this was seen (monotonic).
    pub at: f64,
}

#[derive(Default)]
struct Pending {
    /// `(dir, name, create)`, in order; a later operation on the same file replaces an
    /// earlier one still waiting.
    alerts: VecDeque<(PathBuf, String, AlertOp)>,
    /// The maintenance file and the alert directory to look at.
    look: Option<(PathBuf, PathBuf)>,
    /// The state document, where, and its number (see [`Files::write_state`]).
    state: Option<(PathBuf, Arc<serde_json::Value>, u64)>,
    /// The number of the latest state document handed over.
    state_seq: u64,
    /// Event lines to append, in order, by file.
    events: Vec<(PathBuf, String)>,
}

struct Shared {
    pending: Mutex<Pending>,
    wake: Condvar,
    /// When the operation in progress started (monotonic); unset while idle.
    busy_since: Mutex<Option<f64>>,
    /// The latest look at the maintenance and alert files.
    looked: Mutex<Option<Looked>>,
    /// The number of the latest state document whose write has ended (well or not).
    written: tokio::sync::watch::Sender<u64>,
    /// When the state file was last written successfully (wall clock), for `/metrics`.
    state_written_at: Mutex<Option<crate::state::Timestamp>>,
}

/// Handle to the file thread. Cloning shares the thread.
#[derive(Clone)]
pub struct Files(Arc<Shared>);

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Files {
    /// Starts the file thread; `on_error` runs on it for every failed operation. The thread
    /// lives as long as the process (a thread stuck in a system call cannot be stopped, and
    /// it must not keep the process from exiting: std threads never do).
    pub fn start(on_error: impl Fn(Failure) + Send + 'static) -> std::io::Result<Files> {
        let shared = Arc::new(Shared {
            pending: Mutex::new(Pending::default()),
            wake: Condvar::new(),
            busy_since: Mutex::new(None),
            looked: Mutex::new(None),
            written: tokio::sync::watch::channel(0).0,
            state_written_at: Mutex::new(None),
        });
        let worker = shared.clone();
        std::thread::Builder::new()
            .name("pglookout-files".into())
            .spawn(move || run(&worker, &on_error))?;
        Ok(Files(shared))
    }

    fn submit(&self, f: impl FnOnce(&mut Pending)) {
        f(&mut lock(&self.0.pending));
        self.0.wake.notify_one();
    }

    /// Writes the state document to `path` (atomically) as soon as the thread is free; a
    /// document still waiting is replaced. Returns the document's number, for
    /// [`Files::state_written`].
    pub fn write_state(&self, path: &Path, doc: Arc<serde_json::Value>) -> u64 {
        let mut seq = 0;
        self.submit(|p| {
            p.state_seq += 1;
            seq = p.state_seq;
            p.state = Some((path.to_path_buf(), doc, seq));
        });
        seq
    }

    /// Waits (at most `timeout`) until the write of state document `seq`, or of a later one,
    /// has ended, successfully or not. False on timeout.
    pub async fn state_written(&self, seq: u64, timeout: std::time::Duration) -> bool {
        let mut rx = self.0.written.subscribe();
        let written = tokio::time::timeout(timeout, rx.wait_for(|w| *w >= seq)).await;
        matches!(written, Ok(Ok(_)))
    }

    /// When the state file was last written successfully (`None`: not yet).
    pub fn state_written_at(&self) -> Option<crate::state::Timestamp> {
        *lock(&self.0.state_written_at)
    }

    /// Creates, writes or deletes an alert file.
    pub fn alert(&self, dir: &Path, name: &str, create: AlertOp) {
        self.submit(|p| {
            p.alerts.retain(|(d, n, _)| !(d == dir && n == name));
            p.alerts.push_back((dir.to_path_buf(), name.to_string(), create));
        });
    }

    /// Appends one event line to the history at `path` (in order; never dropped while the
    /// file system answers).
    pub fn event(&self, path: &Path, line: String) {
        self.submit(|p| p.events.push((path.to_path_buf(), line)));
    }

    /// Asks whether the maintenance file and each alert file in `alert_dir` exist; the answer
    /// shows in [`Files::looked`].
    pub fn look(&self, maintenance: &Path, alert_dir: &Path) {
        self.submit(|p| p.look = Some((maintenance.to_path_buf(), alert_dir.to_path_buf())));
    }

    /// The latest answer to [`Files::look`].
    pub fn looked(&self) -> Option<Looked> {
        lock(&self.0.looked).clone()
    }

    /// The maintenance part of [`Files::looked`]: whether the file exists, and when that was
    /// seen (monotonic).
    pub fn maintenance(&self) -> Option<(bool, f64)> {
        lock(&self.0.looked).as_ref().map(|l| (l.maintenance, l.at))
    }

    /// Waits (at most `timeout`) until nothing is waiting and nothing is being written, so that
    /// the last events reach the disk before the process exits. False on timeout.
    pub async fn drained(&self, timeout: std::time::Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let idle = {
                let p = lock(&self.0.pending);
                p.events.is_empty() && p.alerts.is_empty() && p.state.is_none()
            } && lock(&self.0.busy_since).is_none();
            if idle {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    /// How long the operation in progress has been running (`None` while idle).
    pub fn busy_for(&self, now: f64) -> Option<f64> {
        lock(&self.0.busy_since).map(|since| now - since)
    }
}

fn run(shared: &Shared, on_error: &dyn Fn(Failure)) {
    loop {
        let work = {
            let mut pending = lock(&shared.pending);
            while pending.alerts.is_empty()
                && pending.look.is_none()
                && pending.state.is_none()
                && pending.events.is_empty()
            {
                pending = shared.wake.wait(pending).unwrap_or_else(PoisonError::into_inner);
            }
            let state_seq = pending.state_seq;
            let work = std::mem::take(&mut *pending);
            pending.state_seq = state_seq;
            work
        };
        let busy = |on: bool| *lock(&shared.busy_since) = on.then(clock::monotonic);
        busy(true);
        for (dir, name, create) in work.alerts {
            let result = match &create {
                AlertOp::Create => super::alerts::create(&dir, &name),
                AlertOp::Write(text) => super::alerts::write(&dir, &name, text),
                AlertOp::Delete => super::alerts::delete(&dir, &name),
            };
            let create = create != AlertOp::Delete;
            if let Err(error) = result {
                let site = if create { Site::CreateAlert } else { Site::DeleteAlert };
                on_error(Failure {
                    site,
                    path: dir.join(&name),
                    error,
                });
            }
        }
        let mut events = work.events.into_iter().peekable();
        while let Some((path, line)) = events.next() {
            let mut lines = vec![line];
            while let Some((_, l)) = events.next_if(|(p, _)| *p == path) {
                lines.push(l);
            }
            if let Err(error) = crate::events::append(&path, &lines) {
                on_error(Failure {
                    site: Site::EventLog,
                    path,
                    error,
                });
            }
        }
        if let Some((maintenance, alert_dir)) = work.look {
            let looked = Looked {
                maintenance: maintenance.exists(),
                alerts: crate::decide::Alert::ALL
                    .iter()
                    .map(|a| (a.file_name(), alert_dir.join(a.file_name()).exists()))
                    .collect(),
                alert_dir_writable: crate::config::dir_writable(&alert_dir),
                at: clock::monotonic(),
            };
            *lock(&shared.looked) = Some(looked);
        }
        if let Some((path, doc, seq)) = work.state {
            match crate::statefile::write_json(&path, &*doc) {
                Ok(()) => *lock(&shared.state_written_at) = Some(chrono::Utc::now()),
                Err(error) => on_error(Failure {
                    site: Site::StateFile,
                    path,
                    error,
                }),
            }
            shared.written.send_replace(seq);
        }
        busy(false);
    }
}

/// Whether the maintenance file stops promotion, from the file thread's latest answer: an
/// answer older than `max_age` seconds (the file system does not answer) counts as "in
/// maintenance", because not knowing is never a reason to promote. The second value says why
/// when the answer is unknown; none while the first answer, asked for at `asked_at`, is not yet
/// due (every start would warn otherwise; the file still counts as present meanwhile).
pub fn maintenance_mode(answer: Option<(bool, f64)>, now: f64, max_age: f64, asked_at: f64) -> (bool, Option<String>) {
    match answer {
        Some((exists, at)) if now - at <= max_age => (exists, None),
        Some((_, at)) => (
            true,
            Some(format!(
                "the maintenance file check has not answered for {:.1} s",
                now - at
            )),
        ),
        None if now - asked_at <= max_age => (true, None),
        None => (
            true,
            Some(format!(
                "the maintenance file check has not answered since the start, {:.1} s ago",
                now - asked_at
            )),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !cond() {
            assert!(std::time::Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn state_alerts_and_maintenance_happen_on_the_file_thread() {
        let dir = tempfile::tempdir().expect("dir");
        let failures = Arc::new(Mutex::new(Vec::new()));
        let seen = failures.clone();
        let files = Files::start(move |f| lock(&seen).push((f.site, f.path))).expect("start");
        let state = dir.path().join("state.json");
        files.write_state(&state, Arc::new(serde_json::json!({"current_master": "pg1"})));
        files.alert(dir.path(), "failover_has_happened", AlertOp::Create);
        files.alert(dir.path(), "replication_delay_warning", AlertOp::Create);
        files.alert(dir.path(), "replication_delay_warning", AlertOp::Delete);
        let maint = dir.path().join("maintenance");
        std::fs::write(&maint, "").expect("maintenance file");
        files.look(&maint, dir.path());
        wait_until("the state file", || state.exists());
        wait_until("the write time", || files.state_written_at().is_some());
        let written = files.state_written_at().expect("written");
        assert!((chrono::Utc::now() - written).num_seconds().abs() < 10, "{written}");
        wait_until("the answer", || files.looked().is_some());
        let looked = files.looked().expect("looked");
        assert!(looked.maintenance);
        assert!(looked.alerts.contains(&("failover_has_happened", true)), "{looked:?}");
        assert!(
            looked.alerts.contains(&("replication_delay_warning", false)),
            "{looked:?}"
        );
        assert!(dir.path().join("failover_has_happened").exists());
        assert!(!dir.path().join("replication_delay_warning").exists());
        // a failure goes to the callback, and the thread goes on
        let missing = dir.path().join("no/such/dir/state.json");
        files.write_state(&missing, Arc::new(serde_json::json!({})));
        wait_until("the failure", || !lock(&failures).is_empty());
        assert_eq!(lock(&failures)[0], (Site::StateFile, missing));
        wait_until("idle", || files.busy_for(clock::monotonic()).is_none());
        // a failed write leaves the time of the last good one
        assert_eq!(files.state_written_at(), Some(written));
    }

    #[test]
    fn an_unanswered_maintenance_check_never_allows_promotion() {
        assert_eq!(maintenance_mode(Some((false, 100.0)), 101.0, 10.0, 0.0), (false, None));
        assert_eq!(maintenance_mode(Some((true, 100.0)), 101.0, 10.0, 0.0), (true, None));
        let (on, why) = maintenance_mode(Some((false, 100.0)), 111.0, 10.0, 0.0);
        assert!(on && why.is_some_and(|w| w.contains("11.0 s")));
        // the first answer not yet due counts as present, without a warning
        assert_eq!(maintenance_mode(None, 0.5, 10.0, 0.0), (true, None));
        let (on, why) = maintenance_mode(None, 12.0, 10.0, 0.0);
        assert!(on && why.is_some_and(|w| w.contains("since the start, 12.0 s")));
    }
}
