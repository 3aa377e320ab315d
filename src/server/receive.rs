//! The ingest pipeline of SPEC §4 as typed stages, each a function from one
//! stage's value to the next or a [`Rejection`]:
//!
//! admit (known source, method, allowlist, rate limit) → read (body size)
//! → verify (signature) → parse (body, sender handshake, schema) → match
//! (trace and runs) → commit (dedupe, then the delivery, its queued runs
//! and its trace in one transaction — only then is the sender answered).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header, request};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde_json::value::RawValue;
use serde_json::{Value, json};

use super::AppState;
use crate::delivery::{Delivery, dedupe_key, event_name, parse_body, parse_body_for, parse_query};
use crate::metrics::DeliveryOutcome;
use crate::rules::{RuleSet, SchemaMismatch, Source, Trace};
use crate::store::{AcceptOutcome, KeptRequest, NewDelivery, NewRun, Rejected};
use crate::template::TemplateContext;
use crate::verify::Incoming;

/// A JSON error answer: `{"error": "..."}`.
pub fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, axum::Json(json!({ "error": message.into() }))).into_response()
}

/// Headers whose values are credentials: never stored.
const CREDENTIAL_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "x-gitlab-token",
];

/// `POST /hooks/<source>`: the stages in order.
pub async fn receive(
    State(app): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
) -> Response {
    let answer = async {
        let admitted = admit(&app, peer, req)?;
        let read = read(admitted).await?;
        let verified = verify(read)?;
        let parsed = parse(verified)?;
        let matched = match_rules(&app, parsed);
        commit(&app, matched).await
    };
    match answer.await {
        Ok(response) => response,
        Err(rejection) => rejection.respond(&app).await,
    }
}

/// Why a request did not become a delivery, and how it is answered.
#[derive(Debug)]
pub enum Rejection {
    /// No source at this path: 404 naming what exists.
    NotFound,
    /// 405 with `Allow`.
    Method { allowed: String },
    /// 401/403/413/429: counted, logged (rate-limited) without the body.
    Refused {
        head: Box<Head>,
        status: StatusCode,
        reason: String,
        retry_after: Option<u64>,
    },
    /// 400: the body could not be read or parsed.
    BadRequest { source: String, reason: String },
    /// A sender's handshake, answered 200 with this text; nothing stored.
    Handshake(String),
    /// 422: stored with its request, then answered.
    Schema(Box<Verified>, SchemaMismatch),
    /// 503: the store failed; the sender keeps the delivery and retries.
    Unavailable { source: String, error: String },
}

/// What every stage after `admit` knows of the request.
#[derive(Debug)]
pub struct Head {
    /// The rule set the request started with, whatever reloads do.
    pub rules: Arc<RuleSet>,
    pub source: Arc<Source>,
    pub id: String,
    pub received_at: DateTime<Utc>,
    pub client: IpAddr,
    pub parts: request::Parts,
}

/// A request for a known source from an allowed client within its rate.
#[derive(Debug)]
pub struct Admitted {
    pub head: Head,
    pub body: Body,
    /// The source's `max_body`, else the server's.
    pub max_body: u64,
}

/// Its body, read within the size limit.
#[derive(Debug)]
pub struct Read {
    pub head: Head,
    pub bytes: bytes::Bytes,
}

/// Its signature checked.
#[derive(Debug)]
pub struct Verified {
    pub head: Head,
    pub bytes: bytes::Bytes,
    pub headers: Vec<(String, String)>,
}

/// Its body parsed and its payload within the source's schema.
#[derive(Debug)]
pub struct Parsed {
    pub head: Head,
    pub bytes: bytes::Bytes,
    pub delivery: Delivery,
}

/// The rules that match it, with the runs to queue and the trace.
#[derive(Debug)]
pub struct Matched {
    pub head: Head,
    pub bytes: bytes::Bytes,
    pub delivery: Delivery,
    pub trace: Trace,
    pub matched: Vec<String>,
    pub runs: Vec<NewRun>,
}

impl Head {
    fn refuse(self, status: StatusCode, reason: impl Into<String>) -> Rejection {
        Rejection::Refused {
            head: Box::new(self),
            status,
            reason: reason.into(),
            retry_after: None,
        }
    }
}

