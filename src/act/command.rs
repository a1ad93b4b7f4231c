//! Running the operator's commands (`failover_command`, `over_warning_limit_command`,
//! `pg_stop_command`, `pg_start_command`): split on whitespace and run without a shell, as the
//! original; in their own process group, so a timeout kills the whole group; with environment
//! variables describing the event; output logged line by line.

use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Exited with this status code (0 is success).
    Exited(i32),
    /// Killed by a signal, or the status had no code.
    Killed,
    /// Ran past its timeout; its process group was killed.
    TimedOut,
    /// Could not be started (missing file, empty command, ...).
    NotStarted(String),
    /// The task running it crashed (see `supervise`); whether the command ran is unknown.
    Crashed,
}

impl Outcome {
    pub fn success(&self) -> bool {
        *self == Outcome::Exited(0)
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Exited(c) => write!(f, "exited with status {c}"),
            Outcome::Killed => write!(f, "was killed by a signal"),
            Outcome::TimedOut => write!(f, "timed out and its process group was killed"),
            Outcome::NotStarted(e) => write!(f, "could not be started: {e}"),
            Outcome::Crashed => write!(f, "was lost: the task running it crashed"),
        }
    }
}

/// Runs `command` (whitespace-split) and waits at most `timeout`.
pub async fn run(what: &str, command: &str, timeout: Duration, env: &[(&str, String)]) -> Outcome {
    let argv: Vec<&str> = command.split_whitespace().collect();
    let Some((program, args)) = argv.split_first() else {
        return Outcome::NotStarted("the command is empty".into());
    };
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        // A command outlives a daemon that stops while it runs: a promotion cut off halfway is
        // worse than one that finishes. Our own timeout kills its whole group.
        .kill_on_drop(false);
    for (k, v) in env {
        cmd.env(k, v);
    }
    tracing::warn!(target: "pglookout", "running {what}: {command}");
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(target: "pglookout", "{what} {command:?} could not be started: {e}");
            return Outcome::NotStarted(e.to_string());
        }
    };
    let pid = child.id();
    let log_lines = |stream: Option<Box<dyn tokio::io::AsyncRead + Unpin + Send>>, label: &'static str| {
        let what = what.to_string();
        tokio::spawn(async move {
            if let Some(s) = stream {
                let mut lines = BufReader::new(s).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    tracing::info!(target: "pglookout", "{what} {label}: {line}");
                }
            }
        })
    };
    let out = log_lines(child.stdout.take().map(|s| Box::new(s) as _), "stdout");
    let err = log_lines(child.stderr.take().map(|s| Box::new(s) as _), "stderr");
    let outcome = match tokio::time::timeout(timeout, child.wait()).await {
        Ok(Ok(status)) => status.code().map_or(Outcome::Killed, Outcome::Exited),
        Ok(Err(e)) => Outcome::NotStarted(e.to_string()),
        Err(_) => {
            if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) {
                let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
            }
            let _ = child.wait().await;
            Outcome::TimedOut
        }
    };
    // Output readers end when the group is gone; don't wait forever for a grandchild that
    // detached and kept the pipe open.
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let _ = out.await;
        let _ = err.await;
    })
    .await;
    if outcome.success() {
        tracing::warn!(target: "pglookout", "{what} {outcome}");
    } else {
        tracing::error!(target: "pglookout", "{what} {outcome}");
    }
    outcome
}

/// Writes an executable `/bin/sh` script `<dir>/<name>` with `body`; returns its path.
#[cfg(test)]
pub(crate) fn test_script(dir: &std::path::Path, name: &str, body: &str) -> String {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("write script");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path.display().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn status_codes_and_start_failures() {
        let t = Duration::from_secs(10);
        assert_eq!(run("test", "true", t, &[]).await, Outcome::Exited(0));
        assert_eq!(run("test", "false", t, &[]).await, Outcome::Exited(1));
        assert!(matches!(run("test", "", t, &[]).await, Outcome::NotStarted(_)));
        assert!(matches!(
            run("test", "/nonexistent/cmd", t, &[]).await,
            Outcome::NotStarted(_)
        ));
    }

    #[tokio::test]
    async fn arguments_and_environment_reach_the_command() {
        let dir = tempfile::tempdir().expect("dir");
        let out = dir.path().join("out");
        let script = test_script(
            dir.path(),
            "s.sh",
            &format!("echo \"$1 $PGLOOKOUT_NODE\" > {}", out.display()),
        );
        let outcome = run(
            "test",
            &format!("{script} hello"),
            Duration::from_secs(10),
            &[("PGLOOKOUT_NODE", "pg2".into())],
        )
        .await;
        assert_eq!(outcome, Outcome::Exited(0));
        assert_eq!(std::fs::read_to_string(out).expect("read"), "hello pg2\n");
    }

    #[tokio::test]
    async fn a_timeout_kills_the_whole_process_group() {
        let dir = tempfile::tempdir().expect("dir");
        let pidfile = dir.path().join("child.pid");
        // the grandchild would outlive a plain kill of the script
        let script = test_script(
            dir.path(),
            "s.sh",
            &format!("sleep 30 &\necho $! > {}\nwait", pidfile.display()),
        );
        let outcome = run("test", &script, Duration::from_millis(500), &[]).await;
        assert_eq!(outcome, Outcome::TimedOut);
        let pid: i32 = std::fs::read_to_string(&pidfile)
            .expect("pid")
            .trim()
            .parse()
            .expect("int");
        let gone = (0..100).any(|_| {
            let alive = std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "));
            if alive {
                std::thread::sleep(Duration::from_millis(20));
            }
            !alive
        });
        assert!(gone, "grandchild {pid} survived the timeout");
    }
}
