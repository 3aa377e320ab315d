//! The receiving contract of SPEC §4 over real HTTP: every status code,
//! every verifier with a valid and a tampered request, dedupe, form bodies,
//! Slack's handshake, rotation, and what is in the database afterwards.

use hookflow::store::DeliveryRecord;
use hookflow::verify::sign;
use serde_json::{Value, json};

use crate::common::app::{TestApp, fixture, now, spawn_app, spawn_app_with};
use crate::common::wait;

const SOURCES: &str = r#"
sources:
  github:
    verify: { github: { secret: gh-secret } }
  rotating:
    verify: { github: { secret: [new-secret, old-secret] } }
  stripe:
    verify: { stripe: { secret: whsec_test_stripe, tolerance: 5m } }
  slack:
    verify: { slack: { secret: slack-signing-secret } }
    response:
      status: 200
      headers: { Content-Type: text/plain }
      body: "Working on {{payload.command}} for {{payload.user_name}} ({{len matched}} rule)"
  # Slack without a `response:`: its bodies are built only in part.
  slack-events:
    verify: { slack: { secret: slack-signing-secret } }
  standard:
    verify: { standard: { secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" } }
  shopify:
    verify: { shopify: { secret: shpss_test_secret } }
  twilio:
    verify: { twilio: { secret: twilio-auth-token, public_url: "https://hooks.example.com/hooks/twilio" } }
  gitlab:
    verify: { gitlab: { token: gl-token } }
  hmac:
    verify: { hmac: { header: X-Signature, algorithm: sha512, encoding: base64, prefix: "sha512=", secret: hmac-secret } }
  token:
    verify: { token: { header: X-Token, value: "tok-123" } }
  token-query:
    verify: { token: { query: key, value: "tok-456" } }
  basic:
    verify: { basic: { username: hook, password: [pw-new, pw-old] } }
  open:
    methods: [GET, POST]
  guarded:
    allow_ips: [10.0.0.0/8]
  limited:
    rate_limit: 2/m
  small:
    max_body: 64
"#;

const RULES: &str = r#"
rules:
  - name: deploy-main
    source: [github, rotating]
    event: push
    when:
      path: $.ref
      equals: refs/heads/master
    actions:
      - http: { url: "http://127.0.0.1:9/build/{{payload.after}}" }
  - name: on-pr
    source: github
    event: pull_request
    actions:
      - http: { url: "http://127.0.0.1:9/pr" }
  - name: every-delivery
    source: [stripe, slack, slack-events, standard, shopify, twilio, gitlab, hmac, token, token-query, basic, open, guarded, limited, small]
    actions:
      - http: { url: "http://127.0.0.1:9/any" }
"#;

async fn app() -> TestApp {
    spawn_app(&[("sources.yaml", SOURCES), ("rules.yaml", RULES)]).await
}

/// Signs `body` the way `source`'s sender would and POSTs it; with
/// `tamper`, one byte of the body is changed after signing.
async fn send_signed(
    app: &TestApp,
    source: &str,
    content_type: &str,
    body: &[u8],
    tamper: bool,
) -> reqwest::Response {
    let set = hookflow::rules::load(&app.rules_dir).expect("rules");
    let src = set.source(source).expect("source");
    let config = src.verify.as_ref().expect("a verifier");
    let public = match config {
        hookflow::verify::VerifierConfig::Twilio(hookflow::verify::twilio::Config {
            public_url,
            ..
        }) => public_url.clone(),
        _ => app.url(&src.path),
    };
    let signed = sign(config, body, now(), &public).expect("sign");
    let query = signed
        .url
        .split_once('?')
        .map(|(_, q)| format!("?{q}"))
        .unwrap_or_default();
    let mut body = body.to_vec();
    if tamper {
        let last = body.len() - 1;
        body[last] = if body[last] == b'x' { b'y' } else { b'x' };
    }
    let mut req = app
        .client
        .post(app.url(&format!("{}{query}", src.path)))
        .header("content-type", content_type)
        .body(body);
    for (k, v) in &signed.headers {
        req = req.header(k, v);
    }
    req.send().await.expect("request")
}

async fn json_body(resp: reqwest::Response) -> Value {
    resp.json().await.expect("a JSON body")
}

/// The delivery a 2xx answer names, as stored.
async fn stored_delivery(app: &TestApp, resp: reqwest::Response) -> DeliveryRecord {
    let id = json_body(resp).await["delivery"]
        .as_str()
        .expect("delivery id")
        .to_string();
    app.store
        .get_delivery(&id)
        .await
        .expect("read")
        .expect("stored")
}

#[tokio::test]
async fn every_verifier_accepts_a_signed_request_and_rejects_a_tampered_one() {
    let app = app().await;
    let json_body_bytes = br#"{"type":"customer.created","id":"evt_1","ref":"refs/heads/master"}"#;
    let cases: &[(&str, &str, &[u8])] = &[
        (
            "github",
            "application/json",
            &fixture("signatures/payloads/github-push.json"),
        ),
        ("stripe", "application/json", json_body_bytes),
        (
            "slack",
            "application/x-www-form-urlencoded",
            &fixture("signatures/payloads/slack-slash-command.txt"),
        ),
        ("standard", "application/json", json_body_bytes),
        ("shopify", "application/json", json_body_bytes),
        (
            "twilio",
            "application/x-www-form-urlencoded",
            b"From=%2B15551234567&Body=hello+there",
        ),
        ("hmac", "application/json", json_body_bytes),
    ];
    for (source, content_type, body) in cases {
        let ok = send_signed(&app, source, content_type, body, false).await;
        let status = ok.status().as_u16();
        assert!(
            status == 202 || status == 200,
            "{source}: signed request got {status}"
        );
        let bad = send_signed(&app, source, content_type, body, true).await;
        assert_eq!(
            bad.status().as_u16(),
            401,
            "{source}: tampered body must be refused"
        );
        assert_eq!(
            json_body(bad).await,
            json!({"error": "signature mismatch"}),
            "{source}"
        );
    }
    // Token-style verifiers do not sign the body: a wrong credential is the tamper.
    for (source, good, bad) in [
        (
            "gitlab",
            vec![("X-Gitlab-Token", "gl-token")],
            vec![("X-Gitlab-Token", "gl-tokeN")],
        ),
        (
            "token",
            vec![("X-Token", "tok-123")],
            vec![("X-Token", "tok-12")],
        ),
        (
            "basic",
            vec![("Authorization", "Basic aG9vazpwdy1uZXc=")],
            vec![("Authorization", "Basic aG9vazpwdy14")],
        ),
    ] {
        let path = format!("/hooks/{source}");
        assert_eq!(
            app.post(&path, &good, "{}").await.status().as_u16(),
            202,
            "{source}"
        );
        assert_eq!(
            app.post(&path, &bad, "{}").await.status().as_u16(),
            401,
            "{source}"
        );
    }
    let ok = send_signed(&app, "token-query", "application/json", b"{}", false).await;
    assert_eq!(ok.status().as_u16(), 202);
    let wrong = app.post("/hooks/token-query?key=nope", &[], "{}").await;
    assert_eq!(wrong.status().as_u16(), 401);
}

#[tokio::test]
async fn a_matching_delivery_is_committed_with_its_runs_and_trace_before_the_202() {
    let app = app().await;
    let body = fixture("signatures/payloads/github-push.json");
    let resp = send_github(&app, "push", "delivery-1", &body).await;
    assert_eq!(resp.status().as_u16(), 202);
    let answer = json_body(resp).await;
    assert_eq!(answer["matched"], json!(["deploy-main"]));
    let id = answer["delivery"]
        .as_str()
        .expect("delivery id")
        .to_string();
    assert_eq!(id.len(), 26, "a ULID");

    let stored = app
        .store
        .get_delivery(&id)
        .await
        .expect("read")
        .expect("stored");
    assert_eq!(stored.source, "github");
    assert_eq!(stored.event, "push");
    assert_eq!(stored.matched, vec!["deploy-main".to_string()]);
    assert_eq!(
        stored.body.as_deref(),
        Some(body.as_slice()),
        "the raw body is kept byte for byte"
    );
    let trace = &stored.trace["rules"];
    assert_eq!(trace[0], json!({"rule": "deploy-main", "matched": true}));
    assert_eq!(trace.as_array().map(Vec::len), Some(1), "{}", stored.trace);
    // SPEC §4: a rule whose `event:` excludes the delivery, by name only.
    assert_eq!(stored.trace["excluded"], json!(["on-pr"]));
    let runs = app.store.runs_for_delivery(&id).await.expect("runs");
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].rule, "deploy-main");
    assert_eq!(runs[0].status.as_str(), "queued");
}

