//! `hookflow send` signs like the real sender, with the configured secret:
//! a round trip through a real server for github, stripe, slack and
//! standard sources, each answered 202 and stored.

use std::process::Command;

use crate::common::app::spawn_app;

const RULES: &str = r#"
sources:
  github: { verify: { github: { secret: gh-send-secret } } }
  stripe: { verify: { stripe: { secret: whsec_send_secret } } }
  slack: { verify: { slack: { secret: slack-send-secret } } }
  standard: { verify: { standard: { secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" } } }
rules:
  - name: anything
    source: [github, stripe, slack, standard]
    actions:
      - http: { url: "http://127.0.0.1:9/" }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_signs_like_each_sender_and_the_server_accepts_it() {
    let app = spawn_app(&[("rules.yaml", RULES)]).await;
    let fixtures = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/signatures/payloads"
    );
    let cases = [
        ("github", "github-push.json", Some("push"), "push"),
        (
            "stripe",
            "stripe-payment_intent.succeeded.json",
            None,
            "payment_intent.succeeded",
        ),
        ("slack", "slack-slash-command.txt", None, "/webhook-collect"),
        (
            "standard",
            "standardwebhooks-contact.created.json",
            None,
            "contact.created",
        ),
    ];
    for (source, file, event, expected_event) in cases {
        let url = app.url(&format!("/hooks/{source}"));
        let rules = app.rules_dir.to_string_lossy().into_owned();
        let db = format!("sqlite://{}", app.db_path.display());
        let payload = format!("{fixtures}/{file}");
        let mut args = vec![
            "send", "--source", source, "--url", &url, "--rules", &rules, "--db", &db,
        ];
        if let Some(e) = event {
            args.extend(["--event", e]);
        }
        args.push(&payload);
        let args: Vec<String> = args.into_iter().map(String::from).collect();
        let out = tokio::task::spawn_blocking(move || {
            Command::new(env!("CARGO_BIN_EXE_hookflow"))
                .args(&args)
                .output()
                .expect("run send")
        })
        .await
        .expect("join");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{source}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.starts_with("202 Accepted"), "{source}: {stdout}");
        let answer: serde_json::Value =
            serde_json::from_str(stdout.lines().nth(1).expect("body")).expect("json");
        assert_eq!(
            answer["matched"],
            serde_json::json!(["anything"]),
            "{source}"
        );
        let id = answer["delivery"].as_str().expect("id");
        let stored = app
            .store
            .get_delivery(id)
            .await
            .expect("read")
            .expect("stored");
        assert_eq!(stored.event, expected_event, "{source}");
    }
}

#[tokio::test]
async fn send_to_a_server_that_is_not_running_says_so() {
    let dir = tempfile::tempdir().expect("temp");
    std::fs::write(dir.path().join("rules.yaml"), RULES).expect("write");
    let payload = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/signatures/payloads/github-push.json"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_hookflow"))
        .args([
            "send",
            "--source",
            "github",
            "--url",
            "http://127.0.0.1:9/hooks/github",
            "--rules",
        ])
        .arg(dir.path())
        .arg(payload)
        .output()
        .expect("run send");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("is `hookflow serve` running?"), "{stderr}");
}

/// With no `--url`, `send` posts to the configured `listen`; a `--header`
/// replaces the generated header of that name, so a fixed delivery id
/// makes the second send a duplicate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_defaults_to_the_configured_listen_and_a_header_replaces_the_generated_one() {
    let app = spawn_app(&[("rules.yaml", RULES)]).await;
    let payload = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/signatures/payloads/github-push.json"
    );
    let rules = app.rules_dir.to_string_lossy().into_owned();
    let listen = app.addr.to_string();
    let send = move || {
        let (rules, listen) = (rules.clone(), listen.clone());
        tokio::task::spawn_blocking(move || {
            Command::new(env!("CARGO_BIN_EXE_hookflow"))
                .args([
                    "send", "--source", "github", "--event", "push", "--rules", &rules,
                ])
                .args(["--header", "X-GitHub-Delivery: fixed-delivery-1", payload])
                .env("HOOKFLOW_LISTEN", &listen)
                .output()
                .expect("run send")
        })
    };
    let first = send().await.expect("join");
    let stdout = String::from_utf8_lossy(&first.stdout);
    assert!(
        first.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(stdout.starts_with("202"), "{stdout}");
    let second = send().await.expect("join");
    let stdout = String::from_utf8_lossy(&second.stdout);
    assert!(
        stdout.starts_with("200"),
        "one X-GitHub-Delivery, so a duplicate: {stdout}"
    );
    assert!(stdout.contains("duplicate"), "{stdout}");
}

/// `hookflow sink` prints each request it gets (method, path, headers,
/// pretty JSON) and answers 200 `{"ok":true}`.
#[tokio::test]
async fn the_sink_prints_what_it_receives_and_answers_ok() {
    use std::io::{BufRead, BufReader};
    let mut child = Command::new(env!("CARGO_BIN_EXE_hookflow"))
        .args(["sink", "--listen", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn sink");
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    let mut first = String::new();
    out.read_line(&mut first).expect("first line");
    let url = first
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .expect("the sink says where it listens")
        .to_owned();
    let answer = reqwest::Client::new()
        .post(format!("{url}/deployed?env=prod"))
        .header("X-Step", "notify")
        .body(r#"{"sha":"abc123","files":["a","b"]}"#)
        .send()
        .await
        .expect("the sink answers");
    assert_eq!(answer.status().as_u16(), 200);
    assert_eq!(answer.text().await.expect("body"), r#"{"ok":true}"#);
    let printed = tokio::task::spawn_blocking(move || {
        let mut text = String::new();
        let mut line = String::new();
        while out.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
            text.push_str(&line);
            if line == "}\n" {
                break;
            }
            line.clear();
        }
        text
    })
    .await
    .expect("join");
    let _ = child.kill();
    let _ = child.wait();
    assert!(printed.contains("POST /deployed?env=prod"), "{printed}");
    assert!(printed.contains("x-step: notify"), "{printed}");
    assert!(
        printed.contains("  \"sha\": \"abc123\","),
        "pretty JSON: {printed}"
    );
}
