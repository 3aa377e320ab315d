//! Micro-benchmarks of the hot path's parts: condition evaluation, template
//! rendering, every verifier, and body parsing, on a real GitHub push.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use hookflow::delivery::{parse_body, parse_body_for, parse_form};
use hookflow::rules::PayloadNeeds;
use hookflow::rules::condition::MatchInput;
use hookflow::rules::decode::Decoder;
use hookflow::rules::node;
use hookflow::template::{TemplateContext, Templates};
use hookflow::verify::{
    Encoding, HmacAlgorithm, Incoming, Secret, TokenLocation, VerifierConfig, build, sign,
};
use serde_json::json;

fn payload() -> Vec<u8> {
    std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/benches/payloads/github-push.json"
    ))
    .expect("payload")
}

fn conditions(c: &mut Criterion) {
    let body = payload();
    let value = parse_body(Some("application/json"), &body).expect("json");
    let headers = vec![("x-github-event".to_string(), "push".to_string())];
    let input = MatchInput {
        payload: &value,
        headers: &headers,
        query: &[],
        event: "push",
        source_ip: None,
    };
    let cases = [
        ("equals", "{path: $.ref, equals: refs/heads/master}"),
        (
            "in",
            "{path: $.ref, in: [refs/heads/main, refs/heads/master]}",
        ),
        (
            "matches_any_commit",
            "{path: '$.commits[*].message', matches: '(?i)initial'}",
        ),
        ("header", "{header: X-GitHub-Event, equals: push}"),
        (
            "not_nested",
            "{not: {path: $.pusher.name, in: ['dependabot[bot]', 'renovate[bot]']}}",
        ),
        (
            "filter_expression",
            "{path: \"$.commits[?@.author.name == 'Codertocat'].id\", exists: true}",
        ),
    ];
    let mut group = c.benchmark_group("condition");
    for (name, yaml) in cases {
        let root = node::parse(yaml).expect("yaml");
        let (mut diags, mut secrets, mut templates) =
            (Vec::new(), BTreeSet::new(), Templates::new());
        let env = |_: &str| None;
        let mut dec = Decoder::new(
            "bench".into(),
            &mut diags,
            &env,
            &mut secrets,
            &mut templates,
            PathBuf::new(),
        );
        let cond = dec.condition(&root).expect("condition");
        group.bench_function(name, |b| b.iter(|| cond.eval(&input).is_ok()));
    }
    group.finish();
}

fn templates(c: &mut Criterion) {
    let body = payload();
    let value = parse_body(Some("application/json"), &body).expect("json");
    let ctx =
        TemplateContext::new(json!({ "payload": value, "steps": {"build": {"json": {"id": 42}}} }));
    let mut t = Templates::new();
    let text = t.compile("Build {{steps.build.json.id}} for {{payload.repository.full_name}}@{{truncate payload.after 7}}").expect("t");
    let lone = t.compile("{{payload.commits}}").expect("t");
    let literal = t.compile("https://ci.example.com/api/builds").expect("t");
    let mut group = c.benchmark_group("template");
    group.bench_function("text_with_helpers", |b| {
        b.iter(|| t.render_text(&text, &ctx).map(|s| s.len()))
    });
    group.bench_function("lone_expression_keeps_type", |b| {
        b.iter(|| t.render_value(&lone, &ctx).is_ok())
    });
    group.bench_function("literal", |b| {
        b.iter(|| t.render_text(&literal, &ctx).map(|s| s.len()))
    });
    group.bench_function("context_from_payload", |b| {
        b.iter(|| TemplateContext::new(json!({ "payload": value.clone() })))
    });
    group.finish();
}

fn verifiers(c: &mut Criterion) {
    let body = payload();
    let secret = || vec![Secret::new("bench-secret-value")];
    let tolerance = Duration::from_secs(300);
    let configs = [
        VerifierConfig::Github(hookflow::verify::github::Config {
            secrets: secret(),
            allow_sha1: false,
        }),
        VerifierConfig::Stripe(hookflow::verify::stripe::Config {
            secrets: secret(),
            tolerance,
        }),
        VerifierConfig::Slack(hookflow::verify::slack::Config {
            secrets: secret(),
            tolerance,
        }),
        VerifierConfig::Standard(hookflow::verify::standard::Config {
            secrets: vec![Secret::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")],
            tolerance,
        }),
        VerifierConfig::Shopify(hookflow::verify::shopify::Config { secrets: secret() }),
        VerifierConfig::Twilio(hookflow::verify::twilio::Config {
            secrets: secret(),
            public_url: "https://example.com/hooks/twilio".into(),
        }),
        VerifierConfig::Gitlab(hookflow::verify::gitlab::Config { tokens: secret() }),
        VerifierConfig::Hmac(hookflow::verify::hmac::Config {
            header: "X-Sig".into(),
            algorithm: HmacAlgorithm::Sha512,
            encoding: Encoding::Base64,
            prefix: String::new(),
            secrets: secret(),
        }),
        VerifierConfig::Token(hookflow::verify::token::Config {
            location: TokenLocation::Header("X-Token".into()),
            values: secret(),
        }),
        VerifierConfig::Basic(hookflow::verify::basic::Config {
            username: "u".into(),
            passwords: secret(),
        }),
    ];
    let now = 1_751_371_200;
    let mut group = c.benchmark_group("verify_github_push");
    for config in configs {
        let verifier = build(&config).expect("build");
        let signed = sign(&config, &body, now, "https://example.com/hooks/twilio").expect("sign");
        let mut headers = http::HeaderMap::new();
        for (k, v) in &signed.headers {
            headers.insert(
                http::HeaderName::from_bytes(k.as_bytes()).expect("name"),
                v.parse().expect("value"),
            );
        }
        let query = signed.url.split_once('?').map(|(_, q)| q.to_string());
        let incoming = Incoming {
            method: "POST",
            headers: &headers,
            query: query.as_deref(),
            body: &body,
            now,
        };
        assert!(
            verifier.verify(&incoming).is_ok(),
            "{} must verify",
            verifier.name()
        );
        group.bench_with_input(BenchmarkId::from_parameter(verifier.name()), &(), |b, _| {
            b.iter(|| verifier.verify(&incoming).is_ok())
        });
    }
    group.finish();
}

fn bodies(c: &mut Criterion) {
    let body = payload();
    let form = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/signatures/payloads/github-push.form.txt"
    ))
    .expect("form");
    let slash = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/signatures/payloads/slack-slash-command.txt"
    ))
    .expect("slash");
    let mut group = c.benchmark_group("parse_body");
    group.bench_function("json_github_push", |b| {
        b.iter(|| parse_body(Some("application/json"), &body).is_ok())
    });
    // What receiving builds for a GitHub source whose rules read `$.ref`
    // (its sender's event reads `action`), and for one that reads nothing.
    for (name, members) in [
        ("json_github_push_ref_and_action", &["action", "ref"][..]),
        ("json_github_push_validate_only", &[][..]),
    ] {
        let needs = PayloadNeeds::Members(members.iter().map(|m| (*m).to_owned()).collect());
        group.bench_function(name, |b| {
            b.iter(|| parse_body_for(Some("application/json"), &body, &needs).is_ok())
        });
    }
    group.bench_function("form_github_payload_field", |b| {
        b.iter(|| parse_form(&form))
    });
    group.bench_function("form_slack_slash_command", |b| {
        b.iter(|| parse_form(&slash))
    });
    group.finish();
}

criterion_group!(benches, conditions, templates, verifiers, bodies);
criterion_main!(benches);
