//! Steering cases (SPEC §5): keyed concurrency, cancel in every state, and
//! leases (renew only what is held, release untouched, a lost worker
//! counted). Node `n2` leases through the second handle: on PostgreSQL, a
//! second pool, so the per-key limit is seen to hold across nodes.

use std::sync::{Arc, Mutex};

use hookflow::store::{
    CancelOutcome, LeaseRequest, NewDelivery, NewRun, Release, RunProgress, RunStatus, StepRecord,
    Store,
};

use super::Stores;
use serde_json::json;

const T0: i64 = 1_750_000_000_000;
const LEASE_MS: i64 = 60_000;

fn new_id() -> String {
    static IDS: Mutex<ulid::Generator> = Mutex::new(ulid::Generator::new());
    let mut ids = IDS.lock().expect("id generator");
    ids.generate().expect("ulid").to_string()
}

/// Accepts one delivery with one run per `(rule, concurrency, key)`, in
/// order; returns the run ids.
async fn queue(store: &Arc<dyn Store>, runs: &[(&str, Option<u32>, Option<&str>)]) -> Vec<String> {
    let delivery = NewDelivery {
        id: new_id(),
        source: "s".into(),
        received_at: T0,
        method: "POST".into(),
        path: "/hooks/s".into(),
        query: None,
        headers: vec![],
        remote_addr: "127.0.0.1:1".into(),
        event: String::new(),
        dedupe_key: None,
        body: b"{}".to_vec(),
        matched: vec![],
        trace: serde_json::value::RawValue::NULL.to_owned(),
    };
    let runs: Vec<NewRun> = runs
        .iter()
        .map(|(rule, concurrency, key)| NewRun {
            id: new_id(),
            delivery_id: delivery.id.clone(),
            rule: (*rule).to_owned(),
            created_at: T0,
            definition: json!({ "actions": [{ "shell": { "command": ["true"] } }] }).into(),
            concurrency: *concurrency,
            concurrency_key: key.map(str::to_owned),
        })
        .collect();
    let ids = runs.iter().map(|r| r.id.clone()).collect();
    store.accept(delivery, runs, 0).await.expect("accept");
    ids
}

async fn lease(store: &Arc<dyn Store>, node: &str, now_ms: i64) -> Vec<String> {
    let leased = store
        .lease_runs(LeaseRequest {
            node: node.into(),
            now_ms,
            limit: 16,
            lease_ms: LEASE_MS,
        })
        .await
        .expect("lease");
    leased.runs.into_iter().map(|l| l.run.id).collect()
}

fn step(run: &str, node: &str, now_ms: i64, progress: RunProgress) -> StepRecord {
    StepRecord {
        run_id: run.into(),
        node: node.into(),
        now_ms,
        attempt: None,
        next_step: 1,
        attempts_at_next_step: 0,
        outputs: None,
        progress,
        on_failure: None,
    }
}

/// At most `limit` running per key, oldest first; other keys proceed; a
/// finished run frees its key's slot.
pub async fn contract_keyed_concurrency(s: Stores) {
    let store = Arc::clone(&s.a);
    let ids = queue(
        &store,
        &[
            ("deploy", Some(1), Some("repo-a")),
            ("deploy", Some(1), Some("repo-a")),
            ("deploy", Some(1), Some("repo-b")),
        ],
    )
    .await;
    let first = lease(&store, "n1", T0).await;
    assert_eq!(
        first,
        [ids[0].clone(), ids[2].clone()],
        "one per key, oldest first"
    );
    assert!(
        lease(&s.b, "n2", T0).await.is_empty(),
        "repo-a is at its limit on every node"
    );
    let finished = RunProgress::Finished {
        status: RunStatus::Succeeded,
        error: None,
    };
    store
        .record_step(step(&ids[0], "n1", T0 + 1, finished))
        .await
        .expect("finish");
    assert_eq!(lease(&s.b, "n2", T0 + 2).await, [ids[1].clone()]);
}

