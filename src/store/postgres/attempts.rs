//! SQL of the `attempts` table: one row per try of a step.

use deadpool_postgres::Object;
use tokio_postgres::Row;

use super::{PgContext, Prepared, from_json, parse_enum, to_u32};
use crate::store::{AttemptOutcome, AttemptRecord, Result};

pub(crate) const ATTEMPTS: &str = "list attempts of run";

pub(crate) async fn attempts_for_run(conn: &Object, run_id: &str) -> Result<Vec<AttemptRecord>> {
    let rows = conn
        .prepared_query(
            "SELECT id, run_id, step_index, step_id, attempt, started_at, duration_ms, request,
                    status_code, response, stdout, stderr, error, outcome
             FROM attempts WHERE run_id = $1 ORDER BY step_index, attempt, started_at",
            &[&run_id],
        )
        .await
        .pg(ATTEMPTS)?;
    rows.iter().map(from_row).collect()
}

fn from_row(row: &Row) -> Result<AttemptRecord> {
    let request: Option<&str> = row.get(7);
    Ok(AttemptRecord {
        id: row.get(0),
        run_id: row.get(1),
        step_index: to_u32(row.get(2)),
        step_id: row.get(3),
        attempt: to_u32(row.get(4)),
        started_at: row.get(5),
        duration_ms: row.get(6),
        request: match request {
            Some(text) => from_json(ATTEMPTS, "attempt request", text)?,
            None => serde_json::Value::Null,
        },
        status_code: row.get(8),
        response: row.get(9),
        stdout: row.get(10),
        stderr: row.get(11),
        error: row.get(12),
        outcome: parse_enum(ATTEMPTS, row.get(13), AttemptOutcome::parse)?,
    })
}
