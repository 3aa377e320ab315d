//! The run log as people and programs are shown it: store records turned
//! into one redacted, presentable view, which the API serializes (it is the
//! contract the OpenAPI document describes) and the CLI prints. Nothing
//! leaves the run log another way, so the API and `hookflow show` cannot
//! disagree about what is redacted.
//!
//! Kept apart from the store's records so a schema change in the run log
//! is a deliberate change here, not a silent one in the API. Times are
//! unix milliseconds. Every text that leaves through these types has had
//! the rules' secrets replaced by `***`; credential headers were masked
//! when the delivery was stored.

use base64::Engine as _;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::rules::Secrets;
use crate::store::{
    self, AttemptRecord, DeliveryRecord, DeliverySummary, OperatorAction, RunRecord,
};

/// Whether a delivery was accepted (and matched) or rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    Accepted,
    Rejected,
}

/// A run's state (SPEC §5): `queued` → `running` → `succeeded` | `failed`
/// | `cancelled`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

/// How a run reads now: its status, except that a `running` run no
/// worker holds and not due yet is `waiting` (for a retry at
/// `next_attempt_at`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    Queued,
    Running,
    Waiting,
    Succeeded,
    Failed,
    Cancelled,
}

impl From<store::RunState> for RunState {
    fn from(s: store::RunState) -> Self {
        match s {
            store::RunState::Queued => RunState::Queued,
            store::RunState::Running => RunState::Running,
            store::RunState::Waiting => RunState::Waiting,
            store::RunState::Succeeded => RunState::Succeeded,
            store::RunState::Failed => RunState::Failed,
            store::RunState::Cancelled => RunState::Cancelled,
        }
    }
}

impl RunState {
    pub fn as_str(self) -> &'static str {
        store::RunState::from(self).as_str()
    }
}

impl From<RunState> for store::RunState {
    fn from(s: RunState) -> Self {
        match s {
            RunState::Queued => store::RunState::Queued,
            RunState::Running => store::RunState::Running,
            RunState::Waiting => store::RunState::Waiting,
            RunState::Succeeded => store::RunState::Succeeded,
            RunState::Failed => store::RunState::Failed,
            RunState::Cancelled => store::RunState::Cancelled,
        }
    }
}

/// An operator's action on a delivery or run (the audit trail): what, through
/// what (`cli`, `api`, `ui`, `signal`), from where, and when.
#[derive(Debug, Serialize, ToSchema)]
pub struct OperatorActionView {
    /// `replay`, `retry`, `cancel` or `reload`.
    pub action: String,
    /// Unix milliseconds.
    pub at: i64,
    pub via: String,
    /// The client's address, or `user@host` for the CLI.
    pub client: String,
    /// What it did (runs queued, a cancel's outcome).
    pub detail: Value,
}

/// How an attempt ended: `retrying` failed and will be tried again,
/// `failed` for good, `skipped` when the step's `if:` did not hold,
/// `cancelled` when an operator cancelled the run while the step ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AttemptOutcome {
    Succeeded,
    Retrying,
    Failed,
    Skipped,
    Cancelled,
}

/// How a delivery's `body` is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BodyEncoding {
    /// The bytes were valid UTF-8: the text itself, secrets redacted.
    Utf8,
    /// Anything else: standard base64, padded, the bytes exactly.
    Base64,
}

impl From<store::DeliveryStatus> for DeliveryStatus {
    fn from(s: store::DeliveryStatus) -> Self {
        match s {
            store::DeliveryStatus::Accepted => DeliveryStatus::Accepted,
            store::DeliveryStatus::Rejected => DeliveryStatus::Rejected,
        }
    }
}

impl From<store::RunStatus> for RunStatus {
    fn from(s: store::RunStatus) -> Self {
        match s {
            store::RunStatus::Queued => RunStatus::Queued,
            store::RunStatus::Running => RunStatus::Running,
            store::RunStatus::Succeeded => RunStatus::Succeeded,
            store::RunStatus::Failed => RunStatus::Failed,
            store::RunStatus::Cancelled => RunStatus::Cancelled,
        }
    }
}

