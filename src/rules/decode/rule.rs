//! Decoding `rules:` entries and their steps; each action kind decodes its
//! own settings (`crate::actions`), the step keeps their `retry`.

use std::time::Duration;

use super::{Decoder, Fields};
use crate::actions::{Action, KINDS, Renderer, STEP_KEYS};
use crate::rules::model::{EventPattern, RetryPolicy, Rule, Step};
use crate::rules::node::{Kind, Node};

pub(crate) const RULE_KEYS: &[&str] = &[
    "name",
    "description",
    "source",
    "event",
    "when",
    "concurrency",
    "actions",
    "on_failure",
    "on_failure_every",
];
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
            Some(n) => self.concurrency(n),
            None => Some((None, None)),
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
            .and_then(|n| self.steps(n, "actions"));
        let on_failure = match f.get("on_failure") {
            Some(n) => self.steps(n, "on_failure"),
            None => Some(Vec::new()),
        };
        let every_node = f.get("on_failure_every");
        let on_failure_every = match every_node {
            Some(n) => match self.duration(n) {
                Some(d) if d.is_zero() => {
                    self.error(n, "`on_failure_every` must be longer than 0s");
                    None
                }
                other => other.map(Some),
            },
            None => Some(None),
        };
        if let (Some(n), Some(steps)) = (every_node, &on_failure)
            && steps.is_empty()
        {
            self.error(
                n,
                "`on_failure_every` groups `on_failure` steps, and this rule has none",
            );
            ok = false;
        }
        f.finish(self, &what, RULE_KEYS);
        if !ok {
            return None;
        }
        let definition = node.to_json();
        Some(Rule {
            name: name?,
            loc,
            sources: sources?,
            events: events?,
            when: when?,
            concurrency: concurrency.as_ref()?.0,
            concurrency_key: concurrency?.1,
            steps: steps?,
            on_failure: on_failure?,
            on_failure_every: on_failure_every?,
            run_definition: (&definition).into(),
            definition,
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

    /// The steps of `actions:` or `on_failure:` (`key`); `steps.<id>`
    /// refers to earlier steps of the same list.
    fn steps(&mut self, node: &Node, key: &str) -> Option<Vec<Step>> {
        let Kind::Seq(items) = &node.kind else {
            self.expected(node, "a list of actions");
            return None;
        };
        if items.is_empty() {
            self.error(node, format!("`{key}` must have at least one action"));
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
        let mut f = self.map(
            node,
            &format!("an action (a mapping with one of {})", KINDS.join(", ")),
        )?;
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
        let kinds: Vec<(&str, &Node)> = KINDS
            .iter()
            .filter_map(|k| f.get(k).map(|n| (*k, n)))
            .collect();
        f.finish(self, "an action", STEP_KEYS);
        let action = match kinds.as_slice() {
            [(kind, n)] => Action::decode(kind, self, n),
            [] => {
                self.error(node, format!("an action needs one of {}", one_of(KINDS)));
                None
            }
            _ => {
                self.error(
                    node,
                    format!(
                        "an action has exactly one of {}; make a separate action for each",
                        one_of(KINDS)
                    ),
                );
                None
            }
        };
        let (action, retry) = action.unzip();
        let (condition, action) = (condition?, action?);
        // Rendering without a context fails exactly when some template
        // would read it.
        let literal = Renderer {
            templates: self.templates,
            ctx: None,
        };
        let reads_context = condition.is_some() || action.render(&literal).is_err();
        Some(Step {
            index,
            id: id?,
            loc,
            condition,
            continue_on_error: continue_on_error?,
            action,
            retry: retry?,
            reads_context,
        })
    }

    pub(crate) fn opt_template(
        &mut self,
        f: &mut Fields<'_>,
        key: &str,
    ) -> Option<Option<crate::template::Template>> {
        match f.get(key) {
            Some(n) => self.template(n).map(Some),
            None => Some(None),
        }
    }

    pub(crate) fn opt_template_map(
        &mut self,
        f: &mut Fields<'_>,
        key: &str,
    ) -> Option<Vec<(String, crate::template::Template)>> {
        match f.get(key) {
            Some(n) => self.template_map(n),
            None => Some(Vec::new()),
        }
    }

    pub(crate) fn opt_duration(
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

    /// `concurrency: N`, or `{ key: "{{…}}", limit: N }`.
    fn concurrency(
        &mut self,
        node: &Node,
    ) -> Option<(Option<u32>, Option<crate::template::Template>)> {
        let at_least_one = |dec: &mut Self, n: &Node, what: &str| match dec.u32(n) {
            Some(0) => {
                dec.error(n, format!("`{what}` must be at least 1"));
                None
            }
            other => other,
        };
        if !matches!(node.kind, crate::rules::node::Kind::Map(_)) {
            return at_least_one(self, node, "concurrency").map(|n| (Some(n), None));
        }
        let mut c = self.map(
            node,
            "`concurrency` (a count, or a mapping with key and limit)",
        )?;
        let key = c
            .require(self, "key", "`concurrency`")
            .and_then(|n| self.template(n));
        let limit = c
            .require(self, "limit", "`concurrency`")
            .and_then(|n| at_least_one(self, n, "limit"));
        c.finish(self, "`concurrency`", &["key", "limit"]);
        Some((Some(limit?), Some(key?)))
    }

    pub(crate) fn retry(
        &mut self,
        f: &mut Fields<'_>,
        default: RetryPolicy,
    ) -> Option<RetryPolicy> {
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
}

/// "`http`, `slack` or `shell`".
fn one_of(names: &[&str]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    match quoted.split_last() {
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    }
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
    fn kinds_are_listed_as_people_write_lists() {
        assert_eq!(one_of(&["http"]), "`http`");
        assert_eq!(
            one_of(&["http", "slack", "shell"]),
            "`http`, `slack` or `shell`"
        );
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
