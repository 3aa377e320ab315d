//! The `slack` action: an incoming webhook (POST the message JSON to its
//! URL) or `chat.postMessage` (the same JSON with a bot token). Slack
//! answers API errors with `200 {"ok": false, "error": …}`: that is a
//! final failure carrying Slack's error, not a success.

use std::time::{Duration, Instant};

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use serde_json::{Map, Value, json};

use super::http::{HTTP_TIMEOUT, exchange, standard_headers};
use super::{ActionEnv, ActionKind, Fault, Outcome, Renderer};
use crate::rules::decode::{Decoder, Fields};
use crate::rules::model::RetryPolicy;
use crate::rules::node::Node;
use crate::template::{JsonTemplate, RenderError, Template};

pub(crate) const SLACK_KEYS: &[&str] = &[
    "webhook_url",
    "token",
    "channel",
    "api_url",
    "text",
    "blocks",
    "thread_ts",
    "username",
    "icon_emoji",
    "timeout",
    "retry",
];

const SLACK_API: &str = "https://slack.com/api";

/// A `slack` step as decoded.
#[derive(Debug)]
pub struct SlackAction {
    pub target: SlackTarget,
    pub text: Option<Template>,
    pub blocks: Option<JsonTemplate>,
    pub thread_ts: Option<Template>,
    pub username: Option<Template>,
    pub icon_emoji: Option<Template>,
    pub timeout: Duration,
}

#[derive(Debug)]
pub enum SlackTarget {
    /// An incoming webhook URL.
    Webhook { url: Template },
    /// `chat.postMessage` with a bot token.
    Api {
        token: Template,
        channel: Template,
        api_url: String,
    },
}

/// A `slack` step with its templates rendered.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// The webhook URL, or `<api_url>/chat.postMessage`.
    pub url: String,
    /// The bot token for `chat.postMessage`; `None` for a webhook.
    pub token: Option<String>,
    /// The JSON message Slack receives.
    pub message: Value,
}

impl ActionKind for SlackAction {
    const SETTINGS: &'static str = "`slack` settings (a mapping)";
    const KEYS: &'static [&'static str] = SLACK_KEYS;
    const RETRY: RetryPolicy = RetryPolicy::HTTP_DEFAULT;
    type Rendered = Message;

    fn decode(dec: &mut Decoder<'_>, node: &Node, f: &mut Fields<'_>) -> Option<Self> {
        let target = match (f.get("webhook_url"), f.get("token"), f.get("channel")) {
            (Some(url), None, None) => dec.template(url).map(|url| SlackTarget::Webhook { url }),
            (None, Some(token), Some(channel)) => {
                let api_url = match f.get("api_url") {
                    Some(n) => dec.string(n),
                    None => Some(SLACK_API.to_string()),
                };
                let token = dec.template(token);
                let channel = dec.template(channel);
                Some(SlackTarget::Api {
                    token: token?,
                    channel: channel?,
                    api_url: api_url?.trim_end_matches('/').to_string(),
                })
            }
            _ => {
                dec.error(
                    node,
                    "`slack` needs either `webhook_url`, or `token` and `channel`",
                );
                None
            }
        };
        let text = dec.opt_template(f, "text");
        let blocks = match f.get("blocks") {
            Some(n) => dec.json_template(n).map(Some),
            None => Some(None),
        };
        let thread_ts = dec.opt_template(f, "thread_ts");
        let username = dec.opt_template(f, "username");
        let icon_emoji = dec.opt_template(f, "icon_emoji");
        let timeout = dec.opt_duration(f, "timeout", HTTP_TIMEOUT);
        let (text, blocks) = (text?, blocks?);
        if text.is_none() && blocks.is_none() {
            dec.error(node, "`slack` needs `text` or `blocks`");
            return None;
        }
        Some(SlackAction {
            target: target?,
            text,
            blocks,
            thread_ts: thread_ts?,
            username: username?,
            icon_emoji: icon_emoji?,
            timeout: timeout?,
        })
    }

    fn render(&self, r: &Renderer<'_>) -> Result<Message, RenderError> {
        let mut message = Map::new();
        let (url, token) = match &self.target {
            SlackTarget::Webhook { url } => (r.text("webhook_url", url)?, None),
            SlackTarget::Api {
                token,
                channel,
                api_url,
            } => {
                message.insert("channel".into(), Value::String(r.text("channel", channel)?));
                (
                    format!("{api_url}/chat.postMessage"),
                    Some(r.text("token", token)?),
                )
            }
        };
        for (field, value) in [
            ("text", &self.text),
            ("thread_ts", &self.thread_ts),
            ("username", &self.username),
            ("icon_emoji", &self.icon_emoji),
        ] {
            if let Some(v) = r.opt(field, value)? {
                message.insert(field.into(), Value::String(v));
            }
        }
        if let Some(blocks) = &self.blocks {
            message.insert("blocks".into(), r.json("blocks", blocks)?);
        }
        Ok(Message {
            url,
            token,
            message: Value::Object(message),
        })
    }

    fn view(msg: &Message) -> Value {
        let mut view = msg.message.clone();
        if let Value::Object(map) = &mut view {
            map.insert("kind".into(), Value::String("slack".into()));
            map.insert("url".into(), Value::String(msg.url.clone()));
        }
        view
    }

    async fn execute(&self, msg: Message, env: &ActionEnv<'_>) -> Outcome {
        execute(self, msg, env).await
    }
}

