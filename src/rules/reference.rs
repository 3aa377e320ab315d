//! Every mapping of a rule file with its keys documented: the decoders' own
//! key lists (`decode::keys`, and each sender's `keys` in `verify/`) joined
//! with a type, default and one line of meaning per key. `hookflow schema`
//! (`editor_schema.rs`) and docs/REFERENCE.md (`crate::reference`) are
//! generated from [`objects`], so neither can list a key the loader does
//! not know, nor miss one it does (a unit test below fails on a key
//! without a description, and on a description of no key).

use super::decode::keys::{
    COMBINATORS, EXPECT_KEYS, EXTRACT_KEYS, FAILURE_KEYS, FILE_KEYS, HTTP_KEYS, OPERATORS,
    RESPONSE_KEYS, RULE_KEYS, SELECTORS, SHELL_KEYS, SLACK_KEYS, SOURCE_KEYS, STEP_KEYS, TEST_KEYS,
};
use crate::keys::{Key, Ty};
use crate::verify::SENDERS;

/// The keys of `retry:`. The decoder lists them inline (`decode/rule.rs`);
/// tests/it/schema.rs checks this list against its error message.
pub const RETRY_KEYS: &[&str] = &["attempts", "backoff", "max_backoff"];

/// The keys of keyed `concurrency:`. The decoder lists them inline
/// (`decode/rule.rs`).
pub const CONCURRENCY_KEYS: &[&str] = &["key", "limit"];

/// A mapping of a rule file.
#[derive(Debug, Clone)]
pub struct Object {
    /// Its definition's name in the schema: `rule`, `http`, `verify.github`.
    pub id: String,
    pub title: String,
    pub about: &'static str,
    /// The decoder's key list, in its order.
    pub keys: Vec<&'static str>,
    /// Descriptions, looked up by name.
    docs: Vec<Key>,
    /// The mapping may also be left empty (`github:` with nothing after it).
    pub nullable: bool,
    /// Exactly one of the keys must be given (`verify:`).
    pub exactly_one: bool,
    /// A list of such mappings is accepted in its place (conditions).
    pub or_list: bool,
}

