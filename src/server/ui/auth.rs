//! Who may use the dashboard, and which requests may change something
//! (SPEC §8).
//!
//! - With an `admin_token`, the browser logs in once by POSTing the token
//!   (at most [`MAX_FAILURES`] failures a minute per client address) and
//!   gets a random session id in an `HttpOnly; SameSite=Strict` cookie that
//!   lasts 12 h. The token itself never reaches a cookie or a page.
//! - With no token (the admin listener is loopback only), a browser gets a
//!   session on its first page, without logging in: it is still needed for
//!   the CSRF token.
//! - The cookie is `Secure` when the browser reached hookflow over HTTPS:
//!   this listener's own TLS, or a trusted proxy (`trusted_proxies`) that
//!   says `X-Forwarded-Proto: https`.
//! - In every mode, every state-changing request needs the session's CSRF
//!   token (form field `csrf`) and an `Origin` naming this very host, so a
//!   web page the operator visits cannot press Replay on 127.0.0.1:9090.
//!   [`guard`] checks both for every route behind it; the login form,
//!   which is not behind it, checks them itself.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use subtle::ConstantTimeEq;

use super::layout;
use crate::server::AppState;

/// The session cookie's name.
const COOKIE: &str = "hookflow_session";

/// How long a session lasts (SPEC §8: 12 h), whatever it does meanwhile.
const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);

/// Failed logins allowed per client address within [`FAILURE_WINDOW`].
pub const MAX_FAILURES: usize = 5;
const FAILURE_WINDOW: Duration = Duration::from_secs(60);

/// Sessions kept at most; beyond it the oldest go first, so a client
/// opening sessions in a loop costs bounded memory.
const MAX_SESSIONS: usize = 10_000;

/// The largest state-changing request body read (forms are a few fields).
const MAX_FORM: usize = 64 * 1024;

#[derive(Debug, Clone)]
struct Session {
    /// Logged in (or no token is configured). A session that is not is the
    /// login form's, and carries only its CSRF token.
    authed: bool,
    csrf: String,
    expires: Instant,
}

/// Sessions and failed logins, in memory: a restart logs everyone out.
#[derive(Debug, Default)]
pub struct UiState {
    sessions: Mutex<HashMap<String, Session>>,
    failures: Mutex<HashMap<IpAddr, VecDeque<Instant>>>,
}

impl UiState {
    fn session(&self, id: &str) -> Option<Session> {
        let sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        sessions
            .get(id)
            .filter(|s| s.expires > Instant::now())
            .cloned()
    }

    /// A new session: its id (for the cookie) and its CSRF token.
    fn open(&self, authed: bool) -> Result<(String, String), RandomError> {
        let id = random_hex()?;
        let csrf = random_hex()?;
        let now = Instant::now();
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        if sessions.len() >= MAX_SESSIONS {
            sessions.retain(|_, s| s.expires > now);
        }
        while sessions.len() >= MAX_SESSIONS {
            let oldest = sessions
                .iter()
                .min_by_key(|(_, s)| s.expires)
                .map(|(id, _)| id.clone());
            match oldest {
                Some(id) => sessions.remove(&id),
                None => break,
            };
        }
        sessions.insert(
            id.clone(),
            Session {
                authed,
                csrf: csrf.clone(),
                expires: now + SESSION_TTL,
            },
        );
        Ok((id, csrf))
    }

    fn close(&self, id: &str) {
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        sessions.remove(id);
    }

    /// Failed logins of `client` within the window (dropping older ones).
    fn recent_failures(&self, client: IpAddr) -> usize {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let Some(times) = failures.get_mut(&client) else {
            return 0;
        };
        while times
            .front()
            .is_some_and(|t| now.duration_since(*t) >= FAILURE_WINDOW)
        {
            times.pop_front();
        }
        let count = times.len();
        if count == 0 {
            failures.remove(&client);
        }
        count
    }

    fn record_failure(&self, client: IpAddr) {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        // Bound the map: a failure older than the window no longer counts.
        if failures.len() >= MAX_SESSIONS {
            let now = Instant::now();
            failures.retain(|_, t| {
                t.back()
                    .is_some_and(|t| now.duration_since(*t) < FAILURE_WINDOW)
            });
        }
        failures
            .entry(client)
            .or_default()
            .push_back(Instant::now());
    }
}