/// Known source, allowed method, allowed client, within the rate limit.
pub fn admit(app: &AppState, peer: SocketAddr, req: Request) -> Result<Admitted, Rejection> {
    let rules = app.rules.load_full();
    let source = rules
        .source_by_path(req.uri().path())
        .cloned()
        .ok_or(Rejection::NotFound)?;
    if !source.methods.iter().any(|m| m == req.method().as_str()) {
        return Err(Rejection::Method {
            allowed: source.methods.join(", "),
        });
    }
    let client = super::client::client_ip(peer.ip(), req.headers(), &app.settings.trusted_proxies);
    let (parts, body) = req.into_parts();
    let head = Head {
        rules,
        source,
        id: app.new_id(),
        received_at: Utc::now(),
        client,
        parts,
    };
    let source = &head.source;
    if !source.allow_ips.is_empty() && !source.allow_ips.iter().any(|n| n.contains(&client)) {
        return Err(head.refuse(
            StatusCode::FORBIDDEN,
            format!("client address {client} is not allowed"),
        ));
    }
    if let Some(limit) = source.rate_limit
        && let Err(wait) = app.limiters.check(&source.name, limit)
    {
        let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        return Err(Rejection::Refused {
            head: Box::new(head),
            status: StatusCode::TOO_MANY_REQUESTS,
            reason: "rate limit exceeded".into(),
            retry_after: Some(seconds.max(1)),
        });
    }
    let max_body = source.max_body.unwrap_or(app.settings.max_body.0);
    Ok(Admitted {
        head,
        body,
        max_body,
    })
}

/// The body, refused past the source's `max_body` without reading further
/// (a declared `Content-Length` over it is refused before reading at all).
pub async fn read(admitted: Admitted) -> Result<Read, Rejection> {
    let Admitted {
        head,
        body,
        max_body,
    } = admitted;
    let too_large = format!("body larger than {max_body} bytes");
    let declared = head
        .parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > max_body) {
        return Err(head.refuse(StatusCode::PAYLOAD_TOO_LARGE, too_large));
    }
    match read_limited(body, max_body).await {
        Ok(bytes) => Ok(Read { head, bytes }),
        Err(ReadError::TooLarge) => Err(head.refuse(StatusCode::PAYLOAD_TOO_LARGE, too_large)),
        Err(ReadError::Broken) => Err(Rejection::BadRequest {
            source: head.source.name.clone(),
            reason: "could not read the request body".into(),
        }),
    }
}

/// The source's verifier, over the raw request.
pub fn verify(read: Read) -> Result<Verified, Rejection> {
    let Read { head, bytes } = read;
    if let Some(scheme) = &head.source.verifier {
        let incoming = Incoming {
            method: head.parts.method.as_str(),
            headers: &head.parts.headers,
            query: head.parts.uri.query(),
            body: &bytes,
            now: head.received_at.timestamp(),
        };
        if let Err(e) = scheme.verify(&incoming) {
            return Err(head.refuse(StatusCode::UNAUTHORIZED, e.to_string()));
        }
    }
    let headers = header_pairs(&head.parts.headers);
    Ok(Verified {
        head,
        bytes,
        headers,
    })
}

/// The body parsed by its content type; a sender's handshake answered;
/// the payload checked against the source's schema.
pub fn parse(verified: Verified) -> Result<Parsed, Rejection> {
    let content_type = verified
        .head
        .parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let needs = verified
        .head
        .rules
        .payload_needs(&verified.head.source.name);
    let payload = match parse_body_for(content_type, &verified.bytes, needs) {
        Ok(payload) => payload,
        Err(e) => {
            return Err(Rejection::BadRequest {
                source: verified.head.source.name.clone(),
                reason: e.to_string(),
            });
        }
    };
    let source = &verified.head.source;
    if let Some(answer) = source.verifier.as_ref().and_then(|s| s.handshake(&payload)) {
        return Err(Rejection::Handshake(answer));
    }
    if let Err(mismatch) = source.check_schema(&payload) {
        return Err(Rejection::Schema(Box::new(verified), mismatch));
    }
    let Verified {
        head,
        bytes,
        headers,
    } = verified;
    let event = event_name(&head.source, &headers, &payload);
    let delivery = Delivery {
        id: head.id.clone(),
        source: head.source.name.clone(),
        received_at: head.received_at,
        method: head.parts.method.as_str().to_string(),
        headers,
        query: parse_query(head.parts.uri.query()),
        raw: bytes.clone(),
        payload,
        event,
        source_ip: Some(head.client),
    };
    Ok(Parsed {
        head,
        bytes,
        delivery,
    })
}

