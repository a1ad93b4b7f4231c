//! A bad config is refused before anything starts: exit 1, and a message naming the file, the
//! key and what was expected.

use super::harness::bin;
use std::process::Command;

/// Runs the daemon on `config_text`; its exit code and stderr. A config that is wrongly
/// accepted starts a daemon: it is killed after [`STARTED`] and reported as exit code -1.
fn run_with(config_text: &str) -> (i32, String) {
    use std::io::Read;
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("bad.json");
    std::fs::write(&path, config_text).expect("write");
    let mut child = Command::new(bin())
        .arg(&path)
        .current_dir(dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run");
    let deadline = std::time::Instant::now() + STARTED;
    let code = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status.code().unwrap_or(-1);
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break -1;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut stderr);
    }
    (code, stderr)
}

/// A refused config exits long before this; a daemon still running now has accepted it.
const STARTED: std::time::Duration = std::time::Duration::from_secs(20);

#[test]
fn bad_configs_are_refused_with_the_key_named() {
    let cases: &[(&str, &str, &[&str])] = &[
        ("not json", "{ remote_conns: ", &["not valid JSON"]),
        ("not an object", "[1, 2]", &["expected a JSON object"]),
        (
            "own_db not a node",
            r#"{"remote_conns": {"a": "host=x"}, "own_db": "b"}"#,
            &["\"own_db\"", "not a key of remote_conns"],
        ),
        (
            "own_db wrong type",
            r#"{"own_db": 5}"#,
            &["\"own_db\"", "expected a string"],
        ),
        (
            "negative poll interval",
            r#"{"db_poll_interval": -1}"#,
            &["\"db_poll_interval\"", "positive"],
        ),
        (
            "zero check interval",
            r#"{"replication_state_check_interval": 0}"#,
            &["\"replication_state_check_interval\"", "positive"],
        ),
        (
            "string lag",
            r#"{"max_failover_replication_time_lag": "120"}"#,
            &["\"max_failover_replication_time_lag\"", "positive number"],
        ),
        (
            "a fence that cannot come before the promotion",
            r#"{"observers": {"o1": "http://o1:15000"}, "fence_command": "/bin/true", "fence_timeout": 8,
                "unreachable_master_failover_timeout": 10, "db_poll_interval": 1, "db_poll_timeout": 1,
                "replication_state_check_interval": 1}"#,
            &["\"fence_timeout\"", "= 14.00 s", "10 s"],
        ),
        (
            "a fenced node daemon that does not list another node's daemon",
            r#"{"remote_conns": {"pg1": "host=a", "pg2": "host=b"}, "own_db": "pg1", "fence_command": "/bin/true",
                "observers": {"o1": "http://o1:15000", "o2": "http://o2:15000", "o3": "http://o3:15000"}}"#,
            &[
                "\"observers\"",
                "pg2 missing",
                "\"pg2\": <pg2's daemon URL>",
                "allow_fragile_lease",
            ],
        ),
        (
            "a fenced node daemon with two voters",
            r#"{"remote_conns": {"pg1": "host=a", "pg2": "host=b"}, "own_db": "pg1", "fence_command": "/bin/true",
                "observers": {"pg2": "http://b:15000"}}"#,
            &["\"observers\"", "2 voters", "too few", "allow_fragile_lease"],
        ),
        (
            "fast trigger without observers",
            r#"{"remote_conns": {"a": "host=x"}, "own_db": "a", "unreachable_master_failover_timeout": 10}"#,
            &["\"unreachable_master_failover_timeout\"", "needs observers"],
        ),
        (
            "bad observer url",
            r#"{"observers": {"o1": "ftp://x"}}"#,
            &["\"observers.o1\"", "http"],
        ),
        (
            "observer not a string",
            r#"{"observers": {"o1": 15000}}"#,
            &["\"observers.o1\"", "URL string"],
        ),
        (
            "bad conninfo",
            r#"{"remote_conns": {"a": "host='unterminated"}}"#,
            &["\"remote_conns.a\""],
        ),
        (
            "remote_conns not an object",
            r#"{"remote_conns": ["host=x"]}"#,
            &["\"remote_conns\"", "expected an object"],
        ),
        (
            "port out of range",
            r#"{"http_port": 70000}"#,
            &["\"http_port\"", "1-65535"],
        ),
        (
            "bad log level",
            r#"{"log_level": "LOUD"}"#,
            &["\"log_level\"", "DEBUG, INFO"],
        ),
        (
            "bad facility",
            r#"{"syslog_facility": "local9"}"#,
            &["\"syslog_facility\""],
        ),
        (
            "autofollow without template",
            r#"{"autofollow": true}"#,
            &["\"primary_conninfo_template\"", "autofollow"],
        ),
        (
            "statsd without port",
            r#"{"statsd": {"host": "127.0.0.1"}}"#,
            &["\"statsd.port\""],
        ),
        (
            "never_promote not a list",
            r#"{"never_promote_these_nodes": "a"}"#,
            &["\"never_promote_these_nodes\"", "list"],
        ),
        (
            "bool as string",
            r#"{"autofollow": "yes"}"#,
            &["\"autofollow\"", "true or false"],
        ),
        (
            "absurd interval",
            r#"{"db_poll_interval": 1e300}"#,
            &["\"db_poll_interval\""],
        ),
        (
            "bad auth scope",
            r#"{"http_auth_scope": "reads"}"#,
            &["\"http_auth_scope\"", "\"mutating\" or \"all\""],
        ),
        (
            "an empty token with scope all (it turned authentication off)",
            r#"{"http_auth_token": "", "http_auth_scope": "all"}"#,
            &["\"http_auth_token\"", "empty token", "null"],
        ),
        (
            "a blank token",
            r#"{"http_auth_token": "  "}"#,
            &["\"http_auth_token\"", "empty token"],
        ),
        (
            "a host name among the reserved clients",
            r#"{"http_reserved_clients": ["10.0.0.0/24", "lb.example"]}"#,
            &["\"http_reserved_clients\"", "\"lb.example\"", "not resolved"],
        ),
        (
            "a reserved network with bits past its prefix",
            r#"{"http_reserved_clients": ["10.0.0.7/24"]}"#,
            &["\"http_reserved_clients\"", "10.0.0.0/24"],
        ),
        (
            "reserved clients not a list",
            r#"{"http_reserved_clients": "10.0.0.7"}"#,
            &["\"http_reserved_clients\"", "expected a list"],
        ),
        (
            "tls cert without key",
            r#"{"http_tls_cert": "/etc/hostname"}"#,
            &["\"http_tls_key\"", "required"],
        ),
        (
            "observer object without url",
            r#"{"observers": {"o1": {"token": "t"}}}"#,
            &["\"observers.o1.url\""],
        ),
    ];
    for (what, text, needles) in cases {
        let (code, stderr) = run_with(text);
        assert_eq!(code, 1, "{what}: exit code; stderr: {stderr}");
        assert!(stderr.contains("bad.json"), "{what}: the file is named: {stderr}");
        for n in *needles {
            assert!(stderr.contains(n), "{what}: expected {n:?} in: {stderr}");
        }
    }
}

