//! Failure throttles: failed logins per account and per address, bad API keys per
//! address. A key (an account name or an address) may fail a few times freely; after
//! that it is locked for a while that doubles with each further failure, up to a cap.
//! A locked key is answered at once, without checking a password or querying the
//! database. Counts are forgotten once a key has been quiet for a window. The map is
//! bounded: past its size, keys quiet longest are dropped first.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// Failures that lock the key: the last of them is answered, the next try waits.
    pub free: u32,
    /// The first lock; each further failure doubles it.
    pub lock: Duration,
    pub max_lock: Duration,
    /// Quiet this long, a key starts again from nothing.
    pub forget_after: Duration,
}

/// Per account: five failures, then a minute, doubling to a quarter of an hour.
pub const ACCOUNT: Policy = Policy {
    free: 5,
    lock: Duration::from_secs(60),
    max_lock: Duration::from_secs(15 * 60),
    forget_after: Duration::from_secs(60 * 60),
};

/// Per address: room for a team behind one address, then the same locks.
pub const ADDRESS: Policy = Policy { free: 20, ..ACCOUNT };

/// Bad API keys per address: a client with a typo finds out at once, a scan is slowed.
pub const BAD_KEYS: Policy = Policy {
    free: 10,
    lock: Duration::from_secs(10),
    max_lock: Duration::from_secs(10 * 60),
    forget_after: Duration::from_secs(10 * 60),
};

const MAX_KEYS: usize = 100_000;

#[derive(Debug, Clone, Copy)]
struct Record {
    failures: u32,
    last: Instant,
    locked_until: Option<Instant>,
}

#[derive(Debug)]
pub struct Throttle {
    policy: Policy,
    records: Mutex<HashMap<String, Record>>,
}

impl Throttle {
    pub fn new(policy: Policy) -> Self {
        Throttle { policy, records: Mutex::new(HashMap::new()) }
    }

    /// How long `key` is still locked, if it is.
    pub fn locked(&self, key: &str) -> Option<Duration> {
        self.locked_at(key, Instant::now())
    }

    pub fn failed(&self, key: &str) {
        self.failed_at(key, Instant::now())
    }

    /// A success clears the key's failures.
    pub fn succeeded(&self, key: &str) {
        self.records.lock().unwrap_or_else(|e| e.into_inner()).remove(key);
    }

    fn locked_at(&self, key: &str, now: Instant) -> Option<Duration> {
        let records = self.records.lock().unwrap_or_else(|e| e.into_inner());
        let until = records.get(key)?.locked_until?;
        (until > now).then(|| until - now)
    }

    fn failed_at(&self, key: &str, now: Instant) {
        let mut records = self.records.lock().unwrap_or_else(|e| e.into_inner());
        if records.len() >= MAX_KEYS && !records.contains_key(key) {
            forget_quietest(&mut records, self.policy.forget_after, now);
        }
        let record =
            records.entry(key.to_string()).or_insert(Record { failures: 0, last: now, locked_until: None });
        if now.saturating_duration_since(record.last) > self.policy.forget_after {
            *record = Record { failures: 0, last: now, locked_until: None };
        }
        record.failures += 1;
        record.last = now;
        if record.failures >= self.policy.free {
            let doublings = (record.failures - self.policy.free).min(20);
            let lock = self.policy.lock.saturating_mul(1 << doublings).min(self.policy.max_lock);
            record.locked_until = Some(now + lock);
        }
    }
}

/// Drops keys quiet for the window, or else the quieter half.
fn forget_quietest(records: &mut HashMap<String, Record>, window: Duration, now: Instant) {
    records.retain(|_, r| now.saturating_duration_since(r.last) <= window);
    if records.len() >= MAX_KEYS {
        let mut lasts: Vec<Instant> = records.values().map(|r| r.last).collect();
        lasts.sort_unstable();
        let cut = lasts[lasts.len() / 2];
        records.retain(|_, r| r.last > cut);
    }
}

/// Keys that authenticated lately (by their hash): an address locked for bad keys
/// still gets its good keys checked, so a scanner behind a shared address does not lock
/// out the clients there. Each is still checked against the database (revocation
/// applies at once); only the lock is skipped.
#[derive(Debug, Default)]
pub struct RecentKeys {
    seen: Mutex<HashMap<Vec<u8>, Instant>>,
}

const RECENT_FOR: Duration = Duration::from_secs(60 * 60);

impl RecentKeys {
    pub fn contains(&self, hash: &[u8]) -> bool {
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.get(hash).is_some_and(|at| at.elapsed() < RECENT_FOR)
    }

    pub fn remember(&self, hash: Vec<u8>) {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.len() >= MAX_KEYS {
            seen.retain(|_, at| at.elapsed() < RECENT_FOR);
        }
        if seen.len() < MAX_KEYS {
            seen.insert(hash, Instant::now());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: Policy = Policy {
        free: 2,
        lock: Duration::from_secs(10),
        max_lock: Duration::from_secs(25),
        forget_after: Duration::from_secs(100),
    };

    #[test]
    fn a_key_is_locked_after_its_free_failures_for_longer_each_time() {
        let throttle = Throttle::new(POLICY);
        let now = Instant::now();
        throttle.failed_at("kim", now);
        assert_eq!(throttle.locked_at("kim", now), None, "one failure is free");
        throttle.failed_at("kim", now);
        assert_eq!(throttle.locked_at("kim", now), Some(Duration::from_secs(10)), "the second locks");
        throttle.failed_at("kim", now);
        assert_eq!(throttle.locked_at("kim", now), Some(Duration::from_secs(20)), "doubled");
        throttle.failed_at("kim", now);
        assert_eq!(throttle.locked_at("kim", now), Some(Duration::from_secs(25)), "capped");
        assert_eq!(throttle.locked_at("kim", now + Duration::from_secs(26)), None, "the lock ends");
        assert_eq!(throttle.locked_at("lee", now), None, "other keys are free");
    }

    #[test]
    fn success_or_a_quiet_window_forgets_failures() {
        let throttle = Throttle::new(POLICY);
        let now = Instant::now();
        for _ in 0..3 {
            throttle.failed_at("kim", now);
        }
        throttle.succeeded("kim");
        assert_eq!(throttle.locked_at("kim", now), None);
        throttle.failed_at("park", now);
        let later = now + Duration::from_secs(101);
        throttle.failed_at("park", later);
        assert_eq!(throttle.locked_at("park", later), None, "the old failures were forgotten");
    }
}
