//! `synchronous_standby_names` as a typed value ([`SyncNames`]): read from what a primary
//! reports, and written back (with every name quoted) for `ALTER SYSTEM`. Pure: the decision
//! core reads which standbys a primary waits for from it, and the primary's daemon will set it.
//!
//! PostgreSQL's grammar (syncrep_gram.y): `[FIRST] k (name, ...)`, `ANY k (name, ...)`, or the
//! pre-9.6 plain list `name, ...` (which means `FIRST 1`); a name is an identifier, `*`, or a
//! double-quoted string (`""` inside is one `"`); the keywords are case-insensitive, and a
//! standby's `application_name` matches a name case-insensitively (`pg_strcasecmp`), `*`
//! matching every standby.

/// How the primary picks the standbys that acknowledge a commit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// The first `k` connected standbys of the list, by their order in it.
    First,
    /// Any `k` of the listed standbys (quorum commit).
    Any,
}

/// A parsed `synchronous_standby_names`; `None` from [`parse`] for the empty string (every
/// standby asynchronous).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncNames {
    pub method: Method,
    /// How many standbys must acknowledge a commit.
    pub num_sync: u32,
    /// The names in their order, `*` included as given.
    pub names: Vec<String>,
}

impl SyncNames {
    /// Whether a standby connecting with `application_name` is one of the names.
    pub fn lists(&self, application_name: &str) -> bool {
        self.names
            .iter()
            .any(|n| n == "*" || n.eq_ignore_ascii_case(application_name))
    }

    /// The value for `ALTER SYSTEM SET synchronous_standby_names`, every name quoted (so that
    /// a name PostgreSQL would read as a keyword or fold is taken as it is).
    pub fn render(&self) -> String {
        let method = match self.method {
            Method::First => "FIRST",
            Method::Any => "ANY",
        };
        let names: Vec<String> = self
            .names
            .iter()
            .map(|n| match n.as_str() {
                "*" => "*".to_string(),
                n => format!("\"{}\"", n.replace('"', "\"\"")),
            })
            .collect();
        format!("{method} {} ({})", self.num_sync, names.join(", "))
    }
}

/// Reads `synchronous_standby_names` as PostgreSQL does; an error says what was expected
/// where (a value PostgreSQL accepted never gives one).
pub fn parse(value: &str) -> Result<Option<SyncNames>, String> {
    let tokens = tokens(value)?;
    if tokens.is_empty() {
        return Ok(None);
    }
    let (method, rest) = match tokens.first() {
        Some(Token::Word(w)) if w.eq_ignore_ascii_case("first") && is_number(tokens.get(1)) => {
            (Method::First, &tokens[1..])
        }
        Some(Token::Word(w)) if w.eq_ignore_ascii_case("any") && is_number(tokens.get(1)) => {
            (Method::Any, &tokens[1..])
        }
        _ => (Method::First, &tokens[..]),
    };
    match rest {
        [Token::Word(k), Token::Open, list @ .., Token::Close] if is_number(rest.first()) => {
            let num_sync = k.parse().map_err(|_| format!("{k:?} is not a number of standbys"))?;
            if num_sync == 0 {
                return Err("the number of synchronous standbys must be at least 1".into());
            }
            Ok(Some(SyncNames {
                method,
                num_sync,
                names: names(list)?,
            }))
        }
        _ if method == Method::Any => Err("ANY needs a number and a list in parentheses".into()),
        list => Ok(Some(SyncNames {
            method: Method::First,
            num_sync: 1,
            names: names(list)?,
        })),
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Token {
    /// An identifier, a number or `*`.
    Word(String),
    /// A name in double quotes, unquoted.
    Quoted(String),
    Open,
    Close,
    Comma,
}

fn is_number(t: Option<&Token>) -> bool {
    matches!(t, Some(Token::Word(w)) if !w.is_empty() && w.bytes().all(|b| b.is_ascii_digit()))
}

fn tokens(value: &str) -> Result<Vec<Token>, String> {
    let mut out = Vec::new();
    let mut chars = value.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '(' | ')' | ',' => {
                chars.next();
                out.push(match c {
                    '(' => Token::Open,
                    ')' => Token::Close,
                    _ => Token::Comma,
                });
            }
            '"' => {
                chars.next();
                let mut name = String::new();
                loop {
                    match chars.next() {
                        Some('"') if chars.peek() == Some(&'"') => {
                            chars.next();
                            name.push('"');
                        }
                        Some('"') => break,
                        Some(c) => name.push(c),
                        None => return Err("a quoted name is not closed".into()),
                    }
                }
                out.push(Token::Quoted(name));
            }
            _ => {
                let mut word = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_whitespace() || matches!(c, '(' | ')' | ',' | '"') {
                        break;
                    }
                    word.push(c);
                    chars.next();
                }
                out.push(Token::Word(word));
            }
        }
    }
    Ok(out)
}

