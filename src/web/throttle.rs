//! Failure throttles: failed logins and bad API keys, counted per key (an account, an
//! address, an account from one client). A key may fail a few times freely; after that
//! each further try waits a delay that doubles with each failure, up to a cap. A key
//! that is waiting is answered at once, without checking a password or querying the
//! database. Counts are forgotten once a key has been quiet for a window. The map is
//! bounded: past its size, keys quiet longest are dropped first.
//!
//! A login is counted *before* its password is checked ([`Throttle::attempt`]), under
//! the same lock that reads the count, so attempts arriving together cannot all pass a
//! limit that each of them reads as not yet reached.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Failures that start the delay: the last of them is answered, the next try waits.
    pub free: u32,
    /// The first delay; each further failure doubles it.
    pub delay: Duration,
    pub max_delay: Duration,
    /// Quiet this long, a key starts again from nothing.
    pub forget_after: Duration,
}

/// One account from one client (an address, or a device it logged in from before):
/// five failures, then a second, doubling to a minute. Only that client waits.
pub const ACCOUNT_FROM_CLIENT: Policy = Policy {
    free: 5,
    delay: Duration::from_secs(1),
    max_delay: Duration::from_secs(60),
    forget_after: Duration::from_secs(60 * 60),
};

/// One account from every client it has no device cookie from, together: room for a
/// distributed guesser to be noticed, then the same short, capped delays, so the owner
/// is slowed, never shut out for long (and not at all on a device used before).
pub const ACCOUNT_TOTAL: Policy = Policy { free: 50, ..ACCOUNT_FROM_CLIENT };

/// Failed logins from one address, whatever the account: room for a team behind one
/// address, then a minute, doubling to a quarter of an hour. Other addresses never wait
/// for it.
pub const ADDRESS: Policy = Policy {
    free: 20,
    delay: Duration::from_secs(60),
    max_delay: Duration::from_secs(15 * 60),
    forget_after: Duration::from_secs(60 * 60),
};

/// Bad API keys per address: a client with a typo finds out at once, a scan is slowed.
pub const BAD_KEYS: Policy = Policy {
    free: 10,
    delay: Duration::from_secs(10),
    max_delay: Duration::from_secs(10 * 60),
    forget_after: Duration::from_secs(10 * 60),
};

const MAX_KEYS: usize = 100_000;

#[derive(Debug, Clone, Copy)]
struct Record {
    failures: u32,
    last: Instant,
    wait_until: Option<Instant>,
    forget_after: Duration,
}

impl Record {
    fn new(now: Instant, policy: Policy) -> Self {
        Record { failures: 0, last: now, wait_until: None, forget_after: policy.forget_after }
    }

    fn waiting(&self, now: Instant) -> Option<Duration> {
        let until = self.wait_until?;
        (until > now).then(|| until - now)
    }

    fn count(&mut self, now: Instant, policy: Policy) {
        self.failures += 1;
        self.last = now;
        if self.failures >= policy.free {
            let doublings = (self.failures - policy.free).min(20);
            let delay = policy.delay.saturating_mul(1 << doublings).min(policy.max_delay);
            self.wait_until = Some(now + delay);
        }
    }
}

/// Failure counts by key, each key under the policy it is counted with.
#[derive(Debug, Default)]
pub struct Throttle {
    records: Mutex<HashMap<String, Record>>,
}

impl Throttle {
    /// How long `key` must still wait, if it must.
    pub fn waiting(&self, key: &str) -> Option<Duration> {
        self.waiting_at(key, Instant::now())
    }

    /// Counts one attempt against every key as a failure before it is checked, all or
    /// nothing: refused (with the longest wait) when any key is waiting. A success
    /// later clears what it should with [`Throttle::clear`].
    pub fn attempt(&self, keys: &[(&str, Policy)]) -> Result<(), Duration> {
        self.attempt_at(keys, Instant::now())
    }

    /// Counts a failure found after the fact (an unknown API key: the check is one
    /// indexed query, so it is not worth holding a place for).
    pub fn failed(&self, key: &str, policy: Policy) {
        let now = Instant::now();
        let mut records = self.lock();
        record(&mut records, key, policy, now).count(now, policy);
    }

    /// A success forgets the key's failures.
    pub fn clear(&self, key: &str) {
        self.lock().remove(key);
    }

