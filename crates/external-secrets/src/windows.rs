//! `spec.syncWindows`: cron windows that allow (or deny) periodic refreshes. A window opens at
//! each firing of its UTC schedule (5 fields, `@hourly`-style descriptors, or `@every <Go
//! duration>` counted from the Unix epoch) and stays open for `duration`. Schedules that do not
//! parse are ignored, as upstream ignores them. Only periodic refreshes are gated: a new or
//! changed ExternalSecret syncs at once.

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use croner::Cron;
use strongroom_core::crd::external_secrets::SyncWindows;
use strongroom_core::duration::parse_go_duration;

/// Whether a window is open at `now`, and when the next one opens (if known).
fn open_at(
    schedule: &str,
    length: Duration,
    now: DateTime<Utc>,
) -> Option<(bool, Option<DateTime<Utc>>)> {
    let length = chrono::Duration::from_std(length).ok()?;
    if let Some(every) = schedule.trim().strip_prefix("@every ") {
        let every = parse_go_duration(every.trim())
            .ok()
            .filter(|d| !d.is_zero())?;
        let step = every.as_secs().max(1) as i64;
        let t = now.timestamp();
        let last = DateTime::<Utc>::from_timestamp(t - t.rem_euclid(step), 0)?;
        let next = DateTime::<Utc>::from_timestamp((t - t.rem_euclid(step)).checked_add(step)?, 0)?;
        return Some((
            last.checked_add_signed(length).is_none_or(|end| now < end),
            Some(next),
        ));
    }
    let cron = Cron::from_str(schedule.trim()).ok()?;
    let last = cron.find_previous_occurrence(&now, true).ok();
    let next = cron.find_next_occurrence(&now, false).ok();
    let open = last.is_some_and(|l| l.checked_add_signed(length).is_none_or(|end| now < end));
    Some((open, next))
}

/// Whether the windows let a periodic refresh happen at `now`; when they do not, how long until
/// they may (if known).
pub fn allows(windows: Option<&SyncWindows>, now: DateTime<Utc>) -> Result<(), Option<Duration>> {
    let Some(windows) = windows.filter(|w| !w.windows.is_empty()) else {
        return Ok(());
    };
    let mut any_open = false;
    let mut next_open: Option<DateTime<Utc>> = None;
    let mut next_close: Option<DateTime<Utc>> = None;
    for w in &windows.windows {
        let Some(length) = parse_go_duration(&w.duration).ok() else {
            continue;
        };
        let Some((open, next)) = open_at(&w.schedule, length, now) else {
            continue;
        };
        any_open |= open;
        if let Some(n) = next {
            next_open = Some(next_open.map_or(n, |o| o.min(n)));
        }
        if open {
            // a deny window closes `length` after its last firing; approximate with `length`
            let close = chrono::Duration::from_std(length)
                .ok()
                .and_then(|d| now.checked_add_signed(d))
                .unwrap_or(DateTime::<Utc>::MAX_UTC);
            next_close = Some(next_close.map_or(close, |c| c.min(close)));
        }
    }
    let until = |t: Option<DateTime<Utc>>| t.and_then(|t| (t - now).to_std().ok());
    match (windows.kind.to_ascii_lowercase().as_str(), any_open) {
        ("deny", true) => Err(until(next_close)),
        ("deny", false) => Ok(()),
        (_, true) => Ok(()),
        (_, false) => Err(until(next_open)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strongroom_core::crd::external_secrets::SyncWindow;

    fn at(h: u32, m: u32) -> DateTime<Utc> {
        use chrono::TimeZone;
        Utc.with_ymd_and_hms(2026, 12, 3, h, m, 0)
            .single()
            .unwrap_or_default()
    }

    fn windows(kind: &str, schedule: &str, duration: &str) -> SyncWindows {
        SyncWindows {
            kind: kind.into(),
            windows: vec![SyncWindow {
                schedule: schedule.into(),
                duration: duration.into(),
            }],
        }
    }

    #[test]
    fn allow_and_deny_windows() {
        let nightly = windows("allow", "0 2 * * *", "1h");
        assert!(allows(Some(&nightly), at(2, 30)).is_ok());
        let blocked = allows(Some(&nightly), at(12, 0));
        assert_eq!(blocked, Err(Some(Duration::from_secs(14 * 3600))));
        let freeze = windows("deny", "0 9 * * *", "8h");
        assert!(allows(Some(&freeze), at(10, 0)).is_err());
        assert!(allows(Some(&freeze), at(18, 0)).is_ok());
        assert!(allows(Some(&windows("allow", "@hourly", "10m")), at(5, 5)).is_ok());
        assert!(allows(Some(&windows("allow", "@every 30m", "5m")), at(5, 31)).is_ok());
        assert!(allows(Some(&windows("allow", "@every 30m", "5m")), at(5, 40)).is_err());
        // unparseable schedules are ignored: an allow list of nothing valid allows nothing
        // known, so it blocks without a known reopening
        assert_eq!(
            allows(Some(&windows("allow", "not cron", "1h")), at(1, 0)),
            Err(None)
        );
        assert!(allows(None, at(1, 0)).is_ok());
        // absurd durations neither panic nor close the window
        assert!(
            allows(
                Some(&windows("allow", "0 2 * * *", "3000000000h")),
                at(12, 0)
            )
            .is_ok()
        );
        // (a duration beyond what a date can hold is ignored like an unparseable schedule)
        let _ = allows(
            Some(&windows("deny", "@every 3000000000h", "3000000000h")),
            at(12, 0),
        );
    }
}
