//! Executing one leased run: its steps in order from the first unfinished
//! one. Each step ends in ONE store command that records the attempt and
//! moves the run on (next step, retry time, or finished), so a crash at
//! any point leaves the run at a step boundary and group commit batches
//! the writes of many workers.

use std::time::Duration;

use chrono::Utc;
use serde_json::{Map, Value};
use tracing::Instrument;

use super::context::Resolved;
use super::held::Cancel;
use super::{Shared, lease_until, millis, now_ms, retry};
use crate::actions::{self, ActionEnv, Fault, Outcome, render_step};
use crate::delivery::Delivery;
use crate::rules::{MatchInput, Rule, Secrets, Step};
use crate::store::{
    AttemptOutcome, AttemptRecord, CANCELLED_BY_OPERATOR, DeliveryRecord, Failure, FailureHandler,
    LeasedRun, MAX_LEASE_EXPIRIES, RunKind, RunProgress, RunRecord, RunStatus, StepRecord,
    StepSaved, StoreError, WORKER_LOST,
};
use crate::template::TemplateContext;

/// Longest pause between tries to record a step when the database fails.
const MAX_SAVE_PAUSE: Duration = Duration::from_secs(5);

/// Runs `leased` until it finishes, waits for a retry, or shutdown stops it
/// between steps. Every step but the last is recorded here; the last
/// record (the run finished or waits for a retry) is returned unsaved, for
/// the worker to [`save`] while it starts its next run.
pub(super) async fn execute(shared: &Shared, leased: LeasedRun) -> Option<StepRecord> {
    let span = tracing::info_span!("run", run = %leased.run.id, rule = %leased.run.rule);
    execute_run(shared, leased.run, leased.delivery)
        .instrument(span)
        .await
}

async fn execute_run(
    shared: &Shared,
    run: RunRecord,
    delivery: Option<DeliveryRecord>,
) -> Option<StepRecord> {
    let resolved = shared.snapshots.resolve(&shared.rules, &run);
    let mut record = execute_steps(shared, &run, &resolved, delivery).await?;
    if let RunProgress::Finished { status, .. } = &record.progress {
        let status = *status;
        match run.kind {
            RunKind::Rule => crate::metrics::run_finished(&run.rule, status),
            RunKind::OnFailure => crate::metrics::on_failure_finished(&run.rule, status),
        }
        if status == RunStatus::Failed
            && run.kind == RunKind::Rule
            && let Ok(resolved) = &resolved
        {
            record.on_failure = failure_handler(&run, resolved.rule(), &record);
        }
    }
    Some(record)
}

/// The `on_failure` run a failed run's record queues, if its rule has
/// `on_failure` steps: which step failed, why, after how many attempts.
fn failure_handler(run: &RunRecord, rule: &Rule, record: &StepRecord) -> Option<FailureHandler> {
    if rule.on_failure.is_empty() {
        return None;
    }
    let RunProgress::Finished { error, .. } = &record.progress else {
        return None;
    };
    let failed_attempt = record
        .attempt
        .as_ref()
        .filter(|a| a.outcome == AttemptOutcome::Failed);
    let step = match failed_attempt {
        Some(attempt) => attempt.step_id.clone(),
        // Failed before a step ran (a lost worker): the step it was at.
        None => rule
            .steps
            .get(record.next_step as usize)
            .map(Step::label)
            .unwrap_or_default(),
    };
    let error = failed_attempt
        .and_then(|a| a.error.clone())
        .or_else(|| error.clone())
        .unwrap_or_default();
    Some(FailureHandler {
        id: ulid::Ulid::new().to_string(),
        every_ms: rule.on_failure_every.map(millis),
        failure: Failure {
            run: run.id.clone(),
            step,
            error,
            attempts: record.attempts_at_next_step,
            count: 1,
        },
    })
}

