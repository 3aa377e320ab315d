//! SQL of the `runs` table as far as the store needs it now: queueing runs
//! with their delivery, reading them back, and the queue depth.

use rusqlite::{Connection, Row, params};

use super::{enum_column, json_column};
use crate::store::{Context, NewRun, Result, RunRecord, RunStatus};

pub(super) const FOR_DELIVERY: &str = "list runs of delivery";
pub(super) const QUEUE_DEPTH: &str = "count queued runs";

/// Queue a run: due immediately (`next_attempt_at = created_at`), at its
/// first step, no attempt yet. Called inside `accept`'s savepoint.
pub(super) fn insert_queued(
    conn: &Connection,
    run: &NewRun,
    definition: &str,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO runs (id, delivery_id, rule, status, next_step, attempt, next_attempt_at,
                           created_at, updated_at, definition, outputs)
         VALUES (?1, ?2, ?3, 'queued', 0, 0, ?4, ?4, ?4, ?5, '{}')",
    )?
    .execute(params![
        run.id,
        run.delivery_id,
        run.rule,
        run.created_at,
        definition
    ])?;
    Ok(())
}

pub(super) fn for_delivery(conn: &Connection, delivery_id: &str) -> Result<Vec<RunRecord>> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT id, delivery_id, rule, status, next_step, attempt, next_attempt_at,
                    created_at, updated_at, finished_at, error, definition, outputs
             FROM runs WHERE delivery_id = ?1 ORDER BY created_at, id",
        )
        .ctx(FOR_DELIVERY)?;
    let rows = stmt
        .query_map([delivery_id], record_from_row)
        .ctx(FOR_DELIVERY)?;
    rows.collect::<rusqlite::Result<Vec<_>>>().ctx(FOR_DELIVERY)
}

fn record_from_row(row: &Row<'_>) -> rusqlite::Result<RunRecord> {
    Ok(RunRecord {
        id: row.get(0)?,
        delivery_id: row.get(1)?,
        rule: row.get(2)?,
        status: enum_column(row, 3, RunStatus::parse)?,
        next_step: row.get(4)?,
        attempt: row.get(5)?,
        next_attempt_at: row.get(6)?,
        created_at: row.get(7)?,
        updated_at: row.get(8)?,
        finished_at: row.get(9)?,
        error: row.get(10)?,
        definition: json_column(row, 11)?,
        outputs: json_column(row, 12)?,
    })
}

pub(super) fn queue_depth(conn: &Connection) -> Result<u64> {
    let count: i64 = conn
        .prepare_cached("SELECT COUNT(*) FROM runs WHERE status IN ('queued', 'running')")
        .and_then(|mut stmt| stmt.query_row([], |row| row.get(0)))
        .ctx(QUEUE_DEPTH)?;
    Ok(u64::try_from(count).unwrap_or(0))
}
