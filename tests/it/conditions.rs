//! Every selector and operator of SPEC §2.2, with the edge cases users hit:
//! missing paths, multi-value paths, type mismatches, times, CIDRs.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::PathBuf;

use hookflow::rules::condition::{Condition, MatchInput};
use hookflow::rules::decode::Decoder;
use hookflow::rules::node;
use hookflow::template::Templates;
use serde_json::{Value, json};

/// Decodes one condition; panics with the diagnostics if it is invalid.
fn cond(yaml: &str) -> Condition {
    let (c, errors) = try_cond(yaml);
    assert!(errors.is_empty(), "unexpected errors: {errors:?}");
    c.expect("a condition")
}

fn try_cond(yaml: &str) -> (Option<Condition>, Vec<String>) {
    let root = node::parse(yaml).expect("valid YAML");
    let mut diagnostics = Vec::new();
    let mut secrets = BTreeSet::new();
    let mut templates = Templates::new();
    let env = |name: &str| (name == "BRANCH").then(|| "refs/heads/main".to_string());
    let mut dec = Decoder::new(
        "t.yaml".into(),
        &mut diagnostics,
        &env,
        &mut secrets,
        &mut templates,
        PathBuf::new(),
    );
    let c = dec.condition(&root);
    (c, diagnostics.iter().map(ToString::to_string).collect())
}

struct Req {
    payload: Value,
    headers: Vec<(String, String)>,
    query: Vec<(String, String)>,
    event: String,
    ip: Option<IpAddr>,
}

fn req(payload: Value) -> Req {
    Req {
        payload,
        headers: vec![
            ("x-github-event".into(), "push".into()),
            ("x-multi".into(), "a".into()),
            ("x-multi".into(), "b".into()),
        ],
        query: vec![("token".into(), "abc".into())],
        event: "push".into(),
        ip: "192.0.2.7".parse().ok(),
    }
}

impl Req {
    fn input(&self) -> MatchInput<'_> {
        MatchInput {
            payload: &self.payload,
            headers: &self.headers,
            query: &self.query,
            event: &self.event,
            source_ip: self.ip,
        }
    }
}

fn holds(yaml: &str, r: &Req) -> bool {
    cond(yaml).eval(&r.input()).is_ok()
}

fn push() -> Req {
    req(json!({
        "ref": "refs/heads/main",
        "size": 3,
        "ratio": 0.5,
        "private": false,
        "tags": ["a", "b"],
        "commits": [
            {"message": "fix: x [deploy]", "author": "ann"},
            {"message": "docs", "author": "bob"}
        ],
        "pushed_at": "2025-07-01T12:00:00Z",
        "nothing": null
    }))
}

#[test]
fn equals_is_typed() {
    let r = push();
    assert!(holds("{path: $.ref, equals: refs/heads/main}", &r));
    assert!(holds("{path: $.size, equals: 3}", &r));
    assert!(holds("{path: $.size, equals: 3.0}", &r));
    assert!(
        !holds("{path: $.size, equals: \"3\"}", &r),
        "a number never equals a string"
    );
    assert!(holds("{path: $.private, equals: false}", &r));
    assert!(!holds("{path: $.private, equals: \"false\"}", &r));
    assert!(holds("{path: $.nothing, equals: null}", &r));
    assert!(holds("{path: $.tags, equals: [a, b]}", &r));
}

#[test]
fn not_equals_in_and_not_in() {
    let r = push();
    assert!(holds("{path: $.ref, not_equals: refs/heads/dev}", &r));
    assert!(!holds("{path: $.ref, not_equals: refs/heads/main}", &r));
    assert!(holds(
        "{path: $.ref, in: [refs/heads/dev, refs/heads/main]}",
        &r
    ));
    assert!(!holds("{path: $.size, in: [\"3\"]}", &r));
    assert!(holds("{path: $.ref, not_in: [refs/heads/dev]}", &r));
    assert!(!holds("{path: $.ref, not_in: [refs/heads/main]}", &r));
}