/// The OS's random source failed (it does not, on Linux, once booted).
#[derive(Debug, thiserror::Error)]
#[error("no random bytes for a session: {0}")]
pub struct RandomError(getrandom::Error);

/// 32 random bytes from the OS, as hex.
fn random_hex() -> Result<String, RandomError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(RandomError)?;
    Ok(hex::encode(bytes))
}

/// What a page behind [`guard`] knows about its session.
#[derive(Debug, Clone)]
pub struct Current {
    /// Goes into every form as the hidden field `csrf`.
    pub csrf: String,
    /// An admin token is configured: show "Log out".
    pub can_log_out: bool,
}

/// Lets through only requests with a valid session (or, with no token,
/// opens one), and only state-changing requests with the session's CSRF
/// token and a same-origin `Origin`.
pub async fn guard(State(app): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let secure = over_https(&app, req.extensions(), req.headers());
    let token_mode = app.settings.admin_token.is_some();
    let changes_state = !matches!(*req.method(), Method::GET | Method::HEAD);
    let found = session_cookie(req.headers()).and_then(|id| app.ui.session(id));
    let mut new_cookie = None;
    let session = match found {
        Some(session) if session.authed => session,
        _ if token_mode => {
            if changes_state {
                return refuse(
                    StatusCode::UNAUTHORIZED,
                    "log in first (your session has ended)",
                );
            }
            let next = req
                .uri()
                .path_and_query()
                .map_or("/ui/", |p| p.as_str())
                .to_owned();
            let query = form_urlencoded::Serializer::new(String::new())
                .append_pair("next", &next)
                .finish();
            return Redirect::to(&format!("/ui/login?{query}")).into_response();
        }
        _ => {
            if changes_state {
                return refuse(
                    StatusCode::FORBIDDEN,
                    "no session: reload the page and try again",
                );
            }
            match app.ui.open(true) {
                Ok((id, csrf)) => {
                    new_cookie = Some(id);
                    Session {
                        authed: true,
                        csrf,
                        expires: Instant::now() + SESSION_TTL,
                    }
                }
                Err(e) => return refuse(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
            }
        }
    };
    let mut req = req;
    if changes_state {
        if let Err(reason) = same_origin(req.headers()) {
            return refuse(StatusCode::FORBIDDEN, &reason);
        }
        let (parts, body) = req.into_parts();
        let Ok(bytes) = axum::body::to_bytes(body, MAX_FORM).await else {
            return refuse(StatusCode::PAYLOAD_TOO_LARGE, "the form is too large");
        };
        if !csrf_matches(&bytes, &session.csrf) {
            return refuse(
                StatusCode::FORBIDDEN,
                "the form's CSRF token is missing or stale: reload the page and try again",
            );
        }
        req = Request::from_parts(parts, Body::from(bytes));
    }
    req.extensions_mut().insert(Current {
        csrf: session.csrf,
        can_log_out: token_mode,
    });
    let mut response = next.run(req).await;
    if let Some(id) = new_cookie {
        set_cookie(response.headers_mut(), &id, secure);
    }
    response
}

/// `GET /ui/login`: the token form (with no token configured, there is
/// nothing to log in to).
pub async fn login_page(
    State(app): State<Arc<AppState>>,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
    Https(secure): Https,
    headers: HeaderMap,
) -> Response {
    if app.settings.admin_token.is_none() {
        return Redirect::to("/ui/").into_response();
    }
    let next = next_param(query.as_deref());
    // The form's own session (not logged in) carries its CSRF token.
    let existing = session_cookie(&headers).and_then(|id| app.ui.session(id));
    if let Some(session) = existing {
        if session.authed {
            return Redirect::to(&next).into_response();
        }
        return layout::login_page(&session.csrf, &next, None).into_response();
    }
    match app.ui.open(false) {
        Ok((id, csrf)) => {
            let mut response = layout::login_page(&csrf, &next, None).into_response();
            set_cookie(response.headers_mut(), &id, secure);
            response
        }
        Err(e) => refuse(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

/// `POST /ui/login` (form: `token`, `csrf`, `next`).
pub async fn login(
    State(app): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Https(secure): Https,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let Some(token) = &app.settings.admin_token else {
        return Redirect::to("/ui/").into_response();
    };
    if let Err(reason) = same_origin(&headers) {
        return refuse(StatusCode::FORBIDDEN, &reason);
    }
    let Some((id, session)) =
        session_cookie(&headers).and_then(|id| Some((id, app.ui.session(id)?)))
    else {
        return refuse(
            StatusCode::FORBIDDEN,
            "no session: reload the login page and try again",
        );
    };
    if !csrf_matches(&body, &session.csrf) {
        return refuse(
            StatusCode::FORBIDDEN,
            "the form's CSRF token is missing or stale: reload the login page",
        );
    }
    let next = field(&body, "next").map_or_else(|| "/ui/".to_owned(), |n| checked_next(&n));
    let client = peer.ip();
    if app.ui.recent_failures(client) >= MAX_FAILURES {
        let page = layout::login_page(
            &session.csrf,
            &next,
            Some("Too many failed logins from this address: wait a minute."),
        );
        return (StatusCode::TOO_MANY_REQUESTS, page).into_response();
    }
    let given = field(&body, "token").unwrap_or_default();
    if !super::super::admin::token_matches(given.trim(), token.expose()) {
        app.ui.record_failure(client);
        tracing::warn!(remote = %client, "dashboard: a login with a wrong token");
        let page = layout::login_page(&session.csrf, &next, Some("That is not the admin token."));
        return (StatusCode::UNAUTHORIZED, page).into_response();
    }
    // A fresh id on login: a session id planted before it is worth nothing.
    app.ui.close(id);
    match app.ui.open(true) {
        Ok((id, _)) => {
            let mut response = Redirect::to(&next).into_response();
            set_cookie(response.headers_mut(), &id, secure);
            response
        }
        Err(e) => refuse(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

/// `POST /ui/logout` (behind [`guard`], so with its CSRF token).
pub async fn logout(
    State(app): State<Arc<AppState>>,
    Https(secure): Https,
    headers: HeaderMap,
) -> Response {
    if let Some(id) = session_cookie(&headers) {
        app.ui.close(id);
    }
    let mut response = Redirect::to("/ui/login").into_response();
    append_cookie(response.headers_mut(), "", Duration::ZERO, secure);
    response
}

fn set_cookie(headers: &mut HeaderMap, id: &str, secure: bool) {
    append_cookie(headers, id, SESSION_TTL, secure);
}

fn append_cookie(headers: &mut HeaderMap, id: &str, max_age: Duration, secure: bool) {
    let secure = if secure { "; Secure" } else { "" };
    let cookie = format!(
        "{COOKIE}={id}; Path=/ui; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
        max_age.as_secs()
    );
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        headers.append(header::SET_COOKIE, value);
    }
}

/// Whether the browser reached this request over HTTPS (see the module
/// doc); an extractor for the handlers that set the cookie.
pub struct Https(pub bool);

impl axum::extract::FromRequestParts<Arc<AppState>> for Https {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        app: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        Ok(Https(over_https(app, &parts.extensions, &parts.headers)))
    }
}

fn over_https(app: &AppState, extensions: &axum::http::Extensions, headers: &HeaderMap) -> bool {
    if extensions.get::<crate::server::conn::OverTls>().is_some() {
        return true;
    }
    let Some(ConnectInfo(peer)) = extensions.get::<ConnectInfo<SocketAddr>>() else {
        return false;
    };
    let trusted = &app.settings.trusted_proxies;
    if !trusted.iter().any(|net| net.contains(&peer.ip())) {
        return false;
    }
    // The proxy nearest us appends last: its word is the last value.
    headers
        .get_all("x-forwarded-proto")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .next_back()
        .is_some_and(|proto| proto.trim().eq_ignore_ascii_case("https"))
}

/// The session id from the `Cookie` header(s), if any.
fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
}

/// `Origin` must be present and name the host the request was sent to
/// (`Host`), over http or https.
fn same_origin(headers: &HeaderMap) -> Result<(), String> {
    let origin = headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .ok_or("a state-changing request needs an Origin header (a browser sends one)")?;
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .ok_or("the request has no Host header")?;
    let authority = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .unwrap_or("");
    if !authority.is_empty() && authority.eq_ignore_ascii_case(host) {
        Ok(())
    } else {
        Err(format!(
            "refused: this request comes from another site (Origin {origin}, not this host {host})"
        ))
    }
}

/// The first value of form field `name`.
fn field(body: &[u8], name: &str) -> Option<String> {
    form_urlencoded::parse(body)
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

fn csrf_matches(body: &[u8], expected: &str) -> bool {
    field(body, "csrf").is_some_and(|given| {
        given.len() == expected.len() && bool::from(given.as_bytes().ct_eq(expected.as_bytes()))
    })
}

/// `next` from a query string, checked.
fn next_param(query: Option<&str>) -> String {
    form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .find(|(k, _)| k == "next")
        .map_or_else(|| "/ui/".to_owned(), |(_, v)| checked_next(&v))
}

/// Where to go after logging in: only a dashboard path, never another site
/// (`//evil.example`, `/\evil.example`) — an open redirect otherwise.
fn checked_next(next: &str) -> String {
    let safe = next.starts_with("/ui")
        && !next.contains("//")
        && !next.contains('\\')
        && !next.chars().any(char::is_control);
    if safe {
        next.to_owned()
    } else {
        "/ui/".to_owned()
    }
}

fn refuse(status: StatusCode, message: &str) -> Response {
    (status, layout::error_page(status, message)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(name.clone(), HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn only_an_origin_naming_this_host_is_same_origin() {
        let ok = headers(&[
            (header::ORIGIN, "http://127.0.0.1:9090"),
            (header::HOST, "127.0.0.1:9090"),
        ]);
        assert!(same_origin(&ok).is_ok());
        for (origin, host) in [
            ("http://evil.example", "127.0.0.1:9090"),
            ("http://127.0.0.1:9091", "127.0.0.1:9090"),
            ("null", "127.0.0.1:9090"),
            ("file://", "127.0.0.1:9090"),
        ] {
            let h = headers(&[(header::ORIGIN, origin), (header::HOST, host)]);
            assert!(same_origin(&h).is_err(), "{origin} passed for {host}");
        }
        assert!(same_origin(&headers(&[(header::HOST, "127.0.0.1:9090")])).is_err());
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let h = headers(&[(header::COOKIE, "a=1; hookflow_session=abc; b=2")]);
        assert_eq!(session_cookie(&h), Some("abc"));
        assert_eq!(session_cookie(&headers(&[(header::COOKIE, "x=1")])), None);
    }

    #[test]
    fn csrf_must_match_exactly() {
        assert!(csrf_matches(b"a=1&csrf=abc", "abc"));
        assert!(!csrf_matches(b"csrf=abd", "abc"));
        assert!(!csrf_matches(b"csrf=ab", "abc"));
        assert!(!csrf_matches(b"a=1", "abc"));
    }

    #[test]
    fn next_is_only_ever_a_dashboard_path() {
        assert_eq!(
            checked_next("/ui/runs?status=failed"),
            "/ui/runs?status=failed"
        );
        for bad in [
            "//evil.example",
            "https://evil.example",
            "/ui//evil",
            "/\\evil",
            "/api/x",
        ] {
            assert_eq!(checked_next(bad), "/ui/", "{bad}");
        }
    }

    #[test]
    fn failures_count_per_client_and_sessions_are_random() {
        let state = UiState::default();
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        for _ in 0..MAX_FAILURES {
            state.record_failure(a);
        }
        assert_eq!(state.recent_failures(a), MAX_FAILURES);
        assert_eq!(state.recent_failures(b), 0);
        let (id1, csrf1) = state.open(false).unwrap();
        let (id2, _) = state.open(true).unwrap();
        assert_ne!(id1, id2);
        assert_eq!(id1.len(), 64);
        assert!(!state.session(&id1).unwrap().authed);
        assert_eq!(state.session(&id1).unwrap().csrf, csrf1);
        state.close(&id1);
        assert!(state.session(&id1).is_none());
    }
}
