//! Where the PostgreSQL binaries live, which major they are, and as whom they run.
//!
//! The binaries: `PGLAB_BIN_DIR` if set; else the build of `PGLAB_PG_VERSION` (a major, fetched
//! once by [`crate::pgdist`]); else Debian's PostgreSQL 15.
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

/// Binaries the lab needs (standbys are copies of the primary: no `pg_basebackup`).
pub const REQUIRED_BINARIES: &[&str] = &["initdb", "postgres", "pg_ctl"];

/// `PGLAB_BIN_DIR`; else the build of `PGLAB_PG_VERSION`, fetched when not cached; else the
/// Debian 15 default.
pub fn bin_dir_from_env() -> anyhow::Result<PathBuf> {
    if let Some(d) = std::env::var_os("PGLAB_BIN_DIR").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(d));
    }
    match std::env::var("PGLAB_PG_VERSION") {
        Ok(v) if !v.trim().is_empty() => {
            let major = crate::pgdist::parse_major(&v).map_err(|e| e.context("PGLAB_PG_VERSION"))?;
            crate::pgdist::bin_dir(major)
        }
        _ => Ok(PathBuf::from(DEFAULT_BIN_DIR)),
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

/// `postgres -V` of the build in `dir`: its major and full version.
pub fn server_version(dir: &Path) -> anyhow::Result<(u32, String)> {
    use anyhow::Context;
    let out = std::process::Command::new(dir.join("postgres"))
        .arg("-V")
        .env_clear()
        .stdin(std::process::Stdio::null())
        .output()
        .with_context(|| format!("running {}/postgres -V", dir.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    parse_version(&text).with_context(|| format!("{}/postgres -V printed {:?}", dir.display(), text.trim()))
}

/// `postgres (PostgreSQL) 11.22` -> (11, "11.22"); `... 10.23` -> (10, "10.23").
fn parse_version(text: &str) -> Option<(u32, String)> {
    let version = text.split_whitespace().nth(2)?.to_string();
    let major = version.split(['.', 'b', 'r']).next()?.parse().ok()?;
    Some((major, version))
}

/// The resolved execution environment of one cluster.
#[derive(Debug, Clone)]
pub struct Env {
    pub bin_dir: PathBuf,
    /// The server's major version (10, 11, ... 18), from `postgres -V`.
    pub major: u32,
    /// The server's full version, e.g. `11.22`.
    pub version: String,
    /// `Some` when we are root: the `postgres` user's ids.
    pub run_as: Option<(Uid, Gid)>,
}

impl Env {
    /// Resolve from the process environment: the bin dir (see the module docs), its version,
    /// and the `postgres` user when running as root.
    pub fn detect() -> anyhow::Result<Env> {
        let bin_dir = bin_dir_from_env()?;
        check_binaries(&bin_dir)?;
        let (major, version) = server_version(&bin_dir)?;
        let run_as = if Uid::effective().is_root() {
            match User::from_name("postgres") {
                Ok(Some(u)) => Some((u.uid, u.gid)),
                _ => return Err(LabError::NoPostgresUser.into()),
            }
        } else {
            None
        };
        Ok(Env {
            bin_dir,
            major,
            version,
            run_as,
        })
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

#[cfg(test)]
mod tests {
    #[test]
    fn versions_parse() {
        assert_eq!(
            super::parse_version("postgres (PostgreSQL) 11.22\n"),
            Some((11, "11.22".into()))
        );
        assert_eq!(
            super::parse_version("postgres (PostgreSQL) 15.14 (Debian 15.14-0+deb12u1)"),
            Some((15, "15.14".into()))
        );
        assert_eq!(
            super::parse_version("postgres (PostgreSQL) 18beta1"),
            Some((18, "18beta1".into()))
        );
        assert_eq!(super::parse_version("garbage"), None);
    }
}
