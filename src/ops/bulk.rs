//! Retry and replay by filter (SPEC §5): `hookflow retry --rule R --status
//! failed --since 2h`, `hookflow replay --source S --since 1d [--event E]`
//! and their API routes. A dry run lists what would be queued. The work is
//! done one run (or delivery) per store command, a page at a time: each
//! retry is its own small transaction, so the writer interleaves ingest's
//! commits with them instead of holding one long transaction.

use std::sync::Arc;

use serde::Serialize;

use super::{OpsError, Replay};
use crate::rules::RuleSet;
use crate::store::{
    Actor, DeliveryFilter, DeliveryStatus, RetryOutcome, RunFilter, RunStatus, Store,
};

/// Runs or deliveries read per page.
const PAGE: u32 = 500;

/// Which failed runs to retry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetryFilter {
    pub rule: Option<String>,
    /// Only runs created at or after this time (unix ms).
    pub since_ms: Option<i64>,
}

/// What a bulk retry did (or, dry, would do).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BulkRetry {
    pub dry_run: bool,
    /// The runs re-queued (or that would be), newest first.
    pub runs: Vec<String>,
}

/// Re-queues every failed run matching `filter` at its failed step.
pub async fn retry_matching(
    store: &Arc<dyn Store>,
    filter: &RetryFilter,
    dry_run: bool,
    actor: &Actor,
) -> Result<BulkRetry, OpsError> {
    // Collected first: re-queued runs leave the `failed` listing, which
    // would shift a cursor walked while retrying.
    let mut ids = Vec::new();
    let mut before_id = None;
    loop {
        let page = store
            .list_runs(RunFilter {
                rule: filter.rule.clone(),
                status: Some(RunStatus::Failed),
                since_ms: filter.since_ms,
                limit: PAGE,
                before_id: before_id.take(),
                waiting_at: None,
            })
            .await?;
        let full = page.len() == PAGE as usize;
        before_id = page.last().map(|r| r.id.clone());
        ids.extend(page.into_iter().map(|r| r.id));
        if !full {
            break;
        }
    }
    if dry_run {
        return Ok(BulkRetry { dry_run, runs: ids });
    }
    let mut runs = Vec::with_capacity(ids.len());
    for id in ids {
        let now = chrono::Utc::now().timestamp_millis();
        // Retried meanwhile by someone else: not ours to report.
        if let RetryOutcome::Requeued(run) = store.retry_run(&id, now).await? {
            let detail =
                serde_json::json!({ "step": run.next_step, "attempt": run.attempt, "bulk": true });
            super::audit(store, crate::store::ActionKind::Retry, &id, actor, detail).await;
            runs.push(id);
        }
    }
    Ok(BulkRetry { dry_run, runs })
}

/// Which stored deliveries to replay.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayFilter {
    pub source: String,
    pub since_ms: Option<i64>,
    /// Only deliveries of this event.
    pub event: Option<String>,
}

/// What a bulk replay did (or, dry, would do): one entry per delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BulkReplay {
    pub dry_run: bool,
    pub deliveries: Vec<Replay>,
}

/// Replays every accepted delivery of `filter.source` (since, event)
/// against `rules`, oldest first so the runs queue in arrival order.
pub async fn replay_matching(
    store: &Arc<dyn Store>,
    rules: &RuleSet,
    filter: &ReplayFilter,
    dry_run: bool,
    actor: &Actor,
) -> Result<BulkReplay, OpsError> {
    let mut ids = Vec::new();
    let mut before_id = None;
    loop {
        let page = store
            .list_deliveries(DeliveryFilter {
                source: Some(filter.source.clone()),
                since_ms: filter.since_ms,
                limit: PAGE,
                before_id: before_id.take(),
            })
            .await?;
        let full = page.len() == PAGE as usize;
        before_id = page.last().map(|d| d.id.clone());
        ids.extend(
            page.into_iter()
                .filter(|d| d.status == DeliveryStatus::Accepted)
                .filter(|d| filter.event.as_ref().is_none_or(|e| *e == d.event))
                .map(|d| d.id),
        );
        if !full {
            break;
        }
    }
    ids.reverse();
    let mut deliveries = Vec::with_capacity(ids.len());
    for id in ids {
        deliveries.push(super::replay(store, rules, &id, dry_run, actor).await?);
    }
    Ok(BulkReplay {
        dry_run,
        deliveries,
    })
}
