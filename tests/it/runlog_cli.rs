//! The run-log commands through the real binary (`deliveries`, `runs`,
//! `show`, `retry`, `replay`, `explain DELIVERY_ID`, `diff`), against a
//! server that received real fixture payloads and ran them against a local
//! sink. The CLI reads and writes the server's SQLite file directly.

use std::time::Duration;

use hookflow::store::{RunRecord, RunStatus};
use serde_json::Value;

use crate::common::app::{TestApp, fixture, spawn_app_with_engine};
use crate::common::sink::{Reply, Sink};
use crate::common::{cli, wait};

const TOKEN: &str = "tok-runlog";

/// `SINK` is replaced by the sink's URL.
const RULES: &str = r#"
sources:
  gh:
    verify: { token: { header: X-Token, value: "tok-runlog" } }
    event: { header: X-GitHub-Event }
rules:
  - name: deploy-master
    source: gh
    event: push
    when: { path: $.ref, equals: refs/heads/master }
    actions:
      - id: build
        http: { url: SINK/build, json: { sha: "{{payload.after}}" } }
      - id: notify
        http: { url: SINK/notify, retry: { attempts: 1 }, json: { ref: "{{payload.ref}}" } }
  - name: release-tag
    source: gh
    event: push
    when: { path: $.ref, matches: '^refs/tags/' }
    actions:
      - http: { url: SINK/release }
"#;

// ------------------------------------------------------------- the scenario

/// A server that received three pushes: to master (its run fails at the
/// `notify` step), to a feature branch (matches nothing), and a ping.
struct Scenario {
    app: TestApp,
    /// `/notify` answers 500 until a test heals it.
    sink: Sink,
    master: String,
    feature: String,
    ping: String,
    failed_run: String,
}

