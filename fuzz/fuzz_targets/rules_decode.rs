//! The rule-file decoder: arbitrary bytes as one YAML rule file, loaded the
//! way `hookflow check` and `serve` load a rules directory.
//!
//! When the file loads, what it compiled is used: every rule's stored
//! definition must compile again on its own (as a worker compiles a queued
//! run's rule), and a fixed delivery to every source goes through a dry run,
//! so fuzzed conditions and templates are also evaluated and rendered.
//! `${NAME}` reads `value-of-NAME`, except names starting with `UNSET`.

#![no_main]

use std::path::PathBuf;
use std::sync::LazyLock;

use hookflow::delivery::Delivery;
use hookflow::dryrun::dry_run;
use hookflow::rules::snapshot::compile_with_env;
use hookflow::rules::{Severity, load_with_env};
use hookflow_fuzz::scratch_dir;
use libfuzzer_sys::fuzz_target;

static DIR: LazyLock<PathBuf> = LazyLock::new(|| scratch_dir("rules"));

/// A body with a bit of everything rules usually look at.
const BODY: &[u8] = br#"{"ref":"refs/heads/main","action":"opened","n":3,"s":"a{{b}}c","flag":true,
"list":[1,"two",{"three":3}],"map":{"k":"v"},"type":"evt.created","id":"evt_1",
"pusher":{"name":"octo"},"commits":[{"id":"c1","message":"m"}]}"#;

fn env(name: &str) -> Option<String> {
    (!name.starts_with("UNSET")).then(|| format!("value-of-{name}"))
}

fuzz_target!(|data: &[u8]| {
    let file = DIR.join("rules.yaml");
    if let Err(e) = std::fs::write(&file, data) {
        panic!("cannot write {}: {e}", file.display());
    }
    let set = match load_with_env(&DIR, &env) {
        Ok(set) => set,
        Err(e) => {
            // A refusal must say why.
            assert!(
                e.diagnostics.iter().any(|d| d.severity == Severity::Error),
                "load failed without an error: {:?}",
                e.diagnostics
            );
            return;
        }
    };
    for rule in set.rules() {
        if let Err(diagnostics) = compile_with_env(&rule.definition, &env) {
            panic!(
                "rule `{}` loaded but its stored definition does not compile: {diagnostics:?}\n{}",
                rule.name, rule.definition
            );
        }
    }
    for source in set.sources() {
        let headers = vec![
            ("Content-Type".to_owned(), "application/json".to_owned()),
            ("X-GitHub-Event".to_owned(), "push".to_owned()),
        ];
        let query = vec![("q".to_owned(), "1".to_owned())];
        if let Ok(delivery) = Delivery::local(source, headers, query, BODY.to_vec(), None) {
            let _ = dry_run(&set, &delivery);
        }
    }
});
