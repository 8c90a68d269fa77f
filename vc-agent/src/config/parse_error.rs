//! A TOML error as an admin may see it: where it is (line, column), which key, and what is
//! wrong, but never a value from the file. toml's own message shows the offending source
//! line, and serde's quote the value they could not use ("invalid type: integer `1234`"):
//! with an unquoted PSK either would print the secret, into the journal.
use std::fmt;

/// A config file that is not valid TOML, or whose values have the wrong type.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ParseError {
    /// 1-based, when toml says where.
    pub line: Option<usize>,
    /// 1-based, in characters.
    pub column: Option<usize>,
    /// The dotted key the error is about, when it is written as `key = ...` on that line
    /// (a table header in effect comes first: `tunnel.a.ike_psk`).
    pub key: Option<String>,
    /// toml's message, each quoted piece of the file left out.
    pub message: String,
}

/// What stands for a value left out of a message.
const LEFT_OUT: &str = "…";

impl ParseError {
    /// The redacted form of `error`, a parse of `source`.
    #[must_use]
    pub fn new(error: &toml::de::Error, source: &str) -> Self {
        let span = error.span().filter(|s| s.start <= source.len());
        let Some(span) = span else {
            return ParseError {
                line: None,
                column: None,
                key: None,
                message: redact(error.message(), None),
            };
        };
        let line_start = source[..span.start].rfind('\n').map_or(0, |i| i + 1);
        let line_end = source[span.start..]
            .find('\n')
            .map_or(source.len(), |i| span.start + i);
        let line = &source[line_start..line_end];
        let at = span.start - line_start;
        let position = (
            Some(source[..line_start].matches('\n').count() + 1),
            Some(source[line_start..span.start].chars().count() + 1),
        );
        // A table header holds keys only.
        if let Some(table) = table_of(line) {
            return ParseError {
                line: position.0,
                column: position.1,
                key: Some(table),
                message: error.message().to_string(),
            };
        }
        // What may be a value: the line after its first `=` (all of it if there is none),
        // and the lines after it that the error spans.
        let value_start = line.find('=').map_or(line_start, |i| line_start + i + 1);
        let value = &source[value_start..span.end.max(line_end)];
        ParseError {
            line: position.0,
            column: position.1,
            key: key_at(line, at).map(|key| match table_of(&source[..line_start]) {
                Some(table) => format!("{table}.{key}"),
                None => key,
            }),
            message: redact(error.message(), Some(value)),
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TOML error")?;
        if let (Some(line), Some(column)) = (self.line, self.column) {
            write!(f, " at line {line}, column {column}")?;
        }
        if let Some(key) = &self.key {
            write!(f, " (key {key})")?;
        }
        write!(f, ": {} (values are not shown)", self.message)
    }
}

/// The key written left of the `=` that `at` (a byte offset into `line`) is right of, or
/// under: the nearest `key =` before it in an inline table too. `None` for a line without
/// `=` (a stray value must not be shown as a key).
fn key_at(line: &str, at: usize) -> Option<String> {
    let equals = line.find('=')?;
    let before = if at > equals {
        // Inside a value: the last `=` before the error.
        &line[..line[..at].rfind('=').unwrap_or(equals)]
    } else {
        &line[..equals]
    };
    let key: String = before
        .trim_end()
        .chars()
        .rev()
        .take_while(|c| is_key_char(*c))
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    (!key.is_empty()).then_some(key)
}

fn is_key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')
}

/// The table header in effect at the end of `before`: `tunnel.a` for `[tunnel.a]`.
fn table_of(before: &str) -> Option<String> {
    before.lines().rev().find_map(|line| {
        let inner = line.trim().strip_prefix('[')?;
        let inner = inner.trim_start_matches('[');
        let end = inner.find(']')?;
        let name: String = inner[..end]
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        (!name.is_empty() && name.chars().all(is_key_char)).then_some(name)
    })
}

/// `message` with the content of each quoted piece (`` `...` `` or `"..."`) that holds a
/// letter or digit and occurs in `value` left out; with no `value` (no position known),
/// every such piece.
fn redact(message: &str, value: Option<&str>) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some((open, quote)) = rest.char_indices().find(|(_, c)| matches!(c, '`' | '"')) {
        let after = open + quote.len_utf8();
        let Some(len) = rest[after..].find(quote) else {
            break;
        };
        let piece = after..after + len;
        out.push_str(&rest[..after]);
        let content = &rest[piece.start..piece.end];
        if secret_like(content, value) {
            out.push_str(LEFT_OUT);
        } else {
            out.push_str(content);
        }
        out.push(quote);
        rest = &rest[piece.end + quote.len_utf8()..];
    }
    out.push_str(rest);
    out
}