/// Every rule of the source evaluated (the trace), one run per match.
pub fn match_rules(app: &AppState, parsed: Parsed) -> Matched {
    let Parsed {
        head,
        bytes,
        delivery,
    } = parsed;
    let trace = head
        .rules
        .evaluate(&head.source.name, &delivery.match_input());
    let matched: Vec<String> = trace.matched().map(str::to_string).collect();
    let created_at = head.received_at.timestamp_millis();
    let runs = matched
        .iter()
        .filter_map(|name| head.rules.rule(name))
        .map(|rule| {
            let id = app.new_id();
            NewRun {
                concurrency_key: crate::engine::concurrency_key(&head.rules, rule, &delivery, &id),
                id,
                delivery_id: head.id.clone(),
                rule: rule.name.clone(),
                created_at,
                definition: rule.run_definition.clone(),
                concurrency: rule.concurrency,
            }
        })
        .collect();
    Matched {
        head,
        bytes,
        delivery,
        trace,
        matched,
        runs,
    }
}

/// Dedupe, then the delivery, its runs and its trace in one transaction;
/// the answer only after the commit.
pub async fn commit(app: &AppState, matched: Matched) -> Result<Response, Rejection> {
    let Matched {
        head,
        bytes,
        delivery,
        trace,
        matched,
        runs,
    } = matched;
    let (rules, source) = (&head.rules, &head.source);
    let queued = !runs.is_empty();
    let record = NewDelivery {
        id: head.id.clone(),
        source: source.name.clone(),
        received_at: head.received_at.timestamp_millis(),
        method: delivery.method.clone(),
        path: source.path.clone(),
        query: head.parts.uri.query().map(|q| rules.secrets().redact(q)),
        headers: stored_headers(rules, source, &delivery.headers),
        remote_addr: head.client.to_string(),
        event: delivery.event.clone(),
        dedupe_key: dedupe_key(source, &delivery.headers, &delivery.payload),
        body: bytes.to_vec(),
        matched: matched.clone(),
        trace: serde_json::value::to_raw_value(&trace)
            .unwrap_or_else(|_| RawValue::NULL.to_owned()),
    };
    let window_ms = i64::try_from(app.settings.dedupe_window.as_millis()).unwrap_or(i64::MAX);
    match app.store.accept(record, runs, window_ms).await {
        Ok(AcceptOutcome::Accepted) => {
            crate::metrics::delivery(&source.name, DeliveryOutcome::Accepted);
            for rule in &matched {
                crate::metrics::matched(rule);
            }
            if queued {
                (app.on_queued)();
            }
            tracing::info!(delivery = %head.id, source = %source.name, event = %delivery.event, matched = ?matched, "delivery accepted");
            Ok(accepted_response(rules, source, &delivery, &matched))
        }
        Ok(AcceptOutcome::Duplicate { first_delivery }) => {
            crate::metrics::delivery(&source.name, DeliveryOutcome::Duplicate);
            tracing::info!(source = %source.name, first = %first_delivery, "duplicate delivery ignored");
            Ok((
                StatusCode::OK,
                axum::Json(json!({ "status": "duplicate", "delivery": first_delivery })),
            )
                .into_response())
        }
        Err(e) => Err(Rejection::Unavailable {
            source: source.name.clone(),
            error: e.to_string(),
        }),
    }
}

impl Rejection {
    /// The answer, after counting, logging and storing what must be.
    async fn respond(self, app: &AppState) -> Response {
        match self {
            Rejection::NotFound => super::not_found(app, super::Surface::Webhooks),
            Rejection::Method { allowed } => {
                let mut response = error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
                if let Ok(allow) = HeaderValue::from_str(&allowed) {
                    response.headers_mut().insert(header::ALLOW, allow);
                }
                response
            }
            Rejection::Refused {
                head,
                status,
                reason,
                retry_after,
            } => {
                crate::metrics::delivery(
                    &head.source.name,
                    DeliveryOutcome::Rejected(status.as_u16()),
                );
                app.log_rejected(Rejected {
                    id: head.id.clone(),
                    source: head.source.name.clone(),
                    received_at: head.received_at.timestamp_millis(),
                    method: head.parts.method.as_str().to_string(),
                    path: head.source.path.clone(),
                    remote_addr: head.client.to_string(),
                    status: status.as_u16(),
                    reason: reason.clone(),
                    kept: None,
                });
                let mut response = error(status, reason);
                if let Some(seconds) = retry_after {
                    response
                        .headers_mut()
                        .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
                }
                response
            }
            Rejection::BadRequest { source, reason } => {
                crate::metrics::delivery(&source, DeliveryOutcome::InvalidBody);
                error(StatusCode::BAD_REQUEST, reason)
            }
            Rejection::Handshake(answer) => (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "text/plain")],
                answer,
            )
                .into_response(),
            Rejection::Schema(verified, mismatch) => keep_refused(app, *verified, mismatch).await,
            Rejection::Unavailable { source, error: e } => store_failed(&source, &e),
        }
    }
}

