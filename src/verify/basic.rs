//! HTTP Basic authentication: `Authorization: Basic base64(username:password)`
//! with the configured username and any configured password (rotation). Both
//! parts are compared in constant time and both are always compared, so the
//! timing does not reveal which one was wrong.

use subtle::{Choice, ConstantTimeEq};

use super::mac::{Keys, decode_base64, encode_base64, header};
use super::{BuildError, Incoming, Scheme, Secret, Verify, VerifyError};
use super::{Reader, Sender, VerifierConfig};
use crate::keys::{Key, Ty};

/// The validated settings of a `basic:` block (what `decode` reads).
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub username: String,
    pub passwords: Vec<Secret>,
}

impl Config {
    /// The verifier these settings describe.
    pub(super) fn build(&self) -> Result<Box<dyn Scheme>, BuildError> {
        Ok(Box::new(Basic::new(&self.username, &self.passwords)?))
    }
}

/// The `basic:` entry of a `verify:` block.
pub(super) const SENDER: Sender = Sender {
    name: "basic",
    about: "HTTP basic authentication",
    keys: &[
        Key::required("username", Ty::Text, "the expected user name"),
        Key::required("password", Ty::Secrets, "the expected password"),
    ],
    decode,
};

fn decode(r: &mut dyn Reader) -> Option<VerifierConfig> {
    let username = r.required("username");
    let passwords = r.secrets("password");
    Some(VerifierConfig::Basic(crate::verify::basic::Config {
        username: username?,
        passwords: passwords?,
    }))
}

const HEADER: &str = "Authorization";

#[derive(Debug)]
pub(crate) struct Basic {
    username: String,
    passwords: Keys,
}

impl Basic {
    pub(crate) fn new(username: &str, passwords: &[Secret]) -> Result<Self, BuildError> {
        if username.is_empty() {
            return Err(BuildError::Empty {
                kind: "basic",
                what: "username",
            });
        }
        Ok(Basic {
            username: username.to_owned(),
            passwords: Keys::utf8("basic", passwords)?,
        })
    }

    pub(crate) fn sign(&self) -> Vec<(String, String)> {
        let mut credentials = format!("{}:", self.username).into_bytes();
        credentials.extend_from_slice(self.passwords.first());
        vec![(
            HEADER.to_owned(),
            format!("Basic {}", encode_base64(&credentials)),
        )]
    }
}

impl Verify for Basic {
    fn verify(&self, req: &Incoming<'_>) -> Result<(), VerifyError> {
        let value = header(req, HEADER)?;
        let (scheme, encoded) = value.split_once(' ').ok_or(VerifyError::Mismatch)?;
        // The scheme name is case-insensitive (RFC 7617).
        if !scheme.eq_ignore_ascii_case("basic") {
            return Err(VerifyError::Mismatch);
        }
        let decoded = decode_base64(encoded.trim()).ok_or(VerifyError::Mismatch)?;
        // The username cannot contain ':', the password may.
        let colon = decoded
            .iter()
            .position(|&b| b == b':')
            .ok_or(VerifyError::Mismatch)?;
        let (user, password) = decoded.split_at(colon);
        let password = password.get(1..).unwrap_or_default();
        let user_ok: Choice = self.username.as_bytes().ct_eq(user);
        let password_ok = Choice::from(u8::from(self.passwords.contains(password)));
        if bool::from(user_ok & password_ok) {
            Ok(())
        } else {
            Err(VerifyError::Mismatch)
        }
    }
}

impl Scheme for Basic {
    fn name(&self) -> &'static str {
        SENDER.name
    }

    /// Reads no body.
    fn payload_members(&self) -> Option<&'static [&'static str]> {
        Some(&[])
    }

    fn sign(&self, _body: &[u8], _now: i64, _url: &mut String) -> Vec<(String, String)> {
        Basic::sign(self)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{Req, round_trip};
    use super::super::{Secret, VerifierConfig, VerifyError};

    fn config(username: &str, passwords: &[&str]) -> VerifierConfig {
        VerifierConfig::Basic(crate::verify::basic::Config {
            username: username.into(),
            passwords: passwords.iter().map(|s| Secret::new(*s)).collect(),
        })
    }

    fn auth(value: &str) -> Req {
        Req::post(b"", 0).header("Authorization", value)
    }

    #[test]
    fn basic_right_user_and_any_password_pass() {
        let cfg = config("hook", &["new:pw", "old"]);
        // base64("hook:old") and base64("hook:new:pw"), the latter unpadded.
        assert_eq!(auth("Basic aG9vazpvbGQ=").verify(&cfg), Ok(()));
        assert_eq!(auth("basic aG9vazpuZXc6cHc").verify(&cfg), Ok(()));
    }

    #[test]
    fn basic_wrong_user_password_or_garbage_is_a_mismatch() {
        let cfg = config("hook", &["old"]);
        // base64("hook:olD"), base64("hoo:old"), base64("hookold")
        for bad in [
            "Basic aG9vazpvbEQ=",
            "Basic aG9vOm9sZA==",
            "Basic aG9va29sZA==",
            "Bearer aG9vazpvbGQ=",
            "Basic",
            "Basic !!",
        ] {
            assert_eq!(auth(bad).verify(&cfg), Err(VerifyError::Mismatch), "{bad}");
        }
        assert_eq!(
            Req::post(b"", 0).verify(&cfg),
            Err(VerifyError::MissingHeader("Authorization".into()))
        );
    }

    #[test]
    fn basic_sign_then_verify_round_trips() {
        assert_eq!(
            round_trip(&config("hook", &["p:w", "old"]), b"{}", "https://x/b"),
            Ok(())
        );
    }
}
