//! Accepts gathered into one statement (see `batch.rs`): PostgreSQL's
//! group commit for ingest.
//!
//! Each accept as its own transaction cost PostgreSQL five statements and
//! a commit, ~0.5 ms of its CPU per delivery on this machine, and ingest
//! stopped at ~2,600 deliveries/s with both cores busy; a batch of them in
//! one transaction of five statements still made the database wait for a
//! round trip per statement. Here the accepts waiting at a moment are
//! written by one statement — its own transaction, one round trip: the
//! dedupe claims (`INSERT … ON CONFLICT … RETURNING`), the deliveries that
//! won their key or have none, and their runs, each a multi-row insert from
//! `unnest(…)` arrays, chained by data-modifying `WITH` clauses. Foreign
//! keys are checked at the statement's end, when all three are written.
//! Each caller then gets its own answer; the first delivery of a key an
//! accept lost is read after the commit.
//!
//! Dedupe is race-free across nodes through the `dedupe` table's primary
//! key: a claim that meets another node's uncommitted claim of the same
//! key waits for it and then sees it, so exactly one of them is accepted.
//! Claims are inserted in (source, key) order, so two batches never wait
//! for each other in a cycle; two accepts of one key in one batch are kept
//! apart (the later one is applied on its own after the batch), and so are
//! sources with different dedupe windows (one statement per window). A
//! statement that fails for any reason is applied again one accept at a
//! time ([`apply_one`]: the same statement, for a batch of one), so one bad
//! accept fails alone and the others get their own answers.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use deadpool_postgres::Object;

use super::batch::{Batch, Job};
use super::deliveries::{ACCEPT, Accept};
use super::listen::Announcer;
use super::{PgContext, Prepared};
use crate::store::{AcceptOutcome, Result, StoreError};

/// The accept writer of a node's [`super::batch::Batcher`].
pub(super) struct Accepts {
    pub(super) announcer: Arc<Announcer>,
}

impl Batch for Accepts {
    type Item = Accept;
    type Outcome = AcceptOutcome;
    const OP: &'static str = ACCEPT;
    const MAX: usize = 64;

    async fn write(self: Arc<Self>, conn: Object, jobs: Vec<Job<Accept, AcceptOutcome>>) {
        write(&conn, &self.announcer, jobs).await
    }
}

/// Writes `jobs` and answers each.
async fn write(conn: &Object, announcer: &Announcer, jobs: Vec<Job<Accept, AcceptOutcome>>) {
    // A key already claimed earlier in this batch waits for after it.
    let mut seen = HashSet::new();
    let (batch, later): (Vec<_>, Vec<_>) = jobs.into_iter().partition(|job| {
        let d = &job.item.delivery;
        d.dedupe_key
            .as_ref()
            .is_none_or(|key| seen.insert((d.source.clone(), key.clone())))
    });
    // One statement per dedupe window (a source setting); accepts without
    // a key go with the first.
    let mut windows: BTreeMap<Option<i64>, Vec<Job<Accept, AcceptOutcome>>> = BTreeMap::new();
    for job in batch {
        let a = &job.item;
        let window = a.delivery.dedupe_key.as_ref().map(|_| a.dedupe_window_ms);
        windows.entry(window).or_default().push(job);
    }
    let mut keyless = windows.remove(&None).unwrap_or_default();
    let mut groups: Vec<Vec<Job<Accept, AcceptOutcome>>> = windows.into_values().collect();
    match groups.first_mut() {
        Some(first) => first.append(&mut keyless),
        None if !keyless.is_empty() => groups.push(keyless),
        None => {}
    }
    let mut alone = Vec::new();
    for group in groups {
        let accepts: Vec<&Accept> = group.iter().map(|job| &job.item).collect();
        match write_at_once(conn, &accepts).await {
            Ok(outcomes) => {
                if queued_runs(&accepts, &outcomes) {
                    announcer.announce();
                }
                for (job, outcome) in group.into_iter().zip(outcomes) {
                    job.answer(Ok(outcome));
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, accepts = group.len(), "accept batch failed; applying its accepts one by one");
                alone.extend(group);
            }
        }
    }
    for job in alone.into_iter().chain(later) {
        let outcome = apply_one(conn, &job.item, announcer).await;
        job.answer(outcome);
    }
}

