//! Step records gathered into one transaction (see `batch.rs`): the
//! workers' side of PostgreSQL's group commit.
//!
//! Each record as its own transaction cost PostgreSQL a `BEGIN`, an
//! `INSERT` of the attempt, an `UPDATE` of the run and a commit; with
//! both nodes' workers finishing runs at once, the server's CPU per
//! statement and per commit was what stopped two nodes at ~2,000
//! actions/s. Here the records waiting at a moment are written together:
//! the runs that finished in one multi-row `UPDATE … FROM unnest(…)`, the
//! runs that go on (or wait for a retry) in another, then the attempts of
//! the runs whose lease still held in one multi-row `INSERT`, and one
//! commit.
//!
//! A record whose lease was lost changes nothing: its run's `UPDATE`
//! matches no row (the lease is judged in the same statement), and its
//! attempt is not inserted — its caller gets [`StoreError::LeaseLost`]
//! while the others in the batch commit. The rest of a record (an
//! `on_failure` run to queue, a cancel to finish for a run written back
//! for a retry) is written after the `UPDATE`, in the same transaction. A
//! batch that fails for any reason is applied again one record at a time
//! ([`apply_one`]: the same statements, for a batch of one). A run appears
//! once per batch: its worker waits for one record before the next.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use deadpool_postgres::{Object, Transaction};

use super::batch::{Batch, Job};
use super::listen::Announcer;
use super::{NOW_MS, PgContext, Prepared, cancel, failure};
use crate::store::encode::EncodedStep;
use crate::store::{AttemptRecord, Result, RunKind, RunProgress, RunStatus, StepSaved, StoreError};

pub(super) const RECORD: &str = "record step";

/// A step record checked and encoded for its write.
pub(super) type Step = EncodedStep;

/// The step-record writer of a node's [`super::batch::Batcher`].
pub(super) struct Steps {
    pub(super) announcer: Arc<Announcer>,
    pub(super) schema: String,
}

impl Batch for Steps {
    type Item = Step;
    type Outcome = StepSaved;
    const OP: &'static str = RECORD;
    const MAX: usize = 64;

    async fn write(self: Arc<Self>, conn: Object, jobs: Vec<Job<Step, StepSaved>>) {
        self.write_jobs(conn, jobs).await
    }
}

