//! Decoding the `sources:` map: paths, verifiers, IP allowlists, rate limits,
//! event and dedupe extraction, and the source's own response.

use std::time::Duration;

use super::{Decoder, DefaultedSecret, Diagnostic, Fields, Severity};
use crate::rules::model::{Extract, RateLimit, ResponseSpec, Source};
use crate::rules::node::{Kind, Node, key_text};
use crate::verify::{Reader, SENDERS, Secret, Sender, VerifierConfig};

pub(crate) const SOURCE_KEYS: &[&str] = &[
    "path",
    "methods",
    "verify",
    "allow_ips",
    "rate_limit",
    "max_body",
    "event",
    "dedupe",
    "response",
    "schema",
    "schema_file",
];
/// The keys of a source's `event:` and `dedupe:`.
pub(crate) const EXTRACT_KEYS: &[&str] = &["header", "path"];
/// The keys of a source's `response:`.
pub(crate) const RESPONSE_KEYS: &[&str] = &["status", "headers", "body"];

/// The largest `max_body` a source (or the server, `config.rs`) may set.
///
/// A body is buffered whole: the signature covers every byte, so nothing
/// can be acted on before the last one arrived; it is then parsed into a
/// JSON tree (several times its size) and written into SQLite in the
/// delivery's transaction. At 1 GiB a handful of concurrent senders is
/// enough to exhaust memory. 64 MiB is well above what real senders post
/// (GitHub caps payloads at 25 MB, Stripe and Slack send kilobytes) and
/// keeps the worst case of a few concurrent large bodies in the hundreds
/// of megabytes.
pub const MAX_BODY_CAP: u64 = 64 * 1024 * 1024;

