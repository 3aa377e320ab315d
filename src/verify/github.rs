//! GitHub: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, raw body)>`.
//! The legacy `X-Hub-Signature: sha1=<hex>` is accepted only when the source
//! opts in with `allow_sha1`, and only when the sha256 header is absent, so a
//! request cannot downgrade itself by sending a bad sha256 and a good sha1.

use super::mac::{Keys, header, optional_header};
use super::{
    BuildError, Delivered, Encoding, HmacAlgorithm, Incoming, Scheme, Secret, Verify, VerifyError,
};
use super::{Reader, Sender, VerifierConfig};
use crate::keys::{Key, Ty};

/// The validated settings of a `github:` block (what `decode` reads).
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub secrets: Vec<Secret>,
    pub allow_sha1: bool,
}

impl Config {
    /// The verifier these settings describe.
    pub(super) fn build(&self) -> Result<Box<dyn Scheme>, BuildError> {
        Ok(Box::new(Github::new(&self.secrets, self.allow_sha1)?))
    }
}

/// The `github:` entry of a `verify:` block.
pub(super) const SENDER: Sender = Sender {
    name: "github",
    about: "GitHub: `X-Hub-Signature-256`, an HMAC-SHA256 of the body",
    keys: &[
        Key::required(
            "secret",
            Ty::Secrets,
            "the webhook's secret, as set in GitHub",
        ),
        Key::defaults(
            "allow_sha1",
            Ty::Bool,
            "false",
            "also accept the legacy `X-Hub-Signature` (HMAC-SHA1) when no sha256 header came",
        ),
    ],
    decode,
};

fn decode(r: &mut dyn Reader) -> Option<VerifierConfig> {
    let secrets = r.secrets("secret");
    let allow_sha1 = r.bool("allow_sha1", false);
    Some(VerifierConfig::Github(crate::verify::github::Config {
        secrets: secrets?,
        allow_sha1: allow_sha1?,
    }))
}

const SHA256_HEADER: &str = "X-Hub-Signature-256";
const SHA1_HEADER: &str = "X-Hub-Signature";

#[derive(Debug)]
pub(crate) struct Github {
    keys: Keys,
    /// Accept the legacy HMAC-SHA1 header when no sha256 header came.
    allow_sha1: bool,
}

impl Github {
    pub(crate) fn new(secrets: &[Secret], allow_sha1: bool) -> Result<Self, BuildError> {
        Ok(Github {
            keys: Keys::utf8("github", secrets)?,
            allow_sha1,
        })
    }

    /// GitHub sends both headers; a sender we imitate needs only the modern one.
    pub(crate) fn sign(&self, body: &[u8]) -> Vec<(String, String)> {
        let hex = self
            .keys
            .sign(HmacAlgorithm::Sha256, Encoding::Hex, &[body]);
        vec![(SHA256_HEADER.to_owned(), format!("sha256={hex}"))]
    }

    fn check(
        &self,
        value: &str,
        prefix: &str,
        algorithm: HmacAlgorithm,
        body: &[u8],
    ) -> Result<(), VerifyError> {
        // octokit compares the whole `sha256=<hex>` string, so upper-case hex fails too.
        let hex = value.strip_prefix(prefix).ok_or(VerifyError::Mismatch)?;
        if self
            .keys
            .any_matches(algorithm, Encoding::Hex, &[body], &[hex])
        {
            Ok(())
        } else {
            Err(VerifyError::Mismatch)
        }
    }
}

impl Verify for Github {
    fn verify(&self, req: &Incoming<'_>) -> Result<(), VerifyError> {
        if let Some(value) = optional_header(req, SHA256_HEADER)? {
            return self.check(value, "sha256=", HmacAlgorithm::Sha256, req.body);
        }
        if self.allow_sha1
            && let Some(value) = optional_header(req, SHA1_HEADER)?
        {
            return self.check(value, "sha1=", HmacAlgorithm::Sha1, req.body);
        }
        // Name the header GitHub documents, not the legacy one.
        header(req, SHA256_HEADER).map(|_| ())
    }
}

