//! This process in the nodes registry (SPEC §9), and how the registry is
//! read: every `serve` registers itself in its store at start (id,
//! version, addresses, roles, the hash of its rule files), beats every
//! [`HEARTBEAT`] and at once after a reload, and removes its row when it
//! stops gracefully. [`view`] turns the store's rows into what
//! `GET /api/nodes` and the dashboard show: alive or stale, and which
//! nodes run a rule set other than the majority's — a half-finished rules
//! deploy is visible, not a mystery.
//!
//! A node's id is `hostname-ULID`, new at every process start (the same id
//! the engine leases runs under), so a restarted node is a new row and the
//! old one ages out.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::Notify;
use utoipa::ToSchema;

use crate::rules::SharedRules;
use crate::shutdown::Shutdown;
use crate::store::{NodeInfo, NodeRecord, Store};

/// How often a node refreshes its row.
pub const HEARTBEAT: Duration = Duration::from_secs(5);

/// A node whose last heartbeat is older than three intervals is stale
/// (crashed, killed, or cut off from the database).
pub const STALE_AFTER: Duration = Duration::from_secs(3 * HEARTBEAT.as_secs());

/// A stale node's row is deleted after this long without a heartbeat
/// (until then it is listed as stale, so a crash stays visible).
pub const FORGET_AFTER: Duration = Duration::from_secs(3600);

/// Silent rows are deleted at every this many heartbeats (once a minute).
const FORGET_EVERY: u32 = 12;

/// What this process registers, but the rule-set hash, which is read from
/// the running rules at every beat.
#[derive(Debug, Clone)]
pub struct Identity {
    pub id: String,
    pub listen: String,
    pub admin_listen: Option<String>,
    pub receive: bool,
    pub workers: u32,
}

impl Identity {
    /// This node's row as of now: its identity and the running set's hash.
    pub fn info(&self, rules: &SharedRules) -> NodeInfo {
        NodeInfo {
            id: self.id.clone(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            listen: self.listen.clone(),
            admin_listen: self.admin_listen.clone(),
            receive: self.receive,
            workers: self.workers,
            rule_set_hash: rules.load().hash().to_owned(),
        }
    }
}

/// Registers this node now (so it lists itself from its first request).
/// A failure is logged, not fatal: the registry is for operators, and the
/// next beat tries again.
pub async fn register(store: &dyn Store, identity: &Identity, rules: &SharedRules) {
    if let Err(e) = store.beat_node(&identity.info(rules), now_ms()).await {
        tracing::warn!(error = %e, node = %identity.id, "cannot register this node in the nodes registry");
    }
}

/// Beats every [`HEARTBEAT`] (on a shared store) and whenever `reloaded`
/// is notified (the rule set changed), deletes rows silent for
/// [`FORGET_AFTER`] once a minute, and removes this node's row on shutdown.
pub fn spawn(
    store: Arc<dyn Store>,
    identity: Identity,
    rules: SharedRules,
    reloaded: Arc<Notify>,
    mut shutdown: Shutdown,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut beats: u32 = 0;
        // A store of one process (SQLite) is written only when the rule
        // set changes: an idle server commits nothing.
        let period = if store.shared() {
            HEARTBEAT
        } else {
            Duration::MAX
        };
        loop {
            tokio::select! {
                () = sleep(period) => {}
                () = reloaded.notified() => {}
                () = shutdown.wait() => break,
            }
            if let Err(e) = store.beat_node(&identity.info(&rules), now_ms()).await {
                tracing::warn!(error = %e, "nodes registry: heartbeat failed");
            }
            beats = beats.wrapping_add(1);
            if beats.is_multiple_of(FORGET_EVERY) {
                match store.forget_nodes(millis(FORGET_AFTER), now_ms()).await {
                    Ok(0) => {}
                    Ok(n) => {
                        tracing::info!(nodes = n, "nodes registry: forgot nodes silent for an hour")
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "nodes registry: cannot forget silent nodes")
                    }
                }
            }
        }
        if let Err(e) = store.remove_node(&identity.id).await {
            tracing::warn!(error = %e, "nodes registry: cannot remove this node's row on shutdown; it turns stale");
        }
    })
}

