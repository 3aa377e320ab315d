//! Accepting and serving connections, with the limits a public endpoint
//! needs and `axum::serve` does not set: a deadline for a request's headers,
//! an idle keep-alive timeout, a cap on open connections below the
//! descriptor limit, and a shutdown that never waits longer than its grace.
//!
//! At the cap a new connection is not refused: the oldest connection that
//! is still waiting for (or reading) a request's headers is closed to make
//! room, so a slowloris flood holds at most the cap and a real sender,
//! whose headers arrive at once, always gets a place.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::shutdown::Shutdown;

/// The limits of one listener.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// From the first byte a request's headers may take (hyper's timer).
    pub header_read: Duration,
    /// How long a connection may sit between requests (or before its first).
    pub idle: Duration,
    /// Open connections at most; see [`connection_cap`].
    pub max_connections: usize,
    /// How long requests in flight may finish after shutdown.
    pub grace: Duration,
}

/// Descriptors kept back from the connection cap for the database, the
/// rules watcher, outgoing requests and shell steps' pipes.
const RESERVED_DESCRIPTORS: u64 = 128;

/// Raises the soft descriptor limit to the hard one (where the process may)
/// and returns how many connections the listeners may hold between them.
pub fn connection_cap() -> usize {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    let soft = unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 1024 - RESERVED_DESCRIPTORS as usize;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit.rlim_cur = limit.rlim_max;
            }
        }
        limit.rlim_cur
    };
    let usable = soft.saturating_sub(RESERVED_DESCRIPTORS).max(16);
    // No sense in more than this however high the limit: memory, not
    // descriptors, would run out first.
    usize::try_from(usable.min(65_536)).unwrap_or(65_536)
}

/// Connections open across the listeners that share it.
#[derive(Default)]
pub struct Tracker {
    next_id: AtomicU64,
    open: Mutex<BTreeMap<u64, Arc<Conn>>>,
    started: OnceInstant,
}

#[derive(Default)]
struct OnceInstant(std::sync::OnceLock<Instant>);

impl OnceInstant {
    fn millis(&self) -> u64 {
        let start = *self.0.get_or_init(Instant::now);
        u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

/// One open connection, as the tracker sees it.
struct Conn {
    /// Requests whose headers have arrived and whose handler has not
    /// returned; 0 means the connection is waiting for headers.
    in_request: AtomicUsize,
    /// When `in_request` last fell to 0 (tracker milliseconds).
    idle_since: AtomicU64,
    close: Notify,
}

impl Tracker {
    fn len(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Arc<Conn>>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn add(&self) -> (u64, Arc<Conn>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(Conn {
            in_request: AtomicUsize::new(0),
            idle_since: AtomicU64::new(self.started.millis()),
            close: Notify::new(),
        });
        self.lock().insert(id, conn.clone());
        (id, conn)
    }

    fn remove(&self, id: u64) {
        self.lock().remove(&id);
    }

    /// Closes the oldest connection still waiting for headers; false if
    /// every open connection is inside a request.
    /// It leaves the tracker at once, so the next eviction picks another.
    fn evict_oldest_idle(&self) -> bool {
        let mut open = self.lock();
        let oldest = open
            .iter()
            .find(|(_, c)| c.in_request.load(Ordering::Acquire) == 0)
            .map(|(id, _)| *id);
        match oldest.and_then(|id| open.remove(&id)) {
            Some(conn) => {
                conn.close.notify_one();
                true
            }
            None => false,
        }
    }
}

/// Counts a request in flight on its connection while alive.
struct InRequest {
    conn: Arc<Conn>,
    tracker: Arc<Tracker>,
}

impl InRequest {
    fn enter(conn: &Arc<Conn>, tracker: &Arc<Tracker>) -> InRequest {
        conn.in_request.fetch_add(1, Ordering::AcqRel);
        InRequest {
            conn: conn.clone(),
            tracker: tracker.clone(),
        }
    }
}

impl Drop for InRequest {
    fn drop(&mut self) {
        self.conn
            .idle_since
            .store(self.tracker.started.millis(), Ordering::Release);
        self.conn.in_request.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A request extension: the request came over a TLS connection of this
/// listener (the dashboard then marks its cookie `Secure`).
#[derive(Debug, Clone, Copy)]
pub struct OverTls;

/// Serves `app` on `listener` until `shutdown`, then lets requests in
/// flight finish for at most `limits.grace` and closes everything else.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    tls: Option<TlsAcceptor>,
    tracker: Arc<Tracker>,
    mut shutdown: Shutdown,
) {
    let mut tasks = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            () = shutdown.wait() => break,
            accepted = listener.accept() => accepted,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                // Out of descriptors (or a connection reset before accept):
                // make room and pause briefly instead of spinning.
                tracing::debug!(error = %e, "accept failed");
                tracker.evict_oldest_idle();
                tokio::time::sleep(Duration::from_millis(5)).await;
                continue;
            }
        };
        if tracker.len() >= limits.max_connections && !tracker.evict_oldest_idle() {
            // Every connection is inside a request: refuse this one.
            drop(stream);
            continue;
        }
        let _ = stream.set_nodelay(true);
        let (id, conn) = tracker.add();
        let (app, tracker, shutdown) = (app.clone(), tracker.clone(), shutdown.clone());
        match tls.clone() {
            None => tasks.spawn(connection(
                stream, peer, None, id, conn, app, limits, tracker, shutdown,
            )),
            Some(tls) => tasks.spawn(async move {
                // The handshake counts as reading headers: same deadline,
                // and the connection may be evicted meanwhile.
                let handshake = tokio::time::timeout(limits.header_read, tls.accept(stream));
                let evicted = conn.close.notified();
                tokio::select! {
                    done = handshake => match done {
                        Ok(Ok(stream)) => {
                            let tls = Some(OverTls);
                            connection(stream, peer, tls, id, conn, app, limits, tracker, shutdown)
                                .await;
                            return;
                        }
                        Ok(Err(e)) => tracing::debug!(error = %e, %peer, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    },
                    () = evicted => {}
                }
                tracker.remove(id);
            }),
        };
    }
    drop(listener);
    // Connections end by themselves once idle; give the rest the grace.
    let deadline = tokio::time::sleep(limits.grace);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            () = &mut deadline => {
                if !tasks.is_empty() {
                    tracing::warn!(connections = tasks.len(), "shutdown grace over: closing connections still open");
                }
                tasks.abort_all();
                break;
            }
            next = tasks.join_next() => if next.is_none() { break },
        }
    }
}

