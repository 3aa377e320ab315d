//! The plain data crossing the [`super::Store`] boundary: what is written
//! (new deliveries and runs, step records, lease requests) and what is read
//! back (records, summaries, filters, outcomes).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

#[allow(unused_imports)] // intra-doc links
use super::Store;

/// `retry --current`: what replaces the definition a failed run was queued
/// with when it is re-queued — the rule as loaded now.
#[derive(Debug, Clone, PartialEq)]
pub struct Redefinition {
    /// The rule as written now (as [`NewRun::definition`]).
    pub definition: Value,
    /// The rule's `concurrency` now.
    pub concurrency: Option<u32>,
    /// Its keyed concurrency's key, rendered for the run's delivery.
    pub concurrency_key: Option<String>,
}

/// What [`Store::retry_run`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum RetryOutcome {
    /// The run, as re-queued.
    Requeued(Box<RunRecord>),
    NotFound,
    /// Only a failed run can be retried; this is its status.
    NotFailed(RunStatus),
}

/// What [`Store::lease_runs`] is asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRequest {
    /// The leasing node (`lease_owner`).
    pub node: String,
    pub now_ms: i64,
    /// Most runs to lease.
    pub limit: u32,
    /// How long the lease lasts unless renewed.
    pub lease_ms: i64,
}

/// What [`Store::lease_runs`] gave.
#[derive(Debug, Clone, PartialEq)]
pub struct Leased {
    pub runs: Vec<LeasedRun>,
    /// When the earliest unfinished run not yet due comes due (a retry),
    /// so an idle leaser knows when to look again.
    pub next_due_ms: Option<i64>,
}

/// A leased run with the delivery it acts on.
#[derive(Debug, Clone, PartialEq)]
pub struct LeasedRun {
    pub run: RunRecord,
    /// `None` only if the delivery row is gone (it cascades to its runs,
    /// so this is a damaged database). Its `trace` is not loaded (null):
    /// running steps never reads it.
    pub delivery: Option<DeliveryRecord>,
}

/// One step's result for [`Store::record_step`].
#[derive(Debug, Clone, PartialEq)]
pub struct StepRecord {
    pub run_id: String,
    /// Must hold the run's lease.
    pub node: String,
    pub now_ms: i64,
    /// The attempt made (or the step skipped); `None` when the run fails
    /// before any step (its definition no longer compiles).
    pub attempt: Option<AttemptRecord>,
    /// The run's first unfinished step after this record.
    pub next_step: u32,
    /// Attempts made so far at `next_step`.
    pub attempts_at_next_step: u32,
    /// The run's `steps.<id>` outputs after this step; `None`: unchanged.
    pub outputs: Option<Value>,
    pub progress: RunProgress,
    /// The rule's `on_failure` handler, queued in the same transaction
    /// when this record finishes the run `failed` (ignored otherwise, and
    /// for a run that is itself an `on_failure` execution).
    pub on_failure: Option<FailureHandler>,
}

/// What a run executes (SPEC §5): its rule's `actions`, or — for a run of
/// its own queued when a run of the rule failed — its `on_failure` steps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunKind {
    #[default]
    Rule,
    OnFailure,
}

impl RunKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RunKind::Rule => "rule",
            RunKind::OnFailure => "on_failure",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [RunKind::Rule, RunKind::OnFailure]
            .into_iter()
            .find(|kind| kind.as_str() == s)
    }
}

/// The failure an `on_failure` run reports: its templates' `failure.*`.
/// Grouped by `on_failure_every`, it describes the latest failure of the
/// window and counts them all.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// The failed run (the latest one of a group).
    pub run: String,
    /// The failed step's id, or its 1-based position; empty when the run
    /// failed before a step (its worker was lost).
    pub step: String,
    pub error: String,
    /// Attempts made at the failed step.
    pub attempts: u32,
    /// Failures this execution stands for (1 unless grouped).
    pub count: u32,
}

/// The `on_failure` run to queue when a run fails ([`StepRecord::on_failure`]).
/// It acts on the failed run's delivery with its definition, due at once —
/// or, with `every_ms`, at most one per window: a failure within the
/// window of the rule's last `on_failure` run is folded into the pending
/// one (due when the window ends), its count going up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailureHandler {
    /// The new run's id, if a new run is queued.
    pub id: String,
    pub every_ms: Option<i64>,
    /// With `count` 1.
    pub failure: Failure,
}

