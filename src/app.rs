//! The app's wiring, in one place for `hookflow serve` and the tests:
//! [`App::build`] binds the listeners first (a port in use fails before
//! anything is migrated or started), then opens the store and starts the
//! engine, the rules watcher, the SIGHUP handler and retention;
//! [`App::run`] serves until the shutdown trigger and awaits every task.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, bail};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::config::Settings;
use crate::engine::{Engine, EngineConfig};
use crate::reload::Reloader;
use crate::rules::RuleSet;
use crate::server::{self, AppState, Surface, conn};
use crate::shutdown::{self, Shutdown, Trigger};
use crate::store::Store;

/// A built app: listening, with its workers started; [`App::run`] serves.
pub struct App {
    /// Where webhooks are received (the bound address, port 0 resolved).
    pub addr: SocketAddr,
    /// Where the admin surface is served, if it has its own listener.
    pub admin_addr: Option<SocketAddr>,
    pub state: Arc<AppState>,
    pub store: Arc<dyn Store>,
    pub reloader: Arc<Reloader>,
    pub engine: Engine,
    trigger: Trigger,
    shutdown: Shutdown,
    listener: TcpListener,
    admin_listener: Option<TcpListener>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    tasks: Vec<JoinHandle<()>>,
}

/// How often the tasks of a stopped app are waited for, at most, beyond
/// the shutdown grace (the watcher and retention stop at once).
const TASK_STOP_SLACK: std::time::Duration = std::time::Duration::from_secs(5);

impl App {
    /// Binds, opens and starts everything; see the module doc for the order.
    pub async fn build(settings: Settings, rules: RuleSet) -> anyhow::Result<App> {
        if settings.admin_token.is_none()
            && let Some(admin) = settings.admin_listen
            && !admin.ip().is_loopback()
        {
            bail!(
                "admin_listen {admin} is not a loopback address: with no admin_token the run log would be open to the network. Use 127.0.0.1:PORT, or set admin_token."
            );
        }
        let listener = bind(settings.listen, "listen").await?;
        let admin_listener = match settings.admin_listen {
            Some(addr) => Some(bind(addr, "admin_listen").await?),
            None => None,
        };
        // A certificate that cannot be used stops the start, before the
        // store is touched.
        let tls = match &settings.tls {
            Some(files) => Some(server::tls::acceptor(files)?),
            None => None,
        };
        let addr = listener.local_addr().unwrap_or(settings.listen);
        let admin_addr = admin_listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
            .or(settings.admin_listen);

        let settings = Arc::new(settings);
        // Before anything that counts: a counter bumped before the recorder
        // is installed is lost, and the engine (started below, on a backlog)
        // finishes runs before the HTTP state exists.
        crate::metrics::install();
        // The error names the file and the cause; no context to repeat it.
        let store = crate::store::open(settings.database.as_str()).await?;
        let reloader = Reloader::new(settings.rules.clone(), rules);
        let (trigger, shutdown) = shutdown::channel();
        let watcher = reloader
            .watch(settings.poll, store.clone(), shutdown.clone())
            .context("cannot watch the rules directory")?;
        let sighup = reloader
            .reload_on_sighup(store.clone(), shutdown.clone())
            .context("cannot listen for SIGHUP")?;
        // One id per process start: the engine's lease owner and this
        // node's row in the nodes registry.
        let node_id = format!("{}-{}", hostname(), ulid::Ulid::new());
        if !settings.receive && settings.workers == 0 {
            tracing::warn!(
                "receive: false and workers: 0: this node neither receives webhooks nor runs steps (it serves only the admin surface)"
            );
        }
        let (engine, workers) = Engine::start(
            store.clone(),
            reloader.rules(),
            EngineConfig {
                workers: settings.workers,
                shutdown_grace: settings.shutdown_grace,
                node_id: node_id.clone(),
            },
            shutdown.clone(),
        );
        if let Some(pause) = crate::faults::start_pause() {
            tokio::time::sleep(pause).await;
        }
        let identity = crate::nodes::Identity {
            id: node_id,
            listen: addr.to_string(),
            admin_listen: admin_addr.map(|a| a.to_string()),
            receive: settings.receive,
            workers: u32::try_from(settings.workers).unwrap_or(u32::MAX),
        };
        crate::nodes::register(store.as_ref(), &identity, &reloader.rules()).await;
        let heartbeat = crate::nodes::spawn(
            store.clone(),
            identity.clone(),
            reloader.rules(),
            reloader.changed(),
            shutdown.clone(),
        );
        let retention =
            crate::retention::spawn(store.clone(), settings.retention, shutdown.clone());
        let mut tasks = vec![workers, watcher, sighup, retention, heartbeat];
        if let Some(wake) = store.wakeups() {
            // Another node queued work (PostgreSQL's LISTEN/NOTIFY): the
            // idle workers lease now rather than at their next poll.
            let engine = engine.clone();
            let mut stop = shutdown.clone();
            tasks.push(tokio::spawn(async move {
                loop {
                    tokio::select! {
                        () = wake.notified() => engine.notify(),
                        () = stop.wait() => return,
                    }
                }
            }));
        }
        let tls = tls.map(|(acceptor, reloading)| {
            tasks.push(reloading.watch(shutdown.clone()));
            acceptor
        });
        let on_queued: server::OnQueued = {
            let engine = engine.clone();
            Arc::new(move || engine.notify())
        };
        let on_cancel: server::OnCancel = {
            let engine = engine.clone();
            Arc::new(move |run: &str| engine.cancel_local(run))
        };
        let state = Arc::new(
            AppState::new(reloader.clone(), store.clone(), settings, on_queued)
                .with_on_cancel(on_cancel)
                .with_node_id(identity.id),
        );
        Ok(App {
            addr,
            admin_addr,
            state,
            store,
            reloader,
            engine,
            trigger,
            shutdown,
            listener,
            admin_listener,
            tls,
            tasks,
        })
    }

