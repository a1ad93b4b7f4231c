//! Running the operator's commands (`failover_command`, `over_warning_limit_command`,
//! `pg_stop_command`, `pg_start_command`, `pg_rewind_command`): split on whitespace and run without a shell, as the
//! original; in their own process group, so a timeout kills the whole group; with environment
//! variables describing the event; output read to its end and logged line by line, whatever
//! bytes it holds, the last lines of its standard error kept for the error that quotes it
//! ([`Ran`]). Also reading a tool's answer ([`output`], for `pg_controldata`).

use std::collections::VecDeque;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;

/// The most of one output line that is logged (and held in memory); the rest is counted.
const MAX_LINE: usize = 4096;
/// How much output is read at a time.
const READ_CHUNK: usize = 8192;
/// How many of the last lines of a command's standard error [`Ran`] quotes.
const TAIL_LINES: usize = 3;
/// The most characters of one such line that are quoted.
const TAIL_LINE_CHARS: usize = 300;

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

/// What one command did, for the error that reports it: which command, how it ended and the
/// last lines of its standard error. Never its arguments (they may be long, and a caller's
/// extra arguments, such as `pg_rewind`'s conninfo, are no business of a message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ran {
    /// The config key the command comes from (`pg_rewind_command`).
    pub what: String,
    /// Its program, the command's first word (empty for an empty command).
    pub program: String,
    pub outcome: Outcome,
    /// Its timeout, named when it ran past it.
    pub timeout: Duration,
    /// The last non-empty lines of its standard error (at most [`TAIL_LINES`], each cut at
    /// [`TAIL_LINE_CHARS`] characters), control characters escaped, joined by ` | `; empty
    /// when it wrote none.
    pub output: String,
    /// Its whole output is in the log ([`execute`]; [`output`] logs nothing).
    pub logged: bool,
}

impl Ran {
    /// A command of `argv` not started yet (an empty `argv` stays "not started").
    fn before(what: &str, argv: &[&str], timeout: Duration, logged: bool) -> Ran {
        Ran {
            what: what.to_string(),
            program: argv.first().map_or_else(String::new, |p| (*p).to_string()),
            outcome: Outcome::NotStarted("the command is empty".into()),
            timeout,
            output: String::new(),
            logged,
        }
    }

    pub fn success(&self) -> bool {
        self.outcome.success()
    }
}

impl std::fmt::Display for Ran {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.what)?;
        if !self.program.is_empty() && self.program != self.what {
            write!(f, " ({})", self.program)?;
        }
        match &self.outcome {
            Outcome::TimedOut => write!(
                f,
                " did not finish within {} s; its process group was killed",
                self.timeout.as_secs_f64()
            )?,
            outcome => write!(f, " {outcome}")?,
        }
        if !self.output.is_empty() {
            write!(f, ": {}", self.output)
        } else if self.logged && matches!(self.outcome, Outcome::Exited(1..) | Outcome::Killed | Outcome::TimedOut) {
            f.write_str(" (see the log for its output)")
        } else {
            Ok(())
        }
    }
}

