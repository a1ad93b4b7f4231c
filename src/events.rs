//! The event history: what a daemon saw and did, one JSON object per line in a file beside the
//! state file (`event_log_path`). Owns the event shape, appending (one write per line, then
//! fsync, rotated by size into a bounded number of older files; a file whose last write was torn
//! gets a newline first, so the fragment costs only itself; an event is at most
//! [`MAX_EVENT_BYTES`]) and reading (newest first, each file read backwards a block at a time,
//! across the rotated files; a damaged or overlong line skipped with a warning and counted; at
//! most [`MAX_ANSWER_BYTES`] of events, as `GET /history` answers them), and the query of
//! `GET /history`. Appends happen on the file thread (`act::files`), never on the decision loop.

use crate::state::Timestamp;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The longest event line read back: a longer one is skipped as damaged, without being held in
/// memory. Appends shorten an event's reason to fit ([`Event::to_line`]).
pub const MAX_EVENT_BYTES: usize = 64 << 10;
/// The most a read returns, counted as `GET /history` answers it ([`Event::answer_bytes`]), so
/// no answer is larger; a read that stops here before `limit` events says so
/// ([`History::truncated`]).
pub const MAX_ANSWER_BYTES: usize = 4 << 20;
/// Damaged lines reported one by one; past this many in one read, one more warning counts the
/// rest.
const MAX_WARNINGS: usize = 10;
/// A file is read backwards in blocks of this size.
const BLOCK: usize = 64 << 10;
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

    /// The line appended for it (no newline), at most [`MAX_EVENT_BYTES`]: a longer one has its
    /// `reason` shortened, ending in `…`, so that every event we write can be read back.
    pub fn to_line(&self) -> String {
        let line = serde_json::to_string(self).unwrap_or_default();
        let over = line.len().saturating_sub(MAX_EVENT_BYTES);
        if over == 0 {
            return line;
        }
        // every character of the reason takes at least its UTF-8 length in the line, so cutting
        // `over` bytes and three more for the mark is enough (unless the other fields alone are
        // too long: they come from the config, never that long)
        let mut e = self.clone();
        let mut keep = e.reason.len().saturating_sub(over + '…'.len_utf8());
        while !e.reason.is_char_boundary(keep) {
            keep -= 1;
        }
        e.reason.truncate(keep);
        e.reason.push('…');
        serde_json::to_string(&e).unwrap_or_default()
    }

    /// How many bytes it adds to a `GET /history` answer: the answer is the events as a JSON
    /// array with a 4-space indent (`statefile::to_pretty_json`), so each is its own pretty form
    /// indented one level more, plus the indent of its first line and a separator, and the
    /// whole array is 2 bytes more than the sum.
    pub fn answer_bytes(&self) -> usize {
        let Ok(own) = crate::statefile::to_pretty_json(self) else {
            return 0;
        };
        let lines = own.iter().filter(|&&b| b == b'\n').count();
        own.len() + 4 * lines + 4 + 2
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

/// What [`read`] returns: the events, newest first, and warnings for the damaged lines.
#[derive(Debug, Default)]
pub struct History {
    pub events: Vec<Event>,
    /// One per damaged line, the first [`MAX_WARNINGS`] of them, then one that counts the rest.
    pub warnings: Vec<String>,
    /// How many damaged lines (not an event, or longer than [`MAX_EVENT_BYTES`]) were skipped.
    pub damaged: usize,
    /// The read stopped at [`MAX_ANSWER_BYTES`] with fewer than `limit` events.
    pub truncated: bool,
}

impl History {
    fn damaged(&mut self, path: &Path, offset: u64, what: &str) {
        self.damaged += 1;
        if self.damaged <= MAX_WARNINGS {
            self.warnings
                .push(format!("{} at byte {offset}: {what}; skipped", path.display()));
        }
    }
}

/// Reads the history at `path` and its rotated files, newest first: at most `limit` events,
/// only those at or after `since`, and no more than [`MAX_ANSWER_BYTES`] of them. A missing
/// file is an empty history; a line that is not an event, or is longer than
/// [`MAX_EVENT_BYTES`], is skipped with a warning and counted. Memory is bounded by what is
/// returned and one line: the files are read backwards, a block at a time.
pub fn read(path: &Path, limit: usize, since: Option<Timestamp>) -> std::io::Result<History> {
    read_within(path, limit, since, MAX_ANSWER_BYTES)
}

fn read_within(path: &Path, limit: usize, since: Option<Timestamp>, max_bytes: usize) -> std::io::Result<History> {
    let mut out = History::default();
    // the answer's `[` and `]`
    let mut used = 2;
    'files: for n in 0..=KEEP_ROTATED {
        let p = if n == 0 { path.to_path_buf() } else { rotated(path, n) };
        let Some(mut lines) = Backwards::open(&p)? else {
            continue;
        };
        while let Some((offset, line)) = lines.next_line()? {
            let Some(line) = line else {
                out.damaged(&p, offset, &format!("a line longer than {MAX_EVENT_BYTES} bytes"));
                continue;
            };
            let text = String::from_utf8_lossy(&line);
            if text.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<Event>(&text) {
                Ok(e) if since.is_some_and(|s| e.time < s) => break 'files,
                Ok(e) => {
                    let size = e.answer_bytes();
                    if used + size > max_bytes {
                        out.truncated = true;
                        break 'files;
                    }
                    used += size;
                    out.events.push(e);
                    if out.events.len() >= limit {
                        break 'files;
                    }
                }
                Err(e) => out.damaged(&p, offset, &format!("not an event ({e})")),
            }
        }
    }
    if out.damaged > MAX_WARNINGS {
        out.warnings.push(format!(
            "{} and {} more damaged lines skipped",
            path.display(),
            out.damaged - MAX_WARNINGS
        ));
    }
    Ok(out)
}

