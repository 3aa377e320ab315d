//! The overview's figures on SQLite (`store::stats`): three range reads on
//! existing indexes (`deliveries_received_at`, `runs_finished`,
//! `runs_created_at`) and the queue depth, in one reader connection.

use std::collections::BTreeMap;

use rusqlite::Connection;

use super::runs;
use crate::store::stats::{
    CHART_MS, DAY_MS, HOUR_MS, MinuteCount, Outcome, Overview, RuleStats, Window,
};
use crate::store::{Context, Result, RunStatus};

pub(super) const OVERVIEW: &str = "read the overview's figures";

pub(super) fn overview(conn: &Connection, now_ms: i64) -> Result<Overview> {
    Ok(Overview {
        now_ms,
        per_minute: per_minute(conn, now_ms - CHART_MS)?,
        runs_by_status: runs_by_status(conn, now_ms - DAY_MS)?,
        rules: rules(conn, now_ms)?,
        queue_depth: runs::queue_depth(conn)?,
    })
}

fn per_minute(conn: &Connection, since_ms: i64) -> Result<Vec<MinuteCount>> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT (received_at / 60000) * 60000 AS minute, source,
                    CASE WHEN status = 'rejected' THEN 'rejected'
                         WHEN matched = '[]' THEN 'unmatched'
                         ELSE 'matched' END AS outcome,
                    COUNT(*)
             FROM deliveries WHERE received_at >= ?1
             GROUP BY minute, source, outcome ORDER BY minute, source, outcome",
        )
        .ctx(OVERVIEW)?;
    let rows = stmt
        .query_map([since_ms], |row| {
            let outcome: String = row.get(2)?;
            let count: i64 = row.get(3)?;
            Ok(MinuteCount {
                minute_ms: row.get(0)?,
                source: row.get(1)?,
                outcome: Outcome::parse(&outcome).unwrap_or(Outcome::Matched),
                count: u64::try_from(count).unwrap_or(0),
            })
        })
        .ctx(OVERVIEW)?;
    rows.collect::<rusqlite::Result<_>>().ctx(OVERVIEW)
}

fn runs_by_status(conn: &Connection, since_ms: i64) -> Result<Vec<(RunStatus, u64)>> {
    let mut stmt = conn
        .prepare_cached("SELECT status, COUNT(*) FROM runs WHERE created_at >= ?1 GROUP BY status")
        .ctx(OVERVIEW)?;
    let rows = stmt
        .query_map([since_ms], |row| {
            let status: String = row.get(0)?;
            let count: i64 = row.get(1)?;
            Ok((status, u64::try_from(count).unwrap_or(0)))
        })
        .ctx(OVERVIEW)?;
    let mut out = Vec::new();
    for row in rows {
        let (status, count) = row.ctx(OVERVIEW)?;
        if let Some(status) = RunStatus::parse(&status) {
            out.push((status, count));
        }
    }
    Ok(out)
}

