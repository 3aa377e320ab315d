//! Operators' writes: replaying a delivery, retrying a failed run and
//! cancelling a run. The work is `crate::ops` (shared with the CLI); this
//! wakes the workers, stops a cancelled run held here at once, and names
//! the caller for the audit trail.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, RawQuery, State};

use super::ApiError;
use super::actor::ApiActor;
use super::dto::{CancelResult, ErrorBody, Redact, ReplayResult, RunItem};
use crate::server::AppState;

/// `POST /api/deliveries/{id}/replay`
#[utoipa::path(
    post,
    path = "/api/deliveries/{id}/replay",
    tag = "operations",
    params(
        ("id" = String, Path, description = "Delivery id"),
        ("dry_run" = Option<bool>, Query, description = "Match and report only; queue nothing"),
    ),
    responses(
        (status = 200, description = "Matched against the current rules; one run queued per matching rule", body = ReplayResult),
        (status = 400, description = "`dry_run` is neither `true` nor `false`", body = ErrorBody),
        (status = 404, description = "No such delivery", body = ErrorBody),
        (status = 409, description = "The delivery cannot be replayed (a rejected request has no body)", body = ErrorBody),
    )
)]
pub async fn replay(
    State(app): State<Arc<AppState>>,
    ApiActor(actor): ApiActor,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Json<ReplayResult>, ApiError> {
    let dry_run = bool_param(query.as_deref(), "dry_run")?.unwrap_or(false);
    let rules = app.rules.load_full();
    let replay = crate::ops::replay(&app.store, &rules, &id, dry_run, &actor).await?;
    if !replay.runs.is_empty() {
        (app.on_queued)();
    }
    Ok(Json(ReplayResult {
        delivery: replay.delivery,
        matched: replay.matched,
        runs: replay.runs,
        dry_run: replay.dry_run,
    }))
}

/// `POST /api/runs/{id}/retry`
#[utoipa::path(
    post,
    path = "/api/runs/{id}/retry",
    tag = "operations",
    params(
        ("id" = String, Path, description = "Run id"),
        ("current" = Option<bool>, Query, description = "Resume with the rule as loaded now (the fixed URL, the corrected template) instead of the definition the run was queued with"),
    ),
    responses(
        (status = 200, description = "Re-queued at its failed step", body = RunItem),
        (status = 400, description = "`current` is neither `true` nor `false`", body = ErrorBody),
        (status = 404, description = "No such run", body = ErrorBody),
        (status = 409, description = "The run has not failed, or (`current`) its rule is no longer loaded or has no step where it stopped", body = ErrorBody),
    )
)]
pub async fn retry(
    State(app): State<Arc<AppState>>,
    ApiActor(actor): ApiActor,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Json<RunItem>, ApiError> {
    let current = bool_param(query.as_deref(), "current")?.unwrap_or(false);
    let rules = app.rules.load_full();
    let resume = if current {
        crate::ops::Resume::Current(&rules)
    } else {
        crate::ops::Resume::Queued
    };
    let run = crate::ops::retry(&app.store, &id, resume, &actor).await?;
    (app.on_queued)();
    let rules = app.rules.load();
    Ok(Json(Redact(rules.secrets()).run_item(run)))
}

/// Query parameter `name` as a boolean: exactly the document's `true` or
/// `false` (a value it calls invalid is refused, not guessed at).
fn bool_param(query: Option<&str>, name: &str) -> Result<Option<bool>, ApiError> {
    let mut found = None;
    for (key, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        if key == name {
            found = Some(match value.as_ref() {
                "true" => true,
                "false" => false,
                other => {
                    return Err(ApiError::bad_request(format!(
                        "{name} must be true or false, not `{other}`"
                    )));
                }
            });
        }
    }
    Ok(found)
}

/// `POST /api/runs/{id}/cancel`
#[utoipa::path(
    post,
    path = "/api/runs/{id}/cancel",
    tag = "operations",
    params(("id" = String, Path, description = "Run id")),
    responses(
        (status = 200, description = "`cancelled`: it was queued or waiting and is cancelled now; `requested`: a worker holds it and stops it within seconds; `already_cancelled`: nothing to do", body = CancelResult),
        (status = 404, description = "No such run", body = ErrorBody),
        (status = 409, description = "The run has finished (succeeded or failed)", body = ErrorBody),
    )
)]
pub async fn cancel(
    State(app): State<Arc<AppState>>,
    ApiActor(actor): ApiActor,
    Path(id): Path<String>,
) -> Result<Json<CancelResult>, ApiError> {
    let done = crate::ops::cancel(&app.store, &id, &actor).await?;
    if done.outcome == crate::ops::CancelState::Requested {
        // Held here? Stop it now; else its node's heartbeat sees the mark.
        (app.on_cancel)(&id);
    }
    let rules = app.rules.load();
    Ok(Json(CancelResult {
        outcome: done.outcome.as_str().to_owned(),
        run: Redact(rules.secrets()).run_item(done.run),
    }))
}
