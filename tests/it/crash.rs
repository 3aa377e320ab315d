//! Durability of acceptance: a real `hookflow serve` child process takes a
//! stream of deliveries and is killed with SIGKILL mid-stream. Every
//! delivery that got a 2xx must be in the database with its queued run.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::app::{Server, rules_dir, serve};
use crate::common::sink::{Reply, Seen, Sink};
use crate::common::wait;

/// The `ingest` source and its one rule, `forward`, whose only step is
/// the `http:` mapping given (YAML flow style).
fn forward_rules(http: &str) -> String {
    format!(
        r#"
sources:
  ingest:
    verify: {{ token: {{ header: X-Token, value: crash-test-token }} }}
rules:
  - name: forward
    source: ingest
    actions:
      - http: {http}
"#
    )
}

const ARGS: [&str; 4] = ["--rules", "rules", "--db", "sqlite://hookflow.db"];

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_acknowledged_delivery_survives_sigkill() {
    let dir = rules_dir(&forward_rules(
        r#"{ url: "http://127.0.0.1:9/never-reached/{{payload.n}}" }"#,
    ));
    let mut child = Server::start(serve(dir.path(), &ARGS, &[]));
    let client = reqwest::Client::new();
    child.wait_ready(&client).await;
    let url = child.url("/hooks/ingest");

    let acknowledged: Arc<Mutex<Vec<String>>> = Arc::default();
    let stop_at = Instant::now() + Duration::from_secs(30);
    let mut senders = Vec::new();
    for sender in 0..8 {
        let client = client.clone();
        let acknowledged = acknowledged.clone();
        let url = url.clone();
        senders.push(tokio::spawn(async move {
            for n in 0..100_000 {
                if Instant::now() > stop_at {
                    break;
                }
                let body = format!(r#"{{"sender":{sender},"n":{n}}}"#);
                let resp = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .header("X-Token", "crash-test-token")
                    .body(body)
                    .send()
                    .await;
                let Ok(resp) = resp else { break }; // the server is gone
                if resp.status().as_u16() != 202 {
                    continue;
                }
                if let Ok(v) = resp.json::<serde_json::Value>().await
                    && let Some(id) = v["delivery"].as_str()
                {
                    acknowledged.lock().expect("lock").push(id.to_string());
                }
            }
        }));
    }
    // Kill it mid-stream, once a good number of deliveries went through.
    wait::until(
        "300 acknowledged deliveries",
        Duration::from_secs(30),
        || async { acknowledged.lock().expect("lock").len() >= 300 },
    )
    .await;
    child.kill();
    for s in senders {
        let _ = s.await;
    }
    let acknowledged = acknowledged.lock().expect("lock").clone();
    assert!(
        acknowledged.len() >= 300,
        "only {} deliveries acknowledged before the kill",
        acknowledged.len()
    );

    // Straight from the file the killed process left behind.
    let store = hookflow::store::open(&format!(
        "sqlite://{}",
        dir.path().join("hookflow.db").display()
    ))
    .await
    .expect("reopen the database after SIGKILL");
    let mut missing = Vec::new();
    for id in &acknowledged {
        let delivery = store.get_delivery(id).await.expect("read");
        let runs = store.runs_for_delivery(id).await.expect("runs");
        if delivery.is_none() || runs.len() != 1 {
            missing.push(id.clone());
        }
    }
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged deliveries lost: {:?}",
        missing.len(),
        acknowledged.len(),
        &missing[..missing.len().min(5)]
    );
    drop(store);

    // And the server starts again on the same file.
    let child = Server::start(serve(dir.path(), &ARGS, &[]));
    child.wait_ready(&client).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn runs_interrupted_by_sigkill_reach_the_sink_after_restart() {
    // A CI API that fails with 503 until the restart.
    let sink = Sink::start().await;
    sink.answer("/ci/*", Reply::status(503));
    let rules = forward_rules(&format!(
        r#"{{ url: "{sink}/ci/{{{{delivery.id}}}}", retry: {{ attempts: 100, backoff: 100ms, max_backoff: 300ms }} }}"#,
        sink = sink.url
    ));
    let dir = rules_dir(&rules);
    let client = reqwest::Client::new();
    let mut child = Server::start(serve(dir.path(), &ARGS, &[]));
    child.wait_ready(&client).await;

    let mut accepted = Vec::new();
    for n in 0..60 {
        let resp = client
            .post(child.url("/hooks/ingest"))
            .header("content-type", "application/json")
            .header("X-Token", "crash-test-token")
            .body(format!(r#"{{"n":{n}}}"#))
            .send()
            .await
            .expect("send");
        assert_eq!(resp.status().as_u16(), 202);
        let v: serde_json::Value = resp.json().await.expect("json");
        accepted.push(v["delivery"].as_str().expect("id").to_string());
    }
    // Kill it mid-run: once every run was tried and failed at least once
    // (and is waiting for its retry).
    sink.wait_until(
        "every run to have failed once at the sink",
        Duration::from_secs(30),
        |seen| {
            let tried: HashSet<&str> = seen.iter().map(|s| s.path.as_str()).collect();
            tried.len() >= accepted.len()
        },
    )
    .await;
    child.kill();
    assert!(
        sink.all()
            .iter()
            .all(|s| s.answered.is_none_or(|(_, status)| status == 503)),
        "nothing got through a failing sink"
    );

    sink.answer("/ci/*", Reply::status(200));
    let child = Server::start(serve(dir.path(), &ARGS, &[]));
    child.wait_ready(&client).await;
    let delivered = |seen: &[Seen]| -> HashSet<String> {
        seen.iter()
            .filter(|s| s.answered.is_some_and(|(_, status)| status == 200))
            .filter_map(|s| s.path.strip_prefix("/ci/").map(str::to_owned))
            .collect()
    };
    sink.wait_until(
        "every accepted delivery to reach the sink",
        Duration::from_secs(60),
        |seen| {
            let delivered = delivered(seen);
            accepted.iter().all(|id| delivered.contains(id))
        },
    )
    .await;
}

/// A node started on a backlog executes runs at once, before it serves a
/// request: every one of them must be counted in `hookflow_runs_total`
/// (the counters once started only with the HTTP state: runs finished
/// before it went uncounted — seen as runs "missing" from
/// bench/ingest.sh's drains).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn runs_finished_as_a_node_starts_are_counted() {
    const RUNS: usize = 400;
    let sink = Sink::start().await;
    let rules = forward_rules(&format!(r#"{{ url: "{}/backlog" }}"#, sink.url));
    let dir = rules_dir(&rules);
    let client = reqwest::Client::new();
    let mut receiver = Server::start(serve(
        dir.path(),
        &[&ARGS[..], &["--workers", "0"]].concat(),
        &[],
    ));
    receiver.wait_ready(&client).await;
    let url = receiver.url("/hooks/ingest");
    let mut posts = tokio::task::JoinSet::new();
    for n in 0..RUNS {
        let (client, url) = (client.clone(), url.clone());
        posts.spawn(async move {
            client
                .post(url)
                .header("content-type", "application/json")
                .header("X-Token", "crash-test-token")
                .body(format!(r#"{{"n":{n}}}"#))
                .send()
                .await
                .map(|r| r.status().as_u16())
        });
    }
    while let Some(posted) = posts.join_next().await {
        assert_eq!(posted.expect("task").expect("send"), 202);
    }
    receiver.kill();

    // The engine alone for a second: the backlog is done before the node
    // serves (HOOKFLOW_FAULTS, tests only).
    let node = Server::start(serve(
        dir.path(),
        &ARGS,
        &[("HOOKFLOW_FAULTS", "start_pause=1000")],
    ));
    sink.wait_for("/backlog", RUNS, Duration::from_secs(60))
        .await;
    let counted = || node.metric(&client, "hookflow_runs_total");
    let mut last = 0.0;
    let reached = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            last = counted().await;
            if last >= RUNS as f64 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(
        reached.is_ok(),
        "hookflow_runs_total reads {} for the {RUNS} runs the sink received",
        last.abs()
    );
    assert_eq!(counted().await, RUNS as f64, "each run counted once");
}
