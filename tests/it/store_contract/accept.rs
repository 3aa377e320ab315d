//! Accepting deliveries: one transaction per delivery with its runs and
//! trace, dedupe inside the window (also when nodes race), rejected
//! requests, and the delivery listing.

use std::sync::Arc;

use hookflow::store::{
    AcceptOutcome, DeliveryFilter, DeliveryStatus, KeptRequest, Rejected, RunStatus, StoreError,
};
use serde_json::json;

use super::{MINUTE, Stores, T0, delivery, run_for};

pub async fn accepted_delivery_reads_back_with_its_runs(s: Stores) {
    let d = delivery("github", Some("guid-1"), T0);
    let runs = vec![
        run_for(&d, "deploy-main", None),
        run_for(&d, "notify", Some(2)),
    ];
    let outcome = s.a.accept(d.clone(), runs.clone(), MINUTE).await;
    assert_eq!(outcome.expect("accept"), AcceptOutcome::Accepted);

    // Read back through the other node.
    let got = s.b.get_delivery(&d.id).await.expect("get").expect("stored");
    assert_eq!(got.status, DeliveryStatus::Accepted);
    assert_eq!((got.source.as_str(), got.received_at), ("github", T0));
    assert_eq!(
        (got.method.as_str(), got.path.as_str()),
        ("POST", "/hooks/github")
    );
    assert_eq!(got.query.as_deref(), Some("a=1"));
    assert_eq!(got.headers, d.headers);
    assert_eq!(got.remote_addr, "192.0.2.7:5555");
    assert_eq!(got.event, "push");
    assert_eq!(got.dedupe_key.as_deref(), Some("guid-1"));
    assert_eq!(
        got.body.as_deref(),
        Some(d.body.as_slice()),
        "bytes kept exactly"
    );
    assert_eq!(got.matched, vec!["deploy-main"]);
    assert_eq!(got.trace, json!([{"rule": "deploy-main", "matched": true}]));
    assert_eq!((got.reject_status, got.reject_reason), (None, None));

    let stored = s.b.runs_for_delivery(&d.id).await.expect("runs");
    assert_eq!(stored.len(), 2);
    for (run, new) in stored.iter().zip(&runs) {
        assert_eq!(run.id, new.id);
        assert_eq!(
            (run.delivery_id.as_str(), run.rule.as_str()),
            (d.id.as_str(), new.rule.as_str())
        );
        assert_eq!(run.status, RunStatus::Queued);
        assert_eq!((run.next_step, run.attempt, run.lease_expiries), (0, 0, 0));
        assert_eq!(run.next_attempt_at, Some(T0));
        assert_eq!((run.created_at, run.updated_at), (T0, T0));
        assert_eq!((run.finished_at, run.error.as_deref()), (None, None));
        assert_eq!((&run.lease_owner, run.lease_expires_at), (&None, None));
        assert_eq!(
            hookflow::store::RunDefinition::from(&run.definition),
            new.definition
        );
        assert_eq!(run.outputs, json!({}));
        assert_eq!(run.concurrency, new.concurrency);
    }
    assert_eq!(s.a.queue_depth().await.expect("depth"), 2);
    assert!(s.a.get_delivery("nope").await.expect("get").is_none());
    assert!(
        s.a.runs_for_delivery("nope")
            .await
            .expect("runs")
            .is_empty()
    );
}

pub async fn duplicate_within_window_writes_nothing(s: Stores) {
    let first = delivery("github", Some("guid-1"), T0);
    let first_runs = vec![run_for(&first, "deploy-main", None)];
    s.a.accept(first.clone(), first_runs, MINUTE)
        .await
        .expect("first");

    let again = delivery("github", Some("guid-1"), T0 + MINUTE - 1);
    let again_runs = vec![run_for(&again, "deploy-main", None)];
    let outcome = s.b.accept(again.clone(), again_runs, MINUTE).await;
    assert_eq!(
        outcome.expect("second"),
        AcceptOutcome::Duplicate {
            first_delivery: first.id.clone()
        }
    );
    assert!(s.a.get_delivery(&again.id).await.expect("get").is_none());
    assert!(
        s.a.runs_for_delivery(&again.id)
            .await
            .expect("runs")
            .is_empty()
    );
    // Received earlier than the first (clock skew between nodes): still a
    // duplicate.
    let skewed = delivery("github", Some("guid-1"), T0 - 1000);
    assert_eq!(
        s.b.accept(skewed, vec![], MINUTE).await.expect("skewed"),
        AcceptOutcome::Duplicate {
            first_delivery: first.id.clone()
        }
    );
    assert_eq!(count_deliveries(&s).await, 1);
    assert_eq!(s.a.queue_depth().await.expect("depth"), 1);
}

