//! The dashboard on a big run log (issue #15): seeds a SQLite run log with
//! 1,000,000 deliveries over 30 days (set `HOOKFLOW_BENCH_DELIVERIES` for
//! another count), ~60 % matched with a finished run and one attempt each,
//! 5 % rejected; starts the app as `serve` does (no workers) and times every
//! dashboard page over loopback: one warm-up, then `ROUNDS` requests each,
//! median and worst. Target: ≤ 200 ms a page. `cargo bench --bench ui_pages`.
//!
//! The rows are written with plain SQL in one transaction (the run log's
//! own schema, migrated by the store first): seeding through `accept` would
//! take minutes and measure ingest, not the pages.
//!
//! With `HOOKFLOW_BENCH_POSTGRES=postgres://…` the same rows are also
//! written to a fresh PostgreSQL schema (binary `COPY`, then `ANALYZE`, as
//! autovacuum would after a bulk load) and the same pages timed against it;
//! the schema is dropped at the end.

use std::time::{Duration, Instant};

use hookflow::app::App;
use hookflow::config::{SettingValue, Settings};

const ROUNDS: usize = 10;
const TARGET: Duration = Duration::from_millis(200);
const DAY_MS: i64 = 86_400_000;

const RULES: &str = r#"
sources:
  gh:
    verify:
      token: { header: X-Token, value: "tok-123" }
  shop:
    verify:
      token: { header: X-Token, value: "tok-456" }
rules:
  - name: notify
    source: gh
    actions:
      - http: { url: "http://127.0.0.1:9/notify" }
  - name: big
    source: shop
    when:
      - path: $.total
        gt: 100
    actions:
      - http: { url: "http://127.0.0.1:9/big" }
"#;

type BoxError = Box<dyn std::error::Error>;

