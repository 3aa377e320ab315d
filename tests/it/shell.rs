//! The `shell` action with real child processes: a step is loaded from a
//! rule file, rendered against a delivery, and executed as a worker would.

use std::path::Path;
use std::time::{Duration, Instant};

use hookflow::actions::{self, ActionEnv, Fault, Outcome, TEXT_LIMIT, render_step};
use hookflow::delivery::Delivery;
use hookflow::template::TemplateContext;
use serde_json::{Value, json};

use crate::common::wait;

/// Loads a rule whose only action is `action` (YAML, indented for the
/// actions list), renders it against `payload` and executes it.
async fn run_step(action: &str, payload: Value) -> Outcome {
    let dir = tempfile::tempdir().expect("temp dir");
    let yaml = format!(
        "sources:\n  s:\n    verify: {{ token: {{ header: X-T, value: abc }} }}\nrules:\n  - name: r\n    source: s\n    actions:\n{action}\n"
    );
    std::fs::write(dir.path().join("r.yaml"), yaml).unwrap();
    let set = match hookflow::rules::load_with_env(dir.path(), &|_| None) {
        Ok(set) => set,
        Err(e) => panic!("rules do not load: {:#?}", e.diagnostics),
    };
    let source = set.source("s").unwrap();
    let delivery = Delivery::local(
        source,
        vec![("content-type".into(), "application/json".into())],
        Vec::new(),
        serde_json::to_vec(&payload).unwrap(),
        None,
    )
    .unwrap();
    let rule = set.rule("r").unwrap();
    let step = &rule.steps[0];
    let ctx = TemplateContext::new(delivery.template_value("r", "run-1", json!({})));
    let rendered = render_step(step, set.templates(), Some(&ctx)).expect("renders");
    let client = reqwest::Client::new();
    let env = ActionEnv {
        client: &client,
        idempotency_key: "run-1.0",
        secrets: set.secrets(),
    };
    actions::execute(&step.action, rendered, &env).await
}

fn stdout(outcome: &Outcome) -> String {
    outcome.stdout.as_ref().expect("stdout captured").text()
}

/// YAML-quotes a path for a rule file.
fn quoted(path: &Path) -> String {
    serde_json::to_string(&path.display().to_string()).unwrap()
}

#[tokio::test]
async fn hostile_payload_text_reaches_argv_verbatim_and_executes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("pwned");
    let m = marker.display();
    let hostile = format!(
        "$(touch {m}) `touch {m}` \"; touch {m}; echo '\n| touch {m} && touch {m} || touch {m}\n$HOME ${{PATH}} \\ * ?"
    );
    let outcome = run_step(
        r#"      - shell: { command: ["printf", "%s", "{{payload.text}}"] }"#,
        json!({ "text": hostile }),
    )
    .await;
    assert!(outcome.succeeded(), "{:?}", outcome.error);
    assert_eq!(stdout(&outcome), hostile);
    assert!(!marker.exists(), "the payload was executed");
    // The argv is in the request summary, as given.
    assert_eq!(outcome.request["argv"][2], Value::String(hostile));
}

/// Whether `pid` still runs (a zombie awaiting its reaper counts as gone).
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            // The state follows the parenthesised command name.
            let state = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.trim().chars().next());
            state != Some('Z')
        }
        Err(_) => false,
    }
}

#[tokio::test]
async fn a_timeout_kills_the_whole_process_group_grandchildren_included() {
    let started = Instant::now();
    let outcome = run_step(
        "      - shell:\n          script: 'sleep 30 & echo $!; wait'\n          timeout: 1s",
        json!({}),
    )
    .await;
    let took = started.elapsed();
    assert_eq!(outcome.fault, Some(Fault::Timeout));
    assert_eq!(outcome.status, None);
    assert!(
        outcome
            .error
            .as_deref()
            .unwrap()
            .contains("timed out after 1s")
    );
    assert!(took < Duration::from_secs(5), "took {took:?}");
    let grandchild: u32 = stdout(&outcome)
        .trim()
        .parse()
        .expect("the grandchild's pid");
    wait::blocking(
        &format!("grandchild {grandchild} to be gone after the timeout"),
        Duration::from_secs(10),
        || !alive(grandchild),
    );
}

