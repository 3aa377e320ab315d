//! What #14 added to the store: the audit trail of operators' actions, a
//! retry that keeps the attempt numbering, runs waiting for a retry, and
//! the dashboard's overview figures.

use hookflow::store::stats::Outcome;
use hookflow::store::{
    ActionKind, Actor, AttemptOutcome, OperatorAction, Redefinition, Rejected, RetryOutcome,
    RunFilter, RunProgress, RunStatus, Via,
};
use serde_json::json;

use super::leasing::{LONG, attempt, finished, lease, step};
use super::{MINUTE, Stores, delivery, now_ms, queue, run_for};

pub async fn the_audit_trail_lists_by_target_and_ages_out(s: Stores) {
    let actor = Actor {
        via: Via::Api,
        client: "198.51.100.4".to_owned(),
    };
    let mut old = OperatorAction::new(ActionKind::Retry, Some("run-1"), &actor, json!({"n": 1}));
    old.at -= 10 * MINUTE;
    let newer = OperatorAction::new(ActionKind::Cancel, Some("run-1"), &actor, json!({"n": 2}));
    let mut reload = OperatorAction::new(ActionKind::Reload, None, &Actor::cli(), json!(null));
    reload.at = newer.at + 1;
    for action in [&old, &newer, &reload] {
        s.a.record_operator_action(action.clone())
            .await
            .expect("record");
    }
    let on_run =
        s.b.operator_actions(Some("run-1"), 10)
            .await
            .expect("by target");
    assert_eq!(on_run, vec![old.clone(), newer.clone()], "oldest first");
    let latest = s.b.operator_actions(None, 2).await.expect("latest");
    assert_eq!(latest.len(), 2);
    assert_eq!(latest[1], newer, "newest first: {latest:?}");
    assert_eq!(latest[0].action, ActionKind::Reload);

    assert!(s.a.prune(now_ms() - MINUTE, 10).await.expect("prune") >= 1);
    let on_run =
        s.b.operator_actions(Some("run-1"), 10)
            .await
            .expect("by target");
    assert_eq!(on_run, vec![newer], "the old entry aged out");
}

pub async fn a_retry_continues_the_attempt_numbering(s: Stores) {
    let id = queue(s.a.as_ref(), &[("r", None)]).await.remove(0);
    lease(s.a.as_ref(), "node-a", 8, LONG).await;
    let mut record = step(&id, "node-a", 0, finished(RunStatus::Failed));
    record.attempt = Some(attempt(&id, 0, 3, AttemptOutcome::Failed));
    record.attempts_at_next_step = 3;
    s.a.record_step(record)
        .await
        .expect("fail after 3 attempts");
    let RetryOutcome::Requeued(run) = s.b.retry_run(&id, now_ms(), None).await.expect("retry")
    else {
        panic!("a failed run is re-queued");
    };
    assert_eq!((run.attempt, run.attempt_base), (3, 3));

    lease(s.b.as_ref(), "node-b", 8, LONG).await;
    let until = now_ms() + LONG;
    s.b.record_step(step(
        &id,
        "node-b",
        1,
        RunProgress::Continue {
            lease_until_ms: until,
        },
    ))
    .await
    .expect("next step");
    let run = s.a.get_run(&id).await.expect("get").expect("run");
    assert_eq!(
        (run.next_step, run.attempt_base),
        (1, 0),
        "a new step starts afresh"
    );
}

/// `retry --current`: the definition and concurrency are replaced with the
/// retry, in the same write; the numbering goes on all the same.
pub async fn a_retry_with_a_redefinition_replaces_the_definition(s: Stores) {
    let id = queue(s.a.as_ref(), &[("r", None)]).await.remove(0);
    lease(s.a.as_ref(), "node-a", 8, LONG).await;
    let mut record = step(&id, "node-a", 0, finished(RunStatus::Failed));
    record.attempt = Some(attempt(&id, 0, 2, AttemptOutcome::Failed));
    record.attempts_at_next_step = 2;
    s.a.record_step(record)
        .await
        .expect("fail after 2 attempts");
    let before = s.a.get_run(&id).await.expect("get").expect("run");
    let new = json!({"name": "r", "source": "s", "actions": [{"http": {"url": "http://fixed/"}}]});
    assert_ne!(before.definition, new);
    let redefine = Redefinition {
        definition: new.clone(),
        concurrency: Some(2),
        concurrency_key: Some("repo-1".to_owned()),
    };
    let RetryOutcome::Requeued(run) =
        s.b.retry_run(&id, now_ms(), Some(redefine.clone()))
            .await
            .expect("retry")
    else {
        panic!("a failed run is re-queued");
    };
    assert_eq!(run.status, RunStatus::Queued);
    assert_eq!(run.definition, new);
    assert_eq!(
        (run.concurrency, run.concurrency_key.as_deref()),
        (Some(2), Some("repo-1"))
    );
    assert_eq!((run.attempt, run.attempt_base), (2, 2));
    assert_eq!(s.a.get_run(&id).await.expect("get").expect("run"), *run);
    // Not failed (queued now): refused, and the definition stays.
    let again =
        s.b.retry_run(&id, now_ms(), Some(redefine))
            .await
            .expect("retry");
    assert_eq!(again, RetryOutcome::NotFailed(RunStatus::Queued));
}