/// Sleeps `d`, or for ever for `Duration::MAX` (tokio's timer cannot
/// hold a deadline that far).
async fn sleep(d: Duration) {
    if d == Duration::MAX {
        std::future::pending::<()>().await;
    } else {
        tokio::time::sleep(d).await;
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// `GET /api/nodes`: every registered node, and whether their rule sets
/// differ.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct NodesView {
    /// The id of the node that answered.
    pub this_node: String,
    /// True when the alive nodes do not all run the same rule files.
    pub rule_sets_differ: bool,
    /// How often nodes beat, and after how long without a beat a node is
    /// stale (milliseconds).
    pub heartbeat_interval_ms: i64,
    pub stale_after_ms: i64,
    /// By id.
    pub nodes: Vec<NodeView>,
}

/// One registered node.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct NodeView {
    /// `hostname-ULID`, new at every process start.
    pub id: String,
    pub version: String,
    /// Where it receives webhooks.
    pub listen: String,
    /// Its admin listener, if it has one.
    pub admin_listen: Option<String>,
    /// `receive` (serves the sources' paths) and `work` (runs steps,
    /// `workers` > 0).
    pub roles: Vec<String>,
    /// The `receive:` setting.
    pub receive: bool,
    /// The `workers:` setting (0: receive only).
    pub workers: u32,
    /// SHA-256 (hex) of its rule files (paths and text before `${…}`).
    pub rule_set_hash: String,
    /// False when its rule set is not the one most alive nodes run (and,
    /// when no set has more nodes than every other, for every node).
    pub rule_set_matches_majority: bool,
    /// When it registered and last beat (unix ms, the database's clock).
    pub started_at: i64,
    pub last_heartbeat: i64,
    /// How long ago its last heartbeat was, on the database's clock.
    pub heartbeat_age_ms: i64,
    pub state: NodeState,
    /// The node that answered this request.
    pub this_node: bool,
}

/// Whether a node still beats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum NodeState {
    /// Beat within the last three intervals (or is the node answering).
    Alive,
    /// Silent longer: crashed, killed or cut off from the database (its
    /// runs are taken over when their leases expire).
    Stale,
}

impl NodeState {
    pub fn as_str(self) -> &'static str {
        match self {
            NodeState::Alive => "alive",
            NodeState::Stale => "stale",
        }
    }
}

/// The store's rows as `GET /api/nodes` shows them, for `this_node`.
/// Only alive nodes vote on the majority rule set; stale ones are still
/// compared with it.
pub fn view(records: Vec<NodeRecord>, this_node: &str) -> NodesView {
    let stale_after = millis(STALE_AFTER);
    // The node answering is alive whatever its row's age (on SQLite its
    // row is written only at start and at reloads).
    let alive = |r: &NodeRecord| r.heartbeat_age_ms <= stale_after || r.info.id == this_node;
    let mut votes: Vec<(&str, usize)> = Vec::new();
    for r in records.iter().filter(|r| alive(r)) {
        match votes.iter_mut().find(|(h, _)| *h == r.info.rule_set_hash) {
            Some((_, n)) => *n += 1,
            None => votes.push((&r.info.rule_set_hash, 1)),
        }
    }
    let most = votes.iter().map(|(_, n)| *n).max().unwrap_or(0);
    let mut leaders = votes.iter().filter(|(_, n)| *n == most);
    let majority = match (leaders.next(), leaders.next()) {
        (Some((hash, _)), None) => Some((*hash).to_owned()),
        _ => None,
    };
    let rule_sets_differ = votes.len() > 1;
    let nodes = records
        .iter()
        .map(|r| {
            let mut roles = Vec::new();
            if r.info.receive {
                roles.push("receive".to_owned());
            }
            if r.info.workers > 0 {
                roles.push("work".to_owned());
            }
            NodeView {
                id: r.info.id.clone(),
                version: r.info.version.clone(),
                listen: r.info.listen.clone(),
                admin_listen: r.info.admin_listen.clone(),
                roles,
                receive: r.info.receive,
                workers: r.info.workers,
                rule_set_hash: r.info.rule_set_hash.clone(),
                rule_set_matches_majority: majority.as_deref() == Some(&r.info.rule_set_hash),
                started_at: r.started_at,
                last_heartbeat: r.heartbeat_at,
                heartbeat_age_ms: r.heartbeat_age_ms,
                state: if alive(r) {
                    NodeState::Alive
                } else {
                    NodeState::Stale
                },
                this_node: r.info.id == this_node,
            }
        })
        .collect();
    NodesView {
        this_node: this_node.to_owned(),
        rule_sets_differ,
        heartbeat_interval_ms: millis(HEARTBEAT),
        stale_after_ms: stale_after,
        nodes,
    }
}