#[tokio::test]
async fn stdout_over_64_kib_is_truncated_with_a_marker() {
    let outcome = run_step(
        "      - shell: { script: 'head -c 100000 /dev/zero | tr \"\\\\0\" a' }",
        json!({}),
    )
    .await;
    assert!(outcome.succeeded(), "{:?}", outcome.error);
    let text = stdout(&outcome);
    let cut = 100_000 - TEXT_LIMIT;
    let marker = format!("\n[… truncated {cut} bytes]");
    assert!(text.ends_with(&marker), "{}", &text[text.len() - 60..]);
    assert_eq!(text.len(), TEXT_LIMIT + marker.len());
    assert!(text[..TEXT_LIMIT].bytes().all(|b| b == b'a'));
}

#[tokio::test]
async fn big_stdout_and_stderr_together_do_not_deadlock() {
    let outcome = run_step(
        "      - shell:\n          script: 'head -c 3000000 /dev/zero >&2; head -c 3000000 /dev/zero; echo done >&2'\n          timeout: 20s",
        json!({}),
    )
    .await;
    assert!(outcome.succeeded(), "{:?}", outcome.error);
    assert_eq!(outcome.stdout.as_ref().unwrap().total(), 3_000_000);
    assert_eq!(outcome.stderr.as_ref().unwrap().total(), 3_000_005);
}

#[tokio::test]
async fn env_workdir_and_stdin_reach_the_command() {
    let dir = tempfile::tempdir().unwrap();
    let workdir = dir.path().canonicalize().unwrap();
    let action = format!(
        "      - shell:\n          script: 'printf \"%s|%s|\" \"$GREETING\" \"$(pwd)\"; cat'\n          env: {{ GREETING: \"hello {{{{payload.who}}}}\" }}\n          workdir: {}\n          stdin: \"{{{{payload.input}}}}\"",
        quoted(&workdir)
    );
    let outcome = run_step(&action, json!({"who": "world", "input": "line 1\nline 2"})).await;
    assert!(outcome.succeeded(), "{:?}", outcome.error);
    assert_eq!(
        stdout(&outcome),
        format!("hello world|{}|line 1\nline 2", workdir.display())
    );
    // The environment is added to, not replaced.
    let outcome = run_step(
        "      - shell: { script: 'test -n \"$PATH\" && echo \"$EXTRA\"', env: { EXTRA: x } }",
        json!({}),
    )
    .await;
    assert_eq!(stdout(&outcome), "x\n");
}

#[tokio::test]
async fn the_exit_code_is_the_status() {
    let outcome = run_step(
        "      - shell: { script: 'echo oops >&2; exit 3' }",
        json!({}),
    )
    .await;
    assert_eq!(outcome.status, Some(3));
    assert_eq!(outcome.fault, Some(Fault::Exit(3)));
    assert_eq!(outcome.stderr.as_ref().unwrap().text(), "oops\n");
    let outcome = run_step(r#"      - shell: { command: ["true"] }"#, json!({})).await;
    assert_eq!(outcome.status, Some(0));
    assert!(outcome.succeeded());
}

#[tokio::test]
async fn a_missing_program_is_a_final_error_naming_it() {
    let outcome = run_step(
        r#"      - shell: { command: ["/nonexistent/deploy.sh", "x"] }"#,
        json!({}),
    )
    .await;
    assert_eq!(outcome.fault, Some(Fault::Final));
    let error = outcome.error.unwrap();
    assert!(error.contains("/nonexistent/deploy.sh"), "{error}");
}
