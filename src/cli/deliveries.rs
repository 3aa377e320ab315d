//! `hookflow deliveries [--source S] [--since 1h] [--limit N] [--json]`:
//! the received deliveries, newest first, from the run log, redacted as
//! the API shows them.

use std::process::ExitCode;

use crate::runlog_view::{DeliveryItem, DeliveryStatus, Redact};
use crate::store::DeliveryFilter;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    settings: super::serve::SettingsArgs,
    /// Only deliveries of this source.
    #[arg(long)]
    source: Option<String>,
    /// Only deliveries received this recently (30m, 1h, 7d).
    #[arg(long, value_name = "DURATION")]
    since: Option<String>,
    /// At most this many (newest first).
    #[arg(long, default_value_t = 50)]
    limit: u32,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let settings = super::settings(&args.settings)?;
    let filter = DeliveryFilter {
        source: args.source,
        since_ms: args.since.as_deref().map(super::since_ms).transpose()?,
        limit: args.limit.max(1),
        before_id: None,
    };
    let secrets = super::show::secrets(&settings)?;
    let records = super::runtime()?.block_on(async {
        let store = super::open_store(&settings).await?;
        anyhow::Ok(store.list_deliveries(filter).await?)
    })?;
    let view = Redact(&secrets);
    let list: Vec<DeliveryItem> = records.into_iter().map(|d| view.delivery_item(d)).collect();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(ExitCode::SUCCESS);
    }
    if list.is_empty() {
        println!("no deliveries");
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|d| {
            let status = match (d.status, d.reject_status) {
                (DeliveryStatus::Rejected, Some(code)) => format!("rejected {code}"),
                (status, _) => status.as_str().to_string(),
            };
            let matched = if d.matched.is_empty() {
                "-".to_string()
            } else {
                d.matched.join(",")
            };
            vec![
                d.id.clone(),
                super::time(d.received_at),
                d.source.clone(),
                if d.event.is_empty() {
                    "-".to_string()
                } else {
                    d.event.clone()
                },
                status,
                matched,
            ]
        })
        .collect();
    print!(
        "{}",
        super::table(
            &["ID", "RECEIVED", "SOURCE", "EVENT", "STATUS", "MATCHED"],
            &rows
        )
    );
    Ok(ExitCode::SUCCESS)
}
