//! Secrets never leave the process: after a run whose rule uses `${SECRET}`
//! in a header, the URL and the body, neither the database files, the
//! server's logs, the API nor the CLI's output contains the value.

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const SECRET: &str = "s3cr3t-4c9e1f7b2d";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_appears_nowhere_but_at_its_destination() {
    // The sink is the destination: it must receive the secret.
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let sink = {
        let seen = seen.clone();
        axum::Router::new().route(
            "/deploy",
            axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
                let seen = seen.clone();
                async move {
                    let auth = headers
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_string();
                    seen.lock().expect("lock").push(format!("{auth} {body}"));
                    axum::http::StatusCode::INTERNAL_SERVER_ERROR // so the error text is stored too
                }
            }),
        )
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let sink_port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        let _ = axum::serve(listener, sink).await;
    });

    let dir = tempfile::tempdir().expect("temp");
    std::fs::create_dir(dir.path().join("rules")).expect("dir");
    std::fs::write(
        dir.path().join("rules/r.yaml"),
        format!(
            r#"
sources:
  ci:
    verify: {{ token: {{ header: X-Token, value: "${{DEPLOY_SECRET}}" }} }}
rules:
  - name: deploy
    source: ci
    actions:
      - http:
          url: "http://127.0.0.1:{sink_port}/deploy?key=${{DEPLOY_SECRET}}"
          headers: {{ Authorization: "Bearer ${{DEPLOY_SECRET}}" }}
          json: {{ token: "${{DEPLOY_SECRET}}", ref: "{{{{payload.ref}}}}" }}
          retry: {{ attempts: 1 }}
"#
        ),
    )
    .expect("rules");
    let port = free_port();
    let log = dir.path().join("server.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_hookflow"))
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--rules",
            "rules",
            "--db",
            "sqlite://h.db",
        ])
        .current_dir(dir.path())
        .env("DEPLOY_SECRET", SECRET)
        .env("RUST_LOG", "hookflow=debug")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("serve");
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while client.get(format!("{base}/readyz")).send().await.is_err() {
        assert!(Instant::now() < deadline, "server never became ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let resp = client
        .post(format!("{base}/hooks/ci"))
        .header("X-Token", SECRET)
        .header("content-type", "application/json")
        .body(r#"{"ref":"refs/heads/main"}"#)
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status().as_u16(), 202);
    while seen.lock().expect("lock").is_empty() {
        assert!(Instant::now() < deadline, "the action never ran");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        seen.lock().expect("lock")[0].contains(SECRET),
        "the destination gets the real value"
    );
    tokio::time::sleep(Duration::from_millis(500)).await; // the failed attempt is recorded

    let mut api = String::new();
    for path in ["/api/deliveries", "/api/runs", "/api/rules"] {
        api += &client
            .get(format!("{base}{path}"))
            .send()
            .await
            .expect("api")
            .text()
            .await
            .expect("text");
    }
    let runs: serde_json::Value = client
        .get(format!("{base}/api/runs"))
        .send()
        .await
        .expect("api")
        .json()
        .await
        .expect("json");
    let run_id = runs["items"][0]["id"].as_str().expect("a run").to_string();
    api += &client
        .get(format!("{base}/api/runs/{run_id}"))
        .send()
        .await
        .expect("api")
        .text()
        .await
        .expect("text");
    assert!(
        api.contains("***"),
        "the attempt shows the redaction: {api}"
    );

    let mut cli = String::new();
    for args in [
        vec!["runs", "--json"],
        vec!["show", run_id.as_str()],
        vec!["deliveries", "--json"],
        vec!["explain", run_id.as_str()],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_hookflow"))
            .args(&args)
            .args(["--rules", "rules", "--db", "sqlite://h.db"])
            .current_dir(dir.path())
            .env("DEPLOY_SECRET", SECRET)
            .output()
            .expect("cli");
        cli += &String::from_utf8_lossy(&out.stdout);
        cli += &String::from_utf8_lossy(&out.stderr);
    }
    child.kill().expect("stop");
    let _ = child.wait();

    let logs = std::fs::read_to_string(&log).expect("logs");
    assert!(
        logs.contains("delivery accepted"),
        "the log has the delivery line: {logs}"
    );
    for (what, text) in [
        ("the API", api.as_str()),
        ("the CLI output", cli.as_str()),
        ("the logs", logs.as_str()),
    ] {
        assert!(!text.contains(SECRET), "{what} leaked the secret");
    }
    for name in ["h.db", "h.db-wal", "h.db-shm"] {
        if let Ok(bytes) = std::fs::read(dir.path().join(name)) {
            assert!(
                !bytes.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()),
                "{name} holds the secret"
            );
        }
    }
}
