//! Retry and replay by filter (SPEC §5): `POST /api/runs/retry` and
//! `POST /api/deliveries/replay`, a filter in the JSON body. `dry_run` is
//! true unless the body sets it false: a filter typed by hand lists what it
//! would queue before it queues thousands of runs.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::ApiError;
use super::actor::ApiActor;
use super::dto::{ErrorBody, ReplayResult};
use super::runlog::parse_since;
use crate::server::AppState;

/// Which failed runs `POST /api/runs/retry` re-queues.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetryRequest {
    /// Only runs of this rule.
    pub rule: Option<String>,
    /// Only `failed` runs can be retried (the default).
    pub status: Option<String>,
    /// Only runs created since: a duration back from now (`2h`) or an
    /// RFC 3339 time.
    pub since: Option<String>,
    /// List only (default `true`); `false` re-queues.
    pub dry_run: Option<bool>,
    /// Resume with each rule as loaded now (the fixed URL, the corrected
    /// template) instead of the definition the run was queued with
    /// (default `false`). Runs whose rule is gone are skipped.
    pub current: Option<bool>,
}

/// What a retry by filter did (or, dry, would do).
#[derive(Debug, Serialize, ToSchema)]
pub struct RetryResult {
    pub dry_run: bool,
    /// The runs re-queued (or that would be), newest first.
    pub runs: Vec<String>,
    /// With `current`: the failed runs left alone (or that would be)
    /// because their rule is no longer loaded or has no step where they
    /// stopped.
    pub skipped: Vec<SkippedRun>,
}

/// A failed run a `current` retry could not re-queue.
#[derive(Debug, Serialize, ToSchema)]
pub struct SkippedRun {
    pub run: String,
    pub rule: String,
    /// Why, e.g. "rule `deploy` is no longer loaded".
    pub reason: String,
}

/// Which stored deliveries `POST /api/deliveries/replay` replays.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplayRequest {
    /// The source whose accepted deliveries are replayed.
    pub source: String,
    /// Only deliveries received since: a duration (`1d`) or an RFC 3339 time.
    pub since: Option<String>,
    /// Only deliveries of this event.
    pub event: Option<String>,
    /// List only (default `true`); `false` queues the runs.
    pub dry_run: Option<bool>,
}

/// What a replay by filter did (or, dry, would do): per delivery, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct BulkReplayResult {
    pub dry_run: bool,
    pub deliveries: Vec<ReplayResult>,
}

fn body<T>(body: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    body.map(|Json(t)| t)
        .map_err(|e| ApiError::bad_request(format!("the request body: {}", e.body_text())))
}

/// `POST /api/runs/retry`
#[utoipa::path(
    post,
    path = "/api/runs/retry",
    tag = "operations",
    request_body = RetryRequest,
    responses(
        (status = 200, description = "The failed runs matching the filter, re-queued at their failed step (or, dry, listed); with `current`, those that cannot resume with the rules as loaded now in `skipped`", body = RetryResult),
        (status = 400, description = "A bad filter", body = ErrorBody),
    )
)]
pub async fn retry(
    State(app): State<Arc<AppState>>,
    ApiActor(actor): ApiActor,
    request: Result<Json<RetryRequest>, JsonRejection>,
) -> Result<Json<RetryResult>, ApiError> {
    let request = body(request)?;
    if let Some(status) = request.status.as_deref()
        && status != "failed"
    {
        return Err(ApiError::bad_request(format!(
            "status `{status}`: only failed runs can be retried"
        )));
    }
    let filter = crate::ops::RetryFilter {
        rule: request.rule,
        since_ms: request.since.as_deref().map(parse_since).transpose()?,
    };
    let dry_run = request.dry_run.unwrap_or(true);
    let rules = app.rules.load_full();
    let resume = if request.current.unwrap_or(false) {
        crate::ops::Resume::Current(&rules)
    } else {
        crate::ops::Resume::Queued
    };
    let done = crate::ops::retry_matching(&app.store, &filter, resume, dry_run, &actor).await?;
    if !done.dry_run && !done.runs.is_empty() {
        (app.on_queued)();
    }
    Ok(Json(RetryResult {
        dry_run: done.dry_run,
        runs: done.runs,
        skipped: done
            .skipped
            .into_iter()
            .map(|s| SkippedRun {
                run: s.run,
                rule: s.rule,
                reason: s.reason,
            })
            .collect(),
    }))
}

/// `POST /api/deliveries/replay`
#[utoipa::path(
    post,
    path = "/api/deliveries/replay",
    tag = "operations",
    request_body = ReplayRequest,
    responses(
        (status = 200, description = "Every accepted delivery matching the filter, matched against the current rules with its runs queued (or, dry, listed)", body = BulkReplayResult),
        (status = 400, description = "A bad filter", body = ErrorBody),
    )
)]
pub async fn replay(
    State(app): State<Arc<AppState>>,
    ApiActor(actor): ApiActor,
    request: Result<Json<ReplayRequest>, JsonRejection>,
) -> Result<Json<BulkReplayResult>, ApiError> {
    let request = body(request)?;
    let filter = crate::ops::ReplayFilter {
        source: request.source,
        since_ms: request.since.as_deref().map(parse_since).transpose()?,
        event: request.event,
    };
    let dry_run = request.dry_run.unwrap_or(true);
    let rules = app.rules.load_full();
    let done = crate::ops::replay_matching(&app.store, &rules, &filter, dry_run, &actor).await?;
    if done.deliveries.iter().any(|d| !d.runs.is_empty()) {
        (app.on_queued)();
    }
    Ok(Json(BulkReplayResult {
        dry_run: done.dry_run,
        deliveries: done
            .deliveries
            .into_iter()
            .map(|r| ReplayResult {
                delivery: r.delivery,
                matched: r.matched,
                runs: r.runs,
                dry_run: r.dry_run,
            })
            .collect(),
    }))
}
