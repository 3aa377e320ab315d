//! Secrets never leave the process: after deliveries and runs whose rules
//! use `${SECRET}` in a condition operand, a header, a URL (echoed back by
//! the target), a body and a shell step's output, neither the database
//! files (main and WAL), the server's logs, the API nor the CLI's output
//! holds the value — as written, URL-encoded or base64-encoded.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use serde_json::Value;

use crate::common::app::{Server, serve};
use crate::common::sink::{Reply, Sink};
use crate::common::{cli, wait};

/// Used by the verifier, an outgoing header, URL and body.
const SECRET: &str = "s3cr3t-4c9e1f7b2d";
/// Used as a condition operand, in an echoed URL and in a shell step. It
/// has a space and URL-special characters, so its URL-encoded forms differ
/// from it (`%20` and `+` styles).
const TEAM: &str = "Team s3cr3t/4c9e+1f7b=2d:x";
const ADMIN_TOKEN: &str = "admin-token-for-the-test";

/// Every form of `secret` that must not be stored: as written, URL-encoded
/// (strict, form `+` style, and a URL parser's `%20` style), and base64
/// (standard and URL-safe, with and without padding).
fn forms(secret: &str) -> Vec<String> {
    let parsed = reqwest::Url::parse(&format!("http://h/?k={secret}")).expect("url");
    let mut forms = vec![
        secret.to_string(),
        percent_encoding::utf8_percent_encode(secret, percent_encoding::NON_ALPHANUMERIC)
            .to_string(),
        form_urlencoded::byte_serialize(secret.as_bytes()).collect(),
        parsed.query().expect("query")["k=".len()..].to_string(),
    ];
    for engine in [&STANDARD, &URL_SAFE, &STANDARD_NO_PAD, &URL_SAFE_NO_PAD] {
        forms.push(engine.encode(secret));
    }
    forms.sort();
    forms.dedup();
    forms
}

fn holds(bytes: &[u8], form: &str) -> bool {
    bytes.windows(form.len()).any(|w| w == form.as_bytes())
}

/// The database file and its WAL as bytes, named for messages.
fn database_files(dir: &Path, when: &str) -> Vec<(String, Vec<u8>)> {
    ["h.db", "h.db-wal"]
        .iter()
        .map(|name| {
            let bytes = std::fs::read(dir.join(name)).unwrap_or_default();
            (format!("{name} ({when})"), bytes)
        })
        .collect()
}

/// A local peer: `/deploy` answers 500 (so an error text is stored too);
/// `/echo` answers with its request URL, and the `form` query value
/// base64-encoded: alone, and inside a longer base64 text (`user:VALUE`,
/// as in Basic auth).
async fn start_peer() -> Sink {
    let sink = Sink::start().await;
    sink.answer("/deploy", Reply::status(500));
    sink.answer_with("/echo", |seen| {
        let form = seen
            .uri
            .split_once('?')
            .map(|(_, q)| q)
            .into_iter()
            .flat_map(|q| form_urlencoded::parse(q.as_bytes()))
            .find(|(k, _)| k == "form")
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default();
        Reply::json(
            200,
            &serde_json::json!({
                "uri": seen.uri,
                "form_b64": STANDARD.encode(&form),
                "basic": STANDARD.encode(format!("user:{form}")),
                "form_b64url": URL_SAFE_NO_PAD.encode(&form),
            }),
        )
    });
    sink
}

