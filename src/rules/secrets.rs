//! Secrets: the values that came from the environment, and replacing them
//! by `***` in text that leaves the process or is written to the run log.
//!
//! A secret is matched in every form it commonly takes in stored text: as
//! written; URL-encoded the ways common encoders write it (`%20` or `+` for
//! a space, upper- or lower-case hex); and base64 (standard and URL-safe,
//! padded or not, also at any alignment inside a longer base64 text such as
//! `user:secret`). All forms of all secrets go into one Aho-Corasick
//! automaton, built once when the rule set loads, so redacting a text is
//! one pass whatever the number of secrets.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::fmt;

use aho_corasick::{AhoCorasick, MatchKind};
use base64::Engine as _;
use base64::engine::GeneralPurpose;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use percent_encoding::{AsciiSet, CONTROLS, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::Value;

use super::Failure;

/// What a secret is replaced by.
const MASK: &str = "***";

/// Secrets shorter than this (in bytes) are redacted as written only.
///
/// The choice: a secret is never left in stored text, however short — a
/// one-byte `${DEBUG}` turns every such byte of a stored text into `***`,
/// which is the price of a short value being a secret. Its encoded forms,
/// though, are not looked for: the base64 of two bytes is a three-character
/// run that ordinary base64 and identifiers are full of, and redacting it
/// would garble them while protecting a value that can be guessed anyway.
const MIN_ENCODED_LEN: usize = 4;

/// A base64 run shorter than this is not looked for inside longer base64
/// text (36 bits: rare enough in unrelated ids not to redact them).
const MIN_BASE64_CORE: usize = 6;

/// `encodeURIComponent` keeps these besides letters and digits.
const JS_COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'!')
    .remove(b'~')
    .remove(b'*')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')');

/// RFC 3986 unreserved characters stay (Go's `QueryEscape`, Python's
/// `quote(safe="")`, most HTTP clients' query builders).
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// `application/x-www-form-urlencoded` (the `url` crate's `query_pairs`,
/// reqwest's `.query()`, HTML forms); the space becomes `+` as a variant.
const FORM: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'*')
    .remove(b'-')
    .remove(b'.')
    .remove(b'_');

/// What a URL parser escapes in a query written by hand (WHATWG URL).
const URL_QUERY: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'<')
    .add(b'>')
    .add(b'\'');

/// What a URL parser escapes in a path written by hand (WHATWG URL).
const URL_PATH: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}');

const URL_SETS: [&AsciiSet; 6] = [
    NON_ALPHANUMERIC,
    UNRESERVED,
    JS_COMPONENT,
    FORM,
    URL_QUERY,
    URL_PATH,
];

/// Values that came from the environment. They are replaced by `***`
/// wherever text leaves the process: logs, the run log, the API, errors.
/// Cheap to clone (the automaton is shared).
#[derive(Clone, Default)]
pub struct Secrets {
    /// `None`: no secrets, nothing to do.
    matcher: Option<Matcher>,
}

#[derive(Clone)]
struct Matcher {
    /// Every form of every secret, leftmost-longest: a form containing
    /// another is replaced whole. `None` only if the automaton could not
    /// be built; `forms` are then replaced one by one.
    automaton: Option<AhoCorasick>,
    /// The same forms, longest first.
    forms: Vec<String>,
    /// The longest form, in bytes: how far a match can reach.
    longest: usize,
}

/// Never shows a secret, not even in debug output.
impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let forms = self.matcher.as_ref().map_or(0, |m| m.forms.len());
        f.debug_struct("Secrets").field("forms", &forms).finish()
    }
}

