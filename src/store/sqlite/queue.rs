//! The workers' writes: leasing due runs (honouring per-rule concurrency),
//! recording a step together with the run's progress, and the lease
//! heartbeat, release and reclaim. Every function runs on the writer, so a
//! lease decision and the writes it depends on are one transaction.

use std::collections::HashMap;

use rusqlite::{Connection, params};

use rusqlite::OptionalExtension;

use super::{attempts, cancel, deliveries, enum_column, failure, runs, to_json};
use crate::store::encode::EncodedStep;
use crate::store::{
    Context, LeaseRequest, LeasedRun, Release, Renewal, Result, RunKind, RunProgress, RunStatus,
    StepRecord, StepSaved, StoreError,
};

pub(super) const LEASE: &str = "lease runs";
pub(super) const RECORD: &str = "record step";
pub(super) const RENEW: &str = "renew leases";
pub(super) const RELEASE: &str = "release leases";
pub(super) const RECLAIM: &str = "reclaim leases";

/// How many candidates are read per run asked for: queued runs of a rule
/// at its limit are skipped, and should not hide due runs behind them.
const SCAN_FACTOR: u32 = 4;

/// What the writer decided: the runs now leased, and when the next waiting
/// run comes due. The leased runs are read back on a reader connection
/// ([`load`]), keeping the writer's critical section to the decision.
pub(super) struct Lease {
    pub(super) ids: Vec<String>,
    pub(super) next_due_ms: Option<i64>,
}

pub(super) fn lease(conn: &Connection, req: &LeaseRequest) -> Result<Lease> {
    // Due, not leased (or the lease expired), and — for a queued run of a
    // limited rule — a slot free before this batch. The batch itself is
    // counted below.
    let candidates = conn
        .prepare_cached(
            "SELECT id, rule, status, concurrency, cancel_requested_at IS NOT NULL, concurrency_key
             FROM runs
             WHERE status IN ('queued', 'running')
               AND next_attempt_at <= ?1
               AND (lease_owner IS NULL OR lease_expires_at <= ?1)
               AND (status = 'running' OR concurrency IS NULL
                    OR concurrency > (SELECT COUNT(*) FROM runs AS other
                                      WHERE other.rule = runs.rule AND other.status = 'running'
                                        AND other.concurrency_key IS runs.concurrency_key))
             ORDER BY next_attempt_at, id
             LIMIT ?2",
        )
        .and_then(|mut stmt| {
            stmt.query_map(
                params![req.now_ms, req.limit.saturating_mul(SCAN_FACTOR)],
                |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get::<_, String>(1)?,
                        enum_column(row, 2, RunStatus::parse)?,
                        row.get::<_, Option<u32>>(3)?,
                        row.get::<_, bool>(4)?,
                        row.get::<_, Option<String>>(5)?,
                    ))
                },
            )?
            .collect::<rusqlite::Result<Vec<_>>>()
        })
        .ctx(LEASE)?;

    // Runs in progress per (rule, key); the key is NULL for a rule-wide limit.
    let mut in_progress: HashMap<(String, Option<String>), u32> = HashMap::new();
    let mut ids = Vec::new();
    for (id, rule, status, concurrency, cancel_requested, key) in candidates {
        if ids.len() >= req.limit as usize {
            break;
        }
        if cancel_requested {
            // Its worker is gone (the lease is free or expired): nobody
            // else will stop it, so the cancel completes here.
            cancel::finish(conn, &id, req.now_ms).ctx(LEASE)?;
            continue;
        }
        if status == RunStatus::Queued
            && let Some(limit) = concurrency
        {
            let slot = (rule, key);
            let count = match in_progress.get(&slot) {
                Some(&n) => n,
                None => running_of_rule(conn, &slot.0, slot.1.as_deref())?,
            };
            if count >= limit {
                in_progress.insert(slot, count);
                continue;
            }
            in_progress.insert(slot, count + 1);
        }
        // A lease still named (expired: the candidates' condition) is a
        // lost worker's: counted, so the engine can give up on the run.
        conn.prepare_cached(
            "UPDATE runs SET status = 'running', lease_owner = ?2, lease_expires_at = ?3,
                             lease_expiries = lease_expiries
                                 + (CASE WHEN lease_owner IS NULL THEN 0 ELSE 1 END),
                             updated_at = ?4
             WHERE id = ?1",
        )
        .and_then(|mut stmt| {
            stmt.execute(params![
                id,
                req.node,
                req.now_ms.saturating_add(req.lease_ms),
                req.now_ms
            ])
        })
        .ctx(LEASE)?;
        ids.push(id);
    }

    let next_due_ms: Option<i64> = conn
        .prepare_cached(
            "SELECT MIN(next_attempt_at) FROM runs
             WHERE status IN ('queued', 'running') AND next_attempt_at > ?1",
        )
        .and_then(|mut stmt| stmt.query_row([req.now_ms], |row| row.get(0)))
        .ctx(LEASE)?;
    Ok(Lease { ids, next_due_ms })
}