/// A payload against its source's schema: stored before answering, and not
/// through the rate-limited reject log — the sender proved it holds the
/// secret, and the request must be there to inspect and replay once the
/// schema is fixed.
async fn keep_refused(app: &AppState, verified: Verified, mismatch: SchemaMismatch) -> Response {
    let Verified {
        head,
        bytes,
        headers,
    } = verified;
    let (rules, source) = (&head.rules, &head.source);
    let payload = parse_body(
        head.parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok()),
        &bytes,
    )
    .unwrap_or(Value::Null);
    let rejected = Rejected {
        id: head.id.clone(),
        source: source.name.clone(),
        received_at: head.received_at.timestamp_millis(),
        method: head.parts.method.as_str().to_string(),
        path: source.path.clone(),
        remote_addr: head.client.to_string(),
        status: StatusCode::UNPROCESSABLE_ENTITY.as_u16(),
        reason: rules.secrets().redact(&mismatch.to_string()),
        kept: Some(KeptRequest {
            query: head.parts.uri.query().map(|q| rules.secrets().redact(q)),
            headers: stored_headers(rules, source, &headers),
            event: event_name(source, &headers, &payload),
            body: bytes.to_vec(),
        }),
    };
    match app.store.record_rejected(rejected).await {
        Ok(()) => {
            crate::metrics::delivery(&source.name, DeliveryOutcome::Rejected(422));
            tracing::warn!(delivery = %head.id, source = %source.name, at = %mismatch.at, "payload does not match the schema");
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                axum::Json(json!({
                    "error": "payload does not match the schema",
                    "delivery": head.id,
                    "at": mismatch.at,
                    "reason": mismatch.reason,
                })),
            )
                .into_response()
        }
        Err(e) => store_failed(&source.name, &e.to_string()),
    }
}

/// 503: not a 2xx (or a 422 that was not kept), so the sender keeps the
/// delivery and retries.
fn store_failed(source: &str, e: &str) -> Response {
    crate::metrics::delivery(source, DeliveryOutcome::StoreError);
    tracing::error!(source = %source, error = %e, "could not store a delivery");
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "the delivery could not be stored; retry later",
    )
}

enum ReadError {
    TooLarge,
    Broken,
}

/// Reads at most `limit` bytes; never buffers past the limit.
async fn read_limited(body: Body, limit: u64) -> Result<bytes::Bytes, ReadError> {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => Err(ReadError::TooLarge),
        Err(e) => {
            // A body over the limit can also surface as a hyper error
            // wrapping the length error.
            let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e.as_ref());
            while let Some(err) = source {
                if err.is::<LengthLimitError>() {
                    return Err(ReadError::TooLarge);
                }
                source = err.source();
            }
            Err(ReadError::Broken)
        }
    }
}

/// Headers as pairs with lower-case names; non-UTF-8 values lossily.
fn header_pairs(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect()
}

/// The headers as stored: credentials masked, secrets redacted.
fn stored_headers(
    rules: &RuleSet,
    source: &Source,
    headers: &[(String, String)],
) -> Vec<(String, String)> {
    let token_header = source
        .verifier
        .as_ref()
        .and_then(|scheme| scheme.credential_header())
        .map(str::to_ascii_lowercase);
    headers
        .iter()
        .map(|(k, v)| {
            let credential = CREDENTIAL_HEADERS.contains(&k.as_str())
                || token_header.as_deref() == Some(k.as_str());
            let value = if credential {
                "***".to_string()
            } else {
                rules.secrets().redact(v)
            };
            (k.clone(), value)
        })
        .collect()
}

