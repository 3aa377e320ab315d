//! The workers' side: leasing due runs under per-rule concurrency (global
//! across nodes), recording steps, lost leases, renew / release / reclaim,
//! and a lease that expired being taken over by another node.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use hookflow::store::{
    AttemptOutcome, AttemptRecord, LeaseRequest, Leased, Release, RunProgress, RunStatus,
    StepRecord, Store, StoreError,
};
use serde_json::json;

use super::{Stores, now_ms, queue};
use crate::common::wait;

/// A lease long enough never to expire during a test.
pub const LONG: i64 = 600_000;

pub async fn lease(store: &dyn Store, node: &str, limit: u32, lease_ms: i64) -> Leased {
    store
        .lease_runs(LeaseRequest {
            node: node.to_owned(),
            now_ms: now_ms(),
            limit,
            lease_ms,
        })
        .await
        .expect("lease")
}

pub fn ids(leased: &Leased) -> Vec<String> {
    leased.runs.iter().map(|r| r.run.id.clone()).collect()
}

pub fn attempt(run_id: &str, step_index: u32, n: u32, outcome: AttemptOutcome) -> AttemptRecord {
    AttemptRecord {
        id: super::new_id(),
        run_id: run_id.to_owned(),
        step_index,
        step_id: format!("step-{step_index}"),
        attempt: n,
        started_at: now_ms(),
        duration_ms: Some(12),
        request: json!({"method": "POST", "url": "https://example.test"}),
        status_code: Some(200),
        response: Some("ok".to_owned()),
        stdout: None,
        stderr: None,
        error: None,
        outcome,
    }
}

pub fn step(run_id: &str, node: &str, next_step: u32, progress: RunProgress) -> StepRecord {
    StepRecord {
        run_id: run_id.to_owned(),
        node: node.to_owned(),
        now_ms: now_ms(),
        attempt: Some(attempt(
            run_id,
            next_step.saturating_sub(1),
            1,
            AttemptOutcome::Succeeded,
        )),
        next_step,
        attempts_at_next_step: 0,
        outputs: Some(json!({"call": {"status": 200}})),
        progress,
        on_failure: None,
    }
}

pub fn finished(status: RunStatus) -> RunProgress {
    RunProgress::Finished {
        status,
        error: None,
    }
}

pub async fn leased_runs_come_with_their_delivery(s: Stores) {
    let ids_queued = queue(s.a.as_ref(), &[("r", None), ("r", None)]).await;
    let got = lease(s.b.as_ref(), "node-b", 8, LONG).await;
    assert_eq!(ids(&got), ids_queued, "oldest first");
    for leased in &got.runs {
        assert_eq!(leased.run.status, RunStatus::Running);
        assert_eq!(leased.run.lease_owner.as_deref(), Some("node-b"));
        let expires = leased.run.lease_expires_at.expect("lease time");
        assert!((expires - (now_ms() + LONG)).abs() < 60_000, "{expires}");
        let delivery = leased.delivery.as_ref().expect("delivery");
        assert_eq!(delivery.id, leased.run.delivery_id);
        assert!(delivery.body.is_some());
    }
    assert!(
        lease(s.a.as_ref(), "node-a", 8, LONG).await.runs.is_empty(),
        "held"
    );
    assert_eq!(s.a.queue_depth().await.expect("depth"), 2);
}

