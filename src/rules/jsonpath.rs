//! Compiling the JSONPaths of a rule file: serde_json_path's parser, guarded
//! against the inputs it panics or hangs on instead of refusing. Both were
//! found by the `jsonpath` fuzz target (seeds `regress-*` in
//! fuzz/seeds/jsonpath/); a rule file is trusted, but `hookflow check`,
//! `serve` and a reload must answer with an error, not a panic or a hang.
//!
//! * serde_json_path 0.7.2 reads the hex digits of a `\u` escape with one of
//!   nom's *streaming* parsers, which at the end of the input answers
//!   "incomplete"; the crate turns that answer into `unreachable!()`. So a
//!   path ending inside a `\u` escape (`$["\u`, `$['\uD`) panicked.
//! * Its parser backtracks over nested brackets: each level of `[?…[?…]]`
//!   doubles the time (16 levels: 6 s in the fuzz build, 30 levels: hours).
//!   Rules nest two or three; deeper than [`MAX_NESTING`] is refused.

use serde_json_path::JsonPath;

/// Why a JSONPath did not compile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} at character {position}")]
pub struct PathError {
    pub message: String,
    /// Where the parser stopped, as serde_json_path counts it.
    pub position: usize,
}

/// How deep `[…]` may nest in a path (outside string literals).
pub const MAX_NESTING: usize = 8;

/// Compiles `src`, or says why it is not a JSONPath. Never panics, and takes
/// time linear in the length of `src` for everything the guard refuses.
pub fn parse(src: &str) -> Result<JsonPath, PathError> {
    if let Some(e) = guard(src) {
        return Err(e);
    }
    JsonPath::parse(src).map_err(|e| PathError {
        message: e.message().to_string(),
        position: e.position(),
    })
}

/// One pass over `src`, outside and inside string literals, for what the
/// parser cannot be trusted with:
///
/// * a `\u` escape with fewer than four bytes after it. It can never be part
///   of a valid path (its four digits, a closing quote and a `]` must
///   follow), so refusing it changes no answer; it only keeps the streaming
///   parser from reaching the end of the input.
/// * `[` nested deeper than [`MAX_NESTING`] outside string literals.
///
/// Positions are byte offsets. Every byte compared is ASCII, so it is never
/// part of a multi-byte character.
fn guard(src: &str) -> Option<PathError> {
    let bytes = src.as_bytes();
    let mut quote: Option<u8> = None;
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'\\' {
            if bytes.get(i + 1) == Some(&b'u') && bytes.len() - (i + 2) < 4 {
                return Some(PathError {
                    message: "a \\u escape needs four hex digits".to_string(),
                    position: i,
                });
            }
            // The backslash escapes the next byte (`\\u` is no escape).
            i += 2;
            continue;
        }
        match (quote, b) {
            (Some(q), _) if b == q => quote = None,
            (Some(_), _) => {}
            (None, b'\'' | b'"') => quote = Some(b),
            (None, b'[') => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Some(PathError {
                        message: format!(
                            "`[…]` nested more than {MAX_NESTING} deep; write the path flatter"
                        ),
                        position: i,
                    });
                }
            }
            (None, b']') => depth = depth.saturating_sub(1),
            (None, _) => {}
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every place the streaming parser can meet the end of the input.
    const UNFINISHED: &[&str] = &[
        "$[\"[\\u",
        "$[\"\\u",
        "$['\\uD",
        "$['\\ud",
        "$[\"\\uD800\\u",
        "$[\"\\uD800\\uD",
        "$[?@ == '\\u",
        "$[?@.a == \"x\\uDB",
    ];

    #[test]
    fn a_path_ending_inside_a_unicode_escape_is_an_error_not_a_panic() {
        for src in UNFINISHED {
            let err = parse(src).expect_err(src);
            assert_eq!(err.message, "a \\u escape needs four hex digits", "{src}");
        }
    }

    #[test]
    fn complete_escapes_and_escaped_backslashes_still_compile() {
        for src in [
            "$['\\u00e9']",
            "$[\"\\uD83D\\uDE00\"]",
            "$['\\\\u']",
            "$['a\\\\']",
            "$[?@ == '\\u0041']",
        ] {
            assert!(parse(src).is_ok(), "{src}");
        }
        // Invalid, but refused by the parser itself, with its own message.
        let err = parse("$['\\uZZZZ']").expect_err("not hex");
        assert_ne!(err.message, "a \\u escape needs four hex digits");
    }

    #[test]
    fn a_rule_file_with_an_unfinished_escape_is_a_load_error_not_a_panic() {
        let dir = tempfile::tempdir().expect("tempdir");
        let yaml = r#"
sources:
  s:
    verify: { token: { header: X-T, value: t } }
    event: { path: '$["\uD' }
rules:
  - name: r
    source: s
    when: { path: '$["\u', exists: true }
    actions: [{ http: { url: "http://127.0.0.1:9/" } }]
"#;
        std::fs::write(dir.path().join("rules.yaml"), yaml).expect("write");
        let err = crate::rules::load_with_env(dir.path(), &|_| None).expect_err("invalid paths");
        let messages: Vec<&str> = err.errors().map(|d| d.message.as_str()).collect();
        assert_eq!(messages.len(), 2, "{messages:?}");
        for m in messages {
            assert!(m.contains("a \\u escape needs four hex digits"), "{m}");
        }
    }

    #[test]
    fn filters_nested_deeper_than_the_limit_are_refused_at_once() {
        let nested = |n: usize| format!("${}{}", "[?@".repeat(n), "]".repeat(n));
        assert!(parse(&nested(MAX_NESTING)).is_ok());
        // Unguarded, 30 levels take hours (the time doubles per level).
        let started = std::time::Instant::now();
        for src in [nested(30), format!("${}", "[?$".repeat(40))] {
            let err = parse(&src).expect_err("too deep");
            assert!(err.message.contains("nested more than 8 deep"), "{err}");
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
        // Brackets inside string literals are names, not nesting.
        let inside = format!("$['{}']", "[".repeat(20));
        assert!(parse(&inside).is_ok(), "{inside}");
        let escaped = format!("$[\"\\\"{}\"]", "[".repeat(20));
        assert!(parse(&escaped).is_ok(), "{escaped}");
    }

    /// Pins why the guard exists: when serde_json_path stops panicking on
    /// these, the guard can go (and this test with it).
    #[test]
    fn serde_json_path_itself_still_panics_on_an_unfinished_escape() {
        let panicked = std::panic::catch_unwind(|| JsonPath::parse("$[\"\\u")).is_err();
        assert!(
            panicked,
            "serde_json_path no longer panics on an unfinished \\u escape: remove the guard in rules/jsonpath.rs"
        );
    }
}