    /// Pulls this app's shutdown: stop accepting, finish what is in flight.
    pub fn trigger(&self) -> Trigger {
        self.trigger.clone()
    }

    /// Serves both listeners until the trigger, then waits for requests and
    /// steps in flight (at most `shutdown_grace`) and for every task.
    pub async fn run(self) {
        let settings = self.state.settings.clone();
        let limits = conn::Limits {
            header_read: HEADER_READ_TIMEOUT,
            idle: IDLE_TIMEOUT,
            max_connections: conn::connection_cap(),
            grace: settings.shutdown_grace,
        };
        let tracker = Arc::new(conn::Tracker::default());
        tracing::info!(
            address = %self.addr,
            https = self.tls.is_some(),
            admin = %self.admin_addr.map_or_else(|| "off".to_string(), |a| a.to_string()),
            admin_on_main = settings.admin_token.is_some(),
            receive = settings.receive,
            workers = settings.workers,
            node = %self.state.node_id,
            rules = %settings.rules.display(),
            database = %settings.database,
            max_connections = limits.max_connections,
            "hookflow listening"
        );
        let mut servers = vec![tokio::spawn(server::serve(
            self.listener,
            self.state.clone(),
            Surface::Webhooks,
            limits,
            self.tls.clone(),
            tracker.clone(),
            self.shutdown.clone(),
        ))];
        if let Some(admin) = self.admin_listener {
            servers.push(tokio::spawn(server::serve(
                admin,
                self.state.clone(),
                Surface::Admin,
                limits,
                None,
                tracker,
                self.shutdown.clone(),
            )));
        }
        for server in servers {
            if server.await.is_err() {
                tracing::error!("a listener stopped abnormally");
            }
        }
        let deadline = settings.shutdown_grace + TASK_STOP_SLACK;
        for task in self.tasks {
            match tokio::time::timeout(deadline, task).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => tracing::error!("a background task stopped abnormally"),
                Err(_) => tracing::error!("a background task did not stop in time"),
            }
        }
        tracing::info!("stopped");
    }
}

/// How long a request's headers may take once they start.
const HEADER_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// How long a connection may wait for its next request.
const IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

async fn bind(addr: SocketAddr, setting: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} ({setting})"))
}

/// This machine's name, for lease owners (falls back to "hookflow").
fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "hookflow".to_string())
}
