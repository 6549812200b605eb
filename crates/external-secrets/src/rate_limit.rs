//! Per-store limits on provider calls: a token bucket whose rate adapts to throttling.
//!
//! Each store gets a ceiling (`--provider-rate-limit`, calls per second) and a bucket holding
//! up to one second's worth of calls at the current rate, so a burst (many ExternalSecrets over
//! many keys after a restart) is spread out instead of hitting the provider's own limit. When
//! the provider throttles anyway, the store's rate halves (at most once per round of calls:
//! calls already in flight when it halved do not halve it again) and no call goes to it until
//! the provider's `Retry-After` (or [`DEFAULT_THROTTLE_PAUSE`]) has passed; afterwards the rate
//! grows back linearly, by [`RECOVERY_PER_SECOND`] of the ceiling each second, up to the
//! ceiling. With no ceiling (0) calls are never delayed, but a throttling store is still paused.
//!
//! [`Bucket`] is the arithmetic, driven by the times it is given; [`RateLimits`] keeps one per
//! store and makes callers wait (on tokio's timer).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// How long a store that throttled us without saying how long to wait gets no calls.
pub const DEFAULT_THROTTLE_PAUSE: Duration = Duration::from_secs(5);

/// The share of the ceiling the rate regains per second after it was lowered (from half the
/// ceiling back to all of it in 15 s).
pub const RECOVERY_PER_SECOND: f64 = 1.0 / 30.0;

/// The lowest rate, as a share of the ceiling (six halvings).
pub const FLOOR: f64 = 1.0 / 64.0;

/// The longest a call waits for its turn; a longer queue fails the call at once as throttled
/// (it is retried after that wait), so a slow store does not hold reconcile workers for long.
pub const MAX_WAIT: Duration = Duration::from_secs(10);

/// The answer to a call asking for its turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Turn {
    /// The call may go after this wait (zero: at once); its place is reserved.
    After(Duration),
    /// The store is paused after throttling, or the queue is longer than [`MAX_WAIT`]: no
    /// call now, try again after this long.
    Refused(Duration),
}

/// One store's bucket. Times are passed in, so it is deterministic.
#[derive(Debug, Clone)]
pub struct Bucket {
    /// Calls per second allowed at most; 0: unlimited.
    ceiling: f64,
    /// Calls per second allowed now (lowered by throttling).
    rate: f64,
    /// Calls that may go at once; negative while calls wait for reserved turns.
    tokens: f64,
    /// When `tokens` and `rate` were last brought up to date.
    updated: Instant,
    /// No call before this (after throttling).
    paused_until: Option<Instant>,
    /// When the rate was last halved.
    lowered_at: Option<Instant>,
}

impl Bucket {
    /// A full bucket for `ceiling` calls per second (0: unlimited), at `now`.
    pub fn new(ceiling: f64, now: Instant) -> Self {
        let ceiling = if ceiling.is_finite() && ceiling > 0.0 {
            ceiling
        } else {
            0.0
        };
        Self {
            ceiling,
            rate: ceiling,
            tokens: capacity(ceiling),
            updated: now,
            paused_until: None,
            lowered_at: None,
        }
    }

    /// The rate allowed now, in calls per second (0: unlimited).
    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// How long calls still wait after throttling, at `now`.
    pub fn paused_for(&self, now: Instant) -> Option<Duration> {
        self.paused_until
            .filter(|until| *until > now)
            .map(|until| until - now)
    }

    /// Brings the rate and the tokens up to `now`: the rate grows back towards the ceiling,
    /// the tokens by the rate, up to one second's worth.
    fn refill(&mut self, now: Instant) {
        if self.ceiling == 0.0 || now <= self.updated {
            return;
        }
        let elapsed = (now - self.updated).as_secs_f64();
        let grown = (self.rate + self.ceiling * RECOVERY_PER_SECOND * elapsed).min(self.ceiling);
        // tokens accrue at the mean rate over the interval (the rate grows linearly)
        self.tokens = (self.tokens + (self.rate + grown) / 2.0 * elapsed).min(capacity(grown));
        self.rate = grown;
        self.updated = now;
    }

