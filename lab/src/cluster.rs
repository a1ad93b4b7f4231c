//! `Cluster`: one primary and N streaming standbys on 127.0.0.1, in one temp directory.
//!
//! Owns the temp directory, every server process it starts (each postmaster is a direct child, in
//! its own process group, so it is reaped here and never sees the terminal's Ctrl-C; its own
//! children call `setsid()`, so they are found by parent pid and by working directory), the role
//! passwords, and the process-wide cap on concurrently existing clusters. Dropping a `Cluster` (also while unwinding
//! from a panic) stops every server in immediate mode, SIGKILLs anything left, and removes the
//! directory; it never waits without a deadline.
//!
//! Layout of the directory (0755, so the `postgres` user can reach its subdirectories):
//! `<root>/pgN/{data,sock,postgres.log}`; `pgN/` is owned by the server user, `data` is 0700.
//! `pgN/{promote,stop,start,fence}.sh` appear when [`Cluster::promote_command`] and friends are asked
//! for: commands for a pglookout daemon that acts on the node.

use std::fmt::Write as _;
use std::fs::{self, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write as _};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use nix::sys::signal::Signal;
use tempfile::TempDir;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_postgres::{Client, NoTls, Row};

use crate::daemon::free_ports;
use crate::env::Env;
use crate::error::LabError;
use crate::process::{self, children_and_group, cwd_of, pid_alive, read_pid_file};
use crate::wait::{wait_for, POLL_INTERVAL};

/// Superuser created by initdb (trusted over the unix socket, scram over TCP).
pub const SUPERUSER: &str = "postgres";
/// The monitoring role: a plain `CREATE USER` with `pg_read_all_stats`, as docs/operations.md
/// recommends (it shows the startup process's wait event that the fallback after a failed
/// failover command reads).
pub const MONITOR_USER: &str = "pglookout";
/// The role standbys replicate with.
/// How long `start_node` retries a start refused because a killed server's children still
/// hold its shared memory.
const LEFTOVER_CHILDREN_DEADLINE: Duration = Duration::from_secs(10);
pub const REPLICATION_USER: &str = "replicator";
/// Table written by [`Cluster::write_load`].
pub const LOAD_TABLE: &str = "pglab_load";

const START_DEADLINE: Duration = Duration::from_secs(30);
const STREAM_DEADLINE: Duration = Duration::from_secs(30);
const FAST_STOP_DEADLINE: Duration = Duration::from_secs(30);
const IMMEDIATE_STOP_DEADLINE: Duration = Duration::from_secs(5);
const KILL_DEADLINE: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const SQL_TIMEOUT: Duration = Duration::from_secs(60);
const TOOL_TIMEOUT: Duration = Duration::from_secs(120);
const STATE_CHANGE_DEADLINE: Duration = Duration::from_secs(30);
const PERMIT_DEADLINE: Duration = Duration::from_secs(600);
const LOG_TAIL_LINES: usize = 30;

/// What to build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterSpec {
    pub standbys: usize,
    pub wal_level_logical: bool,
    /// Lines appended to every node's postgresql.conf (after pglab's own settings, so they win,
    /// except `port`, `unix_socket_directories` and `cluster_name` of standbys).
    pub extra_conf: Vec<String>,
    /// Data page checksums: `None` is initdb's default (off before 18, on from 18), `Some(on)`
    /// asks for them or against them (`--no-data-checksums` exists from 18 only, and is not
    /// needed before).
    pub data_checksums: Option<bool>,
}

impl Default for ClusterSpec {
    fn default() -> Self {
        ClusterSpec {
            standbys: 2,
            wal_level_logical: false,
            extra_conf: Vec::new(),
            data_checksums: None,
        }
    }
}

/// One PostgreSQL server of a cluster.
#[derive(Debug)]
pub struct Node {
    pub name: String,
    pub port: u16,
    pub data_dir: PathBuf,
    pub socket_dir: PathBuf,
    /// The server's stderr (logging_collector is off).
    pub log_file: PathBuf,
    /// The postmaster we spawned, until it is reaped.
    child: Mutex<Option<Child>>,
    /// `primary_conninfo` saved by `cut_wal_stream`, put back by `restore_wal_stream`.
    saved_conninfo: Mutex<Option<String>>,
}

impl Node {
    /// The live postmaster's pid: our child if it still runs, otherwise the pid in
    /// `postmaster.pid` if that process is alive and runs in this data directory (a server that
    /// someone else started, e.g. with pg_ctl).
    pub fn postmaster_pid(&self) -> Option<i32> {
        {
            let mut child = lock(&self.child);
            if let Some(c) = child.as_mut() {
                match c.try_wait() {
                    Ok(None) => return Some(c.id() as i32),
                    _ => *child = None,
                }
            }
        }
        let pid = read_pid_file(&self.data_dir)?;
        (pid_alive(pid) && cwd_of(pid).is_some_and(|d| d == self.data_dir)).then_some(pid)
    }

    /// Whether a postmaster runs on this node.
    pub fn is_running(&self) -> bool {
        self.postmaster_pid().is_some()
    }

    /// The last `lines` lines of the server log.
    pub fn log_tail(&self, lines: usize) -> String {
        self.log_since(0, lines)
    }

    fn log_since(&self, offset: u64, lines: usize) -> String {
        let mut text = String::new();
        if let Ok(mut f) = fs::File::open(&self.log_file) {
            let _ = f.seek(SeekFrom::Start(offset));
            let mut bytes = Vec::new();
            let _ = f.read_to_end(&mut bytes);
            text = String::from_utf8_lossy(&bytes).into_owned();
        }
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Reap our child if it has exited (a zombie would otherwise linger).
    fn reap(&self) {
        let mut child = lock(&self.child);
        if let Some(c) = child.as_mut() {
            if !matches!(c.try_wait(), Ok(None)) {
                *child = None;
            }
        }
    }
}

/// A running cluster; see the module docs.
pub struct Cluster {
    env: Env,
    root: PathBuf,
    nodes: Vec<Node>,
    superuser_password: String,
    monitor_password: String,
    replication_password: String,
    /// The node `write_load` prefers (the last one promoted through the lab).
    primary: Mutex<String>,
    dir: Option<TempDir>,
    _permit: Option<OwnedSemaphorePermit>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("root", &self.root)
            .field("nodes", &self.nodes)
            .finish_non_exhaustive()
    }
}