impl Decoder<'_> {
    pub fn source(&mut self, name: String, node: &Node) -> Option<Source> {
        let loc = self.loc(node);
        let empty = Node {
            line: node.line,
            column: node.column,
            kind: Kind::Map(Vec::new()),
        };
        // `github: {}` and a bare `github:` both mean "all defaults".
        let node = if matches!(node.kind, Kind::Null) {
            &empty
        } else {
            node
        };
        let mut f = self.map(node, &format!("source `{name}` (a mapping)"))?;
        let mut ok = true;
        let path = match f.get("path") {
            Some(n) => match self.string(n) {
                Some(p) if p.starts_with('/') => p,
                Some(p) => {
                    self.error(n, format!("source path {p:?} must start with '/'"));
                    ok = false;
                    String::new()
                }
                None => {
                    ok = false;
                    String::new()
                }
            },
            None => format!("/hooks/{name}"),
        };
        let methods = match f.get("methods") {
            Some(n) => self.methods(n).unwrap_or_else(|| {
                ok = false;
                Vec::new()
            }),
            None => vec!["POST".to_string()],
        };
        let mut verifier = None;
        let defaulted_before = self.defaulted_secrets.len();
        let verify = f.get("verify").and_then(|n| {
            let config = self.verifier(n);
            ok &= config.is_some();
            // Built once now, so a bad secret or header name is a load
            // error, not a surprise on the first request.
            match crate::verify::build(config.as_ref()?) {
                Ok(built) => verifier = Some(std::sync::Arc::from(built)),
                Err(e) => {
                    self.error(n, e.to_string());
                    ok = false;
                }
            }
            config
        });
        self.name_defaulted_secrets(defaulted_before, &name);
        let mut allow_ips = Vec::new();
        if let Some(n) = f.get("allow_ips") {
            for text in self.string_list(n).unwrap_or_default() {
                match self.net(n, &text) {
                    Some(net) => allow_ips.push(net),
                    None => ok = false,
                }
            }
        }
        let rate_limit = f.get("rate_limit").and_then(|n| {
            let r = self.rate_limit(n);
            ok &= r.is_some();
            r
        });
        let max_body = f.get("max_body").and_then(|n| {
            let r = self.byte_size(n).filter(|&size| {
                let fits = size <= MAX_BODY_CAP;
                if !fits {
                    self.error(
                        n,
                        format!(
                            "`max_body` of {size} bytes is above the cap of {MAX_BODY_CAP} bytes (64MiB): a body is held in memory whole while it is verified and stored"
                        ),
                    );
                }
                fits
            });
            ok &= r.is_some();
            r
        });
        let event = f.get("event").and_then(|n| {
            let r = self.extract(n, "event");
            ok &= r.is_some();
            r
        });
        let dedupe = f.get("dedupe").and_then(|n| {
            let r = self.extract(n, "dedupe");
            ok &= r.is_some();
            r
        });
        let response = f.get("response").and_then(|n| {
            let r = self.response(n);
            ok &= r.is_some();
            r
        });
        let schema = self
            .payload_schema(f.get("schema"), f.get("schema_file"))
            .unwrap_or_else(|| {
                ok = false;
                None
            });
        f.finish(self, &format!("source `{name}`"), SOURCE_KEYS);
        if verify.is_none() && ok {
            self.warning(
                node,
                format!("source `{name}` has no `verify:` block: anyone who knows {path} can trigger its rules"),
            );
        }
        ok.then_some(Source {
            name,
            loc,
            path,
            methods,
            verify,
            verifier,
            allow_ips,
            rate_limit,
            max_body,
            event,
            dedupe,
            response,
            schema,
        })
    }

    fn methods(&mut self, node: &Node) -> Option<Vec<String>> {
        let list = self.string_list(node)?;
        let mut out = Vec::with_capacity(list.len());
        for m in list {
            let upper = m.to_ascii_uppercase();
            if !matches!(upper.as_str(), "GET" | "POST" | "PUT" | "PATCH" | "DELETE") {
                self.error(
                    node,
                    format!("unsupported method {m:?} (use GET, POST, PUT, PATCH or DELETE)"),
                );
                return None;
            }
            out.push(upper);
        }
        Some(out)
    }

    fn verifier(&mut self, node: &Node) -> Option<VerifierConfig> {
        let Kind::Map(entries) = &node.kind else {
            self.expected(
                node,
                "a verifier, e.g. `github: { secret: \"${GITHUB_WEBHOOK_SECRET}\" }`",
            );
            return None;
        };
        let [(kind_node, config)] = entries.as_slice() else {
            self.error(
                node,
                format!(
                    "`verify` takes exactly one verifier, found {}",
                    entries.len()
                ),
            );
            return None;
        };
        let kind = key_text(kind_node);
        let Some(sender) = crate::verify::sender(&kind) else {
            let names = SENDERS.iter().map(|s| s.name);
            let hint = super::did_you_mean(&kind, names.clone())
                .map(|h| format!(" (did you mean `{h}`?)"))
                .unwrap_or_else(|| {
                    format!(
                        "; expected one of: {}",
                        names.collect::<Vec<_>>().join(", ")
                    )
                });
            self.error(kind_node, format!("unknown verifier `{kind}`{hint}"));
            return None;
        };
        let fields = self.map(
            config,
            &format!("the `{kind}` verifier's settings (a mapping)"),
        )?;
        let mut reader = SenderReader {
            dec: self,
            fields,
            what: format!("verifier `{kind}`"),
            sender,
        };
        let config = (sender.decode)(&mut reader);
        let SenderReader { fields, what, .. } = reader;
        let known: Vec<&str> = sender.keys.iter().map(|k| k.name).collect();
        fields.finish(self, &what, &known);
        config
    }

    /// Warns about the secrets recorded since `from` that came from a
    /// default, and names their source.
    fn name_defaulted_secrets(&mut self, from: usize, source: &str) {
        let found: Vec<DefaultedSecret> = self.defaulted_secrets[from..]
            .iter_mut()
            .map(|d| {
                d.source = source.to_string();
                d.clone()
            })
            .collect();
        for d in found {
            let variable = &d.variable;
            self.diagnostics.push(Diagnostic {
                loc: d.loc.clone(),
                severity: Severity::Warning,
                message: format!(
                    "the verifier secret of source `{source}` is the default written here, because {variable} is not set: anyone who can read this file can sign requests; set {variable} (`serve` refuses to start with a defaulted secret unless run with --dev)"
                ),
            });
        }
    }

    /// A required secret, or a list of them for rotation. A value that came
    /// from a `${NAME:-default}` default is recorded in `defaulted_secrets`.
    fn secrets(&mut self, f: &mut Fields<'_>, key: &str, what: &str) -> Option<Vec<Secret>> {
        let node = f.require(self, key, what)?;
        self.track_defaults();
        let values = self.string_list(node);
        for variable in self.defaults_used() {
            let loc = self.loc(node);
            self.defaulted_secrets.push(DefaultedSecret {
                variable,
                source: String::new(),
                loc,
            });
        }
        let values = values?;
        if values.is_empty() || values.iter().any(String::is_empty) {
            self.error(node, format!("`{key}` of {what} must not be empty"));
            return None;
        }
        Some(values.into_iter().map(Secret::new).collect())
    }

    fn rate_limit(&mut self, node: &Node) -> Option<RateLimit> {
        let text = self.string(node)?;
        let parsed = text.split_once('/').and_then(|(count, per)| {
            let count: u32 = count.trim().parse().ok().filter(|c| *c > 0)?;
            let per = match per.trim() {
                "s" | "sec" | "second" => Duration::from_secs(1),
                "m" | "min" | "minute" => Duration::from_secs(60),
                "h" | "hour" => Duration::from_secs(3600),
                other => humantime::parse_duration(other)
                    .ok()
                    .filter(|d| !d.is_zero())?,
            };
            Some(RateLimit { count, per })
        });
        if parsed.is_none() {
            self.error(
                node,
                format!("invalid rate limit {text:?}: write e.g. 50/s, 600/m or 10/30s"),
            );
        }
        parsed
    }

    /// A size in bytes: a number, or text such as `512KiB`, `1MiB`, `2MB`.
    pub fn byte_size(&mut self, node: &Node) -> Option<u64> {
        if let Kind::Number(n) = &node.kind
            && let Some(v) = n.as_u64()
        {
            return Some(v);
        }
        let text = self.string(node)?;
        let size = parse_byte_size(&text);
        if size.is_none() {
            self.error(
                node,
                format!("invalid size {text:?}: write e.g. 1048576, 512KiB or 1MiB"),
            );
        }
        size
    }

    fn extract(&mut self, node: &Node, what: &str) -> Option<Extract> {
        let mut f = self.map(
            node,
            &format!("`{what}: {{header: …}}` or `{what}: {{path: …}}`"),
        )?;
        let result = match (f.get("header"), f.get("path")) {
            (Some(h), None) => self.string(h).map(Extract::Header),
            (None, Some(p)) => {
                let src = self.string(p)?;
                match crate::rules::jsonpath::parse(&src) {
                    Ok(path) => Some(Extract::Path(path, src)),
                    Err(e) => {
                        self.error(
                            p,
                            format!(
                                "invalid JSONPath {src:?}: {} at character {}",
                                e.message, e.position
                            ),
                        );
                        None
                    }
                }
            }
            _ => {
                self.error(
                    node,
                    format!("`{what}` needs exactly one of `header` or `path`"),
                );
                None
            }
        };
        f.finish(self, &format!("`{what}`"), EXTRACT_KEYS);
        result
    }

    fn response(&mut self, node: &Node) -> Option<ResponseSpec> {
        let mut f = self.map(node, "`response` (a mapping with status, headers, body)")?;
        let status = match f.get("status") {
            Some(n) => match self.u32(n) {
                Some(s) if (200..=299).contains(&s) => u16::try_from(s).ok(),
                Some(s) => {
                    self.error(n, format!("response status {s} must be a 2xx status"));
                    None
                }
                None => None,
            },
            None => Some(200),
        };
        let headers = f
            .get("headers")
            .map(|n| self.template_map(n))
            .unwrap_or(Some(Vec::new()));
        let body = match f.get("body") {
            Some(n) => self.template(n).map(Some),
            None => Some(None),
        };
        f.finish(self, "`response`", RESPONSE_KEYS);
        Some(ResponseSpec {
            status: status?,
            headers: headers?,
            body: body?,
        })
    }
}

