//! Encoding shared by the backends: values for JSON text columns, and a
//! delivery's runs and a step record checked and encoded before either
//! backend writes them.

use super::{NewRun, Result, StepRecord, StoreError};

/// Encode a value for a JSON TEXT column.
pub(crate) fn to_json<T: serde::Serialize + ?Sized>(
    op: &'static str,
    what: &str,
    value: &T,
) -> Result<String> {
    serde_json::to_string(value).map_err(|e| StoreError::Invalid {
        op,
        message: format!("{what} is not encodable as JSON: {e}"),
    })
}

/// The runs, once every one is checked to belong to `delivery_id` (each
/// carries its definition already encoded, `RunDefinition`).
pub(crate) fn check_for_delivery(
    op: &'static str,
    delivery_id: &str,
    runs: Vec<NewRun>,
) -> Result<Vec<NewRun>> {
    if let Some(run) = runs.iter().find(|r| r.delivery_id != delivery_id) {
        return Err(StoreError::Invalid {
            op,
            message: format!(
                "run {} belongs to delivery {}, not {delivery_id}",
                run.id, run.delivery_id
            ),
        });
    }
    Ok(runs)
}

/// A step record checked (its attempt belongs to its run) with its JSON
/// columns encoded, outside any transaction.
pub(crate) struct EncodedStep {
    pub(crate) record: StepRecord,
    /// The attempt's request, for `attempts.request`.
    pub(crate) request: Option<String>,
    /// The run's `steps.<id>` outputs after the step; `None`: unchanged.
    pub(crate) outputs: Option<String>,
}

impl EncodedStep {
    pub(crate) fn encode(op: &'static str, record: StepRecord) -> Result<EncodedStep> {
        if let Some(a) = &record.attempt
            && a.run_id != record.run_id
        {
            return Err(StoreError::Invalid {
                op,
                message: format!(
                    "attempt of run {} recorded for run {}",
                    a.run_id, record.run_id
                ),
            });
        }
        let request = match &record.attempt {
            Some(a) => Some(to_json(op, "attempt request", &a.request)?),
            None => None,
        };
        let outputs = match &record.outputs {
            Some(o) => Some(to_json(op, "step outputs", o)?),
            None => None,
        };
        Ok(EncodedStep {
            record,
            request,
            outputs,
        })
    }

    pub(crate) fn run_id(&self) -> &str {
        &self.record.run_id
    }
}
