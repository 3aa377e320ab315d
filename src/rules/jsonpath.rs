//! Compiling the JSONPaths of a rule file: serde_json_path's parser, guarded
//! against the input it panics on instead of refusing.
//!
//! serde_json_path 0.7.2 reads the hex digits of a `\u` escape with one of
//! nom's *streaming* parsers, which at the end of the input answers
//! "incomplete"; the crate turns that answer into `unreachable!()`. So a path
//! that ends inside a `\u` escape (`$["\u`, `$['\uD`, `$["\uD800\u`) panicked
//! `hookflow check`, `serve` and a reload. Found by the `jsonpath` fuzz
//! target (fuzz/seeds/jsonpath/regress-unfinished-unicode-escape).

use serde_json_path::JsonPath;

/// Why a JSONPath did not compile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} at character {position}")]
pub struct PathError {
    pub message: String,
    /// Where the parser stopped, as serde_json_path counts it.
    pub position: usize,
}

/// Compiles `src`, or says why it is not a JSONPath. Never panics.
pub fn parse(src: &str) -> Result<JsonPath, PathError> {
    if let Some(position) = unfinished_unicode_escape(src) {
        return Err(PathError {
            message: "a \\u escape needs four hex digits".to_string(),
            position,
        });
    }
    JsonPath::parse(src).map_err(|e| PathError {
        message: e.message().to_string(),
        position: e.position(),
    })
}

/// The byte offset of a `\u` escape with fewer than four bytes after it, if
/// any. Such an escape can never be part of a valid path (its four digits,
/// a closing quote and a `]` must follow), so refusing it changes no answer;
/// it only keeps the streaming parser from reaching the end of the input.
fn unfinished_unicode_escape(src: &str) -> Option<usize> {
    let bytes = src.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' {
            if bytes.get(i + 1) == Some(&b'u') && bytes.len() - (i + 2) < 4 {
                return Some(i);
            }
            // The backslash escapes the next byte (`\\u` is no escape).
            // Both are ASCII, never inside a multi-byte character.
            i += 2;
        } else {
            i += 1;
        }
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
