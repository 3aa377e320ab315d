//! The JSON API under `/api`: the loaded rules and reloads (more of the
//! run log joins it with the operating issue).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::AppState;

/// `GET /api/rules`: rules and sources as loaded (no secrets), and how the
/// last reload went.
pub async fn rules(State(app): State<Arc<AppState>>) -> Json<Value> {
    let set = app.rules.load();
    let sources: Vec<Value> = set
        .sources()
        .iter()
        .map(|s| {
            json!({
                "name": s.name,
                "path": s.path,
                "methods": s.methods,
                "verify": s.kind(),
                "allow_ips": s.allow_ips.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "rate_limit": s.rate_limit.map(|r| format!("{}/{}", r.count, humantime::format_duration(r.per))),
                "max_body": s.max_body,
                "defined_at": s.loc.to_string(),
            })
        })
        .collect();
    let rules: Vec<Value> = set
        .rules()
        .iter()
        .map(|r| {
            json!({
                "name": r.name,
                "sources": r.sources,
                "events": r.events.iter().map(|e| e.as_str()).collect::<Vec<_>>(),
                "concurrency": r.concurrency,
                "steps": r.steps.iter().map(|s| json!({"step": s.label(), "kind": s.action.kind()})).collect::<Vec<_>>(),
                "defined_at": r.loc.to_string(),
            })
        })
        .collect();
    Json(json!({
        "sources": sources,
        "rules": rules,
        "reload": app.reloader.status(),
    }))
}

/// `POST /api/reload`: reload now and answer with the outcome (422 when the
/// files are invalid and the running rules stay).
pub async fn reload(State(app): State<Arc<AppState>>) -> Response {
    let reloader = app.reloader.clone();
    match tokio::task::spawn_blocking(move || reloader.reload()).await {
        Ok(report) => {
            let status = if report.ok {
                StatusCode::OK
            } else {
                StatusCode::UNPROCESSABLE_ENTITY
            };
            (status, Json(report)).into_response()
        }
        Err(_) => {
            super::receive::error(StatusCode::INTERNAL_SERVER_ERROR, "the reload task failed")
        }
    }
}
