//! `hookflow replay DELIVERY_ID [--dry-run]`: match a stored delivery
//! against the current rules and queue one run per matching rule. A running
//! server picks the runs up from the database.

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
    /// The delivery to replay.
    delivery_id: String,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let settings = super::settings(&args.settings)?;
    let Some(rules) = super::load_rules(&settings.rules) else {
        return Ok(ExitCode::FAILURE);
    };
    let replay = super::runtime()?.block_on(async {
        let store = super::open_store(&settings).await?;
        anyhow::Ok(
            crate::ops::replay(
                &store,
                &rules,
                &args.delivery_id,
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
