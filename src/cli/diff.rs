//! `hookflow diff [--since 7d] --rules DIR [--base DIR]`: replay the stored
//! deliveries against a candidate rule set and the base one (default: the
//! settings' rules) without running anything, and report the deliveries
//! that would newly match a rule, stop matching one, or render different
//! steps — a rule change reviewed against real traffic before deploying.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::ExitCode;

use serde::Serialize;

use crate::delivery::Delivery;
use crate::dryrun::{DryRun, dry_run};
use crate::rules::RuleSet;
use crate::store::{DeliveryFilter, DeliveryStatus, Store};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The settings file (default: ./hookflow.yaml if present).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// sqlite://PATH (default sqlite://hookflow.db) or postgres://…
    #[arg(long = "db", value_name = "URL")]
    db: Option<String>,
    /// The candidate rules (e.g. a branch's checkout).
    #[arg(long = "rules", value_name = "DIR")]
    candidate: PathBuf,
    /// The rules compared against (default: the settings' rules).
    #[arg(long, value_name = "DIR")]
    base: Option<PathBuf>,
    /// Deliveries received this recently (30m, 1h, 7d).
    #[arg(long, value_name = "DURATION", default_value = "7d")]
    since: String,
    /// Compare at most this many deliveries, newest first.
    #[arg(long, default_value_t = 10_000)]
    limit: usize,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// How one delivery's outcome differs between the two rule sets.
#[derive(Debug, Serialize)]
struct Change {
    delivery: String,
    source: String,
    event: String,
    /// Rules it would match only with the candidate rules.
    newly_matched: Vec<String>,
    /// Rules it would match only with the base rules.
    no_longer_matched: Vec<String>,
    /// Rules matched by both whose rendered steps differ.
    rendered_differently: Vec<String>,
    /// What differs in them, field by field.
    fields: Vec<FieldChange>,
}

/// One rendered field that differs: `rule.step.path`, before and after
/// (`None`: the field exists on one side only).
#[derive(Debug, Serialize)]
struct FieldChange {
    field: String,
    before: Option<serde_json::Value>,
    after: Option<serde_json::Value>,
}