#[test]
fn contains_is_substring_or_element() {
    let r = push();
    assert!(holds("{path: $.ref, contains: heads}", &r));
    assert!(holds("{path: $.tags, contains: b}", &r));
    assert!(!holds("{path: $.tags, contains: c}", &r));
    assert!(
        !holds("{path: $.size, contains: \"3\"}", &r),
        "numbers have no substrings"
    );
}

#[test]
fn starts_ends_and_matches_apply_to_strings_only() {
    let r = push();
    assert!(holds("{path: $.ref, starts_with: refs/heads/}", &r));
    assert!(holds("{path: $.ref, ends_with: /main}", &r));
    assert!(!holds("{path: $.size, starts_with: \"3\"}", &r));
    assert!(holds(
        "{path: $.ref, matches: '^refs/heads/(main|master)$'}",
        &r
    ));
    assert!(!holds("{path: $.size, matches: '3'}", &r));
}

#[test]
fn multi_value_paths_hold_if_any_value_does() {
    let r = push();
    assert!(holds(
        "{path: '$.commits[*].message', matches: '\\[deploy\\]'}",
        &r
    ));
    assert!(holds("{path: '$.commits[*].author', equals: bob}", &r));
    assert!(!holds("{path: '$.commits[*].author', equals: eve}", &r));
}

#[test]
fn every_requires_all_values_and_at_least_one() {
    let r = push();
    assert!(!holds(
        "{path: '$.commits[*].message', matches: deploy, every: true}",
        &r
    ));
    assert!(holds(
        "{path: '$.commits[*].author', in: [ann, bob], every: true}",
        &r
    ));
    assert!(!holds("{path: '$.missing[*]', equals: 1, every: true}", &r));
}

#[test]
fn a_path_that_selects_nothing_fails_and_says_so() {
    let r = push();
    let c = cond("{path: $.head_commit.id, equals: abc}");
    let input = r.input();
    let failure = c.eval(&input).unwrap_err();
    assert_eq!(failure.saw, None);
    assert!(
        failure.to_string().contains("path selects nothing"),
        "{failure}"
    );
    assert!(
        failure
            .to_string()
            .starts_with("t.yaml:1:1: path $.head_commit.id equals \"abc\""),
        "{failure}"
    );
}

#[test]
fn a_failure_reports_the_values_it_saw() {
    let r = push();
    let c = cond("{path: $.ref, equals: refs/heads/dev}");
    let input = r.input();
    let failure = c.eval(&input).unwrap_err();
    assert_eq!(failure.saw, Some(vec![json!("refs/heads/main")]));
}

#[test]
fn numeric_comparisons() {
    let r = push();
    assert!(holds("{path: $.size, gt: 2}", &r));
    assert!(!holds("{path: $.size, gt: 3}", &r));
    assert!(holds("{path: $.size, gte: 3}", &r));
    assert!(holds("{path: $.ratio, lt: 1}", &r));
    assert!(holds("{path: $.ratio, lte: 0.5}", &r));
    assert!(
        !holds("{path: $.ref, gt: 1}", &r),
        "a string is not a number"
    );
}

#[test]
fn rfc3339_timestamps_compare_as_times() {
    let r = push();
    assert!(holds("{path: $.pushed_at, gt: '2025-07-01T11:00:00Z'}", &r));
    // Same instant written in another offset.
    assert!(holds(
        "{path: $.pushed_at, gte: '2025-07-01T14:00:00+02:00'}",
        &r
    ));
    assert!(!holds(
        "{path: $.pushed_at, lt: '2025-07-01T14:00:00+02:00'}",
        &r
    ));
    assert!(!holds("{path: $.ref, gt: '2025-07-01T11:00:00Z'}", &r));
}

#[test]
fn exists_true_and_false() {
    let r = push();
    assert!(holds("{path: $.ref, exists: true}", &r));
    assert!(
        holds("{path: $.nothing, exists: true}", &r),
        "a null value exists"
    );
    assert!(holds("{path: $.nope, exists: false}", &r));
    assert!(!holds("{path: $.ref, exists: false}", &r));
    assert!(holds("{header: X-Missing, exists: false}", &r));
}

