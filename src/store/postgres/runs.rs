//! SQL of the `runs` table outside the workers' hot path: queueing runs
//! with a delivery or for a replay, reading and listing them, retrying a
//! failed run, the queue depth and retention.

use deadpool_postgres::GenericClient;
use deadpool_postgres::Object;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::listen::Announcer;
use super::{PgContext, Prepared, from_json, parse_enum, to_u32};
pub(super) use crate::store::encode::check_for_delivery;
use crate::store::{
    NewRun, Result, RetryOutcome, RunFilter, RunKind, RunRecord, RunStatus, StoreError,
};

pub(super) use super::attempts::{ATTEMPTS, attempts_for_run};
pub(super) use super::cancel::{CANCEL, cancel};

pub(super) const FOR_DELIVERY: &str = "list runs of delivery";
pub(super) const QUEUE_DEPTH: &str = "count queued runs";
pub(super) const GET: &str = "get run";
pub(super) const LIST: &str = "list runs";
pub(super) const COUNT: &str = "count runs";
pub(super) const QUEUE_MORE: &str = "queue runs for stored delivery";
pub(super) const RETRY: &str = "retry run";
pub(super) const PRUNE: &str = "prune old deliveries";

/// The columns [`record_from_row`] reads, in its order.
pub(super) const COLUMNS: &str = "id, delivery_id, rule, status, next_step, attempt, \
     next_attempt_at, created_at, updated_at, finished_at, error, definition, outputs, concurrency, \
     lease_owner, lease_expires_at, cancel_requested_at, lease_expiries, attempt_base, \
     concurrency_key, kind, failure";

/// Queue a run: due at `created_at`, at its first step, no attempt yet.
pub(super) async fn insert_queued(
    tx: &impl GenericClient,
    run: &NewRun,
    op: &'static str,
) -> Result<()> {
    let concurrency = run.concurrency.map(i64::from);
    tx.prepared_execute(
        "INSERT INTO runs (id, delivery_id, rule, status, next_step, attempt, next_attempt_at,
                           created_at, updated_at, definition, outputs, concurrency,
                           concurrency_key)
         VALUES ($1, $2, $3, 'queued', 0, 0, $4, $4, $4, $5, '{}', $6, $7)",
        &[
            &run.id,
            &run.delivery_id,
            &run.rule,
            &run.created_at,
            &run.definition.as_str(),
            &concurrency,
            &run.concurrency_key,
        ],
    )
    .await
    .pg(op)?;
    Ok(())
}

pub(super) async fn for_delivery(conn: &Object, delivery_id: &str) -> Result<Vec<RunRecord>> {
    let rows = conn
        .prepared_query(
            &format!("SELECT {COLUMNS} FROM runs WHERE delivery_id = $1 ORDER BY created_at, id"),
            &[&delivery_id],
        )
        .await
        .pg(FOR_DELIVERY)?;
    rows.iter()
        .map(|r| record_from_row(r, FOR_DELIVERY))
        .collect()
}

pub(super) async fn get(
    conn: &impl GenericClient,
    id: &str,
    op: &'static str,
) -> Result<Option<RunRecord>> {
    let row = conn
        .prepared_opt(&format!("SELECT {COLUMNS} FROM runs WHERE id = $1"), &[&id])
        .await
        .pg(op)?;
    row.map(|r| record_from_row(&r, op)).transpose()
}

/// Newest first, keyset-paginated on (created_at, id).
pub(super) async fn list(conn: &Object, filter: &RunFilter) -> Result<Vec<RunRecord>> {
    let status = filter.status.map(|s| s.as_str().to_owned());
    let limit = i64::from(filter.effective_limit());
    let (conditions, mut args) = filter_sql(filter, &status);
    args.push(&limit);
    let sql = format!(
        "SELECT {COLUMNS} FROM runs WHERE TRUE{conditions}
         ORDER BY created_at DESC, id DESC LIMIT ${}",
        args.len()
    );
    let rows = conn.prepared_query(&sql, &args).await.pg(LIST)?;
    rows.iter().map(|r| record_from_row(r, LIST)).collect()
}

