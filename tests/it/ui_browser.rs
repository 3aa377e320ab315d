//! The dashboard in a real browser (headless chromium through
//! chromedriver, SPEC §8): log in with the admin token, filter deliveries,
//! follow the live tail, read a delivery's match trace, press Replay and
//! Retry and see the state change, no console errors (so no CSP
//! violation either); and at 360 px, attacker-controlled payloads and
//! headers shown as text with nothing executing.
//!
//! Needs Debian's `chromium` and `chromium-driver`; without them these
//! tests fail and say what to install.

pub(crate) mod driver;

use std::sync::Arc;

use crate::common::app::{TestApp, spawn_app_with_engine};
use crate::common::sink::{Reply, Sink};
use driver::wait_for;
use fantoccini::{Client, Locator};
use hookflow::store::NewRun;
use serde_json::{Value, json};

const ADMIN_TOKEN: &str = "ui-adm1n-token";

/// A sink whose `/fail` answers 500 until a test heals it.
async fn start_sink() -> Sink {
    let sink = Sink::start().await;
    sink.answer("/fail", Reply::status(500));
    sink
}

fn rules(sink: &str) -> String {
    format!(
        r#"
sources:
  gh:
    verify:
      token: {{ header: X-Token, value: "tok-123" }}
  shop:
    verify:
      token: {{ header: X-Token, value: "tok-456" }}
rules:
  - name: notify
    source: gh
    actions:
      - id: call
        http:
          url: "{sink}/fail"
          retry: {{ attempts: 1 }}
  - name: only_main
    source: gh
    when:
      - path: $.ref
        equals: refs/heads/main
    actions:
      - http: {{ url: "{sink}/ok" }}
"#
    )
}

async fn deliver(app: &TestApp, source: &str, token: &str, body: Value) -> String {
    let response = app
        .post(
            &format!("/hooks/{source}"),
            &[("X-Token", token), ("Content-Type", "application/json")],
            body.to_string(),
        )
        .await;
    assert_eq!(response.status(), 202, "{source} accepts");
    let answer: Value = response.json().await.expect("json answer");
    answer["delivery"]
        .as_str()
        .expect("a delivery id")
        .to_owned()
}

async fn text_of(client: &Client, css: &str) -> Option<String> {
    client.find(Locator::Css(css)).await.ok()?.text().await.ok()
}

