//! Headless chromium for the dashboard's browser tests: starts Debian's
//! `chromedriver` on a free port, opens a WebDriver session (fantoccini)
//! that records the browser console, and on a failed test saves a
//! screenshot under `<target>/ui-screenshots/`.
//!
//! A missing chromedriver fails the test loudly with what to install; it
//! never passes silently (CI's `.ci/run` installs it).

use std::future::Future;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder};
use serde_json::{Value, json};

/// How long any browser wait may take before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(20);

pub struct Browser {
    pub client: Client,
    _driver: Driver,
    port: u16,
}

/// The chromedriver process, stopped when dropped (also when a test fails
/// before its session opens) together with the chromium it started: it
/// runs in a process group of its own, and the whole group is killed.
/// Killing chromedriver alone left its browsers running, orphaned; a few
/// dozen of them used up the user's inotify instances (128 by default),
/// and every app of a later test failed to watch its rules.
struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        if let Ok(pid) = libc::pid_t::try_from(self.0.id()) {
            // SAFETY: kill(2) on the group led by our own child, not yet
            // reaped (so its pid, the group id, is not reused).
            unsafe { libc::kill(-pid, libc::SIGKILL) };
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `chromedriver` from `$CHROMEDRIVER`, else from `PATH`.
fn chromedriver() -> PathBuf {
    if let Some(path) = std::env::var_os("CHROMEDRIVER") {
        return PathBuf::from(path);
    }
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("chromedriver"))
            .find(|p| p.is_file())
    });
    found.unwrap_or_else(|| {
        panic!(
            "the dashboard's browser tests need chromedriver and chromium, and neither is \
             installed here: run `apt-get install -y chromium chromium-driver` (Debian; \
             .ci/run does this), or point $CHROMEDRIVER at a chromedriver"
        )
    })
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("its address").port()
}

/// A headless chromium window of `width` × `height` CSS pixels.
pub async fn open(width: u32, height: u32) -> Browser {
    let port = free_port();
    let driver = Driver(
        Command::new(chromedriver())
            .arg(format!("--port={port}"))
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts"),
    );
    let mut browser_args = vec![
        "--headless=new".to_owned(),
        "--disable-gpu".to_owned(),
        "--disable-dev-shm-usage".to_owned(),
        "--no-first-run".to_owned(),
        format!("--window-size={width},{height}"),
    ];
    // Root (CI containers) cannot use chromium's sandbox.
    // SAFETY: geteuid only reads the process's user id.
    if unsafe { libc::geteuid() } == 0 {
        browser_args.push("--no-sandbox".to_owned());
    }
    let mut caps = serde_json::Map::new();
    // Desktop windows are at least 500 px wide: narrower is a phone's
    // screen, emulated.
    let options = if width < 500 {
        json!({ "args": browser_args, "mobileEmulation": {
            "deviceMetrics": { "width": width, "height": height, "pixelRatio": 1.0 } } })
    } else {
        json!({ "args": browser_args })
    };
    caps.insert("goog:chromeOptions".into(), options);
    caps.insert("goog:loggingPrefs".into(), json!({ "browser": "ALL" }));
    let url = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    let client = loop {
        let mut builder = ClientBuilder::rustls().expect("a TLS connector for fantoccini");
        match builder.capabilities(caps.clone()).connect(&url).await {
            Ok(client) => break client,
            Err(_) if started.elapsed() < DEADLINE => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("no WebDriver session from chromedriver on {url}: {e}"),
        }
    };
    Browser {
        client,
        _driver: driver,
        port,
    }
}

/// Reads the browser console of a session.
#[derive(Clone)]
pub struct Console {
    client: Client,
    port: u16,
}

impl Console {
    /// The console's errors since the last call (chromedriver's log
    /// endpoint; W3C WebDriver has none).
    pub async fn errors(&self) -> Vec<Value> {
        let session = self
            .client
            .session_id()
            .await
            .expect("session id")
            .expect("a session");
        let url = format!("http://127.0.0.1:{}/session/{session}/se/log", self.port);
        let answer: Value = reqwest::Client::new()
            .post(url)
            .json(&json!({ "type": "browser" }))
            .send()
            .await
            .expect("chromedriver's log endpoint answers")
            .json()
            .await
            .expect("a JSON log");
        let entries = answer["value"].as_array().cloned().unwrap_or_default();
        entries
            .into_iter()
            .filter(|entry| entry["level"] == "SEVERE")
            .collect()
    }
}

impl Browser {
    pub fn console(&self) -> Console {
        Console {
            client: self.client.clone(),
            port: self.port,
        }
    }

    /// Fails when the console holds an error (a CSP violation, a script
    /// error, a failed request).
    pub async fn assert_no_console_errors(&self) {
        let errors = self.console().errors().await;
        assert!(errors.is_empty(), "console errors: {errors:#?}");
    }

    /// Runs `scenario`; if it fails, saves a screenshot named `name` first.
    pub async fn run<F, Fut>(&self, name: &str, scenario: F)
    where
        F: FnOnce(Client) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let outcome = tokio::spawn(scenario(self.client.clone())).await;
        if let Err(failure) = outcome {
            let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
                .parent()
                .map_or_else(|| PathBuf::from("target"), PathBuf::from)
                .join("ui-screenshots");
            let path = dir.join(format!("{name}.png"));
            match self.client.screenshot().await {
                Ok(png) => {
                    let _ = std::fs::create_dir_all(&dir);
                    match std::fs::write(&path, png) {
                        Ok(()) => eprintln!("screenshot of the failure: {}", path.display()),
                        Err(e) => eprintln!("could not save {}: {e}", path.display()),
                    }
                }
                Err(e) => eprintln!("no screenshot: {e}"),
            }
            std::panic::resume_unwind(failure.into_panic());
        }
    }
}

/// Waits until `check` gives `Some`, or fails after [`DEADLINE`] saying `what`.
pub async fn wait_for<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "timed out after {DEADLINE:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
