//! Rate limits charged by cost: a token bucket per caller (an API key, or a user of the
//! try-it page) holding its minute's allowance of token-passes and refilling
//! continuously, so a caller may burst up to that allowance. A request is charged its
//! cost, at least [`REQUEST_UNIT`]: a limit of N "requests per minute" lets N small
//! requests through, or fewer large ones. The unit is charged when the request is
//! admitted, before anything is done for it ([`RateLimiter::admit`]), so requests that
//! are refused later still count; the rest of its cost once that is known
//! ([`RateLimiter::charge_rest`]). A request larger than the whole allowance passes
//! when the bucket is full and leaves it in debt, so a caller's large requests are
//! spaced by their cost instead of refused forever. The buckets live in this process
//! (one app process serves the API).
//!
//! Hand-written rather than `governor`: its weighted check refuses outright a request
//! costing more than the burst (`InsufficientCapacity`), where a large request here
//! must pass once and leave the caller in debt (`bench serve --adversary` relies on it:
//! the large client's requests are answered, spaced by their cost).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Token-passes one "request" of a limit stands for: a review of about 40 tokens with
/// its highlights and sentiment passes.
pub const REQUEST_UNIT: u64 = 10_000;

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
    /// When use was last written to the database.
    recorded: Option<Instant>,
}

#[derive(Debug)]
pub struct RateLimiter<K> {
    buckets: Mutex<HashMap<K, Bucket>>,
}

impl<K> Default for RateLimiter<K> {
    fn default() -> Self {
        RateLimiter { buckets: Mutex::new(HashMap::new()) }
    }
}

/// The outcome of one request against its caller's bucket.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Admission {
    /// Allowed; `record_use` says the key's last use should be written now.
    Allowed { record_use: bool },
    /// Refused; enough comes back after this long.
    Limited { retry_after: Duration },
}

/// Last use is written at most this often per key.
const RECORD_EVERY: Duration = Duration::from_secs(60);

impl<K: Hash + Eq + Clone> RateLimiter<K> {
    /// Admits a request of `key`, allowed `per_minute` requests, charging one unit.
    pub fn admit(&self, key: &K, per_minute: u32) -> Admission {
        self.take(key, per_minute, REQUEST_UNIT, 0, Instant::now())
    }

    /// Charges the rest of an admitted request's `cost` (what it costs beyond the unit
    /// paid at admission). It needs what the whole request would have needed: its
    /// cost, or a full bucket when the cost is larger.
    pub fn charge_rest(&self, key: &K, per_minute: u32, cost: u64) -> Admission {
        let rest = cost.saturating_sub(REQUEST_UNIT);
        if rest == 0 {
            return Admission::Allowed { record_use: false };
        }
        self.take(key, per_minute, rest, REQUEST_UNIT, Instant::now())
    }

