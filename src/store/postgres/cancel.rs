//! Cancelling runs (SPEC §5) on PostgreSQL: an operator's cancel, decided
//! on the locked row, and the SQL that ends a run `cancelled`, shared with
//! leasing and step records. Whether a worker still holds the run is
//! judged by PostgreSQL's clock, like every lease.

use deadpool_postgres::GenericClient;
use deadpool_postgres::Object;

use super::{NOW_MS, PgContext, Prepared, parse_enum, runs};
use crate::store::{CANCELLED_BY_OPERATOR, CancelOutcome, Result, RunStatus};

pub(crate) const CANCEL: &str = "cancel run";

/// Ends an unfinished run `cancelled` now, whoever held it.
pub(super) async fn finish(
    tx: &impl GenericClient,
    id: &str,
    now_ms: i64,
    op: &'static str,
) -> Result<u64> {
    tx.prepared_execute(
        "UPDATE runs SET status = 'cancelled', error = $3, next_attempt_at = NULL,
                         lease_owner = NULL, lease_expires_at = NULL,
                         cancel_requested_at = COALESCE(cancel_requested_at, $2),
                         finished_at = $2, updated_at = $2
         WHERE id = $1 AND status IN ('queued', 'running')",
        &[&id, &now_ms, &CANCELLED_BY_OPERATOR],
    )
    .await
    .pg(op)
}

/// An operator's cancel: queued or unheld runs end now; a run a live
/// worker holds is marked for that worker to stop.
pub(crate) async fn cancel(conn: &mut Object, id: &str, now_ms: i64) -> Result<CancelOutcome> {
    let tx = conn.transaction().await.pg(CANCEL)?;
    let row = tx
        .prepared_opt(
            &format!(
                "SELECT status, cancel_requested_at IS NOT NULL,
                        lease_owner IS NOT NULL AND lease_expires_at > {NOW_MS}
                 FROM runs WHERE id = $1 FOR UPDATE"
            ),
            &[&id],
        )
        .await
        .pg(CANCEL)?;
    // Early answers end the transaction first (see `runs::retry`).
    let Some(row) = row else {
        tx.rollback().await.pg(CANCEL)?;
        return Ok(CancelOutcome::NotFound);
    };
    let status = parse_enum(CANCEL, row.get(0), RunStatus::parse)?;
    let requested: bool = row.get(1);
    let held: bool = row.get(2);
    let already = match status {
        RunStatus::Succeeded | RunStatus::Failed => {
            tx.rollback().await.pg(CANCEL)?;
            return Ok(CancelOutcome::Finished { status });
        }
        RunStatus::Cancelled => true,
        RunStatus::Queued | RunStatus::Running => requested,
    };
    if !already {
        if held {
            tx.prepared_execute(
                "UPDATE runs SET cancel_requested_at = $2, updated_at = $2 WHERE id = $1",
                &[&id, &now_ms],
            )
            .await
            .pg(CANCEL)?;
        } else {
            finish(&tx, id, now_ms, CANCEL).await?;
        }
    }
    let Some(run) = runs::get(&tx, id, CANCEL).await? else {
        return Ok(CancelOutcome::NotFound);
    };
    tx.commit().await.pg(CANCEL)?;
    let run = Box::new(run);
    Ok(if already {
        CancelOutcome::AlreadyCancelled { run }
    } else if held {
        CancelOutcome::Requested { run }
    } else {
        CancelOutcome::Cancelled { run }
    })
}
