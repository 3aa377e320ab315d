//! The `hookflow serve` process against hostile clients and careless
//! surroundings (issue #11): a log pipe that closes, slowloris floods
//! under a low descriptor limit, half-sent requests at shutdown, a port
//! already taken, public default secrets, an idle node that writes.
//! Every test runs the real binary on loopback.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::app::{Server, serve};
use crate::common::cli::in_own_process;
use crate::common::wait;

const SOURCES: &str = "sources:\n  hooks:\n    verify: { token: { header: X-T, value: \"${HOOK_TOKEN}\" } }\nrules:\n  - name: log\n    source: hooks\n    actions: [{ shell: { command: [\"true\"] } }]\n";

/// A rules directory and a database path in a fresh temp dir.
struct Dir {
    dir: tempfile::TempDir,
}

impl Dir {
    fn new(rules: &str) -> Dir {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir(dir.path().join("rules")).expect("rules dir");
        std::fs::write(dir.path().join("rules/hooks.yaml"), rules).expect("rules");
        Dir { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `hookflow serve` on port 0, JSON logs, a short grace.
    fn serve(&self, extra: &[&str]) -> Command {
        let mut args = vec!["--shutdown-grace", "2s"];
        args.extend_from_slice(extra);
        serve(self.dir.path(), &args, &[("HOOK_TOKEN", "t0ken")])
    }
}

async fn deliver(client: &reqwest::Client, server: &Server, n: usize) -> reqwest::Response {
    client
        .post(server.url("/hooks/hooks"))
        .header("X-T", "t0ken")
        .header("Idempotency-Key", format!("key-{n}"))
        .body(format!("{{\"n\":{n}}}"))
        .send()
        .await
        .expect("the server answers")
}

#[tokio::test]
async fn a_closed_log_pipe_neither_drops_deliveries_nor_blocks_shutdown() {
    let dir = Dir::new(SOURCES);
    // The reader of the log goes away (`hookflow serve 2>&1 | head -2`).
    let mut server = Server::start_closing_log(dir.serve(&[]));
    let client = reqwest::Client::new();
    for n in 0..50 {
        let answer = deliver(&client, &server, n).await;
        assert_eq!(answer.status().as_u16(), 202, "delivery {n}");
    }
    let ready = client
        .get(server.url("/readyz"))
        .send()
        .await
        .expect("readyz");
    assert_eq!(ready.status().as_u16(), 200);
    server.sigterm();
    let status = server
        .exit_within(Duration::from_secs(10))
        .expect("SIGTERM ends the process within the grace");
    assert!(status.success(), "a clean exit, not a panic: {status:?}");
}

#[test]
fn a_log_pipe_closed_at_start_does_not_stop_serve() {
    // `hookflow serve 2>&1 | head -1`: the pipe closes after one line.
    let dir = Dir::new(SOURCES);
    let mut cmd = dir.serve(&[]);
    let mut child = cmd.spawn().expect("spawn");
    let mut stderr = child.stderr.take().expect("stderr");
    let mut first = [0u8; 1];
    stderr.read_exact(&mut first).expect("some log output");
    drop(stderr);
    // Not synchronisation: the scenario is serve living on for a while
    // (writing its log into the closed pipe) after its reader left.
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        child.try_wait().expect("wait").is_none(),
        "serve must keep running when its log reader leaves"
    );
    let _ = child.kill();
    let _ = child.wait();
}

/// Sets a hard descriptor limit in the child before it starts.
fn with_descriptor_limit(cmd: &mut Command, limit: u64) {
    // SAFETY: setrlimit is async-signal-safe; nothing else runs in between.
    unsafe {
        cmd.pre_exec(move || {
            let rl = libc::rlimit {
                rlim_cur: limit,
                rlim_max: limit,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &rl) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
}

/// Raises this process's own soft limit: the test holds 2,000 sockets.
fn raise_own_descriptor_limit() -> u64 {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: get/setrlimit read and write the struct passed.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl);
        rl.rlim_cur = rl.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &rl);
    }
    rl.rlim_cur
}

/// 2,000 slowloris connections (a header byte every 2 s, reconnecting when
/// closed) against a server limited to 1,024 descriptors: a signed
/// delivery still gets its 202, and quickly.
///
/// In a process of its own: it raises this process's descriptor limit and
/// holds 2,000 sockets, which would starve the tests running beside it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_connections_cannot_take_the_server_off_the_air() {
    if in_own_process(
        module_path!(),
        "slowloris_connections_cannot_take_the_server_off_the_air",
    ) {
        return;
    }
    const SLOW: usize = 2_000;
    if raise_own_descriptor_limit() < (SLOW as u64 + 200) {
        eprintln!("skipped: this process may not open {SLOW} sockets");
        return;
    }
    let dir = Dir::new(SOURCES);
    let mut cmd = dir.serve(&["--workers", "0"]);
    with_descriptor_limit(&mut cmd, 1024);
    let server = Server::start(cmd);
    let addr = server.addr;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reconnects = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let connected = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut slow = tokio::task::JoinSet::new();
    for _ in 0..SLOW {
        let stop = stop.clone();
        let reconnects = reconnects.clone();
        let connected = connected.clone();
        slow.spawn(async move {
            use tokio::io::AsyncWriteExt;
            let header = b"POST /hooks/hooks HTTP/1.1\r\nHost: x\r\nX-Slow: ";
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let Ok(mut socket) = tokio::net::TcpStream::connect(addr).await else {
                    // The attacker's pace, not synchronisation.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                connected.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                for byte in header.iter().chain(std::iter::repeat(&b'a')) {
                    if stop.load(std::sync::atomic::Ordering::Relaxed)
                        || socket.write_all(&[*byte]).await.is_err()
                    {
                        break;
                    }
                    // Slowloris: one header byte every 2 s (the scenario).
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
                reconnects.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                // The attacker's pace, not synchronisation.
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        });
    }
    // Every slowloris connection is open…
    wait::until(
        "the slowloris connections to open",
        Duration::from_secs(60),
        || async { connected.load(std::sync::atomic::Ordering::Relaxed) >= SLOW },
    )
    .await;
    // …and, the scenario rather than synchronisation, the flood goes on
    // for a few rounds of trickling (header deadlines pass, slots recycle).
    tokio::time::sleep(Duration::from_secs(5)).await;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let mut worst = Duration::ZERO;
    for n in 0..5 {
        let started = Instant::now();
        let answer = client
            .post(server.url("/hooks/hooks"))
            .header("X-T", "t0ken")
            .body(format!("{{\"n\":{n}}}"))
            .send()
            .await
            .expect("a signed delivery is answered within 10 s during the flood");
        assert_eq!(answer.status().as_u16(), 202);
        worst = worst.max(started.elapsed());
        let health = client
            .get(server.url("/healthz"))
            .send()
            .await
            .expect("healthz");
        assert_eq!(health.status().as_u16(), 200);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    slow.abort_all();
    eprintln!(
        "slowloris: {SLOW} connections, {} closed by the server and reopened; slowest of 5 deliveries {worst:?}",
        reconnects.load(std::sync::atomic::Ordering::Relaxed)
    );
}

/// A request whose headers never finish, and one whose body never does,
/// do not hold SIGTERM past the grace (2 s here).
#[tokio::test]
async fn sigterm_with_half_sent_requests_exits_within_the_grace() {
    let dir = Dir::new(SOURCES);
    let mut server = Server::start(dir.serve(&[]));
    let before = server.open_descriptors();
    let mut half_header = std::net::TcpStream::connect(server.addr).expect("connect");
    half_header
        .write_all(b"POST /hooks/hooks HTTP/1.1\r\nHost: x\r\nContent-Le")
        .expect("write");
    let mut half_body = std::net::TcpStream::connect(server.addr).expect("connect");
    half_body
        .write_all(b"POST /hooks/hooks HTTP/1.1\r\nHost: x\r\nX-T: t0ken\r\nContent-Length: 100\r\n\r\n{\"a\":")
        .expect("write");
    // Both are in the server's hands once it accepted them (two more
    // descriptors), not merely in the kernel's backlog.
    wait::blocking(
        "serve to accept the two half-sent requests",
        Duration::from_secs(10),
        || server.open_descriptors() >= before + 2,
    );
    let started = Instant::now();
    server.sigterm();
    let status = server
        .exit_within(Duration::from_secs(8))
        .expect("the process exits within the grace plus a little");
    assert!(status.success(), "{status:?}");
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
    drop((half_header, half_body));
}

#[test]
fn a_port_in_use_fails_before_the_database_is_touched() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").to_string();
    let dir = Dir::new(SOURCES);
    let mut cmd = dir.serve(&["--listen", &port]);
    let output = cmd.stderr(Stdio::piped()).output().expect("run serve");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&port) && stderr.to_lowercase().contains("in use"),
        "{stderr}"
    );
    assert!(
        !dir.path("hookflow.db").exists(),
        "no database created: {stderr}"
    );
    assert!(
        !stderr.contains("engine started"),
        "no workers started: {stderr}"
    );
}