impl Cluster {
    /// Build and start a cluster: the primary as a copy of this server's initdb template
    /// (made once, see [`initdb_template`]), start it, create the roles, then copy it, cleanly
    /// stopped, for each standby, start them and wait (30 s each) until each streams.
    ///
    /// Waits (at most 10 minutes) while `PGLAB_MAX_CLUSTERS` (default 2) clusters exist.
    pub async fn start(spec: ClusterSpec) -> Result<Cluster> {
        let env = Env::detect()?;
        let permit = acquire_permit().await?;
        let dir = tempfile::Builder::new()
            .prefix("pglab-")
            .tempdir()
            .context("creating the cluster's temp dir")?;
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755))?;
        let root = dir.path().canonicalize()?;
        // From here on, an early return drops `cluster`, which stops what was started.
        let mut cluster = Cluster {
            env,
            root,
            nodes: Vec::new(),
            superuser_password: random_secret(),
            monitor_password: random_secret(),
            replication_password: random_secret(),
            primary: Mutex::new("pg1".to_string()),
            dir: Some(dir),
            _permit: Some(permit),
        };
        let ports = free_ports(1 + spec.standbys)?;
        cluster
            .init_primary(&spec, ports[0])
            .await
            .context("starting the primary pg1")?;
        if spec.standbys > 0 {
            // Standbys are copies of the cleanly stopped primary: any major, no pg_basebackup.
            cluster.stop("pg1").await.context("stopping pg1 to copy it")?;
            for (i, &port) in ports.iter().enumerate().skip(1) {
                let name = format!("pg{}", i + 1);
                cluster
                    .add_standby(&name, port)
                    .with_context(|| format!("making the standby {name}"))?;
            }
            for i in 0..cluster.nodes.len() {
                let name = cluster.nodes[i].name.clone();
                cluster
                    .first_start(i)
                    .await
                    .with_context(|| format!("starting {name}"))?;
            }
        }
        for i in 1..cluster.nodes.len() {
            let name = cluster.nodes[i].name.clone();
            cluster.wait_streaming(&name).await?;
            cluster.wait_primary_sees(&name).await?;
        }
        Ok(cluster)
    }

    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// The node called `name`. Panics on an unknown name (a test bug).
    pub fn node(&self, name: &str) -> &Node {
        match self.nodes.iter().find(|n| n.name == name) {
            Some(n) => n,
            None => {
                let names: Vec<&str> = self.nodes.iter().map(|n| n.name.as_str()).collect();
                panic!("pglab: no node named {name:?} (nodes: {names:?})")
            }
        }
    }

    /// The cluster's root directory (0755); callers may put their own files here.
    pub fn dir(&self) -> &Path {
        &self.root
    }

    pub fn data_dir(&self, name: &str) -> PathBuf {
        self.node(name).data_dir.clone()
    }

    pub fn port(&self, name: &str) -> u16 {
        self.node(name).port
    }

    pub fn bin_dir(&self) -> &Path {
        &self.env.bin_dir
    }

    /// The execution environment (bin dir, server uid/gid when root).
    pub fn env(&self) -> &Env {
        &self.env
    }

    /// A command for a binary of the bin dir, run as the server user (`postgres` when root),
    /// with a clean environment; e.g. `cluster.command("pg_ctl")`.
    pub fn command(&self, program: &str) -> std::process::Command {
        self.env.std_command(program)
    }

    pub fn monitor_password(&self) -> &str {
        &self.monitor_password
    }

    pub fn replication_password(&self) -> &str {
        &self.replication_password
    }

    pub fn superuser_password(&self) -> &str {
        &self.superuser_password
    }

    /// libpq conninfo of the monitoring role for node `name` over TCP.
    pub fn monitor_conninfo(&self, name: &str) -> String {
        self.monitor_conninfo_via(name, self.port(name))
    }

    /// Like [`Cluster::monitor_conninfo`] but to another port (a [`crate::Proxy`] in front of
    /// the node). `name` only has to exist.
    pub fn monitor_conninfo_via(&self, name: &str, port: u16) -> String {
        let _ = self.node(name);
        format!(
            "host=127.0.0.1 port={port} user={MONITOR_USER} password={} dbname=postgres",
            self.monitor_password
        )
    }

    /// libpq conninfo of the superuser for node `name` over TCP.
    pub fn superuser_conninfo(&self, name: &str) -> String {
        format!(
            "host=127.0.0.1 port={} user={SUPERUSER} password={} dbname=postgres",
            self.port(name),
            self.superuser_password
        )
    }

    /// libpq conninfo of the replication role streaming from node `upstream` over TCP, with
    /// `application_name` (which `pg_stat_replication` on the upstream shows). Usable as a
    /// standby's `primary_conninfo` or as pglookout's `primary_conninfo_template`.
    pub fn replication_conninfo(&self, upstream: &str, application_name: &str) -> String {
        format!(
            "host=127.0.0.1 port={} user={REPLICATION_USER} password={} application_name={application_name}",
            self.port(upstream),
            self.replication_password
        )
    }

    // ---- commands for pglookout ----
    //
    // pglookout runs `failover_command`, `pg_stop_command` and `pg_start_command` split on
    // whitespace, without a shell, as whatever user it runs as (root here). Each helper writes
    // an executable script `<root>/<node>/<action>.sh` that runs `pg_ctl` from the bin dir as the
    // server user (through `setpriv` when we are root) with a clean environment, and returns
    // its path: a command string without whitespace. They wait (`-w`, 30 s) so that the exit
    // status says whether it worked.
    //
    // A server started by `start_command` is not our child: `pg_ctl` detaches it (its own
    // session, parent gone). [`Node::postmaster_pid`] still finds it through `postmaster.pid`
    // and its working directory, so `stop`, `kill9`, `start_node` and `Drop` handle it like
    // one we spawned.

    /// A command that promotes node `name` (`pg_ctl promote -w`): exits 0 once the node is out
    /// of recovery, non-zero if it is not a standby or the promotion did not finish in 30 s.
    pub fn promote_command(&self, name: &str) -> Result<String> {
        let node = self.node(name);
        self.pg_ctl_script(
            node,
            "promote",
            &format!("promote -D {} -w -t 30", shell_quote(&node.data_dir.to_string_lossy())),
        )
    }

    /// A command that stops node `name` (`pg_ctl stop -m fast -w`); non-zero if it was not
    /// running or did not stop within 30 s.
    pub fn stop_command(&self, name: &str) -> Result<String> {
        let node = self.node(name);
        self.pg_ctl_script(
            node,
            "stop",
            &format!(
                "stop -D {} -m fast -w -t 30",
                shell_quote(&node.data_dir.to_string_lossy())
            ),
        )
    }

    /// A fence command for node `name` (pglookout's `fence_command`): SIGKILL of its postmaster
    /// and every child at once, which works on a frozen (SIGSTOPped) server too, where a
    /// `pg_ctl stop` signal would wait until it resumes. Exits 0 when nothing runs any more,
    /// also when the node was already down.
    pub fn fence_command(&self, name: &str) -> Result<String> {
        let node = self.node(name);
        let node_dir = node.data_dir.parent().context("data dir has no parent")?;
        let path = node_dir.join("fence.sh");
        let shown = path.to_string_lossy().into_owned();
        let pidfile = shell_quote(&node.data_dir.join("postmaster.pid").to_string_lossy());
        let script = format!(
            "#!/bin/sh
             # pglab: fence {name}: it must stop taking writes now.
             pid=$(head -n 1 {pidfile} 2>/dev/null)
             [ -n \"$pid\" ] || exit 0
             kill -9 $(pgrep -P \"$pid\") \"$pid\" 2>/dev/null
             exit 0
",
            name = node.name,
        );
        fs::write(&path, script).with_context(|| format!("writing {shown}"))?;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755))?;
        Ok(shown)
    }

    /// The shipped example fence (`packaging/fence.sh`) for node `name`: it leaves
    /// `standby.signal` (`recovery.conf` before 12) in the data directory before it kills the
    /// server, so that a supervisor's restart brings the node back read-only.
    pub fn sample_fence_command(&self, name: &str) -> Result<String> {
        let node = self.node(name);
        let node_dir = node.data_dir.parent().context("data dir has no parent")?;
        let sample = node_dir.join("fence-sample.sh");
        fs::write(&sample, include_str!("../../packaging/fence.sh"))
            .with_context(|| format!("writing {}", sample.display()))?;
        fs::set_permissions(&sample, fs::Permissions::from_mode(0o755))?;
        let path = node_dir.join("sticky-fence.sh");
        let script = format!(
            "#!/bin/sh\n# pglab: fence {name} with packaging/fence.sh\nexec {} {}\n",
            shell_quote(&sample.to_string_lossy()),
            shell_quote(&node.data_dir.to_string_lossy()),
            name = node.name,
        );
        fs::write(&path, script).with_context(|| format!("writing {}", path.display()))?;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755))?;
        Ok(path.to_string_lossy().into_owned())
    }

    /// A command that starts node `name` (`pg_ctl start -w`, server output appended to its
    /// `postgres.log`); exits 0 once it accepts connections.
    pub fn start_command(&self, name: &str) -> Result<String> {
        let node = self.node(name);
        self.pg_ctl_script(
            node,
            "start",
            &format!(
                "start -D {} -l {} -w -t 30",
                shell_quote(&node.data_dir.to_string_lossy()),
                shell_quote(&node.log_file.to_string_lossy())
            ),
        )
    }

    /// Writes `<root>/<node>/<action>.sh` running `pg_ctl <args>` as the server user.
    fn pg_ctl_script(&self, node: &Node, action: &str, args: &str) -> Result<String> {
        let pg_ctl = self.env.bin_dir.join("pg_ctl");
        if !pg_ctl.is_file() {
            bail!("{} not found: the {action} command needs pg_ctl", pg_ctl.display());
        }
        let node_dir = node.data_dir.parent().context("data dir has no parent")?;
        let path = node_dir.join(format!("{action}.sh"));
        let shown = path.to_string_lossy().into_owned();
        if shown.chars().any(char::is_whitespace) {
            bail!("{shown}: pglookout splits commands on whitespace; the path must have none");
        }
        let run_as = match self.env.run_as {
            Some((uid, gid)) => format!("setpriv --reuid={uid} --regid={gid} --clear-groups "),
            None => String::new(),
        };
        let script = format!(
            "#!/bin/sh\n\
             # pglab: {action} {name}, for pglookout's commands (no arguments, no shell needed).\n\
             exec env -i PATH={path_var} LC_ALL=C LANG=C {run_as}{pg_ctl} {args}\n",
            name = node.name,
            path_var = shell_quote(&format!("{}:/usr/bin:/bin", self.env.bin_dir.display())),
            pg_ctl = shell_quote(&pg_ctl.to_string_lossy()),
        );
        fs::write(&path, script).with_context(|| format!("writing {shown}"))?;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755))?;
        Ok(shown)
    }

    /// Run one statement as the superuser over the node's unix socket (extended protocol, so a
    /// single statement; see [`Cluster::sql_batch`]). Bounded by 60 s.
    pub async fn sql(&self, name: &str, query: &str) -> Result<Vec<Row>> {
        let node = self.node(name);
        let client = connect_superuser(node).await?;
        tokio::time::timeout(SQL_TIMEOUT, client.query(query, &[]))
            .await
            .map_err(|_| anyhow!("{name}: query did not finish within {SQL_TIMEOUT:?}: {query}"))?
            .with_context(|| format!("{name}: {query}"))
    }

    /// The nodes as `name:port`, space-separated (for the benchmarks' start line).
    pub fn ports(&self) -> String {
        let nodes: Vec<String> = self.nodes().iter().map(|n| format!("{}:{}", n.name, n.port)).collect();
        nodes.join(" ")
    }

    /// Lets the monitoring role set `synchronous_standby_names` and a standby's
    /// `primary_conninfo` (docs/operations.md): from PostgreSQL 15 the grants the docs name,
    /// superuser before. Run on `name`, the
    /// primary: the grants replicate to its standbys.
    pub async fn grant_sync_privileges(&self, name: &str) -> Result<()> {
        let statements = if self.env().major >= 15 {
            format!(
                "GRANT ALTER SYSTEM ON PARAMETER synchronous_standby_names, primary_conninfo TO {MONITOR_USER}; \
                 GRANT pg_read_all_settings TO {MONITOR_USER}; \
                 GRANT EXECUTE ON FUNCTION pg_catalog.pg_reload_conf() TO {MONITOR_USER}"
            )
        } else {
            format!("ALTER ROLE {MONITOR_USER} SUPERUSER")
        };
        self.sql_batch(name, &statements).await
    }

    /// Run several `;`-separated statements (simple protocol) as the superuser.
    pub async fn sql_batch(&self, name: &str, statements: &str) -> Result<()> {
        let node = self.node(name);
        let client = connect_superuser(node).await?;
        tokio::time::timeout(SQL_TIMEOUT, client.batch_execute(statements))
            .await
            .map_err(|_| anyhow!("{name}: batch did not finish within {SQL_TIMEOUT:?}"))?
            .with_context(|| format!("{name}: {statements}"))
    }

    /// Fast shutdown (SIGINT to the postmaster, as `pg_ctl stop -m fast`), waiting up to 30 s;
    /// past that the server is stopped in immediate mode / killed and an error is returned.
    /// A node that is not running is left alone.
    pub async fn stop(&self, name: &str) -> Result<()> {
        let node = self.node(name);
        let Some(pid) = node.postmaster_pid() else {
            return Ok(());
        };
        process::signal(pid, Signal::SIGINT);
        if self.wait_gone(&[pid], FAST_STOP_DEADLINE).await {
            return Ok(());
        }
        process::signal(pid, Signal::SIGQUIT);
        if !self.wait_gone(&[pid], IMMEDIATE_STOP_DEADLINE).await {
            let mut all = children_and_group(pid);
            all.push(pid);
            process::signal_group(pid, Signal::SIGKILL);
            for &p in &all {
                process::signal(p, Signal::SIGKILL);
            }
            if self.wait_gone(&all, KILL_DEADLINE).await {
                remove_stale_lock_files(node, pid);
            }
        }
        bail!(
            "{name}: fast shutdown did not finish within {FAST_STOP_DEADLINE:?}, the server was \
             stopped in immediate mode; log:\n{}",
            node.log_tail(LOG_TAIL_LINES)
        )
    }

    /// SIGKILL the postmaster and every process whose parent it is (PostgreSQL children run in
    /// their own sessions, so its process group alone would miss them), and wait (5 s) until they
    /// are gone, so the port refuses connections and the node can be started again.
    /// A node that is not running is left alone.
    pub fn kill9(&self, name: &str) -> Result<()> {
        let node = self.node(name);
        let Some(pid) = node.postmaster_pid() else {
            return Ok(());
        };
        let mut all = children_and_group(pid);
        all.push(pid);
        process::signal_group(pid, Signal::SIGKILL);
        for &p in &all {
            process::signal(p, Signal::SIGKILL);
        }
        if !self.wait_gone_blocking(&all, KILL_DEADLINE) {
            bail!("{name}: processes {all:?} still alive {KILL_DEADLINE:?} after SIGKILL");
        }
        remove_stale_lock_files(node, pid);
        Ok(())
    }

    /// Start a stopped or killed node again and wait (30 s) until it accepts connections.
    /// A node killed a moment ago (a fence's `kill -9`) may still have children exiting that
    /// hold its shared memory; PostgreSQL refuses to start until they are gone ("pre-existing
    /// shared memory block ... is still in use"), and a supervisor would try again: so does
    /// this, for up to 10 s.
    pub async fn start_node(&self, name: &str) -> Result<()> {
        let node = self.node(name);
        if let Some(pid) = node.postmaster_pid() {
            bail!("{name} is already running (postmaster pid {pid})");
        }
        let end = std::time::Instant::now() + LEFTOVER_CHILDREN_DEADLINE;
        loop {
            match self.boot(node).await {
                Err(e)
                    if format!("{e:#}").contains("pre-existing shared memory block")
                        && std::time::Instant::now() < end =>
                {
                    // the retry interval of a supervisor, within the deadline above
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                result => return result,
            }
        }
    }

    /// `pg_promote()` and wait until the node is out of recovery. `write_load` then prefers it.
    pub async fn promote(&self, name: &str) -> Result<()> {
        if self.env.major >= 12 {
            let rows = self.sql(name, "SELECT pg_promote(true, 30)").await?;
            let promoted: bool = rows.first().context("pg_promote returned no row")?.get(0);
            if !promoted {
                bail!(
                    "{name}: pg_promote() returned false; log:\n{}",
                    self.node(name).log_tail(LOG_TAIL_LINES)
                );
            }
        } else {
            // no pg_promote() before 12
            let mut cmd = self.env.tokio_command("pg_ctl");
            cmd.args(["promote", "-w", "-t", "30", "-D"])
                .arg(self.data_dir(name))
                .current_dir(&self.root);
            run_tool(cmd, "pg_ctl promote").await?;
        }
        wait_for(&format!("{name} to leave recovery"), STATE_CHANGE_DEADLINE, || async {
            Ok(!self.in_recovery(name).await?)
        })
        .await?;
        *lock(&self.primary) = name.to_string();
        Ok(())
    }

    /// `pg_wal_replay_pause()`, then wait until the pause has taken effect.
    pub async fn pause_replay(&self, name: &str) -> Result<()> {
        self.sql(name, "SELECT pg_wal_replay_pause()").await?;
        self.wait_pause_state(name, "paused").await
    }

    /// `pg_wal_replay_resume()`, then wait until replay is no longer paused.
    pub async fn resume_replay(&self, name: &str) -> Result<()> {
        self.sql(name, "SELECT pg_wal_replay_resume()").await?;
        self.wait_pause_state(name, "not paused").await
    }

    /// Stop the standby receiving WAL: save its `primary_conninfo`, set it to '' (ALTER SYSTEM +
    /// reload) and wait until its WAL receiver is gone. Replay of already received WAL goes on.
    /// Cutting an already cut node is a no-op.
    pub async fn cut_wal_stream(&self, name: &str) -> Result<()> {
        let node = self.node(name);
        let current = self.primary_conninfo(name).await?;
        if current.is_empty() {
            if lock(&node.saved_conninfo).is_some() {
                return Ok(());
            }
            bail!("{name} has no primary_conninfo (not a streaming standby?)");
        }
        *lock(&node.saved_conninfo) = Some(current);
        self.set_primary_conninfo(name, "").await?;
        wait_for(
            &format!("the WAL receiver of {name} to stop"),
            STATE_CHANGE_DEADLINE,
            || async {
                let rows = self.sql(name, "SELECT count(*) FROM pg_stat_wal_receiver").await?;
                Ok(rows[0].get::<_, i64>(0) == 0)
            },
        )
        .await
    }

    /// Undo [`Cluster::cut_wal_stream`]: put the saved `primary_conninfo` back (a reload from
    /// 13, a restart before). Does not wait for streaming to resume (the upstream may be gone);
    /// see [`Cluster::wait_streaming`].
    pub async fn restore_wal_stream(&self, name: &str) -> Result<()> {
        let node = self.node(name);
        let Some(saved) = lock(&node.saved_conninfo).clone() else {
            bail!("{name}: the WAL stream was not cut by pglab");
        };
        self.set_primary_conninfo(name, &saved).await?;
        *lock(&node.saved_conninfo) = None;
        Ok(())
    }

    /// Wait (30 s) until the standby's WAL receiver is streaming. The error names the node and
    /// carries the tail of its log.
    pub async fn wait_streaming(&self, name: &str) -> Result<()> {
        wait_for(&format!("{name} to stream WAL"), STREAM_DEADLINE, || async {
            let rows = self
                .sql(
                    name,
                    "SELECT count(*) FROM pg_stat_wal_receiver WHERE status = 'streaming'",
                )
                .await?;
            Ok(rows[0].get::<_, i64>(0) > 0)
        })
        .await
        .with_context(|| {
            format!(
                "{name} is not streaming; its log:\n{}",
                self.node(name).log_tail(LOG_TAIL_LINES)
            )
        })
    }

    /// Insert `rows` rows into the lab table on the current primary.
    pub async fn write_load(&self, rows: usize) -> Result<()> {
        let primary = self.current_primary().await?;
        self.sql(
            &primary,
            &format!("INSERT INTO {LOAD_TABLE} (payload) SELECT md5(g::text) FROM generate_series(1, {rows}) g"),
        )
        .await?;
        Ok(())
    }

    /// Rows in the lab table on node `name` (what `write_load` wrote and `name` has replayed).
    pub async fn load_count(&self, name: &str) -> Result<i64> {
        let rows = self.sql(name, &format!("SELECT count(*) FROM {LOAD_TABLE}")).await?;
        Ok(rows[0].get(0))
    }

    /// The running node that is not in recovery. With several (split brain), the one last
    /// promoted through [`Cluster::promote`] (initially pg1) if it is among them, else an error.
    pub async fn current_primary(&self) -> Result<String> {
        let mut primaries = Vec::new();
        for node in self.nodes.iter().filter(|n| n.is_running()) {
            if let Ok(false) = self.in_recovery(&node.name).await {
                primaries.push(node.name.clone());
            }
        }
        let preferred = lock(&self.primary).clone();
        match primaries.len() {
            0 => bail!("no running node is a primary"),
            1 => Ok(primaries.remove(0)),
            _ if primaries.contains(&preferred) => Ok(preferred),
            _ => bail!("several nodes are primaries: {primaries:?}"),
        }
    }

    /// `pg_is_in_recovery()` of node `name`.
    pub async fn in_recovery(&self, name: &str) -> Result<bool> {
        let rows = self.sql(name, "SELECT pg_is_in_recovery()").await?;
        Ok(rows[0].get(0))
    }

    // ---- construction ----

    fn new_node(&self, name: &str, port: u16) -> Result<Node> {
        let node_dir = self.root.join(name);
        let socket_dir = node_dir.join("sock");
        for d in [&node_dir, &socket_dir] {
            fs::create_dir(d).with_context(|| format!("creating {}", d.display()))?;
            fs::set_permissions(d, fs::Permissions::from_mode(0o755))?;
            self.env.chown(d)?;
        }
        Ok(Node {
            name: name.to_string(),
            port,
            data_dir: node_dir.join("data"),
            socket_dir,
            log_file: node_dir.join("postgres.log"),
            child: Mutex::new(None),
            saved_conninfo: Mutex::new(None),
        })
    }

    async fn init_primary(&mut self, spec: &ClusterSpec, port: u16) -> Result<()> {
        let node = self.new_node("pg1", port)?;
        let template = initdb_template(&self.env, spec.data_checksums).await?;
        copy_data_dir(&template, &node.data_dir)?;
        fs::write(
            node.data_dir.join("pg_hba.conf"),
            "# pglab\n\
             local all all trust\n\
             host all all 127.0.0.1/32 scram-sha-256\n\
             host replication all 127.0.0.1/32 scram-sha-256\n",
        )?;
        append_conf(&node.data_dir, &primary_conf(spec, &node, self.env.major))?;
        self.nodes.push(node);
        self.first_start(0).await?;
        self.sql_batch(
            "pg1",
            &format!(
                "ALTER ROLE {SUPERUSER} PASSWORD {};
                 CREATE USER {MONITOR_USER} PASSWORD {};
                 GRANT pg_read_all_stats TO {MONITOR_USER};
                 CREATE ROLE {REPLICATION_USER} REPLICATION LOGIN PASSWORD {};
                 CREATE TABLE {LOAD_TABLE} (id bigserial PRIMARY KEY, payload text,
                     written_at timestamptz NOT NULL DEFAULT now());",
                quote_literal(&self.superuser_password),
                quote_literal(&self.monitor_password),
                quote_literal(&self.replication_password),
            ),
        )
        .await
    }

    /// A standby `name` as a copy of pg1's data directory (pg1 cleanly stopped), with that
    /// major's standby settings; not started.
    fn add_standby(&mut self, name: &str, port: u16) -> Result<()> {
        let node = self.new_node(name, port)?;
        copy_data_dir(&self.nodes[0].data_dir, &node.data_dir)?;
        let _ = fs::remove_file(node.data_dir.join("postmaster.opts"));
        // The copied postgresql.conf carries the primary's settings; appended lines win.
        append_conf(&node.data_dir, &node_identity_conf(&node))?;
        let conninfo = self.replication_conninfo("pg1", name);
        self.nodes.push(node);
        self.write_standby_settings(name, &conninfo)
    }

    /// Makes node `name` a standby of `conninfo` at its next start, the way its major wants:
    /// `standby.signal` + `primary_conninfo` in `postgresql.auto.conf` from 12 (as
    /// `pg_basebackup -R`), `recovery.conf` before.
    fn write_standby_settings(&self, name: &str, conninfo: &str) -> Result<()> {
        let data = self.data_dir(name);
        if self.env.major >= 12 {
            let signal = data.join("standby.signal");
            fs::write(&signal, "")?;
            self.env.chown(&signal)?;
            let auto = data.join("postgresql.auto.conf");
            let mut f = OpenOptions::new()
                .append(true)
                .open(&auto)
                .with_context(|| format!("opening {}", auto.display()))?;
            writeln!(f, "primary_conninfo = {}", quote_literal(conninfo))?;
        } else {
            let recovery = data.join("recovery.conf");
            fs::write(
                &recovery,
                format!(
                    "standby_mode = 'on'\nprimary_conninfo = {}\nrecovery_target_timeline = 'latest'\n",
                    quote_literal(conninfo)
                ),
            )?;
            self.env.chown(&recovery)?;
        }
        Ok(())
    }

    /// The `primary_conninfo` node `name` streams with (`recovery.conf`'s before 12).
    pub async fn primary_conninfo(&self, name: &str) -> Result<String> {
        if self.env.major >= 12 {
            let rows = self.sql(name, "SHOW primary_conninfo").await?;
            return Ok(rows.first().context("SHOW returned no row")?.get(0));
        }
        let path = self.data_dir(name).join("recovery.conf");
        let text = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        let line = text
            .lines()
            .rfind(|l| l.trim_start().starts_with("primary_conninfo"))
            .with_context(|| format!("{} has no primary_conninfo", path.display()))?;
        let value = line.split_once('=').map(|(_, v)| v.trim()).unwrap_or("");
        Ok(value
            .strip_prefix('\'')
            .and_then(|v| v.strip_suffix('\''))
            .unwrap_or(value)
            .replace("''", "'"))
    }

    /// Points standby `name` at `conninfo` ('' cuts it): ALTER SYSTEM and a reload from 13, a
    /// restart before (12: ALTER SYSTEM; 10 and 11: `recovery.conf` rewritten).
    pub async fn set_primary_conninfo(&self, name: &str, conninfo: &str) -> Result<()> {
        if self.env.major >= 12 {
            self.sql(
                name,
                &format!("ALTER SYSTEM SET primary_conninfo = {}", quote_literal(conninfo)),
            )
            .await?;
        }
        if self.env.major >= 13 {
            self.sql(name, "SELECT pg_reload_conf()").await?;
            return Ok(());
        }
        if self.env.major < 12 {
            let path = self.data_dir(name).join("recovery.conf");
            let text = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
            let mut kept: Vec<String> = text
                .lines()
                .filter(|l| !l.trim_start().starts_with("primary_conninfo"))
                .map(str::to_string)
                .collect();
            kept.push(format!("primary_conninfo = {}", quote_literal(conninfo)));
            fs::write(&path, kept.join("\n") + "\n").with_context(|| format!("writing {}", path.display()))?;
        }
        self.stop(name).await?;
        self.start_node(name).await
    }

    /// Start a node for the first time; if another process took its port meanwhile, pick a
    /// new port and retry once.
    async fn first_start(&mut self, index: usize) -> Result<()> {
        match self.boot(&self.nodes[index]).await {
            Err(e) if format!("{e:#}").contains("Address already in use") => {
                let port = free_ports(1)?[0];
                let node = &mut self.nodes[index];
                node.port = port;
                append_conf(&node.data_dir, &format!("port = {port}\n"))?;
                self.boot(&self.nodes[index]).await
            }
            other => other,
        }
    }

    /// Spawn the postmaster as our child in its own process group, and wait until it accepts
    /// connections. Fails at once (with its log) if it exits.
    async fn boot(&self, node: &Node) -> Result<()> {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&node.log_file)
            .with_context(|| format!("opening {}", node.log_file.display()))?;
        // The server user appends to it too when `start_command` starts the node.
        self.env.chown(&node.log_file)?;
        let offset = log.metadata()?.len();
        let mut cmd = self.env.std_command("postgres");
        cmd.arg("-D")
            .arg(&node.data_dir)
            .current_dir(&self.root)
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .process_group(0);
        let child = cmd
            .spawn()
            .with_context(|| format!("{}: spawning postgres", node.name))?;
        *lock(&node.child) = Some(child);

        let end = Instant::now() + START_DEADLINE;
        loop {
            if node.postmaster_pid().is_none() {
                bail!(
                    "{}: postgres exited during startup; log:\n{}",
                    node.name,
                    node.log_since(offset, LOG_TAIL_LINES)
                );
            }
            if let Ok(client) = connect_superuser(node).await {
                if client.simple_query("SELECT 1").await.is_ok() {
                    return Ok(());
                }
            }
            if Instant::now() >= end {
                bail!(
                    "{} did not accept connections within {START_DEADLINE:?}; log:\n{}",
                    node.name,
                    node.log_since(offset, LOG_TAIL_LINES)
                );
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    async fn wait_primary_sees(&self, name: &str) -> Result<()> {
        wait_for(
            &format!("pg1 to list {name} as streaming in pg_stat_replication"),
            STREAM_DEADLINE,
            || async {
                let rows = self
                    .sql(
                        "pg1",
                        &format!(
                            "SELECT count(*) FROM pg_stat_replication \
                             WHERE application_name = {} AND state = 'streaming'",
                            quote_literal(name)
                        ),
                    )
                    .await?;
                Ok(rows[0].get::<_, i64>(0) > 0)
            },
        )
        .await
        .with_context(|| {
            format!(
                "{name} does not stream; its log:\n{}",
                self.node(name).log_tail(LOG_TAIL_LINES)
            )
        })
    }

    async fn wait_pause_state(&self, name: &str, state: &str) -> Result<()> {
        wait_for(
            &format!("{name} replay pause state to become {state:?}"),
            STATE_CHANGE_DEADLINE,
            || async {
                // pg_get_wal_replay_pause_state() is new in 14
                let query = if self.env.major >= 14 {
                    "SELECT pg_get_wal_replay_pause_state()"
                } else {
                    "SELECT CASE WHEN pg_is_wal_replay_paused() THEN 'paused' ELSE 'not paused' END"
                };
                let rows = self.sql(name, query).await?;
                Ok(rows[0].get::<_, String>(0) == state)
            },
        )
        .await
    }

    // ---- teardown ----

    fn reap_all(&self) {
        for node in &self.nodes {
            node.reap();
        }
    }

    async fn wait_gone(&self, pids: &[i32], deadline: Duration) -> bool {
        let end = Instant::now() + deadline;
        loop {
            self.reap_all();
            if pids.iter().all(|&p| !pid_alive(p)) {
                return true;
            }
            if Instant::now() >= end {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// For `kill9` and `Drop`, which are synchronous.
    fn wait_gone_blocking(&self, pids: &[i32], deadline: Duration) -> bool {
        let end = std::time::Instant::now() + deadline;
        loop {
            self.reap_all();
            if pids.iter().all(|&p| !pid_alive(p)) {
                return true;
            }
            if std::time::Instant::now() >= end {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Immediate shutdown of every postmaster at once, then SIGKILL whatever is left,
        // including orphans found by their working directory.
        let postmasters: Vec<i32> = self.nodes.iter().filter_map(Node::postmaster_pid).collect();
        for &pid in &postmasters {
            process::signal(pid, Signal::SIGQUIT);
        }
        if !self.wait_gone_blocking(&postmasters, IMMEDIATE_STOP_DEADLINE) {
            for &pid in &postmasters {
                process::signal_group(pid, Signal::SIGKILL);
            }
        }
        let leftovers = process::pids_with_cwd_under(&self.root);
        for &pid in &leftovers {
            process::signal(pid, Signal::SIGKILL);
        }
        let mut all = postmasters;
        all.extend(leftovers);
        self.wait_gone_blocking(&all, KILL_DEADLINE);
        if let Some(dir) = self.dir.take() {
            let _ = dir.close();
        }
    }
}

// ---- helpers ----

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The process-wide cap on live clusters: `PGLAB_MAX_CLUSTERS`, default 2.
pub fn max_clusters() -> usize {
    std::env::var("PGLAB_MAX_CLUSTERS")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(2)
}

async fn acquire_permit() -> Result<OwnedSemaphorePermit> {
    static LIMIT: OnceLock<Arc<Semaphore>> = OnceLock::new();
    let sem = LIMIT.get_or_init(|| Arc::new(Semaphore::new(max_clusters()))).clone();
    match tokio::time::timeout(PERMIT_DEADLINE, sem.acquire_owned()).await {
        Ok(permit) => Ok(permit?),
        Err(_) => Err(LabError::Timeout {
            what: format!("one of the PGLAB_MAX_CLUSTERS={} cluster slots", max_clusters()),
            after: PERMIT_DEADLINE,
            last_error: None,
        }
        .into()),
    }
}

async fn connect_superuser(node: &Node) -> Result<Client> {
    let mut cfg = tokio_postgres::Config::new();
    cfg.host_path(&node.socket_dir)
        .port(node.port)
        .user(SUPERUSER)
        .dbname("postgres")
        .application_name("pglab")
        .connect_timeout(CONNECT_TIMEOUT);
    let (client, connection) = tokio::time::timeout(CONNECT_TIMEOUT, cfg.connect(NoTls))
        .await
        .map_err(|_| anyhow!("{}: connecting timed out", node.name))?
        .with_context(|| format!("{}: connecting over the unix socket", node.name))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// initdb's options: the superuser, trust over the unix socket, scram over TCP, no fsync.
const INITDB_ARGS: &[&str] = &[
    "--username",
    SUPERUSER,
    "--auth-local=trust",
    "--auth-host=scram-sha-256",
    "--no-sync",
    "--locale=C",
    "--encoding=UTF8",
];

/// A data directory that initdb made with [`INITDB_ARGS`] (and the checksum option of
/// `data_checksums`) for `env`'s server, never started:
/// every cluster's pg1 is a copy of it (initdb took about 2 s of a 4 s cluster start on two
/// cores; the copy a tenth of that). Kept in the cache directory
/// ([`crate::pgdist::cache_dir`]) as `initdb-<version>-<key>/data`, the key a hash of the bin
/// dir and the options, so another server build or other options never share one; made in a
/// temporary directory beside it and renamed into place, as the server builds are, so a
/// half-made one is never used and concurrent makers do not collide. Every copy has the same
/// system identifier, as the nodes of one cluster always had.
async fn initdb_template(env: &Env, data_checksums: Option<bool>) -> Result<PathBuf> {
    // one maker at a time in this process (the tests start clusters from several threads)
    static MAKING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let cache = crate::pgdist::cache_dir();
    // ClusterSpec::data_checksums: on, or off where initdb's default is on (18)
    let checksums: &[&str] = match data_checksums {
        Some(true) => &["--data-checksums"],
        Some(false) if env.major >= 18 => &["--no-data-checksums"],
        _ => &[],
    };
    let args: Vec<&str> = INITDB_ARGS.iter().chain(checksums).copied().collect();
    let mut key = format!("{}\0{}", env.bin_dir.display(), env.version);
    for a in &args {
        key.push('\0');
        key.push_str(a);
    }
    let version: String = env
        .version
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '.' { c } else { '_' })
        .collect();
    let home = cache.join(format!("initdb-{version}-{:016x}", fnv1a(key.as_bytes())));
    let data = home.join("data");
    let ready = |d: &Path| d.join("PG_VERSION").is_file() && d.join("global/pg_control").is_file();
    if ready(&data) {
        return Ok(data);
    }
    let _making = MAKING.lock().await;
    if ready(&data) {
        return Ok(data);
    }
    fs::create_dir_all(&cache).with_context(|| format!("creating {}", cache.display()))?;
    // the server user must traverse it (when root, initdb runs as `postgres`)
    fs::set_permissions(&cache, fs::Permissions::from_mode(0o755))?;
    let tmp = tempfile::Builder::new()
        .prefix(".initdb-")
        .tempdir_in(&cache)
        .context("creating a temporary directory in the cache")?;
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755))?;
    env.chown(tmp.path())?;
    let mut cmd = env.tokio_command("initdb");
    cmd.arg("-D")
        .arg(tmp.path().join("data"))
        .args(&args)
        .current_dir(tmp.path());
    run_tool(cmd, "initdb").await?;
    match fs::rename(tmp.path(), &home) {
        Ok(()) => Ok(data),
        // another process made the same one meanwhile: theirs is as good
        Err(_) if ready(&data) => Ok(data),
        Err(e) => Err(anyhow::Error::new(e).context(format!("moving the initdb template to {}", home.display()))),
    }
}

/// FNV-1a, 64 bits: a hash that stays the same across builds and toolchains (the cache key).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// `cp -a source target`: a data directory copied with its owner (the server user when we are
/// root) and its 0700 modes.
fn copy_data_dir(source: &Path, target: &Path) -> Result<()> {
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(source)
        .arg(target)
        .stdin(Stdio::null())
        .status()
        .context("running cp -a")?;
    if !status.success() {
        bail!("cp -a {} {} exited with {status}", source.display(), target.display());
    }
    Ok(())
}

/// Run initdb / pg_basebackup to completion (2 min), failing with its output.
async fn run_tool(mut cmd: tokio::process::Command, what: &str) -> Result<()> {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let out = tokio::time::timeout(TOOL_TIMEOUT, cmd.output())
        .await
        .map_err(|_| anyhow!("{what} did not finish within {TOOL_TIMEOUT:?}"))?
        .with_context(|| format!("running {what}"))?;
    if !out.status.success() {
        bail!(
            "{what} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

fn append_conf(data_dir: &Path, text: &str) -> Result<()> {
    let path = data_dir.join("postgresql.conf");
    let mut f = OpenOptions::new()
        .append(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    f.write_all(text.as_bytes())?;
    Ok(())
}

fn node_identity_conf(node: &Node) -> String {
    format!(
        "\n# pglab: {name}\nport = {port}\nunix_socket_directories = {sock}\ncluster_name = {cname}\n",
        name = node.name,
        port = node.port,
        sock = quote_literal(&node.socket_dir.to_string_lossy()),
        cname = quote_literal(&node.name),
    )
}

fn primary_conf(spec: &ClusterSpec, node: &Node, major: u32) -> String {
    let mut conf = String::from(
        "\n# pglab\n\
         listen_addresses = '127.0.0.1'\n\
         max_wal_senders = 10\n\
         max_replication_slots = 10\n\
         hot_standby = on\n\
         fsync = off\n\
         # the default before 14 is md5, which the scram-sha-256 lines of pg_hba.conf refuse\n\
         password_encryption = 'scram-sha-256'\n\
         shared_buffers = 16MB\n\
         max_connections = 100\n\
         logging_collector = off\n\
         # reconnect quickly after a cut WAL stream or a restarted upstream\n\
         wal_retrieve_retry_interval = 500ms\n",
    );
    // wal_keep_size is new in 13 (wal_keep_segments: 16 MB each)
    if major >= 13 {
        conf.push_str("wal_keep_size = 256MB\n");
    } else {
        conf.push_str("wal_keep_segments = 16\n");
    }
    let _ = writeln!(
        conf,
        "wal_level = {}",
        if spec.wal_level_logical { "logical" } else { "replica" }
    );
    for line in &spec.extra_conf {
        let _ = writeln!(conf, "{line}");
    }
    conf.push_str(&node_identity_conf(node));
    conf
}

/// After a SIGKILL: removes the lock files (`postmaster.pid` and the unix socket's
/// `.s.PGSQL.<port>.lock`) that still name the dead postmaster `pid`.
///
/// A postmaster that `start_command` started is not our child, so we cannot reap it; until
/// whoever adopted it does (in some containers pid 1 is slow to), it is a zombie that keeps its
/// pid, and the next postmaster takes the stale lock files for a live server's and refuses to
/// start. The server is dead (a zombie holds no memory, sockets or files), so the files go.
fn remove_stale_lock_files(node: &Node, pid: i32) {
    let files = [
        node.data_dir.join("postmaster.pid"),
        node.socket_dir.join(format!(".s.PGSQL.{}.lock", node.port)),
    ];
    for file in files {
        let names_pid = fs::read_to_string(&file)
            .ok()
            .and_then(|t| t.lines().next()?.trim().parse::<i32>().ok())
            == Some(pid);
        if names_pid && !pid_alive(pid) {
            let _ = fs::remove_file(&file);
        }
    }
}

/// A single-quoted POSIX shell word.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// A single-quoted SQL / postgresql.conf literal.
fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// A random hex secret (std's randomly keyed hasher; good enough for a throwaway lab).
fn random_secret() -> String {
    use std::hash::{BuildHasher, Hasher};
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    (0..2u64)
        .map(|i| {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u128(nanos);
            h.write_u64(i);
            format!("{:016x}", h.finish())
        })
        .collect()
}
