//! The `slack` action: an incoming webhook (POST the message JSON to its
//! URL) or `chat.postMessage` (the same JSON with a bot token). Slack
//! answers API errors with `200 {"ok": false, "error": …}`: that is a
//! final failure carrying Slack's error, not a success.

use std::time::Instant;

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use serde_json::{Value, json};

use super::http::{exchange, standard_headers};
use super::{ActionEnv, Fault, Outcome};
use crate::rules::model::SlackAction;

/// A `slack` step with its templates rendered.
#[derive(Debug, Clone)]
pub struct Message {
    /// The webhook URL, or `<api_url>/chat.postMessage`.
    pub url: String,
    /// The bot token for `chat.postMessage`; `None` for a webhook.
    pub token: Option<String>,
    pub message: Value,
}

/// At most this much of a reply is quoted in an error message.
const QUOTE_LIMIT: usize = 200;

pub async fn execute(action: &SlackAction, msg: Message, env: &ActionEnv<'_>) -> Outcome {
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
