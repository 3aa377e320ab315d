//! Prometheus metrics: every series hookflow exports is named here, once.
//!
//! The recorder is process-global (the `metrics` facade); `install` sets it
//! up on first use and every later call shares it, so tests that start
//! several servers in one process see one registry.

use std::sync::OnceLock;
use std::time::Duration;

use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Attempt durations, in seconds: from a fast loopback call to a slow deploy.
const DURATION_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

/// Installs the recorder (once) and returns the handle `/metrics` renders.
pub fn install() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    metrics_exporter_prometheus::Matcher::Full(
                        "hookflow_attempt_duration_seconds".into(),
                    ),
                    DURATION_BUCKETS,
                )
                .ok()?;
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            // Someone else's recorder (a test harness) may already be set.
            metrics::set_global_recorder(recorder).ok()?;
            describe();
            Some(handle)
        })
        .as_ref()
}

/// The Prometheus text exposition of every series.
pub fn render() -> String {
    install().map(PrometheusHandle::render).unwrap_or_default()
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "hookflow_deliveries_total",
        "Requests to source paths, by source and outcome"
    );
    describe_counter!(
        "hookflow_matches_total",
        "Rules matched by accepted deliveries, by rule"
    );
    describe_counter!("hookflow_runs_total", "Runs finished, by rule and outcome");
    describe_counter!(
        "hookflow_on_failure_total",
        "on_failure executions finished, by rule and outcome"
    );
    describe_counter!(
        "hookflow_attempts_total",
        "Step attempts, by action kind and outcome"
    );
    describe_histogram!(
        "hookflow_attempt_duration_seconds",
        "How long step attempts took, by action kind"
    );
    describe_gauge!("hookflow_queue_depth", "Runs queued or in progress");
    describe_counter!("hookflow_reloads_total", "Rule reloads, by outcome");
    describe_histogram!(
        "hookflow_store_commit_commands",
        "Write commands per group commit of the store's writer"
    );
    describe_histogram!(
        "hookflow_store_commit_seconds",
        "How long one group commit took (execute + COMMIT)"
    );
}

/// What became of a request to a source path: the `outcome` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryOutcome {
    Accepted,
    Duplicate,
    /// Refused with this status (`rejected_401`, `rejected_422`, …).
    Rejected(u16),
    /// The body could not be read or parsed (400).
    InvalidBody,
    /// The store failed; the sender got a 503.
    StoreError,
}

impl DeliveryOutcome {
    fn label(self) -> std::borrow::Cow<'static, str> {
        match self {
            DeliveryOutcome::Accepted => "accepted".into(),
            DeliveryOutcome::Duplicate => "duplicate".into(),
            DeliveryOutcome::Rejected(status) => format!("rejected_{status}").into(),
            DeliveryOutcome::InvalidBody => "invalid_body".into(),
            DeliveryOutcome::StoreError => "store_error".into(),
        }
    }
}

/// A request to a source path, by source and outcome.
pub fn delivery(source: &str, outcome: DeliveryOutcome) {
    counter!("hookflow_deliveries_total", "source" => source.to_string(), "outcome" => outcome.label()).increment(1);
}

pub fn matched(rule: &str) {
    counter!("hookflow_matches_total", "rule" => rule.to_string()).increment(1);
}

/// A run reached a final state (`succeeded`, `failed`, `cancelled`).
pub fn run_finished(rule: &str, outcome: crate::store::RunStatus) {
    counter!("hookflow_runs_total", "rule" => rule.to_string(), "outcome" => outcome.as_str())
        .increment(1);
}

/// A rule's `on_failure` execution (a run of its own) reached a final
/// state. Not counted in `hookflow_runs_total`.
pub fn on_failure_finished(rule: &str, outcome: crate::store::RunStatus) {
    counter!("hookflow_on_failure_total", "rule" => rule.to_string(), "outcome" => outcome.as_str())
        .increment(1);
}

/// One attempt of a step (`http`, `slack`, `shell`), and how it went.
pub fn attempt(kind: &'static str, outcome: crate::store::AttemptOutcome, took: Duration) {
    counter!("hookflow_attempts_total", "action" => kind, "outcome" => outcome.as_str())
        .increment(1);
    histogram!("hookflow_attempt_duration_seconds", "action" => kind).record(took.as_secs_f64());
}

pub fn queue_depth(depth: u64) {
    gauge!("hookflow_queue_depth").set(depth as f64);
}

/// How a reload went: the `outcome` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReloadOutcome {
    Ok,
    Error,
}

/// A reload, by outcome.
pub fn reload(outcome: ReloadOutcome) {
    let label = match outcome {
        ReloadOutcome::Ok => "ok",
        ReloadOutcome::Error => "error",
    };
    counter!("hookflow_reloads_total", "outcome" => label).increment(1);
}

/// One group commit of the store's writer: how many commands, how long.
pub fn store_commit(commands: usize, took: Duration) {
    histogram!("hookflow_store_commit_commands").record(commands as f64);
    histogram!("hookflow_store_commit_seconds").record(took.as_secs_f64());
}
