//! Running `pglookout` daemons as child processes beside a lab cluster: writes each one's config
//! (state file, alert dir and a free HTTP port on 127.0.0.1 filled in), captures its log, talks
//! to its HTTP API with a minimal HTTP/1.0 client, and stops it on drop. Shared by the tests,
//! `pglab up`, the demo and the benchmarks.

use anyhow::{anyhow, Context, Result};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A free TCP port on 127.0.0.1 (bound and released). Never the same port twice in one
/// process: Linux hands a just-released port out again, so two daemons started one after the
/// other could otherwise both be given the port the first has not bound yet.
pub fn free_port() -> Result<u16> {
    Ok(free_ports(1)?[0])
}

/// `n` distinct free ports on 127.0.0.1, none handed out before by this process (free when we
/// looked; a caller that binds later retries on a race with another process).
pub fn free_ports(n: usize) -> Result<Vec<u16>> {
    static GIVEN: std::sync::Mutex<std::collections::BTreeSet<u16>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    let mut held = Vec::new();
    let mut ports = Vec::new();
    while ports.len() < n {
        if held.len() > 1000 {
            return Err(anyhow!("no unused TCP port on 127.0.0.1 after 1000 tries"));
        }
        let l = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
        let port = l.local_addr()?.port();
        if given.insert(port) {
            ports.push(port);
        }
        // Keep every listener open until we are done, so the kernel offers a new port each time.
        held.push(l);
    }
    Ok(ports)
}

/// Where the `pglookout` binary is: `PGLOOKOUT_BIN`, else beside the running executable (or
/// its parent, for test binaries under `target/*/deps`).
pub fn pglookout_bin() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("PGLOOKOUT_BIN") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe()?;
    for dir in exe.ancestors().skip(1).take(2) {
        let candidate = dir.join("pglookout");
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    Err(anyhow!(
        "pglookout binary not found beside {} (build it with `cargo build`, or set PGLOOKOUT_BIN)",
        exe.display()
    ))
}

/// One running daemon.
pub struct Daemon {
    pub name: String,
    pub config_path: PathBuf,
    pub state_path: PathBuf,
    pub alert_dir: PathBuf,
    pub log_path: PathBuf,
    pub http_port: u16,
    config: Value,
    env: Vec<(String, String)>,
    child: Option<Child>,
}

impl Daemon {
    /// Writes `<dir>/<name>.json` from `config` (adding `json_state_file_path`, `alert_file_dir`,
    /// `http_address` and `http_port` unless given) and starts `bin` on it.
    pub fn spawn(bin: &Path, name: &str, dir: &Path, config: Value) -> Result<Daemon> {
        Self::spawn_with_env(bin, name, dir, config, &[])
    }

    /// As [`Daemon::spawn`], with extra environment variables (e.g. `NOTIFY_SOCKET`).
    pub fn spawn_with_env(
        bin: &Path,
        name: &str,
        dir: &Path,
        mut config: Value,
        env: &[(&str, &str)],
    ) -> Result<Daemon> {
        let obj = config
            .as_object_mut()
            .ok_or_else(|| anyhow!("config must be a JSON object"))?;
        let state_path = dir.join(format!("{name}-state.json"));
        let alert_dir = dir.join(format!("{name}-alerts"));
        std::fs::create_dir_all(&alert_dir)?;
        obj.entry("json_state_file_path").or_insert(json!(state_path));
        obj.entry("alert_file_dir").or_insert(json!(alert_dir));
        obj.entry("http_address").or_insert(json!("127.0.0.1"));
        if !obj.contains_key("http_port") {
            obj.insert("http_port".into(), json!(free_port()?));
        }
        let http_port = obj
            .get("http_port")
            .and_then(Value::as_u64)
            .and_then(|p| u16::try_from(p).ok())
            .unwrap_or(0);
        let state_path = obj
            .get("json_state_file_path")
            .and_then(Value::as_str)
            .map(PathBuf::from)
            .unwrap_or(state_path);
        let config_path = dir.join(format!("{name}.json"));
        std::fs::write(&config_path, serde_json::to_vec_pretty(&config)?)?;
        let log_path = dir.join(format!("{name}.log"));
        let mut d = Daemon {
            name: name.to_string(),
            config_path,
            state_path,
            alert_dir,
            log_path,
            http_port,
            config,
            env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            child: None,
        };
        d.start(bin)?;
        Ok(d)
    }