/// Runs the CLI on the test's rules and database; it must exit 0. Returns
/// everything it printed.
async fn cli(dir: &Path, args: &[&str]) -> String {
    cli::hookflow(args)
        .args(["--rules", "rules", "--db", "sqlite://h.db"])
        .cwd(dir)
        .env("DEPLOY_SECRET", SECRET)
        .env("TEAM_SECRET", TEAM)
        .run_async()
        .await
        .success()
        .all()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_appears_nowhere_but_at_its_destination() {
    let peer = start_peer().await;

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
    when: {{ header: X-Kind, equals: deploy }}
    actions:
      - http:
          url: "{peer}/deploy?key=${{DEPLOY_SECRET}}"
          headers: {{ Authorization: "Bearer ${{DEPLOY_SECRET}}" }}
          json: {{ token: "${{DEPLOY_SECRET}}", ref: "{{{{payload.ref}}}}" }}
          retry: {{ attempts: 1 }}
  - name: team
    source: ci
    when: {{ header: X-Team, equals: "${{TEAM_SECRET}}" }}
    actions:
      - id: echo
        http:
          method: GET
          url: "{peer}/echo?raw=${{TEAM_SECRET}}"
          query: {{ form: "${{TEAM_SECRET}}" }}
      - id: sh
        shell:
          script: 'printf "%s\n" "$T"; printf "%s" "$T" | base64'
          env: {{ T: "${{TEAM_SECRET}}" }}
"#,
            peer = peer.url
        ),
    )
    .expect("rules");
    let mut server = Server::start(serve(
        dir.path(),
        &[
            "--admin-token",
            ADMIN_TOKEN,
            "--rules",
            "rules",
            "--db",
            "sqlite://h.db",
        ],
        &[
            ("DEPLOY_SECRET", SECRET),
            ("TEAM_SECRET", TEAM),
            ("RUST_LOG", "hookflow=debug"),
        ],
    ));
    let client = reqwest::Client::new();
    let base = format!("http://{}", server.addr);
    let api = |path: &str| {
        client
            .get(format!("{base}{path}"))
            .bearer_auth(ADMIN_TOKEN)
            .send()
    };
    server.wait_ready(&client).await;

    // One delivery matches both rules; the other neither (its X-Team is
    // wrong, so the trace records the failed condition and its operand).
    let mut deliveries = Vec::new();
    for (team, kind, n) in [(TEAM, "deploy", 1), ("wrong-team", "none", 2)] {
        let resp = client
            .post(format!("{base}/hooks/ci"))
            .header("X-Token", SECRET)
            .header("X-Team", team)
            .header("X-Kind", kind)
            .header("content-type", "application/json")
            .body(format!(r#"{{"ref":"refs/heads/main","n":{n}}}"#))
            .send()
            .await
            .expect("post");
        assert_eq!(resp.status().as_u16(), 202);
        let body: Value = resp.json().await.expect("json");
        deliveries.push(body["delivery"].as_str().expect("delivery id").to_string());
    }
    let (matching, missing) = (deliveries[0].as_str(), deliveries[1].as_str());

    // Both runs (deploy, team) end: deploy fails at the 500, team succeeds.
    let runs = Arc::new(Mutex::new(Value::Null));
    wait::until("both runs to finish", Duration::from_secs(20), || {
        let runs = runs.clone();
        let page = api("/api/runs");
        async move {
            let Ok(resp) = page.await else {
                return false;
            };
            let Ok(page) = resp.json::<Value>().await else {
                return false;
            };
            let items = page["items"].as_array().cloned().unwrap_or_default();
            let done = items.len() == 2
                && items
                    .iter()
                    .all(|r| matches!(r["status"].as_str(), Some("succeeded" | "failed")));
            *runs.lock().expect("lock") = page;
            done
        }
    })
    .await;
    let deployed = peer.seen("/deploy");
    let deployed = deployed.first().expect("the deploy step reached the peer");
    assert_eq!(deployed.method, "POST");
    assert_eq!(deployed.header("authorization"), format!("Bearer {SECRET}"));
    assert!(
        deployed.text().contains(SECRET),
        "the destination gets the real value: {}",
        deployed.text()
    );
    assert_eq!(deployed.status(), 500);
    assert_eq!(
        peer.seen("/echo").first().map(|s| s.method.as_str()),
        Some("GET")
    );
    let runs = runs.lock().expect("lock").clone();
    let run_of = |rule: &str| {
        runs["items"]
            .as_array()
            .and_then(|items| items.iter().find(|r| r["rule"] == rule))
            .and_then(|r| r["id"].as_str())
            .unwrap_or_else(|| panic!("no {rule} run: {runs}"))
            .to_string()
    };
    let (deploy_run, team_run) = (run_of("deploy"), run_of("team"));

    let mut api_text = String::new();
    for path in [
        "/api/deliveries".to_string(),
        "/api/runs".to_string(),
        "/api/rules".to_string(),
        format!("/api/deliveries/{matching}"),
        format!("/api/deliveries/{missing}"),
        format!("/api/runs/{deploy_run}"),
    ] {
        let resp = api(&path).await.expect("api");
        assert!(resp.status().is_success(), "{path}: {}", resp.status());
        api_text += &resp.text().await.expect("text");
    }
    let team: Value = api(&format!("/api/runs/{team_run}"))
        .await
        .expect("api")
        .json()
        .await
        .expect("json");
    api_text += &team.to_string();
    assert_eq!(team["status"], "succeeded", "{team}");
    // The echo and the shell step really did carry the secret: what came
    // back is stored with the secret's every form as `***`.
    let echo = &team["outputs"]["echo"]["json"];
    assert_eq!(echo["uri"], "/echo?raw=***&form=***", "{team}");
    assert_eq!(echo["form_b64"], "***", "{team}");
    assert_eq!(echo["form_b64url"], "***", "{team}");
    assert!(
        echo["basic"].as_str().is_some_and(|s| s.contains("***")),
        "the secret inside a longer base64 text is redacted: {team}"
    );
    assert_eq!(team["outputs"]["sh"]["stdout"], "***\n***\n", "{team}");
    let attempts = team["attempts"].as_array().expect("attempts");
    assert_eq!(attempts.len(), 2, "{team}");
    assert!(
        attempts[0]["request"]["url"]
            .as_str()
            .is_some_and(|u| u.ends_with("/echo?raw=***&form=***")),
        "{team}"
    );
    assert_eq!(attempts[1]["stdout"], "***\n***\n", "{team}");

    // The trace of the delivery that missed names the condition, not the value.
    let detail: Value = api(&format!("/api/deliveries/{missing}"))
        .await
        .expect("api")
        .json()
        .await
        .expect("json");
    let trace = detail["trace"].to_string();
    assert!(
        trace.contains("***") && trace.contains("wrong-team"),
        "{trace}"
    );

    // The files as the server wrote them (the CLI's own connections would
    // checkpoint the WAL into the database and truncate it). The run log is
    // in the WAL or, once the checkpoint thread has copied it and later
    // commits have reused the WAL's frames, in the database file: either
    // way the files hold it, so checking them means something.
    let mut files = database_files(dir.path(), "while serving");
    assert!(
        files.iter().any(|(_, bytes)| holds(bytes, "wrong-team")),
        "the database files hold the run log, so checking them means something"
    );

    let mut cli_text = String::new();
    cli_text += &cli(dir.path(), &["runs", "--json"]).await;
    cli_text += &cli(dir.path(), &["deliveries", "--json"]).await;
    cli_text += &cli(dir.path(), &["show", &team_run]).await;
    cli_text += &cli(dir.path(), &["show", &deploy_run]).await;
    let shown = cli(dir.path(), &["show", missing]).await;
    assert!(shown.contains("trace") && shown.contains("miss"), "{shown}");
    cli_text += &shown;
    // `explain` takes a DELIVERY id and gives a real explanation.
    for (delivery, expected) in [(matching, "MATCH  team"), (missing, "miss   team")] {
        let explained = cli(dir.path(), &["explain", delivery]).await;
        assert!(
            explained.contains(&format!("delivery {delivery}"))
                && explained.contains("as matched on arrival:")
                && explained.contains("with the current rules")
                && explained.contains(expected),
            "explain {delivery}: {explained}"
        );
        cli_text += &explained;
    }
    // `explain PAYLOAD_FILE --source S`, the other form explain takes: a
    // dry run whose rendered steps hold both secrets, shown as `***`.
    std::fs::write(
        dir.path().join("payload.json"),
        r#"{"ref":"refs/heads/main","n":3}"#,
    )
    .expect("payload file");
    let dry = cli(
        dir.path(),
        &[
            "explain",
            "--source",
            "ci",
            "--header",
            &format!("X-Team: {TEAM}"),
            "--header",
            "X-Kind: deploy",
            "payload.json",
        ],
    )
    .await;
    assert!(
        dry.contains("source ci")
            && dry.contains("MATCH  deploy")
            && dry.contains("MATCH  team")
            && dry.contains("/deploy?key=***")
            && dry.contains("Bearer ***"),
        "explain of a payload file renders the steps, secrets redacted: {dry}"
    );
    cli_text += &dry;
    // A run id is neither: explain says so and fails, so a check made with
    // the wrong kind of id cannot pass on an error message.
    let wrong = cli::hookflow(["explain", team_run.as_str()])
        .args(["--rules", "rules", "--db", "sqlite://h.db"])
        .cwd(dir.path())
        .env("DEPLOY_SECRET", SECRET)
        .env("TEAM_SECRET", TEAM)
        .run_async()
        .await;
    wrong.code(2);
    assert!(
        wrong
            .stderr
            .contains("neither a payload file nor a delivery"),
        "{}",
        wrong.stderr
    );
    assert!(
        cli_text.contains("equals \"***\""),
        "the missed condition is shown, its operand redacted: {cli_text}"
    );

    server.kill();
    let logs = server.full_log();
    assert!(
        logs.contains("delivery accepted"),
        "the log has the delivery line: {logs}"
    );
    let at_end = database_files(dir.path(), "at the end");
    assert!(
        holds(&at_end[0].1, "wrong-team"),
        "the database file holds the run log, so checking it means something"
    );
    files.extend(at_end);
    for secret in [SECRET, TEAM] {
        for form in forms(secret) {
            for (what, text) in [
                ("the API", api_text.as_str()),
                ("the CLI output", cli_text.as_str()),
                ("the logs", logs.as_str()),
            ] {
                assert!(!text.contains(&form), "{what} holds {form:?}");
            }
            for (name, bytes) in &files {
                assert!(!holds(bytes, &form), "{name} holds {form:?}");
            }
        }
    }
}