#[test]
fn a_missing_config_file_is_refused() {
    let out = Command::new(bin())
        .arg("/nonexistent/pglookout.json")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("/nonexistent/pglookout.json") && stderr.contains("cannot read"),
        "{stderr}"
    );
}

#[test]
fn a_port_in_use_is_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("c.json");
    std::fs::write(
        &path,
        format!(
            r#"{{"http_address": "127.0.0.1", "http_port": {port}, "json_state_file_path": "{}"}}"#,
            dir.path().join("s.json").display()
        ),
    )
    .expect("write");
    let out = Command::new(bin()).arg(&path).output().expect("run");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("127.0.0.1:{port}")) && stderr.contains("cannot listen"),
        "{stderr}"
    );
}

#[test]
fn a_password_in_a_bad_observer_url_is_not_echoed() {
    for url in ["ftp://watcher:hunter2@10.0.0.9/", "http//watcher:hunter2@"] {
        let (code, stderr) = run_with(&format!(r#"{{"observers": {{"o1": "{url}"}}}}"#));
        assert_eq!(code, 1);
        assert!(stderr.contains("\"observers.o1\""), "{stderr}");
        assert!(!stderr.contains("hunter2"), "{stderr}");
    }
}

fn check_config(config: &serde_json::Value) -> (i32, String, String) {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("pglookout.json");
    std::fs::write(&path, config.to_string()).expect("write");
    let out = Command::new(bin())
        .arg("--check-config")
        .arg(&path)
        .output()
        .expect("run");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// `pglookout --check-config` prints the voters, the timings and the derived fence_timeout of
/// a valid config and exits 0; a refused one exits 1 with the usual message. Nothing starts
/// (no port is bound: the same config runs twice at once).
#[test]
fn check_config_prints_the_voters_and_the_derived_fence_timeout() {
    let mesh = serde_json::json!({
        "remote_conns": {"pg1": "host=a", "pg2": "host=b", "pg3": "host=c"},
        "own_db": "pg1",
        "observers": {"pg2": "http://b:15000", "pg3": "http://c:15000", "obs1": "http://o:15000"},
        "fence_command": "/bin/true",
        "db_poll_interval": 1, "db_poll_timeout": 1, "replication_state_check_interval": 1,
        "unreachable_master_failover_timeout": 12,
        "http_port": 1
    });
    let (code, out, err) = check_config(&mesh);
    assert_eq!(code, 0, "{out}{err}");
    for needle in [
        "valid",
        "voters (4): obs1, pg1 (our own poll), pg2, pg3",
        "at least 2 of 4 vouch",
        "at least 3 of 4 report the master gone",
        "failover timeout 12 s",
        "fence_timeout 6.00 s",
        "= 12.00 s <= failover timeout 12 s",
    ] {
        assert!(out.contains(needle), "{needle:?} in: {out}");
    }
    // a fragile layout, accepted on purpose: valid, with the warning
    let mut fragile = mesh.clone();
    fragile["observers"] =
        serde_json::json!({"obs1": "http://o:15000", "obs2": "http://p:15000", "obs3": "http://q:15000"});
    fragile["allow_fragile_lease"] = serde_json::json!(true);
    let (code, out, _) = check_config(&fragile);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("voters (3): obs1, obs2, obs3"), "{out}");
    assert!(
        out.contains("warning:") && out.contains("allow_fragile_lease: with fence_command"),
        "{out}"
    );
    // a short derived fence_timeout is warned about
    let mut short = mesh.clone();
    short["db_poll_timeout"] = serde_json::json!(2);
    short["unreachable_master_failover_timeout"] = serde_json::json!(10);
    let (code, out, _) = check_config(&short);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("a loss of contact longer than 2.00 s fences the primary"),
        "{out}"
    );
    // refused: exit 1, the key named
    fragile["allow_fragile_lease"] = serde_json::json!(false);
    let (code, out, err) = check_config(&fragile);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains("\"observers\"") && err.contains("pg2, pg3 missing"),
        "{err}"
    );
}

