//! The rule author's tools as a user runs them: `check`, `test` and
//! `explain` on the shipped example rules, through the real binary.

use crate::common::app::{Server, serve};
use crate::common::cli;

/// `hookflow ARGS` in the crate's root: (exit code, stdout, stderr).
fn hookflow(args: &[&str]) -> (i32, String, String) {
    let ran = cli::hookflow(args).run();
    (ran.code, ran.stdout, ran.stderr)
}

#[test]
fn the_example_rules_check_clean_but_for_their_development_secrets() {
    let ran = cli::hookflow(["check", "rules"])
        .env_remove("GITHUB_WEBHOOK_SECRET")
        .env_remove("STRIPE_WEBHOOK_SECRET")
        .env("SLACK_SIGNING_SECRET", "a-real-one")
        .run();
    ran.success();
    let (stdout, stderr) = (&ran.stdout, &ran.stderr);
    assert!(stdout.contains("2 warning(s) — ok"), "{stdout}");
    assert!(!stderr.contains("error"), "{stderr}");
    // Each defaulted verifier secret is named, with its place; a secret
    // taken from the environment is not.
    assert!(
        stderr.contains("rules/sources.yaml:8:25: warning: the verifier secret of source `github` is the default written here, because GITHUB_WEBHOOK_SECRET is not set"),
        "{stderr}"
    );
    assert!(
        stderr.contains("STRIPE_WEBHOOK_SECRET is not set"),
        "{stderr}"
    );
    assert!(!stderr.contains("SLACK_SIGNING_SECRET"), "{stderr}");
}

