//! Sender verification: one file per scheme behind the small [`Verify`] trait.
//!
//! A verifier sees the raw request (method, headers, raw query, raw body
//! bytes) and an injected clock, and answers `Ok` or a [`VerifyError`] whose
//! text is what the sender gets back in the 401 body.
//!
//! `registry.rs` lists the senders: [`SENDERS`] (each one's name, documented
//! keys and settings decoder, found by the rule loader with [`sender`]) and
//! [`build`], which turns a validated [`VerifierConfig`] into a verifier
//! once, at load time, so bad secrets are load errors rather than 401s;
//! [`sign`] is the sender's side of every scheme (for `hookflow send` and
//! round-trip tests). `mac.rs` holds the HMAC, comparison and header helpers
//! the schemes share.

use std::fmt;

pub mod basic;
pub mod github;
pub mod gitlab;
pub mod hmac;
mod mac;
mod registry;
pub mod shopify;
mod sign;
pub mod slack;
pub mod standard;
pub mod stripe;
#[cfg(test)]
mod testing;
pub mod token;
pub mod twilio;

pub use registry::{Reader, SENDERS, Sender, VerifierConfig, build, sender};
pub use sign::{SignError, Signed, sign};

/// A configured secret. Never printed: `Debug` and `Display` show `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret's text, for computing a MAC. Do not log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// The request as a verifier sees it. Everything is raw: signatures are over
/// bytes exactly as received.
#[derive(Debug, Clone, Copy)]
pub struct Incoming<'a> {
    pub method: &'a str,
    pub headers: &'a http::HeaderMap,
    /// The raw query string without the leading `?`, if any.
    pub query: Option<&'a str>,
    pub body: &'a [u8],
    /// Unix seconds: injected so tests can use the vectors' clocks.
    pub now: i64,
}

/// Why a request was refused. `Display` is the text of the 401 body's `error`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("missing header {0}")]
    MissingHeader(String),
    #[error("signature mismatch")]
    Mismatch,
    #[error("timestamp outside tolerance")]
    TimestampOutsideTolerance,
}

/// Hash used by the generic `hmac` verifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HmacAlgorithm {
    Sha1,
    Sha256,
    Sha512,
}

/// How the generic `hmac` verifier's signature is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Hex,
    Base64,
}

/// Where a `token` verifier finds the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenLocation {
    Header(String),
    Query(String),
}

/// One verification scheme.
pub trait Verify: Send + Sync + fmt::Debug {
    fn verify(&self, req: &Incoming<'_>) -> Result<(), VerifyError>;
}

/// Everything hookflow knows about one kind of sender, in its own file:
/// how to check a request ([`Verify`]), how to sign one like the sender
/// (`hookflow send`), how it names a delivery's event and marks a resend
/// (SPEC §2.1), and a handshake it expects answered. Only `name` and `sign`
/// are required; a generic scheme (hmac, token, basic) keeps the defaults,
/// and the source's `event:` / `dedupe:` settings decide instead.
pub trait Scheme: Verify {
    /// The scheme's name as written in a `verify:` block.
    fn name(&self) -> &'static str;

    /// The headers a genuine sender adds for `body` at unix time `now`;
    /// a scheme that signs through the URL changes `url` too.
    fn sign(&self, body: &[u8], now: i64, url: &mut String) -> Vec<(String, String)>;

    /// The delivery's event name, where this sender gives one.
    fn event(&self, _delivery: &Delivered<'_>) -> Option<String> {
        None
    }

    /// The key that recognises a resend of the same delivery.
    fn dedupe_key(&self, _delivery: &Delivered<'_>) -> Option<String> {
        None
    }

    /// What `hookflow send` adds besides the signature, as the sender does:
    /// the event name where it travels in a header, a fresh delivery id.
    fn sender_headers(&self, _event: Option<&str>, _id: &str) -> Vec<(String, String)> {
        Vec::new()
    }

    /// A request header that carries the credential itself (not a MAC of
    /// the body), masked as `***` in the run log.
    fn credential_header(&self) -> Option<&str> {
        None
    }

    /// A verified request the sender expects hookflow itself to answer
    /// instead of treating it as a delivery: the 200 body (text/plain).
    fn handshake(&self, _payload: &serde_json::Value) -> Option<String> {
        None
    }

    /// The top-level members of a JSON body that [`event`](Self::event),
    /// [`dedupe_key`](Self::dedupe_key) and [`handshake`](Self::handshake)
    /// read (`None`: any of them). A source's receiving path builds only
    /// the members something reads (`rules::payload`), so a scheme that
    /// reads a member it does not list here would see it missing. Required,
    /// so that a new scheme has to say.
    fn payload_members(&self) -> Option<&'static [&'static str]>;
}

/// A verified, parsed delivery as a [`Scheme`] reads it.
#[derive(Debug, Clone, Copy)]
pub struct Delivered<'a> {
    /// Request headers in arrival order (names in any case).
    pub headers: &'a [(String, String)],
    pub payload: &'a serde_json::Value,
}

impl Delivered<'_> {
    /// A header's value, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    }

    /// A string of the body at a JSON pointer (`/event/type`).
    pub fn string_at(&self, pointer: &str) -> Option<String> {
        self.payload
            .pointer(pointer)
            .and_then(serde_json::Value::as_str)
            .map(str::to_string)
    }
}

