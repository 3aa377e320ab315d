//! SQL of the `operator_actions` table: the audit trail.

use rusqlite::{Connection, Row, params};

use super::{enum_column, json_column, to_json};
use crate::store::{ActionKind, Context, OperatorAction, Result, Via};

pub(super) const RECORD: &str = "record operator action";
pub(super) const LIST: &str = "list operator actions";

/// Records the trail entry (JSON encoded on the caller's task).
pub(super) struct Record {
    action: OperatorAction,
    detail: String,
}

impl Record {
    pub(super) fn encode(action: OperatorAction) -> Result<Record> {
        let detail = to_json(RECORD, "action detail", &action.detail)?;
        Ok(Record { action, detail })
    }

    pub(super) fn apply(&self, conn: &Connection) -> Result<()> {
        let a = &self.action;
        conn.prepare_cached(
            "INSERT INTO operator_actions (id, at, action, target, via, client, detail)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )
        .and_then(|mut stmt| {
            stmt.execute(params![
                a.id,
                a.at,
                a.action.as_str(),
                a.target,
                a.via.as_str(),
                a.client,
                self.detail,
            ])
        })
        .ctx(RECORD)?;
        Ok(())
    }
}

/// Actions on `target` oldest first, or (no target) the latest `limit`
/// of all, newest first.
pub(super) fn list(
    conn: &Connection,
    target: Option<&str>,
    limit: u32,
) -> Result<Vec<OperatorAction>> {
    let columns = "id, at, action, target, via, client, detail";
    let rows = match target {
        Some(target) => conn
            .prepare_cached(&format!(
                "SELECT {columns} FROM operator_actions WHERE target = ?1
                 ORDER BY at, id LIMIT ?2"
            ))
            .and_then(|mut stmt| {
                stmt.query_map(params![target, limit], from_row)?
                    .collect::<rusqlite::Result<Vec<_>>>()
            }),
        None => conn
            .prepare_cached(&format!(
                "SELECT {columns} FROM operator_actions ORDER BY at DESC, id DESC LIMIT ?1"
            ))
            .and_then(|mut stmt| {
                stmt.query_map(params![limit], from_row)?
                    .collect::<rusqlite::Result<Vec<_>>>()
            }),
    };
    rows.ctx(LIST)
}

fn from_row(row: &Row<'_>) -> rusqlite::Result<OperatorAction> {
    Ok(OperatorAction {
        id: row.get(0)?,
        at: row.get(1)?,
        action: enum_column(row, 2, ActionKind::parse)?,
        target: row.get(3)?,
        via: enum_column(row, 4, Via::parse)?,
        client: row.get(5)?,
        detail: json_column(row, 6)?,
    })
}

/// Retention: entries older than `before_ms` go with the run log.
pub(super) fn prune(conn: &Connection, before_ms: i64, batch: u32) -> rusqlite::Result<usize> {
    conn.prepare_cached(
        "DELETE FROM operator_actions WHERE id IN (
             SELECT id FROM operator_actions WHERE at < ?1 ORDER BY at LIMIT ?2)",
    )?
    .execute(params![before_ms, batch])
}
