//! Templates: the Handlebars registry (HTML escaping off, strict), hookflow's
//! helpers, and rendering of text and of JSON structures leaf by leaf.
//!
//! A template is compiled once, when the rules load, and registered under a
//! generated name; rendering it is then a registry lookup (a few µs). For a
//! lone `{{expr}}`, `render_value` hands back the value with its JSON type: a
//! plain path is looked up directly, anything else is also registered as
//! `{{json (expr)}}` and its output parsed.
//!
//! Strict mode: a missing value fails the render with a message naming it,
//! except as the argument of `#if`/`#unless` (handlebars does not apply strict
//! mode to helper arguments, and those helpers only test truthiness), of
//! `default`, and of the comparisons (see `helpers`).

mod check;
mod helpers;

use std::collections::HashMap;
use std::sync::Arc;

use handlebars::{Handlebars, RenderErrorReason, no_escape};
use serde_json::Value;

/// Where a template's syntax error is, relative to the template text (1-based).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct TemplateError {
    pub message: String,
    pub line: Option<usize>,
    pub column: Option<usize>,
}

/// A failure while rendering (a missing value in strict mode, a helper error).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct RenderError(pub String);

/// A compiled template string.
#[derive(Debug, Clone)]
pub struct Template {
    /// Shared: rules hold many templates and are cloned into runs; one
    /// pointer keeps the actions that embed templates small and clones cheap.
    inner: Arc<Compiled>,
}

#[derive(Debug)]
struct Compiled {
    source: String,
    kind: Kind,
}

#[derive(Debug, Clone)]
enum Kind {
    /// No `{{` at all: rendering is a copy of the source.
    Literal,
    Compiled {
        /// The registry name of the template itself.
        name: String,
        /// For a lone `{{expr}}`: how to get its value with its JSON type.
        value: Option<ValueForm>,
    },
}

/// The value form of a lone `{{expr}}`.
#[derive(Debug, Clone)]
enum ValueForm {
    /// A plain path, walked in the data: `["payload", "commits"]`, and the
    /// path as written.
    Path(Vec<String>, String),
    /// The registry name of `{{json expr}}`.
    Registered(String),
}

impl Template {
    fn new(source: &str, kind: Kind) -> Self {
        Template {
            inner: Arc::new(Compiled {
                source: source.to_string(),
                kind,
            }),
        }
    }

    pub fn source(&self) -> &str {
        &self.inner.source
    }

    /// The text of a template with no `{{`: what every rendering of it
    /// gives, whatever the context.
    pub fn literal(&self) -> Option<&str> {
        match self.inner.kind {
            Kind::Literal => Some(&self.inner.source),
            Kind::Compiled { .. } => None,
        }
    }
}

/// A JSON structure whose string leaves are templates.
#[derive(Debug, Clone)]
pub enum JsonTemplate {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(Template),
    Array(Vec<JsonTemplate>),
    Object(Vec<(String, JsonTemplate)>),
}

impl JsonTemplate {
    /// The structure with every template leaf turned into a value by
    /// `leaf`; the first error stops it.
    fn map_leaves<E>(
        &self,
        leaf: &mut impl FnMut(&Template) -> Result<Value, E>,
    ) -> Result<Value, E> {
        Ok(match self {
            JsonTemplate::Null => Value::Null,
            JsonTemplate::Bool(b) => Value::Bool(*b),
            JsonTemplate::Number(n) => Value::Number(n.clone()),
            JsonTemplate::String(t) => leaf(t)?,
            JsonTemplate::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|item| item.map_leaves(leaf))
                    .collect::<Result<_, _>>()?,
            ),
            JsonTemplate::Object(fields) => Value::Object(
                fields
                    .iter()
                    .map(|(k, v)| Ok((k.clone(), v.map_leaves(leaf)?)))
                    .collect::<Result<_, E>>()?,
            ),
        })
    }

    /// The structure as a value when none of its strings is a template:
    /// what every rendering of it gives, whatever the context.
    pub fn literal(&self) -> Option<Value> {
        self.map_leaves(&mut |t| t.literal().map(|s| Value::String(s.to_owned())).ok_or(()))
            .ok()
    }
}