/// Where a run goes after a step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunProgress {
    /// The worker goes on with `next_step`; the lease is extended.
    Continue { lease_until_ms: i64 },
    /// Wait for a retry at `at_ms`: the lease (and the worker) is released,
    /// the run stays `running` and keeps its concurrency slot.
    RetryAt { at_ms: i64 },
    /// Succeeded, failed or cancelled.
    Finished {
        status: RunStatus,
        error: Option<String>,
    },
}

/// How an attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptOutcome {
    Succeeded,
    /// Failed and will be tried again.
    Retrying,
    /// Failed for good (a final error, or retries exhausted).
    Failed,
    /// The step's `if:` did not hold; nothing was executed.
    Skipped,
    /// An operator cancelled the run while this step ran; it was stopped.
    Cancelled,
}

impl AttemptOutcome {
    pub const ALL: [AttemptOutcome; 5] = [
        AttemptOutcome::Succeeded,
        AttemptOutcome::Retrying,
        AttemptOutcome::Failed,
        AttemptOutcome::Skipped,
        AttemptOutcome::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AttemptOutcome::Succeeded => "succeeded",
            AttemptOutcome::Retrying => "retrying",
            AttemptOutcome::Failed => "failed",
            AttemptOutcome::Skipped => "skipped",
            AttemptOutcome::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|o| o.as_str() == s)
    }
}

/// One try of a step (SPEC §5), secrets already redacted and texts
/// truncated by the engine.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AttemptRecord {
    pub id: String,
    pub run_id: String,
    /// Position of the step in the rule, from 0.
    pub step_index: u32,
    /// The step's id, or its 1-based position.
    pub step_id: String,
    /// 1 for the first try; 0 for a skipped step.
    pub attempt: u32,
    pub started_at: i64,
    pub duration_ms: Option<i64>,
    /// Summary of what was sent: method, URL, chosen headers (`null` for
    /// skipped steps).
    pub request: Value,
    /// The HTTP status, or the command's exit code.
    pub status_code: Option<i64>,
    pub response: Option<String>,
    pub stdout: Option<String>,
    pub stderr: Option<String>,
    pub error: Option<String>,
    pub outcome: AttemptOutcome,
}

/// Which runs [`Store::list_runs`] returns, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunFilter {
    pub rule: Option<String>,
    pub status: Option<RunStatus>,
    /// Only runs created at or after this time (unix ms).
    pub since_ms: Option<i64>,
    /// Only runs waiting for a retry at this time (unix ms): `running`,
    /// unleased, and due after it ([`RunState::Waiting`]).
    pub waiting_at: Option<i64>,
    /// Page size; 0 means [`DeliveryFilter::DEFAULT_LIMIT`], capped at
    /// [`DeliveryFilter::MAX_LIMIT`].
    pub limit: u32,
    /// Pagination cursor: only runs listed after this one.
    pub before_id: Option<String>,
}

impl RunFilter {
    /// The page size actually used.
    pub fn effective_limit(&self) -> u32 {
        DeliveryFilter::page_size(self.limit)
    }
}

/// A verified, matched delivery ready to be committed.
#[derive(Debug, Clone, Serialize)]
pub struct NewDelivery {
    /// ULID chosen by the server; it is also the id the sender sees.
    pub id: String,
    /// Name of the source (rule file section) it arrived on.
    pub source: String,
    /// Arrival time, unix ms; the dedupe window is measured from it.
    pub received_at: i64,
    pub method: String,
    pub path: String,
    /// Raw query string, without `?`.
    pub query: Option<String>,
    /// Headers as received, in order, duplicates kept.
    pub headers: Vec<(String, String)>,
    pub remote_addr: String,
    /// Event name the source's `event` setting extracted ("" if none).
    pub event: String,
    /// Dedupe key extracted from the request; `None` disables dedupe.
    pub dedupe_key: Option<String>,
    /// Raw body bytes exactly as received (replay re-parses them).
    #[serde(skip)]
    pub body: Vec<u8>,
    /// Names of the rules that matched, in rule order.
    pub matched: Vec<String>,
    /// The match trace: per rule, matched or the first failing condition.
    /// Already JSON: receive serializes it once, straight to text (a
    /// `Value` tree cost more than the rest of the request at 100 rules per
    /// source; docs/PERFORMANCE.md).
    pub trace: Box<RawValue>,
}

