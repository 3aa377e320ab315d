//! SQL of the `runs` table: queueing runs with their delivery, reading them
//! back, and the queue depth. The workers' writes (leases, steps) are in
//! `queue.rs`.

use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension, Row, params, params_from_iter};

use super::{enum_column, json_column};
use crate::store::{Context, NewRun, Result, RunFilter, RunRecord, RunStatus};

pub(super) const FOR_DELIVERY: &str = "list runs of delivery";
pub(super) const QUEUE_DEPTH: &str = "count queued runs";
pub(super) const GET: &str = "get run";
pub(super) const LIST: &str = "list runs";

/// The columns [`record_from_row`] reads, in its order.
pub(super) const COLUMNS: &str = "id, delivery_id, rule, status, next_step, attempt, \
     next_attempt_at, created_at, updated_at, finished_at, error, definition, outputs, concurrency";

/// Queue a run: due immediately (`next_attempt_at = created_at`), at its
/// first step, no attempt yet. Called inside `accept`'s savepoint.
pub(super) fn insert_queued(
    conn: &Connection,
    run: &NewRun,
    definition: &str,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO runs (id, delivery_id, rule, status, next_step, attempt, next_attempt_at,
                           created_at, updated_at, definition, outputs, concurrency)
         VALUES (?1, ?2, ?3, 'queued', 0, 0, ?4, ?4, ?4, ?5, '{}', ?6)",
    )?
    .execute(params![
        run.id,
        run.delivery_id,
        run.rule,
        run.created_at,
        definition,
        run.concurrency,
    ])?;
    Ok(())
}

pub(super) fn for_delivery(conn: &Connection, delivery_id: &str) -> Result<Vec<RunRecord>> {
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM runs WHERE delivery_id = ?1 ORDER BY created_at, id"
        ))
        .ctx(FOR_DELIVERY)?;
    let rows = stmt
        .query_map([delivery_id], record_from_row)
        .ctx(FOR_DELIVERY)?;
    rows.collect::<rusqlite::Result<Vec<_>>>().ctx(FOR_DELIVERY)
}

pub(super) fn get(conn: &Connection, id: &str) -> rusqlite::Result<Option<RunRecord>> {
    conn.prepare_cached(&format!("SELECT {COLUMNS} FROM runs WHERE id = ?1"))?
        .query_row([id], record_from_row)
        .optional()
}

/// Newest first, keyset-paginated on (created_at, id).
pub(super) fn list(conn: &Connection, filter: &RunFilter) -> Result<Vec<RunRecord>> {
    let mut sql = format!("SELECT {COLUMNS} FROM runs WHERE 1 = 1");
    // Only the filters given become SQL (one cached plan per shape).
    let mut args: Vec<SqlValue> = Vec::new();
    if let Some(rule) = &filter.rule {
        args.push(SqlValue::Text(rule.clone()));
        sql.push_str(&format!(" AND rule = ?{}", args.len()));
    }
    if let Some(status) = filter.status {
        args.push(SqlValue::Text(status.as_str().to_owned()));
        sql.push_str(&format!(" AND status = ?{}", args.len()));
        if status.is_finished() {
            // Implies the predicate of the runs_finished partial index.
            sql.push_str(" AND finished_at IS NOT NULL");
        }
    }
    if let Some(before) = &filter.before_id {
        args.push(SqlValue::Text(before.clone()));
        let n = args.len();
        sql.push_str(&format!(
            " AND (created_at, id) < (SELECT created_at, id FROM runs WHERE id = ?{n})"
        ));
    }
    args.push(SqlValue::Integer(i64::from(filter.effective_limit())));
    sql.push_str(&format!(
        " ORDER BY created_at DESC, id DESC LIMIT ?{}",
        args.len()
    ));
    let mut stmt = conn.prepare_cached(&sql).ctx(LIST)?;
    let rows = stmt
        .query_map(params_from_iter(args), record_from_row)
        .ctx(LIST)?;
    rows.collect::<rusqlite::Result<Vec<_>>>().ctx(LIST)
}

/// A row selected with [`COLUMNS`].
pub(super) fn record_from_row(row: &Row<'_>) -> rusqlite::Result<RunRecord> {
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
        concurrency: row.get(13)?,
    })
}

pub(super) fn queue_depth(conn: &Connection) -> Result<u64> {
    let count: i64 = conn
        .prepare_cached("SELECT COUNT(*) FROM runs WHERE status IN ('queued', 'running')")
        .and_then(|mut stmt| stmt.query_row([], |row| row.get(0)))
        .ctx(QUEUE_DEPTH)?;
    Ok(u64::try_from(count).unwrap_or(0))
}
