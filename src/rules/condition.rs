//! Compiled conditions and their evaluation.
//!
//! Every JSONPath and regex is compiled at load time. Evaluation does not
//! return a bare bool: a miss carries the first condition that failed, where
//! it is written, and what its selector saw, so "why didn't my rule fire?"
//! has an answer.

use std::cmp::Ordering;
use std::fmt;
use std::net::IpAddr;

use chrono::{DateTime, FixedOffset};
use ipnet::IpNet;
use regex::Regex;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json_path::JsonPath;

use super::node::Loc;

/// The data a condition looks at.
#[derive(Debug, Clone, Copy)]
pub struct MatchInput<'a> {
    /// The parsed body (or, for a step's `if:`, the whole template context).
    pub payload: &'a Value,
    /// Request headers with lower-case names.
    pub headers: &'a [(String, String)],
    pub query: &'a [(String, String)],
    pub event: &'a str,
    pub source_ip: Option<IpAddr>,
}

/// A compiled condition and where it was written.
#[derive(Debug, Clone)]
pub struct Condition {
    pub loc: Loc,
    pub kind: ConditionKind,
}

#[derive(Debug, Clone)]
pub enum ConditionKind {
    All(Vec<Condition>),
    Any(Vec<Condition>),
    Not(Box<Condition>),
    Test(Test),
}

/// One selector, one operator.
#[derive(Debug, Clone)]
pub struct Test {
    pub selector: Selector,
    pub op: Op,
    /// `every: true`: all selected values (and at least one) must satisfy.
    pub every: bool,
}

#[derive(Debug, Clone)]
pub enum Selector {
    Path(JsonPath, String),
    /// Lower-cased header name.
    Header(String),
    Query(String),
    Event,
    SourceIp,
}

#[derive(Debug, Clone)]
pub enum Op {
    Equals(Value),
    NotEquals(Value),
    In(Vec<Value>),
    NotIn(Vec<Value>),
    Contains(Value),
    StartsWith(String),
    EndsWith(String),
    Matches(Regex),
    Compare(Ordering, bool, Bound),
    Exists(bool),
    Cidr(Vec<IpNet>),
}

/// The right-hand side of `gt`/`gte`/`lt`/`lte`.
#[derive(Debug, Clone)]
pub enum Bound {
    Number(f64),
    Time(DateTime<FixedOffset>),
}

/// Why a condition did not hold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Failure {
    /// `file:line:column` of the condition.
    pub at: String,
    /// The condition as written, e.g. `path $.ref equals "refs/heads/main"`.
    pub condition: String,
    /// The values the selector saw; `None` when it selected nothing.
    pub saw: Option<Vec<Value>>,
    /// For `any:`, why each alternative failed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alternatives: Vec<Failure>,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} — ", self.at, self.condition)?;
        match &self.saw {
            None => f.write_str("path selects nothing")?,
            Some(values) if values.is_empty() => f.write_str("saw nothing")?,
            Some(values) => {
                let shown: Vec<String> = values.iter().map(Value::to_string).collect();
                write!(f, "saw {}", shown.join(", "))?;
            }
        }
        for alt in &self.alternatives {
            write!(f, "\n    - {alt}")?;
        }
        Ok(())
    }
}

/// How many selected values a trace keeps, and how long a string in it may be.
const SAW_MAX_VALUES: usize = 5;
const SAW_MAX_CHARS: usize = 200;

impl Condition {
    /// `Ok` if the condition holds, else the first failure.
    pub fn eval(&self, input: &MatchInput<'_>) -> Result<(), Failure> {
        match &self.kind {
            ConditionKind::All(items) => items.iter().try_for_each(|c| c.eval(input)),
            ConditionKind::Any(items) => {
                let mut alternatives = Vec::with_capacity(items.len());
                for item in items {
                    match item.eval(input) {
                        Ok(()) => return Ok(()),
                        Err(f) => alternatives.push(f),
                    }
                }
                Err(Failure {
                    at: self.loc.to_string(),
                    condition: format!("none of {} alternatives held", items.len()),
                    saw: Some(Vec::new()),
                    alternatives,
                })
            }
            ConditionKind::Not(inner) => match inner.eval(input) {
                Err(_) => Ok(()),
                Ok(()) => Err(Failure {
                    at: self.loc.to_string(),
                    condition: format!("not ({})", inner.describe()),
                    saw: inner.selected(input).map(trim_values),
                    alternatives: Vec::new(),
                }),
            },
            ConditionKind::Test(test) => {
                let values = test.selector.select(input);
                if test.holds(&values) {
                    Ok(())
                } else {
                    Err(Failure {
                        at: self.loc.to_string(),
                        condition: self.describe(),
                        saw: if values.is_empty() && matches!(test.selector, Selector::Path(..)) {
                            None
                        } else {
                            Some(trim_values(values))
                        },
                        alternatives: Vec::new(),
                    })
                }
            }
        }
    }

    /// What a test's selector picks (for `not:` traces).
    fn selected(&self, input: &MatchInput<'_>) -> Option<Vec<Value>> {
        match &self.kind {
            ConditionKind::Test(t) => Some(t.selector.select(input)),
            _ => None,
        }
    }

    /// The condition as a user wrote it, in one line.
    pub fn describe(&self) -> String {
        match &self.kind {
            ConditionKind::All(items) => format!("all of {} conditions", items.len()),
            ConditionKind::Any(items) => format!("any of {} conditions", items.len()),
            ConditionKind::Not(inner) => format!("not ({})", inner.describe()),
            ConditionKind::Test(t) => {
                let every = if t.every { "every " } else { "" };
                format!("{every}{} {}", t.selector, t.op)
            }
        }
    }
}

