//! The deliveries page (`/ui/deliveries`):
//! newest first, filtered by source, event, outcome and time, paged by
//! cursor, with a live tail of new arrivals on the first page (`tail`).
//!
//! Source and time filter in the store; event and outcome are checked here
//! while scanning pages, at most [`SCAN_LIMIT`] rows per page shown, so a
//! rare outcome on a big run log costs a bounded read and a "more" link.

use std::sync::Arc;

use axum::Extension;
use axum::extract::{RawQuery, State};
use maud::{Markup, html};

use super::UiError;
use super::auth::Current;
use super::layout::{badge, segment, shell, time};
use crate::runlog_view::{DeliveryItem, DeliveryStatus, Redact};
use crate::server::AppState;
use crate::store::DeliveryFilter;

/// Rows shown per page.
const PAGE: usize = 50;
/// Rows read at most to fill one page when filtering by event or outcome.
const SCAN_LIMIT: usize = 5_000;
/// The time filter's choices.
pub const SINCE: [&str; 5] = ["15m", "1h", "6h", "24h", "7d"];
/// The outcome filter's choices. Duplicates are answered but never stored,
/// so there is none to list.
pub const OUTCOMES: [&str; 3] = ["matched", "unmatched", "rejected"];

/// The filters, as in the query string (shareable links).
#[derive(Debug, Clone, Default)]
pub struct Filters {
    pub source: String,
    pub event: String,
    pub outcome: String,
    pub since: String,
    pub before: String,
}

impl Filters {
    pub fn parse(query: Option<&str>) -> Result<Self, UiError> {
        let mut f = Filters::default();
        for (key, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            let value = value.trim().to_owned();
            match key.as_ref() {
                "source" => f.source = value,
                "event" => f.event = value,
                "outcome" => f.outcome = value,
                "since" => f.since = value,
                "before" => f.before = value,
                _ => {}
            }
        }
        if !f.outcome.is_empty() && !OUTCOMES.contains(&f.outcome.as_str()) {
            return Err(UiError::BadRequest(format!(
                "outcome must be one of {}, not `{}`",
                OUTCOMES.join(", "),
                f.outcome
            )));
        }
        if !f.since.is_empty() && humantime::parse_duration(&f.since).is_err() {
            return Err(UiError::BadRequest(format!(
                "since must be a duration such as 1h or 7d, not `{}`",
                f.since
            )));
        }
        Ok(f)
    }

    /// The store's part of the filter.
    pub fn store_filter(&self, limit: u32, before: Option<String>) -> DeliveryFilter {
        let since_ms = humantime::parse_duration(&self.since).ok().map(|ago| {
            let ago = chrono::Duration::from_std(ago).unwrap_or(chrono::Duration::MAX);
            chrono::Utc::now()
                .checked_sub_signed(ago)
                .map_or(0, |t| t.timestamp_millis())
        });
        DeliveryFilter {
            source: (!self.source.is_empty()).then(|| self.source.clone()),
            since_ms,
            limit,
            before_id: before,
        }
    }

    /// Event and outcome, checked here.
    pub fn keeps(&self, d: &DeliveryItem) -> bool {
        let event_ok = self.event.is_empty() || d.event == self.event;
        let outcome_ok = match self.outcome.as_str() {
            "matched" => d.status == DeliveryStatus::Accepted && !d.matched.is_empty(),
            "unmatched" => d.status == DeliveryStatus::Accepted && d.matched.is_empty(),
            "rejected" => d.status == DeliveryStatus::Rejected,
            _ => true,
        };
        event_ok && outcome_ok
    }

    /// The query string of these filters, without the cursor.
    pub fn query(&self) -> String {
        let mut q = form_urlencoded::Serializer::new(String::new());
        for (k, v) in [
            ("source", &self.source),
            ("event", &self.event),
            ("outcome", &self.outcome),
            ("since", &self.since),
        ] {
            if !v.is_empty() {
                q.append_pair(k, v);
            }
        }
        q.finish()
    }
}

/// `GET /ui/deliveries` (and `/ui/`)
pub async fn page(
    State(app): State<Arc<AppState>>,
    Extension(current): Extension<Current>,
    RawQuery(query): RawQuery,
) -> Result<Markup, UiError> {
    let filters = Filters::parse(query.as_deref())?;
    let rules = app.rules.load();
    let redact = Redact(rules.secrets());
    let (items, next) = scan(&app, &filters, &redact).await?;
    let sources: Vec<String> = rules.sources().iter().map(|s| s.name.clone()).collect();
    // The tail starts after the newest row shown (or now): nothing
    // arriving between this render and its connection is lost.
    let after = items.first().map_or_else(
        || ulid::Ulid::from_parts(chrono::Utc::now().timestamp_millis() as u64, 0).to_string(),
        |d| d.id.clone(),
    );
    let live = filters.before.is_empty();
    let tail_url = format!(
        "/ui/deliveries/tail?{}&after={}",
        filters.query(),
        segment(&after)
    );
    let body = html! {
        h1 { "Deliveries" }
        (filter_form(&filters, &sources))
        div #list {
            @if live {
                p.live { "● live: new deliveries appear at the top" }
            }
            div.scroll {
                table {
                    thead { tr {
                        th { "Received" } th { "Source" } th.hide-narrow { "Event" }
                        th { "Outcome" } th.hide-narrow { "From" }
                    } }
                    @if live {
                        tbody #rows data-tail="1" hx-ext="sse" sse-connect=(tail_url) sse-swap="delivery" hx-swap="afterbegin" {
                            @for d in &items { (row(d)) }
                        }
                    } @else {
                        tbody #rows { @for d in &items { (row(d)) } }
                    }
                }
            }
            @if items.is_empty() {
                p #empty-list.muted { "No deliveries match." }
            }
            @if let Some(next) = next {
                p.pager {
                    a href=(format!("/ui/deliveries?{}&before={}", filters.query(), segment(&next))) { "Older →" }
                }
            }
        }
    };
    Ok(shell("Deliveries", "/ui/deliveries", &current, body))
}

