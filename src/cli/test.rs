//! `hookflow test [DIR] [--filter NAME]`: run the rules' `tests:` entries.
//! Nothing is executed: matching is checked and steps are rendered only.

use std::path::PathBuf;
use std::process::ExitCode;

use serde_json::Value;

use crate::delivery::Delivery;
use crate::dryrun::dry_run_failing;
use crate::rules::condition::json_eq;
use crate::rules::{RuleSet, RuleTest};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The rules directory (default: --rules, HOOKFLOW_RULES, `rules` of
    /// the settings file, ./rules).
    dir: Option<PathBuf>,
    /// Only tests whose name contains this text.
    #[arg(long)]
    filter: Option<String>,
    #[command(flatten)]
    settings: super::serve::SettingsArgs,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let dir = super::check::rules_dir(args.dir, &args.settings)?;
    let Some(set) = super::check::load_with_tests(&dir) else {
        return Ok(ExitCode::FAILURE);
    };
    // A test that cannot run (printed above) fails.
    let (mut passed, mut failed) = (0, set.test_problems().len());
    for test in set.tests() {
        if args
            .filter
            .as_ref()
            .is_some_and(|f| !test.name.contains(f.as_str()))
        {
            continue;
        }
        let problems = run_test(&set, test);
        if problems.is_empty() {
            passed += 1;
            println!("PASS  {}", test.name);
        } else {
            failed += 1;
            println!("FAIL  {}  ({})", test.name, test.loc);
            for p in problems {
                println!("      {}", set.secrets().redact(&p));
            }
        }
    }
    println!("\n{passed} passed, {failed} failed");
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Runs one test; each returned line is one way it failed.
pub fn run_test(set: &RuleSet, test: &RuleTest) -> Vec<String> {
    let Some(source) = set.source(&test.source) else {
        return vec![format!("unknown source `{}`", test.source)];
    };
    let delivery = match Delivery::local(
        source,
        test.headers.clone(),
        test.query.clone(),
        test.body.clone(),
        test.event.clone(),
    ) {
        Ok(d) => d,
        Err(e) => {
            return match test.expect_rejected {
                Some(400) => Vec::new(),
                Some(want) => vec![format!(
                    "refused with 400 (the body does not parse: {e}), expected {want}"
                )],
                None => vec![format!("the payload is not a valid body: {e}")],
            };
        }
    };
    let result = dry_run_failing(set, &delivery, test.failure.as_ref());
    if let Some(want) = test.expect_rejected {
        return match &result.refused {
            Some(_) if want == 422 => Vec::new(),
            Some(mismatch) => vec![format!("refused with 422 ({mismatch}), expected {want}")],
            None if source.schema.is_none() => vec![format!(
                "accepted: source `{}` has no `schema:`, so nothing refuses the payload; expected {want}",
                source.name
            )],
            None => vec![format!(
                "accepted: the payload matches the schema of source `{}`; expected {want}",
                source.name
            )],
        };
    }
    if let Some(mismatch) = &result.refused {
        return vec![format!(
            "refused with 422: {mismatch} (expect `rejected: 422` if that is intended)"
        )];
    }
    let mut problems = Vec::new();
    if let Some(expected) = &test.expect_matched {
        let mut got: Vec<&str> = result.trace.matched().collect();
        let mut want: Vec<&str> = expected.iter().map(String::as_str).collect();
        got.sort_unstable();
        want.sort_unstable();
        if got != want {
            problems.push(format!(
                "matched [{}], expected [{}]",
                got.join(", "),
                want.join(", ")
            ));
            for rule in &result.trace.rules {
                if let Some(miss) = &rule.miss
                    && want.contains(&rule.rule.as_str())
                {
                    problems.push(format!("  {} did not match: {miss}", rule.rule));
                }
            }
        }
    }
    for (key, want, loc) in &test.expect_render {
        match lookup_render(set, &result, key) {
            Ok(got) if json_eq(&got, want) => {}
            Ok(got) => problems.push(format!("{loc}: {key} rendered {got}, expected {want}")),
            Err(e) => problems.push(format!("{loc}: {key}: {e}")),
        }
    }
    problems
}

/// Finds `rule.step.field.path` (or `rule.on_failure.step.field.path`) in
/// a dry run. Rule names and step ids may contain dots, so the longest
/// known prefix wins.
fn lookup_render(
    set: &RuleSet,
    result: &crate::dryrun::DryRun,
    key: &str,
) -> Result<Value, String> {
    let rule = set
        .rules()
        .iter()
        .filter(|r| key.starts_with(&format!("{}.", r.name)))
        .max_by_key(|r| r.name.len())
        .ok_or_else(|| "no rule of that name (write rule.step.field)".to_string())?;
    let rest = &key[rule.name.len() + 1..];
    let run = result
        .runs
        .iter()
        .find(|r| r.rule == rule.name)
        .ok_or_else(|| format!("rule {} did not match, so nothing was rendered", rule.name))?;
    // `rule.on_failure.<step>.field`: the steps rendered for the test's
    // simulated `failure:`.
    let (steps, rest) = match rest.strip_prefix("on_failure.") {
        Some(after) if !rule.on_failure.is_empty() => {
            if run.on_failure.is_empty() {
                return Err(
                    "on_failure steps are rendered only in a test with `failure:`".to_string(),
                );
            }
            (&run.on_failure, after)
        }
        _ => (&run.steps, rest),
    };
    let step = steps
        .iter()
        .filter(|s| rest.starts_with(&format!("{}.", s.step)))
        .max_by_key(|s| s.step.len())
        .ok_or_else(|| format!("rule {} has no step of that id or number", rule.name))?;
    let field = &rest[step.step.len() + 1..];
    let Some(view) = &step.rendered else {
        return Err(format!(
            "step {} was not rendered: {}",
            step.step,
            step.error.as_deref().unwrap_or("")
        ));
    };
    let mut at = view;
    for part in field.split('.') {
        at = match at {
            Value::Object(map) => map.get(part),
            Value::Array(items) => part.parse::<usize>().ok().and_then(|i| items.get(i)),
            _ => None,
        }
        .ok_or_else(|| format!("the rendered step has no field `{field}`"))?;
    }
    Ok(at.clone())
}
