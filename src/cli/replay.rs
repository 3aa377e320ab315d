//! `hookflow replay DELIVERY_ID [--dry-run]`: match a stored delivery
//! against the current rules and queue one run per matching rule; or, by
//! filter, `hookflow replay --source S --since 1d [--event E] [--dry-run]`
//! for every accepted delivery of a source. A running server picks the runs
//! up from the database.

use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    settings: super::serve::SettingsArgs,
    /// Only show which rules match now; queue nothing.
    #[arg(long)]
    dry_run: bool,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    /// By filter: every accepted delivery of this source.
    #[arg(long)]
    source: Option<String>,
    /// By filter: received this long ago or later (30m, 2h, 1d).
    #[arg(long, requires = "source")]
    since: Option<String>,
    /// By filter: only deliveries of this event.
    #[arg(long, requires = "source")]
    event: Option<String>,
    /// The delivery to replay (or give --source instead).
    #[arg(required_unless_present = "source", conflicts_with = "source")]
    delivery_id: Option<String>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let settings = super::settings(&args.settings)?;
    let Some(rules) = super::load_rules(&settings.rules) else {
        return Ok(ExitCode::FAILURE);
    };
    let Some(delivery_id) = args.delivery_id.clone() else {
        return by_filter(&args, &settings, &rules);
    };
    let replay = super::runtime()?.block_on(async {
        let store = super::open_store(&settings).await?;
        anyhow::Ok(
            crate::ops::replay(
                &store,
                &rules,
                &delivery_id,
                args.dry_run,
                &crate::store::Actor::cli(),
            )
            .await?,
        )
    })?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&replay)?);
        return Ok(ExitCode::SUCCESS);
    }
    if replay.matched.is_empty() {
        println!(
            "delivery {} matches no rule now; nothing to run",
            replay.delivery
        );
        return Ok(ExitCode::SUCCESS);
    }
    if replay.dry_run {
        println!(
            "delivery {} matches {} rule(s) now; would queue:",
            replay.delivery,
            replay.matched.len()
        );
        for rule in &replay.matched {
            println!("  {rule}");
        }
    } else {
        println!(
            "delivery {} matches {} rule(s) now; queued:",
            replay.delivery,
            replay.matched.len()
        );
        for (run, rule) in replay.runs.iter().zip(&replay.matched) {
            println!("  run {run}  {rule}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `--source S [--since D] [--event E]`: every matching delivery, oldest
/// first; one line per delivery.
fn by_filter(
    args: &Args,
    settings: &crate::config::Settings,
    rules: &crate::rules::RuleSet,
) -> anyhow::Result<ExitCode> {
    let filter = crate::ops::ReplayFilter {
        source: args.source.clone().unwrap_or_default(),
        since_ms: args.since.as_deref().map(super::since_ms).transpose()?,
        event: args.event.clone(),
    };
    let done = super::runtime()?.block_on(async {
        let store = super::open_store(settings).await?;
        let actor = crate::store::Actor::cli();
        anyhow::Ok(crate::ops::replay_matching(&store, rules, &filter, args.dry_run, &actor).await?)
    })?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&done)?);
        return Ok(ExitCode::SUCCESS);
    }
    let runs: usize = done.deliveries.iter().map(|d| d.matched.len()).sum();
    let verb = if done.dry_run {
        "would queue"
    } else {
        "queued"
    };
    println!(
        "{} deliveries of {}: {verb} {runs} run(s)",
        done.deliveries.len(),
        filter.source
    );
    for d in &done.deliveries {
        let matched = if d.matched.is_empty() {
            "no rule".to_owned()
        } else {
            d.matched.join(", ")
        };
        println!("  {}  {matched}", d.delivery);
    }
    Ok(ExitCode::SUCCESS)
}
