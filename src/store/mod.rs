//! The run log and queue: deliveries, runs, attempts and match traces, behind
//! one [`Store`] trait (`backend.rs`; its data in `records.rs`, its error in
//! `error.rs`) with one directory per backend (`sqlite/` for one node,
//! `postgres/` for many).
//!
//! The contract every backend keeps (SPEC §4, §5):
//! - [`Store::accept`] commits a delivery, its match trace and one queued run
//!   per matching rule in ONE transaction, and returns only after the commit
//!   succeeded — the server answers the sender only then.
//! - Duplicates (same source and dedupe key inside the window) write nothing.
//! - Rejected requests are logged without body or headers, except a 422
//!   (payload against the source's schema): its sender proved it holds the
//!   secret, so its request is kept to be inspected and replayed.
//!
//! Everything crossing this boundary is plain data: ids are ULID text,
//! timestamps are unix milliseconds, JSON is a [`serde_json::Value`] (stored
//! as TEXT so the schema stays portable to PostgreSQL).

use std::sync::Arc;

pub mod audit;
mod backend;
pub mod control;
pub mod copy;
mod encode;
mod error;
pub mod nodes;
pub mod postgres;
mod records;
pub mod sqlite;
pub mod stats;

pub use audit::{ActionKind, Actor, OperatorAction, Via};
pub use backend::Store;
pub use control::{
    CANCELLED_BY_OPERATOR, CancelOutcome, MAX_LEASE_EXPIRIES, Release, Renewal, StepSaved,
    WORKER_LOST,
};
pub(crate) use error::Context;
pub use error::StoreError;
pub use nodes::{NodeInfo, NodeRecord};
pub use postgres::PostgresStore;
pub use records::*;
pub use sqlite::{SqliteOptions, SqliteStore, Synchronous};

/// Result type of every store operation.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Open the store named by a database URL (SPEC §7 `database`).
///
/// `sqlite://path[?synchronous=full]` opens (and creates and migrates) a
/// SQLite file; `postgres://…` (or `postgresql://…`) connects to a
/// PostgreSQL database shared by many nodes and applies its migrations.
pub async fn open(url: &str) -> Result<Arc<dyn Store>> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let store = PostgresStore::open(url).await?;
        return Ok(Arc::new(store));
    }
    if url.starts_with("sqlite:") {
        let (path, options) = SqliteOptions::from_url(url)?;
        let store = SqliteStore::open(path, options).await?;
        return Ok(Arc::new(store));
    }
    Err(StoreError::Url {
        url: url.to_owned(),
        reason: "expected sqlite://path or postgres://…".to_owned(),
    })
}
