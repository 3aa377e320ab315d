//! The JSON API and its OpenAPI document, over real HTTP on a server that
//! processed real fixture payloads: its engine ran the rules' steps against
//! a local sink (one path answers 500 until told otherwise), so the run log
//! holds succeeded and failed runs with their attempts. Also retention and
//! the metrics the traffic leaves behind.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use hookflow::config::SettingValue;
use hookflow::store::{AcceptOutcome, NewDelivery, NewRun};
use serde_json::{Value, json};

use crate::common::app::{TestApp, fixture, spawn_app, spawn_app_with, spawn_app_with_engine};
use crate::common::sink::{Reply, Sink};
use crate::common::wait;

const GITHUB_PUSH: &str = "signatures/payloads/github-push.json";

/// The secret the rules send in an http step's header and URL query. It
/// comes from a file (`${file:PATH}`), not the environment: the tests share
/// one process, and `std::env::set_var` there would race the others. The
/// same checks for a secret from the environment run against the real
/// binary in `secrets.rs`.
const SECRET: &str = "s3cr3t-api-7f3a9c2e";

/// A token-verified source and two rules: `notify` (succeeds, and sends the
/// secret in a header and the URL query) and `flaky` (one attempt at the
/// sink's `/fail`, which answers 500 until a test heals it).
fn rules_yaml(sink: &str, secret_file: &std::path::Path) -> String {
    let secret = format!("${{file:{}}}", secret_file.display());
    format!(
        r#"
sources:
  gh:
    verify:
      token: {{ header: X-Token, value: "tok-123" }}
rules:
  - name: notify
    source: gh
    actions:
      - id: post
        http:
          url: "{sink}/ok?key={secret}"
          headers: {{ X-Api-Key: "{secret}" }}
          json: {{ ref: "{{{{payload.ref}}}}" }}
  - name: flaky
    source: gh
    actions:
      - id: call
        http:
          url: "{sink}/fail"
          retry: {{ attempts: 1 }}
"#
    )
}

/// A server with its engine, after `deliveries` GitHub push payloads were
/// accepted and every run they queued finished.
pub(crate) async fn processed_app(deliveries: usize) -> (TestApp, Sink, Vec<String>) {
    let sink = Sink::start().await;
    sink.answer("/fail", Reply::status(500));
    let secret_dir = tempfile::tempdir().expect("temp dir");
    let secret_file = secret_dir.path().join("api-secret");
    std::fs::write(&secret_file, SECRET).expect("write the secret file");
    let yaml = rules_yaml(&sink.url, &secret_file);
    let mut app = spawn_app_with_engine(&[("rules.yaml", &yaml)], |s| s.workers = 2).await;
    // A reload (`POST /api/reload`) reads the file again.
    app.keep(secret_dir);
    let mut ids = Vec::new();
    for _ in 0..deliveries {
        let response = app
            .post(
                "/hooks/gh",
                &[("X-Token", "tok-123"), ("Content-Type", "application/json")],
                fixture(GITHUB_PUSH),
            )
            .await;
        assert_eq!(response.status(), 202);
        let body: Value = response.json().await.expect("json answer");
        assert_eq!(body["matched"], json!(["notify", "flaky"]));
        ids.push(body["delivery"].as_str().expect("delivery id").to_owned());
    }
    wait_all_finished(&app, deliveries * 2).await;
    (app, sink, ids)
}

pub(crate) async fn get_json(app: &TestApp, path: &str) -> (u16, Value) {
    let response = app
        .client
        .get(app.admin_url(path))
        .send()
        .await
        .expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.expect("a JSON answer"))
}

pub(crate) async fn post_json(app: &TestApp, path: &str) -> (u16, Value) {
    let response = app
        .client
        .post(app.admin_url(path))
        .send()
        .await
        .expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.expect("a JSON answer"))
}

