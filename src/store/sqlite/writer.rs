//! The writer thread and its group commit.
//!
//! One `std::thread` owns the write connection. Callers send it a closure
//! and await a oneshot reply. The thread takes the first waiting command,
//! drains whatever else is already queued (up to [`MAX_BATCH`]), runs them
//! all in one transaction with a SAVEPOINT each — a failing command rolls
//! back only its own writes and gets its own error — commits once, and only
//! then answers every caller: an `Ok` always means "committed".

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rusqlite::{Connection, Transaction, TransactionBehavior};
use tokio::sync::{mpsc, oneshot};

use super::{SqliteOptions, connection};
use crate::store::{Result, StoreError};

/// Most commands committed together. Bounds the latency the last caller of
/// a batch sees and the size of one WAL append.
const MAX_BATCH: usize = 256;

/// Commands waiting for the writer before callers are made to wait to
/// enqueue (backpressure instead of unbounded memory).
const QUEUE_CAPACITY: usize = 4096;

/// Handle to the writer thread. Dropping it closes the queue; the thread
/// finishes what is queued and exits, closing the connection.
pub(super) struct Writer {
    jobs: mpsc::Sender<Box<dyn Job>>,
    /// Successful COMMITs, for `SqliteStore::commit_count`.
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
            .name("hookflow-sqlite-writer".to_owned())
            .spawn(move || match connection::open_writer(&path, &options) {
                Ok(conn) => {
                    let _ = ready_tx.send(Ok(()));
                    serve(conn, queue, &counter);
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
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
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job = Call {
            op,
            work: Some(work),
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
    /// Run the SQL; `false` if it failed and its savepoint must roll back.
    fn execute(&mut self, conn: &Connection) -> bool;
    /// Record an error that happened around `execute` (savepoint, panic).
    fn fail(&mut self, error: StoreError);
    /// Answer the caller, once the batch's commit outcome is known.
    fn finish(self: Box<Self>, committed: Result<()>);
}

struct Call<T, F> {
    op: &'static str,
    work: Option<F>,
    result: Option<Result<T>>,
    reply: oneshot::Sender<Result<T>>,
}

impl<T, F> Job for Call<T, F>
where
    T: Send + 'static,
    F: FnOnce(&Connection) -> Result<T> + Send + 'static,
{
    fn op(&self) -> &'static str {
        self.op
    }

    fn execute(&mut self, conn: &Connection) -> bool {
        let Some(work) = self.work.take() else {
            return false;
        };
        let result = work(conn);
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
fn serve(mut conn: Connection, mut queue: mpsc::Receiver<Box<dyn Job>>, commits: &AtomicU64) {
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
        commit_group(&mut conn, &mut batch, commits);
    }
    tracing::debug!("sqlite writer stopped");
}

/// Execute and commit one group, then answer every caller in it.
fn commit_group(conn: &mut Connection, batch: &mut Vec<Box<dyn Job>>, commits: &AtomicU64) {
    let committed: std::result::Result<(), String> = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .and_then(|mut tx| {
            for job in batch.iter_mut() {
                execute_one(&mut tx, job.as_mut());
            }
            tx.commit()
        })
        .map_err(|e| e.to_string());
    match &committed {
        Ok(()) => {
            commits.fetch_add(1, Ordering::Relaxed);
        }
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

/// Run one command inside its own savepoint.
fn execute_one(tx: &mut Transaction<'_>, job: &mut dyn Job) {
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
            job.fail(StoreError::Sqlite { op, source });
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
    if ok && let Err(source) = savepoint.commit() {
        job.fail(StoreError::Sqlite { op, source });
    }
    // Otherwise dropping the savepoint rolls back this command's writes only.
}
