//! Rendering a step's templates against a template context.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::rules::model::{Action, HttpBody, ShellProgram, SlackTarget, Step};
use crate::template::{RenderError, Template, TemplateContext, Templates};

/// A step with every template rendered: exactly what would be sent or run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum RenderedStep {
    Http {
        method: String,
        url: String,
        headers: Vec<(String, String)>,
        query: Vec<(String, String)>,
        body: RenderedBody,
    },
    Slack {
        /// The incoming-webhook URL, or `<api_url>/chat.postMessage`.
        url: String,
        /// The bot token for `chat.postMessage`; `None` for webhooks.
        token: Option<String>,
        /// The JSON message Slack receives.
        message: Value,
    },
    Shell {
        /// argv, or `["/bin/sh", "-c", script]`.
        argv: Vec<String>,
        env: Vec<(String, String)>,
        workdir: Option<String>,
        stdin: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "value", rename_all = "lowercase")]
pub enum RenderedBody {
    None,
    Json(Value),
    Text(String),
    Form(Vec<(String, String)>),
}

/// Renders every template of `step`. The first template that fails names
/// the field it was in.
pub fn render_step(
    step: &Step,
    templates: &Templates,
    ctx: &TemplateContext,
) -> Result<RenderedStep, RenderError> {
    let text = |field: &str, t: &Template| {
        templates
            .render_text(t, ctx)
            .map_err(|e| RenderError(format!("{field}: {e}")))
    };
    let pairs =
        |field: &str, items: &[(String, Template)]| -> Result<Vec<(String, String)>, RenderError> {
            items
                .iter()
                .map(|(k, t)| Ok((k.clone(), text(&format!("{field}.{k}"), t)?)))
                .collect()
        };
    let opt = |field: &str, t: &Option<Template>| t.as_ref().map(|t| text(field, t)).transpose();
    Ok(match &step.action {
        Action::Http(http) => RenderedStep::Http {
            method: http.method.clone(),
            url: text("url", &http.url)?,
            headers: pairs("headers", &http.headers)?,
            query: pairs("query", &http.query)?,
            body: match &http.body {
                HttpBody::None => RenderedBody::None,
                HttpBody::Json(j) => RenderedBody::Json(
                    templates
                        .render_json(j, ctx)
                        .map_err(|e| RenderError(format!("json: {e}")))?,
                ),
                HttpBody::Text(t) => RenderedBody::Text(text("body", t)?),
                HttpBody::Form(items) => RenderedBody::Form(pairs("form", items)?),
            },
        },
        Action::Slack(slack) => {
            let mut message = Map::new();
            let (url, token) = match &slack.target {
                SlackTarget::Webhook { url } => (text("webhook_url", url)?, None),
                SlackTarget::Api {
                    token,
                    channel,
                    api_url,
                } => {
                    message.insert("channel".into(), Value::String(text("channel", channel)?));
                    (
                        format!("{api_url}/chat.postMessage"),
                        Some(text("token", token)?),
                    )
                }
            };
            for (field, value) in [
                ("text", &slack.text),
                ("thread_ts", &slack.thread_ts),
                ("username", &slack.username),
                ("icon_emoji", &slack.icon_emoji),
            ] {
                if let Some(v) = opt(field, value)? {
                    message.insert(field.into(), Value::String(v));
                }
            }
            if let Some(blocks) = &slack.blocks {
                let rendered = templates
                    .render_json(blocks, ctx)
                    .map_err(|e| RenderError(format!("blocks: {e}")))?;
                message.insert("blocks".into(), rendered);
            }
            RenderedStep::Slack {
                url,
                token,
                message: Value::Object(message),
            }
        }
        Action::Shell(shell) => RenderedStep::Shell {
            argv: match &shell.program {
                ShellProgram::Argv(args) => args
                    .iter()
                    .enumerate()
                    .map(|(i, t)| text(&format!("command[{i}]"), t))
                    .collect::<Result<_, _>>()?,
                ShellProgram::Script(script) => vec!["/bin/sh".into(), "-c".into(), script.clone()],
            },
            env: pairs("env", &shell.env)?,
            workdir: shell.workdir.clone(),
            stdin: opt("stdin", &shell.stdin)?,
        },
    })
}

impl RenderedStep {
    /// A JSON view with the field names of the rule file (`url`, `json`,
    /// `headers.X`, `text`, `command`…), for `expect.render` in rule tests
    /// and for display.
    pub fn view(&self) -> Value {
        let object = |pairs: &[(String, String)]| {
            Value::Object(
                pairs
                    .iter()
                    .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                    .collect(),
            )
        };
        match self {
            RenderedStep::Http {
                method,
                url,
                headers,
                query,
                body,
            } => {
                let mut view = json!({
                    "kind": "http",
                    "method": method,
                    "url": url,
                    "headers": object(headers),
                    "query": object(query),
                });
                if let Value::Object(map) = &mut view {
                    match body {
                        RenderedBody::None => {}
                        RenderedBody::Json(v) => {
                            map.insert("json".into(), v.clone());
                        }
                        RenderedBody::Text(t) => {
                            map.insert("body".into(), Value::String(t.clone()));
                        }
                        RenderedBody::Form(f) => {
                            map.insert("form".into(), object(f));
                        }
                    }
                }
                view
            }
            RenderedStep::Slack { url, message, .. } => {
                let mut view = message.clone();
                if let Value::Object(map) = &mut view {
                    map.insert("kind".into(), Value::String("slack".into()));
                    map.insert("url".into(), Value::String(url.clone()));
                }
                view
            }
            RenderedStep::Shell {
                argv,
                env,
                workdir,
                stdin,
            } => json!({
                "kind": "shell",
                "command": argv,
                "env": object(env),
                "workdir": workdir,
                "stdin": stdin,
            }),
        }
    }
}
