//! The HTTP server: source paths (the ingest pipeline in `receive`), health
//! checks, and the wiring of state shared by every request.

mod admin;
mod api;
mod body_deadline;
mod client;
pub mod conn;
mod health;
pub mod openapi;
pub mod receive;
pub mod tls;
mod ui;

use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::timeout::RequestBodyTimeoutLayer;

use crate::config::Settings;
use crate::reload::Reloader;
use crate::rules::SharedRules;
use crate::shutdown::Shutdown;
use crate::store::{Rejected, Store};

/// Called after a delivery with runs is committed (wakes the workers).
pub type OnQueued = Arc<dyn Fn() + Send + Sync>;

/// Called when an operator cancels a running run: stops it now if a
/// worker of this process holds it (`false` if none does).
pub type OnCancel = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// State shared by every request.
pub struct AppState {
    pub rules: SharedRules,
    pub reloader: Arc<Reloader>,
    pub store: Arc<dyn Store>,
    pub settings: Arc<Settings>,
    pub on_queued: OnQueued,
    pub on_cancel: OnCancel,
    /// This process's id in the nodes registry (`crate::nodes`).
    pub node_id: String,
    limiters: client::RateLimiters,
    /// Rejected requests are logged at most this fast, so a flood of forged
    /// requests cannot fill the disk; the rest are only counted.
    reject_log: DefaultDirectRateLimiter,
    /// Monotonic within a millisecond, so ids sort in creation order.
    ids: Mutex<ulid::Generator>,
    /// The dashboard's sessions and failed logins (shared by both listeners).
    ui: ui::UiState,
}

/// How many rejected requests per second reach the run log (burst 10×).
const REJECT_LOG_PER_SECOND: u32 = 20;

/// The longest gap between two pieces of a request body.
const BODY_FRAME_TIMEOUT: Duration = Duration::from_secs(30);

impl AppState {
    pub fn new(
        reloader: Arc<Reloader>,
        store: Arc<dyn Store>,
        settings: Arc<Settings>,
        on_queued: OnQueued,
    ) -> Self {
        let per_second = NonZeroU32::new(REJECT_LOG_PER_SECOND).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(REJECT_LOG_PER_SECOND * 10).unwrap_or(NonZeroU32::MIN);
        crate::metrics::install();
        AppState {
            rules: reloader.rules(),
            reloader,
            store,
            settings,
            on_queued,
            on_cancel: Arc::new(|_| false),
            node_id: String::new(),
            limiters: client::RateLimiters::default(),
            reject_log: RateLimiter::direct(Quota::per_second(per_second).allow_burst(burst)),
            ids: Mutex::new(ulid::Generator::new()),
            ui: ui::UiState::default(),
        }
    }

    /// Sets what a cancel of a running run calls (the engine's
    /// `cancel_local`); without it, runs stop at their lease heartbeat.
    pub fn with_on_cancel(mut self, on_cancel: OnCancel) -> Self {
        self.on_cancel = on_cancel;
        self
    }

    /// Sets this process's id in the nodes registry (`GET /api/nodes`
    /// marks it as the node that answered).
    pub fn with_node_id(mut self, node_id: String) -> Self {
        self.node_id = node_id;
        self
    }

    /// A new ULID: sortable, unique across nodes.
    pub fn new_id(&self) -> String {
        let mut generator = self.ids.lock().unwrap_or_else(|p| p.into_inner());
        generator
            .generate()
            .unwrap_or_else(|_| ulid::Ulid::new())
            .to_string()
    }

    /// Records a refused request (without its body), within the log's budget.
    fn log_rejected(&self, rejected: Rejected) {
        if self.reject_log.check().is_err() {
            return;
        }
        tracing::warn!(source = %rejected.source, status = rejected.status, remote = %rejected.remote_addr, reason = %rejected.reason, "request rejected");
        let store = self.store.clone();
        tokio::spawn(async move {
            if let Err(e) = store.record_rejected(rejected).await {
                tracing::error!(error = %e, "could not record a rejected request");
            }
        });
    }
}