fn main() -> Result<(), BoxError> {
    let count: i64 = std::env::var("HOOKFLOW_BENCH_DELIVERIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir()?;
    let rules_dir = dir.path().join("rules");
    std::fs::create_dir_all(&rules_dir)?;
    std::fs::write(rules_dir.join("rules.yaml"), RULES)?;
    let db = dir.path().join("hookflow.db");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let now = chrono::Utc::now().timestamp_millis();
    // The store creates and migrates the schema.
    let sqlite_url = format!("sqlite://{}", db.display());
    runtime.block_on(async { hookflow::store::open(&sqlite_url).await.map(drop) })?;
    let started = Instant::now();
    let (some_delivery, some_run) = seed(&db, count, now)?;
    eprintln!(
        "seeded {count} deliveries in SQLite in {:.1} s ({} MB)",
        started.elapsed().as_secs_f64(),
        std::fs::metadata(&db)?.len() / 1_000_000
    );
    println!("SQLite");
    runtime.block_on(time_pages(
        &sqlite_url,
        &rules_dir,
        &some_delivery,
        &some_run,
        count,
    ))?;
    std::fs::remove_file(&db)?;

    if let Ok(base) = std::env::var("HOOKFLOW_BENCH_POSTGRES") {
        runtime.block_on(async {
            let schema = format!("hf_bench_{}", ulid::Ulid::new().to_string().to_lowercase());
            let (client, connection) =
                tokio_postgres::connect(&base, tokio_postgres::NoTls).await?;
            tokio::spawn(connection);
            client
                .batch_execute(&format!("CREATE SCHEMA {schema}"))
                .await?;
            let sep = if base.contains('?') { '&' } else { '?' };
            let url = format!("{base}{sep}options=-csearch_path%3D{schema}");
            let outcome = async {
                hookflow::store::open(&url).await.map(drop)?;
                let started = Instant::now();
                seed_postgres(&url, count, now).await?;
                eprintln!(
                    "seeded {count} deliveries in PostgreSQL in {:.1} s",
                    started.elapsed().as_secs_f64()
                );
                println!("PostgreSQL");
                time_pages(&url, &rules_dir, &some_delivery, &some_run, count).await
            }
            .await;
            client
                .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
                .await?;
            outcome
        })?;
    }
    Ok(())
}

/// Starts the app on `database` (no workers) and times every page.
async fn time_pages(
    database: &str,
    rules_dir: &std::path::Path,
    some_delivery: &str,
    some_run: &str,
    count: i64,
) -> Result<(), BoxError> {
    let settings = Settings {
        listen: "127.0.0.1:0".parse()?,
        admin_listen: Some("127.0.0.1:0".parse()?),
        rules: rules_dir.to_owned(),
        database: SettingValue::parse(database)?,
        workers: 0,
        ..Settings::default()
    };
    let rules = hookflow::rules::load(rules_dir).map_err(|e| format!("{:?}", e.diagnostics))?;
    let app = App::build(settings, rules).await?;
    let admin = app.admin_addr.ok_or("no admin listener")?;
    let trigger = app.trigger();
    let running = tokio::spawn(app.run());
    let client = reqwest::Client::new();
    let pages = [
        "/ui/".to_owned(),
        "/ui/deliveries".to_owned(),
        "/ui/deliveries?source=shop".to_owned(),
        "/ui/deliveries?outcome=rejected".to_owned(),
        "/ui/deliveries?outcome=unmatched&since=24h".to_owned(),
        "/ui/deliveries?event=nothing-has-this".to_owned(),
        format!("/ui/deliveries?before={some_delivery}"),
        format!("/ui/deliveries/{some_delivery}"),
        "/ui/runs".to_owned(),
        "/ui/runs?status=failed".to_owned(),
        "/ui/runs?rule=big&status=succeeded".to_owned(),
        format!("/ui/runs/{some_run}"),
        "/ui/rules".to_owned(),
    ];
    println!("{:<48} {:>10} {:>10}", "page", "median ms", "worst ms");
    let mut over = 0;
    for page in &pages {
        let url = format!("http://{admin}{page}");
        let mut times = Vec::with_capacity(ROUNDS);
        for round in 0..=ROUNDS {
            let t = Instant::now();
            let response = client.get(&url).send().await?;
            let status = response.status();
            response.bytes().await?;
            if !status.is_success() {
                return Err(format!("{page}: {status}").into());
            }
            if round > 0 {
                times.push(t.elapsed());
            }
        }
        times.sort();
        let median = times[times.len() / 2];
        let worst = times[times.len() - 1];
        if median > TARGET {
            over += 1;
        }
        println!(
            "{page:<48} {:>10.1} {:>10.1}{}",
            median.as_secs_f64() * 1000.0,
            worst.as_secs_f64() * 1000.0,
            if median > TARGET { "  over target" } else { "" }
        );
    }
    trigger.trigger();
    let _ = running.await;
    println!(
        "{} of {} pages within {} ms (median) on {count} deliveries",
        pages.len() - over,
        pages.len(),
        TARGET.as_millis()
    );
    Ok(())
}

/// One seeded delivery, with its run and attempt when it matched.
struct Seed {
    id: String,
    source: &'static str,
    at: i64,
    rejected: bool,
    matched: bool,
    rule: &'static str,
    body: Vec<u8>,
    trace: String,
    run_id: String,
    attempt_id: String,
    failed: bool,
    took: i64,
}

const HEADERS: &str = r#"[["content-type","application/json"],["user-agent","bench/1.0"]]"#;
const DEFINITION: &str = r#"{"actions":[{"http":{"url":"http://127.0.0.1:9/x"}}]}"#;
const REQUEST: &str = r#"{"method":"POST","url":"http://127.0.0.1:9/x"}"#;
const RUN_ERROR: &str = "step 1 failed: HTTP 500 (expected 2xx)";

/// Delivery `i` of `count`, spread over the 30 days before `now`.
fn seed_row(i: i64, count: i64, now: i64) -> Seed {
    let span = 30 * DAY_MS;
    let at = now - span + i * span / count;
    let gh = i % 10 < 7;
    let (source, rule) = if gh {
        ("gh", "notify")
    } else {
        ("shop", "big")
    };
    let rejected = i % 20 == 0;
    let matched = !rejected && if gh { i % 3 != 0 } else { i % 2 == 0 };
    let total = if matched { 500 } else { 50 };
    Seed {
        id: ulid::Ulid::from_parts(at as u64, (i as u128) << 2).to_string(),
        source,
        at,
        rejected,
        matched,
        rule,
        body: format!(
            r#"{{"order":{i},"total":{total},"items":[{{"sku":"A-1","qty":2}}],"note":"bench"}}"#
        )
        .into_bytes(),
        trace: format!(r#"{{"event":"","rules":[{{"rule":"{rule}","matched":{matched}}}]}}"#),
        run_id: ulid::Ulid::from_parts(at as u64, (i as u128) << 2 | 1).to_string(),
        attempt_id: ulid::Ulid::from_parts(at as u64, (i as u128) << 2 | 2).to_string(),
        failed: i % 50 == 1,
        took: 80 + (i % 40) * 5,
    }
}

impl Seed {
    fn matched_json(&self) -> String {
        if self.matched {
            format!(r#"["{}"]"#, self.rule)
        } else {
            "[]".to_owned()
        }
    }
}

/// The same rows in PostgreSQL, with binary `COPY` (one per table).
async fn seed_postgres(url: &str, count: i64, now: i64) -> Result<(), BoxError> {
    use tokio_postgres::binary_copy::BinaryCopyInWriter;
    use tokio_postgres::types::{ToSql, Type};
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    let (text, int, bytes) = (Type::TEXT, Type::INT8, Type::BYTEA);

    let sink = client
        .copy_in(
            "COPY deliveries (id, source, received_at, status, reject_status, reject_reason,
                method, path, headers, remote_addr, event, body, matched, trace)
             FROM STDIN (FORMAT binary)",
        )
        .await?;
    let types = [
        text.clone(),
        text.clone(),
        int.clone(),
        text.clone(),
        int.clone(),
        text.clone(),
        text.clone(),
        text.clone(),
        text.clone(),
        text.clone(),
        text.clone(),
        bytes.clone(),
        text.clone(),
        text.clone(),
    ];
    let writer = BinaryCopyInWriter::new(sink, &types);
    tokio::pin!(writer);
    for i in 0..count {
        let r = seed_row(i, count, now);
        let path = format!("/hooks/{}", r.source);
        let status = if r.rejected { "rejected" } else { "accepted" };
        let reject_status: Option<i64> = r.rejected.then_some(401);
        let reject_reason: Option<&str> = r.rejected.then_some("signature mismatch");
        let headers = if r.rejected { "[]" } else { HEADERS };
        let body: Option<&[u8]> = (!r.rejected).then_some(r.body.as_slice());
        let matched = r.matched_json();
        let trace = if r.rejected { "null" } else { r.trace.as_str() };
        let row: [&(dyn ToSql + Sync); 14] = [
            &r.id,
            &r.source,
            &r.at,
            &status,
            &reject_status,
            &reject_reason,
            &"POST",
            &path,
            &headers,
            &"203.0.113.7",
            &"",
            &body,
            &matched,
            &trace,
        ];
        writer.as_mut().write(&row).await?;
    }
    writer.finish().await?;

    let sink = client
        .copy_in(
            "COPY runs (id, delivery_id, rule, status, next_step, attempt, created_at,
                updated_at, finished_at, error, definition, outputs)
             FROM STDIN (FORMAT binary)",
        )
        .await?;
    let types = [
        text.clone(),
        text.clone(),
        text.clone(),
        text.clone(),
        int.clone(),
        int.clone(),
        int.clone(),
        int.clone(),
        int.clone(),
        text.clone(),
        text.clone(),
        text.clone(),
    ];
    let writer = BinaryCopyInWriter::new(sink, &types);
    tokio::pin!(writer);
    for i in 0..count {
        let r = seed_row(i, count, now);
        if !r.matched {
            continue;
        }
        let status = if r.failed { "failed" } else { "succeeded" };
        let error: Option<&str> = r.failed.then_some(RUN_ERROR);
        let done = r.at + r.took;
        let row: [&(dyn ToSql + Sync); 12] = [
            &r.run_id,
            &r.id,
            &r.rule,
            &status,
            &1_i64,
            &1_i64,
            &r.at,
            &done,
            &done,
            &error,
            &DEFINITION,
            &"{}",
        ];
        writer.as_mut().write(&row).await?;
    }
    writer.finish().await?;

    let sink = client
        .copy_in(
            "COPY attempts (id, run_id, step_index, step_id, attempt, started_at,
                duration_ms, request, status_code, response, outcome)
             FROM STDIN (FORMAT binary)",
        )
        .await?;
    let types = [
        text.clone(),
        text.clone(),
        int.clone(),
        text.clone(),
        int.clone(),
        int.clone(),
        int.clone(),
        text.clone(),
        int.clone(),
        text.clone(),
        text.clone(),
    ];
    let writer = BinaryCopyInWriter::new(sink, &types);
    tokio::pin!(writer);
    for i in 0..count {
        let r = seed_row(i, count, now);
        if !r.matched {
            continue;
        }
        let code: i64 = if r.failed { 500 } else { 200 };
        let outcome = if r.failed { "failed" } else { "succeeded" };
        let row: [&(dyn ToSql + Sync); 11] = [
            &r.attempt_id,
            &r.run_id,
            &0_i64,
            &"1",
            &1_i64,
            &r.at,
            &r.took,
            &REQUEST,
            &code,
            &"",
            &outcome,
        ];
        writer.as_mut().write(&row).await?;
    }
    writer.finish().await?;
    // Autovacuum analyzes a bulk-loaded table within a minute; do it now.
    client
        .batch_execute("ANALYZE deliveries, runs, attempts")
        .await?;
    Ok(())
}