#[test]
fn database_problems_are_named_once() {
    let dir = Dir::new(SOURCES);
    let missing = dir.path("nowhere/hookflow.db");
    let output = dir
        .serve(&["--db", &format!("sqlite://{}", missing.display())])
        .output()
        .expect("run serve");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let cause = "does not exist";
    assert_eq!(stderr.matches(cause).count(), 1, "said once: {stderr}");
    assert!(stderr.contains("nowhere"), "{stderr}");
    assert!(!stderr.contains("unable to open database file"), "{stderr}");
}

/// With no traffic and no probes, a server with workers writes nothing:
/// its idle polls of the queue are not commits.
#[tokio::test]
async fn an_idle_server_commits_nothing() {
    let dir = Dir::new(SOURCES);
    let server = Server::start(dir.serve(&["--workers", "2"]));
    let client = reqwest::Client::new();
    // One delivery, so the store has written and the run has finished.
    assert_eq!(deliver(&client, &server, 1).await.status().as_u16(), 202);
    let commits = || server.metric(&client, "hookflow_store_commit_seconds_count");
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut before = commits().await;
    loop {
        // The sampling period of the measurement, not synchronisation.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let now = commits().await;
        if now == before {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still committing while idle: {before} → {now}"
        );
        before = now;
    }
    assert!(before >= 1.0, "the delivery was a commit");
    // The scenario: 2 s of idleness, in which nothing may be written.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(commits().await, before, "idle for 2 s: no commit");
}

