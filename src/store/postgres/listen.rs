//! `LISTEN` for queued work: one connection of its own (outside the pool)
//! waits on the schema's channel and wakes this node's idle workers when
//! any node queues a run or frees a concurrency slot. Dropped connections
//! are reopened after a pause; meanwhile the engine's polling finds the
//! work anyway, only later.

use std::sync::Arc;
use std::time::Duration;

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
