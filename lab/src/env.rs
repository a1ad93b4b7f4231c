//! Where the PostgreSQL binaries live and as whom they run.
//!
//! `initdb`, `pg_ctl` and `postgres` refuse to run as root, so when we are root every server-side
//! binary runs with the `postgres` OS user's uid/gid (std drops supplementary groups when it
//! switches uid as root). Owns the command construction (clean environment, no inherited
//! `PG*` variables); must not start or track processes itself.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use nix::unistd::{Gid, Uid, User};

use crate::error::LabError;

/// Default PostgreSQL bin directory (Debian's postgresql-15).
pub const DEFAULT_BIN_DIR: &str = "/usr/lib/postgresql/15/bin";

/// Binaries the lab needs.
pub const REQUIRED_BINARIES: &[&str] = &["initdb", "postgres", "pg_basebackup"];

/// `PGLAB_BIN_DIR`, or the Debian 15 default.
pub fn bin_dir_from_env() -> PathBuf {
    match std::env::var_os("PGLAB_BIN_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => PathBuf::from(DEFAULT_BIN_DIR),
    }
}

/// Fails with [`LabError::BinariesNotFound`] unless every required binary is in `dir`.
pub fn check_binaries(dir: &Path) -> Result<(), LabError> {
    if REQUIRED_BINARIES.iter().all(|b| dir.join(b).is_file()) {
        Ok(())
    } else {
        Err(LabError::BinariesNotFound(dir.to_path_buf()))
    }
}

/// The resolved execution environment of one cluster.
#[derive(Debug, Clone)]
pub struct Env {
    pub bin_dir: PathBuf,
    /// `Some` when we are root: the `postgres` user's ids.
    pub run_as: Option<(Uid, Gid)>,
}

impl Env {
    /// Resolve from the process environment: bin dir from `PGLAB_BIN_DIR`, and the `postgres`
    /// user when running as root.
    pub fn detect() -> Result<Env, LabError> {
        let bin_dir = bin_dir_from_env();
        check_binaries(&bin_dir)?;
        let run_as = if Uid::effective().is_root() {
            match User::from_name("postgres") {
                Ok(Some(u)) => Some((u.uid, u.gid)),
                _ => return Err(LabError::NoPostgresUser),
            }
        } else {
            None
        };
        Ok(Env { bin_dir, run_as })
    }

    /// A `std` command for `program` from the bin dir, running as the server user, with a clean
    /// environment and stdin from /dev/null.
    pub fn std_command(&self, program: impl AsRef<OsStr>) -> std::process::Command {
        use std::os::unix::process::CommandExt;
        let mut cmd = std::process::Command::new(self.bin_dir.join(program.as_ref()));
        cmd.env_clear()
            .env("PATH", self.path_var())
            .env("LC_ALL", "C")
            .env("LANG", "C")
            .stdin(std::process::Stdio::null());
        if let Some((uid, gid)) = self.run_as {
            cmd.uid(uid.as_raw()).gid(gid.as_raw());
        }
        cmd
    }

    /// The same as [`Env::std_command`] for tokio; killed when dropped (so a timeout kills it).
    pub fn tokio_command(&self, program: impl AsRef<OsStr>) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::from(self.std_command(program));
        cmd.kill_on_drop(true);
        cmd
    }

    /// Give a path we created to the server user (no-op when not root).
    pub fn chown(&self, path: &Path) -> std::io::Result<()> {
        if let Some((uid, gid)) = self.run_as {
            nix::unistd::chown(path, Some(uid), Some(gid)).map_err(std::io::Error::from)?;
        }
        Ok(())
    }

    fn path_var(&self) -> String {
        format!("{}:/usr/local/bin:/usr/bin:/bin", self.bin_dir.display())
    }
}
