//! [`ApiError`]: every failure of an `/api` handler, and how it is
//! answered (its status and `{"error": …}`).

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::dto::ErrorBody;
use crate::ops::OpsError;
use crate::store::StoreError;

/// An API failure: its status and the `{"error": …}` message.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    pub(super) fn bad_request(message: String) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message,
        }
    }

    pub(super) fn not_found(what: &str, id: &str) -> Self {
        ApiError {
            status: StatusCode::NOT_FOUND,
            message: format!("there is no {what} with id {id}"),
        }
    }

    /// A database failure is the server's problem; the log gets the detail.
    fn from_store(e: &StoreError) -> Self {
        tracing::error!(error = %e, "API: the run log failed");
        ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: "the run log could not be read or written; see the server log".to_owned(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError::from_store(&e)
    }
}

impl From<OpsError> for ApiError {
    fn from(e: OpsError) -> Self {
        let status = match &e {
            OpsError::NotFound { .. } => StatusCode::NOT_FOUND,
            OpsError::NotFailed { .. }
            | OpsError::NotCancellable { .. }
            | OpsError::NotReplayable { .. }
            | OpsError::NoCurrentRule { .. } => StatusCode::CONFLICT,
            OpsError::Store(e) => return ApiError::from_store(e),
        };
        ApiError {
            status,
            message: e.to_string(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(ErrorBody {
                error: self.message,
            }),
        )
            .into_response()
    }
}
