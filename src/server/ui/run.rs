//! One run (`/ui/runs/{id}`): its state, the next retry time, its steps
//! (from the definition it was queued with) and every attempt of each,
//! with the request summary, status, duration and the response or the
//! command's output; the Retry button for a failed run (`POST …/retry`,
//! the same `crate::ops::retry` as the CLI and the API) and Cancel for an
//! unfinished one (`POST …/cancel`, `crate::ops::cancel` as `hookflow
//! cancel`).

use std::sync::Arc;

use axum::Extension;
use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde_json::Value;

use super::UiError;
use super::auth::Current;
use super::layout::{badge, csrf_field, duration, pre, row, segment, shell, time};
use crate::runlog_view::{
    Attempt, AttemptOutcome, OperatorActionView, Redact, RunDetail, RunStatus,
};

/// Operator actions shown per run or delivery (newest).
pub const TRAIL_SHOWN: u32 = 20;
use crate::server::AppState;

/// `GET /ui/runs/{id}`
pub async fn page(
    State(app): State<Arc<AppState>>,
    Extension(current): Extension<Current>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Markup, UiError> {
    let cancel = form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .find(|(k, _)| k == "cancel")
        .map(|(_, v)| v.into_owned());
    let record = app
        .store
        .get_run(&id)
        .await?
        .ok_or_else(|| UiError::NotFound {
            what: "run",
            id: id.clone(),
        })?;
    let steps = step_names(&record.definition);
    let attempts = app.store.attempts_for_run(&id).await?;
    let rules = app.rules.load();
    let actions = app.store.operator_actions(Some(&id), TRAIL_SHOWN).await?;
    let redact = Redact(rules.secrets());
    let mut run = redact.run(record, attempts);
    run.operator_actions = redact.trail(actions);
    let body = html! {
        h1 { "Run " span.mono { (run.run.id) } }
        @if let Some(cancel) = cancel.as_deref() {
            p.notice role="status" { (match cancel {
                "cancelled" => "Cancelled.",
                "requested" => "Cancel requested: its worker stops the step within seconds (reload to see it).",
                _ => "It was already cancelled.",
            }) }
        }
        (summary(&run))
        @if matches!(run.run.status, RunStatus::Queued | RunStatus::Running) {
            form.actions method="post" action=(format!("/ui/runs/{}/cancel", segment(&run.run.id))) {
                (csrf_field(&current))
                button.danger type="submit" { "Cancel" }
                span.muted { "stops it; a running step is interrupted and no later step runs" }
            }
        }
        @if run.run.status == RunStatus::Failed {
            form.actions method="post" action=(format!("/ui/runs/{}/retry", segment(&run.run.id))) {
                (csrf_field(&current))
                button.primary type="submit" { "Retry" }
                button type="submit" name="current" value="true" { "Retry with the rule as loaded now" }
                span.muted { "from its failed step; the steps before it are not run again" }
            }
        }
        h2 { "Steps" }
        @for (index, (label, kind)) in steps.iter().enumerate() {
            (step(&run, index as u32, label, kind))
        }
        @if steps.is_empty() {
            p.muted { "The run's definition lists no steps." }
        }
        h2 { "Operator actions" }
        (trail(&run.operator_actions))
        h2 { "Outputs" }
        (pre(&serde_json::to_string_pretty(&run.outputs).unwrap_or_default()))
    };
    Ok(shell("Run", "/ui/runs", &current, body))
}

fn summary(run: &RunDetail) -> Markup {
    let r = &run.run;
    let delivery = format!("/ui/deliveries/{}", segment(&r.delivery_id));
    html! {
        div.card { dl.meta {
            (row("Status", Some(html! { span #run-status { (badge(r.state.as_str())) } })))
            (row("Rule", Some(html! { span.mono { (r.rule) } })))
            (row("Delivery", Some(html! { a.mono href=(delivery) { (r.delivery_id) } })))
            (row("Created", Some(time(r.created_at))))
            (row("Updated", Some(time(r.updated_at))))
            (row("Finished", r.finished_at.map(time)))
            (row("Next step", (!matches!(r.status, RunStatus::Succeeded | RunStatus::Cancelled))
                .then(|| html! { (r.next_step + 1) " (attempts so far: " (r.attempt) ")" })))
            (row("Next try", r.next_attempt_at.filter(|_| r.finished_at.is_none()).map(time)))
            (row("Cancel asked", r.cancel_requested_at.filter(|_| r.finished_at.is_none()).map(time)))
            (row("Error", r.error.as_ref().map(|e| html! { span.error { (e) } })))
        } }
    }
}

/// One step: where the run is with it, and its attempts.
fn step(run: &RunDetail, index: u32, label: &str, kind: &str) -> Markup {
    let attempts: Vec<&Attempt> = run
        .attempts
        .iter()
        .filter(|a| a.step_index == index)
        .collect();
    let state = match attempts.last().map(|a| a.outcome.as_str()) {
        Some(outcome) => outcome,
        None if index >= run.run.next_step => "pending",
        None => "done",
    };
    html! {
        div.card {
            div { strong { (index + 1) ". " span.mono { (label) } } " " span.muted { (kind) } " " (badge(state)) }
            @if attempts.is_empty() {
                p.muted { "No attempt yet." }
            }
            @for a in attempts { (attempt(a)) }
        }
    }
}

fn attempt(a: &Attempt) -> Markup {
    html! {
        details open[a.outcome != AttemptOutcome::Succeeded] {
            summary {
                "Attempt " (a.attempt) " · " (badge(a.outcome.as_str())) " · " (time(a.started_at))
                @if let Some(ms) = a.duration_ms { " · " (duration(ms)) }
                @if let Some(code) = a.status_code { " · status " (code) }
            }
            @if !a.request.is_null() {
                div.muted { "Request" }
                (pre(&serde_json::to_string_pretty(&a.request).unwrap_or_default()))
            }
            @for (label, text) in [("Error", &a.error), ("Response", &a.response), ("stdout", &a.stdout), ("stderr", &a.stderr)] {
                @if let Some(text) = text.as_deref().filter(|t| !t.is_empty()) {
                    div.muted { (label) } (pre(text))
                }
            }
        }
    }
}

/// Who replayed, retried or cancelled, when and from where (newest
/// [`TRAIL_SHOWN`]); also the delivery page's.
pub fn trail(actions: &[OperatorActionView]) -> Markup {
    html! {
        @if actions.is_empty() {
            p.muted { "None." }
        } @else {
            div.scroll { table.trail {
                thead { tr { th { "When" } th { "Action" } th { "Via" } th.hide-narrow { "From" } th.hide-narrow { "Detail" } } }
                tbody { @for a in actions {
                    tr {
                        td { (time(a.at)) }
                        td { (a.action) }
                        td { (a.via) }
                        td.hide-narrow.mono { (a.client) }
                        td.hide-narrow.mono { @if !a.detail.is_null() { (a.detail.to_string()) } }
                    }
                } }
            } }
        }
    }
}

/// The steps of a run's definition: (id or 1-based position, action kind).
fn step_names(definition: &Value) -> Vec<(String, String)> {
    let Some(actions) = definition.get("actions").and_then(Value::as_array) else {
        return Vec::new();
    };
    actions
        .iter()
        .enumerate()
        .map(|(i, step)| {
            let id = step
                .get("id")
                .and_then(Value::as_str)
                .map_or_else(|| (i + 1).to_string(), str::to_owned);
            let kind = ["http", "slack", "shell"]
                .into_iter()
                .find(|k| step.get(*k).is_some())
                .unwrap_or("step");
            (id, kind.to_owned())
        })
        .collect()
}

/// `POST /ui/runs/{id}/retry` (CSRF and `Origin` checked by `auth::guard`).
/// With `current=true` (the second button) the run resumes with its rule as
/// loaded now, as `hookflow retry --current` does.
pub async fn retry(
    State(app): State<Arc<AppState>>,
    crate::server::api::actor::UiActor(actor): crate::server::api::actor::UiActor,
    Path(id): Path<String>,
    axum::Form(form): axum::Form<RetryForm>,
) -> Result<Response, UiError> {
    let current = form.current.as_deref() == Some("true");
    let rules = app.rules.load_full();
    let resume = if current {
        crate::ops::Resume::Current(&rules)
    } else {
        crate::ops::Resume::Queued
    };
    crate::ops::retry(&app.store, &id, resume, &actor).await?;
    (app.on_queued)();
    tracing::info!(run = %id, current, by = "ui", "run retried");
    Ok(Redirect::to(&format!("/ui/runs/{}", segment(&id))).into_response())
}

/// The Retry form: which button was pressed (the CSRF field is the
/// guard's).
#[derive(Debug, serde::Deserialize)]
pub struct RetryForm {
    #[serde(default)]
    current: Option<String>,
}

/// `POST /ui/runs/{id}/cancel` (CSRF and `Origin` checked by `auth::guard`).
pub async fn cancel(
    State(app): State<Arc<AppState>>,
    crate::server::api::actor::UiActor(actor): crate::server::api::actor::UiActor,
    Path(id): Path<String>,
) -> Result<Response, UiError> {
    let done = crate::ops::cancel(&app.store, &id, &actor).await?;
    tracing::info!(run = %id, outcome = done.outcome.as_str(), by = "ui", "run cancelled");
    let to = format!("/ui/runs/{}?cancel={}", segment(&id), done.outcome.as_str());
    Ok(Redirect::to(&to).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_named_by_id_or_position_with_their_kind() {
        let def = serde_json::json!({ "actions": [
            { "id": "notify", "slack": {} },
            { "http": { "url": "x" } },
        ] });
        assert_eq!(
            step_names(&def),
            [
                ("notify".to_owned(), "slack".to_owned()),
                ("2".to_owned(), "http".to_owned())
            ]
        );
        assert!(step_names(&Value::Null).is_empty());
    }
}
