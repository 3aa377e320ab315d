//! `hookflow retry RUN_ID`: re-queue a failed run from its failed step. A
//! running server picks it up from the database.

use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    settings: super::serve::SettingsArgs,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    /// The failed run.
    run_id: String,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let settings = super::settings(&args.settings)?;
    let run = super::runtime()?.block_on(async {
        let store = super::open_store(&settings).await?;
        anyhow::Ok(crate::ops::retry(&store, &args.run_id, &crate::store::Actor::cli()).await?)
    })?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&run)?);
    } else {
        println!(
            "run {} ({}) re-queued at step {}",
            run.id,
            run.rule,
            super::runs::step_label(&run)
        );
    }
    Ok(ExitCode::SUCCESS)
}
