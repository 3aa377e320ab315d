//! The overview (`/ui/`, the front page): deliveries per minute over the
//! last hour by source and outcome (inline SVG, drawn here), runs of the
//! last day by status, the queue depth, success rate and p95 duration per
//! rule over 1 h and 24 h with failing rules first, and the last reload.
//! The figures come from one store read (`Store::overview`).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Extension;
use axum::extract::State;
use maud::{Markup, html};

use super::UiError;
use super::auth::Current;
use super::layout::{badge, duration, segment, shell, time_text};
use crate::server::AppState;
use crate::store::stats::{CHART_MS, MinuteCount, Outcome, RuleStats, Window};

/// Sources charted at most (the busiest); the rest are summed in a table.
const MAX_CHARTS: usize = 8;
const MINUTES: i64 = CHART_MS / 60_000;

/// `GET /ui/`
pub async fn page(
    State(app): State<Arc<AppState>>,
    Extension(current): Extension<Current>,
) -> Result<Markup, UiError> {
    let now = chrono::Utc::now().timestamp_millis();
    let figures = app.store.overview(now).await?;
    let reload = crate::server::api::rules(State(app.clone())).await.0.reload;
    let mut by_source: BTreeMap<&str, Vec<&MinuteCount>> = BTreeMap::new();
    for m in &figures.per_minute {
        by_source.entry(m.source.as_str()).or_default().push(m);
    }
    let mut sources: Vec<(&str, Vec<&MinuteCount>)> = by_source.into_iter().collect();
    sources.sort_by_key(|(name, counts)| (std::cmp::Reverse(total(counts)), *name));
    let mut rules = figures.rules.clone();
    // Failing rules first: the worst success rate of the day on top.
    rules.sort_by(|a, b| {
        let rate = |r: &RuleStats| r.day.success_rate().unwrap_or(1.0);
        rate(a)
            .total_cmp(&rate(b))
            .then_with(|| a.rule.cmp(&b.rule))
    });
    let first_minute = (now - CHART_MS) / 60_000 * 60_000 + 60_000;
    let body = html! {
        h1 { "Overview" }
        div.tiles {
            div.card.tile { div.muted { "Queue" } div.big #queue-depth { (figures.queue_depth) } div.muted { "runs queued or running" } }
            div.card.tile {
                div.muted { "Runs, last 24 h" }
                @if figures.runs_by_status.is_empty() { div.big { "0" } }
                @for (status, count) in &figures.runs_by_status {
                    div { a href=(format!("/ui/runs?status={}", status.as_str())) { (badge(status.as_str())) } " " (count) }
                }
            }
            div.card.tile {
                div.muted { "Last reload" }
                div { @match reload.last_outcome.as_deref() {
                    Some(outcome) => (badge(outcome)),
                    None => span.muted { "none since start" },
                } }
                @if !reload.errors.is_empty() {
                    div.error { (reload.errors.len()) " error(s): " a href="/ui/rules" { "see the rules page" } }
                    ul { @for e in reload.errors.iter().take(3) { li.mono { (e) } } }
                }
                div.muted { "running set loaded " (time_text(&reload.loaded_at)) }
            }
        }
        h2 { "Deliveries per minute, last hour" }
        p.legend {
            @for o in Outcome::ALL { span class=(format!("key {}", o.as_str())) { (o.as_str()) } " " }
        }
        @if sources.is_empty() {
            p.muted { "No deliveries in the last hour." }
        }
        @for (source, counts) in sources.iter().take(MAX_CHARTS) {
            div.card.chart {
                div { a.mono href=(format!("/ui/deliveries?source={}&since=1h", segment(source))) { (source) } " · " (total(counts)) " in the hour" }
                (chart(counts, first_minute))
            }
        }
        @if sources.len() > MAX_CHARTS {
            p.muted { (sources.len() - MAX_CHARTS) " more sources: "
                @for (source, counts) in sources.iter().skip(MAX_CHARTS) { span.mono { (source) } " (" (total(counts)) ") " } }
        }
        h2 { "Rules, by success rate" }
        @if rules.is_empty() {
            p.muted { "No run finished in the last 24 h." }
        } @else {
            div.scroll { table #rule-stats {
                thead { tr {
                    th { "Rule" } th { "1 h ok" } th.hide-narrow { "1 h p95" } th { "24 h ok" } th.hide-narrow { "24 h p95" } th { "24 h failed" }
                } }
                tbody { @for r in &rules {
                    tr {
                        td.mono { a href=(format!("/ui/runs?rule={}", segment(&r.rule))) { (r.rule) } }
                        td { (rate(&r.hour)) }
                        td.hide-narrow { (p95(&r.hour)) }
                        td { (rate(&r.day)) }
                        td.hide-narrow { (p95(&r.day)) }
                        td { @if r.day.failed > 0 {
                            a.error href=(format!("/ui/runs?rule={}&status=failed", segment(&r.rule))) { (r.day.failed) }
                        } @else { "0" } }
                    }
                } }
            } }
        }
    };
    Ok(shell("Overview", "/ui/", &current, body))
}

fn total(counts: &[&MinuteCount]) -> u64 {
    counts.iter().map(|m| m.count).sum()
}

fn rate(w: &Window) -> String {
    match w.success_rate() {
        Some(r) => format!("{:.1} % of {}", r * 100.0, w.succeeded + w.failed),
        None => "–".to_owned(),
    }
}

fn p95(w: &Window) -> String {
    w.p95_ms.map_or_else(|| "–".to_owned(), duration)
}

/// One source's last hour: a bar per minute, stacked by outcome. Drawn in
/// a 600 × 100 box that the stylesheet scales to the page's width.
fn chart(counts: &[&MinuteCount], first_minute: i64) -> Markup {
    let mut minutes: BTreeMap<i64, [u64; 3]> = BTreeMap::new();
    for m in counts {
        let slot = Outcome::ALL
            .iter()
            .position(|o| *o == m.outcome)
            .unwrap_or(0);
        minutes.entry(m.minute_ms).or_default()[slot] += m.count;
    }
    let peak = minutes
        .values()
        .map(|c| c.iter().sum::<u64>())
        .max()
        .unwrap_or(0)
        .max(1);
    let width = 600.0 / MINUTES as f64;
    // (outcome, x, y, height, tooltip), stacked from the bottom.
    let mut rects = Vec::new();
    for (minute, stack) in &minutes {
        let index = (minute - first_minute) / 60_000;
        if !(0..MINUTES).contains(&index) {
            continue;
        }
        let mut top = 100.0;
        for (slot, count) in stack.iter().enumerate() {
            if *count == 0 {
                continue;
            }
            let outcome = Outcome::ALL[slot].as_str();
            let h = *count as f64 / peak as f64 * 100.0;
            top -= h;
            let tip = format!("{}: {count} {outcome}", minute_label(*minute));
            rects.push((outcome, index as f64 * width, top, h, tip));
        }
    }
    html! {
        svg.chart viewBox="0 0 600 100" preserveAspectRatio="none" role="img" aria-label="deliveries per minute" {
            @for (outcome, x, y, h, tip) in &rects {
                rect class=(outcome) x=(format!("{x:.2}")) y=(format!("{y:.2}"))
                    width=(format!("{:.2}", width * 0.85)) height=(format!("{h:.2}")) {
                    title { (tip) }
                }
            }
        }
        div.axis { span { "−60 min" } span { "now · peak " (peak) "/min" } }
    }
}

fn minute_label(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map_or_else(String::new, |t| t.format("%H:%M UTC").to_string())
}
