//! Hot reload (SPEC §3): changes are live within a second, an invalid set
//! is rejected whole and shown by `/api/rules`, requests never fail or
//! stall during a reload, and each sees one whole set.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::app::{TestApp, spawn_app, spawn_app_with};
use crate::common::wait;

const SOURCES: &str = "sources:\n  hooks:\n    verify: { token: { header: X-T, value: t0ken } }\n";

fn rules(prefix: &str) -> String {
    format!(
        "rules:\n  - name: {prefix}-1\n    source: hooks\n    actions: [{{ http: {{ url: 'http://127.0.0.1:9/1' }} }}]\n  - name: {prefix}-2\n    source: hooks\n    actions: [{{ http: {{ url: 'http://127.0.0.1:9/2' }} }}]\n"
    )
}

async fn matched(app: &TestApp) -> Vec<String> {
    let resp = app.post("/hooks/hooks", &[("X-T", "t0ken")], "{}").await;
    assert_eq!(resp.status().as_u16(), 202);
    let v: Value = resp.json().await.expect("json");
    v["matched"]
        .as_array()
        .expect("matched")
        .iter()
        .filter_map(|m| m.as_str().map(String::from))
        .collect()
}

/// Polls until `check` holds; returns how long it took.
async fn within(limit: Duration, mut check: impl AsyncFnMut() -> bool) -> Duration {
    let started = Instant::now();
    while started.elapsed() < limit {
        if check().await {
            return started.elapsed();
        }
        tokio::time::sleep(wait::POLL).await;
    }
    panic!("not live within {limit:?}");
}

async fn api_rules(app: &TestApp) -> Value {
    app.client
        .get(app.admin_url("/api/rules"))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json")
}

#[tokio::test]
async fn a_new_file_is_live_within_a_second() {
    let app = spawn_app(&[("sources.yaml", SOURCES)]).await;
    assert!(matched(&app).await.is_empty());
    app.write_rule_file("new.yaml", &rules("new"));
    let took = within(Duration::from_secs(1), async || {
        matched(&app).await == ["new-1", "new-2"]
    })
    .await;
    eprintln!("live after {took:?}");
}

#[tokio::test]
async fn an_invalid_edit_keeps_the_old_set_and_a_fix_goes_live() {
    let app = spawn_app(&[("sources.yaml", SOURCES), ("r.yaml", &rules("old"))]).await;
    app.write_rule_file(
        "r.yaml",
        "rules:\n  - name: broken\n    source: hooks\n    evnt: push\n    actions: []\n",
    );
    within(Duration::from_secs(2), async || {
        api_rules(&app).await["reload"]["last_outcome"] == "error"
    })
    .await;
    let status = api_rules(&app).await;
    let errors = status["reload"]["errors"]
        .as_array()
        .expect("errors")
        .clone();
    assert!(
        errors.iter().any(|e| e
            .as_str()
            .is_some_and(|e| e.contains("r.yaml:4:5: unknown key `evnt`"))),
        "{errors:?}"
    );
    assert_eq!(
        matched(&app).await,
        ["old-1", "old-2"],
        "the running rules stay"
    );
    assert_eq!(status["rules"].as_array().map(Vec::len), Some(2));

    app.write_rule_file("r.yaml", &rules("fixed"));
    within(Duration::from_secs(1), async || {
        matched(&app).await == ["fixed-1", "fixed-2"]
    })
    .await;
    let status = api_rules(&app).await;
    assert_eq!(status["reload"]["last_outcome"], "ok");
    assert_eq!(status["reload"]["errors"], json!([]));
}

#[tokio::test]
async fn a_deleted_files_rules_stop_matching() {
    let app = spawn_app(&[
        ("sources.yaml", SOURCES),
        ("a.yaml", &rules("a")),
        ("b.yaml", &rules("b")),
    ])
    .await;
    assert_eq!(matched(&app).await.len(), 4);
    std::fs::remove_file(app.rules_dir.join("b.yaml")).expect("delete");
    within(Duration::from_secs(1), async || {
        matched(&app).await == ["a-1", "a-2"]
    })
    .await;
}

#[tokio::test]
async fn an_editors_atomic_rename_save_is_noticed() {
    let app = spawn_app(&[("sources.yaml", SOURCES), ("r.yaml", &rules("before"))]).await;
    // Write elsewhere in the directory (hidden, as editors do), then rename over.
    let tmp = app.rules_dir.join(".r.yaml.swp");
    std::fs::write(&tmp, rules("after")).expect("write temp");
    std::fs::rename(&tmp, app.rules_dir.join("r.yaml")).expect("rename");
    within(Duration::from_secs(1), async || {
        matched(&app).await == ["after-1", "after-2"]
    })
    .await;
}

#[tokio::test]
async fn a_configmap_style_symlink_swap_is_noticed() {
    use std::os::unix::fs::symlink;
    let app = spawn_app(&[("sources.yaml", SOURCES)]).await;
    let dir = &app.rules_dir;
    // Kubernetes: files are links into `..data`, itself a link to a
    // timestamped directory that is replaced by renaming a new link.
    std::fs::create_dir(dir.join("..v1")).expect("v1");
    std::fs::write(dir.join("..v1/rules.yaml"), rules("v1")).expect("v1 rules");
    symlink("..v1", dir.join("..data")).expect("..data");
    symlink("..data/rules.yaml", dir.join("rules.yaml")).expect("rules link");
    app.reloader.reload();
    assert_eq!(matched(&app).await, ["v1-1", "v1-2"]);

    std::fs::create_dir(dir.join("..v2")).expect("v2");
    std::fs::write(dir.join("..v2/rules.yaml"), rules("v2")).expect("v2 rules");
    symlink("..v2", dir.join("..data_tmp")).expect("tmp link");
    std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).expect("swap");
    within(Duration::from_secs(1), async || {
        matched(&app).await == ["v2-1", "v2-2"]
    })
    .await;
}