/// A sender's `verify:` settings as it reads them: each problem is reported
/// at its place, and the keys it reads are marked as known.
struct SenderReader<'d, 'a, 'n> {
    dec: &'d mut Decoder<'a>,
    fields: Fields<'n>,
    /// `verifier `github``, for messages.
    what: String,
    sender: &'static Sender,
}

impl<'n> SenderReader<'_, '_, 'n> {
    /// The value of `key`. A sender reads only the keys it documents, so
    /// that the editor schema and docs/REFERENCE.md list every one.
    fn get(&mut self, key: &str) -> Option<&'n Node> {
        debug_assert!(
            self.sender.keys.iter().any(|k| k.name == key),
            "the {} sender reads `{key}`, which its `keys` do not list",
            self.sender.name
        );
        self.fields.get(key)
    }
}

impl Reader for SenderReader<'_, '_, '_> {
    fn has(&mut self, key: &str) -> bool {
        self.get(key).is_some()
    }

    fn secrets(&mut self, key: &str) -> Option<Vec<Secret>> {
        self.get(key);
        self.dec.secrets(&mut self.fields, key, &self.what)
    }

    fn required(&mut self, key: &str) -> Option<String> {
        self.get(key);
        let node = self.fields.require(self.dec, key, &self.what)?;
        self.dec.string(node)
    }

    fn text(&mut self, key: &str) -> Option<Option<String>> {
        match self.get(key) {
            Some(n) => self.dec.string(n).map(Some),
            None => Some(None),
        }
    }

    fn bool(&mut self, key: &str, default: bool) -> Option<bool> {
        match self.get(key) {
            Some(n) => self.dec.bool(n),
            None => Some(default),
        }
    }

    fn duration(&mut self, key: &str, default: Duration) -> Option<Duration> {
        match self.get(key) {
            Some(n) => self.dec.duration(n),
            None => Some(default),
        }
    }

    fn invalid(&mut self, key: &str, message: String) {
        match self.get(key) {
            Some(n) => self.dec.error(n, message),
            None => self.error(message),
        }
    }

    fn error(&mut self, message: String) {
        self.dec.error(self.fields.node, message);
    }
}

pub fn parse_byte_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let n: u64 = digits.parse().ok()?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1000,
        "kib" | "k" => 1024,
        "mb" => 1_000_000,
        "mib" | "m" => 1024 * 1024,
        "gb" => 1_000_000_000,
        "gib" | "g" => 1024 * 1024 * 1024,
        _ => return None,
    };
    n.checked_mul(factor)
}

#[cfg(test)]
mod tests {
    use super::parse_byte_size;

    #[test]
    fn byte_sizes_accept_si_and_binary_units() {
        assert_eq!(parse_byte_size("1MiB"), Some(1_048_576));
        assert_eq!(parse_byte_size("512 KiB"), Some(524_288));
        assert_eq!(parse_byte_size("2MB"), Some(2_000_000));
        assert_eq!(parse_byte_size("100"), Some(100));
        assert_eq!(parse_byte_size("1 parsec"), None);
        assert_eq!(parse_byte_size("MiB"), None);
    }
}
