//! One contract for every run-log backend (SPEC §4, §5, §9), written once
//! over `Arc<dyn Store>` and run against SQLite and PostgreSQL alike:
//! accept and dedupe (window, races), leasing with per-rule concurrency,
//! step records and lost leases, renew / release / reclaim, a lease taken
//! over by another node after it expired, retry races, replays, retention,
//! listings, cancel, keyed concurrency, `on_failure` runs, the audit trail,
//! the overview and the nodes registry.
//!
//! Each case is a `pub async fn(Stores)` in a file under `store_contract/`;
//! [`contract!`] instantiates every case as a test per backend. A case gets
//! two handles on one store: `a` and `b` stand for two nodes (for SQLite the
//! same store; for PostgreSQL two pools on one schema, so races cross
//! connections as they would cross nodes).
//!
//! PostgreSQL is reached through `HOOKFLOW_TEST_POSTGRES` (see
//! `common::postgres`): a test whose database is unreachable fails when the
//! variable is set, and otherwise prints a "skipped" line.

use std::sync::{Arc, Mutex};

use hookflow::store::{NewDelivery, NewRun, Store};
use serde_json::json;

mod accept;
mod keyed;
mod leasing;
mod nodes;
mod on_failure;
mod operators;
mod runs;
mod steering;

/// A minute, the dedupe window of most cases.
pub const MINUTE: i64 = 60_000;
/// A fixed past instant for deliveries whose time does not matter to
/// leasing (every run queued at it is due).
pub const T0: i64 = 1_750_000_000_000;

/// Two handles on one store: two nodes sharing a run log.
pub struct Stores {
    pub a: Arc<dyn Store>,
    pub b: Arc<dyn Store>,
}

/// Wall-clock unix milliseconds: lease calls pass the node's clock (a
/// PostgreSQL backend uses its own `now()` for leases; both agree here).
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Monotonic ULIDs, like the server's: same-millisecond ids still sort in
/// creation order.
pub fn new_id() -> String {
    static IDS: Mutex<ulid::Generator> = Mutex::new(ulid::Generator::new());
    let mut ids = IDS.lock().unwrap_or_else(|p| p.into_inner());
    ids.generate().expect("ulid").to_string()
}

pub fn delivery(source: &str, dedupe_key: Option<&str>, received_at: i64) -> NewDelivery {
    NewDelivery {
        id: new_id(),
        source: source.to_owned(),
        received_at,
        method: "POST".to_owned(),
        path: format!("/hooks/{source}"),
        query: Some("a=1".to_owned()),
        headers: vec![
            ("content-type".to_owned(), "application/json".to_owned()),
            ("x-github-event".to_owned(), "push".to_owned()),
        ],
        remote_addr: "192.0.2.7:5555".to_owned(),
        event: "push".to_owned(),
        dedupe_key: dedupe_key.map(str::to_owned),
        body: b"{\"ref\":\"refs/heads/main\"}\xff".to_vec(),
        matched: vec!["deploy-main".to_owned()],
        trace: serde_json::value::to_raw_value(&json!([{"rule": "deploy-main", "matched": true}]))
            .expect("trace"),
    }
}

pub fn run_for(d: &NewDelivery, rule: &str, concurrency: Option<u32>) -> NewRun {
    NewRun {
        id: new_id(),
        delivery_id: d.id.clone(),
        rule: rule.to_owned(),
        created_at: d.received_at,
        definition: json!({"steps": [{"id": "call", "http": {"url": "https://example.test"}}]})
            .into(),
        concurrency,
        concurrency_key: None,
    }
}

/// Accept a delivery with one run per rule; returns the run ids.
pub async fn queue(store: &dyn Store, rules: &[(&str, Option<u32>)]) -> Vec<String> {
    let d = delivery("github", None, T0);
    let runs: Vec<NewRun> = rules.iter().map(|(r, c)| run_for(&d, r, *c)).collect();
    let ids = runs.iter().map(|r| r.id.clone()).collect();
    store.accept(d, runs, MINUTE).await.expect("accept");
    ids
}

/// Every case, once per backend: `contract!(module, fixture)` makes a test
/// module whose tests open their stores with `fixture().await` (`None`:
/// the backend is unavailable and the skip was reported).
macro_rules! contract {
    ($backend:ident, $fixture:path) => {
        contract!(@cases $backend, $fixture;
            accept::accepted_delivery_reads_back_with_its_runs,
            accept::duplicate_within_window_writes_nothing,
            accept::same_key_after_window_starts_a_new_window,
            accept::same_key_on_another_source_or_without_key_is_accepted,
            accept::racing_duplicates_store_one_delivery,
            accept::accepts_at_once_keep_their_windows,
            accept::a_failing_accept_writes_nothing,
            accept::rejected_delivery_is_logged_without_body,
            accept::deliveries_list_newest_first_and_paginate,
            leasing::leased_runs_come_with_their_delivery,
            leasing::per_rule_concurrency_holds_across_racing_nodes,
            leasing::a_lease_that_finds_nothing_tells_when_the_next_is_due,
            leasing::record_step_advances_and_finishes_a_run,
            leasing::a_retry_wait_keeps_the_slot_and_frees_the_worker,
            leasing::another_node_cannot_record_a_step,
            leasing::records_at_once_fail_only_where_the_lease_is_lost,
            leasing::an_expired_lease_is_taken_over_by_another_node,
            leasing::renew_extends_only_the_leases_still_held,
            leasing::release_and_reclaim_make_runs_due_again,
            leasing::a_lost_worker_counts_as_an_expired_lease,
            runs::retry_races_requeue_a_failed_run_once,
            runs::queue_runs_replays_a_stored_delivery,
            runs::prune_deletes_old_finished_deliveries_only,
            runs::runs_list_filtered_and_paginated,
            steering::cancel_ends_a_queued_run_at_once,
            steering::cancel_of_a_held_run_is_seen_by_its_worker,
            steering::cancel_of_finished_or_unknown_runs_does_nothing,
            keyed::contract_keyed_concurrency,
            keyed::contract_leases,
            keyed::contract_cancel,
            operators::the_audit_trail_lists_by_target_and_ages_out,
            operators::a_retry_continues_the_attempt_numbering,
            operators::a_retry_with_a_redefinition_replaces_the_definition,
            operators::runs_waiting_for_a_retry_are_listed_as_waiting,
            operators::the_overview_counts_deliveries_runs_and_rule_rates,
            nodes::nodes_register_beat_and_list_across_handles,
            nodes::silent_nodes_are_forgotten_and_a_stopping_node_leaves,
            on_failure::a_failure_queues_its_on_failure_run_in_the_same_write,
            on_failure::on_failure_every_folds_a_windows_failures_into_one_run,
        );
    };
    (@cases $backend:ident, $fixture:path; $($module:ident :: $case:ident),* $(,)?) => {
        mod $backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    let Some(fixture) = $fixture().await else { return };
                    super::$module::$case(fixture.stores()).await;
                }
            )*
        }
    };
}

contract!(sqlite, crate::common::stores::sqlite);
contract!(postgres, crate::common::stores::postgres);
