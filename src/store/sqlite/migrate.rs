//! The embedded schema, applied in order at open and recorded in
//! `schema_migrations`, so each migration runs exactly once per database.

use rusqlite::{Connection, TransactionBehavior};

use crate::store::{Result, StoreError};

/// (version, name, SQL), in the order they must be applied. Append only:
/// an applied migration is never edited, a change is a new file.
const MIGRATIONS: &[(u32, &str, &str)] = &[
    (
        1,
        "init",
        include_str!("../migrations/sqlite/0001_init.sql"),
    ),
    (
        2,
        "queue",
        include_str!("../migrations/sqlite/0002_queue.sql"),
    ),
    (
        3,
        "dedupe_index",
        include_str!("../migrations/sqlite/0003_dedupe_index.sql"),
    ),
    (
        4,
        "steering",
        include_str!("../migrations/sqlite/0004_steering.sql"),
    ),
    (
        5,
        "attempt_base",
        include_str!("../migrations/sqlite/0005_attempt_base.sql"),
    ),
    (
        6,
        "operator_actions",
        include_str!("../migrations/sqlite/0006_operator_actions.sql"),
    ),
    (
        7,
        "concurrency_key",
        include_str!("../migrations/sqlite/0007_concurrency_key.sql"),
    ),
    (
        8,
        "nodes",
        include_str!("../migrations/sqlite/0008_nodes.sql"),
    ),
    (
        9,
        "on_failure",
        include_str!("../migrations/sqlite/0009_on_failure.sql"),
    ),
    (
        10,
        "body_encoding",
        include_str!("../migrations/sqlite/0010_body_encoding.sql"),
    ),
];

/// Apply every migration not yet recorded, each in its own transaction.
pub(super) fn apply(conn: &mut Connection) -> Result<()> {
    let known = MIGRATIONS.last().map_or(0, |m| m.0);
    let failed = |version: u32, name: &'static str| {
        move |source: rusqlite::Error| StoreError::Migration {
            version,
            name,
            source: Box::new(source),
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

    for &(version, name, sql) in MIGRATIONS {
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
        tx.execute_batch(sql).map_err(fail)?;
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
