//! The ingest pipeline of SPEC §4: known source → allowlist → rate limit →
//! body size → signature → body parse → schema → dedupe, then the delivery, its
//! queued runs and its match trace are committed in one transaction, and
//! only then is the sender answered.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde_json::value::RawValue;
use serde_json::{Value, json};

use super::AppState;
use crate::delivery::{Delivery, dedupe_key, event_name, parse_body, parse_query};
use crate::rules::{RuleSet, Source};
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

pub async fn receive(
    State(app): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
) -> Response {
    // The request keeps the rule set it started with, whatever reloads do.
    let rules = app.rules.load_full();
    let Some(source) = rules.source_by_path(req.uri().path()).cloned() else {
        return super::not_found(&app, super::Surface::Webhooks);
    };
    let method = req.method().as_str().to_string();
    if !source.methods.contains(&method) {
        let mut response = error(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("method {method} not allowed"),
        );
        if let Ok(allow) = HeaderValue::from_str(&source.methods.join(", ")) {
            response.headers_mut().insert(header::ALLOW, allow);
        }
        return response;
    }
    let client = super::client::client_ip(peer.ip(), req.headers(), &app.settings.trusted_proxies);
    let received_at = Utc::now();
    let id = app.new_id();
    let reject = |status: StatusCode, reason: String| {
        crate::metrics::delivery(&source.name, &format!("rejected_{}", status.as_u16()));
        app.log_rejected(Rejected {
            id: id.clone(),
            source: source.name.clone(),
            received_at: received_at.timestamp_millis(),
            method: method.clone(),
            path: source.path.clone(),
            remote_addr: client.to_string(),
            status: status.as_u16(),
            reason: reason.clone(),
            kept: None,
        });
        error(status, reason)
    };

    if !source.allow_ips.is_empty() && !source.allow_ips.iter().any(|n| n.contains(&client)) {
        return reject(
            StatusCode::FORBIDDEN,
            format!("client address {client} is not allowed"),
        );
    }
    if let Some(limit) = source.rate_limit
        && let Err(wait) = app.limiters.check(&source.name, limit)
    {
        let mut response = reject(StatusCode::TOO_MANY_REQUESTS, "rate limit exceeded".into());
        let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
        return response;
    }

    let max_body = source.max_body.unwrap_or(app.settings.max_body.0);
    let (parts, body) = req.into_parts();
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > max_body) {
        return reject(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("body larger than {max_body} bytes"),
        );
    }
    let bytes = match read_limited(body, max_body).await {
        Ok(bytes) => bytes,
        Err(ReadError::TooLarge) => {
            return reject(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("body larger than {max_body} bytes"),
            );
        }
        Err(ReadError::Broken) => {
            return error(StatusCode::BAD_REQUEST, "could not read the request body");
        }
    };

    if let Some(verifier) = &source.verifier {
        let incoming = Incoming {
            method: &method,
            headers: &parts.headers,
            query: parts.uri.query(),
            body: &bytes,
            now: received_at.timestamp(),
        };
        if let Err(e) = verifier.verify(&incoming) {
            return reject(StatusCode::UNAUTHORIZED, e.to_string());
        }
    }

    let headers = header_pairs(&parts.headers);
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let payload = match parse_body(content_type, &bytes) {
        Ok(p) => p,
        Err(e) => {
            crate::metrics::delivery(&source.name, "invalid_body");
            return error(StatusCode::BAD_REQUEST, e.to_string());
        }
    };
    // A handshake the sender expects answered (Slack's url_verification):
    // answered here, nothing stored or run.
    if let Some(answer) = source.verifier.as_ref().and_then(|s| s.handshake(&payload)) {
        return (StatusCode::OK, [(header::CONTENT_TYPE, "text/plain")], answer).into_response();
    }

    if let Err(mismatch) = source.check_schema(&payload) {
        // Stored before answering, and not through the rate-limited reject
        // log: the sender proved it holds the secret, and the request must
        // be there to inspect and replay once the schema is fixed.
        let rejected = Rejected {
            id: id.clone(),
            source: source.name.clone(),
            received_at: received_at.timestamp_millis(),
            method,
            path: source.path.clone(),
            remote_addr: client.to_string(),
            status: StatusCode::UNPROCESSABLE_ENTITY.as_u16(),
            reason: rules.secrets().redact(&mismatch.to_string()),
            kept: Some(KeptRequest {
                query: parts.uri.query().map(|q| rules.secrets().redact(q)),
                headers: stored_headers(&rules, &source, &headers),
                event: event_name(&source, &headers, &payload),
                body: bytes.to_vec(),
            }),
        };
        return match app.store.record_rejected(rejected).await {
            Ok(()) => {
                crate::metrics::delivery(&source.name, "rejected_422");
                tracing::warn!(delivery = %id, source = %source.name, at = %mismatch.at, "payload does not match the schema");
                (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    axum::Json(json!({
                        "error": "payload does not match the schema",
                        "delivery": id,
                        "at": mismatch.at,
                        "reason": mismatch.reason,
                    })),
                )
                    .into_response()
            }
            Err(e) => store_failed(&source, &e),
        };
    }

    let event = event_name(&source, &headers, &payload);
    let dedupe = dedupe_key(&source, &headers, &payload);
    let delivery = Delivery {
        id: id.clone(),
        source: source.name.clone(),
        received_at,
        method: method.clone(),
        headers,
        query: parse_query(parts.uri.query()),
        raw: bytes.to_vec(),
        payload,
        event,
        source_ip: Some(client),
    };
    let trace = rules.evaluate(&source.name, &delivery.match_input());
    let matched: Vec<String> = trace.matched().map(str::to_string).collect();
    let runs: Vec<NewRun> = matched
        .iter()
        .filter_map(|name| rules.rule(name))
        .map(|rule| NewRun {
            id: app.new_id(),
            delivery_id: id.clone(),
            rule: rule.name.clone(),
            created_at: received_at.timestamp_millis(),
            definition: rule.definition.clone(),
            concurrency: rule.concurrency,
        })
        .collect();
    let queued = !runs.is_empty();
    let record = NewDelivery {
        id: id.clone(),
        source: source.name.clone(),
        received_at: received_at.timestamp_millis(),
        method,
        path: source.path.clone(),
        query: parts.uri.query().map(|q| rules.secrets().redact(q)),
        headers: stored_headers(&rules, &source, &delivery.headers),
        remote_addr: client.to_string(),
        event: delivery.event.clone(),
        dedupe_key: dedupe,
        body: bytes.to_vec(),
        matched: matched.clone(),
        trace: serde_json::value::to_raw_value(&trace)
            .unwrap_or_else(|_| RawValue::NULL.to_owned()),
    };
    let window_ms = i64::try_from(app.settings.dedupe_window.as_millis()).unwrap_or(i64::MAX);
    match app.store.accept(record, runs, window_ms).await {
        Ok(AcceptOutcome::Accepted) => {
            crate::metrics::delivery(&source.name, "accepted");
            for rule in &matched {
                crate::metrics::matched(rule);
            }
            if queued {
                (app.on_queued)();
            }
            tracing::info!(delivery = %id, source = %source.name, event = %delivery.event, matched = ?matched, "delivery accepted");
            accepted_response(&rules, &source, &delivery, &matched)
        }
        Ok(AcceptOutcome::Duplicate { first_delivery }) => {
            crate::metrics::delivery(&source.name, "duplicate");
            tracing::info!(source = %source.name, first = %first_delivery, "duplicate delivery ignored");
            (
                StatusCode::OK,
                axum::Json(json!({ "status": "duplicate", "delivery": first_delivery })),
            )
                .into_response()
        }
        Err(e) => store_failed(&source, &e),
    }
}

/// 503: not a 2xx (or a 422 that was not kept), so the sender keeps the
/// delivery and retries.
fn store_failed(source: &Source, e: &crate::store::StoreError) -> Response {
    crate::metrics::delivery(&source.name, "store_error");
    tracing::error!(source = %source.name, error = %e, "could not store a delivery");
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
    let token_header = match &source.verify {
        Some(crate::verify::VerifierConfig::Token {
            location: crate::verify::TokenLocation::Header(name),
            ..
        }) => Some(name.to_ascii_lowercase()),
        _ => None,
    };
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
