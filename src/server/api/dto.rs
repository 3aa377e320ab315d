//! The API's response types. They are the contract the OpenAPI document
//! describes, kept apart from the store's records so a schema change in
//! the run log is a deliberate change here, not a silent one in the API.
//!
//! Times are unix milliseconds. Every text that leaves through these types
//! has had the rules' secrets replaced by `***` (see [`Redact`]).

use base64::Engine as _;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::rules::Secrets;
use crate::store::{AttemptRecord, DeliveryRecord, DeliverySummary, RunRecord};

/// `{"error": …}`: every 4xx/5xx answer of the API.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: String,
}

/// A page of deliveries, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryPage {
    pub items: Vec<DeliveryItem>,
    /// Pass as `before` to get the next page; `null` on the last page.
    pub next: Option<String>,
}

/// One line of the delivery listing.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryItem {
    pub id: String,
    pub source: String,
    /// Unix milliseconds.
    pub received_at: i64,
    pub event: String,
    /// `accepted` or `rejected`.
    #[schema(pattern = "^(accepted|rejected)$")]
    pub status: String,
    /// For a rejected request: the status the sender got (401, 403, 413, 429).
    pub reject_status: Option<u16>,
    /// Rules that matched when it arrived, in rule order.
    pub matched: Vec<String>,
    pub remote_addr: String,
}

/// One request header as stored (credential headers are never stored).
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
    #[schema(pattern = "^(accepted|rejected)$")]
    pub status: String,
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
    #[schema(pattern = "^(utf8|base64)$")]
    pub body_encoding: Option<String>,
    pub matched: Vec<String>,
    /// For every rule of the source: matched, or the first condition that
    /// failed and the value it saw (`null` for rejected requests).
    pub trace: Value,
    /// The runs it queued, oldest first (replays add more).
    pub runs: Vec<RunItem>,
}

/// A page of runs, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunPage {
    pub items: Vec<RunItem>,
    /// Pass as `before` to get the next page; `null` on the last page.
    pub next: Option<String>,
}

/// A run without its attempts.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunItem {
    pub id: String,
    pub delivery_id: String,
    pub rule: String,
    /// `queued`, `running`, `succeeded`, `failed` or `cancelled`.
    #[schema(pattern = "^(queued|running|succeeded|failed|cancelled)$")]
    pub status: String,
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
    /// `succeeded`, `retrying`, `failed` or `skipped`.
    #[schema(pattern = "^(succeeded|retrying|failed|skipped)$")]
    pub outcome: String,
}

/// What `POST /api/deliveries/{id}/replay` did (or, dry, would do).
#[derive(Debug, Serialize, ToSchema)]
pub struct ReplayResult {
    pub delivery: String,
    /// The rules the delivery matches now.
    pub matched: Vec<String>,
    /// The runs queued, one per matched rule; empty for a dry run.
    pub runs: Vec<String>,
    pub dry_run: bool,
}

/// Converts store records, replacing secrets by `***` on the way out.
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
            status: d.status.as_str().to_owned(),
            reject_status: d.reject_status,
            matched: d.matched,
            remote_addr: d.remote_addr,
        }
    }

    pub fn delivery(&self, d: DeliveryRecord, runs: Vec<RunRecord>) -> DeliveryDetail {
        let (body, body_encoding) = match d.body {
            None => (None, None),
            Some(bytes) => match String::from_utf8(bytes) {
                Ok(text) => (Some(self.text(&text)), Some("utf8")),
                Err(e) => (
                    Some(base64::engine::general_purpose::STANDARD.encode(e.as_bytes())),
                    Some("base64"),
                ),
            },
        };
        DeliveryDetail {
            id: d.id,
            source: d.source,
            received_at: d.received_at,
            event: self.text(&d.event),
            status: d.status.as_str().to_owned(),
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
            body_encoding: body_encoding.map(str::to_owned),
            matched: d.matched,
            trace: self.0.redact_value(&d.trace),
            runs: runs.into_iter().map(|r| self.run_item(r)).collect(),
        }
    }

    pub fn run_item(&self, r: RunRecord) -> RunItem {
        RunItem {
            id: r.id,
            delivery_id: r.delivery_id,
            rule: r.rule,
            status: r.status.as_str().to_owned(),
            next_step: r.next_step,
            attempt: r.attempt,
            next_attempt_at: r.next_attempt_at,
            created_at: r.created_at,
            updated_at: r.updated_at,
            finished_at: r.finished_at,
            error: self.opt(r.error.as_deref()),
        }
    }

    pub fn run(&self, r: RunRecord, attempts: Vec<AttemptRecord>) -> RunDetail {
        let outputs = self.0.redact_value(&r.outputs);
        RunDetail {
            run: self.run_item(r),
            outputs,
            attempts: attempts.into_iter().map(|a| self.attempt(a)).collect(),
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
            outcome: a.outcome.as_str().to_owned(),
        }
    }
}

