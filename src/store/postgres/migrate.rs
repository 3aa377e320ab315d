//! Versioned schema migrations for PostgreSQL (SQL files under
//! `src/store/migrations/postgres/`), applied by whichever node starts
//! first: under a session advisory lock named after the schema, so nodes
//! starting together apply each migration exactly once, and each in its
//! own transaction recorded in `schema_migrations`.
//!
//! Rolling upgrades (SPEC §9): every migration records the oldest schema
//! version whose code still works against it (`compatible_from`; expand
//! first, contract one release later). A node accepts a database newer
//! than itself unless one of its migrations is marked incompatible with
//! the node's version.

use deadpool_postgres::Object;

use super::{NOW_MS, lock_key};
use crate::store::{Result, StoreError};

/// (version, name, SQL, compatible_from), in order. Append only.
const MIGRATIONS: &[(u32, &str, &str, u32)] = &[
    (
        1,
        "init",
        include_str!("../migrations/postgres/0001_init.sql"),
        1,
    ),
    (
        2,
        "steering",
        include_str!("../migrations/postgres/0002_steering.sql"),
        1,
    ),
    (
        3,
        "concurrency_key",
        include_str!("../migrations/postgres/0003_concurrency_key.sql"),
        1,
    ),
    (
        4,
        "nodes",
        include_str!("../migrations/postgres/0004_nodes.sql"),
        1,
    ),
    (
        5,
        "on_failure",
        include_str!("../migrations/postgres/0005_on_failure.sql"),
        1,
    ),
    (
        6,
        "lz4",
        include_str!("../migrations/postgres/0006_lz4.sql"),
        1,
    ),
];

/// The newest schema version this build knows.
pub(super) fn known() -> u32 {
    MIGRATIONS.last().map_or(0, |m| m.0)
}

/// Apply every migration not yet recorded, under the migration lock.
pub(super) async fn apply(client: &mut Object, schema: &str) -> Result<()> {
    let fail = |version: u32, name: &'static str| {
        move |source: tokio_postgres::Error| StoreError::Migration {
            version,
            name,
            cause: Box::new(super::PgError(source)),
        }
    };
    let key = lock_key(schema, "migrate");
    client
        .execute("SELECT pg_advisory_lock(hashtextextended($1, 0))", &[&key])
        .await
        .map_err(fail(0, "advisory lock"))?;
    let applied = apply_locked(client, fail).await;
    // Unlocked whatever happened; a dropped connection unlocks too.
    let unlock = client
        .execute(
            "SELECT pg_advisory_unlock(hashtextextended($1, 0))",
            &[&key],
        )
        .await
        .map_err(fail(0, "advisory unlock"));
    applied.and(unlock.map(|_| ()))
}

async fn apply_locked<F, E>(client: &mut Object, fail: F) -> Result<()>
where
    F: Fn(u32, &'static str) -> E,
    E: FnOnce(tokio_postgres::Error) -> StoreError,
{
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                 version         BIGINT PRIMARY KEY,
                 name            TEXT   NOT NULL,
                 compatible_from BIGINT NOT NULL,
                 applied_at      BIGINT NOT NULL
             )",
        )
        .await
        .map_err(fail(0, "schema_migrations"))?;
    let known = known();
    let row = client
        .query_one(
            "SELECT MAX(version), MAX(compatible_from) FROM schema_migrations",
            &[],
        )
        .await
        .map_err(fail(0, "schema_migrations"))?;
    let newest: Option<i64> = row.get(0);
    let requires: Option<i64> = row.get(1);
    if let Some(requires) = requires
        && requires > i64::from(known)
    {
        return Err(StoreError::SchemaIncompatible {
            found: newest.unwrap_or(requires),
            requires,
            known,
        });
    }
    for &(version, name, sql, compatible_from) in MIGRATIONS {
        if newest.is_some_and(|n| n >= i64::from(version)) {
            continue;
        }
        let tx = client.transaction().await.map_err(fail(version, name))?;
        tx.batch_execute(sql).await.map_err(fail(version, name))?;
        tx.execute(
            &format!(
                "INSERT INTO schema_migrations (version, name, compatible_from, applied_at)
                 VALUES ($1, $2, $3, {NOW_MS})"
            ),
            &[&i64::from(version), &name, &i64::from(compatible_from)],
        )
        .await
        .map_err(fail(version, name))?;
        tx.commit().await.map_err(fail(version, name))?;
        tracing::info!(version, name, "applied database migration");
    }
    Ok(())
}
