//! The leasing loop and the worker pool.
//!
//! One task leases due runs in batches and hands them to `workers` worker
//! tasks through a buffer of [`BUFFER_PER_WORKER`] runs per worker, leasing
//! the next batch while the workers go through the last: a worker that
//! finishes a run starts the next at once instead of waiting for a lease
//! round trip (measured: with 16 workers a lease of a dozen runs takes a
//! few ms, longer than a run against a fast receiver).
//! A worker keeps a run until it finishes or waits for a retry (a retry
//! holds no worker: the run is written back with its due time).
//!
//! The loop looks for work when the buffer is half empty and: a run was
//! queued (`Engine::notify`), a run ended (a concurrency slot may be free),
//! the next retry comes due, or [`POLL_INTERVAL`] passed (other nodes'
//! runs, expired leases).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior, interval, sleep_until};

use super::held::Holding;
use super::{EngineConfig, LEASE, Shared, lease_until, millis, now_ms, run};
use crate::store::{LeaseRequest, LeasedRun, Release, StepRecord};

/// The longest the loop sleeps without looking at the store.
const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// The lease heartbeat: held leases are renewed this often (a long step
/// must not lose its run), and the answer carries operators' cancels, so
/// this is also how soon a cancel sent to another node is seen. One small
/// write per second, and none while nothing is held.
const RENEW_EVERY: Duration = Duration::from_secs(1);

/// After a store error, wait this long before leasing again.
const ERROR_PAUSE: Duration = Duration::from_secs(1);

/// Leased runs buffered per worker. Runs in the buffer are leased (and
/// count against their rule's concurrency) but not started; a shutdown
/// releases them untouched.
const BUFFER_PER_WORKER: usize = 4;

/// Leased runs waiting for a worker: one half being worked through while
/// the next is leased.
struct Ready {
    runs: std::sync::Mutex<VecDeque<LeasedRun>>,
    /// One permit per run in `runs`: a worker takes a permit, then a run.
    count: Semaphore,
    /// A worker took a run and left the buffer half empty: lease more.
    low: Notify,
    capacity: usize,
}

