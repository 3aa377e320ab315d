//! The runs page (`/ui/runs`): newest first, filtered by rule and status,
//! paged by cursor; with the `failed` filter, a bulk retry of every failed
//! run of the filter (`POST /ui/runs/retry`) through the same
//! `crate::ops::retry_matching` as `hookflow retry --status failed` and
//! `POST /api/runs/retry`, its count shown first (`ops::count_retryable`:
//! the retry's own filter, counted).

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use maud::{Markup, html};
use serde::Deserialize;

use super::UiError;
use super::auth::Current;
use super::delivery::run_table;
use super::layout::{csrf_field, segment, shell};
use crate::ops::{Resume, RetryFilter};
use crate::runlog_view::Redact;
use crate::server::AppState;
use crate::server::api::actor::UiActor;
use crate::store::{RunFilter, RunStatus};

/// Rows per page.
const PAGE: u32 = 50;

/// `GET /ui/runs?rule=&status=&before=`
pub async fn page(
    State(app): State<Arc<AppState>>,
    Extension(current): Extension<Current>,
    RawQuery(query): RawQuery,
) -> Result<Markup, UiError> {
    let mut rule = String::new();
    let mut status = String::new();
    let mut before = String::new();
    let mut retried = String::new();
    for (key, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        let value = value.trim().to_owned();
        match key.as_ref() {
            "rule" => rule = value,
            "status" => status = value,
            "before" => before = value,
            "retried" => retried = value,
            _ => {}
        }
    }
    let parsed_status = match status.as_str() {
        "" => None,
        s => Some(RunStatus::parse(s).ok_or_else(|| {
            UiError::BadRequest(format!(
                "status must be one of queued, running, succeeded, failed, cancelled; not `{s}`"
            ))
        })?),
    };
    let filter = RunFilter {
        rule: (!rule.is_empty()).then(|| rule.clone()),
        status: parsed_status,
        waiting_at: None,
        since_ms: None,
        limit: PAGE,
        before_id: (!before.is_empty()).then(|| before.clone()),
    };
    let items = app.store.list_runs(filter).await?;
    // What a bulk retry of this filter would re-queue, counted by the
    // retry's own filter, so the button states it before anything is queued.
    let bulk = if parsed_status == Some(RunStatus::Failed) {
        crate::ops::count_retryable(&app.store, &bulk_filter(&rule)).await?
    } else {
        0
    };
    let next = (items.len() >= PAGE as usize)
        .then(|| items.last().map(|r| r.id.clone()))
        .flatten();
    let rules = app.rules.load();
    let redact = Redact(rules.secrets());
    let items: Vec<_> = items.into_iter().map(|r| redact.run_item(r)).collect();
    let rule_names: Vec<&str> = rules.rules().iter().map(|r| r.name.as_str()).collect();
    let mut filters = form_urlencoded::Serializer::new(String::new());
    for (k, v) in [("rule", &rule), ("status", &status)] {
        if !v.is_empty() {
            filters.append_pair(k, v);
        }
    }
    let filters = filters.finish();
    let body = html! {
        h1 { "Runs" }
        @if !retried.is_empty() {
            p.notice role="status" { "Re-queued " (retried) " failed run(s) at their failed step." }
        }
        form.filters method="get" action="/ui/runs" hx-get="/ui/runs" hx-trigger="change, submit"
            hx-target="#list" hx-select="#list" hx-swap="outerHTML" hx-push-url="true" {
            label { "Rule"
                select name="rule" {
                    option value="" { "any" }
                    @for r in &rule_names { option value=(r) selected[*r == rule] { (r) } }
                }
            }
            label { "Status"
                select name="status" {
                    option value="" { "any" }
                    @for s in RunStatus::ALL {
                        option value=(s.as_str()) selected[s.as_str() == status] { (s.as_str()) }
                    }
                }
            }
            button type="submit" { "Filter" }
        }
        div #list {
            @if bulk > 0 {
                form.actions method="post" action="/ui/runs/retry" {
                    (csrf_field(&current))
                    input type="hidden" name="rule" value=(rule);
                    button.primary type="submit" { "Retry all " (bulk) " failed runs" }
                    span.muted { "each from its failed step, as `hookflow retry --status failed`" }
                }
            }
            (run_table(&items))
            @if let Some(next) = next {
                p.pager { a href=(format!("/ui/runs?{filters}&before={}", segment(&next))) { "Older →" } }
            }
        }
    };
    Ok(shell("Runs", "/ui/runs", &current, body))
}

/// The bulk retry form: the runs page's rule filter (empty for every rule).
#[derive(Debug, Deserialize)]
pub struct BulkRetryForm {
    #[serde(default)]
    rule: String,
}

fn bulk_filter(rule: &str) -> RetryFilter {
    RetryFilter {
        rule: (!rule.is_empty()).then(|| rule.to_owned()),
        since_ms: None,
    }
}

/// `POST /ui/runs/retry` (CSRF and `Origin` checked by `auth::guard`):
/// re-queues every failed run of the rule filter, then shows the failed
/// runs left.
pub async fn retry_all(
    State(app): State<Arc<AppState>>,
    UiActor(actor): UiActor,
    Form(form): Form<BulkRetryForm>,
) -> Result<Response, UiError> {
    let done = crate::ops::retry_matching(
        &app.store,
        &bulk_filter(&form.rule),
        Resume::Queued,
        false,
        &actor,
    )
    .await?;
    if !done.runs.is_empty() {
        (app.on_queued)();
    }
    tracing::info!(rule = %form.rule, runs = done.runs.len(), by = "ui", "failed runs retried");
    let mut to = form_urlencoded::Serializer::new(String::new());
    if !form.rule.is_empty() {
        to.append_pair("rule", &form.rule);
    }
    to.append_pair("status", "failed");
    to.append_pair("retried", &done.runs.len().to_string());
    Ok(Redirect::to(&format!("/ui/runs?{}", to.finish())).into_response())
}
