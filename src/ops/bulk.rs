//! Retry and replay by filter (SPEC §5): `hookflow retry --rule R --status
//! failed --since 2h`, `hookflow replay --source S --since 1d [--event E]`
//! and their API routes. A dry run lists what would be queued.
//!
//! A bulk retry must not stall ingest (10,000 runs re-queued while
//! deliveries keep arriving). Each run is its own
//! small store command (re-queue, then its audit entry), issued [`BATCH`]
//! at a time: SQLite's writer group-commits a batch in about one
//! transaction, and ingest's commits queue between batches instead of
//! behind all 10,000; PostgreSQL spreads a batch over its pool. Replay
//! goes one delivery at a time.

use std::sync::Arc;

use serde::Serialize;

use super::{OpsError, Replay, Resume};
use crate::rules::RuleSet;
use crate::store::{
    ActionKind, Actor, DeliveryFilter, DeliveryStatus, Redefinition, RetryOutcome, RunFilter,
    RunRecord, RunStatus, Store, StoreError,
};

/// Runs or deliveries read per page.
const PAGE: u32 = 500;

/// Runs re-queued at once: with their audit entries, within one group
/// commit of SQLite's writer (256 commands).
const BATCH: usize = 100;

/// The pause between two batches (see [`retry_matching`]).
const BATCH_PAUSE: std::time::Duration = std::time::Duration::from_millis(1);

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
    /// `--current`: the failed runs left as they are because the rules as
    /// loaded now have nothing for them to resume with.
    pub skipped: Vec<Skipped>,
}

/// A failed run a `--current` retry could not re-queue, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    pub run: String,
    pub rule: String,
    pub reason: String,
}

/// Re-queues every failed run matching `filter` at its failed step, with
/// the definition `resume` names.
pub async fn retry_matching(
    store: &Arc<dyn Store>,
    filter: &RetryFilter,
    resume: Resume<'_>,
    dry_run: bool,
    actor: &Actor,
) -> Result<BulkRetry, OpsError> {
    // Collected first: re-queued runs leave the `failed` listing, which
    // would shift a cursor walked while retrying.
    let mut failed: Vec<RunRecord> = Vec::new();
    let mut before_id = None;
    loop {
        let page = store
            .list_runs(failed_runs(filter, before_id.take()))
            .await?;
        let full = page.len() == PAGE as usize;
        before_id = page.last().map(|r| r.id.clone());
        failed.extend(page);
        if !full {
            break;
        }
    }
    let mut todo: Vec<(String, Option<Redefinition>)> = Vec::with_capacity(failed.len());
    let mut skipped = Vec::new();
    for run in failed {
        match resume {
            Resume::Queued => todo.push((run.id, None)),
            Resume::Current(rules) => match super::current::redefinition(store, rules, &run).await?
            {
                Ok(new) => todo.push((run.id, Some(new))),
                Err(reason) => skipped.push(Skipped {
                    run: run.id,
                    rule: run.rule,
                    reason,
                }),
            },
        }
    }
    if dry_run {
        return Ok(BulkRetry {
            dry_run,
            runs: todo.into_iter().map(|(id, _)| id).collect(),
            skipped,
        });
    }
    let current = resume.is_current();
    let mut runs = Vec::with_capacity(todo.len());
    let mut todo = todo.into_iter().peekable();
    while todo.peek().is_some() {
        let batch: Vec<_> = todo
            .by_ref()
            .take(BATCH)
            .map(|(id, redefine)| {
                let (store, actor) = (store.clone(), actor.clone());
                tokio::spawn(async move { retry_one(&store, id, redefine, current, &actor).await })
            })
            .collect();
        for task in batch {
            match task.await {
                Ok(done) => runs.extend(done?),
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                // Tasks are cancelled only when the runtime shuts down.
                Err(_) => {}
            }
        }
        // Between batches, a pause: on the server, ingest's commands have
        // the writer to themselves meanwhile; from the CLI (a second
        // process on the same SQLite file) the server's writer gets the
        // lock. 10,000 runs: 100 pauses, 0.1 s.
        tokio::time::sleep(BATCH_PAUSE).await;
    }
    Ok(BulkRetry {
        dry_run,
        runs,
        skipped,
    })
}

/// How many runs a bulk retry of `filter` would re-queue (its dry run's
/// count, without reading the runs): the dashboard's "Retry all N".
pub async fn count_retryable(
    store: &Arc<dyn Store>,
    filter: &RetryFilter,
) -> Result<u64, OpsError> {
    Ok(store.count_runs(failed_runs(filter, None)).await?)
}

/// The failed runs a bulk retry of `filter` takes, a page after `before_id`.
fn failed_runs(filter: &RetryFilter, before_id: Option<String>) -> RunFilter {
    RunFilter {
        rule: filter.rule.clone(),
        status: Some(RunStatus::Failed),
        since_ms: filter.since_ms,
        limit: PAGE,
        before_id,
        waiting_at: None,
    }
}

/// One run of a bulk retry: re-queued and audited, or `None` when someone
/// else retried it meanwhile (not ours to report).
async fn retry_one(
    store: &Arc<dyn Store>,
    id: String,
    redefine: Option<Redefinition>,
    current: bool,
    actor: &Actor,
) -> Result<Option<String>, StoreError> {
    let now = chrono::Utc::now().timestamp_millis();
    let RetryOutcome::Requeued(run) = store.retry_run(&id, now, redefine).await? else {
        return Ok(None);
    };
    let detail = super::retry_detail(&run, current, true);
    super::audit(store, ActionKind::Retry, &id, actor, detail).await;
    Ok(Some(id))
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
