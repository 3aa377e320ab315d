//! `hookflow show ID`: a delivery with its match trace and runs, or a run
//! with every attempt. Ids are ULIDs of either kind: a delivery is looked
//! for first, then a run.

use std::fmt::Write;
use std::process::ExitCode;

use anyhow::bail;
use serde_json::{Value, json};

use crate::store::{AttemptRecord, DeliveryRecord, RunRecord};

/// Body bytes shown in text; `--json` has all of it.
const BODY_SHOWN: usize = 4096;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    settings: super::serve::SettingsArgs,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    /// A delivery id or a run id.
    id: String,
}

enum Found {
    Delivery(Box<DeliveryRecord>, Vec<RunRecord>),
    Run(Box<RunRecord>, Vec<AttemptRecord>),
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let settings = super::settings(&args.settings)?;
    let id = args.id.trim().to_string();
    let found = super::runtime()?.block_on(async {
        let store = super::open_store(&settings).await?;
        if let Some(delivery) = store.get_delivery(&id).await? {
            let runs = store.runs_for_delivery(&id).await?;
            return anyhow::Ok(Some(Found::Delivery(Box::new(delivery), runs)));
        }
        if let Some(run) = store.get_run(&id).await? {
            let attempts = store.attempts_for_run(&id).await?;
            return anyhow::Ok(Some(Found::Run(Box::new(run), attempts)));
        }
        anyhow::Ok(None)
    })?;
    let Some(found) = found else {
        bail!(
            "there is no delivery or run with id {id} in {}. List them with `hookflow deliveries` or `hookflow runs`.",
            settings.database
        );
    };
    match (found, args.json) {
        (Found::Delivery(d, runs), true) => {
            let body = d.body.as_deref().map(body_text);
            let value = json!({ "delivery": d, "body": body, "runs": runs });
            println!("{}", serde_json::to_string_pretty(&value)?);
        }
        (Found::Run(run, attempts), true) => {
            let value = json!({ "run": run, "attempts": attempts });
            println!("{}", serde_json::to_string_pretty(&value)?);
        }
        (Found::Delivery(d, runs), false) => print!("{}", render_delivery(&d, &runs)),
        (Found::Run(run, attempts), false) => print!("{}", render_run(&run, &attempts)),
    }
    Ok(ExitCode::SUCCESS)
}

/// The body as text: UTF-8 as is, anything else as base64.
fn body_text(body: &[u8]) -> String {
    use base64::Engine;
    match std::str::from_utf8(body) {
        Ok(text) => text.to_string(),
        Err(_) => format!(
            "base64:{}",
            base64::engine::general_purpose::STANDARD.encode(body)
        ),
    }
}

fn render_delivery(d: &DeliveryRecord, runs: &[RunRecord]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "delivery {}", d.id);
    let _ = writeln!(out, "  source    {}", d.source);
    let _ = writeln!(out, "  received  {}", super::time(d.received_at));
    let status = match (d.reject_status, &d.reject_reason) {
        (Some(code), Some(reason)) => format!("rejected {code}: {reason}"),
        (Some(code), None) => format!("rejected {code}"),
        _ => d.status.as_str().to_string(),
    };
    let _ = writeln!(out, "  status    {status}");
    let event = if d.event.is_empty() { "-" } else { &d.event };
    let _ = writeln!(out, "  event     {event}");
    let query = d
        .query
        .as_deref()
        .map(|q| format!("?{q}"))
        .unwrap_or_default();
    let _ = writeln!(out, "  request   {} {}{query}", d.method, d.path);
    let _ = writeln!(out, "  from      {}", d.remote_addr);
    if let Some(key) = &d.dedupe_key {
        let _ = writeln!(out, "  dedupe    {key}");
    }
    let matched = if d.matched.is_empty() {
        "-".to_string()
    } else {
        d.matched.join(", ")
    };
    let _ = writeln!(out, "  matched   {matched}");
    if !d.headers.is_empty() {
        let _ = writeln!(out, "\nheaders:");
        for (k, v) in &d.headers {
            let _ = writeln!(out, "  {k}: {v}");
        }
    }
    if let Some(body) = &d.body {
        let _ = writeln!(out, "\nbody ({} bytes):", body.len());
        // JSON is shown pretty-printed (whole, up to the limit in lines of
        // the pretty text); anything else as it came.
        let text = match serde_json::from_slice::<Value>(body) {
            Ok(json) => serde_json::to_string_pretty(&json).unwrap_or_else(|_| body_text(body)),
            Err(_) => body_text(body),
        };
        let shown: String = text.chars().take(BODY_SHOWN).collect();
        for line in shown.lines() {
            let _ = writeln!(out, "  {line}");
        }
        if text.len() > shown.len() {
            let _ = writeln!(
                out,
                "  … ({} more bytes; --json shows all)",
                text.len() - shown.len()
            );
        }
    }
    if let Ok(trace) = serde_json::from_value::<crate::rules::Trace>(d.trace.clone()) {
        let _ = writeln!(out, "\ntrace (as matched on arrival):");
        out.push_str(&super::explain::render_trace(&trace));
    }
    let _ = writeln!(out, "\nruns:");
    if runs.is_empty() {
        let _ = writeln!(out, "  none");
    } else {
        for line in super::runs::render_table(runs).lines() {
            let _ = writeln!(out, "  {line}");
        }
    }
    out
}

fn render_run(run: &RunRecord, attempts: &[AttemptRecord]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "run {}", run.id);
    let _ = writeln!(out, "  rule      {}", run.rule);
    let _ = writeln!(out, "  delivery  {}", run.delivery_id);
    let _ = writeln!(out, "  status    {}", run.status.as_str());
    let _ = writeln!(out, "  step      {}", super::runs::step_label(run));
    let _ = writeln!(out, "  created   {}", super::time(run.created_at));
    if let Some(at) = run.next_attempt_at {
        let _ = writeln!(out, "  next try  {}", super::time(at));
    }
    if let Some(at) = run.finished_at {
        let _ = writeln!(out, "  finished  {}", super::time(at));
    }
    if let Some(error) = &run.error {
        let _ = writeln!(out, "  error     {error}");
    }
    let _ = writeln!(out, "\nattempts:");
    if attempts.is_empty() {
        let _ = writeln!(out, "  none");
    }
    for a in attempts {
        let status = a
            .status_code
            .map(|c| format!("  status {c}"))
            .unwrap_or_default();
        let duration = a
            .duration_ms
            .map(|ms| format!("  {ms} ms"))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "  step {} attempt {}  {}{status}{duration}  at {}",
            a.step_id,
            a.attempt,
            a.outcome.as_str(),
            super::time(a.started_at)
        );
        if let Some(request) = request_line(&a.request) {
            let _ = writeln!(out, "    request   {request}");
        }
        for (label, text) in [
            ("error", &a.error),
            ("response", &a.response),
            ("stdout", &a.stdout),
            ("stderr", &a.stderr),
        ] {
            if let Some(text) = text.as_deref().filter(|t| !t.is_empty()) {
                let _ = writeln!(out, "    {label:<9} {}", super::one_line(text, 200));
            }
        }
    }
    out
}

/// `POST https://…` for HTTP-like requests, else the summary as JSON.
fn request_line(request: &Value) -> Option<String> {
    if request.is_null() {
        return None;
    }
    match (
        request.get("method").and_then(Value::as_str),
        request.get("url").and_then(Value::as_str),
    ) {
        (Some(method), Some(url)) => Some(format!("{method} {url}")),
        _ => Some(super::one_line(&request.to_string(), 200)),
    }
}
