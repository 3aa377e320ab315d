//! The live tail of the deliveries page: `GET /ui/deliveries/tail` is a
//! Server-Sent Events stream of table rows (event `delivery`), one per
//! delivery arriving after `after` that passes the page's filters; htmx's
//! SSE extension prepends them.
//!
//! It reads the run log (every [`POLL`]), not an in-process signal, so it
//! shows deliveries whichever node or process stored them.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::{RawQuery, State};
use axum::response::sse::{Event, KeepAlive, KeepAliveStream, Sse};
use tokio::sync::mpsc;

use super::UiError;
use super::deliveries::{Filters, row};
use crate::runlog_view::Redact;
use crate::server::AppState;

/// How often the run log is read for new deliveries.
const POLL: Duration = Duration::from_millis(500);
/// Newest deliveries read per poll; a burst larger than this within one
/// poll shows only its newest rows (the page itself shows them all).
const BATCH: u32 = 200;

/// `GET /ui/deliveries/tail?<filters>&after=<id>`
pub async fn deliveries(
    State(app): State<Arc<AppState>>,
    RawQuery(query): RawQuery,
) -> Result<Sse<KeepAliveStream<Rows>>, UiError> {
    let filters = Filters::parse(query.as_deref())?;
    let mut after = form_urlencoded::parse(query.as_deref().unwrap_or("").as_bytes())
        .find(|(k, _)| k == "after")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(POLL);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while !tx.is_closed() {
            ticker.tick().await;
            let newest = match app
                .store
                .list_deliveries(filters.store_filter(BATCH, None))
                .await
            {
                Ok(rows) => rows,
                Err(e) => {
                    tracing::warn!(error = %e, "dashboard tail: reading the run log failed");
                    continue;
                }
            };
            let rules = app.rules.load();
            let redact = Redact(rules.secrets());
            // Newest first from the store; sent oldest first, so each is
            // prepended above the one before it.
            let fresh: Vec<_> = newest.into_iter().take_while(|d| d.id > after).collect();
            if let Some(first) = fresh.first() {
                after = first.id.clone();
            }
            for summary in fresh.into_iter().rev() {
                let item = redact.delivery_item(summary);
                if !filters.keeps(&item) {
                    continue;
                }
                let event = Event::default()
                    .event("delivery")
                    .data(row(&item).into_string());
                if tx.send(event).await.is_err() {
                    return;
                }
            }
        }
    });
    Ok(Sse::new(Rows(rx)).keep_alive(KeepAlive::default()))
}

/// The stream of events the polling task sends; dropped when the browser
/// goes, which closes the channel and ends the task.
pub struct Rows(mpsc::Receiver<Event>);

impl futures_core::Stream for Rows {
    type Item = Result<Event, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx).map(|event| event.map(Ok))
    }
}
