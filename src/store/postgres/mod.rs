//! The PostgreSQL backend (SPEC §9): any number of hookflow nodes share one
//! run log and one queue.
//!
//! - `accept` is one transaction; dedupe is race-free across nodes through
//!   the `dedupe` table's primary key (`deliveries.rs`).
//! - Workers lease with `FOR UPDATE SKIP LOCKED`; per-rule concurrency is
//!   (per key too) counted under a transaction advisory lock, so it holds across
//!   nodes; lease times come from PostgreSQL's clock (`queue.rs`).
//! - Idle workers are woken by `LISTEN/NOTIFY` (`listen.rs`) on a channel
//!   named after the schema; the engine's polling stays as the fallback.
//! - Migrations are versioned and applied under an advisory lock
//!   (`migrate.rs`). A schema marked incompatible with this build does not
//!   stop the process: every operation fails with
//!   [`StoreError::SchemaIncompatible`] (so `/readyz` and senders get 503
//!   and nothing is leased) and the schema is checked again every
//!   [`SCHEMA_RECHECK`] until it is compatible (`SchemaGate`).
//!
//! Connections come from a deadpool pool; the URL's `options` (for example
//! `?options=-csearch_path%3Dteam_a`) choose the schema, which also names the
//! channel and the advisory locks, so several run logs can share a database.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

pub(crate) use super::encode::to_json;
use deadpool_postgres::{
    GenericClient, Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime,
};
use tokio::sync::Notify;
use tokio_postgres::NoTls;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::{
    AcceptOutcome, AttemptRecord, CancelOutcome, DeliveryFilter, DeliveryRecord, DeliverySummary,
    LeaseRequest, Leased, NewDelivery, NewRun, Rejected, Release, Renewal, Result, RetryOutcome,
    RunFilter, RunRecord, StepRecord, StepSaved, Store, StoreError,
};
use super::{NodeInfo, NodeRecord};

mod accepts;
mod attempts;
mod audit;
mod batch;
mod cancel;
mod deliveries;
mod failure;
mod listen;
mod migrate;
mod nodes;
mod queue;
mod raw;
mod runs;
mod stats;
mod steps;

pub use raw::PostgresTarget;
/// PostgreSQL's clock in unix milliseconds, for SQL text. Lease times and
/// "due" decisions use it, never a node's clock (SPEC §9).
pub(crate) const NOW_MS: &str = "(extract(epoch from clock_timestamp()) * 1000)::bigint";

/// Connections per node: workers, receivers and readers share them.
const POOL_SIZE: usize = 16;

/// How long a caller waits for a connection before its operation fails
/// (the server then answers 503 rather than hang).
const POOL_WAIT: Duration = Duration::from_secs(5);

/// How often a node kept out by an incompatible schema looks again.
pub const SCHEMA_RECHECK: Duration = Duration::from_secs(2);

/// Set while the database's schema is marked incompatible with this build:
/// (the schema's version, the oldest build version it works with), and when
/// that was last checked.
#[derive(Debug, Default)]
struct SchemaGate {
    blocked: Option<(i64, i64)>,
    checked: Option<Instant>,
}

/// The PostgreSQL [`Store`]. Cheap to share behind an `Arc`.
pub struct PostgresStore {
    pool: Pool,
    /// The schema every connection works in (`current_schema()`).
    schema: String,
    /// Tells every node (this one at once) that runs are due, after the
    /// commit; its `NOTIFY` channel is named after the schema.
    announcer: Arc<listen::Announcer>,
    announcing: tokio::task::JoinHandle<()>,
    /// Accepts written together (`accepts.rs`).
    accepts: batch::Batcher<accepts::Accepts>,
    /// Step records written together (`steps.rs`).
    steps: batch::Batcher<steps::Steps>,
    /// Notified when another node (or this one) queued or freed work.
    wake: Arc<Notify>,
    listener: tokio::task::JoinHandle<()>,
    /// Closed while the schema is incompatible with this build.
    gate: Mutex<SchemaGate>,
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        self.listener.abort();
        self.announcing.abort();
    }
}

