//! The embedded schema, applied in order at open and recorded in
//! `schema_migrations`, so each migration runs exactly once per database.

use rusqlite::{Connection, Transaction, TransactionBehavior};

use crate::store::error::BackendError;
use crate::store::{Result, StoreError};

/// What a migration does: a file of SQL, or (where SQL cannot say it) a
/// function run inside the migration's transaction.
#[derive(Clone, Copy)]
enum Change {
    Sql(&'static str),
    Code(fn(&Transaction<'_>) -> std::result::Result<(), BackendError>),
}
use Change::{Code, Sql};

/// (version, name, change), in the order they must be applied. Append
/// only: an applied migration is never edited, a change is a new one.
const MIGRATIONS: &[(u32, &str, Change)] = &[
    (
        1,
        "init",
        Sql(include_str!("../migrations/sqlite/0001_init.sql")),
    ),
    (
        2,
        "queue",
        Sql(include_str!("../migrations/sqlite/0002_queue.sql")),
    ),
    (
        3,
        "dedupe_index",
        Sql(include_str!("../migrations/sqlite/0003_dedupe_index.sql")),
    ),
    (
        4,
        "steering",
        Sql(include_str!("../migrations/sqlite/0004_steering.sql")),
    ),
    (
        5,
        "attempt_base",
        Sql(include_str!("../migrations/sqlite/0005_attempt_base.sql")),
    ),
    (
        6,
        "operator_actions",
        Sql(include_str!(
            "../migrations/sqlite/0006_operator_actions.sql"
        )),
    ),
    (
        7,
        "concurrency_key",
        Sql(include_str!(
            "../migrations/sqlite/0007_concurrency_key.sql"
        )),
    ),
    (
        8,
        "nodes",
        Sql(include_str!("../migrations/sqlite/0008_nodes.sql")),
    ),
    (
        9,
        "on_failure",
        Sql(include_str!("../migrations/sqlite/0009_on_failure.sql")),
    ),
    (
        10,
        "body_encoding",
        Sql(include_str!("../migrations/sqlite/0010_body_encoding.sql")),
    ),
    (11, "body_lz4", Code(allow_lz4_bodies)),
    (
        12,
        "trace_excluded",
        Sql(include_str!("../migrations/sqlite/0012_trace_excluded.sql")),
    ),
];

/// Apply every migration not yet recorded, each in its own transaction.
pub(super) fn apply(conn: &mut Connection) -> Result<()> {
    apply_these(conn, MIGRATIONS)
}

/// Apply those of `migrations` (a prefix of [`MIGRATIONS`]) not yet
/// recorded.
fn apply_these(conn: &mut Connection, migrations: &[(u32, &'static str, Change)]) -> Result<()> {
    let known = MIGRATIONS.last().map_or(0, |m| m.0);
    let failed = |version: u32, name: &'static str| {
        move |source: rusqlite::Error| StoreError::Migration {
            version,
            name,
            cause: Box::new(source),
        }
    };
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version    INTEGER PRIMARY KEY,
             name       TEXT    NOT NULL,
             applied_at INTEGER NOT NULL
         )",
    )
    .map_err(failed(0, "schema_migrations"))?;

    for &(version, name, change) in migrations {
        let fail = failed(version, name);
        // IMMEDIATE: a second process opening the same file at the same
        // time waits here instead of applying the migration twice.
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(fail)?;
        let newest: Option<i64> = tx
            .query_row("SELECT MAX(version) FROM schema_migrations", [], |row| {
                row.get(0)
            })
            .map_err(fail)?;
        if newest.is_some_and(|found| found > i64::from(known)) {
            return Err(StoreError::SchemaTooNew {
                found: newest.unwrap_or_default(),
                known,
            });
        }
        let applied: bool = tx
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE version = ?1)",
                [version],
                |row| row.get(0),
            )
            .map_err(fail)?;
        if applied {
            continue;
        }
        match change {
            Sql(sql) => tx.execute_batch(sql).map_err(fail)?,
            Code(apply) => apply(&tx).map_err(|source| StoreError::Migration {
                version,
                name,
                cause: source,
            })?,
        }
        tx.execute(
            "INSERT INTO schema_migrations (version, name, applied_at)
             VALUES (?1, ?2, CAST(strftime('%s', 'now') AS INTEGER) * 1000)",
            rusqlite::params![version, name],
        )
        .map_err(fail)?;
        tx.commit().map_err(fail)?;
        tracing::info!(version, name, "applied database migration");
    }
    Ok(())
}

