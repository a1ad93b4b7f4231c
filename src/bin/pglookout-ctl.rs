//! `pglookout-ctl`: look at a running cluster the way one daemon sees it (`status`), what it saw
//! and did (`history`), ask a daemon for an immediate poll round (`check`), pause or resume
//! failovers in the whole cluster (`pause`, `resume`), move the primary on purpose
//! (`switchover`), promote a standby for a primary already gone (`failover`), or bring the old
//! primary beside a config back as a standby of the new one (`rejoin`), or rebuild the node
//! beside a config from the primary with its `reinit_command` (`reinit`). Exit 0 when it could read a view (or the check
//! was accepted); 1 with a one-line reason otherwise, and for a view from a state file written
//! more than 60 s ago (printed, marked STALE); 2 for a usage error.

use clap::{Args, Parser, Subcommand};
use pglookout::ctl::{self, Api, ViewSource};
use pglookout::text::printable;
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
    /// Print what one daemon saw and did, newest first (GET /history, or its event file).
    History {
        #[command(flatten)]
        from: From,
        /// At most this many events.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Only events at or after this ISO 8601 time, e.g. 2026-11-29T12:00:00Z.
        #[arg(long)]
        since: Option<String>,
        /// Print the events as JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Ask a daemon for an immediate poll round (POST /check).
    Check {
        #[command(flatten)]
        from: From,
    },
    /// Pause the cluster: every node daemon of ours stops failing over, fencing, following
    /// and rejoining (polling, the API and the history go on) until `resume`. Ask one node
    /// daemon (POST /pause); the others of the mesh take it from its /state.json.
    Pause {
        #[command(flatten)]
        from: From,
    },
    /// End a pause (POST /resume).
    Resume {
        #[command(flatten)]
        from: From,
    },
    /// For a primary that is already gone: promote NODE now instead of after the rest of the
    /// lag window (POST /failover?to=NODE at NODE's daemon). Never skips the failover timeout
    /// of fence_command, the lease, the synchronous or any candidate rule. Exit 0 once NODE
    /// answers as the primary.
    Failover {
        #[command(flatten)]
        from: From,
        /// The node to promote; --url or --config must name its daemon.
        #[arg(long)]
        to: String,
        /// Seconds to wait for the promotion.
        #[arg(long, default_value_t = 60.0)]
        timeout: f64,
    },
    /// Move the primary on purpose (POST /switchover at the primary's daemon): the target
    /// (--to, or the best standby) must be a connected standby within the lag limit; the
    /// primary is checkpointed and stopped cleanly, the target promoted once it has received
    /// the final position, and the old primary started as its standby. If the target does not
    /// take over within --timeout, the old primary is started again as the primary. Prints
    /// each step with its time; exit 0 only once the new primary is connected and the old one
    /// streams from it. With --config on a standby's or an observer's host, the primary's
    /// daemon is asked (its URL from the config's observers).
    Switchover {
        #[command(flatten)]
        from: From,
        /// The standby to promote (default: the best one).
        #[arg(long)]
        to: Option<String>,
        /// Seconds the target has to take over.
        #[arg(long, default_value_t = 30.0)]
        timeout: f64,
    },
    /// Make the old primary beside this config (its own_db) a standby of the new primary:
    /// stop, pg_rewind, standby settings, start. Never while it answers as a primary.
    Rejoin {
        /// The pglookout config of the daemon beside the old primary.
        #[arg(long)]
        config: PathBuf,
        /// The new primary (default: current_master in the daemon's state file).
        #[arg(long)]
        master: Option<String>,
    },
    /// Rebuilds the node beside a config from the primary with its `reinit_command`, into a
    /// side directory that replaces the data directory only once the copy is complete, and
    /// starts it as a standby (never on a node that answers as a primary).
    Reinit {
        /// The pglookout config of the daemon beside the node.
        #[arg(long)]
        config: PathBuf,
        /// The primary to copy and follow (default: current_master in the daemon's state file).
        #[arg(long)]
        master: Option<String>,
    },
}

