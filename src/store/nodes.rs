//! The nodes registry (SPEC §9): every `serve` process registers itself in
//! the store it shares and beats every few seconds, so `GET /api/nodes`
//! and the dashboard can list who is running what. Plain data shared by
//! every backend; what "alive" and "differs" mean is decided by the reader
//! (`crate::nodes`), from the age the store reports on its own clock.

use serde::Serialize;

/// What a node says about itself at every heartbeat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeInfo {
    /// `hostname-ULID`: a new id at every process start.
    pub id: String,
    /// hookflow's version (`CARGO_PKG_VERSION`).
    pub version: String,
    /// Where it receives webhooks (the bound address).
    pub listen: String,
    /// Its admin listener, if it has one.
    pub admin_listen: Option<String>,
    /// `receive:` — whether it serves the sources' paths.
    pub receive: bool,
    /// `workers:` — runs it executes at once (0: receive only).
    pub workers: u32,
    /// SHA-256 (hex) of the rule files it runs (`RuleSet::hash`).
    pub rule_set_hash: String,
}

/// A registered node as the store holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeRecord {
    #[serde(flatten)]
    pub info: NodeInfo,
    /// When it first registered (unix ms, the store's clock).
    pub started_at: i64,
    /// Its last heartbeat (unix ms, the store's clock: PostgreSQL's
    /// `now()`, never the node's).
    pub heartbeat_at: i64,
    /// How long ago that was, on the store's clock when listed.
    pub heartbeat_age_ms: i64,
}
