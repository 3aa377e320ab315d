//! SQL of `deliveries`: an accepted delivery encoded for its write
//! (`accepts.rs` writes it with its dedupe claim and runs), logging
//! rejections, and reading deliveries back.

use deadpool_postgres::Object;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::{PgContext, Prepared, from_json, parse_enum, runs, to_json};
use crate::store::{
    DeliveryFilter, DeliveryRecord, DeliveryStatus, DeliverySummary, NewDelivery, NewRun, Rejected,
    Result,
};

pub(super) const ACCEPT: &str = "accept delivery";
pub(super) const REJECT: &str = "record rejected delivery";
pub(super) const GET: &str = "get delivery";
pub(super) const LIST: &str = "list deliveries";

/// An accepted delivery with its JSON columns encoded.
pub(super) struct Accept {
    pub(super) delivery: NewDelivery,
    pub(super) headers: String,
    pub(super) matched: String,
    pub(super) trace: String,
    pub(super) runs: Vec<NewRun>,
    pub(super) dedupe_window_ms: i64,
}

impl Accept {
    pub(super) fn encode(
        delivery: NewDelivery,
        runs: Vec<NewRun>,
        dedupe_window_ms: i64,
    ) -> Result<Accept> {
        let runs = runs::check_for_delivery(ACCEPT, &delivery.id, runs)?;
        Ok(Accept {
            headers: to_json(ACCEPT, "headers", &delivery.headers)?,
            matched: to_json(ACCEPT, "matched rules", &delivery.matched)?,
            trace: delivery.trace.get().to_owned(),
            delivery,
            runs,
            dedupe_window_ms,
        })
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
    conn.prepared_execute(
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

/// The columns [`record_from_row`] reads but the last (the match trace),
/// in its order.
const COLUMNS: &str = "id, source, received_at, status, reject_status, reject_reason, method, \
     path, query, headers, remote_addr, event, dedupe_key, body, matched";

/// A delivery, with its match trace.
pub(super) async fn get(
    conn: &impl deadpool_postgres::GenericClient,
    id: &str,
) -> Result<Option<DeliveryRecord>> {
    let row = conn
        .prepared_opt(
            &format!("SELECT {COLUMNS}, trace FROM deliveries WHERE id = $1"),
            &[&id],
        )
        .await
        .pg(GET)?;
    row.map(|row| record_from_row(&row)).transpose()
}

/// The deliveries of leased runs, by id, without their match traces (a
/// run's steps never read them).
pub(super) async fn get_for_runs(
    conn: &impl deadpool_postgres::GenericClient,
    ids: &[&str],
) -> Result<std::collections::HashMap<String, DeliveryRecord>> {
    let rows = conn
        .prepared_query(
            &format!("SELECT {COLUMNS}, 'null' FROM deliveries WHERE id = ANY($1)"),
            &[&ids],
        )
        .await
        .pg(GET)?;
    rows.iter()
        .map(|row| record_from_row(row).map(|d| (d.id.clone(), d)))
        .collect()
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
    let rows = conn.prepared_query(&sql, &args).await.pg(LIST)?;
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
