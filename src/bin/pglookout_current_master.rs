//! `pglookout_current_master CONFIG`: prints the current master from the state file that the
//! daemon with this config writes. Exit codes as the original: 0 and the name; 1 when the
//! config path does not exist; 255 when the state file is missing, unreadable, names no
//! master, or is older than 60 s or dated more than 60 s in the future (the original's
//! staleness check never fires; ours does); 2 for a usage error, and `--help` and `--version`
//! print and exit 0, as the original's argparse does.

use clap::Parser;
use pglookout::ctl::{FileAge, STATE_MAX_AGE};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "pglookout_current_master",
    version,
    about = "Print the current master from the state file of the pglookout daemon with this config",
    after_help = "Exit status: 0 with the master's name; 1 when CONFIG does not exist; 255 when the state \
                  file is missing, unreadable, names no master, or is older than 60 s (or dated more than \
                  60 s in the future); 2 for a usage error."
)]
struct Cli {
    /// The pglookout config file; its json_state_file_path names the state file.
    #[arg(value_name = "CONFIG")]
    config: PathBuf,
}

fn current_master(config: &std::path::Path) -> Result<String, String> {
    let state_path = pglookout::config::state_file_path_of(config).map_err(|e| e.to_string())?;
    let shown = state_path.display();
    // A file dated in the future by more than the same margin proves nothing about now (the
    // clock was set back, or the time was set by hand): it is not taken as fresh.
    match pglookout::ctl::state_file_age(&state_path).map_err(|e| format!("state file {shown}: {e}"))? {
        FileAge::Fresh(_) => {}
        FileAge::Future(ahead) => {
            return Err(format!(
                "state file {shown} is dated {} s in the future (more than {} s); was the clock set back? is pglookout running?",
                ahead.as_secs(),
                STATE_MAX_AGE.as_secs()
            ))
        }
        FileAge::Stale(age) => {
            return Err(format!(
                "state file {shown} is stale: last written {} s ago (more than {} s); is pglookout running?",
                age.as_secs(),
                STATE_MAX_AGE.as_secs()
            ))
        }
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
    // --help and --version: printed, exit 0; a usage error: exit 2 (clap's, as argparse's)
    let config = Cli::parse().config;
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
