//! Which parts of a JSON body the receiving path reads, per source: worked
//! out once at load so that a delivery's body is converted into a `Value`
//! only where something looks (docs/PERFORMANCE.md). The rest of the body
//! is still checked in full — a body the full parse would refuse is refused
//! the same way — it is just not built.
//!
//! What reads a body while a delivery is received: the conditions of the
//! source's rules, the source's `event:` and `dedupe:` paths, its
//! verifier's event, dedupe key and handshake
//! ([`Scheme::payload_members`](crate::verify::Scheme::payload_members)),
//! its `schema:`, its `response:` template and its rules'
//! `concurrency.key` templates. Anything this module cannot pin to
//! top-level members (a template, a schema, `$..x`, `$[*]`, a filter that
//! reads `$`) makes the source read the whole body. Workers parse the
//! stored body in full again, so steps always see all of it.

use std::collections::BTreeSet;

use super::condition::{Condition, ConditionKind, Selector};
use super::model::{Extract, Rule, Source};

/// What a source's receiving path reads of a JSON object body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PayloadNeeds {
    /// All of it.
    All,
    /// Only these top-level members (possibly none: the body is validated
    /// and nothing of it is built).
    Members(BTreeSet<String>),
}

impl PayloadNeeds {
    /// What `source` and `rules` (the rules of that source) read.
    pub fn of<'r>(source: &Source, rules: impl IntoIterator<Item = &'r Rule>) -> PayloadNeeds {
        let mut members = BTreeSet::new();
        let whole = source.schema.is_some()
            || source.response.is_some()
            || !extract_members(source.event.as_ref(), &mut members)
            || !extract_members(source.dedupe.as_ref(), &mut members)
            || !verifier_members(source, &mut members)
            || !rules.into_iter().all(|rule| {
                rule.concurrency_key.is_none()
                    && rule
                        .when
                        .as_ref()
                        .is_none_or(|c| condition_members(c, &mut members))
            });
        if whole {
            PayloadNeeds::All
        } else {
            PayloadNeeds::Members(members)
        }
    }
}

/// Adds what the source's verifier reads; `false` when it may read anything.
fn verifier_members(source: &Source, members: &mut BTreeSet<String>) -> bool {
    let Some(scheme) = &source.verifier else {
        return true;
    };
    match scheme.payload_members() {
        Some(names) => {
            members.extend(names.iter().map(|n| (*n).to_owned()));
            true
        }
        None => false,
    }
}

fn extract_members(extract: Option<&Extract>, members: &mut BTreeSet<String>) -> bool {
    match extract {
        None | Some(Extract::Header(_)) => true,
        Some(Extract::Path(_, src)) => path_member(src, members),
    }
}

/// Adds the members the paths of `condition` read; `false` when one of
/// them may read anything.
fn condition_members(condition: &Condition, members: &mut BTreeSet<String>) -> bool {
    match &condition.kind {
        ConditionKind::All(items) | ConditionKind::Any(items) => {
            items.iter().all(|c| condition_members(c, members))
        }
        ConditionKind::Not(inner) => condition_members(inner, members),
        ConditionKind::Test(test) => match &test.selector {
            Selector::Path(_, src) => path_member(src, members),
            Selector::Header(_) | Selector::Query(_) | Selector::Event | Selector::SourceIp => true,
        },
    }
}

fn path_member(src: &str, members: &mut BTreeSet<String>) -> bool {
    match top_member(src) {
        Some(name) => {
            members.insert(name.to_owned());
            true
        }
        None => false,
    }
}

/// The one top-level member a JSONPath can select from, when its text says
/// so plainly: `$.name…` or `$['name']…` / `$["name"]…` (no escapes), and
/// no other `$` anywhere after the first character (a filter such as
/// `[?@.id == $.target]` reads another member). `None` for anything else
/// (`$`, `$..x`, `$.*`, `$[0]`, blank space between segments): such a path
/// may read the whole body.
pub fn top_member(src: &str) -> Option<&str> {
    let rest = src.strip_prefix('$')?;
    if rest.contains('$') {
        return None;
    }
    let (name, after) = if let Some(shorthand) = rest.strip_prefix('.') {
        let end = shorthand.find(['.', '[']).unwrap_or(shorthand.len());
        let name = &shorthand[..end];
        let mut chars = name.chars();
        let first_ok = chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || !c.is_ascii());
        if !first_ok || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || !c.is_ascii()) {
            return None;
        }
        (name, &shorthand[end..])
    } else {
        let quote = match rest.as_bytes() {
            [b'[', q @ (b'\'' | b'"'), ..] => *q as char,
            _ => return None,
        };
        let quoted = &rest[2..];
        let end = quoted.find(quote)?;
        let name = &quoted[..end];
        if name.contains('\\') {
            return None;
        }
        (name, quoted[end + 1..].strip_prefix(']')?)
    };
    // What follows must be another segment, or nothing.
    (after.is_empty() || after.starts_with(['.', '['])).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_names_its_top_member_only_when_plainly_written() {
        for (path, member) in [
            ("$.ref", Some("ref")),
            ("$.repository.full_name", Some("repository")),
            ("$.commits[*].message", Some("commits")),
            ("$.commits[0]", Some("commits")),
            ("$['ref']", Some("ref")),
            ("$[\"pull_request\"].merged", Some("pull_request")),
            ("$['a b']..x", Some("a b")),
            ("$._x1", Some("_x1")),
            ("$.café", Some("café")),
            ("$", None),
            ("$..ref", None),
            ("$.*", None),
            ("$[*]", None),
            ("$[0]", None),
            ("$[?@.x]", None),
            ("$.items[?@.id == $.target]", None),
            ("$['it\\'s']", None),
            ("$ .ref", None),
            ("$.1x", None),
            ("$['a']b", None),
            ("$.a-b", None),
        ] {
            assert_eq!(top_member(path), member, "{path}");
        }
    }
}
