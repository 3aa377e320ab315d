//! The command line: one file per subcommand; this file parses arguments
//! and turns errors into one or two plain sentences on stderr.

mod check;
mod explain;
mod send;
mod serve;
mod test;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// hookflow: receive webhooks, verify them, match them against YAML rules,
/// and run the rules' actions durably.
#[derive(Debug, Parser)]
#[command(name = "hookflow", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server: receive webhooks, match them, run the actions.
    Serve(serve::Args),
    /// Load and validate the rules; print every problem as file:line:column.
    Check(check::Args),
    /// Run the rules' `tests:` entries (nothing is executed).
    Test(test::Args),
    /// Sign a payload like the source's sender and POST it.
    Send(send::Args),
    /// Show which rules a payload matches, why the others do not, and the
    /// rendered steps of the matching ones (nothing is executed).
    Explain(explain::Args),
}

/// Where the rules are: a positional DIR wins over `--rules`, which wins
/// over `HOOKFLOW_RULES`, then `./rules`.
#[derive(Debug, clap::Args)]
struct RulesArgs {
    /// The rules directory.
    #[arg(
        long = "rules",
        env = "HOOKFLOW_RULES",
        value_name = "DIR",
        default_value = "rules"
    )]
    rules: PathBuf,
}

/// Parses the command line and runs it.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Check(args) => check::run(args),
        Command::Test(args) => test::run(args),
        Command::Explain(args) => explain::run(args),
        Command::Send(args) => send::run(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Loads the rules, printing every diagnostic; `None` if they are invalid.
fn load_rules(dir: &std::path::Path) -> Option<crate::rules::RuleSet> {
    match crate::rules::load(dir) {
        Ok(set) => {
            for w in set.warnings() {
                eprintln!("{w}");
            }
            Some(set)
        }
        Err(e) => {
            for d in &e.diagnostics {
                eprintln!("{d}");
            }
            eprintln!(
                "error: the rules in {} are invalid ({} error(s))",
                dir.display(),
                e.errors().count()
            );
            None
        }
    }
}
