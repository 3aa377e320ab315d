//! `on_failure` runs (SPEC §5): queued in the write that fails a run, never
//! for an `on_failure` run's own failure, nothing on a lost lease, and
//! `on_failure_every` folding a window's failures into one run.

use hookflow::store::{Failure, FailureHandler, RunKind, RunRecord, RunStatus, StepRecord, Store};

use super::leasing::{LONG, finished, lease, step};
use super::{Stores, new_id, now_ms, queue};

const HOUR: i64 = 3_600_000;

fn failing(run: &str, node: &str, every_ms: Option<i64>) -> (StepRecord, String) {
    let id = new_id();
    let record = StepRecord {
        on_failure: Some(FailureHandler {
            id: id.clone(),
            every_ms,
            failure: Failure {
                run: run.to_owned(),
                step: "call".to_owned(),
                error: "HTTP 503".to_owned(),
                attempts: 6,
                count: 1,
            },
        }),
        ..step(run, node, 0, finished(RunStatus::Failed))
    };
    (record, id)
}

async fn handlers(store: &dyn Store, rule: &str) -> Vec<RunRecord> {
    let runs = store
        .list_runs(hookflow::store::RunFilter {
            rule: Some(rule.to_owned()),
            ..Default::default()
        })
        .await
        .expect("list");
    runs.into_iter()
        .filter(|r| r.kind == RunKind::OnFailure)
        .collect()
}

pub async fn a_failure_queues_its_on_failure_run_in_the_same_write(s: Stores) {
    let ids = queue(s.a.as_ref(), &[("r", None), ("r", None)]).await;
    let (failed, ok) = (&ids[0], &ids[1]);
    assert_eq!(lease(s.a.as_ref(), "node-a", 2, LONG).await.runs.len(), 2);

    // Another node's record (the lease is not its own) writes nothing.
    let (record, handler_id) = failing(failed, "node-b", None);
    assert!(s.b.record_step(record).await.is_err());
    assert_eq!(s.a.get_run(&handler_id).await.expect("get"), None);

    // A success queues no handler even if one is offered.
    let (record, none_id) = failing(ok, "node-a", None);
    let record = StepRecord {
        progress: finished(RunStatus::Succeeded),
        ..record
    };
    s.a.record_step(record).await.expect("succeed");
    assert_eq!(s.a.get_run(&none_id).await.expect("get"), None);

    let before = now_ms();
    let (record, handler_id) = failing(failed, "node-a", None);
    s.a.record_step(record).await.expect("fail");
    let run = s.a.get_run(failed).await.expect("get").expect("run");
    assert_eq!(run.status, RunStatus::Failed);
    let handler =
        s.b.get_run(&handler_id)
            .await
            .expect("get")
            .expect("queued with the failure");
    assert_eq!(handler.kind, RunKind::OnFailure);
    assert_eq!(handler.status, RunStatus::Queued);
    assert_eq!(
        (&handler.rule, &handler.delivery_id, &handler.definition),
        (&run.rule, &run.delivery_id, &run.definition)
    );
    let failure = handler.failure.clone().expect("its failure");
    assert_eq!(
        (
            failure.run.as_str(),
            failure.step.as_str(),
            failure.error.as_str()
        ),
        (failed.as_str(), "call", "HTTP 503")
    );
    assert_eq!((failure.attempts, failure.count), (6, 1));
    assert!(
        handler
            .next_attempt_at
            .is_some_and(|at| at >= before && at <= now_ms())
    );
    assert_eq!(run.kind, RunKind::Rule);
    assert_eq!(run.failure, None);

    // The handler runs like any run; its own failure queues nothing, even
    // when offered a handler.
    let leased = lease(s.b.as_ref(), "node-b", 10, LONG).await;
    assert_eq!(super::leasing::ids(&leased), vec![handler_id.clone()]);
    assert_eq!(leased.runs[0].run.failure, Some(failure));
    let (record, chained) = failing(&handler_id, "node-b", None);
    s.b.record_step(record).await.expect("handler fails");
    assert_eq!(s.a.get_run(&chained).await.expect("get"), None);
    let all = handlers(s.a.as_ref(), "r").await;
    assert_eq!(all.len(), 1, "{all:#?}");
    assert_eq!(all[0].status, RunStatus::Failed);
    assert_eq!(s.a.queue_depth().await.expect("depth"), 0);
}

pub async fn on_failure_every_folds_a_windows_failures_into_one_run(s: Stores) {
    let ids = queue(s.a.as_ref(), &[("g", None); 4]).await;
    assert_eq!(lease(s.a.as_ref(), "node-a", 4, LONG).await.runs.len(), 4);

    // The first failure after a quiet window is reported at once.
    let start = now_ms();
    let (record, first) = failing(&ids[0], "node-a", Some(HOUR));
    s.a.record_step(record).await.expect("fail 1");
    // While that run is still queued, a failure (from another node) is
    // folded into it: no new run, the count goes up, the latest failure
    // is the one reported.
    let (record, folded) = failing(&ids[1], "node-a", Some(HOUR));
    s.b.record_step(record).await.expect("fail 2");
    assert_eq!(s.a.get_run(&folded).await.expect("get"), None);
    let pending = s.a.get_run(&first).await.expect("get").expect("handler");
    let failure = pending.failure.clone().expect("failure");
    assert_eq!((failure.count, failure.run.as_str()), (2, ids[1].as_str()));
    assert!(pending.next_attempt_at.is_some_and(|at| at <= now_ms()));

    // Once it has started, the next failure opens the next window, due
    // when this one ends; later ones fold into that.
    let leased = lease(s.b.as_ref(), "node-b", 10, LONG).await;
    assert_eq!(super::leasing::ids(&leased), vec![first.clone()]);
    let (record, next) = failing(&ids[2], "node-a", Some(HOUR));
    s.a.record_step(record).await.expect("fail 3");
    let (record, _) = failing(&ids[3], "node-a", Some(HOUR));
    s.b.record_step(record).await.expect("fail 4");
    let waiting =
        s.a.get_run(&next)
            .await
            .expect("get")
            .expect("next window's run");
    assert_eq!(waiting.status, RunStatus::Queued);
    assert_eq!(waiting.failure.as_ref().map(|f| f.count), Some(2));
    let due = waiting.next_attempt_at.expect("due");
    assert!(due >= start + HOUR && due <= now_ms() + HOUR, "{due}");
    // Nothing else is due: the window's run waits for the window's end.
    assert!(
        lease(s.a.as_ref(), "node-a", 10, LONG)
            .await
            .runs
            .is_empty()
    );
    assert_eq!(handlers(s.b.as_ref(), "g").await.len(), 2);
}
