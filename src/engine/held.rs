//! The runs this node holds a lease on, and the only ones it renews (SPEC
//! §5: no stranded leases). A run is held from the moment it is leased
//! (waiting in the buffer, then on a worker) until its last record is
//! saved. A worker holds its runs through a [`Holding`] guard: if the
//! worker panics, the guard's drop hands its runs to the leasing loop as
//! lost, which ends their leases at once so that they are taken again
//! (and counted, so a step that panics every time ends the run `failed`).
//!
//! Each held run has a cancel signal: an operator's cancel reaches it
//! from the lease heartbeat (a cancel sent to any node) or directly
//! ([`super::Engine::cancel_local`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::{Notify, watch};

/// Held runs by id.
#[derive(Default)]
pub(super) struct Held {
    runs: Mutex<HashMap<String, watch::Sender<bool>>>,
    /// Runs whose worker was lost (a panic), for the leasing loop.
    lost: Mutex<Vec<String>>,
    /// A run was lost: the leasing loop should release it now.
    pub(super) lost_signal: Notify,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Held {
    /// Leased runs enter: their leases are renewed from now on.
    pub(super) fn add(&self, ids: impl IntoIterator<Item = String>) {
        let mut runs = lock(&self.runs);
        for id in ids {
            runs.entry(id).or_insert_with(|| watch::channel(false).0);
        }
    }

    /// The run is done with (its last record saved, or it was never
    /// handed over): no more renewing.
    pub(super) fn remove(&self, id: &str) {
        lock(&self.runs).remove(id);
    }

    /// Every held run's id, for the heartbeat.
    pub(super) fn ids(&self) -> Vec<String> {
        lock(&self.runs).keys().cloned().collect()
    }

    /// Empties the set (shutdown: every lease of the node is released).
    pub(super) fn clear(&self) {
        lock(&self.runs).clear();
    }

    /// Tells the run's worker to stop it. `false` if it is not held here.
    pub(super) fn cancel(&self, id: &str) -> bool {
        match lock(&self.runs).get(id) {
            Some(signal) => {
                signal.send_replace(true);
                true
            }
            None => false,
        }
    }

    /// The run's cancel signal, for its worker.
    pub(super) fn signal(&self, id: &str) -> Cancel {
        let rx = lock(&self.runs).get(id).map(watch::Sender::subscribe);
        Cancel { rx }
    }

    /// Runs lost since the last call, now no longer held.
    pub(super) fn take_lost(&self) -> Vec<String> {
        std::mem::take(&mut *lock(&self.lost))
    }

    fn lose(&self, ids: Vec<String>) {
        if ids.is_empty() {
            return;
        }
        {
            let mut runs = lock(&self.runs);
            for id in &ids {
                runs.remove(id);
            }
        }
        lock(&self.lost).extend(ids);
        self.lost_signal.notify_one();
    }
}

/// A worker's view of one run's cancel signal.
pub(super) struct Cancel {
    /// `None`: the run is not held (it can not be cancelled from here).
    rx: Option<watch::Receiver<bool>>,
}

impl Cancel {
    pub(super) fn is_cancelled(&self) -> bool {
        self.rx.as_ref().is_some_and(|rx| *rx.borrow())
    }

    /// Resolves once the run is cancelled; never if it cannot be.
    pub(super) async fn cancelled(&mut self) {
        match &mut self.rx {
            Some(rx) => {
                if rx.wait_for(|c| *c).await.is_err() {
                    // Sender gone: the run is no longer held; nothing
                    // will cancel it any more.
                    std::future::pending::<()>().await;
                }
            }
            None => std::future::pending().await,
        }
    }
}

/// The runs one worker holds. Dropped while still holding (only when the
/// worker panics or is aborted), it reports them lost.
pub(super) struct Holding {
    held: Arc<Held>,
    ids: Vec<String>,
}

impl Holding {
    pub(super) fn new(held: Arc<Held>) -> Holding {
        Holding {
            held,
            ids: Vec::new(),
        }
    }

    pub(super) fn hold(&mut self, id: &str) {
        self.ids.push(id.to_owned());
    }

    /// The run's last record is saved (or given up): done with it.
    pub(super) fn done(&mut self, id: &str) {
        self.ids.retain(|held| held != id);
        self.held.remove(id);
    }
}

impl Drop for Holding {
    fn drop(&mut self) {
        self.held.lose(std::mem::take(&mut self.ids));
    }
}
