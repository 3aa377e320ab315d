//! `hookflow runs [--rule R] [--status failed] [--limit N] [--json]`: the
//! runs, newest first, from the run log, redacted as the API shows them.

use std::process::ExitCode;

use anyhow::bail;

use crate::runlog_view::{Redact, RunItem};
use crate::store::{RunFilter, RunRecord, RunStatus};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    settings: super::serve::SettingsArgs,
    /// Only runs of this rule.
    #[arg(long)]
    rule: Option<String>,
    /// Only runs in this state: queued, running, waiting (for a retry),
    /// succeeded, failed, cancelled.
    #[arg(long)]
    status: Option<String>,
    /// At most this many (newest first).
    #[arg(long, default_value_t = 50)]
    limit: u32,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    // `waiting` is a state, not a stored status: running runs due later.
    let mut waiting_at = None;
    let status = match args.status.as_deref() {
        None => None,
        Some("waiting") => {
            waiting_at = Some(chrono::Utc::now().timestamp_millis());
            None
        }
        Some(text) => match RunStatus::parse(text) {
            Some(status) => Some(status),
            None => {
                let known: Vec<&str> = RunStatus::ALL.iter().map(|s| s.as_str()).collect();
                bail!(
                    "--status {text:?} is not a run state (one of: {}, waiting)",
                    known.join(", ")
                );
            }
        },
    };
    let settings = super::settings(&args.settings)?;
    let filter = RunFilter {
        rule: args.rule,
        status,
        limit: args.limit.max(1),
        before_id: None,
        waiting_at,
        since_ms: None,
    };
    let secrets = super::show::secrets(&settings)?;
    let records = super::runtime()?.block_on(async {
        let store = super::open_store(&settings).await?;
        anyhow::Ok(store.list_runs(filter).await?)
    })?;
    let labels: Vec<String> = records.iter().map(step_label).collect();
    let view = Redact(&secrets);
    let list: Vec<RunItem> = records.into_iter().map(|r| view.run_item(r)).collect();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(ExitCode::SUCCESS);
    }
    if list.is_empty() {
        println!("no runs");
        return Ok(ExitCode::SUCCESS);
    }
    print!("{}", render_table(&list, &labels));
    Ok(ExitCode::SUCCESS)
}

/// The runs as an aligned table (also used by `show`), with each run's
/// [`step_label`].
pub(super) fn render_table(runs: &[RunItem], labels: &[String]) -> String {
    let rows: Vec<Vec<String>> = runs
        .iter()
        .zip(labels)
        .map(|(r, label)| {
            vec![
                r.id.clone(),
                super::time(r.created_at),
                r.rule.clone(),
                state(r),
                label.clone(),
                r.delivery_id.clone(),
                r.error
                    .as_deref()
                    .map_or_else(|| "-".to_string(), |e| super::one_line(e, 80)),
            ]
        })
        .collect();
    super::table(
        &[
            "ID", "CREATED", "RULE", "STATUS", "STEP", "DELIVERY", "ERROR",
        ],
        &rows,
    )
}

/// The run's state for people: `waiting until 14:02:11` for a run waiting
/// for a retry, `running (cancelling)` once a cancel is requested.
pub(super) fn state(r: &RunItem) -> String {
    use crate::runlog_view::RunState;
    match (r.state, r.next_attempt_at) {
        (RunState::Waiting, Some(at)) => format!("waiting until {}", super::time(at)),
        (RunState::Running, _) if r.cancel_requested_at.is_some() => {
            "running (cancelling)".to_owned()
        }
        (state, _) => state.as_str().to_owned(),
    }
}

/// Where the run is: `2/3` (1-based step of the step count, from the
/// definition it was queued with); a succeeded run is past its last step.
pub(super) fn step_label(run: &RunRecord) -> String {
    let total = run
        .definition
        .get("actions")
        .or_else(|| run.definition.get("steps"))
        .and_then(|s| s.as_array())
        .map(Vec::len);
    let at = match run.status {
        RunStatus::Succeeded => run.next_step as usize,
        _ => run.next_step as usize + 1,
    };
    match total {
        Some(total) => format!("{}/{total}", at.min(total)),
        None => at.to_string(),
    }
}
