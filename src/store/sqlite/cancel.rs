//! Cancelling runs (SPEC §5): an operator's cancel, decided in one writer
//! command, and the SQL that ends a run `cancelled`, shared with leasing
//! and step records (a marked run nobody holds is cancelled there).

use rusqlite::{Connection, params};

use super::runs;
use crate::store::{CANCELLED_BY_OPERATOR, CancelOutcome, Context, Result, RunStatus};

pub(super) const CANCEL: &str = "cancel run";

/// Ends an unfinished run `cancelled` now, whoever held it.
pub(super) fn finish(conn: &Connection, id: &str, now_ms: i64) -> rusqlite::Result<usize> {
    conn.prepare_cached(
        "UPDATE runs SET status = 'cancelled', error = ?3, next_attempt_at = NULL,
                         lease_owner = NULL, lease_expires_at = NULL,
                         cancel_requested_at = COALESCE(cancel_requested_at, ?2),
                         finished_at = ?2, updated_at = ?2
         WHERE id = ?1 AND status IN ('queued', 'running')",
    )?
    .execute(params![id, now_ms, CANCELLED_BY_OPERATOR])
}

/// An operator's cancel: queued or unleased runs end now; a run a live
/// worker holds is marked for that worker to stop.
pub(super) fn cancel(conn: &Connection, id: &str, now_ms: i64) -> Result<CancelOutcome> {
    let Some(run) = runs::get(conn, id).ctx(CANCEL)? else {
        return Ok(CancelOutcome::NotFound);
    };
    match run.status {
        RunStatus::Succeeded | RunStatus::Failed => {
            return Ok(CancelOutcome::Finished { status: run.status });
        }
        RunStatus::Cancelled => return Ok(CancelOutcome::AlreadyCancelled { run: Box::new(run) }),
        RunStatus::Queued | RunStatus::Running => {}
    }
    if run.cancel_requested_at.is_some() {
        return Ok(CancelOutcome::AlreadyCancelled { run: Box::new(run) });
    }
    let held = run.lease_owner.is_some() && run.lease_expires_at.is_some_and(|t| t > now_ms);
    if held {
        conn.prepare_cached(
            "UPDATE runs SET cancel_requested_at = ?2, updated_at = ?2 WHERE id = ?1",
        )
        .and_then(|mut stmt| stmt.execute(params![id, now_ms]))
        .ctx(CANCEL)?;
    } else {
        finish(conn, id, now_ms).ctx(CANCEL)?;
    }
    let Some(run) = runs::get(conn, id).ctx(CANCEL)? else {
        return Ok(CancelOutcome::NotFound);
    };
    let run = Box::new(run);
    Ok(if held {
        CancelOutcome::Requested { run }
    } else {
        CancelOutcome::Cancelled { run }
    })
}
