//! Standard Webhooks / Svix: `webhook-id`, `webhook-timestamp` and
//! `webhook-signature: v1,<base64> [v1,<base64> …]` (or the same under the
//! original `svix-` names), each v1 an HMAC-SHA256 of `"<id>.<ts>.<raw body>"`
//! keyed with base64-decode(secret without `whsec_`). Only `v1` entries count
//! (`v1a` is asymmetric, unknown versions are skipped); any may match. The
//! timestamp must be integer seconds within ±tolerance, as both SDKs check.

use std::time::Duration;

use super::mac::{Keys, Window, check_window, decode_base64, first_header, parse_timestamp};
use super::registry::DEFAULT_TOLERANCE;
use super::{
    BuildError, Delivered, Encoding, HmacAlgorithm, Incoming, Scheme, Secret, Verify, VerifyError,
};
use super::{Reader, Sender, VerifierConfig};
use crate::keys::{Key, Ty};

/// The validated settings of a `standard:` block (what `decode` reads).
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub secrets: Vec<Secret>,
    pub tolerance: Duration,
}

impl Config {
    /// The verifier these settings describe.
    pub(super) fn build(&self) -> Result<Box<dyn Scheme>, BuildError> {
        Ok(Box::new(Standard::new(&self.secrets, self.tolerance)?))
    }
}

/// The `standard:` entry of a `verify:` block.
pub(super) const SENDER: Sender = Sender {
    name: "standard",
    about: "Standard Webhooks / Svix: `webhook-id`, `webhook-timestamp`, `webhook-signature` (`v1,<base64>`)",
    keys: &[
        Key::required(
            "secret",
            Ty::Secrets,
            "the endpoint's secret, `whsec_` followed by base64",
        ),
        Key::defaults(
            "tolerance",
            Ty::Duration,
            "5m",
            "how old `webhook-timestamp` may be",
        ),
    ],
    decode,
};

fn decode(r: &mut dyn Reader) -> Option<VerifierConfig> {
    let secrets = r.secrets("secret");
    let tolerance = r.duration("tolerance", DEFAULT_TOLERANCE);
    Some(VerifierConfig::Standard(crate::verify::standard::Config {
        secrets: secrets?,
        tolerance: tolerance?,
    }))
}

// The standard's names first: a missing header is reported by them.
const ID: [&str; 2] = ["webhook-id", "svix-id"];
const TIMESTAMP: [&str; 2] = ["webhook-timestamp", "svix-timestamp"];
const SIGNATURE: [&str; 2] = ["webhook-signature", "svix-signature"];

#[derive(Debug)]
pub(crate) struct Standard {
    /// Base64-decoded secrets: the raw HMAC keys.
    keys: Keys,
    tolerance: Duration,
}

impl Standard {
    pub(crate) fn new(secrets: &[Secret], tolerance: Duration) -> Result<Self, BuildError> {
        // Both SDKs take the secret with or without `whsec_`; Python also
        // tolerates missing padding, which the lenient decoder allows.
        let keys = Keys::decoded("standard", secrets, |secret| {
            let encoded = secret.strip_prefix("whsec_").unwrap_or(secret);
            decode_base64(encoded.trim()).ok_or(())
        })?;
        Ok(Standard { keys, tolerance })
    }

    /// The message id only has to be unique per message; the clock gives that
    /// for a hand-sent test delivery.
    pub(crate) fn sign(&self, body: &[u8], now: i64) -> Vec<(String, String)> {
        let id = format!("msg_{now}");
        let ts = now.to_string();
        let sig = self.keys.sign(
            HmacAlgorithm::Sha256,
            Encoding::Base64,
            &[id.as_bytes(), b".", ts.as_bytes(), b".", body],
        );
        vec![
            (ID[0].to_owned(), id),
            (TIMESTAMP[0].to_owned(), ts),
            (SIGNATURE[0].to_owned(), format!("v1,{sig}")),
        ]
    }
}

impl Verify for Standard {
    fn verify(&self, req: &Incoming<'_>) -> Result<(), VerifyError> {
        let id = first_header(req, &ID)?;
        let ts_text = first_header(req, &TIMESTAMP)?;
        let signatures = first_header(req, &SIGNATURE)?;
        let timestamp = parse_timestamp(ts_text)?;
        let v1: Vec<&str> = signatures
            .split(' ')
            .filter_map(|entry| entry.split_once(','))
            .filter(|(version, _)| *version == "v1")
            .map(|(_, sig)| sig)
            .collect();
        let parts: [&[u8]; 5] = [id.as_bytes(), b".", ts_text.as_bytes(), b".", req.body];
        if !self
            .keys
            .any_matches(HmacAlgorithm::Sha256, Encoding::Base64, &parts, &v1)
        {
            return Err(VerifyError::Mismatch);
        }
        check_window(Window::Both, self.tolerance, req.now, timestamp)
    }
}

