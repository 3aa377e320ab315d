//! Opening connections: the writer's pragmas, the read-only readers and the
//! checkpointer's, all through [`open`].

use std::path::Path;
use std::time::Duration;

use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags};

use super::{SqliteOptions, migrate};
use crate::store::{Result, StoreError};

/// How long a statement waits on a lock held by another connection (a
/// checkpoint, a second process on the same file) before `SQLITE_BUSY`.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// How often a statement that found the database locked tries again.
/// SQLite's own busy handler sleeps 1, 2, 5, 10 … 100 ms between tries, so
/// the server's writer, finding a second process's short transaction (a
/// `hookflow retry` bulk batch) in its way, slept far longer than that
/// transaction lasted: ingest p99 went from 3 ms to 85 ms during a CLI
/// bulk retry (bench/bulk-retry.sh).
const BUSY_STEP: Duration = Duration::from_micros(250);

/// The busy handler: try again every [`BUSY_STEP`] until [`BUSY_TIMEOUT`]
/// worth of steps has been slept.
fn retry_busy(tries: i32) -> bool {
    let slept = BUSY_STEP.saturating_mul(u32::try_from(tries).unwrap_or(u32::MAX));
    if slept >= BUSY_TIMEOUT {
        return false;
    }
    std::thread::sleep(BUSY_STEP);
    true
}

/// Bytes a reset WAL file is truncated to (it is reused, not regrown).
const JOURNAL_SIZE_LIMIT: i64 = 64 * 1024 * 1024;

/// Statements a connection keeps prepared; the write paths use about a dozen.
const STATEMENT_CACHE: usize = 64;

/// Open the write connection, set it up and bring the schema up to date.
pub(super) fn open_writer(path: &Path, options: &SqliteOptions) -> Result<Connection> {
    let failed = |message: String| StoreError::Open {
        path: path.display().to_string(),
        message,
    };
    preflight(path).map_err(failed)?;
    let mut conn = open(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
    )?;
    // SQLite quietly opens a file it may not write read-only; every write
    // (and checkpoint) would then fail later, over and over.
    if conn.is_readonly(rusqlite::MAIN_DB).unwrap_or(true) {
        return Err(failed(
            "the database is read-only here (file permissions or a read-only mount); hookflow must write its run log. Make it writable, or point --db at another path".to_owned(),
        ));
    }
    // WAL: readers never block the writer nor the writer them, and a commit
    // is an append. Some file systems (network mounts) refuse it.
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
        .map_err(|e| failed(e.to_string()))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(failed(format!(
            "the file system does not support WAL mode (journal_mode stayed `{mode}`); put the database on a local disk"
        )));
    }
    // See `Synchronous` for the durability trade-off of NORMAL vs FULL.
    conn.pragma_update(None, "synchronous", options.synchronous.pragma_value())
        .map_err(|e| failed(e.to_string()))?;
    conn.pragma_update(None, "foreign_keys", true)
        .map_err(|e| failed(e.to_string()))?;
    // Checkpoints run on their own thread (`checkpoint.rs`), not inside
    // the writer's commits; a WAL file emptied by one is cut back to this.
    conn.pragma_update(None, "wal_autocheckpoint", 0)
        .map_err(|e| failed(e.to_string()))?;
    conn.pragma_update(None, "journal_size_limit", JOURNAL_SIZE_LIMIT)
        .map_err(|e| failed(e.to_string()))?;
    migrate::apply(&mut conn)?;
    Ok(conn)
}

/// Says in one sentence why `path` cannot hold a database, before SQLite
/// would answer "unable to open database file" for every cause alike.
fn preflight(path: &Path) -> std::result::Result<(), String> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    match std::fs::metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(format!(
                "the directory {} does not exist; create it, or point --db at another path",
                dir.display()
            ));
        }
        Err(e) => return Err(format!("cannot use the directory {}: {e}", dir.display())),
        Ok(meta) if !meta.is_dir() => {
            return Err(format!("{} is not a directory", dir.display()));
        }
        Ok(_) => {}
    }
    if let Err(e) = writable(dir) {
        return Err(format!(
            "cannot write in the directory {} ({e}); the database keeps its -wal and -shm files beside it",
            dir.display()
        ));
    }
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_dir() => Err(format!("{} is a directory, not a database file", path.display())),
        Ok(_) => writable(path).map_err(|e| {
            format!("the database file is not writable ({e}); hookflow must write its run log. Fix its permissions or mount, or point --db at another path")
        }),
        Err(_) => Ok(()), // created on open
    }
}

/// Whether this process may write `path` (`access(2)`, which also sees
/// read-only mounts).
fn writable(path: &Path) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    // SAFETY: `c_path` is a valid NUL-terminated string for the call.
    if unsafe { libc::access(c_path.as_ptr(), libc::W_OK) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Open a read-only connection. The writer has already created the file
/// and switched it to WAL, which is persistent.
pub(super) fn open_reader(path: &Path) -> Result<Connection> {
    open(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
}

/// Open the checkpoint thread's connection: read-write (a checkpoint writes
/// the database file) but it never writes rows.
pub(super) fn open_checkpointer(path: &Path) -> Result<Connection> {
    open(path, OpenFlags::SQLITE_OPEN_READ_WRITE)
}

/// What every connection gets: one thread each (no SQLite mutex), the busy
/// timeout, stable query plans and a statement cache.
fn open(path: &Path, flags: OpenFlags) -> Result<Connection> {
    let failed = |e: rusqlite::Error| StoreError::Open {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    let mut conn = Connection::open_with_flags(path, flags | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .map_err(failed)?;
    conn.busy_handler(Some(retry_busy)).map_err(failed)?;
    // The query planner's stability guarantee: a plan no longer depends on
    // the values bound to it. Without it this SQLite build (STAT4)
    // re-prepared cached statements such as the dedupe lookup at every
    // bind, 5-8% of the ingest profile (docs/PERFORMANCE.md).
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)
        .map_err(failed)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(conn)
}