/// This node's clock in unix milliseconds, for a store without one.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, hash: &str, age_ms: i64) -> NodeRecord {
        NodeRecord {
            info: NodeInfo {
                id: id.to_owned(),
                version: "1.0.0".to_owned(),
                listen: "10.0.0.1:8080".to_owned(),
                admin_listen: None,
                receive: true,
                workers: 4,
                rule_set_hash: hash.to_owned(),
            },
            started_at: 1,
            heartbeat_at: 2,
            heartbeat_age_ms: age_ms,
        }
    }

    fn flags(v: &NodesView) -> Vec<(String, bool, NodeState)> {
        v.nodes
            .iter()
            .map(|n| (n.id.clone(), n.rule_set_matches_majority, n.state))
            .collect()
    }

    #[test]
    fn the_odd_rule_set_out_is_flagged() {
        let v = view(
            vec![
                record("a", "h1", 0),
                record("b", "h1", 1000),
                record("c", "h2", 2000),
            ],
            "b",
        );
        assert!(v.rule_sets_differ);
        assert_eq!(
            flags(&v),
            vec![
                ("a".to_owned(), true, NodeState::Alive),
                ("b".to_owned(), true, NodeState::Alive),
                ("c".to_owned(), false, NodeState::Alive),
            ]
        );
        assert!(v.nodes[1].this_node && !v.nodes[0].this_node);
    }

    #[test]
    fn a_tie_has_no_majority_and_flags_every_node() {
        let v = view(vec![record("a", "h1", 0), record("b", "h2", 0)], "a");
        assert!(v.rule_sets_differ);
        assert!(v.nodes.iter().all(|n| !n.rule_set_matches_majority));
    }

    #[test]
    fn stale_nodes_do_not_vote_but_are_compared() {
        let stale = millis(STALE_AFTER) + 1;
        let v = view(
            vec![
                record("a", "h1", 0),
                record("b", "h2", stale),
                record("c", "h2", stale),
            ],
            "a",
        );
        assert!(!v.rule_sets_differ, "only one alive rule set");
        assert_eq!(
            flags(&v),
            vec![
                ("a".to_owned(), true, NodeState::Alive),
                ("b".to_owned(), false, NodeState::Stale),
                ("c".to_owned(), false, NodeState::Stale),
            ]
        );
    }

    #[test]
    fn roles_follow_receive_and_workers() {
        let mut receive_only = record("a", "h", 0);
        receive_only.info.workers = 0;
        let mut work_only = record("b", "h", 0);
        work_only.info.receive = false;
        let v = view(vec![receive_only, work_only], "a");
        assert_eq!(v.nodes[0].roles, vec!["receive"]);
        assert_eq!(v.nodes[1].roles, vec!["work"]);
        assert!(!v.rule_sets_differ);
    }
}
