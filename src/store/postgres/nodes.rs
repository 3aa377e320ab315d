//! SQL of the `nodes` table on PostgreSQL: the nodes registry. Heartbeat
//! times and ages come from PostgreSQL's clock, never a node's.

use deadpool_postgres::Object;
use tokio_postgres::Row;

use super::{NOW_MS, PgContext, Prepared, to_u32};
use crate::store::{NodeInfo, NodeRecord, Result};

pub(super) const BEAT: &str = "register node";
pub(super) const LIST: &str = "list nodes";
pub(super) const FORGET: &str = "forget silent nodes";
pub(super) const REMOVE: &str = "remove node";

pub(super) async fn beat(conn: &Object, node: &NodeInfo) -> Result<()> {
    conn.prepared_execute(
        &format!(
            "INSERT INTO nodes (id, version, listen, admin_listen, receive, workers,
                                rule_set_hash, started_at, heartbeat_at)
             SELECT $1, $2, $3, $4, $5, $6, $7, t.ms, t.ms FROM (SELECT {NOW_MS} AS ms) AS t
             ON CONFLICT (id) DO UPDATE SET
                 version = excluded.version, listen = excluded.listen,
                 admin_listen = excluded.admin_listen, receive = excluded.receive,
                 workers = excluded.workers, rule_set_hash = excluded.rule_set_hash,
                 heartbeat_at = excluded.heartbeat_at"
        ),
        &[
            &node.id,
            &node.version,
            &node.listen,
            &node.admin_listen,
            &node.receive,
            &i64::from(node.workers),
            &node.rule_set_hash,
        ],
    )
    .await
    .pg(BEAT)?;
    Ok(())
}

pub(super) async fn list(conn: &Object) -> Result<Vec<NodeRecord>> {
    let rows = conn
        .prepared_query(
            &format!(
                "SELECT id, version, listen, admin_listen, receive, workers, rule_set_hash,
                        started_at, heartbeat_at, GREATEST({NOW_MS} - heartbeat_at, 0)
                 FROM nodes ORDER BY id"
            ),
            &[],
        )
        .await
        .pg(LIST)?;
    Ok(rows.iter().map(from_row).collect())
}

fn from_row(row: &Row) -> NodeRecord {
    NodeRecord {
        info: NodeInfo {
            id: row.get(0),
            version: row.get(1),
            listen: row.get(2),
            admin_listen: row.get(3),
            receive: row.get(4),
            workers: to_u32(row.get(5)),
            rule_set_hash: row.get(6),
        },
        started_at: row.get(7),
        heartbeat_at: row.get(8),
        heartbeat_age_ms: row.get(9),
    }
}

pub(super) async fn forget(conn: &Object, silent_ms: i64) -> Result<u64> {
    conn.prepared_execute(
        &format!("DELETE FROM nodes WHERE heartbeat_at < {NOW_MS} - $1"),
        &[&silent_ms],
    )
    .await
    .pg(FORGET)
}

pub(super) async fn remove(conn: &Object, id: &str) -> Result<bool> {
    let n = conn
        .prepared_execute("DELETE FROM nodes WHERE id = $1", &[&id])
        .await
        .pg(REMOVE)?;
    Ok(n > 0)
}