impl Secrets {
    pub fn new(values: BTreeSet<String>) -> Self {
        let mut forms = BTreeSet::new();
        for value in values.iter().filter(|v| !v.is_empty()) {
            forms_of(value, &mut forms);
        }
        if forms.is_empty() {
            return Secrets::default();
        }
        let mut forms: Vec<String> = forms.into_iter().collect();
        forms.sort_by_key(|f| std::cmp::Reverse(f.len()));
        let longest = forms.first().map_or(0, String::len);
        let automaton = match AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostLongest)
            .build(&forms)
        {
            Ok(automaton) => Some(automaton),
            Err(e) => {
                // Only possible past the automaton's size limits; slower, not unsafe.
                tracing::error!(error = %e, "cannot build the secrets matcher; redacting form by form");
                None
            }
        };
        Secrets {
            matcher: Some(Matcher {
                automaton,
                forms,
                longest,
            }),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.matcher.is_none()
    }

    pub fn redact(&self, text: &str) -> String {
        self.redact_cow(text).into_owned()
    }

    /// `text` with every form of every secret replaced by `***`; borrowed
    /// when there was nothing to replace.
    pub fn redact_cow<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let Some(matcher) = &self.matcher else {
            return Cow::Borrowed(text);
        };
        let Some(automaton) = &matcher.automaton else {
            let mut out = Cow::Borrowed(text);
            for form in &matcher.forms {
                if out.contains(form.as_str()) {
                    out = Cow::Owned(out.replace(form.as_str(), MASK));
                }
            }
            return out;
        };
        if !automaton.is_match(text) {
            return Cow::Borrowed(text);
        }
        let mut out = String::with_capacity(text.len());
        automaton.replace_all_with(text, &mut out, |_, _, dst| {
            dst.push_str(MASK);
            true
        });
        Cow::Owned(out)
    }

    /// Redacts `text` where it is, allocating only when it holds a secret.
    pub fn redact_in_place(&self, text: &mut String) {
        if let Cow::Owned(redacted) = self.redact_cow(text) {
            *text = redacted;
        }
    }

    /// Redacts every string inside a JSON value, object keys included.
    pub fn redact_value(&self, value: &Value) -> Value {
        let mut value = value.clone();
        self.redact_value_in_place(&mut value);
        value
    }

    pub fn redact_value_in_place(&self, value: &mut Value) {
        if self.is_empty() {
            return;
        }
        match value {
            Value::String(s) => self.redact_in_place(s),
            Value::Array(items) => items.iter_mut().for_each(|v| self.redact_value_in_place(v)),
            Value::Object(map) => {
                let keys_hold_secrets = map
                    .keys()
                    .any(|k| matches!(self.redact_cow(k), Cow::Owned(_)));
                if keys_hold_secrets {
                    *map = std::mem::take(map)
                        .into_iter()
                        .map(|(k, mut v)| {
                            self.redact_value_in_place(&mut v);
                            (self.redact(&k), v)
                        })
                        .collect();
                } else {
                    map.values_mut().for_each(|v| self.redact_value_in_place(v));
                }
            }
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }

    /// A failed condition as the trace keeps it: the condition as written
    /// (whose operand may be a secret) and the values the selector saw.
    pub fn redact_failure(&self, failure: &mut Failure) {
        if self.is_empty() {
            return;
        }
        self.redact_in_place(&mut failure.at);
        self.redact_in_place(&mut failure.condition);
        if let Some(saw) = &mut failure.saw {
            saw.iter_mut().for_each(|v| self.redact_value_in_place(v));
        }
        for alternative in &mut failure.alternatives {
            self.redact_failure(alternative);
        }
    }

    /// Where to cut `bytes` to keep about `limit` of them without keeping
    /// the start of a secret: `limit` (or the length, if shorter), moved to
    /// the end of a secret that begins before `limit` and runs past it.
    pub fn cut_point(&self, bytes: &[u8], limit: usize) -> usize {
        let limit = limit.min(bytes.len());
        let Some(Matcher {
            automaton: Some(automaton),
            longest,
            ..
        }) = &self.matcher
        else {
            return limit;
        };
        let from = limit.saturating_sub(*longest);
        let to = limit.saturating_add(*longest).min(bytes.len());
        let Some(window) = bytes.get(from..to) else {
            return limit;
        };
        automaton
            .find_iter(window)
            .map(|m| (from + m.start(), from + m.end()))
            .find(|&(start, end)| start < limit && end > limit)
            .map_or(limit, |(_, end)| end)
    }
}

