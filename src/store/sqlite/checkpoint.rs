//! WAL checkpoints on their own thread, so the writer never waits for a
//! long one.
//!
//! SQLite's automatic checkpoint runs inside whichever COMMIT pushes the
//! WAL past 1,000 pages, on the writer's thread: it copies pages into the
//! database file and fsyncs it while every caller of that group waits
//! (docs/PERFORMANCE.md). So the writer turns it off and nudges this thread
//! after each commit instead; at most every [`INTERVAL`] it runs PASSIVE
//! checkpoints, which copy pages without ever blocking the writer.
//!
//! The WAL only starts over when a write transaction begins with every
//! frame copied, which a passive checkpoint cannot see to while commits
//! keep arriving. So passes repeat, each copying only what was committed
//! during the one before, until one is short; then, once the WAL is longer
//! than [`FINISH_PAGES`], the writer is asked to run the last, small one
//! itself between two groups ([`Checkpointer::finish_requested`]), after
//! which its next transaction restarts the WAL.
//! Should the WAL still grow past [`RESTART_PAGES`] (a reader holding an
//! old snapshot), a RESTART checkpoint waits for the writer and forces it.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::{Duration, Instant};

use rusqlite::Connection;

use super::connection;
use crate::store::{Result, StoreError};

/// The shortest time between two rounds of checkpoints: commits in between
/// are folded into one copy of each page they touched. Short on purpose:
/// a round's fsyncs hold up the writer's WAL appends for a time that grows
/// with the round (p99 at ~3,000 deliveries/s: 14 ms at 20 ms, 15–30 ms at
/// 100 ms, 120–145 ms at 1 s; docs/PERFORMANCE.md).
const INTERVAL: Duration = Duration::from_millis(20);

/// A pass this short leaves little for the writer to finish.
const SHORT_PASS: Duration = Duration::from_millis(5);

/// Passes per round before the writer is asked to finish anyway.
const MAX_PASSES: usize = 4;

/// WAL length (in 4 KiB pages, 16 MiB) past which the writer is asked to
/// finish a round so the WAL can start over. Each finish costs the writer
/// an fsync (2–45 ms on the development disk); below this the WAL is left
/// to grow between rounds.
const FINISH_PAGES: i64 = 4_096;

/// WAL length (in 4 KiB pages, about 64 MiB) past which the checkpointer
/// blocks the writer to restart it.
const RESTART_PAGES: i64 = 16_384;

/// Handle held by the writer. Dropping it lets the thread fold the WAL
/// into the database one last time and exit.
pub(super) struct Checkpointer {
    nudge: SyncSender<()>,
    finish: Arc<AtomicBool>,
}

impl Checkpointer {
    pub(super) fn start(path: &Path) -> Result<Checkpointer> {
        let conn = connection::open_checkpointer(path)?;
        // One pending nudge is enough: the thread checkpoints everything
        // committed so far whenever it wakes.
        let (nudge, nudged) = sync_channel(1);
        let finish = Arc::new(AtomicBool::new(false));
        let asked = Arc::clone(&finish);
        std::thread::Builder::new()
            .name("hookflow-ckpt".to_owned())
            .spawn(move || run(&conn, &nudged, &asked))
            .map_err(|e| StoreError::Open {
                path: path.display().to_string(),
                message: format!("cannot spawn the checkpoint thread: {e}"),
            })?;
        Ok(Checkpointer { nudge, finish })
    }

    /// Something was committed; never blocks.
    pub(super) fn nudge(&self) {
        match self.nudge.try_send(()) {
            Ok(()) | Err(TrySendError::Full(())) => {}
            Err(TrySendError::Disconnected(())) => {
                tracing::warn!("the checkpoint thread is gone; the WAL is not being folded in");
            }
        }
    }

    /// Whether the writer should run the round's last (short) passive
    /// checkpoint now, between two groups; asks only once per round.
    pub(super) fn finish_requested(&self) -> bool {
        self.finish.swap(false, Ordering::AcqRel)
    }

    /// The writer's side: one PASSIVE checkpoint on the write connection.
    pub(super) fn finish(conn: &Connection) {
        if let Err(e) = checkpoint(conn, "PASSIVE") {
            tracing::warn!(error = %e, "WAL checkpoint failed");
        }
    }
}

fn run(conn: &Connection, nudged: &Receiver<()>, finish: &AtomicBool) {
    while nudged.recv().is_ok() {
        std::thread::sleep(INTERVAL);
        let mut wal_pages = 0;
        for _ in 0..MAX_PASSES {
            let started = Instant::now();
            match checkpoint(conn, "PASSIVE") {
                Ok(pages) => wal_pages = pages,
                Err(e) => {
                    tracing::warn!(error = %e, "WAL checkpoint failed");
                    break;
                }
            }
            if started.elapsed() < SHORT_PASS {
                break;
            }
        }
        if wal_pages > FINISH_PAGES {
            finish.store(true, Ordering::Release);
        }
        if wal_pages > RESTART_PAGES
            && let Err(e) = checkpoint(conn, "RESTART")
        {
            tracing::warn!(error = %e, wal_pages, "WAL restart checkpoint failed");
        }
    }
    // The writer has stopped: leave a short WAL behind.
    if let Err(e) = checkpoint(conn, "TRUNCATE") {
        tracing::debug!(error = %e, "final WAL checkpoint failed");
    }
}

/// Run one checkpoint; returns the WAL's length in pages.
fn checkpoint(conn: &Connection, mode: &str) -> rusqlite::Result<i64> {
    let started = Instant::now();
    let (wal_pages, copied): (i64, i64) =
        conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |row| {
            Ok((row.get(1)?, row.get(2)?))
        })?;
    tracing::trace!(mode, wal_pages, copied, took = ?started.elapsed(), "WAL checkpoint");
    Ok(wal_pages)
}
