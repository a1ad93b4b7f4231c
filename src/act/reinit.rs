//! Rebuilding our node from the primary (`reinit_command`): when a rejoin cannot rewind
//! (`rejoin_old_master` on, `pg_rewind` failed or cannot run) and on `pglookout-ctl reinit`.
//!
//! 1. Checks, before anything changes: `reinit_command`, `pg_data_directory`,
//!    `primary_conninfo_template` and the start and stop commands are set; the master is not
//!    our node and answers as a primary; our node, when its postmaster runs, answers as a
//!    standby (never a primary: its writes would be thrown away); no earlier reinit's old
//!    directory is left; no other reinit runs (a lock file beside the data directory).
//! 2. `pg_stop_command` when PostgreSQL runs; it must then be down.
//! 3. `reinit_command` builds the side directory `<pg_data_directory>.reinit-new` (created
//!    empty, mode 0700, owned like the data directory) with `PGLOOKOUT_DATA_DIRECTORY` (that
//!    side directory), `PGLOOKOUT_SOURCE_CONNINFO` (`primary_conninfo_template` with the
//!    master's host and port, without the password and the `application_name`: the copy's WAL
//!    stream must not pass for our node's, which may be a synchronous standby's name), `PGPASSWORD` (the password, when the
//!    template holds one) and `PGLOOKOUT_MASTER` (the master's node name) in its environment,
//!    within `reinit_timeout`. What it built must be a data directory of the same major,
//!    owned like the old one.
//! 4. The node's own configuration files (`postgresql.conf`, `postgresql.auto.conf`,
//!    `pg_hba.conf`, `pg_ident.conf`, those it has) are copied over the master's.
//! 5. The swap: the data directory is renamed to `<pg_data_directory>.reinit-old`, the side
//!    directory to `pg_data_directory` (two renames in one directory: the parent must be
//!    writable, and the data directory not a mount point).
//! 6. The standby settings, as the rejoin writes and checks them; `pg_start_command`; then a
//!    wait until our node streams from the master (`pg_stat_wal_receiver`).
//! 7. The old directory is removed.
//!
//! A failure before the swap removes the side directory; after it, the node is stopped and the
//! old directory put back. Either way the node is left stopped, `<alert_file_dir>/reinit_failed`
//! holds the reason, and the event history has `reinit_started`, a `reinit_step` per step and
//! `reinit_finished` (appended here, by the daemon and by `pglookout-ctl reinit` alike).

use crate::act::command;
use crate::act::rejoin::{postmaster_running, standby_settings_in_place, OWN_CONFIG_FILES};
use crate::act::switchover::ask;
use crate::act::{ActError, Step};
use crate::config::Config;
use crate::decide::follow::new_primary_conninfo;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Where `reinit_command` builds: `<pg_data_directory>.reinit-new`.
pub fn side_dir(data_dir: &Path) -> PathBuf {
    suffixed(data_dir, ".reinit-new")
}

/// Where the old data directory waits until the rebuilt one streams.
pub fn old_dir(data_dir: &Path) -> PathBuf {
    suffixed(data_dir, ".reinit-old")
}

fn suffixed(data_dir: &Path, suffix: &str) -> PathBuf {
    let mut s = data_dir.as_os_str().to_os_string();
    s.push(suffix);
    PathBuf::from(s)
}

fn fail(step: Step, why: impl Into<String>) -> ActError {
    ActError::Reinit { step, why: why.into() }
}

