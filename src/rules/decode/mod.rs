//! Turning located YAML nodes into typed values while collecting every
//! problem as a `file:line:column: message` diagnostic.
//!
//! Decoding never stops at the first problem: a failed field is reported and
//! skipped, so `hookflow check` shows everything wrong with a file at once.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::node::{Kind, Loc, Node, key_text};
use crate::template::{JsonTemplate, Template, Templates};

mod condition;
/// `RULE_KEYS` here; the step and action kinds' key lists are in `crate::actions`.
pub(crate) mod rule;
mod schema;
mod source;
pub use source::{MAX_BODY_CAP, parse_byte_size};
mod test;

/// The decoders' own key lists, for the editor schema and the reference
/// (`rules::reference`), which are generated from them.
pub(crate) mod keys {
    pub(crate) use super::condition::{COMBINATORS, OPERATORS, SELECTORS};
    pub(crate) use super::rule::RULE_KEYS;
    pub(crate) use super::source::{EXTRACT_KEYS, RESPONSE_KEYS, SOURCE_KEYS};
    pub(crate) use super::test::{EXPECT_KEYS, FAILURE_KEYS, TEST_KEYS};
    pub(crate) use crate::actions::STEP_KEYS;
    pub(crate) use crate::actions::http::HTTP_KEYS;
    pub(crate) use crate::actions::shell::SHELL_KEYS;
    pub(crate) use crate::actions::slack::SLACK_KEYS;
    pub(crate) use crate::rules::load::FILE_KEYS;
}

/// How bad a diagnostic is: errors reject the rule set, warnings do not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// One problem found while loading rules.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct Diagnostic {
    pub loc: Loc,
    pub severity: Severity,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.severity {
            Severity::Error => write!(f, "{}: {}", self.loc, self.message),
            Severity::Warning => write!(f, "{}: warning: {}", self.loc, self.message),
        }
    }
}

/// A verifier secret that came from a `${NAME:-default}` default because
/// `NAME` was not set: the default is printed in the rule file, so anyone
/// who can read the file can sign requests. `check` warns; `serve` refuses
/// to start with one unless it runs with `--dev`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DefaultedSecret {
    /// The environment variable that was not set.
    pub variable: String,
    /// The source whose verifier uses the secret.
    pub source: String,
    /// Where the secret is written.
    pub loc: Loc,
}

impl fmt::Display for DefaultedSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} at {} (source `{}`)",
            self.variable, self.loc, self.source
        )
    }
}

/// Looks up environment variables; injected so tests need not touch the
/// process environment.
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The state shared while decoding one file.
pub struct Decoder<'a> {
    pub file: Arc<str>,
    pub diagnostics: &'a mut Vec<Diagnostic>,
    env: EnvLookup<'a>,
    /// Every value substituted from the environment: these are secrets.
    pub secrets: &'a mut BTreeSet<String>,
    pub templates: &'a mut Templates,
    /// The directory of the file, for `payload_file:` paths.
    pub dir: std::path::PathBuf,
    /// Variables whose `${NAME:-default}` default was used, since the last
    /// time a verifier's secrets were read (which takes them).
    defaults_used: Vec<String>,
    /// Verifier secrets that came from a default, in file order.
    pub defaulted_secrets: Vec<DefaultedSecret>,
    /// Problems only `check` and `test` fail on (a test's `payload_file`
    /// that cannot be read): `serve` needs no test files.
    pub test_problems: Vec<Diagnostic>,
    /// Every rule whose name decoded, valid or not, so that checks across
    /// files know it: one bad value in a rule must not also make it an
    /// "unknown rule", nor hide its unknown source.
    pub declared_rules: Vec<DeclaredRule>,
    /// The files read by `${file:PATH}`, for the reloader to watch.
    pub secret_files: Vec<std::path::PathBuf>,
}

/// A rule as far as its name and sources decoded.
#[derive(Debug, Clone)]
pub struct DeclaredRule {
    pub name: String,
    pub loc: Loc,
    pub sources: Vec<String>,
}