async fn scenario() -> Scenario {
    let sink = Sink::start().await;
    sink.answer("/notify", Reply::body(500, r#"{"error":"down"}"#));
    let rules = RULES.replace("SINK", &sink.url);
    let app = spawn_app_with_engine(&[("gh.yaml", &rules)], |_| {}).await;

    let push = fixture("signatures/payloads/github-push.json");
    let mut feature_push: Value = serde_json::from_slice(&push).unwrap();
    feature_push["ref"] = "refs/heads/feature".into();
    let feature_push = serde_json::to_vec(&feature_push).unwrap();
    let ping = fixture("signatures/payloads/github-ping.json");

    let master = deliver(&app, "push", push).await;
    let failed_run = {
        let runs = app.store.runs_for_delivery(&master).await.unwrap();
        assert_eq!(runs.len(), 1, "{runs:?}");
        runs[0].id.clone()
    };
    wait_for_run(&app, &failed_run, RunStatus::Failed).await;
    let feature = deliver(&app, "push", feature_push).await;
    let ping = deliver(&app, "ping", ping).await;
    Scenario {
        app,
        sink,
        master,
        feature,
        ping,
        failed_run,
    }
}

/// POSTs a payload to the `gh` source; returns the delivery id.
async fn deliver(app: &TestApp, event: &str, body: Vec<u8>) -> String {
    let resp = app
        .post(
            "/hooks/gh",
            &[
                ("X-Token", TOKEN),
                ("X-GitHub-Event", event),
                ("Content-Type", "application/json"),
            ],
            body,
        )
        .await;
    assert_eq!(resp.status(), 202);
    let v: Value = resp.json().await.unwrap();
    v["delivery"].as_str().expect("delivery id").to_owned()
}

async fn wait_for_run(app: &TestApp, id: &str, status: RunStatus) -> RunRecord {
    let what = format!("run {id} to become {status:?}");
    wait::for_ok(&what, Duration::from_secs(20), || async {
        match app.store.get_run(id).await.unwrap() {
            Some(run) if run.status == status => Ok(run),
            other => Err(format!("{:?}", other.map(|r| r.status))),
        }
    })
    .await
}

/// Runs the binary on the app's database and rules, outside any checkout
/// (no hookflow.yaml, no HOOKFLOW_* variables). Returns (code, stdout,
/// stderr).
async fn hookflow(app: &TestApp, args: &[&str]) -> (i32, String, String) {
    let db = format!("sqlite://{}", app.db_path.display());
    let rules = app.rules_dir.display().to_string();
    let cwd = app.rules_dir.parent().unwrap().to_path_buf();
    let mut full: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    // `diff` takes --rules as the candidate set; the others the live rules.
    if args.first() != Some(&"diff") {
        full.extend(["--rules".into(), rules]);
    }
    full.extend(["--db".into(), db]);
    let ran = cli::hookflow(full).cwd(cwd).run_async().await;
    (ran.code, ran.stdout, ran.stderr)
}

// ----------------------------------------------------------------- the tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_and_runs_are_listed_as_tables_and_json() {
    let s = scenario().await;

    let (code, out, err) = hookflow(&s.app, &["deliveries"]).await;
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("ID "), "{out}");
    assert!(
        lines[0].contains("SOURCE") && lines[0].contains("MATCHED"),
        "{out}"
    );
    assert_eq!(lines.len(), 4, "{out}");
    // Newest first, columns aligned.
    assert!(lines[1].starts_with(&s.ping), "{out}");
    assert!(lines[3].starts_with(&s.master), "{out}");
    assert!(lines[3].contains("deploy-master"), "{out}");
    let col = lines[0].find("SOURCE").unwrap();
    assert!(
        lines.iter().skip(1).all(|l| l[col..].starts_with("gh ")),
        "{out}"
    );

    let (code, out, _) = hookflow(&s.app, &["deliveries", "--json", "--limit", "2"]).await;
    assert_eq!(code, 0);
    let list: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(list.as_array().unwrap().len(), 2);
    assert_eq!(list[1]["id"], s.feature.as_str());
    assert_eq!(list[1]["event"], "push");

    let (code, out, _) =
        hookflow(&s.app, &["deliveries", "--source", "nope", "--since", "1h"]).await;
    assert_eq!(code, 0);
    assert_eq!(out.trim(), "no deliveries");

    let (code, out, err) = hookflow(&s.app, &["runs", "--status", "failed"]).await;
    assert_eq!(code, 0, "{err}");
    let row = out.lines().nth(1).unwrap_or_default();
    assert!(row.starts_with(&s.failed_run), "{out}");
    assert!(
        row.contains("deploy-master") && row.contains("failed") && row.contains("2/2"),
        "{out}"
    );
    assert!(
        row.contains("500"),
        "the error says what the sink answered: {out}"
    );

    let (code, out, _) = hookflow(&s.app, &["runs", "--rule", "deploy-master", "--json"]).await;
    assert_eq!(code, 0);
    let runs: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(runs[0]["id"], s.failed_run.as_str());
    assert_eq!(runs[0]["status"], "failed");

    let (code, _, err) = hookflow(&s.app, &["runs", "--status", "broken"]).await;
    assert_ne!(code, 0);
    assert!(err.contains("not a run state"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn show_gives_a_delivery_with_its_trace_and_a_run_with_every_attempt() {
    let s = scenario().await;

    let (code, out, err) = hookflow(&s.app, &["show", &s.master]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with(&format!("delivery {}", s.master)), "{out}");
    assert!(out.contains("trace (as matched on arrival):"), "{out}");
    assert!(out.contains("MATCH  deploy-master"), "{out}");
    assert!(out.contains("miss   release-tag"), "{out}");
    assert!(
        out.contains("\n    \"ref\": \"refs/heads/master\",\n"),
        "the body, pretty-printed: {out}"
    );
    assert!(out.contains(&s.failed_run), "its runs: {out}");

    let (code, out, err) = hookflow(&s.app, &["show", &s.failed_run]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with(&format!("run {}", s.failed_run)), "{out}");
    assert!(out.contains("status    failed"), "{out}");
    assert!(
        out.contains("step build attempt 1  succeeded  status 200"),
        "{out}"
    );
    assert!(
        out.contains("step notify attempt 1  failed  status 500"),
        "{out}"
    );
    assert!(
        out.contains(&format!("POST {}/notify", s.sink.url)),
        "{out}"
    );

    let (code, out, _) = hookflow(&s.app, &["show", "--json", &s.failed_run]).await;
    assert_eq!(code, 0);
    let v: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["attempts"].as_array().unwrap().len(), 2);

    let (code, out, err) = hookflow(&s.app, &["show", "01ARZ3NDEKTSV4RRFFQ69G5FAV"]).await;
    assert_ne!(code, 0);
    assert!(out.is_empty());
    assert!(
        err.contains("there is no delivery or run with id 01ARZ3NDEKTSV4RRFFQ69G5FAV"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_run_retried_from_the_cli_resumes_at_its_failed_step() {
    let s = scenario().await;
    assert_eq!(
        (s.sink.seen("/build").len(), s.sink.seen("/notify").len()),
        (1, 1)
    );

    // Only a failed run can be retried.
    let (code, _, err) = hookflow(&s.app, &["retry", "01ARZ3NDEKTSV4RRFFQ69G5FAV"]).await;
    assert_ne!(code, 0);
    assert!(err.contains("there is no run with id"), "{err}");

    s.sink.answer("/notify", Reply::status(200));
    let (code, out, err) = hookflow(&s.app, &["retry", &s.failed_run]).await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&format!(
            "run {} (deploy-master) re-queued at step 2/2",
            s.failed_run
        )),
        "{out}"
    );

    let run = wait_for_run(&s.app, &s.failed_run, RunStatus::Succeeded).await;
    assert_eq!(run.error, None);
    // The build step is not run again; the notify step is.
    assert_eq!(
        (s.sink.seen("/build").len(), s.sink.seen("/notify").len()),
        (1, 2)
    );
    let attempts = s.app.store.attempts_for_run(&s.failed_run).await.unwrap();
    assert_eq!(attempts.len(), 3, "{attempts:?}");

    let (code, _, err) = hookflow(&s.app, &["retry", &s.failed_run]).await;
    assert_ne!(code, 0);
    assert!(
        err.contains("is succeeded; only a failed run can be retried"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_queues_a_new_run_and_a_dry_run_queues_none() {
    let s = scenario().await;
    s.sink.answer("/notify", Reply::status(200));

    let (code, out, err) = hookflow(&s.app, &["replay", "--dry-run", &s.master]).await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("would queue:") && out.contains("deploy-master"),
        "{out}"
    );
    assert_eq!(
        s.app
            .store
            .runs_for_delivery(&s.master)
            .await
            .unwrap()
            .len(),
        1
    );

    let (code, out, err) = hookflow(&s.app, &["replay", "--json", &s.master]).await;
    assert_eq!(code, 0, "{err}");
    let replay: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(replay["matched"], serde_json::json!(["deploy-master"]));
    let new_run = replay["runs"][0].as_str().expect("a run id").to_owned();
    assert_ne!(new_run, s.failed_run);
    // The server's poll loop picks up the run the CLI queued.
    wait_for_run(&s.app, &new_run, RunStatus::Succeeded).await;
    assert_eq!(
        s.app
            .store
            .runs_for_delivery(&s.master)
            .await
            .unwrap()
            .len(),
        2
    );
    assert_eq!(s.sink.seen("/build").len(), 2);

    let (code, out, _) = hookflow(&s.app, &["replay", &s.ping]).await;
    assert_eq!(code, 0);
    assert!(out.contains("matches no rule now"), "{out}");

    let (code, _, err) = hookflow(&s.app, &["replay", "01ARZ3NDEKTSV4RRFFQ69G5FAV"]).await;
    assert_ne!(code, 0);
    assert!(err.contains("there is no delivery with id"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_of_a_stored_miss_shows_the_failing_condition_and_the_value() {
    let s = scenario().await;
    let (code, out, err) = hookflow(&s.app, &["explain", &s.feature]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("as matched on arrival:"), "{out}");
    assert!(out.contains("with the current rules in"), "{out}");
    assert!(out.contains("miss   deploy-master"), "{out}");
    assert!(out.contains("$.ref"), "{out}");
    assert!(out.contains("saw \"refs/heads/feature\""), "{out}");

    let (code, out, _) = hookflow(&s.app, &["explain", "--json", &s.feature]).await;
    assert_eq!(code, 0);
    let v: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["recorded"]["rules"][0]["matched"], false);
    assert_eq!(v["now"]["trace"]["rules"][0]["rule"], "deploy-master");

    let (code, _, err) = hookflow(&s.app, &["explain", "no-such-file-or-delivery"]).await;
    assert_ne!(code, 0);
    assert!(
        err.contains("neither a payload file nor a delivery"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_excluded_by_event_are_stored_by_name_and_explained_from_their_event_filter() {
    let s = scenario().await;
    // SPEC §4: the ping's trace names the two push rules, nothing more.
    let stored = s.app.store.get_delivery(&s.ping).await.unwrap().unwrap();
    assert_eq!(
        stored.trace,
        serde_json::json!({
            "event": "ping",
            "rules": [],
            "excluded": ["deploy-master", "release-tag"],
        })
    );
    // A push stores its rules in full (both admit push).
    let master = s.app.store.get_delivery(&s.master).await.unwrap().unwrap();
    assert_eq!(master.trace["rules"][1]["rule"], "release-tag");
    assert_eq!(master.trace["rules"][1]["miss"]["reason"], "condition");
    assert!(master.trace.get("excluded").is_none(), "{}", master.trace);

    // `explain` and `show` say why, from the stored event and each rule's `event:`.
    let (code, out, err) = hookflow(&s.app, &["explain", &s.ping]).await;
    assert_eq!(code, 0, "{err}");
    let (recorded, now) = out
        .split_once("with the current rules in")
        .expect("two sections");
    for rule in ["deploy-master", "release-tag"] {
        assert!(
            recorded.contains(&format!(
                "miss   {rule}\n         event ping is not one of: push"
            )),
            "{out}"
        );
    }
    assert!(now.contains("miss   release-tag"), "{out}");
    let (code, out, err) = hookflow(&s.app, &["explain", "--json", &s.ping]).await;
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["recorded"]["rules"][1]["rule"], "release-tag");
    assert_eq!(v["recorded"]["rules"][1]["miss"]["reason"], "event");
    assert_eq!(
        v["recorded"]["rules"][1]["miss"]["expected"],
        serde_json::json!(["push"])
    );
    let (code, out, err) = hookflow(&s.app, &["show", &s.ping]).await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("miss   deploy-master\n         event ping is not one of: push"),
        "{out}"
    );

    // Against rules changed since: a rule gone, or now admitting the event,
    // is still explained (its filter excluded the event then), in the new
    // rules' load order.
    let changed = s.app.rules_dir.parent().unwrap().join("changed");
    std::fs::create_dir_all(&changed).unwrap();
    let rules = RULES
        .replace("SINK", &s.sink.url)
        .replace(
            "  - name: deploy-master\n    source: gh\n    event: push\n",
            "  - name: deploy-now\n    source: gh\n    event: push\n",
        )
        .replace(
            "  - name: release-tag\n    source: gh\n    event: push\n",
            "  - name: release-tag\n    source: gh\n    event: [push, ping]\n",
        );
    assert!(
        rules.contains("[push, ping]") && rules.contains("deploy-now"),
        "{rules}"
    );
    std::fs::write(changed.join("gh.yaml"), rules).unwrap();
    let ran = cli::hookflow([
        "explain".to_string(),
        "--json".into(),
        s.ping.clone(),
        "--rules".into(),
        changed.display().to_string(),
        "--db".into(),
        format!("sqlite://{}", s.app.db_path.display()),
    ])
    .cwd(changed.parent().unwrap())
    .run_async()
    .await;
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let v: Value = serde_json::from_str(&ran.stdout).expect("json");
    let recorded = &v["recorded"]["rules"];
    assert_eq!(recorded[0]["rule"], "release-tag", "{v}");
    assert_eq!(recorded[0]["miss"]["reason"], "event_then");
    assert_eq!(recorded[1]["rule"], "deploy-master", "gone: last");
    assert_eq!(recorded[1]["miss"]["reason"], "event_then");
    assert_eq!(recorded[1]["miss"]["event"], "ping");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diff_reports_deliveries_that_would_newly_match_or_stop_matching() {
    let s = scenario().await;
    let candidate = s.app.rules_dir.parent().unwrap().join("candidate");
    std::fs::create_dir_all(&candidate).unwrap();
    let rules = RULES
        .replace("SINK", &s.sink.url)
        .replace("equals: refs/heads/master", "equals: refs/heads/feature");
    std::fs::write(candidate.join("gh.yaml"), rules).unwrap();
    let base = s.app.rules_dir.display().to_string();
    let candidate = candidate.display().to_string();

    let (code, out, err) = hookflow(
        &s.app,
        &[
            "diff", "--since", "1h", "--rules", &candidate, "--base", &base,
        ],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let summary = out.lines().next().unwrap_or_default();
    assert!(
        summary.starts_with("3 deliveries since 1h compared"),
        "{out}"
    );
    assert!(
        summary.contains("2 would change (1 newly match, 1 stop matching, 0 render differently)"),
        "{out}"
    );
    assert!(
        out.contains(&format!("{}  gh push  +deploy-master", s.feature)),
        "{out}"
    );
    assert!(
        out.contains(&format!("{}  gh push  -deploy-master", s.master)),
        "{out}"
    );
    assert!(!out.contains(&s.ping), "{out}");

    let (code, out, _) = hookflow(
        &s.app,
        &["diff", "--json", "--rules", &candidate, "--base", &base],
    )
    .await;
    assert_eq!(code, 0);
    let v: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["compared"], 3);
    assert_eq!(v["changed"], 2);

    // The same rules: nothing changes.
    let (code, out, _) = hookflow(&s.app, &["diff", "--rules", &base, "--base", &base]).await;
    assert_eq!(code, 0);
    assert!(out.contains("0 would change"), "{out}");
}

/// `hookflow backup FILE` while deliveries keep arriving: the copy is one
/// consistent file that passes `integrity_check` and holds everything
/// acknowledged before the backup began.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_copies_a_live_run_log_consistently() {
    let Scenario { app, .. } = scenario().await;
    let acked_before = app
        .store
        .list_deliveries(Default::default())
        .await
        .unwrap()
        .len();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sent = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let flood = {
        let (stop, sent) = (stop.clone(), sent.clone());
        let (client, url) = (app.client.clone(), app.url("/hooks/gh"));
        tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let answer = client
                    .post(&url)
                    .header("X-Token", TOKEN)
                    .header("X-GitHub-Event", "ping")
                    .body(format!("{{\"zen\":\"{n}\"}}"))
                    .send()
                    .await
                    .expect("the server answers");
                assert_eq!(answer.status(), 202);
                n += 1;
                sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            n
        })
    };
    // The backup starts while deliveries are being written.
    wait::until(
        "the flood to be under way",
        Duration::from_secs(20),
        || async { sent.load(std::sync::atomic::Ordering::Relaxed) >= 10 },
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("copy.db");
    let (code, out, err) = hookflow(&app, &["backup", copy.to_str().unwrap()]).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let sent_during = flood.await.unwrap();
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("integrity_check ok"), "{out}");
    assert!(sent_during > 0, "deliveries arrived during the backup");
    let conn = rusqlite::Connection::open(&copy).unwrap();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "delete", "a single self-contained file");
    let copied: i64 = conn
        .query_row("SELECT COUNT(*) FROM deliveries", [], |r| r.get(0))
        .unwrap();
    assert!(copied as usize >= acked_before, "{copied} < {acked_before}");
    assert!(!copy.with_extension("db-wal").exists());
    // A second backup to the same path is refused, not overwritten.
    let (code, _, err) = hookflow(&app, &["backup", copy.to_str().unwrap()]).await;
    assert_ne!(code, 0);
    assert!(err.contains("exists"), "{err}");
}

/// A template change shows as the fields it changes, before → after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diff_names_each_rendered_field_that_changes() {
    let s = scenario().await;
    let candidate = s.app.rules_dir.parent().unwrap().join("candidate-render");
    std::fs::create_dir_all(&candidate).unwrap();
    let rules = RULES
        .replace("SINK", &s.sink.url)
        .replace("sha: \"{{payload.after}}\"", "sha: \"{{payload.ref}}\"");
    std::fs::write(candidate.join("gh.yaml"), rules).unwrap();
    let base = s.app.rules_dir.display().to_string();
    let candidate = candidate.display().to_string();
    let (code, out, err) =
        hookflow(&s.app, &["diff", "--rules", &candidate, "--base", &base]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("1 render differently"), "{out}");
    assert!(
        out.contains(&format!("{}  gh push  ~deploy-master", s.master)),
        "{out}"
    );
    let push: Value =
        serde_json::from_slice(&fixture("signatures/payloads/github-push.json")).unwrap();
    let after = push["after"].as_str().unwrap();
    assert!(
        out.contains(&format!(
            "deploy-master.build.json.sha: \"{after}\" → \"refs/heads/master\""
        )),
        "{out}"
    );
}
