//! Process plumbing: pid files, liveness, `/proc` scans and signals.
//!
//! Owns no processes and knows nothing about PostgreSQL beyond the first line of
//! `postmaster.pid`. Linux-only (`/proc`).

use std::path::{Path, PathBuf};

use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;

/// The pid on the first line of `<data_dir>/postmaster.pid`, if the file exists and parses.
/// The process may be long gone: check with [`pid_alive`].
pub fn read_pid_file(data_dir: &Path) -> Option<i32> {
    let text = std::fs::read_to_string(data_dir.join("postmaster.pid")).ok()?;
    text.lines().next()?.trim().parse().ok()
}

/// Fields of `/proc/<pid>/stat` after the command name: (state, ppid, pgrp).
fn stat(pid: i32) -> Option<(char, i32, i32)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may itself contain spaces and parentheses.
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    let pgrp = fields.next()?.parse().ok()?;
    Some((state, ppid, pgrp))
}

/// True when `pid` exists and is not a zombie (a zombie holds no sockets, memory or files).
pub fn pid_alive(pid: i32) -> bool {
    matches!(stat(pid), Some((state, _, _)) if state != 'Z' && state != 'X')
}

fn all_pids() -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect()
}

/// Live processes whose parent is `pid` or whose process group is `pid`.
pub fn children_and_group(pid: i32) -> Vec<i32> {
    all_pids()
        .into_iter()
        .filter(|&p| p != pid)
        .filter(|&p| match stat(p) {
            Some((state, ppid, pgrp)) => state != 'Z' && (ppid == pid || pgrp == pid),
            None => false,
        })
        .collect()
}

/// The current directory of `pid` (without the " (deleted)" suffix of a removed directory).
pub fn cwd_of(pid: i32) -> Option<PathBuf> {
    let link = std::fs::read_link(format!("/proc/{pid}/cwd")).ok()?;
    let s = link.to_string_lossy();
    Some(PathBuf::from(s.strip_suffix(" (deleted)").unwrap_or(&s)))
}

/// Live processes whose current directory is `dir` or below it. PostgreSQL servers `chdir` into
/// their data directory and every child inherits it, so this finds all processes of a cluster
/// (including orphans whose postmaster is gone), even after the directory was removed.
pub fn pids_with_cwd_under(dir: &Path) -> Vec<i32> {
    let me = std::process::id() as i32;
    all_pids()
        .into_iter()
        .filter(|&p| p != me && pid_alive(p))
        .filter(|&p| cwd_of(p).is_some_and(|cwd| cwd.starts_with(dir)))
        .collect()
}

/// Send `sig` to `pid`, ignoring "no such process".
pub fn signal(pid: i32, sig: Signal) {
    let _ = kill(Pid::from_raw(pid), sig);
}

/// Send `sig` to the process group `pgid` and to `pgid` itself, ignoring errors.
pub fn signal_group(pgid: i32, sig: Signal) {
    let _ = killpg(Pid::from_raw(pgid), sig);
    signal(pgid, sig);
}
