//! Runs every SDK-made signature vector in `tests/fixtures/signatures/`
//! (copied from the shared fixtures, see their README) through `verify::build`
//! with the vector's clock injected, and checks valid ⇔ Ok. Vectors the SDKs
//! disagree on (`policy_dependent`) are checked against hookflow's documented
//! policy in [`POLICY`], and every invalid vector's error kind is pinned too.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hookflow::verify::{Incoming, Secret, VerifierConfig, VerifyError, build};
use http::{HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;

/// Vector files and how many vectors each must hold (fixtures README table).
const FILES: &[(&str, usize)] = &[
    ("github", 7),
    ("stripe", 9),
    ("slack", 13),
    ("standardwebhooks", 19),
    ("shopify", 8),
    ("gitlab", 7),
    ("twilio", 8),
];

/// hookflow's outcome for each `policy_dependent` vector, and why.
const POLICY: &[(&str, bool, &str)] = &[
    (
        "github_legacy_sha1_only",
        false,
        "allow_sha1 defaults to false: sha1 is legacy; `allow_sha1: true` accepts it (checked below)",
    ),
    (
        "stripe_timestamp_in_future",
        true,
        "like stripe-node/stripe-python and SPEC 2.1: only age is checked",
    ),
    (
        "slack_future_timestamp_301s",
        false,
        "like Slack's docs and slack_sdk: |now - ts| > tolerance is refused",
    ),
    (
        "svix_prefixed_headers",
        true,
        "SPEC 2.1: the standard verifier also accepts svix-* header names",
    ),
    (
        "shopify_events_unprefixed_headers",
        true,
        "like @shopify/shopify-api: Shopify-Hmac-Sha256 is accepted too",
    ),
    (
        "twilio_signed_with_explicit_port",
        true,
        "like both Twilio SDKs: the default port may be present or absent",
    ),
    (
        "twilio_shared_key_hmac_sha256_beta",
        true,
        "like twilio-python: the settings header selects HMAC-SHA256",
    ),
];

/// Invalid vectors whose error is not a plain `Mismatch`.
fn expected_error(name: &str) -> VerifyError {
    let missing = |h: &str| VerifyError::MissingHeader(h.to_owned());
    match name {
        "github_push_missing_signature" | "github_legacy_sha1_only" => {
            missing("X-Hub-Signature-256")
        }
        "slack_missing_timestamp_header" => missing("X-Slack-Request-Timestamp"),
        "sw_missing_webhook_id" => missing("webhook-id"),
        "shopify_missing_hmac_header" => missing("X-Shopify-Hmac-Sha256"),
        "twilio_missing_signature" => missing("X-Twilio-Signature"),
        "stripe_expired_301s"
        | "stripe_replayed_next_day"
        | "slack_expired_301s"
        | "slack_docs_example_replayed_today"
        | "slack_future_timestamp_301s"
        | "sw_expired_timestamp"
        | "sw_timestamp_too_new" => VerifyError::TimestampOutsideTolerance,
        _ => VerifyError::Mismatch,
    }
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/signatures")
}

/// One vector, read into owned request parts.
struct Vector {
    file: &'static str,
    name: String,
    raw: Value,
    headers: HeaderMap,
    body: Vec<u8>,
    method: String,
    url: String,
    now: i64,
}

impl Vector {
    fn str(&self, key: &str) -> &str {
        self.raw[key]
            .as_str()
            .unwrap_or_else(|| panic!("{}: no string {key}", self.name))
    }

    fn extra(&self, key: &str) -> Option<&Value> {
        self.raw.get("extra").and_then(|e| e.get(key))
    }

    fn tolerance(&self) -> Duration {
        Duration::from_secs(
            self.extra("tolerance_s")
                .and_then(Value::as_u64)
                .unwrap_or(300),
        )
    }

    /// The verifier a user would configure for this vector's sender.
    fn config(&self, secrets: &[&str], allow_sha1: bool) -> VerifierConfig {
        let secrets: Vec<Secret> = secrets.iter().map(|s| Secret::new(*s)).collect();
        match self.file {
            "github" => VerifierConfig::Github(hookflow::verify::github::Config {
                secrets,
                allow_sha1,
            }),
            "stripe" => VerifierConfig::Stripe(hookflow::verify::stripe::Config {
                secrets,
                tolerance: self.tolerance(),
            }),
            "slack" => VerifierConfig::Slack(hookflow::verify::slack::Config {
                secrets,
                tolerance: self.tolerance(),
            }),
            "standardwebhooks" => VerifierConfig::Standard(hookflow::verify::standard::Config {
                secrets,
                tolerance: self.tolerance(),
            }),
            "shopify" => VerifierConfig::Shopify(hookflow::verify::shopify::Config { secrets }),
            "gitlab" => {
                VerifierConfig::Gitlab(hookflow::verify::gitlab::Config { tokens: secrets })
            }
            "twilio" => VerifierConfig::Twilio(hookflow::verify::twilio::Config {
                secrets,
                public_url: self
                    .url
                    .split_once('?')
                    .map_or(self.url.as_str(), |(u, _)| u)
                    .to_owned(),
            }),
            other => panic!("no config for {other}"),
        }
    }

    fn verify(&self, config: &VerifierConfig) -> Result<(), VerifyError> {
        let verifier = build(config).unwrap_or_else(|e| panic!("{}: build failed: {e}", self.name));
        verifier.verify(&Incoming {
            method: &self.method,
            headers: &self.headers,
            query: self.url.split_once('?').map(|(_, q)| q),
            body: &self.body,
            now: self.now,
        })
    }

    /// A secret that matches nothing but is well-formed for the scheme.
    fn decoy(&self) -> &'static str {
        if self.file == "standardwebhooks" {
            "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
        } else {
            "decoy-secret-that-signs-nothing"
        }
    }
}

