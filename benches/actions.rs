//! Runs per second, end to end through the store: N deliveries, each with
//! one queued run of a single `http` step, are committed first; then an
//! engine with 16 workers executes them against a loopback sink (its own
//! thread and runtime, like a separate process on the same machine), and
//! the clock stops when the last run is recorded as finished.
//!
//! `cargo bench --bench actions` (N = 5000; `HOOKFLOW_BENCH_RUNS=20000` for
//! more; `HOOKFLOW_BENCH_WORKERS` to change the pool).

use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use hookflow::engine::{Engine, EngineConfig};
use hookflow::store::{
    NewDelivery, NewRun, RunFilter, RunStatus, SqliteOptions, SqliteStore, Store,
};
use serde_json::json;

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A sink answering `200 {"ok":true}` at once, on its own thread.
fn start_sink() -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("sink runtime");
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind sink");
            tx.send(listener.local_addr().expect("addr"))
                .expect("send addr");
            let app = axum::Router::new().fallback(|| async { axum::Json(json!({"ok": true})) });
            axum::serve(listener, app).await.expect("sink");
        });
    });
    format!("http://{}", rx.recv().expect("sink address"))
}

fn main() {
    let runs = env_number("HOOKFLOW_BENCH_RUNS", 5000);
    let workers = env_number("HOOKFLOW_BENCH_WORKERS", 16);
    let sink = start_sink();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(bench(runs, workers, &sink));
}

async fn bench(count: usize, workers: usize, sink: &str) {
    let dir = tempfile::tempdir().expect("temp dir");
    let rules_dir = dir.path().join("rules");
    std::fs::create_dir_all(&rules_dir).expect("rules dir");
    std::fs::write(
        rules_dir.join("bench.yaml"),
        format!(
            "sources:\n  bench:\n    verify: {{ token: {{ header: X-T, value: abc }} }}\nrules:\n  - name: forward\n    source: bench\n    actions:\n      - http:\n          url: {sink}/hook\n          json: {{ n: \"{{{{payload.n}}}}\" }}\n"
        ),
    )
    .expect("rules");
    let set = hookflow::rules::load(&rules_dir).expect("rules load");
    let rule = set.rule("forward").expect("rule");
    let definition = rule.run_definition.clone();
    let store = Arc::new(
        SqliteStore::open(dir.path().join("hookflow.db"), SqliteOptions::default())
            .await
            .expect("store"),
    );

    // Queue everything first, as a burst of deliveries would.
    let started = Instant::now();
    let mut ids = ulid::Generator::new();
    let mut accepts = tokio::task::JoinSet::new();
    for n in 0..count {
        let id = ids.generate().expect("ulid").to_string();
        let run_id = ids.generate().expect("ulid").to_string();
        let now = chrono::Utc::now().timestamp_millis();
        let delivery = NewDelivery {
            id: id.clone(),
            source: "bench".into(),
            received_at: now,
            method: "POST".into(),
            path: "/hooks/bench".into(),
            query: None,
            headers: vec![("content-type".into(), "application/json".into())],
            remote_addr: "127.0.0.1".into(),
            event: String::new(),
            dedupe_key: None,
            body: format!(r#"{{"n":{n}}}"#).into_bytes(),
            matched: vec!["forward".into()],
            trace: serde_json::value::RawValue::NULL.to_owned(),
        };
        let run = NewRun {
            id: run_id,
            delivery_id: id,
            rule: "forward".into(),
            created_at: now,
            definition: definition.clone(),
            concurrency: None,
            concurrency_key: None,
        };
        let store = store.clone();
        accepts.spawn(async move { store.accept(delivery, vec![run], 0).await });
        if accepts.len() >= 256 {
            accepts
                .join_next()
                .await
                .expect("task")
                .expect("join")
                .expect("accept");
        }
    }
    while let Some(done) = accepts.join_next().await {
        done.expect("join").expect("accept");
    }
    let queued = started.elapsed();
    println!(
        "queued {count} runs in {:.2?} ({:.0} deliveries/s)",
        queued,
        count as f64 / queued.as_secs_f64()
    );

    let commits_before = store.commit_count();
    let (trigger, shutdown) = hookflow::shutdown::channel();
    let config = EngineConfig {
        workers,
        shutdown_grace: Duration::from_secs(5),
        node_id: "bench".into(),
    };
    let dyn_store: Arc<dyn Store> = store.clone();
    let cpu_before = cpu_time();
    let started = Instant::now();
    let (_engine, handle) = Engine::start(
        dyn_store,
        Arc::new(ArcSwap::from_pointee(set)),
        config,
        shutdown,
    );
    loop {
        if store.queue_depth().await.expect("queue depth") == 0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "runs did not finish"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let took = started.elapsed();
    let cpu = cpu_time() - cpu_before;
    let commits = store.commit_count() - commits_before;
    trigger.trigger();
    handle.await.expect("engine");

    let failed = store
        .list_runs(RunFilter {
            status: Some(RunStatus::Failed),
            ..RunFilter::default()
        })
        .await
        .expect("list");
    assert!(failed.is_empty(), "failed runs: {:?}", failed[0].error);
    println!(
        "executed {count} single-step http runs with {workers} workers in {took:.2?}: {:.0} runs/s ({commits} group commits; {:.2} CPUs busy, sink included)",
        count as f64 / took.as_secs_f64(),
        cpu.as_secs_f64() / took.as_secs_f64(),
    );
}

/// CPU time used by the whole process so far (every thread).
fn cpu_time() -> Duration {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::uninit();
    // SAFETY: getrusage fills the struct it is given.
    let usage = unsafe {
        libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr());
        usage.assume_init()
    };
    let time = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    time(usage.ru_utime) + time(usage.ru_stime)
}