/// A run's definition as it is stored: the rule as written, encoded to
/// JSON once (for a loaded rule, at load: `Rule::run_definition`) and
/// shared by every run queued from it, not copied and encoded per run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunDefinition(std::sync::Arc<str>);

impl RunDefinition {
    /// The JSON text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<&Value> for RunDefinition {
    fn from(value: &Value) -> Self {
        RunDefinition(value.to_string().into())
    }
}

impl From<Value> for RunDefinition {
    fn from(value: Value) -> Self {
        RunDefinition::from(&value)
    }
}

impl Serialize for RunDefinition {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let raw = RawValue::from_string(self.0.to_string()).map_err(serde::ser::Error::custom)?;
        raw.serialize(serializer)
    }
}

/// A run to queue for a matching rule.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NewRun {
    pub id: String,
    /// Must equal the id of the delivery it is accepted with.
    pub delivery_id: String,
    pub rule: String,
    pub created_at: i64,
    /// Snapshot of the rule's steps at match time, opaque to the store, so a
    /// rule edited later does not change a queued run.
    pub definition: RunDefinition,
    /// The rule's `concurrency` when queued: at most this many of its runs
    /// in progress at once, across restarts and nodes.
    pub concurrency: Option<u32>,
    /// Keyed concurrency: the rendered key. The limit then holds per key
    /// (runs of other keys proceed), oldest first.
    pub concurrency_key: Option<String>,
}

/// A request refused before it became a delivery (401/403/413/429, or 422
/// for a payload against its source's schema).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rejected {
    pub id: String,
    pub source: String,
    pub received_at: i64,
    pub method: String,
    pub path: String,
    pub remote_addr: String,
    /// The HTTP status the sender got.
    pub status: u16,
    /// Why, as told to the sender (e.g. "signature mismatch").
    pub reason: String,
    /// The verified request of a 422, kept so it can be inspected and
    /// replayed once the schema is fixed; `None` for everything else.
    pub kept: Option<KeptRequest>,
}

/// What a rejected delivery keeps of its request: only for a verified one.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KeptRequest {
    pub query: Option<String>,
    /// As for an accepted delivery: credentials masked, secrets redacted.
    pub headers: Vec<(String, String)>,
    pub event: String,
    #[serde(skip)]
    pub body: Vec<u8>,
}

/// What [`Store::accept`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum AcceptOutcome {
    /// Delivery, trace and runs are committed.
    Accepted,
    /// Seen within the window; nothing was written.
    Duplicate { first_delivery: String },
}

/// Whether a stored delivery was accepted or rejected. Duplicates are not
/// stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    Accepted,
    Rejected,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Accepted => "accepted",
            DeliveryStatus::Rejected => "rejected",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "accepted" => Some(DeliveryStatus::Accepted),
            "rejected" => Some(DeliveryStatus::Rejected),
            _ => None,
        }
    }
}

/// A stored delivery, everything included.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeliveryRecord {
    pub id: String,
    pub source: String,
    pub received_at: i64,
    pub status: DeliveryStatus,
    /// For a rejected delivery: the HTTP status the sender got.
    pub reject_status: Option<u16>,
    /// For a rejected delivery: why.
    pub reject_reason: Option<String>,
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    /// Empty for rejected deliveries, except a kept 422.
    pub headers: Vec<(String, String)>,
    pub remote_addr: String,
    pub event: String,
    pub dedupe_key: Option<String>,
    /// `None` for rejected deliveries, except a kept 422. Skipped by serde:
    /// the API decides how to render bytes (it knows the content type).
    #[serde(skip)]
    pub body: Option<Vec<u8>>,
    pub matched: Vec<String>,
    /// `null` for rejected deliveries.
    pub trace: Value,
}

/// One line of a delivery listing (no body, headers or trace).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeliverySummary {
    pub id: String,
    pub source: String,
    pub received_at: i64,
    pub event: String,
    pub status: DeliveryStatus,
    pub reject_status: Option<u16>,
    pub matched: Vec<String>,
    pub remote_addr: String,
}