impl From<store::AttemptOutcome> for AttemptOutcome {
    fn from(o: store::AttemptOutcome) -> Self {
        match o {
            store::AttemptOutcome::Succeeded => AttemptOutcome::Succeeded,
            store::AttemptOutcome::Retrying => AttemptOutcome::Retrying,
            store::AttemptOutcome::Failed => AttemptOutcome::Failed,
            store::AttemptOutcome::Skipped => AttemptOutcome::Skipped,
            store::AttemptOutcome::Cancelled => AttemptOutcome::Cancelled,
        }
    }
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Accepted => "accepted",
            DeliveryStatus::Rejected => "rejected",
        }
    }
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Queued => "queued",
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
        }
    }
}

impl AttemptOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptOutcome::Succeeded => "succeeded",
            AttemptOutcome::Retrying => "retrying",
            AttemptOutcome::Failed => "failed",
            AttemptOutcome::Skipped => "skipped",
            AttemptOutcome::Cancelled => "cancelled",
        }
    }
}

/// One line of the delivery listing.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryItem {
    pub id: String,
    pub source: String,
    /// Unix milliseconds.
    pub received_at: i64,
    pub event: String,
    pub status: DeliveryStatus,
    /// For a rejected request: the status the sender got (401, 403, 413, 429).
    pub reject_status: Option<u16>,
    /// Rules that matched when it arrived, in rule order.
    pub matched: Vec<String>,
    pub remote_addr: String,
}

/// One request header as stored (credential headers are masked).
#[derive(Debug, Serialize, ToSchema)]
pub struct Header {
    pub name: String,
    pub value: String,
}

/// A delivery with its request, match trace and runs.
///
/// The body is `body` with `body_encoding: "utf8"` when it is valid UTF-8,
/// else base64 (standard alphabet, padded) with `body_encoding: "base64"`,
/// so the bytes are always recoverable exactly; both are `null` for a
/// rejected request, whose body is never stored.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryDetail {
    pub id: String,
    pub source: String,
    pub received_at: i64,
    pub event: String,
    pub status: DeliveryStatus,
    pub reject_status: Option<u16>,
    pub reject_reason: Option<String>,
    pub method: String,
    pub path: String,
    /// The raw query string, without `?`.
    pub query: Option<String>,
    pub headers: Vec<Header>,
    pub remote_addr: String,
    pub dedupe_key: Option<String>,
    pub body: Option<String>,
    pub body_encoding: Option<BodyEncoding>,
    pub matched: Vec<String>,
    /// `rules`: every rule of the source whose `event:` admits the
    /// delivery, matched or the first condition that failed and the value
    /// it saw; `excluded`: the source's other rules, by name (SPEC §4).
    /// `null` for rejected requests.
    pub trace: Value,
    /// The runs it queued, oldest first (replays add more).
    pub runs: Vec<RunItem>,
    /// Replays of it, oldest first.
    pub operator_actions: Vec<OperatorActionView>,
}

impl DeliveryDetail {
    /// The body for people: JSON pretty-printed, other UTF-8 text as it
    /// is, anything else as `base64:…`. `None` when no body was stored.
    pub fn body_for_display(&self) -> Option<String> {
        let body = self.body.as_deref()?;
        Some(match self.body_encoding {
            Some(BodyEncoding::Base64) => format!("base64:{body}"),
            _ => match serde_json::from_str::<Value>(body) {
                Ok(json) => serde_json::to_string_pretty(&json).unwrap_or_else(|_| body.into()),
                Err(_) => body.to_owned(),
            },
        })
    }
}

/// A run without its attempts.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunItem {
    pub id: String,
    pub delivery_id: String,
    pub rule: String,
    pub status: RunStatus,
    /// The status as it reads now: `waiting` for a `running` run that
    /// waits for a retry at `next_attempt_at`.
    pub state: RunState,
    /// When an operator asked to cancel it while it ran.
    pub cancel_requested_at: Option<i64>,
    /// Index of the first step not yet done; a resumed or retried run
    /// starts here.
    pub next_step: u32,
    /// Attempts made so far at `next_step`.
    pub attempt: u32,
    /// When a worker may take it next; `null` once finished.
    pub next_attempt_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    pub finished_at: Option<i64>,
    pub error: Option<String>,
    /// `rule` (its rule's actions), or `on_failure`: its rule's
    /// `on_failure` steps, run because a run of the rule failed.
    pub kind: String,
    /// For an `on_failure` run: the failure it reports (`run`, `step`,
    /// `error`, `attempts`, `count`), secrets redacted.
    pub failure: Option<Value>,
}

