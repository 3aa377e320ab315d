//! Actions: what a rule's steps do. Every action kind is one file here
//! (`http`, `slack`, `shell`) implementing [`ActionKind`]: its decoded
//! settings, its rendering into a concrete, inspectable step (nothing
//! executed, which `explain`, `test` and the workers all share) and its
//! execution. [`action_kinds!`] below lists the kinds, one line each, and
//! builds the [`Action`] and [`RenderedStep`] enums from that list.
//!
//! Executing never decides about retries: an action reports what happened
//! (an [`Outcome`], with a [`Fault`] when it did not succeed) and the
//! engine's retry schedule decides what comes next, with the step's
//! [`RetryPolicy`](crate::rules::model::RetryPolicy).

pub mod http;
mod outcome;
pub mod render;
pub mod shell;
pub mod slack;

use std::fmt;
use std::future::Future;

use serde_json::Value;

pub use outcome::{CAPTURE_LIMIT, Captured, Fault, Outcome, TEXT_LIMIT};
pub use render::{Renderer, render_step};

use crate::rules::Secrets;
use crate::rules::decode::{Decoder, Fields};
use crate::rules::model::RetryPolicy;
use crate::rules::node::Node;
use crate::template::RenderError;

/// `User-Agent` of every outgoing request.
pub const USER_AGENT: &str = concat!("hookflow/", env!("CARGO_PKG_VERSION"));

/// What executing a step needs besides the step itself.
#[derive(Debug, Clone, Copy)]
pub struct ActionEnv<'a> {
    /// The one shared client: its keep-alive pool is what makes many small
    /// requests to the same host cheap.
    pub client: &'a reqwest::Client,
    /// `<run id>.<step index>`, identical on every retry of the step, so
    /// the receiver can drop duplicates of an at-least-once delivery.
    pub idempotency_key: &'a str,
    /// For the request summary, which only the action knows how to build.
    pub secrets: &'a Secrets,
}

/// One action kind, from the rule file to its execution.
pub trait ActionKind: Sized {
    /// What the kind's value must be, for the error when it is something
    /// else: "`http` settings (a mapping with url, method, …)".
    const SETTINGS: &'static str;
    /// The keys of the kind's mapping (`retry` included): anything else is
    /// an unknown key.
    const KEYS: &'static [&'static str];
    /// The step's retry policy when it gives no `retry:`.
    const RETRY: RetryPolicy;
    /// The kind with every template rendered: exactly what would be sent
    /// or run.
    type Rendered: fmt::Debug + Clone + PartialEq + Send;

    /// Reads the kind's own keys from `fields` (its mapping, at `node`),
    /// reporting every problem to `dec`. `retry` and unknown keys are
    /// handled by the caller.
    fn decode(dec: &mut Decoder<'_>, node: &Node, fields: &mut Fields<'_>) -> Option<Self>;

    /// Renders every template. The first one that fails names its field.
    fn render(&self, r: &Renderer<'_>) -> Result<Self::Rendered, RenderError>;

    /// A JSON view with the field names of the rule file (`url`, `json`,
    /// `headers.X`, `text`, `command`…) and `kind`, for `expect.render` in
    /// rule tests and for display.
    fn view(rendered: &Self::Rendered) -> Value;

    /// Executes one attempt.
    fn execute(
        &self,
        rendered: Self::Rendered,
        env: &ActionEnv<'_>,
    ) -> impl Future<Output = Outcome> + Send;
}

/// Builds [`Action`], [`RenderedStep`], [`KINDS`] and [`STEP_KEYS`] from
/// the list of kinds: `"<key in a step>" => Variant(kind type)`.
macro_rules! action_kinds {
    ($($name:literal => $variant:ident($kind:ty),)*) => {
        /// What a step does: one variant per action kind.
        #[derive(Debug)]
        pub enum Action {
            $($variant($kind),)*
        }

        /// A step with every template rendered: exactly what would be sent
        /// or run.
        #[derive(Debug, Clone, PartialEq)]
        pub enum RenderedStep {
            $($variant(<$kind as ActionKind>::Rendered),)*
        }

        /// Every action kind, by the key that names it in a step.
        pub const KINDS: &[&str] = &[$($name,)*];

        /// The keys of an `actions:` entry: its own, then one per kind.
        pub(crate) const STEP_KEYS: &[&str] = &["id", "if", "continue_on_error", $($name,)*];

        impl Action {
            /// The kind's name (`http`, `slack`, `shell`).
            pub fn kind(&self) -> &'static str {
                match self {
                    $(Action::$variant(_) => $name,)*
                }
            }

            /// Decodes the value of a step's `kind:` key, `retry` included.
            pub(crate) fn decode(
                kind: &str,
                dec: &mut Decoder<'_>,
                node: &Node,
            ) -> Option<(Action, RetryPolicy)> {
                $(
                    if kind == $name {
                        return decode_kind::<$kind>($name, dec, node)
                            .map(|(action, retry)| (Action::$variant(action), retry));
                    }
                )*
                None
            }

            /// Renders every template of the action.
            pub fn render(&self, r: &Renderer<'_>) -> Result<RenderedStep, RenderError> {
                Ok(match self {
                    $(Action::$variant(action) => RenderedStep::$variant(action.render(r)?),)*
                })
            }

            /// Executes one attempt of the action, rendered.
            pub async fn execute(&self, rendered: RenderedStep, env: &ActionEnv<'_>) -> Outcome {
                match (self, rendered) {
                    $(
                        (Action::$variant(action), RenderedStep::$variant(rendered)) => {
                            action.execute(rendered, env).await
                        }
                    )*
                    #[allow(unreachable_patterns)]
                    (action, _) => Outcome::failed(
                        Value::Null,
                        Fault::Final,
                        format!(
                            "internal error: the rendered step is not a `{}` step",
                            action.kind()
                        ),
                    ),
                }
            }
        }

        impl RenderedStep {
            /// See [`ActionKind::view`].
            pub fn view(&self) -> Value {
                match self {
                    $(RenderedStep::$variant(rendered) => <$kind as ActionKind>::view(rendered),)*
                }
            }
        }
    };
}

// Adding an action kind: a file implementing `ActionKind`, and a line here.
action_kinds! {
    "http" => Http(http::HttpAction),
    "slack" => Slack(slack::SlackAction),
    "shell" => Shell(shell::ShellAction),
}

/// A kind's mapping: its own keys, then `retry`, then unknown keys.
fn decode_kind<K: ActionKind>(
    name: &str,
    dec: &mut Decoder<'_>,
    node: &Node,
) -> Option<(K, RetryPolicy)> {
    let mut fields = dec.map(node, K::SETTINGS)?;
    let action = K::decode(dec, node, &mut fields);
    let retry = dec.retry(&mut fields, K::RETRY);
    fields.finish(dec, &format!("action `{name}`"), K::KEYS);
    Some((action?, retry?))
}

/// Executes one attempt of a rendered step.
pub async fn execute(action: &Action, rendered: RenderedStep, env: &ActionEnv<'_>) -> Outcome {
    action.execute(rendered, env).await
}

/// `error: source: source…`, the way people read an error chain.
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        let next = e.to_string();
        // Wrappers often repeat their source's text.
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = e.source();
    }
    text
}
