//! `/healthz` (the process is up) and `/readyz` (rules loaded and the
//! database writable).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::AppState;
use crate::store::StoreError;

pub async fn healthz() -> &'static str {
    "ok"
}

pub async fn readyz(State(app): State<Arc<AppState>>) -> Response {
    let rules = app.rules.load();
    match app.store.check_writable().await {
        Ok(()) => Json(json!({
            "status": "ready",
            "rules": rules.rules().len(),
            "sources": rules.sources().len(),
        }))
        .into_response(),
        Err(e @ StoreError::SchemaIncompatible { .. }) => {
            // Both versions, so an operator sees which side to upgrade.
            tracing::warn!(error = %e, "readiness check: database schema incompatible");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "status": "not ready", "error": e.to_string() })),
            )
                .into_response()
        }
        Err(e) => {
            tracing::error!(error = %e, "readiness check: database not writable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "status": "not ready", "error": "database not writable" })),
            )
                .into_response()
        }
    }
}

/// `GET /metrics`: Prometheus text. The queue depth is read at scrape time.
pub async fn metrics(State(app): State<Arc<AppState>>) -> Response {
    match app.store.queue_depth().await {
        Ok(depth) => crate::metrics::queue_depth(depth),
        Err(e) => tracing::warn!(error = %e, "metrics: could not read the queue depth"),
    }
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        crate::metrics::render(),
    )
        .into_response()
}