impl Ready {
    fn len(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<LeasedRun>> {
        self.runs.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn push(&self, runs: Vec<LeasedRun>) {
        let n = runs.len();
        self.lock().extend(runs);
        self.count.add_permits(n);
    }

    /// The next run, once there is one; `None` at shutdown.
    async fn take(&self, shutdown: &mut crate::shutdown::Shutdown) -> Option<LeasedRun> {
        let permit = tokio::select! {
            permit = self.count.acquire() => permit.ok()?,
            () = shutdown.wait() => return None,
        };
        permit.forget();
        let (run, left) = {
            let mut runs = self.lock();
            (runs.pop_front(), runs.len())
        };
        if left <= self.capacity / 2 {
            self.low.notify_one();
        }
        run
    }
}

pub(super) async fn run(shared: Arc<Shared>, config: EngineConfig) {
    let node = shared.node_id.clone();
    match shared.store.reclaim_leases(&node, now_ms()).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(
            runs = n,
            "resuming runs left in progress by a previous process"
        ),
        Err(e) => tracing::error!(error = %e, "cannot reclaim runs left in progress"),
    }
    let workers = config.workers.max(1);
    let ready = Arc::new(Ready {
        runs: std::sync::Mutex::new(VecDeque::new()),
        count: Semaphore::new(0),
        low: Notify::new(),
        capacity: BUFFER_PER_WORKER * workers,
    });
    let mut pool = JoinSet::new();
    for _ in 0..workers {
        pool.spawn(worker(shared.clone(), ready.clone()));
    }
    let mut shutdown = shared.shutdown.clone();
    let mut renew = interval(RENEW_EVERY);
    renew.set_missed_tick_behavior(MissedTickBehavior::Delay);
    tracing::info!(workers, node = %node, "engine started");

    while !shutdown.is_triggered() {
        let room = ready.capacity.saturating_sub(ready.len());
        if room < ready.capacity / 2 {
            // Busy: lease again once the workers have used up half.
            tokio::select! {
                () = shutdown.wait() => {}
                () = ready.low.notified() => {}
                Some(ended) = pool.join_next() => replace_if_panicked(ended, &mut pool, &shared, &ready),
                _ = renew.tick() => renew_leases(&shared).await,
                () = shared.held.lost_signal.notified() => release_lost(&shared).await,
            }
            continue;
        }
        let request = LeaseRequest {
            node: node.clone(),
            now_ms: now_ms(),
            limit: u32::try_from(room).unwrap_or(u32::MAX),
            lease_ms: millis(LEASE),
        };
        let mut wake_at = Instant::now() + POLL_INTERVAL;
        match shared.store.lease_runs(request).await {
            Ok(leased) => {
                let full = leased.runs.len() == room;
                shared
                    .held
                    .add(leased.runs.iter().map(|l| l.run.id.clone()));
                ready.push(leased.runs);
                if full {
                    continue; // more may be due right now
                }
                if let Some(due) = leased.next_due_ms {
                    let wait = u64::try_from(due - now_ms()).unwrap_or(0);
                    wake_at = wake_at.min(Instant::now() + Duration::from_millis(wait));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot lease runs; retrying shortly");
                wake_at = Instant::now() + ERROR_PAUSE;
            }
        }
        // Idle: everything due is leased.
        tokio::select! {
            () = shutdown.wait() => {}
            () = shared.wake.notified() => {}
            () = sleep_until(wake_at) => {}
            Some(ended) = pool.join_next() => replace_if_panicked(ended, &mut pool, &shared, &ready),
            _ = renew.tick() => renew_leases(&shared).await,
            () = shared.held.lost_signal.notified() => release_lost(&shared).await,
        }
    }

    stop(&shared, pool, config.shutdown_grace).await;
}

/// One worker: takes leased runs and executes them, until shutdown
/// (checked before each run and, inside a run, between steps). A run still
/// waiting at shutdown stays leased until the leases are released.
///
/// A run's last record (finished, or waiting for a retry) is committed
/// while the worker already executes its next run: the commit's latency
/// overlaps the next step instead of adding to every run. It is saved
/// before the one after, so a worker has at most one in flight, and
/// before the worker stops.
async fn worker(shared: Arc<Shared>, ready: Arc<Ready>) {
    let mut shutdown = shared.shutdown.clone();
    // If this task panics, dropping it reports its runs lost.
    let mut holding = Holding::new(shared.held.clone());
    let mut unsaved: Option<StepRecord> = None;
    loop {
        let next = match unsaved.take() {
            None => ready.take(&mut shutdown).await,
            Some(record) => {
                let saved = record.run_id.clone();
                let saving = finish(&shared, record);
                tokio::pin!(saving);
                tokio::select! {
                    () = &mut saving => {
                        holding.done(&saved);
                        ready.take(&mut shutdown).await
                    }
                    next = ready.take(&mut shutdown) => match next {
                        Some(leased) if !shutdown.is_triggered() => {
                            let id = leased.run.id.clone();
                            holding.hold(&id);
                            let ((), last) = tokio::join!(saving, run::execute(&shared, leased));
                            holding.done(&saved);
                            if last.is_none() {
                                holding.done(&id);
                            }
                            unsaved = last;
                            continue;
                        }
                        _ => {
                            saving.await;
                            holding.done(&saved);
                            None
                        }
                    },
                }
            }
        };
        let Some(leased) = next.filter(|_| !shutdown.is_triggered()) else {
            return;
        };
        let id = leased.run.id.clone();
        holding.hold(&id);
        unsaved = run::execute(&shared, leased).await;
        if unsaved.is_none() {
            holding.done(&id);
        }
    }
}

/// Saves a run's last record; the run's worker (and perhaps its rule's
/// concurrency slot) is then free for the leasing loop.
async fn finish(shared: &Shared, record: StepRecord) {
    run::save(shared, record).await;
    shared.wake.notify_one();
}

/// A worker that panicked (a bug, or a step that kills its worker) is
/// replaced; its runs were reported lost by its [`Holding`] and are
/// released by [`release_lost`].
fn replace_if_panicked(
    ended: Result<(), tokio::task::JoinError>,
    pool: &mut JoinSet<()>,
    shared: &Arc<Shared>,
    ready: &Arc<Ready>,
) {
    if let Err(e) = ended
        && e.is_panic()
    {
        tracing::error!(error = %e, "a worker panicked; starting another");
        pool.spawn(worker(shared.clone(), ready.clone()));
    }
}

/// The heartbeat: renews the leases of the runs held here (and only
/// those), and passes operators' cancels on to their workers.
async fn renew_leases(shared: &Shared) {
    let ids = shared.held.ids();
    if ids.is_empty() {
        return;
    }
    match shared
        .store
        .renew_leases(&shared.node_id, &ids, now_ms(), lease_until())
        .await
    {
        Ok(renewal) => {
            for id in &renewal.cancel_requested {
                if shared.held.cancel(id) {
                    tracing::info!(run = %id, "an operator cancelled the run; stopping it");
                }
            }
        }
        Err(e) => tracing::error!(error = %e, "cannot renew the leases of runs in flight"),
    }
}

/// Ends at once the leases of runs whose worker panicked, counting them
/// as expired: they are taken again now, and a step that panics every
/// time ends its run `failed` ("worker lost") after a few tries.
async fn release_lost(shared: &Shared) {
    let lost = shared.held.take_lost();
    if lost.is_empty() {
        return;
    }
    tracing::warn!(runs = ?lost, "a worker was lost; its runs are taken again");
    if let Err(e) = shared
        .store
        .release_runs(&shared.node_id, &lost, Release::WorkerLost, now_ms())
        .await
    {
        tracing::error!(error = %e, "cannot release the runs of a lost worker; their leases expire instead");
    }
}

/// Graceful shutdown: no more leases; workers stop after their current
/// step; after `grace` the rest are abandoned — an abandoned step was not
/// recorded, so it runs again after a restart. Then every lease is
/// released, leaving the runs `running` at their first unfinished step
/// (or `queued`-and-leased ones `running` too), due at once.
async fn stop(shared: &Shared, mut pool: JoinSet<()>, grace: Duration) {
    tracing::info!(grace = ?grace, "engine stopping: letting steps in flight finish");
    let finished = tokio::time::timeout(grace, async {
        while let Some(ended) = pool.join_next().await {
            if let Err(e) = ended
                && e.is_panic()
            {
                tracing::error!(error = %e, "a worker panicked while stopping");
            }
        }
    })
    .await;
    if finished.is_err() {
        tracing::warn!(
            workers = pool.len(),
            "steps still running after the shutdown grace period were abandoned; they run again after a restart"
        );
        pool.shutdown().await;
    }
    shared.held.clear();
    match shared.store.release_leases(&shared.node_id, now_ms()).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(runs = n, "runs left for the next start"),
        Err(e) => tracing::error!(error = %e, "cannot release leases; they expire instead"),
    }
    tracing::info!("engine stopped");
}