#[derive(Debug, Serialize)]
struct Report {
    compared: usize,
    changed: usize,
    newly_matched: usize,
    no_longer_matched: usize,
    rendered_differently: usize,
    changes: Vec<Change>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let settings = super::settings(&super::serve::SettingsArgs {
        config: args.config.clone(),
        rules: None,
        db: args.db.clone(),
    })?;
    let since_ms = super::since_ms(&args.since)?;
    let base_dir = args.base.clone().unwrap_or_else(|| settings.rules.clone());
    let Some(base) = super::load_rules(&base_dir) else {
        return Ok(ExitCode::FAILURE);
    };
    let Some(candidate) = super::load_rules(&args.candidate) else {
        return Ok(ExitCode::FAILURE);
    };
    let report = super::runtime()?.block_on(async {
        let store = super::open_store(&settings).await?;
        compare(&*store, &base, &candidate, since_ms, args.limit).await
    })?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{} deliveries since {} compared ({} vs {}): {} would change ({} newly match, {} stop matching, {} render differently)",
        report.compared,
        args.since,
        args.candidate.display(),
        base_dir.display(),
        report.changed,
        report.newly_matched,
        report.no_longer_matched,
        report.rendered_differently,
    );
    for c in &report.changes {
        let mut parts = Vec::new();
        for rule in &c.newly_matched {
            parts.push(format!("+{rule}"));
        }
        for rule in &c.no_longer_matched {
            parts.push(format!("-{rule}"));
        }
        for rule in &c.rendered_differently {
            parts.push(format!("~{rule}"));
        }
        let event = if c.event.is_empty() { "-" } else { &c.event };
        println!(
            "  {}  {} {}  {}",
            c.delivery,
            c.source,
            event,
            parts.join(" ")
        );
        for f in &c.fields {
            let show = |v: &Option<serde_json::Value>| {
                v.as_ref().map_or_else(
                    || "(none)".to_string(),
                    |v| super::one_line(&v.to_string(), 80),
                )
            };
            println!(
                "      {}: {} → {}",
                f.field,
                show(&f.before),
                show(&f.after)
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Dry-runs every accepted delivery since `since_ms` against both sets.
async fn compare(
    store: &dyn Store,
    base: &RuleSet,
    candidate: &RuleSet,
    since_ms: i64,
    limit: usize,
) -> anyhow::Result<Report> {
    let mut report = Report {
        compared: 0,
        changed: 0,
        newly_matched: 0,
        no_longer_matched: 0,
        rendered_differently: 0,
        changes: Vec::new(),
    };
    let mut before_id = None;
    'pages: loop {
        let page = store
            .list_deliveries(DeliveryFilter {
                source: None,
                since_ms: Some(since_ms),
                limit: DeliveryFilter::MAX_LIMIT,
                before_id: before_id.clone(),
            })
            .await?;
        let Some(last) = page.last() else {
            break;
        };
        before_id = Some(last.id.clone());
        for summary in page {
            if report.compared >= limit {
                break 'pages;
            }
            if summary.status != DeliveryStatus::Accepted {
                continue;
            }
            // Pruned since it was listed: nothing to compare.
            let Some(record) = store.get_delivery(&summary.id).await? else {
                continue;
            };
            report.compared += 1;
            let delivery = Delivery::from_record(&record);
            let change = diff_one(
                &delivery,
                &dry_run(base, &delivery),
                &dry_run(candidate, &delivery),
            );
            if let Some(change) = change {
                report.changed += 1;
                report.newly_matched += usize::from(!change.newly_matched.is_empty());
                report.no_longer_matched += usize::from(!change.no_longer_matched.is_empty());
                report.rendered_differently += usize::from(!change.rendered_differently.is_empty());
                report.changes.push(change);
            }
        }
    }
    Ok(report)
}

/// `None` when both sets would do the same with `delivery`.
fn diff_one(delivery: &Delivery, base: &DryRun, candidate: &DryRun) -> Option<Change> {
    let before: BTreeSet<&str> = base.trace.matched().collect();
    let after: BTreeSet<&str> = candidate.trace.matched().collect();
    let newly_matched: Vec<String> = after.difference(&before).map(|r| r.to_string()).collect();
    let no_longer_matched: Vec<String> = before.difference(&after).map(|r| r.to_string()).collect();
    let mut rendered_differently = Vec::new();
    let mut fields = Vec::new();
    for old in &base.runs {
        let Some(new) = candidate.runs.iter().find(|r| r.rule == old.rule) else {
            continue;
        };
        let before = fields.len();
        let (old_steps, new_steps) = (steps_by_id(&old.steps), steps_by_id(&new.steps));
        let ids: BTreeSet<&String> = old_steps.keys().chain(new_steps.keys()).collect();
        for id in ids {
            let prefix = format!("{}.{id}", old.rule);
            field_changes(&prefix, old_steps.get(id), new_steps.get(id), &mut fields);
        }
        if fields.len() > before {
            rendered_differently.push(old.rule.clone());
        }
    }
    if newly_matched.is_empty() && no_longer_matched.is_empty() && rendered_differently.is_empty() {
        return None;
    }
    Some(Change {
        delivery: delivery.id.clone(),
        source: delivery.source.clone(),
        event: delivery.event.clone(),
        newly_matched,
        no_longer_matched,
        rendered_differently,
        fields,
    })
}

/// A run's steps by id, each as what a rule test's `expect.render` sees:
/// the rendered fields, or the render error, plus the step's condition.
fn steps_by_id(
    steps: &[crate::dryrun::StepPreview],
) -> std::collections::BTreeMap<String, serde_json::Value> {
    steps
        .iter()
        .map(|step| {
            let mut value = step.rendered.clone().unwrap_or(serde_json::Value::Null);
            if let Some(error) = &step.error {
                value = serde_json::json!({ "error": error });
            }
            if let (Some(condition), serde_json::Value::Object(map)) = (&step.condition, &mut value)
            {
                map.insert("if".into(), condition.clone().into());
            }
            (step.step.clone(), value)
        })
        .collect()
}

/// Appends every leaf that differs between `before` and `after`, named by
/// its dotted path under `at` (array items by index).
fn field_changes(
    at: &str,
    before: Option<&serde_json::Value>,
    after: Option<&serde_json::Value>,
    out: &mut Vec<FieldChange>,
) {
    use serde_json::Value;
    match (before, after) {
        (Some(Value::Object(a)), Some(Value::Object(b))) => {
            let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for key in keys {
                field_changes(&format!("{at}.{key}"), a.get(key), b.get(key), out);
            }
        }
        (Some(Value::Array(a)), Some(Value::Array(b))) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                field_changes(&format!("{at}.{i}"), Some(x), Some(y), out);
            }
        }
        (a, b) if a != b => out.push(FieldChange {
            field: at.to_string(),
            before: a.cloned(),
            after: b.cloned(),
        }),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn changes_are_named_field_by_field() {
        let mut out = Vec::new();
        field_changes(
            "deploy-main.build",
            Some(&json!({"url": "u", "json": {"sha": "6113728", "ref": "r"}, "list": [1, 2]})),
            Some(
                &json!({"url": "u", "json": {"sha": "refs/heads/main", "ref": "r"}, "list": [1, 3], "new": true}),
            ),
            &mut out,
        );
        let named: Vec<String> = out
            .iter()
            .map(|c| format!("{}: {:?} → {:?}", c.field, c.before, c.after))
            .collect();
        assert_eq!(
            named,
            [
                r#"deploy-main.build.json.sha: Some(String("6113728")) → Some(String("refs/heads/main"))"#,
                "deploy-main.build.list.1: Some(Number(2)) → Some(Number(3))",
                "deploy-main.build.new: None → Some(Bool(true))",
            ]
        );
    }
}
