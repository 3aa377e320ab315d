//! The runs page (`/ui/runs`): newest first, filtered by rule and status,
//! paged by cursor.

use std::sync::Arc;

use axum::Extension;
use axum::extract::{RawQuery, State};
use maud::{Markup, html};

use super::UiError;
use super::auth::Current;
use super::delivery::run_table;
use super::layout::{segment, shell};
use crate::runlog_view::Redact;
use crate::server::AppState;
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
    for (key, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        let value = value.trim().to_owned();
        match key.as_ref() {
            "rule" => rule = value,
            "status" => status = value,
            "before" => before = value,
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
            (run_table(&items))
            @if let Some(next) = next {
                p.pager { a href=(format!("/ui/runs?{filters}&before={}", segment(&next))) { "Older →" } }
            }
        }
    };
    Ok(shell("Runs", "/ui/runs", &current, body))
}
