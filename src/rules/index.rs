//! The rule index by (source, event), so that matching a delivery costs the
//! same however many rules other sources and other events have.

use std::collections::HashMap;

use super::model::{EventPattern, Rule};

/// Rules per source, bucketed by event.
#[derive(Debug, Default)]
pub struct Index {
    sources: HashMap<String, SourceRules>,
}

#[derive(Debug, Default)]
struct SourceRules {
    /// Every rule of the source, in load order (for full traces).
    all: Vec<usize>,
    /// Rules with an exact event name; `push` also catches `push.<action>`.
    exact: HashMap<String, Vec<usize>>,
    /// Rules with at least one glob event (checked one by one).
    globs: Vec<usize>,
    /// Rules with no `event:`: they see every event.
    any_event: Vec<usize>,
}

impl Index {
    pub fn build(rules: &[Rule]) -> Index {
        let mut index = Index::default();
        for (i, rule) in rules.iter().enumerate() {
            for source in &rule.sources {
                let bucket = index.sources.entry(source.clone()).or_default();
                if bucket.all.last() == Some(&i) {
                    continue; // the same source listed twice
                }
                bucket.all.push(i);
                if rule.events.is_empty() {
                    bucket.any_event.push(i);
                }
                let mut has_glob = false;
                for pattern in &rule.events {
                    match pattern {
                        EventPattern::Exact(name) => {
                            let list = bucket.exact.entry(name.clone()).or_default();
                            if list.last() != Some(&i) {
                                list.push(i);
                            }
                        }
                        EventPattern::Glob(_) => has_glob = true,
                    }
                }
                if has_glob {
                    bucket.globs.push(i);
                }
            }
        }
        index
    }

    /// Every rule of `source`, in load order.
    pub fn rules_of(&self, source: &str) -> &[usize] {
        self.sources
            .get(source)
            .map(|b| b.all.as_slice())
            .unwrap_or(&[])
    }

    /// The rules of `source` whose `event:` accepts `event`, in load order.
    pub fn candidates(&self, rules: &[Rule], source: &str, event: &str) -> Vec<usize> {
        let Some(bucket) = self.sources.get(source) else {
            return Vec::new();
        };
        let mut out: Vec<usize> = bucket.any_event.clone();
        // `pull_request.opened` is also looked up as `pull_request`.
        let mut key = event;
        loop {
            if let Some(list) = bucket.exact.get(key) {
                out.extend_from_slice(list);
            }
            match key.rfind('.') {
                Some(dot) => key = &key[..dot],
                None => break,
            }
        }
        for &i in &bucket.globs {
            if rules[i].events.iter().any(|p| p.matches(event)) {
                out.push(i);
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }
}
