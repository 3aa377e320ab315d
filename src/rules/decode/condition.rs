//! Decoding `when:` and `if:` conditions: one selector plus one operator,
//! or an `all` / `any` / `not` combinator; a list means all of them.

use std::cmp::Ordering;

use chrono::DateTime;
use ipnet::IpNet;
use serde_json::Value;

use super::Decoder;
use crate::rules::condition::{Bound, Condition, ConditionKind, Op, Selector, Test};
use crate::rules::node::{Kind, Node, key_text};

pub(crate) const SELECTORS: &[&str] = &["path", "header", "query", "event", "source_ip"];
pub(crate) const OPERATORS: &[&str] = &[
    "equals",
    "not_equals",
    "in",
    "not_in",
    "contains",
    "starts_with",
    "ends_with",
    "matches",
    "gt",
    "gte",
    "lt",
    "lte",
    "exists",
    "cidr",
];
pub(crate) const COMBINATORS: &[&str] = &["all", "any", "not"];

impl Decoder<'_> {
    /// A condition, or a list of them (all must hold).
    pub fn condition(&mut self, node: &Node) -> Option<Condition> {
        let loc = self.loc(node);
        match &node.kind {
            Kind::Seq(items) => {
                let mut all = Vec::with_capacity(items.len());
                let mut ok = true;
                for item in items {
                    match self.condition(item) {
                        Some(c) => all.push(c),
                        None => ok = false,
                    }
                }
                ok.then_some(Condition {
                    loc,
                    kind: ConditionKind::All(all),
                })
            }
            Kind::Map(entries) => {
                let combinator = entries
                    .iter()
                    .find(|(k, _)| k.as_str().is_some_and(|k| COMBINATORS.contains(&k)));
                match combinator {
                    Some((key, value)) => {
                        if entries.len() > 1 {
                            self.error(
                                node,
                                format!(
                                    "`{}` must be the only key of its condition; put the other keys in a condition of their own",
                                    key_text(key)
                                ),
                            );
                            return None;
                        }
                        self.combinator(key, value)
                            .map(|kind| Condition { loc, kind })
                    }
                    None => self.test(node, entries).map(|t| Condition {
                        loc,
                        kind: ConditionKind::Test(t),
                    }),
                }
            }
            _ => {
                self.expected(node, "a condition (a mapping such as `path: $.ref` with `equals: …`) or a list of conditions");
                None
            }
        }
    }

    fn combinator(&mut self, key: &Node, value: &Node) -> Option<ConditionKind> {
        match key.as_str() {
            Some("not") => self
                .condition(value)
                .map(|c| ConditionKind::Not(Box::new(c))),
            Some(name) => {
                let Kind::Seq(items) = &value.kind else {
                    self.expected(value, &format!("a list of conditions after `{name}`"));
                    return None;
                };
                if items.is_empty() {
                    self.error(value, format!("`{name}` needs at least one condition"));
                    return None;
                }
                let mut parts = Vec::with_capacity(items.len());
                for item in items {
                    parts.push(self.condition(item));
                }
                let parts: Option<Vec<Condition>> = parts.into_iter().collect();
                let parts = parts?;
                Some(if name == "all" {
                    ConditionKind::All(parts)
                } else {
                    ConditionKind::Any(parts)
                })
            }
            None => None,
        }
    }

    fn test(&mut self, node: &Node, entries: &[(Node, Node)]) -> Option<Test> {
        let mut selector: Option<(&Node, &Node)> = None;
        let mut operator: Option<(&Node, &Node)> = None;
        let mut every = false;
        let mut ok = true;
        for (key, value) in entries {
            let name = key.as_str().unwrap_or("");
            if SELECTORS.contains(&name) {
                if let Some((first, _)) = selector {
                    self.error(
                        key,
                        format!(
                            "a condition has one selector, but this one also has `{}`; use `all:` to combine conditions",
                            key_text(first)
                        ),
                    );
                    ok = false;
                }
                selector = Some((key, value));
            } else if OPERATORS.contains(&name) {
                if let Some((first, _)) = operator {
                    self.error(
                        key,
                        format!(
                            "a condition has one operator, but this one also has `{}`; use `all:` to combine conditions",
                            key_text(first)
                        ),
                    );
                    ok = false;
                }
                operator = Some((key, value));
            } else if name == "every" {
                every = self.bool(value).unwrap_or_else(|| {
                    ok = false;
                    false
                });
            } else {
                let known = SELECTORS
                    .iter()
                    .chain(OPERATORS)
                    .chain(COMBINATORS)
                    .chain(&["every"]);
                let hint = super::did_you_mean(&key_text(key), known.copied())
                    .map(|h| format!(" (did you mean `{h}`?)"))
                    .unwrap_or_default();
                self.error(
                    key,
                    format!("unknown key `{}` in condition{hint}", key_text(key)),
                );
                ok = false;
            }
        }
        let Some((sel_key, sel_value)) = selector else {
            self.error(
                node,
                "condition has no selector: add one of `path`, `header`, `query`, `event`, `source_ip`",
            );
            return None;
        };
        let Some((op_key, op_value)) = operator else {
            self.error(
                node,
                format!(
                    "condition on `{}` has no operator: add one of {}",
                    key_text(sel_key),
                    OPERATORS.join(", ")
                ),
            );
            return None;
        };
        let selector = self.selector(sel_key, sel_value);
        let op = self.operator(op_key, op_value);
        if !ok {
            return None;
        }
        Some(Test {
            selector: selector?,
            op: op?,
            every,
        })
    }

    fn selector(&mut self, key: &Node, value: &Node) -> Option<Selector> {
        match key.as_str()? {
            "path" => {
                let src = self.string(value)?;
                match crate::rules::jsonpath::parse(&src) {
                    Ok(path) => Some(Selector::Path(path, src)),
                    Err(e) => {
                        self.error(
                            value,
                            format!(
                                "invalid JSONPath {src:?}: {} at character {}",
                                e.message, e.position
                            ),
                        );
                        None
                    }
                }
            }
            "header" => self
                .string(value)
                .map(|h| Selector::Header(h.to_ascii_lowercase())),
            "query" => self.string(value).map(Selector::Query),
            name @ ("event" | "source_ip") => {
                if !matches!(value.kind, Kind::Null | Kind::Bool(true)) {
                    self.error(
                        value,
                        format!("`{name}` as a selector takes no value: write `{name}: true`"),
                    );
                    return None;
                }
                Some(if name == "event" {
                    Selector::Event
                } else {
                    Selector::SourceIp
                })
            }
            _ => None,
        }
    }

    fn operator(&mut self, key: &Node, value: &Node) -> Option<Op> {
        let name = key.as_str()?;
        match name {
            "equals" => self.json_value(value).map(Op::Equals),
            "not_equals" => self.json_value(value).map(Op::NotEquals),
            "contains" => self.json_value(value).map(Op::Contains),
            "in" | "not_in" => {
                let Kind::Seq(items) = &value.kind else {
                    self.expected(value, &format!("a list after `{name}`"));
                    return None;
                };
                let values: Option<Vec<Value>> = items.iter().map(|i| self.json_value(i)).collect();
                let values = values?;
                Some(if name == "in" {
                    Op::In(values)
                } else {
                    Op::NotIn(values)
                })
            }
            "starts_with" => self.string(value).map(Op::StartsWith),
            "ends_with" => self.string(value).map(Op::EndsWith),
            "matches" => {
                let src = self.string(value)?;
                match regex::Regex::new(&src) {
                    Ok(re) => Some(Op::Matches(re)),
                    Err(e) => {
                        self.error(
                            value,
                            format!("invalid regex {src:?}: {}", regex_reason(&e)),
                        );
                        None
                    }
                }
            }
            "gt" | "gte" | "lt" | "lte" => {
                let bound = self.bound(value)?;
                let ord = if name.starts_with('g') {
                    Ordering::Greater
                } else {
                    Ordering::Less
                };
                Some(Op::Compare(ord, name.ends_with('e'), bound))
            }
            "exists" => self.bool(value).map(Op::Exists),
            "cidr" => {
                let texts = self.string_list(value)?;
                let mut nets = Vec::with_capacity(texts.len());
                for text in texts {
                    nets.push(self.net(value, &text)?);
                }
                Some(Op::Cidr(nets))
            }
            _ => None,
        }
    }

    /// A network in CIDR form, or a single address (a /32 or /128).
    pub fn net(&mut self, node: &Node, text: &str) -> Option<IpNet> {
        let text = text.trim();
        if let Ok(net) = text.parse::<IpNet>() {
            return Some(net);
        }
        if let Ok(ip) = text.parse::<std::net::IpAddr>() {
            return Some(IpNet::from(ip));
        }
        self.error(
            node,
            format!("invalid address or CIDR range {text:?} (write e.g. 10.0.0.0/8 or 192.0.2.7)"),
        );
        None
    }

    fn bound(&mut self, node: &Node) -> Option<Bound> {
        match &node.kind {
            Kind::Number(n) => n.as_f64().map(Bound::Number),
            Kind::String(_) => {
                let text = self.string(node)?;
                match DateTime::parse_from_rfc3339(&text) {
                    Ok(t) => Some(Bound::Time(t)),
                    Err(_) => {
                        self.error(
                            node,
                            format!("expected a number or an RFC 3339 time (2025-07-01T12:00:00Z), found {text:?}"),
                        );
                        None
                    }
                }
            }
            _ => {
                self.expected(node, "a number or an RFC 3339 time");
                None
            }
        }
    }

    /// A YAML value as JSON, with `${NAME}` substituted in every string.
    pub fn json_value(&mut self, node: &Node) -> Option<Value> {
        Some(match &node.kind {
            Kind::String(s) => Value::String(self.expand(node, s)?),
            Kind::Seq(items) => {
                let items: Option<Vec<Value>> = items.iter().map(|i| self.json_value(i)).collect();
                Value::Array(items?)
            }
            Kind::Map(entries) => {
                let mut map = serde_json::Map::new();
                for (k, v) in entries {
                    map.insert(key_text(k), self.json_value(v)?);
                }
                Value::Object(map)
            }
            _ => node.to_json(),
        })
    }
}

/// The one-line reason out of `regex`'s multi-line error text.
fn regex_reason(e: &regex::Error) -> String {
    let text = e.to_string();
    text.lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix("error: "))
        .map(str::to_string)
        .unwrap_or_else(|| text.lines().last().unwrap_or("").trim().to_string())
}
