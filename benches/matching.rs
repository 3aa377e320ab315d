//! Matching cost against rule-set size (issue: foundation acceptance).
//!
//! One real GitHub push payload is matched against 10, 1,000 and 10,000
//! rules spread over 100 sources. Rule `i` belongs to source `s{i % 100}`
//! and to event `push` when `i < 100`, else to an event of its own, so the
//! (s000, push) bucket holds one rule at every size: what grows is the
//! number of rules of *other* sources and *other* events, which the index
//! must make free. `matching` is the fast path the server uses to decide;
//! `evaluate` also builds the full trace (one entry per rule of the source).

use std::fmt::Write;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use hookflow::delivery::Delivery;
use hookflow::rules::{RuleSet, load};

const SOURCES: usize = 100;

fn rule_set(rules: usize) -> (tempfile::TempDir, RuleSet) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut sources = String::from("sources:\n");
    for s in 0..SOURCES {
        let _ = writeln!(
            sources,
            "  s{s:03}:\n    verify:\n      github: {{ secret: bench-secret }}"
        );
    }
    std::fs::write(dir.path().join("sources.yaml"), sources).expect("write sources");
    // One file per source, as a team would group them.
    let mut files = vec![String::from("rules:\n"); SOURCES];
    for i in 0..rules {
        let yaml = &mut files[i % SOURCES];
        let event = if i < SOURCES {
            "push".to_string()
        } else {
            format!("event-{i}")
        };
        let _ = write!(
            yaml,
            "  - name: rule-{i}\n    source: s{:03}\n    event: {event}\n    when:\n      - path: $.ref\n        in: [refs/heads/main, refs/heads/master]\n      - path: '$.commits[*].message'\n        matches: '(?i)initial|deploy'\n      - not:\n          path: $.pusher.name\n          equals: dependabot[bot]\n    actions:\n      - http: {{ url: 'http://127.0.0.1:9/{{{{payload.after}}}}' }}\n",
            i % SOURCES
        );
    }
    for (s, yaml) in files.iter().enumerate() {
        if yaml.len() > "rules:\n".len() {
            std::fs::write(dir.path().join(format!("s{s:03}.yaml")), yaml).expect("write rules");
        }
    }
    let set = load(dir.path()).expect("bench rules load");
    (dir, set)
}

fn bench(c: &mut Criterion) {
    let body = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/benches/payloads/github-push.json"
    ))
    .expect("payload");
    let mut group = c.benchmark_group("match_github_push");
    for rules in [10, 1_000, 10_000] {
        let (_dir, set) = rule_set(rules);
        let source = set.source("s000").expect("source").clone();
        let headers = vec![("X-GitHub-Event".to_string(), "push".to_string())];
        let delivery =
            Delivery::local(&source, headers, Vec::new(), body.clone(), None).expect("delivery");
        let input = delivery.match_input();
        assert_eq!(
            set.matching("s000", &input).len(),
            1,
            "exactly rule-0 matches"
        );
        group.bench_with_input(BenchmarkId::new("matching", rules), &rules, |b, _| {
            b.iter(|| set.matching("s000", &input).len())
        });
        group.bench_with_input(
            BenchmarkId::new("evaluate_with_trace", rules),
            &rules,
            |b, _| b.iter(|| set.evaluate("s000", &input).rules.len()),
        );
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
