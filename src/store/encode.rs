//! Encoding shared by the backends: values for JSON text columns, and a
//! delivery's runs checked and encoded before either backend writes them.

use super::{NewRun, Result, StoreError};

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

/// Each run with its definition encoded for the `definition` column, after
/// checking that every run belongs to `delivery_id`.
pub(crate) fn encode_for_delivery(
    op: &'static str,
    delivery_id: &str,
    runs: Vec<NewRun>,
) -> Result<Vec<(NewRun, String)>> {
    if let Some(run) = runs.iter().find(|r| r.delivery_id != delivery_id) {
        return Err(StoreError::Invalid {
            op,
            message: format!(
                "run {} belongs to delivery {}, not {delivery_id}",
                run.id, run.delivery_id
            ),
        });
    }
    runs.into_iter()
        .map(|run| {
            let definition = to_json(op, "run definition", &run.definition)?;
            Ok((run, definition))
        })
        .collect()
}
