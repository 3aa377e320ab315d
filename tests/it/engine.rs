//! The engine end to end, with real parts only: rules loaded from a temp
//! directory, a real SQLite file, deliveries accepted the way the server
//! accepts them, and a real HTTP sink on 127.0.0.1:0 that records every
//! request with timestamps and answers scripted replies.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use hookflow::delivery::Delivery;
use hookflow::engine::{Engine, EngineConfig};
use hookflow::rules::{RuleSet, SharedRules};
use hookflow::shutdown::{self, Trigger};
use hookflow::store::{
    AttemptOutcome, AttemptRecord, NewDelivery, NewRun, RunRecord, RunStatus, Store,
};
use serde_json::json;
use tempfile::TempDir;

use crate::common::sink::{Reply, Sink};
use crate::common::wait;

/// The value of `${SECRET}` in the rules.
const SECRET: &str = "s3cr3t-T0KEN-4711";

const GITHUB_PUSH: &str = include_str!("../fixtures/signatures/payloads/github-push.json");

// ------------------------------------------------------------- the harness

struct Harness {
    dir: TempDir,
    store: Arc<dyn Store>,
    rules: SharedRules,
    sink: Sink,
}

const SOURCES: &str = r#"
sources:
  github:
    verify: { github: { secret: "not-checked-here" } }
  plain:
    verify: { token: { header: X-Token, value: "not-checked-here" } }
"#;

/// Rules from `yaml` (after the common sources), with `SINK` replaced by
/// the sink's URL and `${SECRET}` by [`SECRET`].
async fn harness(yaml: &str) -> Harness {
    let sink = Sink::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let rules_dir = dir.path().join("rules");
    std::fs::create_dir_all(&rules_dir).unwrap();
    let text = format!("{SOURCES}\n{}", yaml.replace("SINK", &sink.url));
    std::fs::write(rules_dir.join("rules.yaml"), text).unwrap();
    let env = |name: &str| (name == "SECRET").then(|| SECRET.to_owned());
    let set = match hookflow::rules::load_with_env(&rules_dir, &env) {
        Ok(set) => set,
        Err(e) => panic!("test rules do not load: {:#?}", e.diagnostics),
    };
    let store = hookflow::store::open(&format!("sqlite://{}", db_path(&dir).display()))
        .await
        .expect("open store");
    Harness {
        dir,
        store,
        rules: Arc::new(ArcSwap::from_pointee(set)),
        sink,
    }
}

fn db_path(dir: &TempDir) -> std::path::PathBuf {
    dir.path().join("hookflow.db")
}

fn new_id() -> String {
    static IDS: Mutex<ulid::Generator> = Mutex::new(ulid::Generator::new());
    IDS.lock().unwrap().generate().unwrap().to_string()
}

impl Harness {
    /// Starts an engine; triggering the returned trigger stops it.
    fn engine(
        &self,
        workers: usize,
        grace: Duration,
    ) -> (Engine, tokio::task::JoinHandle<()>, Trigger) {
        let (trigger, shutdown) = shutdown::channel();
        let config = EngineConfig {
            workers,
            shutdown_grace: grace,
            node_id: format!("test-{}", new_id()),
        };
        let (engine, handle) =
            Engine::start(self.store.clone(), self.rules.clone(), config, shutdown);
        (engine, handle, trigger)
    }