async fn send_github(app: &TestApp, event: &str, delivery: &str, body: &[u8]) -> reqwest::Response {
    let set = hookflow::rules::load(&app.rules_dir).expect("rules");
    let config = set
        .source("github")
        .and_then(|s| s.verify.clone())
        .expect("config");
    let signed = sign(&config, body, now(), "").expect("sign");
    let mut headers: Vec<(&str, &str)> = vec![
        ("content-type", "application/json"),
        ("X-GitHub-Event", event),
        ("X-GitHub-Delivery", delivery),
    ];
    for (k, v) in &signed.headers {
        headers.push((k.as_str(), v.as_str()));
    }
    app.post("/hooks/github", &headers, body.to_vec()).await
}

#[tokio::test]
async fn a_miss_is_answered_202_with_no_runs_and_its_reason_stored() {
    let app = app().await;
    let body = br#"{"ref":"refs/heads/dev","after":"abc"}"#;
    let answer = json_body(send_github(&app, "push", "d-miss", body).await).await;
    assert_eq!(answer["matched"], json!([]));
    let id = answer["delivery"].as_str().expect("id");
    let stored = app
        .store
        .get_delivery(id)
        .await
        .expect("read")
        .expect("stored");
    let miss = &stored.trace["rules"][0]["miss"];
    assert_eq!(miss["reason"], "condition");
    assert_eq!(miss["saw"], json!(["refs/heads/dev"]));
    assert!(
        app.store
            .runs_for_delivery(id)
            .await
            .expect("runs")
            .is_empty()
    );
}

