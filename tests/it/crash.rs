//! Durability of acceptance: a real `hookflow serve` child process takes a
//! stream of deliveries and is killed with SIGKILL mid-stream. Every
//! delivery that got a 2xx must be in the database with its queued run.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::app::{Server, rules_dir};

const RULES: &str = r#"
sources:
  ingest:
    verify: { token: { header: X-Token, value: crash-test-token } }
rules:
  - name: forward
    source: ingest
    actions:
      - http: { url: "http://127.0.0.1:9/never-reached/{{payload.n}}" }
"#;

const ARGS: [&str; 4] = ["--rules", "rules", "--db", "sqlite://hookflow.db"];

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_acknowledged_delivery_survives_sigkill() {
    let dir = rules_dir(RULES);
    let mut child = Server::start(dir.path(), &ARGS, &[]);
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
    let deadline = Instant::now() + Duration::from_secs(20);
    while acknowledged.lock().expect("lock").len() < 300 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
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
    let child = Server::start(dir.path(), &ARGS, &[]);
    child.wait_ready(&client).await;
}

/// A sink standing in for a CI API: fails with 503 until told otherwise,
/// and remembers which deliveries it answered 200 for.
#[derive(Default)]
struct Sink {
    healthy: std::sync::atomic::AtomicBool,
    delivered: Mutex<std::collections::HashSet<String>>,
}

async fn start_sink(sink: Arc<Sink>) -> u16 {
    use axum::extract::{Path, State};
    use axum::http::StatusCode;
    async fn hit(State(sink): State<Arc<Sink>>, Path(id): Path<String>) -> StatusCode {
        if sink.healthy.load(std::sync::atomic::Ordering::SeqCst) {
            sink.delivered.lock().expect("lock").insert(id);
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        }
    }
    let app = axum::Router::new()
        .route("/ci/{id}", axum::routing::post(hit))
        .with_state(sink);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind sink");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn runs_interrupted_by_sigkill_reach_the_sink_after_restart() {
    let sink = Arc::new(Sink::default());
    let sink_port = start_sink(sink.clone()).await;
    let rules = format!(
        r#"
sources:
  ingest:
    verify: {{ token: {{ header: X-Token, value: crash-test-token }} }}
rules:
  - name: forward
    source: ingest
    actions:
      - http:
          url: "http://127.0.0.1:{sink_port}/ci/{{{{delivery.id}}}}"
          retry: {{ attempts: 100, backoff: 100ms, max_backoff: 300ms }}
"#
    );
    let dir = rules_dir(&rules);
    let client = reqwest::Client::new();
    let mut child = Server::start(dir.path(), &ARGS, &[]);
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
    // Let the workers fail and reschedule for a while, then kill mid-run.
    tokio::time::sleep(Duration::from_millis(700)).await;
    child.kill();
    assert!(
        sink.delivered.lock().expect("lock").is_empty(),
        "nothing got through a failing sink"
    );

    sink.healthy
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let child = Server::start(dir.path(), &ARGS, &[]);
    child.wait_ready(&client).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let missing: Vec<&String> = {
            let delivered = sink.delivered.lock().expect("lock");
            accepted
                .iter()
                .filter(|id| !delivered.contains(*id))
                .collect()
        };
        if missing.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {} accepted deliveries never reached the sink",
            missing.len(),
            accepted.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