impl<'a> Decoder<'a> {
    pub fn new(
        file: Arc<str>,
        diagnostics: &'a mut Vec<Diagnostic>,
        env: EnvLookup<'a>,
        secrets: &'a mut BTreeSet<String>,
        templates: &'a mut Templates,
        dir: std::path::PathBuf,
    ) -> Self {
        Decoder {
            file,
            diagnostics,
            env,
            secrets,
            templates,
            dir,
            defaults_used: Vec::new(),
            defaulted_secrets: Vec::new(),
            test_problems: Vec::new(),
            declared_rules: Vec::new(),
            secret_files: Vec::new(),
        }
    }

    /// Starts recording which `${NAME:-default}` defaults are used.
    pub(super) fn track_defaults(&mut self) {
        self.defaults_used.clear();
    }

    /// The variables whose default was used since `track_defaults`.
    pub(super) fn defaults_used(&mut self) -> Vec<String> {
        std::mem::take(&mut self.defaults_used)
    }

    /// A template string: `${NAME}` substituted, then compiled.
    pub fn template(&mut self, node: &Node) -> Option<Template> {
        let text = self.string(node)?;
        match self.templates.compile(&text) {
            Ok(t) => Some(t),
            Err(e) => {
                let at = match (e.line, e.column) {
                    (Some(l), Some(c)) => format!(" (template line {l}, column {c})"),
                    _ => String::new(),
                };
                self.error(node, format!("invalid template: {}{at}", e.message));
                None
            }
        }
    }

    /// A JSON structure whose every string leaf is a template.
    pub fn json_template(&mut self, node: &Node) -> Option<JsonTemplate> {
        Some(match &node.kind {
            Kind::Null => JsonTemplate::Null,
            Kind::Bool(b) => JsonTemplate::Bool(*b),
            Kind::Number(n) => JsonTemplate::Number(n.clone()),
            Kind::String(_) => JsonTemplate::String(self.template(node)?),
            Kind::Seq(items) => {
                let mut out = Vec::with_capacity(items.len());
                let mut ok = true;
                for item in items {
                    match self.json_template(item) {
                        Some(t) => out.push(t),
                        None => ok = false,
                    }
                }
                if !ok {
                    return None;
                }
                JsonTemplate::Array(out)
            }
            Kind::Map(entries) => {
                let mut out = Vec::with_capacity(entries.len());
                let mut ok = true;
                for (k, v) in entries {
                    match self.json_template(v) {
                        Some(t) => out.push((key_text(k), t)),
                        None => ok = false,
                    }
                }
                if !ok {
                    return None;
                }
                JsonTemplate::Object(out)
            }
        })
    }

