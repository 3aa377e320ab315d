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
    /// The runs asked about that the node still holds, now extended. On
    /// PostgreSQL a run whose row is locked at that moment (its step being
    /// recorded) is left for the next renewal instead of waited for.
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

/// The rule's latest `on_failure` run, as read when one of its runs fails.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LatestHandler {
    pub id: String,
    pub status: RunStatus,
    /// When its window opened (its first due time).
    pub window_at: i64,
    pub failure: Option<super::Failure>,
}

/// Where a failure goes ([`on_failure_plan`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HandlerPlan {
    /// Into the pending (queued, never leased) run `id` of the window,
    /// which reports `failure` (the latest, with the window's count).
    Fold { id: String, failure: super::Failure },
    /// A new `on_failure` run, due (and its window opening) at `due_ms`.
    Queue { due_ms: i64 },
}

/// Decides, with the backend's per-rule serialisation held, what a
/// failure does. Without `on_failure_every` every failure queues its own
/// run, due now. With it, at most one run per window: the first failure
/// after a quiet window is reported at once; those while a window's run is
/// still pending are folded into it; the first after it started opens the
/// next window, due when the last one ends.
pub(crate) fn on_failure_plan(
    handler: &super::FailureHandler,
    latest: Option<LatestHandler>,
    now_ms: i64,
) -> HandlerPlan {
    let (Some(every), Some(latest)) = (handler.every_ms, latest) else {
        return HandlerPlan::Queue { due_ms: now_ms };
    };
    if latest.status == RunStatus::Queued {
        let folded = latest.failure.map_or(0, |f| f.count);
        return HandlerPlan::Fold {
            id: latest.id,
            failure: super::Failure {
                count: folded.saturating_add(handler.failure.count.max(1)),
                ..handler.failure.clone()
            },
        };
    }
    HandlerPlan::Queue {
        due_ms: now_ms.max(latest.window_at.saturating_add(every)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Failure, FailureHandler};

    fn handler(every_ms: Option<i64>) -> FailureHandler {
        FailureHandler {
            id: "h".into(),
            every_ms,
            failure: Failure {
                run: "r2".into(),
                step: "build".into(),
                error: "503".into(),
                attempts: 6,
                count: 1,
            },
        }
    }

    fn latest(status: RunStatus, window_at: i64, count: u32) -> Option<LatestHandler> {
        Some(LatestHandler {
            id: "h1".into(),
            status,
            window_at,
            failure: Some(Failure {
                count,
                ..handler(None).failure
            }),
        })
    }

    #[test]
    fn every_failure_has_its_own_run_without_a_window() {
        let plan = on_failure_plan(&handler(None), latest(RunStatus::Queued, 0, 1), 50);
        assert_eq!(plan, HandlerPlan::Queue { due_ms: 50 });
    }

    #[test]
    fn a_window_reports_the_first_failure_at_once_and_folds_the_rest() {
        let h = handler(Some(600_000));
        assert_eq!(
            on_failure_plan(&h, None, 50),
            HandlerPlan::Queue { due_ms: 50 }
        );
        // The first run of the window already started: the next waits for
        // the window's end.
        assert_eq!(
            on_failure_plan(&h, latest(RunStatus::Succeeded, 50, 1), 70),
            HandlerPlan::Queue { due_ms: 600_050 }
        );
        // A quiet window later: at once again.
        assert_eq!(
            on_failure_plan(&h, latest(RunStatus::Failed, 50, 1), 700_000),
            HandlerPlan::Queue { due_ms: 700_000 }
        );
        match on_failure_plan(&h, latest(RunStatus::Queued, 600_050, 4), 80) {
            HandlerPlan::Fold { id, failure } => {
                assert_eq!(id, "h1");
                assert_eq!(failure.count, 5);
                assert_eq!(failure.run, "r2");
            }
            other => panic!("expected a fold, got {other:?}"),
        }
    }
}
