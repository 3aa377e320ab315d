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
pub mod payload;
pub mod reference;
pub mod schema;
pub mod secrets;
pub mod snapshot;
pub mod trace;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

pub use condition::{Failure, MatchInput};
pub use decode::{DefaultedSecret, Diagnostic, MAX_BODY_CAP, Severity};
pub use load::{LoadError, load, load_with_env};
pub use model::{Action, Rule, RuleTest, Source, Step};
pub use payload::PayloadNeeds;
pub use schema::{PayloadSchema, SchemaMismatch};
pub use secrets::Secrets;
pub use trace::{Miss, RuleTrace, Trace};

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
    /// What each source's receiving path reads of a body, by position in
    /// `sources`.
    payload_needs: Vec<PayloadNeeds>,
    by_path: HashMap<String, usize>,
    source_by_name: HashMap<String, usize>,
    /// Rule name → position, so lookups cost the same at 10 or 10,000 rules.
    by_name: HashMap<String, usize>,
    rules: Vec<Rule>,
    /// `rules`' names, shared into every trace that lists them by name.
    names: Vec<Arc<str>>,
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
    /// SHA-256 (hex) of the rule files as read (`load::RuleSetHash`).
    hash: String,
}

impl RuleSet {
    pub fn sources(&self) -> &[Arc<Source>] {
        &self.sources
    }

    /// What receiving a delivery of `source` reads of its body (all of it
    /// for a source this set does not have).
    pub fn payload_needs(&self, source: &str) -> &PayloadNeeds {
        static ALL: PayloadNeeds = PayloadNeeds::All;
        self.source_by_name
            .get(source)
            .and_then(|&i| self.payload_needs.get(i))
            .unwrap_or(&ALL)
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

    /// SHA-256 (hex) of the rule files' paths (below the rules directory)
    /// and text before `${…}` substitution: equal on nodes that run the
    /// same files, whatever their secrets (`GET /api/nodes` compares it).
    pub fn hash(&self) -> &str {
        &self.hash
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

    /// The match trace of a delivery (SPEC §4): every rule of `source`
    /// whose `event:` admits the delivery, matched or not and for a miss
    /// the first failing condition; the rules whose `event:` excludes it by
    /// name only (`Trace::excluded`), so its cost does not grow with the
    /// rules of other events. [`RuleSet::expand`] says why those missed.
    pub fn evaluate(&self, source: &str, input: &MatchInput<'_>) -> Trace {
        let candidates = self.index.candidates(&self.rules, source, input.event);
        let mut next = candidates.iter().peekable();
        let all = self.index.rules_of(source);
        let mut rules = Vec::with_capacity(candidates.len());
        let mut excluded = Vec::with_capacity(all.len() - candidates.len().min(all.len()));
        for &i in all {
            let rule = &self.rules[i];
            if next.peek() != Some(&&i) {
                excluded.push(Arc::clone(&self.names[i]));
                continue;
            }
            next.next();
            let miss = rule
                .when
                .as_ref()
                .and_then(|c| c.eval(input).err())
                .map(|mut failure| {
                    // Redacted here, where the trace is built: it is stored and shown.
                    self.secrets.redact_failure(&mut failure);
                    Miss::Condition(failure)
                });
            rules.push(RuleTrace {
                rule: rule.name.clone(),
                matched: miss.is_none(),
                miss,
            });
        }
        Trace {
            event: self.secrets.redact(input.event),
            rules,
            excluded,
        }
    }

    /// `trace` with its rules excluded by event (recorded by name only)
    /// put back as misses, each with why: the rule's `event:` in this rule
    /// set against the stored event ("event push is not one of:
    /// pull_request"), or, for a rule this set no longer has on `source` or
    /// that now admits the event, that its `event:` excluded it then. In
    /// this set's load order; rules it no longer has last.
    pub fn expand(&self, source: &str, trace: &Trace) -> Trace {
        let mut rules = trace.rules.clone();
        for name in &trace.excluded {
            let now = self
                .rule(name)
                .filter(|r| r.sources.iter().any(|s| s == source))
                .filter(|r| {
                    !r.events.is_empty() && !r.events.iter().any(|p| p.matches(&trace.event))
                });
            let miss = match now {
                Some(rule) => Miss::Event {
                    event: trace.event.clone(),
                    expected: rule
                        .events
                        .iter()
                        .map(|p| self.secrets.redact(p.as_str()))
                        .collect(),
                },
                None => Miss::EventThen {
                    event: trace.event.clone(),
                },
            };
            rules.push(RuleTrace {
                rule: name.to_string(),
                matched: false,
                miss: Some(miss),
            });
        }
        let order: HashMap<&str, usize> = self
            .index
            .rules_of(source)
            .iter()
            .enumerate()
            .map(|(pos, &i)| (self.rules[i].name.as_str(), pos))
            .collect();
        rules.sort_by_key(|r| order.get(r.rule.as_str()).copied().unwrap_or(usize::MAX));
        Trace {
            event: trace.event.clone(),
            rules,
            excluded: Vec::new(),
        }
    }
}
