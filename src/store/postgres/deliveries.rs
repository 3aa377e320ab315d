//! SQL of `deliveries` and `dedupe`: accepting a delivery with its runs in
//! one transaction (dedupe race-free across nodes), logging rejections, and
//! reading deliveries back.

use deadpool_postgres::Object;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::{PgContext, from_json, parse_enum, runs, to_json};
use crate::store::{
    AcceptOutcome, DeliveryFilter, DeliveryRecord, DeliveryStatus, DeliverySummary, NewDelivery,
    NewRun, Rejected, Result,
};

pub(super) const ACCEPT: &str = "accept delivery";
pub(super) const REJECT: &str = "record rejected delivery";
pub(super) const GET: &str = "get delivery";
pub(super) const LIST: &str = "list deliveries";

/// An accepted delivery with its JSON columns encoded.
pub(super) struct Accept {
    delivery: NewDelivery,
    headers: String,
    matched: String,
    trace: String,
    runs: Vec<(NewRun, String)>,
    dedupe_window_ms: i64,
}

impl Accept {
    pub(super) fn encode(
        delivery: NewDelivery,
        runs: Vec<NewRun>,
        dedupe_window_ms: i64,
    ) -> Result<Accept> {
        let runs = runs::encode_for_delivery(ACCEPT, &delivery.id, runs)?;
        Ok(Accept {
            headers: to_json(ACCEPT, "headers", &delivery.headers)?,
            matched: to_json(ACCEPT, "matched rules", &delivery.matched)?,
            trace: delivery.trace.get().to_owned(),
            delivery,
            runs,
            dedupe_window_ms,
        })
    }

    /// One transaction: the delivery, its dedupe claim, its runs and a
    /// notification for idle workers, or nothing.
    pub(super) async fn apply(&self, conn: &mut Object, channel: &str) -> Result<AcceptOutcome> {
        let d = &self.delivery;
        let tx = conn.transaction().await.pg(ACCEPT)?;
        let insert = tx
            .prepare_cached(
                "INSERT INTO deliveries (id, source, received_at, status, method, path, query,
                                         headers, remote_addr, event, dedupe_key, body, matched,
                                         trace)
                 VALUES ($1, $2, $3, 'accepted', $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
            )
            .await
            .pg(ACCEPT)?;
        tx.execute(
            &insert,
            &[
                &d.id,
                &d.source,
                &d.received_at,
                &d.method,
                &d.path,
                &d.query,
                &self.headers,
                &d.remote_addr,
                &d.event,
                &d.dedupe_key,
                &d.body,
                &self.matched,
                &self.trace,
            ],
        )
        .await
        .pg(ACCEPT)?;
        if let Some(key) = &d.dedupe_key
            && let Some(first_delivery) = self.claim_key(&tx, key).await?
        {
            // Nothing of it stays. Rolled back before answering: a dropped
            // transaction would hold its locks until the rollback reaches
            // the server.
            tx.rollback().await.pg(ACCEPT)?;
            return Ok(AcceptOutcome::Duplicate { first_delivery });
        }
        for (run, definition) in &self.runs {
            runs::insert_queued(&tx, run, definition, ACCEPT).await?;
        }
        if !self.runs.is_empty() {
            tx.execute("SELECT pg_notify($1, '')", &[&channel])
                .await
                .pg(ACCEPT)?;
        }
        tx.commit().await.pg(ACCEPT)?;
        Ok(AcceptOutcome::Accepted)
    }

    /// Claims the key for this delivery, or returns the first delivery of
    /// its window. A concurrent claim of the same key (another node) waits
    /// on the primary key until the other transaction ends, then sees its
    /// row: exactly one of them is accepted.
    async fn claim_key(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
        key: &str,
    ) -> Result<Option<String>> {
        let d = &self.delivery;
        // A delivery received earlier than the first one (clock skew,
        // reordering) is inside the window too; only one at least a
        // window later starts a new window.
        let claimed = tx
            .query_opt(
                "INSERT INTO dedupe (source, dedupe_key, delivery_id, first_seen_at)
                 VALUES ($1, $2, $3, $4)
                 ON CONFLICT (source, dedupe_key) DO UPDATE
                     SET delivery_id = excluded.delivery_id,
                         first_seen_at = excluded.first_seen_at
                     WHERE $5::bigint <= 0
                        OR excluded.first_seen_at - dedupe.first_seen_at >= $5::bigint
                 RETURNING delivery_id",
                &[
                    &d.source,
                    &key,
                    &d.id,
                    &d.received_at,
                    &self.dedupe_window_ms,
                ],
            )
            .await
            .pg(ACCEPT)?;
        if claimed.is_some() {
            return Ok(None);
        }
        let first = tx
            .query_one(
                "SELECT delivery_id FROM dedupe WHERE source = $1 AND dedupe_key = $2",
                &[&d.source, &key],
            )
            .await
            .pg(ACCEPT)?;
        Ok(Some(first.get(0)))
    }
}

