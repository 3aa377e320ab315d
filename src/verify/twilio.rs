//! Twilio: `X-Twilio-Signature: <base64 HMAC-SHA1(auth token, URL + params)>`.
//!
//! * URL: the configured `public_url` (what Twilio was given; behind a proxy
//!   the server cannot know it) plus `?` and the request's raw query, if any.
//! * Form POST: every body parameter, names sorted bytewise, values
//!   URL-decoded, `name+value` concatenated; a repeated name contributes each
//!   distinct value, sorted (twilio-python).
//! * JSON body: the query carries `bodySHA256=<hex SHA-256 of the body>`,
//!   which must match, and the signature covers the URL alone. GET: URL alone.
//! * SharedKey (beta): `X-Twilio-Webhooks-Signature-Settings: …,algorithm=HMAC_SHA256`
//!   switches to HMAC-SHA256 keyed with the configured secret.
//!
//! Port policy: like both official SDKs, a signature over the URL with the
//! scheme's default port (`:443`/`:80`) added or removed is also accepted, as
//! the URL Twilio signs depends on how the user typed it into the console.
//! Only default ports are toggled; any other port must match as configured.

use std::collections::{BTreeMap, BTreeSet};

use super::mac::{Keys, ct_eq, header, optional_header, sha256_hex};
use super::sign::append_query;
use super::{BuildError, Encoding, HmacAlgorithm, Incoming, Scheme, Secret, Verify, VerifyError};
use super::{Reader, Sender, VerifierConfig};
use crate::keys::{Key, Ty};

/// The validated settings of a `twilio:` block (what `decode` reads).
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub secrets: Vec<Secret>,
    /// The URL Twilio was given, without its query string.
    pub public_url: String,
}

impl Config {
    /// The verifier these settings describe.
    pub(super) fn build(&self) -> Result<Box<dyn Scheme>, BuildError> {
        Ok(Box::new(Twilio::new(&self.secrets, &self.public_url)?))
    }
}

/// The `twilio:` entry of a `verify:` block.
pub(super) const SENDER: Sender = Sender {
    name: "twilio",
    about: "Twilio: `X-Twilio-Signature` over the public URL and the form parameters (or `bodySHA256` for JSON)",
    keys: &[
        Key::required("secret", Ty::Secrets, "the account's auth token"),
        Key::required(
            "public_url",
            Ty::Text,
            "the URL Twilio was given, without its query string",
        ),
    ],
    decode,
};

fn decode(r: &mut dyn Reader) -> Option<VerifierConfig> {
    let secrets = r.secrets("secret");
    let public_url = r.required("public_url");
    Some(VerifierConfig::Twilio(crate::verify::twilio::Config {
        secrets: secrets?,
        public_url: public_url?,
    }))
}

const SIGNATURE: &str = "X-Twilio-Signature";
const SETTINGS: &str = "X-Twilio-Webhooks-Signature-Settings";
const BODY_HASH: &str = "bodySHA256";

#[derive(Debug)]
pub(crate) struct Twilio {
    keys: Keys,
    /// The URL Twilio was configured with, without a query string.
    public_url: String,
}

impl Twilio {
    pub(crate) fn new(secrets: &[Secret], public_url: &str) -> Result<Self, BuildError> {
        let lower = public_url.to_ascii_lowercase();
        let absolute = lower.starts_with("https://") || lower.starts_with("http://");
        if !absolute || public_url.contains(['?', '#']) {
            return Err(BuildError::InvalidPublicUrl);
        }
        Ok(Twilio {
            keys: Keys::utf8("twilio", secrets)?,
            public_url: public_url.to_owned(),
        })
    }

