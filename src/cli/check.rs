//! `hookflow check [DIR]`: validate everything, like a compiler.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::rules::RuleSet;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The rules directory (default: --rules, HOOKFLOW_RULES, `rules` of
    /// the settings file, ./rules).
    dir: Option<PathBuf>,
    #[command(flatten)]
    settings: super::serve::SettingsArgs,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let dir = rules_dir(args.dir, &args.settings)?;
    let Some(set) = load_with_tests(&dir) else {
        return Ok(ExitCode::FAILURE);
    };
    if !set.test_problems().is_empty() {
        super::say(&format!(
            "error: {} test(s) in {} cannot run",
            set.test_problems().len(),
            dir.display()
        ));
        return Ok(ExitCode::FAILURE);
    }
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

/// The rules directory of `check` and `test`: a positional DIR wins, then
/// the settings (`--rules` > `HOOKFLOW_RULES` > the settings file's `rules`
/// > `./rules`), as for `serve`.
pub(super) fn rules_dir(
    dir: Option<PathBuf>,
    settings: &super::serve::SettingsArgs,
) -> anyhow::Result<PathBuf> {
    match dir {
        Some(dir) => Ok(dir),
        None => Ok(super::settings(settings)?.rules),
    }
}

/// Loads the rules for `check` and `test`, printing every diagnostic. A
/// test that cannot run (an unreadable `payload_file`) is printed as an
/// error here, though the set loads: `serve` only warns about it.
pub(super) fn load_with_tests(dir: &Path) -> Option<RuleSet> {
    match crate::rules::load(dir) {
        Ok(set) => {
            let problems = set.test_problems();
            for w in set.warnings() {
                let promoted = problems
                    .iter()
                    .any(|p| p.loc == w.loc && p.message == w.message);
                if !promoted {
                    super::say(&w.to_string());
                }
            }
            for p in problems {
                super::say(&p.to_string());
            }
            Some(set)
        }
        Err(e) => {
            for d in &e.diagnostics {
                super::say(&d.to_string());
            }
            super::say(&format!(
                "error: the rules in {} are invalid ({} error(s))",
                dir.display(),
                e.errors().count()
            ));
            None
        }
    }
}
