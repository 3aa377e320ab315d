//! SQL of the `operator_actions` table on PostgreSQL: the audit trail.

use deadpool_postgres::{GenericClient, Object};
use tokio_postgres::Row;

use super::{PgContext, Prepared, from_json, parse_enum, to_json};
use crate::store::{ActionKind, OperatorAction, Result, Via};

pub(super) const RECORD: &str = "record operator action";
pub(super) const LIST: &str = "list operator actions";

pub(super) async fn record(conn: &Object, a: &OperatorAction) -> Result<()> {
    let detail = to_json(RECORD, "action detail", &a.detail)?;
    conn.prepared_execute(
        "INSERT INTO operator_actions (id, at, action, target, via, client, detail)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        &[
            &a.id,
            &a.at,
            &a.action.as_str(),
            &a.target,
            &a.via.as_str(),
            &a.client,
            &detail,
        ],
    )
    .await
    .pg(RECORD)?;
    Ok(())
}

/// Actions on `target` oldest first, or (no target) the latest `limit` of
/// all, newest first.
pub(super) async fn list(
    conn: &Object,
    target: Option<&str>,
    limit: u32,
) -> Result<Vec<OperatorAction>> {
    let limit = i64::from(limit);
    let columns = "id, at, action, target, via, client, detail";
    let rows = match target {
        Some(target) => {
            conn.prepared_query(
                &format!(
                    "SELECT {columns} FROM operator_actions WHERE target = $1
                     ORDER BY at, id LIMIT $2"
                ),
                &[&target, &limit],
            )
            .await
        }
        None => {
            conn.prepared_query(
                &format!(
                    "SELECT {columns} FROM operator_actions ORDER BY at DESC, id DESC LIMIT $1"
                ),
                &[&limit],
            )
            .await
        }
    }
    .pg(LIST)?;
    rows.iter().map(from_row).collect()
}

fn from_row(row: &Row) -> Result<OperatorAction> {
    Ok(OperatorAction {
        id: row.get(0),
        at: row.get(1),
        action: parse_enum(LIST, row.get(2), ActionKind::parse)?,
        target: row.get(3),
        via: parse_enum(LIST, row.get(4), Via::parse)?,
        client: row.get(5),
        detail: from_json(LIST, "action detail", row.get(6))?,
    })
}

/// Retention: entries older than `before_ms` go with the run log.
pub(super) async fn prune(
    conn: &impl GenericClient,
    before_ms: i64,
    batch: i64,
    op: &'static str,
) -> Result<u64> {
    conn.prepared_execute(
        "DELETE FROM operator_actions WHERE id IN (
             SELECT id FROM operator_actions WHERE at < $1 ORDER BY at LIMIT $2)",
        &[&before_ms, &batch],
    )
    .await
    .pg(op)
}
