//! Run-log operations an operator starts, shared by the CLI and the API:
//! replaying a stored delivery against the current rules, retrying a
//! failed run from its failed step (with the definition it was queued with,
//! or the rule as loaded now: `current.rs`), and cancelling a run
//! (`cancel.rs`).
//!
//! Both only write to the store. Waking the workers is the caller's job:
//! the server calls its `on_queued`; the CLI writes to the database and a
//! running server's poll loop picks the runs up.

use std::sync::Arc;

use chrono::Utc;
use serde::Serialize;

use crate::delivery::Delivery;
use crate::rules::RuleSet;
use crate::store::{
    ActionKind, Actor, DeliveryStatus, NewRun, OperatorAction, RetryOutcome, RunRecord, RunStatus,
    Store, StoreError,
};

mod bulk;
mod cancel;
mod current;

pub use bulk::{
    BulkReplay, BulkRetry, ReplayFilter, RetryFilter, Skipped, count_retryable, replay_matching,
    retry_matching,
};
pub use cancel::{CancelState, Cancelled, cancel};
pub use current::Resume;

/// Why an operation was refused or failed. The API maps `NotFound` to 404
/// and `NotFailed` / `NotCancellable` / `NotReplayable` / `NoCurrentRule`
/// to 409.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    #[error("there is no {what} with id {id}")]
    NotFound { what: &'static str, id: String },

    #[error("run {id} is {}; only a failed run can be retried", status.as_str())]
    NotFailed { id: String, status: RunStatus },

    #[error("run {id} has {}; only a queued or running run can be cancelled", status.as_str())]
    NotCancellable { id: String, status: RunStatus },

    #[error("run {id} cannot be retried with the current rules: {reason}")]
    NoCurrentRule { id: String, reason: String },

    #[error("delivery {id} cannot be replayed: {reason}")]
    NotReplayable { id: String, reason: String },

    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What [`replay`] did (or, dry, would do).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Replay {
    pub delivery: String,
    /// The rules the delivery matches now, in rule order.
    pub matched: Vec<String>,
    /// The ids of the runs queued, one per matched rule; empty when dry.
    pub runs: Vec<String>,
    pub dry_run: bool,
}

/// Matches stored delivery `delivery_id` against `rules` (the current
/// ones, not those it arrived under) and, unless `dry_run`, queues one new
/// run per matching rule with the rule's definition as it is now.
pub async fn replay(
    store: &Arc<dyn Store>,
    rules: &RuleSet,
    delivery_id: &str,
    dry_run: bool,
    actor: &Actor,
) -> Result<Replay, OpsError> {
    let record = store
        .get_delivery(delivery_id)
        .await?
        .ok_or_else(|| OpsError::NotFound {
            what: "delivery",
            id: delivery_id.to_owned(),
        })?;
    // Only a 422 (payload against the schema) keeps its request; the other
    // refusals were never verified, so nothing of theirs is kept.
    if record.status == DeliveryStatus::Rejected && record.body.is_none() {
        return Err(OpsError::NotReplayable {
            id: delivery_id.to_owned(),
            reason: "it was rejected, so its body was not kept".to_owned(),
        });
    }
    let rejected = record.status == DeliveryStatus::Rejected;
    let delivery = Delivery::from_record(&record);
    if rejected
        && let Some(source) = rules.source(&delivery.source)
        && let Err(mismatch) = source.check_schema(&delivery.payload)
    {
        return Err(OpsError::NotReplayable {
            id: delivery_id.to_owned(),
            reason: format!(
                "{} (still, under the current schema of source `{}`)",
                rules.secrets().redact(&mismatch.to_string()),
                delivery.source
            ),
        });
    }
    let trace = rules.evaluate(&delivery.source, &delivery.match_input());
    let matched: Vec<String> = trace.matched().map(str::to_owned).collect();
    let mut replay = Replay {
        delivery: delivery.id.clone(),
        matched,
        runs: Vec::new(),
        dry_run,
    };
    if dry_run {
        return Ok(replay);
    }
    let now = Utc::now().timestamp_millis();
    // Monotonic within the call, so the runs sort in rule order.
    let mut ids = ulid::Generator::new();
    let runs: Vec<NewRun> = replay
        .matched
        .iter()
        .filter_map(|name| rules.rule(name))
        .map(|rule| {
            let id = ids
                .generate()
                .unwrap_or_else(|_| ulid::Ulid::new())
                .to_string();
            NewRun {
                concurrency_key: crate::engine::concurrency_key(rules, rule, &delivery, &id),
                id,
                delivery_id: delivery.id.clone(),
                rule: rule.name.clone(),
                created_at: now,
                definition: rule.run_definition.clone(),
                concurrency: rule.concurrency,
            }
        })
        .collect();
    replay.runs = runs.iter().map(|r| r.id.clone()).collect();
    if !runs.is_empty() {
        store.queue_runs(&delivery.id, runs).await?;
    }
    let detail = serde_json::json!({ "matched": replay.matched, "runs": replay.runs });
    audit(store, ActionKind::Replay, &delivery.id, actor, detail).await;
    Ok(replay)
}

/// Re-queues failed run `run_id` from its failed step (earlier steps are
/// not run again; their outputs are kept), with the definition `resume`
/// names. Returns the run as re-queued.
pub async fn retry(
    store: &Arc<dyn Store>,
    run_id: &str,
    resume: Resume<'_>,
    actor: &Actor,
) -> Result<RunRecord, OpsError> {
    let redefine = match resume {
        Resume::Queued => None,
        Resume::Current(rules) => {
            let run = store
                .get_run(run_id)
                .await?
                .ok_or_else(|| OpsError::NotFound {
                    what: "run",
                    id: run_id.to_owned(),
                })?;
            if run.status != RunStatus::Failed {
                return Err(OpsError::NotFailed {
                    id: run_id.to_owned(),
                    status: run.status,
                });
            }
            match current::redefinition(store, rules, &run).await? {
                Ok(new) => Some(new),
                Err(reason) => {
                    return Err(OpsError::NoCurrentRule {
                        id: run_id.to_owned(),
                        reason,
                    });
                }
            }
        }
    };
    match store
        .retry_run(run_id, Utc::now().timestamp_millis(), redefine)
        .await?
    {
        RetryOutcome::Requeued(run) => {
            let detail = retry_detail(&run, resume.is_current(), false);
            audit(store, ActionKind::Retry, run_id, actor, detail).await;
            Ok(*run)
        }
        RetryOutcome::NotFound => Err(OpsError::NotFound {
            what: "run",
            id: run_id.to_owned(),
        }),
        RetryOutcome::NotFailed(status) => Err(OpsError::NotFailed {
            id: run_id.to_owned(),
            status,
        }),
    }
}

/// A retry's audit detail: where the run resumes, and how.
fn retry_detail(run: &RunRecord, current: bool, bulk: bool) -> serde_json::Value {
    let mut detail = serde_json::json!({ "step": run.next_step, "attempt": run.attempt });
    if current {
        detail["current"] = true.into();
    }
    if bulk {
        detail["bulk"] = true.into();
    }
    detail
}

/// Appends a done action to the audit trail. The action itself is
/// committed already, so a trail that cannot be written is logged loudly
/// rather than reported as the action failing.
pub(crate) async fn audit(
    store: &Arc<dyn Store>,
    action: ActionKind,
    target: &str,
    actor: &Actor,
    detail: serde_json::Value,
) {
    let entry = OperatorAction::new(action, Some(target), actor, detail);
    if let Err(e) = store.record_operator_action(entry).await {
        tracing::error!(error = %e, action = action.as_str(), target, "cannot record an operator action in the audit trail");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{NewDelivery, StepRecord};
    use serde_json::json;

    const RULES: &str = r#"
sources:
  s:
    verify: { token: { header: X-T, value: abcdef } }
rules:
  - name: big
    source: s
    when: { path: $.total, gt: 100 }
    actions:
      - http: { url: "http://127.0.0.1:9/a" }
      - http: { url: "http://127.0.0.1:9/b" }
  - name: all
    source: s
    actions:
      - http: { url: "http://127.0.0.1:9/c" }
"#;

    fn me() -> Actor {
        Actor {
            via: crate::store::Via::Api,
            client: "127.0.0.1:4711".into(),
        }
    }

    struct Fixture {
        _dir: tempfile::TempDir,
        store: Arc<dyn Store>,
        rules: RuleSet,
    }

    async fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let rules_dir = dir.path().join("rules");
        std::fs::create_dir_all(&rules_dir).unwrap();
        std::fs::write(rules_dir.join("r.yaml"), RULES).unwrap();
        let rules = crate::rules::load(&rules_dir).unwrap();
        let url = format!("sqlite://{}", dir.path().join("db").display());
        let store = crate::store::open(&url).await.unwrap();
        Fixture {
            _dir: dir,
            store,
            rules,
        }
    }

    /// Stores a delivery of `{"total": total}` with one run of `all`.
    async fn accept(f: &Fixture, id: &str, total: u32) -> String {
        let run = NewRun {
            id: format!("{id}-run"),
            delivery_id: id.into(),
            rule: "all".into(),
            created_at: 1,
            definition: f.rules.rule("all").unwrap().run_definition.clone(),
            concurrency: None,
            concurrency_key: None,
        };
        let delivery = NewDelivery {
            id: id.into(),
            source: "s".into(),
            received_at: Utc::now().timestamp_millis(),
            method: "POST".into(),
            path: "/hooks/s".into(),
            query: None,
            headers: vec![("content-type".into(), "application/json".into())],
            remote_addr: "127.0.0.1".into(),
            event: String::new(),
            dedupe_key: None,
            body: serde_json::to_vec(&json!({ "total": total })).unwrap(),
            matched: vec!["all".into()],
            trace: serde_json::value::RawValue::NULL.to_owned(),
        };
        f.store.accept(delivery, vec![run], 0).await.unwrap();
        format!("{id}-run")
    }

    #[tokio::test]
    async fn replay_queues_one_run_per_rule_matching_now_and_dry_run_none() {
        let f = fixture().await;
        accept(&f, "D1", 500).await;

        let dry = replay(&f.store, &f.rules, "D1", true, &me()).await.unwrap();
        assert_eq!(dry.matched, ["big", "all"]);
        assert!(dry.runs.is_empty());
        assert_eq!(f.store.runs_for_delivery("D1").await.unwrap().len(), 1);

        let done = replay(&f.store, &f.rules, "D1", false, &me())
            .await
            .unwrap();
        assert_eq!(done.runs.len(), 2);
        let runs = f.store.runs_for_delivery("D1").await.unwrap();
        assert_eq!(runs.len(), 3);
        let big = runs.iter().find(|r| r.id == done.runs[0]).unwrap();
        assert_eq!((big.rule.as_str(), big.status), ("big", RunStatus::Queued));
        assert_eq!(big.definition, f.rules.rule("big").unwrap().definition);

        let missing = replay(&f.store, &f.rules, "nope", false, &me()).await;
        assert!(matches!(
            missing,
            Err(OpsError::NotFound {
                what: "delivery",
                ..
            })
        ));
    }

    #[tokio::test]
    async fn a_kept_422_replays_once_the_schema_admits_it_and_other_rejections_never() {
        let f = fixture().await;
        let rejected = |id: &str, status: u16, kept: bool| crate::store::Rejected {
            id: id.into(),
            source: "s".into(),
            received_at: Utc::now().timestamp_millis(),
            method: "POST".into(),
            path: "/hooks/s".into(),
            remote_addr: "127.0.0.1".into(),
            status,
            reason: "refused".into(),
            kept: kept.then(|| crate::store::KeptRequest {
                query: None,
                headers: vec![("content-type".into(), "application/json".into())],
                event: String::new(),
                body: br#"{"total": "500"}"#.to_vec(),
            }),
        };
        f.store
            .record_rejected(rejected("R401", 401, false))
            .await
            .unwrap();
        f.store
            .record_rejected(rejected("R422", 422, true))
            .await
            .unwrap();
        assert!(matches!(
            replay(&f.store, &f.rules, "R401", false, &me()).await,
            Err(OpsError::NotReplayable { .. })
        ));

        // Under the schema that refused it, it is still refused, and says where.
        let dir = tempfile::tempdir().unwrap();
        let strict = RULES.replace(
            "    verify: { token: { header: X-T, value: abcdef } }",
            "    verify: { token: { header: X-T, value: abcdef } }\n    schema: { properties: { total: { type: integer } } }",
        );
        std::fs::write(dir.path().join("r.yaml"), strict).unwrap();
        let strict = crate::rules::load(dir.path()).unwrap();
        let still = replay(&f.store, &strict, "R422", false, &me()).await;
        match still {
            Err(OpsError::NotReplayable { reason, .. }) => {
                assert!(reason.contains("/total"), "{reason}")
            }
            other => panic!("expected a refusal, got {other:?}"),
        }

        // The schema fixed (here: gone), the kept body runs.
        let done = replay(&f.store, &f.rules, "R422", false, &me())
            .await
            .unwrap();
        assert_eq!(done.matched, ["all"]);
        let runs = f.store.runs_for_delivery("R422").await.unwrap();
        assert_eq!(runs.len(), 1);
        assert_eq!(runs[0].rule, "all");
    }

    #[tokio::test]
    async fn retry_requeues_only_a_failed_run_at_its_failed_step() {
        let f = fixture().await;
        let run = accept(&f, "D2", 1).await;

        let not_failed = retry(&f.store, &run, Resume::Queued, &me()).await;
        assert!(
            matches!(
                not_failed,
                Err(OpsError::NotFailed {
                    status: RunStatus::Queued,
                    ..
                })
            ),
            "{not_failed:?}"
        );
        assert!(matches!(
            retry(&f.store, "nope", Resume::Queued, &me()).await,
            Err(OpsError::NotFound { what: "run", .. })
        ));

        // Lease it and fail it at step 1 after attempt 3, with an output.
        let now = Utc::now().timestamp_millis();
        let leased = f
            .store
            .lease_runs(crate::store::LeaseRequest {
                node: "n".into(),
                now_ms: now,
                limit: 1,
                lease_ms: 60_000,
            })
            .await
            .unwrap();
        assert_eq!(leased.runs.len(), 1);
        f.store
            .record_step(StepRecord {
                run_id: run.clone(),
                node: "n".into(),
                now_ms: now,
                attempt: None,
                next_step: 1,
                attempts_at_next_step: 3,
                outputs: Some(json!({ "first": { "status": 200 } })),
                progress: crate::store::RunProgress::Finished {
                    status: RunStatus::Failed,
                    error: Some("boom".into()),
                },
                on_failure: None,
            })
            .await
            .unwrap();

        let requeued = retry(&f.store, &run, Resume::Queued, &me()).await.unwrap();
        assert_eq!(requeued.status, RunStatus::Queued);
        // Numbering goes on from attempt 3; the budget counts from there.
        assert_eq!(
            (requeued.next_step, requeued.attempt, requeued.attempt_base),
            (1, 3, 3)
        );
        assert_eq!(requeued.error, None);
        assert_eq!(requeued.finished_at, None);
        assert!(requeued.next_attempt_at.is_some());
        assert_eq!(requeued.outputs, json!({ "first": { "status": 200 } }));
        // Queued again, so a second retry is refused.
        assert!(matches!(
            retry(&f.store, &run, Resume::Queued, &me()).await,
            Err(OpsError::NotFailed { .. })
        ));
    }

    fn load(yaml: &str) -> (tempfile::TempDir, RuleSet) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("r.yaml"), yaml).unwrap();
        let rules = crate::rules::load(dir.path()).unwrap();
        (dir, rules)
    }

    /// Leases `run` and fails it at step `at` after `attempts` attempts.
    async fn fail(f: &Fixture, run: &str, at: u32, attempts: u32) {
        let now = Utc::now().timestamp_millis();
        f.store
            .lease_runs(crate::store::LeaseRequest {
                node: "n".into(),
                now_ms: now,
                limit: 10,
                lease_ms: 60_000,
            })
            .await
            .unwrap();
        f.store
            .record_step(StepRecord {
                run_id: run.into(),
                node: "n".into(),
                now_ms: now,
                attempt: None,
                next_step: at,
                attempts_at_next_step: attempts,
                outputs: None,
                progress: crate::store::RunProgress::Finished {
                    status: RunStatus::Failed,
                    error: Some("boom".into()),
                },
                on_failure: None,
            })
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn retry_current_swaps_in_the_loaded_rule_or_says_why_not() {
        let f = fixture().await;
        let run = accept(&f, "D3", 1).await;
        fail(&f, &run, 0, 2).await;

        // `all` is gone from the loaded set: refused, the run stays failed.
        let only_big = RULES.split("  - name: all").next().unwrap().to_owned();
        let (_d1, gone) = load(&only_big);
        let refused = retry(&f.store, &run, Resume::Current(&gone), &me()).await;
        match refused {
            Err(OpsError::NoCurrentRule { reason, .. }) => {
                assert_eq!(reason, "rule `all` is no longer loaded")
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
        let bulk = retry_matching(
            &f.store,
            &RetryFilter::default(),
            Resume::Current(&gone),
            false,
            &me(),
        )
        .await
        .unwrap();
        assert!(bulk.runs.is_empty());
        assert_eq!(bulk.skipped.len(), 1);
        assert_eq!(bulk.skipped[0].run, run);
        let stored = f.store.get_run(&run).await.unwrap().unwrap();
        assert_eq!(stored.status, RunStatus::Failed);

        // Fixed: the run resumes with the loaded definition, numbering on.
        let (_d2, fixed) = load(&RULES.replace("127.0.0.1:9/c", "127.0.0.1:9/fixed"));
        let requeued = retry(&f.store, &run, Resume::Current(&fixed), &me())
            .await
            .unwrap();
        assert_eq!(requeued.definition, fixed.rule("all").unwrap().definition);
        assert_ne!(requeued.definition, f.rules.rule("all").unwrap().definition);
        assert_eq!((requeued.attempt, requeued.attempt_base), (2, 2));
        let trail = f.store.operator_actions(Some(&run), 10).await.unwrap();
        assert_eq!(trail.len(), 1);
        assert_eq!(trail[0].detail["current"], true);

        // Failed at step 2 of a rule that now has one: nothing to resume.
        let run = accept(&f, "D4", 1).await;
        fail(&f, &run, 1, 1).await;
        let refused = retry(&f.store, &run, Resume::Current(&fixed), &me()).await;
        assert!(
            matches!(&refused, Err(OpsError::NoCurrentRule { reason, .. })
                if reason == "rule `all` now has 1 step(s); the run stopped at step 2"),
            "{refused:?}"
        );
    }
}
