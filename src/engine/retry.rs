//! The retry schedule (SPEC §2.2): which failures are retried, and when.
//!
//! A retry is persisted as "next attempt at" on the run, so all the engine
//! needs is arithmetic: [`next_delay`] is that arithmetic, pure, with the
//! randomness passed in.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::actions::Fault;
use crate::rules::model::RetryPolicy;

/// The longest `Retry-After` honoured; a server asking for more is
/// retried after a day.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// Whether a failure may be worth another attempt: connection errors,
/// timeouts, a 408, 429 or 5xx reply (only HTTP kinds get statuses) and a
/// non-zero exit (only commands exit; `shell` makes one attempt unless the
/// step gives `retry`). Other statuses and final errors are not.
pub fn retryable(fault: &Fault) -> bool {
    match fault {
        Fault::Connection | Fault::Timeout | Fault::Exit(_) => true,
        Fault::Status { status, .. } => retryable_status(*status),
        Fault::Final => false,
    }
}

/// 408 Request Timeout, 429 Too Many Requests and every 5xx.
pub fn retryable_status(status: u16) -> bool {
    matches!(status, 408 | 429 | 500..=599)
}

/// The delay before the next attempt after `attempt` attempts (1-based)
/// failed, or `None` when the policy's attempts are used up.
///
/// Exponential backoff with full jitter: a uniform delay in
/// `[0, min(backoff × 2^(attempt−1), max_backoff)]`, `jitter` being the
/// uniform draw in `[0, 1]`. `retry_after` (the server's `Retry-After`) is a
/// lower bound.
pub fn next_delay(
    policy: &RetryPolicy,
    attempt: u32,
    retry_after: Option<Duration>,
    jitter: f64,
) -> Option<Duration> {
    if attempt >= policy.attempts {
        return None;
    }
    let doublings = attempt.saturating_sub(1).min(31);
    let ceiling = policy
        .backoff
        .saturating_mul(1u32 << doublings)
        .min(policy.max_backoff);
    let delay = ceiling.mul_f64(jitter.clamp(0.0, 1.0));
    Some(match retry_after {
        Some(floor) => delay.max(floor.min(MAX_RETRY_AFTER)),
        None => delay,
    })
}

/// After `attempt` attempts of a step with `policy` ended in `fault`: the
/// delay before the next one, or `None` if the failure is final.
pub fn after_failure(
    policy: &RetryPolicy,
    attempt: u32,
    fault: &Fault,
    now: DateTime<Utc>,
    jitter: f64,
) -> Option<Duration> {
    if !retryable(fault) {
        return None;
    }
    let retry_after = match fault {
        Fault::Status {
            retry_after: Some(value),
            ..
        } => parse_retry_after(value, now),
        _ => None,
    };
    next_delay(policy, attempt, retry_after, jitter)
}

/// `Retry-After: <seconds>` or `Retry-After: <HTTP date>` as a delay from
/// `now` (a date in the past is no delay). Anything else is ignored.
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let date = DateTime::parse_from_rfc2822(value).ok()?;
    Some(
        date.with_timezone(&Utc)
            .signed_duration_since(now)
            .to_std()
            .unwrap_or(Duration::ZERO),
    )
}

