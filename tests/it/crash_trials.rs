//! Randomized crash trials (issue #11, item 7): a real `hookflow serve`
//! takes signed GitHub deliveries from several concurrent clients and is
//! killed with SIGKILL at a random moment 0.2–2 s into the load; it is
//! restarted on the same database and left to drain its queue. Then every
//! delivery that got a 2xx must be stored, and every stored run must have
//! finished at a counting sink, which counts requests by `Idempotency-Key`
//! (at-least-once allows a step to arrive twice: duplicates are reported,
//! a lost one fails the test).
//!
//! `HOOKFLOW_CRASH_TRIALS` (default 3) sets the number of trials and
//! `HOOKFLOW_CRASH_SEED` the seed (printed either way, so a failing trial's
//! kill moment and client count can be replayed). `bench/crash-trials.sh N`
//! runs N trials on a release build and prints the summary.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::common::app::{Server, github_signature, rules_dir, serve};
use crate::common::sink::Sink;
use crate::common::wait;

/// The webhook secret the child reads from its environment.
const SECRET_VAR: &str = "HOOKFLOW_CRASH_SECRET";
const SECRET: &str = "crash-trials-secret";

/// How long a restarted server may take to drain its queue.
const DRAIN_DEADLINE: Duration = Duration::from_secs(120);

/// Run ids that reached the sink (its requests carry `Idempotency-Key:
/// <run id>.<step>`), and how many requests beyond the first any key got.
fn runs_and_duplicates(sink: &Sink) -> (HashSet<String>, u64) {
    let mut per_key: HashMap<String, u64> = HashMap::new();
    for seen in sink.all() {
        *per_key
            .entry(seen.header("idempotency-key").to_owned())
            .or_default() += 1;
    }
    let runs = per_key
        .keys()
        .filter_map(|k| k.rsplit_once('.').map(|(run, _)| run.to_owned()))
        .collect();
    let duplicates = per_key.values().map(|n| n.saturating_sub(1)).sum();
    (runs, duplicates)
}

fn rules(sink: &str) -> String {
    format!(
        r#"
sources:
  gh:
    verify:
      github: {{ secret: "${{{SECRET_VAR}}}" }}
rules:
  - name: count
    source: gh
    actions:
      - http:
          url: "{sink}/count/{{{{payload.client}}}}"
          json: {{ n: "{{{{payload.n}}}}" }}
          retry: {{ attempts: 50, backoff: 50ms, max_backoff: 200ms }}
"#
    )
}

/// What one trial saw.
#[derive(Debug, Default)]
struct Figures {
    acked: u64,
    stored: u64,
    lost: u64,
    runs: u64,
    unfinished: u64,
    duplicate_actions: u64,
}