    /// A mapping of names to templates (headers, query, form, env).
    pub fn template_map(&mut self, node: &Node) -> Option<Vec<(String, Template)>> {
        let entries = self.string_map(node)?;
        let mut out = Vec::with_capacity(entries.len());
        let mut ok = true;
        for (name, value) in entries {
            match self.template(&value) {
                Some(t) => out.push((name, t)),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    pub fn loc(&self, node: &Node) -> Loc {
        Loc::new(self.file.clone(), node.line, node.column)
    }

    pub fn error(&mut self, node: &Node, message: impl Into<String>) {
        let loc = self.loc(node);
        self.error_at(loc, message);
    }

    pub fn error_at(&mut self, loc: Loc, message: impl Into<String>) {
        self.diagnostics.push(Diagnostic {
            loc,
            severity: Severity::Error,
            message: message.into(),
        });
    }

    pub fn warning(&mut self, node: &Node, message: impl Into<String>) {
        let loc = self.loc(node);
        self.diagnostics.push(Diagnostic {
            loc,
            severity: Severity::Warning,
            message: message.into(),
        });
    }

    /// Reports that `node` has the wrong shape for `what`.
    pub fn expected(&mut self, node: &Node, what: &str) {
        let message = format!("expected {what}, found {}", node.kind.describe());
        self.error(node, message);
    }

    /// Opens a mapping for field-by-field reading.
    pub fn map<'n>(&mut self, node: &'n Node, what: &str) -> Option<Fields<'n>> {
        match &node.kind {
            Kind::Map(entries) => Some(Fields {
                node,
                entries,
                used: vec![false; entries.len()],
            }),
            _ => {
                self.expected(node, what);
                None
            }
        }
    }

    /// A string with `${NAME}` substituted from the environment.
    pub fn string(&mut self, node: &Node) -> Option<String> {
        match &node.kind {
            Kind::String(s) => self.expand(node, s),
            // A plain scalar such as `8080` or `true` where text is expected
            // is taken as its text: users rarely mean anything else.
            Kind::Number(n) => Some(n.to_string()),
            Kind::Bool(b) => Some(b.to_string()),
            _ => {
                self.expected(node, "a string");
                None
            }
        }
    }

    /// A string taken verbatim (no environment substitution).
    pub fn raw_string(&mut self, node: &Node) -> Option<String> {
        match &node.kind {
            Kind::String(s) => Some(s.clone()),
            _ => {
                self.expected(node, "a string");
                None
            }
        }
    }

    pub fn expand(&mut self, node: &Node, text: &str) -> Option<String> {
        let dir = self.dir.clone();
        let mut files = Vec::new();
        let result = expand_with(text, self.env, &mut |path| {
            let path = dir.join(path);
            files.push(path.clone());
            read_secret_file(&path)
        });
        self.secret_files.append(&mut files);
        match result {
            Ok(expanded) => {
                self.secrets
                    .extend(expanded.secrets.into_iter().filter(|s| !s.is_empty()));
                self.defaults_used.extend(expanded.defaulted);
                Some(expanded.text)
            }
            Err(ExpandError::Unset(name)) => {
                self.error(
                    node,
                    format!(
                        "environment variable {name} is not set (set it, or give a default with ${{{name}:-default}})"
                    ),
                );
                None
            }
            Err(ExpandError::File(e)) => {
                self.error(node, e.to_string());
                None
            }
        }
    }

    /// A name such as a rule, source or step id: `[a-z0-9][a-z0-9_.-]*`.
    pub fn name(&mut self, node: &Node, what: &str) -> Option<String> {
        let name = self.raw_string(node)?;
        if is_valid_name(&name) {
            Some(name)
        } else {
            self.error(
                node,
                format!(
                    "invalid {what} name {name:?}: use lower-case letters, digits, '_', '.' and '-', starting with a letter or digit"
                ),
            );
            None
        }
    }

    pub fn bool(&mut self, node: &Node) -> Option<bool> {
        match node.kind {
            Kind::Bool(b) => Some(b),
            _ => {
                self.expected(node, "true or false");
                None
            }
        }
    }

    pub fn u32(&mut self, node: &Node) -> Option<u32> {
        match &node.kind {
            Kind::Number(n) => match n.as_u64().and_then(|v| u32::try_from(v).ok()) {
                Some(v) => Some(v),
                None => {
                    self.error(node, format!("expected a whole number, found {n}"));
                    None
                }
            },
            _ => {
                self.expected(node, "a whole number");
                None
            }
        }
    }

    /// A duration such as `30s`, `5m`, `1h30m` or `7d`.
    pub fn duration(&mut self, node: &Node) -> Option<Duration> {
        let text = self.string(node)?;
        match humantime::parse_duration(&text) {
            Ok(d) => Some(d),
            Err(e) => {
                self.error(
                    node,
                    format!("invalid duration {text:?} ({e}); write e.g. 500ms, 30s, 5m, 7d"),
                );
                None
            }
        }
    }

    /// One string or a list of strings.
    pub fn string_list(&mut self, node: &Node) -> Option<Vec<String>> {
        match &node.kind {
            Kind::Seq(items) => {
                let mut out = Vec::with_capacity(items.len());
                for item in items {
                    out.push(self.string(item)?);
                }
                Some(out)
            }
            _ => self.string(node).map(|s| vec![s]),
        }
    }

    /// A mapping of string keys to string values, e.g. headers or env.
    pub fn string_map(&mut self, node: &Node) -> Option<Vec<(String, Node)>> {
        match &node.kind {
            Kind::Map(entries) => Some(
                entries
                    .iter()
                    .map(|(k, v)| (key_text(k), v.clone()))
                    .collect(),
            ),
            _ => {
                self.expected(node, "a mapping");
                None
            }
        }
    }
}

/// Reads a mapping's fields by name and reports the ones nobody asked for.
pub struct Fields<'n> {
    pub node: &'n Node,
    entries: &'n [(Node, Node)],
    used: Vec<bool>,
}