/// `GET /api/rules`: what is running, and how the last reload went.
#[derive(Debug, Serialize, ToSchema)]
pub struct RulesView {
    pub sources: Vec<SourceView>,
    pub rules: Vec<RuleView>,
    pub reload: ReloadStatus,
}

/// A source as loaded; its secrets are not shown, only the verifier kind.
#[derive(Debug, Serialize, ToSchema)]
pub struct SourceView {
    pub name: String,
    pub path: String,
    pub methods: Vec<String>,
    /// The verifier kind (`github`, `token`, …); `null` for an open endpoint.
    pub verify: Option<String>,
    pub allow_ips: Vec<String>,
    /// `<count>/<period>`, e.g. `50/1s`.
    pub rate_limit: Option<String>,
    /// Its own body limit in bytes, if it overrides `max_body`.
    pub max_body: Option<u64>,
    /// `file:line:column`.
    pub defined_at: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RuleView {
    pub name: String,
    pub sources: Vec<String>,
    pub events: Vec<String>,
    pub concurrency: Option<u32>,
    pub steps: Vec<StepView>,
    /// `file:line:column`.
    pub defined_at: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StepView {
    /// The step's id, or its 1-based position.
    pub step: String,
    /// `http`, `slack` or `shell`.
    pub kind: String,
}

/// The last reload, as `crate::reload::Status` keeps it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReloadStatus {
    /// When the running set was loaded (RFC 3339).
    pub loaded_at: String,
    pub last_reload_at: Option<String>,
    /// `ok` or `error`; `null` before the first reload.
    pub last_outcome: Option<String>,
    /// What kept the last attempted set out (`file:line:column: message`).
    pub errors: Vec<String>,
    pub warnings: Vec<String>,
    pub succeeded: u64,
    pub failed: u64,
}

impl From<crate::reload::Status> for ReloadStatus {
    fn from(s: crate::reload::Status) -> Self {
        let time = |t: chrono::DateTime<chrono::Utc>| {
            t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        };
        ReloadStatus {
            loaded_at: time(s.loaded_at),
            last_reload_at: s.last_reload_at.map(time),
            last_outcome: s.last_outcome.map(str::to_owned),
            errors: s.errors,
            warnings: s.warnings,
            succeeded: s.succeeded,
            failed: s.failed,
        }
    }
}

/// `POST /api/reload`: how the reload went.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReloadReport {
    pub ok: bool,
    /// Every problem, `file:line:column: message`; empty when `ok`.
    pub errors: Vec<String>,
    pub warnings: Vec<String>,
    /// Rules and sources in the set now running.
    pub rules: usize,
    pub sources: usize,
    pub duration_ms: u64,
}

impl From<crate::reload::Report> for ReloadReport {
    fn from(r: crate::reload::Report) -> Self {
        ReloadReport {
            ok: r.ok,
            errors: r.errors,
            warnings: r.warnings,
            rules: r.rules,
            sources: r.sources,
            duration_ms: r.duration_ms,
        }
    }
}