/// The forms of one secret looked for in text.
fn forms_of(secret: &str, forms: &mut BTreeSet<String>) {
    forms.insert(secret.to_owned());
    if secret.len() < MIN_ENCODED_LEN {
        return;
    }
    for set in URL_SETS {
        let upper = utf8_percent_encode(secret, set).to_string();
        let lower = lower_hex(&upper);
        for encoded in [upper, lower] {
            if encoded.contains("%20") {
                forms.insert(encoded.replace("%20", "+"));
            }
            forms.insert(encoded);
        }
    }
    let bytes = secret.as_bytes();
    for engine in [&STANDARD, &URL_SAFE, &STANDARD_NO_PAD, &URL_SAFE_NO_PAD] {
        forms.insert(engine.encode(bytes));
    }
    for engine in [&STANDARD_NO_PAD, &URL_SAFE_NO_PAD] {
        for offset in 0..3 {
            if let Some(core) = base64_core(engine, bytes, offset) {
                forms.insert(core);
            }
        }
    }
}

/// The base64 characters that depend on `secret` alone when it starts
/// `offset` bytes (mod 3) into a longer base64-encoded text.
fn base64_core(engine: &GeneralPurpose, secret: &[u8], offset: usize) -> Option<String> {
    let mut shifted = vec![0u8; offset];
    shifted.extend_from_slice(secret);
    let encoded = engine.encode(&shifted);
    let first = (offset * 8).div_ceil(6);
    let end = (offset + secret.len()) * 8 / 6;
    encoded
        .get(first..end)
        .filter(|core| core.len() >= MIN_BASE64_CORE)
        .map(str::to_owned)
}

