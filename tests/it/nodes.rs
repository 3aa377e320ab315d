//! The nodes registry and roles (SPEC §9), over HTTP: a node lists itself
//! in `GET /api/nodes` and its rule-set hash follows a reload; on one
//! PostgreSQL schema a receive-only node (`workers: 0`) and a worker-only
//! node (`receive: false`) split the work, the worker-only node serves no
//! source path, both list both with their roles, a third node loading
//! other rule files is flagged, leaves the list when it stops gracefully,
//! and a killed node turns stale.

use std::time::Duration;

use serde_json::Value;

use crate::common::app::{Server, rules_dir, serve, spawn_app};
use crate::common::sink::{Reply, Sink};
use crate::common::stores::postgres_schema;
use crate::common::wait;

const RULES: &str = r#"
sources:
  gh:
    verify:
      token: { header: X-Token, value: "tok-123" }
rules:
  - name: notify
    source: gh
    actions:
      - http: { url: "http://127.0.0.1:9/" }
"#;

async fn nodes(client: &reqwest::Client, url: &str) -> Value {
    let resp = client.get(url).send().await.expect("GET /api/nodes");
    assert_eq!(resp.status(), 200, "{url}");
    resp.json().await.expect("json")
}

/// The node whose `listen` is `addr`.
fn node<'a>(view: &'a Value, addr: &str) -> &'a Value {
    view["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .find(|n| n["listen"] == addr)
        .unwrap_or_else(|| panic!("no node listening on {addr} in {view:#}"))
}

