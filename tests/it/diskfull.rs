//! A full disk (issue #11, item 8): a real `hookflow serve` keeps its
//! database on an 8 MiB tmpfs that deliveries flood until nothing more
//! fits. A 2xx must only ever answer a stored delivery; a full disk answers
//! 503 and `/readyz` says 503; once space is freed (a filler file beside
//! the database is deleted) the same process takes deliveries again and is
//! ready, without a restart, and the database passes `integrity_check`.
//!
//! Mounting needs root: otherwise the test prints why it skipped and passes.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::app::{Server, rules_dir, serve};
use crate::common::wait;

const RULES: &str = r#"
sources:
  flood:
    verify: { token: { header: X-Token, value: disk-full-token } }
rules:
  - name: none
    source: flood
    when: { path: $.never, exists: true }
    actions:
      - shell: { command: ["true"] }
"#;

/// Space the filler file holds back, freed to recover.
const FILLER_BYTES: usize = 2 * 1024 * 1024;

/// A tmpfs mounted for the test; unmounted when dropped (lazily if busy).
struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    fn mount(path: &Path, size: &str) -> Result<Tmpfs, String> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Err("not running as root, cannot mount a tmpfs".to_owned());
        }
        std::fs::create_dir_all(path).map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount -t tmpfs failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Tmpfs {
            path: path.to_path_buf(),
        })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let unmounted = Command::new("umount")
            .arg(&self.path)
            .status()
            .is_ok_and(|s| s.success());
        if !unmounted {
            let _ = Command::new("umount").arg("-l").arg(&self.path).status();
        }
    }
}