pub async fn same_key_after_window_starts_a_new_window(s: Stores) {
    let first = delivery("github", Some("guid-1"), T0);
    s.a.accept(first, vec![], MINUTE).await.expect("first");
    let later = delivery("github", Some("guid-1"), T0 + MINUTE);
    let outcome =
        s.b.accept(later.clone(), vec![run_for(&later, "r", None)], MINUTE);
    assert_eq!(outcome.await.expect("later"), AcceptOutcome::Accepted);
    assert_eq!(
        s.a.runs_for_delivery(&later.id).await.expect("runs").len(),
        1
    );

    // The window now counts from the later delivery.
    let third = delivery("github", Some("guid-1"), T0 + MINUTE + 10);
    assert_eq!(
        s.a.accept(third, vec![], MINUTE).await.expect("third"),
        AcceptOutcome::Duplicate {
            first_delivery: later.id
        }
    );
    // A window of 0 disables the check; the key is still recorded.
    let unchecked = delivery("github", Some("guid-1"), T0 + MINUTE + 20);
    assert_eq!(
        s.a.accept(unchecked.clone(), vec![], 0)
            .await
            .expect("no window"),
        AcceptOutcome::Accepted
    );
    let stored =
        s.a.get_delivery(&unchecked.id)
            .await
            .expect("get")
            .expect("stored");
    assert_eq!(stored.dedupe_key.as_deref(), Some("guid-1"));
}

pub async fn same_key_on_another_source_or_without_key_is_accepted(s: Stores) {
    s.a.accept(delivery("github", Some("k"), T0), vec![], MINUTE)
        .await
        .expect("github");
    let outcome =
        s.b.accept(delivery("stripe", Some("k"), T0), vec![], MINUTE)
            .await;
    assert_eq!(outcome.expect("stripe"), AcceptOutcome::Accepted);
    for _ in 0..3 {
        let outcome =
            s.a.accept(delivery("github", None, T0), vec![], MINUTE)
                .await;
        assert_eq!(outcome.expect("keyless"), AcceptOutcome::Accepted);
    }
    assert_eq!(count_deliveries(&s).await, 5);
}

/// Two nodes receiving the same delivery id at the same moment: exactly
/// one is accepted, every other answer names it.
pub async fn racing_duplicates_store_one_delivery(s: Stores) {
    const RACERS: usize = 16;
    for round in 0..3 {
        let key = format!("race-{round}");
        let mut tasks = Vec::new();
        for i in 0..RACERS {
            let store = if i % 2 == 0 {
                Arc::clone(&s.a)
            } else {
                Arc::clone(&s.b)
            };
            let key = key.clone();
            tasks.push(tokio::spawn(async move {
                let d = delivery("github", Some(&key), T0 + i as i64);
                let runs = vec![run_for(&d, "r", None)];
                (d.id.clone(), store.accept(d, runs, MINUTE).await)
            }));
        }
        let mut accepted = Vec::new();
        let mut duplicates = Vec::new();
        for task in tasks {
            let (id, outcome) = task.await.expect("task");
            match outcome.expect("accept") {
                AcceptOutcome::Accepted => accepted.push(id),
                AcceptOutcome::Duplicate { first_delivery } => duplicates.push(first_delivery),
            }
        }
        assert_eq!(
            accepted.len(),
            1,
            "round {round}: one accepted, got {accepted:?}"
        );
        assert_eq!(duplicates.len(), RACERS - 1);
        assert!(
            duplicates.iter().all(|first| *first == accepted[0]),
            "{duplicates:?}"
        );
    }
    assert_eq!(count_deliveries(&s).await, 3);
    assert_eq!(s.a.queue_depth().await.expect("depth"), 3);
}

