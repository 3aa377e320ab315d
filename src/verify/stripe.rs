//! Stripe: `Stripe-Signature: t=<unix>,v1=<hex>[,v1=…]`, each v1 an
//! HMAC-SHA256 of `"<t>.<raw body>"` keyed with the `whsec_…` secret as-is.
//! Like stripe-node and stripe-python: every `v1` counts (Stripe sends one per
//! active secret while rolling), other schemes such as the test-mode `v0`
//! decoy are ignored, only age is checked (future timestamps pass), exactly
//! `tolerance` passes, and a tolerance of 0 disables the check.

use std::time::Duration;

use super::mac::{Keys, Window, check_window, header, parse_timestamp};
use super::registry::DEFAULT_TOLERANCE;
use super::{
    BuildError, Delivered, Encoding, HmacAlgorithm, Incoming, Scheme, Secret, Verify, VerifyError,
};
use super::{Reader, Sender, VerifierConfig};
use crate::keys::{Key, Ty};

/// The validated settings of a `stripe:` block (what `decode` reads).
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub secrets: Vec<Secret>,
    pub tolerance: Duration,
}

impl Config {
    /// The verifier these settings describe.
    pub(super) fn build(&self) -> Result<Box<dyn Scheme>, BuildError> {
        Ok(Box::new(Stripe::new(&self.secrets, self.tolerance)?))
    }
}

/// The `stripe:` entry of a `verify:` block.
pub(super) const SENDER: Sender = Sender {
    name: "stripe",
    about: "Stripe: `Stripe-Signature` (`t=…,v1=…`), an HMAC-SHA256 of the timestamp and body",
    keys: &[
        Key::required(
            "secret",
            Ty::Secrets,
            "the endpoint's signing secret (`whsec_…`)",
        ),
        Key::defaults(
            "tolerance",
            Ty::Duration,
            "5m",
            "how old a signature's timestamp may be",
        ),
    ],
    decode,
};

fn decode(r: &mut dyn Reader) -> Option<VerifierConfig> {
    let secrets = r.secrets("secret");
    let tolerance = r.duration("tolerance", DEFAULT_TOLERANCE);
    Some(VerifierConfig::Stripe(crate::verify::stripe::Config {
        secrets: secrets?,
        tolerance: tolerance?,
    }))
}

const HEADER: &str = "Stripe-Signature";

#[derive(Debug)]
pub(crate) struct Stripe {
    keys: Keys,
    tolerance: Duration,
}

impl Stripe {
    pub(crate) fn new(secrets: &[Secret], tolerance: Duration) -> Result<Self, BuildError> {
        Ok(Stripe {
            keys: Keys::utf8("stripe", secrets)?,
            tolerance,
        })
    }

    pub(crate) fn sign(&self, body: &[u8], now: i64) -> Vec<(String, String)> {
        let t = now.to_string();
        let v1 = self.keys.sign(
            HmacAlgorithm::Sha256,
            Encoding::Hex,
            &[t.as_bytes(), b".", body],
        );
        vec![(HEADER.to_owned(), format!("t={t},v1={v1}"))]
    }
}

impl Verify for Stripe {
    fn verify(&self, req: &Incoming<'_>) -> Result<(), VerifyError> {
        let value = header(req, HEADER)?;
        let mut timestamp = None;
        let mut v1 = Vec::new();
        for item in value.split(',') {
            match item.trim().split_once('=') {
                Some(("t", t)) if timestamp.is_none() => timestamp = Some(parse_timestamp(t)?),
                Some(("v1", sig)) => v1.push(sig),
                _ => {}
            }
        }
        let timestamp = timestamp.ok_or(VerifyError::Mismatch)?;
        // The SDKs sign and check the re-printed integer, not the header text.
        let t = timestamp.to_string();
        if !self.keys.any_matches(
            HmacAlgorithm::Sha256,
            Encoding::Hex,
            &[t.as_bytes(), b".", req.body],
            &v1,
        ) {
            return Err(VerifyError::Mismatch);
        }
        if self.tolerance.is_zero() {
            return Ok(());
        }
        check_window(Window::PastOnly, self.tolerance, req.now, timestamp)
    }
}

