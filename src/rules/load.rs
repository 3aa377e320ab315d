//! Loading a rules directory: every `*.yaml`/`*.yml` below it, decoded,
//! cross-checked (unique names, known references) and compiled into a
//! [`RuleSet`]. Every problem in every file is reported at once.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::decode::{DeclaredRule, Decoder, Diagnostic, EnvLookup, Severity, did_you_mean};
use super::index::Index;
use super::model::{Rule, RuleTest, Source};
use super::node::{self, Kind, Loc, Node};
use super::{PayloadNeeds, RuleSet, Secrets};
use crate::template::Templates;

/// The rules could not be loaded; `diagnostics` has every error (and warning).
#[derive(Debug, thiserror::Error)]
#[error("{} error(s) in the rules", self.errors().count())]
pub struct LoadError {
    pub diagnostics: Vec<Diagnostic>,
}

impl LoadError {
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
    }
}

/// The top-level keys of a rule file.
pub(crate) const FILE_KEYS: &[&str] = &["sources", "rules", "tests"];

/// How deep below the rules directory files are looked for.
const MAX_DEPTH: usize = 16;

/// Loads `dir` with `${NAME}` taken from the process environment.
pub fn load(dir: &Path) -> Result<RuleSet, LoadError> {
    load_with_env(dir, &|name| std::env::var(name).ok())
}

/// Loads `dir` with an injected environment.
pub fn load_with_env(dir: &Path, env: EnvLookup<'_>) -> Result<RuleSet, LoadError> {
    let mut diagnostics = Vec::new();
    let mut files = Vec::new();
    let dir_name: Arc<str> = dir.display().to_string().into();
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => collect_files(dir, &mut files, &mut diagnostics),
        Ok(_) => diagnostics.push(file_error(dir_name, "is not a directory")),
        Err(e) => diagnostics.push(file_error(
            dir_name,
            &format!("cannot read the rules directory: {e}"),
        )),
    }
    files.sort();

    let mut secrets = BTreeSet::new();
    let mut templates = Templates::new();
    let mut sources: Vec<Source> = Vec::new();
    let mut rules: Vec<Rule> = Vec::new();
    let mut tests: Vec<RuleTest> = Vec::new();
    // Names of sources that were declared, valid or not: a rule naming a
    // source that failed to decode must not get a second, misleading error.
    let mut declared: Vec<String> = Vec::new();
    let mut defaulted_secrets = Vec::new();
    let mut test_problems = Vec::new();
    let mut declared_rules: Vec<DeclaredRule> = Vec::new();
    let mut secret_files = BTreeSet::new();
    let mut hash = RuleSetHash::new(dir);
    for path in &files {
        let name: Arc<str> = path.display().to_string().into();
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => {
                diagnostics.push(file_error(name, &format!("cannot read: {e}")));
                continue;
            }
        };
        hash.add(path, &text);
        let root = match node::parse(&text) {
            Ok(root) => root,
            Err(e) => {
                diagnostics.push(yaml_error(name, &e));
                continue;
            }
        };
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let mut dec = Decoder::new(
            name,
            &mut diagnostics,
            env,
            &mut secrets,
            &mut templates,
            dir,
        );
        decode_file(
            &mut dec,
            &root,
            &mut declared,
            &mut sources,
            &mut rules,
            &mut tests,
        );
        defaulted_secrets.append(&mut dec.defaulted_secrets);
        test_problems.append(&mut dec.test_problems);
        declared_rules.append(&mut dec.declared_rules);
        secret_files.extend(dec.secret_files.drain(..));
    }

    cross_check(
        &declared,
        &sources,
        &declared_rules,
        &tests,
        &mut diagnostics,
    );
    let secrets = Secrets::new(secrets);
    for d in &mut test_problems {
        d.message = secrets.redact(&d.message);
    }
    test_problems.sort_by(|a, b| {
        (&a.loc.file, a.loc.line, a.loc.column).cmp(&(&b.loc.file, b.loc.line, b.loc.column))
    });
    // A test that cannot run does not stop `serve`: a warning in the set,
    // an error for `check` and `test` (`RuleSet::test_problems`).
    diagnostics.extend(test_problems.iter().map(|d| Diagnostic {
        severity: Severity::Warning,
        ..d.clone()
    }));
    for d in &mut diagnostics {
        d.message = secrets.redact(&d.message);
    }
    diagnostics.sort_by(|a, b| {
        (&a.loc.file, a.loc.line, a.loc.column).cmp(&(&b.loc.file, b.loc.line, b.loc.column))
    });
    diagnostics.dedup();
    if diagnostics.iter().any(|d| d.severity == Severity::Error) {
        return Err(LoadError { diagnostics });
    }
    let index = Index::build(&rules);
    let by_path = sources
        .iter()
        .enumerate()
        .map(|(i, s)| (s.path.clone(), i))
        .collect();
    let by_name = rules
        .iter()
        .enumerate()
        .map(|(i, r)| (r.name.clone(), i))
        .collect();
    let source_by_name = sources
        .iter()
        .enumerate()
        .map(|(i, s)| (s.name.clone(), i))
        .collect();
    let payload_needs = sources
        .iter()
        .map(|s| PayloadNeeds::of(s, index.rules_of(&s.name).iter().map(|&i| &rules[i])))
        .collect();
    Ok(RuleSet {
        sources: sources.into_iter().map(Arc::new).collect(),
        payload_needs,
        by_path,
        source_by_name,
        by_name,
        names: rules.iter().map(|r| Arc::from(r.name.as_str())).collect(),
        rules,
        tests,
        index,
        templates,
        secrets,
        warnings: diagnostics,
        defaulted_secrets,
        test_problems,
        files,
        secret_files: secret_files.into_iter().collect(),
        hash: hash.finish(),
    })
}

