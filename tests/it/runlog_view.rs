//! The run log has one redacted view, shown by both the API and the CLI:
//! `hookflow show --json` of a delivery is exactly what
//! `GET /api/deliveries/{id}` answers, and neither shows a secret that
//! came in inside the body or the dedupe key.

use std::path::Path;

use serde_json::Value;

use crate::common::app::{TestApp, spawn_app};
use crate::common::cli::hookflow;

/// A secret read from a file (`${file:…}`): redacted wherever it shows.
const SECRET: &str = "tok-view-5f3a9c1e";

fn rules(secret_file: &Path) -> String {
    format!(
        r#"
sources:
  view:
    verify: {{ token: {{ header: X-Token, value: "${{file:{}}}" }} }}
    dedupe: {{ header: X-Delivery }}
rules:
  - name: noted
    source: view
    actions:
      - shell: {{ command: ["true"] }}
"#,
        secret_file.display()
    )
}

/// `hookflow ARGS… --rules … --db …` on `app`'s rules and database.
async fn cli(app: &TestApp, args: &[&str]) -> (String, String) {
    let ran = hookflow(args)
        .arg("--rules")
        .arg(&app.rules_dir)
        .arg("--db")
        .arg(format!("sqlite://{}", app.db_path.display()))
        .run_async()
        .await;
    ran.success();
    (ran.stdout, ran.stderr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn show_redacts_a_delivery_exactly_as_the_api_does() {
    let secrets = tempfile::tempdir().expect("temp");
    let secret_file = secrets.path().join("token");
    std::fs::write(&secret_file, format!("{SECRET}\n")).expect("write secret");
    // No workers: the run stays queued, so both reads see the same record.
    let app = spawn_app(&[("view.yaml", &rules(&secret_file))]).await;

    let body = format!(r#"{{"note":"the token is {SECRET}","n":1}}"#);
    let dedupe = format!("retry-of-{SECRET}");
    let resp = app
        .post(
            "/hooks/view",
            &[
                ("X-Token", SECRET),
                ("X-Delivery", &dedupe),
                ("Content-Type", "application/json"),
            ],
            body,
        )
        .await;
    assert_eq!(resp.status(), 202);
    let accepted: Value = resp.json().await.expect("json");
    let id = accepted["delivery"]
        .as_str()
        .expect("delivery id")
        .to_owned();

    let api: Value = app
        .client
        .get(app.admin_url(&format!("/api/deliveries/{id}")))
        .send()
        .await
        .expect("api")
        .json()
        .await
        .expect("json");
    let (out, _) = cli(&app, &["show", "--json", &id]).await;
    let shown: Value = serde_json::from_str(&out).expect("show --json is JSON");
    assert_eq!(shown, api, "the CLI and the API show the same view");

    assert_eq!(api["body_encoding"], "utf8", "{api}");
    assert_eq!(api["body"], r#"{"note":"the token is ***","n":1}"#, "{api}");
    assert_eq!(api["dedupe_key"], "retry-of-***", "{api}");
    assert!(!api.to_string().contains(SECRET), "{api}");

    let (text, err) = cli(&app, &["show", &id]).await;
    assert!(
        !text.contains(SECRET) && !err.contains(SECRET),
        "{text}{err}"
    );
    assert!(text.contains("  dedupe    retry-of-***\n"), "{text}");
    assert!(
        text.contains("\n    \"note\": \"the token is ***\",\n"),
        "the body, pretty-printed and redacted: {text}"
    );

    let (listed, _) = cli(&app, &["deliveries", "--json"]).await;
    let listed: Value = serde_json::from_str(&listed).expect("deliveries --json is JSON");
    let page: Value = app
        .client
        .get(app.admin_url("/api/deliveries"))
        .send()
        .await
        .expect("api")
        .json()
        .await
        .expect("json");
    assert_eq!(listed, page["items"], "the listing is the API's items");
}
