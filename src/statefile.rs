//! The state file on disk: written atomically (a temp file in the same directory, fsync,
//! rename, fsync of the directory) and pretty-printed with the original's 4-space indent.

use serde::Serialize;
use std::io::Write;
use std::path::Path;

/// JSON with a 4-space indent, as the original's `json.dumps(indent=4)`.
pub fn to_pretty_json<T: Serialize>(value: &T) -> serde_json::Result<Vec<u8>> {
    let mut out = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
    value.serialize(&mut ser)?;
    Ok(out)
}

/// Replaces `path` with `bytes` so that a reader sees the old or the new file, never a part.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_atomic_mode(path, bytes, 0o644)
}

/// As [`write_atomic`], creating the file with `mode`, or, when `path` exists, with its mode
/// and owner (a PostgreSQL config file holding a replication password must stay as private
/// and as owned as it was).
pub fn write_atomic_mode(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".pglookout_state.")
        .suffix(".tmp")
        .tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    match std::fs::metadata(path) {
        Ok(old) => {
            tmp.as_file()
                .set_permissions(std::fs::Permissions::from_mode(old.mode() & 0o7777))?;
            // only root can give a file away; otherwise it is ours already
            let _ = std::os::unix::fs::fchown(tmp.as_file(), Some(old.uid()), Some(old.gid()));
        }
        Err(_) => tmp.as_file().set_permissions(std::fs::Permissions::from_mode(mode))?,
    }
    tmp.persist(path).map_err(|e| e.error)?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Writes `value` as pretty JSON, atomically.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> std::io::Result<()> {
    let bytes = to_pretty_json(value).map_err(std::io::Error::other)?;
    write_atomic(path, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::StateDocument;
    use std::collections::BTreeMap;

    #[test]
    fn test_state_file_write() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("state.json");
        let nodes = BTreeMap::new();
        let observers = BTreeMap::new();
        let doc = StateDocument {
            db_nodes: &nodes,
            observer_nodes: &observers,
            current_master: Some("pg1"),
            decision: None,
            lease_renewed_at: None,
            pause: None,
            switchover: None,
        };
        write_json(&path, &doc).expect("write");
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(text.contains("\n    \"current_master\": \"pg1\""), "{text}");
        let v: serde_json::Value = serde_json::from_str(&text).expect("json");
        assert!(v.is_object());
        // no temp files are left behind
        assert_eq!(std::fs::read_dir(dir.path()).expect("ls").count(), 1);
    }

    #[test]
    fn the_lease_renewal_comes_back_from_our_state_file_and_nothing_else() {
        use crate::state::lease_renewed_at;
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("state.json");
        assert_eq!(lease_renewed_at(&path), None, "no file");
        let (nodes, observers) = (BTreeMap::new(), BTreeMap::new());
        let renewed = crate::state::parse_iso("2026-12-06T07:26:26.123456Z").expect("time");
        let doc = StateDocument {
            db_nodes: &nodes,
            observer_nodes: &observers,
            current_master: None,
            decision: None,
            lease_renewed_at: Some(renewed),
            pause: None,
            switchover: None,
        };
        write_json(&path, &doc).expect("write");
        assert_eq!(lease_renewed_at(&path), Some(renewed));
        // the original's state file has no such key; garbage is no lease either
        let original = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pg2-state-file.json");
        assert_eq!(lease_renewed_at(&original), None);
        for junk in [
            &b"{\"lease_renewed_at\": 12}"[..],
            b"{\"lease_renewed_at\": \"yesterday\"}",
            b"\x00{",
        ] {
            write_atomic(&path, junk).expect("write");
            assert_eq!(lease_renewed_at(&path), None);
        }
    }

    #[test]
    fn a_write_into_a_missing_directory_fails_without_touching_anything() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("missing").join("state.json");
        assert!(write_atomic(&path, b"{}").is_err());
    }
}
