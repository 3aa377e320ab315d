//! A PostgreSQL schema as the target of a copy (`store::copy`): raw rows
//! written with binary `COPY`, one transaction per batch together with the
//! resume marker (`hookflow_migrate_marker`), and the dedupe claims
//! rebuilt from the copied deliveries at the end.

use deadpool_postgres::Object;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};

use super::{PgContext, PostgresStore};
use crate::store::copy::{Cell, Marker, RawTarget};
use crate::store::{Result, StoreError};

const OP: &str = "write the target run log";

/// A PostgreSQL schema written by `hookflow migrate`.
pub struct PostgresTarget {
    /// Kept open: it brought the schema up to date and lends its pool.
    _store: PostgresStore,
    conn: Object,
}

impl PostgresTarget {
    /// Connect (never printing the password), apply the schema's
    /// migrations, and make sure the marker table exists.
    pub async fn open(url: &str) -> Result<PostgresTarget> {
        let store = PostgresStore::open(url).await?;
        let conn = store.conn(OP).await?;
        conn.batch_execute(
            "CREATE TABLE IF NOT EXISTS hookflow_migrate_marker (
                 tbl     TEXT   PRIMARY KEY,
                 source  TEXT   NOT NULL,
                 last_id TEXT   NOT NULL,
                 copied  BIGINT NOT NULL
             )",
        )
        .await
        .pg(OP)?;
        Ok(PostgresTarget {
            _store: store,
            conn,
        })
    }

    /// (name, type) of the table's columns in the current schema.
    async fn typed_columns(&self, table: &str) -> Result<Vec<(String, Type)>> {
        let rows = self
            .conn
            .query(
                "SELECT column_name::text, data_type::text FROM information_schema.columns
                 WHERE table_schema = current_schema() AND table_name = $1
                 ORDER BY ordinal_position",
                &[&table],
            )
            .await
            .pg(OP)?;
        rows.iter()
            .map(|row| {
                let name: String = row.get(0);
                let kind: String = row.get(1);
                let ty = match kind.as_str() {
                    "text" => Type::TEXT,
                    "bigint" => Type::INT8,
                    "integer" => Type::INT4,
                    "bytea" => Type::BYTEA,
                    "boolean" => Type::BOOL,
                    "double precision" => Type::FLOAT8,
                    other => {
                        return Err(invalid(format!(
                            "{table}.{name}: cannot copy into a column of type {other}"
                        )));
                    }
                };
                Ok((name, ty))
            })
            .collect()
    }
}

#[async_trait::async_trait]
impl RawTarget for PostgresTarget {
    async fn columns(&mut self, table: &str) -> Result<Vec<String>> {
        Ok(self
            .typed_columns(table)
            .await?
            .into_iter()
            .map(|(name, _)| name)
            .collect())
    }

    async fn marker(&mut self) -> Result<Option<Marker>> {
        let rows = self
            .conn
            .query(
                "SELECT tbl, source, last_id, copied FROM hookflow_migrate_marker",
                &[],
            )
            .await
            .pg(OP)?;
        let Some(first) = rows.first() else {
            return Ok(None);
        };
        Ok(Some(Marker {
            source: first.get(1),
            tables: rows
                .iter()
                .map(|row| {
                    let copied: i64 = row.get(3);
                    (row.get(0), row.get(2), u64::try_from(copied).unwrap_or(0))
                })
                .collect(),
        }))
    }

