//! Wires the daemon together and runs the decision loop: the executor of the pure
//! [`Node`](crate::node::Node). The loop feeds the node its inputs (the poller's snapshots, the
//! commands' ends, reloaded configs, stop) and carries out its effects (commands run in their
//! own tasks and report back as events; alert files, history, metrics), writes the state file
//! after every check, reloads on SIGHUP and stops on SIGTERM/SIGINT.

use crate::act::command;
use crate::act::files::{self, AlertOp, Files};
use crate::clock;
use crate::config::Config;
use crate::decide::{self, Action, Memory, Mono};
use crate::hooks::Hooks;
use crate::http;
use crate::logging::LogHandle;
use crate::metrics::Statsd;
use crate::node::{CommandId, Effect, Finished, History, Input, Node, Poll, Start};
use crate::poll::{self, Poller};
use crate::prometheus::Counters;
use crate::series::Series;
use crate::state::StateDocument;
use crate::supervise;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

/// How long shutdown may take before we stop waiting for tasks.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(1500);
/// How long reading the config on SIGHUP may take (a FIFO or a hung mount never answers); the
/// running config stays when it does not answer in time.
const RELOAD_TIMEOUT: Duration = Duration::from_secs(10);
/// On stop, how long the events still queued for `event_command` (`daemon_stop` among them)
/// may take to run.
const HOOKS_STOP_WAIT: Duration = Duration::from_secs(2);
/// How long READY=1 waits for the first round's state file to be written.
const READY_WRITE_WAIT: Duration = Duration::from_secs(5);
/// On stop, how much longer than `failover_command_timeout` we wait for a running failover or
/// follow (whose own timeout then kills it) before exiting anyway.
const STOP_MARGIN: Duration = Duration::from_secs(5);

/// Something a background task reports to the loop.
#[derive(Debug)]
enum Event {
    /// A command the node started ended (the id it was started with).
    Finished(CommandId, Finished),
    /// The config file read for a SIGHUP (`None`: it did not answer within [`RELOAD_TIMEOUT`]).
    Reloaded(Box<Reload>),
}

/// A config read for a SIGHUP: the config, its warnings and its
/// [`crate::config::environment_problems`] (logged as errors; the config still applies).
type Loaded = (Config, Vec<String>, Vec<String>);

/// What a SIGHUP's config read gave: `None` when it did not answer in time.
type Reload = Option<Result<Loaded, crate::config::ConfigError>>;

/// The new config and its warnings, or why the reload failed (a read that did not answer in
/// time is a failure like any other, recorded as one).
fn reload_outcome(result: Reload, path: &std::path::Path) -> Result<Loaded, String> {
    match result {
        Some(Ok(loaded)) => Ok(loaded),
        Some(Err(e)) => Err(e.to_string()),
        None => Err(format!(
            "reading {} did not finish within {} s",
            path.display(),
            RELOAD_TIMEOUT.as_secs()
        )),
    }
}

/// Tells systemd we are up (`READY=1`), alive (`WATCHDOG=1`) or stopping, when run under it.
fn notify_systemd(state: &str) {
    if let Some(path) = std::env::var_os("NOTIFY_SOCKET") {
        notify_socket(&path, state);
    }
}

/// Sends `state` to the notify socket at `path` without ever blocking: the decision loop
/// calls it after every check, and a blocking send to a notify socket nobody reads (its queue
/// full) would hang the loop. A message that does not fit is dropped; the watchdog then sees
/// no news, which is the truth.
fn notify_socket(path: &std::ffi::OsStr, state: &str) {
    let Ok(sock) = std::os::unix::net::UnixDatagram::unbound() else {
        return;
    };
    if sock.set_nonblocking(true).is_err() {
        return;
    }
    let bytes = path.as_encoded_bytes();
    let result = if let Some(name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        std::os::unix::net::SocketAddr::from_abstract_name(name).and_then(|a| sock.send_to_addr(state.as_bytes(), &a))
    } else {
        sock.send_to(state.as_bytes(), path)
    };
    match result {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
            tracing::debug!(target: "pglookout", "systemd's notify socket is full: {state} dropped");
        }
        Err(e) => tracing::warn!(target: "pglookout", "cannot notify systemd: {e}"),
        Ok(_) => {}
    }
}

/// The file thread. Its failures are logged, counted and sent to statsd (`exception`, with
/// the original's `where` tags) as if the loop wrote the files itself: the thread changes
/// nothing an operator sees.
fn start_files(counters: &Arc<Counters>, statsd: &watch::Receiver<Statsd>) -> std::io::Result<Files> {
    let (counters, statsd) = (counters.clone(), statsd.clone());
    let state_failures = std::sync::atomic::AtomicU64::new(0);
    Files::start(move |f: files::Failure| {
        let shown = f.path.display();
        let site = match f.site {
            files::Site::StateFile => {
                let n = state_failures.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                counters.state_write_failed();
                tracing::error!(target: "pglookout", "cannot write the state file {shown} ({n} failures so far): {}", f.error);
                "write_cluster_state_to_json_file"
            }
            files::Site::CreateAlert => {
                tracing::error!(target: "pglookout", "cannot create the alert file {shown}: {}", f.error);
                "create_alert_file"
            }
            files::Site::DeleteAlert => {
                tracing::error!(target: "pglookout", "cannot delete the alert file {shown}: {}", f.error);
                "delete_alert_file"
            }
            files::Site::EventLog => {
                tracing::error!(target: "pglookout", "cannot append to the event history {shown}: {}", f.error);
                "write_event_log"
            }
        };
        statsd
            .borrow()
            .count("exception", &[("exception", "OSError"), ("where", site)]);
    })
}

