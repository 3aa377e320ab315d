//! hookflow: a self-hosted webhook automation hub.
//!
//! A delivery flows one way through these modules: `server` receives it,
//! `verify` checks the sender, `rules` matches it, `store` commits it with
//! its queued runs, and `engine` + `actions` run them.

pub mod actions; // what steps do: rendering and executing http, slack, shell
pub mod app; // the wiring: bind, open the store, start the workers, serve, stop
pub mod cli; // one file per subcommand; `main.rs` only dispatches
pub mod config; // hookflow.yaml + HOOKFLOW_* env + flags -> Settings
pub mod delivery; // a received webhook: parsed body, event name, dedupe key, template context
pub mod dryrun; // match + render without executing: explain, test, diff
pub mod engine; // workers: leasing runs, executing steps, retries, concurrency
pub mod faults; // test-only fault injection (HOOKFLOW_FAULTS), a no-op unless set
pub mod keys; // documented configuration keys: what `hookflow schema` and docs/REFERENCE.md are made of
pub mod metrics; // Prometheus series, named in one place
pub mod nodes; // this process in the nodes registry (heartbeat), and the registry as shown
pub mod ops; // run-log operations shared by the CLI and the API: replay, retry
pub mod reference; // docs/REFERENCE.md, generated from the key tables and the settings table
pub mod reload; // watching the rules and swapping in a valid set atomically
pub mod retention; // pruning deliveries and runs older than `retention`, in the background
pub mod rules; // YAML rule files -> a validated, compiled `RuleSet`
pub mod runlog_view; // the run log redacted for people and the API: one view, shown by both
pub mod server; // axum router: the ingest pipeline, API, health, metrics
pub mod shutdown; // graceful shutdown: one trigger, many listeners
pub mod store; // the run log and queue: deliveries, runs, attempts, traces
pub mod template; // Handlebars registry, helpers and JSON-leaf rendering
pub mod verify; // sender verification, one file per scheme
