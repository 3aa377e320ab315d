//! Rules: YAML files → a validated, compiled [`RuleSet`], and matching a
//! delivery against it with a trace of why each rule did or did not match.

pub mod condition;
pub mod decode;
pub mod editor_schema;
pub mod index;
pub mod jsonpath;
pub mod load;
pub mod model;
pub mod node;
pub mod reference;
pub mod schema;
pub mod secrets;
pub mod snapshot;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use condition::{Failure, MatchInput};
pub use decode::{DefaultedSecret, Diagnostic, MAX_BODY_CAP, Severity};
pub use load::{LoadError, load, load_with_env};
pub use model::{Action, Rule, RuleTest, Source, Step};
pub use schema::{PayloadSchema, SchemaMismatch};
pub use secrets::Secrets;

use crate::template::Templates;
use index::Index;

/// The running rule set, swapped whole on reload: readers never block, and
/// a request keeps the set it started with.
pub type SharedRules = Arc<arc_swap::ArcSwap<RuleSet>>;

/// A fully valid set of sources, rules and tests. Only a `RuleSet` is ever
/// run: the code that matches and executes never sees raw YAML.
#[derive(Debug)]
pub struct RuleSet {
    sources: Vec<Arc<Source>>,
    by_path: HashMap<String, usize>,
    source_by_name: HashMap<String, usize>,
    /// Rule name → position, so lookups cost the same at 10 or 10,000 rules.
    by_name: HashMap<String, usize>,
    rules: Vec<Rule>,
    tests: Vec<RuleTest>,
    index: Index,
    templates: Templates,
    secrets: Secrets,
    warnings: Vec<Diagnostic>,
    /// Verifier secrets that came from a `${NAME:-default}` default.
    defaulted_secrets: Vec<DefaultedSecret>,
    /// Tests that cannot run (an unreadable `payload_file`), as errors.
    test_problems: Vec<Diagnostic>,
    files: Vec<PathBuf>,
    /// The files read by `${file:PATH}` secrets.
    secret_files: Vec<PathBuf>,
}

impl RuleSet {
    pub fn sources(&self) -> &[Arc<Source>] {
        &self.sources
    }

    pub fn source(&self, name: &str) -> Option<&Arc<Source>> {
        self.source_by_name
            .get(name)
            .and_then(|&i| self.sources.get(i))
    }

    pub fn source_by_path(&self, path: &str) -> Option<&Arc<Source>> {
        self.by_path.get(path).and_then(|&i| self.sources.get(i))
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    pub fn rule(&self, name: &str) -> Option<&Rule> {
        self.rule_index(name).map(|i| &self.rules[i])
    }

    /// The position of the rule named `name` in `rules()`.
    pub fn rule_index(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }

    pub fn tests(&self) -> &[RuleTest] {
        &self.tests
    }

    pub fn templates(&self) -> &Templates {
        &self.templates
    }

    pub fn secrets(&self) -> &Secrets {
        &self.secrets
    }

    /// Warnings found while loading (open endpoints, unused sources).
    pub fn warnings(&self) -> &[Diagnostic] {
        &self.warnings
    }

    /// Verifier secrets that came from a `${NAME:-default}` default because
    /// the variable was not set (each is also a warning): `serve` refuses
    /// to start with any unless it runs with `--dev`.
    pub fn defaulted_secrets(&self) -> &[DefaultedSecret] {
        &self.defaulted_secrets
    }

    /// Tests that cannot run, such as one whose `payload_file` cannot be
    /// read: errors for `check` and `test`, only warnings (in `warnings`)
    /// for `serve`, which needs no test files.
    pub fn test_problems(&self) -> &[Diagnostic] {
        &self.test_problems
    }

    /// The files `${file:PATH}` secrets were read from (as written, with
    /// symlinks unresolved): the reloader watches their directories.
    pub fn secret_files(&self) -> &[PathBuf] {
        &self.secret_files
    }

    /// The files the set was loaded from.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// The rules of `source` that match, in load order. The fast path: only
    /// rules indexed under the delivery's event are looked at.
    pub fn matching<'a>(&'a self, source: &str, input: &MatchInput<'_>) -> Vec<&'a Rule> {
        self.index
            .candidates(&self.rules, source, input.event)
            .into_iter()
            .map(|i| &self.rules[i])
            .filter(|r| r.when.as_ref().is_none_or(|c| c.eval(input).is_ok()))
            .collect()
    }

    /// Every rule of `source`, matched or not, and for a miss why.
    pub fn evaluate(&self, source: &str, input: &MatchInput<'_>) -> Trace {
        let candidates = self.index.candidates(&self.rules, source, input.event);
        let mut next = candidates.iter().peekable();
        // Redacted here, where the trace is built: it is stored and shown.
        let event = self.secrets.redact(input.event);
        let rules = self
            .index
            .rules_of(source)
            .iter()
            .map(|&i| {
                let rule = &self.rules[i];
                let candidate = next.peek() == Some(&&i);
                if candidate {
                    next.next();
                }
                let miss = if !candidate {
                    Some(Miss::Event {
                        event: event.clone(),
                        expected: rule
                            .events
                            .iter()
                            .map(|p| self.secrets.redact(p.as_str()))
                            .collect(),
                    })
                } else {
                    rule.when
                        .as_ref()
                        .and_then(|c| c.eval(input).err())
                        .map(|mut failure| {
                            self.secrets.redact_failure(&mut failure);
                            Miss::Condition(failure)
                        })
                };
                RuleTrace {
                    rule: rule.name.clone(),
                    matched: miss.is_none(),
                    miss,
                }
            })
            .collect();
        Trace { event, rules }
    }
}

/// The match decision for every rule of a delivery's source. Stored with
/// the delivery, so "why didn't my rule fire?" has an answer later.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trace {
    pub event: String,
    pub rules: Vec<RuleTrace>,
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
            Miss::Condition(failure) => write!(f, "{failure}"),
        }
    }
}
