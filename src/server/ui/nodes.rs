//! The nodes page (`/ui/nodes`, SPEC §9): every node registered in the
//! shared store with its version, addresses, roles, rule-set hash and
//! heartbeat, alive or stale; a node whose rule set is not the majority's
//! is marked, and a banner says when the alive nodes' rule sets differ.
//! The data is `GET /api/nodes`'s.

use std::sync::Arc;

use axum::Extension;
use axum::extract::State;
use maud::{Markup, html};

use super::UiError;
use super::auth::Current;
use super::layout::{shell, time};
use crate::nodes::{NodeState, NodeView};
use crate::server::AppState;

/// `GET /ui/nodes`
pub async fn page(
    State(app): State<Arc<AppState>>,
    Extension(current): Extension<Current>,
) -> Result<Markup, UiError> {
    let records = app.store.list_nodes(crate::nodes::now_ms()).await?;
    let view = crate::nodes::view(records, &app.node_id);
    let body = html! {
        h1 { "Nodes (" (view.nodes.len()) ")" }
        @if view.rule_sets_differ {
            p.notice.error #rule-sets-differ role="alert" {
                "The alive nodes run different rule sets: a rules deploy has not reached every node. "
                "Nodes marked " strong { "differs" } " run other files than the majority."
            }
        } @else {
            p.muted { "Every alive node runs the same rule files." }
        }
        div.scroll { table #nodes {
            thead { tr {
                th { "Node" } th { "State" } th { "Roles" } th { "Rule set" }
                th { "Last heartbeat" } th.hide-narrow { "Version" } th.hide-narrow { "Address" }
                th.hide-narrow { "Started" }
            } }
            tbody { @for n in &view.nodes { (row(n, view.rule_sets_differ)) } }
        } }
        p.muted {
            "Nodes beat every " (view.heartbeat_interval_ms / 1000) " s and are stale after "
            (view.stale_after_ms / 1000) " s without one; a stale node's row is removed after an hour, "
            "a node that stops gracefully removes its own. Heartbeat times are the database's clock."
        }
    };
    Ok(shell("Nodes", "/ui/nodes", &current, body))
}

fn row(n: &NodeView, differ: bool) -> Markup {
    let hash_short = n.rule_set_hash.get(..12).unwrap_or(&n.rule_set_hash);
    html! {
        tr data-node=(n.id) {
            td.mono { (n.id) @if n.this_node { " " span.muted { "(this node)" } } }
            td { span class=(match n.state { NodeState::Alive => "badge ok", NodeState::Stale => "badge bad" }) {
                (n.state.as_str())
            } }
            td { @if n.roles.is_empty() { span.muted { "none" } } @else { (n.roles.join(", ")) }
                 @if n.workers > 0 { " " span.muted { "(" (n.workers) " workers)" } } }
            td.mono title=(n.rule_set_hash) {
                (hash_short)
                @if differ && !n.rule_set_matches_majority { " " span.badge.bad.rule-set-differs { "differs" } }
            }
            td.nowrap { (age(n.heartbeat_age_ms)) " ago" }
            td.hide-narrow.mono { (n.version) }
            td.hide-narrow.mono {
                (n.listen)
                @if let Some(admin) = &n.admin_listen { br; span.muted { "admin " (admin) } }
            }
            td.hide-narrow { (time(n.started_at)) }
        }
    }
}

/// A heartbeat's age, short: `3 s`, `4 min`, `2 h`.
fn age(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    match s {
        0..=119 => format!("{s} s"),
        120..=7199 => format!("{} min", s / 60),
        _ => format!("{} h", s / 3600),
    }
}
