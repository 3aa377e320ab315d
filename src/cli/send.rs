//! `hookflow send --source S PAYLOAD_FILE [--url URL] [--event E]`: sign a
//! payload the way the source's sender does, with the configured secret,
//! and POST it — a local stand-in for GitHub, Stripe or Slack.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};

use crate::delivery::parse_body;
use crate::rules::model::{Extract, Source};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The source to send to (its verifier and secret sign the request).
    #[arg(long)]
    source: String,
    /// Where to POST (default: the server's listen address and the source's path).
    #[arg(long)]
    url: Option<String>,
    /// The event name, put where the sender puts it (e.g. X-GitHub-Event).
    #[arg(long)]
    event: Option<String>,
    /// An extra header, `Name: value` (repeatable).
    #[arg(long = "header", value_name = "K:V")]
    headers: Vec<String>,
    #[command(flatten)]
    settings: super::serve::SettingsArgs,
    /// The body to send, byte for byte.
    payload_file: PathBuf,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let settings = args.settings.resolve(Default::default())?;
    let Some(set) = super::load_rules(&settings.rules) else {
        return Ok(ExitCode::FAILURE);
    };
    let Some(source) = set.source(&args.source) else {
        bail!(
            "no source named `{}` in {}",
            args.source,
            settings.rules.display()
        );
    };
    let body = std::fs::read(&args.payload_file)
        .with_context(|| format!("cannot read {}", args.payload_file.display()))?;
    let url = args.url.clone().unwrap_or_else(|| {
        let host = match settings.listen.ip() {
            ip if ip.is_unspecified() => "127.0.0.1".to_string(),
            ip => ip.to_string(),
        };
        format!("http://{host}:{}{}", settings.listen.port(), source.path)
    });
    let content_type = guess_content_type(&body);
    let mut headers: Vec<(String, String)> = vec![("Content-Type".into(), content_type.into())];
    headers.extend(sender_headers(source, args.event.as_deref()));
    let now = chrono::Utc::now().timestamp();
    let url = match &source.verify {
        Some(config) => {
            let signed =
                crate::verify::sign(config, &body, now, &url).context("cannot sign the payload")?;
            headers.extend(signed.headers);
            signed.url
        }
        None => url,
    };
    // `--header` wins: it replaces a generated header of the same name
    // (a fixed delivery id to test dedupe) instead of adding a second one.
    for h in &args.headers {
        let (name, value) = super::explain::parse_header(h)?;
        headers.retain(|(k, _)| !k.eq_ignore_ascii_case(&name));
        headers.push((name, value));
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let (status, text) = runtime.block_on(async {
        let client = reqwest::Client::new();
        let mut req = client.post(&url).body(body);
        for (k, v) in &headers {
            req = req.header(k, v);
        }
        let resp = req
            .send()
            .await
            .with_context(|| format!("cannot reach {url} (is `hookflow serve` running?)"))?;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        anyhow::Ok((status, text))
    })?;
    println!(
        "{} {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    );
    if !text.is_empty() {
        println!("{text}");
    }
    Ok(if status.is_success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// JSON when it parses as JSON, else a form body.
fn guess_content_type(body: &[u8]) -> &'static str {
    match parse_body(None, body) {
        Ok(serde_json::Value::Null) if !body.iter().all(u8::is_ascii_whitespace) => {
            "application/x-www-form-urlencoded"
        }
        _ => "application/json",
    }
}

/// The headers a real sender adds besides its signature: the event name
/// and a fresh delivery id where the sender has them.
fn sender_headers(source: &Source, event: Option<&str>) -> Vec<(String, String)> {
    let id = ulid::Ulid::new().to_string();
    // A source's own `event:` rule says where the name goes (a header it
    // names, or the body, which the payload file already holds).
    let (mut out, scheme_event) = match (&source.event, event) {
        (Some(Extract::Header(name)), Some(event)) => {
            (vec![(name.clone(), event.to_string())], None)
        }
        (Some(_), _) => (Vec::new(), None),
        (None, event) => (Vec::new(), event),
    };
    if let Some(scheme) = &source.verifier {
        out.extend(scheme.sender_headers(scheme_event, &id));
    }
    out
}
