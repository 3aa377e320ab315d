//! One delivery (`/ui/deliveries/{id}`): the request (headers redacted, the
//! body pretty-printed when it is JSON), the match trace rule by rule with
//! the failing condition and the value it saw, the runs it queued, and the
//! Replay button (`POST …/replay`, the same `crate::ops::replay` as the CLI
//! and the API).
//!
//! Its data is the API's own view of a delivery (`api::dto::Redact`), so
//! the page shows exactly what `GET /api/deliveries/{id}` does.

use std::sync::Arc;

use axum::Extension;
use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};

use super::UiError;
use super::auth::Current;
use super::layout::{badge, csrf_field, pre, row, segment, shell, time};
use crate::rules::{Miss, RuleSet, RuleTrace, Trace};
use crate::runlog_view::{BodyEncoding, DeliveryDetail, DeliveryStatus, Redact, RunItem};
use crate::server::AppState;

/// `GET /ui/deliveries/{id}`
pub async fn page(
    State(app): State<Arc<AppState>>,
    Extension(current): Extension<Current>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Markup, UiError> {
    let record = app
        .store
        .get_delivery(&id)
        .await?
        .ok_or_else(|| UiError::NotFound {
            what: "delivery",
            id: id.clone(),
        })?;
    let run_records = app.store.runs_for_delivery(&id).await?;
    let rules = app.rules.load();
    let trail = app
        .store
        .operator_actions(Some(&id), super::run::TRAIL_SHOWN)
        .await?;
    let redact = Redact(rules.secrets());
    let mut d = redact.delivery(record, run_records);
    d.operator_actions = redact.trail(trail);
    let replayed = form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .find(|(k, _)| k == "replayed")
        .and_then(|(_, v)| v.parse::<usize>().ok());
    let body = html! {
        h1 { "Delivery " span.mono { (d.id) } }
        @if let Some(n) = replayed {
            p.notice role="status" {
                "Replayed against the current rules: "
                @if n == 0 { "no rule matches now, so no run was queued." }
                @else { (n) " run" @if n != 1 { "s" } " queued (below)." }
            }
        }
        (summary(&d))
        @if d.status == DeliveryStatus::Accepted || d.body.is_some() {
            form.actions method="post" action=(format!("/ui/deliveries/{}/replay", segment(&d.id))) {
                (csrf_field(&current))
                button.primary type="submit" { "Replay" }
                span.muted { "matches it against the current rules and queues a run per matching rule" }
            }
        }
        h2 { "Match trace" }
        (trace(&d, &rules))
        h2 { "Runs" }
        (run_table(&d.runs))
        h2 { "Operator actions" }
        (super::run::trail(&d.operator_actions))
        h2 { "Headers" }
        @if d.headers.is_empty() {
            p.muted { "None stored." }
        } @else {
            div.scroll { table {
                thead { tr { th { "Name" } th { "Value" } } }
                tbody { @for h in &d.headers { tr { td.mono { (h.name) } td.mono { (h.value) } } } }
            } }
        }
        h2 { "Body" }
        (body_view(&d))
    };
    Ok(shell("Delivery", "/ui/deliveries", &current, body))
}

fn summary(d: &DeliveryDetail) -> Markup {
    let request = match &d.query {
        Some(q) => format!("{} {}?{}", d.method, d.path, q),
        None => format!("{} {}", d.method, d.path),
    };
    html! {
        div.card { dl.meta {
            (row("Received", Some(time(d.received_at))))
            (row("Source", Some(html! { (d.source) })))
            (row("Status", Some(html! {
                (badge(d.status.as_str()))
                @if let Some(s) = d.reject_status { " " (s) }
            })))
            (row("Why", d.reject_reason.as_ref().map(|r| html! { (r) })))
            (row("Event", (!d.event.is_empty()).then(|| html! { (d.event) })))
            (row("Request", Some(html! { span.mono { (request) } })))
            (row("From", Some(html! { span.mono { (d.remote_addr) } })))
            (row("Dedupe key", d.dedupe_key.as_ref().map(|k| html! { span.mono { (k) } })))
            (row("Matched", Some(html! {
                @if d.matched.is_empty() { span.muted { "no rule" } }
                @else { span.mono { (d.matched.join(", ")) } }
            })))
        } }
    }
}

/// Every rule of the source: matched, or why not (for the rules excluded
/// by event, stored by name, from their `event:` in the current rules).
fn trace(d: &DeliveryDetail, rules: &RuleSet) -> Markup {
    let parsed: Option<Trace> = serde_json::from_value(d.trace.clone()).ok();
    let Some(trace) = parsed.map(|t| rules.expand(&d.source, &t)) else {
        return html! { p.muted { "No trace: the request was refused before matching." } };
    };
    if trace.rules.is_empty() {
        return html! { p.muted { "No rule listens to source " (d.source) "." } };
    }
    html! {
        div.scroll { table #trace {
            thead { tr { th { "Rule" } th { "Result" } th { "Why not" } } }
            tbody { @for r in &trace.rules { (trace_row(r)) } }
        } }
    }
}

