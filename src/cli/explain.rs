//! `hookflow explain --source S [--event E] [--header K:V]… PAYLOAD_FILE`:
//! for every rule of the source, matched or not and why, and the rendered
//! steps of the matching rules. Executes nothing.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};

use crate::delivery::Delivery;
use crate::dryrun::{DryRun, dry_run};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The source the payload arrives at.
    #[arg(long)]
    source: String,
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
    rules: super::RulesArgs,
    /// The request body, byte for byte.
    payload_file: PathBuf,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let Some(set) = super::load_rules(&args.rules.rules) else {
        return Ok(ExitCode::FAILURE);
    };
    let Some(source) = set.source(&args.source) else {
        let names: Vec<&str> = set.sources().iter().map(|s| s.name.as_str()).collect();
        bail!(
            "no source named `{}` in {} (sources: {})",
            args.source,
            args.rules.rules.display(),
            names.join(", ")
        );
    };
    let headers = args
        .headers
        .iter()
        .map(|h| parse_header(h))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let body = std::fs::read(&args.payload_file)
        .with_context(|| format!("cannot read {}", args.payload_file.display()))?;
    let delivery =
        Delivery::local(source, headers, Vec::new(), body, args.event).with_context(|| {
            format!(
                "{} is not a valid request body",
                args.payload_file.display()
            )
        })?;
    let result = dry_run(&set, &delivery);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&result)?);
    } else {
        print!("{}", render_text(&args.source, &result));
    }
    Ok(ExitCode::SUCCESS)
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
