//! The event history: what a daemon saw and did, one JSON object per line in a file beside the
//! state file (`event_log_path`). Owns the event shape, appending (one write per line, then
//! fsync, rotated by size into a bounded number of older files; a file whose last write was torn
//! gets a newline first, so the fragment costs only itself) and reading (newest first, across
//! the rotated files, a damaged line skipped with a warning and counted). Appends happen on the
//! file thread (`act::files`), never on the decision loop.

use crate::state::Timestamp;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

/// A file is rotated once it holds this many bytes.
pub const ROTATE_BYTES: u64 = 8 << 20;
/// How many rotated files are kept (`<path>.1` newest .. `<path>.N` oldest).
pub const KEEP_ROTATED: usize = 4;

/// One thing that happened. `kind` is a short snake_case word (`master_changed`,
/// `failover_started`, ...); `reason` the human-readable why, as in the decision's reasons.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    #[serde(with = "iso_time")]
    pub time: Timestamp,
    /// The daemon's own node (empty for an observer).
    pub node: String,
    pub kind: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_master: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_master: Option<String>,
}

impl Event {
    pub fn new(time: Timestamp, node: &str, kind: &str, reason: impl Into<String>) -> Event {
        Event {
            time,
            node: node.to_string(),
            kind: kind.to_string(),
            reason: reason.into(),
            old_master: None,
            new_master: None,
        }
    }

    pub fn masters(mut self, old: Option<&str>, new: Option<&str>) -> Event {
        self.old_master = old.map(str::to_string);
        self.new_master = new.map(str::to_string);
        self
    }

    /// The line appended for it (no newline).
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// The state documents' ISO 8601 times (`state::iso`, `state::parse_iso`).
mod iso_time {
    use crate::state::{iso, parse_iso, Timestamp};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&iso(t))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
        let s = String::deserialize(d)?;
        parse_iso(&s).ok_or_else(|| serde::de::Error::custom(format!("not an ISO 8601 time: {s:?}")))
    }
}

/// The default path: beside the state file, named after it (`state.json` -> `state.events.jsonl`),
/// so that daemons sharing a directory never share a history.
pub fn default_path(state_file: &Path) -> PathBuf {
    let stem = state_file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "pglookout".into());
    state_file.with_file_name(format!("{stem}.events.jsonl"))
}

fn rotated(path: &Path, n: usize) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