/// `program args extra` in a process group of its own, stdin closed, stdout and stderr piped.
fn piped<'a, E: AsRef<std::ffi::OsStr>>(
    program: &str,
    args: &[&str],
    extra: &[E],
    env: impl Iterator<Item = (&'a str, &'a str)>,
    kill_on_drop: bool,
) -> Command {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .args(extra)
        .envs(env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(kill_on_drop);
    cmd
}

/// Runs `command` (whitespace-split) and waits at most `timeout`.
pub async fn run(what: &str, command: &str, timeout: Duration, env: &[(&str, String)]) -> Outcome {
    execute(what, command, &[], timeout, env).await.outcome
}

/// [`run`] with `extra` arguments appended as they are (not split: a conninfo holds spaces).
/// They are logged with the command: they must hold no secret.
pub async fn run_with_args(
    what: &str,
    command: &str,
    extra: &[String],
    timeout: Duration,
    env: &[(&str, String)],
) -> Outcome {
    execute(what, command, extra, timeout, env).await.outcome
}

/// [`run_with_args`], telling what the command did for an error message: its outcome and the
/// last lines of its standard error (all of its output is logged as well).
pub async fn execute(what: &str, command: &str, extra: &[String], timeout: Duration, env: &[(&str, String)]) -> Ran {
    let argv: Vec<&str> = command.split_whitespace().collect();
    let mut ran = Ran::before(what, &argv, timeout, true);
    let Some((program, args)) = argv.split_first() else {
        return ran;
    };
    let shown = if extra.is_empty() {
        command.to_string()
    } else {
        format!("{command} {}", extra.join(" "))
    };
    let command = shown.as_str();
    // A command outlives a daemon that stops while it runs: a promotion cut off halfway is
    // worse than one that finishes. Our own timeout kills its whole group.
    let mut cmd = piped(program, args, extra, env.iter().map(|(k, v)| (*k, v.as_str())), false);
    // every history event runs event_command: at info, not to bury the warnings
    if what == "event_command" {
        tracing::info!(target: "pglookout", "running {what}: {command}");
    } else {
        tracing::warn!(target: "pglookout", "running {what}: {command}");
    }
    let mut busy_retries = 0;
    let mut child = loop {
        match cmd.spawn() {
            Ok(c) => break c,
            // "Text file busy": another thread's fork inherited a descriptor that had the
            // program open for writing (a script just written, by us or by the operator's
            // tooling) until that child execs; it passes within milliseconds.
            Err(e) if e.raw_os_error() == Some(nix::libc::ETXTBSY) && busy_retries < 10 => {
                busy_retries += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => {
                tracing::error!(target: "pglookout", "{what} {command:?} could not be started: {e}");
                ran.outcome = Outcome::NotStarted(e.to_string());
                return ran;
            }
        }
    };
    let pid = child.id();
    let out = child
        .stdout
        .take()
        .map(|s| tokio::spawn(drain(what.to_string(), "stdout", s)));
    let err = child
        .stderr
        .take()
        .map(|s| tokio::spawn(drain(what.to_string(), "stderr", s)));
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
    // detached and kept the pipe open. Past this wait their tasks are detached, not aborted:
    // they read on to EOF, so such a grandchild never dies of SIGPIPE on its next write (and
    // the error then quotes none of the standard error).
    let tail = tokio::time::timeout(Duration::from_secs(1), async {
        if let Some(out) = out {
            let _ = out.await;
        }
        match err {
            Some(err) => err.await.unwrap_or_default(),
            None => String::new(),
        }
    })
    .await;
    if outcome.success() {
        tracing::warn!(target: "pglookout", "{what} {outcome}");
    } else {
        tracing::error!(target: "pglookout", "{what} {outcome}");
    }
    ran.outcome = outcome;
    ran.output = tail.unwrap_or_default();
    ran
}

/// Runs `command` (whitespace-split) with `extra` arguments, in its own process group, and
/// returns its standard output (lossily decoded) when it exits 0 within `timeout` (its group is
/// killed past it); otherwise what it did, with the end of its standard error. For tools whose
/// answer we read (`pg_controldata`, the config key `what`); nothing is logged here.
pub async fn output(
    what: &str,
    command: &str,
    extra: &[&str],
    timeout: Duration,
    env: &[(&str, &str)],
) -> Result<String, Ran> {
    let argv: Vec<&str> = command.split_whitespace().collect();
    let mut ran = Ran::before(what, &argv, timeout, false);
    let Some((program, args)) = argv.split_first() else {
        return Err(ran);
    };
    let mut cmd = piped(program, args, extra, env.iter().copied(), true);
    let child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) => {
            ran.outcome = Outcome::NotStarted(e.to_string());
            return Err(ran);
        }
    };
    let pid = child.id();
    match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Ok(Ok(out)) if out.status.success() => return Ok(String::from_utf8_lossy(&out.stdout).into_owned()),
        Ok(Ok(out)) => {
            ran.outcome = out.status.code().map_or(Outcome::Killed, Outcome::Exited);
            ran.output = tail_of(&out.stderr);
        }
        Ok(Err(e)) => ran.outcome = Outcome::NotStarted(e.to_string()),
        Err(_) => {
            if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) {
                let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
            }
            ran.outcome = Outcome::TimedOut;
        }
    }
    Err(ran)
}

/// The last non-empty lines of a stream, as [`Ran::output`] quotes them.
#[derive(Default)]
struct Tail(VecDeque<String>);

