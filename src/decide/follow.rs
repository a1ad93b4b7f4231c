//! The pure part of autofollow: which conninfo a standby should follow, and the new text of
//! the file that holds `primary_conninfo` (`recovery.conf` before PostgreSQL 12,
//! `postgresql.auto.conf` from 12 on). Reading and writing the file, `standby.signal` and the
//! restart belong to `act::follow`.

use crate::conninfo::ConnInfo;
use std::collections::BTreeMap;

/// The conninfo to follow `master_conn` (the master's `remote_conns` entry): the template with
/// the master's `host` and, if it has one, its `port`. Everything else (user, password,
/// sslmode, ...) comes from the template, as upstream.
pub fn new_primary_conninfo(template: &ConnInfo, master_conn: &ConnInfo) -> ConnInfo {
    let mut out = template.clone();
    if let Some(host) = master_conn.get("host") {
        out.set("host", host);
    }
    if let Some(port) = master_conn.get("port") {
        out.set("port", port);
    }
    out
}

/// The new file text pointing at `new_conninfo`, or `None` when the file already holds an
/// equal `primary_conninfo` (same keys and values, in any order).
///
/// Format, as upstream: first line `# pglookout updated primary_conninfo for instance <name>
/// at <stamp>`, then every old line except the `primary_conninfo` ones, then the new
/// `primary_conninfo = '...'`, then `recovery_target_timeline = 'latest'` if no line set it.
/// Before PostgreSQL 12 we also append `standby_mode = 'on'` when the file has no
/// `standby_mode` line, so the restart cannot bring the node up as a primary (from 12 on,
/// `act::follow` makes sure `standby.signal` exists instead).
pub fn rewrite_recovery_conf(
    old: &str,
    new_conninfo: &ConnInfo,
    master_name: &str,
    stamp: &str,
    pg_major: u32,
) -> Option<String> {
    let mut kept: Vec<&str> = Vec::new();
    let mut old_conninfo: Option<ConnInfo> = None;
    let mut has_timeline = false;
    let mut has_standby_mode = false;
    for line in old.lines() {
        if line.starts_with("recovery_target_timeline") {
            has_timeline = true;
        }
        if line.starts_with("standby_mode") {
            has_standby_mode = true;
        }
        if line.starts_with("primary_conninfo") {
            // The last one wins, as in PostgreSQL. One we cannot read counts as different.
            old_conninfo = config_line_value(line).and_then(|v| ConnInfo::parse(&v).ok());
            continue;
        }
        kept.push(line);
    }
    if old_conninfo
        .as_ref()
        .is_some_and(|o| same_keys_and_values(o, new_conninfo))
    {
        return None;
    }

    let mut lines: Vec<String> = Vec::with_capacity(kept.len() + 4);
    lines.push(format!(
        "# pglookout updated primary_conninfo for instance {master_name} at {stamp}"
    ));
    lines.extend(kept.iter().map(|l| l.to_string()));
    lines.push(format!(
        "primary_conninfo = {}",
        quote_config_value(&new_conninfo.render())
    ));
    if !has_timeline {
        lines.push("recovery_target_timeline = 'latest'".to_string());
    }
    if pg_major < 12 && !has_standby_mode {
        lines.push("standby_mode = 'on'".to_string());
    }
    let mut text = lines.join("\n");
    text.push('\n');
    Some(text)
}

/// Upstream compared dicts: order does not matter.
fn same_keys_and_values(a: &ConnInfo, b: &ConnInfo) -> bool {
    let a: BTreeMap<&str, &str> = a.iter().collect();
    let b: BTreeMap<&str, &str> = b.iter().collect();
    a == b
}