fn trim_values(values: Vec<Value>) -> Vec<Value> {
    values
        .into_iter()
        .take(SAW_MAX_VALUES)
        .map(|v| match v {
            Value::String(s) if s.chars().count() > SAW_MAX_CHARS => {
                let cut: String = s.chars().take(SAW_MAX_CHARS).collect();
                Value::String(format!("{cut}…"))
            }
            Value::Array(_) | Value::Object(_) => {
                let text = v.to_string();
                if text.chars().count() > SAW_MAX_CHARS {
                    let cut: String = text.chars().take(SAW_MAX_CHARS).collect();
                    Value::String(format!("{cut}…"))
                } else {
                    v
                }
            }
            other => other,
        })
        .collect()
}

impl Selector {
    /// Every value the selector picks, owned (traces outlive the input).
    pub fn select(&self, input: &MatchInput<'_>) -> Vec<Value> {
        match self {
            Selector::Path(path, _) => path
                .query(input.payload)
                .all()
                .into_iter()
                .cloned()
                .collect(),
            Selector::Header(name) => pairs_named(input.headers, name, true),
            Selector::Query(name) => pairs_named(input.query, name, false),
            Selector::Event => vec![Value::String(input.event.to_string())],
            Selector::SourceIp => input
                .source_ip
                .map(|ip| vec![Value::String(ip.to_string())])
                .unwrap_or_default(),
        }
    }
}

fn pairs_named(pairs: &[(String, String)], name: &str, ignore_case: bool) -> Vec<Value> {
    pairs
        .iter()
        .filter(|(k, _)| {
            if ignore_case {
                k.eq_ignore_ascii_case(name)
            } else {
                k == name
            }
        })
        .map(|(_, v)| Value::String(v.clone()))
        .collect()
}

impl Test {
    fn holds(&self, values: &[Value]) -> bool {
        if let Op::Exists(want) = self.op {
            let present = match self.selector {
                Selector::Event => values.iter().any(|v| v.as_str() != Some("")),
                _ => !values.is_empty(),
            };
            return present == want;
        }
        if self.every {
            !values.is_empty() && values.iter().all(|v| self.op.holds(v))
        } else {
            values.iter().any(|v| self.op.holds(v))
        }
    }
}

impl Op {
    fn holds(&self, value: &Value) -> bool {
        match self {
            Op::Equals(want) => json_eq(value, want),
            Op::NotEquals(want) => !json_eq(value, want),
            Op::In(list) => list.iter().any(|w| json_eq(value, w)),
            Op::NotIn(list) => !list.iter().any(|w| json_eq(value, w)),
            Op::Contains(want) => match (value, want) {
                (Value::String(s), Value::String(w)) => s.contains(w.as_str()),
                (Value::Array(items), w) => items.iter().any(|i| json_eq(i, w)),
                _ => false,
            },
            Op::StartsWith(p) => value.as_str().is_some_and(|s| s.starts_with(p.as_str())),
            Op::EndsWith(p) => value.as_str().is_some_and(|s| s.ends_with(p.as_str())),
            Op::Matches(re) => value.as_str().is_some_and(|s| re.is_match(s)),
            Op::Compare(ord, or_equal, bound) => compare(value, bound)
                .is_some_and(|o| o == *ord || (*or_equal && o == Ordering::Equal)),
            Op::Exists(_) => true,
            Op::Cidr(nets) => value
                .as_str()
                .and_then(|s| s.trim().parse::<IpAddr>().ok())
                .is_some_and(|ip| nets.iter().any(|n| n.contains(&ip))),
        }
    }
}

/// Typed equality: `1` equals `1.0` but never `"1"`.
pub fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => x == y,
            _ => x.as_f64() == y.as_f64(),
        },
        _ => a == b,
    }
}

fn compare(value: &Value, bound: &Bound) -> Option<Ordering> {
    match bound {
        Bound::Number(b) => value.as_f64().and_then(|v| v.partial_cmp(b)),
        Bound::Time(b) => {
            let v = DateTime::parse_from_rfc3339(value.as_str()?).ok()?;
            Some(v.cmp(b))
        }
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Selector::Path(_, src) => write!(f, "path {src}"),
            Selector::Header(name) => write!(f, "header {name}"),
            Selector::Query(name) => write!(f, "query {name}"),
            Selector::Event => f.write_str("event"),
            Selector::SourceIp => f.write_str("source_ip"),
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |items: &[Value]| Value::Array(items.to_vec()).to_string();
        match self {
            Op::Equals(v) => write!(f, "equals {v}"),
            Op::NotEquals(v) => write!(f, "not_equals {v}"),
            Op::In(items) => write!(f, "in {}", list(items)),
            Op::NotIn(items) => write!(f, "not_in {}", list(items)),
            Op::Contains(v) => write!(f, "contains {v}"),
            Op::StartsWith(s) => write!(f, "starts_with {s:?}"),
            Op::EndsWith(s) => write!(f, "ends_with {s:?}"),
            Op::Matches(re) => write!(f, "matches /{}/", re.as_str()),
            Op::Compare(ord, or_equal, bound) => {
                let name = match (ord, or_equal) {
                    (Ordering::Greater, false) => "gt",
                    (Ordering::Greater, true) => "gte",
                    (_, false) => "lt",
                    (_, true) => "lte",
                };
                match bound {
                    Bound::Number(n) => write!(f, "{name} {n}"),
                    Bound::Time(t) => write!(f, "{name} {}", t.to_rfc3339()),
                }
            }
            Op::Exists(b) => write!(f, "exists {b}"),
            Op::Cidr(nets) => {
                let nets: Vec<String> = nets.iter().map(IpNet::to_string).collect();
                write!(f, "cidr [{}]", nets.join(", "))
            }
        }
    }
}
