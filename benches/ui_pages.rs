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

fn main() -> Result<(), Box<dyn std::error::Error>> {
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
    // The store creates and migrates the schema.
    runtime.block_on(async {
        hookflow::store::open(&format!("sqlite://{}", db.display()))
            .await
            .map(drop)
    })?;
    let started = Instant::now();
    let (some_delivery, some_run) = seed(&db, count)?;
    eprintln!(
        "seeded {count} deliveries in {:.1} s ({} MB)",
        started.elapsed().as_secs_f64(),
        std::fs::metadata(&db)?.len() / 1_000_000
    );

    let settings = Settings {
        listen: "127.0.0.1:0".parse()?,
        admin_listen: Some("127.0.0.1:0".parse()?),
        rules: rules_dir.clone(),
        database: SettingValue::parse(&format!("sqlite://{}", db.display()))?,
        workers: 0,
        ..Settings::default()
    };
    let rules = hookflow::rules::load(&rules_dir).map_err(|e| format!("{:?}", e.diagnostics))?;
    runtime.block_on(async move {
        let app = App::build(settings, rules).await?;
        let admin = app.admin_addr.ok_or("no admin listener")?;
        let trigger = app.trigger();
        tokio::spawn(app.run());
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
        println!(
            "{} of {} pages within {} ms (median) on {count} deliveries",
            pages.len() - over,
            pages.len(),
            TARGET.as_millis()
        );
        Ok::<_, Box<dyn std::error::Error>>(())
    })
}

/// Writes the deliveries, runs and attempts; returns a delivery id and a
/// run id from the middle of the log.
fn seed(db: &std::path::Path, count: i64) -> rusqlite::Result<(String, String)> {
    let mut conn = rusqlite::Connection::open(db)?;
    conn.pragma_update(None, "synchronous", "OFF")?;
    let tx = conn.transaction()?;
    let now = chrono::Utc::now().timestamp_millis();
    let span = 30 * DAY_MS;
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
        let headers = r#"[["content-type","application/json"],["user-agent","bench/1.0"]]"#;
        for i in 0..count {
            let at = now - span + i * span / count;
            let id = ulid::Ulid::from_parts(at as u64, (i as u128) << 2).to_string();
            let gh = i % 10 < 7;
            let (source, rule) = if gh {
                ("gh", "notify")
            } else {
                ("shop", "big")
            };
            let rejected = i % 20 == 0;
            let matched = !rejected && if gh { i % 3 != 0 } else { i % 2 == 0 };
            let total = if matched { 500 } else { 50 };
            let body = format!(
                r#"{{"order":{i},"total":{total},"items":[{{"sku":"A-1","qty":2}}],"note":"bench"}}"#
            );
            let trace =
                format!(r#"{{"event":"","rules":[{{"rule":"{rule}","matched":{matched}}}]}}"#);
            delivery.execute(rusqlite::params![
                id,
                source,
                at,
                if rejected { "rejected" } else { "accepted" },
                rejected.then_some(401),
                rejected.then_some("signature mismatch"),
                format!("/hooks/{source}"),
                if rejected { "[]" } else { headers },
                (!rejected).then_some(body.into_bytes()),
                if matched {
                    format!(r#"["{rule}"]"#)
                } else {
                    "[]".to_owned()
                },
                if rejected { "null".to_owned() } else { trace },
            ])?;
            if i == count / 2 {
                some_delivery = id.clone();
            }
            if !matched {
                continue;
            }
            let run_id = ulid::Ulid::from_parts(at as u64, (i as u128) << 2 | 1).to_string();
            let failed = i % 50 == 1;
            let took = 80 + (i % 40) * 5;
            run.execute(rusqlite::params![
                run_id,
                id,
                rule,
                if failed { "failed" } else { "succeeded" },
                at,
                at + took,
                failed.then_some("step 1 failed: HTTP 500 (expected 2xx)"),
                r#"{"actions":[{"http":{"url":"http://127.0.0.1:9/x"}}]}"#,
            ])?;
            attempt.execute(rusqlite::params![
                ulid::Ulid::from_parts(at as u64, (i as u128) << 2 | 2).to_string(),
                run_id,
                at,
                took,
                r#"{"method":"POST","url":"http://127.0.0.1:9/x"}"#,
                if failed { 500 } else { 200 },
                if failed { "failed" } else { "succeeded" },
            ])?;
            if some_run.is_empty() && i >= count / 2 {
                some_run = run_id;
            }
        }
    }
    // No ANALYZE: the store never runs it, so the plans are production's.
    tx.commit()?;
    Ok((some_delivery, some_run))
}
