//! The nodes registry (SPEC §9): a node's beat registers it and refreshes
//! its row (roles, rule-set hash, heartbeat on the store's clock) while
//! keeping when it started; on a shared store every node sees every other
//! (on SQLite, one process per file, a beat drops earlier processes' rows);
//! silent rows are forgotten and a stopping node removes its own.

use hookflow::store::NodeInfo;

use super::{Stores, now_ms};

fn node(id: &str, hash: &str) -> NodeInfo {
    NodeInfo {
        id: id.to_owned(),
        version: "9.9.9".to_owned(),
        listen: "10.0.0.1:8080".to_owned(),
        admin_listen: Some("127.0.0.1:9090".to_owned()),
        receive: true,
        workers: 16,
        rule_set_hash: hash.to_owned(),
    }
}

pub async fn nodes_register_beat_and_list_across_handles(s: Stores) {
    let a = node("host-a-01", "aaaa");
    s.a.beat_node(&a, now_ms()).await.expect("beat a");
    let listed = s.b.list_nodes(now_ms()).await.expect("list");
    let infos: Vec<&NodeInfo> = listed.iter().map(|r| &r.info).collect();
    assert_eq!(infos, vec![&a], "registered as given");
    let first = listed[0].clone();
    assert_eq!(
        first.started_at, first.heartbeat_at,
        "a first beat starts it"
    );
    assert!(
        (0..60_000).contains(&first.heartbeat_age_ms),
        "age on the store's clock: {first:?}"
    );

    // The rules were reloaded and the node beats again: the row follows,
    // its start stays.
    let mut reloaded = a.clone();
    reloaded.rule_set_hash = "bbbb".to_owned();
    reloaded.workers = 0;
    // A scenario pause: the second beat must be at a later millisecond.
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    s.a.beat_node(&reloaded, now_ms())
        .await
        .expect("beat again");
    let listed = s.b.list_nodes(now_ms()).await.expect("list");
    assert_eq!(listed.len(), 1, "a beat does not add a row: {listed:?}");
    let again = &listed[0];
    assert_eq!(again.info, reloaded);
    assert_eq!(again.started_at, first.started_at, "started_at is kept");
    assert!(
        again.heartbeat_at > first.heartbeat_at,
        "the heartbeat moved: {} then {}",
        first.heartbeat_at,
        again.heartbeat_at
    );

    // Another node beats: on a shared store both are listed; on a store of
    // one process (SQLite) the earlier process's row is gone.
    let mut b = node("host-b-02", "aaaa");
    b.receive = false;
    b.admin_listen = None;
    s.b.beat_node(&b, now_ms()).await.expect("beat b");
    let listed = s.a.list_nodes(now_ms()).await.expect("list");
    let infos: Vec<&NodeInfo> = listed.iter().map(|r| &r.info).collect();
    if s.a.shared() {
        assert_eq!(infos, vec![&reloaded, &b], "both nodes, by id");
    } else {
        assert_eq!(infos, vec![&b], "one process per file");
    }
}

pub async fn silent_nodes_are_forgotten_and_a_stopping_node_leaves(s: Stores) {
    s.a.beat_node(&node("old", "h"), now_ms())
        .await
        .expect("beat old");
    // A scenario pause: "old" is then silent for at least 50 ms.
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    s.b.beat_node(&node("young", "h"), now_ms())
        .await
        .expect("beat young");

    assert_eq!(
        s.a.forget_nodes(3_600_000, now_ms())
            .await
            .expect("forget none"),
        0,
        "nobody silent for an hour"
    );
    // On a store of one process (SQLite) young's beat already removed old.
    assert_eq!(
        s.a.forget_nodes(40, now_ms()).await.expect("forget old"),
        u64::from(s.a.shared()),
        "the node silent for 50 ms goes, the one that just beat stays"
    );
    let ids: Vec<String> =
        s.b.list_nodes(now_ms())
            .await
            .expect("list")
            .into_iter()
            .map(|r| r.info.id)
            .collect();
    assert_eq!(ids, vec!["young"]);

    assert!(s.b.remove_node("young").await.expect("remove"));
    assert!(!s.a.remove_node("young").await.expect("remove twice"));
    assert!(s.a.list_nodes(now_ms()).await.expect("list").is_empty());
}
