//! `hookflow schema` and docs/REFERENCE.md against the loader itself: the
//! schema accepts every shipped rule file, refuses unknown keys, and lists
//! exactly the keys the decoders know — checked against their key lists and,
//! independently, against the loader's own "expected one of" messages — and
//! the committed reference is the generated one.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::Value;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn schema() -> Value {
    hookflow::rules::editor_schema::schema()
}

fn validator() -> jsonschema::Validator {
    jsonschema::validator_for(&schema()).expect("the schema compiles")
}

/// YAML parsed into JSON as an editor's schema check sees it.
fn yaml_to_json(text: &str) -> Value {
    serde_saphyr::from_str::<Value>(text).expect("valid YAML")
}

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable directory") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            yaml_files(&path, out);
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        ) {
            out.push(path);
        }
    }
}

fn errors(validator: &jsonschema::Validator, instance: &Value) -> Vec<String> {
    validator
        .iter_errors(instance)
        .map(|e| format!("{} at {}", e, e.instance_path))
        .collect()
}

#[test]
fn the_schema_accepts_every_shipped_rule_file() {
    let validator = validator();
    let mut files = Vec::new();
    yaml_files(&root().join("rules"), &mut files);
    yaml_files(&root().join("examples"), &mut files);
    assert!(files.len() >= 7, "found only {files:?}");
    for file in files {
        let text = std::fs::read_to_string(&file).expect("readable");
        let problems = errors(&validator, &yaml_to_json(&text));
        assert!(problems.is_empty(), "{}: {problems:#?}", file.display());
    }
}

const VALID: &str = r#"
sources:
  gh:
    verify:
      github: { secret: "${GH_SECRET}", allow_sha1: true }
    rate_limit: 50/s
rules:
  - name: deploy
    source: gh
    when:
      - path: $.ref
        equals: refs/heads/main
      - not: { header: X-Skip, exists: true }
    actions:
      - id: build
        http:
          url: https://ci.example.com/build
          json: { ref: "{{payload.ref}}" }
          retry: { attempts: 3, backoff: 2s }
tests:
  - name: push
    source: gh
    payload: { ref: refs/heads/main }
    expect: { matched: [deploy] }
"#;

#[test]
fn the_schema_refuses_an_unknown_key_at_every_level() {
    let validator = validator();
    assert!(errors(&validator, &yaml_to_json(VALID)).is_empty());
    for (anchor, typo) in [
        ("sources:\n", "sourcez: {}\nsources:\n"),
        ("    rate_limit: 50/s\n", "    rate_limt: 50/s\n"),
        ("allow_sha1: true", "allow_sha1: true, alow_sha1: true"),
        ("  - name: deploy\n", "  - name: deploy\n    wen: {}\n"),
        (
            "      - id: build\n",
            "      - id: build\n        continue_on_eror: true\n",
        ),
        ("backoff: 2s", "backoff: 2s, max_backof: 1m"),
        ("          json:", "          timout: 5s\n          json:"),
        ("equals: refs/heads/main", "equal: refs/heads/main"),
        (
            "expect: { matched: [deploy] }",
            "expect: { matched: [deploy], rendered: {} }",
        ),
        ("github: {", "gihub: {"),
    ] {
        assert!(VALID.contains(anchor), "{anchor}");
        let broken = VALID.replacen(anchor, typo, 1);
        assert!(
            !validator.is_valid(&yaml_to_json(&broken)),
            "the schema accepted {typo:?}"
        );
    }
}

/// The property names of a definition (a condition's are inside `anyOf`).
fn properties(definition: &Value) -> Option<BTreeSet<String>> {
    if let Some(props) = definition["properties"].as_object() {
        return Some(props.keys().cloned().collect());
    }
    definition["anyOf"].as_array()?.iter().find_map(properties)
}

/// Every object of the schema by definition name, the file as `file`.
fn schema_objects() -> Vec<(String, BTreeSet<String>)> {
    let schema = schema();
    let mut out = vec![("file".to_string(), properties(&schema).expect("root"))];
    for (id, def) in schema["definitions"].as_object().expect("definitions") {
        out.push((id.clone(), properties(def).expect("an object")));
    }
    out
}

#[test]
fn the_schema_keys_equal_the_decoders_key_lists_both_ways() {
    let decoder: Vec<(String, BTreeSet<String>)> = hookflow::rules::reference::decoder_key_lists()
        .into_iter()
        .map(|(id, keys)| (id, keys.iter().map(|k| k.to_string()).collect()))
        .collect();
    let schema = schema_objects();
    for (id, keys) in &decoder {
        let found = schema.iter().find(|(s, _)| s == id);
        assert_eq!(found.map(|(_, k)| k), Some(keys), "definition `{id}`");
    }
    for (id, _) in &schema {
        assert!(
            decoder.iter().any(|(d, _)| d == id),
            "the schema's `{id}` matches no decoder key list"
        );
    }
}

const PROBE: &str = "zzzzzzzzzzzz";

/// Loads `yaml` as a rules directory and returns the list of the loader's
/// "…; expected one of: a, b" message about the probe key.
fn expected_by_loader(yaml: &str) -> BTreeSet<String> {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("r.yaml"), yaml).expect("write");
    let err = hookflow::rules::load_with_env(dir.path(), &|_| Some("x".into()))
        .expect_err("the probe key is an error");
    let message = err
        .errors()
        .map(|d| d.message.clone())
        .find(|m| m.contains(&format!("`{PROBE}`")))
        .unwrap_or_else(|| panic!("no message about the probe in {:#?}", err.diagnostics));
    let (_, list) = message
        .split_once("; expected one of: ")
        .unwrap_or_else(|| panic!("no key list in {message:?}"));
    list.split(", ").map(str::to_string).collect()
}

