//! A real `hookflow serve` child process for the fault tests (crash trials,
//! disk full): started on `127.0.0.1:0` in a directory of its own, its
//! listening address read from its log, stopped by SIGKILL or SIGTERM.
//! Unlike `common`'s in-process server, it can be killed like a real one.
#![allow(dead_code)] // each test binary uses a different part

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(resp) = client.get(self.url("/readyz")).send().await
                && resp.status().is_success()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the server did not become ready:\n{}", self.log_tail());
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
            std::thread::sleep(Duration::from_millis(20));
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