/// Waits until `expected` runs exist and none is queued or running.
async fn wait_all_finished(app: &TestApp, expected: usize) -> Vec<Value> {
    let what = format!("{expected} runs to finish");
    wait::for_ok(&what, Duration::from_secs(30), || async {
        let (_, page) = get_json(app, "/api/runs?limit=1000").await;
        let items = page["items"].as_array().cloned().unwrap_or_default();
        let done = items.len() >= expected
            && items.iter().all(|r| {
                matches!(
                    r["status"].as_str(),
                    Some("succeeded" | "failed" | "cancelled")
                )
            });
        if done {
            Ok(items)
        } else {
            Err(format!("{page:#}"))
        }
    })
    .await
}

pub(crate) fn ids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["id"].as_str().expect("id").to_owned())
        .collect()
}

// ------------------------------------------------------------------ tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_and_runs_are_listed_shown_and_paginated() {
    let (app, _sink, delivered) = processed_app(2).await;

    let (status, page) = get_json(&app, "/api/deliveries").await;
    assert_eq!(status, 200);
    // Newest first.
    assert_eq!(ids(&page), vec![delivered[1].clone(), delivered[0].clone()]);
    assert_eq!(page["next"], Value::Null);
    assert_eq!(page["items"][0]["source"], "gh");
    assert_eq!(page["items"][0]["status"], "accepted");

    // Pagination: one at a time, following `next`.
    let (_, first) = get_json(&app, "/api/deliveries?limit=1").await;
    assert_eq!(ids(&first), vec![delivered[1].clone()]);
    let cursor = first["next"].as_str().expect("a next cursor").to_owned();
    let (_, second) = get_json(&app, &format!("/api/deliveries?limit=1&before={cursor}")).await;
    assert_eq!(ids(&second), vec![delivered[0].clone()]);
    let cursor = second["next"].as_str().expect("a full page has a cursor");
    let (_, third) = get_json(&app, &format!("/api/deliveries?limit=1&before={cursor}")).await;
    assert_eq!(ids(&third), Vec::<String>::new());
    assert_eq!(third["next"], Value::Null);

    // Filters.
    let (_, other) = get_json(&app, "/api/deliveries?source=nope").await;
    assert_eq!(ids(&other), Vec::<String>::new());
    let (_, recent) = get_json(&app, "/api/deliveries?since=1h&source=gh").await;
    assert_eq!(ids(&recent).len(), 2);
    let (_, future) = get_json(&app, "/api/deliveries?since=2999-01-01T00:00:00Z").await;
    assert_eq!(ids(&future).len(), 0);

    // One delivery: body as sent, trace, runs.
    let (status, delivery) = get_json(&app, &format!("/api/deliveries/{}", delivered[0])).await;
    assert_eq!(status, 200);
    assert_eq!(delivery["body_encoding"], "utf8");
    let sent = String::from_utf8(fixture(GITHUB_PUSH)).expect("utf8 fixture");
    assert_eq!(delivery["body"].as_str(), Some(sent.as_str()));
    assert_eq!(delivery["matched"], json!(["notify", "flaky"]));
    assert!(!delivery["trace"].is_null(), "{delivery:#}");
    let runs = delivery["runs"].as_array().expect("runs");
    assert_eq!(runs.len(), 2);
    assert!(
        delivery["headers"]
            .as_array()
            .expect("headers")
            .iter()
            .any(|h| h["name"] == "content-type"),
        "{delivery:#}"
    );

    // Runs: filters and one run with its attempts.
    let (_, failed) = get_json(&app, "/api/runs?status=failed").await;
    let failed_items = failed["items"].as_array().expect("items");
    assert_eq!(failed_items.len(), 2);
    assert!(failed_items.iter().all(|r| r["rule"] == "flaky"));
    let (_, notify) = get_json(&app, "/api/runs?rule=notify&status=succeeded").await;
    assert_eq!(ids(&notify).len(), 2);
    let (_, one) = get_json(&app, "/api/runs?limit=1").await;
    assert_eq!(ids(&one).len(), 1);
    assert!(one["next"].is_string());

    let failed_id = failed_items[0]["id"].as_str().expect("id");
    let (status, run) = get_json(&app, &format!("/api/runs/{failed_id}")).await;
    assert_eq!(status, 200);
    assert_eq!(run["status"], "failed");
    let attempts = run["attempts"].as_array().expect("attempts");
    assert_eq!(attempts.len(), 1, "{run:#}");
    assert_eq!(attempts[0]["status_code"], 500);
    assert_eq!(attempts[0]["outcome"], "failed");
    assert_eq!(attempts[0]["step_id"], "call");

    // Unknown ids and bad parameters.
    for path in ["/api/deliveries/01NOPE", "/api/runs/01NOPE"] {
        let (status, body) = get_json(&app, path).await;
        assert_eq!(status, 404, "{path}");
        assert!(body["error"].as_str().is_some_and(|e| e.contains("01NOPE")));
    }
    for path in [
        "/api/deliveries?limit=abc",
        "/api/deliveries?limit=0",
        "/api/deliveries?since=yesterday",
        "/api/runs?status=bogus",
        "/api/runs?limit=-1",
    ] {
        let (status, body) = get_json(&app, path).await;
        assert_eq!(status, 400, "{path}");
        assert!(body["error"].is_string(), "{path}: {body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_run_retried_through_the_api_succeeds() {
    let (app, sink, _) = processed_app(1).await;
    let (_, failed) = get_json(&app, "/api/runs?status=failed").await;
    let run_id = ids(&failed).pop().expect("a failed run");

    // Still failing is refused for a run that has not failed.
    let (_, ok) = get_json(&app, "/api/runs?status=succeeded").await;
    let succeeded = ids(&ok).pop().expect("a succeeded run");
    let (status, body) = post_json(&app, &format!("/api/runs/{succeeded}/retry")).await;
    assert_eq!(status, 409, "{body}");
    let (status, _) = post_json(&app, "/api/runs/01NOPE/retry").await;
    assert_eq!(status, 404);

    sink.answer("/fail", Reply::status(200));
    let (status, body) = post_json(&app, &format!("/api/runs/{run_id}/retry")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["id"], run_id.as_str());
    assert_eq!(body["status"], "queued");

    let run = wait::for_ok(
        "the retried run to succeed",
        Duration::from_secs(30),
        || async {
            let (_, run) = get_json(&app, &format!("/api/runs/{run_id}")).await;
            if run["status"] == "succeeded" {
                Ok(run)
            } else {
                Err(format!("{run:#}"))
            }
        },
    )
    .await;
    let outcomes: Vec<&str> = run["attempts"]
        .as_array()
        .expect("attempts")
        .iter()
        .map(|a| a["outcome"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(outcomes, ["failed", "succeeded"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_replayed_through_the_api_queues_new_runs() {
    let (app, _sink, delivered) = processed_app(1).await;
    let id = &delivered[0];

    let (status, dry) = post_json(&app, &format!("/api/deliveries/{id}/replay?dry_run=true")).await;
    assert_eq!(status, 200, "{dry}");
    assert_eq!(dry["matched"], json!(["notify", "flaky"]));
    assert_eq!(dry["runs"], json!([]));
    assert_eq!(dry["dry_run"], true);

    let (status, replay) = post_json(&app, &format!("/api/deliveries/{id}/replay")).await;
    assert_eq!(status, 200, "{replay}");
    assert_eq!(replay["runs"].as_array().map(Vec::len), Some(2));
    wait_all_finished(&app, 4).await;
    let (_, delivery) = get_json(&app, &format!("/api/deliveries/{id}")).await;
    let run_ids: Vec<&str> = delivery["runs"]
        .as_array()
        .expect("runs")
        .iter()
        .filter_map(|r| r["id"].as_str())
        .collect();
    assert_eq!(run_ids.len(), 4);
    for new in replay["runs"].as_array().expect("runs") {
        assert!(run_ids.contains(&new.as_str().expect("id")));
    }

    let (status, body) = post_json(&app, "/api/deliveries/01NOPE/replay").await;
    assert_eq!(status, 404, "{body}");
}

/// Every documented GET, called with real ids, answers JSON that its
/// documented 200 schema accepts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_get_answers_what_the_openapi_document_says() {
    let (app, _sink, delivered) = processed_app(1).await;
    let (status, doc) = get_json(&app, "/api/openapi.json").await;
    assert_eq!(status, 200);
    let version = doc["openapi"].as_str().expect("openapi version");
    assert!(version.starts_with("3."), "{version}");
    let (_, runs) = get_json(&app, "/api/runs").await;
    let run_id = ids(&runs).pop().expect("a run");

    let paths = doc["paths"].as_object().expect("paths");
    for documented in [
        "/api/deliveries",
        "/api/deliveries/{id}",
        "/api/deliveries/{id}/replay",
        "/api/runs",
        "/api/runs/{id}",
        "/api/runs/{id}/retry",
        "/api/rules",
        "/api/reload",
    ] {
        assert!(
            paths.contains_key(documented),
            "{documented} not documented"
        );
    }
    let mut checked = 0;
    for (path, item) in paths {
        let Some(get) = item.get("get") else { continue };
        let id = if path.starts_with("/api/runs/") {
            run_id.as_str()
        } else {
            delivered[0].as_str()
        };
        let concrete = path.replace("{id}", id);
        let (status, body) = get_json(&app, &concrete).await;
        assert_eq!(status, 200, "{concrete}: {body}");
        let schema = get["responses"]["200"]["content"]["application/json"]["schema"].clone();
        assert!(!schema.is_null(), "{path} documents no 200 JSON schema");
        let root = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "components": doc["components"],
            "allOf": [schema],
        });
        let validator = jsonschema::validator_for(&root)
            .unwrap_or_else(|e| panic!("{path}: the documented schema is invalid: {e}"));
        let errors: Vec<String> = validator
            .iter_errors(&body)
            .map(|e| format!("{} at {}", e, e.instance_path))
            .collect();
        assert!(
            errors.is_empty(),
            "{concrete} does not match its schema: {errors:#?}\n{body:#}"
        );
        // The check has teeth: a page whose `items` is not a list fails.
        if path == "/api/deliveries" || path == "/api/runs" {
            let broken = json!({"items": "nope", "next": null});
            assert!(
                !validator.is_valid(&broken),
                "{path}: schema accepts anything"
            );
        }
        checked += 1;
    }
    assert!(checked >= 5, "only {checked} GET paths documented");

    // POST /api/reload too: it answers its documented report.
    let (status, report) = post_json(&app, "/api/reload").await;
    assert_eq!(status, 200, "{report}");
    let schema = &doc["paths"]["/api/reload"]["post"]["responses"]["200"]["content"]["application/json"]
        ["schema"];
    let root = json!({"components": doc["components"], "allOf": [schema]});
    let validator = jsonschema::validator_for(&root).expect("a valid schema");
    assert!(validator.is_valid(&report), "{report:#}");
}

/// A secret from a file, sent in an http step's header and URL
/// query, is in neither the database file, the API's answers nor the rules.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_reach_the_database_or_the_api() {
    let (app, sink, delivered) = processed_app(1).await;
    let secret = SECRET;

    // It was really used.
    let seen = sink.seen("/ok");
    let notified = seen.first().expect("the notify step reached the sink");
    assert!(notified.uri.contains(secret), "{}", notified.uri);
    assert_eq!(notified.header("x-api-key"), secret);

    let (_, runs) = get_json(&app, "/api/runs").await;
    let mut answers = vec![runs.to_string()];
    for run in ids(&runs) {
        answers.push(
            get_json(&app, &format!("/api/runs/{run}"))
                .await
                .1
                .to_string(),
        );
    }
    for path in [
        "/api/deliveries".to_owned(),
        format!("/api/deliveries/{}", delivered[0]),
        "/api/rules".to_owned(),
        "/api/openapi.json".to_owned(),
    ] {
        answers.push(get_json(&app, &path).await.1.to_string());
    }
    for answer in &answers {
        assert!(
            !answer.contains(secret),
            "the API leaked the secret: {answer}"
        );
    }
    let notify = answers
        .iter()
        .find(|a| a.contains("/ok?key="))
        .expect("an attempt records the URL");
    assert!(notify.contains("***"), "{notify}");

    for suffix in ["", "-wal", "-shm"] {
        let path = format!("{}{suffix}", app.db_path.display());
        let Ok(bytes) = std::fs::read(&path) else {
            continue;
        };
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "{path} contains the secret"
        );
    }
}

fn old_delivery(id: &str, received_at: i64, dedupe_key: &str) -> NewDelivery {
    NewDelivery {
        id: id.to_owned(),
        source: "gh".to_owned(),
        received_at,
        method: "POST".to_owned(),
        path: "/hooks/gh".to_owned(),
        query: None,
        headers: vec![("content-type".to_owned(), "application/json".to_owned())],
        remote_addr: "127.0.0.1".to_owned(),
        event: String::new(),
        dedupe_key: Some(dedupe_key.to_owned()),
        body: b"{}".to_vec(),
        matched: Vec::new(),
        trace: serde_json::value::to_raw_value(&json!([])).expect("trace"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_prunes_old_deliveries_and_keeps_new_ones() {
    let (app, _sink, delivered) = processed_app(1).await;
    let now = chrono::Utc::now().timestamp_millis();
    let day = 86_400_000;
    // 3 old deliveries without runs, one old with a run still queued.
    for (i, id) in [
        "01OLD0000000000000000000A1",
        "01OLD0000000000000000000A2",
        "01OLD0000000000000000000A3",
    ]
    .iter()
    .enumerate()
    {
        let outcome = app
            .store
            .accept(
                old_delivery(id, now - 40 * day + i as i64, &format!("k{i}")),
                Vec::new(),
                0,
            )
            .await
            .expect("accept");
        assert_eq!(outcome, AcceptOutcome::Accepted);
    }
    let pending = "01OLD0000000000000000000P1";
    let run = NewRun {
        id: "01OLD0000000000000000000R1".to_owned(),
        delivery_id: pending.to_owned(),
        rule: "gone".to_owned(),
        created_at: now - 40 * day,
        definition: json!({}).into(),
        // A concurrency of 0 is never free: this app's workers cannot take
        // the run (and finish it, making its delivery prunable) meanwhile.
        concurrency: Some(0),
        concurrency_key: None,
    };
    app.store
        .accept(old_delivery(pending, now - 40 * day, "kp"), vec![run], 0)
        .await
        .expect("accept");
    // Bounded batches: 2 then 1 then nothing; the pending one stays.
    let cutoff = now - 30 * day;
    assert_eq!(app.store.prune(cutoff, 2).await.expect("prune"), 2);
    assert_eq!(app.store.prune(cutoff, 2).await.expect("prune"), 1);
    assert_eq!(app.store.prune(cutoff, 2).await.expect("prune"), 0);
    for id in ["01OLD0000000000000000000A1", "01OLD0000000000000000000A3"] {
        assert!(app.store.get_delivery(id).await.expect("get").is_none());
    }
    assert!(
        app.store
            .get_delivery(pending)
            .await
            .expect("get")
            .is_some()
    );
    // The new delivery and its runs are kept.
    let (status, delivery) = get_json(&app, &format!("/api/deliveries/{}", delivered[0])).await;
    assert_eq!(status, 200);
    assert_eq!(delivery["runs"].as_array().map(Vec::len), Some(2));
    // The pruned deliveries' dedupe keys went with them.
    let again = app
        .store
        .accept(
            old_delivery("01NEW0000000000000000000A1", now, "k0"),
            Vec::new(),
            365 * day,
        )
        .await
        .expect("accept");
    assert_eq!(again, AcceptOutcome::Accepted);

    // Everything finished, pruned by the task's loop: runs and attempts go too.
    let (_trigger, mut shutdown) = hookflow::shutdown::channel();
    let pruned = hookflow::retention::prune_all(app.store.as_ref(), now + day, &mut shutdown).await;
    assert_eq!(pruned, 2, "the real delivery and the new one");
    let (_, runs) = get_json(&app, "/api/runs").await;
    assert_eq!(ids(&runs), vec!["01OLD0000000000000000000R1".to_owned()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_task_prunes_once_at_start() {
    let app = spawn_app(&[]).await;
    let old = chrono::Utc::now().timestamp_millis() - 10 * 86_400_000;
    app.store
        .accept(
            old_delivery("01OLD0000000000000000000B1", old, "b"),
            Vec::new(),
            0,
        )
        .await
        .expect("accept");
    let (trigger, shutdown) = hookflow::shutdown::channel();
    let task = hookflow::retention::spawn(app.store.clone(), Duration::from_secs(86_400), shutdown);
    wait::until(
        "the old delivery pruned at start",
        Duration::from_secs(10),
        || async {
            app.store
                .get_delivery("01OLD0000000000000000000B1")
                .await
                .expect("get")
                .is_none()
        },
    )
    .await;
    trigger.trigger();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("the task stops on shutdown")
        .expect("the task did not panic");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_deliveries_and_attempts() {
    let (app, _sink, _) = processed_app(1).await;
    let text = app
        .client
        .get(app.admin_url("/metrics"))
        .send()
        .await
        .expect("request")
        .text()
        .await
        .expect("text");
    for name in [
        "hookflow_deliveries_total",
        "hookflow_attempts_total",
        "hookflow_attempt_duration_seconds",
        "hookflow_runs_total",
    ] {
        assert!(text.contains(name), "{name} missing from:\n{text}");
    }
    assert!(text.contains(r#"outcome="failed""#), "{text}");
}

// --- Who reaches the admin surface (SPEC §8) ------------------------------

const OPEN_SOURCE: &str =
    "sources:\n  hooks:\n    verify: { token: { header: X-T, value: t0ken } }\n";

/// A reverse proxy as nginx forwards by default (`proxy_pass
/// http://UPSTREAM;`): same method, path and body, the client's headers
/// but `Host` set to the upstream and no `X-Forwarded-For` — so every
/// request reaches hookflow from 127.0.0.1, whoever sent it.
async fn default_nginx(upstream: std::net::SocketAddr) -> std::net::SocketAddr {
    async fn forward(
        State(upstream): State<std::net::SocketAddr>,
        request: axum::extract::Request,
    ) -> axum::response::Response {
        let (parts, body) = request.into_parts();
        let body = axum::body::to_bytes(body, 1 << 20)
            .await
            .unwrap_or_default();
        let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        let mut outgoing = reqwest::Client::new()
            .request(parts.method.clone(), format!("http://{upstream}{path}"))
            .body(body);
        for (name, value) in &parts.headers {
            if name != "host" && name != "connection" {
                outgoing = outgoing.header(name, value);
            }
        }
        match outgoing.send().await {
            Ok(answer) => {
                let status = answer.status();
                let bytes = answer.bytes().await.unwrap_or_default();
                (status, bytes).into_response()
            }
            Err(_) => StatusCode::BAD_GATEWAY.into_response(),
        }
    }
    use axum::response::IntoResponse;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind proxy");
    let addr = listener.local_addr().expect("proxy addr");
    let app = axum::Router::new().fallback(forward).with_state(upstream);
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

#[tokio::test]
async fn without_a_token_a_proxy_in_front_of_the_webhook_listener_reaches_no_admin_path() {
    let app = spawn_app_with(&[("sources.yaml", OPEN_SOURCE)], |_| {}).await;
    let proxy = default_nginx(app.addr).await;
    let client = reqwest::Client::new();
    for path in [
        "/api/runs",
        "/api/deliveries",
        "/api/openapi.json",
        "/metrics",
        "/ui",
        "/ui/runs",
    ] {
        let answer = client
            .get(format!("http://{proxy}{path}"))
            .header("X-Forwarded-For", "8.8.8.8")
            .send()
            .await
            .expect("through the proxy");
        assert_eq!(
            answer.status().as_u16(),
            404,
            "{path} must not be served here"
        );
        let body: Value = answer.json().await.expect("a JSON 404");
        assert_eq!(body["error"], "no such path", "{path}: {body}");
        assert!(
            !body.to_string().contains("\"hooks\""),
            "the 404 never names a source: {body}"
        );
    }
    // Webhooks still go through the proxy; the admin listener has the API.
    let delivered = client
        .post(format!("http://{proxy}/hooks/hooks"))
        .header("X-T", "t0ken")
        .body("{}")
        .send()
        .await
        .expect("delivery through the proxy");
    assert_eq!(delivered.status().as_u16(), 202);
    let (status, runs) = get_json(&app, "/api/deliveries").await;
    assert_eq!(status, 200, "{runs}");
    let direct = app
        .client
        .get(app.admin_url("/metrics"))
        .send()
        .await
        .expect("metrics");
    assert_eq!(direct.status().as_u16(), 200);
}

#[tokio::test]
async fn the_admin_listener_refuses_a_foreign_host() {
    let app = spawn_app_with(&[("sources.yaml", OPEN_SOURCE)], |s| {
        s.public_url = Some(SettingValue::parse("https://hooks.example.com").expect("url"));
    })
    .await;
    let get = |host: &'static str| {
        app.client
            .get(app.admin_url("/api/rules"))
            .header("Host", host)
            .send()
    };
    for host in [
        "attacker.example",
        "127.0.0.1.attacker.example:9090",
        "localhost.attacker.example",
    ] {
        let answer = get(host).await.expect("request");
        assert_eq!(answer.status().as_u16(), 421, "Host {host} must be refused");
    }
    for host in [
        "localhost:9090",
        "127.0.0.1",
        "[::1]:9090",
        "hooks.example.com",
    ] {
        let answer = get(host).await.expect("request");
        assert_eq!(answer.status().as_u16(), 200, "Host {host} is this machine");
    }
}

#[tokio::test]
async fn with_a_token_the_admin_surface_is_on_both_listeners_behind_it() {
    let app = spawn_app_with(&[("sources.yaml", OPEN_SOURCE)], |s| {
        s.admin_token = Some(hookflow::config::Secret::new("adm1n-token"));
    })
    .await;
    for url in [
        app.url("/api/rules"),
        app.admin_url("/api/rules"),
        app.url("/metrics"),
    ] {
        let none = app.client.get(&url).send().await.expect("get");
        assert_eq!(none.status().as_u16(), 401, "{url}");
        assert!(none.headers().contains_key("www-authenticate"));
        for wrong in ["adm1n-tokeN", "adm1n-toke", "adm1n-token-and-more", ""] {
            let answer = app
                .client
                .get(&url)
                .bearer_auth(wrong)
                .send()
                .await
                .expect("get");
            assert_eq!(answer.status().as_u16(), 401, "{url} with {wrong:?}");
        }
        for scheme in ["Bearer", "bearer", "BEARER"] {
            let answer = app
                .client
                .get(&url)
                .header("Authorization", format!("{scheme} adm1n-token"))
                .send()
                .await
                .expect("get");
            assert_eq!(answer.status().as_u16(), 200, "{url} with scheme {scheme}");
        }
    }
    // Source paths are never behind the token.
    let delivered = app.post("/hooks/hooks", &[("X-T", "t0ken")], "{}").await;
    assert_eq!(delivered.status().as_u16(), 202);
}

// ------------------------------------- the document against the API (schemathesis)

/// The schema of a documented query parameter.
fn param_schema(doc: &Value, path: &str, method: &str, name: &str) -> Value {
    doc["paths"][path][method]["parameters"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["name"] == name))
        .map(|p| p["schema"].clone())
        .unwrap_or_else(|| panic!("{method} {path} documents no `{name}`"))
}

/// Found by bench/schemathesis.sh: a blank filter (as an HTML form sends
/// it) is no filter, and `limit` is bounded in the document as in the API.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blank_filters_are_no_filters_and_limit_is_bounded_as_documented() {
    let (app, _sink, delivered) = processed_app(1).await;
    let (status, page) = get_json(&app, "/api/deliveries?since=&source=&before=").await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(ids(&page), delivered);
    let (status, page) = get_json(&app, "/api/runs?status=&rule=&before=").await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(ids(&page).len(), 2);
    for bad in ["limit=0", "limit=1001", "limit=", "status=nope"] {
        let (status, body) = get_json(&app, &format!("/api/runs?{bad}")).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
    let (_, doc) = get_json(&app, "/api/openapi.json").await;
    for path in ["/api/deliveries", "/api/runs"] {
        let limit = param_schema(&doc, path, "get", "limit");
        assert_eq!(limit["minimum"].as_f64(), Some(1.0), "{path}: {limit}");
        assert_eq!(limit["maximum"].as_f64(), Some(1000.0), "{path}: {limit}");
    }
    let status = param_schema(&doc, "/api/runs", "get", "status");
    assert!(status["pattern"].is_string(), "{status}");
}

/// Found by bench/schemathesis.sh: replay's 400 for a non-boolean
/// `dry_run` was not in the document, and `dry_run=` (which the document
/// calls invalid) was taken as true.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_with_a_bad_dry_run_is_a_documented_400() {
    let (app, _sink, delivered) = processed_app(1).await;
    for bad in ["maybe", "", "1"] {
        let path = format!("/api/deliveries/{}/replay?dry_run={bad}", delivered[0]);
        let (status, body) = post_json(&app, &path).await;
        assert_eq!(status, 400, "dry_run={bad}: {body}");
        assert!(
            body["error"]
                .as_str()
                .is_some_and(|e| e.contains("dry_run"))
        );
    }
    let (_, doc) = get_json(&app, "/api/openapi.json").await;
    let documented = &doc["paths"]["/api/deliveries/{id}/replay"]["post"]["responses"];
    assert!(documented["400"].is_object(), "{documented}");
}

/// Found by bench/schemathesis.sh: the document demanded a bearer token
/// in the mode that serves without one. Each mode now says what it does.
#[tokio::test]
async fn the_document_declares_bearer_auth_only_when_a_token_is_set() {
    let open = spawn_app(&[("sources.yaml", OPEN_SOURCE)]).await;
    let (status, doc) = get_json(&open, "/api/openapi.json").await;
    assert_eq!(status, 200, "{doc}");
    assert!(doc.get("security").is_none(), "{}", doc["security"]);
    assert!(doc["components"].get("securitySchemes").is_none());
    let (status, _) = get_json(&open, "/api/rules").await;
    assert_eq!(status, 200, "served without authentication, as documented");

    let guarded = spawn_app_with(&[("sources.yaml", OPEN_SOURCE)], |s| {
        s.admin_token = Some(hookflow::config::Secret::new("d0c-token"));
    })
    .await;
    let doc: Value = guarded
        .client
        .get(guarded.url("/api/openapi.json"))
        .bearer_auth("d0c-token")
        .send()
        .await
        .expect("document")
        .json()
        .await
        .expect("JSON");
    assert_eq!(doc["security"], json!([{"admin_token": []}]));
    assert_eq!(
        doc["components"]["securitySchemes"]["admin_token"]["scheme"],
        "bearer"
    );
    let refused = guarded
        .client
        .get(guarded.url("/api/rules"))
        .send()
        .await
        .expect("rules");
    assert_eq!(refused.status().as_u16(), 401);
    assert!(doc["paths"]["/api/rules"]["get"]["responses"]["401"].is_object());
}
