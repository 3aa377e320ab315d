//! Room left for the database: the readiness check's view of a full disk.
//!
//! A commit that does not fit fails with `SQLITE_FULL` (the delivery is
//! answered 503), but a tiny write such as the readiness heartbeat still
//! fits in the WAL space a failed transaction left allocated: measured on
//! an 8 MiB tmpfs, deliveries of 64 bytes were all refused while the
//! heartbeat kept succeeding. So readiness also asks the file system how
//! much is free, and reports "not ready" below a floor that holds one
//! default-sized (1 MiB) delivery. Once space is freed it is ready again
//! by itself, without a restart and without needing traffic to notice.

use std::path::Path;

use super::{Result, StoreError};

/// Below this much free space beside the database, `/readyz` says 503.
pub(super) const MIN_FREE_BYTES: u64 = 1024 * 1024;

/// Bytes an unprivileged process may still write on `db`'s file system.
fn free_bytes(db: &Path) -> std::io::Result<u64> {
    let dir = match db.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let stat = rustix::fs::statvfs(dir)?;
    Ok(stat.f_bavail.saturating_mul(stat.f_frsize))
}

/// Fails when less than [`MIN_FREE_BYTES`] is free beside `db`. A file
/// system that cannot say is given the benefit of the doubt (the heartbeat
/// write still tests it).
pub(super) fn ensure_room(db: &Path) -> Result<()> {
    match free_bytes(db) {
        Ok(free) if free < MIN_FREE_BYTES => Err(StoreError::NoSpace {
            path: db.display().to_string(),
            free,
            needed: MIN_FREE_BYTES,
        }),
        Ok(_) => Ok(()),
        Err(e) => {
            tracing::debug!(error = %e, "cannot read the free space beside the database");
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_space_is_read_for_a_relative_and_an_absolute_path() {
        let here = free_bytes(Path::new("hookflow.db")).expect("statvfs of .");
        let tmp = free_bytes(&std::env::temp_dir().join("x.db")).expect("statvfs of tmp");
        assert!(
            here > 0 && tmp > 0,
            "a writable file system has room: {here} {tmp}"
        );
    }

    #[test]
    fn a_missing_directory_does_not_make_the_store_unready() {
        assert!(ensure_room(Path::new("/nonexistent-dir-hookflow/x.db")).is_ok());
    }
}
