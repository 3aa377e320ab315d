//! Cancelling runs (SPEC §5): a queued run ends at once; a run a worker
//! holds (on any node) is marked, and its worker learns it from its next
//! heartbeat or step record.

use hookflow::store::{CANCELLED_BY_OPERATOR, CancelOutcome, RunProgress, RunStatus};

use super::leasing::{LONG, finished, lease, step};
use super::{Stores, now_ms, queue};

pub async fn cancel_ends_a_queued_run_at_once(s: Stores) {
    let id = queue(s.a.as_ref(), &[("r", Some(1))]).await.remove(0);
    let CancelOutcome::Cancelled { run } = s.b.cancel_run(&id, now_ms()).await.expect("cancel")
    else {
        panic!("a queued run is cancelled at once");
    };
    assert_eq!(run.status, RunStatus::Cancelled);
    assert_eq!(run.error.as_deref(), Some(CANCELLED_BY_OPERATOR));
    assert!(run.finished_at.is_some());
    assert!(lease(s.a.as_ref(), "node-a", 8, LONG).await.runs.is_empty());
    let again = s.a.cancel_run(&id, now_ms()).await.expect("twice");
    assert!(
        matches!(again, CancelOutcome::AlreadyCancelled { .. }),
        "{again:?}"
    );
}

pub async fn cancel_of_a_held_run_is_seen_by_its_worker(s: Stores) {
    let ids = queue(s.a.as_ref(), &[("r", None), ("r", None)]).await;
    lease(s.a.as_ref(), "node-a", 8, LONG).await;
    let outcome = s.b.cancel_run(&ids[0], now_ms()).await.expect("cancel");
    let CancelOutcome::Requested { run } = outcome else {
        panic!("a held run is marked: {outcome:?}");
    };
    assert!(run.cancel_requested_at.is_some());
    assert_eq!(run.status, RunStatus::Running);
    let renewal =
        s.a.renew_leases("node-a", &ids, now_ms(), now_ms() + LONG)
            .await
            .expect("renew");
    assert_eq!(renewal.held.len(), 2);
    assert_eq!(renewal.cancel_requested, vec![ids[0].clone()]);
    let again = s.b.cancel_run(&ids[0], now_ms()).await.expect("twice");
    assert!(
        matches!(again, CancelOutcome::AlreadyCancelled { .. }),
        "{again:?}"
    );

    // The worker records its step: it learns the cancel there too.
    let until = now_ms() + LONG;
    let saved =
        s.a.record_step(step(
            &ids[0],
            "node-a",
            1,
            RunProgress::Continue {
                lease_until_ms: until,
            },
        ))
        .await
        .expect("step");
    assert!(saved.cancel_requested);
    s.a.record_step(step(&ids[0], "node-a", 1, finished(RunStatus::Cancelled)))
        .await
        .expect("end");
    assert_eq!(
        s.b.get_run(&ids[0])
            .await
            .expect("get")
            .expect("run")
            .status,
        RunStatus::Cancelled
    );

    // A marked run written back to wait for a retry is cancelled then.
    s.b.cancel_run(&ids[1], now_ms())
        .await
        .expect("cancel second");
    let wait = RunProgress::RetryAt {
        at_ms: now_ms() + LONG,
    };
    let saved =
        s.a.record_step(step(&ids[1], "node-a", 0, wait))
            .await
            .expect("wait");
    assert!(saved.cancel_requested);
    let run = s.b.get_run(&ids[1]).await.expect("get").expect("run");
    assert_eq!(run.status, RunStatus::Cancelled);
}

pub async fn cancel_of_finished_or_unknown_runs_does_nothing(s: Stores) {
    let id = queue(s.a.as_ref(), &[("r", None)]).await.remove(0);
    lease(s.a.as_ref(), "node-a", 8, LONG).await;
    s.a.record_step(step(&id, "node-a", 1, finished(RunStatus::Succeeded)))
        .await
        .expect("done");
    let outcome = s.b.cancel_run(&id, now_ms()).await.expect("cancel");
    assert_eq!(
        outcome,
        CancelOutcome::Finished {
            status: RunStatus::Succeeded
        }
    );
    assert_eq!(
        s.b.cancel_run("nope", now_ms()).await.expect("unknown"),
        CancelOutcome::NotFound
    );

    // A marked run whose worker died (lease expired) is cancelled by the
    // next lease instead of being run again.
    let held = queue(s.a.as_ref(), &[("r", None)]).await.remove(0);
    lease(s.a.as_ref(), "node-a", 8, 200).await;
    s.b.cancel_run(&held, now_ms()).await.expect("mark");
    crate::common::wait::until(
        "the marked run to end cancelled",
        std::time::Duration::from_secs(10),
        || async {
            lease(s.b.as_ref(), "node-b", 8, LONG).await;
            s.b.get_run(&held).await.expect("get").expect("run").status == RunStatus::Cancelled
        },
    )
    .await;
}