/// One page of deliveries passing the filters, and the cursor after it.
async fn scan(
    app: &AppState,
    filters: &Filters,
    redact: &Redact<'_>,
) -> Result<(Vec<DeliveryItem>, Option<String>), UiError> {
    let local = !filters.event.is_empty() || !filters.outcome.is_empty();
    let batch = if local { 500 } else { PAGE as u32 };
    let mut before = (!filters.before.is_empty()).then(|| filters.before.clone());
    let mut items = Vec::new();
    let mut scanned = 0;
    loop {
        let got = app
            .store
            .list_deliveries(filters.store_filter(batch, before.clone()))
            .await?;
        let full = got.len() >= batch as usize;
        for summary in got {
            scanned += 1;
            let id = summary.id.clone();
            let item = redact.delivery_item(summary);
            if filters.keeps(&item) {
                items.push(item);
            }
            before = Some(id);
            if items.len() == PAGE {
                return Ok((items, before));
            }
        }
        if !full {
            return Ok((items, None));
        }
        if scanned >= SCAN_LIMIT {
            return Ok((items, before));
        }
    }
}

fn filter_form(f: &Filters, sources: &[String]) -> Markup {
    html! {
        form.filters method="get" action="/ui/deliveries" hx-get="/ui/deliveries"
            hx-trigger="change, submit" hx-target="#list" hx-select="#list" hx-swap="outerHTML" hx-push-url="true" {
            label { "Source"
                select name="source" {
                    option value="" { "any" }
                    @for s in sources {
                        option value=(s) selected[*s == f.source] { (s) }
                    }
                }
            }
            label { "Event" input name="event" value=(f.event) placeholder="any" size="12"; }
            label { "Outcome"
                select name="outcome" {
                    option value="" { "any" }
                    @for o in OUTCOMES {
                        option value=(o) selected[o == f.outcome] { (o) }
                    }
                }
            }
            label { "Received"
                select name="since" {
                    option value="" { "any time" }
                    @for s in SINCE {
                        option value=(s) selected[s == f.since] { "last " (s) }
                    }
                }
            }
            button type="submit" { "Filter" }
        }
    }
}

/// One delivery as a table row (the page and the live tail).
pub fn row(d: &DeliveryItem) -> Markup {
    let href = format!("/ui/deliveries/{}", segment(&d.id));
    html! {
        tr {
            td.nowrap { a href=(href) { (time(d.received_at)) } }
            td { (d.source) }
            td.hide-narrow { (d.event) }
            td {
                @if d.status == DeliveryStatus::Rejected {
                    (badge("rejected"))
                    @if let Some(status) = d.reject_status { " " span.muted { (status) } }
                } @else if d.matched.is_empty() {
                    (badge("unmatched"))
                } @else {
                    (badge("matched")) " "
                    span.mono { (d.matched.join(", ")) }
                }
            }
            td.hide-narrow.mono { (d.remote_addr) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(status: &str, matched: &[&str], event: &str) -> DeliveryItem {
        let status = if status == "rejected" {
            DeliveryStatus::Rejected
        } else {
            DeliveryStatus::Accepted
        };
        DeliveryItem {
            id: "01J".into(),
            source: "s".into(),
            received_at: 0,
            event: event.into(),
            status,
            reject_status: None,
            matched: matched.iter().map(|s| s.to_string()).collect(),
            remote_addr: "127.0.0.1".into(),
        }
    }

    #[test]
    fn outcome_and_event_filters_keep_only_their_rows() {
        let f = Filters::parse(Some("outcome=unmatched&event=push")).unwrap();
        assert!(f.keeps(&item("accepted", &[], "push")));
        assert!(!f.keeps(&item("accepted", &["r"], "push")));
        assert!(!f.keeps(&item("accepted", &[], "issues")));
        assert!(!f.keeps(&item("rejected", &[], "push")));
        assert!(Filters::parse(Some("outcome=sideways")).is_err());
        assert!(Filters::parse(Some("since=soon")).is_err());
        assert_eq!(
            Filters::parse(Some("source=a+b&since=1h&before=X"))
                .unwrap()
                .query(),
            "source=a+b&since=1h"
        );
    }
}
