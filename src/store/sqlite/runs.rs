//! SQL of the `runs` table: queueing runs with their delivery, reading them
//! back, and the queue depth. The workers' writes (leases, steps) are in
//! `queue.rs`.

use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension, Row, params, params_from_iter};

use super::{enum_column, json_column};
pub(super) use crate::store::encode::check_for_delivery;
use crate::store::{
    Context, NewRun, Result, RetryOutcome, RunFilter, RunKind, RunRecord, RunStatus, StoreError,
};

pub(super) const FOR_DELIVERY: &str = "list runs of delivery";
pub(super) const QUEUE_DEPTH: &str = "count queued runs";
pub(super) const GET: &str = "get run";
pub(super) const LIST: &str = "list runs";
pub(super) const COUNT: &str = "count runs";
pub(super) const QUEUE_MORE: &str = "queue runs for stored delivery";
pub(super) const RETRY: &str = "retry run";

/// The columns [`record_from_row`] reads, in its order.
pub(super) const COLUMNS: &str = "id, delivery_id, rule, status, next_step, attempt, \
     next_attempt_at, created_at, updated_at, finished_at, error, definition, outputs, concurrency, \
     lease_owner, lease_expires_at, cancel_requested_at, lease_expiries, attempt_base, \
     concurrency_key, kind, failure";

/// Queue a run: due immediately (`next_attempt_at = created_at`), at its
/// first step, no attempt yet. Called inside `accept`'s savepoint.
pub(super) fn insert_queued(conn: &Connection, run: &NewRun) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO runs (id, delivery_id, rule, status, next_step, attempt, next_attempt_at,
                           created_at, updated_at, definition, outputs, concurrency,
                           concurrency_key)
         VALUES (?1, ?2, ?3, 'queued', 0, 0, ?4, ?4, ?4, ?5, '{}', ?6, ?7)",
    )?
    .execute(params![
        run.id,
        run.delivery_id,
        run.rule,
        run.created_at,
        run.definition.as_str(),
        run.concurrency,
        run.concurrency_key,
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
    let (conditions, mut args) = filter_sql(filter);
    args.push(SqlValue::Integer(i64::from(filter.effective_limit())));
    let sql = format!(
        "SELECT {COLUMNS} FROM runs WHERE 1 = 1{conditions}
         ORDER BY created_at DESC, id DESC LIMIT ?{}",
        args.len()
    );
    let mut stmt = conn.prepare_cached(&sql).ctx(LIST)?;
    let rows = stmt
        .query_map(params_from_iter(args), record_from_row)
        .ctx(LIST)?;
    rows.collect::<rusqlite::Result<Vec<_>>>().ctx(LIST)
}

/// How many runs [`list`] would list without its page limit.
pub(super) fn count(conn: &Connection, filter: &RunFilter) -> Result<u64> {
    let (conditions, args) = filter_sql(filter);
    let sql = format!("SELECT count(*) FROM runs WHERE 1 = 1{conditions}");
    let mut stmt = conn.prepare_cached(&sql).ctx(COUNT)?;
    let n: i64 = stmt
        .query_row(params_from_iter(args), |row| row.get(0))
        .ctx(COUNT)?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// The filter's conditions (each ` AND …`) and their arguments, numbered
/// from 1. Only the filters given become SQL (one cached plan per shape).
fn filter_sql(filter: &RunFilter) -> (String, Vec<SqlValue>) {
    let mut sql = String::new();
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
    if let Some(since) = filter.since_ms {
        args.push(SqlValue::Integer(since));
        sql.push_str(&format!(" AND created_at >= ?{}", args.len()));
    }
    if let Some(now) = filter.waiting_at {
        // RunRecord::state's `waiting`, in SQL.
        args.push(SqlValue::Integer(now));
        let n = args.len();
        sql.push_str(&format!(
            " AND status = 'running' AND next_attempt_at > ?{n}
              AND (lease_owner IS NULL OR lease_expires_at <= ?{n})"
        ));
    }
    if let Some(before) = &filter.before_id {
        args.push(SqlValue::Text(before.clone()));
        let n = args.len();
        sql.push_str(&format!(
            " AND (created_at, id) < (SELECT created_at, id FROM runs WHERE id = ?{n})"
        ));
    }
    (sql, args)
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
        lease_owner: row.get(14)?,
        lease_expires_at: row.get(15)?,
        cancel_requested_at: row.get(16)?,
        lease_expiries: row.get(17)?,
        attempt_base: row.get(18)?,
        concurrency_key: row.get(19)?,
        kind: enum_column(row, 20, RunKind::parse)?,
        failure: json_column(row, 21)?,
    })
}