/// The run's steps — its rule's `actions`, or for an `on_failure` run its
/// `on_failure` steps — from the first unfinished one.
async fn execute_steps(
    shared: &Shared,
    run: &RunRecord,
    resolved: &Result<Resolved, String>,
    delivery: Option<DeliveryRecord>,
) -> Option<StepRecord> {
    if run.lease_expiries >= MAX_LEASE_EXPIRIES {
        // Its workers keep disappearing mid-step (a panic, a node killed):
        // running it again would only lose another.
        let error = format!(
            "{WORKER_LOST}: its lease expired {} times with no step recorded; the step may be killing its worker",
            run.lease_expiries
        );
        return Some(fail_before_steps(shared, run, error));
    }
    let mut cancel = shared.held.signal(&run.id);
    let resolved = match resolved {
        Ok(resolved) => resolved,
        Err(error) => return Some(fail_before_steps(shared, run, error.clone())),
    };
    let steps = match run.kind {
        RunKind::Rule => &resolved.rule().steps,
        RunKind::OnFailure => &resolved.rule().on_failure,
    };
    let Some(delivery) = delivery else {
        let error = format!("its delivery {} is not in the run log", run.delivery_id);
        return Some(fail_before_steps(shared, run, error));
    };
    let mut context = RunContext {
        record: delivery,
        built: None,
    };
    let mut progress = Progress {
        next_step: run.next_step as usize,
        attempts: run.attempt,
        base: run.attempt_base.min(run.attempt),
        outputs: match &run.outputs {
            Value::Object(map) => map.clone(),
            _ => Map::new(),
        },
    };
    loop {
        // Between steps is where shutdown stops a run: the step just done
        // is recorded, the next is left for the next start.
        if shared.shutdown.is_triggered() {
            return None;
        }
        // Between steps too: an operator's cancel means nothing after the
        // step it arrived during runs.
        if cancel.is_cancelled() {
            return Some(progress.record(run, shared, None, false, cancelled()));
        }
        let record = match steps.get(progress.next_step) {
            Some(step) => {
                run_step(
                    shared,
                    run,
                    resolved,
                    &mut context,
                    (step, steps.len()),
                    &mut progress,
                    &mut cancel,
                )
                .await
            }
            // Resumed past the last step (cannot normally happen).
            None => progress.record(
                run,
                shared,
                None,
                false,
                finished(RunStatus::Succeeded, None),
            ),
        };
        if !matches!(record.progress, RunProgress::Continue { .. }) {
            return Some(record);
        }
        match save(shared, record).await {
            Some(saved) if saved.cancel_requested => {
                shared.held.cancel(&run.id);
            }
            Some(_) => {}
            None => return None,
        }
    }
}

/// A run's delivery and template context, built the first time a step
/// reads them (a step with no `if:` and no template never does) and kept
/// for the run's later steps, which change only `steps`.
struct RunContext {
    record: DeliveryRecord,
    /// The delivery (its payload moved into the context) and the context.
    built: Option<(Delivery, TemplateContext)>,
}

impl RunContext {
    /// The delivery and context `step` sees: `steps` is the run's outputs
    /// so far.
    fn for_step(
        &mut self,
        rule: &str,
        run: &RunRecord,
        outputs: &Map<String, Value>,
    ) -> (&Delivery, &TemplateContext) {
        let record = &self.record;
        let (delivery, ctx) = self.built.get_or_insert_with(|| {
            let mut delivery = Delivery::from_record(record);
            let value = template_value(&mut delivery, rule, run, Value::Null);
            (delivery, TemplateContext::new(value))
        });
        ctx.set("steps", Value::Object(outputs.clone()));
        (delivery, ctx)
    }
}

/// Where a run stands, as the store will have it after the current step.
struct Progress {
    next_step: usize,
    /// Attempts made at `next_step`.
    attempts: u32,
    /// Of those, made before a manual retry: not counted against the
    /// step's retry policy (a fresh budget), still counted in numbering.
    base: u32,
    /// `steps.<id>`, secrets redacted.
    outputs: Map<String, Value>,
}

impl Progress {
    fn record(
        &self,
        run: &RunRecord,
        shared: &Shared,
        attempt: Option<AttemptRecord>,
        outputs_changed: bool,
        progress: RunProgress,
    ) -> StepRecord {
        StepRecord {
            run_id: run.id.clone(),
            node: shared.node_id.clone(),
            now_ms: now_ms(),
            attempt,
            next_step: u32::try_from(self.next_step).unwrap_or(u32::MAX),
            attempts_at_next_step: self.attempts,
            outputs: outputs_changed.then(|| Value::Object(self.outputs.clone())),
            progress,
            on_failure: None,
        }
    }

    /// Past `step`: on to the next one, or done.
    fn advance(&mut self, steps: usize) -> RunProgress {
        self.next_step += 1;
        self.attempts = 0;
        self.base = 0;
        if self.next_step >= steps {
            finished(RunStatus::Succeeded, None)
        } else {
            RunProgress::Continue {
                lease_until_ms: lease_until(),
            }
        }
    }
}

fn finished(status: RunStatus, error: Option<String>) -> RunProgress {
    RunProgress::Finished { status, error }
}

fn cancelled() -> RunProgress {
    finished(RunStatus::Cancelled, Some(CANCELLED_BY_OPERATOR.to_owned()))
}