#[tokio::test]
async fn a_resend_within_the_window_is_a_duplicate_and_runs_nothing() {
    let app = app().await;
    let body = fixture("signatures/payloads/github-push.json");
    let first = json_body(send_github(&app, "push", "same-guid", &body).await).await;
    let again = send_github(&app, "push", "same-guid", &body).await;
    assert_eq!(again.status().as_u16(), 200);
    assert_eq!(
        json_body(again).await,
        json!({"status": "duplicate", "delivery": first["delivery"]})
    );
    let other = send_github(&app, "push", "other-guid", &body).await;
    assert_eq!(other.status().as_u16(), 202);
}

#[tokio::test]
async fn secrets_can_rotate_any_listed_secret_verifies() {
    let app = app().await;
    let body = fixture("signatures/payloads/github-push.json");
    for secret in ["new-secret", "old-secret"] {
        let config = hookflow::verify::VerifierConfig::Github(hookflow::verify::github::Config {
            secrets: vec![hookflow::verify::Secret::new(secret)],
            allow_sha1: false,
        });
        let signed = sign(&config, &body, now(), "").expect("sign");
        let (k, v) = &signed.headers[0];
        let resp = app
            .post(
                "/hooks/rotating",
                &[
                    ("content-type", "application/json"),
                    ("X-GitHub-Event", "push"),
                    (k, v),
                ],
                body.clone(),
            )
            .await;
        assert_eq!(resp.status().as_u16(), 202, "signed with {secret}");
    }
    let basic_old = app
        .post(
            "/hooks/basic",
            &[("Authorization", "Basic aG9vazpwdy1vbGQ=")],
            "{}",
        )
        .await;
    assert_eq!(basic_old.status().as_u16(), 202);
}

