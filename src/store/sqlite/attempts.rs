//! SQL of the `attempts` table: one row per try of a step.

use rusqlite::{Connection, Row, params};

use super::{enum_column, json_column};
use crate::store::{AttemptOutcome, AttemptRecord, Context, Result};

pub(super) const FOR_RUN: &str = "list attempts of run";

/// Insert an attempt whose `request` is already encoded as JSON text.
pub(super) fn insert(conn: &Connection, a: &AttemptRecord, request: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO attempts (id, run_id, step_index, step_id, attempt, started_at, duration_ms,
                               request, status_code, response, stdout, stderr, error, outcome)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
    )?
    .execute(params![
        a.id,
        a.run_id,
        a.step_index,
        a.step_id,
        a.attempt,
        a.started_at,
        a.duration_ms,
        request,
        a.status_code,
        a.response,
        a.stdout,
        a.stderr,
        a.error,
        a.outcome.as_str(),
    ])?;
    Ok(())
}

pub(super) fn for_run(conn: &Connection, run_id: &str) -> Result<Vec<AttemptRecord>> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT id, run_id, step_index, step_id, attempt, started_at, duration_ms, request,
                    status_code, response, stdout, stderr, error, outcome
             FROM attempts WHERE run_id = ?1 ORDER BY step_index, attempt, started_at",
        )
        .ctx(FOR_RUN)?;
    let rows = stmt.query_map([run_id], from_row).ctx(FOR_RUN)?;
    rows.collect::<rusqlite::Result<Vec<_>>>().ctx(FOR_RUN)
}

fn from_row(row: &Row<'_>) -> rusqlite::Result<AttemptRecord> {
    let request: Option<String> = row.get(7)?;
    Ok(AttemptRecord {
        id: row.get(0)?,
        run_id: row.get(1)?,
        step_index: row.get(2)?,
        step_id: row.get(3)?,
        attempt: row.get(4)?,
        started_at: row.get(5)?,
        duration_ms: row.get(6)?,
        request: match request {
            Some(_) => json_column(row, 7)?,
            None => serde_json::Value::Null,
        },
        status_code: row.get(8)?,
        response: row.get(9)?,
        stdout: row.get(10)?,
        stderr: row.get(11)?,
        error: row.get(12)?,
        outcome: enum_column(row, 13, AttemptOutcome::parse)?,
    })
}