/// 202 with the delivery id and matched rules, or the source's `response:`.
fn accepted_response(
    rules: &RuleSet,
    source: &Source,
    delivery: &Delivery,
    matched: &[String],
) -> Response {
    let default = || {
        (
            StatusCode::ACCEPTED,
            axum::Json(json!({ "delivery": delivery.id, "matched": matched })),
        )
            .into_response()
    };
    let Some(spec) = &source.response else {
        return default();
    };
    let mut value = delivery.base_template_value();
    if let Value::Object(map) = &mut value {
        map.insert("matched".into(), json!(matched));
    }
    let ctx = TemplateContext::new(value);
    let templates = rules.templates();
    let body = match &spec.body {
        Some(t) => match templates.render_text(t, &ctx) {
            Ok(text) => text,
            Err(e) => {
                // The delivery is stored; a broken reply must not hide that.
                tracing::warn!(source = %source.name, error = %e, "response template failed; answering 202");
                return default();
            }
        },
        None => String::new(),
    };
    let status = StatusCode::from_u16(spec.status).unwrap_or(StatusCode::OK);
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    for (name, template) in &spec.headers {
        let rendered = templates.render_text(template, &ctx);
        if let (Ok(name), Ok(Ok(value))) = (
            HeaderName::from_bytes(name.as_bytes()),
            rendered.map(|v| HeaderValue::from_str(&v)),
        ) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}

#[cfg(test)]
mod tests {
    //! Each stage on its own, over a real rule set and SQLite store.
    use super::*;
    use crate::config::Settings;

    const RULES: &str = r#"
sources:
  hooks:
    verify: { token: { header: X-T, value: t0ken } }
    allow_ips: [127.0.0.0/8]
    max_body: 64
    schema: { type: object, required: [n], properties: { n: { type: integer } } }
  chat:
    verify: { slack: { secret: s3cret } }
  limited:
    verify: { token: { header: X-T, value: t0ken } }
    rate_limit: 1/m # burst 2
rules:
  - name: big
    source: hooks
    when: { path: $.n, gt: 10 }
    actions: [{ http: { url: "http://127.0.0.1:9/x" } }]
"#;

    struct Fixture {
        app: AppState,
        _dir: tempfile::TempDir,
    }

    async fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let rules_dir = dir.path().join("rules");
        std::fs::create_dir(&rules_dir).unwrap();
        std::fs::write(rules_dir.join("r.yaml"), RULES).unwrap();
        let rules = crate::rules::load(&rules_dir).unwrap();
        let url = format!("sqlite://{}", dir.path().join("h.db").display());
        let store = crate::store::open(&url).await.unwrap();
        let reloader = crate::reload::Reloader::new(rules_dir, rules);
        let app = AppState::new(
            reloader,
            store,
            Arc::new(Settings::default()),
            Arc::new(|| {}),
        );
        Fixture { app, _dir: dir }
    }

    fn request(path: &str, headers: &[(&str, &str)], body: &str) -> Request {
        let mut builder = Request::builder().method("POST").uri(path);
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        builder.body(Body::from(body.to_owned())).unwrap()
    }

    fn peer(ip: &str) -> SocketAddr {
        SocketAddr::new(ip.parse().unwrap(), 40000)
    }

    async fn through_parse(
        f: &Fixture,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Result<Parsed, Rejection> {
        let admitted = admit(
            &f.app,
            peer("127.0.0.1"),
            request("/hooks/hooks", headers, body),
        )?;
        parse(verify(read(admitted).await?)?)
    }

    fn status(rejection: &Rejection) -> Option<u16> {
        match rejection {
            Rejection::Refused { status, .. } => Some(status.as_u16()),
            _ => None,
        }
    }

    #[tokio::test]
    async fn admit_knows_the_source_method_client_and_rate() {
        let f = fixture().await;
        let r = admit(&f.app, peer("127.0.0.1"), request("/hooks/nope", &[], ""));
        assert!(matches!(r, Err(Rejection::NotFound)));
        let get = Request::builder()
            .method("GET")
            .uri("/hooks/hooks")
            .body(Body::empty())
            .unwrap();
        assert!(matches!(
            admit(&f.app, peer("127.0.0.1"), get),
            Err(Rejection::Method { .. })
        ));
        let far = admit(
            &f.app,
            peer("203.0.113.9"),
            request("/hooks/hooks", &[], ""),
        );
        assert_eq!(far.err().as_ref().and_then(status), Some(403));
        for _ in 0..2 {
            assert!(
                admit(
                    &f.app,
                    peer("127.0.0.1"),
                    request("/hooks/limited", &[], "")
                )
                .is_ok()
            );
        }
        let limited = admit(
            &f.app,
            peer("127.0.0.1"),
            request("/hooks/limited", &[], ""),
        )
        .err();
        assert_eq!(limited.as_ref().and_then(status), Some(429));
        assert!(matches!(limited, Some(Rejection::Refused { retry_after: Some(s), .. }) if s >= 1));
    }

    #[tokio::test]
    async fn read_refuses_a_body_over_max_body_declared_or_not() {
        let f = fixture().await;
        let big = "x".repeat(65);
        let admitted = admit(
            &f.app,
            peer("127.0.0.1"),
            request("/hooks/hooks", &[], &big),
        )
        .unwrap();
        assert_eq!(
            read(admitted).await.err().as_ref().and_then(status),
            Some(413)
        );
        let lying = request("/hooks/hooks", &[("Content-Length", "10")], "");
        let admitted = admit(&f.app, peer("127.0.0.1"), lying).unwrap();
        assert!(
            read(admitted).await.is_ok(),
            "a short declared length is read as sent"
        );
        let declared = request("/hooks/hooks", &[("Content-Length", "100000")], "");
        let admitted = admit(&f.app, peer("127.0.0.1"), declared).unwrap();
        assert_eq!(
            read(admitted).await.err().as_ref().and_then(status),
            Some(413)
        );
    }

    #[tokio::test]
    async fn verify_then_parse_then_the_schema() {
        let f = fixture().await;
        let wrong = through_parse(&f, &[("X-T", "nope")], r#"{"n":1}"#).await;
        assert_eq!(wrong.err().as_ref().and_then(status), Some(401));
        let broken = through_parse(
            &f,
            &[("X-T", "t0ken"), ("Content-Type", "application/json")],
            "{",
        )
        .await;
        assert!(matches!(broken, Err(Rejection::BadRequest { .. })));
    }

    #[tokio::test]
    async fn the_schema_refuses_with_a_pointer_and_a_delivery_is_built_otherwise() {
        let f = fixture().await;
        let json = [("X-T", "t0ken"), ("Content-Type", "application/json")];
        match through_parse(&f, &json, r#"{"n":"one"}"#).await {
            Err(Rejection::Schema(_, mismatch)) => assert_eq!(mismatch.at, "/n"),
            other => panic!("expected a schema refusal, got {other:?}"),
        }
        let parsed = through_parse(&f, &json, r#"{"n":42}"#).await.unwrap();
        assert_eq!(parsed.delivery.payload["n"], 42);
        assert_eq!(parsed.delivery.source, "hooks");
    }

    #[tokio::test]
    async fn a_sender_handshake_is_answered_not_stored() {
        let f = fixture().await;
        let body = r#"{"type":"url_verification","challenge":"abc"}"#;
        let now = Utc::now().timestamp();
        let config = crate::verify::VerifierConfig::Slack(crate::verify::slack::Config {
            secrets: vec![crate::verify::Secret::new("s3cret")],
            tolerance: std::time::Duration::from_secs(300),
        });
        let signed = crate::verify::sign(&config, body.as_bytes(), now, "").unwrap();
        let mut headers: Vec<(&str, &str)> = signed
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        headers.push(("Content-Type", "application/json"));
        let admitted = admit(
            &f.app,
            peer("127.0.0.1"),
            request("/hooks/chat", &headers, body),
        )
        .unwrap();
        let result = parse(verify(read(admitted).await.unwrap()).unwrap());
        assert!(
            matches!(result, Err(Rejection::Handshake(ref c)) if c == "abc"),
            "{result:?}"
        );
    }

    #[tokio::test]
    async fn match_then_commit_then_a_resend_is_a_duplicate() {
        let f = fixture().await;
        let headers = [
            ("X-T", "t0ken"),
            ("Content-Type", "application/json"),
            ("Idempotency-Key", "k-1"),
        ];
        let parsed = through_parse(&f, &headers, r#"{"n":42}"#).await.unwrap();
        let matched = match_rules(&f.app, parsed);
        assert_eq!(matched.matched, ["big"]);
        assert_eq!(matched.runs.len(), 1);
        let id = matched.head.id.clone();
        let response = commit(&f.app, matched).await.unwrap();
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        assert!(
            f.app.store.get_delivery(&id).await.unwrap().is_some(),
            "committed before the answer"
        );
        let again = match_rules(
            &f.app,
            through_parse(&f, &headers, r#"{"n":42}"#).await.unwrap(),
        );
        assert!(again.head.id != id);
        let response = commit(&f.app, again).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "a duplicate");
    }
}
