//! A dry run: match a delivery against a rule set and render the steps of
//! every matching rule, executing nothing. `explain`, `test` and `diff`
//! are built on it.

use serde::Serialize;
use serde_json::{Value, json};

use crate::actions::render_step;
use crate::delivery::Delivery;
use crate::rules::model::SimulatedFailure;
use crate::rules::schema::SchemaMismatch;
use crate::rules::{RuleSet, Step, Trace};
use crate::template::TemplateContext;

/// What the rules would do with a delivery.
#[derive(Debug, Clone, Serialize)]
pub struct DryRun {
    /// Set when the source's schema refuses the payload (the server would
    /// answer 422): then no rule sees it, and trace and runs are empty.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refused: Option<SchemaMismatch>,
    pub trace: Trace,
    /// The matching rules, with their steps rendered.
    pub runs: Vec<RunPreview>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunPreview {
    pub rule: String,
    pub steps: Vec<StepPreview>,
    /// The rule's `on_failure` steps, rendered only for a simulated
    /// failure (`hookflow test`'s `failure:`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub on_failure: Vec<StepPreview>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StepPreview {
    /// The step's id, or its 1-based position.
    pub step: String,
    pub kind: &'static str,
    /// The step's `if:`, decided when the run reaches it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
    /// The rendered step (its `view`), secrets shown as `***`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rendered: Option<Value>,
    /// Why it could not be rendered (e.g. it uses an earlier step's output).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Matches `delivery` and renders the steps of every matching rule.
pub fn dry_run(set: &RuleSet, delivery: &Delivery) -> DryRun {
    dry_run_failing(set, delivery, None)
}

/// [`dry_run`], and with `failure` also each matching rule's `on_failure`
/// steps, as if one of its runs had failed so.
pub fn dry_run_failing(
    set: &RuleSet,
    delivery: &Delivery,
    failure: Option<&SimulatedFailure>,
) -> DryRun {
    let secrets = set.secrets();
    if let Some(Err(mut mismatch)) = set
        .source(&delivery.source)
        .map(|s| s.check_schema(&delivery.payload))
    {
        mismatch.reason = secrets.redact(&mismatch.reason);
        return DryRun {
            refused: Some(mismatch),
            trace: Trace {
                event: secrets.redact(&delivery.event),
                rules: Vec::new(),
                excluded: Vec::new(),
            },
            runs: Vec::new(),
        };
    }
    let trace = set.expand(
        &delivery.source,
        &set.evaluate(&delivery.source, &delivery.match_input()),
    );
    let runs = trace
        .matched()
        .filter_map(|name| set.rule(name))
        .map(|rule| {
            let ctx =
                TemplateContext::new(delivery.template_value(&rule.name, "dry-run", json!({})));
            let steps = rule
                .steps
                .iter()
                .map(|step| preview(set, step, &ctx))
                .collect();
            let on_failure = match failure {
                Some(failure) => {
                    let mut value = delivery.template_value(&rule.name, "dry-run", json!({}));
                    if let Value::Object(map) = &mut value {
                        map.insert(
                            "failure".into(),
                            json!({
                                "run": "dry-run",
                                "step": failure.step,
                                "error": failure.error,
                                "attempts": failure.attempts,
                                "count": failure.count,
                            }),
                        );
                    }
                    let ctx = TemplateContext::new(value);
                    rule.on_failure
                        .iter()
                        .map(|step| preview(set, step, &ctx))
                        .collect()
                }
                None => Vec::new(),
            };
            RunPreview {
                rule: rule.name.clone(),
                steps,
                on_failure,
            }
        })
        .collect();
    DryRun {
        refused: None,
        trace,
        runs,
    }
}

/// One step rendered over `ctx`, or why it could not be.
fn preview(set: &RuleSet, step: &Step, ctx: &TemplateContext) -> StepPreview {
    let secrets = set.secrets();
    let (rendered, error) = match render_step(step, set.templates(), Some(ctx)) {
        Ok(r) => (Some(secrets.redact_value(&r.view())), None),
        Err(e) => (None, Some(secrets.redact(&e.to_string()))),
    };
    StepPreview {
        step: step.label(),
        kind: step.action.kind(),
        condition: step
            .condition
            .as_ref()
            .map(|c| secrets.redact(&c.describe())),
        rendered,
        error,
    }
}
