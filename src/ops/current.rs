//! Which definition a retried run resumes with (SPEC §5): the one it was
//! queued with (`retry`), or the rule as loaded now (`retry --current`: the
//! fixed URL, the corrected template). This works out the latter for one
//! run, or why it cannot be had.

use std::sync::Arc;

use crate::delivery::Delivery;
use crate::rules::RuleSet;
use crate::store::{Redefinition, RunRecord, Store};

use super::OpsError;

/// The definition a retried run resumes with.
#[derive(Debug, Clone, Copy)]
pub enum Resume<'a> {
    /// The definition it was queued with.
    Queued,
    /// The rule of the same name in this set (the running one).
    Current(&'a RuleSet),
}

impl Resume<'_> {
    pub fn is_current(&self) -> bool {
        matches!(self, Resume::Current(_))
    }
}

/// The current definition of `run`'s rule, or (`Err`) why the run cannot
/// resume with it: the rule is gone, or has no step where the run stopped.
pub(super) async fn redefinition(
    store: &Arc<dyn Store>,
    rules: &RuleSet,
    run: &RunRecord,
) -> Result<Result<Redefinition, String>, OpsError> {
    let Some(rule) = rules.rule(&run.rule) else {
        return Ok(Err(format!("rule `{}` is no longer loaded", run.rule)));
    };
    let steps = rule.steps.len();
    if usize::try_from(run.next_step).is_ok_and(|at| at >= steps) {
        return Ok(Err(format!(
            "rule `{}` now has {steps} step(s); the run stopped at step {}",
            run.rule,
            run.next_step + 1
        )));
    }
    let concurrency_key = match rule.concurrency_key {
        None => None,
        Some(_) => {
            // The key is rendered from the delivery, as when it was queued.
            let Some(record) = store.get_delivery(&run.delivery_id).await? else {
                return Ok(Err(format!(
                    "its delivery {} is no longer in the run log",
                    run.delivery_id
                )));
            };
            let delivery = Delivery::from_record(&record);
            crate::engine::concurrency_key(rules, rule, &delivery, &run.id)
        }
    };
    Ok(Ok(Redefinition {
        definition: rule.definition.clone(),
        concurrency: rule.concurrency,
        concurrency_key,
    }))
}
