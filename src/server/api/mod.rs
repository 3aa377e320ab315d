//! The JSON API under `/api` (SPEC §8): the run log (`runlog`), replay and
//! retry (`ops`), the loaded rules, reloads and the nodes registry (here). Every handler is
//! annotated for the OpenAPI document (`server::openapi`), and answers
//! with the types in `dto`, so the document describes what they return.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::AppState;
use dto::{ReloadReport, RuleView, RulesView, SourceView, StepView};

pub mod actor;
pub mod bulk;
pub mod dto;
mod error;
pub mod ops;
pub mod runlog;

pub use error::ApiError;

/// `GET /api/rules`: rules and sources as loaded (no secrets), and how the
/// last reload went.
#[utoipa::path(
    get,
    path = "/api/rules",
    tag = "rules",
    responses((status = 200, description = "The running sources and rules (with where each is defined) and the last reload's outcome and errors", body = RulesView))
)]
pub async fn rules(State(app): State<Arc<AppState>>) -> Json<RulesView> {
    let set = app.rules.load();
    let sources = set
        .sources()
        .iter()
        .map(|s| SourceView {
            name: s.name.clone(),
            path: s.path.clone(),
            methods: s.methods.clone(),
            verify: s.kind().map(str::to_owned),
            allow_ips: s.allow_ips.iter().map(ToString::to_string).collect(),
            rate_limit: s
                .rate_limit
                .map(|r| format!("{}/{}", r.count, humantime::format_duration(r.per))),
            max_body: s.max_body,
            defined_at: s.loc.to_string(),
        })
        .collect();
    let rules = set
        .rules()
        .iter()
        .map(|r| RuleView {
            name: r.name.clone(),
            sources: r.sources.clone(),
            events: r.events.iter().map(|e| e.as_str().to_owned()).collect(),
            concurrency: r.concurrency,
            steps: r
                .steps
                .iter()
                .map(|s| StepView {
                    step: s.label(),
                    kind: s.action.kind().to_owned(),
                })
                .collect(),
            defined_at: r.loc.to_string(),
        })
        .collect();
    Json(RulesView {
        sources,
        rules,
        reload: app.reloader.status().into(),
    })
}

/// `POST /api/reload`: reload now and answer with the outcome (422 when the
/// files are invalid and the running rules stay).
#[utoipa::path(
    post,
    path = "/api/reload",
    tag = "rules",
    responses(
        (status = 200, description = "Reloaded", body = ReloadReport),
        (status = 422, description = "The rules are invalid; the running set stays. `errors` lists every problem", body = ReloadReport),
    )
)]
pub async fn reload(
    State(app): State<Arc<AppState>>,
    actor::ApiActor(actor): actor::ApiActor,
) -> Response {
    let reloader = app.reloader.clone();
    match tokio::task::spawn_blocking(move || reloader.reload()).await {
        Ok(report) => {
            crate::reload::audit(&app.store, &actor, &report).await;
            let status = if report.ok {
                StatusCode::OK
            } else {
                StatusCode::UNPROCESSABLE_ENTITY
            };
            (status, Json(ReloadReport::from(report))).into_response()
        }
        Err(_) => {
            super::receive::error(StatusCode::INTERNAL_SERVER_ERROR, "the reload task failed")
        }
    }
}

/// `GET /api/nodes`: every node registered in the shared store (SPEC §9),
/// alive or stale, with its roles and rule-set hash, and whether the alive
/// nodes' rule sets differ.
#[utoipa::path(
    get,
    path = "/api/nodes",
    tag = "nodes",
    responses(
        (status = 200, description = "The registered nodes by id; `rule_sets_differ` is true when the alive nodes do not all run the same rule files, and each node's `rule_set_matches_majority` says whether it runs the set most alive nodes run", body = crate::nodes::NodesView),
        (status = 500, description = "The store could not be read", body = dto::ErrorBody),
    )
)]
pub async fn nodes(
    State(app): State<Arc<AppState>>,
) -> Result<Json<crate::nodes::NodesView>, ApiError> {
    let records = app.store.list_nodes(crate::nodes::now_ms()).await?;
    Ok(Json(crate::nodes::view(records, &app.node_id)))
}
