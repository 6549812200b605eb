//! Per-object exponential backoff with jitter, so one failing object retries ever more slowly
//! while the others keep their pace (kube-runtime has no per-object backoff of its own).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// The delay before retry number `attempt` (1-based): `base * 2^(attempt-1)`, capped at `max`,
/// then spread by `jitter` (a fraction in `[-1, 1]` scaled by 20 %) so retries do not align.
pub fn delay(attempt: u32, base: Duration, max: Duration, jitter: f64) -> Duration {
    let exp = attempt.saturating_sub(1).min(30);
    let raw = base.saturating_mul(1u32 << exp).min(max);
    let factor = 1.0 + 0.2 * jitter.clamp(-1.0, 1.0);
    raw.mul_f64(factor).min(max)
}

/// Failure counts per object key.
#[derive(Debug)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    failures: Mutex<HashMap<String, u32>>,
}

impl Backoff {
    /// Backoff from `base` doubling up to `max`.
    pub fn new(base: Duration, max: Duration) -> Self {
        Self {
            base,
            max,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// Records a failure of `key` and returns how long to wait before retrying it.
    pub fn failed(&self, key: &str) -> Duration {
        let attempt = {
            let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
            let n = failures.entry(key.to_string()).or_insert(0);
            *n = n.saturating_add(1);
            *n
        };
        delay(attempt, self.base, self.max, random_jitter())
    }

    /// Forgets the failures of `key` after a success.
    pub fn succeeded(&self, key: &str) {
        self.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
    }

    /// Keeps only the failure counts whose key `keep` accepts (forget deleted objects).
    pub fn retain(&self, keep: impl Fn(&str) -> bool) {
        self.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|k, _| keep(k));
    }

    /// How many times `key` failed in a row.
    pub fn failures(&self, key: &str) -> u32 {
        self.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .copied()
            .unwrap_or(0)
    }
}

/// A uniform value in `[-1, 1]`.
fn random_jitter() -> f64 {
    let mut b = [0u8; 4];
    if getrandom::fill(&mut b).is_err() {
        return 0.0;
    }
    f64::from(u32::from_le_bytes(b)) / f64::from(u32::MAX) * 2.0 - 1.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_and_caps() {
        let base = Duration::from_secs(1);
        let max = Duration::from_secs(60);
        let d: Vec<u64> = (1..=8)
            .map(|a| delay(a, base, max, 0.0).as_secs())
            .collect();
        assert_eq!(d, [1, 2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(delay(1000, base, max, 0.0), max);
    }

    #[test]
    fn jitter_spreads_within_twenty_percent_and_never_passes_max() {
        let base = Duration::from_secs(10);
        let max = Duration::from_secs(300);
        assert_eq!(delay(1, base, max, 1.0), Duration::from_secs(12));
        assert_eq!(delay(1, base, max, -1.0), Duration::from_secs(8));
        assert_eq!(delay(10, base, max, 1.0), max);
    }

    #[test]
    fn per_key_counts_reset_on_success() {
        let b = Backoff::new(Duration::from_millis(100), Duration::from_secs(10));
        for _ in 0..3 {
            b.failed("a");
        }
        b.failed("b");
        assert_eq!(b.failures("a"), 3);
        assert_eq!(b.failures("b"), 1);
        let d = b.failed("a");
        assert!(
            d >= Duration::from_millis(640) && d <= Duration::from_millis(960),
            "{d:?}"
        );
        b.succeeded("a");
        assert_eq!(b.failures("a"), 0);
    }
}
