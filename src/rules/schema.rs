//! A source's payload contract (`schema:` / `schema_file:`): a JSON Schema,
//! draft 2020-12 unless its `$schema` names another, compiled when the rules
//! load and checked right after a body parses, before any rule sees it.
//!
//! Compiled without the `jsonschema` crate's HTTP and file retrieval: a
//! remote `$ref` is a load error, never a request made while loading rules.

use serde_json::Value;

/// A compiled payload schema.
#[derive(Debug)]
pub struct PayloadSchema {
    validator: jsonschema::Validator,
}

/// Why a payload does not satisfy its source's schema.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, thiserror::Error)]
#[error("payload does not match the schema at {}: {reason}", display_pointer(.at))]
pub struct SchemaMismatch {
    /// The JSON pointer of the failing value in the payload (`""` is the
    /// whole payload).
    pub at: String,
    /// The validator's message.
    pub reason: String,
}

/// A validator message quotes the failing value, which may be the whole
/// payload: it is cut here, so a 422 answer and its stored reason stay small.
const MAX_REASON: usize = 300;

fn display_pointer(at: &str) -> &str {
    if at.is_empty() { "/ (the payload)" } else { at }
}

impl PayloadSchema {
    /// Compiles `schema`; the error is one sentence, with the place in the
    /// schema when the validator names one.
    pub fn compile(schema: &Value) -> Result<PayloadSchema, String> {
        jsonschema::options()
            .build(schema)
            .map(|validator| PayloadSchema { validator })
            .map_err(|e| {
                let at = e.instance_path.as_str();
                let text = e.to_string();
                let message = match unresolved_ref(&text) {
                    Some(uri) => format!(
                        "`$ref` {uri} cannot be resolved: schemas are never fetched from the network or other files; copy it under `$defs` in this schema"
                    ),
                    None => cut(&text),
                };
                if at.is_empty() {
                    message
                } else {
                    format!("{message} (at {at} in the schema)")
                }
            })
    }

    /// Checks a parsed payload; a mismatch names the first failing place.
    pub fn check(&self, payload: &Value) -> Result<(), SchemaMismatch> {
        self.validator
            .validate(payload)
            .map_err(|e| SchemaMismatch {
                at: e.instance_path.as_str().to_string(),
                reason: cut(&e.to_string()),
            })
    }
}

/// The URI of a `$ref` the validator could not resolve (it has no HTTP or
/// file retrieval), from its message.
fn unresolved_ref(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("Resource '")?;
    let (uri, tail) = rest.split_once('\'')?;
    tail.contains("retrieving it failed").then_some(uri)
}

fn cut(text: &str) -> String {
    if text.len() <= MAX_REASON {
        return text.to_string();
    }
    let mut end = MAX_REASON;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> PayloadSchema {
        PayloadSchema::compile(&json!({
            "type": "object",
            "required": ["pull_request"],
            "properties": {
                "pull_request": {
                    "type": "object",
                    "properties": { "number": { "type": "integer" } }
                }
            }
        }))
        .expect("compiles")
    }

    #[test]
    fn a_mismatch_names_the_json_pointer_and_the_reason() {
        let s = schema();
        assert!(s.check(&json!({"pull_request": {"number": 7}})).is_ok());
        let e = s
            .check(&json!({"pull_request": {"number": "7"}}))
            .unwrap_err();
        assert_eq!(e.at, "/pull_request/number");
        assert!(e.reason.contains("is not of type \"integer\""), "{e:?}");
        let e = s.check(&json!({})).unwrap_err();
        assert_eq!(e.at, "");
        assert!(e.reason.contains("\"pull_request\" is a required property"));
        assert!(e.to_string().contains("at / (the payload)"), "{e}");
    }

    #[test]
    fn a_huge_failing_value_is_cut_in_the_reason() {
        let s = PayloadSchema::compile(&json!({"type": "array"})).expect("compiles");
        let big = json!({ "text": "é".repeat(10_000) });
        let e = s.check(&big).unwrap_err();
        assert!(
            e.reason.len() <= MAX_REASON + '…'.len_utf8(),
            "{}",
            e.reason.len()
        );
        assert!(e.reason.ends_with('…'));
    }

    #[test]
    fn an_invalid_schema_or_a_remote_ref_does_not_compile() {
        let e = PayloadSchema::compile(&json!({"type": "objekt"})).unwrap_err();
        assert!(e.contains("objekt"), "{e}");
        let e = PayloadSchema::compile(&json!({"$ref": "https://127.0.0.1:9/s.json"})).unwrap_err();
        assert!(
            e.starts_with("`$ref` https://127.0.0.1:9/s.json cannot be resolved"),
            "{e}"
        );
    }
}