    /// Asks for a call's turn at `now`.
    pub fn reserve(&mut self, now: Instant) -> Turn {
        if let Some(left) = self.paused_for(now) {
            return Turn::Refused(left);
        }
        self.paused_until = None;
        if self.ceiling == 0.0 {
            return Turn::After(Duration::ZERO);
        }
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Turn::After(Duration::ZERO);
        }
        // the turn comes when the tokens, short by this many, have accrued
        let wait = Duration::from_secs_f64((1.0 - self.tokens) / self.rate);
        if wait > MAX_WAIT {
            return Turn::Refused(wait);
        }
        self.tokens -= 1.0;
        Turn::After(wait)
    }

    /// The provider throttled a call that was let through at `issued`: no call for
    /// `retry_after` (or [`DEFAULT_THROTTLE_PAUSE`]) from `now`, and the rate halves unless it
    /// was already halved after that call went (one halving per round of calls). The bucket
    /// starts empty when the pause ends, so no burst follows it.
    pub fn throttled(&mut self, now: Instant, issued: Instant, retry_after: Option<Duration>) {
        let until = now + retry_after.unwrap_or(DEFAULT_THROTTLE_PAUSE);
        self.paused_until = Some(self.paused_until.map_or(until, |p| p.max(until)));
        if self.ceiling == 0.0 {
            return;
        }
        self.refill(now);
        if self.lowered_at.is_none_or(|at| issued >= at) {
            self.rate = (self.rate / 2.0).max(self.ceiling * FLOOR);
            self.lowered_at = Some(now);
        }
        self.tokens = 0.0;
        self.updated = self.updated.max(until);
    }
}

/// Calls that may go at once at `rate`: one second's worth, at least one.
fn capacity(rate: f64) -> f64 {
    rate.max(1.0)
}

/// A turn given to a call; hand it back with [`RateLimits::throttled`] if the provider
/// throttled the call.
#[derive(Debug, Clone, Copy)]
pub struct Permit {
    issued: Instant,
    /// How long the call waited for its turn.
    pub waited: Duration,
}

/// One [`Bucket`] per store.
pub struct RateLimits<K> {
    ceiling: f64,
    buckets: Mutex<HashMap<K, Bucket>>,
}

impl<K: Hash + Eq + Clone> RateLimits<K> {
    /// Limits of `ceiling` calls per second per store (0: unlimited, pauses only).
    pub fn new(ceiling: f64) -> Self {
        Self {
            ceiling,
            buckets: Mutex::default(),
        }
    }

    fn with<T>(&self, key: &K, f: impl FnOnce(&mut Bucket) -> T) -> T {
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let bucket = buckets
            .entry(key.clone())
            .or_insert_with(|| Bucket::new(self.ceiling, Instant::now()));
        f(bucket)
    }

    /// Waits for a call's turn at `key`'s store; `Err(wait)` when the store is paused after
    /// throttling (or its queue is too long) and no call should go for `wait`.
    pub async fn acquire(&self, key: &K) -> Result<Permit, Duration> {
        let asked = Instant::now();
        match self.with(key, |b| b.reserve(asked)) {
            Turn::Refused(wait) => Err(wait),
            Turn::After(wait) if wait.is_zero() => Ok(Permit {
                issued: asked,
                waited: Duration::ZERO,
            }),
            Turn::After(wait) => {
                tokio::time::sleep(wait).await;
                // the store may have throttled while this call waited
                let now = Instant::now();
                if let Some(left) = self.with(key, |b| b.paused_for(now)) {
                    return Err(left);
                }
                Ok(Permit {
                    issued: now,
                    waited: now - asked,
                })
            }
        }
    }

