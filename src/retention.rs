//! Retention (SPEC §5): a background task that deletes deliveries older
//! than `retention`, with their runs, attempts and dedupe rows.
//!
//! It prunes once at start and then every [`INTERVAL`], in batches of
//! [`BATCH`] deliveries per transaction with a [`PAUSE`] between them: the
//! store has one writer, so one huge DELETE would hold up every ingest
//! commit behind it, while a small batch costs a commit a few milliseconds.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::task::JoinHandle;

use crate::shutdown::Shutdown;
use crate::store::Store;

/// How often old rows are looked for.
pub const INTERVAL: Duration = Duration::from_secs(5 * 60);

/// Deliveries deleted per transaction.
pub const BATCH: u32 = 500;

/// Time left to the writer between two batches.
pub const PAUSE: Duration = Duration::from_millis(50);

/// Starts the pruning task; it stops when `shutdown` triggers. A zero
/// `retention` keeps everything (the task returns at once).
pub fn spawn(store: Arc<dyn Store>, retention: Duration, mut shutdown: Shutdown) -> JoinHandle<()> {
    tokio::spawn(async move {
        if retention.is_zero() {
            tracing::info!("retention is 0: the run log is never pruned");
            return;
        }
        loop {
            let before_ms = now_ms().saturating_sub(millis(retention));
            prune_all(store.as_ref(), before_ms, &mut shutdown).await;
            tokio::select! {
                () = shutdown.wait() => return,
                () = tokio::time::sleep(INTERVAL) => {}
            }
        }
    })
}

/// Prunes everything received before `before_ms`, batch by batch, and
/// returns how many deliveries went. Stops early on shutdown or a database
/// error (logged; the next round tries again).
pub async fn prune_all(store: &dyn Store, before_ms: i64, shutdown: &mut Shutdown) -> u64 {
    let mut total = 0;
    loop {
        match store.prune(before_ms, BATCH).await {
            Ok(n) => {
                total += n;
                if n < u64::from(BATCH) {
                    break;
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "retention: pruning old deliveries failed");
                break;
            }
        }
        tokio::select! {
            () = shutdown.wait() => break,
            () = tokio::time::sleep(PAUSE) => {}
        }
    }
    if total > 0 {
        tracing::info!(deliveries = total, "retention: pruned old deliveries");
    }
    total
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, millis)
}