impl PostgresStore {
    /// Connect, apply pending migrations (under the migration lock) and
    /// start listening for work. Fails with one line naming host, port and
    /// reason (never the password) when the database is unreachable.
    pub async fn open(url: &str) -> Result<PostgresStore> {
        let config: tokio_postgres::Config = url.parse().map_err(|e| StoreError::Url {
            url: redact(url),
            reason: format!("not a PostgreSQL URL: {e}"),
        })?;
        let target = describe(&config);
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(POOL_WAIT))
            .create_timeout(Some(POOL_WAIT))
            .build()
            .map_err(|e| StoreError::Open {
                path: target.clone(),
                message: e.to_string(),
            })?;
        let mut client = pool.get().await.map_err(|e| StoreError::Open {
            path: target.clone(),
            message: pool_reason(&e),
        })?;
        let schema: Option<String> = client
            .query_one("SELECT current_schema()", &[])
            .await
            .map_err(|e| StoreError::Open {
                path: target.clone(),
                message: e.to_string(),
            })?
            .get(0);
        let schema = schema.ok_or_else(|| StoreError::Open {
            path: target.clone(),
            message: "no schema of the search_path exists (create it first)".to_owned(),
        })?;
        let mut gate = SchemaGate::default();
        match migrate::apply(&mut client, &schema).await {
            Ok(()) => {}
            Err(StoreError::SchemaIncompatible {
                found,
                requires,
                known,
            }) => {
                tracing::error!(
                    database_schema = found,
                    requires,
                    this_build_schema = known,
                    "{}; this node stays unready (/readyz 503, no deliveries accepted, no runs leased) and checks again every {}s",
                    StoreError::SchemaIncompatible {
                        found,
                        requires,
                        known
                    },
                    SCHEMA_RECHECK.as_secs()
                );
                gate.blocked = Some((found, requires));
                gate.checked = Some(Instant::now());
            }
            Err(e) => return Err(e),
        }
        drop(client);
        let channel = format!("hookflow_runs_{schema}");
        let wake = Arc::new(Notify::new());
        let listener = listen::spawn(config, channel.clone(), Arc::clone(&wake));
        let announcer = listen::Announcer::new(channel, Arc::clone(&wake));
        let announcing = announcer.spawn(pool.clone());
        let accepts = batch::Batcher::spawn(
            pool.clone(),
            accepts::Accepts {
                announcer: Arc::clone(&announcer),
            },
        );
        let steps = batch::Batcher::spawn(
            pool.clone(),
            steps::Steps {
                announcer: Arc::clone(&announcer),
                schema: schema.clone(),
            },
        );
        Ok(PostgresStore {
            pool,
            schema,
            announcer,
            announcing,
            accepts,
            steps,
            wake,
            listener,
            gate: Mutex::new(gate),
        })
    }

    /// The schema this store works in.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// A pooled connection, or a `Pool` error naming `op`; or
    /// [`StoreError::SchemaIncompatible`] while the schema is.
    async fn conn(&self, op: &'static str) -> Result<Object> {
        let mut client = self.pool.get().await.map_err(|e| StoreError::Pool {
            op,
            message: pool_reason(&e),
        })?;
        self.check_schema(&mut client).await?;
        Ok(client)
    }

    /// The schema is not marked incompatible (no connection needed to
    /// tell; [`check_schema`](Self::check_schema) looks again when it is).
    fn schema_open(&self) -> bool {
        let gate = self.gate.lock().unwrap_or_else(PoisonError::into_inner);
        gate.blocked.is_none()
    }

    /// Open unless the schema is marked incompatible with this build; then
    /// looked at again (at most every [`SCHEMA_RECHECK`]), applying what
    /// this build knows once it is compatible.
    async fn check_schema(&self, client: &mut Object) -> Result<()> {
        let known = migrate::known();
        {
            let gate = self.gate.lock().unwrap_or_else(PoisonError::into_inner);
            let Some((found, requires)) = gate.blocked else {
                return Ok(());
            };
            if gate.checked.is_some_and(|at| at.elapsed() < SCHEMA_RECHECK) {
                return Err(StoreError::SchemaIncompatible {
                    found,
                    requires,
                    known,
                });
            }
        }
        let result = migrate::apply(client, &self.schema).await;
        let mut gate = self.gate.lock().unwrap_or_else(PoisonError::into_inner);
        gate.checked = Some(Instant::now());
        match result {
            Ok(()) => {
                if gate.blocked.take().is_some() {
                    tracing::info!(
                        this_build_schema = known,
                        "the database schema is compatible with this build again; ready"
                    );
                }
                Ok(())
            }
            Err(StoreError::SchemaIncompatible {
                found, requires, ..
            }) => {
                gate.blocked = Some((found, requires));
                Err(StoreError::SchemaIncompatible {
                    found,
                    requires,
                    known,
                })
            }
            Err(e) => Err(e),
        }
    }
}