fn load(file: &'static str) -> Vec<Vector> {
    let path = fixtures().join(format!("{file}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let records: Vec<Value> = serde_json::from_str(&text).expect("vector file is JSON");
    records
        .into_iter()
        .map(|raw| {
            let name = raw["name"].as_str().expect("name").to_owned();
            let mut headers = HeaderMap::new();
            for (key, value) in raw["headers"].as_object().expect("headers") {
                headers.append(
                    HeaderName::from_bytes(key.as_bytes()).expect("header name"),
                    HeaderValue::from_bytes(value.as_str().expect("header value").as_bytes())
                        .expect("value"),
                );
            }
            let body = match (raw.get("body_file"), raw.get("body")) {
                (Some(Value::String(rel)), _) => {
                    let p = fixtures().join(rel);
                    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
                }
                (_, Some(Value::String(inline))) => inline.as_bytes().to_vec(),
                _ => panic!("{name}: no body"),
            };
            Vector {
                file,
                method: raw["method"].as_str().expect("method").to_owned(),
                url: raw["url"].as_str().expect("url").to_owned(),
                now: raw["now"].as_i64().expect("now"),
                name,
                headers,
                body,
                raw,
            }
        })
        .collect()
}

#[test]
fn every_sdk_vector_verifies_as_expected() {
    let policy: BTreeMap<&str, bool> = POLICY
        .iter()
        .map(|(name, valid, _)| (*name, *valid))
        .collect();
    let mut failures = Vec::new();
    let mut ran = 0;
    let mut policy_seen = 0;
    for (file, count) in FILES {
        let vectors = load(file);
        assert_eq!(vectors.len(), *count, "{file}.json vector count");
        for v in &vectors {
            ran += 1;
            let recommended = v.raw["valid"].as_bool().expect("valid");
            let expected = if v.raw["policy_dependent"].as_bool().unwrap_or(false) {
                policy_seen += 1;
                *policy
                    .get(v.name.as_str())
                    .unwrap_or_else(|| panic!("{}: add it to POLICY", v.name))
            } else {
                recommended
            };
            let secret = v.str("secret");
            let got = v.verify(&v.config(&[secret], false));
            let want = if expected {
                Ok(())
            } else {
                Err(expected_error(&v.name))
            };
            if got != want {
                failures.push(format!(
                    "{}: expected {want:?}, got {got:?} ({})",
                    v.name,
                    v.str("why")
                ));
            }
            // Rotation: the right secret second in the list gives the same answer.
            let rotated = v.verify(&v.config(&[v.decoy(), secret], false));
            if rotated != got {
                failures.push(format!(
                    "{}: with a decoy first, got {rotated:?} not {got:?}",
                    v.name
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} vector(s) disagree:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(ran, 71, "vectors run");
    assert_eq!(
        policy_seen,
        POLICY.len(),
        "every POLICY entry names a policy_dependent vector"
    );
}

#[test]
fn rotation_vector_verifies_with_the_other_secret_alone() {
    let vectors = load("standardwebhooks");
    let v = vectors
        .iter()
        .find(|v| v.name == "sw_multiple_signatures_rotation")
        .expect("rotation vector");
    let other = v
        .extra("other_secret_signed")
        .and_then(Value::as_str)
        .expect("other_secret_signed");
    assert_eq!(v.verify(&v.config(&[other], false)), Ok(()));
    assert_eq!(
        v.verify(&v.config(&[v.decoy()], false)),
        Err(VerifyError::Mismatch)
    );
}

#[test]
fn github_sha1_only_vector_passes_when_allow_sha1_is_set() {
    let vectors = load("github");
    let v = vectors
        .iter()
        .find(|v| v.name == "github_legacy_sha1_only")
        .expect("sha1 vector");
    assert_eq!(v.verify(&v.config(&[v.str("secret")], true)), Ok(()));
}

#[test]
fn stripe_vectors_pass_any_age_when_tolerance_is_zero() {
    for v in load("stripe")
        .iter()
        .filter(|v| v.name == "stripe_replayed_next_day")
    {
        let config = VerifierConfig::Stripe(hookflow::verify::stripe::Config {
            secrets: vec![Secret::new(v.str("secret"))],
            tolerance: Duration::ZERO,
        });
        assert_eq!(v.verify(&config), Ok(()));
    }
}
