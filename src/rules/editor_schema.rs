//! `hookflow schema`: the JSON Schema of rule files, for editors
//! (yaml-language-server completes and checks keys while typing).
//!
//! Draft-07, because yaml-language-server supports "JSON Schema 7 and
//! below" (its 2019-09/2020-12 support was reverted). Generated from
//! [`super::reference::objects`], the decoders' own key lists: every
//! mapping closes with `additionalProperties: false`, as the loader refuses
//! unknown keys. The schema is deliberately no stricter than the loader in
//! shape (a number where text is expected is text to both); what it cannot
//! say (exactly one of `http`/`slack`/`shell`, valid JSONPaths, templates)
//! `hookflow check` does.

use serde_json::{Map, Value, json};

use super::reference::{Object, objects};
use crate::keys::{Key, Ty};

const DRAFT: &str = "http://json-schema.org/draft-07/schema#";

/// The JSON Schema of one rule file.
pub fn schema() -> Value {
    let all = objects();
    let mut definitions = Map::new();
    let mut root = Value::Null;
    for object in &all {
        let def = definition(object);
        if object.id == "file" {
            root = def;
        } else {
            definitions.insert(object.id.clone(), def);
        }
    }
    let Value::Object(mut root) = root else {
        return Value::Null;
    };
    // A rule file may be empty.
    root.insert("type".into(), json!(["object", "null"]));
    let mut out = Map::new();
    out.insert("$schema".into(), json!(DRAFT));
    out.insert("title".into(), json!("hookflow rule file"));
    out.extend(root);
    out.insert("definitions".into(), Value::Object(definitions));
    Value::Object(out)
}

fn definition(object: &Object) -> Value {
    let keys = object.documented();
    let mut properties = Map::new();
    for key in &keys {
        properties.insert(key.name.to_string(), property(key, object.id == "file"));
    }
    let required: Vec<&str> = keys.iter().filter(|k| k.required).map(|k| k.name).collect();
    let mut def = Map::new();
    def.insert(
        "type".into(),
        if object.nullable {
            json!(["object", "null"])
        } else {
            json!("object")
        },
    );
    def.insert("description".into(), json!(object.about));
    def.insert("properties".into(), Value::Object(properties));
    if !required.is_empty() {
        def.insert("required".into(), json!(required));
    }
    if object.exactly_one {
        def.insert("minProperties".into(), json!(1));
        def.insert("maxProperties".into(), json!(1));
    }
    def.insert("additionalProperties".into(), json!(false));
    if object.or_list {
        let id = &object.id;
        return json!({
            "description": object.about,
            "anyOf": [
                { "type": "array", "items": { "$ref": format!("#/definitions/{id}") } },
                Value::Object(def),
            ]
        });
    }
    Value::Object(def)
}

/// A key's schema with its description (and default, in words).
fn property(key: &Key, nullable: bool) -> Value {
    let mut schema = value_schema(key.ty);
    let about = match key.default {
        Some(default) => format!("{} (default: {default})", key.about),
        None => key.about.to_string(),
    };
    if nullable {
        schema = json!({ "anyOf": [schema, { "type": "null" }] });
    }
    if let Value::Object(map) = &mut schema {
        map.insert("description".into(), json!(about));
    }
    schema
}

/// The schema of a value of type `ty`.
pub fn value_schema(ty: Ty) -> Value {
    // The loader takes a plain number or boolean where text is expected.
    let text = || json!({ "type": ["string", "number", "boolean"] });
    let one_or_list = || json!({ "anyOf": [text(), { "type": "array", "items": text() }] });
    let reference = |id: &str| json!({ "$ref": format!("#/definitions/{id}") });
    match ty {
        Ty::Text | Ty::Template => text(),
        Ty::Name => json!({ "type": "string", "pattern": "^[a-z0-9][a-z0-9_.-]*$" }),
        Ty::Texts | Ty::Secrets => one_or_list(),
        Ty::TemplateMap | Ty::TextMap => {
            json!({ "type": "object", "additionalProperties": text() })
        }
        Ty::Bool => json!({ "type": "boolean" }),
        Ty::Duration | Ty::Rate => json!({ "type": "string" }),
        Ty::Count(min) => json!({ "type": "integer", "minimum": min }),
        Ty::CountOr(min, id) => {
            json!({ "anyOf": [{ "type": "integer", "minimum": min }, reference(id)] })
        }
        Ty::Size => json!({ "anyOf": [{ "type": "integer", "minimum": 0 }, { "type": "string" }] }),
        Ty::Choice(words) => json!({ "enum": words }),
        Ty::Any => json!({}),
        Ty::AnyMap => json!({ "type": "object" }),
        Ty::Condition => reference("condition"),
        Ty::Object(id) => reference(id),
        Ty::Verifier(name) => reference(&format!("verify.{name}")),
        Ty::List(id) => json!({ "type": "array", "items": reference(id) }),
        Ty::Named(id) => json!({
            "type": "object",
            "propertyNames": { "pattern": "^[a-z0-9][a-z0-9_.-]*$" },
            "additionalProperties": reference(id),
        }),
        Ty::Statuses => {
            let status = json!({ "type": ["integer", "string"] });
            json!({ "anyOf": [status, { "type": "array", "items": status }] })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schema_is_a_valid_draft_07_schema() {
        let schema = schema();
        assert_eq!(schema["$schema"], DRAFT);
        let meta = jsonschema::meta::validate(&schema);
        assert!(meta.is_ok(), "{meta:?}");
        assert!(jsonschema::draft7::new(&schema).is_ok());
    }

    #[test]
    fn a_description_carries_the_default() {
        let schema = schema();
        let tolerance = &schema["definitions"]["verify.stripe"]["properties"]["tolerance"];
        assert_eq!(
            tolerance["description"],
            "how old a signature's timestamp may be (default: 5m)"
        );
    }
}
