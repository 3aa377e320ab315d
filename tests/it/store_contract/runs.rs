//! Operators' writes and reads of runs: retry (also when racing), replays
//! of a stored delivery, retention, and the run listing.

use std::sync::Arc;

use hookflow::store::{RetryOutcome, RunFilter, RunStatus, StoreError};

use super::leasing::{LONG, finished, lease, step};
use super::{MINUTE, Stores, T0, delivery, now_ms, queue, run_for};

/// Runs `id` to `failed` on node a.
async fn fail(s: &Stores, id: &str) {
    lease(s.a.as_ref(), "node-a", 8, LONG).await;
    let mut record = step(id, "node-a", 0, finished(RunStatus::Failed));
    if let hookflow::store::RunProgress::Finished { error, .. } = &mut record.progress {
        *error = Some("HTTP 500".to_owned());
    }
    s.a.record_step(record).await.expect("fail");
}

pub async fn retry_races_requeue_a_failed_run_once(s: Stores) {
    let id = queue(s.a.as_ref(), &[("r", None)]).await.remove(0);
    let early =
        s.a.retry_run(&id, now_ms(), None)
            .await
            .expect("retry queued");
    assert_eq!(early, RetryOutcome::NotFailed(RunStatus::Queued));
    fail(&s, &id).await;

    let mut tasks = Vec::new();
    for i in 0..8 {
        let store = if i % 2 == 0 {
            Arc::clone(&s.a)
        } else {
            Arc::clone(&s.b)
        };
        let id = id.clone();
        tasks.push(tokio::spawn(async move {
            store.retry_run(&id, now_ms(), None).await
        }));
    }
    let mut requeued = Vec::new();
    for task in tasks {
        match task.await.expect("task").expect("retry") {
            RetryOutcome::Requeued(run) => requeued.push(run),
            RetryOutcome::NotFailed(status) => assert_eq!(status, RunStatus::Queued),
            RetryOutcome::NotFound => panic!("run not found"),
        }
    }
    assert_eq!(requeued.len(), 1, "re-queued exactly once");
    let run = &requeued[0];
    assert_eq!(run.status, RunStatus::Queued);
    assert_eq!((run.next_step, run.attempt), (0, 0));
    assert_eq!((run.error.as_deref(), run.finished_at), (None, None));
    assert_eq!(
        run.outputs,
        serde_json::json!({"call": {"status": 200}}),
        "outputs kept"
    );
    assert_eq!(
        s.a.retry_run("nope", now_ms(), None)
            .await
            .expect("unknown"),
        RetryOutcome::NotFound
    );
    let got = lease(s.b.as_ref(), "node-b", 8, LONG).await;
    assert_eq!(got.runs.len(), 1, "leased again");
}

pub async fn queue_runs_replays_a_stored_delivery(s: Stores) {
    let d = delivery("github", None, T0);
    s.a.accept(d.clone(), vec![], MINUTE).await.expect("accept");
    let replay = vec![run_for(&d, "a", None), run_for(&d, "b", Some(1))];
    s.b.queue_runs(&d.id, replay.clone()).await.expect("queue");
    let runs = s.a.runs_for_delivery(&d.id).await.expect("runs");
    let ids: Vec<_> = runs.iter().map(|r| r.id.clone()).collect();
    assert_eq!(ids, replay.iter().map(|r| r.id.clone()).collect::<Vec<_>>());
    assert!(runs.iter().all(|r| r.status == RunStatus::Queued));

    let err =
        s.a.queue_runs("nope", vec![])
            .await
            .expect_err("unknown delivery");
    assert!(matches!(err, StoreError::Invalid { .. }), "{err}");
    let other = delivery("github", None, T0);
    let mixed = vec![run_for(&d, "c", None), run_for(&other, "c", None)];
    let err =
        s.a.queue_runs(&d.id, mixed)
            .await
            .expect_err("run of another delivery");
    assert!(matches!(err, StoreError::Invalid { .. }), "{err}");
    // All or none: a conflicting id leaves nothing behind.
    let conflict = vec![run_for(&d, "d", None), replay[0].clone()];
    s.a.queue_runs(&d.id, conflict)
        .await
        .expect_err("duplicate run id");
    assert_eq!(s.a.runs_for_delivery(&d.id).await.expect("runs").len(), 2);
}