struct Loop {
    path: PathBuf,
    /// The decision loop's state: config, memory, running commands.
    node: Node,
    config_tx: watch::Sender<Arc<Config>>,
    statsd_tx: watch::Sender<Statsd>,
    log: LogHandle,
    poller: Poller,
    /// Whether the poller was last seen unhealthy (to log changes only).
    monitor_unhealthy: bool,
    events: mpsc::Sender<Event>,
    status_tx: watch::Sender<Arc<serde_json::Value>>,
    /// What we say of our own node (served in its entry of `/state.json`) and whether it
    /// holds no lease (the `/primary` and `/health` answers).
    own_tx: watch::Sender<http::OwnStatus>,
    start: f64,
    files: Files,
    /// The number of the latest state document handed to the file thread.
    state_seq: u64,
    /// A SIGHUP's config read has not returned yet: set when it starts, cleared by the reading
    /// thread itself when the read returns, even after [`RELOAD_TIMEOUT`] (a read stuck on a
    /// hung mount then keeps later SIGHUPs from starting a thread each).
    reload_reading: Arc<std::sync::atomic::AtomicBool>,
    /// Why the maintenance file's state is unknown, while it is (to log changes only).
    maintenance_unknown: Option<String>,
    /// The config the HTTP listener was started with (its keys need a restart), and the keys
    /// that last differed from it (to log changes only).
    listener: (Arc<Config>, Vec<String>),
    counters: Arc<Counters>,
    /// The `primary_conninfo` our standby had before `decide::receiver` cut it (it may hold
    /// a password: never logged, never served).
    receiver_conninfo: Arc<std::sync::Mutex<Option<String>>>,
    /// When `check` last completed, for `/liveness`.
    decided: Arc<clock::Beat>,
    /// Lag over time and the marks, fed here, served by `/series`.
    series: Arc<std::sync::Mutex<Series>>,
    /// `event_command`'s queue: every event recorded is handed to it.
    hooks: Hooks,
    /// Our latest switchover's steps, served by `GET /switchover`.
    switchover_progress: crate::act::switchover::Shared,
    /// Where the switchover's steps report to this loop.
    switchover_reports: mpsc::Sender<crate::act::switchover::Report>,
}

impl Loop {
    fn statsd(&self) -> Statsd {
        self.statsd_tx.borrow().clone()
    }

    /// SIGHUP: reads the config off the loop, with a deadline; the result comes back as
    /// [`Event::Reloaded`].
    fn reload(&mut self) {
        use std::sync::atomic::Ordering;
        if self.reload_reading.swap(true, Ordering::AcqRel) {
            self.reload_failed(format!(
                "SIGHUP ignored: the read of {} started by an earlier SIGHUP has not returned yet",
                self.path.display()
            ));
            return;
        }
        tracing::info!(target: "pglookout", "SIGHUP: reloading {}", self.path.display());
        let path = self.path.clone();
        let events = self.events.clone();
        let reading = self.reload_reading.clone();
        supervise::spawn("config reload", self.counters.clone(), async move {
            let read = tokio::task::spawn_blocking(move || {
                /// Clears the flag when the read returns, or panics.
                struct Done(Arc<std::sync::atomic::AtomicBool>);
                impl Drop for Done {
                    fn drop(&mut self) {
                        self.0.store(false, std::sync::atomic::Ordering::Release);
                    }
                }
                let _done = Done(reading);
                Config::load(&path).map(|(config, mut warnings)| {
                    warnings.extend(crate::config::trust_warnings(&config));
                    let problems = crate::config::environment_problems(&config);
                    (config, warnings, problems)
                })
            });
            let result = tokio::time::timeout(RELOAD_TIMEOUT, read)
                .await
                .ok()
                .and_then(Result::ok);
            let _ = events.send(Event::Reloaded(Box::new(result))).await;
        });
    }

    fn apply_reload(&mut self, result: Reload) {
        match reload_outcome(result, &self.path) {
            Ok((new, warnings, problems)) => {
                for w in warnings {
                    tracing::warn!(target: "pglookout", "{w}");
                }
                for p in problems {
                    tracing::error!(target: "pglookout", "{p}");
                }
                let pending = listener_changes(&self.listener.0, &new);
                if pending != self.listener.1 {
                    if pending.is_empty() {
                        tracing::info!(target: "pglookout", "the HTTP listener's keys are back to the values it runs with");
                    } else {
                        tracing::warn!(target: "pglookout", "{} take effect only after a restart; the HTTP API keeps listening as started", pending.join(", "));
                    }
                    self.listener.1 = pending;
                }
                self.log.apply(&new);
                self.statsd_tx.send_replace(Statsd::new(new.statsd.as_ref()));
                tracing::debug!(target: "pglookout", "new config: {}", new.masked_summary());
                let new = Arc::new(new);
                self.config_tx.send_replace(new.clone());
                let source = self.path.display().to_string();
                let step = self.node.handle(Input::Reloaded { config: new, source }, mono_now());
                self.execute(step.effects);
            }
            Err(why) => self.reload_failed(why),
        }
    }

    /// Every reload that does not apply ends here: logged, recorded in the event history and
    /// counted, the running config kept.
    fn reload_failed(&mut self, why: String) {
        tracing::error!(target: "pglookout", "config reload failed, keeping the running config: {why}");
        self.event("config_reload_failed", &why, None, None);
        self.statsd()
            .count("exception", &[("exception", "ConfigError"), ("where", "load_config")]);
    }

    /// Appends to the event history (on the file thread) and queues `event_command` for it;
    /// failovers, new masters and fences are also marks on the lag chart.
    fn event(&self, kind: &str, reason: &str, old_master: Option<&str>, new_master: Option<&str>) {
        let own = self.node.config().own_db.as_deref().unwrap_or_default();
        let now = chrono::Utc::now();
        let mark = match (kind, new_master) {
            ("failover_started", _) => Some(("failover", own)),
            ("fence_started", _) => Some(("fence", own)),
            ("master_changed", Some(new)) if old_master.is_some() => Some(("master_changed", new)),
            _ => None,
        };
        if let Some((mark, node)) = mark {
            lock(&self.series).mark(unix_seconds(now), mark, node);
        }
        let e = crate::events::Event::new(now, own, kind, reason).masters(old_master, new_master);
        self.files.event(&self.node.config().event_log_path, e.to_line());
        let config = self.node.config();
        let env = crate::hooks::env(config.own_db.as_deref(), kind, reason, old_master, new_master);
        self.hooks.submit(config, env);
    }

    fn history(&self, h: &History) {
        let (old, new) = h.masters();
        self.event(h.kind(), &h.reason(), old, new);
    }

    fn command_env(&self, reason: &str, old_master: Option<&str>) -> Vec<(&'static str, String)> {
        vec![
            (
                "PGLOOKOUT_OWN_NODE",
                self.node.config().own_db.clone().unwrap_or_default(),
            ),
            ("PGLOOKOUT_OLD_MASTER", old_master.unwrap_or_default().to_string()),
            ("PGLOOKOUT_REASON", reason.to_string()),
        ]
    }