/// Renewing names the runs: only those are extended. An unrenewed lease
/// expires and is counted when taken over; an untouched release is not.
pub async fn contract_leases(s: Stores) {
    let store = Arc::clone(&s.a);
    // Releases are stamped with the store's clock: this case runs on it.
    let t0 = chrono::Utc::now().timestamp_millis();
    let ids = queue(
        &store,
        &[("r", None, None), ("r", None, None), ("r", None, None)],
    )
    .await;
    assert_eq!(lease(&store, "n1", t0).await.len(), 3);
    let renewal = store
        .renew_leases("n1", &[ids[0].clone()], t0, t0 + 10 * LEASE_MS)
        .await
        .expect("renew");
    assert_eq!(renewal.held, [ids[0].clone()]);
    assert!(renewal.cancel_requested.is_empty());
    store
        .release_runs("n1", &[ids[1].clone()], Release::Untouched, t0)
        .await
        .expect("release");
    store
        .release_runs("n1", &[ids[2].clone()], Release::WorkerLost, t0)
        .await
        .expect("lost");
    // A second later (the lease lasts a minute): the released and the
    // lost run are taken at once.
    let mut again = lease(&store, "n2", t0 + 1_000).await;
    again.sort();
    let mut expected = vec![ids[1].clone(), ids[2].clone()];
    expected.sort();
    assert_eq!(again, expected);
    let get = |id: &str| {
        let store = store.clone();
        let id = id.to_owned();
        async move { store.get_run(&id).await.expect("get").expect("run") }
    };
    assert_eq!(get(&ids[1]).await.lease_expiries, 0, "released untouched");
    assert_eq!(get(&ids[2]).await.lease_expiries, 1, "its worker was lost");
    // After the lease time, only the renewed run is still n1's.
    assert!(
        lease(&store, "n3", t0 + LEASE_MS + 1)
            .await
            .iter()
            .all(|id| *id != ids[0])
    );
    assert_eq!(get(&ids[0]).await.lease_owner.as_deref(), Some("n1"));
}

/// Cancel: queued at once; held → requested, seen by the heartbeat and the
/// next step record; finished → refused; unknown; twice harmless.
pub async fn contract_cancel(s: Stores) {
    let store = Arc::clone(&s.a);
    let ids = queue(
        &store,
        &[("r", None, None), ("r", None, None), ("r", None, None)],
    )
    .await;
    // ids[0] stays queued: lease only two by leasing with a limit.
    let leased = store
        .lease_runs(LeaseRequest {
            node: "n1".into(),
            now_ms: T0,
            limit: 2,
            lease_ms: LEASE_MS,
        })
        .await
        .expect("lease");
    assert_eq!(leased.runs.len(), 2);
    let queued = ids
        .iter()
        .find(|id| leased.runs.iter().all(|l| &l.run.id != *id))
        .expect("one left queued")
        .clone();
    let (held, other) = (leased.runs[0].run.id.clone(), leased.runs[1].run.id.clone());

    match store.cancel_run(&queued, T0 + 1).await.expect("cancel") {
        CancelOutcome::Cancelled { run } => {
            assert_eq!(run.status, RunStatus::Cancelled);
            assert_eq!(run.error.as_deref(), Some("cancelled by operator"));
        }
        other => panic!("queued: {other:?}"),
    }
    assert!(matches!(
        store.cancel_run(&queued, T0 + 2).await.expect("again"),
        CancelOutcome::AlreadyCancelled { .. }
    ));
    assert!(matches!(
        store.cancel_run("no-such-run", T0).await.expect("unknown"),
        CancelOutcome::NotFound
    ));

    assert!(matches!(
        store.cancel_run(&held, T0 + 3).await.expect("held"),
        CancelOutcome::Requested { .. }
    ));
    let renewal = store
        .renew_leases("n1", &[held.clone(), other.clone()], T0, T0 + LEASE_MS)
        .await
        .expect("renew");
    assert_eq!(renewal.cancel_requested, std::slice::from_ref(&held));
    let saved = store
        .record_step(step(
            &held,
            "n1",
            T0 + 4,
            RunProgress::Continue {
                lease_until_ms: T0 + LEASE_MS,
            },
        ))
        .await
        .expect("record");
    assert!(
        saved.cancel_requested,
        "the worker learns it from its record"
    );
    store
        .record_step(step(
            &held,
            "n1",
            T0 + 5,
            RunProgress::Finished {
                status: RunStatus::Cancelled,
                error: Some("cancelled by operator".into()),
            },
        ))
        .await
        .expect("cancelled");

    // A finished run is refused.
    store
        .record_step(step(
            &other,
            "n1",
            T0 + 6,
            RunProgress::Finished {
                status: RunStatus::Succeeded,
                error: None,
            },
        ))
        .await
        .expect("finish");
    assert!(matches!(
        store.cancel_run(&other, T0 + 7).await.expect("finished"),
        CancelOutcome::Finished {
            status: RunStatus::Succeeded
        }
    ));
    // A marked run whose worker vanished is cancelled by the next lease:
    // `steering::cancel_of_finished_or_unknown_runs_does_nothing`, with a
    // lease that really expires (PostgreSQL judges leases by its clock).
}