    /// The provider throttled the call `permit` let through.
    pub fn throttled(&self, key: &K, permit: Permit, retry_after: Option<Duration>) {
        let now = Instant::now();
        self.with(key, |b| b.throttled(now, permit.issued, retry_after));
    }

    /// The rate `key`'s store is allowed now (calls per second; 0: unlimited).
    pub fn rate(&self, key: &K) -> f64 {
        self.with(key, |b| b.rate())
    }

    /// Drops the buckets of stores `live` says are gone.
    pub fn retain(&self, live: impl Fn(&K) -> bool) {
        self.buckets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|k, _| live(k));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Calls let through at once, asking every `step` from `start` until `until`.
    fn admitted(b: &mut Bucket, start: Instant, step: Duration, until: Duration) -> usize {
        let mut n = 0;
        let mut t = start;
        while t < start + until {
            if b.reserve(t) == Turn::After(Duration::ZERO) {
                n += 1;
            } else {
                // a waiting caller gives its reserved turn back for this count
                b.tokens += 1.0;
            }
            t += step;
        }
        n
    }

    #[test]
    fn a_burst_is_capped_at_one_second_of_calls_then_spread() {
        let t0 = Instant::now();
        let mut b = Bucket::new(10.0, t0);
        let turns: Vec<Turn> = (0..25).map(|_| b.reserve(t0)).collect();
        assert!(
            turns[..10]
                .iter()
                .all(|t| *t == Turn::After(Duration::ZERO))
        );
        // the rest are queued 0.1 s apart
        for (i, turn) in turns[10..].iter().enumerate() {
            let Turn::After(wait) = *turn else {
                panic!("call {} refused: {turn:?}", i + 10)
            };
            let want = 0.1 * (i + 1) as f64;
            assert!(
                (wait.as_secs_f64() - want).abs() < 1e-6,
                "{wait:?} vs {want}"
            );
        }
        // over a long stretch the rate holds: 10 per second plus the first burst
        let mut b = Bucket::new(10.0, t0);
        let n = admitted(&mut b, t0, secs(0.001), secs(20.0));
        assert!((209..=211).contains(&n), "{n} calls in 20 s at 10/s");
    }

    #[test]
    fn a_queue_longer_than_the_longest_wait_is_refused() {
        let t0 = Instant::now();
        let mut b = Bucket::new(1.0, t0);
        for _ in 0..11 {
            assert!(matches!(b.reserve(t0), Turn::After(_)));
        }
        assert!(
            matches!(b.reserve(t0), Turn::Refused(w) if w > MAX_WAIT),
            "the 12th call would wait 11 s"
        );
    }

    #[test]
    fn throttling_pauses_for_retry_after_and_halves_the_rate_once_per_round() {
        let t0 = Instant::now();
        let mut b = Bucket::new(8.0, t0);
        b.throttled(t0 + ms(1000), t0, Some(ms(3000)));
        assert_eq!(b.rate(), 4.0);
        // a call of the same round, throttled too, does not halve again
        b.throttled(t0 + ms(1100), t0 + ms(500), Some(ms(3000)));
        assert_eq!(b.rate(), 4.0);
        // Retry-After holds every call back, counted from the latest throttling
        assert_eq!(b.reserve(t0 + ms(2000)), Turn::Refused(ms(2100)));
        assert_eq!(b.paused_for(t0 + ms(4000)), Some(ms(100)));
        // after the pause: no burst, calls come at the halved rate (4/s)
        let n = admitted(&mut b, t0 + ms(4100), ms(1), ms(1000));
        assert!(
            (4..=5).contains(&n),
            "{n} calls in the first second after the pause"
        );
        // a call let through after the halving is throttled: it halves again
        b.throttled(t0 + ms(5200), t0 + ms(5000), None);
        assert!((b.rate() - 2.0).abs() < 0.2, "rate {}", b.rate());
        // without Retry-After the pause is the default
        assert_eq!(
            b.reserve(t0 + ms(5200)),
            Turn::Refused(DEFAULT_THROTTLE_PAUSE)
        );
    }