/// Whether a quoted piece of a message may be (part of) a value of the file: it occurs in
/// `value` other than as a key of an inline table (`{ key = ... }`).
fn secret_like(content: &str, value: Option<&str>) -> bool {
    let Some(value) = value else {
        return content.chars().any(char::is_alphanumeric);
    };
    content.chars().any(char::is_alphanumeric)
        && value
            .match_indices(content)
            .any(|(i, _)| !value[i + content.len()..].trim_start().starts_with('='))
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::ParseError;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[expect(dead_code, reason = "only the errors matter")]
    struct Form {
        asn: Option<u32>,
        tunnel: Option<Tunnel>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[expect(dead_code, reason = "only the errors matter")]
    struct Tunnel {
        asn: Option<u32>,
        ike_psk: Option<String>,
        inline: Option<std::collections::BTreeMap<String, String>>,
    }

    fn error(text: &str) -> ParseError {
        let e = toml::from_str::<Form>(text).expect_err(text);
        ParseError::new(&e, text)
    }

    const SECRET: &str = "Hunter2Secret";

    #[test]
    fn an_unquoted_psk_is_placed_and_named_but_never_shown() {
        for (text, line, column, key) in [
            (
                format!("asn = 1\n[tunnel]\nike_psk = {SECRET}\n"),
                3,
                11,
                "tunnel.ike_psk",
            ),
            (
                format!("[tunnel]\nike_psk = \"{SECRET}\n"),
                2,
                25,
                "tunnel.ike_psk",
            ),
            (
                format!("[tunnel]\nike_psk = {SECRET} x\n"),
                2,
                11,
                "tunnel.ike_psk",
            ),
            (
                format!("[tunnel]\nike_psk = 'a' '{SECRET}'\n"),
                2,
                15,
                "tunnel.ike_psk",
            ),
            (
                format!("[tunnel]\nasn = \"{SECRET}\"\n"),
                2,
                7,
                "tunnel.asn",
            ),
            (
                format!("[tunnel]\nike_psk = 1234{SECRET}\n"),
                2,
                15,
                "tunnel.ike_psk",
            ),
            (
                format!("[tunnel]\ninline = {{ a = \"b\", ike_psk = {SECRET} }}\n"),
                2,
                31,
                "tunnel.ike_psk",
            ),
        ] {
            let e = error(&text);
            let shown = e.to_string();
            assert!(!shown.contains(SECRET), "{text:?} → {shown}");
            assert!(!shown.contains("Hunter"), "{text:?} → {shown}");
            assert_eq!(
                (e.line, e.column, e.key.as_deref()),
                (Some(line), Some(column), Some(key)),
                "{text:?} → {shown}"
            );
        }
    }

    #[test]
    fn a_stray_value_on_its_own_line_is_not_taken_for_a_key() {
        let e = error(&format!("[tunnel]\n{SECRET}\n"));
        assert_eq!(e.key, None, "{e}");
        assert_eq!(e.line, Some(2));
        assert!(!e.to_string().contains(SECRET), "{e}");
    }

    #[test]
    fn keys_and_what_was_expected_are_still_said() {
        let e = error("[tunnel]\nasn = 1\n[bogus]\n");
        assert_eq!(e.key.as_deref(), Some("bogus"));
        assert!(e.message.contains("unknown field `bogus`"), "{e}");
        let e = error("[tunnel]\nbogus_key = 1\n");
        assert_eq!(e.key.as_deref(), Some("tunnel.bogus_key"));
        assert!(
            e.message.contains("unknown field `bogus_key`") && e.message.contains("`ike_psk`"),
            "{e}"
        );
        let e = error("asn = 1\nasn = 2\n");
        assert_eq!(
            e.to_string(),
            "TOML error at line 2, column 1 (key asn): duplicate key (values are not shown)"
        );
        let e = error("[tunnel]\ninline = { a = 1234 }\n");
        assert_eq!(e.key.as_deref(), Some("tunnel.a"), "{e}");
        assert_eq!(e.message, "invalid type: integer `…`, expected a string");
        let e = error("[tunnel]\nasn = \"x1\"\n");
        assert_eq!(
            e.message, "invalid type: string \"…\", expected u32",
            "the type is said, the value is not"
        );
    }
}