/// How many runs [`list`] would list without its page limit.
pub(super) async fn count(conn: &Object, filter: &RunFilter) -> Result<u64> {
    let status = filter.status.map(|s| s.as_str().to_owned());
    let (conditions, args) = filter_sql(filter, &status);
    let sql = format!("SELECT count(*) FROM runs WHERE TRUE{conditions}");
    let n: i64 = conn.prepared_one(&sql, &args).await.pg(COUNT)?.get(0);
    Ok(u64::try_from(n).unwrap_or(0))
}

/// The filter's conditions (each ` AND …`) and their arguments, numbered
/// from $1; `status` is the filter's status as text.
fn filter_sql<'a>(
    filter: &'a RunFilter,
    status: &'a Option<String>,
) -> (String, Vec<&'a (dyn ToSql + Sync)>) {
    let mut sql = String::new();
    let mut args: Vec<&(dyn ToSql + Sync)> = Vec::new();
    if let Some(rule) = &filter.rule {
        args.push(rule);
        sql.push_str(&format!(" AND rule = ${}", args.len()));
    }
    if let Some(status) = status {
        args.push(status);
        sql.push_str(&format!(" AND status = ${}", args.len()));
    }
    if let Some(since) = &filter.since_ms {
        args.push(since);
        sql.push_str(&format!(" AND created_at >= ${}", args.len()));
    }
    if let Some(now) = &filter.waiting_at {
        // RunRecord::state's `waiting`, in SQL.
        args.push(now);
        let n = args.len();
        sql.push_str(&format!(
            " AND status = 'running' AND next_attempt_at > ${n}
              AND (lease_owner IS NULL OR lease_expires_at <= ${n})"
        ));
    }
    if filter.status.is_some_and(RunStatus::is_finished) {
        // Implies the predicate of the runs_finished partial index.
        sql.push_str(" AND finished_at IS NOT NULL");
    }
    if let Some(before) = &filter.before_id {
        args.push(before);
        let n = args.len();
        sql.push_str(&format!(
            " AND (created_at, id) < (SELECT created_at, id FROM runs WHERE id = ${n})"
        ));
    }
    (sql, args)
}

/// A row selected with [`COLUMNS`].
pub(super) fn record_from_row(row: &Row, op: &'static str) -> Result<RunRecord> {
    let concurrency: Option<i64> = row.get(13);
    Ok(RunRecord {
        id: row.get(0),
        delivery_id: row.get(1),
        rule: row.get(2),
        status: parse_enum(op, row.get(3), RunStatus::parse)?,
        next_step: to_u32(row.get(4)),
        attempt: to_u32(row.get(5)),
        next_attempt_at: row.get(6),
        created_at: row.get(7),
        updated_at: row.get(8),
        finished_at: row.get(9),
        error: row.get(10),
        definition: from_json(op, "run definition", row.get(11))?,
        outputs: from_json(op, "run outputs", row.get(12))?,
        concurrency: concurrency.map(to_u32),
        lease_owner: row.get(14),
        lease_expires_at: row.get(15),
        cancel_requested_at: row.get(16),
        lease_expiries: to_u32(row.get(17)),
        attempt_base: to_u32(row.get(18)),
        concurrency_key: row.get(19),
        kind: parse_enum(op, row.get(20), RunKind::parse)?,
        failure: from_json(op, "run failure", row.get(21))?,
    })
}

pub(super) async fn queue_depth(conn: &Object) -> Result<u64> {
    let row = conn
        .prepared_one(
            "SELECT COUNT(*) FROM runs WHERE status IN ('queued', 'running')",
            &[],
        )
        .await
        .pg(QUEUE_DEPTH)?;
    let count: i64 = row.get(0);
    Ok(u64::try_from(count).unwrap_or(0))
}

