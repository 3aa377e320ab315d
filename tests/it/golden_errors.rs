//! Error messages are part of the product: each folder under
//! `tests/golden/errors/` holds broken rules and `expected.txt`, the exact
//! `file:line:column: message` lines `hookflow check` must print.
//! Run with `UPDATE_GOLDEN=1` to rewrite the expectations (then review them).

use std::path::Path;

fn env(name: &str) -> Option<String> {
    (name == "HOOKFLOW_TEST_SET").then(|| "value".to_string())
}

fn diagnostics(dir: &Path) -> String {
    let prefix = format!("{}/", dir.display());
    let diagnostics = match hookflow::rules::load_with_env(dir, &env) {
        Ok(set) => set.warnings().to_vec(),
        Err(e) => e.diagnostics,
    };
    diagnostics
        .iter()
        .map(|d| d.to_string().replace(&prefix, "") + "\n")
        .collect()
}

#[test]
fn every_broken_rule_file_gives_its_golden_messages() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/errors");
    let mut cases: Vec<_> = std::fs::read_dir(&root)
        .expect("golden folder")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    cases.sort();
    assert!(
        cases.len() >= 12,
        "expected the golden cases, found {}",
        cases.len()
    );
    let mut failures = Vec::new();
    for case in &cases {
        let got = diagnostics(case);
        assert!(
            !got.is_empty(),
            "{}: broken rules loaded without a message",
            case.display()
        );
        let expected_file = case.join("expected.txt");
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::write(&expected_file, &got).expect("write golden");
            continue;
        }
        let expected = std::fs::read_to_string(&expected_file).unwrap_or_default();
        if got != expected {
            failures.push(format!(
                "{}:\n--- expected\n{expected}--- got\n{got}",
                case.display()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