    /// Runs a command whose outcome the loop must hear about, supervised: a crashed task is a
    /// failed command, so the "running" flag is always cleared. The debug builds' fault point
    /// (`supervise::fault_point`) is `fence-task` or `failover-task`. `before`: the setting a
    /// promotion needs first (synchronous_mode); the command does not run if a required one
    /// cannot be set.
    fn spawn_reported(
        &self,
        what: &'static str,
        cmd: String,
        env: Vec<(&'static str, String)>,
        id: CommandId,
        done: fn(bool) -> Finished,
        before: Option<crate::act::sync::BeforePromotion>,
    ) {
        let (secs, fault_site) = if what == "fence_command" {
            (self.node.config().fence_command_timeout, "fence-task")
        } else {
            (self.node.config().failover_command_timeout, "failover-task")
        };
        let timeout = Duration::from_secs_f64(secs);
        let (events, counters) = (self.events.clone(), self.counters.clone());
        let deadline = Duration::from_secs_f64(self.node.config().db_poll_timeout * 2.0);
        tokio::spawn(async move {
            let run = async move {
                supervise::fault_point(fault_site);
                if let Some(before) = before {
                    if let Err(e) = before.run(deadline).await {
                        let why = format!("synchronous_standby_names could not be set first ({e})");
                        return command::Outcome::NotStarted(why);
                    }
                }
                command::run(what, &cmd, timeout, &env).await
            };
            let outcome = supervise::run(what, &counters, run)
                .await
                .unwrap_or(command::Outcome::Crashed);
            let _ = events.send(Event::Finished(id, done(outcome.success()))).await;
        });
    }

    /// Carries out the node's effects, in order.
    fn execute(&mut self, effects: Vec<Effect>) {
        for effect in effects {
            match effect {
                Effect::Do(action) => self.act(&action),
                Effect::Publish(status) => self.publish(status),
                Effect::Start(id, start) => self.start(id, start),
                Effect::History(h) => {
                    if let History::FollowFinished { master, ok: false } = &h {
                        tracing::error!(target: "pglookout", "following the new primary {master} failed; will try again");
                    }
                    self.history(&h);
                }
                Effect::Ended { command, ok } => {
                    self.counters.command(command, ok);
                    if command == "failover_command" && !ok {
                        self.statsd().count(
                            "exception",
                            &[("exception", "CommandFailed"), ("where", "execute_external_command")],
                        );
                    }
                }
                Effect::StaleEnd { command, id } => tracing::warn!(
                    target: "pglookout",
                    "the end of {command} {id:?} answers no running command (one from before): not taken"
                ),
                Effect::FenceOverBudget { took } => tracing::warn!(
                    target: "pglookout",
                    "fence_command took {took:.2} s, more than fence_command_budget ({} s): the timing argument that keeps a standby from promoting before the fence (docs/safety.md) assumed it would not",
                    self.node.config().fence_command_budget
                ),
            }
        }
    }

    /// A decision's action that starts no command.
    fn act(&mut self, action: &Action) {
        let config = self.node.config().clone();
        match action {
            Action::RequestPoll => self.poller.poll_now(),
            Action::CreateAlert(a) => self.files.alert(&config.alert_file_dir, a.file_name(), AlertOp::Create),
            Action::WriteAlert(a, text) => {
                let op = AlertOp::Write(text.clone());
                self.files.alert(&config.alert_file_dir, a.file_name(), op)
            }
            Action::DeleteAlert(a) => self.files.alert(&config.alert_file_dir, a.file_name(), AlertOp::Delete),
            Action::SetObserverPolling(on) => self.poller.set_observer_polling(*on),
            Action::StatsdGauge { name, value } => self.statsd().gauge(name, *value, &[]),
            Action::StatsdCount { name } => self.statsd().count(name, &[]),
            Action::SetSynchronousNames { value, .. } => self.set_synchronous_names(&config, value.clone()),
            Action::SetWalReceiver { cut, master } => self.set_wal_receiver(&config, *cut, master),
            // the node hands commands over as `Effect::Start`
            Action::RunWarningCommand
            | Action::RunFailoverCommand { .. }
            | Action::RunFenceCommand { .. }
            | Action::RejoinNewPrimary { .. }
            | Action::FollowMaster { .. } => {}
        }
    }

    /// Our primary's `synchronous_standby_names`, in the background: the next poll shows
    /// whether it took (the decision core asks again, and raises an alert, if it did not).
    fn set_synchronous_names(&mut self, config: &Config, value: Option<String>) {
        let Some(conninfo) = config.own_db.as_ref().and_then(|o| config.remote_conns.get(o)).cloned() else {
            return;
        };
        let deadline = Duration::from_secs_f64(config.db_poll_timeout * 2.0);
        supervise::spawn("synchronous-names", self.counters.clone(), async move {
            let shown = value.as_deref().unwrap_or("(the server's own setting)").to_string();
            match crate::act::sync::set(
                &conninfo,
                "synchronous_standby_names",
                value.as_deref(),
                false,
                deadline,
            )
            .await
            {
                Ok(_) => tracing::info!(target: "pglookout", "synchronous_standby_names: asked for {shown:?}"),
                Err(e) => tracing::warn!(target: "pglookout",
                    "synchronous_standby_names: cannot set {shown:?} on our node ({}): {e}", conninfo.masked()),
            }
        });
    }

    /// Our standby's `primary_conninfo`, in the background (`decide::receiver`): a cut keeps
    /// the value it replaces, in this process only, for the give-back; a give-back without one
    /// (this daemon restarted meanwhile) builds it from `primary_conninfo_template`, as
    /// autofollow does. The next poll shows whether it took.
    fn set_wal_receiver(&mut self, config: &Config, cut: bool, master: &str) {
        let Some(conninfo) = config.own_db.as_ref().and_then(|o| config.remote_conns.get(o)).cloned() else {
            return;
        };
        let saved = self.receiver_conninfo.clone();
        let value = if cut {
            String::new()
        } else {
            let kept = saved.lock().ok().and_then(|s| s.clone());
            let built = || {
                let template = config.primary_conninfo_template.as_ref()?;
                let master_conn = crate::act::follow::master_conn(config, master, "follow").ok()?;
                Some(crate::decide::follow::new_primary_conninfo(template, master_conn).render())
            };
            match kept.or_else(built) {
                Some(v) => v,
                None => {
                    tracing::error!(target: "pglookout",
                        "cannot give our standby's primary_conninfo back: the value the cut replaced is not known (this daemon restarted since) and primary_conninfo_template is not set; set primary_conninfo and reload the server");
                    return;
                }
            }
        };
        let deadline = Duration::from_secs_f64(config.db_poll_timeout * 2.0);
        let master = master.to_string();
        supervise::spawn("wal-receiver", self.counters.clone(), async move {
            match crate::act::sync::set(&conninfo, "primary_conninfo", Some(&value), cut, deadline).await {
                Ok(before) if cut => {
                    tracing::warn!(target: "pglookout",
                        "our standby stops confirming WAL to {master}, which a strict majority of the voters reports gone: primary_conninfo emptied");
                    match before.filter(|b| !b.is_empty()) {
                        Some(b) => {
                            if let Ok(mut s) = saved.lock() {
                                *s = Some(b);
                            }
                        }
                        None => tracing::warn!(target: "pglookout",
                            "our standby's primary_conninfo could not be read before the cut (the role needs pg_read_all_settings) or was empty: it is given back from primary_conninfo_template"),
                    }
                }
                Ok(_) => {
                    tracing::info!(target: "pglookout", "our standby streams from {master} again: primary_conninfo given back");
                    if let Ok(mut s) = saved.lock() {
                        *s = None;
                    }
                }
                Err(e) => tracing::warn!(target: "pglookout",
                    "cannot {} our standby's primary_conninfo ({}): {e}", if cut { "empty" } else { "give back" }, conninfo.masked()),
            }
        });
    }

    fn start(&mut self, id: CommandId, start: Start) {
        match start {
            Start::Warning { master } => self.run_warning_command(master.as_deref()),
            Start::Failover { reason, old_master } => self.run_failover_command(id, &reason, old_master.as_deref()),
            Start::Fence { reason, new_master } => self.run_fence_command(id, &reason, new_master.as_deref()),
            Start::Rejoin { master } => self.start_rejoin(id, master),
            Start::Follow { master, restart_anyway } => self.start_follow(id, master, restart_anyway),
        }
    }

    /// `over_warning_limit_command`, in the background; nothing waits for it.
    fn run_warning_command(&mut self, master: Option<&str>) {
        if let Some(cmd) = self.node.config().over_warning_limit_command.clone() {
            let env = self.command_env("replication lag over warning limit", master);
            let timeout = Duration::from_secs_f64(self.node.config().failover_command_timeout);
            let counters = self.counters.clone();
            supervise::spawn("over_warning_limit_command", self.counters.clone(), async move {
                let outcome = command::run("over_warning_limit_command", &cmd, timeout, &env).await;
                counters.command("over_warning_limit_command", outcome.success());
            });
        }
    }

    /// `failover_command`, its result reported back as [`Event::Finished`].
    fn run_failover_command(&mut self, id: CommandId, reason: &str, old_master: Option<&str>) {
        self.counters.failover();
        let cmd = self.node.config().failover_command.clone();
        let env = self.command_env(reason, old_master);
        let done = |ok| Finished::Failover { ok };
        let config = self.node.config();
        let before = crate::decide::sync_manager::before_promotion(config).and_then(|value| {
            let conninfo = config.own_db.as_ref().and_then(|o| config.remote_conns.get(o))?.clone();
            Some(crate::act::sync::BeforePromotion { conninfo, value })
        });
        self.spawn_reported("failover_command", cmd, env, id, done, before);
    }

    /// `fence_command`, its result reported back as [`Event::Finished`].
    fn run_fence_command(&mut self, id: CommandId, reason: &str, new_master: Option<&str>) {
        let config = self.node.config().clone();
        let Some(cmd) = config.fence_command.clone() else {
            // the node starts a fence only with a fence command; its end must still come back
            return self.on_event(Event::Finished(id, Finished::Fence { ok: false }));
        };
        self.counters.fence();
        let env = vec![
            ("PGLOOKOUT_OWN_NODE", config.own_db.clone().unwrap_or_default()),
            ("PGLOOKOUT_NEW_MASTER", new_master.unwrap_or_default().to_string()),
            ("PGLOOKOUT_REASON", reason.to_string()),
            // for a fence that survives a restart (packaging/fence.sh)
            (
                "PGLOOKOUT_DATA_DIRECTORY",
                config
                    .pg_data_directory
                    .as_ref()
                    .map(|d| d.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            ),
        ];
        self.spawn_reported("fence_command", cmd, env, id, |ok| Finished::Fence { ok }, None);
    }

    /// `rejoin_old_master`'s steps (`act::rejoin`), reported back as [`Event::Finished`].
    fn start_rejoin(&mut self, id: CommandId, master: String) {
        let config = self.node.config().clone();
        let (events, counters) = (self.events.clone(), self.counters.clone());
        tokio::spawn(async move {
            let target = master.clone();
            let run = async move {
                supervise::fault_point("rejoin-task");
                crate::act::rejoin::rejoin(&config, &target).await
            };
            // the decision core records the reason as text
            let result = match supervise::run("rejoin", &counters, run).await {
                Some(result) => result.map_err(|e| e.to_string()),
                None => Err("the rejoin task crashed".into()),
            };
            let _ = events
                .send(Event::Finished(id, Finished::Rejoin { master, result }))
                .await;
        });
    }

    /// Autofollow's steps (`act::follow`), reported back as [`Event::Finished`].
    fn start_follow(&mut self, id: CommandId, master: String, restart_anyway: bool) {
        let config = self.node.config().clone();
        let events = self.events.clone();
        let counters = self.counters.clone();
        tokio::spawn(async move {
            let target = master.clone();
            let run = async move {
                supervise::fault_point("follow-task");
                crate::act::follow::follow(&config, &target, restart_anyway).await
            };
            let ok = supervise::run("autofollow", &counters, run).await.unwrap_or(false);
            let _ = events.send(Event::Finished(id, Finished::Follow { master, ok })).await;
        });
    }

    /// A background task's report: a command's end goes to the node, a config read is applied.
    fn on_event(&mut self, event: Event) {
        let (id, finished) = match event {
            Event::Reloaded(result) => return self.apply_reload(*result),
            Event::Finished(id, finished) => (id, finished),
        };
        let step = self.node.handle(Input::Finished(id, finished), mono_now());
        self.execute(step.effects);
    }

    /// `POST /pause` or `POST /resume`: the node records it (history, our word, the state
    /// file at the next check).
    fn pause(&mut self, paused: bool) {
        tracing::warn!(target: "pglookout", "the cluster is {} by the API",
            if paused { "paused (no failover, fence, follow or rejoin)" } else { "resumed" });
        let step = self.node.handle(
            Input::Pause {
                paused,
                at: chrono::Utc::now(),
            },
            mono_now(),
        );
        self.execute(step.effects);
    }

    /// `POST /failover?to=` our node: the node records it (history) and polls at once.
    fn manual_failover(&mut self) {
        tracing::warn!(target: "pglookout", "the operator asks for a failover to our node (pglookout-ctl failover): the rest of the lag window is skipped, no other rule");
        let step = self.node.handle(Input::ManualFailover, mono_now());
        self.execute(step.effects);
    }

    /// A switchover request from the HTTP API (see `act::switchover`, `decide::switchover`).
    fn switchover(&mut self, ask: http::SwitchoverAsk) {
        use crate::decide::switchover::{PromoteRequest, RequestState};
        match ask {
            http::SwitchoverAsk::Start { to, timeout, reply } => {
                let snapshot = self.poller.snapshots.borrow().clone();
                let checked = decide::switchover::check_request(
                    self.node.config(),
                    self.node.memory(),
                    &snapshot.nodes,
                    &snapshot.observers,
                    chrono::Utc::now(),
                    self.node.running().failover(),
                    to.as_deref(),
                );
                let target = match checked {
                    Ok(target) => target,
                    Err(why) => {
                        tracing::warn!(target: "pglookout", "switchover refused: {why}");
                        let _ = reply.send(Err(why));
                        return;
                    }
                };
                let config = self.node.config().clone();
                let from = config.own_db.clone().unwrap_or_default();
                let since = chrono::Utc::now();
                let id = format!("{from}-{}", since.timestamp_millis());
                let steps = crate::act::switchover::Steps {
                    config,
                    id: id.clone(),
                    from,
                    to: target.clone(),
                    timeout,
                    progress: self.switchover_progress.clone(),
                    report: self.switchover_reports.clone(),
                    snapshots: self.poller.snapshots.clone(),
                    started: std::time::Instant::now(),
                    since,
                };
                let word = steps.announcement();
                let step = self.node.handle(Input::SwitchoverStep(word), mono_now());
                self.execute(step.effects);
                let (reports, counters) = (self.switchover_reports.clone(), self.counters.clone());
                tokio::spawn(async move {
                    let result = supervise::run("switchover", &counters, async move { steps.run().await })
                        .await
                        .unwrap_or_else(|| Err("the switchover task crashed".into()));
                    let _ = reports.send(crate::act::switchover::Report::Ended(result)).await;
                });
                let _ = reply.send(Ok((id, target)));
            }
            http::SwitchoverAsk::Promote {
                from,
                lsn,
                id,
                window,
                reply,
            } => {
                tracing::warn!(target: "pglookout", "{from}'s daemon asks for our node's promotion (switchover {id}, final position {lsn})");
                let request = PromoteRequest {
                    id,
                    from,
                    lsn,
                    asked: mono_now(),
                    round: self.poller.snapshots.borrow().round,
                    window,
                    state: RequestState::Asked,
                };
                let (taken, step) = self.node.ask_promotion(request);
                self.execute(step.effects);
                let _ = reply.send(taken);
            }
            http::SwitchoverAsk::Withdraw { reply } => {
                let (withdrawn, step) = self.node.withdraw_promotion();
                tracing::warn!(target: "pglookout", "the switchover's promotion request is withdrawn: {withdrawn:?}");
                self.execute(step.effects);
                let _ = reply.send(withdrawn);
            }
        }
    }

    /// A report of our switchover's steps.
    fn switchover_report(&mut self, report: crate::act::switchover::Report) {
        let input = match report {
            crate::act::switchover::Report::Step(word) => Input::SwitchoverStep(word),
            crate::act::switchover::Report::Ended(result) => {
                match &result {
                    Ok(how) => tracing::warn!(target: "pglookout", "switchover succeeded: {how}"),
                    Err(why) => tracing::error!(target: "pglookout", "switchover failed: {why}"),
                }
                crate::act::switchover::Steps::ended(&self.switchover_progress, &result);
                Input::SwitchoverEnded(result)
            }
        };
        let step = self.node.handle(input, mono_now());
        self.execute(step.effects);
    }

    fn check(&mut self) {
        supervise::fault_point("decision-loop");
        let snapshot = self.poller.snapshots.borrow().clone();
        let now = mono_now();
        let (maintenance_mode, maintenance_seen) = self.maintenance_mode(now.0);
        let poll = Poll {
            nodes: &snapshot.nodes,
            observers: &snapshot.observers,
            round: snapshot.round,
            wall_now: chrono::Utc::now(),
            maintenance_mode,
            maintenance_seen,
        };
        let wall_now = poll.wall_now;
        let step = self.node.handle(Input::Check(poll), now);
        let Some(decision) = step.decision else {
            return;
        };
        lock(&self.series).record(&snapshot, unix_seconds(wall_now), self.node.config().db_poll_interval);
        self.counters.decision();
        log_decision(&decision);
        self.execute(step.effects);
        self.watch_monitor_health(&snapshot, now.0);
        self.write_state(&snapshot, &decision, wall_now, now);
    }

    /// The maintenance file's answer to the previous check's question (the file thread never
    /// makes us wait), and the next question: whether it counts as present, and whether it was
    /// seen to exist (an answer in time, not an unanswered look).
    fn maintenance_mode(&mut self, now: f64) -> (bool, bool) {
        let answer = self.files.maintenance();
        let (maintenance_mode, unknown) = files::maintenance_mode(
            answer,
            now,
            crate::health::decision_limit(self.node.config()),
            self.start,
        );
        self.files.look(
            &self.node.config().maintenance_mode_file,
            &self.node.config().alert_file_dir,
        );
        match (&unknown, &self.maintenance_unknown) {
            (Some(why), None) => {
                tracing::warn!(target: "pglookout", "{why}; it counts as present (no failover) until it answers");
            }
            (None, Some(_)) => tracing::info!(target: "pglookout", "the maintenance file check answers again"),
            _ => {}
        }
        let seen = unknown.is_none() && answer.is_some_and(|(exists, _)| exists);
        self.maintenance_unknown = unknown;
        (maintenance_mode, seen)
    }

    /// What our own node's entry of `/state.json` says (our failover announcement, the voters'
    /// digest) and whether we hold a lease.
    fn publish(&mut self, status: http::OwnStatus) {
        self.own_tx.send_if_modified(|s| {
            let changed = *s != status;
            if changed {
                *s = status;
            }
            changed
        });
    }

    /// `cluster_monitor_health_timeout_seconds`: counted every check, as the original; logged
    /// when it starts and when it ends.
    fn watch_monitor_health(&mut self, snapshot: &crate::state::Snapshot, now: f64) {
        let unhealthy = decide::monitor_unhealthy(
            self.node.config().cluster_monitor_health_timeout_seconds,
            Some(self.start),
            snapshot.last_round_at,
            now,
        );
        if unhealthy {
            self.statsd().count("cluster_monitor_health_timeout", &[]);
        }
        if unhealthy != self.monitor_unhealthy {
            self.monitor_unhealthy = unhealthy;
            if unhealthy {
                tracing::warn!(target: "pglookout", "no poll round has completed within {} s", self.node.config().cluster_monitor_health_timeout_seconds.unwrap_or_default());
            } else {
                tracing::info!(target: "pglookout", "poll rounds complete again");
            }
        }
    }

    /// The state file, `GET /status`, and the StatsD gauges of this check.
    fn write_state(
        &mut self,
        snapshot: &crate::state::Snapshot,
        decision: &decide::Decision,
        wall_now: chrono::DateTime<chrono::Utc>,
        now: Mono,
    ) {
        let decision_json = serde_json::to_value(decision).ok();
        let doc = StateDocument {
            db_nodes: &snapshot.nodes,
            observer_nodes: &snapshot.observers,
            current_master: self.node.memory().current_master.as_deref(),
            decision: decision_json.as_ref(),
            lease_renewed_at: decide::fence::lease_renewed_wall(self.node.memory(), wall_now, now),
            pause: self.node.memory().pause.as_ref(),
            switchover: self.node.memory().switchover.own.as_ref(),
        };
        let status = serde_json::to_value(&doc).unwrap_or_default();
        let status = Arc::new(status);
        self.state_seq = self
            .files
            .write_state(&self.node.config().json_state_file_path, status.clone());
        let statsd = self.statsd();
        if statsd.is_enabled() {
            let looked = self.files.looked();
            let alerts = looked.as_ref().map(|l| l.alerts.clone()).unwrap_or_default();
            let mut extra =
                crate::prometheus::Extra::new(self.node.config(), self.node.memory().current_master.as_deref(), alerts);
            extra.alert_dir_writable = looked.map(|l| l.alert_dir_writable);
            statsd.gauges(&crate::prometheus::gauges(snapshot, &extra, wall_now));
        }
        self.status_tx.send_replace(status);
        self.decided.set(clock::monotonic());
    }
}

/// A decision that changed something is logged, at warning level when it runs the failover
/// command.
fn log_decision(decision: &decide::Decision) {
    if decision.changed {
        let reasons = decision.reasons.join("; ");
        if decision
            .actions
            .iter()
            .any(|a| matches!(a, Action::RunFailoverCommand { .. }))
        {
            tracing::warn!(target: "pglookout", "decision: {} ({reasons})", decision.summary);
        } else {
            tracing::info!(target: "pglookout", "decision: {} ({reasons})", decision.summary);
        }
    }
}

fn unix_seconds(t: chrono::DateTime<chrono::Utc>) -> f64 {
    t.timestamp_micros() as f64 / 1e6
}

/// The series lock: never held across an await; a panic while holding it leaves the series
/// usable (they are only numbers).
fn lock(series: &std::sync::Mutex<Series>) -> std::sync::MutexGuard<'_, Series> {
    series.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The keys of the HTTP listener (read only at start) whose value in `new` differs from the
/// config it was started with, each as `key (running → new)`.
fn listener_changes(running: &Config, new: &Config) -> Vec<String> {
    let show = |p: &Option<PathBuf>| p.as_ref().map_or("none".to_string(), |p| p.display().to_string());
    let mut out = Vec::new();
    if new.http_address != running.http_address {
        out.push(format!(
            "http_address ({} → {})",
            running.http_address, new.http_address
        ));
    }
    if new.http_port != running.http_port {
        out.push(format!("http_port ({} → {})", running.http_port, new.http_port));
    }
    for (key, a, b) in [
        ("http_tls_cert", &running.http_tls_cert, &new.http_tls_cert),
        ("http_tls_key", &running.http_tls_key, &new.http_tls_key),
    ] {
        if a != b {
            out.push(format!("{key} ({} → {})", show(a), show(b)));
        }
    }
    out
}

/// What [`run`] keeps beside the loop: the tasks to stop and the channels it selects on.
struct Wiring {
    cancel: CancellationToken,
    http_task: tokio::task::JoinHandle<()>,
    events: mpsc::Receiver<Event>,
    /// `POST /pause` (true) and `POST /resume` (false), from the HTTP API.
    pauses: mpsc::Receiver<bool>,
    /// `POST /failover?to=` our node, from the HTTP API.
    failovers: mpsc::Receiver<()>,
    /// The switchover's requests, from the HTTP API, and its steps' reports.
    switchovers: mpsc::Receiver<http::SwitchoverAsk>,
    switchover_reports: mpsc::Receiver<crate::act::switchover::Report>,
    snapshots: watch::Receiver<Arc<poll::Snapshot>>,
    counters: Arc<Counters>,
}

/// Starts everything but the loop itself: the file thread, the poller, the HTTP API. Errors
/// here happen before anything was started that a failure would leave half-done.
async fn start(path: PathBuf, config: Config, log: LogHandle) -> anyhow::Result<(Loop, Wiring)> {
    let tls = http::tls_acceptor(&config)?;
    let listener = http::bind(&config.http_address, config.http_port).await?;
    let cancel = CancellationToken::new();

    let config = Arc::new(config);
    let (config_tx, config_rx) = watch::channel(config.clone());
    let (statsd_tx, statsd_rx) = watch::channel(Statsd::new(config.statsd.as_ref()));
    let counters = Arc::new(Counters::default());
    let files = start_files(&counters, &statsd_rx)?;
    // Before the first decision, so that it does not find the maintenance file unknown.
    files.look(&config.maintenance_mode_file, &config.alert_file_dir);
    let (alert_config, alert_files) = (config_rx.clone(), files.clone());
    let alert_fn: Arc<dyn Fn(&str) + Send + Sync> = Arc::new(move |name: &str| {
        alert_files.alert(&alert_config.borrow().alert_file_dir, name, AlertOp::Create);
    });
    let config_rx_http = config_rx.clone();
    let sent: poll::Sent = Arc::new(|c| decide::voters::sent_with_fetches(c).map(|(n, d)| (n.to_string(), d)));
    let poller = poll::start(
        config_rx,
        statsd_rx,
        alert_fn,
        sent,
        counters.clone(),
        cancel.child_token(),
    );
    let (status_tx, status_rx) = watch::channel(Arc::new(serde_json::Value::Null));
    let (own_tx, own_rx) = watch::channel(http::OwnStatus::default());
    let decided = Arc::new(clock::Beat::default());
    // a benchmark's knob (`pglab bench-poll`): every series full from its first sample
    let prefill = std::env::var_os("PGLOOKOUT_SERIES_PREFILL").is_some_and(|v| v == "1");
    let series = Arc::new(std::sync::Mutex::new(Series::new(prefill)));
    let (pause_tx, pauses) = mpsc::channel(4);
    let (failover_tx, failovers) = mpsc::channel(4);
    let (switchover_tx, switchovers) = mpsc::channel(4);
    let (switchover_reports_tx, switchover_reports) = mpsc::channel(16);
    let switchover_progress = crate::act::switchover::Shared::default();
    let http_task = tokio::spawn(http::serve(
        listener,
        tls,
        http::Api {
            pause: pause_tx,
            failover: failover_tx,
            switchover: switchover_tx,
            switchover_progress: switchover_progress.clone(),
            poller: poller.clone(),
            status: status_rx,
            own: own_rx,
            config: config_rx_http,
            start: clock::monotonic(),
            decided: decided.clone(),
            files: files.clone(),
            counters: counters.clone(),
            series: series.clone(),
            relays: Default::default(),
        },
        cancel.child_token(),
    ));
    let (events_tx, events) = mpsc::channel(16);
    let start = clock::monotonic();
    let snapshots = poller.snapshots.clone();
    let lp = Loop {
        path,
        node: Node::new(config.clone(), starting_memory(&config, Mono(start))),
        config_tx,
        statsd_tx,
        log,
        poller,
        monitor_unhealthy: false,
        events: events_tx,
        status_tx,
        own_tx,
        start,
        files,
        state_seq: 0,
        reload_reading: Arc::default(),
        maintenance_unknown: None,
        listener: (config, Vec::new()),
        counters: counters.clone(),
        receiver_conninfo: Arc::default(),
        decided,
        series,
        hooks: Hooks::start(counters.clone()),
        switchover_progress,
        switchover_reports: switchover_reports_tx,
    };
    let wiring = Wiring {
        cancel,
        http_task,
        events,
        pauses,
        failovers,
        switchovers,
        switchover_reports,
        snapshots,
        counters,
    };
    Ok((lp, wiring))
}

/// Runs the daemon until SIGTERM/SIGINT. Errors here happen before anything was started.
pub async fn run(path: PathBuf, config: Config, log: LogHandle) -> anyhow::Result<()> {
    let mut hup = signal(SignalKind::hangup())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let (mut lp, mut w) = start(path, config, log).await?;
    let started = format!(
        "pglookout {} started with {}",
        env!("CARGO_PKG_VERSION"),
        lp.path.display()
    );
    lp.event("daemon_start", &started, None, None);
    let watchdog = std::env::var_os("WATCHDOG_USEC").is_some();
    let mut last_round = 0;
    let mut ready = false;
    let mut next_check = tokio::time::Instant::now();
    loop {
        let check_now = tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => { lp.reload(); false }
            Some(ev) = w.events.recv() => { lp.on_event(ev); true }
            Some(paused) = w.pauses.recv() => { lp.pause(paused); true }
            Some(()) = w.failovers.recv() => { lp.manual_failover(); true }
            Some(ask) = w.switchovers.recv() => { lp.switchover(ask); false }
            Some(report) = w.switchover_reports.recv() => { lp.switchover_report(report); false }
            changed = w.snapshots.changed() => {
                if changed.is_err() {
                    w.cancel.cancel();
                    anyhow::bail!("the poller stopped unexpectedly");
                }
                let round = w.snapshots.borrow_and_update().round;
                let advanced = round != last_round;
                last_round = round;
                advanced
            }
            _ = tokio::time::sleep_until(next_check) => true,
            ended = &mut w.http_task => {
                // half-alive without an API, peers and load balancers would see us as gone
                w.cancel.cancel();
                if ended.as_ref().is_err_and(|e| e.is_panic()) {
                    w.counters.task_crashed("HTTP server");
                }
                anyhow::bail!("the HTTP server stopped unexpectedly");
            }
        };
        if check_now {
            lp.check();
            // the decision loop made progress: systemd's watchdog (WatchdogSec=) restarts a
            // daemon that stops sending this
            if watchdog {
                notify_systemd("WATCHDOG=1");
            }
            let interval = lp.node.config().replication_state_check_interval;
            next_check = tokio::time::Instant::now() + Duration::from_secs_f64(interval);
            if !ready && last_round > 0 {
                ready = true;
                lp.ready().await;
            }
        }
    }
    tracing::info!(target: "pglookout", "shutting down");
    lp.event("daemon_stop", "SIGTERM or SIGINT", None, None);
    notify_systemd("STOPPING=1");
    lp.finish_running_commands(&mut w.events, &mut term, &mut int).await;
    // the last state file and events on disk before we go (a hung file system cannot hold us)
    lp.files.drained(Duration::from_secs(1)).await;
    if !lp.hooks.finish(HOOKS_STOP_WAIT).await {
        tracing::warn!(target: "pglookout", "stopping before event_command ran for every event recorded");
    }
    w.cancel.cancel();
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, w.http_task).await;
    Ok(())
}