/// The leased runs with their deliveries, read after the lease committed.
pub(super) fn load(conn: &Connection, ids: &[String]) -> Result<Vec<LeasedRun>> {
    let mut leased = Vec::with_capacity(ids.len());
    for id in ids {
        // Gone only if deleted since (retention): nothing to run then.
        let Some(run) = runs::get(conn, id).ctx(LEASE)? else {
            continue;
        };
        let delivery = deliveries::get_for_run(conn, &run.delivery_id)?;
        leased.push(LeasedRun { run, delivery });
    }
    Ok(leased)
}

fn running_of_rule(conn: &Connection, rule: &str, key: Option<&str>) -> Result<u32> {
    let count: i64 = conn
        .prepare_cached(
            "SELECT COUNT(*) FROM runs
             WHERE rule = ?1 AND status = 'running' AND concurrency_key IS ?2",
        )
        .and_then(|mut stmt| stmt.query_row(params![rule, key], |row| row.get(0)))
        .ctx(LEASE)?;
    Ok(u32::try_from(count).unwrap_or(u32::MAX))
}

/// A step record checked and encoded, ready for the writer.
pub(super) struct Record(EncodedStep);

impl Record {
    pub(super) fn encode(record: StepRecord) -> Result<Record> {
        EncodedStep::encode(RECORD, record).map(Record)
    }

    /// One writer command: a lost lease rolls the attempt back too.
    pub(super) fn apply(&self, conn: &Connection) -> Result<StepSaved> {
        let r = &self.0.record;
        if let (Some(attempt), Some(request)) = (&r.attempt, &self.0.request) {
            attempts::insert(conn, attempt, request).ctx(RECORD)?;
        }
        // `status` is written only when it changes: SQLite checks the
        // table's CHECK (a five-value IN list, through a temporary b-tree)
        // on every write of it.
        let lost = || StoreError::LeaseLost {
            op: RECORD,
            run: r.run_id.clone(),
        };
        match &r.progress {
            RunProgress::Continue { lease_until_ms } => {
                let cancel_requested = self
                    .advance(
                        conn,
                        Some(r.now_ms),
                        Some(r.node.as_str()),
                        Some(*lease_until_ms),
                    )
                    .ctx(RECORD)?
                    .ok_or_else(lost)?;
                Ok(StepSaved { cancel_requested })
            }
            RunProgress::RetryAt { at_ms } => {
                let cancel_requested = self
                    .advance(conn, Some(*at_ms), None, None)
                    .ctx(RECORD)?
                    .ok_or_else(lost)?;
                if cancel_requested {
                    // Unleased from now on: no worker would see the mark.
                    cancel::finish(conn, &r.run_id, r.now_ms).ctx(RECORD)?;
                }
                Ok(StepSaved { cancel_requested })
            }
            RunProgress::Finished { status, error } => {
                let finished: Option<(String, String)> = conn
                    .prepare_cached(
                        "UPDATE runs SET status = ?3, next_step = ?4, attempt = ?5,
                                         outputs = COALESCE(?6, outputs), error = ?7,
                                         next_attempt_at = NULL, lease_owner = NULL,
                                         lease_expires_at = NULL, finished_at = ?8,
                                         lease_expiries = CASE WHEN ?9 THEN 0
                                                               ELSE lease_expiries END,
                                         updated_at = ?8
                         WHERE id = ?1 AND lease_owner = ?2 AND status = 'running'
                         RETURNING rule, kind",
                    )
                    .and_then(|mut stmt| {
                        stmt.query_row(
                            params![
                                r.run_id,
                                r.node,
                                status.as_str(),
                                r.next_step,
                                r.attempts_at_next_step,
                                self.0.outputs,
                                error,
                                r.now_ms,
                                // A step recorded: its worker was not lost.
                                r.attempt.is_some(),
                            ],
                            |row| Ok((row.get(0)?, row.get(1)?)),
                        )
                        .optional()
                    })
                    .ctx(RECORD)?;
                let (rule, kind) = finished.ok_or_else(lost)?;
                // An `on_failure` run's own failure queues nothing.
                if *status == RunStatus::Failed
                    && kind == RunKind::Rule.as_str()
                    && let Some(handler) = &r.on_failure
                {
                    failure::queue(conn, &r.run_id, &rule, handler, r.now_ms)?;
                }
                Ok(StepSaved::default())
            }
        }
    }
}

