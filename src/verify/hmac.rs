//! The generic `hmac` verifier for any sender that puts an HMAC of the raw
//! body in a header: configurable header, hash, encoding and prefix (e.g.
//! `sha256=`). The prefix is stripped before comparing; hex is compared
//! case-insensitively because senders differ, base64 exactly (standard alphabet).

use super::mac::{Keys, header};
use super::{BuildError, Encoding, HmacAlgorithm, Incoming, Scheme, Secret, Verify, VerifyError};
use super::{Reader, Sender, VerifierConfig};
use crate::keys::{Key, Ty};

/// The validated settings of a `hmac:` block (what `decode` reads).
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub header: String,
    pub algorithm: HmacAlgorithm,
    pub encoding: Encoding,
    pub prefix: String,
    pub secrets: Vec<Secret>,
}

impl Config {
    /// The verifier these settings describe.
    pub(super) fn build(&self) -> Result<Box<dyn Scheme>, BuildError> {
        Ok(Box::new(GenericHmac::new(
            &self.header,
            self.algorithm,
            self.encoding,
            &self.prefix,
            &self.secrets,
        )?))
    }
}

/// The `hmac:` entry of a `verify:` block.
pub(super) const SENDER: Sender = Sender {
    name: "hmac",
    about: "any header-signed scheme: an HMAC of the body in a header",
    keys: &[
        Key::required("header", Ty::Text, "the header that carries the signature"),
        Key::defaults(
            "algorithm",
            Ty::Choice(&["sha1", "sha256", "sha512"]),
            "sha256",
            "the HMAC's hash",
        ),
        Key::defaults(
            "encoding",
            Ty::Choice(&["hex", "base64"]),
            "hex",
            "how the signature is written",
        ),
        Key::defaults(
            "prefix",
            Ty::Text,
            "\"\"",
            "text before the signature, e.g. `sha256=`",
        ),
        Key::required("secret", Ty::Secrets, "the shared secret"),
    ],
    decode,
};

fn decode(r: &mut dyn Reader) -> Option<VerifierConfig> {
    let header = r.required("header");
    let algorithm = match r.text("algorithm") {
        Some(None) => Some(HmacAlgorithm::Sha256),
        Some(Some(text)) => match text.as_str() {
            "sha1" => Some(HmacAlgorithm::Sha1),
            "sha256" => Some(HmacAlgorithm::Sha256),
            "sha512" => Some(HmacAlgorithm::Sha512),
            other => {
                let message = format!("unknown algorithm {other:?} (use sha1, sha256 or sha512)");
                r.invalid("algorithm", message);
                None
            }
        },
        None => None,
    };
    let encoding = match r.text("encoding") {
        Some(None) => Some(Encoding::Hex),
        Some(Some(text)) => match text.as_str() {
            "hex" => Some(Encoding::Hex),
            "base64" => Some(Encoding::Base64),
            other => {
                r.invalid(
                    "encoding",
                    format!("unknown encoding {other:?} (use hex or base64)"),
                );
                None
            }
        },
        None => None,
    };
    let prefix = r.text("prefix").map(Option::unwrap_or_default);
    let secrets = r.secrets("secret");
    Some(VerifierConfig::Hmac(crate::verify::hmac::Config {
        header: header?,
        algorithm: algorithm?,
        encoding: encoding?,
        prefix: prefix?,
        secrets: secrets?,
    }))
}

#[derive(Debug)]
pub(crate) struct GenericHmac {
    /// As configured, so a missing-header message echoes the user's spelling.
    header: String,
    algorithm: HmacAlgorithm,
    encoding: Encoding,
    prefix: String,
    keys: Keys,
}

impl GenericHmac {
    pub(crate) fn new(
        header: &str,
        algorithm: HmacAlgorithm,
        encoding: Encoding,
        prefix: &str,
        secrets: &[Secret],
    ) -> Result<Self, BuildError> {
        Ok(GenericHmac {
            header: super::header_name("hmac", header)?,
            algorithm,
            encoding,
            prefix: prefix.to_owned(),
            keys: Keys::utf8("hmac", secrets)?,
        })
    }

    pub(crate) fn sign(&self, body: &[u8]) -> Vec<(String, String)> {
        let sig = self.keys.sign(self.algorithm, self.encoding, &[body]);
        vec![(self.header.clone(), format!("{}{sig}", self.prefix))]
    }
}

impl Verify for GenericHmac {
    fn verify(&self, req: &Incoming<'_>) -> Result<(), VerifyError> {
        let value = header(req, &self.header)?;
        let signature = value
            .strip_prefix(self.prefix.as_str())
            .ok_or(VerifyError::Mismatch)?;
        // We encode hex in lowercase, so fold the received text to match.
        let folded;
        let signature = match self.encoding {
            Encoding::Hex => {
                folded = signature.to_ascii_lowercase();
                folded.as_str()
            }
            Encoding::Base64 => signature,
        };
        if self
            .keys
            .any_matches(self.algorithm, self.encoding, &[req.body], &[signature])
        {
            Ok(())
        } else {
            Err(VerifyError::Mismatch)
        }
    }
}