pub async fn prune_deletes_old_finished_deliveries_only(s: Stores) {
    // Three old deliveries: two finished (one without runs), one with a
    // run still queued; one recent.
    let done = queue(s.a.as_ref(), &[("r", None)]).await.remove(0);
    lease(s.a.as_ref(), "node-a", 8, LONG).await;
    s.a.record_step(step(&done, "node-a", 1, finished(RunStatus::Succeeded)))
        .await
        .expect("done");
    let bare = delivery("github", Some("old-key"), T0 + 1);
    s.a.accept(bare.clone(), vec![], MINUTE)
        .await
        .expect("bare");
    let pending = queue(s.a.as_ref(), &[("r", None)]).await.remove(0);
    let recent = delivery("github", None, T0 + 10 * MINUTE);
    s.a.accept(recent.clone(), vec![], MINUTE)
        .await
        .expect("recent");

    let before = T0 + MINUTE;
    assert_eq!(s.b.prune(before, 1).await.expect("first batch"), 1);
    assert_eq!(s.b.prune(before, 10).await.expect("second batch"), 1);
    assert_eq!(s.b.prune(before, 10).await.expect("nothing left"), 0);
    assert!(
        s.a.get_run(&done).await.expect("get").is_none(),
        "runs go with their delivery"
    );
    assert!(
        s.a.attempts_for_run(&done)
            .await
            .expect("attempts")
            .is_empty()
    );
    assert!(s.a.get_delivery(&bare.id).await.expect("get").is_none());
    assert!(
        s.a.get_run(&pending).await.expect("get").is_some(),
        "unfinished work is kept"
    );
    assert!(s.a.get_delivery(&recent.id).await.expect("get").is_some());
    // A pruned delivery's dedupe key is forgotten with it.
    let again = delivery("github", Some("old-key"), T0 + 2);
    let outcome = s.a.accept(again, vec![], MINUTE).await.expect("again");
    assert_eq!(outcome, hookflow::store::AcceptOutcome::Accepted);
}

pub async fn runs_list_filtered_and_paginated(s: Stores) {
    let mut deploys = Vec::new();
    for i in 0..4 {
        let d = delivery("github", None, T0 + i * 1000);
        let run = run_for(&d, "deploy", None);
        deploys.push(run.id.clone());
        s.a.accept(d.clone(), vec![run, run_for(&d, "notify", None)], MINUTE)
            .await
            .expect("accept");
    }
    let all = s.b.list_runs(RunFilter::default()).await.expect("all");
    assert_eq!(all.len(), 8);
    assert!(
        all.windows(2)
            .all(|w| (w[0].created_at, &w[0].id) > (w[1].created_at, &w[1].id))
    );

    let page = |before_id| RunFilter {
        rule: Some("deploy".to_owned()),
        limit: 3,
        before_id,
        ..RunFilter::default()
    };
    let ids =
        |runs: Vec<hookflow::store::RunRecord>| runs.into_iter().map(|r| r.id).collect::<Vec<_>>();
    let page1 = ids(s.b.list_runs(page(None)).await.expect("page 1"));
    assert_eq!(
        page1,
        vec![deploys[3].clone(), deploys[2].clone(), deploys[1].clone()]
    );
    let page2 = ids(s
        .b
        .list_runs(page(Some(deploys[1].clone())))
        .await
        .expect("page 2"));
    assert_eq!(page2, vec![deploys[0].clone()]);

    // `since_ms` (`retry --since 2h`): only runs created at or after it.
    let recent = RunFilter {
        rule: Some("deploy".to_owned()),
        since_ms: Some(T0 + 2000),
        ..RunFilter::default()
    };
    let recent = ids(s.b.list_runs(recent).await.expect("since"));
    assert_eq!(recent, vec![deploys[3].clone(), deploys[2].clone()]);

    fail(&s, &deploys[0]).await;
    let failed = RunFilter {
        status: Some(RunStatus::Failed),
        ..RunFilter::default()
    };
    let failed = s.b.list_runs(failed).await.expect("failed");
    assert_eq!(ids(failed), vec![deploys[0].clone()]);
    let queued = RunFilter {
        status: Some(RunStatus::Queued),
        ..RunFilter::default()
    };
    assert_eq!(
        s.b.list_runs(queued).await.expect("queued").len(),
        0,
        "the rest were leased"
    );

    // `count_runs` counts what the same filter lists, past any page limit.
    for (filter, expected) in [
        (RunFilter::default(), 8),
        (page(None), 4),
        (page(Some(deploys[2].clone())), 2),
        (
            RunFilter {
                rule: Some("deploy".to_owned()),
                since_ms: Some(T0 + 2000),
                ..RunFilter::default()
            },
            2,
        ),
        (
            RunFilter {
                rule: Some("deploy".to_owned()),
                status: Some(RunStatus::Failed),
                ..RunFilter::default()
            },
            1,
        ),
        (
            RunFilter {
                rule: Some("notify".to_owned()),
                status: Some(RunStatus::Failed),
                ..RunFilter::default()
            },
            0,
        ),
    ] {
        let shown = format!("{filter:?}");
        assert_eq!(
            s.b.count_runs(filter).await.expect("count"),
            expected,
            "{shown}"
        );
    }
}