/// A file's lines, last first, read a block at a time from the end.
struct Backwards {
    file: std::fs::File,
    /// Where the unread part of the file ends.
    pos: u64,
    /// The bytes read but not yet returned: the file from `pos` up to the start of the line
    /// returned last (without its newline).
    buf: Vec<u8>,
    /// The line that ends `buf` is longer than [`MAX_EVENT_BYTES`]: what is in `buf` of it was
    /// dropped, and so is the rest as it is read.
    long: bool,
}

impl Backwards {
    fn open(path: &Path) -> std::io::Result<Option<Backwards>> {
        let file = match std::fs::File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let pos = file.metadata()?.len();
        Ok(Some(Backwards {
            file,
            pos,
            buf: Vec::new(),
            long: false,
        }))
    }

    /// The next line back: its byte offset, and its bytes (`None` when it is longer than
    /// [`MAX_EVENT_BYTES`]); `None` at the start of the file.
    #[allow(clippy::type_complexity)]
    fn next_line(&mut self) -> std::io::Result<Option<(u64, Option<Vec<u8>>)>> {
        use std::os::unix::fs::FileExt;
        loop {
            let newline = self.buf.iter().rposition(|&b| b == b'\n');
            if newline.is_some() || self.pos == 0 {
                if newline.is_none() && self.buf.is_empty() && !self.long {
                    return Ok(None);
                }
                let start = newline.map_or(0, |i| i + 1);
                let line = self.buf.split_off(start);
                self.buf.truncate(start.saturating_sub(1));
                let offset = self.pos + start as u64;
                let long = std::mem::take(&mut self.long) || line.len() > MAX_EVENT_BYTES;
                return Ok(Some((offset, (!long).then_some(line))));
            }
            if self.buf.len() > MAX_EVENT_BYTES {
                self.long = true;
                self.buf.clear();
            }
            let n = usize::try_from(self.pos).unwrap_or(usize::MAX).min(BLOCK);
            self.pos -= n as u64;
            let mut block = vec![0; n];
            self.file.read_exact_at(&mut block, self.pos)?;
            block.append(&mut self.buf);
            self.buf = block;
        }
    }
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
        assert_eq!(h.events, vec![good.clone(), good.clone()]);
        assert_eq!(h.warnings.len(), 2, "{:?}", h.warnings);
        assert_eq!(h.damaged, 2);
        // the third line starts after the first and the 17 bytes of the second
        let third = good.to_line().len() + 1 + 17 + 1;
        assert!(h.warnings[0].contains(&format!("at byte {third}:")), "{:?}", h.warnings);
    }

    /// A write torn by a full disk or a crash leaves a fragment without its newline: the next
    /// append starts on a fresh line, so only the fragment is lost.
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
        // sixteen lines of about 60 KiB per append, about 1 MiB: eight appends fill a file
        let big = "x".repeat(60 << 10);
        let mut n = 0;
        for round in 0..60 {
            let lines: Vec<String> = (0..16)
                .map(|i| Event::new(at("2026-01-01T00:00:00Z"), "pg1", "test", format!("{round}.{i} {big}")).to_line())
                .collect();
            append(&path, &lines).expect("append");
            n += lines.len();
        }
        assert!(std::fs::metadata(&path).expect("file").len() < ROTATE_BYTES + (2 << 20));
        for k in 1..=KEEP_ROTATED {
            assert!(rotated(&path, k).exists(), "{k}");
        }
        assert!(!rotated(&path, KEEP_ROTATED + 1).exists());
        let h = read_within(&path, MAX_LIMIT, None, usize::MAX).expect("read");
        let per_file = 8 * 16;
        assert!(
            h.events.len() < n && h.events.len() > per_file * KEEP_ROTATED,
            "{}",
            h.events.len()
        );
        assert!(h.events[0].reason.starts_with("59.15 "), "the newest first");
        assert_eq!((h.damaged, h.truncated), (0, false));
    }

    /// A line longer than [`MAX_EVENT_BYTES`] is skipped and counted, wherever it is in the
    /// file, and the lines around it are read (one 60 MB event would otherwise make every
    /// `/history` answer 63 MB).
    #[test]
    fn a_line_over_the_cap_is_skipped_as_damaged() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("h.jsonl");
        let e = |i: u32, reason: &str| {
            Event::new(
                at(&format!("2026-01-01T00:00:0{i}Z")),
                "pg1",
                "test",
                reason.to_string(),
            )
        };
        let huge = serde_json::to_string(&e(0, &"x".repeat(3 << 20))).expect("json");
        let just_over = serde_json::to_string(&e(0, &"y".repeat(MAX_EVENT_BYTES))).expect("json");
        let lines = [
            huge.clone(),
            e(1, "a").to_line(),
            just_over,
            e(2, "b").to_line(),
            huge.clone(),
            e(3, "c").to_line(),
        ];
        // the last one torn: no newline
        std::fs::write(&path, format!("{}\n{huge}", lines.join("\n"))).expect("write");
        let h = read(&path, 100, None).expect("read");
        assert_eq!(h.events, vec![e(3, "c"), e(2, "b"), e(1, "a")]);
        assert_eq!(h.damaged, 4, "{:?}", h.warnings);
        assert!(
            h.warnings[0].contains(&format!("longer than {MAX_EVENT_BYTES} bytes")),
            "{:?}",
            h.warnings
        );
        assert!(h.warnings[3].contains("at byte 0:"), "{:?}", h.warnings);
        // a line of exactly the cap is read
        let base = e(4, "").to_line().len();
        let fits = e(4, &"z".repeat(MAX_EVENT_BYTES - base - r#","reason":"""#.len()));
        let exact = serde_json::to_string(&fits).expect("json");
        assert_eq!(exact.len(), MAX_EVENT_BYTES);
        std::fs::write(&path, format!("{exact}\n")).expect("write");
        assert_eq!(read(&path, 10, None).expect("read").events, vec![fits]);
    }

    #[test]
    fn a_long_reason_is_shortened_so_the_event_can_be_read_back() {
        for unit in ["x", "é", "\u{1}", "\""] {
            let reason = unit.repeat(MAX_EVENT_BYTES);
            let e = Event::new(at("2026-01-01T00:00:00Z"), "pg1", "test", reason.clone());
            let line = e.to_line();
            assert!(line.len() <= MAX_EVENT_BYTES, "{unit:?}: {}", line.len());
            let back: Event = serde_json::from_str(&line).expect("an event");
            assert!(back.reason.ends_with('…'), "{unit:?}");
            assert!(reason.starts_with(back.reason.trim_end_matches('…')), "{unit:?}");
            assert_eq!((back.kind.as_str(), back.node.as_str()), ("test", "pg1"));
        }
        let short = Event::new(at("2026-01-01T00:00:00Z"), "pg1", "test", "fine");
        assert_eq!(short.to_line(), serde_json::to_string(&short).expect("json"));
    }

    #[test]
    fn the_answer_size_is_counted_exactly() {
        let events = [
            Event::new(at("2026-01-01T00:00:00Z"), "pg1", "daemon_start", ""),
            Event::new(at("2026-01-01T00:00:01Z"), "pg2", "master_changed", "é \" \n x")
                .masters(Some("pg1"), Some("pg2")),
            Event::new(at("2026-01-01T00:00:02Z"), "", "test", "r").masters(None, Some("pg3")),
        ];
        for n in 0..=events.len() {
            let answer = crate::statefile::to_pretty_json(&events[..n].to_vec()).expect("json");
            let counted: usize = 2 + events[..n].iter().map(Event::answer_bytes).sum::<usize>();
            assert_eq!(answer.len(), counted, "{n} events");
        }
    }

    /// No read returns more than [`MAX_ANSWER_BYTES`] as answered, whatever `limit` says.
    #[test]
    fn a_read_stops_at_the_answer_cap() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("h.jsonl");
        let big = "x".repeat(60 << 10);
        let lines: Vec<String> = (0..100)
            .map(|i| Event::new(at("2026-01-01T00:00:00Z"), "pg1", "test", format!("{i} {big}")).to_line())
            .collect();
        append(&path, &lines).expect("append");
        let h = read(&path, MAX_LIMIT, None).expect("read");
        assert!(h.truncated);
        let answer = crate::statefile::to_pretty_json(&h.events).expect("json");
        assert!(answer.len() <= MAX_ANSWER_BYTES, "{}", answer.len());
        assert!(answer.len() > MAX_ANSWER_BYTES - (70 << 10), "{}", answer.len());
        assert!(h.events[0].reason.starts_with("99 "));
        // within the cap, `limit` rules and nothing is truncated
        let h = read(&path, 3, None).expect("read");
        assert_eq!((h.events.len(), h.truncated), (3, false));
        // a cap smaller than one event: nothing, truncated
        let h = read_within(&path, 3, None, 100).expect("read");
        assert_eq!((h.events.len(), h.truncated), (0, true));
    }

    #[test]
    fn damaged_lines_are_all_counted_but_few_are_told() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("h.jsonl");
        let good = Event::new(at("2026-01-01T00:00:00Z"), "pg1", "daemon_start", "");
        std::fs::write(&path, format!("{}\n{}", good.to_line(), "junk\n".repeat(1000))).expect("write");
        let h = read(&path, 10, None).expect("read");
        assert_eq!(h.events, vec![good]);
        assert_eq!(h.damaged, 1000);
        assert_eq!(h.warnings.len(), MAX_WARNINGS + 1, "{:?}", h.warnings);
        assert!(
            h.warnings[MAX_WARNINGS].contains("990 more damaged lines"),
            "{:?}",
            h.warnings
        );
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

    /// Names and values are decoded alike and a repeated parameter is refused: `limit=%31` is
    /// a limit of 1, not a 400, and a second `limit` does not silently win.
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
