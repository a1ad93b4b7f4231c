//! Query strings of the HTTP API, one decoder for every endpoint that takes parameters
//! (`/history`, `/series`, `/replica`): `name=value` pairs split on `&`, names and values
//! percent-decoded with `+` as a space (as HTML forms, `URLSearchParams` and Python's
//! `parse_qs` encode them), empty pairs ignored. A parameter given more than once, bad
//! percent-encoding, or a name or value that is not UTF-8 after decoding is an error that names
//! it, so that a typo in a check line is seen at once instead of silently meaning something
//! else. Which names each endpoint takes, and their values, are the endpoint's business.

/// The pairs of `query`, decoded, in order; an error names the parameter.
pub fn parse(query: Option<&str>) -> Result<Vec<(String, String)>, String> {
    let mut out: Vec<(String, String)> = Vec::new();
    for pair in query.unwrap_or_default().split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let name = decode(k).ok_or_else(|| format!("bad percent-encoding in the parameter name {k:?}"))?;
        let value = decode(v).ok_or_else(|| format!("{name}: bad percent-encoding in {v:?}"))?;
        if out.iter().any(|(n, _)| *n == name) {
            return Err(format!("{name}: given more than once"));
        }
        out.push((name, value));
    }
    Ok(out)
}

/// Percent-encodes `s` for a query value: every byte but the unreserved ones of RFC 3986.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `%XX` is the byte XX, `+` a space; `None` for a `%` without two hex digits or a result that
/// is not UTF-8.
pub fn decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = b.get(i + 1..i + 3)?;
                if !hex.iter().all(u8::is_ascii_hexdigit) {
                    return None;
                }
                out.push(u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn names_and_values_are_decoded() {
        assert_eq!(parse(None), Ok(vec![]));
        assert_eq!(parse(Some("")), Ok(vec![]));
        assert_eq!(parse(Some("&&")), Ok(vec![]));
        assert_eq!(
            parse(Some("%6Cimit=%31&node=pg+2&since=12%3A00%2B01&flag")),
            Ok(pairs(&[
                ("limit", "1"),
                ("node", "pg 2"),
                ("since", "12:00+01"),
                ("flag", "")
            ]))
        );
        assert_eq!(parse(Some("a=%C3%A9")), Ok(pairs(&[("a", "é")])));
        assert_eq!(parse(Some("a=b=c")), Ok(pairs(&[("a", "b=c")])));
    }

    #[test]
    fn a_repeated_parameter_is_an_error_naming_it() {
        assert_eq!(
            parse(Some("limit=1&limit=2")),
            Err("limit: given more than once".into())
        );
        // the same name, however it is encoded
        assert_eq!(parse(Some("lag=1s&%6Cag=1s")), Err("lag: given more than once".into()));
        assert_eq!(parse(Some("node&node")), Err("node: given more than once".into()));
    }

    #[test]
    fn bad_encoding_is_an_error() {
        for bad in ["a=%", "a=%2", "a=%zz", "a=%+1", "%=1", "a=%FF", "%C3=1"] {
            assert!(parse(Some(bad)).is_err(), "{bad}");
        }
        assert_eq!(decode("%41%2b+"), Some("A+ ".into()));
    }
}
