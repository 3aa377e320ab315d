//! The `http` action: one templated request through the shared client,
//! judged by the step's `expect` statuses. The request/reply exchange here
//! is shared with `slack`.

use std::time::Instant;

use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};
use serde_json::{Map, Value, json};

use super::{ActionEnv, Captured, Fault, Outcome, RenderedBody, USER_AGENT, error_chain};
use crate::rules::Secrets;
use crate::rules::model::HttpAction;

/// An `http` step with its templates rendered.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub query: Vec<(String, String)>,
    pub body: RenderedBody,
}

/// Header names whose values are credentials: the request summary names
/// them but never stores their value.
const CREDENTIAL_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "x-api-key",
    "api-key",
];

pub async fn execute(action: &HttpAction, req: Request, env: &ActionEnv<'_>) -> Outcome {
    let url = summary_url(&req.url, &req.query, env.secrets);
    let summary = json!({
        "method": req.method,
        "url": url,
        "headers": summary_headers(&req.headers, env),
    });
    let request = match build(env, &req) {
        Ok(request) => request.timeout(action.timeout),
        Err(message) => {
            return Outcome::failed(
                summary,
                Fault::Final,
                format!("{} {url}: {message}", req.method),
            );
        }
    };
    let started = Instant::now();
    let reply = match exchange(request).await {
        Ok(reply) => reply,
        Err(failed) => return failed.outcome(summary, &format!("{} {url}", req.method), started),
    };
    let expected = action
        .expect
        .iter()
        .any(|&(low, high)| (low..=high).contains(&reply.status));
    if expected {
        return reply.outcome(summary, None, started);
    }
    let fault = Fault::Status {
        status: reply.status,
        retry_after: reply.retry_after.clone(),
    };
    let error = format!(
        "HTTP {} (expected {})",
        reply.status,
        describe_expect(&action.expect)
    );
    reply.outcome(summary, Some((fault, error)), started)
}

/// The request, or why it cannot be sent (a final error).
fn build(env: &ActionEnv<'_>, req: &Request) -> Result<reqwest::RequestBuilder, String> {
    let method = reqwest::Method::from_bytes(req.method.as_bytes())
        .map_err(|_| format!("invalid method {:?}", req.method))?;
    let mut url = reqwest::Url::parse(&req.url).map_err(|e| format!("invalid URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("unsupported URL scheme `{}`", url.scheme()));
    }
    if !req.query.is_empty() {
        url.query_pairs_mut().extend_pairs(&req.query);
    }
    let mut headers = standard_headers(env.idempotency_key)?;
    for (name, value) in &req.headers {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("invalid header name {name:?}"))?;
        let value = HeaderValue::from_str(value)
            .map_err(|_| format!("header {name}: the value is not a valid header value"))?;
        // The rule's own headers win, Idempotency-Key and User-Agent too.
        headers.insert(name, value);
    }
    let (content_type, body) = match &req.body {
        RenderedBody::None => (None, Vec::new()),
        RenderedBody::Json(value) => (
            Some("application/json"),
            serde_json::to_vec(value).map_err(|e| format!("json: {e}"))?,
        ),
        RenderedBody::Text(text) => (None, text.clone().into_bytes()),
        RenderedBody::Form(pairs) => (
            Some("application/x-www-form-urlencoded"),
            form_urlencoded::Serializer::new(String::new())
                .extend_pairs(pairs)
                .finish()
                .into_bytes(),
        ),
    };
    if let Some(content_type) = content_type
        && !headers.contains_key(CONTENT_TYPE)
    {
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    }
    let mut request = env.client.request(method, url).headers(headers);
    if !matches!(req.body, RenderedBody::None) {
        request = request.body(body);
    }
    Ok(request)
}

