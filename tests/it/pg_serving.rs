//! A `hookflow serve` node on PostgreSQL when the database is not what it
//! needs (SPEC §9): a schema marked incompatible with the node's build
//! keeps it unready (`/readyz` 503 naming both versions, senders 503, no
//! run leased) until the schema is fixed; a database that goes away (its
//! backends terminated, new connections refused) gives senders and
//! `/readyz` 503, and the node recovers by itself when it comes back.

use std::time::Duration;

use hookflow::store::{PostgresStore, Store};
use serde_json::Value;

use crate::common::app::{Server, rules_dir, serve};
use crate::common::sink::Sink;
use crate::common::stores::{DEFAULT_POSTGRES, execute_blocking, postgres_schema};
use crate::common::wait;
use crate::store_contract::{MINUTE, delivery, run_for};

fn rules(sink: &str) -> String {
    format!(
        r#"
sources:
  ingest:
    verify: {{ token: {{ header: X-Token, value: pg-serving-token }} }}
rules:
  - name: forward
    source: ingest
    actions:
      - http: {{ url: "{sink}/hit" }}
"#
    )
}

async fn post(client: &reqwest::Client, node: &Server) -> u16 {
    client
        .post(node.url("/hooks/ingest"))
        .header("content-type", "application/json")
        .header("X-Token", "pg-serving-token")
        .body(r#"{"n":1}"#)
        .send()
        .await
        .map_or(0, |r| r.status().as_u16())
}

async fn readyz(client: &reqwest::Client, node: &Server) -> (u16, Value) {
    match client.get(node.url("/readyz")).send().await {
        Ok(resp) => {
            let status = resp.status().as_u16();
            (status, resp.json().await.unwrap_or(Value::Null))
        }
        Err(_) => (0, Value::Null),
    }
}

async fn sql(url: &str, statement: &str) {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(connection);
    client.batch_execute(statement).await.expect(statement);
}

/// Terminates every backend connected to database `name`; how many there were.
async fn terminate_backends(admin: &str, name: &str) -> usize {
    let (client, connection) = tokio_postgres::connect(admin, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(connection);
    client
        .query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE datname = $1 AND pid <> pg_backend_pid()",
            &[&name],
        )
        .await
        .expect("terminate backends")
        .len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_marked_incompatible_keeps_an_older_node_unready_until_fixed() {
    let Some(schema) = postgres_schema().await else {
        return;
    };
    // The schema as this build leaves it, one run already queued (its
    // action points elsewhere: only whether it is leased matters).
    let store = PostgresStore::open(&schema.url).await.expect("migrate");
    let d = delivery("ingest", None, crate::store_contract::now_ms());
    let queued = run_for(&d, "forward", None);
    let queued_id = queued.id.clone();
    store.accept(d, vec![queued], MINUTE).await.expect("queue");
    let (client, connection) = tokio_postgres::connect(&schema.url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(connection);
    let known: i64 = client
        .query_one("SELECT max(version) FROM schema_migrations", &[])
        .await
        .expect("version")
        .get(0);
    // A newer release's migration that this build cannot work with.
    let future = known + 1;
    client
        .execute(
            "INSERT INTO schema_migrations (version, name, compatible_from, applied_at)
             VALUES ($1, 'from_the_future', $1, 0)",
            &[&future],
        )
        .await
        .expect("mark incompatible");

    let sink = Sink::start().await;
    let dir = rules_dir(&rules(&sink.url));
    let node = Server::start(serve(
        dir.path(),
        &["--db", schema.url.as_str(), "--dev"],
        &[],
    ));
    let http = reqwest::Client::new();
    let (status, body) = readyz(&http, &node).await;
    assert_eq!(status, 503, "{body}\n{}", node.log_tail());
    let error = body["error"].as_str().unwrap_or_default();
    assert!(
        error.contains(&format!("schema is at version {future}"))
            && error.contains(&format!("this hookflow knows version {known}")),
        "/readyz names both versions: {error}"
    );
    assert_eq!(post(&http, &node).await, 503, "{}", node.log_tail());
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        sink.all().is_empty(),
        "a run was leased by the unready node"
    );
    let run = store.get_run(&queued_id).await.expect("get").expect("run");
    assert_eq!(run.status, hookflow::store::RunStatus::Queued);
    assert!(
        node.log().contains("stays unready"),
        "one clear log line: {}",
        node.log_tail()
    );

    // The newer release is rolled back: the node becomes ready by itself.
    client
        .execute(
            "DELETE FROM schema_migrations WHERE version = $1",
            &[&future],
        )
        .await
        .expect("unmark");
    node.wait_ready(&http).await;
    assert_eq!(post(&http, &node).await, 202);
    wait::until(
        "the new delivery's run at the sink",
        Duration::from_secs(30),
        || async { !sink.all().is_empty() },
    )
    .await;
    wait::until("the queued run leased", Duration::from_secs(30), || async {
        store
            .get_run(&queued_id)
            .await
            .ok()
            .flatten()
            .is_some_and(|r| r.status != hookflow::store::RunStatus::Queued)
    })
    .await;
}

/// `base` pointing at database `name` instead of its own.
fn database_url(base: &str, name: &str) -> String {
    let (head, query) = match base.split_once('?') {
        Some((h, q)) => (h, format!("?{q}")),
        None => (base, String::new()),
    };
    let scheme_end = head.find("://").map_or(0, |i| i + 3);
    let host_end = head[scheme_end..]
        .find('/')
        .map_or(head.len(), |i| scheme_end + i);
    format!("{}/{name}{query}", &head[..host_end])
}

/// A database of the test's own, dropped (with its connections) at the end.
struct OwnDatabase {
    admin: String,
    name: String,
}

impl Drop for OwnDatabase {
    fn drop(&mut self) {
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        let _ = execute_blocking(&self.admin, &sql);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_going_away_answers_503_and_the_node_recovers() {
    // Reachability (and the skip line) as every PostgreSQL test.
    let Some(_probe) = postgres_schema().await else {
        return;
    };
    let admin =
        std::env::var("HOOKFLOW_TEST_POSTGRES").unwrap_or_else(|_| DEFAULT_POSTGRES.to_owned());
    let name = format!("hf_away_{}", ulid::Ulid::new().to_string().to_lowercase());
    sql(&admin, &format!("CREATE DATABASE {name}")).await;
    let _db = OwnDatabase {
        admin: admin.clone(),
        name: name.clone(),
    };
    let url = database_url(&admin, &name);

    let sink = Sink::start().await;
    let dir = rules_dir(&rules(&sink.url));
    let node = Server::start(serve(dir.path(), &["--db", url.as_str(), "--dev"], &[]));
    let http = reqwest::Client::new();
    node.wait_ready(&http).await;
    assert_eq!(post(&http, &node).await, 202);

    // The database goes away: no new connection let in, and every
    // connection of the node cut — again while one that was starting when
    // connections were closed still shows up.
    sql(
        &admin,
        &format!("ALTER DATABASE {name} WITH ALLOW_CONNECTIONS false"),
    )
    .await;
    wait::until("no connection left to it", Duration::from_secs(10), || {
        let (admin, name) = (admin.clone(), name.clone());
        async move { terminate_backends(&admin, &name).await == 0 }
    })
    .await;
    assert_eq!(post(&http, &node).await, 503, "{}", node.log_tail());
    assert_eq!(readyz(&http, &node).await.0, 503);
    assert_eq!(post(&http, &node).await, 503);

    // It comes back: the node is ready again without a restart.
    sql(
        &admin,
        &format!("ALTER DATABASE {name} WITH ALLOW_CONNECTIONS true"),
    )
    .await;
    node.wait_ready(&http).await;
    assert_eq!(post(&http, &node).await, 202, "{}", node.log_tail());
    wait::until("both runs at the sink", Duration::from_secs(30), || async {
        sink.all().len() >= 2
    })
    .await;
}

/// An error the server sent says what it was: tokio-postgres's own message
/// is only "db error", which is all an operator's log line used to show.
#[tokio::test]
async fn a_database_error_names_the_server_s_message_and_code() {
    let Some(schema) = postgres_schema().await else {
        return;
    };
    let store = PostgresStore::open(&schema.url).await.expect("open");
    sql(
        &schema.url,
        "ALTER TABLE deliveries RENAME TO deliveries_gone",
    )
    .await;
    let error = store
        .get_delivery("01M8GYG73XYQ3AVS5K6WARN0VF")
        .await
        .expect_err("its table is gone");
    let message = error.to_string();
    assert!(
        message.contains("relation \"deliveries\" does not exist") && message.contains("(42P01)"),
        "{message}"
    );
}
