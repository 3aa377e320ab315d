//! Fault injection for the tests of the engine's failure paths (SPEC §5:
//! no stranded leases). Read once from the `HOOKFLOW_FAULTS` environment
//! variable, which only tests set, on the `hookflow serve` process they
//! spawn; unset (always, in production) every hook is a no-op.
//!
//! `HOOKFLOW_FAULTS` is a comma-separated list of:
//! - `lease_read=N`: the next N reads of freshly leased runs fail (as when
//!   the process runs out of file descriptors);
//! - `panic:STEP_ID=N` or `panic:STEP_ID=always`: a step with that id
//!   panics its worker N times (or every time) instead of running;
//! - `migrate_batches=N`: `hookflow migrate` commits N batches, then the
//!   process exits inside the next batch's transaction (as a kill would).
//! - `start_pause=MS`: `hookflow serve` waits MS milliseconds after its
//!   engine started, before the rest of the node (registry, HTTP state) —
//!   as a slow database makes it wait — so a test sees the engine work
//!   alone.

use std::collections::HashMap;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// The variable tests set.
pub const ENV: &str = "HOOKFLOW_FAULTS";

/// Hits left per fault; `u64::MAX` stands for "always".
struct Faults {
    left: HashMap<String, AtomicU64>,
}

fn faults() -> &'static Faults {
    static FAULTS: OnceLock<Faults> = OnceLock::new();
    FAULTS.get_or_init(|| Faults::parse(&std::env::var(ENV).unwrap_or_default()))
}

impl Faults {
    fn parse(spec: &str) -> Faults {
        let mut left = HashMap::new();
        for item in spec.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let Some((name, count)) = item.split_once('=') else {
                tracing::warn!(fault = item, "{ENV}: expected NAME=COUNT; ignored");
                continue;
            };
            let count = match count {
                "always" => u64::MAX,
                n => match n.parse() {
                    Ok(n) => n,
                    Err(_) => {
                        tracing::warn!(fault = item, "{ENV}: bad count; ignored");
                        continue;
                    }
                },
            };
            tracing::warn!(fault = name, count, "fault injection is on (tests only)");
            left.insert(name.to_owned(), AtomicU64::new(count));
        }
        Faults { left }
    }

    /// Whether fault `name` fires now (using up one hit).
    fn hit(&self, name: &str) -> bool {
        let Some(left) = self.left.get(name) else {
            return false;
        };
        left.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| match n {
            0 => None,
            u64::MAX => Some(u64::MAX),
            n => Some(n - 1),
        })
        .is_ok()
    }
}

/// The read of freshly leased runs fails now.
pub fn lease_read_fails() -> bool {
    faults().hit("lease_read")
}

/// The step with id `step_id` panics its worker now.
pub fn step_panics(step_id: Option<&str>) -> bool {
    step_id.is_some_and(|id| faults().hit(&format!("panic:{id}")))
}

/// `hookflow migrate` must die now, its batch uncommitted: true once the
/// `migrate_batches` allowance is used up (never when it is not set).
pub fn migrate_interrupted() -> bool {
    let f = faults();
    f.left.contains_key("migrate_batches") && !f.hit("migrate_batches")
}

/// How long `hookflow serve` pauses between starting its engine and the
/// rest of the node (`start_pause`, once).
pub fn start_pause() -> Option<std::time::Duration> {
    let left = faults().left.get("start_pause")?;
    let ms = left.swap(0, Ordering::Relaxed);
    (ms > 0).then(|| std::time::Duration::from_millis(ms))
}

#[cfg(test)]
mod tests {
    use super::Faults;

    #[test]
    fn counts_down_and_always_stays() {
        let f = Faults::parse("lease_read=2, panic:a=always,bad,panic:b=x");
        assert!(f.hit("lease_read"));
        assert!(f.hit("lease_read"));
        assert!(!f.hit("lease_read"));
        for _ in 0..5 {
            assert!(f.hit("panic:a"));
        }
        assert!(!f.hit("panic:b"));
        assert!(!f.hit("nothing"));
    }
}
