//! The store's side of steering runs (SPEC §5): what a lease heartbeat
//! learns, how a worker gives a run back, and what a cancel did. Plain data,
//! shared by every backend.

use serde::Serialize;

use super::{RunRecord, RunStatus};

/// The error of a cancelled run, and of the attempt it interrupted.
pub const CANCELLED_BY_OPERATOR: &str = "cancelled by operator";

/// The error of a run whose lease expired [`MAX_LEASE_EXPIRIES`] times
/// without a step recorded.
pub const WORKER_LOST: &str = "worker lost";

/// A run whose lease expired this many times since its last recorded step
/// is failed instead of leased again.
pub const MAX_LEASE_EXPIRIES: u32 = 3;

/// What [`super::Store::renew_leases`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Renewal {
    /// The runs asked about that the node still holds, now extended.
    pub held: Vec<String>,
    /// Of those, the runs an operator asked to cancel: their workers stop.
    pub cancel_requested: Vec<String>,
}

/// What [`super::Store::record_step`] learnt besides "committed".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StepSaved {
    /// An operator asked to cancel the run: the worker must not start its
    /// next step. (A run written back to wait for a retry is cancelled by
    /// the store at once instead.)
    pub cancel_requested: bool,
}

/// How [`super::Store::release_runs`] gives leases back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Release {
    /// The runs were never handed to a worker: they are due again at once
    /// and nothing is counted.
    Untouched,
    /// Their worker was lost mid-run (it panicked): the lease ends now and
    /// counts as expired, so a step that kills its worker every time ends
    /// the run `failed` after [`MAX_LEASE_EXPIRIES`].
    WorkerLost,
}

/// What [`super::Store::cancel_run`] did.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum CancelOutcome {
    /// Queued, or waiting for a retry: now `cancelled`.
    Cancelled {
        run: Box<RunRecord>,
    },
    /// A worker holds it: marked, and the worker stops it within seconds
    /// (its step is interrupted and recorded as cancelled).
    Requested {
        run: Box<RunRecord>,
    },
    /// Cancelled before (or its cancel is already requested): nothing done.
    AlreadyCancelled {
        run: Box<RunRecord>,
    },
    /// It finished `succeeded` or `failed`: nothing to cancel.
    Finished {
        status: RunStatus,
    },
    NotFound,
}
