//! Cancelling runs (SPEC §5), shared by `hookflow cancel` and
//! `POST /api/runs/{id}/cancel`. The store decides; a run a worker holds is
//! stopped by that worker, on whichever node, at its next lease heartbeat
//! (within about a second) — the server that took the request also
//! signals its own workers at once.

use std::sync::Arc;

use chrono::Utc;
use serde::Serialize;

use super::OpsError;
use crate::store::{ActionKind, Actor, CancelOutcome, RunRecord, Store};

/// What [`cancel`] did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cancelled {
    /// The run after the cancel.
    pub run: RunRecord,
    pub outcome: CancelState,
}

/// Where the cancel stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CancelState {
    /// The run is `cancelled` now (it was queued or waiting for a retry).
    Cancelled,
    /// A worker holds it; it stops the run within seconds.
    Requested,
    /// Cancelled before: nothing done (cancelling twice is harmless).
    AlreadyCancelled,
}

impl CancelState {
    pub fn as_str(self) -> &'static str {
        match self {
            CancelState::Cancelled => "cancelled",
            CancelState::Requested => "requested",
            CancelState::AlreadyCancelled => "already_cancelled",
        }
    }
}

/// Cancels run `run_id`: a queued or waiting run at once, a running one by
/// its worker. A finished run is refused ([`OpsError::NotCancellable`]).
pub async fn cancel(
    store: &Arc<dyn Store>,
    run_id: &str,
    actor: &Actor,
) -> Result<Cancelled, OpsError> {
    let now = Utc::now().timestamp_millis();
    let (run, outcome) = match store.cancel_run(run_id, now).await? {
        CancelOutcome::Cancelled { run } => {
            crate::metrics::run_finished(&run.rule, crate::store::RunStatus::Cancelled);
            (run, CancelState::Cancelled)
        }
        CancelOutcome::Requested { run } => (run, CancelState::Requested),
        CancelOutcome::AlreadyCancelled { run } => (run, CancelState::AlreadyCancelled),
        CancelOutcome::Finished { status } => {
            return Err(OpsError::NotCancellable {
                id: run_id.to_owned(),
                status,
            });
        }
        CancelOutcome::NotFound => {
            return Err(OpsError::NotFound {
                what: "run",
                id: run_id.to_owned(),
            });
        }
    };
    if outcome != CancelState::AlreadyCancelled {
        let detail = serde_json::json!({ "outcome": outcome.as_str() });
        super::audit(store, ActionKind::Cancel, run_id, actor, detail).await;
    }
    Ok(Cancelled { run: *run, outcome })
}