#[async_trait::async_trait]
impl Store for PostgresStore {
    async fn accept(
        &self,
        delivery: NewDelivery,
        runs: Vec<NewRun>,
        dedupe_window_ms: i64,
    ) -> Result<AcceptOutcome> {
        let accept = deliveries::Accept::encode(delivery, runs, dedupe_window_ms)?;
        if self.schema_open() {
            return self.accepts.submit(accept).await;
        }
        let conn = self.conn(deliveries::ACCEPT).await?;
        accepts::apply_one(&conn, &accept, &self.announcer).await
    }

    async fn record_rejected(&self, rejected: Rejected) -> Result<()> {
        let conn = self.conn(deliveries::REJECT).await?;
        deliveries::reject(&conn, rejected).await
    }

    async fn get_delivery(&self, id: &str) -> Result<Option<DeliveryRecord>> {
        let conn = self.conn(deliveries::GET).await?;
        deliveries::get(&conn, id).await
    }

    async fn runs_for_delivery(&self, delivery_id: &str) -> Result<Vec<RunRecord>> {
        let conn = self.conn(runs::FOR_DELIVERY).await?;
        runs::for_delivery(&conn, delivery_id).await
    }

    async fn list_deliveries(&self, filter: DeliveryFilter) -> Result<Vec<DeliverySummary>> {
        let conn = self.conn(deliveries::LIST).await?;
        deliveries::list(&conn, &filter).await
    }

    async fn check_writable(&self) -> Result<()> {
        const OP: &str = "check database writable";
        let conn = self.conn(OP).await?;
        let node = format!("{}:{}", hostname(), std::process::id());
        conn.execute(
            &format!(
                "INSERT INTO heartbeat (node, beat_at) VALUES ($1, {NOW_MS})
                 ON CONFLICT (node) DO UPDATE SET beat_at = excluded.beat_at"
            ),
            &[&node],
        )
        .await
        .pg(OP)?;
        Ok(())
    }

    async fn queue_depth(&self) -> Result<u64> {
        let conn = self.conn(runs::QUEUE_DEPTH).await?;
        runs::queue_depth(&conn).await
    }

    async fn lease_runs(&self, request: LeaseRequest) -> Result<Leased> {
        let mut conn = self.conn(queue::LEASE).await?;
        queue::lease(&mut conn, &self.schema, &request).await
    }

    async fn record_step(&self, record: StepRecord) -> Result<StepSaved> {
        let step = steps::Step::encode(steps::RECORD, record)?;
        if self.schema_open() {
            return self.steps.submit(step).await;
        }
        let mut conn = self.conn(steps::RECORD).await?;
        steps::apply_one(&mut conn, &self.schema, &self.announcer, &step).await
    }

    async fn renew_leases(
        &self,
        node: &str,
        runs: &[String],
        now_ms: i64,
        until_ms: i64,
    ) -> Result<Renewal> {
        if runs.is_empty() {
            return Ok(Renewal::default());
        }
        let conn = self.conn(queue::RENEW).await?;
        queue::renew(&conn, node, runs, until_ms.saturating_sub(now_ms)).await
    }

    async fn release_leases(&self, node: &str, now_ms: i64) -> Result<u64> {
        let conn = self.conn(queue::RELEASE).await?;
        queue::release_all(&conn, &self.announcer, node, now_ms).await
    }

    async fn release_runs(
        &self,
        node: &str,
        runs: &[String],
        how: Release,
        now_ms: i64,
    ) -> Result<u64> {
        if runs.is_empty() {
            return Ok(0);
        }
        let conn = self.conn(queue::RELEASE).await?;
        queue::release_runs(&conn, &self.announcer, node, runs, how, now_ms).await
    }

    async fn cancel_run(&self, run_id: &str, now_ms: i64) -> Result<CancelOutcome> {
        let mut conn = self.conn(runs::CANCEL).await?;
        runs::cancel(&mut conn, run_id, now_ms).await
    }

    async fn reclaim_leases(&self, node: &str, now_ms: i64) -> Result<u64> {
        let conn = self.conn(queue::RECLAIM).await?;
        queue::reclaim(&conn, &self.announcer, node, now_ms).await
    }

    async fn get_run(&self, id: &str) -> Result<Option<RunRecord>> {
        let conn = self.conn(runs::GET).await?;
        runs::get(&conn, id, runs::GET).await
    }

    async fn list_runs(&self, filter: RunFilter) -> Result<Vec<RunRecord>> {
        let conn = self.conn(runs::LIST).await?;
        runs::list(&conn, &filter).await
    }

