//! The registry of senders: the one place that lists them. A sender is
//! its own `verify/<scheme>.rs` (verification, signing, event and dedupe
//! defaults, and the decoding of its `verify:` settings with their
//! documented keys) plus a line here: a [`VerifierConfig`] variant, its
//! arm in [`build`] (the compiler checks that every variant has one) and
//! its entry in [`SENDERS`]. The rule loader finds a sender by name here
//! and reads its settings through [`Reader`]; nothing outside `verify/`
//! names a sender.

use std::time::Duration;

use super::{BuildError, Encoding, HmacAlgorithm, Scheme, Secret, TokenLocation};
use crate::keys::Key;

/// Every sender, in the order `hookflow check` lists them.
pub static SENDERS: &[Sender] = &[
    super::github::SENDER,
    super::stripe::SENDER,
    super::slack::SENDER,
    super::standard::SENDER,
    super::shopify::SENDER,
    super::twilio::SENDER,
    super::gitlab::SENDER,
    super::hmac::SENDER,
    super::token::SENDER,
    super::basic::SENDER,
];

/// The timestamp tolerance of the schemes that sign one (`5m`).
pub(crate) const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);

/// One kind of sender as a `verify:` block names it.
#[derive(Debug, Clone, Copy)]
pub struct Sender {
    /// The key in a `verify:` block (`github`).
    pub name: &'static str,
    /// One line saying what it checks.
    pub about: &'static str,
    /// Its settings' keys, in the order error messages list them.
    pub keys: &'static [Key],
    /// Reads its settings; `None` once the reader has reported a problem.
    pub decode: fn(&mut dyn Reader) -> Option<VerifierConfig>,
}

/// The sender a `verify:` block names, if there is one.
pub fn sender(name: &str) -> Option<&'static Sender> {
    SENDERS.iter().find(|s| s.name == name)
}

/// How a sender reads its `verify:` settings. The rule loader implements it
/// over the YAML and reports every problem at its `file:line:column`, so a
/// sender's `decode` reads every key before it gives up (all problems show
/// at once) and only names keys from its own `keys`.
pub trait Reader {
    /// Whether `key` is given.
    fn has(&mut self, key: &str) -> bool;
    /// A required secret, or a list of them (rotation); none may be empty.
    fn secrets(&mut self, key: &str) -> Option<Vec<Secret>>;
    /// A required text.
    fn required(&mut self, key: &str) -> Option<String>;
    /// An optional text: `Some(None)` when absent.
    fn text(&mut self, key: &str) -> Option<Option<String>>;
    fn bool(&mut self, key: &str, default: bool) -> Option<bool>;
    fn duration(&mut self, key: &str, default: Duration) -> Option<Duration>;
    /// Reports a problem with the value of `key`.
    fn invalid(&mut self, key: &str, message: String);
    /// Reports a problem with the settings as a whole.
    fn error(&mut self, message: String);
}

/// A source's validated `verify:` block. Every list of secrets is non-empty;
/// several secrets allow rotation without downtime (any may match).
#[derive(Debug, Clone, PartialEq)]
pub enum VerifierConfig {
    Github {
        secrets: Vec<Secret>,
        allow_sha1: bool,
    },
    Stripe {
        secrets: Vec<Secret>,
        tolerance: Duration,
    },
    Slack {
        secrets: Vec<Secret>,
        tolerance: Duration,
    },
    Standard {
        secrets: Vec<Secret>,
        tolerance: Duration,
    },
    Shopify {
        secrets: Vec<Secret>,
    },
    Twilio {
        secrets: Vec<Secret>,
        /// The URL Twilio was given, without its query string.
        public_url: String,
    },
    Gitlab {
        tokens: Vec<Secret>,
    },
    Hmac {
        header: String,
        algorithm: HmacAlgorithm,
        encoding: Encoding,
        prefix: String,
        secrets: Vec<Secret>,
    },
    Token {
        location: TokenLocation,
        values: Vec<Secret>,
    },
    Basic {
        username: String,
        passwords: Vec<Secret>,
    },
}

/// Builds the scheme a source's `verify:` block describes: the registry of
/// senders, one arm each.
pub fn build(config: &VerifierConfig) -> Result<Box<dyn Scheme>, BuildError> {
    Ok(match config {
        VerifierConfig::Github {
            secrets,
            allow_sha1,
        } => Box::new(super::github::Github::new(secrets, *allow_sha1)?),
        VerifierConfig::Stripe { secrets, tolerance } => {
            Box::new(super::stripe::Stripe::new(secrets, *tolerance)?)
        }
        VerifierConfig::Slack { secrets, tolerance } => {
            Box::new(super::slack::Slack::new(secrets, *tolerance)?)
        }
        VerifierConfig::Standard { secrets, tolerance } => {
            Box::new(super::standard::Standard::new(secrets, *tolerance)?)
        }
        VerifierConfig::Shopify { secrets } => Box::new(super::shopify::Shopify::new(secrets)?),
        VerifierConfig::Twilio {
            secrets,
            public_url,
        } => Box::new(super::twilio::Twilio::new(secrets, public_url)?),
        VerifierConfig::Gitlab { tokens } => Box::new(super::gitlab::Gitlab::new(tokens)?),
        VerifierConfig::Hmac {
            header,
            algorithm,
            encoding,
            prefix,
            secrets,
        } => Box::new(super::hmac::GenericHmac::new(
            header, *algorithm, *encoding, prefix, secrets,
        )?),
        VerifierConfig::Token { location, values } => {
            Box::new(super::token::Token::new(location, values)?)
        }
        VerifierConfig::Basic {
            username,
            passwords,
        } => Box::new(super::basic::Basic::new(username, passwords)?),
    })
}
