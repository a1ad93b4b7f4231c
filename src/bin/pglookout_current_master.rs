//! `pglookout_current_master CONFIG`: prints the current master from the state file that the
//! daemon with this config writes. Exit codes as the original: 0 and the name; 1 when the
//! config path does not exist; 255 when the state file is missing, unreadable, names no
//! master, or is older than 60 s or dated more than 60 s in the future (the original's
//! staleness check never fires; ours does).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

const MAX_AGE: Duration = Duration::from_secs(60);

fn current_master(config: &std::path::Path) -> Result<String, String> {
    let state_path = pglookout::config::state_file_path_of(config).map_err(|e| e.to_string())?;
    let shown = state_path.display();
    let meta = std::fs::metadata(&state_path).map_err(|e| format!("state file {shown}: {e}"))?;
    let modified = meta.modified().map_err(|e| format!("state file {shown}: {e}"))?;
    // File times are wall-clock: comparing with the wall clock is the only meaningful check.
    // A file dated in the future by more than the same margin proves nothing about now (the
    // clock was set back, or the time was set by hand): it is not taken as fresh.
    let age = match SystemTime::now().duration_since(modified) {
        Ok(age) => age,
        Err(e) if e.duration() > MAX_AGE => {
            return Err(format!(
                "state file {shown} is dated {} s in the future (more than 60 s); was the clock set back? is pglookout running?",
                e.duration().as_secs()
            ))
        }
        Err(_) => Duration::ZERO,
    };
    if age > MAX_AGE {
        return Err(format!(
            "state file {shown} is stale: last written {} s ago (more than 60 s); is pglookout running?",
            age.as_secs()
        ));
    }
    let text = std::fs::read_to_string(&state_path).map_err(|e| format!("state file {shown}: {e}"))?;
    let doc: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("state file {shown} is not valid JSON: {e}"))?;
    match doc.get("current_master") {
        Some(serde_json::Value::String(m)) if !m.is_empty() => Ok(m.clone()),
        Some(serde_json::Value::Null) | Some(serde_json::Value::String(_)) => {
            Err(format!("state file {shown}: no current master is known"))
        }
        Some(_) => Err(format!("state file {shown}: current_master is not a string")),
        None => Err(format!("state file {shown} has no current_master key")),
    }
}

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let (Some(config), None) = (args.next(), args.next()) else {
        eprintln!("usage: pglookout_current_master CONFIG");
        return ExitCode::from(1);
    };
    let config = PathBuf::from(config);
    if !config.exists() {
        println!("pglookout_current_master: '{}' doesn't exist", config.display());
        return ExitCode::from(1);
    }
    match current_master(&config) {
        Ok(master) => {
            println!("{master}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("pglookout_current_master: {e}");
            ExitCode::from(255)
        }
    }
}