    /// Accepts a delivery as the server does: one queued run per matching
    /// rule, committed with it. Returns the run ids.
    async fn deliver(&self, source: &str, headers: &[(&str, &str)], body: &str) -> Vec<String> {
        let set: Arc<RuleSet> = self.rules.load_full();
        let src = set.source(source).expect("source");
        let headers: Vec<(String, String)> = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .chain([("content-type".to_owned(), "application/json".to_owned())])
            .collect();
        let mut delivery =
            Delivery::local(src, headers, Vec::new(), body.as_bytes().to_vec(), None).unwrap();
        delivery.id = new_id();
        let trace = set.evaluate(source, &delivery.match_input());
        let matched: Vec<String> = trace.matched().map(str::to_owned).collect();
        let runs: Vec<NewRun> = matched
            .iter()
            .map(|name| {
                let rule = set.rule(name).unwrap();
                NewRun {
                    id: new_id(),
                    delivery_id: delivery.id.clone(),
                    rule: rule.name.clone(),
                    created_at: delivery.received_at.timestamp_millis(),
                    definition: rule.run_definition.clone(),
                    concurrency: rule.concurrency,
                    concurrency_key: None,
                }
            })
            .collect();
        let ids = runs.iter().map(|r| r.id.clone()).collect();
        let record = NewDelivery {
            id: delivery.id.clone(),
            source: source.to_owned(),
            received_at: delivery.received_at.timestamp_millis(),
            method: "POST".into(),
            path: src.path.clone(),
            query: None,
            headers: delivery.headers.clone(),
            remote_addr: "127.0.0.1".into(),
            event: delivery.event.clone(),
            dedupe_key: None,
            body: delivery.raw.to_vec(),
            matched,
            trace: serde_json::value::to_raw_value(&trace).unwrap(),
        };
        self.store
            .accept(record, runs, 0)
            .await
            .expect("accept delivery");
        ids
    }

    async fn run(&self, id: &str) -> RunRecord {
        self.store.get_run(id).await.unwrap().expect("run exists")
    }

    /// Waits (bounded) until every run has finished.
    async fn wait_finished(&self, ids: &[String], timeout: Duration) -> Vec<RunRecord> {
        wait::for_ok("the runs to finish", timeout, || async {
            let mut runs = Vec::new();
            for id in ids {
                runs.push(self.run(id).await);
            }
            if runs.iter().all(|r| r.status.is_finished()) {
                return Ok(runs);
            }
            Err(format!(
                "{:#?}",
                runs.iter()
                    .map(|r| (&r.rule, r.status, r.next_step, r.attempt, &r.error))
                    .collect::<Vec<_>>()
            ))
        })
        .await
    }

    async fn attempts(&self, run: &str) -> Vec<AttemptRecord> {
        self.store.attempts_for_run(run).await.unwrap()
    }
}

const SECOND: Duration = Duration::from_secs(1);

fn outcomes(attempts: &[AttemptRecord]) -> Vec<(u32, u32, AttemptOutcome)> {
    attempts
        .iter()
        .map(|a| (a.step_index, a.attempt, a.outcome))
        .collect()
}

// ------------------------------------------------------------------ tests