/// The rule set's fingerprint (SPEC §9: nodes whose rule sets differ are
/// flagged): SHA-256 over each file's path below the rules directory and
/// its text as read, in load order. The text is hashed before `${NAME}`
/// and `${file:…}` are substituted, so per-node secrets and environments
/// do not make equal files differ, and no secret goes into the hash.
struct RuleSetHash {
    dir: PathBuf,
    hasher: sha2::Sha256,
}

impl RuleSetHash {
    fn new(dir: &Path) -> Self {
        RuleSetHash {
            dir: dir.to_path_buf(),
            hasher: sha2::Sha256::default(),
        }
    }

    fn add(&mut self, path: &Path, text: &str) {
        use sha2::Digest;
        let relative = path.strip_prefix(&self.dir).unwrap_or(path);
        let name = relative.to_string_lossy();
        // Lengths first: ("a", "bc") and ("ab", "c") must not collide.
        for part in [name.as_bytes(), text.as_bytes()] {
            self.hasher.update((part.len() as u64).to_be_bytes());
            self.hasher.update(part);
        }
    }

    fn finish(self) -> String {
        use sha2::Digest;
        hex::encode(self.hasher.finalize().as_slice())
    }
}

fn file_error(file: Arc<str>, message: &str) -> Diagnostic {
    Diagnostic {
        loc: Loc::file(file),
        severity: Severity::Error,
        message: message.to_string(),
    }
}

/// A YAML syntax error as `file:line:column: message`, without the parser's
/// own snippet and location suffix.
fn yaml_error(file: Arc<str>, e: &serde_saphyr::Error) -> Diagnostic {
    let (line, column) = e
        .location()
        .map(|l| {
            (
                u32::try_from(l.line()).unwrap_or(0),
                u32::try_from(l.column()).unwrap_or(0),
            )
        })
        .unwrap_or((0, 0));
    let plain = e.without_snippet().to_string();
    let first = plain.lines().next().unwrap_or("invalid YAML").trim();
    let message = strip_location_suffix(first);
    let message = match message.strip_prefix("duplicate mapping key: ") {
        Some(rest) => {
            let key = rest
                .split(", set DuplicateKeyPolicy")
                .next()
                .unwrap_or(rest);
            format!("duplicate key `{key}` (YAML would silently keep only one of them)")
        }
        None if message.starts_with("budget breached") => format!(
            "the file is too large or too deeply nested to load safely ({message}); split it into several files"
        ),
        None => message.to_string(),
    };
    Diagnostic {
        loc: Loc::new(file, line, column),
        severity: Severity::Error,
        message: format!("invalid YAML: {message}"),
    }
}