/// The data a template sees, converted once.
#[derive(Debug, Clone)]
pub struct TemplateContext {
    /// Handlebars renders from a `Context`; building it once here spares
    /// re-serializing the payload for every template of every step.
    context: handlebars::Context,
}

impl TemplateContext {
    pub fn new(value: Value) -> Self {
        TemplateContext {
            context: handlebars::Context::from(value),
        }
    }

    pub fn value(&self) -> &Value {
        self.context.data()
    }

    /// Replaces one top-level value (a run's `steps`, between its steps).
    pub fn set(&mut self, key: &str, value: Value) {
        if let Value::Object(map) = self.context.data_mut() {
            map.insert(key.to_owned(), value);
        }
    }
}

/// The registry of compiled templates and helpers.
#[derive(Debug)]
pub struct Templates {
    registry: Handlebars<'static>,
    /// Suffix of the next generated template name.
    next_id: usize,
    /// The same text in many rules (`{{payload.repository.full_name}}`) is
    /// registered once.
    compiled: HashMap<String, Template>,
}

impl Default for Templates {
    fn default() -> Self {
        Self::new()
    }
}

impl Templates {
    pub fn new() -> Self {
        let mut registry = Handlebars::new();
        registry.register_escape_fn(no_escape);
        registry.set_strict_mode(true);
        helpers::register(&mut registry);
        Templates {
            registry,
            next_id: 0,
            compiled: HashMap::new(),
        }
    }

    pub fn compile(&mut self, source: &str) -> Result<Template, TemplateError> {
        if !source.contains("{{") {
            return Ok(Template::new(source, Kind::Literal));
        }
        if let Some(t) = self.compiled.get(source) {
            return Ok(t.clone());
        }
        let mut parsed =
            handlebars::Template::compile(source).map_err(|e| check::syntax_error(source, &e))?;
        check::check(&parsed)?;

        let id = self.next_id;
        self.next_id += 1;
        let value = check::value_form(source, &parsed).and_then(|form| match form {
            check::ValueForm::Path(segments, raw) => Some(ValueForm::Path(segments, raw)),
            check::ValueForm::Json(json_source) => {
                let mut json = handlebars::Template::compile(&json_source).ok()?;
                let name = format!("t{id}.value");
                json.name = Some(name.clone());
                self.registry.register_template(&name, json);
                Some(ValueForm::Registered(name))
            }
        });
        let name = format!("t{id}");
        parsed.name = Some(name.clone());
        self.registry.register_template(&name, parsed);

        let template = Template::new(source, Kind::Compiled { name, value });
        self.compiled.insert(source.to_string(), template.clone());
        Ok(template)
    }

    /// Compiles every string leaf of a JSON structure. An error names the
    /// leaf (`in items[2].text: …`); its line and column are within that leaf.
    pub fn compile_json(&mut self, value: &Value) -> Result<JsonTemplate, TemplateError> {
        self.compile_json_at(value, &mut String::new())
    }