const DEFAULTED: &str = "sources:\n  gh:\n    verify: { github: { secret: \"${HOOKFLOW_TEST_UNSET_SECRET:-a-public-default}\" } }\n";

/// SPEC §10: a verifier secret from its public `${NAME:-default}` stops
/// `serve`, naming the variable, unless `--dev`, which serves loopback only.
#[test]
fn a_public_default_secret_is_refused_unless_dev_on_loopback() {
    let dir = Dir::new(DEFAULTED);
    let output = dir
        .serve(&[])
        .env_remove("HOOKFLOW_TEST_UNSET_SECRET")
        .output()
        .expect("run serve");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("HOOKFLOW_TEST_UNSET_SECRET") && stderr.contains("--dev"),
        "{stderr}"
    );
    assert!(
        !dir.path("hookflow.db").exists(),
        "refused before anything started"
    );

    let output = dir
        .serve(&["--dev", "--listen", "0.0.0.0:0"])
        .env_remove("HOOKFLOW_TEST_UNSET_SECRET")
        .output()
        .expect("run serve");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("loopback"), "{stderr}");

    let mut cmd = dir.serve(&["--dev"]);
    cmd.env_remove("HOOKFLOW_TEST_UNSET_SECRET");
    let mut server = Server::start(cmd);
    server.sigterm();
    assert!(
        server
            .exit_within(Duration::from_secs(10))
            .is_some_and(|s| s.success())
    );

    // With the variable set, no --dev is needed.
    let mut cmd = dir.serve(&[]);
    cmd.env("HOOKFLOW_TEST_UNSET_SECRET", "a-real-secret");
    let mut server = Server::start(cmd);
    server.sigterm();
    assert!(
        server
            .exit_within(Duration::from_secs(10))
            .is_some_and(|s| s.success())
    );
}

/// A database on a read-only mount: `serve` refuses to start with one
/// sentence instead of serving and failing every write and checkpoint.
/// Needs root (to mount a tmpfs); elsewhere it says it skipped.
#[test]
fn a_read_only_database_refuses_to_start() {
    let dir = Dir::new(SOURCES);
    let mount_at = dir.path("ro");
    std::fs::create_dir(&mount_at).expect("mount point");
    let mount = |args: &[&str]| {
        Command::new("mount")
            .args(args)
            .arg(&mount_at)
            .status()
            .is_ok_and(|s| s.success())
    };
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 || !mount(&["-t", "tmpfs", "-o", "size=4m", "tmpfs"]) {
        eprintln!("skipped: cannot mount a tmpfs here (needs root)");
        return;
    }
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(mount_at.clone());
    let db = format!("sqlite://{}", mount_at.join("hookflow.db").display());
    // A database made while writable, then the mount turned read-only.
    let mut server = Server::start(dir.serve(&["--db", &db]));
    server.sigterm();
    assert!(server.exit_within(Duration::from_secs(10)).is_some());
    assert!(mount(&["-o", "remount,ro"]), "remount read-only");
    let started = Instant::now();
    let output = dir.serve(&["--db", &db]).output().expect("run serve");
    assert!(
        !output.status.success(),
        "must not serve on a read-only database"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("hookflow.db") && stderr.contains("writ"),
        "{stderr}"
    );
    assert!(!stderr.contains("checkpoint"), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

/// A self-signed pair for `localhost`: (certificate PEM, key PEM).
fn self_signed() -> (String, String) {
    let made =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("a certificate");
    (made.cert.pem(), made.signing_key.serialize_pem())
}

/// A client that trusts only `cert_pem` and sends `localhost` to `addr`.
fn trusting(cert_pem: &str, addr: SocketAddr) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(cert_pem.as_bytes()).expect("pem")])
        .resolve("localhost", addr)
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client")
}

