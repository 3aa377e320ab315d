//! Every verifier's header and body parsing, against fixed secrets (the SDK
//! vectors' own, so the seeds include genuine signatures).
//!
//! Input: a first line `<verifier> <now> <method> [query]`, then headers and
//! body as in `hookflow_fuzz::Request`. `<verifier>` is one of [`NAMES`]
//! (anything else picks one by its bytes). The scheme's readers of a
//! delivery (event name, dedupe key, handshake) run on every input too.
//! Besides "never panics", every
//! input checks the round trip: what `sign` produces for the fuzzed body at
//! the fuzzed clock must verify.

#![no_main]

use std::sync::LazyLock;
use std::time::Duration;

use hookflow::delivery::parse_body;
use hookflow::verify::{
    Delivered, Encoding, HmacAlgorithm, Incoming, Scheme, Secret, TokenLocation, VerifierConfig,
    build, sign,
};
use hookflow_fuzz::Request;
use libfuzzer_sys::fuzz_target;

fn secrets(values: &[&str]) -> Vec<Secret> {
    values.iter().map(|s| Secret::new(*s)).collect()
}

const FIVE_MIN: Duration = Duration::from_secs(300);
const TWILIO_SECRETS: &[&str] = &[
    "12345",
    "f3a9c2e1b7d84a6c9e0f1b2d3c4a5e6f",
    "webhooks_sharedkey_secret_Jk3mQ9vT2xR7pL5wZ8nB4cF6",
];

/// Every verifier kind, several settings for some; the name is the input's
/// first word.
const NAMES: &[&str] = &[
    "github",
    "github-nosha1",
    "stripe",
    "slack",
    "standard",
    "shopify",
    "twilio-docs",
    "twilio-sms",
    "twilio-events",
    "gitlab",
    "hmac-sha256-hex",
    "hmac-sha1-base64",
    "hmac-sha512-hex",
    "token-header",
    "token-query",
    "basic",
];

fn config(name: &str) -> VerifierConfig {
    match name {
        "github" | "github-nosha1" => VerifierConfig::Github(hookflow::verify::github::Config {
            secrets: secrets(&[
                "7Qm2xV9kLp4sR8tN-gh-webhook-secret",
                "It's a Secret to Everybody",
            ]),
            allow_sha1: name == "github",
        }),
        "stripe" => VerifierConfig::Stripe(hookflow::verify::stripe::Config {
            secrets: secrets(&["whsec_5WbX5kEWLlfzsGNjH64I8lOOqUB6e8FH"]),
            tolerance: FIVE_MIN,
        }),
        "slack" => VerifierConfig::Slack(hookflow::verify::slack::Config {
            secrets: secrets(&[
                "a6f1c3e9b2d84f07a5c1e8d3b9f2a4c6",
                "8f742231b10e8888abcd99yyyzzz85a5",
            ]),
            tolerance: FIVE_MIN,
        }),
        "standard" => VerifierConfig::Standard(hookflow::verify::standard::Config {
            secrets: secrets(&[
                "whsec_p4X5qund5Z3N4VwXZPJ02cXNbgbSQryVtwHVEhPKLCE=",
                "whsec_FOGnd58/caAfRQoYIZeDCn+0PxCb3IPnyTwa3IWLljY=",
            ]),
            tolerance: FIVE_MIN,
        }),
        "shopify" => VerifierConfig::Shopify(hookflow::verify::shopify::Config {
            secrets: secrets(&["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"]),
        }),
        "twilio-docs" => VerifierConfig::Twilio(hookflow::verify::twilio::Config {
            secrets: secrets(TWILIO_SECRETS),
            public_url: "https://mycompany.com/myapp.php".into(),
        }),
        "twilio-sms" => VerifierConfig::Twilio(hookflow::verify::twilio::Config {
            secrets: secrets(TWILIO_SECRETS),
            public_url: "https://hooks.example.com/twilio/sms".into(),
        }),
        "twilio-events" => VerifierConfig::Twilio(hookflow::verify::twilio::Config {
            secrets: secrets(TWILIO_SECRETS),
            public_url: "https://hooks.example.com/twilio/events".into(),
        }),
        "gitlab" => VerifierConfig::Gitlab(hookflow::verify::gitlab::Config {
            tokens: secrets(&["gl-hook-V2x9Qp7Lm3Rt8Kw4Zs6Yb1Nc"]),
        }),
        "hmac-sha256-hex" => VerifierConfig::Hmac(hookflow::verify::hmac::Config {
            header: "X-Signature".into(),
            algorithm: HmacAlgorithm::Sha256,
            encoding: Encoding::Hex,
            prefix: "sha256=".into(),
            secrets: secrets(&["hmac-secret", "older-secret"]),
        }),
        "hmac-sha1-base64" => VerifierConfig::Hmac(hookflow::verify::hmac::Config {
            header: "X-Signature".into(),
            algorithm: HmacAlgorithm::Sha1,
            encoding: Encoding::Base64,
            prefix: String::new(),
            secrets: secrets(&["hmac-secret"]),
        }),
        "hmac-sha512-hex" => VerifierConfig::Hmac(hookflow::verify::hmac::Config {
            header: "X-Signature".into(),
            algorithm: HmacAlgorithm::Sha512,
            encoding: Encoding::Hex,
            prefix: "v1,".into(),
            secrets: secrets(&["hmac-secret"]),
        }),
        "token-header" => VerifierConfig::Token(hookflow::verify::token::Config {
            location: TokenLocation::Header("X-Token".into()),
            values: secrets(&["token-value", "second-token"]),
        }),
        "token-query" => VerifierConfig::Token(hookflow::verify::token::Config {
            location: TokenLocation::Query("token".into()),
            values: secrets(&["token-value"]),
        }),
        _ => VerifierConfig::Basic(hookflow::verify::basic::Config {
            username: "hook".into(),
            passwords: secrets(&["pa:ss word", "older"]),
        }),
    }
}

