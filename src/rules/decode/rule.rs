//! Decoding `rules:` entries and their steps (`http`, `slack`, `shell`).

use std::time::Duration;

use super::{Decoder, Fields};
use crate::rules::model::{
    Action, EventPattern, HttpAction, HttpBody, RetryPolicy, Rule, ShellAction, ShellProgram,
    SlackAction, SlackTarget, Step,
};
use crate::rules::node::{Kind, Node};

const RULE_KEYS: &[&str] = &[
    "name",
    "description",
    "source",
    "event",
    "when",
    "concurrency",
    "actions",
];
const STEP_KEYS: &[&str] = &["id", "if", "continue_on_error", "http", "slack", "shell"];
const HTTP_KEYS: &[&str] = &[
    "method", "url", "headers", "query", "json", "body", "form", "timeout", "retry", "expect",
];
const SLACK_KEYS: &[&str] = &[
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
const SHELL_KEYS: &[&str] = &[
    "command", "script", "env", "workdir", "timeout", "stdin", "retry",
];

const HTTP_TIMEOUT: Duration = Duration::from_secs(30);
const SHELL_TIMEOUT: Duration = Duration::from_secs(60);
const SLACK_API: &str = "https://slack.com/api";

impl Decoder<'_> {
    pub fn rule(&mut self, node: &Node) -> Option<Rule> {
        let loc = self.loc(node);
        let mut f = self.map(node, "a rule (a mapping with name, source, actions)")?;
        let name = f
            .require(self, "name", "a rule")
            .and_then(|n| self.name(n, "rule"));
        let what = match &name {
            Some(n) => format!("rule `{n}`"),
            None => "a rule".to_string(),
        };
        let mut ok = true;
        if let Some(n) = f.get("description") {
            ok &= self.string(n).is_some();
        }
        let sources = f.require(self, "source", &what).and_then(|n| {
            let list = self.string_list(n)?;
            if list.is_empty() {
                self.error(n, "`source` must name at least one source");
                return None;
            }
            Some(list)
        });
        let events = match f.get("event") {
            Some(n) => self.event_patterns(n),
            None => Some(Vec::new()),
        };
        let when = match f.get("when") {
            Some(n) => self.condition(n).map(Some),
            None => Some(None),
        };
        let concurrency = match f.get("concurrency") {
            Some(n) => match self.u32(n) {
                Some(0) => {
                    self.error(n, "`concurrency` must be at least 1");
                    None
                }
                other => other.map(Some),
            },
            None => Some(None),
        };
        if let Some(name) = &name {
            self.declared_rules.push(super::DeclaredRule {
                name: name.clone(),
                loc: loc.clone(),
                sources: sources.clone().unwrap_or_default(),
            });
        }
        let steps = f
            .require(self, "actions", &what)
            .and_then(|n| self.steps(n));
        f.finish(self, &what, RULE_KEYS);
        if !ok {
            return None;
        }
        Some(Rule {
            name: name?,
            loc,
            sources: sources?,
            events: events?,
            when: when?,
            concurrency: concurrency?,
            steps: steps?,
            definition: node.to_json(),
        })
    }

    fn event_patterns(&mut self, node: &Node) -> Option<Vec<EventPattern>> {
        let names = self.string_list(node)?;
        let mut out = Vec::with_capacity(names.len());
        for name in names {
            if name.contains(['*', '?', '[', '{']) {
                match globset::GlobBuilder::new(&name)
                    .literal_separator(false)
                    .build()
                {
                    Ok(glob) => out.push(EventPattern::Glob(glob.compile_matcher())),
                    Err(e) => {
                        self.error(node, format!("invalid event glob {name:?}: {}", e.kind()));
                        return None;
                    }
                }
            } else {
                out.push(EventPattern::Exact(name));
            }
        }
        Some(out)
    }

    fn steps(&mut self, node: &Node) -> Option<Vec<Step>> {
        let Kind::Seq(items) = &node.kind else {
            self.expected(node, "a list of actions");
            return None;
        };
        if items.is_empty() {
            self.error(node, "`actions` must have at least one action");
            return None;
        }
        let mut steps = Vec::with_capacity(items.len());
        let mut ids: Vec<String> = Vec::new();
        let mut ok = true;
        for (index, item) in items.iter().enumerate() {
            self.check_step_references(item, &ids);
            match self.step(index, item) {
                Some(step) => {
                    if let Some(id) = &step.id {
                        if ids.contains(id) {
                            self.error(item, format!("duplicate step id `{id}` in this rule"));
                            ok = false;
                        }
                        ids.push(id.clone());
                    }
                    steps.push(step);
                }
                None => {
                    // Later references to a step that failed to decode are
                    // not errors of their own.
                    if let Some(id) = declared_step_id(item)
                        && !ids.contains(&id)
                    {
                        ids.push(id);
                    }
                    ok = false;
                }
            }
        }
        ok.then_some(steps)
    }

    /// Reports `steps.<id>` references to steps that do not come earlier.
    fn check_step_references(&mut self, node: &Node, earlier: &[String]) {
        match &node.kind {
            Kind::String(text) => {
                for referenced in referenced_steps(text) {
                    let known = earlier.iter().any(|id| {
                        referenced.starts_with(id.as_str())
                            && !referenced[id.len()..]
                                .starts_with(|c: char| is_id_char(c) && c != '.')
                    });
                    if !known {
                        let shown: String = referenced
                            .chars()
                            .take_while(|c| is_id_char(*c) && *c != '.')
                            .collect();
                        let hint = if earlier.is_empty() {
                            "no earlier step has an `id`".to_string()
                        } else {
                            format!("earlier step ids: {}", earlier.join(", "))
                        };
                        self.error(
                            node,
                            format!("`steps.{shown}` refers to no earlier step ({hint})"),
                        );
                    }
                }
            }
            Kind::Seq(items) => items
                .iter()
                .for_each(|i| self.check_step_references(i, earlier)),
            Kind::Map(entries) => entries
                .iter()
                .for_each(|(_, v)| self.check_step_references(v, earlier)),
            _ => {}
        }
    }

    fn step(&mut self, index: usize, node: &Node) -> Option<Step> {
        let loc = self.loc(node);
        let mut f = self.map(node, "an action (a mapping with one of http, slack, shell)")?;
        let id = match f.get("id") {
            Some(n) => self.name(n, "step id").map(Some),
            None => Some(None),
        };
        let condition = match f.get("if") {
            Some(n) => self.condition(n).map(Some),
            None => Some(None),
        };
        let continue_on_error = f
            .get("continue_on_error")
            .map(|n| self.bool(n))
            .unwrap_or(Some(false));
        let kinds: Vec<(&str, &Node)> = ["http", "slack", "shell"]
            .into_iter()
            .filter_map(|k| f.get(k).map(|n| (k, n)))
            .collect();
        f.finish(self, "an action", STEP_KEYS);
        let action = match kinds.as_slice() {
            [("http", n)] => self.http(n).map(Action::Http),
            [("slack", n)] => self.slack(n).map(Action::Slack),
            [(_, n)] => self.shell(n).map(Action::Shell),
            [] => {
                self.error(node, "an action needs one of `http`, `slack` or `shell`");
                None
            }
            _ => {
                self.error(node, "an action has exactly one of `http`, `slack` or `shell`; make a separate action for each");
                None
            }
        };
        Some(Step {
            index,
            id: id?,
            loc,
            condition: condition?,
            continue_on_error: continue_on_error?,
            action: action?,
        })
    }

    fn http(&mut self, node: &Node) -> Option<HttpAction> {
        let mut f = self.map(node, "`http` settings (a mapping with url, method, …)")?;
        let what = "action `http`";
        let method = match f.get("method") {
            Some(n) => self.string(n).map(|m| m.to_ascii_uppercase()),
            None => Some("POST".to_string()),
        };
        let url = f.require(self, "url", what).and_then(|n| self.template(n));
        let headers = self.opt_template_map(&mut f, "headers");
        let query = self.opt_template_map(&mut f, "query");
        let body = match (f.get("json"), f.get("body"), f.get("form")) {
            (None, None, None) => Some(HttpBody::None),
            (Some(n), None, None) => self.json_template(n).map(HttpBody::Json),
            (None, Some(n), None) => self.template(n).map(HttpBody::Text),
            (None, None, Some(n)) => self.template_map(n).map(HttpBody::Form),
            _ => {
                self.error(node, "`http` takes at most one of `json`, `body` or `form`");
                None
            }
        };
        let timeout = self.opt_duration(&mut f, "timeout", HTTP_TIMEOUT);
        let retry = self.retry(&mut f, RetryPolicy::HTTP_DEFAULT);
        let expect = match f.get("expect") {
            Some(n) => self.expect(n),
            None => Some(vec![(200, 299)]),
        };
        f.finish(self, what, HTTP_KEYS);
        Some(HttpAction {
            method: method?,
            url: url?,
            headers: headers?,
            query: query?,
            body: body?,
            timeout: timeout?,
            retry: retry?,
            expect: expect?,
        })
    }

    fn slack(&mut self, node: &Node) -> Option<SlackAction> {
        let mut f = self.map(node, "`slack` settings (a mapping)")?;
        let what = "action `slack`";
        let target = match (f.get("webhook_url"), f.get("token"), f.get("channel")) {
            (Some(url), None, None) => self.template(url).map(|url| SlackTarget::Webhook { url }),
            (None, Some(token), Some(channel)) => {
                let api_url = match f.get("api_url") {
                    Some(n) => self.string(n),
                    None => Some(SLACK_API.to_string()),
                };
                let token = self.template(token);
                let channel = self.template(channel);
                Some(SlackTarget::Api {
                    token: token?,
                    channel: channel?,
                    api_url: api_url?.trim_end_matches('/').to_string(),
                })
            }
            _ => {
                self.error(
                    node,
                    "`slack` needs either `webhook_url`, or `token` and `channel`",
                );
                None
            }
        };
        let text = self.opt_template(&mut f, "text");
        let blocks = match f.get("blocks") {
            Some(n) => self.json_template(n).map(Some),
            None => Some(None),
        };
        let thread_ts = self.opt_template(&mut f, "thread_ts");
        let username = self.opt_template(&mut f, "username");
        let icon_emoji = self.opt_template(&mut f, "icon_emoji");
        let timeout = self.opt_duration(&mut f, "timeout", HTTP_TIMEOUT);
        let retry = self.retry(&mut f, RetryPolicy::HTTP_DEFAULT);
        f.finish(self, what, SLACK_KEYS);
        let (text, blocks) = (text?, blocks?);
        if text.is_none() && blocks.is_none() {
            self.error(node, "`slack` needs `text` or `blocks`");
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
            retry: retry?,
        })
    }

    fn shell(&mut self, node: &Node) -> Option<ShellAction> {
        let mut f = self.map(node, "`shell` settings (a mapping with command or script)")?;
        let what = "action `shell`";
        let f_command = f.get("command");
        let program = match (f_command, f.get("script")) {
            (Some(n), None) => match &n.kind {
                Kind::Seq(items) if !items.is_empty() => {
                    let argv: Option<Vec<_>> = items.iter().map(|i| self.template(i)).collect();
                    argv.map(ShellProgram::Argv)
                }
                _ => {
                    self.expected(n, "a non-empty list (argv: program first, then its arguments; no shell is involved)");
                    None
                }
            },
            (None, Some(n)) => {
                let script = self.string(n)?;
                if script.contains("{{") {
                    self.error(
                        n,
                        "`script` is never templated (payload text in a shell script is an injection hole): pass values with `env:` and use them as \"$NAME\"",
                    );
                    None
                } else {
                    Some(ShellProgram::Script(script))
                }
            }
            _ => {
                self.error(
                    node,
                    "`shell` needs exactly one of `command` (a list) or `script` (a string)",
                );
                None
            }
        };
        let env = self.opt_template_map(&mut f, "env");
        let workdir = match f.get("workdir") {
            Some(n) => self.string(n).map(Some),
            None => Some(None),
        };
        let stdin_node = f.get("stdin");
        let stdin = match stdin_node {
            Some(n) => self.template(n).map(Some),
            None => Some(None),
        };
        let timeout = self.opt_duration(&mut f, "timeout", SHELL_TIMEOUT);
        let retry = self.retry(&mut f, RetryPolicy::SHELL_DEFAULT);
        f.finish(self, what, SHELL_KEYS);
        let (program, stdin) = (program?, stdin?);
        if !self.shell_injection(&program, f_command, stdin.as_ref(), stdin_node) {
            return None;
        }
        Some(ShellAction {
            program,
            env: env?,
            workdir: workdir?,
            stdin,
            timeout: timeout?,
            retry: retry?,
        })
    }

    fn opt_template(
        &mut self,
        f: &mut Fields<'_>,
        key: &str,
    ) -> Option<Option<crate::template::Template>> {
        match f.get(key) {
            Some(n) => self.template(n).map(Some),
            None => Some(None),
        }
    }

    fn opt_template_map(
        &mut self,
        f: &mut Fields<'_>,
        key: &str,
    ) -> Option<Vec<(String, crate::template::Template)>> {
        match f.get(key) {
            Some(n) => self.template_map(n),
            None => Some(Vec::new()),
        }
    }

    fn opt_duration(
        &mut self,
        f: &mut Fields<'_>,
        key: &str,
        default: Duration,
    ) -> Option<Duration> {
        match f.get(key) {
            Some(n) => self.duration(n),
            None => Some(default),
        }
    }

    fn retry(&mut self, f: &mut Fields<'_>, default: RetryPolicy) -> Option<RetryPolicy> {
        let Some(node) = f.get("retry") else {
            return Some(default);
        };
        let mut r = self.map(
            node,
            "`retry` (a mapping with attempts, backoff, max_backoff)",
        )?;
        let attempts = match r.get("attempts") {
            Some(n) => match self.u32(n) {
                Some(0) => {
                    self.error(
                        n,
                        "`attempts` counts the first try too, so it must be at least 1",
                    );
                    None
                }
                other => other,
            },
            // Asking for retries without a count means the http default.
            None => Some(RetryPolicy::HTTP_DEFAULT.attempts.max(default.attempts)),
        };
        let backoff = self.opt_duration(&mut r, "backoff", default.backoff);
        let max_backoff = self.opt_duration(&mut r, "max_backoff", default.max_backoff);
        r.finish(self, "`retry`", &["attempts", "backoff", "max_backoff"]);
        Some(RetryPolicy {
            attempts: attempts?,
            backoff: backoff?,
            max_backoff: max_backoff?,
        })
    }

    /// `expect:` — statuses (`201`), ranges (`200-299`) or classes (`2xx`).
    fn expect(&mut self, node: &Node) -> Option<Vec<(u16, u16)>> {
        let items: Vec<&Node> = match &node.kind {
            Kind::Seq(items) => items.iter().collect(),
            _ => vec![node],
        };
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            let text = match &item.kind {
                Kind::Number(n) => n.to_string(),
                _ => self.string(item)?,
            };
            match parse_status_range(&text) {
                Some(range) => out.push(range),
                None => {
                    self.error(
                        item,
                        format!("invalid status {text:?}: write e.g. 200, 200-299 or 2xx"),
                    );
                    return None;
                }
            }
        }
        Some(out)
    }
}

