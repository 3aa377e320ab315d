//! The storage limit for `bench/ingest.sh` (issue 17): a bare SQLite loop
//! writing the rows an accepted, matching delivery costs hookflow — one
//! `deliveries` row (body, headers, trace) and one queued `runs` row, on
//! hookflow's own schema (its migrations), WAL, in transactions of 32
//! deliveries — with none of hookflow's other work. What it commits per
//! second is the most any ingest path storing those bytes can reach.
//!
//! Run: `cargo bench --bench storage_limit -- BODY_FILE SECONDS SYNC [lz4|zstd]`
//! with SYNC `normal` (hookflow's default) or `full`; `lz4` stores the body
//! compressed as hookflow does (schema 0011), `zstd` as it did before
//! (level 1, schema 0010): fewer bytes per delivery, compressed once
//! before the loop, so the rate is the storage's alone.
//! Prints one line: `deliveries/s <rate> body_bytes <stored size>`.

use std::time::{Duration, Instant};

use rusqlite::{Connection, params};

const MIGRATIONS: &[&str] = &[
    include_str!("../src/store/migrations/sqlite/0001_init.sql"),
    include_str!("../src/store/migrations/sqlite/0002_queue.sql"),
    include_str!("../src/store/migrations/sqlite/0003_dedupe_index.sql"),
    include_str!("../src/store/migrations/sqlite/0004_steering.sql"),
    include_str!("../src/store/migrations/sqlite/0005_attempt_base.sql"),
    include_str!("../src/store/migrations/sqlite/0006_operator_actions.sql"),
    include_str!("../src/store/migrations/sqlite/0007_concurrency_key.sql"),
];

/// Deliveries per transaction (hookflow's writer groups what is waiting;
/// under the benchmark's 32 connections that is up to 32).
const BATCH: usize = 32;

/// What the server stores beside the body for the benchmark's push: its
/// request headers, the trace of 10 rules (1 matching, 9 on other events
/// by name) and the matching rule's definition.
const HEADERS: &str = r#"[["host","127.0.0.1:18080"],["content-length","7678"],["content-type","application/json"],["x-github-event","push"],["x-github-delivery","bench-1-123456"],["x-hub-signature-256","***"]]"#;
const TRACE: &str = r#"{"event":"push","rules":[{"rule":"r0","matched":true}],"excluded":["r1","r2","r3","r4","r5","r6","r7","r8","r9"]}"#;
const DEFINITION: &str = r#"{"name":"r0","source":"github","event":"push","when":{"path":"$.ref","equals":"refs/heads/master"},"actions":[{"http":{"url":"http://127.0.0.1:18081/sink"}}]}"#;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let [body_file, seconds, sync, rest @ ..] = args.as_slice() else {
        return Err("usage: storage_limit BODY_FILE SECONDS normal|full [lz4|zstd]".into());
    };
    let raw = std::fs::read(body_file)?;
    let body = if rest.iter().any(|a| a == "zstd") {
        zstd::bulk::compress(&raw, 1)?
    } else if rest.iter().any(|a| a == "lz4") {
        lz4_flex::block::compress_prepend_size(&raw)
    } else {
        raw
    };
    let duration = Duration::from_secs_f64(seconds.parse()?);
    let dir = tempfile::tempdir()?;
    let mut conn = Connection::open(dir.path().join("limit.db"))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", sync.as_str())?;
    conn.pragma_update(None, "foreign_keys", true)?;
    for sql in MIGRATIONS {
        conn.execute_batch(sql)?;
    }
    let start = Instant::now();
    let mut n: u64 = 0;
    while start.elapsed() < duration {
        let tx = conn.transaction()?;
        for _ in 0..BATCH {
            n += 1;
            let id = format!("{:026}", n);
            let now = 1_790_000_000_000 + n as i64;
            tx.prepare_cached(
                "INSERT INTO deliveries (id, source, received_at, status, method, path, query,
                                         headers, remote_addr, event, dedupe_key, body, matched, trace)
                 VALUES (?1, 'github', ?2, 'accepted', 'POST', '/hooks/github', NULL, ?3,
                         '127.0.0.1:50000', 'push', ?4, ?5, '[\"r0\"]', ?6)",
            )?
            .execute(params![id, now, HEADERS, format!("bench-1-{n}"), body, TRACE])?;
            tx.prepare_cached(
                "INSERT INTO runs (id, delivery_id, rule, status, next_step, attempt, next_attempt_at,
                                   created_at, updated_at, definition, outputs, concurrency,
                                   concurrency_key)
                 VALUES (?1, ?2, 'r0', 'queued', 0, 0, ?3, ?3, ?3, ?4, '{}', NULL, NULL)",
            )?
            .execute(params![format!("R{id}"), id, now, DEFINITION])?;
        }
        tx.commit()?;
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    println!("deliveries/s {rate:.0} body_bytes {}", body.len());
    Ok(())
}
