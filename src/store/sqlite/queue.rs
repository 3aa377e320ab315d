//! The workers' writes: leasing due runs (honouring per-rule concurrency),
//! recording a step together with the run's progress, and the lease
//! heartbeat, release and reclaim. Every function runs on the writer, so a
//! lease decision and the writes it depends on are one transaction.

use std::collections::HashMap;

use rusqlite::{Connection, params};

use super::{attempts, deliveries, enum_column, runs, to_json};
use crate::store::{
    Context, LeaseRequest, LeasedRun, Result, RunProgress, RunStatus, StepRecord, StoreError,
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
            "SELECT id, rule, status, concurrency FROM runs
             WHERE status IN ('queued', 'running')
               AND next_attempt_at <= ?1
               AND (lease_owner IS NULL OR lease_expires_at <= ?1)
               AND (status = 'running' OR concurrency IS NULL
                    OR concurrency > (SELECT COUNT(*) FROM runs AS other
                                      WHERE other.rule = runs.rule AND other.status = 'running'))
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
                    ))
                },
            )?
            .collect::<rusqlite::Result<Vec<_>>>()
        })
        .ctx(LEASE)?;

    let mut in_progress: HashMap<String, u32> = HashMap::new();
    let mut ids = Vec::new();
    for (id, rule, status, concurrency) in candidates {
        if ids.len() >= req.limit as usize {
            break;
        }
        if status == RunStatus::Queued
            && let Some(limit) = concurrency
        {
            let count = match in_progress.get(&rule) {
                Some(&n) => n,
                None => running_of_rule(conn, &rule)?,
            };
            if count >= limit {
                in_progress.insert(rule, count);
                continue;
            }
            in_progress.insert(rule, count + 1);
        }
        conn.prepare_cached(
            "UPDATE runs SET status = 'running', lease_owner = ?2, lease_expires_at = ?3,
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

fn running_of_rule(conn: &Connection, rule: &str) -> Result<u32> {
    let count: i64 = conn
        .prepare_cached("SELECT COUNT(*) FROM runs WHERE rule = ?1 AND status = 'running'")
        .and_then(|mut stmt| stmt.query_row([rule], |row| row.get(0)))
        .ctx(LEASE)?;
    Ok(u32::try_from(count).unwrap_or(u32::MAX))
}

/// A step record with its JSON already encoded, ready for the writer.
pub(super) struct Record {
    record: StepRecord,
    request: Option<String>,
    outputs: Option<String>,
}

impl Record {
    pub(super) fn encode(record: StepRecord) -> Result<Record> {
        if let Some(a) = &record.attempt
            && a.run_id != record.run_id
        {
            return Err(StoreError::Invalid {
                op: RECORD,
                message: format!(
                    "attempt of run {} recorded for run {}",
                    a.run_id, record.run_id
                ),
            });
        }
        let request = match &record.attempt {
            Some(a) => Some(to_json(RECORD, "attempt request", &a.request)?),
            None => None,
        };
        let outputs = match &record.outputs {
            Some(o) => Some(to_json(RECORD, "step outputs", o)?),
            None => None,
        };
        Ok(Record {
            record,
            request,
            outputs,
        })
    }

    /// One writer command: a lost lease rolls the attempt back too.
    pub(super) fn apply(&self, conn: &Connection) -> Result<()> {
        let r = &self.record;
        if let (Some(attempt), Some(request)) = (&r.attempt, &self.request) {
            attempts::insert(conn, attempt, request).ctx(RECORD)?;
        }
        // `status` is written only when it changes: SQLite checks the
        // table's CHECK (a five-value IN list, through a temporary b-tree)
        // on every write of it.
        let changed = match &r.progress {
            RunProgress::Continue { lease_until_ms } => self.advance(
                conn,
                Some(r.now_ms),
                Some(r.node.as_str()),
                Some(*lease_until_ms),
            ),
            RunProgress::RetryAt { at_ms } => self.advance(conn, Some(*at_ms), None, None),
            RunProgress::Finished { status, error } => conn
                .prepare_cached(
                    "UPDATE runs SET status = ?3, next_step = ?4, attempt = ?5,
                                     outputs = COALESCE(?6, outputs), error = ?7,
                                     next_attempt_at = NULL, lease_owner = NULL,
                                     lease_expires_at = NULL, finished_at = ?8, updated_at = ?8
                     WHERE id = ?1 AND lease_owner = ?2 AND status = 'running'",
                )
                .and_then(|mut stmt| {
                    stmt.execute(params![
                        r.run_id,
                        r.node,
                        status.as_str(),
                        r.next_step,
                        r.attempts_at_next_step,
                        self.outputs,
                        error,
                        r.now_ms,
                    ])
                }),
        }
        .ctx(RECORD)?;
        if changed == 0 {
            return Err(StoreError::LeaseLost {
                op: RECORD,
                run: r.run_id.clone(),
            });
        }
        Ok(())
    }
}

impl Record {
    /// The run stays `running`: at a new step, or waiting for a retry.
    fn advance(
        &self,
        conn: &Connection,
        next_attempt_at: Option<i64>,
        lease_owner: Option<&str>,
        lease_expires_at: Option<i64>,
    ) -> rusqlite::Result<usize> {
        let r = &self.record;
        conn.prepare_cached(
            "UPDATE runs SET next_step = ?3, attempt = ?4, outputs = COALESCE(?5, outputs),
                             next_attempt_at = ?6, lease_owner = ?7, lease_expires_at = ?8,
                             updated_at = ?9
             WHERE id = ?1 AND lease_owner = ?2 AND status = 'running'",
        )?
        .execute(params![
            r.run_id,
            r.node,
            r.next_step,
            r.attempts_at_next_step,
            self.outputs,
            next_attempt_at,
            lease_owner,
            lease_expires_at,
            r.now_ms,
        ])
    }
}

pub(super) fn renew(conn: &Connection, node: &str, until_ms: i64) -> Result<u64> {
    let n = conn
        .prepare_cached("UPDATE runs SET lease_expires_at = ?2 WHERE lease_owner = ?1")
        .and_then(|mut stmt| stmt.execute(params![node, until_ms]))
        .ctx(RENEW)?;
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
