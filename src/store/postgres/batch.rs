//! Writes gathered into one transaction: PostgreSQL's group commit, done
//! by the node. Each write as its own transaction costs PostgreSQL a
//! `BEGIN`, its statements and a commit record; the server's CPU per
//! statement and per commit, not the disk, is what limits a node on a
//! small machine. A [`Batcher`] queues the writes callers hand it and
//! writes those waiting at a moment together ([`Batch::write`] answers
//! each caller), one batch open at a time ([`IN_FLIGHT`]), so under load
//! the writes that arrive while a batch commits make the next one bigger.
//!
//! Two kinds are batched: accepts (`accepts.rs`) and step records
//! (`steps.rs`).

use std::future::Future;
use std::sync::Arc;

use deadpool_postgres::{Object, Pool};
use tokio::sync::{Semaphore, mpsc, oneshot};

use super::pool_reason;
use crate::store::{Result, StoreError};

/// Batches of one kind open at once. One: what arrives while a batch
/// commits makes the next one bigger, and PostgreSQL does the least work
/// per write. Measured with `bench/pg.sh` (2026-11-28): ingest 7,300–7,600
/// deliveries/s with one accept batch open against 7,000–7,200 with two
/// and ~6,000 with four; two nodes 4,500–4,700 runs/s with one step-record
/// batch open against ~3,350 with four and 2,650 with eight.
pub(super) const IN_FLIGHT: usize = 1;

/// Writes waiting for a batch, at most; beyond it callers wait to queue.
const QUEUE: usize = 4096;

/// One caller's write and where its answer goes.
pub(super) struct Job<I, O> {
    pub(super) item: I,
    pub(super) reply: oneshot::Sender<Result<O>>,
}

impl<I, O> Job<I, O> {
    /// Answers the caller (who may have stopped waiting).
    pub(super) fn answer(self, outcome: Result<O>) {
        let _ = self.reply.send(outcome);
    }
}

/// A kind of write that can be batched.
pub(super) trait Batch: Send + Sync + 'static {
    type Item: Send + 'static;
    type Outcome: Send + 'static;
    /// The operation's name, for errors.
    const OP: &'static str;
    /// Writes in one batch at most.
    const MAX: usize;
    /// Writes `jobs` on `conn` (in one transaction where it can) and
    /// answers each.
    fn write(
        self: Arc<Self>,
        conn: Object,
        jobs: Vec<Job<Self::Item, Self::Outcome>>,
    ) -> impl Future<Output = ()> + Send;
}

/// The sending side: [`Batcher::submit`] queues one write and waits for
/// its answer.
pub(super) struct Batcher<B: Batch> {
    jobs: mpsc::Sender<Job<B::Item, B::Outcome>>,
    task: tokio::task::JoinHandle<()>,
}

impl<B: Batch> Drop for Batcher<B> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl<B: Batch> Batcher<B> {
    pub(super) fn spawn(pool: Pool, writer: B) -> Batcher<B> {
        let (jobs, rx) = mpsc::channel(QUEUE);
        let task = tokio::spawn(gather(rx, pool, Arc::new(writer)));
        Batcher { jobs, task }
    }

    pub(super) async fn submit(&self, item: B::Item) -> Result<B::Outcome> {
        let (reply, answer) = oneshot::channel();
        let gone = || StoreError::Pool {
            op: B::OP,
            message: "the batch writer stopped".to_owned(),
        };
        self.jobs
            .send(Job { item, reply })
            .await
            .map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}

/// Takes a batch slot, then everything queued (up to [`Batch::MAX`]), and
/// writes it on a task of its own with a pooled connection; without one,
/// every write of the batch fails with the pool's reason.
async fn gather<B: Batch>(
    mut rx: mpsc::Receiver<Job<B::Item, B::Outcome>>,
    pool: Pool,
    writer: Arc<B>,
) {
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    loop {
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
            return;
        };
        let Some(first) = rx.recv().await else {
            return;
        };
        let mut jobs = vec![first];
        while jobs.len() < B::MAX {
            match rx.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        let (writer, pool) = (Arc::clone(&writer), pool.clone());
        tokio::spawn(async move {
            match pool.get().await {
                Ok(conn) => writer.write(conn, jobs).await,
                Err(e) => {
                    let message = pool_reason(&e);
                    for job in jobs {
                        job.answer(Err(StoreError::Pool {
                            op: B::OP,
                            message: message.clone(),
                        }));
                    }
                }
            }
            drop(slot);
        });
    }
}
