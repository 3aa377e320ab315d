//! GitLab: `X-Gitlab-Token` must equal a configured token, byte for byte, in
//! constant time. There is no HMAC: the body has no integrity protection, so
//! this only proves the sender knows the token.

use super::mac::{Keys, header};
use super::{BuildError, Delivered, Incoming, Scheme, Secret, Verify, VerifyError};
use super::{Reader, Sender, VerifierConfig};
use crate::keys::{Key, Ty};

/// The validated settings of a `gitlab:` block (what `decode` reads).
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub tokens: Vec<Secret>,
}

impl Config {
    /// The verifier these settings describe.
    pub(super) fn build(&self) -> Result<Box<dyn Scheme>, BuildError> {
        Ok(Box::new(Gitlab::new(&self.tokens)?))
    }
}

/// The `gitlab:` entry of a `verify:` block.
pub(super) const SENDER: Sender = Sender {
    name: "gitlab",
    about: "GitLab: `X-Gitlab-Token` equals the token",
    keys: &[Key::required(
        "token",
        Ty::Secrets,
        "the webhook's secret token, as set in GitLab",
    )],
    decode,
};

fn decode(r: &mut dyn Reader) -> Option<VerifierConfig> {
    let tokens = r.secrets("token");
    Some(VerifierConfig::Gitlab(crate::verify::gitlab::Config {
        tokens: tokens?,
    }))
}

const HEADER: &str = "X-Gitlab-Token";

#[derive(Debug)]
pub(crate) struct Gitlab {
    tokens: Keys,
}

impl Gitlab {
    pub(crate) fn new(tokens: &[Secret]) -> Result<Self, BuildError> {
        Ok(Gitlab {
            tokens: Keys::utf8("gitlab", tokens)?,
        })
    }

    pub(crate) fn sign(&self) -> Vec<(String, String)> {
        let token = String::from_utf8_lossy(self.tokens.first()).into_owned();
        vec![(HEADER.to_owned(), token)]
    }
}

impl Verify for Gitlab {
    fn verify(&self, req: &Incoming<'_>) -> Result<(), VerifyError> {
        // Lengths must match too: a prefix or an extra suffix is refused.
        if self.tokens.contains(header(req, HEADER)?.as_bytes()) {
            Ok(())
        } else {
            Err(VerifyError::Mismatch)
        }
    }
}

impl Scheme for Gitlab {
    fn name(&self) -> &'static str {
        SENDER.name
    }

    /// Event and dedupe key are headers.
    fn payload_members(&self) -> Option<&'static [&'static str]> {
        Some(&[])
    }

    fn sign(&self, _body: &[u8], _now: i64, _url: &mut String) -> Vec<(String, String)> {
        Gitlab::sign(self)
    }

    fn event(&self, delivery: &Delivered<'_>) -> Option<String> {
        delivery.header("X-Gitlab-Event")
    }

    fn dedupe_key(&self, delivery: &Delivered<'_>) -> Option<String> {
        delivery.header("X-Gitlab-Event-UUID")
    }

    fn sender_headers(&self, event: Option<&str>, id: &str) -> Vec<(String, String)> {
        let mut headers: Vec<(String, String)> = event
            .map(|e| ("X-Gitlab-Event".to_owned(), e.to_owned()))
            .into_iter()
            .collect();
        headers.push(("X-Gitlab-Event-UUID".to_owned(), id.to_owned()));
        headers
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{Req, round_trip};
    use super::super::{Secret, VerifierConfig, VerifyError};

    fn config(tokens: &[&str]) -> VerifierConfig {
        VerifierConfig::Gitlab(crate::verify::gitlab::Config {
            tokens: tokens.iter().map(|s| Secret::new(*s)).collect(),
        })
    }

    fn with_token(token: &str) -> Req {
        Req::post(b"{}", 0).header("X-Gitlab-Token", token)
    }

    #[test]
    fn gitlab_exact_token_passes_and_rotation_accepts_either() {
        assert_eq!(with_token("tok-1").verify(&config(&["tok-1"])), Ok(()));
        assert_eq!(
            with_token("tok-1").verify(&config(&["tok-2", "tok-1"])),
            Ok(())
        );
    }

    #[test]
    fn gitlab_prefix_suffix_and_case_changes_are_mismatches() {
        for bad in ["tok-", "tok-11", "TOK-1", ""] {
            assert_eq!(
                with_token(bad).verify(&config(&["tok-1"])),
                Err(VerifyError::Mismatch),
                "{bad}"
            );
        }
    }

    #[test]
    fn gitlab_missing_token_is_named() {
        assert_eq!(
            Req::post(b"{}", 0).verify(&config(&["tok-1"])),
            Err(VerifyError::MissingHeader("X-Gitlab-Token".into()))
        );
    }

    #[test]
    fn gitlab_sign_then_verify_round_trips() {
        assert_eq!(
            round_trip(&config(&["tok-1", "old"]), b"{}", "https://x/gl"),
            Ok(())
        );
    }
}