#[test]
fn the_example_rules_tests_pass() {
    let (code, stdout, stderr) = hookflow(&["test", "rules"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains("PASS  a push to the default branch builds and notifies"),
        "{stdout}"
    );
    let summary = stdout.lines().last().unwrap_or_default();
    assert!(summary.ends_with("passed, 0 failed"), "{summary}");
}

#[test]
fn a_failing_rule_test_exits_1_and_says_why() {
    let dir = tempfile::tempdir().expect("temp");
    std::fs::write(
        dir.path().join("r.yaml"),
        r#"
sources:
  s: { verify: { token: { header: X-T, value: abc } } }
rules:
  - name: big-orders
    source: s
    when: { path: $.total, gt: 100 }
    actions:
      - id: notify
        http: { url: "http://127.0.0.1:9/{{payload.total}}" }
tests:
  - name: small order matches (wrong on purpose)
    source: s
    payload: { total: 5 }
    expect: { matched: [big-orders] }
  - name: big order renders
    source: s
    payload: { total: 500 }
    expect:
      matched: [big-orders]
      render: { big-orders.notify.url: "http://127.0.0.1:9/501" }
"#,
    )
    .expect("write");
    let path = dir.path().to_string_lossy().into_owned();
    let (code, stdout, _) = hookflow(&["test", &path]);
    assert_eq!(code, 1, "{stdout}");
    assert!(
        stdout.contains("FAIL  small order matches (wrong on purpose)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("big-orders did not match: ")
            && stdout.contains("path $.total gt 100 — saw 5"),
        "{stdout}"
    );
    assert!(
        stdout.contains("rendered \"http://127.0.0.1:9/500\", expected \"http://127.0.0.1:9/501\""),
        "{stdout}"
    );
    assert!(stdout.contains("0 passed, 2 failed"), "{stdout}");
    let (code, stdout, _) = hookflow(&["test", &path, "--filter", "big order"]);
    assert_eq!(code, 1);
    assert!(stdout.contains("0 passed, 1 failed"), "{stdout}");
}

#[test]
fn a_rule_test_can_expect_the_schema_to_refuse_a_payload() {
    let dir = tempfile::tempdir().expect("temp");
    let rules = r#"
sources:
  orders:
    verify: { token: { header: X-T, value: abcdef } }
    schema:
      type: object
      required: [total]
      properties: { total: { type: integer } }
rules:
  - name: book
    source: orders
    actions:
      - http: { url: "http://127.0.0.1:9/book" }
tests:
  - name: a text total is refused
    source: orders
    payload: { total: "12" }
    expect: { rejected: 422 }
  - name: a valid order is refused (wrong on purpose)
    source: orders
    payload: { total: 12 }
    expect: { rejected: 422 }
  - name: a refused order matches (wrong on purpose)
    source: orders
    payload: { amount: 12 }
    expect: { matched: [book] }
"#;
    std::fs::write(dir.path().join("r.yaml"), rules).expect("write");
    let path = dir.path().to_string_lossy().into_owned();
    let (code, stdout, stderr) = hookflow(&["test", &path]);
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(stdout.contains("PASS  a text total is refused"), "{stdout}");
    assert!(
        stdout.contains("FAIL  a valid order is refused (wrong on purpose)")
            && stdout.contains(
                "accepted: the payload matches the schema of source `orders`; expected 422"
            ),
        "{stdout}"
    );
    assert!(
        stdout.contains("FAIL  a refused order matches (wrong on purpose)")
            && stdout.contains("refused with 422: payload does not match the schema at / (the payload): \"total\" is a required property"),
        "{stdout}"
    );
    assert!(stdout.contains("1 passed, 2 failed"), "{stdout}");

    // `explain` says the same for a payload file.
    let payload = dir.path().join("order.json");
    std::fs::write(&payload, r#"{"total": "12"}"#).expect("write");
    let (code, stdout, stderr) = hookflow(&[
        "explain",
        "--rules",
        &path,
        "--source",
        "orders",
        &payload.to_string_lossy(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("refused with 422: payload does not match the schema at /total"),
        "{stdout}"
    );
}

#[test]
fn check_reports_every_error_with_its_location_and_exits_1() {
    let dir = tempfile::tempdir().expect("temp");
    std::fs::write(
        dir.path().join("bad.yaml"),
        "rules:\n  - name: x\n    source: nowhere\n    when: { path: $.a, matches: '(' }\n    actions: []\n",
    )
    .expect("write");
    let path = dir.path().to_string_lossy().into_owned();
    let (code, _, stderr) = hookflow(&["check", &path]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("bad.yaml:4:33: invalid regex \"(\": unclosed group"),
        "{stderr}"
    );
    assert!(
        stderr.contains("bad.yaml:5:14: `actions` must have at least one action"),
        "{stderr}"
    );
}

#[test]
fn explain_shows_the_failing_condition_and_the_value_it_saw() {
    let (code, stdout, stderr) = hookflow(&[
        "explain",
        "--source",
        "github",
        "--header",
        "X-GitHub-Event: push",
        "examples/payloads/github-push.json",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("MATCH  deploy-main"), "{stdout}");
    assert!(
        stdout.contains("\"sha\": \"6113728f27ae82c7b1a177c8d03f9e96e0adf246\""),
        "rendered step: {stdout}"
    );
    // release-tag misses: its condition, where it is, and what it saw.
    assert!(
        stdout.contains("rules/github.yaml:47:7: path $.ref matches /^refs/tags/v\\d+\\.\\d+\\.\\d+$/ — saw \"refs/heads/master\""),
        "{stdout}"
    );
    assert!(
        stdout.contains("event push is not one of: pull_request.opened"),
        "{stdout}"
    );
}

#[test]
fn explain_json_is_machine_readable() {
    let (code, stdout, _) = hookflow(&[
        "explain",
        "--json",
        "--source",
        "stripe",
        "examples/payloads/stripe-payment_intent.succeeded.json",
    ]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&stdout).expect("json");
    assert_eq!(v["trace"]["event"], "payment_intent.succeeded");
    assert_eq!(v["runs"][0]["rule"], "fulfil-payment");
    assert_eq!(
        v["runs"][0]["steps"][0]["rendered"]["json"]["currency"],
        "USD"
    );
}

#[test]
fn every_example_recipe_checks_and_its_tests_pass() {
    for recipe in [
        "examples/github-to-slack",
        "examples/stripe-to-http",
        "examples/deploy-on-push",
        "examples/alert-on-failure",
    ] {
        let ran = cli::hookflow(["test", recipe])
            // The recipes' tests expect their documented defaults.
            .env_remove("SLACK_CHANNEL")
            .env_remove("DEPLOY_SCRIPT")
            .env_remove("CI_URL")
            .run();
        ran.success();
        let stdout = &ran.stdout;
        assert!(
            stdout.contains(" passed, 0 failed") && !stdout.contains("\n0 passed"),
            "{recipe}: {stdout}"
        );
    }
}

/// Rules whose one test names a payload file that is not there: what
/// copying `rules/` out of the repository without its payloads gives.
fn rules_with_a_missing_payload_file(dir: &std::path::Path) {
    std::fs::write(
        dir.join("r.yaml"),
        "sources:\n  gh: {}\nrules:\n  - name: r\n    source: gh\n    actions:\n      - http: { url: \"http://127.0.0.1:9/\" }\ntests:\n  - name: pushes build\n    source: gh\n    payload_file: payloads/push.json\n    expect: { matched: [r] }\n",
    )
    .expect("write rules");
}

#[test]
fn serve_starts_with_a_test_payload_file_missing() {
    let dir = tempfile::tempdir().expect("temp");
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).expect("mkdir");
    rules_with_a_missing_payload_file(&rules);
    // `start` fails the test unless serve logs its start line.
    let server = Server::start(serve(dir.path(), &["--dev"], &[]));
    let log = server.log();
    // It says why the test cannot run, as a warning.
    assert!(
        log.lines()
            .any(|l| l.contains("warning") && l.contains("payloads/push.json")),
        "{log}"
    );
}

#[test]
fn check_and_test_fail_on_a_missing_test_payload_file_with_its_place() {
    let dir = tempfile::tempdir().expect("temp");
    rules_with_a_missing_payload_file(dir.path());
    let path = dir.path().to_string_lossy().into_owned();
    let (code, stdout, stderr) = hookflow(&["check", &path]);
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(
        stderr.contains("r.yaml:11:19: test \"pushes build\": cannot read payload_file"),
        "{stderr}"
    );
    assert!(stderr.contains("payloads/push.json"), "{stderr}");
    assert!(
        !stderr.contains("warning: test"),
        "printed once, as an error: {stderr}"
    );
    let (code, stdout, stderr) = hookflow(&["test", &path]);
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(
        stderr.contains("r.yaml:11:19: test \"pushes build\""),
        "{stderr}"
    );
    assert!(stdout.contains("0 passed, 1 failed"), "{stdout}");
}

/// Runs hookflow in `dir` with no HOOKFLOW_* settings from the outside.
fn hookflow_in(dir: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    let ran = cli::hookflow(args).cwd(dir).run();
    (ran.code, ran.stdout, ran.stderr)
}

#[test]
fn check_and_test_read_the_rules_directory_from_the_settings_file() {
    let dir = tempfile::tempdir().expect("temp");
    let good = dir.path().join("good");
    let bad = dir.path().join("bad");
    std::fs::create_dir(&good).expect("mkdir");
    std::fs::create_dir(&bad).expect("mkdir");
    std::fs::write(
        good.join("r.yaml"),
        "sources:\n  gh: {}\nrules:\n  - name: r\n    source: gh\n    actions:\n      - http: { url: \"http://127.0.0.1:9/\" }\ntests:\n  - name: it matches\n    source: gh\n    payload: {}\n    expect: { matched: [r] }\n",
    )
    .expect("write");
    std::fs::write(bad.join("r.yaml"), "rules:\n  - name: Bad\n").expect("write");
    std::fs::write(dir.path().join("hookflow.yaml"), "rules: good\n").expect("write");
    std::fs::write(dir.path().join("other.yaml"), "rules: bad\n").expect("write");

    // ./hookflow.yaml is read when present, as `serve` reads it.
    let (code, stdout, stderr) = hookflow_in(dir.path(), &["check"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.starts_with("good: 1 source(s), 1 rule(s), 1 test(s)"),
        "{stdout}"
    );
    let (code, stdout, stderr) = hookflow_in(dir.path(), &["test"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("PASS  it matches"), "{stdout}");

    // --config names another settings file.
    let (code, _, stderr) = hookflow_in(dir.path(), &["check", "--config", "other.yaml"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("bad/r.yaml:2:"), "{stderr}");
    let (code, _, stderr) = hookflow_in(dir.path(), &["test", "--config", "other.yaml"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("bad/r.yaml:2:"), "{stderr}");

    // --rules beats the file; a positional DIR beats both.
    let (code, _, _) = hookflow_in(dir.path(), &["check", "--rules", "bad"]);
    assert_eq!(code, 1);
    let (code, stdout, stderr) =
        hookflow_in(dir.path(), &["check", "--config", "other.yaml", "good"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    // --db is accepted like every command's (SPEC §6).
    let (code, stdout, stderr) =
        hookflow_in(dir.path(), &["test", "--db", "sqlite://unused.db", "good"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    // A settings file that is not there is an error, not the defaults.
    let (code, _, stderr) = hookflow_in(dir.path(), &["check", "--config", "nope.yaml"]);
    assert_ne!(code, 0, "{stderr}");
    assert!(stderr.contains("nope.yaml"), "{stderr}");
}
