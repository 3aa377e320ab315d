//! Shared building blocks for every scheme: HMAC over concatenated parts,
//! constant-time comparison, a rotation-aware key list, header reading and
//! timestamp windows. Schemes describe *what* is signed; this file owns *how*.

use std::fmt;
use std::time::Duration;

use ::hmac::{Hmac, KeyInit, Mac};
use base64::Engine;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::{DecodePaddingMode, general_purpose};
use subtle::{Choice, ConstantTimeEq};

use super::{BuildError, Encoding, HmacAlgorithm, Incoming, Secret, VerifyError};

/// Standard-alphabet base64 that accepts input with or without padding and
/// with non-zero trailing bits, as Python's `b64decode` does: users paste
/// secrets and credentials from many places and a missing `=` is not an attack.
pub(crate) const LENIENT_BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// HMAC of `parts` concatenated, so callers never build a copy of a large body.
pub(crate) fn hmac(algorithm: HmacAlgorithm, key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    fn run<M: Mac + KeyInit>(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
        // HMAC hashes over-long keys and pads short ones: every length is fine.
        let mut mac = <M as KeyInit>::new_from_slice(key).expect("HMAC accepts keys of any length");
        for part in parts {
            mac.update(part);
        }
        mac.finalize().into_bytes().to_vec()
    }
    match algorithm {
        HmacAlgorithm::Sha1 => run::<Hmac<sha1::Sha1>>(key, parts),
        HmacAlgorithm::Sha256 => run::<Hmac<sha2::Sha256>>(key, parts),
        HmacAlgorithm::Sha512 => run::<Hmac<sha2::Sha512>>(key, parts),
    }
}

/// Lowercase hex SHA-256, as Twilio's `bodySHA256` carries it.
pub(crate) fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data).as_slice())
}

/// The text form a sender writes: lowercase hex or padded standard base64.
pub(crate) fn encode(encoding: Encoding, bytes: &[u8]) -> String {
    match encoding {
        Encoding::Hex => hex::encode(bytes),
        Encoding::Base64 => STANDARD.encode(bytes),
    }
}

/// Constant-time equality; different lengths are simply unequal.
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// The MAC keys of one verifier, in configured order. Several keys exist so a
/// secret can be rotated without downtime: any of them may match, and signing
/// uses the first. `Debug` never shows them.
#[derive(Clone)]
pub(crate) struct Keys(Vec<Vec<u8>>);

impl Keys {
    /// Keys that are the secrets' UTF-8 bytes (every scheme but `standard`).
    pub(crate) fn utf8(kind: &'static str, secrets: &[Secret]) -> Result<Self, BuildError> {
        Self::decoded(kind, secrets, |s| Ok(s.as_bytes().to_vec()))
    }

    /// Keys produced from each secret by `decode`, which may reject one.
    pub(crate) fn decoded(
        kind: &'static str,
        secrets: &[Secret],
        decode: impl Fn(&str) -> Result<Vec<u8>, ()>,
    ) -> Result<Self, BuildError> {
        if secrets.is_empty() {
            return Err(BuildError::NoSecrets { kind });
        }
        let mut keys = Vec::with_capacity(secrets.len());
        for (index, secret) in secrets.iter().enumerate() {
            let position = index + 1;
            // An empty secret is always a mistake (often an unset variable),
            // and for a token scheme it would let an empty header in.
            if secret.expose().is_empty() {
                return Err(BuildError::EmptySecret { kind, position });
            }
            let key = decode(secret.expose())
                .map_err(|()| BuildError::InvalidSecret { kind, position })?;
            if key.is_empty() {
                return Err(BuildError::EmptySecret { kind, position });
            }
            keys.push(key);
        }
        Ok(Keys(keys))
    }

    /// The key a sender uses: the first configured.
    pub(crate) fn first(&self) -> &[u8] {
        self.0.first().map_or(&[], Vec::as_slice)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &[u8]> {
        self.0.iter().map(Vec::as_slice)
    }

    /// The signature a sender writes for `parts`, with the first key.
    pub(crate) fn sign(
        &self,
        algorithm: HmacAlgorithm,
        encoding: Encoding,
        parts: &[&[u8]],
    ) -> String {
        encode(encoding, &hmac(algorithm, self.first(), parts))
    }

    /// Whether any received signature text equals the encoded MAC of `parts`
    /// under any key. Every pair is compared (no early exit) in constant time.
    pub(crate) fn any_matches(
        &self,
        algorithm: HmacAlgorithm,
        encoding: Encoding,
        parts: &[&[u8]],
        received: &[&str],
    ) -> bool {
        let mut found = Choice::from(0);
        for key in self.iter() {
            let expected = encode(encoding, &hmac(algorithm, key, parts));
            for candidate in received {
                found |= expected.as_bytes().ct_eq(candidate.as_bytes());
            }
        }
        found.into()
    }

    /// Whether `received` equals any key itself (token schemes), constant time.
    pub(crate) fn contains(&self, received: &[u8]) -> bool {
        self.iter()
            .fold(Choice::from(0), |found, key| found | key.ct_eq(received))
            .into()
    }
}

impl fmt::Debug for Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[*** x{}]", self.0.len())
    }
}

