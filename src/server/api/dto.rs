//! The API's response types: the contract the OpenAPI document describes.
//! The run log's records are shown through `crate::runlog_view`, the one
//! redacted view the CLI prints too; this file adds the pages, errors and
//! the rules' views around it.
//!
//! Times are unix milliseconds.

use serde::Serialize;
use utoipa::ToSchema;

pub use crate::runlog_view::{
    Attempt, AttemptOutcome, BodyEncoding, DeliveryDetail, DeliveryItem, DeliveryStatus, Header,
    OperatorActionView, Redact, RunDetail, RunItem, RunState, RunStatus,
};

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

/// A page of runs, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunPage {
    pub items: Vec<RunItem>,
    /// Pass as `before` to get the next page; `null` on the last page.
    pub next: Option<String>,
}

/// What `POST /api/runs/{id}/cancel` did.
#[derive(Debug, Serialize, ToSchema)]
pub struct CancelResult {
    /// `cancelled` (now), `requested` (its worker stops it within seconds)
    /// or `already_cancelled`.
    pub outcome: String,
    /// The run after the cancel.
    pub run: RunItem,
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
