//! Steering runs (SPEC §5), through a real `hookflow serve` child process
//! and its SQLite file: no stranded leases (a failed read after leasing, a
//! panicking worker, a step that panics every time) and cancel (a queued
//! run, a running shell step with a background child, a finished run).
//! Faults are injected with `HOOKFLOW_FAULTS` on the child only.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hookflow::store::{RunFilter, RunRecord, RunStatus, Store};

use crate::common::app::{Server, rules_dir, serve};
use crate::common::sink::{Reply, Sink};
use crate::common::wait;

const ARGS: [&str; 4] = ["--rules", "rules", "--db", "sqlite://hookflow.db"];

/// Opens the server's run log beside it (WAL: both may read and write).
async fn store_of(dir: &std::path::Path) -> Arc<dyn Store> {
    let url = format!("sqlite://{}", dir.join("hookflow.db").display());
    hookflow::store::open(&url).await.expect("open the run log")
}

/// POSTs `body` to source `source` with the token the rules expect.
async fn send(server: &Server, source: &str, body: &str) -> String {
    let resp = reqwest::Client::new()
        .post(server.url(&format!("/hooks/{source}")))
        .header("content-type", "application/json")
        .header("X-Token", "steering-token")
        .body(body.to_owned())
        .send()
        .await
        .expect("the server answers");
    assert_eq!(resp.status().as_u16(), 202, "accepted");
    let v: serde_json::Value = resp.json().await.expect("json");
    v["delivery"].as_str().expect("a delivery id").to_owned()
}

/// Waits (with a deadline) until the run of `rule` for `delivery` is
/// finished, and returns it.
async fn finished_run(
    store: &Arc<dyn Store>,
    server: &Server,
    delivery: &str,
    rule: &str,
    within: Duration,
) -> RunRecord {
    let what = format!("the run of {rule} to finish");
    wait::for_ok(&what, within, || async {
        let runs = store.runs_for_delivery(delivery).await.expect("runs");
        match runs.iter().find(|r| r.rule == rule) {
            Some(run) if run.status.is_finished() => Ok(run.clone()),
            _ => Err(format!("{runs:#?}\n{}", server.log_tail())),
        }
    })
    .await
}

const FAULT_RULES: &str = r#"
sources:
  s:
    verify: { token: { header: X-Token, value: steering-token } }
rules:
  - name: plain
    source: s
    actions:
      - shell: { command: ["true"] }
  - name: panics-once
    source: s
    actions:
      - id: once
        shell: { command: ["true"] }
  - name: panics-always
    source: s
    actions:
      - id: always
        shell: { command: ["true"] }
"#;

/// The lease's 60 s is far beyond these deadlines: the runs finish only
/// because their leases were given back, not because they expired.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_lease_is_stranded_by_a_failed_read_or_a_panicking_worker() {
    let dir = rules_dir(FAULT_RULES);
    let server = Server::start(serve(
        dir.path(),
        &ARGS,
        &[(
            "HOOKFLOW_FAULTS",
            "lease_read=2,panic:once=1,panic:always=always",
        )],
    ));
    let client = reqwest::Client::new();
    server.wait_ready(&client).await;
    let store = store_of(dir.path()).await;

    let delivery = send(&server, "s", "{}").await;
    let within = Duration::from_secs(20);

    // The first two reads after leasing failed; the runs were released
    // and leased again at once.
    let plain = finished_run(&store, &server, &delivery, "plain", within).await;
    assert_eq!(plain.status, RunStatus::Succeeded, "{plain:#?}");

    // Its worker panicked once: the run was taken again and finished, its
    // expired-lease count reset by the step it recorded.
    let once = finished_run(&store, &server, &delivery, "panics-once", within).await;
    assert_eq!(once.status, RunStatus::Succeeded, "{once:#?}");
    assert_eq!(once.lease_expiries, 0);

    // Every try panics: after three lost leases the run fails for good.
    let always = finished_run(&store, &server, &delivery, "panics-always", within).await;
    assert_eq!(always.status, RunStatus::Failed, "{always:#?}");
    let error = always.error.clone().unwrap_or_default();
    assert!(error.starts_with("worker lost"), "{error}");
    assert_eq!(always.lease_expiries, 3);
    assert!(
        store
            .attempts_for_run(&always.id)
            .await
            .expect("attempts")
            .is_empty(),
        "no attempt of the panicking step was ever recorded"
    );

    // Nothing is left leased by anybody.
    let open = store
        .list_runs(RunFilter {
            status: Some(RunStatus::Running),
            ..RunFilter::default()
        })
        .await
        .expect("list");
    assert!(open.is_empty(), "{open:#?}");
    // The server is still serving: a later delivery runs normally.
    let later = send(&server, "s", "{}").await;
    let plain = finished_run(&store, &server, &later, "plain", within).await;
    assert_eq!(plain.status, RunStatus::Succeeded);
}