impl<'n> Fields<'n> {
    /// The value of `key`, marking it as known.
    pub fn get(&mut self, key: &str) -> Option<&'n Node> {
        let entries = self.entries;
        for (i, (k, v)) in entries.iter().enumerate() {
            if k.as_str() == Some(key) {
                self.used[i] = true;
                return Some(v);
            }
        }
        None
    }

    /// Like `get`, but a missing key is an error naming the parent.
    pub fn require(&mut self, dec: &mut Decoder<'_>, key: &str, what: &str) -> Option<&'n Node> {
        let found = self.get(key);
        if found.is_none() {
            dec.error(
                self.node,
                format!("{what} is missing the required key `{key}`"),
            );
        }
        found
    }

    /// The keys present, in file order.
    pub fn keys(&self) -> impl Iterator<Item = (&'n Node, &'n Node)> + 'n {
        self.entries.iter().map(|(k, v)| (k, v))
    }

    /// Reports every key that no `get` asked for, with a "did you mean" hint
    /// from `known`.
    pub fn finish(self, dec: &mut Decoder<'_>, what: &str, known: &[&str]) {
        for ((key, _), used) in self.entries.iter().zip(self.used) {
            if used {
                continue;
            }
            let text = key_text(key);
            let mut message = format!("unknown key `{text}` in {what}");
            if let Some(hint) = did_you_mean(&text, known.iter().copied()) {
                message.push_str(&format!(" (did you mean `{hint}`?)"));
            } else if !known.is_empty() {
                message.push_str(&format!("; expected one of: {}", known.join(", ")));
            }
            dec.error(key, message);
        }
    }
}

/// The closest candidate to `word`, if one is close enough to be a typo.
pub fn did_you_mean<'c>(word: &str, candidates: impl Iterator<Item = &'c str>) -> Option<&'c str> {
    let limit = (word.chars().count() / 3).max(2);
    candidates
        .map(|c| (strsim::damerau_levenshtein(word, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

pub fn is_valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '.' || c == '-'
        })
}

/// The result of substituting `${NAME}` references in a string.
#[derive(Debug, PartialEq, Eq)]
pub struct Expanded {
    pub text: String,
    /// Values that came from the environment (defaults are not secrets).
    pub secrets: Vec<String>,
    /// The variables that were unset, so that their default was used.
    pub defaulted: Vec<String>,
}

/// The largest file `${file:PATH}` reads: secrets are short, and a
/// mistaken path to a large file should not be loaded into every rule.
pub const MAX_SECRET_FILE: u64 = 64 * 1024;

/// Why a `${file:PATH}` could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretFileError {
    #[error("cannot read the secret file {path}: {reason}")]
    Unreadable { path: String, reason: String },
    #[error("the secret file {path} is not a regular file (it is {what})")]
    NotAFile { path: String, what: &'static str },
    #[error("the secret file {path} is {size} bytes; a secret file holds at most 64 KiB")]
    TooLarge { path: String, size: u64 },
    #[error("the secret file {path} is not UTF-8 text")]
    NotText { path: String },
}

/// Why a string's references could not be substituted.
#[derive(Debug, PartialEq, Eq)]
pub enum ExpandError {
    /// `${NAME}` with no default, and `NAME` is not set.
    Unset(String),
    File(SecretFileError),
}