#[allow(clippy::too_many_arguments)] // two call sites, all distinct
async fn connection<Io>(
    stream: Io,
    peer: SocketAddr,
    tls: Option<OverTls>,
    id: u64,
    conn: Arc<Conn>,
    app: Router,
    limits: Limits,
    tracker: Arc<Tracker>,
    mut shutdown: Shutdown,
) where
    Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = {
        let conn = conn.clone();
        let tracker = tracker.clone();
        hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            let in_request = InRequest::enter(&conn, &tracker);
            req.extensions_mut().insert(ConnectInfo(peer));
            if let Some(tls) = tls {
                req.extensions_mut().insert(tls);
            }
            let app = app.clone();
            async move {
                let response = app.oneshot(req.map(axum::body::Body::new)).await;
                drop(in_request);
                Ok::<_, Infallible>(match response {
                    Ok(response) => response,
                    Err(never) => match never {},
                })
            }
        })
    };
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read)
        .keep_alive(true);
    let served = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(served);
    let mut draining = false;
    let check_every = limits.idle.min(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = served.as_mut() => break,
            () = conn.close.notified() => break,
            () = shutdown.wait(), if !draining => {
                draining = true;
                served.as_mut().graceful_shutdown();
                // A half-sent request is not worth waiting for.
                if conn.in_request.load(Ordering::Acquire) == 0 {
                    break;
                }
            }
            () = tokio::time::sleep(check_every) => {
                let idle = conn.in_request.load(Ordering::Acquire) == 0;
                let since = conn.idle_since.load(Ordering::Acquire);
                let idle_for = tracker.started.millis().saturating_sub(since);
                if idle && (draining || Duration::from_millis(idle_for) >= limits.idle) {
                    break;
                }
            }
        }
    }
    tracker.remove(id);
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn was_told_to_close(conn: &Conn) -> bool {
        tokio::time::timeout(Duration::ZERO, conn.close.notified())
            .await
            .is_ok()
    }

    #[tokio::test]
    async fn eviction_picks_the_oldest_connection_waiting_for_headers() {
        let tracker = Arc::new(Tracker::default());
        let (_, first) = tracker.add();
        let (_, second) = tracker.add();
        let (_, third) = tracker.add();
        let busy = InRequest::enter(&first, &tracker);
        assert!(tracker.evict_oldest_idle());
        assert!(was_told_to_close(&second).await);
        assert!(!was_told_to_close(&first).await, "busy in a request");
        assert!(!was_told_to_close(&third).await, "younger");
        // The next eviction takes the next one, not `second` again.
        assert!(tracker.evict_oldest_idle());
        assert!(was_told_to_close(&third).await);
        assert_eq!(tracker.len(), 1);
        drop(busy);
    }

    #[test]
    fn a_tracker_full_of_requests_evicts_nothing() {
        let tracker = Arc::new(Tracker::default());
        let (_, only) = tracker.add();
        let _busy = InRequest::enter(&only, &tracker);
        assert!(!tracker.evict_oldest_idle());
    }

    #[test]
    fn the_cap_stays_below_the_descriptor_limit() {
        let cap = connection_cap();
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit only writes the struct passed.
        assert_eq!(
            unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) },
            0
        );
        assert!((cap as u64) < limit.rlim_cur, "{cap} vs {}", limit.rlim_cur);
    }
}
