//! hookflow: a self-hosted webhook automation hub.
//!
//! A delivery flows one way through these modules:
//! `server` receives it, `verify` checks the sender, `rules` matches it,
//! `store` commits it with its queued runs, and `engine` + `actions` run them.

pub mod actions; // rendering (and later executing) a rule's steps
pub mod cli; // one file per subcommand; `main.rs` only dispatches
pub mod config; // hookflow.yaml + HOOKFLOW_* env + flags -> Settings
pub mod delivery; // a received webhook: parsed body, event name, dedupe key, template context
pub mod dryrun; // match + render without executing: explain, test, diff
pub mod reload;
pub mod rules; // YAML rule files -> a validated, compiled `RuleSet`
pub mod server;
pub mod shutdown;
pub mod store;
pub mod template; // Handlebars registry, helpers and JSON-leaf rendering
pub mod verify; // sender verification, one file per scheme // the run log and queue: deliveries, runs, attempts, traces // graceful shutdown: one trigger, many listeners // axum router: the ingest pipeline, health checks // watching the rules and swapping in a valid set atomically