/// Schema 0011: `deliveries.body_encoding` may also say `lz4` (`body.rs`).
///
/// SQLite cannot alter a CHECK constraint, and rebuilding `deliveries` would
/// copy every stored body. A constraint that only admits more values holds
/// for every existing row, so this takes SQLite's documented shortcut for
/// such changes (<https://sqlite.org/lang_altertable.html>, "making other
/// kinds of table schema changes"): rewrite the table's CREATE statement in
/// `sqlite_schema` and bump `schema_version` so every connection reloads it.
fn allow_lz4_bodies(tx: &Transaction<'_>) -> std::result::Result<(), BackendError> {
    const BEFORE: &str = "body_encoding IN ('identity', 'zstd')";
    const AFTER: &str = "body_encoding IN ('identity', 'zstd', 'lz4')";
    let version: i64 = tx.query_row("PRAGMA schema_version", [], |row| row.get(0))?;
    tx.execute_batch("PRAGMA writable_schema = ON")?;
    let changed = tx.execute(
        "UPDATE sqlite_schema SET sql = replace(sql, ?1, ?2)
         WHERE type = 'table' AND name = 'deliveries' AND instr(sql, ?1) > 0",
        [BEFORE, AFTER],
    );
    // Off again whatever happened, before anything else runs.
    tx.execute_batch("PRAGMA writable_schema = OFF")?;
    if changed? != 1 {
        return Err(format!("the deliveries table does not declare `{BEFORE}`").into());
    }
    tx.execute_batch(&format!("PRAGMA schema_version = {}", version + 1))?;
    let sql: String = tx.query_row(
        "SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = 'deliveries'",
        [],
        |row| row.get(0),
    )?;
    if !sql.contains(AFTER) {
        return Err("the deliveries table was not rewritten".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A database at schema 0010 holding a zstd body moves to 0011: the
    /// row is untouched, `lz4` is now admitted and anything else still
    /// refused.
    #[test]
    fn schema_0011_widens_the_body_encoding_check_in_place() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut conn = Connection::open(dir.path().join("m.db")).expect("open");
        apply_these(&mut conn, &MIGRATIONS[..10]).expect("up to 0010");
        let insert = |conn: &Connection, id: &str, encoding: &str| {
            conn.execute(
                "INSERT INTO deliveries (id, source, received_at, status, method, path,
                                         remote_addr, body, body_encoding)
                 VALUES (?1, 's', 0, 'accepted', 'POST', '/hooks/s', '127.0.0.1:1', x'00', ?2)",
                [id, encoding],
            )
        };
        insert(&conn, "old", "zstd").expect("a zstd row at 0010");
        assert!(insert(&conn, "early", "lz4").is_err(), "0010 refuses lz4");

        apply(&mut conn).expect("0011");
        let encoding: String = conn
            .query_row(
                "SELECT body_encoding FROM deliveries WHERE id = 'old'",
                [],
                |r| r.get(0),
            )
            .expect("the old row");
        assert_eq!(encoding, "zstd");
        insert(&conn, "new", "lz4").expect("0011 admits lz4");
        let refused = insert(&conn, "bad", "brotli").expect_err("still checked");
        assert!(refused.to_string().contains("CHECK"), "{refused}");
        let ok: String = conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .expect("integrity check");
        assert_eq!(ok, "ok");
        // Applying again changes nothing (it is recorded).
        apply(&mut conn).expect("again");
    }
}