/// One attempt of `step` (or its skip), as the record that stores it.
async fn run_step(
    shared: &Shared,
    run: &RunRecord,
    resolved: &Resolved,
    context: &mut RunContext,
    (step, steps): (&Step, usize),
    progress: &mut Progress,
    cancel: &mut Cancel,
) -> StepRecord {
    let rule = resolved.rule();
    let secrets = resolved.secrets();
    // Parsing the body into a context is most of a run's CPU besides its
    // action: done only for a step that reads it, once per run.
    let seen = (step.reads_context || step.condition.is_some())
        .then(|| context.for_step(&rule.name, run, &progress.outputs));
    let ctx = seen.map(|(_, ctx)| ctx);
    let started_at = now_ms();

    if let (Some(condition), Some((delivery, ctx))) = (&step.condition, seen) {
        let input = MatchInput {
            payload: ctx.value(),
            headers: &delivery.headers,
            query: &delivery.query,
            event: &delivery.event,
            source_ip: delivery.source_ip,
        };
        if let Err(failure) = condition.eval(&input) {
            tracing::info!(step = %step.label(), "step skipped: its `if` does not hold");
            let attempt = AttemptRecord {
                error: Some(secrets.redact(&format!("skipped: `if` does not hold: {failure}"))),
                ..attempt_record(run, step, 0, started_at, AttemptOutcome::Skipped)
            };
            let next = progress.advance(steps);
            return progress.record(run, shared, Some(attempt), false, next);
        }
    }

    let attempt = progress.attempts + 1;
    let key = format!("{}.{}", run.id, step.index);
    let env = ActionEnv {
        client: &shared.client,
        idempotency_key: &key,
        secrets,
    };
    if crate::faults::step_panics(step.id.as_deref()) {
        panic!("injected fault: step {} panics its worker", step.label());
    }
    let outcome = match render_step(step, resolved.templates(), ctx) {
        // Cancelled mid-step: the action's future is dropped, which drops
        // an http/slack request and kills a shell step's process group.
        Ok(rendered) => tokio::select! {
            outcome = actions::execute(&step.action, rendered, &env) => outcome,
            () = cancel.cancelled() => {
                tracing::info!(step = %step.label(), attempt, "step stopped: the run was cancelled");
                let record = AttemptRecord {
                    duration_ms: Some(now_ms().saturating_sub(started_at)),
                    error: Some(CANCELLED_BY_OPERATOR.to_owned()),
                    ..attempt_record(run, step, attempt, started_at, AttemptOutcome::Cancelled)
                };
                return progress.record(run, shared, Some(record), false, cancelled());
            }
        },
        Err(e) => Outcome::failed(Value::Null, Fault::Final, format!("a template failed: {e}")),
    };
    let retry_in = outcome.fault.as_ref().and_then(|fault| {
        retry::after_failure(
            &step.retry,
            attempt - progress.base,
            fault,
            Utc::now(),
            retry::random_jitter(),
        )
    });
    let error = outcome.error.as_deref().map(|e| secrets.redact(e));
    let mut outputs_changed = false;
    let (result, next) = if outcome.succeeded() {
        outputs_changed = progress.set_output(step, &outcome, secrets);
        (AttemptOutcome::Succeeded, progress.advance(steps))
    } else if let Some(delay) = retry_in {
        progress.attempts = attempt;
        let at_ms = now_ms().saturating_add(millis(delay));
        (AttemptOutcome::Retrying, RunProgress::RetryAt { at_ms })
    } else if step.continue_on_error {
        // Later steps (and their `if:`) can look at what failed.
        outputs_changed = progress.set_output(step, &outcome, secrets);
        (AttemptOutcome::Failed, progress.advance(steps))
    } else {
        // Stored with the run: a manual retry numbers on from here.
        progress.attempts = attempt;
        let made = attempt - progress.base;
        let tries = if made > 1 {
            format!(" after {made} attempts")
        } else {
            String::new()
        };
        let why = error.as_deref().unwrap_or("it failed");
        let message = format!("step {} failed{tries}: {why}", step.label());
        (
            AttemptOutcome::Failed,
            finished(RunStatus::Failed, Some(message)),
        )
    };
    tracing::info!(
        step = %step.label(),
        kind = step.action.kind(),
        attempt,
        status = outcome.status,
        outcome = result.as_str(),
        duration_ms = millis(outcome.duration),
        retry_in_ms = retry_in.map(millis),
        error = error.as_deref(),
        "attempt"
    );
    crate::metrics::attempt(step.action.kind(), result, outcome.duration);
    // Redacted as the row is built: a secret never reaches the store.
    let mut request = outcome.request;
    secrets.redact_value_in_place(&mut request);
    let record = AttemptRecord {
        duration_ms: Some(millis(outcome.duration)),
        request,
        status_code: outcome.status,
        response: outcome.body.map(|b| b.redacted_text(secrets)),
        stdout: outcome.stdout.map(|b| b.redacted_text(secrets)),
        stderr: outcome.stderr.map(|b| b.redacted_text(secrets)),
        error,
        ..attempt_record(run, step, attempt, started_at, result)
    };
    progress.record(run, shared, Some(record), outputs_changed, next)
}