    /// Signs a request to `url`. A JSON body is signed the way Twilio does it,
    /// by adding its hash to the URL; any other non-empty body is treated as a
    /// form. Always HMAC-SHA1: SharedKey signing is a sender-side setting.
    pub(crate) fn sign(&self, url: &mut String, body: &[u8]) -> Vec<(String, String)> {
        let params = if is_json(body) {
            append_query(url, &format!("{BODY_HASH}={}", sha256_hex(body)));
            String::new()
        } else {
            sorted_params(body)
        };
        let parts: [&[u8]; 2] = [url.as_bytes(), params.as_bytes()];
        let sig = self
            .keys
            .sign(HmacAlgorithm::Sha1, Encoding::Base64, &parts);
        vec![(SIGNATURE.to_owned(), sig)]
    }
}

impl Verify for Twilio {
    fn verify(&self, req: &Incoming<'_>) -> Result<(), VerifyError> {
        let signature = header(req, SIGNATURE)?;
        let algorithm = signature_algorithm(optional_header(req, SETTINGS)?)?;
        let query = req.query.filter(|q| !q.is_empty());
        let url = match query {
            Some(query) => format!("{}?{query}", self.public_url),
            None => self.public_url.clone(),
        };
        let body_hash = query.and_then(|q| {
            form_urlencoded::parse(q.as_bytes())
                .find(|(name, _)| name == BODY_HASH)
                .map(|(_, value)| value.into_owned())
        });
        let params = match body_hash {
            Some(expected) => {
                if !ct_eq(sha256_hex(req.body).as_bytes(), expected.as_bytes()) {
                    return Err(VerifyError::Mismatch);
                }
                String::new()
            }
            None if req.method.eq_ignore_ascii_case("GET") => String::new(),
            None => sorted_params(req.body),
        };
        let matched = url_variants(&url).iter().any(|candidate| {
            let parts: [&[u8]; 2] = [candidate.as_bytes(), params.as_bytes()];
            self.keys
                .any_matches(algorithm, Encoding::Base64, &parts, &[signature])
        });
        if matched {
            Ok(())
        } else {
            Err(VerifyError::Mismatch)
        }
    }
}

/// HMAC-SHA1 unless the settings header names another algorithm we know.
fn signature_algorithm(settings: Option<&str>) -> Result<HmacAlgorithm, VerifyError> {
    let named = settings.and_then(|s| {
        s.split(',')
            .filter_map(|item| item.trim().split_once('='))
            .find(|(key, _)| key.trim() == "algorithm")
            .map(|(_, value)| value.trim())
    });
    match named {
        None | Some("HMAC_SHA1") => Ok(HmacAlgorithm::Sha1),
        Some("HMAC_SHA256") => Ok(HmacAlgorithm::Sha256),
        Some(_) => Err(VerifyError::Mismatch),
    }
}

/// The form parameters in Twilio's canonical order, concatenated.
fn sorted_params(body: &[u8]) -> String {
    let mut params: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (name, value) in form_urlencoded::parse(body) {
        params
            .entry(name.into_owned())
            .or_default()
            .insert(value.into_owned());
    }
    let mut out = String::new();
    for (name, values) in &params {
        for value in values {
            out.push_str(name);
            out.push_str(value);
        }
    }
    out
}

fn is_json(body: &[u8]) -> bool {
    let starts_like_json = body
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| matches!(b, b'{' | b'['));
    starts_like_json && serde_json::from_slice::<serde_json::Value>(body).is_ok()
}

/// The URL as given, plus the same URL with the default port toggled.
fn url_variants(url: &str) -> Vec<String> {
    let mut variants = vec![url.to_owned()];
    variants.extend(toggle_default_port(url));
    variants
}