/// Writes the deliveries, runs and attempts; returns a delivery id and a
/// run id from the middle of the log.
fn seed(db: &std::path::Path, count: i64, now: i64) -> rusqlite::Result<(String, String)> {
    let mut conn = rusqlite::Connection::open(db)?;
    conn.pragma_update(None, "synchronous", "OFF")?;
    let tx = conn.transaction()?;
    let (mut some_delivery, mut some_run) = (String::new(), String::new());
    {
        let mut delivery = tx.prepare(
            "INSERT INTO deliveries (id, source, received_at, status, reject_status, reject_reason,
                method, path, headers, remote_addr, event, body, matched, trace)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'POST', ?7, ?8, '203.0.113.7', '', ?9, ?10, ?11)",
        )?;
        let mut run = tx.prepare(
            "INSERT INTO runs (id, delivery_id, rule, status, next_step, attempt, created_at,
                updated_at, finished_at, error, definition, outputs)
             VALUES (?1, ?2, ?3, ?4, 1, 1, ?5, ?6, ?6, ?7, ?8, '{}')",
        )?;
        let mut attempt = tx.prepare(
            "INSERT INTO attempts (id, run_id, step_index, step_id, attempt, started_at,
                duration_ms, request, status_code, response, outcome)
             VALUES (?1, ?2, 0, '1', 1, ?3, ?4, ?5, ?6, '', ?7)",
        )?;
        for i in 0..count {
            let r = seed_row(i, count, now);
            delivery.execute(rusqlite::params![
                r.id,
                r.source,
                r.at,
                if r.rejected { "rejected" } else { "accepted" },
                r.rejected.then_some(401),
                r.rejected.then_some("signature mismatch"),
                format!("/hooks/{}", r.source),
                if r.rejected { "[]" } else { HEADERS },
                (!r.rejected).then_some(&r.body),
                r.matched_json(),
                if r.rejected { "null" } else { r.trace.as_str() },
            ])?;
            if i == count / 2 {
                some_delivery = r.id.clone();
            }
            if !r.matched {
                continue;
            }
            run.execute(rusqlite::params![
                r.run_id,
                r.id,
                r.rule,
                if r.failed { "failed" } else { "succeeded" },
                r.at,
                r.at + r.took,
                r.failed.then_some(RUN_ERROR),
                DEFINITION,
            ])?;
            attempt.execute(rusqlite::params![
                r.attempt_id,
                r.run_id,
                r.at,
                r.took,
                REQUEST,
                if r.failed { 500 } else { 200 },
                if r.failed { "failed" } else { "succeeded" },
            ])?;
            if some_run.is_empty() && i >= count / 2 {
                some_run = r.run_id.clone();
            }
        }
    }
    // No ANALYZE: the store never runs it, so the plans are production's.
    tx.commit()?;
    Ok((some_delivery, some_run))
}