#[tokio::test]
async fn a_github_push_runs_http_then_slack_with_the_first_reply_in_the_second() {
    let h = harness(
        r#"
rules:
  - name: deploy
    source: github
    event: push
    when: { path: $.ref, equals: refs/heads/master }
    actions:
      - id: build
        http:
          url: SINK/build
          json: { ref: "{{payload.ref}}", sha: "{{payload.after}}" }
      - slack:
          webhook_url: SINK/slack
          text: "Build {{steps.build.json.id}} started for {{payload.repository.full_name}}@{{truncate payload.after 7}}"
"#,
    )
    .await;
    h.sink.script("/build", [Reply::body(201, r#"{"id": 42}"#)]);
    h.sink.script("/slack", [Reply::body(200, "ok")]);
    let (_engine, _handle, _stop) = h.engine(4, SECOND);
    let ids = h
        .deliver("github", &[("X-GitHub-Event", "push")], GITHUB_PUSH)
        .await;
    assert_eq!(ids.len(), 1);
    let runs = h.wait_finished(&ids, 10 * SECOND).await;
    assert_eq!(runs[0].status, RunStatus::Succeeded, "{:?}", runs[0].error);

    let build = h.sink.seen("/build");
    assert_eq!(build.len(), 1);
    assert_eq!(
        build[0].json(),
        json!({"ref": "refs/heads/master", "sha": "6113728f27ae82c7b1a177c8d03f9e96e0adf246"})
    );
    assert_eq!(build[0].header("content-type"), "application/json");
    let slack = h.sink.seen("/slack");
    assert_eq!(slack.len(), 1);
    assert_eq!(
        slack[0].json(),
        json!({"text": "Build 42 started for Codertocat/Hello-World@6113728"})
    );
    // Both carry the run's idempotency keys and hookflow's User-Agent.
    let run = &ids[0];
    assert_eq!(build[0].header("idempotency-key"), format!("{run}.0"));
    assert_eq!(slack[0].header("idempotency-key"), format!("{run}.1"));
    let agent = concat!("hookflow/", env!("CARGO_PKG_VERSION"));
    assert_eq!(build[0].header("user-agent"), agent);
    assert_eq!(slack[0].header("user-agent"), agent);

    let attempts = h.attempts(run).await;
    assert_eq!(
        outcomes(&attempts),
        [
            (0, 1, AttemptOutcome::Succeeded),
            (1, 1, AttemptOutcome::Succeeded)
        ]
    );
    assert_eq!(attempts[0].step_id, "build");
    assert_eq!(attempts[0].status_code, Some(201));
    assert_eq!(attempts[0].response.as_deref(), Some(r#"{"id": 42}"#));
    assert_eq!(attempts[0].request["method"], "POST");
    assert_eq!(attempts[0].request["url"], format!("{}/build", h.sink.url));
    // The outputs are persisted for a resumed run.
    assert_eq!(runs[0].outputs["build"]["json"], json!({"id": 42}));
    assert_eq!(runs[0].outputs["build"]["status"], 201);
}

#[tokio::test]
async fn a_503_is_retried_with_the_same_idempotency_key_until_it_succeeds() {
    let h = harness(
        r#"
rules:
  - name: flaky
    source: plain
    actions:
      - id: call
        http: { url: SINK/flaky, retry: { backoff: 50ms } }
"#,
    )
    .await;
    h.sink.script(
        "/flaky",
        [
            Reply::body(503, "busy"),
            Reply::body(503, "busy"),
            Reply::body(200, "{}"),
        ],
    );
    let (_engine, _handle, _stop) = h.engine(4, SECOND);
    let ids = h.deliver("plain", &[], "{}").await;
    let runs = h.wait_finished(&ids, 10 * SECOND).await;
    assert_eq!(runs[0].status, RunStatus::Succeeded, "{:?}", runs[0].error);

    let seen = h.sink.seen("/flaky");
    assert_eq!(seen.len(), 3);
    let key = format!("{}.0", ids[0]);
    assert!(seen.iter().all(|s| s.header("idempotency-key") == key));
    let attempts = h.attempts(&ids[0]).await;
    assert_eq!(
        outcomes(&attempts),
        [
            (0, 1, AttemptOutcome::Retrying),
            (0, 2, AttemptOutcome::Retrying),
            (0, 3, AttemptOutcome::Succeeded)
        ]
    );
    assert_eq!(attempts[0].status_code, Some(503));
    assert_eq!(attempts[0].response.as_deref(), Some("busy"));
    assert!(attempts[0].error.as_deref().unwrap().contains("HTTP 503"));
}

#[tokio::test]
async fn a_429_waits_for_its_retry_after() {
    let h = harness(
        r#"
rules:
  - name: limited
    source: plain
    actions:
      - http: { url: SINK/limited, retry: { backoff: 50ms } }
"#,
    )
    .await;
    let limited = Reply::body(429, "slow down").header("retry-after", "2");
    h.sink.script("/limited", [limited, Reply::status(200)]);
    let (_engine, _handle, _stop) = h.engine(4, SECOND);
    let ids = h.deliver("plain", &[], "{}").await;
    let runs = h.wait_finished(&ids, 10 * SECOND).await;
    assert_eq!(runs[0].status, RunStatus::Succeeded, "{:?}", runs[0].error);
    let seen = h.sink.seen("/limited");
    assert_eq!(seen.len(), 2);
    let gap = seen[1].arrived - seen[0].finished();
    assert!(gap >= 2 * SECOND, "retried after {gap:?}");
}

#[tokio::test]
async fn a_400_is_final_one_attempt_and_the_run_fails() {
    let h = harness(
        r#"
rules:
  - name: rejected
    source: plain
    actions:
      - id: call
        http: { url: SINK/bad, retry: { backoff: 10ms } }
      - http: { url: SINK/never }
"#,
    )
    .await;
    h.sink
        .script("/bad", [Reply::body(400, r#"{"error":"bad input"}"#)]);
    let (_engine, _handle, _stop) = h.engine(4, SECOND);
    let ids = h.deliver("plain", &[], "{}").await;
    let runs = h.wait_finished(&ids, 10 * SECOND).await;
    assert_eq!(runs[0].status, RunStatus::Failed);
    let error = runs[0].error.as_deref().unwrap();
    assert!(
        error.contains("call") && error.contains("HTTP 400"),
        "{error}"
    );
    assert_eq!(h.sink.seen("/bad").len(), 1);
    assert!(h.sink.seen("/never").is_empty());
    let attempts = h.attempts(&ids[0]).await;
    assert_eq!(outcomes(&attempts), [(0, 1, AttemptOutcome::Failed)]);
    assert_eq!(
        attempts[0].response.as_deref(),
        Some(r#"{"error":"bad input"}"#)
    );
}

#[tokio::test]
async fn slack_ok_false_is_a_final_failure_carrying_slacks_error() {
    let h = harness(
        r##"
rules:
  - name: notify
    source: plain
    actions:
      - slack:
          token: xoxb-not-a-real-token
          channel: "#deploys"
          api_url: SINK/api
          text: "hello {{payload.who}}"
"##,
    )
    .await;
    h.sink.script(
        "/api/chat.postMessage",
        [Reply::body(
            200,
            r#"{"ok":false,"error":"channel_not_found"}"#,
        )],
    );
    let (_engine, _handle, _stop) = h.engine(4, SECOND);
    let ids = h.deliver("plain", &[], r#"{"who":"team"}"#).await;
    let runs = h.wait_finished(&ids, 10 * SECOND).await;
    assert_eq!(runs[0].status, RunStatus::Failed);

    let seen = h.sink.seen("/api/chat.postMessage");
    assert_eq!(seen.len(), 1, "ok:false is not retried");
    assert_eq!(
        seen[0].header("authorization"),
        "Bearer xoxb-not-a-real-token"
    );
    assert_eq!(
        seen[0].json(),
        json!({"channel": "#deploys", "text": "hello team"})
    );
    assert_eq!(seen[0].header("idempotency-key"), format!("{}.0", ids[0]));
    let attempts = h.attempts(&ids[0]).await;
    assert_eq!(outcomes(&attempts), [(0, 1, AttemptOutcome::Failed)]);
    let error = attempts[0].error.as_deref().unwrap();
    assert!(error.contains("channel_not_found"), "{error}");
    assert!(
        runs[0]
            .error
            .as_deref()
            .unwrap()
            .contains("channel_not_found")
    );
    // The token is never stored.
    assert!(!attempts[0].request.to_string().contains("xoxb"));
}

#[tokio::test]
async fn continue_on_error_goes_on_and_if_skips_steps() {
    let h = harness(
        r#"
rules:
  - name: pipeline
    source: plain
    actions:
      - id: build
        http: { url: SINK/build, retry: { attempts: 1 } }
        continue_on_error: true
      - id: on-created
        if: { path: $.steps.build.status, equals: 201 }
        http: { url: SINK/created }
      - id: on-failure
        if: { path: $.steps.build.status, equals: 500 }
        http:
          url: SINK/failed
          json: { saw: "{{steps.build.status}}", body: "{{steps.build.body}}" }
"#,
    )
    .await;
    h.sink.script("/build", [Reply::body(500, "broken")]);
    let (_engine, _handle, _stop) = h.engine(4, SECOND);
    let ids = h.deliver("plain", &[], "{}").await;
    let runs = h.wait_finished(&ids, 10 * SECOND).await;
    assert_eq!(runs[0].status, RunStatus::Succeeded, "{:?}", runs[0].error);
    assert!(h.sink.seen("/created").is_empty());
    let failed = h.sink.seen("/failed");
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].json(), json!({"saw": 500, "body": "broken"}));
    let attempts = h.attempts(&ids[0]).await;
    assert_eq!(
        outcomes(&attempts),
        [
            (0, 1, AttemptOutcome::Failed),
            (1, 0, AttemptOutcome::Skipped),
            (2, 1, AttemptOutcome::Succeeded)
        ]
    );
    assert_eq!(attempts[1].step_id, "on-created");
}

#[tokio::test]
async fn concurrency_one_never_overlaps_runs_of_the_rule() {
    let h = harness(
        r#"
rules:
  - name: serial
    source: plain
    concurrency: 1
    actions:
      - http: { url: SINK/slow, json: { n: "{{payload.n}}" } }
"#,
    )
    .await;
    h.sink.script(
        "/slow",
        [Reply::status(200).delay(Duration::from_millis(200))],
    );
    let mut ids = Vec::new();
    for n in 0..5 {
        ids.extend(h.deliver("plain", &[], &format!(r#"{{"n":{n}}}"#)).await);
    }
    let (_engine, _handle, _stop) = h.engine(16, SECOND);
    let runs = h.wait_finished(&ids, 20 * SECOND).await;
    assert!(runs.iter().all(|r| r.status == RunStatus::Succeeded));
    let mut seen = h.sink.seen("/slow");
    assert_eq!(seen.len(), 5);
    seen.sort_by_key(|s| s.arrived);
    for pair in seen.windows(2) {
        assert!(
            pair[1].arrived >= pair[0].finished(),
            "overlap: {:?} started before {:?} finished",
            pair[1].json(),
            pair[0].json()
        );
    }
    // Queued order is kept.
    let order: Vec<i64> = seen
        .iter()
        .map(|s| s.json()["n"].as_i64().unwrap())
        .collect();
    assert_eq!(order, [0, 1, 2, 3, 4]);
}

#[tokio::test]
async fn a_run_waiting_for_a_retry_holds_no_worker_but_keeps_its_concurrency_slot() {
    let h = harness(
        r#"
rules:
  - name: waits
    source: plain
    concurrency: 1
    actions:
      - http: { url: SINK/wait, json: { n: "{{payload.n}}" }, retry: { backoff: 1s, max_backoff: 1s } }
  - name: quick
    source: plain
    actions:
      - http: { url: SINK/quick }
"#,
    )
    .await;
    let busy = Reply::body(503, "busy").header("retry-after", "1");
    h.sink.script("/wait", [busy, Reply::status(200)]);
    // One worker: `quick` can only run while `waits` waits for its retry.
    let (_engine, _handle, _stop) = h.engine(1, SECOND);
    let first = h.deliver("plain", &[], r#"{"n":1}"#).await;
    let second = h.deliver("plain", &[], r#"{"n":2}"#).await;
    let all: Vec<String> = first.iter().chain(&second).cloned().collect();
    h.wait_finished(&all, 20 * SECOND).await;

    let wait = h.sink.seen("/wait");
    let quick = h.sink.seen("/quick");
    assert_eq!(wait.len(), 3, "two attempts of run 1, one of run 2");
    assert_eq!(quick.len(), 2);
    // Both `quick` runs went while run 1 of `waits` waited for its retry.
    assert!(quick.iter().all(|q| q.arrived < wait[1].arrived));
    // Run 2 of `waits` started only after run 1 finished.
    let ns: Vec<i64> = wait
        .iter()
        .map(|s| s.json()["n"].as_i64().unwrap())
        .collect();
    assert_eq!(ns, [1, 1, 2]);
}

#[tokio::test]
async fn secrets_are_stored_as_stars_never_as_their_value() {
    let h = harness(
        r#"
rules:
  - name: secretive
    source: plain
    actions:
      - id: call
        http:
          url: "SINK/hook?key=${SECRET}"
          query: { also: "${SECRET}" }
          headers: { X-Api-Token: "${SECRET}", Authorization: "Bearer ${SECRET}" }
          json: { token: "${SECRET}" }
      - id: unreachable
        http: { url: "http://127.0.0.1:9/down?key=${SECRET}", retry: { attempts: 1 } }
        continue_on_error: true
"#,
    )
    .await;
    // A receiver that echoes the secret back.
    h.sink.script(
        "/hook",
        [Reply::body(200, &format!(r#"{{"echo":"{SECRET}"}}"#))],
    );
    let (_engine, handle, stop) = h.engine(4, SECOND);
    let ids = h.deliver("plain", &[], "{}").await;
    let runs = h.wait_finished(&ids, 10 * SECOND).await;
    assert_eq!(runs[0].status, RunStatus::Succeeded, "{:?}", runs[0].error);

    // The receiver got the real values.
    let seen = h.sink.seen("/hook");
    assert_eq!(seen[0].header("x-api-token"), SECRET);
    assert_eq!(seen[0].json(), json!({"token": SECRET}));

    let attempts = h.attempts(&ids[0]).await;
    let stored = serde_json::to_string(&attempts).unwrap();
    assert!(!stored.contains(SECRET), "{stored}");
    let request = &attempts[0].request;
    assert_eq!(
        request["url"],
        format!("{}/hook?key=***&also=***", h.sink.url)
    );
    assert_eq!(request["headers"]["x-api-token"], "***");
    assert_eq!(request["headers"]["authorization"], "***");
    assert_eq!(attempts[0].response.as_deref(), Some(r#"{"echo":"***"}"#));
    let error = attempts[1].error.as_deref().unwrap();
    assert!(error.contains("127.0.0.1:9/down?key=***"), "{error}");
    let run = h.run(&ids[0]).await;
    assert!(!run.outputs.to_string().contains(SECRET));
    assert_eq!(run.outputs["call"]["json"]["echo"], "***");

    // Nowhere in the database files either.
    stop.trigger();
    handle.await.unwrap();
    for entry in std::fs::read_dir(h.dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            let bytes = std::fs::read(&path).unwrap();
            assert!(
                !bytes.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()),
                "{} holds the secret",
                path.display()
            );
        }
    }
}

#[tokio::test]
async fn a_run_stopped_mid_step_resumes_at_that_step_with_earlier_outputs() {
    let h = harness(
        r#"
rules:
  - name: two-steps
    source: plain
    actions:
      - id: one
        http: { url: SINK/one }
      - id: two
        http: { url: SINK/two, json: { n: "{{steps.one.json.n}}" } }
"#,
    )
    .await;
    h.sink.script("/one", [Reply::body(200, r#"{"n": 7}"#)]);
    // The first try of step two hangs: shutdown abandons it.
    h.sink.script("/two", [Reply::hang(), Reply::status(200)]);
    let ids = h.deliver("plain", &[], "{}").await;
    let (_engine, handle, stop) = h.engine(4, Duration::from_millis(200));
    // Step two is in flight once its request reached the sink.
    h.sink.wait_for("/two", 1, 10 * SECOND).await;
    stop.trigger();
    tokio::time::timeout(5 * SECOND, handle)
        .await
        .expect("shutdown within the grace period")
        .unwrap();

    let run = h.run(&ids[0]).await;
    assert_eq!(run.status, RunStatus::Running, "left in progress");
    assert_eq!(run.next_step, 1);
    assert_eq!(run.outputs["one"]["json"], json!({"n": 7}));
    // The interrupted attempt was not recorded as a failure.
    assert_eq!(
        outcomes(&h.attempts(&ids[0]).await),
        [(0, 1, AttemptOutcome::Succeeded)]
    );

    let (_engine, _handle, _stop) = h.engine(4, SECOND);
    let runs = h.wait_finished(&ids, 10 * SECOND).await;
    assert_eq!(runs[0].status, RunStatus::Succeeded, "{:?}", runs[0].error);
    assert_eq!(h.sink.seen("/one").len(), 1, "step one is not run again");
    let two = h.sink.seen("/two");
    assert_eq!(two.last().unwrap().json(), json!({"n": 7}));
    assert_eq!(
        outcomes(&h.attempts(&ids[0]).await),
        [
            (0, 1, AttemptOutcome::Succeeded),
            (1, 1, AttemptOutcome::Succeeded)
        ]
    );
}

#[tokio::test]
async fn a_run_left_running_by_a_crash_is_resumed_at_startup() {
    let h = harness(
        r#"
rules:
  - name: crashed
    source: plain
    actions:
      - http: { url: SINK/a }
      - http: { url: SINK/b }
"#,
    )
    .await;
    let ids = h.deliver("plain", &[], "{}").await;
    // A crashed node: the run leased (and so `running`), never released.
    let leased = h
        .store
        .lease_runs(hookflow::store::LeaseRequest {
            node: "dead-node".into(),
            now_ms: chrono::Utc::now().timestamp_millis(),
            limit: 10,
            lease_ms: 3_600_000,
        })
        .await
        .unwrap();
    assert_eq!(leased.runs.len(), 1);
    assert_eq!(h.run(&ids[0]).await.status, RunStatus::Running);

    let (_engine, _handle, _stop) = h.engine(4, SECOND);
    let runs = h.wait_finished(&ids, 10 * SECOND).await;
    assert_eq!(runs[0].status, RunStatus::Succeeded, "{:?}", runs[0].error);
    assert_eq!(h.sink.seen("/a").len(), 1);
    assert_eq!(h.sink.seen("/b").len(), 1);
}

#[tokio::test]
async fn a_changed_rule_runs_the_definition_its_run_was_queued_with() {
    let h = harness(
        r#"
rules:
  - name: edited
    source: plain
    actions:
      - http: { url: SINK/old }
"#,
    )
    .await;
    let ids = h.deliver("plain", &[], "{}").await;
    // The rules change before a worker takes the run.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("rules.yaml"),
        format!(
            "{SOURCES}\nrules:\n  - name: edited\n    source: plain\n    actions:\n      - http: {{ url: {}/new }}\n",
            h.sink.url
        ),
    )
    .unwrap();
    h.rules
        .store(Arc::new(hookflow::rules::load(dir.path()).unwrap()));
    let (_engine, _handle, _stop) = h.engine(4, SECOND);
    let runs = h.wait_finished(&ids, 10 * SECOND).await;
    assert_eq!(runs[0].status, RunStatus::Succeeded, "{:?}", runs[0].error);
    assert_eq!(h.sink.seen("/old").len(), 1);
    assert!(h.sink.seen("/new").is_empty());
}

/// `workers: 0` makes a node receive only (an ingest node in front of
/// worker nodes): its runs stay queued, nothing is called, and the next
/// engine with workers on the same database runs them.
#[tokio::test]
async fn an_engine_with_no_workers_leaves_runs_queued_for_one_that_has_them() {
    let h = harness(
        r#"
rules:
  - name: deploy
    source: github
    event: push
    actions:
      - http: { url: SINK/deploy }
"#,
    )
    .await;
    h.sink.script("/deploy", [Reply::body(200, "ok")]);
    let (receiver, _handle, _stop_receiver) = h.engine(0, SECOND);
    let ids = h
        .deliver("github", &[("X-GitHub-Event", "push")], GITHUB_PUSH)
        .await;
    receiver.notify();
    // Not synchronisation: a window in which a receive-only engine that
    // wrongly ran steps would call the sink (nothing to wait for).
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(h.run(&ids[0]).await.status, RunStatus::Queued);
    assert!(
        h.sink.seen("/deploy").is_empty(),
        "a receive-only node ran a step"
    );

    let (_worker, _handle, _stop_worker) = h.engine(2, SECOND);
    let runs = h.wait_finished(&ids, 10 * SECOND).await;
    assert_eq!(runs[0].status, RunStatus::Succeeded, "{:?}", runs[0].error);
    assert_eq!(h.sink.seen("/deploy").len(), 1);
}
