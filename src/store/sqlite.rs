//! The SQLite backend: the embedded default (SPEC §9), one process, no setup.
//!
//! All writes go through ONE writer thread that owns the only write
//! connection and commits in groups (`writer.rs`): whatever commands are
//! waiting when it wakes are executed in one transaction and committed once
//! (measured for DEPENDENCIES.md: ~18k rows/s committing one per
//! transaction vs 50–115k rows/s batched), and it keeps SQLite's
//! single-writer rule inside this process instead of in `SQLITE_BUSY`
//! retries. WAL checkpoints run on a thread of their own
//! (`checkpoint.rs`). Reads use separate read-only connections on the
//! blocking pool (`readers.rs`); WAL lets them run while the writer commits.
//!
//! Layout: `connection.rs` (pragmas), `migrate.rs` (embedded schema),
//! `deliveries.rs` and `runs.rs` (the SQL of each table).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::de::DeserializeOwned;

use super::{
    AcceptOutcome, AttemptRecord, CancelOutcome, Context, DeliveryFilter, DeliveryRecord,
    DeliverySummary, LeaseRequest, Leased, NewDelivery, NewRun, Rejected, Release, Renewal, Result,
    RetryOutcome, RunFilter, RunRecord, StepRecord, StepSaved, Store, StoreError,
};
use super::{NodeInfo, NodeRecord};

mod attempts;
mod audit;
mod backup;
mod body;
mod cancel;
mod checkpoint;
mod connection;
mod deliveries;
mod failure;
mod migrate;
mod nodes;
mod prune;
mod queue;
mod raw;
mod readers;
mod runs;
mod space;
mod stats;
mod writer;

pub(crate) use super::encode::to_json;
pub use backup::{BackupReport, backup};
pub use raw::SqliteSource;
use readers::Readers;
use writer::Writer;

/// How hard a commit tries to reach the disk (`PRAGMA synchronous`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Synchronous {
    /// The default. With WAL, `NORMAL` does not fsync on every commit, only
    /// at checkpoints: a process crash or `kill -9` loses nothing committed
    /// (the WAL is in the OS page cache and replayed on open), but a power
    /// loss or kernel crash can lose the last commits before the next
    /// checkpoint. The database itself never corrupts either way.
    #[default]
    Normal,
    /// fsync the WAL on every commit: survives power loss too, at the cost
    /// of one fsync per group commit (`sqlite://path?synchronous=full`).
    Full,
}

impl Synchronous {
    fn pragma_value(self) -> &'static str {
        match self {
            Synchronous::Normal => "NORMAL",
            Synchronous::Full => "FULL",
        }
    }
}

/// Settings carried by a `sqlite://` URL.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SqliteOptions {
    pub synchronous: Synchronous,
}

impl SqliteOptions {
    /// Split `sqlite://path[?synchronous=normal|full]` into the file path
    /// and options. `sqlite:path` is accepted too.
    pub fn from_url(url: &str) -> Result<(PathBuf, SqliteOptions)> {
        let bad = |reason: String| StoreError::Url {
            url: url.to_owned(),
            reason,
        };
        let rest = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .ok_or_else(|| bad("expected sqlite://path".to_owned()))?;
        let (path, query) = match rest.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (rest, None),
        };
        if path.is_empty() {
            return Err(bad("the database file path is empty".to_owned()));
        }
        if path == ":memory:" || path.starts_with("file:") {
            return Err(bad(
                "in-memory and URI databases are not supported; give a file path".to_owned(),
            ));
        }
        let mut options = SqliteOptions::default();
        for pair in query.into_iter().flat_map(|q| q.split('&')) {
            if pair.is_empty() {
                continue;
            }
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match (key, value.to_ascii_lowercase().as_str()) {
                ("synchronous", "normal") => options.synchronous = Synchronous::Normal,
                ("synchronous", "full") => options.synchronous = Synchronous::Full,
                ("synchronous", other) => {
                    return Err(bad(format!(
                        "synchronous must be `normal` or `full`, not `{other}`"
                    )));
                }
                (other, _) => {
                    return Err(bad(format!(
                        "unknown parameter `{other}` (known: synchronous)"
                    )));
                }
            }
        }
        Ok((PathBuf::from(path), options))
    }
}