/// A `concurrency: 2` rule never has more than two runs in progress,
/// however many leasers race on however many nodes.
pub async fn per_rule_concurrency_holds_across_racing_nodes(s: Stores) {
    let mut limited = Vec::new();
    for _ in 0..3 {
        limited.extend(queue(s.a.as_ref(), &[("limited", Some(2)), ("free", None)]).await);
    }
    let mut tasks = Vec::new();
    for i in 0..8 {
        let store = if i % 2 == 0 {
            Arc::clone(&s.a)
        } else {
            Arc::clone(&s.b)
        };
        tasks.push(tokio::spawn(async move {
            let got = lease(store.as_ref(), &format!("node-{i}"), 2, LONG).await;
            got.runs
                .into_iter()
                .map(|r| (r.run.rule, r.run.id))
                .collect::<Vec<_>>()
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.expect("task"));
    }
    // A racing leaser may skip runs another one had locked but not taken
    // (SKIP LOCKED): they are due at the next lease, which takes the rest.
    let rest = lease(s.b.as_ref(), "node-rest", 8, LONG).await;
    all.extend(rest.runs.into_iter().map(|r| (r.run.rule, r.run.id)));
    let unique: HashSet<&String> = all.iter().map(|(_, id)| id).collect();
    assert_eq!(unique.len(), all.len(), "no run leased twice: {all:?}");
    let limited_leased: Vec<_> = all.iter().filter(|(rule, _)| rule == "limited").collect();
    assert_eq!(limited_leased.len(), 2, "{all:?}");
    assert_eq!(all.len(), 5, "three free runs and two limited: {all:?}");

    // A finished limited run frees its slot for the third.
    let (_, done) = limited_leased[0];
    let holder =
        s.a.get_run(done)
            .await
            .expect("get")
            .expect("run")
            .lease_owner
            .expect("owner");
    s.b.record_step(step(done, &holder, 1, finished(RunStatus::Succeeded)))
        .await
        .expect("finish");
    let third = lease(s.a.as_ref(), "node-late", 8, LONG).await;
    assert_eq!(third.runs.len(), 1);
    assert_eq!(third.runs[0].run.rule, "limited");
}

pub async fn a_lease_that_finds_nothing_tells_when_the_next_is_due(s: Stores) {
    let empty = lease(s.a.as_ref(), "node-a", 8, LONG).await;
    assert!(empty.runs.is_empty());
    assert_eq!(empty.next_due_ms, None);
    let renewal =
        s.a.renew_leases(
            "node-a",
            &["no-such-run".to_owned()],
            now_ms(),
            now_ms() + LONG,
        )
        .await;
    assert!(renewal.expect("renew").held.is_empty());

    let id = queue(s.a.as_ref(), &[("r", None)]).await.remove(0);
    let got = lease(s.a.as_ref(), "node-a", 8, LONG).await;
    let later = now_ms() + 3_600_000;
    let wait = RunProgress::RetryAt { at_ms: later };
    s.a.record_step(step(&got.runs[0].run.id, "node-a", 0, wait))
        .await
        .expect("wait");
    let none = lease(s.b.as_ref(), "node-b", 8, LONG).await;
    assert!(none.runs.is_empty(), "not due yet");
    assert_eq!(none.next_due_ms, Some(later));
    assert_eq!(
        s.a.get_run(&id)
            .await
            .expect("get")
            .expect("run")
            .next_attempt_at,
        Some(later)
    );
}

pub async fn record_step_advances_and_finishes_a_run(s: Stores) {
    let id = queue(s.a.as_ref(), &[("r", None)]).await.remove(0);
    lease(s.a.as_ref(), "node-a", 1, LONG).await;
    let until = now_ms() + LONG;
    let saved =
        s.b.record_step(step(
            &id,
            "node-a",
            1,
            RunProgress::Continue {
                lease_until_ms: until,
            },
        ))
        .await
        .expect("step 1");
    assert!(!saved.cancel_requested);
    let run = s.a.get_run(&id).await.expect("get").expect("run");
    assert_eq!(
        (run.status, run.next_step, run.attempt),
        (RunStatus::Running, 1, 0)
    );
    assert_eq!(run.outputs, json!({"call": {"status": 200}}));
    assert_eq!(run.lease_owner.as_deref(), Some("node-a"));

    s.a.record_step(step(&id, "node-a", 2, finished(RunStatus::Succeeded)))
        .await
        .expect("done");
    let run = s.b.get_run(&id).await.expect("get").expect("run");
    assert_eq!(run.status, RunStatus::Succeeded);
    assert!(run.finished_at.is_some());
    assert_eq!(
        (run.next_attempt_at, &run.lease_owner, run.lease_expires_at),
        (None, &None, None)
    );
    let attempts = s.b.attempts_for_run(&id).await.expect("attempts");
    assert_eq!(attempts.len(), 2);
    assert_eq!((attempts[0].step_index, attempts[1].step_index), (0, 1));
    assert_eq!(
        attempts[0].request,
        json!({"method": "POST", "url": "https://example.test"})
    );
    assert_eq!(attempts[0].outcome, AttemptOutcome::Succeeded);
    assert_eq!(attempts[0].duration_ms, Some(12));
    assert_eq!(s.a.queue_depth().await.expect("depth"), 0);
    // A finished run takes no more records.
    let err =
        s.a.record_step(step(&id, "node-a", 2, finished(RunStatus::Failed)))
            .await;
    assert!(matches!(err, Err(StoreError::LeaseLost { .. })), "{err:?}");
}

pub async fn a_retry_wait_keeps_the_slot_and_frees_the_worker(s: Stores) {
    let first = queue(s.a.as_ref(), &[("one", Some(1))]).await.remove(0);
    let second = queue(s.a.as_ref(), &[("one", Some(1))]).await.remove(0);
    assert_eq!(
        ids(&lease(s.a.as_ref(), "node-a", 8, LONG).await),
        vec![first.clone()]
    );
    let mut record = step(
        &first,
        "node-a",
        0,
        RunProgress::RetryAt {
            at_ms: now_ms() + 200,
        },
    );
    record.attempt = Some(attempt(&first, 0, 1, AttemptOutcome::Retrying));
    record.attempts_at_next_step = 1;
    s.a.record_step(record).await.expect("retry later");
    let run = s.a.get_run(&first).await.expect("get").expect("run");
    assert_eq!(
        (run.status, run.attempt, &run.lease_owner),
        (RunStatus::Running, 1, &None)
    );

    // The waiting run keeps the rule's only slot; once due, it is leased
    // again (by any node), never the second run.
    let retried = wait::for_ok("the retry to come due", Duration::from_secs(10), || async {
        let got = lease(s.b.as_ref(), "node-b", 8, LONG).await;
        match got.runs.first() {
            Some(r) => Ok(r.run.id.clone()),
            None => Err("nothing leased"),
        }
    })
    .await;
    assert_eq!(retried, first);
    assert_ne!(retried, second);
}

pub async fn another_node_cannot_record_a_step(s: Stores) {
    let id = queue(s.a.as_ref(), &[("r", None)]).await.remove(0);
    lease(s.a.as_ref(), "node-a", 1, LONG).await;
    let err =
        s.b.record_step(step(&id, "node-b", 1, finished(RunStatus::Succeeded)))
            .await;
    assert!(matches!(err, Err(StoreError::LeaseLost { .. })), "{err:?}");
    assert!(
        s.a.attempts_for_run(&id)
            .await
            .expect("attempts")
            .is_empty(),
        "nothing written"
    );
    let run = s.a.get_run(&id).await.expect("get").expect("run");
    assert_eq!((run.status, run.next_step), (RunStatus::Running, 0));
}

/// Records of many runs at once (a PostgreSQL node writes the records
/// waiting at a moment in one transaction): each gets its own answer — a
/// record whose lease is another node's fails alone and writes nothing,
/// the others are written whatever their kind.
pub async fn records_at_once_fail_only_where_the_lease_is_lost(s: Stores) {
    let rules: Vec<(&str, Option<u32>)> = vec![("r", None); 12];
    let queued = queue(s.a.as_ref(), &rules).await;
    assert_eq!(
        lease(s.a.as_ref(), "node-a", 12, LONG).await.runs.len(),
        12,
        "all leased"
    );
    let mut tasks = Vec::new();
    for (i, id) in queued.iter().enumerate() {
        let (node, progress) = match i % 4 {
            0 => ("node-a", finished(RunStatus::Succeeded)),
            1 => (
                "node-a",
                RunProgress::Continue {
                    lease_until_ms: now_ms() + LONG,
                },
            ),
            2 => (
                "node-a",
                RunProgress::RetryAt {
                    at_ms: now_ms() + LONG,
                },
            ),
            _ => ("node-b", finished(RunStatus::Succeeded)),
        };
        let record = step(id, node, 1, progress);
        let store = Arc::clone(&s.b);
        tasks.push(tokio::spawn(async move { store.record_step(record).await }));
    }
    for (i, (task, id)) in tasks.into_iter().zip(&queued).enumerate() {
        let outcome = task.await.expect("task");
        let run = s.a.get_run(id).await.expect("get").expect("run");
        let attempts = s.a.attempts_for_run(id).await.expect("attempts").len();
        match i % 4 {
            0 => {
                assert!(outcome.is_ok(), "{outcome:?}");
                assert_eq!((run.status, attempts), (RunStatus::Succeeded, 1));
            }
            1 => {
                assert!(outcome.is_ok(), "{outcome:?}");
                assert_eq!(
                    (
                        run.status,
                        run.next_step,
                        run.lease_owner.as_deref(),
                        attempts
                    ),
                    (RunStatus::Running, 1, Some("node-a"), 1)
                );
            }
            2 => {
                assert!(outcome.is_ok(), "{outcome:?}");
                assert_eq!(
                    (run.status, run.lease_owner.as_deref(), attempts),
                    (RunStatus::Running, None, 1)
                );
            }
            _ => {
                assert!(
                    matches!(outcome, Err(StoreError::LeaseLost { .. })),
                    "{outcome:?}"
                );
                assert_eq!(
                    (
                        run.status,
                        run.next_step,
                        run.lease_owner.as_deref(),
                        attempts
                    ),
                    (RunStatus::Running, 0, Some("node-a"), 0),
                    "nothing written"
                );
            }
        }
    }
}

/// Node A leases briefly and stalls; once the lease expired (by the
/// store's clock), node B takes the run over, counting the expiry, and A's
/// late record is refused.
pub async fn an_expired_lease_is_taken_over_by_another_node(s: Stores) {
    let id = queue(s.a.as_ref(), &[("r", Some(1))]).await.remove(0);
    assert_eq!(
        ids(&lease(s.a.as_ref(), "node-a", 1, 300).await),
        vec![id.clone()]
    );
    let taken = wait::for_ok(
        "node b to take the run over",
        Duration::from_secs(10),
        || async {
            let got = lease(s.b.as_ref(), "node-b", 1, LONG).await;
            got.runs.into_iter().next().ok_or("not yet")
        },
    )
    .await;
    assert_eq!(taken.run.id, id);
    assert_eq!(taken.run.lease_owner.as_deref(), Some("node-b"));
    assert_eq!(taken.run.lease_expiries, 1);
    let late =
        s.a.record_step(step(&id, "node-a", 1, finished(RunStatus::Succeeded)))
            .await;
    assert!(
        matches!(late, Err(StoreError::LeaseLost { .. })),
        "{late:?}"
    );
    let renewal =
        s.a.renew_leases(
            "node-a",
            std::slice::from_ref(&id),
            now_ms(),
            now_ms() + LONG,
        )
        .await;
    assert!(
        renewal.expect("renew").held.is_empty(),
        "a lost lease is not renewed"
    );
    s.b.record_step(step(&id, "node-b", 1, finished(RunStatus::Succeeded)))
        .await
        .expect("b");
    let run = s.a.get_run(&id).await.expect("get").expect("run");
    assert_eq!((run.status, run.lease_expiries), (RunStatus::Succeeded, 0));
}

pub async fn renew_extends_only_the_leases_still_held(s: Stores) {
    let ids_queued = queue(s.a.as_ref(), &[("r", None), ("r", None), ("r", None)]).await;
    assert_eq!(lease(s.a.as_ref(), "node-a", 2, 1_000).await.runs.len(), 2);
    assert_eq!(lease(s.b.as_ref(), "node-b", 2, LONG).await.runs.len(), 1);
    let before =
        s.a.get_run(&ids_queued[0])
            .await
            .expect("get")
            .expect("run");
    let renewal =
        s.a.renew_leases(
            "node-a",
            &[ids_queued[0].clone(), ids_queued[2].clone()],
            now_ms(),
            now_ms() + LONG,
        )
        .await
        .expect("renew");
    assert_eq!(
        renewal.held,
        vec![ids_queued[0].clone()],
        "node b holds the third"
    );
    assert!(renewal.cancel_requested.is_empty());
    let after =
        s.a.get_run(&ids_queued[0])
            .await
            .expect("get")
            .expect("run");
    assert!(
        after.lease_expires_at > before.lease_expires_at,
        "{after:?}"
    );
    let untouched =
        s.a.get_run(&ids_queued[1])
            .await
            .expect("get")
            .expect("run");
    assert!(
        untouched.lease_expires_at < after.lease_expires_at,
        "only runs asked about"
    );
}

pub async fn release_and_reclaim_make_runs_due_again(s: Stores) {
    let ids_queued = queue(s.a.as_ref(), &[("r", None), ("r", None), ("r", None)]).await;
    assert_eq!(lease(s.a.as_ref(), "node-a", 3, LONG).await.runs.len(), 3);
    let gave =
        s.a.release_runs(
            "node-a",
            std::slice::from_ref(&ids_queued[0]),
            Release::Untouched,
            now_ms(),
        )
        .await
        .expect("release one");
    assert_eq!(gave, 1);
    assert_eq!(
        s.b.release_runs("node-b", &ids_queued, Release::Untouched, now_ms())
            .await
            .expect("b"),
        0
    );
    let got = lease(s.b.as_ref(), "node-b", 8, LONG).await;
    assert_eq!(ids(&got), vec![ids_queued[0].clone()]);
    assert_eq!(
        got.runs[0].run.lease_expiries, 0,
        "an untouched release counts nothing"
    );

    // Graceful shutdown of node a: its two leases go back at once.
    assert_eq!(
        s.a.release_leases("node-a", now_ms())
            .await
            .expect("release all"),
        2
    );
    let got = lease(s.b.as_ref(), "node-c", 8, LONG).await;
    assert_eq!(
        ids(&got),
        vec![ids_queued[1].clone(), ids_queued[2].clone()]
    );

    // node-c restarts after a crash: it reclaims its own leases.
    assert!(
        s.a.reclaim_leases("node-c", now_ms())
            .await
            .expect("reclaim")
            >= 2
    );
    let again = lease(s.a.as_ref(), "node-c2", 8, LONG).await;
    let mut again = ids(&again);
    again.sort();
    assert!(
        again.contains(&ids_queued[1]) && again.contains(&ids_queued[2]),
        "{again:?}"
    );
    let run =
        s.a.get_run(&ids_queued[1])
            .await
            .expect("get")
            .expect("run");
    assert_eq!((run.status, run.next_step), (RunStatus::Running, 0));
}

pub async fn a_lost_worker_counts_as_an_expired_lease(s: Stores) {
    let id = queue(s.a.as_ref(), &[("r", None)]).await.remove(0);
    for expected in 1..=2 {
        lease(s.a.as_ref(), "node-a", 1, LONG).await;
        let lost = s.a.release_runs(
            "node-a",
            std::slice::from_ref(&id),
            Release::WorkerLost,
            now_ms(),
        );
        assert_eq!(lost.await.expect("worker lost"), 1);
        let got = lease(s.b.as_ref(), "node-b", 1, LONG).await;
        assert_eq!(got.runs[0].run.lease_expiries, expected);
        s.b.release_runs(
            "node-b",
            std::slice::from_ref(&id),
            Release::Untouched,
            now_ms(),
        )
        .await
        .expect("back");
    }
}
