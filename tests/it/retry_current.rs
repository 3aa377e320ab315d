//! `retry` resumes with the definition a run was queued with; `retry
//! --current` (and the API's `current`) with the rule as loaded now (SPEC
//! §5), through a real `hookflow serve` child, the CLI on its SQLite file
//! and a sink whose one path fails. And the reloads nobody typed into the
//! API — SIGHUP and the rules watcher — are in the audit trail.

use std::sync::Arc;
use std::time::Duration;

use hookflow::store::{ActionKind, RunRecord, RunStatus, Store, Via};

use crate::common::app::{Server, rules_dir, serve};
use crate::common::cli::hookflow;
use crate::common::sink::{Reply, Sink};
use crate::common::wait;

const WITHIN: Duration = Duration::from_secs(30);

/// Rule `a` posts to `SINK/a-PATH`, rule `b` to `SINK/b`; two attempts each.
fn rules(sink: &str, a_path: &str, with_b: bool) -> String {
    let mut yaml = format!(
        r#"
sources:
  s:
    verify: {{ token: {{ header: X-Token, value: current-token }} }}
rules:
  - name: a
    source: s
    actions:
      - http: {{ url: "{sink}/a-{a_path}", retry: {{ attempts: 2, backoff: 10ms }} }}
"#
    );
    if with_b {
        yaml.push_str(&format!(
            r#"  - name: b
    source: s
    actions:
      - http: {{ url: "{sink}/b", retry: {{ attempts: 2, backoff: 10ms }} }}
"#
        ));
    }
    yaml
}

async fn store_of(dir: &std::path::Path) -> Arc<dyn Store> {
    let url = format!("sqlite://{}", dir.join("hookflow.db").display());
    hookflow::store::open(&url).await.expect("open the run log")
}

/// Waits until `run_id` is finished with `attempts` attempts recorded.
async fn finished(
    store: &Arc<dyn Store>,
    server: &Server,
    run_id: &str,
    attempts: usize,
) -> RunRecord {
    let what = format!("run {run_id} finished after {attempts} attempts");
    wait::for_ok(&what, WITHIN, || async {
        let run = store.get_run(run_id).await.map_err(|e| e.to_string())?;
        let seen = store
            .attempts_for_run(run_id)
            .await
            .map_err(|e| e.to_string())?;
        match run {
            Some(run) if run.status.is_finished() && seen.len() == attempts => Ok(run),
            other => Err(format!("{other:#?}\n{seen:#?}\n{}", server.log_tail())),
        }
    })
    .await
}

async fn numbers(store: &Arc<dyn Store>, run_id: &str) -> Vec<u32> {
    let attempts = store.attempts_for_run(run_id).await.expect("attempts");
    attempts.iter().map(|a| a.attempt).collect()
}