#[tokio::test]
async fn poll_mode_notices_changes() {
    let app = spawn_app_with(
        &[("sources.yaml", SOURCES), ("r.yaml", &rules("one"))],
        |s| s.poll = true,
    )
    .await;
    // No wait for the poller's first scan: `App::build` starts the watcher,
    // and notify's PollWatcher takes its snapshot inside `watch`.
    app.write_rule_file("r.yaml", &rules("two"));
    within(Duration::from_secs(2), async || {
        matched(&app).await == ["two-1", "two-2"]
    })
    .await;
}

#[tokio::test]
async fn post_reload_answers_with_the_outcome() {
    let app = spawn_app(&[("sources.yaml", SOURCES), ("r.yaml", &rules("x"))]).await;
    let resp = app
        .client
        .post(app.admin_url("/api/reload"))
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status().as_u16(), 200);
    let report: Value = resp.json().await.expect("json");
    assert_eq!(
        (report["ok"].clone(), report["rules"].clone()),
        (json!(true), json!(2))
    );
    app.write_rule_file("bad.yaml", "rules: [");
    let resp = app
        .client
        .post(app.admin_url("/api/reload"))
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status().as_u16(), 422);
    let report: Value = resp.json().await.expect("json");
    assert!(
        report["errors"][0]
            .as_str()
            .expect("error")
            .contains("bad.yaml:1:"),
        "{report}"
    );
    let listed = api_rules(&app).await;
    assert_eq!(listed["sources"][0]["name"], "hooks");
    assert_eq!(listed["sources"][0]["verify"], "token");
    assert!(
        !listed.to_string().contains("t0ken"),
        "no secret in /api/rules"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_never_fail_stall_or_see_a_mixed_set_during_100_reloads() {
    let app = spawn_app(&[("sources.yaml", SOURCES), ("r.yaml", &rules("a"))]).await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let client = {
        let (client, url, stop) = (app.client.clone(), app.url("/hooks/hooks"), stop.clone());
        tokio::spawn(async move {
            let (mut sent, mut slowest) = (0u32, Duration::ZERO);
            let mut seen = std::collections::BTreeSet::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let started = Instant::now();
                let resp = client
                    .post(&url)
                    .header("X-T", "t0ken")
                    .body("{}")
                    .send()
                    .await
                    .expect("no request fails");
                assert_eq!(resp.status().as_u16(), 202, "no request fails");
                let v: Value = resp.json().await.expect("json");
                slowest = slowest.max(started.elapsed());
                let m: Vec<&str> = v["matched"]
                    .as_array()
                    .expect("matched")
                    .iter()
                    .filter_map(Value::as_str)
                    .collect();
                assert!(
                    m == ["a-1", "a-2"] || m == ["b-1", "b-2"],
                    "a delivery saw a mixed set: {m:?}"
                );
                seen.insert(m[0].to_string());
                sent += 1;
            }
            (sent, slowest, seen)
        })
    };
    for i in 0..100 {
        let yaml = match i % 4 {
            0 => rules("b"),
            2 => rules("a"),
            _ => "rules:\n  - name: oops\n    source: nowhere\n".to_string(), // invalid: kept out
        };
        // Deployed atomically (temp file + rename), as a ConfigMap or a
        // careful deploy does: an in-place write can be caught half-done.
        let tmp = app.rules_dir.join(".r.yaml.new");
        std::fs::write(&tmp, &yaml).expect("write");
        std::fs::rename(&tmp, app.rules_dir.join("r.yaml")).expect("rename");
        // The pace of the rewrites (the scenario), not synchronisation.
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    // The client goes on until the watcher reloaded after the last rewrite.
    let last_write = chrono::Utc::now();
    wait::until(
        "a reload after the last rewrite",
        Duration::from_secs(10),
        || async {
            app.reloader
                .status()
                .last_reload_at
                .is_some_and(|at| at > last_write)
        },
    )
    .await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (sent, slowest, seen) = client.await.expect("client");
    assert!(sent > 100, "the client kept sending: {sent}");
    assert!(
        slowest < Duration::from_secs(1),
        "a request stalled for {slowest:?}"
    );
    eprintln!("{sent} deliveries during 100 rewrites; slowest {slowest:?}; sets seen {seen:?}");
}

/// `serve` without `--dev` refuses verifier secrets from public defaults at
/// start; a reload must not bring one in either.
#[tokio::test]
async fn a_reload_that_brings_a_defaulted_verifier_secret_is_refused_without_dev() {
    let app = spawn_app(&[("sources.yaml", SOURCES), ("r.yaml", &rules("kept"))]).await;
    app.reloader.refuse_defaulted_secrets(true);
    app.write_rule_file(
        "sources.yaml",
        "sources:\n  hooks:\n    verify: { token: { header: X-T, value: \"${HOOKFLOW_TEST_NEVER_SET:-public}\" } }\n",
    );
    let reloader = app.reloader.clone();
    let report = tokio::task::spawn_blocking(move || reloader.reload())
        .await
        .expect("join");
    assert!(!report.ok, "{report:?}");
    assert!(
        report
            .errors
            .iter()
            .any(|e| e.contains("HOOKFLOW_TEST_NEVER_SET") && e.contains("sources.yaml:")),
        "{report:?}"
    );
    assert_eq!(
        matched(&app).await,
        ["kept-1", "kept-2"],
        "the running rules stay"
    );
}