    /// Takes back one attempt that turned out not to be a failure, leaving the key's
    /// other failures counted.
    pub fn forgive(&self, key: &str, policy: Policy) {
        if let Some(record) = self.lock().get_mut(key) {
            record.failures = record.failures.saturating_sub(1);
            if record.failures < policy.free {
                record.wait_until = None;
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Record>> {
        self.records.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn waiting_at(&self, key: &str, now: Instant) -> Option<Duration> {
        self.lock().get(key)?.waiting(now)
    }

    fn attempt_at(&self, keys: &[(&str, Policy)], now: Instant) -> Result<(), Duration> {
        let mut records = self.lock();
        let wait = keys.iter().filter_map(|(key, _)| records.get(*key)?.waiting(now)).max();
        if let Some(wait) = wait {
            return Err(wait);
        }
        for (key, policy) in keys {
            record(&mut records, key, *policy, now).count(now, *policy);
        }
        Ok(())
    }
}

/// The key's record, fresh when it is new or has been quiet past its window.
fn record<'a>(
    records: &'a mut HashMap<String, Record>,
    key: &str,
    policy: Policy,
    now: Instant,
) -> &'a mut Record {
    if records.len() >= MAX_KEYS && !records.contains_key(key) {
        forget_quietest(records, now);
    }
    let record = records.entry(key.to_string()).or_insert_with(|| Record::new(now, policy));
    if now.saturating_duration_since(record.last) > record.forget_after {
        *record = Record::new(now, policy);
    }
    record
}

/// Drops keys quiet past their window, or else the quieter half.
fn forget_quietest(records: &mut HashMap<String, Record>, now: Instant) {
    records.retain(|_, r| now.saturating_duration_since(r.last) <= r.forget_after);
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
        delay: Duration::from_secs(10),
        max_delay: Duration::from_secs(25),
        forget_after: Duration::from_secs(100),
    };

    #[test]
    fn a_key_waits_after_its_free_failures_for_longer_each_time() {
        let throttle = Throttle::default();
        let now = Instant::now();
        assert_eq!(throttle.attempt_at(&[("kim", POLICY)], now), Ok(()));
        assert_eq!(throttle.waiting_at("kim", now), None, "one failure is free");
        assert_eq!(throttle.attempt_at(&[("kim", POLICY)], now), Ok(()), "the second is checked");
        assert_eq!(throttle.waiting_at("kim", now), Some(Duration::from_secs(10)), "then the wait starts");
        assert_eq!(throttle.attempt_at(&[("kim", POLICY)], now), Err(Duration::from_secs(10)));
        let later = now + Duration::from_secs(10);
        assert_eq!(throttle.attempt_at(&[("kim", POLICY)], later), Ok(()));
        assert_eq!(throttle.waiting_at("kim", later), Some(Duration::from_secs(20)), "doubled");
        let later = later + Duration::from_secs(20);
        assert_eq!(throttle.attempt_at(&[("kim", POLICY)], later), Ok(()));
        assert_eq!(throttle.waiting_at("kim", later), Some(Duration::from_secs(25)), "capped");
        assert_eq!(throttle.waiting_at("lee", later), None, "other keys are free");
    }

    #[test]
    fn attempts_that_arrive_together_are_counted_before_any_is_checked() {
        let throttle = std::sync::Arc::new(Throttle::default());
        let admitted: usize = std::thread::scope(|s| {
            let handles: Vec<_> = (0..50)
                .map(|_| s.spawn(|| throttle.attempt(&[("admin", ACCOUNT_FROM_CLIENT)]).is_ok()))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap() as usize).sum()
        });
        assert_eq!(admitted, ACCOUNT_FROM_CLIENT.free as usize);
    }

    #[test]
    fn a_refused_attempt_counts_against_no_key() {
        let throttle = Throttle::default();
        let now = Instant::now();
        for _ in 0..2 {
            throttle.attempt_at(&[("kim@a", POLICY)], now).unwrap();
        }
        // Waiting on one key: the other key of the same attempt is not counted either.
        assert!(throttle.attempt_at(&[("kim@a", POLICY), ("kim", POLICY)], now).is_err());
        assert_eq!(throttle.lock().get("kim").map(|r| r.failures), None);
        // The wait does not grow with refused attempts, only with checked ones.
        assert_eq!(throttle.waiting_at("kim@a", now), Some(Duration::from_secs(10)));
    }

    #[test]
    fn a_forgiven_attempt_no_longer_counts_but_the_others_do() {
        let throttle = Throttle::default();
        let now = Instant::now();
        throttle.attempt_at(&[("team", POLICY)], now).unwrap();
        throttle.attempt_at(&[("team", POLICY)], now).unwrap();
        assert!(throttle.waiting_at("team", now).is_some());
        throttle.forgive("team", POLICY);
        assert_eq!(throttle.waiting_at("team", now), None, "the attempt that started the wait is taken back");
        assert_eq!(throttle.lock()["team"].failures, 1, "the other failure stays");
    }

    #[test]
    fn clearing_or_a_quiet_window_forgets_failures() {
        let throttle = Throttle::default();
        let now = Instant::now();
        for _ in 0..2 {
            throttle.attempt_at(&[("kim", POLICY)], now).unwrap();
        }
        throttle.clear("kim");
        assert_eq!(throttle.waiting_at("kim", now), None);
        throttle.failed("park", POLICY);
        let later = Instant::now() + Duration::from_secs(101);
        throttle.attempt_at(&[("park", POLICY)], later).unwrap();
        assert_eq!(throttle.waiting_at("park", later), None, "the old failure was forgotten");
    }
}
