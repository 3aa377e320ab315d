//! Reload latency: from a rule file being written to the new rule being
//! live (swapped in), with the real watcher (inotify, 200 ms debounce).
//! `cargo bench --bench reload` prints p50/p95/max over 40 edits.

use std::time::{Duration, Instant};

use hookflow::reload::Reloader;

const SOURCES: &str = "sources:\n  s:\n    verify: { token: { header: X-T, value: abc } }\n";

fn rule(name: &str) -> String {
    format!(
        "rules:\n  - name: {name}\n    source: s\n    actions: [{{ http: {{ url: 'http://127.0.0.1:9/' }} }}]\n"
    )
}

fn main() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("sources.yaml"), SOURCES).expect("sources");
    std::fs::write(dir.path().join("rules.yaml"), rule("r-0")).expect("rules");
    let set = hookflow::rules::load(dir.path()).expect("load");
    let reloader = Reloader::new(dir.path().to_path_buf(), set);
    let (_trigger, shutdown) = hookflow::shutdown::channel();
    let _guard = runtime.enter();
    // The audit trail's run log, outside the watched directory.
    let db = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", db.path().join("hookflow.db").display());
    let store = runtime
        .block_on(hookflow::store::open(&url))
        .expect("open the run log");
    let _watch = reloader.watch(false, store, shutdown).expect("watch");
    let rules = reloader.rules();
    let mut samples = Vec::new();
    for i in 1..=40 {
        let name = format!("r-{i}");
        let written = Instant::now();
        std::fs::write(dir.path().join("rules.yaml"), rule(&name)).expect("write");
        while rules.load().rule(&name).is_none() {
            assert!(
                written.elapsed() < Duration::from_secs(5),
                "edit {i} never went live"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        samples.push(written.elapsed());
        std::thread::sleep(Duration::from_millis(50));
    }
    samples.sort();
    let pct = |p: usize| samples[(samples.len() * p / 100).min(samples.len() - 1)];
    println!(
        "reload latency over {} edits: p50 {:?}, p95 {:?}, max {:?}",
        samples.len(),
        pct(50),
        pct(95),
        samples[samples.len() - 1]
    );
}
