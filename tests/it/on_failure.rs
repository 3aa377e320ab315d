//! `on_failure:` and `on_failure_every:` (SPEC §5) through a real
//! `hookflow serve` child, its SQLite file and the loopback sink standing
//! in for Slack: a failed run alerts once with its failure, an alert that
//! fails does not chain, a window groups failures, a lost worker alerts,
//! an alert survives `kill -9`, and the metric counts executions.

use std::sync::Arc;
use std::time::Duration;

use hookflow::store::{RunFilter, RunKind, RunRecord, RunStatus, Store};

use crate::common::app::{Server, rules_dir, serve};
use crate::common::sink::{Reply, Seen, Sink};
use crate::common::wait;

const WITHIN: Duration = Duration::from_secs(30);

const RULES: &str = r#"
sources:
  s:
    verify: { token: { header: X-Token, value: alert-token } }
rules:
  - name: deploy
    source: s
    event: deploy
    actions:
      - id: build
        http:
          url: SINK/ci
          json: { ref: "{{payload.ref}}" }
          retry: { attempts: 2, backoff: 10ms }
    on_failure:
      - slack:
          webhook_url: SINK/alert
          text: "{{rule.name}} failed at {{failure.step}} after {{failure.attempts}} attempt(s): {{failure.error}} (run {{run.id}}, {{payload.ref}}, count {{failure.count}})"
  - name: broken-alert
    source: s
    event: broken
    actions:
      - shell: { command: ["false"] }
    on_failure:
      - http:
          url: SINK/broken-alert
          retry: { attempts: 1 }
  - name: grouped
    source: s
    event: grouped
    actions:
      - shell: { command: ["false"] }
    on_failure_every: 3s
    on_failure:
      - http:
          url: SINK/grouped
          json: { count: "{{failure.count}}", run: "{{run.id}}" }
  - name: lost
    source: s
    event: lost
    actions:
      - id: always
        shell: { command: ["true"] }
    on_failure:
      - http:
          url: SINK/lost
          json: { step: "{{failure.step}}", error: "{{failure.error}}" }
"#;

fn server(dir: &std::path::Path, envs: &[(&str, &str)]) -> Server {
    Server::start(serve(dir, &[], envs))
}

async fn store_of(dir: &std::path::Path) -> Arc<dyn Store> {
    let url = format!("sqlite://{}", dir.join("hookflow.db").display());
    hookflow::store::open(&url).await.expect("open the run log")
}

async fn send(server: &Server, event: &str, body: &str) -> String {
    let resp = reqwest::Client::new()
        .post(server.url("/hooks/s"))
        .header("content-type", "application/json")
        .header("X-Token", "alert-token")
        .header("X-Event", event)
        .body(body.to_owned())
        .send()
        .await
        .expect("the server answers");
    assert_eq!(resp.status().as_u16(), 202, "accepted");
    let v: serde_json::Value = resp.json().await.expect("json");
    v["delivery"].as_str().expect("a delivery id").to_owned()
}

/// The rule's runs of `kind`, once `done` holds for them.
async fn runs_of(
    store: &Arc<dyn Store>,
    server: &Server,
    rule: &str,
    kind: RunKind,
    done: impl Fn(&[RunRecord]) -> bool,
) -> Vec<RunRecord> {
    wait::for_ok(&format!("the {rule} runs"), WITHIN, || async {
        let runs: Vec<RunRecord> = store
            .list_runs(RunFilter {
                rule: Some(rule.to_owned()),
                ..RunFilter::default()
            })
            .await
            .expect("list")
            .into_iter()
            .filter(|r| r.kind == kind)
            .collect();
        if done(&runs) {
            Ok(runs)
        } else {
            Err(format!("{runs:#?}\n{}", server.log_tail()))
        }
    })
    .await
}

fn all_finished(runs: &[RunRecord]) -> bool {
    !runs.is_empty() && runs.iter().all(|r| r.status.is_finished())
}

