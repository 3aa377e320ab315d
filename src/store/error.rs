//! [`StoreError`], what every store operation fails with, and the
//! `Context` helper that names the operation on a backend error. Backend
//! neutral: an engine's error (rusqlite's, tokio-postgres's) travels boxed
//! in [`StoreError::Backend`], with the backend's judgement of whether it
//! is worth retrying; only `sqlite/` and `postgres/` name those types.

use super::Result;

/// A backend's own error, boxed.
pub type BackendError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a store operation failed. `op` names the operation ("accept
/// delivery", "list deliveries", …) so a log line says what was attempted.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database URL `{url}`: {reason}")]
    Url { url: String, reason: String },

    #[error("opening database {path}: {message}")]
    Open { path: String, message: String },

    /// The database engine refused or failed the operation. `transient`:
    /// the backend judged it worth retrying (busy, connection lost,
    /// serialization failure), not a bad request. The engine's error is in
    /// the message and is not reported again as a source: a chain-walking
    /// report (the CLI's `{:#}`) would print it twice.
    #[error("{op}: {cause}")]
    Backend {
        op: &'static str,
        transient: bool,
        cause: BackendError,
    },

    #[error("{op}: no database connection: {message}")]
    Pool { op: &'static str, message: String },

    #[error(
        "the database schema is at version {found}, which needs hookflow schema version {requires} or newer; this hookflow knows version {known}: upgrade hookflow"
    )]
    SchemaIncompatible {
        found: i64,
        requires: i64,
        known: u32,
    },

    #[error("{op}: the transaction could not be committed: {message}")]
    Commit { op: &'static str, message: String },

    /// Its `cause` is in the message, not a source (as for `Backend`).
    #[error("applying database migration {version} ({name}): {cause}")]
    Migration {
        version: u32,
        name: &'static str,
        cause: BackendError,
    },

    #[error(
        "the database schema is at version {found}, newer than this hookflow knows ({known}); upgrade hookflow"
    )]
    SchemaTooNew { found: i64, known: u32 },

    #[error("{op}: invalid input: {message}")]
    Invalid { op: &'static str, message: String },

    #[error("{op}: the database writer has stopped: {message}")]
    WriterGone { op: &'static str, message: String },

    #[error("{op}: background task failed: {message}")]
    Task { op: &'static str, message: String },

    #[error(
        "{op}: run {run} is no longer leased by this node (its lease expired and it was taken over)"
    )]
    LeaseLost { op: &'static str, run: String },

    #[error("only {free} bytes are free beside the database {path} (at least {needed} needed)")]
    NoSpace {
        path: String,
        free: u64,
        needed: u64,
    },

    #[error("backup to {target}: {message}")]
    Backup { target: String, message: String },
}

impl StoreError {
    /// Worth retrying: the database was busy or briefly unreachable (a
    /// lost connection, a serialization failure, a writer that could not
    /// commit), not a bad request or a lost lease. Backends decide; the
    /// engine only asks.
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Backend { transient, .. } => *transient,
            StoreError::Commit { .. } | StoreError::Pool { .. } => true,
            _ => false,
        }
    }
}

/// Attach the operation name to a backend error (each backend implements
/// it for its engine's results).
pub(crate) trait Context<T> {
    fn ctx(self, op: &'static str) -> Result<T>;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The CLI reports errors with anyhow's `{:#}`, which walks sources: the
    /// engine's message, already in ours, must not come out twice.
    #[test]
    fn a_chain_walking_report_names_the_engine_s_error_once() {
        let engine = "no such table: deliveries";
        let errors = [
            StoreError::Backend {
                op: "get delivery",
                transient: false,
                cause: engine.into(),
            },
            StoreError::Migration {
                version: 12,
                name: "trace_excluded",
                cause: engine.into(),
            },
        ];
        for error in errors {
            let report = format!("{:#}", anyhow::Error::new(error).context("hookflow show"));
            assert_eq!(report.matches(engine).count(), 1, "{report}");
        }
    }
}
