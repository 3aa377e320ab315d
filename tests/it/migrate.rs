//! `hookflow migrate --from sqlite://… --to postgres://…` through the real
//! binary (SPEC §9): a run log made by a real server (engine, sink,
//! attempts, traces, audit trail) copied whole and read back on
//! PostgreSQL with `hookflow show`; a copy killed mid-batch resumed; a
//! foreign target refused; a tampered target caught. The target URL
//! carries a password (PostgreSQL trusts it here) that no output may show.

use std::sync::Arc;
use std::time::Duration;

use hookflow::store::{
    ActionKind, Actor, OperatorAction, PostgresStore, RunStatus, SqliteOptions, SqliteStore, Store,
};
use serde_json::{Value, json};

use crate::common::app::spawn_app_with_engine;
use crate::common::cli::{Ran, hookflow};
use crate::common::sink::{Reply, Sink};
use crate::common::stores::{PgSchema, postgres_schema};
use crate::common::wait;
use crate::store_contract::{MINUTE, T0, delivery, run_for};

const PASSWORD: &str = "migr4te-s3cret";

/// The schema's URL with a password in it.
fn with_password(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.split_once('@') {
            Some((user, host)) if !user.contains(':') => {
                format!("{scheme}://{user}:{PASSWORD}@{host}")
            }
            _ => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

fn migrate(from: &std::path::Path, to: &str, extra: &[&str]) -> Ran {
    let ran = hookflow(["migrate", "--from"])
        .arg(format!("sqlite://{}", from.display()))
        .args(["--to", to])
        .args(extra)
        .run();
    assert!(
        !ran.stdout.contains(PASSWORD) && !ran.stderr.contains(PASSWORD),
        "the password was printed:\n{}\n{}",
        ran.stdout,
        ran.stderr
    );
    ran
}

/// A SQLite file holding `n` deliveries (every third with a dedupe key),
/// one run each.
async fn bulk_source(dir: &std::path::Path, n: usize) -> std::path::PathBuf {
    let path = dir.join("source.db");
    let store = SqliteStore::open(&path, SqliteOptions::default())
        .await
        .expect("open source");
    for i in 0..n {
        let key = (i % 3 == 0).then(|| format!("key-{i}"));
        let d = delivery("github", key.as_deref(), T0 + i as i64);
        let run = run_for(&d, "deploy", None);
        store.accept(d, vec![run], MINUTE).await.expect("accept");
    }
    path
}

async fn pg_count(schema: &PgSchema, table: &str) -> i64 {
    let (client, connection) = tokio_postgres::connect(&schema.url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(connection);
    client
        .query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .await
        .expect("count")
        .get(0)
}

/// One table's line of the comparison: (source rows, target rows, ok).
fn check_line(stdout: &str, table: &str) -> (u64, u64, String) {
    let line = stdout
        .lines()
        .find(|l| l.split_whitespace().next() == Some(table))
        .unwrap_or_else(|| panic!("no line for {table} in:\n{stdout}"));
    let cells: Vec<&str> = line.split_whitespace().collect();
    (
        cells[1].parse().expect("source rows"),
        cells[2].parse().expect("target rows"),
        cells[5].to_owned(),
    )
}

const RULES: &str = r#"
sources:
  gh:
    verify: { token: { header: X-Token, value: "tok-migrate" } }
rules:
  - name: build
    source: gh
    actions:
      - id: call
        http: { url: SINK/build, json: { n: "{{payload.n}}" } }
      - id: notify
        http: { url: SINK/notify, retry: { attempts: 2, backoff: 10ms } }
  # Excludes the delivery by event: its name is stored apart from the
  # trace (schema 0012) and must be copied back into it.
  - name: on-release
    source: gh
    event: release
    actions:
      - http: { url: SINK/release }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_served_run_log_moves_to_postgres_and_reads_the_same() {
    let Some(schema) = postgres_schema().await else {
        return;
    };
    let sink = Sink::start().await;
    sink.script("/notify", [Reply::status(500), Reply::status(200)]);
    let rules = RULES.replace("SINK", &sink.url);
    let app = spawn_app_with_engine(&[("gh.yaml", &rules)], |_| {}).await;
    let resp = app
        .post(
            "/hooks/gh",
            &[
                ("X-Token", "tok-migrate"),
                ("Content-Type", "application/json"),
            ],
            // Large enough to be stored compressed (schema 0011): the copy
            // must carry it as received.
            json!({"n": 7, "log": "step ok\n".repeat(300)})
                .to_string()
                .into_bytes(),
        )
        .await;
    assert_eq!(resp.status(), 202);
    let body: Value = resp.json().await.expect("json");
    let delivery_id = body["delivery"].as_str().expect("id").to_owned();
    let encoding: String = rusqlite::Connection::open(&app.db_path)
        .expect("inspect")
        .query_row(
            "SELECT body_encoding FROM deliveries WHERE id = ?1",
            [&delivery_id],
            |row| row.get(0),
        )
        .expect("its row");
    assert_eq!(encoding, "lz4", "the case this test is for");
    let run_id = app
        .store
        .runs_for_delivery(&delivery_id)
        .await
        .expect("runs")[0]
        .id
        .clone();
    wait::until("the run to succeed", Duration::from_secs(30), || async {
        app.store
            .get_run(&run_id)
            .await
            .ok()
            .flatten()
            .is_some_and(|r| r.status == RunStatus::Succeeded)
    })
    .await;
    app.store
        .record_operator_action(OperatorAction::new(
            ActionKind::Retry,
            Some(&run_id),
            &Actor::cli(),
            json!({"note": "migrated"}),
        ))
        .await
        .expect("audit");
    // More rows than one batch, some with dedupe keys.
    for i in 0..120 {
        let key = (i % 2 == 0).then(|| format!("k{i}"));
        let d = delivery("github", key.as_deref(), T0 + i);
        let run = run_for(&d, "deploy", None);
        app.store
            .accept(d, vec![run], MINUTE)
            .await
            .expect("accept");
    }
    let to = with_password(&schema.url);

    let ran = migrate(&app.db_path, &to, &["--batch", "50"]);
    ran.success();
    for (table, rows) in [
        ("deliveries", 121),
        ("runs", 121),
        ("attempts", 3),
        ("operator_actions", 1),
    ] {
        assert_eq!(
            check_line(&ran.stdout, table),
            (rows, rows, "ok".to_owned()),
            "{}",
            ran.stdout
        );
    }

    // The same records through the store API on both sides.
    let pg = PostgresStore::open(&schema.url).await.expect("open pg");
    let pg: Arc<dyn Store> = Arc::new(pg);
    let (a, b) = (
        app.store.get_delivery(&delivery_id).await.expect("get"),
        pg.get_delivery(&delivery_id).await.expect("get"),
    );
    assert_eq!(format!("{a:?}"), format!("{b:?}"));
    let copied = b.expect("the delivery on PostgreSQL");
    assert_eq!(
        copied.trace["excluded"],
        json!(["on-release"]),
        "the case this test is for: {}",
        copied.trace
    );
    let (a, b) = (
        app.store.get_run(&run_id).await.expect("run"),
        pg.get_run(&run_id).await.expect("run"),
    );
    assert_eq!(format!("{a:?}"), format!("{b:?}"));
    let (a, b) = (
        app.store.attempts_for_run(&run_id).await.expect("attempts"),
        pg.attempts_for_run(&run_id).await.expect("attempts"),
    );
    assert_eq!(a.len(), 3);
    assert_eq!(format!("{a:?}"), format!("{b:?}"));
    assert_eq!(
        pg.operator_actions(Some(&run_id), 10)
            .await
            .expect("audit")
            .len(),
        1
    );

    // `hookflow show` prints the same run from either database.
    let rules_dir = app.rules_dir.display().to_string();
    let show = |db: &str| {
        let ran = hookflow(["show", run_id.as_str(), "--rules", &rules_dir, "--db", db]).run();
        ran.success();
        ran.stdout
    };
    let from_sqlite = show(&format!("sqlite://{}", app.db_path.display()));
    assert!(from_sqlite.contains("notify"), "{from_sqlite}");
    assert_eq!(from_sqlite, show(&to));

    // The dedupe claims came along: a resend of a keyed delivery inside
    // its window is a duplicate on PostgreSQL too.
    let resend = delivery("github", Some("k4"), T0 + 4 + 1000);
    assert!(matches!(
        pg.accept(resend, Vec::new(), MINUTE).await.expect("accept"),
        hookflow::store::AcceptOutcome::Duplicate { .. }
    ));

    // Running it again copies nothing and still compares equal... until a
    // node writes to the new database.
    let again = migrate(&app.db_path, &to, &[]);
    again.success();
    assert!(
        again.stdout.contains("deliveries: 0 rows copied"),
        "{}",
        again.stdout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_killed_mid_batch_resumes_where_it_stopped() {
    let Some(schema) = postgres_schema().await else {
        return;
    };
    let dir = tempfile::tempdir().expect("dir");
    let source = bulk_source(dir.path(), 260).await;
    let to = with_password(&schema.url);

    // Two batches committed, the third dies inside its transaction.
    let ran = hookflow(["migrate", "--batch", "50", "--to", to.as_str(), "--from"])
        .arg(format!("sqlite://{}", source.display()))
        .env("HOOKFLOW_FAULTS", "migrate_batches=2")
        .run();
    assert_ne!(ran.code, 0, "{}", ran.stderr);
    assert!(!ran.stdout.contains(PASSWORD) && !ran.stderr.contains(PASSWORD));
    assert_eq!(pg_count(&schema, "deliveries").await, 100);
    assert_eq!(pg_count(&schema, "runs").await, 0);

    let ran = migrate(&source, &to, &["--batch", "50"]);
    ran.success();
    assert!(
        ran.stdout.contains("resumed an interrupted copy"),
        "{}",
        ran.stdout
    );
    assert!(
        ran.stdout.contains("deliveries: 160 rows copied"),
        "{}",
        ran.stdout
    );
    assert_eq!(
        check_line(&ran.stdout, "deliveries"),
        (260, 260, "ok".into())
    );
    assert_eq!(check_line(&ran.stdout, "runs"), (260, 260, "ok".into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_holding_another_run_log_is_refused() {
    let Some(schema) = postgres_schema().await else {
        return;
    };
    let pg = PostgresStore::open(&schema.url).await.expect("open pg");
    let theirs = delivery("github", None, T0);
    pg.accept(theirs, Vec::new(), MINUTE).await.expect("accept");
    let dir = tempfile::tempdir().expect("dir");
    let source = bulk_source(dir.path(), 5).await;

    let ran = migrate(&source, &with_password(&schema.url), &[]);
    ran.code(2);
    assert!(
        ran.stderr
            .contains("the target is not empty (deliveries holds 1 rows)"),
        "{}",
        ran.stderr
    );
    assert!(
        ran.stderr.contains(":***@"),
        "the URL is shown masked: {}",
        ran.stderr
    );
    assert_eq!(pg_count(&schema, "deliveries").await, 1);

    // Nor may one copy be resumed from another file.
    let other = tempfile::tempdir().expect("dir");
    let other_source = bulk_source(other.path(), 3).await;
    let fresh = postgres_schema().await.expect("second schema");
    migrate(&source, &fresh.url, &[]).success();
    let ran = migrate(&other_source, &fresh.url, &[]);
    ran.code(2);
    assert!(
        ran.stderr.contains("holds a copy from sqlite://"),
        "{}",
        ran.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_that_differs_fails_the_comparison() {
    let Some(schema) = postgres_schema().await else {
        return;
    };
    let dir = tempfile::tempdir().expect("dir");
    let source = bulk_source(dir.path(), 30).await;
    let to = with_password(&schema.url);
    migrate(&source, &to, &[]).success();
    migrate(&source, &to, &["--verify-only"]).success();

    // Same count, one id changed: only the hash tells.
    let (client, connection) = tokio_postgres::connect(&schema.url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(connection);
    client
        .execute(
            "UPDATE runs SET id = 'TAMPERED' WHERE id = (SELECT min(id) FROM runs)",
            &[],
        )
        .await
        .expect("tamper");
    let ran = migrate(&source, &to, &["--verify-only"]);
    ran.code(1);
    assert_eq!(
        check_line(&ran.stdout, "runs"),
        (30, 30, "DIFFERENT".into())
    );
    assert_eq!(check_line(&ran.stdout, "deliveries"), (30, 30, "ok".into()));
    assert!(ran.stderr.contains("differ in runs"), "{}", ran.stderr);
}