/// Runs `pglookout --check-config path` under a 1 GiB address-space limit (so that a read
/// without a bound fails fast instead of exhausting the machine) and waits at most 60 s for
/// it (a read that blocks for ever is killed, and the test fails).
fn check_config_bounded(path: &std::path::Path) -> (Option<i32>, String) {
    let child = Command::new("/bin/sh")
        .arg("-c")
        .arg("ulimit -v 1048576 && exec \"$0\" --check-config \"$1\"")
        .arg(bin())
        .arg(path)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run");
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).expect("pid"));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = match rx.recv_timeout(super::harness::DEADLINE) {
        Ok(out) => out.expect("wait"),
        Err(_) => {
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            panic!("pglookout --check-config {} did not finish", path.display());
        }
    };
    (out.status.code(), String::from_utf8_lossy(&out.stderr).to_string())
}

/// Issue 19, item 7: a config that is not a regular file is refused at once with exit 1 and a
/// message naming it: a symlink to /dev/zero (it exhausted memory), a FIFO (it blocked the
/// start for ever), a directory.
#[test]
fn a_config_that_is_not_a_regular_file_is_refused() {
    let dir = tempfile::tempdir().expect("dir");
    let zero = dir.path().join("zero.json");
    std::os::unix::fs::symlink("/dev/zero", &zero).expect("symlink");
    let fifo = dir.path().join("fifo.json");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("mkfifo");
    let sub = dir.path().join("a-directory");
    std::fs::create_dir(&sub).expect("mkdir");
    for (path, kind) in [(&zero, "a character device"), (&fifo, "a FIFO"), (&sub, "a directory")] {
        let (code, stderr) = check_config_bounded(path);
        assert_eq!(code, Some(1), "{}: {stderr}", path.display());
        assert!(
            stderr.contains(&path.display().to_string()) && stderr.contains(&format!("not a regular file but {kind}")),
            "{stderr}"
        );
    }
}