/// The monotonic clock as the decision core's instant type.
fn mono_now() -> Mono {
    Mono(clock::monotonic())
}

/// The memory a daemon starts with: empty, but for the lease, which counts from the last
/// renewal our previous run wrote to the state file (read before our first write replaces it;
/// `decide::fence::restore_lease`).
fn starting_memory(config: &Config, start: Mono) -> Memory {
    let mut memory = Memory::new(start);
    if let Some(renewed) = crate::state::lease_renewed_at(&config.json_state_file_path) {
        decide::fence::restore_lease(&mut memory, config, renewed, chrono::Utc::now(), start);
        if let Some((f, v)) = config.fence_timeout.zip(memory.fence.vouched_at) {
            let left = f - (start - v);
            tracing::info!(target: "pglookout", "the previous run last saw at least half of the voters vouch at {renewed}: the lease counts from there ({left:.1} s left)");
        }
    }
    if config.own_db.is_some() {
        memory.pause = crate::state::pause_of(&config.json_state_file_path);
        if memory.paused() {
            tracing::warn!(target: "pglookout", "the cluster was paused when this daemon stopped: it stays paused (`pglookout-ctl resume` ends it)");
        }
    }
    memory
}

impl Loop {
    /// After the first poll round: READY=1 means the state file shows it
    /// (`pglookout_current_master` works once `systemctl start` returns); a write that hangs
    /// does not hold it up.
    async fn ready(&self) {
        if !self.files.state_written(self.state_seq, READY_WRITE_WAIT).await {
            tracing::warn!(target: "pglookout", "the state file was not written within {} s of the first poll round", READY_WRITE_WAIT.as_secs());
        }
        notify_systemd("READY=1");
        tracing::info!(target: "pglookout", "first poll round done");
    }