impl Scheme for Stripe {
    fn name(&self) -> &'static str {
        SENDER.name
    }

    /// The event is `type`, the dedupe key `id`.
    fn payload_members(&self) -> Option<&'static [&'static str]> {
        Some(&["type", "id"])
    }

    fn sign(&self, body: &[u8], now: i64, _url: &mut String) -> Vec<(String, String)> {
        Stripe::sign(self, body, now)
    }

    fn event(&self, delivery: &Delivered<'_>) -> Option<String> {
        delivery.string_at("/type")
    }

    /// The event object's id (`evt_…`): Stripe resends it unchanged.
    fn dedupe_key(&self, delivery: &Delivered<'_>) -> Option<String> {
        delivery.string_at("/id")
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::testing::{Req, round_trip};
    use super::super::{Secret, VerifierConfig, VerifyError, sign};

    const SECRET: &str = "whsec_test_secret";
    const T: i64 = 1_751_371_200;

    fn config(secrets: &[&str], tolerance_s: u64) -> VerifierConfig {
        VerifierConfig::Stripe(crate::verify::stripe::Config {
            secrets: secrets.iter().map(|s| Secret::new(*s)).collect(),
            tolerance: Duration::from_secs(tolerance_s),
        })
    }

    fn signed_header(body: &[u8]) -> String {
        let signed = sign(&config(&[SECRET], 300), body, T, "").unwrap();
        signed.headers[0].1.clone()
    }

    fn request(header: &str, body: &[u8], now: i64) -> Req {
        Req::post(body, now).header("Stripe-Signature", header)
    }

    #[test]
    fn stripe_signature_within_tolerance_is_accepted_and_edge_passes() {
        let h = signed_header(b"{}");
        assert_eq!(
            request(&h, b"{}", T + 5).verify(&config(&[SECRET], 300)),
            Ok(())
        );
        assert_eq!(
            request(&h, b"{}", T + 300).verify(&config(&[SECRET], 300)),
            Ok(())
        );
    }

    #[test]
    fn stripe_signature_outside_tolerance_is_rejected() {
        let h = signed_header(b"{}");
        assert_eq!(
            request(&h, b"{}", T + 301).verify(&config(&[SECRET], 300)),
            Err(VerifyError::TimestampOutsideTolerance)
        );
    }

    #[test]
    fn stripe_future_timestamp_and_zero_tolerance_pass() {
        let h = signed_header(b"{}");
        assert_eq!(
            request(&h, b"{}", T - 86_400).verify(&config(&[SECRET], 300)),
            Ok(())
        );
        assert_eq!(
            request(&h, b"{}", T + 86_400 * 365).verify(&config(&[SECRET], 0)),
            Ok(())
        );
    }

    #[test]
    fn stripe_any_v1_matches_and_v0_is_ignored() {
        let h = signed_header(b"{}");
        let good = h.split_once(",v1=").unwrap().1;
        let rolled = format!("t={T},v1={},v1={good},v0={good}", "0".repeat(64));
        assert_eq!(
            request(&rolled, b"{}", T).verify(&config(&[SECRET], 300)),
            Ok(())
        );
        let only_v0 = format!("t={T},v0={good}");
        assert_eq!(
            request(&only_v0, b"{}", T).verify(&config(&[SECRET], 300)),
            Err(VerifyError::Mismatch)
        );
    }

    #[test]
    fn stripe_second_secret_matches_during_rotation() {
        let h = signed_header(b"{}");
        assert_eq!(
            request(&h, b"{}", T).verify(&config(&["whsec_new", SECRET], 300)),
            Ok(())
        );
    }

    #[test]
    fn stripe_malformed_headers_are_mismatches_and_missing_is_named() {
        for bad in [
            "",
            "v1=abcd",
            "t=abc,v1=00",
            "t=1,v1=",
            "t==,,,",
            "t=99999999999999999999999,v1=00",
        ] {
            assert_eq!(
                request(bad, b"{}", T).verify(&config(&[SECRET], 300)),
                Err(VerifyError::Mismatch),
                "{bad}"
            );
        }
        assert_eq!(
            Req::post(b"{}", T).verify(&config(&[SECRET], 300)),
            Err(VerifyError::MissingHeader("Stripe-Signature".into()))
        );
    }

    #[test]
    fn stripe_tampered_body_is_a_mismatch() {
        let h = signed_header(b"{\"amount\":1099}");
        assert_eq!(
            request(&h, b"{\"amount\":109900}", T).verify(&config(&[SECRET], 300)),
            Err(VerifyError::Mismatch)
        );
    }

    #[test]
    fn stripe_sign_then_verify_round_trips() {
        assert_eq!(
            round_trip(
                &config(&[SECRET, "whsec_old"], 300),
                b"{\"id\":\"evt_1\"}",
                "https://x/s"
            ),
            Ok(())
        );
    }
}
