//! The [`Store`] trait: what every backend (SQLite, PostgreSQL) answers,
//! and the contract its methods keep.

use std::sync::Arc;

use super::stats;
use super::*;

/// The run log and queue. Used as `Arc<dyn Store>`; every method is one
/// round trip to the backend and every write is committed before it returns.
/// Times come from the caller (`now_ms` arguments): a backend never reads
/// the node's clock (PostgreSQL keeps lease times on its own, SPEC §9).
#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
    /// Commit a delivery, its trace and its queued runs in one transaction,
    /// unless a delivery with the same (source, dedupe key) was accepted
    /// within `dedupe_window_ms` before `delivery.received_at`; then nothing
    /// is written and the first delivery's id is returned. A window `<= 0`
    /// disables the duplicate check (the key is still recorded).
    async fn accept(
        &self,
        delivery: NewDelivery,
        runs: Vec<NewRun>,
        dedupe_window_ms: i64,
    ) -> Result<AcceptOutcome>;

    /// Log a request answered 401/403/413/429, without body or headers, or
    /// a 422 with its request ([`Rejected::kept`]).
    async fn record_rejected(&self, rejected: Rejected) -> Result<()>;

    /// A stored delivery (accepted or rejected), with body and trace.
    async fn get_delivery(&self, id: &str) -> Result<Option<DeliveryRecord>>;

    /// The runs a delivery queued, by `created_at` then id (ids from a
    /// monotonic ULID generator keep rule order).
    async fn runs_for_delivery(&self, delivery_id: &str) -> Result<Vec<RunRecord>>;

    /// Deliveries newest first, filtered and paginated by [`DeliveryFilter`].
    async fn list_deliveries(&self, filter: DeliveryFilter) -> Result<Vec<DeliverySummary>>;

    /// A real write through the writer (for `/readyz`): fails when the
    /// database cannot commit (disk full, read-only, writer gone).
    async fn check_writable(&self) -> Result<()>;

    /// Runs not finished yet (queued or running), for the metrics gauge.
    async fn queue_depth(&self) -> Result<u64>;

    // The workers' side (see `engine`). A run is in progress while it is
    // `running`, leased or not: a run waiting for a retry holds no lease
    // (and no worker) but keeps its rule's concurrency slot.

    /// Lease up to `request.limit` due runs for `request.node`: unfinished
    /// runs whose `next_attempt_at` has come and whose lease is free or
    /// expired. A `queued` run is leased only while its rule has fewer
    /// `running` runs than its `concurrency` (with the same
    /// `concurrency_key`, when it has one); leased runs become `running`.
    /// Decided inside one write transaction, so concurrent leasers never
    /// overshoot a rule's limit.
    ///
    /// Taking over an expired lease adds one to the run's
    /// `lease_expiries` (the engine fails a run at
    /// [`MAX_LEASE_EXPIRIES`]). A run whose cancel was requested and whose
    /// lease is free or expired is cancelled here instead of leased.
    /// Either every run leased is returned, or the call fails and none
    /// stays leased: a lease is never left behind without a worker.
    async fn lease_runs(&self, request: LeaseRequest) -> Result<Leased>;

    /// Record a step's attempt (if any) and advance the run, in one
    /// transaction. Fails with [`StoreError::LeaseLost`] (writing nothing)
    /// when `record.node` no longer holds the run's lease. A recorded
    /// attempt resets `lease_expiries`. A run written back to wait for a
    /// retry while its cancel is requested is cancelled instead.
    async fn record_step(&self, record: StepRecord) -> Result<StepSaved>;

    /// Extend to `until_ms` the leases of `runs` that `node` still holds —
    /// only the runs its workers have, never every lease of the node, so a
    /// run nobody works on is not kept from expiring. A heartbeat: it also
    /// tells which of them an operator asked to cancel.
    /// `now_ms` is the caller's clock when it chose `until_ms` (a backend
    /// that keeps lease times on its own clock uses only their difference).
    async fn renew_leases(
        &self,
        node: &str,
        runs: &[String],
        now_ms: i64,
        until_ms: i64,
    ) -> Result<Renewal>;

    /// Give up every lease `node` holds (graceful shutdown). The runs stay
    /// `running` at their first unfinished step and are leased again at once.
    async fn release_leases(&self, node: &str, now_ms: i64) -> Result<u64>;

    /// Give back the leases `node` holds on `runs` (see [`Release`]).
    /// Returns how many it held.
    async fn release_runs(
        &self,
        node: &str,
        runs: &[String],
        how: Release,
        now_ms: i64,
    ) -> Result<u64>;

    /// An operator cancels a run (SPEC §5): a queued run, or one waiting
    /// for a retry, becomes `cancelled` at once; one a worker holds is
    /// marked, and the worker learns it from [`Store::renew_leases`] or
    /// [`Store::record_step`]. Decided in one write transaction.
    async fn cancel_run(&self, run_id: &str, now_ms: i64) -> Result<CancelOutcome>;

    /// At startup: make runs leased by a crashed process available now.
    /// SQLite has one process per file, so every lease found is stale and
    /// all are released; a shared backend releases only `node`'s own and
    /// lets other nodes' leases expire.
    async fn reclaim_leases(&self, node: &str, now_ms: i64) -> Result<u64>;

    async fn get_run(&self, id: &str) -> Result<Option<RunRecord>>;

    /// Runs newest first, filtered and paginated by [`RunFilter`].
    async fn list_runs(&self, filter: RunFilter) -> Result<Vec<RunRecord>>;

    /// How many runs the filter matches, ignoring its page `limit`.
    async fn count_runs(&self, filter: RunFilter) -> Result<u64>;

    /// Every attempt of a run, by step then attempt number.
    async fn attempts_for_run(&self, run_id: &str) -> Result<Vec<AttemptRecord>>;

    // Operators' writes (`ops`: replay and retry).

    /// Queue more runs for a stored delivery (a replay), all or none. Every
    /// run's `delivery_id` must be `delivery_id`, which must exist.
    async fn queue_runs(&self, delivery_id: &str, runs: Vec<NewRun>) -> Result<()>;

    /// Re-queue a `failed` run at its failed step: `queued`, due at
    /// `now_ms`, error and `finished_at` cleared; the outputs of the steps
    /// before it are kept. The attempt count at that step stays (numbering
    /// goes on) and becomes its `attempt_base` (the retry budget starts
    /// afresh). With `redefine` (`retry --current`) the run's definition
    /// and concurrency are replaced in the same write. Decided in one
    /// write transaction, so a run is never re-queued twice by racing calls.
    async fn retry_run(
        &self,
        run_id: &str,
        now_ms: i64,
        redefine: Option<Redefinition>,
    ) -> Result<RetryOutcome>;

    /// Append an operator's action to the audit trail.
    async fn record_operator_action(&self, action: OperatorAction) -> Result<()>;

    /// The audit trail: the actions on `target` (a delivery or run id),
    /// oldest first; or, without a target, the latest `limit`, newest first.
    async fn operator_actions(
        &self,
        target: Option<&str>,
        limit: u32,
    ) -> Result<Vec<OperatorAction>>;

    /// Retention (SPEC §5): delete up to `batch` deliveries received before
    /// `before_ms` (oldest first) with their runs and attempts (and so
    /// their dedupe keys), in one transaction, and return how many went.
    /// Deliveries with a run still queued or running are kept. Callers
    /// loop until it returns less than `batch`, pausing in between so
    /// ingest never waits long behind a prune. Audit-trail entries older
    /// than `before_ms` go too (up to `batch`; the larger count is returned).
    async fn prune(&self, before_ms: i64, batch: u32) -> Result<u64>;

    /// The dashboard overview's figures as of `now_ms` ([`stats`]).
    async fn overview(&self, now_ms: i64) -> Result<stats::Overview>;

    // The nodes registry (SPEC §9, `nodes.rs`).

    /// Register `node`, or refresh its row: its info as given and its
    /// heartbeat now, on the store's clock (PostgreSQL's `now()`, never the
    /// node's; `now_ms`, the caller's clock, is the time for a store that
    /// has no clock of its own: SQLite). `started_at` is set by the first beat and kept after. A
    /// store of one process (SQLite) also deletes every other node's row:
    /// they are of processes gone, as in [`Store::reclaim_leases`].
    async fn beat_node(&self, node: &NodeInfo, now_ms: i64) -> Result<()>;

    /// Every registered node by id, each with its heartbeat's age on the
    /// store's clock (`now_ms` where the store has none) (so nodes with skewed clocks agree on who is stale).
    async fn list_nodes(&self, now_ms: i64) -> Result<Vec<NodeRecord>>;

    /// Delete the rows of nodes whose last heartbeat is more than
    /// `silent_ms` old (store's clock); returns how many went.
    async fn forget_nodes(&self, silent_ms: i64, now_ms: i64) -> Result<u64>;

    /// Delete node `id`'s row (it stops gracefully); `false` if it had none.
    async fn remove_node(&self, id: &str) -> Result<bool>;

    /// Whether other processes share this store (PostgreSQL). A store of
    /// one process (SQLite, the default) needs no periodic heartbeat: the
    /// node answering is the only one, and an idle server writes nothing.
    fn shared(&self) -> bool {
        false
    }

    /// Notified when another node may have queued or freed work (runs
    /// queued, a concurrency slot freed), so idle workers lease at once
    /// instead of at their next poll. `None` (the default): this process is
    /// the only writer and wakes its workers itself.
    fn wakeups(&self) -> Option<Arc<tokio::sync::Notify>> {
        None
    }
}
