//! Queueing a rule's `on_failure` run when one of its runs fails (SPEC §5),
//! inside the transaction that records the failure: the handler is queued
//! exactly when the failure commits. The window decision is
//! `control::on_failure_plan`; the writer serialises it per database.

use rusqlite::{Connection, OptionalExtension, params};

use super::{enum_column, json_column, to_json};
use crate::store::control::{HandlerPlan, LatestHandler, on_failure_plan};
use crate::store::{Context, FailureHandler, Result, RunStatus};

pub(super) const QUEUE_HANDLER: &str = "queue on_failure run";

/// Queues (or folds into the window's pending one) the `on_failure` run for
/// the failed run `failed` of `rule`.
pub(super) fn queue(
    conn: &Connection,
    failed: &str,
    rule: &str,
    handler: &FailureHandler,
    now_ms: i64,
) -> Result<()> {
    let latest = conn
        .prepare_cached(
            "SELECT id, status, window_at, failure FROM runs
             WHERE kind = 'on_failure' AND rule = ?1
             ORDER BY window_at DESC, id DESC LIMIT 1",
        )
        .and_then(|mut stmt| {
            stmt.query_row([rule], |row| {
                Ok(LatestHandler {
                    id: row.get(0)?,
                    status: enum_column(row, 1, RunStatus::parse)?,
                    window_at: row.get::<_, Option<i64>>(2)?.unwrap_or(0),
                    failure: json_column(row, 3)?,
                })
            })
            .optional()
        })
        .ctx(QUEUE_HANDLER)?;
    let due_ms = match on_failure_plan(handler, latest, now_ms) {
        HandlerPlan::Fold { id, failure } => {
            let failure = to_json(QUEUE_HANDLER, "failure", &failure)?;
            // The latest failure's delivery and definition: the window's
            // run reports it.
            conn.prepare_cached(
                "UPDATE runs SET failure = ?2,
                                 delivery_id = (SELECT delivery_id FROM runs WHERE id = ?3),
                                 definition = (SELECT definition FROM runs WHERE id = ?3),
                                 updated_at = ?4
                 WHERE id = ?1 AND status = 'queued'",
            )
            .and_then(|mut stmt| stmt.execute(params![id, failure, failed, now_ms]))
            .ctx(QUEUE_HANDLER)?;
            return Ok(());
        }
        HandlerPlan::Queue { due_ms } => due_ms,
    };
    let failure = to_json(QUEUE_HANDLER, "failure", &handler.failure)?;
    conn.prepare_cached(
        "INSERT INTO runs (id, delivery_id, rule, status, next_step, attempt, next_attempt_at,
                           created_at, updated_at, definition, outputs, kind, failure, window_at)
         SELECT ?1, delivery_id, rule, 'queued', 0, 0, ?2, ?3, ?3, definition, '{}',
                'on_failure', ?4, ?2
         FROM runs WHERE id = ?5",
    )
    .and_then(|mut stmt| stmt.execute(params![handler.id, due_ms, now_ms, failure, failed]))
    .ctx(QUEUE_HANDLER)?;
    Ok(())
}