fn toggle_default_port(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let default = match scheme.to_ascii_lowercase().as_str() {
        "https" => "443",
        "http" => "80",
        _ => return None,
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let host_start = authority.rfind('@').map_or(0, |at| at + 1);
    let (userinfo, host_port) = authority.split_at(host_start);
    // A ':' inside an IPv6 literal's brackets is not a port separator.
    let port_at = host_port
        .rfind(':')
        .filter(|&i| host_port.get(i..).is_some_and(|p| !p.contains(']')));
    match port_at {
        Some(i) => {
            let (host, port) = host_port.split_at(i);
            (port.strip_prefix(':') == Some(default))
                .then(|| format!("{scheme}://{userinfo}{host}{tail}"))
        }
        None => Some(format!("{scheme}://{userinfo}{host_port}:{default}{tail}")),
    }
}

impl Scheme for Twilio {
    fn name(&self) -> &'static str {
        SENDER.name
    }

    /// Reads no body (form bodies are parsed whole anyway).
    fn payload_members(&self) -> Option<&'static [&'static str]> {
        Some(&[])
    }

    fn sign(&self, body: &[u8], _now: i64, url: &mut String) -> Vec<(String, String)> {
        Twilio::sign(self, url, body)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{Req, round_trip};
    use super::super::{Secret, VerifierConfig, VerifyError, sign};
    use super::toggle_default_port;

    const DOCS_BODY: &[u8] =
        b"CallSid=CA1234567890ABCDE&Caller=%2B12349013030&Digits=1234&From=%2B12349013030&To=%2B18005551212";

    fn config(secrets: &[&str], public_url: &str) -> VerifierConfig {
        VerifierConfig::Twilio(crate::verify::twilio::Config {
            secrets: secrets.iter().map(|s| Secret::new(*s)).collect(),
            public_url: public_url.into(),
        })
    }

    fn docs_request(signature: &str) -> Req {
        Req::post(DOCS_BODY, 0)
            .query("foo=1&bar=2")
            .header("X-Twilio-Signature", signature)
    }

    #[test]
    fn twilio_docs_example_verifies_with_rotation() {
        let cfg = config(&["other", "12345"], "https://mycompany.com/myapp.php");
        assert_eq!(
            docs_request("0/KCTR6DLpKmkAf8muzZqo1nDgQ=").verify(&cfg),
            Ok(())
        );
    }

    #[test]
    fn twilio_changed_param_or_missing_query_is_a_mismatch() {
        let cfg = config(&["12345"], "https://mycompany.com/myapp.php");
        let mut changed = docs_request("0/KCTR6DLpKmkAf8muzZqo1nDgQ=");
        changed.body = String::from_utf8_lossy(DOCS_BODY)
            .replace("Digits=1234", "Digits=9999")
            .into_bytes();
        assert_eq!(changed.verify(&cfg), Err(VerifyError::Mismatch));
        let mut no_query = docs_request("0/KCTR6DLpKmkAf8muzZqo1nDgQ=");
        no_query.query = None;
        assert_eq!(no_query.verify(&cfg), Err(VerifyError::Mismatch));
        for bad in ["", "%%%", "0/KCTR6DLpKmkAf8muzZqo1nDgQ"] {
            assert_eq!(
                docs_request(bad).verify(&cfg),
                Err(VerifyError::Mismatch),
                "{bad}"
            );
        }
    }

    #[test]
    fn twilio_missing_signature_is_named() {
        let cfg = config(&["12345"], "https://mycompany.com/myapp.php");
        assert_eq!(
            Req::post(DOCS_BODY, 0).verify(&cfg),
            Err(VerifyError::MissingHeader("X-Twilio-Signature".into()))
        );
    }

    #[test]
    fn twilio_json_body_must_match_its_body_sha256() {
        let cfg = config(&["tok"], "https://h.example/t");
        let body = br#"{"EventType":"x"}"#;
        let signed = sign(&cfg, body, 0, "https://h.example/t").unwrap();
        let query = signed.url.split_once('?').unwrap().1.to_owned();
        assert!(query.starts_with("bodySHA256="));
        let ok = Req::post(body, 0).signed(&signed).query(&query);
        assert_eq!(ok.verify(&cfg), Ok(()));
        let tampered = Req::post(br#"{"EventType":"y"}"#, 0)
            .signed(&signed)
            .query(&query);
        assert_eq!(tampered.verify(&cfg), Err(VerifyError::Mismatch));
    }

    #[test]
    fn twilio_get_signs_the_url_only() {
        let cfg = config(&["tok"], "https://h.example/t");
        let signed = sign(&cfg, b"", 0, "https://h.example/t?From=%2B1").unwrap();
        let mut req = Req::post(b"ignored=1", 0)
            .signed(&signed)
            .query("From=%2B1");
        req.method = "GET";
        assert_eq!(req.verify(&cfg), Ok(()));
    }

    #[test]
    fn twilio_default_port_is_accepted_either_way() {
        let body = b"A=1";
        let with_port = sign(
            &config(&["tok"], "https://h.example:443/t"),
            body,
            0,
            "https://h.example:443/t",
        )
        .unwrap();
        let req = Req::post(body, 0).signed(&with_port);
        assert_eq!(req.verify(&config(&["tok"], "https://h.example/t")), Ok(()));
        let without = sign(
            &config(&["tok"], "https://h.example/t"),
            body,
            0,
            "https://h.example/t",
        )
        .unwrap();
        let req = Req::post(body, 0).signed(&without);
        assert_eq!(
            req.verify(&config(&["tok"], "https://h.example:443/t")),
            Ok(())
        );
        assert_eq!(
            req.verify(&config(&["tok"], "https://h.example:8443/t")),
            Err(VerifyError::Mismatch)
        );
    }

    #[test]
    fn twilio_port_toggling_handles_userinfo_ipv6_and_other_ports() {
        assert_eq!(
            toggle_default_port("http://u:p@h/x").as_deref(),
            Some("http://u:p@h:80/x")
        );
        assert_eq!(
            toggle_default_port("https://[::1]:443").as_deref(),
            Some("https://[::1]")
        );
        assert_eq!(
            toggle_default_port("https://[::1]/a").as_deref(),
            Some("https://[::1]:443/a")
        );
        assert_eq!(toggle_default_port("https://h:8443/a"), None);
        assert_eq!(toggle_default_port("ftp://h/a"), None);
    }

    #[test]
    fn twilio_repeated_params_contribute_each_sorted_value() {
        assert_eq!(super::sorted_params(b"b=2&a=z&a=y&a=z&c"), "ayazb2c");
    }

    #[test]
    fn twilio_shared_key_settings_switch_to_sha256() {
        let mac = super::super::mac::hmac(
            super::HmacAlgorithm::Sha256,
            b"shared",
            &[b"https://h.example/t", b"A1"],
        );
        let sig = super::super::mac::encode(super::Encoding::Base64, &mac);
        let req = Req::post(b"A=1", 0)
            .header("X-Twilio-Signature", &sig)
            .header(
                "X-Twilio-Webhooks-Signature-Settings",
                "key=k1,algorithm=HMAC_SHA256",
            );
        assert_eq!(
            req.verify(&config(&["shared"], "https://h.example/t")),
            Ok(())
        );
        let unknown = Req::post(b"A=1", 0)
            .header("X-Twilio-Signature", &sig)
            .header("X-Twilio-Webhooks-Signature-Settings", "algorithm=ED25519");
        assert_eq!(
            unknown.verify(&config(&["shared"], "https://h.example/t")),
            Err(VerifyError::Mismatch)
        );
    }

    #[test]
    fn twilio_public_url_with_query_is_a_build_error() {
        assert!(super::super::build(&config(&["t"], "https://h/t?x=1")).is_err());
        assert!(super::super::build(&config(&["t"], "h/t")).is_err());
    }

    #[test]
    fn twilio_sign_then_verify_round_trips_for_form_and_json() {
        let cfg = config(&["tok", "old"], "https://h.example/sms");
        assert_eq!(
            round_trip(
                &cfg,
                b"Body=caf%C3%A9+%26+more&From=%2B1",
                "https://h.example/sms"
            ),
            Ok(())
        );
        assert_eq!(
            round_trip(&cfg, br#"{"a":[1,2]}"#, "https://h.example/sms"),
            Ok(())
        );
    }
}