fn trace_row(r: &RuleTrace) -> Markup {
    html! {
        tr {
            td.mono { (r.rule) }
            td { @if r.matched { (badge("matched")) } @else { (badge("no match")) } }
            td.trace-miss {
                @match &r.miss {
                    None => {}
                    Some(Miss::Event { event, expected }) => {
                        "event " span.mono { @if event.is_empty() { "(none)" } @else { (event) } }
                        " is not one of: " span.mono { (expected.join(", ")) }
                    }
                    Some(miss @ Miss::EventThen { .. }) => {
                        (miss.to_string())
                    }
                    Some(Miss::Condition(failure)) => {
                        (pre(&failure.to_string()))
                    }
                }
            }
        }
    }
}

/// The runs of a delivery (also the run list's rows).
pub fn run_table(runs: &[RunItem]) -> Markup {
    html! {
        @if runs.is_empty() {
            p.muted { "No runs." }
        } @else {
            div.scroll { table {
                thead { tr { th { "Run" } th { "Rule" } th { "Status" } th.hide-narrow { "Created" } th.hide-narrow { "Error" } } }
                tbody { @for r in runs { (run_row(r)) } }
            } }
        }
    }
}

pub fn run_row(r: &RunItem) -> Markup {
    html! {
        tr {
            td.mono { a href=(format!("/ui/runs/{}", segment(&r.id))) { (r.id) } }
            td.mono { (r.rule) }
            td { (badge(r.state.as_str())) }
            td.hide-narrow { (time(r.created_at)) }
            td.hide-narrow { @if let Some(e) = &r.error { span.error { (e) } } }
        }
    }
}

/// The body as `hookflow show` prints it (`body_for_display`).
fn body_view(d: &DeliveryDetail) -> Markup {
    let Some(body) = d.body_for_display() else {
        return html! { p.muted { "Not stored (a refused request keeps no body)." } };
    };
    html! {
        @if d.body_encoding == Some(BodyEncoding::Base64) {
            p.muted { "Not UTF-8, so shown as base64." }
        }
        (pre(&body))
    }
}

/// `POST /ui/deliveries/{id}/replay` (CSRF and `Origin` checked by
/// `auth::guard`): replays, then shows the delivery with its new runs.
pub async fn replay(
    State(app): State<Arc<AppState>>,
    crate::server::api::actor::UiActor(actor): crate::server::api::actor::UiActor,
    Path(id): Path<String>,
) -> Result<Response, UiError> {
    let rules = app.rules.load_full();
    let replay = crate::ops::replay(&app.store, &rules, &id, false, &actor).await?;
    if !replay.runs.is_empty() {
        (app.on_queued)();
    }
    tracing::info!(delivery = %id, runs = replay.runs.len(), by = "ui", "delivery replayed");
    let to = format!(
        "/ui/deliveries/{}?replayed={}",
        segment(&id),
        replay.runs.len()
    );
    Ok(Redirect::to(&to).into_response())
}
