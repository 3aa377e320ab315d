//! `hookflow cancel RUN_ID…`: cancel queued or running runs (SPEC §5). It
//! writes to the run log; a running run is stopped by the server whose
//! worker holds it, at that worker's next lease heartbeat (about a
//! second), on this node or another.
//!
//! Every id is tried; the exit code is 1 if any could not be cancelled (a
//! finished run, an unknown id). Cancelling a cancelled run is no error.

use std::process::ExitCode;

use crate::ops::{CancelState, OpsError};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    settings: super::serve::SettingsArgs,
    /// Print one JSON object per run instead of text.
    #[arg(long)]
    json: bool,
    /// The runs to cancel.
    #[arg(required = true)]
    run_ids: Vec<String>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let settings = super::settings(&args.settings)?;
    let results = super::runtime()?.block_on(async {
        let store = super::open_store(&settings).await?;
        let actor = crate::store::Actor::cli();
        let mut results = Vec::with_capacity(args.run_ids.len());
        for id in &args.run_ids {
            results.push((id.clone(), crate::ops::cancel(&store, id, &actor).await));
        }
        anyhow::Ok(results)
    })?;
    let mut code = ExitCode::SUCCESS;
    for (id, result) in results {
        match result {
            Ok(done) if args.json => {
                super::say_out(&serde_json::to_string(&done)?);
            }
            Ok(done) => super::say_out(&match done.outcome {
                CancelState::Cancelled => format!("run {id} ({}) cancelled", done.run.rule),
                CancelState::Requested => format!(
                    "run {id} ({}) is running: cancel requested; its worker stops it within seconds",
                    done.run.rule
                ),
                CancelState::AlreadyCancelled => {
                    format!("run {id} ({}) was already cancelled", done.run.rule)
                }
            }),
            Err(e @ (OpsError::NotFound { .. } | OpsError::NotCancellable { .. })) => {
                super::say(&format!("error: {e}"));
                code = ExitCode::FAILURE;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(code)
}