impl Scheme for GenericHmac {
    fn name(&self) -> &'static str {
        SENDER.name
    }

    /// Reads no body.
    fn payload_members(&self) -> Option<&'static [&'static str]> {
        Some(&[])
    }

    fn sign(&self, body: &[u8], _now: i64, _url: &mut String) -> Vec<(String, String)> {
        GenericHmac::sign(self, body)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{Req, round_trip};
    use super::super::{
        BuildError, Encoding, HmacAlgorithm, Secret, VerifierConfig, VerifyError, build,
    };

    fn config(
        algorithm: HmacAlgorithm,
        encoding: Encoding,
        prefix: &str,
        secrets: &[&str],
    ) -> VerifierConfig {
        VerifierConfig::Hmac(crate::verify::hmac::Config {
            header: "X-Signature".into(),
            algorithm,
            encoding,
            prefix: prefix.into(),
            secrets: secrets.iter().map(|s| Secret::new(*s)).collect(),
        })
    }

    const DOCS_HEX: &str = "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

    #[test]
    fn hmac_prefixed_hex_verifies_in_either_case() {
        let cfg = config(
            HmacAlgorithm::Sha256,
            Encoding::Hex,
            "sha256=",
            &["It's a Secret to Everybody"],
        );
        for sig in [
            format!("sha256={DOCS_HEX}"),
            format!("sha256={}", DOCS_HEX.to_uppercase()),
        ] {
            let req = Req::post(b"Hello, World!", 0).header("X-Signature", &sig);
            assert_eq!(req.verify(&cfg), Ok(()));
        }
    }

    #[test]
    fn hmac_missing_prefix_tampered_body_and_garbage_are_mismatches() {
        let cfg = config(
            HmacAlgorithm::Sha256,
            Encoding::Hex,
            "sha256=",
            &["It's a Secret to Everybody"],
        );
        let req = |body: &[u8], sig: &str| Req::post(body, 0).header("X-Signature", sig);
        assert_eq!(
            req(b"Hello, World!", DOCS_HEX).verify(&cfg),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            req(b"Hello, World?", &format!("sha256={DOCS_HEX}")).verify(&cfg),
            Err(VerifyError::Mismatch)
        );
        for bad in ["sha256=", "sha256=zz", "sha256=\u{00e9}", ""] {
            assert_eq!(
                req(b"Hello, World!", bad).verify(&cfg),
                Err(VerifyError::Mismatch),
                "{bad}"
            );
        }
    }

    #[test]
    fn hmac_missing_header_uses_the_configured_name() {
        let cfg = config(HmacAlgorithm::Sha1, Encoding::Base64, "", &["k"]);
        assert_eq!(
            Req::post(b"", 0).verify(&cfg),
            Err(VerifyError::MissingHeader("X-Signature".into()))
        );
    }

    #[test]
    fn hmac_invalid_header_name_is_a_build_error() {
        let VerifierConfig::Hmac(crate::verify::hmac::Config { secrets, .. }) =
            config(HmacAlgorithm::Sha1, Encoding::Hex, "", &["k"])
        else {
            unreachable!()
        };
        let bad = VerifierConfig::Hmac(crate::verify::hmac::Config {
            header: "X Signature".into(),
            algorithm: HmacAlgorithm::Sha1,
            encoding: Encoding::Hex,
            prefix: String::new(),
            secrets,
        });
        assert!(matches!(
            build(&bad),
            Err(BuildError::InvalidHeaderName { .. })
        ));
    }

    #[test]
    fn hmac_sign_then_verify_round_trips_for_every_algorithm_and_encoding() {
        for algorithm in [
            HmacAlgorithm::Sha1,
            HmacAlgorithm::Sha256,
            HmacAlgorithm::Sha512,
        ] {
            for encoding in [Encoding::Hex, Encoding::Base64] {
                let cfg = config(algorithm, encoding, "v=", &["new", "old"]);
                assert_eq!(
                    round_trip(&cfg, b"{\"a\":1}", "https://x/h"),
                    Ok(()),
                    "{algorithm:?} {encoding:?}"
                );
                let rotated = config(algorithm, encoding, "v=", &["old"]);
                let signed = super::super::sign(&rotated, b"x", 0, "").unwrap();
                let req = Req::post(b"x", 0).signed(&signed);
                assert_eq!(req.verify(&cfg), Ok(()), "old secret still accepted");
            }
        }
    }
}
