//! Helpers shared by every integration test: starting hookflow (`app`),
//! a scriptable HTTP peer standing in for Slack, CI and friends (`sink`),
//! running the CLI and asserting its exit code (`cli`), and waiting on a
//! condition with a deadline instead of sleeping (`wait`).

pub mod app;
pub mod cli;
pub mod sink;
pub mod stores;
pub mod wait;
