//! `pglab`: command-line front end of the lab. One function per subcommand; each returns
//! `anyhow::Result` and `main` prints the error chain once and exits non-zero.

use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};
use pglab::{Cluster, ClusterSpec};

#[derive(Parser)]
#[command(name = "pglab", about = "Local PostgreSQL replication clusters on 127.0.0.1")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start a cluster, print its nodes, and keep it running until Ctrl-C (or SIGTERM).
    Cluster(ClusterArgs),
}

#[derive(Args)]
struct ClusterArgs {
    /// Number of streaming standbys.
    #[arg(long, default_value_t = 2)]
    standbys: usize,
    /// wal_level = logical instead of replica.
    #[arg(long)]
    logical: bool,
    /// Extra postgresql.conf line for every node (repeatable), e.g. --conf "log_connections=on".
    #[arg(long = "conf", value_name = "LINE")]
    extra_conf: Vec<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("pglab: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Cluster(args) => cmd_cluster(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pglab: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn cmd_cluster(args: ClusterArgs) -> Result<()> {
    let cluster = Cluster::start(ClusterSpec {
        standbys: args.standbys,
        wal_level_logical: args.logical,
        extra_conf: args.extra_conf,
    })
    .await?;
    println!("cluster dir: {}", cluster.dir().display());
    for node in cluster.nodes() {
        println!(
            "{}  port={}  data_dir={}  log={}\n    monitor: {}",
            node.name,
            node.port,
            node.data_dir.display(),
            node.log_file.display(),
            cluster.monitor_conninfo(&node.name)
        );
    }
    println!("running; Ctrl-C to stop and remove everything");
    wait_for_shutdown_signal().await?;
    println!("stopping");
    drop(cluster);
    Ok(())
}

async fn wait_for_shutdown_signal() -> Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r?,
        _ = term.recv() => {}
    }
    Ok(())
}