/// `name, name, ...`: at least one, separated by commas.
fn names(list: &[Token]) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for (i, t) in list.iter().enumerate() {
        match (i % 2, t) {
            (0, Token::Word(n) | Token::Quoted(n)) => out.push(n.clone()),
            (1, Token::Comma) => {}
            _ => return Err(format!("expected a standby name or a comma, found {t:?}")),
        }
    }
    if out.is_empty() || list.len() % 2 == 0 {
        return Err("expected a list of standby names".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sync(method: Method, num_sync: u32, names: &[&str]) -> Option<SyncNames> {
        Some(SyncNames {
            method,
            num_sync,
            names: names.iter().map(|n| n.to_string()).collect(),
        })
    }

    /// Every form PostgreSQL accepts, as it reads them.
    #[test]
    fn every_form_reads_as_postgresql_reads_it() {
        let table = [
            ("", None),
            ("   ", None),
            ("pg2", sync(Method::First, 1, &["pg2"])),
            ("pg2, pg3", sync(Method::First, 1, &["pg2", "pg3"])),
            ("*", sync(Method::First, 1, &["*"])),
            ("2 (pg2, pg3, pg4)", sync(Method::First, 2, &["pg2", "pg3", "pg4"])),
            ("FIRST 1 (pg2,pg3)", sync(Method::First, 1, &["pg2", "pg3"])),
            ("first 1 (pg2)", sync(Method::First, 1, &["pg2"])),
            ("ANY 2 (pg2, \"Pg 3\", *)", sync(Method::Any, 2, &["pg2", "Pg 3", "*"])),
            ("any 1(\"a\"\"b\")", sync(Method::Any, 1, &["a\"b"])),
            // a standby may be called FIRST or ANY: a plain list of it
            ("first", sync(Method::First, 1, &["first"])),
            ("any, first", sync(Method::First, 1, &["any", "first"])),
        ];
        for (value, want) in table {
            assert_eq!(parse(value), Ok(want), "{value:?}");
        }
    }

    #[test]
    fn what_postgresql_refuses_is_an_error() {
        for bad in [
            "ANY (pg2)",
            "ANY 1 pg2",
            "0 (pg2)",
            "1 ()",
            "1 (pg2,)",
            "pg2,,pg3",
            "pg2 pg3",
            "(pg2)",
            "\"pg2",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}: {:?}", parse(bad));
        }
    }

    #[test]
    fn a_standby_is_listed_case_insensitively_and_star_lists_all() {
        let names = parse("ANY 1 (pg2, \"PG3\")").ok().flatten().expect("parsed");
        assert!(names.lists("PG2") && names.lists("pg3"));
        assert!(!names.lists("pg4"));
        let all = parse("FIRST 1 (*)").ok().flatten().expect("parsed");
        assert!(all.lists("anything"));
    }

    /// What is written reads back as the same value, whatever the names hold.
    #[test]
    fn rendered_names_read_back_the_same() {
        for value in [
            "ANY 2 (pg2, \"Pg 3\", \"a\"\"b\", *)",
            "pg2",
            "FIRST 3 (first, any, \"x,y\")",
        ] {
            let parsed = parse(value).ok().flatten().expect("parsed");
            assert_eq!(
                parse(&parsed.render()),
                Ok(Some(parsed.clone())),
                "{value:?} -> {}",
                parsed.render()
            );
        }
    }
}
