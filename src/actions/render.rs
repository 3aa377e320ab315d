//! Rendering a step's templates against a template context: the
//! [`Renderer`] every action kind renders its fields with, naming the field
//! in the error when a template fails.

use serde_json::Value;

use super::RenderedStep;
use crate::rules::model::Step;
use crate::template::{JsonTemplate, RenderError, Template, TemplateContext, Templates};

/// The templates of a rule set and the context to render them in.
#[derive(Clone, Copy)]
pub struct Renderer<'a> {
    pub templates: &'a Templates,
    /// `None` for a step that reads no context ([`Step::reads_context`]):
    /// its literal strings render as they are, and a template that would
    /// read the context fails.
    pub ctx: Option<&'a TemplateContext>,
}

impl Renderer<'_> {
    /// A template string; `field` names it in the error (`url`,
    /// `headers.X`).
    pub fn text(&self, field: &str, t: &Template) -> Result<String, RenderError> {
        match self.ctx {
            Some(ctx) => self.templates.render_text(t, ctx),
            None => t.literal().map(str::to_owned).ok_or_else(no_context),
        }
        .map_err(|e| RenderError(format!("{field}: {e}")))
    }

    /// An optional template string.
    pub fn opt(&self, field: &str, t: &Option<Template>) -> Result<Option<String>, RenderError> {
        t.as_ref().map(|t| self.text(field, t)).transpose()
    }

    /// Named templates (headers, query, form, env), each error naming
    /// `field.name`.
    pub fn pairs(
        &self,
        field: &str,
        items: &[(String, Template)],
    ) -> Result<Vec<(String, String)>, RenderError> {
        items
            .iter()
            .map(|(k, t)| Ok((k.clone(), self.text(&format!("{field}.{k}"), t)?)))
            .collect()
    }

    /// A JSON structure whose strings are templates.
    pub fn json(&self, field: &str, t: &JsonTemplate) -> Result<Value, RenderError> {
        match self.ctx {
            Some(ctx) => self.templates.render_json(t, ctx),
            None => t.literal().ok_or_else(no_context),
        }
        .map_err(|e| RenderError(format!("{field}: {e}")))
    }
}

fn no_context() -> RenderError {
    RenderError("a template was rendered without its context".to_owned())
}

/// Renders every template of `step`. The first template that fails names
/// the field it was in. `ctx` may be `None` for a step that does not
/// [read the context](Step::reads_context).
pub fn render_step(
    step: &Step,
    templates: &Templates,
    ctx: Option<&TemplateContext>,
) -> Result<RenderedStep, RenderError> {
    step.action.render(&Renderer { templates, ctx })
}