fn strip_location_suffix(message: &str) -> &str {
    for marker in [" at line ", " at "] {
        if let Some(pos) = message.rfind(marker) {
            let tail = &message[pos + marker.len()..];
            if tail.chars().next().is_some_and(|c| c.is_ascii_digit()) || tail.starts_with("line") {
                return message[..pos].trim_end_matches([',', ' ']);
            }
        }
    }
    message
}

/// Every `*.yaml`/`*.yml` below `dir`, following symlinks (as a ConfigMap
/// mount needs). Hidden entries are skipped: editors' swap files, and
/// Kubernetes ConfigMap internals (`..data`), whose files are already
/// reachable through the visible symlinks. A directory that cannot be read
/// is reported; a dangling symlink or a symlink loop is skipped.
fn collect_files(dir: &Path, out: &mut Vec<PathBuf>, diagnostics: &mut Vec<Diagnostic>) {
    let walk = walkdir::WalkDir::new(dir)
        .follow_links(true)
        .max_depth(MAX_DEPTH + 1)
        .into_iter()
        .filter_entry(|e| e.depth() == 0 || !e.file_name().to_string_lossy().starts_with('.'));
    for entry in walk {
        match entry {
            Ok(entry) => {
                let path = entry.path();
                if !entry.file_type().is_dir()
                    && matches!(
                        path.extension().and_then(|e| e.to_str()),
                        Some("yaml" | "yml")
                    )
                {
                    out.push(path.to_path_buf());
                }
            }
            Err(e) => {
                let unreadable_dir = e.path().filter(|p| e.depth() == 0 || p.is_dir());
                if let (Some(path), Some(io)) = (unreadable_dir, e.io_error()) {
                    diagnostics.push(file_error(
                        path.display().to_string().into(),
                        &format!("cannot read directory: {io}"),
                    ));
                }
            }
        }
    }
}

fn decode_file(
    dec: &mut Decoder<'_>,
    root: &Node,
    declared: &mut Vec<String>,
    sources: &mut Vec<Source>,
    rules: &mut Vec<Rule>,
    tests: &mut Vec<RuleTest>,
) {
    if matches!(root.kind, Kind::Null) {
        return; // an empty file is fine
    }
    let Some(mut f) = dec.map(root, "a mapping with `sources`, `rules` and/or `tests`") else {
        return;
    };
    if let Some(node) = f.get("sources") {
        match &node.kind {
            Kind::Map(entries) => {
                for (key, value) in entries {
                    if let Some(name) = dec.name(key, "source") {
                        declared.push(name.clone());
                        sources.extend(dec.source(name, value));
                    }
                }
            }
            Kind::Null => {}
            _ => dec.expected(node, "a mapping of source names to their settings"),
        }
    }
    for (key, push) in [("rules", 0), ("tests", 1)] {
        let Some(node) = f.get(key) else { continue };
        match &node.kind {
            Kind::Seq(items) => {
                for item in items {
                    if push == 0 {
                        rules.extend(dec.rule(item));
                    } else {
                        tests.extend(dec.rule_test(item));
                    }
                }
            }
            Kind::Null => {}
            _ => dec.expected(node, &format!("a list of {key}")),
        }
    }
    f.finish(dec, "a rule file", FILE_KEYS);
}