#[tokio::test]
async fn stale_stripe_timestamps_and_missing_headers_are_401_with_the_reason() {
    let app = app().await;
    let body = br#"{"id":"evt_1","type":"charge.succeeded"}"#;
    let config = hookflow::verify::VerifierConfig::Stripe(hookflow::verify::stripe::Config {
        secrets: vec![hookflow::verify::Secret::new("whsec_test_stripe")],
        tolerance: std::time::Duration::from_secs(300),
    });
    let old = sign(&config, body, now() - 3600, "").expect("sign");
    let (k, v) = &old.headers[0];
    let resp = app
        .post(
            "/hooks/stripe",
            &[("content-type", "application/json"), (k, v)],
            body.to_vec(),
        )
        .await;
    assert_eq!(resp.status().as_u16(), 401);
    assert_eq!(
        json_body(resp).await,
        json!({"error": "timestamp outside tolerance"})
    );
    let resp = app
        .post(
            "/hooks/github",
            &[("content-type", "application/json")],
            "{}",
        )
        .await;
    assert_eq!(resp.status().as_u16(), 401);
    assert_eq!(
        json_body(resp).await,
        json!({"error": "missing header X-Hub-Signature-256"})
    );
}

#[tokio::test]
async fn unknown_paths_are_404_and_wrong_methods_405() {
    let app = app().await;
    let resp = app.post("/hooks/nope", &[], "{}").await;
    assert_eq!(resp.status().as_u16(), 404);
    assert_eq!(
        json_body(resp).await,
        json!({"error": "no such path", "paths": ["/hooks/<source>", "/healthz", "/readyz"]}),
        "names what exists, by pattern, never a source's name"
    );
    let resp = app
        .client
        .get(app.url("/hooks/github"))
        .send()
        .await
        .expect("get");
    assert_eq!(resp.status().as_u16(), 405);
    assert_eq!(resp.headers()["allow"], "POST");
}

#[tokio::test]
async fn a_get_source_takes_its_query_as_input() {
    let app = app().await;
    let resp = app
        .client
        .get(app.url("/hooks/open?x=1"))
        .send()
        .await
        .expect("get");
    assert_eq!(resp.status().as_u16(), 202);
    let id = json_body(resp).await["delivery"]
        .as_str()
        .expect("id")
        .to_string();
    let stored = app
        .store
        .get_delivery(&id)
        .await
        .expect("read")
        .expect("stored");
    assert_eq!(stored.method, "GET");
    assert_eq!(stored.query.as_deref(), Some("x=1"));
}

#[tokio::test]
async fn addresses_outside_allow_ips_are_403_and_trusted_proxies_are_believed() {
    let app = app().await;
    let resp = app.post("/hooks/guarded", &[], "{}").await;
    assert_eq!(resp.status().as_u16(), 403);
    // A forged X-Forwarded-For from an untrusted peer changes nothing.
    let resp = app
        .post("/hooks/guarded", &[("X-Forwarded-For", "10.1.2.3")], "{}")
        .await;
    assert_eq!(resp.status().as_u16(), 403);

    let trusting = spawn_app_with(&[("sources.yaml", SOURCES), ("rules.yaml", RULES)], |s| {
        s.trusted_proxies = vec!["127.0.0.0/8".parse().expect("cidr")];
    })
    .await;
    let resp = trusting
        .post("/hooks/guarded", &[("X-Forwarded-For", "10.1.2.3")], "{}")
        .await;
    assert_eq!(resp.status().as_u16(), 202);
    let resp = trusting
        .post("/hooks/guarded", &[("X-Forwarded-For", "192.0.2.1")], "{}")
        .await;
    assert_eq!(resp.status().as_u16(), 403);
}

