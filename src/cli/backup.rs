//! `hookflow backup FILE`: a consistent copy of a live SQLite run log (the
//! server may keep running), checked before it is put in place.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::bail;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    settings: super::serve::SettingsArgs,
    /// Where to write the copy (must not exist).
    file: PathBuf,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let settings = super::settings(&args.settings)?;
    let Some(source) = settings.sqlite_path() else {
        bail!(
            "backup copies an SQLite run log; for PostgreSQL ({}) use pg_dump",
            settings.database
        );
    };
    let report = crate::store::sqlite::backup(source, &args.file)?;
    super::say_out(&format!(
        "backed up {} to {}: {} deliveries, {} runs, {} attempts, {} bytes (integrity_check ok)",
        source.display(),
        args.file.display(),
        report.deliveries,
        report.runs,
        report.attempts,
        report.bytes
    ));
    Ok(ExitCode::SUCCESS)
}