/// Checks across files: unique names and paths, known references. Rules
/// are checked as far as they decoded, so every problem shows at once.
fn cross_check(
    declared: &[String],
    sources: &[Source],
    rules: &[DeclaredRule],
    tests: &[RuleTest],
    diagnostics: &mut Vec<Diagnostic>,
) {
    let had_errors = diagnostics.iter().any(|d| d.severity == Severity::Error);
    let mut error = |loc: &Loc, message: String| {
        diagnostics.push(Diagnostic {
            loc: loc.clone(),
            severity: Severity::Error,
            message,
        })
    };
    let mut seen: HashMap<&str, &Loc> = HashMap::new();
    let mut paths: HashMap<&str, &str> = HashMap::new();
    for s in sources {
        if let Some(first) = seen.insert(&s.name, &s.loc) {
            error(
                &s.loc,
                format!(
                    "duplicate source name `{}` (first defined at {first})",
                    s.name
                ),
            );
        } else if let Some(other) = paths.insert(&s.path, &s.name) {
            error(
                &s.loc,
                format!(
                    "source `{}` has the same path {} as source `{other}`",
                    s.name, s.path
                ),
            );
        }
    }
    let source_names: Vec<&str> = declared.iter().map(String::as_str).collect();
    let unknown_source = |name: &str| {
        let hint = did_you_mean(name, source_names.iter().copied())
            .map(|h| format!(" (did you mean `{h}`?)"))
            .unwrap_or_default();
        format!("unknown source `{name}`{hint}")
    };
    let mut rule_seen: HashMap<&str, &Loc> = HashMap::new();
    for r in rules {
        if let Some(first) = rule_seen.insert(&r.name, &r.loc) {
            error(
                &r.loc,
                format!(
                    "duplicate rule name `{}` (first defined at {first})",
                    r.name
                ),
            );
        }
        for s in &r.sources {
            if !source_names.contains(&s.as_str()) {
                error(&r.loc, format!("rule `{}`: {}", r.name, unknown_source(s)));
            }
        }
    }
    for t in tests {
        if !source_names.contains(&t.source.as_str()) {
            error(
                &t.loc,
                format!("test {:?}: {}", t.name, unknown_source(&t.source)),
            );
        }
        for name in t.expect_matched.iter().flatten() {
            if !rule_seen.contains_key(name.as_str()) {
                let hint = did_you_mean(name, rule_seen.keys().copied())
                    .map(|h| format!(" (did you mean `{h}`?)"))
                    .unwrap_or_default();
                error(
                    &t.loc,
                    format!("test {:?} expects unknown rule `{name}`{hint}", t.name),
                );
            }
        }
    }
    // With errors, some rules were not decoded: "unused" would be noise.
    for s in sources.iter().filter(|_| !had_errors) {
        if !rules.iter().any(|r| r.sources.contains(&s.name)) {
            diagnostics.push(Diagnostic {
                loc: s.loc.clone(),
                severity: Severity::Warning,
                message: format!("source `{}` is not used by any rule", s.name),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_files_are_found_below_the_dir_through_symlinks_but_not_hidden_ones() {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path();
        let write = |path: &str| {
            let path = root.join(path);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            std::fs::write(path, "").expect("write");
        };
        write("a.yaml");
        write("notes.txt");
        write("team/b.yml");
        write(".hidden/c.yaml");
        write(".swap.yaml");
        write("..2026_11_27/d.yaml");
        std::os::unix::fs::symlink(root.join("..2026_11_27"), root.join("linked"))
            .expect("symlink");
        std::os::unix::fs::symlink(root.join("gone.yaml"), root.join("dangling.yaml"))
            .expect("symlink");
        let (mut files, mut diagnostics) = (Vec::new(), Vec::new());
        collect_files(root, &mut files, &mut diagnostics);
        files.sort();
        let found: Vec<_> = files
            .iter()
            .map(|f| f.strip_prefix(root).expect("below root"))
            .collect();
        assert_eq!(
            found,
            [
                Path::new("a.yaml"),
                Path::new("linked/d.yaml"),
                Path::new("team/b.yml")
            ],
            "{diagnostics:?}"
        );
        assert!(diagnostics.is_empty(), "{diagnostics:?}");
    }

    /// The rule set of one file holding `yaml`.
    fn load_one(yaml: &str) -> RuleSet {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("r.yaml"), yaml).expect("write rules");
        load(dir.path()).expect("loads")
    }

    #[test]
    fn a_source_reads_the_members_its_rules_and_settings_name_or_all() {
        let set = load_one(
            r#"sources:
  gh: { verify: { github: { secret: s } } }
  plain: {}
  keyed: { event: { path: "$.kind" }, dedupe: { header: X-Id } }
  stripe: { verify: { stripe: { secret: s } } }
  shaped: { schema: { type: object } }
  replying: { response: { status: 200, body: ok } }
  limited: {}
  deep: {}
  slash: { verify: { slack: { secret: s } } }
rules:
  - name: push
    source: [gh, plain]
    when:
      all:
        - { path: $.ref, equals: refs/heads/main }
        - not: { path: "$['repository'].name", equals: x }
        - { header: x-a, equals: b }
    actions: [ { http: { url: "http://127.0.0.1:9/" } } ]
  - { name: other, source: gh, event: issues, when: { path: $.issue.number, exists: true }, actions: [ { http: { url: "http://127.0.0.1:9/" } } ] }
  - { name: k, source: [keyed, stripe], actions: [ { http: { url: "http://127.0.0.1:9/" } } ] }
  - { name: l, source: limited, concurrency: { key: "{{event}}", limit: 1 }, actions: [ { http: { url: "http://127.0.0.1:9/" } } ] }
  - { name: d, source: deep, when: { path: $..id, exists: true }, actions: [ { http: { url: "http://127.0.0.1:9/" } } ] }
"#,
        );
        let members =
            |names: &[&str]| PayloadNeeds::Members(names.iter().map(|n| (*n).to_owned()).collect());
        for (source, needs) in [
            ("gh", members(&["action", "issue", "ref", "repository"])),
            ("plain", members(&["ref", "repository"])),
            ("keyed", members(&["kind"])),
            ("stripe", members(&["id", "type"])),
            (
                "slash",
                members(&["challenge", "command", "event", "event_id", "type"]),
            ),
            ("shaped", PayloadNeeds::All),
            ("replying", PayloadNeeds::All),
            ("limited", PayloadNeeds::All),
            ("deep", PayloadNeeds::All),
            ("no such source", PayloadNeeds::All),
        ] {
            assert_eq!(set.payload_needs(source), &needs, "{source}");
        }
    }

    #[test]
    fn a_step_reads_the_context_when_it_has_an_if_or_any_template() {
        let set = load_one(
            r#"sources:
  gh: {}
rules:
  - name: r
    source: gh
    actions:
      - http: { url: "http://127.0.0.1:9/", headers: { X-A: plain }, json: { a: [1, "two", { b: null }] } }
      - http: { url: "http://127.0.0.1:9/", json: { a: [1, { b: "{{payload.x}}" }] } }
      - http: { url: "http://127.0.0.1:9/", headers: { X-A: "{{event}}" } }
      - if: { path: $.event, equals: push }
        http: { url: "http://127.0.0.1:9/" }
      - slack: { webhook_url: "http://127.0.0.1:9/", text: hello }
      - slack: { webhook_url: "http://127.0.0.1:9/", text: "{{steps}}" }
      - shell: { command: [echo, hi] }
      - shell: { command: [echo, hi], env: { A: "{{run.id}}" } }
"#,
        );
        let rule = set.rule("r").expect("rule r");
        let reads: Vec<bool> = rule.steps.iter().map(|s| s.reads_context).collect();
        assert_eq!(
            reads,
            [false, true, true, true, false, true, false, true],
            "a nested template, a header template, an `if:`, templates in slack and shell read it"
        );
    }

    #[test]
    fn verifier_secrets_from_a_default_are_exposed_with_their_place() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(
            dir.path().join("r.yaml"),
            "sources:\n  gh:\n    verify:\n      github: { secret: \"${GH_SECRET:-dev}\" }\n  ok:\n    verify:\n      github: { secret: \"${SET:-dev}\" }\nrules:\n  - name: r\n    source: [gh, ok]\n    actions:\n      - http: { url: \"${URL:-http://127.0.0.1:9/}\" }\n",
        )
        .expect("write rules");
        let env = |name: &str| (name == "SET").then(|| "from-the-env".to_string());
        let set = load_with_env(dir.path(), &env).expect("loads");
        let defaulted = set.defaulted_secrets();
        assert_eq!(defaulted.len(), 1, "{defaulted:?}");
        assert_eq!(defaulted[0].variable, "GH_SECRET");
        assert_eq!(defaulted[0].source, "gh");
        assert_eq!((defaulted[0].loc.line, defaulted[0].loc.column), (4, 25));
        assert!(
            defaulted[0]
                .to_string()
                .ends_with("r.yaml:4:25 (source `gh`)"),
            "{}",
            defaulted[0]
        );
        let warnings: Vec<String> = set.warnings().iter().map(|w| w.to_string()).collect();
        assert!(
            warnings.iter().any(
                |w| w.contains("warning: the verifier secret of source `gh`")
                    && w.contains("GH_SECRET is not set")
            ),
            "{warnings:?}"
        );
        assert!(!warnings.iter().any(|w| w.contains("URL")), "{warnings:?}");
    }
}
