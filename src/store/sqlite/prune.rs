//! Retention (SPEC §5): deleting old deliveries in bounded batches. The
//! schema's `ON DELETE CASCADE` takes their runs and attempts with them;
//! a pruned delivery's dedupe key is forgotten with it.

use rusqlite::{Connection, params};

use super::audit;
use crate::store::{Context, Result};

pub(super) const PRUNE: &str = "prune old deliveries";

/// Deletes up to `batch` deliveries received before `before_ms`, oldest
/// first, and returns how many went. A delivery with a run still queued or
/// running is kept: pruning must never lose work that has not finished.
pub(super) fn prune(conn: &Connection, before_ms: i64, batch: u32) -> Result<u64> {
    let deleted = conn
        .prepare_cached(
            "DELETE FROM deliveries WHERE id IN (
                 SELECT d.id FROM deliveries d
                 WHERE d.received_at < ?1
                   AND NOT EXISTS (SELECT 1 FROM runs r
                                   WHERE r.delivery_id = d.id AND r.finished_at IS NULL)
                 ORDER BY d.received_at, d.id
                 LIMIT ?2)",
        )
        .and_then(|mut stmt| stmt.execute(params![before_ms, batch]))
        .ctx(PRUNE)?;
    // The audit trail ages out with the log (a batch each call too).
    let trail = audit::prune(conn, before_ms, batch).ctx(PRUNE)?;
    Ok(deleted.max(trail) as u64)
}
