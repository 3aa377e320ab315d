//! Access to `/api` (and later `/ui`): a bearer `admin_token` when one is
//! set, else loopback clients only. Source paths never pass through here.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use subtle::ConstantTimeEq;

use super::AppState;
use super::receive::error;

pub async fn require_admin(
    State(app): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
    next: Next,
) -> Response {
    match &app.settings.admin_token {
        Some(token) => {
            let given = req
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .unwrap_or("");
            if !bool::from(given.as_bytes().ct_eq(token.as_bytes())) {
                let mut response = error(
                    StatusCode::UNAUTHORIZED,
                    "a valid admin token is required (Authorization: Bearer <admin_token>)",
                );
                if let Ok(v) = header::HeaderValue::from_str("Bearer realm=\"hookflow\"") {
                    response.headers_mut().insert(header::WWW_AUTHENTICATE, v);
                }
                return response;
            }
        }
        None => {
            let client =
                super::client::client_ip(peer.ip(), req.headers(), &app.settings.trusted_proxies);
            if !client.is_loopback() {
                return error(
                    StatusCode::FORBIDDEN,
                    "with no admin_token set, the API answers only clients on this machine",
                );
            }
        }
    }
    next.run(req).await
}
