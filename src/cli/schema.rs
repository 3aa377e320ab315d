//! `hookflow schema`: the JSON Schema of rule files for editors
//! (yaml-language-server), or with `--markdown` docs/REFERENCE.md; both are
//! generated from the decoders' key lists and the settings table.

use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print the reference of every rule-file key and setting (Markdown,
    /// docs/REFERENCE.md) instead of the JSON Schema.
    #[arg(long)]
    markdown: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let text = if args.markdown {
        crate::reference::markdown()?
    } else {
        serde_json::to_string_pretty(&crate::rules::editor_schema::schema())?
    };
    super::say_out(text.trim_end());
    Ok(ExitCode::SUCCESS)
}
