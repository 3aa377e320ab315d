//! `hookflow serve`: load the rules, open the store, start the workers and
//! the HTTP server, and stop gracefully on SIGTERM/SIGINT.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;

use crate::config::{Layer, LogFormat, Settings};
use crate::engine::{Engine, EngineConfig};
use crate::reload::Reloader;
use crate::server::{self, AppState};
use crate::shutdown;

/// Every setting of hookflow.yaml can be given here too (flag > env > file).
#[derive(Debug, Default, clap::Args)]
pub struct SettingsArgs {
    /// The settings file (default: ./hookflow.yaml if present).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The rules directory (default ./rules).
    #[arg(long, value_name = "DIR")]
    pub rules: Option<String>,
    /// sqlite://PATH (default sqlite://hookflow.db) or postgres://…
    #[arg(long = "db", value_name = "URL")]
    pub db: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    common: SettingsArgs,
    /// Address to listen on (default 127.0.0.1:8080).
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// Watch the rules by polling (NFS, some container mounts).
    #[arg(long)]
    poll: bool,
    /// Runs executed at once (default 16; 0: receive only, run nothing).
    #[arg(long)]
    workers: Option<String>,
    /// Largest accepted body (default 1MiB).
    #[arg(long, value_name = "SIZE")]
    max_body: Option<String>,
    /// How long a resend is recognised (default 7d).
    #[arg(long, value_name = "DURATION")]
    dedupe_window: Option<String>,
    /// How long deliveries and runs are kept (default 30d).
    #[arg(long, value_name = "DURATION")]
    retention: Option<String>,
    /// How long in-flight steps may finish on shutdown (default 30s).
    #[arg(long, value_name = "DURATION")]
    shutdown_grace: Option<String>,
    /// Proxies whose X-Forwarded-For is believed (comma-separated CIDRs).
    #[arg(long, value_name = "CIDRS", value_delimiter = ',')]
    trusted_proxies: Option<Vec<String>>,
    /// Bearer token required by /api and /ui.
    #[arg(long, value_name = "TOKEN")]
    admin_token: Option<String>,
    /// text or json.
    #[arg(long, value_name = "FORMAT")]
    log_format: Option<String>,
}

impl SettingsArgs {
    /// Resolves settings: defaults < hookflow.yaml < HOOKFLOW_* < flags.
    pub fn resolve(&self, mut flags: Layer) -> anyhow::Result<Settings> {
        let mut layers = Vec::new();
        match &self.config {
            Some(path) => layers.push(("the settings file", Layer::from_file(path)?)),
            None => {
                let default = PathBuf::from("hookflow.yaml");
                if default.exists() {
                    layers.push(("hookflow.yaml", Layer::from_file(&default)?));
                }
            }
        }
        layers.push((
            "the environment",
            Layer::from_env(&|name| std::env::var(name).ok()),
        ));
        flags.rules = self.rules.clone();
        flags.database = self.db.clone();
        layers.push(("the command line", flags));
        Ok(Settings::resolve(&layers)?)
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let flags = Layer {
        listen: args.listen,
        workers: args.workers,
        max_body: args.max_body,
        dedupe_window: args.dedupe_window,
        retention: args.retention,
        shutdown_grace: args.shutdown_grace,
        trusted_proxies: args.trusted_proxies,
        admin_token: args.admin_token,
        log_format: args.log_format,
        poll: args.poll.then(|| "true".to_string()),
        ..Layer::default()
    };
    let settings = args.common.resolve(flags)?;
    init_logging(settings.log_format);
    let Some(rules) = super::load_rules(&settings.rules) else {
        return Ok(ExitCode::FAILURE);
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(serve(settings, rules))?;
    Ok(ExitCode::SUCCESS)
}

async fn serve(settings: Settings, rules: crate::rules::RuleSet) -> anyhow::Result<()> {
    let settings = Arc::new(settings);
    let store = crate::store::open(&settings.database)
        .await
        .with_context(|| format!("cannot open the database {}", settings.database))?;
    let reloader = Reloader::new(settings.rules.clone(), rules);
    let (trigger, shutdown) = shutdown::channel();
    let _watcher = reloader
        .watch(settings.poll, shutdown.clone())
        .context("cannot watch the rules directory")?;
    let _sighup = reloader
        .reload_on_sighup(shutdown.clone())
        .context("cannot listen for SIGHUP")?;

    let (engine, workers) = Engine::start(
        store.clone(),
        reloader.rules(),
        EngineConfig {
            workers: settings.workers,
            shutdown_grace: settings.shutdown_grace,
            node_id: format!("{}-{}", hostname(), ulid::Ulid::new()),
        },
        shutdown.clone(),
    );
    let on_queued: server::OnQueued = Arc::new(move || engine.notify());
    let _retention = crate::retention::spawn(store.clone(), settings.retention, shutdown.clone());
    let state = Arc::new(AppState::new(
        reloader.clone(),
        store.clone(),
        settings.clone(),
        on_queued,
    ));
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("cannot listen on {}", settings.listen))?;
    let address = listener.local_addr().unwrap_or(settings.listen);
    tracing::info!(%address, rules = %settings.rules.display(), database = %settings.database, "hookflow listening");

    tokio::spawn(async move {
        wait_for_stop_signal().await;
        tracing::info!("shutting down: no new requests; finishing what is in flight");
        trigger.trigger();
    });
    server::serve(listener, state, shutdown)
        .await
        .context("the HTTP server failed")?;
    // The workers finish in-flight steps within shutdown_grace.
    if workers.await.is_err() {
        tracing::error!("the workers stopped abnormally");
    }
    tracing::info!("stopped");
    Ok(())
}

/// This machine's name, for lease owners (falls back to "hookflow").
fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "hookflow".to_string())
}

/// SIGTERM or SIGINT (Ctrl-C).
async fn wait_for_stop_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

fn init_logging(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("hookflow=info,warn"));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    // A subscriber already set (tests) is fine.
    drop(result);
}