/// Writes a file the way deploy tools do: a temp file renamed over.
fn replace(path: &std::path::Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).expect("write");
    std::fs::rename(&tmp, path).expect("rename");
}

/// `tls: { cert, key }` serves HTTPS; a new pair is picked up while
/// serving, and a pair that fails to load leaves the previous one in use.
#[tokio::test]
async fn https_with_a_pair_swapped_while_serving() {
    let dir = Dir::new(SOURCES);
    let (cert_a, key_a) = self_signed();
    let (cert_path, key_path) = (dir.path("cert.pem"), dir.path("key.pem"));
    replace(&cert_path, &cert_a);
    replace(&key_path, &key_a);
    let cmd = dir.serve(&[
        "--tls-cert",
        cert_path.to_str().unwrap(),
        "--tls-key",
        key_path.to_str().unwrap(),
    ]);
    let server = Server::start(cmd);
    let url = format!("https://localhost:{}/hooks/hooks", server.addr.port());
    let post = |client: reqwest::Client| {
        let url = url.clone();
        async move {
            client
                .post(&url)
                .header("X-T", "t0ken")
                .body("{}")
                .send()
                .await
        }
    };
    let answer = post(trusting(&cert_a, server.addr))
        .await
        .expect("HTTPS with pair A");
    assert_eq!(answer.status().as_u16(), 202);
    // Plain HTTP on the TLS port is not served.
    let plain = reqwest::Client::new()
        .get(format!("http://{}/healthz", server.addr))
        .send()
        .await;
    assert!(plain.map(|r| !r.status().is_success()).unwrap_or(true));

    // Swap in pair B: within a few seconds B is served.
    let (cert_b, key_b) = self_signed();
    replace(&key_path, &key_b);
    replace(&cert_path, &cert_b);
    wait::until("pair B to be served", Duration::from_secs(20), || async {
        post(trusting(&cert_b, server.addr)).await.is_ok()
    })
    .await;
    assert!(
        post(trusting(&cert_a, server.addr)).await.is_err(),
        "pair A is gone"
    );

    // A broken certificate file: once serve tried it and logged so, B
    // stays in use.
    let refused = "TLS certificate not reloaded";
    let refusals_before = server.log().matches(refused).count();
    replace(
        &cert_path,
        "-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n",
    );
    wait::until(
        "serve to refuse the broken pair",
        Duration::from_secs(20),
        || async { server.log().matches(refused).count() > refusals_before },
    )
    .await;
    let answer = post(trusting(&cert_b, server.addr))
        .await
        .expect("B still served");
    assert_eq!(answer.status().as_u16(), 202);
}

/// Over the listener's own TLS the dashboard's session cookie is `Secure`
/// (with a token, the dashboard is served on the webhook listener too).
#[tokio::test]
async fn over_https_the_dashboard_cookie_is_secure() {
    let dir = Dir::new(SOURCES);
    let (cert, key) = self_signed();
    replace(&dir.path("cert.pem"), &cert);
    replace(&dir.path("key.pem"), &key);
    let (cert_path, key_path) = (
        dir.path("cert.pem").display().to_string(),
        dir.path("key.pem").display().to_string(),
    );
    let server = Server::start(dir.serve(&[
        "--tls-cert",
        &cert_path,
        "--tls-key",
        &key_path,
        "--admin-token",
        "tls-admin-t0ken",
    ]));
    let page = trusting(&cert, server.addr)
        .get(format!("https://localhost:{}/ui/login", server.addr.port()))
        .send()
        .await
        .expect("login page over HTTPS");
    assert_eq!(page.status().as_u16(), 200);
    let cookie = page
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("hookflow_session="))
        .expect("a session cookie")
        .to_owned();
    assert!(cookie.ends_with("; Secure"), "{cookie}");
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
}

#[test]
fn a_certificate_that_cannot_load_stops_serve_at_start() {
    let dir = Dir::new(SOURCES);
    std::fs::write(dir.path("cert.pem"), "nothing").expect("write");
    std::fs::write(dir.path("key.pem"), "nothing").expect("write");
    let cert = dir.path("cert.pem").display().to_string();
    let key = dir.path("key.pem").display().to_string();
    let output = dir
        .serve(&["--tls-cert", &cert, "--tls-key", &key])
        .output()
        .expect("run serve");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("cert.pem"), "{stderr}");
    assert!(!dir.path("hookflow.db").exists(), "{stderr}");
}