pub(super) fn queue_depth(conn: &Connection) -> Result<u64> {
    let count: i64 = conn
        .prepare_cached("SELECT COUNT(*) FROM runs WHERE status IN ('queued', 'running')")
        .and_then(|mut stmt| stmt.query_row([], |row| row.get(0)))
        .ctx(QUEUE_DEPTH)?;
    Ok(u64::try_from(count).unwrap_or(0))
}

/// Runs queued for an already stored delivery (a replay), checked to
/// belong to it on the caller's task.
pub(super) struct QueueMore {
    delivery_id: String,
    runs: Vec<NewRun>,
}

impl QueueMore {
    pub(super) fn encode(delivery_id: &str, runs: Vec<NewRun>) -> Result<QueueMore> {
        Ok(QueueMore {
            delivery_id: delivery_id.to_owned(),
            runs: check_for_delivery(QUEUE_MORE, delivery_id, runs)?,
        })
    }

    /// One writer command: all runs or none.
    pub(super) fn apply(&self, conn: &Connection) -> Result<()> {
        let exists: Option<i64> = conn
            .prepare_cached("SELECT 1 FROM deliveries WHERE id = ?1")
            .and_then(|mut stmt| {
                stmt.query_row([&self.delivery_id], |row| row.get(0))
                    .optional()
            })
            .ctx(QUEUE_MORE)?;
        if exists.is_none() {
            return Err(StoreError::Invalid {
                op: QUEUE_MORE,
                message: format!("delivery {} is not in the run log", self.delivery_id),
            });
        }
        for run in &self.runs {
            insert_queued(conn, run).ctx(QUEUE_MORE)?;
        }
        Ok(())
    }
}

/// A [`crate::store::Redefinition`] with its definition encoded on the
/// caller's task (writer commands may run twice).
pub(super) struct Redefine {
    definition: String,
    concurrency: Option<u32>,
    concurrency_key: Option<String>,
}

impl Redefine {
    pub(super) fn encode(new: crate::store::Redefinition) -> Result<Redefine> {
        Ok(Redefine {
            definition: crate::store::encode::to_json(RETRY, "run definition", &new.definition)?,
            concurrency: new.concurrency,
            concurrency_key: new.concurrency_key,
        })
    }
}

/// Re-queue a failed run at its failed step (`next_step` is where it
/// stopped); earlier steps' outputs stay for the templates of later ones.
/// With `redefine`, the definition and concurrency are replaced too.
pub(super) fn requeue_failed(
    conn: &Connection,
    id: &str,
    now_ms: i64,
    redefine: Option<&Redefine>,
) -> Result<RetryOutcome> {
    let Some(run) = get(conn, id).ctx(RETRY)? else {
        return Ok(RetryOutcome::NotFound);
    };
    if run.status != RunStatus::Failed {
        return Ok(RetryOutcome::NotFailed(run.status));
    }
    conn.prepare_cached(
        "UPDATE runs SET status = 'queued', attempt_base = attempt, next_attempt_at = ?2,
                         error = NULL,
                         finished_at = NULL, lease_owner = NULL, lease_expires_at = NULL,
                         cancel_requested_at = NULL, lease_expiries = 0, updated_at = ?2
         WHERE id = ?1 AND status = 'failed'",
    )
    .and_then(|mut stmt| stmt.execute(params![id, now_ms]))
    .ctx(RETRY)?;
    if let Some(new) = redefine {
        conn.prepare_cached(
            "UPDATE runs SET definition = ?2, concurrency = ?3, concurrency_key = ?4 WHERE id = ?1",
        )
        .and_then(|mut stmt| {
            stmt.execute(params![
                id,
                new.definition,
                new.concurrency,
                new.concurrency_key
            ])
        })
        .ctx(RETRY)?;
    }
    match get(conn, id).ctx(RETRY)? {
        Some(run) => Ok(RetryOutcome::Requeued(Box::new(run))),
        None => Ok(RetryOutcome::NotFound),
    }
}
