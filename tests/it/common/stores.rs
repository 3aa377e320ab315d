//! Store fixtures for the backend contract (`store_contract`): a fresh
//! SQLite file in a temporary directory, or a fresh PostgreSQL schema.

use std::sync::Arc;

use hookflow::store::{SqliteOptions, SqliteStore, Store};

use crate::store_contract::Stores;

/// A store for one test, and what must live as long as it.
pub struct Fixture {
    a: Arc<dyn Store>,
    b: Arc<dyn Store>,
    _keep: Box<dyn Send>,
}

impl Fixture {
    pub fn stores(&self) -> Stores {
        Stores {
            a: Arc::clone(&self.a),
            b: Arc::clone(&self.b),
        }
    }
}

/// A fresh SQLite database. One process per file: both "nodes" are the
/// same store.
pub async fn sqlite() -> Option<Fixture> {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(dir.path().join("hookflow.db"), SqliteOptions::default())
        .await
        .expect("open store");
    let store: Arc<dyn Store> = Arc::new(store);
    Some(Fixture {
        a: Arc::clone(&store),
        b: store,
        _keep: Box::new(dir),
    })
}

/// Where the PostgreSQL tests connect: `HOOKFLOW_TEST_POSTGRES`, else the
/// local default.
pub const DEFAULT_POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/test";

/// A fresh schema in the test database, dropped when the test ends (even
/// when it fails), so tests run in parallel without sharing tables,
/// notification channels or advisory locks (all named after the schema).
///
/// Unreachable PostgreSQL: fails the test when `HOOKFLOW_TEST_POSTGRES` is
/// set (CI sets it: a missing database must not pass silently); otherwise
/// prints `skipped: PostgreSQL not reachable at …` and returns `None`.
pub async fn postgres() -> Option<Fixture> {
    let schema = postgres_schema().await?;
    let a = hookflow::store::PostgresStore::open(&schema.url)
        .await
        .expect("open node a");
    let b = hookflow::store::PostgresStore::open(&schema.url)
        .await
        .expect("open node b");
    Some(Fixture {
        a: Arc::new(a),
        b: Arc::new(b),
        _keep: Box::new(schema),
    })
}

/// A fresh, empty schema and the URL whose connections work in it;
/// dropped with everything in it when this value is. `None` (after the
/// "skipped" line) when PostgreSQL is unreachable and not required.
pub async fn postgres_schema() -> Option<PgSchema> {
    let explicit = std::env::var("HOOKFLOW_TEST_POSTGRES").ok();
    let base = explicit
        .clone()
        .unwrap_or_else(|| DEFAULT_POSTGRES.to_owned());
    let (client, connection) = match tokio_postgres::connect(&base, tokio_postgres::NoTls).await {
        Ok(pair) => pair,
        Err(e) if explicit.is_none() => {
            // Written to the process's stderr, not through `eprintln!`, which
            // the test harness captures and hides for a passing test: the
            // skip must show in a plain `cargo test`.
            use std::io::Write as _;
            let _ = writeln!(
                std::io::stderr(),
                "skipped: PostgreSQL not reachable at {base} ({e}); set HOOKFLOW_TEST_POSTGRES to require it"
            );
            return None;
        }
        Err(e) => panic!("HOOKFLOW_TEST_POSTGRES={base}: PostgreSQL not reachable: {e}"),
    };
    tokio::spawn(connection);
    let schema = format!("hf_test_{}", ulid::Ulid::new().to_string().to_lowercase());
    client
        .batch_execute(&format!("CREATE SCHEMA {schema}"))
        .await
        .expect("create test schema");
    Some(PgSchema {
        url: schema_url(&base, &schema),
        base,
        schema,
    })
}

/// `base` with every connection's `search_path` set to `schema`.
pub fn schema_url(base: &str, schema: &str) -> String {
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}options=-csearch_path%3D{schema}")
}

/// A test's own schema. Dropped on its own thread and runtime: `Drop`
/// cannot await, and it also runs while a failed test unwinds.
pub struct PgSchema {
    /// The database URL with `search_path` set to the schema.
    pub url: String,
    base: String,
    schema: String,
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        let sql = format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema);
        let dropped = execute_blocking(&self.base, &sql);
        if let Err(e) = dropped {
            eprintln!("could not drop test schema {}: {e}", self.schema);
        }
    }
}

/// Runs `sql` on a connection of its own to `url`, from a thread of its
/// own: usable in `Drop` (which cannot await), also while a failed test
/// unwinds.
pub fn execute_blocking(url: &str, sql: &str) -> std::io::Result<()> {
    let (url, sql) = (url.to_owned(), sql.to_owned());
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        runtime.block_on(async {
            let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .map_err(std::io::Error::other)?;
            tokio::spawn(connection);
            client
                .batch_execute(&sql)
                .await
                .map_err(std::io::Error::other)
        })
    })
    .join()
    .map_err(|_| std::io::Error::other("the SQL thread panicked"))?
}