#[tokio::test]
async fn the_rate_limit_answers_429_with_retry_after() {
    let app = app().await;
    // 2/m with a burst of twice the count.
    for i in 0..4 {
        assert_eq!(
            app.post("/hooks/limited", &[], "{}")
                .await
                .status()
                .as_u16(),
            202,
            "request {i}"
        );
    }
    let resp = app.post("/hooks/limited", &[], "{}").await;
    assert_eq!(resp.status().as_u16(), 429);
    let retry_after: u64 = resp.headers()["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((1..=30).contains(&retry_after), "{retry_after}");
}

#[tokio::test]
async fn bodies_over_max_body_are_413_per_source_and_globally() {
    let app = spawn_app_with(&[("sources.yaml", SOURCES), ("rules.yaml", RULES)], |s| {
        s.max_body = hookflow::config::ByteSize(1024)
    })
    .await;
    let resp = app.post("/hooks/small", &[], vec![b'x'; 65]).await;
    assert_eq!(resp.status().as_u16(), 413);
    assert_eq!(
        app.post("/hooks/small", &[], vec![b' '; 64])
            .await
            .status()
            .as_u16(),
        202
    );
    let resp = app.post("/hooks/open", &[], vec![b'x'; 2000]).await;
    assert_eq!(resp.status().as_u16(), 413);
    // Chunked, with no Content-Length: the limit still holds while reading.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..40).map(|_| Ok(vec![b'x'; 100])).collect();
    let stream = reqwest::Body::wrap_stream(futures_util_stream(chunks));
    let resp = app
        .client
        .post(app.url("/hooks/open"))
        .body(stream)
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status().as_u16(), 413);
}

fn futures_util_stream(
    chunks: Vec<Result<Vec<u8>, std::io::Error>>,
) -> impl futures_core::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    tokio_stream::iter(chunks)
}

#[tokio::test]
async fn invalid_json_is_400_with_line_and_column() {
    let app = app().await;
    let resp = app
        .post(
            "/hooks/open",
            &[("content-type", "application/json")],
            "{\n  \"a\": @\n}",
        )
        .await;
    assert_eq!(resp.status().as_u16(), 400);
    let error = json_body(resp).await["error"]
        .as_str()
        .expect("error")
        .to_string();
    assert_eq!(
        error,
        "invalid JSON body at line 2, column 8: expected value"
    );
}

#[tokio::test]
async fn form_bodies_and_githubs_form_payload_are_parsed() {
    let app = app().await;
    // GitHub's form-encoded delivery of the same push: payload=<urlencoded JSON>.
    let body = fixture("signatures/payloads/github-push.form.txt");
    let set = hookflow::rules::load(&app.rules_dir).expect("rules");
    let config = set
        .source("github")
        .and_then(|s| s.verify.clone())
        .expect("config");
    let signed = sign(&config, &body, now(), "").expect("sign");
    let (k, v) = &signed.headers[0];
    let resp = app
        .post(
            "/hooks/github",
            &[
                ("content-type", "application/x-www-form-urlencoded"),
                ("X-GitHub-Event", "push"),
                (k, v),
            ],
            body,
        )
        .await;
    assert_eq!(
        json_body(resp).await["matched"],
        json!(["deploy-main"]),
        "$.ref read from the form's JSON payload"
    );

    let resp = app
        .post(
            "/hooks/open",
            &[("content-type", "application/x-www-form-urlencoded")],
            "a=1&b=two+words",
        )
        .await;
    let id = json_body(resp).await["delivery"]
        .as_str()
        .expect("id")
        .to_string();
    let stored = app
        .store
        .get_delivery(&id)
        .await
        .expect("read")
        .expect("stored");
    assert_eq!(stored.body.as_deref(), Some(b"a=1&b=two+words".as_slice()));
}

#[tokio::test]
async fn slack_url_verification_is_answered_and_runs_nothing() {
    let app = app().await;
    let body = fixture("signatures/payloads/slack-url_verification.json");
    // `slack` replies with a template (its whole body is built);
    // `slack-events` has no rule that reads the body: only the members
    // Slack's handshake reads are.
    for source in ["slack", "slack-events"] {
        let resp = send_signed(&app, source, "application/json", &body, false).await;
        assert_eq!(resp.status().as_u16(), 200, "{source}");
        let challenge: Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(
            resp.text().await.expect("text"),
            challenge["challenge"].as_str().expect("challenge"),
            "{source}"
        );
    }
    assert_eq!(app.store.queue_depth().await.expect("depth"), 0);
}

