//! What the fuzz targets share: the plain-text request format their inputs
//! use, and loading a fixed rule set from text.
//!
//! Inputs are written like an HTTP request without its request line, so the
//! seed corpora are readable and built straight from the SDK-made fixtures:
//!
//! ```text
//! Content-Type: application/json
//! X-GitHub-Event: push
//!
//! {"ref": "refs/heads/main"}
//! ```
//!
//! Header lines up to the first empty line, then the body. An input without
//! an empty line is all body. Header values are bytes (hostile ones too); a
//! line without `:` is skipped.

use std::path::PathBuf;

use hookflow::rules::RuleSet;

/// A request as the fuzz targets see it.
#[derive(Debug, Default)]
pub struct Request<'a> {
    /// Header names as written and values as raw bytes, in order.
    pub headers: Vec<(&'a [u8], &'a [u8])>,
    pub body: &'a [u8],
}

impl<'a> Request<'a> {
    /// Splits `data` into header lines and a body (see the module docs).
    pub fn parse(data: &'a [u8]) -> Request<'a> {
        let Some(split) = find(data, b"\n\n") else {
            return Request {
                headers: Vec::new(),
                body: data,
            };
        };
        let headers = data[..split]
            .split(|&b| b == b'\n')
            .filter_map(|line| {
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                let colon = line.iter().position(|&b| b == b':')?;
                let value = &line[colon + 1..];
                let value = value.strip_prefix(b" ").unwrap_or(value);
                Some((&line[..colon], value))
            })
            .collect();
        Request {
            headers,
            body: &data[split + 2..],
        }
    }

    /// Headers as the server stores them: lower-case names, values as text
    /// (the server keeps only headers whose values are visible text).
    pub fn text_headers(&self) -> Vec<(String, String)> {
        self.headers
            .iter()
            .filter_map(|(name, value)| {
                let name = http::HeaderName::from_bytes(name).ok()?;
                let value = http::HeaderValue::from_bytes(value).ok()?;
                Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned()))
            })
            .collect()
    }

    /// Headers as a verifier sees them; invalid names or values are dropped,
    /// as hyper would refuse them before any handler runs.
    pub fn header_map(&self) -> http::HeaderMap {
        let mut map = http::HeaderMap::new();
        for (name, value) in &self.headers {
            if let (Ok(name), Ok(value)) = (
                http::HeaderName::from_bytes(name),
                http::HeaderValue::from_bytes(value),
            ) {
                map.append(name, value);
            }
        }
        map
    }

    /// The first header named `name` (ASCII case-insensitive), as text.
    pub fn header(&self, name: &str) -> Option<&'a str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A private directory for this fuzzing process (one per target process).
pub fn scratch_dir(what: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hookflow-fuzz-{what}-{}", std::process::id()));
    if let Err(e) = std::fs::create_dir_all(&dir) {
        panic!("cannot create {}: {e}", dir.display());
    }
    dir
}

/// Loads a fixed rule set written in the target's source. Any `${NAME}`
/// reads `value-of-NAME`. Panics if it does not load: that is a bug in the
/// target, not a finding.
pub fn fixed_rules(what: &str, yaml: &str) -> RuleSet {
    let dir = scratch_dir(what);
    if let Err(e) = std::fs::write(dir.join("rules.yaml"), yaml) {
        panic!("cannot write the fixed rules: {e}");
    }
    let env = |name: &str| Some(format!("value-of-{name}"));
    match hookflow::rules::load_with_env(&dir, &env) {
        Ok(set) => set,
        Err(e) => panic!(
            "the fixed rules of {what} do not load: {:#?}",
            e.diagnostics
        ),
    }
}