/// A run with every attempt of every step.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunDetail {
    #[serde(flatten)]
    pub run: RunItem,
    /// `steps.<id>` outputs so far (what later steps' templates see).
    pub outputs: Value,
    /// By step, then attempt number.
    pub attempts: Vec<Attempt>,
    /// Retries and cancels of it, oldest first.
    pub operator_actions: Vec<OperatorActionView>,
}

/// One try of a step (SPEC §5).
#[derive(Debug, Serialize, ToSchema)]
pub struct Attempt {
    pub id: String,
    /// Position of the step in the rule, from 0.
    pub step_index: u32,
    /// The step's id, or its 1-based position.
    pub step_id: String,
    /// 1 for the first try; 0 for a skipped step.
    pub attempt: u32,
    pub started_at: i64,
    pub duration_ms: Option<i64>,
    /// What was sent: method, URL, chosen headers (`null` when skipped).
    pub request: Value,
    /// The HTTP status, or the command's exit code.
    pub status_code: Option<i64>,
    /// Response body (truncated to 64 KiB).
    pub response: Option<String>,
    pub stdout: Option<String>,
    pub stderr: Option<String>,
    pub error: Option<String>,
    pub outcome: AttemptOutcome,
}

/// Converts store records into the view, replacing secrets by `***` on
/// the way out.
pub struct Redact<'a>(pub &'a Secrets);

