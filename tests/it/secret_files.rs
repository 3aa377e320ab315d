//! Secrets from files (SPEC §10): `${file:PATH}` is read when the rules
//! load, and rotating the file — the way Kubernetes does, by swapping a
//! symlink beside it — reloads the rules: the old value stops working and
//! the new one works, with no restart.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::app::{TestApp, spawn_app};
use crate::common::wait;

/// A Kubernetes-style secret volume: `dir/token` → `..data/token`, and
/// `..data` → the current version's directory.
fn mount_version(dir: &Path, version: &str, token: &str) {
    let versioned = dir.join(version);
    std::fs::create_dir(&versioned).expect("mkdir version");
    std::fs::write(versioned.join("token"), format!("{token}\n")).expect("write secret");
    let tmp = dir.join("..data_tmp");
    std::os::unix::fs::symlink(version, &tmp).expect("symlink");
    // The atomic swap Kubernetes makes.
    std::fs::rename(&tmp, dir.join("..data")).expect("swap ..data");
    let link = dir.join("token");
    if std::fs::symlink_metadata(&link).is_err() {
        std::os::unix::fs::symlink("..data/token", &link).expect("symlink token");
    }
}

async fn status(app: &TestApp, token: &str) -> u16 {
    app.post("/hooks/hooks", &[("X-T", token)], "{}")
        .await
        .status()
        .as_u16()
}

#[tokio::test]
async fn rotating_a_secret_file_reloads_the_rules() {
    let secrets = tempfile::tempdir().expect("temp");
    mount_version(secrets.path(), "v1", "old-t0ken");
    let sources = format!(
        "sources:\n  hooks:\n    verify: {{ token: {{ header: X-T, value: \"${{file:{}}}\" }} }}\n",
        secrets.path().join("token").display()
    );
    let app = spawn_app(&[
        ("sources.yaml", &sources),
        (
            "r.yaml",
            "rules:\n  - name: r\n    source: hooks\n    actions: [{ http: { url: 'http://127.0.0.1:9/' } }]\n",
        ),
    ])
    .await;
    assert_eq!(
        status(&app, "old-t0ken").await,
        202,
        "the file's value, newline stripped"
    );
    assert_eq!(status(&app, "new-t0ken").await, 401);

    mount_version(secrets.path(), "v2", "new-t0ken");
    let started = Instant::now();
    wait::until(
        "the rotated secret to be picked up",
        Duration::from_secs(5),
        || async { status(&app, "new-t0ken").await == 202 },
    )
    .await;
    eprintln!("rotated after {:?}", started.elapsed());
    assert_eq!(status(&app, "old-t0ken").await, 401);
}