/// Runs queued for a stored delivery (a replay): all or none.
pub(super) async fn queue_more(
    conn: &mut Object,
    announcer: &Announcer,
    delivery_id: &str,
    runs: Vec<NewRun>,
) -> Result<()> {
    let runs = check_for_delivery(QUEUE_MORE, delivery_id, runs)?;
    let tx = conn.transaction().await.pg(QUEUE_MORE)?;
    let exists = tx
        .prepared_opt("SELECT 1 FROM deliveries WHERE id = $1", &[&delivery_id])
        .await
        .pg(QUEUE_MORE)?;
    if exists.is_none() {
        tx.rollback().await.pg(QUEUE_MORE)?;
        return Err(StoreError::Invalid {
            op: QUEUE_MORE,
            message: format!("delivery {delivery_id} is not in the run log"),
        });
    }
    for run in &runs {
        insert_queued(&tx, run, QUEUE_MORE).await?;
    }
    tx.commit().await.pg(QUEUE_MORE)?;
    announcer.announce();
    Ok(())
}

/// Re-queue a failed run at its failed step. The row is locked first, so
/// of racing retries (on any nodes) exactly one finds it failed.
pub(super) async fn retry(
    conn: &mut Object,
    announcer: &Announcer,
    id: &str,
    now_ms: i64,
    redefine: Option<crate::store::Redefinition>,
) -> Result<RetryOutcome> {
    let redefine = redefine
        .map(|new| {
            let definition =
                crate::store::encode::to_json(RETRY, "run definition", &new.definition)?;
            Ok::<_, StoreError>((
                definition,
                new.concurrency.map(i64::from),
                new.concurrency_key,
            ))
        })
        .transpose()?;
    let tx = conn.transaction().await.pg(RETRY)?;
    let status = tx
        .prepared_opt("SELECT status FROM runs WHERE id = $1 FOR UPDATE", &[&id])
        .await
        .pg(RETRY)?;
    // Early answers end the transaction before returning: a dropped one
    // would keep the row locked until its rollback reaches the server, and
    // a leaser would skip the run meanwhile.
    let Some(status) = status else {
        tx.rollback().await.pg(RETRY)?;
        return Ok(RetryOutcome::NotFound);
    };
    let status = parse_enum(RETRY, status.get(0), RunStatus::parse)?;
    if status != RunStatus::Failed {
        tx.rollback().await.pg(RETRY)?;
        return Ok(RetryOutcome::NotFailed(status));
    }
    if let Some((definition, concurrency, key)) = &redefine {
        tx.prepared_execute(
            "UPDATE runs SET definition = $2, concurrency = $3, concurrency_key = $4 WHERE id = $1",
            &[&id, definition, concurrency, key],
        )
        .await
        .pg(RETRY)?;
    }
    let row = tx
        .prepared_one(
            &format!(
                "UPDATE runs SET status = 'queued', attempt_base = attempt, next_attempt_at = $2,
                                 error = NULL, finished_at = NULL, lease_owner = NULL,
                                 lease_expires_at = NULL, cancel_requested_at = NULL,
                                 lease_expiries = 0, updated_at = $2
                 WHERE id = $1 RETURNING {COLUMNS}"
            ),
            &[&id, &now_ms],
        )
        .await
        .pg(RETRY)?;
    let run = record_from_row(&row, RETRY)?;
    tx.commit().await.pg(RETRY)?;
    announcer.announce();
    Ok(RetryOutcome::Requeued(Box::new(run)))
}

/// Deletes up to `batch` deliveries received before `before_ms`, oldest
/// first, except those with a run not finished; runs, attempts and dedupe
/// keys go with them (`ON DELETE CASCADE`).
pub(super) async fn prune(conn: &Object, before_ms: i64, batch: u32) -> Result<u64> {
    let batch = i64::from(batch);
    let deleted = conn
        .prepared_execute(
            "DELETE FROM deliveries WHERE id IN (
             SELECT d.id FROM deliveries d
             WHERE d.received_at < $1
               AND NOT EXISTS (SELECT 1 FROM runs r
                               WHERE r.delivery_id = d.id AND r.finished_at IS NULL)
             ORDER BY d.received_at, d.id
             LIMIT $2
             FOR UPDATE SKIP LOCKED)",
            &[&before_ms, &batch],
        )
        .await
        .pg(PRUNE)?;
    // The audit trail ages out with the log (a batch each call too).
    let trail = super::audit::prune(conn, before_ms, batch, PRUNE).await?;
    Ok(deleted.max(trail))
}
