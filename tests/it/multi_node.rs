//! Several nodes on one PostgreSQL run log (SPEC §9): three `hookflow
//! serve` processes share a schema; deliveries are spread over them and one
//! node is SIGKILLed while it holds runs. Every delivery answered 2xx is
//! stored exactly once, and every one of their runs reaches the sink — the
//! killed node's runs once their lease expired on another node
//! (at-least-once: a repeated action is counted and reported, not failed).

use std::collections::HashSet;
use std::time::Duration;

use crate::common::app::{Server, rules_dir, serve};
use crate::common::sink::{Reply, Sink};
use crate::common::stores::postgres_schema;
use crate::common::wait;

/// The engine's lease (60 s) plus room for a loaded machine.
const TAKEOVER: Duration = Duration::from_secs(150);
const DELIVERIES: usize = 60;

fn rules(sink: &str) -> String {
    format!(
        r#"
sources:
  ingest:
    verify: {{ token: {{ header: X-Token, value: multi-node-token }} }}
rules:
  - name: forward
    source: ingest
    actions:
      - http:
          url: "{sink}/hit/{{{{payload.n}}}}"
          retry: {{ attempts: 20, backoff: 50ms, max_backoff: 500ms }}
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_share_the_queue_and_survive_a_sigkill() {
    let Some(schema) = postgres_schema().await else {
        return;
    };
    let sink = Sink::start().await;
    // Slow enough that the killed node is holding runs when it dies.
    sink.answer(
        "/hit/*",
        Reply::status(200).delay(Duration::from_millis(300)),
    );
    let dir = rules_dir(&rules(&sink.url));
    let args = ["--db", schema.url.as_str(), "--dev"];
    let mut nodes: Vec<Server> = (0..3)
        .map(|_| Server::start(serve(dir.path(), &args, &[])))
        .collect();
    let client = reqwest::Client::new();
    for node in &nodes {
        node.wait_ready(&client).await;
    }

    let mut acked: Vec<(usize, String)> = Vec::new();
    for n in 0..DELIVERIES {
        if n == DELIVERIES / 2 {
            // Mid-stream and mid-run: node 0 dies without a word.
            nodes[0].kill();
        }
        let url = nodes[n % nodes.len()].url("/hooks/ingest");
        let resp = client
            .post(url)
            .header("content-type", "application/json")
            .header("X-Token", "multi-node-token")
            .body(format!(r#"{{"n":{n}}}"#))
            .send()
            .await;
        let Ok(resp) = resp else { continue }; // the killed node
        if resp.status().is_success() {
            let body: serde_json::Value = resp.json().await.expect("202 body");
            let id = body["delivery"].as_str().expect("delivery id").to_owned();
            acked.push((n, id));
        }
    }
    assert!(
        acked.len() >= DELIVERIES * 2 / 3 - 1,
        "acked {}",
        acked.len()
    );

    let expected: HashSet<String> = acked.iter().map(|(n, _)| format!("/hit/{n}")).collect();
    sink.wait_until(
        "every acknowledged delivery's run at the sink",
        TAKEOVER,
        |seen| {
            let paths: HashSet<&str> = seen.iter().map(|s| s.path.as_str()).collect();
            expected.iter().all(|p| paths.contains(p.as_str()))
        },
    )
    .await;
    // Stored exactly once each (ids are primary keys: found means once).
    let (client, connection) = tokio_postgres::connect(&schema.url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(connection);
    let acked_count = i64::try_from(acked.len()).expect("count");
    let ids: Vec<&str> = acked.iter().map(|(_, id)| id.as_str()).collect();
    let found: i64 = client
        .query_one(
            "SELECT COUNT(*) FROM deliveries WHERE id = ANY($1)",
            &[&ids],
        )
        .await
        .expect("acknowledged")
        .get(0);
    assert_eq!(found, acked_count, "every acknowledged delivery is stored");
    // Every run ends succeeded, the killed node's too: one it held while
    // dying (its action may have reached the sink, its record not) is taken
    // over by another node when its lease expires.
    let counts = || async {
        let row = client
            .query_one(
                "SELECT COUNT(*), COUNT(DISTINCT d.id),
                        COUNT(*) FILTER (WHERE r.status = 'succeeded')
                 FROM deliveries d JOIN runs r ON r.delivery_id = d.id",
                &[],
            )
            .await
            .expect("count");
        let counts: (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
        counts
    };
    let (runs, deliveries, succeeded) = wait::for_ok("every run to succeed", TAKEOVER, || async {
        let (runs, deliveries, succeeded) = counts().await;
        if succeeded == runs {
            Ok((runs, deliveries, succeeded))
        } else {
            Err(format!("{succeeded} of {runs} runs succeeded"))
        }
    })
    .await;
    assert!(
        deliveries >= acked_count,
        "{deliveries} stored < {acked_count} acknowledged"
    );
    assert_eq!(runs, deliveries, "one run per delivery");
    let actions = sink.all().len();
    eprintln!(
        "{acked_count} deliveries acknowledged over 3 nodes (one SIGKILLed mid-run), \
         {deliveries} stored, {succeeded} runs succeeded, {actions} actions \
         ({} repeated: at-least-once)",
        actions.saturating_sub(usize::try_from(runs).unwrap_or(0))
    );
    for node in &mut nodes {
        node.kill();
    }
}