/// Which deliveries [`Store::list_deliveries`] returns, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryFilter {
    pub source: Option<String>,
    /// Only deliveries received at or after this time (unix ms).
    pub since_ms: Option<i64>,
    /// Page size; 0 means [`DeliveryFilter::DEFAULT_LIMIT`], capped at
    /// [`DeliveryFilter::MAX_LIMIT`].
    pub limit: u32,
    /// Pagination cursor: only deliveries listed after this one (the last id
    /// of the previous page). An unknown id yields an empty page.
    pub before_id: Option<String>,
}

impl DeliveryFilter {
    pub const DEFAULT_LIMIT: u32 = 100;
    pub const MAX_LIMIT: u32 = 1000;

    /// The page size actually used.
    pub fn effective_limit(&self) -> u32 {
        Self::page_size(self.limit)
    }

    /// A requested page size: 0 means the default, and no page exceeds the
    /// maximum. Shared by every listing.
    pub fn page_size(requested: u32) -> u32 {
        match requested {
            0 => Self::DEFAULT_LIMIT,
            n => n.min(Self::MAX_LIMIT),
        }
    }
}

/// Run states (SPEC §5): `queued` → `running` → `succeeded` | `failed` |
/// `cancelled`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl RunStatus {
    pub const ALL: [RunStatus; 5] = [
        RunStatus::Queued,
        RunStatus::Running,
        RunStatus::Succeeded,
        RunStatus::Failed,
        RunStatus::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Queued => "queued",
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == s)
    }

    /// Succeeded, failed or cancelled: the run will not execute again
    /// unless retried.
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            RunStatus::Succeeded | RunStatus::Failed | RunStatus::Cancelled
        )
    }
}

/// How a run reads to an operator (SPEC §5): its stored status, except
/// that a `running` run nobody holds and not due yet is `waiting` (for a
/// retry, at `next_attempt_at`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    Queued,
    Running,
    Waiting,
    Succeeded,
    Failed,
    Cancelled,
}

impl RunState {
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Queued => "queued",
            RunState::Running => "running",
            RunState::Waiting => "waiting",
            RunState::Succeeded => "succeeded",
            RunState::Failed => "failed",
            RunState::Cancelled => "cancelled",
        }
    }
}

impl RunRecord {
    /// Its state at `now_ms`.
    pub fn state(&self, now_ms: i64) -> RunState {
        match self.status {
            RunStatus::Queued => RunState::Queued,
            RunStatus::Succeeded => RunState::Succeeded,
            RunStatus::Failed => RunState::Failed,
            RunStatus::Cancelled => RunState::Cancelled,
            RunStatus::Running => {
                let leased = self.lease_owner.is_some()
                    && self.lease_expires_at.is_some_and(|until| until > now_ms);
                let due_later = self.next_attempt_at.is_some_and(|at| at > now_ms);
                if !leased && due_later {
                    RunState::Waiting
                } else {
                    RunState::Running
                }
            }
        }
    }
}

/// A stored run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunRecord {
    pub id: String,
    pub delivery_id: String,
    pub rule: String,
    pub status: RunStatus,
    /// Index of the first step not yet succeeded; a resumed run starts here.
    pub next_step: u32,
    /// Attempts made so far at `next_step`.
    pub attempt: u32,
    /// When a worker may take it next (unix ms); `None` once finished.
    pub next_attempt_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    pub finished_at: Option<i64>,
    pub error: Option<String>,
    /// The rule's steps as snapshotted at match time.
    pub definition: Value,
    /// `steps.<id>` outputs so far, for templates of later steps.
    pub outputs: Value,
    /// The rule's `concurrency` when queued.
    pub concurrency: Option<u32>,
    /// Its rendered concurrency key (keyed concurrency), if any.
    pub concurrency_key: Option<String>,
    /// The node whose worker holds the run, while its lease lasts (an
    /// expired lease still names its last owner until taken over).
    pub lease_owner: Option<String>,
    /// When that lease ends unless renewed.
    pub lease_expires_at: Option<i64>,
    /// When an operator asked to cancel it while a worker held it.
    pub cancel_requested_at: Option<i64>,
    /// Expired leases since its last recorded step (a lost worker).
    pub lease_expiries: u32,
    /// Attempts made at `next_step` before the last manual retry: numbers
    /// go on from `attempt`, the retry policy counts from here.
    pub attempt_base: u32,
    /// `rule`, or `on_failure`: it runs its rule's `on_failure` steps.
    pub kind: RunKind,
    /// For an `on_failure` run: the failure (or failures) it reports.
    pub failure: Option<Failure>,
}
