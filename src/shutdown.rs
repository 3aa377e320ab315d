//! Graceful shutdown as a small named type passed down to every loop
//! (server, workers, watcher), in the manner of mini-redis: one trigger,
//! many listeners, no global flag.

use std::sync::Arc;

use tokio::sync::watch;

/// Held by whoever decides to stop (the signal handler, a test); clones
/// pull the same trigger.
#[derive(Debug, Clone)]
pub struct Trigger {
    tx: Arc<watch::Sender<bool>>,
}

/// Held by every task that must stop; cheap to clone.
#[derive(Debug, Clone)]
pub struct Shutdown {
    rx: watch::Receiver<bool>,
}

/// A connected trigger and listener.
pub fn channel() -> (Trigger, Shutdown) {
    let (tx, rx) = watch::channel(false);
    (Trigger { tx: Arc::new(tx) }, Shutdown { rx })
}

impl Trigger {
    /// Tells every listener to stop. Idempotent.
    pub fn trigger(&self) {
        self.tx.send_replace(true);
    }

    pub fn subscribe(&self) -> Shutdown {
        Shutdown {
            rx: self.tx.subscribe(),
        }
    }
}

impl Shutdown {
    pub fn is_triggered(&self) -> bool {
        *self.rx.borrow()
    }

    /// Resolves once shutdown is triggered (or the trigger is dropped).
    pub async fn wait(&mut self) {
        // An error means the trigger is gone: nobody can stop us any more
        // than now, so treat it as a shutdown.
        let _ = self.rx.wait_for(|stop| *stop).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_listener_sees_the_trigger() {
        let (trigger, a) = channel();
        let mut b = a.clone();
        assert!(!a.is_triggered());
        trigger.trigger();
        b.wait().await;
        assert!(a.is_triggered() && b.is_triggered());
    }
}