    fn compile_json_at(
        &mut self,
        value: &Value,
        path: &mut String,
    ) -> Result<JsonTemplate, TemplateError> {
        Ok(match value {
            Value::Null => JsonTemplate::Null,
            Value::Bool(b) => JsonTemplate::Bool(*b),
            Value::Number(n) => JsonTemplate::Number(n.clone()),
            Value::String(s) => JsonTemplate::String(self.compile(s).map_err(|mut e| {
                if !path.is_empty() {
                    e.message = format!("in {path}: {}", e.message);
                }
                e
            })?),
            Value::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    let len = path.len();
                    path.push_str(&format!("[{i}]"));
                    out.push(self.compile_json_at(item, path)?);
                    path.truncate(len);
                }
                JsonTemplate::Array(out)
            }
            Value::Object(map) => {
                let mut out = Vec::with_capacity(map.len());
                for (key, item) in map {
                    let len = path.len();
                    if !path.is_empty() {
                        path.push('.');
                    }
                    path.push_str(key);
                    out.push((key.clone(), self.compile_json_at(item, path)?));
                    path.truncate(len);
                }
                JsonTemplate::Object(out)
            }
        })
    }

    pub fn render_text(&self, t: &Template, ctx: &TemplateContext) -> Result<String, RenderError> {
        match &t.inner.kind {
            Kind::Literal => Ok(t.inner.source.clone()),
            Kind::Compiled { name, .. } => self.render_registered(name, t.source(), ctx),
        }
    }

    pub fn render_value(&self, t: &Template, ctx: &TemplateContext) -> Result<Value, RenderError> {
        let Kind::Compiled {
            value: Some(value), ..
        } = &t.inner.kind
        else {
            return self.render_text(t, ctx).map(Value::String);
        };
        match value {
            ValueForm::Path(segments, raw) => lookup(ctx.value(), segments)
                .cloned()
                .ok_or_else(|| RenderError(format!("missing value {raw}"))),
            ValueForm::Registered(name) => {
                let json = self.render_registered(name, t.source(), ctx)?;
                match serde_json::from_str(&json) {
                    Ok(v) => Ok(v),
                    // Unreachable while `json` writes JSON; text is the safe answer.
                    Err(_) => self.render_text(t, ctx).map(Value::String),
                }
            }
        }
    }

    pub fn render_json(
        &self,
        t: &JsonTemplate,
        ctx: &TemplateContext,
    ) -> Result<Value, RenderError> {
        t.map_leaves(&mut |s| self.render_value(s, ctx))
    }

    fn render_registered(
        &self,
        name: &str,
        source: &str,
        ctx: &TemplateContext,
    ) -> Result<String, RenderError> {
        self.registry
            .render_with_context(name, &ctx.context)
            .map_err(|e| render_error(&e, source))
    }
}

/// Follows a path as handlebars does at the top level: object keys, and
/// array indexes written as numbers (`commits.0`, `commits.[0]`).
fn lookup<'a>(mut value: &'a Value, segments: &[String]) -> Option<&'a Value> {
    for segment in segments {
        value = match value {
            Value::Object(map) => map.get(segment)?,
            Value::Array(items) => items.get(segment.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(value)
}

/// Handlebars' render error as one sentence: its own text carries the
/// generated template name and Rust debug formatting (`Some("payload.x")`).
fn render_error(e: &handlebars::RenderError, source: &str) -> RenderError {
    let message = match e.reason() {
        RenderErrorReason::MissingVariable(Some(path)) => format!("missing value {path}"),
        RenderErrorReason::MissingVariable(None) => {
            "missing value (a lookup or helper found nothing)".to_string()
        }
        RenderErrorReason::HelperNotFound(name) => format!("unknown helper '{name}'"),
        RenderErrorReason::ParamNotFoundForIndex(helper, i) => {
            format!("{helper} needs an argument at position {}", i + 1)
        }
        RenderErrorReason::TemplateNotFound(_) => {
            "template was compiled by a different Templates registry".to_string()
        }
        RenderErrorReason::InvalidJsonIndex(index) => {
            format!("'{index}' is not an index into a list")
        }
        RenderErrorReason::Other(message) => message.clone(),
        RenderErrorReason::NestedError(inner) => inner.to_string(),
        other => other.to_string(),
    };
    // A position only helps in multi-line templates (`body:` blocks).
    match (e.line_no, e.column_no) {
        (Some(line), Some(column)) if source.contains('\n') => {
            RenderError(format!("{message} (line {line}, column {column})"))
        }
        _ => RenderError(message),
    }
}

#[cfg(test)]
mod tests;
