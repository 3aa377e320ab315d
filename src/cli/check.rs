//! `hookflow check [DIR]`: validate everything, like a compiler.

use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The rules directory (default: --rules, HOOKFLOW_RULES, ./rules).
    dir: Option<PathBuf>,
    #[command(flatten)]
    rules: super::RulesArgs,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let dir = args.dir.unwrap_or(args.rules.rules);
    let Some(set) = super::load_rules(&dir) else {
        return Ok(ExitCode::FAILURE);
    };
    println!(
        "{}: {} source(s), {} rule(s), {} test(s), {} warning(s) — ok",
        dir.display(),
        set.sources().len(),
        set.rules().len(),
        set.tests().len(),
        set.warnings().len()
    );
    Ok(ExitCode::SUCCESS)
}