#[tokio::test]
async fn a_node_lists_itself_and_its_hash_follows_a_reload() {
    let app = spawn_app(&[("r.yaml", RULES)]).await;
    let client = reqwest::Client::new();
    let url = app.admin_url("/api/nodes");
    let view = nodes(&client, &url).await;
    assert_eq!(view["nodes"].as_array().map(Vec::len), Some(1), "{view:#}");
    let me = node(&view, &app.addr.to_string());
    assert_eq!(me["this_node"], true);
    assert_eq!(view["this_node"], me["id"]);
    assert_eq!(me["state"], "alive");
    assert_eq!(me["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(me["admin_listen"], app.admin_addr.to_string());
    // spawn_app runs `workers: 0`: receive only.
    assert_eq!(me["roles"], serde_json::json!(["receive"]));
    assert_eq!(me["workers"], 0);
    assert_eq!(view["rule_sets_differ"], false);
    assert_eq!(me["rule_set_matches_majority"], true);
    let hash = me["rule_set_hash"].as_str().expect("hash").to_owned();
    assert_eq!(hash.len(), 64, "SHA-256 hex: {hash}");

    app.write_rule_file("r.yaml", &format!("{RULES}\n# edited\n"));
    let reload = client
        .post(app.admin_url("/api/reload"))
        .send()
        .await
        .expect("reload");
    assert_eq!(reload.status(), 200);
    // The heartbeat is woken by the reload, not left to its next tick.
    wait::for_ok("the new hash in /api/nodes", Duration::from_secs(4), || {
        let (client, url, hash) = (&client, &url, &hash);
        async move {
            let view = nodes(client, url).await;
            let now = view["nodes"][0]["rule_set_hash"]
                .as_str()
                .unwrap_or("")
                .to_owned();
            if now != *hash && now.len() == 64 {
                Ok(())
            } else {
                Err(format!("still {now}"))
            }
        }
    })
    .await;
}

fn pg_rules(sink: &str) -> String {
    format!(
        r#"
sources:
  ingest:
    verify: {{ token: {{ header: X-Token, value: roles-token }} }}
rules:
  - name: forward
    source: ingest
    actions:
      - http: {{ url: "{sink}/hit/{{{{payload.n}}}}" }}
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_receive_only_and_a_worker_only_node_split_the_work_on_postgres() {
    let Some(schema) = postgres_schema().await else {
        return;
    };
    let sink = Sink::start().await;
    sink.answer("/hit/*", Reply::status(200));
    let dir = rules_dir(&pg_rules(&sink.url));
    let db = ["--db", schema.url.as_str(), "--dev"];
    let receiver = Server::start(serve(
        dir.path(),
        &[&db[..], &["--workers", "0"]].concat(),
        &[],
    ));
    let mut worker = Server::start(serve(dir.path(), &db, &[("HOOKFLOW_RECEIVE", "false")]));
    let client = reqwest::Client::new();
    receiver.wait_ready(&client).await;
    worker.wait_ready(&client).await;

    // Received by the node without workers, run by the node that does not
    // receive.
    for n in 0..3 {
        let resp = client
            .post(receiver.url("/hooks/ingest"))
            .header("X-Token", "roles-token")
            .header("content-type", "application/json")
            .body(format!(r#"{{"n":{n}}}"#))
            .send()
            .await
            .expect("post to the receiver");
        assert_eq!(resp.status(), 202, "{}", receiver.log_tail());
    }
    for n in 0..3 {
        sink.wait_for(&format!("/hit/{n}"), 1, Duration::from_secs(30))
            .await;
    }

    // The worker-only node serves no source path, but health, metrics
    // and the API.
    let refused = client
        .post(worker.url("/hooks/ingest"))
        .header("X-Token", "roles-token")
        .body(r#"{"n":99}"#)
        .send()
        .await
        .expect("post to the worker");
    assert_eq!(refused.status(), 404);
    let body: Value = refused.json().await.expect("404 json");
    assert_eq!(body["error"], "no such path");
    assert!(
        !body["paths"].to_string().contains("/hooks"),
        "a worker-only node names no source path: {body}"
    );
    for path in ["/healthz", "/readyz"] {
        let r = client.get(worker.url(path)).send().await.expect(path);
        assert_eq!(r.status(), 200, "{path}");
    }
    let metrics = client
        .get(worker.admin_url("/metrics"))
        .send()
        .await
        .expect("metrics");
    assert_eq!(metrics.status(), 200);

    // Either node lists both, with their roles and one rule set.
    for on in [&receiver, &worker] {
        let view = nodes(&client, &on.admin_url("/api/nodes")).await;
        assert_eq!(view["nodes"].as_array().map(Vec::len), Some(2), "{view:#}");
        assert_eq!(view["rule_sets_differ"], false, "{view:#}");
        let r = node(&view, &receiver.addr.to_string());
        let w = node(&view, &worker.addr.to_string());
        assert_eq!(r["roles"], serde_json::json!(["receive"]), "{view:#}");
        assert_eq!(w["roles"], serde_json::json!(["work"]), "{view:#}");
        assert_eq!(
            (r["receive"].clone(), r["workers"].clone()),
            (true.into(), 0.into())
        );
        assert_eq!(w["receive"], false);
        assert_eq!(r["rule_set_hash"], w["rule_set_hash"]);
        assert_eq!(node(&view, &on.addr.to_string())["this_node"], true);
        assert!(r["state"] == "alive" && w["state"] == "alive", "{view:#}");
    }

    // A third node with other rule files: flagged on every node.
    let other = rules_dir(&format!(
        "{}\n# a half-finished deploy\n",
        pg_rules(&sink.url)
    ));
    let odd = Server::start(serve(
        other.path(),
        &[&db[..], &["--workers", "0"]].concat(),
        &[],
    ));
    odd.wait_ready(&client).await;
    let view = nodes(&client, &worker.admin_url("/api/nodes")).await;
    assert_eq!(view["rule_sets_differ"], true, "{view:#}");
    assert_eq!(
        node(&view, &odd.addr.to_string())["rule_set_matches_majority"],
        false
    );
    assert_eq!(
        node(&view, &receiver.addr.to_string())["rule_set_matches_majority"],
        true
    );
    assert_eq!(
        node(&view, &worker.addr.to_string())["rule_set_matches_majority"],
        true
    );
    let page = client
        .get(receiver.admin_url("/ui/nodes"))
        .send()
        .await
        .expect("nodes page");
    assert_eq!(page.status(), 200);
    let html = page.text().await.expect("html");
    assert!(
        html.contains("rule-sets-differ"),
        "the page flags it: {html}"
    );
    assert_eq!(
        html.matches("rule-set-differs").count(),
        1,
        "one node marked: {html}"
    );

    // Stopped gracefully, it removes its row.
    odd.sigterm();
    wait::for_ok(
        "the stopped node gone from /api/nodes",
        Duration::from_secs(30),
        || {
            let (client, url) = (&client, receiver.admin_url("/api/nodes"));
            async move {
                let view = nodes(client, &url).await;
                match view["nodes"].as_array().map(Vec::len) {
                    Some(2) if view["rule_sets_differ"] == false => Ok(()),
                    _ => Err(format!("{view:#}")),
                }
            }
        },
    )
    .await;

    // Killed, the worker stops beating: stale after three heartbeats.
    worker.kill();
    let worker_addr = worker.addr.to_string();
    wait::for_ok(
        "the killed node to turn stale",
        Duration::from_secs(40),
        || {
            let (client, url, worker_addr) =
                (&client, receiver.admin_url("/api/nodes"), &worker_addr);
            async move {
                let view = nodes(client, &url).await;
                let w = node(&view, worker_addr);
                if w["state"] == "stale" {
                    Ok(())
                } else {
                    Err(format!("{w:#}"))
                }
            }
        },
    )
    .await;
}
