//! Payload contracts (SPEC §2.1, §4) over real HTTP: a source's `schema:`
//! or `schema_file:` is checked after the body parses; a mismatch is a 422
//! naming where and why, kept as a rejected delivery with its verified
//! request, and replayable once the schema admits it.

use hookflow::store::DeliveryStatus;
use serde_json::{Value, json};

use crate::common::app::{TestApp, spawn_app};

const STRICT: &str = r#"
sources:
  orders:
    verify: { token: { header: X-Token, value: order-token } }
    schema:
      type: object
      required: [id, total]
      properties:
        id: { type: string }
        total: { type: integer, minimum: 0 }
  files:
    verify: { token: { header: X-Token, value: order-token } }
    schema_file: order.json
rules:
  - name: book
    source: [orders, files]
    actions:
      - http: { url: "http://127.0.0.1:9/book" }
"#;

const ORDER_SCHEMA: &str = r#"{ "type": "object", "required": ["id"] }"#;

async fn app() -> TestApp {
    spawn_app(&[("rules.yaml", STRICT), ("order.json", ORDER_SCHEMA)]).await
}

async fn post(app: &TestApp, path: &str, key: &str, body: &Value) -> (u16, Value) {
    let resp = app
        .post(
            path,
            &[
                ("X-Token", "order-token"),
                ("Content-Type", "application/json"),
                ("Idempotency-Key", key),
            ],
            body.to_string(),
        )
        .await;
    let status = resp.status().as_u16();
    (status, resp.json().await.expect("a JSON answer"))
}

#[tokio::test]
async fn a_payload_against_the_schema_is_422_with_where_and_why_and_kept_with_its_body() {
    let app = app().await;
    let (status, answer) = post(
        &app,
        "/hooks/orders",
        "k1",
        &json!({"id": "o1", "total": 5}),
    )
    .await;
    assert_eq!(status, 202, "{answer}");

    let bad = json!({"id": "o2", "total": "5"});
    let (status, answer) = post(&app, "/hooks/orders", "k2", &bad).await;
    assert_eq!(status, 422, "{answer}");
    assert_eq!(answer["error"], "payload does not match the schema");
    assert_eq!(answer["at"], "/total");
    let reason = answer["reason"].as_str().expect("a reason");
    assert!(reason.contains("is not of type \"integer\""), "{reason}");

    // Kept, before the answer: the verified body and headers (credentials
    // masked), and no run.
    let id = answer["delivery"].as_str().expect("the delivery id");
    let stored = app
        .store
        .get_delivery(id)
        .await
        .expect("read")
        .expect("the 422 is stored");
    assert_eq!(stored.status, DeliveryStatus::Rejected);
    assert_eq!(stored.reject_status, Some(422));
    assert!(
        stored
            .reject_reason
            .as_deref()
            .is_some_and(|r| r.contains("/total")),
        "{:?}",
        stored.reject_reason
    );
    assert_eq!(
        stored.body.as_deref(),
        Some(bad.to_string().as_bytes()),
        "the body is kept"
    );
    let header = |name: &str| {
        stored
            .headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(header("content-type"), Some("application/json"));
    assert_eq!(header("x-token"), Some("***"), "the token is not stored");
    assert!(
        app.store
            .runs_for_delivery(id)
            .await
            .expect("runs")
            .is_empty()
    );

    // A whole payload of the wrong type is refused at the root, by file too.
    let (status, answer) = post(&app, "/hooks/files", "k3", &json!([1, 2])).await;
    assert_eq!(status, 422, "{answer}");
    assert_eq!(answer["at"], "");

    let metrics = app
        .client
        .get(app.admin_url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics
            .lines()
            .any(|l| l.contains("outcome=\"rejected_422\"") && l.contains("source=\"orders\"")),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_kept_422_replays_once_the_schema_is_fixed_and_a_corrected_resend_is_no_duplicate() {
    let app = app().await;
    let (status, answer) = post(
        &app,
        "/hooks/orders",
        "same-key",
        &json!({"id": "o9", "total": -1}),
    )
    .await;
    assert_eq!(status, 422, "{answer}");
    assert_eq!(answer["at"], "/total");
    let id = answer["delivery"].as_str().expect("id").to_string();

    let replay = |id: String| {
        let app = &app;
        async move {
            let resp = app
                .client
                .post(app.admin_url(&format!("/api/deliveries/{id}/replay")))
                .send()
                .await
                .expect("replay");
            let status = resp.status().as_u16();
            (status, resp.json::<Value>().await.expect("json"))
        }
    };
    let (status, body) = replay(id.clone()).await;
    assert_eq!(status, 409, "still refused by the schema: {body}");
    assert!(
        body["error"].as_str().is_some_and(|e| e.contains("/total")),
        "{body}"
    );

    // The sender fixes its payload: the resend is not taken for a duplicate
    // of the refused one.
    let (status, answer) = post(
        &app,
        "/hooks/orders",
        "same-key",
        &json!({"id": "o9", "total": 1}),
    )
    .await;
    assert_eq!(status, 202, "{answer}");

    // Or the schema is fixed: the kept delivery replays.
    app.write_rule_file("rules.yaml", &STRICT.replace("minimum: 0", "minimum: -100"));
    let report = app.reloader.reload();
    assert!(report.ok, "{:?}", report.errors);
    let (status, body) = replay(id.clone()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["matched"], json!(["book"]));
    let runs = app.store.runs_for_delivery(&id).await.expect("runs");
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].rule, "book");
}