#[derive(Args)]
#[group(required = true, multiple = false)]
struct Source {
    /// A daemon's HTTP address, e.g. http://127.0.0.1:15000
    #[arg(long)]
    url: Option<String>,
    /// A state file (json_state_file_path).
    #[arg(long)]
    state_file: Option<PathBuf>,
    /// An event history file (event_log_path), for `history`.
    #[arg(long)]
    events_file: Option<PathBuf>,
    /// A pglookout config file: its HTTP API (address, port, TLS, token) or, for `status`, its
    /// state file when the API does not answer.
    #[arg(long)]
    config: Option<PathBuf>,
}

#[derive(Args)]
struct From {
    #[command(flatten)]
    source: Source,
    /// Bearer token for a daemon with http_auth_token (default: from --config, or
    /// $PGLOOKOUT_TOKEN).
    #[arg(long, env = "PGLOOKOUT_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// CA file (PEM) to trust for a daemon's HTTPS certificate.
    #[arg(long)]
    ca_file: Option<PathBuf>,
}

impl From {
    /// The API to talk to, when one was named.
    fn api(&self) -> Result<Option<Api>, String> {
        let mut api = match (&self.source.url, &self.source.config) {
            (Some(u), _) => Api::new(u),
            (_, Some(c)) => Api::from_config(c)?,
            _ => return Ok(None),
        };
        if self.token.is_some() {
            api.token = self.token.clone();
        }
        api.ca_file = self.ca_file.clone();
        Ok(Some(api))
    }
}