impl Steps {
    async fn write_jobs(&self, mut conn: Object, jobs: Vec<Job<Step, StepSaved>>) {
        // A second record of one run (never expected) waits for after it.
        let mut seen = HashSet::new();
        let (batch, later): (Vec<_>, Vec<_>) = jobs
            .into_iter()
            .partition(|job| seen.insert(job.item.record.run_id.clone()));
        let steps: Vec<&Step> = batch.iter().map(|job| &job.item).collect();
        let together = match conn.transaction().await.pg(RECORD) {
            Ok(tx) => match write_in(&tx, &self.schema, &steps).await {
                Ok(written) => tx.commit().await.pg(RECORD).map(|()| written),
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        let alone = match together {
            Ok(written) => {
                if written.freed {
                    self.announcer.announce();
                }
                for (job, outcome) in batch.into_iter().zip(written.outcomes) {
                    job.answer(outcome);
                }
                later
            }
            Err(e) => {
                tracing::debug!(error = %e, records = batch.len(), "step record batch failed; applying its records one by one");
                batch.into_iter().chain(later).collect()
            }
        };
        for job in alone {
            let outcome = apply_one(&mut conn, &self.schema, &self.announcer, &job.item).await;
            job.answer(outcome);
        }
    }
}

/// One record in a transaction of its own; a lost lease writes nothing.
pub(super) async fn apply_one(
    conn: &mut Object,
    schema: &str,
    announcer: &Announcer,
    step: &Step,
) -> Result<StepSaved> {
    let tx = conn.transaction().await.pg(RECORD)?;
    let written = write_in(&tx, schema, &[step]).await?;
    let outcome = written
        .outcomes
        .into_iter()
        .next()
        .unwrap_or_else(|| Err(lost(step)))?;
    tx.commit().await.pg(RECORD)?;
    if written.freed {
        announcer.announce();
    }
    Ok(outcome)
}

/// What a batch's statements did.
struct Written {
    /// Per record, in order: saved, or its lease was lost.
    outcomes: Vec<Result<StepSaved>>,
    /// A concurrency slot was freed or an `on_failure` run queued: a
    /// queued run may start on any node.
    freed: bool,
}

fn lost(step: &Step) -> StoreError {
    StoreError::LeaseLost {
        op: RECORD,
        run: step.record.run_id.clone(),
    }
}

/// The batch's statements. Only an error of the whole transaction is an
/// `Err`; a lost lease is one record's outcome.
async fn write_in(tx: &Transaction<'_>, schema: &str, steps: &[&Step]) -> Result<Written> {
    let (finished, advancing): (Vec<&Step>, Vec<&Step>) = steps
        .iter()
        .partition(|s| matches!(s.record.progress, RunProgress::Finished { .. }));
    let mut held: HashMap<String, StepSaved> = HashMap::with_capacity(steps.len());
    let mut freed = false;
    if !finished.is_empty() {
        freed |= finish(tx, schema, &finished, &mut held).await?;
    }
    if !advancing.is_empty() {
        advance(tx, &advancing, &mut held).await?;
    }
    let attempts: Vec<(&AttemptRecord, &str)> = steps
        .iter()
        .filter(|s| held.contains_key(s.run_id()))
        .filter_map(|s| s.record.attempt.as_ref().zip(s.request.as_deref()))
        .collect();
    insert_attempts(tx, &attempts).await?;
    let outcomes = steps
        .iter()
        .map(|s| held.get(s.run_id()).copied().ok_or_else(|| lost(s)))
        .collect();
    Ok(Written { outcomes, freed })
}

/// Runs that finished: ended, leases dropped, `on_failure` runs queued.
/// Whether a slot was freed or a handler queued.
async fn finish(
    tx: &Transaction<'_>,
    schema: &str,
    steps: &[&Step],
    held: &mut HashMap<String, StepSaved>,
) -> Result<bool> {
    let n = steps.len();
    let mut id = Vec::with_capacity(n);
    let mut node = Vec::with_capacity(n);
    let mut status = Vec::with_capacity(n);
    let mut next_step = Vec::with_capacity(n);
    let mut attempt = Vec::with_capacity(n);
    let mut outputs = Vec::with_capacity(n);
    let mut error = Vec::with_capacity(n);
    let mut now = Vec::with_capacity(n);
    let mut attempted = Vec::with_capacity(n);
    let mut by_id: HashMap<&str, (&Step, RunStatus)> = HashMap::with_capacity(n);
    for s in steps {
        let r = &s.record;
        let RunProgress::Finished {
            status: st,
            error: e,
        } = &r.progress
        else {
            continue;
        };
        id.push(r.run_id.as_str());
        node.push(r.node.as_str());
        status.push(st.as_str());
        next_step.push(i64::from(r.next_step));
        attempt.push(i64::from(r.attempts_at_next_step));
        outputs.push(s.outputs.as_deref());
        error.push(e.as_deref());
        now.push(r.now_ms);
        attempted.push(r.attempt.is_some());
        by_id.insert(r.run_id.as_str(), (s, *st));
    }
    let rows = tx
        .prepared_query(
            "UPDATE runs SET status = u.status, next_step = u.next_step, attempt = u.attempt,
                             outputs = COALESCE(u.outputs, runs.outputs), error = u.error,
                             next_attempt_at = NULL, lease_owner = NULL,
                             lease_expires_at = NULL, finished_at = u.now,
                             lease_expiries = CASE WHEN u.attempted THEN 0
                                                   ELSE runs.lease_expiries END,
                             updated_at = u.now
             FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[],
                         $6::text[], $7::text[], $8::bigint[], $9::bool[])
                  AS u (id, node, status, next_step, attempt, outputs, error, now, attempted)
             WHERE runs.id = u.id AND runs.lease_owner = u.node AND runs.status = 'running'
             RETURNING runs.id, runs.concurrency IS NOT NULL, runs.rule, runs.kind",
            &[
                &id, &node, &status, &next_step, &attempt, &outputs, &error, &now, &attempted,
            ],
        )
        .await
        .pg(RECORD)?;
    let mut freed = false;
    for row in &rows {
        let run: &str = row.get(0);
        let Some(&(step, status)) = by_id.get(run) else {
            continue;
        };
        let limited: bool = row.get(1);
        let rule: &str = row.get(2);
        let kind: &str = row.get(3);
        // An `on_failure` run's own failure queues nothing.
        let handler = step
            .record
            .on_failure
            .as_ref()
            .filter(|_| status == RunStatus::Failed && kind == RunKind::Rule.as_str());
        if let Some(handler) = handler {
            failure::queue(tx, schema, run, rule, handler, step.record.now_ms).await?;
        }
        freed |= limited || handler.is_some();
        held.insert(run.to_owned(), StepSaved::default());
    }
    Ok(freed)
}

/// Runs that go on (the lease extended by the database's clock) or wait
/// for a retry (released until due; a cancel asked meanwhile ends them
/// now, as no worker would see the mark).
async fn advance(
    tx: &Transaction<'_>,
    steps: &[&Step],
    held: &mut HashMap<String, StepSaved>,
) -> Result<()> {
    let n = steps.len();
    let mut id = Vec::with_capacity(n);
    let mut node = Vec::with_capacity(n);
    let mut next_step = Vec::with_capacity(n);
    let mut attempt = Vec::with_capacity(n);
    let mut outputs = Vec::with_capacity(n);
    let mut next_attempt_at = Vec::with_capacity(n);
    let mut retry = Vec::with_capacity(n);
    let mut length = Vec::with_capacity(n);
    let mut now = Vec::with_capacity(n);
    let mut by_id: HashMap<&str, &Step> = HashMap::with_capacity(n);
    for s in steps {
        let r = &s.record;
        let (until, is_retry) = match r.progress {
            RunProgress::Continue { lease_until_ms } => (lease_until_ms, false),
            RunProgress::RetryAt { at_ms } => (at_ms, true),
            RunProgress::Finished { .. } => continue,
        };
        id.push(r.run_id.as_str());
        node.push(r.node.as_str());
        next_step.push(i64::from(r.next_step));
        attempt.push(i64::from(r.attempts_at_next_step));
        outputs.push(s.outputs.as_deref());
        next_attempt_at.push(if is_retry { until } else { r.now_ms });
        retry.push(is_retry);
        // Only the lease's length is the engine's; its end is PostgreSQL's.
        length.push(until.saturating_sub(r.now_ms));
        now.push(r.now_ms);
        by_id.insert(r.run_id.as_str(), s);
    }
    let rows = tx
        .prepared_query(
            &format!(
                "UPDATE runs SET attempt_base = CASE WHEN runs.next_step = u.next_step
                                                     THEN runs.attempt_base ELSE 0 END,
                                 next_step = u.next_step, attempt = u.attempt,
                                 outputs = COALESCE(u.outputs, runs.outputs),
                                 next_attempt_at = u.next_attempt_at,
                                 lease_owner = CASE WHEN u.retry THEN NULL
                                                    ELSE runs.lease_owner END,
                                 lease_expires_at = CASE WHEN u.retry THEN NULL
                                                         ELSE {NOW_MS} + u.length END,
                                 lease_expiries = 0, updated_at = u.now
                 FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::text[],
                             $6::bigint[], $7::bool[], $8::bigint[], $9::bigint[])
                      AS u (id, node, next_step, attempt, outputs, next_attempt_at, retry,
                            length, now)
                 WHERE runs.id = u.id AND runs.lease_owner = u.node
                   AND runs.status = 'running'
                 RETURNING runs.id, runs.cancel_requested_at IS NOT NULL, u.retry"
            ),
            &[
                &id,
                &node,
                &next_step,
                &attempt,
                &outputs,
                &next_attempt_at,
                &retry,
                &length,
                &now,
            ],
        )
        .await
        .pg(RECORD)?;
    for row in &rows {
        let run: &str = row.get(0);
        let Some(step) = by_id.get(run) else {
            continue;
        };
        let cancel_requested: bool = row.get(1);
        let is_retry: bool = row.get(2);
        if is_retry && cancel_requested {
            cancel::finish(tx, run, step.record.now_ms, RECORD).await?;
        }
        held.insert(run.to_owned(), StepSaved { cancel_requested });
    }
    Ok(())
}

