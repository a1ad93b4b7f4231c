//! `pglookout CONFIG`: the daemon. Loads and checks the config before anything starts, then
//! runs until SIGTERM/SIGINT. `pglookout --check-config CONFIG` only checks it and prints the
//! effective settings. Exit codes: 0 after a clean stop, 1 on a bad config or a failure
//! to start (such as the HTTP port being in use).

use clap::Parser;
use pglookout::config::Config;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "pglookout",
    version,
    about = "PostgreSQL replication monitoring and failover daemon"
)]
struct Args {
    /// The JSON configuration file
    config: PathBuf,
    /// Check the config, print the effective timings, the voters and the derived
    /// fence_timeout, and exit 0 (valid) or 1 (refused) without starting anything
    #[arg(long)]
    check_config: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let (config, warnings) = match Config::load(&args.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("pglookout: {e}");
            return ExitCode::from(1);
        }
    };
    if args.check_config {
        println!("{}: valid", args.config.display());
        for line in pglookout::decide::voters::effective_settings(&config) {
            println!("{line}");
        }
        for w in warnings.iter().chain(&pglookout::config::trust_warnings(&config)) {
            println!("warning: {w}");
        }
        for p in pglookout::config::environment_problems(&config) {
            println!("warning: {p}");
        }
        return ExitCode::SUCCESS;
    }
    limit_malloc_arenas();
    let log = pglookout::logging::init();
    log.apply(&config);
    pglookout::supervise::install_panic_hook();
    for w in warnings.into_iter().chain(pglookout::config::trust_warnings(&config)) {
        tracing::warn!(target: "pglookout", "{w}");
    }
    for p in pglookout::config::environment_problems(&config) {
        tracing::error!(target: "pglookout", "{p}");
    }
    tracing::debug!(target: "pglookout", "config: {}", config.masked_summary());
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("pglookout: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(pglookout::daemon::run(args.config, config, log));
    runtime.shutdown_timeout(std::time::Duration::from_millis(300));
    if let Err(e) = &result {
        tracing::error!(target: "pglookout", "{e:#}");
    }
    // queued log lines reach stderr unless its reader is stuck: then exit anyway
    pglookout::logging::flush(std::time::Duration::from_secs(1));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pglookout: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// glibc gives each thread that allocates its own arena (up to eight per core), and each
/// arena keeps what was freed in it: with the runtime's threads and the blocking pool, an
/// observer of a thousand nodes held about 3 MB more than with one arena, and used no less CPU
/// with it (docs/performance.md). One arena, unless `MALLOC_ARENA_MAX` says otherwise. Called
/// before any thread exists.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets an allocator parameter; no other thread runs yet.
        unsafe {
            nix::libc::mallopt(nix::libc::M_ARENA_MAX, 1);
        }
    }
}