#[tokio::test]
async fn a_body_built_in_part_still_gives_the_sender_s_event_and_the_rules_values() {
    let app = app().await;
    // The rules of `github` read `$.ref` only; its sender's event also
    // reads `action`.
    let body = br#"{"action": "opened", "ref": "refs/heads/master", "issue": {"number": 7}}"#;
    let resp = send_github(&app, "issues", "delivery-part", body).await;
    assert_eq!(resp.status().as_u16(), 202);
    let stored = stored_delivery(&app, resp).await;
    assert_eq!(stored.event, "issues.opened");
    assert_eq!(
        stored.body.as_deref(),
        Some(body.as_slice()),
        "stored whole"
    );

    // A push whose `ref` misses: the trace shows the value the rule saw.
    let body = br#"{"ref": "refs/heads/dev", "after": "abc", "commits": []}"#;
    let resp = send_github(&app, "push", "delivery-miss", body).await;
    let stored = stored_delivery(&app, resp).await;
    let entry = &stored.trace["rules"][0];
    assert_eq!(entry["matched"], json!(false), "{}", stored.trace);
    assert!(
        entry.to_string().contains("refs/heads/dev"),
        "the value seen at $.ref: {entry}"
    );
}

#[tokio::test]
async fn a_source_response_template_answers_the_sender() {
    let app = app().await;
    let body = fixture("signatures/payloads/slack-slash-command.txt");
    let resp = send_signed(
        &app,
        "slack",
        "application/x-www-form-urlencoded",
        &body,
        false,
    )
    .await;
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.headers()["content-type"], "text/plain");
    assert_eq!(
        resp.text().await.expect("text"),
        "Working on /webhook-collect for roadrunner (1 rule)"
    );
}

#[tokio::test]
async fn rejected_requests_are_logged_without_body_or_credentials() {
    let app = app().await;
    let resp = app
        .post(
            "/hooks/token",
            &[("X-Token", "wrong-token-value")],
            "secret body text",
        )
        .await;
    assert_eq!(resp.status().as_u16(), 401);
    let accepted = app
        .post("/hooks/token", &[("X-Token", "tok-123")], "{}")
        .await;
    let id = json_body(accepted).await["delivery"]
        .as_str()
        .expect("id")
        .to_string();
    let stored = app
        .store
        .get_delivery(&id)
        .await
        .expect("read")
        .expect("stored");
    assert!(
        stored
            .headers
            .iter()
            .any(|(k, v)| k == "x-token" && v == "***"),
        "{:?}",
        stored.headers
    );

    // The rejected one is written in the background.
    let rejected = wait::for_ok(
        "the 401 in the run log",
        std::time::Duration::from_secs(10),
        || async {
            let list = app
                .store
                .list_deliveries(hookflow::store::DeliveryFilter {
                    source: Some("token".into()),
                    since_ms: None,
                    limit: 10,
                    before_id: None,
                })
                .await
                .expect("list");
            let statuses: Vec<_> = list.iter().map(|d| d.reject_status).collect();
            list.into_iter()
                .find(|d| d.reject_status == Some(401))
                .ok_or(format!("{statuses:?}"))
        },
    )
    .await;
    let record = app
        .store
        .get_delivery(&rejected.id)
        .await
        .expect("read")
        .expect("stored");
    assert!(
        record.body.as_deref().is_none_or(<[u8]>::is_empty),
        "no body for rejected requests"
    );
    let file = std::fs::read(&app.db_path).expect("db");
    assert!(
        !contains(&file, b"secret body text") && !contains(&file, b"tok-123"),
        "neither the body nor the token is stored"
    );
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn health_and_readiness() {
    let app = app().await;
    let resp = app
        .client
        .get(app.url("/healthz"))
        .send()
        .await
        .expect("get");
    assert_eq!(resp.text().await.expect("text"), "ok");
    let ready = json_body(
        app.client
            .get(app.url("/readyz"))
            .send()
            .await
            .expect("get"),
    )
    .await;
    assert_eq!(ready["status"], "ready");
    assert_eq!(ready["sources"], 17);
}
