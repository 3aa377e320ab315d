//! The validated, compiled rule model. Nothing here is raw YAML: every
//! JSONPath, regex, glob and template was compiled when the rules loaded.

use std::time::Duration;

use ipnet::IpNet;
use serde_json::Value;
use serde_json_path::JsonPath;

use super::condition::Condition;
use super::node::Loc;
use super::schema::{PayloadSchema, SchemaMismatch};
pub use crate::actions::Action;
use crate::template::Template;
use crate::verify::VerifierConfig;

/// Where webhooks come in and how they are checked.
#[derive(Debug)]
pub struct Source {
    pub name: String,
    pub loc: Loc,
    /// The URL path senders POST to; defaults to `/hooks/<name>`.
    pub path: String,
    /// Accepted HTTP methods, upper-case; defaults to `POST`.
    pub methods: Vec<String>,
    /// `None` is an open endpoint (`hookflow check` warns).
    pub verify: Option<VerifierConfig>,
    /// `verify` built once at load time.
    pub verifier: Option<std::sync::Arc<dyn crate::verify::Scheme>>,
    pub allow_ips: Vec<IpNet>,
    pub rate_limit: Option<RateLimit>,
    /// Overrides the server's `max_body` for this source.
    pub max_body: Option<u64>,
    /// Explicit event-name rule; else the verifier kind's default.
    pub event: Option<Extract>,
    /// Explicit dedupe-key rule; else the verifier kind's default.
    pub dedupe: Option<Extract>,
    pub response: Option<ResponseSpec>,
    /// The payload contract (`schema:` / `schema_file:`), compiled.
    pub schema: Option<PayloadSchema>,
}

impl Source {
    /// Checks a parsed payload against the source's schema, if it has one.
    pub fn check_schema(&self, payload: &Value) -> Result<(), SchemaMismatch> {
        match &self.schema {
            Some(schema) => schema.check(payload),
            None => Ok(()),
        }
    }

    /// The verifier's kind (`github`, `stripe`, …), which decides the default
    /// event name and dedupe key.
    pub fn kind(&self) -> Option<&'static str> {
        self.verifier.as_ref().map(|scheme| scheme.name())
    }
}

/// Where a value is read from a delivery: a header or a JSONPath of the body.
#[derive(Debug, Clone)]
pub enum Extract {
    Header(String),
    Path(JsonPath, String),
}

/// `N/s`, `N/m`, `N/h` or `N/<duration>`; the burst is twice the count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub count: u32,
    pub per: Duration,
}

/// A source's own reply to the sender (e.g. a Slack slash command's text).
#[derive(Debug, Clone)]
pub struct ResponseSpec {
    pub status: u16,
    pub headers: Vec<(String, Template)>,
    pub body: Option<Template>,
}

/// When to act, and what to do.
#[derive(Debug)]
pub struct Rule {
    pub name: String,
    pub loc: Loc,
    pub sources: Vec<String>,
    /// Empty means every event.
    pub events: Vec<EventPattern>,
    pub when: Option<Condition>,
    /// At most this many runs of the rule at once (per key, with
    /// `concurrency_key`).
    pub concurrency: Option<u32>,
    /// Keyed concurrency: the key, rendered when a delivery arrives; the
    /// limit holds per rendered key.
    pub concurrency_key: Option<crate::template::Template>,
    pub steps: Vec<Step>,
    /// `on_failure:`: steps run once (as a run of their own) when a run of
    /// the rule ends `failed`; empty when the rule has none.
    pub on_failure: Vec<Step>,
    /// `on_failure_every:`: at most one `on_failure` execution per window
    /// of this length, counting the failures it stands for.
    pub on_failure_every: Option<Duration>,
    /// The rule as written (before `${NAME}` substitution, so it holds no
    /// secret), stored with every queued run: a run executes the definition
    /// it was queued with even if the files change before it runs.
    pub definition: Value,
    /// `definition` encoded once, as every run of the rule stores it.
    pub run_definition: crate::store::RunDefinition,
}

/// An `event:` entry of a rule.
#[derive(Debug, Clone)]
pub enum EventPattern {
    /// Matches the name itself and every `<name>.<action>` below it.
    Exact(String),
    Glob(globset::GlobMatcher),
}

impl EventPattern {
    pub fn matches(&self, event: &str) -> bool {
        match self {
            EventPattern::Exact(name) => {
                event == name
                    || (event.len() > name.len()
                        && event.starts_with(name.as_str())
                        && event.as_bytes()[name.len()] == b'.')
            }
            EventPattern::Glob(glob) => glob.is_match(event),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            EventPattern::Exact(name) => name,
            EventPattern::Glob(glob) => glob.glob().glob(),
        }
    }
}

/// One action of a rule, in order.
#[derive(Debug)]
pub struct Step {
    /// Position in the rule, from 0.
    pub index: usize,
    /// Set when later steps refer to this one as `steps.<id>`.
    pub id: Option<String>,
    pub loc: Loc,
    /// `if:`: evaluated over the template context when the step is reached.
    pub condition: Option<Condition>,
    pub continue_on_error: bool,
    pub action: Action,
    /// The action's `retry:`, or its kind's default.
    pub retry: RetryPolicy,
    /// Whether running the step reads the template context: it has an
    /// `if:` or a template with `{{`. Decided at load; a step that does not
    /// is run without parsing its delivery or building a context.
    pub reads_context: bool,
}

impl Step {
    /// The step's name in output: its id, or its 1-based position.
    pub fn label(&self) -> String {
        self.id
            .clone()
            .unwrap_or_else(|| (self.index + 1).to_string())
    }
}

/// How often and how patiently a step is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Total attempts, including the first.
    pub attempts: u32,
    pub backoff: Duration,
    pub max_backoff: Duration,
}

impl RetryPolicy {
    /// `http` and `slack`: 6 attempts, 1 s doubling up to 10 min.
    pub const HTTP_DEFAULT: RetryPolicy = RetryPolicy {
        attempts: 6,
        backoff: Duration::from_secs(1),
        max_backoff: Duration::from_secs(600),
    };
    /// `shell`: one attempt unless `retry` is given.
    pub const SHELL_DEFAULT: RetryPolicy = RetryPolicy {
        attempts: 1,
        backoff: Duration::from_secs(1),
        max_backoff: Duration::from_secs(600),
    };
}

/// A `tests:` entry: a delivery and what the rules should make of it.
#[derive(Debug, Clone)]
pub struct RuleTest {
    pub name: String,
    pub loc: Loc,
    pub source: String,
    pub event: Option<String>,
    pub headers: Vec<(String, String)>,
    pub query: Vec<(String, String)>,
    /// The body's bytes, exactly as a sender would POST them.
    pub body: Vec<u8>,
    pub expect_matched: Option<Vec<String>>,
    /// `expect: { rejected: 422 }`: the delivery is refused (422 by the
    /// source's schema, 400 for a body that does not parse).
    pub expect_rejected: Option<u16>,
    /// `rule.step.field.path` → expected rendered value.
    pub expect_render: Vec<(String, Value, Loc)>,
    /// `failure:`: the matched rules' `on_failure` steps are rendered too,
    /// as if a run had failed so (`rule.on_failure.step.field`).
    pub failure: Option<SimulatedFailure>,
}

/// A test's `failure:`: what `failure.*` holds when its `on_failure` steps
/// are rendered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimulatedFailure {
    pub step: String,
    pub error: String,
    pub attempts: u32,
    pub count: u32,
}
