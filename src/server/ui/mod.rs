//! The dashboard at `/ui` (SPEC §8): server-rendered HTML pages over the run
//! log, with the operator's buttons (replay, retry) calling the same
//! operations as the CLI and the API (`crate::ops`).
//!
//! One file per page; `layout` holds the page shell and shared pieces,
//! `auth` the login, sessions, CSRF and `Origin` checks, `assets` the
//! vendored script and the stylesheet (in the binary), `tail` the live
//! tail of deliveries (Server-Sent Events). Every response carries the
//! Content-Security-Policy of SPEC §8, so no inline script or style runs:
//! the pages use only `/ui/assets/*`.

mod assets;
pub mod auth;
mod deliveries;
mod delivery;
mod layout;
mod nodes;
mod overview;
mod rules;
mod run;
mod runs;
mod tail;

use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};

use super::AppState;
use crate::ops::OpsError;
use crate::store::StoreError;

pub use auth::UiState;

/// SPEC §8, word for word.
pub const CSP: &str =
    "default-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

/// The dashboard's routes, each behind `auth::guard` except the login page
/// and the assets. Not behind the API's bearer check: the browser holds a
/// session cookie, never the token.
pub fn routes(state: &Arc<AppState>) -> Router<Arc<AppState>> {
    let pages = Router::new()
        .route("/ui", get(|| async { Redirect::to("/ui/") }))
        .route("/ui/", get(overview::page))
        .route("/ui/deliveries", get(deliveries::page))
        .route("/ui/deliveries/tail", get(tail::deliveries))
        .route("/ui/deliveries/{id}", get(delivery::page))
        .route("/ui/deliveries/{id}/replay", post(delivery::replay))
        .route("/ui/runs", get(runs::page))
        .route("/ui/runs/retry", post(runs::retry_all))
        .route("/ui/runs/{id}", get(run::page))
        .route("/ui/runs/{id}/retry", post(run::retry))
        .route("/ui/runs/{id}/cancel", post(run::cancel))
        .route("/ui/rules", get(rules::page))
        .route("/ui/nodes", get(nodes::page))
        .route("/ui/logout", post(auth::logout))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::guard,
        ));
    Router::new()
        .route("/ui/login", get(auth::login_page).post(auth::login))
        .route("/ui/assets/{name}", get(assets::serve))
        .merge(pages)
        .layer(axum::middleware::from_fn(security_headers))
}

/// The headers every dashboard response carries: the CSP, and no sniffing,
/// framing, caching of pages or leaking of URLs to other sites.
async fn security_headers(req: Request, next: Next) -> Response {
    let is_asset = req.uri().path().starts_with("/ui/assets/");
    let mut response = next.run(req).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        // Not `no-referrer`: with it Chrome sends `Origin: null` on form
        // posts, which the same-origin check must refuse.
        HeaderValue::from_static("same-origin"),
    );
    if !is_asset {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// Why a dashboard request failed; shown as an HTML page with its status.
#[derive(Debug, thiserror::Error)]
pub enum UiError {
    #[error("there is no {what} with id {id}")]
    NotFound { what: &'static str, id: String },

    #[error("{0}")]
    BadRequest(String),

    #[error(transparent)]
    Ops(#[from] OpsError),

    #[error("the run log could not be read or written; see the server log")]
    Store(#[from] StoreError),
}

impl UiError {
    fn status(&self) -> StatusCode {
        match self {
            UiError::NotFound { .. } => StatusCode::NOT_FOUND,
            UiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            UiError::Ops(OpsError::NotFound { .. }) => StatusCode::NOT_FOUND,
            UiError::Ops(OpsError::Store(_)) | UiError::Store(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
            UiError::Ops(_) => StatusCode::CONFLICT,
        }
    }
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if let UiError::Store(e) | UiError::Ops(OpsError::Store(e)) = &self {
            tracing::error!(error = %e, "dashboard: the run log failed");
        }
        let message = match &self {
            // The detail of a database failure is for the log only.
            UiError::Ops(OpsError::Store(_)) | UiError::Store(_) => {
                "the run log could not be read or written; see the server log".to_owned()
            }
            other => other.to_string(),
        };
        let body = layout::error_page(status, &message);
        (status, body).into_response()
    }
}