/// A rejected request; no dedupe key is stored (a corrected resend of a
/// kept 422 is not its duplicate).
pub(super) async fn reject(conn: &Object, r: Rejected) -> Result<()> {
    let kept = r.kept.as_ref();
    let headers = match kept {
        Some(k) => to_json(REJECT, "headers", &k.headers)?,
        None => "[]".to_owned(),
    };
    let status = i64::from(r.status);
    let query = kept.and_then(|k| k.query.clone());
    let event = kept.map_or(String::new(), |k| k.event.clone());
    let body = kept.map(|k| k.body.clone());
    conn.execute(
        "INSERT INTO deliveries (id, source, received_at, status, reject_status, reject_reason,
                                 method, path, remote_addr, query, headers, event, body)
         VALUES ($1, $2, $3, 'rejected', $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        &[
            &r.id,
            &r.source,
            &r.received_at,
            &status,
            &r.reason,
            &r.method,
            &r.path,
            &r.remote_addr,
            &query,
            &headers,
            &event,
            &body,
        ],
    )
    .await
    .pg(REJECT)?;
    Ok(())
}

/// A delivery; `with_trace: false` skips the match trace (a leased run's
/// steps never read it).
pub(super) async fn get(
    conn: &impl deadpool_postgres::GenericClient,
    id: &str,
    with_trace: bool,
) -> Result<Option<DeliveryRecord>> {
    let trace = if with_trace { "trace" } else { "'null'" };
    let row = conn
        .query_opt(
            &format!(
                "SELECT id, source, received_at, status, reject_status, reject_reason, method,
                        path, query, headers, remote_addr, event, dedupe_key, body, matched,
                        {trace}
                 FROM deliveries WHERE id = $1"
            ),
            &[&id],
        )
        .await
        .pg(GET)?;
    row.map(|row| record_from_row(&row)).transpose()
}

fn record_from_row(row: &Row) -> Result<DeliveryRecord> {
    let reject_status: Option<i64> = row.get(4);
    Ok(DeliveryRecord {
        id: row.get(0),
        source: row.get(1),
        received_at: row.get(2),
        status: parse_enum(GET, row.get(3), DeliveryStatus::parse)?,
        reject_status: reject_status.and_then(|s| u16::try_from(s).ok()),
        reject_reason: row.get(5),
        method: row.get(6),
        path: row.get(7),
        query: row.get(8),
        headers: from_json(GET, "headers", row.get(9))?,
        remote_addr: row.get(10),
        event: row.get(11),
        dedupe_key: row.get(12),
        body: row.get(13),
        matched: from_json(GET, "matched rules", row.get(14))?,
        trace: from_json(GET, "match trace", row.get(15))?,
    })
}

/// Newest first, keyset-paginated on (received_at, id).
pub(super) async fn list(conn: &Object, filter: &DeliveryFilter) -> Result<Vec<DeliverySummary>> {
    let mut sql = String::from(
        "SELECT id, source, received_at, event, status, reject_status, matched, remote_addr
         FROM deliveries WHERE TRUE",
    );
    let limit = i64::from(filter.effective_limit());
    let mut args: Vec<&(dyn ToSql + Sync)> = Vec::new();
    if let Some(source) = &filter.source {
        args.push(source);
        sql.push_str(&format!(" AND source = ${}", args.len()));
    }
    if let Some(since) = &filter.since_ms {
        args.push(since);
        sql.push_str(&format!(" AND received_at >= ${}", args.len()));
    }
    if let Some(before) = &filter.before_id {
        args.push(before);
        let n = args.len();
        sql.push_str(&format!(
            " AND (received_at, id) < (SELECT received_at, id FROM deliveries WHERE id = ${n})"
        ));
    }
    args.push(&limit);
    sql.push_str(&format!(
        " ORDER BY received_at DESC, id DESC LIMIT ${}",
        args.len()
    ));
    let rows = conn.query(&sql, &args).await.pg(LIST)?;
    rows.iter()
        .map(|row| {
            let reject_status: Option<i64> = row.get(5);
            Ok(DeliverySummary {
                id: row.get(0),
                source: row.get(1),
                received_at: row.get(2),
                event: row.get(3),
                status: parse_enum(LIST, row.get(4), DeliveryStatus::parse)?,
                reject_status: reject_status.and_then(|s| u16::try_from(s).ok()),
                matched: from_json(LIST, "matched rules", row.get(6))?,
                remote_addr: row.get(7),
            })
        })
        .collect()
}