/// Appends `lines` (each one event) to `path`: rotates first when the file has reached
/// [`ROTATE_BYTES`], then one `write` per line and one fsync for the batch. When the file does
/// not end with a newline (a write torn by a full disk or a crash), a newline comes first, so
/// that the fragment stays a damaged line of its own and the new events are read back.
pub fn append(path: &Path, lines: &[String]) -> std::io::Result<()> {
    if std::fs::metadata(path).is_ok_and(|m| m.len() >= ROTATE_BYTES) {
        for n in (1..KEEP_ROTATED).rev() {
            let from = rotated(path, n);
            if from.exists() {
                std::fs::rename(&from, rotated(path, n + 1))?;
            }
        }
        std::fs::rename(path, rotated(path, 1))?;
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .read(true)
        .open(path)?;
    if !ends_a_line(&f)? {
        f.write_all(b"\n")?;
    }
    for line in lines {
        let mut bytes = line.clone().into_bytes();
        bytes.push(b'\n');
        f.write_all(&bytes)?;
    }
    f.sync_data()
}

/// Whether `f` is empty or ends with a newline.
fn ends_a_line(f: &std::fs::File) -> std::io::Result<bool> {
    use std::os::unix::fs::FileExt;
    let len = f.metadata()?.len();
    if len == 0 {
        return Ok(true);
    }
    let mut last = [0u8];
    f.read_exact_at(&mut last, len - 1)?;
    Ok(last[0] == b'\n')
}

/// What [`read`] returns: the events, newest first, and a warning per damaged line.
#[derive(Debug, Default)]
pub struct History {
    pub events: Vec<Event>,
    pub warnings: Vec<String>,
    /// How many damaged lines (not an event) were skipped.
    pub damaged: usize,
}

/// Reads the history at `path` and its rotated files, newest first: at most `limit` events,
/// only those at or after `since`. A missing file is an empty history; a line that is not an
/// event is skipped with a warning.
pub fn read(path: &Path, limit: usize, since: Option<Timestamp>) -> std::io::Result<History> {
    let mut out = History::default();
    for n in 0..=KEEP_ROTATED {
        let p = if n == 0 { path.to_path_buf() } else { rotated(path, n) };
        let text = match std::fs::read(&p) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for (i, line) in text.lines().enumerate().collect::<Vec<_>>().into_iter().rev() {
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<Event>(line) {
                Ok(e) if since.is_some_and(|s| e.time < s) => return Ok(out),
                Ok(e) => {
                    out.events.push(e);
                    if out.events.len() >= limit {
                        return Ok(out);
                    }
                }
                Err(e) => {
                    out.damaged += 1;
                    out.warnings
                        .push(format!("{} line {}: not an event ({e}); skipped", p.display(), i + 1))
                }
            }
        }
    }
    Ok(out)
}

/// How many events `/history` answers when no `limit` is given, and at most.
pub const DEFAULT_LIMIT: usize = 100;
pub const MAX_LIMIT: usize = 10_000;

/// The query of `GET /history` (decoded by `query::parse`: a repeated parameter is an error):
/// `limit` (1 to [`MAX_LIMIT`]) and `since` (an ISO 8601 time); an unknown parameter or a bad
/// value is an error that says which.
pub fn parse_query(query: Option<&str>) -> Result<(usize, Option<Timestamp>), String> {
    let mut limit = DEFAULT_LIMIT;
    let mut since = None;
    for (k, v) in crate::query::parse(query)? {
        match k.as_str() {
            "limit" => {
                limit = v
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=MAX_LIMIT).contains(n))
                    .ok_or_else(|| format!("limit: expected a whole number from 1 to {MAX_LIMIT}, got {v:?}"))?;
            }
            "since" => {
                let t = crate::state::parse_iso(&v).ok_or_else(|| {
                    // a raw `+` in a query string is a space: `+01:00` arrives as ` 01:00`
                    let hint = if v.contains(' ') {
                        " (a + in a query string means a space: write it %2B)"
                    } else {
                        ""
                    };
                    format!("since: expected an ISO 8601 time, got {v:?}{hint}")
                })?;
                since = Some(t);
            }
            _ => return Err(format!("unknown parameter {k:?} (limit, since)")),
        }
    }
    Ok((limit, since))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::parse_iso;

    fn at(s: &str) -> Timestamp {
        parse_iso(s).expect("time")
    }

    #[test]
    fn events_round_trip_and_read_newest_first_with_limit_and_since() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("state.events.jsonl");
        let events: Vec<Event> = (0..5)
            .map(|i| {
                Event::new(
                    at(&format!("2026-01-01T00:00:0{i}Z")),
                    "pg2",
                    "master_changed",
                    format!("n{i}"),
                )
                .masters(Some("pg1"), Some("pg2"))
            })
            .collect();
        let lines: Vec<String> = events.iter().map(Event::to_line).collect();
        append(&path, &lines[..2]).expect("append");
        append(&path, &lines[2..]).expect("append");
        let h = read(&path, 100, None).expect("read");
        let mut newest_first = events.clone();
        newest_first.reverse();
        assert_eq!(h.events, newest_first);
        assert!(h.warnings.is_empty());
        assert_eq!(read(&path, 2, None).expect("read").events, newest_first[..2]);
        let since = read(&path, 100, Some(at("2026-01-01T00:00:03Z"))).expect("read");
        assert_eq!(since.events, newest_first[..2]);
        // a missing history is empty
        assert!(read(&dir.path().join("none"), 10, None)
            .expect("read")
            .events
            .is_empty());
    }

    #[test]
    fn a_damaged_line_is_skipped_with_a_warning() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("h.jsonl");
        let good = Event::new(at("2026-01-01T00:00:00Z"), "pg1", "daemon_start", "");
        std::fs::write(
            &path,
            format!(
                "{}\n{{\"time\": \"garbage\n\u{0}\u{1}\n{}\n",
                good.to_line(),
                good.to_line()
            ),
        )
        .expect("write");
        let h = read(&path, 10, None).expect("read");
        assert_eq!(h.events, vec![good.clone(), good]);
        assert_eq!(h.warnings.len(), 2, "{:?}", h.warnings);
        assert!(h.warnings[0].contains("line 3"), "{:?}", h.warnings);
    }

    /// A write torn by a full disk or a crash leaves a fragment without its newline: the next
    /// append starts on a fresh line, so only the fragment is lost (issue 19, item 1).
    #[test]
    fn a_torn_write_costs_only_itself() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("h.jsonl");
        let first = Event::new(at("2026-01-01T00:00:00Z"), "pg1", "daemon_start", "");
        let torn = Event::new(at("2026-01-01T00:00:01Z"), "pg1", "master_changed", "torn");
        let next = Event::new(at("2026-01-01T00:00:02Z"), "pg1", "daemon_stop", "after");
        let line = torn.to_line();
        std::fs::write(&path, format!("{}\n{}", first.to_line(), &line[..line.len() / 2])).expect("write");
        append(&path, &[next.to_line()]).expect("append");
        let h = read(&path, 10, None).expect("read");
        assert_eq!(h.events, vec![next, first]);
        assert_eq!(h.damaged, 1, "{:?}", h.warnings);
        assert_eq!(h.warnings.len(), 1, "{:?}", h.warnings);
        // an intact file gets no blank line
        let clean = dir.path().join("clean.jsonl");
        append(&clean, &[h.events[1].to_line()]).expect("append");
        append(&clean, &[h.events[0].to_line()]).expect("append");
        let text = std::fs::read_to_string(&clean).expect("read");
        assert_eq!(text.lines().count(), 2, "{text:?}");
        assert!(!text.contains("\n\n"), "{text:?}");
    }

    #[test]
    fn the_file_rotates_by_size_and_keeps_a_bounded_number() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("h.jsonl");
        // a line of about 1 MiB: eight of them fill a file
        let big = "x".repeat(1 << 20);
        let mut n = 0;
        for round in 0..60 {
            let e = Event::new(at("2026-01-01T00:00:00Z"), "pg1", "test", format!("{round} {big}"));
            append(&path, &[e.to_line()]).expect("append");
            n += 1;
        }
        assert!(std::fs::metadata(&path).expect("file").len() < ROTATE_BYTES + (2 << 20));
        for k in 1..=KEEP_ROTATED {
            assert!(rotated(&path, k).exists(), "{k}");
        }
        assert!(!rotated(&path, KEEP_ROTATED + 1).exists());
        let h = read(&path, 1000, None).expect("read");
        assert!(
            h.events.len() < n && h.events.len() > 8 * KEEP_ROTATED,
            "{}",
            h.events.len()
        );
        assert!(h.events[0].reason.starts_with("59 "), "the newest first");
    }

    #[test]
    fn the_default_path_is_named_after_the_state_file() {
        assert_eq!(
            default_path(Path::new("/var/lib/pglookout/state.json")),
            PathBuf::from("/var/lib/pglookout/state.events.jsonl")
        );
    }

    #[test]
    fn the_history_query_is_checked() {
        assert_eq!(parse_query(None), Ok((DEFAULT_LIMIT, None)));
        assert_eq!(parse_query(Some("limit=5")), Ok((5, None)));
        assert_eq!(
            parse_query(Some("since=2026-01-01T00%3A00%3A00Z&limit=2")),
            Ok((2, Some(at("2026-01-01T00:00:00Z"))))
        );
        for bad in ["limit=0", "limit=x", "limit=10001", "since=yesterday", "lag=3"] {
            assert!(parse_query(Some(bad)).is_err(), "{bad}");
        }
    }

    /// Names and values are decoded alike and a repeated parameter is refused (issue 19,
    /// item 9: `limit=%31` was a 400 and a second `limit` silently won).
    #[test]
    fn the_history_query_is_decoded_and_refuses_repeats() {
        assert_eq!(parse_query(Some("limit=%31")), Ok((1, None)));
        assert_eq!(parse_query(Some("%6Cimit=7")), Ok((7, None)));
        assert_eq!(
            parse_query(Some("since=2026-01-01T01%3A00%3A00%2B01%3A00")),
            Ok((DEFAULT_LIMIT, Some(at("2026-01-01T00:00:00Z"))))
        );
        assert_eq!(
            parse_query(Some("limit=1&limit=2")),
            Err("limit: given more than once".to_string())
        );
        let raw_plus = parse_query(Some("since=2026-01-01T01:00:00+01:00")).expect_err("a space");
        assert!(raw_plus.contains("%2B"), "{raw_plus}");
    }
}