/// Accepts arriving together (a PostgreSQL node writes those waiting at a
/// moment at once): sources with different dedupe windows and deliveries
/// without a key each get their own answer.
pub async fn accepts_at_once_keep_their_windows(s: Stores) {
    const SECOND: i64 = 1_000;
    let github = delivery("github", Some("g"), T0);
    let stripe = delivery("stripe", Some("s"), T0);
    s.a.accept(github.clone(), vec![], MINUTE)
        .await
        .expect("github");
    s.a.accept(stripe, vec![], SECOND).await.expect("stripe");

    // (delivery, window, accepted?)
    let mut cases = vec![
        (
            delivery("github", Some("g"), T0 + 2 * SECOND),
            MINUTE,
            false,
        ),
        (delivery("stripe", Some("s"), T0 + 2 * SECOND), SECOND, true),
        (
            delivery("github", Some("new"), T0 + 2 * SECOND),
            MINUTE,
            true,
        ),
    ];
    for i in 0..3 {
        cases.push((delivery("github", None, T0 + i), MINUTE, true));
    }
    let mut tasks = Vec::new();
    for (d, window, accepted) in cases {
        let store = Arc::clone(&s.b);
        tasks.push(tokio::spawn(async move {
            let runs = vec![run_for(&d, "r", None)];
            let outcome = store.accept(d.clone(), runs, window).await;
            (d, accepted, outcome)
        }));
    }
    let mut queued = 0;
    for task in tasks {
        let (d, accepted, outcome) = task.await.expect("task");
        let outcome = outcome.expect("accept");
        let stored = s.a.get_delivery(&d.id).await.expect("get").is_some();
        if accepted {
            assert_eq!(outcome, AcceptOutcome::Accepted, "{:?}", d.dedupe_key);
            assert!(stored);
            queued += 1;
        } else {
            assert_eq!(
                outcome,
                AcceptOutcome::Duplicate {
                    first_delivery: github.id.clone()
                }
            );
            assert!(!stored, "a duplicate is not stored");
        }
    }
    assert_eq!(s.a.queue_depth().await.expect("depth"), queued);
}

/// A run id that already exists fails the accept after its delivery row
/// was written: nothing of it stays, and the store keeps working.
pub async fn a_failing_accept_writes_nothing(s: Stores) {
    let taken = delivery("github", None, T0);
    let taken_run = run_for(&taken, "r", None);
    s.a.accept(taken, vec![taken_run.clone()], MINUTE)
        .await
        .expect("first");

    let d = delivery("github", Some("k"), T0 + 1);
    let mut run = run_for(&d, "r", None);
    run.id = taken_run.id.clone();
    let err =
        s.b.accept(d.clone(), vec![run], MINUTE)
            .await
            .expect_err("conflict");
    assert!(err.to_string().starts_with("accept delivery"), "{err}");
    assert!(s.a.get_delivery(&d.id).await.expect("get").is_none());
    // Its dedupe key was not kept either.
    let retry = delivery("github", Some("k"), T0 + 2);
    assert_eq!(
        s.b.accept(retry, vec![], MINUTE).await.expect("retry"),
        AcceptOutcome::Accepted
    );

    let other = delivery("github", None, T0);
    let err =
        s.a.accept(d.clone(), vec![run_for(&other, "r", None)], MINUTE)
            .await
            .expect_err("run of another delivery");
    assert!(matches!(err, StoreError::Invalid { .. }), "{err}");
    s.a.check_writable().await.expect("still writable");
}

