//! `hookflow retry RUN_ID…` / `hookflow retry --rule R --status failed
//! --since 2h [--dry-run]`: re-queue failed runs from their failed step
//! (SPEC §5), with the definition each was queued with or, `--current`,
//! with its rule as loaded now from the rules directory. A running server
//! picks them up from the database.

use std::process::ExitCode;

use anyhow::bail;

use crate::ops::{Resume, RetryFilter};
use crate::store::Actor;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    settings: super::serve::SettingsArgs,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    /// By filter: only runs of this rule.
    #[arg(long)]
    rule: Option<String>,
    /// By filter: the runs' status; only `failed` runs can be retried.
    #[arg(long)]
    status: Option<String>,
    /// By filter: only runs created this long ago or later (30m, 2h, 7d).
    #[arg(long)]
    since: Option<String>,
    /// By filter: list what would be re-queued; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Resume with the rule as loaded now from the rules directory (the
    /// fixed URL, the corrected template), not the definition the run was
    /// queued with. A run whose rule is gone is skipped and reported.
    #[arg(long)]
    current: bool,
    /// The failed runs (or give a filter instead).
    run_ids: Vec<String>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let by_filter = args.rule.is_some() || args.status.is_some() || args.since.is_some();
    match (args.run_ids.is_empty(), by_filter) {
        (true, false) => {
            bail!("give the runs to retry, or a filter (--rule, --status failed, --since)")
        }
        (false, true) => bail!("give either run ids or a filter, not both"),
        _ => {}
    }
    if let Some(status) = args.status.as_deref()
        && status != "failed"
    {
        bail!("--status {status:?}: only failed runs can be retried");
    }
    if args.dry_run && !by_filter {
        bail!("--dry-run goes with a filter (--rule, --status failed, --since)");
    }
    let settings = super::settings(&args.settings)?;
    let rules = if args.current {
        let Some(rules) = super::load_rules(&settings.rules) else {
            return Ok(ExitCode::FAILURE);
        };
        Some(rules)
    } else {
        None
    };
    let resume = rules.as_ref().map_or(Resume::Queued, Resume::Current);
    let actor = Actor::cli();
    let rt = super::runtime()?;
    if by_filter {
        let filter = RetryFilter {
            rule: args.rule.clone(),
            since_ms: args.since.as_deref().map(super::since_ms).transpose()?,
        };
        let done = rt.block_on(async {
            let store = super::open_store(&settings).await?;
            anyhow::Ok(
                crate::ops::retry_matching(&store, &filter, resume, args.dry_run, &actor).await?,
            )
        })?;
        // Runs matched but none could resume with the current rules.
        let code = if done.runs.is_empty() && !done.skipped.is_empty() {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        };
        if args.json {
            println!("{}", serde_json::to_string_pretty(&done)?);
            return Ok(code);
        }
        let verb = if done.dry_run {
            "would re-queue"
        } else {
            "re-queued"
        };
        let how = if args.current {
            " with the current rules"
        } else {
            ""
        };
        println!("{verb} {} failed run(s){how}", done.runs.len());
        for id in &done.runs {
            println!("  {id}");
        }
        if !done.skipped.is_empty() {
            let verb = if done.dry_run {
                "would skip"
            } else {
                "skipped"
            };
            println!("{verb} {} failed run(s):", done.skipped.len());
            for s in &done.skipped {
                println!("  {}  {}", s.run, s.reason);
            }
        }
        return Ok(code);
    }
    let mut code = ExitCode::SUCCESS;
    for id in &args.run_ids {
        let result = rt.block_on(async {
            let store = super::open_store(&settings).await?;
            anyhow::Ok(crate::ops::retry(&store, id, resume, &actor).await)
        })?;
        match result {
            Ok(run) if args.json => println!("{}", serde_json::to_string_pretty(&run)?),
            Ok(run) => println!(
                "run {} ({}) re-queued at step {}, attempt {}",
                run.id,
                run.rule,
                super::runs::step_label(&run),
                run.attempt + 1
            ),
            Err(e @ crate::ops::OpsError::Store(_)) => return Err(e.into()),
            Err(e) => {
                super::say(&format!("error: {e}"));
                code = ExitCode::FAILURE;
            }
        }
    }
    Ok(code)
}