/// Reads a `${file:PATH}` secret (Docker and Kubernetes secrets): a regular
/// file (a symlink to one is followed) of at most 64 KiB of UTF-8, with one
/// trailing newline stripped.
pub fn read_secret_file(path: &std::path::Path) -> Result<String, SecretFileError> {
    use std::io::Read;
    let shown = path.display().to_string();
    let unreadable = |e: std::io::Error| SecretFileError::Unreadable {
        path: shown.clone(),
        reason: e.to_string(),
    };
    let meta = std::fs::metadata(path).map_err(unreadable)?;
    if !meta.is_file() {
        let what = if meta.is_dir() {
            "a directory"
        } else {
            "a device, FIFO or socket"
        };
        return Err(SecretFileError::NotAFile { path: shown, what });
    }
    if meta.len() > MAX_SECRET_FILE {
        return Err(SecretFileError::TooLarge {
            path: shown,
            size: meta.len(),
        });
    }
    // The file may grow between `metadata` and the read.
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_SECRET_FILE + 1).read_to_end(&mut bytes))
        .map_err(unreadable)?;
    if bytes.len() as u64 > MAX_SECRET_FILE {
        return Err(SecretFileError::TooLarge {
            path: shown,
            size: bytes.len() as u64,
        });
    }
    let mut text = String::from_utf8(bytes).map_err(|_| SecretFileError::NotText {
        path: shown.clone(),
    })?;
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    Ok(text)
}

/// Replaces `${NAME}` and `${NAME:-default}`; `$${` stands for a literal
/// `${` (so shell scripts can keep their own `${var}`). Text that is not a
/// well-formed reference is left alone. Returns the missing name on error.
/// `${file:PATH}` is an error here (see [`expand_with`]).
pub fn expand_env(text: &str, env: EnvLookup<'_>) -> Result<Expanded, String> {
    expand_with(text, env, &mut |path| {
        Err(SecretFileError::Unreadable {
            path: path.to_string(),
            reason: "secret files are not read here".to_string(),
        })
    })
    .map_err(|e| match e {
        ExpandError::Unset(name) => name,
        ExpandError::File(e) => e.to_string(),
    })
}

/// Like [`expand_env`], and `${file:PATH}` is replaced by what `read_file`
/// returns for PATH; its value is a secret like an environment variable's.
pub fn expand_with(
    text: &str,
    env: EnvLookup<'_>,
    read_file: &mut dyn FnMut(&str) -> Result<String, SecretFileError>,
) -> Result<Expanded, ExpandError> {
    let mut out = String::with_capacity(text.len());
    let mut secrets = Vec::new();
    let mut defaulted = Vec::new();
    let mut rest = text;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos..];
        if let Some(tail) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = tail;
            continue;
        }
        if let Some((path, consumed)) = parse_file_reference(after) {
            let value = read_file(path).map_err(ExpandError::File)?;
            out.push_str(&value);
            secrets.push(value);
            rest = &after[consumed..];
            continue;
        }
        match parse_reference(after) {
            Some((name, default, consumed)) => {
                match (env(name), default) {
                    (Some(value), _) => {
                        out.push_str(&value);
                        secrets.push(value);
                    }
                    (None, Some(default)) => {
                        out.push_str(default);
                        defaulted.push(name.to_string());
                    }
                    (None, None) => return Err(ExpandError::Unset(name.to_string())),
                }
                rest = &after[consumed..];
            }
            None => {
                out.push('$');
                rest = &after[1..];
            }
        }
    }
    out.push_str(rest);
    Ok(Expanded {
        text: out,
        secrets,
        defaulted,
    })
}

/// Parses `${file:PATH}` at the start of `s`: (PATH, bytes consumed).
fn parse_file_reference(s: &str) -> Option<(&str, usize)> {
    let body = s.strip_prefix("${file:")?;
    let end = body.find('}')?;
    let path = &body[..end];
    (!path.trim().is_empty()).then_some((path, "${file:".len() + end + 1))
}