/// At most this much of a reply is quoted in an error message.
const QUOTE_LIMIT: usize = 200;

async fn execute(action: &SlackAction, msg: Message, env: &ActionEnv<'_>) -> Outcome {
    let url = env.secrets.redact(&msg.url);
    // The Authorization header is left out entirely: it is the token.
    let summary = json!({ "method": "POST", "url": url });
    let request = match build(&msg, env) {
        Ok(request) => request.timeout(action.timeout),
        Err(message) => {
            return Outcome::failed(summary, Fault::Final, format!("POST {url}: {message}"));
        }
    };
    let started = Instant::now();
    let reply = match exchange(request).await {
        Ok(reply) => reply,
        Err(failed) => return failed.outcome(summary, &format!("POST {url}"), started),
    };
    let failure = if !(200..300).contains(&reply.status) {
        Some((
            Fault::Status {
                status: reply.status,
                retry_after: reply.retry_after.clone(),
            },
            format!(
                "Slack answered HTTP {}{}",
                reply.status,
                quote(&reply.body.text())
            ),
        ))
    } else if msg.token.is_some() {
        match reply.body.json() {
            Some(body) if body.get("ok") == Some(&Value::Bool(true)) => None,
            Some(body) => {
                let error = body
                    .get("error")
                    .and_then(Value::as_str)
                    .unwrap_or("no error given");
                Some((Fault::Final, format!("Slack answered ok: false: {error}")))
            }
            None => Some((
                Fault::Final,
                format!(
                    "Slack's reply is not the JSON chat.postMessage answers{}",
                    quote(&reply.body.text())
                ),
            )),
        }
    } else {
        None
    };
    reply.outcome(summary, failure, started)
}

fn build(msg: &Message, env: &ActionEnv<'_>) -> Result<reqwest::RequestBuilder, String> {
    let url = reqwest::Url::parse(&msg.url).map_err(|e| format!("invalid URL: {e}"))?;
    let mut headers = standard_headers(env.idempotency_key)?;
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    if let Some(token) = &msg.token {
        let value = HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| "the token is not a valid header value".to_owned())?;
        headers.insert(AUTHORIZATION, value);
    }
    let body = serde_json::to_vec(&msg.message).map_err(|e| format!("message: {e}"))?;
    Ok(env.client.post(url).headers(headers).body(body))
}

/// `: <the start of the reply>` for an error message, or nothing.
fn quote(text: &str) -> String {
    let text = text.trim();
    if text.is_empty() {
        return String::new();
    }
    match text.char_indices().nth(QUOTE_LIMIT) {
        Some((cut, _)) => format!(": {}…", &text[..cut]),
        None => format!(": {text}"),
    }
}
