//! `hookflow explain --source S [--event E] [--header K:V]… PAYLOAD_FILE`:
//! for every rule of the source, matched or not and why, and the rendered
//! steps of the matching rules. Executes nothing.
//!
//! `hookflow explain DELIVERY_ID`: the same for a stored delivery — the
//! trace recorded when it arrived, and what the current rules would do now.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, bail};
use serde_json::json;

use crate::delivery::Delivery;
use crate::dryrun::{DryRun, dry_run};
use crate::rules::{RuleSet, Trace};
use crate::store::DeliveryStatus;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The source the payload arrives at (not with a DELIVERY_ID).
    #[arg(long)]
    source: Option<String>,
    /// The event name (default: read from the headers/payload as the sender's).
    #[arg(long)]
    event: Option<String>,
    /// A request header, `Name: value` (repeatable).
    #[arg(long = "header", value_name = "K:V")]
    headers: Vec<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    settings: super::serve::SettingsArgs,
    /// The request body, byte for byte (with --source); or the id of a
    /// stored delivery.
    #[arg(value_name = "PAYLOAD_FILE|DELIVERY_ID")]
    target: String,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let settings = super::settings(&args.settings)?;
    let Some(set) = super::load_rules(&settings.rules) else {
        return Ok(ExitCode::FAILURE);
    };
    let Some(source_name) = args.source.clone() else {
        if Path::new(&args.target).is_file() {
            bail!(
                "explaining the payload file {} needs --source S (the source it arrives at).",
                args.target
            );
        }
        return explain_stored(&settings, &set, args.target.trim(), args.json);
    };
    let Some(source) = set.source(&source_name) else {
        let names: Vec<&str> = set.sources().iter().map(|s| s.name.as_str()).collect();
        bail!(
            "no source named `{}` in {} (sources: {})",
            source_name,
            settings.rules.display(),
            names.join(", ")
        );
    };
    let headers = args
        .headers
        .iter()
        .map(|h| parse_header(h))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let body =
        std::fs::read(&args.target).with_context(|| format!("cannot read {}", args.target))?;
    let delivery = Delivery::local(source, headers, Vec::new(), body, args.event)
        .with_context(|| format!("{} is not a valid request body", args.target))?;
    let result = dry_run(&set, &delivery);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&result)?);
    } else {
        print!("{}", render_text(&source_name, &result));
    }
    Ok(ExitCode::SUCCESS)
}

/// `explain DELIVERY_ID`: the trace stored at arrival, then a dry run of
/// the stored delivery against the current rules.
fn explain_stored(
    settings: &crate::config::Settings,
    set: &RuleSet,
    id: &str,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let record = super::runtime()?.block_on(async {
        let store = super::open_store(settings).await?;
        anyhow::Ok(store.get_delivery(id).await?)
    })?;
    let Some(record) = record else {
        bail!(
            "{id} is neither a payload file nor a delivery in {}. To explain a payload file, check its path and pass --source S.",
            settings.database
        );
    };
    // A kept 422 (payload against the schema) has its body: explain it.
    if record.status == DeliveryStatus::Rejected && record.body.is_none() {
        bail!(
            "delivery {id} was rejected ({}) before any rule saw it, and its body was not kept.",
            record
                .reject_reason
                .as_deref()
                .unwrap_or("no reason recorded")
        );
    }
    // Rules excluded by event are stored by name: why, from their `event:`.
    let recorded: Option<Trace> = serde_json::from_value::<Trace>(record.trace.clone())
        .ok()
        .map(|t| set.expand(&record.source, &t));
    let received_at = record.received_at;
    let delivery = Delivery::from_record(&record);
    let now = dry_run(set, &delivery);
    if json {
        let value = json!({
            "delivery": delivery.id,
            "source": delivery.source,
            "event": delivery.event,
            "received_at": received_at,
            "recorded": recorded,
            "now": now,
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(ExitCode::SUCCESS);
    }
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "delivery {} received {}",
        delivery.id,
        super::time(received_at)
    );
    let _ = writeln!(out, "\nas matched on arrival:");
    match &recorded {
        Some(trace) if trace.rules.is_empty() => {
            let _ = writeln!(out, "  no rule used this source");
        }
        Some(trace) => out.push_str(&render_trace(trace)),
        None => {
            let _ = writeln!(out, "  (no trace recorded)");
        }
    }
    let _ = writeln!(
        out,
        "\nwith the current rules in {}:",
        settings.rules.display()
    );
    if set.source(&delivery.source).is_none() {
        let _ = writeln!(
            out,
            "  the source `{}` is no longer defined",
            delivery.source
        );
    }
    out.push_str(&render_text(&delivery.source, &now));
    print!("{out}");
    Ok(ExitCode::SUCCESS)
}

/// A stored trace: per rule, MATCH or miss with why.
pub fn render_trace(trace: &Trace) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    for rule in &trace.rules {
        match &rule.miss {
            None => {
                let _ = writeln!(out, "  MATCH  {}", rule.rule);
            }
            Some(miss) => {
                let _ = writeln!(out, "  miss   {}", rule.rule);
                for line in miss.to_string().lines() {
                    let _ = writeln!(out, "         {line}");
                }
            }
        }
    }
    out
}

/// `Name: value` or `Name:value`.
pub fn parse_header(text: &str) -> anyhow::Result<(String, String)> {
    match text.split_once(':') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.trim().to_string())),
        _ => bail!("--header {text:?} is not of the form `Name: value`"),
    }
}

/// The human-readable report.
pub fn render_text(source: &str, result: &DryRun) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let event = if result.trace.event.is_empty() {
        "(none)"
    } else {
        &result.trace.event
    };
    let _ = writeln!(
        out,
        "source {source}, event {event}: {} rule(s)",
        result.trace.rules.len()
    );
    if let Some(refused) = &result.refused {
        let _ = writeln!(out, "  refused with 422: {refused}");
        return out;
    }
    if result.trace.rules.is_empty() {
        let _ = writeln!(out, "  no rule uses this source");
    }
    for rule in &result.trace.rules {
        match &rule.miss {
            None => {
                let _ = writeln!(out, "\n  MATCH  {}", rule.rule);
                let steps = result
                    .runs
                    .iter()
                    .find(|r| r.rule == rule.rule)
                    .map(|r| r.steps.as_slice());
                for step in steps.unwrap_or_default() {
                    let _ = writeln!(out, "         step {} ({})", step.step, step.kind);
                    if let Some(c) = &step.condition {
                        let _ = writeln!(out, "           if: {c}");
                    }
                    if let Some(view) = &step.rendered {
                        let text = serde_json::to_string_pretty(view).unwrap_or_default();
                        for line in text.lines() {
                            let _ = writeln!(out, "           {line}");
                        }
                    }
                    if let Some(e) = &step.error {
                        let _ = writeln!(out, "           not rendered: {e}");
                    }
                }
            }
            Some(miss) => {
                let _ = writeln!(out, "\n  miss   {}", rule.rule);
                for line in miss.to_string().lines() {
                    let _ = writeln!(out, "         {line}");
                }
            }
        }
    }
    out
}
