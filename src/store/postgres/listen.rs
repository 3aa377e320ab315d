//! `LISTEN` for queued work: one connection of its own (outside the pool)
//! waits on the schema's channel and wakes this node's idle workers when
//! any node queues a run or frees a concurrency slot. Dropped connections
//! are reopened after a pause; meanwhile the engine's polling finds the
//! work anyway, only later.
//!
//! The other side, [`Announcer`]: after a commit that queued or freed work
//! it wakes this node's workers at once and sends one `NOTIFY` for the
//! other nodes, at most every [`ANNOUNCE_GAP`], from a transaction of its
//! own. Never inside the work's transaction: PostgreSQL serializes the
//! commits of transactions that notify (a database-wide lock held through
//! the commit's WAL flush), which cost every accept its own fsync —
//! ingest stalled at ~1,800 deliveries/s on this machine, PostgreSQL's
//! group commit unused.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use deadpool_postgres::Pool;

use tokio::sync::Notify;
use tokio_postgres::{AsyncMessage, NoTls};

/// Pause before reconnecting a lost listener.
const RECONNECT_PAUSE: Duration = Duration::from_secs(1);

pub(super) fn spawn(
    config: tokio_postgres::Config,
    channel: String,
    wake: Arc<Notify>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            if let Err(e) = listen(&config, &channel, &wake).await {
                tracing::warn!(error = %e, channel, "PostgreSQL listener lost; reconnecting");
            }
            tokio::time::sleep(RECONNECT_PAUSE).await;
        }
    })
}

async fn listen(
    config: &tokio_postgres::Config,
    channel: &str,
    wake: &Notify,
) -> Result<(), tokio_postgres::Error> {
    let (client, mut connection) = config.connect(NoTls).await?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    // The connection must be polled for the LISTEN to complete and for
    // notifications to arrive: a task of its own forwards them.
    let driver = tokio::spawn(async move {
        loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(_))) => {
                    if tx.send(Ok(())).is_err() {
                        return;
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    let _ = tx.send(Err(e));
                    return;
                }
                None => return,
            }
        }
    });
    let quoted = format!("\"{}\"", channel.replace('"', "\"\""));
    let listening = client.batch_execute(&format!("LISTEN {quoted}")).await;
    if let Err(e) = listening {
        driver.abort();
        return Err(e);
    }
    // A notification may have been missed while reconnecting.
    wake.notify_one();
    let result = loop {
        match rx.recv().await {
            Some(Ok(())) => wake.notify_one(),
            Some(Err(e)) => break Err(e),
            None => break Ok(()),
        }
    };
    driver.abort();
    drop(client);
    result
}

/// The longest another node waits to hear of work (its polling remains the
/// fallback if a notification is lost).
pub(super) const ANNOUNCE_GAP: Duration = Duration::from_millis(5);

/// "Runs are due": told after the commit, coalesced (see the module doc).
pub(super) struct Announcer {
    channel: String,
    /// This node's idle workers.
    local: Arc<Notify>,
    pending: AtomicBool,
    kick: Notify,
}

impl Announcer {
    pub(super) fn new(channel: String, local: Arc<Notify>) -> Arc<Announcer> {
        Arc::new(Announcer {
            channel,
            local,
            pending: AtomicBool::new(false),
            kick: Notify::new(),
        })
    }

    /// Call after the commit that queued or freed work.
    pub(super) fn announce(&self) {
        self.local.notify_one();
        self.pending.store(true, Ordering::Release);
        self.kick.notify_one();
    }

    /// The task sending the notifications, on connections from `pool`.
    pub(super) fn spawn(self: &Arc<Self>, pool: Pool) -> tokio::task::JoinHandle<()> {
        let me = Arc::clone(self);
        tokio::spawn(async move {
            loop {
                me.kick.notified().await;
                if me.pending.swap(false, Ordering::AcqRel) {
                    me.send(&pool).await;
                }
                tokio::time::sleep(ANNOUNCE_GAP).await;
            }
        })
    }

    async fn send(&self, pool: &Pool) {
        let sent = match pool.get().await {
            Ok(client) => client
                .execute("SELECT pg_notify($1, '')", &[&self.channel])
                .await
                .map(|_| ())
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        if let Err(e) = sent {
            // The other nodes' polling finds the work, a little later.
            tracing::debug!(error = %e, "could not notify other nodes of queued work");
        }
    }
}
