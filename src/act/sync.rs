//! `ALTER SYSTEM` on our own node, then `pg_reload_conf()`, with a deadline
//! (`synchronous_mode` on or strict): our primary's `synchronous_standby_names`, and our
//! standby's `primary_conninfo` when `decide::receiver` cuts it from a primary the voters report
//! gone or gives it back. Only the statements: whether a value took is what the next poll of the
//! node shows, which is what every daemon reads.

use crate::conninfo::ConnInfo;
use std::time::Duration;
use tokio_postgres::error::SqlState;

/// What a role needs to run this, for the error message and docs/configuration.md.
pub const PRIVILEGES: &str = "superuser, or from PostgreSQL 15 on `GRANT ALTER SYSTEM ON PARAMETER synchronous_standby_names, primary_conninfo`, `GRANT pg_read_all_settings` and `GRANT EXECUTE ON FUNCTION pg_reload_conf()`";

/// The statement setting `param` to `value` (`None`: back to the server's own setting).
pub fn statement(param: &str, value: Option<&str>) -> String {
    match value {
        Some(v) => format!("ALTER SYSTEM SET {param} TO '{}'", v.replace('\'', "''")),
        None => format!("ALTER SYSTEM RESET {param}"),
    }
}

/// Runs the statement and the reload on our node within `deadline`; the error says what failed
/// and, for a missing privilege, what the role needs. `read_first`: the value `param` had
/// before is read and returned (`None` when the role may not read it). The value is never in
/// an error or a log line (`primary_conninfo` may hold a password).
pub async fn set(
    conninfo: &ConnInfo,
    param: &str,
    value: Option<&str>,
    read_first: bool,
    deadline: Duration,
) -> Result<Option<String>, String> {
    let run = async {
        let config = conninfo.pg_config().map_err(|e| e.to_string())?;
        let tls = conninfo.tls().map_err(|e| e.to_string())?;
        let (client, connection) = config.connect(tls).await.map_err(|e| describe(&e))?;
        let task = tokio::spawn(connection);
        // ALTER SYSTEM cannot run in a transaction block: one statement per call
        let result = async {
            let mut before = None;
            if read_first {
                let rows = client
                    .query_opt("SELECT setting FROM pg_catalog.pg_settings WHERE name = $1", &[&param])
                    .await
                    .map_err(|e| describe(&e))?;
                before = rows.and_then(|r| r.get::<_, Option<String>>(0));
            }
            client
                .simple_query(&statement(param, value))
                .await
                .map_err(|e| describe(&e))?;
            client
                .simple_query("SELECT pg_catalog.pg_reload_conf()")
                .await
                .map_err(|e| describe(&e))?;
            Ok::<Option<String>, String>(before)
        }
        .await;
        task.abort();
        result
    };
    match tokio::time::timeout(deadline, run).await {
        Ok(r) => r,
        Err(_) => Err(format!("no answer within {:.1} s", deadline.as_secs_f64())),
    }
}

/// The setting our standby is given before its promotion with `synchronous_mode` strict (see
/// `decide::sync_manager::before_promotion`): the promotion does not go on without it.
pub struct BeforePromotion {
    pub conninfo: ConnInfo,
    pub value: String,
}

impl BeforePromotion {
    /// Sets it; `Err`: the promotion must not go on.
    pub async fn run(&self, deadline: Duration) -> Result<(), String> {
        match set(
            &self.conninfo,
            "synchronous_standby_names",
            Some(&self.value),
            false,
            deadline,
        )
        .await
        {
            Ok(_) => {
                tracing::info!(target: "pglookout", "synchronous_standby_names set to {:?} before the promotion", self.value);
                Ok(())
            }
            Err(e) => {
                tracing::error!(target: "pglookout",
                    "cannot set synchronous_standby_names before the promotion ({e}): synchronous_mode strict does not promote a node that would acknowledge writes with no standby");
                Err(e)
            }
        }
    }
}

fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) if *db.code() == SqlState::INSUFFICIENT_PRIVILEGE => {
            format!("{} (the role needs {PRIVILEGES})", db.message())
        }
        Some(db) => db.message().to_string(),
        None => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_value_is_one_quoted_literal() {
        assert_eq!(
            statement("synchronous_standby_names", Some("ANY 1 (\"pg2\", \"o'neil\")")),
            "ALTER SYSTEM SET synchronous_standby_names TO 'ANY 1 (\"pg2\", \"o''neil\")'"
        );
        assert_eq!(
            statement("synchronous_standby_names", None),
            "ALTER SYSTEM RESET synchronous_standby_names"
        );
    }
}
