//! Queueing a rule's `on_failure` run when one of its runs fails (SPEC §5),
//! inside the transaction that records the failure. The window decision is
//! `control::on_failure_plan`, taken under a transaction advisory lock per
//! rule, so nodes failing runs of one rule at once never open two windows.

use deadpool_postgres::Transaction;

use super::{PgContext, Prepared, from_json, lock_key, parse_enum, to_json};
use crate::store::control::{HandlerPlan, LatestHandler, on_failure_plan};
use crate::store::{FailureHandler, Result, RunStatus};

pub(super) const QUEUE_HANDLER: &str = "queue on_failure run";

/// Queues (or folds into the window's pending one) the `on_failure` run for
/// the failed run `failed` of `rule`.
pub(super) async fn queue(
    tx: &Transaction<'_>,
    schema: &str,
    failed: &str,
    rule: &str,
    handler: &FailureHandler,
    now_ms: i64,
) -> Result<()> {
    tx.prepared_execute(
        "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
        &[&lock_key(schema, &format!("on_failure:{rule}"))],
    )
    .await
    .pg(QUEUE_HANDLER)?;
    let latest = match tx
        .prepared_opt(
            "SELECT id, status, window_at, failure FROM runs
             WHERE kind = 'on_failure' AND rule = $1
             ORDER BY window_at DESC, id DESC LIMIT 1",
            &[&rule],
        )
        .await
        .pg(QUEUE_HANDLER)?
    {
        Some(row) => Some(LatestHandler {
            id: row.get(0),
            status: parse_enum(QUEUE_HANDLER, row.get(1), RunStatus::parse)?,
            window_at: row.get::<_, Option<i64>>(2).unwrap_or(0),
            failure: from_json(QUEUE_HANDLER, "run failure", row.get(3))?,
        }),
        None => None,
    };
    let mut plan = on_failure_plan(handler, latest.clone(), now_ms);
    if let HandlerPlan::Fold { id, failure } = &plan {
        let failure = to_json(QUEUE_HANDLER, "failure", failure)?;
        // The latest failure's delivery and definition: the window's run
        // reports it.
        let folded = tx
            .prepared_execute(
                "UPDATE runs SET failure = $2,
                                 delivery_id = (SELECT delivery_id FROM runs WHERE id = $3),
                                 definition = (SELECT definition FROM runs WHERE id = $3),
                                 updated_at = $4
                 WHERE id = $1 AND status = 'queued'",
                &[id, &failure, &failed, &now_ms],
            )
            .await
            .pg(QUEUE_HANDLER)?;
        if folded == 1 {
            return Ok(());
        }
        // A worker leased it meanwhile (leasing takes no rule lock): it
        // has started, so this failure opens the next window.
        plan = on_failure_plan(
            handler,
            latest.map(|l| LatestHandler {
                status: RunStatus::Running,
                ..l
            }),
            now_ms,
        );
    }
    let HandlerPlan::Queue { due_ms } = plan else {
        return Ok(());
    };
    let failure = to_json(QUEUE_HANDLER, "failure", &handler.failure)?;
    tx.prepared_execute(
        "INSERT INTO runs (id, delivery_id, rule, status, next_step, attempt, next_attempt_at,
                           created_at, updated_at, definition, outputs, kind, failure, window_at)
         SELECT $1, delivery_id, rule, 'queued', 0, 0, $2, $3, $3, definition, '{}',
                'on_failure', $4, $2
         FROM runs WHERE id = $5",
        &[&handler.id, &due_ms, &now_ms, &failure, &failed],
    )
    .await
    .pg(QUEUE_HANDLER)?;
    Ok(())
}