    fn start(&mut self, bin: &Path) -> Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)?;
        let child = Command::new(bin)
            .arg(&self.config_path)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        self.child = Some(child);
        Ok(())
    }

    /// Starts a stopped daemon again on the same config, state file, port and (appended) log.
    pub fn restart(&mut self, bin: &Path) -> Result<()> {
        if self.child.is_some() {
            return Err(anyhow!("{} is still running", self.name));
        }
        self.start(bin)
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn config(&self) -> &Value {
        &self.config
    }

    /// The state file as JSON, if it exists and parses.
    pub fn state(&self) -> Option<Value> {
        let text = std::fs::read_to_string(&self.state_path).ok()?;
        serde_json::from_str(&text).ok()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Replaces the config file (same state path and port) and sends SIGHUP.
    pub fn reload_with(&mut self, mut config: Value) -> Result<()> {
        if let (Some(new), Some(old)) = (config.as_object_mut(), self.config.as_object()) {
            for key in ["json_state_file_path", "alert_file_dir", "http_address", "http_port"] {
                if let (false, Some(v)) = (new.contains_key(key), old.get(key)) {
                    new.insert(key.into(), v.clone());
                }
            }
        }
        std::fs::write(&self.config_path, serde_json::to_vec_pretty(&config)?)?;
        self.config = config;
        self.signal(Signal::SIGHUP)
    }

    pub fn signal(&self, sig: Signal) -> Result<()> {
        let pid = self.pid().ok_or_else(|| anyhow!("{} is not running", self.name))?;
        kill(Pid::from_raw(i32::try_from(pid)?), sig)?;
        Ok(())
    }

    /// Whether the process has exited (and how).
    pub fn try_exit(&mut self) -> Option<ExitStatus> {
        self.child.as_mut().and_then(|c| c.try_wait().ok().flatten())
    }

    /// SIGTERM, then SIGKILL after `grace`; returns the exit status and how long it took.
    pub fn stop(&mut self, grace: Duration) -> Result<(ExitStatus, Duration)> {
        let mut child = self
            .child
            .take()
            .ok_or_else(|| anyhow!("{} is not running", self.name))?;
        let started = Instant::now();
        let _ = kill(Pid::from_raw(i32::try_from(child.id())?), Signal::SIGTERM);
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok((status, started.elapsed()));
            }
            if started.elapsed() > grace {
                let _ = child.kill();
                let status = child.wait()?;
                return Ok((status, started.elapsed()));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// A request to this daemon's API: (status, body).
    pub async fn http(&self, method: &str, path: &str) -> Result<(u16, String)> {
        http_request(self.http_port, method, path).await
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.child.is_some() {
            let _ = self.stop(Duration::from_secs(2));
        }
    }
}

/// A minimal HTTP/1.0 request to 127.0.0.1:`port` with a 5 s deadline: (status, body).
pub async fn http_request(port: u16, method: &str, path: &str) -> Result<(u16, String)> {
    let fut = async {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        let req =
            format!("{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await?;
        let text = String::from_utf8_lossy(&buf).to_string();
        let status = text
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| anyhow!("no HTTP status in {:?}", text.chars().take(80).collect::<String>()))?;
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        anyhow::Ok((status, body))
    };
    tokio::time::timeout(Duration::from_secs(5), fut)
        .await
        .map_err(|_| anyhow!("no HTTP answer from port {port} within 5 s"))?
}
