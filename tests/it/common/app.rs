//! Starting hookflow for a test: in process (`spawn_app`: `App::build`
//! then `run`, exactly as `hookflow serve` does, on port 0 with its own
//! rules directory and SQLite file; after zero2prod's `spawn_app`), or as a
//! real `hookflow serve` child process (`Server`) for the tests that kill
//! it, signal it or need their own process (crash trials, disk full).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hookflow::app::App;
use hookflow::config::{SettingValue, Settings};
use hookflow::reload::Reloader;
use hookflow::shutdown::Trigger;
use hookflow::store::Store;

use super::wait;

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
    /// More directories the app reads from (secret files), kept as long.
    kept: Vec<tempfile::TempDir>,
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
        kept: Vec::new(),
    }
}

/// The app's tasks stop with the test, not with its runtime's teardown.
impl Drop for TestApp {
    fn drop(&mut self) {
        self.trigger.trigger();
    }
}

impl TestApp {
    /// Keeps `dir` (say, one holding a `${file:PATH}` secret) as long as the app.
    pub fn keep(&mut self, dir: tempfile::TempDir) {
        self.kept.push(dir);
    }

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

// ------------------------------------------------- a `hookflow serve` child

/// A running `hookflow serve`. Killed (SIGKILL) when dropped.
pub struct Server {
    pub addr: SocketAddr,
    child: Child,
    /// The last lines of its log, for failure messages.
    log: Arc<Mutex<Vec<String>>>,
}

/// How many log lines a `Server` keeps for failure messages.
const LOG_TAIL: usize = 40;

impl Server {
    /// Starts `hookflow serve` in `dir` with `args` after `serve --listen
    /// 127.0.0.1:0`, and `envs` set. Returns once it logged its address.
    ///
    /// The admin listener (a fixed port by default) gets port 0 through
    /// the environment, so servers of concurrent tests never collide.
    pub fn start(dir: &Path, args: &[&str], envs: &[(&str, &str)]) -> Server {
        let mut command = Command::new(env!("CARGO_BIN_EXE_hookflow"));
        command
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(args)
            .current_dir(dir)
            .env_remove("RUST_LOG")
            .env("HOOKFLOW_ADMIN_LISTEN", "127.0.0.1:0")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in envs {
            command.env(k, v);
        }
        let mut child = command.spawn().expect("start hookflow serve");
        let stderr = child.stderr.take().expect("piped stderr");
        let log: Arc<Mutex<Vec<String>>> = Arc::default();
        let (tx, rx) = mpsc::channel();
        let tail = log.clone();
        // Reads the log to its end, so the child never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if !sent && let Some(addr) = listening_address(&line) {
                    sent = tx.send(addr).is_ok();
                }
                let mut tail = tail.lock().unwrap_or_else(|p| p.into_inner());
                if tail.len() == LOG_TAIL {
                    tail.remove(0);
                }
                tail.push(line);
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(addr) => addr,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "hookflow serve did not log its address:\n{}",
                    log.lock().unwrap_or_else(|p| p.into_inner()).join("\n")
                );
            }
        };
        Server { addr, child, log }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Polls `/readyz` until it answers 200.
    pub async fn wait_ready(&self, client: &reqwest::Client) {
        let url = self.url("/readyz");
        let what = format!("{url} to answer 200");
        wait::for_ok(&what, Duration::from_secs(30), || async {
            match client.get(&url).send().await {
                Ok(resp) if resp.status().is_success() => Ok(()),
                Ok(resp) => Err(format!("{}\n{}", resp.status(), self.log_tail())),
                Err(e) => Err(format!("{e}\n{}", self.log_tail())),
            }
        })
        .await;
    }

    /// SIGKILL, and reap it.
    pub fn kill(&mut self) {
        let _ = self.child.kill(); // std's kill is SIGKILL on Unix
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits up to `grace` for it to exit (SIGKILL after).
    /// True when it exited by itself.
    pub fn terminate(&mut self, grace: Duration) -> bool {
        let Ok(pid) = libc::pid_t::try_from(self.child.id()) else {
            self.kill();
            return false;
        };
        // SAFETY: `pid` is our own child, not yet reaped (so not reused).
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return true;
            }
            std::thread::sleep(wait::POLL);
        }
        self.kill();
        false
    }

    /// The last lines it logged.
    pub fn log_tail(&self) -> String {
        self.log
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .join("\n")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `… hookflow listening address=127.0.0.1:PORT …` → the address.
fn listening_address(line: &str) -> Option<SocketAddr> {
    if !line.contains("hookflow listening") {
        return None;
    }
    let rest = line.split("address=").nth(1)?;
    let token = rest.split_whitespace().next()?;
    token.trim_matches('"').parse().ok()
}

/// A fresh directory holding `rules/rules.yaml`.
pub fn rules_dir(yaml: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir_all(dir.path().join("rules")).expect("rules dir");
    std::fs::write(dir.path().join("rules/rules.yaml"), yaml).expect("rules");
    dir
}

/// `X-Hub-Signature-256` of `body` under `secret`, as GitHub sends it.
pub fn github_signature(secret: &str, body: &[u8]) -> String {
    use hmac::{KeyInit, Mac};
    let mut mac =
        hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}