/// Issue 19, item 7: a config larger than 16 MiB is refused, even when it is valid JSON.
#[test]
fn an_oversized_config_is_refused() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("huge.json");
    let filler = "x".repeat(16 << 20);
    std::fs::write(&path, format!(r#"{{"padding": "{filler}"}}"#)).expect("write");
    let (code, stderr) = check_config_bounded(&path);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("huge.json") && stderr.contains("larger than 16777216 bytes (16 MiB)"),
        "{stderr}"
    );
    // the same file just under the limit loads (with a warning about the unknown key)
    let fits = "x".repeat((16 << 20) - 20);
    std::fs::write(&path, format!(r#"{{"padding": "{fits}"}}"#)).expect("write");
    let (code, stderr) = check_config_bounded(&path);
    assert_eq!(code, Some(0), "{stderr}");
}

/// The events of kind `kind` in a daemon's history.
fn history_of(d: &pglab::daemon::Daemon, kind: &str) -> Vec<pglookout::events::Event> {
    let path = pglookout::events::default_path(&d.state_path);
    pglookout::events::read(&path, 1000, None)
        .map(|h| h.events.into_iter().filter(|e| e.kind == kind).collect())
        .unwrap_or_default()
}

/// Issue 19, item 7: a config replaced by a FIFO is refused on SIGHUP at once (it blocked the
/// reload until its 10 s timeout, leaving the reading thread behind), the running config is
/// kept, and the failure is in the history with its reason; a config that reads again reloads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_of_a_fifo_is_refused_and_recorded() {
    let dir = tempfile::tempdir().expect("dir");
    let mut d =
        pglab::daemon::Daemon::spawn(&bin(), "d", dir.path(), serde_json::json!({"log_level": "INFO"})).expect("spawn");
    pglab::wait_for("the daemon started", super::harness::DEADLINE, || async {
        Ok(!history_of(&d, "daemon_start").is_empty())
    })
    .await
    .expect("daemon_start in the history");
    std::fs::remove_file(&d.config_path).expect("rm");
    nix::unistd::mkfifo(&d.config_path, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("mkfifo");
    d.signal(nix::sys::signal::Signal::SIGHUP).expect("SIGHUP");
    let failed = pglab::wait_for(
        "the refused reload in the history",
        super::harness::DEADLINE,
        || async { Ok(history_of(&d, "config_reload_failed").pop()) },
    )
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}", super::harness::tail(&d.log(), 20)));
    assert!(
        failed.reason.contains(&d.config_path.display().to_string())
            && failed.reason.contains("not a regular file but a FIFO"),
        "{failed:?}"
    );
    assert!(d.try_exit().is_none(), "the daemon keeps running");
    // a regular file again: the next SIGHUP reloads it
    std::fs::remove_file(&d.config_path).expect("rm");
    d.reload_with(serde_json::json!({"log_level": "INFO"})).expect("reload");
    pglab::wait_for("the reload in the history", super::harness::DEADLINE, || async {
        Ok(!history_of(&d, "config_reloaded").is_empty())
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}", super::harness::tail(&d.log(), 20)));
    d.stop(std::time::Duration::from_secs(10)).expect("stop");
}

/// Issue 19, item 3: connection strings are checked at start as libpq would: a keyword it
/// does not know (a mistyped `password`) and a value it cannot use are refused with exit 1,
/// naming the node and the keyword, never the value.
#[test]
fn connection_strings_libpq_would_refuse_are_refused_without_the_value() {
    let cases: &[(&str, serde_json::Value, &[&str])] = &[
        (
            "Password",
            serde_json::json!("host=a Password=hunter2"),
            &["\"Password\"", "\"password\""],
        ),
        (
            "PASSWORD",
            serde_json::json!("host=a PASSWORD=hunter2"),
            &["\"PASSWORD\""],
        ),
        (
            "URI PASSWORD",
            serde_json::json!("postgres://u@a/db?PASSWORD=hunter2"),
            &["\"PASSWORD\""],
        ),
        (
            "URI pasword",
            serde_json::json!("postgres://u@a/db?pasword=hunter2"),
            &["\"pasword\""],
        ),
        (
            "object passwd",
            serde_json::json!({"host": "a", "passwd": "hunter2"}),
            &["\"passwd\""],
        ),
        (
            "port",
            serde_json::json!("host=a port=99999 password=hunter2"),
            &["port", "99999"],
        ),
        (
            "sslmode",
            serde_json::json!("host=a sslmode=bogus password=hunter2"),
            &["sslmode", "bogus"],
        ),
        (
            "connect_timeout",
            serde_json::json!("host=a connect_timeout=abc password=hunter2"),
            &["connect_timeout"],
        ),
    ];
    for (what, conninfo, needles) in cases {
        let config = serde_json::json!({"remote_conns": {"pg1": "host=b", "pg2": conninfo}});
        let (code, stderr) = run_with(&config.to_string());
        assert_eq!(code, 1, "{what}: {stderr}");
        assert!(stderr.contains("\"remote_conns.pg2\""), "{what}: {stderr}");
        for n in *needles {
            assert!(stderr.contains(n), "{what}: expected {n:?} in {stderr}");
        }
        assert!(!stderr.contains("hunter2"), "{what}: the value is shown: {stderr}");
    }
    for key in ["primary_conninfo_template", "rejoin_source_conninfo_template"] {
        let config = serde_json::json!({key: "user=rep Password=hunter2"});
        let (code, stderr) = run_with(&config.to_string());
        assert_eq!(code, 1, "{key}: {stderr}");
        assert!(
            stderr.contains(&format!("\"{key}\"")) && stderr.contains("\"Password\"") && !stderr.contains("hunter2"),
            "{stderr}"
        );
    }
}
