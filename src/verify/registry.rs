//! The registry of senders: the one place that lists them. A sender is
//! its own `verify/<scheme>.rs` (verification, signing, event and dedupe
//! defaults, its validated `Config` and the decoding of its `verify:`
//! settings with their documented keys) plus one line in [`senders!`]'s
//! list below, which makes its [`VerifierConfig`] variant, its arm in
//! [`build`] and its entry in [`SENDERS`]. The rule loader finds a sender
//! by name here and reads its settings through [`Reader`]; nothing outside
//! `verify/` names a sender.

use std::time::Duration;

use super::{BuildError, Scheme, Secret};
use crate::keys::Key;

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

/// Makes, from one line per sender (`Variant => module`): the
/// [`VerifierConfig`] enum over the senders' own `Config`s, [`SENDERS`] and
/// [`build`].
macro_rules! senders {
    ($($variant:ident => $module:ident,)*) => {
        /// A source's validated `verify:` block: one sender's `Config`.
        /// Every list of secrets is non-empty; several secrets allow
        /// rotation without downtime (any may match).
        #[derive(Debug, Clone, PartialEq)]
        pub enum VerifierConfig {
            $($variant(super::$module::Config),)*
        }

        /// Every sender, in the order `hookflow check` lists them.
        pub static SENDERS: &[Sender] = &[$(super::$module::SENDER,)*];

        /// Builds the scheme a source's `verify:` block describes.
        pub fn build(config: &VerifierConfig) -> Result<Box<dyn Scheme>, BuildError> {
            match config {
                $(VerifierConfig::$variant(config) => config.build(),)*
            }
        }
    };
}

// The registry: one line per sender.
senders! {
    Github => github,
    Stripe => stripe,
    Slack => slack,
    Standard => standard,
    Shopify => shopify,
    Twilio => twilio,
    Gitlab => gitlab,
    Hmac => hmac,
    Token => token,
    Basic => basic,
}
