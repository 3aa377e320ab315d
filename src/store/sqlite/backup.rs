//! `hookflow backup`: a consistent copy of a live SQLite run log through
//! SQLite's online backup API, taken while the server keeps writing.
//!
//! The copy is made in one step from a single read transaction: in WAL mode
//! that is a snapshot the writer never waits for (a stepwise backup would
//! restart whenever the server commits, and might never finish under load).
//! It is written to a temporary file beside the target, checked with
//! `PRAGMA integrity_check`, and only then renamed into place.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};

use super::connection;
use crate::store::{Result, StoreError};

/// What was copied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupReport {
    pub deliveries: i64,
    pub runs: i64,
    pub attempts: i64,
    pub bytes: u64,
}

/// Copies the database at `source` to `target`, which must not exist.
pub fn backup(source: &Path, target: &Path) -> Result<BackupReport> {
    let fail = |message: String| StoreError::Backup {
        target: target.display().to_string(),
        message,
    };
    if target.exists() {
        return Err(fail(
            "the file exists; give a new path (a backup never overwrites)".into(),
        ));
    }
    if !source.exists() {
        return Err(fail(format!(
            "there is no database at {}",
            source.display()
        )));
    }
    let partial = partial_path(target);
    let _ = std::fs::remove_file(&partial);
    let result = copy(source, &partial).and_then(|report| {
        std::fs::rename(&partial, target)
            .map_err(|e| format!("cannot move the copy into place: {e}"))?;
        Ok(report)
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    result.map_err(fail)
}

fn copy(source: &Path, partial: &Path) -> std::result::Result<BackupReport, String> {
    let from = connection::open_reader(source).map_err(|e| e.to_string())?;
    let mut to = Connection::open_with_flags(
        partial,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
    )
    .map_err(|e| format!("cannot create {}: {e}", partial.display()))?;
    {
        let backup = rusqlite::backup::Backup::new(&from, &mut to)
            .map_err(|e| format!("cannot start the backup: {e}"))?;
        // -1: every page in one step, from one snapshot.
        match backup.step(-1) {
            Ok(rusqlite::backup::StepResult::Done) => {}
            Ok(other) => return Err(format!("the backup did not finish ({other:?})")),
            Err(e) => return Err(format!("the backup failed: {e}")),
        }
    }
    // A copy that is not a single file is no backup: fold any journal in.
    to.pragma_update(None, "journal_mode", "DELETE")
        .map_err(|e| e.to_string())?;
    let check: String = to
        .query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .map_err(|e| format!("cannot check the copy: {e}"))?;
    if check != "ok" {
        return Err(format!("the copy failed its integrity check: {check}"));
    }
    let count = |table: &str| -> std::result::Result<i64, String> {
        to.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |row| {
            row.get(0)
        })
        .map_err(|e| format!("cannot count {table}: {e}"))
    };
    let report = BackupReport {
        deliveries: count("deliveries")?,
        runs: count("runs")?,
        attempts: count("attempts")?,
        bytes: 0,
    };
    drop(to);
    let bytes = std::fs::metadata(partial).map(|m| m.len()).unwrap_or(0);
    Ok(BackupReport { bytes, ..report })
}

/// `backup.db` → `backup.db.partial`.
fn partial_path(target: &Path) -> PathBuf {
    let mut name = target.as_os_str().to_owned();
    name.push(".partial");
    PathBuf::from(name)
}
