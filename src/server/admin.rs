//! Who may reach the admin surface (`/api`, `/metrics`, `/ui`), SPEC
//! §8. Where it is served is decided by the router (`server::Surface`):
//! with no `admin_token` only on the loopback `admin_listen`; with one, on
//! both listeners. This file holds the two checks: the bearer token, and
//! the `Host` header on the admin listener (against DNS rebinding).
//! Source paths never pass through here.

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::AppState;
use super::receive::error;

/// Requires `Authorization: Bearer <admin_token>` when a token is set.
pub async fn require_token(State(app): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    if let Some(token) = &app.settings.admin_token {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(bearer);
        if !given.is_some_and(|given| token_matches(given, token.expose())) {
            let mut response = error(
                StatusCode::UNAUTHORIZED,
                "a valid admin token is required (Authorization: Bearer <admin_token>)",
            );
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer realm=\"hookflow\""),
            );
            return response;
        }
    }
    next.run(req).await
}

/// The credentials of `Bearer <credentials>`; the scheme is
/// case-insensitive (RFC 9110 §11.1).
fn bearer(value: &str) -> Option<&str> {
    let (scheme, credentials) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| credentials.trim())
}

/// Compares digests, not the texts: the time taken depends on neither the
/// token's length nor where the first difference is.
pub(super) fn token_matches(given: &str, token: &str) -> bool {
    let given = Sha256::digest(given.as_bytes());
    let token = Sha256::digest(token.as_bytes());
    bool::from(given.as_slice().ct_eq(token.as_slice()))
}

/// On the admin listener: refuses requests whose `Host` is not a loopback
/// name or address, or the host of `public_url`. A web page the operator
/// visits cannot then reach 127.0.0.1:9090 through a name it controls
/// that resolves to 127.0.0.1 (DNS rebinding).
pub async fn require_local_host(
    State(app): State<Arc<AppState>>,
    req: Request,
    next: Next,
) -> Response {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| req.uri().host());
    let allowed = host.is_some_and(|host| {
        let name = host_name(host);
        is_loopback_name(&name) || app.settings.public_host() == Some(name.as_str())
    });
    if !allowed {
        return error(
            StatusCode::MISDIRECTED_REQUEST,
            "the admin listener answers only requests addressed to localhost, a loopback address or public_url",
        );
    }
    next.run(req).await
}

/// `Example.com:9090` → `example.com`; `[::1]:9090` → `::1`.
fn host_name(host: &str) -> String {
    let host = host.trim();
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(v6),
        None => match host.rsplit_once(':') {
            Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
            _ => host,
        },
    };
    name.trim_end_matches('.').to_ascii_lowercase()
}

fn is_loopback_name(name: &str) -> bool {
    name == "localhost"
        || name.ends_with(".localhost")
        || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer abc"), Some("abc"));
        assert_eq!(bearer("BEARER  abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer"), None);
    }

    #[test]
    fn tokens_match_only_exactly() {
        assert!(token_matches("s3cret", "s3cret"));
        assert!(!token_matches("s3cre", "s3cret"));
        assert!(!token_matches("s3cret-and-more", "s3cret"));
        assert!(!token_matches("", "s3cret"));
    }

    #[test]
    fn loopback_hosts_are_recognised_and_others_are_not() {
        for ok in [
            "localhost",
            "localhost:9090",
            "LOCALHOST.",
            "app.localhost:1",
            "127.0.0.1:9090",
            "127.1.2.3",
            "[::1]:9090",
        ] {
            assert!(is_loopback_name(&host_name(ok)), "{ok}");
        }
        for bad in [
            "evil.example",
            "127.0.0.1.nip.io",
            "localhost.evil.example:9090",
            "10.0.0.1",
            "[::2]:9090",
            "",
        ] {
            assert!(!is_loopback_name(&host_name(bad)), "{bad}");
        }
    }
}
