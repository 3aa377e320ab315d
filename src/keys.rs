//! Documented configuration keys: a key's name, the shape of its value,
//! whether it is required, its default and one line of meaning.
//!
//! The decoders own their key lists; these descriptions sit beside them
//! (a sender's keys in its `verify/<scheme>.rs`, the rule files' in
//! `rules/reference.rs`), and `hookflow schema` and docs/REFERENCE.md are
//! generated from them, so the editor schema and the reference cannot
//! disagree with what the loader accepts.

/// The shape of a key's value, as the loader reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ty {
    /// Text; a plain number or boolean is taken as its text.
    Text,
    /// A name: lower-case letters, digits, `_`, `.` and `-`.
    Name,
    /// One text or a list of them.
    Texts,
    /// A secret, or a list of them so that any may match (rotation).
    Secrets,
    /// A Handlebars template string.
    Template,
    /// A mapping of names to template strings (headers, query, form, env).
    TemplateMap,
    /// A mapping of names to plain strings.
    TextMap,
    /// `true` or `false`.
    Bool,
    /// A duration such as `500ms`, `30s`, `5m`, `7d`.
    Duration,
    /// A whole number no smaller than the given one.
    Count(u32),
    /// Such a whole number, or a mapping described by the named definition.
    CountOr(u32, &'static str),
    /// Bytes: a number, or text such as `512KiB`, `1MiB`.
    Size,
    /// One of these words.
    Choice(&'static [&'static str]),
    /// Any YAML value (JSON bodies, Slack blocks, expected values).
    Any,
    /// A mapping of any shape (a JSON Schema, expected renders).
    AnyMap,
    /// A condition (or a list of them, all of which must hold).
    Condition,
    /// A mapping described by the named definition.
    Object(&'static str),
    /// A list of mappings described by the named definition.
    List(&'static str),
    /// A mapping of names to mappings described by the named definition.
    Named(&'static str),
    /// The settings of the named verifier (`verify: { github: … }`).
    Verifier(&'static str),
    /// HTTP statuses: `201`, `200-299`, `2xx`, or a list of them.
    Statuses,
    /// A request rate: `50/s`, `600/m`, `10/30s`.
    Rate,
}

/// One documented key of a mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    pub name: &'static str,
    pub ty: Ty,
    pub required: bool,
    /// The value used when the key is absent, as a user would write it.
    pub default: Option<&'static str>,
    /// One line of meaning.
    pub about: &'static str,
}

impl Key {
    /// A key that must be given.
    pub const fn required(name: &'static str, ty: Ty, about: &'static str) -> Self {
        Key {
            name,
            ty,
            required: true,
            default: None,
            about,
        }
    }

    /// A key that may be left out, with nothing in its place.
    pub const fn optional(name: &'static str, ty: Ty, about: &'static str) -> Self {
        Key {
            name,
            ty,
            required: false,
            default: None,
            about,
        }
    }

    /// A key that may be left out, meaning `default`.
    pub const fn defaults(
        name: &'static str,
        ty: Ty,
        default: &'static str,
        about: &'static str,
    ) -> Self {
        Key {
            name,
            ty,
            required: false,
            default: Some(default),
            about,
        }
    }
}
