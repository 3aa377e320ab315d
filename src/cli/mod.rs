//! The command line: one file per subcommand; this file parses arguments
//! and turns errors into one or two plain sentences on stderr.

mod backup;
mod cancel;
mod check;
mod deliveries;
mod diff;
mod explain;
mod migrate;
mod replay;
mod retry;
mod runs;
mod schema;
mod send;
mod serve;
mod show;
mod sink;
mod test;

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};

use crate::config::{Layer, Settings};
use crate::store::Store;

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
    Serve(Box<serve::Args>),
    /// Load and validate the rules; print every problem as file:line:column.
    Check(check::Args),
    /// Run the rules' `tests:` entries (nothing is executed).
    Test(test::Args),
    /// Sign a payload like the source's sender and POST it.
    Send(send::Args),
    /// Show which rules a payload matches, why the others do not, and the
    /// rendered steps of the matching ones (nothing is executed). Given a
    /// delivery id: its trace at arrival and what the rules would do now.
    Explain(explain::Args),
    /// Compare what two rule sets would do with the stored deliveries.
    Diff(diff::Args),
    /// List received deliveries, newest first.
    Deliveries(deliveries::Args),
    /// List runs, newest first.
    Runs(runs::Args),
    /// Show a delivery (trace, runs) or a run (every attempt) by id.
    Show(show::Args),
    /// Match a stored delivery against the current rules and queue the runs.
    Replay(replay::Args),
    /// Re-queue a failed run from its failed step.
    Retry(retry::Args),
    /// Cancel queued or running runs (a running step is stopped).
    Cancel(cancel::Args),
    /// Write a consistent copy of a live SQLite run log.
    Backup(backup::Args),
    /// Copy a SQLite run log into PostgreSQL (resumable), then compare
    /// both sides table by table; exit 1 when they differ.
    Migrate(migrate::Args),
    /// Print the JSON Schema of rule files, for editors (yaml-language-server);
    /// `--markdown` prints the reference of every key and setting instead.
    Schema(schema::Args),
    /// Print every request received and answer 200: a local stand-in for
    /// the targets of the rules' actions.
    Sink(sink::Args),
}

/// Parses the command line and runs it.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve::run(*args),
        Command::Check(args) => check::run(args),
        Command::Test(args) => test::run(args),
        Command::Explain(args) => explain::run(args),
        Command::Send(args) => send::run(args),
        Command::Diff(args) => diff::run(args),
        Command::Deliveries(args) => deliveries::run(args),
        Command::Runs(args) => runs::run(args),
        Command::Show(args) => show::run(args),
        Command::Replay(args) => replay::run(args),
        Command::Retry(args) => retry::run(args),
        Command::Cancel(args) => cancel::run(args),
        Command::Sink(args) => sink::run(args),
        Command::Backup(args) => backup::run(args),
        Command::Migrate(args) => migrate::run(args),
        Command::Schema(args) => schema::run(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            say(&format!("error: {e:#}"));
            ExitCode::from(2)
        }
    }
}

/// One line on stdout, ignoring a closed pipe.
fn say_out(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout(), "{line}");
}

/// One line on stderr. Unlike `eprintln!`, a closed stderr (`hookflow …
/// 2>&1 | head -1`) is not a panic: the line is lost, nothing else.
fn say(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// Loads the rules, printing every diagnostic; `None` if they are invalid.
fn load_rules(dir: &std::path::Path) -> Option<crate::rules::RuleSet> {
    match crate::rules::load(dir) {
        Ok(set) => {
            for w in set.warnings() {
                say(&w.to_string());
            }
            Some(set)
        }
        Err(e) => {
            for d in &e.diagnostics {
                say(&d.to_string());
            }
            say(&format!(
                "error: the rules in {} are invalid ({} error(s))",
                dir.display(),
                e.errors().count()
            ));
            None
        }
    }
}

/// Settings for a command that reads the run log (no server flags).
fn settings(args: &serve::SettingsArgs) -> anyhow::Result<Settings> {
    args.resolve(Layer::default())
}

/// A small runtime for a one-shot command's store calls.
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Opens the run log the server writes. A SQLite file that does not exist
/// is an error here, not a new empty database: the path is probably wrong.
async fn open_store(settings: &Settings) -> anyhow::Result<Arc<dyn Store>> {
    if let Some(path) = settings.sqlite_path()
        && !path.exists()
    {
        let path = path.display();
        bail!(
            "there is no database at {path}. Pass --db sqlite://PATH (or set `database` in hookflow.yaml) to read the server's run log."
        );
    }
    crate::store::open(settings.database.as_str())
        .await
        .with_context(|| format!("cannot open the database {}", settings.database))
}

/// Unix milliseconds as `2026-01-02 15:04:05 UTC`.
fn time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| ms.to_string())
}

/// `--since 1h`: the unix millisecond that long ago.
fn since_ms(text: &str) -> anyhow::Result<i64> {
    let ago = humantime::parse_duration(text).map_err(|e| {
        anyhow::anyhow!("--since {text:?} is not a duration like 30m, 1h or 7d ({e})")
    })?;
    let ago = i64::try_from(ago.as_millis()).unwrap_or(i64::MAX);
    Ok(chrono::Utc::now().timestamp_millis().saturating_sub(ago))
}

/// Columns padded to their widest cell, two spaces apart; the last column
/// is not padded.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut out = String::new();
        for (i, cell) in cells.enumerate() {
            if i > 0 {
                out.push_str("  ");
            }
            out.push_str(cell);
            if i + 1 < widths.len() {
                let pad = widths[i].saturating_sub(cell.chars().count());
                out.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.truncate(out.trim_end().len());
        out.push('\n');
        out
    };
    let mut out = line(&mut header.iter().copied());
    for row in rows {
        out.push_str(&line(&mut row.iter().map(String::as_str)));
    }
    out
}

/// At most `max` characters of `text` on one line, with `…` when cut.
fn one_line(text: &str, max: usize) -> String {
    let flat: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if flat.chars().count() <= max {
        return flat;
    }
    let mut cut: String = flat.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}