impl Scheme for Github {
    fn name(&self) -> &'static str {
        SENDER.name
    }

    /// `action`: the event is `<X-GitHub-Event>.<action>`.
    fn payload_members(&self) -> Option<&'static [&'static str]> {
        Some(&["action"])
    }

    fn sign(&self, body: &[u8], _now: i64, _url: &mut String) -> Vec<(String, String)> {
        Github::sign(self, body)
    }

    /// `X-GitHub-Event`, plus `.<action>` when the body has a string
    /// `action` (`pull_request.opened`).
    fn event(&self, delivery: &Delivered<'_>) -> Option<String> {
        let event = delivery.header("X-GitHub-Event")?;
        Some(match delivery.payload.get("action") {
            Some(serde_json::Value::String(action)) => format!("{event}.{action}"),
            _ => event,
        })
    }

    fn dedupe_key(&self, delivery: &Delivered<'_>) -> Option<String> {
        delivery.header("X-GitHub-Delivery")
    }

    fn sender_headers(&self, event: Option<&str>, id: &str) -> Vec<(String, String)> {
        let mut headers: Vec<(String, String)> = event
            .map(|e| ("X-GitHub-Event".to_owned(), e.to_owned()))
            .into_iter()
            .collect();
        headers.push(("X-GitHub-Delivery".to_owned(), id.to_owned()));
        headers
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{Req, round_trip};
    use super::super::{Secret, VerifierConfig, VerifyError};

    const DOCS_SIG: &str =
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

    fn config(secrets: &[&str], allow_sha1: bool) -> VerifierConfig {
        VerifierConfig::Github(crate::verify::github::Config {
            secrets: secrets.iter().map(|s| Secret::new(*s)).collect(),
            allow_sha1,
        })
    }

    fn docs_request(signature: &str) -> Req {
        Req::post(b"Hello, World!", 0).header("X-Hub-Signature-256", signature)
    }

    #[test]
    fn github_docs_vector_verifies() {
        let req = docs_request(DOCS_SIG);
        assert_eq!(
            req.verify(&config(&["It's a Secret to Everybody"], false)),
            Ok(())
        );
    }

    #[test]
    fn github_second_secret_matches_during_rotation() {
        let req = docs_request(DOCS_SIG);
        assert_eq!(
            req.verify(&config(
                &["new secret", "It's a Secret to Everybody"],
                false
            )),
            Ok(())
        );
    }

    #[test]
    fn github_missing_signature_names_the_sha256_header() {
        let req = Req::post(b"{}", 0);
        assert_eq!(
            req.verify(&config(&["s"], true)),
            Err(VerifyError::MissingHeader("X-Hub-Signature-256".into()))
        );
        assert_eq!(
            VerifyError::MissingHeader("X-Hub-Signature-256".into()).to_string(),
            "missing header X-Hub-Signature-256"
        );
    }

    #[test]
    fn github_tampered_body_is_a_mismatch() {
        let mut req = docs_request(DOCS_SIG);
        req.body = b"Hello, World?".to_vec();
        assert_eq!(
            req.verify(&config(&["It's a Secret to Everybody"], false)),
            Err(VerifyError::Mismatch)
        );
    }

    #[test]
    fn github_garbage_and_uppercase_signatures_are_mismatches() {
        let secret = config(&["It's a Secret to Everybody"], false);
        for bad in [
            "",
            "sha256=",
            "sha256=zz",
            "sha1=abc",
            "garbage",
            &DOCS_SIG.to_uppercase(),
        ] {
            assert_eq!(
                docs_request(bad).verify(&secret),
                Err(VerifyError::Mismatch),
                "{bad}"
            );
        }
    }

    #[test]
    fn github_sha1_is_used_only_when_allowed_and_sha256_absent() {
        // HMAC-SHA1("It's a Secret to Everybody", "Hello, World!")
        let sha1 = format!(
            "sha1={}",
            hex::encode(super::super::mac::hmac(
                super::HmacAlgorithm::Sha1,
                b"It's a Secret to Everybody",
                &[b"Hello, World!"]
            ))
        );
        let req = Req::post(b"Hello, World!", 0).header("X-Hub-Signature", &sha1);
        assert_eq!(
            req.verify(&config(&["It's a Secret to Everybody"], true)),
            Ok(())
        );
        assert_eq!(
            req.verify(&config(&["It's a Secret to Everybody"], false)),
            Err(VerifyError::MissingHeader("X-Hub-Signature-256".into()))
        );
        let downgrade = req.header("X-Hub-Signature-256", "sha256=00");
        assert_eq!(
            downgrade.verify(&config(&["It's a Secret to Everybody"], true)),
            Err(VerifyError::Mismatch)
        );
    }

    #[test]
    fn github_sign_then_verify_round_trips() {
        assert_eq!(
            round_trip(
                &config(&["s3cret", "old"], false),
                b"{\"zen\":1}",
                "https://x/h"
            ),
            Ok(())
        );
    }
}
