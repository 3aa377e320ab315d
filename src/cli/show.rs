//! `hookflow show ID`: a delivery with its match trace and runs, or a run
//! with every attempt. Ids are ULIDs of either kind: a delivery is looked
//! for first, then a run. What is shown is the run log's one redacted view
//! (`crate::runlog_view`): `--json` prints exactly what the API answers.

use std::fmt::Write;
use std::process::ExitCode;

use anyhow::bail;
use serde_json::Value;

use crate::config::Settings;
use crate::rules::{RuleSet, Secrets};
use crate::runlog_view::{DeliveryDetail, OperatorActionView, Redact, RunDetail};
use crate::store::{AttemptRecord, DeliveryRecord, OperatorAction, RunRecord};

/// Body bytes shown in text; `--json` has all of it.
const BODY_SHOWN: usize = 4096;

/// Most audit-trail entries shown for one delivery or run.
const TRAIL_SHOWN: u32 = 100;

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
    Delivery(Box<DeliveryRecord>, Vec<RunRecord>, Vec<OperatorAction>),
    Run(Box<RunRecord>, Vec<AttemptRecord>, Vec<OperatorAction>),
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let settings = super::settings(&args.settings)?;
    let id = args.id.trim().to_string();
    let set = rules(&settings)?;
    let found = super::runtime()?.block_on(async {
        let store = super::open_store(&settings).await?;
        if let Some(delivery) = store.get_delivery(&id).await? {
            let runs = store.runs_for_delivery(&id).await?;
            let trail = store.operator_actions(Some(&id), TRAIL_SHOWN).await?;
            return anyhow::Ok(Some(Found::Delivery(Box::new(delivery), runs, trail)));
        }
        if let Some(run) = store.get_run(&id).await? {
            let attempts = store.attempts_for_run(&id).await?;
            let trail = store.operator_actions(Some(&id), TRAIL_SHOWN).await?;
            return anyhow::Ok(Some(Found::Run(Box::new(run), attempts, trail)));
        }
        anyhow::Ok(None)
    })?;
    let Some(found) = found else {
        bail!(
            "there is no delivery or run with id {id} in {}. List them with `hookflow deliveries` or `hookflow runs`.",
            settings.database
        );
    };
    let view = Redact(set.secrets());
    match found {
        Found::Delivery(d, runs, trail) => {
            let labels: Vec<String> = runs.iter().map(super::runs::step_label).collect();
            let bytes = d.body.as_ref().map(Vec::len);
            let mut detail = view.delivery(*d, runs);
            detail.operator_actions = view.trail(trail);
            if args.json {
                println!("{}", serde_json::to_string_pretty(&detail)?);
            } else {
                print!("{}", render_delivery(&detail, bytes, &labels, &set));
            }
        }
        Found::Run(run, attempts, trail) => {
            let label = super::runs::step_label(&run);
            let mut detail = view.run(*run, attempts);
            detail.operator_actions = view.trail(trail);
            if args.json {
                println!("{}", serde_json::to_string_pretty(&detail)?);
            } else {
                print!("{}", render_run(&detail, &label));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The rules' secrets, to redact what the run log shows: the same values
/// the server redacts, read from the same rules and environment.
pub(super) fn secrets(settings: &Settings) -> anyhow::Result<Secrets> {
    Ok(rules(settings)?.secrets().clone())
}

/// The rules, for their secrets and to explain a stored trace's rules
/// excluded by event (stored by name only).
fn rules(settings: &Settings) -> anyhow::Result<RuleSet> {
    match crate::rules::load(&settings.rules) {
        Ok(set) => Ok(set),
        Err(e) => bail!(
            "the rules in {} do not load ({} error(s); `hookflow check` lists them), so the secrets to redact in the run log are unknown. Fix them, pass --rules with the server's rules, or read the run log through the running server (GET /api/… on its admin listener, or /ui), which redacts with the rules it has loaded.",
            settings.rules.display(),
            e.errors().count()
        ),
    }
}

/// `bytes`: the stored body's size (the view holds it redacted or
/// base64); `labels`: each run's step label.
fn render_delivery(
    d: &DeliveryDetail,
    bytes: Option<usize>,
    labels: &[String],
    set: &RuleSet,
) -> String {
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
        for h in &d.headers {
            let _ = writeln!(out, "  {}: {}", h.name, h.value);
        }
    }
    if let Some(text) = d.body_for_display() {
        let _ = writeln!(out, "\nbody ({} bytes):", bytes.unwrap_or(text.len()));
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
        out.push_str(&super::explain::render_trace(
            &set.expand(&d.source, &trace),
        ));
    }
    let _ = writeln!(out, "\nruns:");
    if d.runs.is_empty() {
        let _ = writeln!(out, "  none");
    } else {
        for line in super::runs::render_table(&d.runs, labels).lines() {
            let _ = writeln!(out, "  {line}");
        }
    }
    render_trail(&mut out, &d.operator_actions);
    out
}

/// The audit trail: who replayed, retried or cancelled it, and when.
fn render_trail(out: &mut String, trail: &[OperatorActionView]) {
    if trail.is_empty() {
        return;
    }
    let _ = writeln!(out, "\noperator actions:");
    for a in trail {
        let _ = writeln!(
            out,
            "  {}  {:<7} by {} {}",
            super::time(a.at),
            a.action,
            a.via,
            a.client
        );
    }
}

fn render_run(detail: &RunDetail, step: &str) -> String {
    let (run, attempts) = (&detail.run, &detail.attempts);
    let mut out = String::new();
    let _ = writeln!(out, "run {}", run.id);
    let _ = writeln!(out, "  rule      {}", run.rule);
    let _ = writeln!(out, "  delivery  {}", run.delivery_id);
    let _ = writeln!(out, "  status    {}", super::runs::state(run));
    let _ = writeln!(out, "  step      {step}");
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
    render_trail(&mut out, &detail.operator_actions);
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