impl Progress {
    /// `steps.<id>`: status, body, json, stdout, stderr, duration_ms. Only
    /// steps with an id can be referred to; `false` for the others. Stored
    /// with the run, so redacted: later steps see `***` too.
    fn set_output(&mut self, step: &Step, outcome: &Outcome, secrets: &Secrets) -> bool {
        let Some(id) = &step.id else {
            return false;
        };
        let mut out = Map::new();
        out.insert(
            "status".into(),
            outcome.status.map_or(Value::Null, Value::from),
        );
        // A reply's body, or a command's stdout, may be JSON.
        let mut json = None;
        if let Some(body) = &outcome.body {
            out.insert("body".into(), Value::String(body.redacted_text(secrets)));
            json = body.json();
        }
        if let Some(stdout) = &outcome.stdout {
            out.insert(
                "stdout".into(),
                Value::String(stdout.redacted_text(secrets)),
            );
            json = stdout.json();
        }
        if let Some(stderr) = &outcome.stderr {
            out.insert(
                "stderr".into(),
                Value::String(stderr.redacted_text(secrets)),
            );
        }
        if let Some(mut json) = json {
            secrets.redact_value_in_place(&mut json);
            out.insert("json".into(), json);
        }
        out.insert("duration_ms".into(), Value::from(millis(outcome.duration)));
        self.outputs.insert(id.clone(), Value::Object(out));
        true
    }
}

/// The template context of a step: the delivery's (its payload moved into
/// it), with `rule`, `run` and `steps`; an `on_failure` run's also has
/// `failure` (step, error, attempts, count) and its `run.id` is the failed
/// run's (its own id is `run.handler`).
fn template_value(delivery: &mut Delivery, rule: &str, run: &RunRecord, steps: Value) -> Value {
    let Some(failure) = &run.failure else {
        return delivery.take_template_value(rule, &run.id, steps);
    };
    let mut value = delivery.take_template_value(rule, &failure.run, steps);
    if let Value::Object(map) = &mut value {
        if let Some(Value::Object(run_value)) = map.get_mut("run") {
            run_value.insert("handler".into(), Value::String(run.id.clone()));
        }
        map.insert("failure".into(), failure_value(failure));
    }
    value
}

/// `failure.*` of an `on_failure` step's context.
pub(crate) fn failure_value(failure: &Failure) -> Value {
    serde_json::json!({
        "run": failure.run,
        "step": failure.step,
        "error": failure.error,
        "attempts": failure.attempts,
        "count": failure.count,
    })
}

/// The attempt's identity and outcome, its details left empty.
fn attempt_record(
    run: &RunRecord,
    step: &Step,
    attempt: u32,
    started_at: i64,
    outcome: AttemptOutcome,
) -> AttemptRecord {
    AttemptRecord {
        id: ulid::Ulid::new().to_string(),
        run_id: run.id.clone(),
        step_index: u32::try_from(step.index).unwrap_or(u32::MAX),
        step_id: step.label(),
        attempt,
        started_at,
        duration_ms: None,
        request: Value::Null,
        status_code: None,
        response: None,
        stdout: None,
        stderr: None,
        error: None,
        outcome,
    }
}

/// A run that cannot start its steps (its definition no longer compiles):
/// failed, with why.
fn fail_before_steps(shared: &Shared, run: &RunRecord, error: String) -> StepRecord {
    // The rule's own secrets are unknown here: those of the loaded set.
    let error = shared.rules.load().secrets().redact(&error);
    tracing::error!(error = %error, "run failed before its first step");
    StepRecord {
        run_id: run.id.clone(),
        node: shared.node_id.clone(),
        now_ms: now_ms(),
        attempt: None,
        next_step: run.next_step,
        attempts_at_next_step: run.attempt,
        outputs: None,
        progress: finished(RunStatus::Failed, Some(error)),
        on_failure: None,
    }
}

/// Stores a step's record; `None` if the run is no longer ours to go on
/// with. A database error is retried (the step is not run again), unless
/// shutdown comes first: the lease is then released and the step, whose
/// record was lost, runs again — at-least-once.
pub(super) async fn save(shared: &Shared, record: StepRecord) -> Option<StepSaved> {
    let mut pause = Duration::from_millis(100);
    loop {
        match shared.store.record_step(record.clone()).await {
            Ok(saved) => return Some(saved),
            Err(e @ StoreError::LeaseLost { .. }) => {
                tracing::warn!(error = %e, "another worker has taken the run over");
                return None;
            }
            Err(e) if e.is_transient() => {
                tracing::error!(error = %e, "cannot record a step; retrying");
                if shared.shutdown.is_triggered() {
                    return None;
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(MAX_SAVE_PAUSE);
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot record a step; leaving the run to be resumed");
                return None;
            }
        }
    }
}