/// A string for a PostgreSQL config file: single-quoted, with `'` doubled and `\` doubled (the
/// config-file parser reads backslash escapes, and `ConnInfo::render` may produce `\'` or
/// `\\`; pg_basebackup -R escapes the same way). Without backslashes this is exactly the
/// SQL literal upstream wrote.
fn quote_config_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\'' => out.push_str("''"),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// The value of a `name = 'value'` config line, unquoted (`''` and backslash escapes undone);
/// `None` if it is not of that shape.
fn config_line_value(line: &str) -> Option<String> {
    let (_, rest) = line.split_once('=')?;
    let rest = rest.trim();
    let inner = rest.strip_prefix('\'')?;
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                // A doubled quote is a quote; a single one ends the value.
                let mut peek = chars.clone();
                if peek.next() == Some('\'') {
                    chars = peek;
                    out.push('\'');
                } else {
                    return Some(out);
                }
            }
            '\\' => match chars.next()? {
                'b' => out.push('\u{8}'),
                'f' => out.push('\u{c}'),
                'n' => out.push('\n'),
                'r' => out.push('\r'),
                't' => out.push('\t'),
                other => out.push(other),
            },
            c => out.push(c),
        }
    }
    // No closing quote.
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ci(s: &str) -> ConnInfo {
        ConnInfo::parse(s).expect("conninfo")
    }

    const STAMP: &str = "2024-04-10T12:00:05.123456Z";

    /// Upstream test 21 (`test_two_standby_failover_and_autofollow`), the file part: PG 11
    /// recovery.conf, the master's remote_conns entry has host and port.
    #[test]
    fn test_two_standby_failover_and_autofollow_recovery_conf() {
        let primary_conninfo = "user=replication password=vjsh8l7sv4a902y1tsdz host=old_master port=5432 sslmode=prefer sslcompression=1 krbsrvname=postgres";
        let old = format!("standby_mode = 'on'\nprimary_conninfo = '{primary_conninfo}'\n");
        let template = ci(primary_conninfo);
        let master = ConnInfo::from_json(&serde_json::json!({"host": "otherhost.example.com", "port": 11111}))
            .expect("remote_conns entry");
        let new = new_primary_conninfo(&template, &master);
        let text = rewrite_recovery_conf(&old, &new, "other", STAMP, 11).expect("rewritten");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        assert_eq!(
            lines[0],
            format!("# pglookout updated primary_conninfo for instance other at {STAMP}")
        );
        assert_eq!(lines[1], "standby_mode = 'on'");
        assert!(lines[2].starts_with("primary_conninfo = "));
        assert_eq!(lines[3], "recovery_target_timeline = 'latest'");
        assert!(text.ends_with('\n'));

        let written = ci(&config_line_value(lines[2]).expect("quoted value"));
        let mut expected = template.clone();
        expected.set("host", "otherhost.example.com");
        expected.set("port", "11111");
        assert!(same_keys_and_values(&written, &expected));
        assert_eq!(written.get("port"), Some("11111"));
    }

    /// Upstream test 29 (`test_apply_stale_config_restarts`), the file part: PG 15
    /// postgresql.auto.conf; the same conninfo leaves the file alone, a changed template
    /// password rewrites it.
    #[test]
    fn test_apply_stale_config_restarts_recovery_conf() {
        let old = "primary_conninfo = 'user=replicator password=fake_pass sslmode=require host=primary'\n";
        let master = ci("host=primary dbname=postgres user=pglookout password=fake_pass");
        let template = ci("user=replicator password=fake_pass sslmode=require");
        let same = new_primary_conninfo(&template, &master);
        assert_eq!(rewrite_recovery_conf(old, &same, "primary", STAMP, 15), None);

        let template = ci("user=replication password=foo sslmode=require");
        let changed = new_primary_conninfo(&template, &master);
        let text = rewrite_recovery_conf(old, &changed, "primary", STAMP, 15).expect("rewritten");
        assert!(
            text.contains("primary_conninfo = 'user=replication password=foo sslmode=require"),
            "{text}"
        );
        assert!(text.starts_with("# pglookout updated primary_conninfo for instance primary at "));
        assert!(text.contains("recovery_target_timeline = 'latest'\n"));
        // From 12 on there is no standby_mode: standby.signal does that job.
        assert!(!text.contains("standby_mode"));
        // Running it again on its own output changes nothing.
        assert_eq!(rewrite_recovery_conf(&text, &changed, "primary", STAMP, 15), None);
    }

    #[test]
    fn host_and_port_come_from_the_master_the_rest_from_the_template() {
        let template = ci("user=rep password=x host=tmpl port=1 sslmode=verify-full");
        let only_host = new_primary_conninfo(&template, &ci("host=pg2 dbname=postgres user=other"));
        assert_eq!(
            only_host.render(),
            "user=rep password=x host=pg2 port=1 sslmode=verify-full"
        );
        let both = new_primary_conninfo(&template, &ci("host=pg3 port=6432"));
        assert_eq!(both.get("port"), Some("6432"));
        assert_eq!(both.get("user"), Some("rep"));
    }

    #[test]
    fn key_order_does_not_force_a_rewrite() {
        let old = "primary_conninfo = 'host=pg1 user=rep sslmode=require'\nrecovery_target_timeline = 'latest'\n";
        let new = ci("user=rep sslmode=require host=pg1");
        assert_eq!(rewrite_recovery_conf(old, &new, "pg1", STAMP, 15), None);
    }

    #[test]
    fn quotes_and_backslashes_round_trip_through_the_config_line() {
        let mut new = ci("user=rep host=pg1");
        new.set("password", "it's a \\ secret");
        let text = rewrite_recovery_conf("", &new, "pg1", STAMP, 15).expect("rewritten");
        let line = text.lines().find(|l| l.starts_with("primary_conninfo")).expect("line");
        assert!(line.contains("''"), "{line}");
        let back = ci(&config_line_value(line).expect("value"));
        assert_eq!(back.get("password"), Some("it's a \\ secret"));
        assert_eq!(rewrite_recovery_conf(&text, &new, "pg1", STAMP, 15), None);
    }

    #[test]
    fn other_lines_are_kept_and_an_existing_timeline_is_not_repeated() {
        let old = "# Do not edit this file manually!\nrecovery_target_timeline = 'current'\nprimary_slot_name = 's1'\nprimary_conninfo = 'host=old'\n";
        let text = rewrite_recovery_conf(old, &ci("host=new"), "pg2", STAMP, 16).expect("rewritten");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            &lines[1..],
            [
                "# Do not edit this file manually!",
                "recovery_target_timeline = 'current'",
                "primary_slot_name = 's1'",
                "primary_conninfo = 'host=new'",
            ]
        );
    }

    #[test]
    fn before_12_a_missing_standby_mode_is_added() {
        let text = rewrite_recovery_conf("primary_conninfo = 'host=old'\n", &ci("host=new"), "pg2", STAMP, 11)
            .expect("rewritten");
        assert!(
            text.ends_with("recovery_target_timeline = 'latest'\nstandby_mode = 'on'\n"),
            "{text}"
        );
    }

    #[test]
    fn config_line_values() {
        assert_eq!(config_line_value("primary_conninfo = 'a=''b'''"), Some("a='b'".into()));
        assert_eq!(config_line_value("primary_conninfo='x\\\\y'"), Some("x\\y".into()));
        assert_eq!(config_line_value("primary_conninfo = 'open"), None);
        assert_eq!(config_line_value("primary_conninfo = bare"), None);
    }
}