/// The attempts of the records whose lease held, with their encoded
/// requests.
async fn insert_attempts(tx: &Transaction<'_>, attempts: &[(&AttemptRecord, &str)]) -> Result<()> {
    if attempts.is_empty() {
        return Ok(());
    }
    let n = attempts.len();
    let mut id = Vec::with_capacity(n);
    let mut run_id = Vec::with_capacity(n);
    let mut step_index = Vec::with_capacity(n);
    let mut step_id = Vec::with_capacity(n);
    let mut attempt = Vec::with_capacity(n);
    let mut started_at = Vec::with_capacity(n);
    let mut duration_ms = Vec::with_capacity(n);
    let mut request = Vec::with_capacity(n);
    let mut status_code = Vec::with_capacity(n);
    let mut response = Vec::with_capacity(n);
    let mut stdout = Vec::with_capacity(n);
    let mut stderr = Vec::with_capacity(n);
    let mut error = Vec::with_capacity(n);
    let mut outcome = Vec::with_capacity(n);
    for (a, req) in attempts {
        id.push(a.id.as_str());
        run_id.push(a.run_id.as_str());
        step_index.push(i64::from(a.step_index));
        step_id.push(a.step_id.as_str());
        attempt.push(i64::from(a.attempt));
        started_at.push(a.started_at);
        duration_ms.push(a.duration_ms);
        request.push(*req);
        status_code.push(a.status_code);
        response.push(a.response.as_deref());
        stdout.push(a.stdout.as_deref());
        stderr.push(a.stderr.as_deref());
        error.push(a.error.as_deref());
        outcome.push(a.outcome.as_str());
    }
    tx.prepared_execute(
        "INSERT INTO attempts (id, run_id, step_index, step_id, attempt, started_at, duration_ms,
                               request, status_code, response, stdout, stderr, error, outcome)
         SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::bigint[],
                              $6::bigint[], $7::bigint[], $8::text[], $9::bigint[], $10::text[],
                              $11::text[], $12::text[], $13::text[], $14::text[])",
        &[
            &id,
            &run_id,
            &step_index,
            &step_id,
            &attempt,
            &started_at,
            &duration_ms,
            &request,
            &status_code,
            &response,
            &stdout,
            &stderr,
            &error,
            &outcome,
        ],
    )
    .await
    .pg(RECORD)?;
    Ok(())
}