impl Object {
    fn new(
        id: &str,
        title: &str,
        about: &'static str,
        keys: &[&'static str],
        docs: &[Key],
    ) -> Self {
        Object {
            id: id.to_string(),
            title: title.to_string(),
            about,
            keys: keys.to_vec(),
            docs: docs.to_vec(),
            nullable: false,
            exactly_one: false,
            or_list: false,
        }
    }

    /// Each of the decoder's keys with its description; a key nobody
    /// described gets an empty one (which the unit test refuses).
    pub fn documented(&self) -> Vec<Key> {
        self.keys
            .iter()
            .map(|name| {
                self.docs
                    .iter()
                    .find(|d| d.name == *name)
                    .copied()
                    .unwrap_or(Key::optional(name, Ty::Any, ""))
            })
            .collect()
    }
}

/// Every mapping of a rule file, the file itself first.
pub fn objects() -> Vec<Object> {
    let mut out = vec![
        Object::new(
            "file",
            "Rule file",
            "Every `*.yaml` / `*.yml` file below the rules directory.",
            FILE_KEYS,
            FILE_DOCS,
        ),
        Object {
            nullable: true,
            ..Object::new(
                "source",
                "Source",
                "Where webhooks come in and how they are checked (`sources: { NAME: … }`).",
                SOURCE_KEYS,
                SOURCE_DOCS,
            )
        },
    ];
    let verifiers: Vec<&'static str> = SENDERS.iter().map(|s| s.name).collect();
    let verifier_docs: Vec<Key> = SENDERS
        .iter()
        .map(|s| Key::optional(s.name, Ty::Verifier(s.name), s.about))
        .collect();
    out.push(Object {
        exactly_one: true,
        ..Object::new(
            "verify",
            "Verifiers",
            "A source's `verify:` names exactly one verifier and its settings.",
            &verifiers,
            &verifier_docs,
        )
    });
    for sender in SENDERS {
        let keys: Vec<&'static str> = sender.keys.iter().map(|k| k.name).collect();
        out.push(Object::new(
            &format!("verify.{}", sender.name),
            &format!("Verifier `{}`", sender.name),
            sender.about,
            &keys,
            sender.keys,
        ));
    }
    out.extend([
        Object::new(
            "extract",
            "Event and dedupe (`event:`, `dedupe:`)",
            "Where a source's event name or dedupe key is read: exactly one of the keys.",
            EXTRACT_KEYS,
            EXTRACT_DOCS,
        ),
        Object::new(
            "response",
            "Response (`response:`)",
            "What a source answers a sender that reads the reply.",
            RESPONSE_KEYS,
            RESPONSE_DOCS,
        ),
        Object::new(
            "rule",
            "Rule",
            "When to act, and what to do (`rules: [ … ]`).",
            RULE_KEYS,
            RULE_DOCS,
        ),
        Object {
            or_list: true,
            ..Object::new(
                "condition",
                "Condition (`when:`, `if:`)",
                "One selector and one operator, or one of `all`, `any`, `not`; a list means all of them.",
                &condition_keys(),
                CONDITION_DOCS,
            )
        },
        Object::new(
            "step",
            "Step (`actions:`)",
            "One action, run in order; exactly one of `http`, `slack`, `shell`.",
            STEP_KEYS,
            STEP_DOCS,
        ),
        Object::new(
            "http",
            "Action `http`",
            "A templated HTTP request.",
            HTTP_KEYS,
            HTTP_DOCS,
        ),
        Object::new(
            "slack",
            "Action `slack`",
            "A Slack message, by incoming webhook or chat.postMessage.",
            SLACK_KEYS,
            SLACK_DOCS,
        ),
        Object::new(
            "shell",
            "Action `shell`",
            "A command (argv, no shell) or a script run by /bin/sh.",
            SHELL_KEYS,
            SHELL_DOCS,
        ),
        Object::new(
            "retry",
            "Retry (`retry:`)",
            "How failed attempts are retried; `http` and `slack` retry connection errors, timeouts, 408, 429 (after its Retry-After) and 5xx.",
            RETRY_KEYS,
            RETRY_DOCS,
        ),
        Object::new(
            "concurrency",
            "Keyed concurrency (`concurrency: { key, limit }`)",
            "At most `limit` runs of the rule at a time per rendered key, oldest first; runs of other keys proceed.",
            CONCURRENCY_KEYS,
            CONCURRENCY_DOCS,
        ),
        Object::new(
            "test",
            "Rule test (`tests: [ … ]`)",
            "A delivery and what the rules should do with it (`hookflow test`).",
            TEST_KEYS,
            TEST_DOCS,
        ),
        Object::new(
            "expect",
            "Test expectations (`expect:`)",
            "What a test checks.",
            EXPECT_KEYS,
            EXPECT_DOCS,
        ),
        Object::new(
            "failure",
            "Simulated failure (`failure:` of a test)",
            "As if a run of each matched rule had failed so: its `on_failure` steps are rendered too, under `rule.on_failure.step.field`.",
            FAILURE_KEYS,
            FAILURE_DOCS,
        ),
    ]);
    out
}

/// The keys a condition may hold, as the decoder knows them.
fn condition_keys() -> Vec<&'static str> {
    let mut keys: Vec<&'static str> = SELECTORS.to_vec();
    keys.extend_from_slice(OPERATORS);
    keys.extend_from_slice(COMBINATORS);
    keys.push("every");
    keys
}

/// The decoders' own key lists by definition, for the no-drift test
/// (tests/it/schema.rs): the schema's `properties` must equal these.
pub fn decoder_key_lists() -> Vec<(String, Vec<&'static str>)> {
    let mut out: Vec<(String, Vec<&'static str>)> = [
        ("file", FILE_KEYS),
        ("source", SOURCE_KEYS),
        ("extract", EXTRACT_KEYS),
        ("response", RESPONSE_KEYS),
        ("rule", RULE_KEYS),
        ("step", STEP_KEYS),
        ("http", HTTP_KEYS),
        ("slack", SLACK_KEYS),
        ("shell", SHELL_KEYS),
        ("retry", RETRY_KEYS),
        ("concurrency", CONCURRENCY_KEYS),
        ("test", TEST_KEYS),
        ("expect", EXPECT_KEYS),
        ("failure", FAILURE_KEYS),
    ]
    .into_iter()
    .map(|(id, keys)| (id.to_string(), keys.to_vec()))
    .collect();
    out.push(("condition".into(), condition_keys()));
    out.push(("verify".into(), SENDERS.iter().map(|s| s.name).collect()));
    for s in SENDERS {
        let keys = s.keys.iter().map(|k| k.name).collect();
        out.push((format!("verify.{}", s.name), keys));
    }
    out
}

