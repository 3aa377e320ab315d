//! Slack request signing: `X-Slack-Signature: v0=<hex HMAC-SHA256(secret,
//! "v0:<X-Slack-Request-Timestamp>:<raw body>")>`.
//!
//! Policy for the clock: a timestamp more than `tolerance` away from now in
//! EITHER direction is refused, as Slack's docs pseudo-code and slack_sdk do
//! (`abs(now - ts) > tolerance`). Bolt only refuses stale requests; we follow
//! the docs because a far-future timestamp lets a captured request be replayed
//! later, and Slack's own clock is not minutes ahead. Exactly `tolerance` passes.

use std::time::Duration;

use super::mac::{Keys, Window, check_window, header, parse_timestamp};
use super::registry::DEFAULT_TOLERANCE;
use super::{
    BuildError, Delivered, Encoding, HmacAlgorithm, Incoming, Scheme, Secret, Verify, VerifyError,
};
use super::{Reader, Sender, VerifierConfig};
use crate::keys::{Key, Ty};

/// The validated settings of a `slack:` block (what `decode` reads).
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub secrets: Vec<Secret>,
    pub tolerance: Duration,
}

impl Config {
    /// The verifier these settings describe.
    pub(super) fn build(&self) -> Result<Box<dyn Scheme>, BuildError> {
        Ok(Box::new(Slack::new(&self.secrets, self.tolerance)?))
    }
}

/// The `slack:` entry of a `verify:` block.
pub(super) const SENDER: Sender = Sender {
    name: "slack",
    about: "Slack: `X-Slack-Signature` (`v0=…`) over the timestamp and body; answers the Events API handshake",
    keys: &[
        Key::required("secret", Ty::Secrets, "the app's signing secret"),
        Key::defaults(
            "tolerance",
            Ty::Duration,
            "5m",
            "how old `X-Slack-Request-Timestamp` may be",
        ),
    ],
    decode,
};

fn decode(r: &mut dyn Reader) -> Option<VerifierConfig> {
    let secrets = r.secrets("secret");
    let tolerance = r.duration("tolerance", DEFAULT_TOLERANCE);
    Some(VerifierConfig::Slack(crate::verify::slack::Config {
        secrets: secrets?,
        tolerance: tolerance?,
    }))
}

const SIGNATURE: &str = "X-Slack-Signature";
const TIMESTAMP: &str = "X-Slack-Request-Timestamp";

#[derive(Debug)]
pub(crate) struct Slack {
    keys: Keys,
    tolerance: Duration,
}

impl Slack {
    pub(crate) fn new(secrets: &[Secret], tolerance: Duration) -> Result<Self, BuildError> {
        Ok(Slack {
            keys: Keys::utf8("slack", secrets)?,
            tolerance,
        })
    }

    pub(crate) fn sign(&self, body: &[u8], now: i64) -> Vec<(String, String)> {
        let ts = now.to_string();
        let hex = self.keys.sign(
            HmacAlgorithm::Sha256,
            Encoding::Hex,
            &[b"v0:", ts.as_bytes(), b":", body],
        );
        vec![
            (TIMESTAMP.to_owned(), ts),
            (SIGNATURE.to_owned(), format!("v0={hex}")),
        ]
    }
}

impl Verify for Slack {
    fn verify(&self, req: &Incoming<'_>) -> Result<(), VerifyError> {
        let ts_text = header(req, TIMESTAMP)?;
        let signature = header(req, SIGNATURE)?;
        let timestamp = parse_timestamp(ts_text)?;
        // Only v0 exists; both SDKs compare the full string (lowercase hex).
        let hex = signature.strip_prefix("v0=").ok_or(VerifyError::Mismatch)?;
        // The basestring carries the header verbatim, not a re-printed number.
        let parts: [&[u8]; 4] = [b"v0:", ts_text.as_bytes(), b":", req.body];
        if !self
            .keys
            .any_matches(HmacAlgorithm::Sha256, Encoding::Hex, &parts, &[hex])
        {
            return Err(VerifyError::Mismatch);
        }
        check_window(Window::Both, self.tolerance, req.now, timestamp)
    }
}

