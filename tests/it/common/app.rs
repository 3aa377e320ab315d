//! Starting hookflow for a test: in process (`spawn_app`: `App::build`
//! then `run`, exactly as `hookflow serve` does, on port 0 with its own
//! rules directory and SQLite file; after zero2prod's `spawn_app`), or as a
//! real `hookflow serve` child process (`Server`) for the tests that kill
//! it, signal it or need their own process (crash trials, disk full).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
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

/// `hookflow serve` in `dir`: both listeners on 127.0.0.1:0 (so servers of
/// concurrent tests never collide), JSON logs at info, `--rules
/// DIR/rules` and `--db sqlite://DIR/hookflow.db` unless `args` name
/// others, then `args`; `envs` set and no `HOOKFLOW_*` variable of the
/// test's own environment. Start it with `Server::start`.
pub fn serve(dir: &Path, args: &[&str], envs: &[(&str, &str)]) -> Command {
    let given = |flag: &str| args.contains(&flag);
    let mut command = Command::new(env!("CARGO_BIN_EXE_hookflow"));
    command.current_dir(dir).arg("serve");
    if !given("--listen") {
        command.args(["--listen", "127.0.0.1:0"]);
    }
    if !given("--admin-listen") {
        command.args(["--admin-listen", "127.0.0.1:0"]);
    }
    if !given("--rules") {
        command.arg("--rules").arg(dir.join("rules"));
    }
    if !given("--db") {
        command
            .arg("--db")
            .arg(format!("sqlite://{}", dir.join("hookflow.db").display()));
    }
    command
        .args(["--log-format", "json"])
        .args(args)
        .env("RUST_LOG", "hookflow=info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("HOOKFLOW_") {
            command.env_remove(name);
        }
    }
    for (k, v) in envs {
        command.env(k, v);
    }
    command
}

/// A running `hookflow serve`, started on the addresses its JSON start
/// line gave. Killed (SIGKILL) when dropped.
pub struct Server {
    /// The webhook listener.
    pub addr: SocketAddr,
    /// The admin listener (`/api`, `/metrics`).
    pub admin: SocketAddr,
    child: Child,
    /// Every line it wrote (stderr and stdout), read as it comes so the
    /// child never blocks on a full pipe.
    log: Arc<Mutex<Vec<String>>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

/// How many log lines failure messages show.
const LOG_TAIL: usize = 40;

/// How long `serve` may take to log its start line.
const START: Duration = Duration::from_secs(30);

impl Server {
    /// Spawns `command` (from `serve`) and returns once it logged where it
    /// listens; fails the test if it exits or stays silent first.
    pub fn start(command: Command) -> Server {
        Server::spawn(command, false)
    }

    /// Like `start`, then closes the read end of its stderr, as a log
    /// reader that went away (`hookflow serve 2>&1 | head -2`).
    pub fn start_closing_log(command: Command) -> Server {
        Server::spawn(command, true)
    }

    fn spawn(mut command: Command, close_stderr: bool) -> Server {
        let mut child = command.spawn().expect("spawn hookflow serve");
        let log: Arc<Mutex<Vec<String>>> = Arc::default();
        let (tx, rx) = mpsc::channel();
        let mut readers = Vec::new();
        let stdout = child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>);
        let stderr = child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>);
        for (stream, is_stderr) in [(stderr, true), (stdout, false)] {
            let Some(stream) = stream else { continue };
            let (tx, log) = (tx.clone(), log.clone());
            let close_after_start = close_stderr && is_stderr;
            readers.push(std::thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    let started = start_line(&line);
                    lock(&log).push(line);
                    if let Some(addrs) = started {
                        let _ = tx.send(addrs);
                        if close_after_start {
                            return; // drops the pipe's read end
                        }
                    }
                }
            }));
        }
        drop(tx);
        let mut server = Server {
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            admin: SocketAddr::from(([0, 0, 0, 0], 0)),
            child,
            log,
            readers,
        };
        match rx.recv_timeout(START) {
            Ok((addr, admin)) => {
                server.addr = addr;
                server.admin = admin;
                server
            }
            Err(_) => {
                let status = server.child.try_wait();
                panic!(
                    "hookflow serve did not log its start line within {START:?} (exit: {status:?}):\n{}",
                    server.log_tail()
                );
            }
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{}", self.admin, path)
    }

    /// The sum of every series of metric `name` (all its label sets) on
    /// its `/metrics` now.
    pub async fn metric(&self, client: &reqwest::Client, name: &str) -> f64 {
        let text = client
            .get(self.admin_url("/metrics"))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text");
        text.lines()
            .filter(|l| l.starts_with(name))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
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

    /// Sends SIGTERM.
    pub fn sigterm(&self) {
        self.signal(libc::SIGTERM);
    }

    /// Sends SIGHUP (reload the rules).
    pub fn sighup(&self) {
        self.signal(libc::SIGHUP);
    }

    fn signal(&self, signal: libc::c_int) {
        let pid = libc::pid_t::try_from(self.child.id()).expect("a pid");
        // SAFETY: kill(2) on our own child, not yet reaped (so not reused).
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0, "signal {signal}");
    }

    /// Waits up to `within` for the process to exit; its status if it did.
    pub fn exit_within(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for serve") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(wait::POLL);
        }
    }

    /// SIGTERM, then waits up to `grace` for it to exit (SIGKILL after).
    /// True when it exited by itself.
    pub fn terminate(&mut self, grace: Duration) -> bool {
        self.sigterm();
        if self.exit_within(grace).is_some() {
            return true;
        }
        self.kill();
        false
    }

    /// Everything it logged, once it exited (kill or terminate it first):
    /// waits for the readers to reach the end of its output.
    pub fn full_log(&mut self) -> String {
        assert!(
            self.child.try_wait().is_ok_and(|s| s.is_some()),
            "full_log needs the process to have exited"
        );
        let readers = std::mem::take(&mut self.readers);
        wait::blocking("the log readers to finish", Duration::from_secs(10), || {
            readers.iter().all(|r| r.is_finished())
        });
        lock(&self.log).join("\n")
    }

    /// What it logged so far.
    pub fn log(&self) -> String {
        lock(&self.log).join("\n")
    }

    /// How many descriptors it has open (Linux: `/proc/PID/fd`).
    pub fn open_descriptors(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.child.id()))
            .map(|dir| dir.count())
            .unwrap_or(0)
    }

    /// The last lines it logged.
    pub fn log_tail(&self) -> String {
        let log = lock(&self.log);
        log[log.len().saturating_sub(LOG_TAIL)..].join("\n")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A poisoned lock only means a reader thread panicked mid-push.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The JSON start line (`fields.message == "hookflow listening"`) → the
/// webhook and admin addresses.
fn start_line(line: &str) -> Option<(SocketAddr, SocketAddr)> {
    let json: serde_json::Value = serde_json::from_str(line).ok()?;
    let fields = &json["fields"];
    if fields["message"] != "hookflow listening" {
        return None;
    }
    let addr = fields["address"].as_str()?.parse().ok()?;
    let admin = fields["admin"].as_str()?.parse().ok()?;
    Some((addr, admin))
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