/// Parses `${NAME}` or `${NAME:-default}` at the start of `s`:
/// (name, default, bytes consumed).
fn parse_reference(s: &str) -> Option<(&str, Option<&str>, usize)> {
    let body = s.strip_prefix("${")?;
    let end = body.find('}')?;
    let inner = &body[..end];
    let (name, default) = match inner.split_once(":-") {
        Some((name, default)) => (name, Some(default)),
        None => (inner, None),
    };
    let mut chars = name.chars();
    let valid = matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    valid.then_some((name, default, 2 + end + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "TOKEN" => Some("s3cret".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn env_references_are_substituted_and_recorded_as_secrets() {
        let e = expand_env("Bearer ${TOKEN}", &env).unwrap();
        assert_eq!(e.text, "Bearer s3cret");
        assert_eq!(e.secrets, vec!["s3cret".to_string()]);
    }

    #[test]
    fn env_defaults_apply_only_when_unset_and_are_not_secrets() {
        let e = expand_env("${NOPE:-fallback}/${TOKEN:-x}", &env).unwrap();
        assert_eq!(e.text, "fallback/s3cret");
        assert_eq!(e.secrets, vec!["s3cret".to_string()]);
        assert_eq!(e.defaulted, vec!["NOPE".to_string()]);
    }

    #[test]
    fn missing_env_without_default_names_the_variable() {
        assert_eq!(expand_env("a ${MISSING} b", &env), Err("MISSING".into()));
    }

    #[test]
    fn dollar_escapes_and_non_references_are_left_alone() {
        let e = expand_env("echo $${HOME} $5 ${{ x }} $", &env).unwrap();
        assert_eq!(e.text, "echo ${HOME} $5 ${{ x }} $");
    }

    #[test]
    fn names_follow_the_documented_pattern() {
        assert!(is_valid_name("deploy-main"));
        assert!(is_valid_name("v1.2_x"));
        assert!(!is_valid_name("Deploy"));
        assert!(!is_valid_name("-x"));
        assert!(!is_valid_name(""));
    }

    #[test]
    fn did_you_mean_suggests_close_keys_only() {
        let known = ["source", "event", "when", "actions"];
        assert_eq!(did_you_mean("sorce", known.iter().copied()), Some("source"));
        assert_eq!(did_you_mean("wehn", known.iter().copied()), Some("when"));
        assert_eq!(did_you_mean("zzzzzzzz", known.iter().copied()), None);
    }
}

#[cfg(test)]
mod secret_file_tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    /// `${file:…}` as the decoder expands it, relative to `dir`.
    fn expand_in(dir: &std::path::Path, text: &str) -> Result<Expanded, ExpandError> {
        expand_with(text, &no_env, &mut |p| read_secret_file(&dir.join(p)))
    }

    #[test]
    fn a_secret_file_is_read_with_one_trailing_newline_stripped() {
        let dir = tempfile::tempdir().expect("temp");
        std::fs::write(dir.path().join("one"), "s3cret\n").expect("write");
        std::fs::write(dir.path().join("two"), "s3cret\n\n").expect("write");
        std::fs::write(dir.path().join("crlf"), "s3cret\r\n").expect("write");
        let e = expand_in(dir.path(), "Bearer ${file:one}").expect("expands");
        assert_eq!(e.text, "Bearer s3cret");
        assert_eq!(e.secrets, vec!["s3cret".to_string()]);
        let e = expand_in(dir.path(), "${file:two}").expect("expands");
        assert_eq!(e.text, "s3cret\n", "only one newline is stripped");
        let e = expand_in(dir.path(), "${file:crlf}").expect("expands");
        assert_eq!(e.text, "s3cret");
        let abs = format!("${{file:{}}}", dir.path().join("one").display());
        assert_eq!(expand_in(dir.path(), &abs).expect("expands").text, "s3cret");
    }

    #[test]
    fn a_missing_secret_file_is_an_error_naming_its_path() {
        let dir = tempfile::tempdir().expect("temp");
        let err = expand_in(dir.path(), "${file:nope}").expect_err("missing");
        let ExpandError::File(e) = err else {
            panic!("{err:?}")
        };
        let text = e.to_string();
        assert!(text.contains("cannot read the secret file"), "{text}");
        assert!(
            text.contains(&dir.path().join("nope").display().to_string()),
            "{text}"
        );
    }

    #[test]
    fn a_secret_file_over_64_kib_is_an_error() {
        let dir = tempfile::tempdir().expect("temp");
        std::fs::write(dir.path().join("big"), vec![b'a'; 64 * 1024 + 1]).expect("write");
        std::fs::write(dir.path().join("max"), vec![b'a'; 64 * 1024]).expect("write");
        assert!(matches!(
            expand_in(dir.path(), "${file:big}"),
            Err(ExpandError::File(SecretFileError::TooLarge {
                size: 65537,
                ..
            }))
        ));
        assert_eq!(
            expand_in(dir.path(), "${file:max}")
                .expect("64 KiB is allowed")
                .text
                .len(),
            64 * 1024
        );
    }

    #[test]
    fn a_directory_or_fifo_is_not_a_secret_file() {
        let dir = tempfile::tempdir().expect("temp");
        std::fs::create_dir(dir.path().join("sub")).expect("mkdir");
        let err = expand_in(dir.path(), "${file:sub}").expect_err("a directory");
        assert!(
            matches!(
                &err,
                ExpandError::File(SecretFileError::NotAFile {
                    what: "a directory",
                    ..
                })
            ),
            "{err:?}"
        );
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("run mkfifo");
        assert!(made.success());
        // Must not block reading a FIFO nobody writes to.
        let err = expand_in(dir.path(), "${file:fifo}").expect_err("a FIFO");
        let ExpandError::File(e) = err else {
            panic!("{err:?}")
        };
        assert!(e.to_string().contains("is not a regular file"), "{e}");
        assert!(e.to_string().contains("fifo"), "{e}");
    }

    #[test]
    fn a_symlinked_secret_file_is_followed() {
        let dir = tempfile::tempdir().expect("temp");
        std::fs::write(dir.path().join("v1"), "one\n").expect("write");
        std::os::unix::fs::symlink(dir.path().join("v1"), dir.path().join("link"))
            .expect("symlink");
        assert_eq!(
            expand_in(dir.path(), "${file:link}").expect("expands").text,
            "one"
        );
    }

    #[test]
    fn a_load_error_has_the_place_of_the_reference() {
        let dir = tempfile::tempdir().expect("temp");
        std::fs::write(
            dir.path().join("r.yaml"),
            "sources:\n  gh:\n    verify:\n      github: { secret: \"${file:/nonexistent/hookflow-secret}\" }\n",
        )
        .expect("write");
        let err = crate::rules::load_with_env(dir.path(), &no_env).expect_err("missing file");
        let errors: Vec<String> = err.errors().map(ToString::to_string).collect();
        assert!(
            errors.iter().any(|e| e.ends_with(
                "r.yaml:4:25: cannot read the secret file /nonexistent/hookflow-secret: No such file or directory (os error 2)"
            )),
            "{errors:?}"
        );
    }

    #[test]
    fn a_secret_from_a_file_is_redacted_like_an_environment_one() {
        let dir = tempfile::tempdir().expect("temp");
        std::fs::write(dir.path().join("token"), "file-s3cret-value\n").expect("write");
        std::fs::write(
            dir.path().join("r.yaml"),
            "sources:\n  gh:\n    verify:\n      token: { header: X-Token, value: \"${file:token}\" }\nrules:\n  - name: r\n    source: gh\n    actions:\n      - http: { url: \"http://127.0.0.1:9/file-s3cret-value\" }\n",
        )
        .expect("write");
        let set = crate::rules::load_with_env(dir.path(), &no_env).expect("loads");
        assert!(!set.secrets().redact("file-s3cret-value").contains("s3cret"));
        assert_eq!(set.secret_files(), &[dir.path().join("token")]);
    }
}