const TEXT: Ty = Ty::Text;

#[rustfmt::skip]
const FILE_DOCS: &[Key] = &[
    Key::optional("sources", Ty::Named("source"), "sources by name"),
    Key::optional("rules", Ty::List("rule"), "rules; every rule whose source, event and `when` hold runs"),
    Key::optional("tests", Ty::List("test"), "rule tests, run by `hookflow test`"),
];

#[rustfmt::skip]
const SOURCE_DOCS: &[Key] = &[
    Key::defaults("path", TEXT, "/hooks/<name>", "the URL path senders POST to; starts with `/`"),
    Key::defaults("methods", Ty::Texts, "[POST]", "accepted HTTP methods: GET, POST, PUT, PATCH, DELETE"),
    Key::optional("verify", Ty::Object("verify"), "how requests are checked; without it the endpoint is open (`check` warns)"),
    Key::optional("allow_ips", Ty::Texts, "client addresses or CIDR ranges allowed to send (others get 403)"),
    Key::optional("rate_limit", Ty::Rate, "requests allowed per period, e.g. `50/s`, `600/m`, `10/30s`; burst is twice the count"),
    Key::defaults("max_body", Ty::Size, "the server's max_body", "largest accepted body for this source (at most 64MiB)"),
    Key::optional("event", Ty::Object("extract"), "where the event name is read, when the verifier gives none"),
    Key::optional("dedupe", Ty::Object("extract"), "where the dedupe key is read, when the verifier gives none"),
    Key::optional("response", Ty::Object("response"), "the answer to an accepted delivery"),
    Key::optional("schema", Ty::AnyMap, "a JSON Schema (draft 2020-12) every payload must satisfy (else 422)"),
    Key::optional("schema_file", TEXT, "the same, from a JSON file relative to this rule file"),
];

#[rustfmt::skip]
const EXTRACT_DOCS: &[Key] = &[
    Key::optional("header", TEXT, "a request header's name"),
    Key::optional("path", TEXT, "a JSONPath into the body, e.g. `$.type`"),
];

#[rustfmt::skip]
const RESPONSE_DOCS: &[Key] = &[
    Key::defaults("status", Ty::Count(200), "200", "a 2xx status"),
    Key::optional("headers", Ty::TemplateMap, "response headers (templates)"),
    Key::optional("body", Ty::Template, "the body; the template sees the delivery and the matched rules"),
];

#[rustfmt::skip]
const RULE_DOCS: &[Key] = &[
    Key::required("name", Ty::Name, "unique across the rules directory"),
    Key::optional("description", TEXT, "free text for people"),
    Key::required("source", Ty::Texts, "the source (or sources) whose deliveries it sees"),
    Key::optional("event", Ty::Texts, "event names or globs (`invoice.*`); `pull_request` matches every action"),
    Key::optional("when", Ty::Condition, "conditions on the delivery; a list means all of them"),
    Key::optional("concurrency", Ty::CountOr(1, "concurrency"), "at most this many runs of the rule at a time, or that many per rendered key"),
    Key::required("actions", Ty::List("step"), "the steps, run in order"),
    Key::optional("on_failure", Ty::List("step"), "steps run once, durably, when a run of the rule ends `failed`; templates also see `failure.step`, `failure.error`, `failure.attempts`, `failure.count`"),
    Key::optional("on_failure_every", Ty::Duration, "at most one `on_failure` execution per window of this length (e.g. `10m`), with `failure.count` failures in it"),
];