    async fn count(&mut self, table: &str) -> Result<u64> {
        let n: i64 = self
            .conn
            .query_one(&format!("SELECT count(*) FROM \"{table}\""), &[])
            .await
            .pg(OP)?
            .get(0);
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn write(
        &mut self,
        source: &str,
        table: &str,
        columns: &[String],
        rows: Vec<Vec<Cell>>,
        last_id: &str,
        copied: u64,
    ) -> Result<()> {
        let typed = self.typed_columns(table).await?;
        let mut types = Vec::with_capacity(columns.len());
        for name in columns {
            let ty = typed
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, ty)| ty.clone())
                .ok_or_else(|| invalid(format!("the target's {table} has no column {name}")))?;
            types.push(ty);
        }
        let list = columns
            .iter()
            .map(|c| format!("\"{c}\""))
            .collect::<Vec<_>>()
            .join(", ");
        let tx = self.conn.transaction().await.pg(OP)?;
        let sink = tx
            .copy_in(&format!(
                "COPY \"{table}\" ({list}) FROM STDIN (FORMAT binary)"
            ))
            .await
            .pg(OP)?;
        let writer = BinaryCopyInWriter::new(sink, &types);
        tokio::pin!(writer);
        for row in rows {
            let values = row
                .into_iter()
                .zip(columns.iter().zip(&types))
                .map(|(cell, (name, ty))| value(table, name, ty, cell))
                .collect::<Result<Vec<_>>>()?;
            let refs: Vec<&(dyn ToSql + Sync)> = values
                .iter()
                .map(|v| v.as_ref() as &(dyn ToSql + Sync))
                .collect();
            writer.as_mut().write(&refs).await.pg(OP)?;
        }
        writer.finish().await.pg(OP)?;
        let copied = i64::try_from(copied).unwrap_or(i64::MAX);
        tx.execute(
            "INSERT INTO hookflow_migrate_marker (tbl, source, last_id, copied)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (tbl) DO UPDATE SET last_id = excluded.last_id, copied = excluded.copied",
            &[&table, &source, &last_id, &copied],
        )
        .await
        .pg(OP)?;
        if crate::faults::migrate_interrupted() {
            // Tests only: die with this batch written but not committed,
            // as a kill would (no destructor runs, the socket just closes).
            std::process::exit(137);
        }
        tx.commit().await.pg(OP)?;
        Ok(())
    }

    async fn finish(&mut self) -> Result<()> {
        // Every stored accepted delivery with a key opened a dedupe window
        // (duplicates inside one were never stored): the newest is each
        // key's current window.
        self.conn
            .execute(
                "INSERT INTO dedupe (source, dedupe_key, delivery_id, first_seen_at)
                 SELECT DISTINCT ON (source, dedupe_key) source, dedupe_key, id, received_at
                 FROM deliveries
                 WHERE status = 'accepted' AND dedupe_key IS NOT NULL
                 ORDER BY source, dedupe_key, received_at DESC, id DESC
                 ON CONFLICT (source, dedupe_key) DO UPDATE
                     SET delivery_id = excluded.delivery_id,
                         first_seen_at = excluded.first_seen_at
                     WHERE excluded.first_seen_at > dedupe.first_seen_at",
                &[],
            )
            .await
            .pg(OP)?;
        Ok(())
    }

    async fn ids(&mut self, table: &str) -> Result<Vec<String>> {
        let rows = self
            .conn
            .query(&format!("SELECT id FROM \"{table}\""), &[])
            .await
            .pg(OP)?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    }
}

type Value = Box<dyn ToSql + Sync + Send>;

/// A source cell as the target column's type, or an error naming the
/// column when it does not fit.
fn value(table: &str, name: &str, ty: &Type, cell: Cell) -> Result<Value> {
    let wrong = |cell: &Cell| {
        invalid(format!(
            "{table}.{name}: a source value of type {} does not fit the target's {ty} column",
            cell.kind()
        ))
    };
    let value: Value = match (ty, cell) {
        (t, Cell::Null) if *t == Type::TEXT => Box::new(None::<String>),
        (t, Cell::Null) if *t == Type::INT8 => Box::new(None::<i64>),
        (t, Cell::Null) if *t == Type::INT4 => Box::new(None::<i32>),
        (t, Cell::Null) if *t == Type::BYTEA => Box::new(None::<Vec<u8>>),
        (t, Cell::Null) if *t == Type::BOOL => Box::new(None::<bool>),
        (t, Cell::Null) if *t == Type::FLOAT8 => Box::new(None::<f64>),
        (t, Cell::Text(s)) if *t == Type::TEXT => Box::new(s),
        (t, Cell::Int(n)) if *t == Type::INT8 => Box::new(n),
        (t, Cell::Int(n)) if *t == Type::INT4 => {
            Box::new(i32::try_from(n).map_err(|_| wrong(&Cell::Int(n)))?)
        }
        (t, Cell::Int(n)) if *t == Type::BOOL => Box::new(n != 0),
        (t, Cell::Int(n)) if *t == Type::FLOAT8 => Box::new(n as f64),
        (t, Cell::Real(x)) if *t == Type::FLOAT8 => Box::new(x),
        (t, Cell::Bytes(b)) if *t == Type::BYTEA => Box::new(b),
        (t, Cell::Text(s)) if *t == Type::BYTEA => Box::new(s.into_bytes()),
        (_, cell) => return Err(wrong(&cell)),
    };
    Ok(value)
}

fn invalid(message: String) -> StoreError {
    StoreError::Invalid { op: OP, message }
}