    async fn count_runs(&self, filter: RunFilter) -> Result<u64> {
        let conn = self.conn(runs::COUNT).await?;
        runs::count(&conn, &filter).await
    }

    async fn attempts_for_run(&self, run_id: &str) -> Result<Vec<AttemptRecord>> {
        let conn = self.conn(runs::ATTEMPTS).await?;
        runs::attempts_for_run(&conn, run_id).await
    }

    async fn queue_runs(&self, delivery_id: &str, runs: Vec<NewRun>) -> Result<()> {
        let mut conn = self.conn(runs::QUEUE_MORE).await?;
        runs::queue_more(&mut conn, &self.announcer, delivery_id, runs).await
    }

    async fn retry_run(
        &self,
        run_id: &str,
        now_ms: i64,
        redefine: Option<super::Redefinition>,
    ) -> Result<RetryOutcome> {
        let mut conn = self.conn(runs::RETRY).await?;
        runs::retry(&mut conn, &self.announcer, run_id, now_ms, redefine).await
    }

    async fn prune(&self, before_ms: i64, batch: u32) -> Result<u64> {
        let conn = self.conn(runs::PRUNE).await?;
        runs::prune(&conn, before_ms, batch).await
    }

    async fn record_operator_action(&self, action: super::OperatorAction) -> Result<()> {
        let conn = self.conn(audit::RECORD).await?;
        audit::record(&conn, &action).await
    }

    async fn operator_actions(
        &self,
        target: Option<&str>,
        limit: u32,
    ) -> Result<Vec<super::OperatorAction>> {
        let conn = self.conn(audit::LIST).await?;
        audit::list(&conn, target, limit).await
    }

    async fn overview(&self, now_ms: i64) -> Result<super::stats::Overview> {
        let conn = self.conn(stats::OVERVIEW).await?;
        stats::overview(&conn, now_ms).await
    }

    async fn beat_node(&self, node: &NodeInfo, _now_ms: i64) -> Result<()> {
        let conn = self.conn(nodes::BEAT).await?;
        nodes::beat(&conn, node).await
    }

    async fn list_nodes(&self, _now_ms: i64) -> Result<Vec<NodeRecord>> {
        let conn = self.conn(nodes::LIST).await?;
        nodes::list(&conn).await
    }

    async fn forget_nodes(&self, silent_ms: i64, _now_ms: i64) -> Result<u64> {
        let conn = self.conn(nodes::FORGET).await?;
        nodes::forget(&conn, silent_ms).await
    }

    async fn remove_node(&self, id: &str) -> Result<bool> {
        let conn = self.conn(nodes::REMOVE).await?;
        nodes::remove(&conn, id).await
    }

    fn shared(&self) -> bool {
        true
    }

    fn wakeups(&self) -> Option<Arc<Notify>> {
        Some(Arc::clone(&self.wake))
    }
}

/// A lost connection, or an error class PostgreSQL documents as worth
/// retrying: connection exceptions (08), transaction rollbacks such as
/// serialization failures and deadlocks (40), insufficient resources (53)
/// and operator intervention such as a terminated backend (57).
pub(crate) fn is_transient(e: &tokio_postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    match e.code() {
        Some(code) => ["08", "40", "53", "57"]
            .iter()
            .any(|class| code.code().starts_with(class)),
        // No SQLSTATE: transient only if talking to the server failed
        // (not a type conversion, which would fail the same way again).
        None => std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>()),
    }
}

/// Statements prepared once per pooled connection (deadpool's statement
/// cache) instead of at every call. `query(&str)` costs tokio-postgres a
/// round trip to prepare and PostgreSQL a parse and a plan every time: on
/// the ingest and worker paths that was half of the round trips.
pub(crate) trait Prepared: GenericClient + Sized {
    fn prepared_query<'a>(
        &'a self,
        sql: &'a str,
        params: &'a [&'a (dyn ToSql + Sync)],
    ) -> impl Future<Output = PgResult<Vec<Row>>> + Send + 'a {
        async move {
            let statement = self.prepare_cached(sql).await?;
            self.query(&statement, params).await
        }
    }

    fn prepared_one<'a>(
        &'a self,
        sql: &'a str,
        params: &'a [&'a (dyn ToSql + Sync)],
    ) -> impl Future<Output = PgResult<Row>> + Send + 'a {
        async move {
            let statement = self.prepare_cached(sql).await?;
            self.query_one(&statement, params).await
        }
    }

    fn prepared_opt<'a>(
        &'a self,
        sql: &'a str,
        params: &'a [&'a (dyn ToSql + Sync)],
    ) -> impl Future<Output = PgResult<Option<Row>>> + Send + 'a {
        async move {
            let statement = self.prepare_cached(sql).await?;
            self.query_opt(&statement, params).await
        }
    }

    fn prepared_execute<'a>(
        &'a self,
        sql: &'a str,
        params: &'a [&'a (dyn ToSql + Sync)],
    ) -> impl Future<Output = PgResult<u64>> + Send + 'a {
        async move {
            let statement = self.prepare_cached(sql).await?;
            self.execute(&statement, params).await
        }
    }
}