fn parse_status_range(text: &str) -> Option<(u16, u16)> {
    let text = text.trim();
    let valid = |s: u16| (100..=599).contains(&s);
    if let Some(class) = text.strip_suffix("xx").or_else(|| text.strip_suffix("XX")) {
        let c: u16 = class.parse().ok()?;
        return (1..=5).contains(&c).then_some((c * 100, c * 100 + 99));
    }
    if let Some((lo, hi)) = text.split_once('-') {
        let (lo, hi): (u16, u16) = (lo.trim().parse().ok()?, hi.trim().parse().ok()?);
        return (valid(lo) && valid(hi) && lo <= hi).then_some((lo, hi));
    }
    let s: u16 = text.parse().ok()?;
    valid(s).then_some((s, s))
}

fn is_id_char(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-' | '.')
}

/// The `id` of an action that failed to decode, if that much is valid.
fn declared_step_id(node: &Node) -> Option<String> {
    let Kind::Map(entries) = &node.kind else {
        return None;
    };
    entries.iter().find_map(|(k, v)| match &v.kind {
        Kind::String(id) if k.as_str() == Some("id") && super::is_valid_name(id) => {
            Some(id.clone())
        }
        _ => None,
    })
}

/// The text after each `steps.` inside `{{ … }}` expressions, and in
/// JSONPaths such as `$.steps.build.status`.
fn referenced_steps(text: &str) -> Vec<&str> {
    if let Some(rest) = text.strip_prefix("$.steps.") {
        return vec![rest];
    }
    let mut out = Vec::new();
    let mut search = 0;
    while let Some(open) = text[search..].find("{{") {
        let start = search + open + 2;
        let end = text[start..].find("}}").map_or(text.len(), |e| start + e);
        let mut from = start;
        while let Some(pos) = text[from..end].find("steps.") {
            let at = from + pos;
            let before = text[..at].chars().next_back();
            // `payload.steps.x` is a payload field, not a step reference.
            if before.is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '_' || c == '.')) {
                out.push(&text[at + "steps.".len()..]);
            }
            from = at + "steps.".len();
        }
        search = end;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_ranges_accept_codes_ranges_and_classes() {
        assert_eq!(parse_status_range("201"), Some((201, 201)));
        assert_eq!(parse_status_range("200-204"), Some((200, 204)));
        assert_eq!(parse_status_range("2xx"), Some((200, 299)));
        assert_eq!(parse_status_range("700"), None);
        assert_eq!(parse_status_range("300-200"), None);
    }

    #[test]
    fn step_references_are_found_in_expressions_and_paths_only() {
        assert_eq!(
            referenced_steps("id {{steps.build.json.id}} x"),
            vec!["build.json.id}} x"]
        );
        assert_eq!(referenced_steps("{{default steps.a.body \"-\"}}").len(), 1);
        assert!(referenced_steps("see steps.md for details").is_empty());
        assert_eq!(
            referenced_steps("$.steps.build.status"),
            vec!["build.status"]
        );
        assert!(referenced_steps("{{payload.steps.x}}").is_empty());
    }
}
