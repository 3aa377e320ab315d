//! The engine: workers that lease queued runs from the store, execute their
//! steps in order, record every attempt and schedule retries (SPEC §5).
//!
//! - `dispatch.rs`: the leasing loop and the worker pool — leases due runs
//!   in batches ahead of the workers, keeps leases alive, shuts down
//!   gracefully.
//! - `run.rs`: executing one run step by step, recording each step.
//! - `held.rs`: the runs this node holds leases on (the only ones it
//!   renews), their cancel signals, and runs lost with a panicking worker.
//! - `context.rs`: which rule definition a run executes, and its delivery.
//! - `retry.rs`: which failures are retried, and when.
//!
//! Durability comes from the store, not from memory: a run's position
//! (`next_step`, attempts, outputs) is written with every step, a retry is
//! a time written on the run (it holds no worker while it waits), and a run
//! left `running` by a crash is leased again and resumes at its first
//! unfinished step (at-least-once per step).

mod context;
mod dispatch;
mod held;
pub mod retry;
mod run;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use crate::rules::SharedRules;
use crate::shutdown::Shutdown;
use crate::store::Store;

/// How the engine runs.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Runs executed at once (`workers:` in hookflow.yaml). Zero makes
    /// this node receive only: its runs wait in the store for a node (or a
    /// later start) with workers.
    pub workers: usize,
    /// On shutdown, how long steps in flight may take to finish; steps
    /// still running then are abandoned and run again after a restart.
    pub shutdown_grace: Duration,
    /// This process's name in the run log's leases (unique per node).
    pub node_id: String,
}

/// A handle to the running engine. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    shared: Arc<Shared>,
}

/// What the leasing loop and every run share.
struct Shared {
    store: Arc<dyn Store>,
    rules: SharedRules,
    node_id: String,
    /// One client for every http and slack step: its keep-alive pool is
    /// what makes many small requests cheap.
    client: reqwest::Client,
    snapshots: context::Snapshots,
    /// The runs leased by this node and not yet given back.
    held: Arc<held::Held>,
    /// Wakes the leasing loop: a run was queued, or one ended (a
    /// concurrency slot may be free).
    wake: Notify,
    shutdown: Shutdown,
}

impl Engine {
    /// Starts the engine on the current tokio runtime. The handle resolves
    /// once shutdown is complete: no lease taken any more, steps in flight
    /// finished (or abandoned after `shutdown_grace`), leases released.
    pub fn start(
        store: Arc<dyn Store>,
        rules: SharedRules,
        config: EngineConfig,
        shutdown: Shutdown,
    ) -> (Engine, tokio::task::JoinHandle<()>) {
        let shared = Arc::new(Shared {
            store,
            rules,
            node_id: config.node_id.clone(),
            client: http_client(config.workers),
            snapshots: context::Snapshots::default(),
            held: Arc::default(),
            wake: Notify::new(),
            shutdown,
        });
        let handle = if config.workers == 0 {
            tracing::info!("workers: 0, this node only receives; queued runs wait in the store");
            tokio::spawn(async {})
        } else {
            tokio::spawn(dispatch::run(shared.clone(), config))
        };
        (Engine { shared }, handle)
    }

    /// A run was just queued: look for work now rather than at the next poll.
    pub fn notify(&self) {
        self.shared.wake.notify_one();
    }

    /// An operator cancelled run `run_id`: if a worker of this node holds
    /// it, stop it now rather than at the next lease heartbeat. `false` if
    /// this node does not hold it (another node's heartbeat will see it).
    pub fn cancel_local(&self, run_id: &str) -> bool {
        self.shared.held.cancel(run_id)
    }
}

/// The concurrency key of a run of `rule` for `delivery` (keyed
/// concurrency, SPEC §5): the rule's `concurrency.key` rendered with the
/// delivery's template context, secrets redacted (it is stored and shown).
/// A key that does not render (a missing value) is logged and becomes
/// `""`: such runs share one slot rather than escape the limit.
pub fn concurrency_key(
    rules: &crate::rules::RuleSet,
    rule: &crate::rules::Rule,
    delivery: &crate::delivery::Delivery,
    run_id: &str,
) -> Option<String> {
    let template = rule.concurrency_key.as_ref()?;
    let ctx = crate::template::TemplateContext::new(delivery.template_value(
        &rule.name,
        run_id,
        serde_json::Value::Object(serde_json::Map::new()),
    ));
    Some(match rules.templates().render_text(template, &ctx) {
        Ok(key) => rules.secrets().redact(&key),
        Err(e) => {
            tracing::warn!(rule = %rule.name, error = %e, "the concurrency key does not render; the run shares the key \"\"");
            String::new()
        }
    })
}

/// The shared client. Redirects are not followed: a POST silently turned
/// into a GET elsewhere is worse than a visible 3xx failure.
fn http_client(workers: usize) -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(workers.max(1) * 2)
        .build()
        .unwrap_or_else(|e| {
            tracing::error!(error = %e, "cannot configure the HTTP client; using the defaults");
            reqwest::Client::default()
        })
}

/// A lease lasts this long unless renewed (taking another step, or the
/// leasing loop's heartbeat). It matters when a node dies without
/// releasing, or a read or worker fails in a way that could not give the
/// run back: another worker takes the run over after it.
const LEASE: Duration = Duration::from_secs(60);

/// When a lease taken or renewed now expires.
fn lease_until() -> i64 {
    now_ms().saturating_add(millis(LEASE))
}

/// Wall-clock unix milliseconds, the store's time unit.
fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}