/// One accept on its own.
pub(super) async fn apply_one(
    conn: &Object,
    accept: &Accept,
    announcer: &Announcer,
) -> Result<AcceptOutcome> {
    let outcomes = write_at_once(conn, &[accept]).await?;
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

/// The accepts (whose dedupe keys share one window) in one statement; the
/// outcome of each, in order.
async fn write_at_once(conn: &Object, accepts: &[&Accept]) -> Result<Vec<AcceptOutcome>> {
    let window = accepts
        .iter()
        .find(|a| a.delivery.dedupe_key.is_some())
        .map_or(0, |a| a.dedupe_window_ms);
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
    // Claims, in (source, key) order.
    let mut keyed: Vec<&Accept> = accepts
        .iter()
        .copied()
        .filter(|a| a.delivery.dedupe_key.is_some())
        .collect();
    keyed.sort_by(|a, b| {
        (&a.delivery.source, &a.delivery.dedupe_key)
            .cmp(&(&b.delivery.source, &b.delivery.dedupe_key))
    });
    let claim_source: Vec<&str> = keyed.iter().map(|a| a.delivery.source.as_str()).collect();
    let claim_key: Vec<&str> = keyed
        .iter()
        .map(|a| a.delivery.dedupe_key.as_deref().unwrap_or_default())
        .collect();
    let claim_id: Vec<&str> = keyed.iter().map(|a| a.delivery.id.as_str()).collect();
    let claim_at: Vec<i64> = keyed.iter().map(|a| a.delivery.received_at).collect();
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
    let runs: Vec<_> = accepts.iter().flat_map(|a| a.runs.iter()).collect();
    let run_id: Vec<&str> = runs.iter().map(|r| r.id.as_str()).collect();
    let run_delivery: Vec<&str> = runs.iter().map(|r| r.delivery_id.as_str()).collect();
    let run_rule: Vec<&str> = runs.iter().map(|r| r.rule.as_str()).collect();
    let run_at: Vec<i64> = runs.iter().map(|r| r.created_at).collect();
    let run_definition: Vec<&str> = runs.iter().map(|r| r.definition.as_str()).collect();
    let run_concurrency: Vec<Option<i64>> =
        runs.iter().map(|r| r.concurrency.map(i64::from)).collect();
    let run_key: Vec<Option<&str>> = runs.iter().map(|r| r.concurrency_key.as_deref()).collect();
    // As `Accept::claim_key`: a delivery received earlier than the first
    // one is inside the window too; only one a window later starts anew.
    let rows = conn
        .prepared_query(
            "WITH claimed AS (
                 INSERT INTO dedupe (source, dedupe_key, delivery_id, first_seen_at)
                 SELECT * FROM unnest($14::text[], $15::text[], $16::text[], $17::bigint[])
                 ORDER BY 1, 2
                 ON CONFLICT (source, dedupe_key) DO UPDATE
                     SET delivery_id = excluded.delivery_id,
                         first_seen_at = excluded.first_seen_at
                     WHERE $18::bigint <= 0
                        OR excluded.first_seen_at - dedupe.first_seen_at >= $18::bigint
                 RETURNING delivery_id
             ), stored AS (
                 INSERT INTO deliveries (id, source, received_at, status, method, path, query,
                                         headers, remote_addr, event, dedupe_key, body, matched,
                                         trace)
                 SELECT id, source, received_at, 'accepted', method, path, query, headers,
                        remote_addr, event, dedupe_key, body, matched, trace
                 FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[],
                             $6::text[], $7::text[], $8::text[], $9::text[], $10::text[],
                             $11::bytea[], $12::text[], $13::text[])
                      AS u (id, source, received_at, method, path, query, headers, remote_addr,
                            event, dedupe_key, body, matched, trace)
                 WHERE u.dedupe_key IS NULL OR u.id IN (SELECT delivery_id FROM claimed)
                 RETURNING id
             ), queued AS (
                 INSERT INTO runs (id, delivery_id, rule, status, next_step, attempt,
                                   next_attempt_at, created_at, updated_at, definition, outputs,
                                   concurrency, concurrency_key)
                 SELECT id, delivery_id, rule, 'queued', 0, 0, created_at, created_at,
                        created_at, definition, '{}', concurrency, concurrency_key
                 FROM unnest($19::text[], $20::text[], $21::text[], $22::bigint[], $23::text[],
                             $24::bigint[], $25::text[])
                      AS r (id, delivery_id, rule, created_at, definition, concurrency,
                            concurrency_key)
                 WHERE r.delivery_id IN (SELECT id FROM stored)
             )
             SELECT id FROM stored",
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
                &claim_source,
                &claim_key,
                &claim_id,
                &claim_at,
                &window,
                &run_id,
                &run_delivery,
                &run_rule,
                &run_at,
                &run_definition,
                &run_concurrency,
                &run_key,
            ],
        )
        .await
        .pg(ACCEPT)?;
    let stored: HashSet<&str> = rows.iter().map(|row| row.get(0)).collect();
    let lost: Vec<&Accept> = accepts
        .iter()
        .copied()
        .filter(|a| !stored.contains(a.delivery.id.as_str()))
        .collect();
    let firsts = first_deliveries(conn, &lost).await?;
    accepts
        .iter()
        .map(|a| {
            let d = &a.delivery;
            if stored.contains(d.id.as_str()) {
                return Ok(AcceptOutcome::Accepted);
            }
            let key = d.dedupe_key.as_deref().unwrap_or_default();
            let first = firsts
                .get(&(d.source.as_str(), key))
                .cloned()
                .ok_or_else(|| StoreError::Invalid {
                    op: ACCEPT,
                    message: format!("delivery {} neither stored nor a duplicate", d.id),
                })?;
            Ok(AcceptOutcome::Duplicate {
                first_delivery: first,
            })
        })
        .collect()
}

/// The first delivery of each key `accepts` did not win.
async fn first_deliveries<'a>(
    conn: &Object,
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
    let rows = conn
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
