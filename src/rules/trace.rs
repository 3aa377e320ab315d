//! The match trace stored with every delivery (SPEC §4): for each rule of
//! the source whose `event:` admits the delivery, matched or the first
//! condition that failed; the source's other rules by name only.
//! `RuleSet::evaluate` builds it, `RuleSet::expand` puts the named rules
//! back with why they missed, from the stored event and the rules' `event:`.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::Failure;

/// The match decision for the rules of a delivery's source. Stored with
/// the delivery, so "why didn't my rule fire?" has an answer later.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trace {
    pub event: String,
    /// The rules whose `event:` admits the delivery, in load order. An
    /// expanded trace (and one stored before the name-only form) also
    /// holds the others, each with why its `event:` excluded the delivery.
    pub rules: Vec<RuleTrace>,
    /// The rules whose `event:` excludes the delivery, by name, in load
    /// order: why is worked out from the rules (`RuleSet::expand`). Shared
    /// with the rule set's own copy of each name: at 10,000 rules a
    /// delivery lists ~100 of them, and copying each cost a few µs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub excluded: Vec<Arc<str>>,
}

impl Trace {
    pub fn matched(&self) -> impl Iterator<Item = &str> {
        self.rules
            .iter()
            .filter(|r| r.matched)
            .map(|r| r.rule.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleTrace {
    pub rule: String,
    pub matched: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub miss: Option<Miss>,
}

/// Why a rule did not match.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "reason")]
pub enum Miss {
    /// The rule's `event:` does not accept the delivery's event.
    Event {
        event: String,
        expected: Vec<String>,
    },
    /// The rule's `event:` excluded the delivery when it arrived; the rule
    /// has since been removed from the source or changed to admit it.
    EventThen { event: String },
    /// A `when:` condition failed.
    Condition(Failure),
}

impl std::fmt::Display for Miss {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Miss::Event { event, expected } => {
                let event = if event.is_empty() { "(none)" } else { event };
                write!(f, "event {event} is not one of: {}", expected.join(", "))
            }
            Miss::EventThen { event } => {
                let event = if event.is_empty() { "(none)" } else { event };
                write!(
                    f,
                    "its event: excluded {event} when the delivery arrived (the rule has changed since)"
                )
            }
            Miss::Condition(failure) => write!(f, "{failure}"),
        }
    }
}
