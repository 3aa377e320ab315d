//! The overview's figures on PostgreSQL (`store::stats`): the same three
//! range reads as SQLite's, on the same indexes, and the queue depth.

use std::collections::BTreeMap;

use deadpool_postgres::Object;

use super::{PgContext, Prepared, runs};
use crate::store::stats::{
    CHART_MS, DAY_MS, HOUR_MS, MinuteCount, Outcome, Overview, RuleStats, Window,
};
use crate::store::{Result, RunStatus};

pub(super) const OVERVIEW: &str = "read the overview's figures";

pub(super) async fn overview(conn: &Object, now_ms: i64) -> Result<Overview> {
    Ok(Overview {
        now_ms,
        per_minute: per_minute(conn, now_ms - CHART_MS).await?,
        runs_by_status: runs_by_status(conn, now_ms - DAY_MS).await?,
        rules: rules(conn, now_ms).await?,
        queue_depth: runs::queue_depth(conn).await?,
    })
}

async fn per_minute(conn: &Object, since_ms: i64) -> Result<Vec<MinuteCount>> {
    let rows = conn
        .prepared_query(
            "SELECT (received_at / 60000) * 60000 AS minute, source,
                    CASE WHEN status = 'rejected' THEN 'rejected'
                         WHEN matched = '[]' THEN 'unmatched'
                         ELSE 'matched' END AS outcome,
                    COUNT(*)
             FROM deliveries WHERE received_at >= $1
             GROUP BY minute, source, outcome ORDER BY minute, source, outcome",
            &[&since_ms],
        )
        .await
        .pg(OVERVIEW)?;
    Ok(rows
        .iter()
        .map(|row| {
            let count: i64 = row.get(3);
            MinuteCount {
                minute_ms: row.get(0),
                source: row.get(1),
                outcome: Outcome::parse(row.get(2)).unwrap_or(Outcome::Matched),
                count: u64::try_from(count).unwrap_or(0),
            }
        })
        .collect())
}

async fn runs_by_status(conn: &Object, since_ms: i64) -> Result<Vec<(RunStatus, u64)>> {
    let rows = conn
        .prepared_query(
            "SELECT status, COUNT(*) FROM runs WHERE created_at >= $1 GROUP BY status",
            &[&since_ms],
        )
        .await
        .pg(OVERVIEW)?;
    Ok(rows
        .iter()
        .filter_map(|row| {
            let count: i64 = row.get(1);
            RunStatus::parse(row.get(0)).map(|s| (s, u64::try_from(count).unwrap_or(0)))
        })
        .collect())
}

/// Succeeded and failed runs created in the last day, per rule, split
/// into the last hour and the whole day.
async fn rules(conn: &Object, now_ms: i64) -> Result<Vec<RuleStats>> {
    let rows = conn
        .prepared_query(
            "SELECT rule, status = 'succeeded', created_at,
                    COALESCE(finished_at, updated_at) - created_at
             FROM runs WHERE status IN ('succeeded', 'failed') AND created_at >= $1",
            &[&(now_ms - DAY_MS)],
        )
        .await
        .pg(OVERVIEW)?;
    type Finished = Vec<(bool, i64)>;
    let mut by_rule: BTreeMap<String, (Finished, Finished)> = BTreeMap::new();
    for row in &rows {
        let (ok, created_at, ms): (bool, i64, i64) = (row.get(1), row.get(2), row.get(3));
        let entry = by_rule.entry(row.get(0)).or_default();
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