#[rustfmt::skip]
const CONDITION_DOCS: &[Key] = &[
    Key::optional("path", TEXT, "selector: an RFC 9535 JSONPath over the body; holds if any selected value passes"),
    Key::optional("header", TEXT, "selector: a request header (any case)"),
    Key::optional("query", TEXT, "selector: a URL query parameter"),
    Key::optional("event", Ty::Any, "selector: the event name (`event: true`)"),
    Key::optional("source_ip", Ty::Any, "selector: the client address (`source_ip: true`)"),
    Key::optional("equals", Ty::Any, "operator: equal, type included (`1` is not `\"1\"`)"),
    Key::optional("not_equals", Ty::Any, "operator: not equal"),
    Key::optional("in", Ty::Any, "operator: one of a list"),
    Key::optional("not_in", Ty::Any, "operator: none of a list"),
    Key::optional("contains", Ty::Any, "operator: a substring, or an element of an array"),
    Key::optional("starts_with", TEXT, "operator: text prefix"),
    Key::optional("ends_with", TEXT, "operator: text suffix"),
    Key::optional("matches", TEXT, "operator: a regular expression, compiled at load"),
    Key::optional("gt", Ty::Any, "operator: greater than (numbers, or RFC 3339 times)"),
    Key::optional("gte", Ty::Any, "operator: greater than or equal"),
    Key::optional("lt", Ty::Any, "operator: less than"),
    Key::optional("lte", Ty::Any, "operator: less than or equal"),
    Key::optional("exists", Ty::Bool, "operator: whether the selector finds anything"),
    Key::optional("cidr", Ty::Texts, "operator: the address is in one of these ranges (with `source_ip`)"),
    Key::optional("all", Ty::List("condition"), "combinator: every condition holds"),
    Key::optional("any", Ty::List("condition"), "combinator: at least one condition holds"),
    Key::optional("not", Ty::Condition, "combinator: the condition does not hold"),
    Key::defaults("every", Ty::Bool, "false", "every selected value must pass (and at least one is selected)"),
];

#[rustfmt::skip]
const STEP_DOCS: &[Key] = &[
    Key::optional("id", Ty::Name, "names the step for later ones: `{{steps.ID.json.x}}`"),
    Key::optional("if", Ty::Condition, "run the step only if this holds (over the template context)"),
    Key::defaults("continue_on_error", Ty::Bool, "false", "a failure does not stop the run"),
    Key::optional("http", Ty::Object("http"), "send an HTTP request"),
    Key::optional("slack", Ty::Object("slack"), "post a Slack message"),
    Key::optional("shell", Ty::Object("shell"), "run a command"),
];

#[rustfmt::skip]
const HTTP_DOCS: &[Key] = &[
    Key::defaults("method", TEXT, "POST", "the HTTP method"),
    Key::required("url", Ty::Template, "the URL"),
    Key::optional("headers", Ty::TemplateMap, "request headers"),
    Key::optional("query", Ty::TemplateMap, "query parameters added to the URL"),
    Key::optional("json", Ty::Any, "a JSON body: every string leaf is a template (a lone `{{expr}}` keeps its JSON type)"),
    Key::optional("body", Ty::Template, "a text body (instead of `json` or `form`)"),
    Key::optional("form", Ty::TemplateMap, "a form-encoded body (instead of `json` or `body`)"),
    Key::defaults("timeout", Ty::Duration, "30s", "how long one attempt may take"),
    Key::defaults("retry", Ty::Object("retry"), "6 attempts, 1s doubling to 10m", "how failed attempts are retried"),
    Key::defaults("expect", Ty::Statuses, "2xx", "the statuses that count as success: `201`, `200-299`, `2xx` or a list"),
];

#[rustfmt::skip]
const SLACK_DOCS: &[Key] = &[
    Key::optional("webhook_url", Ty::Template, "an incoming webhook URL (or `token` and `channel`)"),
    Key::optional("token", Ty::Template, "a bot token for chat.postMessage"),
    Key::optional("channel", Ty::Template, "the channel for chat.postMessage"),
    Key::defaults("api_url", TEXT, "https://slack.com/api", "Slack's API base URL (for tests)"),
    Key::optional("text", Ty::Template, "the message text (this or `blocks`)"),
    Key::optional("blocks", Ty::Any, "Block Kit blocks, templated like `json`"),
    Key::optional("thread_ts", Ty::Template, "reply in this thread"),
    Key::optional("username", Ty::Template, "the sender name shown"),
    Key::optional("icon_emoji", Ty::Template, "the sender icon shown"),
    Key::defaults("timeout", Ty::Duration, "30s", "how long one attempt may take"),
    Key::defaults("retry", Ty::Object("retry"), "6 attempts, 1s doubling to 10m", "how failed attempts are retried"),
];

#[rustfmt::skip]
const SHELL_DOCS: &[Key] = &[
    Key::optional("command", Ty::Texts, "argv: program first, each element a template; no shell is involved"),
    Key::optional("script", TEXT, "a script for /bin/sh -c, never templated (pass values with `env`)"),
    Key::optional("env", Ty::TemplateMap, "environment variables (templates)"),
    Key::optional("workdir", TEXT, "the working directory"),
    Key::defaults("timeout", Ty::Duration, "60s", "the process group is killed at this deadline"),
    Key::optional("stdin", Ty::Template, "text written to the command's standard input"),
    Key::defaults("retry", Ty::Object("retry"), "1 attempt", "how failed attempts are retried"),
];

