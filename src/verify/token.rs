//! The `token` verifier: a header (e.g. `Authorization: Bearer …`) or a query
//! parameter must equal a configured value, compared in constant time. A
//! query token is weak (it lands in access logs) but some senders offer
//! nothing else; a missing parameter is a plain mismatch since it is no header.

use super::mac::{Keys, header};
use super::{BuildError, Incoming, Scheme, Secret, TokenLocation, Verify, VerifyError};
use super::{Reader, Sender, VerifierConfig};
use crate::keys::{Key, Ty};

/// The validated settings of a `token:` block (what `decode` reads).
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub location: TokenLocation,
    pub values: Vec<Secret>,
}

impl Config {
    /// The verifier these settings describe.
    pub(super) fn build(&self) -> Result<Box<dyn Scheme>, BuildError> {
        Ok(Box::new(Token::new(&self.location, &self.values)?))
    }
}

/// The `token:` entry of a `verify:` block.
pub(super) const SENDER: Sender = Sender {
    name: "token",
    about: "a header (or a query parameter) equals a value",
    keys: &[
        Key::optional(
            "header",
            Ty::Text,
            "the header that carries the token (this or `query`)",
        ),
        Key::optional(
            "query",
            Ty::Text,
            "the query parameter that carries the token (this or `header`)",
        ),
        Key::required(
            "value",
            Ty::Secrets,
            "the expected value, e.g. `Bearer ${CI_TOKEN}`",
        ),
    ],
    decode,
};

fn decode(r: &mut dyn Reader) -> Option<VerifierConfig> {
    let location = match (r.has("header"), r.has("query")) {
        (true, false) => r.required("header").map(TokenLocation::Header),
        (false, true) => r.required("query").map(TokenLocation::Query),
        _ => {
            r.error("verifier `token` needs exactly one of `header` or `query`".to_string());
            None
        }
    };
    let values = r.secrets("value");
    Some(VerifierConfig::Token(crate::verify::token::Config {
        location: location?,
        values: values?,
    }))
}

#[derive(Debug)]
pub(crate) struct Token {
    location: TokenLocation,
    values: Keys,
}

impl Token {
    pub(crate) fn new(location: &TokenLocation, values: &[Secret]) -> Result<Self, BuildError> {
        let location = match location {
            TokenLocation::Header(name) => {
                TokenLocation::Header(super::header_name("token", name)?)
            }
            TokenLocation::Query(name) if name.is_empty() => {
                return Err(BuildError::Empty {
                    kind: "token",
                    what: "query parameter name",
                });
            }
            TokenLocation::Query(name) => TokenLocation::Query(name.clone()),
        };
        Ok(Token {
            location,
            values: Keys::utf8("token", values)?,
        })
    }

    /// A header token becomes a header; a query token is appended to `url`.
    pub(crate) fn sign(&self, url: &mut String) -> Vec<(String, String)> {
        let value = String::from_utf8_lossy(self.values.first()).into_owned();
        match &self.location {
            TokenLocation::Header(name) => vec![(name.clone(), value)],
            TokenLocation::Query(name) => {
                let pair = form_urlencoded::Serializer::new(String::new())
                    .append_pair(name, &value)
                    .finish();
                super::sign::append_query(url, &pair);
                Vec::new()
            }
        }
    }
}

impl Verify for Token {
    fn verify(&self, req: &Incoming<'_>) -> Result<(), VerifyError> {
        let matched = match &self.location {
            TokenLocation::Header(name) => self.values.contains(header(req, name)?.as_bytes()),
            TokenLocation::Query(name) => {
                let query = req.query.unwrap_or_default();
                // The first occurrence counts, as most web frameworks read it.
                let value = form_urlencoded::parse(query.as_bytes())
                    .find(|(key, _)| key == name)
                    .map(|(_, value)| value)
                    .ok_or(VerifyError::Mismatch)?;
                self.values.contains(value.as_bytes())
            }
        };
        if matched {
            Ok(())
        } else {
            Err(VerifyError::Mismatch)
        }
    }
}

impl Scheme for Token {
    fn name(&self) -> &'static str {
        SENDER.name
    }

    /// Reads no body.
    fn payload_members(&self) -> Option<&'static [&'static str]> {
        Some(&[])
    }

    fn sign(&self, _body: &[u8], _now: i64, url: &mut String) -> Vec<(String, String)> {
        Token::sign(self, url)
    }

    fn credential_header(&self) -> Option<&str> {
        match &self.location {
            TokenLocation::Header(name) => Some(name),
            TokenLocation::Query(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{Req, round_trip};
    use super::super::{Secret, TokenLocation, VerifierConfig, VerifyError};

    fn config(location: TokenLocation, values: &[&str]) -> VerifierConfig {
        VerifierConfig::Token(crate::verify::token::Config {
            location,
            values: values.iter().map(|s| Secret::new(*s)).collect(),
        })
    }

    fn header_config(values: &[&str]) -> VerifierConfig {
        config(TokenLocation::Header("Authorization".into()), values)
    }

    #[test]
    fn token_header_must_equal_a_value_exactly() {
        let cfg = header_config(&["Bearer new", "Bearer old"]);
        let req = |v: &str| Req::post(b"", 0).header("authorization", v);
        assert_eq!(req("Bearer old").verify(&cfg), Ok(()));
        for bad in ["Bearer ol", "Bearer old ", "bearer old", ""] {
            assert_eq!(req(bad).verify(&cfg), Err(VerifyError::Mismatch), "{bad:?}");
        }
        assert_eq!(
            Req::post(b"", 0).verify(&cfg),
            Err(VerifyError::MissingHeader("Authorization".into()))
        );
    }

    #[test]
    fn token_query_parameter_is_decoded_and_compared() {
        let cfg = config(TokenLocation::Query("token".into()), &["a b&c"]);
        let req = |q: &str| Req::post(b"", 0).query(q);
        assert_eq!(req("x=1&token=a+b%26c").verify(&cfg), Ok(()));
        assert_eq!(req("token=a+b").verify(&cfg), Err(VerifyError::Mismatch));
        assert_eq!(req("tok=a+b%26c").verify(&cfg), Err(VerifyError::Mismatch));
        assert_eq!(Req::post(b"", 0).verify(&cfg), Err(VerifyError::Mismatch));
        assert_eq!(req("token=%FF%FE").verify(&cfg), Err(VerifyError::Mismatch));
    }

    #[test]
    fn token_sign_then_verify_round_trips_for_header_and_query() {
        assert_eq!(
            round_trip(&header_config(&["Bearer t"]), b"", "https://x/ci"),
            Ok(())
        );
        let query = config(TokenLocation::Query("key".into()), &["s3=cr&t"]);
        assert_eq!(round_trip(&query, b"", "https://x/ci?a=1"), Ok(()));
        let signed = super::super::sign(&query, b"", 0, "https://x/ci").unwrap();
        assert_eq!(signed.url, "https://x/ci?key=s3%3Dcr%26t");
    }
}
