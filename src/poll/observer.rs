//! Fetching another daemon's `/state.json` (an observer, or a DB node's daemon; ours or the
//! Python original). Owns the HTTP timeout, the clock-skew check and the shape check; an
//! answer that fails any of them is never returned as data.

use crate::state::{parse_node_map, NodeState, Timestamp};
use std::collections::BTreeMap;
use std::time::Duration;

/// A backstop for the HTTP client; each fetch has the poller's own deadline (`db_poll_timeout`).
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(60);
/// The largest answer we read (a thousand nodes take about 0.5 MB).
pub const MAX_ANSWER_BYTES: usize = 64 << 20;
/// The request headers with which a node daemon that publishes its voter-set digest (with
/// fencing) sends it, and its node's name, along with every fetch of another daemon's
/// `/state.json`: the daemon fetched relays it (`decide::voters::Relays`, `http::relay`).
pub const NODE_HEADER: &str = "x-pglookout-node";
pub const VOTERS_HEADER: &str = "x-pglookout-voters";
/// An observer whose clock differs from ours by more than this is not trusted.
pub const MAX_CLOCK_SKEW_SECONDS: f64 = 5.0;

#[derive(Debug, thiserror::Error)]
pub enum ObserverError {
    #[error("request failed: {0}")]
    Request(String),
    #[error("answered HTTP {0}")]
    Status(u16),
    #[error("its clock is {0:.1} s away from ours (more than 5 s); its answer is ignored")]
    ClockSkew(f64),
    #[error("the answer is not JSON: {0}")]
    NotJson(String),
    #[error("the answer has the wrong shape: {0}")]
    Shape(String),
}

/// The error with its causes: reqwest's own text ("error sending request") leaves out why
/// (refused, timed out, a TLS failure). Without the URL, which may carry a token.
fn request_error(e: reqwest::Error) -> ObserverError {
    ObserverError::Request(super::error_chain(&e.without_url()))
}

/// An HTTP client for observers, trusting `ca_file` (PEM) in addition to the system roots.
pub fn client(ca_file: Option<&std::path::Path>) -> Result<reqwest::Client, String> {
    let mut builder = reqwest::Client::builder()
        .timeout(FETCH_TIMEOUT)
        .connect_timeout(FETCH_TIMEOUT);
    if let Some(ca) = ca_file {
        let pem = std::fs::read(ca).map_err(|e| format!("ca_file {}: {e}", ca.display()))?;
        let cert = reqwest::Certificate::from_pem(&pem).map_err(|e| format!("ca_file {}: {e}", ca.display()))?;
        builder = builder.add_root_certificate(cert);
    }
    builder.build().map_err(|e| format!("cannot build an HTTP client: {e}"))
}

/// Checks the `Date` header against our clock taken before the request, in both directions
/// (the original only rejects an observer that is behind). Wall clocks of two machines are
/// compared here on purpose: that is what the check is about.
pub fn check_skew(
    date_header: Option<&str>,
    local_before: Timestamp,
    local_after: Timestamp,
) -> Result<(), ObserverError> {
    // no or unreadable Date header: nothing to compare; accept as the original does
    let remote = date_header
        .and_then(|d| httpdate::parse_http_date(d).ok())
        .map(Timestamp::from);
    check_clock(remote, local_before, local_after)
}

/// [`check_skew`] on the observer's time as its `Date` header gave it (whole seconds).
pub fn check_clock(
    remote: Option<Timestamp>,
    local_before: Timestamp,
    local_after: Timestamp,
) -> Result<(), ObserverError> {
    let Some(remote) = remote else {
        return Ok(());
    };
    // The header has one-second resolution: allow that much on top of the request's duration.
    let behind = (local_before - remote).num_milliseconds() as f64 / 1000.0;
    let ahead = (remote - local_after).num_milliseconds() as f64 / 1000.0 - 1.0;
    if behind > MAX_CLOCK_SKEW_SECONDS {
        return Err(ObserverError::ClockSkew(-behind));
    }
    if ahead > MAX_CLOCK_SKEW_SECONDS {
        return Err(ObserverError::ClockSkew(ahead));
    }
    Ok(())
}

