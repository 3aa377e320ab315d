//! `hookflow serve`: load the rules, open the store, start the workers and
//! the HTTP server, and stop gracefully on SIGTERM/SIGINT.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};

use crate::app::App;
use crate::config::{Layer, LogFormat, Settings};

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
    /// Address to receive webhooks on (default 127.0.0.1:8080; `:8080` for
    /// every interface).
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// The admin surface's own loopback listener (default 127.0.0.1:9090;
    /// `off` for none).
    #[arg(long, value_name = "ADDR")]
    admin_listen: Option<String>,
    /// Try the rules on this machine: loopback addresses only, and verifier
    /// secrets may come from their public `${NAME:-default}`.
    #[arg(long)]
    dev: bool,
    /// Watch the rules by polling (NFS, some container mounts).
    #[arg(long)]
    poll: bool,
    /// Runs executed at once (default 16; 0: receive only, run nothing).
    #[arg(long)]
    workers: Option<String>,
    /// Serve the sources' paths (default true; false: a worker-only node
    /// answering only /healthz, /readyz, /metrics, /api and /ui).
    #[arg(long, value_name = "BOOL")]
    receive: Option<String>,
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
    /// Bearer token for /api, /ui and /metrics; they are then served on
    /// the main listener too. Visible in `ps`: prefer --admin-token-file.
    #[arg(long, value_name = "TOKEN")]
    admin_token: Option<String>,
    /// A file holding the admin token (one trailing newline is ignored).
    #[arg(long, value_name = "FILE")]
    admin_token_file: Option<String>,
    /// The URL senders use to reach this server (its host is accepted on
    /// the admin listener).
    #[arg(long, value_name = "URL")]
    public_url: Option<String>,
    /// Serve HTTPS: the PEM certificate chain (with --tls-key).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<String>,
    /// Serve HTTPS: the PEM private key (with --tls-cert).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<String>,
    /// text or json.
    #[arg(long, value_name = "FORMAT")]
    log_format: Option<String>,
}

impl SettingsArgs {
    /// Resolves settings: defaults < hookflow.yaml < HOOKFLOW_* < flags.
    pub fn resolve(&self, mut flags: Layer) -> anyhow::Result<Settings> {
        let mut layers = Vec::new();
        match &self.config {
            Some(path) => layers.push(Layer::from_file(path)?),
            None => {
                let default = PathBuf::from("hookflow.yaml");
                if default.exists() {
                    layers.push(Layer::from_file(&default)?);
                }
            }
        }
        layers.push(Layer::from_env(&|name| std::env::var(name).ok()));
        flags
            .flag("rules", self.rules.clone())
            .flag("database", self.db.clone());
        layers.push(flags);
        Ok(Settings::resolve(&layers)?)
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut flags = Layer::default();
    flags
        .flag("listen", args.listen)
        .flag("admin_listen", args.admin_listen)
        .flag("workers", args.workers)
        .flag("receive", args.receive)
        .flag("max_body", args.max_body)
        .flag("dedupe_window", args.dedupe_window)
        .flag("retention", args.retention)
        .flag("shutdown_grace", args.shutdown_grace)
        .flag("trusted_proxies", args.trusted_proxies.map(|p| p.join(",")))
        .flag("admin_token", args.admin_token)
        .flag("admin_token_file", args.admin_token_file)
        .flag("public_url", args.public_url)
        .flag(
            "tls",
            args.tls_cert
                .zip(args.tls_key)
                .map(|(cert, key)| format!("cert={cert},key={key}")),
        )
        .flag("log_format", args.log_format)
        .flag("poll", args.poll.then_some("true"));
    let settings = args.common.resolve(flags)?;
    // Flushes buffered log lines when `run` returns.
    let _log = init_logging(settings.log_format);
    let Some(rules) = super::load_rules(&settings.rules) else {
        return Ok(ExitCode::FAILURE);
    };
    guard_development_defaults(&settings, &rules, args.dev)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(serve(settings, rules, args.dev))?;
    Ok(ExitCode::SUCCESS)
}

/// SPEC §10: a verifier secret that came from a `${NAME:-default}` default
/// is public (it is printed in the rules), so anyone could forge a
/// delivery. `serve` refuses it unless `--dev`, which in turn serves on
/// loopback addresses only.
fn guard_development_defaults(
    settings: &Settings,
    rules: &crate::rules::RuleSet,
    dev: bool,
) -> anyhow::Result<()> {
    let defaulted = rules.defaulted_secrets();
    if dev {
        for (name, address) in [
            ("listen", Some(settings.listen)),
            ("admin_listen", settings.admin_listen),
        ] {
            if let Some(address) = address
                && !address.ip().is_loopback()
            {
                bail!(
                    "--dev serves on loopback addresses only, but {name} is {address}. Use 127.0.0.1:PORT, or run without --dev."
                );
            }
        }
        for secret in defaulted {
            tracing::warn!(variable = %secret.variable, at = %secret.loc, "development mode: a verifier secret uses its public default; set the variable before serving for real");
        }
        return Ok(());
    }
    if let Some(first) = defaulted.first() {
        let names: Vec<&str> = defaulted.iter().map(|s| s.variable.as_str()).collect();
        bail!(
            "{}: the verifier secret comes from the default of ${{{}}}, which is public. Set {} in the environment, or run `hookflow serve --dev` to try the rules on this machine.",
            first.loc,
            first.variable,
            names.join(", ")
        );
    }
    Ok(())
}

async fn serve(settings: Settings, rules: crate::rules::RuleSet, dev: bool) -> anyhow::Result<()> {
    let app = App::build(settings, rules).await?;
    app.reloader.refuse_defaulted_secrets(!dev);
    let trigger = app.trigger();
    // Registered before the start line is logged: a SIGTERM sent as soon as
    // the server says it listens must stop it gracefully, not kill it.
    let stop = stop_signals().context("cannot listen for SIGTERM")?;
    tokio::spawn(async move {
        stop.await;
        tracing::info!("shutting down: no new requests; finishing what is in flight");
        trigger.trigger();
    });
    app.run().await;
    Ok(())
}

/// SIGTERM or SIGINT (Ctrl-C), both registered now; the future resolves on
/// the first.
fn stop_signals() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
}

/// Log lines go to stderr through a bounded buffer drained by a thread of
/// its own: a slow or full log pipe drops lines instead of stalling
/// requests, and a closed one (`hookflow serve | head`) is ignored instead
/// of panicking the handler that logged (SPEC: logging never takes the
/// server down). The thread writes what it drained in one go: it flushes
/// whenever its queue runs empty, so a line is out as soon as it is alone,
/// and under load one `write` can carry several lines instead of each its
/// own (docs/PERFORMANCE.md, item 12).
fn init_logging(format: LogFormat) -> Option<tracing_appender::non_blocking::WorkerGuard> {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("hookflow=info,warn"));
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(true)
        .thread_name("hookflow-log")
        .finish(IgnoreErrors(std::io::BufWriter::new(std::io::stderr())));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .log_internal_errors(false)
        .with_writer(writer);
    let result = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    // A subscriber already set (tests) is fine.
    result.ok().map(|()| guard)
}

/// A writer whose failures are swallowed: a log line that cannot be
/// written is lost, and nothing else happens.
struct IgnoreErrors<W>(W);

impl<W: std::io::Write> std::io::Write for IgnoreErrors<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let _ = self.0.write_all(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let _ = self.0.flush();
        Ok(())
    }
}
