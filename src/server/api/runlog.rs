//! Reading the run log: deliveries and runs, listed (newest first, paged
//! by cursor) and one by one with everything recorded about them.

use std::sync::{Arc, LazyLock};

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use regex::Regex;
use utoipa::openapi::schema::{
    AnyOfBuilder, KnownFormat, ObjectBuilder, Schema, SchemaFormat, Type,
};

use super::ApiError;
use super::dto::{
    DeliveryDetail, DeliveryPage, ErrorBody, OperatorActionView, Redact, RunDetail, RunPage,
};
use crate::server::AppState;
use crate::store::{DeliveryFilter, RunFilter, RunStatus};

/// Most audit-trail entries in a delivery's or run's detail.
const TRAIL_SHOWN: u32 = 100;

/// `GET /api/deliveries`
#[utoipa::path(
    get,
    path = "/api/deliveries",
    tag = "run log",
    params(
        ("source" = Option<String>, Query, description = "Only this source's deliveries"),
        ("since" = Option<String>, Query, description = "Only deliveries received since: a duration back from now (`90m`, `7d`, `1d12h`) or an RFC 3339 time (empty: any time)"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "Page size (default 100)"),
        ("before" = Option<String>, Query, description = "Cursor: the `next` of the previous page"),
    ),
    responses(
        (status = 200, description = "Deliveries, newest first", body = DeliveryPage),
        (status = 400, description = "A bad query parameter", body = ErrorBody),
    )
)]
pub async fn list_deliveries(
    State(app): State<Arc<AppState>>,
    RawQuery(query): RawQuery,
) -> Result<Json<DeliveryPage>, ApiError> {
    let mut filter = DeliveryFilter::default();
    for (key, value) in pairs(query.as_deref()) {
        match key.as_str() {
            "source" => filter.source = Some(value),
            "since" => filter.since_ms = Some(parse_since(&value)?),
            "limit" => filter.limit = parse_limit(&value)?,
            "before" => filter.before_id = Some(value),
            _ => {}
        }
    }
    let limit = filter.effective_limit() as usize;
    let items = app.store.list_deliveries(filter).await?;
    let next = next_cursor(items.len(), limit, items.last().map(|d| d.id.as_str()));
    let rules = app.rules.load();
    let redact = Redact(rules.secrets());
    Ok(Json(DeliveryPage {
        items: items.into_iter().map(|d| redact.delivery_item(d)).collect(),
        next,
    }))
}

/// `GET /api/deliveries/{id}`
#[utoipa::path(
    get,
    path = "/api/deliveries/{id}",
    tag = "run log",
    params(("id" = String, Path, description = "Delivery id")),
    responses(
        (status = 200, description = "The delivery, its match trace and its runs", body = DeliveryDetail),
        (status = 404, description = "No such delivery", body = ErrorBody),
    )
)]
pub async fn get_delivery(
    State(app): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<DeliveryDetail>, ApiError> {
    let delivery = app
        .store
        .get_delivery(&id)
        .await?
        .ok_or_else(|| ApiError::not_found("delivery", &id))?;
    let runs = app.store.runs_for_delivery(&id).await?;
    let trail = app.store.operator_actions(Some(&id), TRAIL_SHOWN).await?;
    let rules = app.rules.load();
    let redact = Redact(rules.secrets());
    let mut detail = redact.delivery(delivery, runs);
    detail.operator_actions = redact.trail(trail);
    Ok(Json(detail))
}

/// `GET /api/runs`
#[utoipa::path(
    get,
    path = "/api/runs",
    tag = "run log",
    params(
        ("status" = Option<String>, Query, pattern = "^(queued|running|waiting|succeeded|failed|cancelled)?$", description = "Only runs in this state (empty: any); `waiting`: running runs waiting for a retry"),
        ("rule" = Option<String>, Query, description = "Only this rule's runs"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "Page size (default 100)"),
        ("before" = Option<String>, Query, description = "Cursor: the `next` of the previous page"),
    ),
    responses(
        (status = 200, description = "Runs, newest first", body = RunPage),
        (status = 400, description = "A bad query parameter", body = ErrorBody),
    )
)]
pub async fn list_runs(
    State(app): State<Arc<AppState>>,
    RawQuery(query): RawQuery,
) -> Result<Json<RunPage>, ApiError> {
    let mut filter = RunFilter::default();
    for (key, value) in pairs(query.as_deref()) {
        match key.as_str() {
            "status" if value == "waiting" => {
                filter.waiting_at = Some(chrono::Utc::now().timestamp_millis());
            }
            "status" => {
                filter.status = Some(RunStatus::parse(&value).ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "status must be one of queued, running, waiting, succeeded, failed, cancelled; not `{value}`"
                    ))
                })?);
            }
            "rule" => filter.rule = Some(value),
            "limit" => filter.limit = parse_limit(&value)?,
            "before" => filter.before_id = Some(value),
            _ => {}
        }
    }
    let limit = filter.effective_limit() as usize;
    let items = app.store.list_runs(filter).await?;
    let next = next_cursor(items.len(), limit, items.last().map(|r| r.id.as_str()));
    let rules = app.rules.load();
    let redact = Redact(rules.secrets());
    Ok(Json(RunPage {
        items: items.into_iter().map(|r| redact.run_item(r)).collect(),
        next,
    }))
}

