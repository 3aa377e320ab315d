//! The one test harness: a real server on 127.0.0.1:0 with its own rules
//! directory and SQLite file, talked to over HTTP (after zero2prod's
//! `spawn_app`). Every server test goes through it.
#![allow(dead_code)] // each test binary uses a different part

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hookflow::app::App;
use hookflow::config::{SettingValue, Settings};
use hookflow::reload::Reloader;
use hookflow::shutdown::Trigger;
use hookflow::store::Store;

pub struct TestApp {
    /// The webhook listener.
    pub addr: SocketAddr,
    /// The admin listener (`/api`, `/metrics`).
    pub admin_addr: SocketAddr,
    pub store: Arc<dyn Store>,
    pub rules_dir: PathBuf,
    pub db_path: PathBuf,
    pub client: reqwest::Client,
    pub trigger: Trigger,
    pub reloader: Arc<Reloader>,
    /// Keeps the temp dir alive as long as the app.
    _dir: tempfile::TempDir,
}

/// Starts a server on the given rule files (name → YAML), receive only
/// (`workers: 0`: runs stay queued).
pub async fn spawn_app(files: &[(&str, &str)]) -> TestApp {
    spawn_app_with(files, |_| {}).await
}

/// Like `spawn_app`, with settings adjusted first.
pub async fn spawn_app_with(files: &[(&str, &str)], adjust: impl FnOnce(&mut Settings)) -> TestApp {
    spawn(files, adjust, false).await
}

/// A server whose workers run the queued runs.
pub async fn spawn_app_with_engine(
    files: &[(&str, &str)],
    adjust: impl FnOnce(&mut Settings),
) -> TestApp {
    spawn(files, adjust, true).await
}

/// Builds and runs the app exactly as `hookflow serve` does
/// (`App::build`, then `run`), on port 0 for both listeners.
async fn spawn(
    files: &[(&str, &str)],
    adjust: impl FnOnce(&mut Settings),
    with_engine: bool,
) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let rules_dir = dir.path().join("rules");
    std::fs::create_dir_all(&rules_dir).expect("rules dir");
    for (name, yaml) in files {
        std::fs::write(rules_dir.join(name), yaml).expect("write rule file");
    }
    let db_path = dir.path().join("hookflow.db");
    let mut settings = Settings {
        listen: "127.0.0.1:0".parse().expect("addr"),
        admin_listen: Some("127.0.0.1:0".parse().expect("addr")),
        rules: rules_dir.clone(),
        database: SettingValue::parse(&format!("sqlite://{}", db_path.display())).expect("url"),
        workers: if with_engine { 16 } else { 0 },
        ..Settings::default()
    };
    adjust(&mut settings);
    let rules = match hookflow::rules::load(&rules_dir) {
        Ok(set) => set,
        Err(e) => panic!("test rules do not load: {:#?}", e.diagnostics),
    };
    let app = App::build(settings, rules).await.expect("the app builds");
    let (addr, admin_addr) = (app.addr, app.admin_addr.expect("an admin listener"));
    let (store, reloader, trigger) = (app.store.clone(), app.reloader.clone(), app.trigger());
    tokio::spawn(app.run());
    TestApp {
        addr,
        admin_addr,
        store,
        rules_dir,
        db_path,
        client: reqwest::Client::new(),
        trigger,
        reloader,
        _dir: dir,
    }
}

impl TestApp {
    /// Writes a file under the rules directory.
    pub fn write_rule_file(&self, name: &str, yaml: &str) {
        std::fs::write(self.rules_dir.join(name), yaml).expect("write rule file");
    }

    /// A URL on the webhook listener.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// A URL on the admin listener (`/api`, `/metrics`).
    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{}", self.admin_addr, path)
    }

    /// POSTs `body` to `path` with `headers`.
    pub async fn post(
        &self,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<reqwest::Body>,
    ) -> reqwest::Response {
        let mut req = self.client.post(self.url(path)).body(body);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.send().await.expect("request reaches the server")
    }
}

/// A fixture file's bytes (tests/fixtures/…).
pub fn fixture(rel: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel);
    std::fs::read(&path).unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()))
}

/// Unix seconds now.
pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}
