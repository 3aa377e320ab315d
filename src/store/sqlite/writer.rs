//! The writer thread and its group commit.
//!
//! One `std::thread` owns the write connection. Callers send it a closure
//! and await a oneshot reply. The thread takes the first waiting command,
//! drains whatever else is already queued (up to [`MAX_BATCH`]), runs them
//! all in one transaction, commits once, and only then answers every
//! caller: an `Ok` always means "committed".
//!
//! A failing command rolls back only its own writes and gets its own error.
//! Commands fail rarely, so the group first runs without savepoints (a
//! savepoint per command made SQLite copy every page the group shares into
//! a sub-journal, once per command: about a sixth of the writer's time under
//! load). If any command fails or panics, the whole transaction is rolled
//! back and the group is replayed with a SAVEPOINT per command; commands
//! are `Fn` so they can run twice, and only the replay's results count.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rusqlite::{Connection, Transaction, TransactionBehavior};
use tokio::sync::{mpsc, oneshot};

use super::checkpoint::Checkpointer;
use super::{SqliteOptions, connection};
use crate::store::{Result, StoreError};

/// Most commands committed together. Bounds the latency the last caller of
/// a batch sees and the size of one WAL append.
const MAX_BATCH: usize = 256;

/// Commands waiting for the writer before callers are made to wait to
/// enqueue (backpressure instead of unbounded memory).
const QUEUE_CAPACITY: usize = 4096;

thread_local! {
    /// Transactions and savepoints the writer on this thread rolled back.
    static ROLLBACKS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// How many times the writer thread (the caller's: commands run on it)
/// has rolled back writes. A command that remembers what it wrote beyond
/// its transaction (`deliveries.rs`'s excluded-rule lists) forgets it when
/// this moves: that write may be undone.
pub(super) fn rollbacks() -> u64 {
    ROLLBACKS.get()
}

fn count_rollback() {
    ROLLBACKS.set(ROLLBACKS.get() + 1);
}

/// Handle to the writer thread. Dropping it closes the queue; the thread
/// finishes what is queued and exits, closing the connection.
pub(super) struct Writer {
    jobs: mpsc::Sender<Box<dyn Job>>,
    /// Successful COMMITs that changed a row, for `SqliteStore::commit_count`.
    commits: Arc<AtomicU64>,
}

impl Writer {
    /// Start the thread; it opens and migrates the database before the
    /// returned future resolves, so open errors surface here.
    pub(super) async fn start(path: PathBuf, options: SqliteOptions) -> Result<Writer> {
        const OP: &str = "start database writer";
        let (ready_tx, ready_rx) = oneshot::channel();
        let (jobs, queue) = mpsc::channel(QUEUE_CAPACITY);
        let commits = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&commits);
        std::thread::Builder::new()
            .name("hookflow-writer".to_owned())
            .spawn(move || {
                let opened = connection::open_writer(&path, &options)
                    .and_then(|conn| Ok((conn, Checkpointer::start(&path)?)));
                match opened {
                    Ok((conn, checkpointer)) => {
                        let _ = ready_tx.send(Ok(()));
                        serve(conn, queue, &counter, &checkpointer);
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                    }
                }
            })
            .map_err(|e| StoreError::WriterGone {
                op: OP,
                message: format!("cannot spawn the writer thread: {e}"),
            })?;
        ready_rx.await.map_err(|_| StoreError::WriterGone {
            op: OP,
            message: "the writer thread exited while opening the database".to_owned(),
        })??;
        Ok(Writer { jobs, commits })
    }

    pub(super) fn commit_count(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    /// Run `work` on the write connection inside the next group commit and
    /// return its value once that transaction has committed.
    pub(super) async fn call<T, F>(&self, op: &'static str, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: Fn(&Connection) -> Result<T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job = Call {
            op,
            work,
            result: None,
            reply,
        };
        self.jobs
            .send(Box::new(job))
            .await
            .map_err(|_| StoreError::WriterGone {
                op,
                message: "its queue is closed".to_owned(),
            })?;
        answer.await.map_err(|_| StoreError::WriterGone {
            op,
            message: "it stopped before answering".to_owned(),
        })?
    }
}

/// One queued command, type-erased so commands of any result type share the
/// queue.
trait Job: Send {
    fn op(&self) -> &'static str;
    /// Run the SQL (again, on a replay); `false` if it failed and its
    /// writes must roll back.
    fn execute(&mut self, conn: &Connection) -> bool;
    /// Record an error that happened around `execute` (savepoint, panic).
    fn fail(&mut self, error: StoreError);
    /// Answer the caller, once the batch's commit outcome is known.
    fn finish(self: Box<Self>, committed: Result<()>);
}