#[rustfmt::skip]
const RETRY_DOCS: &[Key] = &[
    Key::defaults("attempts", Ty::Count(1), "6", "attempts in all, the first included (also for `shell` once `retry` is given)"),
    Key::defaults("backoff", Ty::Duration, "1s", "the first wait, doubling after each attempt (with full jitter)"),
    Key::defaults("max_backoff", Ty::Duration, "10m", "the longest wait"),
];

#[rustfmt::skip]
const CONCURRENCY_DOCS: &[Key] = &[
    Key::required("key", Ty::Template, "rendered when the delivery arrives (e.g. `{{payload.repository.id}}`); runs with the same key share the limit"),
    Key::required("limit", Ty::Count(1), "at most this many runs per key at a time"),
];

#[rustfmt::skip]
const TEST_DOCS: &[Key] = &[
    Key::required("name", TEXT, "shown in `hookflow test`'s report"),
    Key::required("source", TEXT, "the source the delivery arrives at"),
    Key::optional("event", TEXT, "the event name, when the source's verifier reads it from a header"),
    Key::optional("headers", Ty::TextMap, "request headers"),
    Key::optional("query", Ty::TextMap, "query parameters"),
    Key::optional("payload", Ty::Any, "the body inline: a mapping is sent as JSON, a string as it is"),
    Key::optional("payload_file", TEXT, "the body from a file, relative to this rule file"),
    Key::optional("failure", Ty::Object("failure"), "a simulated failure: the matched rules' `on_failure` steps are rendered too"),
    Key::required("expect", Ty::Object("expect"), "what should happen"),
];

#[rustfmt::skip]
const FAILURE_DOCS: &[Key] = &[
    Key::defaults("step", TEXT, "\"\"", "`failure.step`: the failed step's id or position"),
    Key::defaults("error", TEXT, "\"\"", "`failure.error`: why it failed"),
    Key::defaults("attempts", Ty::Count(1), "1", "`failure.attempts`: attempts made at that step"),
    Key::defaults("count", Ty::Count(1), "1", "`failure.count`: failures the execution stands for"),
];

#[rustfmt::skip]
const EXPECT_DOCS: &[Key] = &[
    Key::optional("matched", Ty::Texts, "exactly these rules match (`[]` for none)"),
    Key::optional("render", Ty::AnyMap, "`rule.step.field` paths and the values they render to"),
    Key::optional("rejected", Ty::Count(400), "the delivery is refused: 422 (schema) or 400 (unparsable body)"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_is_described_and_every_description_is_a_key() {
        for object in objects() {
            for key in object.documented() {
                assert!(
                    !key.about.is_empty(),
                    "`{}` of {} has no description",
                    key.name,
                    object.id
                );
            }
            for doc in &object.docs {
                assert!(
                    object.keys.contains(&doc.name),
                    "{} describes `{}`, which the decoder does not know",
                    object.id,
                    doc.name
                );
            }
        }
    }

    #[test]
    fn every_action_kind_and_sender_is_described() {
        let ids: Vec<String> = objects().into_iter().map(|o| o.id).collect();
        for kind in crate::actions::KINDS {
            assert!(ids.iter().any(|id| id == kind), "action kind `{kind}`");
        }
        for sender in SENDERS {
            let id = format!("verify.{}", sender.name);
            assert!(ids.contains(&id), "sender `{}`", sender.name);
        }
    }

    #[test]
    fn every_referenced_definition_exists() {
        let all = objects();
        let ids: Vec<&str> = all.iter().map(|o| o.id.as_str()).collect();
        for object in &all {
            for key in object.documented() {
                let id = match key.ty {
                    Ty::Object(id) | Ty::List(id) | Ty::Named(id) | Ty::CountOr(_, id) => {
                        id.to_string()
                    }
                    Ty::Verifier(name) => format!("verify.{name}"),
                    _ => continue,
                };
                assert!(
                    ids.contains(&id.as_str()),
                    "{}.{} refers to {id}",
                    object.id,
                    key.name
                );
            }
        }
    }
}