async fn count(client: &Client, css: &str) -> usize {
    client
        .find_all(Locator::Css(css))
        .await
        .map_or(0, |all| all.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_logs_in_filters_reads_a_trace_replays_retries_and_tails() {
    let sink = start_sink().await;
    let app = spawn_app_with_engine(&[("rules.yaml", &rules(&sink.url))], |s| {
        s.admin_token = Some(hookflow::config::Secret::new(ADMIN_TOKEN));
        s.workers = 2;
    })
    .await;
    let dev = deliver(&app, "gh", "tok-123", json!({ "ref": "refs/heads/dev" })).await;
    deliver(&app, "gh", "tok-123", json!({ "ref": "refs/heads/main" })).await;
    let shop = deliver(&app, "shop", "tok-456", json!({ "order": 1 })).await;
    // A run no worker may take (a concurrency of 0 is never free): it stays
    // queued until the operator cancels it.
    let parked = ulid::Ulid::new().to_string();
    let definition = app
        .reloader
        .rules()
        .load()
        .rule("notify")
        .expect("notify")
        .definition
        .clone();
    app.store
        .queue_runs(
            &shop,
            vec![NewRun {
                id: parked.clone(),
                delivery_id: shop.clone(),
                rule: "notify".into(),
                created_at: chrono::Utc::now().timestamp_millis(),
                definition: definition.into(),
                concurrency: Some(0),
                concurrency_key: None,
            }],
        )
        .await
        .expect("queue the parked run");
    let browser = driver::open(1280, 900).await;
    let base = format!("http://{}", app.admin_addr);
    let app = Arc::new(app);
    let scenario_app = app.clone();
    let console = browser.console();
    browser
        .run("operator", move |c| async move {
            let app = scenario_app;
            // Not logged in: the login page, and a wrong token is refused.
            c.goto(&format!("{base}/ui/deliveries"))
                .await
                .expect("goto");
            let token = c
                .wait()
                .for_element(Locator::Css("#token"))
                .await
                .expect("login form");
            token.send_keys("wrong").await.expect("type");
            c.find(Locator::Css("main.login button"))
                .await
                .expect("button")
                .click()
                .await
                .expect("click");
            let error = wait_for("the refusal", || async { text_of(&c, "p.error").await }).await;
            assert!(error.contains("not the admin token"), "{error}");
            // The refused login's 401 is the only console error so far.
            let errors = console.errors().await;
            assert!(
                errors.len() == 1
                    && errors[0]["message"]
                        .as_str()
                        .is_some_and(|m| m.contains("/ui/login") && m.contains("401")),
                "{errors:#?}"
            );
            let token = c
                .find(Locator::Css("#token"))
                .await
                .expect("login form again");
            token.send_keys(ADMIN_TOKEN).await.expect("type");
            c.find(Locator::Css("main.login button"))
                .await
                .expect("button")
                .click()
                .await
                .expect("click");
            wait_for("three deliveries listed", || async {
                (count(&c, "#rows tr").await == 3).then_some(())
            })
            .await;
            assert!(
                c.current_url()
                    .await
                    .expect("url")
                    .path()
                    .starts_with("/ui/deliveries")
            );

            // Filter by source: htmx swaps the list and the URL follows.
            let source = c
                .find(Locator::Css("select[name=source]"))
                .await
                .expect("source filter");
            source.select_by_value("shop").await.expect("select shop");
            wait_for("only the shop delivery", || async {
                let rows = c.find_all(Locator::Css("#rows tr")).await.ok()?;
                let first = rows.first()?.text().await.ok()?;
                (rows.len() == 1 && first.contains("shop")).then_some(())
            })
            .await;
            assert!(
                c.current_url()
                    .await
                    .expect("url")
                    .query()
                    .unwrap_or("")
                    .contains("source=shop")
            );

            // The live tail: back to all sources, deliveries arrive, rows appear.
            c.goto(&format!("{base}/ui/deliveries"))
                .await
                .expect("goto");
            wait_for("the list", || async {
                (count(&c, "#rows tr").await == 3).then_some(())
            })
            .await;
            // Deliveries sent before the tail connects are not lost (it starts
            // after the newest row shown), but the test wants to see the tail
            // itself at work.
            wait_for("the tail connected", || async {
                (count(&c, "#rows[data-live=open]").await == 1).then_some(())
            })
            .await;
            let mut fresh = Vec::new();
            for n in 0..3 {
                fresh.push(deliver(&app, "shop", "tok-456", json!({ "order": 100 + n })).await);
            }
            wait_for("three tailed rows", || async {
                (count(&c, "#rows tr").await == 6).then_some(())
            })
            .await;
            let html = c
                .find(Locator::Css("#rows"))
                .await
                .expect("rows")
                .html(true)
                .await
                .expect("html");
            for id in &fresh {
                assert!(html.contains(id.as_str()), "tailed delivery {id} is listed");
            }

            // A delivery and its trace: only_main did not match, and why.
            c.goto(&format!("{base}/ui/deliveries/{dev}"))
                .await
                .expect("goto");
            let trace = c
                .wait()
                .for_element(Locator::Css("#trace"))
                .await
                .expect("trace")
                .text()
                .await
                .expect("text");
            assert!(
                trace.contains("notify") && trace.contains("only_main"),
                "{trace}"
            );
            assert!(trace.contains("no match"), "{trace}");
            assert!(
                trace.contains("refs/heads/dev") && trace.contains("refs/heads/main"),
                "{trace}"
            );

            // Replay: one more run of notify (the only rule matching now).
            let runs_before = count(&c, "main table:not(#trace) a[href^='/ui/runs/']").await;
            c.find(Locator::Css("form[action$='/replay'] button"))
                .await
                .expect("Replay")
                .click()
                .await
                .expect("click");
            let notice = wait_for("the replay notice", || async {
                text_of(&c, "p.notice").await
            })
            .await;
            assert!(notice.contains("1 run queued"), "{notice}");
            assert_eq!(
                count(&c, "main table:not(#trace) a[href^='/ui/runs/']").await,
                runs_before + 1
            );

            // Its first run failed (the sink answers 500); Retry it once the
            // sink is fixed, and watch it succeed.
            let run_link = c
                .find(Locator::Css("main table:not(#trace) a[href^='/ui/runs/']"))
                .await
                .expect("a run link");
            run_link.click().await.expect("open the run");
            wait_for("the run to have failed", || async {
                c.refresh().await.ok()?;
                let status = text_of(&c, "#run-status").await?;
                (status == "failed").then_some(())
            })
            .await;
            let attempts = count(&c, "details").await;
            sink.answer("/fail", Reply::status(200));
            c.find(Locator::Css("form[action$='/retry'] button"))
                .await
                .expect("Retry")
                .click()
                .await
                .expect("click");
            wait_for("the retried run to succeed", || async {
                let status = text_of(&c, "#run-status").await;
                if status.as_deref() != Some("succeeded") {
                    c.refresh().await.ok()?;
                    return None;
                }
                Some(())
            })
            .await;
            assert_eq!(
                count(&c, "details").await,
                attempts + 1,
                "one more attempt shown"
            );
            assert!(
                count(&c, "form[action$='/retry']").await == 0,
                "no Retry on a succeeded run"
            );
            assert!(
                count(&c, "form[action$='/cancel']").await == 0,
                "no Cancel on a finished run"
            );
            // The audit trail names the dashboard as the retry's origin.
            let trail = text_of(&c, "table.trail").await.unwrap_or_default();
            assert!(trail.contains("retry") && trail.contains("ui"), "{trail}");

            // Cancel the parked run: cancelled at once.
            c.goto(&format!("{base}/ui/runs/{parked}"))
                .await
                .expect("goto");
            let status = c
                .wait()
                .for_element(Locator::Css("#run-status"))
                .await
                .expect("status")
                .text()
                .await
                .expect("text");
            assert_eq!(status, "queued");
            c.find(Locator::Css("form[action$='/cancel'] button"))
                .await
                .expect("Cancel")
                .click()
                .await
                .expect("click");
            let notice = wait_for("the cancel notice", || async {
                text_of(&c, "p.notice").await
            })
            .await;
            assert_eq!(notice, "Cancelled.");
            assert_eq!(
                text_of(&c, "#run-status").await.as_deref(),
                Some("cancelled")
            );
            let trail = text_of(&c, "table.trail").await.unwrap_or_default();
            assert!(trail.contains("cancel") && trail.contains("ui"), "{trail}");

            // The overview: a chart of the hour per source, and the rules'
            // figures (notify failed once, then its retry and the replay's
            // run finished).
            c.goto(&format!("{base}/ui/")).await.expect("goto");
            let stats = c
                .wait()
                .for_element(Locator::Css("#rule-stats"))
                .await
                .expect("rule stats")
                .text()
                .await
                .expect("text");
            assert!(
                stats.contains("notify") && stats.contains("only_main"),
                "{stats}"
            );
            assert!(
                count(&c, "svg.chart rect.matched").await >= 1,
                "a chart with matched deliveries"
            );
            assert_eq!(count(&c, "svg.chart").await, 2, "one chart per source");
        })
        .await;
    browser.assert_no_console_errors().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attacker_text_shows_as_text_and_the_page_fits_360_px() {
    let sink = start_sink().await;
    let app = spawn_app_with_engine(&[("rules.yaml", &rules(&sink.url))], |_| {}).await;
    let evil = r#"<script>window.__pwned = 1</script>"><img src=x onerror="window.__pwned = 2"><a href="javascript:window.__pwned=3">click</a>"#;
    let response = app
        .post(
            "/hooks/gh",
            &[
                ("X-Token", "tok-123"),
                ("Content-Type", "application/json"),
                ("X-Evil", r#""><img src=x onerror="window.__pwned=4">"#),
                ("X-GitHub-Event", "<script>window.__pwned=5</script>"),
            ],
            json!({ "ref": evil, "url": "javascript:alert(1)" }).to_string(),
        )
        .await;
    assert_eq!(response.status(), 202);
    let id = response.json::<Value>().await.expect("json")["delivery"]
        .as_str()
        .expect("id")
        .to_owned();
    let browser = driver::open(360, 740).await;
    let base = format!("http://{}", app.admin_addr);
    browser
        .run("narrow-xss", move |c| async move {
            // The delivery's page last: its text is read after the loop.
            for path in [
                "/ui/nodes".to_owned(),
                "/ui/deliveries".to_owned(),
                format!("/ui/deliveries/{id}"),
            ] {
                // No token: the admin listener serves the dashboard without a login.
                c.goto(&format!("{base}{path}")).await.expect("goto");
                c.wait()
                    .for_element(Locator::Css("main h1"))
                    .await
                    .expect("page");
                let width = c
                    .execute(
                        "return [window.innerWidth, document.documentElement.scrollWidth];",
                        vec![],
                    )
                    .await
                    .expect("width");
                assert_eq!(width[0], json!(360), "the window is 360 px wide");
                assert!(
                    width[1].as_u64().unwrap_or(9999) <= 360,
                    "{path}: nothing wider than the screen: {width}"
                );
                let pwned = c
                    .execute("return window.__pwned === undefined;", vec![])
                    .await
                    .expect("js");
                assert_eq!(pwned, json!(true), "{path}: an attacker's script ran");
                assert_eq!(
                    count(&c, "main img").await,
                    0,
                    "{path}: an <img> from the payload"
                );
                assert_eq!(
                    count(&c, "a[href^='javascript:']").await,
                    0,
                    "{path}: a javascript: link"
                );
            }
            let body = text_of(&c, "main").await.expect("page text");
            assert!(
                body.contains("<script>window.__pwned = 1</script>"),
                "the payload shows as text"
            );
            assert!(
                body.contains(r#""><img src=x onerror="window.__pwned=4">"#),
                "the header shows as text"
            );
        })
        .await;
    browser.assert_no_console_errors().await;
}
