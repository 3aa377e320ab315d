//! The files in deploy/ against the code: the example hookflow.yaml lists
//! every setting at its default, and the systemd unit and the reverse
//! proxies agree with the defaults they depend on (listen address, body
//! limit, shutdown grace), so none of them can drift from src/config.rs.

use std::path::{Path, PathBuf};
use std::time::Duration;

use hookflow::config::{Layer, NAMES, Settings};

fn deploy(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(file)
}

fn read(file: &str) -> String {
    std::fs::read_to_string(deploy(file)).unwrap_or_else(|e| panic!("deploy/{file}: {e}"))
}

/// The setting names of `text`: `(name, commented)` for each line that is
/// `name: …` or `# name: …`.
fn setting_lines(text: &str) -> Vec<(String, bool)> {
    text.lines()
        .filter_map(|line| {
            let (rest, commented) = match line.strip_prefix('#') {
                Some(rest) => (rest.strip_prefix(' ').unwrap_or(rest), true),
                None => (line, false),
            };
            let (key, _) = rest.split_once(':')?;
            let is_name = !key.is_empty()
                && key
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
            is_name.then(|| (key.to_string(), commented))
        })
        .collect()
}

/// The settings whose default is `None`, read from the pretty `Debug` of
/// the defaults (one `    name: value,` line per field), so a setting
/// added to the table is covered without a change here.
fn unset_by_default() -> Vec<String> {
    format!("{:#?}", Settings::default())
        .lines()
        .filter_map(|line| line.strip_prefix("    "))
        .filter(|line| !line.starts_with(' '))
        .filter_map(|line| line.strip_suffix(": None,"))
        .map(str::to_string)
        .collect()
}

#[test]
fn the_example_settings_file_holds_every_default() {
    let layer = Layer::from_file(&deploy("hookflow.yaml")).expect("deploy/hookflow.yaml loads");
    let example = Settings::resolve(&[layer]).expect("deploy/hookflow.yaml resolves");
    // One line per field: a difference shows the setting's name.
    pretty_assertions::assert_eq!(
        format!("{:#?}", example),
        format!("{:#?}", Settings::default()),
        "deploy/hookflow.yaml (left) differs from the defaults in src/config.rs (right)"
    );
}

#[test]
fn the_example_settings_file_names_every_setting_once() {
    let text = read("hookflow.yaml");
    let lines = setting_lines(&text);
    for name in NAMES {
        let count = lines.iter().filter(|(key, _)| key == name).count();
        assert_eq!(
            count, 1,
            "deploy/hookflow.yaml must list `{name}` once (commented out when it has no default), found {count}"
        );
    }
    for (key, commented) in &lines {
        assert!(
            NAMES.contains(&key.as_str()),
            "deploy/hookflow.yaml lists `{key}`, which is not a setting (commented: {commented})"
        );
    }
    // Exactly the settings without a default are commented out.
    let unset = unset_by_default();
    assert!(unset.iter().any(|n| n == "public_url"), "{unset:?}");
    for (key, commented) in &lines {
        assert_eq!(
            *commented,
            unset.contains(key),
            "`{key}`: commented out in deploy/hookflow.yaml exactly when it has no default"
        );
    }
}

#[test]
fn the_commented_out_examples_are_valid_when_uncommented() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("hookflow.yaml");
    let text = read("hookflow.yaml");
    let mut tried = 0;
    for line in text.lines() {
        let Some(setting) = line.strip_prefix("# ") else {
            continue;
        };
        let Some((key, _)) = setting.split_once(':') else {
            continue;
        };
        if !NAMES.contains(&key) {
            continue;
        }
        std::fs::write(&path, format!("{setting}\n")).expect("write");
        let layer = Layer::from_file(&path).unwrap_or_else(|e| panic!("{setting}: {e}"));
        match Settings::resolve(&[layer]) {
            Ok(_) => {}
            // The example path does not exist here; the value parsed.
            Err(e) if key == "admin_token_file" && e.to_string().contains("cannot read it") => {}
            Err(e) => panic!("{setting}: {e}"),
        }
        tried += 1;
    }
    assert_eq!(
        tried,
        unset_by_default().len(),
        "one example per unset setting"
    );
}

#[test]
fn the_proxies_and_the_unit_agree_with_the_defaults() {
    let default = Settings::default();
    assert_eq!(
        default.max_body.0,
        1024 * 1024,
        "update the proxies' body limit"
    );
    let listen = default.listen.to_string();

    let nginx = read("nginx/hookflow.conf");
    assert!(
        nginx.contains(&format!("server {listen}")),
        "nginx upstream is {listen}"
    );
    assert!(nginx.contains("client_max_body_size 1m;"));
    assert!(nginx.contains("proxy_set_header X-Forwarded-For $remote_addr;"));

    let caddy = read("caddy/Caddyfile");
    assert!(
        caddy.contains(&format!("reverse_proxy {listen}")),
        "Caddy upstream is {listen}"
    );
    assert!(caddy.contains("max_size 1MiB"));

    // Neither proxy names an admin path outside a comment.
    for (file, text) in [("nginx", &nginx), ("caddy", &caddy)] {
        for line in text.lines().map(str::trim).filter(|l| !l.starts_with('#')) {
            for admin in ["/api", "/metrics", "/ui"] {
                assert!(!line.contains(admin), "{file}: {line}");
            }
        }
    }

    let unit = read("systemd/hookflow.service");
    let stop = unit
        .lines()
        .find_map(|l| l.strip_prefix("TimeoutStopSec="))
        .expect("TimeoutStopSec= in the unit");
    let stop = humantime::parse_duration(stop.trim()).expect("TimeoutStopSec is a duration");
    assert!(
        stop > default.shutdown_grace + Duration::from_secs(5),
        "TimeoutStopSec={stop:?} must leave room above shutdown_grace"
    );
    assert!(unit.contains("--db sqlite:///var/lib/hookflow/hookflow.db"));
    assert!(unit.contains("--admin-token-file %d/admin_token"));
}