    #[test]
    fn the_rate_recovers_linearly_up_to_the_ceiling() {
        let t0 = Instant::now();
        let mut b = Bucket::new(30.0, t0);
        b.throttled(t0, t0, Some(Duration::ZERO));
        assert_eq!(b.rate(), 15.0);
        // one thirtieth of the ceiling (1/s) back per second
        b.refill(t0 + secs(5.0));
        assert!((b.rate() - 20.0).abs() < 1e-9, "rate {}", b.rate());
        b.refill(t0 + secs(15.0));
        assert_eq!(b.rate(), 30.0);
        b.refill(t0 + secs(100.0));
        assert_eq!(b.rate(), 30.0, "never above the ceiling");
        // and never below the floor however often it is throttled
        let mut t = t0 + secs(100.0);
        for _ in 0..20 {
            b.throttled(t, t, Some(Duration::ZERO));
            t += secs(0.001);
        }
        assert!((b.rate() - 30.0 * FLOOR).abs() < 0.01, "rate {}", b.rate());
    }

    #[test]
    fn unlimited_never_waits_but_still_pauses() {
        let t0 = Instant::now();
        let mut b = Bucket::new(0.0, t0);
        for _ in 0..10_000 {
            assert_eq!(b.reserve(t0), Turn::After(Duration::ZERO));
        }
        b.throttled(t0, t0, Some(secs(2.0)));
        assert_eq!(b.rate(), 0.0);
        assert_eq!(b.reserve(t0 + secs(1.0)), Turn::Refused(secs(1.0)));
        assert_eq!(b.reserve(t0 + secs(2.0)), Turn::After(Duration::ZERO));
        assert_eq!(Bucket::new(f64::NAN, t0).rate(), 0.0);
    }

    /// The async layer on the real clock, with a rate fast enough to keep the test short.
    #[tokio::test]
    async fn callers_wait_their_turn_and_stores_are_apart() {
        let limits = RateLimits::new(20.0);
        let within = |d: Duration, lo: u64, hi: u64| d >= ms(lo) && d <= ms(hi);
        for _ in 0..20 {
            let Ok(p) = limits.acquire(&"a").await else {
                panic!("the first second's worth goes at once")
            };
            assert!(p.waited < ms(10), "{:?}", p.waited);
        }
        let Ok(p) = limits.acquire(&"a").await else {
            panic!("the 21st call waits, it is not refused")
        };
        assert!(
            within(p.waited, 40, 150),
            "one turn at 20/s: {:?}",
            p.waited
        );
        // another store has its own bucket
        let Ok(other) = limits.acquire(&"b").await else {
            panic!("store b is not limited by a")
        };
        assert!(other.waited < ms(10));
        // throttling halves store a's rate and pauses it for Retry-After
        limits.throttled(&"a", p, Some(ms(300)));
        assert_eq!(limits.rate(&"a"), 10.0);
        let Err(pause) = limits.acquire(&"a").await else {
            panic!("no call while the store is paused")
        };
        assert!(within(pause, 250, 300), "{pause:?}");
        tokio::time::sleep(pause).await;
        let Ok(after) = limits.acquire(&"a").await else {
            panic!("the pause is over")
        };
        // the bucket starts empty after the pause: one turn at 10/s is 0.1 s
        assert!(within(after.waited, 80, 200), "{:?}", after.waited);
        limits.retain(|k| *k != "a");
        assert_eq!(limits.rate(&"a"), 20.0, "a forgotten store starts afresh");
    }

    #[tokio::test]
    async fn unlimited_adds_no_wait() {
        let limits = RateLimits::new(0.0);
        let start = Instant::now();
        for _ in 0..1000 {
            let Ok(p) = limits.acquire(&"a").await else {
                panic!("unlimited is never refused")
            };
            assert_eq!(p.waited, Duration::ZERO);
        }
        assert!(start.elapsed() < ms(100));
    }
}
