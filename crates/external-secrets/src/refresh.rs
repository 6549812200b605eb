//! When an ExternalSecret is read again: upstream's `refreshPolicy` rules, plus refreshes placed
//! on a per-source grid so ExternalSecrets reading the same keys refresh together (one provider
//! call for all of them) while different sources spread over the interval (no spikes).

use std::time::Duration;

use strongroom_core::crd::external_secrets::RefreshPolicy;
use strongroom_core::duration::parse_go_duration;

/// `refreshInterval` when the spec has none.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(3600);

/// The refresh interval; `0s` means "sync once".
pub fn interval(spec: Option<&str>) -> Result<Duration, String> {
    match spec.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(DEFAULT_INTERVAL),
        Some(text) => parse_go_duration(text).map_err(|e| format!("spec.refreshInterval: {e}")),
    }
}

/// What the ExternalSecret's status says about its last sync.
#[derive(Debug, Clone, Copy)]
pub struct LastSync<'a> {
    /// `status.syncedResourceVersion`.
    pub synced_version: Option<&'a str>,
    /// Seconds since `status.refreshTime` (negative when it lies in the future).
    pub age_secs: Option<i64>,
}

/// Why the provider must be read now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Never synced.
    FirstSync,
    /// The spec, labels or annotations changed (a force-sync is an annotation change).
    Changed,
    /// The refresh interval elapsed (the only reason sync windows gate).
    Interval,
}

/// Whether (and why) the provider must be read now (upstream's `shouldRefresh`), given the
/// current `<generation>-<metadata hash>`. Unlike upstream, a label or annotation change (a
/// force-sync) also refreshes an ExternalSecret with `refreshInterval: 0`.
pub fn refresh_reason(
    policy: Option<RefreshPolicy>,
    every: Duration,
    last: LastSync<'_>,
    current_version: &str,
) -> Option<Reason> {
    let never_synced = last.synced_version.is_none_or(str::is_empty) || last.age_secs.is_none();
    let changed = last.synced_version != Some(current_version);
    let first_or_changed = if never_synced {
        Some(Reason::FirstSync)
    } else if changed {
        Some(Reason::Changed)
    } else {
        None
    };
    match policy.unwrap_or_default() {
        RefreshPolicy::CreatedOnce => never_synced.then_some(Reason::FirstSync),
        RefreshPolicy::OnChange => first_or_changed,
        RefreshPolicy::Periodic => {
            if first_or_changed.is_some() {
                return first_or_changed;
            }
            if every.is_zero() {
                return None;
            }
            // due from 90% of the interval on: the grid never schedules earlier than that, so
            // a wake-up on the grid always finds the refresh due
            let age = last.age_secs.unwrap_or_default();
            let due = age < 0 || (age as u128) * 10 >= every.as_secs() as u128 * 9;
            due.then_some(Reason::Interval)
        }
    }
}

/// Whether the provider must be read now: [`refresh_reason`] is some.
pub fn should_refresh(
    policy: Option<RefreshPolicy>,
    every: Duration,
    last: LastSync<'_>,
    current_version: &str,
) -> bool {
    refresh_reason(policy, every, last, current_version).is_some()
}

/// A stable number for what an ExternalSecret reads (its stores and keys): equal sources give
/// equal phases.
pub fn source_seed(parts: &[u8]) -> u64 {
    // FNV-1a: stable across runs and builds (unlike std's hasher)
    parts.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Seconds until the next periodic refresh: the first point of the grid `phase + k·every`
/// (phase from `seed`) at least 90% of an interval after the last sync, which was `age_secs`
/// ago at unix time `now_secs`.
pub fn next_refresh_in(every: Duration, age_secs: i64, now_secs: i64, seed: u64) -> Duration {
    // (a year at most: larger intervals would only overflow the arithmetic below)
    let every_secs = every.as_secs().clamp(1, 366 * 24 * 3600) as i64;
    let last = now_secs - age_secs.max(0);
    let earliest = last + every_secs * 9 / 10;
    let phase = (seed % every_secs as u64) as i64;
    // smallest t >= earliest with t ≡ phase (mod every)
    let offset = (earliest - phase).rem_euclid(every_secs);
    let due = if offset == 0 {
        earliest
    } else {
        earliest + every_secs - offset
    };
    Duration::from_secs((due - now_secs).max(1) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    fn synced(v: &str, age: i64) -> LastSync<'_> {
        LastSync {
            synced_version: Some(v),
            age_secs: Some(age),
        }
    }

    #[test]
    fn policies() {
        let never = LastSync {
            synced_version: None,
            age_secs: None,
        };
        for p in [
            RefreshPolicy::CreatedOnce,
            RefreshPolicy::OnChange,
            RefreshPolicy::Periodic,
        ] {
            assert!(should_refresh(Some(p), HOUR, never, "1-a"));
        }
        assert!(!should_refresh(
            Some(RefreshPolicy::CreatedOnce),
            HOUR,
            synced("1-a", 9999),
            "2-b"
        ));
        assert!(should_refresh(
            Some(RefreshPolicy::OnChange),
            HOUR,
            synced("1-a", 5),
            "2-b"
        ));
        assert!(!should_refresh(
            Some(RefreshPolicy::OnChange),
            HOUR,
            synced("1-a", 9999),
            "1-a"
        ));
        assert!(!should_refresh(None, HOUR, synced("1-a", 60), "1-a"));
        assert!(!should_refresh(None, HOUR, synced("1-a", 3239), "1-a"));
        assert!(
            should_refresh(None, HOUR, synced("1-a", 3240), "1-a"),
            "due at 90%"
        );
        assert!(should_refresh(None, HOUR, synced("1-a", 3600), "1-a"));
        assert!(should_refresh(None, HOUR, synced("1-a", -5), "1-a"));
        // refreshInterval 0: synced once, but a force-sync annotation still works
        assert!(!should_refresh(
            None,
            Duration::ZERO,
            synced("1-a", 99999),
            "1-a"
        ));
        assert!(should_refresh(
            None,
            Duration::ZERO,
            synced("1-a", 5),
            "1-b"
        ));
        assert_eq!(
            refresh_reason(None, HOUR, synced("1-a", 4000), "1-a"),
            Some(Reason::Interval)
        );
        assert_eq!(
            refresh_reason(None, HOUR, synced("1-a", 5), "1-b"),
            Some(Reason::Changed)
        );
        assert_eq!(interval(None), Ok(HOUR));
        assert_eq!(interval(Some("1m30s")), Ok(Duration::from_secs(90)));
        assert!(interval(Some("soon")).is_err());
    }

    #[test]
    fn refreshes_sit_on_a_grid_per_source() {
        let seed = source_seed(b"store/db-key");
        let now = 1_000_000;
        // two readers of the same source that synced at different times meet on one grid point
        let a = next_refresh_in(HOUR, 10, now, seed).as_secs() as i64 + now;
        let b = next_refresh_in(HOUR, 1500, now, seed).as_secs() as i64 + now;
        assert_eq!((a - b).rem_euclid(3600), 0);
        // never sooner than 90% of an interval after the sync, never later than 190%
        for age in [0, 100, 3000, 3599] {
            let wait = next_refresh_in(HOUR, age, now, seed).as_secs() as i64;
            assert!(
                wait + age >= 3240 && wait + age <= 3600 * 19 / 10,
                "{age}: {wait}"
            );
        }
        // other sources get other phases
        assert_ne!(seed % 3600, source_seed(b"store/other") % 3600);
    }
}
