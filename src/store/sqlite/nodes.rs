//! SQL of the `nodes` table: the nodes registry. SQLite has one process
//! per file: its clock is this process's, and a beat deletes the rows of
//! earlier processes.

use rusqlite::{Connection, Row, params};

use crate::store::{Context, NodeInfo, NodeRecord, Result};

pub(super) const BEAT: &str = "register node";
pub(super) const LIST: &str = "list nodes";
pub(super) const FORGET: &str = "forget silent nodes";
pub(super) const REMOVE: &str = "remove node";

pub(super) fn beat(conn: &Connection, node: &NodeInfo, now_ms: i64) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO nodes (id, version, listen, admin_listen, receive, workers,
                            rule_set_hash, started_at, heartbeat_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)
         ON CONFLICT (id) DO UPDATE SET
             version = excluded.version, listen = excluded.listen,
             admin_listen = excluded.admin_listen, receive = excluded.receive,
             workers = excluded.workers, rule_set_hash = excluded.rule_set_hash,
             heartbeat_at = excluded.heartbeat_at",
    )
    .and_then(|mut stmt| {
        stmt.execute(params![
            node.id,
            node.version,
            node.listen,
            node.admin_listen,
            node.receive,
            node.workers,
            node.rule_set_hash,
            now_ms,
        ])
    })
    .ctx(BEAT)?;
    // One process per file: any other row is of a process gone.
    conn.prepare_cached("DELETE FROM nodes WHERE id <> ?1")
        .and_then(|mut stmt| stmt.execute([&node.id]))
        .ctx(BEAT)?;
    Ok(())
}

pub(super) fn list(conn: &Connection, now_ms: i64) -> Result<Vec<NodeRecord>> {
    conn.prepare_cached(
        "SELECT id, version, listen, admin_listen, receive, workers, rule_set_hash,
                started_at, heartbeat_at
         FROM nodes ORDER BY id",
    )
    .and_then(|mut stmt| {
        stmt.query_map([], |row| from_row(row, now_ms))?
            .collect::<rusqlite::Result<Vec<_>>>()
    })
    .ctx(LIST)
}

fn from_row(row: &Row<'_>, now_ms: i64) -> rusqlite::Result<NodeRecord> {
    let heartbeat_at: i64 = row.get(8)?;
    Ok(NodeRecord {
        info: NodeInfo {
            id: row.get(0)?,
            version: row.get(1)?,
            listen: row.get(2)?,
            admin_listen: row.get(3)?,
            receive: row.get(4)?,
            workers: row.get(5)?,
            rule_set_hash: row.get(6)?,
        },
        started_at: row.get(7)?,
        heartbeat_at,
        heartbeat_age_ms: (now_ms - heartbeat_at).max(0),
    })
}

pub(super) fn forget(conn: &Connection, silent_ms: i64, now_ms: i64) -> Result<u64> {
    let n = conn
        .prepare_cached("DELETE FROM nodes WHERE heartbeat_at < ?1")
        .and_then(|mut stmt| stmt.execute([now_ms - silent_ms]))
        .ctx(FORGET)?;
    Ok(n as u64)
}

pub(super) fn remove(conn: &Connection, id: &str) -> Result<bool> {
    let gone = conn
        .prepare_cached("DELETE FROM nodes WHERE id = ?1")
        .and_then(|mut stmt| stmt.execute([id]))
        .ctx(REMOVE)?;
    Ok(gone > 0)
}
