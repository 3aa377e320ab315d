//! Who is calling the API, for the audit trail (SPEC §5): the client's
//! address as the connection saw it, and `ui` when the request says it
//! comes from a web UI (`X-Hookflow-Client: ui`), else `api`.

use std::convert::Infallible;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;

use crate::store::{Actor, Via};

/// The header a UI sets on its API calls.
pub const CLIENT_HEADER: &str = "x-hookflow-client";

/// The caller of an operator's route.
pub struct ApiActor(pub Actor);

/// The caller of a dashboard (`/ui`) route: always `ui`.
pub struct UiActor(pub Actor);

impl<S: Send + Sync> FromRequestParts<S> for UiActor {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let ApiActor(actor) = ApiActor::from_request_parts(parts, state).await?;
        Ok(UiActor(Actor {
            via: Via::Ui,
            ..actor
        }))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ApiActor {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let client = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or_else(
                || "unknown".to_owned(),
                |ConnectInfo(addr)| addr.to_string(),
            );
        let ui = parts
            .headers
            .get(CLIENT_HEADER)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"ui"));
        let via = if ui { Via::Ui } else { Via::Api };
        Ok(ApiActor(Actor { via, client }))
    }
}