fn io<'p>(step: Step, op: &'static str, path: &'p Path) -> impl FnOnce(std::io::Error) -> ActError + 'p {
    move |source| ActError::Io {
        step,
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// The steps, in order; see the module doc.
struct Reinit<'a> {
    config: &'a Config,
    master: &'a str,
    own: String,
    data_dir: PathBuf,
    step: Duration,
}

impl Reinit<'_> {
    /// One `reinit_step` event in the history (and the log).
    async fn note(&self, kind: &str, text: String) {
        tracing::warn!(target: "pglookout", "reinit: {text}");
        let event =
            crate::events::Event::new(chrono::Utc::now(), &self.own, kind, text).masters(None, Some(self.master));
        let path = self.config.event_log_path.clone();
        let line = event.to_line();
        let write = tokio::task::spawn_blocking(move || crate::events::append(&path, &[line]));
        match tokio::time::timeout(Duration::from_secs(5), write).await {
            Ok(Ok(Ok(()))) => {}
            _ => {
                tracing::error!(target: "pglookout", "reinit: cannot append to the event history {}", self.config.event_log_path.display())
            }
        }
    }

    async fn check(&self) -> Result<(), ActError> {
        const STEP: Step = Step::ReinitCheck;
        if self.master == self.own {
            return Err(ActError::OwnNode {
                node: self.master.to_string(),
            });
        }
        for (key, missing) in [
            (
                "primary_conninfo_template",
                self.config.primary_conninfo_template.is_none(),
            ),
            ("pg_start_command", self.config.pg_start_command.trim().is_empty()),
            ("pg_stop_command", self.config.pg_stop_command.trim().is_empty()),
        ] {
            if missing {
                return Err(fail(STEP, format!("{key} is not set")));
            }
        }
        let master_conn = super::follow::master_conn(self.config, self.master, "rebuild from")?;
        match ask(master_conn, "SELECT pg_catalog.pg_is_in_recovery()", self.step).await {
            Ok(Some(r)) if r == "f" => {}
            Ok(_) => return Err(fail(STEP, format!("{} is in recovery, not a primary", self.master))),
            Err(e) => return Err(fail(STEP, format!("{} does not answer: {e}", self.master))),
        }
        if postmaster_running(&self.data_dir) {
            let own = self.config.remote_conns.get(&self.own).ok_or_else(|| {
                fail(
                    STEP,
                    format!(
                        "{} runs and is not in remote_conns: cannot check that it is a standby",
                        self.own
                    ),
                )
            })?;
            match ask(own, "SELECT pg_catalog.pg_is_in_recovery()", self.step).await {
                Ok(Some(r)) if r == "t" => {}
                Ok(_) => {
                    return Err(fail(
                        STEP,
                        format!(
                            "{} answers as a primary: a reinit would throw away its writes (stop or fence it first)",
                            self.own
                        ),
                    ))
                }
                Err(e) => {
                    return Err(fail(
                        STEP,
                        format!(
                            "{} runs but does not answer ({e}): it may be a primary; stop it first",
                            self.own
                        ),
                    ))
                }
            }
        }
        let old = old_dir(&self.data_dir);
        if old.exists() {
            return Err(fail(
                STEP,
                format!(
                    "{} is left from an earlier reinit: look at it and remove it first",
                    old.display()
                ),
            ));
        }
        if !self.data_dir.is_dir() {
            return Err(fail(STEP, format!("{} is not a directory", self.data_dir.display())));
        }
        Ok(())
    }

    /// Runs `pg_stop_command`; PostgreSQL must be down afterwards.
    async fn stop(&self) -> Result<(), ActError> {
        let stop = command::execute("pg_stop_command", &self.config.pg_stop_command, &[], self.step, &[]).await;
        if postmaster_running(&self.data_dir) {
            return Err(ActError::StillRunning {
                step: Step::Stop,
                data_dir: self.data_dir.clone(),
                stop: Box::new(stop),
            });
        }
        Ok(())
    }

    /// An empty side directory, mode 0700, owned like the data directory.
    fn prepare_side(&self) -> Result<PathBuf, ActError> {
        const STEP: Step = Step::ReinitBuild;
        let side = side_dir(&self.data_dir);
        if side.exists() {
            // an earlier reinit's half-built directory (the lock says none runs now)
            std::fs::remove_dir_all(&side).map_err(io(STEP, "remove", &side))?;
        }
        let meta = std::fs::metadata(&self.data_dir).map_err(io(STEP, "read", &self.data_dir))?;
        std::fs::create_dir(&side).map_err(io(STEP, "create", &side))?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&side, std::fs::Permissions::from_mode(0o700)).map_err(io(STEP, "create", &side))?;
        std::os::unix::fs::chown(&side, Some(meta.uid()), Some(meta.gid())).map_err(io(STEP, "create", &side))?;
        Ok(side)
    }

    async fn build(&self, side: &Path) -> Result<(), ActError> {
        const STEP: Step = Step::ReinitBuild;
        let template = self
            .config
            .primary_conninfo_template
            .as_ref()
            .ok_or_else(|| fail(Step::ReinitCheck, "primary_conninfo_template is not set"))?;
        let master_conn = super::follow::master_conn(self.config, self.master, "rebuild from")?;
        let mut conninfo = new_primary_conninfo(template, master_conn);
        let password = conninfo.remove("password");
        // the copy's WAL stream must not pass for our node's (a synchronous standby is named
        // by its application_name): pg_basebackup names itself
        conninfo.remove("application_name");
        let mut env = vec![
            ("PGLOOKOUT_DATA_DIRECTORY", side.to_string_lossy().into_owned()),
            ("PGLOOKOUT_SOURCE_CONNINFO", conninfo.render()),
            ("PGLOOKOUT_MASTER", self.master.to_string()),
        ];
        env.extend(password.map(|p| ("PGPASSWORD", p)));
        let command = self.config.reinit_command.as_deref().unwrap_or_default();
        let timeout = Duration::from_secs_f64(self.config.reinit_timeout);
        let ran = command::execute("reinit_command", command, &[], timeout, &env).await;
        if !ran.success() {
            return Err(ActError::Command {
                step: STEP,
                ran: Box::new(ran),
            });
        }
        // what it built: a data directory of our major, owned like ours
        let built = super::follow::major(side, STEP)?;
        let ours = super::follow::major(&self.data_dir, STEP).ok();
        if ours.is_some_and(|m| m != built) {
            return Err(fail(
                STEP,
                format!(
                    "reinit_command built a PostgreSQL {built} data directory, the node runs {}",
                    ours.unwrap_or_default()
                ),
            ));
        }
        let control = side.join("global/pg_control");
        if !control.is_file() {
            return Err(fail(STEP, format!("reinit_command built no {}", control.display())));
        }
        let (want, got) = (
            std::fs::metadata(&self.data_dir).map_err(io(STEP, "read", &self.data_dir))?,
            std::fs::metadata(side).map_err(io(STEP, "read", side))?,
        );
        if (want.uid(), want.gid()) != (got.uid(), got.gid()) {
            return Err(fail(
                STEP,
                format!(
                    "{} is owned by {}:{}, the data directory by {}:{} (run reinit_command's copy as the server's user)",
                    side.display(),
                    got.uid(),
                    got.gid(),
                    want.uid(),
                    want.gid()
                ),
            ));
        }
        // the node keeps its own configuration
        for name in OWN_CONFIG_FILES {
            let from = self.data_dir.join(name);
            match std::fs::read(&from) {
                Ok(bytes) => {
                    let to = side.join(name);
                    crate::statefile::write_atomic_mode(&to, &bytes, 0o600).map_err(io(STEP, "write", &to))?;
                    let _ = std::os::unix::fs::chown(&to, Some(want.uid()), Some(want.gid()));
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(ActError::Io {
                        step: STEP,
                        op: "read",
                        path: from,
                        source,
                    })
                }
            }
        }
        Ok(())
    }

    fn swap_in(&self, side: &Path) -> Result<(), ActError> {
        const STEP: Step = Step::ReinitSwap;
        let old = old_dir(&self.data_dir);
        std::fs::rename(&self.data_dir, &old).map_err(io(STEP, "rename", &self.data_dir))?;
        if let Err(source) = std::fs::rename(side, &self.data_dir) {
            let back = std::fs::rename(&old, &self.data_dir);
            return Err(fail(
                STEP,
                format!(
                    "cannot rename {} to {}: {source}{}",
                    side.display(),
                    self.data_dir.display(),
                    match back {
                        Ok(()) => String::new(),
                        Err(e) => format!("; and putting {} back failed: {e}", old.display()),
                    }
                ),
            ));
        }
        Ok(())
    }

    /// After a failure past the swap: the rebuilt directory goes back aside, the old one back
    /// in place.
    fn swap_back(&self) -> Result<(), ActError> {
        const STEP: Step = Step::ReinitSwap;
        let (old, side) = (old_dir(&self.data_dir), side_dir(&self.data_dir));
        if side.exists() {
            std::fs::remove_dir_all(&side).map_err(io(STEP, "remove", &side))?;
        }
        std::fs::rename(&self.data_dir, &side).map_err(io(STEP, "rename", &self.data_dir))?;
        std::fs::rename(&old, &self.data_dir).map_err(io(STEP, "rename", &old))?;
        std::fs::remove_dir_all(&side).map_err(io(STEP, "remove", &side))
    }

    async fn start_and_stream(&self) -> Result<(), ActError> {
        let stamp = crate::state::iso(&chrono::Utc::now());
        crate::act::follow::rewrite(self.config, self.master, &stamp)?;
        let major = super::follow::major(&self.data_dir, Step::StandbySettings)?;
        standby_settings_in_place(&self.data_dir, major)?;
        let ran = command::execute("pg_start_command", &self.config.pg_start_command, &[], self.step, &[]).await;
        if !ran.success() {
            return Err(ActError::Command {
                step: Step::Start,
                ran: Box::new(ran),
            });
        }
        self.note(
            "reinit_step",
            format!(
                "{} started as a standby of {}; waiting for it to stream",
                self.own, self.master
            ),
        )
        .await;
        let own = self.config.remote_conns.get(&self.own).ok_or_else(|| {
            fail(
                Step::Stream,
                format!("{} is not in remote_conns: cannot see it stream", self.own),
            )
        })?;
        // a fresh copy may have WAL to replay first; at least a minute
        let wait = self.step.max(Duration::from_secs(60));
        let deadline = Instant::now() + wait;
        loop {
            let status = ask(
                own,
                "SELECT status FROM pg_catalog.pg_stat_wal_receiver",
                Duration::from_secs(2),
            )
            .await;
            if matches!(status, Ok(Some(ref s)) if s == "streaming") {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(fail(
                    Step::Stream,
                    format!(
                        "{} does not stream from {} within {:.0} s (last seen: {})",
                        self.own,
                        self.master,
                        wait.as_secs_f64(),
                        match status {
                            Ok(s) => s.unwrap_or_else(|| "no WAL receiver".into()),
                            Err(e) => e,
                        }
                    ),
                ));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn run(&self) -> Result<(), ActError> {
        self.check().await?;
        if postmaster_running(&self.data_dir) {
            self.note("reinit_step", format!("stopping {}", self.own)).await;
            self.stop().await?;
        }
        let side = self.prepare_side()?;
        self.note("reinit_step", format!("running reinit_command into {}", side.display()))
            .await;
        if let Err(e) = self.build(&side).await {
            if let Err(r) = std::fs::remove_dir_all(&side) {
                tracing::error!(target: "pglookout", "reinit: cannot remove {}: {r}", side.display());
            }
            return Err(e);
        }
        // nothing may have started the old directory meanwhile (a supervisor, autofollow)
        if postmaster_running(&self.data_dir) {
            self.stop().await?;
        }
        self.note(
            "reinit_step",
            format!(
                "swapping {} in; the old directory waits in {}",
                side.display(),
                old_dir(&self.data_dir).display()
            ),
        )
        .await;
        self.swap_in(&side)?;
        if let Err(e) = self.start_and_stream().await {
            let stop = command::execute("pg_stop_command", &self.config.pg_stop_command, &[], self.step, &[]).await;
            if postmaster_running(&self.data_dir) {
                return Err(fail(
                    Step::ReinitSwap,
                    format!(
                        "{e}; and the rebuilt node still runs after {stop}: the old directory is {}",
                        old_dir(&self.data_dir).display()
                    ),
                ));
            }
            if let Err(back) = self.swap_back() {
                return Err(fail(
                    Step::ReinitSwap,
                    format!("{e}; and putting the old directory back failed: {back}"),
                ));
            }
            return Err(e);
        }
        let old = old_dir(&self.data_dir);
        self.note(
            "reinit_step",
            format!("{} streams from {}; removing {}", self.own, self.master, old.display()),
        )
        .await;
        let remove = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(&old).map_err(|e| (old, e)));
        if let Ok(Err((old, e))) = remove.await {
            // the node runs rebuilt; the leftover only blocks the next reinit, which says so
            tracing::error!(target: "pglookout", "reinit: cannot remove {}: {e}", old.display());
        }
        Ok(())
    }
}

/// Holds `<pg_data_directory>.reinit-lock` while a reinit or a rejoin runs (flock; released
/// on drop and when the process dies), so that the daemon's and `pglookout-ctl`'s never
/// overlap.
pub fn lock(data_dir: &Path) -> Result<nix::fcntl::Flock<std::fs::File>, ActError> {
    let path = suffixed(data_dir, ".reinit-lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io(Step::ReinitCheck, "create", &path))?;
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock).map_err(|_| {
        fail(
            Step::ReinitCheck,
            format!("another rejoin or reinit runs ({} is locked)", path.display()),
        )
    })
}

/// Rebuilds our node as a standby of `master` (see the module doc); `why` goes in the history.
/// On failure the node is left stopped with its old directory and
/// `<alert_file_dir>/reinit_failed` holds the reason, which is also returned.
pub async fn reinit(config: &Config, master: &str, why: &str) -> Result<(), ActError> {
    let held = crate::act::follow::data_dir(config).and_then(lock);
    match held {
        Ok(_held) => rebuild(config, master, why).await,
        Err(e) => alert(config, master, Err(e)),
    }
}

/// [`reinit`] with [`lock`] already held (the rejoin's fallback).
pub async fn rebuild(config: &Config, master: &str, why: &str) -> Result<(), ActError> {
    let own = config.own_db.clone().unwrap_or_default();
    let result = match (crate::act::follow::data_dir(config), config.reinit_command.as_deref()) {
        (_, None) => Err(ActError::NotConfigured {
            keys: &["reinit_command"],
        }),
        _ if own.is_empty() => Err(ActError::NotConfigured { keys: &["own_db"] }),
        (Err(e), _) => Err(e),
        (Ok(data_dir), Some(_)) => {
            let r = Reinit {
                config,
                master,
                own,
                data_dir: data_dir.to_path_buf(),
                step: Duration::from_secs_f64(config.failover_command_timeout),
            };
            r.note("reinit_started", format!("rebuilding {} from {master}: {why}", r.own))
                .await;
            let result = r.run().await;
            let text = match &result {
                Ok(()) => format!("{} is rebuilt and streams from {master}", r.own),
                Err(e) => format!("the reinit of {} failed, it is left stopped: {e}", r.own),
            };
            r.note("reinit_finished", text).await;
            result
        }
    };
    alert(config, master, result)
}

/// `reinit_failed`: written with the reason on failure, removed on success.
fn alert(config: &Config, master: &str, result: Result<(), ActError>) -> Result<(), ActError> {
    let alert = config
        .alert_file_dir
        .join(crate::decide::Alert::ReinitFailed.file_name());
    match &result {
        Ok(()) => {
            if let Err(e) = std::fs::remove_file(&alert) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::error!(target: "pglookout", "cannot remove the alert file {}: {e}", alert.display());
                }
            }
        }
        Err(e) => {
            tracing::error!(target: "pglookout", "reinit: rebuilding our node from {master} failed: {e}");
            if let Err(w) = crate::statefile::write_atomic(&alert, format!("{e}\n").as_bytes()) {
                tracing::error!(target: "pglookout", "cannot write the alert file {}: {w}", alert.display());
            }
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_side_directories_sit_beside_the_data_directory() {
        let d = Path::new("/var/lib/postgresql/15/main");
        assert_eq!(side_dir(d), Path::new("/var/lib/postgresql/15/main.reinit-new"));
        assert_eq!(old_dir(d), Path::new("/var/lib/postgresql/15/main.reinit-old"));
    }
}
