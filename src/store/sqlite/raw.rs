//! A SQLite run log as the source of a copy (`store::copy`): raw rows in id
//! order, column names, ids. Opened like the writer (so an older file's
//! schema is brought up to date first), read on the caller's thread.

use std::path::{Path, PathBuf};

use rusqlite::Connection;
use rusqlite::types::ValueRef;

use super::{SqliteOptions, connection};
use crate::store::copy::{Cell, RawSource};
use crate::store::{Context, Result, StoreError};

const OP: &str = "read the source run log";

/// Columns read as NULL: a lease belongs to the node that held it, and
/// that node does not follow the run log to its new database.
const NOT_COPIED: &[(&str, &str)] = &[("runs", "lease_owner"), ("runs", "lease_expires_at")];

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
        Ok(names)
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
        let sql = format!(
            "SELECT {list} FROM \"{table}\" WHERE ?1 IS NULL OR id > ?1 ORDER BY id LIMIT ?2"
        );
        let mut stmt = self.conn.prepare(&sql).ctx(OP)?;
        let width = columns.len();
        let rows = stmt
            .query_map(rusqlite::params![after, limit], |row| {
                (0..width)
                    .map(|i| row.get_ref(i).map(cell))
                    .collect::<rusqlite::Result<Vec<Cell>>>()
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