/// The SQLite [`Store`]. Cheap to share behind an `Arc`; dropping the last
/// handle stops the writer thread once its queue is empty.
pub struct SqliteStore {
    /// The only path to the write connection.
    writer: Writer,
    /// Read-only connections for queries, used on the blocking pool.
    readers: Arc<Readers>,
    path: PathBuf,
}

impl SqliteStore {
    /// Open (creating if needed) the database file, apply pending
    /// migrations and start the writer thread.
    pub async fn open(path: impl AsRef<Path>, options: SqliteOptions) -> Result<SqliteStore> {
        let path = path.as_ref().to_path_buf();
        let writer = Writer::start(path.clone(), options).await?;
        Ok(SqliteStore {
            writer,
            readers: Arc::new(Readers::new(path.clone())),
            path,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Transactions committed by the writer since open (migrations not
    /// counted). With group commit this grows slower than the number of
    /// writes under concurrent load.
    pub fn commit_count(&self) -> u64 {
        self.writer.commit_count()
    }
}

#[async_trait::async_trait]
impl Store for SqliteStore {
    async fn accept(
        &self,
        delivery: NewDelivery,
        runs: Vec<NewRun>,
        dedupe_window_ms: i64,
    ) -> Result<AcceptOutcome> {
        // Encode JSON here, on the caller's task, to keep the writer's
        // critical section to SQL only.
        let accept = deliveries::Accept::encode(delivery, runs, dedupe_window_ms)?;
        self.writer
            .call(deliveries::ACCEPT, move |conn| accept.apply(conn))
            .await
    }

    async fn record_rejected(&self, rejected: Rejected) -> Result<()> {
        let reject = deliveries::Reject::encode(rejected)?;
        self.writer
            .call(deliveries::REJECT, move |conn| reject.apply(conn))
            .await
    }

    async fn get_delivery(&self, id: &str) -> Result<Option<DeliveryRecord>> {
        let id = id.to_owned();
        self.readers
            .run(deliveries::GET, move |conn| deliveries::get(conn, &id))
            .await
    }

    async fn runs_for_delivery(&self, delivery_id: &str) -> Result<Vec<RunRecord>> {
        let delivery_id = delivery_id.to_owned();
        self.readers
            .run(runs::FOR_DELIVERY, move |conn| {
                runs::for_delivery(conn, &delivery_id)
            })
            .await
    }

    async fn list_deliveries(&self, filter: DeliveryFilter) -> Result<Vec<DeliverySummary>> {
        self.readers
            .run(deliveries::LIST, move |conn| {
                deliveries::list(conn, &filter)
            })
            .await
    }

    async fn check_writable(&self) -> Result<()> {
        const OP: &str = "check database writable";
        space::ensure_room(&self.path)?;
        self.writer
            .call(OP, |conn| {
                conn.prepare_cached(
                    "INSERT INTO heartbeat (node, beat_at)
                     VALUES ('local', CAST(strftime('%s', 'now') AS INTEGER) * 1000)
                     ON CONFLICT (node) DO UPDATE SET beat_at = excluded.beat_at",
                )
                .and_then(|mut stmt| stmt.execute([]))
                .ctx(OP)?;
                Ok(())
            })
            .await
    }

    async fn queue_depth(&self) -> Result<u64> {
        self.readers.run(runs::QUEUE_DEPTH, runs::queue_depth).await
    }

    async fn overview(&self, now_ms: i64) -> Result<super::stats::Overview> {
        self.readers
            .run(stats::OVERVIEW, move |conn| stats::overview(conn, now_ms))
            .await
    }

    async fn lease_runs(&self, request: LeaseRequest) -> Result<Leased> {
        let node = request.node.clone();
        let now_ms = request.now_ms;
        let lease = self
            .writer
            .call(queue::LEASE, move |conn| queue::lease(conn, &request))
            .await?;
        if lease.ids.is_empty() {
            return Ok(Leased {
                runs: Vec::new(),
                next_due_ms: lease.next_due_ms,
            });
        }
        // Committed: a reader sees the runs as leased.
        let ids = Arc::new(lease.ids);
        let read = if crate::faults::lease_read_fails() {
            Err(StoreError::Task {
                op: queue::LEASE,
                message: "injected fault: the read after leasing failed".to_owned(),
            })
        } else {
            let ids = Arc::clone(&ids);
            self.readers
                .run(queue::LEASE, move |conn| queue::load(conn, &ids))
                .await
        };
        match read {
            Ok(runs) => Ok(Leased {
                runs,
                next_due_ms: lease.next_due_ms,
            }),
            Err(e) => {
                // Nobody will work on these runs: give them back now, or
                // they would wait for their lease to expire.
                if let Err(release) = self
                    .release_runs(&node, &ids, Release::Untouched, now_ms)
                    .await
                {
                    tracing::error!(error = %release, "cannot release runs leased but not read; their leases expire instead");
                }
                Err(e)
            }
        }
    }

    async fn record_step(&self, record: StepRecord) -> Result<StepSaved> {
        // Encode JSON on the caller's task, as `accept` does.
        let record = queue::Record::encode(record)?;
        self.writer
            .call(queue::RECORD, move |conn| record.apply(conn))
            .await
    }

    async fn renew_leases(
        &self,
        node: &str,
        runs: &[String],
        _now_ms: i64,
        until_ms: i64,
    ) -> Result<Renewal> {
        if runs.is_empty() {
            return Ok(Renewal::default());
        }
        let node = node.to_owned();
        let ids = queue::id_list(queue::RENEW, runs)?;
        self.writer
            .call(queue::RENEW, move |conn| {
                queue::renew(conn, &node, &ids, until_ms)
            })
            .await
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
        let node = node.to_owned();
        let ids = queue::id_list(queue::RELEASE, runs)?;
        self.writer
            .call(queue::RELEASE, move |conn| {
                queue::release_runs(conn, &node, &ids, how, now_ms)
            })
            .await
    }

    async fn cancel_run(&self, run_id: &str, now_ms: i64) -> Result<CancelOutcome> {
        let run_id = run_id.to_owned();
        self.writer
            .call(cancel::CANCEL, move |conn| {
                cancel::cancel(conn, &run_id, now_ms)
            })
            .await
    }

    async fn release_leases(&self, node: &str, now_ms: i64) -> Result<u64> {
        let node = node.to_owned();
        self.writer
            .call(queue::RELEASE, move |conn| {
                queue::release(conn, &node, now_ms)
            })
            .await
    }

    async fn reclaim_leases(&self, _node: &str, now_ms: i64) -> Result<u64> {
        self.writer
            .call(queue::RECLAIM, move |conn| queue::reclaim(conn, now_ms))
            .await
    }

    async fn get_run(&self, id: &str) -> Result<Option<RunRecord>> {
        let id = id.to_owned();
        self.readers
            .run(runs::GET, move |conn| runs::get(conn, &id).ctx(runs::GET))
            .await
    }

    async fn list_runs(&self, filter: RunFilter) -> Result<Vec<RunRecord>> {
        self.readers
            .run(runs::LIST, move |conn| runs::list(conn, &filter))
            .await
    }

    async fn count_runs(&self, filter: RunFilter) -> Result<u64> {
        self.readers
            .run(runs::COUNT, move |conn| runs::count(conn, &filter))
            .await
    }

    async fn attempts_for_run(&self, run_id: &str) -> Result<Vec<AttemptRecord>> {
        let run_id = run_id.to_owned();
        self.readers
            .run(attempts::FOR_RUN, move |conn| {
                attempts::for_run(conn, &run_id)
            })
            .await
    }

    async fn queue_runs(&self, delivery_id: &str, runs: Vec<NewRun>) -> Result<()> {
        let queue = runs::QueueMore::encode(delivery_id, runs)?;
        self.writer
            .call(runs::QUEUE_MORE, move |conn| queue.apply(conn))
            .await
    }

    async fn retry_run(
        &self,
        run_id: &str,
        now_ms: i64,
        redefine: Option<super::Redefinition>,
    ) -> Result<RetryOutcome> {
        let run_id = run_id.to_owned();
        let redefine = redefine.map(runs::Redefine::encode).transpose()?;
        self.writer
            .call(runs::RETRY, move |conn| {
                runs::requeue_failed(conn, &run_id, now_ms, redefine.as_ref())
            })
            .await
    }

    async fn record_operator_action(&self, action: super::OperatorAction) -> Result<()> {
        let record = audit::Record::encode(action)?;
        self.writer
            .call(audit::RECORD, move |conn| record.apply(conn))
            .await
    }

    async fn operator_actions(
        &self,
        target: Option<&str>,
        limit: u32,
    ) -> Result<Vec<super::OperatorAction>> {
        let target = target.map(str::to_owned);
        self.readers
            .run(audit::LIST, move |conn| {
                audit::list(conn, target.as_deref(), limit)
            })
            .await
    }

    async fn beat_node(&self, node: &NodeInfo, now_ms: i64) -> Result<()> {
        let node = node.clone();
        self.writer
            .call(nodes::BEAT, move |conn| nodes::beat(conn, &node, now_ms))
            .await
    }

    async fn list_nodes(&self, now_ms: i64) -> Result<Vec<NodeRecord>> {
        self.readers
            .run(nodes::LIST, move |conn| nodes::list(conn, now_ms))
            .await
    }

    async fn forget_nodes(&self, silent_ms: i64, now_ms: i64) -> Result<u64> {
        self.writer
            .call(nodes::FORGET, move |conn| {
                nodes::forget(conn, silent_ms, now_ms)
            })
            .await
    }

    async fn remove_node(&self, id: &str) -> Result<bool> {
        let id = id.to_owned();
        self.writer
            .call(nodes::REMOVE, move |conn| nodes::remove(conn, &id))
            .await
    }

    async fn prune(&self, before_ms: i64, batch: u32) -> Result<u64> {
        self.writer
            .call(prune::PRUNE, move |conn| {
                prune::prune(conn, before_ms, batch)
            })
            .await
    }
}

impl<T> Context<T> for rusqlite::Result<T> {
    fn ctx(self, op: &'static str) -> Result<T> {
        self.map_err(|source| backend_error(op, source))
    }
}

/// A SQLite error as a [`StoreError::Backend`]. Every one counts as
/// transient: the writer's commands are retried by their callers (the
/// engine) and a constraint failure fails the same way again, harmlessly.
pub(crate) fn backend_error(op: &'static str, source: rusqlite::Error) -> StoreError {
    StoreError::Backend {
        op,
        transient: true,
        cause: Box::new(source),
    }
}

/// Read a JSON TEXT column, reporting bad JSON as a conversion error of
/// that column.
fn json_column<T: DeserializeOwned>(row: &rusqlite::Row<'_>, idx: usize) -> rusqlite::Result<T> {
    let text: String = row.get(idx)?;
    serde_json::from_str(&text).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(idx, rusqlite::types::Type::Text, Box::new(e))
    })
}

/// Read a TEXT column holding an enum (`status`), reporting an unknown
/// value as a conversion error of that column.
fn enum_column<T>(
    row: &rusqlite::Row<'_>,
    idx: usize,
    parse: fn(&str) -> Option<T>,
) -> rusqlite::Result<T> {
    let text: String = row.get(idx)?;
    parse(&text).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            idx,
            rusqlite::types::Type::Text,
            format!("unknown value `{text}`").into(),
        )
    })
}