/// The reloads in the audit trail started through `via`.
async fn reloads(store: &Arc<dyn Store>, via: Via) -> Vec<hookflow::store::OperatorAction> {
    let trail = store.operator_actions(None, 100).await.expect("trail");
    trail
        .into_iter()
        .filter(|a| a.action == ActionKind::Reload && a.via == via)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_current_resumes_with_the_fixed_rule_and_numbers_on() {
    let sink = Sink::start().await;
    sink.answer("/a-broken", Reply::body(500, "no"));
    sink.answer("/a-fixed", Reply::body(200, "ok"));
    sink.answer("/b", Reply::body(500, "no"));
    let dir = rules_dir(&rules(&sink.url, "broken", true));
    let server = Server::start(serve(dir.path(), &[], &[]));
    let client = reqwest::Client::new();
    server.wait_ready(&client).await;
    let store = store_of(dir.path()).await;
    let db = format!("sqlite://{}", dir.path().join("hookflow.db").display());
    let rules_path = dir.path().join("rules").display().to_string();

    let resp = client
        .post(server.url("/hooks/s"))
        .header("content-type", "application/json")
        .header("X-Token", "current-token")
        .body("{}")
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status().as_u16(), 202);
    let delivery: serde_json::Value = resp.json().await.expect("json");
    let delivery = delivery["delivery"].as_str().expect("id").to_owned();
    let runs = store.runs_for_delivery(&delivery).await.expect("runs");
    let id_of = |rule: &str| {
        runs.iter()
            .find(|r| r.rule == rule)
            .map(|r| r.id.clone())
            .expect("a run per rule")
    };
    let (a, b) = (id_of("a"), id_of("b"));
    assert_eq!(
        finished(&store, &server, &a, 2).await.status,
        RunStatus::Failed
    );
    assert_eq!(
        finished(&store, &server, &b, 2).await.status,
        RunStatus::Failed
    );

    // The rule file fixed: `a` posts to a path that answers 200, `b` is
    // gone. The watcher reloads it, and the trail says so.
    std::fs::write(
        dir.path().join("rules/rules.yaml"),
        rules(&sink.url, "fixed", false),
    )
    .expect("write the fixed rules");
    wait::until("the watcher's reload in the trail", WITHIN, || async {
        reloads(&store, Via::Watcher)
            .await
            .iter()
            .any(|r| r.detail["ok"] == true && r.detail["rules"] == 1)
    })
    .await;
    let watched = reloads(&store, Via::Watcher).await;
    assert!(
        watched.iter().all(|r| r.client.ends_with("rules")),
        "the watched directory: {watched:#?}"
    );

    // Plain `retry`: the definition it was queued with, the broken URL
    // again; attempts 3 and 4 (a fresh budget of two).
    hookflow(["retry", "--db", &db, &a])
        .run_async()
        .await
        .success();
    let again = finished(&store, &server, &a, 4).await;
    assert_eq!(again.status, RunStatus::Failed, "{again:#?}");
    assert_eq!(numbers(&store, &a).await, [1, 2, 3, 4]);
    assert_eq!(sink.seen("/a-broken").len(), 4);
    assert!(sink.seen("/a-fixed").is_empty());

    // `--current` with a dry run: `a` would go, `b` (rule gone) is named.
    let dry = hookflow([
        "retry",
        "--db",
        &db,
        "--rules",
        &rules_path,
        "--status",
        "failed",
        "--current",
        "--dry-run",
    ])
    .run_async()
    .await;
    dry.success();
    assert!(
        dry.stdout
            .contains("would re-queue 1 failed run(s) with the current rules"),
        "{}",
        dry.all()
    );
    assert!(dry.stdout.contains(&a), "{}", dry.all());
    assert!(
        dry.stdout.contains("would skip 1 failed run(s)"),
        "{}",
        dry.all()
    );
    assert!(
        dry.stdout
            .contains(&format!("{b}  rule `b` is no longer loaded")),
        "{}",
        dry.all()
    );
    assert_eq!(
        store.get_run(&a).await.expect("get").expect("run").status,
        RunStatus::Failed
    );

    // One id whose rule is gone: a clear error, exit 1, nothing queued.
    let gone = hookflow([
        "retry",
        "--db",
        &db,
        "--rules",
        &rules_path,
        "--current",
        &b,
    ])
    .run_async()
    .await;
    gone.code(1);
    assert!(
        gone.stderr.contains(&format!(
            "run {b} cannot be retried with the current rules: rule `b` is no longer loaded"
        )),
        "{}",
        gone.all()
    );
    // A filter that finds only such runs: reported, exit 1.
    let only_gone = hookflow([
        "retry",
        "--db",
        &db,
        "--rules",
        &rules_path,
        "--rule",
        "b",
        "--current",
    ])
    .run_async()
    .await;
    only_gone.code(1);
    assert!(
        only_gone.stdout.contains("re-queued 0 failed run(s)"),
        "{}",
        only_gone.all()
    );
    assert!(
        only_gone.stdout.contains("skipped 1 failed run(s)"),
        "{}",
        only_gone.all()
    );

    // `--current` by filter: `a` resumes with the fixed URL and succeeds,
    // attempt 5; `b` is skipped and stays failed.
    let done = hookflow([
        "retry",
        "--db",
        &db,
        "--rules",
        &rules_path,
        "--status",
        "failed",
        "--current",
        "--json",
    ])
    .run_async()
    .await;
    done.success();
    let done: serde_json::Value = serde_json::from_str(&done.stdout).expect("json");
    assert_eq!(done["runs"], serde_json::json!([a]), "{done}");
    assert_eq!(done["skipped"][0]["run"], b.as_str(), "{done}");
    let fixed = finished(&store, &server, &a, 5).await;
    assert_eq!(fixed.status, RunStatus::Succeeded, "{fixed:#?}");
    assert_eq!(numbers(&store, &a).await, [1, 2, 3, 4, 5]);
    assert_eq!(sink.seen("/a-fixed").len(), 1);
    assert_eq!(sink.seen("/a-broken").len(), 4);
    assert_eq!(fixed.attempt_base, 4, "a fresh budget from attempt 4");
    let b_now = store.get_run(&b).await.expect("get").expect("run");
    assert_eq!(b_now.status, RunStatus::Failed);
    assert_eq!(numbers(&store, &b).await, [1, 2]);

    // The trail: a plain retry, then one with the current rules, by the CLI.
    let trail = store.operator_actions(Some(&a), 10).await.expect("trail");
    let retries: Vec<_> = trail
        .iter()
        .filter(|t| t.action == ActionKind::Retry)
        .collect();
    assert_eq!(retries.len(), 2, "{trail:#?}");
    assert!(retries.iter().all(|t| t.via == Via::Cli));
    assert_eq!(retries[0].detail.get("current"), None);
    assert_eq!(retries[1].detail["current"], true);
    assert_eq!(retries[1].detail["bulk"], true);
    assert!(
        store
            .operator_actions(Some(&b), 10)
            .await
            .expect("trail")
            .is_empty(),
        "a skipped run was not touched"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_retries_with_the_current_rule_and_sighup_reloads_are_audited() {
    let sink = Sink::start().await;
    sink.answer("/a-broken", Reply::body(500, "no"));
    sink.answer("/a-fixed", Reply::body(200, "ok"));
    sink.answer("/b", Reply::body(500, "no"));
    let dir = rules_dir(&rules(&sink.url, "broken", true));
    // `--poll` off and no writes until the fix: the watcher stays quiet
    // until then, SIGHUP is what reloads below.
    let server = Server::start(serve(dir.path(), &[], &[]));
    let client = reqwest::Client::new();
    server.wait_ready(&client).await;
    let store = store_of(dir.path()).await;

    // SIGHUP reloads (the same rules) and is recorded as the signal's.
    server.sighup();
    wait::until("the SIGHUP reload in the trail", WITHIN, || async {
        !reloads(&store, Via::Signal).await.is_empty()
    })
    .await;
    let hup = reloads(&store, Via::Signal).await;
    assert_eq!(hup.len(), 1, "{hup:#?}");
    assert_eq!(hup[0].client, "SIGHUP");
    assert_eq!(hup[0].detail["ok"], true);
    assert_eq!(hup[0].detail["rules"], 2);
    assert_eq!(hup[0].target, None);

    let resp = client
        .post(server.url("/hooks/s"))
        .header("content-type", "application/json")
        .header("X-Token", "current-token")
        .body("{}")
        .send()
        .await
        .expect("send");
    let delivery: serde_json::Value = resp.json().await.expect("json");
    let delivery = delivery["delivery"].as_str().expect("id").to_owned();
    let runs = store.runs_for_delivery(&delivery).await.expect("runs");
    let id_of = |rule: &str| {
        runs.iter()
            .find(|r| r.rule == rule)
            .map(|r| r.id.clone())
            .expect("a run per rule")
    };
    let (a, b) = (id_of("a"), id_of("b"));
    finished(&store, &server, &a, 2).await;
    finished(&store, &server, &b, 2).await;

    std::fs::write(
        dir.path().join("rules/rules.yaml"),
        rules(&sink.url, "fixed", false),
    )
    .expect("write the fixed rules");
    // The server's running set is what the API retries with: reload it
    // by SIGHUP (the watcher may get there too; either is fine).
    server.sighup();
    wait::until("a reload that took the fixed rules", WITHIN, || async {
        let trail = store.operator_actions(None, 100).await.unwrap_or_default();
        trail
            .iter()
            .any(|t| t.action == ActionKind::Reload && t.detail["rules"] == 1)
    })
    .await;
    wait::until("the SIGHUP reload of the fixed rules", WITHIN, || async {
        reloads(&store, Via::Signal).await.len() == 2
    })
    .await;

    let retry = |id: &str, query: &str| {
        client
            .post(server.admin_url(&format!("/api/runs/{id}/retry{query}")))
            .send()
    };
    // `b`'s rule is gone: 409 with the reason; a bad flag: 400.
    let gone = retry(&b, "?current=true").await.expect("post");
    assert_eq!(gone.status().as_u16(), 409);
    let body: serde_json::Value = gone.json().await.expect("json");
    let error = body["error"].as_str().unwrap_or_default();
    assert!(error.contains("rule `b` is no longer loaded"), "{body}");
    assert_eq!(
        retry(&a, "?current=yes")
            .await
            .expect("post")
            .status()
            .as_u16(),
        400
    );

    // By filter, dry (the default): `a` would go, `b` is skipped.
    let dry: serde_json::Value = client
        .post(server.admin_url("/api/runs/retry"))
        .json(&serde_json::json!({ "current": true }))
        .send()
        .await
        .expect("post")
        .json()
        .await
        .expect("json");
    assert_eq!(dry["dry_run"], true, "{dry}");
    assert_eq!(dry["runs"], serde_json::json!([a]), "{dry}");
    assert_eq!(dry["skipped"][0]["run"], b.as_str(), "{dry}");
    assert_eq!(dry["skipped"][0]["rule"], "b", "{dry}");

    // One id, current: resumes with the fixed URL, attempt 3, succeeds.
    let ok = retry(&a, "?current=true").await.expect("post");
    assert_eq!(ok.status().as_u16(), 200);
    let fixed = finished(&store, &server, &a, 3).await;
    assert_eq!(fixed.status, RunStatus::Succeeded, "{fixed:#?}");
    assert_eq!(numbers(&store, &a).await, [1, 2, 3]);
    assert_eq!(sink.seen("/a-fixed").len(), 1);
    let trail = store.operator_actions(Some(&a), 10).await.expect("trail");
    assert_eq!(trail.len(), 1, "{trail:#?}");
    assert_eq!(trail[0].via, Via::Api);
    assert_eq!(trail[0].detail["current"], true);
}
