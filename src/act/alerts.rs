//! Alert files: `<alert_file_dir>/<name>` holding `alert`, as the original. Creating an existing
//! one or deleting a missing one is not an error; any other failure is logged, never fatal.

use std::path::Path;

/// The original's alert file names.
pub const AUTHENTICATION_ERROR: &str = "authentication_error";
pub const MULTIPLE_MASTER_WARNING: &str = "multiple_master_warning";
pub const REPLICATION_DELAY_WARNING: &str = "replication_delay_warning";
pub const FAILOVER_HAS_HAPPENED: &str = "failover_has_happened";

pub fn create(dir: &Path, name: &str) -> std::io::Result<()> {
    let path = dir.join(name);
    if path.exists() {
        return Ok(());
    }
    tracing::warn!(target: "pglookout", "creating alert file {}", path.display());
    std::fs::write(&path, "alert")
}

/// Creates the alert file holding `text` (ours, for the reason), or writes it again when it
/// holds something else.
pub fn write(dir: &Path, name: &str, text: &str) -> std::io::Result<()> {
    let path = dir.join(name);
    let line = format!("{text}\n");
    match std::fs::read_to_string(&path) {
        Ok(old) if old == line => return Ok(()),
        Ok(_) => {}
        Err(_) => tracing::warn!(target: "pglookout", "creating alert file {}: {text}", path.display()),
    }
    std::fs::write(&path, line)
}

pub fn delete(dir: &Path, name: &str) -> std::io::Result<()> {
    let path = dir.join(name);
    match std::fs::remove_file(&path) {
        Ok(()) => {
            tracing::info!(target: "pglookout", "removed alert file {}", path.display());
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_and_delete_are_idempotent() {
        let dir = tempfile::tempdir().expect("dir");
        create(dir.path(), MULTIPLE_MASTER_WARNING).expect("create");
        create(dir.path(), MULTIPLE_MASTER_WARNING).expect("again");
        assert_eq!(
            std::fs::read_to_string(dir.path().join(MULTIPLE_MASTER_WARNING)).expect("read"),
            "alert"
        );
        delete(dir.path(), MULTIPLE_MASTER_WARNING).expect("delete");
        delete(dir.path(), MULTIPLE_MASTER_WARNING).expect("again");
        assert!(!dir.path().join(MULTIPLE_MASTER_WARNING).exists());
    }

    #[test]
    fn an_alert_with_a_reason_holds_the_latest_one() {
        let dir = tempfile::tempdir().expect("dir");
        write(dir.path(), "failover_blocked", "no failover: one").expect("write");
        write(dir.path(), "failover_blocked", "no failover: two").expect("again");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("failover_blocked")).expect("read"),
            "no failover: two\n"
        );
    }
}
