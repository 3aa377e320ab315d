//! A YAML document as a tree of located nodes.
//!
//! Rule files are parsed by serde-saphyr into this tree first, so every later
//! check can point at `file:line:column`, and the decoder can report every
//! problem in a file at once (serde's derive stops at the first one).

use std::fmt;
use std::sync::Arc;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

/// A place in a rule file. Lines and columns are 1-based.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct Loc {
    pub file: Arc<str>,
    pub line: u32,
    pub column: u32,
}

impl Loc {
    pub fn new(file: Arc<str>, line: u32, column: u32) -> Self {
        Loc { file, line, column }
    }

    /// A location with no line, for problems with a whole file.
    pub fn file(file: Arc<str>) -> Self {
        Loc {
            file,
            line: 0,
            column: 0,
        }
    }
}

impl fmt::Display for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}", self.file)
        } else {
            write!(f, "{}:{}:{}", self.file, self.line, self.column)
        }
    }
}

/// A YAML value with the line and column where it starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub line: u32,
    pub column: u32,
    pub kind: Kind,
}

/// What a node holds. Plain scalars keep their YAML type (`1` is a number,
/// `"1"` a string) because conditions compare with types.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(String),
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

impl Kind {
    /// How a user would name this kind of value in an error message.
    pub fn describe(&self) -> &'static str {
        match self {
            Kind::Null => "null",
            Kind::Bool(_) => "a boolean",
            Kind::Number(_) => "a number",
            Kind::String(_) => "a string",
            Kind::Seq(_) => "a list",
            Kind::Map(_) => "a mapping",
        }
    }
}

impl Node {
    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            Kind::String(s) => Some(s),
            _ => None,
        }
    }

    /// The node as plain JSON (locations dropped), for payloads and literals.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value;
        match &self.kind {
            Kind::Null => Value::Null,
            Kind::Bool(b) => Value::Bool(*b),
            Kind::Number(n) => Value::Number(n.clone()),
            Kind::String(s) => Value::String(s.clone()),
            Kind::Seq(items) => Value::Array(items.iter().map(Node::to_json).collect()),
            Kind::Map(entries) => Value::Object(
                entries
                    .iter()
                    .map(|(k, v)| (key_text(k), v.to_json()))
                    .collect(),
            ),
        }
    }
}

/// A mapping key as text (YAML allows `1:` or `true:` as keys).
pub fn key_text(key: &Node) -> String {
    match &key.kind {
        Kind::String(s) => s.clone(),
        Kind::Number(n) => n.to_string(),
        Kind::Bool(b) => b.to_string(),
        Kind::Null => "null".to_string(),
        Kind::Seq(_) | Kind::Map(_) => "<complex key>".to_string(),
    }
}

/// Parse one YAML document into a located tree. An empty file is `Null`.
pub fn parse(text: &str) -> Result<Node, serde_saphyr::Error> {
    let options = serde_saphyr::options! {
        strict_booleans: true,
        duplicate_keys: serde_saphyr::DuplicateKeyPolicy::Error,
    };
    if text.trim().is_empty() {
        return Ok(Node {
            line: 1,
            column: 1,
            kind: Kind::Null,
        });
    }
    serde_saphyr::from_str_with_options::<Node>(text, options)
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let spanned = Spanned::<KindSeed>::deserialize(deserializer)?;
        Ok(Node {
            line: u32::try_from(spanned.referenced.line()).unwrap_or(u32::MAX),
            column: u32::try_from(spanned.referenced.column()).unwrap_or(u32::MAX),
            kind: spanned.value.0,
        })
    }
}

/// The unlocated part of a node; children are located `Node`s again.
struct KindSeed(Kind);

impl<'de> Deserialize<'de> for KindSeed {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(KindVisitor).map(KindSeed)
    }
}

struct KindVisitor;

impl<'de> Visitor<'de> for KindVisitor {
    type Value = Kind;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Kind, E> {
        Ok(Kind::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Kind, E> {
        Ok(Kind::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Kind, D::Error> {
        d.deserialize_any(KindVisitor)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Kind, E> {
        Ok(Kind::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Kind, E> {
        Ok(Kind::Number(v.into()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Kind, E> {
        Ok(Kind::Number(v.into()))
    }

    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Kind, E> {
        // Out-of-range integers are kept as text rather than rounded silently.
        match i64::try_from(v) {
            Ok(v) => Ok(Kind::Number(v.into())),
            Err(_) => Ok(Kind::String(v.to_string())),
        }
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Kind, E> {
        match u64::try_from(v) {
            Ok(v) => Ok(Kind::Number(v.into())),
            Err(_) => Ok(Kind::String(v.to_string())),
        }
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Kind, E> {
        match serde_json::Number::from_f64(v) {
            Some(n) => Ok(Kind::Number(n)),
            None => Err(E::custom("non-finite numbers (.nan, .inf) are not allowed")),
        }
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Kind, E> {
        Ok(Kind::String(v.to_string()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Kind, E> {
        Ok(Kind::String(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Kind, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Node>()? {
            items.push(item);
        }
        Ok(Kind::Seq(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Kind, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Node>()? {
            let value = map.next_value::<Node>()?;
            entries.push((key, value));
        }
        Ok(Kind::Map(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_carry_line_and_column() {
        let node = parse("a: 1\nb:\n  - x\n  - \"2\"\n").unwrap();
        let Kind::Map(entries) = &node.kind else {
            panic!("not a map: {node:?}")
        };
        assert_eq!((entries[0].0.line, entries[0].0.column), (1, 1));
        assert_eq!(entries[0].1.kind, Kind::Number(1.into()));
        let Kind::Seq(items) = &entries[1].1.kind else {
            panic!("not a seq")
        };
        assert_eq!((items[1].line, items[1].column), (4, 5));
        assert_eq!(items[1].kind, Kind::String("2".into()));
    }

    #[test]
    fn yaml_1_1_booleans_stay_strings() {
        let node = parse("a: no\nb: on\nc: true\n").unwrap();
        let json = node.to_json();
        assert_eq!(json, serde_json::json!({"a": "no", "b": "on", "c": true}));
    }

    #[test]
    fn duplicate_keys_are_rejected_with_a_location() {
        let err = parse("a: 1\na: 2\n").unwrap_err();
        let loc = err.location().expect("a location");
        assert_eq!(loc.line(), 2);
    }
}
