//! `hookflow migrate --from sqlite://… --to postgres://…`: copy a SQLite
//! run log into PostgreSQL (SPEC §9), resumable, then compare both sides
//! table by table; exit 1 when they differ. The copying is
//! `store::copy`'s; this file parses, opens and reports.
//!
//! Stop the node writing the SQLite file first (or migrate a copy made by
//! `hookflow backup`): rows written after a table was copied are not.

use std::process::ExitCode;

use anyhow::{Context, bail};

use crate::store::SqliteOptions;
use crate::store::copy::{self, RawSource, RawTarget};
use crate::store::postgres::PostgresTarget;
use crate::store::sqlite::SqliteSource;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The run log to copy: sqlite://PATH (stop the node writing it first,
    /// or copy a `hookflow backup` of it).
    #[arg(long, value_name = "URL")]
    from: String,
    /// Where to copy it: postgres://… (an empty schema, or one holding an
    /// interrupted copy from the same file, which is resumed).
    #[arg(long, value_name = "URL")]
    to: String,
    /// Rows per committed batch.
    #[arg(long, default_value_t = 1000, value_name = "ROWS")]
    batch: u32,
    /// Copy nothing: only compare the row counts and ids of both sides.
    #[arg(long)]
    verify_only: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let (path, _) = SqliteOptions::from_url(&args.from)
        .context("--from must be a SQLite run log (sqlite://PATH)")?;
    if !(args.to.starts_with("postgres://") || args.to.starts_with("postgresql://")) {
        bail!("--to must be a PostgreSQL database (postgres://…)");
    }
    let shown_to = crate::store::postgres::redact(&args.to);
    let mut source = SqliteSource::open(&path)
        .with_context(|| format!("cannot open the source {}", path.display()))?;
    super::runtime()?.block_on(async {
        let mut target = PostgresTarget::open(&args.to)
            .await
            .with_context(|| format!("cannot open the target {shown_to}"))?;
        if !args.verify_only {
            copy_all(&mut source, &mut target, args.batch, &shown_to).await?;
        }
        let checks = copy::verify(&mut source, &mut target)
            .await
            .context("cannot compare the source and the target")?;
        let rows: Vec<Vec<String>> = checks
            .iter()
            .map(|c| {
                vec![
                    c.table.clone(),
                    c.source_rows.to_string(),
                    c.target_rows.to_string(),
                    short(&c.source_hash),
                    short(&c.target_hash),
                    if c.matches() { "ok" } else { "DIFFERENT" }.to_owned(),
                ]
            })
            .collect();
        super::say_out(
            super::table(
                &[
                    "TABLE",
                    "SOURCE ROWS",
                    "TARGET ROWS",
                    "SOURCE IDS",
                    "TARGET IDS",
                    "",
                ],
                &rows,
            )
            .trim_end(),
        );
        let differ: Vec<&str> = checks
            .iter()
            .filter(|c| !c.matches())
            .map(|c| c.table.as_str())
            .collect();
        if differ.is_empty() {
            super::say_out(&format!(
                "{} and {shown_to} hold the same run log",
                source.describe()
            ));
            Ok(ExitCode::SUCCESS)
        } else {
            super::say(&format!(
                "error: the source and the target differ in {} (row counts or ids)",
                differ.join(", ")
            ));
            Ok(ExitCode::from(1))
        }
    })
}

async fn copy_all(
    source: &mut dyn RawSource,
    target: &mut dyn RawTarget,
    batch: u32,
    shown_to: &str,
) -> anyhow::Result<()> {
    // A line now and then on stderr, so a long copy shows it moves.
    let mut on_batch = |p: copy::Progress<'_>| {
        if p.copied % 100_000 < u64::from(batch) {
            super::say(&format!("{}: {} rows copied", p.table, p.copied));
        }
    };
    let copied = copy::copy(source, target, batch, &mut on_batch)
        .await
        .with_context(|| format!("cannot copy {} to {shown_to}", source.describe()))?;
    if copied.resumed {
        super::say_out("resumed an interrupted copy");
    }
    for (table, n) in &copied.rows {
        super::say_out(&format!("{table}: {n} rows copied"));
    }
    Ok(())
}

/// The first 16 hex digits of a hash: enough to tell two apart on screen.
fn short(hash: &str) -> String {
    hash.chars().take(16).collect()
}
