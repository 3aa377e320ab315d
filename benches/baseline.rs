//! The HTTP-stack baseline for `bench/ingest.sh`: a bare axum handler doing
//! what any webhook receiver must (HMAC-SHA256 check + JSON parse + 202),
//! and nothing else. Also a `/sink` that answers 200, for actions.
//! Run: `cargo bench --bench baseline -- PORT` (serves until killed).

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use hmac::{KeyInit, Mac};

const SECRET: &[u8] = b"bench-secret";

async fn receive(headers: HeaderMap, body: Bytes) -> StatusCode {
    let Some(sig) = headers
        .get("x-hub-signature-256")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("sha256="))
        .and_then(|v| hex::decode(v).ok())
    else {
        return StatusCode::UNAUTHORIZED;
    };
    let Ok(mut mac) = hmac::Hmac::<sha2::Sha256>::new_from_slice(SECRET) else {
        return StatusCode::INTERNAL_SERVER_ERROR;
    };
    mac.update(&body);
    if mac.verify_slice(&sig).is_err() {
        return StatusCode::UNAUTHORIZED;
    }
    match serde_json::from_slice::<serde_json::Value>(&body) {
        Ok(_) => StatusCode::ACCEPTED,
        Err(_) => StatusCode::BAD_REQUEST,
    }
}

fn main() {
    let port: u16 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(18081);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async move {
        let app = axum::Router::new()
            .route("/hooks/github", axum::routing::post(receive))
            .route("/sink", axum::routing::post(|| async { StatusCode::OK }));
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("bind");
        axum::serve(listener, app).await.expect("serve");
    });
}