/// Sends signed deliveries until the server stops answering; returns the
/// ids of those answered 2xx.
async fn client_loop(
    client: reqwest::Client,
    url: String,
    id: usize,
    stop: Arc<AtomicBool>,
) -> Vec<String> {
    let mut acked = Vec::new();
    for n in 0u64.. {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let body = format!(r#"{{"client":{id},"n":{n},"ref":"refs/heads/main"}}"#);
        let signature = github_signature(SECRET, body.as_bytes());
        let resp = client
            .post(&url)
            .header("content-type", "application/json")
            .header("X-GitHub-Event", "push")
            .header(
                "X-GitHub-Delivery",
                format!("c{id}-n{n}-{}", ulid::Ulid::new()),
            )
            .header("X-Hub-Signature-256", signature)
            .body(body)
            .send()
            .await;
        let Ok(resp) = resp else { break }; // killed
        if !resp.status().is_success() {
            continue;
        }
        // An answer cut off by the kill is not an acknowledgement.
        if let Ok(v) = resp.json::<serde_json::Value>().await
            && let Some(delivery) = v["delivery"].as_str()
        {
            acked.push(delivery.to_owned());
        }
    }
    acked
}

fn read_only(db: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .expect("open the database read-only")
}

fn unfinished_runs(db: &Path) -> u64 {
    read_only(db)
        .query_row(
            "SELECT count(*) FROM runs WHERE status IN ('queued', 'running')",
            [],
            |row| row.get::<_, i64>(0),
        )
        .map_or(u64::MAX, |n| n.unsigned_abs()) // busy: not drained yet
}

async fn trial(number: u64, seed: u64) -> Figures {
    let mut rng = fastrand::Rng::with_seed(seed);
    let kill_after = Duration::from_millis(rng.u64(200..=2000));
    let clients = rng.usize(2..=6);

    let sink = Sink::start().await;
    let dir = rules_dir(&rules(&sink.url));
    let db = dir.path().join("hookflow.db");
    let args = ["--rules", "rules", "--db", "sqlite://hookflow.db"];
    let envs = [(SECRET_VAR, SECRET)];
    let http = reqwest::Client::new();

    let mut server = Server::start(serve(dir.path(), &args, &envs));
    server.wait_ready(&http).await;
    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = (0..clients)
        .map(|id| {
            tokio::spawn(client_loop(
                http.clone(),
                server.url("/hooks/gh"),
                id,
                stop.clone(),
            ))
        })
        .collect();
    // Not synchronisation: the random moment of the crash (the scenario).
    tokio::time::sleep(kill_after).await;
    server.kill();
    stop.store(true, Ordering::Relaxed);
    let mut acked = Vec::new();
    for task in tasks {
        acked.extend(task.await.expect("client task"));
    }
    drop(server);

    // Restarted on the same file, it must finish everything it took.
    let server = Server::start(serve(dir.path(), &args, &envs));
    server.wait_ready(&http).await;
    let what = format!("trial {number} (seed {seed}): the queue to drain");
    wait::for_ok(&what, DRAIN_DEADLINE, || async {
        match unfinished_runs(&db) {
            0 => Ok(()),
            n => Err(format!("{n} unfinished\n{}", server.log_tail())),
        }
    })
    .await;
    let mut server = server;
    server.terminate(Duration::from_secs(10));

    let conn = read_only(&db);
    let stored: HashSet<String> = conn
        .prepare("SELECT id FROM deliveries WHERE status = 'accepted'")
        .and_then(|mut s| {
            s.query_map([], |row| row.get::<_, String>(0))?
                .collect::<Result<_, _>>()
        })
        .expect("read deliveries");
    let runs: Vec<(String, String, String)> = conn
        .prepare("SELECT id, delivery_id, status FROM runs")
        .and_then(|mut s| {
            s.query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?
                .collect::<Result<_, _>>()
        })
        .expect("read runs");
    let (at_sink, duplicate_actions) = runs_and_duplicates(&sink);

    let with_run: HashSet<&str> = runs.iter().map(|(_, d, _)| d.as_str()).collect();
    let lost: Vec<&String> = acked
        .iter()
        .filter(|id| !stored.contains(*id) || !with_run.contains(id.as_str()))
        .collect();
    let unfinished: Vec<&(String, String, String)> = runs
        .iter()
        .filter(|(id, _, status)| status != "succeeded" || !at_sink.contains(id))
        .collect();
    let figures = Figures {
        acked: acked.len() as u64,
        stored: stored.len() as u64,
        lost: lost.len() as u64,
        runs: runs.len() as u64,
        unfinished: unfinished.len() as u64,
        duplicate_actions,
    };
    eprintln!(
        "trial {number}: seed={seed} clients={clients} kill_after={}ms acked={} stored={} lost={} runs={} unfinished={} duplicate_actions={}",
        kill_after.as_millis(),
        figures.acked,
        figures.stored,
        figures.lost,
        figures.runs,
        figures.unfinished,
        figures.duplicate_actions
    );
    assert!(
        lost.is_empty(),
        "trial {number} (seed {seed}): {} acknowledged deliveries lost, e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
    assert!(
        unfinished.is_empty(),
        "trial {number} (seed {seed}): {} runs did not finish at the sink, e.g. {:?}",
        unfinished.len(),
        &unfinished[..unfinished.len().min(5)]
    );
    assert_eq!(
        runs.len(),
        stored.len(),
        "trial {number} (seed {seed}): one run per stored delivery"
    );
    figures
}

fn env_u64(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    Some(
        value
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name} must be a number, not `{value}`")),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_acknowledged_delivery_or_queued_run_is_lost_across_random_sigkills() {
    let trials = env_u64("HOOKFLOW_CRASH_TRIALS").unwrap_or(3);
    let seed = env_u64("HOOKFLOW_CRASH_SEED").unwrap_or_else(|| fastrand::u64(..));
    eprintln!("crash trials: {trials} trials, HOOKFLOW_CRASH_SEED={seed}");
    let mut total = Figures::default();
    for number in 0..trials {
        let f = trial(number, seed.wrapping_add(number)).await;
        total.acked += f.acked;
        total.stored += f.stored;
        total.lost += f.lost;
        total.runs += f.runs;
        total.unfinished += f.unfinished;
        total.duplicate_actions += f.duplicate_actions;
    }
    eprintln!(
        "crash trials summary: trials={trials} seed={seed} acked={} stored={} lost={} runs={} unfinished={} duplicate_actions={}",
        total.acked,
        total.stored,
        total.lost,
        total.runs,
        total.unfinished,
        total.duplicate_actions
    );
    assert!(
        total.acked > 0,
        "no delivery was acknowledged: the trials tested nothing"
    );
}