impl<C: GenericClient> Prepared for C {}

type PgResult<T> = std::result::Result<T, tokio_postgres::Error>;

/// Attach the operation name to a PostgreSQL error.
pub(crate) trait PgContext<T> {
    fn pg(self, op: &'static str) -> Result<T>;
}

impl<T> PgContext<T> for std::result::Result<T, tokio_postgres::Error> {
    fn pg(self, op: &'static str) -> Result<T> {
        self.map_err(|source| StoreError::Backend {
            op,
            transient: is_transient(&source),
            cause: Box::new(PgError(source)),
        })
    }
}

/// A tokio-postgres error that says what happened. Its own message is only
/// the kind ("db error", "error communicating with the server"); the
/// server's message and code, or the I/O error, are in its source, which a
/// log line built from `Display` would never show. This writes them too:
/// `db error: ERROR: deadlock detected (40P01)`, and so has no source of
/// its own: a report that walks the chain (`{:#}` at the CLI's edge) would
/// print the cause twice.
#[derive(Debug)]
pub(crate) struct PgError(pub(crate) tokio_postgres::Error);

impl std::fmt::Display for PgError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        if let Some(db) = self.0.as_db_error() {
            return write!(
                f,
                ": {}: {} ({})",
                db.severity(),
                db.message(),
                db.code().code()
            );
        }
        let mut cause = std::error::Error::source(&self.0);
        while let Some(e) = cause {
            write!(f, ": {e}")?;
            cause = e.source();
        }
        Ok(())
    }
}

impl std::error::Error for PgError {}

/// The name of an advisory lock for `what` in `schema` (SQL hashes it with
/// `hashtextextended`): schemas sharing a database never share a lock.
pub(crate) fn lock_key(schema: &str, what: &str) -> String {
    format!("hookflow:{schema}:{what}")
}

/// `host:port/dbname` of a config, for messages (no user, no password).
fn describe(config: &tokio_postgres::Config) -> String {
    let host = config
        .get_hosts()
        .first()
        .map(|h| match h {
            tokio_postgres::config::Host::Tcp(name) => name.clone(),
            tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
        })
        .unwrap_or_else(|| "localhost".to_owned());
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let db = config.get_dbname().unwrap_or("");
    format!("PostgreSQL at {host}:{port}/{db}")
}

/// A database URL for messages: the password replaced.
pub(crate) fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, tail) = rest.split_at(rest.find(['/', '?']).unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or("");
            let masked = if userinfo.contains(':') { ":***" } else { "" };
            format!("{scheme}://{user}{masked}@{host}{tail}")
        }
        None => url.to_owned(),
    }
}

/// Why the pool could not give a connection, with the driver's cause.
fn pool_reason(e: &deadpool_postgres::PoolError) -> String {
    use std::error::Error;
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    message
}

fn hostname() -> String {
    std::env::var("HOSTNAME").unwrap_or_else(|_| "node".to_owned())
}

/// Parse a TEXT column holding JSON, as an `Invalid` error naming `what`.
pub(crate) fn from_json<T: serde::de::DeserializeOwned>(
    op: &'static str,
    what: &str,
    text: &str,
) -> Result<T> {
    serde_json::from_str(text).map_err(|e| StoreError::Invalid {
        op,
        message: format!("stored {what} is not valid JSON: {e}"),
    })
}

/// A stored enum value, or an `Invalid` error naming it.
pub(crate) fn parse_enum<T>(
    op: &'static str,
    text: &str,
    parse: fn(&str) -> Option<T>,
) -> Result<T> {
    parse(text).ok_or_else(|| StoreError::Invalid {
        op,
        message: format!("unknown stored value `{text}`"),
    })
}

/// A BIGINT column holding a small count (step index, attempt number).
pub(crate) fn to_u32(value: i64) -> u32 {
    u32::try_from(value.max(0)).unwrap_or(u32::MAX)
}
