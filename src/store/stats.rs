//! Figures for the dashboard's overview (SPEC §8): deliveries per minute by
//! source and outcome, runs by status, success rate and p95 duration per
//! rule over the last hour and day, and the queue depth. One read per
//! backend ([`super::Store::overview`]), answered from the indexes the
//! listings already use, so it stays cheap on a long run log.

use serde::Serialize;

use super::RunStatus;

/// How far back the per-minute chart goes.
pub const CHART_MS: i64 = 60 * 60_000;
/// The two windows of the per-rule figures.
pub const HOUR_MS: i64 = 60 * 60_000;
pub const DAY_MS: i64 = 24 * HOUR_MS;

/// What the overview shows, as of `now_ms`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Overview {
    pub now_ms: i64,
    /// Deliveries of the last [`CHART_MS`], per minute, source and outcome;
    /// minutes without deliveries are absent.
    pub per_minute: Vec<MinuteCount>,
    /// Runs created in the last day, by status (absent: none).
    pub runs_by_status: Vec<(RunStatus, u64)>,
    /// Rules with runs finished in the last day, by name.
    pub rules: Vec<RuleStats>,
    /// Runs not finished yet (queued or running).
    pub queue_depth: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MinuteCount {
    /// The minute's start, unix ms.
    pub minute_ms: i64,
    pub source: String,
    pub outcome: Outcome,
    pub count: u64,
}

/// What became of a delivery (duplicates are not stored).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Matched,
    Unmatched,
    Rejected,
}

impl Outcome {
    pub const ALL: [Outcome; 3] = [Outcome::Matched, Outcome::Unmatched, Outcome::Rejected];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Matched => "matched",
            Outcome::Unmatched => "unmatched",
            Outcome::Rejected => "rejected",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|o| o.as_str() == s)
    }
}

/// One rule's finished runs (created within the window).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RuleStats {
    pub rule: String,
    pub hour: Window,
    pub day: Window,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Window {
    pub succeeded: u64,
    pub failed: u64,
    /// 95th percentile of created → finished, in ms (nearest rank).
    pub p95_ms: Option<i64>,
}

impl Window {
    /// Succeeded out of finished, 0.0–1.0; `None` with no finished run.
    pub fn success_rate(&self) -> Option<f64> {
        let total = self.succeeded + self.failed;
        (total > 0).then(|| self.succeeded as f64 / total as f64)
    }

    /// Builds a window from (succeeded?, duration) pairs.
    pub fn from_runs(runs: &mut [(bool, i64)]) -> Self {
        let succeeded = runs.iter().filter(|(ok, _)| *ok).count() as u64;
        let failed = runs.len() as u64 - succeeded;
        runs.sort_unstable_by_key(|(_, ms)| *ms);
        let p95_ms = (!runs.is_empty()).then(|| {
            // Nearest rank: the smallest value with at least 95 % at or below it.
            let rank = (runs.len() * 95).div_ceil(100).max(1);
            runs[rank - 1].1
        });
        Window {
            succeeded,
            failed,
            p95_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn p95_is_the_nearest_rank_and_the_rate_counts_finished_runs() {
        let mut runs: Vec<(bool, i64)> = (1..=100).map(|ms| (ms % 10 != 0, ms)).collect();
        let w = Window::from_runs(&mut runs);
        assert_eq!((w.succeeded, w.failed, w.p95_ms), (90, 10, Some(95)));
        assert_eq!(w.success_rate(), Some(0.9));
        let one = Window::from_runs(&mut [(true, 7)]);
        assert_eq!(one.p95_ms, Some(7));
        assert_eq!(Window::from_runs(&mut []).success_rate(), None);
    }
}