const CANCEL_RULES: &str = r#"
sources:
  s:
    verify: { token: { header: X-Token, value: steering-token } }
rules:
  - name: slow
    source: s
    when: { path: $.pidfile, exists: true }
    concurrency: 1
    actions:
      # The leader waits on a child started with `&`: cancelling must kill
      # the whole group, the child too.
      - id: long
        shell:
          script: 'sleep 300 & echo $! > "$PIDFILE"; wait'
          env: { PIDFILE: "{{payload.pidfile}}" }
          timeout: 10m
      - id: after
        shell: { command: ["touch", "{{payload.after}}"] }
  - name: quick
    source: s
    when: { path: $.quick, exists: true }
    actions:
      - shell: { command: ["true"] }
"#;

/// Whether process `pid` is gone (or a zombie nobody reaped yet).
fn process_gone(pid: &str) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        // "pid (comm) STATE …"
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_stops_a_running_shell_group_and_ends_queued_runs() {
    use crate::common::cli::hookflow;
    let dir = rules_dir(CANCEL_RULES);
    let server = Server::start(serve(dir.path(), &ARGS, &[]));
    let client = reqwest::Client::new();
    server.wait_ready(&client).await;
    let store = store_of(dir.path()).await;
    let db = format!("sqlite://{}", dir.path().join("hookflow.db").display());
    let pidfile = dir.path().join("child.pid");
    let after = dir.path().join("after-ran");
    let body = serde_json::json!({
        "pidfile": pidfile.display().to_string(),
        "after": after.display().to_string(),
    })
    .to_string();

    // The first run takes the rule's only slot; the second stays queued.
    let first = send(&server, "s", &body).await;
    let running =
        crate::common::wait::for_ok("the first run's child", Duration::from_secs(20), || {
            let pidfile = pidfile.clone();
            let store = store.clone();
            let first = first.clone();
            async move {
                let pid = std::fs::read_to_string(&pidfile).map_err(|e| e.to_string())?;
                let pid = pid.trim().to_owned();
                if pid.is_empty() {
                    return Err("empty pid file".to_owned());
                }
                let runs = store
                    .runs_for_delivery(&first)
                    .await
                    .map_err(|e| e.to_string())?;
                let run = runs.into_iter().next().ok_or("no run")?;
                Ok::<_, String>((run, pid))
            }
        })
        .await;
    let (run, child_pid) = running;
    assert_eq!(run.status, RunStatus::Running);
    let second = send(&server, "s", &body).await;
    let queued = store.runs_for_delivery(&second).await.expect("runs")[0].clone();
    assert_eq!(queued.status, RunStatus::Queued);

    // A queued run: cancelled at once.
    let ran = hookflow(["cancel", "--db", &db, &queued.id])
        .run_async()
        .await;
    ran.success();
    assert!(ran.stdout.contains("cancelled"), "{}", ran.all());
    let queued = store.get_run(&queued.id).await.expect("get").expect("run");
    assert_eq!(queued.status, RunStatus::Cancelled);
    assert_eq!(queued.error.as_deref(), Some("cancelled by operator"));

    // The running one, through the run log (as from another node): its
    // worker sees the mark at its heartbeat and kills the step's group.
    let ran = hookflow(["cancel", "--db", &db, &run.id]).run_async().await;
    ran.success();
    assert!(ran.stdout.contains("cancel requested"), "{}", ran.all());
    let cancelled = finished_run(&store, &server, &first, "slow", Duration::from_secs(10)).await;
    assert_eq!(cancelled.status, RunStatus::Cancelled, "{cancelled:#?}");
    assert_eq!(cancelled.error.as_deref(), Some("cancelled by operator"));
    let attempts = store
        .attempts_for_run(&cancelled.id)
        .await
        .expect("attempts");
    assert_eq!(attempts.len(), 1, "{attempts:#?}");
    assert_eq!(attempts[0].step_id, "long");
    assert_eq!(
        attempts[0].outcome,
        hookflow::store::AttemptOutcome::Cancelled
    );
    assert_eq!(attempts[0].error.as_deref(), Some("cancelled by operator"));
    crate::common::wait::until(
        "the background child killed",
        Duration::from_secs(10),
        || {
            let gone = process_gone(&child_pid);
            async move { gone }
        },
    )
    .await;
    assert!(!after.exists(), "nothing after the cancelled step runs");

    // Twice is harmless; a finished run or an unknown id is an error.
    let ran = hookflow(["cancel", "--db", &db, &run.id]).run_async().await;
    ran.success();
    assert!(ran.stdout.contains("already cancelled"), "{}", ran.all());
    let ran = hookflow(["cancel", "--db", &db, "01NOSUCHRUN"])
        .run_async()
        .await;
    ran.code(1);
    assert!(
        ran.stderr.contains("no run with id 01NOSUCHRUN"),
        "{}",
        ran.all()
    );
    let quick = send(&server, "s", r#"{"quick": true}"#).await;
    let done = finished_run(&store, &server, &quick, "quick", Duration::from_secs(10)).await;
    assert_eq!(done.status, RunStatus::Succeeded);
    let ran = hookflow(["cancel", "--db", &db, &done.id])
        .run_async()
        .await;
    ran.code(1);
    assert!(ran.stderr.contains("has succeeded"), "{}", ran.all());
}

const STATE_RULES: &str = r#"
sources:
  s:
    verify: { token: { header: X-Token, value: steering-token } }
rules:
  - name: flaky
    source: s
    when: { path: $.flaky, exists: true }
    actions:
      - id: try
        shell:
          script: 'exit 3'
          retry: { attempts: 2, backoff: 10ms, max_backoff: 10ms }
  - name: patient
    source: s
    when: { path: $.url, exists: true }
    actions:
      - http:
          url: "{{payload.url}}"
          retry: { attempts: 3, backoff: 10ms }
"#;

/// An HTTP peer that answers every request 503 with `Retry-After: 3600`;
/// its URL (with a trailing `/`).
async fn unavailable_peer() -> String {
    let peer = Sink::start().await;
    peer.answer(
        "/*",
        Reply::body(503, "later").header("retry-after", "3600"),
    );
    format!("{}/", peer.url)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_run_reads_as_waiting_and_a_manual_retry_numbers_on() {
    use crate::common::cli::hookflow;
    let dir = rules_dir(STATE_RULES);
    let server = Server::start(serve(dir.path(), &ARGS, &[]));
    let client = reqwest::Client::new();
    server.wait_ready(&client).await;
    let store = store_of(dir.path()).await;
    let db = format!("sqlite://{}", dir.path().join("hookflow.db").display());

    // Waiting for a retry an hour away: `waiting`, and listed as such.
    let peer = unavailable_peer().await;
    let patient = send(
        &server,
        "s",
        &serde_json::json!({ "url": peer }).to_string(),
    )
    .await;
    let waiting = crate::common::wait::for_ok("a waiting run", Duration::from_secs(20), || {
        let store = store.clone();
        let patient = patient.clone();
        async move {
            let run = store
                .runs_for_delivery(&patient)
                .await
                .map_err(|e| e.to_string())?;
            let run = run.into_iter().next().ok_or("no run")?;
            let now = chrono::Utc::now().timestamp_millis();
            match run.state(now) {
                hookflow::store::RunState::Waiting => Ok(run),
                other => Err(format!("{other:?}")),
            }
        }
    })
    .await;
    assert_eq!(waiting.status, RunStatus::Running);
    let due = waiting.next_attempt_at.expect("a next attempt time");
    assert!(
        due > chrono::Utc::now().timestamp_millis() + 3_000_000,
        "{due}"
    );
    let listed = store
        .list_runs(RunFilter {
            waiting_at: Some(chrono::Utc::now().timestamp_millis()),
            ..RunFilter::default()
        })
        .await
        .expect("list");
    assert_eq!(
        listed.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        [waiting.id.as_str()]
    );

    // `runs` shows it waiting, with when, and filters on it.
    let listed = hookflow([
        "runs", "--db", &db, "--rules", "rules", "--status", "waiting",
    ])
    .cwd(dir.path())
    .run_async()
    .await;
    listed.success();
    assert!(listed.stdout.contains(&waiting.id), "{}", listed.all());
    assert!(listed.stdout.contains("waiting until"), "{}", listed.all());

    // Two attempts, failed; retried by hand: attempts 3 and 4 (a fresh
    // budget of two), not 1 and 2 again.
    let flaky = send(&server, "s", r#"{"flaky": true}"#).await;
    let failed = finished_run(&store, &server, &flaky, "flaky", Duration::from_secs(20)).await;
    assert_eq!(failed.status, RunStatus::Failed);
    hookflow(["retry", "--db", &db, &failed.id])
        .run_async()
        .await
        .success();
    crate::common::wait::until(
        "the retried run to fail again",
        Duration::from_secs(20),
        || {
            let store = store.clone();
            let id = failed.id.clone();
            async move {
                let attempts = store.attempts_for_run(&id).await.unwrap_or_default();
                let run = store.get_run(&id).await.ok().flatten();
                attempts.len() == 4 && run.is_some_and(|r| r.status == RunStatus::Failed)
            }
        },
    )
    .await;
    let attempts = store.attempts_for_run(&failed.id).await.expect("attempts");
    let numbers: Vec<u32> = attempts.iter().map(|a| a.attempt).collect();
    assert_eq!(numbers, [1, 2, 3, 4]);
    let run = store.get_run(&failed.id).await.expect("get").expect("run");
    let error = run.error.unwrap_or_default();
    assert!(error.contains("after 2 attempts"), "{error}");
}

const API_RULES: &str = r#"
sources:
  s:
    verify: { token: { header: X-Token, value: steering-token } }
rules:
  - name: slow
    source: s
    when: { path: $.slow, exists: true }
    actions:
      - id: long
        shell: { command: ["sleep", "300"], timeout: 10m }
  - name: quick
    source: s
    when: { path: $.quick, exists: true }
    actions:
      - shell: { command: ["sh", "-c", "exit 1"] }
"#;

/// The in-process server: a cancel through the API stops a run its own
/// worker holds at once; the audit trail names the API caller and the CLI.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_and_retry_through_the_api_are_audited_with_who_and_from_where() {
    use crate::common::app::spawn_app_with_engine;
    use crate::common::cli::hookflow;
    let app = spawn_app_with_engine(&[("r.yaml", API_RULES)], |_| {}).await;
    let post = |body: &'static str| {
        app.post(
            "/hooks/s",
            &[
                ("X-Token", "steering-token"),
                ("content-type", "application/json"),
            ],
            body,
        )
    };
    let accepted: serde_json::Value = post(r#"{"slow": 1}"#).await.json().await.expect("json");
    let delivery = accepted["delivery"].as_str().expect("id").to_owned();
    let run = crate::common::wait::for_ok("the slow run running", Duration::from_secs(20), || {
        let store = app.store.clone();
        let delivery = delivery.clone();
        async move {
            let runs = store
                .runs_for_delivery(&delivery)
                .await
                .map_err(|e| e.to_string())?;
            let run = runs.into_iter().next().ok_or("no run")?;
            if run.status == RunStatus::Running && run.lease_owner.is_some() {
                Ok(run)
            } else {
                Err(format!("{:?}", run.status))
            }
        }
    })
    .await;

    let cancel_url = app.admin_url(&format!("/api/runs/{}/cancel", run.id));
    let started = Instant::now();
    let resp = app.client.post(&cancel_url).send().await.expect("cancel");
    assert_eq!(resp.status().as_u16(), 200);
    let body: serde_json::Value = resp.json().await.expect("json");
    assert_eq!(body["outcome"], "requested", "{body}");
    crate::common::wait::until("the run cancelled", Duration::from_secs(10), || {
        let store = app.store.clone();
        let id = run.id.clone();
        async move {
            store
                .get_run(&id)
                .await
                .ok()
                .flatten()
                .is_some_and(|r| r.status == RunStatus::Cancelled)
        }
    })
    .await;
    // Held by this server's own worker: stopped at once, not at a heartbeat.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );

    // Twice: harmless.
    let again: serde_json::Value = app
        .client
        .post(&cancel_url)
        .send()
        .await
        .expect("cancel")
        .json()
        .await
        .expect("json");
    assert_eq!(again["outcome"], "already_cancelled");
    assert_eq!(again["run"]["state"], "cancelled");

    // A finished run: 409. Then retried through the CLI.
    let accepted: serde_json::Value = post(r#"{"quick": 1}"#).await.json().await.expect("json");
    let quick = accepted["delivery"].as_str().expect("id").to_owned();
    let failed =
        crate::common::wait::for_ok("the quick run failed", Duration::from_secs(20), || {
            let store = app.store.clone();
            let quick = quick.clone();
            async move {
                let runs = store
                    .runs_for_delivery(&quick)
                    .await
                    .map_err(|e| e.to_string())?;
                let run = runs.into_iter().next().ok_or("no run")?;
                if run.status == RunStatus::Failed {
                    Ok(run)
                } else {
                    Err(format!("{:?}", run.status))
                }
            }
        })
        .await;
    let resp = app
        .client
        .post(app.admin_url(&format!("/api/runs/{}/cancel", failed.id)))
        .send()
        .await
        .expect("cancel");
    assert_eq!(resp.status().as_u16(), 409);
    let unknown = app
        .client
        .post(app.admin_url("/api/runs/01NOSUCHRUN/cancel"))
        .send()
        .await
        .expect("cancel");
    assert_eq!(unknown.status().as_u16(), 404);
    let db = format!("sqlite://{}", app.db_path.display());
    let rules = app.rules_dir.display().to_string();
    hookflow(["retry", "--db", &db, "--rules", &rules, &failed.id])
        .run_async()
        .await
        .success();

    // The trail: in the API's run detail, with the caller's address…
    let detail: serde_json::Value = app
        .client
        .get(app.admin_url(&format!("/api/runs/{}", run.id)))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    let trail = detail["operator_actions"].as_array().expect("a trail");
    assert_eq!(trail.len(), 1, "twice is recorded once: {trail:?}");
    assert_eq!(trail[0]["action"], "cancel");
    assert_eq!(trail[0]["via"], "api");
    assert!(
        trail[0]["client"]
            .as_str()
            .is_some_and(|c| c.starts_with("127.0.0.1:")),
        "{trail:?}"
    );
    assert!(trail[0]["at"].as_i64().is_some_and(|at| at > 0));
    // …and in `show`, by the CLI.
    let shown = hookflow(["show", "--db", &db, "--rules", &rules, &failed.id])
        .run_async()
        .await;
    shown.success();
    assert!(
        shown.stdout.contains("operator actions:"),
        "{}",
        shown.stdout
    );
    assert!(shown.stdout.contains("retry   by cli"), "{}", shown.stdout);
    let all: serde_json::Value = app
        .client
        .get(app.admin_url("/api/operator-actions"))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    let actions: Vec<&str> = all
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|a| a["action"].as_str())
        .collect();
    assert_eq!(actions, ["retry", "cancel"], "newest first");
}

const BULK_RULES: &str = r#"
sources:
  s:
    verify: { token: { header: X-Token, value: steering-token } }
rules:
  - name: broken
    source: s
    actions:
      - shell: { command: ["sh", "-c", "exit 1"] }
"#;

/// Retry and replay by filter, through the CLI and the API: a dry run
/// (the API's default) lists and changes nothing; a real one queues.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_and_replay_by_filter_with_dry_runs() {
    use crate::common::app::spawn_app_with_engine;
    use crate::common::cli::hookflow;
    let app = spawn_app_with_engine(&[("r.yaml", BULK_RULES)], |_| {}).await;
    let mut deliveries = Vec::new();
    for n in 0..3 {
        let resp = app
            .post(
                "/hooks/s",
                &[
                    ("X-Token", "steering-token"),
                    ("content-type", "application/json"),
                ],
                format!(r#"{{"n": {n}}}"#),
            )
            .await;
        let v: serde_json::Value = resp.json().await.expect("json");
        deliveries.push(v["delivery"].as_str().expect("id").to_owned());
    }
    let failed_runs = || {
        let store = app.store.clone();
        async move {
            store
                .list_runs(RunFilter {
                    status: Some(RunStatus::Failed),
                    ..RunFilter::default()
                })
                .await
                .unwrap_or_default()
        }
    };
    crate::common::wait::until("three failed runs", Duration::from_secs(20), || async {
        failed_runs().await.len() == 3
    })
    .await;
    let db = format!("sqlite://{}", app.db_path.display());
    let rules = app.rules_dir.display().to_string();

    // Dry: listed, nothing changes.
    let dry = hookflow([
        "retry",
        "--db",
        &db,
        "--rules",
        &rules,
        "--rule",
        "broken",
        "--status",
        "failed",
        "--since",
        "1h",
        "--dry-run",
    ])
    .run_async()
    .await;
    dry.success();
    assert!(
        dry.stdout.contains("would re-queue 3 failed run(s)"),
        "{}",
        dry.all()
    );
    let listed: serde_json::Value = app
        .client
        .post(app.admin_url("/api/runs/retry"))
        .json(&serde_json::json!({ "rule": "broken", "since": "1h" }))
        .send()
        .await
        .expect("post")
        .json()
        .await
        .expect("json");
    assert_eq!(listed["dry_run"], true, "dry unless told: {listed}");
    assert_eq!(listed["runs"].as_array().map(Vec::len), Some(3));
    assert_eq!(failed_runs().await.len(), 3);
    for run in failed_runs().await {
        let attempts = app.store.attempts_for_run(&run.id).await.expect("attempts");
        assert_eq!(attempts.len(), 1, "nothing ran again");
    }

    // Real: all three run again (and fail again: attempt 2 each).
    let done: serde_json::Value = app
        .client
        .post(app.admin_url("/api/runs/retry"))
        .json(&serde_json::json!({ "rule": "broken", "status": "failed", "dry_run": false }))
        .send()
        .await
        .expect("post")
        .json()
        .await
        .expect("json");
    assert_eq!(done["runs"].as_array().map(Vec::len), Some(3), "{done}");
    crate::common::wait::until("every run tried twice", Duration::from_secs(20), || async {
        let mut twice = 0;
        for run in failed_runs().await {
            let n = app
                .store
                .attempts_for_run(&run.id)
                .await
                .map_or(0, |a| a.len());
            twice += usize::from(n == 2);
        }
        twice == 3
    })
    .await;
    let bad = app
        .client
        .post(app.admin_url("/api/runs/retry"))
        .json(&serde_json::json!({ "status": "succeeded" }))
        .send()
        .await
        .expect("post");
    assert_eq!(bad.status().as_u16(), 400);

    // Replay by filter: dry through the CLI, real through the API.
    let dry = hookflow([
        "replay",
        "--db",
        &db,
        "--rules",
        &rules,
        "--source",
        "s",
        "--since",
        "1h",
        "--dry-run",
    ])
    .run_async()
    .await;
    dry.success();
    assert!(
        dry.stdout
            .contains("3 deliveries of s: would queue 3 run(s)"),
        "{}",
        dry.all()
    );
    for d in &deliveries {
        assert_eq!(app.store.runs_for_delivery(d).await.expect("runs").len(), 1);
    }
    let replayed: serde_json::Value = app
        .client
        .post(app.admin_url("/api/deliveries/replay"))
        .json(&serde_json::json!({ "source": "s", "since": "1h", "dry_run": false }))
        .send()
        .await
        .expect("post")
        .json()
        .await
        .expect("json");
    let order: Vec<&str> = replayed["deliveries"]
        .as_array()
        .expect("deliveries")
        .iter()
        .filter_map(|d| d["delivery"].as_str())
        .collect();
    assert_eq!(
        order,
        deliveries.iter().map(String::as_str).collect::<Vec<_>>(),
        "oldest first"
    );
    for d in &deliveries {
        assert_eq!(app.store.runs_for_delivery(d).await.expect("runs").len(), 2);
    }
}

const KEYED_RULES: &str = r#"
sources:
  s:
    verify: { token: { header: X-Token, value: steering-token } }
rules:
  - name: deploy
    source: s
    concurrency: { key: "{{payload.repo}}", limit: 1 }
    actions:
      # Runs until the test creates its file.
      - shell:
          script: 'while [ ! -f "$GO" ]; do sleep 0.02; done'
          env: { GO: "{{payload.go}}" }
          timeout: 2m
"#;

/// `concurrency: { key, limit: 1 }`: one run per repository at a time,
/// in arrival order, while another repository's run proceeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyed_concurrency_runs_one_per_key_in_order_while_other_keys_proceed() {
    use crate::common::app::spawn_app_with_engine;
    let app = spawn_app_with_engine(&[("r.yaml", KEYED_RULES)], |_| {}).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let go = |n: usize| dir.path().join(format!("go-{n}"));
    let mut runs = Vec::new();
    for (n, repo) in ["a", "a", "b"].into_iter().enumerate() {
        let body = serde_json::json!({ "repo": repo, "go": go(n).display().to_string() });
        let resp = app
            .post(
                "/hooks/s",
                &[
                    ("X-Token", "steering-token"),
                    ("content-type", "application/json"),
                ],
                body.to_string(),
            )
            .await;
        let v: serde_json::Value = resp.json().await.expect("json");
        let delivery = v["delivery"].as_str().expect("id").to_owned();
        let run = app.store.runs_for_delivery(&delivery).await.expect("runs")[0].clone();
        assert_eq!(run.concurrency_key.as_deref(), Some(repo));
        runs.push(run.id);
    }
    let status = |id: String| {
        let store = app.store.clone();
        async move { store.get_run(&id).await.ok().flatten().map(|r| r.status) }
    };
    crate::common::wait::until(
        "a's first run and b's run running",
        Duration::from_secs(20),
        || async {
            status(runs[0].clone()).await == Some(RunStatus::Running)
                && status(runs[2].clone()).await == Some(RunStatus::Running)
        },
    )
    .await;
    assert_eq!(
        status(runs[1].clone()).await,
        Some(RunStatus::Queued),
        "a's second waits"
    );

    std::fs::write(go(0), "").expect("go");
    crate::common::wait::until(
        "a's second run running",
        Duration::from_secs(20),
        || async {
            status(runs[0].clone()).await == Some(RunStatus::Succeeded)
                && status(runs[1].clone()).await == Some(RunStatus::Running)
        },
    )
    .await;
    std::fs::write(go(1), "").expect("go");
    std::fs::write(go(2), "").expect("go");
    crate::common::wait::until("every run done", Duration::from_secs(20), || async {
        let mut done = 0;
        for id in &runs {
            done += usize::from(status(id.clone()).await == Some(RunStatus::Succeeded));
        }
        done == 3
    })
    .await;
}
