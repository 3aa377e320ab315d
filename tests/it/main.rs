//! The one integration-test binary: every file below is a module of it, so
//! the suite links once and its tests run in parallel threads of one
//! process. Shared helpers live in `common/` (app, sink, cli, wait).
//!
//! A test that changes process-wide state (descriptor limits, the
//! environment, the working directory, signal handlers) would disturb its
//! neighbours here: it runs in a process of its own instead
//! (`common::cli::in_own_process`) or spawns `hookflow serve`
//! (`common::app::Server`). No test calls `std::env::set_var`.
//!
//! To add a test file: `tests/it/<name>.rs` and one `mod <name>;` line.

mod common;

mod api;
mod cli;
mod conditions;
mod crash;
mod crash_trials;
mod deploy_kit;
mod diskfull;
mod engine;
mod golden_errors;
mod hardening;
mod malformed;
mod migrate;
mod multi_node;
mod nodes;
mod on_failure;
mod payload_schema;
mod pg_serving;
mod receive;
mod reload;
mod retry_current;
mod runlog_cli;
mod runlog_view;
mod schema;
mod secret_files;
mod secrets;
mod send;
mod shell;
mod steering;
mod store_contract;
mod store_sqlite;
mod ui;
mod ui_browser;
mod ui_screenshots;
mod verify_vectors;