/// A uniform draw in `[0, 1)` for the jitter.
pub fn random_jitter() -> f64 {
    fastrand::f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn policy(attempts: u32, backoff_ms: u64, max_ms: u64) -> RetryPolicy {
        RetryPolicy {
            attempts,
            backoff: MS * backoff_ms as u32,
            max_backoff: MS * max_ms as u32,
        }
    }

    #[test]
    fn the_ceiling_doubles_from_backoff_with_each_attempt() {
        let p = policy(10, 100, 1_000_000);
        let ceilings: Vec<Duration> = (1..=5)
            .map(|n| next_delay(&p, n, None, 1.0).unwrap())
            .collect();
        assert_eq!(
            ceilings,
            [100 * MS, 200 * MS, 400 * MS, 800 * MS, 1600 * MS]
        );
    }

    #[test]
    fn the_ceiling_stops_at_max_backoff() {
        let p = policy(40, 1000, 10_000);
        assert_eq!(next_delay(&p, 4, None, 1.0), Some(8000 * MS));
        assert_eq!(next_delay(&p, 5, None, 1.0), Some(10_000 * MS));
        assert_eq!(next_delay(&p, 39, None, 1.0), Some(10_000 * MS));
        // The defaults: 1 s doubling to at most 10 min, without overflow.
        let d = RetryPolicy::HTTP_DEFAULT;
        assert_eq!(next_delay(&d, 1, None, 1.0), Some(Duration::from_secs(1)));
        assert_eq!(next_delay(&d, 5, None, 1.0), Some(Duration::from_secs(16)));
    }

    #[test]
    fn full_jitter_spreads_delays_over_zero_to_the_ceiling() {
        let p = policy(10, 100, 1_000_000);
        assert_eq!(next_delay(&p, 3, None, 0.0), Some(Duration::ZERO));
        assert_eq!(next_delay(&p, 3, None, 0.5), Some(200 * MS));
        for _ in 0..1000 {
            let jitter = random_jitter();
            assert!((0.0..1.0).contains(&jitter), "{jitter}");
            let delay = next_delay(&p, 3, None, jitter).unwrap();
            assert!(delay <= 400 * MS, "{delay:?}");
        }
    }

    #[test]
    fn retry_after_is_a_lower_bound() {
        let p = policy(6, 50, 10_000);
        let two = Duration::from_secs(2);
        assert_eq!(next_delay(&p, 1, Some(two), 0.0), Some(two));
        assert_eq!(next_delay(&p, 1, Some(two), 1.0), Some(two));
        // A longer jittered delay wins over a shorter Retry-After.
        let p = policy(6, 10_000, 10_000);
        assert_eq!(next_delay(&p, 1, Some(two), 0.5), Some(5000 * MS));
    }

    #[test]
    fn no_delay_once_attempts_are_used_up() {
        let p = policy(3, 100, 1000);
        assert!(next_delay(&p, 2, None, 0.5).is_some());
        assert_eq!(next_delay(&p, 3, None, 0.5), None);
        assert_eq!(next_delay(&p, 3, Some(MS), 0.5), None);
        assert_eq!(next_delay(&p, 7, None, 0.5), None);
        // The shell default makes one attempt.
        assert_eq!(next_delay(&RetryPolicy::SHELL_DEFAULT, 1, None, 0.5), None);
        // The http default makes six.
        assert!(next_delay(&RetryPolicy::HTTP_DEFAULT, 5, None, 0.5).is_some());
        assert_eq!(next_delay(&RetryPolicy::HTTP_DEFAULT, 6, None, 0.5), None);
    }

    fn http() -> RetryPolicy {
        RetryPolicy::HTTP_DEFAULT
    }

    fn status(status: u16) -> Fault {
        Fault::Status {
            status,
            retry_after: None,
        }
    }

    #[test]
    fn http_retries_connection_errors_timeouts_408_429_and_5xx_only() {
        for fault in [
            Fault::Connection,
            Fault::Timeout,
            status(408),
            status(429),
            status(500),
            status(503),
            status(599),
        ] {
            assert!(retryable(&fault), "{fault:?}");
        }
        for fault in [
            status(400),
            status(401),
            status(404),
            status(409),
            status(301),
            Fault::Final,
        ] {
            assert!(!retryable(&fault), "{fault:?}");
        }
    }

    #[test]
    fn shell_retries_exits_and_timeouts_only_when_retry_is_given() {
        let once = RetryPolicy::SHELL_DEFAULT;
        let now = Utc::now();
        assert!(retryable(&Fault::Exit(1)));
        assert!(retryable(&Fault::Timeout));
        assert!(!retryable(&Fault::Final));
        assert_eq!(after_failure(&once, 1, &Fault::Exit(1), now, 0.5), None);
        let retried = RetryPolicy {
            attempts: 3,
            ..RetryPolicy::SHELL_DEFAULT
        };
        assert!(after_failure(&retried, 1, &Fault::Exit(1), now, 0.5).is_some());
        assert!(after_failure(&retried, 2, &Fault::Timeout, now, 0.5).is_some());
        assert_eq!(after_failure(&retried, 1, &Fault::Final, now, 0.5), None);
    }

    #[test]
    fn a_429_waits_at_least_its_retry_after() {
        let now = Utc::now();
        let fault = Fault::Status {
            status: 429,
            retry_after: Some("2".into()),
        };
        let delay = after_failure(&http(), 1, &fault, now, 0.0).unwrap();
        assert_eq!(delay, Duration::from_secs(2));
        let final_status = Fault::Status {
            status: 400,
            retry_after: Some("2".into()),
        };
        assert_eq!(after_failure(&http(), 1, &final_status, now, 0.0), None);
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let now = DateTime::parse_from_rfc3339("2015-10-21T07:28:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            parse_retry_after(" 120 ", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
    }
}
