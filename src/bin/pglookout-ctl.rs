//! `pglookout-ctl`: look at a running cluster the way one daemon sees it (`status`), or ask a
//! daemon for an immediate poll round (`check`). Exit 0 when it could read a view (or the check
//! was accepted); 1 with a one-line reason otherwise; 2 for a usage error.

use clap::{Args, Parser, Subcommand};
use pglookout::ctl::{self, Source};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "pglookout-ctl", version, about = "Inspect and poke pglookout daemons")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the cluster as one daemon sees it.
    Status {
        #[command(flatten)]
        from: From,
        /// Print the state document as JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Ask a daemon for an immediate poll round (POST /check).
    Check {
        #[command(flatten)]
        from: From,
    },
}

#[derive(Args)]
#[group(required = true, multiple = false)]
struct From {
    /// A daemon's HTTP address, e.g. http://127.0.0.1:15000
    #[arg(long)]
    url: Option<String>,
    /// A state file (json_state_file_path).
    #[arg(long)]
    state_file: Option<PathBuf>,
    /// A pglookout config file: its state file (status) or its HTTP port (check).
    #[arg(long)]
    config: Option<PathBuf>,
}

async fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::Status { from, json } => {
            let source = match (&from.url, &from.state_file, &from.config) {
                (Some(u), _, _) => Source::Url(u),
                (_, Some(p), _) => Source::StateFile(p),
                (_, _, Some(c)) => Source::Config(c),
                _ => return Err("give --url, --state-file or --config".into()),
            };
            let view = ctl::read_view(source).await?;
            if !view.is_object() || view.get("db_nodes").is_none() {
                return Err("the answer is not a pglookout state document".into());
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&view).map_err(|e| e.to_string())?);
            } else {
                print!("{}", ctl::render(&view, chrono::Utc::now()));
            }
            Ok(())
        }
        Command::Check { from } => {
            let url = match (&from.url, &from.config) {
                (Some(u), _) => u.clone(),
                (_, Some(c)) => ctl::url_from_config(c)?,
                _ => return Err("check needs --url or --config (a state file has no address)".into()),
            };
            ctl::request_check(&url).await?;
            println!("poll round requested at {url}");
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("pglookout-ctl: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pglookout-ctl: {e}");
            ExitCode::from(1)
        }
    }
}