/// Succeeded and failed runs created in the last day, per rule, split
/// into the last hour and the whole day.
fn rules(conn: &Connection, now_ms: i64) -> Result<Vec<RuleStats>> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT rule, status = 'succeeded', created_at, COALESCE(finished_at, updated_at) - created_at
             FROM runs WHERE status IN ('succeeded', 'failed') AND created_at >= ?1",
        )
        .ctx(OVERVIEW)?;
    let rows = stmt
        .query_map([now_ms - DAY_MS], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, bool>(1)?,
                row.get::<_, i64>(2)?,
                row.get::<_, i64>(3)?,
            ))
        })
        .ctx(OVERVIEW)?;
    // Per rule: (succeeded?, duration) of the hour's runs, and of the day's.
    type Finished = Vec<(bool, i64)>;
    let mut by_rule: BTreeMap<String, (Finished, Finished)> = BTreeMap::new();
    for row in rows {
        let (rule, ok, created_at, ms) = row.ctx(OVERVIEW)?;
        let entry = by_rule.entry(rule).or_default();
        entry.1.push((ok, ms));
        if created_at >= now_ms - HOUR_MS {
            entry.0.push((ok, ms));
        }
    }
    Ok(by_rule
        .into_iter()
        .map(|(rule, (mut hour, mut day))| RuleStats {
            rule,
            hour: Window::from_runs(&mut hour),
            day: Window::from_runs(&mut day),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::value::RawValue;

    use crate::store::stats::{MinuteCount, Outcome};
    use crate::store::{
        LeaseRequest, NewDelivery, NewRun, Rejected, RunProgress, RunStatus, StepRecord, Store,
    };

    fn delivery(id: &str, source: &str, at: i64, matched: &[&str]) -> NewDelivery {
        NewDelivery {
            id: id.into(),
            source: source.into(),
            received_at: at,
            method: "POST".into(),
            path: format!("/hooks/{source}"),
            query: None,
            headers: Vec::new(),
            remote_addr: "127.0.0.1".into(),
            event: String::new(),
            dedupe_key: None,
            body: b"{}".to_vec(),
            matched: matched.iter().map(|s| s.to_string()).collect(),
            trace: RawValue::NULL.to_owned(),
        }
    }

    fn run(id: &str, delivery: &str, rule: &str, at: i64) -> NewRun {
        NewRun {
            id: id.into(),
            delivery_id: delivery.into(),
            rule: rule.into(),
            created_at: at,
            definition: serde_json::json!({ "actions": [] }).into(),
            concurrency: None,
            concurrency_key: None,
        }
    }

    async fn finish(store: &Arc<dyn Store>, now: i64, statuses: &[RunStatus]) {
        let leased = store
            .lease_runs(LeaseRequest {
                node: "n".into(),
                now_ms: now,
                limit: 10,
                lease_ms: 60_000,
            })
            .await
            .expect("lease");
        for (leased, status) in leased.runs.iter().zip(statuses) {
            store
                .record_step(StepRecord {
                    run_id: leased.run.id.clone(),
                    node: "n".into(),
                    now_ms: now,
                    attempt: None,
                    next_step: 0,
                    attempts_at_next_step: 0,
                    outputs: None,
                    progress: RunProgress::Finished {
                        status: *status,
                        error: None,
                    },
                    on_failure: None,
                })
                .await
                .expect("finish");
        }
    }

    #[tokio::test]
    async fn the_overview_counts_deliveries_per_minute_runs_and_rule_rates() {
        let dir = tempfile::tempdir().expect("dir");
        let url = format!("sqlite://{}", dir.path().join("db").display());
        let store = crate::store::open(&url).await.expect("store");
        let now = chrono::Utc::now().timestamp_millis();
        let minute = now / 60_000 * 60_000;
        // Two matched (a run each), one unmatched, one rejected this minute;
        // one matched two hours ago (outside the chart, inside the day).
        for (id, matched) in [("D1", true), ("D2", true), ("D3", false)] {
            let rules: &[&str] = if matched { &["r"] } else { &[] };
            let runs = if matched {
                vec![run(&format!("{id}-run"), id, "r", now)]
            } else {
                Vec::new()
            };
            store
                .accept(delivery(id, "gh", now, rules), runs, 0)
                .await
                .expect("accept");
        }
        let old = now - 2 * 3_600_000;
        store
            .accept(
                delivery("D0", "gh", old, &["r"]),
                vec![run("D0-run", "D0", "r", old)],
                0,
            )
            .await
            .expect("accept old");
        store
            .record_rejected(Rejected {
                id: "R1".into(),
                source: "gh".into(),
                received_at: now,
                method: "POST".into(),
                path: "/hooks/gh".into(),
                remote_addr: "127.0.0.1".into(),
                status: 401,
                reason: "bad signature".into(),
                kept: None,
            })
            .await
            .expect("reject");

        let before = store.overview(now).await.expect("overview");
        assert_eq!(before.queue_depth, 3);
        assert!(before.rules.is_empty());
        let mut per_minute = before.per_minute.clone();
        per_minute.sort_by_key(|m| m.outcome);
        let expected: Vec<MinuteCount> = [
            (Outcome::Matched, 2),
            (Outcome::Unmatched, 1),
            (Outcome::Rejected, 1),
        ]
        .into_iter()
        .map(|(outcome, count)| MinuteCount {
            minute_ms: minute,
            source: "gh".into(),
            outcome,
            count,
        })
        .collect();
        assert_eq!(per_minute, expected);

        // D0's run fails, D1's and D2's succeed (leased oldest first).
        finish(
            &store,
            now + 10,
            &[
                RunStatus::Failed,
                RunStatus::Succeeded,
                RunStatus::Succeeded,
            ],
        )
        .await;
        let after = store.overview(now + 10).await.expect("overview");
        assert_eq!(after.queue_depth, 0);
        assert_eq!(after.rules.len(), 1);
        let r = &after.rules[0];
        assert_eq!(
            (r.hour.succeeded, r.hour.failed),
            (2, 0),
            "the old run is outside the hour"
        );
        assert_eq!((r.day.succeeded, r.day.failed), (2, 1));
        assert_eq!(r.hour.p95_ms, Some(10));
        let mut by_status = after.runs_by_status.clone();
        by_status.sort_by_key(|(s, _)| s.as_str());
        assert_eq!(
            by_status,
            [(RunStatus::Failed, 1), (RunStatus::Succeeded, 2)]
        );
    }
}