/// `GET /api/runs/{id}`
#[utoipa::path(
    get,
    path = "/api/runs/{id}",
    tag = "run log",
    params(("id" = String, Path, description = "Run id")),
    responses(
        (status = 200, description = "The run with every attempt", body = RunDetail),
        (status = 404, description = "No such run", body = ErrorBody),
    )
)]
pub async fn get_run(
    State(app): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<RunDetail>, ApiError> {
    let run = app
        .store
        .get_run(&id)
        .await?
        .ok_or_else(|| ApiError::not_found("run", &id))?;
    let attempts = app.store.attempts_for_run(&id).await?;
    let trail = app.store.operator_actions(Some(&id), TRAIL_SHOWN).await?;
    let rules = app.rules.load();
    let redact = Redact(rules.secrets());
    let mut detail = redact.run(run, attempts);
    detail.operator_actions = redact.trail(trail);
    Ok(Json(detail))
}

/// The query string's pairs, percent-decoded. An empty filter is no filter
/// (`?since=&rule=`, as an HTML form sends its blank fields); `limit` is a
/// number or nothing at all.
fn pairs(query: Option<&str>) -> Vec<(String, String)> {
    form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .filter(|(k, v)| !v.is_empty() || k == "limit")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// A full page may have more after it: its last id is the cursor.
fn next_cursor(len: usize, limit: usize, last: Option<&str>) -> Option<String> {
    if len >= limit {
        last.map(str::to_owned)
    } else {
        None
    }
}

fn parse_limit(value: &str) -> Result<u32, ApiError> {
    match value.parse::<u32>() {
        Ok(n) if (1..=DeliveryFilter::MAX_LIMIT).contains(&n) => Ok(n),
        _ => Err(ApiError::bad_request(format!(
            "limit must be a number from 1 to {}, not `{value}`",
            DeliveryFilter::MAX_LIMIT
        ))),
    }
}

/// The durations `since` takes: whole numbers of ms, s, m, h, d or w, one
/// after another (`90m`, `1d12h`), at most six digits each so that none
/// overflows. The document says the same (`since_schema`); the empty
/// string is there because a blank filter is no filter.
pub(crate) const SINCE_DURATION: &str = "^([0-9]{1,6}(ms|s|m|h|d|w))*$";

static SINCE_DURATION_RE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(SINCE_DURATION).expect("a constant pattern (tested)"));

/// `since` as documented: an RFC 3339 time (`format: date-time`) or a
/// duration matching [`SINCE_DURATION`].
pub(crate) fn since_schema() -> Schema {
    let time = ObjectBuilder::new()
        .schema_type(Type::String)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)));
    let duration = ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(SINCE_DURATION));
    Schema::AnyOf(AnyOfBuilder::new().item(time).item(duration).build())
}

/// `since`: a duration back from now (`90m`, `7d`) or an RFC 3339 time.
pub(super) fn parse_since(value: &str) -> Result<i64, ApiError> {
    if SINCE_DURATION_RE.is_match(value)
        && let Ok(ago) = humantime::parse_duration(value)
    {
        let ago = chrono::Duration::from_std(ago).unwrap_or(chrono::Duration::MAX);
        let at = chrono::Utc::now()
            .checked_sub_signed(ago)
            .map_or(0, |t| t.timestamp_millis());
        return Ok(at);
    }
    chrono::DateTime::parse_from_rfc3339(value)
        .map(|t| t.timestamp_millis())
        .map_err(|_| {
            ApiError::bad_request(format!(
                "since must be a duration (`90m`, `7d`, `1d12h`) or an RFC 3339 time, not `{value}`"
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_documented_durations_and_rfc3339_times() {
        let now = chrono::Utc::now().timestamp_millis();
        for (value, ago_ms) in [
            ("90m", 90 * 60_000),
            ("7d", 7 * 86_400_000),
            ("1d12h", 36 * 3_600_000),
            ("0s", 0),
        ] {
            let at = parse_since(value).expect(value);
            assert!((now - ago_ms - at).abs() < 60_000, "{value}: {at}");
        }
        assert_eq!(
            parse_since("2026-01-02T03:04:05Z").expect("rfc 3339"),
            1_767_323_045_000
        );
        assert!(
            parse_since("999999w").is_ok(),
            "the largest documented duration"
        );
    }

    #[test]
    fn since_refuses_what_the_document_does_not_allow() {
        for value in [
            "1 hour",
            "h",
            "1234567h",
            "99999999999999999999d",
            "soon",
            "2026-13-01T00:00:00Z",
        ] {
            assert!(parse_since(value).is_err(), "{value} was accepted");
            assert!(
                !SINCE_DURATION_RE.is_match(value) || value.is_empty(),
                "{value} matches the documented pattern"
            );
        }
    }
}

/// `GET /api/operator-actions`
#[utoipa::path(
    get,
    path = "/api/operator-actions",
    tag = "run log",
    params(
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "How many, newest first (default 100)"),
    ),
    responses(
        (status = 200, description = "The audit trail, newest first: replays, retries, cancels and reloads, with who started them, from where and when", body = [OperatorActionView]),
        (status = 400, description = "A bad query parameter", body = ErrorBody),
    )
)]
pub async fn operator_actions(
    State(app): State<Arc<AppState>>,
    RawQuery(query): RawQuery,
) -> Result<Json<Vec<OperatorActionView>>, ApiError> {
    let mut limit = 0;
    for (key, value) in pairs(query.as_deref()) {
        if key == "limit" {
            limit = parse_limit(&value)?;
        }
    }
    let limit = crate::store::DeliveryFilter::page_size(limit);
    let trail = app.store.operator_actions(None, limit).await?;
    let rules = app.rules.load();
    Ok(Json(Redact(rules.secrets()).trail(trail)))
}