/// `%2F` → `%2f`, the rest unchanged.
fn lower_hex(encoded: &str) -> String {
    let mut out = String::with_capacity(encoded.len());
    let mut hex_left = 0;
    for c in encoded.chars() {
        if hex_left > 0 {
            out.push(c.to_ascii_lowercase());
            hex_left -= 1;
        } else {
            if c == '%' {
                hex_left = 2;
            }
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SECRET: &str = "Team s3cr3t/4c9e+1f7b=2d:x";

    fn secrets(values: &[&str]) -> Secrets {
        Secrets::new(values.iter().map(|v| v.to_string()).collect())
    }

    #[test]
    fn the_plain_value_is_replaced_everywhere() {
        let s = secrets(&[SECRET]);
        assert_eq!(s.redact(&format!("a {SECRET} b {SECRET}")), "a *** b ***");
        assert_eq!(s.redact("nothing here"), "nothing here");
        assert!(matches!(s.redact_cow("nothing here"), Cow::Borrowed(_)));
    }

    #[test]
    fn url_encoded_forms_are_replaced() {
        let s = secrets(&[SECRET]);
        let query_string = form_urlencoded::Serializer::new(String::new())
            .append_pair("k", SECRET)
            .finish();
        assert_eq!(query_string, "k=Team+s3cr3t%2F4c9e%2B1f7b%3D2d%3Ax");
        assert_eq!(s.redact(&query_string), "k=***");
        let parsed = reqwest::Url::parse(&format!("http://h/p?k={SECRET}")).expect("url");
        let query = parsed.query().expect("query");
        assert_eq!(query, "k=Team%20s3cr3t/4c9e+1f7b=2d:x");
        assert_eq!(s.redact(query), "k=***");
        let strict = utf8_percent_encode(SECRET, NON_ALPHANUMERIC).to_string();
        assert_eq!(s.redact(&strict), "***");
        assert_eq!(s.redact(&lower_hex(&strict)), "***");
        assert_eq!(lower_hex("a%2Fb%3A"), "a%2fb%3a");
        let component = utf8_percent_encode(SECRET, UNRESERVED).to_string();
        assert_eq!(
            s.redact(&format!("/echo?x={component}&y=1")),
            "/echo?x=***&y=1"
        );
    }

    #[test]
    fn base64_forms_are_replaced_even_inside_longer_base64() {
        let s = secrets(&[SECRET]);
        for engine in [&STANDARD, &URL_SAFE, &STANDARD_NO_PAD, &URL_SAFE_NO_PAD] {
            assert_eq!(s.redact(&engine.encode(SECRET)), "***");
            // Inside `user:secret` (Basic auth) and the like, at every alignment.
            for prefix in ["", "u", "us", "user:"] {
                for suffix in ["", "!", "!?", "!?#"] {
                    let blob = engine.encode(format!("{prefix}{SECRET}{suffix}"));
                    let redacted = s.redact(&blob);
                    assert!(redacted.contains(MASK), "{prefix}|{suffix}: {redacted}");
                    let left = redacted.replace(MASK, "");
                    // What is left is the prefix's and suffix's characters
                    // and at most one boundary character on each side.
                    let around = (prefix.len() + suffix.len()) * 4 / 3 + 6;
                    assert!(left.len() <= around, "{prefix}|{suffix}: {redacted}");
                }
            }
        }
    }

    #[test]
    fn the_longest_secret_wins_and_keys_are_redacted_too() {
        let s = secrets(&["abcd", "abcdefgh"]);
        assert_eq!(s.redact("xabcdefghx abcd"), "x***x ***");
        let value = json!({"abcd-key": ["abcdefgh", 1, {"k": "v abcd"}], "n": null});
        assert_eq!(
            s.redact_value(&value),
            json!({"***-key": ["***", 1, {"k": "v ***"}], "n": null})
        );
    }

    #[test]
    fn a_short_secret_is_redacted_as_written_only() {
        let s = secrets(&["ab1"]);
        assert_eq!(s.redact("xab1x"), "x***x");
        // Its base64 (`YWIx`) and encodings are left alone.
        assert_eq!(s.redact("YWIx"), "YWIx");
        // Empty values are not secrets at all.
        assert!(secrets(&[""]).is_empty());
        assert_eq!(secrets(&[""]).redact("text"), "text");
    }

    #[test]
    fn a_cut_never_keeps_the_start_of_a_secret() {
        let s = secrets(&["0123456789abcdef"]);
        let text = b"xxxxxxxx0123456789abcdefyyyy";
        assert_eq!(
            s.cut_point(text, 12),
            24,
            "moved past the straddling secret"
        );
        assert_eq!(s.cut_point(text, 4), 4, "no secret across the cut");
        assert_eq!(s.cut_point(text, 100), text.len());
        assert_eq!(Secrets::default().cut_point(text, 12), 12);
    }

    #[test]
    fn failures_in_a_trace_are_redacted() {
        let s = secrets(&[SECRET]);
        let mut failure = Failure {
            at: "r.yaml:3:5".into(),
            condition: format!("header x-team equals \"{SECRET}\""),
            saw: Some(vec![json!("wrong")]),
            alternatives: vec![Failure {
                at: "r.yaml:4:5".into(),
                condition: "header x-team exists".into(),
                saw: Some(vec![json!(SECRET)]),
                alternatives: Vec::new(),
            }],
        };
        s.redact_failure(&mut failure);
        assert_eq!(failure.condition, "header x-team equals \"***\"");
        assert_eq!(failure.alternatives[0].saw, Some(vec![json!("***")]));
    }

    #[test]
    fn debug_output_shows_no_secret() {
        let shown = format!("{:?}", secrets(&[SECRET]));
        assert!(!shown.contains("s3cr3t"), "{shown}");
    }
}
