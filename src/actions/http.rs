//! The `http` action: one templated request through the shared client,
//! judged by the step's `expect` statuses. The request/reply exchange here
//! is shared with `slack`.

use std::time::{Duration, Instant};

use http::Method;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};
use serde_json::{Map, Value, json};

use super::{ActionEnv, ActionKind, Captured, Fault, Outcome, Renderer, USER_AGENT, error_chain};
use crate::rules::Secrets;
use crate::rules::decode::{Decoder, Fields};
use crate::rules::model::RetryPolicy;
use crate::rules::node::{Kind, Node};
use crate::template::{JsonTemplate, RenderError, Template};

pub(crate) const HTTP_KEYS: &[&str] = &[
    "method", "url", "headers", "query", "json", "body", "form", "timeout", "retry", "expect",
];

/// `timeout` of `http` and `slack` steps when they give none.
pub(super) const HTTP_TIMEOUT: Duration = Duration::from_secs(30);

/// An `http` step as decoded.
#[derive(Debug)]
pub struct HttpAction {
    /// Parsed at load: an invalid method is a load error.
    pub method: Method,
    pub url: Template,
    pub headers: Vec<(String, Template)>,
    pub query: Vec<(String, Template)>,
    pub body: HttpBody,
    pub timeout: Duration,
    /// Inclusive status ranges that count as success; default 200–299.
    pub expect: Vec<(u16, u16)>,
}

#[derive(Debug)]
pub enum HttpBody {
    None,
    Json(JsonTemplate),
    Text(Template),
    Form(Vec<(String, Template)>),
}

/// An `http` step with its templates rendered.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub method: Method,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub query: Vec<(String, String)>,
    pub body: RenderedBody,
}

#[derive(Debug, Clone, PartialEq)]
pub enum RenderedBody {
    None,
    Json(Value),
    Text(String),
    Form(Vec<(String, String)>),
}

impl ActionKind for HttpAction {
    const SETTINGS: &'static str = "`http` settings (a mapping with url, method, …)";
    const KEYS: &'static [&'static str] = HTTP_KEYS;
    const RETRY: RetryPolicy = RetryPolicy::HTTP_DEFAULT;
    type Rendered = Request;

    fn decode(dec: &mut Decoder<'_>, node: &Node, f: &mut Fields<'_>) -> Option<Self> {
        let method = match f.get("method") {
            Some(n) => dec.string(n).and_then(|m| {
                let upper = m.to_ascii_uppercase();
                match Method::from_bytes(upper.as_bytes()) {
                    Ok(method) => Some(method),
                    Err(_) => {
                        dec.error(n, format!("invalid HTTP method {m:?}"));
                        None
                    }
                }
            }),
            None => Some(Method::POST),
        };
        let url = f
            .require(dec, "url", "action `http`")
            .and_then(|n| dec.template(n));
        let headers = dec.opt_template_map(f, "headers");
        let query = dec.opt_template_map(f, "query");
        let body = match (f.get("json"), f.get("body"), f.get("form")) {
            (None, None, None) => Some(HttpBody::None),
            (Some(n), None, None) => dec.json_template(n).map(HttpBody::Json),
            (None, Some(n), None) => dec.template(n).map(HttpBody::Text),
            (None, None, Some(n)) => dec.template_map(n).map(HttpBody::Form),
            _ => {
                dec.error(node, "`http` takes at most one of `json`, `body` or `form`");
                None
            }
        };
        let timeout = dec.opt_duration(f, "timeout", HTTP_TIMEOUT);
        let expect = match f.get("expect") {
            Some(n) => decode_expect(dec, n),
            None => Some(vec![(200, 299)]),
        };
        Some(HttpAction {
            method: method?,
            url: url?,
            headers: headers?,
            query: query?,
            body: body?,
            timeout: timeout?,
            expect: expect?,
        })
    }

    fn render(&self, r: &Renderer<'_>) -> Result<Request, RenderError> {
        Ok(Request {
            method: self.method.clone(),
            url: r.text("url", &self.url)?,
            headers: r.pairs("headers", &self.headers)?,
            query: r.pairs("query", &self.query)?,
            body: match &self.body {
                HttpBody::None => RenderedBody::None,
                HttpBody::Json(j) => RenderedBody::Json(r.json("json", j)?),
                HttpBody::Text(t) => RenderedBody::Text(r.text("body", t)?),
                HttpBody::Form(items) => RenderedBody::Form(r.pairs("form", items)?),
            },
        })
    }

    fn view(req: &Request) -> Value {
        let mut view = Map::new();
        view.insert("kind".into(), "http".into());
        view.insert("method".into(), req.method.as_str().into());
        view.insert("url".into(), req.url.clone().into());
        view.insert("headers".into(), object(&req.headers));
        view.insert("query".into(), object(&req.query));
        match &req.body {
            RenderedBody::None => {}
            RenderedBody::Json(v) => {
                view.insert("json".into(), v.clone());
            }
            RenderedBody::Text(t) => {
                view.insert("body".into(), Value::String(t.clone()));
            }
            RenderedBody::Form(f) => {
                view.insert("form".into(), object(f));
            }
        }
        Value::Object(view)
    }

    async fn execute(&self, req: Request, env: &ActionEnv<'_>) -> Outcome {
        execute(self, req, env).await
    }
}

/// Named values as a JSON object, for views.
pub(super) fn object(pairs: &[(String, String)]) -> Value {
    Value::Object(
        pairs
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect(),
    )
}

/// `expect:` — statuses (`201`), ranges (`200-299`) or classes (`2xx`).
fn decode_expect(dec: &mut Decoder<'_>, node: &Node) -> Option<Vec<(u16, u16)>> {
    let items: Vec<&Node> = match &node.kind {
        Kind::Seq(items) => items.iter().collect(),
        _ => vec![node],
    };
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let text = match &item.kind {
            Kind::Number(n) => n.to_string(),
            _ => dec.string(item)?,
        };
        match parse_status_range(&text) {
            Some(range) => out.push(range),
            None => {
                dec.error(
                    item,
                    format!("invalid status {text:?}: write e.g. 200, 200-299 or 2xx"),
                );
                return None;
            }
        }
    }
    Some(out)
}

fn parse_status_range(text: &str) -> Option<(u16, u16)> {
    let text = text.trim();
    let valid = |s: u16| (100..=599).contains(&s);
    if let Some(class) = text.strip_suffix("xx").or_else(|| text.strip_suffix("XX")) {
        let c: u16 = class.parse().ok()?;
        return (1..=5).contains(&c).then_some((c * 100, c * 100 + 99));
    }
    if let Some((lo, hi)) = text.split_once('-') {
        let (lo, hi): (u16, u16) = (lo.trim().parse().ok()?, hi.trim().parse().ok()?);
        return (valid(lo) && valid(hi) && lo <= hi).then_some((lo, hi));
    }
    let s: u16 = text.parse().ok()?;
    valid(s).then_some((s, s))
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

async fn execute(action: &HttpAction, req: Request, env: &ActionEnv<'_>) -> Outcome {
    let url = summary_url(&req.url, &req.query, env.secrets);
    let summary = json!({
        "method": req.method.as_str(),
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
    let mut request = env.client.request(req.method.clone(), url).headers(headers);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_ranges_accept_codes_ranges_and_classes() {
        assert_eq!(parse_status_range("201"), Some((201, 201)));
        assert_eq!(parse_status_range("200-204"), Some((200, 204)));
        assert_eq!(parse_status_range("2xx"), Some((200, 299)));
        assert_eq!(parse_status_range("700"), None);
        assert_eq!(parse_status_range("300-200"), None);
    }
}