/// `User-Agent` and `Idempotency-Key`, carried by every http and slack
/// request.
pub(super) fn standard_headers(idempotency_key: &str) -> Result<HeaderMap, String> {
    let mut headers = HeaderMap::new();
    headers.insert(
        reqwest::header::USER_AGENT,
        HeaderValue::from_static(USER_AGENT),
    );
    let key = HeaderValue::from_str(idempotency_key)
        .map_err(|_| format!("invalid idempotency key {idempotency_key:?}"))?;
    headers.insert(HeaderName::from_static("idempotency-key"), key);
    Ok(headers)
}

/// A reply read whole (its body up to [`super::CAPTURE_LIMIT`] kept).
#[derive(Debug)]
pub(super) struct Reply {
    pub status: u16,
    pub retry_after: Option<String>,
    pub body: Captured,
}

impl Reply {
    /// The attempt's outcome: the reply, and what was wrong with it if
    /// anything.
    pub(super) fn outcome(
        self,
        request: Value,
        failure: Option<(Fault, String)>,
        started: Instant,
    ) -> Outcome {
        let (fault, error) = failure.unzip();
        Outcome {
            request,
            status: Some(i64::from(self.status)),
            body: Some(self.body),
            stdout: None,
            stderr: None,
            error,
            fault,
            duration: started.elapsed(),
        }
    }
}

/// A request that got no (complete) reply.
#[derive(Debug)]
pub(super) struct Failed {
    pub fault: Fault,
    pub message: String,
}

impl Failed {
    /// The attempt's outcome; `what` is e.g. `POST <url>`.
    pub(super) fn outcome(self, request: Value, what: &str, started: Instant) -> Outcome {
        Outcome {
            duration: started.elapsed(),
            ..Outcome::failed(request, self.fault, format!("{what}: {}", self.message))
        }
    }
}

/// Sends the request and reads the whole reply, within the request's
/// timeout (reqwest applies it until the body has been read).
pub(super) async fn exchange(request: reqwest::RequestBuilder) -> Result<Reply, Failed> {
    let failed = |e: reqwest::Error| {
        let fault = if e.is_timeout() {
            Fault::Timeout
        } else if e.is_builder() {
            Fault::Final
        } else {
            Fault::Connection
        };
        // The URL is in the summary already, redacted; reqwest's copy is not.
        let message = error_chain(&e.without_url());
        Failed { fault, message }
    };
    let mut response = request.send().await.map_err(failed)?;
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mut body = Captured::default();
    while let Some(chunk) = response.chunk().await.map_err(failed)? {
        body.push(&chunk);
    }
    Ok(Reply {
        status,
        retry_after,
        body,
    })
}

/// The URL as stored: secrets redacted before the query is encoded (an
/// encoded secret would no longer be recognised).
pub(super) fn summary_url(url: &str, query: &[(String, String)], secrets: &Secrets) -> String {
    let mut shown = secrets.redact(url);
    if !query.is_empty() {
        shown.push(if shown.contains('?') { '&' } else { '?' });
        let mut encoder = form_urlencoded::Serializer::new(String::new());
        for (k, v) in query {
            encoder.append_pair(&secrets.redact(k), &secrets.redact(v));
        }
        shown.push_str(&encoder.finish());
    }
    shown
}

fn summary_headers(headers: &[(String, String)], env: &ActionEnv<'_>) -> Value {
    let mut shown = Map::new();
    shown.insert(
        "idempotency-key".into(),
        Value::String(env.idempotency_key.to_owned()),
    );
    for (name, value) in headers {
        let lower = name.to_ascii_lowercase();
        let value = if CREDENTIAL_HEADERS.contains(&lower.as_str()) {
            "***".to_owned()
        } else {
            env.secrets.redact(value)
        };
        shown.insert(lower, Value::String(value));
    }
    Value::Object(shown)
}

/// `200-299`, `201, 204`.
fn describe_expect(ranges: &[(u16, u16)]) -> String {
    ranges
        .iter()
        .map(|&(low, high)| match (low, high) {
            _ if low == high => low.to_string(),
            _ if low % 100 == 0 && high == low + 99 => format!("{}xx", low / 100),
            _ => format!("{low}-{high}"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}
