//! Decoding a source's payload contract: `schema:` (inline, as YAML) or
//! `schema_file:` (JSON, relative to the rule file), compiled into a
//! [`PayloadSchema`] so that a bad schema is a load error with its place.

use super::Decoder;
use crate::rules::node::Node;
use crate::rules::schema::PayloadSchema;

impl Decoder<'_> {
    /// The source's schema, from whichever of the two keys is given:
    /// `Some(None)` without one, `None` after reporting an error.
    pub(super) fn payload_schema(
        &mut self,
        inline: Option<&Node>,
        file: Option<&Node>,
    ) -> Option<Option<PayloadSchema>> {
        match (inline, file) {
            (None, None) => Some(None),
            (Some(n), None) => self.compile_schema(n, &n.to_json(), None).map(Some),
            (None, Some(n)) => self.schema_file(n).map(Some),
            (Some(_), Some(n)) => {
                self.error(n, "a source takes `schema` or `schema_file`, not both");
                None
            }
        }
    }

    /// `schema_file:` — a JSON file, relative to the rule file. Not YAML: a
    /// `.yaml` file in the rules directory is read as rules.
    fn schema_file(&mut self, node: &Node) -> Option<PayloadSchema> {
        let rel = self.string(node)?;
        let path = self.dir.join(&rel);
        if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        ) {
            self.error(
                node,
                format!("schema_file {rel} must be a JSON file (a .yaml file among the rules is read as rules); write the schema inline with `schema:`, or as JSON"),
            );
            return None;
        }
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) => {
                self.error(
                    node,
                    format!("cannot read schema_file {}: {e}", path.display()),
                );
                return None;
            }
        };
        let value = match serde_json::from_str::<serde_json::Value>(&text) {
            Ok(v) => v,
            Err(e) => {
                self.error(
                    node,
                    format!("schema_file {} is not valid JSON: {e}", path.display()),
                );
                return None;
            }
        };
        self.compile_schema(node, &value, Some(&path))
    }

    fn compile_schema(
        &mut self,
        node: &Node,
        schema: &serde_json::Value,
        file: Option<&std::path::Path>,
    ) -> Option<PayloadSchema> {
        match PayloadSchema::compile(schema) {
            Ok(compiled) => Some(compiled),
            Err(e) => {
                let whose = file
                    .map(|p| format!(" in {}", p.display()))
                    .unwrap_or_default();
                self.error(node, format!("invalid JSON Schema{whose}: {e}"));
                None
            }
        }
    }
}
