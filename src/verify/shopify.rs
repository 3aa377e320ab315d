//! Shopify: `X-Shopify-Hmac-Sha256: <base64 HMAC-SHA256(client secret, raw
//! body)>`. Shopify Events (developer preview) send the same value under the
//! un-prefixed `Shopify-Hmac-Sha256`, which `@shopify/shopify-api` accepts, so
//! we do too. Like the SDK we compare base64 text, so a hex digest fails.

use super::mac::{Keys, first_header};
use super::{
    BuildError, Delivered, Encoding, HmacAlgorithm, Incoming, Scheme, Secret, Verify, VerifyError,
};
use super::{Reader, Sender, VerifierConfig};
use crate::keys::{Key, Ty};

/// The validated settings of a `shopify:` block (what `decode` reads).
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub secrets: Vec<Secret>,
}

impl Config {
    /// The verifier these settings describe.
    pub(super) fn build(&self) -> Result<Box<dyn Scheme>, BuildError> {
        Ok(Box::new(Shopify::new(&self.secrets)?))
    }
}

/// The `shopify:` entry of a `verify:` block.
pub(super) const SENDER: Sender = Sender {
    name: "shopify",
    about: "Shopify: `X-Shopify-Hmac-Sha256`, a base64 HMAC-SHA256 of the body",
    keys: &[Key::required(
        "secret",
        Ty::Secrets,
        "the app's client secret",
    )],
    decode,
};

fn decode(r: &mut dyn Reader) -> Option<VerifierConfig> {
    let secrets = r.secrets("secret");
    Some(VerifierConfig::Shopify(crate::verify::shopify::Config {
        secrets: secrets?,
    }))
}

const HEADERS: [&str; 2] = ["X-Shopify-Hmac-Sha256", "Shopify-Hmac-Sha256"];

#[derive(Debug)]
pub(crate) struct Shopify {
    keys: Keys,
}

impl Shopify {
    pub(crate) fn new(secrets: &[Secret]) -> Result<Self, BuildError> {
        Ok(Shopify {
            keys: Keys::utf8("shopify", secrets)?,
        })
    }

    pub(crate) fn sign(&self, body: &[u8]) -> Vec<(String, String)> {
        let sig = self
            .keys
            .sign(HmacAlgorithm::Sha256, Encoding::Base64, &[body]);
        vec![(HEADERS[0].to_owned(), sig)]
    }
}

impl Verify for Shopify {
    fn verify(&self, req: &Incoming<'_>) -> Result<(), VerifyError> {
        let received = first_header(req, &HEADERS)?;
        if self.keys.any_matches(
            HmacAlgorithm::Sha256,
            Encoding::Base64,
            &[req.body],
            &[received],
        ) {
            Ok(())
        } else {
            Err(VerifyError::Mismatch)
        }
    }
}

impl Scheme for Shopify {
    fn name(&self) -> &'static str {
        SENDER.name
    }

    /// Event and dedupe key are headers.
    fn payload_members(&self) -> Option<&'static [&'static str]> {
        Some(&[])
    }

    fn sign(&self, body: &[u8], _now: i64, _url: &mut String) -> Vec<(String, String)> {
        Shopify::sign(self, body)
    }

    fn event(&self, delivery: &Delivered<'_>) -> Option<String> {
        delivery.header("X-Shopify-Topic")
    }

    fn dedupe_key(&self, delivery: &Delivered<'_>) -> Option<String> {
        delivery.header("X-Shopify-Webhook-Id")
    }

    fn sender_headers(&self, event: Option<&str>, id: &str) -> Vec<(String, String)> {
        let mut headers: Vec<(String, String)> = event
            .map(|e| ("X-Shopify-Topic".to_owned(), e.to_owned()))
            .into_iter()
            .collect();
        headers.push(("X-Shopify-Webhook-Id".to_owned(), id.to_owned()));
        headers
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{Req, round_trip};
    use super::super::{Secret, VerifierConfig, VerifyError, sign};

    fn config(secrets: &[&str]) -> VerifierConfig {
        VerifierConfig::Shopify(crate::verify::shopify::Config {
            secrets: secrets.iter().map(|s| Secret::new(*s)).collect(),
        })
    }

    fn signature(body: &[u8]) -> String {
        sign(&config(&["shpss_a"]), body, 0, "").unwrap().headers[0]
            .1
            .clone()
    }

    #[test]
    fn shopify_prefixed_and_unprefixed_headers_verify() {
        let sig = signature(b"{}");
        for name in [
            "X-Shopify-Hmac-Sha256",
            "x-shopify-hmac-sha256",
            "Shopify-Hmac-Sha256",
        ] {
            assert_eq!(
                Req::post(b"{}", 0)
                    .header(name, &sig)
                    .verify(&config(&["shpss_a"])),
                Ok(()),
                "{name}"
            );
        }
    }

    #[test]
    fn shopify_missing_header_is_named() {
        assert_eq!(
            Req::post(b"{}", 0).verify(&config(&["shpss_a"])),
            Err(VerifyError::MissingHeader("X-Shopify-Hmac-Sha256".into()))
        );
    }

    #[test]
    fn shopify_tampered_body_hex_and_garbage_are_mismatches() {
        let sig = signature(b"{}");
        let req =
            |body: &[u8], value: &str| Req::post(body, 0).header("X-Shopify-Hmac-Sha256", value);
        assert_eq!(
            req(b"{ }", &sig).verify(&config(&["shpss_a"])),
            Err(VerifyError::Mismatch)
        );
        let hex = hex::encode(super::super::mac::decode_base64(&sig).unwrap());
        for bad in [hex.as_str(), "", "====", "not base64"] {
            assert_eq!(
                req(b"{}", bad).verify(&config(&["shpss_a"])),
                Err(VerifyError::Mismatch),
                "{bad}"
            );
        }
    }

    #[test]
    fn shopify_old_secret_still_matches_during_rotation() {
        let sig = signature(b"{}");
        let req = Req::post(b"{}", 0).header("X-Shopify-Hmac-Sha256", &sig);
        assert_eq!(req.verify(&config(&["shpss_new", "shpss_a"])), Ok(()));
    }

    #[test]
    fn shopify_sign_then_verify_round_trips() {
        assert_eq!(
            round_trip(&config(&["shpss_a"]), b"{\"id\":1}", "https://x/shop"),
            Ok(())
        );
    }
}