/// One observer's checked answer.
#[derive(Debug)]
pub struct Answer {
    pub nodes: BTreeMap<String, NodeState>,
    /// The entries with a bad shape, dropped, each described.
    pub bad: Vec<String>,
    /// Whether the answer had a readable `Date` header (without one the observer's clock
    /// cannot be checked; accepted, as the original does).
    pub dated: bool,
}

/// Fetches and checks one observer. `sent`: our node and our voter-set digest, for it to
/// relay (the daemon's `decide::voters::sent_with_fetches`).
pub async fn fetch(
    client: &reqwest::Client,
    base_url: &str,
    token: Option<&str>,
    sent: Option<(&str, &str)>,
) -> Result<Answer, ObserverError> {
    let url = format!("{}/state.json", base_url.trim_end_matches('/'));
    let before = chrono::Utc::now();
    let mut request = client.get(&url);
    if let Some(t) = token {
        request = request.bearer_auth(t);
    }
    if let Some((node, digest)) = sent {
        request = request.header(NODE_HEADER, node).header(VOTERS_HEADER, digest);
    }
    let resp = request.send().await.map_err(request_error)?;
    let after = chrono::Utc::now();
    if !resp.status().is_success() {
        return Err(ObserverError::Status(resp.status().as_u16()));
    }
    let date = resp
        .headers()
        .get(reqwest::header::DATE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    check_skew(date.as_deref(), before, after)?;
    let dated = date
        .as_deref()
        .and_then(|d| httpdate::parse_http_date(d).ok())
        .is_some();
    // read at most MAX_ANSWER_BYTES: a misbehaving peer must not make us hold gigabytes
    let mut resp = resp;
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(request_error)? {
        if body.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(ObserverError::Shape(format!(
                "the answer is larger than {MAX_ANSWER_BYTES} bytes"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    let (nodes, bad) = parse_answer(&body)?;
    Ok(Answer { nodes, bad, dated })
}

/// An observer's answer: a `/state.json` body. Entries with a bad shape are dropped and
/// described in the second value. The simulator reads its observers' answers with this too.
pub fn parse_answer(body: &[u8]) -> Result<(BTreeMap<String, NodeState>, Vec<String>), ObserverError> {
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| ObserverError::NotJson(e.to_string()))?;
    let (nodes, bad) = parse_node_map(&value).map_err(|e| ObserverError::Shape(e.to_string()))?;
    Ok((
        nodes,
        bad.into_iter().map(|(n, e)| format!("node {n:?}: {e}")).collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::parse_iso;

    #[tokio::test]
    async fn a_failed_request_says_why() {
        let port = std::net::TcpListener::bind(("127.0.0.1", 0))
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let client = client(None).expect("client");
        match fetch(&client, &format!("http://127.0.0.1:{port}"), None, None).await {
            Err(ObserverError::Request(e)) => assert!(e.contains("refused"), "{e}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn skew_is_rejected_in_both_directions() {
        let now = parse_iso("2024-01-01T12:00:00Z").expect("t");
        let header = |t: Timestamp| httpdate::fmt_http_date(t.into());
        let secs = chrono::Duration::seconds;
        assert!(check_skew(Some(&header(now)), now, now).is_ok());
        assert!(check_skew(Some(&header(now - secs(4))), now, now).is_ok());
        assert!(check_skew(Some(&header(now + secs(5))), now, now).is_ok());
        assert!(matches!(
            check_skew(Some(&header(now - secs(7))), now, now),
            Err(ObserverError::ClockSkew(_))
        ));
        assert!(matches!(
            check_skew(Some(&header(now + secs(8))), now, now),
            Err(ObserverError::ClockSkew(_))
        ));
        assert!(check_skew(None, now, now).is_ok());
    }
}
