//! The workers' side on PostgreSQL: leasing due runs with `FOR UPDATE SKIP
//! LOCKED` (nodes never wait for each other's candidates), per-rule
//! concurrency counted under a transaction advisory lock per rule (global
//! across nodes), and the lease heartbeat, release and reclaim. Step
//! records are `steps.rs`.
//!
//! Lease times are PostgreSQL's clock (`NOW_MS`): a lease expires at the
//! database's `now()` plus its duration, and is judged expired by the same
//! clock, so nodes whose clocks disagree never take each other's live
//! runs. The engine passes times from its own clock: only the difference
//! between two (a lease's length) decides a lease; its `now_ms` stamps
//! `updated_at`. Nothing here reads the node's clock.

use std::collections::{BTreeSet, HashMap};

use deadpool_postgres::Object;

use super::listen::Announcer;
use super::{NOW_MS, PgContext, Prepared, cancel, deliveries, lock_key, runs};
use crate::store::{LeaseRequest, Leased, LeasedRun, Release, Renewal, Result};

pub(super) const LEASE: &str = "lease runs";
pub(super) const RENEW: &str = "renew leases";
pub(super) const RELEASE: &str = "release leases";
pub(super) const RECLAIM: &str = "reclaim leases";

/// A concurrency slot: a rule, and the rendered key of keyed concurrency.
type Slot = (String, Option<String>);

/// Candidates read per run asked for: queued runs of a rule at its limit
/// are skipped and should not hide due runs behind them.
const SCAN_FACTOR: i64 = 4;

pub(super) async fn lease(conn: &mut Object, schema: &str, req: &LeaseRequest) -> Result<Leased> {
    let tx = conn.transaction().await.pg(LEASE)?;
    let db_now: i64 = tx
        .prepared_one(&format!("SELECT {NOW_MS}"), &[])
        .await
        .pg(LEASE)?
        .get(0);
    let scan = i64::from(req.limit).saturating_mul(SCAN_FACTOR);
    let candidates = tx
        .prepared_query(
            "SELECT id, rule, status, concurrency, cancel_requested_at IS NOT NULL,
                    concurrency_key
             FROM runs
             WHERE status IN ('queued', 'running')
               AND next_attempt_at <= $1
               AND (lease_owner IS NULL OR lease_expires_at <= $1)
             ORDER BY next_attempt_at, id
             LIMIT $2
             FOR UPDATE SKIP LOCKED",
            &[&db_now, &scan],
        )
        .await
        .pg(LEASE)?;

    // Slots — (rule, key), the key NULL for a rule-wide limit — with a
    // limit and a queued candidate: lock them (in one order, so two
    // leasers never deadlock) and count their runs in progress. Another
    // node leasing the same slot waits here until this commits, then
    // counts these runs too.
    let limited: BTreeSet<Slot> = candidates
        .iter()
        .filter(|row| row.get::<_, &str>(2) == "queued" && row.get::<_, Option<i64>>(3).is_some())
        .map(|row| (row.get::<_, String>(1), row.get::<_, Option<String>>(5)))
        .collect();
    let mut in_progress: HashMap<Slot, i64> = HashMap::new();
    for slot in &limited {
        let name = match &slot.1 {
            Some(key) => format!("rule:{}:key:{key}", slot.0),
            None => format!("rule:{}", slot.0),
        };
        tx.prepared_execute(
            "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
            &[&lock_key(schema, &name)],
        )
        .await
        .pg(LEASE)?;
        let count: i64 = tx
            .prepared_one(
                "SELECT COUNT(*) FROM runs
                 WHERE status = 'running' AND rule = $1
                   AND concurrency_key IS NOT DISTINCT FROM $2",
                &[&slot.0, &slot.1],
            )
            .await
            .pg(LEASE)?
            .get(0);
        in_progress.insert(slot.clone(), count);
    }

    let mut ids: Vec<String> = Vec::new();
    for row in &candidates {
        if ids.len() >= req.limit as usize {
            break;
        }
        let id: String = row.get(0);
        if row.get::<_, bool>(4) {
            // Cancel requested and its worker gone: the cancel ends here.
            cancel::finish(&tx, &id, req.now_ms, LEASE).await?;
            continue;
        }
        if row.get::<_, &str>(2) == "queued"
            && let Some(limit) = row.get::<_, Option<i64>>(3)
        {
            let count = in_progress.entry((row.get(1), row.get(5))).or_insert(0);
            if *count >= limit {
                continue;
            }
            *count += 1;
        }
        ids.push(id);
    }

    let mut leased = Vec::with_capacity(ids.len());
    if !ids.is_empty() {
        // A lease still named (so expired) is a lost worker's: counted.
        let rows = tx
            .prepared_query(
                &format!(
                    "UPDATE runs SET status = 'running', lease_owner = $2,
                                     lease_expires_at = $3::bigint + $4::bigint,
                                     lease_expiries = lease_expiries
                                         + (CASE WHEN lease_owner IS NULL THEN 0 ELSE 1 END),
                                     updated_at = $5
                     WHERE id = ANY($1)
                     RETURNING {}",
                    runs::COLUMNS
                ),
                &[&ids, &req.node, &db_now, &req.lease_ms, &req.now_ms],
            )
            .await
            .pg(LEASE)?;
        let mut by_id = HashMap::new();
        for row in &rows {
            let run = runs::record_from_row(row, LEASE)?;
            by_id.insert(run.id.clone(), run);
        }
        // Their deliveries in one query (a delivery may have several runs).
        let wanted: Vec<&str> = by_id.values().map(|r| r.delivery_id.as_str()).collect();
        let found = deliveries::get_for_runs(&tx, &wanted).await?;
        for id in &ids {
            let Some(run) = by_id.remove(id) else {
                continue;
            };
            let delivery = found.get(&run.delivery_id).cloned();
            leased.push(LeasedRun { run, delivery });
        }
    }
    let next_due_ms: Option<i64> = tx
        .prepared_one(
            "SELECT MIN(next_attempt_at) FROM runs
             WHERE status IN ('queued', 'running') AND next_attempt_at > $1",
            &[&db_now],
        )
        .await
        .pg(LEASE)?
        .get(0);
    // Read inside the transaction: if anything failed, nothing stays leased.
    tx.commit().await.pg(LEASE)?;
    Ok(Leased {
        runs: leased,
        next_due_ms,
    })
}