impl Scheme for Standard {
    fn name(&self) -> &'static str {
        SENDER.name
    }

    /// The event is the body's `type`.
    fn payload_members(&self) -> Option<&'static [&'static str]> {
        Some(&["type"])
    }

    fn sign(&self, body: &[u8], now: i64, _url: &mut String) -> Vec<(String, String)> {
        Standard::sign(self, body, now)
    }

    fn event(&self, delivery: &Delivered<'_>) -> Option<String> {
        delivery.string_at("/type")
    }

    fn dedupe_key(&self, delivery: &Delivered<'_>) -> Option<String> {
        delivery
            .header("webhook-id")
            .or_else(|| delivery.header("svix-id"))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::testing::{Req, round_trip};
    use super::super::{BuildError, Secret, VerifierConfig, VerifyError, build, sign};

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const NOW: i64 = 1_674_087_231;

    fn config(secrets: &[&str]) -> VerifierConfig {
        VerifierConfig::Standard(crate::verify::standard::Config {
            secrets: secrets.iter().map(|s| Secret::new(*s)).collect(),
            tolerance: Duration::from_secs(300),
        })
    }

    fn signed(body: &[u8]) -> Vec<(String, String)> {
        sign(&config(&[SECRET]), body, NOW, "").unwrap().headers
    }

    fn request(headers: &[(String, String)], body: &[u8], now: i64) -> Req {
        headers
            .iter()
            .fold(Req::post(body, now), |req, (k, v)| req.header(k, v))
    }

    #[test]
    fn standard_secret_that_is_not_base64_is_a_build_error() {
        let err = build(&config(&["whsec_not*base64!"])).unwrap_err();
        assert_eq!(
            err,
            BuildError::InvalidSecret {
                kind: "standard",
                position: 1
            }
        );
        assert!(build(&config(&["whsec_"])).is_err());
    }

    #[test]
    fn standard_secret_without_prefix_or_padding_gives_the_same_key() {
        let headers = signed(b"{}");
        let bare = SECRET.trim_start_matches("whsec_");
        assert_eq!(
            request(&headers, b"{}", NOW).verify(&config(&[bare])),
            Ok(())
        );
        // 24 bytes encode without padding; a 25-byte key needs "==", test dropping it.
        let padded = "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGA==";
        let headers = sign(&config(&[padded]), b"{}", NOW, "").unwrap().headers;
        assert_eq!(
            request(&headers, b"{}", NOW).verify(&config(&[padded.trim_end_matches('=')])),
            Ok(())
        );
    }

    #[test]
    fn standard_svix_header_names_are_accepted() {
        let renamed: Vec<_> = signed(b"{}")
            .into_iter()
            .map(|(k, v)| (k.replace("webhook-", "svix-"), v))
            .collect();
        assert_eq!(
            request(&renamed, b"{}", NOW).verify(&config(&[SECRET])),
            Ok(())
        );
    }

    #[test]
    fn standard_timestamp_outside_tolerance_is_rejected_both_ways() {
        let headers = signed(b"{}");
        for now in [NOW + 301, NOW - 301] {
            assert_eq!(
                request(&headers, b"{}", now).verify(&config(&[SECRET])),
                Err(VerifyError::TimestampOutsideTolerance)
            );
        }
    }

    #[test]
    fn standard_missing_header_is_named_with_the_standard_name() {
        let headers: Vec<_> = signed(b"{}")
            .into_iter()
            .filter(|(k, _)| k != "webhook-id")
            .collect();
        assert_eq!(
            request(&headers, b"{}", NOW).verify(&config(&[SECRET])),
            Err(VerifyError::MissingHeader("webhook-id".into()))
        );
    }

    #[test]
    fn standard_rotation_list_and_second_secret_match() {
        let mut headers = signed(b"{}");
        let good = headers[2].1.clone();
        headers[2].1 = format!("v1a,AAAA v1,{} {good} v2,xyz", "A".repeat(44));
        assert_eq!(
            request(&headers, b"{}", NOW).verify(&config(&[SECRET])),
            Ok(())
        );
        let other = "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
        assert_eq!(
            request(&headers, b"{}", NOW).verify(&config(&[other, SECRET])),
            Ok(())
        );
    }

    #[test]
    fn standard_tampered_body_and_garbage_headers_are_mismatches() {
        let headers = signed(b"{}");
        assert_eq!(
            request(&headers, b"{ }", NOW).verify(&config(&[SECRET])),
            Err(VerifyError::Mismatch)
        );
        for bad in ["", "v1", "v1,", ",,,", "v1,!!!", "v2,abc"] {
            let mut h = headers.clone();
            h[2].1 = bad.to_owned();
            assert_eq!(
                request(&h, b"{}", NOW).verify(&config(&[SECRET])),
                Err(VerifyError::Mismatch),
                "{bad}"
            );
        }
        let mut iso = headers.clone();
        iso[1].1 = "2023-01-19T00:13:51Z".to_owned();
        assert_eq!(
            request(&iso, b"{}", NOW).verify(&config(&[SECRET])),
            Err(VerifyError::Mismatch)
        );
    }

    #[test]
    fn standard_sign_then_verify_round_trips() {
        assert_eq!(
            round_trip(&config(&[SECRET]), b"{\"type\":\"a\"}", "https://x/sw"),
            Ok(())
        );
    }
}
