//! Durability of acceptance: a real `hookflow serve` child process takes a
//! stream of deliveries and is killed with SIGKILL mid-stream. Every
//! delivery that got a 2xx must be in the database with its queued run.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

fn start_server(dir: &Path, port: u16) -> Child {
    Command::new(env!("CARGO_BIN_EXE_hookflow"))
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--rules",
            "rules",
            "--db",
            "sqlite://hookflow.db",
        ])
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start hookflow serve")
}

async fn wait_ready(client: &reqwest::Client, port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(resp) = client
            .get(format!("http://127.0.0.1:{port}/readyz"))
            .send()
            .await
            && resp.status().is_success()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the server did not become ready");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_acknowledged_delivery_survives_sigkill() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir_all(dir.path().join("rules")).expect("rules dir");
    std::fs::write(dir.path().join("rules/rules.yaml"), RULES).expect("rules");
    let port = free_port();
    let mut child = start_server(dir.path(), port);
    let client = reqwest::Client::new();
    wait_ready(&client, port).await;

    let acknowledged: Arc<Mutex<Vec<String>>> = Arc::default();
    let stop_at = Instant::now() + Duration::from_secs(30);
    let mut senders = Vec::new();
    for sender in 0..8 {
        let client = client.clone();
        let acknowledged = acknowledged.clone();
        senders.push(tokio::spawn(async move {
            for n in 0..100_000 {
                if Instant::now() > stop_at {
                    break;
                }
                let body = format!(r#"{{"sender":{sender},"n":{n}}}"#);
                let resp = client
                    .post(format!("http://127.0.0.1:{port}/hooks/ingest"))
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
    child.kill().expect("SIGKILL"); // std's kill is SIGKILL on Unix
    let _ = child.wait();
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
    let mut child = start_server(dir.path(), port);
    wait_ready(&client, port).await;
    child.kill().expect("stop");
    let _ = child.wait();
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
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir_all(dir.path().join("rules")).expect("rules dir");
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
    std::fs::write(dir.path().join("rules/rules.yaml"), rules).expect("rules");
    let port = free_port();
    let client = reqwest::Client::new();
    let mut child = start_server(dir.path(), port);
    wait_ready(&client, port).await;

    let mut accepted = Vec::new();
    for n in 0..60 {
        let resp = client
            .post(format!("http://127.0.0.1:{port}/hooks/ingest"))
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
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    assert!(
        sink.delivered.lock().expect("lock").is_empty(),
        "nothing got through a failing sink"
    );

    sink.healthy
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let mut child = start_server(dir.path(), port);
    wait_ready(&client, port).await;
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
    child.kill().expect("stop");
    let _ = child.wait();
}