/// Which listener a router is for (SPEC §8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surface {
    /// `listen`: source paths and health checks, plus the admin surface
    /// (behind the token) when an `admin_token` is set.
    Webhooks,
    /// `admin_listen`: health checks and the admin surface, for requests
    /// addressed to a loopback name (plus the token, when one is set).
    Admin,
}

/// The admin surface: `/api` and `/metrics`, each request checked
/// against the admin token when one is set; and the dashboard `/ui`, which
/// logs in with the token once and then holds a session (`ui::auth`).
fn admin_routes(state: &Arc<AppState>) -> Router<Arc<AppState>> {
    let api = Router::new()
        .route("/rules", get(api::rules))
        .route("/reload", post(api::reload))
        .route("/deliveries", get(api::runlog::list_deliveries))
        .route("/deliveries/{id}", get(api::runlog::get_delivery))
        .route("/deliveries/{id}/replay", post(api::ops::replay))
        .route("/runs", get(api::runlog::list_runs))
        .route("/runs/{id}", get(api::runlog::get_run))
        .route("/runs/{id}/retry", post(api::ops::retry))
        .route("/runs/{id}/cancel", post(api::ops::cancel))
        .route("/runs/retry", post(api::bulk::retry))
        .route("/deliveries/replay", post(api::bulk::replay))
        .route("/operator-actions", get(api::runlog::operator_actions))
        .route("/nodes", get(api::nodes))
        .route("/openapi.json", get(openapi::document));
    Router::new()
        .nest("/api", api)
        .route("/metrics", get(health::metrics))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            admin::require_token,
        ))
        .merge(ui::routes(state))
}

/// The router of one listener.
pub fn router(state: Arc<AppState>, surface: Surface) -> Router {
    let admin_here = surface == Surface::Admin || state.settings.admin_token.is_some();
    let mut app = Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz));
    if admin_here {
        app = app.merge(admin_routes(&state));
    }
    let app = match surface {
        // A worker-only node (`receive: false`) serves no source path.
        Surface::Webhooks if !state.settings.receive => app.fallback(webhooks_not_found),
        Surface::Webhooks => app.fallback(receive::receive),
        Surface::Admin => {
            app.fallback(admin_not_found)
                .layer(axum::middleware::from_fn_with_state(
                    state.clone(),
                    admin::require_local_host,
                ))
        }
    };
    app.with_state(state)
        .layer(RequestBodyTimeoutLayer::new(BODY_FRAME_TIMEOUT))
        .layer(axum::middleware::from_fn(body_deadline::limit))
        // A bug must cost one request a 500, never the process.
        .layer(CatchPanicLayer::new())
}

/// `404 {"error":"no such path","paths":[…]}`: what this listener serves,
/// by pattern — never the names of the sources (SPEC §4).
pub fn not_found(state: &AppState, surface: Surface) -> axum::response::Response {
    let mut paths = Vec::new();
    if surface == Surface::Webhooks && state.settings.receive {
        paths.push("/hooks/<source>");
    }
    if surface == Surface::Admin || state.settings.admin_token.is_some() {
        paths.extend(["/api", "/metrics", "/ui"]);
    }
    paths.extend(["/healthz", "/readyz"]);
    let body = serde_json::json!({ "error": "no such path", "paths": paths });
    (axum::http::StatusCode::NOT_FOUND, axum::Json(body)).into_response()
}

async fn webhooks_not_found(
    axum::extract::State(state): axum::extract::State<Arc<AppState>>,
) -> axum::response::Response {
    not_found(&state, Surface::Webhooks)
}

async fn admin_not_found(
    axum::extract::State(state): axum::extract::State<Arc<AppState>>,
) -> axum::response::Response {
    not_found(&state, Surface::Admin)
}

/// Serves `surface` on `listener` until `shutdown` (see `conn`).
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    surface: Surface,
    limits: conn::Limits,
    tls: Option<tokio_rustls::TlsAcceptor>,
    tracker: Arc<conn::Tracker>,
    shutdown: Shutdown,
) {
    conn::serve(
        listener,
        router(state, surface),
        limits,
        tls,
        tracker,
        shutdown,
    )
    .await;
}