/// The state file at `path` with its age.
fn state_file(
    path: &std::path::Path,
    api: Option<(String, String)>,
) -> Result<(serde_json::Value, ViewSource), String> {
    let view = ctl::read_file(path)?;
    let age = ctl::state_file_age(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok((
        view,
        ViewSource::StateFile {
            path: path.to_path_buf(),
            age,
            api,
        },
    ))
}

/// An event file named on the command line or by a config must exist (it, or a rotated one):
/// a mistyped path is an error, not an empty history.
fn events_from_file(
    p: &std::path::Path,
    limit: usize,
    since: Option<pglookout::state::Timestamp>,
) -> Result<Vec<pglookout::events::Event>, String> {
    let mut first_rotated = p.as_os_str().to_owned();
    first_rotated.push(".1");
    if let Err(e) = std::fs::metadata(p) {
        if std::fs::metadata(&first_rotated).is_err() {
            return Err(format!("{}: {e}", p.display()));
        }
    }
    let h = pglookout::events::read(p, limit, since).map_err(|e| format!("{}: {e}", p.display()))?;
    for w in &h.warnings {
        eprintln!("pglookout-ctl: {}", printable(w));
    }
    if h.truncated {
        eprintln!(
            "pglookout-ctl: {} events, the most that fit in {} bytes (as GET /history answers)",
            h.events.len(),
            pglookout::events::MAX_ANSWER_BYTES
        );
    }
    Ok(h.events)
}

async fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::Status { from, json } => {
            let (view, source) = match (&from.source.state_file, &from.source.config, from.api()?) {
                (Some(p), _, _) => state_file(p, None)?,
                // a config: the daemon's API, else (daemon down) its state file, saying so
                (_, Some(c), Some(api)) => match api.read_view().await {
                    Ok(v) => (v, ViewSource::Api { url: api.shown() }),
                    Err(api_err) => {
                        let p = pglookout::config::state_file_path_of(c).map_err(|e| e.to_string())?;
                        state_file(&p, Some((api.shown(), api_err.clone())))
                            .map_err(|e| format!("{api_err}; and {e}"))?
                    }
                },
                (_, _, Some(api)) => (api.read_view().await?, ViewSource::Api { url: api.shown() }),
                _ => return Err("status needs --url, --state-file or --config".into()),
            };
            if !view.is_object() || view.get("db_nodes").is_none() {
                return Err("the answer is not a pglookout state document".into());
            }
            if let Some(notice) = source.notice() {
                eprintln!("pglookout-ctl: {}", printable(&notice));
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&view).map_err(|e| e.to_string())?);
            } else {
                print!("{}", ctl::render_from(&view, chrono::Utc::now(), &source));
            }
            if let Some(e) = source.stale_error() {
                return Err(e);
            }
            Ok(())
        }
        Command::History {
            from,
            limit,
            since,
            json,
        } => {
            if !(1..=pglookout::events::MAX_LIMIT).contains(&limit) {
                return Err(format!("--limit: from 1 to {}", pglookout::events::MAX_LIMIT));
            }
            let since_t = match &since {
                Some(s) => Some(pglookout::state::parse_iso(s).ok_or(format!("--since: not an ISO 8601 time: {s:?}"))?),
                None => None,
            };
            let events = match (&from.source.events_file, &from.source.config, from.api()?) {
                (Some(p), _, _) => events_from_file(p, limit, since_t)?,
                (_, Some(c), Some(api)) => match api.read_history(limit, since.as_deref()).await {
                    Ok(v) => v,
                    Err(api_err) => {
                        let p = pglookout::config::event_log_path_of(c).map_err(|e| e.to_string())?;
                        let events = events_from_file(&p, limit, since_t).map_err(|e| format!("{api_err}; and {e}"))?;
                        eprintln!(
                            "pglookout-ctl: {}; showing the event file {}",
                            printable(&api_err),
                            printable(&p.display().to_string())
                        );
                        events
                    }
                },
                (_, _, Some(api)) => api.read_history(limit, since.as_deref()).await?,
                _ => return Err("history needs --url, --config or --events-file".into()),
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&events).map_err(|e| e.to_string())?);
            } else {
                print!("{}", ctl::render_history(&events));
            }
            Ok(())
        }
        Command::Rejoin { config, master } => {
            log_to_stderr();
            println!("{}", ctl::rejoin(&config, master).await?);
            Ok(())
        }
        Command::Reinit { config, master } => {
            log_to_stderr();
            println!("{}", ctl::reinit(&config, master).await?);
            Ok(())
        }
        Command::Failover { from, to, timeout } => {
            let api = from
                .api()?
                .ok_or("failover needs --url or --config (a state file has no address)")?;
            let wait = std::time::Duration::try_from_secs_f64(timeout)
                .map_err(|_| format!("--timeout {timeout}: not a number of seconds"))?;
            for line in api.manual_failover(&to, wait).await? {
                println!("{line}");
            }
            Ok(())
        }
        Command::Switchover { from, to, timeout } => {
            let api = from
                .api()?
                .ok_or("switchover needs --url or --config (a state file has no address)")?;
            if !(timeout > 0.0 && timeout <= 600.0) {
                return Err(format!("--timeout {timeout}: seconds, more than 0 and at most 600"));
            }
            let mut print = |line: &str| println!("{line}");
            // --config names this host's daemon; the switchover runs at the primary's
            let api = match &from.source.config {
                Some(path) => match api.primary_daemon(path).await? {
                    Some((master, primary)) => {
                        print(&format!(
                            "{} knows {} as the primary: asking its daemon at {}",
                            api.shown(),
                            pglookout::text::printable(&master),
                            primary.shown()
                        ));
                        primary
                    }
                    None => api,
                },
                None => api,
            };
            api.switchover(to.as_deref(), timeout, &mut print).await
        }
        Command::Pause { from } => pause(&from, true).await,
        Command::Resume { from } => pause(&from, false).await,
        Command::Check { from } => {
            let api = from
                .api()?
                .ok_or("check needs --url or --config (a state file has no address)")?;
            api.request_check().await?;
            println!("poll round requested at {}", printable(&api.shown()));
            Ok(())
        }
    }
}
/// `pause` or `resume`, at the daemon `from` names.
async fn pause(from: &From, pause: bool) -> Result<(), String> {
    let what = if pause { "pause" } else { "resume" };
    let api = from
        .api()?
        .ok_or(format!("{what} needs --url or --config (a state file has no address)"))?;
    api.request_pause(pause).await?;
    println!(
        "{} at {}: the other node daemons of the mesh follow within a poll",
        if pause { "cluster paused" } else { "cluster resumed" },
        printable(&api.shown())
    );
    Ok(())
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
            eprintln!("pglookout-ctl: {}", printable(&e));
            ExitCode::from(1)
        }
    }
}

/// The steps of `rejoin` and `reinit` logged to standard error, as the daemon logs them.
fn log_to_stderr() {
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_target(false)
        .try_init();
}