/// The configs and their verifiers, built once.
static VERIFIERS: LazyLock<Vec<(VerifierConfig, Box<dyn Scheme>)>> = LazyLock::new(|| {
    NAMES
        .iter()
        .map(|name| {
            let config = config(name);
            match build(&config) {
                Ok(v) => (config, v),
                Err(e) => panic!("fixed config {name} does not build: {e}"),
            }
        })
        .collect()
});

fuzz_target!(|data: &[u8]| {
    let (first, rest) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let first = String::from_utf8_lossy(first);
    let mut words = first.splitn(4, ' ');
    let name = words.next().unwrap_or_default();
    let now = words
        .next()
        .and_then(|w| w.parse::<i64>().ok())
        .unwrap_or(0);
    let method = words.next().filter(|m| !m.is_empty()).unwrap_or("POST");
    let query = words.next().filter(|q| !q.is_empty());
    let index = NAMES
        .iter()
        .position(|n| *n == name)
        .unwrap_or_else(|| name.bytes().map(usize::from).sum::<usize>() % NAMES.len());
    let (config, verifier) = &VERIFIERS[index];

    let req = Request::parse(rest);
    let headers = req.header_map();
    let incoming = Incoming {
        method,
        headers: &headers,
        query,
        body: req.body,
        now,
    };
    // The verdict may be anything; it must not panic. Neither may what the
    // scheme reads from a delivery (event, dedupe key, handshake), whatever
    // the headers and body hold: asked of every input, verified or not.
    let _ = verifier.verify(&incoming);
    let headers = req.text_headers();
    let payload = parse_body(req.header("content-type"), req.body).unwrap_or_default();
    let delivered = Delivered {
        headers: &headers,
        payload: &payload,
    };
    let _ = verifier.event(&delivered);
    let _ = verifier.dedupe_key(&delivered);
    let _ = verifier.handshake(&payload);

    // The sender's side of the same body at the same clock must verify.
    let url = match config {
        VerifierConfig::Twilio(hookflow::verify::twilio::Config { public_url, .. }) => public_url.clone(),
        _ => "https://hooks.example.com/hook".to_owned(),
    };
    let signed = match sign(config, req.body, now, &url) {
        Ok(s) => s,
        Err(e) => panic!("{name}: a fixed config cannot sign: {e}"),
    };
    let mut signed_headers = http::HeaderMap::new();
    for (n, v) in &signed.headers {
        let (Ok(n), Ok(v)) = (
            http::HeaderName::from_bytes(n.as_bytes()),
            http::HeaderValue::from_str(v),
        ) else {
            panic!("{name}: sign produced an unsendable header {n:?}");
        };
        signed_headers.append(n, v);
    }
    let signed_query = signed.url.split_once('?').map(|(_, q)| q);
    let genuine = Incoming {
        method: "POST",
        headers: &signed_headers,
        query: signed_query,
        body: req.body,
        now,
    };
    if let Err(e) = verifier.verify(&genuine) {
        panic!(
            "{} refuses its own signature at now={now}: {e}",
            NAMES[index]
        );
    }
});