impl Redact<'_> {
    fn text(&self, s: &str) -> String {
        self.0.redact(s)
    }

    fn opt(&self, s: Option<&str>) -> Option<String> {
        s.map(|s| self.0.redact(s))
    }

    pub fn delivery_item(&self, d: DeliverySummary) -> DeliveryItem {
        DeliveryItem {
            id: d.id,
            source: d.source,
            received_at: d.received_at,
            event: self.text(&d.event),
            status: d.status.into(),
            reject_status: d.reject_status,
            matched: d.matched,
            remote_addr: d.remote_addr,
        }
    }

    pub fn delivery(&self, d: DeliveryRecord, runs: Vec<RunRecord>) -> DeliveryDetail {
        let (body, body_encoding) = match d.body {
            None => (None, None),
            Some(bytes) => match String::from_utf8(bytes) {
                Ok(text) => (Some(self.text(&text)), Some(BodyEncoding::Utf8)),
                Err(e) => (
                    Some(base64::engine::general_purpose::STANDARD.encode(e.as_bytes())),
                    Some(BodyEncoding::Base64),
                ),
            },
        };
        DeliveryDetail {
            id: d.id,
            source: d.source,
            received_at: d.received_at,
            event: self.text(&d.event),
            status: d.status.into(),
            reject_status: d.reject_status,
            reject_reason: self.opt(d.reject_reason.as_deref()),
            method: d.method,
            path: d.path,
            query: self.opt(d.query.as_deref()),
            headers: d
                .headers
                .into_iter()
                .map(|(name, value)| Header {
                    name,
                    value: self.text(&value),
                })
                .collect(),
            remote_addr: d.remote_addr,
            dedupe_key: self.opt(d.dedupe_key.as_deref()),
            body,
            body_encoding,
            matched: d.matched,
            trace: self.0.redact_value(&d.trace),
            runs: runs.into_iter().map(|r| self.run_item(r)).collect(),
            operator_actions: Vec::new(),
        }
    }

    /// The audit trail entries, as shown.
    pub fn trail(&self, actions: Vec<OperatorAction>) -> Vec<OperatorActionView> {
        actions
            .into_iter()
            .map(|a| OperatorActionView {
                action: a.action.as_str().to_owned(),
                at: a.at,
                via: a.via.as_str().to_owned(),
                client: a.client,
                detail: self.0.redact_value(&a.detail),
            })
            .collect()
    }

    pub fn run_item(&self, r: RunRecord) -> RunItem {
        let state = r.state(chrono::Utc::now().timestamp_millis()).into();
        RunItem {
            state,
            cancel_requested_at: r.cancel_requested_at,
            id: r.id,
            delivery_id: r.delivery_id,
            rule: r.rule,
            status: r.status.into(),
            next_step: r.next_step,
            attempt: r.attempt,
            next_attempt_at: r.next_attempt_at,
            created_at: r.created_at,
            updated_at: r.updated_at,
            finished_at: r.finished_at,
            error: self.opt(r.error.as_deref()),
            kind: r.kind.as_str().to_owned(),
            failure: r
                .failure
                .as_ref()
                .and_then(|f| serde_json::to_value(f).ok())
                .map(|v| self.0.redact_value(&v)),
        }
    }

    pub fn run(&self, r: RunRecord, attempts: Vec<AttemptRecord>) -> RunDetail {
        let outputs = self.0.redact_value(&r.outputs);
        RunDetail {
            run: self.run_item(r),
            outputs,
            attempts: attempts.into_iter().map(|a| self.attempt(a)).collect(),
            operator_actions: Vec::new(),
        }
    }

    fn attempt(&self, a: AttemptRecord) -> Attempt {
        Attempt {
            id: a.id,
            step_index: a.step_index,
            step_id: a.step_id,
            attempt: a.attempt,
            started_at: a.started_at,
            duration_ms: a.duration_ms,
            request: self.0.redact_value(&a.request),
            status_code: a.status_code,
            response: self.opt(a.response.as_deref()),
            stdout: self.opt(a.stdout.as_deref()),
            stderr: self.opt(a.stderr.as_deref()),
            error: self.opt(a.error.as_deref()),
            outcome: a.outcome.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "s3cret-value-42";

    fn delivery(body: &[u8]) -> DeliveryRecord {
        DeliveryRecord {
            id: "d1".into(),
            source: "hooks".into(),
            received_at: 0,
            status: store::DeliveryStatus::Accepted,
            reject_status: None,
            reject_reason: None,
            method: "POST".into(),
            path: "/hooks/hooks".into(),
            query: Some(format!("k={SECRET}")),
            headers: vec![("x-note".into(), format!("is {SECRET}"))],
            remote_addr: "127.0.0.1".into(),
            event: "push".into(),
            dedupe_key: Some(format!("dd-{SECRET}")),
            body: Some(body.to_vec()),
            matched: vec![],
            trace: Value::Null,
        }
    }

    fn view(body: &[u8]) -> DeliveryDetail {
        let secrets = Secrets::new([SECRET.to_string()].into_iter().collect());
        Redact(&secrets).delivery(delivery(body), vec![])
    }

    #[test]
    fn a_json_body_is_redacted_then_pretty_printed() {
        let v = view(format!(r#"{{"a":"{SECRET}"}}"#).as_bytes());
        assert_eq!(v.body.as_deref(), Some(r#"{"a":"***"}"#));
        assert_eq!(v.body_encoding, Some(BodyEncoding::Utf8));
        assert_eq!(
            v.body_for_display().as_deref(),
            Some("{\n  \"a\": \"***\"\n}")
        );
        assert_eq!(v.dedupe_key.as_deref(), Some("dd-***"));
        assert_eq!(v.query.as_deref(), Some("k=***"));
        assert_eq!(v.headers[0].value, "is ***");
    }

    #[test]
    fn text_is_shown_as_is_and_other_bytes_as_marked_base64() {
        let text = view(format!("plain {SECRET}").as_bytes());
        assert_eq!(text.body_for_display().as_deref(), Some("plain ***"));
        let binary = view(&[0xff, 0x00, 0x01]);
        assert_eq!(binary.body_encoding, Some(BodyEncoding::Base64));
        assert_eq!(binary.body.as_deref(), Some("/wAB"));
        assert_eq!(binary.body_for_display().as_deref(), Some("base64:/wAB"));
    }
}