impl Record {
    /// The run stays `running`: at a new step, or waiting for a retry.
    /// `None` if the lease is lost; else whether its cancel is requested.
    fn advance(
        &self,
        conn: &Connection,
        next_attempt_at: Option<i64>,
        lease_owner: Option<&str>,
        lease_expires_at: Option<i64>,
    ) -> rusqlite::Result<Option<bool>> {
        let r = &self.0.record;
        conn.prepare_cached(
            "UPDATE runs SET attempt_base = CASE WHEN next_step = ?3 THEN attempt_base ELSE 0 END,
                             next_step = ?3, attempt = ?4, outputs = COALESCE(?5, outputs),
                             next_attempt_at = ?6, lease_owner = ?7, lease_expires_at = ?8,
                             lease_expiries = 0, updated_at = ?9
             WHERE id = ?1 AND lease_owner = ?2 AND status = 'running'
             RETURNING cancel_requested_at IS NOT NULL",
        )?
        .query_row(
            params![
                r.run_id,
                r.node,
                r.next_step,
                r.attempts_at_next_step,
                self.0.outputs,
                next_attempt_at,
                lease_owner,
                lease_expires_at,
                r.now_ms,
            ],
            |row| row.get(0),
        )
        .optional()
    }
}

/// `ids` as one JSON array parameter, for `IN (SELECT value FROM
/// json_each(?))`: one cached statement whatever the number of ids.
pub(super) fn id_list(op: &'static str, ids: &[String]) -> Result<String> {
    to_json(op, "run ids", ids)
}

/// Extends only the leases of `ids` still held by `node`.
pub(super) fn renew(conn: &Connection, node: &str, ids: &str, until_ms: i64) -> Result<Renewal> {
    let mut renewal = Renewal::default();
    let mut stmt = conn
        .prepare_cached(
            "UPDATE runs SET lease_expires_at = ?3
             WHERE lease_owner = ?1 AND status = 'running'
               AND id IN (SELECT value FROM json_each(?2))
             RETURNING id, cancel_requested_at IS NOT NULL",
        )
        .ctx(RENEW)?;
    let rows = stmt
        .query_map(params![node, ids, until_ms], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, bool>(1)?))
        })
        .ctx(RENEW)?;
    for row in rows {
        let (id, cancel) = row.ctx(RENEW)?;
        if cancel {
            renewal.cancel_requested.push(id.clone());
        }
        renewal.held.push(id);
    }
    Ok(renewal)
}

/// Gives back `node`'s leases on `ids` (see [`Release`]).
pub(super) fn release_runs(
    conn: &Connection,
    node: &str,
    ids: &str,
    how: Release,
    now_ms: i64,
) -> Result<u64> {
    let sql = match how {
        Release::Untouched => {
            "UPDATE runs SET lease_owner = NULL, lease_expires_at = NULL, updated_at = ?3
             WHERE lease_owner = ?1 AND id IN (SELECT value FROM json_each(?2))"
        }
        // The owner stays named: the next lease sees an expired lease and
        // counts it.
        Release::WorkerLost => {
            "UPDATE runs SET lease_expires_at = ?3, updated_at = ?3
             WHERE lease_owner = ?1 AND id IN (SELECT value FROM json_each(?2))"
        }
    };
    let n = conn
        .prepare_cached(sql)
        .and_then(|mut stmt| stmt.execute(params![node, ids, now_ms]))
        .ctx(RELEASE)?;
    Ok(n as u64)
}

pub(super) fn release(conn: &Connection, node: &str, now_ms: i64) -> Result<u64> {
    let n = conn
        .prepare_cached(
            "UPDATE runs SET lease_owner = NULL, lease_expires_at = NULL, updated_at = ?2
             WHERE lease_owner = ?1",
        )
        .and_then(|mut stmt| stmt.execute(params![node, now_ms]))
        .ctx(RELEASE)?;
    Ok(n as u64)
}

/// SQLite: one process per file, so at startup every lease is a dead
/// process's. The runs become due now, at their first unfinished step.
pub(super) fn reclaim(conn: &Connection, now_ms: i64) -> Result<u64> {
    let n = conn
        .prepare_cached(
            "UPDATE runs SET lease_owner = NULL, lease_expires_at = NULL,
                             next_attempt_at = COALESCE(next_attempt_at, ?1), updated_at = ?1
             WHERE status IN ('queued', 'running')
               AND (lease_owner IS NOT NULL OR next_attempt_at IS NULL)",
        )
        .and_then(|mut stmt| stmt.execute([now_ms]))
        .ctx(RECLAIM)?;
    Ok(n as u64)
}