/// Extends only the leases of `ids` still held by `node`, to `length`
/// milliseconds from PostgreSQL's now.
///
/// Never waits for a row lock: a run whose row is locked right now is
/// having its step recorded by this node's step batch, and the two used to
/// lock the same rows in different orders — a deadlock PostgreSQL breaks
/// only after `deadlock_timeout` (1 s), holding the batch up all that
/// time. Such a run is skipped this round (not in [`Renewal::held`]) and
/// extended by the next one, a second later, well inside its lease.
pub(super) async fn renew(
    conn: &Object,
    node: &str,
    ids: &[String],
    length: i64,
) -> Result<Renewal> {
    let rows = conn
        .prepared_query(
            &format!(
                "WITH free AS (
                     SELECT id FROM runs
                     WHERE lease_owner = $1 AND status = 'running' AND id = ANY($2)
                     FOR UPDATE SKIP LOCKED
                 )
                 UPDATE runs SET lease_expires_at = {NOW_MS} + $3::bigint
                 FROM free WHERE runs.id = free.id
                 RETURNING runs.id, runs.cancel_requested_at IS NOT NULL"
            ),
            &[&node, &ids, &length],
        )
        .await
        .pg(RENEW)?;
    let found: HashMap<String, bool> = rows.iter().map(|row| (row.get(0), row.get(1))).collect();
    let mut renewal = Renewal::default();
    for id in ids {
        if let Some(&cancel) = found.get(id) {
            if cancel {
                renewal.cancel_requested.push(id.clone());
            }
            renewal.held.push(id.clone());
        }
    }
    Ok(renewal)
}

/// Gives back `node`'s leases on `ids` (see [`Release`]).
pub(super) async fn release_runs(
    conn: &Object,
    announcer: &Announcer,
    node: &str,
    ids: &[String],
    how: Release,
    now_ms: i64,
) -> Result<u64> {
    let sql = match how {
        Release::Untouched => {
            "UPDATE runs SET lease_owner = NULL, lease_expires_at = NULL, updated_at = $3
             WHERE lease_owner = $1 AND id = ANY($2)"
                .to_owned()
        }
        // The owner stays named: the next lease sees an expired lease and
        // counts it.
        Release::WorkerLost => format!(
            "UPDATE runs SET lease_expires_at = {NOW_MS}, updated_at = $3
             WHERE lease_owner = $1 AND id = ANY($2)"
        ),
    };
    let n = conn
        .prepared_execute(&sql, &[&node, &ids, &now_ms])
        .await
        .pg(RELEASE)?;
    announcer.announce();
    Ok(n)
}

/// Graceful shutdown: every lease `node` holds goes back at once.
pub(super) async fn release_all(
    conn: &Object,
    announcer: &Announcer,
    node: &str,
    now_ms: i64,
) -> Result<u64> {
    let n = conn
        .prepared_execute(
            "UPDATE runs SET lease_owner = NULL, lease_expires_at = NULL, updated_at = $2
             WHERE lease_owner = $1",
            &[&node, &now_ms],
        )
        .await
        .pg(RELEASE)?;
    announcer.announce();
    Ok(n)
}

/// At startup: only this node's own leases are a dead process's; other
/// nodes' leases are left to expire (they may be alive).
pub(super) async fn reclaim(
    conn: &Object,
    announcer: &Announcer,
    node: &str,
    now_ms: i64,
) -> Result<u64> {
    let n = conn
        .prepared_execute(
            "UPDATE runs SET lease_owner = NULL, lease_expires_at = NULL,
                             next_attempt_at = COALESCE(next_attempt_at, $2), updated_at = $2
             WHERE status IN ('queued', 'running')
               AND (lease_owner = $1 OR next_attempt_at IS NULL)",
            &[&node, &now_ms],
        )
        .await
        .pg(RECLAIM)?;
    if n > 0 {
        announcer.announce();
    }
    Ok(n)
}