/// Why a `verify:` block cannot be turned into a verifier. Messages name the
/// verifier and the secret's position, never the secret itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    #[error("the {kind} verifier needs at least one secret")]
    NoSecrets { kind: &'static str },
    #[error("{kind} secret #{position} is empty")]
    EmptySecret { kind: &'static str, position: usize },
    #[error(
        "{kind} secret #{position} is not valid: a Standard Webhooks secret is `whsec_` followed by base64, copy it whole from the sender"
    )]
    InvalidSecret { kind: &'static str, position: usize },
    #[error("{kind}: `{header}` is not a valid HTTP header name")]
    InvalidHeaderName { kind: &'static str, header: String },
    #[error("{kind}: the {what} must not be empty")]
    Empty {
        kind: &'static str,
        what: &'static str,
    },
    #[error(
        "twilio: public_url must be an absolute http:// or https:// URL without a query string (the request's query is appended to it)"
    )]
    InvalidPublicUrl,
}

/// Checks a configured header name once, at build time, so a typo is a load
/// error instead of every request failing with "missing header".
/// Returns the name as written, which error messages then echo.
fn header_name(kind: &'static str, header: &str) -> Result<String, BuildError> {
    match http::HeaderName::from_bytes(header.as_bytes()) {
        Ok(_) => Ok(header.to_owned()),
        Err(_) => Err(BuildError::InvalidHeaderName {
            kind,
            header: header.to_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::testing::Req;
    use super::*;

    fn secrets(values: &[&str]) -> Vec<Secret> {
        values.iter().map(|s| Secret::new(*s)).collect()
    }

    fn every_kind() -> Vec<VerifierConfig> {
        let five_min = Duration::from_secs(300);
        vec![
            VerifierConfig::Github(crate::verify::github::Config {
                secrets: secrets(&["s"]),
                allow_sha1: true,
            }),
            VerifierConfig::Stripe(crate::verify::stripe::Config {
                secrets: secrets(&["whsec_s"]),
                tolerance: five_min,
            }),
            VerifierConfig::Slack(crate::verify::slack::Config {
                secrets: secrets(&["s"]),
                tolerance: five_min,
            }),
            VerifierConfig::Standard(crate::verify::standard::Config {
                secrets: secrets(&["whsec_c2VjcmV0"]),
                tolerance: five_min,
            }),
            VerifierConfig::Shopify(crate::verify::shopify::Config {
                secrets: secrets(&["s"]),
            }),
            VerifierConfig::Twilio(crate::verify::twilio::Config {
                secrets: secrets(&["s"]),
                public_url: "https://h/t".into(),
            }),
            VerifierConfig::Gitlab(crate::verify::gitlab::Config {
                tokens: secrets(&["s"]),
            }),
            VerifierConfig::Hmac(crate::verify::hmac::Config {
                header: "X-Sig".into(),
                algorithm: HmacAlgorithm::Sha512,
                encoding: Encoding::Hex,
                prefix: "sha512=".into(),
                secrets: secrets(&["s"]),
            }),
            VerifierConfig::Token(crate::verify::token::Config {
                location: TokenLocation::Query("t".into()),
                values: secrets(&["s"]),
            }),
            VerifierConfig::Basic(crate::verify::basic::Config {
                username: "u".into(),
                passwords: secrets(&["p"]),
            }),
        ]
    }

    #[test]
    fn kind_names_are_the_yaml_keys() {
        let kinds: Vec<_> = every_kind()
            .iter()
            .map(|c| build(c).expect("builds").name())
            .collect();
        assert_eq!(
            kinds,
            [
                "github", "stripe", "slack", "standard", "shopify", "twilio", "gitlab", "hmac",
                "token", "basic"
            ]
        );
    }

    #[test]
    fn the_registry_names_each_sender_as_its_scheme_does() {
        let registered: Vec<_> = SENDERS.iter().map(|s| s.name).collect();
        let built: Vec<_> = every_kind()
            .iter()
            .map(|c| build(c).expect("builds").name())
            .collect();
        assert_eq!(registered, built);
        for s in SENDERS {
            assert_eq!(sender(s.name).map(|found| found.about), Some(s.about));
        }
        assert!(sender("gihub").is_none());
    }

    #[test]
    fn every_verifier_refuses_hostile_headers_without_panicking() {
        let names = [
            "X-Hub-Signature-256",
            "X-Hub-Signature",
            "Stripe-Signature",
            "X-Slack-Signature",
            "X-Slack-Request-Timestamp",
            "webhook-id",
            "webhook-timestamp",
            "webhook-signature",
            "X-Shopify-Hmac-Sha256",
            "X-Twilio-Signature",
            "X-Twilio-Webhooks-Signature-Settings",
            "X-Gitlab-Token",
            "X-Sig",
            "Authorization",
        ];
        let values: [&[u8]; 9] = [
            b"",
            b"=",
            b",,,=,",
            b"t=-9223372036854775808,v1=",
            b"v0=\xff\xfe",
            b"sha256=\xc3\xa9",
            b"Basic \xff",
            b"9223372036854775807",
            b"v1,\x80 v1a, ,",
        ];
        for config in every_kind() {
            for value in values {
                let mut req = Req::post(b"\xff\x00{", 0).query("bodySHA256=%ZZ&t=%FF");
                for name in names {
                    req.headers.append(
                        http::HeaderName::from_bytes(name.as_bytes()).expect("name"),
                        http::HeaderValue::from_bytes(value).expect("value"),
                    );
                }
                assert!(
                    req.verify(&config).is_err(),
                    "{config:?} accepted {value:?}"
                );
            }
        }
    }
}