impl Tail {
    fn push(&mut self, line: &Line) {
        let text = line.text.trim();
        if text.is_empty() {
            return;
        }
        let mut kept: String = text.chars().take(TAIL_LINE_CHARS).collect();
        if kept.len() < text.len() || line.more > 0 {
            kept.push_str(" …");
        }
        if self.0.len() == TAIL_LINES {
            self.0.pop_front();
        }
        self.0.push_back(crate::text::printable(&kept).into_owned());
    }

    fn text(self) -> String {
        Vec::from(self.0).join(" | ")
    }
}

/// [`Tail`] of the whole of `bytes`.
fn tail_of(bytes: &[u8]) -> String {
    let mut lines = LineSplitter::new(MAX_LINE);
    let mut tail = Tail::default();
    for line in lines.push(bytes).iter().chain(lines.finish().as_ref()) {
        tail.push(line);
    }
    tail.text()
}

/// Reads one output stream of a command to EOF and logs it line by line.
///
/// Bytes, not text: a command may print anything (a Latin-1 name, binary junk), and a reader
/// that stopped at the first byte that is not UTF-8 closed the pipe, so the command died of
/// SIGPIPE on its next write, before it had done its work. It stops only at EOF or a read error.
/// Returns the [`Tail`] of what it read.
async fn drain(what: String, label: &'static str, mut stream: impl AsyncRead + Unpin) -> String {
    let mut lines = LineSplitter::new(MAX_LINE);
    let mut tail = Tail::default();
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => {
                for line in lines.push(&buf[..n]) {
                    tracing::info!(target: "pglookout", "{what} {label}: {line}");
                    tail.push(&line);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                tracing::warn!(target: "pglookout", "{what} {label}: cannot read the output: {e}");
                break;
            }
        }
    }
    if let Some(line) = lines.finish() {
        tracing::info!(target: "pglookout", "{what} {label}: {line}");
        tail.push(&line);
    }
    tail.text()
}

/// One line of output as logged: its first bytes (decoded lossily) and how many were left out.
#[derive(Debug, PartialEq, Eq)]
struct Line {
    text: String,
    more: usize,
}

impl std::fmt::Display for Line {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)?;
        if self.more > 0 {
            write!(f, " … ({} more bytes)", self.more)?;
        }
        Ok(())
    }
}

/// Splits a byte stream into lines at `\n` (dropping a `\r` before it), keeping at most `cap`
/// bytes of each, so that a command printing megabytes without a newline costs `cap` bytes of
/// memory, not megabytes.
struct LineSplitter {
    cap: usize,
    /// The kept start of the current line.
    kept: Vec<u8>,
    /// Bytes of the current line beyond `cap`.
    more: usize,
    /// The last byte of the current line so far was `\r`.
    cr: bool,
}

impl LineSplitter {
    fn new(cap: usize) -> Self {
        LineSplitter {
            cap,
            kept: Vec::new(),
            more: 0,
            cr: false,
        }
    }

    /// Takes the next bytes of the stream; returns the lines they complete.
    fn push(&mut self, mut bytes: &[u8]) -> Vec<Line> {
        let mut done = Vec::new();
        while !bytes.is_empty() {
            let (part, ends_line) = match bytes.iter().position(|&b| b == b'\n') {
                Some(i) => (&bytes[..i], true),
                None => (bytes, false),
            };
            let room = self.cap.saturating_sub(self.kept.len()).min(part.len());
            self.kept.extend_from_slice(&part[..room]);
            self.more += part.len() - room;
            if let Some(&last) = part.last() {
                self.cr = last == b'\r';
            }
            if ends_line {
                done.push(self.take());
                bytes = &bytes[part.len() + 1..];
            } else {
                bytes = &[];
            }
        }
        done
    }

    /// The last line, when the stream ended without a newline after it.
    fn finish(&mut self) -> Option<Line> {
        (!self.kept.is_empty() || self.more > 0).then(|| self.take())
    }

