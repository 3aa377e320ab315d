//! What a run executes and acts on: the rule definition it was queued with
//! (the loaded rule when unchanged, else its stored snapshot compiled on
//! its own). The delivery is rebuilt by `Delivery::from_record`.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Mutex};

use serde_json::Value;

use crate::rules::snapshot::{self, StandaloneRule};
use crate::rules::{Rule, RuleSet, Secrets, SharedRules};
use crate::store::RunRecord;
use crate::template::Templates;

/// Compiled snapshots kept; the cache is emptied when it is full (old
/// definitions stop being queued, so it refills with the live ones).
const MAX_SNAPSHOTS: usize = 256;

/// The compiled rule a run executes, with its templates and secrets.
pub(super) enum Resolved {
    /// The current rule set has the rule exactly as the run was queued.
    Loaded { set: Arc<RuleSet>, index: usize },
    /// The rule changed or went away since: its stored definition.
    Snapshot(Arc<StandaloneRule>),
}

impl Resolved {
    pub(super) fn rule(&self) -> &Rule {
        match self {
            Resolved::Loaded { set, index } => &set.rules()[*index],
            Resolved::Snapshot(s) => &s.rule,
        }
    }

    pub(super) fn templates(&self) -> &Templates {
        match self {
            Resolved::Loaded { set, .. } => set.templates(),
            Resolved::Snapshot(s) => &s.templates,
        }
    }

    pub(super) fn secrets(&self) -> &Secrets {
        match self {
            Resolved::Loaded { set, .. } => set.secrets(),
            Resolved::Snapshot(s) => &s.secrets,
        }
    }
}

/// Stored definitions compiled once, by the hash of their JSON.
#[derive(Default)]
pub(super) struct Snapshots {
    compiled: Mutex<HashMap<u64, Vec<Arc<StandaloneRule>>>>,
}

impl Snapshots {
    /// The rule `run` executes, or why it cannot run.
    pub(super) fn resolve(&self, rules: &SharedRules, run: &RunRecord) -> Result<Resolved, String> {
        let set = rules.load_full();
        if let Some(index) = set
            .rule_index(&run.rule)
            .filter(|&i| set.rules()[i].definition == run.definition)
        {
            return Ok(Resolved::Loaded { set, index });
        }
        self.compile(&run.definition).map(Resolved::Snapshot)
    }

    fn compile(&self, definition: &Value) -> Result<Arc<StandaloneRule>, String> {
        let key = {
            let mut hasher = DefaultHasher::new();
            definition.to_string().hash(&mut hasher);
            hasher.finish()
        };
        let cached = self
            .lock()
            .get(&key)
            .and_then(|same_hash| same_hash.iter().find(|s| s.rule.definition == *definition))
            .cloned();
        if let Some(compiled) = cached {
            return Ok(compiled);
        }
        // Compiled outside the lock: other runs need not wait for it.
        let compiled = Arc::new(snapshot::compile(definition).map_err(|diagnostics| {
            let problems: Vec<String> = diagnostics.iter().map(|d| d.message.clone()).collect();
            format!(
                "the rule definition this run was queued with no longer compiles: {}",
                problems.join("; ")
            )
        })?);
        let mut cache = self.lock();
        if cache.len() >= MAX_SNAPSHOTS {
            cache.clear();
        }
        cache.entry(key).or_default().push(compiled.clone());
        Ok(compiled)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Vec<Arc<StandaloneRule>>>> {
        self.compiled.lock().unwrap_or_else(|p| p.into_inner())
    }
}
