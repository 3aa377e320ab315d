//! Compiling a rule from the definition stored with a queued run.
//!
//! The run log keeps each run's rule as written (JSON, `${NAME}` not yet
//! substituted, so no secret is stored). A worker runs that definition: the
//! loaded rule of the same name when it is unchanged, else this compiles the
//! stored one on its own.

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde_json::Value;

use super::decode::{Decoder, Diagnostic, EnvLookup, Severity};
use super::node::{Kind, Node};
use super::{Rule, Secrets};
use crate::template::Templates;

/// A rule compiled outside any rule set, with its own templates.
#[derive(Debug)]
pub struct StandaloneRule {
    pub rule: Rule,
    pub templates: Templates,
    pub secrets: Secrets,
}

/// Compiles a stored definition with `${NAME}` from the process environment.
pub fn compile(definition: &Value) -> Result<StandaloneRule, Vec<Diagnostic>> {
    compile_with_env(definition, &|name| std::env::var(name).ok())
}

pub fn compile_with_env(
    definition: &Value,
    env: EnvLookup<'_>,
) -> Result<StandaloneRule, Vec<Diagnostic>> {
    let node = to_node(definition);
    let mut diagnostics = Vec::new();
    let mut secrets = BTreeSet::new();
    let mut templates = Templates::new();
    let rule = {
        let mut dec = Decoder::new(
            "<queued rule definition>".into(),
            &mut diagnostics,
            env,
            &mut secrets,
            &mut templates,
            PathBuf::new(),
        );
        dec.rule(&node)
    };
    diagnostics.retain(|d| d.severity == Severity::Error);
    match rule {
        Some(rule) if diagnostics.is_empty() => Ok(StandaloneRule {
            rule,
            templates,
            secrets: Secrets::new(secrets),
        }),
        _ => Err(diagnostics),
    }
}

/// JSON back to a node tree; locations are unknown (line 0).
fn to_node(value: &Value) -> Node {
    let kind = match value {
        Value::Null => Kind::Null,
        Value::Bool(b) => Kind::Bool(*b),
        Value::Number(n) => Kind::Number(n.clone()),
        Value::String(s) => Kind::String(s.clone()),
        Value::Array(items) => Kind::Seq(items.iter().map(to_node).collect()),
        Value::Object(map) => Kind::Map(
            map.iter()
                .map(|(k, v)| (to_node(&Value::String(k.clone())), to_node(v)))
                .collect(),
        ),
    };
    Node {
        line: 0,
        column: 0,
        kind,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_definition_compiles_to_the_same_rule() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("r.yaml"),
            "sources:\n  s:\n    verify: { token: { header: X-T, value: abc } }\nrules:\n  - name: r\n    source: s\n    when: { path: $.a, equals: 1 }\n    actions:\n      - id: one\n        http: { url: 'http://127.0.0.1:9/${HOST:-x}/{{payload.a}}' }\n",
        )
        .unwrap();
        let set = crate::rules::load_with_env(dir.path(), &|_| None).unwrap();
        let rule = set.rule("r").unwrap();
        // The definition keeps `${HOST:-x}` unexpanded: no secret is stored.
        assert!(rule.definition.to_string().contains("${HOST:-x}"));
        let standalone = compile_with_env(&rule.definition, &|_| None).unwrap();
        assert_eq!(standalone.rule.name, "r");
        assert_eq!(standalone.rule.steps.len(), 1);
        assert_eq!(standalone.rule.definition, rule.definition);
    }

    #[test]
    fn a_corrupt_definition_is_an_error_not_a_panic() {
        let errors = compile_with_env(&serde_json::json!({"name": "r"}), &|_| None).unwrap_err();
        assert!(!errors.is_empty());
        assert!(compile_with_env(&serde_json::json!([1, 2]), &|_| None).is_err());
    }
}
