//! Regenerates the README's dashboard screenshots (docs/screenshots/*.png)
//! with the browser tests' own tooling: `docs/screenshots.sh` runs this
//! ignored test. It seeds an hour of deliveries into a real server's run
//! log, lets the engine run their steps against a local sink (one path
//! fails), and photographs the overview, a delivery with its trace and a
//! failed run.

use std::path::PathBuf;

use fantoccini::Locator;
use hookflow::store::{NewDelivery, NewRun};
use serde_json::json;

use crate::common::app::spawn_app_with_engine;
use crate::common::sink::{Reply, Sink};
use crate::ui_browser::driver;

const RULES: &str = r#"
sources:
  github:
    verify:
      token: { header: X-Token, value: "tok-123" }
  stripe:
    verify:
      token: { header: X-Token, value: "tok-456" }
rules:
  - name: deploy-main
    source: github
    when:
      - path: $.ref
        equals: refs/heads/main
    actions:
      - id: build
        http: { url: "SINK/ok", json: { ref: "{{payload.ref}}" } }
      - id: notify
        http: { url: "SINK/fail", retry: { attempts: 1 } }
  - name: big-orders
    source: stripe
    when:
      - path: $.data.object.amount
        gt: 10000
    actions:
      - http: { url: "SINK/ok" }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "regenerates docs/screenshots (run by docs/screenshots.sh)"]
async fn readme_screenshots() {
    let sink = start_sink().await;
    let rules = RULES.replace("SINK", &sink);
    let app = spawn_app_with_engine(&[("rules.yaml", &rules)], |_| {}).await;
    // An hour of background traffic straight into the run log.
    let now = chrono::Utc::now().timestamp_millis();
    let big_orders = app
        .reloader
        .rules()
        .load()
        .rule("big-orders")
        .map(|r| r.definition.clone());
    for i in 0..240_i64 {
        let at = now - 3_600_000 + i * 15_000 + (i * 7919 % 9_000);
        let (source, matched) = match i % 5 {
            0 | 1 => ("github", false),
            2 | 3 => ("stripe", true),
            _ => ("stripe", false),
        };
        let id = ulid::Ulid::from_parts(at as u64, i as u128).to_string();
        // Runs only for the last minutes: a run's duration counts from
        // its creation, and these run only now.
        let runs = match (&big_orders, matched && i >= 228) {
            (Some(definition), true) => vec![NewRun {
                id: ulid::Ulid::from_parts(at as u64, 1_000 + i as u128).to_string(),
                delivery_id: id.clone(),
                rule: "big-orders".into(),
                created_at: at,
                definition: definition.into(),
                concurrency: None,
                concurrency_key: None,
            }],
            _ => Vec::new(),
        };
        let delivery = NewDelivery {
            id,
            source: source.into(),
            received_at: at,
            method: "POST".into(),
            path: format!("/hooks/{source}"),
            query: None,
            headers: vec![("content-type".into(), "application/json".into())],
            remote_addr: "192.0.2.10".into(),
            event: if source == "github" {
                "push".into()
            } else {
                String::new()
            },
            dedupe_key: None,
            body: br#"{"seeded":true}"#.to_vec(),
            matched: if matched {
                vec!["big-orders".into()]
            } else {
                Vec::new()
            },
            trace: serde_json::value::RawValue::NULL.to_owned(),
        };
        app.store.accept(delivery, runs, 0).await.expect("seed");
    }
    // Two real pushes: one to main (its notify step fails), one to a branch.
    let mut ids = Vec::new();
    for branch in ["main", "feature/login"] {
        let body = json!({ "ref": format!("refs/heads/{branch}"), "pusher": { "name": "ada" },
            "head_commit": { "message": "Fix the login form", "id": "9fceb02d0ae598e95dc970b74767f19372d61af8" } });
        let r = app
            .post(
                "/hooks/github",
                &[
                    ("X-Token", "tok-123"),
                    ("X-GitHub-Event", "push"),
                    ("Content-Type", "application/json"),
                ],
                body.to_string(),
            )
            .await;
        assert_eq!(r.status(), 202);
        ids.push(
            r.json::<serde_json::Value>().await.expect("json")["delivery"]
                .as_str()
                .expect("id")
                .to_owned(),
        );
    }
    let run = crate::common::wait::for_ok(
        "the main push's run to fail",
        std::time::Duration::from_secs(30),
        || async {
            let runs = app
                .store
                .runs_for_delivery(&ids[0])
                .await
                .map_err(|e| e.to_string())?;
            runs.into_iter()
                .find(|r| r.status == hookflow::store::RunStatus::Failed)
                .map(|r| r.id)
                .ok_or_else(|| "not failed yet".to_owned())
        },
    )
    .await;

    let out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/screenshots");
    std::fs::create_dir_all(&out).expect("docs/screenshots");
    let browser = driver::open(1100, 900).await;
    let c = &browser.client;
    let base = format!("http://{}", app.admin_addr);
    for (name, path, wait_for) in [
        ("overview", "/ui/".to_owned(), "#rule-stats"),
        ("delivery", format!("/ui/deliveries/{}", ids[1]), "#trace"),
        ("run", format!("/ui/runs/{run}"), "#run-status"),
    ] {
        c.goto(&format!("{base}{path}")).await.expect("goto");
        c.wait()
            .for_element(Locator::Css(wait_for))
            .await
            .expect("the page");
        let png = c.screenshot().await.expect("screenshot");
        let file = out.join(format!("{name}.png"));
        std::fs::write(&file, png).expect("write the screenshot");
        eprintln!("wrote {}", file.display());
    }
    browser.assert_no_console_errors().await;
}

/// `/fail` answers 500, everything else 200.
async fn start_sink() -> String {
    let sink = Sink::start().await;
    sink.answer("/fail", Reply::status(500));
    sink.url
}