pub async fn runs_waiting_for_a_retry_are_listed_as_waiting(s: Stores) {
    let ids = queue(s.a.as_ref(), &[("r", None), ("r", None)]).await;
    lease(s.a.as_ref(), "node-a", 8, LONG).await;
    let later = now_ms() + 3_600_000;
    s.a.record_step(step(
        &ids[0],
        "node-a",
        0,
        RunProgress::RetryAt { at_ms: later },
    ))
    .await
    .expect("wait");
    let now = now_ms();
    let waiting = RunFilter {
        waiting_at: Some(now),
        ..RunFilter::default()
    };
    let listed = s.b.list_runs(waiting).await.expect("waiting");
    assert_eq!(
        listed.iter().map(|r| r.id.clone()).collect::<Vec<_>>(),
        vec![ids[0].clone()]
    );
    assert_eq!(listed[0].state(now).as_str(), "waiting");
    let held = s.b.get_run(&ids[1]).await.expect("get").expect("run");
    assert_eq!(held.state(now).as_str(), "running");
}

pub async fn the_overview_counts_deliveries_runs_and_rule_rates(s: Stores) {
    let now = now_ms();
    let minute = now / 60_000 * 60_000;
    for matched in [true, true, false] {
        let mut d = delivery("gh", None, now);
        let runs = if matched {
            vec![run_for(&d, "r", None)]
        } else {
            Vec::new()
        };
        if !matched {
            d.matched.clear();
        }
        s.a.accept(d, runs, 0).await.expect("accept");
    }
    let old = delivery("gh", None, now - 2 * 3_600_000);
    let old_run = run_for(&old, "r", None);
    s.a.accept(old, vec![old_run], 0).await.expect("accept old");
    let rejected = Rejected {
        id: super::new_id(),
        source: "gh".into(),
        received_at: now,
        method: "POST".into(),
        path: "/hooks/gh".into(),
        remote_addr: "127.0.0.1".into(),
        status: 401,
        reason: "bad signature".into(),
        kept: None,
    };
    s.a.record_rejected(rejected).await.expect("reject");

    let before = s.b.overview(now).await.expect("overview");
    assert_eq!(before.queue_depth, 3);
    assert!(before.rules.is_empty());
    let mut per_minute: Vec<_> = before
        .per_minute
        .iter()
        .map(|m| (m.minute_ms, m.source.as_str(), m.outcome, m.count))
        .collect();
    per_minute.sort_by_key(|m| m.2);
    assert_eq!(
        per_minute,
        vec![
            (minute, "gh", Outcome::Matched, 2),
            (minute, "gh", Outcome::Unmatched, 1),
            (minute, "gh", Outcome::Rejected, 1)
        ]
    );

    // The old run fails, the two recent ones succeed (leased oldest first).
    let leased = lease(s.a.as_ref(), "node-a", 8, LONG).await;
    let statuses = [
        RunStatus::Failed,
        RunStatus::Succeeded,
        RunStatus::Succeeded,
    ];
    for (run, status) in leased.runs.iter().zip(statuses) {
        let mut record = step(&run.run.id, "node-a", 1, finished(status));
        record.now_ms = run.run.created_at + 10;
        s.a.record_step(record).await.expect("finish");
    }
    let after = s.b.overview(now + 10).await.expect("overview");
    assert_eq!(after.queue_depth, 0);
    assert_eq!(after.rules.len(), 1);
    let r = &after.rules[0];
    assert_eq!(
        (r.hour.succeeded, r.hour.failed),
        (2, 0),
        "the old run is outside the hour"
    );
    assert_eq!((r.day.succeeded, r.day.failed), (2, 1));
    assert_eq!(r.hour.p95_ms, Some(10));
    let mut by_status = after.runs_by_status.clone();
    by_status.sort_by_key(|(s, _)| s.as_str());
    assert_eq!(
        by_status,
        [(RunStatus::Failed, 1), (RunStatus::Succeeded, 2)]
    );
}