#[test]
fn the_schema_keys_equal_what_the_loader_says_it_expects() {
    let z = PROBE;
    let rule = "rules:\n  - name: r\n    source: s\n    actions:\n";
    let mut probes: Vec<(String, String)> = vec![
        ("file".into(), format!("{z}: 1\n")),
        ("source".into(), format!("sources:\n  s:\n    {z}: 1\n")),
        (
            "verify".into(),
            format!("sources:\n  s:\n    verify:\n      {z}: {{}}\n"),
        ),
        (
            "extract".into(),
            format!("sources:\n  s:\n    event: {{ {z}: 1 }}\n"),
        ),
        (
            "response".into(),
            format!("sources:\n  s:\n    response: {{ {z}: 1 }}\n"),
        ),
        ("rule".into(), format!("rules:\n  - {z}: 1\n")),
        ("step".into(), format!("{rule}      - {z}: 1\n")),
        ("http".into(), format!("{rule}      - http: {{ {z}: 1 }}\n")),
        (
            "slack".into(),
            format!("{rule}      - slack: {{ {z}: 1 }}\n"),
        ),
        (
            "shell".into(),
            format!("{rule}      - shell: {{ {z}: 1 }}\n"),
        ),
        (
            "retry".into(),
            format!("{rule}      - http: {{ url: x, retry: {{ {z}: 1 }} }}\n"),
        ),
        (
            "concurrency".into(),
            format!("rules:\n  - name: r\n    source: s\n    concurrency: {{ {z}: 1 }}\n"),
        ),
        (
            "test".into(),
            format!("tests:\n  - {z}: 1\n    expect: {{ matched: [] }}\n"),
        ),
        (
            "expect".into(),
            format!("tests:\n  - name: t\n    source: s\n    expect: {{ {z}: 1 }}\n"),
        ),
        (
            "failure".into(),
            format!(
                "tests:\n  - name: t\n    source: s\n    failure: {{ {z}: 1 }}\n    expect: {{ matched: [] }}\n"
            ),
        ),
    ];
    for sender in hookflow::verify::SENDERS {
        let name = sender.name;
        probes.push((
            format!("verify.{name}"),
            format!("sources:\n  s:\n    verify:\n      {name}: {{ {z}: 1 }}\n"),
        ));
    }
    let schema = schema_objects();
    // Every object whose unknown keys the loader lists is probed (a
    // condition's message names no list: its keys are checked above).
    let unprobed: Vec<&String> = schema
        .iter()
        .map(|(id, _)| id)
        .filter(|id| id.as_str() != "condition" && !probes.iter().any(|(p, _)| p == *id))
        .collect();
    assert!(unprobed.is_empty(), "not probed: {unprobed:?}");
    for (id, yaml) in probes {
        let (_, keys) = schema
            .iter()
            .find(|(s, _)| *s == id)
            .expect("in the schema");
        assert_eq!(
            &expected_by_loader(&yaml),
            keys,
            "`{id}`, probed with:\n{yaml}"
        );
    }
}

#[test]
fn the_command_prints_the_schema() {
    let ran = crate::common::cli::hookflow(["schema"]).run();
    ran.success();
    let printed: Value = serde_json::from_str(&ran.stdout).expect("JSON on stdout");
    assert_eq!(printed, schema());
    assert_eq!(
        printed["$schema"],
        "http://json-schema.org/draft-07/schema#"
    );
}

#[test]
fn the_committed_reference_is_the_generated_one() {
    let committed =
        std::fs::read_to_string(root().join("docs/REFERENCE.md")).expect("docs/REFERENCE.md");
    let generated = hookflow::reference::markdown().expect("generated");
    assert!(
        committed.trim_end() == generated.trim_end(),
        "docs/REFERENCE.md is stale: run `cargo run -- schema --markdown > docs/REFERENCE.md`"
    );
}

/// The keys in the table of the section headed by `<a id="ID">`.
fn documented_keys(reference: &str, anchor: &str) -> BTreeSet<String> {
    let start = reference
        .find(&format!("<a id=\"{anchor}\">"))
        .unwrap_or_else(|| panic!("docs/REFERENCE.md has no section `{anchor}`"));
    let section = &reference[start + 1..];
    let end = section
        .find("<a id=")
        .or_else(|| section.find("\n## "))
        .unwrap_or(section.len());
    table_keys(&section[..end])
}

/// The first-column names (`| \`key\` |`) of the table rows in `text`.
fn table_keys(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|rest| rest.split_once('`').map(|(key, _)| key.to_string()))
        .collect()
}

#[test]
fn the_reference_documents_every_key_and_setting_and_nothing_else() {
    let reference =
        std::fs::read_to_string(root().join("docs/REFERENCE.md")).expect("docs/REFERENCE.md");
    for (id, keys) in schema_objects() {
        assert_eq!(
            documented_keys(&reference, &id.replace('.', "-")),
            keys,
            "section `{id}` of docs/REFERENCE.md"
        );
    }
    let settings = reference
        .split_once("## Settings")
        .expect("a settings section")
        .1;
    let names: BTreeSet<String> = hookflow::config::NAMES
        .iter()
        .map(|n| n.to_string())
        .collect();
    assert_eq!(table_keys(settings), names, "settings in docs/REFERENCE.md");
}
