//! JSONPath selection (serde_json_path, as rule conditions and a source's
//! `event:`/`dedupe:` use it): fixed paths of the kinds rules are written
//! with, plus one fuzzed path, over fuzzed JSON.
//!
//! The fuzzed path is compiled as a rule file's is (`rules::jsonpath::parse`,
//! which guards against a parser panic this target found); the fixed ones by
//! serde_json_path directly.
//!
//! Input: the first line is the path, the rest the JSON document. Besides
//! "never panics", every node a query selects must be where its normalized
//! location says: `located()` and `all()` agree, and the location read back
//! as a JSON pointer finds the same value.

#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use serde_json_path::JsonPath;

const FIXED: &[&str] = &[
    "$",
    "$.ref",
    "$.pull_request.draft",
    "$.data.object.amount",
    "$.commits[*].author.name",
    "$.commits[0]",
    "$.commits[-1]",
    "$.commits[1:3]",
    "$.commits[::-1]",
    "$['a.b']['c d']",
    "$..id",
    "$..*",
    "$.*",
    "$[*].x",
    "$.list[?@ > 1]",
    "$..[?@.type == 'message']",
    "$.items[?@.price < 10 && @.tag != 'x']",
    "$[?length(@) > 2]",
    "$..[?count(@.*) == 1]",
    "$[?match(@.s, 'a.*z')]",
    "$[?search(@.s, '[0-9]+')]",
    "$[?value(@..x) == 1]",
    "$.event.type",
    "$.meta.event",
];

static PATHS: LazyLock<Vec<JsonPath>> = LazyLock::new(|| {
    FIXED
        .iter()
        .map(|p| match JsonPath::parse(p) {
            Ok(path) => path,
            Err(e) => panic!("fixed path {p} does not parse: {e}"),
        })
        .collect()
});

fuzz_target!(|data: &[u8]| {
    let (first, rest) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let fuzzed = std::str::from_utf8(first)
        .ok()
        .and_then(|p| hookflow::rules::jsonpath::parse(p).ok());
    let Ok(value) = serde_json::from_slice::<Value>(rest) else {
        return;
    };
    for path in PATHS.iter().chain(fuzzed.as_ref()) {
        check(path, &value);
    }
});

fn check(path: &JsonPath, value: &Value) {
    let all = path.query(value).all();
    let located = path.query_located(value);
    let located: Vec<_> = located.iter().collect();
    assert_eq!(
        all.len(),
        located.len(),
        "{path}: all() and located() differ"
    );
    for (node, loc) in all.iter().zip(&located) {
        assert!(
            std::ptr::eq(*node, loc.node()),
            "{path}: all() and located() disagree at {}",
            loc.location()
        );
        let pointer = loc.location().to_json_pointer();
        match value.pointer(&pointer) {
            Some(found) => assert!(
                std::ptr::eq(found, loc.node()),
                "{path}: {pointer} finds another node"
            ),
            None => panic!("{path}: {pointer} finds nothing"),
        }
    }
    // The way conditions read a selection: first value, and exactly one.
    let _ = path.query(value).first();
    let _ = path.query(value).exactly_one();
}