struct Call<T, F> {
    op: &'static str,
    work: F,
    result: Option<Result<T>>,
    reply: oneshot::Sender<Result<T>>,
}

impl<T, F> Job for Call<T, F>
where
    T: Send + 'static,
    F: Fn(&Connection) -> Result<T> + Send + 'static,
{
    fn op(&self) -> &'static str {
        self.op
    }

    fn execute(&mut self, conn: &Connection) -> bool {
        let result = (self.work)(conn);
        let ok = result.is_ok();
        self.result = Some(result);
        ok
    }

    fn fail(&mut self, error: StoreError) {
        self.result = Some(Err(error));
    }

    fn finish(self: Box<Self>, committed: Result<()>) {
        let answer = match (self.result, committed) {
            // A command's own error wins: it was rolled back either way.
            (Some(Err(e)), _) => Err(e),
            (_, Err(e)) => Err(e),
            (Some(Ok(value)), Ok(())) => Ok(value),
            (None, Ok(())) => Err(StoreError::WriterGone {
                op: self.op,
                message: "the command was never executed".to_owned(),
            }),
        };
        // The caller may have given up (its request was cancelled); the
        // write stands regardless.
        let _ = self.reply.send(answer);
    }
}

/// The thread's loop: block for one command, then take what else is
/// waiting, commit the group, repeat until every `Writer` is dropped.
fn serve(
    mut conn: Connection,
    mut queue: mpsc::Receiver<Box<dyn Job>>,
    commits: &AtomicU64,
    checkpointer: &Checkpointer,
) {
    tracing::debug!("sqlite writer started");
    let mut batch: Vec<Box<dyn Job>> = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = queue.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let changes_before = conn.total_changes();
        commit_group(&mut conn, &mut batch, commits);
        // An idle node's polls (a lease that found nothing due) change no
        // row: then nothing was written and there is nothing to fold in.
        if conn.total_changes() == changes_before {
            continue;
        }
        if checkpointer.finish_requested() {
            Checkpointer::finish(&conn);
        }
        checkpointer.nudge();
    }
    tracing::debug!("sqlite writer stopped");
}

/// Execute and commit one group, then answer every caller in it.
fn commit_group(conn: &mut Connection, batch: &mut Vec<Box<dyn Job>>, commits: &AtomicU64) {
    let started = std::time::Instant::now();
    let changes_before = conn.total_changes();
    let committed = match run_group(conn, batch, false) {
        Ok(true) => Ok(()),
        // Someone failed: nothing of this attempt was kept.
        Ok(false) => {
            count_rollback();
            run_group(conn, batch, true).map(|_| ())
        }
        Err(e) => Err(e),
    }
    .map_err(|e| e.to_string());
    // A group that failed to commit (the first try or the replay) kept
    // nothing.
    if committed.is_err() {
        count_rollback();
    }
    match &committed {
        Ok(()) if conn.total_changes() != changes_before => {
            commits.fetch_add(1, Ordering::Relaxed);
            crate::metrics::store_commit(batch.len(), started.elapsed());
        }
        Ok(()) => {}
        Err(message) => {
            tracing::error!(error = %message, commands = batch.len(), "sqlite group commit failed");
        }
    }
    for job in batch.drain(..) {
        let op = job.op();
        let outcome = committed
            .clone()
            .map_err(|message| StoreError::Commit { op, message });
        job.finish(outcome);
    }
}

/// Run every command of the group in one transaction. Without savepoints
/// (`isolated == false`) a failing command rolls the whole transaction back
/// and `Ok(false)` asks for a replay; with them, it rolls back only its own
/// writes and the rest commit.
fn run_group(
    conn: &mut Connection,
    batch: &mut [Box<dyn Job>],
    isolated: bool,
) -> rusqlite::Result<bool> {
    let mut tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    for job in batch.iter_mut() {
        let ok = if isolated {
            execute_isolated(&mut tx, job.as_mut());
            true
        } else {
            execute_bare(&tx, job.as_mut())
        };
        if !ok {
            // SQLite may have rolled back by itself (I/O error, full disk).
            if !tx.is_autocommit() {
                tx.rollback()?;
            }
            return Ok(false);
        }
    }
    tx.commit()?;
    Ok(true)
}

