//! `pglookout_current_master` exit codes: 0 with the name, 1 for a missing config, 255 for a
//! missing, unreadable, masterless or stale state file.

use super::harness::current_master_bin;
use std::process::Command;
use std::time::{Duration, SystemTime};

fn run(config: &std::path::Path) -> (i32, String, String) {
    let out = Command::new(current_master_bin()).arg(config).output().expect("run");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn exit_codes() {
    let dir = tempfile::tempdir().expect("dir");
    let state = dir.path().join("state.json");
    let config = dir.path().join("pglookout.json");
    std::fs::write(&config, format!(r#"{{"json_state_file_path": "{}"}}"#, state.display())).expect("w");

    let (code, out, _) = run(&dir.path().join("missing.json"));
    assert_eq!(code, 1);
    assert!(out.contains("doesn't exist"), "{out}");

    let (code, _, err) = run(&config);
    assert_eq!(code, 255, "missing state file");
    assert!(err.contains("state file"), "{err}");

    std::fs::write(&state, "{not json").expect("w");
    assert_eq!(run(&config).0, 255, "bad JSON");

    std::fs::write(
        &state,
        r#"{"db_nodes": {}, "observer_nodes": {}, "current_master": null}"#,
    )
    .expect("w");
    let (code, _, err) = run(&config);
    assert_eq!(code, 255, "no master");
    assert!(err.contains("no current master"), "{err}");

    std::fs::write(
        &state,
        r#"{"db_nodes": {}, "observer_nodes": {}, "current_master": "pg1"}"#,
    )
    .expect("w");
    let (code, out, _) = run(&config);
    assert_eq!((code, out.as_str()), (0, "pg1\n"));

    let old = SystemTime::now() - Duration::from_secs(61);
    std::fs::File::options()
        .write(true)
        .open(&state)
        .expect("open")
        .set_modified(old)
        .expect("mtime");
    let (code, _, err) = run(&config);
    assert_eq!(code, 255, "stale state file");
    assert!(err.contains("stale"), "{err}");

    let set_mtime = |t: SystemTime| {
        std::fs::File::options()
            .write(true)
            .open(&state)
            .expect("open")
            .set_modified(t)
            .expect("mtime")
    };
    set_mtime(SystemTime::now() + Duration::from_secs(3600));
    let (code, _, err) = run(&config);
    assert_eq!(code, 255, "a state file dated an hour ahead is not fresh");
    assert!(err.contains("in the future"), "{err}");
    // a small step of the clock is tolerated
    set_mtime(SystemTime::now() + Duration::from_secs(5));
    assert_eq!(run(&config).0, 0);
}

/// `--help` printed an error (issue 19, item 12); the original's argparse prints the usage and
/// exits 0, prints its version for `--version`, and exits 2 for a usage error.
#[test]
fn help_version_and_usage_errors_as_the_originals_argparse() {
    let run_args = |args: &[&str]| {
        let out = Command::new(current_master_bin()).args(args).output().expect("run");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    for flag in ["--help", "-h"] {
        let (code, out, err) = run_args(&[flag]);
        assert_eq!(code, 0, "{flag}: {out}{err}");
        assert!(
            out.contains("Usage: pglookout_current_master") && out.contains("CONFIG"),
            "{out}"
        );
        assert!(out.contains("255"), "the exit codes are explained: {out}");
    }
    let (code, out, _) = run_args(&["--version"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("pglookout_current_master "), "{out}");
    for args in [&[][..], &["a.json", "b.json"], &["--bogus", "a.json"]] {
        let (code, _, err) = run_args(args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains("Usage: pglookout_current_master"), "{args:?}: {err}");
    }
}
