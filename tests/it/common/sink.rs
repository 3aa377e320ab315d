//! The one scriptable HTTP peer the tests stand in for Slack, a CI API or
//! any other action target with: a real server on 127.0.0.1:0 that records
//! every request (method, path and query, headers, body, when it arrived
//! and when and how it was answered) and answers what each path is
//! scripted to — a sequence of statuses and bodies, a delay, a hang, or a
//! reply computed from the request. Tests wait on what it saw with a
//! deadline (`wait_for`), never with a sleep.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::wait;

/// A request the sink received.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    /// The path alone, as scripts match it.
    pub path: String,
    /// The path and query as sent.
    pub uri: String,
    /// Lower-case names, in the order sent.
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    /// When the request (with its whole body) arrived.
    pub arrived: Instant,
    /// When its answer was sent and its status; `None` while it waits
    /// (a delay or a hang).
    pub answered: Option<(Instant, u16)>,
}

impl Seen {
    /// The first value of a header (name in any case), or "".
    pub fn header(&self, name: &str) -> &str {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map_or("", |(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON, `Null` when it is not.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// When it was answered; fails the test if it was not (yet).
    pub fn finished(&self) -> Instant {
        self.answered
            .unwrap_or_else(|| panic!("{} {} was not answered", self.method, self.uri))
            .0
    }

    /// The status it was answered with; fails the test if not answered.
    pub fn status(&self) -> u16 {
        self.answered
            .unwrap_or_else(|| panic!("{} {} was not answered", self.method, self.uri))
            .1
    }
}

/// A scripted answer.
#[derive(Debug, Clone)]
pub struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
    /// Waited before answering (the request is recorded at once).
    delay: Duration,
    /// Never answers: the connection stays open until the client gives up.
    hang: bool,
}

impl Reply {
    /// `status` with the body `{}` (as JSON).
    pub fn status(status: u16) -> Reply {
        Reply::body(status, "{}")
    }

    /// `status` with `body`, served as `application/json`.
    pub fn body(status: u16, body: &str) -> Reply {
        Reply {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.to_owned(),
            delay: Duration::ZERO,
            hang: false,
        }
    }

    /// `status` with `value` as its JSON body.
    pub fn json(status: u16, value: &Value) -> Reply {
        Reply::body(status, &value.to_string())
    }

    /// A request that is never answered.
    pub fn hang() -> Reply {
        Reply {
            hang: true,
            ..Reply::status(200)
        }
    }

    /// Sets a response header (replacing one of the same name).
    pub fn header(mut self, name: &str, value: &str) -> Reply {
        let name = name.to_ascii_lowercase();
        self.headers.retain(|(k, _)| *k != name);
        self.headers.push((name, value.to_owned()));
        self
    }

    /// Answers after `delay`.
    pub fn delay(mut self, delay: Duration) -> Reply {
        self.delay = delay;
        self
    }
}

type Compute = Arc<dyn Fn(&Seen) -> Reply + Send + Sync>;

/// What a path answers.
enum Script {
    /// In order; the last one repeats.
    Sequence(VecDeque<Reply>),
    /// Computed from each request.
    With(Compute),
}

#[derive(Default)]
struct Shared {
    seen: Mutex<Vec<Seen>>,
    /// By path; a key ending in `*` matches every path it prefixes.
    scripts: Mutex<HashMap<String, Script>>,
}

/// A running sink. Paths with no script answer 200 `{}`.
#[derive(Clone)]
pub struct Sink {
    /// `http://127.0.0.1:PORT`, no trailing slash.
    pub url: String,
    shared: Arc<Shared>,
}

/// A poisoned lock only means another test thread panicked mid-update.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Sink {
    pub async fn start() -> Sink {
        let shared = Arc::new(Shared::default());
        let app = axum::Router::new()
            .fallback(answer)
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the sink");
        let url = format!("http://{}", listener.local_addr().expect("sink address"));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Sink { url, shared }
    }

    /// `path` answers `replies` in order, then repeats the last one. A
    /// path ending in `*` scripts every path it prefixes.
    pub fn script(&self, path: &str, replies: impl IntoIterator<Item = Reply>) {
        let replies: VecDeque<Reply> = replies.into_iter().collect();
        assert!(!replies.is_empty(), "a script needs at least one reply");
        lock(&self.shared.scripts).insert(path.to_owned(), Script::Sequence(replies));
    }

    /// `path` answers `reply` from now on.
    pub fn answer(&self, path: &str, reply: Reply) {
        self.script(path, [reply]);
    }

    /// `path` answers what `compute` makes of each request.
    pub fn answer_with(
        &self,
        path: &str,
        compute: impl Fn(&Seen) -> Reply + Send + Sync + 'static,
    ) {
        lock(&self.shared.scripts).insert(path.to_owned(), Script::With(Arc::new(compute)));
    }

    /// Every request so far, in arrival order.
    pub fn all(&self) -> Vec<Seen> {
        lock(&self.shared.seen).clone()
    }

    /// The requests to `path` so far, in arrival order.
    pub fn seen(&self, path: &str) -> Vec<Seen> {
        lock(&self.shared.seen)
            .iter()
            .filter(|s| s.path == path)
            .cloned()
            .collect()
    }

    /// Waits until at least `n` requests to `path` arrived; returns them.
    pub async fn wait_for(&self, path: &str, n: usize, timeout: Duration) -> Vec<Seen> {
        let what = format!("{n} request(s) to {path} at the sink");
        wait::for_ok(&what, timeout, || async {
            let seen = self.seen(path);
            if seen.len() >= n {
                Ok(seen)
            } else {
                Err(format!("{} so far", seen.len()))
            }
        })
        .await
    }

    /// Waits until `done` holds for everything the sink saw; returns it.
    pub async fn wait_until(
        &self,
        what: &str,
        timeout: Duration,
        done: impl Fn(&[Seen]) -> bool,
    ) -> Vec<Seen> {
        wait::for_ok(what, timeout, || async {
            let all = self.all();
            if done(&all) {
                Ok(all)
            } else {
                Err(format!("{} request(s) seen", all.len()))
            }
        })
        .await
    }

    /// The reply scripted for `seen`'s path (200 `{}` when none is).
    fn next_reply(&self, seen: &Seen) -> Reply {
        let mut scripts = lock(&self.shared.scripts);
        let key = if scripts.contains_key(&seen.path) {
            Some(seen.path.clone())
        } else {
            scripts
                .keys()
                .filter(|k| {
                    k.strip_suffix('*')
                        .is_some_and(|prefix| seen.path.starts_with(prefix))
                })
                .max_by_key(|k| k.len())
                .cloned()
        };
        let script = key.and_then(|k| scripts.get_mut(&k));
        match script {
            Some(Script::Sequence(replies)) if replies.len() > 1 => {
                replies.pop_front().unwrap_or_else(|| Reply::status(200))
            }
            Some(Script::Sequence(replies)) => replies
                .front()
                .cloned()
                .unwrap_or_else(|| Reply::status(200)),
            Some(Script::With(compute)) => {
                let compute = compute.clone();
                drop(scripts);
                compute(seen)
            }
            None => Reply::status(200),
        }
    }
}

async fn answer(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let seen = Seen {
        method: method.to_string(),
        path: uri.path().to_owned(),
        uri: uri.path_and_query().map_or("/", |p| p.as_str()).to_owned(),
        headers: headers
            .iter()
            .map(|(k, v)| {
                let value = String::from_utf8_lossy(v.as_bytes()).into_owned();
                (k.as_str().to_owned(), value)
            })
            .collect(),
        body,
        arrived: Instant::now(),
        answered: None,
    };
    let sink = Sink {
        url: String::new(),
        shared: shared.clone(),
    };
    let reply = sink.next_reply(&seen);
    let index = {
        let mut all = lock(&shared.seen);
        all.push(seen);
        all.len() - 1
    };
    if reply.hang {
        std::future::pending::<()>().await;
    }
    tokio::time::sleep(reply.delay).await;
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    lock(&shared.seen)[index].answered = Some((Instant::now(), status.as_u16()));
    let mut response = (status, reply.body).into_response();
    for (name, value) in &reply.headers {
        if let (Ok(name), Ok(value)) = (
            axum::http::HeaderName::from_bytes(name.as_bytes()),
            axum::http::HeaderValue::from_str(value),
        ) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}