impl Scheme for Slack {
    fn name(&self) -> &'static str {
        SENDER.name
    }

    /// The event (`event.type`, `type`, `command`), `event_id` and the `url_verification` handshake.
    fn payload_members(&self) -> Option<&'static [&'static str]> {
        Some(&["event", "type", "command", "event_id", "challenge"])
    }

    fn sign(&self, body: &[u8], now: i64, _url: &mut String) -> Vec<(String, String)> {
        Slack::sign(self, body, now)
    }

    /// Events API `event.type`, else `type`, else a slash command's name.
    fn event(&self, delivery: &Delivered<'_>) -> Option<String> {
        delivery
            .string_at("/event/type")
            .or_else(|| delivery.string_at("/type"))
            .or_else(|| delivery.string_at("/command"))
    }

    fn dedupe_key(&self, delivery: &Delivered<'_>) -> Option<String> {
        delivery.string_at("/event_id")
    }

    /// The Events API's `url_verification`: answer the challenge.
    fn handshake(&self, payload: &serde_json::Value) -> Option<String> {
        if payload.get("type").and_then(serde_json::Value::as_str) != Some("url_verification") {
            return None;
        }
        Some(
            payload
                .get("challenge")
                .and_then(serde_json::Value::as_str)
                .unwrap_or_default()
                .to_owned(),
        )
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::testing::{Req, round_trip};
    use super::super::{Secret, VerifierConfig, VerifyError};

    // Slack's documented example (docs.slack.dev and slack_sdk's unit test).
    const DOCS_SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
    const DOCS_TS: &str = "1531420618";
    const DOCS_SIG: &str = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";
    const DOCS_BODY: &[u8] = b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";

    fn config(secrets: &[&str]) -> VerifierConfig {
        VerifierConfig::Slack(crate::verify::slack::Config {
            secrets: secrets.iter().map(|s| Secret::new(*s)).collect(),
            tolerance: Duration::from_secs(300),
        })
    }

    fn docs_request(now: i64, signature: &str) -> Req {
        Req::post(DOCS_BODY, now)
            .header("X-Slack-Request-Timestamp", DOCS_TS)
            .header("X-Slack-Signature", signature)
    }

    #[test]
    fn slack_docs_example_verifies_and_rotation_finds_second_secret() {
        assert_eq!(
            docs_request(1_531_420_618, DOCS_SIG).verify(&config(&[DOCS_SECRET])),
            Ok(())
        );
        assert_eq!(
            docs_request(1_531_420_618, DOCS_SIG).verify(&config(&["other", DOCS_SECRET])),
            Ok(())
        );
    }

    #[test]
    fn slack_timestamp_outside_tolerance_is_rejected_both_ways() {
        for now in [1_531_420_618 + 301, 1_531_420_618 - 301] {
            assert_eq!(
                docs_request(now, DOCS_SIG).verify(&config(&[DOCS_SECRET])),
                Err(VerifyError::TimestampOutsideTolerance)
            );
        }
        assert_eq!(
            docs_request(1_531_420_618 - 300, DOCS_SIG).verify(&config(&[DOCS_SECRET])),
            Ok(())
        );
    }

    #[test]
    fn slack_missing_headers_are_named() {
        let no_ts = Req::post(DOCS_BODY, 0).header("X-Slack-Signature", DOCS_SIG);
        assert_eq!(
            no_ts.verify(&config(&[DOCS_SECRET])),
            Err(VerifyError::MissingHeader(
                "X-Slack-Request-Timestamp".into()
            ))
        );
        let no_sig = Req::post(DOCS_BODY, 0).header("X-Slack-Request-Timestamp", DOCS_TS);
        assert_eq!(
            no_sig.verify(&config(&[DOCS_SECRET])),
            Err(VerifyError::MissingHeader("X-Slack-Signature".into()))
        );
    }

    #[test]
    fn slack_tampered_body_and_garbage_signatures_are_mismatches() {
        let mut tampered = docs_request(1_531_420_618, DOCS_SIG);
        tampered.body.push(b'x');
        assert_eq!(
            tampered.verify(&config(&[DOCS_SECRET])),
            Err(VerifyError::Mismatch)
        );
        for bad in ["", "v0=", "v1=a2114d57", "v0=ZZ", &DOCS_SIG.to_uppercase()] {
            assert_eq!(
                docs_request(1_531_420_618, bad).verify(&config(&[DOCS_SECRET])),
                Err(VerifyError::Mismatch)
            );
        }
        let bad_ts = Req::post(DOCS_BODY, 0)
            .header("X-Slack-Request-Timestamp", "yesterday")
            .header("X-Slack-Signature", DOCS_SIG);
        assert_eq!(
            bad_ts.verify(&config(&[DOCS_SECRET])),
            Err(VerifyError::Mismatch)
        );
    }

    #[test]
    fn slack_sign_then_verify_round_trips() {
        assert_eq!(
            round_trip(
                &config(&["abc", "old"]),
                b"payload=%7B%7D",
                "https://x/slack"
            ),
            Ok(())
        );
    }
}