    /// On stop, a running failover or follow is let finish (within its own timeout plus a
    /// margin) before the daemon exits: a promotion or a PostgreSQL restart cut off halfway is
    /// worse than a stop that takes a little longer. Under systemd this needs `KillMode=mixed`
    /// (our unit's), which signals only the daemon and kills what is left once it has exited;
    /// a second SIGTERM or SIGINT stops at once. The poller and the HTTP API keep running
    /// meanwhile; no new decision is taken.
    async fn finish_running_commands(
        &mut self,
        events: &mut mpsc::Receiver<Event>,
        term: &mut tokio::signal::unix::Signal,
        int: &mut tokio::signal::unix::Signal,
    ) {
        self.node.handle(Input::Stop, mono_now());
        let running = self.node.running().clone();
        if !running.any() {
            return;
        }
        // a follow runs pg_stop_command then pg_start_command, each with the command timeout
        let commands = if running.follow() { 2.0 } else { 1.0 };
        let config = self.node.config().clone();
        let mut bound = Duration::from_secs_f64(commands * config.failover_command_timeout) + STOP_MARGIN;
        if running.rejoin() {
            bound = bound.max(Duration::from_secs_f64(crate::decide::rejoin::rejoin_deadline(&config)) + STOP_MARGIN);
        }
        tracing::warn!(target: "pglookout", "waiting up to {} s for the running {} to finish before stopping (send SIGTERM again to stop now)",
            bound.as_secs(), running.what());
        let deadline = tokio::time::Instant::now() + bound;
        let mut watchdog = tokio::time::interval(Duration::from_secs(1));
        while self.node.running().any() {
            tokio::select! {
                // the wait is bounded; the watchdog must not cut it short
                _ = watchdog.tick() => notify_systemd("WATCHDOG=1"),
                _ = term.recv() => break,
                _ = int.recv() => break,
                _ = tokio::time::sleep_until(deadline) => break,
                ev = events.recv() => match ev {
                    // a reload no longer matters
                    Some(Event::Reloaded(_)) => {}
                    Some(ev) => self.on_event(ev),
                    None => break,
                },
            }
        }
        if self.node.running().any() {
            tracing::error!(target: "pglookout", "stopping while the {} is still running; it is left to finish on its own (or to be killed with the service)",
                self.node.running().what());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reload whose read did not answer in time is a failure with its reason, like a
    /// refused file (and so recorded in the history by `reload_failed`).
    #[test]
    fn a_reload_that_times_out_is_a_failure_with_a_reason() {
        let path = std::path::Path::new("/etc/pglookout.json");
        let why = reload_outcome(None, path).expect_err("a failure");
        assert_eq!(why, "reading /etc/pglookout.json did not finish within 10 s");
        let refused = Some(Err(crate::config::ConfigError::NotRegular {
            path: path.display().to_string(),
            kind: "a FIFO",
        }));
        let why = reload_outcome(refused, path).expect_err("a failure");
        assert!(why.contains("not a regular file but a FIFO"), "{why}");
    }

    /// A notify socket nobody reads fills up; sending to it must never block the loop.
    #[test]
    fn a_full_notify_socket_never_blocks() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("notify.sock");
        let _unread = std::os::unix::net::UnixDatagram::bind(&path).expect("bind");
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let target = path.clone().into_os_string();
        std::thread::spawn(move || {
            // far more than a datagram socket queues (net.unix.max_dgram_qlen, 10 by default)
            for _ in 0..1000 {
                notify_socket(&target, "WATCHDOG=1");
            }
            let _ = done_tx.send(());
        });
        done_rx
            .recv_timeout(Duration::from_secs(30))
            .expect("1000 notifications to a full socket returned");
    }

    /// A reload compares the listener's keys with what it runs with, not with the previous
    /// reload, and names each key; restoring a value clears the warning.
    #[test]
    fn listener_changes_name_the_keys_against_the_running_listener() {
        let conf = |port: u16| {
            let v = serde_json::json!({"remote_conns": {"pg1": "host=a"}, "http_port": port});
            Config::from_value(std::path::Path::new("t.json"), &v)
                .expect("config")
                .0
        };
        let running = conf(15000);
        assert!(listener_changes(&running, &conf(15000)).is_empty());
        assert_eq!(listener_changes(&running, &conf(15001)), ["http_port (15000 → 15001)"]);
        // the restored value: nothing pending (comparing with the previous reload warned again)
        assert!(listener_changes(&running, &conf(15000)).is_empty());
    }
}
