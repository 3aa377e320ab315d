//! A SQLite run log as the source of a copy (`store::copy`): raw rows in id
//! order, column names, ids. Opened like the writer (so an older file's
//! schema is brought up to date first), read on the caller's thread.

use std::path::{Path, PathBuf};

use rusqlite::Connection;
use rusqlite::types::{Type, ValueRef};

use super::{SqliteOptions, body, connection, deliveries};
use crate::store::copy::{Cell, RawSource};
use crate::store::{Context, Result, StoreError};

const OP: &str = "read the source run log";

/// Columns read as NULL: a lease belongs to the node that held it, and
/// that node does not follow the run log to its new database.
const NOT_COPIED: &[(&str, &str)] = &[("runs", "lease_owner"), ("runs", "lease_expires_at")];

/// Columns that are how this file stores a value, not values: not offered
/// to the target (`read` decodes what they describe).
const STORAGE_ONLY: &[(&str, &str)] = &[
    ("deliveries", "body_encoding"),
    ("deliveries", "excluded_ref"),
];

/// A SQLite file read by `hookflow migrate`.
pub struct SqliteSource {
    path: PathBuf,
    conn: Connection,
}

impl SqliteSource {
    /// Open an existing file (never creates one), applying any migration
    /// it lacks.
    pub fn open(path: &Path) -> Result<SqliteSource> {
        if !path.exists() {
            return Err(StoreError::Open {
                path: path.display().to_string(),
                message: "there is no database there".to_owned(),
            });
        }
        let conn = connection::open_writer(path, &SqliteOptions::default())?;
        Ok(SqliteSource {
            path: path.to_owned(),
            conn,
        })
    }
}

impl RawSource for SqliteSource {
    fn describe(&self) -> String {
        let path = std::fs::canonicalize(&self.path).unwrap_or_else(|_| self.path.clone());
        format!("sqlite://{}", path.display())
    }

    fn columns(&mut self, table: &str) -> Result<Vec<String>> {
        let mut stmt = self
            .conn
            .prepare("SELECT name FROM pragma_table_info(?1) ORDER BY cid")
            .ctx(OP)?;
        let names = stmt
            .query_map([table], |row| row.get::<_, String>(0))
            .ctx(OP)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .ctx(OP)?;
        Ok(names
            .into_iter()
            .filter(|c| !STORAGE_ONLY.contains(&(table, c.as_str())))
            .collect())
    }

    fn read(
        &mut self,
        table: &str,
        columns: &[String],
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Vec<Cell>>> {
        let list = columns
            .iter()
            .map(|c| {
                if NOT_COPIED.contains(&(table, c.as_str())) {
                    format!("NULL AS \"{c}\"")
                } else {
                    format!("\"{c}\"")
                }
            })
            .collect::<Vec<_>>()
            .join(", ");
        // A delivery's body is copied as received, whatever its encoding
        // here (`body.rs`): the encoding is read after the columns asked
        // for, to decode the body, and not passed on.
        let body_at = (table == "deliveries")
            .then(|| columns.iter().position(|c| c == "body"))
            .flatten();
        // Likewise a trace whose excluded rules are stored apart (schema
        // 0012) is copied whole: their list is read after the columns
        // (after the encoding, if any) and put back in.
        let trace_at = (table == "deliveries")
            .then(|| columns.iter().position(|c| c == "trace"))
            .flatten();
        let mut list = list;
        if body_at.is_some() {
            list.push_str(", body_encoding");
        }
        if trace_at.is_some() {
            list.push_str(", (SELECT names FROM trace_excluded WHERE hash = excluded_ref)");
        }
        let sql = format!(
            "SELECT {list} FROM \"{table}\" WHERE ?1 IS NULL OR id > ?1 ORDER BY id LIMIT ?2"
        );
        let mut stmt = self.conn.prepare(&sql).ctx(OP)?;
        let width = columns.len();
        let rows = stmt
            .query_map(rusqlite::params![after, limit], |row| {
                let mut cells = (0..width)
                    .map(|i| row.get_ref(i).map(cell))
                    .collect::<rusqlite::Result<Vec<Cell>>>()?;
                if let Some(at) = body_at {
                    let encoding: String = row.get(width)?;
                    if let Cell::Bytes(stored) = &mut cells[at] {
                        let received =
                            body::decode(std::mem::take(stored), &encoding).map_err(|e| {
                                rusqlite::Error::FromSqlConversionFailure(at, Type::Blob, e.into())
                            })?;
                        *stored = received;
                    }
                }
                if let Some(at) = trace_at {
                    let names_at = width + usize::from(body_at.is_some());
                    let names: Option<String> = row.get(names_at)?;
                    if let (Some(names), Cell::Text(trace)) = (names, &mut cells[at]) {
                        *trace = deliveries::join_excluded(trace, &names).ok_or_else(|| {
                            rusqlite::Error::FromSqlConversionFailure(
                                at,
                                Type::Text,
                                "the stored trace is not a JSON object".into(),
                            )
                        })?;
                    }
                }
                Ok(cells)
            })
            .ctx(OP)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .ctx(OP)?;
        Ok(rows)
    }

    fn ids(&mut self, table: &str) -> Result<Vec<String>> {
        let mut stmt = self
            .conn
            .prepare(&format!("SELECT id FROM \"{table}\""))
            .ctx(OP)?;
        let ids = stmt
            .query_map([], |row| row.get::<_, String>(0))
            .ctx(OP)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .ctx(OP)?;
        Ok(ids)
    }
}

fn cell(value: ValueRef<'_>) -> Cell {
    match value {
        ValueRef::Null => Cell::Null,
        ValueRef::Integer(n) => Cell::Int(n),
        ValueRef::Real(x) => Cell::Real(x),
        ValueRef::Text(t) => Cell::Text(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Cell::Bytes(b.to_vec()),
    }
}