#[test]
fn headers_are_case_insensitive_and_multi_valued() {
    let r = push();
    assert!(holds("{header: X-GitHub-Event, equals: push}", &r));
    assert!(holds("{header: x-github-event, equals: push}", &r));
    assert!(holds("{header: X-Multi, equals: b}", &r));
    assert!(!holds("{header: X-Multi, equals: b, every: true}", &r));
}

#[test]
fn query_event_and_source_ip_selectors() {
    let r = push();
    assert!(holds("{query: token, equals: abc}", &r));
    assert!(
        !holds("{query: Token, exists: true}", &r),
        "query names are case-sensitive"
    );
    assert!(holds("{event: true, equals: push}", &r));
    assert!(holds("{event: ~, starts_with: pu}", &r));
    assert!(holds("{source_ip: true, cidr: 192.0.2.0/24}", &r));
    assert!(holds(
        "{source_ip: true, cidr: [10.0.0.0/8, 192.0.2.7]}",
        &r
    ));
    assert!(!holds("{source_ip: true, cidr: 10.0.0.0/8}", &r));
    let mut no_ip = push();
    no_ip.ip = None;
    assert!(!holds("{source_ip: true, cidr: 0.0.0.0/0}", &no_ip));
}

#[test]
fn combinators_and_lists() {
    let r = push();
    assert!(holds(
        "[{path: $.ref, equals: refs/heads/main}, {path: $.size, gt: 1}]",
        &r
    ));
    assert!(!holds(
        "[{path: $.ref, equals: refs/heads/main}, {path: $.size, gt: 5}]",
        &r
    ));
    assert!(holds(
        "{any: [{path: $.size, gt: 5}, {path: $.private, equals: false}]}",
        &r
    ));
    assert!(!holds(
        "{any: [{path: $.size, gt: 5}, {path: $.private, equals: true}]}",
        &r
    ));
    assert!(holds(
        "{all: [{path: $.size, gt: 1}, {path: $.size, lt: 5}]}",
        &r
    ));
    assert!(holds("{not: {path: $.ref, equals: refs/heads/dev}}", &r));
    assert!(!holds("{not: {path: $.ref, equals: refs/heads/main}}", &r));
}

#[test]
fn any_failure_lists_every_alternative() {
    let r = push();
    let c = cond("{any: [{path: $.size, gt: 5}, {path: $.nope, exists: true}]}");
    let input = r.input();
    let failure = c.eval(&input).unwrap_err();
    assert_eq!(failure.alternatives.len(), 2);
}

#[test]
fn env_values_are_substituted_in_operands() {
    let r = push();
    assert!(holds("{path: $.ref, equals: '${BRANCH}'}", &r));
}

#[test]
fn invalid_conditions_are_rejected_with_locations() {
    let cases = [
        ("{path: '$[', equals: 1}", "t.yaml:1:8: invalid JSONPath"),
        ("{path: $.a, matches: '('}", "t.yaml:1:22: invalid regex"),
        (
            "{path: $.a, gt: soon}",
            "expected a number or an RFC 3339 time",
        ),
        (
            "{path: $.a, cidr: 300.1.1.1/8}",
            "invalid address or CIDR range",
        ),
        ("{path: $.a}", "has no operator"),
        ("{equals: 1}", "has no selector"),
        ("{path: $.a, equal: 1}", "(did you mean `equals`?)"),
        ("{path: $.a, equals: 1, matches: x}", "one operator"),
        ("{path: $.a, header: x, equals: 1}", "one selector"),
        ("{any: []}", "needs at least one condition"),
        (
            "{not: {path: $.a, equals: 1}, path: $.b}",
            "must be the only key",
        ),
        ("{path: $.a, in: x}", "expected a list after `in`"),
        ("{event: push, equals: x}", "takes no value"),
    ];
    for (yaml, expected) in cases {
        let (c, errors) = try_cond(yaml);
        assert!(c.is_none(), "{yaml} should be rejected");
        assert!(
            errors.iter().any(|e| e.contains(expected)),
            "{yaml}: expected an error containing {expected:?}, got {errors:?}"
        );
    }
}
