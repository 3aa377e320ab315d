//! The rules page (`/ui/rules`): the sources and rules running, each with
//! the file:line:column it is defined at, and how the last reload went
//! (its errors and warnings). The data is `GET /api/rules`'s.

use std::sync::Arc;

use axum::Extension;
use axum::extract::State;
use maud::{Markup, html};

use super::auth::Current;
use super::layout::{badge, row, shell, time_text};
use crate::server::AppState;
use crate::server::api::dto::ReloadStatus;

/// `GET /ui/rules`
pub async fn page(
    State(app): State<Arc<AppState>>,
    Extension(current): Extension<Current>,
) -> Markup {
    let view = crate::server::api::rules(State(app)).await.0;
    let body = html! {
        h1 { "Rules" }
        h2 { "Last reload" }
        (reload(&view.reload))
        h2 { "Sources (" (view.sources.len()) ")" }
        div.scroll { table {
            thead { tr { th { "Name" } th { "Path" } th { "Verify" } th.hide-narrow { "Limits" } th { "Defined at" } } }
            tbody { @for s in &view.sources {
                tr {
                    td.mono { (s.name) }
                    td.mono { (s.methods.join(" ")) " " (s.path) }
                    td { (s.verify.as_deref().unwrap_or("open")) }
                    td.hide-narrow {
                        @if let Some(r) = &s.rate_limit { "rate " (r) " " }
                        @if let Some(b) = s.max_body { "body ≤ " (b) " B " }
                        @if !s.allow_ips.is_empty() { "from " (s.allow_ips.join(", ")) }
                    }
                    td.mono { (s.defined_at) }
                }
            } }
        } }
        h2 { "Rules (" (view.rules.len()) ")" }
        div.scroll { table {
            thead { tr { th { "Name" } th { "Sources" } th.hide-narrow { "Events" } th { "Steps" } th { "Defined at" } } }
            tbody { @for r in &view.rules {
                tr {
                    td.mono { a href=(format!("/ui/runs?rule={}", super::layout::segment(&r.name))) { (r.name) } }
                    td.mono { (r.sources.join(", ")) }
                    td.hide-narrow.mono { @if r.events.is_empty() { "any" } @else { (r.events.join(", ")) } }
                    td { @for (i, s) in r.steps.iter().enumerate() {
                        @if i > 0 { " → " }
                        span.mono { (s.step) } " " span.muted { (s.kind) }
                    } }
                    td.mono { (r.defined_at) }
                }
            } }
        } }
    };
    shell("Rules", "/ui/rules", &current, body)
}

/// The reload status: when, the outcome, and what kept a set out.
pub fn reload(r: &ReloadStatus) -> Markup {
    html! {
        div.card #reload {
            dl.meta {
                (row("Running set loaded", Some(time_text(&r.loaded_at))))
                (row("Last reload", r.last_reload_at.as_deref().map(time_text)))
                (row("Outcome", r.last_outcome.as_ref().map(|o| badge(o))))
                (row("Reloads", Some(html! { (r.succeeded) " ok, " (r.failed) " failed" })))
            }
            @if !r.errors.is_empty() {
                p.error { "The last reload was refused; the rules above keep running. Errors:" }
                ul { @for e in &r.errors { li.mono { (e) } } }
            }
            @if !r.warnings.is_empty() {
                p { "Warnings:" }
                ul { @for w in &r.warnings { li.mono { (w) } } }
            }
        }
    }
}
