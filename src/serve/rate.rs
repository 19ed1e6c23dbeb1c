//! Per-key rate limits: a token bucket per key, holding the key's requests per minute
//! and refilling continuously, so a client may burst up to its minute's allowance. The
//! buckets live in this process (one app process serves the API).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
    /// When use was last written to the database.
    recorded: Option<Instant>,
}

#[derive(Debug, Default)]
pub struct RateLimiter {
    buckets: Mutex<HashMap<i64, Bucket>>,
}

/// The outcome of one request against its key's bucket.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Admission {
    /// Allowed; `record_use` says the key's last use should be written now.
    Allowed { record_use: bool },
    /// Refused; a token comes back after this long.
    Limited { retry_after: Duration },
}

/// Last use is written at most this often per key.
const RECORD_EVERY: Duration = Duration::from_secs(60);

impl RateLimiter {
    pub fn admit(&self, key: i64, per_minute: u32) -> Admission {
        self.admit_at(key, per_minute, Instant::now())
    }

    fn admit_at(&self, key: i64, per_minute: u32, now: Instant) -> Admission {
        let capacity = per_minute.max(1) as f64;
        let per_second = capacity / 60.0;
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let bucket = buckets.entry(key).or_insert(Bucket { tokens: capacity, at: now, recorded: None });
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * per_second).min(capacity);
        bucket.at = now;
        if bucket.tokens < 1.0 {
            let wait = (1.0 - bucket.tokens) / per_second;
            return Admission::Limited { retry_after: Duration::from_secs_f64(wait) };
        }
        bucket.tokens -= 1.0;
        let record_use = bucket.recorded.is_none_or(|r| now.saturating_duration_since(r) >= RECORD_EVERY);
        if record_use {
            bucket.recorded = Some(now);
        }
        Admission::Allowed { record_use }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_bursts_its_minute_then_waits_for_refill() {
        let limiter = RateLimiter::default();
        let start = Instant::now();
        for _ in 0..3 {
            assert!(matches!(limiter.admit_at(1, 3, start), Admission::Allowed { .. }));
        }
        let Admission::Limited { retry_after } = limiter.admit_at(1, 3, start) else {
            panic!("the fourth request in a minute of three must be limited");
        };
        assert!((retry_after.as_secs_f64() - 20.0).abs() < 0.01, "one token per 20 s: {retry_after:?}");
        assert!(matches!(limiter.admit_at(1, 3, start + Duration::from_secs(21)), Admission::Allowed { .. }));
    }

    #[test]
    fn keys_have_separate_buckets() {
        let limiter = RateLimiter::default();
        let now = Instant::now();
        assert!(matches!(limiter.admit_at(1, 1, now), Admission::Allowed { .. }));
        assert!(matches!(limiter.admit_at(1, 1, now), Admission::Limited { .. }));
        assert!(matches!(limiter.admit_at(2, 1, now), Admission::Allowed { .. }));
    }

    #[test]
    fn use_is_recorded_once_a_minute() {
        let limiter = RateLimiter::default();
        let now = Instant::now();
        assert_eq!(limiter.admit_at(1, 100, now), Admission::Allowed { record_use: true });
        assert_eq!(limiter.admit_at(1, 100, now), Admission::Allowed { record_use: false });
        let later = now + Duration::from_secs(61);
        assert_eq!(limiter.admit_at(1, 100, later), Admission::Allowed { record_use: true });
    }
}