    fn take(&mut self) -> Line {
        let mut kept = std::mem::take(&mut self.kept);
        let mut more = std::mem::take(&mut self.more);
        if std::mem::take(&mut self.cr) {
            if more > 0 {
                more -= 1;
            } else {
                kept.pop();
            }
        }
        if more > 0 {
            // A character cut in two by the cap is counted as left out, not shown as garbage.
            if let Err(e) = std::str::from_utf8(&kept) {
                if e.error_len().is_none() {
                    more += kept.len() - e.valid_up_to();
                    kept.truncate(e.valid_up_to());
                }
            }
        }
        Line {
            text: String::from_utf8_lossy(&kept).into_owned(),
            more,
        }
    }
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
        let with_spaces = ["a b".to_string()];
        assert_eq!(
            run_with_args("test", "test -n", &with_spaces, t, &[]).await,
            Outcome::Exited(0)
        );
        assert_eq!(output("test", "echo", &["x y"], t, &[]).await, Ok("x y\n".into()));
        assert!(output("test", "false", &[], t, &[]).await.is_err());
        let late = output("test", "sleep 5", &[], Duration::from_millis(100), &[]).await;
        assert_eq!(late.map_err(|r| r.outcome), Err(Outcome::TimedOut));
        assert!(matches!(
            run("test", "/nonexistent/cmd", t, &[]).await,
            Outcome::NotStarted(_)
        ));
    }

    /// A failed command's error names the command and its program, how it ended and the last
    /// lines of its standard error, on one line.
    #[tokio::test]
    async fn what_a_failed_command_did_is_told_with_the_end_of_its_standard_error() {
        let dir = tempfile::tempdir().expect("dir");
        let script = test_script(
            dir.path(),
            "s.sh",
            "echo to stdout\nfor i in 1 2 3 4; do echo \"line $i\" >&2; done\nprintf 'bell\\007 and tab\\t\\n\\n' >&2\nexit 3",
        );
        let t = Duration::from_secs(10);
        let ran = execute("pg_start_command", &format!("{script} arg"), &[], t, &[]).await;
        assert_eq!(ran.outcome, Outcome::Exited(3));
        assert_eq!(ran.output, "line 3 | line 4 | bell\\u{7} and tab");
        assert_eq!(
            ran.to_string(),
            format!("pg_start_command ({script}) exited with status 3: line 3 | line 4 | bell\\u{{7}} and tab")
        );
        let quiet = execute("pg_stop_command", "false", &[], t, &[]).await;
        assert_eq!(
            quiet.to_string(),
            "pg_stop_command (false) exited with status 1 (see the log for its output)"
        );
        let missing = output("pg_controldata_command", "/nonexistent/pg_controldata -D", &[], t, &[])
            .await
            .expect_err("missing");
        assert!(
            missing
                .to_string()
                .starts_with("pg_controldata_command (/nonexistent/pg_controldata) could not be started: "),
            "{missing}"
        );
        let failed = output("pg_controldata_command", &script, &[], t, &[])
            .await
            .expect_err("exit 3");
        assert_eq!(failed.output, "line 3 | line 4 | bell\\u{7} and tab");
        let late = output(
            "pg_controldata_command",
            "sleep 5",
            &[],
            Duration::from_millis(250),
            &[],
        )
        .await
        .expect_err("late");
        assert_eq!(
            late.to_string(),
            "pg_controldata_command (sleep) did not finish within 0.25 s; its process group was killed"
        );
        let empty = execute("pg_stop_command", " ", &[], t, &[]).await;
        assert_eq!(
            empty.to_string(),
            "pg_stop_command could not be started: the command is empty"
        );
        let long = format!("{}\n", "é".repeat(400));
        let mut tail = Tail::default();
        tail.push(&Line { text: long, more: 0 });
        let text = tail.text();
        assert!(
            text.ends_with(" …") && text.chars().count() == TAIL_LINE_CHARS + 2,
            "{text}"
        );
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

    /// Feeds `chunks` to a splitter with a cap of 8; returns what it logs, as strings.
    fn split(chunks: &[&[u8]]) -> Vec<String> {
        let mut s = LineSplitter::new(8);
        let mut out: Vec<String> = chunks.iter().flat_map(|c| s.push(c)).map(|l| l.to_string()).collect();
        out.extend(s.finish().map(|l| l.to_string()));
        out
    }

    #[test]
    fn output_is_split_into_capped_lines_whatever_its_bytes() {
        let cases: &[(&[&[u8]], &[&str])] = &[
            (&[], &[]),
            (&[b""], &[]),
            (&[b"a\nb\n"], &["a", "b"]),
            (&[b"\n\n"], &["", ""]),
            // the last line without a newline is still logged
            (&[b"a\nb"], &["a", "b"]),
            // lines across chunk boundaries
            (&[b"ab", b"c\nd", b"e\n"], &["abc", "de"]),
            // CRLF, also with the CR and LF in different chunks; a lone CR stays
            (&[b"a\r\n"], &["a"]),
            (&[b"a\r", b"\nb\rc\n"], &["a", "b\rc"]),
            // not UTF-8: shown lossily, and the lines after it are read too
            (&[b"caf\xe9\n", b"next\n"], &["caf\u{fffd}", "next"]),
            (&[b"\xff\xfe\n"], &["\u{fffd}\u{fffd}"]),
            // at the cap exactly nothing is cut
            (&[b"12345678\n"], &["12345678"]),
            // longer lines keep their start and count the rest, across chunks too
            (&[b"123456789\n"], &["12345678 … (1 more bytes)"]),
            (&[b"12345", b"67890", b"abc\nz\n"], &["12345678 … (5 more bytes)", "z"]),
            (&[b"1234567890"], &["12345678 … (2 more bytes)"]),
            // the CR of a cut line's CRLF is not counted as left out
            (&[b"1234567890\r\n"], &["12345678 … (2 more bytes)"]),
            (&[b"12345678\r\n"], &["12345678"]),
            // a character cut in two by the cap is left out whole
            (&[b"1234567\xc3\xa9\n"], &["1234567 … (2 more bytes)"]),
            (&[b"123456\xc3\xa9x\n"], &["123456\u{e9} … (1 more bytes)"]),
        ];
        for (chunks, want) in cases {
            assert_eq!(split(chunks), *want, "chunks {chunks:?}");
        }
    }

    #[test]
    fn a_long_line_is_not_held_in_memory() {
        let mut s = LineSplitter::new(MAX_LINE);
        let chunk = vec![b'x'; 1 << 16];
        for _ in 0..64 {
            assert!(s.push(&chunk).is_empty());
            assert!(s.kept.capacity() <= 2 * MAX_LINE, "{} bytes held", s.kept.capacity());
        }
        assert_eq!(s.push(b"\n").pop().map(|l| l.more), Some((64 << 16) - MAX_LINE));
    }

    #[tokio::test]
    async fn output_that_is_not_text_or_has_long_lines_does_not_stop_the_command() {
        let dir = tempfile::tempdir().expect("dir");
        let marker = dir.path().join("promoted");
        // More than a pipe buffer after the first byte that is not UTF-8, on both streams, some
        // of it without newlines: a reader that gave up early would make the writes fail.
        let script = test_script(
            dir.path(),
            "s.sh",
            &format!(
                "printf 'caf\\351\\n'\n\
                 printf 'er\\351ur\\n' >&2\n\
                 head -c 1500000 /dev/zero | tr '\\000' x\n\
                 printf '\\n'\n\
                 head -c 1500000 /dev/zero | tr '\\000' '\\351' >&2\n\
                 i=0; while [ $i -lt 20000 ]; do echo \"line $i\"; echo \"line $i\" >&2; i=$((i+1)); done\n\
                 touch {}",
                marker.display()
            ),
        );
        let outcome = run("test", &script, Duration::from_secs(60), &[]).await;
        assert_eq!(outcome, Outcome::Exited(0));
        assert!(marker.exists(), "the command did not get to its work");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn output_of_a_detached_grandchild_is_read_after_the_command_ends() {
        let dir = tempfile::tempdir().expect("dir");
        let marker = dir.path().join("done");
        let go = dir.path().join("go");
        // The grandchild keeps the pipes open past the command's end and writes only once we
        // open the FIFO, i.e. after `run` has returned.
        let script = test_script(
            dir.path(),
            "s.sh",
            &format!(
                "mkfifo {go}\n\
                 (read x < {go}; printf 'caf\\351\\n'; head -c 1500000 /dev/zero; echo; touch {marker}) &\n\
                 exit 0",
                go = go.display(),
                marker = marker.display()
            ),
        );
        let outcome = run("test", &script, Duration::from_secs(60), &[]).await;
        assert_eq!(outcome, Outcome::Exited(0));
        let go2 = go.clone();
        tokio::task::spawn_blocking(move || std::fs::write(go2, "go\n"))
            .await
            .expect("join")
            .expect("write the FIFO");
        pglab::wait_for("the grandchild to finish", Duration::from_secs(30), || async {
            Ok(marker.exists())
        })
        .await
        .expect("the grandchild's writes were not read");
    }
}