pub async fn rejected_delivery_is_logged_without_body(s: Stores) {
    let rejected = Rejected {
        id: super::new_id(),
        source: "github".to_owned(),
        received_at: T0,
        method: "POST".to_owned(),
        path: "/hooks/github".to_owned(),
        remote_addr: "198.51.100.1:4000".to_owned(),
        status: 401,
        reason: "signature mismatch".to_owned(),
        kept: None,
    };
    s.a.record_rejected(rejected.clone()).await.expect("record");
    let got =
        s.b.get_delivery(&rejected.id)
            .await
            .expect("get")
            .expect("stored");
    assert_eq!(got.status, DeliveryStatus::Rejected);
    assert_eq!(got.reject_status, Some(401));
    assert_eq!(got.reject_reason.as_deref(), Some("signature mismatch"));
    assert!(got.headers.is_empty());
    assert_eq!((got.body, got.dedupe_key), (None, None));
    assert_eq!(got.trace, serde_json::Value::Null);
    assert!(
        s.a.runs_for_delivery(&rejected.id)
            .await
            .expect("runs")
            .is_empty()
    );

    // A 422 keeps its verified request, without a dedupe key.
    let mut kept = rejected.clone();
    kept.id = super::new_id();
    kept.status = 422;
    kept.kept = Some(KeptRequest {
        query: Some("x=1".to_owned()),
        headers: vec![("content-type".to_owned(), "application/json".to_owned())],
        event: "push".to_owned(),
        body: b"{\"bad\":true}".to_vec(),
    });
    s.b.record_rejected(kept.clone()).await.expect("record 422");
    let got =
        s.a.get_delivery(&kept.id)
            .await
            .expect("get")
            .expect("stored");
    assert_eq!(
        (got.reject_status, got.query.as_deref()),
        (Some(422), Some("x=1"))
    );
    assert_eq!(got.headers.len(), 1);
    assert_eq!((got.event.as_str(), got.dedupe_key), ("push", None));
    assert_eq!(got.body.as_deref(), Some(&b"{\"bad\":true}"[..]));

    let filter = DeliveryFilter {
        limit: 1,
        ..DeliveryFilter::default()
    };
    let listed = s.a.list_deliveries(filter).await.expect("list");
    assert_eq!(listed.len(), 1);
    let listed =
        s.a.list_deliveries(DeliveryFilter::default())
            .await
            .expect("list");
    let listed: Vec<_> = listed.into_iter().filter(|d| d.id == rejected.id).collect();
    assert_eq!(
        (listed[0].status, listed[0].reject_status),
        (DeliveryStatus::Rejected, Some(401))
    );
}

pub async fn deliveries_list_newest_first_and_paginate(s: Stores) {
    let mut github = Vec::new();
    for i in 0..5 {
        let d = delivery("github", None, T0 + i * 1000);
        github.push(d.id.clone());
        s.a.accept(d, vec![], MINUTE).await.expect("github");
    }
    s.b.accept(delivery("stripe", None, T0 + 2500), vec![], MINUTE)
        .await
        .expect("stripe");

    let all =
        s.a.list_deliveries(DeliveryFilter::default())
            .await
            .expect("all");
    assert_eq!(all.len(), 6);
    assert!(all.windows(2).all(|w| w[0].received_at >= w[1].received_at));
    let page = |limit, before_id| DeliveryFilter {
        source: Some("github".to_owned()),
        limit,
        before_id,
        ..DeliveryFilter::default()
    };
    let ids = |page: Vec<hookflow::store::DeliverySummary>| {
        page.into_iter().map(|d| d.id).collect::<Vec<_>>()
    };
    let page1 = s.a.list_deliveries(page(2, None)).await.expect("page 1");
    assert_eq!(
        (page1[0].matched.clone(), page1[0].event.as_str()),
        (vec!["deploy-main".to_owned()], "push")
    );
    assert_eq!(ids(page1), vec![github[4].clone(), github[3].clone()]);
    let page2 =
        s.a.list_deliveries(page(2, Some(github[3].clone())))
            .await
            .expect("page 2");
    assert_eq!(ids(page2), vec![github[2].clone(), github[1].clone()]);
    let page3 =
        s.a.list_deliveries(page(2, Some(github[1].clone())))
            .await
            .expect("page 3");
    assert_eq!(ids(page3), vec![github[0].clone()]);
    let unknown =
        s.a.list_deliveries(page(2, Some("nope".to_owned())))
            .await
            .expect("unknown");
    assert!(unknown.is_empty(), "an unknown cursor yields an empty page");

    let since = DeliveryFilter {
        since_ms: Some(T0 + 2500),
        ..DeliveryFilter::default()
    };
    let recent = s.a.list_deliveries(since).await.expect("since");
    assert_eq!(recent.len(), 3, "github at +3s, +4s and stripe at +2.5s");
}

pub async fn count_deliveries(s: &Stores) -> usize {
    let filter = DeliveryFilter {
        limit: DeliveryFilter::MAX_LIMIT,
        ..DeliveryFilter::default()
    };
    s.a.list_deliveries(filter).await.expect("list").len()
}