/// Run one command straight in the group's transaction; `false` if it
/// failed or panicked (its partial writes are then still in there).
fn execute_bare(tx: &Transaction<'_>, job: &mut dyn Job) -> bool {
    // A panic counts as a failure; the replay reports it.
    catch_unwind(AssertUnwindSafe(|| job.execute(tx))).unwrap_or(false)
}

/// Run one command inside its own savepoint.
fn execute_isolated(tx: &mut Transaction<'_>, job: &mut dyn Job) {
    let op = job.op();
    // An I/O error or SQLITE_FULL can make SQLite roll back the whole
    // transaction by itself. Running more commands then would execute them
    // outside it, so stop here and let the failed COMMIT answer the rest.
    if tx.is_autocommit() {
        job.fail(StoreError::Commit {
            op,
            message: "an earlier command aborted the transaction".to_owned(),
        });
        return;
    }
    let savepoint = match tx.savepoint() {
        Ok(savepoint) => savepoint,
        Err(source) => {
            job.fail(super::backend_error(op, source));
            return;
        }
    };
    let ok = match catch_unwind(AssertUnwindSafe(|| job.execute(&savepoint))) {
        Ok(ok) => ok,
        Err(_) => {
            tracing::error!(op, "sqlite write command panicked; rolled back");
            job.fail(StoreError::WriterGone {
                op,
                message: "the command panicked and was rolled back".to_owned(),
            });
            false
        }
    };
    if !ok {
        // Dropping the savepoint rolls back this command's writes only;
        // the commands after it must not count on them.
        count_rollback();
    } else if let Err(source) = savepoint.commit() {
        count_rollback();
        job.fail(super::backend_error(op, source));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    async fn writer() -> (tempfile::TempDir, Arc<Writer>) {
        let dir = tempfile::tempdir().expect("temp dir");
        let writer = Writer::start(dir.path().join("w.db"), SqliteOptions::default())
            .await
            .expect("start");
        writer
            .call("create", |conn| {
                conn.execute_batch("CREATE TABLE IF NOT EXISTS t (n INTEGER PRIMARY KEY)")
                    .map_err(|source| super::super::backend_error("create", source))
            })
            .await
            .expect("create table");
        (dir, Arc::new(writer))
    }

    /// Commands 0..n, sent together so they share groups; every fifth one
    /// writes its row and then fails, every seventh writes and panics.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn failing_and_panicking_commands_roll_back_alone() {
        let (_dir, writer) = writer().await;
        let mut tasks = Vec::new();
        for n in 0..200_i64 {
            let writer = Arc::clone(&writer);
            tasks.push(tokio::spawn(async move {
                let outcome = writer
                    .call("insert", move |conn| {
                        conn.execute("INSERT INTO t (n) VALUES (?1)", [n])
                            .map_err(|source| super::super::backend_error("insert", source))?;
                        if n % 7 == 3 {
                            panic!("command {n} panics after writing");
                        }
                        if n % 5 == 1 {
                            return Err(StoreError::Invalid {
                                op: "insert",
                                message: format!("command {n} refuses after writing"),
                            });
                        }
                        Ok(n)
                    })
                    .await;
                (n, outcome)
            }));
        }
        let mut kept = Vec::new();
        for task in tasks {
            let (n, outcome) = task.await.expect("task");
            match outcome {
                Ok(got) => {
                    assert_eq!(got, n);
                    assert!(n % 7 != 3 && n % 5 != 1, "command {n} should have failed");
                    kept.push(n);
                }
                Err(StoreError::WriterGone { message, .. }) => {
                    assert_eq!(n % 7, 3, "command {n}: {message}");
                }
                Err(StoreError::Invalid { message, .. }) => {
                    assert_eq!(n % 5, 1, "command {n}: {message}");
                }
                Err(other) => panic!("command {n}: unexpected {other}"),
            }
        }
        let stored: Vec<i64> = writer
            .call("read", |conn| {
                let mut stmt = conn
                    .prepare("SELECT n FROM t ORDER BY n")
                    .map_err(|source| super::super::backend_error("read", source))?;
                stmt.query_map([], |row| row.get(0))
                    .and_then(Iterator::collect)
                    .map_err(|source| super::super::backend_error("read", source))
            })
            .await
            .expect("read back");
        assert_eq!(stored, kept, "exactly the successful commands' rows");
        assert!(
            writer.commit_count() < 200,
            "commands were grouped: {} commits",
            writer.commit_count()
        );
    }
}
