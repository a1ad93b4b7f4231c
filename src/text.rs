//! Outside text made safe to show: node and observer names, peers' answers and the reasons that
//! quote them come from configs, observers and other daemons, and reach terminals
//! (`pglookout-ctl`) and log lines. [`printable`] writes their control characters as escapes,
//! so that a forged name can neither start a line of its own (a forged log line) nor send a
//! terminal escape sequence (colours, cursor moves, a changed window title). Pure; no I/O.

use std::borrow::Cow;
use std::fmt::Write as _;

/// Whether `c` is shown as an escape: the C0 controls (newline, carriage return and tab
/// included), DEL, the C1 controls (among them the 8-bit CSI), and the Unicode bidirectional
/// marks, embeddings, overrides and isolates, which reorder what follows them on screen.
fn needs_escape(c: char) -> bool {
    c.is_control() || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `s` with every character of [`needs_escape`] written as `\n`, `\r`, `\t` or `\u{..}`
/// (Rust's notation); borrowed unchanged when there is none, which is the normal case.
/// Backslashes are kept as they are: conninfo strings and paths in messages stay readable.
pub fn printable(s: &str) -> Cow<'_, str> {
    if !s.chars().any(needs_escape) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if needs_escape(c) => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_plain_text_is_borrowed() {
        assert!(matches!(printable("pg1 -> pg2 (ok) é ü 日本"), Cow::Borrowed(_)));
        assert_eq!(printable("a\nb\r\tc"), "a\\nb\\r\\tc");
        assert_eq!(printable("x\x1b[31mred\x1b[0m"), "x\\u{1b}[31mred\\u{1b}[0m");
        assert_eq!(printable("\u{0}\u{7f}\u{9b}"), "\\u{0}\\u{7f}\\u{9b}");
        assert_eq!(printable("abc\u{202e}fed"), "abc\\u{202e}fed");
        assert_eq!(printable("back\\slash"), "back\\slash");
        let forged = "pg9\n2026-01-01T00:00:00.000Z\tpglookout\tWARNING\tforged";
        assert!(!printable(forged).contains('\n'));
        assert!(!printable(forged).contains('\t'));
    }
}
