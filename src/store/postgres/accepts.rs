//! Accepts gathered into one transaction (see `batch.rs`): PostgreSQL's
//! group commit for ingest.
//!
//! Each accept as its own transaction cost PostgreSQL five statements and
//! a commit, ~0.5 ms of its CPU per delivery on this machine, and ingest
//! stopped at ~2,600 deliveries/s with both cores busy. Here the accepts
//! waiting at a moment are written together — the deliveries in one
//! multi-row `INSERT … SELECT FROM unnest(…)`, the dedupe claims in one
//! per dedupe window, the runs in one — and committed once; each caller
//! then gets its own answer.
//!
//! Dedupe is race-free across nodes through the `dedupe` table's primary
//! key: a claim that meets another node's uncommitted claim of the same
//! key waits for it and then sees it, so exactly one of them is accepted.
//! Claims are inserted in (source, key) order, so two batches never wait
//! for each other in a cycle; two accepts of one key in one batch are kept
//! apart (the later one is applied on its own after the batch). A batch
//! that fails for any reason is applied again one accept at a time
//! ([`apply_one`]: the same statements, for a batch of one), so one bad
//! accept fails alone and the others get their own answers.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use deadpool_postgres::{Object, Pool, Transaction};

use super::batch::{Batch, Job};
use super::deliveries::{ACCEPT, Accept};
use super::listen::Announcer;
use super::{PgContext, Prepared, pool_reason};
use crate::store::{AcceptOutcome, Result, StoreError};

/// The accept writer of a node's [`super::batch::Batcher`].
pub(super) struct Accepts {
    pub(super) pool: Pool,
    pub(super) announcer: Arc<Announcer>,
}

impl Batch for Accepts {
    type Item = Accept;
    type Outcome = AcceptOutcome;
    const OP: &'static str = ACCEPT;
    const MAX: usize = 64;

    async fn write(self: Arc<Self>, jobs: Vec<Job<Accept, AcceptOutcome>>) {
        write(&self.pool, &self.announcer, jobs).await
    }
}

/// Writes `jobs` and answers each.
async fn write(pool: &Pool, announcer: &Announcer, jobs: Vec<Job<Accept, AcceptOutcome>>) {
    // A key already claimed earlier in this batch waits for after it.
    let mut seen = HashSet::new();
    let (batch, later): (Vec<_>, Vec<_>) = jobs.into_iter().partition(|job| {
        let d = &job.item.delivery;
        d.dedupe_key
            .as_ref()
            .is_none_or(|key| seen.insert((d.source.clone(), key.clone())))
    });
    let mut conn = match pool.get().await {
        Ok(conn) => conn,
        Err(e) => {
            let message = pool_reason(&e);
            for job in batch.into_iter().chain(later) {
                job.answer(Err(StoreError::Pool {
                    op: ACCEPT,
                    message: message.clone(),
                }));
            }
            return;
        }
    };
    let accepts: Vec<&Accept> = batch.iter().map(|job| &job.item).collect();
    let together = match conn.transaction().await.pg(ACCEPT) {
        Ok(tx) => match write_in(&tx, &accepts).await {
            Ok(outcomes) => tx.commit().await.pg(ACCEPT).map(|()| outcomes),
            Err(e) => Err(e),
        },
        Err(e) => Err(e),
    };
    let alone = match together {
        Ok(outcomes) => {
            if queued_runs(&accepts, &outcomes) {
                announcer.announce();
            }
            for (job, outcome) in batch.into_iter().zip(outcomes) {
                job.answer(Ok(outcome));
            }
            later
        }
        Err(e) => {
            tracing::debug!(error = %e, accepts = batch.len(), "accept batch failed; applying its accepts one by one");
            batch.into_iter().chain(later).collect()
        }
    };
    for job in alone {
        let outcome = apply_one(&mut conn, &job.item, announcer).await;
        job.answer(outcome);
    }
}

/// One accept in a transaction of its own.
pub(super) async fn apply_one(
    conn: &mut Object,
    accept: &Accept,
    announcer: &Announcer,
) -> Result<AcceptOutcome> {
    let tx = conn.transaction().await.pg(ACCEPT)?;
    let outcomes = write_in(&tx, &[accept]).await?;
    tx.commit().await.pg(ACCEPT)?;
    if queued_runs(&[accept], &outcomes) {
        announcer.announce();
    }
    outcomes
        .into_iter()
        .next()
        .ok_or_else(|| StoreError::Invalid {
            op: ACCEPT,
            message: "an accept without an outcome".to_owned(),
        })
}

/// Whether an accepted delivery of `accepts` came with runs.
fn queued_runs(accepts: &[&Accept], outcomes: &[AcceptOutcome]) -> bool {
    accepts
        .iter()
        .zip(outcomes)
        .any(|(a, o)| matches!(o, AcceptOutcome::Accepted) && !a.runs.is_empty())
}