    /// Takes `charge` from the bucket, which must hold what the whole request needs,
    /// less the `paid` part already taken.
    fn take(&self, key: &K, per_minute: u32, charge: u64, paid: u64, now: Instant) -> Admission {
        let capacity = per_minute.max(1) as f64 * REQUEST_UNIT as f64;
        let per_second = capacity / 60.0;
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let bucket =
            buckets.entry(key.clone()).or_insert(Bucket { tokens: capacity, at: now, recorded: None });
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * per_second).min(capacity);
        bucket.at = now;
        // A charge above the whole allowance needs a full bucket, and leaves a debt.
        let needed = ((charge + paid) as f64).min(capacity) - paid as f64;
        if bucket.tokens < needed {
            let wait = (needed.max(1.0) - bucket.tokens) / per_second;
            return Admission::Limited { retry_after: Duration::from_secs_f64(wait) };
        }
        bucket.tokens -= charge as f64;
        let record_use = bucket.recorded.is_none_or(|r| now.saturating_duration_since(r) >= RECORD_EVERY);
        if record_use && charge > 0 {
            bucket.recorded = Some(now);
        }
        Admission::Allowed { record_use: record_use && charge > 0 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: u64 = 100;

    /// One request of `cost` at `now`, as the API charges it: the unit, then the rest.
    fn request(limiter: &RateLimiter<i32>, key: i32, per_minute: u32, cost: u64, now: Instant) -> Admission {
        match limiter.take(&key, per_minute, REQUEST_UNIT, 0, now) {
            Admission::Allowed { .. } if cost > REQUEST_UNIT => {
                limiter.take(&key, per_minute, cost - REQUEST_UNIT, REQUEST_UNIT, now)
            }
            admission => admission,
        }
    }

    fn allowed(admission: Admission) -> bool {
        matches!(admission, Admission::Allowed { .. })
    }

    #[test]
    fn a_key_bursts_its_minute_then_waits_for_refill() {
        let limiter = RateLimiter::default();
        let start = Instant::now();
        for _ in 0..3 {
            assert!(allowed(request(&limiter, 1, 3, REQUEST_UNIT, start)));
        }
        let Admission::Limited { retry_after } = request(&limiter, 1, 3, REQUEST_UNIT, start) else {
            panic!("the fourth request in a minute of three must be limited");
        };
        assert!((retry_after.as_secs_f64() - 20.0).abs() < 0.01, "one request per 20 s: {retry_after:?}");
        let later = start + Duration::from_secs(21);
        assert!(allowed(request(&limiter, 1, 3, REQUEST_UNIT, later)));
    }

    #[test]
    fn small_requests_count_as_one_request_each() {
        let limiter = RateLimiter::default();
        for _ in 0..2 {
            assert!(allowed(limiter.admit(&1, 2)) && allowed(limiter.charge_rest(&1, 2, SMALL)));
        }
        assert!(!allowed(limiter.admit(&1, 2)));
    }

    #[test]
    fn admission_alone_is_charged_so_refused_requests_still_count() {
        let limiter = RateLimiter::<i32>::default();
        // Three requests a minute, each refused after admission (over budget, say).
        for _ in 0..3 {
            assert!(allowed(limiter.admit(&1, 3)));
        }
        assert!(!allowed(limiter.admit(&1, 3)), "the fourth is refused before any work");
    }

    #[test]
    fn a_large_request_is_charged_its_cost() {
        let limiter = RateLimiter::default();
        let now = Instant::now();
        // Ten requests a minute; one request costing five of them leaves room for five.
        assert!(allowed(request(&limiter, 1, 10, 5 * REQUEST_UNIT, now)));
        for _ in 0..5 {
            assert!(allowed(request(&limiter, 1, 10, REQUEST_UNIT, now)));
        }
        assert!(!allowed(request(&limiter, 1, 10, REQUEST_UNIT, now)));
    }

    #[test]
    fn a_request_above_the_allowance_passes_once_and_leaves_a_debt() {
        let limiter = RateLimiter::default();
        let now = Instant::now();
        // One request a minute, charged three minutes' worth.
        assert!(allowed(request(&limiter, 1, 1, 3 * REQUEST_UNIT, now)));
        let Admission::Limited { retry_after } = limiter.take(&1, 1, REQUEST_UNIT, 0, now) else { panic!() };
        assert!((retry_after.as_secs_f64() - 180.0).abs() < 0.01, "the debt is paid first: {retry_after:?}");
        let paid = now + Duration::from_secs(181);
        assert!(allowed(request(&limiter, 1, 1, 3 * REQUEST_UNIT, paid)));
    }

    #[test]
    fn keys_have_separate_buckets() {
        let limiter = RateLimiter::default();
        let now = Instant::now();
        assert!(allowed(request(&limiter, 1, 1, REQUEST_UNIT, now)));
        assert!(!allowed(request(&limiter, 1, 1, REQUEST_UNIT, now)));
        assert!(allowed(request(&limiter, 2, 1, REQUEST_UNIT, now)));
    }

    #[test]
    fn use_is_recorded_once_a_minute() {
        let limiter = RateLimiter::default();
        let now = Instant::now();
        assert_eq!(limiter.take(&1, 100, SMALL, 0, now), Admission::Allowed { record_use: true });
        assert_eq!(limiter.take(&1, 100, SMALL, 0, now), Admission::Allowed { record_use: false });
        let later = now + Duration::from_secs(61);
        assert_eq!(limiter.take(&1, 100, SMALL, 0, later), Admission::Allowed { record_use: true });
    }
}