fn rules(sink: &Sink) -> tempfile::TempDir {
    let dir = rules_dir(&RULES.replace("SINK", &sink.url));
    // The event comes from a header the source names.
    let path = dir.path().join("rules").join("rules.yaml");
    let yaml = std::fs::read_to_string(&path).expect("read rules");
    let yaml = yaml.replace(
        "    verify: { token: { header: X-Token, value: alert-token } }",
        "    verify: { token: { header: X-Token, value: alert-token } }\n    event: { header: X-Event }",
    );
    std::fs::write(&path, yaml).expect("write rules");
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_run_alerts_once_with_its_failure_and_a_failed_alert_does_not_chain() {
    let sink = Sink::start().await;
    sink.answer("/ci", Reply::body(503, "{\"message\":\"CI is down\"}"));
    sink.answer("/broken-alert", Reply::status(500));
    let dir = rules(&sink);
    let server = server(dir.path(), &[]);
    server.wait_ready(&reqwest::Client::new()).await;
    let store = store_of(dir.path()).await;

    let delivery = send(&server, "deploy", r#"{"ref":"refs/heads/main"}"#).await;
    let alerts = sink.wait_for("/alert", 1, WITHIN).await;
    let failed = runs_of(&store, &server, "deploy", RunKind::Rule, all_finished).await;
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].status, RunStatus::Failed);
    let text = alerts[0].json()["text"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        text.starts_with("deploy failed at build after 2 attempt(s): "),
        "{text}"
    );
    assert!(
        text.ends_with(&format!("(run {}, refs/heads/main, count 1)", failed[0].id)),
        "{text}"
    );
    assert!(text.contains("503"), "the step's error: {text}");
    let handlers = runs_of(&store, &server, "deploy", RunKind::OnFailure, all_finished).await;
    assert_eq!(handlers.len(), 1, "{handlers:#?}");
    let handler = &handlers[0];
    assert_eq!(handler.status, RunStatus::Succeeded);
    assert_eq!(handler.delivery_id, delivery);
    assert_eq!(
        handler
            .failure
            .as_ref()
            .map(|f| (f.step.as_str(), f.attempts, f.count)),
        Some(("build", 2, 1))
    );
    // The alert's request is recorded like any step's.
    let attempts = store.attempts_for_run(&handler.id).await.expect("attempts");
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].status_code, Some(200));

    // An alert that fails is recorded as failed, and alerts nobody.
    send(&server, "broken", "{}").await;
    let broken = runs_of(
        &store,
        &server,
        "broken-alert",
        RunKind::OnFailure,
        all_finished,
    )
    .await;
    assert_eq!(broken.len(), 1);
    assert_eq!(broken[0].status, RunStatus::Failed);
    assert!(
        broken[0].error.as_deref().unwrap_or("").contains("500"),
        "{broken:#?}"
    );
    // Read once it failed: had its failure queued another `on_failure`
    // run, that would have been in the same commit, and listed here.
    assert_eq!(sink.seen("/broken-alert").len(), 1);

    // Executions by outcome; the rule runs stay in hookflow_runs_total.
    let metrics = reqwest::get(server.admin_url("/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    for line in [
        r#"hookflow_on_failure_total{rule="deploy",outcome="succeeded"} 1"#,
        r#"hookflow_on_failure_total{rule="broken-alert",outcome="failed"} 1"#,
        r#"hookflow_runs_total{rule="deploy",outcome="failed"} 1"#,
    ] {
        assert!(metrics.contains(line), "{line} in:\n{metrics}");
    }
    assert!(!metrics.contains(r#"hookflow_runs_total{rule="broken-alert",outcome="failed"} 2"#));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_failure_every_sends_one_alert_per_window_with_the_count() {
    let sink = Sink::start().await;
    let dir = rules(&sink);
    let server = server(dir.path(), &[]);
    server.wait_ready(&reqwest::Client::new()).await;
    let store = store_of(dir.path()).await;

    const FAILURES: u64 = 6;
    for _ in 0..FAILURES {
        send(&server, "grouped", "{}").await;
    }
    let counted = |seen: &[Seen]| -> u64 {
        seen.iter()
            .filter(|s| s.path == "/grouped")
            .filter_map(|s| s.json()["count"].as_u64())
            .sum()
    };
    // Every failure is counted in some alert; windows are 3 s, so within
    // the ~1 s these take there are at most two: the first at once, the
    // rest together when its window ends.
    let seen = sink
        .wait_until("every failure counted in an alert", WITHIN, |all| {
            counted(all) == FAILURES
        })
        .await;
    let alerts: Vec<&Seen> = seen.iter().filter(|s| s.path == "/grouped").collect();
    assert!(
        (1..=2).contains(&alerts.len()),
        "{} alerts for {FAILURES} failures",
        alerts.len()
    );
    if let [first, second] = alerts.as_slice() {
        // Arrival times: the sink lists a request as it arrives, so the
        // second may not be answered yet when the counts add up.
        let apart = second.arrived.duration_since(first.arrived);
        assert!(apart >= Duration::from_millis(2_500), "{apart:?} apart");
    }
    let handlers = runs_of(&store, &server, "grouped", RunKind::OnFailure, all_finished).await;
    assert_eq!(handlers.len(), alerts.len(), "{handlers:#?}");
    let rule_runs = runs_of(&store, &server, "grouped", RunKind::Rule, all_finished).await;
    assert_eq!(rule_runs.len() as u64, FAILURES);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_worker_fails_the_run_and_alerts() {
    let sink = Sink::start().await;
    let dir = rules(&sink);
    let server = server(dir.path(), &[("HOOKFLOW_FAULTS", "panic:always=always")]);
    server.wait_ready(&reqwest::Client::new()).await;
    let store = store_of(dir.path()).await;

    send(&server, "lost", "{}").await;
    let seen = sink.wait_for("/lost", 1, WITHIN).await;
    let failed = runs_of(&store, &server, "lost", RunKind::Rule, all_finished).await;
    assert_eq!(failed[0].status, RunStatus::Failed);
    assert!(
        failed[0]
            .error
            .as_deref()
            .unwrap_or("")
            .starts_with("worker lost")
    );
    let body = seen[0].json();
    assert_eq!(body["step"], "always");
    assert!(
        body["error"]
            .as_str()
            .unwrap_or("")
            .starts_with("worker lost"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_survives_kill_9() {
    let sink = Sink::start().await;
    sink.answer("/ci", Reply::status(500));
    // The first alert hangs: the server is killed while sending it.
    sink.script("/alert", [Reply::hang(), Reply::status(200)]);
    let dir = rules(&sink);
    let mut first = server(dir.path(), &[]);
    first.wait_ready(&reqwest::Client::new()).await;
    send(&first, "deploy", r#"{"ref":"refs/heads/main"}"#).await;
    sink.wait_for("/alert", 1, WITHIN).await;
    first.kill();

    let second = server(dir.path(), &[]);
    second.wait_ready(&reqwest::Client::new()).await;
    let store = store_of(dir.path()).await;
    let seen = sink.wait_for("/alert", 2, WITHIN).await;
    assert_eq!(seen[0].json()["text"], seen[1].json()["text"]);
    let handlers = runs_of(&store, &second, "deploy", RunKind::OnFailure, all_finished).await;
    assert_eq!(handlers.len(), 1, "{handlers:#?}");
    assert_eq!(handlers[0].status, RunStatus::Succeeded);
    assert_eq!(sink.seen("/ci").len(), 2, "the failed run is not run again");
}