/// The batch's statements; the outcome of each accept, in order.
async fn write_in(tx: &Transaction<'_>, accepts: &[&Accept]) -> Result<Vec<AcceptOutcome>> {
    insert_deliveries(tx, accepts).await?;
    // Claims, one statement per dedupe window (a source setting).
    let mut by_window: BTreeMap<i64, Vec<&Accept>> = BTreeMap::new();
    for a in accepts {
        if a.delivery.dedupe_key.is_some() {
            by_window.entry(a.dedupe_window_ms).or_default().push(a);
        }
    }
    let mut claimed: HashSet<String> = HashSet::new();
    let mut unclaimed: Vec<&Accept> = Vec::new();
    for (window, mut accepts) in by_window {
        accepts.sort_by(|a, b| {
            (&a.delivery.source, &a.delivery.dedupe_key)
                .cmp(&(&b.delivery.source, &b.delivery.dedupe_key))
        });
        let won = claim(tx, &accepts, window).await?;
        for a in accepts {
            if won.contains(&a.delivery.id) {
                claimed.insert(a.delivery.id.clone());
            } else {
                unclaimed.push(a);
            }
        }
    }
    let firsts = first_deliveries(tx, &unclaimed).await?;
    if !unclaimed.is_empty() {
        let ids: Vec<&str> = unclaimed.iter().map(|a| a.delivery.id.as_str()).collect();
        tx.prepared_execute("DELETE FROM deliveries WHERE id = ANY($1)", &[&ids])
            .await
            .pg(ACCEPT)?;
    }
    let mut outcomes = Vec::with_capacity(accepts.len());
    let mut accepted = Vec::with_capacity(accepts.len());
    for a in accepts {
        let d = &a.delivery;
        match &d.dedupe_key {
            Some(key) if !claimed.contains(&d.id) => {
                let first = firsts
                    .get(&(d.source.as_str(), key.as_str()))
                    .cloned()
                    .ok_or_else(|| StoreError::Invalid {
                        op: ACCEPT,
                        message: format!(
                            "dedupe key of delivery {} neither claimed nor held",
                            d.id
                        ),
                    })?;
                outcomes.push(AcceptOutcome::Duplicate {
                    first_delivery: first,
                });
            }
            _ => {
                outcomes.push(AcceptOutcome::Accepted);
                accepted.push(*a);
            }
        }
    }
    insert_runs(tx, &accepted).await?;
    Ok(outcomes)
}

async fn insert_deliveries(tx: &Transaction<'_>, accepts: &[&Accept]) -> Result<()> {
    let n = accepts.len();
    let mut id = Vec::with_capacity(n);
    let mut source = Vec::with_capacity(n);
    let mut received_at = Vec::with_capacity(n);
    let mut method = Vec::with_capacity(n);
    let mut path = Vec::with_capacity(n);
    let mut query = Vec::with_capacity(n);
    let mut headers = Vec::with_capacity(n);
    let mut remote_addr = Vec::with_capacity(n);
    let mut event = Vec::with_capacity(n);
    let mut dedupe_key = Vec::with_capacity(n);
    let mut body = Vec::with_capacity(n);
    let mut matched = Vec::with_capacity(n);
    let mut trace = Vec::with_capacity(n);
    for a in accepts {
        let d = &a.delivery;
        id.push(d.id.as_str());
        source.push(d.source.as_str());
        received_at.push(d.received_at);
        method.push(d.method.as_str());
        path.push(d.path.as_str());
        query.push(d.query.as_deref());
        headers.push(a.headers.as_str());
        remote_addr.push(d.remote_addr.as_str());
        event.push(d.event.as_str());
        dedupe_key.push(d.dedupe_key.as_deref());
        body.push(d.body.as_slice());
        matched.push(a.matched.as_str());
        trace.push(a.trace.as_str());
    }
    tx.prepared_execute(
        "INSERT INTO deliveries (id, source, received_at, status, method, path, query, headers,
                                 remote_addr, event, dedupe_key, body, matched, trace)
         SELECT id, source, received_at, 'accepted', method, path, query, headers,
                remote_addr, event, dedupe_key, body, matched, trace
         FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[],
                     $7::text[], $8::text[], $9::text[], $10::text[], $11::bytea[], $12::text[],
                     $13::text[])
              AS u (id, source, received_at, method, path, query, headers, remote_addr, event,
                    dedupe_key, body, matched, trace)",
        &[
            &id,
            &source,
            &received_at,
            &method,
            &path,
            &query,
            &headers,
            &remote_addr,
            &event,
            &dedupe_key,
            &body,
            &matched,
            &trace,
        ],
    )
    .await
    .pg(ACCEPT)?;
    Ok(())
}