/// Decodes a standard-base64 value leniently (see [`LENIENT_BASE64`]).
pub(crate) fn decode_base64(text: &str) -> Option<Vec<u8>> {
    LENIENT_BASE64.decode(text).ok()
}

/// Encodes as padded standard base64 (HTTP Basic credentials and friends).
pub(crate) fn encode_base64(bytes: &[u8]) -> String {
    general_purpose::STANDARD.encode(bytes)
}

/// A header's value, or `MissingHeader(name)` naming it in the provider's casing.
pub(crate) fn header<'a>(req: &Incoming<'a>, name: &str) -> Result<&'a str, VerifyError> {
    optional_header(req, name)?.ok_or_else(|| VerifyError::MissingHeader(name.to_owned()))
}

/// A header's value if present. Header lookup is case-insensitive. A value
/// that is not visible ASCII cannot be any scheme's signature: `Mismatch`.
pub(crate) fn optional_header<'a>(
    req: &Incoming<'a>,
    name: &str,
) -> Result<Option<&'a str>, VerifyError> {
    match req.headers.get(name) {
        None => Ok(None),
        Some(value) => value.to_str().map(Some).map_err(|_| VerifyError::Mismatch),
    }
}

/// The first of several header names that is present (e.g. `webhook-id`, then
/// `svix-id`); when none is, the error names the first.
pub(crate) fn first_header<'a>(req: &Incoming<'a>, names: &[&str]) -> Result<&'a str, VerifyError> {
    for name in names {
        if let Some(value) = optional_header(req, name)? {
            return Ok(value);
        }
    }
    Err(VerifyError::MissingHeader(
        names.first().copied().unwrap_or_default().to_owned(),
    ))
}

/// Integer unix seconds; anything else (ISO dates, decimals) is a `Mismatch`.
pub(crate) fn parse_timestamp(text: &str) -> Result<i64, VerifyError> {
    text.trim()
        .parse::<i64>()
        .map_err(|_| VerifyError::Mismatch)
}

/// How far a signed timestamp may be from `now`, in either direction.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Window {
    /// Reject only old messages (Stripe's SDKs: future timestamps pass).
    PastOnly,
    /// Reject both old and too-new messages (Slack, Standard Webhooks).
    Both,
}

/// Checks `now` against a signed timestamp. Wide arithmetic: hostile headers
/// such as `t=-9223372036854775808` must not overflow.
pub(crate) fn check_window(
    window: Window,
    tolerance: Duration,
    now: i64,
    timestamp: i64,
) -> Result<(), VerifyError> {
    let tolerance = i128::from(tolerance.as_secs());
    let age = i128::from(now) - i128::from(timestamp);
    let too_old = age > tolerance;
    let too_new = matches!(window, Window::Both) && -age > tolerance;
    if too_old || too_new {
        Err(VerifyError::TimestampOutsideTolerance)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_sha256_matches_github_docs_vector() {
        let mac = hmac(
            HmacAlgorithm::Sha256,
            b"It's a Secret to Everybody",
            &[b"Hello, ", b"World!"],
        );
        assert_eq!(
            hex::encode(mac),
            "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
        );
    }

    #[test]
    fn keys_debug_never_shows_secrets() {
        let keys = Keys::utf8("github", &[Secret::new("hunter2")]).unwrap();
        assert_eq!(format!("{keys:?}"), "[*** x1]");
    }

    #[test]
    fn empty_secret_list_and_empty_secret_are_build_errors() {
        assert!(matches!(
            Keys::utf8("gitlab", &[]),
            Err(BuildError::NoSecrets { .. })
        ));
        assert!(matches!(
            Keys::utf8("gitlab", &[Secret::new("a"), Secret::new("")]),
            Err(BuildError::EmptySecret { position: 2, .. })
        ));
    }

    #[test]
    fn lenient_base64_accepts_missing_padding() {
        assert_eq!(decode_base64("aGk"), Some(b"hi".to_vec()));
        assert_eq!(decode_base64("aGk="), Some(b"hi".to_vec()));
        assert_eq!(decode_base64("not base64!"), None);
    }

    #[test]
    fn window_edges_are_inclusive_and_extremes_do_not_overflow() {
        let five_min = Duration::from_secs(300);
        assert!(check_window(Window::Both, five_min, 1300, 1000).is_ok());
        assert!(check_window(Window::Both, five_min, 700, 1000).is_ok());
        assert!(check_window(Window::Both, five_min, 1301, 1000).is_err());
        assert!(check_window(Window::Both, five_min, 699, 1000).is_err());
        assert!(check_window(Window::PastOnly, five_min, 0, 1_000_000).is_ok());
        assert!(check_window(Window::Both, five_min, i64::MAX, i64::MIN).is_err());
    }
}