/// A body of `len` bytes that no file system could compress away.
fn body(rng: &mut fastrand::Rng, len: usize) -> String {
    let filler: String = std::iter::repeat_with(|| rng.alphanumeric())
        .take(len)
        .collect();
    format!(r#"{{"filler":"{filler}"}}"#)
}

/// Posts one delivery: its status and, for a 2xx, the delivery id.
async fn post(http: &reqwest::Client, server: &Server, body: String) -> (u16, Option<String>) {
    let resp = http
        .post(server.url("/hooks/flood"))
        .header("content-type", "application/json")
        .header("X-Token", "disk-full-token")
        .body(body)
        .send()
        .await
        .expect("the server answers while the disk is full");
    let status = resp.status().as_u16();
    let id = if resp.status().is_success() {
        let v: serde_json::Value = resp.json().await.expect("a 2xx carries JSON");
        Some(v["delivery"].as_str().expect("a delivery id").to_owned())
    } else {
        None
    };
    (status, id)
}

async fn readyz(http: &reqwest::Client, server: &Server) -> u16 {
    http.get(server.url("/readyz"))
        .send()
        .await
        .expect("/readyz answers")
        .status()
        .as_u16()
}

/// Floods with `len`-byte bodies until `streak` answers in a row are 503.
/// Returns every id answered 2xx; any status but 202 and 503 fails.
async fn flood_until_full(
    http: &reqwest::Client,
    server: &Server,
    rng: &mut fastrand::Rng,
    len: usize,
    streak: usize,
) -> (Vec<String>, usize) {
    let mut acked = Vec::new();
    let mut refused = 0;
    let mut in_a_row = 0;
    let deadline = Instant::now() + Duration::from_secs(120);
    while in_a_row < streak {
        assert!(
            Instant::now() < deadline,
            "the disk never filled up ({} deliveries of {len} bytes accepted)\n{}",
            acked.len(),
            server.log_tail()
        );
        match post(http, server, body(rng, len)).await {
            (202, Some(id)) => {
                acked.push(id);
                in_a_row = 0;
            }
            (503, _) => {
                refused += 1;
                in_a_row += 1;
            }
            (status, _) => panic!(
                "a delivery got {status}: only 202 (stored) or 503 (full) may answer\n{}",
                server.log_tail()
            ),
        }
    }
    (acked, refused)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_answers_503_and_recovers_without_a_restart() {
    let dir = rules_dir(RULES);
    let mount_point = dir.path().join("disk");
    let tmpfs = match Tmpfs::mount(&mount_point, "8m") {
        Ok(t) => t,
        Err(why) => {
            eprintln!("skipped: a_full_disk_answers_503_and_recovers_without_a_restart: {why}");
            return;
        }
    };
    let filler = tmpfs.path.join("filler");
    std::fs::write(&filler, vec![0x5a_u8; FILLER_BYTES]).expect("write the filler file");
    let db = tmpfs.path.join("hookflow.db");
    let db_url = format!("sqlite://{}", db.display());
    let http = reqwest::Client::new();
    let mut rng = fastrand::Rng::with_seed(11);

    let mut server = Server::start(serve(
        dir.path(),
        &["--rules", "rules", "--db", &db_url, "--workers", "0"],
        &[],
    ));
    server.wait_ready(&http).await;

    // Large bodies first, then small ones into whatever crumbs are left.
    let (mut acked, mut refused) = flood_until_full(&http, &server, &mut rng, 16 * 1024, 10).await;
    let (more, refused_small) = flood_until_full(&http, &server, &mut rng, 64, 10).await;
    acked.extend(more);
    refused += refused_small;
    let ready_while_full = readyz(&http, &server).await;
    let free = rustix::fs::statvfs(&tmpfs.path).map_or(0, |s| s.f_bavail * s.f_frsize);
    eprintln!(
        "disk full: {} deliveries stored (2xx), {refused} refused with 503, {free} bytes free; /readyz {ready_while_full}",
        acked.len()
    );
    assert!(
        !acked.is_empty(),
        "nothing was stored before the disk filled"
    );
    assert_eq!(ready_while_full, 503, "/readyz while the disk is full");

    // Free space; the same process must come back by itself.
    std::fs::remove_file(&filler).expect("delete the filler file");
    let recovered_after = Instant::now();
    let (client, running) = (&http, &server);
    let id = wait::for_ok(
        "a delivery accepted after freeing space",
        Duration::from_secs(30),
        || {
            let sent = body(&mut rng, 1024);
            async move {
                match post(client, running, sent).await {
                    (202, Some(id)) => Ok(id),
                    (503, _) => Err(running.log_tail()),
                    (status, _) => panic!("after freeing space a delivery got {status}"),
                }
            }
        },
    )
    .await;
    acked.push(id);
    wait::for_ok(
        "/readyz to return to 200",
        Duration::from_secs(30),
        || async {
            match readyz(&http, &server).await {
                200 => Ok(()),
                status => Err(format!("{status}\n{}", server.log_tail())),
            }
        },
    )
    .await;
    eprintln!(
        "disk full: recovered {} ms after the filler was deleted",
        recovered_after.elapsed().as_millis()
    );
    for _ in 0..20 {
        let (status, id) = post(&http, &server, body(&mut rng, 1024)).await;
        assert_eq!(status, 202, "a delivery after recovery");
        acked.extend(id);
    }

    // Every 2xx is in the file, and the file is sound (read while the
    // server still runs, then after it stopped).
    let check = |when: &str| {
        let conn =
            rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
                .expect("open the database");
        let integrity: String = conn
            .query_row("PRAGMA integrity_check", [], |row| row.get(0))
            .expect("integrity_check");
        assert_eq!(integrity, "ok", "integrity_check {when}");
        let mut stmt = conn
            .prepare("SELECT count(*) FROM deliveries WHERE id = ?1 AND status = 'accepted'")
            .expect("prepare");
        let missing: Vec<&String> = acked
            .iter()
            .filter(|id| {
                stmt.query_row([id.as_str()], |row| row.get::<_, i64>(0))
                    .expect("query")
                    != 1
            })
            .collect();
        assert!(
            missing.is_empty(),
            "{} of {} deliveries answered 2xx are not in the database {when}: {:?}",
            missing.len(),
            acked.len(),
            &missing[..missing.len().min(5)]
        );
    };
    check("while the server runs");
    assert!(
        server.terminate(Duration::from_secs(15)),
        "the server did not stop on SIGTERM\n{}",
        server.log_tail()
    );
    check("after it stopped");
    drop(server);
    drop(tmpfs);
}