/// Claims the keys of `accepts` (sorted by source and key, all with this
/// dedupe window): the ids of the deliveries that won their key.
async fn claim(tx: &Transaction<'_>, accepts: &[&Accept], window: i64) -> Result<HashSet<String>> {
    let source: Vec<&str> = accepts.iter().map(|a| a.delivery.source.as_str()).collect();
    let key: Vec<&str> = accepts
        .iter()
        .map(|a| a.delivery.dedupe_key.as_deref().unwrap_or_default())
        .collect();
    let id: Vec<&str> = accepts.iter().map(|a| a.delivery.id.as_str()).collect();
    let at: Vec<i64> = accepts.iter().map(|a| a.delivery.received_at).collect();
    // As `Accept::claim_key`: a delivery received earlier than the first
    // one is inside the window too; only one a window later starts anew.
    let rows = tx
        .prepared_query(
            "INSERT INTO dedupe (source, dedupe_key, delivery_id, first_seen_at)
             SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[])
             ORDER BY 1, 2
             ON CONFLICT (source, dedupe_key) DO UPDATE
                 SET delivery_id = excluded.delivery_id,
                     first_seen_at = excluded.first_seen_at
                 WHERE $5::bigint <= 0
                    OR excluded.first_seen_at - dedupe.first_seen_at >= $5::bigint
             RETURNING delivery_id",
            &[&source, &key, &id, &at, &window],
        )
        .await
        .pg(ACCEPT)?;
    Ok(rows.iter().map(|row| row.get(0)).collect())
}

/// The first delivery of each key `accepts` did not win.
async fn first_deliveries<'a>(
    tx: &Transaction<'_>,
    accepts: &[&'a Accept],
) -> Result<HashMap<(&'a str, &'a str), String>> {
    if accepts.is_empty() {
        return Ok(HashMap::new());
    }
    let source: Vec<&str> = accepts.iter().map(|a| a.delivery.source.as_str()).collect();
    let key: Vec<&str> = accepts
        .iter()
        .map(|a| a.delivery.dedupe_key.as_deref().unwrap_or_default())
        .collect();
    let rows = tx
        .prepared_query(
            "SELECT d.source, d.dedupe_key, d.delivery_id
             FROM dedupe d JOIN unnest($1::text[], $2::text[]) AS u (source, dedupe_key)
                  ON d.source = u.source AND d.dedupe_key = u.dedupe_key",
            &[&source, &key],
        )
        .await
        .pg(ACCEPT)?;
    let mut firsts = HashMap::new();
    for row in &rows {
        let (s, k): (&str, &str) = (row.get(0), row.get(1));
        // Keyed by the accepts' own strings, so the map borrows nothing
        // from the rows.
        if let Some(a) = accepts
            .iter()
            .find(|a| a.delivery.source == s && a.delivery.dedupe_key.as_deref() == Some(k))
        {
            let key = a.delivery.dedupe_key.as_deref().unwrap_or_default();
            firsts.insert((a.delivery.source.as_str(), key), row.get(2));
        }
    }
    Ok(firsts)
}

async fn insert_runs(tx: &Transaction<'_>, accepts: &[&Accept]) -> Result<()> {
    let runs: Vec<_> = accepts.iter().flat_map(|a| a.runs.iter()).collect();
    if runs.is_empty() {
        return Ok(());
    }
    let id: Vec<&str> = runs.iter().map(|(r, _)| r.id.as_str()).collect();
    let delivery: Vec<&str> = runs.iter().map(|(r, _)| r.delivery_id.as_str()).collect();
    let rule: Vec<&str> = runs.iter().map(|(r, _)| r.rule.as_str()).collect();
    let at: Vec<i64> = runs.iter().map(|(r, _)| r.created_at).collect();
    let definition: Vec<&str> = runs.iter().map(|(_, d)| d.as_str()).collect();
    let concurrency: Vec<Option<i64>> = runs
        .iter()
        .map(|(r, _)| r.concurrency.map(i64::from))
        .collect();
    let key: Vec<Option<&str>> = runs
        .iter()
        .map(|(r, _)| r.concurrency_key.as_deref())
        .collect();
    tx.prepared_execute(
        "INSERT INTO runs (id, delivery_id, rule, status, next_step, attempt, next_attempt_at,
                           created_at, updated_at, definition, outputs, concurrency,
                           concurrency_key)
         SELECT id, delivery_id, rule, 'queued', 0, 0, created_at, created_at, created_at,
                definition, '{}', concurrency, concurrency_key
         FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[],
                     $6::bigint[], $7::text[])
              AS u (id, delivery_id, rule, created_at, definition, concurrency,
                    concurrency_key)",
        &[&id, &delivery, &rule, &at, &definition, &concurrency, &key],
    )
    .await
    .pg(ACCEPT)?;
    Ok(())
}
